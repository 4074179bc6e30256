namespace TorchSam2.Configs;

/// <summary>Memory fuser (<c>sam2.modeling.memory_encoder.Fuser</c>): repeated CX blocks.</summary>
public sealed record FuserConfig
{
    public const string DefaultTarget = "sam2.modeling.memory_encoder.Fuser";

    public string Target { get; init; } = DefaultTarget;
    public required CXBlockConfig Layer { get; init; }
    public required int NumLayers { get; init; }
    public int? Dim { get; init; }
    /// <summary>Whether a 1x1 input projection precedes the blocks (needs <see cref="Dim"/>).</summary>
    public bool InputProjection { get; init; }
    public IReadOnlyDictionary<string, object?> Raw { get; init; } = new Dictionary<string, object?>();

    internal static FuserConfig From(ConfigMap m)
    {
        var c = new FuserConfig
        {
            Target = m.CheckedTarget(DefaultTarget, DefaultTarget),
            Layer = CXBlockConfig.From(m.RequiredMap("layer")),
            NumLayers = m.RequiredInt("num_layers", 0, ConfigLimits.MaxLayers),
            Dim = m.NullableInt("dim", null, 1, ConfigLimits.MaxChannels),
            InputProjection = m.Bool("input_projection", false),
            Raw = m.Raw,
        };
        if (c.InputProjection && c.Dim is null) throw m.Fail("input_projection", "needs dim");
        return c;
    }
}
