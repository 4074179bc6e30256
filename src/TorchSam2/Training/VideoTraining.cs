using TorchSam2.IO;
using TorchSam2.Modeling;
using TorchSam2.Modeling.Backbones;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchSam2.Training;

// Video-clip training with memory, after SAM2Train (training/model/sam2.py: prepare_prompt_inputs,
// forward_tracking, track_step, _iter_correct_pt_sampling) and the VOS data pipeline (training/dataset).

/// <summary>
/// A video clip: frames in time order and, per frame, one row-major mask (frame Height×Width) per object.
/// Masks[t][k] is object k on frame t (all false where it is absent); every frame lists the same objects.
/// </summary>
public sealed record VideoClip(IReadOnlyList<RgbImage> Frames, IReadOnlyList<IReadOnlyList<bool[]>> Masks, string Name = "")
{
    public int NumFrames => Frames.Count;
    public int NumObjects => Masks.Count == 0 ? 0 : Masks[0].Count;
}

/// <summary>A set of videos from which clips are drawn (one clip per index and draw).</summary>
public interface IVideoClipDataset
{
    /// <summary>Number of videos (one clip per video per epoch, as upstream's VOSDataset).</summary>
    int Count { get; }
    /// <summary>A clip of video <paramref name="index"/>; with a Random the start frame (and time reversal) are drawn, else the first frames.</summary>
    VideoClip Get(int index, Random? rng = null);
}

/// <summary>In-memory clips (tests, synthetic data); Get returns the clip as stored.</summary>
public sealed class InMemoryVideoClipDataset(IReadOnlyList<VideoClip> clips) : IVideoClipDataset
{
    public int Count => clips.Count;
    public VideoClip Get(int index, Random? rng = null) => clips[index];
}

/// <summary>
/// DAVIS / SA-V style folders: <c>JPEGImages/VIDEO/FRAME.jpg</c> with <c>Annotations/VIDEO/FRAME.png</c> (palette or
/// RGB PNG; every distinct non-black colour is one object id). Only frames with an annotation are used; videos with
/// fewer than <c>numFrames</c> such frames are skipped. A clip is <c>numFrames</c>
/// consecutive annotated frames (RandomUniformSampler): a random start where the first frame shows an object,
/// reversed in time with <c>reverseTimeProb</c>.
/// </summary>
public sealed class VideoFolderDataset : IVideoClipDataset
{
    private static readonly string[] ImageExts = [".jpg", ".jpeg", ".png", ".bmp", ".webp"];
    private readonly List<(string name, List<(string image, string mask)> frames)> _videos = new();
    private readonly int _numFrames;
    private readonly double _reverseTimeProb;

    public VideoFolderDataset(string root, int numFrames = 8, double reverseTimeProb = 0.0)
    {
        if (numFrames < 1 || numFrames > 1024) throw new ArgumentOutOfRangeException(nameof(numFrames), numFrames, $"clip frames must be 1..1024, got {numFrames}");
        _numFrames = numFrames;
        _reverseTimeProb = reverseTimeProb;
        string imgRoot = Path.Combine(root, "JPEGImages"), annRoot = Path.Combine(root, "Annotations");
        if (!Directory.Exists(imgRoot) || !Directory.Exists(annRoot))
            throw new DirectoryNotFoundException($"{root} needs JPEGImages/<video>/ and Annotations/<video>/ folders");
        foreach (var vdir in Directory.GetDirectories(imgRoot).OrderBy(d => d, StringComparer.Ordinal))
        {
            string name = Path.GetFileName(vdir);
            string adir = Path.Combine(annRoot, name);
            if (!Directory.Exists(adir)) continue;
            var frames = new List<(string, string)>();
            foreach (var f in Directory.GetFiles(vdir).Where(f => ImageExts.Contains(Path.GetExtension(f).ToLowerInvariant()))
                                                     .OrderBy(f => f, StringComparer.Ordinal))
            {
                var m = Path.Combine(adir, Path.GetFileNameWithoutExtension(f) + ".png");
                if (File.Exists(m)) frames.Add((f, m));
            }
            if (frames.Count >= numFrames) _videos.Add((name, frames));
        }
        if (_videos.Count == 0) throw new InvalidDataException($"no video in {root} has {numFrames} annotated frames");
    }

