using System.IO.Compression;
using System.Security.Cryptography;
using System.Text.Json;
using TorchSam2.Checkpoints;
using TorchSam2.Glyphs;
using TorchSam2.IO;
using TorchSharp;

namespace TorchSam2.Tests.Cli;

/// <summary>
/// Hostile and careless inputs, generated once per test class: a 20000² PNG (1.7 MB on disk), JPEG/COCO headers
/// claiming gigapixels, a sheet of 65k specks, NaN weights, a folder of frames, ...
/// </summary>
public sealed class HostileFiles : IDisposable
{
    public string Dir { get; } = Path.Combine(Path.GetTempPath(), "torchsam2-tests", "hostile_" + Guid.NewGuid().ToString("N"));
    public string CaseDir => Path.Combine(TestPaths.ParityDir, "micro_image");
    public bool Ready => File.Exists(CliProcess.Dll()) && File.Exists(Path.Combine(CaseDir, "weights.safetensors"));
    public string Weights => Path.Combine(CaseDir, "weights.safetensors");
    public string Config => Path.Combine(CaseDir, "model.yaml");
    public string[] Model => ["--checkpoint", Weights, "--config", Config];

    public string Small => Path.Combine(Dir, "small.png");
    public string HugePng => Path.Combine(Dir, "huge.png");
    public string HugeJpg => Path.Combine(Dir, "huge.jpg");
    public string Frames => Path.Combine(Dir, "frames");
    public string NanWeights => Path.Combine(Dir, "nan.safetensors");

    public HostileFiles()
    {
        Directory.CreateDirectory(Dir);
        if (!Ready) return;
        // 64×48 with a bright square
        var px = new byte[48 * 64 * 3];
        for (int y = 10; y < 30; y++)
            for (int x = 20; x < 44; x++)
                for (int c = 0; c < 3; c++) px[(y * 64 + x) * 3 + c] = 220;
        new RgbImage(px, 48, 64).Save(Small);
        File.WriteAllBytes(HugePng, GrayPng(20000, 20000));
        File.WriteAllBytes(HugeJpg, LimitsTests.JpegHeader(60000, 60000));
        Directory.CreateDirectory(Frames);
        for (int f = 0; f < 4; f++)
        {
            var fp = new byte[48 * 64 * 3];
            for (int y = 10; y < 30; y++)
                for (int x = 10 + 4 * f; x < 30 + 4 * f; x++)
                    for (int c = 0; c < 3; c++) fp[(y * 64 + x) * 3 + c] = 230;
            new RgbImage(fp, 48, 64).Save(Path.Combine(Frames, $"{f:D5}.png"));
        }
        // every weight NaN: scores come out NaN, the loss too
        var sd = SafeTensors.Read(Weights).Tensors;
        var nan = sd.ToDictionary(kv => kv.Key, kv => kv.Value.DType == torch.ScalarType.Float32
            ? TensorRecord.FromFloat32(kv.Value.Shape, Enumerable.Repeat(float.NaN, (int)TensorRecord.CountElements(kv.Value.Shape)).ToArray())
            : kv.Value);
        SafeTensors.Write(NanWeights, nan);
    }

    /// <summary>A valid 8-bit gray PNG of zeros (all rows filter 0), deflated as it is written: 20000² is 1.7 MB.</summary>
    public static byte[] GrayPng(int w, int h)
    {
        using var idat = new MemoryStream();
        using (var z = new ZLibStream(idat, CompressionLevel.Optimal, leaveOpen: true))
        {
            var row = new byte[w + 1];
            for (int y = 0; y < h; y++) z.Write(row);
        }
        using var png = new MemoryStream();
        png.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(ihdr, (uint)w);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(ihdr.AsSpan(4), (uint)h);
        ihdr[8] = 8;
        Chunk(png, "IHDR", ihdr);
        Chunk(png, "IDAT", idat.ToArray());
        Chunk(png, "IEND", []);
        return png.ToArray();
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        var head = new byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(head, (uint)data.Length);
        System.Text.Encoding.ASCII.GetBytes(type).CopyTo(head, 4);
        s.Write(head);
        s.Write(data);
        uint crc = Crc(Crc(0xFFFFFFFF, head.AsSpan(4)), data) ^ 0xFFFFFFFF;
        var c = new byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(c, crc);
        s.Write(c);
    }

    private static uint Crc(uint crc, ReadOnlySpan<byte> data)
    {
        foreach (var b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? 0xEDB88320 ^ (crc >> 1) : crc >> 1;
        }
        return crc;
    }

    public string Write(string name, string text)
    {
        var p = Path.Combine(Dir, name);
        Directory.CreateDirectory(Path.GetDirectoryName(p)!);
        File.WriteAllText(p, text);
        return p;
    }

    public string NewDir(string name)
    {
        var p = Path.Combine(Dir, name + "_" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(p);
        return p;
    }

    /// <summary>SHA-256 of every file under a folder (hidden ones too), by relative path.</summary>
    public static Dictionary<string, string> Snapshot(string dir)
    {
        if (!Directory.Exists(dir)) return [];
        return Directory.EnumerateFiles(dir, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
            .ToDictionary(f => Path.GetRelativePath(dir, f), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));
    }

    public static string Hash(string file) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file)));

    public void Dispose()
    {
        try { Directory.Delete(Dir, true); }
        catch (IOException) { }
    }
}

