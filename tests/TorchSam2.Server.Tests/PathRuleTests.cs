using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace TorchSam2.Server.Tests;

/// <summary>--root: the only readable folder; nothing outside it by '..', an absolute path or a link.</summary>
[Collection("server")]
public sealed class PathRuleTests(ModelFixture fixture) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("torchsam2-serve-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private (string root, string outside) Layout()
    {
        string root = Path.Combine(_dir, "root"), outside = Path.Combine(_dir, "outside");
        Directory.CreateDirectory(Path.Combine(root, "sub"));
        Directory.CreateDirectory(outside);
        var png = TestImages.Png(32, 32);
        File.WriteAllBytes(Path.Combine(root, "sub", "in.png"), png);
        File.WriteAllBytes(Path.Combine(outside, "secret.png"), png);
        File.CreateSymbolicLink(Path.Combine(root, "link.png"), Path.Combine(outside, "secret.png"));
        Directory.CreateSymbolicLink(Path.Combine(root, "linkdir"), outside);
        File.CreateSymbolicLink(Path.Combine(root, "sub", "inside-link.png"), Path.Combine(root, "sub", "in.png"));
        return (root, outside);
    }

    private static async Task<(HttpStatusCode status, string? error)> Open(TestApp app, string path)
    {
        using var r = await app.Client.PostAsJsonAsync("/api/images/open", new OpenRequest(path));
        if (r.IsSuccessStatusCode) return (r.StatusCode, null);
        using var doc = JsonDocument.Parse(await r.Content.ReadAsStringAsync());
        return (r.StatusCode, doc.RootElement.GetProperty("error").GetString());
    }

    [Fact]
    public async Task WithRoot_OnlyFilesInsideItOpen()
    {
        var (root, outside) = Layout();
        using var app = fixture.Start(new ServerOptions { Root = root });
        Assert.Equal(HttpStatusCode.OK, (await Open(app, "sub/in.png")).status);
        Assert.Equal(HttpStatusCode.OK, (await Open(app, "sub/inside-link.png")).status); // a link that stays inside

        Assert.Equal((HttpStatusCode.Forbidden, "'..' is refused in paths: give a path inside the served folder"), await Open(app, "../outside/secret.png"));
        Assert.Equal(HttpStatusCode.Forbidden, (await Open(app, "sub/../sub/in.png")).status);
        Assert.Equal((HttpStatusCode.Forbidden, "absolute paths are refused: give a path relative to the served folder"),
                     await Open(app, Path.Combine(outside, "secret.png")));
        Assert.Equal((HttpStatusCode.Forbidden, "'link.png' leads outside the served folder (a link out): refused"), await Open(app, "link.png"));
        Assert.Equal(HttpStatusCode.Forbidden, (await Open(app, "linkdir/secret.png")).status);
        Assert.Equal((HttpStatusCode.NotFound, "not found in the served folder: 'nope.png'"), await Open(app, "nope.png"));
        Assert.Equal((HttpStatusCode.BadRequest, "'sub' is a folder, not a file"), await Open(app, "sub"));

        var listing = (await app.Client.GetFromJsonAsync<FolderListing>("/api/files?path=sub"))!;
        Assert.Equal(["in.png", "inside-link.png"], listing.Entries.Select(e => e.Name));
        Assert.Equal("sub/in.png", listing.Entries[0].Path);
        var top = (await app.Client.GetFromJsonAsync<FolderListing>("/api/files"))!;
        Assert.Equal(["link.png", "linkdir", "sub"], top.Entries.Select(e => e.Name));
        Assert.Equal(HttpStatusCode.Forbidden, (await app.Client.GetAsync("/api/files?path=linkdir")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await app.Client.GetAsync("/api/files?path=..")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await app.Client.GetAsync("/api/files?path=%2Fetc")).StatusCode);
    }

    [Fact]
    public async Task WithoutRoot_NoServerPathIsReadable()
    {
        var (root, _) = Layout();
        using var app = fixture.Start();
        var (status, error) = await Open(app, "sub/in.png");
        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.StartsWith("no server folder is readable", error);
        Assert.Equal(HttpStatusCode.Forbidden, (await Open(app, Path.Combine(root, "sub", "in.png"))).status);
        Assert.Equal(HttpStatusCode.Forbidden, (await app.Client.GetAsync("/api/files")).StatusCode);
    }
}
