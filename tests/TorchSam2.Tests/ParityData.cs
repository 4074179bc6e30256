using TorchSharp;
using TorchSharp.Modules;
using TorchSam2.Checkpoints;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace TorchSam2.Tests;

/// <summary>Shared access to the PyTorch reference data for the module and predictor tests.</summary>
internal static class ParityData
{
    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public static string CaseDir(string name) => Path.Combine(TestPaths.ParityDir, name);

    /// <summary>False (the test returns early) when the file or folder is absent outside CI; fails under CI=true.</summary>
    public static bool Require(string path)
    {
        if (File.Exists(path) || Directory.Exists(path)) return true;
        if (IsCi) Assert.Fail($"parity data missing: {path}");
        return false;
    }

    /// <summary>Tensors of a safetensors file whose names start with prefix (stripped), floats as fp32, outside dispose scopes.</summary>
    public static Dictionary<string, Tensor> Load(string path, string? prefix = null)
    {
        var result = new Dictionary<string, Tensor>();
        foreach (var (name, rec) in SafeTensors.Read(path).Tensors)
        {
            if (prefix is not null && !name.StartsWith(prefix, StringComparison.Ordinal)) continue;
            var t = rec.ToTensor();
            if (rec.DType.IsFloatingPoint() && rec.DType != ScalarType.Float32)
            {
                var f32 = t.to(ScalarType.Float32);
                t.Dispose();
                t = f32;
            }
            result[prefix is null ? name : name[prefix.Length..]] = t.DetachFromDisposeScope();
        }
        return result;
    }

    public static void DisposeAll(IEnumerable<Tensor> tensors)
    {
        foreach (var t in tensors) t.Dispose();
    }

    /// <summary>Asserts |a − e| ≤ atol + rtol·|e| elementwise (the parity README's rule); returns the max abs error.</summary>
    public static double AssertClose(string name, Tensor actual, Tensor expected, double atol = 2e-3, double rtol = 2e-3, ITestOutputHelper? output = null)
    {
        using var scope = NewDisposeScope();
        Assert.True(actual.shape.SequenceEqual(expected.shape),
            $"{name}: shape [{string.Join(",", actual.shape)}] != expected [{string.Join(",", expected.shape)}]");
        var a = actual.detach().cpu().@float();
        var e = expected.cpu().@float();
        var diff = (a - e).abs();
        double maxAbs = diff.numel() == 0 ? 0 : diff.max().ToSingle();
        double worst = diff.numel() == 0 ? -1 : (diff - (e.abs() * rtol + atol)).max().ToSingle();
        output?.WriteLine($"{name}: max abs err {maxAbs:E3}");
        Assert.True(worst <= 0, $"{name}: max abs err {maxAbs:E3} exceeds atol {atol} + rtol {rtol}·|e|");
        return maxAbs;
    }
}
