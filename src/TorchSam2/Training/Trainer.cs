using System.Diagnostics;
using System.Text.Json;
using TorchSam2.Modeling;
using TorchSam2.Modeling.Backbones;
using TorchSharp;
using TorchSharp.Modules;
using TorchSam2.Checkpoints;
using static TorchSharp.torch;

namespace TorchSam2.Training;

/// <summary>Fine-tuning hyper-parameters; defaults follow configs/sam2.1_training (optim, loss, SAM2Train prompts).</summary>
public sealed record TrainerOptions
{
    public int Epochs { get; init; } = 1;
    /// <summary>Images per micro-batch (each brings up to <see cref="MaxObjectsPerImage"/> objects).</summary>
    public int BatchSize { get; init; } = 1;
    /// <summary>Micro-batches per optimizer step (gradient accumulation).</summary>
    public int Accumulate { get; init; } = 1;
    /// <summary>Peak learning rate (base_lr, 5e-6 upstream for fine-tuning).</summary>
    public double Lr { get; init; } = 5e-6;
    /// <summary>Learning rate of image_encoder.* relative to <see cref="Lr"/> (vision_lr 3e-6 / base_lr 5e-6 upstream).</summary>
    public double VisionLrScale { get; init; } = 0.6;
    /// <summary>The cosine schedule ends at Lr × this (end_value = base/10 upstream).</summary>
    public double MinLrRatio { get; init; } = 0.1;
    /// <summary>Linear warm-up steps before the cosine (none upstream).</summary>
    public int WarmupSteps { get; init; } = 0;
    public double WeightDecay { get; init; } = 0.1;
    /// <summary>layer_decay_param_modifier on image_encoder.trunk (0.9 upstream; 1 disables).</summary>
    public double LayerDecay { get; init; } = 0.9;
    /// <summary>Global gradient-norm clip (0.1 upstream; 0 disables).</summary>
    public double GradClip { get; init; } = 0.1;
    public bool FreezeImageEncoder { get; init; }
    public bool FreezePromptEncoder { get; init; }
    /// <summary>
    /// bf16 autocast on CUDA (amp_dtype bfloat16 upstream). TorchSharp 0.107 exposes no autocast, so asking for it
    /// on CUDA is refused with a clear error; training runs in fp32. Ignored on the CPU.
    /// </summary>
    public bool Bf16Autocast { get; init; }
    public int Seed { get; init; } = 0;
    /// <summary>Objects sampled per image (max_num_objects).</summary>
    public int MaxObjectsPerImage { get; init; } = 3;
    public PromptSimulationOptions Prompts { get; init; } = new();
    public AugmentationOptions Augment { get; init; } = new();
    /// <summary>Cap on validation images per evaluation (0 = all).</summary>
    public int ValMaxImages { get; init; } = 0;
    /// <summary>Save a resumable checkpoint every N optimizer steps as well as at each epoch end (0 = epochs only).</summary>
    public int CheckpointEverySteps { get; init; } = 0;
    public MultiStepMultiMasksAndIous Loss { get; init; } = new();

    /// <summary>
    /// Checks every number: counts at least 1 (or 0 where 0 means "off"), rates and factors finite and in range.
    /// Throws <see cref="ArgumentOutOfRangeException"/> naming the option and its value.
    /// </summary>
    public void Validate()
    {
        OptionChecks.Count(nameof(Epochs), Epochs, 1, 1_000_000);
        OptionChecks.Count(nameof(BatchSize), BatchSize, 1, 4096);
        OptionChecks.Count(nameof(Accumulate), Accumulate, 1, 1_000_000);
        OptionChecks.Real(nameof(Lr), Lr, 0, 10);
        OptionChecks.Real(nameof(VisionLrScale), VisionLrScale, 0, 1000);
        OptionChecks.Real(nameof(MinLrRatio), MinLrRatio, 0, 1);
        OptionChecks.Count(nameof(WarmupSteps), WarmupSteps, 0, int.MaxValue);
        OptionChecks.Real(nameof(WeightDecay), WeightDecay, 0, 1000);
        OptionChecks.Real(nameof(LayerDecay), LayerDecay, 1e-6, 1);
        OptionChecks.Real(nameof(GradClip), GradClip, 0, 1e12);
        OptionChecks.Count(nameof(MaxObjectsPerImage), MaxObjectsPerImage, 1, 1024);
        OptionChecks.Count(nameof(ValMaxImages), ValMaxImages, 0, int.MaxValue);
        OptionChecks.Count(nameof(CheckpointEverySteps), CheckpointEverySteps, 0, int.MaxValue);
        Prompts.Validate();
        Augment.Validate();
    }
}

