using TorchSam2.Checkpoints;
using TorchSam2.Glyphs;
using TorchSam2.Training;
using Xunit;
using static TorchSharp.torch;

namespace TorchSam2.Tests.Glyphs;

public class GlyphCentresTests
{
    [Fact]
    public void TargetsPeakAtEachGlyphsCentreAndOffsetsPointThere()
    {
        // A: 4×6 at (2, 2); B: 2×2 inside A at (3, 3) (the smaller glyph owns the overlap); C: 3×3 at (12, 2)
        var glyphs = new List<GlyphAnnotation>
        {
            new(1, "A", "f", 8, GlyphTestUtil.Square(2, 2, 4, 6)),
            new(2, "B", "f", 8, GlyphTestUtil.Square(3, 3, 2, 2)),
            new(3, "C", "f", 8, GlyphTestUtil.Square(12, 2, 3, 3)),
        };
        int w = 20, h = 12;
        var (heat, dx, dy, weight, fg) = GlyphCentres.Targets(h, w, glyphs);
        // A's centre (3.5, 4.5) rounds to pixel (4, 5); C's (13, 3) is a pixel
        Assert.Equal(1f, heat[5 * w + 4]);
        Assert.Equal(1f, heat[3 * w + 13]);
        // B's centre (3.5, 3.5) rounds to (4, 4): three positives in all
        Assert.Equal(1f, heat[4 * w + 4]);
        Assert.Equal(3, heat.Count(v => v == 1f));
        // sigma 0.75 (a tenth of 4 is less): one pixel off C's centre is exp(-1 / 1.125)
        Assert.Equal(Math.Exp(-1 / 1.125), heat[3 * w + 14], 5);
        Assert.Equal(0f, heat[11 * w + 19]);
        // A's corner pixel points to A's centre, in units of 16 px
        Assert.Equal((3.5f - 2) / 16, dx[2 * w + 2], 6);
        Assert.Equal((4.5f - 2) / 16, dy[2 * w + 2], 6);
        Assert.Equal(1 / Math.Sqrt(24), weight[2 * w + 2], 6);
        // the overlap belongs to B (centre (3.5, 3.5))
        Assert.Equal((3.5f - 3) / 16, dx[3 * w + 3], 6);
        Assert.Equal(1 / Math.Sqrt(4), weight[3 * w + 3], 6);
        // one pixel of halo joins the glyph it borders; two pixels out is nothing
        Assert.Equal((3.5f - 1) / 16, dx[2 * w + 1], 6);
        Assert.Equal((13f - 15) / 16, dx[3 * w + 15], 6);
        Assert.Equal(0f, weight[3 * w + 17]);
        Assert.Equal(0f, weight[10 * w + 10]);
        // the foreground is the masks themselves, without the halo
        Assert.Equal(24 + 9, fg.Count(v => v == 1f));
        Assert.Equal(1f, fg[2 * w + 2]);
        Assert.Equal(0f, fg[2 * w + 1]);
    }

    [Fact]
    public void VotesJoinTheCentreNearestToThem()
    {
        int w = 24, h = 10;
        var heat = new float[h * w];
        var dx = new float[h * w];
        var dy = new float[h * w];
        var ink = new bool[h * w];
        // two glyphs side by side that touch at x = 11 | 12, hills at (5, 5) and (17, 5); two more peaks at (20, 1) and
        // (22, 1) that no pixel votes for
        void Hill(int cx, int cy, float top)
        {
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    heat[y * w + x] = Math.Max(heat[y * w + x], top * (float)Math.Exp(-((x - cx) * (x - cx) + (y - cy) * (y - cy)) / 2.0));
        }
        Hill(5, 5, 1);
        Hill(17, 5, 0.9f);
        heat[1 * w + 20] = 0.9f;
        heat[1 * w + 21] = 0.8f;
        heat[1 * w + 22] = 0.9f;
        for (int y = 3; y < 8; y++)
            for (int x = 1; x < 22; x++)
            {
                int i = y * w + x;
                ink[i] = true;
                // the net's offsets, one pixel off at most
                dx[i] = (x < 12 ? 5 : 17) - x + (x % 3 - 1) * 0.6f;
                dy[i] = 5 - y;
            }
        var peaks = GlyphCentres.Peaks(heat, h, w, 0.3f);
        Assert.Equal([(5, 5), (17, 5), (20, 1), (22, 1)], peaks.Select(p => (p.X, p.Y)).Order().ToArray());
        Assert.Equal((5, 5), (peaks[0].X, peaks[0].Y)); // strongest first
        var label = GlyphCentres.Assign(ink, dx, dy, h, w, peaks);
        int left = label[5 * w + 1], right = label[5 * w + 21];
        Assert.NotEqual(left, right);
        for (int y = 3; y < 8; y++)
            for (int x = 1; x < 22; x++)
                Assert.Equal(x < 12 ? left : right, label[y * w + x]);
        Assert.Equal(-1, label[0]);
        // without offsets every pixel is its own vote: it joins the nearest peak
        var tops = new bool[h * w];
        tops[1 * w + 20] = tops[1 * w + 22] = tops[1 * w + 19] = tops[0 * w + 23] = true;
        var topLabels = GlyphCentres.Assign(tops, new float[h * w], new float[h * w], h, w, peaks);
        int a = peaks.FindIndex(p => p.X == 20 && p.Y == 1), b = peaks.FindIndex(p => p.X == 22 && p.Y == 1);
        Assert.Equal([a, a, b, b], new[] { topLabels[1 * w + 20], topLabels[1 * w + 19], topLabels[1 * w + 22], topLabels[0 * w + 23] });
    }

