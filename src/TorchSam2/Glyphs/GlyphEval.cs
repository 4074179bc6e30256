using TorchSam2.Utils;

namespace TorchSam2.Glyphs;

/// <summary>
/// Glyph segmentation quality. Pixel counts (foreground, boundaries, hairline pixels) are pooled over images; glyph
/// metrics come from a one-to-one matching of GT glyphs and predictions per image (greedy by IoU, as COCO): a mask
/// covering two touching glyphs is matched to one of them only.
/// </summary>
/// <param name="ForegroundIoU">IoU of the union of predicted masks with the union of GT masks</param>
/// <param name="MeanGlyphIoU">sum of the matched pairs' IoUs over the number of GT glyphs (an unmatched GT glyph counts 0); 1 without GT glyphs</param>
/// <param name="Recall50">GT glyphs matched with IoU ≥ 0.5 over GT glyphs; 1 without GT glyphs</param>
/// <param name="BoundaryF">F-score of the foreground boundaries with a pixel tolerance</param>
public sealed record GlyphEvalResult(double ForegroundIoU, double MeanGlyphIoU, double Recall50, double BoundaryF,
                                     double BoundaryPrecision, double BoundaryRecall, int GtGlyphs, int PredGlyphs, int Images)
{
    /// <summary>Predictions matched with IoU ≥ 0.5 over predictions; without predictions 1 when there is no GT glyph either, else 0.</summary>
    public double Precision50 { get; init; } = 1;

    /// <summary>Pairs of the one-to-one matching (IoU &gt; 0).</summary>
    public int Matched { get; init; }

    /// <summary>Pairs of the one-to-one matching with IoU ≥ 0.5 (the numerator of both <see cref="Recall50"/> and <see cref="Precision50"/>).</summary>
    public int Matched50 { get; init; }

    /// <summary>GT hairline pixels inside the predicted foreground over GT hairline pixels (see <see cref="GlyphEval.Hairline"/>); 1 when there are none.</summary>
    public double ThinStrokeRecall { get; init; } = 1;

    /// <summary>GT hairline pixels (the denominator of <see cref="ThinStrokeRecall"/>).</summary>
    public long HairlinePixels { get; init; }

    /// <summary>Recall@0.5 and mean glyph IoU per style, per size band and for ligatures (<see cref="GlyphBand"/>), in that order.</summary>
    public IReadOnlyList<GlyphBand> Bands { get; init; } = [];

    public override string ToString() =>
        $"fgIoU {ForegroundIoU:F4}  mean glyph IoU {MeanGlyphIoU:F4}  recall@0.5 {Recall50:F4}  precision@0.5 {Precision50:F4}  thin-stroke recall {ThinStrokeRecall:F4}  " +
        $"boundary F {BoundaryF:F4} (P {BoundaryPrecision:F4}, R {BoundaryRecall:F4})  " +
        $"[{GtGlyphs} GT glyphs, {PredGlyphs} predictions, {Matched} matched, {Images} image(s)]";
}

/// <summary>
/// The GT glyphs of one band: <see cref="Kind"/> "style" (label: the style, e.g. "italic"), "size" (label: the size band
/// in pixels, "8-15", "16-31", "32-63", "64-127", "128+", or "&lt;8" below) or "ligature" (label "ligature"). Scores are
/// those of the one-to-one matching over all glyphs, restricted to the band's GT glyphs.
/// </summary>
public sealed record GlyphBand(string Kind, string Label, int GtGlyphs, int Matched50, double MeanGlyphIoU)
{
    public double Recall50 => GtGlyphs == 0 ? 1 : (double)Matched50 / GtGlyphs;
}

/// <summary>What puts a GT glyph in bands: its style, its size in pixels (a null leaves it out of that kind) and whether it is a ligature.</summary>
public readonly record struct GlyphTraits(string? Style, int? SizePx, bool Ligature = false)
{
    public static GlyphTraits Of(CocoGlyph g) => new(g.StyleName, g.SizePx, g.IsLigature);
}

