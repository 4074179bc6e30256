namespace TorchSam2.Server;

/// <summary>An opened image: its id (for predict and delete), size, and how long its encode took.</summary>
public sealed record ImageInfo(string Id, string Name, int Width, int Height, double EncodeMs);

/// <summary>Opens an image of the served folder (<c>--root</c>) by its relative path.</summary>
public sealed record OpenRequest(string Path);

/// <summary>
/// Prompts for one object, in pixels of the image: points (x, y) with labels (1 foreground, 0 background), an
/// optional box (x0, y0, x1, y1), whether to return three candidate masks, an optional previous mask's logits id
/// (<see cref="MaskResult.Logits"/>) to refine, and the mask format: "rle" (default), "png" or "both".
/// </summary>
public sealed record PredictRequest(float[][]? Points = null, int[]? Labels = null, float[]? Box = null, bool Multimask = true,
                                    string? MaskInput = null, string? Format = null);

/// <summary>COCO RLE: size [height, width] and counts in COCO's compressed string form (column-major).</summary>
public sealed record RleJson(int[] Size, string Counts);

/// <summary>One candidate mask: its predicted IoU (null when not finite), area, RLE, PNG (base64, when asked) and logits id.</summary>
public sealed record MaskResult(float? Score, long Area, RleJson? Rle, string? Png, string Logits);

/// <summary>Masks for one prompt set, best first is not implied: <c>Best</c> is the index of the highest score.</summary>
public sealed record PredictResponse(int Width, int Height, IReadOnlyList<MaskResult> Masks, int Best, IReadOnlyDictionary<string, double> TimingsMs);

/// <summary>An entry of the served folder.</summary>
public sealed record FileEntry(string Name, string Path, bool IsFolder, long Size);

/// <summary>A folder of the served folder: its path (relative) and entries.</summary>
public sealed record FolderListing(string Path, IReadOnlyList<FileEntry> Entries);

/// <summary>The model and the bounds the server runs with.</summary>
public sealed record ServerInfo(string Model, int ImageSize, bool RootServed, long MaxUploadBytes, long MaxImagePixels, int MaxSessions,
                                int MaxEmbeddings, int MaxPendingEncodes, int Sessions, int Embeddings);

/// <summary>One glyph as <c>torchsam2 glyphs</c> writes it: id, prompt box (x0, y0, x1, y1), bbox (x, y, w, h), score, area, mask.</summary>
public sealed record GlyphJson(int Id, float[] Box, int[] Bbox, float? Score, long Area, RleJson Segmentation);

/// <summary>Every glyph of a sheet, the crops the pipeline encoded, and the time it took.</summary>
public sealed record GlyphsResponse(string FileName, int Height, int Width, int Crops, IReadOnlyList<GlyphJson> Glyphs, double Ms);

/// <summary>Automatic masks: points per side of the grid (1..64) and the two filters (as <c>torchsam2 auto</c>).</summary>
public sealed record AutoRequest(int PointsPerSide = 16, double PredIouThresh = 0.8, double StabilityScoreThresh = 0.95);

/// <summary>One automatic mask: bbox (x, y, w, h), area, predicted IoU, stability score, the point that found it, COCO RLE.</summary>
public sealed record AutoMask(int Id, float[] Bbox, long Area, float? PredictedIou, float? StabilityScore, float[] Point, RleJson Segmentation);

/// <summary>Every automatic mask of an image, largest first.</summary>
public sealed record AutoResponse(IReadOnlyList<AutoMask> Masks, double Ms);
