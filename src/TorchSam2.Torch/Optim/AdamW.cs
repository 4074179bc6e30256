namespace TorchSam2.Torch;

public static partial class torch
{
    public static partial class optim
    {
        /// <summary>A group of parameters sharing hyper-parameters (torch.optim param_groups).</summary>
        public sealed class ParamGroup(IEnumerable<Parameter> parameters)
        {
            public List<Parameter> Parameters { get; } = parameters.ToList();
            public double LearningRate { get; set; } = 1e-3;
            public double WeightDecay { get; set; } = 1e-2;
            public double Beta1 { get; set; } = 0.9;
            public double Beta2 { get; set; } = 0.999;
            public double Eps { get; set; } = 1e-8;
            /// <summary>Scales the scheduler's learning rate for this group (layer-wise decay).</summary>
            public double LrScale { get; set; } = 1.0;
            public string Name { get; set; } = "";
        }

        /// <summary>
        /// AdamW (decoupled weight decay, Loshchilov &amp; Hutter), the same update as torch.optim.AdamW:
        /// p ← p·(1 − lr·wd); m, v moments; p ← p − lr·m̂/(√v̂ + eps).
        /// </summary>
        public sealed class AdamW : IDisposable
        {
            private readonly Dictionary<Parameter, (Tensor expAvg, Tensor expAvgSq)> _state = new(ReferenceEqualityComparer.Instance);

            public List<ParamGroup> ParamGroups { get; }

            public long StepCount { get; private set; }

            public AdamW(IEnumerable<Parameter> parameters, double lr = 1e-3, double weight_decay = 1e-2, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8)
                : this([new ParamGroup(parameters) { LearningRate = lr, WeightDecay = weight_decay, Beta1 = beta1, Beta2 = beta2, Eps = eps }]) { }

            public AdamW(IEnumerable<ParamGroup> groups) => ParamGroups = groups.ToList();

            public void zero_grad()
            {
                foreach (var g in ParamGroups)
                    foreach (var p in g.Parameters) p.grad = null;
            }

            public void step()
            {
                StepCount++;
                using var _ = no_grad();
                using var scope = NewDisposeScope();
                foreach (var g in ParamGroups)
                {
                    double bc1 = 1 - Math.Pow(g.Beta1, StepCount);
                    double bc2 = 1 - Math.Pow(g.Beta2, StepCount);
                    foreach (var p in g.Parameters)
                    {
                        var grad = p.grad;
                        if (grad is null) continue;
                        if (!_state.TryGetValue(p, out var st))
                        {
                            st = (zeros_like(p).DetachFromDisposeScope(), zeros_like(p).DetachFromDisposeScope());
                            _state[p] = st;
                        }
                        if (g.WeightDecay != 0) p.mul_(1 - g.LearningRate * g.WeightDecay);
                        st.expAvg.lerp_(grad, 1 - g.Beta1);
                        st.expAvgSq.mul_(g.Beta2).addcmul_(grad, grad, 1 - g.Beta2);
                        var denom = (st.expAvgSq.sqrt() / Math.Sqrt(bc2)).add_(g.Eps);
                        p.addcdiv_(st.expAvg, denom, -g.LearningRate / bc1);
                    }
                }
            }

            /// <summary>Moment tensors by parameter index (group-major), for checkpoints and resume.</summary>
            public IReadOnlyList<(int index, Tensor expAvg, Tensor expAvgSq)> StateTensors()
            {
                var list = new List<(int, Tensor, Tensor)>();
                int i = 0;
                foreach (var g in ParamGroups)
                    foreach (var p in g.Parameters)
                    {
                        if (_state.TryGetValue(p, out var st)) list.Add((i, st.expAvg, st.expAvgSq));
                        i++;
                    }
                return list;
            }

            /// <summary>Restores moments saved by <see cref="StateTensors"/> and the step count.</summary>
            public void LoadState(long stepCount, IEnumerable<(int index, Tensor expAvg, Tensor expAvgSq)> state)
            {
                var ps = ParamGroups.SelectMany(g => g.Parameters).ToList();
                foreach (var (index, a, b) in state)
                {
                    if (index < 0 || index >= ps.Count) throw new ArgumentException($"optimizer state names parameter {index}, but there are {ps.Count}");
                    var p = ps[index];
                    if (_state.TryGetValue(p, out var old)) { old.expAvg.Dispose(); old.expAvgSq.Dispose(); }
                    _state[p] = (a.to(p.device, p.dtype, copy: true).DetachFromDisposeScope(), b.to(p.device, p.dtype, copy: true).DetachFromDisposeScope());
                }
                StepCount = stepCount;
            }

            public void Dispose()
            {
                foreach (var (a, b) in _state.Values) { a.Dispose(); b.Dispose(); }
                _state.Clear();
            }
        }
    }

    public static partial class nn
    {
        public static partial class utils
        {
            /// <summary>Scales gradients so their global L2 norm is at most max_norm; returns the norm before clipping.</summary>
            public static double clip_grad_norm_(IEnumerable<Parameter> parameters, double max_norm)
            {
                using var _ = no_grad();
                using var scope = NewDisposeScope();
                var grads = parameters.Select(p => p.grad).Where(g => g is not null).Cast<Tensor>().ToArray();
                if (grads.Length == 0) return 0;
                var norms = stack(grads.Select(g => g.norm(2)).ToArray());
                double total = norms.norm(2).item<double>();
                double coef = max_norm / (total + 1e-6);
                if (coef < 1)
                    foreach (var g in grads) g.mul_(coef);
                return total;
            }
        }
    }
}
