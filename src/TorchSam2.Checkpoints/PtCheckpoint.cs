using static TorchSharp.torch;
using TorchSharp;
using System.IO.Compression;
using System.Text;

namespace TorchSam2.Checkpoints;

/// <summary>
/// Reads and writes PyTorch's zip checkpoint format (torch.save since 1.6):
/// <c>&lt;archive&gt;/data.pkl</c> (the pickled object), <c>&lt;archive&gt;/data/&lt;key&gt;</c> (raw storages),
/// <c>&lt;archive&gt;/byteorder</c> and <c>&lt;archive&gt;/version</c>. Reading never executes pickle code.
/// </summary>
public static class PtCheckpoint
{
    private const string LegacyMessage =
        "legacy (pre-1.6) torch.save format is not supported; re-save with torch.save(..., _use_new_zipfile_serialization=True)";

    /// <summary>Reads the whole object tree of a checkpoint file (tensors become <see cref="TensorRecord"/>s).</summary>
    public static object? Read(string path)
    {
        using var fs = CheckpointFile.OpenRead(path);
        try
        {
            return Read(fs);
        }
        catch (CheckpointException e)
        {
            throw new CheckpointException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>Reads the object tree from a seekable stream positioned at the start of the zip.</summary>
    public static object? Read(Stream stream)
    {
        var (zip, root) = Open(stream);
        using (zip) return Materialize(root);
    }

    /// <summary>
    /// Opens the zip and reads its pickle; tensors in the returned tree are <see cref="StoredTensor"/>s whose bytes
    /// stay in the archive, which (with the stream) must stay open while they are read.
    /// </summary>
    internal static (ZipArchive Zip, object? Root) Open(Stream stream)
    {
        CheckMagic(stream);
        ZipArchive zip;
        try
        {
            zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (InvalidDataException e)
        {
            throw new CheckpointException($"truncated or corrupt zip archive ({e.Message})", e);
        }
        try
        {
            return (zip, ReadArchive(zip, stream.CanSeek ? stream.Length : long.MaxValue));
        }
        catch (Exception e)
        {
            zip.Dispose();
            if (e is InvalidDataException) throw new CheckpointException($"truncated or corrupt zip archive ({e.Message})", e);
            if (e is EndOfStreamException) throw new CheckpointException($"truncated zip archive ({e.Message})", e);
            throw;
        }
    }

    /// <summary>Loads a state dict: the <paramref name="key"/> entry (default "model") or the top-level name → tensor map.</summary>
    public static IReadOnlyDictionary<string, TensorRecord> LoadStateDict(string path, string? key = "model")
    {
        object? root = Read(path);
        try
        {
            return ExtractStateDict(root, key);
        }
        catch (CheckpointException e)
        {
            throw new CheckpointException($"{path}: {e.Message}", e);
        }
    }

    /// <inheritdoc cref="LoadStateDict(string, string?)"/>
    public static IReadOnlyDictionary<string, TensorRecord> LoadStateDict(Stream stream, string? key = "model") =>
        ExtractStateDict(Read(stream), key);

    /// <summary>
    /// Picks the state dict out of a checkpoint object: <c>root[key]</c> when root is a dict holding
    /// <paramref name="key"/>, else root itself if it maps names to tensors. File order is kept.
    /// </summary>
    public static IReadOnlyDictionary<string, TensorRecord> ExtractStateDict(object? root, string? key = "model") =>
        Extract<TensorRecord>(root, key);

    // The same for a tree read by Open: the tensors are still in the archive.
    internal static OrderedDictionary<string, StoredTensor> ExtractStoredStateDict(object? root, string? key) =>
        Extract<StoredTensor>(root, key);

    private static OrderedDictionary<string, T> Extract<T>(object? root, string? key) where T : class
    {
        if (root is not PickleDict top)
            throw new CheckpointException($"checkpoint top level is {PickleReader.Describe(root)}, not a dict");
        PickleDict sd = top;
        if (key is not null && top.TryGetValue(key, out object? inner))
            sd = inner as PickleDict ?? throw new CheckpointException($"checkpoint entry '{key}' is {PickleReader.Describe(inner)}, not a dict");
        var result = new OrderedDictionary<string, T>(sd.Count);
        foreach (var (k, v) in sd)
        {
            if (k is string name && v is T t) { result.Add(name, t); continue; }
            string keys = string.Join(", ", top.Keys.Take(8).Select(x => $"'{x}'"));
            throw new CheckpointException(ReferenceEquals(sd, top) && key is not null
                ? $"checkpoint has no '{key}' entry and its top level is not a name → tensor map (top-level keys: {keys})"
                : $"state dict entry '{k}' is {PickleReader.Describe(v)}, not a tensor");
        }
        return result;
    }

    // Replaces every StoredTensor in the tree by its TensorRecord, in place. Iterative with a visited set:
    // a hostile pickle can nest deeply or share containers through its memo.
    private static object? Materialize(object? root)
    {
        static object? Convert(object? o, Stack<object> todo, HashSet<object> seen)
        {
            if (o is StoredTensor t) return t.ReadRecord();
            if (o is PickleDict or List<object?> or object?[] && seen.Add(o)) todo.Push(o);
            return o;
        }
        var todo = new Stack<object>();
        var seen = new HashSet<object>(ReferenceEqualityComparer.Instance);
        root = Convert(root, todo, seen);
        while (todo.Count > 0)
        {
            switch (todo.Pop())
            {
                case PickleDict d:
                    foreach (var k in d.Keys.ToList()) d[k] = Convert(d[k], todo, seen);
                    d.State = Convert(d.State, todo, seen);
                    break;
                case List<object?> l:
                    for (int i = 0; i < l.Count; i++) l[i] = Convert(l[i], todo, seen);
                    break;
                case object?[] a:
                    for (int i = 0; i < a.Length; i++) a[i] = Convert(a[i], todo, seen);
                    break;
            }
        }
        return root;
    }

    /// <summary>
    /// Writes <paramref name="stateDict"/> as torch.save would (protocol-2 pickle, one storage per tensor,
    /// little-endian, 64-byte aligned entries), wrapped as <c>{wrapKey: state_dict}</c> unless wrapKey is null.
    /// </summary>
    public static void Write(string path, IReadOnlyDictionary<string, TensorRecord> stateDict, string? wrapKey = "model", string archiveName = "archive")
    {
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
        Write(fs, stateDict, wrapKey, archiveName);
    }

    /// <inheritdoc cref="Write(string, IReadOnlyDictionary{string, TensorRecord}, string?, string)"/>
    public static void Write(Stream stream, IReadOnlyDictionary<string, TensorRecord> stateDict, string? wrapKey = "model", string archiveName = "archive")
    {
        ArgumentNullException.ThrowIfNull(stateDict);
        if (string.IsNullOrEmpty(archiveName) || archiveName.Contains('/') || archiveName.Contains('\\'))
            throw new ArgumentException("archive name must be a single non-empty folder name", nameof(archiveName));
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("writing checkpoints needs a little-endian host");
        var items = stateDict.ToList();
        var zip = new StoredZipWriter(stream);
        zip.Add($"{archiveName}/data.pkl", new StateDictPickler().Pickle(items, wrapKey));
        zip.Add($"{archiveName}/byteorder", "little"u8);
        for (int i = 0; i < items.Count; i++) zip.Add($"{archiveName}/data/{i}", items[i].Value.Data);
        zip.Add($"{archiveName}/version", "3\n"u8);
        zip.Finish();
    }

    private static void CheckMagic(Stream stream)
    {
        if (!stream.CanSeek) throw new ArgumentException("checkpoint stream must be seekable", nameof(stream));
        long start = stream.Position;
        Span<byte> head = stackalloc byte[4];
        int n = stream.ReadAtLeast(head, 4, throwOnEndOfStream: false);
        stream.Position = start;
        if (n >= 4 && head[0] == (byte)'P' && head[1] == (byte)'K') return;
        if (n >= 1 && head[0] == 0x80) throw new CheckpointException(LegacyMessage);
        throw new CheckpointException(
            $"not a PyTorch zip checkpoint: first bytes are {CheckpointFile.Hex(head[..n])} (expected \"PK\")");
    }

    private static object? ReadArchive(ZipArchive zip, long streamLength)
    {
        var pkl = zip.Entries.Where(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) &&
                                         e.FullName.IndexOf('/') == e.FullName.Length - "/data.pkl".Length).ToList();
        if (pkl.Count == 0)
        {
            if (zip.Entries.Any(e => e.FullName.EndsWith("constants.pkl", StringComparison.Ordinal)))
                throw new CheckpointException("this is a TorchScript archive (torch.jit.save), not a torch.save checkpoint");
            throw new CheckpointException("zip archive has no <archive>/data.pkl: not a torch.save checkpoint");
        }
        if (pkl.Count > 1) throw new CheckpointException("zip archive holds more than one <archive>/data.pkl");
        string prefix = pkl[0].FullName[..^"data.pkl".Length];

        bool bigEndian = false;
        if (zip.GetEntry(prefix + "byteorder") is { } bo)
        {
            string order = Encoding.ASCII.GetString(ReadEntry(bo, streamLength, 64)).Trim();
            bigEndian = order switch
            {
                "little" => false,
                "big" => true,
                _ => throw new CheckpointException($"unknown byteorder '{order}' in checkpoint"),
            };
        }

        var storages = new Dictionary<string, PickleStorage>();
        object? LoadStorage(object? pid)
        {
            if (pid is not object?[] { Length: 5 } id || id[0] is not "storage" || id[1] is not PickleGlobal type ||
                id[2] is not string key || id[4] is not long numel)
                throw new CheckpointException("persistent id is not ('storage', type, key, location, numel)");
            if (!PickleGlobals.StorageTypes.TryGetValue(type.FullName, out ScalarType dtype))
                throw new CheckpointException($"'{type.FullName}' is not a storage type");
            if (storages.TryGetValue(key, out var cached)) return cached;
            var entry = zip.GetEntry(prefix + "data/" + key)
                        ?? throw new CheckpointException($"storage '{key}' is missing from the archive (expected {prefix}data/{key})");
            int es = dtype.ElementSize();
            long need = numel < 0 ? -1 : numel * es;
            if (need < 0 || entry.Length < need)
                throw new CheckpointException($"storage '{key}' holds {entry.Length} bytes but {numel} x {dtype.TorchName()} needs {need}");
            RequireStoredEntryFits(entry, streamLength);
            // The bytes stay in the archive until a tensor on this storage is read.
            return storages[key] = new PickleStorage(dtype, key, numel, entry, bigEndian);
        }

        byte[] pickle = ReadEntry(pkl[0], streamLength, Array.MaxLength);
        return new PickleReader(pickle, LoadStorage).Load();
    }

    // Reads a whole entry. Lengths come from the (untrusted) central directory, so a stored entry
    // must fit in the file and a compressed one is read in chunks rather than preallocated.
    private static byte[] ReadEntry(ZipArchiveEntry entry, long streamLength, long maxLength)
    {
        if (entry.Length > maxLength)
            throw new CheckpointException($"zip entry {entry.FullName} is too large ({entry.Length} bytes)");
        RequireStoredEntryFits(entry, streamLength);
        using var s = entry.Open();
        if (entry.CompressedLength == entry.Length)
        {
            var data = new byte[entry.Length];
            int got = s.ReadAtLeast(data, data.Length, throwOnEndOfStream: false);
            if (got != data.Length)
                throw new CheckpointException($"truncated zip archive: entry {entry.FullName} has {got} of {data.Length} bytes");
            return data;
        }
        using var ms = new MemoryStream();
        s.CopyTo(ms);
        if (ms.Length != entry.Length)
            throw new CheckpointException($"truncated zip archive: entry {entry.FullName} has {ms.Length} of {entry.Length} bytes");
        return ms.ToArray();
    }

    // Lengths come from the (untrusted) central directory: a stored (uncompressed) entry must fit in the file.
    private static void RequireStoredEntryFits(ZipArchiveEntry entry, long streamLength)
    {
        if (entry.CompressedLength == entry.Length && entry.Length > streamLength)
            throw new CheckpointException($"truncated zip archive: entry {entry.FullName} claims {entry.Length} bytes, more than the file holds");
    }
}
