using TorchSam2.Glyphs;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchSam2.Training;

/// <summary>How <see cref="GlyphCentreTraining"/> trains a <see cref="GlyphCentreNet"/>.</summary>
public sealed record GlyphCentreTrainingOptions
{
    /// <summary>Optimizer steps.</summary>
    public int Steps { get; init; } = 1500;
    public int BatchSize { get; init; } = 8;
    /// <summary>Side of the square training crops (a multiple of <see cref="GlyphCentreNet.Stride"/>).</summary>
    public int CropSize { get; init; } = 256;
    /// <summary>Side of the generated sheets the crops come from.</summary>
    public int SheetSize { get; init; } = 512;
    /// <summary>Crops taken from each sheet before the next is generated.</summary>
    public int CropsPerSheet { get; init; } = 8;
    public double LearningRate { get; init; } = 2e-3;
    public int WarmupSteps { get; init; } = 100;
    public int Seed { get; init; }
    /// <summary>Fonts of this split only (the held-out fonts stay unseen).</summary>
    public FontSplit Split { get; init; } = FontSplit.Train;
    /// <summary>Weight of the offset loss against the heatmap's focal loss.</summary>
    public double OffsetWeight { get; init; } = 4;
    /// <summary>Also train the foreground head (a new net gets one; weights without one get a fresh one).</summary>
    public bool Foreground { get; init; }
    /// <summary>Stop after this many steps of the <see cref="Steps"/>-step schedule (null: run it all).</summary>
    public int? StopAt { get; init; }
    /// <summary>Tight and crowded lines are drawn with each face scaled horizontally by a factor in [MinWidthScale,
    /// MaxWidthScale] (<see cref="SpecimenOptions.MinWidthScale"/>), so the net sees condensed cuts the training fonts lack.</summary>
    public double MinWidthScale { get; init; } = 1;
    public double MaxWidthScale { get; init; } = 1;
    /// <summary>Add a style: crowded sheets shaped without ligatures, so runs the fonts would join (ff, ffi, fl)
    /// are seen as separate, overlapping letters, as they are set in fonts that have no ligature glyphs.</summary>
    public bool UnligatedCrowded { get; init; }
    /// <summary>Add a style of crowded sheets in small sizes only (8–24 px), where touching letters are hardest to part.</summary>
    public bool SmallCrowded { get; init; }

    /// <summary>The last step this run takes.</summary>
    public int LastStep => Math.Min(Steps, StopAt ?? Steps);
}

/// <summary>
/// Trains the glyph-centre net on freshly generated specimen sheets: tight, crowded and classic layouts in the training
/// fonts, 8–120 px, with the exact per-glyph masks of <see cref="SpecimenGenerator"/> as truth. The heatmap learns with
/// CenterNet's penalty-reduced focal loss, the offsets with a smooth L1 weighted by 1/√(glyph area).
/// </summary>
public static class GlyphCentreTraining
{
    public static void Check(GlyphCentreTrainingOptions o)
    {
        if (o.Steps is < 1 or > 1_000_000) throw new ArgumentException($"steps must be 1..1000000 (got {o.Steps})");
        if (o.BatchSize is < 1 or > 256) throw new ArgumentException($"batch size must be 1..256 (got {o.BatchSize})");
        if (o.CropSize < GlyphCentreNet.Stride || o.CropSize > 2048 || o.CropSize % GlyphCentreNet.Stride != 0)
            throw new ArgumentException($"crop size must be a multiple of {GlyphCentreNet.Stride} in {GlyphCentreNet.Stride}..2048 (got {o.CropSize})");
        if (o.SheetSize < o.CropSize || o.SheetSize > 4096) throw new ArgumentException($"sheet size must be {o.CropSize}..4096 (got {o.SheetSize})");
        if (o.StopAt is < 1) throw new ArgumentException($"stop-at must be at least 1 (got {o.StopAt})");
        if (o.CropsPerSheet is < 1 or > 1024) throw new ArgumentException($"crops per sheet must be 1..1024 (got {o.CropsPerSheet})");
        if (!(o.LearningRate > 0 && o.LearningRate < 1)) throw new ArgumentException($"learning rate must be in (0, 1) (got {o.LearningRate})");
        if (!(o.MinWidthScale >= 0.25 && o.MaxWidthScale <= 4 && o.MinWidthScale <= o.MaxWidthScale))
            throw new ArgumentException($"width scales must satisfy 0.25 <= min <= max <= 4 (got {o.MinWidthScale}..{o.MaxWidthScale})");
    }

