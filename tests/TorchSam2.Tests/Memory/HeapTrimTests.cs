using TorchSam2.Utils;

namespace TorchSam2.Tests.Memory;

public sealed class HeapTrimTests
{
    [Fact]
    public void GrowthTrimmerTrimsOnlyPastItsMarginAboveTheLastTrim()
    {
        const long MB = 1 << 20;
        // a resident set the "heap" grows by fragmentation and a trim brings back to the live size
        long rss = 500 * MB, live = 500 * MB;
        int trimCalls = 0;
        var t = new NativeHeap.GrowthTrimmer(128 * MB, () => rss, () => { trimCalls++; bool released = rss > live; rss = live; return released; });

        rss += 100 * MB; t.Step();          // +100 MB: within the margin
        Assert.Equal(0, trimCalls);
        rss += 29 * MB; t.Step();           // +129 MB: past it
        Assert.Equal(1, trimCalls);
        Assert.Equal(1, t.Trims);
        Assert.Equal(500 * MB, rss);

        live = 520 * MB;                     // the state grew by 20 MB of memories
        rss = 640 * MB; t.Step();            // +140 MB over the last trim's 500 MB
        Assert.Equal(2, t.Trims);
        Assert.Equal(520 * MB, rss);
        rss = 640 * MB; t.Step();            // +120 MB over the new baseline, 520 MB: nothing
        Assert.Equal(2, t.Trims);

        // the baseline follows the resident set down, so growth is counted from the lowest point
        rss = 400 * MB; t.Step();
        rss = 529 * MB; t.Step();
        Assert.Equal(3, t.Trims);

        // an unknown resident set (Environment.WorkingSet is 0 where the system does not say) or a zero margin never trims
        var blind = new NativeHeap.GrowthTrimmer(128 * MB, () => 0, () => throw new InvalidOperationException());
        blind.Step();
        var off = new NativeHeap.GrowthTrimmer(0, () => rss += 1000 * MB, () => throw new InvalidOperationException());
        off.Step();
        Assert.Equal(0, blind.Trims + off.Trims);
    }
}
