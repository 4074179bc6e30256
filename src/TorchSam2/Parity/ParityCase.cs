using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;
using TorchSharp.Modules;
using TorchSam2.Checkpoints;

namespace TorchSam2.Parity;

/// <summary>Tolerances of a case: |a − e| ≤ atol + rtol·|e|, and sign agreement for mask logits.</summary>
public sealed record ParityTolerance(double Atol, double Rtol, double MaskAgreement);

/// <summary>
/// A reference case in the format of shared/parity/README.md: case.json, model.yaml,
/// weights/inputs/expected safetensors.
/// </summary>
public sealed class ParityCase
{
    public string Directory { get; }
    public string Name => Path.GetFileName(Directory.TrimEnd('/'));
    public string Kind { get; }
    public ParityTolerance Tolerance { get; }
    public JsonArray Steps { get; }
    public string ConfigPath { get; }
    public string WeightsPath { get; }
    public string InputsPath { get; }
    public string ExpectedPath { get; }

    private ParityCase(string dir, JsonObject root)
    {
        Directory = dir;
        Kind = root["kind"]?.GetValue<string>() ?? throw new InvalidDataException($"{dir}/case.json has no 'kind'");
        var tol = root["tolerance"] as JsonObject ?? throw new InvalidDataException($"{dir}/case.json has no 'tolerance'");
        Tolerance = new ParityTolerance(tol["atol"]!.GetValue<double>(), tol["rtol"]!.GetValue<double>(), tol["mask_agreement"]?.GetValue<double>() ?? 1.0);
        Steps = root["steps"] as JsonArray ?? throw new InvalidDataException($"{dir}/case.json has no 'steps'");
        string File(string key, string def) => Path.Combine(dir, root[key]?.GetValue<string>() ?? def);
        ConfigPath = File("config", "model.yaml");
        WeightsPath = File("weights", "weights.safetensors");
        InputsPath = File("inputs", "inputs.safetensors");
        ExpectedPath = File("expected", "expected.safetensors");
    }

    public static ParityCase Load(string dir)
    {
        var path = Path.Combine(dir, "case.json");
        if (!System.IO.File.Exists(path)) throw new FileNotFoundException($"not a parity case: {path} is missing", path);
        var root = JsonNode.Parse(System.IO.File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path} is not a JSON object");
        return new ParityCase(dir, root);
    }

    /// <summary>Every case folder (one holding case.json) directly under root.</summary>
    public static IReadOnlyList<string> Discover(string root) =>
        System.IO.Directory.Exists(root)
            ? System.IO.Directory.GetDirectories(root).Where(d => System.IO.File.Exists(Path.Combine(d, "case.json"))).OrderBy(d => d, StringComparer.Ordinal).ToList()
            : [];

    public static Dictionary<string, Tensor> LoadTensors(string path)
    {
        var file = SafeTensors.Read(path);
        var dict = new Dictionary<string, Tensor>();
        foreach (var (k, r) in file.Tensors) dict[k] = r.ToTensor().DetachFromDisposeScope();
        return dict;
    }
}
