using System.Net.Http.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.TestHost;
using TorchSam2.IO;
using TorchSam2.Modeling;

namespace TorchSam2.Server.Tests;

/// <summary>Repository files, found from the test binary.</summary>
internal static class TestPaths
{
    private static readonly Lazy<string> Root = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "TorchSam2.sln"))) return dir.FullName;
        throw new InvalidOperationException($"no TorchSam2.sln above {AppContext.BaseDirectory}");
    });

    public static string RepoRoot => Root.Value;
    public static string DemoCheckpoint => Path.Combine(RepoRoot, "weights", "glyph-demo", "model.safetensors");
    public static string DemoConfig => Path.Combine(RepoRoot, "configs", "glyph", "sam2_glyph_demo.yaml");
    public static string Specimen => Path.Combine(RepoRoot, "weights", "glyph-demo", "specimen.png");
}

/// <summary>
/// The shipped glyph demo model (256 px input, fast on CPU), loaded once for every server test. The tests share one
/// collection: one model must not run two forward passes at once, and neither should two servers built on it.
/// </summary>
public sealed class ModelFixture : IDisposable
{
    public SAM2Base Model { get; } = ModelLoader.Load(TestPaths.DemoCheckpoint, TestPaths.DemoConfig);

    /// <summary>A server on the test host; dispose it after the test.</summary>
    public TestApp Start(ServerOptions? options = null) => new(Sam2Server.Build(options ?? new ServerOptions(), Model, b => b.WebHost.UseTestServer()));

    public void Dispose() => Model.Dispose();
}

[CollectionDefinition("server")]
public sealed class ServerCollection : ICollectionFixture<ModelFixture>;

/// <summary>A started app on the test host and its client.</summary>
public sealed class TestApp : IDisposable
{
    public WebApplication App { get; }
    public HttpClient Client { get; }

    public TestApp(WebApplication app)
    {
        App = app;
        app.StartAsync().GetAwaiter().GetResult();
        Client = app.GetTestClient();
    }

    public async Task<ImageInfo> UploadAsync(byte[] bytes, string name = "image.png")
    {
        using var r = await Client.PostAsync($"/api/images?name={name}", new ByteArrayContent(bytes));
        Assert.True(r.IsSuccessStatusCode, await r.Content.ReadAsStringAsync());
        return (await r.Content.ReadFromJsonAsync<ImageInfo>())!;
    }

    public void Dispose()
    {
        Client.Dispose();
        App.StopAsync().GetAwaiter().GetResult();
        ((IDisposable)App).Dispose();
    }
}

/// <summary>Small images made in the test.</summary>
internal static class TestImages
{
    /// <summary>A w×h PNG: grey background, a bright square in the middle (a seed varies the shade).</summary>
    public static byte[] Png(int w, int h, int seed = 0)
    {
        var px = new byte[w * h * 3];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                bool inside = x > w / 4 && x < 3 * w / 4 && y > h / 4 && y < 3 * h / 4;
                byte v = (byte)(inside ? 230 - seed : 40 + seed);
                int k = (y * w + x) * 3;
                px[k] = px[k + 1] = px[k + 2] = v;
            }
        return Sam2Server.EncodePng(px, h, w, 3);
    }

    public static RgbImage Decode(byte[] png) => ImageIO.Decode(png);

    /// <summary>
    /// A square crop of the demo specimen around one annotated glyph (the glyph about 40 % of the side, as the glyph
    /// pipeline crops for this model): the PNG, the glyph's box (x0, y0, x1, y1) and its mask (row-major) in the crop.
    /// </summary>
    public static (byte[] png, float[] box, bool[] mask, int side) SpecimenCrop(int annotation = 0)
    {
        var sheet = ImageIO.Read(TestPaths.Specimen);
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.ChangeExtension(TestPaths.Specimen, ".annotations.json")));
        var ann = doc.RootElement.GetProperty("annotations")[annotation];
        var bb = ann.GetProperty("bbox").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        var seg = ann.GetProperty("segmentation");
        var full = TorchSam2.Utils.Rle.FromCocoString(seg.GetProperty("counts").GetString()!, sheet.Height, sheet.Width).DecodeRowMajor();
        int side = (int)Math.Ceiling(Math.Max(bb[2], bb[3]) / 0.4);
        int x0 = Math.Clamp((int)(bb[0] + bb[2] / 2 - side / 2.0), 0, sheet.Width - side);
        int y0 = Math.Clamp((int)(bb[1] + bb[3] / 2 - side / 2.0), 0, sheet.Height - side);
        var px = new byte[side * side * 3];
        var mask = new bool[side * side];
        for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++)
            {
                int src = (y + y0) * sheet.Width + x + x0;
                Array.Copy(sheet.Pixels, src * 3, px, (y * side + x) * 3, 3);
                mask[y * side + x] = full[src];
            }
        float[] box = [(float)(bb[0] - x0), (float)(bb[1] - y0), (float)(bb[0] + bb[2] - x0), (float)(bb[1] + bb[3] - y0)];
        return (Sam2Server.EncodePng(px, side, side, 3), box, mask, side);
    }

    public static double IoU(bool[] a, bool[] b)
    {
        long inter = 0, union = 0;
        for (int i = 0; i < a.Length; i++) { if (a[i] && b[i]) inter++; if (a[i] || b[i]) union++; }
        return union == 0 ? 0 : (double)inter / union;
    }
}
