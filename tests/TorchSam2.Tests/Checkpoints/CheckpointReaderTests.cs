using TorchSharp;
using TorchSharp.Modules;
using TorchSam2.Checkpoints;
using Xunit;
using static TorchSharp.torch;

namespace TorchSam2.Tests.Checkpoints;

/// <summary>
/// CheckpointReader: headers first, then each tensor read straight into native memory. Models load through it
/// without the checkpoint ever sitting in the managed heap.
/// </summary>
public class CheckpointReaderTests
{
    private sealed class Net : nn.Module
    {
        public readonly Linear big;
        public readonly Linear small;

        public Net() : base(nameof(Net))
        {
            big = nn.Linear(1024, 1024); // 4 MB of weights
            small = nn.Linear(3, 2);
            RegisterComponents();
        }
    }

    private static Dictionary<string, TensorRecord> Records(nn.Module m) =>
        m.state_dict().ToDictionary(kv => kv.Key, kv => new TensorRecord(kv.Value.dtype, kv.Value.shape, kv.Value.ToBytes()));

    private static string Save(IReadOnlyDictionary<string, TensorRecord> sd, string ext)
    {
        string path = TestPaths.TempFile(ext);
        if (ext == ".pt") PtCheckpoint.Write(path, sd);
        else SafeTensors.Write(path, sd);
        return path;
    }

    [Theory]
    [InlineData(".pt")]
    [InlineData(".safetensors")]
    public void ModelLoadsStraightIntoItsParameters(string ext)
    {
        manual_seed(3);
        using var source = new Net();
        string path = Save(Records(source), ext);
        manual_seed(4);
        using var target = new Net();
        using (var r = CheckpointReader.Open(path))
        {
            Assert.Equal(ext == ".pt" ? CheckpointFormat.PyTorchZip : CheckpointFormat.SafeTensors, r.Format);
            long before = GC.GetAllocatedBytesForCurrentThread();
            Assert.True(target.load_state_dict(r).IsExact);
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            // 4.2 MB of tensor data; the managed side only parses names (the old path allocated all of it).
            Assert.True(allocated < 1_000_000, $"loading allocated {allocated} managed bytes");
        }
        foreach (var (k, t) in source.state_dict())
            Assert.Equal(t.ToArray<float>(), target.state_dict()[k].ToArray<float>());
        File.Delete(path);
    }

    [Fact]
    public void HalfCheckpointIsWidenedIntoAFloatModel()
    {
        using var source = new Net();
        var sd = source.state_dict().ToDictionary(kv => kv.Key, kv =>
        {
            using var h = kv.Value.half();
            return new TensorRecord(ScalarType.Float16, h.shape, h.ToBytes());
        });
        string path = Save(sd, ".safetensors");
        using var target = new Net();
        using (var r = CheckpointReader.Open(path)) target.load_state_dict(r);
        // exactly the fp16 values, widened
        using var expect = source.small.weight.half().@float();
        Assert.Equal(expect.ToArray<float>(), target.small.weight.ToArray<float>());
        Assert.Equal(sd["small.weight"].ToFloat32Array(), target.small.weight.ToArray<float>());
        File.Delete(path);
    }

    [Fact]
    public void MisshapedKeyIsNamedBeforeAnythingIsOverwritten()
    {
        using var source = new Net();
        var sd = Records(source);
        sd["small.bias"] = TensorRecord.FromFloat32([3], [1f, 2f, 3f]);
        string path = Save(sd, ".pt");
        manual_seed(5);
        using var target = new Net();
        var weightBefore = target.big.weight.ToArray<float>();
        using (var r = CheckpointReader.Open(path))
        {
            var e = Assert.Throws<StateDictException>(() => target.load_state_dict(r));
            Assert.Contains("small.bias: checkpoint [3] vs model [2]", e.Message);
            Assert.StartsWith(path + ": state dict does not match the model: ", e.Message);
            Assert.DoesNotContain('\n', e.Message);
        }
        Assert.Equal(weightBefore, target.big.weight.ToArray<float>());
        File.Delete(path);
    }

    [Fact]
    public void UnexpectedKeysFromTheFileAreEscapedOnOneLine()
    {
        using var source = new Net();
        var sd = Records(source);
        sd["evil\n\u001b[2Jkey"] = TensorRecord.FromFloat32([1], [0f]);
        string path = Save(sd, ".safetensors");
        using var target = new Net();
        using var r = CheckpointReader.Open(path);
        var e = Assert.Throws<StateDictException>(() => target.load_state_dict(r));
        Assert.Contains("unexpected keys (1): evil\\n\\x1b[2Jkey", e.Message);
        Assert.Equal(path, e.Path);
        Assert.DoesNotContain(e.Message, c => char.IsControl(c));
    }

    [Fact]
    public void HeaderGivesNamesShapesAndDTypesOfTheFixture()
    {
        using var r = CheckpointReader.Open(TestPaths.Fixture("tiny_state_dict.pt"));
        var records = PtCheckpoint.LoadStateDict(TestPaths.Fixture("tiny_state_dict.pt"));
        Assert.Equal(records.Keys, r.Tensors.Keys);
        foreach (var (k, rec) in records)
        {
            Assert.Equal(rec.DType, r.Tensors[k].DType);
            Assert.Equal(rec.Shape, r.Tensors[k].Shape);
        }
    }

    [Fact]
    public void ViewsOfASharedStorageReadIntoNativeTensors()
    {
        // torch.save wrote grid = arange(24).view(4, 6) once; these are views of it.
        using var r = CheckpointReader.Open(TestPaths.Fixture("tiny_state_dict.pt"));
        using var offset = r.ReadTensor("view.offset");
        Assert.Equal(new float[] { 5, 6, 7, 8, 9, 10 }, offset.ToArray<float>());
        using var transposed = r.ReadTensor("view.transposed");
        Assert.Equal(new long[] { 6, 4 }, transposed.shape);
        var t = transposed.ToArray<float>();
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 4; j++) Assert.Equal(6 * j + i, t[i * 4 + j]);
        using var half = r.ReadTensor("half");
        Assert.Equal(ScalarType.Float16, half.dtype);
        Assert.Equal(0.099975586f, half.@float().ToArray<float>()[0]);
    }

    [Fact]
    public void ReadingIntoAWrongTensorSaysWhy()
    {
        using var r = CheckpointReader.Open(TestPaths.Fixture("tiny_state_dict.pt"));
        using var wrong = zeros([3, 2]);
        var e = Assert.Throws<ArgumentException>(() => r.ReadInto("a.weight", wrong));
        Assert.Contains("[3, 2]", e.Message);
        Assert.Throws<KeyNotFoundException>(() => r.ReadTensor("nope"));
    }

    [Fact]
    public void FileCutShortAfterOpeningIsReportedWithPathAndTensor()
    {
        // The header was valid when opened; then the file is cut short (overwritten, a flaky disk).
        // (larger than the reader's 64 KB file buffer, so the data is not already in memory)
        var sd = new Dictionary<string, TensorRecord> { ["w"] = TensorRecord.FromFloat32([100_000], new float[100_000]) };
        string path = Save(sd, ".safetensors");
        using var r = CheckpointReader.Open(path);
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite)) fs.SetLength(fs.Length - 4);
        var e = Assert.Throws<CheckpointException>(() => r.ReadTensor("w"));
        Assert.Contains(path, e.Message);
        Assert.Contains("'w'", e.Message);
        Assert.Contains("truncated", e.Message);
    }
}
