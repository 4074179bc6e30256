using System.Reflection;
using TorchSam2.Checkpoints;
using TorchSam2.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchSam2.Glyphs;

/// <summary>
/// The learned glyph-centre step of the glyph pipeline (<see cref="GlyphSplitMethod.Centres"/>): a small U-Net that reads
/// a sheet's darkness with its blur undone (0 = background, 1 = ink; <see cref="GlyphSegmenter.FindInk"/>) and predicts, per pixel, a
/// glyph-centre heatmap logit and the offset from the pixel to the centre of the glyph it belongs to, in units of
/// <see cref="OffsetScale"/> px, and whether the pixel is glyph at all (channels: heat, dx, dy, foreground logit; the
/// foreground is the glyphs' own coverage ≥ 0.5). Every glyph pixel then votes for a centre
/// (<see cref="GlyphCentres"/>), which cuts touching letters apart and keeps an i's dot with its i; the approach is
/// Panoptic-DeepLab's centre regression, at the size of a glyph.
/// </summary>
public sealed class GlyphCentreNet : nn.Module<Tensor, Tensor>
{
    /// <summary>Offsets are predicted divided by this many pixels.</summary>
    public const float OffsetScale = 16;

    /// <summary>Inputs are padded to a multiple of this (four 2× poolings).</summary>
    public const int Stride = 16;

    private readonly ModuleList<Sequential> down = new();
    private readonly ModuleList<Sequential> up = new();
    private readonly Conv2d head;
    private readonly Conv2d? fg_head;

    public IReadOnlyList<int> Channels { get; }

    /// <summary>Whether the net also predicts the foreground (a fourth channel).</summary>
    public bool HasForeground => fg_head is not null;

    /// <param name="channels">Feature widths from full resolution down (five levels).</param>
    /// <param name="foreground">Also predict which pixels are glyph (channel 3).</param>
    public GlyphCentreNet(int[]? channels = null, bool foreground = true) : base(nameof(GlyphCentreNet))
    {
        channels ??= DefaultChannels;
        if (!ValidChannels(channels)) throw new ArgumentException("GlyphCentreNet takes five channel widths in 1..1024");
        Channels = channels;
        int cin = 1;
        foreach (var c in channels)
        {
            down.Add(Block(cin, c));
            cin = c;
        }
        for (int i = channels.Length - 2; i >= 0; i--)
            up.Add(Block(channels[i + 1] + channels[i], channels[i]));
        head = nn.Conv2d(channels[0], 3, 1);
        // centres are rare: the heatmap starts near 0.01 everywhere (CenterNet's prior), not at 0.5
        using (no_grad()) head.bias![0].fill_(-4.6);
        if (foreground) fg_head = nn.Conv2d(channels[0], 1, 1);
        RegisterComponents();
    }

    private static readonly int[] DefaultChannels = [16, 24, 32, 48, 64];

    private static bool ValidChannels(int[] channels) => channels.Length == 5 && channels.All(c => c >= 1 && c <= 1024);

