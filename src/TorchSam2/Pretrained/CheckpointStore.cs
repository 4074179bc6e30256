using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using TorchSam2.Checkpoints;

namespace TorchSam2.Pretrained;

/// <summary>Bytes received so far of a download, and its size when the server says it.</summary>
public readonly record struct DownloadProgress(string Name, long Received, long? Total);

/// <summary>Where checkpoints are cached and how they are fetched. Null properties fall back to the environment.</summary>
public sealed class CheckpointStoreOptions
{
    /// <summary>The cache folder; null: $TORCHSAM2_CACHE, else $XDG_CACHE_HOME/torchsam2 or ~/.cache/torchsam2 (%LOCALAPPDATA%\torchsam2 on Windows).</summary>
    public string? CacheDir { get; set; }

    /// <summary>Never touch the network; null: TORCHSAM2_OFFLINE=1 (or true).</summary>
    public bool? Offline { get; set; }

    /// <summary>The URL the catalog's relative paths hang from; null: $TORCHSAM2_DOWNLOAD_BASE, else Meta's.</summary>
    public string? DownloadBase { get; set; }

    /// <summary>
    /// Runs a download under a progress display: called with the checkpoint and the download, which it must call
    /// once with a progress sink (or null). Null: no display.
    /// </summary>
    public Action<PretrainedCheckpoint, Action<IProgress<DownloadProgress>?>>? ShowProgress { get; set; }

    /// <summary>Status lines (waiting for another process's download, retries); null: none.</summary>
    public Action<string>? Log { get; set; }

    /// <summary>Tries per download before giving up (the partial file is kept and resumed by the next run).</summary>
    public int Attempts { get; set; } = 4;

    /// <summary>The pause before the second try; it doubles for each further one.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>A connection that delivers nothing for this long counts as cut.</summary>
    public TimeSpan ReadTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How long to wait for another process that is downloading the same file.</summary>
    public TimeSpan LockTimeout { get; set; } = TimeSpan.FromHours(2);
}

/// <summary>A checkpoint that cannot be had: not cached while offline, a failed download.</summary>
public class CheckpointUnavailableException : FileNotFoundException
{
    /// <summary>Creates the exception.</summary>
    public CheckpointUnavailableException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>A downloaded file that is not the checkpoint it should be (unreadable, or not matching its manifest); it is deleted.</summary>
public sealed class CheckpointVerificationException : CheckpointUnavailableException
{
    /// <summary>Creates the exception.</summary>
    public CheckpointVerificationException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>
/// Checkpoints by name: a name resolves to a file in the cache folder, downloaded on first use (resumed when a
/// connection breaks, written aside and moved into place under a lock, so a second process never sees a torn file)
/// and verified against the shipped manifest before it is moved into place. A file that fails is deleted, not cached.
/// </summary>
public static class CheckpointStore
{
    /// <summary>Meta's download folder (README's checkpoint table).</summary>
    public const string DefaultDownloadBase = "https://dl.fbaipublicfiles.com/segment_anything_2";

    /// <summary>Environment variable: the cache folder.</summary>
    public const string CacheVariable = "TORCHSAM2_CACHE";

    /// <summary>Environment variable: 1 or true never touches the network.</summary>
    public const string OfflineVariable = "TORCHSAM2_OFFLINE";

    /// <summary>Environment variable: the download base URL (a mirror, or a local server in tests).</summary>
    public const string DownloadBaseVariable = "TORCHSAM2_DOWNLOAD_BASE";

    private const string PartSuffix = ".part";
    private const string LockSuffix = ".lock";
    private const long MaxDownloadBytes = 8L << 30; // the large checkpoint is 0.9 GB

    /// <summary>The options used when a call passes none (the CLI sets --cache-dir, --offline and its progress bar here).</summary>
    public static CheckpointStoreOptions Defaults { get; set; } = new();

    /// <summary>The cache folder the options pick.</summary>
    public static string CacheDir(CheckpointStoreOptions? options = null)
    {
        var o = options ?? Defaults;
        if (!string.IsNullOrWhiteSpace(o.CacheDir)) return Path.GetFullPath(o.CacheDir);
        if (Environment.GetEnvironmentVariable(CacheVariable) is { Length: > 0 } env) return Path.GetFullPath(env);
        if (OperatingSystem.IsWindows())
            return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "torchsam2");
        if (Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg && Path.IsPathRooted(xdg))
            return Path.Combine(xdg, "torchsam2");
        return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "torchsam2");
    }

