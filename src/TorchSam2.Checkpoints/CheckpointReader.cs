using static TorchSharp.torch;
using TorchSharp;

namespace TorchSam2.Checkpoints;

/// <summary>
/// An open checkpoint (.pt zip or .safetensors, chosen by content): the state dict's names, dtypes and shapes
/// come from the header or pickle; tensor bytes are read on demand, straight into native tensors, one at a
/// time. This is how models load (<c>Module.load_state_dict(reader)</c>): the checkpoint is never held in
/// managed memory, so the peak is the model plus one tensor.
/// </summary>
public sealed class CheckpointReader : IDisposable
{
    private readonly FileStream _file;
    private readonly ZipReader? _zip;
    private readonly OrderedDictionary<string, StoredTensor> _tensors;

    private CheckpointReader(string path, CheckpointFormat format, FileStream file, ZipReader? zip,
                             OrderedDictionary<string, StoredTensor> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        Path = path;
        Format = format;
        _file = file;
        _zip = zip;
        _tensors = tensors;
        Metadata = metadata;
    }

    public string Path { get; }

    public CheckpointFormat Format { get; }

    /// <summary>The state dict in file order (for .pt: the "model" entry, or the top-level map).</summary>
    public IReadOnlyDictionary<string, StoredTensor> Tensors => _tensors;

    /// <summary>A safetensors file's string metadata (empty for .pt).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Opens a checkpoint and reads its header or pickle (not its tensor data).</summary>
    /// <param name="key">For .pt files, the entry holding the state dict (official SAM 2 checkpoints: "model").</param>
    public static CheckpointReader Open(string path, string? key = "model")
    {
        var fs = CheckpointFile.OpenRead(path);
        try
        {
            // one open: the first bytes tell the format (and the error when there is none)
            Span<byte> head = stackalloc byte[CheckpointFile.HeadLength];
            head = head[..fs.ReadAtLeast(head, head.Length, throwOnEndOfStream: false)];
            fs.Position = 0;
            var format = CheckpointFile.DetectFormat(head, fs.Length);
            switch (format)
            {
                case CheckpointFormat.PyTorchZip:
                case CheckpointFormat.LegacyPickle: // PtCheckpoint explains that it is unsupported
                {
                    var (zip, root) = PtCheckpoint.Open(fs);
                    try
                    {
                        return new CheckpointReader(path, format, fs, zip, PtCheckpoint.ExtractStoredStateDict(root, key), new Dictionary<string, string>());
                    }
                    catch
                    {
                        zip.Dispose();
                        throw;
                    }
                }
                case CheckpointFormat.SafeTensors:
                {
                    var (tensors, metadata) = SafeTensors.Open(fs);
                    return new CheckpointReader(path, format, fs, null, tensors, metadata);
                }
                default:
                    throw new CheckpointException($"not a PyTorch zip checkpoint or safetensors file: first bytes are {CheckpointFile.Hex(head)}");
            }
        }
        catch (CheckpointException e)
        {
            fs.Dispose();
            throw new CheckpointException($"{UntrustedText.Escape(path, int.MaxValue)}: {e.Message}", e);
        }
        catch
        {
            fs.Dispose();
            throw;
        }
    }

    /// <summary>A new CPU tensor holding <paramref name="name"/>, read straight into native memory.</summary>
    public Tensor ReadTensor(string name) => Reading(name, t => t.ReadTensor());

    /// <summary>Reads <paramref name="name"/> into a contiguous CPU tensor of its dtype and shape (no copy).</summary>
    public void ReadInto(string name, Tensor destination) => Reading<object?>(name, t =>
    {
        t.ReadInto(destination);
        return null;
    });

    /// <summary>Every tensor as a managed record (for tools that rewrite checkpoints; models use <see cref="ReadInto"/>).</summary>
    public IReadOnlyDictionary<string, TensorRecord> ReadAll() =>
        StoredTensor.ReadAll(_tensors, (name, _) => Reading(name, t => t.ReadRecord()));

    private T Reading<T>(string name, Func<StoredTensor, T> read)
    {
        if (!_tensors.TryGetValue(name, out var t))
            throw new KeyNotFoundException($"{UntrustedText.Escape(Path, int.MaxValue)}: no tensor {UntrustedText.Quote(name)}");
        try
        {
            return read(t);
        }
        catch (CheckpointException e)
        {
            throw new CheckpointException($"{UntrustedText.Escape(Path, int.MaxValue)}: tensor {UntrustedText.Quote(name)}: {e.Message}", e);
        }
        catch (IOException e)
        {
            throw new CheckpointException($"{UntrustedText.Escape(Path, int.MaxValue)}: tensor {UntrustedText.Quote(name)}: {UntrustedText.OneLine(e.Message)}", e);
        }
    }

    public void Dispose()
    {
        _zip?.Dispose();
        _file.Dispose();
    }
}
