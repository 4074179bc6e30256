using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace TorchSam2.Torch.Native;

/// <summary>
/// One argument of a boxed ATen call. Implicit conversions let call sites read like the schema:
/// <c>Op.Call("aten::conv2d", x, w, b, stride, padding, dilation, groups)</c>.
/// </summary>
public readonly struct Arg
{
    internal readonly ArgKind Kind;
    internal readonly long I;
    internal readonly double D;
    internal readonly object? O;

    private Arg(ArgKind kind, long i = 0, double d = 0, object? o = null)
    {
        Kind = kind;
        I = i;
        D = d;
        O = o;
    }

    /// <summary>Use the schema's default for this position.</summary>
    public static readonly Arg Default = new(ArgKind.Default);

    /// <summary>Python's None.</summary>
    public static readonly Arg None = new(ArgKind.None);

    public static implicit operator Arg(Tensor? t) => t is null ? None : new(ArgKind.Tensor, o: t);
    public static implicit operator Arg(long v) => new(ArgKind.Int, i: v);
    public static implicit operator Arg(int v) => new(ArgKind.Int, i: v);
    public static implicit operator Arg(double v) => new(ArgKind.Double, d: v);
    public static implicit operator Arg(float v) => new(ArgKind.Double, d: v);
    public static implicit operator Arg(bool v) => new(ArgKind.Bool, i: v ? 1 : 0);
    public static implicit operator Arg(long[]? v) => v is null ? None : new(ArgKind.IntList, o: v);
    public static implicit operator Arg(double[]? v) => v is null ? None : new(ArgKind.DoubleList, o: v);
    public static implicit operator Arg(Tensor[]? v) => v is null ? None : new(ArgKind.TensorList, o: v);
    public static implicit operator Arg(string? v) => v is null ? None : new(ArgKind.String, o: v);
    public static implicit operator Arg(ScalarType v) => new(ArgKind.Int, i: (long)v);
    public static implicit operator Arg(Device v) => new(ArgKind.Device, i: (long)v.Type, o: v.Index);
    public static implicit operator Arg(long? v) => v is null ? None : new(ArgKind.Int, i: v.Value);
    public static implicit operator Arg(double? v) => v is null ? None : new(ArgKind.Double, d: v.Value);
    public static implicit operator Arg(ScalarType? v) => v is null ? None : new(ArgKind.Int, i: (long)v.Value);

    /// <summary>A list of optional tensors (aten::index): null entries are None.</summary>
    public static Arg OptionalTensors(Tensor?[] v) => new(ArgKind.OptTensorList, o: v);

    /// <summary>A bool list such as std::array&lt;bool, 3&gt; output masks.</summary>
    public static Arg Bools(params bool[] v) => new(ArgKind.BoolList, o: v);
}

/// <summary>
/// An ATen operator resolved once through the dispatcher and called boxed. Calls go through
/// autograd, autocast and the backend kernels exactly as torch eager calls do.
/// </summary>
public sealed unsafe class Op
{
    private static readonly ConcurrentDictionary<string, Op?> Cache = new();
    private readonly IntPtr _handle;

    public string Name { get; }

    private Op(string name, IntPtr handle)
    {
        Name = name;
        _handle = handle;
    }

    /// <summary>Resolves "aten::name" or "aten::name.overload"; throws if libtorch lacks it.</summary>
    public static Op Get(string qualifiedName) =>
        TryGet(qualifiedName) ?? throw new TorchNotImplementedException($"operator {qualifiedName} is not available in this libtorch ({torch.Version})");

    /// <summary>Resolves an operator, or null when this libtorch does not have it (e.g. SDPA on 1.13).</summary>
    public static Op? TryGet(string qualifiedName) => Cache.GetOrAdd(qualifiedName, static q =>
    {
        int dot = q.IndexOf('.', q.IndexOf("::", StringComparison.Ordinal) + 2);
        string name = dot < 0 ? q : q[..dot];
        string overload = dot < 0 ? "" : q[(dot + 1)..];
        Status.Check(NativeMethods.ts_op_find(name, overload, out var h));
        return h == IntPtr.Zero ? null : new Op(q, h);
    });

    public static Tensor Call(string op, params ReadOnlySpan<Arg> args) => Get(op).Invoke(args);

    public static Tensor[] CallMany(string op, params ReadOnlySpan<Arg> args) => Get(op).InvokeMany(args);

    /// <summary>Calls the operator and returns its single tensor result.</summary>
    public Tensor Invoke(params ReadOnlySpan<Arg> args)
    {
        const int cap = 4;
        TsArg* results = stackalloc TsArg[cap];
        int n = Run(args, results, cap);
        if (n < 1 || results[0].Kind != (int)ArgKind.Tensor)
        {
            ReleaseResults(results, n);
            throw new TorchArgumentException($"{Name} returned no tensor");
        }
        var t = new Tensor(results[0].P);
        ReleaseResults(results + 1, n - 1);
        return t;
    }

    /// <summary>Calls the operator and returns every tensor it produced (tuples and lists flattened).</summary>
    public Tensor[] InvokeMany(params ReadOnlySpan<Arg> args)
    {
        const int cap = 1024;
        // 40 KB of result slots: rented, not allocated per call (split, unbind, chunk run every frame)
        var buf = ArrayPool<TsArg>.Shared.Rent(cap);
        try
        {
            fixed (TsArg* results = buf)
            {
                int n = Run(args, results, cap);
                var list = new Tensor[n];
                int k = 0;
                for (int i = 0; i < n; i++)
                    if (results[i].Kind == (int)ArgKind.Tensor) list[k++] = new Tensor(results[i].P);
                return k == n ? list : list[..k];
            }
        }
        finally
        {
            ArrayPool<TsArg>.Shared.Return(buf);
        }
    }

