using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using TorchSam2.Modeling;
using TorchSam2.Training;

namespace TorchSam2.Cli.Commands;

/// <summary>torchsam2 finetune: SAM 2.1 fine-tuning on images with the official recipe (see Training/Trainer.cs).</summary>
internal static class FinetuneCommand
{
    public static Command Create()
    {
        var config = new Option<string>("--config") { Description = "YAML config or built-in name (sam2.1_hiera_t, ...)", Required = true };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "initial weights (.pt or .safetensors); random init when left out" };
        var data = new Option<string>("--data") { Description = "training data: a COCO JSON file, a folder of image + mask PNG pairs, glyph-crops:SPLIT:COUNT[:SEED] (generated specimen crops, SPLIT train or heldout), or video:FOLDER (JPEGImages/VIDEO/*.jpg + Annotations/VIDEO/*.png: trains on clips with memory)", Required = true };
        var val = new Option<string?>("--val") { Description = "validation data (same formats); mean IoU is reported each epoch" };
        var outDir = new Option<string>("--out") { Description = "output folder (model.safetensors, model.pt, checkpoint/)", Required = true };
        var epochs = new Option<int>("--epochs") { Description = "passes over the training data", DefaultValueFactory = _ => 1 };
        var batch = new Option<int>("--batch-size") { Description = "images per micro-batch", DefaultValueFactory = _ => 1 };
        var lr = new Option<double>("--lr") { Description = "peak learning rate (image encoder: × 0.6, trunk layers decayed by 0.9)", DefaultValueFactory = _ => 5e-6 };
        var warmup = new Option<int>("--warmup") { Description = "linear warm-up steps before the cosine schedule", DefaultValueFactory = _ => 0 };
        var freezeImage = new Option<bool>("--freeze-image-encoder") { Description = "keep the image encoder fixed (no gradients through it)" };
        var freezePrompt = new Option<bool>("--freeze-prompt-encoder") { Description = "keep the prompt encoder fixed" };
        var accumulate = new Option<int>("--accumulate") { Description = "micro-batches per optimizer step", DefaultValueFactory = _ => 1 };
        var seed = new Option<int>("--seed") { Description = "random seed (data order, augmentation, prompts)", DefaultValueFactory = _ => 0 };
        var resume = new Option<string?>("--resume") { Description = "a checkpoint folder written by an earlier run (OUT/checkpoint)" };
        var imageSize = new Option<int?>("--image-size") { Description = "train at this input size instead of the config's" };
        var corrections = new Option<int>("--correction-clicks") { Description = "correction clicks per sample (7 upstream)", DefaultValueFactory = _ => 7 };
        var maxObjects = new Option<int>("--max-objects") { Description = "objects sampled per image", DefaultValueFactory = _ => 3 };
        var noAugment = new Option<bool>("--no-augment") { Description = "turn off flips, affine and colour augmentation" };
        var clipFrames = new Option<int>("--clip-frames") { Description = "frames per clip with video:FOLDER data (8 upstream)", DefaultValueFactory = _ => 8 };
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
            var cfg = BuildSam.LoadConfig(pr.GetValue(config)!);
            if (pr.GetValue(imageSize) is int s) cfg = cfg.WithImageSize(s);
            // A from-scratch model is initialised from the seed too, so the whole run is reproducible.
            TorchSharp.torch.manual_seed(pr.GetValue(seed));
            using var model = BuildSam.build_sam2(cfg, pr.GetValue(checkpoint), dev, mode: "train", apply_postprocessing: false);
            string dataSpec = pr.GetValue(data)!;
            bool video = dataSpec.StartsWith("video:", StringComparison.Ordinal);
            if (video && pr.GetValue(val) is not null) throw new ArgumentException("--val is not supported with video:FOLDER data");
            var videoSet = video ? new VideoFolderDataset(dataSpec["video:".Length..], pr.GetValue(clipFrames)) : null;
            var train = video ? null : OpenDataset(dataSpec);
            var valSet = pr.GetValue(val) is { } v ? OpenDataset(v) : null;
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
            var output = pr.GetValue(outDir)!;
            Directory.CreateDirectory(output);
            if (pr.GetValue(saveInitial) && pr.GetValue(resume) is null)
                Sam2Trainer.ExportWeights(model, Path.Combine(output, "initial.safetensors"));
            using var videoTrainer = videoSet is null ? null : new VideoClipTrainer(model, videoSet, options, new VideoPromptOptions { NumCorrectionPtPerFrame = pr.GetValue(corrections) });
            using var imageTrainer = videoTrainer is null ? new Sam2Trainer(model, train!, valSet, options) : null;
            var trainer = videoTrainer?.Inner ?? imageTrainer!;
            if (pr.GetValue(resume) is { } r)
            {
                trainer.LoadCheckpoint(r);
                AnsiConsole.MarkupLine($"resumed at step {trainer.Step} of {trainer.TotalSteps}");
            }
            AnsiConsole.MarkupLine($"{(videoSet is null ? $"{train!.Count} training images" : $"{videoSet.Count} training videos ({pr.GetValue(clipFrames)}-frame clips)")}, {trainer.StepsPerEpoch} steps/epoch, {trainer.TotalSteps} steps, image size {model.image_size}, " +
                                   $"{trainer.Groups().Sum(g => g.count):N0} trainable parameters");
            var log = new List<string>();
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
                            task.Description = string.Create(CultureInfo.InvariantCulture, $"epoch {p.Epoch + 1} loss {ema:F4} lr {l.Lr:E2} {l.Seconds:F2}s/step");
                        }
                        if (p.Eval is { } e)
                        {
                            var line = string.Create(CultureInfo.InvariantCulture, $"epoch {p.Epoch + 1}: val mIoU click {e.PointIou:F4}, box {e.BoxIou:F4} ({e.Objects} objects)");
                            log.Add(line);
                            AnsiConsole.MarkupLine(Markup.Escape(line));
                        }
                    });
                    if (videoTrainer is not null) videoTrainer.Train(output, progress);
                    else trainer.Train(output, progress);
                });
            Sam2Trainer.ExportWeights(model, Path.Combine(output, "model.safetensors"));
            Sam2Trainer.ExportWeights(model, Path.Combine(output, "model.pt"));
            AnsiConsole.MarkupLine($"wrote {Markup.Escape(Path.Combine(output, "model.safetensors"))}, model.pt and checkpoint/");
            return 0;
        }));
        return cmd;
    }

    private static ISegmentationDataset OpenDataset(string path) =>
        path.StartsWith("glyph-crops:", StringComparison.Ordinal) ? GlyphCrops(path)
        : File.Exists(path) ? new CocoSegmentationDataset(path)
        : Directory.Exists(path) && Directory.GetFiles(path, "*.json").FirstOrDefault(f => Path.GetFileName(f) == "annotations.json") is { } j ? new CocoSegmentationDataset(j)
        : Directory.Exists(path) ? new MaskFolderDataset(path)
        : throw new FileNotFoundException($"no dataset at {path}");

    // glyph-crops:SPLIT:COUNT[:SEED] — crops of generated specimen sheets, made on the fly.
    private static ISegmentationDataset GlyphCrops(string spec)
    {
        var parts = spec.Split(':');
        if (parts.Length is < 3 or > 4 || !int.TryParse(parts[2], out int count) || count <= 0)
            throw new ArgumentException($"expected glyph-crops:SPLIT:COUNT[:SEED], got '{spec}'");
        var split = parts[1].ToLowerInvariant() switch
        {
            "train" => TorchSam2.Glyphs.FontSplit.Train,
            "heldout" or "held-out" => TorchSam2.Glyphs.FontSplit.HeldOut,
            var other => throw new ArgumentException($"glyph-crops split must be train or heldout, got '{other}'"),
        };
        int seed = parts.Length == 4 && int.TryParse(parts[3], out int s) ? s : 0;
        return new TorchSam2.Glyphs.GlyphCropDataset(count, split, seed);
    }

    // Progress<T> posts to the thread pool; report synchronously on the training thread instead.
    private sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
