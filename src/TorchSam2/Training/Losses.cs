using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace TorchSam2.Training;

/// <summary>
/// The SAM 2 training losses (training/loss_fns.py): sigmoid focal, dice, IoU-prediction and object-score losses.
/// Every function divides by <c>numObjects</c> as upstream; with <c>lossOnMultimask</c> the inputs are [N, M, H, W]
/// and an [N, M] per-mask loss comes back, otherwise a scalar summed over the batch.
/// </summary>
public static class Losses
{
    /// <summary>Dice loss 1 − (2·Σpt + 1)/(Σp + Σt + 1) on sigmoid probabilities.</summary>
    public static Tensor DiceLoss(Tensor inputs, Tensor targets, double numObjects, bool lossOnMultimask = false)
    {
        using var scope = NewDisposeScope();
        var p = inputs.sigmoid();
        Tensor num, den;
        if (lossOnMultimask)
        {
            if (p.dim() != 4 || targets.dim() != 4) throw new ArgumentException("multimask dice needs [N, M, H, W] inputs and targets");
            var pf = p.flatten(2);
            var tf = targets.flatten(2);
            num = (pf * tf).sum(new long[] { -1 }) * 2.0;
            den = pf.sum(new long[] { -1 }) + tf.sum(new long[] { -1 });
        }
        else
        {
            var pf = p.flatten(1);
            var tf = targets.flatten(1);
            num = (pf * tf).sum(new long[] { 1 }) * 2.0;
            den = pf.sum(new long[] { -1 }) + tf.sum(new long[] { -1 });
        }
        var loss = 1.0 - (num + 1.0) / (den + 1.0);
        var result = lossOnMultimask ? loss / numObjects : loss.sum() / numObjects;
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// RetinaNet focal loss on logits: BCE·(1 − p_t)^γ, weighted by α_t when α ≥ 0; averaged over pixels.
    /// </summary>
    public static Tensor SigmoidFocalLoss(Tensor inputs, Tensor targets, double numObjects, double alpha = 0.25, double gamma = 2.0,
                                          bool lossOnMultimask = false)
    {
        using var scope = NewDisposeScope();
        var prob = inputs.sigmoid();
        var ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction: nn.Reduction.None);
        var pT = prob * targets + (1.0 - prob) * (1.0 - targets);
        var loss = gamma == 0 ? ce : ce * (1.0 - pT).pow(gamma);
        if (alpha >= 0)
        {
            var alphaT = targets * alpha + (1.0 - targets) * (1.0 - alpha);
            loss = alphaT * loss;
        }
        Tensor result;
        if (lossOnMultimask)
        {
            if (loss.dim() != 4) throw new ArgumentException("multimask focal loss needs [N, M, H, W] inputs");
            result = loss.flatten(2).mean(new long[] { -1 }) / numObjects;
        }
        else result = loss.mean(new long[] { 1 }).sum() / numObjects;
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Error of the predicted IoU against the IoU of the binarized (logit &gt; 0) mask with the target:
    /// L1 when <paramref name="useL1Loss"/> (the SAM 2.1 recipe), else squared. The actual IoU carries no gradient.
    /// </summary>
    public static Tensor IouLoss(Tensor inputs, Tensor targets, Tensor predIous, double numObjects, bool lossOnMultimask = false, bool useL1Loss = false)
    {
        if (inputs.dim() != 4 || targets.dim() != 4) throw new ArgumentException("iou loss needs [N, M, H, W] inputs and targets");
        using var scope = NewDisposeScope();
        var predMask = inputs.flatten(2) > 0;
        var gtMask = targets.flatten(2) > 0;
        var areaI = (predMask & gtMask).sum(new long[] { -1 }).@float();
        var areaU = (predMask | gtMask).sum(new long[] { -1 }).@float();
        var actual = areaI / areaU.clamp(min: 1.0);
        var loss = useL1Loss ? F.l1_loss(predIous, actual, reduction: nn.Reduction.None) : F.mse_loss(predIous, actual, reduction: nn.Reduction.None);
        var result = lossOnMultimask ? loss / numObjects : loss.sum() / numObjects;
        return result.MoveToOuterDisposeScope();
    }
}

/// <summary>The loss terms of one batch: already weighted sums are in <see cref="Core"/>; the others are unweighted.</summary>
public sealed class LossTerms : IDisposable
{
    public required Tensor Mask { get; init; }
    public required Tensor Dice { get; init; }
    public required Tensor Iou { get; init; }
    public required Tensor Class { get; init; }
    /// <summary>Σ weight·term: the value to back-propagate.</summary>
    public required Tensor Core { get; init; }

    public LossTerms MoveToOuterDisposeScope()
    {
        Mask.MoveToOuterDisposeScope(); Dice.MoveToOuterDisposeScope(); Iou.MoveToOuterDisposeScope();
        Class.MoveToOuterDisposeScope(); Core.MoveToOuterDisposeScope();
        return this;
    }

