using System.Text.Json.Nodes;
using TorchSam2.Glyphs;
using TorchSam2.Utils;
using static TorchSam2.Tests.Glyphs.GlyphTestUtil;

namespace TorchSam2.Tests.Glyphs;

public class GlyphEvalTests
{
    [Fact]
    public void HalfOverlappingSquaresHaveIoUOneThird()
    {
        // Two 10x10 squares sharing a 5x10 strip: intersection 50, union 150.
        var gt = Square(2, 3, 10, 10);
        var pred = Square(7, 3, 10, 10);
        Assert.Equal(1.0 / 3, GlyphMask.IoU(gt, pred), 12);
        var r = GlyphEval.Evaluate(20, 30, [gt], [pred]);
        Assert.Equal(1.0 / 3, r.ForegroundIoU, 12);
        Assert.Equal(1.0 / 3, r.MeanGlyphIoU, 12);
        Assert.Equal(0, r.Recall50);
    }

    [Fact]
    public void PerfectAndUnmatchedGlyphs()
    {
        var a = Square(1, 1, 4, 6);
        var b = Square(10, 1, 5, 5);
        var same = GlyphEval.Evaluate(12, 20, [a, b], [a, b]);
        Assert.Equal((1.0, 1.0, 1.0, 1.0), (same.ForegroundIoU, same.MeanGlyphIoU, same.Recall50, same.BoundaryF));

        // b is never predicted: it counts 0 towards the mean and misses recall.
        var missing = GlyphEval.Evaluate(12, 20, [a, b], [a]);
        Assert.Equal(0.5, missing.MeanGlyphIoU, 12);
        Assert.Equal(0.5, missing.Recall50, 12);
        Assert.Equal(24.0 / 49, missing.ForegroundIoU, 12);
        // One-to-one: a merged prediction a∪b (IoU 24/49 with a, 25/49 with b) is matched to b only; a counts 0.
        var merged = GlyphMask.FromFull(a.ToFull(12, 20).Zip(b.ToFull(12, 20), (x, y) => x || y).ToArray(), 12, 20);
        var r = GlyphEval.Evaluate(12, 20, [a, b], [merged]);
        Assert.Equal(25.0 / 49 / 2, r.MeanGlyphIoU, 12);
        Assert.Equal(0.5, r.Recall50, 12); // 25/49 ≥ 0.5
        Assert.Equal((1, 1, 1.0), (r.Matched, r.Matched50, r.Precision50));
        Assert.Equal(1.0, r.ForegroundIoU, 12);
    }

    [Fact]
    public void BoundaryFScoreHonoursTheTolerance()
    {
        var gt = Square(10, 10, 20, 20);
        // Shifted by 2 px: every boundary pixel has a partner within 2 px.
        var near = GlyphEval.Evaluate(50, 50, [gt], [Square(12, 10, 20, 20)]);
        Assert.Equal(1.0, near.BoundaryF, 12);
        // Shifted by 3 px: only the top and bottom edges still match (within 2 px of the other's edges).
        var far = GlyphEval.Evaluate(50, 50, [gt], [Square(13, 10, 20, 20)]);
        Assert.InRange(far.BoundaryF, 0.3, 0.95);
        var tolerant = GlyphEval.Evaluate(50, 50, [gt], [Square(13, 10, 20, 20)], boundaryTolerance: 3);
        Assert.Equal(1.0, tolerant.BoundaryF, 12);
        Assert.Equal(far.BoundaryPrecision, far.BoundaryRecall, 12); // symmetric shift
    }

