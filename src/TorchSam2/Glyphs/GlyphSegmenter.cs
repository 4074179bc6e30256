using TorchSam2.IO;
using TorchSharp;
using static TorchSharp.torch;
using TorchSharp.Modules;
using TorchSam2.Utils;

namespace TorchSam2.Glyphs;

/// <summary>Ink of a sheet: pixels whose estimated ink coverage is at least <see cref="InkCoverage.InkLevel"/> (<see cref="GlyphSegmenter.FindInk"/>).</summary>
/// <param name="Ink">row-major H×W</param>
/// <param name="DarkInk">true when ink is darker than the background (the background is the majority class)</param>
/// <param name="Background">mean RGB of the background pixels</param>
/// <param name="Darkness">per pixel, 0 at the background's mean luma and 1 at the ink's, with the sheet's blur undone (null when the sheet has no contrast)</param>
/// <param name="BlurSigma">the scan blur undone, in pixels (0: the sheet is sharp)</param>
public sealed record InkMap(int Height, int Width, bool[] Ink, bool DarkInk, byte[] Background, float[]? Darkness = null, double BlurSigma = 0);

/// <summary>A glyph candidate: connected ink components grouped into one character. Box is inclusive (x0, y0, x1, y1).</summary>
public sealed record GlyphCandidate(int Id, int X0, int Y0, int X1, int Y1, int[] Components, long Area)
{
    public int W => X1 - X0 + 1;
    public int H => Y1 - Y0 + 1;
}

/// <summary>The prompt a glyph came from, in sheet pixels: a click (x, y) or a box (x0, y0, x1, y1).</summary>
public sealed record GlyphPrompt(float[]? Point, float[]? Box);

/// <summary>
/// One segmented glyph: its mask (in sheet coordinates), box (x0, y0, x1, y1, exclusive ends), SAM's predicted IoU,
/// the candidate (ink components) it came from, the prompt that stands for it, and whether its candidate was split
/// into several glyphs (letters that touch).
/// </summary>
public sealed record GlyphResult(int Id, GlyphMask Mask, float[] Box, float Score, GlyphCandidate Candidate, GlyphPrompt? Prompt = null, bool Split = false)
{
    public Rle ToRle(int imageHeight, int imageWidth) => Mask.ToRle(imageHeight, imageWidth);
}

/// <summary>How <see cref="GlyphSegmenter"/> cuts a candidate (ink component group) into glyphs.</summary>
public enum GlyphSplitMethod
{
    /// <summary>
    /// Letters that touch usually touch through lighter, anti-aliased pixels: the candidate's darkest ink (its stroke
    /// cores) falls apart into one piece per letter, and the ink is shared out among the cores along the strokes. Each
    /// glyph is clicked once, at its core's deepest pixel, for the model's score.
    /// </summary>
    Cores,
    /// <summary>Clicks on a grid over the candidate, the model's masks clustered by mutual containment and votes.</summary>
    Clicks,
    /// <summary>
    /// A learned glyph-centre step (<see cref="GlyphCentreNet"/>): every ink pixel of the sheet votes for the centre of
    /// its glyph and joins the nearest predicted centre, so touching letters part and an i keeps its dot, without the
    /// component grouping's rules. Each glyph is clicked once, at its deepest ink pixel, for the model's score.
    /// </summary>
    Centres,
}

public sealed record GlyphSegmenterOptions
{
    /// <summary>Snap SAM's masks to the ink at full resolution (keeps hairlines SAM's 4× low-res decoder loses).</summary>
    public bool Refine { get; init; } = true;
    /// <summary>
    /// With refinement, keep every ink component of the candidate whole. Off: (SAM mask grown) ∧ ink, plus
    /// only the candidate's components SAM did not touch at all.
    /// </summary>
    public bool SnapComponents { get; init; } = true;
    /// <summary>Pixels SAM's mask is grown by before it is intersected with the ink.</summary>
    public int RefineDilation { get; init; } = 2;
    /// <summary>Pixels added around each candidate box for the box prompt.</summary>
    public int BoxPadding { get; init; } = 2;
    /// <summary>A crop is sized so its glyph spans about this fraction of it (and so of the model input).</summary>
    public double TargetGlyphFraction { get; init; } = 0.25;
    /// <summary>Crops are at least model size / this, so tiny glyphs are magnified at most this much.</summary>
    public double MaxMagnification { get; init; } = 8;
    /// <summary>Boxes per mask-decoder call.</summary>
    public int MaxBoxesPerBatch { get; init; } = 64;
    /// <summary>Candidates with less ink than this are noise; with <see cref="GlyphSplitMethod.Centres"/>, only where they touch a larger glyph (<see cref="GlyphCentres.Glyphs"/>).</summary>
    public int MinGlyphArea { get; init; } = 3;
    /// <summary>
    /// Most glyph candidates on one sheet (<see cref="Limits.MaxGlyphCandidates"/>, 20,000 by default); a sheet with
    /// more, or with more than four times as many separate ink components, is refused before any work is done (a sheet
    /// of 65k specks would otherwise run for hours).
    /// </summary>
    public int MaxCandidates { get; init; } = Limits.MaxGlyphCandidates;

