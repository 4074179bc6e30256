using System.Globalization;
using System.Numerics;

namespace TorchSam2.Evaluation;

// The J (region IoU) and F (boundary F-measure) measures of semi-supervised video object segmentation, ported from
// sav_dataset/utils/sav_benchmark.py of the official sam2 repository (itself from hkchengrex/vos-benchmark and
// davis2017-evaluation): the same boundary map, structuring element, dilation, empty-mask rules and averaging, so
// the numbers agree with the official evaluator to its printed precision. Masks are row-major H×W arrays.

/// <summary>J and F of single frames, as the official SA-V / DAVIS evaluator computes them.</summary>
public static class VosMetrics
{
    /// <summary>The DAVIS boundary tolerance: a fraction of the image diagonal (Evaluator(boundary=0.008)).</summary>
    public const double BoundaryTolerance = 0.008;

    /// <summary>The radius of the boundary disk: ceil(0.008 · ‖(H, W)‖).</summary>
    public static int BoundaryRadius(int height, int width, double tolerance = BoundaryTolerance) =>
        (int)Math.Ceiling(tolerance * Math.Sqrt((double)height * height + (double)width * width));

    /// <summary>
    /// skimage.morphology.disk(radius): the (2r+1)² square with the pixels at distance ≤ r from its centre set.
    /// </summary>
    public static bool[] Disk(int radius)
    {
        if (radius < 0) throw new ArgumentOutOfRangeException(nameof(radius), radius, "the disk radius must be ≥ 0");
        int n = 2 * radius + 1;
        var d = new bool[n * n];
        for (int y = -radius; y <= radius; y++)
            for (int x = -radius; x <= radius; x++)
                d[(y + radius) * n + x + radius] = x * x + y * y <= radius * radius;
        return d;
    }

    /// <summary>
    /// _seg2bmap: a one-pixel-wide boundary, offset half a pixel towards the origin: a pixel differs from its east,
    /// south or south-east neighbour; on the last row only the east neighbour counts, on the last column only the
    /// south one, and the bottom-right pixel is never a boundary.
    /// </summary>
    public static bool[] Seg2Bmap(ReadOnlySpan<bool> seg, int height, int width)
    {
        CheckSize(seg.Length, height, width);
        var b = new bool[seg.Length];
        for (int y = 0; y < height; y++)
        {
            int row = y * width;
            bool lastRow = y == height - 1;
            for (int x = 0; x < width; x++)
            {
                bool s0 = seg[row + x];
                bool lastCol = x == width - 1;
                // neighbours outside the image are background (the zero-filled shifted copies)
                bool e = !lastCol && seg[row + x + 1];
                bool s = !lastRow && seg[row + width + x];
                bool se = !lastRow && !lastCol && seg[row + width + x + 1];
                b[row + x] = lastRow && lastCol ? false
                    : lastRow ? s0 ^ e
                    : lastCol ? s0 ^ s
                    : (s0 ^ e) | (s0 ^ s) | (s0 ^ se);
            }
        }
        return b;
    }

