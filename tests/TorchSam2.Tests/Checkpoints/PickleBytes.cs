using System.Text;

namespace TorchSam2.Tests.Checkpoints;

/// <summary>Builds pickle byte streams by hand: bytes, opcode chars and strings are concatenated.</summary>
internal static class PickleBytes
{
    public static byte[] Of(params object[] parts)
    {
        var ms = new MemoryStream();
        foreach (object p in parts)
        {
            switch (p)
            {
                case byte b: ms.WriteByte(b); break;
                case int i: ms.WriteByte(checked((byte)i)); break;
                case char c: ms.WriteByte(checked((byte)c)); break;
                case string s: ms.Write(Encoding.UTF8.GetBytes(s)); break;
                case byte[] a: ms.Write(a); break;
                default: throw new ArgumentException(p.GetType().Name);
            }
        }
        return ms.ToArray();
    }

    /// <summary>SHORT_BINUNICODE s.</summary>
    public static byte[] Str(string s)
    {
        byte[] b = Encoding.UTF8.GetBytes(s);
        return [0x8c, checked((byte)b.Length), .. b];
    }

    /// <summary>BINUNICODE s (4-byte length).</summary>
    public static byte[] LongStr(string s)
    {
        byte[] b = Encoding.UTF8.GetBytes(s);
        return [0x58, .. BitConverter.GetBytes(b.Length), .. b];
    }

    public static byte[] Hex(string hex) => Convert.FromHexString(hex);
}
