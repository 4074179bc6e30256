using TorchSam2.Configs;
using TorchSam2.IO;
using TorchSam2.Modeling;
using TorchSharp;
using TorchSharp.Modules;
using TorchSam2.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace TorchSam2.Tests.Training;

public class VideoTrainingTests(ITestOutputHelper output)
{
    private const int ImageSize = 128; // the micro model at a smaller input keeps CPU steps short

    private static string? MicroDir()
    {
        var dir = Path.Combine(TestPaths.ParityDir, "micro_video");
        if (File.Exists(Path.Combine(dir, "model.yaml"))) return dir;
        if (Environment.GetEnvironmentVariable("CI") == "true") throw new DirectoryNotFoundException($"parity folder missing: {dir}");
        return null;
    }

    private static SAM2Base MicroModel(string dir) =>
        BuildSam.build_sam2(Sam2ConfigLoader.Load(Path.Combine(dir, "model.yaml")).WithImageSize(ImageSize), Path.Combine(dir, "weights.safetensors"),
                            mode: "train", apply_postprocessing: false);

    private static TrainerOptions Fast(int epochs) => new()
    {
        Epochs = epochs,
        BatchSize = 2,
        Lr = 1e-3,
        Seed = 5,
        FreezeImageEncoder = true,
        MaxObjectsPerImage = 2,
        GradClip = 1.0,
        Augment = AugmentationOptions.None,
    };

    private static VideoPromptOptions FewClicks => new() { NumCorrectionPtPerFrame = 1 };

    [Fact]
    public void PromptPlanFollowsUpstream()
    {
        var rng = new Random(3);
        // a single frame: always clicks, corrected, the only conditioning frame
        var one = VideoClipTrainer.PlanPrompts(1, new VideoPromptOptions { ProbToUsePtInput = 0 }, rng);
        Assert.True(one.UsePtInput);
        Assert.Equal([0], one.InitCondFrames);
        Assert.Equal([0], one.FramesToCorrect);
        int pt = 0;
        for (int i = 0; i < 200; i++)
        {
            var plan = VideoClipTrainer.PlanPrompts(8, new VideoPromptOptions(), rng);
            Assert.Equal(0, plan.InitCondFrames[0]);
            Assert.InRange(plan.InitCondFrames.Count, 1, 2);
            Assert.Equal(plan.InitCondFrames.Count, plan.InitCondFrames.Distinct().Count());
            if (plan.UsePtInput)
            {
                pt++;
                Assert.InRange(plan.FramesToCorrect.Count, plan.InitCondFrames.Count, 2);
                Assert.Equal(plan.InitCondFrames, plan.FramesToCorrect.Take(plan.InitCondFrames.Count));
            }
            else Assert.Empty(plan.FramesToCorrect);
        }
        Assert.InRange(pt, 60, 140); // prob_to_use_pt_input 0.5
    }