    [Fact]
    public void ASmallCentreIsAGlyphWhenItsInkStandsAlone()
    {
        int w = 16, h = 8;
        var label = Enumerable.Repeat(-1, h * w).ToArray();
        // glyph 0: a 3×5 letter at x 1..3; glyph 1: two pixels touching it diagonally at (4, 6), (5, 6) (a stray peak on
        // its ink); glyph 2: a one-pixel full stop at (8, 6); glyph 3: two pixels at (11, 2), (11, 4) touching only glyph
        // 4, one pixel at (12, 3), which is under the area limit too
        for (int y = 1; y < 6; y++)
            for (int x = 1; x < 4; x++)
                label[y * w + x] = 0;
        label[6 * w + 4] = label[6 * w + 5] = 1;
        label[6 * w + 8] = 2;
        label[2 * w + 11] = label[4 * w + 11] = 3;
        label[3 * w + 12] = 4;
        var boxes = GlyphCentres.Boxes(label, w);
        Assert.Equal(15, boxes[0].Area);
        Assert.Equal((4, 6, 5, 6, 2L), boxes[1]);
        Assert.Equal([0, 2, 3, 4], GlyphCentres.Glyphs(label, w, h, boxes, 3).Order().ToArray());
        // with no area limit every centre is a glyph; with one above every label's area no label has a larger one to give
        // its pixels to, so all stay
        Assert.Equal([0, 1, 2, 3, 4], GlyphCentres.Glyphs(label, w, h, boxes, 1).Order().ToArray());
        Assert.Equal([0, 1, 2, 3, 4], GlyphCentres.Glyphs(label, w, h, boxes, 16).Order().ToArray());
    }

    [Fact]
    public void VotesAreMeasuredAsPredictedToPeaksPlacedBetweenPixels()
    {
        int w = 20, h = 16;
        var heat = new float[h * w];
        // peak A at (10, 10), its right neighbour higher than its left: the parabola's top is a third of a pixel right
        // (0.5 · (0.9 − 0.5) / (2 − 0.5 − 0.9)); peak B at (13, 12), symmetric, stays put
        heat[10 * w + 10] = 1; heat[10 * w + 9] = 0.5f; heat[10 * w + 11] = 0.9f; heat[9 * w + 10] = 0.6f; heat[11 * w + 10] = 0.6f;
        heat[12 * w + 13] = 0.95f; heat[12 * w + 12] = 0.5f; heat[12 * w + 14] = 0.5f;
        var peaks = GlyphCentres.Peaks(heat, h, w, 0.7f);
        Assert.Equal([(10, 10), (13, 12)], peaks.Select(p => (p.X, p.Y)).ToArray());
        var c = GlyphCentres.SubPixel(heat, h, w, peaks);
        Assert.Equal(10 + 1f / 3, c[0].X, 5);
        Assert.Equal(10f, c[0].Y, 5);
        Assert.Equal((13f, 12f), c[1]);

        // one pixel at (11, 11) voting (0.4, 0.4) px away, at (11.4, 11.4): rounded to (11, 11) it is one chessboard
        // step from A and two from B, but B is nearer (1.71 px against 1.98)
        var members = new bool[h * w];
        members[11 * w + 11] = true;
        var dx = new float[h * w];
        var dy = new float[h * w];
        dx[11 * w + 11] = dy[11 * w + 11] = 0.4f;
        Assert.Equal(1, GlyphCentres.Assign(members, dx, dy, h, w, peaks)[11 * w + 11]);
        // a vote at (11.6, 11) is 1.89 px from A's pixel but 1.61 px from A's top at x = 10.33, against 1.72 px from B
        dx[11 * w + 11] = 0.6f; dy[11 * w + 11] = 0;
        Assert.Equal(1, GlyphCentres.Assign(members, dx, dy, h, w, peaks)[11 * w + 11]);
        Assert.Equal(0, GlyphCentres.Assign(members, dx, dy, h, w, peaks, heat)[11 * w + 11]);
        // a vote far from every peak (more than 8 px) still joins the nearest
        dx[11 * w + 11] = -10; dy[11 * w + 11] = -10;
        Assert.Equal(0, GlyphCentres.Assign(members, dx, dy, h, w, peaks, heat)[11 * w + 11]);
    }

