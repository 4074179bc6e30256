using System.Buffers.Binary;
using TorchSam2.Glyphs;
using TorchSam2.IO;
using TorchSam2.Training;
using TorchSam2.Utils;
using static TorchSharp.torch;

namespace TorchSam2.Tests.Cli;

// The library side of issue #14: limits, header sizes, prompt rules and option checks, on inputs generated here.
// (Kept beside the CLI tests: the command line is what reaches these paths with hostile input.)
public class LimitsTests
{
    private static string TempDir(string name)
    {
        var dir = Path.Combine(Path.GetTempPath(), "torchsam2-tests", $"{name}_{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        return dir;
    }

    // ---- image headers ------------------------------------------------------------------------------------------

    [Theory]
    [InlineData(".png", 1)]
    [InlineData(".png", 3)]
    [InlineData(".jpg", 3)]
    [InlineData(".bmp", 3)]
    [InlineData(".tiff", 3)]
    [InlineData(".webp", 3)]
    [InlineData(".ppm", 3)]
    [InlineData(".pgm", 1)]
    public void HeaderSizesMatchWhatOpenCvWrites(string ext, int channels)
    {
        var dir = TempDir("header");
        try
        {
            const int w = 37, h = 23;
            var path = Path.Combine(dir, "img" + ext);
            ImageIO.Write(path, new byte[w * h * channels], h, w, channels);
            Assert.Equal((w, h), ImageHeader.TryReadSize(path)!.Value);
            var decoded = ImageIO.Read(path);
            Assert.Equal((w, h), (decoded.Width, decoded.Height));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void HeadersOfGiantImagesAreReadAndRefusedUnread()
    {
        var dir = TempDir("giant");
        try
        {
            var files = new Dictionary<string, byte[]>
            {
                ["a.png"] = PngHeader(20000, 20000),
                ["a.jpg"] = JpegHeader(60000, 60000),
                ["a.bmp"] = BmpHeader(30000, -30000),
                ["a.gif"] = [.. "GIF89a"u8, 0x30, 0x75, 0x30, 0x75, 0, 0, 0],
                ["a.webp"] = WebPVp8X(40000, 40000),
                ["a.tif"] = TiffHeader(50000, 50000, bigEndian: true),
                ["a.ppm"] = "P6\n# a comment\n100000 100000\n255\n"u8.ToArray(),
            };
            foreach (var (name, bytes) in files)
            {
                var path = Path.Combine(dir, name);
                File.WriteAllBytes(path, bytes);
                var size = ImageHeader.TryReadSize(path);
                Assert.True(size is not null, name);
                Assert.True(size!.Value.width * size.Value.height > Limits.DefaultMaxImagePixels, name);
                var e = Assert.Throws<LimitExceededException>(() => ImageIO.Read(path));
                Assert.Contains("above the limit of 50 MP", e.Message);
                Assert.Contains(name, e.Message);
            }
            // garbage is no size at all (OpenCV then says it cannot read it)
            File.WriteAllBytes(Path.Combine(dir, "x.png"), "not an image at all"u8.ToArray());
            Assert.Null(ImageHeader.TryReadSize(Path.Combine(dir, "x.png")));
            Assert.Throws<InvalidDataException>(() => ImageIO.Read(Path.Combine(dir, "x.png")));
            Assert.Throws<LimitExceededException>(() => ImageIO.Decode(PngHeader(9000, 9000)));
        }
        finally { Directory.Delete(dir, true); }
    }

    internal static byte[] PngHeader(int w, int h)
    {
        var b = new byte[33];
        new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }.CopyTo(b, 0);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(8), 13);
        "IHDR"u8.CopyTo(b.AsSpan(12));
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(16), (uint)w);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(20), (uint)h);
        b[24] = 8;
        b[25] = 2;
        return b;
    }

    internal static byte[] JpegHeader(int w, int h)
    {
        var s = new List<byte> { 0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10 };
        s.AddRange("JFIF\0"u8.ToArray());
        s.AddRange(new byte[9]);
        s.AddRange(new byte[] { 0xFF, 0xC0, 0x00, 0x11, 0x08, (byte)(h >> 8), (byte)h, (byte)(w >> 8), (byte)w, 0x03 });
        s.AddRange(new byte[9]);
        s.AddRange(new byte[] { 0xFF, 0xD9 });
        return s.ToArray();
    }

    private static byte[] BmpHeader(int w, int h)
    {
        var b = new byte[54];
        b[0] = (byte)'B';
        b[1] = (byte)'M';
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(14), 40);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(18), w);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(22), h);
        return b;
    }

    private static byte[] WebPVp8X(int w, int h)
    {
        var b = new byte[30];
        "RIFF"u8.CopyTo(b);
        "WEBPVP8X"u8.CopyTo(b.AsSpan(8));
        b[16] = 10;
        int cw = w - 1, ch = h - 1;
        b[24] = (byte)cw; b[25] = (byte)(cw >> 8); b[26] = (byte)(cw >> 16);
        b[27] = (byte)ch; b[28] = (byte)(ch >> 8); b[29] = (byte)(ch >> 16);
        return b;
    }

    private static byte[] TiffHeader(int w, int h, bool bigEndian)
    {
        var b = new byte[8 + 2 + 2 * 12 + 4];
        void U16(int at, int v) { if (bigEndian) BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(at), (ushort)v); else BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(at), (ushort)v); }
        void U32(int at, uint v) { if (bigEndian) BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(at), v); else BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at), v); }
        b[0] = b[1] = (byte)(bigEndian ? 'M' : 'I');
        U16(2, 42);
        U32(4, 8);
        U16(8, 2);
        U16(10, 256); U16(12, 4); U32(14, 1); U32(18, (uint)w);
        U16(22, 257); U16(24, 4); U32(26, 1); U32(30, (uint)h);
        return b;
    }

    // ---- RLE and glyph evaluation -------------------------------------------------------------------------------

    private static bool[] RandomMask(Random rng, int h, int w, double density)
    {
        var m = new bool[h * w];
        // blobs, so runs are long and boundaries interesting
        for (int k = 0; k < 6; k++)
        {
            int cx = rng.Next(w), cy = rng.Next(h), r = 1 + rng.Next(Math.Max(2, Math.Min(h, w) / 3));
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r) m[y * w + x] = true;
        }
        for (int i = 0; i < m.Length; i++) if (rng.NextDouble() < density) m[i] = !m[i];
        return m;
    }

    private static Rle ToRle(bool[] rowMajor, int h, int w)
    {
        var col = new bool[h * w];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) col[x * h + y] = rowMajor[y * w + x];
        return Rle.Encode(col, h, w);
    }

    [Fact]
    public void RleBoxTightDecodeAndIntersectionMatchTheFullMasks()
    {
        var rng = new Random(7);
        for (int t = 0; t < 40; t++)
        {
            int h = 1 + rng.Next(30), w = 1 + rng.Next(30);
            var a = RandomMask(rng, h, w, t % 3 == 0 ? 0 : 0.05);
            var b = RandomMask(rng, h, w, 0.05);
            if (t == 5) Array.Clear(a);
            var ra = ToRle(a, h, w).Validate("a");
            var rb = ToRle(b, h, w);
            Assert.Equal(a, ra.DecodeRowMajor());
            Assert.Equal(a.Count(v => v) + 0L, ra.Area());
            long inter = a.Zip(b, (x, y) => x && y).LongCount(v => v);
            Assert.Equal(inter, Rle.IntersectionArea(ra, rb));
            var full = GlyphMask.FromFull(a, h, w);
            Assert.Equal(full.BBox, ra.BoundingBox());
            var (x0, y0, tw, th, bits) = ra.DecodeTight();
            var tight = new GlyphMask(x0, y0, tw, th, bits);
            Assert.Equal(full.ToFull(h, w), tight.ToFull(h, w));
        }
    }

    [Fact]
    public void HostileRlesAreRefused()
    {
        Assert.Throws<InvalidDataException>(() => new Rle(4, 4, [-5, 21]).Validate("x"));
        Assert.Throws<InvalidDataException>(() => new Rle(4, 4, [3, 4]).Validate("x"));
        Assert.Throws<LimitExceededException>(() => new Rle(20000, 20000, [400_000_000]).Validate("x"));
        Assert.Throws<InvalidDataException>(() => Rle.FromCocoString("ooooooo1", 4, 4));
        Assert.Throws<InvalidDataException>(() => new Rle(4, 4, [-5, 21]).DecodeRowMajor());
    }

    // The old boundary matching: every offset within the tolerance disc (O(tol²) per pixel).
    private static long MatchedBruteForce(bool[] a, bool[] b, int h, int w, int tol)
    {
        long n = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                if (!a[y * w + x]) continue;
                bool hit = false;
                for (int dy = -tol; dy <= tol && !hit; dy++)
                    for (int dx = -tol; dx <= tol && !hit; dx++)
                    {
                        int u = x + dx, v = y + dy;
                        hit = dx * dx + dy * dy <= tol * tol && u >= 0 && v >= 0 && u < w && v < h && b[v * w + u];
                    }
                if (hit) n++;
            }
        return n;
    }

    [Fact]
    public void DistanceTransformMatchingEqualsTheOffsetDisc()
    {
        var rng = new Random(3);
        for (int t = 0; t < 60; t++)
        {
            int h = 1 + rng.Next(40), w = 1 + rng.Next(40), tol = rng.Next(8);
            var a = RandomMask(rng, h, w, 0.1);
            var b = t % 7 == 0 ? new bool[h * w] : RandomMask(rng, h, w, 0.1);
            Assert.Equal(MatchedBruteForce(a, b, h, w, tol), GlyphEval.Matched(a, b, h, w, tol));
        }
    }

    [Fact]
    public void ToleranceIsCheckedAndLargeOnesCostNothingExtra()
    {
        var m = GlyphMask.FromFull(Enumerable.Range(0, 400 * 300).Select(i => i % 400 is > 50 and < 350 && i / 400 is > 40 and < 260).ToArray(), 300, 400);
        Assert.Throws<ArgumentOutOfRangeException>(() => GlyphEval.Evaluate(300, 400, [m], [m], -5));
        Assert.Throws<ArgumentOutOfRangeException>(() => GlyphEval.Evaluate(300, 400, [m], [m], 100_000));
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var r = GlyphEval.Evaluate(300, 400, [m], [m], Limits.MaxBoundaryTolerance);
        Assert.Equal((1.0, 1.0), (r.BoundaryF, r.MeanGlyphIoU));
        Assert.True(sw.Elapsed.TotalSeconds < 10, $"{sw.Elapsed}");
        Assert.Equal(1.0, GlyphEval.Evaluate(300, 400, [m], [m], 0).BoundaryF);
    }

    [Fact]
    public void HostileCocoFilesAreRefusedNamingTheFileAndEntry()
    {
        var dir = TempDir("coco");
        try
        {
            var cases = new Dictionary<string, (string json, string expect)>
            {
                ["dup.json"] = ("""{"images":[{"id":1,"file_name":"a.png","width":4,"height":4},{"id":1,"file_name":"b.png","width":4,"height":4}],"annotations":[]}""", "image id 1 appears more than once"),
                ["huge.json"] = ("""{"images":[{"id":1,"file_name":"a.png","width":20000,"height":20000}],"annotations":[{"id":1,"image_id":1,"segmentation":{"size":[20000,20000],"counts":"0"}}]}""", "above the limit of 50 MP"),
                ["size.json"] = ("""{"images":[{"id":1,"file_name":"a.png","width":4,"height":4}],"annotations":[{"id":1,"image_id":1,"segmentation":{"size":[5,4],"counts":[20]}}]}""", "differs from image 1"),
                ["neg.json"] = ("""[{"image_id":1,"segmentation":{"size":[4,4],"counts":[-4,20]}}]""", "negative run"),
                ["short.json"] = ("""[{"image_id":1,"segmentation":{"size":[4,4],"counts":[3]}}]""", "covers 3 pixels"),
                ["type.json"] = ("""[{"image_id":"one","segmentation":{"size":[4,4],"counts":[16]}}]""", "'image_id' must be a whole number"),
                ["float.json"] = ("""[{"image_id":1.5,"segmentation":{"size":[4,4],"counts":[16]}}]""", "'image_id' must be a whole number"),
                ["big.json"] = ("""[{"image_id":1e300,"segmentation":{"size":[4,4],"counts":[16]}}]""", "'image_id' must be a whole number"),
                ["dupkey.json"] = ("""{"images":[],"annotations":[],"annotations":[]}""", "dupkey.json"),
                ["bad.json"] = ("""{"images": [""", "is not valid JSON"),
                ["deep.json"] = (new string('[', 5000) + new string(']', 5000), "is not valid JSON"),
                ["poly.json"] = ("""[{"image_id":1,"segmentation":[[0,0,1,1,2,0]]}]""", "polygons are not supported"),
            };
            foreach (var (name, (json, expect)) in cases)
            {
                var path = Path.Combine(dir, name);
                File.WriteAllText(path, json);
                var e = Assert.ThrowsAny<Exception>(() => GlyphCoco.Load(path));
                Assert.True(e is InvalidDataException or LimitExceededException, $"{name}: {e.GetType().Name}: {e.Message}");
                Assert.Contains(expect, e.Message);
                Assert.Contains(name, e.Message);
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void EvaluationOfManyFullImageMasksNeedsNoPerMaskImage()
    {
        // 60 annotations covering the whole of a 4000×3000 image: decoded, they would take 720 MB; compared as
        // runs they take nothing beyond the image's own maps.
        const int h = 3000, w = 4000;
        var full = new Rle(h, w, [0, h * w]);
        var coco = new GlyphCoco();
        coco.Images.Add(new CocoImage(1, "a.png", w, h));
        for (int i = 0; i < 60; i++) coco.Annotations.Add(new CocoGlyph(i + 1, 1, full));
        long before = GC.GetAllocatedBytesForCurrentThread();
        var r = GlyphEval.Evaluate(coco, coco);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal((1.0, 1.0, 1.0), (r.ForegroundIoU, r.MeanGlyphIoU, r.BoundaryF));
        Assert.True(allocated < 400L << 20, $"allocated {allocated >> 20} MB");
    }

    // ---- work limits --------------------------------------------------------------------------------------------

    [Fact]
    public void CropLayersPointsAndThresholdsAreBounded()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Amg.generate_crop_boxes((48, 64), 12, 512.0 / 1500));
        Assert.Throws<ArgumentOutOfRangeException>(() => Amg.generate_crop_boxes((48, 64), -1, 512.0 / 1500));
        Assert.Throws<ArgumentOutOfRangeException>(() => Amg.generate_crop_boxes((48, 64), 1, double.NaN));
        var (boxes, _) = Amg.generate_crop_boxes((48, 64), Limits.MaxCropLayers, 512.0 / 1500);
        Assert.Equal(1 + 4 + 16 + 64 + 256, boxes.Count);
        Assert.Throws<ArgumentOutOfRangeException>(() => Amg.build_all_layer_point_grids(100_000, 0, 1));
        foreach (var bad in new[]
                 {
                     new AutomaticMaskGeneratorOptions { CropNLayers = 12 },
                     new AutomaticMaskGeneratorOptions { PointsPerSide = 100_000 },
                     new AutomaticMaskGeneratorOptions { PointsPerBatch = 0 },
                     new AutomaticMaskGeneratorOptions { PointsPerBatch = 1_000_000 },
                     new AutomaticMaskGeneratorOptions { PredIouThresh = double.NaN },
                     new AutomaticMaskGeneratorOptions { BoxNmsThresh = 1.5 },
                     new AutomaticMaskGeneratorOptions { StabilityScoreThresh = double.PositiveInfinity },
                     new AutomaticMaskGeneratorOptions { PointsPerSide = null, PointGrids = [[[double.NaN, 0.5]]] },
                 })
            Assert.Throws<ArgumentOutOfRangeException>(() => AutomaticMaskGenerator.Validate(bad));
        AutomaticMaskGenerator.Validate(new AutomaticMaskGeneratorOptions { PredIouThresh = 2.0 }); // keeps nothing, but legal
    }

    [Fact]
    public void SheetsOfSpecksAreRefusedBeforeGrouping()
    {
        // 2×2 dots every 4 pixels: 16,384 candidates on 512², refused at a limit of 1,000 (components checked first)
        const int s = 512;
        var px = Enumerable.Repeat((byte)255, s * s * 3).ToArray();
        for (int y = 0; y < s; y += 4)
            for (int x = 0; x < s; x += 4)
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++)
                        for (int c = 0; c < 3; c++) px[((y + dy) * s + x + dx) * 3 + c] = 0;
        var sheet = new RgbImage(px, s, s);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.Throws<LimitExceededException>(() => GlyphSegmenter.FindCandidates(sheet, 3, maxCandidates: 1_000));
        Assert.Contains("16,384 separate ink components", e.Message);
        e = Assert.Throws<LimitExceededException>(() => GlyphSegmenter.FindCandidates(sheet, 3, maxCandidates: 10_000));
        Assert.Contains("16,384 glyph candidates", e.Message);
        Assert.Equal(16_384, GlyphSegmenter.FindCandidates(sheet, 3, maxCandidates: 20_000).Count);
        // specks below the minimum area are not candidates
        Assert.Empty(GlyphSegmenter.FindCandidates(sheet, 5, maxCandidates: 5_000));
        Assert.True(sw.Elapsed.TotalSeconds < 60, $"{sw.Elapsed}");
    }

    [Fact]
    public void InstanceMasksPerImageAreBounded()
    {
        // 33×33 pixels, each its own colour: 1,089 instances, each a full-size mask
        var px = new byte[33 * 33 * 3];
        for (int i = 0; i < 33 * 33; i++) { px[3 * i] = (byte)(i >> 8); px[3 * i + 1] = (byte)i; px[3 * i + 2] = 1; }
        var e = Assert.Throws<LimitExceededException>(() => MaskFolderDataset.MasksFromIds(new RgbImage(px, 33, 33)));
        Assert.Contains("1,089 distinct colours", e.Message);
    }

    // ---- prompts and options ------------------------------------------------------------------------------------

    [Fact]
    public void PromptRulesAreTheSameForEveryCaller()
    {
        PromptChecks.CheckPoint(64, 48, 64, 48, "point");
        Assert.Throws<ArgumentOutOfRangeException>(() => PromptChecks.CheckPoint(65, 5, 64, 48, "point"));
        Assert.Throws<ArgumentOutOfRangeException>(() => PromptChecks.CheckPoint(double.NaN, 5, 64, 48, "point"));
        Assert.Throws<ArgumentOutOfRangeException>(() => PromptChecks.CheckPoint(5, double.NegativeInfinity, 64, 48, "point"));
        Assert.Throws<ArgumentException>(() => PromptChecks.CheckBox([10, 10, 5, 20], 64, 48, "box"));
        Assert.Throws<ArgumentException>(() => PromptChecks.CheckBox([10, 10, 5], 64, 48, "box"));
        Assert.Throws<ArgumentOutOfRangeException>(() => PromptChecks.CheckLabel(7));
    }

    [Fact]
    public void VideoPromptsFollowTheImageRules()
    {
        var dir = Path.Combine(TestPaths.ParityDir, "micro_video");
        if (!File.Exists(Path.Combine(dir, "case.json")))
        {
            Assert.False(CliProcess.InCi, $"parity case missing: {dir}");
            return;
        }
        using var p = Sam2VideoPredictor.Build(Path.Combine(dir, "model.yaml"), Path.Combine(dir, "weights.safetensors"));
        manual_seed(0);
        using var frames = randn([2, 3, p.ImageSize, p.ImageSize]);
        using var s = p.InitState(frames, 48, 64);
        Assert.Throws<ArgumentOutOfRangeException>(() => p.AddNewPointsOrBox(s, 0, 1, [[65f, 5f]], [1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => p.AddNewPointsOrBox(s, 0, 1, [[float.NaN, 5f]], [1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => p.AddNewPointsOrBox(s, 0, 1, [[5f, 5f]], [9]));
        Assert.Throws<ArgumentException>(() => p.AddNewPointsOrBox(s, 0, 1, box: [30f, 30f, 10f, 40f]));
        Assert.Throws<ArgumentOutOfRangeException>(() => p.AddNewPointsOrBox(s, 0, 1, [[0.5f, 2f]], [1], normalizeCoords: false));
        p.AddNewPointsOrBox(s, 0, 1, [[64f, 48f]], [1]).videoResMasks.Dispose(); // the far corner is inside
    }

    [Fact]
    public void TrainingOptionsAreValidated()
    {
        new TrainerOptions().Validate();
        foreach (var bad in new[]
                 {
                     new TrainerOptions { Prompts = new PromptSimulationOptions { NumCorrectionPtPerFrame = -1 } },
                     new TrainerOptions { Lr = double.NaN },
                     new TrainerOptions { Lr = -1 },
                     new TrainerOptions { Epochs = 0 },
                     new TrainerOptions { BatchSize = 0 },
                     new TrainerOptions { MaxObjectsPerImage = 0 },
                     new TrainerOptions { GradClip = double.PositiveInfinity },
                     new TrainerOptions { Augment = new AugmentationOptions { HorizontalFlipProb = 2 } },
                     new TrainerOptions { Prompts = new PromptSimulationOptions { Method = "magic" } },
                 })
            Assert.Throws<ArgumentOutOfRangeException>(bad.Validate);
        Assert.Throws<ArgumentOutOfRangeException>(() => new VideoPromptOptions { NumCorrectionPtPerFrame = -1 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new VideoPromptOptions { ProbToUseBoxInput = double.NaN }.Validate());
    }

    [Fact]
    public void CocoTrainingDataIsHeldToTheLimits()
    {
        var dir = TempDir("cocotrain");
        try
        {
            new RgbImage(new byte[8 * 6 * 3], 6, 8).Save(Path.Combine(dir, "a.png"));
            File.WriteAllText(Path.Combine(dir, "huge.json"),
                """{"images":[{"id":1,"file_name":"a.png","width":20000,"height":20000}],"annotations":[{"id":1,"image_id":1,"segmentation":{"size":[20000,20000],"counts":"0"}}]}""");
            Assert.Throws<LimitExceededException>(() => new CocoSegmentationDataset(Path.Combine(dir, "huge.json")));
            File.WriteAllText(Path.Combine(dir, "dup.json"),
                """{"images":[{"id":1,"file_name":"a.png"},{"id":1,"file_name":"a.png"}],"annotations":[]}""");
            Assert.Contains("appears more than once", Assert.Throws<InvalidDataException>(() => new CocoSegmentationDataset(Path.Combine(dir, "dup.json"))).Message);
            // sizes in the JSON are checked against the actual image
            File.WriteAllText(Path.Combine(dir, "lie.json"),
                """{"images":[{"id":1,"file_name":"a.png","width":4000,"height":3000}],"annotations":[{"id":1,"image_id":1,"segmentation":{"size":[3000,4000],"counts":[12000000]}}]}""");
            var e = Assert.Throws<InvalidDataException>(() => new CocoSegmentationDataset(Path.Combine(dir, "lie.json")).Get(0));
            Assert.Contains("is 8x6 but its annotations say 4000x3000", e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }
}
