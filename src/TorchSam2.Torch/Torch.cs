using System.Runtime.InteropServices;
using TorchSam2.Torch.Native;

namespace TorchSam2.Torch;

/// <summary>
/// The <c>torch</c> namespace of PyTorch/TorchSharp: factories, joins, modes and global settings.
/// Lower-case on purpose, so ported code reads like the Python it mirrors.
/// </summary>
public static partial class torch
{
    private static string? _version;

    static torch() => BlasCheck.WarnOnce();

    /// <summary>The libtorch version the native shim was built against, e.g. "1.13.1".</summary>
    public static unsafe string Version
    {
        get
        {
            if (_version is not null) return _version;
            byte* buf = stackalloc byte[64];
            Status.Check(NativeMethods.ts_context_version(buf, 64));
            return _version = Marshal.PtrToStringUTF8((IntPtr)buf) ?? "?";
        }
    }

    /// <summary>Live native tensor handles in this process (for leak checks).</summary>
    public static long LiveTensorCount => NativeMethods.ts_context_live_tensors();

    /// <summary>
    /// Hands the native heap's free pages back to the OS (glibc's malloc_trim). Freed tensors otherwise stay
    /// resident when small long-lived ones sit above them in the heap; the video predictor calls this when a
    /// propagation on the CPU ends. Returns false where nothing was released or the C library has no such call.
    /// </summary>
    public static bool ReleaseFreeNativeMemory() => NativeMethods.ts_context_release_free_memory() == 1;

    public static void manual_seed(ulong seed) => Status.Check(NativeMethods.ts_context_manual_seed(seed));

    /// <summary>Intra-op threads for libtorch and, with OpenBLAS, for BLAS too (libtorch alone leaves BLAS's own pool as it is).</summary>
    public static void set_num_threads(int n)
    {
        Status.Check(NativeMethods.ts_context_set_num_threads(n));
        BlasCheck.SetBlasThreads(n);
    }

    public static int get_num_threads() => NativeMethods.ts_context_get_num_threads();

    public static DisposeScope NewDisposeScope() => new();

    public static class cuda
    {
        public static bool is_available() => NativeMethods.ts_context_cuda_is_available() != 0;

        public static int device_count() => NativeMethods.ts_context_cuda_device_count();

        public static void synchronize(int device = 0) => Status.Check(NativeMethods.ts_context_cuda_synchronize(device));
    }

    // ---- autograd modes --------------------------------------------------------------------

    public static bool is_grad_enabled() => NativeMethods.ts_context_grad_enabled() != 0;

    /// <summary>Disables gradient tracking until disposed (thread-local, like torch.no_grad).</summary>
    public static IDisposable no_grad() => new GradModeGuard(false);

    public static IDisposable enable_grad() => new GradModeGuard(true);

    /// <summary>
    /// Inference mode: no autograd bookkeeping at all, the fastest way to run a model. Tensors made
    /// inside cannot later be used in autograd. Dispose on the thread that created it.
    /// </summary>
    public static IDisposable inference_mode() => new InferenceModeGuard();

    /// <summary>Autocast (mixed precision) on a device type until disposed, e.g. bf16 on CUDA.</summary>
    public static IDisposable autocast(DeviceType device, ScalarType dtype = ScalarType.BFloat16, bool enabled = true) =>
        new AutocastGuard(device, dtype, enabled);

    private sealed class GradModeGuard : IDisposable
    {
        private readonly bool _previous;
        private bool _done;

        public GradModeGuard(bool enabled)
        {
            _previous = is_grad_enabled();
            NativeMethods.ts_context_set_grad_enabled(enabled ? 1 : 0);
        }

        public void Dispose()
        {
            if (_done) return;
            _done = true;
            NativeMethods.ts_context_set_grad_enabled(_previous ? 1 : 0);
        }
    }

    private sealed class InferenceModeGuard : IDisposable
    {
        private IntPtr _guard;

        public InferenceModeGuard() => Status.Check(NativeMethods.ts_context_inference_mode_enter(out _guard));

        public void Dispose()
        {
            var g = Interlocked.Exchange(ref _guard, IntPtr.Zero);
            if (g != IntPtr.Zero) NativeMethods.ts_context_inference_mode_exit(g);
        }
    }

