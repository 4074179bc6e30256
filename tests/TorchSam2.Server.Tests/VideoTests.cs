using System.IO.Compression;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Playwright;
using TorchSam2.IO;
using TorchSam2.Utils;

namespace TorchSam2.Server.Tests;

/// <summary>Video sessions: a folder of frames under --root, prompts, tracking with polled progress, export, limits.</summary>
[Collection("server")]
public sealed class VideoTests(ModelFixture fixture) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("torchsam2-video-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>Six 96² frames: a dark 30×36 block on light grey moving 3 px right per frame.</summary>
    internal static string Frames(string root)
    {
        string dir = Path.Combine(root, "frames");
        Directory.CreateDirectory(dir);
        for (int f = 0; f < 6; f++)
        {
            var px = new byte[96 * 96 * 3];
            Array.Fill(px, (byte)200);
            for (int y = 30; y < 66; y++)
                for (int x = 20 + 3 * f; x < 50 + 3 * f; x++)
                    px[(y * 96 + x) * 3] = px[(y * 96 + x) * 3 + 1] = px[(y * 96 + x) * 3 + 2] = 20;
            File.WriteAllBytes(Path.Combine(dir, $"{f:D5}.png"), Sam2Server.EncodePng(px, 96, 96, 3));
        }
        return dir;
    }

    private static async Task<TrackStatus> TrackAsync(HttpClient c, string id, int start, bool reverse)
    {
        using var r = await c.PostAsJsonAsync($"/api/videos/{id}/track", new PropagateRequest(start, reverse));
        Assert.Equal(HttpStatusCode.Accepted, r.StatusCode);
        var frames = new List<FrameMasks>();
        for (int i = 0; i < 600; i++)
        {
            var st = (await c.GetFromJsonAsync<TrackStatus>($"/api/videos/{id}/track?since={frames.Count}"))!;
            frames.AddRange(st.Frames);
            if (!st.Running) return st with { Frames = frames };
            await Task.Delay(50);
        }
        throw new TimeoutException("tracking did not finish");
    }

    [Fact]
    public async Task FolderOfFrames_PromptTrackExport()
    {
        Frames(_dir);
        using var app = fixture.Start(new ServerOptions { Root = _dir, MaxVideoSessions = 1 });
        var c = app.Client;
        using var open = await c.PostAsJsonAsync("/api/videos/open", new VideoOpenRequest("frames"));
        var v = (await open.Content.ReadFromJsonAsync<VideoInfo>())!;
        Assert.Equal((6, 96, 96), (v.NumFrames, v.Width, v.Height));
        // one video at a time here
        using (var second = await c.PostAsJsonAsync("/api/videos/open", new VideoOpenRequest("frames")))
            Assert.Equal(HttpStatusCode.TooManyRequests, second.StatusCode);
        // paths as for images
        using (var outside = await c.PostAsJsonAsync("/api/videos/open", new VideoOpenRequest("../")))
            Assert.Equal(HttpStatusCode.Forbidden, outside.StatusCode);

        // a box around the block on frame 2 finds it (the block is 30×36 = 1080 px there)
        using var p = await c.PostAsJsonAsync($"/api/videos/{v.Id}/prompt", new VideoPromptRequest(2, 1, Box: [24, 28, 58, 68]));
        var fm = (await p.Content.ReadFromJsonAsync<FrameMasks>())!;
        Assert.Equal(2, fm.Frame);
        var mask = Rle.FromCocoString(fm.Objects.Single().Rle.Counts, 96, 96).DecodeRowMajor();
        var block = Enumerable.Range(0, 96 * 96).Select(i => i / 96 is >= 30 and < 66 && i % 96 is >= 26 and < 56).ToArray();
        Assert.True(TestImages.IoU(mask, block) > 0.8, $"IoU {TestImages.IoU(mask, block):F3}");

        // forwards from 2: frames 2..5, then backwards: 2..0, every frame reported once per pass
        var fwd = await TrackAsync(c, v.Id, 2, false);
        Assert.Null(fwd.Error);
        Assert.Equal([2, 3, 4, 5], fwd.Frames.Select(f => f.Frame));
        Assert.Equal((4, 4), (fwd.Done, fwd.Total));
        var back = await TrackAsync(c, v.Id, 2, true);
        Assert.Equal([2, 1, 0], back.Frames.Select(f => f.Frame));

        // a prompt while tracking would be refused; after it, a correction on frame 4 replaces that frame's mask
        using var corr = await c.PostAsJsonAsync($"/api/videos/{v.Id}/prompt", new VideoPromptRequest(4, 1, [[40, 48]], [1]));
        Assert.Equal(HttpStatusCode.OK, corr.StatusCode);
        var fm4 = (await corr.Content.ReadFromJsonAsync<FrameMasks>())!;
        var stored = (await c.GetFromJsonAsync<FrameMasks>($"/api/videos/{v.Id}/masks/4"))!;
        Assert.Equal(fm4.Objects.Single().Rle.Counts, stored.Objects.Single().Rle.Counts);

        // the export: masks.json as track writes it and one indexed PNG per frame
        var zipBytes = await c.GetByteArrayAsync($"/api/videos/{v.Id}/export");
        using var zip = new ZipArchive(new MemoryStream(zipBytes));
        Assert.Equal(["masks.json", "masks/00000.png", "masks/00001.png", "masks/00002.png", "masks/00003.png", "masks/00004.png", "masks/00005.png"],
                     zip.Entries.Select(e => e.FullName).Order(StringComparer.Ordinal));
        using var json = JsonDocument.Parse(zip.GetEntry("masks.json")!.Open());
        Assert.Equal(6, json.RootElement.GetProperty("frames").GetArrayLength());
        Assert.Equal([1], json.RootElement.GetProperty("object_ids").EnumerateArray().Select(e => e.GetInt32()));
        using var png2 = new MemoryStream();
        zip.GetEntry("masks/00002.png")!.Open().CopyTo(png2);
        var indexed = ImageIO.Decode(png2.ToArray());
        Assert.Equal(mask, Enumerable.Range(0, 96 * 96).Select(i => indexed.Pixels[i * 3] == 1).ToArray());

        // removing the object empties every frame
        using (var del = await c.DeleteAsync($"/api/videos/{v.Id}/objects/1")) Assert.Equal(HttpStatusCode.OK, del.StatusCode);
        Assert.Empty((await c.GetFromJsonAsync<FrameMasks>($"/api/videos/{v.Id}/masks/2"))!.Objects);
        using (var del = await c.DeleteAsync($"/api/videos/{v.Id}/objects/1")) Assert.Equal(HttpStatusCode.NotFound, del.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await c.DeleteAsync($"/api/videos/{v.Id}")).StatusCode);
        using (var again = await c.PostAsJsonAsync("/api/videos/open", new VideoOpenRequest("frames")))
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
    }

    [Fact]
    public async Task AFrameLinkingOutOfRoot_IsRefused()
    {
        string root = Path.Combine(_dir, "root"), outside = Path.Combine(_dir, "outside");
        Directory.CreateDirectory(root);
        Frames(outside);
        Frames(root);
        File.Delete(Path.Combine(root, "frames", "00003.png"));
        File.CreateSymbolicLink(Path.Combine(root, "frames", "00003.png"), Path.Combine(outside, "frames", "00003.png"));
        using var app = fixture.Start(new ServerOptions { Root = root });
        using var r = await app.Client.PostAsJsonAsync("/api/videos/open", new VideoOpenRequest("frames"));
        Assert.Equal(HttpStatusCode.Forbidden, r.StatusCode);
        Assert.Equal("'frames/00003.png' leads outside the served folder (a link out): refused", (await r.Content.ReadFromJsonAsync<ErrorBody>())!.Error);
        // the same folder with every frame inside opens
        File.Delete(Path.Combine(root, "frames", "00003.png"));
        File.Copy(Path.Combine(outside, "frames", "00003.png"), Path.Combine(root, "frames", "00003.png"));
        using var ok = await app.Client.PostAsJsonAsync("/api/videos/open", new VideoOpenRequest("frames"));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    [Fact]
    public async Task BadVideos_AreJsonErrors()
    {
        using var app = fixture.Start(new ServerOptions { Root = _dir });
        Directory.CreateDirectory(Path.Combine(_dir, "empty"));
        File.WriteAllText(Path.Combine(_dir, "clip.mp4"), "not a video");
        using (var r = await app.Client.PostAsJsonAsync("/api/videos/open", new VideoOpenRequest("empty")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
            Assert.StartsWith("cannot open 'empty' as a video", (await r.Content.ReadFromJsonAsync<ErrorBody>())!.Error);
        }
        using (var r = await app.Client.PostAsJsonAsync("/api/videos/open", new VideoOpenRequest("clip.mp4")))
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        using (var r = await app.Client.PostAsync("/api/videos?name=notes.txt", new ByteArrayContent([1, 2, 3])))
            Assert.Equal("'notes.txt' is not a video file name (.mp4, .avi, .mov, .mkv, .webm, .m4v, .mpg, .mpeg, .wmv, .flv)", (await r.Content.ReadFromJsonAsync<ErrorBody>())!.Error);
        Assert.Equal(0, app.App.Services.GetService(typeof(VideoSessions)) is VideoSessions vs ? vs.Count : -1);
    }
}
