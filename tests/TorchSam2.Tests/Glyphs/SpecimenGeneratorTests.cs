using TorchSam2.Glyphs;
using TorchSam2.IO;

namespace TorchSam2.Tests.Glyphs;

public class SpecimenGeneratorTests
{
    private static readonly SpecimenOptions Small = new() { Width = 384, Height = 320, MaxSizePx = 90 };

    [Theory]
    [InlineData(1, SpecimenLayout.Lines)]
    [InlineData(2, SpecimenLayout.Grid)]
    [InlineData(3, SpecimenLayout.Mixed)]
    public void MasksAndBoxesAreExactlyConsistent(int seed, SpecimenLayout layout)
    {
        var (sheet, glyphs) = SpecimenGenerator.Generate(Small with { Layout = layout }, seed);
        Assert.Equal((320, 384), (sheet.Height, sheet.Width));
        Assert.NotEmpty(glyphs);
        Assert.Equal(Enumerable.Range(1, glyphs.Count), glyphs.Select(g => g.Id));
        foreach (var g in glyphs)
        {
            var m = g.Mask;
            long count = m.Bits.LongCount(b => b);
            Assert.True(count > 0);
            Assert.Equal(count, g.Area);
            // Stored tight: bbox = the mask's own box, and every border row/column has a set pixel.
            Assert.Equal((m.X, m.Y, m.Width, m.Height), g.BBox);
            Assert.Contains(true, m.Bits.Take(m.Width));
            Assert.Contains(true, m.Bits.Skip((m.Height - 1) * m.Width));
            Assert.Contains(true, Enumerable.Range(0, m.Height).Select(r => m.Bits[r * m.Width]));
            Assert.Contains(true, Enumerable.Range(0, m.Height).Select(r => m.Bits[r * m.Width + m.Width - 1]));
            Assert.True(m.X >= 0 && m.Y >= 0 && m.X + m.Width <= sheet.Width && m.Y + m.Height <= sheet.Height);
            Assert.InRange(g.SizePx, Small.MinSizePx, Small.MaxSizePx);
            Assert.Equal(1, g.Char.Length);
            Assert.False(char.IsWhiteSpace(g.Char[0]));
            Assert.Equal(FontSplit.Train, FontRegistry.Get(g.Font).Split);
            // RLE round trip keeps the pixels.
            var rle = m.ToRle(sheet.Height, sheet.Width);
            Assert.Equal(count, rle.Area());
            var back = GlyphMask.FromRle(rle);
            Assert.Equal((m.X, m.Y, m.Width, m.Height), (back.X, back.Y, back.Width, back.Height));
            Assert.Equal(m.Bits, back.Bits);
        }
    }

    [Fact]
    public void MaskPixelsAreInkOnTheSheet()
    {
        // Clean sheet, grey levels only: coverage ≥ 0.5 puts a pixel at least half way from paper to ink.
        var opts = Small with { ColorJitter = false, InvertProbability = 0 };
        var (sheet, glyphs) = SpecimenGenerator.Generate(opts, 11);
        var px = sheet.Pixels;
        int bg = px.Max(), fg = px.Min();
        foreach (var g in glyphs)
            for (int r = 0; r < g.Mask.Height; r++)
                for (int c = 0; c < g.Mask.Width; c++)
                    if (g.Mask.Bits[r * g.Mask.Width + c])
                    {
                        int v = px[((g.Mask.Y + r) * sheet.Width + g.Mask.X + c) * 3];
                        Assert.True(v <= (bg + fg) / 2.0 + 1, $"glyph {g.Id} '{g.Char}' pixel value {v}, paper {bg}, ink {fg}");
                    }
    }