    /// <summary>The sheet styles training draws from, in turn.</summary>
    public static SpecimenOptions[] Styles(GlyphCentreTrainingOptions o)
    {
        var crowded = SpecimenOptions.Crowded with { Width = o.SheetSize, Height = o.SheetSize, Split = o.Split, MinWidthScale = o.MinWidthScale, MaxWidthScale = o.MaxWidthScale };
        SpecimenOptions[] styles =
        [
            SpecimenOptions.Tight with { Width = o.SheetSize, Height = o.SheetSize, Split = o.Split, MinWidthScale = o.MinWidthScale, MaxWidthScale = o.MaxWidthScale },
            crowded,
            new SpecimenOptions { Width = o.SheetSize, Height = o.SheetSize, Split = o.Split, MaxSizePx = 120, NoiseStd = 3 },
        ];
        if (o.UnligatedCrowded) styles = [.. styles, crowded with { Ligatures = false }];
        if (o.SmallCrowded) styles = [.. styles, crowded with { MaxSizePx = 24 }];
        return styles;
    }

    /// <summary>Crops of generated sheets: input (B×1×S×S), heat, dx, dy, weight and foreground (B×S×S each).</summary>
    public sealed class Batches(GlyphCentreTrainingOptions o)
    {
        private readonly Random _rng = new(o.Seed);
        private readonly SpecimenOptions[] _styles = Styles(o);
        private int _sheet;
        private (float[] In, float[] Heat, float[] Dx, float[] Dy, float[] W, float[] Fg) _current;
        private int _left;

        public (Tensor Input, Tensor Heat, Tensor Dx, Tensor Dy, Tensor Weight, Tensor Fg) Next()
        {
            int s = o.CropSize, n = o.BatchSize, sheet = o.SheetSize;
            var input = new float[n * s * s];
            var heat = new float[n * s * s];
            var dx = new float[n * s * s];
            var dy = new float[n * s * s];
            var wt = new float[n * s * s];
            var fg = new float[n * s * s];
            for (int b = 0; b < n; b++)
            {
                if (_left == 0)
                {
                    var (img, glyphs) = SpecimenGenerator.Generate(_styles[_sheet % _styles.Length], SpecimenGenerator.SheetSeed(o.Seed, _sheet));
                    _sheet++;
                    var t = GlyphCentres.Targets(img.Height, img.Width, glyphs);
                    _current = (GlyphCentres.Input(GlyphSegmenter.FindInk(img)), t.Heat, t.Dx, t.Dy, t.Weight, t.Fg);
                    _left = o.CropsPerSheet;
                }
                _left--;
                int x0 = _rng.Next(sheet - s + 1), y0 = _rng.Next(sheet - s + 1);
                for (int y = 0; y < s; y++)
                {
                    int src = (y0 + y) * sheet + x0, dst = (b * s + y) * s;
                    Array.Copy(_current.In, src, input, dst, s);
                    Array.Copy(_current.Heat, src, heat, dst, s);
                    Array.Copy(_current.Dx, src, dx, dst, s);
                    Array.Copy(_current.Dy, src, dy, dst, s);
                    Array.Copy(_current.W, src, wt, dst, s);
                    Array.Copy(_current.Fg, src, fg, dst, s);
                }
            }
            return (tensor(input, [n, 1, s, s]), tensor(heat, [n, s, s]), tensor(dx, [n, s, s]), tensor(dy, [n, s, s]), tensor(wt, [n, s, s]), tensor(fg, [n, s, s]));
        }
    }

