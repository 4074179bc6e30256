namespace TorchSam2.Torch.Serialization;

/// <summary>Turns a (storage, offset, size, stride) view into a contiguous <see cref="TensorRecord"/>.</summary>
internal static class TensorViews
{
    public static TensorRecord Materialize(PickleStorage storage, long offset, long[] size, long[] stride)
    {
        if (size.Length != stride.Length)
            throw new CheckpointException($"size has {size.Length} dims but stride has {stride.Length}");
        long numel;
        try { numel = TensorRecord.CountElements(size); }
        catch (Exception e) when (e is ArgumentException or OverflowException) { throw new CheckpointException($"bad tensor size: {e.Message}"); }
        if (offset < 0) throw new CheckpointException($"negative storage offset {offset}");
        int es = storage.DType.ElementSize();

        // The furthest element the view touches must lie inside the storage.
        if (numel > 0)
        {
            long last = offset;
            for (int i = 0; i < size.Length; i++)
            {
                if (stride[i] < 0) throw new CheckpointException($"negative stride {stride[i]}");
                last = checked(last + (size[i] - 1) * stride[i]);
            }
            if (last >= storage.NumElements)
                throw new CheckpointException(
                    $"view (offset {offset}, size [{string.Join(", ", size)}], stride [{string.Join(", ", stride)}]) " +
                    $"reaches element {last} of storage '{storage.Key}' which holds {storage.NumElements}");
        }
        long bytes = checked(numel * es);
        if (bytes > Array.MaxLength) throw new CheckpointException($"tensor of {bytes} bytes is too large for one array");

        if (IsContiguous(size, stride))
        {
            // Adopt the storage's array when the view is all of it (the common state-dict case).
            if (offset == 0 && bytes == storage.Data.LongLength && !storage.Adopted)
            {
                storage.Adopted = true;
                return new TensorRecord(storage.DType, size, storage.Data);
            }
            var copy = new byte[bytes];
            if (bytes > 0) Array.Copy(storage.Data, offset * es, copy, 0, bytes);
            return new TensorRecord(storage.DType, size, copy);
        }
        return new TensorRecord(storage.DType, size, Gather(storage.Data, es, offset, size, stride, bytes));
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
}
