using static TorchSharp.torch;
using TorchSharp;
using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace TorchSam2.Checkpoints;

/// <summary>The contents of a safetensors file: tensors in header order and the optional string metadata.</summary>
public sealed record SafeTensorsFile(
    IReadOnlyDictionary<string, TensorRecord> Tensors,
    IReadOnlyDictionary<string, string> Metadata);

/// <summary>
/// Reads and writes the safetensors format: an 8-byte little-endian header length, a JSON header
/// (<c>{"name": {"dtype", "shape", "data_offsets"}, "__metadata__": {...}}</c>), then the raw data.
/// Reading parses the header first; tensor bytes are then read one tensor at a time (see <see cref="CheckpointReader"/>).
/// </summary>
public static class SafeTensors
{
    private const long MaxHeaderSize = CheckpointLimits.MaxSafeTensorsHeaderBytes;

    public static string DTypeName(ScalarType t) => t switch
    {
        ScalarType.Float32 => "F32",
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Float64 => "F64",
        ScalarType.Int64 => "I64",
        ScalarType.Int32 => "I32",
        ScalarType.Int16 => "I16",
        ScalarType.Int8 => "I8",
        ScalarType.Byte => "U8",
        ScalarType.Bool => "BOOL",
        _ => throw new NotSupportedException($"dtype {t} has no safetensors name"),
    };

    public static bool TryParseDType(string name, out ScalarType dtype)
    {
        (bool ok, dtype) = name switch
        {
            "F32" => (true, ScalarType.Float32),
            "F16" => (true, ScalarType.Float16),
            "BF16" => (true, ScalarType.BFloat16),
            "F64" => (true, ScalarType.Float64),
            "I64" => (true, ScalarType.Int64),
            "I32" => (true, ScalarType.Int32),
            "I16" => (true, ScalarType.Int16),
            "I8" => (true, ScalarType.Int8),
            "U8" => (true, ScalarType.Byte),
            "BOOL" => (true, ScalarType.Bool),
            _ => (false, default(ScalarType)),
        };
        return ok;
    }

    public static SafeTensorsFile Read(string path)
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

    /// <summary>Reads from a seekable stream positioned at the start of the file.</summary>
    public static SafeTensorsFile Read(Stream stream)
    {
        var (tensors, metadata) = Open(stream);
        return new SafeTensorsFile(StoredTensor.ReadAll(tensors, (_, t) => t.ReadRecord()), metadata);
    }

    /// <summary>
    /// Parses the header of a seekable stream positioned at the start of the file, and validates every entry
    /// against the file's size; tensor bytes are read later, on demand, from the stream (which must stay open).
    /// </summary>
    internal static (OrderedDictionary<string, StoredTensor> Tensors, IReadOnlyDictionary<string, string> Metadata) Open(Stream stream)
    {
        if (!stream.CanSeek) throw new ArgumentException("safetensors stream must be seekable", nameof(stream));
        long start = stream.Position, fileSize = stream.Length - start;
        Span<byte> lenBytes = stackalloc byte[8];
        if (stream.ReadAtLeast(lenBytes, 8, throwOnEndOfStream: false) != 8)
            throw new CheckpointException($"truncated safetensors file: {fileSize} bytes, too short for the 8-byte header length");
        ulong headerLen = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
        if (headerLen > (ulong)(fileSize - 8))
            throw new CheckpointException($"safetensors header length {headerLen} runs past the end of the file ({fileSize} bytes): truncated or not a safetensors file");
        if (headerLen > MaxHeaderSize)
            throw new CheckpointException($"safetensors header of {headerLen:N0} bytes is larger than the {MaxHeaderSize:N0} allowed");
        var header = new byte[headerLen];
        stream.ReadExactly(header);
        long dataStart = start + 8 + (long)headerLen, dataSize = fileSize - 8 - (long)headerLen;
        var (entries, metadata) = ParseHeader(header, stream, dataStart, dataSize);
        var tensors = new OrderedDictionary<string, StoredTensor>(entries.Count);
        foreach (var e in entries) tensors.Add(e.Name, e);
        return (tensors, metadata);
    }

    // One tensor of the data section: bytes [Begin, End) after the header.
    private sealed class Entry(string name, ScalarType dtype, long[] shape, long begin, long end, Stream stream, long dataStart)
        : StoredTensor(dtype, shape)
    {
        public string Name => name;
        public long Begin => begin;
        public long End => end;
        internal override long FileOffset => begin;

        private protected override void ReadRange(long start, Span<byte> destination)
        {
            stream.Position = dataStart + begin + start;
            if (stream.ReadAtLeast(destination, destination.Length, throwOnEndOfStream: false) != destination.Length)
                throw new CheckpointException($"truncated safetensors file while reading tensor {UntrustedText.Quote(name)}");
        }
    }

