using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using TorchSam2.Checkpoints;
using static TorchSam2.Tests.Checkpoints.HostileCheckpoints;
using static TorchSam2.Tests.Checkpoints.PickleBytes;

namespace TorchSam2.Tests.Checkpoints;

/// <summary>
/// Issue #14, the zip layer of .pt files: CRCs verified as entries are read, deflated storages inflated once,
/// and the central directory's counts, sizes and names bounded before anything is allocated for them.
/// </summary>
public class CheckpointZipTests
{
    private static CheckpointException Refused(string path, Action<string> act)
    {
        var e = Assert.Throws<CheckpointException>(() => act(path));
        Assert.Contains(path, e.Message);
        AssertOneLine(e);
        return e;
    }

    // ---- 7. CRC-32 ------------------------------------------------------------------------------

    [Fact]
    public void AStorageThatFailsItsCrcIsRefusedNotLaundered()
    {
        byte[] file = Pt(StateDict(("w", Tensor("0", 1000)), ("head", Tensor("0", 1000, 0, [10], [1]))), ("0", Floats(1000)));
        file[DataStart(file, "archive/data/0") + 3600] ^= 0x40; // element 900
        string path = Save(file);

        using (var r = CheckpointReader.Open(path)) // the pickle is intact
        {
            Assert.Contains("CRC-32", Assert.Throws<CheckpointException>(() => r.Tensors["w"].ReadBytes()).Message);
            var e = Refused(path, _ => r.ReadTensor("w").Dispose());
            Assert.Contains("tensor 'w'", e.Message);
            Assert.Contains("'archive/data/0' fails its CRC-32 check", e.Message);
            // A view of the intact first 10 elements is refused too: the storage is checked whole, once.
            Assert.Contains("CRC-32", Refused(path, _ => r.ReadTensor("head").Dispose()).Message);
        }
        // `convert` reads every tensor: nothing is written from a corrupt file.
        Assert.Contains("CRC-32", Refused(path, p => CheckpointFile.LoadStateDict(p)).Message);
        Assert.Contains("CRC-32", Refused(path, p => PtCheckpoint.Read(p)).Message);
    }

    [Fact]
    public void AViewReadFirstChecksTheWholeStorage()
    {
        byte[] file = Pt(StateDict(("head", Tensor("0", 1000, 0, [10], [1])), ("w", Tensor("0", 1000))), ("0", Floats(1000)));
        string good = Save(file);
        using (var r = CheckpointReader.Open(good))
        {
            Assert.Equal(Floats(10), r.Tensors["head"].ReadBytes());
            Assert.Equal(Floats(1000), r.Tensors["w"].ReadBytes());
        }
        file[DataStart(file, "archive/data/0") + 3996] ^= 1; // the last element
        string bad = Save(file);
        using var r2 = CheckpointReader.Open(bad);
        Assert.Contains("CRC-32", Refused(bad, _ => r2.ReadTensor("head").Dispose()).Message);
    }

    [Fact]
    public void APickleThatFailsItsCrcIsRefused()
    {
        byte[] file = Pt(StateDict(("w", Tensor("0", 4))), ("0", Floats(4)));
        int pkl = DataStart(file, "archive/data.pkl");
        int at = file.AsSpan(pkl).IndexOf("model"u8);
        file[pkl + at] = (byte)'M'; // still a valid pickle, with key "Model"
        string path = Save(file);
        var e = Refused(path, p => CheckpointReader.Open(p).Dispose());
        Assert.Contains("'archive/data.pkl' fails its CRC-32 check", e.Message);
    }

    [Fact]
    public void ADeflatedStorageThatFailsItsCrcIsRefused()
    {
        byte[] file = Pt(StateDict(("w", Tensor("0", 1000))), [("0", Floats(1000))], CompressionLevel.Optimal);
        int cd = CentralHeader(file, "archive/data/0");
        file[cd + 16] ^= 0xFF; // the recorded CRC
        string path = Save(file);
        using var r = CheckpointReader.Open(path);
        Assert.Contains("'archive/data/0' fails its CRC-32 check", Refused(path, _ => r.ReadTensor("w").Dispose()).Message);
    }

    // ---- 5. a deflated storage is inflated once -------------------------------------------------

    private static (byte[] Pickle, int Views) ManyViews(int views, int perView, int storageElements)
    {
        var items = Enumerable.Range(0, views).Select(j => ($"v{j}", Tensor("0", storageElements, (long)j * perView, [perView], [1])));
        return (StateDict(items), views);
    }

