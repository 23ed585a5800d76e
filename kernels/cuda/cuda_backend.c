/* cuda_backend.c - the CUDA backend object: device checks, the stream and
 * library handles, failure recording, the device workspace and the memory
 * entries of backend.h.  The layer entries live in the other files of
 * this directory; their table fillers are called from here.
 *
 * Everything runs in order on one non-blocking stream.  A failure (a CUDA,
 * cuBLAS or cuDNN error) is recorded once, with the entry and shape that
 * hit it; later entries do nothing and `sync` reports it. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

#define MIB ((size_t)1 << 20)

/* ------------------------------------------------------------ failures */

void mdc_cuda_fail(mdc_backend *be, const char *fmt, ...) {
  mdc_cuda_ctx *ctx = mdc_cuda_ctx_of(be);
  if (ctx->failed) return; /* the first failure is the one worth reading */
  ctx->failed = 1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx->error, sizeof ctx->error, fmt, ap);
  va_end(ap);
}

int mdc_cuda_check(mdc_backend *be, cudaError_t e, const char *what) {
  if (e == cudaSuccess) return 0;
  (void)cudaGetLastError(); /* clear a non-sticky error so it is not reported twice */
  mdc_cuda_fail(be, "%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
  return -1;
}

int mdc_cuda_check_launch(mdc_backend *be, const char *what) {
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) return 0;
  mdc_cuda_fail(be, "%s: kernel launch failed: %s (%s)", what, cudaGetErrorString(e),
                cudaGetErrorName(e));
  return -1;
}

int mdc_cublas_check(mdc_backend *be, cublasStatus_t s, const char *what) {
  if (s == CUBLAS_STATUS_SUCCESS) return 0;
  mdc_cuda_fail(be, "%s: cuBLAS: %s (%s)", what, cublasGetStatusName(s), cublasGetStatusString(s));
  return -1;
}

int mdc_cudnn_check(mdc_backend *be, cudnnStatus_t s, const char *what) {
  if (s == CUDNN_STATUS_SUCCESS) return 0;
  char detail[256] = "";
  cudnnGetLastErrorString(detail, sizeof detail); /* cuDNN 9: the reason, when it kept one */
  if (detail[0])
    mdc_cuda_fail(be, "%s: cuDNN: %s (%s)", what, cudnnGetErrorString(s), detail);
  else
    mdc_cuda_fail(be, "%s: cuDNN: %s", what, cudnnGetErrorString(s));
  return -1;
}

/* ----------------------------------------------------------- workspace */

/* The entries may be called from a thread whose current device is not
 * ours (a new thread starts on device 0). */
static int use_device(mdc_backend *be, const char *what) {
  return mdc_cuda_check(be, cudaSetDevice(mdc_cuda_ctx_of(be)->device), what);
}

/* cudaMalloc's answer to a size it cannot give: out of memory, or (for
 * sizes past anything the device could map) an invalid value; size is
 * cudaMalloc's only argument, so neither says the backend is broken. */
static int is_no_memory(cudaError_t e) {
  return e == cudaErrorMemoryAllocation || e == cudaErrorInvalidValue;
}

/* cudaMalloc on our device.  Out of memory returns NULL without
 * recording a failure (callers retry smaller); any other error is
 * recorded as "<what> of <bytes> bytes: ...". */
static void *device_malloc(mdc_backend *be, size_t bytes, const char *what) {
  char msg[96];
  snprintf(msg, sizeof msg, "%s of %zu bytes: cudaSetDevice", what, bytes);
  if (use_device(be, msg)) return NULL;
  void *p = NULL;
  cudaError_t e = cudaMalloc(&p, bytes);
  if (is_no_memory(e)) {
    (void)cudaGetLastError();
    return NULL;
  }
  snprintf(msg, sizeof msg, "%s of %zu bytes: cudaMalloc", what, bytes);
  return mdc_cuda_check(be, e, msg) ? NULL : p;
}

