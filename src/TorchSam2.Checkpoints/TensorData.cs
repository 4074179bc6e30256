using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchSam2;

/// <summary>
/// Copies between managed memory and tensors with one memcpy each way. TorchSharp's own paths go through
/// a TensorAccessor (element by element for ToArray on some layouts) or need an array of the final type.
/// </summary>
public static class TensorData
{
    /// <summary>A new CPU tensor of the given shape holding a copy of <paramref name="data"/>.</summary>
    public static Tensor FromSpan<T>(ReadOnlySpan<T> data, params long[] shape) where T : unmanaged =>
        FromBytes(MemoryMarshal.AsBytes(data), ScalarTypeOf<T>(), shape);

    /// <summary>A new CPU tensor of the given dtype and shape holding a copy of raw little-endian bytes.</summary>
    public static Tensor FromBytes(ReadOnlySpan<byte> data, ScalarType dtype, params long[] shape)
    {
        long numel = 1;
        foreach (long d in shape)
        {
            if (d < 0) throw new ArgumentException($"negative dimension in shape [{string.Join(", ", shape)}]");
            numel = checked(numel * d);
        }
        if (checked(numel * dtype.ElementSize()) != data.Length)
            throw new ArgumentException($"{data.Length} bytes do not fill a {dtype} tensor of shape [{string.Join(", ", shape)}]");
        var t = empty(shape, dtype);
        if (data.Length > 0) data.CopyTo(t.bytes);
        return t;
    }

    /// <summary>The elements in row-major order (copied to the CPU and made contiguous first when needed).</summary>
    public static T[] ToArray<T>(this Tensor t) where T : unmanaged
    {
        if (ScalarTypeOf<T>() != t.dtype) throw new ArgumentException($"cannot read a {t.dtype} tensor as {typeof(T).Name}");
        if (t.device_type == TorchSharp.DeviceType.CPU && t.is_contiguous()) return MemoryMarshal.Cast<byte, T>(t.bytes).ToArray();
        using var c = t.cpu().contiguous();
        return MemoryMarshal.Cast<byte, T>(c.bytes).ToArray();
    }

    /// <summary>The raw little-endian bytes in row-major order.</summary>
    public static byte[] ToBytes(this Tensor t)
    {
        if (t.device_type == TorchSharp.DeviceType.CPU && t.is_contiguous()) return t.bytes.ToArray();
        using var c = t.cpu().contiguous();
        return c.bytes.ToArray();
    }

    /// <summary>Copies the raw bytes into <paramref name="destination"/>, which must be exactly as long.</summary>
    public static void CopyTo(this Tensor t, Span<byte> destination)
    {
        if (t.device_type == TorchSharp.DeviceType.CPU && t.is_contiguous()) { t.bytes.CopyTo(destination); return; }
        using var c = t.cpu().contiguous();
        c.bytes.CopyTo(destination);
    }

    private static ScalarType ScalarTypeOf<T>() where T : unmanaged => default(T) switch
    {
        float => ScalarType.Float32,
        double => ScalarType.Float64,
        Half => ScalarType.Float16,
        long => ScalarType.Int64,
        int => ScalarType.Int32,
        short => ScalarType.Int16,
        sbyte => ScalarType.Int8,
        byte => ScalarType.Byte,
        bool => ScalarType.Bool,
        TorchSharp.BFloat16 => ScalarType.BFloat16,
        _ => throw new NotSupportedException($"no tensor dtype for {typeof(T).Name}"),
    };
}