    [Fact]
    public void ASecondReadingIsBroughtBackToTheSheetsGrid()
    {
        // A net whose answer is its head's bias everywhere: heat sigmoid(0) = 0.5, offsets (0.5, -0.25) × 16 px, foreground on.
        using var net = new GlyphCentreNet([4, 4, 4, 4, 4]);
        using (no_grad())
        {
            foreach (var p in net.parameters()) p.zero_();
            var bias = net.named_parameters().Single(kv => kv.name == "head.bias").parameter;
            bias[1].fill_(0.5f);
            bias[2].fill_(-0.25f);
            net.named_parameters().Single(kv => kv.name == "fg_head.bias").parameter.fill_(1f);
        }
        net.eval();
        int h = 40, w = 60;
        var input = new float[h * w];
        var (heat, dx, dy, fg) = GlyphCentres.Predict(net, input, h, w);
        Assert.All(heat, v => Assert.Equal(0.5f, v));
        Assert.All(dx, v => Assert.Equal(8f, v));
        Assert.All(dy, v => Assert.Equal(-4f, v));
        Assert.All(fg!, Assert.True);

        // one 12-px-tall blob (a constant heatmap peaks once, so the blob is one glyph, box x 5..10, y 3..14)
        var members = new bool[h * w];
        for (int y = 3; y <= 14; y++)
            for (int x = 5; x <= 10; x++) members[y * w + x] = true;
        Assert.Equal(0, GlyphCentres.ReadSmallTextAgain(net, input, h, w, members, 0.2f, 2, maxHeight: 11, heat, dx, dy, fg));
        Assert.All(dx, v => Assert.Equal(8f, v));
        // read again at 2×: the same heat and foreground, offsets half as many sheet pixels, and only inside the box
        Assert.Equal(6 * 12, GlyphCentres.ReadSmallTextAgain(net, input, h, w, members, 0.2f, 2, maxHeight: 12, heat, dx, dy, fg));
        for (int i = 0; i < h * w; i++)
        {
            bool inBox = members[i];
            Assert.Equal(inBox ? 4f : 8f, dx[i]);
            Assert.Equal(inBox ? -2f : -4f, dy[i]);
        }
        Assert.All(heat, v => Assert.Equal(0.5f, v));
        Assert.All(fg!, Assert.True);
    }

