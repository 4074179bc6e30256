using TorchSam2.IO;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace TorchSam2.Utils;

/// <summary>
/// Mirrors sam2/utils/transforms.py: image preprocessing, prompt coordinate transforms and mask
/// post-processing. Resizing is bilinear with antialias (torchvision's tensor default).
/// </summary>
public sealed class SAM2Transforms(long resolution, double mask_threshold, double max_hole_area = 0, double max_sprinkle_area = 0)
{
    private static readonly float[] Mean = [0.485f, 0.456f, 0.406f];
    private static readonly float[] Std = [0.229f, 0.224f, 0.225f];

    public long Resolution => resolution;

    /// <summary>uint8 H×W×3 RGB → normalized float 3×S×S.</summary>
    public Tensor Apply(Tensor imageU8, Device device)
    {
        if (imageU8.dim() != 3 || imageU8.size(2) != 3) throw new ArgumentException($"expected an H×W×3 RGB image, got [{string.Join(", ", imageU8.shape)}]");
        using var scope = NewDisposeScope();
        var x = imageU8.to(device).permute(2, 0, 1).to(ScalarType.Float32) / 255.0;
        x = F.interpolate(x.unsqueeze(0), size: [resolution, resolution], mode: InterpolationMode.Bilinear, align_corners: false, antialias: true).squeeze(0);
        var mean = tensor(Mean, new long[] { 3, 1, 1 }, device: device);
        var std = tensor(Std, new long[] { 3, 1, 1 }, device: device);
        return ((x - mean) / std).MoveToOuterDisposeScope();
    }

    public Tensor Apply(RgbImage image, Device device)
    {
        using var t = image.ToTensor();
        return Apply(t, device);
    }

    /// <summary>
    /// A video frame as upstream's frame loader prepares it: PIL's default bicubic resize of the
    /// 8-bit image (antialiased, horizontal pass then vertical, each rounded to 8 bits), then /255
    /// and normalize. Still images go through <see cref="Apply(Tensor, Device)"/> (torchvision's
    /// bilinear resize), as in the image predictor.
    /// </summary>
    public Tensor ApplyVideoFrame(RgbImage image, Device device)
    {
        using var scope = NewDisposeScope();
        using var u8 = image.ToTensor();
        var x = u8.to(device).permute(2, 0, 1).unsqueeze(0).to(ScalarType.Float32);
        x = F.interpolate(x, size: [x.size(2), resolution], mode: InterpolationMode.Bicubic, align_corners: false, antialias: true).round().clamp(0, 255);
        x = F.interpolate(x, size: [resolution, resolution], mode: InterpolationMode.Bicubic, align_corners: false, antialias: true).round().clamp(0, 255);
        x = x.squeeze(0) / 255.0;
        var mean = tensor(Mean, new long[] { 3, 1, 1 }, device: device);
        var std = tensor(Std, new long[] { 3, 1, 1 }, device: device);
        return ((x - mean) / std).MoveToOuterDisposeScope();
    }

    /// <summary>Coordinates (…×2, x then y) to the model's input frame; normalize=true means they are in pixels of orig_hw.</summary>
    public Tensor transform_coords(Tensor coords, bool normalize, (long h, long w) orig_hw)
    {
        using var scope = NewDisposeScope();
        var c = coords;
        if (normalize)
        {
            var scale = tensor(new float[] { 1f / orig_hw.w, 1f / orig_hw.h }, null, coords.device);
            c = c * scale;
        }
        return (c * resolution).MoveToOuterDisposeScope();
    }

    /// <summary>Boxes B×4 (x0,y0,x1,y1) → B×2×2 corner points in the model frame.</summary>
    public Tensor transform_boxes(Tensor boxes, bool normalize, (long h, long w) orig_hw)
    {
        using var r = boxes.reshape(-1, 2, 2);
        return transform_coords(r, normalize, orig_hw);
    }

    /// <summary>Low-res logits → original size, filling small holes / removing small sprinkles first when asked.</summary>
    public Tensor postprocess_masks(Tensor masks, (long h, long w) orig_hw)
    {
        using var scope = NewDisposeScope();
        var m = masks.@float();
        var flat = m.flatten(0, 1).unsqueeze(1);
        if (max_hole_area > 0)
        {
            var (labels, areas) = Misc.get_connected_components(flat <= mask_threshold);
            var isHole = ((labels > 0) & (areas <= max_hole_area)).reshape(m.shape);
            m = where(isHole, mask_threshold + 10.0, m);
        }
        if (max_sprinkle_area > 0)
        {
            var (labels, areas) = Misc.get_connected_components(flat > mask_threshold);
            var isSprinkle = ((labels > 0) & (areas <= max_sprinkle_area)).reshape(m.shape);
            m = where(isSprinkle, mask_threshold - 10.0, m);
        }
        m = F.interpolate(m, size: [orig_hw.h, orig_hw.w], mode: InterpolationMode.Bilinear, align_corners: false);
        return m.MoveToOuterDisposeScope();
    }
}
