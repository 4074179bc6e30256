using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchSam2.Utils;

/// <summary>
/// Non-maximum suppression with torchvision's semantics (torchvision.ops.nms / batched_nms / box_area),
/// which libtorch does not ship. Boxes are (x0, y0, x1, y1); the greedy pass runs on the CPU.
/// </summary>
public static class Nms
{
    /// <summary>
    /// Greedy NMS: visits boxes by descending score (stable on ties, as torchvision's CPU kernel),
    /// keeps a box unless an already kept box overlaps it with IoU &gt; <paramref name="iou_threshold"/>.
    /// Returns the kept indices (int64, on the boxes' device) in visiting order.
    /// </summary>
    public static Tensor nms(Tensor boxes, Tensor scores, double iou_threshold)
    {
        CheckBoxes(boxes, scores);
        var keep = NmsCore(BoxesToArray(boxes), ScoresToArray(scores), iou_threshold);
        return IndexTensor(keep, boxes.device);
    }

    /// <summary>
    /// NMS done independently per category (<paramref name="idxs"/>): boxes of different categories never
    /// suppress each other. Kept indices are sorted by descending score.
    /// </summary>
    public static Tensor batched_nms(Tensor boxes, Tensor scores, Tensor idxs, double iou_threshold)
    {
        CheckBoxes(boxes, scores);
        if (idxs.dim() != 1 || idxs.size(0) != boxes.size(0))
            throw new ArgumentException($"expected {boxes.size(0)} category indices, got [{string.Join(", ", idxs.shape)}]");
        if (boxes.numel() == 0) return IndexTensor([], boxes.device);
        var b = BoxesToArray(boxes);
        var s = ScoresToArray(scores);
        long[] cat;
        using (var c = idxs.to(ScalarType.Int64, CPU)) cat = c.ToArray<long>();
        // torchvision picks the per-class loop for large inputs and the coordinate-offset trick otherwise;
        // both keep the same set, they differ only in float rounding of the offset boxes and tie order.
        long limit = boxes.device.type == DeviceType.CPU ? 4000 : 20000;
        List<long> keep = boxes.numel() > limit ? PerCategory(b, s, cat, iou_threshold) : OffsetTrick(b, s, cat, iou_threshold);
        return IndexTensor(keep, boxes.device);
    }

    /// <summary>Areas (x1 - x0) · (y1 - y0) of N×4 boxes, in the boxes' dtype.</summary>
    public static Tensor box_area(Tensor boxes)
    {
        using var scope = NewDisposeScope();
        return ((boxes[.., 2] - boxes[.., 0]) * (boxes[.., 3] - boxes[.., 1])).MoveToOuterDisposeScope();
    }

    /// <summary>Pairwise IoU (N×M) of two sets of boxes, as torchvision.ops.box_iou.</summary>
    public static Tensor box_iou(Tensor boxes1, Tensor boxes2)
    {
        using var scope = NewDisposeScope();
        var area1 = box_area(boxes1);
        var area2 = box_area(boxes2);
        var lt = maximum(boxes1[.., TensorIndex.None, ..2], boxes2[TensorIndex.None, .., ..2]);
        var rb = minimum(boxes1[.., TensorIndex.None, 2..], boxes2[TensorIndex.None, .., 2..]);
        var wh = (rb - lt).clamp(min: 0);
        var inter = wh[TensorIndex.Ellipsis, 0] * wh[TensorIndex.Ellipsis, 1];
        var union = area1[.., TensorIndex.None] + area2[TensorIndex.None, ..] - inter;
        return (inter / union).MoveToOuterDisposeScope();
    }

    // _batched_nms_coordinate_trick: shift each category by idx · (max coordinate + 1) so categories cannot overlap.
    private static List<long> OffsetTrick(float[] boxes, float[] scores, long[] cat, double thr)
    {
        float max = float.NegativeInfinity;
        foreach (var v in boxes) max = MathF.Max(max, v);
        var shifted = new float[boxes.Length];
        for (int i = 0; i < cat.Length; i++)
        {
            float off = cat[i] * (max + 1f);
            for (int k = 0; k < 4; k++) shifted[i * 4 + k] = boxes[i * 4 + k] + off;
        }
        return NmsCore(shifted, scores, thr);
    }

