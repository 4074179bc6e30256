using System.Globalization;
using TorchSam2.Checkpoints;

namespace TorchSam2.Configs;

/// <summary>
/// Typed reads from one YAML mapping, with the YAML path in every error message. Numbers can be held to a range
/// (checked only when the key is present: defaults are valid), and text from the file is shown escaped.
/// </summary>
internal sealed class ConfigMap
{
    public ConfigMap(IReadOnlyDictionary<string, object?> raw, string path)
    {
        Raw = raw;
        Path = path;
    }

    public IReadOnlyDictionary<string, object?> Raw { get; }

    public string Path { get; }

    public string? Target => Raw.TryGetValue("_target_", out object? t) ? t as string : null;

    /// <summary>
    /// The <c>_target_</c> (or <paramref name="fallback"/> when absent), which must be one of <paramref name="allowed"/>:
    /// a config names a Python class to build, and TorchSam2 builds only the ones it implements.
    /// </summary>
    public string CheckedTarget(string fallback, params string[] allowed)
    {
        if (!TryGet("_target_", out object? v)) return fallback;
        if (v is string t && allowed.Contains(t, StringComparer.Ordinal)) return t;
        throw new Sam2ConfigException($"{At("_target_")}: unknown {Show(v)}; allowed: {string.Join(", ", allowed)}");
    }

    public string At(string key) => $"{Path}.{key}";

    /// <summary>A problem with <paramref name="key"/>, named by its YAML path.</summary>
    public Sam2ConfigException Fail(string key, string what) => new($"{At(key)}: {what}");

    private Sam2ConfigException Bad(string key, string expected, object? got) =>
        new($"{At(key)}: expected {expected}, got {Show(got)}");

    private static string Show(object? v) => v switch
    {
        null => "null",
        string s => UntrustedText.Quote(s, 80),
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        IConvertible c => c.ToString(CultureInfo.InvariantCulture),
        _ => v.GetType().Name,
    };

    private bool TryGet(string key, out object? value) => Raw.TryGetValue(key, out value);

    private object? Required(string key) =>
        TryGet(key, out object? v) ? v : throw new Sam2ConfigException($"{At(key)}: required key is missing");

    public int Int(string key, int fallback, int min = int.MinValue, int max = int.MaxValue) =>
        TryGet(key, out object? v) ? InRange(key, ToInt(key, v), min, max) : fallback;

    public int RequiredInt(string key, int min = int.MinValue, int max = int.MaxValue) => InRange(key, ToInt(key, Required(key)), min, max);

    public int? NullableInt(string key, int? fallback = null, int min = int.MinValue, int max = int.MaxValue) =>
        TryGet(key, out object? v) ? v is null ? null : InRange(key, ToInt(key, v), min, max) : fallback;

    /// <summary>A finite number in [min, max] (or [min, max) with <paramref name="maxExclusive"/>).</summary>
    public double Double(string key, double fallback, double min = double.MinValue, double max = double.MaxValue, bool maxExclusive = false) =>
        TryGet(key, out object? v) ? InRange(key, ToDouble(key, v), min, max, maxExclusive) : fallback;

    public double RequiredDouble(string key, double min = double.MinValue, double max = double.MaxValue, bool maxExclusive = false) =>
        InRange(key, ToDouble(key, Required(key)), min, max, maxExclusive);

    public double? NullableDouble(string key, double? fallback = null, double min = double.MinValue, double max = double.MaxValue) =>
        TryGet(key, out object? v) ? v is null ? null : InRange(key, ToDouble(key, v), min, max, false) : fallback;

    /// <summary>One of the <paramref name="allowed"/> strings.</summary>
    public string Choice(string key, string fallback, params string[] allowed) => CheckChoice(key, String(key, fallback), allowed);

    public string RequiredChoice(string key, params string[] allowed) => CheckChoice(key, RequiredString(key), allowed);

    private string CheckChoice(string key, string value, string[] allowed) =>
        allowed.Contains(value, StringComparer.Ordinal) ? value
            : throw Fail(key, $"expected one of {string.Join(", ", allowed)}, got {Show(value)}");

