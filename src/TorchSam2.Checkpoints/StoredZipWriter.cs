using System.Buffers.Binary;
using System.Text;

namespace TorchSam2.Checkpoints;

/// <summary>
/// Writes an uncompressed ("stored") zip as PyTorch's PyTorchStreamWriter does: each entry's data
/// starts on a 64-byte boundary, padded with an extra field of id "FB". Deterministic (fixed
/// timestamps). No zip64, so the archive must stay under 4 GiB.
/// </summary>
internal sealed class StoredZipWriter
{
    private const int Alignment = 64;
    private readonly Stream _out;
    private readonly List<(byte[] Name, uint Crc, uint Size, uint Offset)> _entries = [];
    private long _pos;

    public StoredZipWriter(Stream output) => _out = output;

    public void Add(string name, ReadOnlySpan<byte> data)
    {
        byte[] nameBytes = Encoding.UTF8.GetBytes(name);
        long headerStart = _pos;
        int pad = (int)((Alignment - (headerStart + 30 + nameBytes.Length + 4) % Alignment) % Alignment);
        CheckZip32(headerStart + 30 + nameBytes.Length + 4 + pad + data.Length);
        uint crc = Crc32.Compute(data);

        Span<byte> h = stackalloc byte[30];
        BinaryPrimitives.WriteUInt32LittleEndian(h, 0x04034b50);
        BinaryPrimitives.WriteUInt16LittleEndian(h[4..], 20); // version needed: 2.0
        BinaryPrimitives.WriteUInt16LittleEndian(h[6..], Flags(name));
        BinaryPrimitives.WriteUInt16LittleEndian(h[8..], 0); // stored
        BinaryPrimitives.WriteUInt16LittleEndian(h[10..], 0); // time 00:00
        BinaryPrimitives.WriteUInt16LittleEndian(h[12..], 0x21); // date 1980-01-01
        BinaryPrimitives.WriteUInt32LittleEndian(h[14..], crc);
        BinaryPrimitives.WriteUInt32LittleEndian(h[18..], (uint)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(h[22..], (uint)data.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(h[26..], (ushort)nameBytes.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(h[28..], (ushort)(4 + pad));
        Write(h);
        Write(nameBytes);
        Span<byte> extra = stackalloc byte[4 + Alignment];
        extra[0] = (byte)'F';
        extra[1] = (byte)'B';
        BinaryPrimitives.WriteUInt16LittleEndian(extra[2..], (ushort)pad);
        extra.Slice(4, pad).Fill((byte)'Z');
        Write(extra[..(4 + pad)]);
        Write(data);
        _entries.Add((nameBytes, crc, (uint)data.Length, (uint)headerStart));
    }

    /// <summary>Writes the central directory and end record.</summary>
    public void Finish()
    {
        long cdStart = _pos;
        Span<byte> c = stackalloc byte[46];
        foreach (var e in _entries)
        {
            c.Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(c, 0x02014b50);
            BinaryPrimitives.WriteUInt16LittleEndian(c[4..], 20); // made by: 2.0
            BinaryPrimitives.WriteUInt16LittleEndian(c[6..], 20);
            BinaryPrimitives.WriteUInt16LittleEndian(c[8..], Flags(Encoding.UTF8.GetString(e.Name)));
            BinaryPrimitives.WriteUInt16LittleEndian(c[14..], 0x21);
            BinaryPrimitives.WriteUInt32LittleEndian(c[16..], e.Crc);
            BinaryPrimitives.WriteUInt32LittleEndian(c[20..], e.Size);
            BinaryPrimitives.WriteUInt32LittleEndian(c[24..], e.Size);
            BinaryPrimitives.WriteUInt16LittleEndian(c[28..], (ushort)e.Name.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(c[42..], e.Offset);
            Write(c);
            Write(e.Name);
        }
        long cdSize = _pos - cdStart;
        CheckZip32(_pos + 22);
        if (_entries.Count > ushort.MaxValue) throw new NotSupportedException("more than 65535 zip entries needs zip64, which is not implemented");
        Span<byte> end = stackalloc byte[22];
        end.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(end, 0x06054b50);
        BinaryPrimitives.WriteUInt16LittleEndian(end[8..], (ushort)_entries.Count);
        BinaryPrimitives.WriteUInt16LittleEndian(end[10..], (ushort)_entries.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(end[12..], (uint)cdSize);
        BinaryPrimitives.WriteUInt32LittleEndian(end[16..], (uint)cdStart);
        Write(end);
        _out.Flush();
    }

    // Bit 11: the name is UTF-8 (only needed when it is not plain ASCII).
    private static ushort Flags(string name) => (ushort)(Ascii.IsValid(name) ? 0 : 0x800);

    private static void CheckZip32(long end)
    {
        if (end > uint.MaxValue)
            throw new NotSupportedException("checkpoint larger than 4 GiB needs zip64, which this writer does not implement");
    }

    private void Write(ReadOnlySpan<byte> bytes)
    {
        _out.Write(bytes);
        _pos += bytes.Length;
    }
}
