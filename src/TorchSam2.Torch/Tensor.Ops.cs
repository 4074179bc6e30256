using TorchSam2.Torch.Native;

namespace TorchSam2.Torch;

// Tensor methods, each a boxed call of the ATen operator with the same name and schema.
public partial class Tensor
{
    private static Tensor C(string op, params ReadOnlySpan<Arg> a) => Op.Call(op, a);

    // ---- arithmetic operators -------------------------------------------------------------

    public static Tensor operator +(Tensor a, Tensor b) => C("aten::add.Tensor", a, b, 1);
    public static Tensor operator +(Tensor a, double b) => C("aten::add.Scalar", a, b, 1);
    public static Tensor operator +(double a, Tensor b) => C("aten::add.Scalar", b, a, 1);
    public static Tensor operator -(Tensor a, Tensor b) => C("aten::sub.Tensor", a, b, 1);
    public static Tensor operator -(Tensor a, double b) => C("aten::sub.Scalar", a, b, 1);
    public static Tensor operator -(double a, Tensor b) => C("aten::rsub.Scalar", b, a, 1);
    public static Tensor operator *(Tensor a, Tensor b) => C("aten::mul.Tensor", a, b);
    public static Tensor operator *(Tensor a, double b) => C("aten::mul.Scalar", a, b);
    public static Tensor operator *(double a, Tensor b) => C("aten::mul.Scalar", b, a);
    public static Tensor operator /(Tensor a, Tensor b) => C("aten::div.Tensor", a, b);
    public static Tensor operator /(Tensor a, double b) => C("aten::div.Scalar", a, b);
    public static Tensor operator /(double a, Tensor b) => C("aten::mul.Scalar", C("aten::reciprocal", b), a);
    public static Tensor operator -(Tensor a) => C("aten::neg", a);
    public static Tensor operator %(Tensor a, double b) => C("aten::remainder.Scalar", a, b);
    public static Tensor operator &(Tensor a, Tensor b) => C("aten::logical_and", a, b);
    public static Tensor operator |(Tensor a, Tensor b) => C("aten::logical_or", a, b);
    public static Tensor operator !(Tensor a) => C("aten::logical_not", a);
    public static Tensor operator >(Tensor a, Tensor b) => C("aten::gt.Tensor", a, b);
    public static Tensor operator <(Tensor a, Tensor b) => C("aten::lt.Tensor", a, b);
    public static Tensor operator >=(Tensor a, Tensor b) => C("aten::ge.Tensor", a, b);
    public static Tensor operator <=(Tensor a, Tensor b) => C("aten::le.Tensor", a, b);
    public static Tensor operator >(Tensor a, double b) => C("aten::gt.Scalar", a, b);
    public static Tensor operator <(Tensor a, double b) => C("aten::lt.Scalar", a, b);
    public static Tensor operator >=(Tensor a, double b) => C("aten::ge.Scalar", a, b);
    public static Tensor operator <=(Tensor a, double b) => C("aten::le.Scalar", a, b);

    public Tensor add(Tensor other, double alpha = 1) => C("aten::add.Tensor", this, other, alpha);
    public Tensor add(double other) => C("aten::add.Scalar", this, other, 1);
    public Tensor sub(Tensor other) => C("aten::sub.Tensor", this, other, 1);
    public Tensor mul(Tensor other) => C("aten::mul.Tensor", this, other);
    public Tensor mul(double other) => C("aten::mul.Scalar", this, other);
    public Tensor div(Tensor other) => C("aten::div.Tensor", this, other);
    public Tensor div(double other) => C("aten::div.Scalar", this, other);
    public Tensor div(Tensor other, string rounding_mode) => C("aten::div.Tensor_mode", this, other, rounding_mode);
    public Tensor div(double other, string rounding_mode) => C("aten::div.Scalar_mode", this, other, rounding_mode);
    public Tensor floor_divide(double other) => C("aten::floor_divide.Scalar", this, other);
    public Tensor neg() => C("aten::neg", this);
    public Tensor pow(double exponent) => C("aten::pow.Tensor_Scalar", this, exponent);
    public Tensor pow(Tensor exponent) => C("aten::pow.Tensor_Tensor", this, exponent);
    public Tensor remainder(double other) => C("aten::remainder.Scalar", this, other);
    public Tensor lerp(Tensor end, double weight) => C("aten::lerp.Scalar", this, end, weight);

