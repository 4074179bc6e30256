using System.Diagnostics;
using TorchSam2.Configs;
using TorchSam2.IO;
using TorchSam2.Modeling;
using TorchSharp;
using TorchSharp.Modules;
using TorchSam2.Checkpoints;
using TorchSam2.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace TorchSam2.Tests.Training;

public class TrainerTests(ITestOutputHelper output)
{
    private static string? MicroDir()
    {
        var dir = Path.Combine(TestPaths.ParityDir, "micro_image");
        if (File.Exists(Path.Combine(dir, "model.yaml"))) return dir;
        if (Environment.GetEnvironmentVariable("CI") == "true") throw new DirectoryNotFoundException($"parity folder missing: {dir}");
        return null;
    }

    private static SAM2Base MicroModel(string dir) =>
        BuildSam.build_sam2(Sam2ConfigLoader.Load(Path.Combine(dir, "model.yaml")), Path.Combine(dir, "weights.safetensors"),
                            mode: "train", apply_postprocessing: false);

    /// <summary>Images with a few filled discs and squares on a noisy background; each shape one instance.</summary>
    public static InMemorySegmentationDataset Shapes(int count, int size, int seed)
    {
        var rng = new Random(seed);
        var list = new List<SegmentationSample>();
        for (int n = 0; n < count; n++)
        {
            var px = new byte[size * size * 3];
            for (int i = 0; i < px.Length; i++) px[i] = (byte)(40 + rng.Next(20));
            var masks = new List<bool[]>();
            int shapes = 1 + rng.Next(3);
            for (int s = 0; s < shapes; s++)
            {
                var m = new bool[size * size];
                int cx = rng.Next(size / 5, size * 4 / 5), cy = rng.Next(size / 5, size * 4 / 5), r = rng.Next(size / 12, size / 5);
                bool disc = rng.Next(2) == 0;
                byte cr = (byte)rng.Next(120, 256), cg = (byte)rng.Next(0, 256), cb = (byte)rng.Next(0, 256);
                for (int y = 0; y < size; y++)
                    for (int x = 0; x < size; x++)
                    {
                        bool inside = disc ? (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r : Math.Abs(x - cx) <= r && Math.Abs(y - cy) <= r;
                        if (!inside) continue;
                        m[y * size + x] = true;
                        px[(y * size + x) * 3] = cr; px[(y * size + x) * 3 + 1] = cg; px[(y * size + x) * 3 + 2] = cb;
                    }
                // later shapes cover earlier ones
                foreach (var prev in masks) for (int i = 0; i < m.Length; i++) if (m[i]) prev[i] = false;
                masks.Add(m);
            }
            list.Add(new SegmentationSample(new RgbImage(px, size, size), masks, $"shapes_{n}"));
        }
        return new InMemorySegmentationDataset(list);
    }

    private static TrainerOptions Fast(int epochs = 1, bool freeze = false) => new()
    {
        Epochs = epochs,
        BatchSize = 2,
        Lr = 1e-3,
        Seed = 11,
        FreezeImageEncoder = freeze,
        MaxObjectsPerImage = 2,
        Prompts = new PromptSimulationOptions { NumCorrectionPtPerFrame = 1 },
    };

    [Fact]
    public void LossFallsOnSyntheticShapes()
    {
        var dir = MicroDir();
        if (dir is null) return;
        var data = Shapes(4, 128, 1);
        using var model = MicroModel(dir);
        using var trainer = new Sam2Trainer(model, data, null, Fast(epochs: 6, freeze: true) with { Augment = AugmentationOptions.None, GradClip = 1.0 });
        // a fixed batch and fixed prompts measure the loss before and after
        double Probe()
        {
            using var _ = no_grad();
            var samples = Enumerable.Range(0, 4).Select(i => SampleTransforms.Prepare(data.Get(i), model.image_size, null, null)).ToList();
            using var t = trainer.ForwardLoss(samples, new Random(5), new PromptSimulationOptions { NumCorrectionPtPerFrame = 1 })!;
            return t.Core.ToSingle();
        }
        double before = Probe();
        var times = new List<double>();
        while (trainer.Step < trainer.TotalSteps)
        {
            var r = trainer.TrainStep();
            times.Add(r.Seconds);
            output.WriteLine($"step {r.Step}: loss {r.Loss:F4} (mask {r.LossMask:F4} dice {r.LossDice:F4} iou {r.LossIou:F4} class {r.LossClass:F4}) lr {r.Lr:E2} |g| {r.GradNorm:F3} {r.Seconds * 1000:F0} ms");
        }
        double after = Probe();
        output.WriteLine($"probe loss {before:F4} → {after:F4}; median step {times.OrderBy(t => t).ElementAt(times.Count / 2) * 1000:F0} ms");
        Assert.True(after < before * 0.9, $"loss did not fall: {before} → {after}");
    }

    [Fact]
    public void ResumeContinuesBitIdentically()
    {
        var dir = MicroDir();
        if (dir is null) return;
        var data = Shapes(4, 96, 2);
        var opt = Fast(epochs: 2) with { Accumulate = 1 }; // 2 steps per epoch → 4 steps
        byte[][] Weights(SAM2Base m) => Sam2Trainer.StateRecords(m).OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Value.Data).ToArray();

        byte[][] straight;
        using (var model = MicroModel(dir))
        using (var trainer = new Sam2Trainer(model, data, null, opt))
        {
            Assert.Equal(4, trainer.TotalSteps);
            for (int i = 0; i < 4; i++) trainer.TrainStep();
            straight = Weights(model);
        }

        string ckpt = Path.Combine(Path.GetTempPath(), "torchsam2-tests", Guid.NewGuid().ToString("N"));
        try
        {
            using (var model = MicroModel(dir))
            using (var trainer = new Sam2Trainer(model, data, null, opt))
            {
                trainer.TrainStep();
                trainer.TrainStep();
                trainer.SaveCheckpoint(ckpt);
            }
            byte[][] resumed;
            using (var model = MicroModel(dir))
            using (var trainer = new Sam2Trainer(model, data, null, opt))
            {
                trainer.LoadCheckpoint(ckpt);
                Assert.Equal(2, trainer.Step);
                trainer.TrainStep();
                trainer.TrainStep();
                resumed = Weights(model);
            }
            Assert.Equal(straight.Length, resumed.Length);
            for (int i = 0; i < straight.Length; i++) Assert.True(straight[i].AsSpan().SequenceEqual(resumed[i]), $"tensor {i} differs after resume");

            // the exported weights load back into a fresh model strictly
            var sd = SafeTensors.Read(Path.Combine(ckpt, "model.safetensors")).Tensors;
            Assert.Contains("sam_mask_decoder.iou_token.weight", sd.Keys);
            Assert.Contains("image_encoder.trunk.blocks.0.attn.qkv.weight", sd.Keys);
        }
        finally
        {
            if (Directory.Exists(ckpt)) Directory.Delete(ckpt, true);
        }
    }

