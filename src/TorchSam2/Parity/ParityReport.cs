namespace TorchSam2.Parity;

/// <summary>One compared tensor.</summary>
public sealed record ParityCheck(string Step, string Name, long[] Shape, double MaxAbsError, double? MaskAgreement, bool Passed, string? Problem = null)
{
    public override string ToString()
    {
        string agree = MaskAgreement is { } a ? $"  agree {a:P3}" : "";
        string shape = $"[{string.Join("x", Shape)}]";
        return $"{(Passed ? "ok  " : "FAIL")} {Step,-28} {Name,-34} {shape,-16} max|err| {MaxAbsError:E2}{agree}{(Problem is null ? "" : "  " + Problem)}";
    }
}

/// <summary>The outcome of one case.</summary>
public sealed class ParityReport(string caseName, string kind)
{
    public string CaseName { get; } = caseName;
    public string Kind { get; } = kind;
    public List<ParityCheck> Checks { get; } = new();
    /// <summary>Steps that could not run (an error, or a step type not implemented).</summary>
    public List<string> Errors { get; } = new();
    public List<string> NotImplemented { get; } = new();
    public TimeSpan Elapsed { get; set; }

    public bool Passed => Errors.Count == 0 && NotImplemented.Count == 0 && Checks.Count > 0 && Checks.All(c => c.Passed);

    public string Summary =>
        Passed ? $"{CaseName}: PASS ({Checks.Count} tensors, {Elapsed.TotalSeconds:F1} s)"
               : $"{CaseName}: FAIL ({Checks.Count(c => !c.Passed)} of {Checks.Count} tensors off, {Errors.Count} errors, {NotImplemented.Count} not implemented)";
}
