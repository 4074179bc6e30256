using System.Diagnostics;
using TorchSam2.Configs;
using TorchSam2.Modeling;
using Xunit;
using static TorchSam2.Tests.Checkpoints.HostileCheckpoints;

namespace TorchSam2.Tests.Configs;

/// <summary>
/// Issue #14, configs: text made to overflow the stack or exhaust memory, unknown classes, and numbers that would
/// fail deep inside libtorch. Each ends in one Sam2ConfigException line naming the file and the YAML key.
/// </summary>
public class HostileConfigTests
{
    private const string Minimal = Sam2ConfigLoaderTests.Minimal;

    private static Sam2ConfigException RefusedFile(string yaml, out string path)
    {
        path = TestPaths.TempFile(".yaml");
        File.WriteAllText(path, yaml);
        string p = path;
        var e = Assert.Throws<Sam2ConfigException>(() => Sam2ConfigLoader.Load(p));
        Assert.StartsWith(path + ": ", e.Message);
        AssertOneLine(e);
        return e;
    }

    // ---- 2. nesting and size, refused before YamlDotNet -----------------------------------------

    [Theory]
    [InlineData(20_000)]  // a 40 KB file; converting it overflowed the stack
    [InlineData(100_000)] // YamlDotNet's own parser overflowed here
    public void DeepFlowNestingIsRefusedBeforeParsing(int depth)
    {
        string yaml = "model: " + new string('[', depth) + new string(']', depth) + "\n";
        var e = RefusedFile(yaml, out _);
        Assert.Contains("YAML line 1: nests deeper than 64 levels", e.Message);
    }

    [Fact]
    public void DeepBlockNestingIsRefusedBeforeParsing()
    {
        Assert.Contains("YAML line 2: nests deeper than 64", RefusedFile("model:\n" + string.Concat(Enumerable.Repeat("- ", 20_000)) + "x\n", out _).Message);
        string indented = string.Concat(Enumerable.Range(0, 100).Select(i => new string(' ', i) + "k:\n"));
        Assert.Contains("YAML line 65: nests deeper than 64", RefusedFile(indented, out _).Message);
        Assert.Contains("nests deeper than 64", RefusedFile(string.Concat(Enumerable.Repeat("? ", 1000)) + "x\n", out _).Message);
        // Two levels a line (a sequence holding a mapping): the scan counts one, conversion counts both.
        string mixed = "a:\n" + string.Concat(Enumerable.Range(1, 40).Select(i => new string(' ', i * 2) + "- k:\n"));
        Assert.Contains("nests deeper than 64", RefusedFile(mixed, out _).Message);
    }

    [Fact]
    public void AliasesThatStackDeepNodesAreRefusedWhileConverting()
    {
        // Each line nests 40 deep (under the limit); each alias puts the previous tree 40 deeper.
        string Nest(string inner) => new string('[', 40) + inner + new string(']', 40);
        string yaml = $"a: &a {Nest("1")}\nb: &b {Nest("*a")}\nc: &c {Nest("*b")}\n";
        var e = Assert.Throws<Sam2ConfigException>(() => YamlTree.Parse(yaml));
        Assert.Contains("nests deeper than 64 levels", e.Message);
        // An alias inside the node it names would make a cycle.
        Assert.Contains("an alias refers to a node that contains it", Assert.Throws<Sam2ConfigException>(() => YamlTree.Parse("a: &a [*a]\n")).Message);
        // "Billion laughs": 10^30 leaves if expanded; each node is converted once and shared.
        string lol = "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n" + string.Concat(Enumerable.Range(1, 30).Select(i =>
            $"l{i}: &l{i} [{string.Join(", ", Enumerable.Repeat($"*l{i - 1}", 10))}]\n"));
        var sw = Stopwatch.StartNew();
        var root = Assert.IsAssignableFrom<IReadOnlyDictionary<string, object?>>(YamlTree.Parse(lol));
        Assert.Same(root["l0"], ((List<object?>)root["l1"]!)[9]);
        Assert.True(sw.Elapsed.TotalSeconds < 2);
    }

