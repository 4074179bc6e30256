using static TorchSharp.torch;
using TorchSharp;
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
            throw new CheckpointException($"{UntrustedText.Escape(path, int.MaxValue)}: {e.Message}", e);
        }
    }

    /// <summary>Reads the object tree from a seekable stream positioned at the start of the zip.</summary>
    public static object? Read(Stream stream)
    {
        var (zip, root) = Open(stream);
        using (zip)
        {
            CheckTree(root);
            return Materialize(root);
        }
    }

    /// <summary>
    /// Opens the zip and reads its pickle; tensors in the returned tree are <see cref="StoredTensor"/>s whose bytes
    /// stay in the archive, which (with the stream) must stay open while they are read.
    /// </summary>
    internal static (ZipReader Zip, object? Root) Open(Stream stream)
    {
        CheckMagic(stream);
        var zip = ZipReader.Open(stream);
        try
        {
            return (zip, ReadArchive(zip));
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            zip.Dispose();
            throw new CheckpointException($"truncated or corrupt zip archive ({UntrustedText.OneLine(e.Message)})", e);
        }
        catch
        {
            zip.Dispose();
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
            sd = inner as PickleDict ?? throw new CheckpointException(
                $"checkpoint entry {UntrustedText.Quote(key)} is {PickleReader.Describe(inner)}, not a dict");
        var result = new OrderedDictionary<string, T>(sd.Count);
        foreach (var (k, v) in sd)
        {
            if (k is string name && v is T t) { result.Add(name, t); continue; }
            string keys = string.Join(", ", top.Keys.Take(8).Select(ShowKey)) + (top.Count > 8 ? $", ... ({top.Count} keys)" : "");
            throw new CheckpointException(ReferenceEquals(sd, top) && key is not null
                ? $"checkpoint has no {UntrustedText.Quote(key)} entry and its top level is not a name → tensor map (top-level keys: {keys})"
                : $"state dict entry {ShowKey(k)} is {PickleReader.Describe(v)}, not a tensor");
        }
        return result;
    }

    private static string ShowKey(object? k) => k is string s ? UntrustedText.Quote(s) : PickleReader.Describe(k);

    // The object tree a caller gets must be safe to walk recursively: no cycles (a memo can make a list hold
    // itself) and at most MaxNestingDepth containers deep. Iterative; each container is visited once.
    internal static void CheckTree(object? root)
    {
        if (!IsContainer(root)) return;
        // Depth-first, post-order: a container's height is known once its children are done, so a container
        // reached again (shared through the memo) is not walked twice, and the depth found is exact.
        var height = new Dictionary<object, int>(ReferenceEqualityComparer.Instance);
        var onPath = new HashSet<object>(ReferenceEqualityComparer.Instance);
        var path = new Stack<Frame>();
        onPath.Add(root!);
        path.Push(new Frame(root!));
        while (path.Count > 0)
        {
            var f = path.Peek();
            if (f.Next.MoveNext())
            {
                object? c = f.Next.Current;
                if (!IsContainer(c)) continue;
                if (onPath.Contains(c!)) throw new CheckpointException("the pickle's object tree contains a cycle (a container holds itself)");
                int known = height.GetValueOrDefault(c!);
                if (path.Count + Math.Max(known, 1) > CheckpointLimits.MaxNestingDepth)
                    throw new CheckpointException($"the pickle nests containers more than {CheckpointLimits.MaxNestingDepth:N0} deep");
                if (known > 0) f.Height = Math.Max(f.Height, known + 1);
                else
                {
                    onPath.Add(c!);
                    path.Push(new Frame(c!));
                }
                continue;
            }
            path.Pop();
            onPath.Remove(f.Node);
            height[f.Node] = f.Height;
            if (path.Count > 0) path.Peek().Height = Math.Max(path.Peek().Height, f.Height + 1);
        }
    }

    private static bool IsContainer(object? o) => o is PickleDict or List<object?> or object?[];

    private sealed class Frame(object node)
    {
        public object Node { get; } = node;
        public IEnumerator<object?> Next { get; } = node switch
        {
            PickleDict d => d.Keys.Concat(d.Values).Append(d.State).GetEnumerator(),
            List<object?> l => l.GetEnumerator(),
            object?[] a => ((IEnumerable<object?>)a).GetEnumerator(),
            _ => Enumerable.Empty<object?>().GetEnumerator(),
        };
        public int Height { get; set; } = 1;
    }

    // Replaces every StoredTensor in the tree by its TensorRecord, in place; a tensor the tree holds in several
    // places (through the memo) is read once and its record shared. Iterative with a visited set.
    private static object? Materialize(object? root)
    {
        var records = new Dictionary<StoredTensor, TensorRecord>(ReferenceEqualityComparer.Instance);
        object? Convert(object? o, Stack<object> todo, HashSet<object> seen)
        {
            if (o is StoredTensor t)
            {
                if (!records.TryGetValue(t, out var r)) records[t] = r = t.ReadRecord();
                return r;
            }
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

    private static object? ReadArchive(ZipReader zip)
    {
        var pkl = zip.Entries.Where(e => e.Name.EndsWith("/data.pkl", StringComparison.Ordinal) &&
                                         e.Name.IndexOf('/') == e.Name.Length - "/data.pkl".Length).ToList();
        if (pkl.Count == 0)
        {
            if (zip.Entries.Any(e => e.Name.EndsWith("constants.pkl", StringComparison.Ordinal)))
                throw new CheckpointException("this is a TorchScript archive (torch.jit.save), not a torch.save checkpoint");
            throw new CheckpointException("zip archive has no <archive>/data.pkl: not a torch.save checkpoint");
        }
        if (pkl.Count > 1) throw new CheckpointException("zip archive holds more than one <archive>/data.pkl");
        string prefix = pkl[0].Name[..^"data.pkl".Length];

        bool bigEndian = false;
        if (zip.GetEntry(prefix + "byteorder") is { } bo)
        {
            string order = Encoding.ASCII.GetString(zip.ReadAll(bo, 64, "it names a byte order")).Trim();
            bigEndian = order switch
            {
                "little" => false,
                "big" => true,
                _ => throw new CheckpointException($"unknown byteorder {UntrustedText.Quote(order)} in checkpoint"),
            };
        }

        var storages = new Dictionary<string, PickleStorage>();
        object? LoadStorage(object? pid)
        {
            if (pid is not object?[] { Length: 5 } id || id[0] is not "storage" || id[1] is not PickleGlobal type ||
                id[2] is not string key || id[4] is not long numel)
                throw new CheckpointException("persistent id is not ('storage', type, key, location, numel)");
            if (!PickleGlobals.StorageTypes.TryGetValue(type.FullName, out ScalarType dtype))
                throw new CheckpointException($"{UntrustedText.Quote(type.FullName)} is not a storage type");
            if (storages.TryGetValue(key, out var cached)) return cached;
            var entry = zip.GetEntry(prefix + "data/" + key)
                        ?? throw new CheckpointException(
                            $"storage {UntrustedText.Quote(key)} is missing from the archive (expected {UntrustedText.Quote(prefix + "data/" + key)})");
            int es = dtype.ElementSize();
            if (numel < 0 || numel > entry.Size / es)
                throw new CheckpointException(
                    $"storage {UntrustedText.Quote(key)} holds {entry.Size:N0} bytes but {numel:N0} x {dtype.TorchName()} needs {(numel < 0 ? "a negative count" : $"{(System.Numerics.BigInteger)numel * es:N0}")}");
            zip.DataOffset(entry); // the entry's header, method and extent are checked now, not at the first read
            // The bytes stay in the archive until a tensor on this storage is read.
            return storages[key] = new PickleStorage(dtype, key, numel, new StorageBytes(zip, entry, numel * es), bigEndian);
        }

        byte[] pickle = zip.ReadAll(pkl[0], CheckpointLimits.MaxPickleBytes, "a state dict's pickle is well under 1 MB");
        return new PickleReader(pickle, LoadStorage).Load();
    }
}
