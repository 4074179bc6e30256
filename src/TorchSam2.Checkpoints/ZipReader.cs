using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using static TorchSam2.Checkpoints.UntrustedText;

namespace TorchSam2.Checkpoints;

/// <summary>One entry of a zip's central directory.</summary>
internal sealed class ZipEntry
{
    public required string Name { get; init; }
    internal required byte[] NameBytes { get; init; }
    public required ushort Flags { get; init; }
    public required ushort Method { get; init; }
    public required uint Crc { get; init; }
    public required long CompressedSize { get; init; }
    /// <summary>Uncompressed size, as the central directory claims it (checked as the entry is read).</summary>
    public required long Size { get; init; }
    public required long LocalHeaderOffset { get; init; }
    internal long DataOffset = -1;

    public const ushort Stored = 0, Deflated = 8;

    public override string ToString() => Quote(Name);
}

/// <summary>
/// A read-only zip reader for checkpoints, written for untrusted files: the end record and central directory are
/// checked against the file's size and <see cref="CheckpointLimits"/> before anything is allocated for them, entry
/// names must be unique, a local header must agree with its directory entry, deflated entries may not claim more
/// than deflate can produce, and every entry's CRC-32 is verified as it is read. Stored entries are read in place
/// at any offset (no reading from the start to skip). Stored and deflated entries only; zip64 is supported.
/// Not thread-safe: reads share the stream.
/// </summary>
internal sealed class ZipReader : IDisposable
{
    private const uint LocalSig = 0x04034b50, CentralSig = 0x02014b50, EndSig = 0x06054b50;
    private const uint End64Sig = 0x06064b50, End64LocatorSig = 0x07064b50;

    private readonly Stream _stream;
    private readonly long _base;
    private readonly Dictionary<string, ZipEntry> _byName;
    private readonly List<IDisposable> _owned = [];

    private ZipReader(Stream stream, long basePosition, long length, List<ZipEntry> entries, Dictionary<string, ZipEntry> byName)
    {
        _stream = stream;
        _base = basePosition;
        Length = length;
        Entries = entries;
        _byName = byName;
    }

    /// <summary>Bytes of the zip (from where the stream stood when opened to its end).</summary>
    public long Length { get; }

    public IReadOnlyList<ZipEntry> Entries { get; }

    /// <summary>Bytes of inflated storages this reader keeps in memory (see <see cref="CheckpointLimits.MaxInMemoryInflatedTotal"/>).</summary>
    internal long CachedBytes { get; set; }

    public ZipEntry? GetEntry(string name) => _byName.GetValueOrDefault(name);