    /// <summary>
    /// Split candidates into glyphs (letters that touch are one ink component) by <see cref="SplitMethod"/>, every
    /// glyph with a click prompt and the model's score (<see cref="GlyphInstances.Split"/>). Needs <see cref="Refine"/>;
    /// off, each candidate is one glyph from a box prompt.
    /// </summary>
    public bool SplitTouching { get; init; } = true;
    /// <summary>How the ink is cut into glyphs (<see cref="GlyphSplitMethod"/>): the learned glyph-centre net by default, as measured best.</summary>
    public GlyphSplitMethod SplitMethod { get; init; } = GlyphSplitMethod.Centres;
    /// <summary>With <see cref="GlyphSplitMethod.Cores"/>: a core is ink at least this far from the background's colour to the ink's (0..1].</summary>
    public double CoreLevel { get; init; } = 0.5;
    /// <summary>Click spacing as a fraction of the candidate's height (and so of the glyph size).</summary>
    public double ClickSpacing { get; init; } = 0.3;
    /// <summary>
    /// Candidates narrower than this × their height are taken as one glyph (one click, for its score): on a crowded
    /// sheet in the training fonts, the demo model's clicks broke single letters more often than they found touching
    /// pairs below 1.3 (mean glyph IoU 0.563 at 0.8, 0.592 at 1.0, 0.610 at 1.3, 0.593 never splitting).
    /// </summary>
    public double MinSplitAspect { get; init; } = 1.3;
    /// <summary>Most clicks per candidate (a long run of touching letters gets a wider spacing).</summary>
    public int MaxClicksPerCandidate { get; init; } = 96;
    /// <summary>The candidate's height spans about this fraction of a click window.</summary>
    public double ClickWindowFraction { get; init; } = 0.3;
    /// <summary>Glyphs of a split smaller than this fraction of the candidate's ink are given back to their neighbours.</summary>
    public double MinSplitFraction { get; init; } = 0.02;
    /// <summary>With <see cref="GlyphSplitMethod.Centres"/>: the centre net (null: the weights embedded in the library).</summary>
    public GlyphCentreNet? CentreNet { get; init; }
    /// <summary>With <see cref="GlyphSplitMethod.Centres"/>: a heatmap peak at least this high is a glyph centre.</summary>
    public double CentreThreshold { get; init; } = 0.2;
    /// <summary>
    /// With <see cref="GlyphSplitMethod.Centres"/>: the glyph pixels are the net's foreground (when it has one) instead of
    /// the ink (<see cref="GlyphSegmenter.FindInk"/>). Off: the foreground head (as of the net's third sitting) scored
    /// fgIoU 0.916 on held-out crowded sheet 1, where Otsu's ink scored 0.964 and the coverage ink scores 0.979.
    /// </summary>
    public bool CentreForeground { get; init; }
    /// <summary>
    /// With <see cref="GlyphSplitMethod.Centres"/>: glyphs at most <see cref="CentreZoomMaxHeight"/> px tall are read a
    /// second time with the sheet enlarged this many times (<see cref="GlyphCentres.ReadSmallTextAgain"/>); 1, the
    /// default, reads once. 1.5 parts small condensed text (held-out crowded sheets, pooled, the embedded net: recall@0.5
    /// 0.932 → 0.934, glyph IoU the same 0.871) but cuts ligatures and small italics into letters more often than it joins
    /// (precision 0.924 → 0.846), so it is an option, not the default.
    /// </summary>
    public double CentreZoom { get; init; } = 1;
    /// <summary>With <see cref="CentreZoom"/>: the tallest glyph (px, as first read) read again.</summary>
    public int CentreZoomMaxHeight { get; init; } = 16;
}

/// <summary>
/// Segments every glyph of a specimen sheet: finds candidates from the ink, then prompts SAM with each
/// candidate's box on a square crop around it (encoded at the model's full resolution, so small glyphs are
/// magnified), batching all candidates that fit one crop into one decoder call.
/// </summary>
public sealed class GlyphSegmenter(Sam2ImagePredictor predictor, GlyphSegmenterOptions? options = null)
{
    public GlyphSegmenterOptions Options { get; } = options ?? new GlyphSegmenterOptions();
    public Sam2ImagePredictor Predictor { get; } = predictor;

    /// <summary>Crops encoded by the last Segment call.</summary>
    public int LastCropCount { get; private set; }

    /// <summary>Where the last instance Segment call spent its time (ms): crop encoding, decoding and reading the clicks' masks, clustering.</summary>
    public (double Encode, double Decode, double Cluster, int Clicks) LastTimings { get; private set; }

    /// <summary>The scan blur (Gaussian sigma, px) the last Segment call estimated and undid; 0 for a sharp sheet.</summary>
    public double LastBlurSigma { get; private set; }

    /// <summary>Sheet pixels the last Segment call read a second time, magnified (<see cref="GlyphSegmenterOptions.CentreZoom"/>).</summary>
    public long LastZoomedPixels { get; private set; }

    /// <summary>Candidates split into several glyphs by the last Segment call.</summary>
    public int LastSplitCount { get; private set; }

    /// <summary>Segments all glyphs. Progress reports percent done (0..100).</summary>
    public List<GlyphResult> Segment(RgbImage sheet, IProgress<int>? progress = null)
    {
        LastSplitCount = 0;
        if (!Options.Refine || !Options.SplitTouching) return SegmentCandidates(sheet, progress);
        return Options.SplitMethod == GlyphSplitMethod.Centres ? SegmentCentres(sheet, progress) : SegmentInstances(sheet, progress);
    }

    // The ink (its blur noted) and its component labels, refused past the component limit.
    private (InkMap Ink, int[] Labels, List<Component> Components) SheetInk(RgbImage sheet)
    {
        var ink = FindInk(sheet);
        LastBlurSigma = ink.BlurSigma;
        var (labels, comps) = Components(ink);
        CheckComponentCount(comps.Count, Options.MaxCandidates);
        return (ink, labels, comps);
    }

    // The ink, its component labels, the candidates (refused past the limits) and each component's candidate (−1: none).
    private (InkMap Ink, int[] Labels, List<GlyphCandidate> Candidates, int[] Owner) Prepare(RgbImage sheet)
    {
        var (ink, labels, comps) = SheetInk(sheet);
        var cands = GroupCandidates(comps, Options.MinGlyphArea);
        CheckCandidateCount(cands.Count, Options.MaxCandidates);
        var owner = new int[comps.Count + 1];
        Array.Fill(owner, -1);
        foreach (var c in cands) foreach (var l in c.Components) owner[l] = c.Id;
        return (ink, labels, cands, owner);
    }

