using TorchSharp;
using TorchSharp.Modules;
using TorchSam2.Checkpoints;
using static TorchSharp.torch;

namespace TorchSam2.Training;

/// <summary>
/// TorchSharp's AdamW plus what the trainer needs and its ParamGroup lacks: a name, an lr scale (layer-wise
/// decay) and a vision flag per group, the learning rate set per step from those, and the moments saved and
/// restored by parameter name so a resumed run continues bit-identically.
/// </summary>
public sealed class GroupedAdamW : IDisposable
{
    /// <summary>One parameter group: the optimizer's own group and the trainer's bookkeeping for it.</summary>
    public sealed record Group(string Name, bool Vision, double LrScale, double WeightDecay, IReadOnlyList<(string name, Parameter p)> Parameters);

    private readonly AdamW _adam;
    private readonly List<AdamW.ParamGroup> _paramGroups;

    public IReadOnlyList<Group> Groups { get; }
    /// <summary>Optimizer steps taken (saved with the checkpoint).</summary>
    public long StepCount { get; private set; }

    public GroupedAdamW(IReadOnlyList<Group> groups, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8)
    {
        Groups = groups;
        _paramGroups = groups.Select(g => new AdamW.ParamGroup(g.Parameters.Select(x => x.p), lr: 0.0, beta1: beta1, beta2: beta2, eps: eps, weight_decay: g.WeightDecay)).ToList();
        _adam = optim.AdamW(_paramGroups);
    }

    /// <summary>Parameter names in the optimizer's order (group-major), as its state is laid out.</summary>
    public IEnumerable<string> ParameterNames => Groups.SelectMany(g => g.Parameters.Select(x => x.name));

    /// <summary>Sets each group's learning rate to <paramref name="lr"/> × its scale (× visionScale for vision groups).</summary>
    public void SetLearningRate(double lr, double visionScale)
    {
        for (int i = 0; i < Groups.Count; i++)
            _paramGroups[i].LearningRate = lr * (Groups[i].Vision ? visionScale : 1.0) * Groups[i].LrScale;
    }

    public double LearningRateOf(int group) => _paramGroups[group].LearningRate;

    public void zero_grad() => _adam.zero_grad();

    public void step()
    {
        using (no_grad()) _adam.step();
        StepCount++;
    }

    /// <summary>Moments and per-parameter step counts by parameter name (views of the live state: copy before changing).</summary>
    public IEnumerable<(string name, long step, Tensor expAvg, Tensor expAvgSq)> State()
    {
        var states = _adam.state_dict().State;
        int i = 0;
        foreach (var name in ParameterNames)
        {
            var st = (AdamW.State)states[i++];
            yield return (name, st.step, st.exp_avg, st.exp_avg_sq);
        }
    }

    /// <summary>Restores what <see cref="State"/> returned (values are copied onto each parameter's device).</summary>
    public void LoadState(long stepCount, IReadOnlyDictionary<string, (long step, Tensor expAvg, Tensor expAvgSq)> state)
    {
        var states = _adam.state_dict().State;
        var names = ParameterNames.ToList();
        var known = names.ToHashSet();
        foreach (var key in state.Keys)
            if (!known.Contains(key)) throw new InvalidDataException($"optimizer state for unknown or frozen parameter {key}");
        var parameters = Groups.SelectMany(g => g.Parameters.Select(x => x.p)).ToList();
        for (int i = 0; i < names.Count; i++)
        {
            if (!state.TryGetValue(names[i], out var s)) continue;
            var p = parameters[i];
            if (!s.expAvg.shape.SequenceEqual(p.shape) || !s.expAvgSq.shape.SequenceEqual(p.shape))
                throw new InvalidDataException($"optimizer state for {names[i]} has shape [{string.Join(", ", s.expAvg.shape)}], the parameter [{string.Join(", ", p.shape)}]");
            // LoadStateDict copies onto the parameter's device; the source tensors stay the caller's (not disposed here).
            var src = new AdamW.State(p) { step = s.step, exp_avg = s.expAvg, exp_avg_sq = s.expAvgSq };
            ((AdamW.State)states[i]).LoadStateDict(src);
        }
        StepCount = stepCount;
    }

    public void Dispose() => _adam.Dispose();
}
