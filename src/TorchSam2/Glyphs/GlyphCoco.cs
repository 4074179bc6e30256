using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSam2.Utils;

namespace TorchSam2.Glyphs;

public sealed record CocoImage(int Id, string FileName, int Width, int Height);

/// <summary>
/// One glyph instance: COCO fields plus the specimen attributes (font, char, size_px, ligature, style) and a score for
/// predictions. <paramref name="Ligature"/> and <paramref name="Style"/> are null when a file does not carry them
/// (files written before they existed); <see cref="IsLigature"/> and <see cref="StyleName"/> then derive them as
/// <see cref="GlyphCoco.ToJson"/> does.
/// </summary>
public sealed record CocoGlyph(int Id, int ImageId, Rle Segmentation, float? Score = null, string? Font = null, string? Char = null, int? SizePx = null,
                               bool? Ligature = null, string? Style = null)
{
    /// <summary>The "ligature" attribute, else whether <see cref="Char"/> holds more than one character (one mask for several).</summary>
    public bool IsLigature => Ligature ?? (Char is not null && GlyphAnnotation.IsLigatureText(Char));

    /// <summary>The "style" attribute, else <see cref="FontRegistry.StyleOf"/> of <see cref="Font"/>; null with neither.</summary>
    public string? StyleName => Style ?? (Font is null ? null : FontRegistry.StyleOf(Font));


    /// <summary>The mask in its tight box (decoded from the runs without a full-image array).</summary>
    public GlyphMask Mask()
    {
        var (x, y, w, h, bits) = Segmentation.DecodeTight();
        return new GlyphMask(x, y, w, h, bits);
    }
}

/// <summary>
/// COCO instance files for glyphs (one category, "glyph"). Reads three layouts: a COCO dataset
/// ({images, annotations, categories}), a COCO results list ([{image_id, segmentation, score}]) and
/// the output of <c>torchsam2 glyphs</c> ({file_name, height, width, glyphs: [...]}).
/// </summary>
public sealed class GlyphCoco
{
    public List<CocoImage> Images { get; } = new();
    public List<CocoGlyph> Annotations { get; } = new();
    public JsonObject Info { get; set; } = new();

    private static readonly JsonSerializerOptions WriteOptions = new() { WriteIndented = false, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public JsonObject ToJson()
    {
        var images = new JsonArray();
        foreach (var im in Images) images.Add(new JsonObject { ["id"] = im.Id, ["file_name"] = im.FileName, ["width"] = im.Width, ["height"] = im.Height });
        var anns = new JsonArray();
        foreach (var a in Annotations)
        {
            var mask = a.Mask();
            var (x, y, w, h) = mask.BBox;
            var o = new JsonObject
            {
                ["id"] = a.Id,
                ["image_id"] = a.ImageId,
                ["category_id"] = 1,
                ["segmentation"] = new JsonObject { ["size"] = new JsonArray(a.Segmentation.Height, a.Segmentation.Width), ["counts"] = a.Segmentation.ToCocoString() },
                ["area"] = a.Segmentation.Area(),
                ["bbox"] = new JsonArray(x, y, w, h),
                ["iscrowd"] = 0,
            };
            if (a.Score is { } s) o["score"] = s;
            if (a.Font is not null || a.Char is not null || a.SizePx is not null || a.Ligature is not null || a.Style is not null)
                o["attributes"] = new JsonObject
                {
                    ["font"] = a.Font, ["char"] = a.Char, ["size_px"] = a.SizePx,
                    // explicit, so a ligature's one mask for several characters is never mistaken for a merge
                    ["ligature"] = a.IsLigature,
                    ["style"] = a.StyleName,
                };
            anns.Add(o);
        }
        return new JsonObject
        {
            ["info"] = Info.DeepClone(),
            ["images"] = images,
            ["annotations"] = anns,
            ["categories"] = new JsonArray(new JsonObject { ["id"] = 1, ["name"] = "glyph", ["supercategory"] = "text" }),
        };
    }

    public void Save(string path)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        File.WriteAllText(path, ToJson().ToJsonString(WriteOptions));
    }

