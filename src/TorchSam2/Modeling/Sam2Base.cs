using TorchSam2.Configs;
using TorchSam2.Modeling.Backbones;
using TorchSam2.Modeling.Sam;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace TorchSam2.Modeling;

// Port of sam2/modeling/sam2_base.py. Python's dict-shaped values (point_inputs, current_out,
// output_dict, the SAM head tuple) are small IDisposable classes below; each owns its tensor
// handles (inputs it keeps are stored as aliases, so disposing an output never frees a caller's tensor).

/// <summary>Click prompts of one frame: coords [B, P, 2] (pixels, x/y) and labels [B, P] (int32; 1 pos, 0 neg, -1 pad, 2/3 box corners).</summary>
public sealed class PointInputs(Tensor point_coords, Tensor point_labels) : IDisposable
{
    public Tensor point_coords { get; set; } = point_coords;
    public Tensor point_labels { get; set; } = point_labels;

    /// <summary>New handles to the same tensors (the copy can be disposed independently).</summary>
    public PointInputs Alias() => new(point_coords.alias(), point_labels.alias());

    public void MoveToOuterDisposeScope()
    {
        point_coords.MoveToOuterDisposeScope();
        point_labels.MoveToOuterDisposeScope();
    }

    public void DetachFromDisposeScope()
    {
        point_coords.DetachFromDisposeScope();
        point_labels.DetachFromDisposeScope();
    }

    public void Dispose()
    {
        point_coords.Dispose();
        point_labels.Dispose();
    }
}

/// <summary>
/// One frame's tracking result (Python's <c>current_out</c> dict). Owns every tensor it holds;
/// whoever replaces a property is responsible for disposing the previous value.
/// </summary>
public sealed class FrameOutput : IDisposable
{
    public PointInputs? point_inputs { get; set; }
    public Tensor? mask_inputs { get; set; }
    /// <summary>Low-res mask logits [B, 1, H/4, W/4] (of the backbone stride-16 map: 4x its size).</summary>
    public Tensor? pred_masks { get; set; }
    /// <summary>Mask logits at image_size [B, 1, S, S].</summary>
    public Tensor? pred_masks_high_res { get; set; }
    /// <summary>Object pointer [B, C].</summary>
    public Tensor? obj_ptr { get; set; }
    /// <summary>Object presence logits [B, 1] (set in eval mode only, as upstream).</summary>
    public Tensor? object_score_logits { get; set; }
    /// <summary>Spatial memory [B, mem_dim, H, W]; the video predictor stores it in bf16.</summary>
    public Tensor? maskmem_features { get; set; }
    /// <summary>Positional encodings of the memory (one level).</summary>
    public List<Tensor>? maskmem_pos_enc { get; set; }

    /// <summary>Python-style access by key for the tensor entries (null when unset).</summary>
    public Tensor? this[string key] => key switch
    {
        "mask_inputs" => mask_inputs,
        "pred_masks" => pred_masks,
        "pred_masks_high_res" => pred_masks_high_res,
        "obj_ptr" => obj_ptr,
        "object_score_logits" => object_score_logits,
        "maskmem_features" => maskmem_features,
        _ => throw new KeyNotFoundException(key),
    };

    private IEnumerable<Tensor> Tensors()
    {
        if (point_inputs is not null) { yield return point_inputs.point_coords; yield return point_inputs.point_labels; }
        foreach (var t in new[] { mask_inputs, pred_masks, pred_masks_high_res, obj_ptr, object_score_logits, maskmem_features })
            if (t is not null) yield return t;
        if (maskmem_pos_enc is not null) foreach (var t in maskmem_pos_enc) yield return t;
    }

    /// <summary>Moves every held tensor one dispose scope out (used when returning from a scoped method).</summary>
    public FrameOutput MoveToOuterDisposeScope()
    {
        foreach (var t in Tensors()) t.MoveToOuterDisposeScope();
        return this;
    }

    /// <summary>Takes every held tensor out of dispose scopes (for long-lived storage such as an inference state).</summary>
    public FrameOutput DetachFromDisposeScope()
    {
        foreach (var t in Tensors()) t.DetachFromDisposeScope();
        return this;
    }

    /// <summary>
    /// Converts the spatial memory to bf16, as the official video predictor stores it (halves its
    /// size); <see cref="SAM2Base._prepare_memory_conditioned_features"/> casts it back when reading.
    /// The new tensor belongs to no dispose scope (this output owns it).
    /// </summary>
    public void StoreMemoryAsBFloat16()
    {
        if (maskmem_features is null || maskmem_features.dtype == ScalarType.BFloat16) return;
        var old = maskmem_features;
        maskmem_features = old.to(ScalarType.BFloat16).DetachFromDisposeScope();
        old.Dispose();
    }

    public void Dispose()
    {
        foreach (var t in Tensors()) t.Dispose();
        point_inputs = null;
        mask_inputs = pred_masks = pred_masks_high_res = obj_ptr = object_score_logits = maskmem_features = null;
        maskmem_pos_enc = null;
    }
}

/// <summary>Python's <c>output_dict</c>: conditioning (prompted) and non-conditioning (tracked) frame outputs by frame index.</summary>
public sealed class OutputDict
{
    public SortedDictionary<int, FrameOutput> cond_frame_outputs { get; } = new();
    public SortedDictionary<int, FrameOutput> non_cond_frame_outputs { get; } = new();

    /// <summary>Disposes every stored output and clears both maps.</summary>
    public void DisposeAll()
    {
        foreach (var o in cond_frame_outputs.Values) o.Dispose();
        foreach (var o in non_cond_frame_outputs.Values) o.Dispose();
        cond_frame_outputs.Clear();
        non_cond_frame_outputs.Clear();
    }
}

