namespace TorchSam2.Torch;

/// <summary>
/// Collects every tensor created on this thread while it is the innermost scope and disposes
/// them together, as TorchSharp's dispose scopes do. Keep a result with
/// <see cref="Tensor.MoveToOuterDisposeScope"/> or <see cref="Tensor.DetachFromDisposeScope"/>.
/// </summary>
public sealed class DisposeScope : IDisposable
{
    [ThreadStatic] private static DisposeScope? _current;

    private readonly HashSet<Tensor> _tensors = new(ReferenceEqualityComparer.Instance);
    private bool _disposed;

    internal DisposeScope? Outer { get; }

    public static DisposeScope? Current => _current;

    internal DisposeScope()
    {
        Outer = _current;
        _current = this;
    }

    /// <summary>Number of tensors this scope will dispose.</summary>
    public int Count => _tensors.Count;

    internal void Include(Tensor t)
    {
        if (_disposed) return;
        t.OwningScope?.Forget(t);
        _tensors.Add(t);
        t.OwningScope = this;
    }

    internal void Forget(Tensor t) => _tensors.Remove(t);

    /// <summary>Keeps these tensors alive past this scope by moving them to the outer one.</summary>
    public void MoveToOuter(params Tensor?[] tensors)
    {
        foreach (var t in tensors) t?.MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var t in _tensors)
        {
            t.OwningScope = null;
            t.Dispose();
        }
        _tensors.Clear();
        // Scopes nest strictly; restore the outer one even if an inner one leaked.
        _current = Outer;
    }
}
