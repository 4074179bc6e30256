using TorchSam2.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchSam2.Evaluation;

/// <summary>Options of <see cref="VosVideo.Run"/> (the flags of tools/vos_inference.py).</summary>
public sealed record VosInferenceOptions
{
    /// <summary>--per_obj_png_file: masks in the SA-V layout (MASKS/VIDEO/OBJECT/FRAME.png), objects may overlap.</summary>
    public bool PerObject { get; init; }
    /// <summary>--track_object_appearing_later_in_video: each object tracked on its own from the first frame it appears on.</summary>
    public bool TrackObjectsAppearingLater { get; init; }
    /// <summary>--use_all_masks: every available annotation is an input (else the first frame's, or each object's first).</summary>
    public bool UseAllMasks { get; init; }
    /// <summary>--score_thresh: a pixel belongs to an object where its mask logit is above this.</summary>
    public float ScoreThreshold { get; init; }
}

/// <summary>
/// One video of a VOS dataset run as tools/vos_inference.py does: the ground-truth masks of the first frame (and,
/// with the options, of later frames) are added, the objects propagated forward through the video, and every frame's
/// per-object masks handed to a callback (as they are produced, so memory does not grow with the video).
/// </summary>
public sealed class VosVideo
{
    public string Name { get; }
    public string FramesDir { get; }
    public string MasksDir { get; }
    /// <summary>Frame file names without extension, in the predictor's order.</summary>
    public IReadOnlyList<string> FrameNames { get; }
    public VosInferenceOptions Options { get; }
    /// <summary>The palette of the last annotation read (written back into the outputs), null before <see cref="Run"/> or for grayscale annotations.</summary>
    public byte[]? Palette { get; private set; }
    /// <summary>The frame size (set by <see cref="Run"/> before the first frame is handed out).</summary>
    public int Height { get; private set; }
    public int Width { get; private set; }

    private VosVideo(string name, string framesDir, string masksDir, IReadOnlyList<string> frames, VosInferenceOptions o)
    {
        Name = name;
        FramesDir = framesDir;
        MasksDir = masksDir;
        FrameNames = frames;
        Options = o;
    }

    /// <summary>A video: FRAMES_ROOT/NAME (JPEG/PNG frames) with its annotations in MASKS_ROOT/NAME.</summary>
    public static VosVideo Open(string framesRoot, string masksRoot, string name, VosInferenceOptions? options = null)
    {
        string fdir = Path.Combine(framesRoot, name), mdir = Path.Combine(masksRoot, name);
        if (!Directory.Exists(fdir)) throw new DirectoryNotFoundException($"video '{name}': no frame folder {fdir}");
        if (!Directory.Exists(mdir)) throw new DirectoryNotFoundException($"video '{name}': no annotation folder {mdir}");
        return new VosVideo(name, fdir, mdir, FrameFiles(fdir).Select(Path.GetFileNameWithoutExtension).ToList()!, options ?? new VosInferenceOptions());
    }

    /// <summary>The frame files of a folder in the order <see cref="LazyFrameSource.FromFolder"/> numbers them.</summary>
    public static IReadOnlyList<string> FrameFiles(string folder)
    {
        string[] exts = [".jpg", ".jpeg", ".png"];
        var files = Directory.GetFiles(folder).Where(p => exts.Contains(Path.GetExtension(p).ToLowerInvariant())).ToList();
        if (files.Count == 0) throw new InvalidDataException($"no JPEG/PNG frames in '{folder}'");
        bool numeric = files.All(p => long.TryParse(Path.GetFileNameWithoutExtension(p), out _));
        return numeric ? files.OrderBy(p => long.Parse(Path.GetFileNameWithoutExtension(p))).ToList()
                       : files.OrderBy(p => Path.GetFileName(p), StringComparer.Ordinal).ToList();
    }

