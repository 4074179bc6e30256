using static TorchSam2.Checkpoints.UntrustedText;

namespace TorchSam2.Checkpoints;

/// <summary>
/// The bytes of one storage entry of a .pt zip, read on demand. A stored entry is read in place; its CRC-32 is
/// checked on the first read (in the same pass when that read takes the whole storage, as loading a model does).
/// A deflated entry is inflated straight into the destination when one read takes it whole; otherwise (views of
/// part of it, or a second read) it is inflated once, bounded by its declared size, and kept in memory or in a
/// temporary file (see <see cref="CheckpointLimits.MaxInMemoryInflatedStorage"/>) from which every view is served.
/// </summary>
internal sealed class StorageBytes(ZipReader zip, ZipEntry entry, long length)
{
    private bool _verified;
    private bool _inflatedOnce;
    private byte[]? _memory;
    private FileStream? _file;

    /// <summary>Bytes of the storage (the entry may hold more; they are checksummed but not used).</summary>
    public long Length => length;

    public long FileOffset => entry.LocalHeaderOffset;

    public string EntryName => entry.Name;

    public void Read(long start, Span<byte> destination)
    {
        if (start < 0 || start > length || destination.Length > length - start)
            throw new CheckpointException($"read of bytes [{start}, {start + destination.Length}) is outside storage entry {entry} ({length} bytes)");
        if (_memory is not null)
        {
            _memory.AsSpan((int)start, destination.Length).CopyTo(destination);
            return;
        }
        if (_file is not null)
        {
            if (RandomAccess.Read(_file.SafeFileHandle, destination, start) != destination.Length)
                throw new CheckpointException($"temporary copy of storage entry {entry} is shorter than expected");
            return;
        }
        bool whole = start == 0 && destination.Length == length;
        if (entry.Method == ZipEntry.Stored)
        {
            if (!_verified)
            {
                using var s = zip.OpenVerified(entry);
                if (whole)
                {
                    s.ReadExactly(destination);
                    ZipReader.Drain(s);
                    _verified = true;
                    return;
                }
                ZipReader.Drain(s);
                _verified = true;
            }
            zip.ReadStored(entry, start, destination);
            return;
        }
        if (whole && !_inflatedOnce)
        {
            _inflatedOnce = true;
            using var s = zip.OpenVerified(entry);
            s.ReadExactly(destination);
            ZipReader.Drain(s);
            return;
        }
        Inflate();
        Read(start, destination);
    }

    // Inflates the entry once into memory or a temporary file; the copy is kept only when the CRC matches.
    private void Inflate()
    {
        if (length <= CheckpointLimits.MaxInMemoryInflatedStorage &&
            zip.CachedBytes + length <= CheckpointLimits.MaxInMemoryInflatedTotal)
        {
            var data = new byte[length];
            using (var s = zip.OpenVerified(entry))
            {
                s.ReadExactly(data);
                ZipReader.Drain(s);
            }
            zip.CachedBytes += length;
            _memory = data;
            return;
        }
        string path = Path.Combine(Path.GetTempPath(), $"torchsam2-storage-{Guid.NewGuid():N}.tmp");
        var file = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16, FileOptions.DeleteOnClose);
        try
        {
            using (var s = zip.OpenVerified(entry))
            {
                var buffer = new byte[1 << 20];
                for (long left = length; left > 0;)
                {
                    int n = s.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
                    if (n == 0) throw new CheckpointException($"storage entry {entry} ended early");
                    file.Write(buffer, 0, n);
                    left -= n;
                }
                ZipReader.Drain(s);
            }
            file.Flush();
        }
        catch
        {
            file.Dispose();
            throw;
        }
        zip.Own(file);
        _file = file;
    }

    public override string ToString() => Quote(entry.Name);
}
