using TorchSam2.IO;
using TorchSam2.Modeling;
using TorchSharp;
using TorchSharp.Modules;
using TorchSam2.Utils;
using static TorchSharp.torch;

namespace TorchSam2;

/// <summary>
/// Settings of <see cref="AutomaticMaskGenerator"/>; names and defaults follow SAM2AutomaticMaskGenerator's
/// constructor (points_per_side → PointsPerSide, ...).
/// </summary>
public sealed record AutomaticMaskGeneratorOptions
{
    /// <summary>Points sampled along one side of the image (squared in total); null when <see cref="PointGrids"/> is given.</summary>
    public int? PointsPerSide { get; init; } = 32;
    /// <summary>Points run through the decoder at once; higher is faster and uses more memory.</summary>
    public int PointsPerBatch { get; init; } = 64;
    /// <summary>Masks whose predicted IoU is not above this are dropped (0 disables).</summary>
    public double PredIouThresh { get; init; } = 0.8;
    /// <summary>Masks whose stability score is below this are dropped (0 disables).</summary>
    public double StabilityScoreThresh { get; init; } = 0.95;
    /// <summary>How far the binarization cutoff moves when computing the stability score.</summary>
    public double StabilityScoreOffset { get; init; } = 1.0;
    /// <summary>Logit threshold that binarizes masks.</summary>
    public double MaskThreshold { get; init; } = 0.0;
    /// <summary>Box IoU above which duplicate masks of one crop are suppressed.</summary>
    public double BoxNmsThresh { get; init; } = 0.7;
    /// <summary>Extra crop layers (layer i has (2^i)² crops); 0 runs on the whole image only.</summary>
    public int CropNLayers { get; init; }
    /// <summary>Box IoU above which duplicate masks of different crops are suppressed.</summary>
    public double CropNmsThresh { get; init; } = 0.7;
    /// <summary>Overlap of first-layer crops as a fraction of the image's short side.</summary>
    public double CropOverlapRatio { get; init; } = 512.0 / 1500;
    /// <summary>Points per side in crop layer n are divided by this to the n-th power.</summary>
    public int CropNPointsDownscaleFactor { get; init; } = 1;
    /// <summary>Explicit point grids in [0, 1]² ((x, y) pairs), one per crop layer; exclusive with PointsPerSide.</summary>
    public IReadOnlyList<double[][]>? PointGrids { get; init; }
    /// <summary>When &gt; 0, the predictor fills holes and removes specks smaller than this (pixels at the decoder's resolution).</summary>
    public int MinMaskRegionArea { get; init; }
    /// <summary>"binary_mask" (bool[]), "uncompressed_rle" (<see cref="Rle"/>) or "coco_rle" (<see cref="CocoRle"/>).</summary>
    public string OutputMode { get; init; } = "binary_mask";
    /// <summary>Refine every mask once by feeding its low-res logits back with its point.</summary>
    public bool UseM2M { get; init; }
    /// <summary>Three candidate masks per point instead of one.</summary>
    public bool MultimaskOutput { get; init; } = true;
}

/// <summary>One generated mask, as a record of SAM2AutomaticMaskGenerator.generate.</summary>
public sealed record MaskRecord
{
    /// <summary>bool[] row-major H×W, <see cref="Utils.Rle"/> or <see cref="CocoRle"/>, by the output mode.</summary>
    public required object Segmentation { get; init; }
    /// <summary>The uncompressed RLE the segmentation was made from (always available).</summary>
    public required Rle Rle { get; init; }
    /// <summary>Box around the mask: x, y, width, height.</summary>
    public required float[] Bbox { get; init; }
    /// <summary>Mask area in pixels.</summary>
    public required long Area { get; init; }
    public required float PredictedIou { get; init; }
    /// <summary>The point prompt that produced the mask, [[x, y]] in image pixels.</summary>
    public required float[][] PointCoords { get; init; }
    public required float StabilityScore { get; init; }
    /// <summary>The crop the mask was found in: x, y, width, height.</summary>
    public required float[] CropBox { get; init; }

    /// <summary>The mask as a row-major H×W array, whatever the output mode.</summary>
    public bool[] ToMask() => Segmentation as bool[] ?? Rle.DecodeRowMajor();
}

/// <summary>Progress of <see cref="AutomaticMaskGenerator.Generate(Tensor, IProgress{AmgProgress}?)"/>, reported after each point batch.</summary>
public readonly record struct AmgProgress(int BatchesDone, int BatchesTotal, int Crop, int CropCount, int MasksSoFar);

