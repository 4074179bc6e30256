using System.Text;
using TorchSharp;
using static TorchSharp.torch;
using TorchSharp.Modules;

namespace TorchSam2.Utils;

/// <summary>Uncompressed run-length encoding in COCO's column-major order (counts start with background).</summary>
public sealed record Rle(int Height, int Width, int[] Counts)
{
    /// <summary>Encodes a bool/uint8 H×W mask (mask_to_rle_pytorch in sam2/utils/amg.py).</summary>
    public static Rle Encode(Tensor mask)
    {
        if (mask.dim() != 2) throw new ArgumentException($"expected an H×W mask, got [{string.Join(", ", mask.shape)}]");
        int h = (int)mask.size(0), w = (int)mask.size(1);
        bool[] colMajor;
        using (var t = mask.to(ScalarType.Bool, CPU).t().contiguous()) colMajor = t.ToArray<bool>();
        return Encode(colMajor, h, w);
    }

    /// <summary>Encodes a column-major mask.</summary>
    public static Rle Encode(ReadOnlySpan<bool> colMajor, int h, int w)
    {
        var counts = new List<int>();
        bool cur = false;
        int run = 0;
        foreach (var v in colMajor)
        {
            if (v != cur)
            {
                counts.Add(run);
                run = 0;
                cur = v;
            }
            run++;
        }
        counts.Add(run);
        return new Rle(h, w, counts.ToArray());
    }

    /// <summary>Decodes to a row-major bool array of H×W.</summary>
    public bool[] DecodeRowMajor()
    {
        long total = (long)Height * Width;
        if (Height < 0 || Width < 0 || total > Array.MaxLength) throw new InvalidDataException($"RLE size {Width}x{Height} is not a valid mask size");
        long covered = 0;
        foreach (var c in Counts)
        {
            if (c < 0) throw new InvalidDataException($"RLE has a negative run ({c})");
            covered += c;
        }
        if (covered != total) throw new InvalidDataException($"RLE covers {covered} pixels, expected {total}");
        var result = new bool[total];
        long idx = 0;
        bool v = false;
        foreach (var c in Counts)
        {
            for (int k = 0; k < c; k++, idx++)
            {
                if (v) result[(idx % Height) * Width + idx / Height] = true;
            }
            v = !v;
        }
        return result;
    }

    /// <summary>
    /// Checks an RLE read from a file: a positive size within <see cref="Limits.MaxImagePixels"/>, no negative run and
    /// runs that cover exactly Height × Width pixels. Throws <see cref="InvalidDataException"/> naming <paramref name="what"/>.
    /// </summary>
    public Rle Validate(string what)
    {
        Limits.CheckImageSize(Width, Height, $"{what}: RLE size");
        long covered = 0;
        foreach (var c in Counts)
        {
            if (c < 0) throw new InvalidDataException($"{what}: RLE has a negative run ({c})");
            covered += c;
        }
        if (covered != (long)Height * Width) throw new InvalidDataException($"{what}: RLE covers {covered} pixels, expected {(long)Height * Width} ({Width}x{Height})");
        return this;
    }

    /// <summary>The tight box of the set pixels as (x, y, w, h); (0, 0, 0, 0) when empty. Reads the runs only.</summary>
    public (int x, int y, int w, int h) BoundingBox()
    {
        long idx = 0;
        int x0 = int.MaxValue, x1 = -1, y0 = int.MaxValue, y1 = -1;
        for (int i = 0; i < Counts.Length; i++)
        {
            long c = Counts[i];
            if ((i & 1) == 1 && c > 0)
            {
                long first = idx, last = idx + c - 1;
                int cx0 = (int)(first / Height), cx1 = (int)(last / Height);
                x0 = Math.Min(x0, cx0);
                x1 = Math.Max(x1, cx1);
                if (cx0 == cx1)
                {
                    y0 = Math.Min(y0, (int)(first % Height));
                    y1 = Math.Max(y1, (int)(last % Height));
                }
                else
                {
                    // the run goes on past a column's end: to the last row there, from the first row in the next
                    y0 = 0;
                    y1 = Height - 1;
                }
            }
            idx += c;
        }
        return x1 < 0 ? (0, 0, 0, 0) : (x0, y0, x1 - x0 + 1, y1 - y0 + 1);
    }

