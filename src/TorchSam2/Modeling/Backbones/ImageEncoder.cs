using TorchSharp;
using TorchSharp.Modules;
using TorchSam2.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace TorchSam2.Modeling.Backbones;

// Mirrors sam2/modeling/backbones/image_encoder.py: the trunk + FPN neck image encoder.

/// <summary>
/// What <see cref="ImageEncoder.forward"/> returns (the Python dict's three entries).
/// vision_features is its own handle to the last backbone_fpn level; Dispose releases all of them.
/// </summary>
public sealed record ImageEncoderOutput(Tensor vision_features, List<Tensor> vision_pos_enc, List<Tensor> backbone_fpn) : IDisposable
{
    public void Dispose()
    {
        vision_features.Dispose();
        foreach (var t in vision_pos_enc) t.Dispose();
        foreach (var t in backbone_fpn) t.Dispose();
    }
}

public sealed class ImageEncoder : nn.Module<Tensor, ImageEncoderOutput>
{
    public readonly Hiera trunk;
    public readonly FpnNeck neck;

    public int scalp { get; }

    public ImageEncoder(Hiera trunk, FpnNeck neck, int scalp = 0) : base(nameof(ImageEncoder))
    {
        if (!trunk.channel_list.SequenceEqual(neck.backbone_channel_list))
            throw new ArgumentException($"Channel dims of trunk and neck do not match. Trunk: [{string.Join(", ", trunk.channel_list)}], neck: [{string.Join(", ", neck.backbone_channel_list)}]");
        this.trunk = trunk;
        this.neck = neck;
        this.scalp = scalp;
        RegisterComponents();
    }

    public override ImageEncoderOutput forward(Tensor sample)
    {
        using var scope = NewDisposeScope();
        var (features, pos) = neck.forward(trunk.forward(sample));
        if (scalp > 0)
        {
            // Discard the lowest-resolution levels (the scope frees them).
            features = features.Take(features.Count - scalp).ToList();
            pos = pos.Take(pos.Count - scalp).ToList();
        }
        var src = features[^1].alias();
        src.MoveToOuterDisposeScope();
        foreach (var t in features) t.MoveToOuterDisposeScope();
        foreach (var t in pos) t.MoveToOuterDisposeScope();
        return new ImageEncoderOutput(src, pos, features);
    }
}

/// <summary>The 1×1 lateral projection of one FPN level (Python: Sequential with a single "conv").</summary>
public sealed class FpnLateral : nn.Module<Tensor, Tensor>
{
    public readonly Conv2d conv;

    public FpnLateral(Conv2d conv) : base(nameof(FpnLateral))
    {
        this.conv = conv;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => conv.forward(x);
}

/// <summary>
/// A modified FPN neck: lateral convs per level, top-down fusion (upsampling ×2) only on the
/// levels in fpn_top_down_levels, no output convs; also returns sine position encodings per level.
/// </summary>
public sealed class FpnNeck : nn.Module<List<Tensor>, (List<Tensor> @out, List<Tensor> pos)>
{
    public readonly PositionEmbeddingSine position_encoding;
    public readonly ModuleList<FpnLateral> convs;

    public long[] backbone_channel_list { get; }
    public long d_model { get; }
    public string fpn_interp_model { get; }
    public string fuse_type { get; }
    public int[] fpn_top_down_levels { get; }

    /// <param name="fpn_top_down_levels">levels receiving top-down features; null means all.</param>
    public FpnNeck(PositionEmbeddingSine position_encoding, long d_model, long[] backbone_channel_list, long kernel_size = 1, long stride = 1,
        long padding = 0, string fpn_interp_model = "bilinear", string fuse_type = "sum", int[]? fpn_top_down_levels = null) : base(nameof(FpnNeck))
    {
        if (fuse_type is not ("sum" or "avg")) throw new ArgumentException($"fuse_type must be sum or avg, not {fuse_type}");
        this.position_encoding = position_encoding;
        this.backbone_channel_list = (long[])backbone_channel_list.Clone();
        this.d_model = d_model;
        convs = new ModuleList<FpnLateral>((backbone_channel_list.Select(dim =>
            new FpnLateral(nn.Conv2d(dim, d_model, kernel_size, stride, padding)))).ToArray());
        this.fpn_interp_model = fpn_interp_model;
        this.fuse_type = fuse_type;
        this.fpn_top_down_levels = fpn_top_down_levels?.ToArray() ?? Enumerable.Range(0, convs.Count).ToArray();
        RegisterComponents();
    }

    /// <summary>xs: trunk levels, highest resolution first. Returns (out, pos) in the same order.</summary>
    public override (List<Tensor> @out, List<Tensor> pos) forward(List<Tensor> xs)
    {
        int levels = convs.Count;
        if (xs.Count != levels) throw new ArgumentException($"expected {levels} feature levels, got {xs.Count}");
        var outs = new Tensor[levels];
        var pos = new Tensor[levels];
        using var scope = NewDisposeScope();
        Tensor? prev = null;
        int n = levels - 1;
        // Top-down: from the lowest resolution to the highest.
        for (int i = n; i >= 0; i--)
        {
            var lateral = convs[n - i].forward(xs[i]);
            if (prev is not null && fpn_top_down_levels.Contains(i))
            {
                var topDown = F.interpolate(prev.to(ScalarType.Float32), scale_factor: [2.0, 2.0], mode: InterpolationModes.Parse(fpn_interp_model),
                    align_corners: fpn_interp_model == "nearest" ? null : false, antialias: false);
                prev = lateral + topDown;
                if (fuse_type == "avg") prev = prev / 2.0;
            }
            else
            {
                prev = lateral;
            }
            outs[i] = prev;
            pos[i] = position_encoding.forward(prev).to(prev.dtype);
        }
        foreach (var t in outs) t.MoveToOuterDisposeScope();
        foreach (var t in pos) t.MoveToOuterDisposeScope();
        return (outs.ToList(), pos.ToList());
    }
}