    [Fact]
    public void FolderDatasetReadsPerFrameObjectIds()
    {
        string root = Path.Combine(Path.GetTempPath(), "torchsam2-tests", Guid.NewGuid().ToString("N"));
        try
        {
            int h = 12, w = 16;
            Directory.CreateDirectory(Path.Combine(root, "JPEGImages", "vid"));
            Directory.CreateDirectory(Path.Combine(root, "Annotations", "vid"));
            for (int t = 0; t < 4; t++)
            {
                var img = new byte[h * w * 3];
                var ann = new byte[h * w * 3];
                for (int y = 2; y < 6; y++) for (int x = t; x < t + 4; x++) { ann[(y * w + x) * 3] = 128; img[(y * w + x) * 3] = 200; } // object (128,0,0)
                if (t >= 2) for (int y = 8; y < 10; y++) for (int x = 10; x < 12; x++) ann[(y * w + x) * 3 + 1] = 128;            // object (0,128,0) appears later
                ImageIO.Write(Path.Combine(root, "JPEGImages", "vid", $"{t:D5}.png"), img, h, w, 3);
                ImageIO.Write(Path.Combine(root, "Annotations", "vid", $"{t:D5}.png"), ann, h, w, 3);
            }
            var ds = new VideoFolderDataset(root, numFrames: 3);
            Assert.Equal(1, ds.Count);
            var clip = ds.Get(0);
            Assert.Equal(3, clip.NumFrames);
            Assert.Equal(2, clip.NumObjects); // both colours over the clip, by increasing colour value
            Assert.Equal(16, clip.Masks[0][1].Count(v => v));
            Assert.Equal(0, clip.Masks[0][0].Count(v => v));
            Assert.Equal(4, clip.Masks[2][0].Count(v => v));
            // the prepared clip keeps objects visible on the first frame only
            var prep = PreparedClip.From(clip, 32, null, null);
            Assert.Equal(1, prep.NumObjects);
            var random = ds.Get(0, new Random(1));
            Assert.Equal(3, random.NumFrames);
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, true);
        }
    }

    [Fact]
    public void GradientsReachMemoryAttentionAndEncoder()
    {
        var dir = MicroDir();
        if (dir is null) return;
        using var model = MicroModel(dir);
        var data = new MovingShapesVideoDataset(2, numFrames: 3, size: 96, seed: 1);
        using var trainer = new VideoClipTrainer(model, data, Fast(1));
        model.train();
        foreach (bool points in new[] { true, false })
        {
            foreach (var prm in model.parameters()) prm.grad?.zero_();
            var clips = Enumerable.Range(0, 2).Select(i => PreparedClip.From(data.Get(i), model.image_size, null, null)).ToList();
            var opts = FewClicks with { ProbToUsePtInput = points ? 1 : 0, NumInitCondFrames = 1, NumFramesToCorrect = 2 };
            using (var scope = NewDisposeScope())
            {
                manual_seed(1);
                using var terms = trainer.ForwardLoss(clips, new Random(2), opts)!;
                output.WriteLine($"{(points ? "clicks" : "GT mask")}: loss {terms.Core.ToSingle():F4}");
                terms.Core.backward();
            }
            double GradSum(nn.Module m) => m.parameters().Where(q => q.grad is not null).Sum(q => q.grad!.abs().sum().ToSingle());
            double ma = GradSum(model.memory_attention), me = GradSum(model.memory_encoder), dec = GradSum(model.sam_mask_decoder);
            output.WriteLine($"  |grad| memory_attention {ma:E3}, memory_encoder {me:E3}, mask decoder {dec:E3}, maskmem_tpos_enc {model.maskmem_tpos_enc.grad?.abs().sum().ToSingle():E3}");
            Assert.True(ma > 0, "no gradient in memory_attention");
            Assert.True(me > 0, "no gradient in memory_encoder");
            Assert.True(dec > 0, "no gradient in the mask decoder");
            Assert.True(model.maskmem_tpos_enc.grad is not null && model.maskmem_tpos_enc.grad.abs().sum().ToSingle() > 0);
            Assert.All(model.image_encoder.parameters(), q => Assert.True(q.grad is null || q.grad.abs().sum().ToSingle() == 0)); // frozen
        }
    }

    [Fact]
    public void VideoLossFallsOnMovingShapes()
    {
        var dir = MicroDir();
        if (dir is null) return;
        var data = new MovingShapesVideoDataset(4, numFrames: 3, size: 96, seed: 7);
        using var model = MicroModel(dir);
        using var trainer = new VideoClipTrainer(model, data, Fast(epochs: 5), FewClicks);
        var probeClips = Enumerable.Range(0, 4).Select(i => PreparedClip.From(data.Get(i), model.image_size, null, null)).ToList();
        // fixed clips, prompts (clicks on frame 0, tracking after) and dropout masks
        var probeOpts = FewClicks with { ProbToUsePtInput = 1, NumInitCondFrames = 1, NumFramesToCorrect = 1 };
        double Probe()
        {
            using var _ = no_grad();
            using var scope = NewDisposeScope();
            manual_seed(123);
            using var t = trainer.ForwardLoss(probeClips, new Random(9), probeOpts)!;
            return t.Core.ToSingle();
        }
        double before = Probe();
        while (trainer.Step < trainer.TotalSteps)
        {
            var r = trainer.TrainStep();
            output.WriteLine($"step {r.Step}: loss {r.Loss:F4} (mask {r.LossMask:F4} dice {r.LossDice:F4} iou {r.LossIou:F4} class {r.LossClass:F4}) |g| {r.GradNorm:F3} {r.Seconds * 1000:F0} ms");
            Assert.True(double.IsFinite(r.Loss));
        }
        double after = Probe();
        output.WriteLine($"probe loss {before:F4} → {after:F4}");
        Assert.True(after < before * 0.9, $"loss did not fall: {before} → {after}");
    }
}
