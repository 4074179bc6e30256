using System.IO.Enumeration;
using System.Runtime.InteropServices;

namespace TorchSam2.Cli;

/// <summary>Full paths with every symbolic link resolved, to compare inputs with outputs.</summary>
internal static class PathSafety
{
    [DllImport("libc", EntryPoint = "realpath", SetLastError = true)]
    private static extern IntPtr RealPathNative([MarshalAs(UnmanagedType.LPUTF8Str)] string path, IntPtr resolved);

    [DllImport("libc", EntryPoint = "free")]
    private static extern void Free(IntPtr p);

    private static bool _noLibc;

    /// <summary>
    /// The canonical full path: the deepest existing ancestor through realpath(3) (all links resolved), the rest
    /// appended as given. Without libc (Windows) the full path.
    /// </summary>
    public static string Resolve(string path)
    {
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
        string existing = full, rest = "";
        while (!Exists(existing))
        {
            var parent = Path.GetDirectoryName(existing);
            if (parent is null) return full;
            rest = rest.Length == 0 ? Path.GetFileName(existing) : Path.Combine(Path.GetFileName(existing), rest);
            existing = parent;
        }
        string real = RealPath(existing) ?? existing;
        return rest.Length == 0 ? real : Path.Combine(real, rest);
    }

    private static bool Exists(string p) => File.Exists(p) || Directory.Exists(p);

    private static string? RealPath(string p)
    {
        if (_noLibc || OperatingSystem.IsWindows()) return null;
        try
        {
            var r = RealPathNative(p, IntPtr.Zero);
            if (r == IntPtr.Zero) return null;
            try { return Marshal.PtrToStringUTF8(r); }
            finally { Free(r); }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            _noLibc = true;
            return null;
        }
    }

    private static readonly StringComparison Cmp = OperatingSystem.IsWindows() || OperatingSystem.IsMacOS() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;

    public static bool Same(string a, string b) => string.Equals(a, b, Cmp);

    /// <summary>Whether <paramref name="path"/> is <paramref name="folder"/> or lies inside it (both resolved).</summary>
    public static bool IsInside(string path, string folder) =>
        Same(path, folder) || path.StartsWith(Path.TrimEndingDirectorySeparator(folder) + Path.DirectorySeparatorChar, Cmp);

    /// <summary>The files an input path stands for: the file itself, or every file under a folder.</summary>
    public static IEnumerable<string> InputFiles(string? input)
    {
        if (string.IsNullOrEmpty(input)) yield break;
        if (File.Exists(input))
        {
            yield return input;
        }
        else if (Directory.Exists(input))
        {
            IEnumerable<string> files;
            try { files = Directory.EnumerateFiles(input, "*", new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true }).Take(100_000).ToList(); }
            catch (IOException) { yield break; }
            foreach (var f in files) yield return f;
        }
    }

    /// <summary>
    /// Refuses (exit code 2) when writing <paramref name="output"/> would overwrite or remove one of the inputs: the
    /// output file is an input, or (for an output folder replaced as a whole) an input lies in it and
    /// <paramref name="wouldReplace"/> says the command owns that name.
    /// </summary>
    public static void CheckNotAnInput(string outputOption, string output, IEnumerable<(string option, string? path)> inputs, Func<string, bool>? wouldReplace = null)
    {
        string outResolved = Resolve(output);
        foreach (var (option, path) in inputs)
            foreach (var file in InputFiles(path))
            {
                // both the file the name points to and the name itself (a link inside the output folder)
                foreach (var candidate in new[] { Resolve(file), ResolveParent(file) }.Distinct())
                {
                    bool hit = wouldReplace is null
                        ? Same(candidate, outResolved)
                        : IsInside(candidate, outResolved) && wouldReplace(Path.GetRelativePath(outResolved, candidate));
                    if (hit)
                        throw new UsageException($"{outputOption} '{Terminal.Safe(output)}' would overwrite the input {option} '{Terminal.Safe(file)}'; choose another {outputOption}");
                }
            }
    }

    private static string ResolveParent(string file)
    {
        var full = Path.GetFullPath(file);
        var dir = Path.GetDirectoryName(full);
        return dir is null ? full : Path.Combine(Resolve(dir), Path.GetFileName(full));
    }
}

/// <summary>
/// The output folder of a command (--out), written so that results appear whole or not at all. Everything is
/// written into a staging folder next to it (same file system), then moved into place:
/// <list type="bullet">
/// <item>no folder yet: the staging folder is renamed to it;</item>
/// <item>a folder holding only files this command writes (an earlier run): it is replaced as a whole (renamed aside,
/// the staging folder renamed in, the old one deleted), so no file of the earlier run is left looking current;</item>
/// <item>a folder that also holds other files: those are left alone; the index file (masks.json, ...) is removed
/// first, every earlier file of this command's names is removed, the new files moved in and the index moved in
/// last, so an interrupted replacement never looks complete.</item>
/// </list>
/// A failure before <see cref="Commit"/> leaves the folder as it was. Inputs are never inside what is replaced:
/// <see cref="Begin"/> refuses that with exit code 2.
/// </summary>
internal sealed class OutputFolder : IDisposable
{
    private readonly string[] _owned;
    private readonly string _index;
    private bool _done;

