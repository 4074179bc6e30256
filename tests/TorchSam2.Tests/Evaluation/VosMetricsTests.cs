using TorchSam2.Evaluation;
using TorchSam2.IO;

namespace TorchSam2.Tests.Evaluation;

// J and F on masks small enough to check by hand (the expected values are worked out in the comments).
public class VosMetricsTests
{
    private static bool[] Mask(int h, int w, params (int y0, int x0, int y1, int x1)[] blocks)
    {
        var m = new bool[h * w];
        foreach (var (y0, x0, y1, x1) in blocks)
            for (int y = y0; y <= y1; y++)
                for (int x = x0; x <= x1; x++) m[y * w + x] = true;
        return m;
    }

    private static string Draw(bool[] m, int w) =>
        string.Join("\n", Enumerable.Range(0, m.Length / w).Select(y => new string(Enumerable.Range(0, w).Select(x => m[y * w + x] ? '#' : '.').ToArray())));

    [Fact]
    public void DiskIsSkimagesDisk()
    {
        // skimage.morphology.disk(2)
        Assert.Equal("..#..\n.###.\n#####\n.###.\n..#..", Draw(VosMetrics.Disk(2), 5));
        Assert.Equal(".#.\n###\n.#.", Draw(VosMetrics.Disk(1), 3));
        Assert.Equal("#", Draw(VosMetrics.Disk(0), 1));
        // ceil(0.008·‖(h, w)‖): 96×160 → ceil(1.49) = 2; DAVIS 480p 480×854 → ceil(7.84) = 8; 10×10 → ceil(0.113) = 1
        Assert.Equal(2, VosMetrics.BoundaryRadius(96, 160));
        Assert.Equal(8, VosMetrics.BoundaryRadius(480, 854));
        Assert.Equal(1, VosMetrics.BoundaryRadius(10, 10));
    }

    [Fact]
    public void BoundaryMapIsOffsetTowardsTheOrigin()
    {
        // a 2×2 block at rows/cols 1..2: the pixel above/left of it and its own right column / bottom row
        var b = VosMetrics.Seg2Bmap(Mask(5, 5, (1, 1, 2, 2)), 5, 5);
        Assert.Equal("###..\n#.#..\n###..\n.....\n.....", Draw(b, 5));
        // a full image has no boundary (the last row / column only compare along themselves)
        Assert.DoesNotContain(true, VosMetrics.Seg2Bmap(Mask(3, 3, (0, 0, 2, 2)), 3, 3));
        // the bottom-right pixel alone: its north, west and north-west neighbours; itself never
        Assert.Equal("...\n.##\n.#.", Draw(VosMetrics.Seg2Bmap(Mask(3, 3, (2, 2, 2, 2)), 3, 3), 3));
    }

    [Fact]
    public void DilationStaysInsideTheImage()
    {
        var one = Mask(4, 4, (0, 0, 0, 0));
        Assert.Equal("##..\n#...\n....\n....", Draw(VosMetrics.Dilate(one, 4, 4, VosMetrics.Disk(1), 1), 4));
    }

    [Fact]
    public void JaccardCountsOverlapAndEmptyMasks()
    {
        var gt = Mask(8, 8, (1, 1, 2, 2));
        Assert.Equal(1.0, VosMetrics.Jaccard(gt, gt));
        Assert.Equal(1.0 / 3, VosMetrics.Jaccard(Mask(8, 8, (1, 2, 2, 3)), gt), 12); // overlap 2, union 6
        Assert.Equal(0.0, VosMetrics.Jaccard(Mask(8, 8, (1, 3, 2, 4)), gt));
        Assert.Equal(1.0, VosMetrics.Jaccard(new bool[64], new bool[64]));  // both empty
        Assert.Equal(0.0, VosMetrics.Jaccard(new bool[64], gt));
    }

    [Fact]
    public void BoundaryFOfShiftedBlocks()
    {
        // gt: 2×2 block at cols 1..2 → boundary ring rows 0..2 × cols 0..2 without (1,1): 8 pixels.
        // pred: shifted to cols 3..4 → ring rows 0..2 × cols 2..4 without (1,3): 8 pixels. They share column 2 (3 pixels).
        var gt = Mask(8, 8, (1, 1, 2, 2));
        var pred = Mask(8, 8, (1, 3, 2, 4));
        // radius 0: P = R = 3/8 → F = 0.375
        Assert.Equal(0.375, VosMetrics.BoundaryF(pred, gt, 8, 8, radius: 0), 12);
        // radius 1 (a plus): column 3 of pred's ring is next to gt's column 2 too → 5 of 8 each way → F = 0.625
        Assert.Equal(0.625, VosMetrics.BoundaryF(pred, gt, 8, 8, radius: 1), 12);
        Assert.Equal(1.0, VosMetrics.BoundaryF(gt, gt, 8, 8));
        // empty prediction: P = 1, R = 0 → F = 0; empty ground truth: P = 0, R = 1 → 0; both empty → 1
        Assert.Equal(0.0, VosMetrics.BoundaryF(new bool[64], gt, 8, 8));
        Assert.Equal(0.0, VosMetrics.BoundaryF(gt, new bool[64], 8, 8));
        Assert.Equal(1.0, VosMetrics.BoundaryF(new bool[64], new bool[64], 8, 8));
    }