void *mdc_cuda_workspace_try(mdc_backend *be, size_t bytes) {
  mdc_cuda_ctx *ctx = mdc_cuda_ctx_of(be);
  if (ctx->failed) return NULL;
  if (bytes <= ctx->workspace_size && ctx->workspace) return ctx->workspace;
  if (bytes > SIZE_MAX - MIB) return NULL;
  size_t rounded = (bytes + MIB - 1) / MIB * MIB;
  if (rounded == 0) rounded = MIB;
  /* Queued work may still read the old workspace: wait before freeing it. */
  if (mdc_cuda_check(be, cudaStreamSynchronize(ctx->stream), "workspace: waiting for the stream"))
    return NULL;
  if (ctx->workspace) {
    cudaFree(ctx->workspace);
    ctx->workspace = NULL;
    ctx->workspace_size = 0;
  }
  void *p = device_malloc(be, rounded, "workspace");
  if (!p) return NULL;
  ctx->workspace = p;
  ctx->workspace_size = rounded;
  return p;
}

void *mdc_cuda_workspace(mdc_backend *be, size_t bytes) {
  void *p = mdc_cuda_workspace_try(be, bytes);
  if (!p) mdc_cuda_fail(be, "workspace: out of device memory for %zu bytes", bytes);
  return p;
}

/* ------------------------------------------------------ memory entries */

static void *cuda_mem_alloc(mdc_backend *be, size_t bytes) {
  mdc_cuda_ctx *ctx = mdc_cuda_ctx_of(be);
  if (ctx->failed) return NULL;
  if (bytes == 0) bytes = 1;
  if (bytes > SIZE_MAX - 255) return NULL;
  size_t rounded = (bytes + 255) & ~(size_t)255;
  void *p = device_malloc(be, rounded, "mem_alloc"); /* NULL: callers retry smaller tiles */
  if (!p) return NULL;
  char what[96];
  snprintf(what, sizeof what, "mem_alloc of %zu bytes: cudaMemsetAsync", bytes);
  if (mdc_cuda_check(be, cudaMemsetAsync(p, 0, rounded, ctx->stream), what)) {
    cudaFree(p);
    return NULL;
  }
  return p;
}

static void cuda_mem_free(mdc_backend *be, void *p) {
  mdc_cuda_ctx *ctx = mdc_cuda_ctx_of(be);
  if (!p) return;
  /* Queued kernels may still use p; errors here belong to earlier work and
   * are reported by sync, so they are only recorded. */
  cudaError_t e = cudaStreamSynchronize(ctx->stream);
  if (e != cudaSuccess) mdc_cuda_check(be, e, "mem_free: waiting for the stream");
  e = cudaFree(p);
  if (e != cudaSuccess) {
    char what[64];
    snprintf(what, sizeof what, "mem_free(%p): cudaFree", p);
    mdc_cuda_check(be, e, what);
  }
}

static void cuda_mem_upload(mdc_backend *be, void *dst, const void *host, size_t bytes) {
  mdc_cuda_ctx *ctx = mdc_cuda_ctx_of(be);
  if (ctx->failed || bytes == 0) return;
  /* From pageable memory the copy is staged before the call returns, so
   * the caller may reuse `host` at once. */
  cudaError_t e = cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, ctx->stream);
  if (e != cudaSuccess) {
    char what[96];
    snprintf(what, sizeof what, "mem_upload of %zu bytes to %p", bytes, dst);
    mdc_cuda_check(be, e, what);
  }
}

static void cuda_mem_download(mdc_backend *be, void *host, const void *src, size_t bytes) {
  mdc_cuda_ctx *ctx = mdc_cuda_ctx_of(be);
  if (ctx->failed || bytes == 0) return;
  char what[96];
  snprintf(what, sizeof what, "mem_download of %zu bytes from %p", bytes, src);
  if (mdc_cuda_check(be, cudaMemcpyAsync(host, src, bytes, cudaMemcpyDeviceToHost, ctx->stream),
                     what))
    return;
  /* Waiting also surfaces the failures of earlier kernels. */
  mdc_cuda_check(be, cudaStreamSynchronize(ctx->stream), what);
}

