using TorchSharp;
using static TorchSharp.torch;

namespace TorchSam2.Checkpoints;

/// <summary>
/// Loading a state dict into a TorchSharp module with every key and shape checked before any value is
/// written: TorchSharp's own load_state_dict checks no shapes (a mis-shaped tensor is broadcast into the
/// parameter) and names no keys.
/// </summary>
public static class StateDictLoading
{
    /// <summary>
    /// Loads from an open checkpoint: every key and shape is checked before any data is read, then one tensor
    /// at a time, straight into the parameter's memory when the dtype matches on the CPU (no copy), otherwise
    /// through one temporary that copy_ converts (F16/BF16 checkpoints into fp32 models, or onto CUDA).
    /// The checkpoint never sits in managed memory.
    /// </summary>
    public static LoadStateDictResult load_state_dict(this nn.Module module, CheckpointReader checkpoint, bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(checkpoint);
        var own = module.state_dict();
        var stored = checkpoint.Tensors;
        var result = Check(own, stored.Keys, k => stored[k].Shape, strict, checkpoint.Path);
        using (no_grad())
        {
            foreach (var (k, t) in own)
            {
                if (!stored.TryGetValue(k, out var src)) continue;
                if (src.DType == t.dtype && t.device_type == DeviceType.CPU && t.is_contiguous())
                    checkpoint.ReadInto(k, t);
                else
                {
                    using var tmp = checkpoint.ReadTensor(k);
                    t.copy_(tmp);
                }
            }
        }
        return result;
    }

    /// <summary>
    /// Copies values into the module's tensors (converting dtype and device). Shape mismatches always fail and
    /// name the key; with <paramref name="strict"/>, missing and unexpected keys too. Nothing is written unless
    /// every check passes.
    /// </summary>
    public static LoadStateDictResult load_state_dict_checked(this nn.Module module, IReadOnlyDictionary<string, Tensor> stateDict, bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(stateDict);
        var own = module.state_dict();
        var result = Check(own, stateDict.Keys, k => stateDict[k].shape, strict, null);
        using (no_grad())
        {
            foreach (var (k, t) in own)
                if (stateDict.TryGetValue(k, out var src)) t.copy_(src);
        }
        return result;
    }

    private static LoadStateDictResult Check(IDictionary<string, Tensor> own, IEnumerable<string> keys,
                                             Func<string, long[]> shapeOf, bool strict, string? path)
    {
        var keyList = keys.ToList();
        var given = keyList.ToHashSet();
        var missing = own.Keys.Where(k => !given.Contains(k)).ToList();
        var unexpected = keyList.Where(k => !own.ContainsKey(k)).ToList();
        var mismatched = new List<string>();
        foreach (var (k, t) in own)
            if (given.Contains(k) && shapeOf(k) is var shape && !shape.SequenceEqual(t.shape))
                mismatched.Add($"{k}: checkpoint [{string.Join(", ", shape)}] vs model [{string.Join(", ", t.shape)}]");
        var result = new LoadStateDictResult(missing, unexpected, mismatched);
        if (mismatched.Count > 0 || (strict && (missing.Count > 0 || unexpected.Count > 0)))
            throw new StateDictException(result, path);
        return result;
    }
}

/// <summary>What loading found: keys missing from the checkpoint, keys it had that the model lacks, and shape mismatches.</summary>
public sealed record LoadStateDictResult(IReadOnlyList<string> Missing, IReadOnlyList<string> Unexpected, IReadOnlyList<string> Mismatched)
{
    public bool IsExact => Missing.Count == 0 && Unexpected.Count == 0 && Mismatched.Count == 0;

    /// <summary>One line: up to 20 keys of each kind (keys come from the file, so they are escaped and cut).</summary>
    public override string ToString()
    {
        static string List(IReadOnlyList<string> xs, string sep) =>
            string.Join(sep, xs.Take(20).Select(x => UntrustedText.Escape(x))) + (xs.Count > 20 ? sep + "..." : "");
        var parts = new List<string>();
        if (Missing.Count > 0) parts.Add($"missing keys ({Missing.Count}): {List(Missing, ", ")}");
        if (Unexpected.Count > 0) parts.Add($"unexpected keys ({Unexpected.Count}): {List(Unexpected, ", ")}");
        if (Mismatched.Count > 0) parts.Add($"shape mismatches ({Mismatched.Count}): {List(Mismatched, "; ")}");
        return parts.Count == 0 ? "all keys matched" : string.Join("; ", parts);
    }
}

/// <summary>A state dict that does not fit the model; the one-line message names the file (when there is one) and every offending key.</summary>
public sealed class StateDictException(LoadStateDictResult result, string? path = null)
    : Exception((path is null ? "" : UntrustedText.Escape(path, int.MaxValue) + ": ") + "state dict does not match the model: " + result)
{
    public LoadStateDictResult Result { get; } = result;

    /// <summary>The checkpoint file, when the state dict came from one.</summary>
    public string? Path { get; } = path;
}
