using System.Runtime.InteropServices;
using System.Text.Json;
using TorchSam2.Checkpoints;
using TorchSam2.IO;
using TorchSam2.Tests.Pretrained;

namespace TorchSam2.Tests.Cli;

// The CLI with checkpoint names, as processes: `download tiny` from a loopback server standing in for Meta's
// (TORCHSAM2_DOWNLOAD_BASE), which serves the reference tiny weights (tiny_full_image, stored as float16) written as the
// official float32 .pt, so the shipped sam2.1_hiera_tiny manifest accepts them; then `segment --checkpoint tiny --offline`
// must give PyTorch's scores for that case.
public sealed class CheckpointNameCliTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "torchsam2-tests", "names_" + Guid.NewGuid().ToString("N"));
    private readonly FixtureServer _server = new();

    public void Dispose()
    {
        _server.Dispose();
        if (Directory.Exists(_dir)) Directory.Delete(_dir, true);
    }

    private Dictionary<string, string?> Env(bool offline = false) => new()
    {
        ["TORCHSAM2_CACHE"] = Path.Combine(_dir, "cache"),
        ["TORCHSAM2_DOWNLOAD_BASE"] = _server.BaseUrl,
        ["TORCHSAM2_OFFLINE"] = offline ? "1" : null,
    };

    private static byte[] OfficialStyleTiny(string weights)
    {
        var sd = new Dictionary<string, TensorRecord>(StringComparer.Ordinal);
        foreach (var (name, rec) in CheckpointFile.LoadStateDict(weights))
        {
            Assert.Equal(TorchSharp.torch.ScalarType.Float16, rec.DType);
            var halves = MemoryMarshal.Cast<byte, Half>(rec.Data);
            var floats = new float[halves.Length];
            for (int i = 0; i < floats.Length; i++) floats[i] = (float)halves[i];
            sd[name] = TensorRecord.FromFloat32(rec.Shape, floats);
        }
        using var ms = new MemoryStream();
        PtCheckpoint.Write(ms, sd);
        return ms.ToArray();
    }

    [Fact]
    public void DownloadByNameOnceForTwoProcessesThenSegmentOfflineWithPyTorchScores()
    {
        var caseDir = Path.Combine(TestPaths.ParityDir, "tiny_full_image");
        if (!ParityData.Require(caseDir)) return;
        Assert.True(File.Exists(CliProcess.Dll()), $"build the CLI first: {CliProcess.Dll()} is missing");
        byte[] pt = OfficialStyleTiny(Path.Combine(caseDir, "weights.safetensors"));
        _server.Files["/092824/sam2.1_hiera_tiny.pt"] = pt;
        string cached = Path.Combine(_dir, "cache", "sam2.1_hiera_tiny.pt");

        // offline: nothing cached, so an error that says what is missing, and no request
        var offline = CliProcess.Run(120_000, Env(offline: true), "download", "tiny");
        Assert.True(offline.Code == 1, offline.Output);
        Assert.Contains("sam2.1_hiera_tiny is not in the cache", offline.Stderr);
        Assert.Contains("offline", offline.Stderr);
        Assert.Empty(_server.Requests);

        // two processes at once: one downloads (slowly), the other waits for it; neither sees a torn file
        _server.ChunkDelay = TimeSpan.FromMilliseconds(3);
        var first = Task.Run(() => CliProcess.Run(300_000, Env(), "download", "tiny"));
        var second = Task.Run(() => CliProcess.Run(300_000, Env(), "download", "sam2.1_hiera_tiny"));
        foreach (var r in new[] { first.Result, second.Result })
        {
            Assert.True(r.Code == 0, r.Output);
            Assert.Contains(cached, r.Stdout);
            Assert.Contains($"{pt.Length / 1e6:F1} MB", r.Stdout);
        }
        Assert.Single(_server.Requests);
        Assert.Equal(pt, File.ReadAllBytes(cached));

        // the name works wherever a checkpoint is taken; offline, from the cache
        var inputs = SafeTensors.Read(Path.Combine(caseDir, "inputs.safetensors")).Tensors;
        var image = inputs["image"];
        int h = (int)image.Shape[0], w = (int)image.Shape[1];
        var png = Path.Combine(_dir, "image.png");
        ImageIO.Write(png, image.Data, h, w, 3);
        var seg = CliProcess.Run(300_000, Env(offline: true), "segment", png, "--checkpoint", "tiny", "--point", "320,240", "--multimask", "--out", Path.Combine(_dir, "out"));
        Assert.True(seg.Code == 0, seg.Output);
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "out", "masks.json")));
        var scores = json.RootElement.GetProperty("masks").EnumerateArray().Select(m => m.GetProperty("score").GetSingle()).ToArray();
        var expected = SafeTensors.Read(Path.Combine(caseDir, "expected.safetensors")).Tensors["predict0.iou_predictions"].ToFloat32Array().OrderByDescending(v => v).ToArray();
        Assert.Equal(3, scores.Length);
        for (int i = 0; i < 3; i++) Assert.True(Math.Abs(scores[i] - expected[i]) < 2e-3, $"score {i}: {scores[i]} vs PyTorch {expected[i]}");
        Assert.Single(_server.Requests);

        // cache list / size / clear
        var list = CliProcess.Run(60_000, Env(), "cache", "list");
        Assert.True(list.Code == 0, list.Output);
        Assert.Contains("sam2.1_hiera_tiny", list.Stdout);
        Assert.Contains($"{pt.Length / 1e6,8:F1} MB", list.Stdout);
        var size = CliProcess.Run(60_000, Env(), "cache", "size");
        Assert.Contains($"{pt.Length / 1e6:F1} MB in 1 file(s)", size.Stdout);
        var clear = CliProcess.Run(60_000, Env(), "cache", "clear", "tiny");
        Assert.True(clear.Code == 0, clear.Output);
        Assert.Contains("deleted 1 file(s)", clear.Stdout);
        Assert.False(File.Exists(cached));
    }

    [Fact]
    public void UnknownNamesAndMissingFilesSayWhatIsAccepted()
    {
        if (!File.Exists(CliProcess.Dll())) { Assert.False(CliProcess.InCi, "CLI not built"); return; }
        var download = CliProcess.Run(60_000, Env(offline: true), "download", "huge");
        Assert.Equal(2, download.Code);
        Assert.Contains("unknown checkpoint name 'huge'", download.Stderr);
        Assert.Contains("sam2.1_hiera_base_plus", download.Stderr);
        var png = Path.Combine(_dir, "x.png");
        Directory.CreateDirectory(_dir);
        ImageIO.Write(png, new byte[8 * 8 * 3], 8, 8, 3);
        var seg = CliProcess.Run(60_000, Env(offline: true), "segment", png, "--checkpoint", "no_such.pt", "--point", "1,1", "--out", Path.Combine(_dir, "o"));
        Assert.Equal(1, seg.Code);
        Assert.Contains("file not found: 'no_such.pt' (nor is it a checkpoint name: tiny, small", seg.Stderr);
        Assert.Empty(_server.Requests);
    }
}
