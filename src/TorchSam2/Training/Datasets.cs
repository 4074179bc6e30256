using System.Globalization;
using System.Text.Json;
using TorchSam2.IO;
using TorchSharp;
using TorchSharp.Modules;
using TorchSam2.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace TorchSam2.Training;

/// <summary>One training image with its instance masks (row-major bool, Height×Width each).</summary>
public sealed record SegmentationSample(RgbImage Image, IReadOnlyList<bool[]> Masks, string Name = "");

/// <summary>A set of images with instance masks.</summary>
public interface ISegmentationDataset
{
    int Count { get; }
    SegmentationSample Get(int index);
}

/// <summary>An in-memory list of samples (synthetic data, tests).</summary>
public sealed class InMemorySegmentationDataset(IReadOnlyList<SegmentationSample> samples) : ISegmentationDataset
{
    public int Count => samples.Count;
    public SegmentationSample Get(int index) => samples[index];
}

/// <summary>
/// A COCO instance-segmentation JSON (images, annotations): polygons are rasterized with a scan-line fill at pixel
/// centres; RLE may be uncompressed (counts as numbers) or the compressed COCO string. Images without
/// annotations are skipped. Decoded samples are cached when <c>cache</c> (small datasets).
/// </summary>
public sealed class CocoSegmentationDataset : ISegmentationDataset
{
    private sealed record Entry(string Path, int Height, int Width, List<JsonElement> Segmentations);

    private readonly List<Entry> _entries = new();
    private readonly SegmentationSample?[] _cache;
    private readonly bool _useCache;
    private readonly JsonDocument _doc;

    public CocoSegmentationDataset(string jsonPath, string? imageRoot = null, bool cache = true, bool skipCrowd = false)
    {
        Limits.CheckJsonFile(jsonPath);
        _doc = JsonDocument.Parse(File.ReadAllBytes(jsonPath));
        imageRoot ??= Path.GetDirectoryName(Path.GetFullPath(jsonPath))!;
        var root = _doc.RootElement;
        var images = new Dictionary<long, (string file, int h, int w)>();
        var order = new List<long>();
        foreach (var img in root.GetProperty("images").EnumerateArray())
        {
            long id = img.GetProperty("id").GetInt64();
            var entry = (img.GetProperty("file_name").GetString()!, img.TryGetProperty("height", out var h) ? h.GetInt32() : 0,
                         img.TryGetProperty("width", out var w) ? w.GetInt32() : 0);
            if (entry.Item2 != 0 || entry.Item3 != 0) Limits.CheckImageSize(entry.Item3, entry.Item2, $"{jsonPath}: image {id} ('{entry.Item1}')");
            if (!images.TryAdd(id, entry)) throw new InvalidDataException($"{jsonPath}: image id {id} appears more than once");
            order.Add(id);
        }
        var anns = new Dictionary<long, List<JsonElement>>();
        if (root.TryGetProperty("annotations", out var annArr))
            Limits.CheckAnnotationCount(annArr.GetArrayLength(), jsonPath);
        if (root.TryGetProperty("annotations", out annArr))
            foreach (var a in annArr.EnumerateArray())
            {
                if (skipCrowd && a.TryGetProperty("iscrowd", out var c) && c.ValueKind == JsonValueKind.Number && c.GetInt32() == 1) continue;
                if (!a.TryGetProperty("segmentation", out var seg)) continue;
                long imgId = a.GetProperty("image_id").GetInt64();
                if (!anns.TryGetValue(imgId, out var list)) anns[imgId] = list = new();
                list.Add(seg);
            }
        foreach (var id in order)
        {
            if (!anns.TryGetValue(id, out var segs) || segs.Count == 0) continue;
            var (file, h, w) = images[id];
            _entries.Add(new Entry(Path.Combine(imageRoot, file), h, w, segs));
        }
        _useCache = cache;
        _cache = new SegmentationSample?[_entries.Count];
    }

    public int Count => _entries.Count;

