namespace TorchSam2.Torch;

public static partial class torch
{
    public static partial class nn
    {
        /// <summary>y = x Wᵀ + b.</summary>
        public sealed class Linear : Module<Tensor, Tensor>
        {
            public readonly Parameter weight;
            public readonly Parameter? bias;

            public Linear(long in_features, long out_features, bool hasBias = true)
            {
                weight = new Parameter(empty([out_features, in_features]));
                init.kaiming_uniform_(weight, Math.Sqrt(5));
                if (hasBias)
                {
                    bias = new Parameter(empty([out_features]));
                    double bound = 1 / Math.Sqrt(in_features);
                    init.uniform_(bias, -bound, bound);
                }
                RegisterComponents();
            }

            public override Tensor forward(Tensor input) => functional.linear(input, weight, bias);
        }

        public sealed class Conv2d : Module<Tensor, Tensor>
        {
            public readonly Parameter weight;
            public readonly Parameter? bias;
            private readonly long[] _stride, _padding, _dilation;
            private readonly long _groups;

            public Conv2d(long in_channels, long out_channels, long kernel_size, long stride = 1, long padding = 0, long dilation = 1, long groups = 1, bool hasBias = true)
                : this(in_channels, out_channels, [kernel_size, kernel_size], [stride, stride], [padding, padding], dilation, groups, hasBias) { }

            public Conv2d(long in_channels, long out_channels, long[] kernel_size, long[] stride, long[] padding, long dilation = 1, long groups = 1, bool hasBias = true)
            {
                if (in_channels % groups != 0 || out_channels % groups != 0) throw new ArgumentException("channels must be divisible by groups");
                _stride = stride;
                _padding = padding;
                _dilation = [dilation, dilation];
                _groups = groups;
                weight = new Parameter(empty([out_channels, in_channels / groups, kernel_size[0], kernel_size[1]]));
                init.kaiming_uniform_(weight, Math.Sqrt(5));
                if (hasBias)
                {
                    bias = new Parameter(empty([out_channels]));
                    double bound = 1 / Math.Sqrt(in_channels / groups * kernel_size[0] * kernel_size[1]);
                    init.uniform_(bias, -bound, bound);
                }
                RegisterComponents();
            }

            public override Tensor forward(Tensor input) => functional.conv2d(input, weight, bias, _stride, _padding, _dilation, _groups);
        }

        public sealed class ConvTranspose2d : Module<Tensor, Tensor>
        {
            public readonly Parameter weight;
            public readonly Parameter? bias;
            private readonly long _stride, _padding;

            public ConvTranspose2d(long in_channels, long out_channels, long kernel_size, long stride = 1, long padding = 0, bool hasBias = true)
            {
                _stride = stride;
                _padding = padding;
                weight = new Parameter(empty([in_channels, out_channels, kernel_size, kernel_size]));
                init.kaiming_uniform_(weight, Math.Sqrt(5));
                if (hasBias)
                {
                    bias = new Parameter(empty([out_channels]));
                    double bound = 1 / Math.Sqrt(out_channels * kernel_size * kernel_size);
                    init.uniform_(bias, -bound, bound);
                }
                RegisterComponents();
            }

            public override Tensor forward(Tensor input) => functional.conv_transpose2d(input, weight, bias, _stride, _padding);
        }

        public sealed class LayerNorm : Module<Tensor, Tensor>
        {
            public readonly Parameter? weight;
            public readonly Parameter? bias;
            private readonly long[] _shape;
            private readonly double _eps;

            public LayerNorm(long normalized_shape, double eps = 1e-5, bool elementwise_affine = true)
            {
                _shape = [normalized_shape];
                _eps = eps;
                if (elementwise_affine)
                {
                    weight = new Parameter(ones([normalized_shape]));
                    bias = new Parameter(zeros([normalized_shape]));
                }
                RegisterComponents();
            }

            public override Tensor forward(Tensor input) => functional.layer_norm(input, _shape, weight, bias, _eps);
        }

        public sealed class Embedding : Module<Tensor, Tensor>
        {
            public readonly Parameter weight;

            public Embedding(long num_embeddings, long embedding_dim)
            {
                weight = new Parameter(randn([num_embeddings, embedding_dim]));
                RegisterComponents();
            }

            public override Tensor forward(Tensor input) => Native.Op.Call("aten::embedding", weight, input, -1L, false, false);
        }

        public sealed class Dropout(double p = 0.5) : Module<Tensor, Tensor>
        {
            public double p { get; } = p;

            public override Tensor forward(Tensor input) => functional.dropout(input, p, training);
        }

        public sealed class Identity : Module<Tensor, Tensor>
        {
            public override Tensor forward(Tensor input) => input.alias();
        }

        public sealed class GELU(string approximate = "none") : Module<Tensor, Tensor>
        {
            public override Tensor forward(Tensor input) => functional.gelu(input, approximate);
        }

        public sealed class ReLU : Module<Tensor, Tensor>
        {
            public override Tensor forward(Tensor input) => input.relu();
        }

        public sealed class SiLU : Module<Tensor, Tensor>
        {
            public override Tensor forward(Tensor input) => functional.silu(input);
        }

        public sealed class Sigmoid : Module<Tensor, Tensor>
        {
            public override Tensor forward(Tensor input) => input.sigmoid();
        }

        public sealed class MaxPool2d(long kernel_size, long? stride = null) : Module<Tensor, Tensor>
        {
            public override Tensor forward(Tensor input) => functional.max_pool2d(input, kernel_size, stride);
        }

        /// <summary>Runs modules in order; their keys are "0", "1", ... as in PyTorch.</summary>
        public sealed class Sequential : Module<Tensor, Tensor>
        {
            private readonly List<Module<Tensor, Tensor>> _layers = new();

            public Sequential(params Module<Tensor, Tensor>[] layers)
            {
                foreach (var l in layers) append(l);
            }

            public void append(Module<Tensor, Tensor> layer)
            {
                register_module(_layers.Count.ToString(), layer);
                _layers.Add(layer);
            }

            public int Count => _layers.Count;

            public Module<Tensor, Tensor> this[int i] => _layers[i];

            public override Tensor forward(Tensor input)
            {
                // Intermediate results are released as soon as the next layer has consumed them.
                Tensor x = input;
                for (int i = 0; i < _layers.Count; i++)
                {
                    var y = _layers[i].forward(x);
                    if (!ReferenceEquals(x, input)) x.Dispose();
                    x = y;
                }
                return ReferenceEquals(x, input) ? input.alias() : x;
            }
        }

        /// <summary>A list of submodules keyed "0", "1", ...</summary>
        public sealed class ModuleList<T> : Module, IReadOnlyList<T> where T : Module
        {
            private readonly List<T> _items = new();

            public ModuleList(params IEnumerable<T> items)
            {
                foreach (var m in items) append(m);
            }

            public void append(T module)
            {
                register_module(_items.Count.ToString(), module);
                _items.Add(module);
            }

            public T this[int index] => _items[index];

            public int Count => _items.Count;

            public IEnumerator<T> GetEnumerator() => _items.GetEnumerator();

            System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
        }
    }
}
