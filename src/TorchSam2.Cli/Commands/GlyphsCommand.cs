using System.CommandLine;
using System.Diagnostics;
using System.Text.Encodings.Web;
using System.Text.Json;
using Spectre.Console;
using TorchSam2.Glyphs;
using TorchSam2.IO;
using TorchSam2.Visualization;

namespace TorchSam2.Cli.Commands;

/// <summary><c>torchsam2 glyphs</c>, <c>specimens</c> and <c>eval</c>: the font-specimen workflow.</summary>
internal static class GlyphsCommand
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command Create()
    {
        var image = new Argument<string>("specimen") { Description = "a specimen sheet image (PNG, JPEG, ...)" };
        var checkpoint = new Option<string>("--checkpoint") { Description = "SAM 2 weights (.pt or .safetensors)", Required = true };
        var config = new Option<string?>("--config") { Description = "YAML config or built-in name; detected from the weights when left out" };
        var noRefine = new Option<bool>("--no-refine") { Description = "keep SAM's masks as they are (no snapping to the ink at full resolution)" };
        var output = new Option<string>("--out") { Description = "output folder", DefaultValueFactory = _ => "out" };
        var device = Common.Device();
        var threads = Common.Threads();
        var cmd = new Command("glyphs", "Segment every glyph of a font specimen (crop-and-segment with box prompts); writes overlay.png and glyphs.json (COCO RLE)");
        cmd.Arguments.Add(image);
        foreach (var o in new Option[] { checkpoint, config, noRefine, output, device, threads }) cmd.Options.Add(o);
        cmd.SetAction(pr => Common.Guard(() =>
        {
            Common.ApplyThreads(pr.GetValue(threads));
            var dev = Common.ParseDevice(pr.GetValue(device)!);
            var path = pr.GetValue(image)!;
            var sheet = RgbImage.Load(path);
            var sw = Stopwatch.StartNew();
            using var model = ModelLoader.Load(pr.GetValue(checkpoint)!, pr.GetValue(config), dev);
            double loadMs = sw.Elapsed.TotalMilliseconds;
            using var predictor = new Sam2ImagePredictor(model);
            var segmenter = new GlyphSegmenter(predictor, new GlyphSegmenterOptions { Refine = !pr.GetValue(noRefine) });
            sw.Restart();
            List<GlyphResult> glyphs = [];
            AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask("glyphs", maxValue: 100);
                    glyphs = segmenter.Segment(sheet, new SyncProgress(p => task.Value = p));
                    task.Value = 100;
                });
            double segMs = sw.Elapsed.TotalMilliseconds;

            var outDir = pr.GetValue(output)!;
            Directory.CreateDirectory(outDir);
            int h = sheet.Height, w = sheet.Width;
            var overlay = Overlay.Draw(sheet, glyphs.Select(g => g.Mask.ToFull(h, w)).ToList(), boxes: glyphs.Select(g => g.Box));
            overlay.Save(Path.Combine(outDir, "overlay.png"));
            var json = new
            {
                image = path,
                file_name = Path.GetFileName(path),
                height = h,
                width = w,
                refine = segmenter.Options.Refine,
                crops = segmenter.LastCropCount,
                glyphs = glyphs.Select(g =>
                {
                    var rle = g.ToRle(h, w);
                    var (bx, by, bw, bh) = g.Mask.BBox;
                    return new
                    {
                        id = g.Id + 1,
                        box = g.Box,
                        bbox = new[] { bx, by, bw, bh },
                        score = g.Score,
                        area = rle.Area(),
                        segmentation = new { size = new[] { rle.Height, rle.Width }, counts = rle.ToCocoString() },
                    };
                }),
                timings_ms = new { load = loadMs, segment = segMs },
            };
            File.WriteAllText(Path.Combine(outDir, "glyphs.json"), JsonSerializer.Serialize(json, Json));
            Console.WriteLine($"{glyphs.Count} glyph(s) in {segmenter.LastCropCount} crop(s); {segMs / 1000:F1} s");
            Console.WriteLine($"wrote overlay.png and glyphs.json in {outDir}");
            return 0;
        }));
        return cmd;
    }

    public static Command CreateSpecimens()
    {
        var outDir = new Argument<string>("outdir") { Description = "dataset folder (images/ and annotations.json are written there)" };
        var count = new Option<int>("--count") { Description = "number of sheets", DefaultValueFactory = _ => 10 };
        var split = new Option<string>("--split") { Description = "train or heldout (fonts never used for training)", DefaultValueFactory = _ => "train" };
        var seed = new Option<int>("--seed") { Description = "random seed (same seed, same sheets)", DefaultValueFactory = _ => 0 };
        var width = new Option<int>("--width") { Description = "sheet width in pixels", DefaultValueFactory = _ => 1024 };
        var height = new Option<int>("--height") { Description = "sheet height in pixels", DefaultValueFactory = _ => 1024 };
        var noise = new Option<double>("--noise") { Description = "Gaussian pixel noise standard deviation (0..255 scale)", DefaultValueFactory = _ => 0 };
        var cmd = new Command("specimens", "Generate font specimen sheets with exact per-glyph masks (COCO instances, RLE)");
        cmd.Arguments.Add(outDir);
        foreach (var o in new Option[] { count, split, seed, width, height, noise }) cmd.Options.Add(o);
        cmd.SetAction(pr => Common.Guard(() =>
        {
            var s = pr.GetValue(split)!.ToLowerInvariant() switch
            {
                "train" => FontSplit.Train,
                "heldout" or "held-out" => FontSplit.HeldOut,
                var other => throw new ArgumentException($"--split must be train or heldout, got '{other}'"),
            };
            int n = pr.GetValue(count);
            var opts = new SpecimenOptions { Width = pr.GetValue(width), Height = pr.GetValue(height), NoiseStd = pr.GetValue(noise) };
            var missing = FontRegistry.Missing(s);
            if (missing.Count > 0)
                AnsiConsole.MarkupLine($"[yellow]note:[/] {missing.Count} registered {s} font(s) are not installed ({Markup.Escape(string.Join(", ", missing.Select(f => f.DebianPackage).Distinct()))})");
            GlyphCoco coco = null!;
            AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask("specimens", maxValue: n);
                    coco = SpecimenGenerator.WriteDataset(pr.GetValue(outDir)!, n, s, pr.GetValue(seed), opts, new SyncProgress(i => task.Value = i));
                });
            Console.WriteLine($"{coco.Images.Count} sheet(s), {coco.Annotations.Count} glyph(s) → {Path.Combine(pr.GetValue(outDir)!, "annotations.json")}");
            return 0;
        }));
        return cmd;
    }

    public static Command CreateEval()
    {
        var pred = new Option<string>("--pred") { Description = "predictions: torchsam2 glyphs output, a COCO results list or a COCO dataset", Required = true };
        var gt = new Option<string>("--gt") { Description = "ground truth COCO instances (e.g. annotations.json from torchsam2 specimens)", Required = true };
        var tol = new Option<int>("--tolerance") { Description = "boundary tolerance in pixels", DefaultValueFactory = _ => 2 };
        var asJson = new Option<bool>("--json") { Description = "print the metrics as JSON" };
        var cmd = new Command("eval", "Score glyph masks against a COCO ground truth: foreground IoU, mean glyph IoU, recall@0.5, boundary F");
        foreach (var o in new Option[] { pred, gt, tol, asJson }) cmd.Options.Add(o);
        cmd.SetAction(pr => Common.Guard(() =>
        {
            var r = GlyphEval.Evaluate(GlyphCoco.Load(pr.GetValue(gt)!), GlyphCoco.Load(pr.GetValue(pred)!), pr.GetValue(tol));
            if (pr.GetValue(asJson))
            {
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    images = r.Images, gt_glyphs = r.GtGlyphs, predictions = r.PredGlyphs, fg_iou = r.ForegroundIoU, mean_glyph_iou = r.MeanGlyphIoU,
                    recall50 = r.Recall50, boundary_f = r.BoundaryF, tolerance_px = pr.GetValue(tol),
                }));
                return 0;
            }
            Console.WriteLine($"images          {r.Images}");
            Console.WriteLine($"GT glyphs       {r.GtGlyphs}");
            Console.WriteLine($"predictions     {r.PredGlyphs}");
            Console.WriteLine($"fgIoU           {r.ForegroundIoU:F4}");
            Console.WriteLine($"mean glyph IoU  {r.MeanGlyphIoU:F4}");
            Console.WriteLine($"recall@0.5      {r.Recall50:F4}");
            Console.WriteLine($"boundary F      {r.BoundaryF:F4} (precision {r.BoundaryPrecision:F4}, recall {r.BoundaryRecall:F4}, tolerance {pr.GetValue(tol)} px)");
            return 0;
        }));
        return cmd;
    }

    // Progress<T> posts to the thread pool; the bar wants the value now.
    private sealed class SyncProgress(Action<int> report) : IProgress<int>
    {
        public void Report(int value) => report(value);
    }
}