    // One glyph per candidate, from a box prompt around it.
    private List<GlyphResult> SegmentCandidates(RgbImage sheet, IProgress<int>? progress)
    {
        var o = Options;
        var (ink, labels, cands, owner) = Prepare(sheet);
        int h = sheet.Height, w = sheet.Width;

        progress?.Report(0);
        var results = new GlyphResult?[cands.Count];
        var crops = PlanCrops(cands, h, w, (int)Predictor.Model.image_size);
        LastCropCount = crops.Count;
        int done = 0;
        foreach (var (cx, cy, side, members) in crops)
        {
            var crop = Crop(sheet, cx, cy, side, ink.Background);
            Predictor.SetImage(crop);
            for (int start = 0; start < members.Count; start += o.MaxBoxesPerBatch)
            {
                var batch = members.Skip(start).Take(o.MaxBoxesPerBatch).ToList();
                var boxes = batch.Select(c => new[]
                {
                    Math.Clamp(c.X0 - o.BoxPadding - cx, 0f, side), Math.Clamp(c.Y0 - o.BoxPadding - cy, 0f, side),
                    Math.Clamp(c.X1 + 1 + o.BoxPadding - cx, 0f, side), Math.Clamp(c.Y1 + 1 + o.BoxPadding - cy, 0f, side),
                }).ToArray();
                bool[] masks;
                float[] scores;
                using (var pred = Predictor.PredictBoxes(boxes, multimaskOutput: false))
                {
                    using var m = pred.Masks.to(ScalarType.Bool, CPU).contiguous();
                    masks = m.ToArray<bool>();
                    using var s = pred.IouPredictions.to(ScalarType.Float32, CPU).contiguous();
                    scores = s.ToArray<float>();
                }
                for (int b = 0; b < batch.Count; b++)
                {
                    var c = batch[b];
                    var mask = Finish(c, masks.AsSpan(b * side * side, side * side), cx, cy, side, ink, labels, owner);
                    var (bx, by, bw, bh) = mask.BBox;
                    float[] box = bw > 0 ? [bx, by, bx + bw, by + bh] : [c.X0, c.Y0, c.X1 + 1, c.Y1 + 1];
                    results[c.Id] = new GlyphResult(c.Id, mask, box, scores[b], c, new GlyphPrompt(null, boxes[b].Select((v, k) => v + (k % 2 == 0 ? cx : cy)).ToArray()));
                }
                done += batch.Count;
                progress?.Report(cands.Count == 0 ? 100 : done * 100 / cands.Count);
            }
        }
        Predictor.ResetPredictor();
        progress?.Report(100);
        var list = results.Select(r => r!).ToList();
        if (o.Refine) AttachSpecks(list, ink);
        return list;
    }

    // Clicks inside every candidate, encoded in windows sized by the candidate's height; each candidate's clicks are
    // clustered into its glyphs (GlyphInstances.Split).
    private List<GlyphResult> SegmentInstances(RgbImage sheet, IProgress<int>? progress)
    {
        var o = Options;
        var (ink, labels, cands, owner) = Prepare(sheet);
        int h = sheet.Height, w = sheet.Width;
        progress?.Report(0);

        // The candidate's own ink over its box.
        var own = new bool[cands.Count][];
        var clicks = new List<GlyphClick>();
        var cores = new List<ClickMask>?[cands.Count];
        foreach (var c in cands)
        {
            var m = new bool[c.W * c.H];
            for (int y = c.Y0; y <= c.Y1; y++)
                for (int x = c.X0; x <= c.X1; x++)
                    if (labels[y * w + x] is var l && l > 0 && owner[l] == c.Id) m[(y - c.Y0) * c.W + (x - c.X0)] = true;
            own[c.Id] = m;
            int side = ClickSide(c, h, w);
            if (o.SplitMethod == GlyphSplitMethod.Cores && ink.Darkness is { } dark)
            {
                var core = new bool[m.Length];
                for (int y = c.Y0; y <= c.Y1; y++)
                    for (int x = c.X0; x <= c.X1; x++)
                    {
                        int j = (y - c.Y0) * c.W + (x - c.X0);
                        core[j] = m[j] && dark[y * w + x] >= o.CoreLevel;
                    }
                // specks of dark ink (under 3 % of the candidate) are not letters
                var found = GlyphInstances.Cores(c, core, Math.Max(2, (int)(0.03 * c.Area)));
                // Cores of separate components are seeds too: on crowded sheets the grouping's "dot or accent above
                // its letter" rule also joins small letters of the line below, and cutting those apart is most of the
                // gain. The cost: an i's dot or an accent with a core of its own becomes a glyph of its own.
                if (found.Count >= 2)
                {
                    cores[c.Id] = found;
                    foreach (var k in found) clicks.Add(k.Click with { Side = side });
                    continue;
                }
            }
            // one click (for the glyph's score) on candidates that stay whole: narrow ones, or one core
            int maxClicks = o.SplitMethod == GlyphSplitMethod.Cores || c.W < o.MinSplitAspect * c.H ? 1 : o.MaxClicksPerCandidate;
            foreach (var (x, y) in GlyphInstances.SampleClicks(c, m, Math.Max(1, o.ClickSpacing * c.H), maxClicks))
                clicks.Add(new GlyphClick(c.Id, x, y, side));
        }

        var (answers, encode, decode) = AskClicks(sheet, ink, cands, clicks, own, progress);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var results = new List<GlyphResult>();
        foreach (var c in cands)
        {
            // With cores, each core is one click whose "mask" is the core itself; the model's answer gives its score.
            var votes = cores[c.Id] is { } cs
                ? cs.Select(k => k with { Score = answers[c.Id].FirstOrDefault(a => a.Click.X == k.Click.X && a.Click.Y == k.Click.Y)?.Score ?? float.NaN }).ToList()
                : answers[c.Id];
            var glyphs = GlyphInstances.Split(c, own[c.Id], votes, Math.Max(o.MinGlyphArea, (int)Math.Ceiling(o.MinSplitFraction * c.Area)));
            if (glyphs.Count > 1) LastSplitCount++;
            foreach (var g in glyphs.OrderBy(g => FirstColumn(g.Bits, c.W)))
            {
                var mask = new GlyphMask(c.X0, c.Y0, c.W, c.H, g.Bits).Tight();
                var (bx, by, bw, bh) = mask.BBox;
                var click = g.Seed.Click;
                results.Add(new GlyphResult(results.Count, mask, [bx, by, bx + bw, by + bh], g.Seed.Score, c,
                                            new GlyphPrompt([click.X + 0.5f, click.Y + 0.5f], null), glyphs.Count > 1));
            }
        }
        AttachSpecks(results, ink);
        LastTimings = (encode, decode, sw.Elapsed.TotalMilliseconds, clicks.Count);
        progress?.Report(100);
        return results;
    }

    // The embedded weights, loaded once per process and shared (inference only: nothing in the net changes).
    private static readonly Lazy<GlyphCentreNet> EmbeddedCentreNet = new(GlyphCentreNet.Embedded);

