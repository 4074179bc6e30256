using TorchSam2.Modeling.Sam;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchSam2.Modeling;

// Mirrors sam2/modeling/memory_attention.py.

/// <summary>
/// One memory-attention block (pre-norm): self-attention over the current frame's tokens,
/// cross-attention to the memory tokens, then a feed-forward MLP, each with a residual.
/// Inputs are batch-first (B × L × C).
/// </summary>
public sealed class MemoryAttentionLayer : nn.Module
{
    public readonly Attention self_attn;
    public readonly Attention cross_attn_image;
    public readonly Linear linear1;
    public readonly Dropout dropout;
    public readonly Linear linear2;
    public readonly LayerNorm norm1;
    public readonly LayerNorm norm2;
    public readonly LayerNorm norm3;
    public readonly Dropout dropout1;
    public readonly Dropout dropout2;
    public readonly Dropout dropout3;

    private readonly Func<Tensor, Tensor> _activation;

    public long d_model { get; }
    public long dim_feedforward { get; }
    public double dropout_value { get; }
    public string activation_str { get; }
    public bool pos_enc_at_attn { get; }
    public bool pos_enc_at_cross_attn_queries { get; }
    public bool pos_enc_at_cross_attn_keys { get; }

    public MemoryAttentionLayer(string activation, Attention cross_attention, long d_model, long dim_feedforward, double dropout,
        bool pos_enc_at_attn, bool pos_enc_at_cross_attn_keys, bool pos_enc_at_cross_attn_queries, Attention self_attention) : base(nameof(MemoryAttentionLayer))
    {
        this.d_model = d_model;
        this.dim_feedforward = dim_feedforward;
        dropout_value = dropout;
        self_attn = self_attention;
        cross_attn_image = cross_attention;

        linear1 = nn.Linear(d_model, dim_feedforward);
        this.dropout = nn.Dropout(dropout);
        linear2 = nn.Linear(dim_feedforward, d_model);

        norm1 = nn.LayerNorm(d_model);
        norm2 = nn.LayerNorm(d_model);
        norm3 = nn.LayerNorm(d_model);
        dropout1 = nn.Dropout(dropout);
        dropout2 = nn.Dropout(dropout);
        dropout3 = nn.Dropout(dropout);

        activation_str = activation;
        _activation = Sam2Utils.GetActivation(activation);

        this.pos_enc_at_attn = pos_enc_at_attn;
        this.pos_enc_at_cross_attn_queries = pos_enc_at_cross_attn_queries;
        this.pos_enc_at_cross_attn_keys = pos_enc_at_cross_attn_keys;
        RegisterComponents();
    }

    // x + pos when the flag asks for it and a position encoding was given.
    private static Tensor WithPos(Tensor x, Tensor? pos, bool add) => add && pos is not null ? x + pos : x;

    private Tensor ForwardSelfAttention(Tensor tgt, Tensor? query_pos)
    {
        var tgt2 = norm1.forward(tgt);
        var qk = WithPos(tgt2, query_pos, pos_enc_at_attn);
        tgt2 = self_attn.forward(qk, qk, tgt2);
        return tgt + dropout1.forward(tgt2);
    }

    private Tensor ForwardCrossAttention(Tensor tgt, Tensor memory, Tensor? query_pos, Tensor? pos, long num_k_exclude_rope)
    {
        var tgt2 = norm2.forward(tgt);
        var q = WithPos(tgt2, query_pos, pos_enc_at_cross_attn_queries);
        var k = WithPos(memory, pos, pos_enc_at_cross_attn_keys);
        if (num_k_exclude_rope > 0)
        {
            if (cross_attn_image is not RoPEAttention rope)
                throw new InvalidOperationException("num_k_exclude_rope needs a RoPEAttention cross-attention");
            tgt2 = rope.forward(q, k, memory, num_k_exclude_rope);
        }
        else tgt2 = cross_attn_image.forward(q, k, memory);
        return tgt + dropout2.forward(tgt2);
    }

