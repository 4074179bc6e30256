using System.Buffers.Binary;
using System.Text;
using TorchSam2.Checkpoints;
using static TorchSam2.Tests.Checkpoints.HostileCheckpoints;

namespace TorchSam2.Tests.Checkpoints;

/// <summary>Issue #14, safetensors: format detection by the JSON header first, and hostile headers.</summary>
public class SafeTensorsHostileTests
{
    // A one-tensor safetensors file whose name is chosen so that the 8-byte header length has the given low bytes.
    private static (string Path, string Name) WithHeaderLength(Func<ulong, bool> wanted, int from, int to)
    {
        for (int n = from; n < to; n++)
        {
            string name = "w" + new string('x', n);
            var ms = new MemoryStream();
            SafeTensors.Write(ms, new Dictionary<string, TensorRecord> { [name] = TensorRecord.FromFloat32([2], [1.5f, -2f]) });
            byte[] file = ms.ToArray();
            if (wanted(BinaryPrimitives.ReadUInt64LittleEndian(file))) return (Save(file, ".safetensors"), name);
        }
        throw new InvalidOperationException("no name length gives that header length");
    }

    [Fact]
    public void AHeaderLengthWhoseLowByteIs0x80IsStillSafetensors()
    {
        var (path, name) = WithHeaderLength(len => (len & 0xFF) == 0x80, 1, 600);
        Assert.Equal(0x80, File.ReadAllBytes(path)[0]); // what legacy torch.save files start with
        Assert.Equal(CheckpointFormat.SafeTensors, CheckpointFile.DetectFormat(path));
        using var r = CheckpointReader.Open(path);
        Assert.Equal(new[] { 1.5f, -2f }, r.Tensors[name].ReadRecord().ToFloat32Array());
    }

    [Fact]
    public void AHeaderLengthThatStartsWithPKIsStillSafetensors()
    {
        var (path, name) = WithHeaderLength(len => (len & 0xFFFF) == 0x4B50, 19_000, 19_400);
        Assert.Equal("PK"u8.ToArray(), File.ReadAllBytes(path)[..2]); // what zips start with
        Assert.Equal(CheckpointFormat.SafeTensors, CheckpointFile.DetectFormat(path));
        Assert.Equal(new[] { 1.5f, -2f }, CheckpointFile.LoadStateDict(path)[name].ToFloat32Array());
    }

    [Fact]
    public void ZipsAndLegacyPicklesAreStillTold()
    {
        string pt = Save(Pt(StateDict(("w", Tensor("0", 4))), ("0", Floats(4))));
        Assert.Equal(CheckpointFormat.PyTorchZip, CheckpointFile.DetectFormat(pt));
        string legacy = Save(Convert.FromHexString("80028a0a6cfc9c46f9206aa85019"));
        Assert.Equal(CheckpointFormat.LegacyPickle, CheckpointFile.DetectFormat(legacy));
        // '{' at byte 8 but a length past the end: a truncated safetensors file, reported as one.
        byte[] cut = new byte[20];
        BinaryPrimitives.WriteUInt64LittleEndian(cut, 1000);
        cut[8] = (byte)'{';
        string path = Save(cut, ".safetensors");
        Assert.Equal(CheckpointFormat.SafeTensors, CheckpointFile.DetectFormat(path));
        Assert.Contains("runs past the end of the file", Assert.Throws<CheckpointException>(() => CheckpointReader.Open(path)).Message);
    }

    private static CheckpointException Fails(string header, int dataBytes = 16)
    {
        byte[] h = Encoding.UTF8.GetBytes(header);
        var file = new byte[8 + h.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)h.Length);
        h.CopyTo(file, 8);
        string path = Save(file, ".safetensors");
        var e = Assert.Throws<CheckpointException>(() => CheckpointReader.Open(path));
        Assert.Contains(path, e.Message);
        AssertOneLine(e);
        return e;
    }

    [Theory]
    [InlineData("""{"w":{"dtype":"F32","shape":[4],"data_offsets":["0",16]}}""", "bad data_offsets")]
    [InlineData("""{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,1e400]}}""", "bad data_offsets")]
    [InlineData("""{"w":{"dtype":"F32","shape":[4.0],"data_offsets":[0,16]}}""", "bad shape")]
    [InlineData("""{"w":{"dtype":"F32","shape":[NaN],"data_offsets":[0,16]}}""", "not valid JSON")]
    [InlineData("""{"w":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,16]}}""", "is too large")]
    [InlineData("""{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", "names 'w' twice")]
    [InlineData("""{"__metadata__":{"a":"1","a":"2"}}""", "__metadata__ names 'a' twice")]
    [InlineData("""{"w\n\u001b[31m":{"dtype":"F32","shape":[4],"data_offsets":[0,17]}}""", "tensor 'w\\n\\x1b[31m'")]
    [InlineData("""{"w":{"dtype":"F32\u0000","shape":[4],"data_offsets":[0,16]}}""", "unsupported dtype 'F32\\0'")]
    public void HostileHeadersAreRefusedWithOneLine(string header, string why) => Assert.Contains(why, Fails(header).Message);

    [Fact]
    public void ManyDimensionsAndDeepNestingAreRefused()
    {
        string dims = string.Join(",", Enumerable.Repeat("1", 100_000));
        var e = Fails("{\"w\":{\"dtype\":\"F32\",\"shape\":[" + dims + "],\"data_offsets\":[0,4]}}");
        Assert.Contains("100,000 dimensions, more than 64", e.Message);
        string deep = new string('[', 10_000) + new string(']', 10_000);
        Assert.Contains("not valid JSON", Fails("{\"__metadata__\":{\"a\":" + deep + "}}").Message);
    }

    [Fact]
    public void AHeaderAbove16MiBIsRefusedBeforeItIsRead()
    {
        string path = TestPaths.TempFile(".safetensors");
        using (var fs = File.Create(path))
        {
            var len = new byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(len, 17 << 20);
            fs.Write(len);
            fs.WriteByte((byte)'{');
            fs.SetLength(8 + (17 << 20));
        }
        var e = Assert.Throws<CheckpointException>(() => CheckpointReader.Open(path));
        Assert.Contains("larger than the 16,777,216 allowed", e.Message);
    }
}
