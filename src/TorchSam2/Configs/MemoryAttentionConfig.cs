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

    internal static MemoryAttentionConfig From(ConfigMap m)
    {
        var c = new MemoryAttentionConfig
        {
            Target = m.CheckedTarget(DefaultTarget, DefaultTarget),
            DModel = m.RequiredInt("d_model", 1, ConfigLimits.MaxChannels),
            PosEncAtInput = m.RequiredBool("pos_enc_at_input"),
            Layer = MemoryAttentionLayerConfig.From(m.RequiredMap("layer")),
            NumLayers = m.RequiredInt("num_layers", 0, ConfigLimits.MaxLayers),
            BatchFirst = m.Bool("batch_first", true),
            Raw = m.Raw,
        };
        if (c.Layer.DModel != c.DModel) throw m.Fail("layer.d_model", $"{c.Layer.DModel} differs from d_model {c.DModel}");
        return c;
    }
}
