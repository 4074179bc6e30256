using System.Collections;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace TorchSam2.Utils;

/// <summary>
/// Columns of per-mask data (tensors with the mask on dim 0, or lists) filtered and concatenated
/// together, as MaskData in sam2/utils/amg.py. The container owns its tensors: a tensor stored here is
/// taken out of any dispose scope, and a replaced or removed one is disposed.
/// </summary>
public sealed class MaskData : IDisposable
{
    private readonly Dictionary<string, object> _stats = new();

    public IEnumerable<string> Keys => _stats.Keys;

    public bool Contains(string key) => _stats.ContainsKey(key);

    /// <summary>A tensor or an <see cref="IList"/> column. Setting a tensor hands it over to this container.</summary>
    public object this[string key]
    {
        get => _stats[key];
        set
        {
            if (value is not (Tensor or IList)) throw new ArgumentException("MaskData only supports lists and tensors.");
            if (_stats.TryGetValue(key, out var old))
            {
                if (ReferenceEquals(old, value)) return;
                (old as Tensor)?.Dispose();
            }
            if (value is Tensor t) t.DetachFromDisposeScope();
            _stats[key] = value;
        }
    }

    public Tensor GetTensor(string key) => (Tensor)_stats[key];

    public List<T> GetList<T>(string key) => (List<T>)_stats[key];

    public void Remove(string key)
    {
        if (_stats.Remove(key, out var old)) (old as Tensor)?.Dispose();
    }

    /// <summary>Keeps rows by a bool mask (order kept) or an int64 index tensor (rows in index order).</summary>
    public void Filter(Tensor keep)
    {
        bool isMask = keep.dtype == ScalarType.Bool;
        long[]? idx = null;
        bool[]? mask = null;
        foreach (var key in _stats.Keys.ToList())
        {
            var v = _stats[key];
            if (v is Tensor t)
            {
                using var k = keep.to(t.device);
                this[key] = t[k];
            }
            else
            {
                var list = (IList)v;
                var result = (IList)Activator.CreateInstance(v.GetType())!;
                if (isMask)
                {
                    if (mask is null) using (var c = keep.to(CPU)) mask = c.ToArray<bool>();
                    for (int i = 0; i < list.Count; i++) if (mask[i]) result.Add(list[i]);
                }
                else
                {
                    if (idx is null) using (var c = keep.to(ScalarType.Int64, CPU)) idx = c.ToArray<long>();
                    foreach (var i in idx) result.Add(list[(int)i]);
                }
                _stats[key] = result;
            }
        }
    }

    /// <summary>Appends the rows of <paramref name="other"/>; its tensors are copied, it keeps its own.</summary>
    public void Cat(MaskData other)
    {
        foreach (var (key, v) in other._stats)
        {
            if (!_stats.TryGetValue(key, out var mine))
            {
                if (v is Tensor t) this[key] = t.clone();
                else
                {
                    var copy = (IList)Activator.CreateInstance(v.GetType())!;
                    foreach (var item in (IList)v) copy.Add(item);
                    _stats[key] = copy;
                }
            }
            else if (v is Tensor t)
            {
                this[key] = cat([(Tensor)mine, t], 0);
            }
            else
            {
                var list = (IList)mine;
                foreach (var item in (IList)v) list.Add(item);
            }
        }
    }

    public void Dispose()
    {
        foreach (var v in _stats.Values) (v as Tensor)?.Dispose();
        _stats.Clear();
    }
}

/// <summary>A compressed COCO RLE as pycocotools writes it to JSON: {"size": [h, w], "counts": "..."}.</summary>
public sealed record CocoRle(int[] Size, string Counts);

