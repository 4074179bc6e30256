using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchSam2.Modeling.Sam;

// Mirrors Attention in sam2/modeling/sam/transformer.py.

/// <summary>Multi-head attention that can shrink the embedding after projection (downsample_rate).</summary>
public class Attention : nn.Module
{
    public readonly Linear q_proj;
    public readonly Linear k_proj;
    public readonly Linear v_proj;
    public readonly Linear out_proj;

    public long embedding_dim { get; }
    public long kv_in_dim { get; }
    public long internal_dim { get; }
    public long num_heads { get; }
    public double dropout_p { get; }

    public Attention(long embedding_dim, long num_heads, long downsample_rate = 1, double dropout = 0.0, long? kv_in_dim = null) : base(nameof(Attention))
    {
        this.embedding_dim = embedding_dim;
        this.kv_in_dim = kv_in_dim ?? embedding_dim;
        internal_dim = embedding_dim / downsample_rate;
        this.num_heads = num_heads;
        if (internal_dim % num_heads != 0) throw new ArgumentException("num_heads must divide embedding_dim.");
        q_proj = nn.Linear(embedding_dim, internal_dim);
        k_proj = nn.Linear(this.kv_in_dim, internal_dim);
        v_proj = nn.Linear(this.kv_in_dim, internal_dim);
        out_proj = nn.Linear(internal_dim, embedding_dim);
        dropout_p = dropout;
        RegisterComponents();
    }

    /// <summary>B × N × C → B × heads × N × C/heads.</summary>
    protected static Tensor SeparateHeads(Tensor x, long numHeads)
    {
        long b = x.size(0), n = x.size(1), c = x.size(2);
        using var r = x.reshape(b, n, numHeads, c / numHeads);
        return r.transpose(1, 2);
    }

    /// <summary>B × heads × N × c → B × N × heads·c.</summary>
    protected static Tensor RecombineHeads(Tensor x)
    {
        long b = x.size(0), h = x.size(1), n = x.size(2), c = x.size(3);
        using var t = x.transpose(1, 2);
        return t.reshape(b, n, h * c);
    }

    public virtual Tensor forward(Tensor q, Tensor k, Tensor v)
    {
        using var scope = NewDisposeScope();
        // Per-prompt image-sized projections (B × HW × C) are freed as soon as they are used (views too: a view
        // keeps its base's storage alive).
        Tensor out_;
        using (var qp = q_proj.forward(q))
        using (var qh = SeparateHeads(qp, num_heads))
        using (var kp = k_proj.forward(k))
        using (var kh = SeparateHeads(kp, num_heads))
        using (var vp = v_proj.forward(v))
        using (var vh = SeparateHeads(vp, num_heads))
            out_ = nn.functional.scaled_dot_product_attention(qh, kh, vh, p: training ? dropout_p : 0.0);
        using var merged = RecombineHeads(out_);
        out_.Dispose();
        return out_proj.forward(merged).MoveToOuterDisposeScope();
    }
}