    private sealed class AutocastGuard : IDisposable
    {
        private readonly DeviceType _device;
        private readonly bool _previous;
        private bool _done;

        public AutocastGuard(DeviceType device, ScalarType dtype, bool enabled)
        {
            _device = device;
            _previous = NativeMethods.ts_context_autocast_enabled((int)device) != 0;
            Status.Check(NativeMethods.ts_context_autocast_set((int)device, enabled ? 1 : 0, (int)dtype));
        }

        public void Dispose()
        {
            if (_done) return;
            _done = true;
            var dt = _device == DeviceType.CUDA ? ScalarType.BFloat16 : ScalarType.BFloat16;
            Status.Check(NativeMethods.ts_context_autocast_set((int)_device, _previous ? 1 : 0, (int)dt));
        }
    }

    // ---- factories -------------------------------------------------------------------------

    public static Tensor zeros(long[] size, ScalarType dtype = ScalarType.Float32, Device? device = null) =>
        Op.Call("aten::zeros", size, dtype, Arg.None, Dev(device), Arg.None);

    public static Tensor ones(long[] size, ScalarType dtype = ScalarType.Float32, Device? device = null) =>
        Op.Call("aten::ones", size, dtype, Arg.None, Dev(device), Arg.None);

    public static Tensor empty(long[] size, ScalarType dtype = ScalarType.Float32, Device? device = null) =>
        Op.Call("aten::empty.memory_format", size, dtype, Arg.None, Dev(device), Arg.None, Arg.None);

    public static Tensor full(long[] size, double value, ScalarType dtype = ScalarType.Float32, Device? device = null) =>
        Op.Call("aten::full", size, value, dtype, Arg.None, Dev(device), Arg.None);

    public static Tensor zeros(params long[] size) => zeros(size, ScalarType.Float32);

    public static Tensor ones(params long[] size) => ones(size, ScalarType.Float32);

    public static Tensor arange(double start, double end, double step = 1, ScalarType dtype = ScalarType.Float32, Device? device = null) =>
        Op.Call("aten::arange.start_step", start, end, step, dtype, Arg.None, Dev(device), Arg.None);

    public static Tensor arange(long end, ScalarType dtype = ScalarType.Int64, Device? device = null) =>
        Op.Call("aten::arange.start_step", 0L, end, 1L, dtype, Arg.None, Dev(device), Arg.None);

    public static Tensor linspace(double start, double end, long steps, ScalarType dtype = ScalarType.Float32, Device? device = null) =>
        Op.Call("aten::linspace", start, end, steps, dtype, Arg.None, Dev(device), Arg.None);

    public static Tensor eye(long n, ScalarType dtype = ScalarType.Float32, Device? device = null) =>
        Op.Call("aten::eye", n, dtype, Arg.None, Dev(device), Arg.None);

    public static Tensor rand(long[] size, ScalarType dtype = ScalarType.Float32, Device? device = null) =>
        Op.Call("aten::rand", size, dtype, Arg.None, Dev(device), Arg.None);

    public static Tensor randn(long[] size, ScalarType dtype = ScalarType.Float32, Device? device = null) =>
        Op.Call("aten::randn", size, dtype, Arg.None, Dev(device), Arg.None);

    public static Tensor randint(long low, long high, long[] size, ScalarType dtype = ScalarType.Int64, Device? device = null) =>
        Op.Call("aten::randint.low", low, high, size, dtype, Arg.None, Dev(device), Arg.None);

    public static Tensor randperm(long n, ScalarType dtype = ScalarType.Int64, Device? device = null) =>
        Op.Call("aten::randperm", n, dtype, Arg.None, Dev(device), Arg.None);

    public static Tensor zeros_like(Tensor t, ScalarType? dtype = null) =>
        Op.Call("aten::zeros_like", t, dtype, Arg.None, Arg.None, Arg.None, Arg.None);

    public static Tensor ones_like(Tensor t, ScalarType? dtype = null) =>
        Op.Call("aten::ones_like", t, dtype, Arg.None, Arg.None, Arg.None, Arg.None);

    public static Tensor full_like(Tensor t, double value, ScalarType? dtype = null) =>
        Op.Call("aten::full_like", t, value, dtype, Arg.None, Arg.None, Arg.None, Arg.None);

