using System.Globalization;

namespace TorchSam2.Utils;

/// <summary>
/// A limit on what a file or an option may ask for was exceeded: the request is refused before the memory or the
/// time is spent. The message names the limit and how to raise it.
/// </summary>
public sealed class LimitExceededException(string message) : IOException(message);

/// <summary>
/// Size and count limits on what TorchSam2 reads, so a small hostile or careless input (a PNG header claiming
/// 20000², a 400-byte COCO file with full-image masks, a sheet of 65k specks) is refused with a clear message
/// instead of costing gigabytes or hours. Limits read from files can be raised with an environment variable
/// (read on each check); the others are fixed sanity bounds on options.
/// </summary>
public static class Limits
{
    /// <summary>Default <see cref="MaxImagePixels"/>: 50 megapixels (8660×5773), a large camera photo.</summary>
    public const long DefaultMaxImagePixels = 50_000_000;
    /// <summary>Default <see cref="MaxAnnotationsPerFile"/>.</summary>
    public const int DefaultMaxAnnotationsPerFile = 200_000;
    /// <summary>Default <see cref="MaxJsonBytes"/>: 256 MiB.</summary>
    public const long DefaultMaxJsonBytes = 256L << 20;
    /// <summary>Default <see cref="MaxInstancesPerImage"/>.</summary>
    public const int DefaultMaxInstancesPerImage = 1_000;
    /// <summary>Default <see cref="MaxGlyphCandidates"/>.</summary>
    public const int DefaultMaxGlyphCandidates = 20_000;

    /// <summary>Largest image (width × height) decoded or declared by a file: TORCHSAM2_MAX_IMAGE_PIXELS, default 50 MP.</summary>
    public static long MaxImagePixels => Env("TORCHSAM2_MAX_IMAGE_PIXELS", DefaultMaxImagePixels);
    /// <summary>Most annotations one COCO / glyph JSON file may hold: TORCHSAM2_MAX_ANNOTATIONS, default 200,000.</summary>
    public static int MaxAnnotationsPerFile => (int)Math.Min(int.MaxValue, Env("TORCHSAM2_MAX_ANNOTATIONS", DefaultMaxAnnotationsPerFile));
    /// <summary>Largest JSON file read whole (annotations, predictions): TORCHSAM2_MAX_JSON_BYTES, default 256 MiB.</summary>
    public static long MaxJsonBytes => Env("TORCHSAM2_MAX_JSON_BYTES", DefaultMaxJsonBytes);
    /// <summary>Most instance masks of one training image (each is a full-size mask): TORCHSAM2_MAX_INSTANCES, default 1,000.</summary>
    public static int MaxInstancesPerImage => (int)Math.Min(int.MaxValue, Env("TORCHSAM2_MAX_INSTANCES", DefaultMaxInstancesPerImage));
    /// <summary>Most glyph candidates on one specimen sheet: TORCHSAM2_MAX_GLYPHS, default 20,000.</summary>
    public static int MaxGlyphCandidates => (int)Math.Min(int.MaxValue, Env("TORCHSAM2_MAX_GLYPHS", DefaultMaxGlyphCandidates));

    /// <summary>Extra crop layers of the automatic mask generator: layer i adds (2^i)² crops, so 4 layers make 341 crops with the whole image.</summary>
    public const int MaxCropLayers = 4;
    /// <summary>Grid points per side for automatic masks (256² = 65,536 prompts per crop).</summary>
    public const int MaxPointsPerSide = 256;
    /// <summary>Points decoded at once for automatic masks (a batch of 64 makes 268–537 MB tensors at 1024²).</summary>
    public const int MaxPointsPerBatch = 1024;
    /// <summary>Boundary tolerance of glyph evaluation, in pixels.</summary>
    public const int MaxBoundaryTolerance = 256;
    /// <summary>Model input size (image_size); SAM 2.1 uses 1024.</summary>
    public const int MaxModelImageSize = 4096;
    /// <summary>Correction clicks per object when training (7 upstream).</summary>
    public const int MaxCorrectionClicks = 64;

    /// <summary>Most libtorch CPU threads: 4 × the processors, at most 256.</summary>
    public static int MaxThreads => Math.Clamp(4 * Environment.ProcessorCount, 1, 256);

    /// <summary>Throws <see cref="LimitExceededException"/> when a width × height (from a header or a JSON file) is not positive or above <see cref="MaxImagePixels"/>.</summary>
    public static void CheckImageSize(long width, long height, string what)
    {
        if (width <= 0 || height <= 0)
            throw new InvalidDataException($"{what}: size {width}x{height} is not positive");
        long max = MaxImagePixels;
        if (width > int.MaxValue || height > int.MaxValue || width * height > max)
            throw new LimitExceededException(
                $"{what} is {width}x{height} ({Mp(width * height)}), above the limit of {Mp(max)} (set TORCHSAM2_MAX_IMAGE_PIXELS to raise it)");
    }

    /// <summary>Throws when a JSON file is larger than <see cref="MaxJsonBytes"/>.</summary>
    public static void CheckJsonFile(string path)
    {
        long len = new FileInfo(path).Length;
        long max = MaxJsonBytes;
        if (len > max)
            throw new LimitExceededException($"'{path}' is {len / 1048576.0:F0} MiB, above the limit of {max / 1048576.0:F0} MiB for JSON files (set TORCHSAM2_MAX_JSON_BYTES to raise it)");
    }

    /// <summary>Throws when a file holds more annotations than <see cref="MaxAnnotationsPerFile"/>.</summary>
    public static void CheckAnnotationCount(long count, string path)
    {
        int max = MaxAnnotationsPerFile;
        if (count > max)
            throw new LimitExceededException($"'{path}' holds {count:N0} annotations, above the limit of {max:N0} (set TORCHSAM2_MAX_ANNOTATIONS to raise it)");
    }

    private static string Mp(long pixels) => string.Create(CultureInfo.InvariantCulture, $"{pixels / 1e6:0.#} MP");

    private static long Env(string name, long fallback)
    {
        var s = Environment.GetEnvironmentVariable(name);
        if (string.IsNullOrWhiteSpace(s)) return fallback;
        if (!long.TryParse(s.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out long v) || v <= 0)
            throw new ArgumentException($"environment variable {name} must be a positive whole number, got '{s}'");
        return v;
    }
}