    public Tensor eq(Tensor other) => C("aten::eq.Tensor", this, other);
    public Tensor eq(double other) => C("aten::eq.Scalar", this, other);
    public Tensor ne(Tensor other) => C("aten::ne.Tensor", this, other);
    public Tensor ne(double other) => C("aten::ne.Scalar", this, other);
    public Tensor gt(double other) => C("aten::gt.Scalar", this, other);
    public Tensor ge(double other) => C("aten::ge.Scalar", this, other);
    public Tensor lt(double other) => C("aten::lt.Scalar", this, other);
    public Tensor le(double other) => C("aten::le.Scalar", this, other);
    public Tensor gt(Tensor other) => C("aten::gt.Tensor", this, other);
    public Tensor lt(Tensor other) => C("aten::lt.Tensor", this, other);
    public Tensor logical_and(Tensor other) => C("aten::logical_and", this, other);
    public Tensor logical_or(Tensor other) => C("aten::logical_or", this, other);
    public Tensor logical_not() => C("aten::logical_not", this);
    public Tensor logical_xor(Tensor other) => C("aten::logical_xor", this, other);
    public Tensor isnan() => C("aten::isnan", this);
    public Tensor isfinite() => C("aten::isfinite", this);

    // ---- elementwise math ------------------------------------------------------------------

    public Tensor abs() => C("aten::abs", this);
    public Tensor exp() => C("aten::exp", this);
    public Tensor log() => C("aten::log", this);
    public Tensor log1p() => C("aten::log1p", this);
    public Tensor sqrt() => C("aten::sqrt", this);
    public Tensor rsqrt() => C("aten::rsqrt", this);
    public Tensor sin() => C("aten::sin", this);
    public Tensor cos() => C("aten::cos", this);
    public Tensor tan() => C("aten::tan", this);
    public Tensor atan() => C("aten::atan", this);
    public Tensor floor() => C("aten::floor", this);
    public Tensor ceil() => C("aten::ceil", this);
    public Tensor round() => C("aten::round", this);
    public Tensor trunc() => C("aten::trunc", this);
    public Tensor sign() => C("aten::sign", this);
    public Tensor reciprocal() => C("aten::reciprocal", this);
    public Tensor erf() => C("aten::erf", this);
    public Tensor square() => C("aten::square", this);
    public Tensor sigmoid() => C("aten::sigmoid", this);
    public Tensor tanh() => C("aten::tanh", this);
    public Tensor relu() => C("aten::relu", this);
    public Tensor clamp(double? min = null, double? max = null) => C("aten::clamp", this, min, max);
    public Tensor clamp(Tensor? min, Tensor? max) => C("aten::clamp.Tensor", this, min, max);
    public Tensor clamp_min(double min) => C("aten::clamp_min", this, min);
    public Tensor clamp_max(double max) => C("aten::clamp_max", this, max);
    public Tensor softmax(long dim, ScalarType? dtype = null) => C("aten::softmax.int", this, dim, dtype);
    public Tensor log_softmax(long dim, ScalarType? dtype = null) => C("aten::log_softmax.int", this, dim, dtype);
    public Tensor masked_fill(Tensor mask, double value) => C("aten::masked_fill.Scalar", this, mask, value);
    public Tensor masked_fill(Tensor mask, Tensor value) => C("aten::masked_fill.Tensor", this, mask, value);

    // ---- linear algebra --------------------------------------------------------------------

    public Tensor matmul(Tensor other) => C("aten::matmul", this, other);
    public Tensor mm(Tensor other) => C("aten::mm", this, other);
    public Tensor bmm(Tensor other) => C("aten::bmm", this, other);

    // ---- reductions ------------------------------------------------------------------------