    [Fact]
    public void SmallCondensedTextPartsWhenReadAgainMagnified()
    {
        // Held-out fonts at 8-16 px, condensed to 0.6-0.8 of their width: the embedded net alone (ink, centres, votes;
        // no SAM), read once and with the small glyphs read again at 1.5x.
        var (sheet, gt) = SpecimenGenerator.Generate(SpecimenOptions.Crowded with
        {
            Width = 384, Height = 256, Split = FontSplit.HeldOut, MinSizePx = 8, MaxSizePx = 16, MinWidthScale = 0.6, MaxWidthScale = 0.8,
        }, 3);
        var ink = GlyphSegmenter.FindInk(sheet);
        var net = GlyphCentreNet.Embedded();
        var input = GlyphCentres.Input(ink);
        var truth = gt.Select(g => g.Mask).ToList();
        GlyphEvalResult Read(double zoom)
        {
            var (heat, dx, dy, _) = GlyphCentres.Predict(net, input, ink.Height, ink.Width);
            if (zoom > 1) GlyphCentres.ReadSmallTextAgain(net, input, ink.Height, ink.Width, ink.Ink, 0.2f, zoom, 16, heat, dx, dy, null);
            var label = GlyphCentres.Assign(ink.Ink, dx, dy, ink.Height, ink.Width, GlyphCentres.Peaks(heat, ink.Height, ink.Width, 0.2f), heat);
            var masks = label.Where(l => l >= 0).Distinct().Select(l => GlyphMask.FromFull(label.Select(v => v == l).ToArray(), ink.Height, ink.Width)).ToList();
            return GlyphEval.Evaluate(ink.Height, ink.Width, truth, masks);
        }
        var once = Read(1);
        var twice = Read(1.5);
        Console.WriteLine($"{truth.Count} glyphs\nonce:  {once}\n1.5x:  {twice}");
        // measured on these 832 glyphs: recall@0.5 0.838 -> 0.886, glyph IoU 0.760 -> 0.797, precision 0.936 -> 0.927
        // (votes rounded, as before: 0.829 -> 0.870, 0.749 -> 0.789; the 4-sitting net: 0.823 -> 0.861, 0.740 -> 0.780)
        Assert.True(twice.Recall50 >= once.Recall50 + 0.03 && twice.MeanGlyphIoU >= once.MeanGlyphIoU + 0.03, $"once {once}, 1.5x {twice}");
        Assert.True(twice.Precision50 >= 0.9, $"1.5x {twice}");
    }

    [Fact]
    public void ExtraTrainingStylesSetLigatureRunsAsLettersAndSmallText()
    {
        var o = new GlyphCentreTrainingOptions { SheetSize = 512, CropSize = 192 };
        Assert.Equal(3, GlyphCentreTraining.Styles(o).Length);
        var styles = GlyphCentreTraining.Styles(o with { UnligatedCrowded = true });
        Assert.Equal(4, styles.Length);
        Assert.True(styles[1].Ligatures);
        Assert.Equal(styles[1] with { Ligatures = false }, styles[3]);
        // the same sheets shaped both ways: ligature glyphs in one (a dozen a sheet), every character its own glyph in
        // the other
        int ligatures = 0;
        for (int seed = 1; seed <= 4; seed++)
        {
            var (_, ligated) = SpecimenGenerator.Generate(styles[1], seed);
            var (_, unligated) = SpecimenGenerator.Generate(styles[3], seed);
            ligatures += ligated.Count(g => g.IsLigature);
            Assert.DoesNotContain(unligated, g => g.IsLigature);
            Assert.True(unligated.Count >= ligated.Count, $"seed {seed}: {unligated.Count} glyphs unligated, {ligated.Count} ligated");
        }
        Assert.True(ligatures >= 10, $"{ligatures} ligatures on 4 crowded sheets");

        // small crowded sheets: the crowded style at 8-24 px, after the unligated one when both are asked for
        var both = GlyphCentreTraining.Styles(o with { UnligatedCrowded = true, SmallCrowded = true });
        Assert.Equal(5, both.Length);
        Assert.Equal(styles[3], both[3]);
        Assert.Equal(styles[1] with { MaxSizePx = 24 }, both[4]);
        var (_, small) = SpecimenGenerator.Generate(both[4], 1);
        Assert.All(small, g => Assert.InRange(g.SizePx, 8, 24));
    }

