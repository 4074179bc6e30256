using static TorchSharp.torch;
using TorchSharp;
namespace TorchSam2.Checkpoints;

/// <summary>
/// A (storage, offset, size, stride) view from <c>_rebuild_tensor_v2</c>, checked against its storage when the
/// pickle is read; its bytes are read (and made contiguous) only when asked for.
/// </summary>
internal sealed class TensorView : StoredTensor
{
    private readonly PickleStorage _storage;
    private readonly long _offset;
    private readonly long[] _stride;
    private readonly bool _contiguous;

    private TensorView(PickleStorage storage, long offset, long[] size, long[] stride) : base(storage.DType, size)
    {
        _storage = storage;
        _offset = offset;
        _stride = stride;
        _contiguous = IsContiguous(size, stride);
    }

    /// <summary>
    /// A view checked against its storage: non-negative offset and strides, at most
    /// <see cref="CheckpointLimits.MaxTensorRank"/> dimensions, every element it touches inside the storage
    /// (offset + sum((size - 1) * stride) &lt; storage elements, in checked arithmetic), and no more elements than the
    /// storage holds, so reading it never makes more of a file than the file stores (stride-0 "expanded" views,
    /// which repeat elements, are refused when that would be larger than the storage).
    /// </summary>
    public static TensorView Create(PickleStorage storage, long offset, long[] size, long[] stride)
    {
        if (size.Length > CheckpointLimits.MaxTensorRank)
            throw new CheckpointException($"tensor has {size.Length} dimensions, more than {CheckpointLimits.MaxTensorRank}");
        if (size.Length != stride.Length)
            throw new CheckpointException($"size has {size.Length} dims but stride has {stride.Length}");
        string Shape() => $"[{string.Join(", ", size)}]";
        string Strides() => $"[{string.Join(", ", stride)}]";
        string key = UntrustedText.Quote(storage.Key);
        long numel;
        try { numel = TensorRecord.CountElements(size); }
        catch (ArgumentException) { throw new CheckpointException($"bad tensor size {Shape()}: negative dimension"); }
        catch (OverflowException) { throw new CheckpointException($"tensor of size {Shape()} has more elements than fit in 64 bits"); }
        if (offset < 0) throw new CheckpointException($"negative storage offset {offset}");
        foreach (long st in stride)
            if (st < 0) throw new CheckpointException($"negative stride {st} in {Strides()}");
        try { _ = checked(numel * storage.DType.ElementSize()); }
        catch (OverflowException) { throw new CheckpointException($"tensor of size {Shape()} is too large"); }
        if (numel > storage.NumElements)
            throw new CheckpointException(
                $"view of size {Shape()} and stride {Strides()} has {numel:N0} elements, more than its storage {key} holds ({storage.NumElements:N0}): " +
                "a stride-0 or overlapping view cannot be larger than its storage");
        if (numel == 0)
        {
            if (offset > storage.NumElements)
                throw new CheckpointException($"empty view at offset {offset:N0} lies past the end of storage {key} ({storage.NumElements:N0} elements)");
            return new TensorView(storage, offset, size, stride);
        }
        // The furthest element the view touches must lie inside the storage.
        long last = offset;
        try
        {
            for (int i = 0; i < size.Length; i++) last = checked(last + checked((size[i] - 1) * stride[i]));
        }
        catch (OverflowException)
        {
            throw new CheckpointException($"view (offset {offset}, size {Shape()}, stride {Strides()}) reaches beyond 2^63 elements");
        }
        if (last >= storage.NumElements)
            throw new CheckpointException(
                $"view (offset {offset}, size {Shape()}, stride {Strides()}) " +
                $"reaches element {last} of storage {key} which holds {storage.NumElements}");
        return new TensorView(storage, offset, size, stride);
    }

    internal override long FileOffset => _storage.FileOffset + _offset * DType.ElementSize();

    private protected override void ReadRange(long start, Span<byte> destination)
    {
        int es = DType.ElementSize();
        if (_contiguous) _storage.ReadRange(_offset * es + start, destination);
        else
        {
            // Rare in state dicts: gather the view out of the whole storage.
            var all = Gather(_storage.ReadAll(), es, _offset, Shape, _stride, ByteCount);
            all.AsSpan(checked((int)start), destination.Length).CopyTo(destination);
        }
        // Pieces start on element boundaries, so swapping each piece swaps whole elements.
        if (_storage.BigEndian) SwapBytes(destination, es);
    }

    // Contiguity ignores strides of size-1 dimensions, as torch does.
    private static bool IsContiguous(long[] size, long[] stride)
    {
        long expected = 1;
        for (int i = size.Length - 1; i >= 0; i--)
        {
            if (size[i] == 0) return true;
            if (size[i] != 1 && stride[i] != expected) return false;
            expected *= size[i];
        }
        return true;
    }

    // Odometer walk over the view, copying the innermost dimension element by element.
    private static byte[] Gather(byte[] src, int es, long offset, long[] size, long[] stride, long bytes)
    {
        if (bytes > Array.MaxLength) throw new CheckpointException($"non-contiguous tensor of {bytes} bytes is too large for one array");
        var dst = new byte[bytes];
        if (bytes == 0) return dst;
        int rank = size.Length;
        var index = new long[rank];
        long inner = size[rank - 1], innerStride = stride[rank - 1];
        long dstPos = 0;
        while (true)
        {
            long baseElem = offset;
            for (int i = 0; i < rank - 1; i++) baseElem += index[i] * stride[i];
            for (long j = 0; j < inner; j++)
            {
                Buffer.BlockCopy(src, (int)((baseElem + j * innerStride) * es), dst, (int)dstPos, es);
                dstPos += es;
            }
            int k = rank - 2;
            while (k >= 0 && ++index[k] == size[k]) index[k--] = 0;
            if (k < 0) return dst;
        }
    }

    private static void SwapBytes(Span<byte> data, int elementSize)
    {
        if (elementSize == 1) return;
        for (int i = 0; i + elementSize <= data.Length; i += elementSize) data.Slice(i, elementSize).Reverse();
    }
}