    /// <summary>The loss of one batch: focal loss on the heatmap, plus the weighted offset loss, plus (with a foreground
    /// channel) the foreground's binary cross-entropy.</summary>
    public static (Tensor Total, double Heat, double Offset) Loss(Tensor output, Tensor heat, Tensor dx, Tensor dy, Tensor weight, Tensor? fg, double offsetWeight)
    {
        using var scope = NewDisposeScope();
        var p = sigmoid(output[.., 0]).clamp(1e-4, 1 - 1e-4);
        var pos = heat.ge(0.999).to_type(ScalarType.Float32);
        var neg = (1 - heat).pow(4);
        var focal = pos * (1 - p).pow(2) * log(p) + (1 - pos) * neg * p.pow(2) * log(1 - p);
        var heatLoss = -focal.sum() / pos.sum().clamp_min(1);
        var off = nn.functional.smooth_l1_loss(output[.., 1], dx, reduction: nn.Reduction.None, beta: 1.0 / GlyphCentreNet.OffsetScale)
                  + nn.functional.smooth_l1_loss(output[.., 2], dy, reduction: nn.Reduction.None, beta: 1.0 / GlyphCentreNet.OffsetScale);
        var offLoss = (off * weight).sum() / weight.sum().clamp_min(1e-6);
        var total = heatLoss + offsetWeight * offLoss;
        if (fg is not null && output.shape[1] > 3) total = total + nn.functional.binary_cross_entropy_with_logits(output[.., 3], fg);
        return (total.MoveToOuterDisposeScope(), heatLoss.item<float>(), offLoss.item<float>());
    }

    /// <summary>Trains <paramref name="net"/> (a new one when null) and returns it in eval mode.</summary>
    public static GlyphCentreNet Train(GlyphCentreTrainingOptions o, GlyphCentreNet? net = null, IProgress<(int Step, double Heat, double Offset)>? progress = null,
                                       Action<GlyphCentreNet, int>? checkpoint = null, int checkpointEvery = 0)
    {
        Check(o);
        torch.manual_seed(o.Seed);
        net ??= new GlyphCentreNet(foreground: o.Foreground);
        net.train();
        var batches = new Batches(o);
        using var opt = optim.AdamW(net.parameters(), lr: o.LearningRate, weight_decay: 1e-4);
        double emaHeat = double.NaN, emaOff = double.NaN;
        for (int step = 1; step <= o.LastStep; step++)
        {
            // linear warm-up, then cosine decay to a tenth
            double lr = step <= o.WarmupSteps
                ? o.LearningRate * step / Math.Max(1, o.WarmupSteps)
                : o.LearningRate * (0.1 + 0.9 * 0.5 * (1 + Math.Cos(Math.PI * (step - o.WarmupSteps) / Math.Max(1, o.Steps - o.WarmupSteps))));
            foreach (var g in opt.ParamGroups) g.LearningRate = lr;
            using (var scope = NewDisposeScope())
            {
                var (x, heat, dx, dy, w, fg) = batches.Next();
                opt.zero_grad();
                var (loss, lh, lo) = Loss(net.call(x), heat, dx, dy, w, fg, o.OffsetWeight);
                loss.backward();
                opt.step();
                emaHeat = double.IsNaN(emaHeat) ? lh : 0.95 * emaHeat + 0.05 * lh;
                emaOff = double.IsNaN(emaOff) ? lo : 0.95 * emaOff + 0.05 * lo;
            }
            progress?.Report((step, emaHeat, emaOff));
            if (checkpointEvery > 0 && step % checkpointEvery == 0 && step < o.LastStep) checkpoint?.Invoke(net, step);
        }
        net.eval();
        return net;
    }
}
