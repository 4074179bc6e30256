using System.Reflection;

namespace TorchSam2.Torch;

public static partial class torch
{
    public static partial class nn
    {
        /// <summary>
        /// Base of every layer, as torch.nn.Module: named submodules, parameters and buffers whose
        /// dotted paths are the state-dict keys. <see cref="RegisterComponents"/> registers fields
        /// by their names, so a field called <c>pos_embed</c> becomes the key <c>pos_embed</c>.
        /// </summary>
        public abstract class Module : IDisposable
        {
            private readonly OrderedDictionary<string, Module> _modules = new();
            private readonly OrderedDictionary<string, Parameter?> _parameters = new();
            private readonly OrderedDictionary<string, Tensor?> _buffers = new();
            private readonly HashSet<string> _nonPersistent = new();
            private bool _disposed;

            public bool training { get; private set; } = true;

            // ---- registration -------------------------------------------------------------

            public void register_module(string name, Module module)
            {
                CheckName(name);
                _modules[name] = module;
            }

            public void register_parameter(string name, Parameter? parameter)
            {
                CheckName(name);
                _parameters[name] = parameter;
            }

            public void register_buffer(string name, Tensor? buffer, bool persistent = true)
            {
                CheckName(name);
                buffer?.DetachFromDisposeScope();
                _buffers[name] = buffer;
                if (!persistent) _nonPersistent.Add(name);
            }

            private static void CheckName(string name)
            {
                if (string.IsNullOrEmpty(name) || name.Contains('.')) throw new ArgumentException($"invalid module member name '{name}'");
            }

            /// <summary>Registers every Module and Parameter field (public or private) under its field name.</summary>
            protected void RegisterComponents()
            {
                for (var type = GetType(); type is not null && type != typeof(Module); type = type.BaseType)
                {
                    foreach (var f in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                    {
                        if (f.IsDefined(typeof(System.Runtime.CompilerServices.CompilerGeneratedAttribute))) continue;
                        var value = f.GetValue(this);
                        if (value is Module m && !_modules.ContainsKey(f.Name)) register_module(f.Name, m);
                        else if (value is Parameter p && !_parameters.ContainsKey(f.Name)) register_parameter(f.Name, p);
                    }
                }
            }

            // ---- traversal ----------------------------------------------------------------

            public IEnumerable<(string name, Module module)> named_children() => _modules.Select(kv => (kv.Key, kv.Value));

            public IEnumerable<Module> children() => _modules.Values;

            public IEnumerable<(string name, Module module)> named_modules(string prefix = "")
            {
                yield return (prefix, this);
                foreach (var (name, m) in _modules)
                    foreach (var sub in m.named_modules(prefix.Length == 0 ? name : prefix + "." + name))
                        yield return sub;
            }

            public IEnumerable<(string name, Parameter parameter)> named_parameters(bool recurse = true)
            {
                var seen = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
                foreach (var (prefix, m) in recurse ? named_modules() : [("", this)])
                    foreach (var (name, p) in m._parameters)
                        if (p is not null && seen.Add(p)) yield return (Join(prefix, name), p);
            }

            public IEnumerable<Parameter> parameters(bool recurse = true) => named_parameters(recurse).Select(x => x.parameter);

            public IEnumerable<(string name, Tensor buffer)> named_buffers(bool recurse = true, bool persistentOnly = false)
            {
                foreach (var (prefix, m) in recurse ? named_modules() : [("", this)])
                    foreach (var (name, b) in m._buffers)
                        if (b is not null && !(persistentOnly && m._nonPersistent.Contains(name))) yield return (Join(prefix, name), b);
            }

            private static string Join(string prefix, string name) => prefix.Length == 0 ? name : prefix + "." + name;

            /// <summary>Looks a submodule up by dotted path ("image_encoder.trunk").</summary>
            public Module get_submodule(string path)
            {
                Module cur = this;
                if (path.Length == 0) return cur;
                foreach (var part in path.Split('.'))
                    cur = cur._modules.TryGetValue(part, out var next) ? next : throw new KeyNotFoundException($"{GetType().Name} has no submodule '{path}' (missing '{part}')");
                return cur;
            }

            // ---- state dict ---------------------------------------------------------------

            /// <summary>Parameters and persistent buffers by key, in registration order (the tensors themselves, not copies).</summary>
            public OrderedDictionary<string, Tensor> state_dict()
            {
                var sd = new OrderedDictionary<string, Tensor>();
                foreach (var (prefix, m) in named_modules())
                {
                    foreach (var (name, p) in m._parameters)
                        if (p is not null) sd[Join(prefix, name)] = p;
                    foreach (var (name, b) in m._buffers)
                        if (b is not null && !m._nonPersistent.Contains(name)) sd[Join(prefix, name)] = b;
                }
                return sd;
            }

            /// <summary>
            /// Copies values into this module's tensors (converting dtype, e.g. F16 weights into an
            /// fp32 model). Shape mismatches always fail; with strict, missing and unexpected keys too.
            /// </summary>
            public LoadStateDictResult load_state_dict(IReadOnlyDictionary<string, Tensor> stateDict, bool strict = true)
            {
                var own = state_dict();
                var result = CheckStateDict(own, stateDict.Keys, k => stateDict[k].shape, strict);
                using (no_grad())
                {
                    foreach (var (k, t) in own)
                        if (stateDict.TryGetValue(k, out var src)) t.copy_(src);
                }
                return result;
            }

            /// <summary>
            /// Loads from an open checkpoint, checking every key and shape before any data is read, then one
            /// tensor at a time: straight into the parameter's memory when dtype matches on the CPU (no copy),
            /// otherwise through one temporary that copy_ converts. The checkpoint never sits in managed memory.
            /// </summary>
            public LoadStateDictResult load_state_dict(Serialization.CheckpointReader checkpoint, bool strict = true)
            {
                ArgumentNullException.ThrowIfNull(checkpoint);
                var own = state_dict();
                var stored = checkpoint.Tensors;
                var result = CheckStateDict(own, stored.Keys, k => stored[k].Shape, strict);
                using (no_grad())
                {
                    foreach (var (k, t) in own)
                    {
                        if (!stored.TryGetValue(k, out var src)) continue;
                        if (src.DType == t.dtype && t.device.Type == DeviceType.CPU && t.is_contiguous())
                            checkpoint.ReadInto(k, t);
                        else
                        {
                            using var tmp = checkpoint.ReadTensor(k);
                            t.copy_(tmp);
                        }
                    }
                }
                return result;
            }

            private static LoadStateDictResult CheckStateDict(OrderedDictionary<string, Tensor> own, IEnumerable<string> keys,
                                                              Func<string, long[]> shapeOf, bool strict)
            {
                var keyList = keys.ToList();
                var given = keyList.ToHashSet();
                var missing = own.Keys.Where(k => !given.Contains(k)).ToList();
                var unexpected = keyList.Where(k => !own.ContainsKey(k)).ToList();
                var mismatched = new List<string>();
                foreach (var (k, t) in own)
                    if (given.Contains(k) && shapeOf(k) is var shape && !shape.SequenceEqual(t.shape))
                        mismatched.Add($"{k}: checkpoint [{string.Join(", ", shape)}] vs model [{string.Join(", ", t.shape)}]");
                var result = new LoadStateDictResult(missing, unexpected, mismatched);
                if (mismatched.Count > 0 || (strict && (missing.Count > 0 || unexpected.Count > 0)))
                    throw new StateDictException(result);
                return result;
            }

            // ---- modes and devices --------------------------------------------------------

            public virtual Module train(bool mode = true)
            {
                training = mode;
                foreach (var m in _modules.Values) m.train(mode);
                return this;
            }

            public Module eval() => train(false);

            /// <summary>Moves every parameter and buffer; field references stay valid.</summary>
            public Module to(Device device) => Convert(t => t.to(device));

            /// <summary>Converts floating-point parameters and buffers to dtype.</summary>
            public Module to(ScalarType dtype) => Convert(t => t.dtype.IsFloatingPoint() ? t.to(dtype) : t.alias());

            private Module Convert(Func<Tensor, Tensor> f)
            {
                using var _ = no_grad();
                foreach (var (_, m) in named_modules())
                {
                    foreach (var p in m._parameters.Values)
                    {
                        if (p is null) continue;
                        bool rg = p.requires_grad;
                        using var moved = f(p);
                        p.ReplaceHandle(moved);
                        if (rg) p.requires_grad = true;
                    }
                    foreach (var b in m._buffers.Values)
                    {
                        if (b is null) continue;
                        using var moved = f(b);
                        b.ReplaceHandle(moved);
                    }
                }
                return this;
            }

            public void zero_grad()
            {
                foreach (var p in parameters()) p.grad = null;
            }

            /// <summary>Sets requires_grad on every parameter (freezing when false).</summary>
            public Module requires_grad_(bool value = true)
            {
                foreach (var p in parameters()) p.requires_grad = value;
                return this;
            }

            public long NumParameters() => parameters().Sum(p => p.numel());

            public virtual void Dispose()
            {
                if (_disposed) return;
                _disposed = true;
                foreach (var m in _modules.Values) m.Dispose();
                foreach (var p in _parameters.Values) p?.Dispose();
                foreach (var b in _buffers.Values) b?.Dispose();
                GC.SuppressFinalize(this);
            }
        }

