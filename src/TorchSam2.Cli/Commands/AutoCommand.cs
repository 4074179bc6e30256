using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Spectre.Console;
using TorchSam2.IO;
using TorchSam2.Visualization;

namespace TorchSam2.Cli.Commands;

/// <summary><c>torchsam2 auto</c>: segment everything in an image with a grid of point prompts.</summary>
internal static class AutoCommand
{
    public static Command Create()
    {
        var defaults = new AutomaticMaskGeneratorOptions();
        var image = new Argument<string>("image") { Description = "the image file (PNG, JPEG, ...)" };
        var checkpoint = new Option<string>("--checkpoint") { Description = "SAM 2 weights (.pt or .safetensors)", Required = true };
        var config = new Option<string?>("--config") { Description = "YAML config or built-in name; detected from the weights when left out" };
        var pointsPerSide = new Option<int>("--points-per-side") { Description = "grid points along each side (squared in total)", DefaultValueFactory = _ => defaults.PointsPerSide!.Value };
        var pointsPerBatch = new Option<int>("--points-per-batch") { Description = "points decoded at once (more is faster and uses more memory)", DefaultValueFactory = _ => defaults.PointsPerBatch };
        var predIou = new Option<double>("--pred-iou-thresh") { Description = "drop masks whose predicted IoU is not above this", DefaultValueFactory = _ => defaults.PredIouThresh };
        var stability = new Option<double>("--stability-score-thresh") { Description = "drop masks whose stability score is below this", DefaultValueFactory = _ => defaults.StabilityScoreThresh };
        var boxNms = new Option<double>("--box-nms-thresh") { Description = "box IoU above which duplicate masks are dropped", DefaultValueFactory = _ => defaults.BoxNmsThresh };
        var cropLayers = new Option<int>("--crop-n-layers") { Description = "extra layers of image crops to run on (0 = whole image only)", DefaultValueFactory = _ => 0 };
        var minArea = new Option<int>("--min-mask-region-area") { Description = "fill holes and remove specks smaller than this (low-res pixels)", DefaultValueFactory = _ => 0 };
        var m2m = new Option<bool>("--use-m2m") { Description = "refine each mask once with its own low-res logits" };
        var output = new Option<string>("--out") { Description = "output folder", DefaultValueFactory = _ => "out" };
        var device = Common.Device();
        var threads = Common.Threads();
        var cmd = new Command("auto", "Segment everything in an image (automatic mask generator); writes an overlay PNG and a JSON with COCO RLE masks");
        cmd.Arguments.Add(image);
        foreach (var o in new Option[] { checkpoint, config, pointsPerSide, pointsPerBatch, predIou, stability, boxNms, cropLayers, minArea, m2m, output, device, threads })
            cmd.Options.Add(o);
        cmd.SetAction(pr => Common.Guard(() =>
        {
            Common.ApplyThreads(pr.GetValue(threads));
            var dev = Common.ParseDevice(pr.GetValue(device)!);
            var opts = defaults with
            {
                PointsPerSide = Positive(pr.GetValue(pointsPerSide), "--points-per-side"),
                PointsPerBatch = Positive(pr.GetValue(pointsPerBatch), "--points-per-batch"),
                PredIouThresh = pr.GetValue(predIou),
                StabilityScoreThresh = pr.GetValue(stability),
                BoxNmsThresh = pr.GetValue(boxNms),
                CropNLayers = pr.GetValue(cropLayers) >= 0 ? pr.GetValue(cropLayers) : throw new ArgumentException("--crop-n-layers must not be negative"),
                MinMaskRegionArea = pr.GetValue(minArea),
                UseM2M = pr.GetValue(m2m),
                OutputMode = "uncompressed_rle",
            };
            var imagePath = pr.GetValue(image)!;
            var img = RgbImage.Load(imagePath);
            var sw = Stopwatch.StartNew();
            using var model = ModelLoader.Load(pr.GetValue(checkpoint)!, pr.GetValue(config), dev);
            double loadMs = sw.Elapsed.TotalMilliseconds;
            using var generator = new AutomaticMaskGenerator(model, opts);

            sw.Restart();
            List<MaskRecord> records = [];
            AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask("point batches", maxValue: 1);
                    records = generator.Generate(img, new Reporter(p =>
                    {
                        task.MaxValue = p.BatchesTotal;
                        task.Value = p.BatchesDone;
                        task.Description = p.CropCount > 1 ? $"crop {p.Crop + 1}/{p.CropCount}, {p.MasksSoFar} masks" : $"{p.MasksSoFar} masks";
                    }));
                    task.Value = task.MaxValue;
                });
            double generateMs = sw.Elapsed.TotalMilliseconds;

            var outDir = pr.GetValue(output)!;
            Directory.CreateDirectory(outDir);
            // Largest first, so small masks stay visible on top.
            var byArea = records.OrderByDescending(r => r.Area).ToList();
            var overlay = Overlay.Draw(img, byArea.Select(r => r.ToMask()).ToList());
            var overlayPath = Path.Combine(outDir, "overlay.png");
            overlay.Save(overlayPath);
            var json = new
            {
                image = imagePath,
                height = img.Height,
                width = img.Width,
                annotations = records.Select(r => new
                {
                    segmentation = new { size = new[] { r.Rle.Height, r.Rle.Width }, counts = r.Rle.ToCocoString() },
                    area = r.Area,
                    bbox = r.Bbox,
                    predicted_iou = r.PredictedIou,
                    point_coords = r.PointCoords,
                    stability_score = r.StabilityScore,
                    crop_box = r.CropBox,
                }),
                settings = new
                {
                    points_per_side = opts.PointsPerSide,
                    points_per_batch = opts.PointsPerBatch,
                    pred_iou_thresh = opts.PredIouThresh,
                    stability_score_thresh = opts.StabilityScoreThresh,
                    box_nms_thresh = opts.BoxNmsThresh,
                    crop_n_layers = opts.CropNLayers,
                    min_mask_region_area = opts.MinMaskRegionArea,
                    use_m2m = opts.UseM2M,
                },
                timings_ms = new { load = loadMs, generate = generateMs },
            };
            var jsonPath = Path.Combine(outDir, "masks.json");
            File.WriteAllText(jsonPath, JsonSerializer.Serialize(json, new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
            Console.WriteLine($"{records.Count} mask(s) from {generator.PointGrids[0].Length} points; generate {generateMs:F0} ms");
            Console.WriteLine($"wrote {overlayPath} and {jsonPath}");
            return 0;
        }));
        return cmd;
    }

    private static int Positive(int v, string name) => v > 0 ? v : throw new ArgumentException($"{name} must be positive, got {v}");

    // Spectre's progress context is not thread-safe for Progress<T>'s thread-pool callbacks: report inline.
    private sealed class Reporter(Action<AmgProgress> report) : IProgress<AmgProgress>
    {
        public void Report(AmgProgress value) => report(value);
    }
}
