using System.Diagnostics;
using System.Text.Json.Nodes;
using TorchSam2.Configs;
using TorchSam2.Modeling;
using TorchSam2.Modeling.Backbones;
using TorchSam2.Modeling.Sam;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchSam2.Parity;

/// <summary>
/// Replays a parity case (shared/parity/README.md) against this port and compares every expected
/// tensor. Works for any case folder in that format: image, module and video kinds.
/// </summary>
public sealed class ParityRunner
{
    private static readonly HashSet<string> MaskNames = ["masks", "low_res_masks", "video_res_masks"];

    private readonly ParityCase _case;
    private readonly ParityReport _report;
    private readonly Action<ParityCheck>? _onCheck;
    private Dictionary<string, Tensor> _inputs = new();
    private Dictionary<string, Tensor> _expected = new();

    private readonly Device _device;

    private ParityRunner(ParityCase c, Action<ParityCheck>? onCheck, Device device)
    {
        _case = c;
        _device = device;
        _report = new ParityReport(c.Name, c.Kind);
        _onCheck = onCheck;
    }

    /// <summary>
    /// Runs one case folder on <paramref name="device"/> (the CPU by default); never throws for a failing case
    /// (errors land in the report). Outputs are compared on the CPU against the case's tolerances.
    /// </summary>
    public static ParityReport Run(string caseDir, Action<ParityCheck>? onCheck = null, Device? device = null)
    {
        ParityCase c;
        try
        {
            c = ParityCase.Load(caseDir);
        }
        catch (Exception e)
        {
            var r = new ParityReport(Path.GetFileName(caseDir.TrimEnd('/')), "?");
            r.Errors.Add(e.Message);
            return r;
        }
        return new ParityRunner(c, onCheck, device ?? CPU).Execute();
    }

    private ParityReport Execute()
    {
        var sw = Stopwatch.StartNew();
        SAM2Base? model = null;
        try
        {
            _inputs = ParityCase.LoadTensors(_case.InputsPath);
            if (_device.type != DeviceType.CPU)
                foreach (var k in _inputs.Keys.ToList())
                {
                    var moved = _inputs[k].to(_device).DetachFromDisposeScope();
                    _inputs[k].Dispose();
                    _inputs[k] = moved;
                }
            _expected = ParityCase.LoadTensors(_case.ExpectedPath);
            var cfg = Sam2ConfigLoader.Load(_case.ConfigPath);
            model = BuildSam.build_sam2(cfg, _case.WeightsPath, _device);
            model.eval();
            switch (_case.Kind)
            {
                case "image": RunImage(model); break;
                case "modules": RunModules(model); break;
                case "video": RunVideo(model); break;
                default: _report.Errors.Add($"unknown case kind '{_case.Kind}'"); break;
            }
        }
        catch (Exception e)
        {
            _report.Errors.Add($"{e.GetType().Name}: {e.Message}");
        }
        finally
        {
            model?.Dispose();
            foreach (var t in _inputs.Values) t.Dispose();
            foreach (var t in _expected.Values) t.Dispose();
        }
        sw.Stop();
        _report.Elapsed = sw.Elapsed;
        return _report;
    }

    // ---- comparison ---------------------------------------------------------------------

    private void Compare(string step, string expectedName, Tensor actual, string? kindName = null)
    {
        if (!_expected.TryGetValue(expectedName, out var e))
        {
            Add(new ParityCheck(step, expectedName, [], double.NaN, null, false, "not in expected.safetensors"));
            return;
        }
        using var scope = NewDisposeScope();
        var a = actual.to(ScalarType.Float32, CPU);
        var ef = e.to(ScalarType.Float32);
        if (!a.shape.SequenceEqual(ef.shape))
        {
            Add(new ParityCheck(step, expectedName, ef.shape, double.NaN, null, false, $"shape [{string.Join("x", a.shape)}] vs expected [{string.Join("x", ef.shape)}]"));
            return;
        }
        var err = (a - ef).abs();
        double maxErr = ef.numel() == 0 ? 0 : err.max().ToDouble();
        var tol = _case.Tolerance;
        var bad = err > (ef.abs() * tol.Rtol + tol.Atol);
        long nBad = bad.sum().ToInt64();
        bool finite = a.isfinite().all().ToBoolean() || !ef.isfinite().all().ToBoolean();
        double? agreement = null;
        bool ok = nBad == 0 && finite;
        string? problem = nBad > 0 ? $"{nBad} of {ef.numel()} elements outside tolerance" : finite ? null : "non-finite values";
        var leaf = kindName ?? expectedName.Split('.')[^1];
        if (MaskNames.Contains(leaf))
        {
            agreement = ef.numel() == 0 ? 1.0 : (a > 0).eq(ef > 0).to(ScalarType.Float32).mean().ToDouble();
            // Mask logits pass on agreement; elementwise error is reported but near-zero logits may flip.
            bool agreeOk = agreement >= tol.MaskAgreement;
            ok = agreeOk && finite && nBad == 0;
            if (!agreeOk) problem = $"sign agreement {agreement:P3} < {tol.MaskAgreement:P3}" + (problem is null ? "" : "; " + problem);
        }
        Add(new ParityCheck(step, expectedName, ef.shape, maxErr, agreement, ok, problem));
    }