    /// <summary>
    /// Reads one of the three layouts. Hostile or careless files are refused with an <see cref="InvalidDataException"/>
    /// naming the file and the entry: files above <see cref="Limits.MaxJsonBytes"/>, more annotations than
    /// <see cref="Limits.MaxAnnotationsPerFile"/>, images or RLE sizes above <see cref="Limits.MaxImagePixels"/>, duplicate
    /// image ids, RLE sizes that differ from their image's, RLE runs that do not cover the image exactly.
    /// </summary>
    public static GlyphCoco Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"annotation file not found: {path}", path);
        Limits.CheckJsonFile(path);
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllBytes(path), documentOptions: new JsonDocumentOptions { MaxDepth = 64 }); }
        catch (JsonException e) { throw new InvalidDataException($"{path} is not valid JSON: {e.Message}", e); }
        try
        {
            return root switch
            {
                JsonArray results => FromResults(results, path),
                JsonObject o when o["glyphs"] is JsonArray => FromGlyphsOutput(o, path),
                JsonObject o when o["annotations"] is JsonArray => FromDataset(o, path),
                _ => throw new InvalidDataException($"{path}: neither a COCO dataset, a COCO results list nor a torchsam2 glyphs output"),
            };
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException or KeyNotFoundException
                                       or OverflowException or ArgumentException or IndexOutOfRangeException or InvalidCastException or JsonException)
        {
            // JsonObject refuses duplicate property names with an ArgumentException when first read.
            string m = e is ArgumentException { ParamName: { } p } a ? a.Message.Replace($" (Parameter '{p}')", "") : e.Message;
            if (e is ArgumentException && m.Contains("same key", StringComparison.Ordinal)) m = "a property appears twice in one object: " + m;
            throw new InvalidDataException($"{path}: malformed glyph annotations ({m})", e);
        }
    }

    private static GlyphCoco FromDataset(JsonObject o, string path)
    {
        var c = new GlyphCoco();
        if (o["info"] is JsonObject info) c.Info = (JsonObject)info.DeepClone();
        var images = o["images"] as JsonArray ?? throw new InvalidDataException($"{path}: 'images' must be a list");
        var anns = o["annotations"]!.AsArray();
        Limits.CheckAnnotationCount(anns.Count, path);
        var sizes = new Dictionary<int, CocoImage>();
        for (int k = 0; k < images.Count; k++)
        {
            var im = images[k] as JsonObject ?? throw new InvalidDataException($"{path}: images[{k}] is not an object");
            string where = $"{path}: images[{k}]";
            var image = new CocoImage(Int(im, "id", where), Str(im, "file_name", where) ?? "", Int(im, "width", where), Int(im, "height", where));
            Limits.CheckImageSize(image.Width, image.Height, $"{where} ('{image.FileName}')");
            if (!sizes.TryAdd(image.Id, image))
                throw new InvalidDataException($"{where}: image id {image.Id} appears more than once");
            c.Images.Add(image);
        }
        for (int k = 0; k < anns.Count; k++)
            c.Annotations.Add(ReadAnnotation(anns[k] as JsonObject ?? throw new InvalidDataException($"{path}: annotations[{k}] is not an object"),
                                             sizes, $"{path}: annotations[{k}]"));
        return c;
    }

    private static GlyphCoco FromResults(JsonArray results, string path)
    {
        Limits.CheckAnnotationCount(results.Count, path);
        var c = new GlyphCoco();
        int id = 1;
        for (int k = 0; k < results.Count; k++)
        {
            var r = results[k] as JsonObject ?? throw new InvalidDataException($"{path}: [{k}] is not an object");
            var a = ReadAnnotation(r, null, $"{path}: [{k}]");
            c.Annotations.Add(a with { Id = r["id"] is null ? id : a.Id });
            id++;
        }
        return c;
    }

    private static GlyphCoco FromGlyphsOutput(JsonObject o, string path)
    {
        var c = new GlyphCoco();
        int h = Int(o, "height", path), w = Int(o, "width", path);
        Limits.CheckImageSize(w, h, $"{path}: the image");
        var image = new CocoImage(1, Str(o, "file_name", path) ?? "", w, h);
        c.Images.Add(image);
        var glyphs = o["glyphs"]!.AsArray();
        Limits.CheckAnnotationCount(glyphs.Count, path);
        var sizes = new Dictionary<int, CocoImage> { [1] = image };
        int id = 1;
        for (int k = 0; k < glyphs.Count; k++)
        {
            var g = glyphs[k] as JsonObject ?? throw new InvalidDataException($"{path}: glyphs[{k}] is not an object");
            var a = ReadAnnotation(g, sizes, $"{path}: glyphs[{k}]", imageIdOverride: 1);
            c.Annotations.Add(a with { Id = g["id"] is null ? id : a.Id });
            id++;
        }
        return c;
    }

    private static CocoGlyph ReadAnnotation(JsonObject a, Dictionary<int, CocoImage>? images, string where, int? imageIdOverride = null)
    {
        int imageId = imageIdOverride ?? Int(a, "image_id", where);
        var seg = a["segmentation"] as JsonObject ?? throw new InvalidDataException($"{where}: no RLE segmentation (polygons are not supported)");
        var size = seg["size"] as JsonArray;
        if (size is null || size.Count != 2) throw new InvalidDataException($"{where}: segmentation 'size' must be [height, width]");
        int h = IntValue(size[0], $"{where}: segmentation size"), w = IntValue(size[1], $"{where}: segmentation size");
        Limits.CheckImageSize(w, h, $"{where}: RLE size");
        if (images is not null && images.TryGetValue(imageId, out var im) && (im.Height != h || im.Width != w))
            throw new InvalidDataException($"{where}: RLE size {w}x{h} differs from image {imageId} ({im.Width}x{im.Height})");
        Rle rle = seg["counts"] switch
        {
            JsonArray arr => new Rle(h, w, arr.Select(v => IntValue(v, $"{where}: RLE counts")).ToArray()),
            JsonValue v when v.GetValueKind() == JsonValueKind.String => Rle.FromCocoString((string)v!, h, w),
            _ => throw new InvalidDataException($"{where}: RLE without counts"),
        };
        rle.Validate(where);
        var attrs = a["attributes"] as JsonObject;
        float? score = null;
        if (a["score"] is { } s)
        {
            if (s.GetValueKind() != JsonValueKind.Number) throw new InvalidDataException($"{where}: 'score' must be a number");
            score = (float)s.GetValue<double>();
        }
        return new CocoGlyph(a["id"] is not null ? Int(a, "id", where) : 0, imageId, rle, score,
                             attrs is null ? null : Str(attrs, "font", where), attrs is null ? null : Str(attrs, "char", where),
                             attrs?["size_px"] is not null ? Int(attrs, "size_px", where) : null,
                             attrs is null ? null : Bool(attrs, "ligature", where), attrs is null ? null : Str(attrs, "style", where));
    }

    private static bool? Bool(JsonObject o, string key, string where) => o[key] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => v.GetValue<bool>(),
        _ => throw new InvalidDataException($"{where}: '{key}' must be true or false"),
    };

    private static int Int(JsonObject o, string key, string where) =>
        o[key] is { } n ? IntValue(n, $"{where}: '{key}'") : throw new InvalidDataException($"{where}: '{key}' is missing");

    private static int IntValue(JsonNode? n, string what)
    {
        if (n is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out double d) && d == Math.Floor(d) && d >= int.MinValue && d <= int.MaxValue)
            return (int)d;
        string shown = n is null ? "null" : n.ToJsonString();
        if (shown.Length > 40) shown = shown[..40] + "…";
        throw new InvalidDataException($"{what} must be a whole number, got {shown}");
    }

    private static string? Str(JsonObject o, string key, string where) => o[key] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.String => (string)v!,
        _ => throw new InvalidDataException($"{where}: '{key}' must be a string"),
    };
}
