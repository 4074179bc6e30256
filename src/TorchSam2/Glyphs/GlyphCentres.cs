using static TorchSharp.torch;

namespace TorchSam2.Glyphs;

/// <summary>
/// What <see cref="GlyphCentreNet"/> learns and how its answer becomes glyphs: every glyph has one centre (the centre of
/// its box); the net predicts a heatmap that peaks there and, at each ink pixel, the offset to its glyph's centre. At
/// inference each ink pixel votes (pixel + offset) and joins the heatmap peak nearest its vote.
/// </summary>
public static class GlyphCentres
{
    /// <summary>The net's input: darkness clamped to [−1, 2]; without a darkness map (no contrast), the ink itself.</summary>
    public static float[] Input(InkMap ink)
    {
        var d = new float[ink.Height * ink.Width];
        if (ink.Darkness is { } dark)
            for (int i = 0; i < d.Length; i++) d[i] = Math.Clamp(dark[i], -1f, 2f);
        else
            for (int i = 0; i < d.Length; i++) d[i] = ink.Ink[i] ? 1f : 0f;
        return d;
    }

    /// <summary>Training targets over an h×w sheet: the centre heatmap, offsets (already divided by
    /// <see cref="GlyphCentreNet.OffsetScale"/>) and the offsets' per-pixel weight (0 off the glyphs; 1/√area on them,
    /// so small glyphs weigh as much as large ones) and the foreground (1 on every glyph's mask).</summary>
    public static (float[] Heat, float[] Dx, float[] Dy, float[] Weight, float[] Fg) Targets(int h, int w, IReadOnlyList<GlyphAnnotation> glyphs)
    {
        var heat = new float[h * w];
        var dx = new float[h * w];
        var dy = new float[h * w];
        var weight = new float[h * w];
        var owner = new int[h * w];
        var area = new long[glyphs.Count];
        Array.Fill(owner, -1);
        var centres = new (float X, float Y)[glyphs.Count];
        for (int g = 0; g < glyphs.Count; g++)
        {
            var m = glyphs[g].Mask;
            area[g] = m.Area;
            var (bx, by, bw, bh) = m.BBox;
            if (bw == 0) continue;
            float cx = bx + bw / 2f - 0.5f, cy = by + bh / 2f - 0.5f;
            centres[g] = (cx, cy);
            // a Gaussian a tenth of the glyph's smaller side wide; its centre pixel is exactly 1 (the positive)
            double sigma = Math.Max(0.75, 0.1 * Math.Min(bw, bh));
            int r = (int)Math.Ceiling(3 * sigma);
            int px = (int)Math.Floor(cx + 0.5), py = (int)Math.Floor(cy + 0.5);
            for (int y = Math.Max(0, py - r); y <= Math.Min(h - 1, py + r); y++)
                for (int x = Math.Max(0, px - r); x <= Math.Min(w - 1, px + r); x++)
                {
                    double d2 = (x - px) * (x - px) + (y - py) * (y - py);
                    float v = (float)Math.Exp(-d2 / (2 * sigma * sigma));
                    if (v > heat[y * w + x]) heat[y * w + x] = v;
                }
            // the glyph's pixels; where two glyphs' masks overlap, the smaller glyph's
            for (int y = 0; y < m.Height; y++)
                for (int x = 0; x < m.Width; x++)
                {
                    if (!m.Bits[y * m.Width + x]) continue;
                    int ix = m.X + x, iy = m.Y + y;
                    if (ix < 0 || iy < 0 || ix >= w || iy >= h) continue;
                    int i = iy * w + ix;
                    if (owner[i] < 0 || area[owner[i]] > area[g]) owner[i] = g;
                }
        }
        var fg = owner.Select(o => o >= 0 ? 1f : 0f).ToArray();
        // one pixel of halo (anti-aliased edges the ink may take) belongs to the glyph it borders
        var ring = (int[])owner.Clone();
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                if (owner[y * w + x] >= 0) continue;
                for (int k = 0; k < 8 && ring[y * w + x] < 0; k++)
                {
                    int nx = x + Dx8[k], ny = y + Dy8[k];
                    if (nx >= 0 && ny >= 0 && nx < w && ny < h && owner[ny * w + nx] >= 0) ring[y * w + x] = owner[ny * w + nx];
                }
            }
        for (int i = 0; i < h * w; i++)
        {
            int g = ring[i];
            if (g < 0) continue;
            int x = i % w, y = i / w;
            dx[i] = (centres[g].X - x) / GlyphCentreNet.OffsetScale;
            dy[i] = (centres[g].Y - y) / GlyphCentreNet.OffsetScale;
            weight[i] = (float)(1 / Math.Sqrt(Math.Max(1, area[g])));
        }
        return (heat, dx, dy, weight, fg);
    }

    private static readonly int[] Dx8 = [1, -1, 0, 0, 1, 1, -1, -1];
    private static readonly int[] Dy8 = [0, 0, 1, -1, 1, -1, 1, -1];

    /// <summary>The net's answer over a whole sheet, in tiles (so memory stays bounded on large sheets): the heatmap
    /// (after the sigmoid), the offsets in pixels, and the foreground (which pixels are glyph; null when the net has no
    /// foreground head).</summary>
    public static (float[] Heat, float[] Dx, float[] Dy, bool[]? Fg) Predict(GlyphCentreNet net, float[] input, int h, int w, int tile = 1024, int margin = 96)
    {
        var heat = new float[h * w];
        var dx = new float[h * w];
        var dy = new float[h * w];
        var fg = net.HasForeground ? new bool[h * w] : null;
        for (int ty = 0; ty < h; ty += tile)
            for (int tx = 0; tx < w; tx += tile)
                ReadTile(net, input, h, w, tx, ty, Math.Min(w, tx + tile), Math.Min(h, ty + tile), margin, 1, null, heat, dx, dy, fg);
        return (heat, dx, dy, fg);
    }

    /// <summary>
    /// Small text read a second time, magnified, in place. The net separates letters best when they are 30–60 px, and
    /// touching letters of 8–20 px (condensed cuts, a 1-px i beside a j) merge under one centre. So the glyphs of the
    /// first reading (<paramref name="heat"/>, <paramref name="dx"/>, <paramref name="dy"/>) at most
    /// <paramref name="maxHeight"/> px tall are read again with the sheet enlarged <paramref name="zoom"/>× (bilinear),
    /// and inside their boxes the second reading, brought back to the sheet's grid (the heatmap's maximum and the
    /// offsets' mean over each sheet pixel, the foreground by majority), replaces the first.
    /// </summary>
    /// <returns>The sheet pixels read again.</returns>
    public static long ReadSmallTextAgain(GlyphCentreNet net, float[] input, int h, int w, bool[] members, float threshold, double zoom, int maxHeight,
                                          float[] heat, float[] dx, float[] dy, bool[]? fg, int tile = 640, int margin = 64)
    {
        var peaks = Peaks(heat, h, w, threshold);
        var boxes = Boxes(Assign(members, dx, dy, h, w, peaks, heat), w);
        var small = new bool[h * w];
        long n = 0;
        foreach (var b in boxes.Values)
        {
            if (b.Y1 - b.Y0 + 1 > maxHeight) continue;
            for (int y = b.Y0; y <= b.Y1; y++)
                for (int x = b.X0; x <= b.X1; x++)
                    if (!small[y * w + x]) { small[y * w + x] = true; n++; }
        }
        if (n == 0) return 0;
        // tiles a third smaller than the first reading's, so the enlarged ones cost about as much memory
        for (int ty = 0; ty < h; ty += tile)
            for (int tx = 0; tx < w; tx += tile)
            {
                int ex = Math.Min(w, tx + tile), ey = Math.Min(h, ty + tile);
                bool any = false;
                for (int y = ty; y < ey && !any; y++) any = Array.IndexOf(small, true, y * w + tx, ex - tx) >= 0;
                if (any) ReadTile(net, input, h, w, tx, ty, ex, ey, margin, zoom, small, heat, dx, dy, fg);
            }
        return n;
    }

    /// <summary>Each label's inclusive box and pixel count, over a row-major label map of width <paramref name="w"/> (−1: none).</summary>
    public static Dictionary<int, (int X0, int Y0, int X1, int Y1, long Area)> Boxes(int[] label, int w)
    {
        var boxes = new Dictionary<int, (int X0, int Y0, int X1, int Y1, long Area)>();
        for (int i = 0; i < label.Length; i++)
        {
            int l = label[i];
            if (l < 0) continue;
            int x = i % w, y = i / w;
            boxes[l] = boxes.TryGetValue(l, out var b) ? (Math.Min(b.X0, x), Math.Min(b.Y0, y), Math.Max(b.X1, x), Math.Max(b.Y1, y), b.Area + 1) : (x, y, x, y, 1);
        }
        return boxes;
    }

    /// <summary>
    /// The labels of <paramref name="boxes"/> that are glyphs: those with at least <paramref name="minArea"/> pixels, and
    /// smaller ones that touch (8-connected) no pixel of those. A centre that gathered a pixel or two beside a letter is a
    /// stray peak on the letter's ink, which goes back to it (AttachSpecks); one whose ink stands alone is a full stop,
    /// a hyphen or half a colon at 8–14 px, one or two pixels with a centre of their own. (Dropping those as well, as
    /// every small label once was, left 31 glyphs that no prediction touched on the held-out crowded sheets, and 59 on
    /// a training-font one.)
    /// </summary>
    public static HashSet<int> Glyphs(int[] label, int w, int h, IReadOnlyDictionary<int, (int X0, int Y0, int X1, int Y1, long Area)> boxes, int minArea)
    {
        bool Large(int l) => l >= 0 && boxes[l].Area >= minArea;
        var touching = new HashSet<int>();
        // one pass over the sheet (a small label's box can be as wide as the sheet when its votes are wild)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int l = label[y * w + x];
                if (l < 0 || Large(l) || touching.Contains(l)) continue;
                for (int k = 0; k < 8; k++)
                {
                    int nx = x + Dx8[k], ny = y + Dy8[k];
                    if (nx < 0 || ny < 0 || nx >= w || ny >= h) continue;
                    int m = label[ny * w + nx];
                    if (m != l && Large(m)) { touching.Add(l); break; }
                }
            }
        return boxes.Keys.Where(l => !touching.Contains(l)).ToHashSet();
    }

    // One tile [tx, ex) × [ty, ey) of the sheet read with `margin` px of context around it, enlarged `zoom`× (1: as is);
    // writes the answer into the sheet's maps, only where `where` is set (null: everywhere in the tile).
    private static void ReadTile(GlyphCentreNet net, float[] input, int h, int w, int tx, int ty, int ex, int ey, int margin, double zoom, bool[]? where,
                                 float[] heat, float[] dx, float[] dy, bool[]? fg)
    {
        using var inference = inference_mode();
        using var scope = NewDisposeScope();
        int x0 = Math.Max(0, tx - margin), y0 = Math.Max(0, ty - margin);
        int x1 = Math.Min(w, ex + margin), y1 = Math.Min(h, ey + margin);
        int cw = x1 - x0, ch = y1 - y0;
        var buf = new float[ch * cw];
        for (int y = 0; y < ch; y++) Array.Copy(input, (y0 + y) * w + x0, buf, y * cw, cw);
        var x = tensor(buf, [1, 1, ch, cw]);
        int zh = ch, zw = cw;
        if (zoom != 1)
        {
            zh = (int)Math.Round(ch * zoom);
            zw = (int)Math.Round(cw * zoom);
            x = nn.functional.interpolate(x, size: [zh, zw], mode: InterpolationMode.Bilinear, align_corners: false);
        }
        // pad to the net's stride (zeros: background)
        int pw = (zw + GlyphCentreNet.Stride - 1) / GlyphCentreNet.Stride * GlyphCentreNet.Stride;
        int ph = (zh + GlyphCentreNet.Stride - 1) / GlyphCentreNet.Stride * GlyphCentreNet.Stride;
        x = nn.functional.pad(x, [0, pw - zw, 0, ph - zh]);
        var o = net.call(x)[.., .., ..zh, ..zw];
        var hm = sigmoid(o[.., ..1]);
        var off = o[.., 1..3] * GlyphCentreNet.OffsetScale;
        var fgp = fg is not null && o.shape[1] > 3 ? o[.., 3..4].gt(0).to_type(ScalarType.Float32) : null;
        if (zoom != 1)
        {
            // back on the sheet's grid: a centre anywhere in a sheet pixel is a centre there; offsets shrink with the
            // image; a sheet pixel is foreground when most of it is
            hm = nn.functional.adaptive_max_pool2d(hm, [ch, cw]);
            off = nn.functional.adaptive_avg_pool2d(off, [ch, cw]) / zoom;
            if (fgp is not null) fgp = nn.functional.adaptive_avg_pool2d(fgp, [ch, cw]);
        }
        var hmv = hm.contiguous().data<float>().ToArray();
        var offv = off.contiguous().data<float>().ToArray();
        var fgv = fgp?.contiguous().data<float>().ToArray();
        int plane = ch * cw;
        for (int y = ty; y < ey; y++)
            for (int xx = tx; xx < ex; xx++)
            {
                int i = y * w + xx;
                if (where is not null && !where[i]) continue;
                int j = (y - y0) * cw + (xx - x0);
                heat[i] = hmv[j];
                dx[i] = offv[j];
                dy[i] = offv[plane + j];
                if (fgv is not null) fg![i] = fgv[j] >= 0.5f;
            }
    }

    /// <summary>Heatmap peaks: local maxima (3×3) at least <paramref name="threshold"/>, strongest first.</summary>
    public static List<(int X, int Y, float V)> Peaks(float[] heat, int h, int w, float threshold)
    {
        var peaks = new List<(int, int, float)>();
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                float v = heat[y * w + x];
                if (v < threshold) continue;
                bool max = true;
                for (int k = 0; k < 8 && max; k++)
                {
                    int nx = x + Dx8[k], ny = y + Dy8[k];
                    if (nx < 0 || ny < 0 || nx >= w || ny >= h) continue;
                    float u = heat[ny * w + nx];
                    // ties go to the first pixel in raster order
                    if (u > v || (u == v && ny * w + nx < y * w + x)) max = false;
                }
                if (max) peaks.Add((x, y, v));
            }
        return peaks.OrderByDescending(p => p.Item3).ToList();
    }

    /// <summary>
    /// Each pixel in <paramref name="members"/> joins the peak nearest to its vote (its position plus its offset); returns
    /// the peak index per pixel (−1 elsewhere). Distances are Euclidean from the vote as predicted, not rounded, to each
    /// peak placed to a fraction of a pixel (<see cref="SubPixel"/>) when <paramref name="heat"/> is given: letters of
    /// 8–12 px have centres two or three pixels apart, where rounding and a chessboard distance decide a column (held-out
    /// crowded sheets, pooled: recall@0.5 0.927 → 0.932, glyph IoU 0.866 → 0.871). (Merging peaks joined by a high
    /// ridge of the heatmap, as one glyph's hill, lost more touching letters than it saved: recall@0.5 0.792 against
    /// 0.822 on a crowded training-font sheet.)
    /// </summary>
    public static int[] Assign(bool[] members, float[] dx, float[] dy, int h, int w, List<(int X, int Y, float V)> peaks, float[]? heat = null)
    {
        var label = new int[h * w];
        Array.Fill(label, -1);
        if (peaks.Count == 0) return label;
        var centres = heat is null ? peaks.Select(p => (X: (float)p.X, Y: (float)p.Y)).ToArray() : SubPixel(heat, h, w, peaks);
        // Peaks in cells of Cell px: a vote's nearest peak within Cell px is among the 3×3 cells around it.
        int gw = (w + Cell - 1) / Cell, gh = (h + Cell - 1) / Cell;
        var grid = new List<int>?[gw * gh];
        for (int k = 0; k < peaks.Count; k++) (grid[peaks[k].Y / Cell * gw + peaks[k].X / Cell] ??= []).Add(k);
        int[]? far = null;
        for (int i = 0; i < h * w; i++)
        {
            if (!members[i]) continue;
            float vx = i % w + dx[i], vy = i / w + dy[i];
            int cx = Math.Clamp((int)Math.Round(vx), 0, w - 1), cy = Math.Clamp((int)Math.Round(vy), 0, h - 1);
            double best = Cell * Cell;
            int pick = -1;
            for (int gy = Math.Max(0, cy / Cell - 1); gy <= Math.Min(gh - 1, cy / Cell + 1); gy++)
                for (int gx = Math.Max(0, cx / Cell - 1); gx <= Math.Min(gw - 1, cx / Cell + 1); gx++)
                    if (grid[gy * gw + gx] is { } list)
                        foreach (int k in list)
                        {
                            double ex = centres[k].X - vx, ey = centres[k].Y - vy, d = ex * ex + ey * ey;
                            // ties go to the stronger peak (peaks come strongest first)
                            if (d < best || (d == best && k < pick)) { best = d; pick = k; }
                        }
            // a vote far from every peak joins the nearest one in 8-neighbour steps
            label[i] = pick >= 0 ? pick : (far ??= Nearest(peaks, h, w))[cy * w + cx];
        }
        return label;
    }

    private const int Cell = 8;

    /// <summary>Each peak's position to a fraction of a pixel: the top of a parabola through the heatmap at the peak and
    /// its two neighbours, along x and along y (at most half a pixel from the peak).</summary>
    public static (float X, float Y)[] SubPixel(float[] heat, int h, int w, List<(int X, int Y, float V)> peaks)
    {
        var c = new (float X, float Y)[peaks.Count];
        for (int k = 0; k < peaks.Count; k++)
        {
            int x = peaks[k].X, y = peaks[k].Y;
            float v = heat[y * w + x];
            c[k] = (x + (x > 0 && x < w - 1 ? Vertex(heat[y * w + x - 1], v, heat[y * w + x + 1]) : 0),
                    y + (y > 0 && y < h - 1 ? Vertex(heat[(y - 1) * w + x], v, heat[(y + 1) * w + x]) : 0));
        }
        return c;

        static float Vertex(float before, float at, float after)
        {
            float bend = 2 * at - before - after;
            return bend > 1e-6f ? Math.Clamp(0.5f * (after - before) / bend, -0.5f, 0.5f) : 0;
        }
    }

    // The nearest peak to every position: a multi-source breadth-first pass (8-neighbour steps), strongest peak first.
    // (GlyphInstances.Flood seeds in raster order, which breaks ties between equally near peaks differently.)
    private static int[] Nearest(List<(int X, int Y, float V)> peaks, int h, int w)
    {
        var nearest = new int[h * w];
        Array.Fill(nearest, -1);
        var queue = new Queue<int>();
        for (int i = 0; i < peaks.Count; i++)
        {
            int p = peaks[i].Y * w + peaks[i].X;
            if (nearest[p] >= 0) continue;
            nearest[p] = i;
            queue.Enqueue(p);
        }
        while (queue.Count > 0)
        {
            int p = queue.Dequeue();
            int x = p % w, y = p / w;
            for (int k = 0; k < 8; k++)
            {
                int nx = x + Dx8[k], ny = y + Dy8[k];
                if (nx < 0 || ny < 0 || nx >= w || ny >= h || nearest[ny * w + nx] >= 0) continue;
                nearest[ny * w + nx] = nearest[p];
                queue.Enqueue(ny * w + nx);
            }
        }
        return nearest;
    }
}
