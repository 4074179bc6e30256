using TorchSam2.Configs;
using Xunit;

namespace TorchSam2.Tests.Configs;

public class Sam2ConfigLoaderTests
{
    [Theory]
    [InlineData("sam2.1_hiera_t", "sam2.1/sam2.1_hiera_t.yaml")]
    [InlineData("sam2.1_hiera_tiny", "sam2.1/sam2.1_hiera_t.yaml")]
    [InlineData("tiny", "sam2.1/sam2.1_hiera_t.yaml")]
    [InlineData("sam2.1_hiera_s", "sam2.1/sam2.1_hiera_s.yaml")]
    [InlineData("small", "sam2.1/sam2.1_hiera_s.yaml")]
    [InlineData("sam2.1_hiera_b+", "sam2.1/sam2.1_hiera_b+.yaml")]
    [InlineData("base_plus", "sam2.1/sam2.1_hiera_b+.yaml")]
    [InlineData("sam2.1_hiera_base_plus", "sam2.1/sam2.1_hiera_b+.yaml")]
    [InlineData("sam2.1_hiera_l", "sam2.1/sam2.1_hiera_l.yaml")]
    [InlineData("large", "sam2.1/sam2.1_hiera_l.yaml")]
    [InlineData("sam2_hiera_t", "sam2/sam2_hiera_t.yaml")]
    [InlineData("sam2_hiera_large", "sam2/sam2_hiera_l.yaml")]
    [InlineData("sam2_hiera_b+.yaml", "sam2/sam2_hiera_b+.yaml")]
    [InlineData("configs/sam2.1/sam2.1_hiera_s.yaml", "sam2.1/sam2.1_hiera_s.yaml")]
    [InlineData("facebook/sam2.1-hiera-base-plus", "sam2.1/sam2.1_hiera_b+.yaml")]
    public void ResolvesBuiltInNames(string name, string file) => Assert.Equal(file, Sam2ConfigLoader.ResolveBuiltIn(name));

    [Fact]
    public void UnknownNameListsKnownOnes()
    {
        var e = Assert.Throws<ArgumentException>(() => Sam2ConfigLoader.ResolveBuiltIn("huge"));
        Assert.Contains("sam2.1_hiera_t", e.Message);
    }

    [Theory]
    [InlineData("sam2.1_hiera_t")]
    [InlineData("sam2.1_hiera_s")]
    [InlineData("sam2.1_hiera_b+")]
    [InlineData("sam2.1_hiera_l")]
    [InlineData("sam2_hiera_t")]
    [InlineData("sam2_hiera_s")]
    [InlineData("sam2_hiera_b+")]
    [InlineData("sam2_hiera_l")]
    public void EveryShippedConfigParsesAndIsConsistent(string name)
    {
        var c = Sam2ConfigLoader.LoadBuiltIn(name).Validate();
        bool v21 = name.StartsWith("sam2.1", StringComparison.Ordinal);
        Assert.Equal(Sam2ModelConfig.BaseTarget, c.Target);
        Assert.Equal(1024, c.ImageSize);
        Assert.Equal(7, c.NumMaskmem);
        Assert.Equal(1, c.ImageEncoder.Scalp);
        Assert.Equal(256, c.ImageEncoder.Neck.DModel);
        Assert.Equal([2, 3], c.ImageEncoder.Neck.FpnTopDownLevels);
        Assert.Equal("nearest", c.ImageEncoder.Neck.FpnInterpModel);
        Assert.Null(c.ImageEncoder.Neck.PositionEncoding.Scale);
        Assert.Equal(256, c.ImageEncoder.Neck.PositionEncoding.NumPosFeats);
        Assert.Equal(4, c.MemoryAttention.NumLayers);
        Assert.Equal(2048, c.MemoryAttention.Layer.DimFeedforward);
        Assert.Equal("relu", c.MemoryAttention.Layer.Activation);
        Assert.False(c.MemoryAttention.Layer.SelfAttention.RopeKRepeat);
        Assert.True(c.MemoryAttention.Layer.CrossAttention.RopeKRepeat);
        Assert.Equal(64, c.MemoryAttention.Layer.CrossAttention.KvInDim);
        Assert.Null(c.MemoryAttention.Layer.SelfAttention.KvInDim);
        Assert.Equal([64, 64], c.MemoryAttention.Layer.SelfAttention.FeatSizes);
        Assert.Equal(64, c.MemoryEncoder.OutDim);
        Assert.Equal(64, c.MemoryEncoder.PositionEncoding.NumPosFeats);
        Assert.Equal(3, c.MemoryEncoder.MaskDownsampler.KernelSize);
        Assert.Equal(4, c.MemoryEncoder.MaskDownsampler.NumLayers);
        Assert.Equal(1e-6, c.MemoryEncoder.Fuser.Layer.LayerScaleInitValue);
        Assert.Equal(20.0, c.SigmoidScaleForMemEnc);
        Assert.Equal(-10.0, c.SigmoidBiasForMemEnc);
        Assert.Equal(0, c.MultimaskMinPtNum);
        Assert.True(c.UseMlpForObjPtrProj);
        // The SAM 2 -> 2.1 differences.
        Assert.Equal(v21, c.NoObjEmbedSpatial);
        Assert.Equal(v21, c.AddTposEncToObjPtrs);
        Assert.Equal(v21, c.ProjTposEncInObjPtrs);
        Assert.Equal(v21, c.UseSignedTposEncToObjPtrs);
        // No postprocessing overrides in the files themselves.
        Assert.Null(c.SamMaskDecoderExtraArgs);
        Assert.Equal(0, c.FillHoleArea);
    }

