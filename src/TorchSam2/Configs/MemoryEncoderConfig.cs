namespace TorchSam2.Configs;

/// <summary>Memory encoder (<c>sam2.modeling.memory_encoder.MemoryEncoder</c>).</summary>
public sealed record MemoryEncoderConfig
{
    public const string DefaultTarget = "sam2.modeling.memory_encoder.MemoryEncoder";

    public string Target { get; init; } = DefaultTarget;
    /// <summary>Channels of the stored memory features (64 in SAM 2); != <see cref="InDim"/> adds an out projection.</summary>
    public required int OutDim { get; init; }
    public required MaskDownSamplerConfig MaskDownsampler { get; init; }
    public required FuserConfig Fuser { get; init; }
    public required PositionEmbeddingSineConfig PositionEncoding { get; init; }
    public int InDim { get; init; } = 256;
    public IReadOnlyDictionary<string, object?> Raw { get; init; } = new Dictionary<string, object?>();

    internal static MemoryEncoderConfig From(ConfigMap m) => new()
    {
        Target = m.CheckedTarget(DefaultTarget, DefaultTarget),
        OutDim = m.RequiredInt("out_dim", 1, ConfigLimits.MaxChannels),
        MaskDownsampler = MaskDownSamplerConfig.From(m.RequiredMap("mask_downsampler")),
        Fuser = FuserConfig.From(m.RequiredMap("fuser")),
        PositionEncoding = PositionEmbeddingSineConfig.From(m.RequiredMap("position_encoding")),
        InDim = m.Int("in_dim", 256, 1, ConfigLimits.MaxChannels),
        Raw = m.Raw,
    };
}
