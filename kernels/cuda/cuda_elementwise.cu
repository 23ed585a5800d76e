/* cuda_elementwise.cu - the per-element and per-pixel entries of the CUDA
 * backend: layernorm, simplegate, scale_channels, add_scaled,
 * pixelshuffle_add, mask_pixels, scale, relu_mask_scale, ema_update and
 * the backward passes of the first five.  Semantics: kernels/cpu/scalar.c,
 * scalar_backward.c, scalar_glue.c.
 *
 * Layout: NHWC fp32, c innermost, so a warp reading consecutive indices
 * reads consecutive channels (coalesced).  Loops are grid-stride with
 * size_t indices.  Where c is a multiple of 4 and the pointers are 16-byte
 * aligned the flat kernels move float4s (one 16-byte access per thread).
 *
 * Sums over pixels (parameter gradients, per image or over everything) go
 * through group_sums (cuda_kernels.cuh): deterministic.
 *
 * Per-image rows: layernorm's g / b and scale_channels' s may hold one row
 * per `every` pixels (a batch of images stored one after another, every =
 * h * w); pixel i uses row i / every (every == 0: row 0 for all). */
#include <math.h>
#include <stdint.h>

#include "cuda_kernels.cuh"

/* ------------------------------------------------------ device helpers */

/* Pixel and channel of flat index j; 32-bit division while it fits. */
static __device__ __forceinline__ size_t split_index(size_t j, unsigned c, unsigned *k) {
  if (j <= 0xffffffffu) {
    unsigned jj = (unsigned)j, i = jj / c;
    *k = jj - i * c;
    return i;
  }
  size_t i = j / c;
  *k = (unsigned)(j - i * c);
  return i;
}

static __device__ __forceinline__ float vmul(float a, float b) { return a * b; }
static __device__ __forceinline__ float4 vmul(float4 a, float4 b) {
  return make_float4(a.x * b.x, a.y * b.y, a.z * b.z, a.w * b.w);
}
static __device__ __forceinline__ float vscale(float a, float s) { return a * s; }
static __device__ __forceinline__ float4 vscale(float4 a, float s) {
  return make_float4(a.x * s, a.y * s, a.z * s, a.w * s);
}
static __device__ __forceinline__ float vadd(float a, float b) { return a + b; }
static __device__ __forceinline__ float4 vadd(float4 a, float4 b) {
  return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}
/* a + s * b */
static __device__ __forceinline__ float vaxpy(float a, float s, float b) { return a + s * b; }
static __device__ __forceinline__ float4 vaxpy(float4 a, float4 s, float4 b) {
  return make_float4(a.x + s.x * b.x, a.y + s.y * b.y, a.z + s.z * b.z, a.w + s.w * b.w);
}

static __device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/* The sum of v over the block, returned to every thread.  sh holds 32
 * floats; the trailing barrier lets the caller call it again at once. */
static __device__ float block_sum(float v, float *sh) {
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) sh[wid] = v;
  __syncthreads();
  float t = lane < nw ? sh[lane] : 0.0f;
  t = warp_sum(t);
  __syncthreads();
  return t;
}

/* The parameter row of pixel i: i / every, row 0 when every == 0;
 * 32-bit division while it fits. */
static __device__ __forceinline__ size_t row_of(size_t i, size_t every) {
  if (every == 0) return 0;
  if (i <= 0xffffffffu && every <= 0xffffffffu) return (unsigned)i / (unsigned)every;
  return i / every;
}

/* --------------------------------------------------------- layernorm */

/* The mean in fp32 is rounded to a float near |x|, so when the spread is
 * much smaller than |mean| the deviations x - mean inherit that rounding
 * (times rstd).  Both kernels therefore take the mean in two steps: mu
 * from the plain sum, then corr = mean(x - mu), where x - mu is (nearly)
 * exact; the deviations are d = (x - mu) - corr and the variance is
 * mean(d^2) (no E[x^2] - E[x]^2 cancellation either). */

/* The residual add fused in front of a LayerNorm (add_scaled_layernorm):
 * the row normalised is x + s * r (s NULL: x + r), also stored to sum.
 * r NULL: a plain LayerNorm of x. */
