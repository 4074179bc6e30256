using TorchSam2.IO;

namespace TorchSam2.Visualization;

/// <summary>Draws masks, points and boxes over an image, for people to look at.</summary>
public static class Overlay
{
    // Distinct, colour-blind-friendly colours (Okabe-Ito), cycled per mask.
    private static readonly byte[][] Palette =
    [
        [0, 114, 178], [230, 159, 0], [0, 158, 115], [204, 121, 167], [86, 180, 233], [213, 94, 0], [240, 228, 66], [120, 120, 120],
    ];

    public static byte[] Color(int i) => Palette[i % Palette.Length];

    /// <summary>Blends each row-major H×W mask in its colour (alpha 0.5) and outlines it.</summary>
    public static RgbImage Draw(RgbImage image, IReadOnlyList<bool[]> masks, IEnumerable<(float x, float y, int label)>? points = null,
                                IEnumerable<float[]>? boxes = null, double alpha = 0.5)
    {
        int h = image.Height, w = image.Width;
        var px = (byte[])image.Pixels.Clone();
        for (int m = 0; m < masks.Count; m++)
        {
            var mask = masks[m];
            if (mask.Length != h * w) throw new ArgumentException($"mask {m} has {mask.Length} pixels, the image {h * w}");
            var c = Color(m);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    int i = y * w + x;
                    if (!mask[i]) continue;
                    bool edge = x == 0 || y == 0 || x == w - 1 || y == h - 1 || !mask[i - 1] || !mask[i + 1] || !mask[i - w] || !mask[i + w];
                    double a = edge ? 1.0 : alpha;
                    for (int k = 0; k < 3; k++) px[i * 3 + k] = (byte)Math.Round(px[i * 3 + k] * (1 - a) + c[k] * a);
                }
        }
        if (boxes is not null)
            foreach (var b in boxes) DrawBox(px, h, w, b, [0, 255, 0]);
        if (points is not null)
            foreach (var (x, y, label) in points) DrawDot(px, h, w, x, y, label == 1 ? [0, 200, 0] : [220, 0, 0]);
        return new RgbImage(px, h, w);
    }

    private static void Set(byte[] px, int h, int w, int x, int y, byte[] c)
    {
        if (x < 0 || y < 0 || x >= w || y >= h) return;
        int i = (y * w + x) * 3;
        px[i] = c[0];
        px[i + 1] = c[1];
        px[i + 2] = c[2];
    }

    private static void DrawBox(byte[] px, int h, int w, float[] b, byte[] c)
    {
        int x0 = (int)b[0], y0 = (int)b[1], x1 = (int)b[2], y1 = (int)b[3];
        int t = Math.Max(1, Math.Min(h, w) / 300);
        for (int d = 0; d < t; d++)
        {
            for (int x = x0; x <= x1; x++) { Set(px, h, w, x, y0 + d, c); Set(px, h, w, x, y1 - d, c); }
            for (int y = y0; y <= y1; y++) { Set(px, h, w, x0 + d, y, c); Set(px, h, w, x1 - d, y, c); }
        }
    }

    private static void DrawDot(byte[] px, int h, int w, float cx, float cy, byte[] c)
    {
        int r = Math.Max(3, Math.Min(h, w) / 100);
        for (int dy = -r - 1; dy <= r + 1; dy++)
            for (int dx = -r - 1; dx <= r + 1; dx++)
            {
                double d = Math.Sqrt(dx * dx + dy * dy);
                if (d <= r) Set(px, h, w, (int)cx + dx, (int)cy + dy, c);
                else if (d <= r + 1.2) Set(px, h, w, (int)cx + dx, (int)cy + dy, [255, 255, 255]);
            }
    }
}
