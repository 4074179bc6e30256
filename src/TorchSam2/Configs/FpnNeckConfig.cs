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

    internal static FpnNeckConfig From(ConfigMap m)
    {
        var channels = m.RequiredInts("backbone_channel_list", 1, ConfigLimits.MaxStageChannels, 1, ConfigLimits.MaxStages);
        return new()
        {
            Target = m.CheckedTarget(DefaultTarget, DefaultTarget),
            PositionEncoding = PositionEmbeddingSineConfig.From(m.RequiredMap("position_encoding")),
            DModel = m.RequiredInt("d_model", 1, ConfigLimits.MaxChannels),
            BackboneChannelList = channels,
            KernelSize = m.Int("kernel_size", 1, 1, ConfigLimits.MaxKernel),
            Stride = m.Int("stride", 1, 1, 16),
            Padding = m.Int("padding", 0, 0, ConfigLimits.MaxKernel),
            FpnInterpModel = m.Choice("fpn_interp_model", "bilinear", "nearest", "bilinear", "bicubic", "area", "nearest-exact"),
            FuseType = m.Choice("fuse_type", "sum", "sum", "avg"),
            FpnTopDownLevels = m.NullableInts("fpn_top_down_levels", 0, channels.Count - 1, 0, channels.Count),
            Raw = m.Raw,
        };
    }
}
