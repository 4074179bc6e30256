using HarfBuzzSharp;
using SkiaSharp;
using SkiaSharp.HarfBuzz;
using HbBuffer = HarfBuzzSharp.Buffer;
using HbFont = HarfBuzzSharp.Font;

namespace TorchSam2.Glyphs;

/// <summary>An anti-aliased 8-bit coverage bitmap of one glyph (or one cluster), placed relative to an integer pen on the baseline.</summary>
/// <param name="Width">columns of <paramref name="Coverage"/></param>
/// <param name="Rows">rows of <paramref name="Coverage"/></param>
/// <param name="Left">x of the bitmap's left column relative to the pen</param>
/// <param name="Top">rows of the bitmap above the baseline (the top row is at baseline − Top)</param>
/// <param name="AdvanceX">horizontal pen advance, rounded to whole pixels</param>
/// <param name="Coverage">row-major Rows×Width coverage, 0 (none) .. 255 (full); cropped to the inked pixels. May be
/// shared with the face's glyph cache: read-only.</param>
public sealed record GlyphBitmap(int Width, int Rows, int Left, int Top, int AdvanceX, byte[] Coverage)
{
    public byte At(int x, int y) => Coverage[y * Width + x];
}

/// <summary>Pixel metrics of a face at its current size: whole pixels, rounded outwards like FreeType's size metrics.</summary>
public readonly record struct LineMetrics(int Ascender, int Descender, int LineHeight);

/// <summary>
/// One glyph of shaped text. <paramref name="X"/>/<paramref name="Y"/> is where its origin is drawn, in pixels from
/// the start of the text on the baseline (y down, offsets included); <paramref name="Cluster"/> is the UTF-16 index of
/// the first character of the cluster the glyph belongs to.
/// </summary>
public readonly record struct ShapedGlyph(ushort GlyphId, int Cluster, float X, float Y, float Advance);

/// <summary>
/// Characters [Start, Start + Length) of the text and the glyphs [FirstGlyph, FirstGlyph + GlyphCount) that draw them:
/// the smallest unit that owns ink. A ligature makes one cluster of several characters; a character drawn as base plus
/// mark glyphs makes one cluster of several glyphs. <paramref name="X"/> is the pen position at the cluster's start.
/// </summary>
public sealed record TextCluster(int Start, int Length, string Text, int FirstGlyph, int GlyphCount, float X, float Advance);

/// <summary>Text shaped by HarfBuzz at one pixel size: glyphs in visual order and their clusters.</summary>
public sealed class ShapedText
{
    private readonly ShapedGlyph[] _glyphs;

    internal ShapedText(string text, int sizePx, ShapedGlyph[] glyphs, TextCluster[] clusters, float width)
    {
        Text = text;
        SizePx = sizePx;
        _glyphs = glyphs;
        Clusters = clusters;
        Width = width;
    }

    public string Text { get; }
    public int SizePx { get; }
    public IReadOnlyList<ShapedGlyph> Glyphs => _glyphs;
    public IReadOnlyList<TextCluster> Clusters { get; }
    /// <summary>Total advance in pixels (kerning included).</summary>
    public float Width { get; }

    /// <summary>The glyphs that draw a cluster.</summary>
    public ReadOnlySpan<ShapedGlyph> GlyphsOf(TextCluster c) => _glyphs.AsSpan(c.FirstGlyph, c.GlyphCount);
}

/// <summary>
/// One face of a font file: outlines and metrics from Skia (its FreeType font backend), shaping by HarfBuzz. Not
/// thread-safe: use one per thread. Rendering is deterministic for a given SkiaSharp / HarfBuzzSharp build: glyphs are
/// filled one at a time into their own A8 bitmaps, at x positions rounded to a quarter pixel and whole-pixel
/// baselines, so the same glyph at the same quarter always has the same coverage.
/// </summary>
public sealed class FontFace : IDisposable
{
    // HarfBuzz positions are integers in units of 1/HbScale em; 2^16 keeps them far below a hundredth of a pixel at
    // any size the generator draws (SKShaper's 512 would be ~0.4 px at 200 px, and it cannot switch features off).
    private const int HbScale = 1 << 16;
    // Glyph x positions are drawn at quarter pixels (an error of at most 1/8 px), so rasterized glyphs can be cached.
    private const int SubpixelSteps = 4;

