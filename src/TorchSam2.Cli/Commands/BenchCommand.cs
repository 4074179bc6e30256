using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using TorchSam2.Configs;
using TorchSam2.Modeling;
using TorchSam2.Torch;
using static TorchSam2.Torch.torch;

namespace TorchSam2.Cli.Commands;

// Timings for the image path (and, with --video-frames, video tracking). Weights do not change the
// arithmetic, so a checkpoint is optional: without one the model keeps its initial weights.
// tools/pytorch/bench.py times the official PyTorch code with the same protocol and JSON keys.
internal static class BenchCommand
{
    public static Command Create()
    {
        var config = new Option<string>("--config") { Description = "config file or built-in name", DefaultValueFactory = _ => "sam2.1_hiera_t" };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "optional weights" };
        var imageSize = new Option<int>("--image-size") { Description = "override image_size (0 = the config's)", DefaultValueFactory = _ => 0 };
        var repeats = new Option<int>("--repeats") { Description = "timed repeats after one warm-up", DefaultValueFactory = _ => 5 };
        var videoFrames = new Option<int>("--video-frames")
        {
            Description = "also track 1 and 3 objects over N synthetic frames of a 720x1280 video (per-frame median and min, frame 0 excluded)",
            DefaultValueFactory = _ => 0,
        };
        var json = new Option<bool>("--json") { Description = "print JSON" };
        var device = Common.Device();
        var threads = Common.Threads();
        var cmd = new Command("bench", "Time the image encoder and predict (median and min over repeats, warm-up excluded) and report peak RSS");
        foreach (var o in new Option[] { config, checkpoint, imageSize, repeats, videoFrames, json, device, threads }) cmd.Options.Add(o);
        cmd.SetAction(pr => Common.Guard(() =>
        {
            Common.ApplyThreads(pr.GetValue(threads));
            var dev = Common.ParseDevice(pr.GetValue(device)!);
            var cfgArg = pr.GetValue(config)!;
            var cfg = File.Exists(cfgArg) ? Sam2ConfigLoader.Load(cfgArg) : Sam2ConfigLoader.LoadBuiltIn(cfgArg);
            if (pr.GetValue(imageSize) > 0) cfg = cfg.WithImageSize(pr.GetValue(imageSize));
            int n = Math.Max(1, pr.GetValue(repeats));
            using var model = BuildSam.build_sam2(cfg, pr.GetValue(checkpoint), dev);
            using var predictor = new Sam2ImagePredictor(model);
            manual_seed(0);
            using var image = randint(0, 256, [720, 1280, 3], ScalarType.Byte);
            var results = new Dictionary<string, object>();
            results["config"] = cfgArg;
            results["image_size"] = model.image_size;
            results["threads"] = get_num_threads();
            results["device"] = dev.ToString();
            results["libtorch"] = torch.Version;
            results["set_image_ms"] = Time(n, () => predictor.SetImage(image), dev);
            results["predict_point_ms"] = Time(n, () => predictor.Predict([[640f, 360f]], [1]).Dispose(), dev);
            results["predict_box_ms"] = Time(n, () => predictor.Predict(box: [100f, 100f, 900f, 600f], multimaskOutput: false).Dispose(), dev);
            results["peak_rss_mb"] = PeakRssMb();
            if (pr.GetValue(videoFrames) > 0)
            {
                // same weights, with the overrides build_sam2_video_predictor applies
                using var video = Sam2VideoPredictor.FromConfig(model, BuildSam.VideoPredictorConfig(cfg));
                manual_seed(1);
                using var frames = randn([Math.Max(2, pr.GetValue(videoFrames)), 3, model.image_size, model.image_size]).to(dev);
                results["video_frames"] = frames.size(0);
                results["track_1obj_ms_per_frame"] = Track(video, frames, 1, dev);
                results["track_3obj_ms_per_frame"] = Track(video, frames, 3, dev);
                results["peak_rss_after_video_mb"] = PeakRssMb();
            }
            if (pr.GetValue(json)) Console.WriteLine(JsonSerializer.Serialize(results, new JsonSerializerOptions { WriteIndented = true }));
            else foreach (var (k, v) in results) Console.WriteLine($"{k,-18} {(v is Stats s ? $"median {s.median:F1} ms, min {s.min:F1} ms" : v)}");
            return 0;
        }));
        return cmd;
    }

    private sealed record Stats(double median, double min);

    private const int VideoHeight = 720, VideoWidth = 1280;
    private static readonly float[][] ObjClicks = [[640f, 360f], [320f, 200f], [960f, 540f]];

    private static double PeakRssMb()
    {
        using var p = Process.GetCurrentProcess();
        return p.PeakWorkingSet64 / 1e6;
    }

    // One click per object on frame 0, then propagation; each yielded frame after frame 0 is timed
    // from the previous yield (memory attention + decoder + memory encoder + the frame's image features).
    private static Stats Track(Sam2VideoPredictor predictor, Tensor frames, int objects, Device dev)
    {
        using var state = predictor.InitState(frames, VideoHeight, VideoWidth);
        for (int k = 0; k < objects; k++)
            predictor.AddNewPointsOrBox(state, 0, k + 1, [ObjClicks[k]], [1]).videoResMasks.Dispose();
        var times = new List<double>();
        var sw = Stopwatch.StartNew();
        foreach (var (frameIdx, _, masks) in predictor.PropagateInVideo(state))
        {
            masks.Dispose();
            if (dev.Type == DeviceType.CUDA) cuda.synchronize(dev.Index < 0 ? 0 : dev.Index);
            if (frameIdx != 0) times.Add(sw.Elapsed.TotalMilliseconds);
            sw.Restart();
        }
        times.Sort();
        return new Stats(times[times.Count / 2], times[0]);
    }

    private static Stats Time(int repeats, Action body, Device dev)
    {
        body(); // warm-up: allocator, caches, lazy init
        var times = new List<double>();
        for (int i = 0; i < repeats; i++)
        {
            var sw = Stopwatch.StartNew();
            body();
            if (dev.Type == DeviceType.CUDA) cuda.synchronize(dev.Index < 0 ? 0 : dev.Index);
            times.Add(sw.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        return new Stats(times[times.Count / 2], times[0]);
    }
}
