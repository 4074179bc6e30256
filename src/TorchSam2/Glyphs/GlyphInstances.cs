namespace TorchSam2.Glyphs;

/// <summary>A click inside a glyph candidate: sheet pixel (X, Y) and the window side its candidate needs.</summary>
public readonly record struct GlyphClick(int Candidate, int X, int Y, int Side);

/// <summary>
/// The model's answer to one click, cut to its candidate: <see cref="Bits"/> covers the candidate's box (row-major,
/// W×H of the candidate) and holds the chosen mask's pixels on the candidate's own ink; <see cref="Score"/> is the
/// predicted IoU of the chosen mask.
/// </summary>
public sealed record ClickMask(GlyphClick Click, bool[] Bits, float Score);

/// <summary>One glyph of a split candidate: its pixels (over the candidate box) and the click that stands for it.</summary>
public sealed record GlyphInstance(bool[] Bits, long Area, ClickMask Seed, int Support);

/// <summary>
/// The instance step of <see cref="GlyphSegmenter"/>: where to click inside a candidate, which crops to encode for the
/// clicks, and how the clicks' masks become glyphs. Pure CPU code, so every rule is tested without a model.
/// </summary>
public static class GlyphInstances
{
    /// <summary>
    /// Clicks for one candidate: the box is cut into cells of side <paramref name="spacing"/> px, and each cell with
    /// own ink gives the ink pixel deepest inside its stroke (chamfer distance to the background; ties go to the
    /// pixel nearest the cell centre), so clicks sit on strokes, not on their anti-aliased edges. The spacing grows
    /// until at most <paramref name="maxClicks"/> cells have ink.
    /// </summary>
    /// <param name="own">the candidate's own ink over its box (row-major W×H)</param>
    public static List<(int X, int Y)> SampleClicks(GlyphCandidate c, bool[] own, double spacing, int maxClicks)
    {
        if (maxClicks < 1) throw new ArgumentOutOfRangeException(nameof(maxClicks), "at least one click per candidate");
        int w = c.W, h = c.H;
        var depth = Chamfer(own, w, h);
        double r = Math.Max(1, spacing);
        while (true)
        {
            int cell = Math.Max(1, (int)Math.Round(r));
            int cols = (w + cell - 1) / cell, rows = (h + cell - 1) / cell;
            var result = new List<(int, int)>();
            for (int cy = 0; cy < rows; cy++)
                for (int cx = 0; cx < cols; cx++)
                {
                    int best = -1, bestDepth = 0;
                    double bestDist = double.MaxValue, mx = cx * cell + (cell - 1) / 2.0, my = cy * cell + (cell - 1) / 2.0;
                    for (int y = cy * cell; y < Math.Min(h, (cy + 1) * cell); y++)
                        for (int x = cx * cell; x < Math.Min(w, (cx + 1) * cell); x++)
                        {
                            int i = y * w + x;
                            if (!own[i]) continue;
                            double d = (x - mx) * (x - mx) + (y - my) * (y - my);
                            if (depth[i] > bestDepth || (depth[i] == bestDepth && d < bestDist))
                            {
                                best = i;
                                bestDepth = depth[i];
                                bestDist = d;
                            }
                        }
                    if (best >= 0) result.Add((c.X0 + best % w, c.Y0 + best / w));
                }
            if (result.Count <= maxClicks || cell >= Math.Max(w, h)) return result.Count <= maxClicks ? result : result.Take(maxClicks).ToList();
            r = cell * Math.Sqrt((double)result.Count / maxClicks) + 1;
        }
    }

