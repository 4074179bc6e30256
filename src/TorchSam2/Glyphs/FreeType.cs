using System.Runtime.InteropServices;

namespace TorchSam2.Glyphs;

/// <summary>An anti-aliased 8-bit coverage bitmap of one glyph, placed relative to the pen on the baseline.</summary>
/// <param name="Width">columns of <paramref name="Coverage"/></param>
/// <param name="Rows">rows of <paramref name="Coverage"/></param>
/// <param name="Left">x of the bitmap's left column relative to the pen</param>
/// <param name="Top">rows of the bitmap above the baseline (the top row is at baseline − Top)</param>
/// <param name="AdvanceX">horizontal pen advance in whole pixels</param>
/// <param name="Coverage">row-major Rows×Width coverage, 0 (none) .. 255 (full)</param>
public sealed record GlyphBitmap(int Width, int Rows, int Left, int Top, int AdvanceX, byte[] Coverage)
{
    public byte At(int x, int y) => Coverage[y * Width + x];
}

/// <summary>Pixel metrics of a face at its current size (whole pixels, rounded by FreeType).</summary>
public readonly record struct LineMetrics(int Ascender, int Descender, int LineHeight);

/// <summary>
/// A FreeType library instance (libfreetype.so.6). Not thread-safe: use one per thread; faces opened
/// from it are disposed with it.
/// </summary>
public sealed class FreeTypeLibrary : IDisposable
{
    private IntPtr _lib;
    private readonly List<FontFace> _faces = new();

    public FreeTypeLibrary()
    {
        int err;
        try { err = FreeTypeNative.FT_Init_FreeType(out _lib); }
        catch (DllNotFoundException e)
        {
            throw new InvalidOperationException("glyph rendering needs FreeType (libfreetype.so.6): apt-get install libfreetype6, or run tools/setup.sh", e);
        }
        FreeTypeNative.Check(err, "FT_Init_FreeType");
    }

    internal IntPtr Handle => _lib != IntPtr.Zero ? _lib : throw new ObjectDisposedException(nameof(FreeTypeLibrary));

    /// <summary>Opens a font file (TTF, OTF, ...). Throws FileNotFoundException for a missing file.</summary>
    public FontFace OpenFace(string path, int faceIndex = 0)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"font file not found: {path} (the Debian font packages are listed in tools/setup.sh)", path);
        int err = FreeTypeNative.FT_New_Face(Handle, path, new CLong(faceIndex), out var face);
        if (err != 0) throw new InvalidDataException($"FreeType cannot open font '{path}': {FreeTypeNative.Describe(err)}");
        var f = new FontFace(this, face, path);
        _faces.Add(f);
        return f;
    }

    internal void Forget(FontFace f) => _faces.Remove(f);

    public void Dispose()
    {
        if (_lib == IntPtr.Zero) return;
        foreach (var f in _faces.ToArray()) f.Dispose();
        FreeTypeNative.FT_Done_FreeType(_lib);
        _lib = IntPtr.Zero;
    }
}

/// <summary>One face of a font file. Rendering is deterministic for a given FreeType build and load flags.</summary>
public sealed unsafe class FontFace : IDisposable
{
    private readonly FreeTypeLibrary _owner;
    private IntPtr _face;
    private int _sizePx;

    public string Path { get; }
    public string FamilyName { get; }
    public string StyleName { get; }

    internal FontFace(FreeTypeLibrary owner, IntPtr face, string path)
    {
        _owner = owner;
        _face = face;
        Path = path;
        var rec = (FreeTypeNative.FT_FaceRec*)face;
        FamilyName = Marshal.PtrToStringUTF8(rec->family_name) ?? "";
        StyleName = Marshal.PtrToStringUTF8(rec->style_name) ?? "";
    }

    private IntPtr Handle => _face != IntPtr.Zero ? _face : throw new ObjectDisposedException(nameof(FontFace));

    /// <summary>The current pixel size (em height), 0 before <see cref="SetPixelSize"/>.</summary>
    public int SizePx => _sizePx;