    private void Add(ParityCheck c)
    {
        _report.Checks.Add(c);
        _onCheck?.Invoke(c);
    }

    private Tensor Input(string name) => _inputs.TryGetValue(name, out var t) ? t : throw new KeyNotFoundException($"input '{name}' is not in {Path.GetFileName(_case.InputsPath)}");

    private static float[][]? Points(JsonNode? n) => n is JsonArray a ? a.Select(p => ((JsonArray)p!).Select(v => v!.GetValue<float>()).ToArray()).ToArray() : null;

    private static int[]? Ints(JsonNode? n) => n is JsonArray a ? a.Select(v => v!.GetValue<int>()).ToArray() : null;

    private static float[]? Floats(JsonNode? n) => n is JsonArray a ? a.Select(v => v!.GetValue<float>()).ToArray() : null;

    private static bool Bool(JsonObject step, string key, bool def) => step[key]?.GetValue<bool>() ?? def;

    // ---- image cases --------------------------------------------------------------------

    private void RunImage(SAM2Base model)
    {
        using var predictor = new Sam2ImagePredictor(model) { KeepIntermediates = true };
        int i = 0;
        foreach (var node in _case.Steps)
        {
            var step = (JsonObject)node!;
            string op = step["op"]!.GetValue<string>();
            string label = $"{i++}:{op}";
            try
            {
                switch (op)
                {
                    case "set_image":
                    {
                        var img = Input(step["image"]!.GetValue<string>());
                        predictor.SetImage(img);
                        foreach (var (outName, exp) in (JsonObject)step["expect"]!)
                        {
                            if (predictor.Intermediates.TryGetValue(outName, out var t)) Compare(label, exp!.GetValue<string>(), t);
                            else Add(new ParityCheck(label, exp!.GetValue<string>(), [], double.NaN, null, false, $"the predictor produced no '{outName}'"));
                        }
                        break;
                    }
                    case "predict":
                    {
                        Tensor? maskInput = step["mask_input"] is JsonNode mi ? Input(mi.GetValue<string>()) : null;
                        using var pred = predictor.Predict(Points(step["point_coords"]), Ints(step["point_labels"]), Floats(step["box"]), maskInput,
                            Bool(step, "multimask_output", true), Bool(step, "return_logits", false), Bool(step, "normalize_coords", true));
                        var outputs = new Dictionary<string, Tensor> { ["masks"] = pred.Masks, ["iou_predictions"] = pred.IouPredictions, ["low_res_masks"] = pred.LowResMasks };
                        foreach (var (outName, exp) in (JsonObject)step["expect"]!)
                        {
                            if (outputs.TryGetValue(outName, out var t)) Compare(label, exp!.GetValue<string>(), t, outName);
                            else Add(new ParityCheck(label, exp!.GetValue<string>(), [], double.NaN, null, false, $"predict has no output '{outName}'"));
                        }
                        break;
                    }
                    default:
                        _report.NotImplemented.Add($"{label}: step '{op}' is not an image step");
                        break;
                }
            }
            catch (Exception e)
            {
                _report.Errors.Add($"{label}: {e.GetType().Name}: {e.Message}");
            }
        }
    }

    // ---- module cases -------------------------------------------------------------------