/// <summary>
/// Segments everything in an image: prompts the model with a grid of points (optionally on crops too),
/// keeps confident and stable masks and removes duplicates by box NMS.
/// Mirrors sam2/automatic_mask_generator.py (SAM2AutomaticMaskGenerator).
/// </summary>
public sealed class AutomaticMaskGenerator : IDisposable
{
    private static readonly string[] OutputModes = ["binary_mask", "uncompressed_rle", "coco_rle"];

    private readonly Sam2ImagePredictor _predictor;
    private readonly SAM2Transforms _transforms;
    private readonly List<double[][]> _pointGrids;

    public AutomaticMaskGeneratorOptions Options { get; }
    public SAM2Base Model { get; }
    public Sam2ImagePredictor Predictor => _predictor;

    public AutomaticMaskGenerator(SAM2Base model, AutomaticMaskGeneratorOptions? options = null)
    {
        var o = options ?? new AutomaticMaskGeneratorOptions();
        if ((o.PointsPerSide is null) == (o.PointGrids is null))
            throw new ArgumentException("Exactly one of PointsPerSide or PointGrids must be given (set PointsPerSide = null to use PointGrids).");
        if (!OutputModes.Contains(o.OutputMode)) throw new ArgumentException($"Unknown output mode '{o.OutputMode}' (expected {string.Join(", ", OutputModes)}).");
        Validate(o);
        _pointGrids = o.PointsPerSide is int n
            ? Amg.build_all_layer_point_grids(n, o.CropNLayers, o.CropNPointsDownscaleFactor)
            : o.PointGrids!.ToList();
        if (_pointGrids.Count < o.CropNLayers + 1)
            throw new ArgumentException($"{_pointGrids.Count} point grid(s) given for {o.CropNLayers + 1} crop layer(s).");
        Options = o;
        Model = model;
        // As upstream: the predictor cleans the low-res logits with the min region area.
        _predictor = new Sam2ImagePredictor(model, maxHoleArea: o.MinMaskRegionArea, maxSprinkleArea: o.MinMaskRegionArea);
        _transforms = new SAM2Transforms(model.image_size, 0.0, o.MinMaskRegionArea, o.MinMaskRegionArea);
    }

    /// <summary>
    /// Checks the options: counts positive and within <see cref="Limits"/> (crop layers ≤ 4, points per side ≤ 256,
    /// points per batch ≤ 1024), thresholds finite (box IoUs in [0, 1]), grid points finite in [0, 1]. Throws
    /// <see cref="ArgumentOutOfRangeException"/> naming the option and the value.
    /// </summary>
    public static void Validate(AutomaticMaskGeneratorOptions o)
    {
        ArgumentNullException.ThrowIfNull(o);
        static void Range(string name, double v, double lo, double hi)
        {
            if (!double.IsFinite(v) || v < lo || v > hi)
                throw new ArgumentOutOfRangeException(name, v, $"{name} must be a number in [{lo}, {hi}], got {v}");
        }
        static void Count(string name, long v, long lo, long hi)
        {
            if (v < lo || v > hi) throw new ArgumentOutOfRangeException(name, v, $"{name} must be in {lo}..{hi}, got {v}");
        }
        if (o.PointsPerSide is int pps) Count(nameof(o.PointsPerSide), pps, 1, Limits.MaxPointsPerSide);
        Count(nameof(o.PointsPerBatch), o.PointsPerBatch, 1, Limits.MaxPointsPerBatch);
        Count(nameof(o.CropNLayers), o.CropNLayers, 0, Limits.MaxCropLayers);
        Count(nameof(o.CropNPointsDownscaleFactor), o.CropNPointsDownscaleFactor, 1, 64);
        Count(nameof(o.MinMaskRegionArea), o.MinMaskRegionArea, 0, int.MaxValue);
        // scores above 1 are possible (the IoU head is unbounded); a threshold above them keeps nothing
        Range(nameof(o.PredIouThresh), o.PredIouThresh, -1e6, 1e6);
        Range(nameof(o.StabilityScoreThresh), o.StabilityScoreThresh, -1e6, 1e6);
        Range(nameof(o.BoxNmsThresh), o.BoxNmsThresh, 0, 1);
        Range(nameof(o.CropNmsThresh), o.CropNmsThresh, 0, 1);
        Range(nameof(o.CropOverlapRatio), o.CropOverlapRatio, 0, 1);
        Range(nameof(o.StabilityScoreOffset), o.StabilityScoreOffset, 0, 1e6);
        Range(nameof(o.MaskThreshold), o.MaskThreshold, -1e6, 1e6);
        if (o.PointGrids is { } grids)
            foreach (var g in grids)
                foreach (var p in g)
                    if (p is null || p.Length != 2 || !double.IsFinite(p[0]) || !double.IsFinite(p[1]) || p[0] < 0 || p[0] > 1 || p[1] < 0 || p[1] > 1)
                        throw new ArgumentOutOfRangeException(nameof(o.PointGrids), "grid points must be (x, y) pairs of finite numbers in [0, 1]");
    }