public static class GlyphEval
{
    /// <summary>
    /// Evaluates one image (masks in image coordinates). <paramref name="gtTraits"/>, one per GT glyph, fills
    /// <see cref="GlyphEvalResult.Bands"/>; without it there are no bands.
    /// </summary>
    public static GlyphEvalResult Evaluate(int height, int width, IReadOnlyList<GlyphMask> gt, IReadOnlyList<GlyphMask> pred, int boundaryTolerance = 2,
                                           IReadOnlyList<GlyphTraits>? gtTraits = null)
    {
        CheckTolerance(boundaryTolerance);
        if (gtTraits is not null && gtTraits.Count != gt.Count)
            throw new ArgumentException($"{gtTraits.Count} traits for {gt.Count} GT glyphs", nameof(gtTraits));
        var acc = new Accumulator(boundaryTolerance);
        acc.Add(height, width, gt, pred, gtTraits);
        return acc.Result();
    }

    /// <summary>The size band of a glyph size in pixels: "8-15", "16-31", "32-63", "64-127", "128+" ("&lt;8" below).</summary>
    public static string SizeBand(int sizePx) => sizePx switch
    {
        < 8 => "<8",
        < 16 => "8-15",
        < 32 => "16-31",
        < 64 => "32-63",
        < 128 => "64-127",
        _ => "128+",
    };

    /// <summary>Most (GT, prediction) pairs with IoU &gt; 0 in one image (2^24, 256 MB); beyond it the evaluation is refused.</summary>
    public const int MaxPairsPerImage = 1 << 24;

    private static readonly string[] SizeOrder = ["<8", "8-15", "16-31", "32-63", "64-127", "128+"];
    private static readonly string[] StyleOrder = ["regular", "bold", "italic", "hairline", "hairline italic"];

    /// <summary>
    /// One-to-one greedy matching, as COCO's: every (GT, prediction) pair with IoU &gt; 0, by IoU descending (ties: lower GT
    /// index, then lower prediction index), is taken when neither side is taken yet. Returns each GT glyph's matched IoU
    /// (0 when unmatched) and the number of pairs.
    /// </summary>
    internal static (double[] iou, int matched) MatchGreedy(int gtCount, int predCount, List<(double iou, int g, int p)> pairs)
    {
        pairs.Sort((a, b) => a.iou != b.iou ? b.iou.CompareTo(a.iou) : a.g != b.g ? a.g.CompareTo(b.g) : a.p.CompareTo(b.p));
        var iou = new double[gtCount];
        var gtTaken = new bool[gtCount];
        var predTaken = new bool[predCount];
        int matched = 0;
        foreach (var (v, g, p) in pairs)
        {
            if (gtTaken[g] || predTaken[p]) continue;
            gtTaken[g] = predTaken[p] = true;
            iou[g] = v;
            matched++;
        }
        return (iou, matched);
    }

    /// <summary>
    /// Hairline pixels of a foreground map (h rows of w, row-major): foreground pixels whose two neighbours along a row are
    /// both background, or whose two neighbours along a column are both background (outside the map counts as
    /// background), i.e. strokes one pixel thin horizontally or vertically. The definition is symmetric in the two
    /// axes, so a column-major (transposed) map with h and w swapped gives the same pixels.
    /// </summary>
    public static bool IsHairline(bool[] m, int h, int w, int y, int x)
    {
        long i = (long)y * w + x;
        if (!m[i]) return false;
        bool leftBg = x == 0 || !m[i - 1], rightBg = x == w - 1 || !m[i + 1];
        if (leftBg && rightBg) return true;
        bool upBg = y == 0 || !m[i - w], downBg = y == h - 1 || !m[i + w];
        return upBg && downBg;
    }

    /// <summary>Counts the hairline pixels of <paramref name="gt"/> (see <see cref="IsHairline"/>) and those of them set in <paramref name="pred"/>.</summary>
    public static (long hairline, long kept) Hairline(bool[] gt, bool[] pred, int h, int w)
    {
        long n = 0, kept = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                if (IsHairline(gt, h, w, y, x))
                {
                    n++;
                    if (pred[(long)y * w + x]) kept++;
                }
        return (n, kept);
    }