/// <summary>Helpers of the automatic mask generator (sam2/utils/amg.py).</summary>
public static class Amg
{
    /// <summary>For N×4 boxes in crop coordinates: true where a box lies within atol of a crop edge that is not an image edge.</summary>
    public static Tensor is_box_near_crop_edge(Tensor boxes, int[] crop_box, int[] orig_box, double atol = 20.0)
    {
        using var scope = NewDisposeScope();
        var cropT = tensor(crop_box.Select(v => (float)v).ToArray(), new long[] { 1, 4 }, device: boxes.device);
        var origT = tensor(orig_box.Select(v => (float)v).ToArray(), new long[] { 1, 4 }, device: boxes.device);
        var b = uncrop_boxes_xyxy(boxes, crop_box).@float();
        // torch.isclose with rtol = 0: |a - b| <= atol
        var nearCrop = (b - cropT).abs() <= atol;
        var nearImage = (b - origT).abs() <= atol;
        return (nearCrop & nearImage.logical_not()).any(1).MoveToOuterDisposeScope();
    }

    /// <summary>(x0, y0, x1, y1) → (x0, y0, w, h) along the last dimension.</summary>
    public static Tensor box_xyxy_to_xywh(Tensor box_xyxy)
    {
        using var scope = NewDisposeScope();
        var xy = box_xyxy[TensorIndex.Ellipsis, ..2];
        var wh = box_xyxy[TensorIndex.Ellipsis, 2..] - xy;
        return cat([xy, wh], -1).MoveToOuterDisposeScope();
    }

    public static float[] box_xyxy_to_xywh(float[] b) => [b[0], b[1], b[2] - b[0], b[3] - b[1]];

    /// <summary>Consecutive slices of <paramref name="batch_size"/> items (the last may be shorter).</summary>
    public static IEnumerable<T[]> batch_iterator<T>(int batch_size, IReadOnlyList<T> items)
    {
        if (batch_size <= 0) throw new ArgumentOutOfRangeException(nameof(batch_size));
        for (int start = 0; start < items.Count; start += batch_size)
            yield return items.Skip(start).Take(batch_size).ToArray();
    }

    /// <summary>Slices of dim 0 of several same-length tensors, batch by batch; the caller disposes each slice.</summary>
    public static IEnumerable<Tensor[]> batch_iterator(int batch_size, params Tensor[] args)
    {
        if (args.Length == 0 || args.Any(a => a.size(0) != args[0].size(0)))
            throw new ArgumentException("Batched iteration must have inputs of all the same size.");
        if (batch_size <= 0) throw new ArgumentOutOfRangeException(nameof(batch_size));
        long n = args[0].size(0);
        for (long start = 0; start < n; start += batch_size)
        {
            long len = Math.Min(batch_size, n - start);
            yield return args.Select(a => a.narrow(0, start, len)).ToArray();
        }
    }

    /// <summary>
    /// Uncompressed column-major RLEs of B×H×W bool masks. Run boundaries are found on the masks' device
    /// and only their positions come back to the CPU.
    /// </summary>
    public static List<Rle> mask_to_rle_pytorch(Tensor masks)
    {
        if (masks.dim() != 3) throw new ArgumentException($"expected B×H×W masks, got [{string.Join(", ", masks.shape)}]");
        int b = (int)masks.size(0), h = (int)masks.size(1), w = (int)masks.size(2);
        long n = (long)h * w;
        var result = new List<Rle>(b);
        if (b == 0) return result;
        long[] change;
        bool[] first;
        using (var scope = NewDisposeScope())
        {
            var flat = masks.@bool().permute(0, 2, 1).flatten(1);   // Fortran order
            var diff = flat[.., 1..].logical_xor(flat[.., ..^1]);
            change = diff.nonzero().to(CPU).ToArray<long>();
            first = flat[.., 0].to(CPU).ToArray<bool>();
        }
        // change holds (mask, position) pairs in row-major order, i.e. grouped by mask.
        int p = 0;
        for (int i = 0; i < b; i++)
        {
            var counts = new List<int>();
            if (first[i]) counts.Add(0);
            long prev = 0;
            for (; p < change.Length / 2 && change[2 * p] == i; p++)
            {
                long cut = change[2 * p + 1] + 1;
                counts.Add(checked((int)(cut - prev)));
                prev = cut;
            }
            counts.Add(checked((int)(n - prev)));
            result.Add(new Rle(h, w, counts.ToArray()));
        }
        return result;
    }

