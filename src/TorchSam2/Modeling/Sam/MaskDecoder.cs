using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchSam2.Modeling.Sam;

// Mirrors MaskDecoder in sam2/modeling/sam/mask_decoder.py.

/// <summary>
/// Predicts masks from image and prompt embeddings with a two-way transformer, plus IoU (mask quality)
/// predictions, the SAM output tokens (used for object pointers) and object-score logits.
/// </summary>
public sealed class MaskDecoder : nn.Module
{
    public readonly TwoWayTransformer transformer;
    public readonly Embedding iou_token;
    public readonly Embedding mask_tokens;
    public readonly Embedding? obj_score_token;
    /// <summary>ConvTranspose2d, LayerNorm2d, act, ConvTranspose2d, act (keys 0, 1, 3).</summary>
    public readonly Sequential output_upscaling;
    public readonly Conv2d? conv_s0;
    public readonly Conv2d? conv_s1;
    public readonly ModuleList<MLP> output_hypernetworks_mlps;
    public readonly MLP iou_prediction_head;
    /// <summary>Linear, or an MLP when pred_obj_scores_mlp; null without pred_obj_scores.</summary>
    public readonly nn.Module<Tensor, Tensor>? pred_obj_score_head;

    public long transformer_dim { get; }
    public int num_multimask_outputs { get; }
    public int num_mask_tokens { get; }
    public bool pred_obj_scores { get; }
    public bool use_multimask_token_for_obj_ptr { get; }
    public bool use_high_res_features { get; }
    public bool dynamic_multimask_via_stability { get; }
    public double dynamic_multimask_stability_delta { get; }
    public double dynamic_multimask_stability_thresh { get; }

