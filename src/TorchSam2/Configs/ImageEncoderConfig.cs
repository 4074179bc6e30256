namespace TorchSam2.Configs;

/// <summary>Image encoder (<c>sam2.modeling.backbones.image_encoder.ImageEncoder</c>): trunk + neck.</summary>
public sealed record ImageEncoderConfig
{
    public const string DefaultTarget = "sam2.modeling.backbones.image_encoder.ImageEncoder";

    public string Target { get; init; } = DefaultTarget;
    public required HieraConfig Trunk { get; init; }
    public required FpnNeckConfig Neck { get; init; }
    /// <summary>How many of the lowest-resolution feature levels to drop (1 in SAM 2).</summary>
    public int Scalp { get; init; }
    public IReadOnlyDictionary<string, object?> Raw { get; init; } = new Dictionary<string, object?>();

    internal static ImageEncoderConfig From(ConfigMap m)
    {
        var neck = FpnNeckConfig.From(m.RequiredMap("neck"));
        return new()
        {
            Target = m.CheckedTarget(DefaultTarget, DefaultTarget),
            Trunk = HieraConfig.From(m.RequiredMap("trunk")),
            Neck = neck,
            Scalp = m.Int("scalp", 0, 0, neck.BackboneChannelList.Count - 1),
            Raw = m.Raw,
        };
    }
}
