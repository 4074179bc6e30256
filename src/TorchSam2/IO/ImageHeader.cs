using System.Buffers.Binary;
using System.Text;

namespace TorchSam2.IO;

/// <summary>
/// Width and height from an image file's header, without decoding it: PNG, JPEG, BMP, GIF, WebP, TIFF (and
/// BigTIFF) and PNM/PAM. Used to refuse images above <see cref="Utils.Limits.MaxImagePixels"/> before OpenCV
/// allocates their pixels (OpenCV's own check happens only inside the decoder).
/// </summary>
public static class ImageHeader
{
    /// <summary>The size the header declares; null for formats this reader does not know (or a header it cannot make sense of).</summary>
    public static (long width, long height)? TryReadSize(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 4096, FileOptions.RandomAccess);
        return TryReadSize(fs);
    }

    /// <summary>As <see cref="TryReadSize(string)"/> for a seekable stream positioned at the file start.</summary>
    public static (long width, long height)? TryReadSize(Stream s)
    {
        try
        {
            var head = new byte[32];
            int n = ReadUpTo(s, head, 0);
            if (n < 8) return null;
            var h = head.AsSpan(0, n);
            // PNG: signature, then IHDR with big-endian width and height
            if (h.StartsWith((ReadOnlySpan<byte>)[0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]))
                return n >= 24 && h[12..16].SequenceEqual("IHDR"u8)
                    ? (BinaryPrimitives.ReadUInt32BigEndian(h[16..]), BinaryPrimitives.ReadUInt32BigEndian(h[20..]))
                    : null;
            if (h[0] == 0xFF && h[1] == 0xD8) return Jpeg(s);
            if (h[0] == 'B' && h[1] == 'M' && n >= 26)
            {
                uint dib = BinaryPrimitives.ReadUInt32LittleEndian(h[14..]);
                if (dib == 12) return (BinaryPrimitives.ReadUInt16LittleEndian(h[18..]), BinaryPrimitives.ReadUInt16LittleEndian(h[20..]));
                // height is negative for top-down bitmaps
                return (Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(h[18..])), Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(h[22..])));
            }
            if (n >= 10 && (h.StartsWith("GIF87a"u8) || h.StartsWith("GIF89a"u8)))
                return (BinaryPrimitives.ReadUInt16LittleEndian(h[6..]), BinaryPrimitives.ReadUInt16LittleEndian(h[8..]));
            if (n >= 30 && h.StartsWith("RIFF"u8) && h[8..12].SequenceEqual("WEBP"u8)) return WebP(h);
            if ((h[0] == 'I' && h[1] == 'I') || (h[0] == 'M' && h[1] == 'M')) return Tiff(s, h);
            if (h[0] == 'P' && h[1] is >= (byte)'1' and <= (byte)'7') return Pnm(s);
            return null;
        }
        catch (EndOfStreamException)
        {
            return null;
        }
    }

    private static int ReadUpTo(Stream s, byte[] buf, long at)
    {
        s.Position = at;
        int total = 0;
        while (total < buf.Length)
        {
            int r = s.Read(buf, total, buf.Length - total);
            if (r == 0) break;
            total += r;
        }
        return total;
    }

    private static byte[] ReadExactly(Stream s, long at, int count)
    {
        var b = new byte[count];
        if (ReadUpTo(s, b, at) != count) throw new EndOfStreamException();
        return b;
    }

    // Markers from SOI: every segment but the entropy-coded data has a length; SOFn carries the size.
    private static (long, long)? Jpeg(Stream s)
    {
        long pos = 2;
        for (int guard = 0; guard < 100_000; guard++)
        {
            var m = ReadExactly(s, pos, 2);
            if (m[0] != 0xFF) return null;
            byte marker = m[1];
            if (marker == 0xFF) { pos++; continue; }                        // fill byte
            if (marker is 0xD8 or 0x01 || (marker >= 0xD0 && marker <= 0xD7)) { pos += 2; continue; } // no length
            if (marker is 0xD9 or 0xDA) return null;                         // EOI / SOS before any SOF
            var lenBytes = ReadExactly(s, pos + 2, 2);
            int len = BinaryPrimitives.ReadUInt16BigEndian(lenBytes);
            if (len < 2) return null;
            bool sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
            if (sof)
            {
                var f = ReadExactly(s, pos + 4, 5);
                return (BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(3)), BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(1)));
            }
            pos += 2 + len;
        }
        return null;
    }

    private static (long, long)? WebP(ReadOnlySpan<byte> h)
    {
        var chunk = h[12..16];
        if (chunk.SequenceEqual("VP8X"u8))
            return (1 + (h[24] | h[25] << 8 | h[26] << 16), 1 + (h[27] | h[28] << 8 | h[29] << 16));
        if (chunk.SequenceEqual("VP8L"u8))
        {
            if (h[20] != 0x2F) return null;
            uint bits = BinaryPrimitives.ReadUInt32LittleEndian(h[21..]);
            return (1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF));
        }
        if (chunk.SequenceEqual("VP8 "u8))
        {
            // frame tag (3 bytes), start code 9D 01 2A, then 14-bit width and height
            if (h[23] != 0x9D || h[24] != 0x01 || h[25] != 0x2A) return null;
            return (BinaryPrimitives.ReadUInt16LittleEndian(h[26..]) & 0x3FFF, BinaryPrimitives.ReadUInt16LittleEndian(h[28..]) & 0x3FFF);
        }
        return null;
    }

    // First IFD's ImageWidth (256) and ImageLength (257); OpenCV reads the first page. Any page's size counts the
    // same way, so the largest of the first few IFDs is returned.
    private static (long, long)? Tiff(Stream s, ReadOnlySpan<byte> h)
    {
        bool le = h[0] == 'I';
        ushort U16(ReadOnlySpan<byte> b) => le ? BinaryPrimitives.ReadUInt16LittleEndian(b) : BinaryPrimitives.ReadUInt16BigEndian(b);
        uint U32(ReadOnlySpan<byte> b) => le ? BinaryPrimitives.ReadUInt32LittleEndian(b) : BinaryPrimitives.ReadUInt32BigEndian(b);
        ulong U64(ReadOnlySpan<byte> b) => le ? BinaryPrimitives.ReadUInt64LittleEndian(b) : BinaryPrimitives.ReadUInt64BigEndian(b);
        ushort version = U16(h[2..]);
        bool big = version == 43;
        if (version != 42 && !big) return null;
        ulong ifd = big ? U64(h[8..]) : U32(h[4..]);
        (long, long)? best = null;
        for (int page = 0; page < 16 && ifd != 0 && ifd < (ulong)s.Length; page++)
        {
            int countSize = big ? 8 : 2, entrySize = big ? 20 : 12;
            var cb = ReadExactly(s, (long)ifd, countSize);
            ulong count = big ? U64(cb) : U16(cb);
            if (count > 4096) return best;
            var entries = ReadExactly(s, (long)ifd + countSize, (int)count * entrySize);
            long w = -1, hgt = -1;
            for (int i = 0; i < (int)count; i++)
            {
                var e = entries.AsSpan(i * entrySize, entrySize);
                ushort tag = U16(e), type = U16(e[2..]);
                var valueField = e[(big ? 12 : 8)..];
                long v = type switch
                {
                    3 => U16(valueField),
                    4 => U32(valueField),
                    16 => (long)Math.Min(U64(valueField), long.MaxValue),
                    _ => -1,
                };
                if (tag == 256) w = v;
                else if (tag == 257) hgt = v;
            }
            if (w < 0 || hgt < 0) return best;
            if (best is null || w * hgt > best.Value.Item1 * best.Value.Item2) best = (w, hgt);
            var next = ReadExactly(s, (long)ifd + countSize + (long)count * entrySize, big ? 8 : 4);
            ifd = big ? U64(next) : U32(next);
        }
        return best;
    }

    // P1–P6: magic, width, height (whitespace and # comments between); P7 (PAM): WIDTH / HEIGHT lines.
    private static (long, long)? Pnm(Stream s)
    {
        var text = Encoding.ASCII.GetString(ReadExactlyUpTo(s, 0, 4096));
        if (text[1] == '7')
        {
            long w = -1, h = -1;
            foreach (var line in text.Split('\n'))
            {
                var parts = line.Split((char[])[' ', '\t', '\r'], StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length < 2) { if (parts is ["ENDHDR"]) break; continue; }
                if (parts[0] == "WIDTH" && long.TryParse(parts[1], out var a)) w = a;
                if (parts[0] == "HEIGHT" && long.TryParse(parts[1], out var b)) h = b;
            }
            return w >= 0 && h >= 0 ? (w, h) : null;
        }
        var tokens = new List<long>();
        int i = 2;
        while (i < text.Length && tokens.Count < 2)
        {
            char c = text[i];
            if (c == '#') { while (i < text.Length && text[i] != '\n') i++; continue; }
            if (char.IsWhiteSpace(c)) { i++; continue; }
            int start = i;
            while (i < text.Length && char.IsAsciiDigit(text[i])) i++;
            if (i == start || !long.TryParse(text.AsSpan(start, i - start), out long v)) return null;
            tokens.Add(v);
        }
        return tokens.Count == 2 ? (tokens[0], tokens[1]) : null;
    }

    private static byte[] ReadExactlyUpTo(Stream s, long at, int max)
    {
        var b = new byte[max];
        int n = ReadUpTo(s, b, at);
        return b.AsSpan(0, n).ToArray();
    }
}