    [Theory]
    [InlineData(CompressionLevel.Optimal)]
    [InlineData(CompressionLevel.NoCompression)]
    public void AThousandViewsOfAn8MBStorageReadQuicklyAndCorrectly(CompressionLevel level)
    {
        const int Elements = 2 << 20, PerView = 2000; // 8 MB of float32
        var (pickle, n) = ManyViews(1000, PerView, Elements);
        string path = Save(Pt(pickle, [("0", Floats(Elements))], level));
        var sw = Stopwatch.StartNew();
        IReadOnlyDictionary<string, TensorRecord> sd;
        using (var r = CheckpointReader.Open(path)) sd = r.ReadAll();
        sw.Stop();
        Assert.True(sw.Elapsed.TotalSeconds < 3, $"{sw.Elapsed.TotalSeconds:F1} s for 1,000 views"); // was ~8 GB inflated
        Assert.Equal(n, sd.Count);
        for (int j = 0; j < n; j += 37)
        {
            var v = sd[$"v{j}"].ToFloat32Array();
            Assert.Equal(j * PerView, v[0]);
            Assert.Equal(j * PerView + PerView - 1, v[^1]);
        }
    }

    [Fact]
    public void WholeDeflatedStoragesStreamStraightIntoTensors()
    {
        var sd = TensorSamples.AllDTypes();
        var ms = new MemoryStream();
        PtCheckpoint.Write(ms, sd);
        string path = Save(HostileCheckpoints.Deflated(ms.ToArray()));
        var back = CheckpointFile.LoadStateDict(path);
        Assert.Equal(sd.Keys, back.Keys);
        foreach (var (k, t) in sd) Assert.Equal(t, back[k]);
    }

