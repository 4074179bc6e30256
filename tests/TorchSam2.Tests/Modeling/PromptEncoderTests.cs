using System.Text.Json;
using TorchSam2.Modeling.Sam;
using TorchSharp;
using TorchSharp.Modules;
using TorchSam2.Checkpoints;
using static TorchSharp.torch;
using Xunit.Abstractions;

namespace TorchSam2.Tests.Modeling;

/// <summary>Shared helpers for the SAM prompt-encoder / mask-decoder parity tests (micro_modules case).</summary>
internal static class SamHeadsParity
{
    public const double Atol = 2e-3, Rtol = 2e-3;

    /// <summary>The micro_modules folder, or null when absent outside CI (the caller then returns early).</summary>
    public static string? MicroModulesDir()
    {
        string dir = Path.Combine(TestPaths.ParityDir, "micro_modules");
        if (Directory.Exists(dir)) return dir;
        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
            Assert.Fail($"parity folder {dir} is missing (CI=true)");
        return null;
    }

    /// <summary>All tensors of a safetensors file (optionally only keys with a prefix, stripped).</summary>
    public static Dictionary<string, Tensor> Load(string path, string? prefix = null) => ParityData.Load(path, prefix);

    public static void DisposeAll(Dictionary<string, Tensor> d) => ParityData.DisposeAll(d.Values);

    /// <summary>Loads the module's weights (strict) from the case's weights.safetensors under prefix.</summary>
    public static void LoadWeights(nn.Module module, string caseDir, string prefix)
    {
        var sd = Load(Path.Combine(caseDir, "weights.safetensors"), prefix);
        try { module.load_state_dict(sd); }
        finally { DisposeAll(sd); }
    }

    /// <summary>Asserts |a - e| ≤ atol + rtol·|e| elementwise; returns the max abs error.</summary>
    public static double AssertClose(string name, Tensor actual, Tensor expected, ITestOutputHelper? output = null) =>
        ParityData.AssertClose(name, actual, expected, Atol, Rtol, output);

    /// <summary>Micro config: hidden 64, image 256 → 16×16 embedding, mask_in_chans 16.</summary>
    public static PromptEncoder MicroPromptEncoder() =>
        new(embed_dim: 64, image_embedding_size: (16, 16), input_image_size: (256, 256), mask_in_chans: 16);

    /// <summary>Micro config with the case's decoder extra args (dynamic multimask via stability).</summary>
    public static MaskDecoder MicroMaskDecoder() => BuildDecoder(64);

    /// <summary>The decoder as SAM2Base._build_sam_heads builds it for SAM 2.1 configs.</summary>
    public static MaskDecoder BuildDecoder(long hidden) => new(
        transformer_dim: hidden,
        transformer: new TwoWayTransformer(depth: 2, embedding_dim: hidden, mlp_dim: 2048, num_heads: 8),
        num_multimask_outputs: 3,
        iou_head_depth: 3,
        iou_head_hidden_dim: 256,
        use_high_res_features: true,
        iou_prediction_use_sigmoid: true,
        pred_obj_scores: true,
        pred_obj_scores_mlp: true,
        use_multimask_token_for_obj_ptr: true,
        dynamic_multimask_via_stability: true,
        dynamic_multimask_stability_delta: 0.05,
        dynamic_multimask_stability_thresh: 0.98);

