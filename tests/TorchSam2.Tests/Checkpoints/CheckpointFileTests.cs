using TorchSam2.Checkpoints;
using Xunit;

namespace TorchSam2.Tests.Checkpoints;

public class CheckpointFileTests
{
    [Fact]
    public void PicksFormatByContentNotExtension()
    {
        var sd = TensorSamples.AllDTypes();
        string pt = TestPaths.TempFile(".bin"), st = TestPaths.TempFile(".pt");
        PtCheckpoint.Write(pt, sd);
        SafeTensors.Write(st, sd);
        Assert.Equal(CheckpointFormat.PyTorchZip, CheckpointFile.DetectFormat(pt));
        Assert.Equal(CheckpointFormat.SafeTensors, CheckpointFile.DetectFormat(st));
        Assert.Equal(sd["f16"], CheckpointFile.LoadStateDict(pt)["f16"]);
        Assert.Equal(sd["i64"], CheckpointFile.LoadStateDict(st)["i64"]);
        File.Delete(pt);
        File.Delete(st);
    }

    [Fact]
    public void UnknownContentShowsFirstBytes()
    {
        string path = TestPaths.TempFile(".pt");
        File.WriteAllText(path, "GGUF not a torch file");
        var e = Assert.Throws<CheckpointException>(() => CheckpointFile.LoadStateDict(path));
        Assert.Contains("not a PyTorch zip checkpoint or safetensors file", e.Message);
        Assert.Contains("47 47 55 46", e.Message);
        File.Delete(path);
    }

    [Fact]
    public void EmptyFile()
    {
        string path = TestPaths.TempFile(".pt");
        File.WriteAllBytes(path, []);
        Assert.Contains("(empty file)", Assert.Throws<CheckpointException>(() => CheckpointFile.LoadStateDict(path)).Message);
        File.Delete(path);
    }

    [Fact]
    public void MissingFile() =>
        Assert.Throws<FileNotFoundException>(() => CheckpointFile.LoadStateDict("/does/not/exist.safetensors"));
}