    [Fact]
    public void ParamGroupsFollowTheOfficialRecipe()
    {
        var dir = MicroDir();
        if (dir is null) return;
        using var model = MicroModel(dir);
        using var trainer = new Sam2Trainer(model, Shapes(1, 64, 3), null, new TrainerOptions());
        int blocks = model.image_encoder.trunk.blocks.Count; // 8 in the micro config
        Assert.Equal(0, Sam2Trainer.TrunkLayerId("image_encoder.trunk.patch_embed.proj.weight", blocks));
        Assert.Equal(3, Sam2Trainer.TrunkLayerId("image_encoder.trunk.blocks.2.mlp.layers.0.weight", blocks));
        var groups = trainer.Groups().ToList();
        // patch_embed: 0.9^(blocks + 1); biases and LayerNorms without weight decay
        Assert.Contains(groups, g => Math.Abs(g.lrScale - Math.Pow(0.9, blocks + 1)) < 1e-12);
        Assert.Contains(groups, g => g.weightDecay == 0.0);
        Assert.Contains(groups, g => g.weightDecay == 0.1 && g.lrScale == 1.0);
        // cosine from 1 to 0.1
        Assert.Equal(1.0, trainer.LrFactor(0), 12);
    }

    [Fact]
    public void PromptSamplersBehaveAsUpstream()
    {
        int h = 20, w = 30;
        var gt = new bool[h * w];
        for (int y = 5; y < 15; y++) for (int x = 10; x < 20; x++) gt[y * w + x] = true;
        var rng = new Random(1);
        for (int i = 0; i < 50; i++)
        {
            var (x, y, l) = PromptSimulation.SampleRandomPointFromErrors(gt, null, h, w, rng);
            Assert.Equal(1, l);
            Assert.True(gt[(int)y * w + (int)x]);
        }
        // prediction = gt plus an extra FP block: clicks are negative inside the FP region or positive never
        var pred = (bool[])gt.Clone();
        for (int y = 0; y < 3; y++) for (int x = 0; x < 3; x++) pred[y * w + x] = true;
        for (int i = 0; i < 20; i++)
        {
            var (x, y, l) = PromptSimulation.SampleRandomPointFromErrors(gt, pred, h, w, rng);
            Assert.Equal(0, l);
            Assert.True(x < 3 && y < 3);
        }
        // all correct: a negative click on the background
        var (bx, by, bl) = PromptSimulation.SampleRandomPointFromErrors(gt, gt, h, w, rng);
        Assert.Equal(0, bl);
        Assert.False(gt[(int)by * w + (int)bx]);
        // centre of the 10×10 square (first of the equally distant centre pixels)
        var (cx, cy, cl) = PromptSimulation.SampleOnePointFromErrorCenter(gt, null, h, w);
        Assert.Equal(1, cl);
        Assert.InRange(cx, 14, 15);
        Assert.InRange(cy, 9, 10);
        // boxes: corners within 10% of the side of the true box
        for (int i = 0; i < 20; i++)
        {
            var box = PromptSimulation.SampleBoxPoints(gt, h, w, rng);
            Assert.Equal(2, box[0].label);
            Assert.Equal(3, box[1].label);
            Assert.InRange(box[0].x, 10 - 0.9, 10 + 0.9);
            Assert.InRange(box[1].y, 14 - 0.9, 14 + 0.9);
        }
        var dt = PromptSimulation.DistanceTransform(gt, h, w);
        Assert.Equal(1f, dt[5 * w + 10]);
        Assert.Equal(5f, dt[9 * w + 14]);
    }

