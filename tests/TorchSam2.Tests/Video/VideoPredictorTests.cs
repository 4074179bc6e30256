using TorchSam2.IO;
using TorchSam2.Parity;
using TorchSharp;
using TorchSharp.Modules;
using TorchSam2.Utils;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace TorchSam2.Tests.Video;

public sealed class VideoPredictorTests(ITestOutputHelper output)
{
    private static string CaseDir => Path.Combine(TestPaths.ParityDir, "micro_video");

    private static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>False (test returns) when the case is absent outside CI; fails under CI=true.</summary>
    private static bool HaveCase()
    {
        if (File.Exists(Path.Combine(CaseDir, "case.json"))) return true;
        if (IsCi) Assert.Fail($"parity case missing: {CaseDir}");
        return false;
    }

    /// <summary>The micro_video model (with its weights) as build_sam2_video_predictor builds it.</summary>
    private static Sam2VideoPredictor MicroPredictor() =>
        Sam2VideoPredictor.Build(Path.Combine(CaseDir, "model.yaml"), Path.Combine(CaseDir, "weights.safetensors"));

    private static VideoInferenceState RandomVideo(Sam2VideoPredictor p, int frames = 3, int height = 48, int width = 64)
    {
        manual_seed(0);
        using var x = randn([frames, 3, p.ImageSize, p.ImageSize]);
        return p.InitState(x, height, width);
    }

    [Fact]
    public void MicroVideoCaseMatchesPyTorch()
    {
        if (!HaveCase()) return;
        var c = ParityCase.Load(CaseDir);
        Assert.Equal("video", c.Kind);
        var report = ParityRunner.Run(CaseDir, chk => output.WriteLine(chk.ToString()));
        foreach (var e in report.Errors) output.WriteLine("error: " + e);
        foreach (var n in report.NotImplemented) output.WriteLine("not implemented: " + n);
        output.WriteLine(report.Summary);
        Assert.True(report.Passed, report.Summary + "\n" + string.Join("\n", report.Errors.Concat(report.NotImplemented)
            .Concat(report.Checks.Where(x => !x.Passed).Select(x => x.ToString()))));
        // 2 prompt steps + 3 propagations of 6 frames
        Assert.Equal(21, report.Checks.Count);
        Assert.All(report.Checks, chk => Assert.True(chk.MaskAgreement >= 0.995, chk.ToString()));
    }

    [Fact]
    public void FrameIndexOutOfRangeIsRejected()
    {
        if (!HaveCase()) return;
        using var p = MicroPredictor();
        using var s = RandomVideo(p);
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => p.AddNewPointsOrBox(s, 3, 1, [[10f, 10f]], [1]));
        Assert.Contains("frame index 3", ex.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => p.AddNewPointsOrBox(s, -1, 1, [[10f, 10f]], [1]));
        using var mask = zeros([48, 64], ScalarType.Bool);
        Assert.Throws<ArgumentOutOfRangeException>(() => p.AddNewMask(s, 5, 1, mask));
        Assert.Throws<ArgumentOutOfRangeException>(() => p.ClearAllPromptsInFrame(s, 7, 1));
        // nothing was registered by the failed calls
        Assert.Empty(s.ObjectIds);

