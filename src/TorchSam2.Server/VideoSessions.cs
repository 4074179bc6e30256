using System.IO.Compression;
using System.Text.Json;
using TorchSam2.Configs;
using TorchSam2.IO;
using TorchSam2.Modeling;
using TorchSam2.Utils;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchSam2.Server;

/// <summary>One object's mask on one frame, as COCO RLE.</summary>
public sealed record FrameObject(int Id, long Area, RleJson Rle);

/// <summary>The masks of every object on one frame.</summary>
public sealed record FrameMasks(int Frame, IReadOnlyList<FrameObject> Objects);

/// <summary>An opened video: frame count and size.</summary>
public sealed record VideoInfo(string Id, string Name, int NumFrames, int Width, int Height);

/// <summary>Opens a video (a file or a folder of frames) of the served folder.</summary>
public sealed record VideoOpenRequest(string Path);

/// <summary>Prompts for one object on one frame (they replace that object's earlier prompts on the frame).</summary>
public sealed record VideoPromptRequest(int Frame, int ObjId, float[][]? Points = null, int[]? Labels = null, float[]? Box = null);

/// <summary>Tracks from a frame forwards, or backwards with <c>Reverse</c>.</summary>
public sealed record PropagateRequest(int Start, bool Reverse = false);

/// <summary>Tracking progress and the frames done since <c>since</c> (poll until <c>Running</c> is false).</summary>
public sealed record TrackStatus(bool Running, int Done, int Total, string? Error, int Next, IReadOnlyList<FrameMasks> Frames);

/// <summary>
/// A video session: the library's inference state with bounded memory (frames decoded lazily, a few cached, old
/// memories dropped), the original frames for the page, and every frame's masks as RLE (small).
/// </summary>
internal sealed class VideoSession : IDisposable
{
    private readonly string[]? _files;
    private readonly VideoReader? _reader;
    private readonly object _frameLock = new();
    private long _next;

    public string Id { get; }
    public string Name { get; }
    public string Path { get; }
    /// <summary>A temporary upload deleted with the session (null for files of the served folder).</summary>
    public string? TempFile { get; init; }
    public Sam2VideoPredictor Predictor { get; }
    public VideoInferenceState State { get; }
    public SortedDictionary<int, FrameMasks> Masks { get; } = new();
    /// <summary>Frames in the order they were done (for polling), reset by each track.</summary>
    public List<int> Log { get; } = new();
    public object Sync { get; } = new();
    public volatile bool Running;
    public volatile bool Cancel;
    public int Done, Total;
    public string? Error;
    public Task? Job;

    public VideoSession(string id, string name, string path, Sam2VideoPredictor predictor)
    {
        Id = id;
        Name = name;
        Path = path;
        Predictor = predictor;
        State = predictor.InitState(path, offloadVideoToCpu: true);
        State.BoundedMemory = true;
        if (File.Exists(path))
        {
            _reader = VideoReader.Open(path);
        }
        else
        {
            string[] exts = [".jpg", ".jpeg", ".png"];
            var files = Directory.GetFiles(path).Where(p => exts.Contains(System.IO.Path.GetExtension(p).ToLowerInvariant())).ToList();
            // the order of Sam2VideoPredictor.InitState
            bool numeric = files.All(p => long.TryParse(System.IO.Path.GetFileNameWithoutExtension(p), out _));
            _files = numeric
                ? files.OrderBy(p => long.Parse(System.IO.Path.GetFileNameWithoutExtension(p))).ToArray()
                : files.OrderBy(p => System.IO.Path.GetFileName(p), StringComparer.Ordinal).ToArray();
        }
    }

    public RgbImage Frame(int idx)
    {
        if (idx < 0 || idx >= State.NumFrames) throw new ApiException(404, $"frame {idx} is outside the video (0..{State.NumFrames - 1})");
        lock (_frameLock)
        {
            if (_files is not null) return RgbImage.Load(_files[idx]);
            if (idx != _next) _reader!.Seek(idx);
            _next = idx + 1;
            return _reader!.ReadNext() ?? throw new ApiException(500, $"cannot decode frame {idx} of the video");
        }
    }

