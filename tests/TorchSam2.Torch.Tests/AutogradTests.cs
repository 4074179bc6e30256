using TorchSam2.Torch;
using static TorchSam2.Torch.torch;
using F = TorchSam2.Torch.torch.nn.functional;

namespace TorchSam2.Torch.Tests;

public class AutogradTests
{
    // Central finite differences in float64 against autograd's gradient of a scalar function.
    private static void CheckGradient(Func<Tensor, Tensor> f, long[] shape, double tol = 1e-6)
    {
        using var scope = NewDisposeScope();
        manual_seed(7);
        var x = randn(shape, ScalarType.Float64).requires_grad_();
        f(x).backward();
        var g = x.grad!.ToArray<double>();
        var x0 = x.detach().ToArray<double>();
        const double h = 1e-6;
        using var _ = no_grad();
        for (int i = 0; i < x0.Length; i++)
        {
            var plus = (double[])x0.Clone();
            var minus = (double[])x0.Clone();
            plus[i] += h;
            minus[i] -= h;
            double fp = f(tensor(plus, shape)).item<double>();
            double fm = f(tensor(minus, shape)).item<double>();
            double numeric = (fp - fm) / (2 * h);
            Assert.True(Math.Abs(numeric - g[i]) < tol * Math.Max(1, Math.Abs(numeric)), $"d/dx[{i}]: autograd {g[i]}, finite difference {numeric}");
        }
    }

    [Fact]
    public void ElementwiseGradientsMatchFiniteDifferences() =>
        CheckGradient(x => (x.sigmoid() * x.sin() + x.pow(2).exp() * 0.1).sum(), [2, 3]);

    [Fact]
    public void MatmulSoftmaxGradientsMatchFiniteDifferences()
    {
        using var w = randn([3, 4], ScalarType.Float64);
        CheckGradient(x => (x.matmul(w).softmax(-1) * arange(0, 4, 1, ScalarType.Float64)).sum(), [2, 3]);
    }

    [Fact]
    public void ConvLayerNormGeluGradientsMatchFiniteDifferences()
    {
        manual_seed(3);
        using var k = randn([2, 1, 3, 3], ScalarType.Float64);
        CheckGradient(x => F.gelu(F.layer_norm(F.conv2d(x, k, padding: 1), [4])).pow(2).mean(), [1, 1, 4, 4]);
    }

    [Fact]
    public void NoGradStopsTracking()
    {
        using var x = ones([2]).requires_grad_();
        using (no_grad())
        {
            using var y = x * 2;
            Assert.False(y.requires_grad);
        }
        using var z = x * 2;
        Assert.True(z.requires_grad);
        using (inference_mode())
        {
            using var w = x * 3;
            Assert.False(w.requires_grad);
        }
    }

    [Fact]
    public void LinearLayerTrainsWithAdamW()
    {
        manual_seed(0);
        using var lin = new nn.Linear(3, 1);
        using var opt = new optim.AdamW(lin.parameters(), lr: 0.05, weight_decay: 0);
        using var x = randn([64, 3]);
        using var target = x.matmul(tensor(new float[] { 1, -2, 0.5f }, [3, 1])) + 0.3;
        double first = 0, last = 0;
        for (int i = 0; i < 300; i++)
        {
            using var scope = NewDisposeScope();
            opt.zero_grad();
            var loss = F.mse_loss(lin.forward(x), target);
            loss.backward();
            opt.step();
            if (i == 0) first = loss.item<double>();
            last = loss.item<double>();
        }
        Assert.True(last < first * 0.01, $"loss {first} -> {last}");
        var w = lin.weight.detach().ToArray<float>();
        Assert.Equal(1f, w[0], 1);
        Assert.Equal(-2f, w[1], 1);
    }

    [Fact]
    public void AdamWFirstStepMatchesHandComputation()
    {
        // One step from p=1 with grad g=2: m̂ = g, v̂ = g², update = lr·g/(|g|+eps) = lr; decay p·(1 − lr·wd).
        using var p = new Parameter(tensor(new float[] { 1f }));
        using var opt = new optim.AdamW([p], lr: 0.1, weight_decay: 0.5);
        using (var loss = p * 2) loss.backward();
        opt.step();
        Assert.Equal(1f * (1 - 0.1f * 0.5f) - 0.1f, p.detach().item<float>(), 5);
    }

    [Fact]
    public void ClipGradNormScalesToMaxNorm()
    {
        using var p = new Parameter(tensor(new float[] { 0, 0 }));
        using (var loss = (p * tensor(new float[] { 3, 4 })).sum()) loss.backward();
        double norm = nn.utils.clip_grad_norm_([p], 1.0);
        Assert.Equal(5.0, norm, 5);
        using var g = p.grad!;
        Assert.Equal(new[] { 0.6f, 0.8f }, g.ToArray<float>().Select(v => MathF.Round(v, 4)).ToArray());
    }
}
