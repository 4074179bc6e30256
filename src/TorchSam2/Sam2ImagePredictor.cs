using TorchSam2.IO;
using TorchSam2.Modeling;
using TorchSharp;
using TorchSharp.Modules;
using TorchSam2.Utils;
using static TorchSharp.torch;

namespace TorchSam2;

/// <summary>Masks for one prompt set: C×H×W masks (logits or 0/1), C scores, C×h×w low-res logits.</summary>
public sealed class ImagePrediction(Tensor masks, Tensor iouPredictions, Tensor lowResMasks) : IDisposable
{
    /// <summary>C×H×W at the original image size: logits when asked for, else bool.</summary>
    public Tensor Masks { get; } = masks;
    /// <summary>Predicted IoU of each mask (C).</summary>
    public Tensor IouPredictions { get; } = iouPredictions;
    /// <summary>C×h×w logits at the decoder's resolution, clamped to ±32; feed one back as a mask input.</summary>
    public Tensor LowResMasks { get; } = lowResMasks;

    public float[] Scores
    {
        get
        {
            using var f = IouPredictions.to(ScalarType.Float32);
            return f.ToArray<float>();
        }
    }

    /// <summary>Index of the mask with the highest predicted IoU.</summary>
    public int BestIndex
    {
        get
        {
            var s = Scores;
            int best = 0;
            for (int i = 1; i < s.Length; i++) if (s[i] > s[best]) best = i;
            return best;
        }
    }

    public void Dispose()
    {
        Masks.Dispose();
        IouPredictions.Dispose();
        LowResMasks.Dispose();
    }
}

/// <summary>
/// Embeds an image once, then predicts masks for any number of prompts (points, boxes, a previous
/// low-res mask). Mirrors sam2/sam2_image_predictor.py (SAM2ImagePredictor).
/// </summary>
public sealed class Sam2ImagePredictor : IDisposable
{
    private readonly SAM2Transforms _transforms;
    private readonly List<(long h, long w)> _origHw = new();
    private Tensor? _imageEmbed;           // B × C × S/16 × S/16
    private List<Tensor> _highResFeats = new();
    private bool _isBatch;

    public SAM2Base Model { get; }
    public double MaskThreshold { get; }
    public bool IsImageSet => _imageEmbed is not null;
    public Device Device => Model.no_mem_embed.device;

    public Sam2ImagePredictor(SAM2Base model, double maskThreshold = 0.0, double maxHoleArea = 0.0, double maxSprinkleArea = 0.0)
    {
        Model = model;
        Model.eval();
        MaskThreshold = maskThreshold;
        _transforms = new SAM2Transforms(model.image_size, maskThreshold, maxHoleArea, maxSprinkleArea);
    }

    /// <summary>Original (height, width) of each image set.</summary>
    public IReadOnlyList<(long h, long w)> OriginalSizes => _origHw;

    public void SetImage(string path) => SetImage(RgbImage.Load(path));

    public void SetImage(RgbImage image)
    {
        using var t = image.ToTensor();
        SetImage(t);
    }

    /// <summary>Computes the image embedding of a uint8 H×W×3 RGB tensor.</summary>
    public void SetImage(Tensor imageU8)
    {
        ResetPredictor();
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var input = _transforms.Apply(imageU8, Device).unsqueeze(0);
        _origHw.Add((imageU8.size(0), imageU8.size(1)));
        Embed(input);
        _isBatch = false;
    }

    /// <summary>Embeds several images at once; predict on one with <c>imageIndex</c> or all with PredictBatch.</summary>
    public void SetImageBatch(IReadOnlyList<RgbImage> images)
    {
        if (images.Count == 0) throw new ArgumentException("no images given");
        ResetPredictor();
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var batch = stack(images.Select(img => _transforms.Apply(img, Device)).ToArray());
        foreach (var img in images) _origHw.Add((img.Height, img.Width));
        Embed(batch);
        _isBatch = true;
    }

    /// <summary>The last preprocessed input (for parity checks), kept only when asked.</summary>
    public Tensor? LastPreprocessed { get; private set; }

    /// <summary>Keep the preprocessed input and backbone outputs of the last SetImage (parity and debugging).</summary>
    public bool KeepIntermediates { get; set; }

    /// <summary>Backbone outputs of the last SetImage when <see cref="KeepIntermediates"/> is on.</summary>
    public Dictionary<string, Tensor> Intermediates { get; } = new();

