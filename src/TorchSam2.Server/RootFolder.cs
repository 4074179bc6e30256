using System.Runtime.InteropServices;

namespace TorchSam2.Server;

/// <summary>
/// The only server folder the API may read (<c>--root</c>). A request names a path relative to it; absolute paths,
/// <c>..</c> segments and anything whose real path (links followed) leaves the folder are refused with 403.
/// </summary>
public sealed class RootFolder
{
    private readonly string? _real;

    public RootFolder(string? root)
    {
        if (root is null) return;
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"--root: folder not found: '{root}'");
        _real = RealPath(Path.GetFullPath(root)) ?? throw new DirectoryNotFoundException($"--root: cannot resolve '{root}'");
    }

    public bool IsServed => _real is not null;

    /// <summary>The real path of <paramref name="relative"/> inside the root; throws <see cref="ApiException"/> (403, 404) otherwise.</summary>
    public string Resolve(string? relative)
    {
        if (_real is null) throw new ApiException(403, "no server folder is readable: start the server with --root DIR to open files from it");
        relative ??= "";
        if (relative.Contains('\0')) throw new ApiException(400, "the path holds a NUL character");
        if (Path.IsPathRooted(relative) || relative.StartsWith('~'))
            throw new ApiException(403, "absolute paths are refused: give a path relative to the served folder");
        var segments = relative.Split(['/', '\\'], StringSplitOptions.RemoveEmptyEntries);
        if (segments.Any(s => s == ".."))
            throw new ApiException(403, "'..' is refused in paths: give a path inside the served folder");
        var joined = Path.Combine([_real, .. segments]);
        if (!File.Exists(joined) && !Directory.Exists(joined)) throw new ApiException(404, $"not found in the served folder: '{relative}'");
        var real = RealPath(joined) ?? throw new ApiException(404, $"not found in the served folder: '{relative}'");
        if (real != _real && !real.StartsWith(_real.EndsWith('/') ? _real : _real + "/", StringComparison.Ordinal))
            throw new ApiException(403, $"'{relative}' leads outside the served folder (a link out): refused");
        return real;
    }

    /// <summary>The path relative to the root of a real path returned by <see cref="Resolve"/>.</summary>
    public string Relative(string real) => Path.GetRelativePath(_real!, real).Replace('\\', '/');

    [DllImport("libc", EntryPoint = "realpath", SetLastError = true)]
    private static extern IntPtr NativeRealPath([MarshalAs(UnmanagedType.LPUTF8Str)] string path, IntPtr resolved);

    [DllImport("libc", EntryPoint = "free")]
    private static extern void NativeFree(IntPtr p);

    /// <summary>Every link followed, as the kernel sees it (null when the path does not exist).</summary>
    internal static string? RealPath(string path)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS())
        {
            // elsewhere: the final link target only (the served-folder check still applies to it)
            var info = new FileInfo(path);
            var target = info.LinkTarget is null ? null : info.ResolveLinkTarget(true);
            return Path.GetFullPath(target?.FullName ?? path);
        }
        IntPtr p = NativeRealPath(path, IntPtr.Zero);
        if (p == IntPtr.Zero) return null;
        try { return Marshal.PtrToStringUTF8(p); }
        finally { NativeFree(p); }
    }
}
