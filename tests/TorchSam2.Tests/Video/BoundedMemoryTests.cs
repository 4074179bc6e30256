using TorchSharp;
using TorchSharp.Modules;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace TorchSam2.Tests.Video;

// The live-tensor counter and the working set are process-wide: nothing else may run beside these tests.

[Collection(NativeMemory.Collection)]
public sealed class BoundedMemoryTests(ITestOutputHelper output)
{
    private static string CaseDir => Path.Combine(TestPaths.ParityDir, "micro_video");

    private static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    private static bool HaveCase()
    {
        if (File.Exists(Path.Combine(CaseDir, "weights.safetensors"))) return true;
        if (IsCi) Assert.Fail($"parity case missing: {CaseDir}");
        return false;
    }

    private const int VideoSize = 64;

    /// <summary>A bright disc moving along a diagonal over a dark background, already "normalized" (T×3×S×S).</summary>
    private static Tensor MovingDisc(int frames, int s)
    {
        using var scope = NewDisposeScope();
        var ys = arange(0, s, 1, ScalarType.Float32).reshape(1, s, 1);
        var xs = arange(0, s, 1, ScalarType.Float32).reshape(1, 1, s);
        var t = arange(0, frames, 1, ScalarType.Float32).reshape(frames, 1, 1);
        // the disc moves back and forth so it stays in the frame however long the video
        var phase = (t * (2 * Math.PI / 120.0)).sin();
        var cx = phase * (s * 0.25) + s * 0.5;
        var cy = phase * (s * 0.15) + s * 0.5;
        var d2 = (xs - cx).pow(2) + (ys - cy).pow(2);
        var inside = (d2 < (s * 0.12) * (s * 0.12)).@float();
        var img = inside * 3.0 - 1.5; // T×S×S
        return img.unsqueeze(1).expand(-1, 3, -1, -1).contiguous().MoveToOuterDisposeScope();
    }

    private static void FullCollect()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    [Fact]
    public void BoundedMemoryStaysFlatOverLongVideoAndKeepsMasks()
    {
        if (!HaveCase()) return;
        const int T = 300, Compare = 30;
        using var _ = inference_mode();
        using var p = Sam2VideoPredictor.Build(Path.Combine(CaseDir, "model.yaml"), Path.Combine(CaseDir, "weights.safetensors"));
        output.WriteLine($"memory window: {p.NonCondMemoryWindow} frames");
        // one frame's backbone features cached, as upstream's cached_features (more would add to the resident set)
        Assert.Equal(1, p.FeatureCacheSize);
        using var frames = MovingDisc(T, p.ImageSize);
        // the disc centre on frame 0, in video pixels
        float[][] click = [[VideoSize * 0.5f, VideoSize * 0.5f]];

        // reference: unbounded tracking of the first frames
        var reference = new List<float[]>();
        using (var s = p.InitState(frames, VideoSize, VideoSize))
        {
            var (_, _, m0) = p.AddNewPointsOrBox(s, 0, 1, click, [1]);
            m0.Dispose();
            foreach (var (f, _, m) in p.PropagateInVideo(s, maxFrameNumToTrack: Compare - 1))
                using (m) reference.Add(m.ToArray<float>());
        }
        Assert.Equal(Compare, reference.Count);

        using var state = p.InitState(frames, VideoSize, VideoSize);
        state.BoundedMemory = true;
        var (_, _, m1) = p.AddNewPointsOrBox(state, 0, 1, click, [1]);
        m1.Dispose();
        var live = new long[T];
        var rss = new long[T];
        int n = 0;
        double maxDiff = 0;
        long foreground = 0;
        foreach (var (f, _, m) in p.PropagateInVideo(state))
        {
            using (m)
            {
                Assert.Equal(n, f);
                if (f < Compare)
                {
                    var got = m.ToArray<float>();
                    var want = reference[f];
                    Assert.Equal(want.Length, got.Length);
                    for (int i = 0; i < got.Length; i++) maxDiff = Math.Max(maxDiff, Math.Abs(got[i] - want[i]));
                }
                using var fg = (m > 0.0).sum();
                foreground += fg.ToInt64();
            }
            FullCollect();
            live[n] = TorchRuntime.LiveTensorCount;
            rss[n] = Environment.WorkingSet;
            n++;
        }
        Assert.Equal(T, n);
        output.WriteLine($"max |bounded - unbounded| over the first {Compare} frames: {maxDiff}");
        Assert.True(maxDiff <= 1e-5, $"bounded masks differ from unbounded ones by {maxDiff}");
        // the object is actually tracked (not an empty mask everywhere)
        Assert.True(foreground > 0, "no foreground pixel in any frame");

        double liveFirst = live.Take(100).Average(), liveLast = live.Skip(T - 100).Average();
        double rssFirst = rss.Take(100).Average() / (1 << 20), rssLast = rss.Skip(T - 100).Average() / (1 << 20);
        output.WriteLine($"live tensors: first 100 frames {liveFirst:F1}, last 100 frames {liveLast:F1} (max {live.Max()})");
        output.WriteLine($"RSS MiB: first 100 frames {rssFirst:F1}, last 100 frames {rssLast:F1}");
        Assert.True(liveLast <= liveFirst * 1.05, $"live tensors grew from {liveFirst:F1} to {liveLast:F1}");
        Assert.True(rssLast <= rssFirst * 1.05, $"RSS grew from {rssFirst:F1} MiB to {rssLast:F1} MiB");
        // stored tracked outputs stay within the window
        Assert.True(state.StoredTrackedOutputCount <= p.NonCondMemoryWindow + 1, $"{state.StoredTrackedOutputCount} tracked outputs stored");
    }
}
