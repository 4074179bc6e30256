using System.IO.Compression;
using TorchSam2.Checkpoints;
using static TorchSharp.torch;
using static TorchSam2.Tests.Checkpoints.HostileCheckpoints;

namespace TorchSam2.Tests.Checkpoints;

/// <summary>
/// Issue #14: damaged files of every kind end in a CheckpointException (or load), never another exception. Seeded
/// mutations (byte changes, cuts, insertions) of valid .pt (stored and deflated) and safetensors files, and of
/// state-dict pickles read directly (where no CRC stops a change first).
/// </summary>
public class CheckpointFuzzTests
{
    private static IEnumerable<byte[]> Mutants(byte[] valid, int count, int seed)
    {
        var rng = new Random(seed);
        for (int i = 0; i < count; i++)
        {
            byte[] b = (byte[])valid.Clone();
            switch (rng.Next(4))
            {
                case 0: // a few random bytes
                    for (int k = rng.Next(1, 4); k > 0; k--) b[rng.Next(b.Length)] = (byte)rng.Next(256);
                    break;
                case 1: // an "interesting" value somewhere
                    byte[] v = rng.Next(3) switch { 0 => [0xFF, 0xFF, 0xFF, 0xFF], 1 => [0, 0, 0, 0x80], _ => [0x7F, 0xFF, 0xFF, 0xFF] };
                    v.CopyTo(b, rng.Next(b.Length - v.Length));
                    break;
                case 2: // cut short
                    b = b[..rng.Next(b.Length)];
                    break;
                default: // bytes inserted
                    int at = rng.Next(b.Length);
                    b = [.. b[..at], .. Enumerable.Range(0, rng.Next(1, 9)).Select(_ => (byte)rng.Next(256)), .. b[at..]];
                    break;
            }
            yield return b;
        }
    }

    private static void OpenAndReadAll(string path)
    {
        using var r = CheckpointReader.Open(path);
        r.ReadAll();
    }

    private static byte[] Valid(string kind)
    {
        var sd = TensorSamples.AllDTypes();
        sd.Remove("big.layer.weight");
        var ms = new MemoryStream();
        if (kind == "safetensors") SafeTensors.Write(ms, sd);
        else PtCheckpoint.Write(ms, sd);
        if (kind != "deflated") return ms.ToArray();
        return HostileCheckpoints.Deflated(ms.ToArray());
    }

    [Theory]
    [InlineData("stored", 1)]
    [InlineData("deflated", 2)]
    [InlineData("safetensors", 3)]
    public void DamagedFilesFailWithCheckpointExceptionsOnly(string kind, int seed)
    {
        string path = TestPaths.TempFile(".bin");
        int loaded = 0, refused = 0;
        foreach (byte[] mutant in Mutants(Valid(kind), 1500, seed))
        {
            File.WriteAllBytes(path, mutant);
            try
            {
                OpenAndReadAll(path);
                PtCheckpointReadIfZip(path, mutant);
                loaded++;
            }
            catch (CheckpointException e)
            {
                AssertOneLine(e);
                refused++;
            }
        }
        File.Delete(path);
        Assert.True(refused > 500, $"{refused} refused, {loaded} loaded");
    }

    private static void PtCheckpointReadIfZip(string path, byte[] bytes)
    {
        if (bytes.Length > 1 && bytes[0] == 'P' && bytes[1] == 'K') PtCheckpoint.Read(path);
    }

    [Fact]
    public void DamagedPicklesFailWithCheckpointExceptionsOnly()
    {
        var sd = TensorSamples.AllDTypes();
        var ms = new MemoryStream();
        PtCheckpoint.Write(ms, sd);
        using var zip = new ZipArchive(new MemoryStream(ms.ToArray()), ZipArchiveMode.Read);
        using var pkl = new MemoryStream();
        using (var s = zip.GetEntry("archive/data.pkl")!.Open()) s.CopyTo(pkl);
        var storages = sd.Values.ToList();
        object? Load(object? pid) => pid is object?[] { Length: 5 } id && id[2] is string key && int.TryParse(key, out int i) && i < storages.Count
            ? new PickleStorage(storages[i].DType, key, storages[i].Data)
            : throw new CheckpointException("no such storage");
        int refused = 0;
        foreach (byte[] mutant in Mutants(pkl.ToArray(), 5000, 4))
        {
            try
            {
                var root = PickleReader.Load(mutant, Load);
                PtCheckpoint.ExtractStateDict(ToRecords(root), "model");
            }
            catch (CheckpointException e)
            {
                AssertOneLine(e);
                refused++;
            }
        }
        Assert.True(refused > 2500, $"{refused} refused");
    }

    // Reads every tensor of a freshly unpickled tree (as PtCheckpoint.Read would).
    private static object? ToRecords(object? root)
    {
        if (root is PickleDict d)
            foreach (var k in d.Keys.ToList())
                d[k] = d[k] switch { StoredTensor t => t.ReadRecord(), PickleDict inner => ToRecords(inner), var v => v };
        return root;
    }
}
