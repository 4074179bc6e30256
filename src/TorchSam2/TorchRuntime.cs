using System.Text.RegularExpressions;
using TorchSam2.Build;
using static TorchSharp.torch;

namespace TorchSam2;

/// <summary>What the process runs on: TorchSharp, the native libtorch it loaded, threads and devices.</summary>
public static partial class TorchRuntime
{
    /// <summary>The TorchSharp assembly's version (0.107.0 by default).</summary>
    public static string TorchSharpVersion => typeof(TorchSharp.torch).Assembly.GetName().Version?.ToString(3) ?? "?";

    /// <summary>Parses "cpu", "cuda" or "cuda:N", refusing CUDA when the loaded libtorch has no CUDA device.</summary>
    public static Device ParseDevice(string s)
    {
        ArgumentNullException.ThrowIfNull(s);
        var t = s.Trim().ToLowerInvariant();
        if (!DeviceName().IsMatch(t)) throw new ArgumentException($"unknown device '{s}' (expected cpu, cuda or cuda:N)");
        if (t != "cpu")
        {
            if (!cuda.is_available())
                throw new ArgumentException("CUDA was requested but the loaded libtorch has no CUDA device (build with -p:TorchBackend=cuda-linux: see README, CUDA)");
            if (t.Length > 5 && int.Parse(t.AsSpan(5)) >= cuda.device_count())
                throw new ArgumentException($"device '{s}' does not exist: {cuda.device_count()} CUDA device(s)");
        }
        return device(t);
    }

    /// <summary>Paths of the native libraries the process mapped whose names contain <paramref name="name"/> (Linux).</summary>
    public static IReadOnlyList<string> MappedLibraries(string name)
    {
        var result = new List<string>();
        if (!OperatingSystem.IsLinux()) return result;
        foreach (var line in File.ReadLines("/proc/self/maps"))
        {
            int slash = line.IndexOf('/');
            if (slash < 0) continue;
            var path = line[slash..];
            if (Path.GetFileName(path).Contains(name, StringComparison.Ordinal) && !result.Contains(path)) result.Add(path);
        }
        return result;
    }

    /// <summary>
    /// How the loaded libLibTorchSharp.so stands with GLIBCXX_3.4.32 (see build/ElfVersionNeeds.cs): "not needed",
    /// "required (system libstdc++ has it)", or "marked weak by the build (system libstdc++ lacks it)".
    /// </summary>
    public static string GlibcxxStatus()
    {
        using (ones(1)) { } // makes sure TorchSharp's native library is loaded
        var lib = MappedLibraries("libLibTorchSharp").FirstOrDefault();
        if (lib is null) return "libLibTorchSharp not mapped";
        var flags = ElfVersionNeeds.NeededFlags(File.ReadAllBytes(lib), ElfVersionNeeds.Version);
        if (flags is null) return $"{ElfVersionNeeds.Version} not needed";
        if (!ElfVersionNeeds.IsWeak(flags.Value)) return $"{ElfVersionNeeds.Version} required (this system's libstdc++ has it)";
        // the dotnet tool package is weakened wherever it was built, so say what this system has
        var system = ElfVersionNeeds.SystemLibStdCxx();
        return system is not null && ElfVersionNeeds.Defines(system, ElfVersionNeeds.Version)
            ? $"{ElfVersionNeeds.Version} marked weak by the build (this system's libstdc++ has it: it is used)"
            : $"{ElfVersionNeeds.Version} marked weak by the build (this system's libstdc++ lacks it)";
    }

    /// <summary>
    /// Live tensors in the whole process (TorchSharp's Tensor.TotalCount: created minus disposed, finalizers
    /// included). Long runs that dispose deterministically hold it flat; the leak tests assert on it after a full
    /// GC, in a test collection that runs alone.
    /// </summary>
    public static long LiveTensorCount => Tensor.TotalCount;

    [GeneratedRegex("^(cpu|cuda|cuda:[0-9]{1,3})$")]
    private static partial Regex DeviceName();
}
