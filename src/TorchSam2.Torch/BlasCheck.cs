namespace TorchSam2.Torch;

/// <summary>
/// Debian's libtorch takes its BLAS from libblas.so.3, which is the slow reference BLAS unless an
/// optimized one (OpenBLAS) is installed: matmuls then run ~25x slower. Checked once per process.
/// </summary>
public static class BlasCheck
{
    private static int _checked;

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
                                    "Install an optimized one: sudo apt-get install libopenblas0-pthread");
    }
}
