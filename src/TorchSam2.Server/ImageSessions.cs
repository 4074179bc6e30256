using TorchSam2.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchSam2.Server;

/// <summary>One opened image: its pixels, its embedding (while cached) and the low-res logits of its recent predictions.</summary>
internal sealed class ImageSession(string id, string name, RgbImage image)
{
    public string Id { get; } = id;
    public string Name { get; } = name;
    public RgbImage Image { get; } = image;
    /// <summary>Holds the embedding; null when it was dropped from the cache (encoded again on the next click).</summary>
    public Sam2ImagePredictor? Predictor { get; set; }
    public long LastUsed { get; set; }
    /// <summary>Low-res logits by id, oldest first (bounded by <see cref="ServerOptions.MaxLogitsPerSession"/>).</summary>
    public LinkedList<(string id, Tensor logits)> Logits { get; } = new();
    public int Predictions { get; set; }

    /// <summary>Frees the native tensors; call under the model gate.</summary>
    public void Free()
    {
        Predictor?.Dispose();
        Predictor = null;
        foreach (var (_, t) in Logits) t.Dispose();
        Logits.Clear();
    }
}

/// <summary>
/// The open image sessions: at most <see cref="ServerOptions.MaxSessions"/> (opening one more closes the least recently
/// used) and at most <see cref="ServerOptions.MaxEmbeddings"/> embeddings (the least recently used are dropped).
/// Bookkeeping is under a lock; tensors are only created or freed under the <see cref="ModelGate"/>.
/// </summary>
internal sealed class ImageSessions(ServerOptions options)
{
    private readonly Dictionary<string, ImageSession> _sessions = new();
    private readonly object _sync = new();
    private long _clock;

    public int Count { get { lock (_sync) return _sessions.Count; } }

    public int EmbeddingCount { get { lock (_sync) return _sessions.Values.Count(s => s.Predictor is not null); } }

    public ImageSession Get(string id)
    {
        lock (_sync)
        {
            if (!_sessions.TryGetValue(id, out var s))
                throw new ApiException(404, $"no image '{Trim(id)}': it was closed or evicted (the server keeps {options.MaxSessions}); open it again");
            s.LastUsed = ++_clock;
            return s;
        }
    }

    public bool Contains(string id) { lock (_sync) return _sessions.ContainsKey(id); }

    /// <summary>Adds a session; returns the sessions that no longer fit (the caller frees them under the gate).</summary>
    public List<ImageSession> Add(ImageSession s)
    {
        lock (_sync)
        {
            s.LastUsed = ++_clock;
            _sessions[s.Id] = s;
            var evicted = new List<ImageSession>();
            while (_sessions.Count > options.MaxSessions)
            {
                var lru = _sessions.Values.MinBy(x => x.LastUsed)!;
                _sessions.Remove(lru.Id);
                evicted.Add(lru);
            }
            return evicted;
        }
    }

    public ImageSession? Remove(string id)
    {
        lock (_sync) return _sessions.Remove(id, out var s) ? s : null;
    }

    /// <summary>Drops the embeddings beyond the cap, least recently used first, keeping <paramref name="keep"/>'s; call under the gate.</summary>
    public void TrimEmbeddings(ImageSession keep)
    {
        List<ImageSession> drop;
        lock (_sync)
        {
            var withEmbedding = _sessions.Values.Where(s => s.Predictor is not null && s != keep).OrderBy(s => s.LastUsed).ToList();
            int excess = withEmbedding.Count + (keep.Predictor is not null ? 1 : 0) - options.MaxEmbeddings;
            drop = withEmbedding.Take(Math.Max(0, excess)).ToList();
        }
        foreach (var s in drop)
        {
            s.Predictor?.Dispose();
            s.Predictor = null;
        }
    }

    public List<ImageSession> RemoveAll()
    {
        lock (_sync)
        {
            var all = _sessions.Values.ToList();
            _sessions.Clear();
            return all;
        }
    }

    private static string Trim(string s) => s.Length > 40 ? s[..40] + "…" : s;
}
