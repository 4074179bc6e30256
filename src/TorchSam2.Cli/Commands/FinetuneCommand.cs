using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using TorchSam2.Evaluation;
using TorchSam2.Modeling;
using TorchSam2.Utils;
using TorchSam2.Training;

namespace TorchSam2.Cli.Commands;

/// <summary>torchsam2 finetune: SAM 2.1 fine-tuning on images with the official recipe (see Training/Trainer.cs).</summary>
internal static class FinetuneCommand
{
    public static Command Create()
    {
        var config = new Option<string>("--config") { Description = "YAML config or built-in name (sam2.1_hiera_t, ...)", Required = true };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "initial weights (.pt or .safetensors); random init when left out" };
        var data = new Option<string>("--data") { Description = "training data: a COCO JSON file, a folder of image + mask PNG pairs, glyph-crops:SPLIT:COUNT[:SEED[:STYLE]] (generated specimen crops, SPLIT train or heldout, STYLE classic (default), crowded (touching letters, tight leading, ligatures), tight (crowded, tighter still) or mixed), or video:FOLDER (JPEGImages/VIDEO/*.jpg + Annotations/VIDEO/*.png: trains on clips with memory)", Required = true };
        var val = new Option<string?>("--val") { Description = "validation data (same formats); mean IoU is reported each epoch; with video:FOLDER data, video:FOLDER (JPEGImages/ + Annotations/) whose J&F is reported each epoch" };
        var outDir = new Option<string>("--out") { Description = "output folder (model.safetensors, model.pt, checkpoint/; a new run replaces an earlier run's files when it succeeds)", Required = true };
        var epochs = Common.Int("--epochs", "passes over the training data (1..1000000)", 1, 1, 1_000_000);
        var batch = Common.Int("--batch-size", "images per micro-batch (1..4096)", 1, 1, 4096);
        var lr = Common.Real("--lr", "peak learning rate (image encoder: × 0.6, trunk layers decayed by 0.9)", 5e-6, 0, 10);
        var warmup = Common.Int("--warmup", "linear warm-up steps before the cosine schedule", 0, 0, int.MaxValue);
        var freezeImage = new Option<bool>("--freeze-image-encoder") { Description = "keep the image encoder fixed (no gradients through it)" };
        var freezePrompt = new Option<bool>("--freeze-prompt-encoder") { Description = "keep the prompt encoder fixed" };
        var accumulate = Common.Int("--accumulate", "micro-batches per optimizer step (1..1000000)", 1, 1, 1_000_000);
        var seed = new Option<int>("--seed") { Description = "random seed (data order, augmentation, prompts)", DefaultValueFactory = _ => 0 };
        var resume = new Option<string?>("--resume") { Description = "a checkpoint folder written by an earlier run (OUT/checkpoint): the run continues in place" };
        var imageSize = Common.OptionalInt("--image-size", $"train at this input size instead of the config's (a multiple of 16 in 64..{Limits.MaxModelImageSize})", 64,
                                           Limits.MaxModelImageSize, v => Common.ImageSizeError("--image-size", v));
        var corrections = Common.Int("--correction-clicks", $"correction clicks per sample (7 upstream; 0..{Limits.MaxCorrectionClicks})", 7, 0, Limits.MaxCorrectionClicks);
        var maxObjects = Common.Int("--max-objects", "objects sampled per image (1..1024)", 3, 1, 1024);
        var noAugment = new Option<bool>("--no-augment") { Description = "turn off flips, affine and colour augmentation" };
        var clipFrames = Common.Int("--clip-frames", "frames per clip with video:FOLDER data (8 upstream; 1..1024)", 8, 1, 1024);
        var saveInitial = new Option<bool>("--save-initial") { Description = "also write the weights before training (initial.safetensors), for before/after comparisons" };
        var device = Common.Device();
        var threads = Common.Threads();
        var cmd = new Command("finetune", "Fine-tune SAM 2.1 on images with masks (focal/dice/IoU losses, simulated clicks and boxes, AdamW + cosine)");
        foreach (var o in new Option[] { config, checkpoint, data, val, outDir, epochs, batch, lr, warmup, freezeImage, freezePrompt, accumulate, seed, resume,
                                         imageSize, corrections, maxObjects, noAugment, clipFrames, saveInitial, device, threads })
            cmd.Options.Add(o);
        cmd.SetAction(pr => Common.Guard(() =>
        {
            Common.ApplyThreads(pr.GetValue(threads));
            var dev = Common.ParseDevice(pr.GetValue(device)!);
            string dataSpec = pr.GetValue(data)!;
            bool video = dataSpec.StartsWith("video:", StringComparison.Ordinal);
            string? valSpec = pr.GetValue(val);
            bool videoVal = valSpec?.StartsWith("video:", StringComparison.Ordinal) == true;
            if (video && valSpec is not null && !videoVal) throw new UsageException("with video:FOLDER data, --val takes video:FOLDER (JPEGImages/ + Annotations/; J&F is reported each epoch)");
            if (!video && videoVal) throw new UsageException("--val video:FOLDER needs video:FOLDER --data (it scores the video trainer)");
            var ckpt = pr.GetValue(checkpoint) is { } c ? Common.ExistingFile("--checkpoint", c) : null;
            var resumeDir = pr.GetValue(resume);
            if (resumeDir is not null && !Directory.Exists(resumeDir))
                throw new DirectoryNotFoundException($"--resume: no checkpoint folder '{Terminal.Safe(resumeDir)}'");
            var output = pr.GetValue(outDir)!;

            // Nothing the run writes may be one of its inputs. Resuming from OUT/checkpoint continues that run in place.
            bool resumeInPlace = resumeDir is not null && PathSafety.Same(PathSafety.Resolve(resumeDir), PathSafety.Resolve(Path.Combine(output, "checkpoint")));
            var inputs = new List<(string, string?)>
            {
                ("--checkpoint", ckpt), ("--config", Common.ConfigFile(pr.GetValue(config))),
                ("--data", DataPath(dataSpec)), ("--val", pr.GetValue(val) is { } vp ? DataPath(vp) : null),
            };
            if (!resumeInPlace) inputs.Add(("--resume", resumeDir));
            using var staged = resumeDir is null ? OutputFolder.Begin(output, Outputs, "model.pt", inputs) : null;
            if (staged is null)
                PathSafety.CheckNotAnInput("--out", output, inputs, rel => Outputs.Any(p => System.IO.Enumeration.FileSystemName.MatchesSimpleExpression(p, rel.Replace(Path.DirectorySeparatorChar, '/'))));
            // a fresh run writes aside and replaces the earlier run's files at the end; a resumed run continues in OUT
            string writeDir = staged?.Staging ?? output;

            var cfg = Common.Doing($"reading the config '{pr.GetValue(config)}'", () => BuildSam.LoadConfig(pr.GetValue(config)!));
            if (pr.GetValue(imageSize) is int s) cfg = cfg.WithImageSize(s);
            // A from-scratch model is initialised from the seed too, so the whole run is reproducible.
            TorchSharp.torch.manual_seed(pr.GetValue(seed));
            // the data before the model: a bad --data is reported at once
            var videoSet = video ? Common.Doing($"opening the video data '{dataSpec}'", () => new VideoFolderDataset(dataSpec["video:".Length..], pr.GetValue(clipFrames))) : null;
            var train = video ? null : Common.Doing($"opening the training data '{dataSpec}'", () => OpenDataset(dataSpec, "--data"));
            var valSet = valSpec is { } v && !videoVal ? Common.Doing($"opening the validation data '{v}'", () => OpenDataset(v, "--val")) : null;
            string? vosVal = videoVal ? valSpec!["video:".Length..] : null;
            if (vosVal is not null) Common.Doing($"opening the validation data '{valSpec}'", () => VosValidation.ListVideos(vosVal));
            using var model = Common.Doing(ckpt is null ? "building the model" : $"loading the model '{ckpt}'",
                                           () => BuildSam.build_sam2(cfg, ckpt, dev, mode: "train", apply_postprocessing: false));
            var options = new TrainerOptions
            {
                Epochs = pr.GetValue(epochs),
                BatchSize = pr.GetValue(batch),
                Accumulate = pr.GetValue(accumulate),
                Lr = pr.GetValue(lr),
                WarmupSteps = pr.GetValue(warmup),
                FreezeImageEncoder = pr.GetValue(freezeImage),
                FreezePromptEncoder = pr.GetValue(freezePrompt),
                Seed = pr.GetValue(seed),
                MaxObjectsPerImage = pr.GetValue(maxObjects),
                Prompts = new PromptSimulationOptions { NumCorrectionPtPerFrame = pr.GetValue(corrections) },
                Augment = pr.GetValue(noAugment) ? AugmentationOptions.None : new AugmentationOptions(),
            };
            options.Validate();
            Directory.CreateDirectory(writeDir);
            if (pr.GetValue(saveInitial) && resumeDir is null)
                Common.Doing("writing initial.safetensors", () => { Sam2Trainer.ExportWeights(model, Path.Combine(writeDir, "initial.safetensors")); return 0; });
            using var videoTrainer = videoSet is null ? null : new VideoClipTrainer(model, videoSet, options, new VideoPromptOptions { NumCorrectionPtPerFrame = pr.GetValue(corrections) }) { ValidationFolder = vosVal };
            using var imageTrainer = videoTrainer is null ? new Sam2Trainer(model, train!, valSet, options) : null;
            var trainer = videoTrainer?.Inner ?? imageTrainer!;
            if (resumeDir is not null)
            {
                Common.Doing($"resuming from '{resumeDir}'", () => { trainer.LoadCheckpoint(resumeDir); return 0; });
                Terminal.Out($"resumed at step {trainer.Step} of {trainer.TotalSteps}");
            }
            Terminal.Out($"{(videoSet is null ? $"{train!.Count} training images" : $"{videoSet.Count} training videos ({pr.GetValue(clipFrames)}-frame clips)")}, {trainer.StepsPerEpoch} steps/epoch, {trainer.TotalSteps} steps, image size {model.image_size}, " +
                         $"{trainer.Groups().Sum(g => g.count):N0} trainable parameters");
            try
            {
                using var training = Activity.Doing("training");
                AnsiConsole.Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                    .Start(ctx =>
                    {
                        var task = ctx.AddTask("training", maxValue: trainer.TotalSteps);
                        task.Value = trainer.Step;
                        double ema = double.NaN;
                        var progress = new SyncProgress<TrainProgress>(p =>
                        {
                            task.Value = p.Step;
                            if (p.Last is { } l)
                            {
                                ema = double.IsNaN(ema) ? l.Loss : 0.9 * ema + 0.1 * l.Loss;
                                task.Description = Markup.Escape(string.Create(CultureInfo.InvariantCulture, $"epoch {p.Epoch + 1} loss {ema:F4} lr {l.Lr:E2} {l.Seconds:F2}s/step"));
                            }
                            if (p.Eval?.Vos is { } vos)
                                Terminal.Out($"epoch {p.Epoch + 1}: val J&F {VosMetrics.Format1(vos.GlobalJF)} (J {VosMetrics.Format1(vos.GlobalJ)}, F {VosMetrics.Format1(vos.GlobalF)}; {vos.Objects.Count()} objects in {vos.Videos.Count} videos)");
                            else if (p.Eval is { } e)
                                Terminal.Out(string.Create(CultureInfo.InvariantCulture, $"epoch {p.Epoch + 1}: val mIoU click {e.PointIou:F4}, box {e.BoxIou:F4} ({e.Objects} objects)"));
                        });
                        if (videoTrainer is not null) videoTrainer.Train(writeDir, progress);
                        else trainer.Train(writeDir, progress);
                    });
                using (Activity.Doing("writing the weights"))
                {
                    Sam2Trainer.ExportWeights(model, Path.Combine(writeDir, "model.safetensors"));
                    Sam2Trainer.ExportWeights(model, Path.Combine(writeDir, "model.pt"));
                }
                staged?.Commit();
            }
            catch (Sam2Trainer.FloatingPointError e)
            {
                KeepUnfinished(staged, output);
                throw new InvalidDataException($"training diverged: {e.Message} (NaN or infinite weights in --checkpoint, or --lr {pr.GetValue(lr).ToString(CultureInfo.InvariantCulture)} too high?)");
            }
            catch (Exception)
            {
                KeepUnfinished(staged, output);
                throw;
            }
            Terminal.Out($"wrote model.safetensors, model.pt and checkpoint/ in {Terminal.Safe(output)}");
            return 0;
        }));
        return cmd;
    }

    /// <summary>Everything finetune writes in --out (an earlier run's files of these names are replaced when a new run succeeds).</summary>
    internal static readonly string[] Outputs = ["model.safetensors", "model.pt", "initial.safetensors", "checkpoint/*"];

    // A failed fresh run leaves --out as it was; its staging folder is kept only when it holds a checkpoint to resume from.
    private static void KeepUnfinished(OutputFolder? staged, string output)
    {
        if (staged is null || !Directory.Exists(Path.Combine(staged.Staging, "checkpoint"))) return;
        staged.Keep();
        Terminal.Note($"'{Terminal.Safe(output)}' is unchanged; the unfinished run's checkpoint is in '{Terminal.Safe(Path.Combine(staged.Staging, "checkpoint"))}' " +
                      "(continue it with --resume that folder, or delete it)");
    }

    /// <summary>The file or folder a --data / --val value reads (null for generated data).</summary>
    private static string? DataPath(string spec) =>
        spec.StartsWith("glyph-crops:", StringComparison.Ordinal) ? null
        : spec.StartsWith("video:", StringComparison.Ordinal) ? spec["video:".Length..]
        : spec;

    private static ISegmentationDataset OpenDataset(string path, string option) =>
        path.StartsWith("glyph-crops:", StringComparison.Ordinal) ? GlyphCrops(path, option)
        : File.Exists(path) ? new CocoSegmentationDataset(path)
        : Directory.Exists(path) && File.Exists(Path.Combine(path, "annotations.json")) ? new CocoSegmentationDataset(Path.Combine(path, "annotations.json"))
        : Directory.Exists(path) ? new MaskFolderDataset(path)
        : throw new FileNotFoundException($"{option}: no dataset at '{Terminal.Safe(path)}'");

    // glyph-crops:SPLIT:COUNT[:SEED[:STYLE]] — crops of generated specimen sheets, made on the fly.
    private static ISegmentationDataset GlyphCrops(string spec, string option)
    {
        var parts = spec.Split(':');
        if (parts.Length is < 3 or > 5)
            throw new UsageException($"{option} expects glyph-crops:SPLIT:COUNT[:SEED[:STYLE]], got '{Terminal.Safe(spec)}'");
        if (!int.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out int count) || count is < 1 or > 10_000_000)
            throw new UsageException($"{option} '{Terminal.Safe(spec)}': COUNT must be a whole number in 1..10000000, got '{Terminal.Safe(parts[2])}'");
        var split = parts[1].ToLowerInvariant() switch
        {
            "train" => TorchSam2.Glyphs.FontSplit.Train,
            "heldout" or "held-out" => TorchSam2.Glyphs.FontSplit.HeldOut,
            var other => throw new UsageException($"{option} '{Terminal.Safe(spec)}': the split must be train or heldout, got '{Terminal.Safe(other)}'"),
        };
        int seed = 0;
        if (parts.Length == 4 && !int.TryParse(parts[3], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out seed))
            throw new UsageException($"{option} '{Terminal.Safe(spec)}': SEED must be a whole number, got '{Terminal.Safe(parts[3])}'");
        string style = parts.Length < 5 ? "classic" : parts[4].ToLowerInvariant();
        double crowded = style switch
        {
            "classic" => 0,
            "crowded" or "tight" => 1,
            "mixed" => 0.5,
            var other => throw new UsageException($"{option} '{Terminal.Safe(spec)}': STYLE must be classic, crowded, tight or mixed, got '{Terminal.Safe(other)}'"),
        };
        return new TorchSam2.Glyphs.GlyphCropDataset(count, split, seed, crowdedFraction: crowded,
                                                     crowded: style == "tight" ? TorchSam2.Glyphs.SpecimenOptions.Tight : null);
    }
}
