using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using TorchSam2.Utils;

namespace TorchSam2.IO;

/// <summary>
/// A label map read from a PNG as PIL's <c>np.array(Image.open(path))</c> sees it: palette PNGs give the palette
/// index of each pixel, grayscale PNGs the gray value (1-bit as 0/1, 2- and 4-bit scaled to 0..255 as PIL does,
/// 16-bit as stored). <see cref="Palette"/> is the PLTE chunk (RGB triples) when there is one.
/// </summary>
public sealed record LabelMap(int[] Labels, int Height, int Width, byte[]? Palette)
{
    /// <summary>Pixels whose label is not 0.</summary>
    public bool[] Foreground() => Array.ConvertAll(Labels, v => v != 0);
}

/// <summary>
/// Palette ("P") and grayscale PNGs as label maps (pixel = object id), the format of DAVIS / YouTube-VOS / SA-V
/// annotations. OpenCV expands palettes to colours, so the indices are decoded here (zlib from the runtime).
/// </summary>
public static class LabelPng
{
    private static readonly byte[] Signature = [137, 80, 78, 71, 13, 10, 26, 10];

    /// <summary>The DAVIS 2017 palette (the PASCAL VOC colour map; <c>DAVIS_PALETTE</c> of tools/vos_inference.py): 256 RGB triples.</summary>
    public static byte[] DavisPalette { get; } = BuildVocPalette();

    private static byte[] BuildVocPalette()
    {
        var p = new byte[768];
        for (int i = 0; i < 256; i++)
        {
            int r = 0, g = 0, b = 0, c = i;
            for (int j = 0; j < 8; j++)
            {
                r |= (c & 1) << (7 - j);
                g |= ((c >> 1) & 1) << (7 - j);
                b |= ((c >> 2) & 1) << (7 - j);
                c >>= 3;
            }
            p[3 * i] = (byte)r; p[3 * i + 1] = (byte)g; p[3 * i + 2] = (byte)b;
        }
        return p;
    }

