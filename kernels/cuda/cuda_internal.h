/* cuda_internal.h - shared by the CUDA backend's files (kernels/cuda).
 * Not installed; nothing here is part of the library API.
 *
 * Conventions: every entry takes the backend.h signature and runs on the
 * context's stream; tensors are fp32 NHWC in device memory.  Failures are
 * recorded with mdc_cuda_fail (the first one wins) and reported by the
 * `sync` entry; an entry called after a failure does nothing.  Kernels are
 * written for any size: n, h, w, c need not be multiples of anything, and
 * sizes above 2^31 elements use size_t indexing. */
#ifndef MDC_CUDA_INTERNAL_H
#define MDC_CUDA_INTERNAL_H

#include <stddef.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mdc_cuda_ctx {
  int device;
  int strict_fp32;            /* 1: no TF32 in cuBLAS or cuDNN */
  int half;                   /* 1: activations stored as IEEE half (MDC_CUDA_FP16; inference only) */
  int unfused;                /* 1 (MASKDCPT_CUDA_UNFUSED): no fused entries, for comparisons */
  cudaStream_t stream;
  cublasHandle_t cublas;
  cudnnHandle_t cudnn;
  void *workspace;            /* cuDNN / cuBLAS workspace, grown on demand */
  size_t workspace_size;
  double *reduce;             /* device scratch for reductions: MDC_CUDA_REDUCE_SLOTS doubles */
  double *reduce_host;        /* pinned host copy of it */
  float *ones;                /* device vector of 1.0f, MDC_CUDA_ONES floats (bias gradients) */
  int failed;
  char error[512];
  char name[128];             /* "cuda:0 NVIDIA H100 80GB HBM3 (sm_90, tf32)" */
  /* cuBLAS compute type for the large matrix products: CUBLAS_COMPUTE_32F
   * when strict_fp32, CUBLAS_COMPUTE_32F_FAST_TF32 otherwise.  The handle
   * itself stays in CUBLAS_DEFAULT_MATH (no TF32 unless a call asks). */
  cublasComputeType_t gemm_compute;
  struct mdc_cuda_conv_cache *conv_cache; /* cuda_conv.c: cuDNN descriptors per shape */
} mdc_cuda_ctx;

#define MDC_CUDA_REDUCE_SLOTS 4096
#define MDC_CUDA_ONES (1 << 20)

static inline mdc_cuda_ctx *mdc_cuda_ctx_of(mdc_backend *be) { return (mdc_cuda_ctx *)be->ctx; }

/* Records the first failure (printf-style); later ones are dropped. */
void mdc_cuda_fail(mdc_backend *be, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Checks a CUDA runtime result / the last launch; 0 when fine, else
 * records "<what>: <CUDA's message>" and returns -1. */
int mdc_cuda_check(mdc_backend *be, cudaError_t e, const char *what);
int mdc_cuda_check_launch(mdc_backend *be, const char *what);
int mdc_cublas_check(mdc_backend *be, cublasStatus_t s, const char *what);
int mdc_cudnn_check(mdc_backend *be, cudnnStatus_t s, const char *what);
/* A device workspace of at least `bytes` (NULL after recording a failure).
 * Growing it waits for the stream (the old one may still be in use), so
 * a pointer from an earlier call is invalid after a later call. */
void *mdc_cuda_workspace(mdc_backend *be, size_t bytes);
/* The same, but out of memory returns NULL without recording a failure
 * (for callers that can fall back to a smaller request). */
void *mdc_cuda_workspace_try(mdc_backend *be, size_t bytes);
/* Frees cuda_conv.c's descriptor cache (the backend's `free`). */
void mdc_cuda_conv_release(mdc_backend *be);

/* The fp16 mode's conversions (cuda_half.cu), queued on the stream; 0, or
 * -1 after recording a failure.  dst[n] = half(src[n]); the filter form
 * writes cuDNN's [cout][rows] from our [rows][cout]; the bias form does
 * y[n][cout] += b (y half, b fp32). */
int mdc_cuda_to_half(mdc_backend *be, void *dst, const float *src, size_t n, const char *what);
int mdc_cuda_filter_to_half(mdc_backend *be, void *dst, const float *wt, size_t rows, int cout,
                            const char *what);
int mdc_cuda_add_bias_half(mdc_backend *be, void *y, const float *b, size_t n, int cout,
                           const char *what);

/* Table fillers, one per file. */
void mdc_cuda_conv_init(mdc_backend *be);        /* cuda_conv.c: conv1x1/3x3/2x2s2 + backward */
void mdc_cuda_nafblock_init(mdc_backend *be);    /* cuda_nafblock.c: nafblock_* */
void mdc_cuda_elementwise_init(mdc_backend *be); /* cuda_elementwise.cu */
void mdc_cuda_reduce_init(mdc_backend *be);      /* cuda_reduce.cu */
void mdc_cuda_dwconv_init(mdc_backend *be);      /* cuda_dwconv.cu */
void mdc_cuda_half_init(mdc_backend *be);        /* cuda_half.cu: the fp16 mode (after the others) */

/* Launch geometry: blocks of `threads` covering n items, capped for
 * grid-stride loops. */
static inline unsigned mdc_cuda_blocks(size_t n, unsigned threads) {
  size_t b = (n + threads - 1) / threads;
  if (b > 65535u * 32u) b = 65535u * 32u;
  return b ? (unsigned)b : 1u;
}

#ifdef __cplusplus
}
#endif

#endif
