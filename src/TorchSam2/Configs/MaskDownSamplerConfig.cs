namespace TorchSam2.Configs;

/// <summary>Mask downsampler of the memory encoder (<c>sam2.modeling.memory_encoder.MaskDownSampler</c>).</summary>
public sealed record MaskDownSamplerConfig
{
    public const string DefaultTarget = "sam2.modeling.memory_encoder.MaskDownSampler";

    public string Target { get; init; } = DefaultTarget;
    public int EmbedDim { get; init; } = 256;
    public int KernelSize { get; init; } = 4;
    public int Stride { get; init; } = 4;
    public int Padding { get; init; }
    /// <summary>Overall downsampling; the number of conv layers is log(total_stride) / log(stride).</summary>
    public int TotalStride { get; init; } = 16;
    public IReadOnlyDictionary<string, object?> Raw { get; init; } = new Dictionary<string, object?>();

    /// <summary>Number of strided conv + LayerNorm + GELU layers, as Python computes it.</summary>
    public int NumLayers => (int)(Math.Log(TotalStride) / Math.Log(Stride));

    internal static MaskDownSamplerConfig From(ConfigMap m)
    {
        var c = new MaskDownSamplerConfig
        {
            Target = m.CheckedTarget(DefaultTarget, DefaultTarget),
            EmbedDim = m.Int("embed_dim", 256, 1, ConfigLimits.MaxChannels),
            KernelSize = m.Int("kernel_size", 4, 1, ConfigLimits.MaxKernel),
            Stride = m.Int("stride", 4, 2, 16),
            Padding = m.Int("padding", 0, 0, ConfigLimits.MaxKernel),
            // Each step multiplies the channels by stride^2: total_stride 64 already means 4,096 of them.
            TotalStride = m.Int("total_stride", 16, 2, 64),
            Raw = m.Raw,
        };
        int power = 1;
        while (power < c.TotalStride) power *= c.Stride;
        if (power != c.TotalStride) throw m.Fail("total_stride", $"{c.TotalStride} is not a power of stride {c.Stride}");
        return c;
    }
}
