using Xunit.Abstractions;
using System.IO.Compression;
using TorchSam2.Checkpoints;
using static TorchSam2.Tests.Checkpoints.HostileCheckpoints;
using static TorchSam2.Tests.Checkpoints.PickleBytes;

namespace TorchSam2.Tests.Checkpoints;

/// <summary>
/// Issue #14, checkpoints: files made to overflow the stack, exhaust memory, read outside their storages or be
/// accepted when corrupt. Each must end in one typed, one-line CheckpointException that names the file and the
/// entry. The memory-bomb cases run alone (NativeMemory collection) so the resident set they measure is theirs.
/// </summary>
[Collection(NativeMemory.Collection)]
public class HostileCheckpointTests(ITestOutputHelper output)
{
    private const long MaxGrowth = 200_000_000;

    private static CheckpointException Refused(string path, Action<string> open)
    {
        var e = Assert.Throws<CheckpointException>(() => open(path));
        Assert.Contains(path, e.Message);
        AssertOneLine(e);
        return e;
    }

    private static CheckpointException RefusedByReader(string path) => Refused(path, p => CheckpointReader.Open(p).Dispose());

    // ---- 1. recursion ---------------------------------------------------------------------------

    // (rebuild_from_type_v2, Tensor, (rebuild_from_type_v2, Tensor, (... (rebuild_tensor_v2, Tensor, args, None) ...), None), None)
    private static byte[] FromTypeNest(int levels)
    {
        var ms = new MemoryStream();
        ms.Write(Of(0x80, 2, '}', Str("model"), '}', Str("w")));
        ms.Write(Of('c', "torch._tensor\n_rebuild_from_type_v2\n", 'q', 0, 'c', "torch\nTensor\n", 'q', 1, '0'));
        for (int k = 0; k < levels - 1; k++) ms.Write(Of('(', 'h', 0, 'h', 1));
        ms.Write(Of('(', RebuildTensorGlobal, 'h', 1, TensorArgs("0", 4, 0, [4], [1]), 'N', 't'));
        for (int k = 0; k < levels - 1; k++) ms.Write(Of('N', 't'));
        ms.Write(Of('R', 's', 's', '.'));
        return ms.ToArray();
    }

    [Fact]
    public void RebuildFromTypeNested20000DeepIsRefusedWithoutOverflowingTheStack()
    {
        string ok = Save(Pt(FromTypeNest(3), ("0", Floats(4))));
        using (var r = CheckpointReader.Open(ok))
            Assert.Equal(Floats(4), r.Tensors["w"].ReadBytes()); // a few wrappers are fine

        string path = Save(Pt(FromTypeNest(20_000), ("0", Floats(4))));
        var e = RefusedByReader(path);
        Assert.Contains("_rebuild_from_type_v2", e.Message);
        Assert.Contains("1,000 deep", e.Message);
        Refused(path, p => PtCheckpoint.Read(p));
    }

    private static byte[] WithExtra(byte[] extraValue) =>
        Of(0x80, 2, '}', Str("model"), '}', Str("w"), Tensor("0", 4), 's', 's', Str("extra"), extraValue, 's', '.');

    [Theory]
    [InlineData("list")]
    [InlineData("tuple")]
    [InlineData("dict")]
    public void Containers20000DeepAreRefusedWhereTheTreeIsReturned(string kind)
    {
        const int N = 20_000;
        byte[] nest = kind switch
        {
            "list" => Of(Enumerable.Repeat((byte)'(', N).ToArray(), ']', Enumerable.Repeat((byte)'l', N).ToArray()),
            "tuple" => Of(Enumerable.Repeat((byte)'(', N).ToArray(), ')', Enumerable.Repeat((byte)'t', N).ToArray()),
            _ => Of(Enumerable.Range(0, N).SelectMany(_ => Of('}', Str("k"))).ToArray(), '}', Enumerable.Repeat((byte)'s', N).ToArray()),
        };
        string path = Save(Pt(WithExtra(nest), ("0", Floats(4))));
        // The state dict itself is fine: a reader looks no deeper than the "model" entry.
        using (var r = CheckpointReader.Open(path)) Assert.Equal(["w"], r.Tensors.Keys);
        // The whole tree is handed to callers, who may walk it recursively: refused.
        var e = Refused(path, p => PtCheckpoint.Read(p));
        Assert.Contains("more than 1,000 deep", e.Message);
    }

