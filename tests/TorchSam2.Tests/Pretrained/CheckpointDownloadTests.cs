using TorchSam2.Checkpoints;
using TorchSam2.Pretrained;

namespace TorchSam2.Tests.Pretrained;

/// <summary>
/// Downloads against <see cref="FixtureServer"/> on the loopback address (never the internet): the fixture is the
/// micro_image parity weights written as an official-style .pt ({"model": state_dict}), checked against a manifest
/// made from the same weights.
/// </summary>
public sealed class CheckpointDownloadTests : IDisposable
{
    private readonly string _cache = Path.Combine(Path.GetTempPath(), "torchsam2-tests", "cache_" + Guid.NewGuid().ToString("N"));
    private readonly FixtureServer _server = new();

    public void Dispose()
    {
        _server.Dispose();
        if (Directory.Exists(_cache)) Directory.Delete(_cache, true);
    }

    private static readonly Lazy<(byte[] Pt, CheckpointManifest Manifest, IReadOnlyDictionary<string, TensorRecord> Sd)?> Fixture = new(() =>
    {
        string weights = Path.Combine(TestPaths.ParityDir, "micro_image", "weights.safetensors");
        if (!File.Exists(weights)) return null;
        var sd = CheckpointFile.LoadStateDict(weights);
        CheckpointManifest manifest;
        using (var reader = CheckpointReader.Open(weights)) manifest = CheckpointManifest.FromCheckpoint(reader);
        return (PtBytes(sd), manifest, sd);
    });

    private static byte[] PtBytes(IReadOnlyDictionary<string, TensorRecord> sd)
    {
        using var ms = new MemoryStream();
        PtCheckpoint.Write(ms, sd);
        return ms.ToArray();
    }

    private bool Ready(out byte[] pt, out CheckpointManifest manifest)
    {
        var f = Fixture.Value;
        if (f is null)
        {
            ParityData.Require(Path.Combine(TestPaths.ParityDir, "micro_image"));
            (pt, manifest) = ([], null!);
            return false;
        }
        (pt, manifest) = (f.Value.Pt, f.Value.Manifest);
        return true;
    }

    private PretrainedCheckpoint Entry(CheckpointManifest manifest, string name = "fixture") =>
        new(name, name + ".pt", $"test/{name}.pt", "sam2.1_hiera_t", () => manifest);

    private CheckpointStoreOptions Options(bool offline = false, int attempts = 3) => new()
    {
        CacheDir = _cache,
        DownloadBase = _server.BaseUrl,
        Offline = offline,
        Attempts = attempts,
        RetryDelay = TimeSpan.FromMilliseconds(10),
        ReadTimeout = TimeSpan.FromSeconds(20),
    };

    private string[] CacheFiles() => Directory.Exists(_cache) ? Directory.GetFiles(_cache).Select(Path.GetFileName).Where(f => !f!.EndsWith(".lock")).ToArray()! : [];

    [Fact]
    public void DownloadsVerifiesAndCaches()
    {
        if (!Ready(out var pt, out var manifest)) return;
        _server.Files["/test/fixture.pt"] = pt;
        var entry = Entry(manifest);
        var progress = new List<DownloadProgress>();
        var o = Options();
        o.ShowProgress = (c, run) => run(new Sync(progress.Add));
        string path = CheckpointStore.Fetch(entry, o);

        Assert.Equal(Path.Combine(_cache, "fixture.pt"), path);
        Assert.Equal(pt, File.ReadAllBytes(path));
        Assert.Equal(["fixture.pt"], CacheFiles());
        Assert.Equal([("/test/fixture.pt", (string?)null)], _server.Requests.ToArray());
        Assert.Equal(pt.Length, progress[^1].Received);
        Assert.Equal(pt.Length, progress[^1].Total);
        Assert.True(progress.Count >= 3, $"{progress.Count} progress reports"); // 0, then per read

        // cached: no second request, same file
        Assert.Equal(path, CheckpointStore.Fetch(entry, o));
        Assert.Single(_server.Requests);
        // and the listing knows it is no catalog name; clear removes it
        var listed = Assert.Single(CheckpointStore.List(o));
        Assert.Equal((pt.Length, false), (listed.Bytes, listed.Partial));
    }

    [Fact]
    public void ResumesAfterACutConnection()
    {
        if (!Ready(out var pt, out var manifest)) return;
        _server.Files["/test/fixture.pt"] = pt;
        long cut = pt.Length * 2 / 5;
        (_server.CutAt, _server.CutCount) = (cut, 1);
        string path = CheckpointStore.Fetch(Entry(manifest), Options());

        Assert.Equal(pt, File.ReadAllBytes(path));
        // the second request asked for the rest only
        Assert.Equal([("/test/fixture.pt", null), ("/test/fixture.pt", $"bytes={cut}-")], _server.Requests.ToArray());
        Assert.Equal(["fixture.pt"], CacheFiles());
    }

    [Fact]
    public void AFailedRunKeepsThePartialFileAndTheNextRunResumesIt()
    {
        if (!Ready(out var pt, out var manifest)) return;
        _server.Files["/test/fixture.pt"] = pt;
        long cut = pt.Length / 3;
        (_server.CutAt, _server.CutCount) = (cut, 1);
        var e = Assert.Throws<CheckpointUnavailableException>(() => CheckpointStore.Fetch(Entry(manifest), Options(attempts: 1)));
        Assert.Contains("failed after 1 tries", e.Message);
        Assert.Equal(["fixture.pt.part"], CacheFiles());
        Assert.Equal(cut, new FileInfo(Path.Combine(_cache, "fixture.pt.part")).Length);
        var partial = Assert.Single(CheckpointStore.List(Options()));
        Assert.True(partial.Partial);

        string path = CheckpointStore.Fetch(Entry(manifest), Options(attempts: 1));
        Assert.Equal(pt, File.ReadAllBytes(path));
        Assert.Equal($"bytes={cut}-", _server.Requests.ToArray()[1].Range);
        Assert.Equal(["fixture.pt"], CacheFiles());
    }