    public int Count => _videos.Count;
    public string VideoName(int index) => _videos[index].name;

    public VideoClip Get(int index, Random? rng = null)
    {
        var (name, frames) = _videos[index];
        int starts = frames.Count - _numFrames + 1;
        // the first frame must show at least one object (upstream retries random starts)
        var order = rng is null ? Enumerable.Range(0, starts) : Enumerable.Range(0, Math.Min(100, starts * 4)).Select(_ => rng.Next(starts));
        foreach (int start in order.Concat(Enumerable.Range(0, starts)))
        {
            var sel = frames.Skip(start).Take(_numFrames).ToList();
            if (rng is not null && _reverseTimeProb > 0 && rng.NextDouble() < _reverseTimeProb) sel.Reverse();
            var firstIds = RgbImage.Load(sel[0].mask);
            if (!firstIds.Pixels.Any(b => b != 0)) continue;
            var images = sel.Select(s => RgbImage.Load(s.image)).ToList();
            var ids = sel.Select((s, i) => i == 0 ? firstIds : RgbImage.Load(s.mask)).ToList();
            for (int i = 0; i < ids.Count; i++)
                if (ids[i].Height != images[i].Height || ids[i].Width != images[i].Width)
                    throw new InvalidDataException($"{sel[i].mask} is {ids[i].Height}×{ids[i].Width} but its frame is {images[i].Height}×{images[i].Width}");
            return new VideoClip(images, MasksFromIdFrames(ids), $"{name}@{start}");
        }
        throw new InvalidDataException($"video {name}: no clip of {_numFrames} frames starts on a frame with an object");
    }

    /// <summary>Per-frame object masks from id maps: one object per distinct non-black colour over the whole clip (increasing colour order).</summary>
    public static List<IReadOnlyList<bool[]>> MasksFromIdFrames(IReadOnlyList<RgbImage> ids)
    {
        var keys = new SortedSet<int>();
        var perFrame = ids.Select(img =>
        {
            int n = img.Height * img.Width;
            var k = new int[n];
            var p = img.Pixels;
            for (int i = 0; i < n; i++) { k[i] = (p[3 * i] << 16) | (p[3 * i + 1] << 8) | p[3 * i + 2]; if (k[i] != 0) keys.Add(k[i]); }
            return k;
        }).ToList();
        var result = new List<IReadOnlyList<bool[]>>();
        foreach (var k in perFrame)
        {
            var masks = new List<bool[]>();
            foreach (var key in keys)
            {
                var m = new bool[k.Length];
                for (int i = 0; i < k.Length; i++) m[i] = k[i] == key;
                masks.Add(m);
            }
            result.Add(masks);
        }
        return result;
    }
}

/// <summary>
/// Synthetic clips of discs and squares moving with constant velocity (bouncing off the borders) over a noisy
/// background; later shapes occlude earlier ones. Clip i depends only on (seed, i).
/// </summary>
public sealed class MovingShapesVideoDataset : IVideoClipDataset
{
    private readonly VideoClip?[] _cache;
    private readonly int _numFrames, _size, _seed, _maxShapes;

    public MovingShapesVideoDataset(int count, int numFrames = 3, int size = 96, int seed = 0, int maxShapes = 2)
    {
        _cache = new VideoClip?[count];
        _numFrames = numFrames;
        _size = size;
        _seed = seed;
        _maxShapes = Math.Max(1, maxShapes);
    }

    public int Count => _cache.Length;

    public VideoClip Get(int index, Random? rng = null) => _cache[index] ??= Generate(_numFrames, _size, (int)(Sam2Trainer.Mix(_seed, 17, index) & 0x7FFFFFFF), _maxShapes, $"shapes_{index}");

