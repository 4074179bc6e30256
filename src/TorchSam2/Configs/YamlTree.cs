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
/// Text above <see cref="MaxChars"/> or nested deeper than <see cref="MaxDepth"/> is refused before YamlDotNet
/// sees it (its parser, and any walk over the tree, recurse once a level).
/// </summary>
public static partial class YamlTree
{
    /// <summary>Largest config text: 1 MiB of characters (SAM 2's configs are ~3 KB).</summary>
    public const int MaxChars = 1 << 20;

    /// <summary>Deepest nesting of mappings, sequences and flow collections: 64 (SAM 2's configs nest 6 deep).</summary>
    public const int MaxDepth = 64;

    /// <summary>Parses the first document of <paramref name="yaml"/>; an empty document gives an empty map.</summary>
    public static object? Parse(string yaml)
    {
        ArgumentNullException.ThrowIfNull(yaml);
        CheckSizeAndNesting(yaml);
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(yaml));
        }
        catch (YamlException e)
        {
            throw new Sam2ConfigException(
                $"invalid YAML at line {e.Start.Line}, column {e.Start.Column}: {Checkpoints.UntrustedText.OneLine(e.Message)}", e);
        }
        catch (InvalidOperationException e)
        {
            // YamlDotNet's scanner throws this for some unterminated flow collections at end of input.
            throw new Sam2ConfigException("invalid YAML: unexpected end of input (unterminated [ ] or { }?)", e);
        }
        if (stream.Documents.Count == 0) return new OrderedDictionary<string, object?>();
        return Convert(stream.Documents[0].RootNode, new Converted(), 1, out _);
    }

    /// <summary>
    /// A cheap scan of the text, before any parser sees it: at most <see cref="MaxChars"/> characters, and block
    /// indentation levels (including compact "- - x" and "? " entries) plus open flow brackets at most
    /// <see cref="MaxDepth"/> deep at any point. Quoted scalars, comments and block scalars (| and >) are skipped.
    /// It may count a level more than a parser would, never far fewer.
    /// </summary>
    public static void CheckSizeAndNesting(string yaml)
    {
        if (yaml.Length > MaxChars)
            throw new Sam2ConfigException($"config of {yaml.Length:N0} characters is larger than the {MaxChars:N0} allowed (SAM 2's configs are ~3 KB)");
        var levels = new List<int>(); // columns of the open block nodes
        int flow = 0, blockScalarParent = -1, lineNo = 0;
        char quote = '\0';
        foreach (var raw in yaml.AsSpan().EnumerateLines())
        {
            lineNo++;
            var line = raw;
            int n = line.Length, indent = 0;
            while (indent < n && line[indent] == ' ') indent++;
            if (blockScalarParent >= 0)
            {
                if (indent == n || indent > blockScalarParent) continue; // text of a | or > scalar
                blockScalarParent = -1;
            }
            int i = 0;
            if (quote == '\0' && flow == 0)
            {
                if (indent == n || line[indent] == '#') continue;
                while (levels.Count > 0 && levels[^1] >= indent) levels.RemoveAt(levels.Count - 1);
                i = indent;
                while (true)
                {
                    levels.Add(i);
                    Deeper(levels.Count + flow, lineNo);
                    i = SkipProperties(line, i);
                    if (i < n && line[i] is '-' or '?' or ':' && (i + 1 == n || line[i + 1] is ' ' or '\t'))
                    {
                        i++;
                        while (i < n && line[i] is ' ' or '\t') i++;
                        if (i == n) break;
                        continue;
                    }
                    break;
                }
                // After "key:", the value: a block scalar, a quoted scalar, a flow collection or plain text.
                i = SkipProperties(line, ValueStart(line, i));
                if (i >= n) continue;
                if (line[i] is '|' or '>')
                {
                    blockScalarParent = indent;
                    continue;
                }
                if (line[i] is '"' or '\'') quote = line[i++];
                else if (line[i] is not ('[' or '{')) continue;
            }
            for (; i < n; i++)
            {
                char c = line[i];
                if (quote != '\0')
                {
                    if (quote == '"' && c == '\\') i++;
                    else if (c == quote && quote == '\'' && i + 1 < n && line[i + 1] == '\'') i++;
                    else if (c == quote) quote = '\0';
                    continue;
                }
                if (c == '#' && (i == 0 || line[i - 1] is ' ' or '\t')) break;
                if (c is '"' or '\'' && (i == 0 || PrevNonSpace(line, i) is '\0' or '[' or '{' or ',' or ':')) quote = c;
                else if (c is '[' or '{') Deeper(levels.Count + ++flow, lineNo);
                else if (c is ']' or '}' && flow > 0) flow--;
            }
        }
    }

    private static void Deeper(int depth, int lineNo)
    {
        if (depth > MaxDepth) throw new Sam2ConfigException($"YAML line {lineNo}: nests deeper than {MaxDepth} levels");
    }

    // Skips anchors (&a) and tags (!t) and the spaces after them.
    private static int SkipProperties(ReadOnlySpan<char> line, int i)
    {
        while (i < line.Length && line[i] is '&' or '!')
        {
            while (i < line.Length && line[i] is not (' ' or '\t')) i++;
            while (i < line.Length && line[i] is ' ' or '\t') i++;
        }
        return i;
    }

    // Where the value of "key: value" starts (the key may be quoted), or i when the line holds no "key:".
    private static int ValueStart(ReadOnlySpan<char> line, int i)
    {
        int j = i;
        if (j < line.Length && line[j] is '"' or '\'')
        {
            int close = line[(j + 1)..].IndexOf(line[j]);
            if (close < 0) return i;
            j += close + 2;
        }
        for (; j < line.Length; j++)
        {
            if (line[j] == '#' && j > i && line[j - 1] is ' ' or '\t') return i;
            if (line[j] == ':' && (j + 1 == line.Length || line[j + 1] is ' ' or '\t'))
            {
                j++;
                while (j < line.Length && line[j] is ' ' or '\t') j++;
                return j;
            }
            if (line[j] is '[' or '{' && j == i) return i; // a flow collection as the node itself
        }
        return i;
    }

    private static char PrevNonSpace(ReadOnlySpan<char> line, int i)
    {
        for (int k = i - 1; k >= 0; k--)
            if (line[k] is not (' ' or '\t')) return line[k];
        return '\0';
    }

    private sealed class Converted
    {
        public readonly Dictionary<YamlNode, object?> Values = new(ReferenceEqualityComparer.Instance);
        public readonly Dictionary<YamlNode, int> Heights = new(ReferenceEqualityComparer.Instance);
    }

    // Recursive, a level a call: the text was checked to nest at most MaxDepth deep. An alias is converted once
    // and not walked again, but its height counts where it is used, so the tree handed on is never deeper than
    // MaxDepth (nor cyclic) however aliases are stacked.
    private static object? Convert(YamlNode node, Converted done, int depth, out int height)
    {
        if (depth > MaxDepth) throw Error(node, $"nests deeper than {MaxDepth} levels");
        if (done.Values.TryGetValue(node, out object? cached))
        {
            if (!done.Heights.TryGetValue(node, out height)) throw Error(node, "an alias refers to a node that contains it");
            if (depth - 1 + height > MaxDepth) throw Error(node, $"nests deeper than {MaxDepth} levels (through an alias)");
            return cached;
        }
        object? result;
        height = 1;
        switch (node)
        {
            case YamlMappingNode map:
            {
                var d = new OrderedDictionary<string, object?>();
                done.Values[node] = d;
                foreach (var (k, v) in map.Children)
                {
                    string key = k is YamlScalarNode ks ? ks.Value ?? "" : throw Error(k, "only scalar keys are supported");
                    if (!d.TryAdd(key, Convert(v, done, depth + 1, out int h))) throw Error(k, $"duplicate key {Checkpoints.UntrustedText.Quote(key)}");
                    height = Math.Max(height, h + 1);
                }
                done.Heights[node] = height;
                return d;
            }
            case YamlSequenceNode seq:
            {
                var list = new List<object?>();
                done.Values[node] = list;
                foreach (var item in seq.Children)
                {
                    list.Add(Convert(item, done, depth + 1, out int h));
                    height = Math.Max(height, h + 1);
                }
                done.Heights[node] = height;
                return list;
            }
            case YamlScalarNode scalar:
                result = scalar.Style is ScalarStyle.Plain ? ResolvePlain(scalar.Value ?? "") : scalar.Value;
                break;
            default:
                throw Error(node, $"unsupported YAML node {node.NodeType}");
        }
        done.Values[node] = result;
        done.Heights[node] = 1;
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

    // 1.0, .5, 1., 1e-6, 1.5E+3, -2e3: at least one digit, optional dot, optional exponent. Written so that no
    // two parts can match the same digits: a long run of digits then fails in linear time.
    [GeneratedRegex(@"^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$")]
    private static partial Regex FloatPattern();

    private static Sam2ConfigException Error(YamlNode n, string what) =>
        new($"YAML line {n.Start.Line}, column {n.Start.Column}: {what}");
}
