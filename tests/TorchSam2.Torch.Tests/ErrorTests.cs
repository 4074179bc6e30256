using TorchSam2.Torch;
using static TorchSam2.Torch.torch;

namespace TorchSam2.Torch.Tests;

// Bad calls surface as managed exceptions with libtorch's message; the process lives on.
public class ErrorTests
{
    [Fact]
    public void WrongShapeMatmulThrowsWithLibtorchMessage()
    {
        using var a = zeros([2, 3]);
        using var b = zeros([4, 5]);
        var ex = Assert.ThrowsAny<TorchException>(() => a.matmul(b));
        Assert.Contains("cannot be multiplied", ex.Message);
        // Still alive and working.
        using var c = a.matmul(zeros([3, 1]));
        Assert.Equal(new long[] { 2, 1 }, c.shape);
    }

    [Fact]
    public void BadDtypeThrows()
    {
        using var f = zeros([3]);
        using var l = zeros([3], ScalarType.Int64);
        var ex = Assert.ThrowsAny<TorchException>(() => f.mm(l.reshape(3, 1)));
        Assert.False(string.IsNullOrWhiteSpace(ex.Message));
        Assert.Throws<TorchTypeException>(() => f.ToArray<long>());
    }

    [Fact]
    public void OutOfRangeIndexThrowsIndexException()
    {
        using var x = zeros([2, 3]);
        var ex = Assert.Throws<TorchIndexException>(() => x.select(0, 5));
        Assert.Contains("out of range", ex.Message);
        Assert.Throws<TorchIndexException>(() => x.size(4));
    }

    [Fact]
    public void MissingOperatorAndBadArgumentsThrow()
    {
        Assert.Throws<TorchNotImplementedException>(() => TorchSam2.Torch.Native.Op.Get("aten::no_such_op"));
        using var x = zeros([2]);
        Assert.ThrowsAny<TorchException>(() => TorchSam2.Torch.Native.Op.Call("aten::add.Tensor", x, x, 1, 2, 3, 4));
        Assert.ThrowsAny<Exception>(() => Tensor.FromBytes(new byte[3], ScalarType.Float32, 1));
    }

    [Fact]
    public void DisposedTensorThrowsManagedException()
    {
        var x = zeros([2]);
        x.Dispose();
        Assert.Throws<ObjectDisposedException>(() => x.sum());
    }
}
