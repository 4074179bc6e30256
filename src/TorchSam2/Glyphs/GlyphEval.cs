namespace TorchSam2.Glyphs;

/// <summary>
/// Glyph segmentation quality. Pixel counts are pooled over images; glyph metrics average over all GT glyphs.
/// </summary>
/// <param name="ForegroundIoU">IoU of the union of predicted masks with the union of GT masks</param>
/// <param name="MeanGlyphIoU">mean over GT glyphs of the best IoU with any prediction (0 when none overlaps)</param>
/// <param name="Recall50">fraction of GT glyphs whose best IoU is ≥ 0.5</param>
/// <param name="BoundaryF">F-score of the foreground boundaries with a pixel tolerance</param>
public sealed record GlyphEvalResult(double ForegroundIoU, double MeanGlyphIoU, double Recall50, double BoundaryF,
                                     double BoundaryPrecision, double BoundaryRecall, int GtGlyphs, int PredGlyphs, int Images)
{
    public override string ToString() =>
        $"fgIoU {ForegroundIoU:F4}  mean glyph IoU {MeanGlyphIoU:F4}  recall@0.5 {Recall50:F4}  boundary F {BoundaryF:F4} (P {BoundaryPrecision:F4}, R {BoundaryRecall:F4})  " +
        $"[{GtGlyphs} GT glyphs, {PredGlyphs} predictions, {Images} image(s)]";
}

public static class GlyphEval
{
    /// <summary>Evaluates one image (masks in image coordinates).</summary>
    public static GlyphEvalResult Evaluate(int height, int width, IReadOnlyList<GlyphMask> gt, IReadOnlyList<GlyphMask> pred, int boundaryTolerance = 2)
    {
        var acc = new Accumulator(boundaryTolerance);
        acc.Add(height, width, gt, pred);
        return acc.Result();
    }

    /// <summary>
    /// Evaluates predictions against a COCO ground truth. Images are matched by file name (or by id when the
    /// prediction file has no images, as a COCO results list); a single-image prediction against a
    /// single-image GT is matched regardless of names. Only GT images with a matching prediction image are
    /// scored, except for results lists, where every GT image is.
    /// </summary>
    public static GlyphEvalResult Evaluate(GlyphCoco gt, GlyphCoco pred, int boundaryTolerance = 2)
    {
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
            foreach (var a in predBy[pid])
                if (a.Segmentation.Height != g.Height || a.Segmentation.Width != g.Width)
                    throw new InvalidDataException($"prediction {a.Id} is {a.Segmentation.Width}x{a.Segmentation.Height}, GT image '{g.FileName}' is {g.Width}x{g.Height}");
            acc.Add(g.Height, g.Width, gtBy[g.Id].Select(a => a.Mask()).ToList(), predBy[pid].Select(a => a.Mask()).ToList());
        }
        return acc.Result();
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

    // Pixels of a within Euclidean distance ≤ tol of some pixel of b.
    private static long Matched(bool[] a, bool[] b, int h, int w, int tol)
    {
        var offsets = new List<(int dx, int dy)>();
        for (int dy = -tol; dy <= tol; dy++)
            for (int dx = -tol; dx <= tol; dx++)
                if (dx * dx + dy * dy <= tol * tol) offsets.Add((dx, dy));
        long n = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                if (!a[y * w + x]) continue;
                foreach (var (dx, dy) in offsets)
                {
                    int u = x + dx, v = y + dy;
                    if (u >= 0 && v >= 0 && u < w && v < h && b[v * w + u])
                    {
                        n++;
                        break;
                    }
                }
            }
        return n;
    }

    private sealed class Accumulator(int tol)
    {
        private long _inter, _union, _bPred, _bGt, _bPredHit, _bGtHit;
        private double _iouSum;
        private int _gtCount, _predCount, _hits, _images;

        public void Add(int h, int w, IReadOnlyList<GlyphMask> gt, IReadOnlyList<GlyphMask> pred)
        {
            _images++;
            _gtCount += gt.Count;
            _predCount += pred.Count;
            var fgGt = new bool[h * w];
            var fgPred = new bool[h * w];
            foreach (var g in gt) Paint(fgGt, g, h, w);
            foreach (var p in pred) Paint(fgPred, p, h, w);
            for (int i = 0; i < fgGt.Length; i++)
            {
                if (fgGt[i] && fgPred[i]) _inter++;
                if (fgGt[i] || fgPred[i]) _union++;
            }
            var bg = Boundary(fgGt, h, w);
            var bp = Boundary(fgPred, h, w);
            _bGt += bg.LongCount(v => v);
            _bPred += bp.LongCount(v => v);
            _bPredHit += Matched(bp, bg, h, w, tol);
            _bGtHit += Matched(bg, bp, h, w, tol);

            foreach (var g in gt)
            {
                double best = 0;
                foreach (var p in pred)
                {
                    if (p.X >= g.X + g.Width || g.X >= p.X + p.Width || p.Y >= g.Y + g.Height || g.Y >= p.Y + p.Height) continue;
                    best = Math.Max(best, GlyphMask.IoU(g, p));
                }
                _iouSum += best;
                if (best >= 0.5) _hits++;
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
            return new GlyphEvalResult(fg, _gtCount == 0 ? 1 : _iouSum / _gtCount, _gtCount == 0 ? 1 : (double)_hits / _gtCount, f, p, r, _gtCount, _predCount, _images);
        }
    }
}