    [Fact]
    public void AServerErrorIsRetriedThenReportedAndNothingIsCached()
    {
        if (!Ready(out var pt, out var manifest)) return;
        _server.Files["/test/fixture.pt"] = pt;
        _server.FailStatus = 500;
        var e = Assert.Throws<CheckpointUnavailableException>(() => CheckpointStore.Fetch(Entry(manifest), Options(attempts: 3)));
        Assert.Contains("HTTP 500", e.Message);
        Assert.Contains("after 3 tries", e.Message);
        Assert.Equal(3, _server.Requests.Count);
        Assert.Empty(CacheFiles());
    }

    [Fact]
    public void AMissingFileIsNotRetried()
    {
        if (!Ready(out _, out var manifest)) return;
        var e = Assert.Throws<CheckpointUnavailableException>(() => CheckpointStore.Fetch(Entry(manifest), Options(attempts: 3)));
        Assert.Contains("HTTP 404", e.Message);
        Assert.Single(_server.Requests);
        Assert.Empty(CacheFiles());
    }

    [Fact]
    public void ATruncatedFileIsRefusedAndNotCached()
    {
        if (!Ready(out var pt, out var manifest)) return;
        // served whole as far as HTTP goes (its own Content-Length), but the zip lacks its end
        _server.Files["/test/fixture.pt"] = pt[..(pt.Length * 3 / 5)];
        var e = Assert.Throws<CheckpointVerificationException>(() => CheckpointStore.Fetch(Entry(manifest), Options()));
        Assert.Contains("is not a readable checkpoint", e.Message);
        Assert.Contains("deleted, not cached", e.Message);
        Assert.Empty(CacheFiles());
    }

    [Fact]
    public void AFileFailingTheManifestIsRefusedAndNotCached()
    {
        if (!Ready(out _, out var manifest)) return;
        var sd = Fixture.Value!.Value.Sd.ToDictionary();
        string dropped = sd.Keys.Order(StringComparer.Ordinal).First();
        sd.Remove(dropped);
        var (reshapedKey, reshaped) = sd.First(kv => kv.Value.Rank == 1 && kv.Value.NumElements > 1);
        sd[reshapedKey] = reshaped with { Shape = [1, reshaped.Shape[0]] };
        _server.Files["/test/fixture.pt"] = PtBytes(sd);

        var e = Assert.Throws<CheckpointVerificationException>(() => CheckpointStore.Fetch(Entry(manifest), Options()));
        Assert.Contains($"missing {dropped}", e.Message);
        Assert.Contains($"{reshapedKey} has shape [1, {reshaped.Shape[0]}], expected [{reshaped.Shape[0]}]", e.Message);
        Assert.Contains("deleted, not cached", e.Message);
        Assert.Empty(CacheFiles());
        Assert.Single(_server.Requests); // a wrong file is not fetched again and again
    }

    [Fact]
    public void TwoConcurrentFetchesDownloadOnceAndNeverShowATornFile()
    {
        if (!Ready(out var pt, out var manifest)) return;
        _server.Files["/test/fixture.pt"] = pt;
        _server.ChunkDelay = TimeSpan.FromMilliseconds(15); // ~27 chunks: the download takes a while
        var entry = Entry(manifest);
        string final = Path.Combine(_cache, "fixture.pt");
        var seen = new List<long>();
        using var done = new CancellationTokenSource();
        var watcher = Task.Run(() =>
        {
            while (!done.IsCancellationRequested)
            {
                try { if (File.Exists(final)) lock (seen) seen.Add(new FileInfo(final).Length); }
                catch (FileNotFoundException) { }
                Thread.Sleep(2);
            }
        });
        var a = Task.Run(() => CheckpointStore.Fetch(entry, Options()));
        var b = Task.Run(() => CheckpointStore.Fetch(entry, Options()));
        string[] paths = Task.WhenAll(a, b).GetAwaiter().GetResult();
        done.Cancel();
        watcher.Wait();

        Assert.Equal(paths[0], paths[1]);
        Assert.Equal(pt, File.ReadAllBytes(paths[0]));
        Assert.Single(_server.Requests); // the second waited for the first and found the file
        lock (seen) Assert.All(seen, len => Assert.Equal(pt.Length, len));
    }

    [Fact]
    public void OfflineNeverTouchesTheNetworkAndSaysWhatIsMissing()
    {
        if (!Ready(out var pt, out var manifest)) return;
        _server.Files["/test/fixture.pt"] = pt;
        var e = Assert.Throws<CheckpointUnavailableException>(() => CheckpointStore.Fetch(Entry(manifest), Options(offline: true)));
        Assert.Contains("fixture is not in the cache", e.Message);
        Assert.Contains("offline", e.Message);
        Assert.Contains($"{_server.BaseUrl}/test/fixture.pt", e.Message); // what to fetch by hand
        Assert.Empty(_server.Requests);
        Assert.Empty(CacheFiles());

        // once cached, offline serves it
        CheckpointStore.Fetch(Entry(manifest), Options());
        Assert.Equal(pt, File.ReadAllBytes(CheckpointStore.Fetch(Entry(manifest), Options(offline: true))));
        Assert.Single(_server.Requests);
    }

    private sealed class Sync(Action<DownloadProgress> report) : IProgress<DownloadProgress>
    {
        public void Report(DownloadProgress value) => report(value);
    }
}