    [Fact]
    public void SizeSpecificTrunks()
    {
        var t = Sam2ConfigLoader.LoadBuiltIn("tiny").ImageEncoder.Trunk;
        Assert.Equal((96, 1), (t.EmbedDim, t.NumHeads));
        Assert.Equal([1, 2, 7, 2], t.Stages);
        Assert.Equal([5, 7, 9], t.GlobalAttBlocks);
        Assert.Equal([96, 192, 384, 768], t.StageDims);
        Assert.Equal([1, 2, 4, 8], t.StageHeads);

        var b = Sam2ConfigLoader.LoadBuiltIn("base_plus").ImageEncoder.Trunk;
        Assert.Equal((112, 2), (b.EmbedDim, b.NumHeads));
        Assert.Equal([2, 3, 16, 3], b.Stages);
        Assert.Equal([14, 14], b.WindowPosEmbedBkgSpatialSize);

        var l = Sam2ConfigLoader.LoadBuiltIn("large").ImageEncoder.Trunk;
        Assert.Equal([8, 4, 16, 8], l.WindowSpec);
        Assert.Equal([23, 33, 43], l.GlobalAttBlocks);
        Assert.Equal(48, l.TotalBlocks);
    }

    [Fact]
    public void ImagePredictorOverridesMatchBuildSam2()
    {
        var c = Sam2ConfigLoader.LoadBuiltIn("tiny").WithImagePredictorOverrides();
        Assert.NotNull(c.SamMaskDecoderExtraArgs);
        Assert.True(c.SamMaskDecoderExtraArgs!.DynamicMultimaskViaStability);
        Assert.Equal(0.05, c.SamMaskDecoderExtraArgs.DynamicMultimaskStabilityDelta);
        Assert.Equal(0.98, c.SamMaskDecoderExtraArgs.DynamicMultimaskStabilityThresh);
        Assert.False(c.BinarizeMaskFromPtsForMemEnc);
        Assert.Equal(0, c.FillHoleArea);
    }

    [Fact]
    public void VideoPredictorOverridesMatchBuildSam2VideoPredictor()
    {
        var c = Sam2ConfigLoader.LoadBuiltIn("tiny").WithVideoPredictorOverrides();
        Assert.Equal(Sam2ModelConfig.VideoPredictorTarget, c.Target);
        Assert.True(c.SamMaskDecoderExtraArgs!.DynamicMultimaskViaStability);
        Assert.True(c.BinarizeMaskFromPtsForMemEnc);
        Assert.Equal(8, c.FillHoleArea);
    }

    [Fact]
    public void FeatSizesFollowImageSize()
    {
        var c = Sam2ConfigLoader.LoadBuiltIn("tiny");
        Assert.Equal([64, 64], c.RopeFeatSizes);
        var small = c.WithImageSize(512);
        Assert.Equal(512, small.ImageSize);
        Assert.Equal(32, small.FeatureMapSize);
        Assert.Equal([32, 32], small.MemoryAttention.Layer.SelfAttention.FeatSizes);
        Assert.Equal([32, 32], small.MemoryAttention.Layer.CrossAttention.FeatSizes);
        Assert.Equal([16, 16], Sam2ModelConfig.DeriveFeatSizes(256));
        Assert.Throws<ArgumentException>(() => Sam2ModelConfig.DeriveFeatSizes(1000));
    }