/// <summary>Range checks of training options, with messages naming the option and the value.</summary>
internal static class OptionChecks
{
    public static void Count(string name, long v, long lo, long hi)
    {
        if (v < lo || v > hi) throw new ArgumentOutOfRangeException(name, v, $"{name} must be in {lo}..{hi}, got {v}");
    }

    public static void Real(string name, double v, double lo, double hi)
    {
        if (!double.IsFinite(v) || v < lo || v > hi) throw new ArgumentOutOfRangeException(name, v, $"{name} must be a number in [{lo}, {hi}], got {v}");
    }

    public static void Probability(string name, double v) => Real(name, v, 0, 1);

    public static void Method(string name, string v)
    {
        if (v is not ("uniform" or "center")) throw new ArgumentOutOfRangeException(name, v, $"{name} must be \"uniform\" or \"center\", got \"{v}\"");
    }
}

/// <summary>What one optimizer step did.</summary>
public sealed record StepResult(long Step, double Loss, double LossMask, double LossDice, double LossIou, double LossClass, double Lr, double GradNorm, double Seconds);

/// <summary>Progress report for IProgress consumers.</summary>
public sealed record TrainProgress(long Step, long TotalSteps, int Epoch, StepResult? Last, EvalResult? Eval);

/// <summary>Mean IoU over validation objects for a centre click (best of the multimask output) and for the exact box.</summary>
public sealed record EvalResult(double PointIou, double BoxIou, int Objects)
{
    /// <summary>J&amp;F on a video validation folder (<see cref="VideoClipTrainer.ValidationFolder"/>); the IoUs are 0 then.</summary>
    public Evaluation.VosBenchmarkResult? Vos { get; init; }
}

/// <summary>
/// Fine-tunes SAM 2.1 on still images with the official recipe (training/trainer.py, optimizer.py, loss_fns.py,
/// model/sam2.py): AdamW with weight decay 0.1 except biases and LayerNorms, layer-wise lr decay on the trunk,
/// cosine schedule, grad-norm clipping, interactive prompt simulation with correction clicks and the
/// multi-step multi-mask loss. Randomness is re-seeded per micro-batch from (seed, index), so a resumed run
/// continues bit-identically.
/// </summary>
public sealed class Sam2Trainer : IDisposable
{
    private readonly SAM2Base _model;
    private readonly ISegmentationDataset _train;
    private readonly ISegmentationDataset? _val;
    private readonly Device _device;
    private readonly List<(string name, Parameter p, bool vision, double lrScale)> _trainable = new();
    private readonly GroupedAdamW _optim;

    public TrainerOptions Options { get; }
    public SAM2Base Model => _model;
    /// <summary>Optimizer steps done so far.</summary>
    public long Step { get; private set; }
    public int MicroBatchesPerEpoch { get; }
    public long StepsPerEpoch { get; }
    public long TotalSteps => StepsPerEpoch * Options.Epochs;

    public Sam2Trainer(SAM2Base model, ISegmentationDataset train, ISegmentationDataset? val, TrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (train.Count == 0) throw new ArgumentException("the training set is empty");
        options.Validate();
        _model = model;
        _train = train;
        _val = val;
        Options = options;
        _device = model.device;
        MicroBatchesPerEpoch = (train.Count + options.BatchSize - 1) / options.BatchSize;
        StepsPerEpoch = (MicroBatchesPerEpoch + options.Accumulate - 1) / options.Accumulate;

        if (options.Bf16Autocast && _device.type == DeviceType.CUDA)
            throw new NotSupportedException("bf16 autocast is not available: TorchSharp 0.107 exposes no torch.autocast; train in fp32 (leave Bf16Autocast off)");
        if (options.FreezeImageEncoder) foreach (var p in model.image_encoder.parameters()) p.requires_grad = false;
        if (options.FreezePromptEncoder) foreach (var p in model.sam_prompt_encoder.parameters()) p.requires_grad = false;
        _optim = new GroupedAdamW(BuildParamGroups());
    }

    // ---- optimizer param groups ------------------------------------------------------------------