    public void Dispose()
    {
        Mask.Dispose(); Dice.Dispose(); Iou.Dispose(); Class.Dispose(); Core.Dispose();
    }
}

/// <summary>
/// MultiStepMultiMasksAndIous: focal + dice + IoU (+ object score) losses summed over the prediction steps of
/// interactive training (the first prompt and each correction click). With several masks per step only the one
/// with the lowest 20·focal + dice loss is supervised; the IoU head is supervised on every mask with
/// <see cref="SuperviseAllIou"/> (mean over masks), else on that mask only. Objects whose target is empty only
/// train the object score.
/// </summary>
public sealed class MultiStepMultiMasksAndIous
{
    public double WeightMask { get; init; } = 20;
    public double WeightDice { get; init; } = 1;
    public double WeightIou { get; init; } = 1;
    public double WeightClass { get; init; } = 1;
    public double FocalAlpha { get; init; } = 0.25;
    public double FocalGamma { get; init; } = 2;
    /// <summary>true in the SAM 2.1 training config.</summary>
    public bool SuperviseAllIou { get; init; } = true;
    /// <summary>true in the SAM 2.1 training config.</summary>
    public bool IouUseL1Loss { get; init; } = true;
    public bool PredObjScores { get; init; } = true;
    public double FocalGammaObjScore { get; init; } = 0.0;
    public double FocalAlphaObjScore { get; init; } = -1.0;

    /// <summary>
    /// Losses for one frame: <paramref name="multimasksPerStep"/>[s] is [N, M, H, W] logits, <paramref name="iousPerStep"/>[s]
    /// [N, M], <paramref name="objectScoresPerStep"/>[s] [N, 1]; <paramref name="targets"/> is [N, H, W] (0/1 or bool).
    /// numObjects is the number of objects in the whole batch (clamped to ≥ 1).
    /// </summary>
    public LossTerms Forward(IReadOnlyList<Tensor> multimasksPerStep, IReadOnlyList<Tensor> iousPerStep, IReadOnlyList<Tensor> objectScoresPerStep,
                             Tensor targets, double numObjects)
    {
        if (multimasksPerStep.Count != iousPerStep.Count || multimasksPerStep.Count != objectScoresPerStep.Count)
            throw new ArgumentException("masks, ious and object scores need one entry per step");
        numObjects = Math.Max(numObjects, 1.0);
        using var scope = NewDisposeScope();
        // Targets take the predictions' dtype: ATen's BCE-with-logits works in place on (1 - target),
        // so float32 targets would silently compute a float64 loss in float32.
        var dtype = multimasksPerStep.Count > 0 ? multimasksPerStep[0].dtype : ScalarType.Float32;
        var target = targets.unsqueeze(1).to(dtype);
        var dev = target.device;
        Tensor lm = zeros([], dtype, dev), ld = zeros([], dtype, dev),
               li = zeros([], dtype, dev), lc = zeros([], dtype, dev);
        for (int s = 0; s < multimasksPerStep.Count; s++)
        {
            var (m, d, i, c) = StepLosses(multimasksPerStep[s], target, iousPerStep[s], numObjects, objectScoresPerStep[s]);
            lm = lm + m; ld = ld + d; li = li + i; lc = lc + c;
        }
        var core = lm * WeightMask + ld * WeightDice + li * WeightIou;
        if (WeightClass != 0) core = core + lc * WeightClass;
        return new LossTerms { Mask = lm, Dice = ld, Iou = li, Class = lc, Core = core }.MoveToOuterDisposeScope();
    }

    // _update_losses: the four terms of one prediction step (inside the caller's scope).
    private (Tensor mask, Tensor dice, Tensor iou, Tensor cls) StepLosses(Tensor srcMasks, Tensor target, Tensor ious, double numObjects, Tensor objectScoreLogits)
    {
        var tgt = target.expand_as(srcMasks);
        var lossMultimask = Losses.SigmoidFocalLoss(srcMasks, tgt, numObjects, FocalAlpha, FocalGamma, lossOnMultimask: true);
        var lossMultidice = Losses.DiceLoss(srcMasks, tgt, numObjects, lossOnMultimask: true);
        Tensor lossClass, targetObj;
        if (!PredObjScores)
        {
            lossClass = zeros([], lossMultimask.dtype, lossMultimask.device);
            targetObj = ones([lossMultimask.size(0), 1], lossMultimask.dtype, lossMultimask.device);
        }
        else
        {
            targetObj = (tgt.select(1, 0) > 0).flatten(1).any(-1).unsqueeze(-1).to(objectScoreLogits.dtype);
            lossClass = Losses.SigmoidFocalLoss(objectScoreLogits, targetObj, numObjects, FocalAlphaObjScore, FocalGammaObjScore);
        }
        var lossMultiiou = Losses.IouLoss(srcMasks, tgt, ious, numObjects, lossOnMultimask: true, useL1Loss: IouUseL1Loss);
        Tensor lossMask, lossDice, lossIou;
        if (lossMultimask.size(1) > 1)
        {
            // supervise only the candidate closest to the target
            var combo = lossMultimask * WeightMask + lossMultidice * WeightDice;
            var best = combo.argmin(-1);
            var batch = arange(combo.size(0), ScalarType.Int64, combo.device);
            lossMask = lossMultimask.index(batch, best).unsqueeze(1);
            lossDice = lossMultidice.index(batch, best).unsqueeze(1);
            lossIou = SuperviseAllIou ? lossMultiiou.mean(new long[] { -1 }).unsqueeze(1) : lossMultiiou.index(batch, best).unsqueeze(1);
        }
        else
        {
            lossMask = lossMultimask;
            lossDice = lossMultidice;
            lossIou = lossMultiiou;
        }
        // mask terms only where the object is present
        return ((lossMask * targetObj).sum(), (lossDice * targetObj).sum(), (lossIou * targetObj).sum(), lossClass);
    }
}
