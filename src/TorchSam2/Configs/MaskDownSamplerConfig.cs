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

    internal static MaskDownSamplerConfig From(ConfigMap m) => new()
    {
        Target = m.Target ?? DefaultTarget,
        EmbedDim = m.Int("embed_dim", 256),
        KernelSize = m.Int("kernel_size", 4),
        Stride = m.Int("stride", 4),
        Padding = m.Int("padding", 0),
        TotalStride = m.Int("total_stride", 16),
        Raw = m.Raw,
    };
}
