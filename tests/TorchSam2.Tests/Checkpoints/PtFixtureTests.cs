using TorchSharp;
using static TorchSharp.torch;
using TorchSharp.Modules;
using TorchSam2.Checkpoints;
using Xunit;

namespace TorchSam2.Tests.Checkpoints;

/// <summary>Reads Fixtures/tiny_state_dict.pt, written by real torch.save (tools/fixtures/make_pt_fixture.py).</summary>
public class PtFixtureTests
{
    private static readonly IReadOnlyDictionary<string, TensorRecord> Sd =
        PtCheckpoint.LoadStateDict(TestPaths.Fixture("tiny_state_dict.pt"));

    private static float[] Arange(int n) => Enumerable.Range(0, n).Select(i => (float)i).ToArray();

    [Fact]
    public void KeysAreInFileOrder() =>
        Assert.Equal(
            ["a.weight", "view.full", "view.offset", "view.transposed", "view.sliced", "half", "bf16", "long", "mask", "scalar", "param", "empty"],
            Sd.Keys);

    [Fact]
    public void ContiguousFloat32()
    {
        Assert.Equal(new long[] { 2, 3 }, Sd["a.weight"].Shape);
        Assert.Equal(new[] { -0.75f, -0.25f, 0.25f, 0.75f, 1.25f, 1.75f }, Sd["a.weight"].AsSpan<float>().ToArray());
        Assert.Equal(Arange(24), Sd["view.full"].AsSpan<float>().ToArray());
    }

    [Fact]
    public void ViewsOfOneSharedStorage()
    {
        Assert.Equal(new long[] { 2, 3 }, Sd["view.offset"].Shape);
        Assert.Equal(new float[] { 5, 6, 7, 8, 9, 10 }, Sd["view.offset"].AsSpan<float>().ToArray());

        // grid.t(): out[i, j] = grid[j, i] = 6 j + i.
        Assert.Equal(new long[] { 6, 4 }, Sd["view.transposed"].Shape);
        var t = Sd["view.transposed"].AsSpan<float>().ToArray();
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 4; j++) Assert.Equal(6 * j + i, t[i * 4 + j]);

        // grid[:, 1::2]: out[r, c] = 6 r + 1 + 2 c.
        Assert.Equal(new long[] { 4, 3 }, Sd["view.sliced"].Shape);
        var s = Sd["view.sliced"].AsSpan<float>().ToArray();
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 3; c++) Assert.Equal(6 * r + 1 + 2 * c, s[r * 3 + c]);

        // Views must not alias each other's arrays.
        Assert.NotSame(Sd["view.full"].Data, Sd["view.offset"].Data);
    }

    [Fact]
    public void HalfIsBitExact()
    {
        var h = Sd["half"];
        Assert.Equal(ScalarType.Float16, h.DType);
        Half[] expected = [(Half)0.1, (Half)(-2.5), (Half)65504.0, (Half)6e-5, (Half)(1.0 / 3.0)];
        Assert.Equal(expected.Select(BitConverter.HalfToUInt16Bits), h.AsSpan<ushort>().ToArray());
    }

    [Fact]
    public void BFloat16AndIntegerTypes()
    {
        Assert.Equal(ScalarType.BFloat16, Sd["bf16"].DType);
        Assert.Equal(new long[] { 2, 2 }, Sd["bf16"].Shape);
        Assert.Equal(new[] { 1.5f, -2f, 0.15625f, 3f }, Sd["bf16"].ToFloat32Array());
        Assert.Equal(new long[] { -1, 0, 1L << 40 }, Sd["long"].AsSpan<long>().ToArray());
        Assert.Equal(ScalarType.Bool, Sd["mask"].DType);
        Assert.Equal(new byte[] { 1, 0, 0, 1 }, Sd["mask"].Data);
    }

    [Fact]
    public void ScalarParameterAndEmpty()
    {
        Assert.Empty(Sd["scalar"].Shape);
        Assert.Equal(3.25, Sd["scalar"].AsSpan<double>()[0]);
        Assert.Equal(new[] { 1f, -1f }, Sd["param"].ToFloat32Array()); // nn.Parameter via _rebuild_parameter
        Assert.Equal(new long[] { 0, 3 }, Sd["empty"].Shape);
        Assert.Empty(Sd["empty"].Data);
    }

    [Fact]
    public void SniffingLoaderReadsTheFixture() =>
        Assert.Equal(Sd.Keys, CheckpointFile.LoadStateDict(TestPaths.Fixture("tiny_state_dict.pt")).Keys);
}
