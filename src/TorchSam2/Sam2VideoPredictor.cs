using TorchSam2.Configs;
using TorchSam2.IO;
using TorchSam2.Modeling;
using TorchSam2.Modeling.Backbones;
using TorchSharp;
using TorchSharp.Modules;
using TorchSam2.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace TorchSam2;

/// <summary>
/// Interactive video segmentation: prompts (points, boxes, masks) on some frames, then tracking of
/// every object through the video with the memory of SAM 2. Port of sam2/sam2_video_predictor.py
/// (SAM2VideoPredictor, December 2024: each object is inferred independently, batch size 1).
/// The model is wrapped (composition) rather than subclassed; per-video data lives in a
/// <see cref="VideoInferenceState"/>.
/// </summary>
/// <remarks>
/// Returned mask tensors (video_res_masks, O×1×H×W logits at the original video size) belong to the
/// caller, who disposes them. Tensors kept in the state never belong to a dispose scope.
/// </remarks>
public sealed class Sam2VideoPredictor : IDisposable
{
    private readonly bool _ownsModel;

    public SAM2Base Model { get; }
    /// <summary>Fill background holes up to this area (low-res pixels) in predicted masks; 0 = off.</summary>
    public int FillHoleArea { get; }
    /// <summary>Keep only the highest-scoring object per pixel in the returned masks.</summary>
    public bool NonOverlapMasks { get; }
    /// <summary>Drop tracked (non-conditioning) memories around a frame that receives prompts.</summary>
    public bool ClearNonCondMemAroundInput { get; }
    /// <summary>Frames that receive correction prompts after tracking also become conditioning frames.</summary>
    public bool AddAllFramesToCorrectAsCond { get; }
    /// <summary>
    /// Frames whose backbone features each new state caches: 1 as upstream (each entry is ~26 MB at 512², ~105 MB at
    /// 1024²). An interactive app that clicks back and forth between nearby frames can keep more to skip re-encoding.
    /// </summary>
    public int FeatureCacheSize { get; }
    /// <summary>
    /// On the CPU, propagation hands free heap pages back to the system whenever the resident set has grown by more
    /// than this since it last did (default 64 MB; 0 = never during propagation, only at its end). A frame's temporaries are freed
    /// around the small tensors the frame keeps, and glibc cannot reuse all of those holes, so the resident set
    /// would otherwise creep up over the first frames (README, Benchmarks: peak memory of tracking).
    /// </summary>
    public long HeapTrimMarginBytes { get; set; } = DefaultHeapTrimMarginBytes;

    /// <summary>The <see cref="HeapTrimMarginBytes"/> new predictors start with (the CLI sets it from TORCHSAM2_HEAP_TRIM_MB).</summary>
    public static long DefaultHeapTrimMarginBytes { get; set; } = 64L << 20;

    public Device Device => Model.device;
    public int ImageSize => Model.image_size;

    public Sam2VideoPredictor(SAM2Base model, int fillHoleArea = 0, bool nonOverlapMasks = false, bool clearNonCondMemAroundInput = false,
        bool addAllFramesToCorrectAsCond = false, int featureCacheSize = 1, bool ownsModel = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (fillHoleArea < 0) throw new ArgumentOutOfRangeException(nameof(fillHoleArea), "fill_hole_area must be >= 0");
        if (featureCacheSize < 1) throw new ArgumentOutOfRangeException(nameof(featureCacheSize), "the feature cache needs at least one entry");
        Model = model;
        Model.eval();
        FillHoleArea = fillHoleArea;
        NonOverlapMasks = nonOverlapMasks;
        ClearNonCondMemAroundInput = clearNonCondMemAroundInput;
        AddAllFramesToCorrectAsCond = addAllFramesToCorrectAsCond;
        FeatureCacheSize = featureCacheSize;
        _ownsModel = ownsModel;
    }

    /// <summary>
    /// A predictor with the video options of <paramref name="cfg"/> (a config as
    /// <c>build_sam2_video_predictor</c> sees it, i.e. after <see cref="BuildSam.VideoPredictorConfig"/>).
    /// Also sets the model's binarize_mask_from_pts_for_mem_enc from the config.
    /// </summary>
    public static Sam2VideoPredictor FromConfig(SAM2Base model, Sam2ModelConfig cfg, int featureCacheSize = 1, bool ownsModel = false)
    {
        model.binarize_mask_from_pts_for_mem_enc = cfg.BinarizeMaskFromPtsForMemEnc;
        return new Sam2VideoPredictor(model, cfg.FillHoleArea, cfg.NonOverlapMasks, cfg.ClearNonCondMemAroundInput,
            cfg.AddAllFramesToCorrectAsCond, featureCacheSize, ownsModel);
    }

    /// <summary>As <c>build_sam2_video_predictor</c>: builds the model (with the video overrides when asked) and owns it.</summary>
    public static Sam2VideoPredictor Build(Sam2ModelConfig cfg, string? checkpoint = null, Device? device = null, bool applyPostprocessing = true)
    {
        var videoCfg = BuildSam.VideoPredictorConfig(cfg, applyPostprocessing);
        var model = BuildSam.build_sam2_video_predictor(cfg, checkpoint, device, "eval", applyPostprocessing);
        return FromConfig(model, videoCfg, ownsModel: true);
    }

    /// <summary>
    /// <see cref="Build(Sam2ModelConfig, string?, Device?, bool)"/> from a config path or built-in name; the checkpoint may be
    /// a path or a name ("tiny", "sam2.1_hiera_large", ...; fetched into the cache on first use). With no checkpoint and a
    /// name that is a checkpoint's, e.g. <c>Build("tiny")</c>, the pretrained model is loaded (as <see cref="FromPretrained"/>);
    /// for random weights pass a config: <c>Build(BuildSam.LoadConfig("tiny"))</c>.
    /// </summary>
    public static Sam2VideoPredictor Build(string config, string? checkpoint = null, Device? device = null, bool applyPostprocessing = true)
    {
        if (checkpoint is null && !Sam2ConfigLoader.LooksLikePath(config) && Pretrained.PretrainedCheckpoints.TryFind(config, out _))
            return FromPretrained(config, device, applyPostprocessing);
        return Build(BuildSam.LoadConfig(config), checkpoint, device, applyPostprocessing);
    }