    /// <summary>Manifest entries (name → shape) under a prefix, prefix stripped.</summary>
    public static Dictionary<string, long[]> ManifestEntries(string manifestName, string prefix)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestPaths.ManifestDir, manifestName)));
        var result = new Dictionary<string, long[]>();
        foreach (var p in doc.RootElement.GetProperty("tensors").EnumerateObject())
            if (p.Name.StartsWith(prefix, StringComparison.Ordinal))
                result[p.Name[prefix.Length..]] = p.Value.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()).ToArray();
        return result;
    }

    public static void AssertMatchesManifest(nn.Module module, string manifestName, string prefix)
    {
        var expected = ManifestEntries(manifestName, prefix);
        Assert.NotEmpty(expected);
        var actual = module.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        var missing = expected.Keys.Except(actual.Keys).ToList();
        var extra = actual.Keys.Except(expected.Keys).ToList();
        Assert.True(missing.Count == 0 && extra.Count == 0, $"missing: {string.Join(", ", missing)}; extra: {string.Join(", ", extra)}");
        foreach (var (k, shape) in expected)
            Assert.True(shape.SequenceEqual(actual[k]), $"{k}: manifest [{string.Join(",", shape)}] vs model [{string.Join(",", actual[k])}]");
    }
}

public class PromptEncoderTests(ITestOutputHelper output)
{
    [Fact]
    public void MatchesMicroModulesParity()
    {
        var dir = SamHeadsParity.MicroModulesDir();
        if (dir is null) return;
        using var _ = inference_mode();
        using var pe = SamHeadsParity.MicroPromptEncoder();
        SamHeadsParity.LoadWeights(pe, dir, "sam_prompt_encoder.");
        pe.eval();
        var inputs = SamHeadsParity.Load(Path.Combine(dir, "inputs.safetensors"));
        var expected = SamHeadsParity.Load(Path.Combine(dir, "expected.safetensors"));
        try
        {
            var (sparse, dense) = pe.forward((inputs["pe.points"], inputs["pe.labels"]), null, inputs["pe.masks"]);
            using (sparse)
            using (dense)
            using (var densePe = pe.get_dense_pe())
            {
                SamHeadsParity.AssertClose("pe.sparse", sparse, expected["pe.sparse"], output);
                SamHeadsParity.AssertClose("pe.dense", dense, expected["pe.dense"], output);
                SamHeadsParity.AssertClose("pe.dense_pe", densePe, expected["pe.dense_pe"], output);
            }
        }
        finally
        {
            SamHeadsParity.DisposeAll(inputs);
            SamHeadsParity.DisposeAll(expected);
        }
    }

    [Fact]
    public void TinyKeysAndShapesMatchManifest()
    {
        using var pe = new PromptEncoder(embed_dim: 256, image_embedding_size: (64, 64), input_image_size: (1024, 1024), mask_in_chans: 16);
        SamHeadsParity.AssertMatchesManifest(pe, "sam2.1_hiera_tiny.manifest.json", "sam_prompt_encoder.");
    }

    [Fact]
    public void BoxesNoMaskAndGradients()
    {
        using var pe = SamHeadsParity.MicroPromptEncoder();
        using var scope = NewDisposeScope();
        var boxes = tensor(new float[] { 10, 20, 100, 200, 5, 5, 50, 60 }, [2, 4]);
        var coords = tensor(new float[] { 30, 40, 70, 80 }, [2, 1, 2]);
        var labels = tensor(new int[] { 1, 0 }, [2, 1]);
        var (sparse, dense) = pe.forward((coords, labels), boxes, null);
        // One point per prompt plus two box corners, no padding point.
        Assert.Equal(new long[] { 2, 3, 64 }, sparse.shape);
        Assert.Equal(new long[] { 2, 64, 16, 16 }, dense.shape);

        // Box corners carry the corner-type embeddings.
        var corners = pe.pe_layer.forward_with_coords((boxes + 0.5).reshape(-1, 2, 2), (256, 256));
        var want = corners + cat([pe.point_embeddings[2].weight, pe.point_embeddings[3].weight], 0).unsqueeze(0);
        Assert.True(allclose(sparse.slice(1, 1, 3, 1), want, 1e-5, 1e-5));

        (sparse.sum() + dense.sum()).backward();
        Assert.NotNull(pe.point_embeddings[1].weight.grad);
        Assert.NotNull(pe.point_embeddings[3].weight.grad);
        Assert.NotNull(pe.no_mask_embed.weight.grad);
    }
}
