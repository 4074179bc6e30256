// Boxed calls into the ATen dispatcher: one entry point reaches every operator libtorch has,
// with autograd and autocast applied exactly as in PyTorch eager. Operators are resolved once
// (ts_op_find) and the managed side caches the handle.
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include "status.h"
#include "tensor_handle.h"

namespace {

c10::IValue to_ivalue(const ts_arg& a, const c10::Argument& schema_arg) {
  switch (a.kind) {
    case TS_ARG_NONE:
      return c10::IValue();
    case TS_ARG_TENSOR:
      return c10::IValue(ts_deref(a.p));
    case TS_ARG_INT:
      return c10::IValue(a.i);
    case TS_ARG_DOUBLE:
      return c10::IValue(a.d);
    case TS_ARG_BOOL:
      return c10::IValue(a.i != 0);
    case TS_ARG_INT_LIST: {
      auto* v = static_cast<const int64_t*>(a.p);
      return c10::IValue(std::vector<int64_t>(v, v + a.n));
    }
    case TS_ARG_DOUBLE_LIST: {
      auto* v = static_cast<const double*>(a.p);
      return c10::IValue(std::vector<double>(v, v + a.n));
    }
    case TS_ARG_BOOL_LIST: {
      auto* v = static_cast<const int64_t*>(a.p);
      c10::List<bool> l;
      for (int64_t k = 0; k < a.n; k++) l.push_back(v[k] != 0);
      return c10::IValue(l);
    }
    case TS_ARG_TENSOR_LIST: {
      auto* v = static_cast<void* const*>(a.p);
      std::vector<at::Tensor> l;
      l.reserve(a.n);
      for (int64_t k = 0; k < a.n; k++) l.push_back(ts_deref(v[k]));
      return c10::IValue(l);
    }
    case TS_ARG_OPT_TENSOR_LIST: {
      auto* v = static_cast<void* const*>(a.p);
      c10::List<c10::optional<at::Tensor>> l;
      for (int64_t k = 0; k < a.n; k++)
        l.push_back(v[k] ? c10::optional<at::Tensor>(ts_deref(v[k])) : c10::nullopt);
      return c10::IValue(l);
    }
    case TS_ARG_STRING:
      return c10::IValue(std::string(static_cast<const char*>(a.p)));
    case TS_ARG_DEVICE:
      return c10::IValue(c10::Device(static_cast<c10::DeviceType>(a.i),
                                     static_cast<c10::DeviceIndex>(a.n)));
    case TS_ARG_DEFAULT: {
      if (!schema_arg.default_value())
        throw std::invalid_argument("argument '" + schema_arg.name() + "' has no default");
      return *schema_arg.default_value();
    }
    default:
      throw std::invalid_argument("unknown argument kind " + std::to_string(a.kind));
  }
}

void push_result(const c10::IValue& v, std::vector<ts_arg>& out) {
  ts_arg r{};
  if (v.isTensor()) {
    const at::Tensor& t = v.toTensor();
    if (t.defined()) {
      r.kind = TS_ARG_TENSOR;
      r.p = ts_wrap(t);
    } else {
      r.kind = TS_ARG_NONE;
    }
    out.push_back(r);
  } else if (v.isTensorList()) {
    for (const at::Tensor& t : v.toTensorVector()) push_result(c10::IValue(t), out);
  } else if (v.isTuple()) {
    for (const auto& e : v.toTupleRef().elements()) push_result(e, out);
  } else if (v.isList()) {
    for (const auto& e : v.toListRef()) push_result(e, out);
  } else if (v.isInt()) {
    r.kind = TS_ARG_INT;
    r.i = v.toInt();
    out.push_back(r);
  } else if (v.isDouble()) {
    r.kind = TS_ARG_DOUBLE;
    r.d = v.toDouble();
    out.push_back(r);
  } else if (v.isBool()) {
    r.kind = TS_ARG_BOOL;
    r.i = v.toBool();
    out.push_back(r);
  } else if (v.isNone()) {
    r.kind = TS_ARG_NONE;
    out.push_back(r);
  } else {
    throw std::invalid_argument("unsupported result type " + v.tagKind());
  }
}

void free_results(std::vector<ts_arg>& v) {
  for (auto& r : v)
    if (r.kind == TS_ARG_TENSOR) {
      delete static_cast<at::Tensor*>(r.p);
      g_live_tensors.fetch_sub(1, std::memory_order_relaxed);
    }
  v.clear();
}

}  // namespace

extern "C" {

ts_status ts_op_find(const char* name, const char* overload, ts_op* out) {
  TS_TRY
  ts_require(name != nullptr && out != nullptr, "null argument");
  auto h = c10::Dispatcher::singleton().findSchema({name, overload ? overload : ""});
  *out = h ? new c10::OperatorHandle(*h) : nullptr;
  TS_CATCH
}

ts_status ts_op_call(ts_op op, const ts_arg* args, int32_t nargs, ts_arg* results,
                     int32_t capacity, int32_t* nresults) {
  TS_TRY
  // Frees the handles already made if anything below throws.
  struct Results {
    std::vector<ts_arg> v;
    ~Results() { free_results(v); }
  } res;
  auto& out = res.v;
  ts_require(op != nullptr, "null operator handle");
  auto& h = *static_cast<c10::OperatorHandle*>(op);
  const auto& schema = h.schema();
  const auto& params = schema.arguments();
  if (nargs > static_cast<int32_t>(params.size()))
    throw std::invalid_argument(schema.name() + " takes " + std::to_string(params.size()) +
                                " arguments, got " + std::to_string(nargs));
  torch::jit::Stack stack;
  stack.reserve(params.size());
  for (size_t k = 0; k < params.size(); k++) {
    if (k < static_cast<size_t>(nargs)) {
      stack.push_back(to_ivalue(args[k], params[k]));
    } else {
      ts_arg def{};
      def.kind = TS_ARG_DEFAULT;
      stack.push_back(to_ivalue(def, params[k]));
    }
  }
  h.callBoxed(&stack);
  for (const auto& v : stack) push_result(v, out);
  if (static_cast<int32_t>(out.size()) > capacity) {
    size_t n = out.size();
    throw std::invalid_argument(schema.name() + " returned " + std::to_string(n) +
                                " values, more than the " + std::to_string(capacity) +
                                " the caller allowed");
  }
  for (size_t k = 0; k < out.size(); k++) results[k] = out[k];
  *nresults = static_cast<int32_t>(out.size());
  out.clear();
  TS_CATCH
}

}  // extern "C"
