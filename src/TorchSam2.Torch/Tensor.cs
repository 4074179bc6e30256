using System.Runtime.InteropServices;
using TorchSam2.Torch.Native;

namespace TorchSam2.Torch;

/// <summary>
/// A libtorch tensor. Owns one native handle, released by <see cref="Dispose"/>, by the
/// enclosing <see cref="DisposeScope"/>, or (as a last resort) by the finalizer.
/// Method names follow PyTorch/TorchSharp so model code reads like the Python it mirrors.
/// </summary>
public partial class Tensor : IDisposable
{
    private IntPtr _handle;
    private long[]? _shape;
    private ScalarType? _dtype;
    private Device? _device;
    internal DisposeScope? OwningScope;

    internal Tensor(IntPtr handle, bool track = true)
    {
        if (handle == IntPtr.Zero) throw new TorchArgumentException("null tensor handle");
        _handle = handle;
        if (track) DisposeScope.Current?.Include(this);
    }

    ~Tensor() => Release();

    /// <summary>The native handle; throws after disposal.</summary>
    public IntPtr Handle => _handle != IntPtr.Zero ? _handle : throw new ObjectDisposedException(nameof(Tensor), "tensor was disposed");

    public bool IsDisposed => _handle == IntPtr.Zero;

    public void Dispose()
    {
        OwningScope?.Forget(this);
        OwningScope = null;
        Release();
        GC.SuppressFinalize(this);
    }

    private void Release()
    {
        var h = Interlocked.Exchange(ref _handle, IntPtr.Zero);
        if (h != IntPtr.Zero) NativeMethods.ts_tensor_free(h);
    }

    /// <summary>Points this object at another native tensor (used by Module.to and load_state_dict).</summary>
    internal void ReplaceHandle(Tensor source)
    {
        Status.Check(NativeMethods.ts_tensor_clone_handle(source.Handle, out var h));
        var old = Interlocked.Exchange(ref _handle, h);
        if (old != IntPtr.Zero) NativeMethods.ts_tensor_free(old);
        _shape = null;
        _dtype = null;
        _device = null;
    }

    private void LoadInfo()
    {
        Status.Check(NativeMethods.ts_tensor_info(Handle, out int dt, out int devType, out int devIdx, out int ndim, out _));
        _dtype = (ScalarType)dt;
        _device = new Device((DeviceType)devType, devIdx);
        var s = new long[ndim];
        unsafe
        {
            fixed (long* p = s) Status.Check(NativeMethods.ts_tensor_shape(Handle, p, ndim));
        }
        _shape = s;
    }

    /// <summary>Sizes of each dimension (cached: tensors here never change shape in place).</summary>
    public long[] shape
    {
        get
        {
            if (_shape is null) LoadInfo();
            return _shape!;
        }
    }

    public ScalarType dtype
    {
        get
        {
            if (_dtype is null) LoadInfo();
            return _dtype!.Value;
        }
    }

    public Device device
    {
        get
        {
            if (_device is null) LoadInfo();
            return _device!.Value;
        }
    }

    public long dim() => shape.Length;

    public long ndim => shape.Length;

    /// <summary>Size of dimension d (negative counts from the end).</summary>
    public long size(long d)
    {
        var s = shape;
        long k = d < 0 ? d + s.Length : d;
        if (k < 0 || k >= s.Length)
            throw new TorchIndexException($"Dimension out of range (expected to be in range of [{-s.Length}, {s.Length - 1}], but got {d})");
        return s[k];
    }

    public long numel()
    {
        long n = 1;
        foreach (var x in shape) n *= x;
        return n;
    }

    public bool requires_grad
    {
        get
        {
            Status.Check(NativeMethods.ts_tensor_info(Handle, out _, out _, out _, out _, out int rg));
            return rg != 0;
        }
        set => Status.Check(NativeMethods.ts_tensor_set_requires_grad(Handle, value ? 1 : 0));
    }

    public Tensor requires_grad_(bool value = true)
    {
        requires_grad = value;
        return this;
    }

    /// <summary>Whether the elements lie in row-major order with no gaps (as torch's is_contiguous()).</summary>
    public bool is_contiguous()
    {
        Status.Check(NativeMethods.ts_tensor_is_contiguous(Handle, out int c));
        return c != 0;
    }

    public bool is_leaf
    {
        get
        {
            Status.Check(NativeMethods.ts_tensor_is_leaf(Handle, out int leaf));
            return leaf != 0;
        }
    }

    /// <summary>The accumulated gradient, or null. The returned tensor is a new handle the caller owns.</summary>
    public Tensor? grad
    {
        get
        {
            Status.Check(NativeMethods.ts_tensor_grad(Handle, out var h));
            return h == IntPtr.Zero ? null : new Tensor(h);
        }
        set => Status.Check(NativeMethods.ts_tensor_set_grad(Handle, value?.Handle ?? IntPtr.Zero));
    }