    private int InRange(string key, int v, int min, int max) =>
        v < min ? throw Fail(key, $"must be at least {min}, got {v}")
        : v > max ? throw Fail(key, $"must be at most {max.ToString("N0", CultureInfo.InvariantCulture)}, got {v.ToString("N0", CultureInfo.InvariantCulture)}")
        : v;

    private double InRange(string key, double v, double min, double max, bool maxExclusive)
    {
        if (!double.IsFinite(v)) throw Fail(key, $"must be a finite number, got {Show(v)}");
        if (v < min) throw Fail(key, $"must be at least {Show(min)}, got {Show(v)}");
        if (v > max || (maxExclusive && v == max)) throw Fail(key, $"must be {(maxExclusive ? "below" : "at most")} {Show(max)}, got {Show(v)}");
        return v;
    }

    public bool Bool(string key, bool fallback) => TryGet(key, out object? v) ? ToBool(key, v) : fallback;

    public bool RequiredBool(string key) => ToBool(key, Required(key));

    public string String(string key, string fallback) =>
        TryGet(key, out object? v) ? v as string ?? throw Bad(key, "a string", v) : fallback;

    public string RequiredString(string key) => Required(key) as string ?? throw Bad(key, "a string", Raw[key]);

    /// <summary>A list of integers, each in [min, max], of minCount to maxCount items.</summary>
    public IReadOnlyList<int> Ints(string key, IReadOnlyList<int> fallback, int min = int.MinValue, int max = int.MaxValue,
                                   int minCount = 0, int maxCount = 1024) =>
        TryGet(key, out object? v) ? ToInts(key, v, min, max, minCount, maxCount) : fallback;

    public IReadOnlyList<int> RequiredInts(string key, int min = int.MinValue, int max = int.MaxValue, int minCount = 0, int maxCount = 1024) =>
        ToInts(key, Required(key), min, max, minCount, maxCount);

    public IReadOnlyList<int>? NullableInts(string key, int min = int.MinValue, int max = int.MaxValue, int minCount = 0, int maxCount = 1024) =>
        TryGet(key, out object? v) && v is not null ? ToInts(key, v, min, max, minCount, maxCount) : null;

    public ConfigMap RequiredMap(string key) => ToMap(key, Required(key));

    public ConfigMap? OptionalMap(string key) => TryGet(key, out object? v) && v is not null ? ToMap(key, v) : null;

    private ConfigMap ToMap(string key, object? v) =>
        v is IReadOnlyDictionary<string, object?> d ? new ConfigMap(d, At(key)) : throw Bad(key, "a mapping", v);

    private int ToInt(string key, object? v) => v switch
    {
        long l when l is >= int.MinValue and <= int.MaxValue => (int)l,
        double d when d == Math.Floor(d) && d is >= int.MinValue and <= int.MaxValue => (int)d,
        _ => throw Bad(key, "an integer", v),
    };

    private double ToDouble(string key, object? v) => v switch
    {
        long l => l,
        double d => d,
        // PyYAML-written configs may quote exponent floats; accept numeric strings.
        string s when double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double p) => p,
        _ => throw Bad(key, "a number", v),
    };

    private bool ToBool(string key, object? v) => v as bool? ?? throw Bad(key, "true or false", v);

    private IReadOnlyList<int> ToInts(string key, object? v, int min, int max, int minCount, int maxCount)
    {
        if (v is not IReadOnlyList<object?> list) throw Bad(key, "a list of integers", v);
        if (list.Count < minCount || list.Count > maxCount)
            throw Fail(key, minCount == maxCount ? $"must hold {minCount} integers, got {list.Count}"
                                                 : $"must hold {minCount} to {maxCount} integers, got {list.Count}");
        var r = new int[list.Count];
        for (int i = 0; i < r.Length; i++) r[i] = InRange($"{key}[{i}]", ToInt($"{key}[{i}]", list[i]), min, max);
        return r;
    }
}