    public SegmentationSample Get(int index)
    {
        if (_useCache && _cache[index] is { } hit) return hit;
        var e = _entries[index];
        if (e.Segmentations.Count > Limits.MaxInstancesPerImage)
            throw new LimitExceededException($"'{e.Path}' has {e.Segmentations.Count:N0} annotations, above the limit of {Limits.MaxInstancesPerImage:N0} instances per image (set TORCHSAM2_MAX_INSTANCES to raise it)");
        var img = RgbImage.Load(e.Path);
        if ((e.Height != 0 || e.Width != 0) && (e.Height != img.Height || e.Width != img.Width))
            throw new InvalidDataException($"'{e.Path}' is {img.Width}x{img.Height} but its annotations say {e.Width}x{e.Height}");
        var masks = e.Segmentations.Select(s => DecodeSegmentation(s, img.Height, img.Width)).ToList();
        var sample = new SegmentationSample(img, masks, Path.GetFileName(e.Path));
        if (_useCache) _cache[index] = sample;
        return sample;
    }

    /// <summary>A COCO "segmentation" value (polygon list, RLE object with numeric or string counts) as a row-major mask.</summary>
    public static bool[] DecodeSegmentation(JsonElement seg, int h, int w)
    {
        if (seg.ValueKind == JsonValueKind.Array)
        {
            var mask = new bool[h * w];
            foreach (var poly in seg.EnumerateArray())
            {
                var xy = poly.EnumerateArray().Select(v => v.GetDouble()).ToArray();
                FillPolygon(mask, h, w, xy);
            }
            return mask;
        }
        var size = seg.GetProperty("size").EnumerateArray().Select(v => v.GetInt32()).ToArray();
        if (size[0] != h || size[1] != w) throw new InvalidDataException($"RLE size {size[0]}×{size[1]} differs from the image {h}×{w}");
        var counts = seg.GetProperty("counts");
        var rle = counts.ValueKind == JsonValueKind.String
            ? Rle.FromCocoString(counts.GetString()!, h, w)
            : new Rle(h, w, counts.EnumerateArray().Select(v => v.GetInt32()).ToArray());
        return rle.DecodeRowMajor();
    }

    /// <summary>
    /// Scan-line fill (even-odd) of a polygon given as x0,y0,x1,y1,…: a pixel is inside when its centre is
    /// (ORed into the mask, so several polygons make one instance).
    /// </summary>
    public static void FillPolygon(bool[] mask, int h, int w, IReadOnlyList<double> xy)
    {
        int n = xy.Count / 2;
        if (n < 3) return;
        var xs = new List<double>();
        for (int y = 0; y < h; y++)
        {
            double cy = y + 0.5;
            xs.Clear();
            for (int i = 0; i < n; i++)
            {
                double x0 = xy[2 * i], y0 = xy[2 * i + 1];
                double x1 = xy[2 * ((i + 1) % n)], y1 = xy[2 * ((i + 1) % n) + 1];
                // half-open rule so shared vertices count once
                if ((y0 <= cy && y1 > cy) || (y1 <= cy && y0 > cy))
                    xs.Add(x0 + (cy - y0) / (y1 - y0) * (x1 - x0));
            }
            xs.Sort();
            for (int k = 0; k + 1 < xs.Count; k += 2)
            {
                // pixels whose centre x + 0.5 lies in [xa, xb)
                int from = Math.Max(0, (int)Math.Ceiling(xs[k] - 0.5));
                int to = Math.Min(w - 1, (int)Math.Ceiling(xs[k + 1] - 0.5) - 1);
                for (int x = from; x <= to; x++) mask[y * w + x] = true;
            }
        }
    }
}