    public static Tensor empty_like(Tensor t) => Op.Call("aten::empty_like", t, Arg.None, Arg.None, Arg.None, Arg.None, Arg.None);

    public static Tensor rand_like(Tensor t) => Op.Call("aten::rand_like", t, Arg.None, Arg.None, Arg.None, Arg.None, Arg.None);

    public static Tensor randn_like(Tensor t) => Op.Call("aten::randn_like", t, Arg.None, Arg.None, Arg.None, Arg.None, Arg.None);

    /// <summary>A tensor from values; shape defaults to 1-D.</summary>
    public static Tensor tensor(float[] values, long[]? shape = null, Device? device = null) => Place(Tensor.FromSpan<float>(values, shape ?? [values.Length]), device);

    public static Tensor tensor(double[] values, long[]? shape = null, Device? device = null) => Place(Tensor.FromSpan<double>(values, shape ?? [values.Length]), device);

    public static Tensor tensor(long[] values, long[]? shape = null, Device? device = null) => Place(Tensor.FromSpan<long>(values, shape ?? [values.Length]), device);

    public static Tensor tensor(int[] values, long[]? shape = null, Device? device = null) => Place(Tensor.FromSpan<int>(values, shape ?? [values.Length]), device);

    public static Tensor tensor(bool[] values, long[]? shape = null, Device? device = null) => Place(Tensor.FromSpan<bool>(values, shape ?? [values.Length]), device);

    public static Tensor tensor(byte[] values, long[]? shape = null, Device? device = null) => Place(Tensor.FromSpan<byte>(values, shape ?? [values.Length]), device);

    /// <summary>A 0-d tensor.</summary>
    public static Tensor scalar_tensor(double value, ScalarType dtype = ScalarType.Float32, Device? device = null) =>
        Op.Call("aten::scalar_tensor", value, dtype, Arg.None, Dev(device), Arg.None);

    private static Tensor Place(Tensor t, Device? device)
    {
        if (device is null || device.Value.Type == DeviceType.CPU) return t;
        using (t) return t.to(device.Value);
    }

    private static Arg Dev(Device? d) => d is null ? Arg.None : (Arg)d.Value;

    // ---- joins and selections ---------------------------------------------------------------

    public static Tensor cat(Tensor[] tensors, long dim = 0) => Op.Call("aten::cat", tensors, dim);

    public static Tensor cat(IEnumerable<Tensor> tensors, long dim = 0) => cat(tensors.ToArray(), dim);

    public static Tensor stack(Tensor[] tensors, long dim = 0) => Op.Call("aten::stack", tensors, dim);

    public static Tensor stack(IEnumerable<Tensor> tensors, long dim = 0) => stack(tensors.ToArray(), dim);

    public static Tensor where(Tensor condition, Tensor x, Tensor y) => Op.Call("aten::where.self", condition, x, y);

    public static Tensor where(Tensor condition, Tensor x, double y) => Op.Call("aten::where.ScalarOther", condition, x, y);

    public static Tensor where(Tensor condition, double x, Tensor y) => Op.Call("aten::where.ScalarSelf", condition, x, y);

    public static Tensor einsum(string equation, params Tensor[] operands) => Op.Call("aten::einsum", equation, operands);

    public static Tensor maximum(Tensor a, Tensor b) => Op.Call("aten::maximum", a, b);

    public static Tensor minimum(Tensor a, Tensor b) => Op.Call("aten::minimum", a, b);

    public static Tensor atan2(Tensor a, Tensor b) => Op.Call("aten::atan2", a, b);

    public static Tensor outer(Tensor a, Tensor b) => Op.Call("aten::outer", a, b);

    public static Tensor matmul(Tensor a, Tensor b) => Op.Call("aten::matmul", a, b);

    /// <summary>Returns (grid_x, grid_y)-style outputs of torch.meshgrid(..., indexing).</summary>
    public static Tensor[] meshgrid(Tensor[] tensors, string indexing = "ij") => Op.CallMany("aten::meshgrid.indexing", tensors, indexing);

    public static bool allclose(Tensor a, Tensor b, double rtol = 1e-5, double atol = 1e-8) =>
        Op.Get("aten::allclose").InvokeScalar(a, b, rtol, atol, false) != 0;
}
