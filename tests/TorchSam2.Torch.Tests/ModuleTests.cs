using TorchSam2.Torch;
using static TorchSam2.Torch.torch;

namespace TorchSam2.Torch.Tests;

public class ModuleTests
{
    private sealed class Block : nn.Module<Tensor, Tensor>
    {
        public readonly nn.Linear proj;
        public readonly nn.LayerNorm norm;
        public readonly Parameter scale;
        public readonly nn.ModuleList<nn.Linear> layers;

        public Block()
        {
            proj = new nn.Linear(4, 4);
            norm = new nn.LayerNorm(4);
            scale = new Parameter(ones([4]));
            layers = new nn.ModuleList<nn.Linear>(new nn.Linear(4, 2), new nn.Linear(2, 4, hasBias: false));
            register_buffer("running", zeros([2]));
            register_buffer("cache", zeros([1]), persistent: false);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => layers[1].forward(layers[0].forward(norm.forward(proj.forward(x)))) * scale;
    }

    [Fact]
    public void StateDictKeysComeFromFieldNames()
    {
        using var b = new Block();
        var keys = b.state_dict().Keys.OrderBy(k => k, StringComparer.Ordinal).ToArray();
        Assert.Equal(new[] { "layers.0.bias", "layers.0.weight", "layers.1.weight", "norm.bias", "norm.weight", "proj.bias", "proj.weight", "running", "scale" }, keys);
        Assert.Equal(4 * 4 + 4 + 4 + 4 + 4 + 4 * 2 + 2 + 2 * 4, b.NumParameters());
    }

    [Fact]
    public void StateDictRoundTripReproducesOutputs()
    {
        manual_seed(1);
        using var a = new Block();
        manual_seed(2);
        using var b = new Block();
        using var x = randn([3, 4]);
        using var ya = a.forward(x);
        using var yb0 = b.forward(x);
        Assert.False(allclose(ya, yb0));
        var sd = a.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value);
        var result = b.load_state_dict(sd);
        Assert.True(result.IsExact);
        using var yb = b.forward(x);
        Assert.Equal(ya.ToArray<float>(), yb.ToArray<float>());
    }

    [Fact]
    public void LoadStateDictNamesMissingUnexpectedAndMisshapedKeys()
    {
        using var a = new Block();
        var sd = a.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value);
        sd.Remove("norm.bias");
        using var extra = zeros([1]);
        sd["bogus.weight"] = extra;
        var ex = Assert.Throws<StateDictException>(() => a.load_state_dict(sd));
        Assert.Contains("norm.bias", ex.Message);
        Assert.Contains("bogus.weight", ex.Message);
        var loose = a.load_state_dict(sd, strict: false);
        Assert.Equal(new[] { "norm.bias" }, loose.Missing);
        using var wrong = zeros([5, 4]);
        sd["proj.weight"] = wrong;
        var ex2 = Assert.Throws<StateDictException>(() => a.load_state_dict(sd, strict: false));
        Assert.Contains("proj.weight: checkpoint [5, 4] vs model [4, 4]", ex2.Message);
    }

    [Fact]
    public void HalfPrecisionWeightsLoadIntoFloatModel()
    {
        using var a = new nn.Linear(2, 2);
        using var w = tensor(new float[] { 0.5f, -1, 2, 0.25f }, [2, 2]).half();
        using var bias = tensor(new float[] { 1, 2 }).bfloat16();
        a.load_state_dict(new Dictionary<string, Tensor> { ["weight"] = w, ["bias"] = bias });
        Assert.Equal(ScalarType.Float32, a.weight.dtype);
        Assert.Equal(new float[] { 0.5f, -1, 2, 0.25f }, a.weight.detach().ToArray<float>());
    }

    [Fact]
    public void TrainEvalPropagatesAndDropoutObeysIt()
    {
        using var d = new nn.Dropout(0.5);
        using var seq = new nn.Sequential(new nn.Identity(), d);
        seq.eval();
        Assert.False(d.training);
        using var x = ones([100]);
        using var y = seq.forward(x);
        Assert.Equal(100f, y.sum().item<float>());
        seq.train();
        Assert.True(d.training);
    }

    [Fact]
    public void ModuleToDtypeKeepsFieldReferences()
    {
        using var a = new nn.Linear(2, 3);
        var w = a.weight;
        a.to(ScalarType.BFloat16);
        Assert.Same(w, a.weight);
        Assert.Equal(ScalarType.BFloat16, a.weight.dtype);
        Assert.True(a.weight.requires_grad);
    }
}
