using System.Buffers.Binary;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;
using TorchSharp.Modules;
using TorchSam2.Checkpoints;
using Xunit;

namespace TorchSam2.Tests.Checkpoints;

public class SafeTensorsTests
{
    [Fact]
    public void RoundTripKeepsBytesOrderAndMetadata()
    {
        var sd = TensorSamples.AllDTypes();
        string path = TestPaths.TempFile(".safetensors");
        SafeTensors.Write(path, sd, new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode" });
        var back = SafeTensors.Read(path);
        Assert.Equal(sd.Keys, back.Tensors.Keys);
        foreach (var (k, t) in sd) Assert.Equal(t, back.Tensors[k]);
        Assert.Equal("pt", back.Metadata["format"]);
        Assert.Equal("ünïcode", back.Metadata["note"]);
        File.Delete(path);
    }

    [Fact]
    public void HeaderIsPaddedTo8BytesWithSpaces()
    {
        var ms = new MemoryStream();
        SafeTensors.Write(ms, new Dictionary<string, TensorRecord> { ["x"] = TensorRecord.FromFloat32([1], [2f]) });
        byte[] file = ms.ToArray();
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(file);
        Assert.Equal(0ul, n % 8);
        string header = Encoding.UTF8.GetString(file, 8, (int)n);
        Assert.StartsWith("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", header);
        Assert.All(header[header.TrimEnd(' ').Length..], c => Assert.Equal(' ', c));
        Assert.Equal(8 + (int)n + 4, file.Length);
    }

    private static byte[] Build(string header, int dataBytes)
    {
        byte[] h = Encoding.UTF8.GetBytes(header);
        var file = new byte[8 + h.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)h.Length);
        h.CopyTo(file, 8);
        return file;
    }

    private static CheckpointException Fails(byte[] file) =>
        Assert.Throws<CheckpointException>(() => SafeTensors.Read(new MemoryStream(file)));

    [Fact]
    public void HeaderLengthPastEndOfFile()
    {
        byte[] file = Build("{}", 0);
        BinaryPrimitives.WriteUInt64LittleEndian(file, 1000);
        Assert.Contains("runs past the end of the file", Fails(file).Message);
    }

    [Fact]
    public void TooShortForLength() => Assert.Contains("truncated", Fails([1, 2, 3]).Message);

    [Fact]
    public void OverlappingOffsets()
    {
        var e = Fails(Build("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12));
        Assert.Contains("overlap", e.Message);
        Assert.Contains("'a'", e.Message);
        Assert.Contains("'b'", e.Message);
    }

    [Fact]
    public void SizeDisagreesWithShape()
    {
        var e = Fails(Build("""{"w":{"dtype":"F16","shape":[3],"data_offsets":[0,8]}}""", 8));
        Assert.Contains("'w'", e.Message);
        Assert.Contains("needs 6 bytes", e.Message);
    }

    [Fact]
    public void OffsetsPastDataSection()
    {
        var e = Fails(Build("""{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", 8));
        Assert.Contains("'w'", e.Message);
        Assert.Contains("past the data section", e.Message);
    }

    [Fact]
    public void UnknownDTypeNamesTensor()
    {
        var e = Fails(Build("""{"q":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}""", 1));
        Assert.Contains("'q'", e.Message);
        Assert.Contains("F8_E4M3", e.Message);
    }

    [Fact]
    public void InvalidJson() => Assert.Contains("not valid JSON", Fails(Build("{\"a\": ", 0)).Message);

    [Fact]
    public void ReadsParityWeights()
    {
        string path = Path.Combine(TestPaths.ParityDir, "micro_modules", "weights.safetensors");
        Assert.True(File.Exists(path), $"parity weights not found at {path} (set TORCHSAM2_PARITY_DIR)");
        var sd = SafeTensors.Read(path).Tensors;
        // micro_modules/model.yaml: Hiera embed_dim 16, 4 memory-mask frames... (num_maskmem 7), mem dim 16, d_model 64.
        Assert.Equal(new long[] { 16, 3, 7, 7 }, sd["image_encoder.trunk.patch_embed.proj.weight"].Shape);
        Assert.Equal(new long[] { 1, 16, 7, 7 }, sd["image_encoder.trunk.pos_embed"].Shape);
        Assert.Equal(new long[] { 7, 1, 1, 16 }, sd["maskmem_tpos_enc"].Shape);
        Assert.Equal(new long[] { 64, 16 }, sd["memory_attention.layers.0.cross_attn_image.k_proj.weight"].Shape);
        Assert.Equal(new long[] { 64, 128, 1, 1 }, sd["image_encoder.neck.convs.0.conv.weight"].Shape);
        Assert.All(sd.Values, t => Assert.Equal(ScalarType.Float32, t.DType));
        Assert.All(sd["image_encoder.trunk.patch_embed.proj.weight"].ToFloat32Array(), v => Assert.True(float.IsFinite(v)));
    }
}