    [Theory]
    [InlineData(11, SpecimenLayout.Lines)]
    [InlineData(12, SpecimenLayout.Grid)]
    [InlineData(13, SpecimenLayout.Lines)]
    public void InkPixelsBelongToAGlyph(int seed, SpecimenLayout layout)
    {
        // The converse of MaskPixelsAreInkOnTheSheet: a pixel clearly past half way to ink is in some glyph's mask.
        // The only exception is two glyphs each under the threshold adding up to ink where they overlap: rare.
        var opts = Small with { ColorJitter = false, InvertProbability = 0, Layout = layout };
        var (sheet, glyphs) = SpecimenGenerator.Generate(opts, seed);
        var px = sheet.Pixels;
        int bg = px.Max(), fg = px.Min();
        var owned = new bool[sheet.Width * sheet.Height];
        foreach (var g in glyphs)
            for (int r = 0; r < g.Mask.Height; r++)
                for (int c = 0; c < g.Mask.Width; c++)
                    if (g.Mask.Bits[r * g.Mask.Width + c]) owned[(g.Mask.Y + r) * sheet.Width + g.Mask.X + c] = true;
        int ink = 0, orphans = 0;
        for (int i = 0; i < owned.Length; i++)
        {
            if (px[3 * i] >= (bg + fg) / 2.0 - 1) continue;
            ink++;
            if (!owned[i]) orphans++;
        }
        Assert.True(ink > 1000);
        Assert.True(orphans <= ink / 2000, $"{orphans} of {ink} ink pixels belong to no glyph");
    }

    [Fact]
    public void LinesAreKerned()
    {
        // DejaVu Sans kerns A-V by 0.064 em: without tracking the V's ink starts left of where the A's ends.
        var opts = Small with { Fonts = ["DejaVuSans"], Text = "AVAVAV", MaxTracking = 0, MinSizePx = 24, Layout = SpecimenLayout.Lines };
        var (_, glyphs) = SpecimenGenerator.Generate(opts, 3);
        var pairs = glyphs.Zip(glyphs.Skip(1)).Where(p => p.First.Char == "A" && p.Second.Char == "V" && p.First.BBox.y == p.Second.BBox.y).ToList();
        Assert.NotEmpty(pairs);
        foreach (var (a, v) in pairs)
            Assert.True(v.BBox.x < a.BBox.x + a.BBox.w, $"A {a.BBox} V {v.BBox} at {a.SizePx} px");
    }

    [Fact]
    public void LigaturesAreOneAnnotationOnlyWhenAskedFor()
    {
        var opts = Small with { Fonts = ["DejaVuSans"], Text = "office fifty", Layout = SpecimenLayout.Lines, MinSizePx = 16, MaxSizePx = 40 };
        var (_, plain) = SpecimenGenerator.Generate(opts, 4);
        Assert.All(plain, g => Assert.Equal(1, g.Char.Length));
        Assert.StartsWith("officefifty", string.Concat(plain.Select(g => g.Char)));
        var (_, lig) = SpecimenGenerator.Generate(opts with { Ligatures = true }, 4);
        // DejaVu Sans has 'ffi' and 'fi' ligatures: each is one glyph, one mask, one annotation for its characters.
        Assert.StartsWith("o|ffi|c|e|fi|f|t|y|", string.Concat(lig.Select(g => g.Char + "|")));
    }

    [Fact]
    public void NegativeTrackingMakesLettersTouchAndKeepsEachMaskExact()
    {
        var open = Small with { Fonts = ["DejaVuSerif"], Text = "rnmvvwABC", Layout = SpecimenLayout.Lines, MinSizePx = 40, MaxSizePx = 40, MinTracking = 0.25, MaxTracking = 0.25, MinLineGap = 1, MaxLineGap = 1 };
        var (sheetOpen, glyphsOpen) = SpecimenGenerator.Generate(open, 5);
        var (sheetTight, glyphsTight) = SpecimenGenerator.Generate(open with { MinTracking = -0.12, MaxTracking = -0.12 }, 5);
        // Same glyphs (one line, repeated), same masks up to their position.
        Assert.Equal(glyphsOpen.Take(9).Select(g => g.Char), glyphsTight.Take(9).Select(g => g.Char));
        Assert.Equal(glyphsOpen[0].Mask.Bits, glyphsTight[0].Mask.Bits);
        // Open: every letter is its own ink component; tight: neighbours merge into fewer candidates than letters.
        Assert.Equal(glyphsOpen.Count, GlyphSegmenter.FindCandidates(sheetOpen).Count);
        int tightCands = GlyphSegmenter.FindCandidates(sheetTight).Count;
        Assert.True(tightCands * 3 < glyphsTight.Count * 2, $"{tightCands} candidates for {glyphsTight.Count} touching glyphs");
        // Touching means masks of neighbours share a border or pixels, as they must when ink merges.
        Assert.Contains(glyphsTight.Zip(glyphsTight.Skip(1)), p => p.Second.BBox.x <= p.First.BBox.x + p.First.BBox.w);
    }