    /// <summary>Stores a frame's masks (O×1×H×W logits) as RLE; returns them.</summary>
    public FrameMasks Store(int frame, IReadOnlyList<int> ids, Tensor logits)
    {
        var objects = new List<FrameObject>();
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        for (int o = 0; o < ids.Count; o++)
        {
            using var l = logits[o, 0];
            using var m = l > 0.0;
            var rle = Rle.Encode(m);
            objects.Add(new FrameObject(ids[o], rle.Area(), new RleJson([rle.Height, rle.Width], rle.ToCocoString())));
        }
        var fm = new FrameMasks(frame, objects);
        lock (Sync) Masks[frame] = fm;
        return fm;
    }

    /// <summary>masks.json (as <c>torchsam2 track</c> writes it) and masks/NNNNN.png (object ids as pixel values) in a zip.</summary>
    public byte[] Export()
    {
        List<FrameMasks> frames;
        lock (Sync) frames = Masks.Values.ToList();
        int h = State.VideoHeight, w = State.VideoWidth;
        using var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, true))
        {
            foreach (var f in frames)
            {
                var indexed = new byte[(long)h * w];
                foreach (var o in f.Objects)
                {
                    var on = Rle.FromCocoString(o.Rle.Counts, h, w).DecodeRowMajor();
                    // later objects win where masks overlap, as track writes them
                    for (int i = 0; i < on.Length; i++) if (on[i]) indexed[i] = (byte)Math.Clamp(o.Id, 0, 255);
                }
                var entry = zip.CreateEntry($"masks/{f.Frame:D5}.png", CompressionLevel.NoCompression);
                using var s = entry.Open();
                s.Write(Sam2Server.EncodePng(indexed, h, w, 1));
            }
            var json = new
            {
                video = Name,
                height = h,
                width = w,
                num_frames = State.NumFrames,
                object_ids = State.ObjectIds,
                frames = frames.Select(f => new { frame = f.Frame, objects = f.Objects.Select(o => new { id = o.Id, area = o.Area, rle = new { size = o.Rle.Size, counts = o.Rle.Counts } }) }),
            };
            var je = zip.CreateEntry("masks.json");
            using var js = je.Open();
            JsonSerializer.Serialize(js, json, new JsonSerializerOptions { WriteIndented = true });
        }
        return ms.ToArray();
    }

    /// <summary>Frees the state; call under the model gate with no track running.</summary>
    public void Dispose()
    {
        State.Dispose();
        _reader?.Dispose();
        if (TempFile is not null)
            try { File.Delete(TempFile); } catch (IOException) { /* gone already */ }
    }
}

/// <summary>The open video sessions (at most <see cref="ServerOptions.MaxVideoSessions"/>; more are refused until one is closed).</summary>
internal sealed class VideoSessions(ServerOptions options, Sam2ModelConfig? config)
{
    private readonly Dictionary<string, VideoSession> _sessions = new();
    private readonly object _sync = new();

    public Sam2VideoPredictor NewPredictor(SAM2Base model) =>
        config is null ? new Sam2VideoPredictor(model) : Sam2VideoPredictor.FromConfig(model, BuildSam.VideoPredictorConfig(config));

    public void Reserve()
    {
        lock (_sync)
            if (_sessions.Count >= options.MaxVideoSessions)
                throw new ApiException(429, $"{options.MaxVideoSessions} video(s) are open already (the server's limit): close one first");
    }

    public void Add(VideoSession s)
    {
        lock (_sync)
        {
            if (_sessions.Count >= options.MaxVideoSessions)
                throw new ApiException(429, $"{options.MaxVideoSessions} video(s) are open already (the server's limit): close one first");
            _sessions[s.Id] = s;
        }
    }

    public VideoSession Get(string id)
    {
        lock (_sync)
            return _sessions.TryGetValue(id, out var s) ? s : throw new ApiException(404, "no such video (closed); open it again");
    }

    public VideoSession? Remove(string id) { lock (_sync) return _sessions.Remove(id, out var s) ? s : null; }

    public List<VideoSession> RemoveAll() { lock (_sync) { var all = _sessions.Values.ToList(); _sessions.Clear(); return all; } }

    public int Count { get { lock (_sync) return _sessions.Count; } }
}
