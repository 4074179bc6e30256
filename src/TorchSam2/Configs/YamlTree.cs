using System.Globalization;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace TorchSam2.Configs;

/// <summary>
/// Converts YAML into a plain tree: <c>IReadOnlyDictionary&lt;string, object?&gt;</c> (key order kept),
/// <c>IReadOnlyList&lt;object?&gt;</c>, and scalars typed as null, bool, long, double or string.
/// Anchors/aliases resolve to the same converted object. Unlike PyYAML's YAML 1.1 resolver,
/// exponent floats without a dot (<c>1e-6</c>) are numbers, as OmegaConf/Hydra read them.
/// </summary>
public static partial class YamlTree
{
    /// <summary>Parses the first document of <paramref name="yaml"/>; an empty document gives an empty map.</summary>
    public static object? Parse(string yaml)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(yaml));
        }
        catch (YamlException e)
        {
            throw new Sam2ConfigException($"invalid YAML at line {e.Start.Line}, column {e.Start.Column}: {e.Message}", e);
        }
        catch (InvalidOperationException e)
        {
            // YamlDotNet's scanner throws this for some unterminated flow collections at end of input.
            throw new Sam2ConfigException("invalid YAML: unexpected end of input (unterminated [ ] or { }?)", e);
        }
        if (stream.Documents.Count == 0) return new OrderedDictionary<string, object?>();
        return Convert(stream.Documents[0].RootNode, new Dictionary<YamlNode, object?>(ReferenceEqualityComparer.Instance));
    }

    // Iterative conversion is unnecessary: configs are shallow, and aliased nodes are converted once
    // (memoized by identity), so alias chains cannot blow up.
    private static object? Convert(YamlNode node, Dictionary<YamlNode, object?> done)
    {
        if (done.TryGetValue(node, out object? cached)) return cached;
        object? result;
        switch (node)
        {
            case YamlMappingNode map:
            {
                var d = new OrderedDictionary<string, object?>();
                done[node] = d;
                foreach (var (k, v) in map.Children)
                {
                    string key = k is YamlScalarNode ks ? ks.Value ?? "" : throw Error(k, "only scalar keys are supported");
                    if (!d.TryAdd(key, Convert(v, done))) throw Error(k, $"duplicate key '{key}'");
                }
                return d;
            }
            case YamlSequenceNode seq:
            {
                var list = new List<object?>();
                done[node] = list;
                foreach (var item in seq.Children) list.Add(Convert(item, done));
                return list;
            }
            case YamlScalarNode scalar:
                result = scalar.Style is ScalarStyle.Plain ? ResolvePlain(scalar.Value ?? "") : scalar.Value;
                break;
            default:
                throw Error(node, $"unsupported YAML node {node.NodeType}");
        }
        done[node] = result;
        return result;
    }

    /// <summary>Types a plain (unquoted) scalar the way Hydra's YAML loader would.</summary>
    public static object? ResolvePlain(string s)
    {
        switch (s)
        {
            case "" or "~" or "null" or "Null" or "NULL": return null;
            case "true" or "True" or "TRUE" or "yes" or "Yes" or "YES" or "on" or "On" or "ON": return true;
            case "false" or "False" or "FALSE" or "no" or "No" or "NO" or "off" or "Off" or "OFF": return false;
            case ".inf" or ".Inf" or ".INF" or "+.inf" or "+.Inf" or "+.INF": return double.PositiveInfinity;
            case "-.inf" or "-.Inf" or "-.INF": return double.NegativeInfinity;
            case ".nan" or ".NaN" or ".NAN": return double.NaN;
        }
        string t = s.Replace("_", "");
        if (IntPattern().IsMatch(t) && long.TryParse(t, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long l)) return l;
        if (t.StartsWith("0x", StringComparison.OrdinalIgnoreCase) &&
            long.TryParse(t.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out long hex)) return hex;
        if (FloatPattern().IsMatch(t) && double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out double d)) return d;
        return s;
    }

    [GeneratedRegex(@"^[-+]?[0-9]+$")]
    private static partial Regex IntPattern();

    // 1.0, .5, 1., 1e-6, 1.5E+3, -2e3: at least one digit, optional dot, optional exponent.
    [GeneratedRegex(@"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$")]
    private static partial Regex FloatPattern();

    private static Sam2ConfigException Error(YamlNode n, string what) =>
        new($"YAML line {n.Start.Line}, column {n.Start.Column}: {what}");
}