/// <summary>
/// The seven outputs of <see cref="SAM2Base._forward_sam_heads"/> / <see cref="SAM2Base._use_mask_as_output"/>:
/// low_res_multimasks [B,M,h,w], high_res_multimasks [B,M,S,S], ious [B,M], low_res_masks [B,1,h,w],
/// high_res_masks [B,1,S,S], obj_ptr [B,C], object_score_logits [B,1].
/// </summary>
public sealed class SamHeadsOutput(Tensor low_res_multimasks, Tensor high_res_multimasks, Tensor ious, Tensor low_res_masks,
    Tensor high_res_masks, Tensor obj_ptr, Tensor object_score_logits) : IDisposable
{
    public Tensor low_res_multimasks { get; set; } = low_res_multimasks;
    public Tensor high_res_multimasks { get; set; } = high_res_multimasks;
    public Tensor ious { get; set; } = ious;
    public Tensor low_res_masks { get; set; } = low_res_masks;
    public Tensor high_res_masks { get; set; } = high_res_masks;
    public Tensor obj_ptr { get; set; } = obj_ptr;
    public Tensor object_score_logits { get; set; } = object_score_logits;

    private Tensor[] All => [low_res_multimasks, high_res_multimasks, ious, low_res_masks, high_res_masks, obj_ptr, object_score_logits];

    public void Deconstruct(out Tensor low_res_multimasks, out Tensor high_res_multimasks, out Tensor ious, out Tensor low_res_masks,
        out Tensor high_res_masks, out Tensor obj_ptr, out Tensor object_score_logits)
    {
        low_res_multimasks = this.low_res_multimasks;
        high_res_multimasks = this.high_res_multimasks;
        ious = this.ious;
        low_res_masks = this.low_res_masks;
        high_res_masks = this.high_res_masks;
        obj_ptr = this.obj_ptr;
        object_score_logits = this.object_score_logits;
    }

    public SamHeadsOutput MoveToOuterDisposeScope()
    {
        foreach (var t in All) t.MoveToOuterDisposeScope();
        return this;
    }

    public void Dispose()
    {
        foreach (var t in All) t.Dispose();
    }
}

/// <summary>
/// Flattened backbone features from <see cref="SAM2Base._prepare_backbone_features"/>: the last
/// num_feature_levels levels as (HW)×B×C sequences plus their spatial sizes. Owns the two lists;
/// <see cref="backbone_out"/> is the caller's object (not disposed here).
/// </summary>
public sealed class PreparedBackboneFeatures(ImageEncoderOutput backbone_out, List<Tensor> vision_feats, List<Tensor> vision_pos_embeds,
    List<(long H, long W)> feat_sizes) : IDisposable
{
    public ImageEncoderOutput backbone_out { get; } = backbone_out;
    public List<Tensor> vision_feats { get; } = vision_feats;
    public List<Tensor> vision_pos_embeds { get; } = vision_pos_embeds;
    public List<(long H, long W)> feat_sizes { get; } = feat_sizes;

    public void Deconstruct(out ImageEncoderOutput backbone_out, out List<Tensor> vision_feats, out List<Tensor> vision_pos_embeds,
        out List<(long H, long W)> feat_sizes)
    {
        backbone_out = this.backbone_out;
        vision_feats = this.vision_feats;
        vision_pos_embeds = this.vision_pos_embeds;
        feat_sizes = this.feat_sizes;
    }

    public void Dispose()
    {
        foreach (var t in vision_feats) t.Dispose();
        foreach (var t in vision_pos_embeds) t.Dispose();
    }
}

/// <summary>
/// SAM 2 base model: image encoder, memory attention, memory encoder and the SAM prompt encoder /
/// mask decoder heads, with the per-frame tracking step. Inference drivers (image/video predictors)
/// build on it; <see cref="forward"/> is intentionally unsupported, as upstream.
/// </summary>
public class SAM2Base : nn.Module
{
    /// <summary>Placeholder logit for masks of objects predicted absent.</summary>
    public const double NO_OBJ_SCORE = -1024.0;

    // ---- submodules and parameters (field names are the state-dict names) --------------------
    public readonly ImageEncoder image_encoder;
    public readonly Conv2d? mask_downsample;
    public readonly MemoryAttention memory_attention;
    public readonly MemoryEncoder memory_encoder;
    public readonly Parameter maskmem_tpos_enc;
    public readonly Parameter no_mem_embed;
    public readonly Parameter no_mem_pos_enc;
    public readonly Parameter? no_obj_ptr;
    public readonly Parameter? no_obj_embed_spatial;
    public readonly PromptEncoder sam_prompt_encoder;
    public readonly MaskDecoder sam_mask_decoder;
    public readonly nn.Module<Tensor, Tensor> obj_ptr_proj;
    public readonly nn.Module<Tensor, Tensor> obj_ptr_tpos_proj;

    // ---- hyper-parameters --------------------------------------------------------------------
    public bool use_high_res_features_in_sam { get; }
    public int num_feature_levels { get; }
    public bool use_obj_ptrs_in_encoder { get; }
    public int max_obj_ptrs_in_encoder { get; }
    public bool add_tpos_enc_to_obj_ptrs { get; }
    public bool proj_tpos_enc_in_obj_ptrs { get; }
    public bool use_signed_tpos_enc_to_obj_ptrs { get; }
    public bool only_obj_ptrs_in_the_past_for_eval { get; }
    public long hidden_dim { get; }
    public long mem_dim { get; }
    public int num_maskmem { get; }
    public bool directly_add_no_mem_embed { get; }
    public double sigmoid_scale_for_mem_enc { get; }
    public double sigmoid_bias_for_mem_enc { get; }
    public bool binarize_mask_from_pts_for_mem_enc { get; set; }
    public bool non_overlap_masks_for_mem_enc { get; set; }
    public int memory_temporal_stride_for_eval { get; set; }
    public bool use_mask_input_as_output_without_sam { get; }
    public bool multimask_output_in_sam { get; }
    public int multimask_min_pt_num { get; }
    public int multimask_max_pt_num { get; }
    public bool multimask_output_for_tracking { get; }
    public bool use_multimask_token_for_obj_ptr { get; }
    public bool iou_prediction_use_sigmoid { get; }
    public int image_size { get; }
    public int backbone_stride { get; }
    public SamMaskDecoderExtraArgs? sam_mask_decoder_extra_args { get; }
    public bool pred_obj_scores { get; }
    public bool pred_obj_scores_mlp { get; }
    public bool fixed_no_obj_ptr { get; }
    public bool soft_no_obj_ptr { get; }
    public bool use_mlp_for_obj_ptr_proj { get; }
    public int max_cond_frames_in_attn { get; set; }
    public long sam_prompt_embed_dim { get; private set; }
    public long sam_image_embedding_size { get; private set; }

