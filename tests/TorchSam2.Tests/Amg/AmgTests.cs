using TorchSam2.Configs;
using TorchSam2.Modeling;
using TorchSharp;
using TorchSharp.Modules;
using TorchSam2.Checkpoints;
using TorchSam2.Utils;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace TorchSam2.Tests.MaskGeneration;


// Helpers of sam2/utils/amg.py and torchvision's NMS against values worked out by hand from the upstream formulas.
public class AmgTests
{
    // ---- RLE ----------------------------------------------------------------------------------

    [Fact]
    public void Rle_EncodeDecodeRoundTrip_ColumnMajorCounts()
    {
        // 3×4 mask; column-major (Fortran) order reads 0 1 1 | 0 0 0 | 1 1 1 | 1 0 0
        bool[] rowMajor =
        [
            false, false, true, true,
            true, false, true, false,
            true, false, true, false,
        ];
        using var t = tensor(rowMajor, new long[] { 3, 4 });
        var rle = Rle.Encode(t);
        Assert.Equal([1, 2, 3, 4, 2], rle.Counts);
        Assert.Equal(6, Amg.area_from_rle(rle));
        Assert.Equal(rowMajor, Amg.rle_to_mask(rle));

        // the batched (device-side) encoder gives the same counts, also for masks starting with 1 and empty masks
        bool[] second = Enumerable.Repeat(true, 12).ToArray();
        second[5] = false;
        using var batch = tensor(rowMajor.Concat(second).Concat(new bool[12]).ToArray(), [3, 3, 4]);
        var rles = Amg.mask_to_rle_pytorch(batch);
        Assert.Equal(rle.Counts, rles[0].Counts);
        // index 5 row-major is (1, 1) → column-major position 1·3 + 1 = 4
        Assert.Equal([0, 4, 1, 7], rles[1].Counts);
        Assert.Equal(second, rles[1].DecodeRowMajor());
        Assert.Equal([12], rles[2].Counts);
    }

    [Fact]
    public void CocoRle_HandEncodedStrings()
    {
        // pycocotools rleToString: 5-bit groups + 48, bit 0x20 = more, bit 0x10 of the last group = sign;
        // counts after the second are written as differences to the count two before.
        // 4×4 zeros: [16] → 16 has the sign bit set, so a second group is needed: '`' (16|32+48) then '0'.
        var zeros = Rle.Encode(new bool[16], 4, 4);
        Assert.Equal([16], zeros.Counts);
        Assert.Equal("`0", Amg.coco_encode_rle(zeros).Counts);
        Assert.Equal([4, 4], Amg.coco_encode_rle(zeros).Size);

        // 3×3 with only the centre set: [4, 1, 4] → "414"
        var centre = new bool[9];
        centre[4] = true;
        var c = Rle.Encode(centre, 3, 3);
        Assert.Equal([4, 1, 4], c.Counts);
        Assert.Equal("414", c.ToCocoString());

        // [5, 10, 2, 3]: 5 → '5', 10 → ':', 2 → '2', 3 - 10 = -7 → low 5 bits 25 (sign set, rest -1) → 'I'
        var r = new Rle(4, 5, [5, 10, 2, 3]);
        Assert.Equal("5:2I", r.ToCocoString());
        Assert.Equal(r.Counts, Rle.FromCocoString("5:2I", 4, 5).Counts);

        // 100 = 3·32 + 4 → 'T' (4|32+48) then '3'
        Assert.Equal("T3", new Rle(10, 10, [100]).ToCocoString());
    }

    // ---- NMS ----------------------------------------------------------------------------------