    public void SetPixelSize(int px)
    {
        if (px <= 0) throw new ArgumentOutOfRangeException(nameof(px), "pixel size must be positive");
        if (px == _sizePx) return;
        FreeTypeNative.Check(FreeTypeNative.FT_Set_Pixel_Sizes(Handle, 0, (uint)px), $"FT_Set_Pixel_Sizes({px}) on {Path}");
        _sizePx = px;
    }

    /// <summary>Whether the face maps this Unicode code point to a glyph (other than .notdef).</summary>
    public bool HasChar(int codepoint) => FreeTypeNative.FT_Get_Char_Index(Handle, new CULong((nuint)codepoint)) != 0;

    public LineMetrics Metrics
    {
        get
        {
            if (_sizePx == 0) throw new InvalidOperationException("set a pixel size first");
            var size = (FreeTypeNative.FT_SizeRec*)((FreeTypeNative.FT_FaceRec*)Handle)->size;
            var m = size->metrics;
            return new LineMetrics((int)(m.ascender.Value >> 6), (int)(m.descender.Value >> 6), (int)(m.height.Value >> 6));
        }
    }

    /// <summary>Renders a code point at the current size into an 8-bit anti-aliased coverage bitmap.</summary>
    public GlyphBitmap Render(int codepoint)
    {
        if (_sizePx == 0) throw new InvalidOperationException("set a pixel size first");
        var face = Handle;
        int err = FreeTypeNative.FT_Load_Char(face, new CULong((nuint)codepoint), FreeTypeNative.FT_LOAD_RENDER);
        if (err != 0) throw new InvalidDataException($"FreeType cannot render U+{codepoint:X4} in '{Path}': {FreeTypeNative.Describe(err)}");
        var slot = (FreeTypeNative.FT_GlyphSlotRec*)((FreeTypeNative.FT_FaceRec*)face)->glyph;
        // Cheap guards against a struct layout mismatch: the slot points back to its face and holds a rendered bitmap.
        if (slot->face != face) throw new InvalidOperationException("FreeType glyph slot layout mismatch (slot.face)");
        if (slot->format != FreeTypeNative.FT_GLYPH_FORMAT_BITMAP) throw new InvalidOperationException($"FreeType did not render a bitmap (format 0x{slot->format:X8})");
        var bm = slot->bitmap;
        int w = (int)bm.width, rows = (int)bm.rows;
        var cov = new byte[w * rows];
        if (w > 0 && rows > 0)
        {
            if (bm.pixel_mode != FreeTypeNative.FT_PIXEL_MODE_GRAY || bm.num_grays != 256)
                throw new InvalidDataException($"unexpected FreeType bitmap (pixel mode {bm.pixel_mode}, {bm.num_grays} grays) for U+{codepoint:X4} in '{Path}'");
            byte* src = (byte*)bm.buffer;
            int pitch = bm.pitch;
            // A negative pitch means the bitmap is stored bottom-up, the buffer pointing at the top row still.
            for (int y = 0; y < rows; y++)
                new ReadOnlySpan<byte>(src + (long)y * pitch, w).CopyTo(cov.AsSpan(y * w, w));
        }
        int adv = (int)((slot->advance.x.Value + 32) >> 6);
        return new GlyphBitmap(w, rows, slot->bitmap_left, slot->bitmap_top, adv, cov);
    }

    public void Dispose()
    {
        if (_face == IntPtr.Zero) return;
        FreeTypeNative.FT_Done_Face(_face);
        _face = IntPtr.Zero;
        _owner.Forget(this);
    }
}

/// <summary>Raw FreeType 2 entry points and the struct prefixes we read (x86-64 / arm64 Linux: FT_Long is a C long).</summary>
internal static unsafe partial class FreeTypeNative
{
    private const string Lib = "libfreetype.so.6";
    public const int FT_LOAD_RENDER = 1 << 2;
    public const byte FT_PIXEL_MODE_GRAY = 2;
    public const uint FT_GLYPH_FORMAT_BITMAP = ('b' << 24) | ('i' << 16) | ('t' << 8) | 's';

