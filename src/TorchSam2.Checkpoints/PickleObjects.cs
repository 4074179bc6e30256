using static TorchSharp.torch;
using TorchSharp;

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
    private readonly StorageBytes? _entry;

    /// <summary>A storage held in memory.</summary>
    public PickleStorage(ScalarType dtype, string key, byte[] data)
    {
        DType = dtype;
        Key = key;
        _data = data;
        NumElements = data.LongLength / dtype.ElementSize();
    }

    // A storage of numElements elements in a zip entry (big-endian files are swapped as they are read).
    internal PickleStorage(ScalarType dtype, string key, long numElements, StorageBytes entry, bool bigEndian)
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

    // Where the storage lies in the file, to read a whole checkpoint in file order.
    internal long FileOffset => _entry?.FileOffset ?? 0;

    /// <summary>Reads bytes [start, start + destination.Length) of the storage, as stored.</summary>
    internal void ReadRange(long start, Span<byte> destination)
    {
        if (_data is not null)
        {
            if (start < 0 || start > _data.LongLength || destination.Length > _data.LongLength - start)
                throw new CheckpointException($"read of bytes [{start}, {start + destination.Length}) is outside storage {UntrustedText.Quote(Key)}");
            _data.AsSpan((int)start, destination.Length).CopyTo(destination);
            return;
        }
        _entry!.Read(start, destination);
    }

    /// <summary>The whole storage as bytes, as stored.</summary>
    internal byte[] ReadAll()
    {
        long bytes = checked(NumElements * DType.ElementSize());
        if (bytes > Array.MaxLength) throw new CheckpointException($"storage {UntrustedText.Quote(Key)} of {bytes} bytes is too large for one array");
        var data = new byte[bytes];
        if (bytes > 0) ReadRange(0, data);
        return data;
    }
}
