using TorchSam2.IO;
using TorchSam2.Modeling;
using TorchSam2.Modeling.Backbones;
using TorchSharp;
using static TorchSharp.torch;
using TorchSharp.Modules;

namespace TorchSam2;

// Python's `inference_state` dict of sam2/sam2_video_predictor.py as a typed class. Every tensor
// held here is detached from dispose scopes and owned by the state: replacing or removing an entry
// disposes the previous value, and Dispose() releases everything (including the frames).

/// <summary>
/// Per-video session of <see cref="Sam2VideoPredictor"/>: the preprocessed frames, the prompts and
/// outputs of every object (independently per object, as the December 2024 predictor), a small
/// cache of backbone features and the constants shared across frames.
/// </summary>
public sealed class VideoInferenceState : IDisposable
{
    private bool _disposed;

    internal VideoInferenceState(VideoFrameSource frames, Device device, Device storageDevice,
        bool offloadVideoToCpu, bool offloadStateToCpu, int featureCacheSize)
    {
        if (frames.NumFrames == 0) throw new ArgumentException("the video has no frames");
        if (frames.VideoHeight <= 0 || frames.VideoWidth <= 0)
            throw new ArgumentOutOfRangeException(nameof(frames), $"video size must be positive, got {frames.VideoHeight}x{frames.VideoWidth}");
        if (featureCacheSize < 1) throw new ArgumentOutOfRangeException(nameof(featureCacheSize), "the feature cache needs at least one entry");
        Frames = frames;
        NumFrames = frames.NumFrames;
        VideoHeight = frames.VideoHeight;
        VideoWidth = frames.VideoWidth;
        Device = device;
        StorageDevice = storageDevice;
        OffloadVideoToCpu = offloadVideoToCpu;
        OffloadStateToCpu = offloadStateToCpu;
        FeatureCacheSize = featureCacheSize;
    }

    /// <summary>The preprocessed frames (float, normalized): all in one tensor, or decoded on demand from files.</summary>
    public VideoFrameSource Frames { get; }
    public int NumFrames { get; }
    /// <summary>Original video size; outputs (video_res_masks) are resized to it.</summary>
    public int VideoHeight { get; }
    public int VideoWidth { get; }
    /// <summary>Device the model computes on.</summary>
    public Device Device { get; }
    /// <summary>Where per-frame outputs are kept (the CPU when the state is offloaded).</summary>
    public Device StorageDevice { get; }
    public bool OffloadVideoToCpu { get; }
    public bool OffloadStateToCpu { get; }

    /// <summary>How many frames' backbone features are kept (least recently used are evicted). Upstream keeps one.</summary>
    public int FeatureCacheSize { get; }

    /// <summary>
    /// Bounded memory for long videos (off by default, as upstream): while propagating, each
    /// object's tracked (non-conditioning) outputs that fall behind the window the model can still
    /// read (num_maskmem memories with the eval stride, and max_obj_ptrs_in_encoder pointers) are
    /// disposed, so memory stays flat however long the video. Masks are unchanged; what is lost is
    /// the stored output of old frames (a later correction click there starts without the previous
    /// logits, and a later propagation re-tracks them).
    /// </summary>
    public bool BoundedMemory { get; set; }

    // ---- prompts (obj_idx → frame_idx → input) -----------------------------------------------
    internal Dictionary<int, SortedDictionary<int, PointInputs>> point_inputs_per_obj { get; } = new();
    internal Dictionary<int, SortedDictionary<int, Tensor>> mask_inputs_per_obj { get; } = new();

    // ---- backbone feature cache: frame_idx → features, most recently used last ---------------
    internal LinkedList<(int frame_idx, ImageEncoderOutput features)> cached_features { get; } = new();

    // ---- constants: maskmem_pos_enc is the same for every frame and object (one-object slices) -
    internal List<Tensor>? constant_maskmem_pos_enc { get; set; }

    // ---- object id mapping ---------------------------------------------------------------------
    internal Dictionary<int, int> obj_id_to_idx { get; set; } = new();
    internal Dictionary<int, int> obj_idx_to_id { get; set; } = new();
    internal List<int> obj_ids { get; set; } = new();

    // ---- outputs (obj_idx → ...) ----------------------------------------------------------------
    internal Dictionary<int, OutputDict> output_dict_per_obj { get; } = new();
    /// <summary>Outputs of frames that just received prompts, merged into output_dict_per_obj when propagation starts.</summary>
    internal Dictionary<int, OutputDict> temp_output_dict_per_obj { get; } = new();
    /// <summary>obj_idx → frame_idx → whether it was tracked in reverse.</summary>
    internal Dictionary<int, Dictionary<int, bool>> frames_tracked_per_obj { get; } = new();

    /// <summary>Client-side object ids, in model order (the order of rows in video_res_masks).</summary>
    public IReadOnlyList<int> ObjectIds => obj_ids.ToArray();

    /// <summary>Tracked (non-conditioning) frame outputs currently stored, summed over objects (bounded with <see cref="BoundedMemory"/>).</summary>
    public int StoredTrackedOutputCount => output_dict_per_obj.Values.Sum(d => d.non_cond_frame_outputs.Count);

    /// <summary>Number of objects received so far in this session.</summary>
    public int ObjectCount => obj_idx_to_id.Count;

    /// <summary>Frames holding prompts (points or masks) for an object id; empty for an unknown id.</summary>
    public IReadOnlyList<int> PromptedFrames(int objId)
    {
        if (!obj_id_to_idx.TryGetValue(objId, out var idx)) return [];
        return point_inputs_per_obj[idx].Keys.Union(mask_inputs_per_obj[idx].Keys).OrderBy(x => x).ToArray();
    }

    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>Drops every cached backbone feature.</summary>
    internal void ClearFeatureCache()
    {
        foreach (var (_, f) in cached_features) f.Dispose();
        cached_features.Clear();
    }

    /// <summary>Disposes all prompts and outputs of every object (the id mapping is kept).</summary>
    internal void DisposeAllTracking()
    {
        foreach (var d in point_inputs_per_obj.Values) { foreach (var p in d.Values) p.Dispose(); d.Clear(); }
        foreach (var d in mask_inputs_per_obj.Values) { foreach (var m in d.Values) m.Dispose(); d.Clear(); }
        foreach (var d in output_dict_per_obj.Values) d.DisposeAll();
        foreach (var d in temp_output_dict_per_obj.Values) d.DisposeAll();
        foreach (var d in frames_tracked_per_obj.Values) d.Clear();
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        DisposeAllTracking();
        ClearFeatureCache();
        if (constant_maskmem_pos_enc is not null) foreach (var t in constant_maskmem_pos_enc) t.Dispose();
        constant_maskmem_pos_enc = null;
        Frames.Dispose();
    }
}