/// <summary>
/// A folder of image + instance-mask pairs: either <c>images/NAME.ext</c> with <c>masks/NAME.png</c>, or
/// <c>NAME.ext</c> with <c>NAME_mask.png</c> side by side. Each distinct non-zero mask value (grey level or
/// palette colour) is one instance.
/// </summary>
public sealed class MaskFolderDataset : ISegmentationDataset
{
    private static readonly string[] ImageExts = [".png", ".jpg", ".jpeg", ".bmp", ".webp"];
    private readonly List<(string image, string mask)> _pairs = new();
    private readonly SegmentationSample?[] _cache;
    private readonly bool _useCache;

    public MaskFolderDataset(string folder, bool cache = true)
    {
        string imgDir = Path.Combine(folder, "images"), maskDir = Path.Combine(folder, "masks");
        if (Directory.Exists(imgDir) && Directory.Exists(maskDir))
        {
            foreach (var f in Directory.GetFiles(imgDir).Where(IsImage).OrderBy(f => f, StringComparer.Ordinal))
            {
                var m = Path.Combine(maskDir, Path.GetFileNameWithoutExtension(f) + ".png");
                if (File.Exists(m)) _pairs.Add((f, m));
            }
        }
        else
        {
            foreach (var f in Directory.GetFiles(folder).Where(IsImage).OrderBy(f => f, StringComparer.Ordinal))
            {
                if (Path.GetFileNameWithoutExtension(f).EndsWith("_mask", StringComparison.Ordinal)) continue;
                var m = Path.Combine(folder, Path.GetFileNameWithoutExtension(f) + "_mask.png");
                if (File.Exists(m)) _pairs.Add((f, m));
            }
        }
        if (_pairs.Count == 0) throw new InvalidDataException($"no image/mask pairs in {folder} (images/ + masks/, or NAME.png + NAME_mask.png)");
        _useCache = cache;
        _cache = new SegmentationSample?[_pairs.Count];
    }

    private static bool IsImage(string f) => ImageExts.Contains(Path.GetExtension(f).ToLowerInvariant());

    public int Count => _pairs.Count;

    public SegmentationSample Get(int index)
    {
        if (_useCache && _cache[index] is { } hit) return hit;
        var (imgPath, maskPath) = _pairs[index];
        var img = RgbImage.Load(imgPath);
        var ids = RgbImage.Load(maskPath);
        if (ids.Height != img.Height || ids.Width != img.Width)
            throw new InvalidDataException($"{maskPath} is {ids.Height}×{ids.Width} but the image is {img.Height}×{img.Width}");
        List<bool[]> masks;
        try { masks = MasksFromIds(ids); }
        catch (LimitExceededException e) { throw new LimitExceededException($"{maskPath}: {e.Message}"); }
        var sample = new SegmentationSample(img, masks, Path.GetFileName(imgPath));
        if (_useCache) _cache[index] = sample;
        return sample;
    }

    /// <summary>One mask per distinct non-black colour, in increasing colour order.</summary>
    public static List<bool[]> MasksFromIds(RgbImage ids)
    {
        int n = ids.Height * ids.Width;
        var p = ids.Pixels;
        var keys = new int[n];
        var distinct = new SortedSet<int>();
        for (int i = 0; i < n; i++)
        {
            int k = (p[3 * i] << 16) | (p[3 * i + 1] << 8) | p[3 * i + 2];
            keys[i] = k;
            if (k != 0) distinct.Add(k);
        }
        if (distinct.Count > Limits.MaxInstancesPerImage)
            throw new LimitExceededException($"a mask image has {distinct.Count:N0} distinct colours (instances), above the limit of {Limits.MaxInstancesPerImage:N0} (set TORCHSAM2_MAX_INSTANCES to raise it)");
        var masks = new List<bool[]>();
        foreach (var k in distinct)
        {
            var m = new bool[n];
            for (int i = 0; i < n; i++) m[i] = keys[i] == k;
            masks.Add(m);
        }
        return masks;
    }
}