/// <summary>
/// The command line under hostile and careless input (issue #14): every run must end with exit code 1 or 2 (never a
/// crash), say what went wrong in one line without a stack trace, leave inputs and earlier outputs as they were, and
/// stay within bounded memory where the input is a memory bomb.
/// </summary>
public sealed class HostileInputTests(HostileFiles f) : IClassFixture<HostileFiles>
{
    private const long MemoryBoundBytes = 1536L << 20; // 1.5 GB

    private bool Skip()
    {
        if (f.Ready) return false;
        Assert.False(CliProcess.InCi, $"CI=true but the CLI or {f.CaseDir} is missing");
        return true;
    }

    // arguments are strings or string arrays (spliced in), e.g. Run("segment", image, f.Model, "--point", "5,5")
    private static CliResult Run(params object[] args) => CliProcess.Run(300_000, null, Flatten(args));
    private static CliResult RunEnv(Dictionary<string, string?> env, params object[] args) => CliProcess.Run(300_000, env, Flatten(args));

    // One libtorch thread unless a test says otherwise: the machine is shared with other test classes.
    private static readonly string[] Threaded = ["segment", "auto", "track", "glyphs", "bench", "finetune"];

    private static string[] Flatten(object[] args)
    {
        var flat = args.SelectMany(a => a as string[] ?? [(string)a]).ToList();
        if (flat.Count > 0 && Threaded.Contains(flat[0]) && !flat.Contains("--threads")) flat.AddRange(["--threads", "1"]);
        return flat.ToArray();
    }

