using System.Text.Json;

namespace TorchSam2.Tests.Cli;

// `torchsam2 bench` end to end on the micro reference model: every part runs and reports its keys in the
// shape tools/pytorch/bench.py prints (tools/pytorch/bench_table.py reads both). Timings are not asserted:
// they belong to the benchmark itself.
public class BenchCommandTests
{
    [Fact]
    public void BenchReportsEveryPartWithMedianAndMin()
    {
        var caseDir = Path.Combine(TestPaths.ParityDir, "micro_image");
        if (!Directory.Exists(caseDir))
        {
            Assert.False(CliProcess.InCi, $"CI=true but {caseDir} is missing");
            return;
        }
        Assert.True(File.Exists(CliProcess.Dll()), $"build the CLI first: {CliProcess.Dll()} is missing");
        var (code, stdout, stderr) = CliProcess.Run(600_000,
            "bench", "--config", Path.Combine(caseDir, "model.yaml"), "--checkpoint", Path.Combine(caseDir, "weights.safetensors"),
            "--repeats", "2", "--long-repeats", "1", "--auto", "--train", "--video-frames", "3", "--threads", "1", "--json");
        Assert.True(code == 0, stdout + stderr);

        using var json = JsonDocument.Parse(stdout);
        var r = json.RootElement;
        Assert.Equal(1, r.GetProperty("threads").GetInt32());
        foreach (var key in new[] { "set_image_ms", "predict_point_ms", "predict_box_ms", "auto_ms", "track_1obj_ms_per_frame", "track_3obj_ms_per_frame",
                                    "train_step_decoder_ms", "train_step_full_ms" })
        {
            var s = r.GetProperty(key);
            double median = s.GetProperty("median").GetDouble(), min = s.GetProperty("min").GetDouble();
            Assert.True(min > 0 && min <= median, $"{key}: min {min}, median {median}");
        }
        Assert.Equal(3, r.GetProperty("train_objects").GetInt32());
        Assert.Equal(7, r.GetProperty("train_corrections").GetInt32());
        Assert.Equal(3, r.GetProperty("video_frames").GetInt32());
        Assert.True(r.GetProperty("auto_masks").GetInt32() >= 0);
        Assert.Equal("1024x1024", r.GetProperty("auto_image").GetString());
        // peaks are of the whole process so far: they can only grow from part to part
        double[] peaks = new[] { "peak_rss_mb", "peak_rss_after_auto_mb", "peak_rss_after_video_mb", "peak_rss_after_train_mb" }
            .Select(k => r.GetProperty(k).GetDouble()).ToArray();
        Assert.True(peaks[0] > 0);
        for (int i = 1; i < peaks.Length; i++) Assert.True(peaks[i] >= peaks[i - 1], $"peak {i}: {peaks[i]} < {peaks[i - 1]}");
    }
}
