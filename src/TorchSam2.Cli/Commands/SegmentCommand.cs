using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using TorchSam2.IO;
using TorchSharp;
using static TorchSharp.torch;
using TorchSharp.Modules;
using TorchSam2.Utils;
using TorchSam2.Visualization;

namespace TorchSam2.Cli.Commands;

internal static class SegmentCommand
{
    public static Command Create()
    {
        var image = new Argument<string>("image") { Description = "the image file (PNG, JPEG, ...)" };
        var checkpoint = new Option<string>("--checkpoint") { Description = "SAM 2 weights (.pt or .safetensors)", Required = true };
        var config = new Option<string?>("--config") { Description = "YAML config or built-in name; detected from the weights when left out" };
        var points = new Option<string[]>("--point") { Description = "x,y[,label] in pixels (label 1 = foreground, 0 = background); repeat for more", AllowMultipleArgumentsPerToken = false };
        var box = new Option<string?>("--box") { Description = "x0,y0,x1,y1 in pixels" };
        var multimask = new Option<bool>("--multimask") { Description = "return three candidate masks instead of one" };
        var output = new Option<string>("--out") { Description = "output folder", DefaultValueFactory = _ => "out" };
        var device = Common.Device();
        var threads = Common.Threads();
        var cmd = new Command("segment", "Segment an image from point and/or box prompts; writes mask PNGs, an overlay PNG and a JSON with scores and RLE");
        cmd.Arguments.Add(image);
        foreach (var o in new Option[] { checkpoint, config, points, box, multimask, output, device, threads }) cmd.Options.Add(o);
        cmd.SetAction(pr => Common.Guard(() =>
        {
            Common.ApplyThreads(pr.GetValue(threads));
            var dev = Common.ParseDevice(pr.GetValue(device)!);
            var pts = (pr.GetValue(points) ?? []).Select(ParsePoint).ToArray();
            float[]? boxValues = pr.GetValue(box) is { } b ? ParseFloats(b, 4, "--box") : null;
            if (pts.Length == 0 && boxValues is null) throw new ArgumentException("give at least one --point or a --box");
            var img = RgbImage.Load(pr.GetValue(image)!);
            var sw = Stopwatch.StartNew();
            using var model = ModelLoader.Load(pr.GetValue(checkpoint)!, pr.GetValue(config), dev);
            double loadMs = sw.Elapsed.TotalMilliseconds;
            using var predictor = new Sam2ImagePredictor(model);
            sw.Restart();
            predictor.SetImage(img);
            double embedMs = sw.Elapsed.TotalMilliseconds;
            sw.Restart();
            using var pred = predictor.Predict(pts.Length > 0 ? pts.Select(p => new[] { p.x, p.y }).ToArray() : null,
                                               pts.Length > 0 ? pts.Select(p => p.label).ToArray() : null, boxValues,
                                               multimaskOutput: pr.GetValue(multimask));
            double predictMs = sw.Elapsed.TotalMilliseconds;
            var outDir = pr.GetValue(output)!;
            Directory.CreateDirectory(outDir);
            var scores = pred.Scores;
            var order = Enumerable.Range(0, scores.Length).OrderByDescending(i => scores[i]).ToArray();
            var masks = new List<bool[]>();
            var entries = new List<object>();
            foreach (var (i, rank) in order.Select((i, r) => (i, r)))
            {
                using var m = pred.Masks[i];
                var rle = Rle.Encode(m);
                var pixels = m.to(ScalarType.Bool).ToArray<bool>();
                masks.Add(pixels);
                var png = Path.Combine(outDir, $"mask_{rank}.png");
                ImageIO.Write(png, pixels.Select(v => v ? (byte)255 : (byte)0).ToArray(), img.Height, img.Width, 1);
                entries.Add(new { file = Path.GetFileName(png), score = scores[i], area = rle.Area(), rle = new { size = new[] { rle.Height, rle.Width }, counts = rle.ToCocoString() } });
            }
            var overlay = Overlay.Draw(img, masks.Take(1).ToList(), pts.Select(p => (p.x, p.y, p.label)), boxValues is null ? null : [boxValues]);
            var overlayPath = Path.Combine(outDir, "overlay.png");
            overlay.Save(overlayPath);
            var json = new { image = pr.GetValue(image), height = img.Height, width = img.Width, masks = entries, timings_ms = new { load = loadMs, set_image = embedMs, predict = predictMs } };
            File.WriteAllText(Path.Combine(outDir, "masks.json"), JsonSerializer.Serialize(json, new JsonSerializerOptions { WriteIndented = true }));
            Console.WriteLine($"{masks.Count} mask(s), best score {scores.Max():F3}; set_image {embedMs:F0} ms, predict {predictMs:F0} ms");
            Console.WriteLine($"wrote {overlayPath}, mask_*.png and masks.json in {outDir}");
            return 0;
        }));
        return cmd;
    }

    private static (float x, float y, int label) ParsePoint(string s)
    {
        var v = ParseFloats(s, -1, "--point");
        if (v.Length is not (2 or 3)) throw new ArgumentException($"--point takes x,y or x,y,label, got '{s}'");
        int label = v.Length == 3 ? (int)v[2] : 1;
        if (label is not (0 or 1)) throw new ArgumentException($"point label must be 0 or 1, got {label}");
        return (v[0], v[1], label);
    }

    private static float[] ParseFloats(string s, int count, string what)
    {
        var parts = s.Split(',', StringSplitOptions.TrimEntries);
        if (count > 0 && parts.Length != count) throw new ArgumentException($"{what} takes {count} comma-separated numbers, got '{s}'");
        return parts.Select(p => float.TryParse(p, NumberStyles.Float, CultureInfo.InvariantCulture, out var f) ? f : throw new ArgumentException($"{what}: '{p}' is not a number")).ToArray();
    }
}