    public SAM2Base(
        ImageEncoder image_encoder,
        MemoryAttention memory_attention,
        MemoryEncoder memory_encoder,
        int num_maskmem = 7,
        int image_size = 512,
        int backbone_stride = 16,
        double sigmoid_scale_for_mem_enc = 1.0,
        double sigmoid_bias_for_mem_enc = 0.0,
        bool binarize_mask_from_pts_for_mem_enc = false,
        bool use_mask_input_as_output_without_sam = false,
        int max_cond_frames_in_attn = -1,
        bool directly_add_no_mem_embed = false,
        bool use_high_res_features_in_sam = false,
        bool multimask_output_in_sam = false,
        int multimask_min_pt_num = 1,
        int multimask_max_pt_num = 1,
        bool multimask_output_for_tracking = false,
        bool use_multimask_token_for_obj_ptr = false,
        bool iou_prediction_use_sigmoid = false,
        int memory_temporal_stride_for_eval = 1,
        bool non_overlap_masks_for_mem_enc = false,
        bool use_obj_ptrs_in_encoder = false,
        int max_obj_ptrs_in_encoder = 16,
        bool add_tpos_enc_to_obj_ptrs = true,
        bool proj_tpos_enc_in_obj_ptrs = false,
        bool use_signed_tpos_enc_to_obj_ptrs = false,
        bool only_obj_ptrs_in_the_past_for_eval = false,
        bool pred_obj_scores = false,
        bool pred_obj_scores_mlp = false,
        bool fixed_no_obj_ptr = false,
        bool soft_no_obj_ptr = false,
        bool use_mlp_for_obj_ptr_proj = false,
        bool no_obj_embed_spatial = false,
        SamMaskDecoderExtraArgs? sam_mask_decoder_extra_args = null,
        bool compile_image_encoder = false) : base(nameof(SAM2Base))
    {
        // Part 1: image backbone. Levels 0-2 feed the decoder in the high-res setting, else only level 2.
        this.image_encoder = image_encoder;
        this.use_high_res_features_in_sam = use_high_res_features_in_sam;
        num_feature_levels = use_high_res_features_in_sam ? 3 : 1;
        this.use_obj_ptrs_in_encoder = use_obj_ptrs_in_encoder;
        this.max_obj_ptrs_in_encoder = max_obj_ptrs_in_encoder;
        if (use_obj_ptrs_in_encoder)
            // brings a mask prompt to the stride-4 low-res logit scale so the decoder can make a pointer from it
            mask_downsample = nn.Conv2d(1, 1, kernel_size: 4, stride: 4);
        this.add_tpos_enc_to_obj_ptrs = add_tpos_enc_to_obj_ptrs;
        if (proj_tpos_enc_in_obj_ptrs && !add_tpos_enc_to_obj_ptrs)
            throw new ArgumentException("proj_tpos_enc_in_obj_ptrs requires add_tpos_enc_to_obj_ptrs");
        this.proj_tpos_enc_in_obj_ptrs = proj_tpos_enc_in_obj_ptrs;
        this.use_signed_tpos_enc_to_obj_ptrs = use_signed_tpos_enc_to_obj_ptrs;
        this.only_obj_ptrs_in_the_past_for_eval = only_obj_ptrs_in_the_past_for_eval;

        // Part 2: memory attention.
        this.memory_attention = memory_attention;
        hidden_dim = image_encoder.neck.d_model;

        // Part 3: memory encoder; memories may be compressed along channels by its out projection.
        this.memory_encoder = memory_encoder;
        mem_dim = memory_encoder.out_proj is Conv2d outProj ? outProj.weight.shape[0] : hidden_dim;
        this.num_maskmem = num_maskmem;
        maskmem_tpos_enc = new Parameter(zeros([num_maskmem, 1, 1, mem_dim]));
        nn.init.trunc_normal_(maskmem_tpos_enc, std: 0.02);
        no_mem_embed = new Parameter(zeros([1, 1, hidden_dim]));
        no_mem_pos_enc = new Parameter(zeros([1, 1, hidden_dim]));
        nn.init.trunc_normal_(no_mem_embed, std: 0.02);
        nn.init.trunc_normal_(no_mem_pos_enc, std: 0.02);
        this.directly_add_no_mem_embed = directly_add_no_mem_embed;
        this.sigmoid_scale_for_mem_enc = sigmoid_scale_for_mem_enc;
        this.sigmoid_bias_for_mem_enc = sigmoid_bias_for_mem_enc;
        this.binarize_mask_from_pts_for_mem_enc = binarize_mask_from_pts_for_mem_enc;
        this.non_overlap_masks_for_mem_enc = non_overlap_masks_for_mem_enc;
        this.memory_temporal_stride_for_eval = memory_temporal_stride_for_eval;
        this.use_mask_input_as_output_without_sam = use_mask_input_as_output_without_sam;
        this.multimask_output_in_sam = multimask_output_in_sam;
        this.multimask_min_pt_num = multimask_min_pt_num;
        this.multimask_max_pt_num = multimask_max_pt_num;
        this.multimask_output_for_tracking = multimask_output_for_tracking;
        this.use_multimask_token_for_obj_ptr = use_multimask_token_for_obj_ptr;
        this.iou_prediction_use_sigmoid = iou_prediction_use_sigmoid;

        // Part 4: SAM prompt encoder and mask decoder.
        this.image_size = image_size;
        this.backbone_stride = backbone_stride;
        this.sam_mask_decoder_extra_args = sam_mask_decoder_extra_args;
        this.pred_obj_scores = pred_obj_scores;
        this.pred_obj_scores_mlp = pred_obj_scores_mlp;
        this.fixed_no_obj_ptr = fixed_no_obj_ptr;
        this.soft_no_obj_ptr = soft_no_obj_ptr;
        if (fixed_no_obj_ptr && !(pred_obj_scores && use_obj_ptrs_in_encoder))
            throw new ArgumentException("fixed_no_obj_ptr requires pred_obj_scores and use_obj_ptrs_in_encoder");
        if (pred_obj_scores && use_obj_ptrs_in_encoder)
        {
            no_obj_ptr = new Parameter(zeros([1, hidden_dim]));
            nn.init.trunc_normal_(no_obj_ptr, std: 0.02);
        }
        this.use_mlp_for_obj_ptr_proj = use_mlp_for_obj_ptr_proj;
        if (no_obj_embed_spatial)
        {
            this.no_obj_embed_spatial = new Parameter(zeros([1, mem_dim]));
            nn.init.trunc_normal_(this.no_obj_embed_spatial, std: 0.02);
        }

        (sam_prompt_encoder, sam_mask_decoder, obj_ptr_proj, obj_ptr_tpos_proj) = _build_sam_heads();
        this.max_cond_frames_in_attn = max_cond_frames_in_attn;
        // compile_image_encoder (torch.compile) has no equivalent here; it is accepted and ignored.
        _ = compile_image_encoder;

        RegisterComponents();
    }

    /// <summary>Device of the model's parameters.</summary>
    public Device device => parameters().First().device;

    /// <summary>Not supported, as upstream: use the image/video predictors (or a training wrapper).</summary>
    public virtual void forward() =>
        throw new NotSupportedException("Use the SAM2 image/video predictors for inference; SAM2Base has no forward.");