    /// <summary>
    /// Evaluates predictions against a COCO ground truth. Images are matched by file name (or by id when the
    /// prediction file has no images, as a COCO results list); a single-image prediction against a
    /// single-image GT is matched regardless of names. Only GT images with a matching prediction image are
    /// scored, except for results lists, where every GT image is. Masks are compared on their run-length
    /// encodings, so memory is the image's (two foreground maps and one distance map), whatever the number of
    /// annotations. Bands come from the GT attributes (<see cref="CocoGlyph.StyleName"/>, <see cref="CocoGlyph.SizePx"/>,
    /// <see cref="CocoGlyph.IsLigature"/>).
    /// </summary>
    public static GlyphEvalResult Evaluate(GlyphCoco gt, GlyphCoco pred, int boundaryTolerance = 2)
    {
        CheckTolerance(boundaryTolerance);
        var acc = new Accumulator(boundaryTolerance);
        var pairs = new List<(CocoImage gtImage, int predImageId)>();
        if (pred.Images.Count == 0)
            pairs.AddRange(gt.Images.Select(i => (i, i.Id)));
        else if (pred.Images.Count == 1 && gt.Images.Count == 1)
            pairs.Add((gt.Images[0], pred.Images[0].Id));
        else
        {
            var byName = gt.Images.GroupBy(i => Path.GetFileName(i.FileName)).ToDictionary(g => g.Key, g => g.First());
            foreach (var p in pred.Images)
                if (byName.TryGetValue(Path.GetFileName(p.FileName), out var g)) pairs.Add((g, p.Id));
        }
        if (pairs.Count == 0) throw new InvalidDataException("no prediction image matches a ground-truth image (by file name)");
        var gtBy = gt.Annotations.ToLookup(a => a.ImageId);
        var predBy = pred.Annotations.ToLookup(a => a.ImageId);
        foreach (var (g, pid) in pairs)
        {
            foreach (var (anns, kind) in new[] { (predBy[pid], "prediction"), (gtBy[g.Id], "ground-truth annotation") })
                foreach (var a in anns)
                    if (a.Segmentation.Height != g.Height || a.Segmentation.Width != g.Width)
                        throw new InvalidDataException($"{kind} {a.Id} is {a.Segmentation.Width}x{a.Segmentation.Height}, GT image '{g.FileName}' is {g.Width}x{g.Height}");
            var gts = gtBy[g.Id].ToList();
            acc.Add(g.Height, g.Width, gts.Select(a => a.Segmentation).ToList(), predBy[pid].Select(a => a.Segmentation).ToList(),
                    gts.Select(GlyphTraits.Of).ToList(), $"GT image '{g.FileName}'");
        }
        return acc.Result();
    }

    private static void CheckTolerance(int tol)
    {
        if (tol < 0 || tol > Limits.MaxBoundaryTolerance)
            throw new ArgumentOutOfRangeException(nameof(tol), tol, $"the boundary tolerance must be 0..{Limits.MaxBoundaryTolerance} pixels, got {tol}");
    }