    private void Embed(Tensor input)
    {
        long s = Model.image_size;
        var backboneOut = Model.forward_image(input);
        var (_, visionFeats, _, _) = Model._prepare_backbone_features(backboneOut);
        if (Model.directly_add_no_mem_embed) visionFeats[^1] = visionFeats[^1] + Model.no_mem_embed;
        long b = input.size(0);
        var sizes = new[] { s / 4, s / 8, s / 16 };
        var feats = new List<Tensor>();
        for (int i = 0; i < visionFeats.Count; i++)
            feats.Add(visionFeats[i].permute(1, 2, 0).reshape(b, -1, sizes[i], sizes[i]).DetachFromDisposeScope());
        _imageEmbed = feats[^1];
        _highResFeats = feats.Take(feats.Count - 1).ToList();
        if (KeepIntermediates)
        {
            Keep("preprocessed", input);
            Keep("backbone.vision_features", backboneOut.vision_features);
            for (int i = 0; i < backboneOut.backbone_fpn.Count; i++) Keep($"backbone.fpn.{i}", backboneOut.backbone_fpn[i]);
            for (int i = 0; i < backboneOut.vision_pos_enc.Count; i++) Keep($"backbone.pos.{i}", backboneOut.vision_pos_enc[i]);
            Keep("image_embed", _imageEmbed);
            for (int i = 0; i < _highResFeats.Count; i++) Keep($"high_res_feats.{i}", _highResFeats[i]);
        }
    }

    private void Keep(string name, Tensor t) => Intermediates[name] = t.alias().DetachFromDisposeScope();

    /// <summary>
    /// Predicts masks for one prompt set on the current image (or image <paramref name="imageIndex"/> of a batch).
    /// Points are (x, y) pairs; labels 1 = foreground, 0 = background; box is (x0, y0, x1, y1).
    /// With normalizeCoords (the default) coordinates are pixels of the original image; otherwise in [0, 1].
    /// maskInput is a 1×h×w low-res logit mask from a previous prediction.
    /// </summary>
    public ImagePrediction Predict(float[][]? pointCoords = null, int[]? pointLabels = null, float[]? box = null, Tensor? maskInput = null,
                                   bool multimaskOutput = true, bool returnLogits = false, bool normalizeCoords = true, int imageIndex = -1)
    {
        if (!IsImageSet) throw new InvalidOperationException("An image must be set with SetImage(...) before mask prediction.");
        int idx = imageIndex < 0 ? _origHw.Count + imageIndex : imageIndex;
        if (idx < 0 || idx >= _origHw.Count) throw new ArgumentOutOfRangeException(nameof(imageIndex), $"image index {imageIndex} is out of range for {_origHw.Count} image(s)");
        ValidatePrompts(pointCoords, pointLabels, box, idx, normalizeCoords);
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var (coords, labels, boxT, mask) = PrepPrompts(pointCoords, pointLabels, box, maskInput, normalizeCoords, idx);
        var (masks, iou, lowRes) = PredictCore(coords, labels, boxT, mask, multimaskOutput, returnLogits, idx);
        var result = new ImagePrediction(masks.squeeze(0).DetachFromDisposeScope(), iou.squeeze(0).DetachFromDisposeScope(), lowRes.squeeze(0).DetachFromDisposeScope());
        return result;
    }

    /// <summary>Several boxes on one image in one decoder call (multi-object): masks B×C×H×W.</summary>
    public ImagePrediction PredictBoxes(float[][] boxes, bool multimaskOutput = false, bool returnLogits = false, bool normalizeCoords = true, int imageIndex = -1)
    {
        if (!IsImageSet) throw new InvalidOperationException("An image must be set with SetImage(...) before mask prediction.");
        int idx = imageIndex < 0 ? _origHw.Count + imageIndex : imageIndex;
        if (boxes.Length == 0) throw new ArgumentException("no boxes given");
        foreach (var b in boxes) ValidatePrompts(null, null, b, idx, normalizeCoords);
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var boxT = _transforms.transform_boxes(tensor(boxes.SelectMany(b => b).ToArray(), new long[] { boxes.Length, 4 }, device: Device), normalizeCoords, _origHw[idx]);
        var (masks, iou, lowRes) = PredictCore(null, null, boxT, null, multimaskOutput, returnLogits, idx);
        return new ImagePrediction(masks.DetachFromDisposeScope(), iou.DetachFromDisposeScope(), lowRes.DetachFromDisposeScope());
    }

    /// <summary>
    /// Several single-click prompts on one image in one decoder call: prompt i is one point (x, y) with label
    /// <paramref name="labels"/>[i] (1 when null). Masks B×C×H×W, C = 3 with multimask output.
    /// </summary>
    public ImagePrediction PredictPoints(float[][] points, int[]? labels = null, bool multimaskOutput = true, bool returnLogits = false, bool normalizeCoords = true, int imageIndex = -1)
    {
        int idx = CheckClicks(points, ref labels, normalizeCoords, imageIndex);
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var (coords, labelT) = ClickTensors(points, labels, normalizeCoords, idx);
        var (masks, iou, lowRes) = PredictCore(coords, labelT, null, null, multimaskOutput, returnLogits, idx);
        return new ImagePrediction(masks.DetachFromDisposeScope(), iou.DetachFromDisposeScope(), lowRes.DetachFromDisposeScope());
    }