template <class A> struct ln_residual {
  const A *r;
  const float *s;
  A *sum;
};

/* x[k] (+ s[k] r[k], stored) of pixel i; a + s * b as add_scaled_kernel.
 * The value normalised is the one stored (rounded to A), as when the sum
 * is read back by a separate LayerNorm. */
template <class A>
static __device__ __forceinline__ float ln_input(const A *x, ln_residual<A> res, size_t i, int c,
                                                 int k) {
  float v = ldf(x[i * c + k]);
  if (res.r) {
    float r = ldf(res.r[i * c + k]);
    v = stf_get(res.sum + i * c + k, res.s ? v + res.s[k] * r : v + r);
  }
  return v;
}

/* One warp per pixel for c <= 32 * VPT: each lane keeps channels
 * lane, lane + 32, ... in registers, so x is read once. */
template <int VPT, class A>
static __global__ void layernorm_warp_kernel(const A *x, ln_residual<A> res, size_t n, int c,
                                             const float *g, const float *b, size_t gb_every,
                                             float eps, A *y, float *mean, float *rstd) {
  const int lane = threadIdx.x & 31;
  const size_t nwarps = ((size_t)gridDim.x * blockDim.x) >> 5;
  for (size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; i < n; i += nwarps) {
    float v[VPT], s = 0.0f;
#pragma unroll
    for (int t = 0; t < VPT; t++) {
      int k = t * 32 + lane;
      v[t] = k < c ? ln_input(x, res, i, c, k) : 0.0f;
      s += v[t];
    }
    const float mu = warp_sum(s) / c;
    s = 0.0f;
#pragma unroll
    for (int t = 0; t < VPT; t++) {
      v[t] = t * 32 + lane < c ? v[t] - mu : 0.0f; /* v: x - mu from here */
      s += v[t];
    }
    const float corr = warp_sum(s) / c;
    float q = 0.0f;
#pragma unroll
    for (int t = 0; t < VPT; t++) {
      float d = t * 32 + lane < c ? v[t] - corr : 0.0f;
      q += d * d;
    }
    const float rs = 1.0f / sqrtf(warp_sum(q) / c + eps);
    const size_t row = row_of(i, gb_every) * c;
    const float *gr = g + row, *br = b + row; /* this pixel's row of g and b */
    A *yi = y + i * c;
#pragma unroll
    for (int t = 0; t < VPT; t++) {
      int k = t * 32 + lane;
      if (k < c) stf(yi + k, (v[t] - corr) * rs * gr[k] + br[k]);
    }
    if (lane == 0) {
      if (mean) mean[i] = mu + corr;
      if (rstd) rstd[i] = rs;
    }
  }
}

/* Wide rows (c > 1024): one block per pixel, four passes over the row
 * (at most 16 KiB, so the later ones hit L1). */
template <class A>
static __global__ void layernorm_block_kernel(const A *x, ln_residual<A> res, size_t n, int c,
                                              const float *g, const float *b, size_t gb_every,
                                              float eps, A *y, float *mean, float *rstd) {
  __shared__ float sh[32];
  for (size_t i = blockIdx.x; i < n; i += gridDim.x) {
    /* with a residual, the later passes read the sum back: each thread
     * the elements it wrote */
    const A *xi = (res.r ? res.sum : x) + i * c;
    float s = 0.0f;
    for (int k = threadIdx.x; k < c; k += blockDim.x) s += ln_input(x, res, i, c, k);
    const float mu = block_sum(s, sh) / c;
    s = 0.0f;
    for (int k = threadIdx.x; k < c; k += blockDim.x) s += ldf(xi[k]) - mu;
    const float corr = block_sum(s, sh) / c;
    float q = 0.0f;
    for (int k = threadIdx.x; k < c; k += blockDim.x) {
      float d = (ldf(xi[k]) - mu) - corr;
      q += d * d;
    }
    const float rs = 1.0f / sqrtf(block_sum(q, sh) / c + eps);
    const size_t row = row_of(i, gb_every) * c;
    const float *gr = g + row, *br = b + row; /* this pixel's row of g and b */
    A *yi = y + i * c;
    for (int k = threadIdx.x; k < c; k += blockDim.x)
      stf(yi + k, ((ldf(xi[k]) - mu) - corr) * rs * gr[k] + br[k]);
    if (threadIdx.x == 0) {
      if (mean) mean[i] = mu + corr;
      if (rstd) rstd[i] = rs;
    }
  }
}

