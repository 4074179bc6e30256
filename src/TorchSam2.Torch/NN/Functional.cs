using TorchSam2.Torch.Native;

namespace TorchSam2.Torch;

public static partial class torch
{
    public static partial class nn
    {
        /// <summary>torch.nn.functional: the neural-network ops SAM 2 and its training use.</summary>
        public static partial class functional
        {
            private static Tensor C(string op, params ReadOnlySpan<Arg> a) => Op.Call(op, a);

            public static Tensor linear(Tensor input, Tensor weight, Tensor? bias = null) => C("aten::linear", input, weight, bias);

            public static Tensor conv2d(Tensor input, Tensor weight, Tensor? bias = null, long stride = 1, long padding = 0, long dilation = 1, long groups = 1) =>
                C("aten::conv2d", input, weight, bias, new[] { stride, stride }, new[] { padding, padding }, new[] { dilation, dilation }, groups);

            public static Tensor conv2d(Tensor input, Tensor weight, Tensor? bias, long[] stride, long[] padding, long[] dilation, long groups = 1) =>
                C("aten::conv2d", input, weight, bias, stride, padding, dilation, groups);

            public static Tensor conv_transpose2d(Tensor input, Tensor weight, Tensor? bias = null, long stride = 1, long padding = 0, long output_padding = 0, long groups = 1, long dilation = 1) =>
                C("aten::conv_transpose2d.input", input, weight, bias, new[] { stride, stride }, new[] { padding, padding }, new[] { output_padding, output_padding }, groups, new[] { dilation, dilation });

            public static Tensor layer_norm(Tensor input, long[] normalized_shape, Tensor? weight = null, Tensor? bias = null, double eps = 1e-5) =>
                C("aten::layer_norm", input, normalized_shape, weight, bias, eps, true);

            public static Tensor group_norm(Tensor input, long num_groups, Tensor? weight = null, Tensor? bias = null, double eps = 1e-5) =>
                C("aten::group_norm", input, num_groups, weight, bias, eps, true);

            /// <summary>approximate: "none" (erf, PyTorch's default) or "tanh".</summary>
            public static Tensor gelu(Tensor input, string approximate = "none") => C("aten::gelu", input, approximate);

            public static Tensor relu(Tensor input) => C("aten::relu", input);

            public static Tensor silu(Tensor input) => C("aten::silu", input);

            public static Tensor sigmoid(Tensor input) => C("aten::sigmoid", input);

            public static Tensor softmax(Tensor input, long dim) => C("aten::softmax.int", input, dim, Arg.None);

            public static Tensor dropout(Tensor input, double p, bool training) =>
                training && p > 0 ? C("aten::dropout", input, p, true) : input.alias();

            public static Tensor max_pool2d(Tensor input, long kernel_size, long? stride = null, long padding = 0, long dilation = 1, bool ceil_mode = false) =>
                C("aten::max_pool2d", input, new[] { kernel_size, kernel_size }, new[] { stride ?? kernel_size, stride ?? kernel_size }, new[] { padding, padding }, new[] { dilation, dilation }, ceil_mode);

            public static Tensor avg_pool2d(Tensor input, long kernel_size, long? stride = null, long padding = 0) =>
                C("aten::avg_pool2d", input, new[] { kernel_size, kernel_size }, new[] { stride ?? kernel_size, stride ?? kernel_size }, new[] { padding, padding }, false, true, Arg.None);

