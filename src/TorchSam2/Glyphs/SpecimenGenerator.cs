using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using TorchSam2.IO;

namespace TorchSam2.Glyphs;

public enum FontSplit { Train, HeldOut }

public enum FontKind { Serif, Sans, Mono, Display }

/// <summary>A registered font: a stable name, the file name searched for under the font folders, and its split.</summary>
public sealed record FontEntry(string Name, string FileName, FontKind Kind, FontSplit Split, string DebianPackage)
{
    /// <summary>The style band reports group by: "hairline", "hairline italic", "italic", "bold" or "regular" (from the face name).</summary>
    public string Style => FontRegistry.StyleOf(Name);

    /// <summary>Full path of the installed file, or null when the package is missing.</summary>
    public string? Path => FontRegistry.Locate(FileName);
}

/// <summary>
/// The fonts specimens are drawn from. TRAIN and HELD-OUT share no family: held-out fonts must never be
/// used to train or tune. Folders searched: TORCHSAM2_FONT_DIRS (':'-separated), /usr/share/fonts,
/// /usr/local/share/fonts, ~/.local/share/fonts.
/// </summary>
public static class FontRegistry
{
    public static IReadOnlyList<FontEntry> All { get; } =
    [
        // TRAIN: DejaVu, FreeFont (GNU), and three URW display/book faces.
        new("DejaVuSans", "DejaVuSans.ttf", FontKind.Sans, FontSplit.Train, "fonts-dejavu-core"),
        new("DejaVuSans-Bold", "DejaVuSans-Bold.ttf", FontKind.Sans, FontSplit.Train, "fonts-dejavu-core"),
        new("DejaVuSansCondensed-Oblique", "DejaVuSansCondensed-Oblique.ttf", FontKind.Sans, FontSplit.Train, "fonts-dejavu-extra"),
        new("DejaVuSerif", "DejaVuSerif.ttf", FontKind.Serif, FontSplit.Train, "fonts-dejavu-core"),
        new("DejaVuSerif-Italic", "DejaVuSerif-Italic.ttf", FontKind.Serif, FontSplit.Train, "fonts-dejavu-extra"),
        new("DejaVuSerif-Bold", "DejaVuSerif-Bold.ttf", FontKind.Serif, FontSplit.Train, "fonts-dejavu-core"),
        new("DejaVuSansMono", "DejaVuSansMono.ttf", FontKind.Mono, FontSplit.Train, "fonts-dejavu-core"),
        new("DejaVuSans-ExtraLight", "DejaVuSans-ExtraLight.ttf", FontKind.Display, FontSplit.Train, "fonts-dejavu-extra"),
        new("FreeSans", "FreeSans.ttf", FontKind.Sans, FontSplit.Train, "fonts-freefont-ttf"),
        new("FreeSansBold", "FreeSansBold.ttf", FontKind.Sans, FontSplit.Train, "fonts-freefont-ttf"),
        new("FreeSerif", "FreeSerif.ttf", FontKind.Serif, FontSplit.Train, "fonts-freefont-ttf"),
        new("FreeSerifItalic", "FreeSerifItalic.ttf", FontKind.Serif, FontSplit.Train, "fonts-freefont-ttf"),
        new("FreeMono", "FreeMono.ttf", FontKind.Mono, FontSplit.Train, "fonts-freefont-ttf"),
        new("FreeMonoBold", "FreeMonoBold.ttf", FontKind.Mono, FontSplit.Train, "fonts-freefont-ttf"),
        new("Z003-MediumItalic", "Z003-MediumItalic.otf", FontKind.Display, FontSplit.Train, "fonts-urw-base35"),
        new("URWBookman-Light", "URWBookman-Light.otf", FontKind.Display, FontSplit.Train, "fonts-urw-base35"),
        new("C059-Roman", "C059-Roman.otf", FontKind.Serif, FontSplit.Train, "fonts-urw-base35"),
        // TRAIN, hairline and italic faces: Roboto Thin, URW Century and Bookman italics, Nimbus Mono italic.
        new("Roboto-Thin", "Roboto-Thin.ttf", FontKind.Sans, FontSplit.Train, "fonts-roboto-unhinted"),
        new("Roboto-ThinItalic", "Roboto-ThinItalic.ttf", FontKind.Sans, FontSplit.Train, "fonts-roboto-unhinted"),
        new("Roboto-Italic", "Roboto-Italic.ttf", FontKind.Sans, FontSplit.Train, "fonts-roboto-unhinted"),
        new("C059-Italic", "C059-Italic.otf", FontKind.Serif, FontSplit.Train, "fonts-urw-base35"),
        new("URWBookman-LightItalic", "URWBookman-LightItalic.otf", FontKind.Display, FontSplit.Train, "fonts-urw-base35"),
        new("NimbusMonoPS-Italic", "NimbusMonoPS-Italic.otf", FontKind.Mono, FontSplit.Train, "fonts-urw-base35"),
        // HELD-OUT: Liberation, Palatino-like P052 and the geometric display face URW Gothic.
        new("LiberationSans-Regular", "LiberationSans-Regular.ttf", FontKind.Sans, FontSplit.HeldOut, "fonts-liberation"),
        new("LiberationSans-Bold", "LiberationSans-Bold.ttf", FontKind.Sans, FontSplit.HeldOut, "fonts-liberation"),
        new("LiberationSansNarrow-Regular", "LiberationSansNarrow-Regular.ttf", FontKind.Sans, FontSplit.HeldOut, "fonts-liberation"),
        new("LiberationSerif-Regular", "LiberationSerif-Regular.ttf", FontKind.Serif, FontSplit.HeldOut, "fonts-liberation"),
        new("LiberationSerif-Italic", "LiberationSerif-Italic.ttf", FontKind.Serif, FontSplit.HeldOut, "fonts-liberation"),
        new("LiberationMono-Regular", "LiberationMono-Regular.ttf", FontKind.Mono, FontSplit.HeldOut, "fonts-liberation"),
        new("P052-Roman", "P052-Roman.otf", FontKind.Serif, FontSplit.HeldOut, "fonts-urw-base35"),
        new("P052-Italic", "P052-Italic.otf", FontKind.Serif, FontSplit.HeldOut, "fonts-urw-base35"),
        new("URWGothic-Book", "URWGothic-Book.otf", FontKind.Display, FontSplit.HeldOut, "fonts-urw-base35"),
        new("URWGothic-Demi", "URWGothic-Demi.otf", FontKind.Display, FontSplit.HeldOut, "fonts-urw-base35"),
        // HELD-OUT, hairline and italic faces: Lato Hairline (upright and italic), Lato Italic, Nimbus Roman (Times) italic.
        new("Lato-Hairline", "Lato-Hairline.ttf", FontKind.Sans, FontSplit.HeldOut, "fonts-lato"),
        new("Lato-HairlineItalic", "Lato-HairlineItalic.ttf", FontKind.Sans, FontSplit.HeldOut, "fonts-lato"),
        new("Lato-Italic", "Lato-Italic.ttf", FontKind.Sans, FontSplit.HeldOut, "fonts-lato"),
        new("NimbusRoman-Italic", "NimbusRoman-Italic.otf", FontKind.Serif, FontSplit.HeldOut, "fonts-urw-base35"),
    ];

