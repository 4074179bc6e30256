// C ABI over libtorch used by TorchSam2.Torch (P/Invoke).
// Every fallible function returns a ts_status: NULL on success, otherwise an error object that
// the caller reads (kind + message) and frees. No C++ exception ever crosses this boundary.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TS_API __attribute__((visibility("default")))

typedef struct ts_error* ts_status;
typedef void* ts_tensor;   // owns one at::Tensor (a reference-counted handle)
typedef void* ts_op;       // a resolved ATen operator (c10::OperatorHandle)

// Error kinds, mirrored by the managed exception types.
enum ts_error_kind {
  TS_ERR_GENERIC = 0, TS_ERR_INDEX = 1, TS_ERR_VALUE = 2, TS_ERR_TYPE = 3,
  TS_ERR_NOT_IMPLEMENTED = 4, TS_ERR_OUT_OF_MEMORY = 5, TS_ERR_ARGUMENT = 6
};

// Argument / result cell for boxed operator calls.
enum ts_arg_kind {
  TS_ARG_DEFAULT = -1,  // use the schema default
  TS_ARG_NONE = 0, TS_ARG_TENSOR = 1, TS_ARG_INT = 2, TS_ARG_DOUBLE = 3, TS_ARG_BOOL = 4,
  TS_ARG_INT_LIST = 5, TS_ARG_TENSOR_LIST = 6, TS_ARG_STRING = 7, TS_ARG_DOUBLE_LIST = 8,
  TS_ARG_OPT_TENSOR_LIST = 9, TS_ARG_DEVICE = 10, TS_ARG_BOOL_LIST = 11
};
typedef struct ts_arg {
  int32_t kind;
  int32_t reserved;
  int64_t i;      // INT, BOOL, DEVICE type
  double d;       // DOUBLE
  void* p;        // TENSOR (ts_tensor), lists (pointer to elements), STRING (char*)
  int64_t n;      // list length, DEVICE index
} ts_arg;

TS_API int32_t ts_status_kind(ts_status s);
TS_API const char* ts_status_message(ts_status s);
TS_API void ts_status_free(ts_status s);

// ---- context -------------------------------------------------------------------------------
TS_API ts_status ts_context_version(char* buf, int32_t len);
TS_API ts_status ts_context_manual_seed(uint64_t seed);
TS_API ts_status ts_context_set_num_threads(int32_t n);
TS_API int32_t ts_context_get_num_threads(void);
TS_API int32_t ts_context_cuda_is_available(void);
TS_API int32_t ts_context_cuda_device_count(void);
TS_API ts_status ts_context_cuda_synchronize(int32_t device);
TS_API ts_status ts_context_cuda_empty_cache(void);
TS_API int32_t ts_context_grad_enabled(void);
TS_API void ts_context_set_grad_enabled(int32_t enabled);
TS_API ts_status ts_context_inference_mode_enter(void** guard);
TS_API void ts_context_inference_mode_exit(void* guard);
TS_API int32_t ts_context_autocast_enabled(int32_t device_type);
TS_API ts_status ts_context_autocast_set(int32_t device_type, int32_t enabled, int32_t dtype);
TS_API int64_t ts_context_live_tensors(void);
/* Returns freed heap pages to the OS (glibc malloc_trim); 1 if memory was released, 0 if not, -1 where unsupported. */
TS_API int32_t ts_context_release_free_memory(void);

// ---- tensors -------------------------------------------------------------------------------
TS_API void ts_tensor_free(ts_tensor t);
TS_API ts_status ts_tensor_clone_handle(ts_tensor t, ts_tensor* out);
TS_API ts_status ts_tensor_from_data(const void* data, const int64_t* shape, int32_t ndim,
                                     int32_t dtype, ts_tensor* out);
TS_API ts_status ts_tensor_copy_out(ts_tensor t, void* dst, int64_t nbytes);
TS_API ts_status ts_tensor_info(ts_tensor t, int32_t* dtype, int32_t* device_type,
                                int32_t* device_index, int32_t* ndim, int32_t* requires_grad);
TS_API ts_status ts_tensor_shape(ts_tensor t, int64_t* shape, int32_t capacity);
TS_API ts_status ts_tensor_defined(ts_tensor t, int32_t* defined);
TS_API ts_status ts_tensor_item(ts_tensor t, double* value);
TS_API ts_status ts_tensor_set_requires_grad(ts_tensor t, int32_t requires_grad);
TS_API ts_status ts_tensor_grad(ts_tensor t, ts_tensor* out);  // *out NULL when no grad
TS_API ts_status ts_tensor_set_grad(ts_tensor t, ts_tensor grad);  // grad may be NULL
TS_API ts_status ts_tensor_backward(ts_tensor t, ts_tensor grad, int32_t retain_graph,
                                    int32_t create_graph);
TS_API ts_status ts_tensor_is_leaf(ts_tensor t, int32_t* leaf);
TS_API ts_status ts_tensor_is_contiguous(ts_tensor t, int32_t* contiguous);
TS_API ts_status ts_tensor_data_ptr(ts_tensor t, void** ptr);

// ---- operators (the ATen dispatcher, so autograd, autocast and every backend apply) -------
TS_API ts_status ts_op_find(const char* name, const char* overload, ts_op* out);  // *out NULL if absent
TS_API ts_status ts_op_call(ts_op op, const ts_arg* args, int32_t nargs, ts_arg* results,
                            int32_t capacity, int32_t* nresults);

#ifdef __cplusplus
}
#endif