    [Fact]
    public void BatchedNms_SuppressesOverlapsWithinCategoryOnly()
    {
        // A and B overlap with IoU 81/119 = 0.681; C is apart; D equals A but in category 1.
        using var boxes = tensor(new float[] { 0, 0, 10, 10, 1, 1, 11, 11, 20, 20, 30, 30, 0, 0, 10, 10 }, [4, 4]);
        using var scores = tensor(new float[] { 0.9f, 0.8f, 0.7f, 0.95f });
        using var cats = tensor(new long[] { 0, 0, 0, 1 });
        using var k1 = Nms.batched_nms(boxes, scores, cats, 0.5);
        Assert.Equal([3L, 0, 2], k1.ToArray<long>());
        using var k2 = Nms.batched_nms(boxes, scores, cats, 0.7);
        Assert.Equal([3L, 0, 1, 2], k2.ToArray<long>());
        using var iou = Nms.box_iou(boxes[0..2], boxes[1..3]);
        Assert.Equal([81f / 119f, 0f, 1f, 0f], iou.ToArray<float>());
        using var zeroCats = zeros([4], ScalarType.Int64);
        using var k3 = Nms.batched_nms(boxes, scores, zeroCats, 0.5);
        Assert.Equal([3L, 2], k3.ToArray<long>());
    }

    [Fact]
    public void Nms_StrictThreshold_StableTies_AndEmptyInput()
    {
        // IoU exactly 0.5 is not suppressed at threshold 0.5 (torchvision suppresses IoU > threshold).
        using var half = tensor(new float[] { 0, 0, 10, 10, 0, 0, 10, 5 }, [2, 4]);
        using var s = tensor(new float[] { 0.5f, 0.6f });
        using var k = Nms.nms(half, s, 0.5);
        Assert.Equal([1L, 0], k.ToArray<long>());
        using var k2 = Nms.nms(half, s, 0.49);
        Assert.Equal([1L], k2.ToArray<long>());

        // identical boxes and scores: the earlier index wins
        using var same = tensor(new float[] { 2, 2, 8, 8, 2, 2, 8, 8, 2, 2, 8, 8 }, [3, 4]);
        using var tie = tensor(new float[] { 0.3f, 0.7f, 0.7f });
        using var k3 = Nms.nms(same, tie, 0.7);
        Assert.Equal([1L], k3.ToArray<long>());

        using var none = zeros([0, 4]);
        using var noScores = zeros([0]);
        using var noCats = zeros([0], ScalarType.Int64);
        using var k4 = Nms.batched_nms(none, noScores, noCats, 0.7);
        Assert.Equal(0, k4.numel());

        using var area = Nms.box_area(same);
        Assert.Equal([36f, 36f, 36f], area.ToArray<float>());
    }

    [Fact]
    public void BatchedNms_LargeInputPerCategoryPathMatchesOffsetPath()
    {
        // > 1000 boxes takes torchvision's per-category loop; the kept set must equal the small-input path.
        manual_seed(3);
        using var xy = rand([1500, 2]) * 200;
        using var wh = rand([1500, 2]) * 40 + 1;
        using var boxes = cat([xy, xy + wh], 1);
        using var scores = rand([1500]);
        using var cats = randint(0, 3, [1500]);
        using var keep = Nms.batched_nms(boxes, scores, cats, 0.5);
        var kept = keep.ToArray<long>();
        // brute force: greedy in descending score order, suppressing only within a category
        var bx = boxes.ToArray<float>();
        var sx = scores.ToArray<float>();
        var cx = cats.ToArray<long>();
        var order = Enumerable.Range(0, 1500).OrderByDescending(i => sx[i]).ToArray();
        var dead = new bool[1500];
        var expected = new List<long>();
        for (int a = 0; a < order.Length; a++)
        {
            int i = order[a];
            if (dead[i]) continue;
            expected.Add(i);
            for (int b = a + 1; b < order.Length; b++)
                if (cx[order[b]] == cx[i] && Iou(bx, i, order[b]) > 0.5f) dead[order[b]] = true;
        }
        Assert.Equal(expected, kept);
    }

    private static float Iou(float[] b, int i, int j)
    {
        float w = MathF.Max(0, MathF.Min(b[i * 4 + 2], b[j * 4 + 2]) - MathF.Max(b[i * 4], b[j * 4]));
        float h = MathF.Max(0, MathF.Min(b[i * 4 + 3], b[j * 4 + 3]) - MathF.Max(b[i * 4 + 1], b[j * 4 + 1]));
        float inter = w * h;
        float ai = (b[i * 4 + 2] - b[i * 4]) * (b[i * 4 + 3] - b[i * 4 + 1]);
        float aj = (b[j * 4 + 2] - b[j * 4]) * (b[j * 4 + 3] - b[j * 4 + 1]);
        return inter / (ai + aj - inter);
    }

