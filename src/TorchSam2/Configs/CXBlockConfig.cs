namespace TorchSam2.Configs;

/// <summary>ConvNeXt block of the memory fuser (<c>sam2.modeling.memory_encoder.CXBlock</c>).</summary>
public sealed record CXBlockConfig
{
    public const string DefaultTarget = "sam2.modeling.memory_encoder.CXBlock";

    public string Target { get; init; } = DefaultTarget;
    public required int Dim { get; init; }
    public int KernelSize { get; init; } = 7;
    public int Padding { get; init; } = 3;
    public double DropPath { get; init; }
    /// <summary>Initial gamma; a value &lt;= 0 means no layer scale (no gamma parameter).</summary>
    public double LayerScaleInitValue { get; init; } = 1e-6;
    public bool UseDwconv { get; init; } = true;
    public IReadOnlyDictionary<string, object?> Raw { get; init; } = new Dictionary<string, object?>();

    internal static CXBlockConfig From(ConfigMap m) => new()
    {
        Target = m.CheckedTarget(DefaultTarget, DefaultTarget),
        Dim = m.RequiredInt("dim", 1, ConfigLimits.MaxChannels),
        KernelSize = m.Int("kernel_size", 7, 1, ConfigLimits.MaxKernel),
        Padding = m.Int("padding", 3, 0, ConfigLimits.MaxKernel),
        DropPath = m.Double("drop_path", 0.0, 0, 1, maxExclusive: true),
        LayerScaleInitValue = m.Double("layer_scale_init_value", 1e-6),
        UseDwconv = m.Bool("use_dwconv", true),
        Raw = m.Raw,
    };
}
