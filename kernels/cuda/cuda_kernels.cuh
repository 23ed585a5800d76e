/* cuda_kernels.cuh - what the CUDA backend's .cu files share: launch
 * geometry, the grid-stride loop, the failed-backend check, 16-byte
 * alignment and the per-channel sums over pixels (group_sums: per image or
 * over everything; deterministic, see there).  Device code; included by
 * cuda_elementwise.cu, cuda_reduce.cu and cuda_dwconv.cu only. */
#ifndef MDC_CUDA_KERNELS_CUH
#define MDC_CUDA_KERNELS_CUH

#include <stdint.h>

#include <initializer_list>

#include <cuda_fp16.h>

#include "cuda_internal.h"

#define THREADS 256
#define COL_ROWS 8             /* pixel rows per group-sum block (blockDim.y) */
#define COL_TARGET_BLOCKS 2048 /* enough blocks to fill any current GPU */
/* Most splits of one group: stage 2 reads a group's partials in one
 * block, so they are kept to 512 x 32 channels x 8 bytes (128 KiB, from
 * L2) per output. */
#define GROUP_MAX_SPLITS 512
#define FIN_ROWS 32 /* stage 2: splits summed side by side per channel (blockDim.y) */

#define GRID_STRIDE(j, total)                                                  \
  for (size_t j = (size_t)blockIdx.x * blockDim.x + threadIdx.x; j < (total); \
       j += (size_t)blockDim.x * gridDim.x)

/* The context when the backend can still run work, else NULL. */
static inline mdc_cuda_ctx *live_ctx(mdc_backend *be) {
  mdc_cuda_ctx *ctx = mdc_cuda_ctx_of(be);
  return ctx->failed ? NULL : ctx;
}

static inline bool aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }
static inline bool aligned8(const void *p) { return ((uintptr_t)p & 7u) == 0; }

/* ---------------------------------------------- activation storage
 * Activations are stored as float or, in the fp16 mode (ctx->half), as
 * IEEE half; kernels load them into fp32, compute in fp32 and round once
 * when storing.  A kernel templated on the storage type V reads with
 * ldf(x[j]) and writes with stf(&y[j], v): V = float or __half moves one
 * value, float4 or half4 four (c a multiple of 4, aligned pointers). */
struct alignas(8) half4 {
  __half2 a, b;
};
static __device__ __forceinline__ float ldf(float v) { return v; }
static __device__ __forceinline__ float ldf(__half v) { return __half2float(v); }
static __device__ __forceinline__ float4 ldf(float4 v) { return v; }
static __device__ __forceinline__ float4 ldf(half4 v) {
  float2 lo = __half22float2(v.a), hi = __half22float2(v.b);
  return make_float4(lo.x, lo.y, hi.x, hi.y);
}
static __device__ __forceinline__ void stf(float *p, float v) { *p = v; }
static __device__ __forceinline__ void stf(__half *p, float v) { *p = __float2half_rn(v); }
static __device__ __forceinline__ void stf(float4 *p, float4 v) { *p = v; }
/* Stores v and returns the value stored (v rounded as the storage holds it). */
static __device__ __forceinline__ float stf_get(float *p, float v) {
  *p = v;
  return v;
}
static __device__ __forceinline__ float stf_get(__half *p, float v) {
  __half h = __float2half_rn(v);
  *p = h;
  return __half2float(h);
}
static __device__ __forceinline__ void stf(half4 *p, float4 v) {
  half4 h;
  h.a = __floats2half2_rn(v.x, v.y);
  h.b = __floats2half2_rn(v.z, v.w);
  *p = h;
}

/* Values per element of a storage type, and its fp32 counterpart (the
 * type of parameters read next to it: float or float4). */
template <class V> struct act_traits {
  enum { width = 1 };
  typedef float param;
};
template <> struct act_traits<float4> {
  enum { width = 4 };
  typedef float4 param;
};
template <> struct act_traits<half4> {
  enum { width = 4 };
  typedef float4 param;
};

/* Calls launch(V()) with the storage type of this backend's activations:
 * four at a time (float4 / half4) when `vec` (c a multiple of 4) and every
 * pointer in `ptrs` is aligned for it, else one (float / __half).  The
 * launcher casts its pointers to V and divides its counts by
 * act_traits<V>::width. */
