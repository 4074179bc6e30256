using System.Runtime.InteropServices;
using TorchSam2.Glyphs;

namespace TorchSam2.Tests.Glyphs;

public class FreeTypeTests
{
    // 4-connected components of the cells equal to `value` in the bitmap padded by one background pixel
    // (background holes must not leak diagonally; the padding joins the outside into one region).
    private static int Components4(GlyphBitmap g, bool value)
    {
        int w = g.Width + 2, h = g.Rows + 2;
        var cell = new bool[w * h];
        for (int y = 0; y < g.Rows; y++)
            for (int x = 0; x < g.Width; x++)
                cell[(y + 1) * w + x + 1] = g.At(x, y) >= 128;
        var seen = new bool[w * h];
        int count = 0;
        for (int s = 0; s < seen.Length; s++)
        {
            if (seen[s] || cell[s] != value) continue;
            count++;
            var stack = new Stack<int>();
            stack.Push(s);
            seen[s] = true;
            while (stack.Count > 0)
            {
                int i = stack.Pop(), x = i % w, y = i / w;
                foreach (var (dx, dy) in new[] { (1, 0), (-1, 0), (0, 1), (0, -1) })
                {
                    int u = x + dx, v = y + dy;
                    if (u < 0 || v < 0 || u >= w || v >= h) continue;
                    int j = v * w + u;
                    if (!seen[j] && cell[j] == value)
                    {
                        seen[j] = true;
                        stack.Push(j);
                    }
                }
            }
        }
        return count;
    }

    [Fact]
    public void StructPrefixesMatchTheCLayout()
    {
        // Offsets printed by offsetof() against FreeType 2.12 headers on x86-64 Linux.
        var asm = typeof(FontFace).Assembly;
        var slot = asm.GetType("TorchSam2.Glyphs.FreeTypeNative+FT_GlyphSlotRec")!;
        var bitmap = asm.GetType("TorchSam2.Glyphs.FreeTypeNative+FT_Bitmap")!;
        var face = asm.GetType("TorchSam2.Glyphs.FreeTypeNative+FT_FaceRec")!;
        var size = asm.GetType("TorchSam2.Glyphs.FreeTypeNative+FT_SizeRec")!;
        var sizeMetrics = asm.GetType("TorchSam2.Glyphs.FreeTypeNative+FT_Size_Metrics")!;
        Assert.Equal(8, (int)Marshal.OffsetOf(slot, "face"));
        Assert.Equal(128, (int)Marshal.OffsetOf(slot, "advance"));
        Assert.Equal(144, (int)Marshal.OffsetOf(slot, "format"));
        Assert.Equal(152, (int)Marshal.OffsetOf(slot, "bitmap"));
        Assert.Equal(192, (int)Marshal.OffsetOf(slot, "bitmap_left"));
        Assert.Equal(196, (int)Marshal.OffsetOf(slot, "bitmap_top"));
        Assert.Equal(16, (int)Marshal.OffsetOf(bitmap, "buffer"));
        Assert.Equal(26, (int)Marshal.OffsetOf(bitmap, "pixel_mode"));
        Assert.Equal(40, Marshal.SizeOf(bitmap));
        Assert.Equal(136, (int)Marshal.OffsetOf(face, "units_per_EM"));
        Assert.Equal(152, (int)Marshal.OffsetOf(face, "glyph"));
        Assert.Equal(160, (int)Marshal.OffsetOf(face, "size"));
        Assert.Equal(24, (int)Marshal.OffsetOf(size, "metrics"));
        Assert.Equal(24, (int)Marshal.OffsetOf(sizeMetrics, "ascender"));
        Assert.Equal(40, (int)Marshal.OffsetOf(sizeMetrics, "height"));
    }

    [Fact]
    public void RendersLAndOWithTheirShapes()
    {
        using var ft = new FreeTypeLibrary();
        var face = ft.OpenFace(GlyphTestUtil.DejaVuSans);
        Assert.Equal("DejaVu Sans", face.FamilyName);
        face.SetPixelSize(100);
        var m = face.Metrics;
        // DejaVu Sans: ascender 0.928 em, descender -0.236 em.
        Assert.InRange(m.Ascender, 90, 96);
        Assert.InRange(m.Descender, -26, -21);

        var l = face.Render('l');
        Assert.Equal(1, Components4(l, true));
        Assert.Equal(1, Components4(l, false)); // no counter
        // The stem of 'l' reaches the ascender line (0.76 em) from the baseline; ~9-14 px wide.
        Assert.InRange(l.Rows, 70, 82);
        Assert.InRange(l.Width, 8, 16);
        Assert.InRange(l.Top, 70, 82);
        Assert.True(l.Rows > 4 * l.Width);

        var o = face.Render('o');
        // 'o': one ring of ink; inside its box the background splits into the outside and the counter.
        Assert.Equal(1, Components4(o, true));
        Assert.Equal(2, Components4(o, false));
        // x-height 0.547 em plus overshoot.
        Assert.InRange(o.Rows, 52, 62);
        Assert.InRange(o.Width, 48, 62);
        Assert.InRange(o.AdvanceX, 55, 66);
        Assert.InRange(o.Top, 52, 62);
        Assert.True(o.Coverage.Distinct().Count() > 20, "anti-aliased rendering has many gray levels");
    }

    [Fact]
    public void RenderingIsDeterministic()
    {
        using var a = new FreeTypeLibrary();
        using var b = new FreeTypeLibrary();
        var fa = a.OpenFace(GlyphTestUtil.DejaVuSans);
        var fb = b.OpenFace(GlyphTestUtil.DejaVuSans);
        foreach (int px in new[] { 8, 13, 200 })
        {
            fa.SetPixelSize(px);
            fb.SetPixelSize(px);
            foreach (char c in "Rgé@")
            {
                var ga = fa.Render(c);
                var gb = fb.Render(c);
                Assert.Equal((ga.Width, ga.Rows, ga.Left, ga.Top, ga.AdvanceX), (gb.Width, gb.Rows, gb.Left, gb.Top, gb.AdvanceX));
                Assert.Equal(ga.Coverage, gb.Coverage);
            }
        }
        Assert.True(fa.HasChar('é'));
        Assert.False(fa.HasChar(0xE000)); // private use area: no glyph
    }

    [Fact]
    public void MissingFontFileIsAClearError()
    {
        using var ft = new FreeTypeLibrary();
        var e = Assert.Throws<FileNotFoundException>(() => ft.OpenFace("/nonexistent/NoSuchFont.ttf"));
        Assert.Contains("/nonexistent/NoSuchFont.ttf", e.Message);
        var bogus = TestPaths.TempFile(".ttf");
        File.WriteAllText(bogus, "not a font");
        var e2 = Assert.Throws<InvalidDataException>(() => ft.OpenFace(bogus));
        Assert.Contains("unknown file format", e2.Message);
        File.Delete(bogus);
    }
}