    /// <summary>Exit code as expected, one "error:" line naming what it must, no stack frames, no crash.</summary>
    private static void AssertFails(CliResult r, int code, params string[] mentions)
    {
        string all = r.Output;
        Assert.False(r.TimedOut, "timed out: " + all);
        Assert.True(r.Code == code, $"exit code {r.Code}, expected {code}: {all}");
        Assert.DoesNotContain("   at ", all);
        Assert.DoesNotContain("Unhandled exception", all);
        var errorLines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith("warning:") && !l.StartsWith("note:")).ToList();
        Assert.True(errorLines.Count == 1, $"expected one error line, got {errorLines.Count}: {r.Stderr}");
        Assert.StartsWith("error: ", errorLines[0]);
        foreach (var m in mentions) Assert.Contains(m, errorLines[0]);
    }

    // ---- 1. one validation for prompts and numbers -----------------------------------------------------------

    [Fact]
    public void PromptsAreValidatedTheSameWayBySegmentAndTrack()
    {
        if (Skip()) return;
        var outDir = f.NewDir("prompts");
        string[] seg(params string[] a) => ["segment", f.Small, .. f.Model, "--out", outDir, .. a];
        string[] trk(params string[] a) => ["track", f.Frames, .. f.Model, "--out", outDir, .. a];
        var cases = new (string[] args, string[] mentions)[]
        {
            (seg("--point", "5,5,1.9"), ["--point", "5,5,1.9", "label must be 0"]),
            (seg("--point", "5,5,NaN"), ["--point", "NaN"]),
            (seg("--point", "NaN,5"), ["--point", "NaN"]),
            (seg("--point", "5,1e39"), ["--point", "1e39"]),
            (seg("--point", "5"), ["--point", "'5'"]),
            (seg("--point", "500,5"), ["--point", "(500, 5)", "outside the image"]),
            (seg("--point", "-1,5"), ["--point", "(-1, 5)", "outside the image"]),
            (seg("--box", "30,30,10,40"), ["--box", "30,30,10,40", "x1 < x0"]),
            (seg("--box", "1,2,3"), ["--box", "4 comma-separated numbers"]),
            (seg("--box", "0,0,65,20"), ["--box", "outside the image"]),
            (seg(), ["--point or a --box"]),
            (trk("--obj", "1:point:5,5,1.9"), ["--obj 1:point", "label must be 0"]),
            (trk("--obj", "1:point:5,5,NaN"), ["--obj 1:point", "NaN"]),
            (trk("--obj", "1:point:500,5"), ["--obj 1:point", "(500, 5)", "outside the image"]),
            (trk("--obj", "1:box:30,30,10,40"), ["--obj 1:box", "x1 < x0"]),
            (trk("--obj", "1:box:0,0,65,20"), ["--obj 1:box", "outside the image"]),
            (trk("--obj", "0:point:5,5"), ["--obj", "1..255"]),
            (trk("--obj", "300:point:5,5"), ["--obj", "1..255"]),
            (trk("--obj", "1:circle:5,5"), ["--obj", "circle"]),
            (trk("--obj", "1:point:5,5", "--frame", "9"), ["--frame 9", "outside the video (0..3)"]),
            (trk("--obj", "1:point:5,5", "--frame", "-1"), ["--frame", "-1"]),
            (trk(), ["--obj"]),
        };
        foreach (var (args, mentions) in cases) AssertFails(Run(args), 2, mentions);
        Assert.Empty(Directory.EnumerateFileSystemEntries(outDir));
        Assert.Empty(Directory.EnumerateFileSystemEntries(f.Dir, ".prompts*"));
    }

    [Fact]
    public void NumbersAreFiniteInRangeAndWholeEverywhere()
    {
        if (Skip()) return;
        var outDir = f.NewDir("numbers");
        string[] img = [f.Small, .. f.Model, "--out", outDir];
        var cases = new (string[] args, string option, string value)[]
        {
            (["segment", .. img, "--point", "5,5", "--threads", "100000"], "--threads", "100000"),
            (["segment", .. img, "--point", "5,5", "--threads", "-1"], "--threads", "-1"),
            (["segment", .. img, "--point", "5,5", "--threads", "abc"], "--threads", "abc"),
            (["segment", .. img, "--point", "5,5", "--device", "gpu"], "--device", "gpu"),
            (["auto", .. img, "--crop-n-layers", "12"], "--crop-n-layers", "12"),
            (["auto", .. img, "--points-per-side", "0"], "--points-per-side", "0"),
            (["auto", .. img, "--points-per-side", "100000"], "--points-per-side", "100000"),
            (["auto", .. img, "--points-per-batch", "0"], "--points-per-batch", "0"),
            (["auto", .. img, "--box-nms-thresh", "NaN"], "--box-nms-thresh", "NaN"),
            (["auto", .. img, "--pred-iou-thresh", "NaN"], "--pred-iou-thresh", "NaN"),
            (["auto", .. img, "--stability-score-thresh", "Infinity"], "--stability-score-thresh", "Infinity"),
            (["auto", .. img, "--min-mask-region-area", "-1"], "--min-mask-region-area", "-1"),
            (["glyphs", .. img, "--max-glyphs", "0"], "--max-glyphs", "0"),
            (["glyphs", .. img, "--min-glyph-area", "-1"], "--min-glyph-area", "-1"),
            (["glyphs", .. img, "--split-method", "watershed"], "--split-method", "watershed"),
            (["glyphs", .. img, "--centre-zoom", "0.5"], "--centre-zoom", "0.5"),
            (["glyphs", .. img, "--centre-zoom", "NaN"], "--centre-zoom", "NaN"),
            (["glyphs", .. img, "--centre-zoom", "4"], "--centre-zoom", "4"),
            (["glyphs", .. img, "--centre-zoom-height", "0"], "--centre-zoom-height", "0"),
            (["glyphs", .. img, "--split-method", "cores", "--centres", f.Small], "--centres", "--split-method centres"),
            (["train-centres", "--out", Path.Combine(outDir, "c.safetensors"), "--crop", "100"], "--crop", "100"),
            (["train-centres", "--out", Path.Combine(outDir, "c.safetensors"), "--steps", "0"], "--steps", "0"),
            (["train-centres", "--out", Path.Combine(outDir, "c.safetensors"), "--lr", "NaN"], "--lr", "NaN"),
            (["train-centres", "--out", Path.Combine(outDir, "c.safetensors"), "--min-width-scale", "0.1"], "--min-width-scale", "0.1"),
            (["train-centres", "--out", Path.Combine(outDir, "c.safetensors"), "--min-width-scale", "0.9", "--max-width-scale", "0.8"], "width scales", "0.9..0.8"),
            (["train-centres", "--out", Path.Combine(outDir, "c.safetensors"), "--widen", "8,8"], "--widen", "8,8"),
            (["train-centres", "--out", Path.Combine(outDir, "c.safetensors"), "--widen", "32,24,32,48,64"], "--widen", "--from"),
            (["glyphs", .. img, "--threads", "100000"], "--threads", "100000"),
            (["bench", "--config", f.Config, "--image-size", "-32"], "--image-size", "-32"),
            (["bench", "--config", f.Config, "--image-size", "100"], "--image-size", "100"),
            (["bench", "--config", f.Config, "--repeats", "0"], "--repeats", "0"),
            (["bench", "--config", f.Config, "--video-frames", "1"], "--video-frames", "1"),
            (["bench", "--config", f.Config, "--threads", "100000"], "--threads", "100000"),
            (["specimens", outDir, "--noise", "NaN"], "--noise", "NaN"),
            (["specimens", outDir, "--noise", "-1"], "--noise", "-1"),
            (["specimens", outDir, "--count", "0"], "--count", "0"),
            (["specimens", outDir, "--width", "100000"], "--width", "100000"),
            (["specimens", outDir, "--width", "16384", "--height", "16384"], "--width × --height", "16384x16384"),
            (["specimens", outDir, "--split", "[red]x:train:"], "--split", "[red]x:train:"),
            (["eval", "--pred", f.Small, "--gt", f.Small, "--tolerance", "-5"], "--tolerance", "-5"),
            (["eval", "--pred", f.Small, "--gt", f.Small, "--tolerance", "100000"], "--tolerance", "100000"),
            (["finetune", "--config", f.Config, "--data", "glyph-crops:train:2", "--out", outDir, "--correction-clicks", "-1"], "--correction-clicks", "-1"),
            (["finetune", "--config", f.Config, "--data", "glyph-crops:train:2", "--out", outDir, "--lr", "NaN"], "--lr", "NaN"),
            (["finetune", "--config", f.Config, "--data", "glyph-crops:train:2", "--out", outDir, "--lr", "-1"], "--lr", "-1"),
            (["finetune", "--config", f.Config, "--data", "glyph-crops:train:2", "--out", outDir, "--epochs", "0"], "--epochs", "0"),
            (["finetune", "--config", f.Config, "--data", "glyph-crops:train:2", "--out", outDir, "--batch-size", "0"], "--batch-size", "0"),
            (["finetune", "--config", f.Config, "--data", "glyph-crops:train:2", "--out", outDir, "--image-size", "100"], "--image-size", "100"),
            (["finetune", "--config", f.Config, "--data", "glyph-crops:train:2", "--out", outDir, "--max-objects", "0"], "--max-objects", "0"),
            (["finetune", "--config", f.Config, "--data", "glyph-crops:train:2", "--out", outDir, "--clip-frames", "0"], "--clip-frames", "0"),
            (["finetune", "--config", f.Config, "--data", "glyph-crops:train:0", "--out", outDir], "--data", "glyph-crops:train:0"),
            (["finetune", "--config", f.Config, "--data", "glyph-crops:train:2:x", "--out", outDir], "--data", "glyph-crops:train:2:x"),
            (["track", f.Frames, .. f.Model, "--obj", "1:point:5,5", "--out", outDir, "--threads", "100000"], "--threads", "100000"),
        };
        foreach (var (args, option, value) in cases) AssertFails(Run(args), 2, option, value);
        // widening to fewer channels than the weights have: refused before training, naming the widths they have
        var narrowDir = Directory.CreateTempSubdirectory("narrow").FullName;
        try
        {
            var narrow = Path.Combine(narrowDir, "n.safetensors");
            using (var n = new GlyphCentreNet([4, 4, 8, 8, 8])) n.Save(narrow);
            AssertFails(Run(["train-centres", "--out", Path.Combine(outDir, "c.safetensors"), "--from", narrow, "--widen", "2,4,8,8,8"]), 2, "--widen", "4,4,8,8,8");
        }
        finally { Directory.Delete(narrowDir, true); }
        // glyph-centre weights that are not weights: a failure naming the file
        AssertFails(Run(["glyphs", .. img, "--centres", f.Small]), 1, "small.png", "safetensors");
        Assert.Empty(Directory.EnumerateFileSystemEntries(outDir));
        // unknown options and missing arguments are usage errors too
        AssertFails(Run("segment", f.Small, "--bogus"), 2, "--bogus");
        AssertFails(Run("nonsense"), 2, "nonsense");
        AssertFails(Run(), 2, "command");
    }

    // ---- 2. limits ------------------------------------------------------------------------------------------

    [Fact]
    public void ImageBombsAreRefusedBeforeTheyAreDecoded()
    {
        if (Skip()) return;
        var outDir = f.NewDir("imgbomb");
        var frames = f.NewDir("bombframes");
        File.Copy(f.HugePng, Path.Combine(frames, "00000.png"));
        var masks = f.NewDir("bombmasks");
        File.Copy(f.HugePng, Path.Combine(masks, "a.png"));
        File.Copy(f.HugePng, Path.Combine(masks, "a_mask.png"));
        foreach (var bomb in new[] { f.HugePng, f.HugeJpg })
        {
            var name = Path.GetFileName(bomb);
            string[][] runs =
            [
                ["segment", bomb, .. f.Model, "--point", "5,5", "--out", outDir],
                ["auto", bomb, .. f.Model, "--out", outDir],
                ["glyphs", bomb, .. f.Model, "--out", outDir],
                ["bench", "--config", f.Config, "--checkpoint", f.Weights, "--image", bomb, "--repeats", "1"],
            ];
            foreach (var args in runs)
            {
                var r = Run(args);
                AssertFails(r, 1, name, "above the limit of 50 MP", "TORCHSAM2_MAX_IMAGE_PIXELS");
                Assert.True(r.PeakRssBytes < MemoryBoundBytes, $"{args[0]} {name}: peak RSS {r.PeakRssMb:F0} MB");
            }
        }
        var t = Run("track", frames, f.Model, "--obj", "1:point:5,5", "--out", outDir);
        AssertFails(t, 1, "00000.png", "above the limit of 50 MP");
        Assert.True(t.PeakRssBytes < MemoryBoundBytes, $"track: peak RSS {t.PeakRssMb:F0} MB");
        var ft = Run("finetune", "--config", f.Config, "--data", masks, "--out", Path.Combine(outDir, "ft"), "--no-augment");
        AssertFails(ft, 1, "above the limit of 50 MP");
        Assert.True(ft.PeakRssBytes < MemoryBoundBytes, $"finetune: peak RSS {ft.PeakRssMb:F0} MB");
        Assert.Empty(Directory.EnumerateFileSystemEntries(outDir));
        // the limit is the user's to move: a tiny one refuses even the small image
        AssertFails(RunEnv(new() { ["TORCHSAM2_MAX_IMAGE_PIXELS"] = "1000" }, "segment", f.Small, f.Model, "--point", "5,5", "--out", outDir), 1, "above the limit");
        AssertFails(RunEnv(new() { ["TORCHSAM2_MAX_IMAGE_PIXELS"] = "lots" }, "segment", f.Small, f.Model, "--point", "5,5", "--out", outDir), 1, "TORCHSAM2_MAX_IMAGE_PIXELS", "lots");
        // broken files: one line each
        var corrupt = f.Write("corrupt.png", "not an image");
        AssertFails(Run("segment", corrupt, f.Model, "--point", "5,5", "--out", outDir), 1, "corrupt.png");
        var truncated = Path.Combine(f.Dir, "truncated.png");
        File.WriteAllBytes(truncated, File.ReadAllBytes(f.Small)[..60]);
        AssertFails(Run("segment", truncated, f.Model, "--point", "5,5", "--out", outDir), 1, "truncated.png");
        AssertFails(Run("segment", Path.Combine(f.Dir, "missing.png"), f.Model, "--point", "5,5", "--out", outDir), 1, "missing.png");
        Assert.Empty(Directory.EnumerateFileSystemEntries(outDir));
    }

    [Fact]
    public void AnnotationBombsAreRefusedOrCostOnlyTheirImage()
    {
        if (Skip()) return;
        // 431 bytes claiming a 20000² image with full-image annotations
        var bomb = f.Write("coco_bomb.json",
            """{"images":[{"id":1,"file_name":"a.png","width":20000,"height":20000}],"annotations":[""" +
            string.Join(",", Enumerable.Range(1, 4).Select(i => $$$"""{"id":{{{i}}},"image_id":1,"segmentation":{"size":[20000,20000],"counts":"0"}}""")) + "]}");
        var r = Run("eval", "--gt", bomb, "--pred", bomb);
        AssertFails(r, 1, "coco_bomb.json", "20000x20000", "above the limit of 50 MP");
        Assert.True(r.PeakRssBytes < MemoryBoundBytes, $"peak RSS {r.PeakRssMb:F0} MB");
        var ft = Run("finetune", "--config", f.Config, "--data", bomb, "--out", f.NewDir("ftbomb"));
        AssertFails(ft, 1, "above the limit of 50 MP");

        // within the image limit: 7000×7000 (49 MP) with 60 full-image annotations. Decoded one by one these would be
        // 2.9 GB; compared as run lengths the evaluation costs the image's own maps.
        var big = f.Write("coco_big.json",
            """{"images":[{"id":1,"file_name":"a.png","width":7000,"height":7000}],"annotations":[""" +
            string.Join(",", Enumerable.Range(1, 60).Select(i => $$$"""{"id":{{{i}}},"image_id":1,"segmentation":{"size":[7000,7000],"counts":[0,49000000]}}""")) + "]}");
        var ok = Run("eval", "--gt", big, "--pred", big, "--json", "--tolerance", "256");
        Assert.True(ok.Code == 0, ok.Output);
        using (var j = JsonDocument.Parse(ok.Stdout))
        {
            var root = j.RootElement;
            Assert.Equal(1.0, root.GetProperty("boundary_f").GetDouble());
            foreach (var key in new[] { "fg_iou", "mean_glyph_iou", "recall50", "precision50", "thin_stroke_recall" })
                Assert.InRange(root.GetProperty(key).GetDouble(), 0, 1);
            // 60 identical masks on each side, matched one to one
            Assert.Equal((60, 60), (root.GetProperty("matched").GetInt32(), root.GetProperty("matched50").GetInt32()));
            Assert.Equal(JsonValueKind.Object, root.GetProperty("bands").ValueKind); // no attributes: no bands
        }
        // with attributes (a 1-px column, italic, 9 px, "fi" so a ligature): bands in the JSON and in the table
        var banded = f.Write("coco_bands.json", """{"images":[{"id":1,"file_name":"a.png","width":4,"height":4}],"annotations":[{"id":1,"image_id":1,"segmentation":{"size":[4,4],"counts":[0,4,12]},"attributes":{"font":"X-Italic","char":"fi","size_px":9}}]}""");
        var bj = Run("eval", "--gt", banded, "--pred", banded, "--json");
        Assert.True(bj.Code == 0, bj.Output);
        using (var j = JsonDocument.Parse(bj.Stdout))
        {
            var bands = j.RootElement.GetProperty("bands");
            Assert.Equal(1, bands.GetProperty("style").GetProperty("italic").GetProperty("gt").GetInt32());
            Assert.Equal(1.0, bands.GetProperty("size").GetProperty("8-15").GetProperty("recall50").GetDouble());
            Assert.Equal(1.0, bands.GetProperty("ligature").GetProperty("mean_glyph_iou").GetDouble());
            Assert.Equal(1.0, j.RootElement.GetProperty("thin_stroke_recall").GetDouble());
            Assert.Equal(4, j.RootElement.GetProperty("hairline_px").GetInt32());
        }
        var bt = Run("eval", "--gt", banded, "--pred", banded);
        Assert.True(bt.Code == 0, bt.Output);
        foreach (var line in new[] { "precision@0.5", "thin-stroke recall", "size (px)", "8-15", "italic", "ligature" })
            Assert.Contains(line, bt.Stdout);
        Assert.True(ok.PeakRssBytes < MemoryBoundBytes, $"peak RSS {ok.PeakRssMb:F0} MB");

        AssertFails(RunEnv(new() { ["TORCHSAM2_MAX_ANNOTATIONS"] = "10" }, "eval", "--gt", big, "--pred", big), 1, "coco_big.json", "60 annotations", "TORCHSAM2_MAX_ANNOTATIONS");
        var dup = f.Write("coco_dup.json", """{"images":[{"id":1,"file_name":"a.png","width":4,"height":4},{"id":1,"file_name":"b.png","width":4,"height":4}],"annotations":[]}""");
        AssertFails(Run("eval", "--gt", dup, "--pred", dup), 1, "coco_dup.json", "image id 1 appears more than once");
        var dupKey = f.Write("coco_dupkey.json", """{"images":[],"annotations":[],"annotations":[]}""");
        AssertFails(Run("eval", "--gt", dupKey, "--pred", dupKey), 1, "coco_dupkey.json", "twice");
        var broken = f.Write("coco_broken.json", """{"images": [""");
        AssertFails(Run("eval", "--gt", broken, "--pred", broken), 1, "coco_broken.json", "not valid JSON");
        var types = f.Write("coco_types.json", """[{"image_id":"x","segmentation":{"size":[4,4],"counts":[16]}}]""");
        var gt = f.Write("coco_gt.json", """{"images":[{"id":1,"file_name":"a.png","width":4,"height":4}],"annotations":[]}""");
        AssertFails(Run("eval", "--gt", gt, "--pred", types), 1, "coco_types.json", "image_id");
        AssertFails(Run("eval", "--gt", f.Small, "--pred", types), 1, "small.png");
    }

    [Fact]
    public void WorkBombsAreRefusedQuickly()
    {
        if (Skip()) return;
        // 65,536 2×2 specks on 1024²: grouping and segmenting them would run for hours
        const int s = 1024;
        var px = Enumerable.Repeat((byte)255, s * s * 3).ToArray();
        for (int y = 0; y < s; y += 4)
            for (int x = 0; x < s; x += 4)
                for (int d = 0; d < 4; d++)
                    for (int c = 0; c < 3; c++) px[((y + d / 2) * s + x + d % 2) * 3 + c] = 0;
        var sheet = Path.Combine(f.Dir, "specks.png");
        new RgbImage(px, s, s).Save(sheet);
        var outDir = f.NewDir("specks");
        var sw = System.Diagnostics.Stopwatch.StartNew();
        AssertFails(Run("glyphs", sheet, f.Model, "--out", outDir), 1, "65,536 glyph candidates", "--max-glyphs");
        Assert.True(sw.Elapsed.TotalSeconds < 120, $"{sw.Elapsed}");
        AssertFails(Run("glyphs", sheet, f.Model, "--out", outDir, "--max-glyphs", "1000"), 1, "separate ink components");
        Assert.Empty(Directory.EnumerateFileSystemEntries(outDir));
    }

    // ---- 3. data lost or mixed --------------------------------------------------------------------------------

    [Fact]
    public void SegmentReplacesAnEarlierRunAsAWholeAndKeepsOtherFiles()
    {
        if (Skip()) return;
        var outDir = f.NewDir("seg");
        var r = Run("segment", f.Small, f.Model, "--point", "30,20", "--multimask", "--out", outDir);
        Assert.True(r.Code == 0, r.Output);
        Assert.True(File.Exists(Path.Combine(outDir, "mask_2.png")));
        var first = HostileFiles.Snapshot(outDir);
        // a failing run leaves the earlier results exactly as they were
        AssertFails(Run("segment", f.HugePng, f.Model, "--point", "5,5", "--out", outDir), 1, "above the limit");
        Assert.Equal(first, HostileFiles.Snapshot(outDir));
        // a run with fewer masks does not leave mask_1/mask_2 of the earlier one behind
        r = Run("segment", f.Small, f.Model, "--point", "30,20", "--out", outDir);
        Assert.True(r.Code == 0, r.Output);
        Assert.Equal(["mask_0.png", "masks.json", "overlay.png"], Directory.GetFileSystemEntries(outDir).Select(p => Path.GetFileName(p)!).Order().ToArray());
        using (var j = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "masks.json"))))
            Assert.Equal(1, j.RootElement.GetProperty("masks").GetArrayLength());
        // files the command does not write are left alone; its own names are still replaced as a set
        File.WriteAllText(Path.Combine(outDir, "notes.txt"), "mine");
        r = Run("segment", f.Small, f.Model, "--point", "30,20", "--multimask", "--out", outDir);
        Assert.True(r.Code == 0, r.Output);
        r = Run("segment", f.Small, f.Model, "--box", "10,5,50,40", "--out", outDir);
        Assert.True(r.Code == 0, r.Output);
        Assert.Equal(["mask_0.png", "masks.json", "notes.txt", "overlay.png"], Directory.GetFileSystemEntries(outDir).Select(p => Path.GetFileName(p)!).Order().ToArray());
        Assert.Equal("mine", File.ReadAllText(Path.Combine(outDir, "notes.txt")));
        // an input among the outputs is refused, untouched
        var input = Path.Combine(outDir, "overlay.png");
        var hash = HostileFiles.Hash(input);
        AssertFails(Run("segment", input, f.Model, "--point", "5,5", "--out", outDir), 2, "would overwrite the input", "overlay.png");
        Assert.Equal(hash, HostileFiles.Hash(input));
        // no staging folders left next to --out
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.GetDirectoryName(outDir)!, $".{Path.GetFileName(outDir)}.*"));
    }

    [Fact]
    public void TrackWithACorruptFrameLeavesTheEarlierRunAsItWas()
    {
        if (Skip()) return;
        var frames = f.NewDir("trackframes");
        foreach (var file in Directory.GetFiles(f.Frames)) File.Copy(file, Path.Combine(frames, Path.GetFileName(file)));
        var outDir = f.NewDir("track");
        var r = Run("track", frames, f.Model, "--obj", "1:point:20,20", "--obj", "2:box:5,5,40,40", "--out", outDir);
        Assert.True(r.Code == 0, r.Output);
        Assert.Equal(4, Directory.GetFiles(Path.Combine(outDir, "masks")).Length);
        var before = HostileFiles.Snapshot(outDir);
        var inputsBefore = HostileFiles.Snapshot(frames);
        File.WriteAllText(Path.Combine(frames, "00002.png"), "corrupt");
        inputsBefore = HostileFiles.Snapshot(frames);
        AssertFails(Run("track", frames, f.Model, "--obj", "1:point:30,20", "--out", outDir), 1, "00002.png");
        Assert.Equal(before, HostileFiles.Snapshot(outDir));
        Assert.Equal(inputsBefore, HostileFiles.Snapshot(frames));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.GetDirectoryName(outDir)!, $".{Path.GetFileName(outDir)}.*"));
        // with the frame repaired, a run over fewer frames replaces the whole set (no stale masks 2–3)
        File.Delete(Path.Combine(frames, "00002.png"));
        File.Delete(Path.Combine(frames, "00003.png"));
        r = Run("track", frames, f.Model, "--obj", "1:point:20,20", "--out", outDir, "--no-overlays");
        Assert.True(r.Code == 0, r.Output);
        Assert.Equal(["00000.png", "00001.png"], Directory.GetFiles(Path.Combine(outDir, "masks")).Select(p => Path.GetFileName(p)!).Order().ToArray());
        Assert.False(Directory.Exists(Path.Combine(outDir, "overlays")));
    }

    [Fact]
    public void NoCommandOverwritesItsInputs()
    {
        if (Skip()) return;
        var dir = f.NewDir("ftinputs");
        var ckpt = Path.Combine(dir, "model.safetensors");
        File.Copy(f.Weights, ckpt);
        var hash = HostileFiles.Hash(ckpt);
        AssertFails(Run("finetune", "--config", f.Config, "--checkpoint", ckpt, "--data", "glyph-crops:train:2", "--out", dir), 2,
                    "would overwrite the input --checkpoint", "model.safetensors");
        // the same folder through a symbolic link
        var link = Path.Combine(f.Dir, "link_" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateSymbolicLink(link, dir);
        AssertFails(Run("finetune", "--config", f.Config, "--checkpoint", ckpt, "--data", "glyph-crops:train:2", "--out", link + "/"), 2, "would overwrite the input");
        AssertFails(Run("finetune", "--config", f.Config, "--checkpoint", Path.Combine(link, "model.safetensors"), "--data", "glyph-crops:train:2", "--out", dir), 2, "would overwrite the input");
        // the resumable checkpoint folder as --checkpoint's home, and a COCO file named like an output
        Directory.CreateDirectory(Path.Combine(dir, "checkpoint"));
        File.Copy(f.Weights, Path.Combine(dir, "checkpoint", "w.safetensors"));
        AssertFails(Run("finetune", "--config", f.Config, "--checkpoint", Path.Combine(dir, "checkpoint", "w.safetensors"), "--data", "glyph-crops:train:2", "--out", dir), 2, "would overwrite");
        AssertFails(Run("convert", ckpt, ckpt), 2, "would overwrite the input");
        AssertFails(Run("convert", ckpt, Path.Combine(link, "model.safetensors")), 2, "would overwrite the input");
        AssertFails(Run("convert", ckpt, Path.Combine(dir, "x.txt")), 2, ".safetensors or .pt");
        Assert.Equal(hash, HostileFiles.Hash(ckpt));
        // specimens into a folder whose annotations.json is an --gt elsewhere: nothing read, nothing refused; but the
        // sheets replace only their own names
        var spec = f.NewDir("spec");
        File.WriteAllText(Path.Combine(spec, "keep.txt"), "mine");
        var s = Run("specimens", spec, "--count", "1", "--width", "256", "--height", "256");
        Assert.True(s.Code == 0, s.Output);
        Assert.True(File.Exists(Path.Combine(spec, "images", "000000.png")));
        Assert.Equal("mine", File.ReadAllText(Path.Combine(spec, "keep.txt")));
    }

    // ---- 4. messages --------------------------------------------------------------------------------------------

    [Fact]
    public void NanWeightsGiveNullScoresOrOneLineNotAJsonCrash()
    {
        if (Skip()) return;
        var outDir = f.NewDir("nan");
        var r = Run("segment", f.Small, "--checkpoint", f.NanWeights, "--config", f.Config, "--point", "30,20", "--multimask", "--out", outDir);
        if (r.Code != 0)
        {
            // refusing NaN weights at load is as good, if it is one line that says so
            AssertFails(r, 1, "NaN");
        }
        else
        {
            Assert.Contains("non-finite scores", r.Stderr);
            Assert.DoesNotContain("   at ", r.Output);
            using var j = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "masks.json")));
            foreach (var m in j.RootElement.GetProperty("masks").EnumerateArray())
                Assert.Equal(JsonValueKind.Null, m.GetProperty("score").ValueKind);
        }
        // training on NaN weights diverges: one line that says so
        var ft = Run("finetune", "--config", f.Config, "--checkpoint", f.NanWeights, "--data", "glyph-crops:train:1", "--out", f.NewDir("nanft"),
                     "--correction-clicks", "1", "--no-augment", "--threads", "1");
        AssertFails(ft, 1, "training diverged", "NaN");
    }

    [Fact]
    public void BenchAdaptsItsPromptsToSmallImages()
    {
        if (Skip()) return;
        var r = Run("bench", "--config", f.Config, "--checkpoint", f.Weights, "--image", f.Small, "--repeats", "1", "--threads", "1", "--json");
        Assert.True(r.Code == 0, r.Output);
        using var j = JsonDocument.Parse(r.Stdout);
        Assert.True(j.RootElement.GetProperty("predict_box_ms").GetProperty("median").GetDouble() > 0);
    }

    [Fact]
    public void TextFromTheUserIsPrintedAsItIs()
    {
        if (Skip()) return;
        // Spectre markup and emoji shortcodes are not interpreted: ":train:" stays ":train:" (not 🚆), [red] stays [red]
        var r = Run("finetune", "--config", f.Config, "--data", "glyph-crops:train:0", "--out", f.NewDir("emoji"));
        AssertFails(r, 2, "glyph-crops:train:0");
        Assert.False(r.Output.Contains("🚆", StringComparison.Ordinal), r.Output);
        r = Run("finetune", "--config", f.Config, "--data", "glyph-crops:[red]:3", "--out", f.NewDir("markup"));
        AssertFails(r, 2, "'glyph-crops:[red]:3'", "[red]");
        // control characters from names (a terminal escape, a carriage return) are shown escaped, never raw
        var evil = Path.Combine(f.Dir, "evil\u001b[2J\rname.png");
        File.WriteAllText(evil, "x");
        r = Run("segment", evil, f.Model, "--point", "5,5", "--out", f.NewDir("evil"));
        AssertFails(r, 1, "evil\\u001b[2J\\rname.png");
        // (ordinal: culture-aware comparison ignores control characters and finds them everywhere)
        Assert.False(r.Output.Contains('\u001b'), r.Output);
        Assert.False(r.Output.Contains('\r'), r.Output);
        // a long message stays on one line whatever the terminal width
        var longName = Path.Combine(f.Dir, new string('n', 200) + ".png");
        r = Run("segment", longName, f.Model, "--point", "5,5", "--out", f.NewDir("long"));
        AssertFails(r, 1, new string('n', 200));
    }

    [Fact]
    public void VerboseShowsTheStackAndExitCodesSayWhichKindOfError()
    {
        if (Skip()) return;
        var missing = Path.Combine(f.Dir, "missing.png");
        var quiet = Run("segment", missing, f.Model, "--point", "5,5", "--out", f.NewDir("v"));
        AssertFails(quiet, 1, "missing.png");
        var verbose = Run("segment", missing, f.Model, "--point", "5,5", "--out", f.NewDir("v"), "--verbose");
        Assert.Equal(1, verbose.Code);
        Assert.Contains("   at ", verbose.Stderr);
        var debug = RunEnv(new() { ["TORCHSAM2_DEBUG"] = "1" }, "segment", missing, f.Model, "--point", "5,5", "--out", f.NewDir("v"));
        Assert.Contains("   at ", debug.Stderr);
        // a truncated checkpoint is a failure (1), a bad option a usage error (2)
        var cut = Path.Combine(f.Dir, "cut.safetensors");
        File.WriteAllBytes(cut, File.ReadAllBytes(f.Weights)[..1000]);
        AssertFails(Run("segment", f.Small, "--checkpoint", cut, "--config", f.Config, "--point", "5,5", "--out", f.NewDir("cut")), 1, "cut.safetensors");
        AssertFails(Run("inspect", cut), 1, "cut.safetensors");
    }
}
