namespace TorchSam2.Configs;

/// <summary>
/// The <c>model:</c> tree of a SAM 2 config: <c>SAM2Base</c> constructor arguments (Python defaults), the
/// <c>SAM2VideoPredictor</c> extras, and the component configs. Unknown keys are kept in <see cref="Raw"/>.
/// Load with <see cref="Sam2ConfigLoader"/>.
/// </summary>
public sealed record Sam2ModelConfig
{
    public const string BaseTarget = "sam2.modeling.sam2_base.SAM2Base";
    public const string VideoPredictorTarget = "sam2.sam2_video_predictor.SAM2VideoPredictor";
    /// <summary>sam2's training model: the same architecture (its training-only keys stay in <see cref="Raw"/>).</summary>
    public const string TrainTarget = "training.model.sam2.SAM2Train";

    /// <summary>The top-level <c>_target_</c>s a config may name.</summary>
    public static IReadOnlyList<string> AllowedTargets { get; } = [BaseTarget, VideoPredictorTarget, TrainTarget];

    public string Target { get; init; } = BaseTarget;
    public required ImageEncoderConfig ImageEncoder { get; init; }
    public required MemoryAttentionConfig MemoryAttention { get; init; }
    public required MemoryEncoderConfig MemoryEncoder { get; init; }

    // --- SAM2Base ---
    /// <summary>Memory frames: 1 input frame + 6 previous.</summary>
    public int NumMaskmem { get; init; } = 7;
    public int ImageSize { get; init; } = 512;
    /// <summary>Stride of the lowest-resolution backbone output used by SAM heads and memory.</summary>
    public int BackboneStride { get; init; } = 16;
    public double SigmoidScaleForMemEnc { get; init; } = 1.0;
    public double SigmoidBiasForMemEnc { get; init; }
    public bool BinarizeMaskFromPtsForMemEnc { get; init; }
    public bool UseMaskInputAsOutputWithoutSam { get; init; }
    /// <summary>-1 = all conditioning frames attend.</summary>
    public int MaxCondFramesInAttn { get; init; } = -1;
    public bool DirectlyAddNoMemEmbed { get; init; }
    public bool UseHighResFeaturesInSam { get; init; }
    public bool MultimaskOutputInSam { get; init; }
    public int MultimaskMinPtNum { get; init; } = 1;
    public int MultimaskMaxPtNum { get; init; } = 1;
    public bool MultimaskOutputForTracking { get; init; }
    public bool UseMultimaskTokenForObjPtr { get; init; }
    public bool IouPredictionUseSigmoid { get; init; }
    public int MemoryTemporalStrideForEval { get; init; } = 1;
    public bool NonOverlapMasksForMemEnc { get; init; }
    public bool UseObjPtrsInEncoder { get; init; }
    public int MaxObjPtrsInEncoder { get; init; } = 16;
    public bool AddTposEncToObjPtrs { get; init; } = true;
    public bool ProjTposEncInObjPtrs { get; init; }
    public bool UseSignedTposEncToObjPtrs { get; init; }
    public bool OnlyObjPtrsInThePastForEval { get; init; }
    public bool PredObjScores { get; init; }
    public bool PredObjScoresMlp { get; init; }
    public bool FixedNoObjPtr { get; init; }
    public bool SoftNoObjPtr { get; init; }
    public bool UseMlpForObjPtrProj { get; init; }
    public bool NoObjEmbedSpatial { get; init; }
    public SamMaskDecoderExtraArgs? SamMaskDecoderExtraArgs { get; init; }
    public bool CompileImageEncoder { get; init; }

    // --- SAM2VideoPredictor ---
    /// <summary>Fill background holes up to this area (in low-res mask pixels) in video outputs; 0 = off.</summary>
    public int FillHoleArea { get; init; }
    public bool NonOverlapMasks { get; init; }
    public bool ClearNonCondMemAroundInput { get; init; }
    public bool AddAllFramesToCorrectAsCond { get; init; }
    /// <summary>Legacy predictor option (sam2_video_predictor_legacy.py); kept for completeness.</summary>
    public bool ClearNonCondMemForMultiObj { get; init; }

    /// <summary>The <c>model:</c> mapping as parsed, including keys this type does not model.</summary>
    public IReadOnlyDictionary<string, object?> Raw { get; init; } = new Dictionary<string, object?>();

    /// <summary>Side of the lowest-resolution (stride-16) feature map: image_size / backbone_stride.</summary>
    public int FeatureMapSize => ImageSize / BackboneStride;