    /// <summary>
    /// A predictor on a checkpoint path or name ("tiny", "sam2.1_hiera_base_plus", "sam2_hiera_large", "glyph-demo", ...),
    /// with the named checkpoint's config (or the one detected from the file).
    /// </summary>
    public static Sam2VideoPredictor FromPretrained(string checkpoint, Device? device = null, bool applyPostprocessing = true,
        Pretrained.CheckpointStoreOptions? options = null)
    {
        string path = Pretrained.CheckpointStore.Resolve(checkpoint, options);
        return Build(BuildSam.LoadConfig(ModelLoader.ConfigFor(path, options)), path, device, applyPostprocessing);
    }

    public void Dispose()
    {
        if (_ownsModel) Model.Dispose();
    }

    // =========================================================================================
    // Session
    // =========================================================================================

    /// <summary>
    /// Starts a session on already preprocessed frames T×3×S×S (S = image_size, normalized as the
    /// model expects) of a video of the given original size. The frames are copied into the state
    /// (a new handle; the caller keeps its own tensor).
    /// </summary>
    public VideoInferenceState InitState(Tensor frames, int videoHeight, int videoWidth, bool offloadVideoToCpu = false,
        bool offloadStateToCpu = false)
    {
        ArgumentNullException.ThrowIfNull(frames);
        if (frames.dim() != 4 || frames.size(1) != 3 || frames.size(2) != ImageSize || frames.size(3) != ImageSize)
            throw new ArgumentException($"frames must be T×3×{ImageSize}×{ImageSize}, got [{string.Join(", ", frames.shape)}]", nameof(frames));
        if (frames.size(0) == 0) throw new ArgumentException("the video has no frames", nameof(frames));
        if (videoHeight <= 0 || videoWidth <= 0)
            throw new ArgumentOutOfRangeException(nameof(videoHeight), $"video size must be positive, got {videoHeight}x{videoWidth}");
        VideoFrameSource source;
        using (inference_mode())
        using (var images = frames.to(ScalarType.Float32, offloadVideoToCpu ? CPU : Device))
            source = new TensorFrameSource(images, videoHeight, videoWidth);
        return InitState(source, offloadVideoToCpu, offloadStateToCpu);
    }

    /// <summary>
    /// Starts a session on any frame source (e.g. <see cref="LazyFrameSource"/>); the state owns
    /// the source and disposes it.
    /// </summary>
    public VideoInferenceState InitState(VideoFrameSource frames, bool offloadVideoToCpu = false, bool offloadStateToCpu = false)
    {
        ArgumentNullException.ThrowIfNull(frames);
        using var _ = inference_mode();
        var device = Device;
        VideoInferenceState state;
        try
        {
            state = new VideoInferenceState(frames, device, offloadStateToCpu ? CPU : device, offloadVideoToCpu, offloadStateToCpu, FeatureCacheSize);
        }
        catch
        {
            frames.Dispose();
            throw;
        }
        try
        {
            // warm up the backbone and cache frame 0's features
            using var warm = _get_image_feature(state, 0, 1);
        }
        catch
        {
            state.Dispose();
            throw;
        }
        return state;
    }

    /// <summary>
    /// Starts a session on a video file (MP4, AVI, ... decoded with OpenCV, see <see cref="VideoReader"/>)
    /// or a folder of JPEG/PNG frames (sorted by the number in their names, else by name); each frame
    /// is decoded, resized and normalized (<see cref="SAM2Transforms"/>) only when the model needs it,
    /// and the last <paramref name="frameCacheSize"/> frames are kept (on the CPU with
    /// offloadVideoToCpu), so memory does not grow with the video's length. All frames must have
    /// the size of the first one.
    /// </summary>
    public VideoInferenceState InitState(string videoPath, bool offloadVideoToCpu = false, bool offloadStateToCpu = false, int frameCacheSize = 8)
    {
        ArgumentNullException.ThrowIfNull(videoPath);
        var target = offloadVideoToCpu ? CPU : Device;
        if (File.Exists(videoPath))
            return InitState(LazyFrameSource.FromVideoFile(videoPath, ImageSize, target, frameCacheSize), offloadVideoToCpu, offloadStateToCpu);
        if (!Directory.Exists(videoPath))
            throw new DirectoryNotFoundException($"video '{videoPath}' does not exist (expected a video file or a folder of JPEG/PNG frames)");
        return InitState(LazyFrameSource.FromFolder(videoPath, ImageSize, target, frameCacheSize), offloadVideoToCpu, offloadStateToCpu);
    }

    // =========================================================================================
    // Object ids
    // =========================================================================================

    /// <summary>Maps a client object id to its model index, registering a new object when unseen.</summary>
    private static int _obj_id_to_idx(VideoInferenceState s, int obj_id)
    {
        if (s.obj_id_to_idx.TryGetValue(obj_id, out var idx)) return idx;
        // new objects are allowed at any time, also after tracking started
        idx = s.obj_id_to_idx.Count;
        s.obj_id_to_idx[obj_id] = idx;
        s.obj_idx_to_id[idx] = obj_id;
        s.obj_ids = s.obj_id_to_idx.OrderBy(kv => kv.Value).Select(kv => kv.Key).ToList();
        s.point_inputs_per_obj[idx] = new();
        s.mask_inputs_per_obj[idx] = new();
        s.output_dict_per_obj[idx] = new OutputDict();
        s.temp_output_dict_per_obj[idx] = new OutputDict();
        s.frames_tracked_per_obj[idx] = new();
        return idx;
    }

    private static int _obj_idx_to_id(VideoInferenceState s, int obj_idx) => s.obj_idx_to_id[obj_idx];

    private static int _get_obj_num(VideoInferenceState s) => s.obj_idx_to_id.Count;

    private static void CheckFrame(VideoInferenceState s, int frameIdx, string paramName = "frameIdx")
    {
        if (frameIdx < 0 || frameIdx >= s.NumFrames)
            throw new ArgumentOutOfRangeException(paramName, frameIdx, $"frame index {frameIdx} is outside the video (0..{s.NumFrames - 1})");
    }

    private static SortedDictionary<int, FrameOutput> Storage(OutputDict d, bool is_cond) =>
        is_cond ? d.cond_frame_outputs : d.non_cond_frame_outputs;

    /// <summary>Stores an output, disposing the one it replaces.</summary>
    private static void SetOutput(SortedDictionary<int, FrameOutput> d, int frameIdx, FrameOutput output)
    {
        if (d.TryGetValue(frameIdx, out var old) && !ReferenceEquals(old, output)) old.Dispose();
        d[frameIdx] = output;
    }

