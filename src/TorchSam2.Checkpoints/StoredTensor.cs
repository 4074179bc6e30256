using static TorchSharp.torch;
using TorchSharp;
using System.Runtime.InteropServices;

namespace TorchSam2.Checkpoints;

/// <summary>
/// A tensor in an open checkpoint: dtype and shape come from the file's header (safetensors) or pickle (.pt);
/// its bytes stay on disk until read, straight into the destination. Loading a model this way never holds the
/// checkpoint in managed memory: the peak is the model plus one tensor. Valid while its
/// <see cref="CheckpointReader"/> is open; not thread-safe (reads share the file).
/// </summary>
public abstract class StoredTensor
{
    private protected StoredTensor(ScalarType dtype, long[] shape)
    {
        DType = dtype;
        Shape = shape;
        NumElements = TensorRecord.CountElements(shape);
        ByteCount = checked(NumElements * dtype.ElementSize());
    }

    public ScalarType DType { get; }

    public long[] Shape { get; }

    public long NumElements { get; }

    /// <summary>Size of the contiguous little-endian data.</summary>
    public long ByteCount { get; }

    // Where the data lies in the file, to read a whole checkpoint sequentially.
    internal virtual long FileOffset => 0;

    /// <summary>Reads bytes [start, start + destination.Length) of the contiguous little-endian data.</summary>
    private protected abstract void ReadRange(long start, Span<byte> destination);

    /// <summary>Reads the contiguous little-endian data into <paramref name="destination"/> (exactly <see cref="ByteCount"/> bytes).</summary>
    public void ReadInto(Span<byte> destination)
    {
        if (destination.Length != ByteCount)
            throw new ArgumentException($"{this} needs {ByteCount} bytes, the destination holds {destination.Length}", nameof(destination));
        if (ByteCount > 0) ReadRange(0, destination);
    }

    /// <summary>The data as a managed array (for tools; models load with <see cref="ReadInto(Tensor)"/>).</summary>
    public byte[] ReadBytes()
    {
        if (ByteCount > Array.MaxLength) throw new CheckpointException($"{this} is too large for one array ({ByteCount} bytes)");
        var data = new byte[ByteCount];
        ReadInto(data);
        return data;
    }

    public TensorRecord ReadRecord() => new(DType, (long[])Shape.Clone(), ReadBytes());

    /// <summary>A new CPU tensor holding the data, read straight into its native memory.</summary>
    public Tensor ReadTensor()
    {
        var t = empty(Shape, DType);
        try
        {
            ReadInto(t);
            return t;
        }
        catch
        {
            t.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Reads the data straight into <paramref name="destination"/>'s memory: a contiguous CPU tensor of the same
    /// dtype and shape (a model's parameter when the checkpoint's dtype matches), so no copy is made.
    /// </summary>
    public void ReadInto(Tensor destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        if (destination.dtype != DType || !destination.shape.AsSpan().SequenceEqual(Shape))
            throw new ArgumentException($"cannot read {this} into a {destination.dtype.TorchName()} tensor of shape [{string.Join(", ", destination.shape)}]", nameof(destination));
        if (destination.device_type != DeviceType.CPU || !destination.is_contiguous())
            throw new ArgumentException($"cannot read {this} into a {destination.device_type} tensor that is not contiguous CPU memory", nameof(destination));
        if (ByteCount == 0) return;
        // TorchSharp's byte span is int-sized: a tensor above 1 GB is read through flat slices.
        const long Piece = 1L << 30;
        if (ByteCount <= Piece)
        {
            ReadRange(0, destination.bytes);
            return;
        }
        long elementSize = DType.ElementSize();
        long perPiece = Piece / elementSize;
        using var flat = destination.view(-1);
        for (long first = 0; first < NumElements; first += perPiece)
        {
            using var slice = flat.narrow(0, first, Math.Min(perPiece, NumElements - first));
            ReadRange(first * elementSize, slice.bytes);
        }
    }

    // Every tensor as a record: read in file order (one sequential pass over a multi-GB file), returned in
    // state-dict order.
    internal static OrderedDictionary<string, TensorRecord> ReadAll(IReadOnlyDictionary<string, StoredTensor> tensors,
                                                                   Func<string, StoredTensor, TensorRecord> read)
    {
        var records = new Dictionary<string, TensorRecord>(tensors.Count);
        foreach (var (name, t) in tensors.OrderBy(kv => kv.Value.FileOffset)) records[name] = read(name, t);
        var result = new OrderedDictionary<string, TensorRecord>(tensors.Count);
        foreach (var name in tensors.Keys) result.Add(name, records[name]);
        return result;
    }

    public override string ToString() => $"{DType.TorchName()} tensor [{string.Join(", ", Shape)}]";
}