    private static Sequential Block(int cin, int cout) => nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding: 1, bias: false), nn.BatchNorm2d(cout), nn.ReLU(inplace: true),
        nn.Conv2d(cout, cout, 3, padding: 1, bias: false), nn.BatchNorm2d(cout), nn.ReLU(inplace: true));

    /// <param name="darkness">B×1×H×W, H and W multiples of <see cref="Stride"/>.</param>
    /// <returns>B×3×H×W: heat logit, dx / OffsetScale, dy / OffsetScale; B×4×H×W with the foreground logit last.</returns>
    public override Tensor forward(Tensor darkness)
    {
        using var scope = NewDisposeScope();
        var skips = new List<Tensor>();
        var x = darkness;
        for (int i = 0; i < down.Count; i++)
        {
            if (i > 0) x = nn.functional.max_pool2d(x, 2);
            x = down[i].call(x);
            skips.Add(x);
        }
        for (int i = 0; i < up.Count; i++)
        {
            var skip = skips[skips.Count - 2 - i];
            x = nn.functional.interpolate(x, size: [skip.shape[2], skip.shape[3]], mode: InterpolationMode.Nearest);
            x = up[i].call(cat([x, skip], 1));
        }
        var y = head.call(x);
        if (fg_head is not null) y = cat([y, fg_head.call(x)], 1);
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// A wider net that computes exactly what this one does (Net2Net's function-preserving widening, with zeros): every
    /// old weight is copied, the new channels start random, and everything that reads them starts at zero, so training
    /// on adds capacity without first forgetting what was learned.
    /// </summary>
    /// <param name="channels">The new widths, each at least the old one.</param>
    public GlyphCentreNet Widen(int[] channels)
    {
        if (!ValidChannels(channels) || channels.Zip(Channels).Any(p => p.First < p.Second))
            throw new ArgumentException($"widening takes five widths in 1..1024, none narrower than now ({string.Join(',', Channels)})");
        var wide = new GlyphCentreNet(channels, HasForeground);
        var old = Channels.ToArray();
        using (no_grad())
        {
            var src = state_dict();
            foreach (var (key, dst) in wide.state_dict())
            {
                var s = src[key];
                if (s.dim() == 0) { dst.copy_(s); continue; } // BatchNorm's step count
                int outs = (int)s.shape[0];
                if (s.dim() == 1) { dst[..outs].copy_(s); continue; } // biases and BatchNorm: the old channels first
                // a convolution: the old outputs read the old inputs where they now are, and nothing new
                dst[..outs].zero_();
                foreach (var (from, to, n) in OldInputs(key, old, channels))
                    dst[..outs, to..(to + n)].copy_(s[.., from..(from + n)]);
            }
        }
        wide.train(training);
        return wide;
    }

    // Where a convolution's old input channels are, as (old start, new start, count) runs: down.i reads level i − 1
    // (the image at i = 0), up.j reads cat(level l + 1 upsampled, level l's skip) with l = 3 − j, and the second
    // convolution of a block, the head and the foreground head read their own level.
    private static (int From, int To, int Count)[] OldInputs(string key, int[] old, int[] now)
    {
        var parts = key.Split('.');
        bool first = parts.Length > 2 && parts[2] == "0";
        int level = parts[0] switch { "down" => int.Parse(parts[1]), "up" => 3 - int.Parse(parts[1]), _ => 0 };
        if (!first) return [(0, 0, old[level])];
        return parts[0] == "down"
            ? [(0, 0, level == 0 ? 1 : old[level - 1])]
            : [(0, 0, old[level + 1]), (old[level + 1], now[level + 1], old[level])];
    }

    /// <summary>The demo weights that ship inside the library (trained by tools/glyph_demo.sh on training fonts only).</summary>
    public static GlyphCentreNet Embedded()
    {
        var asm = typeof(GlyphCentreNet).Assembly;
        // a manifest resource stream is seekable, as the reader needs
        using var s = asm.GetManifestResourceStream(EmbeddedResource)
                      ?? throw new FileNotFoundException($"the glyph-centre weights are not embedded in {asm.GetName().Name} ('{EmbeddedResource}')");
        return Load(SafeTensors.Read(s));
    }

    internal const string EmbeddedResource = "weights/glyph-centres.safetensors";

    /// <summary>Weights written by <see cref="Save"/> (a .safetensors file); keys and shapes are checked before anything is copied.</summary>
    /// <param name="foreground">Build the foreground head even when the file has none (it starts untrained): for
    /// training on from weights without one.</param>
    public static GlyphCentreNet Load(string path, bool foreground = false) => Load(SafeTensors.Read(path), foreground);

    private static GlyphCentreNet Load(SafeTensorsFile file, bool foreground = false)
    {
        int[] channels = file.Metadata.TryGetValue("channels", out var c)
            ? c.Split(',').Select(v => int.TryParse(v, out var n) ? n : throw new CheckpointException($"glyph-centre weights: bad channels '{UntrustedText.Escape(c, 64)}'")).ToArray()
            : DefaultChannels;
        if (!ValidChannels(channels))
            throw new CheckpointException($"glyph-centre weights: bad channels '{UntrustedText.Escape(c ?? "", 64)}'");
        bool stored = file.Tensors.ContainsKey("fg_head.weight");
        var net = new GlyphCentreNet(channels, stored || foreground);
        var tensors = file.Tensors.ToDictionary(kv => kv.Key, kv => kv.Value.ToTensor());
        try
        {
            // strict, except for a foreground head asked for and not stored
            var result = net.load_state_dict_checked(tensors, strict: stored || !foreground);
            if (result.Missing.Any(k => !k.StartsWith("fg_head.")) || result.Unexpected.Count > 0)
                throw new CheckpointException($"glyph-centre weights: {result}");
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
        net.eval();
        return net;
    }

    /// <summary>Writes the weights (and the channel widths) as .safetensors, whole or not at all.</summary>
    public void Save(string path)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        string tmp = path + ".tmp";
        SafeTensors.Write(tmp, Sam2Trainer.StateRecords(this), new Dictionary<string, string> { ["channels"] = string.Join(',', Channels), ["kind"] = "glyph-centres" });
        File.Move(tmp, path, overwrite: true);
    }
}