    // load_masks_from_dir: object id → mask of one frame (null when the frame has no annotation and missing is allowed)
    private Dictionary<int, bool[]>? LoadMasks(int frameIdx, bool allowMissing, out int h, out int w)
    {
        h = w = 0;
        string frame = FrameNames[frameIdx];
        var result = new Dictionary<int, bool[]>();
        if (!Options.PerObject)
        {
            string path = Path.Combine(MasksDir, frame + ".png");
            if (!File.Exists(path))
            {
                if (allowMissing) return null;
                throw new FileNotFoundException($"video '{Name}': no annotation for frame {frameIdx} ({path}); objects that appear only later need --track-object-appearing-later", path);
            }
            var m = LabelPng.Read(path);
            Palette = m.Palette;
            h = m.Height; w = m.Width;
            foreach (int id in m.Labels.Where(v => v > 0).Distinct().Order())
            {
                if (id > 255) throw new InvalidDataException($"{path}: object id {id} is above 255 (masks are 8-bit palette PNGs)");
                result[id] = Array.ConvertAll(m.Labels, v => v == id);
            }
            return result;
        }
        foreach (var objDir in Directory.GetDirectories(MasksDir).OrderBy(d => d, StringComparer.Ordinal))
        {
            string objName = Path.GetFileName(objDir);
            if (!int.TryParse(objName, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int id) || id is < 0 or > 255)
                throw new InvalidDataException($"video '{Name}': object folder '{objName}' is not a number in 0..255 (SA-V layout: VIDEO/000/, VIDEO/001/, ...)");
            string path = Path.Combine(objDir, frame + ".png");
            if (!File.Exists(path))
            {
                if (allowMissing) continue;
                throw new FileNotFoundException($"video '{Name}': no annotation of object {objName} for frame {frameIdx} ({path}); objects that appear only later need --track-object-appearing-later", path);
            }
            var m = LabelPng.Read(path);
            Palette = m.Palette;
            h = m.Height; w = m.Width;
            result[id] = m.Foreground();
        }
        return result;
    }

    private bool HasAnnotation(int frameIdx) => Options.PerObject
        ? Directory.GetDirectories(MasksDir).Any(d => File.Exists(Path.Combine(d, FrameNames[frameIdx] + ".png")))
        : File.Exists(Path.Combine(MasksDir, FrameNames[frameIdx] + ".png"));

    /// <summary>
    /// Runs the video. <paramref name="onFrame"/> receives (frame index, object id → H×W mask); in the DAVIS layout
    /// every frame once with all objects (non-overlapping), with <see cref="VosInferenceOptions.PerObject"/> and
    /// objects tracked separately once per object and frame. <paramref name="scratch"/> (an empty folder) holds the
    /// per-frame best scores when objects tracked separately are merged into one label map (bounded memory); without
    /// it they are kept in memory. <paramref name="frameDone"/> gets (frames tracked, frames to track).
    /// </summary>
    public void Run(Sam2VideoPredictor predictor, Action<int, IReadOnlyDictionary<int, bool[]>> onFrame, Action<int, int>? frameDone = null, string? scratch = null)
    {
        using var _ = inference_mode();
        using var state = predictor.InitState(FramesDir, offloadVideoToCpu: true);
        // identical results: only memories the model can no longer read are dropped
        state.BoundedMemory = true;
        Height = state.VideoHeight;
        Width = state.VideoWidth;
        if (state.NumFrames != FrameNames.Count)
            throw new InvalidDataException($"video '{Name}': the predictor found {state.NumFrames} frames, {FrameNames.Count} were listed");
        if (!Options.TrackObjectsAppearingLater) RunTogether(predictor, state, onFrame, frameDone);
        else RunSeparately(predictor, state, onFrame, frameDone, scratch);
    }

    private void AddMask(Sam2VideoPredictor predictor, VideoInferenceState state, int frameIdx, int objId, bool[] mask, int h, int w)
    {
        using var t = torch.tensor(mask, new long[] { h, w });
        var (_, _, m) = predictor.AddNewMask(state, frameIdx, objId, t);
        m.Dispose();
    }

    private void RunTogether(Sam2VideoPredictor predictor, VideoInferenceState state, Action<int, IReadOnlyDictionary<int, bool[]>> onFrame, Action<int, int>? frameDone)
    {
        var inputFrames = Options.UseAllMasks ? Enumerable.Range(0, FrameNames.Count).Where(HasAnnotation).ToList() : [0];
        if (inputFrames.Count == 0) throw new InvalidDataException($"video '{Name}': no annotation in {MasksDir}");
        HashSet<int>? ids = null;
        foreach (int f in inputFrames)
        {
            var masks = LoadMasks(f, allowMissing: false, out int h, out int w)!;
            ids ??= masks.Keys.ToHashSet();
            foreach (var (id, m) in masks.OrderBy(kv => kv.Key))
            {
                if (!ids.Contains(id))
                    throw new InvalidDataException($"video '{Name}': object {id} appears on frame {f} but not on the first annotated frame; use --track-object-appearing-later");
                AddMask(predictor, state, f, id, m, h, w);
            }
        }
        if (ids is null || ids.Count == 0)
            throw new InvalidDataException($"video '{Name}': no object on the first frame's annotation; use --track-object-appearing-later for objects that appear later");
        int done = 0;
        foreach (var (f, objIds, masks) in predictor.PropagateInVideo(state))
        {
            using (masks)
            {
                var perObj = new Dictionary<int, bool[]>();
                using var above = masks.gt(Options.ScoreThreshold);
                using var cpu = above.cpu();
                for (int i = 0; i < objIds.Count; i++)
                {
                    using var one = cpu[i, 0];
                    perObj[objIds[i]] = one.contiguous().data<bool>().ToArray();
                }
                onFrame(f, perObj);
            }
            frameDone?.Invoke(++done, FrameNames.Count);
        }
    }

