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
        var result = new bool[Height * Width];
        int idx = 0;
        bool v = false;
        foreach (var c in Counts)
        {
            for (int k = 0; k < c; k++, idx++)
            {
                if (v) result[(idx % Height) * Width + idx / Height] = true;
            }
            v = !v;
        }
        if (idx != Height * Width) throw new InvalidDataException($"RLE covers {idx} pixels, expected {Height * Width}");
        return result;
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
            counts.Add(checked((int)x));
        }
        return new Rle(h, w, counts.ToArray());
    }
}