    // ---- scores, grids, crops, boxes -----------------------------------------------------------

    [Fact]
    public void StabilityScore_HandMadeLogits()
    {
        // threshold 0, offset 1: > 1 keeps {2.0, 1.5} (2 pixels), > -1 keeps 5 pixels → 0.4
        // second mask: > 1 keeps {3, 3}, > -1 keeps {3, 3, 0} → 2/3
        using var logits = tensor(new float[] { 2.0f, 0.5f, -0.5f, -2.0f, 1.5f, 0.9f, 3, 3, 0, -5, -5, -1 }, [2, 2, 3]);
        using var s = Amg.calculate_stability_score(logits, 0.0, 1.0);
        var v = s.ToArray<float>();
        Assert.Equal(0.4f, v[0], 6);
        Assert.Equal(2f / 3f, v[1], 6);
        // a shifted mask threshold moves both cut-offs: threshold 0.5 → > 1.5 {2.0}; > -0.5 {2.0, 0.5, 1.5, 0.9}
        using var s2 = Amg.calculate_stability_score(logits[0..1], 0.5, 1.0);
        Assert.Equal(0.25f, s2.ToSingle(), 6);
    }

    [Fact]
    public void PointGrids()
    {
        var g = Amg.build_point_grid(2);
        Assert.Equal(new[] { new[] { 0.25, 0.25 }, [0.75, 0.25], [0.25, 0.75], [0.75, 0.75] }, g);
        var g4 = Amg.build_point_grid(4);
        Assert.Equal(16, g4.Length);
        Assert.Equal([0.125, 0.125], g4[0]);
        Assert.Equal([0.375, 0.125], g4[1]);
        Assert.Equal([0.875, 0.875], g4[15]);
        var layers = Amg.build_all_layer_point_grids(32, 2, 2);
        Assert.Equal([1024, 256, 64], layers.Select(l => l.Length));
        // int(3 / 2**1) = 1
        Assert.Equal([9, 1], Amg.build_all_layer_point_grids(3, 1, 2).Select(l => l.Length));
    }

    [Fact]
    public void CropBoxes_100x200_OneLayer()
    {
        // short side 100, overlap = int(512/1500 · 100 · 2/2) = 34; crop_w = ceil((34 + 200)/2) = 117,
        // crop_h = ceil((34 + 100)/2) = 67; x0 ∈ {0, 83}, y0 ∈ {0, 33}; x varies slowest.
        var (boxes, layers) = Amg.generate_crop_boxes((100, 200), 1, 512.0 / 1500);
        Assert.Equal(new[]
        {
            new[] { 0, 0, 200, 100 },
            [0, 0, 117, 67],
            [0, 33, 117, 100],
            [83, 0, 200, 67],
            [83, 33, 200, 100],
        }, boxes);
        Assert.Equal([0, 1, 1, 1, 1], layers);

        var (two, twoLayers) = Amg.generate_crop_boxes((100, 200), 2, 512.0 / 1500);
        Assert.Equal(1 + 4 + 16, two.Count);
        // layer 2: overlap = int(34.13 · 0.5) = 17; crop_w = ceil((51 + 200)/4) = 63; crop_h = ceil((51 + 100)/4) = 38
        Assert.Equal([0, 0, 63, 38], two[5]);
        Assert.Equal([138, 63, 200, 100], two[^1]);
        Assert.Equal(16, twoLayers.Count(l => l == 2));
    }

