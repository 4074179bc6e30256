using TorchSam2.Configs;
using TorchSam2.Evaluation;
using TorchSam2.IO;
using TorchSam2.Modeling;
using TorchSam2.Tests.Cli;
using TorchSam2.Training;
using Xunit.Abstractions;

namespace TorchSam2.Tests.Training;

// The video trainer's J&F validation (--val video:FOLDER): scored at each epoch end as eval-vos scores written predictions.
public sealed class VideoValidationTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "torchsam2-tests", "vosval_" + Guid.NewGuid().ToString("N"));
    private static string Micro => Path.Combine(TestPaths.ParityDir, "micro_video");

    public void Dispose()
    {
        try { if (Directory.Exists(_dir)) Directory.Delete(_dir, true); }
        catch (IOException) { }
    }

    private static bool Have()
    {
        if (File.Exists(Path.Combine(Micro, "weights.safetensors"))) return true;
        Assert.False(CliProcess.InCi, $"CI=true but {Micro} is missing");
        return false;
    }

    [Fact]
    public void EpochEndReportsJAndFAsEvalVosScoresIt()
    {
        if (!Have()) return;
        SyntheticVos.Write(_dir, videos: 1, frames: 5);
        using var model = BuildSam.build_sam2(Sam2ConfigLoader.Load(Path.Combine(Micro, "model.yaml")).WithImageSize(128), Path.Combine(Micro, "weights.safetensors"),
                                              mode: "train", apply_postprocessing: false);
        var options = new TrainerOptions { Epochs = 1, BatchSize = 1, Lr = 1e-4, Seed = 3, FreezeImageEncoder = true, MaxObjectsPerImage = 2, Augment = AugmentationOptions.None };
        var data = new MovingShapesVideoDataset(1, numFrames: 3, size: 96, seed: 1);
        using var trainer = new VideoClipTrainer(model, data, options, new VideoPromptOptions { NumCorrectionPtPerFrame = 1 }) { ValidationFolder = _dir };
        // what the epoch end reports (training itself is covered by VideoTrainingTests and the CLI test below)
        var atEpochEnd = trainer.EvaluateVos(_dir).Vos;
        Assert.NotNull(atEpochEnd);
        Assert.True(model.training, "the model is back in training mode after validation");
        Assert.Equal(["001", "002", "003"], atEpochEnd!.Objects.Select(o => o.Object));
        output.WriteLine(atEpochEnd.ToTable());

        // the same weights, predictions written as vos writes them and scored by eval-vos's code: the same numbers
        string pred = Path.Combine(_dir, "pred");
        using (var predictor = new Sam2VideoPredictor(model, nonOverlapMasks: true))
        {
            var video = VosVideo.Open(Path.Combine(_dir, "JPEGImages"), Path.Combine(_dir, "Annotations"), "video0");
            video.Run(predictor, (f, perObj) =>
                LabelPng.Write(Path.Combine(pred, "video0", video.FrameNames[f] + ".png"), VosVideo.ToLabels(perObj, video.Height * video.Width), video.Height, video.Width));
        }
        model.train();
        var files = VosBenchmark.Evaluate(Path.Combine(_dir, "Annotations"), pred);
        Assert.Equal(files.Objects.Select(o => (o.J, o.F)), atEpochEnd.Objects.Select(o => (o.J, o.F)));
        Assert.Equal(files.GlobalJF, atEpochEnd.GlobalJF);
    }

    [Fact]
    public void FinetunePrintsValidationJAndFEachEpoch()
    {
        if (!Have() || !File.Exists(CliProcess.Dll())) return;
        SyntheticVos.Write(_dir, videos: 1, frames: 5);
        string[] common = ["finetune", "--config", Path.Combine(Micro, "model.yaml"), "--checkpoint", Path.Combine(Micro, "weights.safetensors"),
                           "--image-size", "128", "--clip-frames", "3", "--correction-clicks", "1", "--freeze-image-encoder", "--no-augment", "--threads", "2"];
        var r = CliProcess.Run(300_000, (IReadOnlyDictionary<string, string?>?)null,
            [.. common, "--data", "video:" + _dir, "--val", "video:" + _dir, "--epochs", "1", "--out", Path.Combine(_dir, "out")]);
        Assert.True(r.Code == 0, r.Output);
        output.WriteLine(r.Stdout);
        Assert.Contains("epoch 1: val J&F ", r.Stdout);
        Assert.Contains("; 3 objects in 1 videos)", r.Stdout);
        // an image dataset as video validation, and a folder without JPEGImages/: one line each
        var bad = CliProcess.Run(60_000, (IReadOnlyDictionary<string, string?>?)null,
            [.. common, "--data", "video:" + _dir, "--val", _dir, "--out", Path.Combine(_dir, "out2")]);
        Assert.Equal(2, bad.Code);
        Assert.Contains("--val takes video:FOLDER", bad.Stderr);
        bad = CliProcess.Run(60_000, (IReadOnlyDictionary<string, string?>?)null,
            [.. common, "--data", "video:" + _dir, "--val", "video:" + Path.Combine(_dir, "JPEGImages"), "--out", Path.Combine(_dir, "out2")]);
        Assert.Equal(1, bad.Code);
        Assert.Contains("needs JPEGImages/<video>/ and Annotations/<video>/", bad.Stderr);
    }
}