/// <summary>Augmentations applied with the masks (all drawn from the caller's seeded Random).</summary>
public sealed record AugmentationOptions
{
    public double HorizontalFlipProb { get; init; } = 0.5;
    /// <summary>Probability of applying the random affine transform.</summary>
    public double AffineProb { get; init; } = 0.5;
    public double ScaleMin { get; init; } = 0.8;
    public double ScaleMax { get; init; } = 1.2;
    /// <summary>Maximum translation as a fraction of the side.</summary>
    public double Translate { get; init; } = 0.1;
    /// <summary>Maximum rotation in degrees (0 = none).</summary>
    public double Degrees { get; init; } = 0;
    public double Brightness { get; init; } = 0.1;
    public double Contrast { get; init; } = 0.03;
    public double Saturation { get; init; } = 0.03;
    public double GrayscaleProb { get; init; } = 0.05;

    public static AugmentationOptions None { get; } = new()
    {
        HorizontalFlipProb = 0, AffineProb = 0, Brightness = 0, Contrast = 0, Saturation = 0, GrayscaleProb = 0,
    };

    /// <summary>Probabilities in [0, 1]; scales positive with min ≤ max; jitter and translation finite and non-negative.</summary>
    public void Validate()
    {
        OptionChecks.Probability(nameof(HorizontalFlipProb), HorizontalFlipProb);
        OptionChecks.Probability(nameof(AffineProb), AffineProb);
        OptionChecks.Real(nameof(ScaleMin), ScaleMin, 1e-3, 1e3);
        OptionChecks.Real(nameof(ScaleMax), ScaleMax, ScaleMin, 1e3);
        OptionChecks.Real(nameof(Translate), Translate, 0, 1);
        OptionChecks.Real(nameof(Degrees), Degrees, 0, 180);
        OptionChecks.Real(nameof(Brightness), Brightness, 0, 1);
        OptionChecks.Real(nameof(Contrast), Contrast, 0, 1);
        OptionChecks.Real(nameof(Saturation), Saturation, 0, 1);
        OptionChecks.Probability(nameof(GrayscaleProb), GrayscaleProb);
    }
}

/// <summary>A sample ready for the model: normalized CHW pixels at S×S and its instance masks at S×S.</summary>
public sealed record PreparedSample(float[] Image, IReadOnlyList<bool[]> Masks, int Size);

/// <summary>
/// Turns a <see cref="SegmentationSample"/> into model input: resize to S×S (bilinear with antialias as the
/// predictor's transform; masks nearest), optional flip / affine / colour jitter / grayscale, ImageNet normalization.
/// </summary>
public static class SampleTransforms
{
    private static readonly float[] Mean = [0.485f, 0.456f, 0.406f];
    private static readonly float[] Std = [0.229f, 0.224f, 0.225f];

    /// <summary>
    /// At most maxObjects masks are kept (a random subset when rng is given, else the first ones).
    /// augment null or rng null: no augmentation.
    /// </summary>
    public static PreparedSample Prepare(SegmentationSample sample, int size, Random? rng, AugmentationOptions? augment, int maxObjects = int.MaxValue)
    {
        var masks = sample.Masks.ToList();
        if (masks.Count > maxObjects)
        {
            if (rng is not null)
            {
                // partial Fisher–Yates for a random subset in a deterministic order
                var idx = Enumerable.Range(0, masks.Count).ToArray();
                for (int i = 0; i < maxObjects; i++) { int j = i + rng.Next(idx.Length - i); (idx[i], idx[j]) = (idx[j], idx[i]); }
                masks = idx.Take(maxObjects).Select(i => sample.Masks[i]).ToList();
            }
            else masks = masks.Take(maxObjects).ToList();
        }
        int h = sample.Image.Height, w = sample.Image.Width;
        var rgb = ResizeImage(sample.Image, size);                // HWC floats in [0, 1]
        var sm = masks.Select(m => ResizeNearest(m, h, w, size)).ToList();
        if (rng is not null && augment is not null)
        {
            if (rng.NextDouble() < augment.HorizontalFlipProb)
            {
                rgb = FlipRgb(rgb, size);
                sm = sm.Select(m => FlipMask(m, size)).ToList();
            }
            if (rng.NextDouble() < augment.AffineProb)
            {
                double s = augment.ScaleMin + rng.NextDouble() * (augment.ScaleMax - augment.ScaleMin);
                double tx = (2 * rng.NextDouble() - 1) * augment.Translate * size;
                double ty = (2 * rng.NextDouble() - 1) * augment.Translate * size;
                double deg = (2 * rng.NextDouble() - 1) * augment.Degrees;
                (rgb, sm) = Affine(rgb, sm, size, s, tx, ty, deg);
            }
            ColorJitter(rgb, rng, augment);
            if (rng.NextDouble() < augment.GrayscaleProb) ToGray(rgb);
        }
        var chw = new float[3 * size * size];
        int n = size * size;
        for (int i = 0; i < n; i++)
            for (int c = 0; c < 3; c++)
                chw[c * n + i] = (rgb[3 * i + c] - Mean[c]) / Std[c];
        return new PreparedSample(chw, sm, size);
    }