template <class A>
using layernorm_fn = void (*)(const A *, ln_residual<A>, size_t, int, const float *,
                              const float *, size_t, float, A *, float *, float *);
typedef void (*layernorm_dx_fn)(const float *, size_t, int, const float *, size_t, const float *,
                                const float *, const float *, float *);

/* Registers per lane of the warp-per-pixel kernels for c channels; 0 (c >
 * 1024): the block-per-pixel ones. */
static int warp_vpt(int c) {
  for (int v = 1; v <= 32; v *= 2)
    if (c <= 32 * v) return v;
  return 0;
}

/* Blocks of THREADS for n pixels: a warp or a block per pixel. */
static unsigned layernorm_blocks(size_t n, int c) {
  return warp_vpt(c) ? mdc_cuda_blocks(n, THREADS / 32) : mdc_cuda_blocks(n, 1);
}

template <class A> static layernorm_fn<A> layernorm_kernel_for(int c) {
  switch (warp_vpt(c)) {
  case 1: return layernorm_warp_kernel<1, A>;
  case 2: return layernorm_warp_kernel<2, A>;
  case 4: return layernorm_warp_kernel<4, A>;
  case 8: return layernorm_warp_kernel<8, A>;
  case 16: return layernorm_warp_kernel<16, A>;
  case 32: return layernorm_warp_kernel<32, A>;
  default: return layernorm_block_kernel<A>;
  }
}

/* x, r, y, ln: activations (float or, in the fp16 mode, __half). */
static void layernorm_launch(mdc_backend *be, const char *what, const void *x, const void *r,
                             const float *s, size_t n, int c, const float *g, const float *b,
                             size_t gb_every, float eps, void *sum, void *y, float *mean,
                             float *rstd) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx || n == 0 || c <= 0) return;
  with_act_scalar(ctx, [&](auto v) {
    typedef decltype(v) A;
    ln_residual<A> res = {(const A *)r, s, (A *)sum};
    layernorm_fn<A> kernel = layernorm_kernel_for<A>(c);
    kernel<<<layernorm_blocks(n, c), THREADS, 0, ctx->stream>>>((const A *)x, res, n, c, g, b,
                                                                gb_every, eps, (A *)y, mean, rstd);
  });
  mdc_cuda_check_launch(be, what);
}

static void cuda_layernorm(mdc_backend *be, const float *x, size_t n, int c, const float *g,
                           const float *b, size_t gb_every, float eps, float *y, float *mean,
                           float *rstd) {
  layernorm_launch(be, "layernorm", x, NULL, NULL, n, c, g, b, gb_every, eps, NULL, y, mean, rstd);
}

static void cuda_add_scaled_layernorm(mdc_backend *be, const float *a, const float *r,
                                      const float *s, size_t n, int c, const float *g,
                                      const float *b, size_t gb_every, float eps, float *y,
                                      float *ln, float *mean, float *rstd) {
  layernorm_launch(be, "add_scaled_layernorm", a, r, s, n, c, g, b, gb_every, eps, y, ln, mean,
                   rstd);
}

/* With xh = (x - mean) rstd and e = dy g:
 * dx = rstd (e - mean_k(e) - xh mean_k(e xh)).  Each warp reads its whole
 * pixel before writing it, so dx may be dy. */