    /// <summary>
    /// The set pixels inside their tight box: (x, y, w, h) and row-major bits of w × h. Memory is the box's, never
    /// the whole image's.
    /// </summary>
    public (int x, int y, int w, int h, bool[] bits) DecodeTight()
    {
        var (bx, by, bw, bh) = BoundingBox();
        var bits = new bool[(long)bw * bh];
        long idx = 0;
        for (int i = 0; i < Counts.Length; i++)
        {
            long c = Counts[i];
            if ((i & 1) == 1)
                for (long k = idx; k < idx + c; k++)
                {
                    int x = (int)(k / Height), y = (int)(k % Height);
                    bits[(long)(y - by) * bw + (x - bx)] = true;
                }
            idx += c;
        }
        return (bx, by, bw, bh, bits);
    }

    /// <summary>Pixels set in both masks (same size), from the runs: O(runs of a + runs of b).</summary>
    public static long IntersectionArea(Rle a, Rle b)
    {
        if (a.Height != b.Height || a.Width != b.Width)
            throw new ArgumentException($"RLE sizes differ: {a.Width}x{a.Height} and {b.Width}x{b.Height}");
        int ia = 0, ib = 0;
        long ra = a.Counts.Length > 0 ? a.Counts[0] : 0, rb = b.Counts.Length > 0 ? b.Counts[0] : 0;
        long n = 0;
        while (ia < a.Counts.Length && ib < b.Counts.Length)
        {
            long step = Math.Min(ra, rb);
            if ((ia & 1) == 1 && (ib & 1) == 1) n += step;
            ra -= step;
            rb -= step;
            if (ra == 0 && ++ia < a.Counts.Length) ra = a.Counts[ia];
            if (rb == 0 && ++ib < b.Counts.Length) rb = b.Counts[ib];
        }
        return n;
    }

    public long Area()
    {
        long a = 0;
        for (int i = 1; i < Counts.Length; i += 2) a += Counts[i];
        return a;
    }

    /// <summary>The compressed COCO string form (pycocotools rleToString).</summary>
    public string ToCocoString()
    {
        var sb = new StringBuilder();
        for (int i = 0; i < Counts.Length; i++)
        {
            long x = Counts[i];
            if (i > 2) x -= Counts[i - 2];
            bool more = true;
            while (more)
            {
                long c = x & 0x1f;
                x >>= 5;
                more = (c & 0x10) != 0 ? x != -1 : x != 0;
                if (more) c |= 0x20;
                sb.Append((char)(c + 48));
            }
        }
        return sb.ToString();
    }

    /// <summary>Parses the compressed COCO string form (pycocotools rleFrString).</summary>
    public static Rle FromCocoString(string s, int h, int w)
    {
        var counts = new List<int>();
        int p = 0;
        while (p < s.Length)
        {
            long x = 0;
            int k = 0;
            bool more = true;
            while (more)
            {
                if (p >= s.Length) throw new InvalidDataException("truncated COCO RLE string");
                long c = s[p] - 48;
                x |= (c & 0x1f) << (5 * k);
                more = (c & 0x20) != 0;
                p++;
                k++;
                if (!more && (c & 0x10) != 0) x |= -1L << (5 * k);
            }
            if (counts.Count > 2) x += counts[^2];
            if (x < 0 || x > int.MaxValue) throw new InvalidDataException($"COCO RLE string decodes to a run of {x} pixels");
            counts.Add((int)x);
        }
        return new Rle(h, w, counts.ToArray());
    }
}