    [Fact]
    public void ObjectsCountFromTheirFirstAppearanceAndOnlyWhenInTheGroundTruth()
    {
        const int h = 8, w = 8;
        int[] Labels(params (int id, bool[] m)[] objs)
        {
            var l = new int[h * w];
            foreach (var (id, m) in objs) for (int i = 0; i < l.Length; i++) if (m[i]) l[i] = id;
            return l;
        }
        var a = Mask(h, w, (1, 1, 2, 2));
        var b = Mask(h, w, (5, 5, 6, 6));
        var ev = new VosSequenceEvaluator();
        // frame 0: object 1 exact; object 3 only predicted (never reported)
        ev.FeedFrame(Labels((1, a), (3, b)), Labels((1, a)), h, w);
        // frame 1: object 1 missed (J 0, F 0); object 2 appears in the ground truth, predicted exactly
        ev.FeedFrame(Labels((2, b)), Labels((1, a), (2, b)), h, w);
        var r = ev.Conclude();
        Assert.Equal([1, 2], r.Select(o => o.obj));
        Assert.Equal(50.0, r[0].j, 12);
        Assert.Equal(50.0, r[0].f, 12);
        // object 2 is averaged over frame 1 only (not over frame 0, before it appeared)
        Assert.Equal(100.0, r[1].j, 12);
        Assert.Equal(100.0, r[1].f, 12);
    }

    [Fact]
    public void MeansSumPairwiseAsNumpy()
    {
        // eight values: numpy adds ((a0+a1)+(a2+a3))+((a4+a5)+(a6+a7)) = 1e16 + 6; one by one it stays at 1e16
        var v = new List<double> { 1e16, 1, 1, 1, 1, 1, 1, 1 };
        Assert.Equal(1e16 + 6, VosMetrics.NumpyMean(v) * 8);
        Assert.True(double.IsNaN(VosMetrics.NumpyMean([])));
        Assert.Equal(2.5, VosMetrics.NumpyMean([1, 2, 3, 4]));
    }

    [Theory]
    // Python 3: f"{x:.1f}" rounds the exact binary value, ties to even
    [InlineData(0.25, "0.2")]
    [InlineData(0.35, "0.3")]
    [InlineData(0.45, "0.5")]
    [InlineData(42.75, "42.8")]
    [InlineData(42.25, "42.2")]
    [InlineData(-0.04, "-0.0")]
    [InlineData(99.95, "100.0")]
    [InlineData(0.05, "0.1")]
    [InlineData(double.NaN, "nan")]
    public void FormatsAsPython(double x, string expected) => Assert.Equal(expected, VosMetrics.Format1(x));

    [Fact]
    public void ObjectLabelsAsTheOfficialTable()
    {
        Assert.Equal("007", VosBenchmark.PyObjectLabel(7));
        Assert.Equal("1234", VosBenchmark.PyObjectLabel(1234));
        // SA-V object folder names are strings: Python pads "7" to "700"
        Assert.Equal("700", VosBenchmark.PyStringLabel("7"));
        Assert.Equal("001", VosBenchmark.PyStringLabel("001"));
    }

    [Fact]
    public void LabelPngRoundTripsIdsAndPalette()
    {
        string path = TestPaths.TempFile(".png");
        try
        {
            var labels = new byte[6 * 5];
            for (int i = 0; i < labels.Length; i++) labels[i] = (byte)(i % 7 == 0 ? 0 : i * 9);
            LabelPng.Write(path, labels, 6, 5);
            var m = LabelPng.Read(path);
            Assert.Equal((6, 5), (m.Height, m.Width));
            Assert.Equal(labels.Select(b => (int)b), m.Labels);
            Assert.Equal(LabelPng.DavisPalette, m.Palette);
            // DAVIS palette: 1 = (128, 0, 0), 2 = (0, 128, 0), 8 = (64, 0, 0)
            Assert.Equal(new byte[] { 128, 0, 0, 0, 128, 0 }, LabelPng.DavisPalette[3..9]);
            Assert.Equal(new byte[] { 64, 0, 0 }, LabelPng.DavisPalette[24..27]);
            // an RGB PNG is refused in one line
            ImageIO.Write(path, new byte[6 * 5 * 3], 6, 5, 3);
            var e = Assert.Throws<InvalidDataException>(() => LabelPng.Read(path));
            Assert.Contains("RGB PNG", e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