    [Fact]
    public void BatchedMaskToBox_AndUncrop()
    {
        var m = new bool[2 * 4 * 5];
        // mask 0: pixels (row 1, col 2) and (row 3, col 4); mask 1 empty
        m[1 * 5 + 2] = true;
        m[3 * 5 + 4] = true;
        using var masks = tensor(m, new long[] { 2, 4, 5 });
        using var boxes = Amg.batched_mask_to_box(masks);
        Assert.Equal(ScalarType.Int64, boxes.dtype);
        Assert.Equal([2L, 1, 4, 3, 0, 0, 0, 0], boxes.ToArray<long>());
        using var nested = masks.unsqueeze(0);
        using var nb = Amg.batched_mask_to_box(nested);
        Assert.Equal([1L, 2, 4], nb.shape);

        using var shifted = Amg.uncrop_boxes_xyxy(boxes, [10, 20, 50, 60]);
        Assert.Equal([12L, 21, 14, 23, 10, 20, 10, 20], shifted.ToArray<long>());
        using var pts = tensor(new float[] { 1.5f, 2.5f }, [1, 2]);
        using var up = Amg.uncrop_points(pts, [10, 20, 50, 60]);
        Assert.Equal([11.5f, 22.5f], up.ToArray<float>());

        using var padded = Amg.uncrop_masks(masks, [3, 2, 8, 6], 10, 12);
        Assert.Equal([2L, 10, 12], padded.shape);
        using var pb = Amg.batched_mask_to_box(padded);
        Assert.Equal([5L, 3, 7, 5, 0, 0, 0, 0], pb.ToArray<long>());

        using var xywh = Amg.box_xyxy_to_xywh(tensor(new float[] { 2, 1, 4, 3 }));
        Assert.Equal([2f, 1, 2, 2], xywh.ToArray<float>());
    }

    [Fact]
    public void BoxNearCropEdge()
    {
        // crop (100, 0, 200, 100) of a 200×100 image; boxes in crop coordinates
        using var boxes = tensor(new long[] { 0, 30, 40, 60, 50, 30, 99, 60, 30, 30, 60, 60 }, [3, 4]);
        using var near = Amg.is_box_near_crop_edge(boxes, [100, 0, 200, 100], [0, 0, 200, 100]);
        // box 0 touches the crop's left edge (x0 = 100 in the image, not an image edge): near.
        // box 1 touches the right edge, which is the image's edge: not near. box 2 is inside.
        Assert.Equal([true, false, false], near.ToArray<bool>());
    }

    // ---- small regions -------------------------------------------------------------------------

    [Fact]
    public void RemoveSmallRegions_HolesAndIslands()
    {
        const int h = 6, w = 6;
        bool[] mask = Parse(
            "1111..",
            "1.11..",
            "1111..",
            "....1.",   // diagonal to (2,3): joins the blob with 8-connectivity
            "......",
            ".....1");  // a lone island
        var (filled, changedHoles) = Amg.remove_small_regions(mask, h, w, 2, "holes");
        Assert.True(changedHoles);
        var expectFilled = (bool[])mask.Clone();
        expectFilled[1 * w + 1] = true;
        Assert.Equal(expectFilled, filled);

        var (clean, changedIslands) = Amg.remove_small_regions(filled, h, w, 2, "islands");
        Assert.True(changedIslands);
        var expectClean = (bool[])expectFilled.Clone();
        expectClean[5 * w + 5] = false;
        Assert.Equal(expectClean, clean);

        // nothing below the threshold: unchanged
        var (same, changed) = Amg.remove_small_regions(clean, h, w, 1, "islands");
        Assert.False(changed);
        Assert.Equal(clean, same);

        // every island is small: the largest is kept
        bool[] two = Parse("11....", "......", "....1.");
        var (kept, ch) = Amg.remove_small_regions(two, 3, 6, 10, "islands");
        Assert.True(ch);
        Assert.Equal(Parse("11....", "......", "......"), kept);
    }

    private static bool[] Parse(params string[] rows) => rows.SelectMany(r => r.Select(c => c == '1')).ToArray();