/* Calls launch(float()) or, in the fp16 mode, launch(__half()): for the
 * kernels that move one value at a time. */
template <class L> static void with_act_scalar(const mdc_cuda_ctx *ctx, L launch) {
  if (ctx->half) launch(__half());
  else launch(float());
}

template <class L>
static void with_act_type(const mdc_cuda_ctx *ctx, bool vec, std::initializer_list<const void *> ptrs,
                          L launch) {
  for (const void *p : ptrs)
    if (p && !(ctx->half ? aligned8(p) : aligned16(p))) vec = false;
  if (ctx->half) {
    if (vec) launch(half4());
    else launch(__half());
  } else {
    if (vec) launch(float4());
    else launch(float());
  }
}

/* Per-channel sums over groups of pixels: group g is the pixels
 * [g * every, min((g + 1) * every, n)) (every == 0: one group of all n),
 * and out0[g][k] = scale * sum over the group of a0(i, k) (overwritten,
 * or added when `accumulate`); out1 likewise; either may be NULL.
 * f(i, k, a0, a1) adds pixel i's terms for channel k.
 *
 * Deterministic: a group is cut into `splits` fixed ranges of split_len
 * pixels; one block sums a range (each thread its pixels in double, then
 * the block's rows in order in shared memory) and writes its partial
 * (stage 1); a second kernel adds a group's partials in order (stage 2).
 * Which pixels a thread adds depends on the shape only, never on the
 * grid, so results are the same run after run (and under a capped grid).
 * With one split per group stage 1 writes the result itself. */
typedef struct group_plan {
  size_t n, every, groups, split_len;
  unsigned splits;
} group_plan;

/* Block (32, COL_ROWS): blockIdx.x strides over tiles of 32 channels,
 * blockIdx.y over the units (group, split); threadIdx.y over the unit's
 * pixels.  partial NULL: write the result (splits == 1); else partial0
 * [unit][c] (partial1 after it). */
template <class F, class O>
static __global__ void group_sums_kernel(F f, group_plan p, int c, O *out0, O *out1,
                                         double scale, int accumulate, double *partial) {
  __shared__ double sh0[COL_ROWS][32], sh1[COL_ROWS][32];
  const size_t units = p.groups * p.splits;
  const size_t group_len = p.every ? p.every : p.n;
  for (size_t u = blockIdx.y; u < units; u += gridDim.y) {
    const size_t g = u / p.splits, s = u - g * p.splits;
    const size_t g0 = g * group_len, g1 = g0 + group_len < p.n ? g0 + group_len : p.n;
    const size_t lo = g0 + s * p.split_len;
    const size_t hi = lo + p.split_len < g1 ? lo + p.split_len : g1;
    /* channel tiles strided too, so any grid covers every channel */
    for (int k0 = blockIdx.x * 32; k0 < c; k0 += gridDim.x * 32) {
      const int k = k0 + threadIdx.x;
      double a0 = 0.0, a1 = 0.0;
      if (k < c)
        for (size_t i = lo + threadIdx.y; i < hi; i += COL_ROWS) f(i, k, a0, a1);
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
        if (partial) {
          double *q0 = partial + u * c + k, *q1 = q0 + units * c;
          if (out0) *q0 = s0;
          if (out1) *q1 = s1;
        } else {
          O *o0 = out0 ? out0 + g * c + k : NULL, *o1 = out1 ? out1 + g * c + k : NULL;
          if (o0) stf(o0, accumulate ? ldf(*o0) + (float)(s0 * scale) : (float)(s0 * scale));
          if (o1) stf(o1, accumulate ? ldf(*o1) + (float)(s1 * scale) : (float)(s1 * scale));
        }
      }
      __syncthreads(); /* sh is rewritten by the next tile */
    }
  }
}

/* Stage 2: out[g][k] (+)= scale * the sum of partial[g][0..splits)[k].
 * Block (32, FIN_ROWS): blockIdx.x strides over tiles of 32 channels,
 * blockIdx.y over the groups; thread row r adds splits r, r + FIN_ROWS,
 * ... in order, then row 0 adds the rows in order: a fixed order. */
