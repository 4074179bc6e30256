#include <cstring>
#include <torch/csrc/autograd/autograd.h>
#include "status.h"
#include "tensor_handle.h"

extern "C" {

void ts_tensor_free(ts_tensor t) {
  if (!t) return;
  delete static_cast<at::Tensor*>(t);
  g_live_tensors.fetch_sub(1, std::memory_order_relaxed);
}

ts_status ts_tensor_clone_handle(ts_tensor t, ts_tensor* out) {
  TS_TRY
  *out = ts_wrap(ts_deref(t));
  TS_CATCH
}

ts_status ts_tensor_from_data(const void* data, const int64_t* shape, int32_t ndim,
                              int32_t dtype, ts_tensor* out) {
  TS_TRY
  ts_require(out != nullptr, "null output pointer");
  ts_require(ndim >= 0 && (ndim == 0 || shape != nullptr), "bad shape");
  for (int i = 0; i < ndim; i++) ts_require(shape[i] >= 0, "negative dimension");
  auto st = static_cast<at::ScalarType>(dtype);
  at::Tensor t = at::empty(at::IntArrayRef(shape, ndim), at::TensorOptions().dtype(st));
  size_t nbytes = t.numel() * t.element_size();
  if (nbytes > 0) {
    ts_require(data != nullptr, "null data pointer");
    std::memcpy(t.data_ptr(), data, nbytes);
  }
  *out = ts_wrap(std::move(t));
  TS_CATCH
}

ts_status ts_tensor_copy_out(ts_tensor t, void* dst, int64_t nbytes) {
  TS_TRY
  at::Tensor src = ts_deref(t);
  ts_require(src.defined(), "undefined tensor");
  if (src.device().type() != at::kCPU) src = src.to(at::kCPU);
  src = src.contiguous();
  int64_t have = src.numel() * static_cast<int64_t>(src.element_size());
  if (have != nbytes)
    throw std::invalid_argument("buffer holds " + std::to_string(nbytes) + " bytes, tensor " +
                                std::to_string(have));
  if (have > 0) std::memcpy(dst, src.data_ptr(), have);
  TS_CATCH
}

ts_status ts_tensor_info(ts_tensor t, int32_t* dtype, int32_t* device_type, int32_t* device_index,
                         int32_t* ndim, int32_t* requires_grad) {
  TS_TRY
  const at::Tensor& x = ts_deref(t);
  ts_require(x.defined(), "undefined tensor");
  *dtype = static_cast<int32_t>(x.scalar_type());
  *device_type = static_cast<int32_t>(x.device().type());
  *device_index = x.device().index();
  *ndim = static_cast<int32_t>(x.dim());
  *requires_grad = x.requires_grad() ? 1 : 0;
  TS_CATCH
}

ts_status ts_tensor_shape(ts_tensor t, int64_t* shape, int32_t capacity) {
  TS_TRY
  const at::Tensor& x = ts_deref(t);
  ts_require(x.dim() <= capacity, "shape buffer too small");
  for (int64_t i = 0; i < x.dim(); i++) shape[i] = x.size(i);
  TS_CATCH
}

ts_status ts_tensor_defined(ts_tensor t, int32_t* defined) {
  TS_TRY
  *defined = ts_deref(t).defined() ? 1 : 0;
  TS_CATCH
}

ts_status ts_tensor_item(ts_tensor t, double* value) {
  TS_TRY
  *value = ts_deref(t).item().toDouble();
  TS_CATCH
}

ts_status ts_tensor_set_requires_grad(ts_tensor t, int32_t requires_grad) {
  TS_TRY
  ts_deref(t).set_requires_grad(requires_grad != 0);
  TS_CATCH
}

ts_status ts_tensor_grad(ts_tensor t, ts_tensor* out) {
  TS_TRY
  const at::Tensor& g = ts_deref(t).grad();
  *out = g.defined() ? ts_wrap(g) : nullptr;
  TS_CATCH
}

ts_status ts_tensor_set_grad(ts_tensor t, ts_tensor grad) {
  TS_TRY
  ts_deref(t).mutable_grad() = grad ? ts_deref(grad) : at::Tensor();
  TS_CATCH
}

ts_status ts_tensor_backward(ts_tensor t, ts_tensor grad, int32_t retain_graph,
                             int32_t create_graph) {
  TS_TRY
  const at::Tensor& x = ts_deref(t);
  torch::autograd::variable_list grads;
  if (grad) grads.push_back(ts_deref(grad));
  c10::optional<bool> retain;
  if (retain_graph) retain = true;
  torch::autograd::backward({x}, grads, retain, create_graph != 0);
  TS_CATCH
}

ts_status ts_tensor_is_leaf(ts_tensor t, int32_t* leaf) {
  TS_TRY
  *leaf = ts_deref(t).is_leaf() ? 1 : 0;
  TS_CATCH
}

ts_status ts_tensor_is_contiguous(ts_tensor t, int32_t* contiguous) {
  TS_TRY
  *contiguous = ts_deref(t).is_contiguous() ? 1 : 0;
  TS_CATCH
}

ts_status ts_tensor_data_ptr(ts_tensor t, void** ptr) {
  TS_TRY
  const at::Tensor& x = ts_deref(t);
  ts_require(x.device().is_cpu(), "data_ptr needs a CPU tensor");
  ts_require(x.is_contiguous(), "data_ptr needs a contiguous tensor");
  *ptr = x.data_ptr();
  TS_CATCH
}

}  // extern "C"
