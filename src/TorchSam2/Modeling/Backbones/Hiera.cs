using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace TorchSam2.Modeling.Backbones;

// Mirrors sam2/modeling/backbones/hieradet.py: the hierarchical Hiera trunk with windowed
// attention, query pooling at stage changes, and the windowed absolute position embedding.

public static class HieraDet
{
    /// <summary>Applies an NCHW pooling module to a B×H×W×C tensor (then an optional norm); no pool returns an alias.</summary>
    public static Tensor do_pool(Tensor x, nn.Module<Tensor, Tensor>? pool, nn.Module<Tensor, Tensor>? norm = null)
    {
        if (pool is null) return x.alias();
        using var scope = NewDisposeScope();
        // (B, H, W, C) -> (B, C, H, W): a channels-last view, which max_pool2d handles without a copy.
        var y = pool.forward(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1);
        if (norm is not null) y = norm.forward(y);
        return y.MoveToOuterDisposeScope();
    }
}

/// <summary>Max pooling with a (kh, kw) kernel equal to its stride, no padding, floor mode (nn.MaxPool2d(q_stride, q_stride)).</summary>
public sealed class QueryMaxPool2d : nn.Module<Tensor, Tensor>
{
    private readonly long[] _kernel;

    public QueryMaxPool2d(long[] kernel_size) : base(nameof(QueryMaxPool2d)) => _kernel = (long[])kernel_size.Clone();

    public override Tensor forward(Tensor x) =>
        F.max_pool2d(x, _kernel, _kernel);
}

/// <summary>Multi-head self-attention over B×H×W×C tokens, optionally pooling the queries (halving H and W).</summary>
public sealed class MultiScaleAttention : nn.Module<Tensor, Tensor>
{
    public readonly Linear qkv;
    public readonly Linear proj;
    public readonly nn.Module<Tensor, Tensor>? q_pool;

    public long dim { get; }
    public long dim_out { get; }
    public long num_heads { get; }

    public MultiScaleAttention(long dim, long dim_out, long num_heads, nn.Module<Tensor, Tensor>? q_pool = null) : base(nameof(MultiScaleAttention))
    {
        this.dim = dim;
        this.dim_out = dim_out;
        this.num_heads = num_heads;
        this.q_pool = q_pool;
        qkv = nn.Linear(dim, dim_out * 3);
        proj = nn.Linear(dim_out, dim_out);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var s = x.shape;
        long b = s[0], h = s[1], w = s[2];
        // (B, H*W, 3, nHead, C) then q, k, v as strided views of it
        var parts = qkv.forward(x).reshape(b, h * w, 3, num_heads, -1).unbind(2);
        Tensor q = parts[0], k = parts[1], v = parts[2];

        if (q_pool is not null)
        {
            q = HieraDet.do_pool(q.reshape(b, h, w, -1), q_pool);
            h = q.size(1);
            w = q.size(2);
            q = q.reshape(b, h * w, num_heads, -1);
        }

        // SDPA wants (B, nHead, L, C); transposes are views. Without a fused kernel the binding's fallback
        // attends the global blocks a chunk of queries at a time.
        var o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2));
        o = o.transpose(1, 2).reshape(b, h, w, -1);
        return proj.forward(o).MoveToOuterDisposeScope();
    }

}

/// <summary>One Hiera block: (windowed) attention with optional query pooling, then an MLP, both residual.</summary>
public sealed class MultiScaleBlock : nn.Module<Tensor, Tensor>
{
    public readonly LayerNorm norm1;
    public readonly nn.Module<Tensor, Tensor>? pool;
    public readonly MultiScaleAttention attn;
    public readonly nn.Module<Tensor, Tensor> drop_path;
    public readonly LayerNorm norm2;
    public readonly MLP mlp;
    public readonly Linear? proj;

    public long dim { get; }
    public long dim_out { get; }
    public long window_size { get; }
    public long[]? q_stride { get; }

    private readonly double _dropPath;

