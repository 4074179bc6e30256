using System.Diagnostics;
using System.Runtime.InteropServices;
using TorchSam2.Checkpoints;
using TorchSam2.Configs;
using TorchSam2.Modeling;
using Xunit.Abstractions;

namespace TorchSam2.Tests.Memory;

// Thousands of predictions must hold flat memory: every tensor a Predict call makes is disposed by the
// predictor or by the caller's using, none is left to the finalizer (TorchSharp counts live tensors per
// thread, so anything leaked shows up in the count), and the native heap libtorch allocates from (glibc's
// malloc, measured with mallinfo2) does not grow. RSS is reported, not asserted: it also holds the .NET GC's
// gen0 budget, which TorchSharp's per-op wrapper objects fill (tens of MB here; DOTNET_GCgen0size caps it).
[Collection(NativeMemory.Collection)]
public class PredictionLeakTests(ITestOutputHelper output)
{
    [Fact]
    public void TenThousandPredictionsHoldLiveTensorsAndRssFlat()
    {
        if (MicroPredictor() is not { } loaded) return;
        var (model, image, predictor) = loaded;
        using var _m = model;
        using var _i = image;
        using var _p = predictor;
        int h = (int)image.size(0), w = (int)image.size(1);

        long liveStart = 0, rssWarm = 0, managedWarm = 0, heapWarm = 0;
        var heapAt = new long[5];
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < 10_000; i++)
        {
            // Vary the prompt so no cache can hide a leak: points, a box, multimask on and off.
            float x = (i * 37 % (w - 2)) + 1, y = (i * 53 % (h - 2)) + 1;
            using var p = i % 3 == 0
                ? predictor.Predict(box: [1, 1, Math.Max(2, x), Math.Max(2, y)], multimaskOutput: false)
                : predictor.Predict(pointCoords: [[x, y]], pointLabels: [i % 2], multimaskOutput: i % 2 == 0);
            Assert.True(p.Masks.numel() > 0);
            if (i % 2000 == 1999)
            {
                NativeMemory.FullCollect();
                heapAt[i / 2000] = MallocInUse();
                output.WriteLine($"after {i + 1}: native heap in use {heapAt[i / 2000] >> 20} MiB, RSS {Process.GetCurrentProcess().WorkingSet64 >> 20} MiB");
            }
            if (i == 499)
            {
                // Managed wrappers (TorchSharp's Tensor objects are finalizable) are collected first, so what is
                // compared is native memory the predictions kept.
                NativeMemory.FullCollect();
                liveStart = TorchRuntime.LiveTensorCount;
                rssWarm = Process.GetCurrentProcess().WorkingSet64;
                managedWarm = GC.GetTotalMemory(false);
                heapWarm = MallocInUse();
            }
        }
        NativeMemory.FullCollect();
        long liveEnd = TorchRuntime.LiveTensorCount;
        long rssEnd = Process.GetCurrentProcess().WorkingSet64;
        long managedEnd = GC.GetTotalMemory(false);
        long heapEnd = MallocInUse();
        output.WriteLine($"10,000 predictions in {sw.Elapsed.TotalSeconds:F1} s; live tensors {liveStart} -> {liveEnd}; " +
                         $"native heap in use {heapWarm >> 20} -> {heapEnd >> 20} MiB; managed heap {managedWarm >> 20} -> {managedEnd >> 20} MiB; " +
                         $"RSS {rssWarm >> 20} -> {rssEnd >> 20} MiB");
        Assert.True(liveEnd <= liveStart, $"live tensors grew from {liveStart} to {liveEnd}");
        // A leak grows with the number of predictions; caches and high-water marks (libtorch's, the runtime's
        // handle tables) level off. So 4,000 more predictions must add (almost) nothing: a leak of 1 KB per
        // prediction adds 4 MB. The smaller of the last two samples is taken, so one late allocation elsewhere in
        // the process (the heap is the whole process's) does not count as a trend.
        if (heapWarm >= 0)
        {
            long later = Math.Min(heapAt[3], heapAt[4]);
            Assert.True(later - heapAt[1] < 3L * 1024 * 1024,
                $"native heap in use kept growing: {heapAt[1] >> 20} MiB after 4,000 predictions, {heapAt[3] >> 20} MiB after 8,000, {heapAt[4] >> 20} MiB after 10,000");
        }
    }

    [Fact]
    public void RepeatedSetImageLeavesNoTensorsBehind()
    {
        if (MicroPredictor() is not { } loaded) return;
        var (model, image, predictor) = loaded;
        using var _m = model;
        using var _i = image;
        using var _p = predictor;
        long live = NativeMemory.Live();
        for (int i = 0; i < 50; i++) predictor.SetImage(image);
        long after = NativeMemory.Live();
        output.WriteLine($"live tensors after 1 and 51 SetImage calls: {live}, {after}");
        Assert.Equal(live, after);
    }

    // The micro_image case's model with its image set (null when the parity data is absent outside CI).
    private static (SAM2Base model, TorchSharp.torch.Tensor image, Sam2ImagePredictor predictor)? MicroPredictor()
    {
        string dir = ParityData.CaseDir("micro_image");
        if (!ParityData.Require(Path.Combine(dir, "weights.safetensors"))) return null;
        var model = BuildSam.build_sam2(Sam2ConfigLoader.Load(Path.Combine(dir, "model.yaml")), Path.Combine(dir, "weights.safetensors"));
        var rec = SafeTensors.Read(Path.Combine(dir, "inputs.safetensors")).Tensors["image"];
        var image = rec.ToTensor();
        var predictor = new Sam2ImagePredictor(model);
        predictor.SetImage(image);
        return (model, image, predictor);
    }

    // glibc's mallinfo2: bytes in use in the malloc heap (arenas) plus mmapped chunks; -1 elsewhere.
    private static long MallocInUse()
    {
        if (!OperatingSystem.IsLinux()) return -1;
        try
        {
            var m = mallinfo2();
            return (long)(m.uordblks + m.hblkhd);
        }
        catch (EntryPointNotFoundException) { return -1; }
        catch (DllNotFoundException) { return -1; }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MallInfo2
    {
        public nuint arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
    }

    [DllImport("libc", EntryPoint = "mallinfo2")]
    private static extern MallInfo2 mallinfo2();
}