    /// <summary>The centre net in use: <see cref="GlyphSegmenterOptions.CentreNet"/>, else the embedded weights.</summary>
    public GlyphCentreNet CentreNet => Options.CentreNet ?? EmbeddedCentreNet.Value;

    // Glyphs from the centre net's votes: every ink pixel joins the centre its offset points to; each glyph is one
    // candidate with one click (for the model's score) at its deepest pixel.
    private List<GlyphResult> SegmentCentres(RgbImage sheet, IProgress<int>? progress)
    {
        var o = Options;
        // fail closed: NaN passes neither comparison
        if (!(o.CentreZoom >= 1 && o.CentreZoom <= 2)) throw new ArgumentOutOfRangeException(nameof(o.CentreZoom), o.CentreZoom, "the centre zoom must be 1..2");
        if (o.CentreZoomMaxHeight is < 1 or > 1024) throw new ArgumentOutOfRangeException(nameof(o.CentreZoomMaxHeight), o.CentreZoomMaxHeight, "the centre zoom's glyph height must be 1..1024 px");
        int h = sheet.Height, w = sheet.Width;
        progress?.Report(0);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var (ink, labels, comps) = SheetInk(sheet);
        LastZoomedPixels = 0;
        var input = GlyphCentres.Input(ink);
        var (heat, dx, dy, fg) = GlyphCentres.Predict(CentreNet, input, h, w);
        if (!o.CentreForeground) fg = null;
        if (o.CentreZoom > 1)
            LastZoomedPixels = GlyphCentres.ReadSmallTextAgain(CentreNet, input, h, w, fg ?? ink.Ink, (float)o.CentreThreshold, o.CentreZoom, o.CentreZoomMaxHeight, heat, dx, dy, fg);
        // the net's foreground, when asked for, replaces the ink
        if (fg is not null)
        {
            ink = ink with { Ink = fg };
            (labels, comps) = Components(ink);
            CheckComponentCount(comps.Count, o.MaxCandidates);
        }
        var peaks = GlyphCentres.Peaks(heat, h, w, (float)o.CentreThreshold);
        CheckCandidateCount(peaks.Count, o.MaxCandidates);
        var label = GlyphCentres.Assign(ink.Ink, dx, dy, h, w, peaks, heat);
        double centres = sw.Elapsed.TotalMilliseconds;

        // one candidate per centre that gathered ink; a centre with less than the area limit that touches a larger
        // glyph gives its ink back to it (AttachSpecks), one standing alone is a glyph (GlyphCentres.Glyphs)
        var boxes = GlyphCentres.Boxes(label, w);
        var glyphLabels = GlyphCentres.Glyphs(label, w, h, boxes, o.MinGlyphArea);
        var cands = new List<GlyphCandidate>();
        var candOf = new Dictionary<int, int>();
        foreach (var (l, b) in boxes.OrderBy(kv => kv.Value.Y0).ThenBy(kv => kv.Value.X0))
        {
            if (!glyphLabels.Contains(l)) continue;
            candOf[l] = cands.Count;
            cands.Add(new GlyphCandidate(cands.Count, b.X0, b.Y0, b.X1, b.Y1, [], b.Area));
        }
        var own = cands.Select(c => new bool[c.W * c.H]).ToArray();
        for (int i = 0; i < h * w; i++)
            if (label[i] >= 0 && candOf.TryGetValue(label[i], out int ci))
            {
                var c = cands[ci];
                own[ci][(i / w - c.Y0) * c.W + (i % w - c.X0)] = true;
            }
        var clicks = new List<GlyphClick>();
        foreach (var c in cands)
            foreach (var (x, y) in GlyphInstances.SampleClicks(c, own[c.Id], Math.Max(c.W, c.H), 1))
                clicks.Add(new GlyphClick(c.Id, x, y, ClickSide(c, h, w)));

        var (answers, encode, decode) = AskClicks(sheet, ink, cands, clicks, own, progress);
        sw.Restart();
        var results = new List<GlyphResult>();
        foreach (var c in cands)
        {
            var mask = new GlyphMask(c.X0, c.Y0, c.W, c.H, own[c.Id]).Tight();
            var (bx, by, bw, bh) = mask.BBox;
            var a = answers[c.Id].FirstOrDefault();
            var click = a?.Click ?? new GlyphClick(c.Id, bx, by, 0);
            // a glyph is "split" when its ink shares a component with another glyph's
            results.Add(new GlyphResult(results.Count, mask, [bx, by, bx + bw, by + bh], a?.Score ?? float.NaN, c,
                                        new GlyphPrompt([click.X + 0.5f, click.Y + 0.5f], null)));
        }
        MarkShared(results, labels, w);
        AttachSpecks(results, ink);
        LastTimings = (encode + centres, decode, sw.Elapsed.TotalMilliseconds, clicks.Count);
        progress?.Report(100);
        return results;
    }

    // Split = the glyph's ink component also holds another glyph's ink (the letters touch).
    private void MarkShared(List<GlyphResult> results, int[] labels, int w)
    {
        var first = new Dictionary<int, int>();
        var shared = new HashSet<int>();
        for (int k = 0; k < results.Count; k++)
        {
            var m = results[k].Mask;
            foreach (var l in Enumerable.Range(0, m.Height).SelectMany(y => Enumerable.Range(0, m.Width).Where(x => m.Bits[y * m.Width + x]).Select(x => labels[(m.Y + y) * w + m.X + x])).Distinct())
            {
                if (l <= 0) continue;
                if (first.TryGetValue(l, out int other) && other != k) { shared.Add(k); shared.Add(other); }
                else first[l] = k;
            }
        }
        foreach (int k in shared) results[k] = results[k] with { Split = true };
        LastSplitCount = shared.Count;
    }

    // The side of the window a candidate's clicks are decoded in: its height spans ClickWindowFraction of it, magnified
    // at most MaxMagnification times, and never larger than the sheet.
    private int ClickSide(GlyphCandidate c, int h, int w) =>
        Math.Min(Math.Max((int)Math.Ceiling(Predictor.Model.image_size / Options.MaxMagnification), (int)Math.Ceiling(c.H / Options.ClickWindowFraction)), Math.Max(h, w));

