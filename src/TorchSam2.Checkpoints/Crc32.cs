using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace TorchSam2.Checkpoints;

/// <summary>
/// CRC-32 (IEEE 802.3, as zip uses); no package dependency. Carry-less multiplication folds 64 bytes a step where
/// the CPU has it (PCLMULQDQ: ~10 GB/s, so verifying a checkpoint as it loads costs little), else slicing-by-8.
/// </summary>
internal static class Crc32
{
    private static readonly uint[] Table = BuildTable();

    // Table[k * 256 + i]: CRC of byte i followed by k zero bytes.
    private static uint[] BuildTable()
    {
        var t = new uint[8 * 256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int j = 0; j < 8; j++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        for (int i = 0; i < 256; i++)
            for (int k = 1; k < 8; k++) t[k * 256 + i] = (t[(k - 1) * 256 + i] >> 8) ^ t[t[(k - 1) * 256 + i] & 0xFF];
        return t;
    }

    /// <summary>The register before any data.</summary>
    public const uint Initial = 0xFFFFFFFFu;

    /// <summary>The CRC-32 of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => Final(Update(Initial, data));

    /// <summary>The CRC of everything passed to <see cref="Update"/>, from its register.</summary>
    public static uint Final(uint register) => ~register;

    /// <summary>Feeds <paramref name="data"/> into a running register (start from <see cref="Initial"/>).</summary>
    public static uint Update(uint register, ReadOnlySpan<byte> data)
    {
        if (data.Length >= 128 && Pclmulqdq.IsSupported && Sse2.IsSupported)
        {
            int folded = data.Length & ~15;
            register = UpdateFolding(register, data[..folded]);
            data = data[folded..];
        }
        return UpdateTable(register, data);
    }

    internal static uint UpdateTable(uint c, ReadOnlySpan<byte> data)
    {
        // Unchecked table reads: every index is masked to 0..255 within its 256-entry slice.
        ref uint t = ref MemoryMarshal.GetArrayDataReference(Table);
        int i = 0;
        for (; i + 8 <= data.Length; i += 8)
        {
            uint lo = BinaryPrimitives.ReadUInt32LittleEndian(data.Slice(i, 4)) ^ c;
            uint hi = BinaryPrimitives.ReadUInt32LittleEndian(data.Slice(i + 4, 4));
            c = Unsafe.Add(ref t, 7 * 256 + (int)(lo & 0xFF)) ^ Unsafe.Add(ref t, 6 * 256 + (int)((lo >> 8) & 0xFF)) ^
                Unsafe.Add(ref t, 5 * 256 + (int)((lo >> 16) & 0xFF)) ^ Unsafe.Add(ref t, 4 * 256 + (int)(lo >> 24)) ^
                Unsafe.Add(ref t, 3 * 256 + (int)(hi & 0xFF)) ^ Unsafe.Add(ref t, 2 * 256 + (int)((hi >> 8) & 0xFF)) ^
                Unsafe.Add(ref t, 256 + (int)((hi >> 16) & 0xFF)) ^ Unsafe.Add(ref t, (int)(hi >> 24));
        }
        for (; i < data.Length; i++) c = Unsafe.Add(ref t, (int)((c ^ data[i]) & 0xFF)) ^ (c >> 8);
        return c;
    }

    // Folding with carry-less multiplication, after Gopal et al., "Fast CRC Computation for Generic Polynomials
    // Using PCLMULQDQ Instruction" (Intel, 2009), in the bit-reflected domain. The constants are x^k mod P(x) for
    // the zip polynomial (reflected, shifted): fold by 4 x 128 bits (k1, k2), by 128 bits (k3, k4), 64 -> 32
    // bits (k5), and Barrett reduction (P', mu). Length: a multiple of 16, at least 64.
    private static uint UpdateFolding(uint register, ReadOnlySpan<byte> data)
    {
        var k1k2 = Vector128.Create(0x0154442bd4UL, 0x01c6e41596UL);
        var k3k4 = Vector128.Create(0x01751997d0UL, 0x00ccaa009eUL);
        var k5 = Vector128.Create(0x0163cd6124UL, 0UL);
        var poly = Vector128.Create(0x01db710641UL, 0x01f7011641UL);
        var low32 = Vector128.Create(~0u, 0u, ~0u, 0u).AsUInt64();

        var x1 = Load(data, 0) ^ Vector128.CreateScalar(register).AsUInt64();
        var x2 = Load(data, 16);
        var x3 = Load(data, 32);
        var x4 = Load(data, 48);
        int i = 64;
        for (; i + 64 <= data.Length; i += 64)
        {
            x1 = Fold(x1, k1k2) ^ Load(data, i);
            x2 = Fold(x2, k1k2) ^ Load(data, i + 16);
            x3 = Fold(x3, k1k2) ^ Load(data, i + 32);
            x4 = Fold(x4, k1k2) ^ Load(data, i + 48);
        }
        x1 = Fold(x1, k3k4) ^ x2;
        x1 = Fold(x1, k3k4) ^ x3;
        x1 = Fold(x1, k3k4) ^ x4;
        for (; i + 16 <= data.Length; i += 16) x1 = Fold(x1, k3k4) ^ Load(data, i);

        // 128 -> 64 bits, then 64 -> 32, then Barrett reduction.
        x1 = Sse2.ShiftRightLogical128BitLane(x1, 8) ^ Pclmulqdq.CarrylessMultiply(x1, k3k4, 0x10);
        x1 = Pclmulqdq.CarrylessMultiply(x1 & low32, k5, 0x00) ^ Sse2.ShiftRightLogical128BitLane(x1, 4);
        var t = Pclmulqdq.CarrylessMultiply(x1 & low32, poly, 0x10) & low32;
        x1 ^= Pclmulqdq.CarrylessMultiply(t, poly, 0x00);
        return x1.AsUInt32().GetElement(1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<ulong> Fold(Vector128<ulong> x, Vector128<ulong> k) =>
        Pclmulqdq.CarrylessMultiply(x, k, 0x00) ^ Pclmulqdq.CarrylessMultiply(x, k, 0x11);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<ulong> Load(ReadOnlySpan<byte> data, int offset) =>
        Vector128.LoadUnsafe(ref Unsafe.Add(ref MemoryMarshal.GetReference(data), offset)).AsUInt64();
}
