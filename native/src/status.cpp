#include "status.h"

ts_error g_error_oom{TS_ERR_OUT_OF_MEMORY, "out of memory while reporting an error"};

extern "C" {

int32_t ts_status_kind(ts_status s) { return s ? s->kind : -1; }

const char* ts_status_message(ts_status s) { return s ? s->message.c_str() : ""; }

void ts_status_free(ts_status s) {
  if (s != &g_error_oom) delete s;
}

}  // extern "C"