    /// <summary>Row-major H×W mask of an uncompressed RLE.</summary>
    public static bool[] rle_to_mask(Rle rle) => rle.DecodeRowMajor();

    public static long area_from_rle(Rle rle) => rle.Area();

    /// <summary>
    /// IoU between the masks thresholded at mask_threshold ± offset (the higher one always lies inside
    /// the lower one, so it is a ratio of pixel counts). Masks …×H×W logits → … scores.
    /// </summary>
    public static Tensor calculate_stability_score(Tensor masks, double mask_threshold, double threshold_offset)
    {
        using var scope = NewDisposeScope();
        // int16 per row keeps the temporaries small, as upstream.
        var intersections = (masks > mask_threshold + threshold_offset).sum(-1, type: ScalarType.Int16).sum(-1, type: ScalarType.Int32);
        var unions = (masks > mask_threshold - threshold_offset).sum(-1, type: ScalarType.Int16).sum(-1, type: ScalarType.Int32);
        return (intersections.@float() / unions.@float()).MoveToOuterDisposeScope();
    }

    /// <summary>An n×n grid of (x, y) points in [0, 1]², x varying fastest.</summary>
    public static double[][] build_point_grid(int n_per_side)
    {
        if (n_per_side <= 0) return [];
        double offset = 1.0 / (2 * n_per_side);
        var side = Linspace(offset, 1 - offset, n_per_side);
        var points = new double[n_per_side * n_per_side][];
        for (int y = 0; y < n_per_side; y++)
            for (int x = 0; x < n_per_side; x++)
                points[y * n_per_side + x] = [side[x], side[y]];
        return points;
    }

    // numpy.linspace with endpoint: start + i·step, the last value exactly stop.
    private static double[] Linspace(double start, double stop, int num)
    {
        var y = new double[num];
        double step = num > 1 ? (stop - start) / (num - 1) : 0;
        for (int i = 0; i < num; i++) y[i] = i * step + start;
        if (num > 1) y[^1] = stop;
        return y;
    }

    /// <summary>One grid per crop layer; layer i has n_per_side / scale_per_layer^i points per side.</summary>
    public static List<double[][]> build_all_layer_point_grids(int n_per_side, int n_layers, int scale_per_layer)
    {
        if (n_per_side < 0 || n_per_side > Limits.MaxPointsPerSide)
            throw new ArgumentOutOfRangeException(nameof(n_per_side), n_per_side, $"points per side must be 0..{Limits.MaxPointsPerSide}, got {n_per_side}");
        if (n_layers < 0 || n_layers > Limits.MaxCropLayers)
            throw new ArgumentOutOfRangeException(nameof(n_layers), n_layers, $"crop layers must be 0..{Limits.MaxCropLayers}, got {n_layers}");
        if (scale_per_layer < 1) throw new ArgumentOutOfRangeException(nameof(scale_per_layer), scale_per_layer, "the per-layer scale must be at least 1");
        var grids = new List<double[][]>();
        for (int i = 0; i <= n_layers; i++)
            grids.Add(build_point_grid((int)(n_per_side / Math.Pow(scale_per_layer, i))));
        return grids;
    }