    // _batched_nms_vanilla: NMS per category, then all kept indices by descending score.
    private static List<long> PerCategory(float[] boxes, float[] scores, long[] cat, double thr)
    {
        var keep = new List<long>();
        foreach (var c in cat.Distinct().Order())
        {
            var members = Enumerable.Range(0, cat.Length).Where(i => cat[i] == c).ToArray();
            var sub = new float[members.Length * 4];
            var subScores = new float[members.Length];
            for (int j = 0; j < members.Length; j++)
            {
                Array.Copy(boxes, members[j] * 4, sub, j * 4, 4);
                subScores[j] = scores[members[j]];
            }
            foreach (var k in NmsCore(sub, subScores, thr)) keep.Add(members[k]);
        }
        keep.Sort();
        return StableDescending(keep.ToArray(), scores);
    }

    // torchvision's nms_kernel_impl (CPU), in float arithmetic like the float32 kernel.
    private static List<long> NmsCore(float[] boxes, float[] scores, double thr)
    {
        int n = scores.Length;
        var order = StableDescending(Enumerable.Range(0, n).Select(i => (long)i).ToArray(), scores);
        var areas = new float[n];
        for (int i = 0; i < n; i++) areas[i] = (boxes[i * 4 + 2] - boxes[i * 4]) * (boxes[i * 4 + 3] - boxes[i * 4 + 1]);
        var suppressed = new bool[n];
        var keep = new List<long>();
        for (int a = 0; a < n; a++)
        {
            int i = (int)order[a];
            if (suppressed[i]) continue;
            keep.Add(i);
            float ix0 = boxes[i * 4], iy0 = boxes[i * 4 + 1], ix1 = boxes[i * 4 + 2], iy1 = boxes[i * 4 + 3], iarea = areas[i];
            for (int b = a + 1; b < n; b++)
            {
                int j = (int)order[b];
                if (suppressed[j]) continue;
                float xx0 = MathF.Max(ix0, boxes[j * 4]), yy0 = MathF.Max(iy0, boxes[j * 4 + 1]);
                float xx1 = MathF.Min(ix1, boxes[j * 4 + 2]), yy1 = MathF.Min(iy1, boxes[j * 4 + 3]);
                float inter = MathF.Max(0f, xx1 - xx0) * MathF.Max(0f, yy1 - yy0);
                float ovr = inter / (iarea + areas[j] - inter);
                if (ovr > thr) suppressed[j] = true;
            }
        }
        return keep;
    }

    private static List<long> StableDescending(long[] idx, float[] scores)
    {
        // OrderBy is a stable sort; torch's descending sort puts NaN first.
        return idx.OrderByDescending(i => float.IsNaN(scores[i])).ThenByDescending(i => scores[i]).ToList();
    }

    private static void CheckBoxes(Tensor boxes, Tensor scores)
    {
        if (boxes.dim() != 2 || boxes.size(1) != 4) throw new ArgumentException($"expected N×4 boxes, got [{string.Join(", ", boxes.shape)}]");
        if (scores.dim() != 1 || scores.size(0) != boxes.size(0))
            throw new ArgumentException($"expected {boxes.size(0)} scores, got [{string.Join(", ", scores.shape)}]");
    }

    private static float[] BoxesToArray(Tensor boxes)
    {
        using var t = boxes.to(ScalarType.Float32, CPU);
        return t.ToArray<float>();
    }

    private static float[] ScoresToArray(Tensor scores)
    {
        using var t = scores.to(ScalarType.Float32, CPU);
        return t.ToArray<float>();
    }

    private static Tensor IndexTensor(IReadOnlyCollection<long> keep, Device device)
    {
        var cpu = TensorData.FromSpan<long>(keep.ToArray(), keep.Count);
        if (device.type == DeviceType.CPU) return cpu;
        using (cpu) return cpu.to(device);
    }
}
