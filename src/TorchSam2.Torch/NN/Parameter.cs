using TorchSam2.Torch.Native;

namespace TorchSam2.Torch;

/// <summary>A trainable tensor owned by a module: a leaf, outside every dispose scope.</summary>
public sealed class Parameter : Tensor
{
    /// <summary>Wraps <paramref name="data"/>'s storage (detached) as a leaf parameter.</summary>
    public Parameter(Tensor data, bool requires_grad = true) : base(DetachedHandle(data), track: false)
    {
        if (requires_grad) this.requires_grad = true;
    }

    private static IntPtr DetachedHandle(Tensor data)
    {
        using var d = Op.Call("aten::detach", data);
        d.DetachFromDisposeScope();
        Status.Check(NativeMethods.ts_tensor_clone_handle(d.Handle, out var h));
        return h;
    }
}
