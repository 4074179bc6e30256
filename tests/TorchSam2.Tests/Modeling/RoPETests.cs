using TorchSam2.Modeling.Sam;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace TorchSam2.Tests.Modeling;

public class RoPETests
{
    private static void Close(double expected, float actual, double tol = 1e-6) =>
        Assert.True(Math.Abs(expected - actual) <= tol, $"expected {expected}, got {actual}");

    [Fact]
    public void TableOnTwoByTwoGrid()
    {
        // dim 8: frequencies 1/10000^(0/8) = 1 and 1/10000^(4/8) = 0.01 for x, then the same for y.
        // Tokens are row-major: (x, y) = (0,0), (1,0), (0,1), (1,1).
        using var table = RoPE.ComputeAxialCis(8, 2, 2);
        Assert.Equal(new long[] { 4, 4, 2 }, table.shape);
        var v = table.ToArray<float>();
        double[][] angles =
        [
            [0, 0, 0, 0],
            [1, 0.01, 0, 0],
            [0, 0, 1, 0.01],
            [1, 0.01, 1, 0.01],
        ];
        for (int n = 0; n < 4; n++)
            for (int j = 0; j < 4; j++)
            {
                Close(Math.Cos(angles[n][j]), v[(n * 4 + j) * 2]);
                Close(Math.Sin(angles[n][j]), v[(n * 4 + j) * 2 + 1]);
            }
    }

    [Fact]
    public void RotatesChannelPairs()
    {
        // dim 4 on a 2×2 grid: pair 0 turns by x radians, pair 1 by y radians.
        using var scope = NewDisposeScope();
        var table = RoPE.ComputeAxialCis(4, 2, 2);
        var x = tensor(Enumerable.Range(0, 4).SelectMany(_ => new float[] { 1, 2, 3, 4 }).ToArray(), [1, 1, 4, 4]);
        var (q, k) = RoPE.ApplyRotaryEnc(x, x, table);
        var qv = q.ToArray<float>();
        Assert.Equal(qv, k.ToArray<float>());
        double c = Math.Cos(1), s = Math.Sin(1);
        double[][] expected =
        [
            [1, 2, 3, 4],
            [1 * c - 2 * s, 1 * s + 2 * c, 3, 4],
            [1, 2, 3 * c - 4 * s, 3 * s + 4 * c],
            [1 * c - 2 * s, 1 * s + 2 * c, 3 * c - 4 * s, 3 * s + 4 * c],
        ];
        for (int n = 0; n < 4; n++)
            for (int d = 0; d < 4; d++) Close(expected[n][d], qv[n * 4 + d], 1e-5);
    }

    [Fact]
    public void RepeatedKeysUseTheQueryTablePerFrame()
    {
        using var scope = NewDisposeScope();
        var table = RoPE.ComputeAxialCis(4, 2, 2);
        var q = randn([2, 1, 4, 4]);
        var k = randn([2, 1, 8, 4]);
        var (_, kr) = RoPE.ApplyRotaryEnc(q, k, table, repeat_freqs_k: true);
        var (k0, k1) = RoPE.ApplyRotaryEnc(k.narrow(2, 0, 4), k.narrow(2, 4, 4), table);
        Assert.Equal(cat([k0, k1], 2).ToArray<float>(), kr.ToArray<float>());
        // Zero keys (all excluded) come back untouched.
        var (_, empty) = RoPE.ApplyRotaryEnc(q, k.narrow(2, 0, 0), table, repeat_freqs_k: true);
        Assert.Equal(new long[] { 2, 1, 0, 4 }, empty.shape);
    }

    [Fact]
    public void AttentionRebuildsTableForOtherLengthsAndSkipsExcludedKeys()
    {
        using var attn = new RoPEAttention(8, 2, kv_in_dim: 6, rope_k_repeat: true, feat_sizes: [4, 4]);
        attn.eval();
        using var scope = NewDisposeScope();
        // 4 query tokens ≠ 16: the table is that of a 2×2 grid with head dim 4.
        var expectedTable = RoPE.ComputeAxialCis(4, 2, 2);
        Assert.Equal(expectedTable.ToArray<float>(), attn.FreqsFor(4, CPU).ToArray<float>());
        Assert.Same(attn.FreqsFor(4, CPU), attn.FreqsFor(4, CPU));

        var q = randn([1, 4, 8]);
        var k = randn([1, 11, 6]);
        var v = randn([1, 11, 6]);
        var out_ = attn.forward(q, k, v, num_k_exclude_rope: 3);
        Assert.Equal(new long[] { 1, 4, 8 }, out_.shape);

        // Same computation by hand: RoPE on 8 of the 11 keys only.
        var qh = attn.q_proj.forward(q).reshape(1, 4, 2, 4).transpose(1, 2);
        var kh = attn.k_proj.forward(k).reshape(1, 11, 2, 4).transpose(1, 2);
        var vh = attn.v_proj.forward(v).reshape(1, 11, 2, 4).transpose(1, 2);
        var (qr, kr) = RoPE.ApplyRotaryEnc(qh, kh.narrow(2, 0, 8), expectedTable, repeat_freqs_k: true);
        kr = cat([kr, kh.narrow(2, 8, 3)], 2);
        var att = (qr.matmul(kr.transpose(-2, -1)) / Math.Sqrt(4)).softmax(-1).matmul(vh);
        var manual = attn.out_proj.forward(att.transpose(1, 2).reshape(1, 4, 8));
        var diff = (manual - out_).abs().max().ToSingle();
        Assert.True(diff < 1e-5, $"max diff {diff}");

        // Keys longer than queries without rope_k_repeat are refused.
        using var plain = new RoPEAttention(8, 2, feat_sizes: [2, 2]);
        Assert.Throws<ArgumentException>(() => plain.forward(q, randn([1, 8, 8]), randn([1, 8, 8])));
    }
}