    /// <summary>
    /// Crop boxes (x0, y0, x1, y1): the whole image, then for layer i (2^(i+1))² overlapping crops.
    /// Returns the boxes and the layer of each.
    /// </summary>
    public static (List<int[]> crop_boxes, List<int> layer_idxs) generate_crop_boxes((int h, int w) im_size, int n_layers, double overlap_ratio)
    {
        // Layer i adds (2^i)² crops: 12 layers would be 22 million, 31 would overflow.
        if (n_layers < 0 || n_layers > Limits.MaxCropLayers)
            throw new ArgumentOutOfRangeException(nameof(n_layers), n_layers, $"crop layers must be 0..{Limits.MaxCropLayers} (layer i adds (2^i)² crops), got {n_layers}");
        if (im_size.h <= 0 || im_size.w <= 0) throw new ArgumentOutOfRangeException(nameof(im_size), $"image size must be positive, got {im_size.w}x{im_size.h}");
        if (!double.IsFinite(overlap_ratio) || overlap_ratio < 0 || overlap_ratio > 1)
            throw new ArgumentOutOfRangeException(nameof(overlap_ratio), overlap_ratio, "the crop overlap ratio must be in [0, 1]");
        var crop_boxes = new List<int[]>();
        var layer_idxs = new List<int>();
        var (im_h, im_w) = im_size;
        int short_side = Math.Min(im_h, im_w);
        crop_boxes.Add([0, 0, im_w, im_h]);
        layer_idxs.Add(0);

        static int CropLen(int orig_len, int n_crops, int overlap) => (int)Math.Ceiling((overlap * (n_crops - 1) + orig_len) / (double)n_crops);

        for (int i_layer = 0; i_layer < n_layers; i_layer++)
        {
            int n_crops_per_side = 1 << (i_layer + 1);
            int overlap = (int)(overlap_ratio * short_side * (2.0 / n_crops_per_side));
            int crop_w = CropLen(im_w, n_crops_per_side, overlap);
            int crop_h = CropLen(im_h, n_crops_per_side, overlap);
            var x0s = Enumerable.Range(0, n_crops_per_side).Select(i => (crop_w - overlap) * i).ToArray();
            var y0s = Enumerable.Range(0, n_crops_per_side).Select(i => (crop_h - overlap) * i).ToArray();
            foreach (var x0 in x0s)
                foreach (var y0 in y0s)
                {
                    crop_boxes.Add([x0, y0, Math.Min(x0 + crop_w, im_w), Math.Min(y0 + crop_h, im_h)]);
                    layer_idxs.Add(i_layer + 1);
                }
        }
        return (crop_boxes, layer_idxs);
    }

    /// <summary>Shifts boxes (…×4) from crop to image coordinates.</summary>
    public static Tensor uncrop_boxes_xyxy(Tensor boxes, int[] crop_box)
    {
        using var scope = NewDisposeScope();
        var offset = tensor(new long[] { crop_box[0], crop_box[1], crop_box[0], crop_box[1] }, new long[] { 1, 4 }, device: boxes.device);
        if (boxes.dim() == 3) offset = offset.unsqueeze(1);
        return (boxes + offset).MoveToOuterDisposeScope();
    }

    /// <summary>Shifts points (…×2) from crop to image coordinates.</summary>
    public static Tensor uncrop_points(Tensor points, int[] crop_box)
    {
        using var scope = NewDisposeScope();
        var offset = tensor(new long[] { crop_box[0], crop_box[1] }, new long[] { 1, 2 }, device: points.device);
        if (points.dim() == 3) offset = offset.unsqueeze(1);
        return (points + offset).MoveToOuterDisposeScope();
    }

    /// <summary>Pads crop masks (…×h×w) with zeros to the original image size.</summary>
    public static Tensor uncrop_masks(Tensor masks, int[] crop_box, int orig_h, int orig_w)
    {
        int x0 = crop_box[0], y0 = crop_box[1], x1 = crop_box[2], y1 = crop_box[3];
        if (x0 == 0 && y0 == 0 && x1 == orig_w && y1 == orig_h) return masks.alias();
        int pad_x = orig_w - (x1 - x0), pad_y = orig_h - (y1 - y0);
        return F.pad(masks, [x0, pad_x - x0, y0, pad_y - y0], value: 0);
    }