            /// <summary>
            /// F.interpolate on 4-D input. mode: "nearest", "bilinear", "bicubic". Give size or
            /// scale_factor. antialias applies to bilinear/bicubic downsampling as in torchvision.
            /// </summary>
            public static Tensor interpolate(Tensor input, long[]? size = null, double? scale_factor = null, string mode = "nearest", bool? align_corners = null, bool antialias = false)
            {
                if (input.dim() != 4) throw new ArgumentException($"interpolate expects a 4-D NCHW tensor, got {input.dim()}-D");
                if ((size is null) == (scale_factor is null)) throw new ArgumentException("interpolate needs exactly one of size or scale_factor");
                if (mode == "nearest" && align_corners is not null) throw new ArgumentException("align_corners applies only to bilinear and bicubic");
                double[]? scales = scale_factor is null ? null : new[] { scale_factor.Value, scale_factor.Value };
                long[]? outSize = size;
                if (size is not null && size.Length != 2) throw new ArgumentException("size must have two entries (H, W)");
                bool ac = align_corners ?? false;
                return mode switch
                {
                    "nearest" => C("aten::upsample_nearest2d.vec", input, outSize, scales),
                    "bilinear" when antialias => C("aten::_upsample_bilinear2d_aa.vec", input, outSize, ac, scales),
                    "bilinear" => C("aten::upsample_bilinear2d.vec", input, outSize, ac, scales),
                    "bicubic" when antialias => C("aten::_upsample_bicubic2d_aa.vec", input, outSize, ac, scales),
                    "bicubic" => C("aten::upsample_bicubic2d.vec", input, outSize, ac, scales),
                    _ => throw new ArgumentException($"unsupported interpolate mode '{mode}'"),
                };
            }

            /// <summary>Pads the last dims: pad = (left, right, top, bottom, ...). mode: constant, reflect, replicate.</summary>
            public static Tensor pad(Tensor input, long[] pad, string mode = "constant", double value = 0) => mode switch
            {
                "constant" => C("aten::constant_pad_nd", input, pad, value),
                "reflect" when pad.Length == 4 => C("aten::reflection_pad2d", input, pad),
                "replicate" when pad.Length == 4 => C("aten::replication_pad2d", input, pad),
                _ => throw new ArgumentException($"unsupported pad mode '{mode}' for {pad.Length / 2} dims"),
            };

            /// <summary>
            /// softmax(q kᵀ / √d) v over the last two dims. Uses libtorch's fused
            /// scaled_dot_product_attention where the build has it (2.x), the explicit form otherwise.
            /// </summary>
            public static Tensor scaled_dot_product_attention(Tensor query, Tensor key, Tensor value, Tensor? attn_mask = null, double dropout_p = 0)
            {
                var sdpa = Op.TryGet("aten::scaled_dot_product_attention");
                if (sdpa is not null) return sdpa.Invoke(query, key, value, attn_mask, dropout_p, false);
                // Without the fused kernel, inference attends a block of queries at a time so the L×S score matrix
                // never exists whole (Hiera's global blocks: 4 heads × 4096² floats = 268 MB, twice with the
                // softmax; memory attention over 7 frames: 470 MB). Rows are independent, so the result is the same.
                long rows = query.size(-2), cols = key.size(-2);
                long batch = query.numel() / Math.Max(1, rows * query.size(-1));
                long rowsPerChunk = Math.Max(1, AttentionChunkElements / Math.Max(1, batch * cols));
                bool chunk = rows > rowsPerChunk && attn_mask is null && dropout_p == 0
                             && !(is_grad_enabled() && (query.requires_grad || key.requires_grad || value.requires_grad));
                if (!chunk) return ExplicitAttention(query, key, value, attn_mask, dropout_p);
                using var scope = NewDisposeScope();
                // contiguous once, not per block (matmul would copy strided operands on every call)
                var keyT = key.transpose(-2, -1).contiguous();
                value = value.contiguous();
                double scale = 1.0 / Math.Sqrt(query.size(-1));
                var blockShape = (long[])query.shape.Clone();
                blockShape[^1] = cols;
                blockShape[^2] = rowsPerChunk;
                // one score buffer for all full blocks: matmul writes it, softmax runs in place (each row is read
                // whole before it is written), so the allocator sees one block-sized allocation per call
                var scores = empty(blockShape, query.dtype, query.device);
                var parts = new List<Tensor>();
                bool inPlace = true;
                for (long r = 0; r < rows; r += rowsPerChunk)
                {
                    long n = Math.Min(rowsPerChunk, rows - r);
                    if (n < rowsPerChunk)
                    {
                        blockShape[^2] = n;
                        scores = empty(blockShape, query.dtype, query.device);
                    }
                    using (var qs = query.narrow(-2, r, n) * scale)
                        Op.Call("aten::matmul.out", qs, keyT, scores).Dispose();
                    if (inPlace)
                    {
                        // a build whose softmax rejects aliased output checks before writing: fall back out of place
                        try { Op.Call("aten::_softmax.out", scores, -1L, false, scores).Dispose(); }
                        catch (TorchException) { inPlace = false; }
                    }
                    if (inPlace) parts.Add(scores.matmul(value));
                    else
                        using (var probs = scores.softmax(-1))
                            parts.Add(probs.matmul(value));
                }
                return torch.cat(parts, -2).MoveToOuterDisposeScope();
            }