    /// <summary>Reads the central directory of the zip starting at the stream's position.</summary>
    public static ZipReader Open(Stream stream)
    {
        if (!stream.CanSeek || !stream.CanRead) throw new ArgumentException("zip stream must be readable and seekable", nameof(stream));
        long basePos = stream.Position, length = stream.Length - basePos;

        // End of central directory: 22 bytes, then a comment of up to 65,535 bytes.
        int tailLen = (int)Math.Min(length, 22 + 0xFFFF);
        var tail = new byte[tailLen];
        ReadExactlyAt(stream, basePos + length - tailLen, tail, "the end of central directory");
        int eocd = -1;
        for (int i = tailLen - 22; i >= 0; i--)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(i)) == EndSig &&
                i + 22 + BinaryPrimitives.ReadUInt16LittleEndian(tail.AsSpan(i + 20)) <= tailLen)
            {
                eocd = i;
                break;
            }
        }
        if (eocd < 0) throw new CheckpointException("truncated or corrupt zip archive: no end of central directory record");
        var e = tail.AsSpan(eocd);
        ushort disk = BinaryPrimitives.ReadUInt16LittleEndian(e[4..]), cdDisk = BinaryPrimitives.ReadUInt16LittleEndian(e[6..]);
        long count = BinaryPrimitives.ReadUInt16LittleEndian(e[10..]);
        long diskCount = BinaryPrimitives.ReadUInt16LittleEndian(e[8..]);
        long cdSize = BinaryPrimitives.ReadUInt32LittleEndian(e[12..]);
        long cdOffset = BinaryPrimitives.ReadUInt32LittleEndian(e[16..]);
        long eocdPos = length - tailLen + eocd;

        // zip64: a locator just before the end record points at the zip64 end record.
        if (eocdPos >= 20)
        {
            Span<byte> loc = stackalloc byte[20];
            ReadExactlyAt(stream, basePos + eocdPos - 20, loc, "the zip64 end locator");
            if (BinaryPrimitives.ReadUInt32LittleEndian(loc) == End64LocatorSig)
            {
                long end64 = (long)Math.Min(BinaryPrimitives.ReadUInt64LittleEndian(loc[8..]), long.MaxValue);
                if (end64 > eocdPos - 20 - 56) throw new CheckpointException("corrupt zip archive: zip64 end record lies outside the file");
                Span<byte> r = stackalloc byte[56];
                ReadExactlyAt(stream, basePos + end64, r, "the zip64 end record");
                if (BinaryPrimitives.ReadUInt32LittleEndian(r) != End64Sig) throw new CheckpointException("corrupt zip archive: bad zip64 end record");
                disk = (ushort)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(r[16..]), ushort.MaxValue);
                cdDisk = (ushort)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(r[20..]), ushort.MaxValue);
                diskCount = (long)Math.Min(BinaryPrimitives.ReadUInt64LittleEndian(r[24..]), long.MaxValue);
                count = (long)Math.Min(BinaryPrimitives.ReadUInt64LittleEndian(r[32..]), long.MaxValue);
                cdSize = (long)Math.Min(BinaryPrimitives.ReadUInt64LittleEndian(r[40..]), long.MaxValue);
                cdOffset = (long)Math.Min(BinaryPrimitives.ReadUInt64LittleEndian(r[48..]), long.MaxValue);
                eocdPos = end64;
            }
        }
        if (disk != 0 || cdDisk != 0 || diskCount != count) throw new CheckpointException("multi-disk (split) zip archives are not supported");
        if (count > CheckpointLimits.MaxZipEntries)
            throw new CheckpointException($"zip archive lists {count:N0} entries, more than the {CheckpointLimits.MaxZipEntries:N0} a checkpoint may hold");
        if (cdSize > CheckpointLimits.MaxCentralDirectoryBytes)
            throw new CheckpointException($"zip central directory of {cdSize:N0} bytes is larger than the {CheckpointLimits.MaxCentralDirectoryBytes:N0} a checkpoint may have");
        if (cdOffset > eocdPos || cdSize > eocdPos - cdOffset || count * 46 > cdSize)
            throw new CheckpointException("truncated or corrupt zip archive: the central directory does not fit before its end record");

        var cd = new byte[cdSize];
        ReadExactlyAt(stream, basePos + cdOffset, cd, "the central directory");
        var entries = new List<ZipEntry>((int)count);
        var byName = new Dictionary<string, ZipEntry>((int)count, StringComparer.Ordinal);
        int p = 0;
        for (long n = 0; n < count; n++)
        {
            if (cd.Length - p < 46 || BinaryPrimitives.ReadUInt32LittleEndian(cd.AsSpan(p)) != CentralSig)
                throw new CheckpointException($"corrupt zip archive: central directory entry {n} is malformed");
            var h = cd.AsSpan(p);
            int nameLen = BinaryPrimitives.ReadUInt16LittleEndian(h[28..]), extraLen = BinaryPrimitives.ReadUInt16LittleEndian(h[30..]);
            int commentLen = BinaryPrimitives.ReadUInt16LittleEndian(h[32..]);
            if (46 + nameLen + extraLen + commentLen > cd.Length - p)
                throw new CheckpointException($"corrupt zip archive: central directory entry {n} runs past the directory");
            if (nameLen > CheckpointLimits.MaxZipNameBytes)
                throw new CheckpointException($"zip entry {n} has a name of {nameLen:N0} bytes, longer than the {CheckpointLimits.MaxZipNameBytes:N0} allowed");
            ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(h[8..]);
            byte[] nameBytes = h.Slice(46, nameLen).ToArray();
            string name = Encoding.UTF8.GetString(nameBytes);
            long size = BinaryPrimitives.ReadUInt32LittleEndian(h[24..]);
            long csize = BinaryPrimitives.ReadUInt32LittleEndian(h[20..]);
            long local = BinaryPrimitives.ReadUInt32LittleEndian(h[42..]);
            int diskStart = BinaryPrimitives.ReadUInt16LittleEndian(h[34..]);
            // zip64 extra field: the 0xFFFFFFFF fields, in this order.
            var extra = h.Slice(46 + nameLen, extraLen);
            while (extra.Length >= 4)
            {
                int id = BinaryPrimitives.ReadUInt16LittleEndian(extra), len = BinaryPrimitives.ReadUInt16LittleEndian(extra[2..]);
                if (len > extra.Length - 4) throw new CheckpointException($"corrupt zip archive: entry {Quote(name)} has a malformed extra field");
                if (id == 1)
                {
                    var z = extra.Slice(4, len);
                    long Next(ref ReadOnlySpan<byte> s)
                    {
                        if (s.Length < 8) throw new CheckpointException($"corrupt zip archive: entry {Quote(name)} has a short zip64 field");
                        long v = (long)Math.Min(BinaryPrimitives.ReadUInt64LittleEndian(s), long.MaxValue);
                        s = s[8..];
                        return v;
                    }
                    ReadOnlySpan<byte> zs = z;
                    if (size == 0xFFFFFFFF) size = Next(ref zs);
                    if (csize == 0xFFFFFFFF) csize = Next(ref zs);
                    if (local == 0xFFFFFFFF) local = Next(ref zs);
                }
                extra = extra[(4 + len)..];
            }
            if (diskStart != 0 && diskStart != 0xFFFF) throw new CheckpointException("multi-disk (split) zip archives are not supported");
            var entry = new ZipEntry
            {
                Name = name, NameBytes = nameBytes, Flags = flags, Method = BinaryPrimitives.ReadUInt16LittleEndian(h[10..]),
                Crc = BinaryPrimitives.ReadUInt32LittleEndian(h[16..]), CompressedSize = csize, Size = size, LocalHeaderOffset = local,
            };
            if (!byName.TryAdd(name, entry)) throw new CheckpointException($"zip archive holds two entries named {Quote(name)}");
            entries.Add(entry);
            p += 46 + nameLen + extraLen + commentLen;
        }
        return new ZipReader(stream, basePos, length, entries, byName);
    }

    private static void ReadExactlyAt(Stream s, long position, Span<byte> destination, string what)
    {
        s.Position = position;
        if (s.ReadAtLeast(destination, destination.Length, throwOnEndOfStream: false) != destination.Length)
            throw new CheckpointException($"truncated zip archive: the file ends inside {what}");
    }

    /// <summary>Where the entry's data starts, from its local header (checked against the directory and the file).</summary>
    public long DataOffset(ZipEntry e)
    {
        if (e.DataOffset >= 0) return e.DataOffset;
        if ((e.Flags & 1) != 0) throw new CheckpointException($"zip entry {e} is encrypted");
        if (e.Method is not (ZipEntry.Stored or ZipEntry.Deflated))
            throw new CheckpointException($"zip entry {e} uses compression method {e.Method}; only stored (0) and deflated (8) are supported");
        if (e.Method == ZipEntry.Stored && e.CompressedSize != e.Size)
            throw new CheckpointException($"corrupt zip archive: stored entry {e} has a compressed size {e.CompressedSize:N0} unlike its size {e.Size:N0}");
        if (e.Method == ZipEntry.Deflated && e.Size / CheckpointLimits.MaxDeflateRatio > e.CompressedSize)
            throw new CheckpointException(
                $"corrupt zip archive: deflated entry {e} claims {e.Size:N0} bytes from {e.CompressedSize:N0}, more than deflate can produce (at most {CheckpointLimits.MaxDeflateRatio}:1)");
        if (e.LocalHeaderOffset > Length - 30) throw Truncated(e, "its local header lies past the end of the file");
        Span<byte> h = stackalloc byte[30];
        ReadExactlyAt(_stream, _base + e.LocalHeaderOffset, h, $"the local header of entry {e}");
        if (BinaryPrimitives.ReadUInt32LittleEndian(h) != LocalSig) throw new CheckpointException($"corrupt zip archive: entry {e} has no local header where the directory says");
        int nameLen = BinaryPrimitives.ReadUInt16LittleEndian(h[26..]), extraLen = BinaryPrimitives.ReadUInt16LittleEndian(h[28..]);
        if (nameLen != e.NameBytes.Length) throw new CheckpointException($"corrupt zip archive: the local header of entry {e} names another file");
        Span<byte> localName = nameLen <= 1024 ? stackalloc byte[nameLen] : new byte[nameLen];
        ReadExactlyAt(_stream, _base + e.LocalHeaderOffset + 30, localName, $"the local header of entry {e}");
        if (!localName.SequenceEqual(e.NameBytes)) throw new CheckpointException($"corrupt zip archive: the local header of entry {e} names another file");
        long data = e.LocalHeaderOffset + 30 + nameLen + extraLen;
        if (data > Length || e.CompressedSize > Length - data) throw Truncated(e, $"its {e.CompressedSize:N0} bytes run past the end of the file");
        return e.DataOffset = data;
    }

    private static CheckpointException Truncated(ZipEntry e, string what) => new($"truncated zip archive: entry {e}: {what}");

    /// <summary>Reads bytes [offset, offset + destination.Length) of a stored entry, in place (no CRC check).</summary>
    public void ReadStored(ZipEntry e, long offset, Span<byte> destination)
    {
        long data = DataOffset(e);
        if (offset < 0 || offset > e.Size || destination.Length > e.Size - offset)
            throw new ArgumentOutOfRangeException(nameof(offset));
        _stream.Position = _base + data + offset;
        int got = _stream.ReadAtLeast(destination, destination.Length, throwOnEndOfStream: false);
        if (got != destination.Length) throw Truncated(e, $"the file ends {offset + got:N0} bytes into it");
    }

    /// <summary>
    /// The entry's bytes, inflated if need be, in order: at most <see cref="ZipEntry.Size"/> of them, and reading the
    /// last one checks that no more follow and that the CRC-32 matches.
    /// </summary>
    public Stream OpenVerified(ZipEntry e)
    {
        long data = DataOffset(e);
        Stream raw = new WindowStream(_stream, _base + data, e.CompressedSize);
        if (e.Method == ZipEntry.Deflated) raw = new DeflateStream(raw, CompressionMode.Decompress);
        return new VerifyingStream(raw, e);
    }

    /// <summary>A whole (small) entry, verified: refused beyond <paramref name="maxBytes"/> before anything is read.</summary>
    public byte[] ReadAll(ZipEntry e, int maxBytes, string why)
    {
        if (e.Size > maxBytes)
            throw new CheckpointException($"zip entry {e} holds {e.Size:N0} bytes, more than the {maxBytes:N0} allowed ({why})");
        var data = new byte[e.Size];
        using var s = OpenVerified(e);
        s.ReadExactly(data);
        Drain(s);
        return data;
    }

    /// <summary>Reads a verifying stream to its end, so that its size and CRC are checked.</summary>
    public static void Drain(Stream s)
    {
        Span<byte> scratch = stackalloc byte[4096];
        while (s.Read(scratch) > 0) { }
    }

    /// <summary>Something to dispose with the reader (a temporary file).</summary>
    internal void Own(IDisposable d) => _owned.Add(d);

    public void Dispose()
    {
        foreach (var d in _owned) d.Dispose();
        _owned.Clear();
    }

    // [start, start + length) of the underlying stream, positioned afresh on every read (reads may interleave).
    private sealed class WindowStream(Stream inner, long start, long length) : Stream
    {
        private long _pos;

        public override int Read(Span<byte> buffer)
        {
            int n = (int)Math.Min(buffer.Length, length - _pos);
            if (n <= 0) return 0;
            inner.Position = start + _pos;
            n = inner.Read(buffer[..n]);
            _pos += n;
            return n;
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position { get => _pos; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    // Counts, bounds and checksums an entry's bytes; the last byte triggers the size and CRC checks.
    private sealed class VerifyingStream(Stream inner, ZipEntry e) : Stream
    {
        private long _pos;
        private uint _crc = Crc32.Initial;
        private bool _checked;

        public override int Read(Span<byte> buffer)
        {
            if (_pos == e.Size)
            {
                Check();
                return 0;
            }
            int want = (int)Math.Min(buffer.Length, e.Size - _pos);
            int n;
            try
            {
                n = want == 0 ? 0 : inner.Read(buffer[..want]);
            }
            catch (InvalidDataException x)
            {
                throw new CheckpointException($"corrupt zip archive: entry {e} does not inflate ({OneLine(x.Message)})", x);
            }
            if (n == 0 && want > 0)
                throw new CheckpointException($"truncated or corrupt zip archive: entry {e} ends after {_pos:N0} of its {e.Size:N0} bytes");
            _crc = Crc32.Update(_crc, buffer[..n]);
            _pos += n;
            if (_pos == e.Size) Check();
            return n;
        }

        private void Check()
        {
            if (_checked) return;
            _checked = true;
            if (e.Method == ZipEntry.Deflated)
            {
                Span<byte> one = stackalloc byte[1];
                int extra;
                try { extra = inner.Read(one); }
                catch (InvalidDataException x) { throw new CheckpointException($"corrupt zip archive: entry {e} does not inflate ({OneLine(x.Message)})", x); }
                if (extra > 0) throw new CheckpointException($"corrupt zip archive: entry {e} inflates to more than the {e.Size:N0} bytes it declares");
            }
            uint crc = Crc32.Final(_crc);
            if (crc != e.Crc)
                throw new CheckpointException($"corrupt zip archive: entry {e} fails its CRC-32 check (recorded {e.Crc:x8}, computed {crc:x8})");
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => e.Size;
        public override long Position { get => _pos; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
