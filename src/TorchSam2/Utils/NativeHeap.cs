using System.Runtime.InteropServices;

namespace TorchSam2.Utils;

/// <summary>
/// glibc heap controls (no-ops elsewhere). libtorch allocates tensors with posix_memalign; glibc serves blocks
/// above its mmap threshold with mmap and returns them to the system on free, but it raises that threshold to
/// the size of every mmapped block freed (up to 32 MB), after which image-sized temporaries come from the
/// per-thread arenas and stay resident as fragments between calls.
/// </summary>
public static partial class NativeHeap
{
    private const int M_MMAP_THRESHOLD = -3;

    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int Mallopt(int param, int value);

    /// <summary>Returns free native heap pages to the OS; true when any were released.</summary>
    public static bool ReleaseFreePages()
    {
        if (!OperatingSystem.IsLinux()) return false;
        try { return MallocTrim(0) != 0; }
        catch (DllNotFoundException) { return false; }
        catch (EntryPointNotFoundException) { return false; } // musl has no malloc_trim
    }

    /// <summary>
    /// Fixes glibc's mmap threshold (which also switches off its dynamic raising), so that blocks of at least
    /// <paramref name="bytes"/> are always mmapped and handed back when freed. Call before the first tensor is
    /// made. Returns false where there is no glibc.
    /// </summary>
    public static bool FixMmapThreshold(int bytes)
    {
        if (!OperatingSystem.IsLinux() || bytes <= 0) return false;
        try { return Mallopt(M_MMAP_THRESHOLD, bytes) == 1; }
        catch (DllNotFoundException) { return false; }
        catch (EntryPointNotFoundException) { return false; }
    }
}
