using System.Runtime.InteropServices;
using OpenCvSharp;
using TorchSam2.Utils;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchSam2.IO;

/// <summary>An 8-bit RGB image, row-major H×W×3.</summary>
public sealed class RgbImage
{
    public int Height { get; }
    public int Width { get; }
    public byte[] Pixels { get; }

    public RgbImage(byte[] pixels, int height, int width)
    {
        if (height <= 0 || width <= 0) throw new ArgumentException($"image size must be positive, got {width}x{height}");
        if (pixels.Length != (long)height * width * 3) throw new ArgumentException($"{pixels.Length} bytes do not make a {width}x{height} RGB image");
        Pixels = pixels;
        Height = height;
        Width = width;
    }

    /// <summary>Reads PNG, JPEG, BMP, TIFF, WebP, ... through OpenCV (images above <see cref="Limits.MaxImagePixels"/> are refused unread).</summary>
    public static RgbImage Load(string path) => ImageIO.Read(path);

    public void Save(string path) => ImageIO.Write(path, Pixels, Height, Width, 3);

    /// <summary>The pixels as a uint8 H×W×3 tensor (a copy: later changes to <see cref="Pixels"/> do not show in it).</summary>
    public Tensor ToTensor() => torch.tensor(Pixels, new long[] { Height, Width, 3 });

    /// <summary>From a uint8 H×W×3 tensor (any device, any strides).</summary>
    public static RgbImage FromTensor(Tensor t)
    {
        if (t.dim() != 3 || t.size(2) != 3 || t.dtype != ScalarType.Byte)
            throw new ArgumentException($"expected a uint8 H×W×3 tensor, got {t}");
        using var cpu = t.cpu();
        using var packed = cpu.contiguous();
        return new RgbImage(packed.bytes.ToArray(), (int)t.size(0), (int)t.size(1));
    }
}