    public static VideoClip Generate(int numFrames, int size, int seed, int maxShapes = 2, string name = "")
    {
        var rng = new Random(seed);
        int count = 1 + rng.Next(maxShapes);
        var shapes = Enumerable.Range(0, count).Select(_ => (
            disc: rng.Next(2) == 0,
            r: rng.Next(size / 10, size / 5),
            x: rng.Next(size / 4, size * 3 / 4) + 0.0, y: rng.Next(size / 4, size * 3 / 4) + 0.0,
            vx: (rng.NextDouble() * 2 - 1) * size / 12, vy: (rng.NextDouble() * 2 - 1) * size / 12,
            col: new[] { (byte)rng.Next(120, 256), (byte)rng.Next(0, 256), (byte)rng.Next(0, 256) })).ToArray();
        var frames = new List<RgbImage>();
        var masks = new List<IReadOnlyList<bool[]>>();
        for (int t = 0; t < numFrames; t++)
        {
            var px = new byte[size * size * 3];
            for (int i = 0; i < px.Length; i++) px[i] = (byte)(40 + rng.Next(20));
            var fm = new List<bool[]>();
            for (int s = 0; s < shapes.Length; s++)
            {
                var sh = shapes[s];
                var m = new bool[size * size];
                int cx = (int)Math.Round(sh.x), cy = (int)Math.Round(sh.y), r = sh.r;
                for (int y = Math.Max(0, cy - r); y <= Math.Min(size - 1, cy + r); y++)
                    for (int x = Math.Max(0, cx - r); x <= Math.Min(size - 1, cx + r); x++)
                    {
                        if (sh.disc && (x - cx) * (x - cx) + (y - cy) * (y - cy) > r * r) continue;
                        m[y * size + x] = true;
                        for (int c = 0; c < 3; c++) px[(y * size + x) * 3 + c] = sh.col[c];
                    }
                foreach (var prev in fm) for (int i = 0; i < m.Length; i++) if (m[i]) prev[i] = false;
                fm.Add(m);
                // move, bouncing off the borders
                double nx = sh.x + sh.vx, ny = sh.y + sh.vy;
                if (nx < r || nx > size - 1 - r) { sh.vx = -sh.vx; nx = sh.x + sh.vx; }
                if (ny < r || ny > size - 1 - r) { sh.vy = -sh.vy; ny = sh.y + sh.vy; }
                sh.x = nx; sh.y = ny;
                shapes[s] = sh;
            }
            frames.Add(new RgbImage(px, size, size));
            masks.Add(fm);
        }
        return new VideoClip(frames, masks, name);
    }
}

/// <summary>
/// Prompt simulation on clips (SAM2Train options, defaults of configs/sam2.1_training): the initial conditioning
/// frames get a GT mask or (with <see cref="ProbToUsePtInput"/>) a click or noised box, and correction clicks are
/// sampled on up to <see cref="NumFramesToCorrect"/> frames.
/// </summary>
public sealed record VideoPromptOptions
{
    /// <summary>prob_to_use_pt_input_for_train: clicks/box instead of the GT mask on the initial conditioning frames.</summary>
    public double ProbToUsePtInput { get; init; } = 0.5;
    /// <summary>prob_to_use_box_input_for_train: a box instead of one click (per conditioning frame).</summary>
    public double ProbToUseBoxInput { get; init; } = 0.5;
    /// <summary>num_init_cond_frames_for_train: frame 0 plus random others are prompted.</summary>
    public int NumInitCondFrames { get; init; } = 2;
    /// <summary>rand_init_cond_frames_for_train: the count is drawn from 1..NumInitCondFrames.</summary>
    public bool RandInitCondFrames { get; init; } = true;
    /// <summary>num_frames_to_correct_for_train: frames that get correction clicks (the conditioning frames first).</summary>
    public int NumFramesToCorrect { get; init; } = 2;
    /// <summary>rand_frames_to_correct_for_train: the count is drawn from #cond..NumFramesToCorrect.</summary>
    public bool RandFramesToCorrect { get; init; } = true;
    /// <summary>add_all_frames_to_correct_as_cond: a corrected frame becomes a conditioning frame.</summary>
    public bool AddAllFramesToCorrectAsCond { get; init; } = true;
    public int NumCorrectionPtPerFrame { get; init; } = 7;
    public double ProbToSampleFromGt { get; init; } = 0.1;
    /// <summary>"uniform" for training, "center" for evaluation.</summary>
    public string Method { get; init; } = "uniform";
    public double BoxNoise { get; init; } = 0.1;
    public double BoxNoiseBound { get; init; } = 20;

