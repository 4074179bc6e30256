using TorchSam2.Utils;

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
        CheckTolerance(boundaryTolerance);
        var acc = new Accumulator(boundaryTolerance);
        acc.Add(height, width, gt, pred);
        return acc.Result();
    }

    /// <summary>
    /// Evaluates predictions against a COCO ground truth. Images are matched by file name (or by id when the
    /// prediction file has no images, as a COCO results list); a single-image prediction against a
    /// single-image GT is matched regardless of names. Only GT images with a matching prediction image are
    /// scored, except for results lists, where every GT image is. Masks are compared on their run-length
    /// encodings, so memory is the image's (two foreground maps and one distance map), whatever the number of
    /// annotations.
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
            acc.Add(g.Height, g.Width, gtBy[g.Id].Select(a => a.Segmentation).ToList(), predBy[pid].Select(a => a.Segmentation).ToList());
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
        private long _inter, _union, _bPred, _bGt, _bPredHit, _bGtHit;
        private double _iouSum;
        private int _gtCount, _predCount, _hits, _images;

        public void Add(int h, int w, IReadOnlyList<GlyphMask> gt, IReadOnlyList<GlyphMask> pred)
        {
            var fgGt = new bool[(long)h * w];
            var fgPred = new bool[(long)h * w];
            foreach (var g in gt) Paint(fgGt, g, h, w);
            foreach (var p in pred) Paint(fgPred, p, h, w);
            AddPixels(fgGt, fgPred, h, w);
            _gtCount += gt.Count;
            _predCount += pred.Count;
            foreach (var g in gt)
            {
                double best = 0;
                foreach (var p in pred)
                {
                    if (p.X >= g.X + g.Width || g.X >= p.X + p.Width || p.Y >= g.Y + g.Height || g.Y >= p.Y + p.Height) continue;
                    best = Math.Max(best, GlyphMask.IoU(g, p));
                }
                AddGlyph(best);
            }
        }

        /// <summary>The same on run-length encodings (column-major, all of the image's size).</summary>
        public void Add(int h, int w, IReadOnlyList<Rle> gt, IReadOnlyList<Rle> pred)
        {
            // Column-major maps are the transposed image: boundaries and Euclidean distances do not change.
            var fgGt = new bool[(long)h * w];
            var fgPred = new bool[(long)h * w];
            foreach (var g in gt) Paint(fgGt, g);
            foreach (var p in pred) Paint(fgPred, p);
            AddPixels(fgGt, fgPred, w, h);
            _gtCount += gt.Count;
            _predCount += pred.Count;
            var predBoxes = pred.Select(p => p.BoundingBox()).ToArray();
            var predAreas = pred.Select(p => p.Area()).ToArray();
            foreach (var g in gt)
            {
                var (gx, gy, gw, gh) = g.BoundingBox();
                long gArea = g.Area();
                double best = 0;
                for (int k = 0; k < pred.Count; k++)
                {
                    var (px, py, pw, ph) = predBoxes[k];
                    if (gw == 0 || pw == 0 || px >= gx + gw || gx >= px + pw || py >= gy + gh || gy >= py + ph) continue;
                    long inter = Rle.IntersectionArea(g, pred[k]);
                    long union = gArea + predAreas[k] - inter;
                    if (union > 0) best = Math.Max(best, (double)inter / union);
                }
                AddGlyph(best);
            }
        }

        private void AddGlyph(double bestIoU)
        {
            _iouSum += bestIoU;
            if (bestIoU >= 0.5) _hits++;
        }

        private void AddPixels(bool[] fgGt, bool[] fgPred, int h, int w)
        {
            _images++;
            for (long i = 0; i < fgGt.LongLength; i++)
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
            return new GlyphEvalResult(fg, _gtCount == 0 ? 1 : _iouSum / _gtCount, _gtCount == 0 ? 1 : (double)_hits / _gtCount, f, p, r, _gtCount, _predCount, _images);
        }
    }
}
