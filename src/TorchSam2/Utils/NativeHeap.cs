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

    /// <summary>
    /// Trims the heap during a long loop (video frames) whenever the resident set has grown by more than a margin
    /// since the last trim. A step's temporaries are freed in an order that leaves holes behind the small tensors
    /// the step keeps (memories, pointers), so without trimming the resident set climbs frame after frame; trimming
    /// after every step would bound it too but re-faults the step's pages each time.
    /// </summary>
    public sealed class GrowthTrimmer
    {
        private readonly Func<long> _resident;
        private readonly Func<bool> _trim;
        private long _baseline;

        /// <summary>A trimmer of this process's heap.</summary>
        public GrowthTrimmer(long marginBytes) : this(marginBytes, () => Environment.WorkingSet, ReleaseFreePages) { }

        /// <summary>A trimmer over given probes: the resident set in bytes (0 or less = unknown) and a trim (true when it released pages).</summary>
        public GrowthTrimmer(long marginBytes, Func<long> residentBytes, Func<bool> trim)
        {
            MarginBytes = marginBytes;
            _resident = residentBytes;
            _trim = trim;
            _baseline = residentBytes();
        }

        public long MarginBytes { get; }

        /// <summary>How many times it trimmed.</summary>
        public int Trims { get; private set; }

        /// <summary>Call between steps, when the step's temporaries are freed.</summary>
        public void Step()
        {
            long rss = _resident();
            if (rss <= 0 || MarginBytes <= 0) return;
            // the baseline follows the resident set down (memory freed to the system by other means)
            if (_baseline <= 0 || rss < _baseline) _baseline = rss;
            if (rss - _baseline <= MarginBytes) return;
            if (_trim()) Trims++;
            _baseline = _resident();
        }
    }
}
