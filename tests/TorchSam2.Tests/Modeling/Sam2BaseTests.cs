using System.Text.Json;
using TorchSam2.Configs;
using TorchSam2.Modeling;
using TorchSharp;
using TorchSharp.Modules;
using TorchSam2.Checkpoints;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace TorchSam2.Tests.Modeling;

public sealed class Sam2BaseTests(ITestOutputHelper output)
{
    private const double Atol = 2e-3, Rtol = 2e-3;

    private static string CaseDir(string name) => Path.Combine(TestPaths.ParityDir, name);

    private static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>False (test returns) when the file is absent outside CI; fails under CI=true.</summary>
    private static bool Have(string path) => ParityData.Require(path);

    private static Dictionary<string, Tensor> Load(string path, string prefix = "") => ParityData.Load(path, prefix);

    private static void DisposeAll(IEnumerable<Tensor> ts) => ParityData.DisposeAll(ts);

    private void AssertClose(string name, Tensor expected, Tensor actual) => ParityData.AssertClose(name, actual, expected, Atol, Rtol, output);

    // ---- construction + weights ---------------------------------------------------------------

    [Fact]
    public void MicroModel_LoadsWeightsStrictly()
    {
        string dir = CaseDir("micro_modules");
        if (!Have(Path.Combine(dir, "model.yaml"))) return;
        var cfg = Sam2ConfigLoader.Load(Path.Combine(dir, "model.yaml"));
        // strict load: a StateDictException would list every missing / unexpected / mis-shaped key
        using var model = BuildSam.build_sam2(cfg, Path.Combine(dir, "weights.safetensors"));
        Assert.False(model.training);
        Assert.Equal(64, model.hidden_dim);
        Assert.Equal(16, model.mem_dim);
        Assert.Equal(16, model.sam_image_embedding_size);
        Assert.NotNull(model.mask_downsample);
        Assert.NotNull(model.no_obj_ptr);
        Assert.NotNull(model.no_obj_embed_spatial);
        Assert.IsType<MLP>(model.obj_ptr_proj);
        Assert.IsType<Linear>(model.obj_ptr_tpos_proj);
        // build_sam2 post-processing turns dynamic multimask on
        Assert.True(model.sam_mask_decoder.dynamic_multimask_via_stability);

        // the loaded values are the checkpoint's
        var w = Load(Path.Combine(dir, "weights.safetensors"));
        try
        {
            var sd = model.state_dict();
            Assert.Equal(w.Count, sd.Count);
            foreach (var key in new[] { "maskmem_tpos_enc", "no_mem_embed", "obj_ptr_tpos_proj.weight", "image_encoder.trunk.pos_embed" })
            {
                using var d = (sd[key] - w[key]).abs().max();
                Assert.Equal(0f, d.ToSingle());
            }
        }
        finally
        {
            DisposeAll(w.Values);
        }
    }

    [Fact]
    public void RopeFeatSizes_FollowImageSize()
    {
        string dir = CaseDir("micro_modules");
        if (!Have(Path.Combine(dir, "model.yaml"))) return;
        var cfg = Sam2ConfigLoader.Load(Path.Combine(dir, "model.yaml")).WithImageSize(512);
        using var model = BuildSam.Construct(cfg);
        Assert.Equal(512, model.image_size);
        var rope = Assert.IsType<TorchSam2.Modeling.Sam.RoPEAttention>(model.memory_attention.layers[0].self_attn);
        Assert.Equal(new long[] { 32, 32 }, rope.feat_sizes);
        Assert.Equal((128L, 128L), model.sam_prompt_encoder.mask_input_size);
    }

    // ---- manifests of the four official checkpoints (issue 3) ---------------------------------