    internal const string Minimal = """
        model:
          _target_: sam2.modeling.sam2_base.SAM2Base
          image_encoder:
            trunk: {embed_dim: 8, stages: [1, 1, 1, 1], global_att_blocks: [3], window_spec: [2, 2, 2, 2], extra_trunk_key: 5}
            neck:
              d_model: 32
              backbone_channel_list: [64, 32, 16, 8]
              position_encoding: {num_pos_feats: 32}
          memory_attention:
            d_model: 32
            pos_enc_at_input: true
            num_layers: 1
            layer:
              activation: relu
              d_model: 32
              dim_feedforward: 64
              dropout: 0.0
              pos_enc_at_attn: false
              pos_enc_at_cross_attn_keys: true
              pos_enc_at_cross_attn_queries: false
              self_attention: {embedding_dim: 32, num_heads: 1}
              cross_attention: {embedding_dim: 32, num_heads: 1, kv_in_dim: 8}
          memory_encoder:
            out_dim: 8
            in_dim: 32
            position_encoding: {num_pos_feats: 8}
            mask_downsampler: {embed_dim: 32}
            fuser: {num_layers: 1, layer: {dim: 32}}
          some_future_flag: [1, 2]
          sam_mask_decoder_extra_args:
            dynamic_multimask_via_stability: true
        trainer: {max_epochs: 3}
        """;

    [Fact]
    public void PythonDefaultsFillMissingKeysAndUnknownKeysStayInRaw()
    {
        var c = Sam2ConfigLoader.Parse(Minimal);
        Assert.Equal(512, c.ImageSize); // SAM2Base default
        Assert.Equal(1.0, c.SigmoidScaleForMemEnc);
        Assert.Equal(-1, c.MaxCondFramesInAttn);
        Assert.Equal(16, c.MaxObjPtrsInEncoder);
        Assert.True(c.AddTposEncToObjPtrs);
        Assert.Equal(1, c.MultimaskMinPtNum);
        Assert.Equal([2, 2], c.ImageEncoder.Trunk.QStride);
        Assert.Equal([14, 14], c.ImageEncoder.Trunk.WindowPosEmbedBkgSpatialSize);
        Assert.Equal(0, c.ImageEncoder.Scalp);
        Assert.Equal("bilinear", c.ImageEncoder.Neck.FpnInterpModel);
        Assert.Null(c.ImageEncoder.Neck.FpnTopDownLevels);
        Assert.Equal(10000.0, c.MemoryAttention.Layer.SelfAttention.RopeTheta);
        Assert.Equal(4, c.MemoryEncoder.MaskDownsampler.KernelSize);
        Assert.Equal(7, c.MemoryEncoder.Fuser.Layer.KernelSize);
        Assert.True(c.SamMaskDecoderExtraArgs!.DynamicMultimaskViaStability);
        Assert.Equal(0.05, c.SamMaskDecoderExtraArgs.DynamicMultimaskStabilityDelta);
        Assert.Equal(new List<object?> { 1L, 2L }, c.Raw["some_future_flag"]);
        Assert.Equal(5L, c.ImageEncoder.Trunk.Raw["extra_trunk_key"]);
        c.WithImageSize(256).Validate();
    }

    [Fact]
    public void MissingRequiredKeyNamesPath()
    {
        var e = Assert.Throws<Sam2ConfigException>(() => Sam2ConfigLoader.Parse(Minimal.Replace("      dim_feedforward: 64\n", "")));
        Assert.Contains("model.memory_attention.layer.dim_feedforward", e.Message);
    }

    [Fact]
    public void WrongTypeNamesPathAndValue()
    {
        var e = Assert.Throws<Sam2ConfigException>(() => Sam2ConfigLoader.Parse(Minimal.Replace("embed_dim: 8", "embed_dim: big")));
        Assert.Contains("model.image_encoder.trunk.embed_dim", e.Message);
        Assert.Contains("'big'", e.Message);
    }

    [Fact]
    public void InconsistentConfigFailsValidation()
    {
        var c = Sam2ConfigLoader.Parse(Minimal.Replace("[64, 32, 16, 8]", "[64, 32, 16, 9]"));
        var e = Assert.Throws<Sam2ConfigException>(() => c.Validate());
        Assert.Contains("backbone_channel_list", e.Message);
    }

    [Fact]
    public void MissingModelSection() =>
        Assert.Contains("model", Assert.Throws<Sam2ConfigException>(() => Sam2ConfigLoader.Parse("trainer: {}")).Message);

    [Fact]
    public void MissingFile() => Assert.Throws<FileNotFoundException>(() => Sam2ConfigLoader.Load("/nope/sam2.yaml"));

    [Fact]
    public void LoadsFromRepoConfigsFolderByPath()
    {
        var c = Sam2ConfigLoader.Load(Path.Combine(TestPaths.RepoRoot, "configs", "sam2.1", "sam2.1_hiera_l.yaml"));
        Assert.Equal(144, c.ImageEncoder.Trunk.EmbedDim);
    }
}
