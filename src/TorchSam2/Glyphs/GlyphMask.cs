using TorchSam2.Utils;

namespace TorchSam2.Glyphs;

/// <summary>
/// A binary mask stored only inside its box: <see cref="Bits"/> is row-major Height×Width and pixel
/// (x, y) of the image is Bits[(y − Y) * Width + (x − X)]. Sheets hold hundreds of glyphs, so full-image
/// masks per glyph would be wasteful.
/// </summary>
public sealed class GlyphMask
{
    public int X { get; }
    public int Y { get; }
    public int Width { get; }
    public int Height { get; }
    public bool[] Bits { get; }

    public GlyphMask(int x, int y, int width, int height, bool[] bits)
    {
        if (width < 0 || height < 0 || bits.Length != width * height) throw new ArgumentException($"{bits.Length} bits do not make a {width}x{height} mask");
        X = x;
        Y = y;
        Width = width;
        Height = height;
        Bits = bits;
    }

    public static GlyphMask Empty { get; } = new(0, 0, 0, 0, []);

    public bool this[int x, int y]
    {
        get
        {
            x -= X;
            y -= Y;
            return x >= 0 && y >= 0 && x < Width && y < Height && Bits[y * Width + x];
        }
    }

    public long Area
    {
        get
        {
            long n = 0;
            foreach (var b in Bits) if (b) n++;
            return n;
        }
    }

    public bool IsEmpty => Area == 0;

    /// <summary>The tight box (x, y, w, h) of the set pixels; (0, 0, 0, 0) when empty.</summary>
    public (int x, int y, int w, int h) BBox
    {
        get
        {
            int x0 = int.MaxValue, y0 = int.MaxValue, x1 = -1, y1 = -1;
            for (int r = 0; r < Height; r++)
                for (int c = 0; c < Width; c++)
                    if (Bits[r * Width + c])
                    {
                        if (c < x0) x0 = c;
                        if (c > x1) x1 = c;
                        if (r < y0) y0 = r;
                        if (r > y1) y1 = r;
                    }
            return x1 < 0 ? (0, 0, 0, 0) : (X + x0, Y + y0, x1 - x0 + 1, y1 - y0 + 1);
        }
    }

    /// <summary>The same pixels in their tight box.</summary>
    public GlyphMask Tight()
    {
        var (bx, by, bw, bh) = BBox;
        if (bw == 0) return Empty;
        var bits = new bool[bw * bh];
        for (int r = 0; r < bh; r++)
            Array.Copy(Bits, (by - Y + r) * Width + (bx - X), bits, r * bw, bw);
        return new GlyphMask(bx, by, bw, bh, bits);
    }

    /// <summary>The pixels inside an image of the given size (anything outside is dropped), tight.</summary>
    public GlyphMask ClipTo(int imageHeight, int imageWidth)
    {
        int x0 = Math.Max(0, X), y0 = Math.Max(0, Y), x1 = Math.Min(imageWidth, X + Width), y1 = Math.Min(imageHeight, Y + Height);
        if (x1 <= x0 || y1 <= y0) return Empty;
        var bits = new bool[(x1 - x0) * (y1 - y0)];
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++)
                bits[(y - y0) * (x1 - x0) + (x - x0)] = Bits[(y - Y) * Width + (x - X)];
        return new GlyphMask(x0, y0, x1 - x0, y1 - y0, bits).Tight();
    }

    /// <summary>Cuts the tight mask out of a row-major full-image mask.</summary>
    public static GlyphMask FromFull(ReadOnlySpan<bool> full, int imageHeight, int imageWidth)
    {
        if (full.Length != imageHeight * imageWidth) throw new ArgumentException("mask size does not match the image");
        return new GlyphMask(0, 0, imageWidth, imageHeight, full.ToArray()).Tight();
    }

    /// <summary>Row-major full-image mask.</summary>
    public bool[] ToFull(int imageHeight, int imageWidth)
    {
        var full = new bool[imageHeight * imageWidth];
        for (int r = 0; r < Height; r++)
        {
            int y = Y + r;
            if (y < 0 || y >= imageHeight) continue;
            for (int c = 0; c < Width; c++)
            {
                int x = X + c;
                if (x >= 0 && x < imageWidth && Bits[r * Width + c]) full[y * imageWidth + x] = true;
            }
        }
        return full;
    }

    /// <summary>COCO run-length encoding (column-major) of the mask in an image of the given size.</summary>
    public Rle ToRle(int imageHeight, int imageWidth)
    {
        var m = ClipTo(imageHeight, imageWidth);
        var counts = new List<int>();
        bool cur = false;
        long run = 0;
        void Push(bool v, long n)
        {
            if (n == 0) return;
            if (v != cur)
            {
                counts.Add(checked((int)run));
                run = 0;
                cur = v;
            }
            run += n;
        }
        for (int x = 0; x < imageWidth; x++)
        {
            if (x < m.X || x >= m.X + m.Width)
            {
                Push(false, imageHeight);
                continue;
            }
            Push(false, m.Y);
            for (int r = 0; r < m.Height; r++) Push(m.Bits[r * m.Width + (x - m.X)], 1);
            Push(false, imageHeight - m.Y - m.Height);
        }
        counts.Add(checked((int)run));
        return new Rle(imageHeight, imageWidth, counts.ToArray());
    }

    public static GlyphMask FromRle(Rle rle) => FromFull(rle.DecodeRowMajor(), rle.Height, rle.Width);

    /// <summary>Pixels set in both masks.</summary>
    public static long Intersection(GlyphMask a, GlyphMask b)
    {
        int x0 = Math.Max(a.X, b.X), y0 = Math.Max(a.Y, b.Y);
        int x1 = Math.Min(a.X + a.Width, b.X + b.Width), y1 = Math.Min(a.Y + a.Height, b.Y + b.Height);
        long n = 0;
        for (int y = y0; y < y1; y++)
        {
            int ra = (y - a.Y) * a.Width - a.X, rb = (y - b.Y) * b.Width - b.X;
            for (int x = x0; x < x1; x++)
                if (a.Bits[ra + x] && b.Bits[rb + x]) n++;
        }
        return n;
    }

    public static double IoU(GlyphMask a, GlyphMask b)
    {
        long i = Intersection(a, b);
        long u = a.Area + b.Area - i;
        return u == 0 ? 0 : (double)i / u;
    }
}
