using System.Diagnostics;

namespace TorchSam2.Tests;

/// <summary>
/// How much memory an action needs: the growth of the process's resident set over its level before the action
/// (the kernel's peak, reset first through /proc/self/clear_refs where Linux allows it, and a 2 ms sampler), and
/// the managed bytes the calling thread allocated. Run it in the <see cref="NativeMemory.Collection"/> collection,
/// which xunit runs alone, so other tests do not move the resident set.
/// </summary>
internal static class MemoryProbe
{
    public sealed record Result(long PeakGrowth, long Allocated, Exception? Error)
    {
        public override string ToString() =>
            $"peak working set +{PeakGrowth / 1e6:F1} MB, {Allocated / 1e6:F1} MB allocated";
    }

    /// <summary>Runs <paramref name="action"/>, recording (not throwing) its exception.</summary>
    public static Result Measure(Action action)
    {
        NativeMemory.FullCollect();
        var self = Process.GetCurrentProcess();
        bool peakReset = TryResetPeak();
        self.Refresh();
        long baseline = self.WorkingSet64;
        long sampled = baseline;
        bool stop = false;
        var sampler = new Thread(() =>
        {
            var p = Process.GetCurrentProcess();
            while (!Volatile.Read(ref stop))
            {
                p.Refresh();
                long ws = p.WorkingSet64;
                if (ws > Interlocked.Read(ref sampled)) Interlocked.Exchange(ref sampled, ws);
                Thread.Sleep(2);
            }
        }) { IsBackground = true };
        sampler.Start();
        long before = GC.GetAllocatedBytesForCurrentThread();
        Exception? error = null;
        try { action(); }
        catch (Exception e) { error = e; }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Volatile.Write(ref stop, true);
        sampler.Join();
        self.Refresh();
        long peak = Math.Max(Interlocked.Read(ref sampled), peakReset ? self.PeakWorkingSet64 : 0);
        return new Result(Math.Max(0, peak - baseline), allocated, error);
    }

    // Linux (4.0+): writing 5 to clear_refs resets the peak resident set (VmHWM) to the current one.
    private static bool TryResetPeak()
    {
        try
        {
            if (!OperatingSystem.IsLinux()) return false;
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
