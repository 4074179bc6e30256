namespace TorchSam2.Checkpoints;

/// <summary>
/// What a checkpoint file may ask of the reader. Each bound is far above what a real state dict needs and far
/// below what would exhaust memory or the stack; a file beyond one is refused with a <see cref="CheckpointException"/>
/// that names the limit.
/// </summary>
public static class CheckpointLimits
{
    /// <summary>
    /// Largest <c>data.pkl</c>, after inflating: 32 MiB. A state dict's pickle holds only names, shapes and storage
    /// keys (about 100 bytes a tensor: SAM 2.1 large's is ~0.1 MB); the bound keeps a small deflated entry from
    /// inflating into gigabytes.
    /// </summary>
    public const int MaxPickleBytes = 32 << 20;

    /// <summary>
    /// Most values a pickle may push (objects it creates and references it repeats, memo entries included):
    /// 1,000,000. A state dict needs ~40 a tensor (SAM 2.1 large: ~40,000); 1M empty dicts already take ~100 MB.
    /// </summary>
    public const int MaxPickleValues = 1_000_000;

    /// <summary>
    /// Deepest nesting of containers (or of <c>_rebuild_from_type_v2</c> wrappers) in a pickle's object tree: 1,000.
    /// A state dict nests 3 deep; the bound lets every walk over the tree stay far from the stack's end.
    /// </summary>
    public const int MaxNestingDepth = 1_000;

    /// <summary>Most dimensions of a tensor: 64 (libtorch's own practical limit; SAM 2 uses at most 4).</summary>
    public const int MaxTensorRank = 64;

    /// <summary>Most entries in a .pt zip: 100,000 (torch.save writes one a tensor, plus 3).</summary>
    public const int MaxZipEntries = 100_000;

    /// <summary>Longest zip entry name, in bytes: 1,024 (torch writes <c>&lt;archive&gt;/data/&lt;n&gt;</c>).</summary>
    public const int MaxZipNameBytes = 1_024;

    /// <summary>Largest zip central directory: 32 MiB (100,000 entries of short names take ~7 MB).</summary>
    public const int MaxCentralDirectoryBytes = 32 << 20;

    /// <summary>
    /// Deflate's best ratio is about 1032:1, so a deflated entry that claims more than 1032 bytes a compressed byte
    /// lies about its size and is refused before anything is inflated.
    /// </summary>
    public const int MaxDeflateRatio = 1032;

    /// <summary>
    /// A deflated storage read through views is inflated once and kept: in memory up to 64 MiB a storage (256 MiB
    /// in all per open checkpoint), beyond that in a temporary file deleted on close.
    /// </summary>
    public const int MaxInMemoryInflatedStorage = 64 << 20;

    /// <inheritdoc cref="MaxInMemoryInflatedStorage"/>
    public const long MaxInMemoryInflatedTotal = 256L << 20;

    /// <summary>
    /// Largest safetensors JSON header: 16 MiB. A header holds ~80 bytes a tensor (SAM 2.1 large: ~80 KB); the
    /// reference implementation allows 100 MB, which JSON parsing would turn into several hundred MB of memory.
    /// </summary>
    public const int MaxSafeTensorsHeaderBytes = 16 << 20;
}
