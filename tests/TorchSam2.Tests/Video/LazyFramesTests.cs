using TorchSharp;
using TorchSharp.Modules;
using TorchSam2.IO;
using TorchSam2.Utils;
using static TorchSharp.torch;

namespace TorchSam2.Tests.Video;

// Frames read from files on demand must give exactly the masks of the all-frames-in-memory path,
// while holding no more than the cache.
public sealed class LazyFramesTests
{
    private static string CaseDir => Path.Combine(TestPaths.ParityDir, "micro_video");

    [Fact]
    public void LazyFolderFramesMatchInMemoryFramesWithABoundedCache()
    {
        if (!File.Exists(Path.Combine(CaseDir, "case.json")))
        {
            Assert.False(string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase), $"parity case missing: {CaseDir}");
            return;
        }
        using var p = Sam2VideoPredictor.Build(Path.Combine(CaseDir, "model.yaml"), Path.Combine(CaseDir, "weights.safetensors"));
        var dir = Path.Combine(Path.GetTempPath(), "torchsam2-tests", "lazy_" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        const int n = 24, h = 36, w = 48;
        var images = new List<RgbImage>();
        for (int f = 0; f < n; f++)
        {
            var px = new byte[h * w * 3];
            for (int y = 10; y < 24; y++)
                for (int x = 4 + f; x < 18 + f; x++)
                    for (int c = 0; c < 3; c++) px[(y * w + x) * 3 + c] = (byte)(200 + c * 20);
            var img = new RgbImage(px, h, w);
            img.Save(Path.Combine(dir, $"{f:D5}.png"));
            images.Add(img);
        }
        try
        {
            List<float[]> Track(VideoInferenceStateFactory make)
            {
                using var s = make();
                p.AddNewPointsOrBox(s, 0, 1, [[10f, 16f]], [1]).videoResMasks.Dispose();
                var result = new List<float[]>();
                foreach (var (_, _, m) in p.PropagateInVideo(s))
                    using (m) result.Add(m.ToArray<float>());
                return result;
            }

            var transforms = new SAM2Transforms(p.ImageSize, 0.0);
            var inMemory = Track(() =>
            {
                using var scope = NewDisposeScope();
                var frames = stack(images.Select(i => transforms.ApplyVideoFrame(i, CPU)).ToArray());
                return p.InitState(frames, h, w);
            });
            LazyFrameSource? source = null;
            var lazy = Track(() =>
            {
                source = LazyFrameSource.FromFolder(dir, p.ImageSize, CPU, cacheSize: 3);
                return p.InitState(source);
            });
            Assert.Equal(n, lazy.Count);
            for (int f = 0; f < n; f++) Assert.Equal(inMemory[f], lazy[f]);
            // Each frame was decoded once going forward (frame 0 again after it left the 3-frame cache at most once).
            Assert.InRange(source!.DecodeCount, n, n + 2);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private delegate VideoInferenceState VideoInferenceStateFactory();

    [Fact]
    public void AddedMaskComesBackAsTheFrameOutput()
    {
        // use_mask_input_as_output_without_sam: a mask prompt is the frame's output (logits ±10),
        // so after resizing to the model and back the mask must come back almost pixel for pixel.
        if (!File.Exists(Path.Combine(CaseDir, "case.json")))
        {
            Assert.False(string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase), $"parity case missing: {CaseDir}");
            return;
        }
        using var p = Sam2VideoPredictor.Build(Path.Combine(CaseDir, "model.yaml"), Path.Combine(CaseDir, "weights.safetensors"));
        manual_seed(0);
        using var frames = randn([2, 3, p.ImageSize, p.ImageSize]);
        using var s = p.InitState(frames, 120, 160);
        using var mask = zeros([120, 160], ScalarType.Bool);
        mask[20..80, 30..110] = ones([60, 80], ScalarType.Bool);
        var (frame, ids, logits) = p.AddNewMask(s, 1, 4, mask);
        using (logits)
        {
            Assert.Equal(1, frame);
            Assert.Equal([4], ids);
            Assert.Equal(new long[] { 1, 1, 120, 160 }, logits.shape);
            using var agree = (logits[0, 0] > 0).eq(mask).to(ScalarType.Float32).mean();
            Assert.True(agree.ToSingle() > 0.99f, $"agreement {agree.ToSingle()}");
            using var inside = logits[0, 0, 50, 70];
            Assert.True(inside.ToSingle() > 5, "mask logits inside should be about +10");
        }
    }

    [Fact]
    public void LazySourceRejectsOutOfRangeFrames()
    {
        var dir = Path.Combine(Path.GetTempPath(), "torchsam2-tests", "lazy1_" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            new RgbImage(new byte[8 * 8 * 3], 8, 8).Save(Path.Combine(dir, "0.png"));
            using var source = LazyFrameSource.FromFolder(dir, 64, CPU);
            Assert.Equal(1, source.NumFrames);
            var ex = Assert.Throws<ArgumentOutOfRangeException>(() => source.GetFrame(1));
            Assert.Contains("frame 1 is out of range", ex.Message);
            using var f0 = source.GetFrame(0);
            Assert.Equal(new long[] { 3, 64, 64 }, f0.shape);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}

public sealed class VideoFramePreprocessingTests
{
    [Fact]
    public void VideoFramesAreResizedLikePil()
    {
        // Fixture made by tools/fixtures/make_pil_resize_fixture.py with PIL's default resize.
        var src = RgbImage.Load(TestPaths.Fixture("frame_30x40.png"));
        var pil = RgbImage.Load(TestPaths.Fixture("frame_30x40_pil16.png"));
        var transforms = new SAM2Transforms(16, 0.0);
        using var scope = NewDisposeScope();
        var x = transforms.ApplyVideoFrame(src, CPU);
        var mean = tensor(new float[] { 0.485f, 0.456f, 0.406f }, [3, 1, 1]);
        var std = tensor(new float[] { 0.229f, 0.224f, 0.225f }, [3, 1, 1]);
        var levels = ((x * std + mean) * 255).round().permute(1, 2, 0).contiguous().to(ScalarType.Int32).ToArray<int>();
        int maxDiff = 0;
        for (int i = 0; i < levels.Length; i++) maxDiff = Math.Max(maxDiff, Math.Abs(levels[i] - pil.Pixels[i]));
        Assert.True(maxDiff <= 1, $"max difference from PIL {maxDiff} levels");
    }
}