    private SKTypeface? _typeface;
    private SKFont? _font;
    private HbFont? _hbFont;
    private readonly HbBuffer _buffer = new();
    private readonly SKPaint _paint;
    // Rasterized glyphs and outlines of every size drawn so far (a sheet switches sizes line by line), bounded.
    private readonly Dictionary<(int Size, ushort Glyph, int Quarter), GlyphBitmap> _cache = new();
    private readonly Dictionary<(int Size, ushort Glyph), SKPath?> _paths = new();
    private const int MaxCached = 16384;
    private int _sizePx;

    public string Path { get; }
    public string FamilyName { get; }
    /// <summary>The Skia typeface, for drawing with the same face elsewhere (overlays). Owned by this face.</summary>
    public SKTypeface Typeface => _typeface ?? throw new ObjectDisposedException(nameof(FontFace));

    private FontFace(string path, SKTypeface typeface, HbFont hbFont)
    {
        Path = path;
        _typeface = typeface;
        _hbFont = hbFont;
        FamilyName = typeface.FamilyName ?? "";
        // Unhinted and linear: outlines and metrics scale exactly with the size, like HarfBuzz's advances, so glyphs
        // drawn at fractional shaped positions (here as paths, elsewhere through ToTextBlob) keep their shapes.
        _font = new SKFont(typeface)
        {
            Edging = SKFontEdging.Antialias,
            Subpixel = true,
            Hinting = SKFontHinting.None,
            LinearMetrics = true,
            EmbeddedBitmaps = false,
        };
        _paint = new SKPaint { Color = SKColors.Black, IsAntialias = true, Style = SKPaintStyle.Fill };
    }

