using TorchSam2.Modeling;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchSam2.Training;

/// <summary>
/// How prompts are simulated during training (the SAM2Train options of training/model/sam2.py). Images are
/// single-frame clips, for which upstream always prompts with points or a box and corrects on that frame.
/// </summary>
public sealed record PromptSimulationOptions
{
    /// <summary>Probability of a point/box prompt; otherwise the GT mask itself is the mask prompt (upstream forces 1 for single frames).</summary>
    public double ProbToUsePtInput { get; init; } = 1.0;
    /// <summary>Probability that a point prompt is a (noised) box instead of one click; 0.5 upstream.</summary>
    public double ProbToUseBoxInput { get; init; } = 0.5;
    /// <summary>Correction clicks after the first prompt (7 upstream); each adds a decoder pass.</summary>
    public int NumCorrectionPtPerFrame { get; init; } = 7;
    /// <summary>Chance that a correction click comes from the GT mask instead of the prediction errors (0.1 upstream).</summary>
    public double ProbToSampleFromGt { get; init; } = 0.1;
    /// <summary>"uniform" (random error pixel, training) or "center" (farthest from the error boundary, evaluation).</summary>
    public string Method { get; init; } = "uniform";
    public double BoxNoise { get; init; } = 0.1;
    public double BoxNoiseBound { get; init; } = 20;

    /// <summary>Probabilities in [0, 1], 0..<see cref="Utils.Limits.MaxCorrectionClicks"/> correction clicks, finite box noise, a known method.</summary>
    public void Validate()
    {
        OptionChecks.Probability(nameof(ProbToUsePtInput), ProbToUsePtInput);
        OptionChecks.Probability(nameof(ProbToUseBoxInput), ProbToUseBoxInput);
        OptionChecks.Count(nameof(NumCorrectionPtPerFrame), NumCorrectionPtPerFrame, 0, Utils.Limits.MaxCorrectionClicks);
        OptionChecks.Probability(nameof(ProbToSampleFromGt), ProbToSampleFromGt);
        OptionChecks.Method(nameof(Method), Method);
        OptionChecks.Real(nameof(BoxNoise), BoxNoise, 0, 100);
        OptionChecks.Real(nameof(BoxNoiseBound), BoxNoiseBound, 0, 1e6);
    }
}

