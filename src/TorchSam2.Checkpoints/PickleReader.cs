using static TorchSharp.torch;
using TorchSharp;
using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace TorchSam2.Checkpoints;

/// <summary>
/// A safe unpickler for what <c>torch.save</c> writes (protocols 2-5, the opcodes used for
/// dicts, lists, tuples, scalars, strings and tensors). It executes nothing: globals are checked
/// against an allow-list and only a fixed set of constructors is emulated. Values map to
/// null, bool, long, <see cref="BigInteger"/>, double, string, byte[], <c>object?[]</c> (tuple),
/// <c>List&lt;object?&gt;</c>, <see cref="PickleDict"/> and <see cref="StoredTensor"/> (tensors, read on demand).
/// Parsing is iterative (no recursion), every length is checked against the remaining input before anything is
/// allocated, and the values a pickle may push are bounded (<see cref="CheckpointLimits.MaxPickleValues"/>), so
/// neither the stack nor memory depends on what the file asks for.
/// </summary>
public sealed class PickleReader
{
    private static readonly object MarkObject = new();

    private readonly ReadOnlyMemory<byte> _data;
    private readonly Func<object?, object?>? _persistentLoad;
    private readonly List<object?> _stack = [];
    private readonly Stack<int> _marks = new();
    private readonly Dictionary<long, object?> _memo = [];
    private int _pos;
    private int _opPos;
    private int _values; // pushes and memo entries so far, against CheckpointLimits.MaxPickleValues

    /// <param name="data">The whole pickle.</param>
    /// <param name="persistentLoad">Resolves BINPERSID ids (for torch: storages); null rejects them.</param>
    public PickleReader(ReadOnlyMemory<byte> data, Func<object?, object?>? persistentLoad = null)
    {
        _data = data;
        _persistentLoad = persistentLoad;
    }

    /// <summary>Unpickles <paramref name="data"/> into an object tree.</summary>
    public static object? Load(ReadOnlyMemory<byte> data, Func<object?, object?>? persistentLoad = null) =>
        new PickleReader(data, persistentLoad).Load();

    /// <summary>Runs the pickle program up to STOP and returns its result.</summary>
    public object? Load()
    {
        ReadOnlySpan<byte> d = _data.Span;
        while (true)
        {
            _opPos = _pos;
            byte op = ReadByte(d);
            switch (op)
            {
                case 0x80: // PROTO
                {
                    byte version = ReadByte(d);
                    if (version > 5) throw new CheckpointException($"pickle protocol {version} is not supported (at most 5)");
                    break;
                }
                case 0x95: Take(d, 8); break; // FRAME: a length hint only
                case 0x2e: // STOP
                    if (_stack.Count != 1) throw Malformed($"STOP with {_stack.Count} items on the stack");
                    return Pop();
                case 0x28: Count(); _marks.Push(_stack.Count); _stack.Add(MarkObject); break; // MARK
                case 0x31: PopMark(); break; // POP_MARK
                case 0x30: Pop(); break; // POP
                case 0x32: Push(Peek()); break; // DUP

                case 0x4e: Push(null); break; // NONE
                case 0x88: Push(true); break; // NEWTRUE
                case 0x89: Push(false); break; // NEWFALSE
                case 0x4a: Push((long)BinaryPrimitives.ReadInt32LittleEndian(Take(d, 4))); break; // BININT
                case 0x4b: Push((long)ReadByte(d)); break; // BININT1
                case 0x4d: Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(d, 2))); break; // BININT2
                case 0x8a: Push(ReadLong(Take(d, ReadByte(d)))); break; // LONG1
                case 0x8b: Push(ReadLong(Take(d, ReadLength(d, 4)))); break; // LONG4
                case 0x47: Push(BinaryPrimitives.ReadDoubleBigEndian(Take(d, 8))); break; // BINFLOAT

                case 0x58: Push(ReadUtf8(Take(d, ReadLength(d, 4)))); break; // BINUNICODE
                case 0x8c: Push(ReadUtf8(Take(d, ReadByte(d)))); break; // SHORT_BINUNICODE
                case 0x8d: Push(ReadUtf8(Take(d, ReadLength(d, 8)))); break; // BINUNICODE8
                case 0x42: Push(Take(d, ReadLength(d, 4)).ToArray()); break; // BINBYTES
                case 0x43: Push(Take(d, ReadByte(d)).ToArray()); break; // SHORT_BINBYTES
                case 0x8e: Push(Take(d, ReadLength(d, 8)).ToArray()); break; // BINBYTES8