    /// <summary>tgt: B × L × C current tokens; memory: B × M × kv_in_dim; pos / query_pos: their encodings.</summary>
    public Tensor forward(Tensor tgt, Tensor memory, Tensor? pos = null, Tensor? query_pos = null, long num_k_exclude_rope = 0)
    {
        using var scope = NewDisposeScope();
        var x = ForwardSelfAttention(tgt, query_pos);
        x = ForwardCrossAttention(x, memory, query_pos, pos, num_k_exclude_rope);
        var tgt2 = norm3.forward(x);
        tgt2 = linear2.forward(dropout.forward(_activation(linear1.forward(tgt2))));
        x = x + dropout3.forward(tgt2);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Stack of <see cref="MemoryAttentionLayer"/>s that conditions the current frame's features on
/// past memories, followed by a LayerNorm. Inputs and output are sequence-first (L × B × C).
/// </summary>
public sealed class MemoryAttention : nn.Module
{
    public readonly ModuleList<MemoryAttentionLayer> layers;
    public readonly LayerNorm norm;

    public long d_model { get; }
    public int num_layers { get; }
    public bool pos_enc_at_input { get; }
    public bool batch_first { get; }

    /// <param name="layer">Builds one layer; called num_layers times (the reference deep-copies one layer).</param>
    public MemoryAttention(long d_model, bool pos_enc_at_input, Func<MemoryAttentionLayer> layer, int num_layers, bool batch_first = true) : base(nameof(MemoryAttention))
    {
        this.d_model = d_model;
        layers = new ModuleList<MemoryAttentionLayer>((Enumerable.Range(0, num_layers).Select(_ => layer())).ToArray());
        this.num_layers = num_layers;
        norm = nn.LayerNorm(d_model);
        this.pos_enc_at_input = pos_enc_at_input;
        this.batch_first = batch_first;
        RegisterComponents();
    }

    /// <summary>
    /// curr: L × B × C tokens of the current frame; memory: M × B × C_mem memory tokens (the last
    /// num_obj_ptr_tokens of them are object pointers, which get no RoPE); curr_pos, memory_pos: their
    /// position encodings. Returns L × B × C.
    /// </summary>
    public Tensor forward(Tensor curr, Tensor memory, Tensor? curr_pos = null, Tensor? memory_pos = null, long num_obj_ptr_tokens = 0)
    {
        if (curr.size(1) != memory.size(1)) throw new ArgumentException("Batch size must be the same for curr and memory");
        using var scope = NewDisposeScope();

        var output = curr;
        if (pos_enc_at_input && curr_pos is not null) output = output + 0.1 * curr_pos;

        if (batch_first)
        {
            output = output.transpose(0, 1);
            curr_pos = curr_pos?.transpose(0, 1);
            memory = memory.transpose(0, 1);
            memory_pos = memory_pos?.transpose(0, 1);
        }

        foreach (var layer in layers)
        {
            long exclude = layer.cross_attn_image is RoPEAttention ? num_obj_ptr_tokens : 0;
            output = layer.forward(output, memory, memory_pos, curr_pos, exclude);
        }
        var normed = norm.forward(output);
        if (batch_first) normed = normed.transpose(0, 1);
        return normed.MoveToOuterDisposeScope();
    }

    /// <summary>The list form of the reference (a single level per list).</summary>
    public Tensor forward(IReadOnlyList<Tensor> curr, Tensor memory, IReadOnlyList<Tensor> curr_pos, Tensor? memory_pos = null, long num_obj_ptr_tokens = 0)
    {
        if (curr.Count != 1 || curr_pos.Count != 1) throw new ArgumentException("expected exactly one level in curr and curr_pos");
        return forward(curr[0], memory, curr_pos[0], memory_pos, num_obj_ptr_tokens);
    }
}