template <int VPT>
static __global__ void layernorm_dx_warp_kernel(const float *x, size_t n, int c,
                                                const float *g_all, size_t gb_every,
                                                const float *mean, const float *rstd,
                                                const float *dy, float *dx) {
  const int lane = threadIdx.x & 31;
  const size_t nwarps = ((size_t)gridDim.x * blockDim.x) >> 5;
  for (size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; i < n; i += nwarps) {
    const float *xi = x + i * c, *gi = dy + i * c, *g = g_all + row_of(i, gb_every) * c;
    const float mu = mean[i], rs = rstd[i];
    float e[VPT], xh[VPT], s1 = 0.0f, s2 = 0.0f;
#pragma unroll
    for (int t = 0; t < VPT; t++) {
      int k = t * 32 + lane;
      e[t] = k < c ? gi[k] * g[k] : 0.0f;
      xh[t] = k < c ? (xi[k] - mu) * rs : 0.0f;
      s1 += e[t];
      s2 += e[t] * xh[t];
    }
    s1 = warp_sum(s1) / c;
    s2 = warp_sum(s2) / c;
    float *di = dx + i * c;
#pragma unroll
    for (int t = 0; t < VPT; t++) {
      int k = t * 32 + lane;
      if (k < c) di[k] = rs * (e[t] - s1 - xh[t] * s2);
    }
  }
}

/* Wide rows: one block per pixel, the sums first, then dx (each thread
 * rewrites only the elements it read, after the barrier: dx may be dy). */
static __global__ void layernorm_dx_block_kernel(const float *x, size_t n, int c,
                                                 const float *g_all, size_t gb_every,
                                                 const float *mean, const float *rstd,
                                                 const float *dy, float *dx) {
  __shared__ float sh[32];
  for (size_t i = blockIdx.x; i < n; i += gridDim.x) {
    const float *xi = x + i * c, *gi = dy + i * c, *g = g_all + row_of(i, gb_every) * c;
    const float mu = mean[i], rs = rstd[i];
    float s1 = 0.0f, s2 = 0.0f;
    for (int k = threadIdx.x; k < c; k += blockDim.x) {
      float e = gi[k] * g[k];
      s1 += e;
      s2 += e * ((xi[k] - mu) * rs);
    }
    s1 = block_sum(s1, sh) / c;
    s2 = block_sum(s2, sh) / c;
    float *di = dx + i * c;
    for (int k = threadIdx.x; k < c; k += blockDim.x) {
      float e = gi[k] * g[k], xh = (xi[k] - mu) * rs;
      di[k] = rs * (e - s1 - xh * s2);
    }
  }
}

/* dg += dy xh, db += dy (per row of g: group_sums' groups) */
struct layernorm_param_terms {
  const float *x, *mean, *rstd, *dy;
  int c;
  __device__ void operator()(size_t i, int k, double &a0, double &a1) const {
    size_t j = i * c + k;
    float gy = dy[j], xh = (x[j] - mean[i]) * rstd[i];
    a0 += (double)gy * xh;
    a1 += gy;
  }
};

static layernorm_dx_fn layernorm_dx_kernel_for(int c) {
  switch (warp_vpt(c)) {
  case 1: return layernorm_dx_warp_kernel<1>;
  case 2: return layernorm_dx_warp_kernel<2>;
  case 4: return layernorm_dx_warp_kernel<4>;
  case 8: return layernorm_dx_warp_kernel<8>;
  case 16: return layernorm_dx_warp_kernel<16>;
  case 32: return layernorm_dx_warp_kernel<32>;
  default: return layernorm_dx_block_kernel;
  }
}

static void cuda_layernorm_backward(mdc_backend *be, const float *x, size_t n, int c,
                                    const float *g, size_t gb_every, const float *mean,
                                    const float *rstd, const float *dy, float *dx, float *dg,
                                    float *db) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx || n == 0 || c <= 0) return;
  /* parameter gradients first: they read dy, which dx may overwrite */
  layernorm_param_terms f = {x, mean, rstd, dy, c};
  group_sums(be, ctx, "layernorm_backward (dg, db)", f, n, gb_every, c, dg, db, 1.0, 1);
  if (!dx || ctx->failed) return;
  layernorm_dx_fn kernel = layernorm_dx_kernel_for(c);
  kernel<<<layernorm_blocks(n, c), THREADS, 0, ctx->stream>>>(x, n, c, g, gb_every, mean, rstd,
                                                              dy, dx);
  mdc_cuda_check_launch(be, "layernorm_backward (dx)");
}

/* -------------------------------------------------------- simplegate */

