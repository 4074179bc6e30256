using static TorchSharp.torch;
using TorchSharp;
using System.IO.Compression;

namespace TorchSam2.Checkpoints;

/// <summary>
/// A Python dict or <c>collections.OrderedDict</c> from a pickle, in insertion order.
/// Keys are strings, longs, bools, doubles or tuples (<c>object?[]</c>).
/// </summary>
public sealed class PickleDict : OrderedDictionary<object, object?>
{
    /// <summary>Instance state set by BUILD (e.g. the <c>_metadata</c> attribute of a state dict), or null.</summary>
    public object? State { get; internal set; }
}

/// <summary>An allow-listed Python global (class or function) named in a pickle.</summary>
public sealed record PickleGlobal(string Module, string Name)
{
    public string FullName => $"{Module}.{Name}";

    public override string ToString() => FullName;
}

/// <summary>
/// A torch storage resolved from a persistent id: little-endian elements of one dtype, held in memory or
/// (in a checkpoint) left in its zip entry until a tensor on it is read.
/// </summary>
public sealed class PickleStorage
{
    private readonly byte[]? _data;
    private readonly ZipArchiveEntry? _entry;

    /// <summary>A storage held in memory.</summary>
    public PickleStorage(ScalarType dtype, string key, byte[] data)
    {
        DType = dtype;
        Key = key;
        _data = data;
        NumElements = data.LongLength / dtype.ElementSize();
    }

    // A storage of numElements elements in a zip entry (big-endian files are swapped as they are read).
    internal PickleStorage(ScalarType dtype, string key, long numElements, ZipArchiveEntry entry, bool bigEndian)
    {
        DType = dtype;
        Key = key;
        NumElements = numElements;
        _entry = entry;
        BigEndian = bigEndian;
    }

    public ScalarType DType { get; }

    /// <summary>The storage's key in the archive (its file name under <c>data/</c>).</summary>
    public string Key { get; }

    public long NumElements { get; }

    internal bool BigEndian { get; }

    /// <summary>Reads bytes [start, start + destination.Length) of the storage, as stored.</summary>
    internal void ReadRange(long start, Span<byte> destination)
    {
        if (_data is not null)
        {
            _data.AsSpan(checked((int)start), destination.Length).CopyTo(destination);
            return;
        }
        try
        {
            using var s = _entry!.Open();
            // Storages are read from their start (zip entries do not seek); a view at an offset skips bytes.
            if (start > 0)
            {
                if (s.CanSeek) s.Position = start;
                else
                {
                    var skip = new byte[(int)Math.Min(start, 1 << 16)];
                    for (long left = start; left > 0;)
                    {
                        int n = s.Read(skip, 0, (int)Math.Min(left, skip.Length));
                        if (n == 0) break;
                        left -= n;
                    }
                }
            }
            int got = s.ReadAtLeast(destination, destination.Length, throwOnEndOfStream: false);
            if (got != destination.Length)
                throw new CheckpointException($"truncated zip archive: storage '{Key}' ended before byte {start + destination.Length}");
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException)
        {
            throw new CheckpointException($"truncated or corrupt zip archive while reading storage '{Key}' ({e.Message})", e);
        }
    }

    /// <summary>The whole storage as bytes, as stored.</summary>
    internal byte[] ReadAll()
    {
        long bytes = checked(NumElements * DType.ElementSize());
        if (bytes > Array.MaxLength) throw new CheckpointException($"storage '{Key}' of {bytes} bytes is too large for one array");
        var data = new byte[bytes];
        if (bytes > 0) ReadRange(0, data);
        return data;
    }
}
