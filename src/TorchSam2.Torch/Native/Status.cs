using System.Runtime.InteropServices;

namespace TorchSam2.Torch.Native;

/// <summary>Turns a native status into a typed managed exception (ONNX Runtime style).</summary>
internal static class Status
{
    public static void Check(IntPtr status)
    {
        if (status == IntPtr.Zero) return;
        throw ToException(status);
    }

    public static TorchException ToException(IntPtr status)
    {
        int kind = NativeMethods.ts_status_kind(status);
        string message = Marshal.PtrToStringUTF8(NativeMethods.ts_status_message(status)) ?? "unknown native error";
        NativeMethods.ts_status_free(status);
        return kind switch
        {
            1 => new TorchIndexException(message),
            2 => new TorchValueException(message),
            3 => new TorchTypeException(message),
            4 => new TorchNotImplementedException(message),
            5 => new TorchOutOfMemoryException(message),
            6 => new TorchArgumentException(message),
            _ => new TorchException(message),
        };
    }
}
