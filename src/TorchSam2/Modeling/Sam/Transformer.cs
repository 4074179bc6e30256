using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchSam2.Modeling.Sam;

// Mirrors TwoWayTransformer and TwoWayAttentionBlock in sam2/modeling/sam/transformer.py
// (Attention is in Attention.cs).

/// <summary>
/// Decoder that lets prompt tokens attend to the image embedding and the image embedding attend
/// back to the tokens, with positional encodings added at each attention.
/// </summary>
public sealed class TwoWayTransformer : nn.Module
{
    public readonly ModuleList<TwoWayAttentionBlock> layers;
    public readonly Attention final_attn_token_to_image;
    public readonly LayerNorm norm_final_attn;

    public int depth { get; }
    public long embedding_dim { get; }
    public long num_heads { get; }
    public long mlp_dim { get; }

    /// <param name="activation">MLP activation name ("relu" or "gelu").</param>
    public TwoWayTransformer(int depth, long embedding_dim, long num_heads, long mlp_dim, string activation = "relu", long attention_downsample_rate = 2) : base(nameof(TwoWayTransformer))
    {
        this.depth = depth;
        this.embedding_dim = embedding_dim;
        this.num_heads = num_heads;
        this.mlp_dim = mlp_dim;
        layers = new ModuleList<TwoWayAttentionBlock>();
        for (int i = 0; i < depth; i++)
            layers.append(new TwoWayAttentionBlock(
                embedding_dim: embedding_dim,
                num_heads: num_heads,
                mlp_dim: mlp_dim,
                activation: activation,
                attention_downsample_rate: attention_downsample_rate,
                skip_first_layer_pe: i == 0));
        final_attn_token_to_image = new Attention(embedding_dim, num_heads, downsample_rate: attention_downsample_rate);
        norm_final_attn = nn.LayerNorm(embedding_dim);
        RegisterComponents();
    }

    /// <param name="image_embedding">B × C × H × W image features.</param>
    /// <param name="image_pe">Positional encoding of the same shape.</param>
    /// <param name="point_embedding">B × N × C query tokens.</param>
    /// <returns>The processed tokens (B × N × C) and image features (B × HW × C).</returns>
    public (Tensor queries, Tensor keys) forward(Tensor image_embedding, Tensor image_pe, Tensor point_embedding)
    {
        using var scope = NewDisposeScope();
        // B × C × H × W → B × HW × C
        var img = image_embedding.flatten(2).permute(0, 2, 1);
        var pe = image_pe.flatten(2).permute(0, 2, 1);

        Tensor queries = point_embedding, keys = img;
        foreach (var layer in layers)
        {
            var previous = keys;
            (queries, keys) = layer.forward(queries: queries, keys: keys, query_pe: point_embedding, key_pe: pe);
            previous.Dispose(); // B × HW × C per prompt: free it now, as Python's refcounting would
        }

        // Final attention from the tokens to the image.
        var q = queries + point_embedding;
        Tensor attn_out;
        using (var k = keys + pe)
            attn_out = final_attn_token_to_image.forward(q, k, keys);
        queries = norm_final_attn.forward(queries + attn_out);

        return (queries.MoveToOuterDisposeScope(), keys.MoveToOuterDisposeScope());
    }
}

/// <summary>
/// One two-way block: token self-attention, token→image cross-attention, token MLP, then
/// image→token cross-attention, each followed by a residual add and LayerNorm.
/// </summary>
public sealed class TwoWayAttentionBlock : nn.Module
{
    public readonly Attention self_attn;
    public readonly LayerNorm norm1;
    public readonly Attention cross_attn_token_to_image;
    public readonly LayerNorm norm2;
    public readonly MLP mlp;
    public readonly LayerNorm norm3;
    public readonly LayerNorm norm4;
    public readonly Attention cross_attn_image_to_token;

    public bool skip_first_layer_pe { get; }

    public TwoWayAttentionBlock(long embedding_dim, long num_heads, long mlp_dim = 2048, string activation = "relu", long attention_downsample_rate = 2, bool skip_first_layer_pe = false) : base(nameof(TwoWayAttentionBlock))
    {
        self_attn = new Attention(embedding_dim, num_heads);
        norm1 = nn.LayerNorm(embedding_dim);
        cross_attn_token_to_image = new Attention(embedding_dim, num_heads, downsample_rate: attention_downsample_rate);
        norm2 = nn.LayerNorm(embedding_dim);
        mlp = new MLP(embedding_dim, mlp_dim, embedding_dim, num_layers: 2, activation: activation);
        norm3 = nn.LayerNorm(embedding_dim);
        norm4 = nn.LayerNorm(embedding_dim);
        cross_attn_image_to_token = new Attention(embedding_dim, num_heads, downsample_rate: attention_downsample_rate);
        this.skip_first_layer_pe = skip_first_layer_pe;
        RegisterComponents();
    }

    public (Tensor queries, Tensor keys) forward(Tensor queries, Tensor keys, Tensor query_pe, Tensor key_pe)
    {
        using var scope = NewDisposeScope();
        // Self-attention; the first block has no residual and no positional encoding here.
        if (skip_first_layer_pe)
        {
            queries = self_attn.forward(queries, queries, queries);
        }
        else
        {
            var qs = queries + query_pe;
            queries = queries + self_attn.forward(qs, qs, queries);
        }
        queries = norm1.forward(queries);

        // Tokens attend to the image. keys + key_pe serves both cross attentions (upstream adds it twice; keys
        // do not change in between) and is freed after the second.
        var q = queries + query_pe;
        using var k = keys + key_pe;
        queries = norm2.forward(queries + cross_attn_token_to_image.forward(q, k, keys));

        queries = norm3.forward(queries + mlp.forward(queries));

        // The image attends to the tokens.
        q = queries + query_pe;
        // the residual is added into the attention output in place (our own temporary; out_proj's backward does
        // not read it), which saves one image-sized tensor at the decoder's peak
        using (var attended = cross_attn_image_to_token.forward(k, q, queries))
            keys = norm4.forward(attended.add_(keys));

        return (queries.MoveToOuterDisposeScope(), keys.MoveToOuterDisposeScope());
    }
}