    public Tensor sum(ScalarType? dtype = null) => C("aten::sum", this, dtype);
    public Tensor sum(long dim, bool keepdim = false, ScalarType? dtype = null) => C("aten::sum.dim_IntList", this, new[] { dim }, keepdim, dtype);
    public Tensor sum(long[] dims, bool keepdim = false, ScalarType? dtype = null) => C("aten::sum.dim_IntList", this, dims, keepdim, dtype);
    public Tensor mean(ScalarType? dtype = null) => C("aten::mean", this, dtype);
    public Tensor mean(long dim, bool keepdim = false) => C("aten::mean.dim", this, new[] { dim }, keepdim, Arg.None);
    public Tensor mean(long[] dims, bool keepdim = false) => C("aten::mean.dim", this, dims, keepdim, Arg.None);
    public Tensor max() => C("aten::max", this);
    public Tensor min() => C("aten::min", this);
    /// <summary>(values, indices) along a dimension.</summary>
    public (Tensor values, Tensor indexes) max(long dim, bool keepdim = false) => Pair(Op.CallMany("aten::max.dim", this, dim, keepdim));
    public (Tensor values, Tensor indexes) min(long dim, bool keepdim = false) => Pair(Op.CallMany("aten::min.dim", this, dim, keepdim));
    public Tensor amax(long[] dims, bool keepdim = false) => C("aten::amax", this, dims, keepdim);
    public Tensor amin(long[] dims, bool keepdim = false) => C("aten::amin", this, dims, keepdim);
    public Tensor argmax(long? dim = null, bool keepdim = false) => C("aten::argmax", this, dim, keepdim);
    public Tensor argmin(long? dim = null, bool keepdim = false) => C("aten::argmin", this, dim, keepdim);
    public Tensor cumsum(long dim, ScalarType? dtype = null) => C("aten::cumsum", this, dim, dtype);
    public Tensor prod(long dim, bool keepdim = false) => C("aten::prod.dim_int", this, dim, keepdim, Arg.None);
    public Tensor any() => C("aten::any", this);
    public Tensor any(long dim, bool keepdim = false) => C("aten::any.dim", this, dim, keepdim);
    public Tensor all() => C("aten::all", this);
    public Tensor all(long dim, bool keepdim = false) => C("aten::all.dim", this, dim, keepdim);
    public Tensor var(long[] dims, bool unbiased = true, bool keepdim = false) => C("aten::var.dim", this, dims, unbiased, keepdim);
    public Tensor std(long[] dims, bool unbiased = true, bool keepdim = false) => C("aten::std.dim", this, dims, unbiased, keepdim);
    /// <summary>The p-norm over dims (all when null).</summary>
    public Tensor norm(double p = 2, long[]? dims = null, bool keepdim = false) => C("aten::linalg_vector_norm", this, p, dims, keepdim, Arg.None);
    public (Tensor values, Tensor indexes) topk(long k, long dim = -1, bool largest = true, bool sorted = true) => Pair(Op.CallMany("aten::topk", this, k, dim, largest, sorted));
    public (Tensor values, Tensor indexes) sort(long dim = -1, bool descending = false) => Pair(Op.CallMany("aten::sort", this, dim, descending));
    public Tensor argsort(long dim = -1, bool descending = false) => C("aten::argsort", this, dim, descending);
    public Tensor nonzero() => C("aten::nonzero", this);
    public Tensor count_nonzero() => C("aten::count_nonzero", this, Arg.None);

    private static (Tensor, Tensor) Pair(Tensor[] r) => (r[0], r[1]);

    // ---- shape -----------------------------------------------------------------------------

    public Tensor reshape(params long[] shape) => C("aten::reshape", this, shape);
    public Tensor view(params long[] shape) => C("aten::view", this, shape);
    public Tensor permute(params long[] dims) => C("aten::permute", this, dims);
    public Tensor transpose(long dim0, long dim1) => C("aten::transpose.int", this, dim0, dim1);
    public Tensor t() => C("aten::t", this);
    public Tensor flatten(long start_dim = 0, long end_dim = -1) => C("aten::flatten.using_ints", this, start_dim, end_dim);
    public Tensor unflatten(long dim, long[] sizes)
    {
        var s = shape.ToList();
        int d = (int)(dim < 0 ? dim + s.Count : dim);
        s.RemoveAt(d);
        s.InsertRange(d, sizes);
        return reshape(s.ToArray());
    }
    public Tensor squeeze() => C("aten::squeeze", this);
    public Tensor squeeze(long dim) => C("aten::squeeze.dim", this, dim);
    public Tensor unsqueeze(long dim) => C("aten::unsqueeze", this, dim);
    public Tensor expand(params long[] sizes) => C("aten::expand", this, sizes, false);
    public Tensor expand_as(Tensor other) => C("aten::expand_as", this, other);
    public Tensor view_as(Tensor other) => C("aten::view_as", this, other);
    public Tensor repeat(params long[] repeats) => C("aten::repeat", this, repeats);
    public Tensor repeat_interleave(long repeats, long? dim = null) => C("aten::repeat_interleave.self_int", this, repeats, dim, Arg.None);
    public Tensor contiguous() => C("aten::contiguous", this, 0);
    public Tensor narrow(long dim, long start, long length) => C("aten::narrow", this, dim, start, length);
    public Tensor select(long dim, long index) => C("aten::select.int", this, dim, index);
    public Tensor slice(long dim, long? start, long? end, long step = 1) => C("aten::slice.Tensor", this, dim, start, end, step);
    public Tensor[] chunk(long chunks, long dim = 0) => Op.CallMany("aten::chunk", this, chunks, dim);
    public Tensor[] split(long split_size, long dim = 0) => Op.CallMany("aten::split.Tensor", this, split_size, dim);
    public Tensor[] split(long[] split_sizes, long dim = 0) => Op.CallMany("aten::split_with_sizes", this, split_sizes, dim);
    public Tensor[] unbind(long dim = 0) => Op.CallMany("aten::unbind.int", this, dim);
    public Tensor flip(params long[] dims) => C("aten::flip", this, dims);
    public Tensor roll(long[] shifts, long[] dims) => C("aten::roll", this, shifts, dims);
    public Tensor movedim(long source, long destination) => C("aten::movedim.int", this, source, destination);
    public Tensor tril(long diagonal = 0) => C("aten::tril", this, diagonal);