    /// <summary>
    /// Opens a font file (TTF, OTF, ...). Throws FileNotFoundException for a missing file, InvalidDataException for a
    /// file that is not a font, InvalidOperationException when SkiaSharp's or HarfBuzzSharp's native library is missing.
    /// </summary>
    public static FontFace Open(string path, int faceIndex = 0)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"font file not found: {path} (the Debian font packages are listed in tools/setup.sh)", path);
        SKTypeface? tf;
        try { tf = SKTypeface.FromFile(path, faceIndex); }
        catch (Exception e) when (IsMissingNative(e))
        {
            throw new InvalidOperationException("glyph rendering needs SkiaSharp's native library: reference the NuGet package SkiaSharp.NativeAssets.Linux (it needs libfontconfig1)", e);
        }
        if (tf is null)
            throw new InvalidDataException($"cannot read font '{path}' (face {faceIndex}): not a font file Skia can open");
        HbFont hb;
        try
        {
            using var blob = tf.OpenStream(out int index).ToHarfBuzzBlob();
            using var face = new Face(blob, index) { Index = index, UnitsPerEm = tf.UnitsPerEm };
            hb = new HbFont(face);
            hb.SetScale(HbScale, HbScale);
            hb.SetFunctionsOpenType();
        }
        catch (Exception e) when (IsMissingNative(e))
        {
            tf.Dispose();
            throw new InvalidOperationException("text shaping needs HarfBuzzSharp's native library: reference the NuGet package HarfBuzzSharp.NativeAssets.Linux", e);
        }
        catch
        {
            tf.Dispose();
            throw;
        }
        return new FontFace(path, tf, hb);
    }

    private static bool IsMissingNative(Exception e) =>
        e is DllNotFoundException || e is TypeInitializationException { InnerException: DllNotFoundException };

    private SKFont Font => _font ?? throw new ObjectDisposedException(nameof(FontFace));
    private HbFont Hb => _hbFont ?? throw new ObjectDisposedException(nameof(FontFace));

    /// <summary>The current pixel size (em height), 0 before <see cref="SetPixelSize"/>.</summary>
    public int SizePx => _sizePx;

    public void SetPixelSize(int px)
    {
        if (px <= 0) throw new ArgumentOutOfRangeException(nameof(px), "pixel size must be positive");
        if (px == _sizePx) return;
        Font.Size = px;
        _sizePx = px;
        if (_cache.Count > MaxCached || _paths.Count > MaxCached) ClearCaches();
    }

    private void RequireSize()
    {
        if (_sizePx == 0) throw new InvalidOperationException("set a pixel size first");
    }

    /// <summary>Horizontal scale of every glyph and advance (1: as designed; below 1: a condensed cut of the face).</summary>
    public double WidthScale { get; private set; } = 1;

    /// <summary>Draws the face condensed or extended: outlines and advances scaled horizontally by <paramref name="scale"/> (0.25..4).</summary>
    public void SetWidthScale(double scale)
    {
        if (scale is < 0.25 or > 4 || double.IsNaN(scale)) throw new ArgumentOutOfRangeException(nameof(scale), "width scale must be 0.25..4");
        if (scale == WidthScale) return;
        Font.ScaleX = (float)scale;
        WidthScale = scale;
        ClearCaches(); // cached bitmaps and outlines are keyed by size only
    }

    /// <summary>Whether the face maps this Unicode code point to a glyph (other than .notdef).</summary>
    public bool HasChar(int codepoint) => Typeface.GetGlyph(codepoint) != 0;

    public LineMetrics Metrics
    {
        get
        {
            RequireSize();
            var m = Font.Metrics; // Ascent < 0 (above the baseline), Descent > 0
            return new LineMetrics((int)Math.Ceiling(-m.Ascent - 1e-4), (int)Math.Floor(-m.Descent + 1e-4),
                                   (int)Math.Round(m.Descent - m.Ascent + m.Leading));
        }
    }

    /// <summary>Horizontal advance of a glyph in pixels (linear, unhinted, as HarfBuzz uses it).</summary>
    public float Advance(ushort glyph)
    {
        RequireSize();
        return (float)(Hb.GetHorizontalGlyphAdvance(glyph) * (double)_sizePx / HbScale * WidthScale);
    }

    /// <summary>Renders a code point alone (no shaping) with its origin on a whole pixel.</summary>
    public GlyphBitmap Render(int codepoint)
    {
        RequireSize();
        ushort g = Typeface.GetGlyph(codepoint);
        return Rasterize(g, 0);
    }

    /// <summary>
    /// Shapes one line of text with HarfBuzz at the current size: kerning and the font's other default positioning
    /// apply. With <paramref name="ligatures"/> false the 'liga', 'clig', 'dlig' and 'hlig' features are off, so Latin
    /// text gets one glyph per character; with it true a ligature glyph becomes one cluster of several characters.
    /// </summary>
    public ShapedText Shape(string text, bool ligatures = false)
    {
        RequireSize();
        var buf = _buffer;
        buf.ClearContents();
        buf.AddUtf16(text);
        buf.GuessSegmentProperties();
        buf.ClusterLevel = ClusterLevel.MonotoneGraphemes;
        if (ligatures) Hb.Shape(buf);
        else Hb.Shape(buf, NoLigatures);

        var infos = buf.GetGlyphInfoSpan();
        var pos = buf.GetGlyphPositionSpan();
        double scale = (double)_sizePx / HbScale, scaleX = scale * WidthScale;
        var glyphs = new ShapedGlyph[infos.Length];
        long pen = 0, penY = 0; // integer HarfBuzz units, so the sum carries no float error
        var penAt = new long[infos.Length + 1];
        for (int i = 0; i < infos.Length; i++)
        {
            penAt[i] = pen;
            glyphs[i] = new ShapedGlyph((ushort)infos[i].Codepoint, (int)infos[i].Cluster, (float)((pen + pos[i].XOffset) * scaleX),
                                        (float)(-(penY + pos[i].YOffset) * scale), (float)(pos[i].XAdvance * scaleX));
            pen += pos[i].XAdvance;
            penY += pos[i].YAdvance;
        }
        penAt[infos.Length] = pen;

        // Consecutive glyphs with one cluster value form a cluster; its characters run to the next larger cluster value.
        var starts = glyphs.Select(g => g.Cluster).Distinct().Order().ToArray();
        var clusters = new List<TextCluster>();
        for (int i = 0; i < glyphs.Length;)
        {
            int j = i;
            while (j < glyphs.Length && glyphs[j].Cluster == glyphs[i].Cluster) j++;
            int start = glyphs[i].Cluster;
            int k = Array.BinarySearch(starts, start);
            int end = k + 1 < starts.Length ? starts[k + 1] : text.Length;
            clusters.Add(new TextCluster(start, end - start, text.Substring(start, end - start), i, j - i,
                                         (float)(penAt[i] * scaleX), (float)((penAt[j] - penAt[i]) * scaleX)));
            i = j;
        }
        return new ShapedText(text, _sizePx, glyphs, clusters.ToArray(), (float)(pen * scaleX));
    }

    private static readonly Feature[] NoLigatures =
        new[] { "liga", "clig", "dlig", "hlig" }.Select(t => new Feature(Tag.Parse(t), 0)).ToArray();

    /// <summary>
    /// Renders glyphs (usually one cluster's) into one coverage bitmap relative to an integer pen at x = 0 on the
    /// baseline: glyph g is drawn at (g.X + <paramref name="dx"/>, g.Y), x rounded to a quarter pixel, y to a whole one.
    /// Overlapping glyphs combine like ink over ink (1 − (1 − a)(1 − b)). AdvanceX is the glyphs' rounded total advance.
    /// </summary>
    public GlyphBitmap Render(ReadOnlySpan<ShapedGlyph> glyphs, float dx = 0)
    {
        RequireSize();
        float advance = 0;
        var parts = new List<(GlyphBitmap Bitmap, int X, int Y)>(glyphs.Length);
        foreach (var g in glyphs)
        {
            advance += g.Advance;
            double xq = Math.Round((g.X + dx) * SubpixelSteps, MidpointRounding.AwayFromZero) / SubpixelSteps;
            int ix = (int)Math.Floor(xq);
            int quarter = (int)Math.Round((xq - ix) * SubpixelSteps);
            int iy = (int)Math.Round(g.Y, MidpointRounding.AwayFromZero);
            var b = Rasterize(g.GlyphId, quarter);
            if (b.Width > 0) parts.Add((b, ix, iy));
        }
        int adv = (int)Math.Round(advance, MidpointRounding.AwayFromZero);
        if (parts.Count == 0) return new GlyphBitmap(0, 0, 0, 0, adv, []);
        if (parts.Count == 1)
        {
            var (b, x, y) = parts[0];
            return b with { Left = b.Left + x, Top = b.Top - y, AdvanceX = adv };
        }
        int left = parts.Min(p => p.Bitmap.Left + p.X), right = parts.Max(p => p.Bitmap.Left + p.X + p.Bitmap.Width);
        int top = parts.Max(p => p.Bitmap.Top - p.Y), bottom = parts.Min(p => p.Bitmap.Top - p.Y - p.Bitmap.Rows);
        int w = right - left, h = top - bottom;
        var cov = new byte[w * h];
        foreach (var (b, x, y) in parts)
        {
            int ox = b.Left + x - left, oy = top - (b.Top - y);
            for (int r = 0; r < b.Rows; r++)
                for (int c = 0; c < b.Width; c++)
                {
                    ref byte d = ref cov[(oy + r) * w + ox + c];
                    int s = b.Coverage[r * b.Width + c];
                    d = (byte)(d + s - (d * s + 127) / 255);
                }
        }
        return new GlyphBitmap(w, h, left, top, adv, cov);
    }

    /// <summary>A text blob of shaped glyphs at the current size, for drawing on any Skia canvas (e.g. anti-aliased overlays).</summary>
    public SKTextBlob? ToTextBlob(ShapedText text)
    {
        RequireSize();
        if (text.SizePx != _sizePx) throw new ArgumentException($"text was shaped at {text.SizePx} px, the face is at {_sizePx} px");
        if (text.Glyphs.Count == 0) return null;
        var ids = text.Glyphs.Select(g => g.GlyphId).ToArray();
        var points = text.Glyphs.Select(g => new SKPoint(g.X, g.Y)).ToArray();
        using var builder = new SKTextBlobBuilder();
        builder.AddPositionedRun(ids, Font, points);
        return builder.Build();
    }

    // One glyph at a quarter-pixel phase: its outline filled with anti-aliasing into an A8 bitmap, cropped to its ink;
    // cached per size. Outlines rather than Skia's text drawing: Skia's glyph masks get a gamma/contrast adjustment
    // that depends on the paint's luminance (black ink comes out thinner, white thicker; ~25% of the coverage at
    // 12 px) and cannot be switched off, whereas a filled path is plain area coverage, the same for any ink colour, as
    // FreeType's gray rendering was. The outlines are unhinted (the old FreeType path hinted them).
    private GlyphBitmap Rasterize(ushort glyph, int quarter)
    {
        if (_cache.TryGetValue((_sizePx, glyph, quarter), out var hit)) return hit;
        int adv = (int)Math.Round(Advance(glyph), MidpointRounding.AwayFromZero);
        if (!_paths.TryGetValue((_sizePx, glyph), out var path)) _paths[(_sizePx, glyph)] = path = Font.GetGlyphPath(glyph);
        GlyphBitmap result;
        var r = path?.Bounds ?? SKRect.Empty; // control-point bounds: they contain the outline
        if (path is null || path.IsEmpty || r.Width <= 0 || r.Height <= 0) result = new GlyphBitmap(0, 0, 0, 0, adv, []);
        else
        {
            // Anti-aliasing reaches at most one pixel past the outline; two more keep the crop check meaningful.
            const int pad = 2;
            int x0 = (int)Math.Floor(r.Left) - pad, y0 = (int)Math.Floor(r.Top) - pad;
            int w = (int)Math.Ceiling(r.Right) + pad + 1 - x0, h = (int)Math.Ceiling(r.Bottom) + pad - y0;
            using var bitmap = new SKBitmap(new SKImageInfo(w, h, SKColorType.Alpha8, SKAlphaType.Premul));
            using (var canvas = new SKCanvas(bitmap))
            {
                canvas.Clear(SKColors.Transparent);
                canvas.Translate(-x0 + (float)quarter / SubpixelSteps, -y0);
                canvas.DrawPath(path, _paint);
            }
            result = Crop(bitmap, x0, y0, adv);
        }
        _cache[(_sizePx, glyph, quarter)] = result;
        return result;
    }

    // Cuts the inked part out of an A8 bitmap whose pixel (0, 0) lies at (x0, y0) from the pen (y down).
    private static GlyphBitmap Crop(SKBitmap bitmap, int x0, int y0, int adv)
    {
        var px = bitmap.GetPixelSpan();
        int stride = bitmap.RowBytes, w = bitmap.Width, h = bitmap.Height;
        int c0 = w, c1 = -1, r0 = h, r1 = -1;
        for (int y = 0; y < h; y++)
        {
            var row = px.Slice(y * stride, w);
            int first = row.IndexOfAnyExcept((byte)0);
            if (first < 0) continue;
            int last = row.LastIndexOfAnyExcept((byte)0);
            if (y < r0) r0 = y;
            r1 = y;
            c0 = Math.Min(c0, first);
            c1 = Math.Max(c1, last);
        }
        if (r1 < 0) return new GlyphBitmap(0, 0, 0, 0, adv, []);
        if (r0 == 0 || c0 == 0 || r1 == h - 1 || c1 == w - 1)
            throw new InvalidOperationException("glyph ink reached the edge of its bitmap: Skia's glyph bounds were too small");
        int cw = c1 - c0 + 1, ch = r1 - r0 + 1;
        var cov = new byte[cw * ch];
        for (int y = 0; y < ch; y++)
            px.Slice((r0 + y) * stride + c0, cw).CopyTo(cov.AsSpan(y * cw, cw));
        return new GlyphBitmap(cw, ch, x0 + c0, -(y0 + r0), adv, cov);
    }

    public void Dispose()
    {
        _font?.Dispose();
        _font = null;
        _hbFont?.Dispose();
        _hbFont = null;
        _typeface?.Dispose();
        _typeface = null;
        _buffer.Dispose();
        _paint.Dispose();
        ClearCaches();
    }

    private void ClearCaches()
    {
        _cache.Clear();
        foreach (var p in _paths.Values) p?.Dispose();
        _paths.Clear();
    }
}