    private static float[] ResizeImage(RgbImage img, int size)
    {
        using var scope = NewDisposeScope();
        using var _ = inference_mode();
        var t = img.ToTensor().permute(2, 0, 1).to(ScalarType.Float32) / 255.0;
        if (img.Height != size || img.Width != size)
            t = F.interpolate(t.unsqueeze(0), size: [size, size], mode: InterpolationMode.Bilinear, align_corners: false, antialias: true).squeeze(0);
        return t.clamp(0.0, 1.0).permute(1, 2, 0).contiguous().ToArray<float>();
    }

    /// <summary>Nearest-neighbour resize of a row-major mask (PyTorch "nearest": src = floor(dst · in/out)).</summary>
    public static bool[] ResizeNearest(bool[] m, int h, int w, int size)
    {
        if (h == size && w == size) return (bool[])m.Clone();
        var r = new bool[size * size];
        for (int y = 0; y < size; y++)
        {
            int sy = Math.Min(h - 1, (int)Math.Floor(y * (double)h / size));
            for (int x = 0; x < size; x++)
            {
                int sx = Math.Min(w - 1, (int)Math.Floor(x * (double)w / size));
                r[y * size + x] = m[sy * w + sx];
            }
        }
        return r;
    }

    private static float[] FlipRgb(float[] rgb, int s)
    {
        var r = new float[rgb.Length];
        for (int y = 0; y < s; y++)
            for (int x = 0; x < s; x++)
                for (int c = 0; c < 3; c++) r[(y * s + x) * 3 + c] = rgb[(y * s + (s - 1 - x)) * 3 + c];
        return r;
    }

    private static bool[] FlipMask(bool[] m, int s)
    {
        var r = new bool[m.Length];
        for (int y = 0; y < s; y++)
            for (int x = 0; x < s; x++) r[y * s + x] = m[y * s + (s - 1 - x)];
        return r;
    }

    // Scale/rotate about the centre then translate; pixels are pulled through the inverse map (image bilinear,
    // masks nearest, outside = 0).
    private static (float[], List<bool[]>) Affine(float[] rgb, List<bool[]> masks, int s, double scale, double tx, double ty, double deg)
    {
        double a = deg * Math.PI / 180, cos = Math.Cos(a), sin = Math.Sin(a), c = s / 2.0;
        var outRgb = new float[rgb.Length];
        var outMasks = masks.Select(_ => new bool[s * s]).ToList();
        for (int y = 0; y < s; y++)
            for (int x = 0; x < s; x++)
            {
                // inverse: subtract translation, undo rotation and scale (pixel centres)
                double dx = x + 0.5 - c - tx, dy = y + 0.5 - c - ty;
                double sx = (cos * dx + sin * dy) / scale + c - 0.5;
                double sy = (-sin * dx + cos * dy) / scale + c - 0.5;
                int o = y * s + x;
                int nx = (int)Math.Round(sx), ny = (int)Math.Round(sy);
                if (nx >= 0 && ny >= 0 && nx < s && ny < s)
                    for (int k = 0; k < masks.Count; k++) outMasks[k][o] = masks[k][ny * s + nx];
                int x0 = (int)Math.Floor(sx), y0 = (int)Math.Floor(sy);
                double fx = sx - x0, fy = sy - y0;
                for (int ch = 0; ch < 3; ch++)
                {
                    double v = 0;
                    v += Px(rgb, s, x0, y0, ch) * (1 - fx) * (1 - fy);
                    v += Px(rgb, s, x0 + 1, y0, ch) * fx * (1 - fy);
                    v += Px(rgb, s, x0, y0 + 1, ch) * (1 - fx) * fy;
                    v += Px(rgb, s, x0 + 1, y0 + 1, ch) * fx * fy;
                    outRgb[o * 3 + ch] = (float)v;
                }
            }
        return (outRgb, outMasks);
    }

