namespace TorchSam2.Torch.Serialization;

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

/// <summary>A torch storage resolved from a persistent id: raw little-endian bytes of one dtype.</summary>
public sealed class PickleStorage
{
    public PickleStorage(ScalarType dtype, string key, byte[] data)
    {
        DType = dtype;
        Key = key;
        Data = data;
    }

    public ScalarType DType { get; }

    /// <summary>The storage's key in the archive (its file name under <c>data/</c>).</summary>
    public string Key { get; }

    public byte[] Data { get; }

    public long NumElements => Data.LongLength / DType.ElementSize();

    // Set once a tensor adopts Data without copying, so a second tensor on the same storage copies.
    internal bool Adopted { get; set; }
}