/* c in units of V */
template <typename V>
static __global__ void simplegate_kernel(const V *x, size_t n, unsigned c, V *y) {
  GRID_STRIDE(j, n * c) {
    unsigned k;
    size_t i = split_index(j, c, &k);
    stf(y + j, vmul(ldf(x[i * 2 * c + k]), ldf(x[i * 2 * c + c + k])));
  }
}

static void cuda_simplegate(mdc_backend *be, const float *x, size_t n, int c, float *y) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx || n == 0 || c <= 0) return;
  with_act_type(ctx, c % 4 == 0, {x, y}, [&](auto v) {
    typedef decltype(v) V;
    unsigned cv = (unsigned)c / act_traits<V>::width;
    simplegate_kernel<V><<<mdc_cuda_blocks(n * cv, THREADS), THREADS, 0, ctx->stream>>>(
        (const V *)x, n, cv, (V *)y);
  });
  mdc_cuda_check_launch(be, "simplegate");
}

/* dx[i][k] = dy[i][k] x[i][c + k], dx[i][c + k] = dy[i][k] x[i][k] */
static __global__ void simplegate_backward_kernel(const float *x, size_t n, unsigned c,
                                                  const float *dy, float *dx) {
  GRID_STRIDE(j, n * c) {
    unsigned k;
    size_t i = split_index(j, c, &k);
    size_t a = i * 2 * c + k;
    float g = dy[j], x1 = x[a], x2 = x[a + c];
    dx[a] = g * x2;
    dx[a + c] = g * x1;
  }
}

static void cuda_simplegate_backward(mdc_backend *be, const float *x, size_t n, int c,
                                     const float *dy, float *dx) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx || n == 0 || c <= 0 || !dx) return;
  simplegate_backward_kernel<<<mdc_cuda_blocks(n * c, THREADS), THREADS, 0, ctx->stream>>>(
      x, n, (unsigned)c, dy, dx);
  mdc_cuda_check_launch(be, "simplegate_backward");
}

/* ---------------------------------------------------- scale_channels */

/* y[i][k] = x[i][k] s[i / s_every][k]; c in units of V */
template <typename V>
static __global__ void scale_channels_kernel(const V *x, const V *s, size_t s_every, size_t n,
                                             unsigned c, V *y) {
  GRID_STRIDE(j, n * c) {
    unsigned k;
    size_t i = split_index(j, c, &k);
    stf(y + j, vmul(ldf(x[j]), ldf(s[row_of(i, s_every) * c + k])));
  }
}

/* s is an activation too (the attention's conv output). */
static void cuda_scale_channels(mdc_backend *be, const float *x, const float *s, size_t s_every,
                                size_t n, int c, float *y) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx || n == 0 || c <= 0) return;
  with_act_type(ctx, c % 4 == 0, {x, s, y}, [&](auto v) {
    typedef decltype(v) V;
    unsigned cv = (unsigned)c / act_traits<V>::width;
    scale_channels_kernel<V><<<mdc_cuda_blocks(n * cv, THREADS), THREADS, 0, ctx->stream>>>(
        (const V *)x, (const V *)s, s_every, n, cv, (V *)y);
  });
  mdc_cuda_check_launch(be, "scale_channels");
}

/* dx = dy s[row]; ds (s_every == 1 only: one row per pixel) = dy x.  dy is
 * read once: dx may be dy. */
static __global__ void scale_channels_dx_kernel(const float *x, const float *s, size_t s_every,
                                                size_t n, unsigned c, const float *dy, float *dx,
                                                float *ds) {
  GRID_STRIDE(j, n * c) {
    unsigned k;
    size_t i = split_index(j, c, &k);
    float g = dy[j];
    if (ds) ds[j] = g * x[j];
    if (dx) dx[j] = g * s[row_of(i, s_every) * c + k];
  }
}

/* ds[row][k] = sum over the row's pixels of dy x */
struct product_terms {
  const float *a, *b;
  int c;
  __device__ void operator()(size_t i, int k, double &a0, double &) const {
    size_t j = i * c + k;
    a0 += (double)a[j] * b[j];
  }
};