    /// <summary>Whether the options (or TORCHSAM2_OFFLINE) forbid the network.</summary>
    public static bool IsOffline(CheckpointStoreOptions? options = null)
    {
        var o = options ?? Defaults;
        if (o.Offline is bool b) return b;
        return Environment.GetEnvironmentVariable(OfflineVariable)?.Trim().ToLowerInvariant() is "1" or "true" or "yes";
    }

    /// <summary>The URL a checkpoint is fetched from.</summary>
    public static Uri DownloadUrl(PretrainedCheckpoint checkpoint, CheckpointStoreOptions? options = null)
    {
        if (checkpoint.RelativeUrl is null) throw new ArgumentException($"{checkpoint.Name} is embedded, not downloaded", nameof(checkpoint));
        var o = options ?? Defaults;
        string b = !string.IsNullOrWhiteSpace(o.DownloadBase) ? o.DownloadBase
                 : Environment.GetEnvironmentVariable(DownloadBaseVariable) is { Length: > 0 } env ? env : DefaultDownloadBase;
        return new Uri(b.TrimEnd('/') + "/" + checkpoint.RelativeUrl);
    }

    /// <summary>Where a downloaded checkpoint lives in the cache (whether or not it is there yet).</summary>
    public static string CachedPath(PretrainedCheckpoint checkpoint, CheckpointStoreOptions? options = null) =>
        Path.Combine(CacheDir(options), checkpoint.FileName);

    /// <summary>
    /// A checkpoint path for a path or a name: an existing file as it is; a known name (<see cref="PretrainedCheckpoints.TryFind"/>)
    /// as its cached file, fetched first when missing. Anything else is a <see cref="FileNotFoundException"/>.
    /// </summary>
    public static string Resolve(string pathOrName, CheckpointStoreOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(pathOrName);
        if (File.Exists(pathOrName)) return pathOrName;
        if (PretrainedCheckpoints.TryFind(pathOrName, out var c)) return Fetch(c, options);
        if (Directory.Exists(pathOrName)) throw new FileNotFoundException($"checkpoint {UntrustedText.Quote(pathOrName)} is a folder, not a file", pathOrName);
        throw new FileNotFoundException($"checkpoint not found: {UntrustedText.Quote(pathOrName)} is neither a file nor a known name ({PretrainedCheckpoints.KnownNames})", pathOrName);
    }

    /// <summary>
    /// The built-in config for a checkpoint name, or for a path that is a cached named checkpoint; null otherwise
    /// (then the variant is detected from the weights).
    /// </summary>
    public static string? ConfigFor(string pathOrName, CheckpointStoreOptions? options = null)
    {
        if (!File.Exists(pathOrName)) return PretrainedCheckpoints.TryFind(pathOrName, out var c) ? c.Config : null;
        string full = Path.GetFullPath(pathOrName);
        if (!string.Equals(Path.GetDirectoryName(full), CacheDir(options), OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal))
            return null;
        string file = Path.GetFileName(full);
        foreach (var k in PretrainedCheckpoints.All)
            if (k.IsEmbedded ? file.StartsWith(Path.GetFileNameWithoutExtension(k.FileName) + "-", StringComparison.Ordinal) : file == k.FileName)
                return k.Config;
        return null;
    }

    /// <summary>The cached file of a checkpoint, downloaded (or, for the embedded model, written out) first when missing.</summary>
    public static string Fetch(PretrainedCheckpoint checkpoint, CheckpointStoreOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        var o = options ?? Defaults;
        if (checkpoint.IsEmbedded) return WriteOutEmbedded(checkpoint, o);
        string final = CachedPath(checkpoint, o);
        if (File.Exists(final)) return final;
        var url = DownloadUrl(checkpoint, o);
        if (IsOffline(o))
            throw new CheckpointUnavailableException(
                $"{checkpoint.Name} is not in the cache ({final}) and offline mode is on (--offline or {OfflineVariable}=1); " +
                $"download it while online (torchsam2 download {checkpoint.Name}) or fetch {url} by hand into {CacheDir(o)}");
        Directory.CreateDirectory(CacheDir(o));
        using (AcquireLock(final + LockSuffix, checkpoint.Name, o))
        {
            if (File.Exists(final)) return final; // another process fetched it while we waited
            string part = final + PartSuffix;
            if (o.ShowProgress is { } show) show(checkpoint, p => Download(checkpoint, url, part, o, p));
            else Download(checkpoint, url, part, o, null);
            Verify(checkpoint, part);
            File.Move(part, final, overwrite: true);
        }
        return final;
    }