    /// <summary>Builds the SAM prompt encoder, mask decoder and object-pointer projections (sizes follow hidden_dim and image_size).</summary>
    private (PromptEncoder, MaskDecoder, nn.Module<Tensor, Tensor>, nn.Module<Tensor, Tensor>) _build_sam_heads()
    {
        sam_prompt_embed_dim = hidden_dim;
        sam_image_embedding_size = image_size / backbone_stride;

        // hyper-parameters such as mask_in_chans=16 come from SAM
        var promptEncoder = new PromptEncoder(
            embed_dim: sam_prompt_embed_dim,
            image_embedding_size: (sam_image_embedding_size, sam_image_embedding_size),
            input_image_size: (image_size, image_size),
            mask_in_chans: 16);
        var extra = sam_mask_decoder_extra_args ?? new SamMaskDecoderExtraArgs();
        var maskDecoder = new MaskDecoder(
            num_multimask_outputs: 3,
            transformer: new TwoWayTransformer(depth: 2, embedding_dim: sam_prompt_embed_dim, mlp_dim: 2048, num_heads: 8),
            transformer_dim: sam_prompt_embed_dim,
            iou_head_depth: 3,
            iou_head_hidden_dim: 256,
            use_high_res_features: use_high_res_features_in_sam,
            iou_prediction_use_sigmoid: iou_prediction_use_sigmoid,
            pred_obj_scores: pred_obj_scores,
            pred_obj_scores_mlp: pred_obj_scores_mlp,
            use_multimask_token_for_obj_ptr: use_multimask_token_for_obj_ptr,
            dynamic_multimask_via_stability: extra.DynamicMultimaskViaStability,
            dynamic_multimask_stability_delta: extra.DynamicMultimaskStabilityDelta,
            dynamic_multimask_stability_thresh: extra.DynamicMultimaskStabilityThresh);

        nn.Module<Tensor, Tensor> ptrProj;
        if (use_obj_ptrs_in_encoder)
            // projects SAM output tokens into object pointers
            ptrProj = use_mlp_for_obj_ptr_proj
                ? new MLP(hidden_dim, hidden_dim, hidden_dim, 3)
                : nn.Linear(hidden_dim, hidden_dim);
        else
            ptrProj = nn.Identity();
        // separate projection of the pointers' temporal encoding, to keep it apart from the spatial one
        nn.Module<Tensor, Tensor> tposProj = proj_tpos_enc_in_obj_ptrs ? nn.Linear(hidden_dim, mem_dim) : nn.Identity();
        return (promptEncoder, maskDecoder, ptrProj, tposProj);
    }

    // =========================================================================================
    // SAM heads
    // =========================================================================================

    /// <summary>
    /// Runs the prompt encoder and mask decoder on backbone_features [B, C, H, W] with optional
    /// point_inputs, mask_inputs [B, 1, *, *] and high_res_features (two maps at 4x and 2x H, W).
    /// </summary>
    public SamHeadsOutput _forward_sam_heads(
        Tensor backbone_features,
        PointInputs? point_inputs = null,
        Tensor? mask_inputs = null,
        IReadOnlyList<Tensor>? high_res_features = null,
        bool multimask_output = false)
    {
        using var scope = NewDisposeScope();
        long B = backbone_features.size(0);
        var dev = backbone_features.device;
        if (backbone_features.size(1) != sam_prompt_embed_dim || backbone_features.size(2) != sam_image_embedding_size
            || backbone_features.size(3) != sam_image_embedding_size)
            throw new ArgumentException(
                $"backbone_features must be [B, {sam_prompt_embed_dim}, {sam_image_embedding_size}, {sam_image_embedding_size}], got [{string.Join(", ", backbone_features.shape)}]");

        // a) points; without any, a single padding point (label -1)
        Tensor sam_point_coords, sam_point_labels;
        if (point_inputs is not null)
        {
            sam_point_coords = point_inputs.point_coords;
            sam_point_labels = point_inputs.point_labels;
            if (sam_point_coords.size(0) != B || sam_point_labels.size(0) != B)
                throw new ArgumentException("point_inputs batch size differs from backbone_features");
        }
        else
        {
            sam_point_coords = zeros([B, 1, 2], ScalarType.Float32, dev);
            sam_point_labels = full([B, 1], -1, ScalarType.Int32, dev);
        }

        // b) mask prompt, resized to the prompt encoder's mask input size when needed
        Tensor? sam_mask_prompt = null;
        if (mask_inputs is not null)
        {
            if (mask_inputs.dim() != 4 || mask_inputs.size(0) != B || mask_inputs.size(1) != 1)
                throw new ArgumentException($"mask_inputs must be [B, 1, H, W], got [{string.Join(", ", mask_inputs.shape)}]");
            var (mh, mw) = MaskInputSize();
            if (mask_inputs.size(2) != mh || mask_inputs.size(3) != mw)
                sam_mask_prompt = F.interpolate(mask_inputs.@float(), size: [mh, mw], mode: InterpolationMode.Bilinear, align_corners: false,
                    antialias: true); // antialias for downsampling
            else
                sam_mask_prompt = mask_inputs;
        }

        var (sparse_embeddings, dense_embeddings) = sam_prompt_encoder.forward(
            points: (sam_point_coords, sam_point_labels), boxes: null, masks: sam_mask_prompt);
        var (low_res_multimasks, ious, sam_output_tokens, object_score_logits) = sam_mask_decoder.forward(
            image_embeddings: backbone_features,
            image_pe: sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings: sparse_embeddings,
            dense_prompt_embeddings: dense_embeddings,
            multimask_output: multimask_output,
            repeat_image: false, // the image is already batched
            high_res_features: high_res_features);

        Tensor? is_obj_appearing = null;
        if (pred_obj_scores)
        {
            is_obj_appearing = object_score_logits > 0;
            // the mask is a hard choice between object and no object, matching the memory's view
            low_res_multimasks = where(is_obj_appearing[.., TensorIndex.None, TensorIndex.None], low_res_multimasks, NO_OBJ_SCORE);
        }

        // masks may come out in a reduced precision; upsample in fp32
        low_res_multimasks = low_res_multimasks.@float();
        var high_res_multimasks = F.interpolate(low_res_multimasks, size: [image_size, image_size], mode: InterpolationMode.Bilinear, align_corners: false);

        var sam_output_token = sam_output_tokens[.., 0];
        Tensor low_res_masks, high_res_masks;
        if (multimask_output)
        {
            // pick the mask with the highest predicted IoU
            var best_iou_inds = ious.argmax(-1);
            var batch_inds = arange(B, ScalarType.Int64, dev);
            low_res_masks = low_res_multimasks.index(batch_inds, best_iou_inds).unsqueeze(1);
            high_res_masks = high_res_multimasks.index(batch_inds, best_iou_inds).unsqueeze(1);
            if (sam_output_tokens.size(1) > 1)
                sam_output_token = sam_output_tokens.index(batch_inds, best_iou_inds);
        }
        else
        {
            low_res_masks = low_res_multimasks.alias();
            high_res_masks = high_res_multimasks.alias();
        }

        // object pointer from the output token, with occlusion handling
        var obj_ptr = obj_ptr_proj.forward(sam_output_token);
        if (pred_obj_scores)
        {
            // the pointer may use a *soft* no-object mix, unlike the masks
            var lambda_is_obj_appearing = soft_no_obj_ptr ? object_score_logits.sigmoid() : is_obj_appearing!.@float();
            if (fixed_no_obj_ptr) obj_ptr = lambda_is_obj_appearing * obj_ptr;
            obj_ptr = obj_ptr + (1.0 - lambda_is_obj_appearing) * RequireNoObjPtr();
        }

        return new SamHeadsOutput(low_res_multimasks, high_res_multimasks, ious, low_res_masks, high_res_masks, obj_ptr,
            object_score_logits.alias()).MoveToOuterDisposeScope();
    }