    /// <summary>Probabilities in [0, 1], frame counts ≥ 1, 0..<see cref="Utils.Limits.MaxCorrectionClicks"/> correction clicks, finite box noise.</summary>
    public void Validate()
    {
        OptionChecks.Probability(nameof(ProbToUsePtInput), ProbToUsePtInput);
        OptionChecks.Probability(nameof(ProbToUseBoxInput), ProbToUseBoxInput);
        OptionChecks.Count(nameof(NumInitCondFrames), NumInitCondFrames, 1, 1024);
        OptionChecks.Count(nameof(NumFramesToCorrect), NumFramesToCorrect, 0, 1024);
        OptionChecks.Count(nameof(NumCorrectionPtPerFrame), NumCorrectionPtPerFrame, 0, Utils.Limits.MaxCorrectionClicks);
        OptionChecks.Probability(nameof(ProbToSampleFromGt), ProbToSampleFromGt);
        OptionChecks.Method(nameof(Method), Method);
        OptionChecks.Real(nameof(BoxNoise), BoxNoise, 0, 100);
        OptionChecks.Real(nameof(BoxNoiseBound), BoxNoiseBound, 0, 1e6);
    }
}

/// <summary>A clip ready for the model: normalized CHW frames at S×S and per-frame object masks at S×S (Masks[t][k]).</summary>
public sealed record PreparedClip(IReadOnlyList<float[]> Frames, IReadOnlyList<IReadOnlyList<bool[]>> Masks, int Size)
{
    public int NumFrames => Frames.Count;
    public int NumObjects => Masks.Count == 0 ? 0 : Masks[0].Count;

    /// <summary>
    /// Resizes/augments every frame with the same random transform (one seed per clip) and keeps at most
    /// maxObjects objects among those visible on the first frame (random subset when rng is given, as the sampler).
    /// </summary>
    public static PreparedClip From(VideoClip clip, int size, Random? rng, AugmentationOptions? augment, int maxObjects = int.MaxValue)
    {
        var visible = Enumerable.Range(0, clip.NumObjects).Where(k => clip.Masks[0][k].Any(v => v)).ToList();
        if (visible.Count > maxObjects)
        {
            if (rng is not null)
                for (int i = 0; i < maxObjects; i++) { int j = i + rng.Next(visible.Count - i); (visible[i], visible[j]) = (visible[j], visible[i]); }
            visible = visible.Take(maxObjects).ToList();
        }
        int augSeed = rng?.Next() ?? 0;
        var frames = new List<float[]>();
        var masks = new List<IReadOnlyList<bool[]>>();
        for (int t = 0; t < clip.NumFrames; t++)
        {
            var sample = new SegmentationSample(clip.Frames[t], visible.Select(k => clip.Masks[t][k]).ToList());
            // the same seed for every frame → the same flip / affine / colour jitter on the whole clip
            var p = SampleTransforms.Prepare(sample, size, rng is null ? null : new Random(augSeed), augment);
            frames.Add(p.Image);
            masks.Add(p.Masks);
        }
        return new PreparedClip(frames, masks, size);
    }
}

/// <summary>Per-frame outputs of <see cref="VideoClipTrainer.ForwardTracking"/> (each list: one entry per decoder pass).</summary>
public sealed class VideoFrameOutputs
{
    public List<Tensor> MultimasksHighRes { get; } = new();
    public List<Tensor> Ious { get; } = new();
    public List<Tensor> ObjectScoreLogits { get; } = new();
    /// <summary>Final mask logits [N, 1, S, S].</summary>
    public Tensor? PredMasksHighRes { get; set; }
    public bool IsConditioning { get; set; }
    public bool Corrected { get; set; }
}

