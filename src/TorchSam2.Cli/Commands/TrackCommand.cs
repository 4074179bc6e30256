using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Spectre.Console;
using TorchSam2.IO;
using TorchSharp;
using static TorchSharp.torch;
using TorchSharp.Modules;
using TorchSam2.Checkpoints;
using TorchSam2.Utils;
using TorchSam2.Visualization;

namespace TorchSam2.Cli.Commands;

/// <summary><c>torchsam2 track</c>: prompts on one frame, then tracks the objects through a video.</summary>
internal static class TrackCommand
{
    private sealed record ObjPrompt(int Id, (float x, float y, int label)[] Points, float[]? Box);

    /// <summary>Everything track writes in --out (an earlier run's files of these names are replaced as a set).</summary>
    internal static readonly string[] Outputs = ["masks.json", "masks/*.png", "overlays/*.png"];

    public static Command Create()
    {
        var video = new Argument<string>("video") { Description = "a video file (MP4, AVI, ...) or a folder of JPEG/PNG frames" };
        var checkpoint = new Option<string>("--checkpoint") { Description = "SAM 2 weights (.pt or .safetensors), or a name: tiny, small, base_plus, large, sam2_hiera_* (SAM 2.0), glyph-demo (downloaded and cached on first use)", Required = true };
        var config = new Option<string?>("--config") { Description = "YAML config or built-in name; detected from the weights when left out" };
        var objs = new Option<string[]>("--obj")
        {
            Description = "ID:point:x,y[,label] or ID:box:x0,y0,x1,y1 in pixels (label 1 = foreground, 0 = background); repeat for more points / objects",
            AllowMultipleArgumentsPerToken = false,
        };
        var frame = Common.Int("--frame", "frame index the prompts are on", 0, 0, int.MaxValue);
        var output = new Option<string>("--out") { Description = "output folder (replaced as a whole by the new results)", DefaultValueFactory = _ => "out" };
        var bounded = new Option<bool>("--bounded-memory") { Description = "drop tracked memories the model can no longer read (flat memory on long videos)" };
        var noOverlays = new Option<bool>("--no-overlays") { Description = "skip the overlay frames" };
        var device = Common.Device();
        var threads = Common.Threads();
        var cmd = new Command("track", "Track objects through a video from prompts on one frame; writes indexed mask PNGs, overlay PNGs and masks.json (COCO RLE)");
        cmd.Arguments.Add(video);
        foreach (var o in new Option[] { checkpoint, config, objs, frame, output, bounded, noOverlays, device, threads }) cmd.Options.Add(o);
        cmd.SetAction(pr => Common.Guard(() =>
        {
            Common.ApplyThreads(pr.GetValue(threads));
            var dev = Common.ParseDevice(pr.GetValue(device)!);
            var prompts = ParseObjects(pr.GetValue(objs) ?? []);
            if (prompts.Count == 0) throw new UsageException("give at least one --obj (e.g. --obj 1:point:120,80)");
            var videoPath = pr.GetValue(video)!;
            if (!File.Exists(videoPath) && !Directory.Exists(videoPath))
                throw new FileNotFoundException($"video not found: '{Terminal.Safe(videoPath)}' (a video file or a folder of JPEG/PNG frames)", videoPath);
            var ckpt = Common.ExistingFile("--checkpoint", pr.GetValue(checkpoint));
            int frameIdx = pr.GetValue(frame);
            bool writeOverlays = !pr.GetValue(noOverlays);
            using var outDir = OutputFolder.Begin(pr.GetValue(output)!, Outputs, "masks.json",
                [("video", videoPath), ("--checkpoint", ckpt), ("--config", Common.ConfigFile(pr.GetValue(config)))]);
            var cfgName = pr.GetValue(config) ?? Common.Doing($"reading the checkpoint '{ckpt}'", () => ModelLoader.ConfigFor(ckpt));

            var sw = Stopwatch.StartNew();
            using var predictor = Common.Doing($"loading the model '{ckpt}'", () => Sam2VideoPredictor.Build(cfgName, ckpt, dev));
            double loadMs = sw.Elapsed.TotalMilliseconds;
            sw.Restart();
            using var state = Common.Doing($"opening the video '{videoPath}'", () => predictor.InitState(videoPath, offloadVideoToCpu: true));
            state.BoundedMemory = pr.GetValue(bounded);
            double initMs = sw.Elapsed.TotalMilliseconds;
            if (frameIdx >= state.NumFrames)
                throw new UsageException($"--frame {frameIdx} is outside the video (0..{state.NumFrames - 1})");
            int h = state.VideoHeight, w = state.VideoWidth;
            foreach (var p in prompts) Common.CheckInImage($"--obj {p.Id}:point", p.Points, $"--obj {p.Id}:box", p.Box, w, h);

            using (Activity.Doing($"adding the prompts on frame {frameIdx}"))
                foreach (var p in prompts)
                {
                    var (_, _, m) = predictor.AddNewPointsOrBox(state, frameIdx, p.Id,
                        p.Points.Length > 0 ? p.Points.Select(q => new[] { q.x, q.y }).ToArray() : null,
                        p.Points.Length > 0 ? p.Points.Select(q => q.label).ToArray() : null,
                        box: p.Box);
                    m.Dispose();
                }

            using var frames = new FrameSource(videoPath);
            var perFrame = new SortedDictionary<int, List<object>>();
            sw.Restart();
            int done = 0;
            using var tracking = Activity.Doing($"tracking through '{videoPath}'");
            AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask("tracking", maxValue: state.NumFrames);
                    void Consume(IEnumerable<(int frameIdx, IReadOnlyList<int> objIds, Tensor videoResMasks)> results)
                    {
                        foreach (var (f, ids, masks) in results)
                        {
                            using (masks)
                                perFrame[f] = WriteFrame(outDir, f, ids, masks, h, w, writeOverlays ? frames : null);
                            done++;
                            task.Increment(1);
                        }
                    }
                    Consume(predictor.PropagateInVideo(state, startFrameIdx: frameIdx));
                    // frames before the prompted one: track backwards
                    if (frameIdx > 0)
                        Consume(predictor.PropagateInVideo(state, startFrameIdx: frameIdx, reverse: true).Where(r => r.frameIdx != frameIdx || DisposeSkipped(r.videoResMasks)));
                    task.Value = task.MaxValue;
                });
            double trackMs = sw.Elapsed.TotalMilliseconds;

            var json = new
            {
                video = videoPath,
                height = h,
                width = w,
                num_frames = state.NumFrames,
                object_ids = state.ObjectIds,
                prompt_frame = frameIdx,
                frames = perFrame.Select(kv => new { frame = kv.Key, objects = kv.Value }),
                timings_ms = new { load = loadMs, init_state = initMs, track = trackMs },
            };
            File.WriteAllText(outDir.File("masks.json"), CliJson.Serialize(json));
            outDir.Commit();
            Terminal.Out($"{perFrame.Count} frame(s), {state.ObjectCount} object(s); {trackMs / Math.Max(1, perFrame.Count):F0} ms/frame");
            Terminal.Out($"wrote masks/, {(writeOverlays ? "overlays/, " : "")}masks.json in {Terminal.Safe(outDir.Display)}");
            return 0;
        }));
        return cmd;
    }

    /// <summary>Drops the repeated prompted frame of the backward pass (it was written by the forward one).</summary>
    private static bool DisposeSkipped(Tensor t)
    {
        t.Dispose();
        return false;
    }

    /// <summary>Writes the indexed mask PNG (and overlay) of a frame; returns its per-object RLE entries.</summary>
    private static List<object> WriteFrame(OutputFolder outDir, int f, IReadOnlyList<int> ids, Tensor masks, int h, int w, FrameSource? frames)
    {
        var name = $"{f:D5}.png";
        var indexed = new byte[(long)h * w];
        var entries = new List<object>();
        var binary = new List<bool[]>();
        for (int o = 0; o < ids.Count; o++)
        {
            using var logits = masks[o, 0];
            using var m = logits > 0.0;
            var rle = Rle.Encode(m);
            var pixels = m.ToArray<bool>();
            binary.Add(pixels);
            // later objects win where masks overlap
            for (int i = 0; i < pixels.Length; i++) if (pixels[i]) indexed[i] = (byte)ids[o];
            entries.Add(new { id = ids[o], area = rle.Area(), rle = new { size = new[] { rle.Height, rle.Width }, counts = rle.ToCocoString() } });
        }
        ImageIO.Write(outDir.File(Path.Combine("masks", name)), indexed, h, w, 1);
        if (frames is not null)
            Overlay.Draw(frames.Get(f), binary, labels: ids.Select(id => (string?)$"#{id}").ToList()).Save(outDir.File(Path.Combine("overlays", name)));
        return entries;
    }

    private static List<ObjPrompt> ParseObjects(string[] specs)
    {
        var byId = new SortedDictionary<int, (List<(float, float, int)> pts, float[]? box)>();
        foreach (var s in specs)
        {
            var parts = s.Split(':', 3, StringSplitOptions.TrimEntries);
            if (parts.Length != 3 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int id))
                throw new UsageException($"--obj takes ID:point:x,y[,label] or ID:box:x0,y0,x1,y1, got '{Terminal.Safe(s)}'");
            if (id is <= 0 or > 255) throw new UsageException($"--obj '{Terminal.Safe(s)}': object ids must be in 1..255 (they are the pixel values of the mask PNGs)");
            if (!byId.TryGetValue(id, out var entry)) entry = (new(), null);
            switch (parts[1].ToLowerInvariant())
            {
                case "point":
                    entry.pts.Add(Common.ParsePoint($"--obj {id}:point", parts[2]));
                    break;
                case "box":
                    if (entry.box is not null) throw new UsageException($"--obj: object {id} has more than one box");
                    entry.box = Common.ParseBox($"--obj {id}:box", parts[2]);
                    break;
                default:
                    throw new UsageException($"--obj kind must be 'point' or 'box', got '{Terminal.Safe(parts[1])}'");
            }
            byId[id] = entry;
        }
        return byId.Select(kv => new ObjPrompt(kv.Key, kv.Value.pts.ToArray(), kv.Value.box)).ToList();
    }

    /// <summary>Original frames for the overlays, in the order the predictor numbers them.</summary>
    private sealed class FrameSource : IDisposable
    {
        private readonly string[]? _files;
        private readonly VideoReader? _reader;
        private long _next;

        public FrameSource(string path)
        {
            if (File.Exists(path))
            {
                _reader = VideoReader.Open(path);
                return;
            }
            string[] exts = [".jpg", ".jpeg", ".png"];
            var files = Directory.GetFiles(path).Where(p => exts.Contains(Path.GetExtension(p).ToLowerInvariant())).ToList();
            // same order as Sam2VideoPredictor.InitState
            bool numeric = files.All(p => long.TryParse(Path.GetFileNameWithoutExtension(p), out _));
            _files = numeric
                ? files.OrderBy(p => long.Parse(Path.GetFileNameWithoutExtension(p))).ToArray()
                : files.OrderBy(p => Path.GetFileName(p), StringComparer.Ordinal).ToArray();
        }

        public RgbImage Get(int idx)
        {
            if (_files is not null) return RgbImage.Load(_files[idx]);
            if (idx != _next) _reader!.Seek(idx);
            _next = idx + 1;
            return _reader!.ReadNext() ?? throw new InvalidDataException($"cannot decode frame {idx} of the video");
        }

        public void Dispose() => _reader?.Dispose();
    }
}