/// <summary>Image files through OpenCV (OpenCvSharp).</summary>
public static class ImageIO
{
    /// <summary>
    /// Reads an image file as 8-bit RGB: gray and BGRA are expanded / stripped of alpha, 16-bit samples
    /// are scaled by 1/257, EXIF orientation is not applied (the pixels as stored).
    /// </summary>
    public static RgbImage Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"image not found: {path}", path);
        CheckHeader(path);
        try
        {
            OpenCvInterop.LimitDecoderSize();
            // IMREAD_UNCHANGED: keeps 16-bit depth for an exact 1/257 scale and leaves EXIF orientation alone.
            using var img = Cv2.ImRead(path, ImreadModes.Unchanged);
            if (img.Empty()) throw new InvalidDataException($"cannot read image '{path}' (unreadable or not an image)");
            return ToRgb(img, $"image '{path}'");
        }
        catch (Exception e) when (OpenCvInterop.IsOpenCvError(e))
        {
            throw new InvalidDataException($"cannot read image '{path}': {OpenCvInterop.Describe(e)}", e);
        }
        catch (Exception e) when (OpenCvInterop.IsMissingNative(e))
        {
            throw OpenCvInterop.Missing(e);
        }
    }

    /// <summary>Decodes an encoded image held in memory (same conversions as <see cref="Read"/>).</summary>
    public static RgbImage Decode(ReadOnlySpan<byte> encoded)
    {
        if (encoded.IsEmpty) throw new InvalidDataException("cannot decode image bytes: the buffer is empty");
        unsafe
        {
            fixed (byte* p = encoded)
            {
                using var ms = new UnmanagedMemoryStream(p, encoded.Length);
                if (ImageHeader.TryReadSize(ms) is (long w, long h)) Limits.CheckImageSize(w, h, "the encoded image");
            }
        }
        try
        {
            OpenCvInterop.LimitDecoderSize();
            using var img = Cv2.ImDecode(encoded, ImreadModes.Unchanged);
            if (img.Empty()) throw new InvalidDataException("cannot decode image bytes");
            return ToRgb(img, "decoded image");
        }
        catch (Exception e) when (OpenCvInterop.IsOpenCvError(e))
        {
            throw new InvalidDataException($"cannot decode image: {OpenCvInterop.Describe(e)}", e);
        }
        catch (Exception e) when (OpenCvInterop.IsMissingNative(e))
        {
            throw OpenCvInterop.Missing(e);
        }
    }

    /// <summary>
    /// Refuses a file whose header declares more than <see cref="Limits.MaxImagePixels"/> before anything is decoded
    /// (formats whose header is not parsed here are held to the same limit inside OpenCV's decoder).
    /// </summary>
    public static void CheckHeader(string path)
    {
        (long w, long h)? size;
        try { size = ImageHeader.TryReadSize(path); }
        catch (IOException) { size = null; }
        if (size is (long w, long h)) Limits.CheckImageSize(w, h, $"image '{path}'");
    }

    /// <summary>Writes 1 (gray), 3 (RGB) or 4 (RGBA) channel pixels; the extension picks the format.</summary>
    public static void Write(string path, ReadOnlySpan<byte> pixels, int height, int width, int channels)
    {
        ArgumentNullException.ThrowIfNull(path);
        bool ok = WithOpenCvLayout(pixels, height, width, channels, $"write image '{path}'", m =>
        {
            // only once the pixels passed the checks
            var dir = Path.GetDirectoryName(Path.GetFullPath(path));
            if (dir is not null) Directory.CreateDirectory(dir);
            return Cv2.ImWrite(path, m);
        });
        if (!ok) throw new IOException($"cannot write image '{path}'");
    }

    /// <summary>
    /// 1 (gray), 3 (RGB) or 4 (RGBA) channel pixels as PNG bytes in memory; <paramref name="compression"/> is zlib's level
    /// (1 is fastest: masks and previews compress well already).
    /// </summary>
    public static byte[] EncodePng(ReadOnlySpan<byte> pixels, int height, int width, int channels, int compression = 3)
    {
        if (compression is < 0 or > 9) throw new ArgumentOutOfRangeException(nameof(compression), compression, "the PNG compression level must be 0..9");
        return WithOpenCvLayout(pixels, height, width, channels, "encode a PNG", m =>
        {
            Cv2.ImEncode(".png", m, out byte[] buf, new ImageEncodingParam(ImwriteFlags.PngCompression, compression));
            return buf;
        });
    }

    /// <summary>
    /// Checks the buffer and hands OpenCV a header over it (no copy; OpenCV only reads it), converted to its BGR(A) order;
    /// OpenCV's failures become IOExceptions naming <paramref name="what"/>.
    /// </summary>
    private static unsafe T WithOpenCvLayout<T>(ReadOnlySpan<byte> pixels, int height, int width, int channels, string what, Func<Mat, T> use)
    {
        if (pixels.Length != (long)height * width * channels) throw new ArgumentException("pixel buffer does not match the size");
        if (channels != 1 && channels != 3 && channels != 4) throw new IOException($"cannot {what}: channels must be 1, 3 or 4, got {channels}");
        if (height <= 0 || width <= 0) throw new IOException($"cannot {what}: size must be positive, got {width}x{height}");
        try
        {
            fixed (byte* p = pixels)
            {
                using var src = Mat.FromPixelData(height, width, MatType.CV_8UC(channels), (IntPtr)p);
                if (channels == 1) return use(src);
                using var bgr = new Mat();
                Cv2.CvtColor(src, bgr, channels == 3 ? ColorConversionCodes.RGB2BGR : ColorConversionCodes.RGBA2BGRA);
                return use(bgr);
            }
        }
        catch (Exception e) when (OpenCvInterop.IsOpenCvError(e))
        {
            throw new IOException($"cannot {what}: {OpenCvInterop.Describe(e)}", e);
        }
        catch (Exception e) when (OpenCvInterop.IsMissingNative(e))
        {
            throw OpenCvInterop.Missing(e);
        }
    }

    /// <summary>Any decoded image (gray, BGR, BGRA; 8/16-bit or other depth) as packed 8-bit RGB, like the old shim's export_rgb.</summary>
    private static RgbImage ToRgb(Mat img, string what)
    {
        Limits.CheckImageSize(img.Cols, img.Rows, what);
        int ch = img.Channels();
        if (ch != 1 && ch != 3 && ch != 4)
            throw new InvalidDataException($"cannot read {what}: {ch} channels are not supported (expected gray, BGR or BGRA)");
        using var rgb = new Mat();
        if (img.Depth() != MatType.CV_8U)
        {
            using var u8 = new Mat();
            img.ConvertTo(u8, MatType.CV_8U, img.Depth() == MatType.CV_16U ? 1.0 / 257.0 : 1.0);
            Cv2.CvtColor(u8, rgb, ToRgbCode(ch));
        }
        else
        {
            Cv2.CvtColor(img, rgb, ToRgbCode(ch));
        }
        var pixels = new byte[(long)rgb.Rows * rgb.Cols * 3];
        OpenCvInterop.CopyPacked(rgb, pixels);
        return new RgbImage(pixels, rgb.Rows, rgb.Cols);
    }

    internal static ColorConversionCodes ToRgbCode(int channels) => channels switch
    {
        1 => ColorConversionCodes.GRAY2RGB,
        4 => ColorConversionCodes.BGRA2RGB,
        _ => ColorConversionCodes.BGR2RGB,
    };
}

