using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchSam2.Checkpoints.Tests;

// TorchSharp raises every libtorch failure as a plain ExternalException carrying libtorch's message and C++
// backtrace; TorchErrors turns it into one typed, one-line exception. The process lives on.
public class ErrorTests
{
    private static Exception Translated(Action a)
    {
        var e = Assert.ThrowsAny<ExternalException>(a);
        return TorchErrors.Translate(e);
    }

    [Fact]
    public void WrongShapeMatmulBecomesValueErrorWithLibtorchsFirstLine()
    {
        using var a = zeros(2, 3);
        using var b = zeros(4, 5);
        // mm, not matmul: TorchSharp 0.107's matmul entry point lets the C++ exception escape (process abort);
        // the library checks shapes before its own matmuls (Sam2Utils.MatMul).
        var ex = Assert.IsType<TorchValueException>(Translated(() => a.mm(b)));
        Assert.Contains("cannot be multiplied", ex.Message);
        Assert.DoesNotContain('\n', ex.Message);
        Assert.IsAssignableFrom<ExternalException>(ex.InnerException);
        using var c = a.mm(zeros(3, 1));
        Assert.Equal(new long[] { 2, 1 }, c.shape);
    }

    [Fact]
    public void OutOfRangeIndexBecomesIndexError()
    {
        using var x = zeros(2, 3);
        var ex = Assert.IsType<TorchIndexException>(Translated(() => x.select(0, 5)));
        Assert.Contains("out of range", ex.Message);
    }

    [Fact]
    public void DtypeMismatchBecomesTypeError()
    {
        using var f = zeros(3, 3);
        using var l = zeros(new long[] { 3, 1 }, ScalarType.Int64);
        Assert.IsType<TorchTypeException>(Translated(() => f.mm(l)));
    }

    [Fact]
    public void GuardRethrowsTypedAndPassesOtherExceptionsThrough()
    {
        using var x = zeros(2);
        Assert.Throws<TorchIndexException>(() => TorchErrors.Guard(() => x.select(0, 9)));
        var plain = new InvalidOperationException("mine");
        Assert.Same(plain, TorchErrors.Translate(plain));
        Assert.Equal(2, TorchErrors.Guard(() => 2));
    }

    [Fact]
    public void BadByteCountsAreRefusedBeforeAnyNativeCall()
    {
        Assert.Throws<ArgumentException>(() => TensorData.FromBytes(new byte[3], ScalarType.Float32, 1));
        Assert.Throws<ArgumentException>(() => TensorData.FromBytes(new byte[4], ScalarType.Float32, -1));
        using var ok = TensorData.FromSpan<float>([1f, 2f, 3f, 4f], 2, 2);
        Assert.Equal(new float[] { 1, 2, 3, 4 }, ok.ToArray<float>());
        Assert.Throws<ArgumentException>(() => ok.ToArray<long>());
        using var t = ok.t();
        Assert.Equal(new float[] { 1, 3, 2, 4 }, t.ToArray<float>()); // non-contiguous views read in logical order
    }
}
