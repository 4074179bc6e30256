using TorchSam2.Modeling.Sam;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Xunit.Abstractions;

namespace TorchSam2.Tests.Modeling;

public class MaskDecoderTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(true, "multi")]
    [InlineData(false, "single")]
    public void MatchesMicroModulesParity(bool multimask_output, string tag)
    {
        var dir = SamHeadsParity.MicroModulesDir();
        if (dir is null) return;
        using var _ = inference_mode();
        using var md = SamHeadsParity.MicroMaskDecoder();
        SamHeadsParity.LoadWeights(md, dir, "sam_mask_decoder.");
        md.eval();
        var inputs = SamHeadsParity.Load(Path.Combine(dir, "inputs.safetensors"));
        var expected = SamHeadsParity.Load(Path.Combine(dir, "expected.safetensors"));
        try
        {
            // The case feeds the prompt-encoder's reference outputs and one image per prompt.
            var (masks, iou, tokens, obj) = md.forward(
                inputs["md.image_embeddings"], expected["pe.dense_pe"], expected["pe.sparse"], expected["pe.dense"],
                multimask_output: multimask_output, repeat_image: false,
                high_res_features: [inputs["md.high_res.0"], inputs["md.high_res.1"]]);
            using (masks) using (iou) using (tokens) using (obj)
            {
                SamHeadsParity.AssertClose($"md.{tag}.masks", masks, expected[$"md.{tag}.masks"], output);
                SamHeadsParity.AssertClose($"md.{tag}.iou", iou, expected[$"md.{tag}.iou"], output);
                SamHeadsParity.AssertClose($"md.{tag}.tokens", tokens, expected[$"md.{tag}.tokens"], output);
                SamHeadsParity.AssertClose($"md.{tag}.obj_score", obj, expected[$"md.{tag}.obj_score"], output);
                using var agree = ((masks > 0).eq(expected[$"md.{tag}.masks"] > 0)).@float().mean();
                output.WriteLine($"md.{tag}.masks sign agreement {agree.ToSingle():F6}");
                Assert.True(agree.ToSingle() >= 0.999);
            }
        }
        finally
        {
            SamHeadsParity.DisposeAll(inputs);
            SamHeadsParity.DisposeAll(expected);
        }
    }

    [Fact]
    public void TinyKeysAndShapesMatchManifest()
    {
        using var md = SamHeadsParity.BuildDecoder(256);
        SamHeadsParity.AssertMatchesManifest(md, "sam2.1_hiera_tiny.manifest.json", "sam_mask_decoder.");
    }

    [Fact]
    public void RepeatImageEqualsExplicitRepeat()
    {
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        manual_seed(0);
        using var md = SamHeadsParity.MicroMaskDecoder();
        md.eval();
        var img = randn([1, 64, 16, 16]);
        var pe = randn([1, 64, 16, 16]);
        var sparse = randn([3, 2, 64]);
        var dense = randn([3, 64, 16, 16]);
        Tensor[] hr = [randn([3, 8, 64, 64]), randn([3, 16, 32, 32])];
        var a = md.forward(img, pe, sparse, dense, multimask_output: true, repeat_image: true, high_res_features: hr);
        var b = md.forward(img.expand(3, -1, -1, -1), pe, sparse, dense, multimask_output: true, repeat_image: false, high_res_features: hr);
        Assert.Equal(new long[] { 3, 3, 64, 64 }, a.masks.shape);
        Assert.Equal(new long[] { 3, 3 }, a.iou_pred.shape);
        Assert.Equal(new long[] { 3, 3, 64 }, a.sam_tokens_out.shape);
        Assert.Equal(new long[] { 3, 1 }, a.object_score_logits.shape);
        Assert.True(allclose(a.masks, b.masks, 1e-5, 1e-5));
        Assert.True(allclose(a.iou_pred, b.iou_pred, 1e-5, 1e-5));
    }

    [Fact]
    public void DynamicMultimaskFallsBackOnUnstableMask()
    {
        using var scope = NewDisposeScope();
        using var md = SamHeadsParity.MicroMaskDecoder();
        // Batch 0: token-0 mask is clear-cut (stable). Batch 1: token-0 logits all near 0 (unstable).
        var logits = zeros([2, 4, 2, 2]);
        logits[0, 0] = full([2, 2], 5.0);
        logits[1, 0] = full([2, 2], 0.01);
        logits[1, 2] = full([2, 2], 7.0);
        var iou = tensor(new float[] { 0.9f, 0.1f, 0.2f, 0.3f, 0.5f, 0.1f, 0.8f, 0.2f }, [2, 4]);
        var (m, s) = md._dynamic_multimask_via_stability(logits, iou);
        Assert.Equal(new long[] { 2, 1, 2, 2 }, m.shape);
        Assert.Equal(new[] { 0.9f, 0.8f }, s.flatten().ToArray<float>());
        Assert.Equal(new[] { 5f, 5f, 5f, 5f, 7f, 7f, 7f, 7f }, m.flatten().ToArray<float>());
    }

    [Fact]
    public void GradientsReachPromptAndDecoderWeights()
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        using var pe = SamHeadsParity.MicroPromptEncoder();
        using var md = SamHeadsParity.MicroMaskDecoder();
        md.train();
        var coords = tensor(new float[] { 30, 40, 70, 80 }, [1, 2, 2]);
        var labels = tensor(new int[] { 1, 0 }, [1, 2]);
        var (sparse, dense) = pe.forward((coords, labels), null, null);
        var img = randn([1, 64, 16, 16]);
        Tensor[] hr = [randn([1, 8, 64, 64]), randn([1, 16, 32, 32])];
        var (masks, iou, tokens, obj) = md.forward(img, pe.get_dense_pe(), sparse, dense, multimask_output: false, repeat_image: false, high_res_features: hr);
        (masks.mean() + iou.sum() + tokens.sum() + obj.sum()).backward();
        foreach (var (name, p) in md.named_parameters())
        {
            // conv_s0/conv_s1 are applied by SAM2Base to the backbone features, not here.
            if (name.StartsWith("conv_s")) continue;
            Assert.True(p.grad is not null, $"no grad for sam_mask_decoder.{name}");
        }
        Assert.NotNull(pe.point_embeddings[0].weight.grad);
        Assert.NotNull(pe.point_embeddings[1].weight.grad);
        Assert.NotNull(pe.not_a_point_embed.weight.grad);
        Assert.NotNull(pe.no_mask_embed.weight.grad);
    }
}