    // Every click answered by the model: windows planned around the clicks, each encoded once, its clicks decoded in
    // batches; each answer cut to its candidate's own ink (Choose).
    private (List<ClickMask>[] Answers, double Encode, double Decode) AskClicks(RgbImage sheet, InkMap ink, List<GlyphCandidate> cands, List<GlyphClick> clicks,
                                                                          bool[][] own, IProgress<int>? progress)
    {
        var o = Options;
        int h = sheet.Height, w = sheet.Width;
        var windows = GlyphInstances.PlanWindows(clicks, cands, h, w);
        LastCropCount = windows.Count;
        var answers = new List<ClickMask>[cands.Count];
        for (int i = 0; i < cands.Count; i++) answers[i] = new List<ClickMask>();
        int done = 0;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        double encode = 0, decode = 0;
        foreach (var (cx, cy, side, members) in windows)
        {
            sw.Restart();
            Predictor.SetImage(Crop(sheet, cx, cy, side, ink.Background));
            encode += sw.Elapsed.TotalMilliseconds;
            sw.Restart();
            for (int start = 0; start < members.Count; start += o.MaxBoxesPerBatch)
            {
                var batch = members.Skip(start).Take(o.MaxBoxesPerBatch).Select(i => clicks[i]).ToList();
                var (logits, scores, k, low) = Predictor.PredictPointsLowRes(batch.Select(p => new[] { p.X - cx + 0.5f, p.Y - cy + 0.5f }).ToArray());
                var window = new LowResWindow(logits, low, cx, cy, side);
                for (int b = 0; b < batch.Count; b++)
                {
                    var p = batch[b];
                    answers[p.Candidate].Add(Choose(p, cands[p.Candidate], own[p.Candidate], window, scores, b, k));
                }
                done += batch.Count;
                progress?.Report(clicks.Count == 0 ? 100 : (int)(done * 99L / clicks.Count));
            }
            decode += sw.Elapsed.TotalMilliseconds;
        }
        Predictor.ResetPredictor();

        return (answers, encode, decode);
    }

    // Ink no glyph took (specks under the glyph area: a broken hairline's pieces, an accent's crumbs) joins the glyph it
    // touches (8-connected, through such specks only); specks that touch no glyph stay out.
    private static void AttachSpecks(List<GlyphResult> results, InkMap ink)
    {
        if (results.Count == 0) return;
        int h = ink.Height, w = ink.Width;
        var label = new int[h * w];
        Array.Fill(label, -1);
        for (int k = 0; k < results.Count; k++)
        {
            var m = results[k].Mask;
            for (int y = 0; y < m.Height; y++)
                for (int x = 0; x < m.Width; x++)
                    if (m.Bits[y * m.Width + x])
                    {
                        int i = (m.Y + y) * w + m.X + x;
                        if (label[i] < 0) label[i] = k;
                    }
        }
        var speck = new bool[h * w];
        for (int i = 0; i < speck.Length; i++) speck[i] = ink.Ink[i] && label[i] < 0;
        var added = new List<int>[results.Count];
        GlyphInstances.Flood(label, w, h, j => speck[j], j => (added[label[j]] ??= new List<int>()).Add(j));
        for (int k = 0; k < results.Count; k++)
        {
            if (added[k] is not { } px) continue;
            var r = results[k];
            int x0 = Math.Min(r.Mask.X, px.Min(i => i % w)), y0 = Math.Min(r.Mask.Y, px.Min(i => i / w));
            int x1 = Math.Max(r.Mask.X + r.Mask.Width - 1, px.Max(i => i % w)), y1 = Math.Max(r.Mask.Y + r.Mask.Height - 1, px.Max(i => i / w));
            int bw = x1 - x0 + 1, bh = y1 - y0 + 1;
            var bits = new bool[bw * bh];
            for (int y = 0; y < r.Mask.Height; y++)
                for (int x = 0; x < r.Mask.Width; x++)
                    if (r.Mask.Bits[y * r.Mask.Width + x]) bits[(r.Mask.Y + y - y0) * bw + r.Mask.X + x - x0] = true;
            foreach (int i in px) bits[(i / w - y0) * bw + i % w - x0] = true;
            var mask = new GlyphMask(x0, y0, bw, bh, bits);
            results[k] = r with { Mask = mask, Box = [x0, y0, x1 + 1, y1 + 1] };
        }
    }

    private static int FirstColumn(bool[] bits, int w)
    {
        int first = int.MaxValue;
        for (int i = 0; i < bits.Length; i++) if (bits[i]) first = Math.Min(first, i % w);
        return first;
    }

    // Low-res logits of a window's clicks, read at sheet pixels: one bilinear step from the decoder's grid to the
    // window's pixels (align_corners = false, as the predictor's upscaling), so only the pixels a candidate needs are read.
    private readonly record struct LowResWindow(float[] Logits, int Low, int X, int Y, int Side)
    {
        public bool Inside(int x, int y) => x >= X && y >= Y && x < X + Side && y < Y + Side;

        public float At(int mask, int x, int y)
        {
            double scale = (double)Low / Side;
            double sx = Math.Clamp((x - X + 0.5) * scale - 0.5, 0, Low - 1), sy = Math.Clamp((y - Y + 0.5) * scale - 0.5, 0, Low - 1);
            int x0 = (int)sx, y0 = (int)sy, x1 = Math.Min(x0 + 1, Low - 1), y1 = Math.Min(y0 + 1, Low - 1);
            double fx = sx - x0, fy = sy - y0;
            int o = mask * Low * Low;
            double top = Logits[o + y0 * Low + x0] * (1 - fx) + Logits[o + y0 * Low + x1] * fx;
            double bottom = Logits[o + y1 * Low + x0] * (1 - fx) + Logits[o + y1 * Low + x1] * fx;
            return (float)(top * (1 - fy) + bottom * fy);
        }
    }