    /// <summary>cv2.dilate with a (2r+1)² kernel anchored at its centre; pixels outside the image do not count.</summary>
    public static bool[] Dilate(ReadOnlySpan<bool> img, int height, int width, bool[] kernel, int radius)
    {
        CheckSize(img.Length, height, width);
        int n = 2 * radius + 1;
        if (kernel.Length != n * n) throw new ArgumentException($"a kernel of radius {radius} has {n * n} elements, got {kernel.Length}");
        var offsets = new List<(int dy, int dx)>();
        for (int ky = 0; ky < n; ky++)
            for (int kx = 0; kx < n; kx++)
                // out(y, x) = max over the kernel of in(y + ky − r, x + kx − r): a set pixel reaches (y − ky + r, x − kx + r)
                if (kernel[ky * n + kx]) offsets.Add((radius - ky, radius - kx));
        var o = new bool[img.Length];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                if (!img[y * width + x]) continue;
                foreach (var (dy, dx) in offsets)
                {
                    int yy = y + dy, xx = x + dx;
                    if ((uint)yy < (uint)height && (uint)xx < (uint)width) o[yy * width + xx] = true;
                }
            }
        return o;
    }

    /// <summary>get_iou: intersection over union, 1 when both masks are empty.</summary>
    public static double Iou(long intersection, long pixelSum) =>
        intersection == pixelSum ? 1.0 : intersection / (double)(pixelSum - intersection);

    /// <summary>J of one frame: |pred ∩ gt| / |pred ∪ gt| (1 when both are empty).</summary>
    public static double Jaccard(ReadOnlySpan<bool> pred, ReadOnlySpan<bool> gt)
    {
        if (pred.Length != gt.Length) throw new ArgumentException($"mask sizes differ: {pred.Length} and {gt.Length} pixels");
        long inter = 0, sum = 0;
        for (int i = 0; i < pred.Length; i++)
        {
            if (pred[i] && gt[i]) inter++;
            sum += (pred[i] ? 1 : 0) + (gt[i] ? 1 : 0);
        }
        return Iou(inter, sum);
    }

    /// <summary>
    /// F of one frame: boundary precision and recall within the disk (<paramref name="radius"/>, by default
    /// <see cref="BoundaryRadius"/>), F = 2PR/(P+R); an empty boundary on one side only scores 0, on both sides 1.
    /// </summary>
    public static double BoundaryF(ReadOnlySpan<bool> pred, ReadOnlySpan<bool> gt, int height, int width, int? radius = null)
    {
        int r = radius ?? BoundaryRadius(height, width);
        return BoundaryF(pred, gt, height, width, Disk(r), r);
    }

    /// <summary><see cref="BoundaryF(ReadOnlySpan{bool}, ReadOnlySpan{bool}, int, int, int?)"/> with a prepared disk.</summary>
    public static double BoundaryF(ReadOnlySpan<bool> pred, ReadOnlySpan<bool> gt, int height, int width, bool[] disk, int radius)
    {
        if (pred.Length != gt.Length) throw new ArgumentException($"mask sizes differ: {pred.Length} and {gt.Length} pixels");
        var predB = Seg2Bmap(pred, height, width);
        var gtB = Seg2Bmap(gt, height, width);
        var predD = Dilate(predB, height, width, disk, radius);
        var gtD = Dilate(gtB, height, width, disk, radius);
        long nFg = 0, nGt = 0, fgMatch = 0, gtMatch = 0;
        for (int i = 0; i < predB.Length; i++)
        {
            if (predB[i]) { nFg++; if (gtD[i]) fgMatch++; }
            if (gtB[i]) { nGt++; if (predD[i]) gtMatch++; }
        }
        double precision, recall;
        if (nFg == 0 && nGt > 0) { precision = 1; recall = 0; }
        else if (nFg > 0 && nGt == 0) { precision = 0; recall = 1; }
        else if (nFg == 0 && nGt == 0) { precision = 1; recall = 1; }
        else { precision = fgMatch / (double)nFg; recall = gtMatch / (double)nGt; }
        return precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall);
    }

    /// <summary>
    /// np.mean of float64 values: numpy's pairwise summation (blocks of 8 accumulators up to 128 values, halves
    /// above) divided by the count, so averages round as the official evaluator's do. NaN for no values.
    /// </summary>
    public static double NumpyMean(IReadOnlyList<double> values) =>
        values.Count == 0 ? double.NaN : (0.0 + PairwiseSum(values, 0, values.Count)) / values.Count;

    private static double PairwiseSum(IReadOnlyList<double> a, int start, int n)
    {
        if (n < 8)
        {
            double res = 0.0;
            for (int i = 0; i < n; i++) res += a[start + i];
            return res;
        }
        if (n <= 128)
        {
            var r = new double[8];
            for (int j = 0; j < 8; j++) r[j] = a[start + j];
            int i;
            for (i = 8; i < n - n % 8; i += 8)
                for (int j = 0; j < 8; j++) r[j] += a[start + i + j];
            double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
            for (; i < n; i++) res += a[start + i];
            return res;
        }
        int n2 = n / 2;
        n2 -= n2 % 8;
        return PairwiseSum(a, start, n2) + PairwiseSum(a, start + n2, n - n2);
    }

    /// <summary>
    /// Python's <c>f"{x:.1f}"</c>: the exact binary value rounded half to even at one decimal ("nan", "inf" as Python).
    /// </summary>
    public static string Format1(double x)
    {
        if (double.IsNaN(x)) return "nan";
        if (double.IsInfinity(x)) return x > 0 ? "inf" : "-inf";
        long bits = BitConverter.DoubleToInt64Bits(x);
        bool negative = bits < 0;
        int exp = (int)((bits >> 52) & 0x7FF);
        long mant = bits & 0xFFFFFFFFFFFFFL;
        if (exp == 0) exp = 1; else mant |= 1L << 52;
        exp -= 1075; // x = mant · 2^exp
        BigInteger num = new BigInteger(mant) * 10, den = BigInteger.One;
        if (exp >= 0) num <<= exp; else den <<= -exp;
        var q = BigInteger.DivRem(num, den, out var rem);
        int cmp = (rem * 2).CompareTo(den);
        if (cmp > 0 || (cmp == 0 && !q.IsEven)) q += 1;
        string digits = q.ToString(CultureInfo.InvariantCulture).PadLeft(2, '0');
        string s = digits[..^1] + "." + digits[^1];
        return negative ? "-" + s : s;
    }

    private static void CheckSize(int length, int height, int width)
    {
        if (height <= 0 || width <= 0 || length != (long)height * width)
            throw new ArgumentException($"{length} pixels do not make a {width}x{height} mask");
    }
}

