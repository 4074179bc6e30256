using TorchSam2.Glyphs;
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
        // Each GT glyph takes its best prediction: a merged prediction a∪b gives a 24/49 and b 25/49.
        var merged = GlyphMask.FromFull(a.ToFull(12, 20).Zip(b.ToFull(12, 20), (x, y) => x || y).ToArray(), 12, 20);
        var r = GlyphEval.Evaluate(12, 20, [a, b], [merged]);
        Assert.Equal((24.0 / 49 + 25.0 / 49) / 2, r.MeanGlyphIoU, 12);
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
}