    /// <param name="norm_layer">only "LayerNorm" (eps 1e-6), as SAM 2 uses.</param>
    /// <param name="q_stride">(sh, sw) query pooling stride, or null for none.</param>
    /// <param name="act_layer">MLP activation: "gelu" (exact erf, as GELU) or "relu".</param>
    public MultiScaleBlock(long dim, long dim_out, long num_heads, double mlp_ratio = 4.0, double drop_path = 0.0,
        string norm_layer = "LayerNorm", long[]? q_stride = null, string act_layer = "gelu", long window_size = 0) : base(nameof(MultiScaleBlock))
    {
        if (norm_layer != "LayerNorm") throw new ArgumentException($"unsupported norm_layer '{norm_layer}'");
        this.dim = dim;
        this.dim_out = dim_out;
        this.window_size = window_size;
        norm1 = nn.LayerNorm(dim, 1e-6);

        this.q_stride = q_stride is null ? null : (long[])q_stride.Clone();
        pool = q_stride is null ? null : new QueryMaxPool2d(q_stride);

        attn = new MultiScaleAttention(dim, dim_out, num_heads, pool);
        _dropPath = drop_path;
        this.drop_path = drop_path > 0.0 ? new DropPath(drop_path) : nn.Identity();

        norm2 = nn.LayerNorm(dim_out, 1e-6);
        mlp = new MLP(dim_out, (long)(dim_out * mlp_ratio), dim_out, num_layers: 2, activation: act_layer);

        if (dim != dim_out) proj = nn.Linear(dim, dim_out);
        RegisterComponents();
    }

    private Tensor ApplyDropPath(Tensor x) => _dropPath > 0.0 && training ? drop_path.forward(x) : x;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var shortcut = x; // B, H, W, C
        x = norm1.forward(x);

        // Skip connection with the channel change (and the same pooling as the queries).
        if (dim != dim_out) shortcut = HieraDet.do_pool(proj!.forward(x), pool);

        long ws = window_size;
        long h = 0, w = 0;
        (long, long) padHw = default;
        if (ws > 0)
        {
            h = x.size(1);
            w = x.size(2);
            (x, padHw) = BackboneUtils.window_partition(x, ws);
        }

        x = attn.forward(x);
        if (q_stride is not null)
        {
            // Query pooling shrank every window and the map.
            ws = window_size / q_stride[0];
            h = shortcut.size(1);
            w = shortcut.size(2);
            long padH = ws > 0 ? (ws - h % ws) % ws : 0;
            long padW = ws > 0 ? (ws - w % ws) % ws : 0;
            padHw = (h + padH, w + padW);
        }

        if (window_size > 0) x = BackboneUtils.window_unpartition(x, ws, padHw, (h, w));