static void cuda_scale_channels_backward(mdc_backend *be, const float *x, const float *s,
                                         size_t s_every, size_t n, int c, const float *dy,
                                         float *dx, float *ds) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx || c <= 0) return;
  if (ds && s_every != 1) { /* rows of several pixels: sums, overwritten */
    if (n > 0) {
      product_terms f = {dy, x, c};
      group_sums(be, ctx, "scale_channels_backward (ds)", f, n, s_every, c, ds, (float *)NULL,
                 1.0, 0);
    } else if (s_every == 0) { /* one row of no pixels: zeros */
      if (mdc_cuda_check(be, cudaMemsetAsync(ds, 0, (size_t)c * sizeof(float), ctx->stream),
                         "scale_channels_backward (zero ds)"))
        return;
    }
    ds = NULL; /* done; before dx, which may overwrite dy */
  }
  if (n == 0 || !(dx || ds) || ctx->failed) return;
  scale_channels_dx_kernel<<<mdc_cuda_blocks(n * c, THREADS), THREADS, 0, ctx->stream>>>(
      x, s, s_every, n, (unsigned)c, dy, dx, ds);
  mdc_cuda_check_launch(be, "scale_channels_backward");
}

/* -------------------------------------------------------- add_scaled */

/* y = a + s b (s NULL: a + b); each element is read before it is written,
 * by the same thread, so y may be a or b. */
template <typename V>
static __global__ void add_scaled_kernel(const V *a, const V *b,
                                         const typename act_traits<V>::param *s, size_t n,
                                         unsigned c, V *y) {
  GRID_STRIDE(j, n * c) {
    unsigned k;
    split_index(j, c, &k);
    auto av = ldf(a[j]), bv = ldf(b[j]);
    stf(y + j, s ? vaxpy(av, s[k], bv) : vadd(av, bv));
  }
}

static void cuda_add_scaled(mdc_backend *be, const float *a, const float *b, const float *s,
                            size_t n, int c, float *y) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx || n == 0 || c <= 0) return;
  /* s (a parameter) stays fp32: 16-byte aligned for the float4 view */
  with_act_type(ctx, c % 4 == 0 && (!s || aligned16(s)), {a, b, y}, [&](auto v) {
    typedef decltype(v) V;
    typedef typename act_traits<V>::param P;
    unsigned cv = (unsigned)c / act_traits<V>::width;
    add_scaled_kernel<V><<<mdc_cuda_blocks(n * cv, THREADS), THREADS, 0, ctx->stream>>>(
        (const V *)a, (const V *)b, (const P *)s, n, cv, (V *)y);
  });
  mdc_cuda_check_launch(be, "add_scaled");
}

/* db = s dy (dy when s is NULL) */
static __global__ void add_scaled_db_kernel(const float *s, size_t n, unsigned c,
                                            const float *dy, float *db) {
  GRID_STRIDE(j, n * c) {
    unsigned k;
    split_index(j, c, &k);
    db[j] = s ? s[k] * dy[j] : dy[j];
  }
}

static void cuda_add_scaled_backward(mdc_backend *be, const float *b, const float *s, size_t n,
                                     int c, const float *dy, float *db, float *ds) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx || n == 0 || c <= 0) return;
  /* ds first: it reads dy, which db may overwrite */
  if (ds) {
    product_terms f = {dy, b, c};
    group_sums(be, ctx, "add_scaled_backward (ds)", f, n, 0, c, ds, (float *)NULL, 1.0, 1);
  }
  if (!db || ctx->failed) return;
  add_scaled_db_kernel<<<mdc_cuda_blocks(n * c, THREADS), THREADS, 0, ctx->stream>>>(
      s, n, (unsigned)c, dy, db);
  mdc_cuda_check_launch(be, "add_scaled_backward (db)");
}

/* -------------------------------------------------- pixelshuffle_add */

/* One thread per input (i, j, k): its 4 values x[i][j][4k .. 4k + 4) (one
 * 16-byte load when x is aligned) go to y(2i + dy, 2j + dx, k), q =
 * dy * 2 + dx; the 4 stores are each coalesced over k. */
