using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchSam2.Modeling;

// Mirrors sam2/modeling/position_encoding.py (PositionEmbeddingSine; the random-Fourier
// encoding and RoPE live beside the prompt encoder and memory attention that use them).

/// <summary>2-D sine/cosine position encoding of a feature map (DETR style), cached per size.</summary>
public sealed class PositionEmbeddingSine : nn.Module<Tensor, Tensor>
{
    private readonly long _numPosFeats;
    private readonly double _temperature;
    private readonly bool _normalize;
    private readonly double _scale;
    // Keyed by device type and index: TorchSharp devices have no value equality.
    private readonly Dictionary<(long, long, DeviceType, int), Tensor> _cache = new();

    public PositionEmbeddingSine(long num_pos_feats, double temperature = 10000, bool normalize = true, double? scale = null) : base(nameof(PositionEmbeddingSine))
    {
        if (num_pos_feats % 2 != 0) throw new ArgumentException("Expecting even model width");
        if (scale is not null && !normalize) throw new ArgumentException("normalize should be True if scale is passed");
        _numPosFeats = num_pos_feats / 2;
        _temperature = temperature;
        _normalize = normalize;
        _scale = scale ?? 2 * Math.PI;
    }

    /// <summary>Encoding for x's spatial size: B × num_pos_feats × H × W.</summary>
    public override Tensor forward(Tensor x)
    {
        long b = x.size(0), h = x.size(-2), w = x.size(-1);
        var device = x.device;
        var key = (h, w, device.type, device.index);
        if (!_cache.TryGetValue(key, out var pe))
        {
            pe = Compute(h, w, device);
            _cache[key] = pe;
        }
        using var scope = NewDisposeScope();
        return pe[TensorIndex.None].repeat(b, 1, 1, 1).MoveToOuterDisposeScope();
    }

    private Tensor Compute(long h, long w, Device device)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var yEmbed = arange(1, h + 1, 1, ScalarType.Float32, device).view(-1, 1).repeat(1, w);
        var xEmbed = arange(1, w + 1, 1, ScalarType.Float32, device).view(1, -1).repeat(h, 1);
        if (_normalize)
        {
            const double eps = 1e-6;
            yEmbed = yEmbed / (yEmbed[^1.., ..] + eps) * _scale;
            xEmbed = xEmbed / (xEmbed[.., ^1..] + eps) * _scale;
        }
        var dimT = arange(0, _numPosFeats, 1, ScalarType.Float32, device);
        dimT = Sam2Utils.Pow(_temperature, dimT.div(2.0, RoundingMode.floor) * (2.0 / _numPosFeats));
        var posX = xEmbed.unsqueeze(-1) / dimT;
        var posY = yEmbed.unsqueeze(-1) / dimT;
        posX = stack([posX[.., .., TensorIndex.Slice(0, null, 2)].sin(), posX[.., .., TensorIndex.Slice(1, null, 2)].cos()], 3).flatten(2);
        posY = stack([posY[.., .., TensorIndex.Slice(0, null, 2)].sin(), posY[.., .., TensorIndex.Slice(1, null, 2)].cos()], 3).flatten(2);
        var pos = cat([posY, posX], 2).permute(2, 0, 1).contiguous();
        return pos.DetachFromDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        foreach (var t in _cache.Values) t.Dispose();
        _cache.Clear();
        base.Dispose(disposing);
    }
}
