using static TorchSharp.torch;
using TorchSharp;
using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace TorchSam2.Checkpoints;

/// <summary>
/// A tensor as stored in a checkpoint: dtype, shape and contiguous (row-major) little-endian bytes.
/// Equality is structural (dtype, shape and bytes), unlike a plain record holding arrays.
/// </summary>
public sealed record TensorRecord(ScalarType DType, long[] Shape, byte[] Data)
{
    // Runs on construction: a record whose byte count disagrees with shape x dtype is never built.
    private readonly long _numElements = Validate(DType, Shape, Data);

    /// <summary>Product of the shape (1 for a 0-d tensor).</summary>
    public long NumElements => _numElements;

    /// <summary>Number of dimensions.</summary>
    public int Rank => Shape.Length;

    /// <summary>Element count of a shape; throws on negative or overflowing sizes.</summary>
    public static long CountElements(IReadOnlyList<long> shape)
    {
        long n = 1;
        foreach (long d in shape)
        {
            if (d < 0) throw new ArgumentException($"negative dimension {d} in shape [{string.Join(", ", shape)}]");
            n = checked(n * d);
        }
        return n;
    }

    private static long Validate(ScalarType dtype, long[] shape, byte[] data)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(data);
        long n = CountElements(shape);
        long bytes = checked(n * dtype.ElementSize());
        if (bytes != data.LongLength)
            throw new ArgumentException(
                $"tensor of shape [{string.Join(", ", shape)}] and dtype {dtype.TorchName()} needs {bytes} bytes, got {data.LongLength}");
        return n;
    }

    /// <summary>Builds a record from typed values (copied), e.g. <c>Create&lt;float&gt;(Float32, [2, 3], values)</c>.</summary>
    public static TensorRecord Create<T>(ScalarType dtype, long[] shape, ReadOnlySpan<T> values) where T : unmanaged
    {
        if (Marshal.SizeOf<T>() != dtype.ElementSize())
            throw new ArgumentException($"{typeof(T).Name} does not match dtype {dtype.TorchName()}");
        return new TensorRecord(dtype, (long[])shape.Clone(), MemoryMarshal.AsBytes(values).ToArray());
    }

    /// <summary>A float32 record holding <paramref name="values"/>.</summary>
    public static TensorRecord FromFloat32(long[] shape, ReadOnlySpan<float> values) =>
        Create(ScalarType.Float32, shape, values);

    /// <summary>The raw elements reinterpreted as <typeparamref name="T"/> (no conversion).</summary>
    public ReadOnlySpan<T> AsSpan<T>() where T : unmanaged
    {
        if (Marshal.SizeOf<T>() != DType.ElementSize())
            throw new InvalidOperationException($"{typeof(T).Name} does not match dtype {DType.TorchName()}");
        return MemoryMarshal.Cast<byte, T>(Data);
    }

    /// <summary>A new CPU tensor holding a copy of the data.</summary>
    public Tensor ToTensor() => TensorData.FromBytes(Data, DType, Shape);

    /// <summary>All elements converted to float32 (F16/BF16 widen exactly; F64 and large ints round).</summary>
    public float[] ToFloat32Array()
    {
        var result = new float[checked((int)NumElements)];
        ReadOnlySpan<byte> d = Data;
        switch (DType)
        {
            case ScalarType.Float32:
                MemoryMarshal.Cast<byte, float>(d).CopyTo(result);
                break;
            case ScalarType.Float16:
                for (int i = 0; i < result.Length; i++) result[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(d[(2 * i)..]);
                break;
            case ScalarType.BFloat16:
                // bf16 is the upper half of an IEEE float32.
                for (int i = 0; i < result.Length; i++)
                    result[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(d[(2 * i)..]) << 16);
                break;
            case ScalarType.Float64:
                for (int i = 0; i < result.Length; i++) result[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(d[(8 * i)..]);
                break;
            case ScalarType.Int64:
                for (int i = 0; i < result.Length; i++) result[i] = BinaryPrimitives.ReadInt64LittleEndian(d[(8 * i)..]);
                break;
            case ScalarType.Int32:
                for (int i = 0; i < result.Length; i++) result[i] = BinaryPrimitives.ReadInt32LittleEndian(d[(4 * i)..]);
                break;
            case ScalarType.Int16:
                for (int i = 0; i < result.Length; i++) result[i] = BinaryPrimitives.ReadInt16LittleEndian(d[(2 * i)..]);
                break;
            case ScalarType.Int8:
                for (int i = 0; i < result.Length; i++) result[i] = (sbyte)d[i];
                break;
            case ScalarType.Byte:
                for (int i = 0; i < result.Length; i++) result[i] = d[i];
                break;
            case ScalarType.Bool:
                for (int i = 0; i < result.Length; i++) result[i] = d[i] != 0 ? 1f : 0f;
                break;
            default:
                throw new NotSupportedException($"cannot convert dtype {DType} to float32");
        }
        return result;
    }

    public bool Equals(TensorRecord? other) =>
        other is not null && DType == other.DType &&
        Shape.AsSpan().SequenceEqual(other.Shape) && Data.AsSpan().SequenceEqual(other.Data);

    public override int GetHashCode()
    {
        var h = new HashCode();
        h.Add(DType);
        foreach (long d in Shape) h.Add(d);
        h.AddBytes(Data.AsSpan(0, Math.Min(Data.Length, 64)));
        return h.ToHashCode();
    }

    public override string ToString() => $"TensorRecord({DType.TorchName()}, [{string.Join(", ", Shape)}])";
}
