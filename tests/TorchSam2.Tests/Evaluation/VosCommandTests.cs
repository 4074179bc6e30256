using System.Text.Json;
using TorchSam2.Evaluation;
using TorchSam2.IO;
using TorchSam2.Tests.Cli;
using Xunit.Abstractions;

namespace TorchSam2.Tests.Evaluation;

// torchsam2 vos on the generated clips (an object leaving the frame, one occluded, one appearing on frame 3) with the
// micro_video parity model: the layout written, resuming, the per-object layout, and eval-vos agreeing with the library.
public sealed class VosCommandTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "torchsam2-tests", "vos_" + Guid.NewGuid().ToString("N"));
    private static string Micro => Path.Combine(TestPaths.ParityDir, "micro_video");
    private static string[] Model => ["--checkpoint", Path.Combine(Micro, "weights.safetensors"), "--config", Path.Combine(Micro, "model.yaml"), "--threads", "2"];

    public void Dispose()
    {
        try { if (Directory.Exists(_dir)) Directory.Delete(_dir, true); }
        catch (IOException) { }
    }

    private static CliResult Run(params object[] args) =>
        CliProcess.Run(300_000, (IReadOnlyDictionary<string, string?>?)null, args.SelectMany(a => a as string[] ?? [(string)a]).ToArray());

    private static Dictionary<string, string> Snapshot(string dir) => HostileFiles.Snapshot(dir);

    [Fact]
    public void VosWritesTheDatasetLayoutResumesAndScoresAsTheLibrary()
    {
        if (!File.Exists(Path.Combine(Micro, "weights.safetensors")) || !File.Exists(CliProcess.Dll()))
        {
            Assert.False(CliProcess.InCi, $"CI=true but {Micro} or the CLI build is missing");
            return;
        }
        var videos = SyntheticVos.Write(_dir, videos: 2, frames: 5);
        string frames = Path.Combine(_dir, "JPEGImages"), ann = Path.Combine(_dir, "Annotations"), sav = Path.Combine(_dir, "Annotations_sav");
        string pred = Path.Combine(_dir, "pred");

        // --- DAVIS layout, objects appearing later tracked from their first mask
        var r = Run("vos", Model, "--frames", frames, "--masks", ann, "--out", pred, "--track-object-appearing-later", "--videos", videos[0]);
        Assert.True(r.Code == 0, r.Output);
        Assert.Equal([videos[0]], Directory.GetDirectories(pred).Select(Path.GetFileName));
        var files = Directory.GetFiles(Path.Combine(pred, videos[0])).Select(Path.GetFileName).Order().ToList();
        Assert.Equal(Enumerable.Range(0, 5).Select(t => $"{t:D5}.png"), files);
        for (int t = 0; t < 5; t++)
        {
            var m = LabelPng.Read(Path.Combine(pred, videos[0], $"{t:D5}.png"));
            Assert.Equal((64, 96), (m.Height, m.Width));
            Assert.Equal(LabelPng.DavisPalette, m.Palette);
            Assert.All(m.Labels, l => Assert.InRange(l, 0, 3));
            // object 3 is tracked from the frame it appears on: nothing of it before
            if (t < SyntheticVos.LateObjectFrame) Assert.DoesNotContain(3, m.Labels);
        }
        Assert.Empty(Directory.GetDirectories(_dir, ".*", SearchOption.AllDirectories)); // no staging folder left

        // eval-vos prints what the library computes
        var e = Run("eval-vos", "--gt", ann, "--pred", pred, "--json");
        Assert.True(e.Code == 0, e.Output);
        var lib = VosBenchmark.Evaluate(ann, pred);
        using (var doc = JsonDocument.Parse(e.Stdout))
        {
            var g = doc.RootElement.GetProperty("global");
            Assert.Equal(lib.GlobalJF, g.GetProperty("j_and_f").GetDouble(), 10);
            Assert.Equal(lib.GlobalJ, g.GetProperty("j").GetDouble(), 10);
            Assert.Equal(lib.GlobalF, g.GetProperty("f").GetDouble(), 10);
            var objs = doc.RootElement.GetProperty("videos").EnumerateArray().SelectMany(v => v.GetProperty("objects").EnumerateArray()).ToList();
            Assert.Equal(lib.Objects.Select(o => o.J), objs.Select(o => o.GetProperty("j").GetDouble()));
            Assert.Equal(3, objs.Count);
        }
        output.WriteLine(lib.ToTable());
        Assert.InRange(lib.GlobalJF, 0, 100);

        // --- first-frame masks only (object 3 never tracked); resumable: complete videos are skipped, an incomplete one redone
        string first = Path.Combine(_dir, "pred_first");
        r = Run("vos", Model, "--frames", frames, "--masks", ann, "--out", first, "--videos", videos[0]);
        Assert.True(r.Code == 0, r.Output);
        Assert.All(Directory.GetFiles(Path.Combine(first, videos[0])), f => Assert.DoesNotContain(3, LabelPng.Read(f).Labels));
        var done0 = Snapshot(Path.Combine(first, videos[0]));
        Directory.CreateDirectory(Path.Combine(first, videos[1]));
        File.WriteAllText(Path.Combine(first, videos[1], "00000.png"), "left by an interrupted run of another tool");
        r = Run("vos", Model, "--frames", frames, "--masks", ann, "--out", first);
        Assert.True(r.Code == 0, r.Output);
        Assert.Contains("1 of 2 video(s) already", r.Stdout);
        Assert.Equal(done0, Snapshot(Path.Combine(first, videos[0])));
        Assert.Equal(5, Directory.GetFiles(Path.Combine(first, videos[1])).Length);
        var redone = LabelPng.Read(Path.Combine(first, videos[1], "00000.png"));
        Assert.Equal((64, 96), (redone.Height, redone.Width));
        r = Run("vos", Model, "--frames", frames, "--masks", ann, "--out", first);
        Assert.True(r.Code == 0, r.Output);
        Assert.Contains("2 of 2 video(s) already", r.Stdout);
        // --use-all-masks: object 3 (not on the first frame) is refused as vos_inference.py refuses it; nothing written
        r = Run("vos", Model, "--frames", frames, "--masks", ann, "--out", Path.Combine(_dir, "pred_all"), "--use-all-masks");
        Assert.Equal(1, r.Code);
        Assert.Contains("object 3 appears on frame 3", r.Stderr);
        Assert.False(Directory.Exists(Path.Combine(_dir, "pred_all", videos[0])));

        // --- SA-V layout: one folder per object in and out; eval-vos reads it too
        string predSav = Path.Combine(_dir, "pred_sav");
        r = Run("vos", Model, "--frames", frames, "--masks", sav, "--out", predSav, "--per-object", "--videos", videos[0]);
        Assert.True(r.Code == 0, r.Output);
        Assert.Equal(["001", "002", "003"], Directory.GetDirectories(Path.Combine(predSav, videos[0])).Select(Path.GetFileName).Order());
        foreach (var obj in new[] { "001", "002", "003" })
        {
            var objFiles = Directory.GetFiles(Path.Combine(predSav, videos[0], obj)).Select(Path.GetFileName).Order().ToList();
            Assert.Equal(Enumerable.Range(0, 5).Select(t => $"{t:D5}.png"), objFiles);
            Assert.All(objFiles, f => Assert.All(LabelPng.Read(Path.Combine(predSav, videos[0], obj, f!)).Labels, l => Assert.InRange(l, 0, 1)));
        }
        e = Run("eval-vos", "--gt", sav, "--pred", predSav, "--json");
        Assert.True(e.Code == 0, e.Output);
        var libSav = VosBenchmark.Evaluate(sav, predSav);
        Assert.Equal(["001", "002", "003"], libSav.Objects.Select(o => o.Object));
        using (var doc = JsonDocument.Parse(e.Stdout))
            Assert.Equal(libSav.GlobalJF, doc.RootElement.GetProperty("global").GetProperty("j_and_f").GetDouble(), 10);
        output.WriteLine(libSav.ToTable());
    }
}
