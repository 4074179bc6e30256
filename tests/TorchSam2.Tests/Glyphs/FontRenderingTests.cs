using TorchSam2.Glyphs;

namespace TorchSam2.Tests.Glyphs;

public class FontRenderingTests
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

    // x of the coverage-weighted centre of a bitmap, relative to its pen.
    private static double CentreX(GlyphBitmap g)
    {
        double sum = 0, wx = 0;
        for (int y = 0; y < g.Rows; y++)
            for (int x = 0; x < g.Width; x++)
            {
                sum += g.At(x, y);
                wx += g.At(x, y) * (g.Left + x + 0.5);
            }
        return wx / sum;
    }

    private static FontFace DejaVuSans(int px)
    {
        var face = FontFace.Open(GlyphTestUtil.DejaVuSans);
        face.SetPixelSize(px);
        return face;
    }

    [Fact]
    public void RendersLAndOWithTheirShapes()
    {
        using var face = FontFace.Open(GlyphTestUtil.DejaVuSans);
        Assert.Equal("DejaVu Sans", face.FamilyName);
        Assert.Throws<InvalidOperationException>(() => face.Metrics);
        face.SetPixelSize(100);
        Assert.Equal(100, face.SizePx);
        var m = face.Metrics;
        // DejaVu Sans: ascender 0.928 em, descender -0.236 em, line gap 0 (hhea), rounded outwards.
        Assert.Equal(93, m.Ascender);
        Assert.Equal(-24, m.Descender);
        Assert.InRange(m.LineHeight, 116, 117);

        var l = face.Render('l');
        Assert.Equal(1, Components4(l, true));
        Assert.Equal(1, Components4(l, false)); // no counter
        // The stem of 'l' runs from the baseline to the ascender line (0.76 em), 0.095 em wide at x = 0.095 em.
        Assert.InRange(l.Rows, 75, 78);
        Assert.InRange(l.Width, 9, 11);
        Assert.InRange(l.Top, 75, 77);
        Assert.InRange(l.Left, 8, 10);
        Assert.Equal(28, l.AdvanceX); // 569/2048 em
        // Fully inside the stem the coverage is full.
        Assert.Equal(255, l.At(l.Width / 2, l.Rows / 2));
        // Cropped to the ink: the border rows and columns are inked.
        Assert.Contains(l.Coverage.Take(l.Width), v => v > 0);
        Assert.Contains(l.Coverage.Skip((l.Rows - 1) * l.Width), v => v > 0);

        var o = face.Render('o');
        // 'o': one ring of ink; inside its box the background splits into the outside and the counter.
        Assert.Equal(1, Components4(o, true));
        Assert.Equal(2, Components4(o, false));
        // x-height 0.547 em plus overshoot, advance 1253/2048 em.
        Assert.InRange(o.Rows, 56, 60);
        Assert.InRange(o.Width, 49, 53);
        Assert.Equal(61, o.AdvanceX);
        Assert.InRange(o.Top, 55, 58);
        Assert.True(o.Coverage.Distinct().Count() > 20, "anti-aliased rendering has many gray levels");
        // The ring's area: (outer − inner ellipse) ≈ 12.8 px² per em² → ~1275 px² at 100 px (FreeType's unhinted 1281).
        double ink = o.Coverage.Sum(v => (double)v) / 255;
        Assert.InRange(ink, 1240, 1310);
    }

    [Fact]
    public void KerningPullsAvTogetherAndPlainPairsAddUp()
    {
        using var face = DejaVuSans(100);
        var av = face.Shape("AV");
        var a = face.Shape("A");
        var v = face.Shape("V");
        Assert.Equal(2, av.Glyphs.Count);
        Assert.Equal(new[] { "A", "V" }, av.Clusters.Select(c => c.Text));
        Assert.Equal(face.Advance(a.Glyphs[0].GlyphId), a.Width, 3);
        // DejaVu Sans kerns A-V by -131/2048 em: 6.4 px at 100 px.
        Assert.InRange(a.Width + v.Width - av.Width, 5.5f, 7.5f);
        Assert.Equal(av.Clusters[1].X, av.Glyphs[1].X, 3);
        Assert.True(av.Clusters[1].X < a.Width - 5);
        // No kerning between two H: the run is exactly two advances.
        var hh = face.Shape("HH");
        Assert.Equal(2 * face.Shape("H").Width, hh.Width, 3);
        // Kerning scales with the size.
        face.SetPixelSize(50);
        var av50 = face.Shape("AV");
        Assert.Equal(av.Width / 2, av50.Width, 2);
    }

    [Fact]
    public void AWidthScaleCondensesOutlinesAndAdvancesAlike()
    {
        using var face = DejaVuSans(100);
        var h = face.Render('H');
        var av = face.Shape("AV");
        float hw = face.Shape("H").Width;
        face.SetWidthScale(0.6);
        var hc = face.Render('H');
        var avc = face.Shape("AV");
        // DejaVu Sans' H at 100 px: the outline (and its anti-aliased rim) 0.6 as wide, exactly as tall; the kerned run 0.6 as long
        Assert.Equal(h.Rows, hc.Rows);
        Assert.InRange(hc.Width, 0.6 * h.Width - 1.5, 0.6 * h.Width + 1.5);
        Assert.Equal(0.6 * av.Width, avc.Width, 2);
        Assert.Equal(0.6 * av.Glyphs[1].X, avc.Glyphs[1].X, 2);
        Assert.Equal(0.6 * hw, face.Advance(face.Shape("H").Glyphs[0].GlyphId), 2);
        face.SetWidthScale(1);
        Assert.Equal(h.Coverage, face.Render('H').Coverage);
        Assert.Throws<ArgumentOutOfRangeException>(() => face.SetWidthScale(0.1));
    }

    [Fact]
    public void LigaturesAreOffByDefaultAndOneClusterWhenOn()
    {
        using var face = DejaVuSans(40);
        var plain = face.Shape("office");
        Assert.Equal(new[] { "o", "f", "f", "i", "c", "e" }, plain.Clusters.Select(c => c.Text));
        Assert.All(plain.Clusters, c => Assert.Equal(1, c.GlyphCount));
        var lig = face.Shape("office", ligatures: true);
        // DejaVu Sans has an 'ffi' ligature: one glyph that owns three characters.
        Assert.Equal(new[] { "o", "ffi", "c", "e" }, lig.Clusters.Select(c => c.Text));
        var ffi = lig.Clusters[1];
        Assert.Equal((1, 3, 1), (ffi.Start, ffi.Length, ffi.GlyphCount));
        Assert.NotEqual(plain.Glyphs[1].GlyphId, lig.Glyphs[1].GlyphId);
        // The ligature glyph's ink is one bitmap; the separate glyphs are three.
        var g = face.Render(lig.GlyphsOf(ffi));
        Assert.True(g.Width > 2 * face.Render('f').Width);
    }

    [Fact]
    public void GlyphsRenderedTogetherAreTheCompositeOfEachAlone()
    {
        // Neighbours can share pixels ('rv', '(j' in DejaVu Serif Bold): rendered one call per glyph and combined like
        // ink over ink, the glyphs must give the same bitmap as one call over all of them (positions, rounding and
        // compositing agree).
        var path = FontRegistry.Get("DejaVuSerif-Bold").Path ?? throw new InvalidOperationException("fonts-dejavu-core is not installed");
        using var face = FontFace.Open(path);
        face.SetPixelSize(48);
        var shaped = face.Shape("AVAWAY rv (j) Tyg");
        var glyphs = shaped.Glyphs.ToArray();
        const float dx = 0.3f;
        var all = face.Render(glyphs, dx);
        Assert.Equal((int)Math.Round(shaped.Width), all.AdvanceX);
        var alpha = new Dictionary<(int X, int Y), double>();
        var inkers = new Dictionary<(int X, int Y), int>();
        foreach (var gl in glyphs)
        {
            var g = face.Render([gl], dx);
            for (int r = 0; r < g.Rows; r++)
                for (int c = 0; c < g.Width; c++)
                {
                    if (g.At(c, r) == 0) continue;
                    var key = (g.Left + c, g.Top - r);
                    double a = g.At(c, r) / 255.0;
                    alpha[key] = 1 - (1 - alpha.GetValueOrDefault(key)) * (1 - a);
                    inkers[key] = inkers.GetValueOrDefault(key) + 1;
                }
        }
        int inked = 0;
        for (int r = 0; r < all.Rows; r++)
            for (int c = 0; c < all.Width; c++)
            {
                double expected = alpha.GetValueOrDefault((all.Left + c, all.Top - r)) * 255;
                Assert.InRange(all.At(c, r), expected - 1, expected + 1);
                if (all.At(c, r) > 0) inked++;
            }
        Assert.Equal(alpha.Count, inked);
        Assert.Contains(inkers.Values, n => n > 1); // 'rv' and '(j' share pixels
        // The 'V' after 'A' starts left of where the 'A' ends (kerning); clusters move forward.
        var a0 = face.Render(shaped.GlyphsOf(shaped.Clusters[0]), dx);
        var v1 = face.Render(shaped.GlyphsOf(shaped.Clusters[1]), dx);
        Assert.True(v1.Left < a0.Left + a0.Width);
        Assert.True(shaped.Clusters.Zip(shaped.Clusters.Skip(1)).All(p => p.Second.X > p.First.X));
    }

    [Fact]
    public void SubpixelOffsetsMoveTheInk()
    {
        using var face = DejaVuSans(24);
        var shaped = face.Shape("l");
        var glyphs = shaped.GlyphsOf(shaped.Clusters[0]);
        var at0 = face.Render(glyphs);
        Assert.Equal(at0.Coverage, face.Render('l').Coverage);
        double c0 = CentreX(at0);
        foreach (var dx in new[] { 0.25f, 0.5f, 0.75f, 1f, 3.5f })
        {
            var g = face.Render(glyphs, dx);
            Assert.InRange(CentreX(g) - c0, dx - 0.06, dx + 0.06);
        }
        // Offsets are drawn at quarter pixels: 0.3 draws like 0.25, 0.4 like 0.5.
        var q1 = face.Render(glyphs, 0.25f);
        var q2 = face.Render(glyphs, 0.5f);
        var q1b = face.Render(glyphs, 0.3f);
        var q2b = face.Render(glyphs, 0.4f);
        Assert.Equal((q1.Left, q1.Width), (q1b.Left, q1b.Width));
        Assert.Equal(q1.Coverage, q1b.Coverage);
        Assert.Equal((q2.Left, q2.Width), (q2b.Left, q2b.Width));
        Assert.Equal(q2.Coverage, q2b.Coverage);
        Assert.NotEqual(q1.Coverage, q2.Coverage);
    }

    [Fact]
    public void RenderingIsDeterministic()
    {
        using var fa = FontFace.Open(GlyphTestUtil.DejaVuSans);
        using var fb = FontFace.Open(GlyphTestUtil.DejaVuSans);
        foreach (int px in new[] { 8, 13, 200, 13 })
        {
            fa.SetPixelSize(px);
            fb.SetPixelSize(px);
            foreach (char c in "Rgé@")
            {
                var ga = fa.Render(c);
                var gb = fb.Render(c);
                Assert.Equal((ga.Width, ga.Rows, ga.Left, ga.Top, ga.AdvanceX), (gb.Width, gb.Rows, gb.Left, gb.Top, gb.AdvanceX));
                Assert.Equal(ga.Coverage, gb.Coverage);
                Assert.True(ga.Width > 0 && ga.Coverage.Any(v => v > 0));
            }
            var sa = fa.Shape("Wave, AVA!");
            var sb = fb.Shape("Wave, AVA!");
            Assert.Equal(sa.Glyphs, sb.Glyphs);
            Assert.Equal(sa.Width, sb.Width);
        }
        Assert.True(fa.HasChar('é'));
        Assert.False(fa.HasChar(0xE000)); // private use area: no glyph
    }

    [Fact]
    public void MissingOrBrokenFontFileIsAClearError()
    {
        var e = Assert.Throws<FileNotFoundException>(() => FontFace.Open("/nonexistent/NoSuchFont.ttf"));
        Assert.Contains("/nonexistent/NoSuchFont.ttf", e.Message);
        var bogus = TestPaths.TempFile(".ttf");
        File.WriteAllText(bogus, "not a font");
        try
        {
            var e2 = Assert.Throws<InvalidDataException>(() => FontFace.Open(bogus));
            Assert.Contains(bogus, e2.Message);
            Assert.Contains("not a font", e2.Message);
        }
        finally
        {
            File.Delete(bogus);
        }
        using var face = FontFace.Open(GlyphTestUtil.DejaVuSans);
        Assert.Throws<InvalidOperationException>(() => face.Render('a')); // no size yet
        Assert.Throws<ArgumentOutOfRangeException>(() => face.SetPixelSize(0));
    }
}
