using TorchSam2.Glyphs;

namespace TorchSam2.Tests.Glyphs;

/// <summary>The instance step's rules on hand-drawn candidates and hand-made click masks.</summary>
public class GlyphInstancesTests
{
    // A candidate from rows of '#' (own ink) and '.', placed at (x0, y0).
    private static (GlyphCandidate c, bool[] own) Candidate(int x0, int y0, params string[] rows)
    {
        int h = rows.Length, w = rows[0].Length;
        var own = new bool[w * h];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                own[y * w + x] = rows[y][x] == '#';
        return (new GlyphCandidate(0, x0, y0, x0 + w - 1, y0 + h - 1, [1], own.Count(b => b)), own);
    }

    // A click at box pixel (u, v) whose mask is the own ink in columns [from, to] (and rows [top, bottom]).
    private static ClickMask Click(GlyphCandidate c, bool[] own, int u, int v, float score, int from, int to, int top = 0, int bottom = int.MaxValue)
    {
        var bits = new bool[own.Length];
        for (int y = Math.Max(0, top); y <= Math.Min(c.H - 1, bottom); y++)
            for (int x = from; x <= to; x++)
                bits[y * c.W + x] = own[y * c.W + x];
        return new ClickMask(new GlyphClick(0, c.X0 + u, c.Y0 + v, 64), bits, score);
    }

    private static string Render(GlyphInstance g, GlyphCandidate c) =>
        string.Join("|", Enumerable.Range(0, c.H).Select(y => new string(Enumerable.Range(0, c.W).Select(x => g.Bits[y * c.W + x] ? '#' : '.').ToArray())));

    private static readonly string[] TwoTouching = ["########", "########", "########", "########"];

    [Fact]
    public void TwoTouchingLettersBecomeTwoGlyphs()
    {
        var (c, own) = Candidate(10, 20, TwoTouching);
        var clicks = new[]
        {
            Click(c, own, 1, 1, 0.9f, 0, 3), Click(c, own, 2, 2, 0.8f, 0, 3),
            Click(c, own, 5, 1, 0.95f, 4, 7), Click(c, own, 6, 2, 0.7f, 4, 7),
        };
        var glyphs = GlyphInstances.Split(c, own, clicks, minArea: 3);
        Assert.Equal(2, glyphs.Count);
        var left = glyphs.Single(g => g.Bits[0]);
        var right = glyphs.Single(g => g.Bits[7]);
        Assert.Equal("####....|####....|####....|####....", Render(left, c));
        Assert.Equal("....####|....####|....####|....####", Render(right, c));
        Assert.Equal(16, left.Area);
        Assert.Equal((2, 2), (left.Support, right.Support));
        // each glyph is represented by its best click
        Assert.Equal((11, 21), (left.Seed.Click.X, left.Seed.Click.Y));
        Assert.Equal((15, 21), (right.Seed.Click.X, right.Seed.Click.Y));
    }

    [Fact]
    public void AClickWhoseMaskSpansBothLettersDoesNotChainThem()
    {
        var (c, own) = Candidate(0, 0, TwoTouching);
        var clicks = new[]
        {
            // the best-scored click, on the left letter, answers with both letters
            Click(c, own, 3, 1, 0.99f, 0, 7),
            Click(c, own, 1, 1, 0.9f, 0, 3), Click(c, own, 2, 2, 0.8f, 0, 3),
            Click(c, own, 5, 1, 0.95f, 4, 7), Click(c, own, 6, 2, 0.7f, 4, 7),
        };
        var glyphs = GlyphInstances.Split(c, own, clicks, minArea: 3);
        // Cluster 1 = {both-letters click, two left clicks}: votes 3/4 on the left, 1/4 on the right;
        // cluster 2 = {two right clicks}: 2/3 on the right, which beats 1/4.
        Assert.Equal(2, glyphs.Count);
        Assert.Equal("####....|####....|####....|####....", Render(glyphs.Single(g => g.Support == 3), c));
        Assert.Equal("....####|....####|....####|....####", Render(glyphs.Single(g => g.Support == 2), c));
    }