    [Theory]
    [InlineData("sam2.1_hiera_tiny")]
    [InlineData("sam2.1_hiera_small")]
    [InlineData("sam2.1_hiera_base_plus")]
    [InlineData("sam2.1_hiera_large")]
    public void OfficialConfig_MatchesManifest(string name)
    {
        string manifestPath = Path.Combine(TestPaths.ManifestDir, name + ".manifest.json");
        if (!Have(manifestPath)) return;
        using var doc = JsonDocument.Parse(File.ReadAllText(manifestPath));
        string configName = doc.RootElement.GetProperty("config").GetString()!;
        string configPath = Path.Combine(TestPaths.RepoRoot, "configs", "sam2.1", configName);
        Assert.True(File.Exists(configPath), $"shipped config missing: {configPath}");
        var expected = new Dictionary<string, (long[] shape, string dtype)>();
        foreach (var t in doc.RootElement.GetProperty("tensors").EnumerateObject())
            expected[t.Name] = (t.Value.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()).ToArray(),
                t.Value.GetProperty("dtype").GetString()!);

        using var _ = no_grad();
        using var model = BuildSam.build_sam2(Sam2ConfigLoader.Load(configPath));
        var sd = model.state_dict();
        var missing = expected.Keys.Except(sd.Keys).ToList();
        var extra = sd.Keys.Except(expected.Keys).ToList();
        Assert.True(missing.Count == 0 && extra.Count == 0,
            $"missing ({missing.Count}): {string.Join(", ", missing.Take(20))}; unexpected ({extra.Count}): {string.Join(", ", extra.Take(20))}");
        var bad = new List<string>();
        foreach (var (key, t) in sd)
        {
            var (shape, dtype) = expected[key];
            if (!t.shape.SequenceEqual(shape) || t.dtype.TorchName().Replace("torch.", "") != dtype)
                bad.Add($"{key}: model [{string.Join(",", t.shape)}] {t.dtype.TorchName()} vs manifest [{string.Join(",", shape)}] {dtype}");
        }
        Assert.True(bad.Count == 0, string.Join("\n", bad.Take(20)));
        // the manifest's num_params counts every state-dict element (parameters and persistent buffers)
        long numElements = sd.Values.Sum(t => t.numel());
        Assert.Equal(doc.RootElement.GetProperty("num_params").GetInt64(), numElements);
        output.WriteLine($"{name}: {sd.Count} tensors, {numElements} elements match the manifest");
    }

    // ---- image features against the reference ------------------------------------------------

    [Fact]
    public void ForwardImage_And_PrepareBackboneFeatures_MatchReference()
    {
        string dir = CaseDir("micro_image");
        if (!Have(Path.Combine(dir, "expected.safetensors"))) return;
        using var _ = inference_mode();
        using var model = BuildSam.build_sam2(Sam2ConfigLoader.Load(Path.Combine(dir, "model.yaml")), Path.Combine(dir, "weights.safetensors"));
        var exp = Load(Path.Combine(dir, "expected.safetensors"));
        try
        {
            using var scope = NewDisposeScope();
            using var backbone_out = model.forward_image(exp["preprocessed"]);
            AssertClose("backbone.vision_features", exp["backbone.vision_features"], backbone_out.vision_features);
            for (int i = 0; i < 3; i++)
            {
                AssertClose($"backbone.fpn.{i}", exp[$"backbone.fpn.{i}"], backbone_out.backbone_fpn[i]);
                AssertClose($"backbone.pos.{i}", exp[$"backbone.pos.{i}"], backbone_out.vision_pos_enc[i]);
            }

            // as SAM2ImagePredictor.set_image: add no_mem_embed to the top level, then back to B×C×H×W
            using var prepared = model._prepare_backbone_features(backbone_out);
            Assert.Equal(3, prepared.vision_feats.Count);
            Assert.Equal([(64L, 64L), (32L, 32L), (16L, 16L)], prepared.feat_sizes);
            var top = prepared.vision_feats[^1] + model.no_mem_embed;
            var feats = new List<Tensor>();
            for (int i = 0; i < 3; i++)
            {
                var f = i == 2 ? top : prepared.vision_feats[i];
                var (h, w) = prepared.feat_sizes[i];
                feats.Add(f.permute(1, 2, 0).view(1, -1, h, w));
            }
            AssertClose("image_embed", exp["image_embed"], feats[2]);
            AssertClose("high_res_feats.0", exp["high_res_feats.0"], feats[0]);
            AssertClose("high_res_feats.1", exp["high_res_feats.1"], feats[1]);
        }
        finally
        {
            DisposeAll(exp.Values);
        }
    }

    // ---- tracking smoke test ---------------------------------------------------------------

    [Fact]
    public void TrackStep_InitFrameThenTrackedFrames_ProducesMemories()
    {
        string dir = CaseDir("micro_modules");
        if (!Have(Path.Combine(dir, "model.yaml"))) return;
        using var _ = inference_mode();
        var cfg = BuildSam.VideoPredictorConfig(Sam2ConfigLoader.Load(Path.Combine(dir, "model.yaml")));
        using var model = BuildSam.build_sam2_video_predictor(cfg, Path.Combine(dir, "weights.safetensors"));
        Assert.True(model.binarize_mask_from_pts_for_mem_enc);
        var output_dict = new OutputDict();
        try
        {
            using var scope = NewDisposeScope();
            manual_seed(0);
            const int numFrames = 4;
            for (int f = 0; f < numFrames; f++)
            {
                using var img = randn([1, 3, 256, 256]);
                using var backbone_out = model.forward_image(img);
                using var prep = model._prepare_backbone_features(backbone_out);
                bool init = f == 0;
                using var points = init ? new PointInputs(tensor(new float[] { 100, 120 }, [1, 1, 2]), tensor(new[] { 1 }, [1, 1])) : null;
                var outp = model.track_step(f, init, prep.vision_feats, prep.vision_pos_embeds, prep.feat_sizes, points, null, output_dict, numFrames);
                outp.DetachFromDisposeScope();
                outp.StoreMemoryAsBFloat16();
                (init ? output_dict.cond_frame_outputs : output_dict.non_cond_frame_outputs)[f] = outp;

                Assert.Equal(new long[] { 1, 1, 64, 64 }, outp.pred_masks!.shape);
                Assert.Equal(new long[] { 1, 1, 256, 256 }, outp.pred_masks_high_res!.shape);
                Assert.Equal(new long[] { 1, 64 }, outp.obj_ptr!.shape);
                Assert.Equal(new long[] { 1, 1 }, outp.object_score_logits!.shape);
                Assert.Equal(new long[] { 1, 16, 16, 16 }, outp.maskmem_features!.shape);
                Assert.Equal(ScalarType.BFloat16, outp.maskmem_features.dtype);
                Assert.Single(outp.maskmem_pos_enc!);
                Assert.Equal(init, outp.point_inputs is not null);
                using var finite = outp.pred_masks.isfinite().all();
                Assert.True(finite.ToBoolean(), $"frame {f}: non-finite mask logits");
            }
            // a mask prompt goes straight to the output (use_mask_input_as_output_without_sam)
            {
                using var img = randn([1, 3, 256, 256]);
                using var backbone_out = model.forward_image(img);
                using var prep = model._prepare_backbone_features(backbone_out);
                using var mask = zeros([1, 1, 256, 256]);
                mask[.., .., 50..100, 60..120] = ones([1]);
                using var outp = model.track_step(0, true, prep.vision_feats, prep.vision_pos_embeds, prep.feat_sizes, null, mask, new OutputDict(), 1);
                Assert.Equal(10f, outp.pred_masks_high_res!.max().ToSingle());
                Assert.Equal(-10f, outp.pred_masks_high_res.min().ToSingle());
                Assert.Equal(10f, outp.object_score_logits!.ToSingle());
                Assert.Equal(new long[] { 1, 1, 64, 64 }, outp.pred_masks!.shape);
            }
        }
        finally
        {
            output_dict.DisposeAll();
        }
    }

    /// <summary>
    /// The first micro_video steps as SAM2VideoPredictor runs them: a click and a box (two objects) on
    /// frame 0 (track_step on an initial conditioning frame without the memory encoder, hole filling,
    /// resize to the video size), then forward propagation over all frames, one object at a time.
    /// </summary>
    [Fact]
    public void TrackStep_VideoPromptsAndPropagation_MatchReference()
    {
        string dir = CaseDir("micro_video");
        if (!Have(Path.Combine(dir, "expected.safetensors"))) return;
        using var _ = inference_mode();
        var cfg = Sam2ConfigLoader.Load(Path.Combine(dir, "model.yaml"));
        using var model = BuildSam.build_sam2_video_predictor(cfg, Path.Combine(dir, "weights.safetensors"));
        var inputs = Load(Path.Combine(dir, "inputs.safetensors"));
        var exp = Load(Path.Combine(dir, "expected.safetensors"));
        try
        {
            using var scope = NewDisposeScope();
            const long videoH = 120, videoW = 160;
            int numFrames = (int)inputs["frames"].size(0);
            var frame0 = inputs["frames"][0..1];
            using var backbone_out = model.forward_image(frame0);
            using var prep = model._prepare_backbone_features(backbone_out);

            int fillHoleArea = cfg.WithVideoPredictorOverrides().FillHoleArea;
            (FrameOutput out_, Tensor video) Run(float[] pts, int[] labels)
            {
                // pixel coords -> model input coords (normalized by the video size, times image_size)
                var coords = tensor(pts, new long[] { 1, labels.Length, 2 }) / tensor(new float[] { videoW, videoH }) * model.image_size;
                using var points = new PointInputs(coords, tensor(labels, new long[] { 1, labels.Length }));
                var outp = model.track_step(0, true, prep.vision_feats, prep.vision_pos_embeds, prep.feat_sizes, points, null,
                    new OutputDict(), numFrames, run_mem_encoder: false);
                Assert.Null(outp.maskmem_features);
                // the predictor stores the hole-filled low-res logits
                var filled = FillHoles(outp.pred_masks!, fillHoleArea);
                outp.pred_masks!.Dispose();
                outp.pred_masks = filled;
                outp.DetachFromDisposeScope();
                return (outp, nn.functional.interpolate(filled, size: [videoH, videoW], mode: InterpolationMode.Bilinear, align_corners: false));
            }

            var obj1 = Run([80, 60], [1]);
            CheckMasks("step0.video_res_masks", exp["step0.video_res_masks"], obj1.video);
            var obj5 = Run([10, 10, 70, 90], [2, 3]); // a box is two corner points with labels 2, 3
            CheckMasks("step1.video_res_masks", exp["step1.video_res_masks"], cat([obj1.video, obj5.video], 0));

            // propagate_in_video: encode each object's frame-0 memory from its (hole-filled) prompt mask,
            // then track frames 1.. per object with memory attention over bf16 memories and object pointers.
            var perObj = new[] { obj1.out_, obj5.out_ };
            var dicts = new[] { new OutputDict(), new OutputDict() };
            try
            {
                for (int o = 0; o < 2; o++)
                {
                    var c = perObj[o];
                    using var hi = nn.functional.interpolate(c.pred_masks!, size: [model.image_size, model.image_size], mode: InterpolationMode.Bilinear, align_corners: false);
                    var (mf, mp) = model._encode_new_memory(prep.vision_feats, prep.feat_sizes, hi, c.object_score_logits, is_mask_from_pts: true);
                    c.maskmem_features = mf;
                    c.maskmem_pos_enc = mp;
                    c.StoreMemoryAsBFloat16();
                    dicts[o].cond_frame_outputs[0] = c;
                }
                CheckMasks("step2.frame0.video_res_masks", exp["step2.frame0.video_res_masks"], cat([obj1.video, obj5.video], 0));
                for (int f = 1; f < numFrames; f++)
                {
                    using var fscope = NewDisposeScope();
                    using var bo = model.forward_image(inputs["frames"][f..(f + 1)]);
                    using var pf = model._prepare_backbone_features(bo);
                    var videoMasks = new List<Tensor>();
                    for (int o = 0; o < 2; o++)
                    {
                        var outp = model.track_step(f, false, pf.vision_feats, pf.vision_pos_embeds, pf.feat_sizes, null, null, dicts[o], numFrames);
                        var filled = FillHoles(outp.pred_masks!, fillHoleArea);
                        outp.pred_masks!.Dispose();
                        outp.pred_masks = filled;
                        outp.StoreMemoryAsBFloat16();
                        outp.DetachFromDisposeScope();
                        dicts[o].non_cond_frame_outputs[f] = outp;
                        videoMasks.Add(nn.functional.interpolate(filled, size: [videoH, videoW], mode: InterpolationMode.Bilinear, align_corners: false));
                    }
                    CheckMasks($"step2.frame{f}.video_res_masks", exp[$"step2.frame{f}.video_res_masks"], cat(videoMasks.ToArray(), 0));
                }
            }
            finally
            {
                foreach (var d in dicts) d.DisposeAll();
            }
        }
        finally
        {
            DisposeAll(inputs.Values);
            DisposeAll(exp.Values);
        }
    }

    /// <summary>
    /// The video predictor's hole filling (test-side reference): background (score &lt;= 0) 8-connected
    /// components of area &lt;= maxArea get score 0.1. Input [1, 1, h, w].
    /// </summary>
    private static Tensor FillHoles(Tensor mask, int maxArea)
    {
        int h = (int)mask.size(2), w = (int)mask.size(3);
        var v = mask.ToArray<float>();
        var seen = new bool[v.Length];
        var comp = new List<int>();
        var stack = new Stack<int>();
        for (int start = 0; start < v.Length; start++)
        {
            if (seen[start] || v[start] > 0) continue;
            comp.Clear();
            seen[start] = true;
            stack.Push(start);
            while (stack.Count > 0)
            {
                int p = stack.Pop();
                comp.Add(p);
                int y = p / w, x = p % w;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++)
                    {
                        int ny = y + dy, nx = x + dx;
                        if (ny < 0 || ny >= h || nx < 0 || nx >= w) continue;
                        int q = ny * w + nx;
                        if (seen[q] || v[q] > 0) continue;
                        seen[q] = true;
                        stack.Push(q);
                    }
            }
            if (comp.Count <= maxArea) foreach (int p in comp) v[p] = 0.1f;
        }
        return tensor(v, mask.shape);
    }

    /// <summary>Mask logits: elementwise tolerance (0.01 for video) and sign agreement.</summary>
    private void CheckMasks(string name, Tensor expected, Tensor actual, double tol = 1e-2, double agreement = 0.995)
    {
        Assert.Equal(expected.shape, actual.shape);
        using var scope = NewDisposeScope();
        var diff = (actual - expected).abs();
        double maxErr = diff.max().ToSingle();
        double agree = (actual > 0).eq(expected > 0).@float().mean().ToSingle();
        double excess = (diff - (expected.abs() * tol + tol)).max().ToSingle();
        output.WriteLine($"{name}: max abs err {maxErr:E3}, sign agreement {agree:F5}");
        Assert.True(agree >= agreement, $"{name}: sign agreement {agree:F5} < {agreement}");
        Assert.True(excess <= 0, $"{name}: max abs err {maxErr:E3} exceeds tolerance");
    }

    [Fact]
    public void NonOverlappingConstraints_KeepOnlyTheBestObjectPerPixel()
    {
        string dir = CaseDir("micro_modules");
        if (!Have(Path.Combine(dir, "model.yaml"))) return;
        using var _ = inference_mode();
        using var model = BuildSam.Construct(Sam2ConfigLoader.Load(Path.Combine(dir, "model.yaml")));
        using var scope = NewDisposeScope();
        var m = tensor(new float[] { 5, -1, 2, 3, /**/ 4, 2, -20, 6 }, [2, 1, 2, 2]);
        var r = model._apply_non_overlapping_constraints(m);
        Assert.Equal(new float[] { 5, -10, 2, -10, /**/ -10, 2, -20, 6 }, r.ToArray<float>());
        var one = m[0..1];
        var same = model._apply_non_overlapping_constraints(one);
        Assert.Equal(one.ToArray<float>(), same.ToArray<float>());
    }
}