    [Fact]
    public void CocoPolygonsAndRleDecode()
    {
        string dir = Path.Combine(Path.GetTempPath(), "torchsam2-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var img = new RgbImage(new byte[8 * 10 * 3], 8, 10);
            img.Save(Path.Combine(dir, "a.png"));
            var sq = new bool[80];
            for (int y = 2; y < 5; y++) for (int x = 3; x < 7; x++) sq[y * 10 + x] = true;
            string rle = TorchSam2.Utils.Rle.Encode(tensor(sq, new long[] { 8, 10 })).ToCocoString();
            File.WriteAllText(Path.Combine(dir, "ann.json"), $$$"""
            {"images":[{"id":1,"file_name":"a.png","height":8,"width":10}],
             "annotations":[{"id":1,"image_id":1,"segmentation":[[3,2,7,2,7,5,3,5]]},
                            {"id":2,"image_id":1,"segmentation":{"size":[8,10],"counts":"{{{rle}}}"}}]}
            """);
            var ds = new CocoSegmentationDataset(Path.Combine(dir, "ann.json"));
            Assert.Equal(1, ds.Count);
            var s = ds.Get(0);
            Assert.Equal(2, s.Masks.Count);
            Assert.Equal(sq, s.Masks[0]);
            Assert.Equal(sq, s.Masks[1]);
        }
        finally { Directory.Delete(dir, true); }
    }
}