    private Parameter RequireNoObjPtr() =>
        no_obj_ptr ?? throw new InvalidOperationException("no_obj_ptr exists only with pred_obj_scores and use_obj_ptrs_in_encoder");

    private (long h, long w) MaskInputSize()
    {
        var s = sam_prompt_encoder.mask_input_size;
        return (s.Item1, s.Item2);
    }

    /// <summary>
    /// Turns a binary mask input directly into output logits (±10) without the SAM decoder; the
    /// object pointer still comes from the decoder (fed the downsampled mask) when pointers are used.
    /// </summary>
    public SamHeadsOutput _use_mask_as_output(Tensor backbone_features, IReadOnlyList<Tensor>? high_res_features, Tensor mask_inputs)
    {
        using var scope = NewDisposeScope();
        // logits -10/+10 for negative/positive pixels (sigmoid(-10) ≈ 4.5e-5)
        const double out_scale = 20.0, out_bias = -10.0;
        var mask_inputs_float = mask_inputs.@float();
        var high_res_masks = mask_inputs_float * out_scale + out_bias;
        var low_res_masks = F.interpolate(high_res_masks, size: [high_res_masks.size(-2) / 4, high_res_masks.size(-1) / 4],
            mode: InterpolationMode.Bilinear, align_corners: false, antialias: true); // antialias for downsampling
        // dummy IoU of 1 for a given mask
        var ious = ones([mask_inputs.size(0), 1], ScalarType.Float32, mask_inputs.device);
        Tensor obj_ptr;
        if (!use_obj_ptrs_in_encoder)
        {
            obj_ptr = zeros([mask_inputs.size(0), hidden_dim], ScalarType.Float32, mask_inputs.device);
        }
        else
        {
            using var heads = _forward_sam_heads(backbone_features, mask_inputs: mask_downsample!.forward(mask_inputs_float),
                high_res_features: high_res_features);
            obj_ptr = heads.obj_ptr.alias();
        }
        // the mask input itself (not the decoder's score) decides whether the object is present
        var is_obj_appearing = (mask_inputs.flatten(1).@float() > 0.0).any(1)[TensorIndex.Ellipsis, TensorIndex.None];
        var lambda_is_obj_appearing = is_obj_appearing.@float();
        var object_score_logits = lambda_is_obj_appearing * out_scale + out_bias;
        if (pred_obj_scores)
        {
            if (fixed_no_obj_ptr) obj_ptr = lambda_is_obj_appearing * obj_ptr;
            obj_ptr = obj_ptr + (1.0 - lambda_is_obj_appearing) * RequireNoObjPtr();
        }
        return new SamHeadsOutput(low_res_masks, high_res_masks, ious, low_res_masks.alias(), high_res_masks.alias(), obj_ptr,
            object_score_logits).MoveToOuterDisposeScope();
    }

    // =========================================================================================
    // Image features
    // =========================================================================================

    /// <summary>
    /// Runs the image encoder on a normalized batch [B, 3, S, S]. In the high-res setting the level-0/1
    /// FPN maps are projected with the decoder's conv_s0/conv_s1 once here, instead of on every click.
    /// </summary>
    public ImageEncoderOutput forward_image(Tensor img_batch)
    {
        var backbone_out = image_encoder.forward(img_batch);
        if (use_high_res_features_in_sam)
        {
            var fpn = backbone_out.backbone_fpn;
            var s0 = sam_mask_decoder.conv_s0!.forward(fpn[0]);
            fpn[0].Dispose();
            fpn[0] = s0;
            var s1 = sam_mask_decoder.conv_s1!.forward(fpn[1]);
            fpn[1].Dispose();
            fpn[1] = s1;
        }
        return backbone_out;
    }

    /// <summary>PascalCase alias of <see cref="forward_image"/>.</summary>
    public ImageEncoderOutput ForwardImage(Tensor img_batch) => forward_image(img_batch);

    /// <summary>Flattens the last num_feature_levels backbone levels (NCHW → (HW)NC) with their position encodings.</summary>
    public PreparedBackboneFeatures _prepare_backbone_features(ImageEncoderOutput backbone_out)
    {
        var fpn = backbone_out.backbone_fpn;
        var pos = backbone_out.vision_pos_enc;
        if (fpn.Count != pos.Count) throw new ArgumentException("backbone_fpn and vision_pos_enc differ in length");
        if (fpn.Count < num_feature_levels) throw new ArgumentException($"need at least {num_feature_levels} feature levels, got {fpn.Count}");

        var feature_maps = fpn.Skip(fpn.Count - num_feature_levels).ToList();
        var vision_pos_embeds = pos.Skip(pos.Count - num_feature_levels).ToList();
        var feat_sizes = vision_pos_embeds.Select(x => (x.size(-2), x.size(-1))).ToList();
        var vision_feats = feature_maps.Select(x => FlattenNchw(x)).ToList();
        var pos_flat = vision_pos_embeds.Select(x => FlattenNchw(x)).ToList();
        return new PreparedBackboneFeatures(backbone_out, vision_feats, pos_flat, feat_sizes);
    }

    /// <summary>PascalCase alias of <see cref="_prepare_backbone_features"/>.</summary>
    public PreparedBackboneFeatures PrepareBackboneFeatures(ImageEncoderOutput backbone_out) => _prepare_backbone_features(backbone_out);

    // NxCxHxW -> (HW)xNxC
    private static Tensor FlattenNchw(Tensor x)
    {
        using var flat = x.flatten(2);
        return flat.permute(2, 0, 1);
    }

    // (HW)xBxC -> BxCxHxW
    private static Tensor UnflattenSeq(Tensor x, long B, long C, long H, long W)
    {
        using var p = x.permute(1, 2, 0);
        return p.view(B, C, H, W);
    }

    // =========================================================================================
    // Memory
    // =========================================================================================