    /// <summary>
    /// <see cref="PredictPoints"/> without upscaling: the decoder's low-res logits (B×C×S/4×S/4, S the model's image size,
    /// clamped to ±32 as LowResMasks) and predicted IoUs (B×C), on the CPU. For callers that sample the masks only where
    /// they need them (the glyph segmenter reads a few thousand pixels of each mask, not the whole crop).
    /// </summary>
    public (float[] Logits, float[] Ious, int Masks, int Size) PredictPointsLowRes(float[][] points, bool multimaskOutput = true, int imageIndex = -1)
    {
        int[]? labels = null;
        int idx = CheckClicks(points, ref labels, true, imageIndex);
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var (coords, labelT) = ClickTensors(points, labels!, true, idx);
        var (lowRes, iou) = Decode(coords, labelT, null, multimaskOutput, idx);
        using var l = lowRes.clamp(-32.0, 32.0).to(ScalarType.Float32, CPU).contiguous();
        using var i = iou.to(ScalarType.Float32, CPU).contiguous();
        return (l.ToArray<float>(), i.ToArray<float>(), (int)lowRes.size(1), (int)lowRes.size(-1));
    }

    // Single-click prompts: an image is set, at least one click, labels default to 1, all within the image. Returns the image index.
    private int CheckClicks(float[][] points, ref int[]? labels, bool normalizeCoords, int imageIndex)
    {
        if (!IsImageSet) throw new InvalidOperationException("An image must be set with SetImage(...) before mask prediction.");
        int idx = imageIndex < 0 ? _origHw.Count + imageIndex : imageIndex;
        if (points.Length == 0) throw new ArgumentException("no points given");
        labels ??= Enumerable.Repeat(1, points.Length).ToArray();
        ValidatePrompts(points, labels, null, idx, normalizeCoords);
        return idx;
    }

    // Clicks as B×1×2 coordinates in the model frame and B×1 labels (inside the caller's scope).
    private (Tensor coords, Tensor labels) ClickTensors(float[][] points, int[] labels, bool normalizeCoords, int idx) =>
        (_transforms.transform_coords(tensor(points.SelectMany(p => p).ToArray(), new long[] { points.Length, 1, 2 }, device: Device), normalizeCoords, _origHw[idx]),
         tensor(labels, new long[] { points.Length, 1 }, device: Device));

    /// <summary>One prompt set per image of a batch set with SetImageBatch.</summary>
    public List<ImagePrediction> PredictBatch(IReadOnlyList<float[][]?> pointCoordsBatch, IReadOnlyList<int[]?> pointLabelsBatch, IReadOnlyList<float[]?>? boxBatch = null,
                                              bool multimaskOutput = true, bool returnLogits = false, bool normalizeCoords = true)
    {
        if (!_isBatch) throw new InvalidOperationException("This predictor is not set for batch prediction: call SetImageBatch first.");
        var list = new List<ImagePrediction>();
        for (int i = 0; i < _origHw.Count; i++)
            list.Add(Predict(i < pointCoordsBatch.Count ? pointCoordsBatch[i] : null, i < pointLabelsBatch.Count ? pointLabelsBatch[i] : null,
                             boxBatch is not null && i < boxBatch.Count ? boxBatch[i] : null, null, multimaskOutput, returnLogits, normalizeCoords, i));
        return list;
    }

    private void ValidatePrompts(float[][]? pointCoords, int[]? pointLabels, float[]? box, int idx, bool normalizeCoords)
    {
        if (pointCoords is not null)
        {
            if (pointLabels is null) throw new ArgumentException("point labels must be supplied if point coordinates are supplied.");
            if (pointLabels.Length != pointCoords.Length) throw new ArgumentException($"{pointCoords.Length} points but {pointLabels.Length} labels");
            foreach (var l in pointLabels) PromptChecks.CheckLabel(l);
        }
        var (h, w) = _origHw[idx];
        double maxX = normalizeCoords ? w : 1, maxY = normalizeCoords ? h : 1;
        if (pointCoords is not null)
            foreach (var p in pointCoords)
            {
                if (p is null || p.Length != 2) throw new ArgumentException("each point needs exactly two coordinates (x, y)");
                PromptChecks.CheckPoint(p[0], p[1], maxX, maxY, "point");
            }
        if (box is not null) PromptChecks.CheckBox(box, maxX, maxY, "box");
    }