    private void RunModules(SAM2Base model)
    {
        int i = 0;
        foreach (var node in _case.Steps)
        {
            var step = (JsonObject)node!;
            string module = step["module"]?.GetValue<string>() ?? "";
            string label = $"{i++}:{module}";
            try
            {
                using var _ = inference_mode();
                using var scope = NewDisposeScope();
                var ins = ((JsonArray)step["inputs"]!).Select(n => InputOrExpected(n!.GetValue<string>())).ToArray();
                var expect = ((JsonArray)step["expect"]!).Select(n => n!.GetValue<string>()).ToArray();
                var outs = RunModule(model, module, step, ins);
                if (outs.Count != expect.Length)
                {
                    _report.Errors.Add($"{label}: produced {outs.Count} outputs, case expects {expect.Length}");
                    continue;
                }
                for (int k = 0; k < expect.Length; k++) Compare(label, expect[k], outs[k]);
            }
            catch (Exception e)
            {
                _report.Errors.Add($"{label}: {e.GetType().Name}: {e.Message}");
            }
        }
    }

    // Module inputs may name an earlier step's expected output (e.g. the neck consumes trunk.out.*).
    private Tensor InputOrExpected(string name) =>
        _inputs.TryGetValue(name, out var t) ? t : _expected.TryGetValue(name, out var e) ? e : throw new KeyNotFoundException($"'{name}' is neither an input nor an expected tensor");

    private static List<Tensor> RunModule(SAM2Base model, string module, JsonObject step, Tensor[] ins)
    {
        switch (module)
        {
            case "image_encoder.trunk":
                return model.image_encoder.trunk.forward(ins[0]);
            case "image_encoder.neck":
            {
                var (outs, pos) = model.image_encoder.neck.forward(ins.ToList());
                return [.. outs, .. pos];
            }
            case "sam_prompt_encoder":
            {
                (Tensor, Tensor)? points = ins.Length > 1 && ins[0] is not null ? (ins[0], ins[1]) : null;
                Tensor? masks = ins.Length > 2 ? ins[2] : null;
                var (sparse, dense) = model.sam_prompt_encoder.forward(points, null, masks);
                return [sparse, dense, model.sam_prompt_encoder.get_dense_pe()];
            }
            case "sam_mask_decoder":
            {
                bool multimask = step["multimask_output"]?.GetValue<bool>() ?? true;
                bool repeatImage = step["repeat_image"]?.GetValue<bool>() ?? false;
                var highRes = ins.Length > 4 ? ins.Skip(4).ToList() : null;
                var (masks, iou, tokens, obj) = model.sam_mask_decoder.forward(ins[0], ins[1], ins[2], ins[3], multimask, repeatImage, highRes);
                return [masks, iou, tokens, obj];
            }
            case "memory_encoder":
            {
                bool skip = step["skip_mask_sigmoid"]?.GetValue<bool>() ?? false;
                var (features, pos) = model.memory_encoder.forward(ins[0], ins[1], skip);
                return [features, .. pos];
            }
            case "memory_attention":
            {
                long numObjPtr = step["num_obj_ptr_tokens"]?.GetValue<long>() ?? 0;
                // case.json lists curr, curr_pos, memory, memory_pos; the module takes (curr, memory, curr_pos, memory_pos).
                return [model.memory_attention.forward(ins[0], ins[2], ins[1], ins[3], numObjPtr)];
            }
            default:
                throw new NotSupportedException($"no module step for '{module}'");
        }
    }

    // ---- video cases --------------------------------------------------------------------