    [Fact]
    public void TextThatOnlyLooksDeepIsAccepted()
    {
        string brackets = new string('[', 100);
        string yaml = $"""
            # a comment {brackets}
            quoted: '{brackets} it''s text'
            double: "{brackets} \" still text"
            plain: a{brackets}
            url: http://example.com/{brackets}
            block: |
              {brackets}
              - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - x
            after: [1, {"{"}a: [2, 3]{"}"}]
            multi: 'first
              {brackets} second'
            list:
              - a: 1
                b: [x, 'y]']
            """;
        var root = Assert.IsAssignableFrom<IReadOnlyDictionary<string, object?>>(YamlTree.Parse(yaml));
        Assert.StartsWith(brackets, (string)root["quoted"]!);
        Assert.StartsWith(brackets, (string)root["block"]!);
        Assert.Equal(new List<object?> { "x", "y]" }, Assert.IsAssignableFrom<IReadOnlyDictionary<string, object?>>(((List<object?>)root["list"]!)[0])["b"]);
    }

    [Fact]
    public void ConfigsAboveOneMiBAreRefusedWithoutReadingThemWhole()
    {
        string yaml = "# " + new string('x', 2 << 20) + "\nmodel: {}\n";
        Assert.Contains("larger than the 1,048,576 bytes allowed", RefusedFile(yaml, out _).Message);
        Assert.Contains("larger than the 1,048,576 allowed", Assert.Throws<Sam2ConfigException>(() => YamlTree.Parse(yaml)).Message);
        if (OperatingSystem.IsLinux())
            Assert.Contains("larger than", Assert.Throws<Sam2ConfigException>(() => Sam2ConfigLoader.Load("/dev/zero")).Message);
    }

    [Fact]
    public void LongDigitRunsResolveInLinearTime()
    {
        string digits = new string('1', 1 << 20) + "x";
        var sw = Stopwatch.StartNew();
        Assert.Equal(digits, YamlTree.ResolvePlain(digits));
        Assert.Equal(1.5e3, YamlTree.ResolvePlain("15.e2"));
        Assert.True(sw.Elapsed.TotalSeconds < 2, $"{sw.Elapsed.TotalSeconds:F1} s");
    }

    // ---- 8. targets and numbers --------------------------------------------------------------------

    [Fact]
    public void AnUnknownTopLevelTargetIsRefusedWithTheAllowedNames()
    {
        var e = RefusedFile(Minimal.Replace("sam2.modeling.sam2_base.SAM2Base", "os.system\u001b[2J"), out _);
        Assert.Contains("model._target_: unknown 'os.system\\x1b[2J'; allowed: sam2.modeling.sam2_base.SAM2Base, " +
                        "sam2.sam2_video_predictor.SAM2VideoPredictor, training.model.sam2.SAM2Train", e.Message);
        // Component classes are checked when the config is read, too (not first when the model is built).
        e = RefusedFile(Minimal.Replace("trunk: {embed_dim: 8,", "trunk: {_target_: my.Trunk, embed_dim: 8,"), out _);
        Assert.Contains("model.image_encoder.trunk._target_: unknown 'my.Trunk'; allowed: sam2.modeling.backbones.hieradet.Hiera", e.Message);
        // The plain Attention class is a valid memory-attention target.
        var c = Sam2ConfigLoader.Parse(Minimal.Replace("self_attention: {embedding_dim: 32", "self_attention: {_target_: sam2.modeling.sam.transformer.Attention, embedding_dim: 32"));
        Assert.Equal(RoPEAttentionConfig.AttentionTarget, c.MemoryAttention.Layer.SelfAttention.Target);
    }

