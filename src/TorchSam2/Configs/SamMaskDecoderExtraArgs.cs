namespace TorchSam2.Configs;

/// <summary>
/// <c>sam_mask_decoder_extra_args</c>: extra keyword arguments SAM2Base passes to MaskDecoder.
/// Defaults are MaskDecoder's; build_sam2 turns on dynamic multimask (see <see cref="Sam2ModelConfig.WithImagePredictorOverrides"/>).
/// </summary>
public sealed record SamMaskDecoderExtraArgs
{
    /// <summary>With one mask requested, fall back to the best multimask output when the single mask is unstable.</summary>
    public bool DynamicMultimaskViaStability { get; init; }
    public double DynamicMultimaskStabilityDelta { get; init; } = 0.05;
    public double DynamicMultimaskStabilityThresh { get; init; } = 0.98;
    public IReadOnlyDictionary<string, object?> Raw { get; init; } = new Dictionary<string, object?>();

    internal static SamMaskDecoderExtraArgs From(ConfigMap m) => new()
    {
        DynamicMultimaskViaStability = m.Bool("dynamic_multimask_via_stability", false),
        DynamicMultimaskStabilityDelta = m.Double("dynamic_multimask_stability_delta", 0.05, 0),
        DynamicMultimaskStabilityThresh = m.Double("dynamic_multimask_stability_thresh", 0.98),
        Raw = m.Raw,
    };
}