    [Fact]
    public void ALargeDeflatedStorageReadThroughViewsIsKeptInATemporaryFileDeletedOnClose()
    {
        const int Elements = 20 << 20; // 80 MB of float32: above the 64 MB kept in memory
        byte[] data = new byte[4L * Elements];
        BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(4 * (Elements - 1)), 7f);
        byte[] pickle = StateDict(("head", Tensor("0", Elements, 0, [4], [1])), ("tail", Tensor("0", Elements, Elements - 2, [2], [1])));
        string path = Save(Pt(pickle, [("0", data)], CompressionLevel.Fastest));
        string[] Temps() => Directory.GetFiles(Path.GetTempPath(), "torchsam2-storage-*.tmp");
        int before = Temps().Length;
        using (var r = CheckpointReader.Open(path))
        {
            Assert.Equal(new float[4], r.ReadAll()["head"].ToFloat32Array());
            Assert.Equal(new[] { 0f, 7f }, r.Tensors["tail"].ReadRecord().ToFloat32Array());
            Assert.True(Temps().Length > before);
        }
        Assert.True(Temps().Length <= before);
    }

    // ---- zip structure ---------------------------------------------------------------------------

    // Inserts a zip64 end record and locator (claiming `count` entries and a `cdSize`-byte directory) before the end record.
    private static byte[] WithZip64End(byte[] zip, long count, long cdSize)
    {
        int eocd = zip.Length - 22;
        Assert.Equal(0x06054b50u, BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(eocd)));
        long cdOffset = BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(eocd + 16));
        var rec = new byte[56 + 20];
        BinaryPrimitives.WriteUInt32LittleEndian(rec, 0x06064b50);
        BinaryPrimitives.WriteUInt64LittleEndian(rec.AsSpan(4), 44);
        BinaryPrimitives.WriteUInt64LittleEndian(rec.AsSpan(24), (ulong)count);
        BinaryPrimitives.WriteUInt64LittleEndian(rec.AsSpan(32), (ulong)count);
        BinaryPrimitives.WriteUInt64LittleEndian(rec.AsSpan(40), (ulong)cdSize);
        BinaryPrimitives.WriteUInt64LittleEndian(rec.AsSpan(48), (ulong)cdOffset);
        BinaryPrimitives.WriteUInt32LittleEndian(rec.AsSpan(56), 0x07064b50);
        BinaryPrimitives.WriteUInt64LittleEndian(rec.AsSpan(64), (ulong)eocd);
        BinaryPrimitives.WriteUInt32LittleEndian(rec.AsSpan(72), 1);
        byte[] end = zip[eocd..];
        BinaryPrimitives.WriteUInt16LittleEndian(end.AsSpan(8), 0xFFFF);
        BinaryPrimitives.WriteUInt16LittleEndian(end.AsSpan(10), 0xFFFF);
        return [.. zip[..eocd], .. rec, .. end];
    }

    [Fact]
    public void EntryCountsAndDirectorySizesAreBoundedBeforeAllocating()
    {
        byte[] file = Pt(StateDict(("w", Tensor("0", 4))), ("0", Floats(4)));
        long cdSize = BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(file.Length - 22 + 12));
        CheckpointReader.Open(Save(WithZip64End(file, 4, cdSize))).Dispose(); // a well-formed zip64 end is read
        Assert.Contains("entry 4 is malformed", Refused(Save(WithZip64End(file, 5, cdSize)), p => CheckpointReader.Open(p).Dispose()).Message);

        string many = Save(WithZip64End(file, 200_000_000, cdSize));
        Assert.Contains("200,000,000 entries, more than the 100,000", Refused(many, p => CheckpointReader.Open(p).Dispose()).Message);
        string huge = Save(WithZip64End(file, 4, 1L << 40));
        Assert.Contains("larger than the 33,554,432", Refused(huge, p => CheckpointReader.Open(p).Dispose()).Message);
        string past = Save(WithZip64End(file, 4, 30_000_000));
        Assert.Contains("central directory does not fit", Refused(past, p => CheckpointReader.Open(p).Dispose()).Message);
    }

    [Fact]
    public void LongAndDuplicateEntryNamesAreRefused()
    {
        var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            Add(zip, "archive/data.pkl", StateDict(("w", Tensor("0", 4))), CompressionLevel.NoCompression);
            Add(zip, "archive/data/" + new string('x', 2000), [], CompressionLevel.NoCompression);
        }
        string path = Save(ms.ToArray());
        Assert.Contains("name of 2,013 bytes, longer than the 1,024 allowed", Refused(path, p => CheckpointReader.Open(p).Dispose()).Message);

        ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            Add(zip, "archive/data.pkl", StateDict(("w", Tensor("0", 4))), CompressionLevel.NoCompression);
            Add(zip, "archive/data/0", Floats(4), CompressionLevel.NoCompression);
            Add(zip, "archive/data/0", new byte[16], CompressionLevel.NoCompression); // Python's zipfile would read this one
        }
        path = Save(ms.ToArray());
        Assert.Contains("two entries named 'archive/data/0'", Refused(path, p => CheckpointReader.Open(p).Dispose()).Message);
    }

    [Fact]
    public void UnsupportedMethodsAndImpossibleRatiosAreRefusedWhenTheStorageIsFound()
    {
        byte[] file = Pt(StateDict(("w", Tensor("0", 4))), ("0", Floats(4)));
        byte[] bzip = (byte[])file.Clone();
        BinaryPrimitives.WriteUInt16LittleEndian(bzip.AsSpan(CentralHeader(bzip, "archive/data/0") + 10), 12);
        string path = Save(bzip);
        Assert.Contains("'archive/data/0' uses compression method 12", Refused(path, p => CheckpointReader.Open(p).Dispose()).Message);

        byte[] big = Pt(StateDict(("w", Tensor("0", 4))), [("0", Floats(4))], CompressionLevel.Optimal);
        ClaimSize(big, "archive/data/0", 2_000_000_000);
        path = Save(big);
        Assert.Contains("more than deflate can produce", Refused(path, p => CheckpointReader.Open(p).Dispose()).Message);
    }

    [Fact]
    public void AnEntryPastTheEndOfTheFileIsRefused()
    {
        byte[] file = Pt(StateDict(("w", Tensor("0", 1000))), ("0", Floats(1000)));
        int cd = CentralHeader(file, "archive/data/0");
        // Claim the storage is 100 MB (stored): it cannot fit in a 5 KB file.
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(cd + 20), 100_000_000);
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(cd + 24), 100_000_000);
        string path = Save(file);
        Assert.Contains("run past the end of the file", Refused(path, p => CheckpointReader.Open(p).Dispose()).Message);
    }

    [Fact]
    public void NewerPickleProtocolsAndOverlongGlobalsAreRefused()
    {
        Assert.Contains("protocol 6", Assert.Throws<CheckpointException>(() => PickleReader.Load(Of(0x80, 6, 'N', '.'))).Message);
        byte[] longGlobal = Of(0x80, 2, 'c', new string('m', 5000), "\nx\n", '.');
        Assert.Contains("longer than 1024 bytes", Assert.Throws<CheckpointException>(() => PickleReader.Load(longGlobal)).Message);
        byte[] notLatin1 = Of(0x80, 2, 'c', "_codecs\nencode\n", LongStr("\u20ac"), Str("latin1"), 0x86, 'R', '.');
        Assert.Contains("not latin1", Assert.Throws<CheckpointException>(() => PickleReader.Load(notLatin1)).Message);
    }

    [Theory]
    [InlineData(0x8d)] // BINUNICODE8
    [InlineData(0x8e)] // BINBYTES8
    public void HugeEightByteLengthsAreTruncationNotAllocation(int op)
    {
        byte[] p = Of(0x80, 4, op, BitConverter.GetBytes(ulong.MaxValue - 5), "abc");
        Assert.Contains("truncated", Assert.Throws<CheckpointException>(() => PickleReader.Load(p)).Message);
        byte[] long4 = Of(0x80, 2, 0x8b, BitConverter.GetBytes(int.MaxValue), "abc");
        Assert.Contains("truncated", Assert.Throws<CheckpointException>(() => PickleReader.Load(long4)).Message);
    }
}
