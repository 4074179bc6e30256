using TorchSharp;
using static TorchSharp.torch;
using TorchSharp.Modules;
using TorchSam2.Checkpoints;

namespace TorchSam2.Tests.Checkpoints;

/// <summary>A state dict covering every dtype, a 0-d tensor and an empty one.</summary>
internal static class TensorSamples
{
    public static OrderedDictionary<string, TensorRecord> AllDTypes()
    {
        var rng = new Random(1234);
        byte[] Bytes(int n) { var b = new byte[n]; rng.NextBytes(b); return b; }
        return new OrderedDictionary<string, TensorRecord>
        {
            ["f32"] = TensorRecord.FromFloat32([2, 3], [1.5f, -0f, float.NaN, float.PositiveInfinity, 1e-40f, 3.14159f]),
            ["f16"] = new(ScalarType.Float16, [4, 5], Bytes(40)),
            ["bf16"] = new(ScalarType.BFloat16, [3, 1, 2], Bytes(12)),
            ["f64"] = TensorRecord.Create<double>(ScalarType.Float64, [2], [Math.PI, -1e300]),
            ["i64"] = TensorRecord.Create<long>(ScalarType.Int64, [3], [long.MinValue, 0, long.MaxValue]),
            ["i32"] = TensorRecord.Create<int>(ScalarType.Int32, [2, 2], [1, -2, 3, -4]),
            ["i16"] = new(ScalarType.Int16, [3], Bytes(6)),
            ["i8"] = new(ScalarType.Int8, [5], Bytes(5)),
            ["u8"] = new(ScalarType.Byte, [1, 7], Bytes(7)),
            ["bool"] = new(ScalarType.Bool, [4], [1, 0, 0, 1]),
            ["scalar"] = TensorRecord.FromFloat32([], [42f]),
            ["empty"] = TensorRecord.FromFloat32([0, 3], []),
            ["big.layer.weight"] = new(ScalarType.Float32, [64, 300], Bytes(64 * 300 * 4)),
        };
    }
}
