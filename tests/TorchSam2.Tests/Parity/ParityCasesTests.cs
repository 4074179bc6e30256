using TorchSam2.Parity;
using Xunit.Abstractions;

namespace TorchSam2.Tests.Parity;

// Every case folder under the parity directory is replayed and must pass (image, module and video kinds).
// With CI=true a missing parity folder is a failure, not a skip.
public class ParityCasesTests(ITestOutputHelper output)
{
    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var dir in ParityCase.Discover(TestPaths.ParityDir)) data.Add(Path.GetFileName(dir));
        if (data.Count == 0) data.Add("<none>");
        return data;
    }

    private static bool InCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    [Theory]
    [MemberData(nameof(Cases))]
    public void CaseMatchesPyTorch(string name)
    {
        if (name == "<none>")
        {
            Assert.False(InCi, $"CI=true but no parity cases were found under {TestPaths.ParityDir}");
            return;
        }
        var dir = Path.Combine(TestPaths.ParityDir, name);
        var report = ParityRunner.Run(dir, c => output.WriteLine(c.ToString()));
        foreach (var e in report.Errors) output.WriteLine("error: " + e);
        foreach (var n in report.NotImplemented) output.WriteLine("not implemented: " + n);
        output.WriteLine(report.Summary);
        Assert.True(report.Passed, report.Summary + "\n" + string.Join("\n", report.Errors.Concat(report.Checks.Where(c => !c.Passed).Select(c => c.ToString()))));
    }

    [Fact]
    public void RunnerFailsWhenAnExpectedTensorIsAltered()
    {
        var source = Path.Combine(TestPaths.ParityDir, "micro_modules");
        if (!Directory.Exists(source))
        {
            Assert.False(InCi, $"CI=true but {source} is missing");
            return;
        }
        // A copy of the case whose memory-attention output (consumed by no later step) is nudged past tolerance.
        var dir = Path.Combine(Path.GetTempPath(), "torchsam2-tests", "altered_" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(source)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        var expected = TorchSam2.Checkpoints.SafeTensors.Read(Path.Combine(dir, "expected.safetensors"));
        var tensors = expected.Tensors.ToDictionary(kv => kv.Key, kv => kv.Value);
        var sparse = tensors["ma.out"];
        var values = sparse.ToFloat32Array();
        values[0] += 0.5f;
        tensors["ma.out"] = TorchSam2.Checkpoints.TensorRecord.FromFloat32(sparse.Shape, values);
        TorchSam2.Checkpoints.SafeTensors.Write(Path.Combine(dir, "expected.safetensors"), tensors);
        var report = ParityRunner.Run(dir);
        Assert.False(report.Passed);
        var bad = Assert.Single(report.Checks, c => !c.Passed);
        Assert.Equal("ma.out", bad.Name);
        Assert.Contains("1 of", bad.Problem);
        Assert.True(bad.MaxAbsError >= 0.49, $"max error {bad.MaxAbsError}");
        Directory.Delete(dir, true);
    }
}
