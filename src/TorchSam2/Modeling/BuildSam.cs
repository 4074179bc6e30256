using TorchSam2.Configs;
using TorchSam2.Modeling.Backbones;
using TorchSam2.Modeling.Sam;
using TorchSharp;
using TorchSharp.Modules;
using TorchSam2.Checkpoints;
using static TorchSharp.torch;

namespace TorchSam2.Modeling;

// Port of sam2/build_sam.py: instead of Hydra instantiation, the typed config tree
// (TorchSam2.Configs.Sam2ModelConfig) is turned into modules here.

/// <summary>Builds SAM 2 models from typed configs and loads official checkpoints into them.</summary>
public static class BuildSam
{
    /// <summary>
    /// Builds a <see cref="SAM2Base"/> (as <c>build_sam2</c>): with <paramref name="apply_postprocessing"/> the
    /// dynamic-multimask decoder overrides are applied; the checkpoint (.pt or .safetensors) is loaded strictly;
    /// the model is moved to <paramref name="device"/> (default CPU) and put in eval mode when mode is "eval".
    /// </summary>
    public static SAM2Base build_sam2(Sam2ModelConfig cfg, string? checkpoint = null, Device? device = null, string mode = "eval",
        bool apply_postprocessing = true)
    {
        if (apply_postprocessing) cfg = cfg.WithImagePredictorOverrides();
        return Finish(Construct(cfg), checkpoint, device, mode);
    }

    /// <summary><see cref="build_sam2(Sam2ModelConfig, string?, Device?, string, bool)"/> from a config file path or a built-in name ("sam2.1_hiera_t", "tiny", ...).</summary>
    public static SAM2Base build_sam2(string config, string? checkpoint = null, Device? device = null, string mode = "eval",
        bool apply_postprocessing = true) =>
        build_sam2(LoadConfig(config), checkpoint, device, mode, apply_postprocessing);

    /// <summary>
    /// As <c>build_sam2_video_predictor</c>: applies the video overrides (dynamic multimask,
    /// binarize_mask_from_pts_for_mem_enc, fill_hole_area=8) when <paramref name="apply_postprocessing"/>,
    /// then builds the model with <paramref name="create"/> (e.g. a SAM2VideoPredictor constructor that takes
    /// the config and calls <see cref="BuildComponents"/>), loads the checkpoint, moves and sets the mode.
    /// </summary>
    public static TModel build_sam2_video_predictor<TModel>(Sam2ModelConfig cfg, Func<Sam2ModelConfig, TModel> create,
        string? checkpoint = null, Device? device = null, string mode = "eval", bool apply_postprocessing = true)
        where TModel : SAM2Base
    {
        cfg = apply_postprocessing ? cfg.WithVideoPredictorOverrides() : cfg with { Target = Sam2ModelConfig.VideoPredictorTarget };
        return Finish(create(cfg), checkpoint, device, mode);
    }

    /// <summary>The video-predictor overrides applied to a plain <see cref="SAM2Base"/> (same parameters and memory settings).</summary>
    public static SAM2Base build_sam2_video_predictor(Sam2ModelConfig cfg, string? checkpoint = null, Device? device = null,
        string mode = "eval", bool apply_postprocessing = true) =>
        build_sam2_video_predictor(cfg, Construct, checkpoint, device, mode, apply_postprocessing);

    /// <summary>The overrides <c>build_sam2_video_predictor</c> applies, without building anything.</summary>
    public static Sam2ModelConfig VideoPredictorConfig(Sam2ModelConfig cfg, bool apply_postprocessing = true) =>
        apply_postprocessing ? cfg.WithVideoPredictorOverrides() : cfg with { Target = Sam2ModelConfig.VideoPredictorTarget };

    /// <summary>
    /// Reads a config file, or a built-in config by name; an argument that looks like a path (see
    /// <see cref="Sam2ConfigLoader.LooksLikePath"/>) must name an existing file.
    /// </summary>
    public static Sam2ModelConfig LoadConfig(string config) => Sam2ConfigLoader.LoadFileOrBuiltIn(config);

    // ---- construction ------------------------------------------------------------------------