/* A: the storage type, A4 its four-wide form (x_vec: x aligned for it). */
template <class A, class A4>
static __global__ void pixelshuffle_add_kernel(const A *x, int h, int w, unsigned c,
                                               const A *skip, A *y, int x_vec) {
  GRID_STRIDE(t, (size_t)h * w * c) {
    unsigned k;
    size_t p = split_index(t, c, &k);
    size_t i = p / (unsigned)w, j = p - i * (unsigned)w;
    const A *xp = x + p * 4 * c + 4 * (size_t)k;
    float4 v = x_vec ? ldf(*(const A4 *)xp)
                     : make_float4(ldf(xp[0]), ldf(xp[1]), ldf(xp[2]), ldf(xp[3]));
    size_t o00 = ((2 * i) * (2 * (size_t)w) + 2 * j) * c + k, o01 = o00 + c,
           o10 = o00 + 2 * (size_t)w * c, o11 = o10 + c;
    stf(y + o00, v.x + (skip ? ldf(skip[o00]) : 0.0f));
    stf(y + o01, v.y + (skip ? ldf(skip[o01]) : 0.0f));
    stf(y + o10, v.z + (skip ? ldf(skip[o10]) : 0.0f));
    stf(y + o11, v.w + (skip ? ldf(skip[o11]) : 0.0f));
  }
}

static void cuda_pixelshuffle_add(mdc_backend *be, const float *x, int h, int w, int c,
                                  const float *skip, float *y) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx || h <= 0 || w <= 0 || c <= 0) return;
  size_t total = (size_t)h * w * c;
  unsigned blocks = mdc_cuda_blocks(total, THREADS);
  if (ctx->half)
    pixelshuffle_add_kernel<__half, half4><<<blocks, THREADS, 0, ctx->stream>>>(
        (const __half *)x, h, w, (unsigned)c, (const __half *)skip, (__half *)y, aligned8(x));
  else
    pixelshuffle_add_kernel<float, float4><<<blocks, THREADS, 0, ctx->stream>>>(
        x, h, w, (unsigned)c, skip, y, aligned16(x));
  mdc_cuda_check_launch(be, "pixelshuffle_add");
}

/* The gather back: dx[i][j][4k + q] = dy(2i + q / 2, 2j + q % 2, k). */
static __global__ void pixelshuffle_backward_kernel(int h, int w, unsigned c, const float *dy,
                                                    float *dx, int dx_vec) {
  GRID_STRIDE(t, (size_t)h * w * c) {
    unsigned k;
    size_t p = split_index(t, c, &k);
    size_t i = p / (unsigned)w, j = p - i * (unsigned)w;
    size_t o00 = ((2 * i) * (2 * (size_t)w) + 2 * j) * c + k, o01 = o00 + c,
           o10 = o00 + 2 * (size_t)w * c, o11 = o10 + c;
    float4 v = make_float4(dy[o00], dy[o01], dy[o10], dy[o11]);
    float *dp = dx + p * 4 * c + 4 * (size_t)k;
    if (dx_vec) {
      *(float4 *)dp = v;
    } else {
      dp[0] = v.x;
      dp[1] = v.y;
      dp[2] = v.z;
      dp[3] = v.w;
    }
  }
}

static void cuda_pixelshuffle_backward(mdc_backend *be, int h, int w, int c, const float *dy,
                                       float *dx) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx || h <= 0 || w <= 0 || c <= 0 || !dx) return;
  size_t total = (size_t)h * w * c;
  pixelshuffle_backward_kernel<<<mdc_cuda_blocks(total, THREADS), THREADS, 0, ctx->stream>>>(
      h, w, (unsigned)c, dy, dx, aligned16(dx));
  mdc_cuda_check_launch(be, "pixelshuffle_backward");
}

/* ------------------------------------------------- small glue passes */

/* y[i][k] = x[i][k] m[i]; c in units of V */
template <typename V>
static __global__ void mask_pixels_kernel(const V *x, const float *m, size_t n, unsigned c,
                                          V *y) {
  GRID_STRIDE(j, n * c) {
    unsigned k;
    size_t i = split_index(j, c, &k);
    y[j] = vscale(x[j], m[i]);
  }
}