/// <summary>The prompt plan of one clip (prepare_prompt_inputs).</summary>
public sealed record VideoPromptPlan(bool UsePtInput, IReadOnlyList<int> InitCondFrames, IReadOnlyList<int> FramesToCorrect);

/// <summary>
/// Trains SAM 2.1 on video clips with memory as SAM2Train does: all frames through the image encoder, the initial
/// conditioning frames prompted (GT mask, click or box), every other frame tracked through
/// <see cref="SAM2Base._track_step"/> with memory attention over the earlier frames' memories and object pointers,
/// correction clicks on up to NumFramesToCorrect frames, and the multi-step multi-mask loss summed over frames
/// (each normalized by the number of objects). Optimizer, schedule, accumulation, seeding and checkpoints are
/// <see cref="Sam2Trainer"/>'s: <see cref="TrainerOptions.BatchSize"/> is clips per micro-batch and
/// <see cref="TrainerOptions.MaxObjectsPerImage"/> objects per clip.
/// </summary>
public sealed class VideoClipTrainer : IDisposable
{
    private readonly SAM2Base _model;
    private readonly IVideoClipDataset _train;
    private readonly Sam2Trainer _inner;
    private readonly Device _device;

    public TrainerOptions Options => _inner.Options;
    public VideoPromptOptions Video { get; }
    public SAM2Base Model => _model;
    public long Step => _inner.Step;
    public long StepsPerEpoch => _inner.StepsPerEpoch;
    public long TotalSteps => _inner.TotalSteps;
    /// <summary>The image trainer that holds the optimizer (param groups, schedule, checkpoints).</summary>
    public Sam2Trainer Inner => _inner;

    public VideoClipTrainer(SAM2Base model, IVideoClipDataset train, TrainerOptions options, VideoPromptOptions? video = null)
    {
        if (model.num_maskmem == 0) throw new ArgumentException("video training needs a model with memory (num_maskmem > 0)");
        Video = video ?? new VideoPromptOptions();
        Video.Validate();
        if (Video.ProbToUsePtInput > 0 && Video.NumFramesToCorrect < Video.NumInitCondFrames)
            throw new ArgumentException("NumFramesToCorrect must be ≥ NumInitCondFrames when point inputs are used");
        if (Video.NumInitCondFrames < 1) throw new ArgumentException("NumInitCondFrames must be ≥ 1");
        _model = model;
        _train = train;
        _device = model.device;
        _inner = new Sam2Trainer(model, new CountOnly(train.Count), null, options);
    }

    // Sam2Trainer only needs the count (batches, schedule, checkpoint bookkeeping).
    private sealed class CountOnly(int count) : ISegmentationDataset
    {
        public int Count => count;
        public SegmentationSample Get(int index) => throw new NotSupportedException("video clips are loaded by VideoClipTrainer");
    }

    /// <summary>One optimizer step over Accumulate micro-batches of BatchSize clips.</summary>
    public StepResult TrainStep() =>
        _inner.TrainStepWith((idx, rng) =>
        {
            var clips = idx.Select(i => PreparedClip.From(_train.Get(i, rng), _model.image_size, rng, Options.Augment, Options.MaxObjectsPerImage)).ToList();
            return ForwardLoss(clips, rng, Video);
        });

    /// <summary>Trains until TotalSteps, saving a resumable checkpoint (and outDir/model.safetensors) at each epoch end.</summary>
    public void Train(string? outDir = null, IProgress<TrainProgress>? progress = null, CancellationToken cancel = default) =>
        _inner.RunLoop(TrainStep, () => ValidationFolder is null ? null : EvaluateVos(ValidationFolder), outDir, progress, cancel);