    /// <summary>The point grid of each crop layer, (x, y) in [0, 1]².</summary>
    public IReadOnlyList<double[][]> PointGrids => _pointGrids;

    public List<MaskRecord> Generate(string path, IProgress<AmgProgress>? progress = null) => Generate(RgbImage.Load(path), progress);

    public List<MaskRecord> Generate(RgbImage image, IProgress<AmgProgress>? progress = null)
    {
        using var t = image.ToTensor();
        return Generate(t, progress);
    }

    /// <summary>Generates masks for a uint8 H×W×3 RGB image.</summary>
    public List<MaskRecord> Generate(Tensor image, IProgress<AmgProgress>? progress = null)
    {
        if (image.dim() != 3 || image.size(2) != 3 || image.dtype != ScalarType.Byte)
            throw new ArgumentException($"expected a uint8 H×W×3 RGB image, got [{string.Join(", ", image.shape)}] {image.dtype}");
        using var _ = inference_mode();
        using var data = GenerateMasks(image, progress);
        return ToRecords(data);
    }

    private List<MaskRecord> ToRecords(MaskData data)
    {
        var records = new List<MaskRecord>();
        if (!data.Contains("rles")) return records;
        var rles = data.GetList<Rle>("rles");
        if (rles.Count == 0) return records;
        float[] Floats(string key)
        {
            using var t = data.GetTensor(key).to(ScalarType.Float32, CPU);
            return t.ToArray<float>();
        }
        var boxes = Floats("boxes");
        var ious = Floats("iou_preds");
        var points = Floats("points");
        var stability = Floats("stability_score");
        var crops = Floats("crop_boxes");
        for (int i = 0; i < rles.Count; i++)
        {
            var rle = rles[i];
            object seg = Options.OutputMode switch
            {
                "coco_rle" => Amg.coco_encode_rle(rle),
                "binary_mask" => Amg.rle_to_mask(rle),
                _ => rle,
            };
            records.Add(new MaskRecord
            {
                Segmentation = seg,
                Rle = rle,
                Area = Amg.area_from_rle(rle),
                Bbox = Amg.box_xyxy_to_xywh(boxes[(i * 4)..(i * 4 + 4)]),
                PredictedIou = ious[i],
                PointCoords = [[points[i * 2], points[i * 2 + 1]]],
                StabilityScore = stability[i],
                CropBox = Amg.box_xyxy_to_xywh(crops[(i * 4)..(i * 4 + 4)]),
            });
        }
        return records;
    }

    /// <summary>All crops, merged; the caller owns the result (columns rles, boxes, iou_preds, points, stability_score, crop_boxes).</summary>
    public MaskData GenerateMasks(Tensor image, IProgress<AmgProgress>? progress = null)
    {
        using var _ = inference_mode();
        int h = (int)image.size(0), w = (int)image.size(1);
        var (cropBoxes, layerIdxs) = Amg.generate_crop_boxes((h, w), Options.CropNLayers, Options.CropOverlapRatio);
        int batchesTotal = layerIdxs.Sum(l => (_pointGrids[l].Length + Options.PointsPerBatch - 1) / Options.PointsPerBatch);
        var state = new ProgressState(progress, batchesTotal, cropBoxes.Count);
        var data = new MaskData();
        try
        {
            for (int c = 0; c < cropBoxes.Count; c++)
            {
                state.Crop = c;
                using var cropData = ProcessCrop(image, cropBoxes[c], layerIdxs[c], (h, w), state);
                data.Cat(cropData);
            }
            // Duplicates between crops: prefer masks from smaller crops.
            if (cropBoxes.Count > 1 && data.Contains("boxes") && data.GetTensor("boxes").size(0) > 0)
            {
                using var scope = NewDisposeScope();
                var boxes = data.GetTensor("boxes").@float();
                var scores = Nms.box_area(data.GetTensor("crop_boxes")).@float().reciprocal().to(boxes.device);
                var keep = Nms.batched_nms(boxes, scores, zeros_like(boxes[.., 0]), Options.CropNmsThresh);
                data.Filter(keep);
            }
            return data;
        }
        catch
        {
            data.Dispose();
            throw;
        }
    }