            /// <summary>Score elements (rows × keys × batch·heads) per block of the chunked fallback: 32 MB of floats.</summary>
            public static long AttentionChunkElements { get; set; } = 1L << 23;

            private static Tensor ExplicitAttention(Tensor query, Tensor key, Tensor value, Tensor? attn_mask, double dropout_p)
            {
                using var scope = NewDisposeScope();
                // Scale q (L×d) rather than the L×S score matrix: one pass over the smaller tensor.
                double scale = 1.0 / Math.Sqrt(query.size(-1));
                var attn = (query * scale).matmul(key.transpose(-2, -1));
                if (attn_mask is not null)
                    attn = attn_mask.dtype == ScalarType.Bool ? attn.masked_fill(attn_mask.logical_not(), double.NegativeInfinity) : attn + attn_mask;
                attn = attn.softmax(-1);
                if (dropout_p > 0) attn = dropout(attn, dropout_p, true);
                return attn.matmul(value).MoveToOuterDisposeScope();
            }

            /// <summary>True when this libtorch has the fused attention kernel.</summary>
            public static bool HasFusedAttention => Op.TryGet("aten::scaled_dot_product_attention") is not null;

            public static Tensor pixel_shuffle(Tensor input, long upscale_factor) => C("aten::pixel_shuffle", input, upscale_factor);

            public static Tensor unfold(Tensor input, long kernel, long dilation = 1, long padding = 0, long stride = 1) =>
                C("aten::im2col", input, new[] { kernel, kernel }, new[] { dilation, dilation }, new[] { padding, padding }, new[] { stride, stride });

            // ---- losses (reduction: "none", "mean", "sum") ------------------------------------

            private static long Reduction(string r) => r switch
            {
                "none" => 0,
                "mean" => 1,
                "sum" => 2,
                _ => throw new ArgumentException($"unknown reduction '{r}'"),
            };

            public static Tensor binary_cross_entropy_with_logits(Tensor input, Tensor target, Tensor? weight = null, Tensor? pos_weight = null, string reduction = "mean") =>
                C("aten::binary_cross_entropy_with_logits", input, target, weight, pos_weight, Reduction(reduction));

            public static Tensor mse_loss(Tensor input, Tensor target, string reduction = "mean") => C("aten::mse_loss", input, target, Reduction(reduction));

            public static Tensor l1_loss(Tensor input, Tensor target, string reduction = "mean") => C("aten::l1_loss", input, target, Reduction(reduction));

            public static Tensor smooth_l1_loss(Tensor input, Tensor target, string reduction = "mean", double beta = 1.0) =>
                C("aten::smooth_l1_loss", input, target, Reduction(reduction), beta);

            public static Tensor cross_entropy(Tensor input, Tensor target, string reduction = "mean") =>
                C("aten::cross_entropy_loss", input, target, Arg.None, Reduction(reduction), -100L, 0.0);
        }
    }
}