    [Fact]
    public void AClickOnAPartOfALetterDoesNotSplitIt()
    {
        // An H: three clicks answer with the whole letter, one on the crossbar with the crossbar alone.
        var (c, own) = Candidate(0, 0, "#...#", "#...#", "#####", "#...#", "#...#");
        var clicks = new[]
        {
            Click(c, own, 0, 0, 0.9f, 0, 4), Click(c, own, 4, 4, 0.9f, 0, 4), Click(c, own, 0, 3, 0.8f, 0, 4),
            Click(c, own, 2, 2, 0.95f, 1, 3, 2, 2),
        };
        var glyphs = GlyphInstances.Split(c, own, clicks, minArea: 2);
        // The crossbar's lone click votes 1/2 for its pixels, the letter's three clicks 3/4.
        Assert.Single(glyphs);
        Assert.Equal(13, glyphs[0].Area);
        Assert.Equal(3, glyphs[0].Support);
    }

    [Fact]
    public void InkNoMaskHoldsGoesToTheNearestGlyph()
    {
        // Two letters and, above the right one, a dot no click's mask holds (the model missed an i's dot).
        var (c, own) = Candidate(0, 0,
            ".......#",
            "........",
            "........",
            "########",
            "########");
        var clicks = new[]
        {
            Click(c, own, 1, 3, 0.9f, 0, 3, 3, 4), Click(c, own, 2, 4, 0.9f, 0, 3, 3, 4),
            Click(c, own, 5, 3, 0.9f, 4, 7, 3, 4), Click(c, own, 6, 4, 0.9f, 4, 7, 3, 4),
        };
        var glyphs = GlyphInstances.Split(c, own, clicks, minArea: 2);
        Assert.Equal(2, glyphs.Count);
        var right = glyphs.Single(g => g.Bits[3 * 8 + 7]);
        Assert.True(right.Bits[7], "the dot joins the letter below it");
        Assert.Equal(9, right.Area);
        Assert.Equal(8, glyphs.Single(g => g.Bits[3 * 8]).Area);
    }

    [Fact]
    public void ClicksOutsideTheirOwnMaskAreIgnoredAndTinyGlyphsDissolve()
    {
        var (c, own) = Candidate(0, 0, TwoTouching);
        var clicks = new[]
        {
            // misses its own pixel (it answers with the right letter while sitting on the left one)
            Click(c, own, 1, 1, 0.99f, 4, 7),
            Click(c, own, 1, 2, 0.9f, 0, 3), Click(c, own, 2, 2, 0.8f, 0, 3), Click(c, own, 6, 2, 0.7f, 4, 7),
            // a one-click cluster of 2 pixels (below minArea 3) is given back to its neighbours
            Click(c, own, 7, 0, 0.6f, 7, 7, 0, 1),
        };
        var glyphs = GlyphInstances.Split(c, own, clicks, minArea: 3);
        Assert.Equal(2, glyphs.Count);
        Assert.Equal(32, glyphs.Sum(g => g.Area));
        Assert.All(glyphs, g => Assert.Equal(16, g.Area));
        Assert.DoesNotContain(glyphs, g => g.Seed.Score == 0.99f);
    }

    [Fact]
    public void OneGlyphKeepsAllItsInk()
    {
        var (c, own) = Candidate(3, 4, "##.##", "#####");
        var glyphs = GlyphInstances.Split(c, own, [Click(c, own, 0, 1, 0.5f, 0, 2)], minArea: 1);
        Assert.Single(glyphs);
        Assert.Equal(9, glyphs[0].Area);
        Assert.Empty(GlyphInstances.Split(c, own, [], minArea: 1));
    }

