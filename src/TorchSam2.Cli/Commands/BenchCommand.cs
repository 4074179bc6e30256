using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using TorchSam2.Configs;
using TorchSam2.Modeling;
using TorchSam2.Torch;
using static TorchSam2.Torch.torch;

namespace TorchSam2.Cli.Commands;

// Timings for the image path. Weights do not change the arithmetic, so a checkpoint is optional:
// without one the model keeps its initial weights.
internal static class BenchCommand
{
    public static Command Create()
    {
        var config = new Option<string>("--config") { Description = "config file or built-in name", DefaultValueFactory = _ => "sam2.1_hiera_t" };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "optional weights" };
        var imageSize = new Option<int>("--image-size") { Description = "override image_size (0 = the config's)", DefaultValueFactory = _ => 0 };
        var repeats = new Option<int>("--repeats") { Description = "timed repeats after one warm-up", DefaultValueFactory = _ => 5 };
        var json = new Option<bool>("--json") { Description = "print JSON" };
        var device = Common.Device();
        var threads = Common.Threads();
        var cmd = new Command("bench", "Time the image encoder and predict (median and min over repeats, warm-up excluded) and report peak RSS");
        foreach (var o in new Option[] { config, checkpoint, imageSize, repeats, json, device, threads }) cmd.Options.Add(o);
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
            results["peak_rss_mb"] = Process.GetCurrentProcess().PeakWorkingSet64 / 1e6;
            if (pr.GetValue(json)) Console.WriteLine(JsonSerializer.Serialize(results, new JsonSerializerOptions { WriteIndented = true }));
            else foreach (var (k, v) in results) Console.WriteLine($"{k,-18} {(v is Stats s ? $"median {s.median:F1} ms, min {s.min:F1} ms" : v)}");
            return 0;
        }));
        return cmd;
    }

    private sealed record Stats(double median, double min);

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
