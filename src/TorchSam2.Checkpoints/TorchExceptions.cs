using System.Runtime.InteropServices;

namespace TorchSam2;

/// <summary>
/// A libtorch error, carrying libtorch's own message (first line). TorchSharp raises every native failure as a
/// plain <see cref="ExternalException"/>; <see cref="TorchErrors.Translate"/> turns it into one of these typed
/// exceptions at the library's boundary, as ONNX Runtime's C# API does. The process is unaffected.
/// </summary>
public class TorchException : Exception
{
    public TorchException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>An index out of range (c10::IndexError).</summary>
public sealed class TorchIndexException(string message, Exception? inner = null) : TorchException(message, inner);

/// <summary>A bad value or shape (c10::ValueError, shape mismatches).</summary>
public sealed class TorchValueException(string message, Exception? inner = null) : TorchException(message, inner);

/// <summary>A wrong dtype or type (c10::TypeError).</summary>
public sealed class TorchTypeException(string message, Exception? inner = null) : TorchException(message, inner);

/// <summary>An operation this libtorch build does not implement (or a device it was not built for).</summary>
public sealed class TorchNotImplementedException(string message, Exception? inner = null) : TorchException(message, inner);

/// <summary>An allocation failed on the host or an accelerator.</summary>
public sealed class TorchOutOfMemoryException(string message, Exception? inner = null) : TorchException(message, inner);

/// <summary>Classifies libtorch's messages (as TorchSharp passes them on) into the typed exceptions above.</summary>
public static class TorchErrors
{
    /// <summary>The typed exception for a TorchSharp native failure; other exceptions come back unchanged.</summary>
    public static Exception Translate(Exception e)
    {
        if (e is not ExternalException || e is TorchException) return e;
        string full = e.Message ?? "libtorch error";
        // libtorch appends a C++ backtrace ("Exception raised from ... frame #0"): keep the first line.
        string line = full.Split('\n', 2)[0].Trim();
        if (line.Length == 0) line = "libtorch error";
        return Classify(full) switch
        {
            Kind.Index => new TorchIndexException(line, e),
            Kind.Type => new TorchTypeException(line, e),
            Kind.NotImplemented => new TorchNotImplementedException(line, e),
            Kind.OutOfMemory => new TorchOutOfMemoryException(line, e),
            Kind.Value => new TorchValueException(line, e),
            _ => new TorchException(line, e),
        };
    }

    /// <summary>Runs <paramref name="f"/>, rethrowing a libtorch failure as its typed exception.</summary>
    public static T Guard<T>(Func<T> f)
    {
        try { return f(); }
        catch (ExternalException e) { throw Translate(e); }
    }

    private enum Kind { Other, Index, Value, Type, NotImplemented, OutOfMemory }

    private static Kind Classify(string m)
    {
        if (m.Contains("out of memory", StringComparison.OrdinalIgnoreCase) ||
            m.Contains("DefaultCPUAllocator: not enough memory", StringComparison.Ordinal)) return Kind.OutOfMemory;
        if (m.Contains("out of bounds", StringComparison.OrdinalIgnoreCase) ||
            m.Contains("out of range", StringComparison.OrdinalIgnoreCase) ||
            m.Contains("IndexError", StringComparison.Ordinal)) return Kind.Index;
        if (m.Contains("not implemented", StringComparison.OrdinalIgnoreCase) ||
            m.Contains("NotImplementedError", StringComparison.Ordinal) ||
            m.Contains("not compiled with", StringComparison.OrdinalIgnoreCase) ||
            m.Contains("is not available", StringComparison.OrdinalIgnoreCase)) return Kind.NotImplemented;
        if (m.Contains("expected scalar type", StringComparison.OrdinalIgnoreCase) ||
            m.Contains("dtype", StringComparison.OrdinalIgnoreCase) ||
            m.Contains("TypeError", StringComparison.Ordinal)) return Kind.Type;
        if (m.Contains("shape", StringComparison.OrdinalIgnoreCase) ||
            m.Contains("size", StringComparison.OrdinalIgnoreCase) ||
            m.Contains("ValueError", StringComparison.Ordinal) ||
            m.Contains("invalid", StringComparison.OrdinalIgnoreCase)) return Kind.Value;
        return Kind.Other;
    }
}
