#include <cstring>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <c10/core/InferenceMode.h>
#include <c10/core/GradMode.h>
#include <torch/version.h>
#include "status.h"
#include "tensor_handle.h"

std::atomic<int64_t> g_live_tensors{0};

extern "C" {

ts_status ts_context_version(char* buf, int32_t len) {
  TS_TRY
  ts_require(buf != nullptr && len > 0, "empty buffer");
  std::strncpy(buf, TORCH_VERSION, len - 1);
  buf[len - 1] = 0;
  TS_CATCH
}

ts_status ts_context_manual_seed(uint64_t seed) {
  TS_TRY
  at::manual_seed(seed);
  TS_CATCH
}

ts_status ts_context_set_num_threads(int32_t n) {
  TS_TRY
  ts_require(n > 0, "thread count must be positive");
  at::set_num_threads(n);
  TS_CATCH
}

int32_t ts_context_get_num_threads(void) { return at::get_num_threads(); }

int32_t ts_context_cuda_is_available(void) {
  try { return at::hasCUDA() ? 1 : 0; } catch (...) { return 0; }
}

int32_t ts_context_cuda_device_count(void) {
  try {
    return at::hasCUDA() ? static_cast<int32_t>(at::detail::getCUDAHooks().getNumGPUs()) : 0;
  } catch (...) { return 0; }
}

ts_status ts_context_cuda_synchronize(int32_t device) {
  TS_TRY
  if (at::hasCUDA()) at::detail::getCUDAHooks().deviceSynchronize(device);
  TS_CATCH
}

ts_status ts_context_cuda_empty_cache(void) {
  TS_TRY
  // The caching allocator lives in c10_cuda, which a CPU build does not have; nothing to do there.
  TS_CATCH
}

int32_t ts_context_grad_enabled(void) { return c10::GradMode::is_enabled() ? 1 : 0; }

void ts_context_set_grad_enabled(int32_t enabled) { c10::GradMode::set_enabled(enabled != 0); }

ts_status ts_context_inference_mode_enter(void** guard) {
  TS_TRY
  ts_require(guard != nullptr, "null guard pointer");
  *guard = new c10::InferenceMode(true);
  TS_CATCH
}

void ts_context_inference_mode_exit(void* guard) { delete static_cast<c10::InferenceMode*>(guard); }

int32_t ts_context_autocast_enabled(int32_t device_type) {
  return device_type == 1 ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
}

ts_status ts_context_autocast_set(int32_t device_type, int32_t enabled, int32_t dtype) {
  TS_TRY
  auto st = static_cast<at::ScalarType>(dtype);
  if (device_type == 1) {
    at::autocast::set_enabled(enabled != 0);
    at::autocast::set_autocast_gpu_dtype(st);
  } else {
    at::autocast::set_cpu_enabled(enabled != 0);
    at::autocast::set_autocast_cpu_dtype(st);
  }
  if (!enabled) at::autocast::clear_cache();
  TS_CATCH
}

int64_t ts_context_live_tensors(void) { return g_live_tensors.load(std::memory_order_relaxed); }

// glibc keeps freed chunks of its heaps mapped; after a video the freed temporaries of the last frames sit
// behind the small long-lived tensors of the tracking state and cannot be trimmed from the top.
// malloc_trim(0) hands every whole free page back (madvise).
int32_t ts_context_release_free_memory(void) {
#if defined(__GLIBC__)
  return malloc_trim(0);
#else
  return -1;
#endif
}

}  // extern "C"
