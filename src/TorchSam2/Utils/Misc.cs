using System.Buffers;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;
using TorchSharp.Modules;

namespace TorchSam2.Utils;

// Mirrors sam2/utils/misc.py. The official get_connected_components needs a CUDA extension and
// is silently skipped without it; this one runs on the CPU, always.
public static class Misc
{
    /// <summary>
    /// 8-connected components of binary masks N×1×H×W. Returns (labels, areas), both int32 N×1×H×W:
    /// a component label (1-based) and the component's pixel count for foreground pixels, 0 elsewhere.
    /// </summary>
    public static (Tensor labels, Tensor areas) get_connected_components(Tensor mask)
    {
        if (mask.dim() != 4 || mask.size(1) != 1) throw new ArgumentException($"expected an N×1×H×W mask, got [{string.Join(", ", mask.shape)}]");
        long n = mask.size(0), h = mask.size(2), w = mask.size(3);
        int plane = checked((int)(h * w)), total = checked((int)(n * plane));
        // Work buffers come from the shared pool: this runs on every tracked frame, and image-sized
        // arrays would otherwise land on the large object heap each time.
        var pool = ArrayPool<int>.Shared;
        var fgBuf = ArrayPool<bool>.Shared.Rent(total);
        int[] labels = pool.Rent(total), areas = pool.Rent(total), parent = pool.Rent(plane), area = pool.Rent(plane);
        try
        {
            var fg = fgBuf.AsSpan(0, total);
            using (var b = mask.to(ScalarType.Bool, CPU)) b.CopyTo(MemoryMarshal.AsBytes(fg));
            for (long img = 0; img < n; img++)
            {
                int off = checked((int)(img * plane));
                Label8(fg.Slice(off, plane), (int)h, (int)w, parent, area, labels.AsSpan(off, plane), areas.AsSpan(off, plane));
            }
            var shape = mask.shape;
            using var labelsCpu = TensorData.FromSpan<int>(labels.AsSpan(0, total), shape);
            using var areasCpu = TensorData.FromSpan<int>(areas.AsSpan(0, total), shape);
            return (labelsCpu.to(mask.device), areasCpu.to(mask.device));
        }
        finally
        {
            ArrayPool<bool>.Shared.Return(fgBuf);
            pool.Return(labels);
            pool.Return(areas);
            pool.Return(parent);
            pool.Return(area);
        }
    }

    // Two-pass union-find labelling with 8-connectivity.
    private static void Label8(ReadOnlySpan<bool> fg, int h, int w, int[] parent, int[] area, Span<int> labels, Span<int> areas)
    {
        int Find(int x)
        {
            while (parent[x] != x)
            {
                parent[x] = parent[parent[x]];
                x = parent[x];
            }
            return x;
        }
        void Union(int a, int b)
        {
            a = Find(a);
            b = Find(b);
            if (a != b) parent[Math.Max(a, b)] = Math.Min(a, b);
        }
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int i = y * w + x;
                parent[i] = i;
                if (!fg[i]) continue;
                if (x > 0 && fg[i - 1]) Union(i, i - 1);
                if (y > 0)
                {
                    int up = i - w;
                    if (fg[up]) Union(i, up);
                    if (x > 0 && fg[up - 1]) Union(i, up - 1);
                    if (x < w - 1 && fg[up + 1]) Union(i, up + 1);
                }
            }
        Array.Clear(area, 0, h * w);
        for (int i = 0; i < h * w; i++)
            if (fg[i]) area[Find(i)]++;
        // Labels are numbered in raster order of each component's first pixel.
        var labelOf = new Dictionary<int, int>();
        for (int i = 0; i < h * w; i++)
        {
            if (!fg[i])
            {
                labels[i] = 0;
                areas[i] = 0;
                continue;
            }
            int r = Find(i);
            if (!labelOf.TryGetValue(r, out int l)) labelOf[r] = l = labelOf.Count + 1;
            labels[i] = l;
            areas[i] = area[r];
        }
    }

    /// <summary>Tight boxes (x0, y0, x1, y1) of masks B×1×H×W as B×1×4; empty masks give zeros.</summary>
    public static Tensor mask_to_box(Tensor masks)
    {
        using var scope = torch.NewDisposeScope();
        long b = masks.size(0), h = masks.size(2), w = masks.size(3);
        var xs = torch.arange(w, ScalarType.Int32, masks.device)[TensorIndex.None, TensorIndex.None, TensorIndex.None, ..];
        var ys = torch.arange(h, ScalarType.Int32, masks.device)[TensorIndex.None, TensorIndex.None, .., TensorIndex.None];
        var m = masks.@bool();
        var gridX = xs.expand(b, 1, h, w);
        var gridY = ys.expand(b, 1, h, w);
        var minX = torch.where(m, gridX, (double)w).flatten(-2).amin([-1]);
        var maxX = torch.where(m, gridX, -1.0).flatten(-2).amax([-1]);
        var minY = torch.where(m, gridY, (double)h).flatten(-2).amin([-1]);
        var maxY = torch.where(m, gridY, -1.0).flatten(-2).amax([-1]);
        var boxes = torch.stack([minX, minY, maxX, maxY], -1);
        var empty = m.flatten(-2).any(-1).logical_not().unsqueeze(-1);
        return boxes.masked_fill(empty, 0).@int().MoveToOuterDisposeScope();
    }
}
