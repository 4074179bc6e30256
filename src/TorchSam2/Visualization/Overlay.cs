using OpenCvSharp;
using SkiaSharp;
using TorchSam2.IO;

namespace TorchSam2.Visualization;

/// <summary>
/// Draws masks, points, boxes and labels over an image, for people to look at: each mask is tinted in its colour
/// (exact per pixel), outlined by an anti-aliased contour (OpenCV's contours, smoothed, stroked by Skia), and
/// optionally labelled (id, score) in a tag at its top-left corner.
/// </summary>
public static class Overlay
{
    // Distinct, colour-blind-friendly colours (Okabe-Ito), cycled per mask.
    private static readonly byte[][] Palette =
    [
        [0, 114, 178], [230, 159, 0], [0, 158, 115], [204, 121, 167], [86, 180, 233], [213, 94, 0], [240, 228, 66], [120, 120, 120],
    ];

    public static byte[] Color(int i) => Palette[i % Palette.Length];

    /// <summary>
    /// Blends each row-major H×W mask in its colour (alpha <paramref name="alpha"/>), outlines it with an
    /// anti-aliased contour and, where <paramref name="labels"/> has a non-empty entry for it, tags it with that text.
    /// Points are drawn green (foreground) or red (background), boxes green. The input image is not changed.
    /// </summary>
    public static RgbImage Draw(RgbImage image, IReadOnlyList<bool[]> masks, IEnumerable<(float x, float y, int label)>? points = null,
                                IEnumerable<float[]>? boxes = null, double alpha = 0.5, IReadOnlyList<string?>? labels = null)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(masks);
        if (!double.IsFinite(alpha) || alpha < 0 || alpha > 1) throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "alpha must be in [0, 1]");
        int h = image.Height, w = image.Width;
        for (int m = 0; m < masks.Count; m++)
            if (masks[m].Length != h * w) throw new ArgumentException($"mask {m} has {masks[m].Length} pixels, the image {h * w}");

        // The tint is per pixel (a mask is exact; anti-aliasing it would blur what the model said).
        var px = (byte[])image.Pixels.Clone();
        for (int m = 0; m < masks.Count; m++)
        {
            var mask = masks[m];
            var c = Color(m);
            for (int i = 0; i < mask.Length; i++)
            {
                if (!mask[i]) continue;
                for (int k = 0; k < 3; k++) px[i * 3 + k] = (byte)Math.Round(px[i * 3 + k] * (1 - alpha) + c[k] * alpha);
            }
        }

        using var bitmap = ToBitmap(px, h, w);
        using (var canvas = new SKCanvas(bitmap))
        {
            float scale = Math.Max(1f, Math.Min(h, w) / 512f);
            using var stroke = new SKPaint { IsAntialias = true, Style = SKPaintStyle.Stroke, StrokeWidth = 1.5f * scale, StrokeJoin = SKStrokeJoin.Round };
            var tags = new List<(SKRect box, int m, string text)>();
            for (int m = 0; m < masks.Count; m++)
            {
                using var path = ContourPath(masks[m], h, w, out var bounds);
                if (path is null) continue;
                stroke.Color = Sk(Color(m));
                canvas.DrawPath(path, stroke);
                if (labels is not null && m < labels.Count && !string.IsNullOrEmpty(labels[m])) tags.Add((bounds, m, labels[m]!));
            }
            if (boxes is not null)
            {
                stroke.Color = new SKColor(0, 255, 0);
                stroke.StrokeWidth = 2f * scale;
                foreach (var b in boxes)
                    if (b is { Length: 4 }) canvas.DrawRect(SKRect.Create(b[0], b[1], b[2] - b[0], b[3] - b[1]), stroke);
            }
            // Tags after every contour, so no outline crosses a label.
            if (tags.Count > 0)
            {
                using var font = new SKFont(SKTypeface.Default, 12f * scale) { Edging = SKFontEdging.Antialias };
                foreach (var (box, m, text) in tags) DrawTag(canvas, font, box, text, Color(m), scale, w, h);
            }
            if (points is not null)
                foreach (var (x, y, label) in points) DrawDot(canvas, x, y, label == 1 ? new SKColor(0, 200, 0) : new SKColor(220, 0, 0), scale);
        }
        return new RgbImage(FromBitmap(bitmap, h, w), h, w);
    }

    /// <summary>The mask's outer and hole contours as one path through pixel centres, smoothed by Douglas-Peucker at 0.7 px.</summary>
    private static SKPath? ContourPath(bool[] mask, int h, int w, out SKRect bounds)
    {
        bounds = SKRect.Empty;
        var bytes = new byte[mask.Length];
        bool any = false;
        for (int i = 0; i < mask.Length; i++)
            if (mask[i]) { bytes[i] = 255; any = true; }
        if (!any) return null;
        using var mat = Mat.FromPixelData(h, w, MatType.CV_8UC1, bytes);
        Cv2.FindContours(mat, out var contours, out _, RetrievalModes.CComp, ContourApproximationModes.ApproxNone);
        var path = new SKPath();
        foreach (var contour in contours)
        {
            var pts = contour.Length > 8 ? Cv2.ApproxPolyDP(contour, 0.7, closed: true) : contour;
            if (pts.Length == 0) continue;
            path.MoveTo(pts[0].X + 0.5f, pts[0].Y + 0.5f);
            for (int i = 1; i < pts.Length; i++) path.LineTo(pts[i].X + 0.5f, pts[i].Y + 0.5f);
            path.Close();
        }
        // single pixels make zero-length contours: a tiny square keeps them visible
        if (path.Bounds.Width < 1 && path.Bounds.Height < 1)
        {
            var b = path.Bounds;
            path.AddRect(SKRect.Create(b.Left - 0.5f, b.Top - 0.5f, 1, 1));
        }
        bounds = path.Bounds;
        return path;
    }

    private static void DrawTag(SKCanvas canvas, SKFont font, SKRect box, string text, byte[] colour, float scale, int w, int h)
    {
        float tw = font.MeasureText(text), pad = 2f * scale, th = font.Size * 1.2f;
        // above the mask's top-left corner, pulled inside the image
        float x = Math.Clamp(box.Left, 0, Math.Max(0, w - tw - 2 * pad));
        float y = box.Top - th - 2 * pad;
        if (y < 0) y = Math.Min(box.Top, Math.Max(0, h - th - 2 * pad));
        using var fill = new SKPaint { IsAntialias = true, Color = Sk(colour) };
        canvas.DrawRoundRect(SKRect.Create(x, y, tw + 2 * pad, th + 2 * pad), 3 * scale, 3 * scale, fill);
        // dark text on light colours (yellow, sky blue), white on the rest
        double luma = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2];
        using var ink = new SKPaint { IsAntialias = true, Color = luma > 150 ? SKColors.Black : SKColors.White };
        canvas.DrawText(text, x + pad, y + pad + font.Size, SKTextAlign.Left, font, ink);
    }

    private static void DrawDot(SKCanvas canvas, float x, float y, SKColor colour, float scale)
    {
        float r = 4f * scale;
        using var paint = new SKPaint { IsAntialias = true, Color = colour };
        canvas.DrawCircle(x, y, r, paint);
        paint.Style = SKPaintStyle.Stroke;
        paint.StrokeWidth = 1.5f * scale;
        paint.Color = SKColors.White;
        canvas.DrawCircle(x, y, r, paint);
    }

    private static SKColor Sk(byte[] c) => new(c[0], c[1], c[2]);

    private static SKBitmap ToBitmap(byte[] rgb, int h, int w)
    {
        var bitmap = new SKBitmap(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var rgba = new byte[(long)h * w * 4];
        for (long i = 0, n = (long)h * w; i < n; i++)
        {
            rgba[i * 4] = rgb[i * 3];
            rgba[i * 4 + 1] = rgb[i * 3 + 1];
            rgba[i * 4 + 2] = rgb[i * 3 + 2];
            rgba[i * 4 + 3] = 255;
        }
        System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        return bitmap;
    }

    private static byte[] FromBitmap(SKBitmap bitmap, int h, int w)
    {
        var rgba = new byte[(long)h * w * 4];
        System.Runtime.InteropServices.Marshal.Copy(bitmap.GetPixels(), rgba, 0, rgba.Length);
        var rgb = new byte[(long)h * w * 3];
        for (long i = 0, n = (long)h * w; i < n; i++)
        {
            rgb[i * 3] = rgba[i * 4];
            rgb[i * 3 + 1] = rgba[i * 4 + 1];
            rgb[i * 3 + 2] = rgba[i * 4 + 2];
        }
        return rgb;
    }
}