    private static void RemoveOutput(SortedDictionary<int, FrameOutput> d, int frameIdx)
    {
        if (d.Remove(frameIdx, out var old)) old.Dispose();
    }

    // =========================================================================================
    // Prompts
    // =========================================================================================

    /// <summary>
    /// Adds clicks (points [N][2] as x, y with labels 1 positive / 0 negative) and/or a box
    /// (x0, y0, x1, y1) for an object on a frame, and predicts its mask there. Coordinates are in
    /// pixels of the original video unless normalizeCoords is false (then they are in [0, 1]).
    /// Returns the frame, all object ids and their masks (O×1×H×W logits) on that frame.
    /// </summary>
    public (int frameIdx, IReadOnlyList<int> objIds, Tensor videoResMasks) AddNewPointsOrBox(VideoInferenceState state, int frameIdx, int objId,
        float[][]? points = null, int[]? labels = null, bool clearOldPoints = true, bool normalizeCoords = true, float[]? box = null)
    {
        if (points is not null && points.Any(p => p is null || p.Length != 2))
            throw new ArgumentException("each point must have two coordinates (x, y)", nameof(points));
        if (box is not null && box.Length != 4) throw new ArgumentException("a box has four values (x0, y0, x1, y1)", nameof(box));
        using var p = points is null ? null : tensor(points.SelectMany(x => x).ToArray(), new long[] { points.Length, 2 });
        using var l = labels is null ? null : tensor(labels, new long[] { labels.Length });
        using var b = box is null ? null : tensor(box, new long[] { 4 });
        return AddNewPointsOrBox(state, frameIdx, objId, p, l, clearOldPoints, normalizeCoords, b);
    }

    /// <summary>Tensor form of <see cref="AddNewPointsOrBox(VideoInferenceState, int, int, float[][], int[], bool, bool, float[])"/>: points [N,2] or [1,N,2], labels [N] or [1,N], box [4].</summary>
    public (int frameIdx, IReadOnlyList<int> objIds, Tensor videoResMasks) AddNewPointsOrBox(VideoInferenceState state, int frameIdx, int objId,
        Tensor? points, Tensor? labels, bool clearOldPoints = true, bool normalizeCoords = true, Tensor? box = null)
    {
        ArgumentNullException.ThrowIfNull(state);
        state.ThrowIfDisposed();
        CheckFrame(state, frameIdx);
        if ((points is null) != (labels is null)) throw new ArgumentException("points and labels must be provided together");
        if (points is null && box is null) throw new ArgumentException("at least one of points or box must be provided as input");
        if (box is not null && !clearOldPoints)
            throw new ArgumentException("a box cannot be added without clearing old points: the box must come before any point (use clearOldPoints=true)");
        if (box is not null && box.numel() != 4) throw new ArgumentException("a box has four values (x0, y0, x1, y1)", nameof(box));

        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var pts = points is null ? zeros([0, 2], ScalarType.Float32) : points.to(ScalarType.Float32);
        var lbl = labels is null ? zeros([0], ScalarType.Int32) : labels.to(ScalarType.Int32);
        if (pts.dim() == 2) pts = pts.unsqueeze(0);
        if (lbl.dim() == 1) lbl = lbl.unsqueeze(0);
        if (pts.dim() != 3 || pts.size(2) != 2 || lbl.dim() != 2 || pts.size(1) != lbl.size(1))
            throw new ArgumentException($"points [{string.Join(", ", pts.shape)}] and labels [{string.Join(", ", lbl.shape)}] do not match");
        CheckPrompts(state, pts, lbl, box, normalizeCoords);

        // a box goes first, as two points labelled 2 and 3 (as SAM 2 was trained)
        if (box is not null)
        {
            var box_coords = box.to(ScalarType.Float32, pts.device).reshape(1, 2, 2);
            var box_labels = tensor(new[] { 2, 3 }, new long[] { 1, 2 }, device: lbl.device);
            pts = cat([box_coords, pts], 1);
            lbl = cat([box_labels, lbl], 1);
        }
        if (normalizeCoords)
            pts = pts / tensor(new float[] { state.VideoWidth, state.VideoHeight }, new long[] { 2 }, device: pts.device);
        // to the model's input frame
        pts = pts * (double)ImageSize;
        pts = pts.to(state.Device);
        lbl = lbl.to(state.Device);

        int obj_idx = _obj_id_to_idx(state, objId);
        var point_inputs_per_frame = state.point_inputs_per_obj[obj_idx];
        var mask_inputs_per_frame = state.mask_inputs_per_obj[obj_idx];
        PointInputs? old = clearOldPoints ? null : point_inputs_per_frame.GetValueOrDefault(frameIdx);
        var point_inputs = old is null
            ? new PointInputs(pts.alias(), lbl.alias())
            : new PointInputs(cat([old.point_coords, pts], 1), cat([old.point_labels, lbl], 1));
        point_inputs.DetachFromDisposeScope();
        if (point_inputs_per_frame.Remove(frameIdx, out var replaced)) replaced.Dispose();
        point_inputs_per_frame[frameIdx] = point_inputs;
        if (mask_inputs_per_frame.Remove(frameIdx, out var oldMask)) oldMask.Dispose();

        var video_res_masks = RunPromptedFrame(state, frameIdx, obj_idx, point_inputs, null, usePrevLogits: true);
        return (frameIdx, state.obj_ids.ToArray(), video_res_masks.MoveToOuterDisposeScope());
    }

    // The image predictor's rules (PromptChecks): finite coordinates inside the video frame, x0 ≤ x1 and y0 ≤ y1, known labels.
    private static void CheckPrompts(VideoInferenceState state, Tensor pts, Tensor lbl, Tensor? box, bool normalizeCoords)
    {
        double maxX = normalizeCoords ? state.VideoWidth : 1, maxY = normalizeCoords ? state.VideoHeight : 1;
        using (var cpu = pts.to(ScalarType.Float32, CPU).contiguous())
        {
            var xy = cpu.ToArray<float>();
            for (int i = 0; i + 1 < xy.Length; i += 2) PromptChecks.CheckPoint(xy[i], xy[i + 1], maxX, maxY, "point");
        }
        using (var cpu = lbl.to(ScalarType.Int32, CPU).contiguous())
            foreach (var l in cpu.ToArray<int>()) PromptChecks.CheckLabel(l);
        if (box is not null)
            using (var cpu = box.to(ScalarType.Float32, CPU).contiguous())
                PromptChecks.CheckBox(cpu.ToArray<float>(), maxX, maxY, "box");
    }