/// <summary>
/// The official <c>Evaluator</c> for one sequence of frames: objects are the non-zero labels; an object is scored
/// from the first frame it appears on (in the ground truth or the prediction) to the end, and only objects that
/// appear in the ground truth are reported (as percentages, the means over their frames).
/// </summary>
public sealed class VosSequenceEvaluator
{
    private readonly SortedSet<int> _inGt = new();
    private readonly SortedSet<int> _inPred = new();
    private readonly Dictionary<int, List<double>> _j = new();
    private readonly Dictionary<int, List<double>> _f = new();
    private readonly double _tolerance;

    public VosSequenceEvaluator(double boundaryTolerance = VosMetrics.BoundaryTolerance) => _tolerance = boundaryTolerance;

    /// <summary>Scores one frame: label maps of the prediction and the ground truth (0 = background).</summary>
    public void FeedFrame(ReadOnlySpan<int> pred, ReadOnlySpan<int> gt, int height, int width)
    {
        if (pred.Length != (long)height * width || gt.Length != pred.Length)
            throw new ArgumentException($"label maps of {pred.Length} and {gt.Length} pixels do not make a {width}x{height} frame");
        foreach (var v in gt) if (v != 0) _inGt.Add(v);
        foreach (var v in pred) if (v != 0) _inPred.Add(v);
        int r = VosMetrics.BoundaryRadius(height, width, _tolerance);
        var disk = VosMetrics.Disk(r);
        var objects = new SortedSet<int>(_inGt);
        objects.UnionWith(_inPred);
        var pm = new bool[pred.Length];
        var gm = new bool[pred.Length];
        foreach (int obj in objects)
        {
            for (int i = 0; i < pm.Length; i++)
            {
                pm[i] = pred[i] == obj;
                gm[i] = gt[i] == obj;
            }
            Add(_j, obj, VosMetrics.Jaccard(pm, gm));
            Add(_f, obj, VosMetrics.BoundaryF(pm, gm, height, width, disk, r));
        }
    }

    private static void Add(Dictionary<int, List<double>> d, int k, double v)
    {
        if (!d.TryGetValue(k, out var l)) d[k] = l = new List<double>();
        l.Add(v);
    }

    /// <summary>Objects seen in the ground truth so far, in increasing order.</summary>
    public IReadOnlyCollection<int> ObjectsInGroundTruth => _inGt;

    /// <summary>conclude(): per ground-truth object (increasing id), mean J and mean F over its frames, × 100.</summary>
    public IReadOnlyList<(int obj, double j, double f)> Conclude() =>
        _inGt.Select(o => (o, VosMetrics.NumpyMean(_j[o]) * 100, VosMetrics.NumpyMean(_f[o]) * 100)).ToList();
}