template <class O>
static __global__ void group_sums_finish_kernel(const double *partial, group_plan p, int c,
                                                O *out0, O *out1, double scale,
                                                int accumulate) {
  __shared__ double sh0[FIN_ROWS][32], sh1[FIN_ROWS][32];
  const size_t units = p.groups * p.splits;
  for (size_t g = blockIdx.y; g < p.groups; g += gridDim.y)
    for (int k0 = blockIdx.x * 32; k0 < c; k0 += gridDim.x * 32) {
      const int k = k0 + threadIdx.x;
      double a0 = 0.0, a1 = 0.0;
      if (k < c) {
        const double *q0 = partial + g * p.splits * c + k, *q1 = q0 + units * c;
        for (unsigned s = threadIdx.y; s < p.splits; s += FIN_ROWS) {
          if (out0) a0 += q0[(size_t)s * c];
          if (out1) a1 += q1[(size_t)s * c];
        }
      }
      sh0[threadIdx.y][threadIdx.x] = a0;
      sh1[threadIdx.y][threadIdx.x] = a1;
      __syncthreads();
      if (threadIdx.y == 0 && k < c) {
        double s0 = 0.0, s1 = 0.0;
        for (int r = 0; r < FIN_ROWS; r++) {
          s0 += sh0[r][threadIdx.x];
          s1 += sh1[r][threadIdx.x];
        }
        const size_t j = g * c + k;
        if (out0) stf(out0 + j, accumulate ? ldf(out0[j]) + (float)(s0 * scale) : (float)(s0 * scale));
        if (out1) stf(out1 + j, accumulate ? ldf(out1[j]) + (float)(s1 * scale) : (float)(s1 * scale));
      }
      __syncthreads(); /* sh is rewritten by the next tile */
    }
}

/* The sums described above: groups of `every` pixels (0: all n in one).
 * n == 0 leaves the outputs alone (no groups).  O: float, or __half for
 * a result that is an activation in the fp16 mode. */
template <class F, class O>
static void group_sums(mdc_backend *be, mdc_cuda_ctx *ctx, const char *what, F f, size_t n,
                       size_t every, int c, O *out0, O *out1, double scale,
                       int accumulate) {
  if (n == 0 || c <= 0 || (!out0 && !out1)) return;
  if (every >= n) every = 0;
  group_plan p;
  p.n = n;
  p.every = every;
  const size_t group_len = every ? every : n;
  p.groups = every ? (n + every - 1) / every : 1;
  const size_t gx = (size_t)(c + 31) / 32;
  /* Splits: enough blocks to fill the GPU, at least 8 pixels a thread. */
  size_t want = COL_TARGET_BLOCKS / (gx * p.groups);
  size_t most = (group_len + 8 * COL_ROWS - 1) / (8 * COL_ROWS);
  size_t splits = want < most ? want : most;
  if (splits < 1) splits = 1;
  if (splits > GROUP_MAX_SPLITS) splits = GROUP_MAX_SPLITS;
  p.split_len = (group_len + splits - 1) / splits;
  p.splits = (unsigned)((group_len + p.split_len - 1) / p.split_len);
  const size_t units = p.groups * p.splits;
  double *partial = NULL;
  if (p.splits > 1) { /* partial0 and partial1, one plane each */
    partial = (double *)mdc_cuda_workspace(be, 2 * units * (size_t)c * sizeof(double));
    if (!partial) return;
  }
  unsigned bx = (unsigned)(gx < 65535 ? gx : 65535), gy = (unsigned)(units < 65535 ? units : 65535);
  group_sums_kernel<F, O><<<dim3(bx, gy), dim3(32, COL_ROWS), 0, ctx->stream>>>(
      f, p, c, out0, out1, scale, accumulate, partial);
  if (mdc_cuda_check_launch(be, what) || !partial) return;
  unsigned fy = (unsigned)(p.groups < 65535 ? p.groups : 65535);
  group_sums_finish_kernel<O><<<dim3(bx, fy), dim3(32, FIN_ROWS), 0, ctx->stream>>>(
      partial, p, c, out0, out1, scale, accumulate);
  mdc_cuda_check_launch(be, what);
}

#endif