    [LibraryImport(Lib)] public static partial int FT_Init_FreeType(out IntPtr library);
    [LibraryImport(Lib)] public static partial int FT_Done_FreeType(IntPtr library);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] public static partial int FT_New_Face(IntPtr library, string path, CLong faceIndex, out IntPtr face);
    [LibraryImport(Lib)] public static partial int FT_Done_Face(IntPtr face);
    [LibraryImport(Lib)] public static partial int FT_Set_Pixel_Sizes(IntPtr face, uint width, uint height);
    [LibraryImport(Lib)] public static partial uint FT_Get_Char_Index(IntPtr face, CULong charcode);
    [LibraryImport(Lib)] public static partial int FT_Load_Char(IntPtr face, CULong charcode, int loadFlags);

    public static void Check(int err, string what)
    {
        if (err != 0) throw new InvalidOperationException($"{what} failed: {Describe(err)}");
    }

    public static string Describe(int err) => err switch
    {
        0x01 => "cannot open resource (error 0x01)",
        0x02 => "unknown file format (error 0x02)",
        0x03 => "broken file (error 0x03)",
        0x06 => "invalid argument (error 0x06)",
        0x10 => "invalid glyph index (error 0x10)",
        0x17 => "invalid pixel size (error 0x17)",
        0x40 => "out of memory (error 0x40)",
        _ => $"FreeType error 0x{err:X2}",
    };

    [StructLayout(LayoutKind.Sequential)]
    public struct FT_Generic { public IntPtr data; public IntPtr finalizer; }

    [StructLayout(LayoutKind.Sequential)]
    public struct FT_Vector { public CLong x; public CLong y; }

    [StructLayout(LayoutKind.Sequential)]
    public struct FT_BBox { public CLong xMin, yMin, xMax, yMax; }

    [StructLayout(LayoutKind.Sequential)]
    public struct FT_Glyph_Metrics { public CLong width, height, horiBearingX, horiBearingY, horiAdvance, vertBearingX, vertBearingY, vertAdvance; }

    [StructLayout(LayoutKind.Sequential)]
    public struct FT_Bitmap
    {
        public uint rows;
        public uint width;
        public int pitch;
        public IntPtr buffer;
        public ushort num_grays;
        public byte pixel_mode;
        public byte palette_mode;
        public IntPtr palette;
    }

    // Prefix of FT_GlyphSlotRec up to bitmap_top (only read through a pointer).
    [StructLayout(LayoutKind.Sequential)]
    public struct FT_GlyphSlotRec
    {
        public IntPtr library;
        public IntPtr face;
        public IntPtr next;
        public uint glyph_index;
        public FT_Generic generic;
        public FT_Glyph_Metrics metrics;
        public CLong linearHoriAdvance;
        public CLong linearVertAdvance;
        public FT_Vector advance;
        public uint format;
        public FT_Bitmap bitmap;
        public int bitmap_left;
        public int bitmap_top;
    }

    // Prefix of FT_FaceRec up to charmap.
    [StructLayout(LayoutKind.Sequential)]
    public struct FT_FaceRec
    {
        public CLong num_faces, face_index, face_flags, style_flags, num_glyphs;
        public IntPtr family_name, style_name;
        public int num_fixed_sizes;
        public IntPtr available_sizes;
        public int num_charmaps;
        public IntPtr charmaps;
        public FT_Generic generic;
        public FT_BBox bbox;
        public ushort units_per_EM;
        public short ascender, descender, height, max_advance_width, max_advance_height, underline_position, underline_thickness;
        public IntPtr glyph;
        public IntPtr size;
        public IntPtr charmap;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct FT_Size_Metrics
    {
        public ushort x_ppem, y_ppem;
        public CLong x_scale, y_scale, ascender, descender, height, max_advance;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct FT_SizeRec
    {
        public IntPtr face;
        public FT_Generic generic;
        public FT_Size_Metrics metrics;
        public IntPtr @internal;
    }
}
