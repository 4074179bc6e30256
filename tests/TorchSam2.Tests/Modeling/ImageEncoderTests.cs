using System.Diagnostics;
using System.Text.Json;
using TorchSam2.Modeling;
using TorchSam2.Modeling.Backbones;
using TorchSharp;
using TorchSharp.Modules;
using TorchSam2.Checkpoints;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace TorchSam2.Tests.Modeling;

[Collection(NativeMemory.Collection)]
public sealed class ImageEncoderTests(ITestOutputHelper output)
{
    private const double Atol = 2e-3, Rtol = 2e-3;

    private const string Micro = "micro_modules", TinyFull = "tiny_full_image";

    private static string CaseDir(string name) => Path.Combine(TestPaths.ParityDir, name);

    /// <summary>False (test returns) when the parity data is absent outside CI; fails under CI=true.</summary>
    private static bool HaveParityData(string caseName = Micro) => ParityData.Require(Path.Combine(CaseDir(caseName), "case.json"));

    /// <summary>Tensors of one case file whose names start with prefix (stripped), floats as fp32.</summary>
    private static Dictionary<string, Tensor> Load(string file, string prefix = "", string caseName = Micro) =>
        ParityData.Load(Path.Combine(CaseDir(caseName), file), prefix);

    private static void DisposeAll(IEnumerable<Tensor> ts) => ParityData.DisposeAll(ts);

    private void AssertClose(string name, Tensor expected, Tensor actual) => ParityData.AssertClose(name, actual, expected, Atol, Rtol, output);

    /// <summary>The micro_modules model.yaml trunk: embed_dim 16, stages [1,2,3,2], global blocks [4,5], bkg 7×7.</summary>
    private static Hiera MicroTrunk() => new(embed_dim: 16, num_heads: 1, stages: [1, 2, 3, 2], global_att_blocks: [4, 5],
        window_pos_embed_bkg_spatial_size: [7, 7]);

    private static FpnNeck MicroNeck() => new(new PositionEmbeddingSine(64), d_model: 64, backbone_channel_list: [128, 64, 32, 16],
        fpn_interp_model: "nearest", fpn_top_down_levels: [2, 3]);

    private static Hiera TinyTrunk() => new(embed_dim: 96, num_heads: 1, stages: [1, 2, 7, 2], global_att_blocks: [5, 7, 9],
        window_pos_embed_bkg_spatial_size: [7, 7]);

    private static FpnNeck TinyNeck() => new(new PositionEmbeddingSine(256), d_model: 256, backbone_channel_list: [768, 384, 192, 96],
        fpn_interp_model: "nearest", fpn_top_down_levels: [2, 3]);

    [Fact]
    public void Trunk_MatchesReference()
    {
        if (!HaveParityData()) return;
        using var _ = inference_mode();
        using var trunk = MicroTrunk();
        var w = Load("weights.safetensors", "image_encoder.trunk.");
        trunk.load_state_dict(w);
        trunk.eval();
        var inputs = Load("inputs.safetensors");
        var expected = Load("expected.safetensors");
        var outs = trunk.forward(inputs["trunk.x"]);
        Assert.Equal(4, outs.Count);
        Assert.Equal(new long[] { 128, 64, 32, 16 }, trunk.channel_list);
        for (int i = 0; i < 4; i++) AssertClose($"trunk.out.{i}", expected[$"trunk.out.{i}"], outs[i]);
        DisposeAll(outs);
        DisposeAll(w.Values);
        DisposeAll(inputs.Values);
        DisposeAll(expected.Values);
    }

    [Fact]
    public void Neck_MatchesReference()
    {
        if (!HaveParityData()) return;
        using var _ = inference_mode();
        using var neck = MicroNeck();
        var w = Load("weights.safetensors", "image_encoder.neck.");
        neck.load_state_dict(w);
        neck.eval();
        var expected = Load("expected.safetensors");
        var xs = Enumerable.Range(0, 4).Select(i => expected[$"trunk.out.{i}"]).ToList();
        var (outs, pos) = neck.forward(xs);
        for (int i = 0; i < 4; i++)
        {
            AssertClose($"neck.out.{i}", expected[$"neck.out.{i}"], outs[i]);
            AssertClose($"neck.pos.{i}", expected[$"neck.pos.{i}"], pos[i]);
        }
        DisposeAll(outs);
        DisposeAll(pos);
        DisposeAll(w.Values);
        DisposeAll(expected.Values);
    }

    [Fact]
    public void ImageEncoder_WithScalp_MatchesReference()
    {
        if (!HaveParityData()) return;
        using var _ = inference_mode();
        using var enc = new ImageEncoder(MicroTrunk(), MicroNeck(), scalp: 1);
        var w = Load("weights.safetensors", "image_encoder.");
        enc.load_state_dict(w);
        enc.eval();
        var inputs = Load("inputs.safetensors");
        var expected = Load("expected.safetensors");
        long live0 = NativeMemory.Live();
        using (var o = enc.forward(inputs["trunk.x"]))
        {
            Assert.Equal(3, o.backbone_fpn.Count);
            Assert.Equal(3, o.vision_pos_enc.Count);
            for (int i = 0; i < 3; i++)
            {
                AssertClose($"backbone_fpn.{i}", expected[$"neck.out.{i}"], o.backbone_fpn[i]);
                AssertClose($"vision_pos_enc.{i}", expected[$"neck.pos.{i}"], o.vision_pos_enc[i]);
            }
            AssertClose("vision_features", expected["neck.out.2"], o.vision_features);
        }
        // Nothing but the position-encoding cache may outlive the call.
        using (var o = enc.forward(inputs["trunk.x"])) { }
        long leaked = NativeMemory.Live() - live0;
        Assert.True(leaked <= 4, $"leaked {leaked} tensors");
        DisposeAll(w.Values);
        DisposeAll(inputs.Values);
        DisposeAll(expected.Values);
    }