    private sealed class ProgressState(IProgress<AmgProgress>? progress, int total, int crops)
    {
        public int Done, Crop, MasksInDoneCrops;
        public void Report(int masksInCrop) => progress?.Report(new AmgProgress(Done, total, Crop, crops, MasksInDoneCrops + masksInCrop));
    }

    private MaskData ProcessCrop(Tensor image, int[] cropBox, int layerIdx, (int h, int w) origSize, ProgressState state)
    {
        int x0 = cropBox[0], y0 = cropBox[1], x1 = cropBox[2], y1 = cropBox[3];
        using (var cropped = image[y0..y1, x0..x1, ..]) _predictor.SetImage(cropped);
        (long h, long w) croppedSize = (y1 - y0, x1 - x0);

        // Grid points in crop pixels: computed in double as numpy, then float32 as torch.as_tensor.
        var grid = _pointGrids[layerIdx];
        var pointsForImage = grid.Select(p => new[] { (float)(p[0] * croppedSize.w), (float)(p[1] * croppedSize.h) }).ToArray();

        var data = new MaskData();
        var embed = _predictor.GetImageEmbedding();
        var highRes = _predictor.GetHighResFeatures();
        void ReleaseFeatures()
        {
            embed.Dispose();
            foreach (var f in highRes) f.Dispose();
            highRes.Clear();
            _predictor.ResetPredictor();
        }
        try
        {
            foreach (var points in Amg.batch_iterator(Options.PointsPerBatch, pointsForImage))
            {
                using (var scope = NewDisposeScope())
                using (var batchData = ProcessBatch(points, croppedSize, cropBox, origSize, embed, highRes))
                    data.Cat(batchData);
                state.Done++;
                state.Report(data.Contains("rles") ? data.GetList<Rle>("rles").Count : 0);
            }
            var device = embed.device;
            ReleaseFeatures();
            if (!data.Contains("rles")) return data;

            using var scope2 = NewDisposeScope();
            // Duplicates within this crop.
            var boxes = data.GetTensor("boxes").@float();
            var keep = Nms.batched_nms(boxes, data.GetTensor("iou_preds"), zeros_like(boxes[.., 0]), Options.BoxNmsThresh);
            data.Filter(keep);
            // Back to the original image frame.
            data["boxes"] = Amg.uncrop_boxes_xyxy(data.GetTensor("boxes"), cropBox);
            data["points"] = Amg.uncrop_points(data.GetTensor("points"), cropBox);
            int n = data.GetList<Rle>("rles").Count;
            var cb = new long[n * 4];
            for (int i = 0; i < n; i++) for (int k = 0; k < 4; k++) cb[i * 4 + k] = cropBox[k];
            data["crop_boxes"] = tensor(cb, new long[] { n, 4 }, device: device);
            state.MasksInDoneCrops += n;
            return data;
        }
        catch
        {
            data.Dispose();
            throw;
        }
        finally
        {
            ReleaseFeatures();
        }
    }