                case 0x7d: Push(new PickleDict()); break; // EMPTY_DICT
                case 0x5d: Push(new List<object?>()); break; // EMPTY_LIST
                case 0x29: Push(Array.Empty<object?>()); break; // EMPTY_TUPLE
                case 0x64: Push(SetItems(new PickleDict(), PopMark())); break; // DICT
                case 0x6c: Push(PopMark().ToList()); break; // LIST
                case 0x74: Push(PopMark()); break; // TUPLE
                case 0x85: Push(PopN(1)); break; // TUPLE1
                case 0x86: Push(PopN(2)); break; // TUPLE2
                case 0x87: Push(PopN(3)); break; // TUPLE3
                case 0x73: // SETITEM
                {
                    object? value = Pop(), key = Pop();
                    SetItems(PeekDict(), [key, value]);
                    break;
                }
                case 0x75: { var items = PopMark(); SetItems(PeekDict(), items); break; } // SETITEMS
                case 0x61: { object? v = Pop(); PeekList().Add(v); break; } // APPEND
                case 0x65: { var items = PopMark(); PeekList().AddRange(items); break; } // APPENDS

                case 0x71: MemoPut(ReadByte(d)); break; // BINPUT
                case 0x72: MemoPut(BinaryPrimitives.ReadUInt32LittleEndian(Take(d, 4))); break; // LONG_BINPUT
                case 0x94: MemoPut(_memo.Count); break; // MEMOIZE
                case 0x68: Push(MemoGet(ReadByte(d))); break; // BINGET
                case 0x6a: Push(MemoGet(BinaryPrimitives.ReadUInt32LittleEndian(Take(d, 4)))); break; // LONG_BINGET

