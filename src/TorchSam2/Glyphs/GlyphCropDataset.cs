using TorchSam2.IO;
using TorchSam2.Training;

namespace TorchSam2.Glyphs;

/// <summary>
/// Training samples shaped like what <see cref="GlyphSegmenter"/> feeds the model: a square crop of a
/// generated specimen sheet around one glyph, the glyph spanning a random 20–50 % of the crop, with
/// every glyph mostly inside the crop as an instance. Generated on the fly and reproducible:
/// sample i depends only on (seed, i).
/// </summary>
public sealed class GlyphCropDataset : ISegmentationDataset
{
    private readonly SpecimenOptions _options;
    private readonly SpecimenOptions _crowded;
    private readonly double _crowdedFraction;
    private readonly int _seed;
    private readonly int _cropsPerSheet;
    private readonly int _minSide;
    private int _sheetIndex = -1;
    private (RgbImage Sheet, List<GlyphAnnotation> Glyphs) _sheet;

    /// <param name="count">samples in the dataset</param>
    /// <param name="split">train or held-out fonts</param>
    /// <param name="cropsPerSheet">consecutive samples cut from one sheet (rendering a sheet is the slow part)</param>
    /// <param name="minSide">smallest crop side (the segmenter magnifies small glyphs at most model size / 8)</param>
    /// <param name="crowdedFraction">share of sheets set in <paramref name="crowded"/> (touching letters, tight leading, ligatures)</param>
    /// <param name="crowded">the style of those sheets, <see cref="SpecimenOptions.Crowded"/> by default (split and size are this dataset's)</param>
    public GlyphCropDataset(int count, FontSplit split, int seed, int cropsPerSheet = 16, int minSide = 32, SpecimenOptions? options = null, double crowdedFraction = 0,
                            SpecimenOptions? crowded = null)
    {
        if (crowdedFraction is < 0 or > 1 || double.IsNaN(crowdedFraction)) throw new ArgumentOutOfRangeException(nameof(crowdedFraction), "the crowded fraction must be in [0, 1]");
        _crowdedFraction = crowdedFraction;
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count), "count must be positive");
        Count = count;
        _seed = seed;
        _cropsPerSheet = Math.Max(1, cropsPerSheet);
        _minSide = Math.Max(8, minSide);
        _options = (options ?? new SpecimenOptions()) with { Split = split };
        _crowded = (crowded ?? SpecimenOptions.Crowded) with { Split = split, Width = _options.Width, Height = _options.Height };
    }

    public int Count { get; }

    public SegmentationSample Get(int index)
    {
        if (index < 0 || index >= Count) throw new ArgumentOutOfRangeException(nameof(index));
        int sheetIndex = index / _cropsPerSheet;
        if (sheetIndex != _sheetIndex)
        {
            int sheetSeed = SpecimenGenerator.SheetSeed(_seed, sheetIndex);
            // Which sheets are crowded depends only on (seed, sheet), so any sample can be made alone.
            bool crowded = _crowdedFraction > 0 && new Random(sheetSeed ^ 0x7C0D).NextDouble() < _crowdedFraction;
            _sheet = SpecimenGenerator.Generate(crowded ? _crowded : _options, sheetSeed);
            _sheetIndex = sheetIndex;
        }
        var (sheet, glyphs) = _sheet;
        var rng = new Random(SpecimenGenerator.SheetSeed(_seed ^ 0x5EED, index));
        var visible = glyphs.Where(g => !g.Mask.IsEmpty).ToList();
        if (visible.Count == 0) return new SegmentationSample(sheet, [], $"crop_{index}");
        var target = visible[rng.Next(visible.Count)];
        var (gx, gy, gw, gh) = target.Mask.BBox;
        int dim = Math.Max(gw, gh);
        double fraction = 0.2 + 0.3 * rng.NextDouble();
        int side = Math.Max(_minSide, (int)Math.Ceiling(dim / fraction));
        side = Math.Min(side, Math.Min(sheet.Width, sheet.Height));
        // Place the glyph anywhere in the crop where it fits, then keep the crop on the sheet.
        int x = gx - rng.Next(Math.Max(1, side - gw));
        int y = gy - rng.Next(Math.Max(1, side - gh));
        x = Math.Clamp(x, 0, sheet.Width - side);
        y = Math.Clamp(y, 0, sheet.Height - side);
        var crop = Crop(sheet, x, y, side);
        var masks = new List<bool[]>();
        foreach (var g in visible)
        {
            var (bx, by, bw, bh) = g.Mask.BBox;
            if (bx >= x + side || by >= y + side || bx + bw <= x || by + bh <= y) continue;
            var m = new bool[side * side];
            long inside = 0;
            for (int yy = Math.Max(by, y); yy < Math.Min(by + bh, y + side); yy++)
                for (int xx = Math.Max(bx, x); xx < Math.Min(bx + bw, x + side); xx++)
                    if (g.Mask[xx, yy])
                    {
                        m[(yy - y) * side + (xx - x)] = true;
                        inside++;
                    }
            // Glyphs cut by the crop edge stay only when most of them is inside, as the segmenter's boxes are.
            if (inside > 0 && inside * 2 >= g.Mask.Area) masks.Add(m);
        }
        return new SegmentationSample(crop, masks, $"crop_{index}");
    }

    private static RgbImage Crop(RgbImage sheet, int x, int y, int side)
    {
        var px = new byte[side * side * 3];
        for (int r = 0; r < side; r++)
            Array.Copy(sheet.Pixels, ((y + r) * sheet.Width + x) * 3, px, r * side * 3, side * 3);
        return new RgbImage(px, side, side);
    }
}