    [Fact]
    public void AWidthScaleSetsCondensedLinesWithExactMasks()
    {
        var plain = Small with { Fonts = ["DejaVuSerif"], Text = "HOnm", Layout = SpecimenLayout.Lines, MinSizePx = 40, MaxSizePx = 40, MinTracking = 0, MaxTracking = 0 };
        var (_, wide) = SpecimenGenerator.Generate(plain, 5);
        var (sheet, narrow) = SpecimenGenerator.Generate(plain with { MinWidthScale = 0.6, MaxWidthScale = 0.6 }, 5);
        // the same letters, 0.6 as wide and as far apart, as tall; more of them fit a line
        Assert.Equal(wide.Take(4).Select(g => g.Char), narrow.Take(4).Select(g => g.Char));
        Assert.True(narrow.Count > wide.Count, $"{narrow.Count} condensed glyphs against {wide.Count}");
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal(wide[i].BBox.h, narrow[i].BBox.h);
            Assert.InRange(narrow[i].BBox.w, 0.6 * wide[i].BBox.w - 1.5, 0.6 * wide[i].BBox.w + 1.5);
        }
        Assert.InRange(narrow[3].BBox.x - narrow[0].BBox.x, 0.6 * (wide[3].BBox.x - wide[0].BBox.x) - 1.5, 0.6 * (wide[3].BBox.x - wide[0].BBox.x) + 1.5);
        // masks stay each glyph's own coverage on the sheet
        foreach (var g in narrow.Take(4))
            Assert.Contains(Enumerable.Range(0, g.Mask.Height * g.Mask.Width), i => g.Mask.Bits[i] && sheet.Pixels[3 * ((g.Mask.Y + i / g.Mask.Width) * sheet.Width + g.Mask.X + i % g.Mask.Width)] < 128);
        Assert.Throws<ArgumentException>(() => SpecimenGenerator.Generate(plain with { MinWidthScale = 0.9, MaxWidthScale = 0.8 }, 1));
        Assert.Throws<ArgumentException>(() => SpecimenGenerator.Generate(plain with { MinWidthScale = double.NaN }, 1));
    }

    [Fact]
    public void TightLeadingStacksLinesIntoEachOther()
    {
        var opts = Small with { Fonts = ["LiberationSerif-Regular"], Text = "gjpqy Tfhkl", Layout = SpecimenLayout.Lines, MinSizePx = 30, MaxSizePx = 30, MinLineGap = -0.3, MaxLineGap = -0.3, MaxTracking = 0 };
        var (_, glyphs) = SpecimenGenerator.Generate(opts, 6);
        // Descenders of line n reach below the tops of line n+1's ascenders.
        var g1 = glyphs.Where(g => g.Char is "g" or "j" or "p" or "q" or "y").ToList();
        var asc = glyphs.Where(g => g.Char is "T" or "f" or "h" or "k" or "l").ToList();
        Assert.Contains(g1, d => asc.Any(a => a.Mask.Y > d.Mask.Y && a.Mask.Y < d.Mask.Y + d.Mask.Height));
        // With open leading they do not.
        var (_, open) = SpecimenGenerator.Generate(opts with { MinLineGap = 0.3, MaxLineGap = 0.3 }, 6);
        var d2 = open.Where(g => g.Char is "g" or "j" or "p" or "q" or "y").ToList();
        var a2 = open.Where(g => g.Char is "T" or "f" or "h" or "k" or "l").ToList();
        Assert.DoesNotContain(d2, d => a2.Any(a => a.Mask.Y > d.Mask.Y && a.Mask.Y < d.Mask.Y + d.Mask.Height));
    }

    [Fact]
    public void CrowdedSheetsMarkLigaturesAndBlurOnlyThePixels()
    {
        var opts = SpecimenOptions.Crowded with { Width = 384, Height = 384, Split = FontSplit.HeldOut };
        var (sharp, g1) = SpecimenGenerator.Generate(opts with { BlurProbability = 0 }, 9);
        var (soft, g2) = SpecimenGenerator.Generate(opts with { BlurProbability = 1 }, 9);
        Assert.Equal(g1.Count, g2.Count);
        Assert.Equal(g1.Select(g => g.Mask.Bits.Length), g2.Select(g => g.Mask.Bits.Length));
        Assert.NotEqual(sharp.Pixels, soft.Pixels);
        Assert.All(g1, g => Assert.InRange(g.SizePx, 8, 120));
        // A ligature is one annotation for several characters, and says so in the COCO attributes.
        var (_, lig) = SpecimenGenerator.Generate(Small with { Fonts = ["DejaVuSans"], Text = "office", Layout = SpecimenLayout.Lines, MinSizePx = 30, MaxSizePx = 30, Ligatures = true }, 4);
        var ffi = lig.First(g => g.Char == "ffi");
        Assert.True(ffi.IsLigature);
        Assert.False(lig.First(g => g.Char == "o").IsLigature);
        var coco = new GlyphCoco();
        coco.Images.Add(new CocoImage(1, "a.png", 320, 384));
        coco.Annotations.Add(new CocoGlyph(1, 1, ffi.Mask.ToRle(320, 384), null, "DejaVuSans", ffi.Char, 30));
        var attrs = coco.ToJson()["annotations"]![0]!["attributes"]!;
        Assert.True((bool)attrs["ligature"]!);
        Assert.Equal("regular", (string)attrs["style"]!);
    }

    [Theory]
    [InlineData("Lato-HairlineItalic", "hairline italic")]
    [InlineData("Lato-Hairline", "hairline")]
    [InlineData("Roboto-Thin", "hairline")]
    [InlineData("DejaVuSans-ExtraLight", "hairline")]
    [InlineData("NimbusRoman-Italic", "italic")]
    [InlineData("DejaVuSansCondensed-Oblique", "italic")]
    [InlineData("Z003-MediumItalic", "italic")]
    [InlineData("URWGothic-Demi", "bold")]
    [InlineData("URWBookman-Light", "regular")]
    [InlineData("LiberationMono-Regular", "regular")]
    public void FontStylesComeFromTheFaceName(string font, string style) => Assert.Equal(style, FontRegistry.StyleOf(font));

    [Fact]
    public void HeldOutFontsIncludeHairlineAndItalicFacesAndShareNoFamilyWithTraining()
    {
        var held = FontRegistry.All.Where(f => f.Split == FontSplit.HeldOut).ToList();
        Assert.Contains(held, f => f.Style == "hairline");
        Assert.Contains(held, f => f.Style == "hairline italic");
        Assert.Contains(held, f => f.Style == "italic");
        static string Family(string n) => n.Split('-')[0].Replace("Narrow", "").Replace("Sans", "").Replace("Serif", "").Replace("Mono", "").Replace("PS", "");
        var trainFamilies = FontRegistry.All.Where(f => f.Split == FontSplit.Train).Select(f => Family(f.Name)).ToHashSet();
        Assert.DoesNotContain(held, f => trainFamilies.Contains(Family(f.Name)));
    }

    [Theory]
    [InlineData(-0.6, 0.1, 0, 0.4)]
    [InlineData(0.2, 0.1, 0, 0.4)]
    [InlineData(0, 0.1, -0.7, 0.4)]
    [InlineData(0, 0.1, 0.5, 0.4)]
    public void AbsurdSpacingIsRefused(double minTrack, double maxTrack, double minGap, double maxGap)
    {
        var ex = Assert.Throws<ArgumentException>(() => SpecimenGenerator.Generate(Small with { MinTracking = minTrack, MaxTracking = maxTrack, MinLineGap = minGap, MaxLineGap = maxGap }, 1));
        Assert.Contains("range", ex.Message);
    }

    [Fact]
    public void SameSeedSameSheet()
    {
        var (a, ga) = SpecimenGenerator.Generate(Small with { NoiseStd = 3 }, 42);
        var (b, gb) = SpecimenGenerator.Generate(Small with { NoiseStd = 3 }, 42);
        Assert.Equal(a.Pixels, b.Pixels);
        Assert.Equal(ga.Count, gb.Count);
        for (int i = 0; i < ga.Count; i++)
        {
            Assert.Equal((ga[i].Char, ga[i].Font, ga[i].SizePx, ga[i].BBox), (gb[i].Char, gb[i].Font, gb[i].SizePx, gb[i].BBox));
            Assert.Equal(ga[i].Mask.Bits, gb[i].Mask.Bits);
        }
        var (c, _) = SpecimenGenerator.Generate(Small with { NoiseStd = 3 }, 43);
        Assert.NotEqual(a.Pixels, c.Pixels);
    }

    [Fact]
    public void SplitsShareNoFontFamily()
    {
        static string Family(FontEntry f) => f.Name.Split('-')[0].Replace("Bold", "").Replace("Italic", "").Replace("Narrow", "").Replace("Condensed", "").Replace("Oblique", "").Replace("Mono", "").Replace("Sans", "").Replace("Serif", "");
        var train = FontRegistry.All.Where(f => f.Split == FontSplit.Train).Select(Family).ToHashSet();
        var held = FontRegistry.All.Where(f => f.Split == FontSplit.HeldOut).Select(Family).ToHashSet();
        Assert.Empty(train.Intersect(held));
        Assert.NotEmpty(FontRegistry.Available(FontSplit.Train));
        Assert.NotEmpty(FontRegistry.Available(FontSplit.HeldOut));
        var (_, glyphs) = SpecimenGenerator.Generate(Small with { Split = FontSplit.HeldOut }, 5);
        Assert.All(glyphs, g => Assert.Equal(FontSplit.HeldOut, FontRegistry.Get(g.Font).Split));
    }

    [Fact]
    public void DatasetRoundTripsThroughCocoJson()
    {
        var dir = Path.Combine(Path.GetTempPath(), "torchsam2-tests", "specimens_" + Guid.NewGuid().ToString("N"));
        var written = SpecimenGenerator.WriteDataset(dir, 2, FontSplit.Train, 9, Small);
        var loaded = GlyphCoco.Load(Path.Combine(dir, "annotations.json"));
        Assert.Equal("train", (string?)loaded.Info["split"]);
        Assert.Equal(written.Images, loaded.Images);
        Assert.Equal(written.Annotations.Count, loaded.Annotations.Count);
        for (int i = 0; i < 2; i++)
        {
            var (sheet, glyphs) = SpecimenGenerator.Generate(Small, SpecimenGenerator.SheetSeed(9, i));
            var png = RgbImage.Load(Path.Combine(dir, "images", loaded.Images[i].FileName));
            Assert.Equal(sheet.Pixels, png.Pixels);
            var anns = loaded.Annotations.Where(a => a.ImageId == loaded.Images[i].Id).ToList();
            Assert.Equal(glyphs.Count, anns.Count);
            for (int k = 0; k < glyphs.Count; k++)
            {
                Assert.Equal((glyphs[k].Char, glyphs[k].Font, (int?)glyphs[k].SizePx), (anns[k].Char, anns[k].Font, anns[k].SizePx));
                var m = anns[k].Mask();
                Assert.Equal(glyphs[k].BBox, m.BBox);
                Assert.Equal(glyphs[k].Mask.Bits, m.Bits);
            }
        }
        // The JSON has COCO's fields: bbox XYWH, area and string RLE.
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "annotations.json")));
        var first = doc.RootElement.GetProperty("annotations")[0];
        var bbox = first.GetProperty("bbox").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal(written.Annotations[0].Mask().BBox, (bbox[0], bbox[1], bbox[2], bbox[3]));
        Assert.Equal(written.Annotations[0].Segmentation.Area(), first.GetProperty("area").GetInt64());
        Assert.Equal(System.Text.Json.JsonValueKind.String, first.GetProperty("segmentation").GetProperty("counts").ValueKind);
        Assert.Equal("glyph", doc.RootElement.GetProperty("categories")[0].GetProperty("name").GetString());
        Directory.Delete(dir, true);
    }
}