    /// <summary>Builds the module tree of a <see cref="SAM2Base"/> from cfg as given (no overrides, random init, CPU).</summary>
    public static SAM2Base Construct(Sam2ModelConfig cfg)
    {
        var (imageEncoder, memoryAttention, memoryEncoder) = BuildComponents(cfg);
        return new SAM2Base(imageEncoder, memoryAttention, memoryEncoder,
            num_maskmem: cfg.NumMaskmem,
            image_size: cfg.ImageSize,
            backbone_stride: cfg.BackboneStride,
            sigmoid_scale_for_mem_enc: cfg.SigmoidScaleForMemEnc,
            sigmoid_bias_for_mem_enc: cfg.SigmoidBiasForMemEnc,
            binarize_mask_from_pts_for_mem_enc: cfg.BinarizeMaskFromPtsForMemEnc,
            use_mask_input_as_output_without_sam: cfg.UseMaskInputAsOutputWithoutSam,
            max_cond_frames_in_attn: cfg.MaxCondFramesInAttn,
            directly_add_no_mem_embed: cfg.DirectlyAddNoMemEmbed,
            use_high_res_features_in_sam: cfg.UseHighResFeaturesInSam,
            multimask_output_in_sam: cfg.MultimaskOutputInSam,
            multimask_min_pt_num: cfg.MultimaskMinPtNum,
            multimask_max_pt_num: cfg.MultimaskMaxPtNum,
            multimask_output_for_tracking: cfg.MultimaskOutputForTracking,
            use_multimask_token_for_obj_ptr: cfg.UseMultimaskTokenForObjPtr,
            iou_prediction_use_sigmoid: cfg.IouPredictionUseSigmoid,
            memory_temporal_stride_for_eval: cfg.MemoryTemporalStrideForEval,
            non_overlap_masks_for_mem_enc: cfg.NonOverlapMasksForMemEnc,
            use_obj_ptrs_in_encoder: cfg.UseObjPtrsInEncoder,
            max_obj_ptrs_in_encoder: cfg.MaxObjPtrsInEncoder,
            add_tpos_enc_to_obj_ptrs: cfg.AddTposEncToObjPtrs,
            proj_tpos_enc_in_obj_ptrs: cfg.ProjTposEncInObjPtrs,
            use_signed_tpos_enc_to_obj_ptrs: cfg.UseSignedTposEncToObjPtrs,
            only_obj_ptrs_in_the_past_for_eval: cfg.OnlyObjPtrsInThePastForEval,
            pred_obj_scores: cfg.PredObjScores,
            pred_obj_scores_mlp: cfg.PredObjScoresMlp,
            fixed_no_obj_ptr: cfg.FixedNoObjPtr,
            soft_no_obj_ptr: cfg.SoftNoObjPtr,
            use_mlp_for_obj_ptr_proj: cfg.UseMlpForObjPtrProj,
            no_obj_embed_spatial: cfg.NoObjEmbedSpatial,
            sam_mask_decoder_extra_args: cfg.SamMaskDecoderExtraArgs,
            compile_image_encoder: cfg.CompileImageEncoder);
    }

    /// <summary>
    /// The three configurable components (for subclasses of SAM2Base such as the video predictor). The config is
    /// validated first (<see cref="Sam2ModelConfig.Validate"/>): components that disagree would otherwise fail
    /// inside libtorch, and an oversized model would exhaust memory.
    /// </summary>
    public static (ImageEncoder image_encoder, MemoryAttention memory_attention, MemoryEncoder memory_encoder) BuildComponents(Sam2ModelConfig cfg)
    {
        ArgumentNullException.ThrowIfNull(cfg);
        cfg.Validate();
        // RoPE tables follow the stride-16 map of this image size, not the feat_sizes literal written for 1024.
        var ropeFeat = cfg.RopeFeatSizes.Select(x => (long)x).ToArray();
        return (BuildImageEncoder(cfg.ImageEncoder), BuildMemoryAttention(cfg.MemoryAttention, ropeFeat), BuildMemoryEncoder(cfg.MemoryEncoder));
    }

    public static ImageEncoder BuildImageEncoder(ImageEncoderConfig c)
    {
        RequireTarget(c.Target, ImageEncoderConfig.DefaultTarget, "image_encoder");
        var t = c.Trunk;
        RequireTarget(t.Target, HieraConfig.DefaultTarget, "image_encoder.trunk");
        var trunk = new Hiera(
            embed_dim: t.EmbedDim,
            num_heads: t.NumHeads,
            drop_path_rate: t.DropPathRate,
            q_pool: t.QPool,
            q_stride: Longs(t.QStride),
            stages: t.Stages.ToArray(),
            dim_mul: t.DimMul,
            head_mul: t.HeadMul,
            window_pos_embed_bkg_spatial_size: Longs(t.WindowPosEmbedBkgSpatialSize),
            window_spec: Longs(t.WindowSpec),
            global_att_blocks: t.GlobalAttBlocks.ToArray(),
            weights_path: t.WeightsPath,
            return_interm_layers: t.ReturnIntermLayers);
        var n = c.Neck;
        RequireTarget(n.Target, FpnNeckConfig.DefaultTarget, "image_encoder.neck");
        var neck = new FpnNeck(
            position_encoding: BuildPositionEncoding(n.PositionEncoding, "image_encoder.neck.position_encoding"),
            d_model: n.DModel,
            backbone_channel_list: Longs(n.BackboneChannelList),
            kernel_size: n.KernelSize,
            stride: n.Stride,
            padding: n.Padding,
            fpn_interp_model: n.FpnInterpModel,
            fuse_type: n.FuseType,
            fpn_top_down_levels: n.FpnTopDownLevels?.ToArray());
        return new ImageEncoder(trunk, neck, c.Scalp);
    }

