/* cuda_kernels.cuh - what the CUDA backend's .cu files share: launch
 * geometry, the grid-stride loop, the failed-backend check, 16-byte
 * alignment and the per-channel column sums.  Device code; included by
 * cuda_elementwise.cu, cuda_reduce.cu and cuda_dwconv.cu only.
 *
 * Column sums: a block covers 32 channels x COL_ROWS pixel rows, each
 * thread adds its pixels in double, the block reduces in shared memory and
 * adds its partial with one float atomicAdd per channel.  The order of the
 * atomics varies, so these results vary in the last bits between runs. */
#ifndef MDC_CUDA_KERNELS_CUH
#define MDC_CUDA_KERNELS_CUH

#include <stdint.h>

#include "cuda_internal.h"

#define THREADS 256
#define COL_ROWS 8             /* pixel rows per column-sum block (blockDim.y) */
#define COL_TARGET_BLOCKS 2048 /* enough blocks to fill any current GPU */

#define GRID_STRIDE(j, total)                                                  \
  for (size_t j = (size_t)blockIdx.x * blockDim.x + threadIdx.x; j < (total); \
       j += (size_t)blockDim.x * gridDim.x)

/* The context when the backend can still run work, else NULL. */
static inline mdc_cuda_ctx *live_ctx(mdc_backend *be) {
  mdc_cuda_ctx *ctx = mdc_cuda_ctx_of(be);
  return ctx->failed ? NULL : ctx;
}

static inline bool aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

/* out0[k] += scale * sum_i a0(i, k), out1 likewise (either may be NULL);
 * f(i, k, a0, a1) adds pixel i's terms for channel k.  Block (32,
 * COL_ROWS): blockIdx.x strides over tiles of 32 channels, blockIdx.y and
 * threadIdx.y over the pixels. */
template <class F>
static __global__ void column_sums_kernel(F f, size_t n, int c, float *out0, float *out1,
                                          double scale) {
  __shared__ double sh0[COL_ROWS][32], sh1[COL_ROWS][32];
  /* channel tiles strided too, so any grid covers every channel */
  for (int k0 = blockIdx.x * 32; k0 < c; k0 += gridDim.x * 32) {
    const int k = k0 + threadIdx.x;
    double a0 = 0.0, a1 = 0.0;
    if (k < c)
      for (size_t i = (size_t)blockIdx.y * COL_ROWS + threadIdx.y; i < n;
           i += (size_t)gridDim.y * COL_ROWS)
        f(i, k, a0, a1);
    sh0[threadIdx.y][threadIdx.x] = a0;
    sh1[threadIdx.y][threadIdx.x] = a1;
    __syncthreads();
    if (threadIdx.y == 0 && k < c) {
      double s0 = 0.0, s1 = 0.0;
#pragma unroll
      for (int r = 0; r < COL_ROWS; r++) {
        s0 += sh0[r][threadIdx.x];
        s1 += sh1[r][threadIdx.x];
      }
      if (out0) atomicAdd(out0 + k, (float)(s0 * scale));
      if (out1) atomicAdd(out1 + k, (float)(s1 * scale));
    }
    __syncthreads(); /* sh is rewritten by the next tile */
  }
}

template <class F>
static void column_sums(mdc_backend *be, mdc_cuda_ctx *ctx, const char *what, F f, size_t n,
                        int c, float *out0, float *out1, double scale) {
  if (n == 0 || c <= 0 || (!out0 && !out1)) return;
  unsigned gx = (unsigned)((c + 31) / 32);
  size_t gy = (n + 8 * COL_ROWS - 1) / (8 * COL_ROWS); /* at least 8 pixels a thread */
  size_t cap = COL_TARGET_BLOCKS / gx;
  if (cap < 1) cap = 1;
  if (gy > cap) gy = cap;
  if (gy > 65535) gy = 65535;
  column_sums_kernel<F><<<dim3(gx, (unsigned)gy), dim3(32, COL_ROWS), 0, ctx->stream>>>(
      f, n, c, out0, out1, scale);
  mdc_cuda_check_launch(be, what);
}

#endif
