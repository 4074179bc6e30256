namespace TorchSam2.Configs;

/// <summary>Memory attention (<c>sam2.modeling.memory_attention.MemoryAttention</c>): a stack of identical layers.</summary>
public sealed record MemoryAttentionConfig
{
    public const string DefaultTarget = "sam2.modeling.memory_attention.MemoryAttention";

    public string Target { get; init; } = DefaultTarget;
    public required int DModel { get; init; }
    public required bool PosEncAtInput { get; init; }
    public required MemoryAttentionLayerConfig Layer { get; init; }
    public required int NumLayers { get; init; }
    public bool BatchFirst { get; init; } = true;
    public IReadOnlyDictionary<string, object?> Raw { get; init; } = new Dictionary<string, object?>();

    internal static MemoryAttentionConfig From(ConfigMap m) => new()
    {
        Target = m.Target ?? DefaultTarget,
        DModel = m.RequiredInt("d_model"),
        PosEncAtInput = m.RequiredBool("pos_enc_at_input"),
        Layer = MemoryAttentionLayerConfig.From(m.RequiredMap("layer")),
        NumLayers = m.RequiredInt("num_layers"),
        BatchFirst = m.Bool("batch_first", true),
        Raw = m.Raw,
    };
}
