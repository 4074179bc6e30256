using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchSam2.Utils;

/// <summary>Mask post-processing of sam2/utils/misc.py used by the video predictor.</summary>
public static class MaskPostprocess
{
    /// <summary>Score given to filled hole pixels: just above 0, so they become foreground.</summary>
    public const double HoleFillScore = 0.1;

    /// <summary>
    /// Fills small holes in mask logits N×1×H×W: 8-connected background components (score ≤ 0)
    /// with area ≤ <paramref name="max_area"/> get the score 0.1. Returns a new tensor.
    /// Connected components run on the CPU (the official CUDA extension is not needed).
    /// </summary>
    public static Tensor fill_holes_in_mask_scores(Tensor mask, int max_area)
    {
        if (max_area <= 0) throw new ArgumentOutOfRangeException(nameof(max_area), "max_area must be positive");
        using var scope = NewDisposeScope();
        var (labels, areas) = Misc.get_connected_components(mask <= 0);
        var is_hole = (labels > 0) & (areas <= max_area);
        return where(is_hole, HoleFillScore, mask).MoveToOuterDisposeScope();
    }

    /// <summary>PascalCase alias of <see cref="fill_holes_in_mask_scores"/>.</summary>
    public static Tensor FillHolesInMaskScores(Tensor mask, int maxArea) => fill_holes_in_mask_scores(mask, maxArea);
}