    /// <summary>Calls an operator whose result is a number (e.g. aten::size.int).</summary>
    public double InvokeScalar(params ReadOnlySpan<Arg> args)
    {
        const int cap = 4;
        TsArg* results = stackalloc TsArg[cap];
        int n = Run(args, results, cap);
        try
        {
            if (n < 1) throw new TorchArgumentException($"{Name} returned nothing");
            return results[0].Kind switch
            {
                (int)ArgKind.Int or (int)ArgKind.Bool => results[0].I,
                (int)ArgKind.Double => results[0].D,
                _ => throw new TorchArgumentException($"{Name} returned no number"),
            };
        }
        finally
        {
            ReleaseResults(results, n);
        }
    }

    private static void ReleaseResults(TsArg* results, int n)
    {
        for (int i = 0; i < n; i++)
            if (results[i].Kind == (int)ArgKind.Tensor) NativeMethods.ts_tensor_free(results[i].P);
    }

    [SkipLocalsInit] // the scratch is written before it is read
    private int Run(ReadOnlySpan<Arg> args, TsArg* results, int capacity)
    {
        if (args.Length > 32) throw new ArgumentException($"{Name}: too many arguments");
        TsArg* cells = stackalloc TsArg[args.Length];
        // List payloads (shapes, dims, tensor handles, strings) are copied onto the stack, so a call
        // allocates nothing managed; one that does not fit falls back to pinned arrays.
        const int ScratchLongs = 256;
        long* scratch = stackalloc long[ScratchLongs];
        int used = 0;
        long* Take(int longs)
        {
            if (used + longs > ScratchLongs) return null;
            long* p = scratch + used;
            used += longs;
            return p;
        }
        GCHandle[]? pins = null;
        int npins = 0;
        try
        {
            for (int i = 0; i < args.Length; i++)
            {
                ref readonly Arg a = ref args[i];
                TsArg c = default;
                c.Kind = (int)a.Kind;
                switch (a.Kind)
                {
                    case ArgKind.Tensor:
                        c.P = ((Tensor)a.O!).Handle;
                        break;
                    case ArgKind.Int:
                    case ArgKind.Bool:
                        c.I = a.I;
                        break;
                    case ArgKind.Double:
                        c.D = a.D;
                        break;
                    case ArgKind.Device:
                        c.I = a.I;
                        c.N = (int)a.O!;
                        break;
                    case ArgKind.IntList:
                    case ArgKind.DoubleList:
                    {
                        var arr = (Array)a.O!;
                        c.N = arr.Length;
                        long* p = Take(arr.Length);
                        if (p is null) c.P = Pin(arr, ref pins, ref npins);
                        else
                        {
                            // long and double are both 8 bytes: copy the raw elements
                            if (arr is long[] ls) ls.AsSpan().CopyTo(new Span<long>(p, ls.Length));
                            else ((double[])arr).AsSpan().CopyTo(new Span<double>(p, arr.Length));
                            c.P = (IntPtr)p;
                        }
                        break;
                    }
                    case ArgKind.BoolList:
                    {
                        var b = (bool[])a.O!;
                        long* p = Take(b.Length);
                        if (p is null) p = (long*)Pin(new long[b.Length], ref pins, ref npins);
                        for (int k = 0; k < b.Length; k++) p[k] = b[k] ? 1 : 0;
                        c.P = (IntPtr)p;
                        c.N = b.Length;
                        break;
                    }
                    case ArgKind.TensorList:
                    case ArgKind.OptTensorList:
                    {
                        var ts = (Tensor?[])a.O!;
                        long* p = Take(ts.Length);
                        if (p is null) p = (long*)Pin(new IntPtr[ts.Length], ref pins, ref npins);
                        for (int k = 0; k < ts.Length; k++) p[k] = (long)(ts[k]?.Handle ?? IntPtr.Zero);
                        c.P = (IntPtr)p;
                        c.N = ts.Length;
                        break;
                    }
                    case ArgKind.String:
                    {
                        var str = (string)a.O!;
                        int max = Encoding.UTF8.GetMaxByteCount(str.Length) + 1;
                        byte* p = (byte*)Take((max + 7) / 8);
                        if (p is null) p = (byte*)Pin(new byte[max], ref pins, ref npins);
                        int len = Encoding.UTF8.GetBytes(str, new Span<byte>(p, max));
                        p[len] = 0;
                        c.P = (IntPtr)p;
                        break;
                    }
                }
                cells[i] = c;
            }
            Status.Check(NativeMethods.ts_op_call(_handle, cells, args.Length, results, capacity, out int n));
            return n;
        }
        finally
        {
            for (int i = 0; i < npins; i++) pins![i].Free();
            // Tensors passed in must outlive the native call even if the caller drops them.
            foreach (ref readonly var a in args) GC.KeepAlive(a.O);
        }
    }

    private static IntPtr Pin(Array arr, ref GCHandle[]? pins, ref int npins)
    {
        pins ??= new GCHandle[8];
        if (npins == pins.Length) Array.Resize(ref pins, npins * 2);
        var h = GCHandle.Alloc(arr, GCHandleType.Pinned);
        pins[npins++] = h;
        return h.AddrOfPinnedObject();
    }

    public override string ToString() => Name;
}
