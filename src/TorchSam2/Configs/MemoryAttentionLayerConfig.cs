namespace TorchSam2.Configs;

/// <summary>One memory-attention layer (<c>sam2.modeling.memory_attention.MemoryAttentionLayer</c>); no Python defaults.</summary>
public sealed record MemoryAttentionLayerConfig
{
    public const string DefaultTarget = "sam2.modeling.memory_attention.MemoryAttentionLayer";

    public string Target { get; init; } = DefaultTarget;
    /// <summary>"relu", "gelu" or "glu".</summary>
    public required string Activation { get; init; }
    public required RoPEAttentionConfig CrossAttention { get; init; }
    public required int DModel { get; init; }
    public required int DimFeedforward { get; init; }
    public required double Dropout { get; init; }
    public required bool PosEncAtAttn { get; init; }
    public required bool PosEncAtCrossAttnKeys { get; init; }
    public required bool PosEncAtCrossAttnQueries { get; init; }
    public required RoPEAttentionConfig SelfAttention { get; init; }
    public IReadOnlyDictionary<string, object?> Raw { get; init; } = new Dictionary<string, object?>();

    internal static MemoryAttentionLayerConfig From(ConfigMap m) => new()
    {
        Target = m.Target ?? DefaultTarget,
        Activation = m.RequiredString("activation"),
        CrossAttention = RoPEAttentionConfig.From(m.RequiredMap("cross_attention")),
        DModel = m.RequiredInt("d_model"),
        DimFeedforward = m.RequiredInt("dim_feedforward"),
        Dropout = m.RequiredDouble("dropout"),
        PosEncAtAttn = m.RequiredBool("pos_enc_at_attn"),
        PosEncAtCrossAttnKeys = m.RequiredBool("pos_enc_at_cross_attn_keys"),
        PosEncAtCrossAttnQueries = m.RequiredBool("pos_enc_at_cross_attn_queries"),
        SelfAttention = RoPEAttentionConfig.From(m.RequiredMap("self_attention")),
        Raw = m.Raw,
    };
}
