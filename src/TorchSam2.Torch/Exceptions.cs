namespace TorchSam2.Torch;

/// <summary>A libtorch error, carrying libtorch's own message. The process is unaffected.</summary>
public class TorchException : Exception
{
    public TorchException(string message) : base(message) { }
}

/// <summary>An index out of range (c10::IndexError).</summary>
public sealed class TorchIndexException(string message) : TorchException(message);

/// <summary>A bad value (c10::ValueError).</summary>
public sealed class TorchValueException(string message) : TorchException(message);

/// <summary>A wrong dtype or type (c10::TypeError).</summary>
public sealed class TorchTypeException(string message) : TorchException(message);

/// <summary>An operation this libtorch build does not implement.</summary>
public sealed class TorchNotImplementedException(string message) : TorchException(message);

/// <summary>An allocation failed on the host or an accelerator.</summary>
public sealed class TorchOutOfMemoryException(string message) : TorchException(message);

/// <summary>A call the shim itself rejected (bad handle, wrong argument count, ...).</summary>
public sealed class TorchArgumentException(string message) : TorchException(message);
