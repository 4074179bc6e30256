using System.Buffers.Binary;

namespace TorchSam2.Checkpoints;

/// <summary>Detects a checkpoint's format by content, and loads its state dict as managed records.</summary>
public static class CheckpointFile
{
    /// <summary>Which format a file holds, judged by its first bytes (not its extension).</summary>
    public static CheckpointFormat DetectFormat(string path)
    {
        using var fs = OpenRead(path);
        Span<byte> head = stackalloc byte[HeadLength];
        return DetectFormat(head[..fs.ReadAtLeast(head, head.Length, throwOnEndOfStream: false)], fs.Length);
    }

    internal const int HeadLength = 16;

    /// <summary>The format told by a file's first bytes (up to <see cref="HeadLength"/>) and its length.</summary>
    internal static CheckpointFormat DetectFormat(ReadOnlySpan<byte> head, long fileLength)
    {
        int n = head.Length;
        // safetensors first: a u64 header length, then a JSON object starting with '{'. Its length's low bytes are
        // arbitrary, so they may read as "PK" or 0x80; a length that fits the file decides it. (A zip's byte 8 is
        // its compression method, 0 or 8; legacy torch.save's is 0xf9, inside its magic number.)
        bool brace = n >= 9 && head[8] == (byte)'{';
        if (brace && BinaryPrimitives.ReadUInt64LittleEndian(head) is var len && len >= 2 && len <= (ulong)Math.Max(0, fileLength - 8))
            return CheckpointFormat.SafeTensors;
        if (n >= 2 && head[0] == (byte)'P' && head[1] == (byte)'K') return CheckpointFormat.PyTorchZip;
        if (n >= 1 && head[0] == 0x80) return CheckpointFormat.LegacyPickle;
        // A '{' after an implausible length: a truncated safetensors file, which its reader explains.
        if (brace) return CheckpointFormat.SafeTensors;
        return CheckpointFormat.Unknown;
    }

    /// <summary>
    /// The state dict (name → tensor, in file order) of a .pt/.pth or .safetensors file, as managed records.
    /// For loading a model use <see cref="CheckpointReader"/>, which reads each tensor straight into native memory.
    /// </summary>
    /// <param name="key">For .pt files, the entry holding the state dict (official SAM 2 checkpoints: "model").</param>
    public static IReadOnlyDictionary<string, TensorRecord> LoadStateDict(string path, string? key = "model")
    {
        using var reader = CheckpointReader.Open(path, key);
        return reader.ReadAll();
    }

    internal static FileStream OpenRead(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"checkpoint file not found: {path}", path);
        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
    }

    internal static string Hex(ReadOnlySpan<byte> bytes) =>
        bytes.Length == 0 ? "(empty file)" : string.Join(" ", bytes.ToArray().Select(b => b.ToString("X2")));
}

/// <summary>Checkpoint container formats recognised by <see cref="CheckpointFile"/>.</summary>
public enum CheckpointFormat
{
    Unknown,
    PyTorchZip,
    LegacyPickle,
    SafeTensors,
}
