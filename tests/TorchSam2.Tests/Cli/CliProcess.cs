using System.Diagnostics;

namespace TorchSam2.Tests.Cli;

/// <summary>What a CLI run did: exit code, output, and the child's peak resident memory (VmHWM, Linux; 0 elsewhere).</summary>
internal sealed record CliResult(int Code, string Stdout, string Stderr, long PeakRssBytes, bool TimedOut)
{
    public string Output => Stdout + Stderr;
    public double PeakRssMb => PeakRssBytes / 1048576.0;
}

/// <summary>Runs the built CLI (TorchSam2.Cli.dll of the same configuration as the tests) as a child process.</summary>
internal static class CliProcess
{
    public static bool InCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public static string Dll()
    {
        string config = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}") ? "Release" : "Debug";
        return Path.Combine(TestPaths.RepoRoot, "src", "TorchSam2.Cli", "bin", config, "net10.0", "TorchSam2.Cli.dll");
    }

    /// <summary>Exit code, stdout and stderr; the process is killed after <paramref name="timeoutMs"/>.</summary>
    public static (int code, string stdout, string stderr) Run(int timeoutMs, params string[] args)
    {
        var r = Run(timeoutMs, null, args);
        return (r.Code, r.Stdout, r.Stderr);
    }

    /// <summary>
    /// Runs the CLI with extra environment variables; polls /proc/PID/status for VmHWM (the kernel's high-water mark of
    /// the resident set) every few milliseconds, so the peak is the child's own, whatever the test process holds.
    /// </summary>
    public static CliResult Run(int timeoutMs, IReadOnlyDictionary<string, string?>? env, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Dll());
        foreach (var a in args) psi.ArgumentList.Add(a);
        // no colour codes in what the tests read; a fixed width so nothing depends on the terminal
        psi.Environment["NO_COLOR"] = "1";
        psi.Environment.Remove("TORCHSAM2_DEBUG");
        if (env is not null)
            foreach (var (k, v) in env)
                if (v is null) psi.Environment.Remove(k); else psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        long peak = 0;
        string status = $"/proc/{p.Id}/status";
        var sw = Stopwatch.StartNew();
        bool timedOut = false;
        while (!p.WaitForExit(5))
        {
            peak = Math.Max(peak, ReadHwm(status));
            if (sw.ElapsedMilliseconds > timeoutMs)
            {
                timedOut = true;
                p.Kill(true);
                break;
            }
        }
        p.WaitForExit();
        return new CliResult(p.ExitCode, stdout.Result, stderr.Result, peak, timedOut);
    }

    private static long ReadHwm(string status)
    {
        try
        {
            foreach (var line in File.ReadLines(status))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim()) * 1024;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            // the process has just exited
        }
        return 0;
    }
}
