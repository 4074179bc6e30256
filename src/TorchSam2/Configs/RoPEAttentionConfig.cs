namespace TorchSam2.Configs;

/// <summary>
/// Rotary-position attention (<c>sam2.modeling.sam.transformer.RoPEAttention</c>, an <c>Attention</c> subclass).
/// </summary>
public sealed record RoPEAttentionConfig
{
    public const string DefaultTarget = "sam2.modeling.sam.transformer.RoPEAttention";

    public string Target { get; init; } = DefaultTarget;
    public required int EmbeddingDim { get; init; }
    public required int NumHeads { get; init; }
    public int DownsampleRate { get; init; } = 1;
    public double Dropout { get; init; }
    /// <summary>Channels of keys/values when they differ from <see cref="EmbeddingDim"/> (memory features); null = same.</summary>
    public int? KvInDim { get; init; }
    public double RopeTheta { get; init; } = 10000.0;
    /// <summary>Repeat the q rotary table along k (cross-attention to several memory frames).</summary>
    public bool RopeKRepeat { get; init; }
    /// <summary>[w, h] of the stride-16 feature map the rotary table is built for; see <see cref="Sam2ModelConfig.RopeFeatSizes"/>.</summary>
    public IReadOnlyList<int> FeatSizes { get; init; } = [64, 64];
    public IReadOnlyDictionary<string, object?> Raw { get; init; } = new Dictionary<string, object?>();

    /// <summary>Key/value input channels, resolving null to <see cref="EmbeddingDim"/>.</summary>
    public int EffectiveKvInDim => KvInDim ?? EmbeddingDim;

    internal static RoPEAttentionConfig From(ConfigMap m) => new()
    {
        Target = m.Target ?? DefaultTarget,
        EmbeddingDim = m.RequiredInt("embedding_dim"),
        NumHeads = m.RequiredInt("num_heads"),
        DownsampleRate = m.Int("downsample_rate", 1),
        Dropout = m.Double("dropout", 0.0),
        KvInDim = m.NullableInt("kv_in_dim"),
        RopeTheta = m.Double("rope_theta", 10000.0),
        RopeKRepeat = m.Bool("rope_k_repeat", false),
        FeatSizes = m.Ints("feat_sizes", [64, 64]),
        Raw = m.Raw,
    };
}