    private List<GroupedAdamW.Group> BuildParamGroups()
    {
        var o = Options;
        // parameters of torch.LayerNorm modules get no weight decay (module_cls_names upstream)
        var layerNormParams = new HashSet<string>();
        foreach (var (mname, m) in _model.named_modules())
            if (m is LayerNorm)
                foreach (var (pname, _) in m.named_parameters(recurse: false))
                    layerNormParams.Add(mname.Length == 0 ? pname : mname + "." + pname);

        int numBlocks = _model.image_encoder.trunk.blocks.Count;
        int numLayers = numBlocks + 1; // layer_decay_param_modifier's get_num_layers() + 1
        var byKey = new SortedDictionary<string, (bool vision, double scale, double wd, List<(string, Parameter)> ps)>(StringComparer.Ordinal);
        // sorted names as upstream, so the grouping (and the checkpoint order) is deterministic
        foreach (var (name, p) in _model.named_parameters().OrderBy(x => x.name, StringComparer.Ordinal))
        {
            if (!p.requires_grad) continue;
            bool vision = name.StartsWith("image_encoder.", StringComparison.Ordinal);
            double scale = 1.0;
            if (o.LayerDecay != 1.0 && name.StartsWith("image_encoder.trunk", StringComparison.Ordinal))
            {
                int layerId = TrunkLayerId(name, numBlocks);
                scale = Math.Pow(o.LayerDecay, numLayers - layerId);
                if (name.Contains("pos_embed", StringComparison.Ordinal)) scale = 1.0; // override '*pos_embed*': 1.0
            }
            bool noWd = name.Contains("bias", StringComparison.Ordinal) || layerNormParams.Contains(name);
            double wd = noWd ? 0.0 : o.WeightDecay;
            string key = $"{(vision ? "v" : "b")}|{scale:R}|{wd:R}";
            if (!byKey.TryGetValue(key, out var g))
            {
                g = (vision, scale, wd, new List<(string, Parameter)>());
                byKey[key] = g;
            }
            g.ps.Add((name, p));
            _trainable.Add((name, p, vision, scale));
        }
        if (_trainable.Count == 0) throw new InvalidOperationException("nothing to train: every parameter is frozen");
        return byKey.Select(kv => new GroupedAdamW.Group(kv.Key, kv.Value.vision, kv.Value.scale, kv.Value.wd, kv.Value.ps)).ToList();
    }

    /// <summary>Hiera.get_layer_id: pos_embed/patch_embed 0, blocks.i → i + 1, anything else num_blocks + 1.</summary>
    public static int TrunkLayerId(string name, int numBlocks)
    {
        if (name.Contains("rel_pos", StringComparison.Ordinal)) return numBlocks + 1;
        if (name.Contains("pos_embed", StringComparison.Ordinal)) return 0;
        if (name.Contains("patch_embed", StringComparison.Ordinal)) return 0;
        int b = name.IndexOf("blocks", StringComparison.Ordinal);
        if (b >= 0)
        {
            var rest = name[(b + "blocks".Length)..].Split('.');
            return int.Parse(rest[1]) + 1;
        }
        return numBlocks + 1;
    }

    /// <summary>Learning-rate factor of optimizer step <paramref name="step"/> (0-based): linear warm-up, then cosine to MinLrRatio.</summary>
    public double LrFactor(long step)
    {
        var o = Options;
        if (step < o.WarmupSteps) return (step + 1) / (double)o.WarmupSteps;
        double span = Math.Max(1, TotalSteps - o.WarmupSteps);
        double where = Math.Clamp((step - o.WarmupSteps) / span, 0, 1);
        double end = o.MinLrRatio;
        return end + (1 - end) * 0.5 * (1 + Math.Cos(Math.PI * where));
    }

    /// <summary>Parameter groups: (name, trainable parameter count, lr scale, weight decay).</summary>
    public IEnumerable<(string group, long count, double lrScale, double weightDecay)> Groups() =>
        _optim.Groups.Select(g => (g.Name, g.Parameters.Sum(x => x.p.numel()), g.LrScale, g.WeightDecay));

    // ---- seeding --------------------------------------------------------------------------------