    [Fact]
    public void AListHoldingItselfIsRefusedWhereTheTreeIsReturned()
    {
        string path = Save(Pt(WithExtra(Of(']', 'q', 9, 'h', 9, 'a')), ("0", Floats(4))));
        Assert.Contains("cycle", Refused(path, p => PtCheckpoint.Read(p)).Message);
        using var r = CheckpointReader.Open(path);
        Assert.Single(r.Tensors);
    }

    [Fact]
    public void ASharedTensorIsReadOnceWhenTheTreeIsMaterialized()
    {
        // {"model": {"w": t}, "extra": [t, t, ... 100,000 times]}: one record, not 100,000 copies of 4 MB.
        byte[] list = Of(']', '(', Enumerable.Repeat(Of('h', 3), 100_000).SelectMany(b => b).ToArray(), 'e');
        byte[] pickle = Of(0x80, 2, '}', Str("model"), '}', Str("w"), Tensor("0", 1 << 20), 'q', 3, 's', 's', Str("extra"), list, 's', '.');
        string path = Save(Pt(pickle, ("0", new byte[4 << 20])));
        var m = MemoryProbe.Measure(() =>
        {
            var root = Assert.IsType<PickleDict>(PtCheckpoint.Read(path));
            var shared = Assert.IsType<List<object?>>(root["extra"]);
            Assert.Equal(100_000, shared.Count);
            Assert.Same(shared[0], shared[99_999]);
        });
        output.WriteLine(m.ToString());
        Assert.Null(m.Error);
        Assert.True(m.Allocated < MaxGrowth, m.ToString());
    }

    // ---- 3. memory from small files ------------------------------------------------------------

