using System.Diagnostics;
using TorchSam2.Modeling;

namespace TorchSam2.Server;

/// <summary>
/// The one model every session shares. A TorchSharp module is not safe for concurrent forward passes, so all model
/// work (encode, decode, freeing embeddings) runs one at a time through this gate, in arrival order.
/// </summary>
public sealed class ModelGate(SAM2Base model, int maxPendingEncodes) : IDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private int _pendingEncodes;

    public SAM2Base Model { get; } = model;

    /// <summary>Runs <paramref name="work"/> alone on the model; returns its result and how long it waited for the gate (ms).</summary>
    public async Task<(T result, double waitMs)> RunAsync<T>(Func<T> work, CancellationToken ct = default)
    {
        var sw = Stopwatch.StartNew();
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        double wait = sw.Elapsed.TotalMilliseconds;
        try { return (work(), wait); }
        finally { _gate.Release(); }
    }

    /// <summary>As <see cref="RunAsync{T}"/> for an image encode: refused with 503 when <c>maxPendingEncodes</c> are already running or waiting.</summary>
    public async Task<(T result, double waitMs)> EncodeAsync<T>(Func<T> work, CancellationToken ct = default)
    {
        if (Interlocked.Increment(ref _pendingEncodes) > maxPendingEncodes)
        {
            Interlocked.Decrement(ref _pendingEncodes);
            throw new ApiException(503, $"the server is busy: {maxPendingEncodes} image encodes are already running or waiting; try again shortly");
        }
        try { return await RunAsync(work, ct).ConfigureAwait(false); }
        finally { Interlocked.Decrement(ref _pendingEncodes); }
    }

    public void Dispose() => _gate.Dispose();
}
