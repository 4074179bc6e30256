using System.CommandLine;
using Spectre.Console;
using TorchSam2.Evaluation;

namespace TorchSam2.Cli.Commands;

/// <summary>
/// <c>torchsam2 eval-vos</c>: J, F and J&amp;F of predicted masks against ground truth, as the official SA-V / DAVIS
/// evaluator (sav_dataset/sav_evaluator.py) computes and prints them.
/// </summary>
internal static class EvalVosCommand
{
    public static Command Create()
    {
        var gt = new Option<string>("--gt") { Description = "ground-truth masks: GT/VIDEO/FRAME.png (DAVIS, pixel = object id) or GT/VIDEO/OBJECT/FRAME.png (SA-V)", Required = true };
        var pred = new Option<string>("--pred") { Description = "predicted masks in the same layout (e.g. the --out of torchsam2 vos)", Required = true };
        var csv = new Option<string?>("--csv") { Description = "also write the table as the official results.csv to this file" };
        var asJson = new Option<bool>("--json") { Description = "print the scores as JSON (per object, per video, global)" };
        var strict = new Option<bool>("--strict") { Description = "every ground-truth video must have a prediction and every prediction a ground truth (else: the videos in both)" };
        var allFrames = new Option<bool>("--do-not-skip-first-and-last-frame") { Description = "score the first and last frame too (not standard for semi-supervised VOS)" };
        var threads = Common.Int("--threads", "videos scored at once (0 = one per processor)", 0, 0, 256);
        var cmd = new Command("eval-vos", "Score video object segmentation: J (region IoU), F (boundary F) and J&F per object and overall, as the official SA-V/DAVIS evaluator");
        foreach (var o in new Option[] { gt, pred, csv, asJson, strict, allFrames, threads }) cmd.Options.Add(o);
        cmd.SetAction(pr => Common.Guard(() =>
        {
            string gtRoot = ExistingFolder("--gt", pr.GetValue(gt));
            string predRoot = ExistingFolder("--pred", pr.GetValue(pred));
            string? csvPath = pr.GetValue(csv);
            if (csvPath is not null)
            {
                if (string.IsNullOrWhiteSpace(csvPath) || Directory.Exists(csvPath)) throw new UsageException($"--csv must name a file, got '{Terminal.Safe(csvPath)}'");
                PathSafety.CheckNotAnInput("--csv", csvPath, [("--gt", gtRoot), ("--pred", predRoot)]);
            }
            var options = new VosBenchmarkOptions
            {
                SkipFirstAndLast = !pr.GetValue(allFrames),
                Strict = pr.GetValue(strict),
                Parallelism = pr.GetValue(threads),
            };
            var (_, videos) = Common.Doing("listing the videos", () => VosBenchmark.SelectVideos(gtRoot, predRoot, options.Strict));
            if (videos.Count == 0) throw new InvalidDataException($"no video folder is in both --gt '{Terminal.Safe(gtRoot)}' and --pred '{Terminal.Safe(predRoot)}'");
            bool json = pr.GetValue(asJson);
            VosBenchmarkResult result = null!;
            using (Activity.Doing("scoring the videos"))
            {
                if (json || Console.IsOutputRedirected)
                {
                    result = VosBenchmark.Evaluate(gtRoot, predRoot, options);
                }
                else
                {
                    AnsiConsole.Progress()
                        .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                        .Start(ctx =>
                        {
                            var task = ctx.AddTask("scoring", maxValue: videos.Count);
                            result = VosBenchmark.Evaluate(gtRoot, predRoot, options, _ => task.Increment(1));
                        });
                }
            }
            if (csvPath is not null)
            {
                // written aside and moved into place: a results file is whole or absent
                var full = Path.GetFullPath(csvPath);
                Directory.CreateDirectory(Path.GetDirectoryName(full)!);
                var tmp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.tmp-{Environment.ProcessId}");
                File.WriteAllText(tmp, result.ToCsv());
                File.Move(tmp, full, overwrite: true);
            }
            if (json)
            {
                Terminal.Out(CliJson.Serialize(new
                {
                    skipped_first_and_last = result.SkippedFirstAndLast,
                    global = new { j_and_f = result.GlobalJF, j = result.GlobalJ, f = result.GlobalF },
                    videos = result.Videos.Select(v => new
                    {
                        name = v.Name,
                        j_and_f = v.JF, j = v.J, f = v.F,
                        objects = v.Objects.Select(o => new { obj = o.Object, j_and_f = o.JF, j = o.J, f = o.F }),
                    }),
                }));
                return 0;
            }
            Terminal.Out(result.SkippedFirstAndLast
                ? "We are *SKIPPING* the evaluation of the first and the last frame (standard for semi-supervised video object segmentation)."
                : "We are *NOT SKIPPING* the evaluation of the first and the last frame (*NOT STANDARD* for semi-supervised video object segmentation).");
            Terminal.Out($"In dataset {Terminal.Safe(gtRoot)}, we are evaluating on {videos.Count} videos");
            foreach (var line in result.ToTable().Split('\n', StringSplitOptions.RemoveEmptyEntries)) Terminal.Out(Terminal.Safe(line));
            Terminal.Out("");
            Terminal.Out("Summary:");
            Terminal.Out(result.Summary);
            if (csvPath is not null) Terminal.Out($"Saving the results to {Terminal.Safe(csvPath)}");
            return 0;
        }));
        return cmd;
    }

