using System.Runtime.InteropServices;
using TorchSam2.Utils;

namespace TorchSam2.Tests.Memory;

// The resident set is process-wide: nothing else may run beside this test.
[Collection(NativeMemory.Collection)]
public sealed class HeapTrimTests
{
    [Fact]
    public void GrowthTrimmerHandsFragmentedHeapBackOnlyPastItsMargin()
    {
        if (!OperatingSystem.IsLinux()) return;
        // 1 MB blocks stay below the 4 MB mmap threshold the CLI sets: they come from the heap, as libtorch's
        // temporaries do. A small block kept after each (a frame's memory, a pointer) stops glibc from giving the
        // freed space back at the top of the heap.
        Assert.True(NativeHeap.FixMmapThreshold(4 << 20));
        const int Blocks = 256, Size = 1 << 20;
        var big = new IntPtr[Blocks];
        var kept = new IntPtr[Blocks];
        long before = NativeHeap.ResidentBytes();
        Assert.True(before > 0);
        var trimmer = new NativeHeap.GrowthTrimmer(64L << 20);
        try
        {
            for (int i = 0; i < Blocks; i++)
            {
                big[i] = Marshal.AllocHGlobal(Size);
                for (int o = 0; o < Size; o += 4096) Marshal.WriteByte(big[i], o, 1); // make it resident
                kept[i] = Marshal.AllocHGlobal(64);
            }
            for (int i = 0; i < Blocks; i++) Marshal.FreeHGlobal(big[i]);
            long fragmented = NativeHeap.ResidentBytes();
            Assert.True(fragmented - before > 200L << 20, $"expected the freed blocks to stay resident: {before >> 20} → {fragmented >> 20} MB");

            trimmer.Step();
            long after = NativeHeap.ResidentBytes();
            Assert.Equal(1, trimmer.Trims);
            Assert.True(fragmented - after > 200L << 20, $"trim released too little: {fragmented >> 20} → {after >> 20} MB");

            // within the margin of the last trim: nothing to do
            trimmer.Step();
            Assert.Equal(1, trimmer.Trims);
        }
        finally
        {
            foreach (var p in kept) if (p != IntPtr.Zero) Marshal.FreeHGlobal(p);
        }
    }
}
