namespace TorchSam2.Server;

/// <summary>Bounds and the served folder of a <see cref="Sam2Server"/>; every cap refuses work up front rather than growing.</summary>
public sealed record ServerOptions
{
    /// <summary>The folder whose files the API may read (<c>--root</c>); null: no server path is readable.</summary>
    public string? Root { get; init; }
    /// <summary>Largest upload, in bytes (default 32 MiB).</summary>
    public long MaxUploadBytes { get; init; } = 32L << 20;
    /// <summary>Largest video upload, in bytes (default 256 MiB; frames are decoded as tracking reaches them).</summary>
    public long MaxVideoUploadBytes { get; init; } = 256L << 20;
    /// <summary>Largest image, width × height (default 16 MP; the library's TORCHSAM2_MAX_IMAGE_PIXELS applies as well).</summary>
    public long MaxImagePixels { get; init; } = 16_000_000;
    /// <summary>Open image sessions; opening one more closes the least recently used.</summary>
    public int MaxSessions { get; init; } = 16;
    /// <summary>Image embeddings kept; a session whose embedding was dropped (least recently used) is encoded again on its next click.</summary>
    public int MaxEmbeddings { get; init; } = 4;
    /// <summary>Encodes running or waiting at once; more are refused with 503.</summary>
    public int MaxPendingEncodes { get; init; } = 2;
    /// <summary>Low-res logits kept per session for <c>maskInput</c> (the most recent).</summary>
    public int MaxLogitsPerSession { get; init; } = 24;
    /// <summary>Open videos at once; more are refused until one is closed (each holds a few frames and the tracked memories).</summary>
    public int MaxVideoSessions { get; init; } = 2;
    /// <summary>The model's config: its video options (fill holes, non-overlapping masks, ...) apply to video sessions; defaults when null.</summary>
    public TorchSam2.Configs.Sam2ModelConfig? Config { get; init; }
    /// <summary>A name shown on the page (the checkpoint).</summary>
    public string ModelName { get; init; } = "model";
}
