using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchSam2.Modeling.Sam;

// Mirrors PromptEncoder in sam2/modeling/sam/prompt_encoder.py.

/// <summary>
/// Encodes point, box and mask prompts for the mask decoder: sparse embeddings (B × N × embed_dim)
/// for points and box corners, dense embeddings (B × embed_dim × H × W) for masks.
/// </summary>
public sealed class PromptEncoder : nn.Module
{
    public readonly PositionEmbeddingRandom pe_layer;
    /// <summary>Negative point, positive point, box top-left, box bottom-right.</summary>
    public readonly ModuleList<Embedding> point_embeddings;
    public readonly Embedding not_a_point_embed;
    public readonly Sequential mask_downscaling;
    public readonly Embedding no_mask_embed;

    public long embed_dim { get; }
    public (long h, long w) input_image_size { get; }
    public (long h, long w) image_embedding_size { get; }
    public int num_point_embeddings { get; } = 4;
    public (long h, long w) mask_input_size { get; }

    /// <param name="activation">Factory for the activation used in mask downscaling (GELU by default).</param>
    public PromptEncoder(
        long embed_dim,
        (long h, long w) image_embedding_size,
        (long h, long w) input_image_size,
        long mask_in_chans,
        Func<nn.Module<Tensor, Tensor>>? activation = null) : base(nameof(PromptEncoder))
    {
        activation ??= () => nn.GELU();
        this.embed_dim = embed_dim;
        this.input_image_size = input_image_size;
        this.image_embedding_size = image_embedding_size;
        pe_layer = new PositionEmbeddingRandom(embed_dim / 2);

        point_embeddings = new ModuleList<Embedding>((Enumerable.Range(0, num_point_embeddings).Select(_ => nn.Embedding(1, embed_dim))).ToArray());
        not_a_point_embed = nn.Embedding(1, embed_dim);

        mask_input_size = (4 * image_embedding_size.h, 4 * image_embedding_size.w);
        mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans / 4, kernel_size: 2, stride: 2),
            new LayerNorm2d(mask_in_chans / 4),
            activation(),
            nn.Conv2d(mask_in_chans / 4, mask_in_chans, kernel_size: 2, stride: 2),
            new LayerNorm2d(mask_in_chans),
            activation(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size: 1));
        no_mask_embed = nn.Embedding(1, embed_dim);
        RegisterComponents();
    }

    /// <summary>Positional encoding of the image-embedding grid: 1 × embed_dim × H × W.</summary>
    public Tensor get_dense_pe()
    {
        using var pe = pe_layer.forward(image_embedding_size);
        return pe.unsqueeze(0);
    }

    /// <summary>Point prompts (B × N × 2 pixel coords, B × N labels) → B × N(+1) × embed_dim.</summary>
    private Tensor _embed_points(Tensor points, Tensor labels, bool pad)
    {
        using var scope = NewDisposeScope();
        points = points + 0.5; // pixel centers
        if (pad)
        {
            // An extra "not a point" entry stands in for the missing box.
            var padding_point = zeros([points.size(0), 1, 2], points.dtype, points.device);
            var padding_label = full([labels.size(0), 1], -1.0, labels.dtype, labels.device);
            points = cat([points, padding_point], 1);
            labels = cat([labels, padding_label], 1);
        }
        var point_embedding = pe_layer.forward_with_coords(points, input_image_size);

        point_embedding = where(labels.eq(-1).unsqueeze(-1), zeros_like(point_embedding) + not_a_point_embed.weight, point_embedding);
        for (int i = 0; i < num_point_embeddings; i++)
            point_embedding = where(labels.eq(i).unsqueeze(-1), point_embedding + point_embeddings[i].weight, point_embedding);
        return point_embedding.MoveToOuterDisposeScope();
    }

    /// <summary>Boxes (B × 4 as x0 y0 x1 y1 pixels) → B × 2 × embed_dim corner embeddings.</summary>
    private Tensor _embed_boxes(Tensor boxes)
    {
        using var scope = NewDisposeScope();
        var coords = (boxes + 0.5).reshape(-1, 2, 2);
        var corner_embedding = pe_layer.forward_with_coords(coords, input_image_size);
        // Add the corner-type embeddings out of place (1 × 2 × C broadcast over the batch).
        var corner_types = cat([point_embeddings[2].weight, point_embeddings[3].weight], 0).unsqueeze(0);
        return (corner_embedding + corner_types).MoveToOuterDisposeScope();
    }

    /// <summary>Mask prompts (B × 1 × 4H × 4W) → B × embed_dim × H × W.</summary>
    private Tensor _embed_masks(Tensor masks) => mask_downscaling.forward(masks);

    private static long GetBatchSize((Tensor coords, Tensor labels)? points, Tensor? boxes, Tensor? masks)
    {
        if (points is { } p) return p.coords.size(0);
        if (boxes is not null) return boxes.size(0);
        if (masks is not null) return masks.size(0);
        return 1;
    }

    private Device GetDevice() => point_embeddings[0].weight.device;

    /// <summary>
    /// Embeds the prompts. Returns sparse embeddings (B × N × embed_dim; N from points and boxes, with a
    /// padding point when points come without a box) and dense embeddings (B × embed_dim × H × W).
    /// </summary>
    public (Tensor sparse_embeddings, Tensor dense_embeddings) forward((Tensor coords, Tensor labels)? points, Tensor? boxes, Tensor? masks)
    {
        using var scope = NewDisposeScope();
        long bs = GetBatchSize(points, boxes, masks);
        var sparse_embeddings = empty([bs, 0, embed_dim], ScalarType.Float32, GetDevice());
        if (points is { } p)
        {
            var point_emb = _embed_points(p.coords, p.labels, pad: boxes is null);
            sparse_embeddings = cat([sparse_embeddings, point_emb], 1);
        }
        if (boxes is not null)
        {
            var box_emb = _embed_boxes(boxes);
            sparse_embeddings = cat([sparse_embeddings, box_emb], 1);
        }

        Tensor dense_embeddings = masks is not null
            ? _embed_masks(masks)
            : no_mask_embed.weight.reshape(1, -1, 1, 1).expand(bs, -1, image_embedding_size.h, image_embedding_size.w);

        return (sparse_embeddings.MoveToOuterDisposeScope(), dense_embeddings.MoveToOuterDisposeScope());
    }
}