    /// <summary>The resolved --out folder.</summary>
    public string Target { get; }
    /// <summary>Where to write: a fresh folder beside <see cref="Target"/>.</summary>
    public string Staging { get; }
    /// <summary>--out as the user gave it (for messages).</summary>
    public string Display { get; }

    private OutputFolder(string display, string target, string staging, string[] owned, string index)
    {
        Display = display;
        Target = target;
        Staging = staging;
        _owned = owned;
        _index = index;
    }

    /// <param name="output">the --out value</param>
    /// <param name="owned">file name patterns (relative, '/' separated, * and ? wildcards) of everything this command writes, e.g. "mask_*.png", "masks/*.png"</param>
    /// <param name="index">the file that makes a result complete (written last, removed first), e.g. "masks.json"</param>
    /// <param name="inputs">the command's inputs (files or folders), by option name</param>
    public static OutputFolder Begin(string output, string[] owned, string index, IEnumerable<(string option, string? path)> inputs, string option = "--out")
    {
        if (string.IsNullOrWhiteSpace(output)) throw new UsageException($"{option} must name a folder");
        string target = PathSafety.Resolve(output);
        if (System.IO.File.Exists(target)) throw new UsageException($"{option} '{Terminal.Safe(output)}' is a file, not a folder");
        if (Path.GetDirectoryName(target) is not { } parent) throw new UsageException($"{option} '{Terminal.Safe(output)}' cannot be the root folder");
        var probe = new OutputFolder(output, target, "", owned, index);
        // Inputs inside the folder survive unless they carry one of the command's names (a folder holding anything
        // else is never replaced whole).
        PathSafety.CheckNotAnInput(option, output, inputs, probe.Owns);
        Directory.CreateDirectory(parent);
        string staging = Path.Combine(parent, $".{Path.GetFileName(target)}.tmp-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}");
        Directory.CreateDirectory(staging);
        return new OutputFolder(output, target, staging, owned, index);
    }

    /// <summary>A path inside the staging folder (its folder is created).</summary>
    public string File(string relative)
    {
        var p = Path.Combine(Staging, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(p)!);
        return p;
    }

    /// <summary>Where a staged file will be once committed (for messages).</summary>
    public string Final(string relative) => Path.Combine(Display, relative);

    /// <summary>Whether a path relative to the folder is one of this command's outputs.</summary>
    public bool Owns(string relative)
    {
        relative = relative.Replace(Path.DirectorySeparatorChar, '/');
        return _owned.Any(p => FileSystemName.MatchesSimpleExpression(p, relative, ignoreCase: false));
    }

    // Folders on the way to owned files (masks/ for masks/*.png) are owned when everything in them is.
    private bool OnlyOwned()
    {
        if (!Directory.Exists(Target)) return true;
        foreach (var e in Directory.EnumerateFileSystemEntries(Target, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 }))
        {
            var rel = Path.GetRelativePath(Target, e).Replace(Path.DirectorySeparatorChar, '/');
            bool isDir = Directory.Exists(e) && !new FileInfo(e).Attributes.HasFlag(FileAttributes.ReparsePoint);
            if (isDir ? !_owned.Any(p => p.StartsWith(rel + "/", StringComparison.Ordinal)) : !Owns(rel)) return false;
        }
        return true;
    }

    /// <summary>Moves the staged results into place (see the class summary).</summary>
    public void Commit()
    {
        if (_done) throw new InvalidOperationException("already committed");
        if (!Directory.Exists(Target))
        {
            Directory.Move(Staging, Target);
        }
        else if (OnlyOwned())
        {
            string old = Path.Combine(Path.GetDirectoryName(Target)!, $".{Path.GetFileName(Target)}.old-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}");
            Directory.Move(Target, old);
            try
            {
                Directory.Move(Staging, Target);
            }
            catch
            {
                Directory.Move(old, Target);
                throw;
            }
            TryDelete(old);
        }
        else
        {
            var index = Path.Combine(Target, _index);
            if (System.IO.File.Exists(index)) System.IO.File.Delete(index);
            foreach (var f in Directory.EnumerateFiles(Target, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 }).ToList())
                if (Owns(Path.GetRelativePath(Target, f))) System.IO.File.Delete(f);
            var staged = Directory.EnumerateFiles(Staging, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
                                  .Select(f => Path.GetRelativePath(Staging, f)).OrderBy(r => r == _index ? 1 : 0).ToList();
            foreach (var rel in staged)
            {
                var dest = Path.Combine(Target, rel);
                Directory.CreateDirectory(Path.GetDirectoryName(dest)!);
                System.IO.File.Move(Path.Combine(Staging, rel), dest, overwrite: true);
            }
            TryDelete(Staging);
        }
        _done = true;
    }

    /// <summary>Leaves the staging folder in place when disposed (a failed run's resumable state).</summary>
    public void Keep() => _done = true;

    /// <summary>Removes the staging folder unless committed (a failed run leaves --out as it was).</summary>
    public void Dispose()
    {
        if (_done) return;
        _done = true;
        TryDelete(Staging);
    }

    private static void TryDelete(string dir)
    {
        try
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Terminal.Warning($"could not remove the temporary folder '{Terminal.Safe(dir)}': {Terminal.OneLine(e.Message)}");
        }
    }
}
