using System.Runtime.InteropServices;

namespace TorchSam2.Torch.Native;

/// <summary>One cell of a boxed operator call; layout matches <c>ts_arg</c> in torchsam2_native.h.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TsArg
{
    public int Kind;
    public int Reserved;
    public long I;
    public double D;
    public IntPtr P;
    public long N;
}

internal enum ArgKind
{
    Default = -1,
    None = 0,
    Tensor = 1,
    Int = 2,
    Double = 3,
    Bool = 4,
    IntList = 5,
    TensorList = 6,
    String = 7,
    DoubleList = 8,
    OptTensorList = 9,
    Device = 10,
    BoolList = 11,
}

/// <summary>P/Invoke declarations for libtorchsam2_native, grouped by area as in the header.</summary>
internal static unsafe partial class NativeMethods
{
    private const string Lib = "torchsam2_native";

    // status
    [LibraryImport(Lib)] internal static partial int ts_status_kind(IntPtr s);
    [LibraryImport(Lib)] internal static partial IntPtr ts_status_message(IntPtr s);
    [LibraryImport(Lib)] internal static partial void ts_status_free(IntPtr s);

    // context
    [LibraryImport(Lib)] internal static partial IntPtr ts_context_version(byte* buf, int len);
    [LibraryImport(Lib)] internal static partial IntPtr ts_context_manual_seed(ulong seed);
    [LibraryImport(Lib)] internal static partial IntPtr ts_context_set_num_threads(int n);
    [LibraryImport(Lib)] internal static partial int ts_context_get_num_threads();
    [LibraryImport(Lib)] internal static partial int ts_context_cuda_is_available();
    [LibraryImport(Lib)] internal static partial int ts_context_cuda_device_count();
    [LibraryImport(Lib)] internal static partial IntPtr ts_context_cuda_synchronize(int device);
    [LibraryImport(Lib)] internal static partial int ts_context_grad_enabled();
    [LibraryImport(Lib)] internal static partial void ts_context_set_grad_enabled(int enabled);
    [LibraryImport(Lib)] internal static partial IntPtr ts_context_inference_mode_enter(out IntPtr guard);
    [LibraryImport(Lib)] internal static partial void ts_context_inference_mode_exit(IntPtr guard);
    [LibraryImport(Lib)] internal static partial int ts_context_autocast_enabled(int deviceType);
    [LibraryImport(Lib)] internal static partial IntPtr ts_context_autocast_set(int deviceType, int enabled, int dtype);
    [LibraryImport(Lib)] internal static partial long ts_context_live_tensors();
    [LibraryImport(Lib)] internal static partial int ts_context_release_free_memory();

    // tensors
    [LibraryImport(Lib)] internal static partial void ts_tensor_free(IntPtr t);
    [LibraryImport(Lib)] internal static partial IntPtr ts_tensor_clone_handle(IntPtr t, out IntPtr result);
    [LibraryImport(Lib)] internal static partial IntPtr ts_tensor_from_data(void* data, long* shape, int ndim, int dtype, out IntPtr result);
    [LibraryImport(Lib)] internal static partial IntPtr ts_tensor_copy_out(IntPtr t, void* dst, long nbytes);
    [LibraryImport(Lib)] internal static partial IntPtr ts_tensor_info(IntPtr t, out int dtype, out int deviceType, out int deviceIndex, out int ndim, out int requiresGrad);
    [LibraryImport(Lib)] internal static partial IntPtr ts_tensor_shape(IntPtr t, long* shape, int capacity);
    [LibraryImport(Lib)] internal static partial IntPtr ts_tensor_item(IntPtr t, out double value);
    [LibraryImport(Lib)] internal static partial IntPtr ts_tensor_set_requires_grad(IntPtr t, int requiresGrad);
    [LibraryImport(Lib)] internal static partial IntPtr ts_tensor_grad(IntPtr t, out IntPtr result);
    [LibraryImport(Lib)] internal static partial IntPtr ts_tensor_set_grad(IntPtr t, IntPtr grad);
    [LibraryImport(Lib)] internal static partial IntPtr ts_tensor_backward(IntPtr t, IntPtr grad, int retainGraph, int createGraph);
    [LibraryImport(Lib)] internal static partial IntPtr ts_tensor_is_leaf(IntPtr t, out int leaf);
    [LibraryImport(Lib)] internal static partial IntPtr ts_tensor_is_contiguous(IntPtr t, out int contiguous);
    [LibraryImport(Lib)] internal static partial IntPtr ts_tensor_data_ptr(IntPtr t, out IntPtr ptr);

    // operators
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial IntPtr ts_op_find(string name, string overload, out IntPtr op);
    [LibraryImport(Lib)] internal static partial IntPtr ts_op_call(IntPtr op, TsArg* args, int nargs, TsArg* results, int capacity, out int nresults);
}