static int ranges_overlap(const void *a, const void *b, size_t bytes) {
  uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
  return x < y + bytes && y < x + bytes;
}

static void cuda_mem_copy(mdc_backend *be, void *dst, const void *src, size_t bytes) {
  mdc_cuda_ctx *ctx = mdc_cuda_ctx_of(be);
  if (ctx->failed || bytes == 0 || dst == src) return;
  char what[96];
  snprintf(what, sizeof what, "mem_copy of %zu bytes from %p to %p", bytes, src, dst);
  if (ranges_overlap(dst, src, bytes)) {
    /* cudaMemcpy does not allow overlap; the CPU helper is a memmove. */
    void *tmp = mdc_cuda_workspace(be, bytes);
    if (!tmp ||
        mdc_cuda_check(be, cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDeviceToDevice, ctx->stream),
                       what))
      return;
    src = tmp;
  }
  mdc_cuda_check(be, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ctx->stream), what);
}

static void cuda_mem_zero(mdc_backend *be, void *p, size_t bytes) {
  mdc_cuda_ctx *ctx = mdc_cuda_ctx_of(be);
  if (ctx->failed || bytes == 0) return;
  cudaError_t e = cudaMemsetAsync(p, 0, bytes, ctx->stream);
  if (e != cudaSuccess) {
    char what[96];
    snprintf(what, sizeof what, "mem_zero of %zu bytes at %p", bytes, p);
    mdc_cuda_check(be, e, what);
  }
}

static int cuda_mem_info(mdc_backend *be, size_t *free_bytes, size_t *total_bytes) {
  size_t f = 0, t = 0;
  if (mdc_cuda_ctx_of(be)->failed || cudaSetDevice(mdc_cuda_ctx_of(be)->device) != cudaSuccess ||
      cudaMemGetInfo(&f, &t) != cudaSuccess) {
    (void)cudaGetLastError(); /* a query that fails is no failure of the backend */
    return -1;
  }
  *free_bytes = f, *total_bytes = t;
  return 0;
}

static int cuda_sync(mdc_backend *be, char *msg, size_t msg_size) {
  mdc_cuda_ctx *ctx = mdc_cuda_ctx_of(be);
  cudaError_t e = cudaStreamSynchronize(ctx->stream);
  if (e != cudaSuccess) mdc_cuda_check(be, e, "sync: a queued kernel or transfer failed");
  if (!ctx->failed) return 0;
  if (msg && msg_size) snprintf(msg, msg_size, "%s", ctx->error);
  return -1;
}

/* ------------------------------------------------------- make and free */

/* Releases whatever was made; works on a half-built context. */
static void destroy(mdc_backend *be) {
  mdc_cuda_ctx *ctx = mdc_cuda_ctx_of(be);
  if (ctx) {
    cudaSetDevice(ctx->device);
    if (ctx->stream) cudaStreamSynchronize(ctx->stream);
    mdc_cuda_conv_release(be);
    if (ctx->cudnn) cudnnDestroy(ctx->cudnn);
    if (ctx->cublas) cublasDestroy(ctx->cublas);
    if (ctx->workspace) cudaFree(ctx->workspace);
    if (ctx->reduce) cudaFree(ctx->reduce);
    if (ctx->ones) cudaFree(ctx->ones);
    if (ctx->reduce_host) cudaFreeHost(ctx->reduce_host);
    if (ctx->stream) cudaStreamDestroy(ctx->stream);
    (void)cudaGetLastError();
    free(ctx);
  }
  free(be);
}

static void cuda_free(mdc_backend *be) { destroy(be); }