    private static (List<Entry>, IReadOnlyDictionary<string, string>) ParseHeader(byte[] header, Stream stream, long dataStart, long dataSize)
    {
        // System.Text.Json checks the structure but leaves invalid UTF-8 inside names to fail when they are read.
        if (!System.Text.Unicode.Utf8.IsValid(header)) throw new CheckpointException("safetensors header is not valid UTF-8");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header.AsMemory().TrimEnd((byte)' '));
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"safetensors header is not valid JSON: {UntrustedText.OneLine(e.Message)}", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new CheckpointException("safetensors header is not a JSON object");
            var entries = new List<Entry>();
            var names = new HashSet<string>();
            var metadata = new Dictionary<string, string>();
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (!names.Add(prop.Name)) throw new CheckpointException($"safetensors header names {UntrustedText.Quote(prop.Name)} twice");
                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind != JsonValueKind.Object) throw new CheckpointException("safetensors __metadata__ is not an object");
                    foreach (var m in prop.Value.EnumerateObject())
                        if (!metadata.TryAdd(m.Name, m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText()))
                            throw new CheckpointException($"safetensors __metadata__ names {UntrustedText.Quote(m.Name)} twice");
                    continue;
                }
                entries.Add(ParseEntry(prop, stream, dataStart, dataSize));
            }
            // Non-overlapping: sorted by start, each must end before the next begins.
            var sorted = entries.Where(e => e.End > e.Begin).OrderBy(e => e.Begin).ToList();
            for (int i = 1; i < sorted.Count; i++)
                if (sorted[i].Begin < sorted[i - 1].End)
                    throw new CheckpointException(
                        $"safetensors tensors {UntrustedText.Quote(sorted[i - 1].Name)} [{sorted[i - 1].Begin}, {sorted[i - 1].End}) and " +
                        $"{UntrustedText.Quote(sorted[i].Name)} [{sorted[i].Begin}, {sorted[i].End}) overlap");
            return (entries, metadata);
        }
    }

    private static Entry ParseEntry(JsonProperty prop, Stream stream, long dataStart, long dataSize)
    {
        string name = prop.Name;
        CheckpointException Bad(string what) => new($"safetensors tensor {UntrustedText.Quote(name)}: {what}");
        static string Json(JsonElement e) => UntrustedText.Escape(e.GetRawText(), 80);
        var v = prop.Value;
        if (v.ValueKind != JsonValueKind.Object) throw Bad("header entry is not an object");
        if (!v.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String) throw Bad("missing dtype");
        string dtName = dt.GetString()!;
        if (!TryParseDType(dtName, out var dtype)) throw Bad($"unsupported dtype {UntrustedText.Quote(dtName, 40)}");
        if (!v.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array) throw Bad("missing shape");
        int rank = sh.GetArrayLength();
        if (rank > CheckpointLimits.MaxTensorRank) throw Bad($"shape has {rank:N0} dimensions, more than {CheckpointLimits.MaxTensorRank}");
        var shape = new long[rank];
        int i = 0;
        foreach (var d in sh.EnumerateArray())
            shape[i++] = d.ValueKind == JsonValueKind.Number && d.TryGetInt64(out long x) && x >= 0 ? x : throw Bad($"bad shape {Json(sh)}");
        if (!v.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw Bad("missing data_offsets [begin, end]");
        static long Offset(JsonElement e) => e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out long x) ? x : -1;
        long begin = Offset(off[0]), end = Offset(off[1]);
        if (begin < 0 || end < begin) throw Bad($"bad data_offsets {Json(off)}");
        if (end > dataSize) throw Bad($"data_offsets {Json(off)} run past the data section ({dataSize} bytes): truncated file?");
        long expected;
        try { expected = checked(TensorRecord.CountElements(shape) * dtype.ElementSize()); }
        catch (OverflowException) { throw Bad($"shape {Json(sh)} is too large"); }
        if (expected != end - begin)
            throw Bad($"shape {Json(sh)} x {dtName} needs {expected} bytes but data_offsets span {end - begin}");
        return new Entry(name, dtype, shape, begin, end, stream, dataStart);
    }

    /// <summary>Writes tensors in the given order, with optional string metadata.</summary>
    public static void Write(string path, IReadOnlyDictionary<string, TensorRecord> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
        Write(fs, tensors, metadata);
    }

    public static void Write(Stream stream, IReadOnlyDictionary<string, TensorRecord> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("writing safetensors needs a little-endian host");
        var json = new MemoryStream();
        using (var w = new Utf8JsonWriter(json))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, val) in metadata) w.WriteString(k, val);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, t) in tensors)
            {
                if (name == "__metadata__") throw new ArgumentException("'__metadata__' cannot name a tensor");
                w.WriteStartObject(name);
                w.WriteString("dtype", DTypeName(t.DType));
                w.WriteStartArray("shape");
                foreach (long d in t.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset += t.Data.LongLength);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        // Pad with spaces so the data section starts 8-byte aligned.
        while (json.Length % 8 != 0) json.WriteByte((byte)' ');
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)json.Length);
        stream.Write(len);
        json.Position = 0;
        json.CopyTo(stream);
        foreach (var (_, t) in tensors) stream.Write(t.Data);
        stream.Flush();
    }
}
