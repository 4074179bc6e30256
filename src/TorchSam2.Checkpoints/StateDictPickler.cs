using static TorchSharp.torch;
using TorchSharp;
using System.Buffers.Binary;
using System.Text;

namespace TorchSam2.Checkpoints;

/// <summary>
/// Emits the protocol-2 pickle torch.save writes for a state dict:
/// <c>{wrapKey: OrderedDict(name: _rebuild_tensor_v2(persistent storage, 0, size, stride, False, OrderedDict()))}</c>,
/// with persistent ids <c>('storage', torch.XStorage, key, 'cpu', numel)</c>.
/// </summary>
internal sealed class StateDictPickler
{
    private readonly MemoryStream _buf = new();
    private readonly Dictionary<string, int> _globalMemo = [];
    private int _memoCount;

    public static string StorageTypeName(ScalarType t) => t switch
    {
        ScalarType.Float32 => "FloatStorage",
        ScalarType.Float16 => "HalfStorage",
        ScalarType.BFloat16 => "BFloat16Storage",
        ScalarType.Float64 => "DoubleStorage",
        ScalarType.Int64 => "LongStorage",
        ScalarType.Int32 => "IntStorage",
        ScalarType.Int16 => "ShortStorage",
        ScalarType.Int8 => "CharStorage",
        ScalarType.Byte => "ByteStorage",
        ScalarType.Bool => "BoolStorage",
        _ => throw new NotSupportedException($"dtype {t} has no torch storage type"),
    };

    /// <summary>The pickle; storage keys are the tensors' positions "0", "1", ... in order.</summary>
    public byte[] Pickle(IReadOnlyList<KeyValuePair<string, TensorRecord>> tensors, string? wrapKey)
    {
        Op(0x80); Op(2); // PROTO 2
        if (wrapKey is not null)
        {
            Op(0x7d); Memo(); // EMPTY_DICT
            Str(wrapKey);
        }
        NewOrderedDict();
        for (int start = 0; start < tensors.Count; start += 1000) // SETITEMS in batches, like pickle
        {
            Op(0x28); // MARK
            for (int i = start; i < Math.Min(start + 1000, tensors.Count); i++)
            {
                Str(tensors[i].Key);
                Tensor(tensors[i].Value, i.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
            Op(0x75); // SETITEMS
        }
        if (wrapKey is not null) Op(0x73); // SETITEM
        Op(0x2e); // STOP
        return _buf.ToArray();
    }

    private void Tensor(TensorRecord t, string key)
    {
        Global("torch._utils", "_rebuild_tensor_v2");
        Op(0x28); // MARK: args tuple
        Op(0x28); // MARK: persistent id tuple
        Str("storage");
        Global("torch", StorageTypeName(t.DType));
        Str(key);
        Str("cpu");
        Int(t.NumElements);
        Op(0x74); // TUPLE
        Op(0x51); // BINPERSID
        Int(0); // storage_offset
        Tuple(t.Shape);
        Tuple(ContiguousStrides(t.Shape));
        Op(0x89); // NEWFALSE: requires_grad
        NewOrderedDict(); // backward_hooks
        Op(0x74); // TUPLE
        Op(0x52); // REDUCE
    }

    private static long[] ContiguousStrides(long[] shape)
    {
        var s = new long[shape.Length];
        long acc = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            s[i] = acc;
            acc *= Math.Max(shape[i], 1);
        }
        return s;
    }

    private void NewOrderedDict()
    {
        Global("collections", "OrderedDict");
        Op(0x29); // EMPTY_TUPLE
        Op(0x52); // REDUCE
        Memo();
    }

    private void Tuple(long[] items)
    {
        if (items.Length == 0) { Op(0x29); return; }
        if (items.Length > 3) Op(0x28);
        foreach (long v in items) Int(v);
        Op(items.Length switch { 1 => 0x85, 2 => 0x86, 3 => 0x87, _ => 0x74 });
    }

    private void Global(string module, string name)
    {
        string full = module + "\n" + name + "\n";
        if (_globalMemo.TryGetValue(full, out int idx))
        {
            Get(idx);
            return;
        }
        Op(0x63); // GLOBAL
        _buf.Write(Encoding.ASCII.GetBytes(full));
        _globalMemo[full] = Memo();
    }

    private void Str(string s)
    {
        byte[] b = Encoding.UTF8.GetBytes(s);
        Op(0x58); // BINUNICODE
        U32((uint)b.Length);
        _buf.Write(b);
    }

    private void Int(long v)
    {
        if (v is >= 0 and <= 0xFF) { Op(0x4b); Op((byte)v); }
        else if (v is >= 0 and <= 0xFFFF) { Op(0x4d); Span<byte> b = stackalloc byte[2]; BinaryPrimitives.WriteUInt16LittleEndian(b, (ushort)v); _buf.Write(b); }
        else if (v is >= int.MinValue and <= int.MaxValue) { Op(0x4a); U32((uint)(int)v); }
        else
        {
            Op(0x8a); Op(8); // LONG1, 8 bytes
            Span<byte> b = stackalloc byte[8];
            BinaryPrimitives.WriteInt64LittleEndian(b, v);
            _buf.Write(b);
        }
    }

    private int Memo()
    {
        int idx = _memoCount++;
        if (idx < 256) { Op(0x71); Op((byte)idx); } // BINPUT
        else { Op(0x72); U32((uint)idx); } // LONG_BINPUT
        return idx;
    }

    private void Get(int idx)
    {
        if (idx < 256) { Op(0x68); Op((byte)idx); } // BINGET
        else { Op(0x6a); U32((uint)idx); } // LONG_BINGET
    }

    private void U32(uint v)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        _buf.Write(b);
    }

    private void Op(byte b) => _buf.WriteByte(b);
}