    [Fact]
    public void TheNetSavesAndLoadsExactlyAndRefusesOtherShapes()
    {
        var dir = Directory.CreateTempSubdirectory("centres").FullName;
        try
        {
            using var net = new GlyphCentreNet([4, 4, 8, 8, 8]);
            net.eval();
            using var x = rand(1, 1, 32, 48);
            using var y = net.call(x);
            Assert.Equal([1L, 4, 32, 48], y.shape);
            // the heatmap starts near CenterNet's prior of 0.01, not at 0.5
            using (var p = sigmoid(y[0, 0])) Assert.True(p.mean().item<float>() < 0.05f);
            var path = Path.Combine(dir, "c.safetensors");
            net.Save(path);
            using var back = GlyphCentreNet.Load(path);
            Assert.Equal([4, 4, 8, 8, 8], back.Channels);
            using var y2 = back.call(x);
            Assert.Equal(0f, (y - y2).abs().max().item<float>());

            // weights for other widths under this file's widths: the loader names the key and both shapes
            using var other = new GlyphCentreNet([8, 4, 8, 8, 8]);
            var recs = Sam2Trainer.StateRecords(other);
            var wrong = Path.Combine(dir, "wrong.safetensors");
            SafeTensors.Write(wrong, recs, new Dictionary<string, string> { ["channels"] = "4,4,8,8,8" });
            var e = Assert.ThrowsAny<Exception>(() => GlyphCentreNet.Load(wrong));
            Assert.Contains("down.0.0.weight", e.Message);
            // weights without a foreground head load as a three-channel net, or with a fresh head for training on
            using var three = new GlyphCentreNet([4, 4, 8, 8, 8], foreground: false);
            var old = Path.Combine(dir, "three.safetensors");
            three.Save(old);
            using (var a = GlyphCentreNet.Load(old)) Assert.False(a.HasForeground);
            using (var b = GlyphCentreNet.Load(old, foreground: true)) Assert.True(b.HasForeground);
            var bad = Path.Combine(dir, "bad.safetensors");
            SafeTensors.Write(bad, recs, new Dictionary<string, string> { ["channels"] = "8,4,x" });
            Assert.Contains("bad channels", Assert.Throws<CheckpointException>(() => GlyphCentreNet.Load(bad)).Message);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void AWidenedNetComputesWhatTheNarrowOneDidAndCanLearnMore()
    {
        manual_seed(11);
        using var net = new GlyphCentreNet([4, 4, 8, 8, 8]);
        // trained-looking weights: random biases and BatchNorm statistics, so a wrong copy shows
        using (no_grad())
            foreach (var (_, t) in net.state_dict())
                if (t.is_floating_point()) t.copy_(randn_like(t) * 0.3 + (t.dim() == 1 ? 1 : 0));
        net.eval();
        using var x = rand(2, 1, 32, 48);
        using var y = net.call(x);
        using var wide = net.Widen([8, 4, 12, 8, 8]);
        wide.eval();
        Assert.Equal([8, 4, 12, 8, 8], wide.Channels);
        using var y2 = wide.call(x);
        Assert.True((y - y2).abs().max().item<float>() < 1e-5f, "widening keeps the answer");
        // the new channels are live: what reads them gets a gradient
        wide.train();
        using var loss = wide.call(x).square().sum();
        loss.backward();
        var head = wide.named_parameters().First(p => p.name == "head.weight").parameter;
        using (var g = head.grad![.., 4..]) Assert.True(g.abs().max().item<float>() > 0);
        Assert.Throws<ArgumentException>(() => net.Widen([2, 4, 8, 8, 8]));
        Assert.Throws<ArgumentException>(() => net.Widen([8, 8, 8, 8]));
    }

    [Fact]
    public void TrainingLowersTheLossOnGeneratedSheets()
    {
        // a few steps on one repeated batch: the loss must fall (the real training is tools/glyph_demo.sh)
        var o = new GlyphCentreTrainingOptions { BatchSize = 2, CropSize = 64, SheetSize = 256, CropsPerSheet = 2, Seed = 3 };
        var batches = new GlyphCentreTraining.Batches(o);
        var (x, heat, dx, dy, w, fg) = batches.Next();
        // seeded as Train seeds it: from unseeded weights, 4 of 40 inits fell by less than 0.7 in 30 steps (a CI run
        // failed so); this seed's falls to 0.40
        manual_seed(o.Seed);
        using var net = new GlyphCentreNet([4, 4, 8, 8, 8]);
        net.train();
        using var opt = optim.AdamW(net.parameters(), lr: 5e-3);
        double first = 0, last = 0;
        for (int i = 0; i < 30; i++)
        {
            opt.zero_grad();
            var (loss, _, _) = GlyphCentreTraining.Loss(net.call(x), heat, dx, dy, w, fg, o.OffsetWeight);
            if (i == 0) first = loss.item<float>();
            last = loss.item<float>();
            loss.backward();
            opt.step();
            loss.Dispose();
        }
        Assert.True(last < 0.7 * first, $"loss {first} -> {last}");
        Assert.Equal([2L, 1, 64, 64], x.shape);
        Assert.True(w.sum().item<float>() > 0, "the crops hold glyphs");
    }
}