    // The mask of one click: of the decoder's k masks, those holding the clicked pixel are eligible; the best by
    // predicted IoU wins, a mask wider than twice the candidate's height (a run of letters, not one) only when no
    // other holds the click. The mask is cut to the candidate's own ink.
    private static ClickMask Choose(GlyphClick p, GlyphCandidate c, bool[] own, LowResWindow win, float[] scores, int b, int k)
    {
        bool[]? best = null;
        float bestScore = float.NegativeInfinity;
        int bestRank = int.MaxValue;
        for (int j = 0; j < k; j++)
        {
            int mask = b * k + j;
            bool holds = win.Inside(p.X, p.Y) && win.At(mask, p.X, p.Y) > 0;
            var bits = new bool[c.W * c.H];
            int minX = int.MaxValue, maxX = -1;
            for (int y = Math.Max(c.Y0, win.Y); y <= Math.Min(c.Y1, win.Y + win.Side - 1); y++)
                for (int x = Math.Max(c.X0, win.X); x <= Math.Min(c.X1, win.X + win.Side - 1); x++)
                {
                    int i = (y - c.Y0) * c.W + (x - c.X0);
                    if (!own[i] || win.At(mask, x, y) <= 0) continue;
                    bits[i] = true;
                    minX = Math.Min(minX, x);
                    maxX = Math.Max(maxX, x);
                }
            int rank = !holds ? 2 : maxX - minX + 1 > 2 * c.H ? 1 : 0;
            float s = scores[b * k + j];
            if (rank < bestRank || (rank == bestRank && s > bestScore))
            {
                best = bits;
                bestScore = s;
                bestRank = rank;
            }
        }
        return new ClickMask(p, best!, bestScore);
    }

    // Turns SAM's crop mask into the glyph's sheet mask, restricted to the candidate's neighbourhood.
    private GlyphMask Finish(GlyphCandidate c, ReadOnlySpan<bool> cropMask, int cx, int cy, int side, InkMap ink, int[] labels, int[] owner)
    {
        var o = Options;
        int h = ink.Height, w = ink.Width;
        int grow = o.BoxPadding + Math.Max(0, o.RefineDilation);
        int x0 = Math.Max(0, c.X0 - grow), y0 = Math.Max(0, c.Y0 - grow), x1 = Math.Min(w - 1, c.X1 + grow), y1 = Math.Min(h - 1, c.Y1 + grow);
        int rw = x1 - x0 + 1, rh = y1 - y0 + 1;
        var sam = new bool[rw * rh];
        for (int y = y0; y <= y1; y++)
            for (int x = x0; x <= x1; x++)
            {
                int u = x - cx, v = y - cy;
                if (u >= 0 && v >= 0 && u < side && v < side) sam[(y - y0) * rw + (x - x0)] = cropMask[v * side + u];
            }
        if (!o.Refine) return new GlyphMask(x0, y0, rw, rh, sam).Tight();

        var grown = Dilate(sam, rw, rh, o.RefineDilation);
        var result = new bool[rw * rh];
        var touched = new HashSet<int>();
        for (int y = y0; y <= y1; y++)
            for (int x = x0; x <= x1; x++)
            {
                int i = y * w + x, j = (y - y0) * rw + (x - x0);
                if (!ink.Ink[i] || !grown[j]) continue;
                int l = labels[i];
                // Ink of another candidate is never taken, even if SAM's mask spills onto it.
                if (l > 0 && owner[l] >= 0 && owner[l] != c.Id) continue;
                result[j] = true;
                if (l > 0) touched.Add(l);
            }
        // The candidate's own components are added whole when snapping (SAM's 4x-downsampled decoder drops
        // hairlines and serifs of components it clearly found), else only those SAM missed entirely (an i's dot).
        var missing = o.SnapComponents ? c.Components.ToHashSet() : c.Components.Where(l => !touched.Contains(l)).ToHashSet();
        if (missing.Count > 0)
            for (int y = c.Y0; y <= c.Y1; y++)
                for (int x = c.X0; x <= c.X1; x++)
                    if (labels[y * w + x] is var l && l > 0 && missing.Contains(l)) result[(y - y0) * rw + (x - x0)] = true;
        return new GlyphMask(x0, y0, rw, rh, result).Tight();
    }

