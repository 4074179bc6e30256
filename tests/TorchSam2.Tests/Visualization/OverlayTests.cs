using TorchSam2.IO;
using TorchSam2.Visualization;
using Xunit;

namespace TorchSam2.Tests.Visualization;

public class OverlayTests
{
    private const int H = 96, W = 128;

    private static RgbImage Gray(byte v = 100) => new(Enumerable.Repeat(v, H * W * 3).ToArray(), H, W);

    private static bool[] Disk(float cx, float cy, float r)
    {
        var m = new bool[H * W];
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                m[y * W + x] = (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r;
        return m;
    }

    private static byte[] Px(RgbImage im, int x, int y) => im.Pixels.AsSpan((y * W + x) * 3, 3).ToArray();

    [Fact]
    public void TintIsExactInsideAndImageUntouchedFarOutside()
    {
        var image = Gray();
        var before = (byte[])image.Pixels.Clone();
        var o = Overlay.Draw(image, [Disk(64, 48, 30)], alpha: 0.5);
        Assert.Equal(before, image.Pixels); // the input is not drawn on
        // centre: 100·0.5 + (0,114,178)·0.5, rounded half to even as Math.Round does
        Assert.Equal(new byte[] { 50, 107, 139 }, Px(o, 64, 48));
        Assert.Equal(new byte[] { 100, 100, 100 }, Px(o, 2, 2));
        Assert.Equal(new byte[] { 100, 100, 100 }, Px(o, 125, 93));
    }

    [Fact]
    public void ContourIsAntiAliasedOnTheMaskBoundary()
    {
        var o = Overlay.Draw(Gray(), [Disk(64, 48, 30)], alpha: 0);
        // along the row through the centre the outline sits at x ≈ 34 and x ≈ 94, full colour at its middle
        int best = Enumerable.Range(28, 12).MinBy(x => Dist(Px(o, x, 48), [0, 114, 178]));
        Assert.InRange(best, 33, 36);
        Assert.True(Dist(Px(o, best, 48), [0, 114, 178]) < 40, $"outline colour at x={best}: {string.Join(",", Px(o, best, 48))}");
        // a diagonal edge of a circle has partial coverage: blends strictly between background and outline colour
        var blue = new HashSet<byte>();
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) blue.Add(Px(o, x, y)[2]);
        Assert.True(blue.Count(v => v > 100 && v < 178) >= 5, $"only {blue.Count} distinct blue levels: no anti-aliasing");
        // alpha 0 leaves the interior as it was
        Assert.Equal(new byte[] { 100, 100, 100 }, Px(o, 64, 48));
    }

    [Fact]
    public void LabelsPointsAndBoxesAreDrawn()
    {
        var masks = new[] { Disk(64, 60, 20) };
        var plain = Overlay.Draw(Gray(), masks);
        var tagged = Overlay.Draw(Gray(), masks, labels: ["0.987"]);
        // the tag sits above the mask's top-left corner (x ≈ 44, y < 40) in the mask's colour
        int changed = 0;
        for (int y = 0; y < 40; y++)
            for (int x = 40; x < W; x++)
                if (!Px(plain, x, y).SequenceEqual(Px(tagged, x, y))) changed++;
        Assert.InRange(changed, 60, 3000);
        Assert.Equal(Px(plain, 64, 60), Px(tagged, 64, 60));

        var marked = Overlay.Draw(Gray(), [], points: [(20f, 20f, 1), (100f, 20f, 0)], boxes: [new float[] { 10, 50, 60, 90 }]);
        Assert.True(Px(marked, 20, 20)[1] > 180 && Px(marked, 20, 20)[0] < 40, "foreground point is green");
        Assert.True(Px(marked, 100, 20)[0] > 180 && Px(marked, 100, 20)[1] < 40, "background point is red");
        Assert.True(Px(marked, 35, 50)[1] > 150, "box edge is green");
        Assert.Equal(new byte[] { 100, 100, 100 }, Px(marked, 35, 70));
    }

    [Fact]
    public void MisSizedMaskAndBadAlphaAreRefused()
    {
        Assert.Throws<ArgumentException>(() => Overlay.Draw(Gray(), [new bool[10]]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Overlay.Draw(Gray(), [Disk(1, 1, 1)], alpha: double.NaN));
        // an empty mask and a single pixel draw without error
        var one = new bool[H * W];
        one[10 * W + 10] = true;
        var o = Overlay.Draw(Gray(), [new bool[H * W], one]);
        Assert.NotEqual(new byte[] { 100, 100, 100 }, Px(o, 10, 10));
    }

    private static int Dist(byte[] a, byte[] b) => Math.Abs(a[0] - b[0]) + Math.Abs(a[1] - b[1]) + Math.Abs(a[2] - b[2]);
}