    [Fact]
    public void MaskData_FilterAndCat()
    {
        using var d = new MaskData();
        d["a"] = tensor(new float[] { 1, 2, 3 });
        d["b"] = new List<string> { "x", "y", "z" };
        using (var other = new MaskData())
        {
            other["a"] = tensor(new float[] { 4 });
            other["b"] = new List<string> { "w" };
            d.Cat(other);
        }
        Assert.Equal([1f, 2, 3, 4], d.GetTensor("a").ToArray<float>());
        using (var keep = tensor(new bool[] { true, false, true, true })) d.Filter(keep);
        Assert.Equal(["x", "z", "w"], d.GetList<string>("b"));
        using (var idx = tensor(new long[] { 2, 0 })) d.Filter(idx);
        Assert.Equal([4f, 1], d.GetTensor("a").ToArray<float>());
        Assert.Equal(["w", "x"], d.GetList<string>("b"));
        Assert.Equal([[1, 2, 3], [4, 5, 6], [7]], Amg.batch_iterator<int>(3, Enumerable.Range(1, 7).ToArray()));
    }
}

// LiveTensorCount is process-wide, so the end-to-end run is kept out of parallel test execution.
[CollectionDefinition(nameof(AutomaticMaskGeneratorTests), DisableParallelization = true)]
public sealed class AutomaticMaskGeneratorCollection;

[Collection(nameof(AutomaticMaskGeneratorTests))]
public class AutomaticMaskGeneratorTests(ITestOutputHelper output)
{
    private static (SAM2Base model, Tensor image)? Load()
    {
        string dir = ParityData.CaseDir("micro_image");
        if (!ParityData.Require(Path.Combine(dir, "weights.safetensors"))) return null;
        var model = BuildSam.build_sam2(Sam2ConfigLoader.Load(Path.Combine(dir, "model.yaml")), Path.Combine(dir, "weights.safetensors"));
        var rec = SafeTensors.Read(Path.Combine(dir, "inputs.safetensors")).Tensors["image"];
        return (model, rec.ToTensor());
    }

    [Theory]
    // The micro model's masks are large and unstable (random weights): low thresholds keep some.
    [InlineData(false, 0, "binary_mask", 0.02, 0.9)]
    [InlineData(false, 1, "coco_rle", 0.3, 0.7)]
    [InlineData(true, 0, "uncompressed_rle", 0.05, 0.7)]
    public void Generate_MicroModel_StructuralInvariants(bool m2m, int cropLayers, string mode, double stability, double nms)
    {
        if (Load() is not { } loaded) return;
        var (model, image) = loaded;
        using var _m = model;
        using var _i = image;
        var opts = new AutomaticMaskGeneratorOptions
        {
            PointsPerSide = 8,
            PointsPerBatch = 24,   // several batches, the last one short
            PredIouThresh = 0.2,
            StabilityScoreThresh = stability,
            BoxNmsThresh = nms,
            CropNLayers = cropLayers,
            OutputMode = mode,
            UseM2M = m2m,
        };
        using var amg = new AutomaticMaskGenerator(model, opts);
        int h = (int)image.size(0), w = (int)image.size(1);
        var reports = new List<AmgProgress>();
        var progress = new SyncProgress(reports.Add);

        var first = amg.Generate(image, progress);   // warm-up: first calls may cache native state
        long before = SettledLiveTensors();
        reports.Clear();
        var records = amg.Generate(image, progress);
        Assert.Equal(before, SettledLiveTensors());

        output.WriteLine($"m2m={m2m} crops={cropLayers} mode={mode}: {records.Count} masks, areas {string.Join(" ", records.Select(r => r.Area))}");
        Assert.NotEmpty(records);
        Assert.Equal(first.Count, records.Count);
        int batches = (cropLayers == 0 ? 1 : 5) * 3;   // 64 points in batches of 24
        Assert.Equal(Enumerable.Range(1, batches), reports.Select(r => r.BatchesDone));
        Assert.All(reports, r => Assert.Equal(batches, r.BatchesTotal));

        foreach (var r in records)
        {
            var mask = r.Rle.DecodeRowMajor();
            Assert.Equal(mask, r.ToMask());
            switch (mode)
            {
                case "binary_mask": Assert.Equal(mask, (bool[])r.Segmentation); break;
                case "coco_rle":
                    var coco = (CocoRle)r.Segmentation;
                    Assert.Equal([h, w], coco.Size);
                    Assert.Equal(r.Rle.Counts, Rle.FromCocoString(coco.Counts, h, w).Counts);
                    break;
                default: Assert.Same(r.Rle, r.Segmentation); break;
            }
            Assert.Equal(mask.LongCount(v => v), r.Area);
            Assert.True(r.Area > 0);
            // bbox (XYWH, inclusive max pixel) is the tight box of the mask, inside the image
            int x0 = w, y0 = h, x1 = -1, y1 = -1;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    if (mask[y * w + x]) { x0 = Math.Min(x0, x); y0 = Math.Min(y0, y); x1 = Math.Max(x1, x); y1 = Math.Max(y1, y); }
            Assert.Equal(new float[] { x0, y0, x1 - x0, y1 - y0 }, r.Bbox);
            Assert.True(r.Bbox[0] >= 0 && r.Bbox[1] >= 0 && r.Bbox[0] + r.Bbox[2] <= w - 1 && r.Bbox[1] + r.Bbox[3] <= h - 1);
            Assert.True(r.PredictedIou > opts.PredIouThresh, $"predicted IoU {r.PredictedIou}");
            Assert.True(r.StabilityScore >= opts.StabilityScoreThresh, $"stability {r.StabilityScore}");
            Assert.Single(r.PointCoords);
            var crop = r.CropBox;
            Assert.True(r.PointCoords[0][0] >= crop[0] && r.PointCoords[0][0] <= crop[0] + crop[2]);
            Assert.True(r.PointCoords[0][1] >= crop[1] && r.PointCoords[0][1] <= crop[1] + crop[3]);
            if (cropLayers == 0) Assert.Equal(new float[] { 0, 0, w, h }, crop);
        }
        // no two masks overlap above the NMS threshold (boxes as XYXY, as NMS saw them; crop NMS uses 0.7 as well)
        for (int i = 0; i < records.Count; i++)
            for (int j = i + 1; j < records.Count; j++)
                Assert.False(BoxIou(records[i].Bbox, records[j].Bbox) > opts.BoxNmsThresh, $"masks {i} and {j} overlap");
        if (cropLayers == 0)
        {
            // kept in NMS order: descending predicted IoU
            for (int i = 1; i < records.Count; i++) Assert.True(records[i - 1].PredictedIou >= records[i].PredictedIou);
        }
    }