    private static readonly Lazy<Dictionary<string, string>> Files = new(Scan);

    public static IEnumerable<string> SearchDirs()
    {
        if (Environment.GetEnvironmentVariable("TORCHSAM2_FONT_DIRS") is { Length: > 0 } env)
            foreach (var d in env.Split(':', StringSplitOptions.RemoveEmptyEntries)) yield return d;
        yield return "/usr/share/fonts";
        yield return "/usr/local/share/fonts";
        yield return System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share", "fonts");
    }

    private static Dictionary<string, string> Scan()
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var dir in SearchDirs())
        {
            if (!Directory.Exists(dir)) continue;
            // Sorted so the first match is the same on every run.
            foreach (var f in Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
                map.TryAdd(System.IO.Path.GetFileName(f), f);
        }
        return map;
    }

    /// <summary>
    /// The style of a face from its name: hairline (Hairline, Thin, ExtraLight), italic (Italic, Oblique), both,
    /// bold (Bold, Demi, Black) or regular. Names not in the registry are classified the same way.
    /// </summary>
    public static string StyleOf(string fontName)
    {
        bool Has(params string[] words) => words.Any(w => fontName.Contains(w, StringComparison.OrdinalIgnoreCase));
        bool italic = Has("Italic", "Oblique") || fontName.StartsWith("Z003", StringComparison.Ordinal);
        bool hairline = Has("Hairline", "Thin", "ExtraLight");
        return (hairline, italic) switch
        {
            (true, true) => "hairline italic",
            (true, false) => "hairline",
            (false, true) => "italic",
            _ => Has("Bold", "Demi", "Black") ? "bold" : "regular",
        };
    }

    public static string? Locate(string fileName) => Files.Value.TryGetValue(fileName, out var p) ? p : null;

    public static FontEntry Get(string name) =>
        All.FirstOrDefault(f => string.Equals(f.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new KeyNotFoundException($"unknown font '{name}'; registered: {string.Join(", ", All.Select(f => f.Name))}");

    /// <summary>Installed fonts of a split (registry order). Throws when none is installed.</summary>
    public static IReadOnlyList<FontEntry> Available(FontSplit split)
    {
        var list = All.Where(f => f.Split == split && f.Path is not null).ToList();
        if (list.Count == 0)
        {
            var pkgs = string.Join(" ", All.Where(f => f.Split == split).Select(f => f.DebianPackage).Distinct());
            throw new FileNotFoundException($"no {split} font is installed; apt-get install {pkgs} (or run tools/setup.sh)");
        }
        return list;
    }

    /// <summary>Registered fonts of a split whose package is not installed.</summary>
    public static IReadOnlyList<FontEntry> Missing(FontSplit split) => All.Where(f => f.Split == split && f.Path is null).ToList();
}

public enum SpecimenLayout { Mixed, Lines, Grid }

/// <summary>How a specimen sheet looks. All randomness comes from the seed given to Generate.</summary>
public sealed record SpecimenOptions
{
    public int Width { get; init; } = 1024;
    public int Height { get; init; } = 1024;
    public FontSplit Split { get; init; } = FontSplit.Train;
    /// <summary>Registry names to use instead of the split's fonts.</summary>
    public IReadOnlyList<string>? Fonts { get; init; }
    public int MinSizePx { get; init; } = 8;
    public int MaxSizePx { get; init; } = 200;
    public SpecimenLayout Layout { get; init; } = SpecimenLayout.Mixed;
    /// <summary>Text for the lines; by default pangrams and random strings from <see cref="Charset"/>.</summary>
    public string? Text { get; init; }
    /// <summary>Characters for grids and random strings. Each one is a single glyph (spaces are skipped).</summary>
    public string Charset { get; init; } = DefaultCharset;
    /// <summary>A glyph's mask is its own coverage ≥ this (0..1].</summary>
    public double CoverageThreshold { get; init; } = 0.5;
    /// <summary>Chance of light ink on a dark background.</summary>
    public double InvertProbability { get; init; } = 0.1;
    /// <summary>Tint background and ink (per sheet) instead of near-black on near-white.</summary>
    public bool ColorJitter { get; init; } = true;
    /// <summary>Standard deviation of Gaussian pixel noise (0..255 scale); 0 = clean.</summary>
    public double NoiseStd { get; init; }
    /// <summary>Extra letter spacing, as a fraction of the size, drawn per line uniformly from [MinTracking, MaxTracking].</summary>
    public double MaxTracking { get; init; } = 0.12;
    /// <summary>Lowest letter spacing (fraction of the size); negative values set lines so tight that neighbours touch.</summary>
    public double MinTracking { get; init; }
    /// <summary>Space between lines as a fraction of the line height, drawn per line from [MinLineGap, MaxLineGap]; negative values make descenders meet the next line's ascenders.</summary>
    public double MinLineGap { get; init; }
    public double MaxLineGap { get; init; } = 0.4;
    /// <summary>Chance that a line is set from <see cref="CrowdedTexts"/> (kerned pairs, touching letter runs, ligatures) instead of pangrams and random strings.</summary>
    public double CrowdedTextProbability { get; init; }
    /// <summary>Chance of a scan-like Gaussian blur of the sheet, with sigma uniform in [0.3, MaxBlurSigma] px (the masks stay the unblurred coverage).</summary>
    public double BlurProbability { get; init; }
    public double MaxBlurSigma { get; init; } = 0.8;
    /// <summary>
    /// Lines are drawn with the face scaled horizontally by a factor uniform in [MinWidthScale, MaxWidthScale] (outlines
    /// and advances), a stand-in for the condensed and extended cuts a family may not have; 1 and 1 (the default) draw
    /// every face as designed and leave the random sequence, and so every sheet of a seed, as it was.
    /// </summary>
    public double MinWidthScale { get; init; } = 1;
    public double MaxWidthScale { get; init; } = 1;
    /// <summary>
    /// Let HarfBuzz form the font's standard ligatures ('liga', 'clig') in lines. Off by default, so every annotation
    /// is one character drawn by its own glyph (the per-character ground truth the glyph models train on); kerning
    /// and mark positioning apply either way. When on, a ligature is one annotation whose mask is the ligature glyph's
    /// and whose <see cref="GlyphAnnotation.Char"/> holds all its characters (e.g. "fi").
    /// </summary>
    public bool Ligatures { get; init; }
    public int Margin { get; init; } = 12;

    /// <summary>
    /// The held-out benchmark and training style of issue 15: lines only, 8–120 px, tracking from −0.06 to +0.10 of the size
    /// (on tight lines neighbours touch and italics overlap their neighbours' boxes), leading from −0.2 to +0.3 line heights, HarfBuzz
    /// ligatures (one annotation each, <see cref="GlyphAnnotation.IsLigature"/>), crowded texts on 40 % of the lines,
    /// light noise and, on a third of the sheets, a light blur.
    /// </summary>
    public static SpecimenOptions Crowded { get; } = new()
    {
        Layout = SpecimenLayout.Lines, MinSizePx = 8, MaxSizePx = 120, MinTracking = -0.06, MaxTracking = 0.1,
        MinLineGap = -0.2, MaxLineGap = 0.3, Ligatures = true, CrowdedTextProbability = 0.4, NoiseStd = 3, BlurProbability = 0.33,
    };

    /// <summary>
    /// <see cref="Crowded"/> set tighter still (tracking −0.10 to +0.06, leading −0.3 to +0.2): what the demo model's second
    /// stage trains on, harder than the benchmark.
    /// </summary>
    public static SpecimenOptions Tight { get; } = Crowded with { MinTracking = -0.1, MaxTracking = 0.06, MinLineGap = -0.3, MaxLineGap = 0.2 };

    /// <summary>Text that makes glyphs touch: kerned pairs, runs of narrow letters, ligature sequences, descender/ascender stacks.</summary>
    public static IReadOnlyList<string> CrowdedTexts { get; } =
    [
        "AVATAR To Ty Yo LT Wa VA Te P. Fe",
        "rnm vvw illi ABC minimum rhythm",
        "office fifl ffi ffl waffle affluent",
        "Tj fj gy jp qy Ag pq; fig flag",
        "AWAY LAYTON VOWYT ATTY Kw Yv",
        "mmnnuurr wwvv llIIii 11lI|",
        "kerning: Av Aw Ay Fa Fo Ko Pa Ta Tw Va Vo Wo Yo",
        "shuffle efflux fjord stiff rafts",
    ];

    public const string DefaultCharset =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789" +
        "ijijij.,;:!?&@#()/-'" + "ÀÉÈÊÎÏÔÖÜÇÑÅØÆàéèêëîïôöüçñåøæßÿ";
}

/// <summary>
/// One glyph on a sheet: its exact mask (coverage ≥ threshold), font, character and pixel size. Char is the text of
/// the glyph's shaping cluster: one character unless <see cref="SpecimenOptions.Ligatures"/> is on.
/// </summary>
public sealed record GlyphAnnotation(int Id, string Char, string Font, int SizePx, GlyphMask Mask)
{
    /// <summary>A ligature: one glyph drawn for several characters (fi, fl, ffi, ...), annotated as one instance.</summary>
    public bool IsLigature => IsLigatureText(Char);

    /// <summary>The text of a ligature: more than one user-perceived character (text element) in one glyph.</summary>
    public static bool IsLigatureText(string chars) => new StringInfo(chars).LengthInTextElements > 1;

    /// <summary>Tight (x, y, w, h).</summary>
    public (int x, int y, int w, int h) BBox => Mask.BBox;
    public long Area => Mask.Area;
}

/// <summary>
/// Renders text in real fonts into specimen sheets with exact per-glyph masks: lines are shaped by HarfBuzz (kerning,
/// mark positioning; see <see cref="SpecimenOptions.Ligatures"/>) and every glyph is rasterized alone by Skia into its
/// own coverage bitmap at its shaped position, so masks stay exact where glyphs touch or overlap; the sheet is the
/// composite of those bitmaps. The same options and seed always give the same sheet (for one SkiaSharp/HarfBuzzSharp build).
/// </summary>
public static class SpecimenGenerator
{
    private static readonly string[] Pangrams =
    [
        "The quick brown fox jumps over the lazy dog",
        "Sphinx of black quartz, judge my vow!",
        "Pack my box with five dozen liquor jugs.",
        "Hamburgefonstiv 0123456789",
        "Jived fox nymph grabs quick waltz",
        "Crème brûlée à la façon de Noël; ça va?",
        "Äpfel über Öl, Grüße aus Köln & Zürich",
        "Mijn lijf is jij; ijs & fjord",
        "Quizzical twins proved my hijack-bug fix (2024)",
        "Øresund Ærø Åland: æble, søster, år",
    ];

    /// <summary>Renders one sheet. Annotations are in drawing order, ids 1..N; glyphs never cross the sheet border.</summary>
    public static (RgbImage Sheet, List<GlyphAnnotation> Glyphs) Generate(SpecimenOptions options, int seed)
    {
        Validate(options);
        var rng = new Random(seed);
        var fonts = options.Fonts is { Count: > 0 } names
            ? names.Select(FontRegistry.Get).ToList()
            : FontRegistry.Available(options.Split).ToList();
        foreach (var f in fonts)
            if (f.Path is null) throw new FileNotFoundException($"font {f.Name} ({f.FileName}) is not installed: apt-get install {f.DebianPackage}");

        var faces = new Dictionary<string, FontFace>();
        FontFace Face(FontEntry f)
        {
            if (!faces.TryGetValue(f.Name, out var face)) faces[f.Name] = face = FontFace.Open(f.Path!);
            return face;
        }

        var canvas = new Canvas(options.Width, options.Height, options.CoverageThreshold);
        try
        {
            var layout = options.Layout == SpecimenLayout.Mixed ? (rng.NextDouble() < 0.6 ? SpecimenLayout.Lines : SpecimenLayout.Grid) : options.Layout;
            if (layout == SpecimenLayout.Lines) DrawLines(canvas, options, rng, fonts, Face);
            else DrawGrid(canvas, options, rng, fonts, Face);
        }
        finally
        {
            foreach (var face in faces.Values) face.Dispose();
        }

        var (bg, fg) = PickColors(options, rng);
        double blur = options.BlurProbability > 0 && rng.NextDouble() < options.BlurProbability ? 0.3 + rng.NextDouble() * (options.MaxBlurSigma - 0.3) : 0;
        var sheet = canvas.Paint(bg, fg, options.NoiseStd, blur, rng);
        return (sheet, canvas.Glyphs);
    }

    private static void Validate(SpecimenOptions o)
    {
        if (o.Width < 32 || o.Height < 32) throw new ArgumentException("sheets must be at least 32x32");
        if (o.MinSizePx < 4 || o.MaxSizePx < o.MinSizePx) throw new ArgumentException($"bad size range {o.MinSizePx}..{o.MaxSizePx} px");
        if (o.CoverageThreshold is <= 0 or > 1) throw new ArgumentException("coverage threshold must be in (0, 1]");
        if (string.IsNullOrWhiteSpace(o.Charset)) throw new ArgumentException("empty charset");
        if (o.MinTracking < -0.5 || o.MaxTracking > 2 || o.MinTracking > o.MaxTracking) throw new ArgumentException($"bad tracking range {o.MinTracking}..{o.MaxTracking} (−0.5..2 of the size)");
        if (o.MinLineGap < -0.6 || o.MaxLineGap > 4 || o.MinLineGap > o.MaxLineGap) throw new ArgumentException($"bad line gap range {o.MinLineGap}..{o.MaxLineGap} (−0.6..4 line heights)");
        if (o.NoiseStd is < 0 or > 255 || double.IsNaN(o.NoiseStd)) throw new ArgumentException("noise must be 0..255");
        if (o.BlurProbability is < 0 or > 1 || o.CrowdedTextProbability is < 0 or > 1 || o.MaxBlurSigma is < 0.3 or > 5)
            throw new ArgumentException("blur and crowded-text probabilities must be in [0, 1] and the blur sigma in [0.3, 5] px");
        if (!(o.MinWidthScale >= 0.25 && o.MaxWidthScale <= 4 && o.MinWidthScale <= o.MaxWidthScale)) throw new ArgumentException($"bad width scale range {o.MinWidthScale}..{o.MaxWidthScale} (0.25..4)");
    }

    // Log-uniform, so small sizes are as common per octave as large ones.
    private static int PickSize(Random rng, int min, int max)
    {
        if (max <= min) return min;
        double v = Math.Exp(Math.Log(min) + rng.NextDouble() * (Math.Log(max + 1) - Math.Log(min)));
        return Math.Clamp((int)v, min, max);
    }

    private static string RandomText(Random rng, SpecimenOptions o)
    {
        if (o.Text is { Length: > 0 } t) return t;
        if (o.CrowdedTextProbability > 0 && rng.NextDouble() < o.CrowdedTextProbability) return SpecimenOptions.CrowdedTexts[rng.Next(SpecimenOptions.CrowdedTexts.Count)];
        if (rng.NextDouble() < 0.5) return Pangrams[rng.Next(Pangrams.Length)];
        var sb = new StringBuilder();
        var chars = o.Charset.Where(c => !char.IsWhiteSpace(c)).ToArray();
        for (int i = 0; i < 60; i++) sb.Append(rng.NextDouble() < 0.15 ? ' ' : chars[rng.Next(chars.Length)]);
        return sb.ToString();
    }

    private static void DrawLines(Canvas canvas, SpecimenOptions o, Random rng, List<FontEntry> fonts, Func<FontEntry, FontFace> face)
    {
        int m = o.Margin;
        int y = m;
        int failures = 0;
        while (failures < 8)
        {
            int room = canvas.Height - m - y;
            int maxSize = Math.Min(o.MaxSizePx, (int)(room / 1.25));
            if (maxSize < o.MinSizePx) break;
            var font = fonts[rng.Next(fonts.Count)];
            int size = PickSize(rng, o.MinSizePx, maxSize);
            var f = face(font);
            f.SetPixelSize(size);
            var lm = f.Metrics;
            int lineH = Math.Max(lm.LineHeight, lm.Ascender - lm.Descender);
            if (y + lineH > canvas.Height - m) { failures++; continue; }
            int baseline = y + lm.Ascender;
            string text = RandomText(rng, o);
            double tracking = (o.MinTracking + rng.NextDouble() * (o.MaxTracking - o.MinTracking)) * size;
            f.SetWidthScale(o.MaxWidthScale > o.MinWidthScale ? o.MinWidthScale + rng.NextDouble() * (o.MaxWidthScale - o.MinWidthScale) : o.MinWidthScale);
            double pen = m + rng.Next(0, Math.Max(1, size / 2));
            int placed = 0;
            // The face's own space stands in for characters it lacks, so no .notdef box is ever drawn.
            var shaped = f.Shape(string.Concat(text.Select(c => char.IsWhiteSpace(c) || !f.HasChar(c) ? ' ' : c)), o.Ligatures);
            // Repeat the text until the line is full. Clusters (one per character unless ligatures are on) are placed at
            // their shaped, kerned positions plus the tracking accumulated before them; spaces get no tracking.
            bool full = false;
            for (int rep = 0; rep < 4 && !full; rep++)
            {
                if (rep > 0) pen += size * 0.5;
                double track = 0;
                foreach (var c in shaped.Clusters)
                {
                    if (string.IsNullOrWhiteSpace(c.Text)) continue;
                    double x = pen + c.X + track;
                    int ix = (int)Math.Floor(x);
                    // Drawn relative to the whole pixel ix; the cluster's glyphs keep their fractional shaped offsets.
                    var g = f.Render(shaped.GlyphsOf(c), (float)(x - ix - c.X));
                    if (ix + g.Left + g.Width > canvas.Width - m)
                    {
                        full = true;
                        break;
                    }
                    if (canvas.Place(g, ix, baseline, c.Text, font.Name, size)) placed++;
                    track += tracking;
                }
                pen += shaped.Width + track;
            }
            int gap = (int)Math.Round(lineH * (o.MinLineGap + rng.NextDouble() * (o.MaxLineGap - o.MinLineGap)));
            y += Math.Max(1, lineH + gap);
            if (placed == 0) failures++;
        }
    }

    private static void DrawGrid(Canvas canvas, SpecimenOptions o, Random rng, List<FontEntry> fonts, Func<FontEntry, FontFace> face)
    {
        int m = o.Margin;
        int maxSize = Math.Min(o.MaxSizePx, (int)(Math.Min(canvas.Width, canvas.Height) - 2 * m) / 2);
        if (maxSize < o.MinSizePx) maxSize = o.MinSizePx;
        int size = PickSize(rng, o.MinSizePx, maxSize);
        int cell = (int)Math.Ceiling(size * (1.35 + rng.NextDouble() * 0.4));
        int cols = Math.Max(1, (canvas.Width - 2 * m) / cell), rows = Math.Max(1, (canvas.Height - 2 * m) / cell);
        var chars = o.Charset.Where(c => !char.IsWhiteSpace(c)).ToArray();
        for (int r = 0; r < rows; r++)
        {
            var font = fonts[rng.Next(fonts.Count)];
            var f = face(font);
            f.SetPixelSize(size);
            f.SetWidthScale(1);
            var lm = f.Metrics;
            int top = m + r * cell;
            // Centre the ascender..descender band in the cell.
            int baseline = top + (cell - (lm.Ascender - lm.Descender)) / 2 + lm.Ascender;
            for (int col = 0; col < cols; col++)
            {
                char c = chars[rng.Next(chars.Length)];
                if (!f.HasChar(c)) continue;
                var g = f.Render(c);
                int x = m + col * cell + (cell - g.Width) / 2 - g.Left;
                canvas.Place(g, x, baseline, c.ToString(), font.Name, size);
            }
        }
    }

    private static (double[] bg, double[] fg) PickColors(SpecimenOptions o, Random rng)
    {
        double light = 215 + rng.NextDouble() * 40, dark = rng.NextDouble() * 70;
        double[] bg = [light, light, light], fg = [dark, dark, dark];
        if (o.ColorJitter)
            for (int k = 0; k < 3; k++)
            {
                bg[k] = Math.Clamp(bg[k] + (rng.NextDouble() - 0.5) * 30, 0, 255);
                fg[k] = Math.Clamp(fg[k] + (rng.NextDouble() - 0.5) * 60, 0, 255);
            }
        return rng.NextDouble() < o.InvertProbability ? (fg, bg) : (bg, fg);
    }

    /// <summary>
    /// Writes count sheets as images/NNNNNN.png plus annotations.json (COCO instances, RLE masks,
    /// attributes font/char/size_px). Sheet i uses a seed mixed from (seed, i), so any sheet can be
    /// regenerated alone. Returns the dataset that was written.
    /// </summary>
    public static GlyphCoco WriteDataset(string dir, int count, FontSplit split, int seed, SpecimenOptions? options = null, IProgress<int>? progress = null)
    {
        if (count <= 0) throw new ArgumentException("count must be positive");
        var opts = (options ?? new SpecimenOptions()) with { Split = split };
        var imagesDir = Path.Combine(dir, "images");
        Directory.CreateDirectory(imagesDir);
        var coco = new GlyphCoco
        {
            Info = new JsonObject
            {
                ["description"] = "TorchSam2 glyph specimens",
                ["split"] = split.ToString().ToLowerInvariant(),
                ["seed"] = seed,
                ["fonts"] = new JsonArray(FontRegistry.Available(split).Select(f => (JsonNode)f.Name).ToArray()),
                ["coverage_threshold"] = opts.CoverageThreshold,
                ["date_created"] = "",
            },
        };
        int annId = 1;
        for (int i = 0; i < count; i++)
        {
            var (sheet, glyphs) = Generate(opts, SheetSeed(seed, i));
            string file = $"{i:D6}.png";
            sheet.Save(Path.Combine(imagesDir, file));
            coco.Images.Add(new CocoImage(i + 1, file, sheet.Width, sheet.Height));
            foreach (var g in glyphs)
                coco.Annotations.Add(new CocoGlyph(annId++, i + 1, g.Mask.ToRle(sheet.Height, sheet.Width), null, g.Font, g.Char, g.SizePx));
            progress?.Report(i + 1);
        }
        coco.Save(Path.Combine(dir, "annotations.json"));
        return coco;
    }

    /// <summary>The seed of sheet <paramref name="index"/> of a dataset written with <paramref name="seed"/> (splitmix64).</summary>
    public static int SheetSeed(int seed, int index)
    {
        ulong z = unchecked((ulong)(uint)seed * 0x9E3779B97F4A7C15UL + (ulong)index + 1);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        z ^= z >> 31;
        return (int)(z & 0x7FFFFFFF);
    }

    // Accumulates glyph coverage and the per-glyph masks.
    private sealed class Canvas(int width, int height, double threshold)
    {
        public int Width { get; } = width;
        public int Height { get; } = height;
        private readonly float[] _alpha = new float[width * height];
        private readonly int _minCoverage = (int)Math.Ceiling(threshold * 255 - 1e-9);
        public List<GlyphAnnotation> Glyphs { get; } = new();

        /// <summary>Draws the glyph with its pen at (penX, baseline) if it fits and has a non-empty mask.</summary>
        public bool Place(GlyphBitmap g, int penX, int baseline, string ch, string font, int size)
        {
            int x0 = penX + g.Left, y0 = baseline - g.Top;
            if (g.Width == 0 || g.Rows == 0 || x0 < 0 || y0 < 0 || x0 + g.Width > Width || y0 + g.Rows > Height) return false;
            var bits = new bool[g.Width * g.Rows];
            bool any = false;
            for (int i = 0; i < bits.Length; i++)
                if (g.Coverage[i] >= _minCoverage) any = bits[i] = true;
            // A glyph too faint to have a mask is not drawn at all, so every drawn stroke is annotated.
            if (!any) return false;
            for (int r = 0; r < g.Rows; r++)
                for (int c = 0; c < g.Width; c++)
                {
                    float a = g.Coverage[r * g.Width + c] / 255f;
                    if (a <= 0) continue;
                    ref float dst = ref _alpha[(y0 + r) * Width + x0 + c];
                    dst = 1 - (1 - dst) * (1 - a);
                }
            Glyphs.Add(new GlyphAnnotation(Glyphs.Count + 1, ch, font, size, new GlyphMask(x0, y0, g.Width, g.Rows, bits).Tight()));
            return true;
        }

        public RgbImage Paint(double[] bg, double[] fg, double noiseStd, double blurSigma, Random rng)
        {
            var px = new byte[Width * Height * 3];
            var alpha = blurSigma > 0 ? Blur(_alpha, Width, Height, blurSigma) : _alpha;
            for (int i = 0; i < alpha.Length; i++)
            {
                double a = alpha[i];
                for (int k = 0; k < 3; k++)
                {
                    double v = bg[k] * (1 - a) + fg[k] * a;
                    if (noiseStd > 0) v += noiseStd * Gaussian(rng);
                    px[i * 3 + k] = (byte)Math.Clamp(Math.Round(v), 0, 255);
                }
            }
            return new RgbImage(px, Height, Width);
        }

        // A scan's softness: a Gaussian blur of the coverage, before colour and noise (the blur InkCoverage undoes).
        private static float[] Blur(float[] alpha, int w, int h, double sigma)
        {
            var result = new float[alpha.Length];
            InkCoverage.Blur(alpha, result, h, w, sigma);
            return result;
        }

        private static double Gaussian(Random rng)
        {
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
            return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
        }
    }
}
