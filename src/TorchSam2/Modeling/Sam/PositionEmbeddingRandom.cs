using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchSam2.Modeling.Sam;

// Mirrors PositionEmbeddingRandom in sam2/modeling/position_encoding.py.

/// <summary>Positional encoding of 2-D coordinates with random (Gaussian) spatial frequencies.</summary>
public sealed class PositionEmbeddingRandom : nn.Module
{
    public long num_pos_feats { get; }

    /// <summary>The 2 × num_pos_feats frequency matrix (a persistent buffer, loaded from checkpoints).</summary>
    public Tensor positional_encoding_gaussian_matrix => _gaussian;

    // Same object as the registered buffer (module moves replace its handle in place).
    private readonly Tensor _gaussian;

    public PositionEmbeddingRandom(long num_pos_feats = 64, double? scale = null) : base(nameof(PositionEmbeddingRandom))
    {
        this.num_pos_feats = num_pos_feats;
        double s = scale is null || scale <= 0.0 ? 1.0 : scale.Value;
        using var g = randn([2, num_pos_feats]);
        _gaussian = g * s;
        register_buffer("positional_encoding_gaussian_matrix", _gaussian);
        RegisterComponents();
    }

    /// <summary>Encodes coordinates normalized to [0,1] (shape ... × 2) into ... × 2·num_pos_feats (sines then cosines).</summary>
    private Tensor PeEncoding(Tensor coords)
    {
        using var scope = NewDisposeScope();
        var c = coords * 2.0 - 1.0;
        c = Sam2Utils.MatMul(c, positional_encoding_gaussian_matrix);
        c = c * (2.0 * Math.PI);
        return cat([c.sin(), c.cos()], -1).MoveToOuterDisposeScope();
    }

    /// <summary>Encoding of the centers of an h × w grid; returns C × H × W.</summary>
    public Tensor forward((long h, long w) size)
    {
        using var scope = NewDisposeScope();
        var (h, w) = size;
        var grid = ones([h, w], ScalarType.Float32, positional_encoding_gaussian_matrix.device);
        var y_embed = (grid.cumsum(0) - 0.5) / h;
        var x_embed = (grid.cumsum(1) - 0.5) / w;
        var pe = PeEncoding(stack([x_embed, y_embed], -1));
        return pe.permute(2, 0, 1).MoveToOuterDisposeScope();
    }

    /// <summary>Encodes pixel coordinates (B × N × 2, x then y) of an image of size (H, W); returns B × N × C.</summary>
    public Tensor forward_with_coords(Tensor coords_input, (long h, long w) image_size)
    {
        using var scope = NewDisposeScope();
        // x is divided by the width, y by the height (out of place so gradients can flow).
        var x = coords_input.narrow(-1, 0, 1) / image_size.w;
        var y = coords_input.narrow(-1, 1, 1) / image_size.h;
        var coords = cat([x, y], -1).to(ScalarType.Float32);
        return PeEncoding(coords).MoveToOuterDisposeScope();
    }
}
