/* cpu_backend.c - construction and destruction shared by the CPU backends. */
#include <stdlib.h>

#include "cpu_internal.h"

mdc_backend *mdc_cpu_backend_alloc(const char *name, int threads) {
  mdc_backend *be = calloc(1, sizeof *be);
  mdc_cpu_ctx *ctx = calloc(1, sizeof *ctx);
  mdc_threadpool *pool = be && ctx ? mdc_threadpool_new(threads) : NULL;
  if (!pool) {
    free(ctx);
    free(be);
    return NULL;
  }
  ctx->pool = pool;
  ctx->threads = mdc_threadpool_size(pool);
  be->name = name;
  be->ctx = ctx;
  be->free = mdc_cpu_backend_free;
  return be;
}

void mdc_cpu_backend_free(mdc_backend *be) {
  if (!be) return;
  mdc_cpu_ctx *ctx = be->ctx;
  if (ctx) mdc_threadpool_free(ctx->pool);
  free(ctx);
  free(be);
}