    // Chebyshev dilation (a (2r+1)² square), separable.
    private static bool[] Dilate(bool[] m, int w, int h, int r)
    {
        if (r <= 0) return m;
        var tmp = new bool[m.Length];
        var outp = new bool[m.Length];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                if (!m[y * w + x]) continue;
                for (int d = Math.Max(0, x - r); d <= Math.Min(w - 1, x + r); d++) tmp[y * w + d] = true;
            }
        for (int x = 0; x < w; x++)
            for (int y = 0; y < h; y++)
            {
                if (!tmp[y * w + x]) continue;
                for (int d = Math.Max(0, y - r); d <= Math.Min(h - 1, y + r); d++) outp[d * w + x] = true;
            }
        return outp;
    }

    private static RgbImage Crop(RgbImage sheet, int cx, int cy, int side, byte[] fill)
    {
        var px = new byte[side * side * 3];
        for (int v = 0; v < side; v++)
        {
            int y = cy + v;
            for (int u = 0; u < side; u++)
            {
                int x = cx + u, d = (v * side + u) * 3;
                if (x >= 0 && y >= 0 && x < sheet.Width && y < sheet.Height)
                {
                    int s = (y * sheet.Width + x) * 3;
                    px[d] = sheet.Pixels[s];
                    px[d + 1] = sheet.Pixels[s + 1];
                    px[d + 2] = sheet.Pixels[s + 2];
                }
                else
                {
                    px[d] = fill[0];
                    px[d + 1] = fill[1];
                    px[d + 2] = fill[2];
                }
            }
        }
        return new RgbImage(px, side, side);
    }

    /// <summary>
    /// Square crops (x, y, side, members) covering all candidates. Each crop is sized for its first
    /// candidate; later candidates join if they lie inside it and are not much smaller.
    /// </summary>
    public List<(int x, int y, int side, List<GlyphCandidate> members)> PlanCrops(IReadOnlyList<GlyphCandidate> cands, int h, int w, int modelSize)
    {
        var o = Options;
        int margin = o.BoxPadding + Math.Max(0, o.RefineDilation) + 2;
        int Desired(GlyphCandidate c)
        {
            int dim = Math.Max(c.W, c.H);
            int s = Math.Max((int)Math.Ceiling(dim / o.TargetGlyphFraction), (int)Math.Ceiling(modelSize / o.MaxMagnification));
            s = Math.Min(s, Math.Max(h, w));
            return Math.Max(s, dim + 2 * margin);
        }
        // Reading order, so a crop anchored at its first candidate also takes the ones to its right.
        var order = cands.OrderBy(c => c.Y0).ThenBy(c => c.X0).ToList();
        var assigned = new bool[cands.Count];
        var crops = new List<(int, int, int, List<GlyphCandidate>)>();
        foreach (var seed in order)
        {
            if (assigned[seed.Id]) continue;
            int side = Desired(seed);
            int x = seed.X0 - margin, y = (seed.Y0 + seed.Y1 + 1) / 2 - side / 2;
            x = w >= side ? Math.Clamp(x, 0, w - side) : (w - side) / 2;
            y = h >= side ? Math.Clamp(y, 0, h - side) : (h - side) / 2;
            var members = new List<GlyphCandidate> { seed };
            assigned[seed.Id] = true;
            foreach (var c in order)
            {
                if (assigned[c.Id]) continue;
                if (c.X0 - margin < x || c.Y0 - margin < y || c.X1 + margin >= x + side || c.Y1 + margin >= y + side) continue;
                if (Desired(c) * 2 < side) continue;
                members.Add(c);
                assigned[c.Id] = true;
            }
            crops.Add((x, y, side, members));
        }
        return crops;
    }

    /// <summary>
    /// The ink of a sheet. Otsu's threshold on the luma tells ink from background (the majority class); then every pixel's
    /// coverage is estimated with the scan's blur undone (<see cref="InkCoverage"/>), and ink is coverage ≥
    /// <see cref="InkCoverage.InkLevel"/>: where a glyph's own mask ends, so anti-aliased and blurred edges neither widen
    /// strokes (a hairline one pixel wide stays one pixel wide) nor vanish. Without contrast to measure coverage by,
    /// ink is Otsu's class.
    /// </summary>
    public static InkMap FindInk(RgbImage img)
    {
        int n = img.Height * img.Width, w = img.Width, h = img.Height;
        var luma = new byte[n];
        var hist = new long[256];
        var p = img.Pixels;
        for (int i = 0; i < n; i++)
        {
            int v = (int)Math.Round(0.299 * p[3 * i] + 0.587 * p[3 * i + 1] + 0.114 * p[3 * i + 2]);
            luma[i] = (byte)v;
            hist[v]++;
        }
        int t = Otsu(hist, n);
        long below = 0;
        for (int v = 0; v <= t; v++) below += hist[v];
        bool darkInk = below * 2 <= n;
        var ink = new bool[n];
        long[] sum = new long[3];
        long cnt = 0, inkCnt = 0;
        double bgLuma = 0, inkLuma = 0;
        for (int i = 0; i < n; i++)
        {
            ink[i] = darkInk ? luma[i] <= t : luma[i] > t;
            if (ink[i])
            {
                inkCnt++;
                inkLuma += luma[i];
                continue;
            }
            cnt++;
            bgLuma += luma[i];
            for (int k = 0; k < 3; k++) sum[k] += p[3 * i + k];
        }
        var bg = cnt == 0 ? new byte[] { 255, 255, 255 } : sum.Select(s => (byte)(s / cnt)).ToArray();
        if (cnt == 0 || inkCnt == 0 || InkCoverage.Estimate(luma, h, w, t, darkInk) is not var (cov, sigma, bgLevel, inkLevel))
            return new InkMap(h, w, ink, darkInk, bg);
        for (int i = 0; i < n; i++) ink[i] = cov[i] >= InkCoverage.InkLevel;
        // darkness in the units the centre net was trained on: 0 at the background class's mean luma, 1 at the ink
        // class's (Otsu's classes of the sheet as it is), of the deblurred luma
        bgLuma /= cnt;
        inkLuma /= inkCnt;
        double span = inkLuma - bgLuma;
        if (Math.Abs(span) < 16) return new InkMap(h, w, ink, darkInk, bg, null, sigma);
        var dark = new float[n];
        for (int i = 0; i < n; i++) dark[i] = (float)((bgLevel + cov[i] * (inkLevel - bgLevel) - bgLuma) / span);
        return new InkMap(h, w, ink, darkInk, bg, dark, sigma);
    }

    // Otsu: the threshold t (class 0 = values ≤ t) maximising the between-class variance.
    private static int Otsu(long[] hist, long n)
    {
        double total = 0;
        for (int v = 0; v < 256; v++) total += v * (double)hist[v];
        double sumB = 0, best = -1;
        long wB = 0;
        int t = 127;
        for (int v = 0; v < 255; v++)
        {
            wB += hist[v];
            if (wB == 0) continue;
            long wF = n - wB;
            if (wF == 0) break;
            sumB += v * (double)hist[v];
            double mB = sumB / wB, mF = (total - sumB) / wF;
            double between = (double)wB * wF * (mB - mF) * (mB - mF);
            if (between > best)
            {
                best = between;
                t = v;
            }
        }
        return t;
    }

    /// <summary>An 8-connected ink component: label (1-based), inclusive box and pixel count.</summary>
    public readonly record struct Component(int Label, int X0, int Y0, int X1, int Y1, long Area)
    {
        public int W => X1 - X0 + 1;
        public int H => Y1 - Y0 + 1;
    }

    /// <summary>Labels (row-major, 0 = no ink) and the components, indexed by label − 1.</summary>
    public static (int[] labels, List<Component> comps) Components(InkMap ink)
    {
        int[] labels;
        using (var m = TensorData.FromSpan<bool>(ink.Ink, [1, 1, ink.Height, ink.Width]))
        {
            var (l, a) = Misc.get_connected_components(m);
            using (l) labels = l.ToArray<int>();
            a.Dispose();
        }
        var boxes = new List<(int x0, int y0, int x1, int y1, long n)>();
        for (int y = 0; y < ink.Height; y++)
            for (int x = 0; x < ink.Width; x++)
            {
                int l = labels[y * ink.Width + x];
                if (l == 0) continue;
                while (boxes.Count < l) boxes.Add((int.MaxValue, int.MaxValue, -1, -1, 0));
                var b = boxes[l - 1];
                boxes[l - 1] = (Math.Min(b.x0, x), Math.Min(b.y0, y), Math.Max(b.x1, x), Math.Max(b.y1, y), b.n + 1);
            }
        return (labels, boxes.Select((b, i) => new Component(i + 1, b.x0, b.y0, b.x1, b.y1, b.n)).ToList());
    }

    /// <summary>Candidates of a sheet (ink, components, grouping), refused past <paramref name="maxCandidates"/> (default <see cref="Limits.MaxGlyphCandidates"/>).</summary>
    public static List<GlyphCandidate> FindCandidates(RgbImage sheet, int minGlyphArea = 3, int? maxCandidates = null)
    {
        int max = maxCandidates ?? Limits.MaxGlyphCandidates;
        var (_, comps) = Components(FindInk(sheet));
        CheckComponentCount(comps.Count, max);
        var cands = GroupCandidates(comps, minGlyphArea);
        CheckCandidateCount(cands.Count, max);
        return cands;
    }

    // Grouping looks at the neighbours of every component: with tens of thousands of specks it is the slow part.
    private static void CheckComponentCount(int count, int maxCandidates)
    {
        long max = 4L * maxCandidates;
        if (count > max)
            throw new LimitExceededException($"the sheet has {count:N0} separate ink components, above the limit of {max:N0} (4 × {maxCandidates:N0} glyphs): " +
                                             "is it a specimen sheet? (raise the glyph limit with --max-glyphs or TORCHSAM2_MAX_GLYPHS)");
    }

    private static void CheckCandidateCount(int count, int max)
    {
        if (count > max)
            throw new LimitExceededException($"the sheet has {count:N0} glyph candidates, above the limit of {max:N0} " +
                                             "(raise it with --max-glyphs or TORCHSAM2_MAX_GLYPHS; specks below --min-glyph-area are not counted)");
    }

    /// <summary>
    /// Groups components into characters. A component joins a bigger one above/below it when it is at most
    /// half its size, lies mostly within its columns and is close (an i's dot, accents, the dot of ! and ?);
    /// two small stacked components join when they are small next to the text around them (: ; =).
    /// Letters side by side, and letters of neighbouring lines, stay apart.
    /// </summary>
    public static List<GlyphCandidate> GroupCandidates(IReadOnlyList<Component> comps, int minGlyphArea = 3)
    {
        int n = comps.Count;
        var parent = Enumerable.Range(0, n).ToArray();
        int Find(int a)
        {
            while (parent[a] != a) a = parent[a] = parent[parent[a]];
            return a;
        }
        void Union(int a, int b)
        {
            a = Find(a);
            b = Find(b);
            if (a != b) parent[Math.Max(a, b)] = Math.Min(a, b);
        }
        static int HOverlap(Component a, Component b) => Math.Min(a.X1, b.X1) - Math.Max(a.X0, b.X0) + 1;
        static int VGap(Component a, Component b) => Math.Max(0, Math.Max(a.Y0, b.Y0) - Math.Min(a.Y1, b.Y1) - 1);
        static int Size(Component c) => Math.Max(c.W, c.H);

        // Components sorted by x0 so neighbours in x are found without an all-pairs scan.
        var byX = Enumerable.Range(0, n).OrderBy(i => comps[i].X0).ToArray();
        int maxW = n == 0 ? 0 : comps.Max(c => c.W);
        IEnumerable<int> Overlapping(int x0, int x1)
        {
            // comps with X0 <= x1 and X1 >= x0
            int lo = 0, hi = byX.Length;
            int from = x0 - maxW;
            while (lo < hi)
            {
                int mid = (lo + hi) / 2;
                if (comps[byX[mid]].X0 < from) lo = mid + 1; else hi = mid;
            }
            for (int k = lo; k < byX.Length && comps[byX[k]].X0 <= x1; k++)
                if (comps[byX[k]].X1 >= x0) yield return byX[k];
        }

        // Rule 1: small to big, best partner only.
        for (int a = 0; a < n; a++)
        {
            var A = comps[a];
            int best = -1, bestGap = int.MaxValue, bestOv = 0;
            foreach (int b in Overlapping(A.X0, A.X1))
            {
                if (b == a) continue;
                var B = comps[b];
                // Small: at most half as tall and less ink (accents can be wider than a dotless i).
                if (A.H * 2 > B.H || A.Area >= B.Area) continue;
                int ov = HOverlap(A, B);
                if (ov * 2 < Math.Min(A.W, B.W)) continue;
                int gap = VGap(A, B);
                if (gap > 0.6 * B.H || gap > 2 * Size(A) + 1) continue;
                if (gap < bestGap || (gap == bestGap && ov > bestOv))
                {
                    best = b;
                    bestGap = gap;
                    bestOv = ov;
                }
            }
            if (best >= 0) Union(a, best);
        }

        // Rule 2: stacked small pairs, judged against the text height around them.
        for (int a = 0; a < n; a++)
        {
            var A = comps[a];
            foreach (int b in Overlapping(A.X0, A.X1))
            {
                if (b <= a) continue;
                var B = comps[b];
                if (HOverlap(A, B) * 2 < Math.Min(A.W, B.W)) continue;
                int hMax = Math.Max(A.H, B.H);
                int gap = VGap(A, B);
                if (gap == 0 || gap > 2.5 * hMax + 1) continue;
                int uy0 = Math.Min(A.Y0, B.Y0), uy1 = Math.Max(A.Y1, B.Y1), ux0 = Math.Min(A.X0, B.X0), ux1 = Math.Max(A.X1, B.X1);
                int uh = uy1 - uy0 + 1;
                int lineH = 0;
                foreach (int k in Overlapping(ux0 - 2 * uh, ux1 + 2 * uh))
                {
                    if (k == a || k == b) continue;
                    var K = comps[k];
                    if (K.Y1 < uy0 || K.Y0 > uy1) continue;
                    lineH = Math.Max(lineH, K.H);
                }
                if (lineH == 0 || hMax > 0.45 * lineH || uh > 1.1 * lineH) continue;
                Union(a, b);
            }
        }

        var groups = new Dictionary<int, List<int>>();
        for (int i = 0; i < n; i++)
        {
            int r = Find(i);
            if (!groups.TryGetValue(r, out var g)) groups[r] = g = new List<int>();
            g.Add(i);
        }
        var result = new List<GlyphCandidate>();
        foreach (var g in groups.Values.OrderBy(g => g.Min()))
        {
            long area = g.Sum(i => comps[i].Area);
            if (area < minGlyphArea) continue;
            result.Add(new GlyphCandidate(result.Count, g.Min(i => comps[i].X0), g.Min(i => comps[i].Y0), g.Max(i => comps[i].X1), g.Max(i => comps[i].Y1),
                                          g.Select(i => comps[i].Label).ToArray(), area));
        }
        return result;
    }
}
