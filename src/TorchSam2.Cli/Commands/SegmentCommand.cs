using System.CommandLine;
using System.Diagnostics;
using TorchSam2.IO;
using TorchSharp;
using static TorchSharp.torch;
using TorchSam2.Utils;
using TorchSam2.Visualization;

namespace TorchSam2.Cli.Commands;

internal static class SegmentCommand
{
    /// <summary>Everything segment writes in --out (an earlier run's files of these names are replaced as a set).</summary>
    internal static readonly string[] Outputs = ["overlay.png", "mask_*.png", "masks.json"];

    public static Command Create()
    {
        var image = new Argument<string>("image") { Description = "the image file (PNG, JPEG, ...)" };
        var checkpoint = new Option<string>("--checkpoint") { Description = "SAM 2 weights (.pt or .safetensors), or a name: tiny, small, base_plus, large, sam2_hiera_* (SAM 2.0), glyph-demo (downloaded and cached on first use)", Required = true };
        var config = new Option<string?>("--config") { Description = "YAML config or built-in name; detected from the weights when left out" };
        var points = new Option<string[]>("--point") { Description = "x,y[,label] in pixels (label 1 = foreground, 0 = background); repeat for more", AllowMultipleArgumentsPerToken = false };
        var box = new Option<string?>("--box") { Description = "x0,y0,x1,y1 in pixels" };
        var multimask = new Option<bool>("--multimask") { Description = "return three candidate masks instead of one" };
        var output = new Option<string>("--out") { Description = "output folder (replaced as a whole by the new results)", DefaultValueFactory = _ => "out" };
        var device = Common.Device();
        var threads = Common.Threads();
        var cmd = new Command("segment", "Segment an image from point and/or box prompts; writes mask PNGs, an overlay PNG and a JSON with scores and RLE");
        cmd.Arguments.Add(image);
        foreach (var o in new Option[] { checkpoint, config, points, box, multimask, output, device, threads }) cmd.Options.Add(o);
        cmd.SetAction(pr => Common.Guard(() =>
        {
            Common.ApplyThreads(pr.GetValue(threads));
            var dev = Common.ParseDevice(pr.GetValue(device)!);
            var pts = (pr.GetValue(points) ?? []).Select(p => Common.ParsePoint("--point", p)).ToArray();
            float[]? boxValues = pr.GetValue(box) is { } b ? Common.ParseBox("--box", b) : null;
            if (pts.Length == 0 && boxValues is null) throw new UsageException("give at least one --point or a --box");
            var imagePath = Common.ExistingFile("image", pr.GetValue(image));
            var ckptArg = pr.GetValue(checkpoint)!;
            using var outDir = OutputFolder.Begin(pr.GetValue(output)!, Outputs, "masks.json",
                [("image", imagePath), ("--checkpoint", ckptArg), ("--config", Common.ConfigFile(pr.GetValue(config)))]);

            RgbImage img;
            using (Activity.Doing($"reading the image '{imagePath}'")) img = RgbImage.Load(imagePath);
            Common.CheckInImage("--point", pts, "--box", boxValues, img.Width, img.Height);
            var ckpt = Common.ExistingFile("--checkpoint", ckptArg);
            var sw = Stopwatch.StartNew();
            using var model = Common.LoadModel(ckpt, pr.GetValue(config), dev);
            double loadMs = sw.Elapsed.TotalMilliseconds;
            using var predictor = new Sam2ImagePredictor(model);
            sw.Restart();
            using (Activity.Doing("computing the image embedding")) predictor.SetImage(img);
            double embedMs = sw.Elapsed.TotalMilliseconds;
            sw.Restart();
            using var act = Activity.Doing("predicting masks");
            using var pred = predictor.Predict(pts.Length > 0 ? pts.Select(p => new[] { p.x, p.y }).ToArray() : null,
                                               pts.Length > 0 ? pts.Select(p => p.label).ToArray() : null, boxValues,
                                               multimaskOutput: pr.GetValue(multimask));
            double predictMs = sw.Elapsed.TotalMilliseconds;
            var scores = pred.Scores;
            // NaN scores (NaN weights) sort last and are written as null
            var order = Enumerable.Range(0, scores.Length).OrderByDescending(i => float.IsNaN(scores[i]) ? float.NegativeInfinity : scores[i]).ToArray();
            var masks = new List<bool[]>();
            var entries = new List<object>();
            using (Activity.Doing($"writing the results to '{outDir.Display}'"))
            {
                foreach (var (i, rank) in order.Select((i, r) => (i, r)))
                {
                    using var m = pred.Masks[i];
                    var rle = Rle.Encode(m);
                    bool[] pixels;
                    using (var asBool = m.to(ScalarType.Bool)) pixels = asBool.ToArray<bool>();
                    masks.Add(pixels);
                    var name = $"mask_{rank}.png";
                    ImageIO.Write(outDir.File(name), pixels.Select(v => v ? (byte)255 : (byte)0).ToArray(), img.Height, img.Width, 1);
                    entries.Add(new { file = name, score = scores[i], area = rle.Area(), rle = new { size = new[] { rle.Height, rle.Width }, counts = rle.ToCocoString() } });
                }
                var overlay = Overlay.Draw(img, masks.Take(1).ToList(), pts.Select(p => (p.x, p.y, p.label)), boxValues is null ? null : [boxValues],
                    labels: order.Length > 0 && float.IsFinite(scores[order[0]]) ? [scores[order[0]].ToString("0.000", System.Globalization.CultureInfo.InvariantCulture)] : null);
                overlay.Save(outDir.File("overlay.png"));
                var json = new { image = imagePath, height = img.Height, width = img.Width, masks = entries, timings_ms = new { load = loadMs, set_image = embedMs, predict = predictMs } };
                File.WriteAllText(outDir.File("masks.json"), CliJson.Serialize(json));
                outDir.Commit();
            }
            if (scores.Any(s => !float.IsFinite(s)))
                Terminal.Warning("the model produced non-finite scores (NaN or infinite weights?); they are written as null");
            var best = scores.Where(float.IsFinite).DefaultIfEmpty(float.NaN).Max();
            Terminal.Out($"{masks.Count} mask(s), best score {best:F3}; set_image {embedMs:F0} ms, predict {predictMs:F0} ms");
            Terminal.Out($"wrote overlay.png, mask_*.png and masks.json in {Terminal.Safe(outDir.Display)}");
            return 0;
        }));
        return cmd;
    }
}