    /// <summary>Everything vos-clips writes in its folder.</summary>
    internal static readonly string[] ClipOutputs = ["JPEGImages/*", "Annotations/*", "Annotations_sav/*", "clips.json"];

    /// <summary><c>torchsam2 vos-clips</c>: the generated VOS dataset of the tests, to try vos and eval-vos on.</summary>
    public static Command CreateClips()
    {
        var outDir = new Argument<string>("outdir") { Description = "dataset folder: JPEGImages/, Annotations/ (DAVIS) and Annotations_sav/ (SA-V) are written there" };
        var videos = Common.Int("--videos", "number of videos (1..1000)", 2, 1, 1000);
        var frames = Common.Int("--frames", "frames per video (5..1000)", 8, 5, 1000);
        var seed = new Option<int>("--seed") { Description = "random seed (same seed, same clips)", DefaultValueFactory = _ => 0 };
        var cmd = new Command("vos-clips", "Generate small VOS clips (an object leaving the frame, one occluded, one appearing on frame 3) with their masks in the DAVIS and SA-V layouts");
        cmd.Arguments.Add(outDir);
        foreach (var o in new Option[] { videos, frames, seed }) cmd.Options.Add(o);
        cmd.SetAction(pr => Common.Guard(() =>
        {
            using var folder = OutputFolder.Begin(pr.GetValue(outDir)!, ClipOutputs, "clips.json", [], "outdir");
            var names = Common.Doing("generating the clips", () => SyntheticVos.Write(folder.Staging, pr.GetValue(videos), pr.GetValue(frames), seed: pr.GetValue(seed)));
            File.WriteAllText(folder.File("clips.json"), CliJson.Serialize(new { videos = names, frames = pr.GetValue(frames), height = 64, width = 96, seed = pr.GetValue(seed) }));
            folder.Commit();
            Terminal.Out($"{names.Count} video(s) of {pr.GetValue(frames)} frames → {Terminal.Safe(folder.Display)} (JPEGImages/, Annotations/, Annotations_sav/)");
            return 0;
        }));
        return cmd;
    }

    private static string ExistingFolder(string option, string? path)
    {
        if (string.IsNullOrEmpty(path)) throw new UsageException($"{option} needs a folder");
        if (File.Exists(path)) throw new UsageException($"{option} '{Terminal.Safe(path)}' is a file, not a folder");
        if (!Directory.Exists(path)) throw new DirectoryNotFoundException($"{option}: folder not found: '{Terminal.Safe(path)}'");
        return path;
    }
}
