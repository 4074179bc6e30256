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

    /// <summary>The plain attention class, also accepted as a memory-attention <c>_target_</c>.</summary>
    public const string AttentionTarget = "sam2.modeling.sam.transformer.Attention";

    internal static RoPEAttentionConfig From(ConfigMap m)
    {
        var c = new RoPEAttentionConfig
        {
            Target = m.CheckedTarget(DefaultTarget, DefaultTarget, AttentionTarget),
            EmbeddingDim = m.RequiredInt("embedding_dim", 1, ConfigLimits.MaxChannels),
            NumHeads = m.RequiredInt("num_heads", 1, ConfigLimits.MaxHeads),
            DownsampleRate = m.Int("downsample_rate", 1, 1, ConfigLimits.MaxChannels),
            Dropout = m.Double("dropout", 0.0, 0, 1, maxExclusive: true),
            KvInDim = m.NullableInt("kv_in_dim", null, 1, ConfigLimits.MaxChannels),
            RopeTheta = m.Double("rope_theta", 10000.0, double.Epsilon),
            RopeKRepeat = m.Bool("rope_k_repeat", false),
            FeatSizes = m.Ints("feat_sizes", [64, 64], 1, ConfigLimits.MaxImageSize, 2, 2),
            Raw = m.Raw,
        };
        if (c.EmbeddingDim % c.DownsampleRate != 0)
            throw m.Fail("downsample_rate", $"{c.DownsampleRate} does not divide embedding_dim {c.EmbeddingDim}");
        int inner = c.EmbeddingDim / c.DownsampleRate;
        if (inner % c.NumHeads != 0)
            throw m.Fail("num_heads", $"{c.NumHeads} heads do not divide the attention's {inner} channels (embedding_dim / downsample_rate)");
        // Axial RoPE rotates pairs along x and y: each head needs a multiple of 4 channels.
        if (c.Target == DefaultTarget && inner / c.NumHeads % 4 != 0)
            throw m.Fail("num_heads", $"RoPE needs a head dimension divisible by 4; {inner} channels over {c.NumHeads} heads give {inner / c.NumHeads}");
        return c;
    }
}
