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

    internal static FuserConfig From(ConfigMap m) => new()
    {
        Target = m.Target ?? DefaultTarget,
        Layer = CXBlockConfig.From(m.RequiredMap("layer")),
        NumLayers = m.RequiredInt("num_layers"),
        Dim = m.NullableInt("dim"),
        InputProjection = m.Bool("input_projection", false),
        Raw = m.Raw,
    };
}