    /// <summary>
    /// Checks a downloaded file against a manifest: readable as a checkpoint (every tensor read, zip CRCs checked) and
    /// every key, shape and dtype as listed, no more. Throws <see cref="CheckpointVerificationException"/> otherwise.
    /// </summary>
    public static void Verify(string path, CheckpointManifest manifest, string what)
    {
        IReadOnlyList<string> differences;
        try
        {
            using var reader = CheckpointReader.Open(path);
            differences = manifest.Differences(reader);
            if (differences.Count == 0)
            {
                var buffer = new byte[reader.Tensors.Values.Select(t => t.ByteCount).DefaultIfEmpty(0).Max()];
                foreach (var t in reader.Tensors.Values) t.ReadInto(buffer.AsSpan(0, checked((int)t.ByteCount)));
            }
        }
        catch (Exception e) when (e is not (OutOfMemoryException or CheckpointVerificationException))
        {
            throw new CheckpointVerificationException($"{what} is not a readable checkpoint: {UntrustedText.OneLine(e.Message)}", e);
        }
        if (differences.Count > 0)
            throw new CheckpointVerificationException($"{what} does not match its manifest: {string.Join("; ", differences)}");
    }

    private static void Verify(PretrainedCheckpoint checkpoint, string part)
    {
        try
        {
            var manifest = checkpoint.Manifest?.Invoke() ?? throw new InvalidOperationException($"{checkpoint.Name} has no manifest");
            Verify(part, manifest, $"the downloaded {checkpoint.FileName}");
        }
        catch (CheckpointVerificationException e)
        {
            File.Delete(part);
            throw new CheckpointVerificationException($"{e.Message}; it was deleted, not cached", e.InnerException);
        }
    }

    // ---- the cache -----------------------------------------------------------------------------------------

    /// <summary>A file in the cache: a checkpoint (Name set) or a partial download (Partial).</summary>
    public sealed record CachedFile(string Path, string? Name, long Bytes, bool Partial);

    /// <summary>The checkpoints and partial downloads in the cache folder.</summary>
    public static IReadOnlyList<CachedFile> List(CheckpointStoreOptions? options = null)
    {
        string dir = CacheDir(options);
        if (!Directory.Exists(dir)) return [];
        var result = new List<CachedFile>();
        foreach (var f in new DirectoryInfo(dir).EnumerateFiles().OrderBy(f => f.Name, StringComparer.Ordinal))
        {
            if (f.Name.EndsWith(LockSuffix, StringComparison.Ordinal) || f.Name.StartsWith('.')) continue;
            bool partial = f.Name.EndsWith(PartSuffix, StringComparison.Ordinal);
            string baseName = partial ? f.Name[..^PartSuffix.Length] : f.Name;
            string? name = PretrainedCheckpoints.All.FirstOrDefault(k => k.IsEmbedded
                ? baseName.StartsWith(Path.GetFileNameWithoutExtension(k.FileName) + "-", StringComparison.Ordinal)
                : baseName == k.FileName)?.Name;
            result.Add(new CachedFile(f.FullName, name, f.Length, partial));
        }
        return result;
    }