static void set_msg(char *msg, size_t msg_size, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void set_msg(char *msg, size_t msg_size, const char *fmt, ...) {
  if (!msg || !msg_size) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, msg_size, fmt, ap);
  va_end(ap);
}

/* Fills the device's properties; 0, or -1 with the reason in msg. */
static int check_device(int device, struct cudaDeviceProp *prop, char *msg, size_t msg_size) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    set_msg(msg, msg_size, "cannot use CUDA: %s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
    (void)cudaGetLastError();
    return -1;
  }
  if (count == 0) {
    set_msg(msg, msg_size, "no CUDA device found");
    return -1;
  }
  if (device < 0 || device >= count) {
    set_msg(msg, msg_size, "CUDA device %d does not exist (this machine has %d, numbered from 0)",
            device, count);
    return -1;
  }
  e = cudaGetDeviceProperties(prop, device);
  if (e != cudaSuccess) {
    set_msg(msg, msg_size, "cannot query CUDA device %d: %s", device, cudaGetErrorString(e));
    return -1;
  }
  if (prop->major * 10 + prop->minor < 75) {
    set_msg(msg, msg_size, "%.100s is compute capability %d.%d; the CUDA backend needs 7.5 or newer",
            prop->name, prop->major, prop->minor);
    return -1;
  }
  return 0;
}

/* A device vector of MDC_CUDA_ONES 1.0f (1.0f is no byte pattern for a memset). */
static cudaError_t make_ones(mdc_cuda_ctx *ctx) {
  float *host = malloc(MDC_CUDA_ONES * sizeof(float));
  if (!host) return cudaErrorMemoryAllocation;
  for (size_t i = 0; i < MDC_CUDA_ONES; i++) host[i] = 1.0f;
  cudaError_t e = cudaMalloc((void **)&ctx->ones, MDC_CUDA_ONES * sizeof(float));
  if (e == cudaSuccess)
    e = cudaMemcpyAsync(ctx->ones, host, MDC_CUDA_ONES * sizeof(float), cudaMemcpyHostToDevice,
                        ctx->stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(ctx->stream);
  free(host);
  return e;
}

/* Stream, handles and the small buffers; 0 or -1 with the reason in msg. */
static int make_resources(mdc_cuda_ctx *ctx, char *msg, size_t msg_size) {
  const char *step = "cudaSetDevice";
  cudaError_t e = cudaSetDevice(ctx->device);
  if (e == cudaSuccess) {
    step = "cudaStreamCreateWithFlags";
    e = cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking);
  }
  if (e == cudaSuccess) {
    step = "cudaMalloc of the reduction slots";
    e = cudaMalloc((void **)&ctx->reduce, MDC_CUDA_REDUCE_SLOTS * sizeof(double));
  }
  if (e == cudaSuccess) {
    step = "cudaMallocHost of the reduction slots";
    e = cudaMallocHost((void **)&ctx->reduce_host, MDC_CUDA_REDUCE_SLOTS * sizeof(double));
  }
  if (e == cudaSuccess) {
    step = "the vector of ones";
    e = make_ones(ctx);
  }
  if (e != cudaSuccess) {
    set_msg(msg, msg_size, "CUDA device %d: %s: %s (%s)", ctx->device, step, cudaGetErrorString(e),
            cudaGetErrorName(e));
    (void)cudaGetLastError();
    return -1;
  }

  cublasStatus_t bs = cublasCreate(&ctx->cublas);
  if (bs == CUBLAS_STATUS_SUCCESS) bs = cublasSetStream(ctx->cublas, ctx->stream);
  /* TF32 is asked for per call (gemm_compute), never through the handle. */
  if (bs == CUBLAS_STATUS_SUCCESS) bs = cublasSetMathMode(ctx->cublas, CUBLAS_DEFAULT_MATH);
  if (bs != CUBLAS_STATUS_SUCCESS) {
    set_msg(msg, msg_size, "CUDA device %d: cuBLAS handle: %s (%s)", ctx->device,
            cublasGetStatusName(bs), cublasGetStatusString(bs));
    return -1;
  }

  cudnnStatus_t ds = cudnnCreate(&ctx->cudnn);
  if (ds == CUDNN_STATUS_SUCCESS) ds = cudnnSetStream(ctx->cudnn, ctx->stream);
  if (ds != CUDNN_STATUS_SUCCESS) {
    char detail[256] = "";
    cudnnGetLastErrorString(detail, sizeof detail);
    set_msg(msg, msg_size, "CUDA device %d: cuDNN handle: %s%s%s", ctx->device,
            cudnnGetErrorString(ds), detail[0] ? ": " : "", detail);
    return -1;
  }
  return 0;
}