    private static byte[] DeflatedPickle(long opcodes, byte op)
    {
        // PROTO 2, then `opcodes` copies of op, then STOP, deflated as data.pkl: a few KB on disk.
        var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            using (var s = zip.CreateEntry("archive/data.pkl", CompressionLevel.SmallestSize).Open())
            {
                s.Write([0x80, 2]);
                var chunk = new byte[1 << 20];
                chunk.AsSpan().Fill(op);
                for (long left = opcodes; left > 0; left -= chunk.Length) s.Write(chunk, 0, (int)Math.Min(left, chunk.Length));
                s.WriteByte((byte)'.');
            }
            Add(zip, "archive/byteorder", "little"u8.ToArray(), CompressionLevel.NoCompression);
        }
        return ms.ToArray();
    }

    [Fact]
    public void TwentyMillionEmptyDictsStopAtTheValueLimit()
    {
        byte[] file = DeflatedPickle(20_000_000, (byte)'}');
        Assert.True(file.Length < 100_000, $"{file.Length} bytes");
        string path = Save(file);
        var m = MemoryProbe.Measure(() => CheckpointReader.Open(path).Dispose());
        output.WriteLine(m.ToString());
        var e = Assert.IsType<CheckpointException>(m.Error);
        Assert.Contains(path, e.Message);
        Assert.Contains("more than 1,000,000 values", e.Message);
        AssertOneLine(e);
        Assert.True(m.PeakGrowth < MaxGrowth && m.Allocated < MaxGrowth, m.ToString());
    }

    [Fact]
    public void FiftyMillionEmptyDictsIn49KBAreRefusedBeforeInflating()
    {
        byte[] file = DeflatedPickle(50_000_000, (byte)'}');
        Assert.True(file.Length < 100_000, $"{file.Length} bytes");
        string path = Save(file);
        var m = MemoryProbe.Measure(() => CheckpointReader.Open(path).Dispose());
        output.WriteLine(m.ToString());
        var e = Assert.IsType<CheckpointException>(m.Error);
        Assert.Contains("'archive/data.pkl' holds 50,000,003 bytes, more than the 33,554,432 allowed", e.Message);
        Assert.True(m.PeakGrowth < 50_000_000 && m.Allocated < 10_000_000, m.ToString());
    }

    [Fact]
    public void A1point5GBPickleOfZerosIsRefusedBeforeInflatingAndALyingSizeIsCaughtWhileInflating()
    {
        byte[] file = DeflatedPickle(1_500_000_000, 0);
        Assert.True(file.Length < 20_000_000, $"{file.Length} bytes");
        string path = Save(file);
        var m = MemoryProbe.Measure(() => CheckpointReader.Open(path).Dispose());
        output.WriteLine(m.ToString());
        var e = Assert.IsType<CheckpointException>(m.Error);
        Assert.Contains("holds 1,500,000,003 bytes, more than the 33,554,432 allowed", e.Message);
        Assert.True(m.PeakGrowth < 50_000_000 && m.Allocated < 10_000_000, m.ToString());

        // The central directory claims 1,000 bytes: inflating stops at byte 1,001.
        ClaimSize(file, "archive/data.pkl", 1000);
        string lying = Save(file);
        m = MemoryProbe.Measure(() => CheckpointReader.Open(lying).Dispose());
        output.WriteLine(m.ToString());
        e = Assert.IsType<CheckpointException>(m.Error);
        Assert.Contains(lying, e.Message);
        Assert.Contains("'archive/data.pkl' inflates to more than the 1,000 bytes it declares", e.Message);
        Assert.True(m.PeakGrowth < 50_000_000 && m.Allocated < 10_000_000, m.ToString());
    }

    [Theory]
    [InlineData(0x32)] // DUP: a reference pushed again and again
    [InlineData(0x72)] // LONG_BINPUT with ever new keys: a memo that grows
    public void FloodsOfReferencesStopAtTheValueLimit(int op)
    {
        var ms = new MemoryStream();
        ms.Write(Of(0x80, 2, '}'));
        for (uint i = 0; i < 3_000_000; i++)
        {
            ms.WriteByte((byte)op);
            if (op == 0x72) ms.Write(BitConverter.GetBytes(i));
        }
        ms.WriteByte((byte)'.');
        byte[] pickle = ms.ToArray();
        var m = MemoryProbe.Measure(() => PickleReader.Load(pickle));
        output.WriteLine(m.ToString());
        var e = Assert.IsType<CheckpointException>(m.Error);
        Assert.Contains("more than 1,000,000 values", e.Message);
        Assert.True(m.Allocated < MaxGrowth, m.ToString());
    }

    // ---- 4. views larger than their storage ----------------------------------------------------

    [Fact]
    public void ThreeHalfBillionElementStrideZeroViewsOfA4ByteStorageAreRefused()
    {
        byte[] pickle = StateDict(
            ("a", Tensor("0", 1, 0, [500_000_000], [0])),
            ("b", Tensor("0", 1, 0, [500_000_000], [0])),
            ("c", Tensor("0", 1, 0, [500_000_000], [0])));
        byte[] file = Pt(pickle, ("0", Floats(1)));
        Assert.True(file.Length < 2000);
        string path = Save(file);
        var m = MemoryProbe.Measure(() => CheckpointFile.LoadStateDict(path)); // what `convert` does
        var e = Assert.IsType<CheckpointException>(m.Error);
        output.WriteLine(m.ToString());
        Assert.Contains(path, e.Message);
        Assert.Contains("tensor 'a'", e.Message);
        Assert.Contains("more than its storage '0' holds (1)", e.Message);
        AssertOneLine(e);
        Assert.True(m.PeakGrowth < MaxGrowth && m.Allocated < 10_000_000, m.ToString());
    }

    [Fact]
    public void AStrideZeroViewNoLargerThanItsStorageStillReads()
    {
        string path = Save(Pt(StateDict(("x", Tensor("0", 4, 1, [4], [0]))), ("0", Floats(4))));
        var sd = CheckpointFile.LoadStateDict(path);
        Assert.Equal(new[] { 1f, 1f, 1f, 1f }, sd["x"].ToFloat32Array());
    }

    [Theory]
    [InlineData("ByteStorage", 1L, 0L, new[] { 1L << 61 }, new[] { 0L }, "more than its storage")] // inspect said 2.3e18 parameters
    [InlineData("FloatStorage", 4L, 0L, new[] { 1L << 40, 1L << 40 }, new[] { 1L, 1L }, "more elements than fit in 64 bits")]
    [InlineData("FloatStorage", 4L, 0L, new[] { 3L, 1L }, new[] { 1L << 62, 1L }, "reaches beyond 2^63 elements")]
    [InlineData("FloatStorage", 4L, 0L, new[] { 3L }, new[] { 2L }, "reaches element 4")]
    [InlineData("FloatStorage", 4L, 0L, new[] { 2L }, new[] { -1L }, "negative stride -1")]
    [InlineData("FloatStorage", 4L, -1L, new[] { 2L }, new[] { 1L }, "negative storage offset -1")]
    [InlineData("FloatStorage", 4L, 0L, new[] { -2L }, new[] { 1L }, "negative dimension")]
    [InlineData("FloatStorage", 4L, 9L, new[] { 0L }, new[] { 1L }, "past the end of storage")]
    public void BadViewsAreRefusedWhenTheFileIsOpened(string type, long numel, long offset, long[] size, long[] stride, string why)
    {
        byte[] storage = new byte[4 * 4];
        string path = Save(Pt(StateDict(("v", Tensor("0", numel, offset, size, stride, type))), ("0", storage)));
        var e = RefusedByReader(path);
        Assert.Contains("tensor 'v'", e.Message);
        Assert.Contains(why, e.Message);
    }

    [Fact]
    public void TensorsOfMoreThan64DimensionsAreRefused()
    {
        string path = Save(Pt(StateDict(("v", Tensor("0", 1, 0, Enumerable.Repeat(1L, 65).ToArray(), new long[65]))), ("0", Floats(1))));
        Assert.Contains("65 dimensions, more than 64", RefusedByReader(path).Message);
    }

    [Theory]
    [InlineData(1L << 62, "FloatStorage")] // numel x 4 wraps around 2^64
    [InlineData(5L, "FloatStorage")]
    [InlineData(-1L, "FloatStorage")]
    [InlineData(long.MaxValue, "DoubleStorage")]
    public void StorageSizesBeyondTheirEntryAreRefused(long numel, string type)
    {
        string path = Save(Pt(StateDict(("v", Tensor("0", numel, 0, [1], [1], type))), ("0", Floats(4))));
        var e = RefusedByReader(path);
        Assert.Contains("storage '0' holds 16 bytes but", e.Message);
    }

    // ---- untrusted text in messages ------------------------------------------------------------

    [Fact]
    public void NamesFromTheFileAreEscapedAndCutInMessages()
    {
        string evil = "evil\n\u001b[2J\u202e\r" + new string('A', 10_000);
        // A state dict entry that is not a tensor, named with control characters and 10,000 characters long.
        string path = Save(Pt(Of(0x80, 2, '}', Str("model"), '}', LongStr(evil), 'K', 1, 's', 's', '.')));
        var e = RefusedByReader(path);
        Assert.Contains("'evil\\n\\x1b[2J\\u202e\\r", e.Message);
        Assert.Contains($"({evil.Length:N0} characters)", e.Message);
        Assert.True(e.Message.Length < path.Length + 400, e.Message);

        // A storage key that names no entry.
        path = Save(Pt(StateDict(("w", Tensor("\u0007bell\u0000" + new string('k', 5000), 4)))));
        e = RefusedByReader(path);
        Assert.Contains("storage '\\x07bell\\0kkk", e.Message);
        Assert.True(e.Message.Length < path.Length + 700, e.Message);

        // A dangerous global with a terminal escape in its name.
        path = Save(Pt(Of(0x80, 2, 'c', "os\nsystem\u001b]0;pwned\u0007\n", 'q', 0, '.')));
        e = RefusedByReader(path);
        Assert.Contains("'os.system\\x1b]0;pwned\\x07'", e.Message);
    }

    [Fact]
    public void UntrustedTextKeepsPairsAndPrintableText()
    {
        Assert.Equal("'héllo 🙂'", UntrustedText.Quote("héllo 🙂"));
        Assert.Equal("a\\nb\\tc\\x7f\\x85\\ud800", UntrustedText.Escape("a\nb\tc\u007f\u0085\ud800"));
        Assert.Equal("🙂... (3 characters)", UntrustedText.Escape("🙂x", 2));
        Assert.Equal("... (3 characters)", UntrustedText.Escape("🙂x", 1)); // does not split the pair
        Assert.Equal("None", UntrustedText.Escape(null));
    }
}