    public static MemoryAttention BuildMemoryAttention(MemoryAttentionConfig c, long[]? rope_feat_sizes = null)
    {
        RequireTarget(c.Target, MemoryAttentionConfig.DefaultTarget, "memory_attention");
        var l = c.Layer;
        RequireTarget(l.Target, MemoryAttentionLayerConfig.DefaultTarget, "memory_attention.layer");
        return new MemoryAttention(
            d_model: c.DModel,
            pos_enc_at_input: c.PosEncAtInput,
            layer: () => new MemoryAttentionLayer(
                activation: l.Activation,
                cross_attention: BuildAttention(l.CrossAttention, rope_feat_sizes, "memory_attention.layer.cross_attention"),
                d_model: l.DModel,
                dim_feedforward: l.DimFeedforward,
                dropout: l.Dropout,
                pos_enc_at_attn: l.PosEncAtAttn,
                pos_enc_at_cross_attn_keys: l.PosEncAtCrossAttnKeys,
                pos_enc_at_cross_attn_queries: l.PosEncAtCrossAttnQueries,
                self_attention: BuildAttention(l.SelfAttention, rope_feat_sizes, "memory_attention.layer.self_attention")),
            num_layers: c.NumLayers,
            batch_first: c.BatchFirst);
    }

    private static Attention BuildAttention(RoPEAttentionConfig a, long[]? rope_feat_sizes, string where)
    {
        if (a.Target == RoPEAttentionConfig.DefaultTarget)
            return new RoPEAttention(
                embedding_dim: a.EmbeddingDim,
                num_heads: a.NumHeads,
                downsample_rate: a.DownsampleRate,
                dropout: a.Dropout,
                kv_in_dim: a.KvInDim,
                rope_theta: a.RopeTheta,
                rope_k_repeat: a.RopeKRepeat,
                feat_sizes: rope_feat_sizes ?? Longs(a.FeatSizes));
        if (a.Target == "sam2.modeling.sam.transformer.Attention")
            return new Attention(a.EmbeddingDim, a.NumHeads, a.DownsampleRate, a.Dropout, a.KvInDim);
        throw new Sam2ConfigException($"{where}: unsupported _target_ '{a.Target}'");
    }

    public static MemoryEncoder BuildMemoryEncoder(MemoryEncoderConfig c)
    {
        RequireTarget(c.Target, MemoryEncoderConfig.DefaultTarget, "memory_encoder");
        var md = c.MaskDownsampler;
        RequireTarget(md.Target, MaskDownSamplerConfig.DefaultTarget, "memory_encoder.mask_downsampler");
        var maskDownsampler = new MaskDownSampler(md.EmbedDim, md.KernelSize, md.Stride, md.Padding, md.TotalStride);
        var f = c.Fuser;
        RequireTarget(f.Target, FuserConfig.DefaultTarget, "memory_encoder.fuser");
        var cx = f.Layer;
        RequireTarget(cx.Target, CXBlockConfig.DefaultTarget, "memory_encoder.fuser.layer");
        var fuser = new Fuser(
            () => new CXBlock(cx.Dim, cx.KernelSize, cx.Padding, cx.DropPath, cx.LayerScaleInitValue, cx.UseDwconv),
            f.NumLayers, f.Dim, f.InputProjection);
        return new MemoryEncoder(c.OutDim, maskDownsampler, fuser,
            BuildPositionEncoding(c.PositionEncoding, "memory_encoder.position_encoding"), c.InDim);
    }

    private static PositionEmbeddingSine BuildPositionEncoding(PositionEmbeddingSineConfig p, string where)
    {
        RequireTarget(p.Target, PositionEmbeddingSineConfig.DefaultTarget, where);
        return new PositionEmbeddingSine(p.NumPosFeats, p.Temperature, p.Normalize, p.Scale);
    }

    private static void RequireTarget(string target, string expected, string where)
    {
        if (target != expected) throw new Sam2ConfigException($"{where}: unsupported _target_ '{target}' (expected {expected})");
    }

    private static long[] Longs(IReadOnlyList<int> xs) => xs.Select(x => (long)x).ToArray();

    // ---- checkpoints -------------------------------------------------------------------------

    /// <summary>
    /// Loads a checkpoint (.pt zip with {"model": state_dict}, or .safetensors) strictly into model;
    /// a <see cref="StateDictException"/> lists missing, unexpected and mis-shaped keys.
    /// </summary>
    public static void load_checkpoint(nn.Module model, string ckpt_path)
    {
        // A checkpoint name ("tiny", "sam2.1_hiera_large", ...) is fetched into the cache first.
        string path = Pretrained.CheckpointStore.Resolve(ckpt_path);
        // Streamed: keys and shapes are checked first, then each tensor is read straight into its parameter.
        using var checkpoint = CheckpointReader.Open(path);
        model.load_state_dict(checkpoint, strict: true);
    }

    private static TModel Finish<TModel>(TModel model, string? checkpoint, Device? device, string mode) where TModel : nn.Module
    {
        try
        {
            if (checkpoint is not null) load_checkpoint(model, checkpoint);
            if (device is Device dev) model.to(dev);
            if (mode == "eval") model.eval();
            else if (mode == "train") model.train();
            else throw new ArgumentException($"mode must be \"eval\" or \"train\", not \"{mode}\"", nameof(mode));
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}
