using TorchSam2.Torch;
using static TorchSam2.Torch.torch;

namespace TorchSam2.Torch.Tests;

// The live-tensor counter is process-wide, so nothing else may run beside this test.
[CollectionDefinition(nameof(LeakTests), DisableParallelization = true)]
public sealed class LeakTestsCollection;

[Collection(nameof(LeakTests))]
public class LeakTests
{
    [Fact]
    public void TenThousandForwardsInDisposeScopesLeaveNativeMemoryFlat()
    {
        using var lin = new nn.Linear(64, 64);
        using var x = randn([8, 64]);
        using var _ = inference_mode();
        // Flush tensors other tests left to the finalizer so the count below is ours alone.
        FullCollect();
        long before = LiveTensorCount;
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
        FullCollect();
        Assert.Equal(before, LiveTensorCount);
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
