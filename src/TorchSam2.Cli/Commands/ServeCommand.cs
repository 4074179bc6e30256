using System.CommandLine;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;
using TorchSam2.Pretrained;
using TorchSam2.Server;

namespace TorchSam2.Cli.Commands;

/// <summary><c>torchsam2 serve</c>: the interactive page and its HTTP API on one shared model (TorchSam2.Server).</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var checkpoint = new Option<string?>("--checkpoint") { Description = "SAM 2 weights (.pt or .safetensors) or a checkpoint name (tiny, ..., large); the shipped demo model (glyph-demo) when left out" };
        var config = new Option<string?>("--config") { Description = "YAML config or built-in name; detected from the weights when left out" };
        var port = Common.Int("--port", "TCP port (0 = any free port)", 8080, 0, 65535);
        var host = new Option<string>("--host") { Description = "address to listen on (127.0.0.1: this machine only; anything else exposes the model to the network)", DefaultValueFactory = _ => "127.0.0.1" };
        var root = new Option<string?>("--root") { Description = "a folder whose images the page and API may open (nothing outside it; no server path is readable without it)" };
        var maxUpload = Common.Int("--max-upload-mb", "largest upload, MiB", 32, 1, 1024);
        var maxSessions = Common.Int("--max-sessions", "open images at once (the least recently used is closed)", 16, 1, 1000);
        var maxEmbeddings = Common.Int("--max-embeddings", "image embeddings kept in memory (the least recently used is dropped and encoded again when clicked)", 4, 1, 256);
        var device = Common.Device();
        var threads = Common.Threads();
        var cmd = new Command("serve", "Serve the interactive page (click to segment) and its HTTP API (OpenAPI at /openapi/v1.json)");
        foreach (var o in new Option[] { checkpoint, config, port, host, root, maxUpload, maxSessions, maxEmbeddings, device, threads }) cmd.Options.Add(o);
        cmd.SetAction(pr => Common.Guard(() =>
        {
            Common.ApplyThreads(pr.GetValue(threads));
            var dev = Common.ParseDevice(pr.GetValue(device)!);
            string hostValue = pr.GetValue(host)!.Trim();
            if (!IPAddress.TryParse(hostValue, out var address) && hostValue != "localhost")
                throw new UsageException($"--host must be an IP address (127.0.0.1, ::1, 0.0.0.0) or localhost, got '{Terminal.Safe(hostValue)}'");
            string? rootDir = pr.GetValue(root);
            if (rootDir is not null && !Directory.Exists(rootDir))
                throw new DirectoryNotFoundException($"--root: folder not found: '{Terminal.Safe(rootDir)}'");
            // a name (the embedded demo model by default) resolves to its cached file and brings its config
            string ckpt = Common.Checkpoint("--checkpoint", pr.GetValue(checkpoint) ?? PretrainedCheckpoints.GlyphDemo);
            string? cfg = pr.GetValue(config) ?? CheckpointStore.ConfigFor(ckpt);
            using var model = Common.LoadModel(ckpt, cfg, dev);
            var options = new ServerOptions
            {
                Root = rootDir is null ? null : Path.GetFullPath(rootDir),
                MaxUploadBytes = (long)pr.GetValue(maxUpload) << 20,
                MaxSessions = pr.GetValue(maxSessions),
                MaxEmbeddings = Math.Min(pr.GetValue(maxEmbeddings), pr.GetValue(maxSessions)),
                ModelName = Path.GetFileName(ckpt),
                // the video sessions apply the config's video options (as track does)
                Config = Common.Doing("reading the config", () => cfg is null
                    ? TorchSam2.Configs.Sam2ConfigLoader.LoadBuiltIn(ModelLoader.DetectVariant(ckpt))
                    : TorchSam2.Configs.Sam2ConfigLoader.LoadFileOrBuiltIn(cfg)),
            };
            int portValue = pr.GetValue(port);
            using var app = Sam2Server.Build(options, model);
            string bind = address is { AddressFamily: System.Net.Sockets.AddressFamily.InterNetworkV6 } ? $"[{hostValue}]" : hostValue;
            app.Urls.Add($"http://{bind}:{portValue}");
            try { app.Start(); }
            catch (IOException e) { throw new IOException($"cannot listen on {hostValue}:{portValue}: {Terminal.OneLine(e.Message)}", e); }
            string url = app.Urls.First();
            if (address is not null && !IPAddress.IsLoopback(address))
                Terminal.Warning($"listening on {hostValue}: anyone who can reach this machine can use the model{(rootDir is null ? "" : " and read --root")}");
            Terminal.Out($"model {Terminal.Safe(options.ModelName)} (image size {model.image_size}); serving {url.Replace("0.0.0.0", "127.0.0.1")} (Ctrl+C stops)");
            if (rootDir is not null) Terminal.Out($"the page may open images under {Terminal.Safe(options.Root)}");
            app.WaitForShutdown();
            return 0;
        }));
        return cmd;
    }
}