    /// <summary>Foreground pixels with a 4-neighbour outside the mask (the image border counts as outside).</summary>
    public static bool[] Boundary(bool[] m, int h, int w)
    {
        var b = new bool[m.Length];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int i = y * w + x;
                if (!m[i]) continue;
                b[i] = x == 0 || y == 0 || x == w - 1 || y == h - 1 || !m[i - 1] || !m[i + 1] || !m[i - w] || !m[i + w];
            }
        return b;
    }

    /// <summary>
    /// Pixels of <paramref name="a"/> within Euclidean distance ≤ <paramref name="tol"/> of some pixel of
    /// <paramref name="b"/> (row-major h×w). An exact distance transform of b (Meijster et al.: a column pass, then the
    /// lower envelope of parabolas along each row) makes this O(h·w) for any tolerance.
    /// </summary>
    public static long Matched(bool[] a, bool[] b, int h, int w, int tol)
    {
        if (tol < 0) return 0;
        long n = (long)h * w;
        if (Array.IndexOf(b, true) < 0) return 0;
        // g: vertical distance to the nearest b pixel in the same column; inf (h + w) where the column has none
        int inf = h + w;
        var g = new int[n];
        for (int x = 0; x < w; x++)
        {
            g[x] = b[x] ? 0 : inf;
            for (int y = 1; y < h; y++)
            {
                long i = (long)y * w + x;
                g[i] = b[i] ? 0 : Math.Min(inf, g[i - w] + 1);
            }
            for (int y = h - 2; y >= 0; y--)
            {
                long i = (long)y * w + x;
                if (g[i + w] + 1 < g[i]) g[i] = g[i + w] + 1;
            }
        }
        long tol2 = (long)tol * tol, matched = 0;
        var s = new int[w];
        var t = new int[w];
        for (int y = 0; y < h; y++)
        {
            long row = (long)y * w;
            long F(int x, int i) => (long)(x - i) * (x - i) + (long)g[row + i] * g[row + i];
            long Sep(int i, int u) => ((long)u * u - (long)i * i + (long)g[row + u] * g[row + u] - (long)g[row + i] * g[row + i]) / (2L * (u - i));
            int q = 0;
            s[0] = 0;
            t[0] = 0;
            for (int u = 1; u < w; u++)
            {
                while (q >= 0 && F(t[q], s[q]) > F(t[q], u)) q--;
                if (q < 0)
                {
                    q = 0;
                    s[0] = u;
                }
                else
                {
                    long wv = 1 + Sep(s[q], u);
                    if (wv < w)
                    {
                        q++;
                        s[q] = u;
                        t[q] = (int)wv;
                    }
                }
            }
            for (int u = w - 1; u >= 0; u--)
            {
                if (a[row + u] && F(u, s[q]) <= tol2) matched++;
                if (u == t[q]) q--;
            }
        }
        return matched;
    }

    private sealed class Accumulator(int tol)
    {
        private long _inter, _union, _bPred, _bGt, _bPredHit, _bGtHit, _hair, _hairKept;
        private double _iouSum;
        private int _gtCount, _predCount, _matched, _matched50, _images;
        private readonly Dictionary<(string kind, string label), (int gt, int hits, double iouSum)> _bands = new();

        public void Add(int h, int w, IReadOnlyList<GlyphMask> gt, IReadOnlyList<GlyphMask> pred, IReadOnlyList<GlyphTraits>? traits)
        {
            var fgGt = new bool[(long)h * w];
            var fgPred = new bool[(long)h * w];
            foreach (var g in gt) Paint(fgGt, g, h, w);
            foreach (var p in pred) Paint(fgPred, p, h, w);
            AddPixels(fgGt, fgPred, h, w);
            var pairs = new List<(double, int, int)>();
            for (int gi = 0; gi < gt.Count; gi++)
            {
                var g = gt[gi];
                for (int k = 0; k < pred.Count; k++)
                {
                    var p = pred[k];
                    if (p.X >= g.X + g.Width || g.X >= p.X + p.Width || p.Y >= g.Y + g.Height || g.Y >= p.Y + p.Height) continue;
                    double iou = GlyphMask.IoU(g, p);
                    if (iou > 0) pairs.Add((iou, gi, k));
                    CheckPairs(pairs, null);
                }
            }
            AddGlyphs(gt.Count, pred.Count, pairs, traits);
        }

        // Each overlapping pair is kept for the matching (16 bytes); a file of thousands of masks all overlapping each
        // other would otherwise take the memory of their product.
        private static void CheckPairs(List<(double, int, int)> pairs, string? where)
        {
            if (pairs.Count > MaxPairsPerImage)
                throw new InvalidDataException($"{where ?? "the image"}: more than {MaxPairsPerImage:N0} overlapping (ground truth, prediction) pairs; " +
                                               "are the masks glyphs?");
        }

        /// <summary>The same on run-length encodings (column-major, all of the image's size).</summary>
        public void Add(int h, int w, IReadOnlyList<Rle> gt, IReadOnlyList<Rle> pred, IReadOnlyList<GlyphTraits>? traits, string where)
        {
            // Column-major maps are the transposed image: boundaries, Euclidean distances and hairline pixels (the
            // definition treats rows and columns alike) do not change.
            var fgGt = new bool[(long)h * w];
            var fgPred = new bool[(long)h * w];
            foreach (var g in gt) Paint(fgGt, g);
            foreach (var p in pred) Paint(fgPred, p);
            AddPixels(fgGt, fgPred, w, h);
            var predBoxes = pred.Select(p => p.BoundingBox()).ToArray();
            var predAreas = pred.Select(p => p.Area()).ToArray();
            var pairs = new List<(double, int, int)>();
            for (int gi = 0; gi < gt.Count; gi++)
            {
                var g = gt[gi];
                var (gx, gy, gw, gh) = g.BoundingBox();
                long gArea = g.Area();
                for (int k = 0; k < pred.Count; k++)
                {
                    var (px, py, pw, ph) = predBoxes[k];
                    if (gw == 0 || pw == 0 || px >= gx + gw || gx >= px + pw || py >= gy + gh || gy >= py + ph) continue;
                    long inter = Rle.IntersectionArea(g, pred[k]);
                    long union = gArea + predAreas[k] - inter;
                    if (inter > 0 && union > 0) pairs.Add(((double)inter / union, gi, k));
                    CheckPairs(pairs, where);
                }
            }
            AddGlyphs(gt.Count, pred.Count, pairs, traits);
        }

        private void AddGlyphs(int gtCount, int predCount, List<(double iou, int g, int p)> pairs, IReadOnlyList<GlyphTraits>? traits)
        {
            _gtCount += gtCount;
            _predCount += predCount;
            var (iou, matched) = MatchGreedy(gtCount, predCount, pairs);
            _matched += matched;
            for (int g = 0; g < gtCount; g++)
            {
                bool hit = iou[g] >= 0.5;
                _iouSum += iou[g];
                if (hit) _matched50++;
                if (traits is null) continue;
                var t = traits[g];
                if (t.Style is { } style) AddBand("style", style, iou[g], hit);
                if (t.SizePx is { } size) AddBand("size", SizeBand(size), iou[g], hit);
                if (t.Ligature) AddBand("ligature", "ligature", iou[g], hit);
            }
        }

        private void AddBand(string kind, string label, double iou, bool hit)
        {
            var (gt, hits, sum) = _bands.GetValueOrDefault((kind, label));
            _bands[(kind, label)] = (gt + 1, hits + (hit ? 1 : 0), sum + iou);
        }

        private void AddPixels(bool[] fgGt, bool[] fgPred, int h, int w)
        {
            _images++;
            for (long i = 0; i < fgGt.LongLength; i++)
            {
                if (fgGt[i] && fgPred[i]) _inter++;
                if (fgGt[i] || fgPred[i]) _union++;
            }
            var (hair, kept) = Hairline(fgGt, fgPred, h, w);
            _hair += hair;
            _hairKept += kept;
            var bg = Boundary(fgGt, h, w);
            var bp = Boundary(fgPred, h, w);
            _bGt += bg.LongCount(v => v);
            _bPred += bp.LongCount(v => v);
            _bPredHit += Matched(bp, bg, h, w, tol);
            _bGtHit += Matched(bg, bp, h, w, tol);
        }

        private static void Paint(bool[] colMajor, Rle r)
        {
            long idx = 0;
            for (int i = 0; i < r.Counts.Length; i++)
            {
                int c = r.Counts[i];
                if ((i & 1) == 1 && c > 0) colMajor.AsSpan().Slice((int)idx, c).Fill(true);
                idx += c;
            }
        }

        private static void Paint(bool[] full, GlyphMask m, int h, int w)
        {
            for (int r = 0; r < m.Height; r++)
                for (int c = 0; c < m.Width; c++)
                {
                    int x = m.X + c, y = m.Y + r;
                    if (m.Bits[r * m.Width + c] && x >= 0 && y >= 0 && x < w && y < h) full[y * w + x] = true;
                }
        }

        public GlyphEvalResult Result()
        {
            // Empty against empty is a perfect match.
            double fg = _union == 0 ? 1 : (double)_inter / _union;
            double p = _bPred == 0 ? (_bGt == 0 ? 1 : 0) : (double)_bPredHit / _bPred;
            double r = _bGt == 0 ? (_bPred == 0 ? 1 : 0) : (double)_bGtHit / _bGt;
            double f = p + r == 0 ? 0 : 2 * p * r / (p + r);
            static int Rank(string[] order, string label) => Array.IndexOf(order, label) is var i and >= 0 ? i : order.Length;
            var bands = _bands
                .OrderBy(b => b.Key.kind switch { "style" => 0, "size" => 1, _ => 2 })
                .ThenBy(b => Rank(b.Key.kind == "size" ? SizeOrder : StyleOrder, b.Key.label))
                .ThenBy(b => b.Key.label, StringComparer.Ordinal)
                .Select(b => new GlyphBand(b.Key.kind, b.Key.label, b.Value.gt, b.Value.hits, b.Value.iouSum / b.Value.gt))
                .ToList();
            return new GlyphEvalResult(fg, _gtCount == 0 ? 1 : _iouSum / _gtCount, _gtCount == 0 ? 1 : (double)_matched50 / _gtCount, f, p, r,
                                       _gtCount, _predCount, _images)
            {
                Precision50 = _predCount == 0 ? (_gtCount == 0 ? 1 : 0) : (double)_matched50 / _predCount,
                Matched = _matched,
                Matched50 = _matched50,
                ThinStrokeRecall = _hair == 0 ? 1 : (double)_hairKept / _hair,
                HairlinePixels = _hair,
                Bands = bands,
            };
        }
    }
}
