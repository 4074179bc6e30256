using TorchSam2.Modeling;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace TorchSam2.Tests.Modeling;

public class MemoryEncoderTests(ITestOutputHelper output)
{
    /// <summary>The memory encoder of a SAM 2 config (mask downsampler k3 s2 p1, two CXBlocks k7 p3).</summary>
    internal static MemoryEncoder Build(long out_dim, long in_dim, long pos_feats) =>
        new(out_dim,
            mask_downsampler: new MaskDownSampler(embed_dim: in_dim, kernel_size: 3, stride: 2, padding: 1),
            fuser: new Fuser(() => new CXBlock(in_dim, kernel_size: 7, padding: 3, layer_scale_init_value: 1e-6, use_dwconv: true), num_layers: 2),
            position_encoding: new PositionEmbeddingSine(pos_feats, temperature: 10000, normalize: true),
            in_dim: in_dim);

    [Fact]
    public void MatchesReferenceOutput()
    {
        if (!MemoryParityData.Available(MemoryParityData.CaseDir)) return;
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        using var model = Build(16, 64, 16);
        var weights = MemoryParityData.Load("weights.safetensors", "memory_encoder.");
        model.load_state_dict(weights);
        model.eval();
        var inputs = MemoryParityData.Load("inputs.safetensors", "me.");
        var expected = MemoryParityData.Load("expected.safetensors", "me.");

        var (features, pos) = model.forward(inputs["pix_feat"], inputs["masks"], skip_mask_sigmoid: false);
        Assert.Single(pos);
        MemoryParityData.AssertClose(features, expected["vision_features"], "me.vision_features", output);
        MemoryParityData.AssertClose(pos[0], expected["vision_pos_enc"], "me.vision_pos_enc", output);
        features.Dispose();
        pos[0].Dispose();
        foreach (var d in new[] { weights, inputs, expected }) MemoryParityData.DisposeAll(d);
    }

    [Fact]
    public void TinyConfigMatchesManifest()
    {
        if (!MemoryParityData.Available(TestPaths.ManifestDir)) return;
        using var model = Build(64, 256, 64);
        MemoryParityData.AssertMatchesManifest(model, MemoryParityData.Manifest("tiny", "memory_encoder."));
    }

    [Fact]
    public void MaskDownSamplerLayersFollowStride()
    {
        using var ds = new MaskDownSampler(embed_dim: 8, kernel_size: 4, stride: 4, padding: 0, total_stride: 16);
        // Two conv/norm/GELU steps (1 → 16 → 256 channels), then the 1×1 projection.
        Assert.Equal(7, ds.encoder.Count);
        using var scope = NewDisposeScope();
        var y = ds.forward(zeros([1, 1, 32, 32]));
        Assert.Equal(new long[] { 1, 8, 2, 2 }, y.shape);
        Assert.Throws<ArgumentException>(() => new MaskDownSampler(total_stride: 12, stride: 4));
    }

    [Fact]
    public void CXBlockWithoutLayerScaleHasNoGamma()
    {
        using var block = new CXBlock(8, layer_scale_init_value: 0);
        Assert.Null(block.gamma);
        Assert.DoesNotContain("gamma", block.state_dict().Keys);
        using var fuser = new Fuser(() => new CXBlock(8), 1, dim: 8, input_projection: true);
        Assert.Contains("proj.weight", fuser.state_dict().Keys);
    }
}