    /// <summary>
    /// RoPE [w, h] for this image size. Python rebuilds the rotary table for the actual feature map, so
    /// this (not the literal <c>feat_sizes</c>, written for 1024) is what the model effectively uses.
    /// </summary>
    public IReadOnlyList<int> RopeFeatSizes => DeriveFeatSizes(ImageSize, BackboneStride);

    /// <summary>[image_size / stride, image_size / stride].</summary>
    public static IReadOnlyList<int> DeriveFeatSizes(int imageSize, int backboneStride = 16)
    {
        if (imageSize <= 0 || backboneStride <= 0 || imageSize % backboneStride != 0)
            throw new ArgumentException($"image size {imageSize} is not a positive multiple of the backbone stride {backboneStride}");
        return [imageSize / backboneStride, imageSize / backboneStride];
    }

    /// <summary>The config for another input resolution, with RoPE feat sizes re-derived.</summary>
    public Sam2ModelConfig WithImageSize(int imageSize)
    {
        var feat = DeriveFeatSizes(imageSize, BackboneStride);
        var layer = MemoryAttention.Layer;
        return this with
        {
            ImageSize = imageSize,
            MemoryAttention = MemoryAttention with
            {
                Layer = layer with
                {
                    SelfAttention = layer.SelfAttention with { FeatSizes = feat },
                    CrossAttention = layer.CrossAttention with { FeatSizes = feat },
                },
            },
        };
    }

    /// <summary>What <c>build_sam2(..., apply_postprocessing=True)</c> adds: dynamic multimask via stability (0.05, 0.98).</summary>
    public Sam2ModelConfig WithImagePredictorOverrides() => this with
    {
        SamMaskDecoderExtraArgs = (SamMaskDecoderExtraArgs ?? new SamMaskDecoderExtraArgs()) with
        {
            DynamicMultimaskViaStability = true,
            DynamicMultimaskStabilityDelta = 0.05,
            DynamicMultimaskStabilityThresh = 0.98,
        },
    };

    /// <summary>
    /// What <c>build_sam2_video_predictor(..., apply_postprocessing=True)</c> adds: the image overrides plus
    /// <c>binarize_mask_from_pts_for_mem_enc=true</c> and <c>fill_hole_area=8</c>, as a SAM2VideoPredictor.
    /// </summary>
    public Sam2ModelConfig WithVideoPredictorOverrides() => WithImagePredictorOverrides() with
    {
        Target = VideoPredictorTarget,
        BinarizeMaskFromPtsForMemEnc = true,
        FillHoleArea = 8,
    };

    /// <summary>
    /// Throws <see cref="Sam2ConfigException"/> when components disagree in a way no model could be built from (or
    /// run: mismatched widths would fail inside libtorch), or when the model would be larger than
    /// <see cref="ConfigLimits.MaxParameters"/>. <see cref="Modeling.BuildSam"/> checks this before building.
    /// </summary>
    public Sam2ModelConfig Validate()
    {
        var problems = new List<string>();
        var trunk = ImageEncoder.Trunk;
        var neck = ImageEncoder.Neck;
        if (trunk.WindowSpec.Count != trunk.Stages.Count)
            problems.Add($"trunk.window_spec has {trunk.WindowSpec.Count} entries for {trunk.Stages.Count} stages");
        if (trunk.GlobalAttBlocks.Any(b => b < 0 || b >= trunk.TotalBlocks))
            problems.Add($"trunk.global_att_blocks [{string.Join(", ", trunk.GlobalAttBlocks)}] outside 0..{trunk.TotalBlocks - 1}");
        var dims = trunk.StageDims.Reverse().ToArray();
        if (!dims.SequenceEqual(neck.BackboneChannelList))
            problems.Add($"neck.backbone_channel_list [{string.Join(", ", neck.BackboneChannelList)}] != trunk stage dims [{string.Join(", ", dims)}]");
        if (MemoryAttention.DModel != neck.DModel)
            problems.Add($"memory_attention.d_model {MemoryAttention.DModel} != neck.d_model {neck.DModel}");
        if (MemoryAttention.Layer.CrossAttention.EffectiveKvInDim != MemoryEncoder.OutDim)
            problems.Add($"cross_attention.kv_in_dim {MemoryAttention.Layer.CrossAttention.EffectiveKvInDim} != memory_encoder.out_dim {MemoryEncoder.OutDim}");
        if (neck.PositionEncoding.NumPosFeats != neck.DModel)
            problems.Add($"neck.position_encoding.num_pos_feats {neck.PositionEncoding.NumPosFeats} != neck.d_model {neck.DModel}");
        var me = MemoryEncoder;
        if (me.InDim != neck.DModel) problems.Add($"memory_encoder.in_dim {me.InDim} != neck.d_model {neck.DModel}");
        if (me.MaskDownsampler.EmbedDim != me.InDim)
            problems.Add($"memory_encoder.mask_downsampler.embed_dim {me.MaskDownsampler.EmbedDim} != memory_encoder.in_dim {me.InDim}");
        if (me.Fuser.Layer.Dim != me.InDim) problems.Add($"memory_encoder.fuser.layer.dim {me.Fuser.Layer.Dim} != memory_encoder.in_dim {me.InDim}");
        if (me.Fuser.Dim is int fd && fd != me.InDim) problems.Add($"memory_encoder.fuser.dim {fd} != memory_encoder.in_dim {me.InDim}");
        if (me.PositionEncoding.NumPosFeats != me.OutDim)
            problems.Add($"memory_encoder.position_encoding.num_pos_feats {me.PositionEncoding.NumPosFeats} != memory_encoder.out_dim {me.OutDim}");
        if (ImageSize % BackboneStride != 0) problems.Add($"image_size {ImageSize} is not a multiple of backbone_stride {BackboneStride}");
        if (EstimateParameters() is var n && n > ConfigLimits.MaxParameters)
            problems.Add($"the model would have about {n:N0} parameters, more than the {ConfigLimits.MaxParameters:N0} TorchSam2 builds");
        // Patch embedding has stride 4; each q-pool stage (at most stages - 1) divides by q_stride again.
        int stride = 4 * (int)Math.Pow(trunk.QStride.Count > 0 ? trunk.QStride[0] : 2, Math.Min(trunk.QPool, trunk.Stages.Count - 1));
        if (ImageSize <= 0 || ImageSize % stride != 0)
            problems.Add($"image_size {ImageSize} is not a multiple of the trunk's total stride {stride}");
        if (problems.Count > 0) throw new Sam2ConfigException("inconsistent SAM 2 config: " + string.Join("; ", problems));
        return this;
    }

