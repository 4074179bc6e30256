namespace TorchSam2.Tests;

// torch.LiveTensorCount is process-wide: tests that assert on it run in this collection, which
// xunit runs alone after the parallel ones, and read it only after a full collection so tensors
// other tests left to the finalizer do not move it.
[CollectionDefinition(NativeMemory.Collection, DisableParallelization = true)]
public sealed class NativeMemoryCollection;

internal static class NativeMemory
{
    public const string Collection = "NativeMemory";

    public static void FullCollect()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    /// <summary>Live tensors in the process after flushing the finalizer queue.</summary>
    public static long Live()
    {
        FullCollect();
        return TorchRuntime.LiveTensorCount;
    }
}
