using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchSam2.Modeling.Sam;

// Mirrors the axial RoPE helpers of sam2/modeling/position_encoding.py and RoPEAttention of
// sam2/modeling/sam/transformer.py. The official code uses complex tensors; here the rotation
// is written with real cos/sin tables, which gives the same numbers.

/// <summary>Axial 2-D rotary position encoding with real-valued tables.</summary>
public static class RoPE
{
    /// <summary>
    /// Token coordinates of a row-major end_x × end_y grid: t_x = t mod end_x, t_y = t div end_x (float32).
    /// </summary>
    public static (Tensor t_x, Tensor t_y) InitTXY(long end_x, long end_y)
    {
        using var scope = NewDisposeScope();
        var t = arange(0, end_x * end_y, 1, ScalarType.Float32);
        var tx = t % end_x;
        var ty = t.div((double)end_x, RoundingMode.floor);
        return (tx.MoveToOuterDisposeScope(), ty.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Rotation table for head dimension <paramref name="dim"/> on an end_x × end_y grid, on the CPU:
    /// shape (end_x·end_y) × (dim/2) × 2 holding (cos, sin) of each pair's angle. The first dim/4
    /// pairs rotate with the x coordinate, the last dim/4 with y (the real view of compute_axial_cis).
    /// </summary>
    public static Tensor ComputeAxialCis(long dim, long end_x, long end_y, double theta = 10000.0)
    {
        if (dim % 4 != 0) throw new ArgumentException($"axial RoPE needs a head dimension divisible by 4, got {dim}");
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        // Same float32 arithmetic as the reference: 1 / theta^(arange(0, dim, 4) / dim).
        var exps = arange(0, dim, 4, ScalarType.Float32)[TensorIndex.Slice(0, dim / 4)] / (double)dim;
        var freqs = 1.0 / Sam2Utils.Pow(theta, exps);
        var (tx, ty) = InitTXY(end_x, end_y);
        var angles = cat([outer(tx, freqs), outer(ty, freqs)], -1);
        var table = stack([angles.cos(), angles.sin()], -1).contiguous();
        return table.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Rotates consecutive channel pairs of xq (… × N × D) and xk (… × Nk × D) by the table
    /// (N × D/2 × 2 from <see cref="ComputeAxialCis"/>): (x0, x1) → (x0·cos − x1·sin, x0·sin + x1·cos).
    /// With repeat_freqs_k the table is tiled along the sequence to cover Nk = r·N keys (memories of
    /// several frames). Keys of length 0 are returned as an alias. Computed in float32, returned in
    /// the inputs' dtypes.
    /// </summary>
    public static (Tensor xq_out, Tensor xk_out) ApplyRotaryEnc(Tensor xq, Tensor xk, Tensor freqs_cis, bool repeat_freqs_k = false)
    {
        using var scope = NewDisposeScope();
        long n = xq.size(-2), half = xq.size(-1) / 2;
        if (freqs_cis.size(0) != n || freqs_cis.size(1) != half)
            throw new ArgumentException($"RoPE table [{string.Join(", ", freqs_cis.shape)}] does not fit queries [{string.Join(", ", xq.shape)}]");
        var table = freqs_cis.to(xq.device);
        var cos = table[TensorIndex.Ellipsis, 0];
        var sin = table[TensorIndex.Ellipsis, 1];
        var qOut = Rotate(xq, cos, sin).to(xq.dtype);
        if (xk.size(-2) == 0)
            return (qOut.MoveToOuterDisposeScope(), xk.alias().MoveToOuterDisposeScope());
        if (repeat_freqs_k)
        {
            long r = xk.size(-2) / n;
            cos = cos.repeat(r, 1);
            sin = sin.repeat(r, 1);
        }
        var kOut = Rotate(xk, cos, sin).to(xk.dtype);
        return (qOut.MoveToOuterDisposeScope(), kOut.MoveToOuterDisposeScope());
    }

    // x: … × N × D; cos, sin: N × D/2 (broadcast over the leading dims).
    private static Tensor Rotate(Tensor x, Tensor cos, Tensor sin)
    {
        // keys here are all memory frames' tokens: temporaries are freed as they are used
        var shape = x.shape;
        using var asFloat = x.@float();
        using var pairs = asFloat.reshape([.. shape[..^1], shape[^1] / 2, 2]);
        using var x0 = pairs[TensorIndex.Ellipsis, 0];
        using var x1 = pairs[TensorIndex.Ellipsis, 1];
        Tensor y0, y1;
        using (var a = x0 * cos) using (var b = x1 * sin) y0 = a - b;
        using (var a = x0 * sin) using (var b = x1 * cos) y1 = a + b;
        using (y0) using (y1) using (var stacked = stack([y0, y1], -1))
            return stacked.flatten(-2);
    }
}

/// <summary>Attention whose queries and keys get axial rotary position encoding.</summary>
public class RoPEAttention : Attention
{
    private readonly double _ropeTheta;
    private readonly long _featTokens;
    private readonly long[] _featSizes;
    // RoPE tables by (sequence length, device); rebuilt for a new length as the reference does.
    // Keyed by device type and index: TorchSharp devices have no value equality.
    private readonly Dictionary<(long, DeviceType, int), Tensor> _tables = new();
    private readonly object _lock = new();

    public bool rope_k_repeat { get; }
    public double rope_theta => _ropeTheta;
    public IReadOnlyList<long> feat_sizes => _featSizes;

    public RoPEAttention(long embedding_dim, long num_heads, long downsample_rate = 1, double dropout = 0.0, long? kv_in_dim = null,
        double rope_theta = 10000.0, bool rope_k_repeat = false, long[]? feat_sizes = null)
        : base(embedding_dim, num_heads, downsample_rate, dropout, kv_in_dim)
    {
        _ropeTheta = rope_theta;
        this.rope_k_repeat = rope_k_repeat;
        // [w, h] of the stride-16 features at 1024 resolution by default.
        _featSizes = feat_sizes is null ? [64, 64] : (long[])feat_sizes.Clone();
        if (_featSizes.Length != 2) throw new ArgumentException("feat_sizes must hold two values (w, h)");
        _featTokens = _featSizes[0] * _featSizes[1];
    }

    /// <summary>The (cos, sin) table for n query tokens on the given device (cached).</summary>
    public Tensor FreqsFor(long n, Device device)
    {
        lock (_lock)
        {
            if (_tables.TryGetValue((n, device.type, device.index), out var t)) return t;
            Tensor cpu;
            if (n == _featTokens) cpu = RoPE.ComputeAxialCis(internal_dim / num_heads, _featSizes[0], _featSizes[1], _ropeTheta);
            else
            {
                // Any other length is taken as a square grid, as the reference does.
                long w = (long)Math.Round(Math.Sqrt(n));
                if (w * w != n) throw new ArgumentException($"RoPEAttention: {n} query tokens do not form a square grid and differ from feat_sizes [{_featSizes[0]}, {_featSizes[1]}]");
                cpu = RoPE.ComputeAxialCis(internal_dim / num_heads, w, w, _ropeTheta);
            }
            cpu.DetachFromDisposeScope();
            if (device.type != DeviceType.CPU)
            {
                using (cpu) t = cpu.to(device).DetachFromDisposeScope();
            }
            else t = cpu;
            _tables[(n, device.type, device.index)] = t;
            return t;
        }
    }

    public override Tensor forward(Tensor q, Tensor k, Tensor v) => forward(q, k, v, 0);

    /// <summary>
    /// Attention with RoPE on q and on all keys but the last <paramref name="num_k_exclude_rope"/>
    /// (object-pointer tokens, which have no spatial position).
    /// </summary>
    public Tensor forward(Tensor q, Tensor k, Tensor v, long num_k_exclude_rope)
    {
        using var scope = NewDisposeScope();
        // Projections (memories: tokens × frames) are freed as soon as they are used, views included.
        using var qp = q_proj.forward(q);
        using var kp = k_proj.forward(k);
        using var vp = v_proj.forward(v);
        using var qh = SeparateHeads(qp, num_heads);
        using var kh = SeparateHeads(kp, num_heads);
        using var vh = SeparateHeads(vp, num_heads);

        long nq = qh.size(-2), nk = kh.size(-2);
        if (nq != nk && !rope_k_repeat) throw new ArgumentException($"RoPEAttention: {nk} keys for {nq} queries needs rope_k_repeat");
        var freqs = FreqsFor(nq, qh.device);

        long numKRope = nk - num_k_exclude_rope;
        Tensor qr, kr;
        using (var kSpatial = kh.narrow(2, 0, numKRope))
            (qr, kr) = RoPE.ApplyRotaryEnc(qh, kSpatial, freqs, rope_k_repeat);
        // Rebuilt with cat rather than written in place so autograd stays simple.
        if (num_k_exclude_rope > 0)
        {
            using var ptrs = kh.narrow(2, numKRope, num_k_exclude_rope);
            using var spatial = kr;
            kr = cat([spatial, ptrs], 2);
        }

        Tensor out_;
        using (qr)
        using (kr)
            out_ = nn.functional.scaled_dot_product_attention(qr, kr, vh, p: training ? dropout_p : 0.0);
        using (out_)
        using (var merged = RecombineHeads(out_))
            return out_proj.forward(merged).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        lock (_lock)
        {
            foreach (var t in _tables.Values) t.Dispose();
            _tables.Clear();
        }
        base.Dispose(disposing);
    }
}
