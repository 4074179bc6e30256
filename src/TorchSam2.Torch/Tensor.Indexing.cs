namespace TorchSam2.Torch;

/// <summary>One component of a tensor index: an integer, a slice, an ellipsis, a new axis or a tensor.</summary>
public readonly struct TensorIndex
{
    internal enum K { Single, Slice, Ellipsis, None, Tensor }

    internal readonly K Kind;
    internal readonly long Index;
    internal readonly long? Start, Stop;
    internal readonly long Step;
    internal readonly Tensor? TensorValue;

    private TensorIndex(K kind, long index = 0, long? start = null, long? stop = null, long step = 1, Tensor? t = null)
    {
        Kind = kind;
        Index = index;
        Start = start;
        Stop = stop;
        Step = step;
        TensorValue = t;
    }

    public static TensorIndex Single(long i) => new(K.Single, index: i);
    public static TensorIndex Slice(long? start = null, long? stop = null, long step = 1) => new(K.Slice, start: start, stop: stop, step: step);
    public static readonly TensorIndex Colon = Slice();
    public static readonly TensorIndex Ellipsis = new(K.Ellipsis);
    /// <summary>A new axis of size 1 (Python's None).</summary>
    public static readonly TensorIndex None = new(K.None);
    public static TensorIndex Tensor(Tensor t) => new(K.Tensor, t: t);

    public static implicit operator TensorIndex(long i) => Single(i);
    public static implicit operator TensorIndex(int i) => Single(i);
    public static implicit operator TensorIndex(Tensor t) => Tensor(t);

    /// <summary>C# ranges: <c>x[.., 1..3]</c>; <c>^1</c> counts from the end.</summary>
    public static implicit operator TensorIndex(Range r)
    {
        long? start = r.Start.IsFromEnd ? (r.Start.Value == 0 ? null : -r.Start.Value) : (r.Start.Value == 0 ? null : r.Start.Value);
        long? stop = r.End.IsFromEnd ? (r.End.Value == 0 ? null : -r.End.Value) : r.End.Value;
        return Slice(start, stop);
    }

    public static implicit operator TensorIndex(Index i) => Single(i.IsFromEnd ? -i.Value : i.Value);
}

public partial class Tensor
{
    /// <summary>NumPy-style indexing: integers, slices, ranges, ellipsis, new axes and index tensors.</summary>
    public Tensor this[params TensorIndex[] indices]
    {
        get => ApplyIndex(indices);
        set
        {
            using var scope = torch.NewDisposeScope();
            if (indices.Any(i => i.Kind == TensorIndex.K.Tensor))
            {
                // Advanced assignment: basic part as a view, then index_put_ on it.
                var (view, tensorIdx) = BasicIndex(indices, collectTensors: true);
                view.index_put_(tensorIdx, value.to(view.dtype));
            }
            else
            {
                var view = ApplyIndex(indices);
                view.copy_(value);
            }
        }
    }

    /// <summary>Fills the indexed region with a constant.</summary>
    public void index_fill(double value, params TensorIndex[] indices)
    {
        using var scope = torch.NewDisposeScope();
        var view = ApplyIndex(indices);
        view.fill_(value);
    }

    private Tensor ApplyIndex(TensorIndex[] indices)
    {
        if (!indices.Any(i => i.Kind == TensorIndex.K.Tensor)) return BasicIndex(indices, false).view;
        Tensor result;
        using (var scope = torch.NewDisposeScope())
        {
            var (view, tensorIdx) = BasicIndex(indices, true);
            result = view.index(tensorIdx);
            result.MoveToOuterDisposeScope();
        }
        return result;
    }

    // Applies ints, slices, ellipsis and new axes as views; tensor indices are collected by dim.
    private (Tensor view, Tensor?[] tensorIdx) BasicIndex(TensorIndex[] indices, bool collectTensors)
    {
        int consumed = indices.Count(i => i.Kind is TensorIndex.K.Single or TensorIndex.K.Slice or TensorIndex.K.Tensor);
        if (indices.Count(i => i.Kind == TensorIndex.K.Ellipsis) > 1) throw new TorchIndexException("an index can only have a single ellipsis");
        if (consumed > dim()) throw new TorchIndexException($"too many indices for tensor of dimension {dim()}");
        Tensor cur = alias();
        var tensorIdx = new List<Tensor?>();
        long d = 0;
        foreach (var ix in indices)
        {
            Tensor next;
            switch (ix.Kind)
            {
                case TensorIndex.K.Single:
                    next = cur.select(d, ix.Index);
                    break;
                case TensorIndex.K.Slice:
                    next = cur.slice(d, ix.Start, ix.Stop, ix.Step);
                    d++;
                    if (collectTensors) tensorIdx.Add(null);
                    break;
                case TensorIndex.K.None:
                    next = cur.unsqueeze(d);
                    d++;
                    if (collectTensors) tensorIdx.Add(null);
                    break;
                case TensorIndex.K.Ellipsis:
                {
                    long skip = cur.dim() - d - (indices.SkipWhile(i => i.Kind != TensorIndex.K.Ellipsis).Skip(1)
                        .Count(i => i.Kind is TensorIndex.K.Single or TensorIndex.K.Slice or TensorIndex.K.Tensor));
                    for (long k = 0; k < skip; k++) if (collectTensors) tensorIdx.Add(null);
                    d += skip;
                    continue;
                }
                default: // tensor
                    if (!collectTensors) throw new InvalidOperationException();
                    tensorIdx.Add(ix.TensorValue!.dtype == ScalarType.Byte ? ix.TensorValue.@bool() : ix.TensorValue);
                    d += ix.TensorValue!.dtype == ScalarType.Bool || ix.TensorValue.dtype == ScalarType.Byte ? ix.TensorValue.dim() : 1;
                    continue;
            }
            cur.Dispose();
            cur = next;
        }
        // Trailing nulls are unnecessary for aten::index.
        while (tensorIdx.Count > 0 && tensorIdx[^1] is null) tensorIdx.RemoveAt(tensorIdx.Count - 1);
        return (cur, tensorIdx.ToArray());
    }
}
