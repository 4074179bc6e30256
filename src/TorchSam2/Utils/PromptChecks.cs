using System.Globalization;

namespace TorchSam2.Utils;

/// <summary>
/// One set of rules for point and box prompts, shared by the image and video predictors and the command line:
/// coordinates finite and inside the image (0..width, 0..height in pixels, or 0..1 when normalized), boxes with
/// x0 ≤ x1 and y0 ≤ y1, labels one of -1 (padding), 0 (background), 1 (foreground), 2/3 (box corners).
/// </summary>
public static class PromptChecks
{
    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> unless (x, y) is finite and within 0..maxX × 0..maxY.</summary>
    public static void CheckPoint(double x, double y, double maxX, double maxY, string what)
    {
        if (!double.IsFinite(x) || !double.IsFinite(y))
            throw new ArgumentOutOfRangeException(what, $"{what} ({F(x)}, {F(y)}) is not a pair of finite numbers");
        if (x < 0 || y < 0 || x > maxX || y > maxY)
            throw new ArgumentOutOfRangeException(what, $"{what} ({F(x)}, {F(y)}) lies outside the image (0..{F(maxX)}, 0..{F(maxY)})");
    }

    /// <summary>A box (x0, y0, x1, y1): four finite numbers inside the image, x0 ≤ x1 and y0 ≤ y1.</summary>
    public static void CheckBox(IReadOnlyList<float> box, double maxX, double maxY, string what)
    {
        if (box.Count != 4) throw new ArgumentException($"{what} needs four numbers (x0, y0, x1, y1), got {box.Count}");
        CheckPoint(box[0], box[1], maxX, maxY, $"{what} corner");
        CheckPoint(box[2], box[3], maxX, maxY, $"{what} corner");
        if (box[2] < box[0] || box[3] < box[1])
            throw new ArgumentException($"{what} ({string.Join(", ", box.Select(v => F(v)))}) has x1 < x0 or y1 < y0");
    }

    /// <summary>Labels the model knows: -1 (padding), 0 (background), 1 (foreground), 2/3 (box corners).</summary>
    public static void CheckLabel(int label, string what = "point label")
    {
        if (label is < -1 or > 3)
            throw new ArgumentOutOfRangeException(what, label, $"{what} {label} is not one of -1 (padding), 0 (background), 1 (foreground), 2/3 (box corners)");
    }

    private static string F(double v) => v.ToString("G7", CultureInfo.InvariantCulture);
}
