using System.Runtime.InteropServices;
using TorchSam2.Torch;

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

    /// <summary>Reads PNG, JPEG, BMP, TIFF, WebP, ... through OpenCV.</summary>
    public static RgbImage Load(string path) => ImageIO.Read(path);

    public void Save(string path) => ImageIO.Write(path, Pixels, Height, Width, 3);

    /// <summary>The pixels as a uint8 H×W×3 tensor.</summary>
    public Tensor ToTensor() => Tensor.FromBytes(Pixels, ScalarType.Byte, Height, Width, 3);

    /// <summary>From a uint8 H×W×3 tensor.</summary>
    public static RgbImage FromTensor(Tensor t)
    {
        if (t.dim() != 3 || t.size(2) != 3 || t.dtype != ScalarType.Byte)
            throw new ArgumentException($"expected a uint8 H×W×3 tensor, got {t}");
        return new RgbImage(t.ToArray<byte>(), (int)t.size(0), (int)t.size(1));
    }
}

/// <summary>Image files through the OpenCV shim (libtorchsam2_vision).</summary>
public static unsafe partial class ImageIO
{
    private const string Lib = "torchsam2_vision";

    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int tsv_image_read(string path, out IntPtr data, out int height, out int width, byte* err, int errlen);

    [LibraryImport(Lib)]
    private static partial int tsv_image_decode(byte* buf, long len, out IntPtr data, out int height, out int width, byte* err, int errlen);

    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int tsv_image_write(string path, byte* data, int height, int width, int channels, byte* err, int errlen);

    [LibraryImport(Lib)]
    private static partial void tsv_free(IntPtr p);

    public static RgbImage Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"image not found: {path}", path);
        byte* err = stackalloc byte[512];
        IntPtr data;
        int h, w, rc;
        try { rc = tsv_image_read(path, out data, out h, out w, err, 512); }
        catch (DllNotFoundException e) { throw Missing(e); }
        if (rc != 0) throw new InvalidDataException(Marshal.PtrToStringUTF8((IntPtr)err) ?? $"cannot read image '{path}'");
        return Take(data, h, w);
    }

    /// <summary>Decodes an encoded image held in memory.</summary>
    public static RgbImage Decode(ReadOnlySpan<byte> encoded)
    {
        byte* err = stackalloc byte[512];
        fixed (byte* p = encoded)
        {
            IntPtr data;
            int h, w;
            int rc;
            try { rc = tsv_image_decode(p, encoded.Length, out data, out h, out w, err, 512); }
            catch (DllNotFoundException e) { throw Missing(e); }
            if (rc != 0) throw new InvalidDataException(Marshal.PtrToStringUTF8((IntPtr)err) ?? "cannot decode image");
            return Take(data, h, w);
        }
    }

    /// <summary>Writes 1 (gray), 3 (RGB) or 4 (RGBA) channel pixels; the extension picks the format.</summary>
    public static void Write(string path, ReadOnlySpan<byte> pixels, int height, int width, int channels)
    {
        if (pixels.Length != (long)height * width * channels) throw new ArgumentException("pixel buffer does not match the size");
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        byte* err = stackalloc byte[512];
        fixed (byte* p = pixels)
        {
            int rc;
            try { rc = tsv_image_write(path, p, height, width, channels, err, 512); }
            catch (DllNotFoundException e) { throw Missing(e); }
            if (rc != 0) throw new IOException(Marshal.PtrToStringUTF8((IntPtr)err) ?? $"cannot write '{path}'");
        }
    }

    private static RgbImage Take(IntPtr data, int h, int w)
    {
        try
        {
            var pixels = new byte[(long)h * w * 3];
            Marshal.Copy(data, pixels, 0, pixels.Length);
            return new RgbImage(pixels, h, w);
        }
        finally
        {
            tsv_free(data);
        }
    }

    private static Exception Missing(DllNotFoundException e) =>
        new InvalidOperationException("image I/O needs libtorchsam2_vision, built when OpenCV is installed (apt-get install libopencv-imgcodecs-dev libopencv-videoio-dev); run tools/setup.sh", e);
}
