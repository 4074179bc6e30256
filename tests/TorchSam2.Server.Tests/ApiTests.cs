using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using TorchSam2.IO;
using TorchSam2.Utils;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchSam2.Server.Tests;

[Collection("server")]
public sealed class ApiTests(ModelFixture fixture)
{
    /// <summary>A pixel inside the specimen's first annotated glyph (x, y), from its COCO RLE.</summary>
    internal static (int x, int y) GlyphPixel(int annotation = 0)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.ChangeExtension(TestPaths.Specimen, ".annotations.json")));
        var seg = doc.RootElement.GetProperty("annotations")[annotation].GetProperty("segmentation");
        int h = seg.GetProperty("size")[0].GetInt32(), w = seg.GetProperty("size")[1].GetInt32();
        var mask = Rle.FromCocoString(seg.GetProperty("counts").GetString()!, h, w).DecodeRowMajor();
        // the middle pixel of the glyph's pixels in row-major order: inside the stroke, not on its edge
        var on = Enumerable.Range(0, mask.Length).Where(i => mask[i]).ToArray();
        int k = on[on.Length / 2];
        return (k % w, k / w);
    }

    private static async Task<string> ErrorOf(HttpResponseMessage r)
    {
        Assert.Equal("application/json", r.Content.Headers.ContentType?.MediaType);
        using var doc = JsonDocument.Parse(await r.Content.ReadAsStringAsync());
        return doc.RootElement.GetProperty("error").GetString()!;
    }

    [Fact]
    public async Task Predict_ReturnsTheMasksOfSam2ImagePredictor()
    {
        using var app = fixture.Start();
        var bytes = await File.ReadAllBytesAsync(TestPaths.Specimen);
        var info = await app.UploadAsync(bytes, "specimen.png");
        Assert.Equal((768, 768), (info.Width, info.Height));
        var (x, y) = GlyphPixel();

        using var r = await app.Client.PostAsJsonAsync($"/api/images/{info.Id}/predict", new PredictRequest([[x, y]], [1], Multimask: true, Format: "both"));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var timing = string.Join(",", r.Headers.GetValues("Server-Timing"));
        Assert.Matches(@"decoder;dur=[0-9.]+", timing);
        var p = (await r.Content.ReadFromJsonAsync<PredictResponse>())!;
        Assert.Equal(3, p.Masks.Count);

        // the same prompt straight through the library
        using var predictor = new Sam2ImagePredictor(fixture.Model);
        predictor.SetImage(TestImages.Decode(bytes));
        using var direct = predictor.Predict([[x, y]], [1], multimaskOutput: true);
        var scores = direct.Scores;
        for (int c = 0; c < 3; c++)
        {
            using var m = direct.Masks[c];
            var expected = Rle.Encode(m);
            Assert.Equal(expected.ToCocoString(), p.Masks[c].Rle!.Counts);
            Assert.Equal(expected.Area(), p.Masks[c].Area);
            Assert.Equal(scores[c], p.Masks[c].Score!.Value, 5);
            // the PNG holds the same pixels (255 where the mask is on)
            var png = ImageIO.Decode(Convert.FromBase64String(p.Masks[c].Png!));
            bool[] fromPng = Enumerable.Range(0, 768 * 768).Select(i => png.Pixels[i * 3] == 255).ToArray();
            Assert.Equal(expected.DecodeRowMajor(), fromPng);
        }
        Assert.Equal(direct.BestIndex, p.Best);

        // refining with the chosen mask's logits matches the library fed the same low-res logits
        using var r2 = await app.Client.PostAsJsonAsync($"/api/images/{info.Id}/predict",
            new PredictRequest([[x, y], [x + 40, y]], [1, 0], Multimask: false, MaskInput: p.Masks[p.Best].Logits));
        var p2 = (await r2.Content.ReadFromJsonAsync<PredictResponse>())!;
        using var low = direct.LowResMasks.narrow(0, direct.BestIndex, 1);
        using var direct2 = predictor.Predict([[x, y], [x + 40, y]], [1, 0], maskInput: low, multimaskOutput: false);
        using var m2 = direct2.Masks[0];
        Assert.Equal(Rle.Encode(m2).ToCocoString(), p2.Masks[0].Rle!.Counts);

        // a box prompt (the whole sheet is too small-scaled for this 256 px model; see the crop test for the glyph it finds)
        using var r3 = await app.Client.PostAsJsonAsync($"/api/images/{info.Id}/predict", new PredictRequest(Box: [x - 20, y - 20, x + 20, y + 20], Multimask: false));
        var p3 = (await r3.Content.ReadFromJsonAsync<PredictResponse>())!;
        using var direct3 = predictor.Predict(box: [x - 20, y - 20, x + 20, y + 20], multimaskOutput: false);
        using var m3 = direct3.Masks[0];
        Assert.Equal(Rle.Encode(m3).ToCocoString(), p3.Masks[0].Rle!.Counts);
    }

    [Fact]
    public async Task BoxOnAGlyphCrop_FindsTheGlyph()
    {
        using var app = fixture.Start();
        var (png, box, truth, side) = TestImages.SpecimenCrop();
        var info = await app.UploadAsync(png, "glyph.png");
        using var r = await app.Client.PostAsJsonAsync($"/api/images/{info.Id}/predict", new PredictRequest(Box: box, Multimask: false));
        var p = (await r.Content.ReadFromJsonAsync<PredictResponse>())!;
        var mask = Rle.FromCocoString(p.Masks[0].Rle!.Counts, side, side).DecodeRowMajor();
        double iou = TestImages.IoU(mask, truth);
        Console.WriteLine($"glyph crop {side}², box {string.Join(",", box)}: area {p.Masks[0].Area} (truth {truth.Count(v => v)}), IoU {iou:F3}, score {p.Masks[0].Score}");
        Assert.True(iou > 0.5, $"IoU {iou:F3}");
    }

    [Fact]
    public async Task Uploads_AreCappedAndValidated()
    {
        var specimen = await File.ReadAllBytesAsync(TestPaths.Specimen);
        using (var small = fixture.Start(new ServerOptions { MaxUploadBytes = 100_000 }))
        {
            using var r = await small.Client.PostAsync("/api/images", new ByteArrayContent(specimen));
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, r.StatusCode);
            Assert.Contains("above the limit of 97.7 KiB", await ErrorOf(r));
        }
        using (var few = fixture.Start(new ServerOptions { MaxImagePixels = 500_000 }))
        {
            using var r = await few.Client.PostAsync("/api/images?name=specimen.png", new ByteArrayContent(specimen));
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, r.StatusCode);
            Assert.Contains("'specimen.png' is 768x768 (0.6 MP), above the server's limit of 0.5 MP", await ErrorOf(r));
        }
        using var app = fixture.Start();
        // not an image
        using (var r = await app.Client.PostAsync("/api/images?name=notes.txt", new ByteArrayContent(Encoding.UTF8.GetBytes("hello, not a picture"))))
        {
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
            Assert.StartsWith("'notes.txt' is not an image this server can read", await ErrorOf(r));
        }
        // a truncated PNG
        using (var r = await app.Client.PostAsync("/api/images", new ByteArrayContent(specimen[..200])))
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        // a PNG header that claims 40000×40000: refused from the header, before any decoding (the library's limit is 50 MP)
        var huge = (byte[])specimen.Clone();
        huge[16] = 0; huge[17] = 0; huge[18] = 0x9C; huge[19] = 0x40; // IHDR width = 40000
        huge[20] = 0; huge[21] = 0; huge[22] = 0x9C; huge[23] = 0x40; // IHDR height = 40000
        using (var r = await app.Client.PostAsync("/api/images?name=huge.png", new ByteArrayContent(huge)))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, r.StatusCode);
            Assert.Contains("40000x40000 (1600 MP)", await ErrorOf(r));
        }
        using (var r = await app.Client.PostAsync("/api/images", new ByteArrayContent([])))
        {
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
            Assert.Contains("empty", await ErrorOf(r));
        }
        Assert.Equal(0, (await app.Client.GetFromJsonAsync<ServerInfo>("/api/info"))!.Sessions);
    }

    [Fact]
    public async Task BadPrompts_AreJsonErrors()
    {
        using var app = fixture.Start();
        var info = await app.UploadAsync(TestImages.Png(64, 48));
        string url = $"/api/images/{info.Id}/predict";
        async Task<(HttpStatusCode, string)> Post(string json)
        {
            using var r = await app.Client.PostAsync(url, new StringContent(json, Encoding.UTF8, "application/json"));
            return (r.StatusCode, await ErrorOf(r));
        }
        var (s1, e1) = await Post("""{"points":[[70,10]],"labels":[1]}""");
        Assert.Equal((HttpStatusCode.BadRequest, "point (70, 10) lies outside the image (0..64, 0..48)"), (s1, e1));
        var (s2, e2) = await Post("""{"points":[[10,10]],"labels":[1],""");
        Assert.Equal(HttpStatusCode.BadRequest, s2);
        Assert.Contains("JSON", e2);
        var (s3, e3) = await Post("""{"points":[[10,10],[20,20]],"labels":[1]}""");
        Assert.Equal((HttpStatusCode.BadRequest, "2 point(s) need as many labels (1 foreground, 0 background), got 1"), (s3, e3));
        var (s4, e4) = await Post("""{"multimask":true}""");
        Assert.Equal((HttpStatusCode.BadRequest, "give at least one point or a box"), (s4, e4));
        var (s5, e5) = await Post("""{"points":[[10,10]],"labels":[1],"maskInput":"99.0"}""");
        Assert.Equal(HttpStatusCode.BadRequest, s5);
        Assert.StartsWith("maskInput '99.0' is not one of this image's recent masks", e5);
        var (s6, e6) = await Post("""{"points":[[10,10]],"labels":[3]}""");
        Assert.Equal((HttpStatusCode.BadRequest, "labels must be 1 (foreground) or 0 (background), got [3]"), (s6, e6));

        using var missing = await app.Client.PostAsJsonAsync("/api/images/nope/predict", new PredictRequest([[1, 1]], [1]));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.StartsWith("no image 'nope'", await ErrorOf(missing));
        using var route = await app.Client.GetAsync("/api/nothing/here");
        Assert.Equal(HttpStatusCode.NotFound, route.StatusCode);
        Assert.Equal("no such API route: GET /api/nothing/here", await ErrorOf(route));
    }

    [Fact]
    public async Task Sessions_AreCapped_AndEmbeddingsEvictedLeastRecentlyUsed()
    {
        using var app = fixture.Start(new ServerOptions { MaxSessions = 2, MaxEmbeddings = 1 });
        var a = await app.UploadAsync(TestImages.Png(64, 64, 0), "a.png");
        var b = await app.UploadAsync(TestImages.Png(64, 64, 10), "b.png");
        var info = (await app.Client.GetFromJsonAsync<ServerInfo>("/api/info"))!;
        Assert.Equal((2, 1), (info.Sessions, info.Embeddings));

        // a's embedding was dropped for b's: a click on a encodes it again (and drops b's)
        using (var r = await app.Client.PostAsJsonAsync($"/api/images/{a.Id}/predict", new PredictRequest([[32, 32]], [1])))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            Assert.Matches(@"(^|, )encode;dur=", string.Join(",", r.Headers.GetValues("Server-Timing")));
        }
        using (var r = await app.Client.PostAsJsonAsync($"/api/images/{a.Id}/predict", new PredictRequest([[30, 30]], [1])))
            Assert.DoesNotContain("encode;", string.Join(",", r.Headers.GetValues("Server-Timing")));
        Assert.Equal(1, (await app.Client.GetFromJsonAsync<ServerInfo>("/api/info"))!.Embeddings);

        // a third image closes the least recently used session (b: a was clicked since)
        var c = await app.UploadAsync(TestImages.Png(64, 64, 20), "c.png");
        using (var r = await app.Client.PostAsJsonAsync($"/api/images/{b.Id}/predict", new PredictRequest([[32, 32]], [1])))
            Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await app.Client.GetAsync($"/api/images/{a.Id}")).StatusCode);
        Assert.Equal(2, (await app.Client.GetFromJsonAsync<ServerInfo>("/api/info"))!.Sessions);

        // closing frees it
        Assert.Equal(HttpStatusCode.NoContent, (await app.Client.DeleteAsync($"/api/images/{c.Id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await app.Client.DeleteAsync($"/api/images/{c.Id}")).StatusCode);
        Assert.Equal(1, (await app.Client.GetFromJsonAsync<ServerInfo>("/api/info"))!.Sessions);
    }

    [Fact]
    public async Task Encodes_BeyondTheCap_AreRefused()
    {
        using var gate = new ModelGate(fixture.Model, maxPendingEncodes: 1);
        using var started = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var first = Task.Run(() => gate.EncodeAsync(() => { started.Set(); release.Wait(); return 1; }));
        started.Wait();
        var e = await Assert.ThrowsAsync<ApiException>(() => gate.EncodeAsync(() => 2));
        Assert.Equal(503, e.Status);
        // a predict is not an encode: it waits for the gate instead
        var predict = gate.RunAsync(() => 3);
        Assert.False(predict.IsCompleted);
        release.Set();
        Assert.Equal(1, (await first).result);
        Assert.Equal(3, (await predict).result);
        Assert.Equal(4, (await gate.EncodeAsync(() => 4)).result);
    }

    [Fact]
    public async Task Page_OpenApi_AndInfo_AreServed()
    {
        using var app = fixture.Start();
        var html = await app.Client.GetStringAsync("/");
        Assert.Contains("<canvas id=\"view\"", html);
        using var js = await app.Client.GetAsync("/app.js");
        Assert.Equal("text/javascript", js.Content.Headers.ContentType?.MediaType);
        using var doc = JsonDocument.Parse(await app.Client.GetStringAsync("/openapi/v1.json"));
        var paths = doc.RootElement.GetProperty("paths");
        foreach (var p in new[] { "/api/images", "/api/images/{id}/predict", "/api/images/{id}", "/api/images/open", "/api/files", "/api/info" })
            Assert.True(paths.TryGetProperty(p, out _), p);
        var info = (await app.Client.GetFromJsonAsync<ServerInfo>("/api/info"))!;
        Assert.Equal((256, false, 16), (info.ImageSize, info.RootServed, info.MaxSessions));
    }
}
