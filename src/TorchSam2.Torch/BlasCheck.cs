using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace TorchSam2.Torch;

/// <summary>
/// Debian's libtorch takes its BLAS from libblas.so.3, which is the slow reference BLAS unless an
/// optimized one (OpenBLAS) is installed: matmuls then run ~25x slower. Checked once per process.
/// </summary>
public static class BlasCheck
{
    private static int _checked;

    /// <summary>The OpenMP build of OpenBLAS this process preloaded, or null (not installed, opted out, or not Linux).</summary>
    public static string? PreloadedOpenMpBlas { get; private set; }

    /// <summary>
    /// Runs when this assembly loads, before libtorch is: prefers Debian's OpenMP build of OpenBLAS
    /// (libopenblas0-openmp) over the pthread build that the system alternative usually points at.
    /// The pthread build's spinning workers fight libtorch's OpenMP threads for the cores between
    /// every matmul and elementwise op; with one OpenMP pool the image encoder runs ~30 % faster on
    /// 2 cores. Loading the libraries first makes libtorch's DT_NEEDED entries (by soname) bind to
    /// them. TORCHSAM2_BLAS=system keeps whatever the system alternative is.
    /// </summary>
    // CA2255: a library module initializer is deliberate here; it is the one hook that runs before the first
    // P/Invoke loads libtorch, whatever API the application touches first.
#pragma warning disable CA2255
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void PreferOpenMpBlas()
    {
        if (!OperatingSystem.IsLinux()) return;
        if (string.Equals(Environment.GetEnvironmentVariable("TORCHSAM2_BLAS"), "system", StringComparison.OrdinalIgnoreCase)) return;
        var triplet = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => "x86_64-linux-gnu",
            Architecture.Arm64 => "aarch64-linux-gnu",
            _ => null,
        };
        if (triplet is null) return;
        var dir = $"/usr/lib/{triplet}/openblas-openmp";
        var openblas = Path.Combine(dir, "libopenblas.so.0");
        if (!File.Exists(openblas) || LoadedBlas() is not null) return;
        // libopenblas first (the other two need it), then the BLAS and LAPACK interfaces libtorch links
        if (!NativeLibrary.TryLoad(openblas, out _)) return;
        foreach (var name in new[] { "libblas.so.3", "liblapack.so.3" })
        {
            var path = Path.Combine(dir, name);
            if (File.Exists(path)) NativeLibrary.TryLoad(path, out _);
        }
        PreloadedOpenMpBlas = openblas;
    }

    /// <summary>The BLAS library file mapped into this process, or null if none could be seen.</summary>
    public static string? LoadedBlas()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/maps"))
            {
                int i = line.IndexOf('/');
                if (i < 0) continue;
                var path = line[i..];
                var name = Path.GetFileName(path);
                if (name.StartsWith("libopenblas", StringComparison.Ordinal) || name.StartsWith("libblas.so", StringComparison.Ordinal) ||
                    name.StartsWith("libmkl_rt", StringComparison.Ordinal) || name.StartsWith("libblis", StringComparison.Ordinal))
                    return path;
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }

    /// <summary>True when the mapped BLAS is Debian's reference implementation.</summary>
    public static bool IsReferenceBlas(string? path) =>
        path is not null && path.Contains("/blas/libblas.so", StringComparison.Ordinal) && !path.Contains("openblas", StringComparison.Ordinal);

    private delegate void SetThreads(int n);

    /// <summary>
    /// Sets the BLAS library's own thread count where it has one (OpenBLAS): libtorch's
    /// set_num_threads does not reach it, so "1 thread" would otherwise still run BLAS workers.
    /// Returns false when the loaded BLAS has no such control.
    /// </summary>
    public static bool SetBlasThreads(int n)
    {
        var path = LoadedBlas();
        if (path is null || !System.Runtime.InteropServices.NativeLibrary.TryLoad(path, out var lib)) return false;
        if (!System.Runtime.InteropServices.NativeLibrary.TryGetExport(lib, "openblas_set_num_threads", out var fn)) return false;
        System.Runtime.InteropServices.Marshal.GetDelegateForFunctionPointer<SetThreads>(fn)(n);
        return true;
    }

    internal static void WarnOnce()
    {
        if (Interlocked.Exchange(ref _checked, 1) != 0) return;
        var blas = LoadedBlas();
        if (IsReferenceBlas(blas))
            Console.Error.WriteLine($"warning: libtorch is using the reference BLAS ({blas}); matrix products will be very slow. " +
                                    "Install an optimized one: sudo apt-get install libopenblas0-openmp");
    }
}