    /// <summary>
    /// A VOS folder (JPEGImages/ + Annotations/, DAVIS layout) scored at each epoch end: J&amp;F as eval-vos computes it,
    /// reported in <see cref="TrainProgress.Eval"/> (<see cref="EvalResult.Vos"/>).
    /// </summary>
    public string? ValidationFolder { get; init; }

    /// <summary>
    /// J&amp;F of the model as it is now on a VOS folder: each video segmented from its first frame's masks with the video
    /// predictor (non-overlapping objects, as vos_inference.py), then scored; the model goes back to training mode.
    /// </summary>
    public EvalResult EvaluateVos(string folder)
    {
        try
        {
            // the predictor puts the model in eval mode; it does not own it
            using var predictor = new Sam2VideoPredictor(_model, nonOverlapMasks: true);
            var r = Evaluation.VosValidation.Evaluate(predictor, folder);
            return new EvalResult(0, 0, r.Objects.Count()) { Vos = r };
        }
        finally
        {
            _model.train();
        }
    }

    public void SaveCheckpoint(string dir) => _inner.SaveCheckpoint(dir);
    public void LoadCheckpoint(string dir) => _inner.LoadCheckpoint(dir);

    /// <summary>
    /// prepare_prompt_inputs: whether clicks/boxes (else GT masks) prompt the clip, the initial conditioning frames
    /// (frame 0 first) and the frames that receive correction clicks. Draw order follows upstream.
    /// </summary>
    public static VideoPromptPlan PlanPrompts(int numFrames, VideoPromptOptions o, Random rng)
    {
        double probPt = o.ProbToUsePtInput;
        int numCorrect = o.NumFramesToCorrect, numInit = o.NumInitCondFrames;
        if (numFrames == 1) { probPt = 1.0; numCorrect = 1; numInit = 1; }
        numInit = Math.Min(numInit, numFrames);
        numCorrect = Math.Min(numCorrect, numFrames);
        bool usePt = rng.NextDouble() < probPt;
        if (o.RandInitCondFrames && numInit > 1) numInit = 1 + rng.Next(numInit);
        if (usePt && o.RandFramesToCorrect && numCorrect > numInit) numCorrect = numInit + rng.Next(numCorrect - numInit + 1);
        var init = new List<int> { 0 };
        init.AddRange(Choice(Enumerable.Range(1, numFrames - 1).ToList(), numInit - 1, rng));
        var notInit = Enumerable.Range(0, numFrames).Where(t => !init.Contains(t)).ToList();
        List<int> correct;
        if (!usePt) correct = new();
        else if (numCorrect <= numInit) correct = init.ToList();
        else correct = init.Concat(Choice(notInit, numCorrect - numInit, rng)).ToList();
        return new VideoPromptPlan(usePt, init, correct);
    }

    // rng.choice(range, k, replace=False)
    private static List<int> Choice(List<int> from, int k, Random rng)
    {
        var a = from.ToList();
        k = Math.Min(k, a.Count);
        for (int i = 0; i < k; i++) { int j = i + rng.Next(a.Count - i); (a[i], a[j]) = (a[j], a[i]); }
        return a.Take(k).ToList();
    }

