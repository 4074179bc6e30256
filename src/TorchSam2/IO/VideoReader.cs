using System.Runtime.InteropServices;

namespace TorchSam2.IO;

/// <summary>
/// Sequential reader of a video file (MP4, AVI, MKV, ... whatever OpenCV's videoio can open)
/// through the OpenCV shim (libtorchsam2_vision). Frames come out one at a time as RGB, so a
/// whole video is never held decoded.
/// </summary>
public sealed unsafe partial class VideoReader : IDisposable
{
    private const string Lib = "torchsam2_vision";

    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int tsv_video_open(string path, out IntPtr reader, out int height, out int width, out long frame_count, out double fps,
        byte* err, int errlen);

    [LibraryImport(Lib)]
    private static partial int tsv_video_read(IntPtr reader, byte* dst, out int got, byte* err, int errlen);

    [LibraryImport(Lib)]
    private static partial int tsv_video_seek(IntPtr reader, long frame, byte* err, int errlen);

    [LibraryImport(Lib)]
    private static partial void tsv_video_close(IntPtr reader);

    /// <summary>Extensions treated as video files (anything else in a folder is not a video).</summary>
    public static readonly IReadOnlyList<string> VideoExtensions = [".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"];

    private IntPtr _reader;

    public string Path { get; }
    public int Height { get; }
    public int Width { get; }
    /// <summary>Frame count claimed by the container (may be approximate or 0 for some formats).</summary>
    public long ReportedFrameCount { get; }
    public double Fps { get; }

    private VideoReader(string path, IntPtr reader, int height, int width, long frameCount, double fps)
    {
        Path = path;
        _reader = reader;
        Height = height;
        Width = width;
        ReportedFrameCount = frameCount;
        Fps = fps;
    }

    /// <summary>True when the path names a file with a known video extension.</summary>
    public static bool IsVideoFile(string path) =>
        File.Exists(path) && VideoExtensions.Contains(System.IO.Path.GetExtension(path).ToLowerInvariant());

    public static VideoReader Open(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"video not found: {path}", path);
        byte* err = stackalloc byte[512];
        int rc;
        IntPtr reader;
        int h, w;
        long n;
        double fps;
        try { rc = tsv_video_open(path, out reader, out h, out w, out n, out fps, err, 512); }
        catch (DllNotFoundException e) { throw Missing(e); }
        if (rc != 0) throw new InvalidDataException(Marshal.PtrToStringUTF8((IntPtr)err) ?? $"cannot open video '{path}'");
        if (h <= 0 || w <= 0)
        {
            tsv_video_close(reader);
            throw new InvalidDataException($"video '{path}' has no decodable frames (size {w}x{h})");
        }
        return new VideoReader(path, reader, h, w, n, fps);
    }

    /// <summary>Decodes the next frame; null at the end of the video.</summary>
    public RgbImage? ReadNext()
    {
        ObjectDisposedException.ThrowIf(_reader == IntPtr.Zero, this);
        var pixels = new byte[(long)Height * Width * 3];
        byte* err = stackalloc byte[512];
        int got, rc;
        fixed (byte* p = pixels) rc = tsv_video_read(_reader, p, out got, err, 512);
        if (rc != 0) throw new InvalidDataException(Marshal.PtrToStringUTF8((IntPtr)err) ?? $"cannot decode a frame of '{Path}'");
        return got == 0 ? null : new RgbImage(pixels, Height, Width);
    }

    /// <summary>Moves to a frame index (the next <see cref="ReadNext"/> returns it); not exact for every codec.</summary>
    public void Seek(long frame)
    {
        ObjectDisposedException.ThrowIf(_reader == IntPtr.Zero, this);
        ArgumentOutOfRangeException.ThrowIfNegative(frame);
        byte* err = stackalloc byte[512];
        int rc = tsv_video_seek(_reader, frame, err, 512);
        if (rc != 0) throw new IOException(Marshal.PtrToStringUTF8((IntPtr)err) ?? $"cannot seek in '{Path}'");
    }

    /// <summary>The remaining frames, decoded one at a time.</summary>
    public IEnumerable<RgbImage> Frames()
    {
        while (ReadNext() is RgbImage f) yield return f;
    }

    public void Dispose()
    {
        if (_reader == IntPtr.Zero) return;
        tsv_video_close(_reader);
        _reader = IntPtr.Zero;
    }

    private static Exception Missing(DllNotFoundException e) =>
        new DllNotFoundException("libtorchsam2_vision (the OpenCV shim) was not found; build native/ (see README) to read videos", e);
}
