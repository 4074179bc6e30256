using static TorchSharp.torch;

namespace TorchSam2.Checkpoints;

/// <summary>PyTorch's names for TorchSharp's element types (TorchSharp's own ElementSize() gives the width).</summary>
public static class ScalarTypeNames
{
    public static bool IsFloatingPoint(this ScalarType t) =>
        t is ScalarType.Float16 or ScalarType.Float32 or ScalarType.Float64 or ScalarType.BFloat16;

    /// <summary>The name PyTorch prints: float32, bfloat16, int64, ...</summary>
    public static string TorchName(this ScalarType t) => t switch
    {
        ScalarType.Byte => "uint8",
        ScalarType.Int8 => "int8",
        ScalarType.Int16 => "int16",
        ScalarType.Int32 => "int32",
        ScalarType.Int64 => "int64",
        ScalarType.Float16 => "float16",
        ScalarType.Float32 => "float32",
        ScalarType.Float64 => "float64",
        ScalarType.Bool => "bool",
        ScalarType.BFloat16 => "bfloat16",
        _ => t.ToString(),
    };
}