    /// <summary>
    /// Deletes cached checkpoints (all, or those of the given names) and partial downloads; a file another process is
    /// downloading right now is left alone. Returns the files deleted.
    /// </summary>
    public static IReadOnlyList<CachedFile> Clear(IEnumerable<string>? names = null, CheckpointStoreOptions? options = null)
    {
        var o = options ?? Defaults;
        HashSet<string>? only = names?.Select(n => PretrainedCheckpoints.Find(n).Name).ToHashSet(StringComparer.Ordinal);
        var deleted = new List<CachedFile>();
        foreach (var f in List(o))
        {
            if (only is not null && (f.Name is null || !only.Contains(f.Name))) continue;
            string final = f.Partial ? f.Path[..^PartSuffix.Length] : f.Path;
            FileStream? held = null;
            try
            {
                held = new FileStream(final + LockSuffix, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException)
            {
                continue; // being downloaded
            }
            using (held)
            {
                File.Delete(f.Path);
                deleted.Add(f);
            }
            File.Delete(final + LockSuffix);
        }
        return deleted;
    }

    // ---- downloading ---------------------------------------------------------------------------------------

    private sealed class TransientException(string message, Exception? inner = null) : Exception(message, inner);

    private static FileStream AcquireLock(string path, string name, CheckpointStoreOptions o)
    {
        // FileShare.None takes an exclusive flock on Unix (a lock file on Windows): one downloader per file, across
        // processes and threads; the kernel drops it when a process dies.
        var waited = System.Diagnostics.Stopwatch.StartNew();
        bool told = false;
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException e) when (e is not (DirectoryNotFoundException or PathTooLongException))
            {
                if (waited.Elapsed > o.LockTimeout)
                    throw new CheckpointUnavailableException($"another process has been downloading {name} for {waited.Elapsed.TotalMinutes:F0} min (lock file {path})", e);
                if (!told) o.Log?.Invoke($"waiting for another process that is downloading {name}");
                told = true;
                Thread.Sleep(200);
            }
        }
    }

    private static void Download(PretrainedCheckpoint checkpoint, Uri url, string part, CheckpointStoreOptions o, IProgress<DownloadProgress>? progress)
    {
        using var http = new HttpClient(new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(30), AutomaticDecompression = DecompressionMethods.None })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
        http.DefaultRequestHeaders.UserAgent.ParseAdd("torchsam2/" + (typeof(CheckpointStore).Assembly.GetName().Version?.ToString(3) ?? "0"));
        Exception? last = null;
        int attempts = Math.Max(1, o.Attempts);
        for (int attempt = 1; attempt <= attempts; attempt++)
        {
            try
            {
                DownloadOnce(http, checkpoint, url, part, o, progress).GetAwaiter().GetResult();
                return;
            }
            catch (Exception e) when (e is TransientException or HttpRequestException or IOException or OperationCanceledException
                                       && e is not CheckpointUnavailableException)
            {
                last = e;
                if (attempt < attempts)
                {
                    var delay = o.RetryDelay * (1 << (attempt - 1));
                    o.Log?.Invoke($"{checkpoint.Name}: {UntrustedText.OneLine(e.Message)}; trying again in {delay.TotalSeconds:0.#} s");
                    Thread.Sleep(delay);
                }
            }
        }
        long have = File.Exists(part) ? new FileInfo(part).Length : 0;
        throw new CheckpointUnavailableException(
            $"downloading {checkpoint.Name} from {url} failed after {attempts} tries: {UntrustedText.OneLine(last?.Message)}" +
            (have > 0 ? $"; the {have / 1e6:F1} MB received are kept and the next try resumes them" : ""), last);
    }

    private static async Task DownloadOnce(HttpClient http, PretrainedCheckpoint checkpoint, Uri url, string part, CheckpointStoreOptions o, IProgress<DownloadProgress>? progress)
    {
        long have = File.Exists(part) ? new FileInfo(part).Length : 0;
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        if (have > 0) request.Headers.Range = new RangeHeaderValue(have, null);
        HttpResponseMessage sent;
        // a time limit for the headers only (disposed, never cancelled, once they are in): the body has its own per read
        using (var connect = new CancellationTokenSource(o.ReadTimeout + TimeSpan.FromSeconds(30)))
            sent = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, connect.Token).ConfigureAwait(false);
        using var response = sent;
        var status = response.StatusCode;
        if (status == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            File.Delete(part); // the partial file is not a prefix of what the server has now
            throw new TransientException("the server would not resume the partial file; starting over");
        }
        if (!response.IsSuccessStatusCode)
        {
            string what = $"HTTP {(int)status} {response.ReasonPhrase} from {url}";
            if ((int)status >= 500 || status is HttpStatusCode.TooManyRequests or HttpStatusCode.RequestTimeout) throw new TransientException(what);
            throw new CheckpointUnavailableException($"downloading {checkpoint.Name} failed: {what}");
        }
        long start = 0;
        long? total = response.Content.Headers.ContentLength;
        if (status == HttpStatusCode.PartialContent)
        {
            var range = response.Content.Headers.ContentRange;
            if (range?.From != have)
            {
                File.Delete(part);
                throw new TransientException($"the server resumed at byte {range?.From}, not {have}; starting over");
            }
            start = have;
            total = range.Length;
        }
        if (total > MaxDownloadBytes) throw new CheckpointUnavailableException($"{url} is {total / 1e9:F1} GB, more than a checkpoint can be ({MaxDownloadBytes / 1e9:F0} GB)");

        await using var body = await response.Content.ReadAsStreamAsync().ConfigureAwait(false);
        await using (var file = new FileStream(part, start == 0 ? FileMode.Create : FileMode.Append, FileAccess.Write, FileShare.None, 1 << 16))
        {
            var buffer = new byte[1 << 20];
            long received = start;
            progress?.Report(new DownloadProgress(checkpoint.Name, received, total));
            while (true)
            {
                using var idle = new CancellationTokenSource(o.ReadTimeout);
                int n;
                try
                {
                    n = await body.ReadAsync(buffer, idle.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException e)
                {
                    throw new TransientException($"no data for {o.ReadTimeout.TotalSeconds:0} s", e);
                }
                if (n == 0) break;
                await file.WriteAsync(buffer.AsMemory(0, n)).ConfigureAwait(false);
                received += n;
                if (received > MaxDownloadBytes) throw new CheckpointUnavailableException($"{url} sent more than {MaxDownloadBytes / 1e9:F0} GB");
                progress?.Report(new DownloadProgress(checkpoint.Name, received, total));
            }
            await file.FlushAsync().ConfigureAwait(false);
            file.Flush(flushToDisk: true);
            if (total is long expected && received != expected)
                throw new TransientException($"the connection closed after {received} of {expected} bytes");
        }
    }

    // ---- the embedded model ----------------------------------------------------------------------------------

    private static readonly object EmbeddedGate = new();

    private static string WriteOutEmbedded(PretrainedCheckpoint checkpoint, CheckpointStoreOptions o)
    {
        var asm = typeof(CheckpointStore).Assembly;
        string resource = "weights/" + checkpoint.FileName;
        // the file name carries the content hash, so a newer library never reads an older library's model
        string hash;
        long length;
        using (var s = asm.GetManifestResourceStream(resource)
                   ?? throw new FileNotFoundException($"the model {checkpoint.Name} is not embedded in {asm.GetName().Name} ('{resource}')"))
        {
            length = s.Length;
            hash = Convert.ToHexStringLower(SHA256.HashData(s))[..16];
        }
        string fileName = $"{Path.GetFileNameWithoutExtension(checkpoint.FileName)}-{hash}{Path.GetExtension(checkpoint.FileName)}";
        foreach (string dir in new[] { CacheDir(o), Path.Combine(Path.GetTempPath(), $"torchsam2-{Environment.UserName}") })
        {
            string final = Path.Combine(dir, fileName);
            if (File.Exists(final) && new FileInfo(final).Length == length) return final;
            try
            {
                Directory.CreateDirectory(dir);
                lock (EmbeddedGate)
                using (AcquireLock(final + LockSuffix, checkpoint.Name, o))
                {
                    if (File.Exists(final) && new FileInfo(final).Length == length) return final;
                    string part = final + PartSuffix;
                    using (var s = asm.GetManifestResourceStream(resource)!)
                    using (var f = new FileStream(part, FileMode.Create, FileAccess.Write, FileShare.None))
                        s.CopyTo(f);
                    File.Move(part, final, overwrite: true);
                    return final;
                }
            }
            catch (UnauthorizedAccessException)
            {
                // a read-only cache: the temporary folder instead
            }
        }
        throw new CheckpointUnavailableException($"cannot write the embedded model {checkpoint.Name} to {CacheDir(o)} or the temporary folder");
    }
}