    /// <summary>
    /// Adds a mask prompt (bool H×W, any size; resized to image_size) for an object on a frame and
    /// returns the frame, all object ids and their masks on that frame.
    /// </summary>
    public (int frameIdx, IReadOnlyList<int> objIds, Tensor videoResMasks) AddNewMask(VideoInferenceState state, int frameIdx, int objId, Tensor mask)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(mask);
        state.ThrowIfDisposed();
        CheckFrame(state, frameIdx);
        if (mask.dim() != 2) throw new ArgumentException($"mask must be H×W, got [{string.Join(", ", mask.shape)}]", nameof(mask));

        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        long mask_H = mask.size(0), mask_W = mask.size(1);
        var mask_inputs_orig = mask.to(ScalarType.Bool)[TensorIndex.None, TensorIndex.None].to(ScalarType.Float32, state.Device);
        Tensor mask_inputs;
        if (mask_H != ImageSize || mask_W != ImageSize)
        {
            // antialias when downsampling, then re-binarize
            var resized = F.interpolate(mask_inputs_orig, size: [ImageSize, ImageSize], mode: InterpolationMode.Bilinear, align_corners: false, antialias: true);
            mask_inputs = (resized >= 0.5).@float();
        }
        else
        {
            mask_inputs = mask_inputs_orig;
        }

        int obj_idx = _obj_id_to_idx(state, objId);
        var mask_inputs_per_frame = state.mask_inputs_per_obj[obj_idx];
        if (mask_inputs_per_frame.Remove(frameIdx, out var oldMask)) oldMask.Dispose();
        mask_inputs_per_frame[frameIdx] = mask_inputs.alias().DetachFromDisposeScope();
        if (state.point_inputs_per_obj[obj_idx].Remove(frameIdx, out var oldPts)) oldPts.Dispose();