                case 0x63: // GLOBAL: "module\nname\n"
                {
                    string module = ReadLine(d), name = ReadLine(d);
                    Push(ResolveGlobal(module, name));
                    break;
                }
                case 0x93: // STACK_GLOBAL
                {
                    object? name = Pop(), module = Pop();
                    if (module is not string m || name is not string n) throw Malformed("STACK_GLOBAL needs two strings");
                    Push(ResolveGlobal(m, n));
                    break;
                }
                case 0x52: // REDUCE
                {
                    object? args = Pop(), func = Pop();
                    Push(Call(func, args));
                    break;
                }
                case 0x81: // NEWOBJ: cls.__new__(cls, *args); only OrderedDict-like classes are allowed
                {
                    object? args = Pop(), cls = Pop();
                    Push(Call(cls, args));
                    break;
                }
                case 0x62: Build(Pop(), Peek()); break; // BUILD
                case 0x51: // BINPERSID
                {
                    object? pid = Pop();
                    if (_persistentLoad is null) throw Malformed("persistent id found but no persistent loader is available");
                    Push(_persistentLoad(pid));
                    break;
                }
                default:
                    throw new CheckpointException(
                        $"unsupported pickle opcode 0x{op:x2}{Printable(op)} at offset {_opPos}");
            }
        }
    }

    private static string Printable(byte op) => op is >= 0x20 and < 0x7f ? $" ('{(char)op}')" : "";

    private CheckpointException Malformed(string what) => new($"malformed pickle at offset {_opPos}: {what}");

    private CheckpointException Truncated(long needed) =>
        new($"truncated pickle: opcode at offset {_opPos} needs {needed} more bytes at offset {_pos}, but only {_data.Length - _pos} remain");

    private byte ReadByte(ReadOnlySpan<byte> d)
    {
        if (_pos >= d.Length) throw Truncated(1);
        return d[_pos++];
    }

    private ReadOnlySpan<byte> Take(ReadOnlySpan<byte> d, long count)
    {
        if (count < 0 || count > d.Length - _pos) throw Truncated(count);
        var s = d.Slice(_pos, (int)count);
        _pos += (int)count;
        return s;
    }

    // A 4- or 8-byte length, checked against the remaining input before anything is allocated.
    private long ReadLength(ReadOnlySpan<byte> d, int width)
    {
        long n = width == 4
            ? BinaryPrimitives.ReadUInt32LittleEndian(Take(d, 4))
            : (long)Math.Min(BinaryPrimitives.ReadUInt64LittleEndian(Take(d, 8)), long.MaxValue);
        if (n > d.Length - _pos) throw Truncated(n);
        return n;
    }

    private string ReadLine(ReadOnlySpan<byte> d)
    {
        // A Python module path or name; a longer "line" is not one (and would only be refused below).
        int nl = d[_pos..Math.Min(d.Length, _pos + 1024)].IndexOf((byte)'\n');
        if (nl < 0)
            throw new CheckpointException(_pos + 1024 < d.Length
                ? $"malformed pickle at offset {_opPos}: GLOBAL name longer than 1024 bytes"
                : $"truncated pickle: unterminated GLOBAL name at offset {_opPos}");
        string s = Encoding.UTF8.GetString(d.Slice(_pos, nl));
        _pos += nl + 1;
        return s;
    }

    private string ReadUtf8(ReadOnlySpan<byte> bytes)
    {
        try
        {
            return new UTF8Encoding(false, true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw Malformed("invalid UTF-8 in string");
        }
    }

    // Little-endian two's complement of any width (LONG1/LONG4).
    private static object ReadLong(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length == 0) return 0L;
        if (bytes.Length <= 8)
        {
            long v = 0;
            for (int i = bytes.Length - 1; i >= 0; i--) v = (v << 8) | bytes[i];
            int shift = 64 - 8 * bytes.Length;
            return shift == 0 ? v : (v << shift) >> shift; // sign-extend
        }
        return new BigInteger(bytes, isUnsigned: false, isBigEndian: false);
    }

    private void Push(object? o)
    {
        Count();
        _stack.Add(o);
    }

    private void Count()
    {
        if (++_values > CheckpointLimits.MaxPickleValues)
            throw new CheckpointException(
                $"pickle pushes more than {CheckpointLimits.MaxPickleValues:N0} values (at offset {_opPos}); a state dict needs a few thousand");
    }

    private void MemoPut(long index)
    {
        object? top = Peek();
        if (!_memo.ContainsKey(index)) Count();
        _memo[index] = top;
    }

    private object? Peek()
    {
        if (_stack.Count == 0 || ReferenceEquals(_stack[^1], MarkObject)) throw Malformed("stack underflow");
        return _stack[^1];
    }

    private object? Pop()
    {
        object? o = Peek();
        _stack.RemoveAt(_stack.Count - 1);
        return o;
    }

    private object?[] PopN(int n)
    {
        var items = new object?[n];
        for (int i = n - 1; i >= 0; i--) items[i] = Pop();
        return items;
    }

    private object?[] PopMark()
    {
        if (_marks.Count == 0) throw Malformed("no MARK on the stack");
        int start = _marks.Pop();
        var items = _stack.GetRange(start + 1, _stack.Count - start - 1).ToArray();
        _stack.RemoveRange(start, _stack.Count - start);
        return items;
    }

    private object? MemoGet(long index) =>
        _memo.TryGetValue(index, out object? o) ? o : throw Malformed($"memo key {index} was never stored");

    private PickleDict PeekDict() => Peek() as PickleDict ?? throw Malformed("SETITEM(S) target is not a dict");

    private List<object?> PeekList() => Peek() as List<object?> ?? throw Malformed("APPEND(S) target is not a list");

    private PickleDict SetItems(PickleDict dict, object?[] items)
    {
        if (items.Length % 2 != 0) throw Malformed("odd number of items for a dict");
        for (int i = 0; i < items.Length; i += 2)
            dict[items[i] ?? throw Malformed("None used as a dict key")] = items[i + 1];
        return dict;
    }

    private PickleGlobal ResolveGlobal(string module, string name)
    {
        string full = $"{module}.{name}";
        if (!PickleGlobals.IsAllowed(full))
            throw new CheckpointException(
                $"refusing to load global {UntrustedText.Quote(full)} (pickle offset {_opPos}): it is not a tensor/state-dict type, " +
                "and loading it could run arbitrary code; the file may be malicious");
        return new PickleGlobal(module, name);
    }

    private void Build(object? state, object? target)
    {
        switch (target)
        {
            case PickleDict dict: dict.State = state; break;
            case StoredTensor: break; // tensor/parameter attributes carry nothing we need
            default: throw Malformed($"BUILD on unsupported object {Describe(target)}");
        }
    }

    private object? Call(object? func, object? argsObj)
    {
        for (int depth = 0; ; depth++)
        {
            if (func is not PickleGlobal g) throw Malformed($"REDUCE on non-callable {Describe(func)}");
            if (argsObj is not object?[] args) throw Malformed($"arguments to {g.FullName} are not a tuple");
            if (g.FullName != PickleGlobals.RebuildFromTypeV2) return CallOne(g, args);
            // (func, new_type, args, state): rebuild with func(*args); the subclass does not matter. Unwrapped in a
            // loop, as a file can nest these wrappers as deep as it likes.
            if (args.Length < 3) throw Malformed($"{g.FullName} needs 4 arguments");
            if (depth >= CheckpointLimits.MaxNestingDepth)
                throw Malformed($"{g.FullName} nested more than {CheckpointLimits.MaxNestingDepth:N0} deep");
            (func, argsObj) = (args[0], args[2]);
        }
    }

    private object? CallOne(PickleGlobal g, object?[] args)
    {
        string name = g.FullName;
        if (!PickleGlobals.IsCallable(name)) throw Malformed($"global {UntrustedText.Quote(name)} cannot be called");
        switch (name)
        {
            case PickleGlobals.OrderedDict:
            {
                var dict = new PickleDict();
                if (args.Length == 1 && args[0] is IEnumerable<object?> pairs)
                    foreach (object? p in pairs)
                        if (p is object?[] { Length: 2 } kv) SetItems(dict, kv);
                        else throw Malformed("OrderedDict argument is not a sequence of pairs");
                else if (args.Length != 0) throw Malformed("unsupported OrderedDict arguments");
                return dict;
            }
            case PickleGlobals.RebuildTensorV2:
                return RebuildTensor(args);
            case PickleGlobals.RebuildParameter:
            case PickleGlobals.RebuildParameterWithState:
                // (data, requires_grad, backward_hooks[, state]): a parameter is its data here.
                return args.Length >= 1 && args[0] is StoredTensor t ? t : throw Malformed($"{name} without a tensor");
            case PickleGlobals.TorchSize:
                return args.Length == 1 && args[0] is object?[] dims ? dims : throw Malformed("torch.Size needs a tuple");
            case PickleGlobals.CodecsEncode:
                // Protocol 2 pickles bytes as _codecs.encode(str, 'latin1').
                if (args.Length == 2 && args[0] is string s && args[1] is string enc &&
                    enc.Replace("-", "").Equals("latin1", StringComparison.OrdinalIgnoreCase))
                    return s.All(c => c <= '\u00ff') ? Encoding.Latin1.GetBytes(s) : throw Malformed("_codecs.encode: text is not latin1");
                throw Malformed("_codecs.encode is only supported for latin1 strings");
            default:
                throw Malformed($"global {UntrustedText.Quote(name)} cannot be called");
        }
    }

    // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    private StoredTensor RebuildTensor(object?[] args)
    {
        if (args.Length < 4) throw Malformed("_rebuild_tensor_v2 needs at least 4 arguments");
        if (args[0] is not PickleStorage storage) throw Malformed($"_rebuild_tensor_v2 storage is {Describe(args[0])}");
        if (args[1] is not long offset) throw Malformed("_rebuild_tensor_v2 storage_offset is not an int");
        long[] size = ToLongs(args[2], "size"), stride = ToLongs(args[3], "stride");
        try
        {
            return TensorView.Create(storage, offset, size, stride);
        }
        catch (CheckpointException e)
        {
            throw new CheckpointException(NearbyKey() is { } key
                ? $"tensor {UntrustedText.Quote(key)} (pickle offset {_opPos}): {e.Message}"
                : $"tensor at pickle offset {_opPos}: {e.Message}");
        }
    }

    // The dict key a tensor is being built for: in torch.save's layout it lies just below the REDUCE (under a
    // MARK and a global when the tensor is wrapped in a Parameter). Only for messages.
    private string? NearbyKey()
    {
        for (int i = _stack.Count - 1, seen = 0; i >= 0 && seen < 4; i--, seen++)
        {
            object? o = _stack[i];
            if (o is string s) return s;
            if (!ReferenceEquals(o, MarkObject) && o is not PickleGlobal) return null;
        }
        return null;
    }

    private long[] ToLongs(object? o, string what)
    {
        if (o is not object?[] items) throw Malformed($"tensor {what} is not a tuple");
        var r = new long[items.Length];
        for (int i = 0; i < items.Length; i++) r[i] = items[i] as long? ?? throw Malformed($"tensor {what} holds a non-int");
        return r;
    }

    internal static string Describe(object? o) => o switch
    {
        null => "None",
        PickleGlobal g => UntrustedText.Quote(g.FullName),
        string => "a string",
        _ => o.GetType().Name,
    };
}
