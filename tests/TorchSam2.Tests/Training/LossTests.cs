using TorchSam2.Modeling.Sam;
using TorchSharp;
using TorchSharp.Modules;
using TorchSam2.Training;
using static TorchSharp.torch;

namespace TorchSam2.Tests.Training;

public class LossTests
{
    private static double Sig(double x) => 1 / (1 + Math.Exp(-x));

    [Fact]
    public void FocalLossMatchesHandComputation()
    {
        using var scope = NewDisposeScope();
        var x = tensor(new float[] { 0f, 2f, -1f, 0.5f }, [2, 2]);
        var t = tensor(new float[] { 1f, 0f, 1f, 1f }, [2, 2]);
        double Term(double xi, double ti)
        {
            double p = Sig(xi), ce = -(ti * Math.Log(p) + (1 - ti) * Math.Log(1 - p));
            double pt = p * ti + (1 - p) * (1 - ti);
            double at = 0.25 * ti + 0.75 * (1 - ti);
            return at * ce * (1 - pt) * (1 - pt);
        }
        // mean over elements of each row, summed over rows, / numObjects
        double expect = ((Term(0, 1) + Term(2, 0)) / 2 + (Term(-1, 1) + Term(0.5, 1)) / 2) / 2.0;
        double got = Losses.SigmoidFocalLoss(x, t, 2.0).ToSingle();
        Assert.Equal(expect, got, 5);
    }

    [Fact]
    public void DiceLossMatchesHandComputation()
    {
        using var scope = NewDisposeScope();
        var x = tensor(new float[] { 0f, 2f }, [1, 2]);
        var t = tensor(new float[] { 1f, 0f }, [1, 2]);
        double p0 = 0.5, p1 = Sig(2);
        double expect = 1 - (2 * p0 + 1) / (p0 + p1 + 1 + 1);
        Assert.Equal(expect, Losses.DiceLoss(x, t, 1.0).ToSingle(), 5);
        // multimask form: [N, M] per-mask losses / numObjects
        var xm = tensor(new float[] { 0f, 2f, 3f, -3f }, [1, 2, 1, 2]);
        var tm = tensor(new float[] { 1f, 0f, 1f, 0f }, [1, 2, 1, 2]);
        var per = Losses.DiceLoss(xm, tm, 2.0, lossOnMultimask: true).ToArray<float>();
        double q0 = Sig(3), q1 = Sig(-3);
        Assert.Equal(expect / 2, per[0], 5);
        Assert.Equal((1 - (2 * q0 + 1) / (q0 + q1 + 1 + 1)) / 2, per[1], 5);
    }

    [Fact]
    public void IouLossIsL1AgainstBinarizedIou()
    {
        using var scope = NewDisposeScope();
        // mask 0 → [1, 0] (IoU 1 with target [1, 0]); mask 1 → [1, 1] (IoU 0.5)
        var x = tensor(new float[] { 1f, -1f, 1f, 1f }, [1, 2, 1, 2]);
        var t = tensor(new float[] { 1f, 0f, 1f, 0f }, [1, 2, 1, 2]);
        var pred = tensor(new float[] { 0.8f, 0.8f }, [1, 2]);
        var l1 = Losses.IouLoss(x, t, pred, 1.0, lossOnMultimask: true, useL1Loss: true).ToArray<float>();
        Assert.Equal(0.2, l1[0], 5);
        Assert.Equal(0.3, l1[1], 5);
        var l2 = Losses.IouLoss(x, t, pred, 1.0, lossOnMultimask: true, useL1Loss: false).ToArray<float>();
        Assert.Equal(0.04, l2[0], 5);
        Assert.Equal(0.09, l2[1], 5);
    }

    [Fact]
    public void ObjectScoreLossIsBce()
    {
        using var scope = NewDisposeScope();
        var logit = tensor(new float[] { 0.5f, -2f }, [2, 1]);
        var target = tensor(new float[] { 1f, 0f }, [2, 1]);
        // focal with alpha -1 and gamma 0 is plain BCE
        double expect = (Math.Log(1 + Math.Exp(-0.5)) + Math.Log(1 + Math.Exp(-2))) / 2.0;
        Assert.Equal(expect, Losses.SigmoidFocalLoss(logit, target, 2.0, alpha: -1, gamma: 0).ToSingle(), 5);
    }

