using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using TorchSharp;
using TorchSam2.Utils;
using TorchSam2.Pretrained;

namespace TorchSam2.Cli.Commands;

/// <summary>
/// Options and checks shared by every command, so a number or a prompt means the same everywhere: numbers finite,
/// in range and whole where they must be; errors name the option and the value and exit with code 2.
/// </summary>
internal static class Common
{
    public static Option<string> Device()
    {
        var o = new Option<string>("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };
        Check(o, v => v is not null && System.Text.RegularExpressions.Regex.IsMatch(v.Trim(), "^(cpu|cuda(:[0-9]{1,3})?)$", System.Text.RegularExpressions.RegexOptions.IgnoreCase)
            ? null : $"--device must be cpu, cuda or cuda:N, got '{Terminal.Safe(v)}'");
        return o;
    }

    public static Option<int> Threads() =>
        Int("--threads", $"CPU threads for libtorch (0 = libtorch's default; at most {Limits.MaxThreads} here: 4 × the processors, ≤ 256)", 0, 0, Limits.MaxThreads);

    /// <summary>The --device value as a device; an unknown or unavailable device is a usage error.</summary>
    public static torch.Device ParseDevice(string s)
    {
        try { return TorchRuntime.ParseDevice(s); }
        catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
        {
            throw new UsageException($"--device: {e.Message}");
        }
    }

    public static void ApplyThreads(int n)
    {
        if (n > 0) torch.set_num_threads(n);
    }

    /// <summary>Runs a command body; any exception becomes one line (<see cref="ErrorReport"/>) and exit code 1, or 2 for usage errors.</summary>
    public static int Guard(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (ErrorReport.Remember(e))
        {
            return ErrorReport.Report(e);
        }
    }

    /// <summary>Runs a step under an <see cref="Activity"/> label, so an unexpected error says which step (and file) it came from.</summary>
    public static T Doing<T>(string what, Func<T> step)
    {
        using var _ = Activity.Doing(what);
        return step();
    }

    /// <summary>
    /// Loads a model from a checkpoint path or name ("tiny", "sam2.1_hiera_large", "glyph-demo", ...: fetched into the cache
    /// first, see <see cref="Checkpoint"/>), errors labelled with the checkpoint. With no config a named checkpoint brings its own.
    /// </summary>
    public static TorchSam2.Modeling.SAM2Base LoadModel(string checkpoint, string? config, torch.Device device)
    {
        string path = Checkpoint("--checkpoint", checkpoint);
        return Doing($"loading the model '{checkpoint}'", () => ModelLoader.Load(path, config ?? ModelLoader.ConfigFor(path), device));
    }

    /// <summary>
    /// A checkpoint option's file: an existing file as it is, a checkpoint name (tiny, small, base_plus, large,
    /// sam2.1_hiera_*, sam2_hiera_*, glyph-demo) as its cached file, downloaded with a progress bar on first use
    /// (never with --offline / TORCHSAM2_OFFLINE=1: then a missing one is an error that says so).
    /// </summary>
    public static string Checkpoint(string option, string? pathOrName)
    {
        if (string.IsNullOrEmpty(pathOrName)) throw new UsageException($"{option} needs a file or a checkpoint name");
        if (File.Exists(pathOrName) || !PretrainedCheckpoints.TryFind(pathOrName, out var named)) return ExistingFile(option, pathOrName, names: false);
        return Doing($"fetching the checkpoint '{named.Name}'", () => CheckpointStore.Fetch(named));
    }

    /// <summary>A video predictor (owning its model) over <see cref="LoadModel"/>; see <see cref="ModelLoader.VideoPredictor"/>.</summary>
    public static Sam2VideoPredictor LoadVideoPredictor(string checkpoint, string? config, torch.Device device, bool? nonOverlapMasks = null)
    {
        var model = LoadModel(checkpoint, config, device);
        try
        {
            return Doing($"reading the config of '{checkpoint}'", () => ModelLoader.VideoPredictor(model, checkpoint, config, nonOverlapMasks));
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    // ---- numeric options ------------------------------------------------------------------------------------

    /// <summary>A whole-number option in [min, max]; anything else is a parse error naming the option and value.</summary>
    public static Option<int> Int(string name, string description, int defaultValue, int min, int max, Func<int, string?>? extra = null)
    {
        var o = new Option<int>(name) { Description = description, DefaultValueFactory = _ => defaultValue };
        Check(o, v => v >= min && v <= max ? extra?.Invoke(v) : $"{name} must be a whole number in {min}..{max}, got {v}");
        return o;
    }

    /// <summary>An optional whole-number option in [min, max] (null when left out).</summary>
    public static Option<int?> OptionalInt(string name, string description, int min, int max, Func<int, string?>? extra = null)
    {
        var o = new Option<int?>(name) { Description = description };
        Check(o, v => v is not int i ? null : i < min || i > max ? $"{name} must be a whole number in {min}..{max}, got {i}" : extra?.Invoke(i));
        return o;
    }

    /// <summary>A finite number in [min, max].</summary>
    public static Option<double> Real(string name, string description, double defaultValue, double min, double max)
    {
        var o = new Option<double>(name) { Description = description, DefaultValueFactory = _ => defaultValue };
        Check(o, v => double.IsFinite(v) && v >= min && v <= max ? null : $"{name} must be a finite number in [{F(min)}, {F(max)}], got {F(v)}");
        return o;
    }

    /// <summary>Model input size: 0 for the config's, else a multiple of 16 in 64..4096 (the model's own checks follow).</summary>
    public static string? ImageSizeError(string name, int v) =>
        v == 0 || (v >= 64 && v <= Limits.MaxModelImageSize && v % 16 == 0) ? null
            : $"{name} must be 0 (the config's) or a multiple of 16 in 64..{Limits.MaxModelImageSize}, got {v}";

    private static void Check<T>(Option<T> o, Func<T, string?> check)
    {
        o.Validators.Add(r =>
        {
            if (r.Tokens.Count == 0 && r.Implicit) return; // the default
            T v;
            try { v = r.GetValueOrDefault<T>()!; }
            catch (Exception) { return; } // the parser reports a value it cannot convert
            if (check(v) is { } error) r.AddError(error);
        });
    }

    private static string F(double v) => v.ToString("G", CultureInfo.InvariantCulture);

    // ---- prompts ----------------------------------------------------------------------------------------------

    /// <summary>Parses "x,y" or "x,y,label": finite coordinates, a label of exactly 0 or 1 (1 when left out).</summary>
    public static (float x, float y, int label) ParsePoint(string option, string s)
    {
        var v = ParseNumbers(option, s, -1);
        if (v.Length is not (2 or 3)) throw new UsageException($"{option} takes x,y or x,y,label, got '{Terminal.Safe(s)}'");
        int label = 1;
        if (v.Length == 3)
        {
            if (v[2] is not (0.0 or 1.0))
                throw new UsageException($"{option} '{Terminal.Safe(s)}': the label must be 0 (background) or 1 (foreground), got {F(v[2])}");
            label = (int)v[2];
        }
        return ((float)v[0], (float)v[1], label);
    }

    /// <summary>Parses "x0,y0,x1,y1": four finite numbers with x0 ≤ x1 and y0 ≤ y1.</summary>
    public static float[] ParseBox(string option, string s)
    {
        var v = ParseNumbers(option, s, 4);
        if (v[2] < v[0] || v[3] < v[1]) throw new UsageException($"{option} '{Terminal.Safe(s)}' has x1 < x0 or y1 < y0 (expected x0,y0,x1,y1)");
        return v.Select(d => (float)d).ToArray();
    }

    /// <summary>Checks parsed prompts against the image size (0..width, 0..height): a usage error naming the option otherwise.</summary>
    public static void CheckInImage(string pointOption, IEnumerable<(float x, float y, int label)> points, string boxOption, float[]? box, int width, int height)
    {
        try
        {
            foreach (var p in points) PromptChecks.CheckPoint(p.x, p.y, width, height, pointOption);
            if (box is not null) PromptChecks.CheckBox(box, width, height, boxOption);
        }
        catch (ArgumentException e)
        {
            var m = e.Message;
            if (e.ParamName is { } pn && m.EndsWith($" (Parameter '{pn}')", StringComparison.Ordinal)) m = m[..^($" (Parameter '{pn}')".Length)];
            throw new UsageException(m);
        }
    }

    /// <summary>Parses exactly <paramref name="count"/> comma-separated whole numbers (e.g. channel widths).</summary>
    public static int[] ParseWholeNumbers(string option, string s, int count)
    {
        var v = ParseNumbers(option, s, count);
        foreach (var d in v)
            if (d != Math.Floor(d) || Math.Abs(d) > int.MaxValue)
                throw new UsageException($"{option}: '{F(d)}' is not a whole number (in '{Terminal.Safe(s)}')");
        return v.Select(d => (int)d).ToArray();
    }

    private static double[] ParseNumbers(string option, string s, int count)
    {
        var parts = s.Split(',', StringSplitOptions.TrimEntries);
        if (count > 0 && parts.Length != count) throw new UsageException($"{option} takes {count} comma-separated numbers, got '{Terminal.Safe(s)}'");
        var v = new double[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!double.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out v[i]))
                throw new UsageException($"{option}: '{Terminal.Safe(parts[i])}' is not a number (in '{Terminal.Safe(s)}')");
            // a float coordinate: 1e39 would become infinity
            if (!double.IsFinite(v[i]) || Math.Abs(v[i]) > float.MaxValue)
                throw new UsageException($"{option}: '{Terminal.Safe(parts[i])}' is not a finite number (in '{Terminal.Safe(s)}')");
        }
        return v;
    }

    // ---- inputs -----------------------------------------------------------------------------------------------

    /// <summary>
    /// A file input that must exist (exit code 1 with its option named otherwise). For --checkpoint a checkpoint name
    /// works too (<see cref="Checkpoint"/>).
    /// </summary>
    public static string ExistingFile(string option, string? path) => ExistingFile(option, path, names: option == "--checkpoint");

    private static string ExistingFile(string option, string? path, bool names)
    {
        if (names) return Checkpoint(option, path);
        if (string.IsNullOrEmpty(path)) throw new UsageException($"{option} needs a file");
        if (Directory.Exists(path)) throw new FileNotFoundException($"{option} '{Terminal.Safe(path)}' is a folder, not a file", path);
        if (!File.Exists(path))
            throw new FileNotFoundException(option == "--checkpoint"
                ? $"{option}: file not found: '{Terminal.Safe(path)}' (nor is it a checkpoint name: {PretrainedCheckpoints.KnownNames})"
                : $"{option}: file not found: '{Terminal.Safe(path)}'", path);
        return path;
    }

    /// <summary>The config as an input file when it names one (built-in names are not files).</summary>
    public static string? ConfigFile(string? config) => config is not null && File.Exists(config) ? config : null;
}