    // _process_batch: runs inside the caller's dispose scope; the returned MaskData owns its tensors.
    // Upstream upsamples every mask and then drops those with a low predicted IoU; upsampling (and the
    // hole/speck cleanup before it) works on each mask alone, so dropping them first at low resolution
    // gives the same masks for less work.
    private MaskData ProcessBatch(float[][] points, (long h, long w) imSize, int[] cropBox, (int h, int w) origSize, Tensor embed, List<Tensor> highRes)
    {
        var device = embed.device;
        int n = points.Length;
        var pointsT = tensor(points.SelectMany(p => p).ToArray(), new long[] { n, 2 }, device: device);
        var inPoints = _transforms.transform_coords(pointsT, normalize: true, imSize);
        var inLabels = ones([n], ScalarType.Int32, device);
        var (lowRes, iouPreds) = Decode(inPoints[.., TensorIndex.None, ..], inLabels[.., TensorIndex.None], null, Options.MultimaskOutput, embed, highRes);

        var data = new MaskData();
        try
        {
            data["low_res_logits"] = lowRes.flatten(0, 1);
            data["iou_preds"] = iouPreds.flatten(0, 1);
            data["points"] = pointsT.repeat_interleave(lowRes.size(1), 0);

            if (Options.UseM2M)
            {
                // One refinement step with each mask's own (clamped) low-res logits as the mask prompt.
                var inPts = _transforms.transform_coords(data.GetTensor("points"), normalize: true, imSize);
                var labels = ones([inPts.size(0)], ScalarType.Int32, device);
                var (l2, i2) = RefineWithM2M(inPts, labels, data.GetTensor("low_res_logits").clamp(-32.0, 32.0), Options.PointsPerBatch, embed, highRes);
                data["low_res_logits"] = l2.squeeze(1);
                data["iou_preds"] = i2.squeeze(1);
            }
            if (Options.PredIouThresh > 0.0) data.Filter(data.GetTensor("iou_preds") > Options.PredIouThresh);
            // Logits at the crop's size (predictor._predict's postprocess_masks).
            var kept = data.GetTensor("low_res_logits");
            data["masks"] = kept.size(0) == 0
                ? zeros([0, imSize.h, imSize.w], ScalarType.Float32, device)
                : _transforms.postprocess_masks(kept.unsqueeze(1), imSize).squeeze(1);
            data.Remove("low_res_logits");
            data["stability_score"] = Amg.calculate_stability_score(data.GetTensor("masks"), Options.MaskThreshold, Options.StabilityScoreOffset);
            if (Options.StabilityScoreThresh > 0.0) data.Filter(data.GetTensor("stability_score") >= Options.StabilityScoreThresh);

            // Binarize, box, and drop masks cut by the crop border.
            data["masks"] = data.GetTensor("masks") > Options.MaskThreshold;
            data["boxes"] = Amg.batched_mask_to_box(data.GetTensor("masks"));
            var keep = Amg.is_box_near_crop_edge(data.GetTensor("boxes"), cropBox, [0, 0, origSize.w, origSize.h]).logical_not_();
            if (!keep.all().ToBoolean()) data.Filter(keep);

            data["masks"] = Amg.uncrop_masks(data.GetTensor("masks"), cropBox, origSize.h, origSize.w);
            data["rles"] = Amg.mask_to_rle_pytorch(data.GetTensor("masks"));
            data.Remove("masks");
            return data;
        }
        catch
        {
            data.Dispose();
            throw;
        }
    }

    // refine_with_m2m: one single-mask decoder pass per point with its low-res mask as prompt; returns N×1×h×w logits and N×1 IoUs.
    private (Tensor lowRes, Tensor iou) RefineWithM2M(Tensor points, Tensor labels, Tensor lowResMasks, int pointsPerBatch, Tensor embed, List<Tensor> highRes)
    {
        var newMasks = new List<Tensor>();
        var newIous = new List<Tensor>();
        foreach (var b in Amg.batch_iterator(pointsPerBatch, points, labels, lowResMasks))
        {
            var (m, iou) = Decode(b[0][.., TensorIndex.None, ..], b[1][.., TensorIndex.None], b[2][.., TensorIndex.None, .., ..], false, embed, highRes);
            newMasks.Add(m);
            newIous.Add(iou);
        }
        return (cat(newMasks, 0), cat(newIous, 0));
    }

    // The prompt encoder + mask decoder part of SAM2ImagePredictor._predict for N point sets on the current
    // image (prompts already in the model frame): low-res logits N×C×h×w (not clamped) and IoUs N×C.
    // Runs in the caller's scope.
    private (Tensor lowRes, Tensor iou) Decode(Tensor coords, Tensor labels, Tensor? maskInput, bool multimask, Tensor embed, List<Tensor> highRes)
    {
        var (sparse, dense) = Model.sam_prompt_encoder.forward((coords, labels), null, maskInput);
        bool batched = coords.size(0) > 1;
        var (lowRes, iou, _, _) = Model.sam_mask_decoder.forward(embed, Model.sam_prompt_encoder.get_dense_pe(), sparse, dense, multimask, batched, highRes);
        return (lowRes, iou);
    }

    public void Dispose() => _predictor.Dispose();
}