    [Fact]
    public void MultimaskSupervisesTheLowestLossMask()
    {
        using var scope = NewDisposeScope();
        // target: left half of a 2×4 grid; mask 1 matches it, masks 0 and 2 do not
        float[] tgt = [1, 1, 0, 0, 1, 1, 0, 0];
        float[] m0 = [-4, -4, 4, 4, -4, -4, 4, 4];
        float[] m1 = [5, 5, -5, -5, 5, 5, -5, -5];
        float[] m2 = [1, 1, 1, 1, 1, 1, 1, 1];
        var masks = tensor(m0.Concat(m1).Concat(m2).ToArray(), new long[] { 1, 3, 2, 4 });
        var ious = tensor(new float[] { 0.1f, 0.9f, 0.5f }, [1, 3]);
        var obj = tensor(new float[] { 1.5f }, [1, 1]);
        var target = tensor(tgt, new long[] { 1, 2, 4 });
        var loss = new MultiStepMultiMasksAndIous();
        using var terms = loss.Forward([masks], [ious], [obj], target, 1.0);

        var t4 = target.unsqueeze(1);
        var best = masks[.., 1..2];
        double focal = Losses.SigmoidFocalLoss(best, t4, 1.0, lossOnMultimask: true).ToSingle();
        double dice = Losses.DiceLoss(best, t4, 1.0, lossOnMultimask: true).ToSingle();
        // supervise_all_iou: mean of |pred − actual| over the three masks (actual IoUs 0, 1, 0.5)
        double iou = (Math.Abs(0.1 - 0) + Math.Abs(0.9 - 1) + Math.Abs(0.5 - 0.5)) / 3;
        double cls = Math.Log(1 + Math.Exp(-1.5));
        Assert.Equal(focal, terms.Mask.ToSingle(), 6);
        Assert.Equal(dice, terms.Dice.ToSingle(), 6);
        Assert.Equal(iou, terms.Iou.ToSingle(), 5);
        Assert.Equal(cls, terms.Class.ToSingle(), 5);
        Assert.Equal(20 * focal + dice + iou + cls, terms.Core.ToSingle(), 4);

        // without supervise_all_iou only the chosen mask's IoU counts
        var single = new MultiStepMultiMasksAndIous { SuperviseAllIou = false };
        using var t2 = single.Forward([masks], [ious], [obj], target, 1.0);
        Assert.Equal(Math.Abs(0.9 - 1), t2.Iou.ToSingle(), 5);
    }

    [Fact]
    public void EmptyTargetTrainsOnlyTheObjectScore()
    {
        using var scope = NewDisposeScope();
        var masks = tensor(new float[] { 1, 2, 3, 4 }, [1, 1, 2, 2]);
        var ious = tensor(new float[] { 0.7f }, [1, 1]);
        var obj = tensor(new float[] { 0.3f }, [1, 1]);
        var target = zeros([1, 2, 2]);
        using var terms = new MultiStepMultiMasksAndIous().Forward([masks, masks], [ious, ious], [obj, obj], target, 1.0);
        Assert.Equal(0.0, terms.Mask.ToSingle());
        Assert.Equal(0.0, terms.Dice.ToSingle());
        Assert.Equal(0.0, terms.Iou.ToSingle());
        // two steps, each BCE(0.3, 0)
        Assert.Equal(2 * Math.Log(1 + Math.Exp(0.3)), terms.Core.ToSingle(), 5);
    }

    [Fact]
    public void LossGradientThroughMaskDecoderMatchesFiniteDifferences() => GradCheck(new MultiStepMultiMasksAndIous());

    [Fact]
    public void DiceGradientThroughMaskDecoderMatchesFiniteDifferences() =>
        GradCheck(new MultiStepMultiMasksAndIous { WeightMask = 0, WeightIou = 0, WeightClass = 0 });

    private static void GradCheck(MultiStepMultiMasksAndIous lossFn)
    {
        using var scope = NewDisposeScope();
        manual_seed(7);
        using var dec = new MaskDecoder(32, new TwoWayTransformer(depth: 1, embedding_dim: 32, num_heads: 2, mlp_dim: 16),
            iou_head_depth: 2, iou_head_hidden_dim: 8, iou_prediction_use_sigmoid: true, pred_obj_scores: true);
        dec.to(ScalarType.Float64);
        var img = randn([1, 32, 4, 4], ScalarType.Float64);
        var pe = randn([1, 32, 4, 4], ScalarType.Float64);
        var sparse = randn([1, 2, 32], ScalarType.Float64);
        var dense = randn([1, 32, 4, 4], ScalarType.Float64) * 0.1;
        var target = (randn([1, 16, 16], ScalarType.Float64) > 0).to(ScalarType.Float64);
        double Loss()
        {
            using var s = NewDisposeScope();
            var (masks, iou, _, obj) = dec.forward(img, pe, sparse, dense, multimask_output: true, repeat_image: false);
            using var t = lossFn.Forward([masks], [iou], [obj], target, 1.0);
            return t.Core.ToDouble();
        }

        {
            var (masks, iou, _, obj) = dec.forward(img, pe, sparse, dense, multimask_output: true, repeat_image: false);
            using var t = lossFn.Forward([masks], [iou], [obj], target, 1.0);
            t.Core.backward();
        }
        var named = dec.named_parameters().ToDictionary(x => x.name, x => x.parameter);
        string[] check = ["output_upscaling.0.weight", "transformer.layers.0.mlp.layers.0.weight", "output_hypernetworks_mlps.1.layers.1.weight", "iou_token.weight"];
        foreach (var name in check)
        {
            var p = named[name];
            var grad = p.grad!.flatten().ToArray<double>();
            foreach (long i in new long[] { 0, 3 })
            {
                double orig;
                using (no_grad())
                {
                    using var flat = p.view(-1);
                    orig = flat[i].ToDouble();
                    flat[i] = tensor(orig + 1e-6, ScalarType.Float64);
                    double up = Loss();
                    flat[i] = tensor(orig - 1e-6, ScalarType.Float64);
                    double down = Loss();
                    flat[i] = tensor(orig, ScalarType.Float64);
                    double fd = (up - down) / 2e-6;
                    Assert.True(Math.Abs(fd - grad[i]) <= 1e-6 + 1e-4 * Math.Abs(fd), $"{name}[{i}]: analytic {grad[i]} vs finite difference {fd}");
                }
            }
        }
    }
}