    private void RunVideo(SAM2Base model)
    {
        // the case model is built like build_sam2_video_predictor: apply the video overrides on top of the yaml
        var videoCfg = BuildSam.VideoPredictorConfig(Sam2ConfigLoader.Load(_case.ConfigPath));
        using var predictor = Sam2VideoPredictor.FromConfig(model, videoCfg);
        VideoInferenceState? state = null;
        try
        {
            int i = 0;
            foreach (var node in _case.Steps)
            {
                var step = (JsonObject)node!;
                string op = step["op"]!.GetValue<string>();
                string label = $"{i++}:{op}";
                try
                {
                    if (op != "init_state" && state is null) throw new InvalidOperationException("no init_state step before this one");
                    switch (op)
                    {
                        case "init_state":
                            state?.Dispose();
                            state = predictor.InitState(Input(step["frames"]!.GetValue<string>()), step["video_height"]!.GetValue<int>(),
                                step["video_width"]!.GetValue<int>());
                            break;
                        case "add_new_points_or_box":
                        {
                            var (f, ids, masks) = predictor.AddNewPointsOrBox(state!, step["frame_idx"]!.GetValue<int>(), step["obj_id"]!.GetValue<int>(),
                                Points(step["points"]), Ints(step["labels"]), Bool(step, "clear_old_points", true), Bool(step, "normalize_coords", true),
                                Floats(step["box"]));
                            using (masks) CheckVideoFrame(label, step["expect"], f, ids, masks);
                            break;
                        }
                        case "add_new_mask":
                        {
                            var (f, ids, masks) = predictor.AddNewMask(state!, step["frame_idx"]!.GetValue<int>(), step["obj_id"]!.GetValue<int>(),
                                Input(step["mask"]!.GetValue<string>()));
                            using (masks) CheckVideoFrame(label, step["expect"], f, ids, masks);
                            break;
                        }
                        case "propagate_in_video":
                        {
                            var expect = step["expect"] as JsonArray ?? [];
                            int k = 0;
                            foreach (var (f, ids, masks) in predictor.PropagateInVideo(state!, OptInt(step["start_frame_idx"]),
                                OptInt(step["max_frame_num_to_track"]), Bool(step, "reverse", false)))
                            {
                                using (masks)
                                {
                                    if (k < expect.Count) CheckVideoFrame($"{label}[{k}]", expect[k], f, ids, masks);
                                    else VideoMismatch($"{label}[{k}]", "frames", $"yielded frame {f} beyond the {expect.Count} expected");
                                }
                                k++;
                            }
                            if (k < expect.Count) VideoMismatch(label, "frames", $"yielded {k} frames, expected {expect.Count}");
                            break;
                        }
                        case "clear_all_prompts_in_frame":
                        {
                            bool needOutput = Bool(step, "need_output", true);
                            var r = predictor.ClearAllPromptsInFrame(state!, step["frame_idx"]!.GetValue<int>(), step["obj_id"]!.GetValue<int>(), needOutput);
                            if (r is { } res)
                                using (res.videoResMasks) CheckVideoFrame(label, step["expect"], res.frameIdx, res.objIds, res.videoResMasks);
                            break;
                        }
                        case "remove_object":
                        {
                            var (ids, updated) = predictor.RemoveObject(state!, step["obj_id"]!.GetValue<int>(), Bool(step, "strict", false),
                                Bool(step, "need_output", true));
                            try
                            {
                                if (step["expect"] is JsonObject exp)
                                {
                                    if (Ints(exp["obj_ids"]) is int[] wantIds && !wantIds.SequenceEqual(ids))
                                        VideoMismatch(label, "obj_ids", $"[{string.Join(", ", ids)}] vs expected [{string.Join(", ", wantIds)}]");
                                    if (exp["updated_frames"] is JsonArray ufs)
                                    {
                                        if (ufs.Count != updated.Count) VideoMismatch(label, "updated_frames", $"{updated.Count} frames vs expected {ufs.Count}");
                                        for (int u = 0; u < Math.Min(ufs.Count, updated.Count); u++)
                                            CheckVideoFrame($"{label}[{u}]", ufs[u], updated[u].frameIdx, null, updated[u].videoResMasks);
                                    }
                                }
                            }
                            finally
                            {
                                foreach (var (_, m) in updated) m.Dispose();
                            }
                            break;
                        }
                        case "reset_state":
                            predictor.ResetState(state!);
                            break;
                        default:
                            _report.NotImplemented.Add($"{label}: step '{op}' is not a video step");
                            break;
                    }
                }
                catch (Exception e)
                {
                    _report.Errors.Add($"{label}: {e.GetType().Name}: {e.Message}");
                }
            }
        }
        finally
        {
            state?.Dispose();
        }
    }

    private static int? OptInt(JsonNode? n) => n is JsonValue v ? v.GetValue<int>() : null;

    private void VideoMismatch(string step, string name, string problem) =>
        Add(new ParityCheck(step, name, [], double.NaN, null, false, problem));

    // Compares one video output (frame index, object ids, masks) with an expect object; absent keys are not checked.
    private void CheckVideoFrame(string step, JsonNode? expect, int frameIdx, IReadOnlyList<int>? objIds, Tensor masks)
    {
        if (expect is not JsonObject exp) return;
        if (OptInt(exp["frame_idx"]) is int wantFrame && wantFrame != frameIdx)
            VideoMismatch(step, "frame_idx", $"frame {frameIdx} vs expected {wantFrame}");
        if (objIds is not null && Ints(exp["obj_ids"]) is int[] wantIds && !wantIds.SequenceEqual(objIds))
            VideoMismatch(step, "obj_ids", $"[{string.Join(", ", objIds)}] vs expected [{string.Join(", ", wantIds)}]");
        if (exp["video_res_masks"] is JsonValue name)
            Compare(step, name.GetValue<string>(), masks, "video_res_masks");
    }
}
