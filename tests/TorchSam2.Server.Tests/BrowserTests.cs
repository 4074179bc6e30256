using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Playwright;
using TorchSam2.IO;
using TorchSam2.Utils;

namespace TorchSam2.Server.Tests;

/// <summary>
/// The page in a real browser: Debian's chromium (apt-get install chromium; tools/setup.sh) driven by Playwright,
/// which never downloads a browser here. The server listens on a free loopback port.
/// </summary>
[Collection("server")]
public sealed class BrowserTests(ModelFixture fixture) : IDisposable
{
    private const string Chromium = "/usr/bin/chromium";
    private static readonly string[] ChromiumArgs =
        ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"];

    private readonly string _dir = Directory.CreateTempSubdirectory("torchsam2-browser-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>Screenshots for README when TORCHSAM2_DOCS_SCREENSHOTS names the docs folder.</summary>
    private static string? DocsDir => Environment.GetEnvironmentVariable("TORCHSAM2_DOCS_SCREENSHOTS") is { Length: > 0 } d ? d : null;

    private sealed class Session : IAsyncDisposable
    {
        public required WebApplication App { get; init; }
        public required IPlaywright Playwright { get; init; }
        public required IBrowser Browser { get; init; }
        public required IPage Page { get; init; }
        public required string Url { get; init; }

        public async ValueTask DisposeAsync()
        {
            await Browser.DisposeAsync();
            Playwright.Dispose();
            await App.StopAsync();
            await App.DisposeAsync();
        }
    }

    private async Task<Session> StartAsync(ServerOptions? options = null)
    {
        Assert.True(File.Exists(Chromium), $"{Chromium} is missing: apt-get install chromium (tools/setup.sh installs it)");
        var app = Sam2Server.Build(options ?? new ServerOptions(), fixture.Model);
        app.Urls.Add("http://127.0.0.1:0");
        await app.StartAsync();
        Environment.SetEnvironmentVariable("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        var pw = await Microsoft.Playwright.Playwright.CreateAsync();
        var browser = await pw.Chromium.LaunchAsync(new() { ExecutablePath = Chromium, Headless = true, Args = ChromiumArgs });
        var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 1100, Height = 760 }, AcceptDownloads = true });
        page.SetDefaultTimeout(30_000);
        string url = app.Urls.First();
        await page.GotoAsync(url);
        await page.WaitForFunctionAsync("() => window.sam.state.info !== null");
        return new Session { App = app, Playwright = pw, Browser = browser, Page = page, Url = url };
    }

    /// <summary>Pixels of the canvas screenshot where the overlay colour shows: blue (object 1) or tomato (object 2) over the grey sheet.</summary>
    private static async Task<(int blue, int red)> CountOverlay(IPage page, string canvas = "#view")
    {
        var shot = ImageIO.Decode(await page.Locator(canvas).ScreenshotAsync());
        int blue = 0, red = 0;
        for (int i = 0; i < shot.Width * shot.Height; i++)
        {
            int r = shot.Pixels[i * 3], g = shot.Pixels[i * 3 + 1], b = shot.Pixels[i * 3 + 2];
            if (b - r > 60 && b - g > 20) blue++;
            if (r - b > 60 && r - g > 40) red++;
        }
        return (blue, red);
    }

    /// <summary>Clicks (or drags) at image pixel coordinates on the canvas, whatever its display scale.</summary>
    private static async Task<(float x, float y)> ToScreen(IPage page, float x, float y, int width, int height, string canvas = "#view")
    {
        var box = (await page.Locator(canvas).BoundingBoxAsync())!;
        return (box.X + (x + 0.5f) * box.Width / width, box.Y + (y + 0.5f) * box.Height / height);
    }

    private static async Task PredictAfter(IPage page, Func<Task> action)
    {
        await page.RunAndWaitForResponseAsync(action, r => r.Url.Contains("/predict", StringComparison.Ordinal) && r.Status == 200);
        // the answer is drawn on the next task
        await page.WaitForFunctionAsync("() => !document.getElementById('status').textContent.startsWith('opening')");
        await page.EvaluateAsync("() => new Promise(r => requestAnimationFrame(() => r()))");
    }

    [Fact]
    public async Task ImagePage_ClickNegativeClickBoxAndExport()
    {
        // one glyph of the demo sheet, enlarged 4× (nearest) so the page shows it large
        var (png, box, truth, side) = TestImages.SpecimenCrop();
        var crop = ImageIO.Decode(png);
        int s = side * 4;
        var big = new byte[s * s * 3];
        for (int y = 0; y < s; y++)
            for (int x = 0; x < s; x++)
                Array.Copy(crop.Pixels, ((y / 4) * side + x / 4) * 3, big, (y * s + x) * 3, 3);
        string file = Path.Combine(_dir, "glyph.png");
        File.WriteAllBytes(file, Sam2Server.EncodePng(big, s, s, 3));
        int k = Enumerable.Range(0, truth.Length).Where(i => truth[i]).ElementAt(truth.Count(v => v) / 2);
        float gx = (k % side) * 4 + 2, gy = (k / side) * 4 + 2;

        await using var session = await StartAsync();
        var page = session.Page;
        await page.Locator("#file").SetInputFilesAsync(file);
        await page.WaitForFunctionAsync("() => document.getElementById('status').textContent.includes('encoded in')");

        // a click on the glyph: a blue mask appears on the canvas
        var (cx, cy) = await ToScreen(page, gx, gy, s, s);
        await PredictAfter(page, () => page.Mouse.ClickAsync(cx, cy));
        var area1 = await page.EvaluateAsync<int>("() => { const o = window.sam.state.objects[0]; return o.masks[o.choice].area; }");
        var (blue1, _) = await CountOverlay(page);
        Assert.True(area1 > 0, "the click found no mask");
        Assert.True(blue1 > 100, $"only {blue1} overlay pixels on the canvas for a {area1} px mask");
        Assert.Contains("round trip", await page.Locator("#status").TextContentAsync());
        Assert.Equal(3, await page.Locator("#choices button").CountAsync()); // one click: three candidates to choose from

        // a negative click (shift) elsewhere changes the mask
        var (nx, ny) = await ToScreen(page, box[2] * 4 + 8, box[3] * 4 + 8, s, s);
        await page.Keyboard.DownAsync("Shift");
        await PredictAfter(page, () => page.Mouse.ClickAsync(nx, ny));
        await page.Keyboard.UpAsync("Shift");
        Assert.Equal("[1,0]", await page.EvaluateAsync<string>("() => JSON.stringify(window.sam.state.objects[0].labels)"));
        var (blue2, _) = await CountOverlay(page);
        Assert.NotEqual(blue1, blue2);

        // a second object from a box drag, in the second colour
        var (_, red0) = await CountOverlay(page);
        await page.ClickAsync("#newobj");
        var (bx0, by0) = await ToScreen(page, box[0] * 4 - 4, box[1] * 4 - 4, s, s);
        var (bx1, by1) = await ToScreen(page, box[2] * 4 + 4, box[3] * 4 + 4, s, s);
        await PredictAfter(page, async () =>
        {
            await page.Mouse.MoveAsync(bx0, by0);
            await page.Mouse.DownAsync();
            await page.Mouse.MoveAsync((bx0 + bx1) / 2, (by0 + by1) / 2, new() { Steps = 4 });
            await page.Mouse.MoveAsync(bx1, by1, new() { Steps = 4 });
            await page.Mouse.UpAsync();
        });
        var boxArea = await page.EvaluateAsync<int>("() => { const o = window.sam.state.objects[1]; return o.box ? o.masks[o.choice].area : -1; }");
        Assert.True(boxArea > 0, $"box object: {boxArea}");
        var (_, red1) = await CountOverlay(page);
        Assert.True(red1 > red0 + 200, $"tomato pixels {red0} → {red1}");
        if (DocsDir is { } docs) await page.ScreenshotAsync(new() { Path = Path.Combine(docs, "serve-image.png") });

        // export: the COCO file holds both objects as they are on the page
        var coco = await page.RunAndWaitForDownloadAsync(() => page.ClickAsync("#exportcoco"));
        Assert.Equal("glyph.coco.json", coco.SuggestedFilename);
        string cocoPath = Path.Combine(_dir, "objects.json");
        await coco.SaveAsAsync(cocoPath);
        using var doc = JsonDocument.Parse(File.ReadAllText(cocoPath));
        var anns = doc.RootElement.GetProperty("annotations");
        Assert.Equal(2, anns.GetArrayLength());
        Assert.Equal([s, s], anns[1].GetProperty("segmentation").GetProperty("size").EnumerateArray().Select(e => e.GetInt32()));
        var rle = Rle.FromCocoString(anns[1].GetProperty("segmentation").GetProperty("counts").GetString()!, s, s);
        Assert.Equal(boxArea, rle.Area());
        Assert.Equal(boxArea, anns[1].GetProperty("area").GetInt32());

        // export PNG of the selected (box) object: white exactly where its RLE is on
        var maskPng = await page.RunAndWaitForDownloadAsync(() => page.ClickAsync("#exportpng"));
        Assert.Equal("mask_2.png", maskPng.SuggestedFilename);
        string maskPath = Path.Combine(_dir, "mask.png");
        await maskPng.SaveAsAsync(maskPath);
        var m = ImageIO.Read(maskPath);
        var fromPng = Enumerable.Range(0, s * s).Select(i => m.Pixels[i * 3] == 255).ToArray();
        Assert.Equal(rle.DecodeRowMajor(), fromPng);

        // undo removes the box: the second object has no mask and its colour leaves the canvas
        await page.ClickAsync("#undo");
        Assert.Equal(0, await page.EvaluateAsync<int>("() => window.sam.state.objects[1].masks.length"));
        var (_, red2) = await CountOverlay(page);
        Assert.Equal(red0, red2);
    }

    [Fact]
    public async Task VideoPage_PromptTrackScrubCorrect()
    {
        VideoTests.Frames(_dir);
        await using var session = await StartAsync(new ServerOptions { Root = _dir });
        var page = session.Page;
        await page.ClickAsync("#tab-video");
        await page.FillAsync("#vrootpath", "frames");
        await page.ClickAsync("#vrootopen");
        await page.WaitForFunctionAsync("() => document.getElementById('vstatus').textContent.includes('6 frames')");
        // the canvas is shown enlarged: 96 px frames
        await page.EvaluateAsync("() => { const c = document.getElementById('vview'); c.style.width = '480px'; c.style.height = '480px'; }");

        // a click on the block in frame 0 (1080 px): its mask (blue) shows; the demo model, trained on glyphs, gives
        // at least a quarter of the block (445 px since its second, crowded-text stage)
        var (cx, cy) = await ToScreen(page, 35, 48, 96, 96, "#vview");
        await page.RunAndWaitForResponseAsync(() => page.Mouse.ClickAsync(cx, cy), r => r.Url.Contains("/prompt", StringComparison.Ordinal) && r.Status == 200);
        await page.WaitForFunctionAsync("() => window.sam.video.masks.has(0)");
        int area0 = await page.EvaluateAsync<int>("() => window.sam.video.masks.get(0).objects[0].area");
        int blue0 = (await CountOverlay(page, "#vview")).blue;
        Assert.True(area0 > 270 && blue0 > 1000, $"mask area {area0}, blue pixels {blue0}");

        // track forwards: the frames come in and the slider follows them to the last one
        await page.ClickAsync("#vfwd");
        await page.WaitForFunctionAsync("() => document.getElementById('vstatus').textContent.startsWith('tracked')");
        Assert.Equal("tracked 6 frame(s) forwards. Scrub to check; click a frame to correct it and track again.", await page.Locator("#vstatus").TextContentAsync());
        Assert.Equal("5", await page.InputValueAsync("#vslider"));
        Assert.Equal(6, await page.EvaluateAsync<int>("() => window.sam.video.masks.size"));

        // scrub to frame 3: the canvas shows that frame (the block starts at x = 29 there)
        await page.Locator("#vslider").FillAsync("3");
        await page.WaitForFunctionAsync("() => document.getElementById('vframe').textContent === 'frame 3 / 5'");
        await page.EvaluateAsync("() => new Promise(r => setTimeout(r, 200))");
        var dark = await page.EvaluateAsync<int[]>("() => { const d = document.getElementById('vview').getContext('2d').getImageData(0, 48, 96, 1).data; return [d[27 * 4], d[31 * 4], d[60 * 4]]; }");
        Assert.True(dark[0] > 100 && dark[2] > 100, $"background at x=27 and 60 on frame 3: {string.Join(",", dark)}");

        // a correction click on frame 3, then track again from there
        var (kx, ky) = await ToScreen(page, 44, 48, 96, 96, "#vview");
        await page.RunAndWaitForResponseAsync(() => page.Mouse.ClickAsync(kx, ky), r => r.Url.Contains("/prompt", StringComparison.Ordinal) && r.Status == 200);
        await page.WaitForFunctionAsync("() => window.sam.video.masks.get(3).objects[0].area > 0");
        int area3 = await page.EvaluateAsync<int>("() => window.sam.video.masks.get(3).objects[0].area");
        int blue3 = (await CountOverlay(page, "#vview")).blue;
        Assert.True(area3 > 100 && blue3 > 1000, $"corrected frame 3: mask area {area3}, blue pixels {blue3}");
        if (DocsDir is { } docs) await page.ScreenshotAsync(new() { Path = Path.Combine(docs, "serve-video.png") });
        // (tracking recomputes a corrected non-conditioning frame with its clicks and the memory, as upstream does)
        await page.ClickAsync("#vfwd");
        await page.WaitForFunctionAsync("() => document.getElementById('vstatus').textContent.startsWith('tracked 3 frame(s)')");

        var zip = await page.RunAndWaitForDownloadAsync(() => page.ClickAsync("#vexport"));
        Assert.Equal("frames.masks.zip", zip.SuggestedFilename);
    }

    [Fact]
    public async Task GlyphSheet_SegmentSelectFixUndoExport()
    {
        // the top-left 256×128 of the demo specimen: a few lines of glyphs
        var sheet = ImageIO.Read(TestPaths.Specimen);
        const int W = 256, H = 128;
        var px = new byte[W * H * 3];
        for (int y = 0; y < H; y++) Array.Copy(sheet.Pixels, y * sheet.Width * 3, px, y * W * 3, W * 3);
        string file = Path.Combine(_dir, "sheet.png");
        File.WriteAllBytes(file, Sam2Server.EncodePng(px, H, W, 3));
        // what the library finds on it
        List<TorchSam2.Glyphs.GlyphResult> expected;
        using (var predictor = new Sam2ImagePredictor(fixture.Model))
            expected = new TorchSam2.Glyphs.GlyphSegmenter(predictor).Segment(new RgbImage(px, H, W));
        Assert.True(expected.Count >= 5, $"{expected.Count} glyphs");

        await using var session = await StartAsync();
        var page = session.Page;
        await page.Locator("#file").SetInputFilesAsync(file);
        await page.WaitForFunctionAsync("() => document.getElementById('status').textContent.includes('encoded in')");
        await page.ClickAsync("#glyphs");
        await page.WaitForFunctionAsync("() => document.getElementById('status').textContent.includes('glyph(s) from')");
        Assert.Equal(expected.Count, await page.EvaluateAsync<int>("() => window.sam.state.objects.length"));
        Assert.Equal(expected[0].ToRle(H, W).ToCocoString(), await page.EvaluateAsync<string>("() => window.sam.state.objects[0].masks[0].rle.counts"));
        // every glyph is drawn: coloured pixels over the grey sheet
        var shot = ImageIO.Decode(await page.Locator("#view").ScreenshotAsync());
        int coloured = Enumerable.Range(0, shot.Width * shot.Height)
            .Count(i => shot.Pixels.AsSpan(i * 3, 3).ToArray() is var c && c.Max() - c.Min() > 60);
        Assert.True(coloured > 500, $"{coloured} coloured pixels");
        if (DocsDir is { } docs) await page.ScreenshotAsync(new() { Path = Path.Combine(docs, "serve-glyphs.png") });

        // a click on glyph 3 selects it; a second click fixes it with its box and the click; undo brings the pipeline's mask back
        var g = expected[2];
        float gx = (g.Box[0] + g.Box[2]) / 2, gy = (g.Box[1] + g.Box[3]) / 2;
        var (cx, cy) = await ToScreen(page, gx, gy, W, H);
        await page.Mouse.ClickAsync(cx, cy);
        int selected = await page.EvaluateAsync<int>("() => window.sam.state.current.id");
        Assert.Contains(selected, expected.Where(e => gx >= e.Box[0] && gx <= e.Box[2] && gy >= e.Box[1] && gy <= e.Box[3]).Select(e => e.Id + 1));
        string before = await page.EvaluateAsync<string>("() => { const o = window.sam.state.current; return o.masks[o.choice].rle.counts; }");
        await PredictAfter(page, () => page.Mouse.ClickAsync(cx, cy));
        Assert.Equal(1, await page.EvaluateAsync<int>("() => window.sam.state.current.points.length"));
        Assert.NotNull(await page.EvaluateAsync<float[]?>("() => window.sam.state.current.box"));
        await page.ClickAsync("#undo");
        Assert.Equal(before, await page.EvaluateAsync<string>("() => { const o = window.sam.state.current; return o.masks[o.choice].rle.counts; }"));

        var dl = await page.RunAndWaitForDownloadAsync(() => page.ClickAsync("#exportglyphs"));
        Assert.Equal("glyphs.json", dl.SuggestedFilename);
        string path = Path.Combine(_dir, "glyphs.json");
        await dl.SaveAsAsync(path);
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var glyphs = doc.RootElement.GetProperty("glyphs");
        Assert.Equal(expected.Count, glyphs.GetArrayLength());
        Assert.Equal(expected[1].ToRle(H, W).ToCocoString(), glyphs[1].GetProperty("segmentation").GetProperty("counts").GetString());
        Assert.Equal(expected[1].Box, glyphs[1].GetProperty("box").EnumerateArray().Select(e => e.GetSingle()));
    }

    [Fact]
    public async Task AutoMasks_OverlayAndHoverInfo()
    {
        string file = Path.Combine(VideoTests.Frames(_dir), "00000.png");
        // the library on the same image and settings (the demo model's scores are low: loose filters)
        var options = new AutomaticMaskGeneratorOptions { PointsPerSide = 16, PredIouThresh = 0.2, StabilityScoreThresh = 0.5 };
        List<MaskRecord> expected;
        using (var generator = new AutomaticMaskGenerator(fixture.Model, options)) expected = generator.Generate(ImageIO.Read(file));
        Assert.NotEmpty(expected);

        await using var session = await StartAsync();
        var page = session.Page;
        await page.Locator("#file").SetInputFilesAsync(file);
        await page.WaitForFunctionAsync("() => document.getElementById('status').textContent.includes('encoded in')");
        await page.FillAsync("#autogrid", "16");
        await page.FillAsync("#autoiou", "0.2");
        await page.FillAsync("#autostab", "0.5");
        await page.ClickAsync("#auto");
        await page.WaitForFunctionAsync("() => document.getElementById('status').textContent.includes('automatic mask(s)')");
        Assert.Equal(expected.Count, await page.EvaluateAsync<int>("() => window.sam.state.auto.masks.length"));
        var largest = expected.MaxBy(r => r.Area)!;
        Assert.Equal(largest.Rle.ToCocoString(), await page.EvaluateAsync<string>("() => window.sam.state.auto.masks[0].segmentation.counts"));
        var (blue, red) = await CountOverlay(page);
        Assert.True(blue + red > 200, $"overlay pixels: {blue} blue, {red} tomato");

        // hovering a pixel of the smallest mask there names that mask
        var top = expected.OrderBy(r => r.Area).First(r => r.ToMask().Any(v => v));
        int k = Array.IndexOf(top.ToMask(), true);
        var (hx, hy) = await ToScreen(page, k % 96, k / 96, 96, 96);
        await page.Mouse.MoveAsync(hx, hy);
        await page.WaitForFunctionAsync("() => !document.getElementById('tip').hidden");
        string tip = (await page.Locator("#tip").TextContentAsync())!;
        Assert.Matches(@"^mask \d+ · \d+ px · IoU 0\.\d{3} · stability 0\.\d{3} · bbox ", tip);
        if (DocsDir is { } docs) await page.ScreenshotAsync(new() { Path = Path.Combine(docs, "serve-auto.png") });
    }

    [Fact]
    public async Task ImagePage_ShowsErrors()
    {
        await using var session = await StartAsync(new ServerOptions { MaxUploadBytes = 4096 });
        var page = session.Page;
        string bad = Path.Combine(_dir, "bad.png");
        File.WriteAllText(bad, "not an image at all");
        await page.Locator("#file").SetInputFilesAsync(bad);
        await page.WaitForFunctionAsync("() => document.getElementById('status').classList.contains('error')");
        Assert.Equal("'bad.png' is not an image this server can read (cannot decode image bytes)", await page.Locator("#status").TextContentAsync());

        string large = Path.Combine(_dir, "large.png");
        File.WriteAllBytes(large, await File.ReadAllBytesAsync(TestPaths.Specimen));
        await page.Locator("#file").SetInputFilesAsync(large);
        await page.WaitForFunctionAsync("() => document.getElementById('status').textContent.includes('limit')");
        Assert.Contains("above the limit of 4 KiB", await page.Locator("#status").TextContentAsync());
    }
}