    /// <summary>
    /// Temporal position encoding of object pointers at relative positions rel_pos_list, as a
    /// [N, mem_dim] tensor: sine encoding of rel_pos / (max_abs_pos - 1) (through obj_ptr_tpos_proj),
    /// or zeros when <paramref name="dummy"/>.
    /// </summary>
    public Tensor _get_tpos_enc(IReadOnlyList<int> rel_pos_list, Device device, int? max_abs_pos = null, bool dummy = false)
    {
        if (dummy) return zeros([rel_pos_list.Count, mem_dim], ScalarType.Float32, device);
        using var scope = NewDisposeScope();
        long t_diff_max = max_abs_pos is int m ? m - 1 : 1;
        var pos = tensor(rel_pos_list.Select(p => (long)p).ToArray(), device: device).to(ScalarType.Float32) / (double)t_diff_max;
        long tpos_dim = proj_tpos_enc_in_obj_ptrs ? hidden_dim : mem_dim;
        var pe = Sam2Utils.get_1d_sine_pe(pos, tpos_dim);
        return obj_ptr_tpos_proj.forward(pe).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Fuses the current frame's top-level features with the memory bank (conditioning frames, the
    /// last num_maskmem-1 tracked frames and object pointers) through memory attention; returns B×C×H×W.
    /// </summary>
    public Tensor _prepare_memory_conditioned_features(
        int frame_idx,
        bool is_init_cond_frame,
        IReadOnlyList<Tensor> current_vision_feats,
        IReadOnlyList<Tensor> current_vision_pos_embeds,
        IReadOnlyList<(long H, long W)> feat_sizes,
        OutputDict output_dict,
        int num_frames,
        bool track_in_reverse = false)
    {
        using var scope = NewDisposeScope();
        var cur = current_vision_feats[^1];
        long B = cur.size(1);
        long C = hidden_dim;
        var (H, W) = feat_sizes[^1];
        var dev = cur.device;
        var featDtype = cur.dtype;
        // num_maskmem == 0 reproduces SAM on images: no memory fusion
        if (num_maskmem == 0)
            return UnflattenSeq(cur, B, C, H, W).MoveToOuterDisposeScope();

        int num_obj_ptr_tokens = 0;
        int tpos_sign_mul = track_in_reverse ? -1 : 1;
        var to_cat_memory = new List<Tensor>();
        var to_cat_memory_pos_embed = new List<Tensor>();
        if (!is_init_cond_frame)
        {
            // conditioning frames first (all at t_pos 0)
            if (output_dict.cond_frame_outputs.Count == 0)
                throw new InvalidOperationException("tracking a non-initial frame needs at least one conditioning frame output");
            var cond_outputs = output_dict.cond_frame_outputs;
            var (selected_cond_outputs, unselected_cond_outputs) =
                Sam2Utils.select_closest_cond_frames(frame_idx, cond_outputs, max_cond_frames_in_attn);
            var t_pos_and_prevs = selected_cond_outputs.Values.Select(o => (t_pos: 0, prev: (FrameOutput?)o)).ToList();
            // then the last num_maskmem-1 frames (t_pos 1 = earliest); with stride r > 1 these are the
            // previous frame plus num_maskmem-2 frames taken every r-th frame
            int stride = training ? 1 : memory_temporal_stride_for_eval;
            for (int t_pos = 1; t_pos < num_maskmem; t_pos++)
            {
                int t_rel = num_maskmem - t_pos; // frames before the current one
                int prev_frame_idx;
                if (t_rel == 1)
                    prev_frame_idx = track_in_reverse ? frame_idx + t_rel : frame_idx - t_rel;
                else if (!track_in_reverse)
                    prev_frame_idx = FloorDiv(frame_idx - 2, stride) * stride - (t_rel - 2) * stride;
                else
                    prev_frame_idx = -FloorDiv(-(frame_idx + 2), stride) * stride + (t_rel - 2) * stride;
                if (!output_dict.non_cond_frame_outputs.TryGetValue(prev_frame_idx, out var o))
                    // an unselected conditioning frame among the recent frames is used like a tracked frame
                    unselected_cond_outputs.TryGetValue(prev_frame_idx, out o);
                t_pos_and_prevs.Add((t_pos, o));
            }

            foreach (var (t_pos, prev) in t_pos_and_prevs)
            {
                if (prev is null) continue; // padding frames
                if (prev.maskmem_features is null || prev.maskmem_pos_enc is null)
                    throw new InvalidOperationException("a memory frame output lacks maskmem_features / maskmem_pos_enc");
                // memories may be stored offloaded and/or in bf16: bring them back to the compute device and dtype
                var feats = prev.maskmem_features.to(featDtype, dev);
                to_cat_memory.Add(feats.flatten(2).permute(2, 0, 1));
                var maskmem_enc = prev.maskmem_pos_enc[^1].to(featDtype, dev).flatten(2).permute(2, 0, 1);
                // temporal encoding
                maskmem_enc = maskmem_enc + maskmem_tpos_enc[num_maskmem - t_pos - 1];
                to_cat_memory_pos_embed.Add(maskmem_enc);
            }

            // object pointers of past frames
            if (use_obj_ptrs_in_encoder)
            {
                int max_obj_ptrs = Math.Min(num_frames, max_obj_ptrs_in_encoder);
                // pointers from the selected conditioning frames (optionally only those in the past during eval)
                IEnumerable<KeyValuePair<int, FrameOutput>> ptr_cond_outputs = selected_cond_outputs;
                if (!training && only_obj_ptrs_in_the_past_for_eval)
                    ptr_cond_outputs = selected_cond_outputs.Where(kv => track_in_reverse ? kv.Key >= frame_idx : kv.Key <= frame_idx);
                var pos_and_ptrs = ptr_cond_outputs
                    .Select(kv => (pos: use_signed_tpos_enc_to_obj_ptrs ? (frame_idx - kv.Key) * tpos_sign_mul : Math.Abs(frame_idx - kv.Key),
                        ptr: kv.Value.obj_ptr!))
                    .ToList();
                // up to max_obj_ptrs-1 non-conditioning frames before the current one
                for (int t_diff = 1; t_diff < max_obj_ptrs; t_diff++)
                {
                    int t = track_in_reverse ? frame_idx + t_diff : frame_idx - t_diff;
                    if (t < 0 || t >= num_frames) break;
                    if (!output_dict.non_cond_frame_outputs.TryGetValue(t, out var o))
                        unselected_cond_outputs.TryGetValue(t, out o);
                    if (o is not null) pos_and_ptrs.Add((t_diff, o.obj_ptr!));
                }
                if (pos_and_ptrs.Count > 0)
                {
                    var pos_list = pos_and_ptrs.Select(x => x.pos).ToList();
                    // [ptr_seq_len, B, C]
                    var obj_ptrs = stack(pos_and_ptrs.Select(x => x.ptr.to(featDtype, dev)).ToArray(), 0);
                    // temporal encoding by distance to the current frame, normalized by the max pointer count
                    var obj_pos = _get_tpos_enc(pos_list, dev, max_abs_pos: max_obj_ptrs, dummy: !add_tpos_enc_to_obj_ptrs);
                    obj_pos = obj_pos.unsqueeze(1).expand(-1, B, mem_dim);
                    if (mem_dim < C)
                    {
                        // split each C-dim pointer into C/mem_dim tokens of mem_dim
                        obj_ptrs = obj_ptrs.reshape(-1, B, C / mem_dim, mem_dim).permute(0, 2, 1, 3).flatten(0, 1);
                        obj_pos = obj_pos.repeat_interleave(C / mem_dim, 0);
                    }
                    to_cat_memory.Add(obj_ptrs);
                    to_cat_memory_pos_embed.Add(obj_pos);
                    num_obj_ptr_tokens = (int)obj_ptrs.size(0);
                }
            }
        }
        else
        {
            // initial conditioning frames use no previous memory
            if (directly_add_no_mem_embed)
            {
                // add the no-memory embedding directly instead of running memory attention
                var withMem = cur + no_mem_embed;
                return UnflattenSeq(withMem, B, C, H, W).MoveToOuterDisposeScope();
            }
            // a dummy token so memory attention never sees an empty memory
            to_cat_memory.Add(no_mem_embed.expand(1, B, mem_dim));
            to_cat_memory_pos_embed.Add(no_mem_pos_enc.expand(1, B, mem_dim));
        }

        var memory = cat(to_cat_memory.ToArray(), 0);
        var memory_pos_embed = cat(to_cat_memory_pos_embed.ToArray(), 0);
        var pix_feat_with_mem = memory_attention.forward(
            curr: cur,
            memory: memory,
            curr_pos: current_vision_pos_embeds[^1],
            memory_pos: memory_pos_embed,
            num_obj_ptr_tokens: num_obj_ptr_tokens);
        return UnflattenSeq(pix_feat_with_mem, B, C, H, W).MoveToOuterDisposeScope();
    }

    private static int FloorDiv(int a, int b) => (int)Math.Floor((double)a / b);

    /// <summary>Encodes the current frame's features and predicted mask into a memory (features, [pos_enc]).</summary>
    public (Tensor maskmem_features, List<Tensor> maskmem_pos_enc) _encode_new_memory(
        IReadOnlyList<Tensor> current_vision_feats,
        IReadOnlyList<(long H, long W)> feat_sizes,
        Tensor pred_masks_high_res,
        Tensor? object_score_logits,
        bool is_mask_from_pts)
    {
        using var scope = NewDisposeScope();
        var cur = current_vision_feats[^1];
        long B = cur.size(1);
        long C = hidden_dim;
        var (H, W) = feat_sizes[^1];
        var pix_feat = UnflattenSeq(cur, B, C, H, W);
        if (non_overlap_masks_for_mem_enc && !training)
            // eval only: all objects of one video are batched together, keep the best-scoring per pixel
            pred_masks_high_res = _apply_non_overlapping_constraints(pred_masks_high_res);
        // binarize click-derived masks (eval), else squash logits to probabilities
        bool binarize = binarize_mask_from_pts_for_mem_enc && is_mask_from_pts;
        Tensor mask_for_mem = binarize && !training ? (pred_masks_high_res > 0).@float() : pred_masks_high_res.sigmoid();
        if (sigmoid_scale_for_mem_enc != 1.0) mask_for_mem = mask_for_mem * sigmoid_scale_for_mem_enc;
        if (sigmoid_bias_for_mem_enc != 0.0) mask_for_mem = mask_for_mem + sigmoid_bias_for_mem_enc;
        var (maskmem_features, maskmem_pos_enc) = memory_encoder.forward(pix_feat, mask_for_mem, skip_mask_sigmoid: true);
        // mark frames predicted as occluded with the no-object embedding
        if (no_obj_embed_spatial is not null)
        {
            if (object_score_logits is null) throw new ArgumentException("object_score_logits is required with no_obj_embed_spatial");
            var is_obj_appearing = (object_score_logits > 0).@float();
            var noObj = no_obj_embed_spatial[TensorIndex.Ellipsis, TensorIndex.None, TensorIndex.None].expand(maskmem_features.shape);
            maskmem_features = maskmem_features + (1.0 - is_obj_appearing[TensorIndex.Ellipsis, TensorIndex.None, TensorIndex.None]) * noObj;
        }
        maskmem_features.MoveToOuterDisposeScope();
        var posList = maskmem_pos_enc.ToList();
        foreach (var p in posList) p.MoveToOuterDisposeScope();
        return (maskmem_features, posList);
    }

    // =========================================================================================
    // Tracking
    // =========================================================================================

    /// <summary>
    /// One frame's SAM step: the mask input is used as output directly when configured, otherwise the
    /// memory-conditioned features go through the SAM heads. Returns (current_out, sam_outputs,
    /// high_res_features, pix_feat), all owned by the caller.
    /// </summary>
    public (FrameOutput current_out, SamHeadsOutput sam_outputs, List<Tensor>? high_res_features, Tensor pix_feat) _track_step(
        int frame_idx,
        bool is_init_cond_frame,
        IReadOnlyList<Tensor> current_vision_feats,
        IReadOnlyList<Tensor> current_vision_pos_embeds,
        IReadOnlyList<(long H, long W)> feat_sizes,
        PointInputs? point_inputs,
        Tensor? mask_inputs,
        OutputDict output_dict,
        int num_frames,
        bool track_in_reverse,
        Tensor? prev_sam_mask_logits)
    {
        using var scope = NewDisposeScope();
        var current_out = new FrameOutput { point_inputs = point_inputs?.Alias(), mask_inputs = mask_inputs?.alias() };
        // high-res maps for the SAM head, (HW)BC -> BCHW
        List<Tensor>? high_res_features = null;
        if (current_vision_feats.Count > 1)
        {
            high_res_features = new List<Tensor>();
            for (int i = 0; i < current_vision_feats.Count - 1; i++)
            {
                var x = current_vision_feats[i];
                high_res_features.Add(UnflattenSeq(x, x.size(1), x.size(2), feat_sizes[i].H, feat_sizes[i].W));
            }
        }

        Tensor pix_feat;
        SamHeadsOutput sam_outputs;
        if (mask_inputs is not null && use_mask_input_as_output_without_sam)
        {
            // the mask input is taken as the output (like a ground-truth mask), no SAM decoding
            pix_feat = current_vision_feats[^1].permute(1, 2, 0).view(-1, hidden_dim, feat_sizes[^1].H, feat_sizes[^1].W);
            sam_outputs = _use_mask_as_output(pix_feat, high_res_features, mask_inputs);
        }
        else
        {
            pix_feat = _prepare_memory_conditioned_features(
                frame_idx: frame_idx,
                is_init_cond_frame: is_init_cond_frame,
                current_vision_feats: [current_vision_feats[^1]],
                current_vision_pos_embeds: [current_vision_pos_embeds[^1]],
                feat_sizes: [feat_sizes[^1]],
                output_dict: output_dict,
                num_frames: num_frames,
                track_in_reverse: track_in_reverse);
            // previously predicted low-res logits may be fed with new clicks (interactive refinement)
            if (prev_sam_mask_logits is not null)
            {
                if (point_inputs is null || mask_inputs is not null)
                    throw new ArgumentException("prev_sam_mask_logits needs point_inputs and no mask_inputs");
                mask_inputs = prev_sam_mask_logits;
            }
            bool multimask_output = _use_multimask(is_init_cond_frame, point_inputs);
            sam_outputs = _forward_sam_heads(pix_feat, point_inputs, mask_inputs, high_res_features, multimask_output);
        }

        current_out.MoveToOuterDisposeScope();
        sam_outputs.MoveToOuterDisposeScope();
        if (high_res_features is not null) foreach (var t in high_res_features) t.MoveToOuterDisposeScope();
        pix_feat.MoveToOuterDisposeScope();
        return (current_out, sam_outputs, high_res_features, pix_feat);
    }

    /// <summary>Runs the memory encoder on the prediction when requested (and memory is enabled), storing it in current_out.</summary>
    public void _encode_memory_in_output(
        IReadOnlyList<Tensor> current_vision_feats,
        IReadOnlyList<(long H, long W)> feat_sizes,
        PointInputs? point_inputs,
        bool run_mem_encoder,
        Tensor high_res_masks,
        Tensor? object_score_logits,
        FrameOutput current_out)
    {
        current_out.maskmem_features?.Dispose();
        if (current_out.maskmem_pos_enc is not null) foreach (var t in current_out.maskmem_pos_enc) t.Dispose();
        if (run_mem_encoder && num_maskmem > 0)
        {
            var (maskmem_features, maskmem_pos_enc) = _encode_new_memory(
                current_vision_feats, feat_sizes, high_res_masks, object_score_logits, is_mask_from_pts: point_inputs is not null);
            current_out.maskmem_features = maskmem_features;
            current_out.maskmem_pos_enc = maskmem_pos_enc;
        }
        else
        {
            current_out.maskmem_features = null;
            current_out.maskmem_pos_enc = null;
        }
    }

    /// <summary>
    /// Tracks one frame: SAM step, then (optionally) encodes the prediction into a new memory.
    /// run_mem_encoder=false skips the memory (e.g. while a user is still clicking);
    /// prev_sam_mask_logits feeds earlier low-res logits together with new clicks.
    /// </summary>
    public FrameOutput track_step(
        int frame_idx,
        bool is_init_cond_frame,
        IReadOnlyList<Tensor> current_vision_feats,
        IReadOnlyList<Tensor> current_vision_pos_embeds,
        IReadOnlyList<(long H, long W)> feat_sizes,
        PointInputs? point_inputs,
        Tensor? mask_inputs,
        OutputDict output_dict,
        int num_frames,
        bool track_in_reverse = false,
        bool run_mem_encoder = true,
        Tensor? prev_sam_mask_logits = null)
    {
        using var scope = NewDisposeScope();
        var (current_out, sam_outputs, high_res_features, pix_feat) = _track_step(
            frame_idx, is_init_cond_frame, current_vision_feats, current_vision_pos_embeds, feat_sizes, point_inputs, mask_inputs,
            output_dict, num_frames, track_in_reverse, prev_sam_mask_logits);

        current_out.pred_masks = sam_outputs.low_res_masks.alias();
        current_out.pred_masks_high_res = sam_outputs.high_res_masks.alias();
        current_out.obj_ptr = sam_outputs.obj_ptr.alias();
        if (!training)
            // inference only (upstream avoids an unused parameter under activation checkpointing)
            current_out.object_score_logits = sam_outputs.object_score_logits.alias();

        // encode the prediction into a memory for future frames
        _encode_memory_in_output(current_vision_feats, feat_sizes, point_inputs, run_mem_encoder, sam_outputs.high_res_masks,
            sam_outputs.object_score_logits, current_out);

        return current_out.MoveToOuterDisposeScope();
    }

    /// <summary>PascalCase alias of <see cref="track_step"/>.</summary>
    public FrameOutput TrackStep(int frame_idx, bool is_init_cond_frame, IReadOnlyList<Tensor> current_vision_feats,
        IReadOnlyList<Tensor> current_vision_pos_embeds, IReadOnlyList<(long H, long W)> feat_sizes, PointInputs? point_inputs,
        Tensor? mask_inputs, OutputDict output_dict, int num_frames, bool track_in_reverse = false, bool run_mem_encoder = true,
        Tensor? prev_sam_mask_logits = null) =>
        track_step(frame_idx, is_init_cond_frame, current_vision_feats, current_vision_pos_embeds, feat_sizes, point_inputs, mask_inputs,
            output_dict, num_frames, track_in_reverse, run_mem_encoder, prev_sam_mask_logits);

    /// <summary>Whether the SAM head should output 3 masks: enabled, on initial cond frames (or tracking), with a click count in range.</summary>
    public bool _use_multimask(bool is_init_cond_frame, PointInputs? point_inputs)
    {
        long num_pts = point_inputs is null ? 0 : point_inputs.point_labels.size(1);
        return multimask_output_in_sam
            && (is_init_cond_frame || multimask_output_for_tracking)
            && multimask_min_pt_num <= num_pts && num_pts <= multimask_max_pt_num;
    }

    /// <summary>
    /// Keeps only the highest-scoring object at each pixel (along the batch dimension): other objects'
    /// logits there are clamped to at most -10.
    /// </summary>
    public Tensor _apply_non_overlapping_constraints(Tensor pred_masks)
    {
        long batch_size = pred_masks.size(0);
        if (batch_size == 1) return pred_masks.alias();
        using var scope = NewDisposeScope();
        var max_obj_inds = pred_masks.argmax(0, keepdim: true);
        var batch_obj_inds = arange(batch_size, ScalarType.Int64, pred_masks.device)[.., TensorIndex.None, TensorIndex.None, TensorIndex.None];
        var keep = max_obj_inds.eq(batch_obj_inds);
        // sigmoid(-10) ≈ 4.5e-5, so suppressed regions do not overlap
        return where(keep, pred_masks, pred_masks.clamp(max: -10.0)).MoveToOuterDisposeScope();
    }
}