    // ---- indexing ops ----------------------------------------------------------------------

    public Tensor gather(long dim, Tensor index) => C("aten::gather", this, dim, index, false);
    public Tensor index_select(long dim, Tensor index) => C("aten::index_select", this, dim, index);
    public Tensor scatter(long dim, Tensor index, Tensor src) => C("aten::scatter.src", this, dim, index, src);
    public Tensor scatter(long dim, Tensor index, double value) => C("aten::scatter.value", this, dim, index, value);
    public Tensor masked_select(Tensor mask) => C("aten::masked_select", this, mask);
    /// <summary>Advanced indexing with one optional index tensor per leading dimension.</summary>
    public Tensor index(params Tensor?[] indices) => C("aten::index.Tensor", this, Arg.OptionalTensors(indices));
    public Tensor index_put_(Tensor?[] indices, Tensor values, bool accumulate = false) => InPlace(C("aten::index_put_", this, Arg.OptionalTensors(indices), values, accumulate));

    // ---- conversion ------------------------------------------------------------------------

    public Tensor to(ScalarType dtype, bool copy = false) => C("aten::to.dtype", this, dtype, false, copy, Arg.None);
    public Tensor to(Device device, bool copy = false) => C("aten::to.device", this, device, dtype, false, copy, Arg.None);
    public Tensor to(Device device, ScalarType dtype, bool copy = false) => C("aten::to.device", this, device, dtype, false, copy, Arg.None);
    public Tensor cpu() => to(Device.CPU);
    public Tensor cuda(int index = 0) => to(new Device(DeviceType.CUDA, index));
    public Tensor @float() => to(ScalarType.Float32);
    public Tensor half() => to(ScalarType.Float16);
    public Tensor bfloat16() => to(ScalarType.BFloat16);
    public Tensor @long() => to(ScalarType.Int64);
    public Tensor @int() => to(ScalarType.Int32);
    public Tensor @bool() => to(ScalarType.Bool);
    public Tensor @byte() => to(ScalarType.Byte);
    public Tensor type_as(Tensor other) => to(other.dtype);
    public Tensor clone() => C("aten::clone", this, Arg.None);
    public Tensor detach() => C("aten::detach", this);
    /// <summary>A new handle to the same tensor (shares storage and autograd history).</summary>
    public Tensor alias()
    {
        Status.Check(NativeMethods.ts_tensor_clone_handle(Handle, out var h));
        return new Tensor(h);
    }

    // ---- in place (return this; the op's own result handle is released) ------------------

    private Tensor InPlace(Tensor result)
    {
        result.Dispose();
        return this;
    }

    public Tensor copy_(Tensor src) => InPlace(C("aten::copy_", this, src, false));
    public Tensor fill_(double value) => InPlace(C("aten::fill_.Scalar", this, value));
    public Tensor zero_() => InPlace(C("aten::zero_", this));
    public Tensor add_(Tensor other, double alpha = 1) => InPlace(C("aten::add_.Tensor", this, other, alpha));
    public Tensor add_(double other) => InPlace(C("aten::add_.Scalar", this, other, 1));
    public Tensor sub_(Tensor other, double alpha = 1) => InPlace(C("aten::sub_.Tensor", this, other, alpha));
    public Tensor mul_(Tensor other) => InPlace(C("aten::mul_.Tensor", this, other));
    public Tensor mul_(double other) => InPlace(C("aten::mul_.Scalar", this, other));
    public Tensor div_(Tensor other) => InPlace(C("aten::div_.Tensor", this, other));
    public Tensor div_(double other) => InPlace(C("aten::div_.Scalar", this, other));
    public Tensor addcmul_(Tensor t1, Tensor t2, double value = 1) => InPlace(C("aten::addcmul_", this, t1, t2, value));
    public Tensor addcdiv_(Tensor t1, Tensor t2, double value = 1) => InPlace(C("aten::addcdiv_", this, t1, t2, value));
    public Tensor lerp_(Tensor end, double weight) => InPlace(C("aten::lerp_.Scalar", this, end, weight));
    public Tensor clamp_(double? min = null, double? max = null) => InPlace(C("aten::clamp_", this, min, max));
    public Tensor masked_fill_(Tensor mask, double value) => InPlace(C("aten::masked_fill_.Scalar", this, mask, value));
    public Tensor uniform_(double from = 0, double to = 1) => InPlace(C("aten::uniform_", this, from, to, Arg.None));
    public Tensor normal_(double mean = 0, double std = 1) => InPlace(C("aten::normal_", this, mean, std, Arg.None));
    public Tensor sigmoid_() => InPlace(C("aten::sigmoid_", this));
    public Tensor relu_() => InPlace(C("aten::relu_", this));
}