    /// <param name="activation">Factory for the upscaling activation (GELU by default).</param>
    public MaskDecoder(
        long transformer_dim,
        TwoWayTransformer transformer,
        int num_multimask_outputs = 3,
        Func<nn.Module<Tensor, Tensor>>? activation = null,
        int iou_head_depth = 3,
        long iou_head_hidden_dim = 256,
        bool use_high_res_features = false,
        bool iou_prediction_use_sigmoid = false,
        bool dynamic_multimask_via_stability = false,
        double dynamic_multimask_stability_delta = 0.05,
        double dynamic_multimask_stability_thresh = 0.98,
        bool pred_obj_scores = false,
        bool pred_obj_scores_mlp = false,
        bool use_multimask_token_for_obj_ptr = false) : base(nameof(MaskDecoder))
    {
        activation ??= () => nn.GELU();
        this.transformer_dim = transformer_dim;
        this.transformer = transformer;
        this.num_multimask_outputs = num_multimask_outputs;

        iou_token = nn.Embedding(1, transformer_dim);
        num_mask_tokens = num_multimask_outputs + 1;
        mask_tokens = nn.Embedding(num_mask_tokens, transformer_dim);

        this.pred_obj_scores = pred_obj_scores;
        if (pred_obj_scores) obj_score_token = nn.Embedding(1, transformer_dim);
        this.use_multimask_token_for_obj_ptr = use_multimask_token_for_obj_ptr;

        output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim / 4, kernel_size: 2, stride: 2),
            new LayerNorm2d(transformer_dim / 4),
            activation(),
            nn.ConvTranspose2d(transformer_dim / 4, transformer_dim / 8, kernel_size: 2, stride: 2),
            activation());
        this.use_high_res_features = use_high_res_features;
        if (use_high_res_features)
        {
            conv_s0 = nn.Conv2d(transformer_dim, transformer_dim / 8, kernel_size: 1, stride: 1);
            conv_s1 = nn.Conv2d(transformer_dim, transformer_dim / 4, kernel_size: 1, stride: 1);
        }

        output_hypernetworks_mlps = new ModuleList<MLP>(
            Enumerable.Range(0, num_mask_tokens).Select(_ => new MLP(transformer_dim, transformer_dim, transformer_dim / 8, 3)).ToArray());

        iou_prediction_head = new MLP(transformer_dim, iou_head_hidden_dim, num_mask_tokens, iou_head_depth, sigmoid_output: iou_prediction_use_sigmoid);
        if (pred_obj_scores)
            pred_obj_score_head = pred_obj_scores_mlp
                ? new MLP(transformer_dim, transformer_dim, 1, 3)
                : nn.Linear(transformer_dim, 1);

        // With a single mask requested, fall back to the best multimask output when the
        // single-mask token's output is unstable.
        this.dynamic_multimask_via_stability = dynamic_multimask_via_stability;
        this.dynamic_multimask_stability_delta = dynamic_multimask_stability_delta;
        this.dynamic_multimask_stability_thresh = dynamic_multimask_stability_thresh;
        RegisterComponents();
    }

    /// <summary>
    /// Predicts masks from image and prompt embeddings.
    /// </summary>
    /// <param name="image_embeddings">B × C × H × W (or 1 × C × H × W with repeat_image).</param>
    /// <param name="image_pe">1 × C × H × W positional encoding (from get_dense_pe).</param>
    /// <param name="sparse_prompt_embeddings">B × N × C point/box embeddings.</param>
    /// <param name="dense_prompt_embeddings">B × C × H × W mask embeddings.</param>
    /// <param name="multimask_output">Return the 3 multimask outputs instead of one mask.</param>
    /// <param name="repeat_image">Repeat the image embeddings once per prompt.</param>
    /// <param name="high_res_features">[feat_s0 (C/8, 4H × 4W), feat_s1 (C/4, 2H × 2W)] when use_high_res_features.</param>
    /// <returns>masks (B × M × 4H × 4W logits), iou_pred (B × M), sam_tokens_out (B × 1|3 × C), object_score_logits (B × 1).</returns>
    public (Tensor masks, Tensor iou_pred, Tensor sam_tokens_out, Tensor object_score_logits) forward(
        Tensor image_embeddings,
        Tensor image_pe,
        Tensor sparse_prompt_embeddings,
        Tensor dense_prompt_embeddings,
        bool multimask_output,
        bool repeat_image,
        IReadOnlyList<Tensor>? high_res_features = null)
    {
        using var scope = NewDisposeScope();
        var (masks, iou_pred, mask_tokens_out, object_score_logits) = predict_masks(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings, repeat_image, high_res_features);

        // Pick the output mask(s).
        if (multimask_output)
        {
            masks = masks.slice(1, 1, long.MaxValue, 1);
            iou_pred = iou_pred.slice(1, 1, long.MaxValue, 1);
        }
        else if (dynamic_multimask_via_stability && !training)
        {
            (masks, iou_pred) = _dynamic_multimask_via_stability(masks, iou_pred);
        }
        else
        {
            masks = masks.slice(1, 0, 1, 1);
            iou_pred = iou_pred.slice(1, 0, 1, 1);
        }

        // The multimask tokens ([B, 3, C]) only when asked for; otherwise always the single-mask
        // token, which is what past object pointers were trained on.
        var sam_tokens_out = multimask_output && use_multimask_token_for_obj_ptr
            ? mask_tokens_out.slice(1, 1, long.MaxValue, 1)
            : mask_tokens_out.slice(1, 0, 1, 1);

        return (masks.MoveToOuterDisposeScope(), iou_pred.MoveToOuterDisposeScope(),
                sam_tokens_out.MoveToOuterDisposeScope(), object_score_logits.MoveToOuterDisposeScope());
    }

    /// <summary>Runs the transformer and heads for all mask tokens; see <see cref="forward"/>.</summary>
    public (Tensor masks, Tensor iou_pred, Tensor mask_tokens_out, Tensor object_score_logits) predict_masks(
        Tensor image_embeddings,
        Tensor image_pe,
        Tensor sparse_prompt_embeddings,
        Tensor dense_prompt_embeddings,
        bool repeat_image,
        IReadOnlyList<Tensor>? high_res_features = null)
    {
        using var scope = NewDisposeScope();
        // Output tokens: [obj_score,] iou, mask tokens, followed by the prompt tokens.
        int s = 0;
        Tensor output_tokens;
        if (pred_obj_scores)
        {
            output_tokens = cat([obj_score_token!.weight, iou_token.weight, mask_tokens.weight], 0);
            s = 1;
        }
        else
        {
            output_tokens = cat([iou_token.weight, mask_tokens.weight], 0);
        }
        output_tokens = output_tokens.unsqueeze(0).expand(sparse_prompt_embeddings.size(0), -1, -1);
        var tokens = cat([output_tokens, sparse_prompt_embeddings], 1);
        long nTok = tokens.size(0);

        // Per-image data expanded to per-prompt. These are B × C × H × W per prompt (268 MB for the 64 prompts of
        // an automatic-mask batch), so each is freed once used, as Python's refcounting would.
        Tensor src;
        if (repeat_image)
        {
            // repeat_interleave makes a new tensor: add the dense embedding into it in place
            src = image_embeddings.repeat_interleave(nTok, 0);
            src.add_(dense_prompt_embeddings);
        }
        else
        {
            if (image_embeddings.size(0) != nTok)
                throw new ArgumentException($"image_embeddings batch {image_embeddings.size(0)} != prompt batch {nTok} (pass repeat_image to broadcast one image)");
            src = image_embeddings + dense_prompt_embeddings;
        }
        if (image_pe.size(0) != 1)
            throw new ArgumentException("image_pe should have size 1 in batch dim (from `get_dense_pe()`)");
        long b = src.size(0), c = src.size(1), h = src.size(2), w = src.size(3);

        Tensor hs, srcOut;
        using (src)
        using (var pos_src = image_pe.repeat_interleave(nTok, 0))
            (hs, srcOut) = transformer.forward(src, pos_src, tokens);
        var iou_token_out = hs.select(1, s);
        var mask_tokens_out = hs.slice(1, s + 1, s + 1 + num_mask_tokens, 1);

        // Upscale the image features and predict masks from the mask tokens.
        Tensor upscaled_embedding;
        using (srcOut)
        using (var srcMap = srcOut.transpose(1, 2).view(b, c, h, w))
        {
            if (!use_high_res_features)
            {
                upscaled_embedding = output_upscaling.forward(srcMap);
            }
            else
            {
                if (high_res_features is null || high_res_features.Count != 2)
                    throw new ArgumentException("use_high_res_features needs high_res_features = [feat_s0, feat_s1]");
                var feat_s0 = high_res_features[0];
                var feat_s1 = high_res_features[1];
                // dc1 → + feat_s1 → ln1 → act1 → dc2 → + feat_s0 → act2, each step freeing the one before
                var x = ((nn.Module<Tensor, Tensor>)output_upscaling[0]).forward(srcMap);
                x = Then(x, t => t + feat_s1);
                x = Then(x, ((nn.Module<Tensor, Tensor>)output_upscaling[1]).forward);
                x = Then(x, ((nn.Module<Tensor, Tensor>)output_upscaling[2]).forward);
                x = Then(x, ((nn.Module<Tensor, Tensor>)output_upscaling[3]).forward);
                x = Then(x, t => t + feat_s0);
                upscaled_embedding = Then(x, ((nn.Module<Tensor, Tensor>)output_upscaling[4]).forward);
            }
        }

        var hyper_in_list = new Tensor[num_mask_tokens];
        for (int i = 0; i < num_mask_tokens; i++)
            hyper_in_list[i] = output_hypernetworks_mlps[i].forward(mask_tokens_out.select(1, i));
        var hyper_in = stack(hyper_in_list, 1);
        long ub = upscaled_embedding.size(0), uc = upscaled_embedding.size(1), uh = upscaled_embedding.size(2), uw = upscaled_embedding.size(3);
        Tensor masks;
        using (upscaled_embedding)
        using (var flatUp = upscaled_embedding.view(ub, uc, uh * uw))
            masks = Sam2Utils.MatMul(hyper_in, flatUp).view(ub, -1, uh, uw);

        // Mask quality predictions.
        var iou_pred = iou_prediction_head.forward(iou_token_out);
        Tensor object_score_logits;
        if (pred_obj_scores)
            object_score_logits = pred_obj_score_head!.forward(hs.select(1, 0));
        else
            // Without a head, assume the object is present (sigmoid(10) ≈ 1).
            object_score_logits = full([iou_pred.size(0), 1], 10.0, iou_pred.dtype, iou_pred.device);

        return (masks.MoveToOuterDisposeScope(), iou_pred.MoveToOuterDisposeScope(),
                mask_tokens_out.MoveToOuterDisposeScope(), object_score_logits.MoveToOuterDisposeScope());
    }

    // f(x), then x is disposed: for chains of large temporaries
    private static Tensor Then(Tensor x, Func<Tensor, Tensor> f)
    {
        using (x) return f(x);
    }

    /// <summary>Stability score: IoU between the masks thresholded at +delta and at -delta.</summary>
    public Tensor _get_stability_scores(Tensor mask_logits)
    {
        using var scope = NewDisposeScope();
        var flat = mask_logits.flatten(-2);
        double delta = dynamic_multimask_stability_delta;
        var area_i = (flat > delta).sum(new long[] { -1 }).@float();
        var area_u = (flat > -delta).sum(new long[] { -1 }).@float();
        var stability_scores = where(area_u > 0, area_i / area_u, 1.0);
        return stability_scores.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// For single-mask output: keeps the token-0 mask when it is stable, otherwise takes the
    /// multimask output (tokens 1..3) with the highest predicted IoU.
    /// </summary>
    public (Tensor mask_logits, Tensor iou_scores) _dynamic_multimask_via_stability(Tensor all_mask_logits, Tensor all_iou_scores)
    {
        using var scope = NewDisposeScope();
        var multimask_logits = all_mask_logits.slice(1, 1, long.MaxValue, 1);
        var multimask_iou_scores = all_iou_scores.slice(1, 1, long.MaxValue, 1);
        var best_scores_inds = multimask_iou_scores.argmax(-1);
        var batch_inds = arange(multimask_iou_scores.size(0), ScalarType.Int64, all_iou_scores.device);
        var best_multimask_logits = multimask_logits.index(batch_inds, best_scores_inds).unsqueeze(1);
        var best_multimask_iou_scores = multimask_iou_scores.index(batch_inds, best_scores_inds).unsqueeze(1);

        var singlemask_logits = all_mask_logits.slice(1, 0, 1, 1);
        var singlemask_iou_scores = all_iou_scores.slice(1, 0, 1, 1);
        var stability_scores = _get_stability_scores(singlemask_logits);
        var is_stable = stability_scores >= dynamic_multimask_stability_thresh;

        var mask_logits_out = where(
            is_stable.unsqueeze(-1).unsqueeze(-1).expand_as(singlemask_logits),
            singlemask_logits,
            best_multimask_logits);
        var iou_scores_out = where(
            is_stable.expand_as(singlemask_iou_scores),
            singlemask_iou_scores,
            best_multimask_iou_scores);
        return (mask_logits_out.MoveToOuterDisposeScope(), iou_scores_out.MoveToOuterDisposeScope());
    }
}