    private static float Px(float[] rgb, int s, int x, int y, int c) =>
        x < 0 || y < 0 || x >= s || y >= s ? 0f : rgb[(y * s + x) * 3 + c];

    private static void ColorJitter(float[] rgb, Random rng, AugmentationOptions o)
    {
        double b = Factor(rng, o.Brightness), ct = Factor(rng, o.Contrast), sat = Factor(rng, o.Saturation);
        int n = rgb.Length / 3;
        if (b != 1) for (int i = 0; i < rgb.Length; i++) rgb[i] = Math.Clamp((float)(rgb[i] * b), 0f, 1f);
        if (ct != 1)
        {
            double mean = 0;
            for (int i = 0; i < n; i++) mean += Gray(rgb, i);
            mean /= n;
            for (int i = 0; i < rgb.Length; i++) rgb[i] = Math.Clamp((float)((rgb[i] - mean) * ct + mean), 0f, 1f);
        }
        if (sat != 1)
            for (int i = 0; i < n; i++)
            {
                float g = Gray(rgb, i);
                for (int c = 0; c < 3; c++) rgb[3 * i + c] = Math.Clamp((float)((rgb[3 * i + c] - g) * sat + g), 0f, 1f);
            }
    }

    // torchvision ColorJitter draws a factor uniformly from [1 − x, 1 + x].
    private static double Factor(Random rng, double x) => x <= 0 ? 1.0 : 1 - x + rng.NextDouble() * 2 * x;

    private static float Gray(float[] rgb, int i) => 0.299f * rgb[3 * i] + 0.587f * rgb[3 * i + 1] + 0.114f * rgb[3 * i + 2];

    private static void ToGray(float[] rgb)
    {
        for (int i = 0; i < rgb.Length / 3; i++)
        {
            float g = Gray(rgb, i);
            rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = g;
        }
    }
}

/// <summary>
/// Glyph specimen sheets generated on the fly by <see cref="Glyphs.SpecimenGenerator"/> (sheet i uses
/// SheetSeed(seed, i), the same sheets WriteDataset would write); each glyph is one instance.
/// </summary>
public sealed class GlyphSpecimenDataset : ISegmentationDataset
{
    private readonly Glyphs.SpecimenOptions _options;
    private readonly int _seed;
    private readonly SegmentationSample?[] _cache;

    public GlyphSpecimenDataset(int count, int seed, Glyphs.SpecimenOptions? options = null)
    {
        _options = options ?? new Glyphs.SpecimenOptions();
        _seed = seed;
        _cache = new SegmentationSample?[count];
    }

    public int Count => _cache.Length;

    public SegmentationSample Get(int index)
    {
        if (_cache[index] is { } hit) return hit;
        var (sheet, glyphs) = Glyphs.SpecimenGenerator.Generate(_options, Glyphs.SpecimenGenerator.SheetSeed(_seed, index));
        var masks = glyphs.Where(g => !g.Mask.IsEmpty).Select(g => g.Mask.ToFull(sheet.Height, sheet.Width)).ToList();
        return _cache[index] = new SegmentationSample(sheet, masks, $"sheet_{index}");
    }
}
