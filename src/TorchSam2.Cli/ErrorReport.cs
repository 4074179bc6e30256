using System.Reflection;
using System.Runtime.InteropServices;
using TorchSam2.Checkpoints;

namespace TorchSam2.Cli;

/// <summary>A command line that asks for something impossible (a bad option value, a prompt outside the image): exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>Exit codes: 0 success, 1 the command failed (bad or missing files, a runtime error), 2 the command line is wrong.</summary>
internal static class ExitCodes
{
    public const int Ok = 0;
    public const int Failure = 1;
    public const int Usage = 2;
}

/// <summary>
/// What the command is doing, kept so that an unexpected error (an index out of range deep in a decoder) still says
/// which file or step it came from: <c>using var _ = Activity.Doing($"reading '{path}'");</c>
/// </summary>
internal static class Activity
{
    private static readonly AsyncLocal<ImmutableStack?> Current = new();

    private sealed record ImmutableStack(string What, ImmutableStack? Next);

    public static IDisposable Doing(string what)
    {
        var before = Current.Value;
        Current.Value = new ImmutableStack(what, before);
        return new Restore(before);
    }

    public static string? Now => Current.Value?.What;

    private sealed class Restore(ImmutableStack? before) : IDisposable
    {
        public void Dispose() => Current.Value = before;
    }
}

/// <summary>
/// Turns any exception into one escaped line on standard error and an exit code; the stack is shown only with
/// --verbose or TORCHSAM2_DEBUG=1.
/// </summary>
internal static class ErrorReport
{
    private const string ContextKey = "torchsam2.activity";

    public static bool Verbose { get; set; } =
        Environment.GetEnvironmentVariable("TORCHSAM2_DEBUG") is { } d && (d == "1" || d.Equals("true", StringComparison.OrdinalIgnoreCase));

    /// <summary>For exception filters (they run before the stack unwinds): records the current activity on the exception. Always true.</summary>
    public static bool Remember(Exception e)
    {
        try
        {
            if (Activity.Now is { } what && !e.Data.Contains(ContextKey)) e.Data[ContextKey] = what;
        }
        catch (Exception)
        {
            // Data may be read-only for some exception types; the message still stands on its own.
        }
        return true;
    }

    /// <summary>Prints the error and returns the exit code for it.</summary>
    public static int Report(Exception e)
    {
        var (code, message) = Describe(e);
        Terminal.Error(message);
        if (Verbose) Console.Error.WriteLine(e.ToString());
        return code;
    }

    /// <summary>The exit code and the one-line message (escaped) for an exception.</summary>
    public static (int code, string message) Describe(Exception e)
    {
        string? context = e.Data.Contains(ContextKey) ? e.Data[ContextKey] as string : null;
        var inner = Unwrap(e);
        context ??= inner.Data.Contains(ContextKey) ? inner.Data[ContextKey] as string : null;
        if (inner is ExternalException && inner is not TorchException) inner = TorchErrors.Translate(inner);
        int code = inner is UsageException ? ExitCodes.Usage : ExitCodes.Failure;
        string text = inner switch
        {
            UsageException u => u.Message,
            OutOfMemoryException => "out of memory",
            InsufficientExecutionStackException => "the input is nested too deeply",
            OperationCanceledException => "cancelled",
            ArgumentException a => ArgumentMessage(a),
            _ => FirstLine(inner.Message),
        };
        if (string.IsNullOrWhiteSpace(text)) text = inner.GetType().Name;
        // Messages written for users already name what they are about; others get the type and the step.
        bool unexpected = IsUnexpected(inner);
        if (unexpected) text = $"{text} ({inner.GetType().Name})";
        if (context is not null && (unexpected || inner is TorchException or OutOfMemoryException))
            text = $"{text} — while {context}";
        if (unexpected && !Verbose) text += " (--verbose shows where)";
        return (code, Terminal.OneLine(text));
    }

    private static Exception Unwrap(Exception e)
    {
        for (int i = 0; i < 16; i++)
        {
            switch (e)
            {
                case AggregateException { InnerExceptions.Count: 1 } a: e = a.InnerExceptions[0]; continue;
                case TargetInvocationException { InnerException: { } t }: e = t; continue;
                case TypeInitializationException { InnerException: { } t }: e = t; continue;
            }
            break;
        }
        return e;
    }

    /// <summary>Exceptions whose message was not written for a user of this tool (a bug, or an input no check caught).</summary>
    private static bool IsUnexpected(Exception e) =>
        e is NullReferenceException or IndexOutOfRangeException or InvalidCastException or OverflowException or FormatException
            or KeyNotFoundException or ArithmeticException or System.Text.Json.JsonException or ArrayTypeMismatchException
            or NotImplementedException or RankException or InvalidProgramException
        || (e.GetType() == typeof(Exception)) || (e is InvalidOperationException && e.GetType() == typeof(InvalidOperationException) && e.Message.StartsWith("Operation is not valid", StringComparison.Ordinal));

    // ArgumentException appends " (Parameter 'x')" and, out of range, "Actual value was …" on a second line.
    private static string ArgumentMessage(ArgumentException a)
    {
        string m = FirstLine(a.Message);
        if (a.ParamName is { } p && m.EndsWith($" (Parameter '{p}')", StringComparison.Ordinal)) m = m[..^($" (Parameter '{p}')".Length)];
        return m;
    }

    // libtorch appends a C++ backtrace after the first line; other multi-line messages keep their lines joined.
    private static string FirstLine(string m)
    {
        if (m.Contains("Exception raised from", StringComparison.Ordinal) || m.Contains("frame #0", StringComparison.Ordinal))
            return m.Split('\n', 2)[0].Trim();
        return m.Trim();
    }
}
