using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;
using TorchSharp.Modules;
using TorchSam2.Checkpoints;
using Xunit;

namespace TorchSam2.Tests.Checkpoints;

public class PtCheckpointTests
{
    [Fact]
    public void RoundTripIsBitIdenticalAndOrdered()
    {
        var sd = TensorSamples.AllDTypes();
        string path = TestPaths.TempFile(".pt");
        PtCheckpoint.Write(path, sd);
        var back = PtCheckpoint.LoadStateDict(path);
        Assert.Equal(sd.Keys, back.Keys);
        foreach (var (k, t) in sd)
        {
            Assert.Equal(t.DType, back[k].DType);
            Assert.Equal(t.Shape, back[k].Shape);
            Assert.Equal(t.Data, back[k].Data);
        }
        File.Delete(path);
    }

    [Fact]
    public void WritesTorchLayoutWithAlignedStorages()
    {
        var sd = TensorSamples.AllDTypes();
        var ms = new MemoryStream();
        PtCheckpoint.Write(ms, sd, wrapKey: "model", archiveName: "sam2.1_hiera_tiny");
        byte[] file = ms.ToArray();

        using (var zip = new ZipArchive(new MemoryStream(file), ZipArchiveMode.Read))
        {
            var names = zip.Entries.Select(e => e.FullName).ToList();
            Assert.Equal("sam2.1_hiera_tiny/data.pkl", names[0]);
            Assert.Contains("sam2.1_hiera_tiny/byteorder", names);
            Assert.Contains("sam2.1_hiera_tiny/version", names);
            Assert.Equal(sd.Count, names.Count(n => n.StartsWith("sam2.1_hiera_tiny/data/", StringComparison.Ordinal)));
            Assert.All(zip.Entries, e => Assert.Equal(e.Length, e.CompressedLength)); // stored, not deflated
            using var r = new StreamReader(zip.GetEntry("sam2.1_hiera_tiny/version")!.Open());
            Assert.Equal("3\n", r.ReadToEnd());
        }

        // Walk the local headers: every entry's data must start on a 64-byte boundary.
        int pos = 0, entries = 0;
        while (BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(pos)) == 0x04034b50)
        {
            int size = (int)BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(pos + 18));
            int nameLen = BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(pos + 26));
            int extraLen = BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(pos + 28));
            int dataStart = pos + 30 + nameLen + extraLen;
            Assert.Equal(0, dataStart % 64);
            pos = dataStart + size;
            entries++;
        }
        Assert.Equal(sd.Count + 3, entries);

        // The whole object tree: {"model": OrderedDict(...)}.
        var root = Assert.IsType<PickleDict>(PtCheckpoint.Read(new MemoryStream(file)));
        Assert.Equal(["model"], root.Keys.Cast<string>());
    }

    [Fact]
    public void UnwrappedStateDictIsFoundAtTopLevel()
    {
        var sd = TensorSamples.AllDTypes();
        var ms = new MemoryStream();
        PtCheckpoint.Write(ms, sd, wrapKey: null);
        ms.Position = 0;
        var back = PtCheckpoint.LoadStateDict(ms); // no "model" key: falls back to the top-level map
        Assert.Equal(sd.Keys, back.Keys);
        Assert.Equal(sd["bf16"], back["bf16"]);
    }

    [Fact]
    public void WrongWrapKeyNamesTheKeysPresent()
    {
        var ms = new MemoryStream();
        PtCheckpoint.Write(ms, TensorSamples.AllDTypes(), wrapKey: "state");
        ms.Position = 0;
        var e = Assert.Throws<CheckpointException>(() => PtCheckpoint.LoadStateDict(ms, "model"));
        Assert.Contains("'state'", e.Message);
    }

    [Fact]
    public void BigEndianStoragesAreSwapped()
    {
        var sd = new OrderedDictionary<string, TensorRecord>
        {
            ["w"] = TensorRecord.FromFloat32([3], [1f, -2.5f, 1e-3f]),
            ["h"] = TensorRecord.Create<Half>(ScalarType.Float16, [2], [(Half)0.5f, (Half)(-3f)]),
        };
        var ms = new MemoryStream();
        PtCheckpoint.Write(ms, sd);
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Update, leaveOpen: true))
        {
            Rewrite(zip, "archive/byteorder", Encoding.ASCII.GetBytes("big"));
            Rewrite(zip, "archive/data/0", Swap(sd["w"].Data, 4));
            Rewrite(zip, "archive/data/1", Swap(sd["h"].Data, 2));
        }
        ms.Position = 0;
        var back = PtCheckpoint.LoadStateDict(ms);
        Assert.Equal(new[] { 1f, -2.5f, 1e-3f }, back["w"].ToFloat32Array());
        Assert.Equal(new[] { 0.5f, -3f }, back["h"].ToFloat32Array());
    }

    [Fact]
    public void TruncatedZipIsReported()
    {
        var ms = new MemoryStream();
        PtCheckpoint.Write(ms, TensorSamples.AllDTypes());
        string path = TestPaths.TempFile(".pt");
        File.WriteAllBytes(path, ms.ToArray()[..(int)(ms.Length / 2)]);
        var e = Assert.Throws<CheckpointException>(() => PtCheckpoint.LoadStateDict(path));
        Assert.Contains("truncated", e.Message);
        Assert.Contains(path, e.Message);
        File.Delete(path);
    }

    [Fact]
    public void WrongMagicIsReported()
    {
        var e = Assert.Throws<CheckpointException>(() => PtCheckpoint.Read(new MemoryStream("hello world"u8.ToArray())));
        Assert.Contains("not a PyTorch zip checkpoint", e.Message);
        Assert.Contains("68 65 6C 6C", e.Message);
    }

    [Fact]
    public void LegacyFormatIsExplained()
    {
        // Legacy torch.save starts with a pickled magic number: 80 02 8a 0a 6c fc 9c 46 f9 20 6a a8 50 19.
        byte[] legacy = Convert.FromHexString("80028a0a6cfc9c46f9206aa85019");
        var e = Assert.Throws<CheckpointException>(() => PtCheckpoint.Read(new MemoryStream(legacy)));
        Assert.Contains("legacy (pre-1.6)", e.Message);
        Assert.Contains("_use_new_zipfile_serialization=True", e.Message);
    }

    [Fact]
    public void ZipWithoutDataPklIsNotACheckpoint()
    {
        var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
            using (var s = zip.CreateEntry("readme.txt").Open()) s.Write("hi"u8);
        ms.Position = 0;
        var e = Assert.Throws<CheckpointException>(() => PtCheckpoint.Read(ms));
        Assert.Contains("data.pkl", e.Message);
    }

    [Fact]
    public void MissingFileIsReported()
    {
        var e = Assert.Throws<FileNotFoundException>(() => PtCheckpoint.LoadStateDict("/nonexistent/sam2.pt"));
        Assert.Contains("/nonexistent/sam2.pt", e.Message);
    }

    private static void Rewrite(ZipArchive zip, string name, byte[] content)
    {
        zip.GetEntry(name)!.Delete();
        using var s = zip.CreateEntry(name, CompressionLevel.NoCompression).Open();
        s.Write(content);
    }

    private static byte[] Swap(byte[] data, int es)
    {
        byte[] r = (byte[])data.Clone();
        for (int i = 0; i < r.Length; i += es) Array.Reverse(r, i, es);
        return r;
    }
}