static void cuda_mask_pixels(mdc_backend *be, const float *x, const float *m, size_t n, int c,
                             float *y) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx || n == 0 || c <= 0) return;
  if (c % 4 == 0 && aligned16(x) && aligned16(y)) {
    unsigned c4 = (unsigned)c / 4;
    mask_pixels_kernel<float4><<<mdc_cuda_blocks(n * c4, THREADS), THREADS, 0, ctx->stream>>>(
        (const float4 *)x, m, n, c4, (float4 *)y);
  } else {
    mask_pixels_kernel<float><<<mdc_cuda_blocks(n * c, THREADS), THREADS, 0, ctx->stream>>>(
        x, m, n, (unsigned)c, y);
  }
  mdc_cuda_check_launch(be, "mask_pixels");
}

template <typename V>
static __global__ void scale_kernel(const V *x, size_t n, float alpha, V *y) {
  GRID_STRIDE(j, n) y[j] = vscale(x[j], alpha);
}

static void cuda_scale(mdc_backend *be, const float *x, size_t n, float alpha, float *y) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx || n == 0) return;
  if (n % 4 == 0 && aligned16(x) && aligned16(y))
    scale_kernel<float4><<<mdc_cuda_blocks(n / 4, THREADS), THREADS, 0, ctx->stream>>>(
        (const float4 *)x, n / 4, alpha, (float4 *)y);
  else
    scale_kernel<float><<<mdc_cuda_blocks(n, THREADS), THREADS, 0, ctx->stream>>>(x, n, alpha, y);
  mdc_cuda_check_launch(be, "scale");
}

static __global__ void relu_mask_scale_kernel(const float *x, const float *s, size_t n,
                                              unsigned c, float *y) {
  GRID_STRIDE(j, n * c) {
    unsigned k;
    split_index(j, c, &k);
    y[j] = x[j] > 0.0f ? s[k] : 0.0f;
  }
}

static void cuda_relu_mask_scale(mdc_backend *be, const float *x, const float *s, size_t n,
                                 int c, float *y) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx || n == 0 || c <= 0) return;
  relu_mask_scale_kernel<<<mdc_cuda_blocks(n * c, THREADS), THREADS, 0, ctx->stream>>>(
      x, s, n, (unsigned)c, y);
  mdc_cuda_check_launch(be, "relu_mask_scale");
}

/* ema = decay ema + (1 - decay) param, rounded as the CPU's float
 * expression (no fused multiply-add). */
static __global__ void ema_update_kernel(float *ema, const float *param, size_t n, float decay,
                                         float one_minus_decay) {
  GRID_STRIDE(j, n)
  ema[j] = __fadd_rn(__fmul_rn(decay, ema[j]), __fmul_rn(one_minus_decay, param[j]));
}

static void cuda_ema_update(mdc_backend *be, float *ema, const float *param, size_t n,
                            float decay) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx || n == 0) return;
  ema_update_kernel<<<mdc_cuda_blocks(n, THREADS), THREADS, 0, ctx->stream>>>(ema, param, n, decay,
                                                                             1.0f - decay);
  mdc_cuda_check_launch(be, "ema_update");
}

/* --------------------------------------------------------------- init */

extern "C" void mdc_cuda_elementwise_init(mdc_backend *be) {
  be->layernorm = cuda_layernorm;
  be->add_scaled_layernorm = cuda_add_scaled_layernorm;
  be->layernorm_backward = cuda_layernorm_backward;
  be->simplegate = cuda_simplegate;
  be->simplegate_backward = cuda_simplegate_backward;
  be->scale_channels = cuda_scale_channels;
  be->scale_channels_backward = cuda_scale_channels_backward;
  be->add_scaled = cuda_add_scaled;
  be->add_scaled_backward = cuda_add_scaled_backward;
  be->pixelshuffle_add = cuda_pixelshuffle_add;
  be->pixelshuffle_backward = cuda_pixelshuffle_backward;
  be->mask_pixels = cuda_mask_pixels;
  be->scale = cuda_scale;
  be->relu_mask_scale = cuda_relu_mask_scale;
  be->ema_update = cuda_ema_update;
}