    /// <summary>
    /// Removes 8-connected islands ("islands") or fills holes ("holes") smaller than area_thresh in a
    /// row-major H×W mask. Returns the mask and whether it changed (as cv2.connectedComponentsWithStats upstream).
    /// </summary>
    public static (bool[] mask, bool changed) remove_small_regions(bool[] mask, int h, int w, double area_thresh, string mode)
    {
        if (mode is not ("holes" or "islands")) throw new ArgumentException($"mode must be 'holes' or 'islands', got '{mode}'");
        if (mask.Length != h * w) throw new ArgumentException($"mask has {mask.Length} pixels, expected {h * w}");
        bool correctHoles = mode == "holes";
        var working = new bool[mask.Length];
        for (int i = 0; i < mask.Length; i++) working[i] = correctHoles ^ mask[i];
        int[] regions, pixelAreas;
        using (var scope = NewDisposeScope())
        {
            var (labels, areas) = Misc.get_connected_components(TensorData.FromSpan<bool>(working, 1, 1, h, w));
            regions = labels.ToArray<int>();
            pixelAreas = areas.ToArray<int>();
        }
        int nLabels = regions.Length == 0 ? 1 : regions.Max() + 1;   // label 0 is the background
        var sizes = new int[nLabels];
        for (int i = 0; i < regions.Length; i++) if (regions[i] > 0) sizes[regions[i]] = pixelAreas[i];
        var small = new HashSet<int>();
        for (int l = 1; l < nLabels; l++) if (sizes[l] < area_thresh) small.Add(l);
        if (small.Count == 0) return (mask, false);
        var fill = new HashSet<int>(small) { 0 };
        if (!correctHoles)
        {
            fill = Enumerable.Range(0, nLabels).Where(l => !fill.Contains(l)).ToHashSet();
            // every region is small: keep the largest (the first one on ties)
            if (fill.Count == 0)
            {
                int best = 1;
                for (int l = 2; l < nLabels; l++) if (sizes[l] > sizes[best]) best = l;
                fill.Add(best);
            }
        }
        var result = new bool[mask.Length];
        for (int i = 0; i < regions.Length; i++) result[i] = fill.Contains(regions[i]);
        return (result, true);
    }

    /// <summary>The compressed COCO form of an uncompressed RLE (pycocotools frPyObjects).</summary>
    public static CocoRle coco_encode_rle(Rle rle) => new([rle.Height, rle.Width], rle.ToCocoString());

    /// <summary>
    /// Tight XYXY boxes (int64) around masks C1×C2×…×H×W → C1×C2×…×4; an empty mask gives (0, 0, 0, 0).
    /// </summary>
    public static Tensor batched_mask_to_box(Tensor masks)
    {
        var shape = masks.shape;
        if (masks.numel() == 0) return zeros([.. shape[..^2], 4], ScalarType.Float32, masks.device);
        using var scope = NewDisposeScope();
        long h = shape[^2], w = shape[^1];
        var m = shape.Length > 2 ? masks.flatten(0, -3) : masks.unsqueeze(0);
        m = m.@bool();

        var inHeight = m.any(-1);
        var inHeightCoords = inHeight * arange(h, ScalarType.Int64, masks.device)[TensorIndex.None, ..];
        var bottom = inHeightCoords.amax([-1]);
        inHeightCoords = inHeightCoords + (inHeight.logical_not()).@long() * tensor(h, ScalarType.Int64, masks.device);
        var top = inHeightCoords.amin([-1]);

        var inWidth = m.any(-2);
        var inWidthCoords = inWidth * arange(w, ScalarType.Int64, masks.device)[TensorIndex.None, ..];
        var right = inWidthCoords.amax([-1]);
        inWidthCoords = inWidthCoords + (inWidth.logical_not()).@long() * tensor(w, ScalarType.Int64, masks.device);
        var left = inWidthCoords.amin([-1]);

        var empty = (right < left) | (bottom < top);
        var outBoxes = stack([left, top, right, bottom], -1) * (empty.logical_not()).unsqueeze(-1);
        outBoxes = shape.Length > 2 ? outBoxes.reshape([.. shape[..^2], 4]) : outBoxes[0];
        return outBoxes.MoveToOuterDisposeScope();
    }
}
