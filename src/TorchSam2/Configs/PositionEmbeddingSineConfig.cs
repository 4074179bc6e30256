namespace TorchSam2.Configs;

/// <summary>Sine position encoding (<c>sam2.modeling.position_encoding.PositionEmbeddingSine</c>).</summary>
public sealed record PositionEmbeddingSineConfig
{
    public const string DefaultTarget = "sam2.modeling.position_encoding.PositionEmbeddingSine";

    public string Target { get; init; } = DefaultTarget;
    public required int NumPosFeats { get; init; }
    public int Temperature { get; init; } = 10000;
    public bool Normalize { get; init; } = true;
    /// <summary>Null means 2π (applied when <see cref="Normalize"/> is set).</summary>
    public double? Scale { get; init; }
    // The next three only pre-fill Python's cache for torch.compile; they do not change outputs.
    public bool WarmupCache { get; init; } = true;
    public int ImageSize { get; init; } = 1024;
    public IReadOnlyList<int> Strides { get; init; } = [4, 8, 16, 32];
    public IReadOnlyDictionary<string, object?> Raw { get; init; } = new Dictionary<string, object?>();

    internal static PositionEmbeddingSineConfig From(ConfigMap m)
    {
        var c = new PositionEmbeddingSineConfig
        {
            Target = m.CheckedTarget(DefaultTarget, DefaultTarget),
            NumPosFeats = m.RequiredInt("num_pos_feats", 2, ConfigLimits.MaxChannels),
            Temperature = m.Int("temperature", 10000, 1),
            Normalize = m.Bool("normalize", true),
            Scale = m.NullableDouble("scale", null, double.Epsilon),
            WarmupCache = m.Bool("warmup_cache", true),
            ImageSize = m.Int("image_size", 1024, 1, ConfigLimits.MaxImageSize),
            Strides = m.Ints("strides", [4, 8, 16, 32], 1, 1024),
            Raw = m.Raw,
        };
        if (c.NumPosFeats % 2 != 0) throw m.Fail("num_pos_feats", $"must be even (half sines, half cosines), got {c.NumPosFeats}");
        if (c.Scale is not null && !c.Normalize) throw m.Fail("scale", "is only used with normalize: true");
        return c;
    }
}
