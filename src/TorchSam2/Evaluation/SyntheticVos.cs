using TorchSam2.IO;

namespace TorchSam2.Evaluation;

/// <summary>
/// A small generated VOS dataset with the hard cases of real ones: object 1 (a square) leaves the frame on the right,
/// object 2 (a disc) is occluded by object 3, object 3 (a square) enters from the left edge on frame 3. Frames are
/// noisy JPEGs; the truth is written in both layouts (DAVIS label maps and SA-V per-object folders).
/// </summary>
public static class SyntheticVos
{
    /// <summary>The frame on which object 3 first appears.</summary>
    public const int LateObjectFrame = 3;

    /// <summary>
    /// Writes ROOT/JPEGImages/VIDEO/00000.jpg, ROOT/Annotations/VIDEO/00000.png (pixel = object id) and
    /// ROOT/Annotations_sav/VIDEO/00N/00000.png (one binary mask per object and frame) for videos
    /// video0, video1, ... (each shifted and with its own noise). Returns the video names.
    /// </summary>
    public static IReadOnlyList<string> Write(string root, int videos = 1, int frames = 8, int height = 64, int width = 96, int seed = 0)
    {
        if (frames < LateObjectFrame + 2) throw new ArgumentOutOfRangeException(nameof(frames), frames, $"at least {LateObjectFrame + 2} frames");
        if (height < 48 || width < 64) throw new ArgumentOutOfRangeException(nameof(height), "frames of at least 64×48");
        var names = new List<string>();
        for (int v = 0; v < videos; v++)
        {
            string name = $"video{v}";
            names.Add(name);
            var rng = new Random(seed * 1000 + v);
            int dy = rng.Next(-4, 5);
            for (int t = 0; t < frames; t++)
            {
                var px = new byte[height * width * 3];
                for (int i = 0; i < px.Length; i++) px[i] = (byte)(50 + rng.Next(30));
                var labels = new byte[height * width];
                // drawn in id order: a later object covers an earlier one
                void Draw(byte id, byte[] colour, Func<int, int, bool> inside)
                {
                    for (int y = 0; y < height; y++)
                        for (int x = 0; x < width; x++)
                            if (inside(y, x))
                            {
                                labels[y * width + x] = id;
                                for (int c = 0; c < 3; c++) px[(y * width + x) * 3 + c] = colour[c];
                            }
                }
                int s1 = height / 4, x1 = width / 2 + t * width / 8, y1 = height / 6 + dy;
                Draw(1, [230, 40, 40], (y, x) => y >= y1 && y < y1 + s1 && x >= x1 && x < x1 + s1);
                int cx = width / 3 + t, cy = height * 2 / 3 + dy, r = height / 6;
                Draw(2, [40, 220, 60], (y, x) => (y - cy) * (y - cy) + (x - cx) * (x - cx) <= r * r);
                if (t >= LateObjectFrame)
                {
                    int s3 = height / 4, x3 = -s3 / 2 + (t - LateObjectFrame) * width / 8, y3 = cy - s3 / 2;
                    Draw(3, [50, 80, 240], (y, x) => y >= y3 && y < y3 + s3 && x >= x3 && x < x3 + s3);
                }
                string frame = $"{t:D5}";
                ImageIO.Write(Path.Combine(root, "JPEGImages", name, frame + ".jpg"), px, height, width, 3);
                LabelPng.Write(Path.Combine(root, "Annotations", name, frame + ".png"), labels, height, width);
                for (byte id = 1; id <= 3; id++)
                    LabelPng.Write(Path.Combine(root, "Annotations_sav", name, $"{id:D3}", frame + ".png"),
                                   Array.ConvertAll(labels, l => l == id ? (byte)1 : (byte)0), height, width);
            }
        }
        return names;
    }
}