    private void RunSeparately(Sam2VideoPredictor predictor, VideoInferenceState state, Action<int, IReadOnlyDictionary<int, bool[]>> onFrame, Action<int, int>? frameDone, string? scratch)
    {
        int H = state.VideoHeight, W = state.VideoWidth, n = FrameNames.Count;
        // each object's input masks: its first non-empty one (or all of them with UseAllMasks)
        var inputs = new SortedDictionary<int, SortedDictionary<int, (bool[] mask, int h, int w)>>();
        for (int f = 0; f < n; f++)
        {
            if (!Options.PerObject && !HasAnnotation(f)) continue;
            var masks = LoadMasks(f, allowMissing: true, out int h, out int w);
            if (masks is null) continue;
            foreach (var (id, m) in masks)
            {
                if (!m.Any(v => v)) continue;
                if (!inputs.TryGetValue(id, out var per)) inputs[id] = per = new();
                if (per.Count > 0 && !Options.UseAllMasks) continue;
                per[f] = (m, h, w);
            }
        }
        if (inputs.Count == 0) throw new InvalidDataException($"video '{Name}': no object in any annotation of {MasksDir}");
        var objectIds = inputs.Keys.ToList();
        // DAVIS layout: the highest score wins each pixel (_apply_non_overlapping_constraints; the first object on ties)
        float[][]? bestMem = null;
        byte[][]? bestIdxMem = null;
        if (!Options.PerObject && scratch is null) { bestMem = new float[n][]; bestIdxMem = new byte[n][]; }
        int frames = 0, total = inputs.Values.Sum(per => n - per.Keys.Min());
        for (int k = 0; k < objectIds.Count; k++)
        {
            int id = objectIds[k];
            predictor.ResetState(state);
            foreach (var (f, (m, h, w)) in inputs[id]) AddMask(predictor, state, f, id, m, h, w);
            int start = inputs[id].Keys.Min();
            if (Options.PerObject)
                for (int f = 0; f < start; f++) onFrame(f, new Dictionary<int, bool[]> { [id] = new bool[H * W] }); // scores of -1024
            foreach (var (f, _, masks) in predictor.PropagateInVideo(state, startFrameIdx: start))
            {
                using (masks)
                using (var cpu = masks[0, 0].cpu())
                {
                    var scores = cpu.contiguous().data<float>().ToArray();
                    if (Options.PerObject)
                    {
                        onFrame(f, new Dictionary<int, bool[]> { [id] = Array.ConvertAll(scores, s => s > Options.ScoreThreshold) });
                    }
                    else
                    {
                        var (best, idx) = LoadBest(f, bestMem, bestIdxMem, scratch, H * W);
                        for (int i = 0; i < scores.Length; i++)
                            if (scores[i] > best[i]) { best[i] = scores[i]; idx[i] = (byte)k; }
                        SaveBest(f, best, idx, bestMem, bestIdxMem, scratch);
                    }
                }
                frameDone?.Invoke(++frames, total);
            }
        }
        if (Options.PerObject) return;
        for (int f = 0; f < n; f++)
        {
            var (best, idx) = LoadBest(f, bestMem, bestIdxMem, scratch, H * W);
            var perObj = objectIds.ToDictionary(id => id, _ => new bool[H * W]);
            for (int i = 0; i < best.Length; i++)
                if (best[i] > Options.ScoreThreshold) perObj[objectIds[idx[i]]][i] = true;
            onFrame(f, perObj);
            if (bestMem is not null) { bestMem[f] = null!; bestIdxMem![f] = null!; }
        }
    }

    private static (float[] best, byte[] idx) LoadBest(int f, float[][]? mem, byte[][]? memIdx, string? scratch, int size)
    {
        if (mem is not null) return mem[f] is { } b ? (b, memIdx![f]) : (Filled(size), new byte[size]);
        string path = Path.Combine(scratch!, $"{f}.scores");
        if (!File.Exists(path)) return (Filled(size), new byte[size]);
        var bytes = File.ReadAllBytes(path);
        var best = new float[size];
        Buffer.BlockCopy(bytes, 0, best, 0, size * 4);
        return (best, bytes.AsSpan(size * 4, size).ToArray());
    }

