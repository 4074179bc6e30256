using static TorchSharp.torch;
using TorchSharp;
namespace TorchSam2.Checkpoints;

/// <summary>
/// The allow-list of Python globals a checkpoint pickle may name. Anything else (os.system,
/// builtins.eval, subprocess.Popen, ...) would run arbitrary code in Python and is refused.
/// </summary>
internal static class PickleGlobals
{
    public static readonly IReadOnlyDictionary<string, ScalarType> StorageTypes = new Dictionary<string, ScalarType>
    {
        ["torch.FloatStorage"] = ScalarType.Float32,
        ["torch.HalfStorage"] = ScalarType.Float16,
        ["torch.BFloat16Storage"] = ScalarType.BFloat16,
        ["torch.DoubleStorage"] = ScalarType.Float64,
        ["torch.LongStorage"] = ScalarType.Int64,
        ["torch.IntStorage"] = ScalarType.Int32,
        ["torch.ShortStorage"] = ScalarType.Int16,
        ["torch.CharStorage"] = ScalarType.Int8,
        ["torch.ByteStorage"] = ScalarType.Byte,
        ["torch.BoolStorage"] = ScalarType.Bool,
        // Untyped storages hold bytes; tensors over them are read as uint8.
        ["torch.UntypedStorage"] = ScalarType.Byte,
        ["torch.storage.UntypedStorage"] = ScalarType.Byte,
    };

    public const string OrderedDict = "collections.OrderedDict";
    public const string RebuildTensorV2 = "torch._utils._rebuild_tensor_v2";
    public const string RebuildParameter = "torch._utils._rebuild_parameter";
    public const string RebuildParameterWithState = "torch._utils._rebuild_parameter_with_state";
    public const string RebuildFromTypeV2 = "torch._tensor._rebuild_from_type_v2";
    public const string TorchSize = "torch.Size";
    public const string CodecsEncode = "_codecs.encode";

    private static readonly HashSet<string> Callables =
    [
        OrderedDict, RebuildTensorV2, RebuildParameter, RebuildParameterWithState, RebuildFromTypeV2, TorchSize, CodecsEncode,
    ];

    // Classes that may appear only as markers (e.g. the new_type argument of _rebuild_from_type_v2).
    private static readonly HashSet<string> Markers = ["torch.Tensor", "torch._tensor.Tensor", "torch.nn.parameter.Parameter"];

    public static bool IsAllowed(string fullName) =>
        Callables.Contains(fullName) || Markers.Contains(fullName) || StorageTypes.ContainsKey(fullName);

    public static bool IsCallable(string fullName) => Callables.Contains(fullName);
}