    /// <summary>
    /// The parameter count the config implies, from its sizes (the dominant terms: Hiera blocks, neck, memory
    /// attention, memory encoder and the SAM heads), in floating point so that no size can overflow it.
    /// </summary>
    public double EstimateParameters()
    {
        var t = ImageEncoder.Trunk;
        double total = 0, dim = t.EmbedDim;
        total += dim * (3 * 49 + t.WindowPosEmbedBkgSpatialSize[0] * (double)t.WindowPosEmbedBkgSpatialSize[1] + t.WindowSpec[0] * (double)t.WindowSpec[0]);
        for (int s = 0; s < t.Stages.Count; s++)
        {
            double outDim = s == 0 ? dim : Math.Floor(dim * t.DimMul);
            // qkv (3 d d'), projection (d'^2), MLP with ratio 4 (8 d'^2), a stage's first block projects d -> d'.
            total += t.Stages[s] * (12 * outDim * outDim) + dim * outDim;
            dim = outDim;
        }
        double d = ImageEncoder.Neck.DModel;
        total += ImageEncoder.Neck.BackboneChannelList.Sum(c => (double)c) * d * ImageEncoder.Neck.KernelSize * ImageEncoder.Neck.KernelSize;
        var l = MemoryAttention.Layer;
        double kv = l.CrossAttention.EffectiveKvInDim;
        total += MemoryAttention.NumLayers * (4 * d * d + 2 * d * d + 2 * kv * d + 2 * d * l.DimFeedforward);
        var me = MemoryEncoder;
        double inDim = me.InDim, maskCh = (double)me.MaskDownsampler.TotalStride * me.MaskDownsampler.TotalStride;
        total += maskCh * (me.MaskDownsampler.KernelSize * (double)me.MaskDownsampler.KernelSize * maskCh / me.MaskDownsampler.Stride / me.MaskDownsampler.Stride + me.MaskDownsampler.EmbedDim);
        total += inDim * inDim + inDim * me.OutDim + me.Fuser.NumLayers * (inDim * me.Fuser.Layer.KernelSize * me.Fuser.Layer.KernelSize + 8 * inDim * inDim);
        // Prompt encoder and mask decoder (a 2-layer two-way transformer at d channels): ~70 d^2.
        total += 70 * d * d + NumMaskmem * (double)me.OutDim;
        return total;
    }

