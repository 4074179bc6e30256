using TorchSam2.Configs;
using TorchSam2.Modeling;
using TorchSharp;
using static TorchSharp.torch;
using TorchSharp.Modules;
using TorchSam2.Checkpoints;
using TorchSam2.Pretrained;

namespace TorchSam2;

/// <summary>Builds SAM 2 from a checkpoint, finding the matching built-in config when none is given.</summary>
public static class ModelLoader
{
    /// <summary>
    /// Loads a .pt / .safetensors checkpoint, or a checkpoint by name ("tiny", "sam2.1_hiera_large", "sam2_hiera_small",
    /// "glyph-demo", ...: downloaded into the cache on first use, see <see cref="CheckpointStore"/>). config may be a YAML
    /// path or a built-in name (sam2.1_hiera_t, tiny, ...); when null it is the named checkpoint's, else detected from the weights.
    /// </summary>
    public static SAM2Base Load(string checkpoint, string? config = null, Device? device = null, CheckpointStoreOptions? options = null)
    {
        string path = CheckpointStore.Resolve(checkpoint, options);
        return BuildSam.build_sam2(ResolveConfig(path, config, options), path, device);
    }

    /// <summary>
    /// The built-in config for a checkpoint path or name: a named checkpoint's own (glyph-demo's is sam2_glyph_demo),
    /// else the variant detected from the file's header.
    /// </summary>
    public static string ConfigFor(string checkpoint, CheckpointStoreOptions? options = null) =>
        CheckpointStore.ConfigFor(checkpoint, options) ?? DetectVariant(CheckpointStore.Resolve(checkpoint, options));

    /// <summary>
    /// The config <see cref="Load"/> builds from: the given YAML path or built-in name, else the named checkpoint's own,
    /// else the variant detected from the weights.
    /// </summary>
    public static Sam2ModelConfig ResolveConfig(string checkpoint, string? config = null, CheckpointStoreOptions? options = null) =>
        Sam2ConfigLoader.LoadFileOrBuiltIn(config ?? ConfigFor(checkpoint, options));

    /// <summary>
    /// A video predictor over a model from <see cref="Load"/> (the image overrides are a subset of the video ones, so the
    /// modules are the same), with the video options of build_sam2_video_predictor (fill_hole_area 8, binarized memory
    /// masks from clicks); <paramref name="nonOverlapMasks"/> overrides the config's non_overlap_masks when given.
    /// </summary>
    public static Sam2VideoPredictor VideoPredictor(SAM2Base model, string checkpoint, string? config = null, bool? nonOverlapMasks = null)
    {
        var cfg = BuildSam.VideoPredictorConfig(ResolveConfig(checkpoint, config));
        if (nonOverlapMasks is bool b) cfg = cfg with { NonOverlapMasks = b };
        return Sam2VideoPredictor.FromConfig(model, cfg, ownsModel: true);
    }

    /// <summary>The built-in config name for a checkpoint file, from its header (no tensor data is read).</summary>
    public static string DetectVariant(string checkpointPath)
    {
        using var reader = CheckpointReader.Open(checkpointPath);
        return DetectVariant(reader);
    }

    /// <summary>The built-in config name for an open checkpoint (from its header).</summary>
    public static string DetectVariant(CheckpointReader reader) => DetectVariant(reader.Tensors.Keys, k => reader.Tensors[k].Shape);

    /// <summary>
    /// The built-in config name for a state dict: trunk width and depth pick the size,
    /// SAM 2.1-only tensors (no_obj_embed_spatial) the version.
    /// </summary>
    public static string DetectVariant(IReadOnlyDictionary<string, TensorRecord> sd) => DetectVariant(sd.Keys, k => sd[k].Shape);

    private static string DetectVariant(IEnumerable<string> keys, Func<string, long[]> shapeOf)
    {
        var names = keys.ToHashSet();
        if (!names.Contains("image_encoder.trunk.patch_embed.proj.weight"))
            throw new InvalidDataException("not a SAM 2 checkpoint: image_encoder.trunk.patch_embed.proj.weight is missing");
        long[] patch = shapeOf("image_encoder.trunk.patch_embed.proj.weight");
        if (patch.Length == 0) throw new InvalidDataException("not a SAM 2 checkpoint: image_encoder.trunk.patch_embed.proj.weight is a scalar");
        long width = patch[0];
        // Names come from the file: a block index that is not a small number counts as none.
        int blocks = names.Where(k => k.StartsWith("image_encoder.trunk.blocks.", StringComparison.Ordinal))
                          .Select(k => int.TryParse(k.Split('.')[3], System.Globalization.NumberStyles.None,
                                                    System.Globalization.CultureInfo.InvariantCulture, out int b) && b < 100_000 ? b : -1)
                          .DefaultIfEmpty(-1).Max() + 1;
        string size = (width, blocks) switch
        {
            (96, 12) => "t",
            (96, 16) => "s",
            (112, _) => "b+",
            (144, _) => "l",
            _ => throw new InvalidDataException($"unknown SAM 2 variant: trunk width {width}, {blocks} blocks"),
        };
        string version = names.Contains("no_obj_embed_spatial") ? "sam2.1" : "sam2";
        return $"{version}_hiera_{size}";
    }
}
