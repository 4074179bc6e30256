namespace TorchSam2.Configs;

/// <summary>
/// Bounds a config's numbers are held to when it is loaded: far above SAM 2's own values, far below what would
/// exhaust memory (or libtorch) when the model is built. A value outside one is refused with its YAML path.
/// </summary>
public static class ConfigLimits
{
    /// <summary>Channels of a layer (embed_dim, d_model, out_dim, ...): 16,384 (SAM 2.1 large: 144 in, 256 out).</summary>
    public const int MaxChannels = 16_384;

    /// <summary>Channels of a Hiera stage after dim_mul: 65,536 (SAM 2.1 large: 1,152).</summary>
    public const int MaxStageChannels = 65_536;

    /// <summary>Attention heads: 1,024 (SAM 2.1: at most 16).</summary>
    public const int MaxHeads = 1_024;

    /// <summary>Hiera stages: 8 (SAM 2: 4); blocks in one stage: 256 (large: 36).</summary>
    public const int MaxStages = 8, MaxBlocksPerStage = 256;

    /// <summary>Layers of memory attention or of the memory fuser: 256 (SAM 2: 4 and 2).</summary>
    public const int MaxLayers = 256;

    /// <summary>Input side: 4,096 (SAM 2: 1,024); RoPE tables and feature maps grow with its square.</summary>
    public const int MaxImageSize = 4_096;

    /// <summary>Convolution kernels and paddings: 31.</summary>
    public const int MaxKernel = 31;

    /// <summary>Memory frames: 64 (SAM 2: 7).</summary>
    public const int MaxMaskmem = 64;

    /// <summary>
    /// Parameters of the model a config describes (estimated from its sizes before anything is built): 1 billion,
    /// 4 GB of float32 (SAM 2.1 large: 224 million).
    /// </summary>
    public const long MaxParameters = 1_000_000_000;
}
