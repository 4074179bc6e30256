using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSam2.Utils;

namespace TorchSam2.Glyphs;

public sealed record CocoImage(int Id, string FileName, int Width, int Height);

/// <summary>One glyph instance: COCO fields plus the specimen attributes (font, char, size_px) and a score for predictions.</summary>
public sealed record CocoGlyph(int Id, int ImageId, Rle Segmentation, float? Score = null, string? Font = null, string? Char = null, int? SizePx = null)
{
    public GlyphMask Mask() => GlyphMask.FromRle(Segmentation);
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
            if (a.Font is not null || a.Char is not null || a.SizePx is not null)
                o["attributes"] = new JsonObject { ["font"] = a.Font, ["char"] = a.Char, ["size_px"] = a.SizePx };
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

    public static GlyphCoco Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"annotation file not found: {path}", path);
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new InvalidDataException($"{path} is not valid JSON: {e.Message}", e); }
        try
        {
            return root switch
            {
                JsonArray results => FromResults(results),
                JsonObject o when o["glyphs"] is JsonArray => FromGlyphsOutput(o),
                JsonObject o when o["annotations"] is JsonArray => FromDataset(o),
                _ => throw new InvalidDataException($"{path}: neither a COCO dataset, a COCO results list nor a torchsam2 glyphs output"),
            };
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException or KeyNotFoundException)
        {
            throw new InvalidDataException($"{path}: malformed glyph annotations ({e.Message})", e);
        }
    }

    private static GlyphCoco FromDataset(JsonObject o)
    {
        var c = new GlyphCoco();
        if (o["info"] is JsonObject info) c.Info = (JsonObject)info.DeepClone();
        foreach (var im in o["images"]!.AsArray())
            c.Images.Add(new CocoImage((int)im!["id"]!, (string?)im["file_name"] ?? "", (int)im["width"]!, (int)im["height"]!));
        var sizes = c.Images.ToDictionary(i => i.Id);
        foreach (var a in o["annotations"]!.AsArray()) c.Annotations.Add(ReadAnnotation(a!.AsObject(), sizes));
        return c;
    }

    private static GlyphCoco FromResults(JsonArray results)
    {
        var c = new GlyphCoco();
        int id = 1;
        foreach (var r in results)
        {
            var a = ReadAnnotation(r!.AsObject(), null);
            c.Annotations.Add(a with { Id = r["id"] is null ? id : a.Id });
            id++;
        }
        return c;
    }

    private static GlyphCoco FromGlyphsOutput(JsonObject o)
    {
        var c = new GlyphCoco();
        int h = (int)o["height"]!, w = (int)o["width"]!;
        c.Images.Add(new CocoImage(1, (string?)o["file_name"] ?? "", w, h));
        int id = 1;
        foreach (var g in o["glyphs"]!.AsArray())
        {
            var a = ReadAnnotation(g!.AsObject(), null, imageIdOverride: 1);
            c.Annotations.Add(a with { Id = g["id"] is null ? id : a.Id });
            id++;
        }
        return c;
    }

    private static CocoGlyph ReadAnnotation(JsonObject a, Dictionary<int, CocoImage>? images, int? imageIdOverride = null)
    {
        int imageId = imageIdOverride ?? (int)a["image_id"]!;
        var seg = a["segmentation"] as JsonObject ?? throw new InvalidDataException("annotation without an RLE segmentation (polygons are not supported)");
        var size = seg["size"]!.AsArray();
        int h = (int)size[0]!, w = (int)size[1]!;
        if (images is not null && images.TryGetValue(imageId, out var im) && (im.Height != h || im.Width != w))
            throw new InvalidDataException($"annotation {a["id"]}: RLE size {w}x{h} differs from image {imageId} ({im.Width}x{im.Height})");
        Rle rle = seg["counts"] switch
        {
            JsonArray arr => new Rle(h, w, arr.Select(v => (int)v!).ToArray()),
            JsonValue v => Rle.FromCocoString((string)v!, h, w),
            _ => throw new InvalidDataException("RLE without counts"),
        };
        long covered = rle.Counts.Sum(x => (long)x);
        if (covered != (long)h * w) throw new InvalidDataException($"annotation {a["id"]}: RLE covers {covered} pixels, expected {h * w}");
        var attrs = a["attributes"] as JsonObject;
        return new CocoGlyph(a["id"] is { } idNode ? (int)idNode : 0, imageId, rle,
                             a["score"] is { } s ? (float)s : null,
                             (string?)attrs?["font"], (string?)attrs?["char"], attrs?["size_px"] is { } sp ? (int)sp : null);
    }
}