    private (Tensor? coords, Tensor? labels, Tensor? box, Tensor? mask) PrepPrompts(float[][]? pointCoords, int[]? pointLabels, float[]? box, Tensor? maskInput, bool normalizeCoords, int idx)
    {
        Tensor? coords = null, labels = null, boxT = null, mask = null;
        if (pointCoords is not null && pointLabels is not null)
        {
            var flat = pointCoords.SelectMany(p => p).ToArray();
            coords = _transforms.transform_coords(tensor(flat, new long[] { 1, pointCoords.Length, 2 }, device: Device), normalizeCoords, _origHw[idx]);
            labels = tensor(pointLabels, new long[] { 1, pointLabels.Length }, device: Device);
        }
        if (box is not null) boxT = _transforms.transform_boxes(tensor(box, new long[] { 1, 4 }, device: Device), normalizeCoords, _origHw[idx]);
        if (maskInput is not null)
        {
            mask = maskInput.to(ScalarType.Float32, Device);
            if (mask.dim() == 3) mask = mask.unsqueeze(0);
            long expect = Model.image_size / 4;
            if (mask.dim() != 4 || mask.size(-1) != expect || mask.size(-2) != expect)
                throw new ArgumentException($"mask input must be 1×{expect}×{expect} low-res logits (a previous prediction's LowResMasks), got [{string.Join(", ", maskInput.shape)}]");
        }
        return (coords, labels, boxT, mask);
    }

    // _predict: prompts already in the model frame. Runs inside the caller's scope.
    private (Tensor masks, Tensor iou, Tensor lowRes) PredictCore(Tensor? coords, Tensor? labels, Tensor? boxes, Tensor? maskInput, bool multimask, bool returnLogits, int idx)
    {
        (Tensor, Tensor)? points = coords is not null && labels is not null ? (coords, labels) : null;
        if (boxes is not null)
        {
            var boxCoords = boxes.reshape(-1, 2, 2);
            var boxLabels = tensor(new int[] { 2, 3 }, new long[] { 1, 2 }, device: Device).repeat(boxes.size(0), 1);
            points = points is { } p ? (cat([boxCoords, p.Item1], 1), cat([boxLabels, p.Item2.to(ScalarType.Int32)], 1)) : (boxCoords, boxLabels);
        }
        var (lowRes, iou) = Decode(points?.Item1, points?.Item2, maskInput, multimask, idx);
        var masks = _transforms.postprocess_masks(lowRes, _origHw[idx]);
        lowRes = lowRes.clamp(-32.0, 32.0);
        if (!returnLogits) masks = masks > MaskThreshold;
        return (masks, iou, lowRes);
    }

    // The prompt encoder and mask decoder on point prompts in the model frame (boxes are folded into the points as
    // corner labels 2/3): low-res logits and predicted IoUs, before any upscaling. Runs inside the caller's scope.
    private (Tensor lowRes, Tensor iou) Decode(Tensor? coords, Tensor? labels, Tensor? maskInput, bool multimask, int idx)
    {
        (Tensor, Tensor)? points = coords is not null && labels is not null ? (coords, labels) : null;
        var (sparse, dense) = Model.sam_prompt_encoder.forward(points, null, maskInput);
        bool batched = points is { } bp && bp.Item1.size(0) > 1;
        var highRes = _highResFeats.Select(f => f[idx].unsqueeze(0)).ToList();
        var (lowRes, iou, _, _) = Model.sam_mask_decoder.forward(_imageEmbed![idx].unsqueeze(0), Model.sam_prompt_encoder.get_dense_pe(), sparse, dense, multimask, batched, highRes);
        return (lowRes, iou);
    }

    /// <summary>The image embedding (1×C×S/16×S/16) of the current image; the caller owns the returned handle.</summary>
    public Tensor GetImageEmbedding()
    {
        if (!IsImageSet) throw new InvalidOperationException("An image must be set with SetImage(...) to generate an embedding.");
        return _imageEmbed!.alias();
    }

    /// <summary>High-resolution features (S/4 and S/8) used by the decoder; the caller owns the returned handles.</summary>
    public List<Tensor> GetHighResFeatures() => _highResFeats.Select(f => f.alias()).ToList();

    public void ResetPredictor()
    {
        _imageEmbed?.Dispose();
        _imageEmbed = null;
        foreach (var f in _highResFeats) f.Dispose();
        _highResFeats.Clear();
        foreach (var t in Intermediates.Values) t.Dispose();
        Intermediates.Clear();
        _origHw.Clear();
        _isBatch = false;
    }

    public void Dispose() => ResetPredictor();
}