        var (_, _, m) = p.AddNewPointsOrBox(s, 0, 1, [[10f, 10f]], [1]);
        m.Dispose();
        Assert.Throws<ArgumentOutOfRangeException>(() => p.PropagateInVideo(s, startFrameIdx: 3));
    }

    [Fact]
    public void UnknownObjectIdIsRejected()
    {
        if (!HaveCase()) return;
        using var p = MicroPredictor();
        using var s = RandomVideo(p);
        var (_, _, m) = p.AddNewPointsOrBox(s, 0, 1, [[20f, 20f]], [1]);
        m.Dispose();
        var ex = Assert.Throws<KeyNotFoundException>(() => p.RemoveObject(s, 99, strict: true));
        Assert.Contains("99", ex.Message);
        Assert.Throws<KeyNotFoundException>(() => p.ClearAllPromptsInFrame(s, 0, 99));
        // as upstream, a non-strict removal of an unknown id is a no-op
        var (ids, updated) = p.RemoveObject(s, 99);
        Assert.Equal([1], ids);
        Assert.Empty(updated);
    }

    [Fact]
    public void PropagatingWithoutPromptsFails()
    {
        if (!HaveCase()) return;
        using var p = MicroPredictor();
        using var s = RandomVideo(p);
        Assert.Throws<InvalidOperationException>(() => p.PropagateInVideo(s));
    }

    [Fact]
    public void EmptyOrMissingFrameFolderIsRejected()
    {
        if (!HaveCase()) return;
        using var p = MicroPredictor();
        var dir = Path.Combine(Path.GetTempPath(), "torchsam2-tests", "empty_" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "notes.txt"), "not a frame");
        try
        {
            var ex = Assert.Throws<ArgumentException>(() => p.InitState(dir));
            Assert.Contains("no JPEG/PNG frames", ex.Message);
            Assert.Throws<DirectoryNotFoundException>(() => p.InitState(Path.Combine(dir, "missing")));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void FolderSessionTracksAddsAndRemovesObjects()
    {
        if (!HaveCase()) return;
        using var p = MicroPredictor();
        var dir = Path.Combine(Path.GetTempPath(), "torchsam2-tests", "frames_" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            // three 40x30 frames with a bright square moving right; names sort numerically (2 < 10)
            int[] names = [0, 2, 10];
            for (int f = 0; f < names.Length; f++)
            {
                var px = new byte[30 * 40 * 3];
                for (int y = 8; y < 20; y++)
                    for (int x = 5 + 4 * f; x < 17 + 4 * f; x++)
                        for (int ch = 0; ch < 3; ch++) px[(y * 40 + x) * 3 + ch] = 230;
                new RgbImage(px, 30, 40).Save(Path.Combine(dir, $"{names[f]}.png"));
            }
            using var s = p.InitState(dir);
            Assert.Equal(3, s.NumFrames);
            Assert.Equal(30, s.VideoHeight);
            Assert.Equal(40, s.VideoWidth);

            var (f0, ids0, m0) = p.AddNewPointsOrBox(s, 0, 7, [[10f, 14f]], [1]);
            using (m0)
            {
                Assert.Equal(0, f0);
                Assert.Equal([7], ids0);
                Assert.Equal([1L, 1, 30, 40], m0.shape);
            }
            var (_, ids1, m1) = p.AddNewPointsOrBox(s, 1, 3, null, null, box: [2f, 2f, 20f, 25f]);
            using (m1)
            {
                Assert.Equal([7, 3], ids1);
                Assert.Equal([2L, 1, 30, 40], m1.shape);
            }

            var frames = new List<int>();
            foreach (var (f, ids, masks) in p.PropagateInVideo(s))
            {
                using (masks)
                {
                    frames.Add(f);
                    Assert.Equal([7, 3], ids);
                    Assert.Equal([2L, 1, 30, 40], masks.shape);
                    Assert.True(masks.isfinite().all().ToBoolean());
                }
            }
            Assert.Equal([0, 1, 2], frames);

            // reverse from the last frame, limited to one step back
            var rev = p.PropagateInVideo(s, startFrameIdx: 2, maxFrameNumToTrack: 1, reverse: true).ToList();
            Assert.Equal([2, 1], rev.Select(r => r.frameIdx));
            foreach (var r in rev) r.videoResMasks.Dispose();

            var (remaining, updated) = p.RemoveObject(s, 7);
            Assert.Equal([3], remaining);
            Assert.Equal([0], updated.Select(u => u.frameIdx));
            Assert.Equal([1L, 1, 30, 40], updated[0].videoResMasks.shape);
            foreach (var u in updated) u.videoResMasks.Dispose();

            p.ResetState(s);
            Assert.Empty(s.ObjectIds);
            Assert.Throws<InvalidOperationException>(() => p.PropagateInVideo(s));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void FillHolesTurnsSmallBackgroundHolesIntoForeground()
    {
        // 1x1x6x6 foreground with a 1-pixel hole and a large background border region
        var values = new float[36];
        for (int i = 0; i < 36; i++) values[i] = -5f;
        for (int y = 1; y < 5; y++) for (int x = 1; x < 5; x++) values[y * 6 + x] = 3f;
        values[2 * 6 + 2] = -1f;
        using var m = tensor(values, new long[] { 1, 1, 6, 6 });
        using var filled = MaskPostprocess.fill_holes_in_mask_scores(m, 8);
        var r = filled.ToArray<float>();
        Assert.Equal(0.1f, r[2 * 6 + 2], 5);
        Assert.Equal(-5f, r[0]);
        Assert.Equal(3f, r[1 * 6 + 1]);
        Assert.Throws<ArgumentOutOfRangeException>(() => MaskPostprocess.fill_holes_in_mask_scores(m, 0));
    }
}