        x = shortcut + ApplyDropPath(x);
        var m = ApplyDropPath(mlp.forward(norm2.forward(x)));
        // Without autograd the residual can be accumulated in place (x is our own temporary).
        x = is_grad_enabled() ? x + m : x.add_(m);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>Hiera trunk (https://arxiv.org/abs/2306.00989): returns the stage outputs (NCHW), highest resolution first.</summary>
public sealed class Hiera : nn.Module<Tensor, List<Tensor>>
{
    public readonly PatchEmbed patch_embed;
    public readonly Parameter pos_embed;
    public readonly Parameter pos_embed_window;
    public readonly ModuleList<MultiScaleBlock> blocks;

    public long[] window_spec { get; }
    public long[] q_stride { get; }
    public int[] stage_ends { get; }
    public int[] q_pool_blocks { get; }
    public bool return_interm_layers { get; }
    public int[]? global_att_blocks { get; }
    public long[] window_pos_embed_bkg_spatial_size { get; }
    /// <summary>Output channels per returned level, lowest resolution first (matches FpnNeck.backbone_channel_list).</summary>
    public long[] channel_list { get; }

    /// <param name="q_stride">default (2, 2)</param>
    /// <param name="stages">default (2, 3, 16, 3)</param>
    /// <param name="window_pos_embed_bkg_spatial_size">default (14, 14)</param>
    /// <param name="window_spec">default (8, 4, 14, 7)</param>
    /// <param name="global_att_blocks">default (12, 16, 20); pass an empty array for none</param>
    /// <param name="weights_path">ignored (the Python side loads a separate trunk checkpoint here)</param>
    public Hiera(long embed_dim = 96, long num_heads = 1, double drop_path_rate = 0.0, int q_pool = 3, long[]? q_stride = null,
        int[]? stages = null, double dim_mul = 2.0, double head_mul = 2.0, long[]? window_pos_embed_bkg_spatial_size = null,
        long[]? window_spec = null, int[]? global_att_blocks = null, string? weights_path = null, bool return_interm_layers = true) : base(nameof(Hiera))
    {
        q_stride ??= [2, 2];
        stages ??= [2, 3, 16, 3];
        window_pos_embed_bkg_spatial_size ??= [14, 14];
        window_spec ??= [8, 4, 14, 7];
        global_att_blocks ??= [12, 16, 20];
        if (stages.Length != window_spec.Length) throw new ArgumentException("stages and window_spec must have the same length");

        this.window_spec = (long[])window_spec.Clone();
        this.q_stride = (long[])q_stride.Clone();
        int depth = stages.Sum();
        stage_ends = Enumerable.Range(1, stages.Length).Select(i => stages.Take(i).Sum() - 1).ToArray();
        if (q_pool < 0 || q_pool > stage_ends.Length - 1) throw new ArgumentException($"q_pool must be in [0, {stage_ends.Length - 1}]");
        q_pool_blocks = stage_ends.Take(stage_ends.Length - 1).Select(x => x + 1).Take(q_pool).ToArray();
        this.return_interm_layers = return_interm_layers;
        this.global_att_blocks = (int[])global_att_blocks.Clone();
        this.window_pos_embed_bkg_spatial_size = (long[])window_pos_embed_bkg_spatial_size.Clone();

        patch_embed = new PatchEmbed(embed_dim: embed_dim);
        pos_embed = new Parameter(zeros([1, embed_dim, window_pos_embed_bkg_spatial_size[0], window_pos_embed_bkg_spatial_size[1]]));
        pos_embed_window = new Parameter(zeros([1, embed_dim, window_spec[0], window_spec[0]]));

        // Stochastic depth decays linearly over the blocks.
        double Dpr(int i) => depth > 1 ? drop_path_rate * i / (depth - 1) : 0.0;

        int curStage = 1;
        blocks = new ModuleList<MultiScaleBlock>();
        for (int i = 0; i < depth; i++)
        {
            long dimOut = embed_dim;
            // The window size lags by one block: the first block of a stage still uses the
            // previous stage's window size.
            long windowSize = window_spec[curStage - 1];
            if (global_att_blocks.Contains(i)) windowSize = 0;

            if (stage_ends.Contains(i - 1))
            {
                dimOut = (long)(embed_dim * dim_mul);
                num_heads = (long)(num_heads * head_mul);
                curStage++;
            }

            blocks.append(new MultiScaleBlock(embed_dim, dimOut, num_heads, drop_path: Dpr(i),
                q_stride: q_pool_blocks.Contains(i) ? q_stride : null, window_size: windowSize));
            embed_dim = dimOut;
        }

        channel_list = return_interm_layers
            ? stage_ends.Reverse().Select(i => blocks[i].dim_out).ToArray()
            : [blocks[^1].dim_out];
        RegisterComponents();
    }

    /// <summary>pos_embed resized (bicubic) to h×w plus the tiled window embedding, as B×H×W×C.</summary>
    private Tensor _get_pos_embed(long h, long w)
    {
        using var scope = NewDisposeScope();
        var pe = F.interpolate(pos_embed, size: [h, w], mode: InterpolationMode.Bicubic, align_corners: false); // PyTorch's None means false; saying so keeps libtorch from warning
        var ws = pos_embed_window.shape;
        var tiled = pos_embed_window.repeat(1, 1, h / ws[2], w / ws[3]);
        return (pe + tiled).permute(0, 2, 3, 1).MoveToOuterDisposeScope();
    }

    public override List<Tensor> forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var emb = patch_embed.forward(x);
        // x: (B, H, W, C)
        x = emb + _get_pos_embed(emb.size(1), emb.size(2));
        emb.Dispose();

        var outputs = new List<Tensor>();
        int last = stage_ends[^1];
        for (int i = 0; i < blocks.Count; i++)
        {
            var y = blocks[i].forward(x);
            // Free each block's input as soon as it is consumed (returned levels are separate views).
            x.Dispose();
            x = y;
            if (i == last || (return_interm_layers && stage_ends.Contains(i)))
                outputs.Add(x.permute(0, 3, 1, 2));
        }
        foreach (var o in outputs) o.MoveToOuterDisposeScope();
        return outputs;
    }

    public int get_num_layers() => blocks.Count;

    /// <summary>Layer id for layer-wise learning-rate decay (as BEiT's optimizer factory).</summary>
    public int get_layer_id(string layer_name)
    {
        int numLayers = get_num_layers();
        if (layer_name.Contains("rel_pos")) return numLayers + 1;
        if (layer_name.Contains("pos_embed")) return 0;
        if (layer_name.Contains("patch_embed")) return 0;
        int at = layer_name.IndexOf("blocks", StringComparison.Ordinal);
        if (at >= 0) return int.Parse(layer_name[(at + "blocks".Length)..].Split('.')[1]) + 1;
        return numLayers + 1;
    }
}
