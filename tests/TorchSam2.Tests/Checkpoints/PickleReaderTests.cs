using System.Numerics;
using TorchSharp;
using static TorchSharp.torch;
using TorchSharp.Modules;
using TorchSam2.Checkpoints;
using Xunit;
using static TorchSam2.Tests.Checkpoints.PickleBytes;

namespace TorchSam2.Tests.Checkpoints;

public class PickleReaderTests
{
    // pickle.dumps({'x': (1, -2, 3.5, None, True, 'héllo', b'\x00\x01', 2**70, [1, 2], -300, 70000, -2**40),
    //               'y': {}, 'z': OrderedDict([('k', False)])}, protocol=P) from CPython 3.
    private const string Protocol2 =
        "80027d7100285801000000787101284b014afeffffff47400c0000000000004e88580600000068c3a96c6c6f7102635f636f646563730a656e636f64650a71" +
        "0358020000000001710458060000006c6174696e3171058671065271078a090000000000000000405d7108284b014b02654ad4feffff4a701101008a0600" +
        "00000000ff747109580100000079710a7d710b58010000007a710c63636f6c6c656374696f6e730a4f726465726564446963740a710d2952710e580100" +
        "00006b710f8973752e";

    private const string Protocol4 =
        "80049582000000000000007d94288c017894284b014afeffffff47400c0000000000004e888c0668c3a96c6c6f9443020001948a09000000000000000040" +
        "5d94284b014b02654ad4feffff4a701101008a060000000000ff74948c0179947d948c017a948c0b636f6c6c656374696f6e73948c0b4f72646572656444" +
        "6963749493942952948c016b948973752e";

    [Theory]
    [InlineData(Protocol2)]
    [InlineData(Protocol4)]
    public void ReadsCPythonPickles(string hex)
    {
        var root = Assert.IsType<PickleDict>(PickleReader.Load(Hex(hex)));
        Assert.Equal(["x", "y", "z"], root.Keys.Cast<string>());
        var x = Assert.IsType<object?[]>(root["x"]);
        Assert.Equal(12, x.Length);
        Assert.Equal(1L, x[0]);
        Assert.Equal(-2L, x[1]);
        Assert.Equal(3.5, x[2]);
        Assert.Null(x[3]);
        Assert.Equal(true, x[4]);
        Assert.Equal("héllo", x[5]);
        Assert.Equal(new byte[] { 0, 1 }, x[6]); // protocol 2 spells bytes as _codecs.encode(str, 'latin1')
        Assert.Equal(BigInteger.Pow(2, 70), x[7]);
        Assert.Equal(new List<object?> { 1L, 2L }, x[8]);
        Assert.Equal(-300L, x[9]);
        Assert.Equal(70000L, x[10]);
        Assert.Equal(-(1L << 40), x[11]);
        Assert.Empty(Assert.IsType<PickleDict>(root["y"]));
        var z = Assert.IsType<PickleDict>(root["z"]);
        Assert.Equal(false, z["k"]);
    }

    [Fact]
    public void HandBuiltDictWithMemoAndTuples()
    {
        // {'a': (7, 7), 'b': [300, 'a']} using BINPUT/BINGET, LONG_BINPUT/LONG_BINGET, BININT2, TUPLE2, APPEND.
        byte[] p = Of(0x80, 2, '}', 'q', 0, '(',
            LongStr("a"), 'r', 5, 0, 0, 0,
            'K', 7, 'h', 9 - 9, 0x30, // push the dict again then POP it: exercises BINGET + POP
            'K', 7, 0x86,
            Str("b"), ']', 'M', 0x2c, 0x01, 'a', 'j', 5, 0, 0, 0, 'a',
            'u', '.');
        var d = Assert.IsType<PickleDict>(PickleReader.Load(p));
        Assert.Equal(new object?[] { 7L, 7L }, d["a"]);
        Assert.Equal(new List<object?> { 300L, "a" }, d["b"]);
    }

