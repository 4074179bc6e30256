namespace TorchSam2.Pretrained;

/// <summary>
/// A checkpoint known by name: where it is published (relative to <see cref="CheckpointStore.DefaultDownloadBase"/>),
/// the shipped config it goes with, and the manifest (every key, shape and dtype) a download must match.
/// </summary>
/// <param name="Name">The canonical name, e.g. "sam2.1_hiera_tiny" or "glyph-demo".</param>
/// <param name="FileName">The file name in the cache folder.</param>
/// <param name="RelativeUrl">The path below the download base; null for a model embedded in the library.</param>
/// <param name="Config">The built-in config name (see <see cref="Configs.Sam2ConfigLoader"/>).</param>
/// <param name="Manifest">Loads the manifest a downloaded file must match; null for an embedded model.</param>
public sealed record PretrainedCheckpoint(string Name, string FileName, string? RelativeUrl, string Config, Func<CheckpointManifest>? Manifest)
{
    /// <summary>Whether the model ships inside the library (no download).</summary>
    public bool IsEmbedded => RelativeUrl is null;
}

/// <summary>
/// The names a checkpoint argument may take instead of a path: the official SAM 2.1 and SAM 2.0 checkpoints
/// (as in facebookresearch/sam2's checkpoints/download_ckpts.sh) and the embedded glyph demo model.
/// </summary>
public static class PretrainedCheckpoints
{
    /// <summary>The name of the demo model embedded in TorchSam2.dll.</summary>
    public const string GlyphDemo = "glyph-demo";

    private static readonly (string Size, string ConfigSize)[] Sizes = [("tiny", "t"), ("small", "s"), ("base_plus", "b+"), ("large", "l")];

    /// <summary>Every known checkpoint, SAM 2.1 first.</summary>
    public static IReadOnlyList<PretrainedCheckpoint> All { get; } =
    [
        .. Sizes.Select(s => Official("sam2.1", "092824", s.Size, s.ConfigSize)),
        .. Sizes.Select(s => Official("sam2", "072824", s.Size, s.ConfigSize)),
        new PretrainedCheckpoint(GlyphDemo, "glyph-demo.safetensors", null, "sam2_glyph_demo", null),
    ];

    private static PretrainedCheckpoint Official(string family, string release, string size, string configSize)
    {
        string name = $"{family}_hiera_{size}";
        return new PretrainedCheckpoint(name, name + ".pt", $"{release}/{name}.pt", $"{family}_hiera_{configSize}",
                                        () => CheckpointManifest.LoadEmbedded(name));
    }

    /// <summary>
    /// The checkpoint a name stands for: "tiny", "small", "base_plus" / "base-plus" / "b+", "large" (SAM 2.1),
    /// "sam2.1_hiera_tiny" ..., "sam2_hiera_tiny" ... (SAM 2.0, also with ".pt"), "facebook/sam2.1-hiera-tiny", "glyph-demo".
    /// </summary>
    public static bool TryFind(string? name, out PretrainedCheckpoint checkpoint)
    {
        checkpoint = null!;
        if (string.IsNullOrWhiteSpace(name) || name.Length > 100) return false;
        string n = name.Trim().ToLowerInvariant();
        if (n.StartsWith("facebook/", StringComparison.Ordinal)) n = n["facebook/".Length..];
        if (n.Contains('/') || n.Contains('\\')) return false; // a path, not a name
        if (n.EndsWith(".pt", StringComparison.Ordinal)) n = n[..^3];
        n = n.Replace('-', '_');
        if (n is "glyph_demo" or "sam2_glyph_demo")
        {
            checkpoint = All[^1];
            return true;
        }
        string family = "sam2.1", size = n;
        if (n.StartsWith("sam2.1_hiera_", StringComparison.Ordinal)) size = n["sam2.1_hiera_".Length..];
        else if (n.StartsWith("sam2_hiera_", StringComparison.Ordinal)) (family, size) = ("sam2", n["sam2_hiera_".Length..]);
        size = size switch
        {
            "t" or "tiny" => "tiny",
            "s" or "small" => "small",
            "b+" or "base_plus" or "baseplus" or "base+" or "bplus" => "base_plus",
            "l" or "large" => "large",
            _ => "",
        };
        if (size.Length == 0) return false;
        string canonical = $"{family}_hiera_{size}";
        checkpoint = All.First(c => c.Name == canonical);
        return true;
    }

    /// <summary>The checkpoint a name stands for; an <see cref="ArgumentException"/> listing the names otherwise.</summary>
    public static PretrainedCheckpoint Find(string name) =>
        TryFind(name, out var c) ? c : throw new ArgumentException($"unknown checkpoint name {Checkpoints.UntrustedText.Quote(name)}; known: {KnownNames}", nameof(name));

    /// <summary>The names, for messages.</summary>
    public static string KnownNames => "tiny, small, base_plus, large, " + string.Join(", ", All.Select(c => c.Name));
}