    internal static Sam2ModelConfig From(ConfigMap m)
    {
        var extra = m.OptionalMap("sam_mask_decoder_extra_args");
        var c = new Sam2ModelConfig
        {
            Target = m.CheckedTarget(BaseTarget, [.. AllowedTargets]),
            ImageEncoder = ImageEncoderConfig.From(m.RequiredMap("image_encoder")),
            MemoryAttention = MemoryAttentionConfig.From(m.RequiredMap("memory_attention")),
            MemoryEncoder = MemoryEncoderConfig.From(m.RequiredMap("memory_encoder")),
            NumMaskmem = m.Int("num_maskmem", 7, 1, ConfigLimits.MaxMaskmem),
            ImageSize = m.Int("image_size", 512, 1, ConfigLimits.MaxImageSize),
            BackboneStride = m.Int("backbone_stride", 16, 1, ConfigLimits.MaxImageSize),
            SigmoidScaleForMemEnc = m.Double("sigmoid_scale_for_mem_enc", 1.0),
            SigmoidBiasForMemEnc = m.Double("sigmoid_bias_for_mem_enc", 0.0),
            BinarizeMaskFromPtsForMemEnc = m.Bool("binarize_mask_from_pts_for_mem_enc", false),
            UseMaskInputAsOutputWithoutSam = m.Bool("use_mask_input_as_output_without_sam", false),
            MaxCondFramesInAttn = m.Int("max_cond_frames_in_attn", -1, -1),
            DirectlyAddNoMemEmbed = m.Bool("directly_add_no_mem_embed", false),
            UseHighResFeaturesInSam = m.Bool("use_high_res_features_in_sam", false),
            MultimaskOutputInSam = m.Bool("multimask_output_in_sam", false),
            MultimaskMinPtNum = m.Int("multimask_min_pt_num", 1, 0),
            MultimaskMaxPtNum = m.Int("multimask_max_pt_num", 1, 0),
            MultimaskOutputForTracking = m.Bool("multimask_output_for_tracking", false),
            UseMultimaskTokenForObjPtr = m.Bool("use_multimask_token_for_obj_ptr", false),
            IouPredictionUseSigmoid = m.Bool("iou_prediction_use_sigmoid", false),
            MemoryTemporalStrideForEval = m.Int("memory_temporal_stride_for_eval", 1, 1),
            NonOverlapMasksForMemEnc = m.Bool("non_overlap_masks_for_mem_enc", false),
            UseObjPtrsInEncoder = m.Bool("use_obj_ptrs_in_encoder", false),
            MaxObjPtrsInEncoder = m.Int("max_obj_ptrs_in_encoder", 16, 0, 4096),
            AddTposEncToObjPtrs = m.Bool("add_tpos_enc_to_obj_ptrs", true),
            ProjTposEncInObjPtrs = m.Bool("proj_tpos_enc_in_obj_ptrs", false),
            UseSignedTposEncToObjPtrs = m.Bool("use_signed_tpos_enc_to_obj_ptrs", false),
            OnlyObjPtrsInThePastForEval = m.Bool("only_obj_ptrs_in_the_past_for_eval", false),
            PredObjScores = m.Bool("pred_obj_scores", false),
            PredObjScoresMlp = m.Bool("pred_obj_scores_mlp", false),
            FixedNoObjPtr = m.Bool("fixed_no_obj_ptr", false),
            SoftNoObjPtr = m.Bool("soft_no_obj_ptr", false),
            UseMlpForObjPtrProj = m.Bool("use_mlp_for_obj_ptr_proj", false),
            NoObjEmbedSpatial = m.Bool("no_obj_embed_spatial", false),
            SamMaskDecoderExtraArgs = extra is null ? null : SamMaskDecoderExtraArgs.From(extra),
            CompileImageEncoder = m.Bool("compile_image_encoder", false),
            FillHoleArea = m.Int("fill_hole_area", 0, 0),
            NonOverlapMasks = m.Bool("non_overlap_masks", false),
            ClearNonCondMemAroundInput = m.Bool("clear_non_cond_mem_around_input", false),
            AddAllFramesToCorrectAsCond = m.Bool("add_all_frames_to_correct_as_cond", false),
            ClearNonCondMemForMultiObj = m.Bool("clear_non_cond_mem_for_multi_obj", false),
            Raw = m.Raw,
        };
        // What SAM2Base's constructor would refuse, refused here with the key.
        if (c.ImageSize % c.BackboneStride != 0)
            throw m.Fail("image_size", $"{c.ImageSize} is not a multiple of backbone_stride {c.BackboneStride}");
        if (c.ProjTposEncInObjPtrs && !c.AddTposEncToObjPtrs)
            throw m.Fail("proj_tpos_enc_in_obj_ptrs", "needs add_tpos_enc_to_obj_ptrs: true");
        if (c.FixedNoObjPtr && !(c.PredObjScores && c.UseObjPtrsInEncoder))
            throw m.Fail("fixed_no_obj_ptr", "needs pred_obj_scores: true and use_obj_ptrs_in_encoder: true");
        return c;
    }
}