    [Theory]
    [InlineData("embed_dim: 8", "embed_dim: 0", "model.image_encoder.trunk.embed_dim: must be at least 1, got 0")]
    [InlineData("embed_dim: 8", "embed_dim: -8", "model.image_encoder.trunk.embed_dim: must be at least 1, got -8")]
    [InlineData("embed_dim: 8", "embed_dim: 2000000000", "model.image_encoder.trunk.embed_dim: must be at most 16,384")]
    [InlineData("embed_dim: 8", "embed_dim: 8, num_heads: 3", "model.image_encoder.trunk.num_heads: stage 0 has 8 channels, which 3 heads do not divide")]
    [InlineData("embed_dim: 8", "embed_dim: 64, dim_mul: 16", "model.image_encoder.trunk.dim_mul: stage 3 would have 262144 channels")]
    [InlineData("embed_dim: 8", "embed_dim: 8, q_stride: [2]", "model.image_encoder.trunk.q_stride: must hold 2 integers, got 1")]
    [InlineData("embed_dim: 8", "embed_dim: 8, q_pool: 4", "model.image_encoder.trunk.q_pool: must be at most 3, got 4")]
    [InlineData("embed_dim: 8", "embed_dim: 8, drop_path_rate: .nan", "model.image_encoder.trunk.drop_path_rate: must be a finite number")]
    [InlineData("window_spec: [2, 2, 2, 2]", "window_spec: [2, 2, 2]", "model.image_encoder.trunk.window_spec: must hold 4 integers, got 3")]
    [InlineData("global_att_blocks: [3]", "global_att_blocks: [4]", "model.image_encoder.trunk.global_att_blocks[0]: must be at most 3, got 4")]
    [InlineData("position_encoding: {num_pos_feats: 32}", "position_encoding: {num_pos_feats: 31}", "model.image_encoder.neck.position_encoding.num_pos_feats: must be even")]
    [InlineData("d_model: 32\n      backbone", "d_model: 32\n      fpn_interp_model: cubic\n      backbone", "model.image_encoder.neck.fpn_interp_model: expected one of nearest, bilinear")]
    [InlineData("activation: relu", "activation: tanh", "model.memory_attention.layer.activation: expected one of relu, gelu, got 'tanh'")]
    [InlineData("dropout: 0.0", "dropout: 1.5", "model.memory_attention.layer.dropout: must be below 1, got 1.5")]
    [InlineData("self_attention: {embedding_dim: 32, num_heads: 1}", "self_attention: {embedding_dim: 32, num_heads: 16}",
                "model.memory_attention.layer.self_attention.num_heads: RoPE needs a head dimension divisible by 4")]
    [InlineData("self_attention: {embedding_dim: 32, num_heads: 1}", "self_attention: {embedding_dim: 32, num_heads: 1, rope_theta: -1}",
                "model.memory_attention.layer.self_attention.rope_theta: must be at least")]
    [InlineData("self_attention: {embedding_dim: 32, num_heads: 1}", "self_attention: {embedding_dim: 64, num_heads: 1}",
                "model.memory_attention.layer.self_attention.embedding_dim: 64 differs from d_model 32")]
    [InlineData("kv_in_dim: 8", "kv_in_dim: 0", "model.memory_attention.layer.cross_attention.kv_in_dim: must be at least 1, got 0")]
    [InlineData("mask_downsampler: {embed_dim: 32}", "mask_downsampler: {embed_dim: 32, stride: 1}", "model.memory_encoder.mask_downsampler.stride: must be at least 2, got 1")]
    [InlineData("mask_downsampler: {embed_dim: 32}", "mask_downsampler: {embed_dim: 32, total_stride: 12}", "model.memory_encoder.mask_downsampler.total_stride: 12 is not a power of stride 4")]
    [InlineData("fuser: {num_layers: 1", "fuser: {input_projection: true, num_layers: 1", "model.memory_encoder.fuser.input_projection: needs dim")]
    [InlineData("_target_: sam2.modeling.sam2_base.SAM2Base", "_target_: sam2.modeling.sam2_base.SAM2Base\n  image_size: 100000", "model.image_size: must be at most 4,096, got 100,000")]
    [InlineData("_target_: sam2.modeling.sam2_base.SAM2Base", "_target_: sam2.modeling.sam2_base.SAM2Base\n  image_size: 500", "model.image_size: 500 is not a multiple of backbone_stride 16")]
    [InlineData("_target_: sam2.modeling.sam2_base.SAM2Base", "_target_: sam2.modeling.sam2_base.SAM2Base\n  num_maskmem: 0", "model.num_maskmem: must be at least 1, got 0")]
    [InlineData("_target_: sam2.modeling.sam2_base.SAM2Base", "_target_: sam2.modeling.sam2_base.SAM2Base\n  sigmoid_scale_for_mem_enc: .inf", "model.sigmoid_scale_for_mem_enc: must be a finite number, got Infinity")]
    [InlineData("_target_: sam2.modeling.sam2_base.SAM2Base", "_target_: sam2.modeling.sam2_base.SAM2Base\n  fixed_no_obj_ptr: true", "model.fixed_no_obj_ptr: needs pred_obj_scores: true")]
    public void BadNumbersAreRefusedAtLoadNamingTheKey(string from, string to, string expected)
    {
        Assert.Contains(from, Minimal);
        var e = RefusedFile(Minimal.Replace(from, to), out _);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void EmbedDimZeroNeverReachesLibtorch()
    {
        // Was "from is out of bounds for float" from inside libtorch.
        string path = TestPaths.TempFile(".yaml");
        File.WriteAllText(path, Minimal.Replace("embed_dim: 8", "embed_dim: 0"));
        var e = Assert.Throws<Sam2ConfigException>(() => BuildSam.build_sam2(path).Dispose());
        Assert.Equal($"{path}: model.image_encoder.trunk.embed_dim: must be at least 1, got 0", e.Message);
    }

    [Fact]
    public void ComponentsThatDisagreeOrAModelTooLargeAreRefusedBeforeBuilding()
    {
        var c = Sam2ConfigLoader.Parse(Minimal.Replace("    in_dim: 32", "    in_dim: 16"));
        var e = Assert.Throws<Sam2ConfigException>(() => BuildSam.Construct(c).Dispose());
        Assert.Contains("memory_encoder.in_dim 16 != neck.d_model 32", e.Message);

        // Every number in range, 3.3 trillion parameters in all: refused from the sizes alone.
        string huge = Minimal
            .Replace("trunk: {embed_dim: 8, stages: [1, 1, 1, 1], global_att_blocks: [3], window_spec: [2, 2, 2, 2],",
                     "trunk: {embed_dim: 16384, dim_mul: 1, head_mul: 1, stages: [256, 256, 256, 256], global_att_blocks: [3], window_spec: [2, 2, 2, 2],")
            .Replace("[64, 32, 16, 8]", "[16384, 16384, 16384, 16384]");
        var big = Sam2ConfigLoader.Parse(huge);
        var m = MemoryProbe.Measure(() => BuildSam.Construct(big).Dispose());
        var error = Assert.IsType<Sam2ConfigException>(m.Error);
        Assert.Contains("parameters, more than the 1,000,000,000 TorchSam2 builds", error.Message);
        Assert.True(m.PeakGrowth < 200_000_000, m.ToString());
    }

    [Fact]
    public void TheParameterEstimateIsCloseForTheTinyModel()
    {
        var cfg = Sam2ConfigLoader.LoadBuiltIn("tiny");
        using var model = BuildSam.Construct(cfg);
        long actual = model.parameters().Sum(p => p.numel());
        double estimate = cfg.EstimateParameters();
        Assert.InRange(estimate / actual, 0.8, 1.25);
    }

    // ---- a path that does not exist is a missing file, not an unknown name --------------------------

    [Theory]
    [InlineData("/nonexistent/dir/my_config.yaml")]
    [InlineData("configs/missing")]
    [InlineData("my_config.yml")]
    [InlineData("sam2.1_hiera_t.yaml")] // a file name, even one that matches a built-in
    public void AMissingConfigPathIsReportedAsAMissingFile(string arg)
    {
        var e = Assert.Throws<FileNotFoundException>(() => BuildSam.LoadConfig(arg));
        Assert.Equal($"config file not found: {arg}", e.Message);
    }

    [Theory]
    [InlineData("tiny")]
    [InlineData("sam2.1_hiera_b+")]
    [InlineData("facebook/sam2.1-hiera-tiny")]
    public void BuiltInNamesStillLoad(string name) => Assert.NotNull(BuildSam.LoadConfig(name));

    [Fact]
    public void AnUnknownNameSaysWhatIsKnown()
    {
        var e = Assert.Throws<ArgumentException>(() => BuildSam.LoadConfig("huge"));
        Assert.Contains("unknown built-in config 'huge'", e.Message);
        Assert.Contains("or a path to a .yaml file", e.Message);
    }
}