    /// <summary>
    /// Loss of a micro-batch of clips (all with the same frame count): Σ over frames of MultiStepMultiMasksAndIous
    /// with numObjects = objects in the batch. Null when no clip has an object.
    /// </summary>
    public LossTerms? ForwardLoss(IReadOnlyList<PreparedClip> clips, Random rng, VideoPromptOptions prompts)
    {
        int N = clips.Sum(c => c.NumObjects);
        if (N == 0) return null;
        using var scope = NewDisposeScope();
        var (frames, gtT) = ForwardTracking(clips, rng, prompts);
        Tensor lm = zeros([], ScalarType.Float32, _device), ld = lm, li = lm, lc = lm, core = lm;
        for (int t = 0; t < frames.Count; t++)
        {
            var f = frames[t];
            var terms = Options.Loss.Forward(f.MultimasksHighRes, f.Ious, f.ObjectScoreLogits, gtT[t].squeeze(1), N);
            lm = lm + terms.Mask.@float(); ld = ld + terms.Dice.@float(); li = li + terms.Iou.@float(); lc = lc + terms.Class.@float();
            core = core + terms.Core.@float();
        }
        return new LossTerms { Mask = lm, Dice = ld, Iou = li, Class = lc, Core = core }.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// forward_tracking on a batch of clips: returns per-frame outputs (in frame order) and the GT masks per frame
    /// ([N, 1, S, S] float). Tensors belong to the caller's dispose scope.
    /// </summary>
    public (List<VideoFrameOutputs> frames, List<Tensor> gt) ForwardTracking(IReadOnlyList<PreparedClip> clips, Random rng, VideoPromptOptions p)
    {
        int S = _model.image_size;
        int T = clips[0].NumFrames;
        if (clips.Any(c => c.NumFrames != T || c.Size != S)) throw new ArgumentException($"all clips need {T} frames at {S}×{S}");
        // objects flattened over clips (obj_to_img_idx upstream)
        var objClip = new List<int>();
        for (int c = 0; c < clips.Count; c++) for (int k = 0; k < clips[c].NumObjects; k++) objClip.Add(c);
        int N = objClip.Count;

        // all frames of all clips through the backbone at once (image index c·T + t)
        var flat = new float[clips.Count * T * 3 * S * S];
        for (int c = 0; c < clips.Count; c++)
            for (int t = 0; t < T; t++) clips[c].Frames[t].CopyTo(flat, (c * T + t) * 3 * S * S);
        var img = tensor(flat, new long[] { clips.Count * T, 3, S, S }, device: _device);
        var bo = Inner.EncodeImages(img);
        var (_, feats, pos, sizes) = _model._prepare_backbone_features(bo);

        var gtCpu = new List<bool[][]>();
        var gtT = new List<Tensor>();
        for (int t = 0; t < T; t++)
        {
            var g = new bool[N][];
            int n = 0;
            foreach (var c in clips) for (int k = 0; k < c.NumObjects; k++) g[n++] = c.Masks[t][k];
            gtCpu.Add(g);
            var gf = new bool[N * S * S];
            for (int i = 0; i < N; i++) g[i].CopyTo(gf, i * S * S);
            gtT.Add(tensor(gf, new long[] { N, 1, S, S }, device: _device).@float());
        }

        var plan = PlanPrompts(T, p, rng);
        var pointInputs = new Dictionary<int, PointInputs>();
        var maskInputs = new Dictionary<int, Tensor>();
        foreach (int t in plan.InitCondFrames)
        {
            if (!plan.UsePtInput) { maskInputs[t] = gtT[t]; continue; }
            bool useBox = rng.NextDouble() < p.ProbToUseBoxInput;
            var pts = new List<(float x, float y, int label)>[N];
            for (int i = 0; i < N; i++)
                pts[i] = useBox
                    ? PromptSimulation.SampleBoxPoints(gtCpu[t][i], S, S, rng, p.BoxNoise, p.BoxNoiseBound).ToList()
                    : [PromptSimulation.GetNextPoint(gtCpu[t][i], null, S, S, p.Method, rng)];
            pointInputs[t] = PromptSimulation.ToPointInputs(pts, _device);
        }

        var order = plan.InitCondFrames.Concat(Enumerable.Range(0, T).Where(t => !plan.InitCondFrames.Contains(t))).ToList();
        var outputDict = new OutputDict();
        var results = new VideoFrameOutputs[T];
        foreach (int t in order)
        {
            var idx = tensor(objClip.Select(c => (long)(c * T + t)).ToArray(), new long[] { N }, device: _device);
            var curFeats = feats.Select(x => x.index_select(1, idx)).ToList();
            var curPos = pos.Select(x => x.index_select(1, idx)).ToList();
            bool isInit = plan.InitCondFrames.Contains(t);
            bool correct = plan.FramesToCorrect.Contains(t);
            var (current, fo) = TrackStep(t, isInit, curFeats, curPos, sizes, pointInputs.GetValueOrDefault(t), maskInputs.GetValueOrDefault(t),
                                          gtCpu[t], correct, outputDict, T, rng, p);
            bool asCond = isInit || (p.AddAllFramesToCorrectAsCond && correct);
            fo.IsConditioning = asCond;
            fo.Corrected = correct;
            (asCond ? outputDict.cond_frame_outputs : outputDict.non_cond_frame_outputs)[t] = current;
            results[t] = fo;
        }
        // the frame outputs' tensors live in the caller's scope; nothing else to release
        return (results.ToList(), gtT);
    }

    /// <summary>
    /// SAM2Train.track_step: the SAM step with memory (SAM2Base._track_step), then correction clicks when the frame
    /// is to be corrected (_iter_correct_pt_sampling), then the memory encoder on the final mask.
    /// </summary>
    private (FrameOutput current, VideoFrameOutputs outs) TrackStep(int frameIdx, bool isInit, List<Tensor> feats, List<Tensor> pos,
        List<(long H, long W)> sizes, PointInputs? pointInputs, Tensor? maskInputs, bool[][] gt, bool correct, OutputDict outputDict,
        int numFrames, Random rng, VideoPromptOptions p)
    {
        int S = _model.image_size, N = gt.Length;
        var (current, sam, high, pix) = _model._track_step(frameIdx, isInit, feats, pos, sizes, pointInputs, maskInputs, outputDict, numFrames, false, null);
        var fo = new VideoFrameOutputs();
        fo.MultimasksHighRes.Add(sam.high_res_multimasks);
        fo.Ious.Add(sam.ious);
        fo.ObjectScoreLogits.Add(sam.object_score_logits);
        Tensor lowRes = sam.low_res_masks, highRes = sam.high_res_masks, objPtr = sam.obj_ptr, objScore = sam.object_score_logits;
        var pts = pointInputs;
        if (correct)
        {
            var clicks = new List<(float x, float y, int label)>[N];
            for (int i = 0; i < N; i++) clicks[i] = new();
            for (int step = 0; step < p.NumCorrectionPtPerFrame; step++)
            {
                // one draw per step for the whole batch, as upstream
                bool fromGt = p.ProbToSampleFromGt > 0 && rng.NextDouble() < p.ProbToSampleFromGt;
                bool[]? predFlat = null;
                if (!fromGt)
                    using (no_grad())
                    using (var bin = highRes > 0)
                    using (var cpu = bin.to(CPU))
                        predFlat = cpu.contiguous().ToArray<bool>();
                var newPts = new List<(float x, float y, int label)>[N];
                for (int i = 0; i < N; i++)
                {
                    var pred = predFlat?.AsSpan(i * S * S, S * S).ToArray();
                    newPts[i] = [PromptSimulation.GetNextPoint(gt[i], pred, S, S, p.Method, rng)];
                }
                var add = PromptSimulation.ToPointInputs(newPts, _device);
                pts = pts is null ? add : new PointInputs(cat([pts.point_coords, add.point_coords], 1), cat([pts.point_labels, add.point_labels], 1));
                bool multimask = _model._use_multimask(isInit, pts);
                var s2 = _model._forward_sam_heads(pix, pts, lowRes, high, multimask);
                fo.MultimasksHighRes.Add(s2.high_res_multimasks);
                fo.Ious.Add(s2.ious);
                fo.ObjectScoreLogits.Add(s2.object_score_logits);
                lowRes = s2.low_res_masks; highRes = s2.high_res_masks; objPtr = s2.obj_ptr; objScore = s2.object_score_logits;
            }
        }
        current.pred_masks = lowRes.alias();
        current.pred_masks_high_res = highRes.alias();
        current.obj_ptr = objPtr.alias();
        if (!_model.training) current.object_score_logits = objScore.alias();
        _model._encode_memory_in_output(feats, sizes, pts, true, highRes, objScore, current);
        fo.PredMasksHighRes = highRes;
        return (current, fo);
    }

    public void Dispose() => _inner.Dispose();
}
