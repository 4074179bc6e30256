using TorchSharp;
using static TorchSharp.torch;

namespace TorchSam2.Checkpoints.Tests;

// The process's working set is what the test reads, so it runs alone (xunit runs this collection after the parallel
// ones): whatever another test allocates meanwhile counts too, and it failed once in CI with the others beside it.
[CollectionDefinition(nameof(LeakTests), DisableParallelization = true)]
public sealed class LeakTestsCollection;

[Collection(nameof(LeakTests))]
public class LeakTests
{
    // TorchSharp counts live tensors per thread, so this count is this test's alone.
    [Fact]
    public void TenThousandForwardsInDisposeScopesLeaveNativeMemoryFlat()
    {
        using var lin = nn.Linear(64, 64);
        using var x = randn(8, 64);
        using var _ = inference_mode();
        var stats = DisposeScopeManager.Statistics;
        long before = stats.ThreadTotalLiveCount;
        long rssAfterWarmup = 0;
        for (int i = 0; i < 10_000; i++)
        {
            using var scope = NewDisposeScope();
            var y = nn.functional.gelu(lin.forward(x)).softmax(-1);
            var s = y.sum();
            if (i == 500)
            {
                FullCollect();
                rssAfterWarmup = Environment.WorkingSet;
            }
        }
        Assert.Equal(before, stats.ThreadTotalLiveCount);
        // TorchSharp's finalizable Tensor wrappers are managed garbage: collected first, so what is compared is
        // the native memory the forwards kept.
        FullCollect();
        long rssEnd = Environment.WorkingSet;
        Assert.True(rssEnd < rssAfterWarmup + 32L * 1024 * 1024, $"RSS grew from {rssAfterWarmup >> 20} MiB to {rssEnd >> 20} MiB");
    }

    private static void FullCollect()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }
}