[Collection(NativeMemory.Collection)]
public class SamHeadsLeakTests
{
    [Fact]
    public void ForwardLeavesNoLiveTensors()
    {
        using var _ = inference_mode();
        using var pe = SamHeadsParity.MicroPromptEncoder();
        using var md = SamHeadsParity.MicroMaskDecoder();
        md.eval();
        var img = randn([2, 64, 16, 16]);
        var coords = randn([2, 3, 2]) * 100 + 128;
        var labels = tensor(new int[] { 1, 0, 1, 1, 1, 0 }, [2, 3]);
        var boxes = tensor(new float[] { 10, 20, 100, 200, 5, 5, 50, 60 }, [2, 4]);
        var mask = randn([2, 1, 64, 64]);
        Tensor[] hr = [randn([2, 8, 64, 64]), randn([2, 16, 32, 32])];
        void Run()
        {
            var (sparse, dense) = pe.forward((coords, labels), boxes, mask);
            var densePe = pe.get_dense_pe();
            var (a, b, c, d) = md.forward(img, densePe, sparse, dense, multimask_output: false, repeat_image: false, high_res_features: hr);
            foreach (var t in new[] { sparse, dense, densePe, a, b, c, d }) t.Dispose();
        }
        Run();
        long before = NativeMemory.Live();
        for (int i = 0; i < 3; i++) Run();
        Assert.Equal(before, NativeMemory.Live());
        foreach (var t in new[] { img, coords, labels, boxes, mask, hr[0], hr[1] }) t.Dispose();
    }
}