/// <summary>
/// Point and box samplers of sam2/modeling/sam2_utils.py, on CPU masks (row-major bool H×W per object) with a
/// caller-supplied <see cref="Random"/> so that results depend only on the seed.
/// Coordinates are pixels (x, y) of the mask frame; labels 1 = positive, 0 = negative, 2/3 = box corners.
/// </summary>
public static class PromptSimulation
{
    /// <summary>Per-object click lists (all of one length k) as N×k×2 coordinates and N×k labels.</summary>
    public static PointInputs ToPointInputs(IReadOnlyList<List<(float x, float y, int label)>> pts, Device device)
    {
        int n = pts.Count, k = pts[0].Count;
        var coords = new float[n * k * 2];
        var labels = new int[n * k];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < k; j++)
            {
                coords[(i * k + j) * 2] = pts[i][j].x;
                coords[(i * k + j) * 2 + 1] = pts[i][j].y;
                labels[i * k + j] = pts[i][j].label;
            }
        return new PointInputs(tensor(coords, new long[] { n, k, 2 }, device: device), tensor(labels, new long[] { n, k }, device: device));
    }

    /// <summary>
    /// sample_box_points: the mask's bounding box with each corner moved by up to noise × side (at most
    /// noiseBound px), clamped to the image. Returns 2 points (top-left label 2, bottom-right label 3).
    /// </summary>
    public static (float x, float y, int label)[] SampleBoxPoints(bool[] mask, int h, int w, Random rng, double noise = 0.1, double noiseBound = 20)
    {
        var (x0, y0, x1, y1) = MaskToBox(mask, h, w);
        double[] c = [x0, y0, x1, y1];
        if (noise > 0)
        {
            double maxDx = Math.Min((x1 - x0) * noise, noiseBound);
            double maxDy = Math.Min((y1 - y0) * noise, noiseBound);
            double[] bound = [maxDx, maxDy, maxDx, maxDy];
            for (int i = 0; i < 4; i++) c[i] += (2 * rng.NextDouble() - 1) * bound[i];
            double[] hi = [w - 1, h - 1, w - 1, h - 1];
            for (int i = 0; i < 4; i++) c[i] = Math.Clamp(c[i], 0, hi[i]);
        }
        return [((float)c[0], (float)c[1], 2), ((float)c[2], (float)c[3], 3)];
    }

    /// <summary>mask_to_box: (min x, min y, max x, max y); an empty mask gives (w, h, −1, −1) as upstream.</summary>
    public static (int x0, int y0, int x1, int y1) MaskToBox(bool[] mask, int h, int w)
    {
        int x0 = w, y0 = h, x1 = -1, y1 = -1;
        for (int y = 0; y < h; y++)
        {
            int row = y * w;
            for (int x = 0; x < w; x++)
                if (mask[row + x])
                {
                    if (x < x0) x0 = x;
                    if (x > x1) x1 = x;
                    if (y < y0) y0 = y;
                    y1 = y;
                }
        }
        return (x0, y0, x1, y1);
    }

    /// <summary>
    /// sample_random_points_from_errors (one point): a pixel drawn uniformly from the false-positive (label 0) and
    /// false-negative (label 1) regions together; when the prediction is exactly right, a negative click on the
    /// background. pred null means an empty prediction (so a positive click inside the GT).
    /// </summary>
    public static (float x, float y, int label) SampleRandomPointFromErrors(bool[] gt, bool[]? pred, int h, int w, Random rng)
    {
        int n = h * w;
        int fp = 0, fn = 0;
        bool allCorrect = true;
        for (int i = 0; i < n; i++)
        {
            bool g = gt[i], p = pred is not null && pred[i];
            if (g != p) { allCorrect = false; if (p) fp++; else fn++; }
        }
        // candidate sets: negatives = FP (or background when all correct), positives = FN
        int neg = fp;
        if (allCorrect) { neg = 0; for (int i = 0; i < n; i++) if (!gt[i]) neg++; }
        int total = neg + fn;
        if (total == 0) return (0, 0, 0); // argmax of an all-zero noise map: pixel 0, negative
        int k = rng.Next(total);
        bool positive = k >= neg;
        if (positive) k -= neg;
        for (int i = 0; i < n; i++)
        {
            bool g = gt[i], p = pred is not null && pred[i];
            bool inSet = positive ? (g && !p) : (allCorrect ? !g : (!g && p));
            if (inSet && k-- == 0) return (i % w, i / w, positive ? 1 : 0);
        }
        throw new InvalidOperationException("unreachable");
    }

    /// <summary>
    /// sample_one_point_from_error_center: the point of the FN (positive) or FP (negative) region farthest from
    /// that region's boundary (exact Euclidean distance transform with a 1-pixel zero border, as with padding=True).
    /// </summary>
    public static (float x, float y, int label) SampleOnePointFromErrorCenter(bool[] gt, bool[]? pred, int h, int w)
    {
        int n = h * w;
        var fnMask = new bool[n];
        var fpMask = new bool[n];
        for (int i = 0; i < n; i++)
        {
            bool g = gt[i], p = pred is not null && pred[i];
            fnMask[i] = g && !p;
            fpMask[i] = !g && p;
        }
        var fnDt = DistanceTransform(fnMask, h, w);
        var fpDt = DistanceTransform(fpMask, h, w);
        int fnArg = ArgMax(fnDt), fpArg = ArgMax(fpDt);
        bool positive = fnDt[fnArg] > fpDt[fpArg];
        int idx = positive ? fnArg : fpArg;
        return (idx % w, idx / w, positive ? 1 : 0);
    }

    /// <summary>get_next_point: "uniform" or "center".</summary>
    public static (float x, float y, int label) GetNextPoint(bool[] gt, bool[]? pred, int h, int w, string method, Random rng) => method switch
    {
        "uniform" => SampleRandomPointFromErrors(gt, pred, h, w, rng),
        "center" => SampleOnePointFromErrorCenter(gt, pred, h, w),
        _ => throw new ArgumentException($"unknown sampling method {method}"),
    };

    private static int ArgMax(float[] a)
    {
        int best = 0;
        for (int i = 1; i < a.Length; i++) if (a[i] > a[best]) best = i;
        return best;
    }

    /// <summary>Euclidean distance of each set pixel to the nearest unset pixel (image border counts as unset); Felzenszwalb–Huttenlocher.</summary>
    public static float[] DistanceTransform(bool[] mask, int h, int w)
    {
        const float Inf = 1e20f;
        // padded grid (h+2)×(w+2) with zeros on the border
        int H = h + 2, W = w + 2;
        var g = new float[H * W];
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
            {
                bool inside = y > 0 && y <= h && x > 0 && x <= w && mask[(y - 1) * w + (x - 1)];
                g[y * W + x] = inside ? Inf : 0f;
            }
        int m = Math.Max(H, W);
        var f = new float[m];
        var d = new float[m];
        var v = new int[m];
        var z = new float[m + 1];
        for (int x = 0; x < W; x++)
        {
            for (int y = 0; y < H; y++) f[y] = g[y * W + x];
            Edt1d(f, H, d, v, z);
            for (int y = 0; y < H; y++) g[y * W + x] = d[y];
        }
        for (int y = 0; y < H; y++)
        {
            Array.Copy(g, y * W, f, 0, W);
            Edt1d(f, W, d, v, z);
            Array.Copy(d, 0, g, y * W, W);
        }
        var result = new float[h * w];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                result[y * w + x] = MathF.Sqrt(g[(y + 1) * W + x + 1]);
        return result;
    }

    // 1-D squared distance transform of sampled function f (lower envelope of parabolas).
    private static void Edt1d(float[] f, int n, float[] d, int[] v, float[] z)
    {
        int k = 0;
        v[0] = 0;
        z[0] = float.NegativeInfinity;
        z[1] = float.PositiveInfinity;
        for (int q = 1; q < n; q++)
        {
            double s = Intersect(f, q, v[k]);
            while (s <= z[k])
            {
                k--;
                s = Intersect(f, q, v[k]);
            }
            k++;
            v[k] = q;
            z[k] = (float)s;
            z[k + 1] = float.PositiveInfinity;
        }
        k = 0;
        for (int q = 0; q < n; q++)
        {
            while (z[k + 1] < q) k++;
            int p = v[k];
            d[q] = (q - p) * (float)(q - p) + f[p];
        }
    }

    private static double Intersect(float[] f, int q, int p) =>
        ((f[q] + (double)q * q) - (f[p] + (double)p * p)) / (2.0 * q - 2.0 * p);
}

