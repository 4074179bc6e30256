using System.Text.Json;
using TorchSam2.Modeling;
using TorchSam2.Modeling.Sam;
using TorchSharp;
using TorchSharp.Modules;
using TorchSam2.Checkpoints;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace TorchSam2.Tests.Modeling;

/// <summary>Shared access to the micro_modules parity case and the official manifests for the memory modules' tests.</summary>
internal static class MemoryParityData
{
    public static string CaseDir => Path.Combine(TestPaths.ParityDir, "micro_modules");

    /// <summary>False (test returns early) when the parity data is absent outside CI; fails under CI=true.</summary>
    public static bool Available(string path) => ParityData.Require(path);

    /// <summary>Tensors of a safetensors file (optionally only keys under prefix, with the prefix stripped), as fp32 CPU tensors.</summary>
    public static Dictionary<string, Tensor> Load(string file, string? prefix = null) => ParityData.Load(Path.Combine(CaseDir, file), prefix);

    public static (double atol, double rtol) Tolerance()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(CaseDir, "case.json")));
        var tol = doc.RootElement.GetProperty("tolerance");
        return (tol.GetProperty("atol").GetDouble(), tol.GetProperty("rtol").GetDouble());
    }

    /// <summary>Asserts |a − e| ≤ atol + rtol·|e| elementwise and returns the max abs error.</summary>
    public static double AssertClose(Tensor actual, Tensor expected, string name, ITestOutputHelper? output = null)
    {
        var (atol, rtol) = Tolerance();
        return ParityData.AssertClose(name, actual, expected, atol, rtol, output);
    }

    /// <summary>(name → shape) of the manifest tensors under prefix, prefix stripped.</summary>
    public static Dictionary<string, long[]> Manifest(string model, string prefix)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestPaths.ManifestDir, $"sam2.1_hiera_{model}.manifest.json")));
        var result = new Dictionary<string, long[]>();
        foreach (var p in doc.RootElement.GetProperty("tensors").EnumerateObject())
            if (p.Name.StartsWith(prefix))
                result[p.Name[prefix.Length..]] = p.Value.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()).ToArray();
        return result;
    }

    public static void AssertMatchesManifest(nn.Module module, Dictionary<string, long[]> manifest)
    {
        var own = module.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Empty(manifest.Keys.Except(own.Keys));
        Assert.Empty(own.Keys.Except(manifest.Keys));
        foreach (var (k, shape) in manifest) Assert.True(shape.SequenceEqual(own[k]), $"{k}: manifest [{string.Join(", ", shape)}] vs model [{string.Join(", ", own[k])}]");
    }

    public static void DisposeAll(Dictionary<string, Tensor> d) => ParityData.DisposeAll(d.Values);
}

public class MemoryAttentionTests(ITestOutputHelper output)
{
    /// <summary>The memory attention of a SAM 2 config (layer = self RoPE attention + cross RoPE attention to kv_in_dim memories).</summary>
    internal static MemoryAttention Build(long d_model, long dim_feedforward, long kv_in_dim, long[] feat_sizes, int num_layers) =>
        new(d_model, pos_enc_at_input: true, num_layers: num_layers, layer: () => new MemoryAttentionLayer(
            activation: "relu",
            cross_attention: new RoPEAttention(d_model, 1, downsample_rate: 1, dropout: 0.1, kv_in_dim: kv_in_dim,
                rope_theta: 10000.0, rope_k_repeat: true, feat_sizes: feat_sizes),
            d_model: d_model, dim_feedforward: dim_feedforward, dropout: 0.1,
            pos_enc_at_attn: false, pos_enc_at_cross_attn_keys: true, pos_enc_at_cross_attn_queries: false,
            self_attention: new RoPEAttention(d_model, 1, downsample_rate: 1, dropout: 0.1, rope_theta: 10000.0, feat_sizes: feat_sizes)));

    [Fact]
    public void MatchesReferenceOutput()
    {
        if (!MemoryParityData.Available(MemoryParityData.CaseDir)) return;
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        using var model = Build(64, 128, 16, [16, 16], 2);
        var weights = MemoryParityData.Load("weights.safetensors", "memory_attention.");
        model.load_state_dict(weights);
        model.eval();
        var inputs = MemoryParityData.Load("inputs.safetensors", "ma.");
        var expected = MemoryParityData.Load("expected.safetensors", "ma.");

        // The reference forward takes (curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens).
        using var out_ = model.forward(inputs["curr"], inputs["memory"], inputs["curr_pos"], inputs["memory_pos"], num_obj_ptr_tokens: 16);
        MemoryParityData.AssertClose(out_, expected["out"], "ma.out", output);
        foreach (var d in new[] { weights, inputs, expected }) MemoryParityData.DisposeAll(d);
    }

    [Fact]
    public void TinyConfigMatchesManifest()
    {
        if (!MemoryParityData.Available(TestPaths.ManifestDir)) return;
        using var model = Build(256, 2048, 64, [64, 64], 4);
        MemoryParityData.AssertMatchesManifest(model, MemoryParityData.Manifest("tiny", "memory_attention."));
    }

    [Fact]
    public void GradientsReachEveryParameter()
    {
        using var model = Build(16, 32, 8, [2, 2], 1);
        model.eval();
        using var scope = NewDisposeScope();
        var curr = randn([4, 2, 16]);
        var pos = randn([4, 2, 16]);
        var mem = randn([10, 2, 8]);
        var memPos = randn([10, 2, 8]);
        var loss = model.forward(curr, mem, pos, memPos, num_obj_ptr_tokens: 2).pow(2).sum();
        loss.backward();
        foreach (var (name, p) in model.named_parameters())
            Assert.True(p.grad is not null, $"no gradient for {name}");
    }
}
