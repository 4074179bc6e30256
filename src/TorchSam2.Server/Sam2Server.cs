using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenCvSharp;
using TorchSam2.IO;
using TorchSam2.Modeling;
using TorchSam2.Utils;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchSam2.Server;

/// <summary>
/// The interactive page and its HTTP API over one shared model (<c>torchsam2 serve</c>). Images: upload or open from
/// the served folder → encoded once → any number of predicts (the decoder only) → masks as COCO RLE or PNG.
/// Errors are <c>{ "error": "..." }</c> with a 4xx/5xx status; the OpenAPI document is at /openapi/v1.json.
/// </summary>
public static class Sam2Server
{
    /// <summary>
    /// Builds the app (not started). The model stays the caller's (disposed by the caller after the app stops);
    /// <paramref name="configure"/> may change the builder (tests: UseTestServer; the CLI: the listening address).
    /// </summary>
    public static WebApplication Build(ServerOptions options, SAM2Base model, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            // the routes check their own caps (images, videos) and answer 413 as JSON
            k.Limits.MaxRequestBodySize = Math.Max(options.MaxUploadBytes, options.MaxVideoUploadBytes) + 1;
            k.AddServerHeader = false;
        });
        builder.Services.AddOpenApi();
        // a body that does not bind (bad JSON, wrong types) throws, so it is answered as { "error": ... } like the rest
        builder.Services.Configure<Microsoft.AspNetCore.Routing.RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(new ModelGate(model, options.MaxPendingEncodes));
        builder.Services.AddSingleton(new ImageSessions(options));
        builder.Services.AddSingleton(new RootFolder(options.Root));
        builder.Services.AddSingleton(new VideoSessions(options, options.Config));
        configure?.Invoke(builder);
        var app = builder.Build();

        app.Use(ErrorsAsJson);
        app.MapOpenApi();
        MapPage(app);
        MapImages(app);
        MapVideos(app);
        app.MapFallback("/api/{**rest}", (HttpContext ctx) =>
            Results.Json(new ErrorBody($"no such API route: {ctx.Request.Method} {ctx.Request.Path}"), statusCode: 404)).ExcludeFromDescription();

        // sessions hold native tensors: free them with the server
        app.Lifetime.ApplicationStopped.Register(() =>
        {
            var gate = app.Services.GetRequiredService<ModelGate>();
            var sessions = app.Services.GetRequiredService<ImageSessions>();
            var videos = app.Services.GetRequiredService<VideoSessions>();
            var open = videos.RemoveAll();
            foreach (var v in open) v.Cancel = true;
            foreach (var v in open) v.Job?.Wait(TimeSpan.FromSeconds(30));
            gate.RunAsync(() =>
            {
                foreach (var s in sessions.RemoveAll()) s.Free();
                foreach (var v in open) v.Dispose();
                return 0;
            }).GetAwaiter().GetResult();
        });
        return app;
    }

    // ---- errors -------------------------------------------------------------------------------------------------

    private static async Task ErrorsAsJson(HttpContext ctx, Func<Task> next)
    {
        try
        {
            await next();
        }
        catch (Exception e) when (!ctx.Response.HasStarted && e is not OperationCanceledException)
        {
            var (status, message) = Describe(e);
            ctx.Response.Clear();
            ctx.Response.StatusCode = status;
            await ctx.Response.WriteAsJsonAsync(new ErrorBody(message));
        }
    }

    /// <summary>The status and one-line message of an error (no stack, no server paths beyond what the request named).</summary>
    internal static (int status, string message) Describe(Exception e) => e switch
    {
        ApiException a => (a.Status, a.Message),
        LimitExceededException => (413, OneLine(e.Message)),
        BadHttpRequestException b => (b.StatusCode, OneLine(b.InnerException is JsonException j ? $"{b.Message} ({j.Message})" : b.Message)),
        JsonException => (400, $"the request body is not valid JSON for this route: {OneLine(e.Message)}"),
        ArgumentException a => (400, OneLine(a.ParamName is { } pn ? a.Message.Replace($" (Parameter '{pn}')", "") : a.Message)),
        InvalidDataException or FormatException => (400, OneLine(e.Message)),
        _ => (500, $"internal error: {OneLine(e.Message)}"),
    };

    private static string OneLine(string s) =>
        string.Join(' ', s.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    // ---- the page -----------------------------------------------------------------------------------------------

    private static readonly Dictionary<string, string> ContentTypes = new()
    {
        [".html"] = "text/html; charset=utf-8", [".js"] = "text/javascript; charset=utf-8", [".css"] = "text/css; charset=utf-8",
        [".svg"] = "image/svg+xml", [".png"] = "image/png",
    };

    private static void MapPage(WebApplication app)
    {
        var asm = typeof(Sam2Server).Assembly;
        var files = asm.GetManifestResourceNames().Where(n => n.StartsWith("wwwroot/", StringComparison.Ordinal))
                       .ToDictionary(n => n["wwwroot/".Length..], n => ReadResource(asm, n));
        foreach (var (name, bytes) in files)
        {
            string type = ContentTypes.GetValueOrDefault(Path.GetExtension(name), "application/octet-stream");
            var handler = (HttpContext ctx) =>
            {
                ctx.Response.Headers.CacheControl = "no-cache";
                ctx.Response.Headers["X-Content-Type-Options"] = "nosniff";
                return Results.Bytes(bytes, type);
            };
            app.MapGet("/" + name, handler).ExcludeFromDescription();
            if (name == "index.html") app.MapGet("/", handler).ExcludeFromDescription();
        }
    }

    private static byte[] ReadResource(Assembly asm, string name)
    {
        using var s = asm.GetManifestResourceStream(name)!;
        using var ms = new MemoryStream();
        s.CopyTo(ms);
        return ms.ToArray();
    }

    // ---- images -------------------------------------------------------------------------------------------------

    private static void MapImages(WebApplication app)
    {
        app.MapGet("/api/info", (ServerOptions o, ModelGate gate, ImageSessions sessions, RootFolder root) =>
            new ServerInfo(o.ModelName, (int)gate.Model.image_size, root.IsServed, o.MaxUploadBytes, o.MaxImagePixels, o.MaxSessions,
                           o.MaxEmbeddings, o.MaxPendingEncodes, sessions.Count, sessions.EmbeddingCount))
           .WithSummary("The model and the server's bounds");

        app.MapGet("/api/files", (string? path, RootFolder root) =>
        {
            var real = root.Resolve(path);
            if (!Directory.Exists(real)) throw new ApiException(400, $"'{path}' is a file, not a folder");
            var entries = new DirectoryInfo(real).EnumerateFileSystemInfos().OrderBy(f => f.Name, StringComparer.Ordinal).Take(10_000)
                .Select(f => new FileEntry(f.Name, root.Relative(Path.Combine(real, f.Name)), f is DirectoryInfo, f is FileInfo fi ? fi.Length : 0)).ToList();
            return new FolderListing(root.Relative(real), entries);
        }).WithSummary("Lists a folder of the served folder (--root); 403 without --root or outside it");

        app.MapPost("/api/images", async (HttpContext ctx, ServerOptions o, ModelGate gate, ImageSessions sessions) =>
        {
            var bytes = await ReadBody(ctx.Request, o.MaxUploadBytes, ctx.RequestAborted);
            string name = CleanName(ctx.Request.Query["name"].ToString(), "upload");
            var image = DecodeImage(bytes, o, name);
            return await Open(ctx, image, name, gate, sessions);
        })
          .Produces<ImageInfo>().Produces<ErrorBody>(400).Produces<ErrorBody>(413).Produces<ErrorBody>(503)
          .WithSummary("Uploads an image (the request body is the file; ?name= labels it) and encodes it once");

        app.MapPost("/api/images/open", async (HttpContext ctx, OpenRequest req, ServerOptions o, ModelGate gate, ImageSessions sessions, RootFolder root) =>
        {
            var real = root.Resolve(req.Path);
            if (!File.Exists(real)) throw new ApiException(400, $"'{req.Path}' is a folder, not a file");
            long len = new FileInfo(real).Length;
            if (len > o.MaxUploadBytes) throw new ApiException(413, $"'{req.Path}' is {Mb(len)}, above the limit of {Mb(o.MaxUploadBytes)}");
            var image = DecodeImage(await File.ReadAllBytesAsync(real, ctx.RequestAborted), o, req.Path);
            return await Open(ctx, image, CleanName(req.Path, "image"), gate, sessions);
        }).Produces<ImageInfo>().Produces<ErrorBody>(403).Produces<ErrorBody>(404)
          .WithSummary("Opens an image of the served folder (--root) by its relative path and encodes it once");

        app.MapGet("/api/images/{id}", (string id, ImageSessions sessions) =>
        {
            var s = sessions.Get(id);
            return new ImageInfo(s.Id, s.Name, s.Image.Width, s.Image.Height, 0);
        }).WithSummary("An opened image's size and name");

        app.MapGet("/api/images/{id}/image", (string id, ImageSessions sessions) =>
        {
            var s = sessions.Get(id);
            return Results.Bytes(EncodePng(s.Image.Pixels, s.Image.Height, s.Image.Width, 3), "image/png");
        }).WithSummary("The opened image as PNG (for images opened from the served folder)");

        app.MapPost("/api/images/{id}/predict", Predict)
           .Produces<PredictResponse>().Produces<ErrorBody>(400).Produces<ErrorBody>(404)
           .WithSummary("Masks for one object's prompts; the Server-Timing header splits queue, encode (only after eviction), decoder and mask encoding");

        app.MapPost("/api/images/{id}/glyphs", async (HttpContext ctx, string id, ModelGate gate, ImageSessions sessions) =>
        {
            var session = sessions.Get(id);
            var sw = Stopwatch.StartNew();
            var (glyphs, waitMs) = await gate.EncodeAsync(() =>
            {
                // the glyph pipeline encodes its own crops (the session's embedding stays as it is)
                using var predictor = new Sam2ImagePredictor(gate.Model);
                var segmenter = new TorchSam2.Glyphs.GlyphSegmenter(predictor);
                var found = segmenter.Segment(session.Image);
                int h = session.Image.Height, w = session.Image.Width;
                return (found.Select(g =>
                {
                    var rle = g.ToRle(h, w);
                    var (bx, by, bw, bh) = g.Mask.BBox;
                    return new GlyphJson(g.Id + 1, g.Box, [bx, by, bw, bh], float.IsFinite(g.Score) ? g.Score : null, rle.Area(),
                                         new RleJson([rle.Height, rle.Width], rle.ToCocoString()));
                }).ToList(), segmenter.LastCropCount);
            }, ctx.RequestAborted);
            double ms = sw.Elapsed.TotalMilliseconds;
            SetTiming(ctx, ("queue", waitMs), ("glyphs", ms - waitMs), ("total", ms));
            return new GlyphsResponse(session.Name, session.Image.Height, session.Image.Width, glyphs.LastCropCount, glyphs.Item1, Math.Round(ms, 1));
        }).Produces<GlyphsResponse>().Produces<ErrorBody>(503)
          .WithSummary("Segments every glyph of the image as a font specimen (the glyph pipeline: candidates from the ink, a box prompt each on crops)");

        app.MapPost("/api/images/{id}/auto", async (HttpContext ctx, string id, AutoRequest req, ModelGate gate, ImageSessions sessions) =>
        {
            if (req.PointsPerSide is < 1 or > 64) throw new ApiException(400, $"pointsPerSide must be in 1..64, got {req.PointsPerSide}");
            if (!(req.PredIouThresh is >= 0 and <= 1) || !(req.StabilityScoreThresh is >= 0 and <= 1))
                throw new ApiException(400, "predIouThresh and stabilityScoreThresh must be in [0, 1]");
            var session = sessions.Get(id);
            var sw = Stopwatch.StartNew();
            var (masks, waitMs) = await gate.EncodeAsync(() =>
            {
                var options = new AutomaticMaskGeneratorOptions
                {
                    PointsPerSide = req.PointsPerSide, PredIouThresh = req.PredIouThresh, StabilityScoreThresh = req.StabilityScoreThresh,
                };
                using var generator = new AutomaticMaskGenerator(gate.Model, options);
                var records = generator.Generate(session.Image);
                static float? F(float v) => float.IsFinite(v) ? v : null;
                return records.OrderByDescending(r => r.Area).Select((r, i) => new AutoMask(i + 1, r.Bbox, r.Area, F(r.PredictedIou), F(r.StabilityScore),
                    r.PointCoords.FirstOrDefault() ?? [], new RleJson([r.Rle.Height, r.Rle.Width], r.Rle.ToCocoString()))).ToList();
            }, ctx.RequestAborted);
            double ms = sw.Elapsed.TotalMilliseconds;
            SetTiming(ctx, ("queue", waitMs), ("auto", ms - waitMs), ("total", ms));
            return new AutoResponse(masks, Math.Round(ms, 1));
        }).Produces<AutoResponse>().Produces<ErrorBody>(400).Produces<ErrorBody>(503)
          .WithSummary("Every mask of the image (SAM 2's automatic mask generator on a point grid), largest first");

        app.MapDelete("/api/images/{id}", async (string id, ModelGate gate, ImageSessions sessions) =>
        {
            var s = sessions.Remove(id) ?? throw new ApiException(404, "no such image (already closed or evicted)");
            await gate.RunAsync(() => { s.Free(); return 0; });
            return Results.NoContent();
        }).WithSummary("Closes an image and frees its embedding");
    }

    // ---- videos -------------------------------------------------------------------------------------------------

    private static void MapVideos(WebApplication app)
    {
        app.MapPost("/api/videos/open", async (VideoOpenRequest req, ServerOptions o, ModelGate gate, VideoSessions videos, RootFolder root) =>
        {
            var real = root.Resolve(req.Path);
            if (File.Exists(real) && !VideoReader.IsVideoFile(real))
                throw new ApiException(400, $"'{Clip(req.Path)}' is not a video file ({string.Join(", ", VideoReader.VideoExtensions)}) or a folder of frames");
            if (Directory.Exists(real))
            {
                // every frame the session will read must itself stay inside the served folder (a frame may be a link out)
                string[] exts = [".jpg", ".jpeg", ".png"];
                foreach (var f in Directory.EnumerateFiles(real).Where(f => exts.Contains(Path.GetExtension(f).ToLowerInvariant())))
                    root.Resolve(root.Relative(real) + "/" + Path.GetFileName(f));
            }
            return await OpenVideo(real, CleanName(req.Path, "video"), null, o, gate, videos);
        }).Produces<VideoInfo>().Produces<ErrorBody>(403).Produces<ErrorBody>(429)
          .WithSummary("Opens a video file or a folder of JPEG/PNG frames of the served folder (--root)");

        app.MapPost("/api/videos", async (HttpContext ctx, ServerOptions o, ModelGate gate, VideoSessions videos) =>
        {
            string name = CleanName(ctx.Request.Query["name"].ToString(), "video.mp4");
            string ext = Path.GetExtension(name).ToLowerInvariant();
            if (!VideoReader.VideoExtensions.Contains(ext))
                throw new ApiException(400, $"'{Clip(name)}' is not a video file name ({string.Join(", ", VideoReader.VideoExtensions)})");
            videos.Reserve();
            var bytes = await ReadBody(ctx.Request, o.MaxVideoUploadBytes, ctx.RequestAborted);
            string dir = Path.Combine(Path.GetTempPath(), $"torchsam2-serve-{Environment.ProcessId}");
            Directory.CreateDirectory(dir);
            string temp = Path.Combine(dir, Guid.NewGuid().ToString("N") + ext);
            await File.WriteAllBytesAsync(temp, bytes, ctx.RequestAborted);
            try { return await OpenVideo(temp, name, temp, o, gate, videos); }
            catch { File.Delete(temp); throw; }
        }).Produces<VideoInfo>().Produces<ErrorBody>(400).Produces<ErrorBody>(413).Produces<ErrorBody>(429)
          .WithSummary("Uploads a video file (the request body; ?name= with its extension) and opens it");

        app.MapGet("/api/videos/{id}/frames/{frame:int}", (string id, int frame, VideoSessions videos) =>
        {
            var img = videos.Get(id).Frame(frame);
            return Results.Bytes(EncodePng(img.Pixels, img.Height, img.Width, 3), "image/png");
        }).WithSummary("One frame of the video as PNG");

        app.MapGet("/api/videos/{id}/masks/{frame:int}", (string id, int frame, VideoSessions videos) =>
        {
            var s = videos.Get(id);
            lock (s.Sync) return s.Masks.TryGetValue(frame, out var m) ? m : new FrameMasks(frame, []);
        }).WithSummary("Every object's mask on a frame (empty before it was prompted or tracked)");

        app.MapPost("/api/videos/{id}/prompt", async (string id, VideoPromptRequest req, ModelGate gate, VideoSessions videos) =>
        {
            var s = videos.Get(id);
            NotTracking(s);
            if (req.Frame < 0 || req.Frame >= s.State.NumFrames) throw new ApiException(400, $"frame {req.Frame} is outside the video (0..{s.State.NumFrames - 1})");
            if (req.ObjId is < 1 or > 255) throw new ApiException(400, $"objId must be in 1..255 (the pixel value in exported masks), got {req.ObjId}");
            CheckPrompts(req.Points, req.Labels, req.Box);
            foreach (var p in req.Points ?? [])
                if (p is null || p.Length != 2) throw new ApiException(400, "each point needs exactly two coordinates (x, y)");
                else PromptChecks.CheckPoint(p[0], p[1], s.State.VideoWidth, s.State.VideoHeight, "point");
            if (req.Box is not null) PromptChecks.CheckBox(req.Box, s.State.VideoWidth, s.State.VideoHeight, "box");
            var (fm, _) = await gate.RunAsync(() =>
            {
                var (f, ids, masks) = s.Predictor.AddNewPointsOrBox(s.State, req.Frame, req.ObjId, req.Points, req.Labels, clearOldPoints: true, box: req.Box);
                using (masks) return s.Store(f, ids, masks);
            });
            return fm;
        }).Produces<FrameMasks>().Produces<ErrorBody>(400).Produces<ErrorBody>(409)
          .WithSummary("Sets one object's prompts on a frame (replacing its earlier ones there) and returns every object's mask on that frame");

        app.MapPost("/api/videos/{id}/track", (string id, PropagateRequest req, ModelGate gate, VideoSessions videos) =>
        {
            var s = videos.Get(id);
            if (req.Start < 0 || req.Start >= s.State.NumFrames) throw new ApiException(400, $"start {req.Start} is outside the video (0..{s.State.NumFrames - 1})");
            if (s.State.ObjectCount == 0) throw new ApiException(400, "prompt an object on a frame before tracking");
            lock (s.Sync)
            {
                NotTracking(s);
                s.Running = true;
                s.Cancel = false;
                s.Log.Clear();
                s.Done = 0;
                s.Total = req.Reverse ? req.Start + 1 : s.State.NumFrames - req.Start;
                s.Error = null;
            }
            // the whole pass holds the model (image clicks wait for it); frames are readable as they are done
            s.Job = Task.Run(async () =>
            {
                try
                {
                    await gate.RunAsync(() =>
                    {
                        foreach (var (f, ids, masks) in s.Predictor.PropagateInVideo(s.State, req.Start, reverse: req.Reverse))
                        {
                            using (masks) s.Store(f, ids, masks);
                            lock (s.Sync) { s.Log.Add(f); s.Done++; }
                            if (s.Cancel) break;
                        }
                        return 0;
                    });
                }
                catch (Exception e)
                {
                    lock (s.Sync) s.Error = Describe(e).message;
                }
                finally
                {
                    s.Running = false;
                }
            });
            return Results.Accepted($"/api/videos/{id}/track", Status(s, 0));
        }).Produces<TrackStatus>(202).Produces<ErrorBody>(409)
          .WithSummary("Starts tracking every object from a frame, forwards or backwards (poll GET .../track for the frames as they are done)");

        app.MapGet("/api/videos/{id}/track", (string id, int? since, VideoSessions videos) => Status(videos.Get(id), since ?? 0))
           .WithSummary("Tracking progress and the masks of the frames done since 'since' (an index into this pass's frames)");

        app.MapPost("/api/videos/{id}/stop", (string id, VideoSessions videos) =>
        {
            var s = videos.Get(id);
            s.Cancel = true;
            return Results.NoContent();
        }).WithSummary("Stops tracking after the current frame");

        app.MapDelete("/api/videos/{id}/objects/{objId:int}", async (string id, int objId, ModelGate gate, VideoSessions videos) =>
        {
            var s = videos.Get(id);
            NotTracking(s);
            if (!s.State.ObjectIds.Contains(objId)) throw new ApiException(404, $"no object {objId} in this video");
            var (ids, _) = await gate.RunAsync(() =>
            {
                var (remaining, updated) = s.Predictor.RemoveObject(s.State, objId, strict: true, needOutput: false);
                foreach (var (_, t) in updated) t.Dispose();
                return remaining;
            });
            lock (s.Sync)
                foreach (var f in s.Masks.Keys.ToList())
                    s.Masks[f] = s.Masks[f] with { Objects = s.Masks[f].Objects.Where(o => o.Id != objId).ToList() };
            return Results.Json(new { objectIds = ids });
        }).WithSummary("Removes an object from every frame");

        app.MapGet("/api/videos/{id}/export", (string id, VideoSessions videos) =>
        {
            var s = videos.Get(id);
            NotTracking(s);
            return Results.File(s.Export(), "application/zip", Path.GetFileNameWithoutExtension(s.Name) + ".masks.zip");
        }).WithSummary("masks.json (COCO RLE per frame and object, as torchsam2 track writes it) and masks/NNNNN.png (object ids as pixel values) in a zip");

        app.MapDelete("/api/videos/{id}", async (string id, ModelGate gate, VideoSessions videos) =>
        {
            var s = videos.Remove(id) ?? throw new ApiException(404, "no such video (already closed)");
            s.Cancel = true;
            if (s.Job is { } job) await job;
            await gate.RunAsync(() => { s.Dispose(); return 0; });
            return Results.NoContent();
        }).WithSummary("Closes a video and frees its state");
    }

    private static void NotTracking(VideoSession s)
    {
        if (s.Running) throw new ApiException(409, "tracking is running on this video: wait for it or stop it");
    }

    private static TrackStatus Status(VideoSession s, int since)
    {
        lock (s.Sync)
        {
            since = Math.Clamp(since, 0, s.Log.Count);
            var frames = s.Log.Skip(since).Select(f => s.Masks[f]).ToList();
            return new TrackStatus(s.Running, s.Done, s.Total, s.Error, s.Log.Count, frames);
        }
    }

    private static async Task<IResult> OpenVideo(string path, string name, string? temp, ServerOptions o, ModelGate gate, VideoSessions videos)
    {
        videos.Reserve();
        var (session, _) = await gate.RunAsync(() =>
        {
            var predictor = videos.NewPredictor(gate.Model);
            VideoSession s;
            try { s = new VideoSession(Guid.NewGuid().ToString("N"), name, path, predictor) { TempFile = temp }; }
            catch (Exception e) when (e is IOException or ArgumentException or InvalidOperationException && e is not ApiException)
            {
                throw new ApiException(e is LimitExceededException ? 413 : 400, $"cannot open '{Clip(name)}' as a video: {OneLine(e.Message)}");
            }
            try
            {
                CheckPixels(s.State.VideoWidth, s.State.VideoHeight, o, name);
                videos.Add(s);
            }
            catch { s.Dispose(); throw; }
            return s;
        });
        return Results.Json(new VideoInfo(session.Id, name, session.State.NumFrames, session.State.VideoWidth, session.State.VideoHeight));
    }

    private static void CheckPrompts(float[][]? points, int[]? labels, float[]? box)
    {
        if (points is null && box is null) throw new ApiException(400, "give at least one point or a box");
        if (points is not null && (labels is null || labels.Length != points.Length))
            throw new ApiException(400, $"{points.Length} point(s) need as many labels (1 foreground, 0 background), got {labels?.Length ?? 0}");
        if (labels is not null && labels.Any(l => l is not (0 or 1)))
            throw new ApiException(400, $"labels must be 1 (foreground) or 0 (background), got [{string.Join(", ", labels.Take(8))}]");
        if (points is { Length: > 64 }) throw new ApiException(400, $"at most 64 points per object, got {points.Length}");
    }

    private static async Task<IResult> Open(HttpContext ctx, RgbImage image, string name, ModelGate gate, ImageSessions sessions)
    {
        var session = new ImageSession(Guid.NewGuid().ToString("N"), name, image);
        var sw = Stopwatch.StartNew();
        var (encodeMs, waitMs) = await gate.EncodeAsync(() =>
        {
            var t = Stopwatch.StartNew();
            var predictor = new Sam2ImagePredictor(gate.Model);
            try { predictor.SetImage(image); }
            catch { predictor.Dispose(); throw; }
            session.Predictor = predictor;
            double ms = t.Elapsed.TotalMilliseconds;
            foreach (var old in sessions.Add(session)) old.Free();
            sessions.TrimEmbeddings(session);
            return ms;
        }, ctx.RequestAborted);
        SetTiming(ctx, ("queue", waitMs), ("encode", encodeMs), ("total", sw.Elapsed.TotalMilliseconds));
        return Results.Json(new ImageInfo(session.Id, name, image.Width, image.Height, Math.Round(encodeMs, 1)));
    }

    private static async Task<IResult> Predict(HttpContext ctx, string id, PredictRequest req, ServerOptions o, ModelGate gate, ImageSessions sessions)
    {
        var total = Stopwatch.StartNew();
        string format = (req.Format ?? "rle").ToLowerInvariant();
        if (format is not ("rle" or "png" or "both")) throw new ApiException(400, $"format must be rle, png or both, got '{Clip(req.Format)}'");
        CheckPrompts(req.Points, req.Labels, req.Box);
        var session = sessions.Get(id);
        double encodeMs = 0, decodeMs = 0, masksMs = 0;
        var (result, waitMs) = await gate.RunAsync(() =>
        {
            if (!sessions.Contains(id)) throw new ApiException(404, "the image was closed while this request waited");
            if (session.Predictor is null)
            {
                // its embedding was dropped from the cache: encode again (reported as "encode" in Server-Timing)
                var t0 = Stopwatch.StartNew();
                var p = new Sam2ImagePredictor(gate.Model);
                try { p.SetImage(session.Image); }
                catch { p.Dispose(); throw; }
                session.Predictor = p;
                sessions.TrimEmbeddings(session);
                encodeMs = t0.Elapsed.TotalMilliseconds;
            }
            Tensor? maskInput = null;
            if (req.MaskInput is not null)
                maskInput = session.Logits.FirstOrDefault(l => l.id == req.MaskInput).logits
                            ?? throw new ApiException(400, $"maskInput '{Clip(req.MaskInput)}' is not one of this image's recent masks (the last {o.MaxLogitsPerSession} are kept)");
            var t = Stopwatch.StartNew();
            using var pred = session.Predictor.Predict(req.Points, req.Labels, req.Box, maskInput, multimaskOutput: req.Multimask);
            var scores = pred.Scores;
            decodeMs = t.Elapsed.TotalMilliseconds;
            t.Restart();
            int n = session.Predictions++;
            var masks = new List<MaskResult>();
            // temporaries of the mask conversions are freed with the scope, not left to the finalizer
            using (var _ = inference_mode())
            using (var scope = NewDisposeScope())
            {
                for (int c = 0; c < scores.Length; c++)
                {
                    using var m = pred.Masks[c];
                    var rle = Rle.Encode(m);
                    string? png = null;
                    if (format != "rle")
                    {
                        using var u8 = m.to(ScalarType.Byte).mul_(255).cpu().contiguous();
                        png = Convert.ToBase64String(EncodePng(u8.bytes, session.Image.Height, session.Image.Width, 1));
                    }
                    string logitsId = $"{n}.{c}";
                    session.Logits.AddLast((logitsId, pred.LowResMasks.narrow(0, c, 1).clone().DetachFromDisposeScope()));
                    while (session.Logits.Count > o.MaxLogitsPerSession)
                    {
                        session.Logits.First!.Value.logits.Dispose();
                        session.Logits.RemoveFirst();
                    }
                    masks.Add(new MaskResult(float.IsFinite(scores[c]) ? scores[c] : null, rle.Area(),
                                             format == "png" ? null : new RleJson([rle.Height, rle.Width], rle.ToCocoString()), png, logitsId));
                }
            }
            masksMs = t.Elapsed.TotalMilliseconds;
            int best = 0;
            for (int i = 1; i < scores.Length; i++) if (scores[i] > scores[best] || float.IsNaN(scores[best])) best = i;
            return (masks, best);
        }, ctx.RequestAborted);
        double totalMs = total.Elapsed.TotalMilliseconds;
        var timings = new Dictionary<string, double> { ["queue"] = R(waitMs), ["decoder"] = R(decodeMs), ["masks"] = R(masksMs), ["total"] = R(totalMs) };
        if (encodeMs > 0) timings["encode"] = R(encodeMs);
        SetTiming(ctx, timings.Select(kv => (kv.Key, kv.Value)).ToArray());
        return Results.Json(new PredictResponse(session.Image.Width, session.Image.Height, result.masks, result.best, timings));
    }

    private static double R(double ms) => Math.Round(ms, 2);

    private static void SetTiming(HttpContext ctx, params (string name, double ms)[] parts) =>
        ctx.Response.Headers["Server-Timing"] = string.Join(", ", parts.Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.name};dur={p.ms:0.##}")));

    // ---- input checks -------------------------------------------------------------------------------------------

    /// <summary>The request body, refused past <paramref name="cap"/> bytes (whatever Content-Length claims).</summary>
    internal static async Task<byte[]> ReadBody(HttpRequest req, long cap, CancellationToken ct)
    {
        if (req.ContentLength is long n && n > cap) throw new ApiException(413, $"the upload is {Mb(n)}, above the limit of {Mb(cap)}");
        using var ms = new MemoryStream();
        var buf = new byte[81920];
        int r;
        while ((r = await req.Body.ReadAsync(buf, ct)) > 0)
        {
            if (ms.Length + r > cap) throw new ApiException(413, $"the upload is above the limit of {Mb(cap)}");
            ms.Write(buf, 0, r);
        }
        if (ms.Length == 0) throw new ApiException(400, "the upload is empty: send the image file as the request body");
        return ms.ToArray();
    }

    /// <summary>Decodes an uploaded image as the CLI reads files: the header's size checked before decoding, then the pixels.</summary>
    internal static RgbImage DecodeImage(byte[] bytes, ServerOptions o, string name)
    {
        using (var ms = new MemoryStream(bytes, false))
        {
            (long w, long h)? size;
            try { size = ImageHeader.TryReadSize(ms); }
            catch (Exception e) when (e is IOException or InvalidDataException) { size = null; }
            if (size is (long w0, long h0)) CheckPixels(w0, h0, o, name);
        }
        RgbImage image;
        try { image = ImageIO.Decode(bytes); }
        catch (InvalidDataException e) { throw new ApiException(400, $"'{Clip(name)}' is not an image this server can read ({OneLine(e.Message)})"); }
        CheckPixels(image.Width, image.Height, o, name);
        return image;
    }

    private static void CheckPixels(long w, long h, ServerOptions o, string name)
    {
        if (w <= 0 || h <= 0) throw new ApiException(400, $"'{Clip(name)}' declares a size of {w}x{h}");
        if (w * h > o.MaxImagePixels)
            throw new ApiException(413, $"'{Clip(name)}' is {w}x{h} ({w * h / 1e6:0.#} MP), above the server's limit of {o.MaxImagePixels / 1e6:0.#} MP");
    }

    /// <summary>
    /// 8-bit gray (1) or RGB (3) pixels as PNG bytes at zlib level 1: masks and previews compress well already and the
    /// click's round trip matters more.
    /// </summary>
    public static byte[] EncodePng(ReadOnlySpan<byte> pixels, int height, int width, int channels) =>
        ImageIO.EncodePng(pixels, height, width, channels, compression: 1);

    private static string CleanName(string? s, string fallback)
    {
        if (string.IsNullOrWhiteSpace(s)) return fallback;
        var clean = new string(s.Where(c => !char.IsControl(c)).ToArray()).Trim();
        return clean.Length == 0 ? fallback : Clip(clean, 200);
    }

    private static string Clip(string? s, int max = 60) => s is null ? "" : s.Length > max ? s[..max] + "…" : s;

    private static string Mb(long bytes) => bytes >= 1 << 20
        ? string.Create(CultureInfo.InvariantCulture, $"{bytes / 1048576.0:0.#} MiB")
        : string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:0.#} KiB");
}