    public void backward(Tensor? gradient = null, bool retain_graph = false, bool create_graph = false)
    {
        Status.Check(NativeMethods.ts_tensor_backward(Handle, gradient?.Handle ?? IntPtr.Zero, retain_graph ? 1 : 0, create_graph ? 1 : 0));
        GC.KeepAlive(gradient);
    }

    // ---- data in and out ------------------------------------------------------------------

    /// <summary>Creates a CPU tensor holding a copy of raw little-endian element bytes.</summary>
    public static unsafe Tensor FromBytes(ReadOnlySpan<byte> data, ScalarType dtype, params long[] shape)
    {
        long n = 1;
        foreach (var s in shape)
        {
            if (s < 0) throw new ArgumentException($"negative dimension in shape [{string.Join(", ", shape)}]");
            n *= s;
        }
        if (n * dtype.ElementSize() != data.Length)
            throw new ArgumentException($"{data.Length} bytes do not fill shape [{string.Join(", ", shape)}] of {dtype.TorchName()}");
        fixed (byte* d = data)
        fixed (long* sp = shape)
        {
            Status.Check(NativeMethods.ts_tensor_from_data(d, sp, shape.Length, (int)dtype, out var h));
            return new Tensor(h);
        }
    }

    /// <summary>Creates a CPU tensor from a span of elements (float, double, int, long, byte, bool, Half).</summary>
    public static Tensor FromSpan<T>(ReadOnlySpan<T> data, params long[] shape) where T : unmanaged =>
        FromBytes(MemoryMarshal.AsBytes(data), ScalarTypeOf<T>(), shape);

    internal static ScalarType ScalarTypeOf<T>() where T : unmanaged =>
        typeof(T) == typeof(float) ? ScalarType.Float32 :
        typeof(T) == typeof(double) ? ScalarType.Float64 :
        typeof(T) == typeof(int) ? ScalarType.Int32 :
        typeof(T) == typeof(long) ? ScalarType.Int64 :
        typeof(T) == typeof(byte) ? ScalarType.Byte :
        typeof(T) == typeof(sbyte) ? ScalarType.Int8 :
        typeof(T) == typeof(short) ? ScalarType.Int16 :
        typeof(T) == typeof(bool) ? ScalarType.Bool :
        typeof(T) == typeof(Half) ? ScalarType.Float16 :
        throw new NotSupportedException($"no tensor dtype for {typeof(T).Name}");

    /// <summary>Copies the elements (from any device, any layout) into a new array; dtype must match T.</summary>
    public T[] ToArray<T>() where T : unmanaged
    {
        var want = ScalarTypeOf<T>();
        if (dtype != want)
            throw new TorchTypeException($"tensor is {dtype.TorchName()}, not {want.TorchName()}; convert with .to(ScalarType.{want}) first");
        var result = new T[numel()];
        CopyTo(MemoryMarshal.AsBytes(result.AsSpan()));
        return result;
    }

    /// <summary>The raw element bytes, contiguous, little-endian.</summary>
    public byte[] ToBytes()
    {
        var result = new byte[numel() * dtype.ElementSize()];
        CopyTo(result);
        return result;
    }

    public unsafe void CopyTo(Span<byte> destination)
    {
        fixed (byte* d = destination) Status.Check(NativeMethods.ts_tensor_copy_out(Handle, d, destination.Length));
    }

    /// <summary>The value of a one-element tensor.</summary>
    public T item<T>() where T : unmanaged
    {
        Status.Check(NativeMethods.ts_tensor_item(Handle, out double v));
        object o = typeof(T) == typeof(float) ? (float)v :
                   typeof(T) == typeof(double) ? v :
                   typeof(T) == typeof(int) ? (int)v :
                   typeof(T) == typeof(long) ? (long)v :
                   typeof(T) == typeof(bool) ? v != 0 :
                   typeof(T) == typeof(byte) ? (byte)v :
                   throw new NotSupportedException($"item<{typeof(T).Name}> is not supported");
        return (T)o;
    }

    // ---- dispose scopes -------------------------------------------------------------------

    /// <summary>Takes this tensor out of any dispose scope: the caller now owns it.</summary>
    public Tensor DetachFromDisposeScope()
    {
        OwningScope?.Forget(this);
        OwningScope = null;
        return this;
    }

    /// <summary>Moves this tensor to the scope outside the current one (or out of all scopes).</summary>
    public Tensor MoveToOuterDisposeScope()
    {
        var scope = OwningScope;
        if (scope is null) return this;
        scope.Forget(this);
        OwningScope = null;
        scope.Outer?.Include(this);
        return this;
    }

    public override string ToString()
    {
        if (IsDisposed) return "Tensor(disposed)";
        return $"Tensor([{string.Join(", ", shape)}], dtype={dtype.TorchName()}, device={device})";
    }
}
