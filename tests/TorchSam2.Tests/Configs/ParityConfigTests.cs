using TorchSam2.Configs;
using Xunit;

namespace TorchSam2.Tests.Configs;

/// <summary>The model.yaml files of the parity cases (PyYAML-written: anchors, 1e-06 style floats).</summary>
public class ParityConfigTests
{
    private static Sam2ModelConfig Load(string caseName)
    {
        string path = Path.Combine(TestPaths.ParityDir, caseName, "model.yaml");
        Assert.True(File.Exists(path), $"parity config not found at {path} (set TORCHSAM2_PARITY_DIR)");
        return Sam2ConfigLoader.Load(path).Validate();
    }

    [Fact]
    public void MicroModulesConfig()
    {
        var c = Load("micro_modules");
        Assert.Equal(256, c.ImageSize);
        Assert.Equal([16, 16], c.RopeFeatSizes);
        var t = c.ImageEncoder.Trunk;
        Assert.Equal(16, t.EmbedDim);
        Assert.Equal([1, 2, 3, 2], t.Stages);
        Assert.Equal([4, 5], t.GlobalAttBlocks);
        Assert.Equal([128, 64, 32, 16], c.ImageEncoder.Neck.BackboneChannelList);
        Assert.Equal(64, c.ImageEncoder.Neck.DModel);
        // feat_sizes is an anchor (&id001) in self_attention and an alias (*id001) in cross_attention.
        Assert.Equal([16, 16], c.MemoryAttention.Layer.SelfAttention.FeatSizes);
        Assert.Equal([16, 16], c.MemoryAttention.Layer.CrossAttention.FeatSizes);
        Assert.Equal(16, c.MemoryAttention.Layer.CrossAttention.KvInDim);
        Assert.Equal(2, c.MemoryAttention.NumLayers);
        Assert.Equal(128, c.MemoryAttention.Layer.DimFeedforward);
        Assert.Equal(64, c.MemoryEncoder.MaskDownsampler.EmbedDim);
        Assert.Equal(64, c.MemoryEncoder.InDim);
        Assert.Equal(1e-6, c.MemoryEncoder.Fuser.Layer.LayerScaleInitValue); // written as 1e-6
        Assert.False(c.AddAllFramesToCorrectAsCond);
    }

    [Fact]
    public void MicroVideoConfigHasPredictorKey() => Assert.True(Load("micro_video").AddAllFramesToCorrectAsCond);

    [Fact]
    public void MicroImageConfigParses() => Assert.Equal(256, Load("micro_image").ImageSize);

    [Fact]
    public void TinyFullImageMatchesShippedTiny()
    {
        var parity = Load("tiny_full_image");
        var shipped = Sam2ConfigLoader.LoadBuiltIn("sam2.1_hiera_t");
        Assert.Equal(shipped.ImageSize, parity.ImageSize);
        Assert.Equal(shipped.ImageEncoder.Trunk.Stages, parity.ImageEncoder.Trunk.Stages);
        Assert.Equal(shipped.ImageEncoder.Trunk.GlobalAttBlocks, parity.ImageEncoder.Trunk.GlobalAttBlocks);
        Assert.Equal(shipped.ImageEncoder.Trunk.WindowSpec, parity.ImageEncoder.Trunk.WindowSpec);
        Assert.Equal(shipped.ImageEncoder.Neck.BackboneChannelList, parity.ImageEncoder.Neck.BackboneChannelList);
        Assert.Equal(shipped.MemoryAttention.Layer.CrossAttention.KvInDim, parity.MemoryAttention.Layer.CrossAttention.KvInDim);
        // Every SAM2Base flag agrees (records compare the scalar members; components are compared above).
        var flags = typeof(Sam2ModelConfig).GetProperties()
            .Where(p => p.PropertyType == typeof(bool) || p.PropertyType == typeof(int) || p.PropertyType == typeof(double));
        foreach (var p in flags) Assert.True(Equals(p.GetValue(shipped), p.GetValue(parity)), $"{p.Name}: {p.GetValue(shipped)} vs {p.GetValue(parity)}");
    }
}
