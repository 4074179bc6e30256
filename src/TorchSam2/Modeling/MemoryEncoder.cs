using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchSam2.Modeling;

// Mirrors sam2/modeling/memory_encoder.py.

/// <summary>
/// Downsamples a mask by total_stride in steps of stride (conv → LayerNorm2d → activation each),
/// growing channels by stride² per step, then projects to embed_dim with a 1×1 conv.
/// </summary>
public sealed class MaskDownSampler : nn.Module<Tensor, Tensor>
{
    public readonly Sequential encoder;

    /// <param name="activation">"gelu" (the reference's GELU default) or "relu".</param>
    public MaskDownSampler(long embed_dim = 256, long kernel_size = 4, long stride = 4, long padding = 0, long total_stride = 16, string activation = "gelu") : base(nameof(MaskDownSampler))
    {
        int numLayers = (int)Math.Floor(Math.Log2(total_stride) / Math.Log2(stride));
        if ((long)Math.Pow(stride, numLayers) != total_stride)
            throw new ArgumentException($"total_stride {total_stride} is not a power of stride {stride}");
        encoder = nn.Sequential();
        long inChans = 1, outChans = 1;
        for (int i = 0; i < numLayers; i++)
        {
            outChans = inChans * stride * stride;
            encoder.append(nn.Conv2d(inChans, outChans, kernel_size, stride: stride, padding: padding));
            encoder.append(new LayerNorm2d(outChans));
            encoder.append(MakeActivation(activation));
            inChans = outChans;
        }
        encoder.append(nn.Conv2d(outChans, embed_dim, 1));
        RegisterComponents();
    }

    private static nn.Module<Tensor, Tensor> MakeActivation(string name) => name switch
    {
        "gelu" => nn.GELU(),
        "relu" => nn.ReLU(),
        _ => throw new ArgumentException($"unsupported activation '{name}' (gelu or relu)"),
    };

    public override Tensor forward(Tensor x) => encoder.forward(x);
}

/// <summary>
/// ConvNeXt block: depthwise conv → LayerNorm over channels → Linear(4·dim) → GELU → Linear(dim),
/// scaled by gamma, added to the input (through DropPath while training).
/// </summary>
public sealed class CXBlock : nn.Module<Tensor, Tensor>
{
    public readonly Conv2d dwconv;
    public readonly LayerNorm2d norm;
    public readonly Linear pwconv1;
    public readonly GELU act;
    public readonly Linear pwconv2;
    public readonly Parameter? gamma;
    public readonly nn.Module<Tensor, Tensor> drop_path;

    public CXBlock(long dim, long kernel_size = 7, long padding = 3, double drop_path = 0.0, double layer_scale_init_value = 1e-6, bool use_dwconv = true) : base(nameof(CXBlock))
    {
        dwconv = nn.Conv2d(dim, dim, kernel_size, padding: padding, groups: use_dwconv ? dim : 1);
        norm = new LayerNorm2d(dim, eps: 1e-6);
        // 1×1 convolutions written as Linear layers on channels-last tensors.
        pwconv1 = nn.Linear(dim, 4 * dim);
        act = nn.GELU();
        pwconv2 = nn.Linear(4 * dim, dim);
        gamma = layer_scale_init_value > 0 ? new Parameter(full([dim], layer_scale_init_value)) : null;
        this.drop_path = drop_path > 0.0 ? new DropPath(drop_path) : nn.Identity();
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = norm.forward(dwconv.forward(x));
        y = y.permute(0, 2, 3, 1); // N C H W → N H W C
        y = pwconv2.forward(act.forward(pwconv1.forward(y)));
        if (gamma is not null) y = gamma * y;
        y = y.permute(0, 3, 1, 2); // back to N C H W
        return (x + drop_path.forward(y)).MoveToOuterDisposeScope();
    }
}

/// <summary>An optional 1×1 input projection followed by a stack of blocks (CXBlocks in SAM 2).</summary>
public sealed class Fuser : nn.Module<Tensor, Tensor>
{
    public readonly nn.Module<Tensor, Tensor> proj;
    public readonly ModuleList<nn.Module<Tensor, Tensor>> layers;

    /// <param name="layer">Builds one block; called num_layers times (the reference deep-copies one block).</param>
    public Fuser(Func<nn.Module<Tensor, Tensor>> layer, int num_layers, long? dim = null, bool input_projection = false) : base(nameof(Fuser))
    {
        layers = new ModuleList<nn.Module<Tensor, Tensor>>((Enumerable.Range(0, num_layers).Select(_ => layer())).ToArray());
        if (input_projection)
        {
            if (dim is null) throw new ArgumentException("input_projection needs dim");
            proj = nn.Conv2d(dim.Value, dim.Value, 1);
        }
        else proj = nn.Identity();
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = proj.forward(x);
        foreach (var layer in layers) y = layer.forward(y);
        return y.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Encodes a frame's memory: the (sigmoid of the) predicted mask is downsampled to the feature
/// resolution, added to projected pixel features, fused by CXBlocks and projected to out_dim.
/// </summary>
public sealed class MemoryEncoder : nn.Module
{
    public readonly MaskDownSampler mask_downsampler;
    public readonly Conv2d pix_feat_proj;
    public readonly Fuser fuser;
    public readonly PositionEmbeddingSine position_encoding;
    public readonly nn.Module<Tensor, Tensor> out_proj;

    public MemoryEncoder(long out_dim, MaskDownSampler mask_downsampler, Fuser fuser, PositionEmbeddingSine position_encoding, long in_dim = 256) : base(nameof(MemoryEncoder))
    {
        this.mask_downsampler = mask_downsampler;
        pix_feat_proj = nn.Conv2d(in_dim, in_dim, 1);
        this.fuser = fuser;
        this.position_encoding = position_encoding;
        out_proj = out_dim != in_dim ? nn.Conv2d(in_dim, out_dim, 1) : nn.Identity();
        RegisterComponents();
    }

    /// <summary>
    /// pix_feat: B × in_dim × h × w; masks: B × 1 × H × W logits (or probabilities with
    /// skip_mask_sigmoid), H = 16·h. Returns B × out_dim × h × w features and their position
    /// encoding (a one-element list, as the reference).
    /// </summary>
    public (Tensor vision_features, IReadOnlyList<Tensor> vision_pos_enc) forward(Tensor pix_feat, Tensor masks, bool skip_mask_sigmoid = false)
    {
        using var scope = NewDisposeScope();
        // The sigmoid brings predicted logits closer to the binary masks seen in training.
        var m = skip_mask_sigmoid ? masks : masks.sigmoid();
        m = mask_downsampler.forward(m);

        var x = pix_feat_proj.forward(pix_feat.to(m.device));
        x = x + m;
        x = fuser.forward(x);
        x = out_proj.forward(x);

        var pos = position_encoding.forward(x).to(x.dtype);
        return (x.MoveToOuterDisposeScope(), [pos.MoveToOuterDisposeScope()]);
    }
}
