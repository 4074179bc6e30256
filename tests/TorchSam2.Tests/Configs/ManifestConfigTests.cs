using System.Text.Json;
using System.Text.RegularExpressions;
using TorchSam2.Configs;
using Xunit;

namespace TorchSam2.Tests.Configs;

/// <summary>
/// Checks each shipped SAM 2.1 config against the tensor manifest of the official checkpoint: every
/// size-bearing hyperparameter is re-derived from the parameter shapes.
/// </summary>
public class ManifestConfigTests
{
    private static Dictionary<string, long[]> Shapes(string size)
    {
        string path = Path.Combine(TestPaths.ManifestDir, $"sam2.1_hiera_{size}.manifest.json");
        Assert.True(File.Exists(path), $"manifest not found: {path}");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        return doc.RootElement.GetProperty("tensors").EnumerateObject().ToDictionary(
            p => p.Name, p => p.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray());
    }

    private static int Count(Dictionary<string, long[]> s, string pattern) =>
        s.Keys.Select(k => Regex.Match(k, pattern)).Where(m => m.Success).Select(m => m.Groups[1].Value).Distinct().Count();

    [Theory]
    [InlineData("tiny", "sam2.1_hiera_t")]
    [InlineData("small", "sam2.1_hiera_s")]
    [InlineData("base_plus", "sam2.1_hiera_b+")]
    [InlineData("large", "sam2.1_hiera_l")]
    public void ConfigMatchesCheckpointShapes(string size, string config)
    {
        var s = Shapes(size);
        var c = Sam2ConfigLoader.LoadBuiltIn(config);
        var trunk = c.ImageEncoder.Trunk;

        // Trunk: patch embed width, blocks per stage (grouped by output width), position embeddings.
        Assert.Equal(trunk.EmbedDim, s["image_encoder.trunk.patch_embed.proj.weight"][0]);
        var blockDims = Enumerable.Range(0, Count(s, @"^image_encoder\.trunk\.blocks\.(\d+)\."))
            .Select(i => s[$"image_encoder.trunk.blocks.{i}.mlp.layers.1.weight"][0]).ToList();
        Assert.Equal(trunk.Stages, blockDims.GroupBy(d => d).Select(g => g.Count()));
        Assert.Equal(trunk.StageDims.Select(d => (long)d), blockDims.Distinct());
        Assert.Equal(trunk.WindowPosEmbedBkgSpatialSize.Select(x => (long)x), s["image_encoder.trunk.pos_embed"][2..]);
        Assert.Equal(new long[] { trunk.WindowSpec[0], trunk.WindowSpec[0] }, s["image_encoder.trunk.pos_embed_window"][2..]);

        // Neck.
        var neck = c.ImageEncoder.Neck;
        Assert.Equal(neck.BackboneChannelList.Select(x => (long)x),
            Enumerable.Range(0, 4).Select(i => s[$"image_encoder.neck.convs.{i}.conv.weight"][1]));
        Assert.Equal(neck.DModel, s["image_encoder.neck.convs.0.conv.weight"][0]);

        // Memory attention.
        var ma = c.MemoryAttention;
        Assert.Equal(ma.NumLayers, Count(s, @"^memory_attention\.layers\.(\d+)\."));
        Assert.Equal(ma.Layer.DimFeedforward, s["memory_attention.layers.0.linear1.weight"][0]);
        Assert.Equal(ma.Layer.SelfAttention.EmbeddingDim, s["memory_attention.layers.0.self_attn.q_proj.weight"][0]);
        Assert.Equal(ma.Layer.CrossAttention.EffectiveKvInDim, s["memory_attention.layers.0.cross_attn_image.k_proj.weight"][1]);

        // Memory encoder.
        var me = c.MemoryEncoder;
        Assert.Equal(me.OutDim, s["memory_encoder.out_proj.weight"][0]);
        Assert.Equal(me.InDim, s["memory_encoder.pix_feat_proj.weight"][1]);
        Assert.Equal(me.Fuser.NumLayers, Count(s, @"^memory_encoder\.fuser\.layers\.(\d+)\."));
        Assert.Equal(me.Fuser.Layer.Dim, s["memory_encoder.fuser.layers.0.dwconv.weight"][0]);
        Assert.Equal(me.Fuser.Layer.KernelSize, s["memory_encoder.fuser.layers.0.dwconv.weight"][2]);
        Assert.Equal(me.MaskDownsampler.KernelSize, s["memory_encoder.mask_downsampler.encoder.0.weight"][2]);
        int mdConvs = s.Keys.Count(k => Regex.IsMatch(k, @"^memory_encoder\.mask_downsampler\.encoder\.\d+\.weight$") && s[k].Length == 4);
        Assert.Equal(me.MaskDownsampler.NumLayers + 1, mdConvs); // strided convs + final 1x1 projection
        // Final 1x1 projection (after NumLayers x [conv, LayerNorm2d, GELU]) outputs embed_dim channels.
        Assert.Equal(me.MaskDownsampler.EmbedDim, s[$"memory_encoder.mask_downsampler.encoder.{3 * me.MaskDownsampler.NumLayers}.weight"][0]);

        // SAM2Base flags that add or remove parameters.
        Assert.Equal(c.NumMaskmem, s["maskmem_tpos_enc"][0]);
        Assert.Equal(me.OutDim, s["maskmem_tpos_enc"][3]);
        Assert.Equal(c.NoObjEmbedSpatial, s.ContainsKey("no_obj_embed_spatial"));
        Assert.Equal(c.ProjTposEncInObjPtrs, s.ContainsKey("obj_ptr_tpos_proj.weight"));
        Assert.Equal(c.UseMlpForObjPtrProj, s.ContainsKey("obj_ptr_proj.layers.2.weight"));
        Assert.Equal(c.UseHighResFeaturesInSam, s.ContainsKey("sam_mask_decoder.conv_s0.weight"));
        Assert.Equal(c.PredObjScores && c.PredObjScoresMlp, s.ContainsKey("sam_mask_decoder.pred_obj_score_head.layers.2.weight"));
        Assert.Equal(c.PredObjScores && c.FixedNoObjPtr, s.ContainsKey("no_obj_ptr"));
    }
}
