using System.Text.Json;
using TorchSam2.Checkpoints;

namespace TorchSam2.Pretrained;

/// <summary>One tensor of a manifest: its shape and PyTorch dtype name ("float32", ...).</summary>
public sealed record ManifestTensor(long[] Shape, string DType);

/// <summary>
/// What a checkpoint must hold: every key with its shape and dtype, nothing more. The shipped manifests
/// (configs/manifests, embedded in TorchSam2.dll) were written from the official files; a download is used only
/// when it matches.
/// </summary>
public sealed class CheckpointManifest
{
    /// <summary>The tensors by key.</summary>
    public IReadOnlyDictionary<string, ManifestTensor> Tensors { get; }

    /// <summary>Creates a manifest from keys, shapes and dtypes.</summary>
    public CheckpointManifest(IReadOnlyDictionary<string, ManifestTensor> tensors) => Tensors = tensors;

    /// <summary>Parses the JSON form: {"tensors": {"key": {"shape": [..], "dtype": "float32"}, ...}, ...}.</summary>
    public static CheckpointManifest Parse(string json)
    {
        using var doc = JsonDocument.Parse(json);
        if (!doc.RootElement.TryGetProperty("tensors", out var tensors) || tensors.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException("a checkpoint manifest needs a \"tensors\" object");
        var result = new Dictionary<string, ManifestTensor>(StringComparer.Ordinal);
        foreach (var p in tensors.EnumerateObject())
        {
            var shape = p.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            result[p.Name] = new ManifestTensor(shape, p.Value.GetProperty("dtype").GetString() ?? "");
        }
        return new CheckpointManifest(result);
    }

    /// <summary>The shipped manifest for a checkpoint name ("sam2.1_hiera_tiny", ...).</summary>
    public static CheckpointManifest LoadEmbedded(string name)
    {
        var asm = typeof(CheckpointManifest).Assembly;
        string logical = $"manifests/{name}.manifest.json";
        using var s = asm.GetManifestResourceStream(logical)
            ?? throw new FileNotFoundException($"no manifest '{logical}' is embedded in {asm.GetName().Name}");
        using var reader = new StreamReader(s);
        return Parse(reader.ReadToEnd());
    }

    /// <summary>The manifest of an open checkpoint (its header: keys, shapes, dtypes).</summary>
    public static CheckpointManifest FromCheckpoint(CheckpointReader reader) =>
        new(reader.Tensors.ToDictionary(kv => kv.Key, kv => new ManifestTensor((long[])kv.Value.Shape.Clone(), kv.Value.DType.TorchName()), StringComparer.Ordinal));

    /// <summary>
    /// How an open checkpoint differs from this manifest: missing keys, unexpected keys, wrong shapes or dtypes
    /// (at most <paramref name="max"/> lines, then a count). Empty when it matches.
    /// </summary>
    public IReadOnlyList<string> Differences(CheckpointReader reader, int max = 5)
    {
        var problems = new List<string>();
        foreach (var (key, want) in Tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (!reader.Tensors.TryGetValue(key, out var got)) problems.Add($"missing {key}");
            else if (!got.Shape.SequenceEqual(want.Shape))
                problems.Add($"{key} has shape [{string.Join(", ", got.Shape)}], expected [{string.Join(", ", want.Shape)}]");
            else if (got.DType.TorchName() != want.DType) problems.Add($"{key} is {got.DType.TorchName()}, expected {want.DType}");
        }
        foreach (var key in reader.Tensors.Keys.Where(k => !Tensors.ContainsKey(k)).OrderBy(k => k, StringComparer.Ordinal))
            problems.Add($"unexpected {UntrustedText.Escape(key, 120)}");
        if (problems.Count > max) return [.. problems.Take(max), $"and {problems.Count - max} more"];
        return problems;
    }

    /// <summary>The manifest as JSON (the shipped form).</summary>
    public string ToJson() => JsonSerializer.Serialize(new
    {
        tensors = Tensors.ToDictionary(kv => kv.Key, kv => new { shape = kv.Value.Shape, dtype = kv.Value.DType }),
    });
}
