using OpenCvSharp;

namespace TorchSam2.IO;

/// <summary>
/// Sequential reader of a video file (MP4, AVI, MKV, ... whatever OpenCV's videoio can open)
/// through OpenCvSharp (its bundled FFmpeg backend). Frames come out one at a time as RGB, so a
/// whole video is never held decoded.
/// </summary>
public sealed class VideoReader : IDisposable
{
    /// <summary>Extensions treated as video files (anything else in a folder is not a video).</summary>
    public static readonly IReadOnlyList<string> VideoExtensions = [".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"];

    private VideoCapture? _cap;

    public string Path { get; }
    /// <summary>Frame size promised at open: every frame handed out has exactly this size.</summary>
    public int Height { get; }
    public int Width { get; }
    /// <summary>Frame count claimed by the container (may be approximate or 0 for some formats).</summary>
    public long ReportedFrameCount { get; }
    public double Fps { get; }

    private VideoReader(string path, VideoCapture cap, int height, int width, long frameCount, double fps)
    {
        Path = path;
        _cap = cap;
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
        VideoCapture? cap = null;
        try
        {
            OpenCvInterop.LimitDecoderSize();
            cap = new VideoCapture(path);
            if (!cap.IsOpened()) throw new InvalidDataException($"cannot open video '{path}'");
            int h = (int)cap.Get(VideoCaptureProperties.FrameHeight);
            int w = (int)cap.Get(VideoCaptureProperties.FrameWidth);
            if (h <= 0 || w <= 0) throw new InvalidDataException($"video '{path}' has no decodable frames (size {w}x{h})");
            TorchSam2.Utils.Limits.CheckImageSize(w, h, $"a frame of video '{path}'");
            long n = (long)cap.Get(VideoCaptureProperties.FrameCount);
            double fps = cap.Get(VideoCaptureProperties.Fps);
            var reader = new VideoReader(path, cap, h, w, n, fps);
            cap = null;
            return reader;
        }
        catch (Exception e) when (OpenCvInterop.IsOpenCvError(e))
        {
            throw new InvalidDataException($"cannot open video '{path}': {OpenCvInterop.Describe(e)}", e);
        }
        catch (Exception e) when (OpenCvInterop.IsMissingNative(e))
        {
            throw OpenCvInterop.Missing(e);
        }
        finally
        {
            cap?.Dispose();
        }
    }

    /// <summary>Decodes the next frame; null at the end of the video.</summary>
    public RgbImage? ReadNext()
    {
        ObjectDisposedException.ThrowIf(_cap is null, this);
        try
        {
            using var frame = new Mat();
            if (!_cap.Read(frame) || frame.Empty()) return null;
            using var rgb = new Mat();
            int ch = frame.Channels();
            if (frame.Depth() != MatType.CV_8U || (ch != 1 && ch != 3 && ch != 4))
                throw new InvalidDataException($"cannot decode a frame of '{Path}': unsupported frame format {frame.Type()}");
            Cv2.CvtColor(frame, rgb, ImageIO.ToRgbCode(ch));
            // A stream whose frame size changes mid-way still yields frames of the size promised at open.
            if (rgb.Rows != Height || rgb.Cols != Width)
                Cv2.Resize(rgb, rgb, new Size(Width, Height), 0, 0, InterpolationFlags.Area);
            var pixels = new byte[(long)Height * Width * 3];
            OpenCvInterop.CopyPacked(rgb, pixels);
            return new RgbImage(pixels, Height, Width);
        }
        catch (Exception e) when (OpenCvInterop.IsOpenCvError(e))
        {
            throw new InvalidDataException($"cannot decode a frame of '{Path}': {OpenCvInterop.Describe(e)}", e);
        }
    }

    /// <summary>Moves to a frame index (the next <see cref="ReadNext"/> returns it); not exact for every codec.</summary>
    public void Seek(long frame)
    {
        ObjectDisposedException.ThrowIf(_cap is null, this);
        ArgumentOutOfRangeException.ThrowIfNegative(frame);
        bool ok;
        try { ok = _cap.Set(VideoCaptureProperties.PosFrames, frame); }
        catch (Exception e) when (OpenCvInterop.IsOpenCvError(e))
        {
            throw new IOException($"cannot seek to frame {frame} in '{Path}': {OpenCvInterop.Describe(e)}", e);
        }
        if (!ok) throw new IOException($"cannot seek to frame {frame} in '{Path}'");
    }

    /// <summary>The remaining frames, decoded one at a time.</summary>
    public IEnumerable<RgbImage> Frames()
    {
        while (ReadNext() is RgbImage f) yield return f;
    }

    public void Dispose()
    {
        _cap?.Dispose();
        _cap = null;
    }
}