/// <summary>The per-step outputs of an interactive forward (first prompt plus correction clicks).</summary>
public sealed class InteractiveOutputs : IDisposable
{
    /// <summary>[N, M, S, S] logits at the model's input size for each step.</summary>
    public List<Tensor> MultimasksHighRes { get; } = new();
    /// <summary>[N, M] predicted IoUs for each step.</summary>
    public List<Tensor> Ious { get; } = new();
    /// <summary>[N, 1] object score logits for each step.</summary>
    public List<Tensor> ObjectScoreLogits { get; } = new();
    /// <summary>The final chosen mask [N, 1, S, S] (logits).</summary>
    public Tensor? FinalHighRes { get; set; }

    public void Dispose()
    {
        foreach (var t in MultimasksHighRes) t.Dispose();
        foreach (var t in Ious) t.Dispose();
        foreach (var t in ObjectScoreLogits) t.Dispose();
        FinalHighRes?.Dispose();
    }
}

/// <summary>
/// The image-only (single frame, no memory) part of SAM2Train.forward: prompts from the GT, the SAM heads with
/// multimask output for a single click, then correction clicks from the error region with the previous low-res
/// logits as mask input. Gradients flow through the chained mask inputs as upstream.
/// </summary>
public static class InteractiveForward
{
    /// <summary>
    /// pixFeat: [N, C, s, s] image embedding (no_mem_embed already added), highRes: the two high-res maps [N, ·, ·, ·],
    /// gt: N row-major S×S masks (S = model.image_size) on the CPU, gtTensor: [N, 1, S, S] float on the model's device.
    /// </summary>
    public static InteractiveOutputs Run(SAM2Base model, Tensor pixFeat, IReadOnlyList<Tensor>? highRes, IReadOnlyList<bool[]> gt, Tensor gtTensor,
                                         PromptSimulationOptions opt, Random rng)
    {
        int S = model.image_size;
        int N = gt.Count;
        var dev = pixFeat.device;
        var outs = new InteractiveOutputs();
        bool usePt = rng.NextDouble() < opt.ProbToUsePtInput;
        if (!usePt)
        {
            // the GT mask is the prompt: with use_mask_input_as_output_without_sam it is returned directly
            using var scope0 = NewDisposeScope();
            var heads0 = model.use_mask_input_as_output_without_sam
                ? model._use_mask_as_output(pixFeat, highRes, gtTensor)
                : model._forward_sam_heads(pixFeat, null, gtTensor, highRes, false);
            outs.MultimasksHighRes.Add(heads0.high_res_multimasks.MoveToOuterDisposeScope());
            outs.Ious.Add(heads0.ious.MoveToOuterDisposeScope());
            outs.ObjectScoreLogits.Add(heads0.object_score_logits.MoveToOuterDisposeScope());
            outs.FinalHighRes = heads0.high_res_masks.MoveToOuterDisposeScope();
            return outs;
        }

        bool useBox = rng.NextDouble() < opt.ProbToUseBoxInput;
        var pts = new List<(float x, float y, int label)>[N];
        for (int i = 0; i < N; i++)
            pts[i] = useBox
                ? SampleBox(gt[i], S, rng, opt)
                : [PromptSimulation.GetNextPoint(gt[i], null, S, S, opt.Method, rng)];

        Tensor? lowRes = null;
        Tensor? highResMask = null;
        try
        {
            for (int step = 0; step <= opt.NumCorrectionPtPerFrame; step++)
            {
                if (step > 0)
                {
                    // a correction click from the error between the last prediction and the GT (or the GT alone)
                    bool[][] pred;
                    using (no_grad())
                    using (var bin = highResMask! > 0)
                    using (var cpu = bin.to(CPU))
                    {
                        var flat = cpu.contiguous().ToArray<bool>();
                        pred = new bool[N][];
                        for (int i = 0; i < N; i++) pred[i] = flat.AsSpan(i * S * S, S * S).ToArray();
                    }
                    for (int i = 0; i < N; i++)
                    {
                        bool fromGt = opt.ProbToSampleFromGt > 0 && rng.NextDouble() < opt.ProbToSampleFromGt;
                        pts[i].Add(PromptSimulation.GetNextPoint(gt[i], fromGt ? null : pred[i], S, S, opt.Method, rng));
                    }
                }
                using var scope = NewDisposeScope();
                int k = pts[0].Count;
                using var pin = PromptSimulation.ToPointInputs(pts, dev);
                bool multimask = UseMultimask(model, k);
                var heads = model._forward_sam_heads(pixFeat, pin, lowRes, highRes, multimask);
                outs.MultimasksHighRes.Add(heads.high_res_multimasks.MoveToOuterDisposeScope());
                outs.Ious.Add(heads.ious.MoveToOuterDisposeScope());
                outs.ObjectScoreLogits.Add(heads.object_score_logits.MoveToOuterDisposeScope());
                lowRes?.Dispose();
                highResMask?.Dispose();
                lowRes = heads.low_res_masks.MoveToOuterDisposeScope();
                highResMask = heads.high_res_masks.MoveToOuterDisposeScope();
            }
            outs.FinalHighRes = highResMask;
            highResMask = null;
            return outs;
        }
        catch
        {
            outs.Dispose();
            throw;
        }
        finally
        {
            lowRes?.Dispose();
            highResMask?.Dispose();
        }
    }

    private static List<(float x, float y, int label)> SampleBox(bool[] gt, int s, Random rng, PromptSimulationOptions opt) =>
        PromptSimulation.SampleBoxPoints(gt, s, s, rng, opt.BoxNoise, opt.BoxNoiseBound).ToList();

    /// <summary>_use_multimask for an initial conditioning frame: multimask_output_in_sam and min ≤ #points ≤ max.</summary>
    public static bool UseMultimask(SAM2Base model, int numPts) =>
        model.multimask_output_in_sam && model.multimask_min_pt_num <= numPts && numPts <= model.multimask_max_pt_num;
}
