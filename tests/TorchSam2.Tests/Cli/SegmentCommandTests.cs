using System.Text.Json;
using TorchSam2.IO;
using TorchSam2.Checkpoints;

namespace TorchSam2.Tests.Cli;

// Runs the built CLI end to end on the micro_image reference case: the scores it writes must be
// PyTorch's predicted IoUs for the same click.
public class SegmentCommandTests
{
    private static (int code, string output) Run(params string[] args)
    {
        var (code, stdout, stderr) = CliProcess.Run(300_000, args);
        return (code, stdout + stderr);
    }

    [Fact]
    public void SegmentWritesMasksOverlayAndPyTorchScores()
    {
        var caseDir = Path.Combine(TestPaths.ParityDir, "micro_image");
        if (!Directory.Exists(caseDir))
        {
            Assert.False(CliProcess.InCi, $"CI=true but {caseDir} is missing");
            return;
        }
        Assert.True(File.Exists(CliProcess.Dll()), $"build the CLI first: {CliProcess.Dll()} is missing");
        var inputs = SafeTensors.Read(Path.Combine(caseDir, "inputs.safetensors")).Tensors;
        var image = inputs["image"];
        int h = (int)image.Shape[0], w = (int)image.Shape[1];
        var dir = Path.Combine(Path.GetTempPath(), "torchsam2-tests", "segment_" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        var png = Path.Combine(dir, "image.png");
        ImageIO.Write(png, image.Data, h, w, 3);

        var (code, output) = Run("segment", png, "--checkpoint", Path.Combine(caseDir, "weights.safetensors"), "--config", Path.Combine(caseDir, "model.yaml"),
                                 "--point", "150,100", "--multimask", "--out", Path.Combine(dir, "out"));
        Assert.True(code == 0, output);

        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "out", "masks.json")));
        var masks = json.RootElement.GetProperty("masks").EnumerateArray().ToList();
        Assert.Equal(3, masks.Count);
        var scores = masks.Select(m => m.GetProperty("score").GetSingle()).ToArray();
        var expected = SafeTensors.Read(Path.Combine(caseDir, "expected.safetensors")).Tensors["predict0.iou_predictions"].ToFloat32Array().OrderByDescending(v => v).ToArray();
        for (int i = 0; i < 3; i++) Assert.True(Math.Abs(scores[i] - expected[i]) < 2e-3, $"score {i}: {scores[i]} vs PyTorch {expected[i]}");

        var mask = ImageIO.Read(Path.Combine(dir, "out", "mask_0.png"));
        Assert.Equal((h, w), (mask.Height, mask.Width));
        long area = masks[0].GetProperty("area").GetInt64();
        Assert.Equal(area, mask.Pixels.Where((v, i) => i % 3 == 0 && v == 255).LongCount());
        var overlay = ImageIO.Read(Path.Combine(dir, "out", "overlay.png"));
        Assert.Equal((h, w), (overlay.Height, overlay.Width));
        Directory.Delete(dir, true);
    }

    [Fact]
    public void SegmentReportsAnUnreadableImageClearly()
    {
        if (!File.Exists(CliProcess.Dll())) { Assert.False(CliProcess.InCi, "CLI not built"); return; }
        var bogus = Path.Combine(Path.GetTempPath(), $"torchsam2-bogus-{Guid.NewGuid():N}.png");
        File.WriteAllText(bogus, "not an image");
        var (code, output) = Run("segment", bogus, "--checkpoint", "missing.pt", "--point", "1,1");
        Assert.Equal(1, code);
        Assert.Contains("cannot read image", output);
        File.Delete(bogus);
    }
}
