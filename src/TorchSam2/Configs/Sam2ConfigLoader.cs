using TorchSam2.Checkpoints;

namespace TorchSam2.Configs;

/// <summary>
/// Reads SAM 2 configs in the official Hydra YAML form (<c>model:</c> with <c>_target_</c> keys), from a
/// file, a string, or the configs shipped with TorchSam2 (embedded in the assembly, else the repo's configs/).
/// </summary>
public static class Sam2ConfigLoader
{
    /// <summary>Environment variable naming a folder that holds sam2.1/ and sam2/ config folders.</summary>
    public const string ConfigDirVariable = "TORCHSAM2_CONFIG_DIR";

    // Canonical short names → file (relative to configs/). Aliases are normalised onto these keys.
    private static readonly Dictionary<string, string> BuiltIns = new(StringComparer.Ordinal)
    {
        ["sam2.1_hiera_t"] = "sam2.1/sam2.1_hiera_t.yaml",
        ["sam2.1_hiera_s"] = "sam2.1/sam2.1_hiera_s.yaml",
        ["sam2.1_hiera_b+"] = "sam2.1/sam2.1_hiera_b+.yaml",
        ["sam2.1_hiera_l"] = "sam2.1/sam2.1_hiera_l.yaml",
        ["sam2_hiera_t"] = "sam2/sam2_hiera_t.yaml",
        ["sam2_hiera_s"] = "sam2/sam2_hiera_s.yaml",
        ["sam2_hiera_b+"] = "sam2/sam2_hiera_b+.yaml",
        ["sam2_hiera_l"] = "sam2/sam2_hiera_l.yaml",
    };

    private static readonly Dictionary<string, string> SizeAliases = new(StringComparer.Ordinal)
    {
        ["t"] = "t", ["tiny"] = "t",
        ["s"] = "s", ["small"] = "s",
        ["b+"] = "b+", ["base_plus"] = "b+", ["baseplus"] = "b+", ["base+"] = "b+", ["bplus"] = "b+",
        ["l"] = "l", ["large"] = "l",
    };

    /// <summary>The canonical built-in names (e.g. "sam2.1_hiera_t").</summary>
    public static IReadOnlyList<string> BuiltInNames => BuiltIns.Keys.ToList();