    /// <summary>
    /// The stroke cores of a candidate: 8-connected components of <paramref name="core"/> (its darkest own ink, over its
    /// box) with at least <paramref name="minArea"/> pixels, each as a click at its deepest pixel (chamfer distance
    /// inside the core) whose mask is the core. Letters that touch usually touch through lighter anti-aliased pixels,
    /// so their cores stay apart.
    /// </summary>
    public static List<ClickMask> Cores(GlyphCandidate c, bool[] core, int minArea)
    {
        int w = c.W, h = c.H;
        var label = new int[core.Length];
        Array.Fill(label, -1);
        var depth = Chamfer(core, w, h);
        var result = new List<ClickMask>();
        int next = 0;
        for (int s = 0; s < core.Length; s++)
        {
            if (!core[s] || label[s] >= 0) continue;
            label[s] = next;
            var members = new List<int> { s };
            for (int q = 0; q < members.Count; q++)
            {
                int i = members[q], x = i % w, y = i / w;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++)
                    {
                        int nx = x + dx, ny = y + dy;
                        if (nx < 0 || ny < 0 || nx >= w || ny >= h) continue;
                        int j = ny * w + nx;
                        if (!core[j] || label[j] >= 0) continue;
                        label[j] = next;
                        members.Add(j);
                    }
            }
            next++;
            if (members.Count < minArea) continue;
            int best = members.MaxBy(i => depth[i]);
            var bits = new bool[core.Length];
            foreach (int i in members) bits[i] = true;
            result.Add(new ClickMask(new GlyphClick(c.Id, c.X0 + best % w, c.Y0 + best / w, 0), bits, float.NaN));
        }
        return result;
    }

    // 3-4 chamfer distance to the nearest non-ink pixel (outside the box counts as background).
    private static int[] Chamfer(bool[] m, int w, int h)
    {
        const int Big = 1 << 20;
        var d = new int[m.Length];
        for (int i = 0; i < m.Length; i++) d[i] = m[i] ? Big : 0;
        int At(int x, int y) => x < 0 || y < 0 || x >= w || y >= h ? 0 : d[y * w + x];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int i = y * w + x;
                if (d[i] == 0) continue;
                d[i] = Math.Min(d[i], Math.Min(Math.Min(At(x - 1, y) + 3, At(x, y - 1) + 3), Math.Min(At(x - 1, y - 1) + 4, At(x + 1, y - 1) + 4)));
            }
        for (int y = h - 1; y >= 0; y--)
            for (int x = w - 1; x >= 0; x--)
            {
                int i = y * w + x;
                if (d[i] == 0) continue;
                d[i] = Math.Min(d[i], Math.Min(Math.Min(At(x + 1, y) + 3, At(x, y + 1) + 3), Math.Min(At(x + 1, y + 1) + 4, At(x - 1, y + 1) + 4)));
            }
        return d;
    }

    /// <summary>
    /// Square windows (x, y, side, clicks) that cover all clicks. A window is sized by its first click (reading order)
    /// and takes every later click whose own window is 0.5–1.25× its side and which lies at least
    /// <paramref name="innerMargin"/> × side inside it (the sheet border needs no margin: nothing lies beyond it), so
    /// each click sees its glyph and some of the glyph's neighbours.
    /// </summary>
    public static List<(int X, int Y, int Side, List<int> Clicks)> PlanWindows(IReadOnlyList<GlyphClick> clicks, IReadOnlyList<GlyphCandidate> cands, int h, int w, double innerMargin = 0.2)
    {
        var order = Enumerable.Range(0, clicks.Count).OrderBy(i => cands[clicks[i].Candidate].Y0).ThenBy(i => clicks[i].X).ThenBy(i => clicks[i].Y).ToList();
        var taken = new bool[clicks.Count];
        var windows = new List<(int, int, int, List<int>)>();
        foreach (int s in order)
        {
            if (taken[s]) continue;
            var seed = clicks[s];
            var c = cands[seed.Candidate];
            int side = seed.Side, m = (int)Math.Round(innerMargin * side);
            int x = seed.X - m, y = (c.Y0 + c.Y1 + 1) / 2 - side / 2;
            x = w >= side ? Math.Clamp(x, 0, w - side) : (w - side) / 2;
            y = h >= side ? Math.Clamp(y, 0, h - side) : (h - side) / 2;
            int left = x <= 0 ? int.MinValue : x + m, top = y <= 0 ? int.MinValue : y + m;
            int right = x + side >= w ? int.MaxValue : x + side - 1 - m, bottom = y + side >= h ? int.MaxValue : y + side - 1 - m;
            var members = new List<int> { s };
            taken[s] = true;
            foreach (int q in order)
            {
                if (taken[q]) continue;
                var p = clicks[q];
                if (p.Side * 2 < side || p.Side * 4 > side * 5) continue;
                if (p.X < left || p.X > right || p.Y < top || p.Y > bottom) continue;
                members.Add(q);
                taken[q] = true;
            }
            windows.Add((x, y, side, members));
        }
        return windows;
    }

    /// <summary>
    /// Turns the clicks of one candidate into glyphs. Clicks whose mask misses their own pixel are dropped. The rest
    /// are clustered greedily by score: a cluster's seed takes every click it contains and that contains it (mutual
    /// containment, never transitive, so a click whose mask spans two letters cannot chain them). Each ink pixel goes
    /// to the cluster whose members vote for it most, a vote being (members whose mask holds the pixel) / (members + 1)
    /// so one stray click cannot take a stroke from a cluster of several; ties go to the larger cluster. Ink no mask
    /// holds goes to the nearest glyph along the ink, then (separate specks: an i's dot the model missed) to the
    /// nearest glyph in the box. Clusters left with fewer than <paramref name="minArea"/> pixels are dissolved the same
    /// way; two glyphs merge when at least half of the clicks in one answer with masks holding most of the other.
    /// </summary>
    /// <returns>the glyphs (one when the candidate is one glyph), largest support first</returns>
    public static List<GlyphInstance> Split(GlyphCandidate c, bool[] own, IReadOnlyList<ClickMask> clicks, int minArea)
    {
        int w = c.W, h = c.H;
        int ownCount = own.Count(b => b);
        var valid = clicks.Where(k => Holds(k, c, k.Click.X, k.Click.Y)).OrderByDescending(k => k.Score).ToList();
        if (valid.Count == 0)
            return clicks.Count == 0 ? [] : [new GlyphInstance((bool[])own.Clone(), ownCount, clicks.OrderByDescending(k => k.Score).First(), clicks.Count)];

        var clusters = new List<List<ClickMask>>();
        var used = new bool[valid.Count];
        for (int i = 0; i < valid.Count; i++)
        {
            if (used[i]) continue;
            used[i] = true;
            var cl = new List<ClickMask> { valid[i] };
            for (int j = i + 1; j < valid.Count; j++)
                if (!used[j] && Holds(valid[i], c, valid[j].Click.X, valid[j].Click.Y) && Holds(valid[j], c, valid[i].Click.X, valid[i].Click.Y))
                {
                    used[j] = true;
                    cl.Add(valid[j]);
                }
            clusters.Add(cl);
        }

        var alive = Enumerable.Repeat(true, clusters.Count).ToArray();
        int[] label;
        while (true)
        {
            label = Assign(c, own, clusters, alive);
            var counts = new long[clusters.Count];
            foreach (int l in label) if (l >= 0) counts[l]++;
            int aliveCount = alive.Count(a => a);
            if (aliveCount <= 1) break;
            // The smallest too-small cluster goes first, one at a time: its pixels may be what a neighbour needs. (A rule
            // dissolving parts shorter than a third of the candidate was measured and dropped: it dissolved real letters
            // in candidates several lines tall.)
            int drop = -1;
            for (int k = 0; k < clusters.Count; k++)
                if (alive[k] && counts[k] < minArea && (drop < 0 || counts[k] < counts[drop])) drop = k;
            if (drop >= 0)
            {
                alive[drop] = false;
                continue;
            }
            // Two glyphs are one when the clicks say so: when at least half of the clicks sitting in one of them answer
            // with a mask that holds most of the other, the boundary between them is not one the model believes in.
            var (a, b) = MostSpanned(c, valid, label, counts, alive);
            if (a < 0) break;
            clusters[a].AddRange(clusters[b]);
            alive[b] = false;
        }

        var result = new List<GlyphInstance>();
        for (int k = 0; k < clusters.Count; k++)
        {
            if (!alive[k]) continue;
            var bits = new bool[w * h];
            long n = 0;
            for (int i = 0; i < bits.Length; i++)
                if (label[i] == k)
                {
                    bits[i] = true;
                    n++;
                }
            if (n > 0) result.Add(new GlyphInstance(bits, n, clusters[k][0], clusters[k].Count));
        }
        return result.OrderByDescending(g => g.Support).ThenByDescending(g => g.Seed.Score).ToList();
    }

    // The pair of live clusters with the largest share (≥ 1/2) of clicks in one whose masks hold more than half of the other.
    private static (int, int) MostSpanned(GlyphCandidate c, List<ClickMask> clicks, int[] label, long[] counts, bool[] alive)
    {
        int n = label.Length, k = alive.Length;
        var inside = new int[k];
        var spans = new int[k, k];
        foreach (var click in clicks)
        {
            int at = label[(click.Click.Y - c.Y0) * c.W + (click.Click.X - c.X0)];
            if (at < 0 || !alive[at]) continue;
            inside[at]++;
            var held = new long[k];
            for (int i = 0; i < n; i++)
                if (click.Bits[i] && label[i] >= 0) held[label[i]]++;
            for (int j = 0; j < k; j++)
                if (j != at && alive[j] && counts[j] > 0 && held[j] * 2 > counts[j]) spans[at, j]++;
        }
        (int, int) best = (-1, -1);
        double bestShare = 0.5 - 1e-9;
        for (int a = 0; a < k; a++)
            for (int b = 0; b < k; b++)
            {
                if (a == b || inside[a] == 0) continue;
                double share = (double)spans[a, b] / inside[a];
                if (share > bestShare)
                {
                    bestShare = share;
                    best = (Math.Min(a, b), Math.Max(a, b));
                }
            }
        return best;
    }

    /// <summary>
    /// Grows the labels (≥ 0; −1 unlabelled) of a row-major w×h map breadth-first, 8-connected, from every labelled pixel
    /// at once into unlabelled pixels that <paramref name="enter"/> admits: each takes the label that reaches it first.
    /// <paramref name="reached"/> hears of each pixel labelled.
    /// </summary>
    public static void Flood(int[] label, int w, int h, Func<int, bool> enter, Action<int>? reached = null)
    {
        var queue = new Queue<int>();
        for (int i = 0; i < label.Length; i++) if (label[i] >= 0) queue.Enqueue(i);
        while (queue.Count > 0)
        {
            int i = queue.Dequeue();
            int x = i % w, y = i / w;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++)
                {
                    int nx = x + dx, ny = y + dy;
                    if ((dx | dy) == 0 || nx < 0 || ny < 0 || nx >= w || ny >= h) continue;
                    int j = ny * w + nx;
                    if (label[j] >= 0 || !enter(j)) continue;
                    label[j] = label[i];
                    reached?.Invoke(j);
                    queue.Enqueue(j);
                }
        }
    }

    private static bool Holds(ClickMask k, GlyphCandidate c, int x, int y)
    {
        int u = x - c.X0, v = y - c.Y0;
        return u >= 0 && v >= 0 && u < c.W && v < c.H && k.Bits[v * c.W + u];
    }

    // Label per box pixel (−1: not own ink): votes, then geodesic growth along the ink, then growth through the box.
    private static int[] Assign(GlyphCandidate c, bool[] own, List<List<ClickMask>> clusters, bool[] alive)
    {
        int w = c.W, h = c.H, n = w * h;
        var label = new int[n];
        Array.Fill(label, -1);
        var best = new double[n];
        for (int k = 0; k < clusters.Count; k++)
        {
            if (!alive[k]) continue;
            var cl = clusters[k];
            var votes = new int[n];
            foreach (var m in cl)
                for (int i = 0; i < n; i++)
                    if (m.Bits[i]) votes[i]++;
            for (int i = 0; i < n; i++)
            {
                if (!own[i] || votes[i] == 0) continue;
                double v = votes[i] / (cl.Count + 1.0);
                // Clusters come in score order of their seeds; a tie keeps the larger cluster.
                if (v > best[i] || (v == best[i] && label[i] >= 0 && cl.Count > clusters[label[i]].Count))
                {
                    best[i] = v;
                    label[i] = k;
                }
            }
        }
        Grow(label, own, w, h, onlyInk: true);
        Grow(label, own, w, h, onlyInk: false);
        return label;
    }

    // Multi-source breadth-first growth of the labels (8-connected): along own ink only, or through the whole box
    // (labels are then written on own ink only, but the growth passes through the background).
    private static void Grow(int[] label, bool[] own, int w, int h, bool onlyInk)
    {
        int n = w * h;
        var reach = (int[])label.Clone();
        Flood(reach, w, h, j => !onlyInk || own[j]);
        for (int i = 0; i < n; i++) if (own[i] && label[i] < 0) label[i] = reach[i];
    }
}
