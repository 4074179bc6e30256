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

    internal static MemoryAttentionLayerConfig From(ConfigMap m)
    {
        var c = new MemoryAttentionLayerConfig
        {
            Target = m.CheckedTarget(DefaultTarget, DefaultTarget),
            Activation = m.RequiredChoice("activation", "relu", "gelu"),
            CrossAttention = RoPEAttentionConfig.From(m.RequiredMap("cross_attention")),
            DModel = m.RequiredInt("d_model", 1, ConfigLimits.MaxChannels),
            DimFeedforward = m.RequiredInt("dim_feedforward", 1, 4 * ConfigLimits.MaxChannels),
            Dropout = m.RequiredDouble("dropout", 0, 1, maxExclusive: true),
            PosEncAtAttn = m.RequiredBool("pos_enc_at_attn"),
            PosEncAtCrossAttnKeys = m.RequiredBool("pos_enc_at_cross_attn_keys"),
            PosEncAtCrossAttnQueries = m.RequiredBool("pos_enc_at_cross_attn_queries"),
            SelfAttention = RoPEAttentionConfig.From(m.RequiredMap("self_attention")),
            Raw = m.Raw,
        };
        // Both attentions read and write the layer's d_model channels.
        if (c.SelfAttention.EmbeddingDim != c.DModel)
            throw m.Fail("self_attention.embedding_dim", $"{c.SelfAttention.EmbeddingDim} differs from d_model {c.DModel}");
        if (c.CrossAttention.EmbeddingDim != c.DModel)
            throw m.Fail("cross_attention.embedding_dim", $"{c.CrossAttention.EmbeddingDim} differs from d_model {c.DModel}");
        return c;
    }
}
