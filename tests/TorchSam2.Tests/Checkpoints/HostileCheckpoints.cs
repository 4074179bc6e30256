using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using static TorchSam2.Tests.Checkpoints.PickleBytes;

namespace TorchSam2.Tests.Checkpoints;

/// <summary>
/// Builds .pt files by hand (pickle opcodes and a zip written by System.IO.Compression), so that tests can make
/// the hostile inputs they check: nothing here is a committed blob.
/// </summary>
internal static class HostileCheckpoints
{
    /// <summary>LONG1 with 8 bytes: any long.</summary>
    public static byte[] Long(long v) => [0x8a, 8, .. BitConverter.GetBytes(v)];

    public static byte[] Tuple(IEnumerable<long> xs) => Of('(', xs.SelectMany(Long).ToArray(), 't');

    /// <summary><c>_rebuild_tensor_v2(persid(('storage', torch.&lt;type&gt;, key, 'cpu', numel)), offset, size, stride, False, {})</c>.</summary>
    public static byte[] Tensor(string key, long numel, long offset, long[] size, long[] stride, string storageType = "FloatStorage") =>
        Of(RebuildTensorGlobal, TensorArgs(key, numel, offset, size, stride, storageType), 'R');

    public static readonly byte[] RebuildTensorGlobal = Of('c', "torch._utils\n_rebuild_tensor_v2\n");

    /// <summary>The argument tuple of <see cref="Tensor(string, long, long, long[], long[], string)"/>.</summary>
    public static byte[] TensorArgs(string key, long numel, long offset, long[] size, long[] stride, string storageType = "FloatStorage") =>
        Of('(',
           '(', Str("storage"), 'c', $"torch\n{storageType}\n", LongStr(key), Str("cpu"), Long(numel), 't', 'Q',
           Long(offset), Tuple(size), Tuple(stride), 0x89, '}',
           't');

    /// <summary>A contiguous view of the whole of storage <paramref name="key"/>.</summary>
    public static byte[] Tensor(string key, long numel) => Tensor(key, numel, 0, [numel], [1]);

    /// <summary><c>{"model": {name: tensor, ...}}</c>, protocol 2.</summary>
    public static byte[] StateDict(IEnumerable<(string Name, byte[] Tensor)> items)
    {
        var ms = new MemoryStream();
        ms.Write(Of(0x80, 2, '}', Str("model"), '}', '('));
        foreach (var (name, t) in items)
        {
            ms.Write(LongStr(name));
            ms.Write(t);
        }
        ms.Write(Of('u', 's', '.'));
        return ms.ToArray();
    }

    public static byte[] StateDict(params (string Name, byte[] Tensor)[] items) => StateDict(items.AsEnumerable());

    /// <summary>A torch.save-shaped zip: archive/data.pkl, byteorder, data/&lt;key&gt;..., version.</summary>
    public static byte[] Pt(byte[] pickle, IEnumerable<(string Key, byte[] Data)> storages,
                            CompressionLevel storageLevel = CompressionLevel.NoCompression,
                            CompressionLevel pickleLevel = CompressionLevel.NoCompression)
    {
        var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            Add(zip, "archive/data.pkl", pickle, pickleLevel);
            Add(zip, "archive/byteorder", "little"u8.ToArray(), CompressionLevel.NoCompression);
            foreach (var (key, data) in storages) Add(zip, "archive/data/" + key, data, storageLevel);
            Add(zip, "archive/version", "3\n"u8.ToArray(), CompressionLevel.NoCompression);
        }
        return ms.ToArray();
    }

    public static byte[] Pt(byte[] pickle, params (string Key, byte[] Data)[] storages) => Pt(pickle, storages.AsEnumerable());

    /// <summary>The same archive with every entry deflated (torch.save stores them; other zip tools may not).</summary>
    public static byte[] Deflated(byte[] zipBytes)
    {
        var deflated = new MemoryStream();
        using (var src = new ZipArchive(new MemoryStream(zipBytes), ZipArchiveMode.Read))
        using (var dst = new ZipArchive(deflated, ZipArchiveMode.Create, leaveOpen: true))
            foreach (var e in src.Entries)
            {
                using var from = e.Open();
                using var to = dst.CreateEntry(e.FullName, CompressionLevel.Optimal).Open();
                from.CopyTo(to);
            }
        return deflated.ToArray();
    }

    public static void Add(ZipArchive zip, string name, byte[] data, CompressionLevel level)
    {
        using var s = zip.CreateEntry(name, level).Open();
        s.Write(data);
    }

    /// <summary>Writes <paramref name="bytes"/> to a new temporary file with the given extension.</summary>
    public static string Save(byte[] bytes, string extension = ".pt")
    {
        string path = TestPaths.TempFile(extension);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>Float32 values 0, 1, 2, ... as bytes.</summary>
    public static byte[] Floats(int n)
    {
        var b = new byte[4L * n];
        for (int i = 0; i < n; i++) BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(4 * i), i);
        return b;
    }

    /// <summary>Offset of the central directory header of entry <paramref name="name"/>.</summary>
    public static int CentralHeader(byte[] zip, string name)
    {
        byte[] n = Encoding.UTF8.GetBytes(name);
        for (int p = zip.Length - 46; p >= 0; p--)
            if (BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(p)) == 0x02014b50 &&
                BinaryPrimitives.ReadUInt16LittleEndian(zip.AsSpan(p + 28)) == n.Length && zip.AsSpan(p + 46, n.Length).SequenceEqual(n))
                return p;
        throw new InvalidOperationException($"no central directory entry {name}");
    }

    /// <summary>Offset of the first data byte of entry <paramref name="name"/> (from its local header).</summary>
    public static int DataStart(byte[] zip, string name)
    {
        int cd = CentralHeader(zip, name);
        int local = (int)BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(cd + 42));
        return local + 30 + BinaryPrimitives.ReadUInt16LittleEndian(zip.AsSpan(local + 26)) + BinaryPrimitives.ReadUInt16LittleEndian(zip.AsSpan(local + 28));
    }

    /// <summary>Sets the uncompressed size the central directory (and local header) claim for an entry.</summary>
    public static void ClaimSize(byte[] zip, string name, uint size)
    {
        int cd = CentralHeader(zip, name);
        BinaryPrimitives.WriteUInt32LittleEndian(zip.AsSpan(cd + 24), size);
        int local = (int)BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(cd + 42));
        BinaryPrimitives.WriteUInt32LittleEndian(zip.AsSpan(local + 22), size);
    }

    /// <summary>The exception's message is one line, with no control characters.</summary>
    public static void AssertOneLine(Exception e)
    {
        Assert.DoesNotContain('\n', e.Message);
        Assert.DoesNotContain('\r', e.Message);
        Assert.DoesNotContain(e.Message, c => char.IsControl(c));
    }
}
