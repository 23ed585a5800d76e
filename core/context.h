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
  unsigned char auto_focus[MDC_MAX_CLASSES]; /* from the weights file; see normalise() */
  unsigned char passes[MDC_MAX_CLASSES];     /* from the weights file; see count_passes() */
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

  mdc_backend *backend; /* in use: ctx->cuda, or a CPU backend made on first use */
  mdc_backend *cuda;    /* the CUDA backend, when the device setting allows and it started */
  int cuda_failed_over; /* AUTO ran out of GPU memory: the CPU from now on */
  int backend_threads, backend_scalar;
  void *work; /* the network's working memory (backend memory), grown on demand */
  size_t work_size;
  mdc_backend *work_owner; /* the backend `work` came from */
  void *host_work; /* tile input and output (host memory) */
  size_t host_work_size;
  size_t device_budget; /* a device backend's budget after running out of memory; 0: none */
  mdc_net_cond cond;          /* host copy: the class mix */
  mdc_net device_net;         /* the parameters in device memory (device backend only) */
  mdc_net_cond device_cond;   /* cond.mixed in device memory */
  char device_note[512];
};

#define MDC_DEFAULT_MEMORY_BUDGET ((size_t)1 << 30)
#define MDC_MAX_TILE 2048        /* CPU: larger tiles gain nothing */
#define MDC_MAX_DEVICE_TILE 8192 /* GPU: fewer context margins */
#define MDC_CLASS_CROP 256

/* Makes sure ctx->backend matches the settings. */
maskdcpt_status mdc_context_backend(maskdcpt_context *ctx, maskdcpt_error *err);
/* Makes sure ctx->work (backend memory) holds at least `bytes`. */
maskdcpt_status mdc_context_work(maskdcpt_context *ctx, size_t bytes, maskdcpt_error *err);
/* Makes sure ctx->host_work holds at least `bytes`. */
maskdcpt_status mdc_context_host_work(maskdcpt_context *ctx, size_t bytes, maskdcpt_error *err);
/* The network as ctx->backend addresses it (uploaded on first use). */
maskdcpt_status mdc_context_net(maskdcpt_context *ctx, const mdc_net **net,
                                maskdcpt_error *err);
/* Conditions on class weights `probs` (summing to 1); *cond is what
 * mdc_net_forward takes on ctx->backend. */
maskdcpt_status mdc_context_cond(maskdcpt_context *ctx, const float *probs,
                                 const mdc_net_cond **cond, maskdcpt_error *err);
/* AUTO device only: leaves a GPU that ran out of memory for the CPU. */
int mdc_context_fail_over(maskdcpt_context *ctx, const char *why);

#endif
