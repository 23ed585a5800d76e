/* context.h - the model and context behind the public handles. */
#ifndef MDC_CONTEXT_H
#define MDC_CONTEXT_H

#include "backend.h"
#include "maskdcpt.h"
#include "model.h"

struct maskdcpt_model {
  mdc_net net;
  int num_metadata;
  mdc_metadata_entry *metadata;
};

struct maskdcpt_context {
  const maskdcpt_model *model;
  maskdcpt_device device;
  int threads;
  int tile_size;
  size_t memory_budget;
  int scalar;
  maskdcpt_progress_fn progress;
  void *progress_user;

  mdc_backend *backend; /* created on first use, rebuilt when settings change */
  int backend_threads, backend_scalar;
  void *work; /* working memory, grown on demand */
  size_t work_size;
  mdc_net_cond cond;
  char device_note[256];
};

#define MDC_DEFAULT_MEMORY_BUDGET ((size_t)1 << 30)
#define MDC_MAX_TILE 2048
#define MDC_CLASS_CROP 256

/* Makes sure ctx->backend matches the settings. */
maskdcpt_status mdc_context_backend(maskdcpt_context *ctx, maskdcpt_error *err);
/* Makes sure ctx->work holds at least `bytes`. */
maskdcpt_status mdc_context_work(maskdcpt_context *ctx, size_t bytes, maskdcpt_error *err);

#endif