    private static void SaveBest(int f, float[] best, byte[] idx, float[][]? mem, byte[][]? memIdx, string? scratch)
    {
        if (mem is not null) { mem[f] = best; memIdx![f] = idx; return; }
        var bytes = new byte[best.Length * 5];
        Buffer.BlockCopy(best, 0, bytes, 0, best.Length * 4);
        idx.CopyTo(bytes, best.Length * 4);
        File.WriteAllBytes(Path.Combine(scratch!, $"{f}.scores"), bytes);
    }

    // frames an object was not tracked on score -1024 (vos_separate_inference_per_object)
    private static float[] Filled(int size)
    {
        var a = new float[size];
        Array.Fill(a, -1024f);
        return a;
    }

    /// <summary>put_per_obj_mask: one label map, pixel = object id; smaller ids are painted last (win where masks overlap).</summary>
    public static byte[] ToLabels(IReadOnlyDictionary<int, bool[]> perObj, int size)
    {
        var labels = new byte[size];
        foreach (var (id, m) in perObj.OrderByDescending(kv => kv.Key))
            for (int i = 0; i < size; i++) if (m[i]) labels[i] = (byte)id;
        return labels;
    }
}

/// <summary>
/// J&amp;F of a model on a validation folder (ROOT/JPEGImages/VIDEO/*.jpg, ROOT/Annotations/VIDEO/*.png, DAVIS layout):
/// each video segmented from its first frame's masks (<see cref="VosVideo"/>) and scored as eval-vos scores it
/// (first and last annotated frame skipped), without writing the predictions.
/// </summary>
public static class VosValidation
{
    /// <summary>The videos of a validation folder that have both frames and annotations (sorted); a missing folder is an error.</summary>
    public static IReadOnlyList<string> ListVideos(string root)
    {
        string frames = Path.Combine(root, "JPEGImages"), ann = Path.Combine(root, "Annotations");
        if (!Directory.Exists(frames) || !Directory.Exists(ann))
            throw new DirectoryNotFoundException($"{root} needs JPEGImages/<video>/ and Annotations/<video>/ folders");
        var videos = Directory.GetDirectories(frames).Select(Path.GetFileName).Where(n => n is not null && Directory.Exists(Path.Combine(ann, n)))
                              .Select(n => n!).OrderBy(n => n, StringComparer.Ordinal).ToList();
        if (videos.Count == 0) throw new InvalidDataException($"no video in {root} has both JPEGImages/ and Annotations/ folders");
        return videos;
    }

    /// <summary>Scores <paramref name="predictor"/> on the folder (at most <paramref name="maxVideos"/> videos when > 0).</summary>
    public static VosBenchmarkResult Evaluate(Sam2VideoPredictor predictor, string root, int maxVideos = 0, VosInferenceOptions? options = null)
    {
        var names = ListVideos(root);
        if (maxVideos > 0) names = names.Take(maxVideos).ToList();
        string frames = Path.Combine(root, "JPEGImages"), ann = Path.Combine(root, "Annotations");
        var scores = new List<VosVideoScore>();
        foreach (var name in names)
        {
            var video = VosVideo.Open(frames, ann, name, (options ?? new VosInferenceOptions()) with { PerObject = false });
            string annDir = Path.Combine(ann, name);
            var gtFrames = Directory.GetFiles(annDir, "*.png").Select(Path.GetFileName).Select(n => n!).OrderBy(n => n, StringComparer.Ordinal).ToList();
            var evalFrames = gtFrames.Skip(1).Take(Math.Max(0, gtFrames.Count - 2)).ToList();
            var need = evalFrames.ToHashSet(StringComparer.Ordinal);
            var preds = new Dictionary<string, byte[]>(StringComparer.Ordinal);
            video.Run(predictor, (f, perObj) =>
            {
                string n = video.FrameNames[f] + ".png";
                if (need.Contains(n)) preds[n] = VosVideo.ToLabels(perObj, video.Height * video.Width);
            });
            var ev = new VosSequenceEvaluator();
            foreach (var n in evalFrames)
            {
                var gt = LabelPng.Read(Path.Combine(annDir, n));
                if (!preds.TryGetValue(n, out var p)) throw new InvalidDataException($"video '{name}': annotation {n} has no frame of that name");
                if (gt.Height != video.Height || gt.Width != video.Width)
                    throw new InvalidDataException($"video '{name}': annotation {n} is {gt.Width}x{gt.Height}, the frames {video.Width}x{video.Height}");
                ev.FeedFrame(Array.ConvertAll(p, b => (int)b), gt.Labels, gt.Height, gt.Width);
            }
            scores.Add(new VosVideoScore(name, ev.Conclude().Select(o => new VosObjectScore(name, VosBenchmark.PyObjectLabel(o.obj), o.j, o.f)).ToList()));
        }
        return new VosBenchmarkResult(scores, SkippedFirstAndLast: true);
    }
}