    [Fact]
    public void CocoLayoutsLoadAndMatchImagesByName()
    {
        var dir = Path.Combine(Path.GetTempPath(), "torchsam2-tests", "eval_" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        var gt = new GlyphCoco();
        gt.Images.Add(new CocoImage(1, "a.png", 30, 20));
        gt.Images.Add(new CocoImage(2, "b.png", 30, 20));
        gt.Annotations.Add(new CocoGlyph(1, 1, Square(2, 3, 10, 10).ToRle(20, 30), Font: "F", Char: "x", SizePx: 10));
        gt.Annotations.Add(new CocoGlyph(2, 2, Square(0, 0, 5, 5).ToRle(20, 30)));
        gt.Save(Path.Combine(dir, "gt.json"));
        // torchsam2 glyphs output for b.png's neighbour a.png
        var rle = Square(7, 3, 10, 10).ToRle(20, 30);
        File.WriteAllText(Path.Combine(dir, "pred.json"),
            $$$"""{"file_name": "a.png", "height": 20, "width": 30, "glyphs": [{"id": 1, "score": 0.9, "segmentation": {"size": [20, 30], "counts": "{{{rle.ToCocoString()}}}"}}]}""");
        var r = GlyphEval.Evaluate(GlyphCoco.Load(Path.Combine(dir, "gt.json")), GlyphCoco.Load(Path.Combine(dir, "pred.json")));
        Assert.Equal(1, r.Images);
        Assert.Equal(1.0 / 3, r.MeanGlyphIoU, 12);
        // A COCO results list covers every GT image; image 2 has no prediction.
        File.WriteAllText(Path.Combine(dir, "results.json"),
            $$$"""[{"image_id": 1, "score": 0.5, "segmentation": {"size": [20, 30], "counts": "{{{rle.ToCocoString()}}}"}}]""");
        var all = GlyphEval.Evaluate(GlyphCoco.Load(Path.Combine(dir, "gt.json")), GlyphCoco.Load(Path.Combine(dir, "results.json")));
        Assert.Equal(2, all.Images);
        Assert.Equal((1.0 / 3 + 0) / 2, all.MeanGlyphIoU, 12);
        Directory.Delete(dir, true);
    }
    // ---- one-to-one matching -------------------------------------------------------------------------------------

    [Fact]
    public void OneMaskOverTwoTouchingGlyphsIsMatchedToOneOfThem()
    {
        // a and b are 5×10 and touch; the prediction is 10×11 over both: IoU 50/110 with each (< 0.5).
        var a = Square(0, 0, 5, 10);
        var b = Square(5, 0, 5, 10);
        var both = Square(0, 0, 10, 11);
        var traits = new GlyphTraits[] { new("regular", 9), new("italic", 40) };
        var r = GlyphEval.Evaluate(20, 20, [a, b], [both], gtTraits: traits);
        // a tie: the lower GT index (a) takes the prediction, b stays unmatched
        Assert.Equal(50.0 / 110 / 2, r.MeanGlyphIoU, 12);
        Assert.Equal((0.0, 0.0), (r.Recall50, r.Precision50));
        Assert.Equal((1, 0), (r.Matched, r.Matched50));
        var regular = Band(r, "style", "regular");
        Assert.Equal((1, 50.0 / 110), (regular.GtGlyphs, regular.MeanGlyphIoU));
        Assert.Equal((1, 0.0), (Band(r, "style", "italic").GtGlyphs, Band(r, "style", "italic").MeanGlyphIoU));

        // b 7 wide: IoU 70/120 with b (≥ 0.5) and 50/120 with a; b takes it: recall 1/2, precision 1/1.
        var wide = GlyphEval.Evaluate(20, 20, [a, Square(5, 0, 7, 10)], [Square(0, 0, 12, 10)]);
        Assert.Equal(70.0 / 120 / 2, wide.MeanGlyphIoU, 12);
        Assert.Equal((0.5, 1.0), (wide.Recall50, wide.Precision50));
    }

    [Fact]
    public void APredictionEqualToAGlyphIsMatchedOnce()
    {
        var a = Square(1, 1, 4, 6);
        var b = Square(10, 1, 5, 5);
        // the same mask predicted twice: one copy matches a with IoU 1, the other is a false positive
        var r = GlyphEval.Evaluate(12, 20, [a, b], [a, a]);
        Assert.Equal((1, 1), (r.Matched, r.Matched50));
        Assert.Equal(0.5, r.MeanGlyphIoU, 12);
        Assert.Equal(0.5, r.Recall50, 12);
        Assert.Equal(0.5, r.Precision50, 12);
        var one = GlyphEval.Evaluate(12, 20, [a], [a]);
        Assert.Equal((1.0, 1.0, 1.0, 1), (one.MeanGlyphIoU, one.Recall50, one.Precision50, one.Matched));
    }

    [Fact]
    public void GreedyMatchingDoesNotCountAPredictionTwice()
    {
        // Strips 10 px high, so IoUs are ratios of lengths along x.
        // g0 = [0,5), g1 = [5,10); p0 = [0,10) has IoU 0.5 with both, p1 = [8,10) has 2/5 with g1.
        // Best IoU per GT would give (0.5 + 0.5) / 2 and recall 1; one-to-one: g0–p0 (tie, lower GT index), g1–p1.
        var g = new[] { Square(0, 0, 5, 10), Square(5, 0, 5, 10) };
        var r = GlyphEval.Evaluate(10, 12, g, [Square(0, 0, 10, 10), Square(8, 0, 2, 10)]);
        Assert.Equal((0.5 + 0.4) / 2, r.MeanGlyphIoU, 12);
        Assert.Equal(0.5, r.Recall50, 12);
        Assert.Equal(0.5, r.Precision50, 12);
        Assert.Equal((2, 1), (r.Matched, r.Matched50));

        // By IoU, not by GT order: g0 = [0,10), g1 = [10,20); p0 = [4,20) has 6/20 with g0 and 10/16 with g1,
        // p1 = [0,2) has 2/10 with g0. Best per GT: (0.3 + 0.625) / 2; GT order: g0–p0 then nothing, 0.15;
        // greedy by IoU: g1–p0 (0.625) first, then g0–p1 (0.2).
        var r2 = GlyphEval.Evaluate(10, 24, [Square(0, 0, 10, 10), Square(10, 0, 10, 10)], [Square(4, 0, 16, 10), Square(0, 0, 2, 10)]);
        Assert.Equal((10.0 / 16 + 2.0 / 10) / 2, r2.MeanGlyphIoU, 12);
        Assert.Equal((0.5, 0.5, 2, 1), (r2.Recall50, r2.Precision50, r2.Matched, r2.Matched50));
    }

    [Fact]
    public void EmptySidesHaveDocumentedPrecision()
    {
        var a = Square(1, 1, 4, 6);
        var none = GlyphEval.Evaluate(12, 20, [a], []);
        Assert.Equal((0.0, 0.0, 0.0, 0), (none.Precision50, none.Recall50, none.MeanGlyphIoU, none.Matched));
        var empty = GlyphEval.Evaluate(12, 20, [], []);
        Assert.Equal((1.0, 1.0, 1.0, 1.0), (empty.Precision50, empty.Recall50, empty.MeanGlyphIoU, empty.ThinStrokeRecall));
        var falsePositive = GlyphEval.Evaluate(12, 20, [], [a]);
        Assert.Equal((0.0, 1.0), (falsePositive.Precision50, falsePositive.Recall50));
    }

    // ---- thin strokes ------------------------------------------------------------------------------------------

    [Fact]
    public void ThinStrokeRecallCountsOnlyHairlinePixels()
    {
        // A 1-px vertical line (x = 2, y = 1..8) and a 3-px bar (x = 6..8, y = 1..8): every line pixel has background
        // left and right; no bar pixel has background on both sides along either axis.
        const int h = 10, w = 12;
        var line = Square(2, 1, 1, 8);
        var bar = Square(6, 1, 3, 8);
        var fg = line.ToFull(h, w).Zip(bar.ToFull(h, w), (p, q) => p || q).ToArray();
        var hair = Enumerable.Range(0, h * w).Where(i => GlyphEval.IsHairline(fg, h, w, i / w, i % w)).ToList();
        Assert.Equal(Enumerable.Range(1, 8).Select(y => y * w + 2), hair);

        // The prediction misses the line's 2 bottom pixels and the bar's right column: 6 of 8 hairline pixels kept.
        var r = GlyphEval.Evaluate(h, w, [line, bar], [Square(2, 1, 1, 6), Square(6, 1, 2, 8)]);
        Assert.Equal(8, r.HairlinePixels);
        Assert.Equal(6.0 / 8, r.ThinStrokeRecall, 12);
        Assert.Contains("thin-stroke recall 0.7500", r.ToString());
        // the bar alone has no hairline pixel: recall 1 whatever is predicted
        Assert.Equal((0L, 1.0), (GlyphEval.Evaluate(h, w, [bar], []).HairlinePixels, GlyphEval.Evaluate(h, w, [bar], []).ThinStrokeRecall));
    }

    [Fact]
    public void HairlinesAreTheSameAlongEitherAxisAndAtTheBorder()
    {
        // a horizontal 1-px line at the top border (y = 0, x = 1..5), a 2×2 block and a single pixel in the corner
        const int h = 6, w = 8;
        var fg = new bool[h * w];
        for (int x = 1; x <= 5; x++) fg[x] = true;
        foreach (var (x, y) in new[] { (2, 3), (3, 3), (2, 4), (3, 4), (7, 5) }) fg[y * w + x] = true;
        var (n, kept) = GlyphEval.Hairline(fg, fg, h, w);
        Assert.Equal((6L, 6L), (n, kept)); // the five line pixels and the corner pixel; the block has none
        // the transposed (column-major) map gives the same count
        var t = new bool[h * w];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) t[x * h + y] = fg[y * w + x];
        Assert.Equal((6L, 0L), GlyphEval.Hairline(t, new bool[h * w], w, h));
    }