        var video_res_masks = RunPromptedFrame(state, frameIdx, obj_idx, null, mask_inputs_per_frame[frameIdx], usePrevLogits: false);
        return (frameIdx, state.obj_ids.ToArray(), video_res_masks.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Shared tail of AddNewPointsOrBox / AddNewMask: runs the frame for one object without the
    /// memory encoder (memories are encoded when propagation starts), keeps the output as a temporary
    /// one and returns the consolidated masks of all objects on the frame at video resolution.
    /// </summary>
    private Tensor RunPromptedFrame(VideoInferenceState s, int frame_idx, int obj_idx, PointInputs? point_inputs, Tensor? mask_inputs,
        bool usePrevLogits)
    {
        using var scope = NewDisposeScope();
        // an untracked frame is an initial conditioning frame (SAM-like, no memory); a tracked one is corrected
        var obj_frames_tracked = s.frames_tracked_per_obj[obj_idx];
        bool is_init_cond_frame = !obj_frames_tracked.ContainsKey(frame_idx);
        bool reverse = !is_init_cond_frame && obj_frames_tracked[frame_idx];
        var obj_output_dict = s.output_dict_per_obj[obj_idx];
        var obj_temp_output_dict = s.temp_output_dict_per_obj[obj_idx];
        bool is_cond = is_init_cond_frame || AddAllFramesToCorrectAsCond;
        var store = Storage(obj_temp_output_dict, is_cond);

        // earlier logits of this object on this frame are fed to the decoder together with new clicks
        Tensor? prev_sam_mask_logits = null;
        if (usePrevLogits)
        {
            var prev_out = store.GetValueOrDefault(frame_idx)
                ?? obj_output_dict.cond_frame_outputs.GetValueOrDefault(frame_idx)
                ?? obj_output_dict.non_cond_frame_outputs.GetValueOrDefault(frame_idx);
            if (prev_out?.pred_masks is Tensor pm)
                // clamped to avoid rare numerical issues
                prev_sam_mask_logits = pm.to(s.Device).clamp(-32.0, 32.0);
        }

        var (current_out, pred_masks_gpu) = _run_single_frame_inference(
            s, obj_output_dict, frame_idx, batch_size: 1, is_init_cond_frame: is_init_cond_frame, point_inputs: point_inputs,
            mask_inputs: mask_inputs, reverse: reverse, run_mem_encoder: false, prev_sam_mask_logits: prev_sam_mask_logits);
        pred_masks_gpu.Dispose();
        SetOutput(store, frame_idx, current_out);

        var consolidated = _consolidate_temp_output_across_obj(s, frame_idx, is_cond, consolidate_at_video_res: true);
        var video_res_masks = _get_orig_video_res_output(s, consolidated);
        return video_res_masks.MoveToOuterDisposeScope();
    }

    /// <summary>Resizes mask logits to the original video size and applies the non-overlap constraint when enabled.</summary>
    private Tensor _get_orig_video_res_output(VideoInferenceState s, Tensor any_res_masks)
    {
        using var scope = NewDisposeScope();
        var m = any_res_masks.to(s.Device);
        var video_res_masks = m.size(-2) == s.VideoHeight && m.size(-1) == s.VideoWidth
            ? m
            : F.interpolate(m, size: [s.VideoHeight, s.VideoWidth], mode: InterpolationMode.Bilinear, align_corners: false);
        if (NonOverlapMasks) video_res_masks = Model._apply_non_overlapping_constraints(video_res_masks);
        return video_res_masks.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Gathers every object's latest mask logits on a frame into one [O, 1, h, w] tensor: the temporary
    /// (just prompted) output first, then the stored conditioning / tracked output; objects without
    /// any output there keep NO_OBJ_SCORE.
    /// </summary>
    private Tensor _consolidate_temp_output_across_obj(VideoInferenceState s, int frame_idx, bool is_cond, bool consolidate_at_video_res = false)
    {
        using var scope = NewDisposeScope();
        int batch_size = _get_obj_num(s);
        long H, W;
        if (consolidate_at_video_res) (H, W) = (s.VideoHeight, s.VideoWidth);
        else H = W = ImageSize / 4;

        var consolidated = full([batch_size, 1, H, W], SAM2Base.NO_OBJ_SCORE, ScalarType.Float32, s.StorageDevice);
        for (int obj_idx = 0; obj_idx < batch_size; obj_idx++)
        {
            var temp = s.temp_output_dict_per_obj[obj_idx];
            var outd = s.output_dict_per_obj[obj_idx];
            var o = Storage(temp, is_cond).GetValueOrDefault(frame_idx)
                ?? outd.cond_frame_outputs.GetValueOrDefault(frame_idx)
                ?? outd.non_cond_frame_outputs.GetValueOrDefault(frame_idx);
            if (o?.pred_masks is not Tensor obj_mask) continue;
            var slot = consolidated.narrow(0, obj_idx, 1);
            if (obj_mask.size(-2) == H && obj_mask.size(-1) == W)
                slot.copy_(obj_mask);
            else
                slot.copy_(F.interpolate(obj_mask, size: [H, W], mode: InterpolationMode.Bilinear, align_corners: false));
        }
        return consolidated.MoveToOuterDisposeScope();
    }

    // =========================================================================================
    // Propagation
    // =========================================================================================

    /// <summary>
    /// Moves every object's temporary (prompted) outputs into its output dict, encoding their
    /// memories first; fails when an object has no prompts at all.
    /// </summary>
    public void PropagateInVideoPreflight(VideoInferenceState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        state.ThrowIfDisposed();
        int batch_size = _get_obj_num(state);
        if (batch_size == 0)
            throw new InvalidOperationException("No input points or masks are provided for any object; please add inputs first.");
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        for (int obj_idx = 0; obj_idx < batch_size; obj_idx++)
        {
            var obj_output_dict = state.output_dict_per_obj[obj_idx];
            var obj_temp_output_dict = state.temp_output_dict_per_obj[obj_idx];
            foreach (bool is_cond in new[] { false, true })
            {
                var temp = Storage(obj_temp_output_dict, is_cond);
                foreach (var (frame_idx, o) in temp.ToList())
                {
                    // memories of frames the user interacted with are encoded now, after all clicks
                    if (o.maskmem_features is null)
                    {
                        using var high_res_masks = F.interpolate(o.pred_masks!.to(state.Device), size: [ImageSize, ImageSize],
                            mode: InterpolationMode.Bilinear, align_corners: false);
                        var (maskmem_features, maskmem_pos_enc) = _run_memory_encoder(state, frame_idx, batch_size: 1,
                            high_res_masks: high_res_masks, object_score_logits: o.object_score_logits, is_mask_from_pts: true);
                        if (o.maskmem_pos_enc is not null) foreach (var t in o.maskmem_pos_enc) t.Dispose();
                        o.maskmem_features = maskmem_features;
                        o.maskmem_pos_enc = maskmem_pos_enc;
                    }
                    SetOutput(Storage(obj_output_dict, is_cond), frame_idx, o);
                    if (ClearNonCondMemAroundInput)
                        _clear_obj_non_cond_mem_around_input(state, frame_idx, obj_idx);
                }
                // the outputs now live in the output dict
                temp.Clear();
            }

            if (obj_output_dict.cond_frame_outputs.Count == 0)
            {
                int obj_id = _obj_idx_to_id(state, obj_idx);
                throw new InvalidOperationException($"No input points or masks are provided for object id {obj_id}; please add inputs first.");
            }
            // a frame that became a conditioning frame drops its earlier tracked output
            foreach (var f in obj_output_dict.cond_frame_outputs.Keys)
                RemoveOutput(obj_output_dict.non_cond_frame_outputs, f);
        }
    }

    /// <summary>
    /// Tracks all objects through the video, lazily: each step yields a frame index, the object ids
    /// and their masks (O×1×H×W logits at the original video size, owned by the caller). Starts at
    /// <paramref name="startFrameIdx"/> (default: the earliest prompted frame) and covers up to
    /// <paramref name="maxFrameNumToTrack"/> further frames (default: all), backwards when
    /// <paramref name="reverse"/>. The preflight runs when enumeration starts.
    /// </summary>
    public IEnumerable<(int frameIdx, IReadOnlyList<int> objIds, Tensor videoResMasks)> PropagateInVideo(VideoInferenceState state,
        int? startFrameIdx = null, int? maxFrameNumToTrack = null, bool reverse = false)
    {
        ArgumentNullException.ThrowIfNull(state);
        state.ThrowIfDisposed();
        if (_get_obj_num(state) == 0)
            throw new InvalidOperationException("No input points or masks are provided for any object; please add inputs first.");
        if (startFrameIdx is int sf) CheckFrame(state, sf, nameof(startFrameIdx));
        if (maxFrameNumToTrack is < 0)
            throw new ArgumentOutOfRangeException(nameof(maxFrameNumToTrack), maxFrameNumToTrack, "must be >= 0");
        return PropagateIterator(state, startFrameIdx, maxFrameNumToTrack, reverse);
    }

    private IEnumerable<(int frameIdx, IReadOnlyList<int> objIds, Tensor videoResMasks)> PropagateIterator(VideoInferenceState state,
        int? startFrameIdx, int? maxFrameNumToTrack, bool reverse)
    {
        PropagateInVideoPreflight(state);
        IReadOnlyList<int> obj_ids = state.obj_ids.ToArray();
        int num_frames = state.NumFrames;
        int batch_size = _get_obj_num(state);

        // default start: the earliest frame with prompts of any object
        int start_frame_idx = startFrameIdx ?? state.output_dict_per_obj.Values.SelectMany(d => d.cond_frame_outputs.Keys).Min();
        int max_frame_num_to_track = maxFrameNumToTrack ?? num_frames;
        IEnumerable<int> processing_order;
        if (reverse)
        {
            int end_frame_idx = Math.Max(start_frame_idx - max_frame_num_to_track, 0);
            // nothing to track backwards from frame 0
            processing_order = start_frame_idx > 0
                ? Enumerable.Range(end_frame_idx, start_frame_idx - end_frame_idx + 1).Reverse()
                : [];
        }
        else
        {
            int end_frame_idx = Math.Min(start_frame_idx + max_frame_num_to_track, num_frames - 1);
            processing_order = end_frame_idx >= start_frame_idx ? Enumerable.Range(start_frame_idx, end_frame_idx - start_frame_idx + 1) : [];
        }

        var trimmer = state.Device.type == DeviceType.CPU && HeapTrimMarginBytes > 0 ? new NativeHeap.GrowthTrimmer(HeapTrimMarginBytes) : null;
        foreach (int frame_idx in processing_order.ToList())
        {
            state.ThrowIfDisposed();
            var video_res_masks = PropagateFrame(state, frame_idx, batch_size, reverse);
            yield return (frame_idx, obj_ids, video_res_masks);
            trimmer?.Step();
        }
        // glibc keeps the freed temporaries of the last frames resident (behind the small tensors each frame added to
        // the state): hand the pages back once tracking is done. During tracking only when the resident set grew by
        // HeapTrimMarginBytes: trimming after every frame re-faults its temporaries (~10 % of a 512² frame here).
        if (state.Device.type == DeviceType.CPU) NativeHeap.ReleaseFreePages();
    }

    /// <summary>One step of propagation: every object on one frame (prompted frames reuse their outputs).</summary>
    private Tensor PropagateFrame(VideoInferenceState s, int frame_idx, int batch_size, bool reverse)
    {
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var pred_masks_per_obj = new Tensor[batch_size];
        for (int obj_idx = 0; obj_idx < batch_size; obj_idx++)
        {
            var obj_output_dict = s.output_dict_per_obj[obj_idx];
            Tensor pred_masks;
            // prompted frames already hold their output (clicks differ per object, so no batched rerun)
            if (obj_output_dict.cond_frame_outputs.TryGetValue(frame_idx, out var cond_out))
            {
                pred_masks = cond_out.pred_masks!.to(s.Device);
                if (ClearNonCondMemAroundInput)
                    _clear_obj_non_cond_mem_around_input(s, frame_idx, obj_idx);
            }
            else
            {
                var (current_out, pm) = _run_single_frame_inference(s, obj_output_dict, frame_idx, batch_size: 1, is_init_cond_frame: false,
                    point_inputs: null, mask_inputs: null, reverse: reverse, run_mem_encoder: true);
                SetOutput(obj_output_dict.non_cond_frame_outputs, frame_idx, current_out);
                pred_masks = pm;
            }
            s.frames_tracked_per_obj[obj_idx][frame_idx] = reverse;
            pred_masks_per_obj[obj_idx] = pred_masks;
            if (s.BoundedMemory) TrimNonCondMemory(s, obj_idx, frame_idx, reverse);
        }
        var all_pred_masks = pred_masks_per_obj.Length > 1 ? cat(pred_masks_per_obj, 0) : pred_masks_per_obj[0];
        return _get_orig_video_res_output(s, all_pred_masks).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// How many frames back (in the tracking direction) the model may still read a tracked output:
    /// memories reach at most stride × (num_maskmem − 1) frames back (see
    /// SAM2Base._prepare_memory_conditioned_features: the oldest is ⌊(t−2)/r⌋·r − (num_maskmem−3)·r),
    /// object pointers max_obj_ptrs_in_encoder − 1 frames back.
    /// </summary>
    public int NonCondMemoryWindow
    {
        get
        {
            int r = Math.Max(1, Model.memory_temporal_stride_for_eval);
            int w = Math.Max(1, r * (Model.num_maskmem - 1));
            if (Model.use_obj_ptrs_in_encoder) w = Math.Max(w, Model.max_obj_ptrs_in_encoder - 1);
            return w;
        }
    }

    /// <summary>
    /// Bounded memory: after tracking frame_idx, disposes the object's tracked outputs that the next
    /// frame in this direction can no longer read (older than <see cref="NonCondMemoryWindow"/>).
    /// </summary>
    private void TrimNonCondMemory(VideoInferenceState s, int obj_idx, int frame_idx, bool reverse)
    {
        int w = NonCondMemoryWindow;
        int next = reverse ? frame_idx - 1 : frame_idx + 1;
        var non_cond = s.output_dict_per_obj[obj_idx].non_cond_frame_outputs;
        // the dictionary is sorted: stale frames are at the start (forward) or the end (reverse)
        var stale = reverse
            ? non_cond.Keys.Reverse().TakeWhile(t => t > next + w).ToList()
            : non_cond.Keys.TakeWhile(t => t < next - w).ToList();
        foreach (int t in stale) RemoveOutput(non_cond, t);
    }

    // =========================================================================================
    // Editing the session
    // =========================================================================================

    /// <summary>
    /// Removes all prompts of an object on a frame (a conditioning output there becomes a tracked
    /// one). Returns the frame's masks of all objects afterwards, or null when needOutput is false.
    /// </summary>
    public (int frameIdx, IReadOnlyList<int> objIds, Tensor videoResMasks)? ClearAllPromptsInFrame(VideoInferenceState state, int frameIdx, int objId,
        bool needOutput = true)
    {
        ArgumentNullException.ThrowIfNull(state);
        state.ThrowIfDisposed();
        CheckFrame(state, frameIdx);
        // upstream would register an unknown id as a new (prompt-less) object; reject it instead
        if (!state.obj_id_to_idx.TryGetValue(objId, out int obj_idx))
            throw new KeyNotFoundException($"unknown object id {objId}; existing object ids: [{string.Join(", ", state.obj_ids)}]");
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        ClearPromptsCore(state, frameIdx, obj_idx);
        if (!needOutput) return null;
        var masks = FrameMasksAfterEdit(state, frameIdx);
        return (frameIdx, state.obj_ids.ToArray(), masks.MoveToOuterDisposeScope());
    }

    private static void ClearPromptsCore(VideoInferenceState s, int frame_idx, int obj_idx)
    {
        if (s.point_inputs_per_obj[obj_idx].Remove(frame_idx, out var pts)) pts.Dispose();
        if (s.mask_inputs_per_obj[obj_idx].Remove(frame_idx, out var m)) m.Dispose();
        var temp = s.temp_output_dict_per_obj[obj_idx];
        RemoveOutput(temp.cond_frame_outputs, frame_idx);
        RemoveOutput(temp.non_cond_frame_outputs, frame_idx);
        // without prompts the frame is no conditioning frame anymore: keep its output as a tracked one
        var obj_output_dict = s.output_dict_per_obj[obj_idx];
        if (obj_output_dict.cond_frame_outputs.Remove(frame_idx, out var o))
        {
            SetOutput(obj_output_dict.non_cond_frame_outputs, frame_idx, o);
            s.frames_tracked_per_obj[obj_idx].Remove(frame_idx);
        }
    }

    /// <summary>Consolidated masks of all objects on a frame at video resolution (after prompts changed).</summary>
    private Tensor FrameMasksAfterEdit(VideoInferenceState s, int frame_idx)
    {
        using var scope = NewDisposeScope();
        bool is_cond = s.temp_output_dict_per_obj.Values.Any(d => d.cond_frame_outputs.ContainsKey(frame_idx));
        var consolidated = _consolidate_temp_output_across_obj(s, frame_idx, is_cond, consolidate_at_video_res: true);
        return _get_orig_video_res_output(s, consolidated).MoveToOuterDisposeScope();
    }

    /// <summary>Removes every prompt, output and object id of the session (features and frames are kept).</summary>
    public void ResetState(VideoInferenceState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        state.ThrowIfDisposed();
        _reset_tracking_results(state);
        state.obj_id_to_idx.Clear();
        state.obj_idx_to_id.Clear();
        state.obj_ids.Clear();
        state.point_inputs_per_obj.Clear();
        state.mask_inputs_per_obj.Clear();
        state.output_dict_per_obj.Clear();
        state.temp_output_dict_per_obj.Clear();
        state.frames_tracked_per_obj.Clear();
    }

    /// <summary>Clears all prompts and tracking results, keeping the objects.</summary>
    private static void _reset_tracking_results(VideoInferenceState s) => s.DisposeAllTracking();

    /// <summary>
    /// Removes an object id from the session. An unknown id is ignored unless <paramref name="strict"/>
    /// (then <see cref="KeyNotFoundException"/>). Returns the remaining object ids and, when
    /// needOutput, the updated masks of the frames where the object had prompts.
    /// </summary>
    public (IReadOnlyList<int> objIds, IReadOnlyList<(int frameIdx, Tensor videoResMasks)> updatedFrames) RemoveObject(VideoInferenceState state,
        int objId, bool strict = false, bool needOutput = true)
    {
        ArgumentNullException.ThrowIfNull(state);
        state.ThrowIfDisposed();
        var updated_frames = new List<(int, Tensor)>();
        if (!state.obj_id_to_idx.TryGetValue(objId, out int old_obj_idx_to_rm))
        {
            if (!strict) return (state.obj_ids.ToArray(), updated_frames);
            throw new KeyNotFoundException($"Cannot remove object id {objId} as it doesn't exist. All existing object ids: [{string.Join(", ", state.obj_ids)}].");
        }
        // the last object: start from scratch
        if (state.obj_id_to_idx.Count == 1)
        {
            ResetState(state);
            return (state.obj_ids.ToArray(), updated_frames);
        }

        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        // Step 0: clear the object's prompts (may downgrade conditioning frames to tracked ones)
        var obj_input_frames_inds = state.point_inputs_per_obj[old_obj_idx_to_rm].Keys
            .Union(state.mask_inputs_per_obj[old_obj_idx_to_rm].Keys).OrderBy(x => x).ToList();
        foreach (int frame_idx in obj_input_frames_inds) ClearPromptsCore(state, frame_idx, old_obj_idx_to_rm);

        // Step 1: new id mapping without the removed object
        var old_obj_ids = state.obj_ids;
        var remain_old_obj_inds = Enumerable.Range(0, old_obj_ids.Count).Where(i => i != old_obj_idx_to_rm).ToList();
        var new_obj_ids = remain_old_obj_inds.Select(i => old_obj_ids[i]).ToList();
        var old_idx_to_new_idx = remain_old_obj_inds.Select((old, neu) => (old, neu)).ToDictionary(x => x.old, x => x.neu);
        state.obj_id_to_idx = new_obj_ids.Select((id, i) => (id, i)).ToDictionary(x => x.id, x => x.i);
        state.obj_idx_to_id = new_obj_ids.Select((id, i) => (id, i)).ToDictionary(x => x.i, x => x.id);
        state.obj_ids = new_obj_ids;

        // Step 2: shift the per-object storage to the new indices (disposing the removed object's)
        RemapKeys(state.point_inputs_per_obj, old_idx_to_new_idx, d => { foreach (var p in d.Values) p.Dispose(); });
        RemapKeys(state.mask_inputs_per_obj, old_idx_to_new_idx, d => { foreach (var m in d.Values) m.Dispose(); });
        RemapKeys(state.output_dict_per_obj, old_idx_to_new_idx, d => d.DisposeAll());
        RemapKeys(state.temp_output_dict_per_obj, old_idx_to_new_idx, d => d.DisposeAll());
        RemapKeys(state.frames_tracked_per_obj, old_idx_to_new_idx, _ => { });

        // Step 3: masks on those frames may change (e.g. objects that the removed one occluded)
        if (needOutput)
            foreach (int frame_idx in obj_input_frames_inds)
                updated_frames.Add((frame_idx, FrameMasksAfterEdit(state, frame_idx).MoveToOuterDisposeScope()));
        return (state.obj_ids.ToArray(), updated_frames);
    }

    private static void RemapKeys<T>(Dictionary<int, T> container, Dictionary<int, int> old_to_new, Action<T> disposeRemoved)
    {
        var entries = container.ToList();
        container.Clear();
        foreach (var (k, v) in entries)
        {
            if (old_to_new.TryGetValue(k, out int nk)) container[nk] = v;
            else disposeRemoved(v);
        }
    }

    /// <summary>
    /// Drops every object's tracked (non-conditioning) memories within num_maskmem strides around a
    /// frame that received new prompts, so that stale appearance does not confuse the model.
    /// </summary>
    private void _clear_non_cond_mem_around_input(VideoInferenceState s, int frame_idx)
    {
        for (int obj_idx = 0; obj_idx < _get_obj_num(s); obj_idx++)
            _clear_obj_non_cond_mem_around_input(s, frame_idx, obj_idx);
    }

    /// <summary>Per-object form of <see cref="_clear_non_cond_mem_around_input"/> (what propagation calls).</summary>
    private void _clear_obj_non_cond_mem_around_input(VideoInferenceState s, int frame_idx, int obj_idx)
    {
        int r = Model.memory_temporal_stride_for_eval;
        int frame_idx_begin = frame_idx - r * Model.num_maskmem;
        int frame_idx_end = frame_idx + r * Model.num_maskmem;
        var non_cond = s.output_dict_per_obj[obj_idx].non_cond_frame_outputs;
        foreach (var t in non_cond.Keys.Where(t => t >= frame_idx_begin && t <= frame_idx_end).ToList())
            RemoveOutput(non_cond, t);
    }

    // =========================================================================================
    // Per-frame inference
    // =========================================================================================

    /// <summary>
    /// Backbone features of a frame, expanded to batch_size, flattened for the model. Features of
    /// recently used frames come from the state's bounded LRU cache.
    /// </summary>
    private PreparedBackboneFeatures _get_image_feature(VideoInferenceState s, int frame_idx, int batch_size)
    {
        CheckFrame(s, frame_idx, nameof(frame_idx));
        ImageEncoderOutput? backbone_out = null;
        for (var node = s.cached_features.First; node is not null; node = node.Next)
        {
            if (node.Value.frame_idx != frame_idx) continue;
            backbone_out = node.Value.features;
            // most recently used goes last
            s.cached_features.Remove(node);
            s.cached_features.AddLast(node);
            break;
        }
        if (backbone_out is null)
        {
            using (var scope = NewDisposeScope())
            {
                using var image = s.Frames.GetFrame(frame_idx).to(ScalarType.Float32, s.Device).unsqueeze(0);
                backbone_out = Model.forward_image(image);
                backbone_out.vision_features.DetachFromDisposeScope();
                foreach (var t in backbone_out.vision_pos_enc) t.DetachFromDisposeScope();
                foreach (var t in backbone_out.backbone_fpn) t.DetachFromDisposeScope();
            }
            s.cached_features.AddLast((frame_idx, backbone_out));
            while (s.cached_features.Count > s.FeatureCacheSize)
            {
                s.cached_features.First!.Value.features.Dispose();
                s.cached_features.RemoveFirst();
            }
        }

        if (batch_size == 1) return Model._prepare_backbone_features(backbone_out);
        using (var scope = NewDisposeScope())
        {
            var expanded = new ImageEncoderOutput(
                backbone_out.vision_features.expand(batch_size, -1, -1, -1),
                backbone_out.vision_pos_enc.Select(x => x.expand(batch_size, -1, -1, -1)).ToList(),
                backbone_out.backbone_fpn.Select(x => x.expand(batch_size, -1, -1, -1)).ToList());
            var prepared = Model._prepare_backbone_features(expanded);
            foreach (var t in prepared.vision_feats) t.MoveToOuterDisposeScope();
            foreach (var t in prepared.vision_pos_embeds) t.MoveToOuterDisposeScope();
            return new PreparedBackboneFeatures(backbone_out, prepared.vision_feats, prepared.vision_pos_embeds, prepared.feat_sizes);
        }
    }

    /// <summary>
    /// Runs track_step on one frame and returns a compact output for the state (memory in bf16 on the
    /// storage device, shared maskmem_pos_enc, hole-filled low-res masks, pointer and object score),
    /// detached from dispose scopes, plus the hole-filled low-res masks on the compute device.
    /// </summary>
    private (FrameOutput current_out, Tensor pred_masks_gpu) _run_single_frame_inference(
        VideoInferenceState s,
        OutputDict output_dict,
        int frame_idx,
        int batch_size,
        bool is_init_cond_frame,
        PointInputs? point_inputs,
        Tensor? mask_inputs,
        bool reverse,
        bool run_mem_encoder,
        Tensor? prev_sam_mask_logits = null)
    {
        if (point_inputs is not null && mask_inputs is not null)
            throw new ArgumentException("points and a mask cannot be inputs of the same frame together");
        using var scope = NewDisposeScope();
        using var feats = _get_image_feature(s, frame_idx, batch_size);
        using var full_out = Model.track_step(
            frame_idx: frame_idx,
            is_init_cond_frame: is_init_cond_frame,
            current_vision_feats: feats.vision_feats,
            current_vision_pos_embeds: feats.vision_pos_embeds,
            feat_sizes: feats.feat_sizes,
            point_inputs: point_inputs,
            mask_inputs: mask_inputs,
            output_dict: output_dict,
            num_frames: s.NumFrames,
            track_in_reverse: reverse,
            run_mem_encoder: run_mem_encoder,
            prev_sam_mask_logits: prev_sam_mask_logits);

        // memories are kept in bf16 (half the size), possibly offloaded
        var maskmem_features = full_out.maskmem_features?.to(ScalarType.BFloat16).to(s.StorageDevice);
        var pred_masks_gpu = FillHoleArea > 0
            ? MaskPostprocess.fill_holes_in_mask_scores(full_out.pred_masks!, FillHoleArea)
            : full_out.pred_masks!.alias();
        var pred_masks = pred_masks_gpu.to(s.StorageDevice);
        var maskmem_pos_enc = _get_maskmem_pos_enc(s, full_out.maskmem_pos_enc);
        var compact = new FrameOutput
        {
            maskmem_features = maskmem_features,
            maskmem_pos_enc = maskmem_pos_enc,
            pred_masks = pred_masks,
            // the pointer is small: always on the compute device
            obj_ptr = full_out.obj_ptr!.alias(),
            object_score_logits = full_out.object_score_logits?.alias(),
        };
        compact.DetachFromDisposeScope();
        return (compact, pred_masks_gpu.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Re-encodes the memory of a frame from given high-res mask logits (e.g. after the user's
    /// prompts); returns bf16 features on the storage device and the shared positional encoding,
    /// both detached from dispose scopes.
    /// </summary>
    private (Tensor maskmem_features, List<Tensor> maskmem_pos_enc) _run_memory_encoder(
        VideoInferenceState s, int frame_idx, int batch_size, Tensor high_res_masks, Tensor? object_score_logits, bool is_mask_from_pts)
    {
        using var scope = NewDisposeScope();
        using var feats = _get_image_feature(s, frame_idx, batch_size);
        var (features, pos) = Model._encode_new_memory(feats.vision_feats, feats.feat_sizes, high_res_masks, object_score_logits, is_mask_from_pts);
        var maskmem_features = features.to(ScalarType.BFloat16).to(s.StorageDevice).DetachFromDisposeScope();
        var maskmem_pos_enc = _get_maskmem_pos_enc(s, pos)!;
        foreach (var t in maskmem_pos_enc) t.DetachFromDisposeScope();
        return (maskmem_features, maskmem_pos_enc);
    }

    /// <summary>
    /// maskmem_pos_enc is identical for every frame and object, so one single-object copy is kept as a
    /// state constant and each output gets expanded views of it.
    /// </summary>
    private static List<Tensor>? _get_maskmem_pos_enc(VideoInferenceState s, List<Tensor>? out_maskmem_pos_enc)
    {
        if (out_maskmem_pos_enc is null) return null;
        if (s.constant_maskmem_pos_enc is null)
        {
            var constant = new List<Tensor>();
            foreach (var x in out_maskmem_pos_enc)
            {
                using var slice = x.narrow(0, 0, 1);
                constant.Add(slice.clone().DetachFromDisposeScope());
            }
            s.constant_maskmem_pos_enc = constant;
        }
        long batch_size = out_maskmem_pos_enc[0].size(0);
        return s.constant_maskmem_pos_enc.Select(x => x.expand(batch_size, -1, -1, -1)).ToList();
    }
}