/// <summary>Small helpers shared by <see cref="ImageIO"/> and <see cref="VideoReader"/>.</summary>
internal static class OpenCvInterop
{
    /// <summary>Copies a packed 8-bit Mat into <paramref name="dst"/> (one block copy when continuous).</summary>
    public static unsafe void CopyPacked(Mat m, byte[] dst)
    {
        long rowBytes = (long)m.Cols * m.ElemSize();
        if (rowBytes * m.Rows != dst.LongLength) throw new ArgumentException($"a {m.Cols}x{m.Rows} frame does not fill {dst.LongLength} bytes");
        byte* src = (byte*)m.Data;
        fixed (byte* d = dst)
        {
            if (m.IsContinuous())
            {
                Buffer.MemoryCopy(src, d, dst.LongLength, dst.LongLength);
            }
            else
            {
                long step = m.Step();
                int rows = m.Rows;
                for (int r = 0; r < rows; r++) Buffer.MemoryCopy(src + r * step, d + r * rowBytes, rowBytes, rowBytes);
            }
        }
    }

    public static bool IsOpenCvError(Exception e) => e is OpenCVException or OpenCvSharpException;

    private static int _limited;

    [DllImport("libc", EntryPoint = "setenv")]
    private static extern int SetEnv([MarshalAs(UnmanagedType.LPUTF8Str)] string name, [MarshalAs(UnmanagedType.LPUTF8Str)] string value, int overwrite);

    /// <summary>
    /// A second line of defence for formats whose header <see cref="ImageHeader"/> does not parse: OpenCV refuses
    /// images above OPENCV_IO_MAX_IMAGE_PIXELS (read from the native environment once, at its first decode), so it
    /// is set to <see cref="Limits.MaxImagePixels"/> unless the user set it.
    /// </summary>
    public static void LimitDecoderSize()
    {
        if (Interlocked.Exchange(ref _limited, 1) == 1) return;
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return;
        try
        {
            SetEnv("OPENCV_IO_MAX_IMAGE_PIXELS", Limits.MaxImagePixels.ToString(System.Globalization.CultureInfo.InvariantCulture), 0);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or ArgumentException)
        {
            // the header check still applies
        }
    }

    /// <summary>OpenCvSharp's native library (libOpenCvSharpExtern) or one of its dependencies could not be loaded.</summary>
    public static bool IsMissingNative(Exception e) =>
        e is DllNotFoundException || (e is TypeInitializationException t && t.TypeName?.StartsWith("OpenCvSharp", StringComparison.Ordinal) == true);

    /// <summary>A one-line description of an OpenCV error.</summary>
    public static string Describe(Exception e)
    {
        var msg = e is OpenCVException cv && !string.IsNullOrWhiteSpace(cv.ErrMsg)
            ? (string.IsNullOrEmpty(cv.FuncName) ? cv.ErrMsg : $"{cv.ErrMsg} (in {cv.FuncName})")
            : e.Message;
        return string.Join(' ', msg.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }

    public static Exception Missing(Exception e) =>
        new InvalidOperationException(
            "image and video I/O need OpenCvSharp's native library (libOpenCvSharpExtern): reference the OpenCvSharp4 runtime package for this platform " +
            "(OpenCvSharp4.official.runtime.linux-x64 on Linux) and, on Debian/Ubuntu, apt-get install libgtk-3-0", e);
}
