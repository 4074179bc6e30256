namespace TorchSam2.Configs;

/// <summary>FPN neck (<c>sam2.modeling.backbones.image_encoder.FpnNeck</c>).</summary>
public sealed record FpnNeckConfig
{
    public const string DefaultTarget = "sam2.modeling.backbones.image_encoder.FpnNeck";

    public string Target { get; init; } = DefaultTarget;
    public required PositionEmbeddingSineConfig PositionEncoding { get; init; }
    public required int DModel { get; init; }
    /// <summary>Trunk channels from the lowest resolution (deepest stage) to the highest.</summary>
    public required IReadOnlyList<int> BackboneChannelList { get; init; }
    public int KernelSize { get; init; } = 1;
    public int Stride { get; init; } = 1;
    public int Padding { get; init; }
    /// <summary>Interpolation mode of the top-down path ("nearest" in all SAM 2 configs).</summary>
    public string FpnInterpModel { get; init; } = "bilinear";
    public string FuseType { get; init; } = "sum";
    /// <summary>Output levels that receive top-down features; null means all.</summary>
    public IReadOnlyList<int>? FpnTopDownLevels { get; init; }
    public IReadOnlyDictionary<string, object?> Raw { get; init; } = new Dictionary<string, object?>();

    internal static FpnNeckConfig From(ConfigMap m) => new()
    {
        Target = m.Target ?? DefaultTarget,
        PositionEncoding = PositionEmbeddingSineConfig.From(m.RequiredMap("position_encoding")),
        DModel = m.RequiredInt("d_model"),
        BackboneChannelList = m.RequiredInts("backbone_channel_list"),
        KernelSize = m.Int("kernel_size", 1),
        Stride = m.Int("stride", 1),
        Padding = m.Int("padding", 0),
        FpnInterpModel = m.String("fpn_interp_model", "bilinear"),
        FuseType = m.String("fuse_type", "sum"),
        FpnTopDownLevels = m.NullableInts("fpn_top_down_levels"),
        Raw = m.Raw,
    };
}
