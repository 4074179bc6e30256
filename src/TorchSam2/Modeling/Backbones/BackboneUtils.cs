using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace TorchSam2.Modeling.Backbones;

// Mirrors sam2/modeling/backbones/utils.py: windowing helpers and the patch embedding.

public static class BackboneUtils
{
    /// <summary>
    /// Splits B×H×W×C tokens into non-overlapping window_size² windows (zero-padding H and W up
    /// to a multiple of window_size). Returns (B·nWindows)×ws×ws×C and the padded size (Hp, Wp).
    /// </summary>
    public static (Tensor windows, (long Hp, long Wp) pad_hw) window_partition(Tensor x, long window_size)
    {
        using var scope = NewDisposeScope();
        var shape = x.shape;
        long b = shape[0], h = shape[1], w = shape[2], c = shape[3];
        long padH = (window_size - h % window_size) % window_size;
        long padW = (window_size - w % window_size) % window_size;
        if (padH > 0 || padW > 0) x = F.pad(x, [0, 0, 0, padW, 0, padH]);
        long hp = h + padH, wp = w + padW;
        var windows = x.view(b, hp / window_size, window_size, wp / window_size, window_size, c)
            .permute(0, 1, 3, 2, 4, 5)
            .reshape(-1, window_size, window_size, c);
        return (windows.MoveToOuterDisposeScope(), (hp, wp));
    }

    /// <summary>
    /// Inverse of <see cref="window_partition"/>: reassembles windows into B×Hp×Wp×C and crops
    /// the padding back to hw = (H, W).
    /// </summary>
    public static Tensor window_unpartition(Tensor windows, long window_size, (long Hp, long Wp) pad_hw, (long H, long W) hw)
    {
        using var scope = NewDisposeScope();
        var (hp, wp) = pad_hw;
        var (h, w) = hw;
        long b = windows.size(0) / (hp * wp / window_size / window_size);
        var x = windows.reshape(b, hp / window_size, wp / window_size, window_size, window_size, -1)
            .permute(0, 1, 3, 2, 4, 5)
            .reshape(b, hp, wp, -1);
        if (hp > h || wp > w) x = x.slice(1, 0, h, 1).slice(2, 0, w, 1);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>Image to patch embedding: a strided convolution, output B×H×W×C (channels last).</summary>
public sealed class PatchEmbed : nn.Module<Tensor, Tensor>
{
    public readonly Conv2d proj;

    /// <param name="kernel_size">(kh, kw); default (7, 7).</param>
    /// <param name="stride">(sh, sw); default (4, 4).</param>
    /// <param name="padding">(ph, pw); default (3, 3).</param>
    public PatchEmbed(long[]? kernel_size = null, long[]? stride = null, long[]? padding = null, long in_chans = 3, long embed_dim = 768) : base(nameof(PatchEmbed))
    {
        long[] k = kernel_size ?? [7, 7], s = stride ?? [4, 4], p = padding ?? [3, 3];
        proj = nn.Conv2d(in_chans, embed_dim, (k[0], k[1]), stride: (s[0], s[1]), padding: (p[0], p[1]));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        // B C H W -> B H W C (a view; later ops accept the strided layout)
        return proj.forward(x).permute(0, 2, 3, 1).MoveToOuterDisposeScope();
    }
}