        /// <summary>A module with a single-input forward, callable like a function.</summary>
        public abstract class Module<T, TResult> : Module
        {
            public abstract TResult forward(T input);

            public TResult call(T input) => forward(input);
        }

        /// <summary>A module with a two-input forward.</summary>
        public abstract class Module<T1, T2, TResult> : Module
        {
            public abstract TResult forward(T1 input1, T2 input2);

            public TResult call(T1 input1, T2 input2) => forward(input1, input2);
        }
    }
}

/// <summary>What load_state_dict found: keys missing from the checkpoint, keys it had that the model lacks, and shape mismatches.</summary>
public sealed record LoadStateDictResult(IReadOnlyList<string> Missing, IReadOnlyList<string> Unexpected, IReadOnlyList<string> Mismatched)
{
    public bool IsExact => Missing.Count == 0 && Unexpected.Count == 0 && Mismatched.Count == 0;

    public override string ToString()
    {
        var parts = new List<string>();
        if (Missing.Count > 0) parts.Add($"missing keys ({Missing.Count}): {string.Join(", ", Missing.Take(20))}{(Missing.Count > 20 ? ", ..." : "")}");
        if (Unexpected.Count > 0) parts.Add($"unexpected keys ({Unexpected.Count}): {string.Join(", ", Unexpected.Take(20))}{(Unexpected.Count > 20 ? ", ..." : "")}");
        if (Mismatched.Count > 0) parts.Add($"shape mismatches ({Mismatched.Count}): {string.Join("; ", Mismatched.Take(20))}{(Mismatched.Count > 20 ? "; ..." : "")}");
        return parts.Count == 0 ? "all keys matched" : string.Join("\n", parts);
    }
}

/// <summary>A state dict that does not fit the model; the message names every offending key.</summary>
public sealed class StateDictException(LoadStateDictResult result) : Exception("state dict does not match the model:\n" + result)
{
    public LoadStateDictResult Result { get; } = result;
}
