using TorchSam2.Glyphs;
using TorchSam2.IO;

namespace TorchSam2.Tests.Glyphs;

internal static class GlyphTestUtil
{
    public static string DejaVuSans => FontRegistry.Get("DejaVuSans").Path ?? throw new InvalidOperationException("fonts-dejavu-core is not installed");

    /// <summary>Black text on white, drawn line by line, glyph by glyph (no shaping), the pen advancing by whole-pixel advances.</summary>
    public static RgbImage Draw(string[] lines, int sizePx, int width, int height, string? fontPath = null, int x0 = 10, double leading = 1.0)
    {
        using var face = FontFace.Open(fontPath ?? DejaVuSans);
        face.SetPixelSize(sizePx);
        var m = face.Metrics;
        var alpha = new float[width * height];
        int baseline = 5 + m.Ascender;
        foreach (var line in lines)
        {
            int pen = x0;
            foreach (var ch in line)
            {
                var g = face.Render(ch);
                for (int r = 0; r < g.Rows; r++)
                    for (int c = 0; c < g.Width; c++)
                    {
                        int x = pen + g.Left + c, y = baseline - g.Top + r;
                        if (x < 0 || y < 0 || x >= width || y >= height) continue;
                        ref float a = ref alpha[y * width + x];
                        a = 1 - (1 - a) * (1 - g.At(c, r) / 255f);
                    }
                pen += g.AdvanceX;
            }
            baseline += (int)Math.Round(m.LineHeight * leading);
        }
        var px = new byte[width * height * 3];
        for (int i = 0; i < alpha.Length; i++)
            px[3 * i] = px[3 * i + 1] = px[3 * i + 2] = (byte)Math.Round(255 * (1 - alpha[i]));
        return new RgbImage(px, height, width);
    }

    public static GlyphMask Square(int x, int y, int w, int h) => new(x, y, w, h, Enumerable.Repeat(true, w * h).ToArray());
}