static void fill_table(mdc_backend *be) {
  be->free = cuda_free;
  be->mem_alloc = cuda_mem_alloc;
  be->mem_free = cuda_mem_free;
  be->mem_upload = cuda_mem_upload;
  be->mem_download = cuda_mem_download;
  be->mem_copy = cuda_mem_copy;
  be->mem_zero = cuda_mem_zero;
  be->mem_info = cuda_mem_info;
  be->sync = cuda_sync;
  mdc_cuda_conv_init(be);
  mdc_cuda_nafblock_init(be);
  mdc_cuda_elementwise_init(be);
  mdc_cuda_reduce_init(be);
  mdc_cuda_dwconv_init(be);
  if (mdc_cuda_ctx_of(be)->half) mdc_cuda_half_init(be);
  /* MASKDCPT_CUDA_UNFUSED set and not "0": the NAFBlock as the plain
   * sequence of entries, so that a benchmark can time what the fusions
   * save in the same run */
  const char *unfused = getenv("MASKDCPT_CUDA_UNFUSED");
  if (unfused && *unfused && strcmp(unfused, "0") != 0) {
    mdc_cuda_ctx_of(be)->unfused = 1;
    be->dwconv3x3_gate = NULL;
    be->add_scaled_layernorm = NULL;
  }
}

mdc_backend *mdc_cuda_backend_create(int device, int precision, char *msg, size_t msg_size) {
  if (precision != MDC_CUDA_TF32 && precision != MDC_CUDA_STRICT_FP32 &&
      precision != MDC_CUDA_FP16) {
    set_msg(msg, msg_size, "unknown CUDA precision mode %d", precision);
    return NULL;
  }
  struct cudaDeviceProp prop;
  if (check_device(device, &prop, msg, msg_size)) return NULL;

  mdc_backend *be = calloc(1, sizeof *be);
  mdc_cuda_ctx *ctx = calloc(1, sizeof *ctx);
  if (!be || !ctx) {
    free(be);
    free(ctx);
    set_msg(msg, msg_size, "out of host memory");
    return NULL;
  }
  be->ctx = ctx;
  ctx->device = device;
  ctx->strict_fp32 = precision == MDC_CUDA_STRICT_FP32;
  ctx->half = precision == MDC_CUDA_FP16;
  if (make_resources(ctx, msg, msg_size)) {
    destroy(be);
    return NULL;
  }
  /* TF32 exists from Ampere (sm_80) on; Turing computes in fp32 either way. */
  int tf32 = !ctx->strict_fp32 && prop.major >= 8;
  ctx->gemm_compute = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  const char *math = ctx->half          ? "fp16"
                     : ctx->strict_fp32 ? "strict fp32"
                     : tf32             ? "tf32"
                                        : "fp32";
  fill_table(be);
  snprintf(ctx->name, sizeof ctx->name, "cuda:%d %.80s (sm_%d%d, %s%s)", device, prop.name,
           prop.major, prop.minor, math, ctx->unfused ? ", unfused" : "");
  be->name = ctx->name;
  return be;
}
