using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchSam2.Modeling;

// Mirrors sam2/modeling/sam2_utils.py.

/// <summary>A stack of Linear layers with an activation between them (layers.0, layers.1, ...).</summary>
public sealed class MLP : nn.Module<Tensor, Tensor>
{
    public readonly ModuleList<Linear> layers;
    private readonly int _numLayers;
    private readonly bool _sigmoidOutput;
    private readonly Func<Tensor, Tensor> _act;

    public MLP(long input_dim, long hidden_dim, long output_dim, int num_layers, string activation = "relu", bool sigmoid_output = false) : base(nameof(MLP))
    {
        _numLayers = num_layers;
        _sigmoidOutput = sigmoid_output;
        _act = Sam2Utils.GetActivation(activation);
        var dims = new List<long> { input_dim };
        for (int i = 0; i < num_layers - 1; i++) dims.Add(hidden_dim);
        var outs = dims.Skip(1).Append(output_dim).ToList();
        layers = new ModuleList<Linear>((dims.Zip(outs, (n, k) => nn.Linear(n, k))).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        for (int i = 0; i < _numLayers; i++)
            x = i < _numLayers - 1 ? _act(layers[i].forward(x)) : layers[i].forward(x);
        if (_sigmoidOutput) x = x.sigmoid();
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>LayerNorm over the channel dimension of an NCHW tensor.</summary>
public sealed class LayerNorm2d : nn.Module<Tensor, Tensor>
{
    public readonly Parameter weight;
    public readonly Parameter bias;
    private readonly double _eps;

    public LayerNorm2d(long num_channels, double eps = 1e-6) : base(nameof(LayerNorm2d))
    {
        weight = new Parameter(ones([num_channels]));
        bias = new Parameter(zeros([num_channels]));
        _eps = eps;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        // x is N×C×H×W (64 prompts × 64 × 128² in an automatic-mask batch: 268 MB): each full-size temporary is
        // freed once used, so at most three exist at a time, as with Python's refcounting
        Tensor y;
        using (var u = x.mean(new long[] { 1 }, keepdim: true))
        using (var d = x - u)
        {
            Tensor s;
            using (var sq = d.pow(2)) s = sq.mean(new long[] { 1 }, keepdim: true);
            using (s)
            using (var den = (s + _eps).sqrt())
                y = d / den;
        }
        using (y)
        using (var scaled = weight[.., TensorIndex.None, TensorIndex.None] * y)
            return (scaled + bias[.., TensorIndex.None, TensorIndex.None]).MoveToOuterDisposeScope();
    }
}

/// <summary>Stochastic depth: drops whole residual branches per sample while training.</summary>
public sealed class DropPath(double drop_prob = 0.0, bool scale_by_keep = true) : nn.Module<Tensor, Tensor>(nameof(DropPath))
{
    public override Tensor forward(Tensor x)
    {
        if (drop_prob == 0.0 || !training) return x.alias();
        using var scope = NewDisposeScope();
        double keep = 1 - drop_prob;
        var shape = new long[x.dim()];
        Array.Fill(shape, 1L);
        shape[0] = x.size(0);
        var mask = (rand(shape, x.dtype, x.device) < keep).to(x.dtype);
        if (keep > 0 && scale_by_keep) mask = mask / keep;
        return (x * mask).MoveToOuterDisposeScope();
    }
}

public static class Sam2Utils
{
    public static Func<Tensor, Tensor> GetActivation(string name) => name switch
    {
        "relu" => t => t.relu(),
        "gelu" => t => nn.functional.gelu(t),
        _ => throw new ArgumentException($"activation should be relu/gelu, not {name}."),
    };

    /// <summary>1-D sine positional embedding (dim/2 sines then dim/2 cosines), as get_1d_sine_pe.</summary>
    public static Tensor get_1d_sine_pe(Tensor pos_inds, long dim, double temperature = 10000)
    {
        using var scope = NewDisposeScope();
        long peDim = dim / 2;
        var dimT = arange(0, peDim, 1, ScalarType.Float32, pos_inds.device);
        dimT = Pow(temperature, dimT.div(2.0, RoundingMode.floor) * (2.0 / peDim));
        var pe = pos_inds.unsqueeze(-1) / dimT;
        return cat([pe.sin(), pe.cos()], -1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// a.matmul(b) with the shapes checked first: TorchSharp 0.107's THSTensor_matmul (alone among its entry points)
    /// lets libtorch's C++ exception escape, which terminates the process instead of raising an exception.
    /// </summary>
    internal static Tensor MatMul(Tensor a, Tensor b)
    {
        var sa = a.shape;
        var sb = b.shape;
        bool ok = sa.Length >= 1 && sb.Length >= 1 && sa[^1] == (sb.Length == 1 ? sb[0] : sb[^2]);
        for (int i = 3; ok && i <= Math.Min(sa.Length, sb.Length); i++)
            ok = sa[^i] == sb[^i] || sa[^i] == 1 || sb[^i] == 1;
        if (!ok)
            throw new TorchValueException($"matmul: shapes [{string.Join(", ", sa)}] and [{string.Join(", ", sb)}] cannot be multiplied");
        return a.matmul(b);
    }

    /// <summary>temperature ** t, elementwise.</summary>
    internal static Tensor Pow(double @base, Tensor exponent)
    {
        // TorchSharp has no pow(Scalar, Tensor); a 0-dim base tensor takes the exponent's dtype, as pow.Scalar does.
        using var b = tensor(@base, exponent.dtype, exponent.device);
        return b.pow(exponent);
    }

    /// <summary>
    /// Picks at most max_cond_frame_num conditioning frames closest to frame_idx (the nearest
    /// before and after, then the temporally closest others), as select_closest_cond_frames.
    /// </summary>
    public static (SortedDictionary<int, T> selected, SortedDictionary<int, T> unselected) select_closest_cond_frames<T>(int frame_idx, IReadOnlyDictionary<int, T> cond_frame_outputs, int max_cond_frame_num)
    {
        var selected = new SortedDictionary<int, T>();
        var unselected = new SortedDictionary<int, T>();
        if (max_cond_frame_num == -1 || cond_frame_outputs.Count <= max_cond_frame_num)
        {
            foreach (var (k, v) in cond_frame_outputs) selected[k] = v;
            return (selected, unselected);
        }
        if (max_cond_frame_num < 2) throw new ArgumentException("we should allow using 2+ conditioning frames");
        int? before = cond_frame_outputs.Keys.Where(t => t < frame_idx).Select(t => (int?)t).Max();
        if (before is not null) selected[before.Value] = cond_frame_outputs[before.Value];
        int? after = cond_frame_outputs.Keys.Where(t => t >= frame_idx).Select(t => (int?)t).Min();
        if (after is not null) selected[after.Value] = cond_frame_outputs[after.Value];
        int numRemain = max_cond_frame_num - selected.Count;
        foreach (var t in cond_frame_outputs.Keys.Where(t => !selected.ContainsKey(t)).OrderBy(t => Math.Abs(t - frame_idx)).Take(numRemain))
            selected[t] = cond_frame_outputs[t];
        foreach (var (k, v) in cond_frame_outputs)
            if (!selected.ContainsKey(k)) unselected[k] = v;
        return (selected, unselected);
    }
}