    [Fact]
    public void RebuildsTensorsFromPersistentStorage()
    {
        // _rebuild_tensor_v2(persid(('storage', torch.FloatStorage, '0', 'cpu', 6)), 1, (2, 2), (1, 2), False, OrderedDict())
        byte[] p = Of(0x80, 2,
            'c', "torch._utils\n_rebuild_tensor_v2\n",
            '(', '(', Str("storage"), 'c', "torch\nFloatStorage\n", Str("0"), Str("cpu"), 'K', 6, 't', 'Q',
            'K', 1, 'K', 2, 'K', 2, 0x86, 'K', 1, 'K', 2, 0x86, 0x89,
            'c', "collections\nOrderedDict\n", ')', 'R', 't', 'R', '.');
        float[] storage = [0, 1, 2, 3, 4, 5];
        object? Load(object? pid)
        {
            var id = Assert.IsType<object?[]>(pid);
            Assert.Equal("storage", id[0]);
            Assert.Equal(new PickleGlobal("torch", "FloatStorage"), id[1]);
            Assert.Equal(6L, id[4]);
            return new PickleStorage(ScalarType.Float32, "0", storage.SelectMany(BitConverter.GetBytes).ToArray());
        }
        var t = Assert.IsAssignableFrom<StoredTensor>(PickleReader.Load(p, Load)).ReadRecord();
        Assert.Equal(new long[] { 2, 2 }, t.Shape);
        // Column-major view at offset 1: [[1, 3], [2, 4]].
        Assert.Equal(new float[] { 1, 3, 2, 4 }, t.ToFloat32Array());
    }

    [Theory]
    [InlineData("os", "system")]
    [InlineData("posix", "system")]
    [InlineData("builtins", "eval")]
    [InlineData("subprocess", "Popen")]
    [InlineData("torch", "load")]
    public void RejectsDangerousGlobal(string module, string name)
    {
        // GLOBAL form: cos\nsystem\n + ('echo pwned',) REDUCE.
        byte[] viaGlobal = Of(0x80, 2, 'c', $"{module}\n{name}\n", 'q', 0, LongStr("echo pwned"), 0x85, 'R', '.');
        var e1 = Assert.Throws<CheckpointException>(() => PickleReader.Load(viaGlobal));
        Assert.Contains($"'{module}.{name}'", e1.Message);
        Assert.Contains("malicious", e1.Message);

        // STACK_GLOBAL form (protocol 4).
        byte[] viaStack = Of(0x80, 4, Str(module), Str(name), 0x93, Str("echo pwned"), 0x85, 'R', '.');
        var e2 = Assert.Throws<CheckpointException>(() => PickleReader.Load(viaStack));
        Assert.Contains($"'{module}.{name}'", e2.Message);
    }

    [Fact]
    public void RejectsCallingANonCallableAllowedGlobal()
    {
        byte[] p = Of(0x80, 2, 'c', "torch\nFloatStorage\n", ')', 'R', '.');
        var e = Assert.Throws<CheckpointException>(() => PickleReader.Load(p));
        Assert.Contains("torch.FloatStorage", e.Message);
    }

    [Fact]
    public void UnknownOpcodeNamesOpcodeAndOffset()
    {
        // 'S' (protocol-0 STRING) at offset 2 is not supported.
        byte[] p = Of(0x80, 2, 'S', "'x'\n", '.');
        var e = Assert.Throws<CheckpointException>(() => PickleReader.Load(p));
        Assert.Contains("0x53", e.Message);
        Assert.Contains("offset 2", e.Message);
    }

    [Fact]
    public void TruncatedStringLengthIsReportedWithoutAllocating()
    {
        // BINUNICODE claiming 2 GB with 3 bytes present.
        byte[] p = Of(0x80, 2, 'X', 0xff, 0xff, 0xff, 0x7f, "abc");
        var e = Assert.Throws<CheckpointException>(() => PickleReader.Load(p));
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void MissingStopIsTruncated()
    {
        byte[] p = Of(0x80, 2, '}', 'q', 0);
        var e = Assert.Throws<CheckpointException>(() => PickleReader.Load(p));
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void StackUnderflowIsMalformed()
    {
        var e = Assert.Throws<CheckpointException>(() => PickleReader.Load(Of(0x80, 2, 's', '.')));
        Assert.Contains("malformed", e.Message);
    }

    [Fact]
    public void PersistentIdWithoutLoaderIsRejected()
    {
        var e = Assert.Throws<CheckpointException>(() => PickleReader.Load(Of(0x80, 2, 'N', 'Q', '.')));
        Assert.Contains("persistent", e.Message);
    }

    [Fact]
    public void ViewPastStorageEndIsRejected()
    {
        byte[] p = Of(0x80, 2,
            'c', "torch._utils\n_rebuild_tensor_v2\n",
            '(', 'N', 'Q', 'K', 3, 'K', 2, 0x85, 'K', 1, 0x85, 0x89, '}', 't', 'R', '.');
        var storage = new PickleStorage(ScalarType.Float32, "0", new byte[16]); // 4 floats; view needs elements 3..4
        var e = Assert.Throws<CheckpointException>(() => PickleReader.Load(p, _ => storage));
        Assert.Contains("reaches element 4", e.Message);
    }
}
