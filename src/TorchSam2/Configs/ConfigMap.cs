using System.Globalization;

namespace TorchSam2.Configs;

/// <summary>Typed reads from one YAML mapping, with the YAML path in every error message.</summary>
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

    private string At(string key) => $"{Path}.{key}";

    private Sam2ConfigException Bad(string key, string expected, object? got) =>
        new($"{At(key)}: expected {expected}, got {Show(got)}");

    private static string Show(object? v) => v switch
    {
        null => "null",
        string s => $"'{s}'",
        IConvertible c => c.ToString(CultureInfo.InvariantCulture),
        _ => v.GetType().Name,
    };

    private bool TryGet(string key, out object? value) => Raw.TryGetValue(key, out value);

    private object? Required(string key) =>
        TryGet(key, out object? v) ? v : throw new Sam2ConfigException($"{At(key)}: required key is missing");

    public int Int(string key, int fallback) => TryGet(key, out object? v) ? ToInt(key, v) : fallback;

    public int RequiredInt(string key) => ToInt(key, Required(key));

    public int? NullableInt(string key, int? fallback = null) =>
        TryGet(key, out object? v) ? v is null ? null : ToInt(key, v) : fallback;

    public double Double(string key, double fallback) => TryGet(key, out object? v) ? ToDouble(key, v) : fallback;

    public double RequiredDouble(string key) => ToDouble(key, Required(key));

    public double? NullableDouble(string key, double? fallback = null) =>
        TryGet(key, out object? v) ? v is null ? null : ToDouble(key, v) : fallback;

    public bool Bool(string key, bool fallback) => TryGet(key, out object? v) ? ToBool(key, v) : fallback;

    public bool RequiredBool(string key) => ToBool(key, Required(key));

    public string String(string key, string fallback) =>
        TryGet(key, out object? v) ? v as string ?? throw Bad(key, "a string", v) : fallback;

    public string RequiredString(string key) => Required(key) as string ?? throw Bad(key, "a string", Raw[key]);

    public IReadOnlyList<int> Ints(string key, IReadOnlyList<int> fallback) => TryGet(key, out object? v) ? ToInts(key, v) : fallback;

    public IReadOnlyList<int> RequiredInts(string key) => ToInts(key, Required(key));

    public IReadOnlyList<int>? NullableInts(string key) => TryGet(key, out object? v) && v is not null ? ToInts(key, v) : null;

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

    private IReadOnlyList<int> ToInts(string key, object? v)
    {
        if (v is not IReadOnlyList<object?> list) throw Bad(key, "a list of integers", v);
        var r = new int[list.Count];
        for (int i = 0; i < r.Length; i++) r[i] = ToInt($"{key}[{i}]", list[i]);
        return r;
    }
}