    /// <summary>Parses a config file (at most <see cref="YamlTree.MaxChars"/> bytes; read no further than that).</summary>
    public static Sam2ModelConfig Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string shown = UntrustedText.Escape(path, int.MaxValue);
        if (!File.Exists(path)) throw new FileNotFoundException($"config file not found: {shown}", path);
        try
        {
            return Parse(ReadBounded(path));
        }
        catch (Sam2ConfigException e)
        {
            throw new Sam2ConfigException($"{shown}: {e.Message}", e);
        }
    }

    // Reads at most MaxChars bytes (a device or a huge file is refused without reading it all).
    private static string ReadBounded(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        var buffer = new byte[YamlTree.MaxChars + 1];
        int n = fs.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        if (n > YamlTree.MaxChars)
            throw new Sam2ConfigException($"config file is larger than the {YamlTree.MaxChars:N0} bytes allowed (SAM 2's configs are ~3 KB)");
        using var reader = new StreamReader(new MemoryStream(buffer, 0, n), detectEncodingFromByteOrderMarks: true);
        return reader.ReadToEnd();
    }

    /// <summary>
    /// A config file, or a built-in config by name. An argument that looks like a path (it holds a directory
    /// separator, other than a "facebook/..." model id, or ends in .yaml or .yml) is a file, and a missing one is
    /// reported as "config file not found: PATH" rather than as an unknown built-in name.
    /// </summary>
    public static Sam2ModelConfig LoadFileOrBuiltIn(string config)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(config);
        if (File.Exists(config) || LooksLikePath(config)) return Load(config);
        return LoadBuiltIn(config);
    }

    /// <summary>Whether a --config argument names a file rather than a built-in config.</summary>
    public static bool LooksLikePath(string config)
    {
        string c = config.Trim();
        if (c.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) || c.EndsWith(".yml", StringComparison.OrdinalIgnoreCase)) return true;
        if (c.StartsWith("facebook/", StringComparison.OrdinalIgnoreCase) && c.Count(ch => ch == '/') == 1) return false; // Hugging Face id
        return c.Contains('/') || c.Contains('\\') || c.Contains(Path.DirectorySeparatorChar);
    }

    /// <summary>Parses config YAML text. The document must hold a <c>model:</c> mapping (or be that mapping).</summary>
    public static Sam2ModelConfig Parse(string yaml)
    {
        object? root = YamlTree.Parse(yaml);
        if (root is not IReadOnlyDictionary<string, object?> doc) throw new Sam2ConfigException("config is not a YAML mapping");
        if (doc.TryGetValue("model", out object? model))
        {
            if (model is not IReadOnlyDictionary<string, object?> m) throw new Sam2ConfigException("model: is not a mapping");
            return Sam2ModelConfig.From(new ConfigMap(m, "model"));
        }
        if (doc.ContainsKey("image_encoder")) return Sam2ModelConfig.From(new ConfigMap(doc, "model"));
        throw new Sam2ConfigException("config has no 'model:' section");
    }

    /// <summary>
    /// A shipped config by name: "sam2.1_hiera_t" / "sam2.1_hiera_tiny" / "tiny" (SAM 2.1), "small", "base_plus" / "b+",
    /// "large", the SAM 2.0 "sam2_hiera_*" names, or Hugging Face ids like "facebook/sam2.1-hiera-tiny".
    /// </summary>
    public static Sam2ModelConfig LoadBuiltIn(string name)
    {
        string file = ResolveBuiltIn(name);
        string yaml = ReadBuiltIn(file) ?? throw new FileNotFoundException(
            $"built-in config '{file}' is neither embedded in {typeof(Sam2ConfigLoader).Assembly.GetName().Name} " +
            $"nor found under a configs/ folder (set {ConfigDirVariable})");
        try
        {
            return Parse(yaml);
        }
        catch (Sam2ConfigException e)
        {
            throw new Sam2ConfigException($"built-in config {file}: {e.Message}", e);
        }
    }

    /// <summary>The file (relative to configs/) a built-in name refers to.</summary>
    public static string ResolveBuiltIn(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        string n = name.Trim().ToLowerInvariant().Replace('\\', '/');
        if (n.StartsWith("facebook/", StringComparison.Ordinal)) n = n["facebook/".Length..];
        n = n[(n.LastIndexOf('/') + 1)..];
        if (n.EndsWith(".yaml", StringComparison.Ordinal)) n = n[..^5];
        n = n.Replace('-', '_');
        if (n is "sam2_glyph_demo" or "glyph_demo") return "glyph/sam2_glyph_demo.yaml";

        string family = "sam2.1";
        string size = n;
        if (n.StartsWith("sam2.1_hiera_", StringComparison.Ordinal)) size = n["sam2.1_hiera_".Length..];
        else if (n.StartsWith("sam2_hiera_", StringComparison.Ordinal)) (family, size) = ("sam2", n["sam2_hiera_".Length..]);
        if (SizeAliases.TryGetValue(size, out string? s) && BuiltIns.TryGetValue($"{family}_hiera_{s}", out string? file)) return file;
        throw new ArgumentException(
            $"unknown built-in config {UntrustedText.Quote(name)}; known: {string.Join(", ", BuiltIns.Keys)} (or tiny, small, base_plus, large, sam2_glyph_demo, or a path to a .yaml file)", nameof(name));
    }

    private static string? ReadBuiltIn(string file)
    {
        // 1. Embedded resource, logical name "configs/<file>" (any separator or prefix).
        var asm = typeof(Sam2ConfigLoader).Assembly;
        string? resource = asm.GetManifestResourceNames()
            .FirstOrDefault(r => r.Replace('\\', '/').EndsWith("configs/" + file, StringComparison.Ordinal));
        if (resource is not null)
        {
            using var s = asm.GetManifestResourceStream(resource)!;
            using var reader = new StreamReader(s);
            return reader.ReadToEnd();
        }
        // 2. A configs folder: the environment variable, then any configs/ above the binary (repo checkout).
        foreach (string dir in CandidateDirs())
        {
            string path = Path.Combine(dir, file);
            if (File.Exists(path)) return File.ReadAllText(path);
        }
        return null;
    }

    private static IEnumerable<string> CandidateDirs()
    {
        if (Environment.GetEnvironmentVariable(ConfigDirVariable) is { Length: > 0 } env) yield return env;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            yield return Path.Combine(dir.FullName, "configs");
    }
}
