using TorchSharp;
using TorchSharp.Modules;
using TorchSam2.Utils;
using static TorchSharp.torch;

namespace TorchSam2.IO;

/// <summary>
/// Where a video session gets its preprocessed frames (3×S×S float, normalized). A tensor of all
/// frames, or files decoded on demand with a small cache, so a long video never has to sit in
/// memory at once (upstream loads every frame up front).
/// </summary>
public abstract class VideoFrameSource : IDisposable
{
    public abstract int NumFrames { get; }
    /// <summary>Original video size (outputs are resized to it).</summary>
    public abstract int VideoHeight { get; }
    public abstract int VideoWidth { get; }

    /// <summary>Frame <paramref name="index"/> as a new 3×S×S float tensor; the caller owns it.</summary>
    public abstract Tensor GetFrame(int index);

    public virtual void Dispose() => GC.SuppressFinalize(this);

    protected void CheckIndex(int index)
    {
        if (index < 0 || index >= NumFrames)
            throw new ArgumentOutOfRangeException(nameof(index), $"frame {index} is out of range: the video has {NumFrames} frames (0..{NumFrames - 1})");
    }
}

/// <summary>All frames held as one T×3×S×S tensor (what upstream does).</summary>
public sealed class TensorFrameSource : VideoFrameSource
{
    private readonly Tensor _frames;
    private readonly int _height, _width;

    /// <summary>Takes a new handle on <paramref name="frames"/>; the caller keeps its own.</summary>
    public TensorFrameSource(Tensor frames, int videoHeight, int videoWidth)
    {
        if (frames.dim() != 4 || frames.size(1) != 3) throw new ArgumentException($"frames must be a T×3×S×S tensor, got [{string.Join(", ", frames.shape)}]");
        if (frames.size(0) == 0) throw new ArgumentException("the video has no frames");
        _frames = frames.alias().DetachFromDisposeScope();
        _height = videoHeight;
        _width = videoWidth;
    }

    public override int NumFrames => (int)_frames.size(0);
    public override int VideoHeight => _height;
    public override int VideoWidth => _width;

    public override Tensor GetFrame(int index)
    {
        CheckIndex(index);
        return _frames[index];
    }

    public override void Dispose()
    {
        _frames.Dispose();
        base.Dispose();
    }
}

/// <summary>
/// Frames decoded and preprocessed when first asked for, from a folder of images or a video file,
/// with the last <c>cacheSize</c> frames kept. Memory is bounded by the cache, not the video length.
/// </summary>
public sealed class LazyFrameSource : VideoFrameSource
{
    private readonly IReadOnlyList<string>? _files;
    private readonly string? _videoPath;
    private VideoReader? _reader;
    private int _nextFrame;
    private readonly SAM2Transforms _transforms;
    private readonly Device _device;
    private readonly int _cacheSize;
    private readonly LinkedList<(int index, Tensor frame)> _cache = new();
    private readonly int _numFrames, _height, _width;

    private LazyFrameSource(IReadOnlyList<string>? files, string? videoPath, int numFrames, int height, int width, long imageSize, Device device, int cacheSize)
    {
        _files = files;
        _videoPath = videoPath;
        _numFrames = numFrames;
        _height = height;
        _width = width;
        _transforms = new SAM2Transforms(imageSize, 0.0);
        _device = device;
        _cacheSize = Math.Max(1, cacheSize);
    }

    /// <summary>A folder of JPEG/PNG frames, ordered by the number in their names (else by name).</summary>
    public static LazyFrameSource FromFolder(string folder, long imageSize, Device device, int cacheSize = 8)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"video folder '{folder}' does not exist");
        string[] exts = [".jpg", ".jpeg", ".png"];
        var files = Directory.GetFiles(folder).Where(p => exts.Contains(Path.GetExtension(p).ToLowerInvariant())).ToList();
        if (files.Count == 0) throw new ArgumentException($"no JPEG/PNG frames in '{folder}'");
        bool numeric = files.All(p => long.TryParse(Path.GetFileNameWithoutExtension(p), out _));
        files = numeric ? files.OrderBy(p => long.Parse(Path.GetFileNameWithoutExtension(p))).ToList()
                        : files.OrderBy(p => Path.GetFileName(p), StringComparer.Ordinal).ToList();
        var first = RgbImage.Load(files[0]);
        return new LazyFrameSource(files, null, files.Count, first.Height, first.Width, imageSize, device, cacheSize);
    }

    /// <summary>A video file; one decoding pass counts the frames (container counts are unreliable), nothing is kept.</summary>
    public static LazyFrameSource FromVideoFile(string path, long imageSize, Device device, int cacheSize = 8)
    {
        int count = 0, h, w;
        using (var reader = VideoReader.Open(path))
        {
            h = reader.Height;
            w = reader.Width;
            while (reader.ReadNext() is not null) count++;
        }
        if (count == 0) throw new InvalidDataException($"video '{path}' has no frames (or none could be decoded)");
        return new LazyFrameSource(null, path, count, h, w, imageSize, device, cacheSize);
    }

    public override int NumFrames => _numFrames;
    public override int VideoHeight => _height;
    public override int VideoWidth => _width;

    /// <summary>Frames decoded so far (for tests and progress).</summary>
    public int DecodeCount { get; private set; }

    public override Tensor GetFrame(int index)
    {
        CheckIndex(index);
        for (var node = _cache.First; node is not null; node = node.Next)
            if (node.Value.index == index)
            {
                _cache.Remove(node);
                _cache.AddLast(node);
                return node.Value.frame.alias();
            }
        Tensor frame;
        using (inference_mode())
            frame = _transforms.ApplyVideoFrame(Decode(index), _device).DetachFromDisposeScope();
        DecodeCount++;
        _cache.AddLast((index, frame));
        while (_cache.Count > _cacheSize)
        {
            _cache.First!.Value.frame.Dispose();
            _cache.RemoveFirst();
        }
        return frame.alias();
    }

    private RgbImage Decode(int index)
    {
        RgbImage img;
        if (_files is not null)
        {
            img = RgbImage.Load(_files[index]);
        }
        else
        {
            _reader ??= VideoReader.Open(_videoPath!);
            if (index != _nextFrame) _reader.Seek(index);
            img = _reader.ReadNext() ?? throw new InvalidDataException($"frame {index} of '{_videoPath}' could not be decoded");
            _nextFrame = index + 1;
        }
        if (img.Height != _height || img.Width != _width)
            throw new InvalidDataException($"frame {index} is {img.Width}x{img.Height}, the first frame is {_width}x{_height}");
        return img;
    }

    public override void Dispose()
    {
        foreach (var (_, f) in _cache) f.Dispose();
        _cache.Clear();
        _reader?.Dispose();
        base.Dispose();
    }
}
