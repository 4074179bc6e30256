using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchSam2.Checkpoints.Tests;

// What TorchSharp's own load_state_dict does not do: check shapes, name keys, convert dtypes, write nothing on failure.
public class StateDictLoadingTests
{
    private sealed class Block : nn.Module<Tensor, Tensor>
    {
        public readonly Linear proj;
        public readonly LayerNorm norm;
        public readonly Parameter scale;
        public readonly ModuleList<Linear> layers;

        public Block() : base(nameof(Block))
        {
            proj = nn.Linear(4, 4);
            norm = nn.LayerNorm(4);
            scale = new Parameter(ones(4));
            layers = new ModuleList<Linear>(nn.Linear(4, 2), nn.Linear(2, 4, hasBias: false));
            register_buffer("running", zeros(2));
            register_buffer("cache", zeros(1), persistent: false);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => layers[1].forward(layers[0].forward(norm.forward(proj.forward(x)))) * scale;
    }

    [Fact]
    public void StateDictKeysComeFromFieldNamesAndSkipNonPersistentBuffers()
    {
        using var b = new Block();
        var keys = b.state_dict().Keys.OrderBy(k => k, StringComparer.Ordinal).ToArray();
        Assert.Equal(new[] { "layers.0.bias", "layers.0.weight", "layers.1.weight", "norm.bias", "norm.weight", "proj.bias", "proj.weight", "running", "scale" }, keys);
    }

    [Fact]
    public void RoundTripReproducesOutputs()
    {
        manual_seed(1);
        using var a = new Block();
        manual_seed(2);
        using var b = new Block();
        using var x = randn(3, 4);
        using var ya = a.forward(x);
        using var yb0 = b.forward(x);
        Assert.False(allclose(ya, yb0));
        var sd = a.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.True(b.load_state_dict_checked(sd).IsExact);
        using var yb = b.forward(x);
        Assert.Equal(ya.ToArray<float>(), yb.ToArray<float>());
    }

    [Fact]
    public void NamesMissingUnexpectedAndMisshapedKeysAndWritesNothing()
    {
        using var a = new Block();
        using var before = a.proj.weight!.detach().clone();
        var sd = a.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone() + 1);
        sd.Remove("norm.bias");
        sd["bogus.weight"] = zeros(1);
        var ex = Assert.Throws<StateDictException>(() => a.load_state_dict_checked(sd));
        Assert.Contains("norm.bias", ex.Message);
        Assert.Contains("bogus.weight", ex.Message);
        Assert.Equal(before.ToArray<float>(), a.proj.weight!.detach().ToArray<float>()); // nothing written before the check failed
        var loose = a.load_state_dict_checked(sd, strict: false);
        Assert.Equal(new[] { "norm.bias" }, loose.Missing);
        // TorchSharp's own load_state_dict would broadcast a [1, 4] tensor into the [4, 4] weight.
        sd["proj.weight"] = zeros(1, 4);
        var ex2 = Assert.Throws<StateDictException>(() => a.load_state_dict_checked(sd, strict: false));
        Assert.Contains("proj.weight: checkpoint [1, 4] vs model [4, 4]", ex2.Message);
    }

    [Fact]
    public void HalfAndBFloat16WeightsLoadIntoFloatModel()
    {
        using var a = nn.Linear(2, 2);
        using var w = tensor(new float[] { 0.5f, -1, 2, 0.25f }, new long[] { 2, 2 }).half();
        using var bias = tensor(new float[] { 1, 2 }).bfloat16();
        a.load_state_dict_checked(new Dictionary<string, Tensor> { ["weight"] = w, ["bias"] = bias });
        Assert.Equal(ScalarType.Float32, a.weight!.dtype);
        Assert.Equal(new float[] { 0.5f, -1, 2, 0.25f }, a.weight.detach().ToArray<float>());
        Assert.Equal(new float[] { 1, 2 }, a.bias!.detach().ToArray<float>());
    }

    [Fact]
    public void StreamsACheckpointIntoParametersInPlace()
    {
        using var a = new Block();
        var path = Path.Combine(Path.GetTempPath(), $"ts2-sd-{Guid.NewGuid():N}.safetensors");
        try
        {
            var records = a.state_dict().ToDictionary(kv => kv.Key, kv =>
            {
                using var c = (kv.Value.detach() * 2).contiguous();
                return new TensorRecord(c.dtype, c.shape, c.ToBytes());
            });
            SafeTensors.Write(path, records);
            using var b = new Block();
            var weight = b.proj.weight!;
            using (var reader = CheckpointReader.Open(path)) Assert.True(b.load_state_dict(reader).IsExact);
            Assert.Same(weight, b.proj.weight); // read straight into the parameter's memory
            using var expected = a.proj.weight!.detach() * 2;
            Assert.Equal(expected.ToArray<float>(), b.proj.weight!.detach().ToArray<float>());
        }
        finally
        {
            File.Delete(path);
        }
    }
}