    [Fact]
    public void StrokeCoresCutLettersThatTouchThroughLighterInk()
    {
        // Two letters joined by a lighter column (x = 4): own ink is all of it, the cores (darkest ink) are the two
        // 4x4 blocks; a 1-pixel speck of dark ink below is too small to be a letter.
        var (c, own) = Candidate(0, 0, "#########", "#########", "#########", "#########", "....#....", "....#....");
        var (_, core) = Candidate(0, 0, "####.####", "####.####", "####.####", "####.####", ".........", "....#....");
        var cores = GlyphInstances.Cores(c, core, minArea: 2);
        Assert.Equal(2, cores.Count);
        Assert.All(cores, k => Assert.Equal(16, k.Bits.Count(b => b)));
        // each click sits inside its core, on a pixel with no background among its neighbours
        Assert.All(cores, k => Assert.True(k.Bits[k.Click.Y * 9 + k.Click.X]));
        Assert.Contains((cores[0].Click.X, cores[0].Click.Y), new[] { (1, 1), (2, 1), (1, 2), (2, 2) });
        Assert.Equal(3, GlyphInstances.Cores(c, core, minArea: 1).Count);

        // Shared out along the strokes: every own pixel goes to one of the two; the lighter column and the tail below it
        // to the core that reaches them first (reading order), so the split is exact and deterministic.
        var glyphs = GlyphInstances.Split(c, own, cores.Select(k => k with { Score = 0.5f }).ToList(), minArea: 2);
        Assert.Equal(2, glyphs.Count);
        Assert.Equal(own.Count(b => b), glyphs.Sum(g => g.Area));
        Assert.Equal("#####....|#####....|#####....|#####....|....#....|....#....", Render(glyphs.Single(g => g.Bits[0]), c));
    }

    [Fact]
    public void ClicksSitOnStrokesOneEverySpacing()
    {
        // A 1-px vertical hairline: cells of 3 rows, the pixel nearest each cell's centre (all equally deep).
        var (line, lineOwn) = Candidate(5, 7, Enumerable.Repeat("#", 10).ToArray());
        Assert.Equal(new[] { (5, 8), (5, 11), (5, 14), (5, 16) }, GlyphInstances.SampleClicks(line, lineOwn, 3, 16));
        // Capped: spacing grows until at most 3 clicks remain.
        Assert.True(GlyphInstances.SampleClicks(line, lineOwn, 1, 3).Count <= 3);
        // A filled 5x5 square, one cell: its deepest pixel, the centre.
        var (sq, sqOwn) = Candidate(0, 0, "#####", "#####", "#####", "#####", "#####");
        Assert.Equal(new[] { (2, 2) }, GlyphInstances.SampleClicks(sq, sqOwn, 5, 4));
        // A ring: no click lands in the hole.
        var (ring, ringOwn) = Candidate(0, 0, "#####", "#...#", "#...#", "#...#", "#####");
        Assert.All(GlyphInstances.SampleClicks(ring, ringOwn, 2, 99), p => Assert.True(ringOwn[p.Y * 5 + p.X]));
    }

    [Fact]
    public void WindowsTakeTheClicksThatFitWithAMargin()
    {
        var cands = new List<GlyphCandidate> { new(0, 100, 100, 140, 119, [1], 400), new(1, 300, 100, 310, 105, [2], 30) };
        var clicks = new List<GlyphClick>
        {
            new(0, 100, 110, 100), // seed: window x = 100 - 20 = 80, y = 110 - 50 = 60 → inner [100, 159] × [80, 139]
            new(0, 159, 110, 100), // inside
            new(0, 160, 110, 100), // one past the inner region → its own window
            new(1, 120, 110, 40),  // inside, but its window would be less than half the side → its own window
        };
        var windows = GlyphInstances.PlanWindows(clicks, cands, 1000, 1000);
        Assert.Equal(3, windows.Count);
        Assert.Equal((80, 60, 100), (windows[0].X, windows[0].Y, windows[0].Side));
        Assert.Equal(new[] { 0, 1 }, windows[0].Clicks);
        Assert.Equal(4, windows.Sum(wi => wi.Clicks.Count));
        // At the sheet border no margin is needed: the window is clamped and still takes the click at x = 0.
        var edge = GlyphInstances.PlanWindows([new GlyphClick(0, 0, 110, 100), new GlyphClick(0, 2, 110, 100)], cands, 1000, 1000);
        Assert.Single(edge);
        Assert.Equal(0, edge[0].X);
    }
}
