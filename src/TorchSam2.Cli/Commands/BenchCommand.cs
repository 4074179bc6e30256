using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using TorchSam2.Configs;
using TorchSam2.IO;
using TorchSam2.Utils;
using TorchSam2.Modeling;
using TorchSharp;
using TorchSharp.Modules;
using TorchSam2.Training;
using static TorchSharp.torch;

namespace TorchSam2.Cli.Commands;

// Timings of the image path and, on request, automatic masks, video tracking and training steps. Weights do not
// change the arithmetic of a forward pass, so a checkpoint is optional (automatic masks do depend on them: how many
// masks survive the filters sets the post-processing work). tools/pytorch/bench.py times the official PyTorch code
// with the same protocol and JSON keys.
internal static class BenchCommand
{
    public static Command Create()
    {
        var config = new Option<string>("--config") { Description = "config file or built-in name", DefaultValueFactory = _ => "sam2.1_hiera_t" };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "optional weights (.pt or .safetensors)" };
        var imageSize = Common.Int("--image-size", $"override image_size (0 = the config's; else a multiple of 16 in 64..{Limits.MaxModelImageSize})", 0, 0, Limits.MaxModelImageSize,
                                   v => Common.ImageSizeError("--image-size", v));
        var imagePath = new Option<string?>("--image") { Description = "image for set_image, predict and --auto (default: seeded random 720x1280 pixels, 1024x1024 for --auto)" };
        var repeats = Common.Int("--repeats", "timed repeats after one warm-up (1..10000)", 5, 1, 10_000);
        var longRepeats = Common.Int("--long-repeats", "timed repeats for --auto and --train (minutes each on a CPU), after one warm-up (1..1000)", 2, 1, 1000);
        var videoFrames = Common.Int("--video-frames",
            "also track 1 and 3 objects over N synthetic frames of a 720x1280 video (per-frame median and min, frame 0 excluded; 0 or 2..10000)", 0, 0, 10_000,
            v => v == 1 ? "--video-frames must be 0 or at least 2 (frame 0 is not timed), got 1" : null);
        var auto = new Option<bool>("--auto") { Description = "also time automatic mask generation (32x32 points, default filters)" };
        var train = new Option<bool>("--train")
        {
            Description = $"also time training steps on one image with {TrainObjects} objects and {TrainCorrections} correction clicks: decoder only (image encoder frozen) and full",
        };
        var serve = new Option<bool>("--serve")
        {
            Description = "also time a click through torchsam2 serve's HTTP API on loopback (round trip as the client sees it, and the server's decoder time from Server-Timing)",
        };
        var json = new Option<bool>("--json") { Description = "print JSON" };
        var device = Common.Device();
        var threads = Common.Threads();
        var cmd = new Command("bench", "Time the image encoder, predict and optionally automatic masks, tracking and training (median and min over repeats, warm-up excluded); report peak RSS");
        foreach (var o in new Option[] { config, checkpoint, imageSize, imagePath, repeats, longRepeats, videoFrames, auto, train, serve, json, device, threads }) cmd.Options.Add(o);
        cmd.SetAction(pr => Common.Guard(() =>
        {
            Common.ApplyThreads(pr.GetValue(threads));
            var dev = Common.ParseDevice(pr.GetValue(device)!);
            var cfgArg = pr.GetValue(config)!;
            var cfg = Common.Doing($"reading the config '{cfgArg}'", () => Sam2ConfigLoader.LoadFileOrBuiltIn(cfgArg));
            if (pr.GetValue(imageSize) > 0) cfg = cfg.WithImageSize(pr.GetValue(imageSize));
            int n = pr.GetValue(repeats);
            int nLong = pr.GetValue(longRepeats);
            var path = pr.GetValue(imagePath);
            if (path is not null) Common.ExistingFile("--image", path);
            var ckpt = pr.GetValue(checkpoint);
            if (ckpt is not null) Common.ExistingFile("--checkpoint", ckpt);
            using var model = Common.Doing(ckpt is null ? "building the model" : $"loading the model '{ckpt}'", () => BuildSam.build_sam2(cfg, ckpt, dev));
            var results = new Dictionary<string, object?>
            {
                ["config"] = cfgArg,
                ["image_size"] = model.image_size,
                ["threads"] = get_num_threads(),
                ["device"] = dev.ToString(),
                ["libtorch"] = torch.__version__,
                ["torchsharp"] = TorchRuntime.TorchSharpVersion,
                ["image"] = path ?? "random 720x1280",
            };
            // the given image is read once and serves set_image, predict and --auto
            using var loaded = path is null ? null : Common.Doing($"reading the image '{path}'", () => RgbImage.Load(path).ToTensor());
            manual_seed(0);
            using (var image = loaded?.alias() ?? randint(0, 256, [720, 1280, 3], ScalarType.Byte))
            using (var predictor = new Sam2ImagePredictor(model))
            {
                // bench.py's prompts, scaled down for images smaller than 900x600
                var (point, boxPrompt) = Prompts((int)image.size(0), (int)image.size(1));
                using var _ = Activity.Doing("timing set_image and predict");
                results["set_image_ms"] = Time(n, () => predictor.SetImage(image), dev);
                results["predict_point_ms"] = Time(n, () => predictor.Predict([point], [1]).Dispose(), dev);
                results["predict_box_ms"] = Time(n, () => predictor.Predict(box: boxPrompt, multimaskOutput: false).Dispose(), dev);
                if (pr.GetValue(serve))
                    foreach (var (k, v) in ServeClicks(model, image, point, n)) results[k] = v;
            }
            results["peak_rss_mb"] = PeakRssMb();
            if (pr.GetValue(auto))
            {
                manual_seed(2);
                using var image = loaded?.alias() ?? randint(0, 256, [1024, 1024, 3], ScalarType.Byte);
                using var amg = new AutomaticMaskGenerator(model);
                int count = 0;
                results["auto_image"] = $"{image.size(1)}x{image.size(0)}";
                results["auto_ms"] = Time(nLong, () => count = amg.Generate(image).Count, dev);
                results["auto_masks"] = count;
                results["peak_rss_after_auto_mb"] = PeakRssMb();
            }
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
            if (pr.GetValue(train))
            {
                // last: training leaves the model in train mode with fresh weights
                results["train_objects"] = TrainObjects;
                results["train_corrections"] = TrainCorrections;
                results["train_step_decoder_ms"] = TrainSteps(model, nLong, freezeImageEncoder: true, dev);
                foreach (var p in model.parameters()) p.requires_grad = true;
                results["train_step_full_ms"] = TrainSteps(model, nLong, freezeImageEncoder: false, dev);
                results["peak_rss_after_train_mb"] = PeakRssMb();
            }
            // the .NET side of the process: managed heap committed (the rest of the RSS is libtorch and the runtime),
            // and all managed bytes allocated: until a GC runs they stay resident, so the binding keeps them few
            results["managed_heap_committed_mb"] = GC.GetGCMemoryInfo().TotalCommittedBytes / 1e6;
            results["managed_allocated_mb"] = GC.GetTotalAllocatedBytes() / 1e6;
            results["gen0_collections"] = GC.CollectionCount(0);
            if (pr.GetValue(json)) Terminal.Out(CliJson.Serialize(results));
            else foreach (var (k, v) in results) Terminal.Out($"{k,-24} {(v is Stats s ? $"median {s.median:F1} ms, min {s.min:F1} ms" : Terminal.Safe(Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture)))}");
            return 0;
        }));
        return cmd;
    }

    private sealed record Stats(double median, double min);

    /// <summary>
    /// The timed point and box prompts for an image of h × w: bench.py's (640, 360) and (100, 100, 900, 600) when they
    /// lie inside it (any image of at least 900 × 600), else the same prompts scaled from 1280 × 720 to the image.
    /// </summary>
    internal static (float[] point, float[] box) Prompts(int h, int w)
    {
        if (w >= 900 && h >= 600) return ([640f, 360f], [100f, 100f, 900f, 600f]);
        float sx = w / 1280f, sy = h / 720f;
        return ([640f * sx, 360f * sy], [100f * sx, 100f * sy, 900f * sx, 600f * sy]);
    }

    private const int VideoHeight = 720, VideoWidth = 1280;
    private static readonly float[][] ObjClicks = [[640f, 360f], [320f, 200f], [960f, 540f]];
    internal const int TrainObjects = 3, TrainCorrections = 7;

    private static double PeakRssMb()
    {
        using var p = Process.GetCurrentProcess();
        return p.PeakWorkingSet64 / 1e6;
    }

    /// <summary>
    /// The training sample: a seeded random S×S image (S = image_size, so no resize) with three objects, two
    /// rectangles and an ellipse, tested at pixel centres. bench.py builds the same masks.
    /// </summary>
    internal static SegmentationSample TrainSample(int s)
    {
        var rng = new Random(0);
        var pixels = new byte[s * s * 3];
        rng.NextBytes(pixels);
        var masks = new List<bool[]> { new bool[s * s], new bool[s * s], new bool[s * s] };
        for (int y = 0; y < s; y++)
            for (int x = 0; x < s; x++)
            {
                double px = (x + 0.5) / s, py = (y + 0.5) / s;
                masks[0][y * s + x] = px >= 0.125 && px < 0.375 && py >= 0.125 && py < 0.625;
                double ex = (px - 0.65) / 0.2, ey = (py - 0.3) / 0.12;
                masks[1][y * s + x] = ex * ex + ey * ey <= 1;
                masks[2][y * s + x] = px >= 0.5 && px < 0.875 && py >= 0.6 && py < 0.9;
            }
        return new SegmentationSample(new RgbImage(pixels, s, s), masks, "bench");
    }

    // Sam2Trainer.TrainStep as `torchsam2 finetune` runs it: the sample's preparation (no augmentation), the image
    // path of SAM2Train with a first prompt and 7 correction clicks per object, the upstream loss, backward, clipping
    // and AdamW.
    private static Stats TrainSteps(SAM2Base model, int repeats, bool freezeImageEncoder, Device dev)
    {
        var data = new InMemorySegmentationDataset([TrainSample(model.image_size)]);
        var options = new TrainerOptions
        {
            Epochs = repeats + 1,
            FreezeImageEncoder = freezeImageEncoder,
            Augment = AugmentationOptions.None,
            MaxObjectsPerImage = TrainObjects,
            Prompts = new PromptSimulationOptions { NumCorrectionPtPerFrame = TrainCorrections },
        };
        using var trainer = new Sam2Trainer(model, data, null, options);
        return Time(repeats, () => trainer.TrainStep(), dev);
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
            if (dev.type == DeviceType.CUDA) cuda.synchronize(dev);
            if (frameIdx != 0) times.Add(sw.Elapsed.TotalMilliseconds);
            sw.Restart();
        }
        times.Sort();
        return new Stats(times[times.Count / 2], times[0]);
    }

    /// <summary>
    /// A click through the server (Kestrel on a loopback port, the page's request: one point, three masks as RLE):
    /// the client's round trip and the server's decoder and mask-encoding times from Server-Timing.
    /// </summary>
    private static Dictionary<string, object?> ServeClicks(SAM2Base model, Tensor image, float[] point, int repeats)
    {
        var rgb = RgbImage.FromTensor(image);
        var png = TorchSam2.Server.Sam2Server.EncodePng(rgb.Pixels, rgb.Height, rgb.Width, 3);
        var options = new TorchSam2.Server.ServerOptions { MaxUploadBytes = png.LongLength + 1, MaxImagePixels = (long)rgb.Width * rgb.Height };
        using var app = TorchSam2.Server.Sam2Server.Build(options, model);
        app.Urls.Add("http://127.0.0.1:0");
        app.StartAsync().GetAwaiter().GetResult();
        try
        {
            using var http = new System.Net.Http.HttpClient { BaseAddress = new Uri(app.Urls.First()) };
            using var up = http.PostAsync("/api/images", new System.Net.Http.ByteArrayContent(png)).GetAwaiter().GetResult();
            up.EnsureSuccessStatusCode();
            string id = JsonDocument.Parse(up.Content.ReadAsStringAsync().GetAwaiter().GetResult()).RootElement.GetProperty("id").GetString()!;
            string body = JsonSerializer.Serialize(new { points = new[] { point }, labels = new[] { 1 }, multimask = true, format = "rle" });
            var click = new List<double>();
            var decoder = new List<double>();
            var masks = new List<double>();
            for (int i = 0; i <= repeats; i++)
            {
                var sw = Stopwatch.StartNew();
                using var r = http.PostAsync($"/api/images/{id}/predict", new System.Net.Http.StringContent(body, System.Text.Encoding.UTF8, "application/json")).GetAwaiter().GetResult();
                r.Content.ReadAsStringAsync().GetAwaiter().GetResult();
                double ms = sw.Elapsed.TotalMilliseconds;
                r.EnsureSuccessStatusCode();
                if (i == 0) continue; // warm-up
                click.Add(ms);
                var timing = string.Join(",", r.Headers.GetValues("Server-Timing"));
                decoder.Add(ServerTiming(timing, "decoder"));
                masks.Add(ServerTiming(timing, "masks"));
            }
            static Stats Of(List<double> t) { t.Sort(); return new Stats(t[t.Count / 2], t[0]); }
            return new() { ["serve_image"] = $"{rgb.Width}x{rgb.Height}", ["serve_click_ms"] = Of(click), ["serve_click_decoder_ms"] = Of(decoder), ["serve_click_masks_ms"] = Of(masks) };
        }
        finally
        {
            app.StopAsync().GetAwaiter().GetResult();
        }
    }

    private static double ServerTiming(string header, string name)
    {
        foreach (var part in header.Split(','))
        {
            var kv = part.Trim().Split(";dur=");
            if (kv.Length == 2 && kv[0] == name) return double.Parse(kv[1], System.Globalization.CultureInfo.InvariantCulture);
        }
        return double.NaN;
    }

    private static Stats Time(int repeats, Action body, Device dev)
    {
        body(); // warm-up: allocator, caches, lazy init
        var times = new List<double>();
        for (int i = 0; i < repeats; i++)
        {
            var sw = Stopwatch.StartNew();
            body();
            if (dev.type == DeviceType.CUDA) cuda.synchronize(dev);
            times.Add(sw.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        return new Stats(times[times.Count / 2], times[0]);
    }
}
