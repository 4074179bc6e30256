using System.Diagnostics;

namespace TorchSam2.Tests.Cli;

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
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Dll());
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutMs)) p.Kill(true);
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr.Result);
    }
}
