#pragma once
#include <atomic>
#include <ATen/ATen.h>

// Live-handle counter: the leak tests read it to prove long runs release native memory.
extern std::atomic<int64_t> g_live_tensors;

inline at::Tensor& ts_deref(void* t) {
  if (t == nullptr) throw std::invalid_argument("null tensor handle");
  return *static_cast<at::Tensor*>(t);
}

inline void* ts_wrap(at::Tensor t) {
  auto* h = new at::Tensor(std::move(t));
  g_live_tensors.fetch_add(1, std::memory_order_relaxed);
  return h;
}