    [Fact]
    public void ImageEncoder_RejectsChannelMismatch()
    {
        using var trunk = MicroTrunk();
        using var neck = TinyNeck();
        Assert.Throws<ArgumentException>(() => new ImageEncoder(trunk, neck));
    }

    [Fact]
    public void WindowPartition_RoundTripsWithPadding()
    {
        using var scope = NewDisposeScope();
        var x = randn([2, 10, 13, 3]);
        var (win, padHw) = BackboneUtils.window_partition(x, 4);
        Assert.Equal((12L, 16L), padHw);
        Assert.Equal(new long[] { 2 * 3 * 4, 4, 4, 3 }, win.shape);
        var back = BackboneUtils.window_unpartition(win, 4, padHw, (10, 13));
        Assert.True(allclose(back, x));
    }

    [Fact]
    public void Hiera_DefaultConfigStructure()
    {
        using var h = new Hiera();
        Assert.Equal(24, h.blocks.Count);
        Assert.Equal(new[] { 1, 4, 20, 23 }, h.stage_ends);
        Assert.Equal(new[] { 2, 5, 21 }, h.q_pool_blocks);
        Assert.Equal(new long[] { 768, 384, 192, 96 }, h.channel_list);
        Assert.Equal(0, h.blocks[12].window_size);
        Assert.Equal(0, h.blocks[20].window_size);
        Assert.Equal(14, h.blocks[21].window_size);   // lags a block: still stage 3's window
        Assert.Equal(7, h.blocks[22].window_size);
        Assert.Equal(new long[] { 2, 2 }, h.blocks[21].q_stride);
    }

    [Fact]
    public void TinyConfig_StateDictMatchesManifest()
    {
        string path = Path.Combine(TestPaths.ManifestDir, "sam2.1_hiera_tiny.manifest.json");
        if (!File.Exists(path))
        {
            if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
                Assert.Fail($"manifest missing at {path}");
            return;
        }
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var manifest = new Dictionary<string, long[]>();
        foreach (var p in doc.RootElement.GetProperty("tensors").EnumerateObject())
            if (p.Name.StartsWith("image_encoder.", StringComparison.Ordinal))
                manifest[p.Name["image_encoder.".Length..]] = p.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();

        using var enc = new ImageEncoder(TinyTrunk(), TinyNeck(), scalp: 1);
        var sd = enc.state_dict();
        Assert.Equal(manifest.Keys.OrderBy(k => k, StringComparer.Ordinal), sd.Keys.OrderBy(k => k, StringComparer.Ordinal));
        foreach (var (k, t) in sd) Assert.True(manifest[k].SequenceEqual(t.shape), $"{k}: [{string.Join(",", t.shape)}] vs [{string.Join(",", manifest[k])}]");
        output.WriteLine($"{sd.Count} image_encoder tensors match the tiny manifest");
    }

    /// <summary>The real sam2.1_hiera_t encoder at 1024×1024 on the case's preprocessed image.</summary>
    [Fact]
    public void TinyFullImage_Backbone_MatchesReference()
    {
        if (!HaveParityData(TinyFull)) return;
        using var _ = inference_mode();
        using var enc = new ImageEncoder(TinyTrunk(), TinyNeck(), scalp: 1);
        var w = Load("weights.safetensors", "image_encoder.", TinyFull);
        enc.load_state_dict(w);
        enc.eval();
        var expected = Load("expected.safetensors", "", TinyFull);
        var sw = Stopwatch.StartNew();
        using (var o = enc.forward(expected["preprocessed"]))
        {
            output.WriteLine($"tiny image encoder 1024x1024 (first call): {sw.Elapsed.TotalMilliseconds:F0} ms");
            AssertClose("backbone.vision_features", expected["backbone.vision_features"], o.vision_features);
            AssertClose("backbone.fpn.2", expected["backbone.fpn.2"], o.backbone_fpn[2]);
            AssertClose("backbone.pos.2", expected["backbone.pos.2"], o.vision_pos_enc[2]);
        }
        DisposeAll(w.Values);
        DisposeAll(expected.Values);
    }

    /// <summary>Times the tiny trunk at 1024×1024; runs only with TORCHSAM2_BENCH=1.</summary>
    [Fact]
    public void TinyTrunk_1024_Timing()
    {
        if (Environment.GetEnvironmentVariable("TORCHSAM2_BENCH") != "1") return;
        using var _ = inference_mode();
        using var trunk = TinyTrunk();
        trunk.eval();
        using var x = randn([1, 3, 1024, 1024]);
        DisposeAll(trunk.forward(x)); // warm-up
        var times = new List<double>();
        for (int r = 0; r < 3; r++)
        {
            var sw = Stopwatch.StartNew();
            var outs = trunk.forward(x);
            sw.Stop();
            times.Add(sw.Elapsed.TotalMilliseconds);
            DisposeAll(outs);
        }
        output.WriteLine($"tiny trunk 1024x1024 on {get_num_threads()} threads: {string.Join(", ", times.Select(t => $"{t:F0} ms"))}");
    }
}