    // ---- bands ----------------------------------------------------------------------------------------------------

    [Fact]
    public void BandsSplitRecallAndIoUByStyleSizeAndLigature()
    {
        var dir = Path.Combine(Path.GetTempPath(), "torchsam2-tests", "bands_" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            const int h = 30, w = 40;
            string Seg(GlyphMask m) => $$$"""{"size": [{{{h}}}, {{{w}}}], "counts": "{{{m.ToRle(h, w).ToCocoString()}}}"}""";
            var g1 = Square(0, 0, 5, 10);
            var g2 = Square(5, 0, 5, 10);
            var g3 = Square(20, 0, 4, 4);
            var g4 = Square(30, 0, 2, 2);
            // g1: no "style" (an older file), its font gives "bold"; g2 italic at 40 px; g3 a hairline ligature at 9 px
            // ("ligature" explicit); g4: 130 px and no style or font; g5: no attributes at all.
            File.WriteAllText(Path.Combine(dir, "gt.json"), $$$"""
                {"images": [{"id": 1, "file_name": "a.png", "width": {{{w}}}, "height": {{{h}}}}], "annotations": [
                 {"id": 1, "image_id": 1, "segmentation": {{{Seg(g1)}}}, "attributes": {"font": "DejaVuSans-Bold", "char": "a", "size_px": 9}},
                 {"id": 2, "image_id": 1, "segmentation": {{{Seg(g2)}}}, "attributes": {"font": "DejaVuSerif-Italic", "char": "b", "size_px": 40, "style": "italic", "ligature": false}},
                 {"id": 3, "image_id": 1, "segmentation": {{{Seg(g3)}}}, "attributes": {"font": "DejaVuSans-ExtraLight", "char": "fi", "size_px": 9, "style": "hairline", "ligature": true}},
                 {"id": 4, "image_id": 1, "segmentation": {{{Seg(g4)}}}, "attributes": {"size_px": 130}},
                 {"id": 5, "image_id": 1, "segmentation": {{{Seg(Square(0, 20, 3, 3))}}}}]}
                """);
            var gt = GlyphCoco.Load(Path.Combine(dir, "gt.json"));
            Assert.Equal(["bold", "italic", "hairline", null, null], gt.Annotations.Select(a => a.StyleName));
            Assert.Equal([false, false, true, false, false], gt.Annotations.Select(a => a.IsLigature));
            Assert.Equal([null, false, true, null, null], gt.Annotations.Select(a => a.Ligature));

            // g1 exact (IoU 1), g2 missed, g3 half (IoU 8/16 = 0.5), g4 exact, g5 missed
            var pred = new GlyphCoco();
            pred.Images.Add(new CocoImage(1, "a.png", w, h));
            int id = 1;
            foreach (var m in new[] { g1, Square(20, 0, 4, 2), g4 }) pred.Annotations.Add(new CocoGlyph(id++, 1, m.ToRle(h, w)));
            var r = GlyphEval.Evaluate(gt, pred);
            Assert.Equal((5, 3, 3, 3), (r.GtGlyphs, r.PredGlyphs, r.Matched, r.Matched50));
            Assert.Equal(2.5 / 5, r.MeanGlyphIoU, 12);
            Assert.Equal(3.0 / 5, r.Recall50, 12);
            Assert.Equal(1.0, r.Precision50, 12);
            Assert.Equal(
                [("style", "bold", 1, 1.0, 1.0), ("style", "italic", 1, 0.0, 0.0), ("style", "hairline", 1, 1.0, 0.5),
                 ("size", "8-15", 2, 1.0, 0.75), ("size", "32-63", 1, 0.0, 0.0), ("size", "128+", 1, 1.0, 1.0),
                 ("ligature", "ligature", 1, 1.0, 0.5)],
                r.Bands.Select(b => (b.Kind, b.Label, b.GtGlyphs, b.Recall50, b.MeanGlyphIoU)));

            // saved and read back, the derived attributes are written out and the bands do not change
            gt.Save(Path.Combine(dir, "gt2.json"));
            var attrs = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "gt2.json")))!["annotations"]![0]!["attributes"]!;
            Assert.Equal(("bold", false), ((string)attrs["style"]!, (bool)attrs["ligature"]!));
            var again = GlyphEval.Evaluate(GlyphCoco.Load(Path.Combine(dir, "gt2.json")), pred);
            Assert.Equal(r.Bands, again.Bands);

            File.WriteAllText(Path.Combine(dir, "bad.json"), """
                {"images": [], "annotations": [{"id": 1, "image_id": 1, "segmentation": {"size": [1, 1], "counts": [1]}, "attributes": {"ligature": "yes"}}]}
                """);
            Assert.Contains("'ligature' must be true or false", Assert.Throws<InvalidDataException>(() => GlyphCoco.Load(Path.Combine(dir, "bad.json"))).Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void SizeBandsAreLabelledByPixelRange()
    {
        Assert.Equal(["<8", "8-15", "8-15", "16-31", "32-63", "64-127", "128+", "128+"],
                     new[] { 7, 8, 15, 16, 40, 127, 128, 200 }.Select(GlyphEval.SizeBand));
        Assert.True(new CocoGlyph(1, 1, new Rle(1, 1, [1]), Char: "ffi").IsLigature);
        Assert.False(new CocoGlyph(1, 1, new Rle(1, 1, [1]), Char: "e\u0301").IsLigature); // one character, base + mark
        Assert.Equal("hairline italic", new CocoGlyph(1, 1, new Rle(1, 1, [1]), Font: "Z003-Thin").StyleName);
    }

    [Fact]
    public void RunLengthAndMaskPathsAgree()
    {
        // Overlapping glyphs, touching glyphs, 1-px strokes in both directions, merged and split predictions, on a
        // non-square image so that a transposition would show.
        const int h = 23, w = 37;
        var rng = new Random(7);
        GlyphMask Blob(int x, int y, int bw, int bh) => new(x, y, bw, bh, Enumerable.Range(0, bw * bh).Select(_ => rng.NextDouble() < 0.7).ToArray());
        var gt = new List<GlyphMask>
        {
            Square(1, 1, 1, 12), Square(3, 2, 9, 1), Square(5, 4, 6, 7), Square(11, 4, 4, 7), Blob(16, 2, 8, 9),
            Blob(20, 6, 7, 8), Square(28, 1, 3, 20), Square(32, 12, 1, 1), Blob(2, 14, 12, 8),
        };
        var pred = new List<GlyphMask>
        {
            Square(1, 2, 1, 10), Square(5, 4, 10, 7), Blob(16, 2, 11, 12), Square(28, 1, 3, 9), Square(28, 10, 3, 11),
            Blob(2, 13, 12, 9), Square(0, 0, 2, 2), Square(32, 12, 1, 1), Square(3, 2, 9, 1),
        };
        string[] styles = ["regular", "hairline", "bold", "bold", "italic", "hairline italic", "regular", "hairline", "italic"];
        int[] sizes = [9, 12, 20, 20, 40, 70, 150, 8, 33];
        var traits = gt.Select((_, i) => new GlyphTraits(styles[i], sizes[i], i == 4)).ToList();
        var byMask = GlyphEval.Evaluate(h, w, gt, pred, boundaryTolerance: 1, gtTraits: traits);

        var gtCoco = new GlyphCoco();
        gtCoco.Images.Add(new CocoImage(1, "a.png", w, h));
        for (int i = 0; i < gt.Count; i++)
            gtCoco.Annotations.Add(new CocoGlyph(i + 1, 1, gt[i].ToRle(h, w), SizePx: sizes[i], Ligature: i == 4, Style: styles[i]));
        var predCoco = new GlyphCoco();
        predCoco.Images.Add(new CocoImage(1, "a.png", w, h));
        for (int i = 0; i < pred.Count; i++) predCoco.Annotations.Add(new CocoGlyph(i + 1, 1, pred[i].ToRle(h, w)));
        var byRle = GlyphEval.Evaluate(gtCoco, predCoco, boundaryTolerance: 1);

        Assert.True(byMask.HairlinePixels > 20 && byMask.ThinStrokeRecall is > 0 and < 1, byMask.ToString());
        Assert.True(byMask.Matched > byMask.Matched50 && byMask.Matched50 > 2, byMask.ToString());
        Assert.Equal(["8-15", "16-31", "32-63", "64-127", "128+"], byMask.Bands.Where(b => b.Kind == "size").Select(b => b.Label));
        Assert.Equal(byMask.ToString(), byRle.ToString());
        Assert.Equal((byMask.MeanGlyphIoU, byMask.Recall50, byMask.Precision50, byMask.Matched, byMask.Matched50),
                     (byRle.MeanGlyphIoU, byRle.Recall50, byRle.Precision50, byRle.Matched, byRle.Matched50));
        Assert.Equal((byMask.ThinStrokeRecall, byMask.HairlinePixels), (byRle.ThinStrokeRecall, byRle.HairlinePixels));
        Assert.Equal((byMask.ForegroundIoU, byMask.BoundaryPrecision, byMask.BoundaryRecall), (byRle.ForegroundIoU, byRle.BoundaryPrecision, byRle.BoundaryRecall));
        Assert.Equal(byMask.Bands, byRle.Bands);
    }

    private static GlyphBand Band(GlyphEvalResult r, string kind, string label) => r.Bands.Single(b => b.Kind == kind && b.Label == label);
}
