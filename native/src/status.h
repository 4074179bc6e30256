// Turns every C++ exception into a ts_status so nothing unwinds into managed code.
#pragma once
#include <string>
#include <new>
#include <c10/util/Exception.h>
#include "torchsam2_native.h"

struct ts_error {
  int32_t kind;
  std::string message;
};

// Returned when even the error object cannot be allocated; never freed.
extern ts_error g_error_oom;

inline ts_status ts_make_error(int32_t kind, std::string msg) {
  try {
    return new ts_error{kind, std::move(msg)};
  } catch (...) {
    return &g_error_oom;
  }
}

// The c10 subclasses are caught first so the managed side can pick a typed exception.
#define TS_TRY try {
#define TS_CATCH                                                                      \
  return nullptr;                                                                     \
  }                                                                                   \
  catch (const c10::IndexError& e) {                                                  \
    return ts_make_error(TS_ERR_INDEX, e.what_without_backtrace());                   \
  }                                                                                   \
  catch (const c10::ValueError& e) {                                                  \
    return ts_make_error(TS_ERR_VALUE, e.what_without_backtrace());                   \
  }                                                                                   \
  catch (const c10::TypeError& e) {                                                   \
    return ts_make_error(TS_ERR_TYPE, e.what_without_backtrace());                    \
  }                                                                                   \
  catch (const c10::NotImplementedError& e) {                                         \
    return ts_make_error(TS_ERR_NOT_IMPLEMENTED, e.what_without_backtrace());         \
  }                                                                                   \
  catch (const c10::Error& e) {                                                       \
    std::string m = e.what_without_backtrace();                                       \
    int32_t kind = m.find("out of memory") != std::string::npos ? TS_ERR_OUT_OF_MEMORY \
                                                                : TS_ERR_GENERIC;     \
    return ts_make_error(kind, m);                                                    \
  }                                                                                   \
  catch (const std::bad_alloc& e) {                                                   \
    return ts_make_error(TS_ERR_OUT_OF_MEMORY, e.what());                             \
  }                                                                                   \
  catch (const std::invalid_argument& e) {                                            \
    return ts_make_error(TS_ERR_ARGUMENT, e.what());                                  \
  }                                                                                   \
  catch (const std::exception& e) {                                                   \
    return ts_make_error(TS_ERR_GENERIC, e.what());                                   \
  }                                                                                   \
  catch (...) {                                                                       \
    return ts_make_error(TS_ERR_GENERIC, "unknown native exception");                \
  }

inline void ts_require(bool cond, const char* msg) {
  if (!cond) throw std::invalid_argument(msg);
}
