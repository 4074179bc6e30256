namespace TorchSam2.Cli;

/// <summary>
/// Reports on the caller's thread. Progress&lt;T&gt; posts each report to the thread pool, and Spectre's progress
/// context is not thread-safe: the bars want the value now, from the thread doing the work.
/// </summary>
internal sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