    /// <summary>Reads a palette or grayscale PNG (any bit depth, interlaced or not); other colour types are refused with one line.</summary>
    public static LabelMap Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"mask not found: {path}", path);
        using var fs = File.OpenRead(path);
        try
        {
            return Read(fs, $"'{path}'");
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException($"mask '{path}' is truncated", e);
        }
    }

    /// <summary>Reads a PNG from a stream (see <see cref="Read(string)"/>); <paramref name="what"/> names it in errors.</summary>
    public static LabelMap Read(Stream s, string what = "the PNG")
    {
        Span<byte> sig = stackalloc byte[8];
        s.ReadExactly(sig);
        if (!sig.SequenceEqual(Signature)) throw new InvalidDataException($"mask {what} is not a PNG file");
        int width = 0, height = 0, depth = 0, colorType = -1, interlace = 0;
        byte[]? palette = null;
        using var idat = new MemoryStream();
        Span<byte> head = stackalloc byte[8];
        Span<byte> crcBytes = stackalloc byte[4];
        while (true)
        {
            s.ReadExactly(head);
            uint len = BinaryPrimitives.ReadUInt32BigEndian(head);
            string type = Encoding.ASCII.GetString(head[4..]);
            if (len > int.MaxValue) throw new InvalidDataException($"mask {what}: chunk {type} is too long");
            var data = new byte[len];
            s.ReadExactly(data);
            s.ReadExactly(crcBytes);
            if (BinaryPrimitives.ReadUInt32BigEndian(crcBytes) != Crc(head[4..], data))
                throw new InvalidDataException($"mask {what}: chunk {type} fails its CRC (damaged file)");
            if (type == "IHDR")
            {
                if (len != 13) throw new InvalidDataException($"mask {what}: bad IHDR");
                width = (int)Math.Min(int.MaxValue, BinaryPrimitives.ReadUInt32BigEndian(data));
                height = (int)Math.Min(int.MaxValue, BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(4)));
                depth = data[8];
                colorType = data[9];
                interlace = data[12];
                Limits.CheckImageSize(width, height, $"mask {what}");
                bool ok = colorType switch
                {
                    0 => depth is 1 or 2 or 4 or 8 or 16,
                    3 => depth is 1 or 2 or 4 or 8,
                    _ => false,
                };
                if (!ok)
                    throw new InvalidDataException(colorType is 2 or 4 or 6
                        ? $"mask {what} is an {(colorType == 2 ? "RGB" : colorType == 4 ? "gray+alpha" : "RGBA")} PNG; masks must be palette or grayscale PNGs (pixel value = object id)"
                        : $"mask {what}: unsupported PNG colour type {colorType} / bit depth {depth}");
                if (data[10] != 0 || data[11] != 0 || interlace > 1) throw new InvalidDataException($"mask {what}: unknown PNG compression, filter or interlace method");
            }
            else if (type == "PLTE") palette = data;
            else if (type == "IDAT") idat.Write(data);
            else if (type == "IEND") break;
        }
        if (colorType < 0) throw new InvalidDataException($"mask {what} has no IHDR chunk");
        idat.Position = 0;
        using var z = new ZLibStream(idat, CompressionMode.Decompress);
        var labels = new int[(long)width * height];
        if (interlace == 0)
        {
            DecodePass(z, labels, width, height, depth, colorType, 0, 0, 1, 1, what);
        }
        else
        {
            // Adam7: (x0, y0, dx, dy) of the seven passes
            int[,] passes = { { 0, 0, 8, 8 }, { 4, 0, 8, 8 }, { 0, 4, 4, 8 }, { 2, 0, 4, 4 }, { 0, 2, 2, 4 }, { 1, 0, 2, 2 }, { 0, 1, 1, 2 } };
            for (int p = 0; p < 7; p++)
                DecodePass(z, labels, width, height, depth, colorType, passes[p, 0], passes[p, 1], passes[p, 2], passes[p, 3], what);
        }
        return new LabelMap(labels, height, width, colorType == 3 ? palette : null);
    }

    private static void DecodePass(Stream z, int[] labels, int width, int height, int depth, int colorType, int x0, int y0, int dx, int dy, string what)
    {
        int pw = (width - x0 + dx - 1) / dx, ph = (height - y0 + dy - 1) / dy;
        if (pw <= 0 || ph <= 0) return;
        int rowBytes = (int)(((long)pw * depth + 7) / 8);
        int bpp = Math.Max(1, depth / 8);
        var prev = new byte[rowBytes];
        var cur = new byte[rowBytes];
        for (int r = 0; r < ph; r++)
        {
            int filter = z.ReadByte();
            if (filter < 0) throw new InvalidDataException($"mask {what}: image data ends early");
            try { z.ReadExactly(cur); }
            catch (EndOfStreamException) { throw new InvalidDataException($"mask {what}: image data ends early"); }
            Unfilter(filter, cur, prev, bpp, what);
            int y = y0 + r * dy;
            for (int i = 0; i < pw; i++)
            {
                int v = depth switch
                {
                    8 => cur[i],
                    16 => (cur[2 * i] << 8) | cur[2 * i + 1],
                    _ => (cur[i * depth / 8] >> (8 - depth - (i * depth % 8))) & ((1 << depth) - 1),
                };
                // PIL: mode "1" is 0/1, "L;2" and "L;4" are scaled to 0..255
                if (colorType == 0 && depth is 2 or 4) v *= depth == 2 ? 0x55 : 0x11;
                labels[(long)y * width + x0 + i * dx] = v;
            }
            (prev, cur) = (cur, prev);
        }
    }

    private static void Unfilter(int filter, byte[] cur, byte[] prev, int bpp, string what)
    {
        int n = cur.Length;
        switch (filter)
        {
            case 0: break;
            case 1: for (int i = bpp; i < n; i++) cur[i] += cur[i - bpp]; break;
            case 2: for (int i = 0; i < n; i++) cur[i] += prev[i]; break;
            case 3:
                for (int i = 0; i < n; i++) cur[i] += (byte)(((i >= bpp ? cur[i - bpp] : 0) + prev[i]) >> 1);
                break;
            case 4:
                for (int i = 0; i < n; i++)
                {
                    int a = i >= bpp ? cur[i - bpp] : 0, b = prev[i], c = i >= bpp ? prev[i - bpp] : 0;
                    int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
                    cur[i] += (byte)(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
                }
                break;
            default: throw new InvalidDataException($"mask {what}: unknown PNG row filter {filter}");
        }
    }

    /// <summary>
    /// Writes an 8-bit palette PNG (pixel = object id) as <c>save_ann_png</c> does: the given palette (RGB triples,
    /// e.g. the annotation's own) or <see cref="DavisPalette"/>.
    /// </summary>
    public static void Write(string path, ReadOnlySpan<byte> labels, int height, int width, byte[]? palette = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (height <= 0 || width <= 0) throw new ArgumentException($"mask size must be positive, got {width}x{height}");
        if (labels.Length != (long)height * width) throw new ArgumentException($"{labels.Length} labels do not make a {width}x{height} mask");
        palette ??= DavisPalette;
        if (palette.Length == 0 || palette.Length % 3 != 0 || palette.Length > 768) throw new ArgumentException("a palette is 1..256 RGB triples");
        using var ms = new MemoryStream();
        ms.Write(Signature);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(ihdr, (uint)width);
        BinaryPrimitives.WriteUInt32BigEndian(ihdr.AsSpan(4), (uint)height);
        ihdr[8] = 8;
        ihdr[9] = 3;
        WriteChunk(ms, "IHDR", ihdr);
        WriteChunk(ms, "PLTE", palette);
        using (var raw = new MemoryStream())
        {
            using (var z = new ZLibStream(raw, CompressionLevel.Optimal, leaveOpen: true))
                for (int y = 0; y < height; y++)
                {
                    z.WriteByte(0);
                    z.Write(labels.Slice(y * width, width));
                }
            WriteChunk(ms, "IDAT", raw.ToArray());
        }
        WriteChunk(ms, "IEND", []);
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        File.WriteAllBytes(path, ms.ToArray());
    }

    private static void WriteChunk(Stream s, string type, byte[] data)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, (uint)data.Length);
        s.Write(b);
        var t = Encoding.ASCII.GetBytes(type);
        s.Write(t);
        s.Write(data);
        BinaryPrimitives.WriteUInt32BigEndian(b, Crc(t, data));
        s.Write(b);
    }

    private static readonly uint[] CrcTable = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    private static uint Crc(ReadOnlySpan<byte> type, ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFFu;
        foreach (var b in type) c = CrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        foreach (var b in data) c = CrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }
}
