using System.CommandLine;
using System.Diagnostics;
using System.Text.Encodings.Web;
using System.Text.Json;
using Spectre.Console;
using TorchSam2.Glyphs;
using TorchSam2.IO;
using TorchSam2.Training;
using TorchSam2.Utils;
using TorchSam2.Visualization;

namespace TorchSam2.Cli.Commands;

/// <summary><c>torchsam2 glyphs</c>, <c>specimens</c> and <c>eval</c>: the font-specimen workflow.</summary>
internal static class GlyphsCommand
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command Create()
    {
        var image = new Argument<string>("specimen") { Description = "a specimen sheet image (PNG, JPEG, ...)" };
        var checkpoint = new Option<string>("--checkpoint") { Description = "SAM 2 weights (.pt or .safetensors), or a name: tiny, small, base_plus, large, sam2_hiera_* (SAM 2.0), glyph-demo (downloaded and cached on first use)", Required = true };
        var config = new Option<string?>("--config") { Description = "YAML config or built-in name; detected from the weights when left out" };
        var noRefine = new Option<bool>("--no-refine") { Description = "keep SAM's masks as they are (no snapping to the ink at full resolution; box prompts, no splitting)" };
        var splitMethod = new Option<string>("--split-method")
        {
            Description = "how letters that touch are cut apart: centres (the default: a learned glyph-centre net, every ink pixel votes for its glyph's centre), cores (the darkest ink falls apart into one piece per letter) or clicks (a grid of clicks, the model's masks clustered)",
            DefaultValueFactory = _ => "centres",
        };
        var centres = new Option<string?>("--centres") { Description = "glyph-centre net weights for --split-method centres (train-centres writes them; default: the ones embedded in the library)" };
        var centreThreshold = Common.Real("--centre-threshold", "with --split-method centres: a heatmap peak at least this high (0..1) is a glyph's centre", 0.2, 0, 1);
        var centreZoom = Common.Real("--centre-zoom", "with --split-method centres: read glyphs up to --centre-zoom-height px tall again with the sheet enlarged this many times (1..2; 1: read once; 1.5 parts small condensed text, and splits more ligatures)", 1, 1, 2);
        var centreZoomHeight = Common.Int("--centre-zoom-height", "with --centre-zoom: the tallest glyph (px, as first read) read again (1..1024)", 16, 1, 1024);
        var noSplit = new Option<bool>("--no-split") { Description = "one glyph per ink candidate from a box prompt (letters that touch stay one mask); by default --split-method cuts them apart" };
        var maxGlyphs = Common.Int("--max-glyphs", $"refuse sheets with more glyph candidates than this (default TORCHSAM2_MAX_GLYPHS or {Limits.DefaultMaxGlyphCandidates:N0})",
                                   Limits.MaxGlyphCandidates, 1, 10_000_000);
        var minArea = Common.Int("--min-glyph-area", "ink specks with fewer pixels than this are not glyphs", 3, 0, 1_000_000);
        var output = new Option<string>("--out") { Description = "output folder (replaced as a whole by the new results)", DefaultValueFactory = _ => "out" };
        var device = Common.Device();
        var threads = Common.Threads();
        var cmd = new Command("glyphs", "Segment every glyph of a font specimen (a learned glyph-centre net cuts letters that touch apart; crops magnify small glyphs for the model's scores); writes overlay.png and glyphs.json (COCO RLE, with each glyph's prompt and split flag)");
        cmd.Arguments.Add(image);
        foreach (var o in new Option[] { checkpoint, config, noRefine, noSplit, splitMethod, centres, centreThreshold, centreZoom, centreZoomHeight, maxGlyphs, minArea, output, device, threads }) cmd.Options.Add(o);
        cmd.SetAction(pr => Common.Guard(() =>
        {
            Common.ApplyThreads(pr.GetValue(threads));
            var dev = Common.ParseDevice(pr.GetValue(device)!);
            var path = Common.ExistingFile("specimen", pr.GetValue(image));
            var ckpt = Common.ExistingFile("--checkpoint", pr.GetValue(checkpoint));
            using var outDir = OutputFolder.Begin(pr.GetValue(output)!, Outputs, "glyphs.json",
                [("specimen", path), ("--checkpoint", ckpt), ("--config", Common.ConfigFile(pr.GetValue(config)))]);
            var sheet = Common.Doing($"reading the image '{path}'", () => RgbImage.Load(path));
            var method = pr.GetValue(splitMethod)!.ToLowerInvariant() switch
            {
                "cores" => GlyphSplitMethod.Cores,
                "clicks" => GlyphSplitMethod.Clicks,
                "centres" or "centers" => GlyphSplitMethod.Centres,
                var other => throw new UsageException($"--split-method must be cores, centres or clicks, got '{Terminal.Safe(other)}'"),
            };
            var centresPath = pr.GetValue(centres) is { } cp ? Common.ExistingFile("--centres", cp) : null;
            if (centresPath is not null && method != GlyphSplitMethod.Centres) throw new UsageException("--centres goes with --split-method centres");
            var centreNet = centresPath is null ? null : Common.Doing($"reading the glyph-centre weights '{centresPath}'", () => GlyphCentreNet.Load(centresPath));
            var segOptions = new GlyphSegmenterOptions { Refine = !pr.GetValue(noRefine), SplitTouching = !pr.GetValue(noSplit), SplitMethod = method, CentreNet = centreNet, CentreThreshold = pr.GetValue(centreThreshold), CentreZoom = pr.GetValue(centreZoom), CentreZoomMaxHeight = pr.GetValue(centreZoomHeight), MaxCandidates = pr.GetValue(maxGlyphs), MinGlyphArea = pr.GetValue(minArea) };
            // the candidates first: a sheet past the limits is refused before the model is loaded
            Common.Doing($"finding glyphs in '{path}'", () => GlyphSegmenter.FindCandidates(sheet, segOptions.MinGlyphArea, segOptions.MaxCandidates));
            var sw = Stopwatch.StartNew();
            using var model = Common.LoadModel(ckpt, pr.GetValue(config), dev);
            double loadMs = sw.Elapsed.TotalMilliseconds;
            using var predictor = new Sam2ImagePredictor(model);
            var segmenter = new GlyphSegmenter(predictor, segOptions);
            sw.Restart();
            List<GlyphResult> glyphs = [];
            using (Activity.Doing($"segmenting the glyphs of '{path}'"))
                AnsiConsole.Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                    .Start(ctx =>
                    {
                        var task = ctx.AddTask("glyphs", maxValue: 100);
                        glyphs = segmenter.Segment(sheet, new SyncProgress<int>(p => task.Value = p));
                        task.Value = 100;
                    });
            double segMs = sw.Elapsed.TotalMilliseconds;

            using var writing = Activity.Doing($"writing the results to '{outDir.Display}'");
            int h = sheet.Height, w = sheet.Width;
            var overlay = Overlay.Draw(sheet, glyphs.Select(g => g.Mask.ToFull(h, w)).ToList(), boxes: glyphs.Select(g => g.Box));
            overlay.Save(outDir.File("overlay.png"));
            var json = new
            {
                image = path,
                file_name = Path.GetFileName(path),
                height = h,
                width = w,
                refine = segmenter.Options.Refine,
                crops = segmenter.LastCropCount,
                split_touching = segmenter.Options.Refine && segmenter.Options.SplitTouching,
                split_method = segmenter.Options.SplitMethod.ToString().ToLowerInvariant(),
                split_candidates = segmenter.LastSplitCount,
                blur_sigma = segmenter.LastBlurSigma,
                centre_zoom = segmenter.Options.CentreZoom,
                zoomed_pixels = segmenter.LastZoomedPixels,
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
                        prompt = g.Prompt is { Point: { } pt } ? (object)new { point = pt } : g.Prompt is { Box: { } pb } ? new { box = pb } : null,
                        split = g.Split,
                        area = rle.Area(),
                        segmentation = new { size = new[] { rle.Height, rle.Width }, counts = rle.ToCocoString() },
                    };
                }),
                clicks = segmenter.LastTimings.Clicks,
                timings_ms = new { load = loadMs, segment = segMs, encode = segmenter.LastTimings.Encode, decode = segmenter.LastTimings.Decode, cluster = segmenter.LastTimings.Cluster },
            };
            File.WriteAllText(outDir.File("glyphs.json"), CliJson.Serialize(json));
            outDir.Commit();
            if (glyphs.Any(g => !float.IsFinite(g.Score)))
                Terminal.Warning("the model produced non-finite scores (NaN or infinite weights?); they are written as null");
            Terminal.Out($"{glyphs.Count} glyph(s) in {segmenter.LastCropCount} crop(s), {segmenter.LastSplitCount} candidate(s) split; {segMs / 1000:F1} s");
            Terminal.Out($"wrote overlay.png and glyphs.json in {Terminal.Safe(outDir.Display)}");
            return 0;
        }));
        return cmd;
    }

    /// <summary>Everything glyphs writes in --out.</summary>
    internal static readonly string[] Outputs = ["overlay.png", "glyphs.json"];

    /// <summary>Everything specimens writes in its folder.</summary>
    internal static readonly string[] SpecimenOutputs = ["annotations.json", "images/*.png"];

    public static Command CreateSpecimens()
    {
        var outDir = new Argument<string>("outdir") { Description = "dataset folder (images/ and annotations.json are written there)" };
        var count = Common.Int("--count", "number of sheets (1..100000)", 10, 1, 100_000);
        var split = new Option<string>("--split") { Description = "train or heldout (fonts never used for training)", DefaultValueFactory = _ => "train" };
        var seed = new Option<int>("--seed") { Description = "random seed (same seed, same sheets)", DefaultValueFactory = _ => 0 };
        var width = Common.Int("--width", "sheet width in pixels (64..16384)", 1024, 64, 16384);
        var height = Common.Int("--height", "sheet height in pixels (64..16384)", 1024, 64, 16384);
        var noise = Common.Real("--noise", "Gaussian pixel noise standard deviation (0..255 scale); 0 by default, 3 for crowded sheets", 0, 0, 255);
        var style = new Option<string>("--style")
        {
            Description = "classic (lines and grids, 8-200 px, open spacing) or crowded (lines set so letters touch, italics overlap, tight leading, ligatures, 8-120 px, light noise and blur: the glyph-instance benchmark)",
            DefaultValueFactory = _ => "classic",
        };
        var cmd = new Command("specimens", "Generate font specimen sheets with exact per-glyph masks (COCO instances, RLE); the folder's images/ and annotations.json are replaced as a whole");
        cmd.Arguments.Add(outDir);
        foreach (var o in new Option[] { count, split, seed, width, height, noise, style }) cmd.Options.Add(o);
        cmd.SetAction(pr => Common.Guard(() =>
        {
            var s = pr.GetValue(split)!.ToLowerInvariant() switch
            {
                "train" => FontSplit.Train,
                "heldout" or "held-out" => FontSplit.HeldOut,
                var other => throw new UsageException($"--split must be train or heldout, got '{Terminal.Safe(other)}'"),
            };
            int n = pr.GetValue(count);
            int w = pr.GetValue(width), h = pr.GetValue(height);
            try { Limits.CheckImageSize(w, h, "--width × --height"); }
            catch (LimitExceededException e) { throw new UsageException(e.Message); }
            var preset = pr.GetValue(style)!.ToLowerInvariant() switch
            {
                "classic" => new SpecimenOptions(),
                "crowded" => SpecimenOptions.Crowded,
                var other => throw new UsageException($"--style must be classic or crowded, got '{Terminal.Safe(other)}'"),
            };
            bool noiseGiven = pr.GetResult(noise) is { Implicit: false };
            var opts = preset with { Width = w, Height = h, NoiseStd = noiseGiven ? pr.GetValue(noise) : preset.NoiseStd };
            var missing = FontRegistry.Missing(s);
            if (missing.Count > 0)
                Terminal.Note($"{missing.Count} registered {s} font(s) are not installed ({Terminal.Safe(string.Join(", ", missing.Select(f => f.DebianPackage).Distinct()))})");
            using var folder = OutputFolder.Begin(pr.GetValue(outDir)!, SpecimenOutputs, "annotations.json", [], "outdir");
            GlyphCoco coco = null!;
            using (Activity.Doing("generating specimen sheets"))
                AnsiConsole.Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                    .Start(ctx =>
                    {
                        var task = ctx.AddTask("specimens", maxValue: n);
                        coco = SpecimenGenerator.WriteDataset(folder.Staging, n, s, pr.GetValue(seed), opts, new SyncProgress<int>(i => task.Value = i));
                    });
            folder.Commit();
            Terminal.Out($"{coco.Images.Count} sheet(s), {coco.Annotations.Count} glyph(s) → {Terminal.Safe(folder.Final("annotations.json"))}");
            return 0;
        }));
        return cmd;
    }

    public static Command CreateEval()
    {
        var pred = new Option<string>("--pred") { Description = "predictions: torchsam2 glyphs output, a COCO results list or a COCO dataset", Required = true };
        var gt = new Option<string>("--gt") { Description = "ground truth COCO instances (e.g. annotations.json from torchsam2 specimens)", Required = true };
        var tol = Common.Int("--tolerance", $"boundary tolerance in pixels (0..{Limits.MaxBoundaryTolerance})", 2, 0, Limits.MaxBoundaryTolerance);
        var asJson = new Option<bool>("--json") { Description = "print the metrics as JSON" };
        var cmd = new Command("eval",
            "Score glyph masks against a COCO ground truth: foreground IoU, one-to-one matched mean glyph IoU, recall@0.5 and precision@0.5, " +
            "thin-stroke recall (GT hairline pixels kept), boundary F; recall and glyph IoU per style, size band and for ligatures");
        foreach (var o in new Option[] { pred, gt, tol, asJson }) cmd.Options.Add(o);
        cmd.SetAction(pr => Common.Guard(() =>
        {
            var gtPath = Common.ExistingFile("--gt", pr.GetValue(gt));
            var predPath = Common.ExistingFile("--pred", pr.GetValue(pred));
            var gtCoco = Common.Doing($"reading the ground truth '{gtPath}'", () => GlyphCoco.Load(gtPath));
            var predCoco = Common.Doing($"reading the predictions '{predPath}'", () => GlyphCoco.Load(predPath));
            var r = Common.Doing("scoring", () => GlyphEval.Evaluate(gtCoco, predCoco, pr.GetValue(tol)));
            if (pr.GetValue(asJson))
            {
                var bands = new Dictionary<string, object>();
                foreach (var kind in r.Bands.GroupBy(b => b.Kind))
                {
                    static object Stats(GlyphBand b) => new { gt = b.GtGlyphs, recall50 = b.Recall50, mean_glyph_iou = b.MeanGlyphIoU };
                    // the ligature band is one band; style and size map their labels to bands
                    bands[kind.Key] = kind.Key == "ligature" ? Stats(kind.First()) : kind.ToDictionary(b => b.Label, Stats);
                }
                Terminal.Out(CliJson.Serialize(new
                {
                    images = r.Images, gt_glyphs = r.GtGlyphs, predictions = r.PredGlyphs, fg_iou = r.ForegroundIoU, mean_glyph_iou = r.MeanGlyphIoU,
                    recall50 = r.Recall50, precision50 = r.Precision50, matched = r.Matched, matched50 = r.Matched50,
                    thin_stroke_recall = r.ThinStrokeRecall, hairline_px = r.HairlinePixels,
                    boundary_f = r.BoundaryF, tolerance_px = pr.GetValue(tol), bands,
                }, indented: false));
                return 0;
            }
            void Line(string name, string value) => Terminal.Out($"{name,-20}{value}");
            Line("images", $"{r.Images}");
            Line("GT glyphs", $"{r.GtGlyphs}");
            Line("predictions", $"{r.PredGlyphs} ({r.Matched} matched one-to-one, {r.Matched50} with IoU ≥ 0.5)");
            Line("fgIoU", $"{r.ForegroundIoU:F4}");
            Line("mean glyph IoU", $"{r.MeanGlyphIoU:F4}");
            Line("recall@0.5", $"{r.Recall50:F4}");
            Line("precision@0.5", $"{r.Precision50:F4}");
            Line("thin-stroke recall", $"{r.ThinStrokeRecall:F4} ({r.HairlinePixels} GT hairline px)");
            Line("boundary F", $"{r.BoundaryF:F4} (precision {r.BoundaryPrecision:F4}, recall {r.BoundaryRecall:F4}, tolerance {pr.GetValue(tol)} px)");
            foreach (var kind in r.Bands.GroupBy(b => b.Kind))
            {
                Terminal.Out("");
                Terminal.Out($"{kind.Key switch { "size" => "size (px)", "ligature" => "ligatures", var k => k },-20}{"GT",8}{"recall@0.5",12}{"glyph IoU",11}");
                foreach (var b in kind)
                    Terminal.Out($"  {Terminal.Safe(b.Label),-18}{b.GtGlyphs,8}{b.Recall50,12:F4}{b.MeanGlyphIoU,11:F4}");
            }
            return 0;
        }));
        return cmd;
    }

    /// <summary>torchsam2 train-centres: trains the glyph-centre net of --split-method centres on generated sheets.</summary>
    public static Command CreateTrainCentres()
    {
        var output = new Option<string>("--out") { Description = "weights file to write (.safetensors; written whole or not at all)", Required = true };
        var steps = Common.Int("--steps", "optimizer steps (1..1000000)", 1500, 1, 1_000_000);
        var batch = Common.Int("--batch-size", "crops per step (1..256)", 8, 1, 256);
        var crop = Common.Int("--crop", "crop side in pixels, a multiple of 16 (16..2048)", 256, 16, 2048, v => v % 16 == 0 ? null : $"--crop must be a multiple of 16, got {v}");
        var lr = Common.Real("--lr", "peak learning rate (AdamW, warm-up then cosine)", 2e-3, 1e-6, 0.5);
        var seed = new Option<int>("--seed") { Description = "random seed (sheets and initial weights)", DefaultValueFactory = _ => 0 };
        var from = new Option<string?>("--from") { Description = "start from these weights instead of random ones" };
        var every = Common.Int("--checkpoint-every", "also write the weights every N steps (0: only at the end)", 0, 0, 1_000_000);
        var stopAt = Common.OptionalInt("--stop-at", "stop after this many steps of the --steps schedule", 1, 1_000_000);
        var foreground = new Option<bool>("--foreground") { Description = "also train the foreground head (measured worse than the ink; off in glyphs by default)" };
        var minWidth = Common.Real("--min-width-scale", "tight and crowded lines: narrowest horizontal scale of a face (condensed cuts the training fonts lack)", 1, 0.25, 4);
        var maxWidth = Common.Real("--max-width-scale", "tight and crowded lines: widest horizontal scale of a face", 1, 0.25, 4);
        var unligated = new Option<bool>("--unligated-crowded") { Description = "add crowded sheets shaped without ligatures (overlapping ff, fi, fl as separate letters)" };
        var smallCrowded = new Option<bool>("--small-crowded") { Description = "add crowded sheets in small sizes only (8-24 px)" };
        var widen = new Option<string?>("--widen") { Description = "with --from: widen the net to these five channel widths first (e.g. 32,24,32,48,64), keeping what it computes" };
        var threads = Common.Threads();
        var cmd = new Command("train-centres", "Train the glyph-centre net (--split-method centres) on generated specimen sheets in the training fonts: tight, crowded and classic layouts, 8-120 px");
        foreach (var o in new Option[] { output, steps, batch, crop, lr, seed, from, every, stopAt, foreground, minWidth, maxWidth, unligated, smallCrowded, widen, threads }) cmd.Options.Add(o);
        cmd.SetAction(pr => Common.Guard(() =>
        {
            Common.ApplyThreads(pr.GetValue(threads));
            var outPath = pr.GetValue(output)!;
            var opts = new GlyphCentreTrainingOptions
            {
                Steps = pr.GetValue(steps), BatchSize = pr.GetValue(batch), CropSize = pr.GetValue(crop), LearningRate = pr.GetValue(lr), Seed = pr.GetValue(seed),
                SheetSize = Math.Max(512, pr.GetValue(crop)), StopAt = pr.GetValue(stopAt), Foreground = pr.GetValue(foreground),
                MinWidthScale = pr.GetValue(minWidth), MaxWidthScale = pr.GetValue(maxWidth), UnligatedCrowded = pr.GetValue(unligated), SmallCrowded = pr.GetValue(smallCrowded),
            };
            try { GlyphCentreTraining.Check(opts); }
            catch (ArgumentException e) { throw new UsageException(e.Message); }
            var missing = FontRegistry.Missing(FontSplit.Train);
            if (missing.Count > 0)
                Terminal.Note($"{missing.Count} training font(s) are not installed ({Terminal.Safe(string.Join(", ", missing.Select(f => f.DebianPackage).Distinct()))})");
            int[]? widths = pr.GetValue(widen) is { } wv ? Common.ParseWholeNumbers("--widen", wv, 5) : null;
            if (widths is not null && pr.GetValue(from) is null) throw new UsageException("--widen needs --from (a new net takes its widths from the start)");
            var start = pr.GetValue(from) is { } f ? Common.Doing($"reading '{f}'", () => GlyphCentreNet.Load(Common.ExistingFile("--from", f), foreground: pr.GetValue(foreground))) : null;
            if (start is not null && widths is not null)
            {
                try { start = start.Widen(widths); }
                catch (ArgumentException e) { throw new UsageException($"--widen: {e.Message}"); }
            }
            GlyphCentreNet net = null!;
            var sw = Stopwatch.StartNew();
            using (Activity.Doing("training the glyph-centre net"))
                AnsiConsole.Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                    .Start(ctx =>
                    {
                        var task = ctx.AddTask("train-centres", maxValue: opts.LastStep);
                        var progress = new SyncProgress<(int Step, double Heat, double Offset)>(p =>
                        {
                            task.Value = p.Step;
                            task.Description = $"step {p.Step} heat {p.Heat:F3} offset {p.Offset:F4}";
                            if (Console.IsOutputRedirected && p.Step % 50 == 0)
                                Console.WriteLine($"step {p.Step}/{opts.Steps} heat {p.Heat:F4} offset {p.Offset:F5} ({sw.Elapsed.TotalSeconds:F0} s)");
                        });
                        net = GlyphCentreTraining.Train(opts, start, progress, (n, _) => n.Save(outPath), pr.GetValue(every));
                    });
            net.Save(outPath);
            Terminal.Out($"trained {opts.LastStep} steps in {sw.Elapsed.TotalSeconds:F0} s → {Terminal.Safe(outPath)}");
            return 0;
        }));
        return cmd;
    }
}