    /// <summary>A 64-bit mix of (seed, stream, index) (splitmix64), so per-step randomness is independent of history.</summary>
    public static ulong Mix(long seed, long stream, long index)
    {
        ulong z = (ulong)seed * 0x9E3779B97F4A7C15UL ^ (ulong)stream * 0xBF58476D1CE4E5B9UL ^ (ulong)index * 0x94D049BB133111EBUL;
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private static Random RandomFor(long seed, long stream, long index) => new((int)(Mix(seed, stream, index) & 0x7FFFFFFF));

    /// <summary>Dataset indices of micro-batch <paramref name="micro"/> within <paramref name="epoch"/>.</summary>
    public int[] BatchIndices(int epoch, int micro)
    {
        var perm = Enumerable.Range(0, _train.Count).ToArray();
        var rng = RandomFor(Options.Seed, 1, epoch);
        for (int i = perm.Length - 1; i > 0; i--) { int j = rng.Next(i + 1); (perm[i], perm[j]) = (perm[j], perm[i]); }
        int start = micro * Options.BatchSize;
        return perm.Skip(start).Take(Options.BatchSize).ToArray();
    }

    // ---- training --------------------------------------------------------------------------------

    /// <summary>One optimizer step: Accumulate micro-batches of forward + backward, clip, AdamW.</summary>
    /// <summary>
    /// forward_image for training: the image encoder runs without a graph when frozen, while
    /// conv_s0/conv_s1 (decoder weights) still train. Runs in the caller's dispose scope.
    /// </summary>
    internal ImageEncoderOutput EncodeImages(Tensor img)
    {
        ImageEncoderOutput bo;
        if (Options.FreezeImageEncoder)
            using (no_grad()) bo = _model.image_encoder.forward(img);
        else bo = _model.image_encoder.forward(img);
        if (_model.use_high_res_features_in_sam)
        {
            bo.backbone_fpn[0] = _model.sam_mask_decoder.conv_s0!.forward(bo.backbone_fpn[0]);
            bo.backbone_fpn[1] = _model.sam_mask_decoder.conv_s1!.forward(bo.backbone_fpn[1]);
        }
        return bo;
    }

    public StepResult TrainStep() =>
        TrainStepWith((idx, rng) =>
        {
            var samples = idx.Select(i => SampleTransforms.Prepare(_train.Get(i), _model.image_size, rng, Options.Augment, Options.MaxObjectsPerImage)).ToList();
            return ForwardLoss(samples, rng, Options.Prompts);
        });

    /// <summary>
    /// The optimizer step with a caller-supplied micro-batch loss (dataset indices, seeded Random → loss terms or null
    /// to skip): the video trainer reuses the schedule, accumulation, clipping and seeding through this hook.
    /// </summary>
    internal StepResult TrainStepWith(Func<int[], Random, LossTerms?> microLoss)
    {
        var sw = Stopwatch.StartNew();
        var o = Options;
        long step = Step;
        int epoch = (int)(step / StepsPerEpoch);
        long local = step % StepsPerEpoch;
        _model.train();
        _optim.zero_grad();
        double lossSum = 0, lm = 0, ld = 0, li = 0, lc = 0;
        int micros = 0;
        var microList = new List<int>();
        for (int a = 0; a < o.Accumulate; a++)
        {
            long micro = local * o.Accumulate + a;
            if (micro < MicroBatchesPerEpoch) microList.Add((int)micro);
        }
        foreach (int micro in microList)
        {
            long globalMicro = (long)epoch * MicroBatchesPerEpoch + micro;
            var rng = RandomFor(o.Seed, 2, globalMicro);
            manual_seed(unchecked((long)Mix(o.Seed, 3, globalMicro)));
            var idx = BatchIndices(epoch, micro);
            using var scope = NewDisposeScope();
            using var terms = microLoss(idx, rng);
            if (terms is null) continue;
            var scaled = terms.Core / microList.Count;
            scaled.backward();
            lossSum += terms.Core.ToSingle();
            lm += terms.Mask.ToSingle(); ld += terms.Dice.ToSingle(); li += terms.Iou.ToSingle(); lc += terms.Class.ToSingle();
            micros++;
        }
        double gradNorm = o.GradClip > 0 ? nn.utils.clip_grad_norm_(_trainable.Select(t => t.p), o.GradClip) : double.NaN;
        double factor = LrFactor(step);
        _optim.SetLearningRate(o.Lr * factor, o.VisionLrScale);
        _optim.step();
        _optim.zero_grad();
        Step++;
        int n = Math.Max(1, micros);
        if (!double.IsFinite(lossSum)) throw new FloatingPointError($"loss is {lossSum} at step {step}");
        return new StepResult(step, lossSum / n, lm / n, ld / n, li / n, lc / n, o.Lr * factor, gradNorm, sw.Elapsed.TotalSeconds);
    }

    /// <summary>Raised when the loss stops being finite, as the upstream trainer does.</summary>
    public sealed class FloatingPointError(string message) : Exception(message);

    /// <summary>
    /// Image path of SAM2Train on one micro-batch: image encoder (no grad when frozen) → _prepare_backbone_features
    /// → + no_mem_embed → interactive prompts → losses on masks at the model input size. Null when there are no objects.
    /// </summary>
    public LossTerms? ForwardLoss(IReadOnlyList<PreparedSample> samples, Random rng, PromptSimulationOptions prompts)
    {
        int S = _model.image_size;
        var gts = new List<bool[]>();
        var objImg = new List<long>();
        for (int i = 0; i < samples.Count; i++)
            foreach (var m in samples[i].Masks) { gts.Add(m); objImg.Add(i); }
        if (gts.Count == 0) return null;
        using var scope = NewDisposeScope();
        var (pix, highRes) = ImageFeatures(samples);
        var objIdx = tensor(objImg.ToArray(), new long[] { objImg.Count }, device: _device);
        var pixObj = pix.index_select(0, objIdx);
        var highObj = highRes.Select(h => h.index_select(0, objIdx)).ToList();
        var gtFlat = new bool[gts.Count * S * S];
        for (int i = 0; i < gts.Count; i++) gts[i].CopyTo(gtFlat, i * S * S);
        var gtT = tensor(gtFlat, new long[] { gts.Count, 1, S, S }, device: _device).@float();
        using var outs = InteractiveForward.Run(_model, pixObj, highObj.Count > 0 ? highObj : null, gts, gtT, prompts, rng);
        var terms = Options.Loss.Forward(outs.MultimasksHighRes, outs.Ious, outs.ObjectScoreLogits, gtT.squeeze(1), gts.Count);
        return terms.MoveToOuterDisposeScope();
    }

    // Backbone features of a batch as the image predictor sees them: image embedding (+ no_mem_embed) and the
    // high-res maps after conv_s0/conv_s1 (decoder parameters, so they train even with a frozen encoder).
    private (Tensor pix, List<Tensor> highRes) ImageFeatures(IReadOnlyList<PreparedSample> samples)
    {
        int S = _model.image_size;
        var flat = new float[samples.Count * 3 * S * S];
        for (int i = 0; i < samples.Count; i++) samples[i].Image.CopyTo(flat, i * 3 * S * S);
        var img = tensor(flat, new long[] { samples.Count, 3, S, S }, device: _device);
        var bo = EncodeImages(img);
        var (_, feats, _, sizes) = _model._prepare_backbone_features(bo);
        long B = samples.Count;
        var last = feats[^1];
        if (_model.directly_add_no_mem_embed) last = last + _model.no_mem_embed;
        var pix = last.permute(1, 2, 0).reshape(B, -1, sizes[^1].H, sizes[^1].W);
        var high = new List<Tensor>();
        for (int i = 0; i < feats.Count - 1; i++)
            high.Add(feats[i].permute(1, 2, 0).reshape(B, -1, sizes[i].H, sizes[i].W));
        return (pix, high);
    }

    /// <summary>
    /// Trains until <see cref="TotalSteps"/>; evaluates and checkpoints at each epoch end (outDir/checkpoint,
    /// outDir/model.safetensors). Resumes from the current <see cref="Step"/>.
    /// </summary>
    public void Train(string? outDir = null, IProgress<TrainProgress>? progress = null, CancellationToken cancel = default) =>
        RunLoop(TrainStep, () => _val is null ? null : Evaluate(_val, Options.ValMaxImages), outDir, progress, cancel);

    /// <summary>
    /// The loop of <see cref="Train"/> with a caller-supplied step and epoch-end evaluation (the video trainer
    /// reuses it): checkpoints at epoch ends and every CheckpointEverySteps, weights at epoch ends.
    /// </summary>
    internal void RunLoop(Func<StepResult> step, Func<EvalResult?> evaluateAtEpochEnd, string? outDir, IProgress<TrainProgress>? progress, CancellationToken cancel)
    {
        while (Step < TotalSteps)
        {
            cancel.ThrowIfCancellationRequested();
            var r = step();
            int epoch = (int)((Step - 1) / StepsPerEpoch);
            bool epochEnd = Step % StepsPerEpoch == 0;
            EvalResult? ev = epochEnd ? evaluateAtEpochEnd() : null;
            if (outDir is not null && (epochEnd || (Options.CheckpointEverySteps > 0 && Step % Options.CheckpointEverySteps == 0)))
            {
                SaveCheckpoint(Path.Combine(outDir, "checkpoint"));
                if (epochEnd) ExportWeights(_model, Path.Combine(outDir, "model.safetensors"));
            }
            progress?.Report(new TrainProgress(Step, TotalSteps, epoch, r, ev));
        }
    }

    // ---- evaluation ------------------------------------------------------------------------------

    /// <summary>Mean IoU per object (masks at the model input size) for a centre click and for the GT box.</summary>
    public EvalResult Evaluate(ISegmentationDataset ds, int maxImages = 0)
    {
        _model.eval();
        int S = _model.image_size;
        double pointSum = 0, boxSum = 0;
        int count = 0;
        int n = maxImages > 0 ? Math.Min(maxImages, ds.Count) : ds.Count;
        using var _ = inference_mode();
        for (int i = 0; i < n; i++)
        {
            var s = SampleTransforms.Prepare(ds.Get(i), S, null, null, Math.Max(Options.MaxObjectsPerImage, 8));
            var gts = s.Masks.Where(m => m.Any(v => v)).ToList();
            if (gts.Count == 0) continue;
            using var scope = NewDisposeScope();
            var (pix, high) = ImageFeatures([s]);
            var idx = zeros([gts.Count], ScalarType.Int64, _device);
            var pixObj = pix.index_select(0, idx);
            var highObj = high.Select(h => h.index_select(0, idx)).ToList();
            var pts = gts.Select(g => new[] { PromptSimulation.SampleOnePointFromErrorCenter(g, null, S, S) }).ToList();
            var boxes = gts.Select(g => { var (x0, y0, x1, y1) = PromptSimulation.MaskToBox(g, S, S); return new[] { ((float)x0, (float)y0, 2), ((float)x1, (float)y1, 3) }; }).ToList();
            pointSum += PromptIous(pixObj, highObj, gts, pts).Sum();
            boxSum += PromptIous(pixObj, highObj, gts, boxes).Sum();
            count += gts.Count;
        }
        _model.train();
        return new EvalResult(count > 0 ? pointSum / count : 0, count > 0 ? boxSum / count : 0, count);
    }

    private double[] PromptIous(Tensor pix, List<Tensor> high, List<bool[]> gts, List<(float x, float y, int label)[]> prompts)
    {
        int S = _model.image_size, N = gts.Count, k = prompts[0].Length;
        var coords = prompts.SelectMany(p => p.SelectMany(q => new[] { q.x, q.y })).ToArray();
        var labels = prompts.SelectMany(p => p.Select(q => q.label)).ToArray();
        using var pin = new PointInputs(tensor(coords, new long[] { N, k, 2 }, device: _device), tensor(labels, new long[] { N, k }, device: _device));
        using var heads = _model._forward_sam_heads(pix, pin, null, high.Count > 0 ? high : null, InteractiveForward.UseMultimask(_model, k));
        using var bin = heads.high_res_masks > 0;
        using var cpu = bin.to(CPU).contiguous();
        var pred = cpu.ToArray<bool>();
        var result = new double[N];
        for (int i = 0; i < N; i++)
        {
            long inter = 0, uni = 0;
            var g = gts[i];
            int off = i * S * S;
            for (int j = 0; j < S * S; j++)
            {
                bool p = pred[off + j];
                if (p && g[j]) inter++;
                if (p || g[j]) uni++;
            }
            result[i] = uni == 0 ? 1 : inter / (double)uni;
        }
        return result;
    }

    // ---- checkpoints -----------------------------------------------------------------------------

    /// <summary>The model's state dict as records (official key names), fp32 as held.</summary>
    public static Dictionary<string, TensorRecord> StateRecords(nn.Module model)
    {
        var d = new Dictionary<string, TensorRecord>();
        foreach (var (k, t) in model.state_dict())
        {
            using var c = t.detach().to(CPU).contiguous();
            d[k] = new TensorRecord(c.dtype, c.shape, c.ToBytes());
        }
        return d;
    }

    /// <summary>Writes the weights: .safetensors (load with safetensors.torch.load_file) or .pt ({"model": state_dict}).</summary>
    public static void ExportWeights(nn.Module model, string path)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        var sd = StateRecords(model);
        string tmp = path + ".tmp";
        if (path.EndsWith(".pt", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".pth", StringComparison.OrdinalIgnoreCase))
            PtCheckpoint.Write(tmp, sd);
        else
            SafeTensors.Write(tmp, sd);
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>
    /// A resumable checkpoint folder: model.safetensors (official keys), optimizer.safetensors (AdamW moments by
    /// parameter name) and trainer.json (step, seed, options that matter for the schedule).
    /// </summary>
    public void SaveCheckpoint(string dir)
    {
        Directory.CreateDirectory(dir);
        ExportWeights(_model, Path.Combine(dir, "model.safetensors"));
        var opt = new Dictionary<string, TensorRecord>();
        foreach (var (name, step, a, b) in _optim.State())
        {
            opt["exp_avg." + name] = new TensorRecord(a.dtype, a.shape, a.ToBytes());
            opt["exp_avg_sq." + name] = new TensorRecord(b.dtype, b.shape, b.ToBytes());
            opt["step." + name] = TensorRecord.Create(ScalarType.Int64, [], [step]);
        }
        var meta = new Dictionary<string, string> { ["optimizer_step_count"] = _optim.StepCount.ToString() };
        SafeTensors.Write(Path.Combine(dir, "optimizer.safetensors.tmp"), opt, meta);
        File.Move(Path.Combine(dir, "optimizer.safetensors.tmp"), Path.Combine(dir, "optimizer.safetensors"), overwrite: true);
        var state = new TrainerState(Step, _optim.StepCount, Options.Seed, Options.Epochs, Options.BatchSize, Options.Accumulate, Options.Lr, _train.Count);
        File.WriteAllText(Path.Combine(dir, "trainer.json"), JsonSerializer.Serialize(state, new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>The bookkeeping saved next to the weights.</summary>
    public sealed record TrainerState(long Step, long OptimizerStepCount, int Seed, int Epochs, int BatchSize, int Accumulate, double Lr, int TrainCount);

    /// <summary>Restores weights, AdamW moments and the step from <see cref="SaveCheckpoint"/>'s folder.</summary>
    public void LoadCheckpoint(string dir)
    {
        var state = JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(Path.Combine(dir, "trainer.json")))
                    ?? throw new InvalidDataException($"bad trainer.json in {dir}");
        if (state.Seed != Options.Seed || state.BatchSize != Options.BatchSize || state.Accumulate != Options.Accumulate || state.TrainCount != _train.Count)
            throw new InvalidOperationException($"checkpoint was made with seed {state.Seed}, batch {state.BatchSize}, accumulate {state.Accumulate}, {state.TrainCount} images; " +
                                                $"this run has seed {Options.Seed}, batch {Options.BatchSize}, accumulate {Options.Accumulate}, {_train.Count} images");
        BuildSam.load_checkpoint(_model, Path.Combine(dir, "model.safetensors"));
        var file = SafeTensors.Read(Path.Combine(dir, "optimizer.safetensors"));
        var loaded = new Dictionary<string, (long, Tensor, Tensor)>();
        try
        {
            foreach (var (key, rec) in file.Tensors)
            {
                if (!key.StartsWith("exp_avg.", StringComparison.Ordinal)) continue;
                string name = key["exp_avg.".Length..];
                if (!file.Tensors.TryGetValue("exp_avg_sq." + name, out var sq) || !file.Tensors.TryGetValue("step." + name, out var stepRec))
                    throw new InvalidDataException($"optimizer.safetensors lacks exp_avg_sq or step for {name}");
                if (stepRec.DType != ScalarType.Int64 || stepRec.Data.Length != 8) throw new InvalidDataException($"bad step for {name}");
                loaded[name] = (BitConverter.ToInt64(stepRec.Data),
                                rec.ToTensor().DetachFromDisposeScope(), sq.ToTensor().DetachFromDisposeScope());
            }
            _optim.LoadState(state.OptimizerStepCount, loaded);
        }
        finally
        {
            foreach (var (_, a, b) in loaded.Values) { a.Dispose(); b.Dispose(); }
        }
        Step = state.Step;
    }

    public void Dispose() => _optim.Dispose();
}
