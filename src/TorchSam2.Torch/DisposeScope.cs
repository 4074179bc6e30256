namespace TorchSam2.Torch;

/// <summary>
/// Collects every tensor created on this thread while it is the innermost scope and disposes
/// them together, as TorchSharp's dispose scopes do. Keep a result with
/// <see cref="Tensor.MoveToOuterDisposeScope"/> or <see cref="Tensor.DetachFromDisposeScope"/>.
/// </summary>
public sealed class DisposeScope : IDisposable
{
    [ThreadStatic] private static DisposeScope? _current;

    // Emptied sets of ended scopes, reused: a model creates a scope per block per call, and growing a
    // fresh set each time was a steady source of managed garbage.
    [ThreadStatic] private static Stack<HashSet<Tensor>>? _spareSets;

    private readonly HashSet<Tensor> _tensors = _spareSets is { Count: > 0 } spare ? spare.Pop() : new(ReferenceEqualityComparer.Instance);
    private bool _disposed;

    internal DisposeScope? Outer { get; }

    public static DisposeScope? Current => _current;

    internal DisposeScope()
    {
        Outer = _current;
        _current = this;
    }

    /// <summary>Number of tensors this scope will dispose.</summary>
    public int Count => _disposed ? 0 : _tensors.Count;

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
        bool reusable = _tensors.Count <= 4096; // a huge set is not worth keeping
        foreach (var t in _tensors)
        {
            t.OwningScope = null;
            t.Dispose();
        }
        _tensors.Clear();
        _spareSets ??= new Stack<HashSet<Tensor>>();
        if (reusable && _spareSets.Count < 16) _spareSets.Push(_tensors);
        // Scopes nest strictly; restore the outer one even if an inner one leaked.
        _current = Outer;
    }
}