    [Fact]
    public void Generate_StrictThresholds_CanReturnNothing()
    {
        if (Load() is not { } loaded) return;
        var (model, image) = loaded;
        using var _m = model;
        using var _i = image;
        using var amg = new AutomaticMaskGenerator(model, new AutomaticMaskGeneratorOptions { PointsPerSide = 2, PredIouThresh = 2.0 });
        Assert.Empty(amg.Generate(image));
        Assert.Throws<ArgumentException>(() => new AutomaticMaskGenerator(model, new AutomaticMaskGeneratorOptions { PointGrids = [Amg.build_point_grid(2)] }));
        Assert.Throws<ArgumentException>(() => new AutomaticMaskGenerator(model, new AutomaticMaskGeneratorOptions { OutputMode = "png" }));
        using var explicitGrid = new AutomaticMaskGenerator(model, new AutomaticMaskGeneratorOptions { PointsPerSide = null, PointGrids = [Amg.build_point_grid(2)], PredIouThresh = 2.0 });
        Assert.Empty(explicitGrid.Generate(image));
    }

    // Handles an earlier test dropped without disposing are freed by finalizers at random times.
    private static long SettledLiveTensors()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return TorchRuntime.LiveTensorCount;
    }

    private static float BoxIou(float[] a, float[] b)
    {
        float ax1 = a[0] + a[2], ay1 = a[1] + a[3], bx1 = b[0] + b[2], by1 = b[1] + b[3];
        float iw = MathF.Max(0, MathF.Min(ax1, bx1) - MathF.Max(a[0], b[0]));
        float ih = MathF.Max(0, MathF.Min(ay1, by1) - MathF.Max(a[1], b[1]));
        float inter = iw * ih;
        return inter / (a[2] * a[3] + b[2] * b[3] - inter);
    }

    private sealed class SyncProgress(Action<AmgProgress> report) : IProgress<AmgProgress>
    {
        public void Report(AmgProgress value) => report(value);
    }
}
