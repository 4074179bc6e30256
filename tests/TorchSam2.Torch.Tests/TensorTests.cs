using TorchSam2.Torch;
using static TorchSam2.Torch.torch;
using F = TorchSam2.Torch.torch.nn.functional;

namespace TorchSam2.Torch.Tests;

public class TensorTests
{
    private static void Close(float[] expected, Tensor actual, float tol = 1e-5f)
    {
        var a = actual.to(ScalarType.Float32).ToArray<float>();
        Assert.Equal(expected.Length, a.Length);
        for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(expected[i] - a[i]) <= tol, $"[{i}] expected {expected[i]}, got {a[i]}");
    }

    [Fact]
    public void DataRoundTripsAndReportsShape()
    {
        using var t = tensor(new float[] { 1, 2, 3, 4, 5, 6 }, [2, 3]);
        Assert.Equal(new long[] { 2, 3 }, t.shape);
        Assert.Equal(ScalarType.Float32, t.dtype);
        Assert.Equal(Device.CPU, t.device);
        Assert.Equal(new float[] { 1, 2, 3, 4, 5, 6 }, t.ToArray<float>());
        using var tt = t.t();
        Assert.Equal(new float[] { 1, 4, 2, 5, 3, 6 }, tt.ToArray<float>());
    }

    [Fact]
    public void ArithmeticMatchesHandComputedValues()
    {
        using var scope = NewDisposeScope();
        var a = tensor(new float[] { 1, 2, 3 });
        var b = tensor(new float[] { 4, 5, 6 });
        Close([5, 7, 9], a + b);
        Close([-3, -3, -3], a - b);
        Close([4, 10, 18], a * b);
        Close([0.25f, 0.4f, 0.5f], a / b);
        Close([3, 2, 1], 4 - a);
        Close([1, 4, 9], a.pow(2));
        Assert.Equal(32f, a.matmul(b).item<float>());
        Close([1f / (1 + MathF.Exp(-1)), 1f / (1 + MathF.Exp(-2)), 1f / (1 + MathF.Exp(-3))], a.sigmoid());
        var sm = a.softmax(0).ToArray<float>();
        float z = MathF.Exp(1) + MathF.Exp(2) + MathF.Exp(3);
        Assert.Equal(MathF.Exp(3) / z, sm[2], 5);
        Assert.Equal(6f, a.sum().item<float>());
        Assert.Equal(2f, a.mean().item<float>());
    }

    [Fact]
    public void MatmulAndConvMatchHandComputedValues()
    {
        using var scope = NewDisposeScope();
        var m = tensor(new float[] { 1, 2, 3, 4 }, [2, 2]);
        Close([7, 10, 15, 22], m.matmul(m));
        // 3x3 ones image, 2x2 ones kernel: every output is the sum of 4 ones, plus bias 0.5.
        var img = ones([1, 1, 3, 3]);
        var k = ones([1, 1, 2, 2]);
        var y = F.conv2d(img, k, tensor(new float[] { 0.5f }));
        Assert.Equal(new long[] { 1, 1, 2, 2 }, y.shape);
        Close([4.5f, 4.5f, 4.5f, 4.5f], y);
        // Layer norm of [1, 2, 3]: mean 2, var 2/3.
        var ln = F.layer_norm(tensor(new float[] { 1, 2, 3 }), [3]);
        float s = MathF.Sqrt(2f / 3 + 1e-5f);
        Close([-1 / s, 0, 1 / s], ln, 1e-4f);
        // GELU(1) = 0.5 (1 + erf(1/√2)) = 0.841344746
        Close([0.841344746f], F.gelu(tensor(new float[] { 1 })));
    }

    [Fact]
    public void InterpolateBilinearMatchesHandValues()
    {
        using var scope = NewDisposeScope();
        var x = tensor(new float[] { 0, 1, 2, 3 }, [1, 1, 2, 2]);
        var y = F.interpolate(x, size: [3, 3], mode: "bilinear", align_corners: true);
        Close([0, 0.5f, 1, 1, 1.5f, 2, 2, 2.5f, 3], y);
        var n = F.interpolate(x, scale_factor: 2, mode: "nearest");
        Close([0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3], n);
        // Antialiased 2x downsampling of a 4x4 ramp averages 2x2 blocks (triangle filter, support 2).
        var r = arange(0, 16, 1).reshape(1, 1, 4, 4);
        var d = F.interpolate(r, size: [2, 2], mode: "bilinear", align_corners: false, antialias: true);
        Assert.Equal(new long[] { 1, 1, 2, 2 }, d.shape);
    }

    [Fact]
    public void IndexingSlicesAndAssigns()
    {
        using var scope = NewDisposeScope();
        var x = arange(0, 12, 1).reshape(3, 4);
        Close([4, 5, 6, 7], x[1]);
        Close([1, 5, 9], x[.., 1]);
        Close([6, 7, 10, 11], x[1.., 2..]);
        Close([11], x[^1, ^1].reshape(1));
        Assert.Equal(new long[] { 1, 3, 4 }, x[TensorIndex.None].shape);
        Assert.Equal(new long[] { 3 }, x[TensorIndex.Ellipsis, 0].shape);
        var mask = x > 9;
        Close([10, 11], x[mask]);
        var idx = tensor(new long[] { 2, 0 });
        Close([8, 9, 10, 11, 0, 1, 2, 3], x[idx]);
        x[0, ..] = zeros([4]);
        Close([0, 0, 0, 0], x[0]);
        x[x > 10] = full([1], -1);
        Assert.Equal(-1f, x[2, 3].item<float>());
    }

    [Fact]
    public void SplitCatStackAndReductions()
    {
        using var scope = NewDisposeScope();
        var x = arange(0, 6, 1).reshape(2, 3);
        var parts = x.split([1, 2], 1);
        Assert.Equal(2, parts.Length);
        Close([1, 2, 4, 5], parts[1]);
        Close([0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5], cat([x, x], 0));
        Assert.Equal(new long[] { 2, 2, 3 }, stack([x, x]).shape);
        var (vals, idx) = x.max(1);
        Close([2, 5], vals);
        Assert.Equal(new long[] { 2, 2 }, idx.ToArray<long>());
        var (tv, ti) = tensor(new float[] { 3, 1, 4, 1, 5 }).topk(2);
        Close([5, 4], tv);
        Assert.Equal(new long[] { 4, 2 }, ti.ToArray<long>());
    }

    [Fact]
    public void DtypeAndDeviceConversions()
    {
        using var scope = NewDisposeScope();
        var x = tensor(new float[] { 1.5f, -2.25f });
        Assert.Equal(ScalarType.BFloat16, x.bfloat16().dtype);
        Close([1.5f, -2.25f], x.half());
        Assert.Equal(new long[] { 1, -2 }, x.@long().ToArray<long>());
        Assert.Equal(new[] { true, false }, (x > 0).ToArray<bool>());
    }

    [Fact]
    public void ScaledDotProductAttentionMatchesExplicitForm()
    {
        using var scope = NewDisposeScope();
        manual_seed(0);
        var q = randn([2, 3, 5, 8]);
        var k = randn([2, 3, 7, 8]);
        var v = randn([2, 3, 7, 8]);
        var expected = (q.matmul(k.transpose(-2, -1)) / Math.Sqrt(8)).softmax(-1).matmul(v);
        var actual = F.scaled_dot_product_attention(q, k, v);
        Assert.True(allclose(expected, actual, 1e-5, 1e-5));
    }

    [Fact]
    public void ChunkedAttentionMatchesTheWholeScoreMatrix()
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        // q strided as in the models (a transpose of [B, L, heads, d]); 50 rows = 7 blocks of 7 and a remainder of 1
        var q = randn([2, 50, 3, 8]).transpose(1, 2);
        var k = randn([2, 3, 40, 8]);
        var v = randn([2, 3, 40, 8]);
        var expected = (q.matmul(k.transpose(-2, -1)) / Math.Sqrt(8)).softmax(-1).matmul(v);
        long saved = F.AttentionChunkElements;
        try
        {
            F.AttentionChunkElements = 2 * 3 * 40 * 7;
            Tensor actual;
            using (inference_mode()) actual = F.scaled_dot_product_attention(q, k, v);
            Assert.Equal(new long[] { 2, 3, 50, 8 }, actual.shape);
            Assert.True((expected - actual).abs().max().item<float>() < 1e-6f);

            // with a graph to record, attention is not chunked and gradients flow
            var qg = q.detach().requires_grad_(true);
            F.scaled_dot_product_attention(qg, k, v).sum().backward();
            Assert.NotNull(qg.grad);
            Assert.True((qg.grad!).abs().sum().item<float>() > 0);
        }
        finally
        {
            F.AttentionChunkElements = saved;
        }
    }

    [Fact]
    public void PrefersTheOpenMpBuildOfOpenBlasWhenInstalled()
    {
        using var t = ones([2, 2]).matmul(ones([2, 2])); // libtorch (and its BLAS) is loaded
        Assert.Equal(2f, t[0, 0].item<float>());
        bool installed = File.Exists("/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0");
        bool optedOut = string.Equals(Environment.GetEnvironmentVariable("TORCHSAM2_BLAS"), "system", StringComparison.OrdinalIgnoreCase);
        if (installed && !optedOut)
        {
            Assert.Contains("/openblas-openmp/", BlasCheck.LoadedBlas());
            Assert.NotNull(BlasCheck.PreloadedOpenMpBlas);
        }
        else Assert.Null(BlasCheck.PreloadedOpenMpBlas);
    }

    [Fact]
    public void ManualSeedIsReproducible()
    {
        using var scope = NewDisposeScope();
        manual_seed(42);
        var a = rand([5]).ToArray<float>();
        manual_seed(42);
        var b = rand([5]).ToArray<float>();
        Assert.Equal(a, b);
    }

    [Fact]
    public void ListArgumentsLongerThanTheStackScratchStillWork()
    {
        // Shapes and handle lists are copied onto the stack (256 slots); longer ones fall back to pinned arrays.
        using var scope = NewDisposeScope();
        var parts = Enumerable.Range(0, 300).Select(i => full([2], (double)i)).ToArray();
        var joined = cat(parts);
        Assert.Equal(new long[] { 600 }, joined.shape);
        Assert.Equal(299f, joined[599].item<float>());
        var pieces = joined.split(Enumerable.Repeat(2L, 300).ToArray());
        Assert.Equal(300, pieces.Length);
        Assert.Equal(new float[] { 123, 123 }, pieces[123].ToArray<float>());
        // a string argument, on the stack too
        var q = tensor(new float[] { 7, -7 }).div(2.0, "floor");
        Assert.Equal(new float[] { 3, -4 }, q.ToArray<float>());
    }

    [Fact]
    public void AnOpCallAllocatesOnlyItsResultObject()
    {
        // Managed garbage per op adds up to resident memory between GCs (the gen0 budget can be ~100 MB
        // on a large-cache server), so a call allocates the result Tensor and nothing else.
        using var x = ones([2, 3, 4]);
        long[] shape = [4, 6];
        for (int i = 0; i < 10; i++) x.view(shape).Dispose(); // warm-up: operator lookup, JIT
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            using var y = x.view(shape);
            using var s = NewDisposeScope();
            var parts = y.split(2, 1); // a multi-result op inside a scope
        }
        long perIteration = (GC.GetAllocatedBytesForCurrentThread() - before) / 1000;
        // view: one Tensor; split: an array of 3 Tensors + the scope (before: ~40 KB of result slots and a new set per scope)
        Assert.True(perIteration < 1024, $"{perIteration} bytes allocated per iteration");
    }
}
