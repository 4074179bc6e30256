using System.CommandLine;
using Spectre.Console;
using TorchSam2.Evaluation;
using TorchSam2.IO;

namespace TorchSam2.Cli.Commands;

/// <summary>
/// <c>torchsam2 vos</c>: semi-supervised video object segmentation over a dataset, as tools/vos_inference.py: the
/// first frame's ground-truth masks are given, every frame is predicted and written as palette PNGs in the same layout.
/// </summary>
internal static class VosCommand
{
    public static Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "SAM 2 weights (.pt or .safetensors)", Required = true };
        var config = new Option<string?>("--config") { Description = "YAML config or built-in name; detected from the weights when left out" };
        var frames = new Option<string>("--frames") { Description = "the frames: FRAMES/VIDEO/00000.jpg ... (e.g. DAVIS/JPEGImages/480p)", Required = true };
        var masks = new Option<string>("--masks") { Description = "the annotations: MASKS/VIDEO/00000.png (pixel = object id) or, with --per-object, MASKS/VIDEO/OBJECT/00000.png", Required = true };
        var output = new Option<string>("--out") { Description = "output folder: OUT/VIDEO/... in the layout of --masks; videos already there are skipped", Required = true };
        var videos = new Option<string?>("--videos") { Description = "a text file with one video name per line, or names separated by commas (default: every folder in --frames)" };
        var perObject = new Option<bool>("--per-object") { Description = "SA-V layout: one folder of binary masks per object, in and out (objects may overlap)" };
        var later = new Option<bool>("--track-object-appearing-later") { Description = "track each object on its own from the first frame it appears on (YouTube-VOS, LVOS)" };
        var allMasks = new Option<bool>("--use-all-masks") { Description = "add every available annotation as input, not only the first" };
        var thresh = Common.Real("--score-thresh", "mask logit threshold", 0.0, -1000, 1000);
        var device = Common.Device();
        var threads = Common.Threads();
        var cmd = new Command("vos", "Video object segmentation over a dataset from first-frame masks (as tools/vos_inference.py); score the output with eval-vos");
        foreach (var o in new Option[] { checkpoint, config, frames, masks, output, videos, perObject, later, allMasks, thresh, device, threads }) cmd.Options.Add(o);
        cmd.SetAction(pr => Common.Guard(() =>
        {
            Common.ApplyThreads(pr.GetValue(threads));
            var dev = Common.ParseDevice(pr.GetValue(device)!);
            var ckpt = Common.ExistingFile("--checkpoint", pr.GetValue(checkpoint));
            string framesRoot = Folder("--frames", pr.GetValue(frames)), masksRoot = Folder("--masks", pr.GetValue(masks));
            string outRoot = pr.GetValue(output)!;
            if (string.IsNullOrWhiteSpace(outRoot)) throw new UsageException("--out must name a folder");
            if (File.Exists(outRoot)) throw new UsageException($"--out '{Terminal.Safe(outRoot)}' is a file, not a folder");
            var names = VideoNames(pr.GetValue(videos), framesRoot);
            if (names.Count == 0) throw new UsageException($"no video folder in --frames '{Terminal.Safe(framesRoot)}'");
            foreach (var n in names)
            {
                if (n.Length == 0 || n.Contains('/') || n.Contains('\\') || n is "." or "..") throw new UsageException($"--videos: '{Terminal.Safe(n)}' is not a video folder name");
                if (!Directory.Exists(Path.Combine(framesRoot, n))) throw new UsageException($"--videos: no folder '{Terminal.Safe(n)}' in --frames");
            }
            // a video's output folder is replaced as a whole: no input may lie in one
            PathSafety.CheckNotAnInput("--out", outRoot, [("--frames", framesRoot), ("--masks", masksRoot), ("--checkpoint", ckpt), ("--config", Common.ConfigFile(pr.GetValue(config)))],
                rel => names.Contains(rel.Split(Path.DirectorySeparatorChar)[0]));
            var options = new VosInferenceOptions
            {
                PerObject = pr.GetValue(perObject),
                TrackObjectsAppearingLater = pr.GetValue(later),
                UseAllMasks = pr.GetValue(allMasks),
                ScoreThreshold = (float)pr.GetValue(thresh),
            };
            Directory.CreateDirectory(outRoot);
            var todo = names.Where(n => !IsComplete(Path.Combine(outRoot, n), Path.Combine(framesRoot, n), options.PerObject)).ToList();
            if (todo.Count < names.Count) Terminal.Out($"{names.Count - todo.Count} of {names.Count} video(s) already in '{Terminal.Safe(outRoot)}': skipped");
            if (todo.Count == 0) return 0;
            // --per-object outputs may overlap; one label map per frame may not (as vos_inference.py's non_overlap_masks)
            using var predictor = Common.LoadVideoPredictor(ckpt, pr.GetValue(config), dev, nonOverlapMasks: !options.PerObject);
            using var running = Activity.Doing($"segmenting the videos of '{framesRoot}'");
            int done = 0;
            void RunAll(Action<string>? started, Action<int, int>? frameDone, Action? videoDone)
            {
                foreach (var name in todo)
                {
                    started?.Invoke(name);
                    using (Activity.Doing($"segmenting video '{name}'"))
                        RunVideo(predictor, framesRoot, masksRoot, outRoot, name, options, frameDone);
                    done++;
                    videoDone?.Invoke();
                }
            }
            if (Console.IsOutputRedirected)
            {
                RunAll(n => Terminal.Out($"{done + 1}/{todo.Count} {Terminal.Safe(n)}"), null, null);
            }
            else
            {
                AnsiConsole.Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                    .Start(ctx =>
                    {
                        var all = ctx.AddTask("videos", maxValue: todo.Count);
                        var video = ctx.AddTask("frames", maxValue: 1);
                        RunAll(n => { video.Description = Markup.Escape(Terminal.Safe(n)); video.Value = 0; },
                               (d, t) => { video.MaxValue = t; video.Value = d; },
                               () => all.Increment(1));
                    });
            }
            Terminal.Out($"wrote {todo.Count} video(s) to '{Terminal.Safe(outRoot)}'");
            return 0;
        }));
        return cmd;
    }

    /// <summary>One video, written into a staging folder beside OUT/VIDEO and moved into place when complete.</summary>
    private static void RunVideo(Sam2VideoPredictor predictor, string framesRoot, string masksRoot, string outRoot, string name, VosInferenceOptions options, Action<int, int>? frameDone)
    {
        var video = VosVideo.Open(framesRoot, masksRoot, name, options);
        string target = Path.Combine(outRoot, name);
        string staging = Path.Combine(outRoot, $".{name}.tmp-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}");
        string scratch = Path.Combine(staging, ".scores");
        Directory.CreateDirectory(scratch);
        try
        {
            video.Run(predictor, (f, perObj) =>
            {
                int h = video.Height, w = video.Width;
                string frame = video.FrameNames[f] + ".png";
                if (!options.PerObject)
                {
                    LabelPng.Write(Path.Combine(staging, frame), VosVideo.ToLabels(perObj, h * w), h, w, video.Palette);
                    return;
                }
                foreach (var (id, m) in perObj)
                    LabelPng.Write(Path.Combine(staging, id.ToString("D3", System.Globalization.CultureInfo.InvariantCulture), frame),
                                   Array.ConvertAll(m, v => v ? (byte)1 : (byte)0), h, w, video.Palette);
            }, frameDone, scratch);
            Directory.Delete(scratch, recursive: true);
            if (Directory.Exists(target))
            {
                // an incomplete earlier output (another tool's, or a folder edited by hand) is replaced whole
                string old = Path.Combine(outRoot, $".{name}.old-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}");
                Directory.Move(target, old);
                Directory.Move(staging, target);
                Directory.Delete(old, recursive: true);
            }
            else
            {
                Directory.Move(staging, target);
            }
        }
        finally
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        }
    }

    /// <summary>A video's output is complete when every frame has its PNG (per object with --per-object).</summary>
    private static bool IsComplete(string outVideo, string framesDir, bool perObject)
    {
        if (!Directory.Exists(outVideo)) return false;
        var frames = VosVideo.FrameFiles(framesDir).Select(f => Path.GetFileNameWithoutExtension(f) + ".png").ToList();
        if (!perObject) return frames.All(f => File.Exists(Path.Combine(outVideo, f)));
        var objects = Directory.GetDirectories(outVideo);
        return objects.Length > 0 && objects.All(o => frames.All(f => File.Exists(Path.Combine(o, f))));
    }

    private static List<string> VideoNames(string? spec, string framesRoot)
    {
        if (spec is null)
            return Directory.GetDirectories(framesRoot).Select(Path.GetFileName).Where(n => n is not null && !n.StartsWith('.')).Select(n => n!)
                            .OrderBy(n => n, StringComparer.Ordinal).ToList();
        var lines = File.Exists(spec) ? File.ReadAllLines(spec) : spec.Split(',');
        return lines.Select(l => l.Trim()).Where(l => l.Length > 0).Distinct().ToList();
    }

    private static string Folder(string option, string? path)
    {
        if (string.IsNullOrEmpty(path)) throw new UsageException($"{option} needs a folder");
        if (File.Exists(path)) throw new UsageException($"{option} '{Terminal.Safe(path)}' is a file, not a folder");
        if (!Directory.Exists(path)) throw new DirectoryNotFoundException($"{option}: folder not found: '{Terminal.Safe(path)}'");
        return path;
    }
}
