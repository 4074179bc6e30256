using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Spectre.Console;
using TorchSam2.IO;
using TorchSam2.Utils;
using TorchSam2.Visualization;

namespace TorchSam2.Cli.Commands;

/// <summary><c>torchsam2 auto</c>: segment everything in an image with a grid of point prompts.</summary>
internal static class AutoCommand
{
    public static Command Create()
    {
        var defaults = new AutomaticMaskGeneratorOptions();
        var image = new Argument<string>("image") { Description = "the image file (PNG, JPEG, ...)" };
        var checkpoint = new Option<string>("--checkpoint") { Description = "SAM 2 weights (.pt or .safetensors), or a name: tiny, small, base_plus, large, sam2_hiera_* (SAM 2.0), glyph-demo (downloaded and cached on first use)", Required = true };
        var config = new Option<string?>("--config") { Description = "YAML config or built-in name; detected from the weights when left out" };
        var pointsPerSide = Common.Int("--points-per-side", $"grid points along each side (squared in total; 1..{Limits.MaxPointsPerSide})", defaults.PointsPerSide!.Value, 1, Limits.MaxPointsPerSide);
        var pointsPerBatch = Common.Int("--points-per-batch", $"points decoded at once (more is faster and uses more memory; 1..{Limits.MaxPointsPerBatch})", defaults.PointsPerBatch, 1, Limits.MaxPointsPerBatch);
        var predIou = Common.Real("--pred-iou-thresh", "drop masks whose predicted IoU is not above this", defaults.PredIouThresh, -1000, 1000);
        var stability = Common.Real("--stability-score-thresh", "drop masks whose stability score is below this", defaults.StabilityScoreThresh, -1000, 1000);
        var boxNms = Common.Real("--box-nms-thresh", "box IoU above which duplicate masks are dropped (0..1)", defaults.BoxNmsThresh, 0, 1);
        var cropLayers = Common.Int("--crop-n-layers", $"extra layers of image crops to run on (0 = whole image only; layer i adds (2^i)² crops; 0..{Limits.MaxCropLayers})", 0, 0, Limits.MaxCropLayers);
        var minArea = Common.Int("--min-mask-region-area", "fill holes and remove specks smaller than this (low-res pixels)", 0, 0, int.MaxValue);
        var m2m = new Option<bool>("--use-m2m") { Description = "refine each mask once with its own low-res logits" };
        var output = new Option<string>("--out") { Description = "output folder (replaced as a whole by the new results)", DefaultValueFactory = _ => "out" };
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
                PointsPerSide = pr.GetValue(pointsPerSide),
                PointsPerBatch = pr.GetValue(pointsPerBatch),
                PredIouThresh = pr.GetValue(predIou),
                StabilityScoreThresh = pr.GetValue(stability),
                BoxNmsThresh = pr.GetValue(boxNms),
                CropNLayers = pr.GetValue(cropLayers),
                MinMaskRegionArea = pr.GetValue(minArea),
                UseM2M = pr.GetValue(m2m),
                OutputMode = "uncompressed_rle",
            };
            AutomaticMaskGenerator.Validate(opts);
            var imagePath = Common.ExistingFile("image", pr.GetValue(image));
            var ckpt = Common.ExistingFile("--checkpoint", pr.GetValue(checkpoint));
            using var outDir = OutputFolder.Begin(pr.GetValue(output)!, Outputs, "masks.json",
                [("image", imagePath), ("--checkpoint", ckpt), ("--config", Common.ConfigFile(pr.GetValue(config)))]);
            var img = Common.Doing($"reading the image '{imagePath}'", () => RgbImage.Load(imagePath));
            var sw = Stopwatch.StartNew();
            using var model = Common.LoadModel(ckpt, pr.GetValue(config), dev);
            double loadMs = sw.Elapsed.TotalMilliseconds;
            using var generator = new AutomaticMaskGenerator(model, opts);

            sw.Restart();
            List<MaskRecord> records = [];
            AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask("point batches", maxValue: 1);
                    using var _ = Activity.Doing("generating masks");
                    records = generator.Generate(img, new SyncProgress<AmgProgress>(p =>
                    {
                        task.MaxValue = p.BatchesTotal;
                        task.Value = p.BatchesDone;
                        task.Description = p.CropCount > 1 ? $"crop {p.Crop + 1}/{p.CropCount}, {p.MasksSoFar} masks" : $"{p.MasksSoFar} masks";
                    }));
                    task.Value = task.MaxValue;
                });
            double generateMs = sw.Elapsed.TotalMilliseconds;

            using var writing = Activity.Doing($"writing the results to '{outDir.Display}'");
            // Largest first, so small masks stay visible on top.
            var byArea = records.OrderByDescending(r => r.Area).ToList();
            var overlay = Overlay.Draw(img, byArea.Select(r => r.ToMask()).ToList(),
                // predicted IoU on masks of at least 1 % of the image: tags on every small mask would hide them
                labels: byArea.Select(r => r.Area * 100L >= (long)img.Height * img.Width
                    ? r.PredictedIou.ToString("0.00", System.Globalization.CultureInfo.InvariantCulture) : null).ToList());
            overlay.Save(outDir.File("overlay.png"));
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
            File.WriteAllText(outDir.File("masks.json"), CliJson.Serialize(json));
            outDir.Commit();
            Terminal.Out($"{records.Count} mask(s) from {generator.PointGrids[0].Length} points; generate {generateMs:F0} ms");
            Terminal.Out($"wrote overlay.png and masks.json in {Terminal.Safe(outDir.Display)}");
            return 0;
        }));
        return cmd;
    }

    /// <summary>Everything auto writes in --out.</summary>
    internal static readonly string[] Outputs = ["overlay.png", "masks.json"];
}
