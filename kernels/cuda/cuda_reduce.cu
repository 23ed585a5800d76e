/* cuda_reduce.cu - the reductions of the CUDA backend: pool_mean (+
 * backward), relu_sum, the losses (l1_loss, psnr_loss), sum_squares, and
 * adamw_step.  Semantics: kernels/cpu/scalar.c, scalar_backward.c,
 * scalar_glue.c.
 *
 * Scalar results (the losses, sum_squares) are summed in double: each
 * thread over its grid-stride share, each block through shuffles, then one
 * double atomicAdd per block into ctx->reduce[0]; the host reads it back
 * through ctx->reduce_host with one stream synchronization; the order of
 * those atomics varies, so these results vary in the last bits of a
 * double.  Sums over pixels per channel (global means per image,
 * relu_sum) use group_sums (cuda_kernels.cuh): double partials added in a
 * fixed order, the same result every run.
 *
 * pool_mean and its backward take a batch of images stored one after
 * another; every kernel covers the whole batch in one launch. */
#include <math.h>
#include <stdint.h>

#include "cuda_kernels.cuh"

#define REDUCE_BLOCKS 1024     /* blocks of a scalar reduction (one atomic each) */

/* ------------------------------------------------------ device helpers */

static __device__ __forceinline__ double warp_sum_d(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/* Adds the block's sum of v to *dst (one atomic).  Every thread of the
 * block must call it. */
static __device__ void block_add_to(double v, double *dst) {
  __shared__ double sh[32];
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum_d(v);
  if (lane == 0) sh[wid] = v;
  __syncthreads();
  if (wid == 0) {
    v = warp_sum_d(lane < nw ? sh[lane] : 0.0);
    if (lane == 0) atomicAdd(dst, v);
  }
}


/* Zeroes ctx->reduce[0, count) before a reduction; 0 when fine. */
static int reduce_begin_n(mdc_backend *be, mdc_cuda_ctx *ctx, size_t count, const char *what) {
  return mdc_cuda_check(be, cudaMemsetAsync(ctx->reduce, 0, count * sizeof(double), ctx->stream),
                        what);
}

static int reduce_begin(mdc_backend *be, mdc_cuda_ctx *ctx, const char *what) {
  return reduce_begin_n(be, ctx, 1, what);
}

/* Waits for ctx->reduce[0, count) and returns the host copy (NULL after a
 * failure). */
static const double *reduce_wait(mdc_backend *be, mdc_cuda_ctx *ctx, size_t count,
                                 const char *what) {
  if (ctx->failed) return NULL;
  if (mdc_cuda_check(be,
                     cudaMemcpyAsync(ctx->reduce_host, ctx->reduce, count * sizeof(double),
                                     cudaMemcpyDeviceToHost, ctx->stream),
                     what) ||
      mdc_cuda_check(be, cudaStreamSynchronize(ctx->stream), what))
    return NULL;
  return ctx->reduce_host;
}

/* Waits for ctx->reduce[0] and returns it (NaN after a failure). */
static double reduce_end(mdc_backend *be, mdc_cuda_ctx *ctx, const char *what) {
  const double *r = reduce_wait(be, ctx, 1, what);
  return r ? r[0] : NAN;
}

static unsigned reduce_blocks(size_t n) {
  unsigned b = mdc_cuda_blocks(n, THREADS);
  return b > REDUCE_BLOCKS ? REDUCE_BLOCKS : b;
}

/* --------------------------------------------------------- pool_mean */

/* Box geometry, as mdc_pool_box / mdc_pool_span in kernels/cpu/cpu_internal.h
 * (copied: that header is for the CPU backends). */
static __device__ __forceinline__ void pool_box(int p, int size, int window, int *lo, int *hi) {
  if (window >= size) {
    *lo = 0;
    *hi = size;
    return;
  }
  int s = p - window / 2;
  if (s > size - window) s = size - window;
  if (s < 0) s = 0;
  *lo = s;
  *hi = s + window;
}

static __device__ __forceinline__ void pool_span(int q, int size, int window, int *lo, int *hi) {
  if (window >= size) {
    *lo = 0;
    *hi = size;
    return;
  }
  int half = window / 2;
  *hi = q >= size - window ? size : q + half + 1;
  *lo = q < window ? 0 : q - window + half + 1;
}

static int pool_is_global(int h, int w, int window) {
  return window <= 0 || (window >= h && window >= w);
}

/* One separable pass along an axis of a tensor viewed as [A][L][B] (B
 * contiguous; A counts the images of a batch too): out[a][p][b] = scale *
 * sum over q in range(p) of in[a][q][b], range = the pool box of p
 * (span == 0) or the outputs whose box holds p (span == 1).  Both ends of
 * the range never decrease with p, so a thread keeps a running double sum
 * over a chunk of `chunk` consecutive p: about (range + 2 chunk) reads for
 * chunk outputs.  Threads run over (a, chunk, b) with b fastest:
 * coalesced. */
template <class I, class O>
static __global__ void pool_pass_kernel(const I *in, O *out, size_t A, int L, size_t B,
                                        int window, int span, int chunk, double scale) {
  const size_t nchunks = ((size_t)L + chunk - 1) / chunk;
  GRID_STRIDE(t, A * nchunks * B) {
    size_t b = t % B, r = t / B;
    int ch = (int)(r % nchunks);
    size_t a = r / nchunks;
    const I *src = in + a * (size_t)L * B + b;
    O *dst = out + a * (size_t)L * B + b;
    int p0 = ch * chunk, p1 = p0 + chunk < L ? p0 + chunk : L;
    int lo, hi;
    if (span) pool_span(p0, L, window, &lo, &hi);
    else pool_box(p0, L, window, &lo, &hi);
    double s = 0.0;
    for (int q = lo; q < hi; q++) s += ldf(src[(size_t)q * B]);
    stf(dst + (size_t)p0 * B, (float)(s * scale));
    for (int p = p0 + 1; p < p1; p++) {
      int nlo, nhi;
      if (span) pool_span(p, L, window, &nlo, &nhi);
      else pool_box(p, L, window, &nlo, &nhi);
      for (int q = hi; q < nhi; q++) s += ldf(src[(size_t)q * B]);
      for (int q = lo; q < nlo; q++) s -= ldf(src[(size_t)q * B]);
      lo = nlo;
      hi = nhi;
      stf(dst + (size_t)p * B, (float)(s * scale));
    }
  }
}

/* Vertical pass into the workspace, horizontal pass into out, each over
 * the whole batch: [batch][h][w * c], then [batch * h][w][c].  The
 * intermediate is rounded to float (relative error 6e-8).  A: the storage
 * of in and out (float, or __half in the fp16 mode). */
template <class A>
static void pool_separable(mdc_backend *be, mdc_cuda_ctx *ctx, const char *what, const A *in,
                           int batch, int h, int w, int c, int window, int span, A *out) {
  float *tmp = (float *)mdc_cuda_workspace(be, (size_t)batch * h * w * c * sizeof(float));
  if (!tmp) return;
  int bh = window < h ? window : h, bw = window < w ? window : w;
  int chunk_v = bh > 16 ? bh : 16, chunk_h = bw > 16 ? bw : 16;
  size_t nv = (size_t)batch * w * c * ((h + chunk_v - 1) / chunk_v);
  size_t nh = (size_t)batch * h * c * ((w + chunk_h - 1) / chunk_h);
  pool_pass_kernel<A, float><<<mdc_cuda_blocks(nv, THREADS), THREADS, 0, ctx->stream>>>(
      in, tmp, (size_t)batch, h, (size_t)w * c, window, span, chunk_v, 1.0);
  if (mdc_cuda_check_launch(be, what)) return;
  pool_pass_kernel<float, A><<<mdc_cuda_blocks(nh, THREADS), THREADS, 0, ctx->stream>>>(
      tmp, out, (size_t)batch * h, w, (size_t)c, window, span, chunk_h, 1.0 / ((double)bh * bw));
  mdc_cuda_check_launch(be, what);
}

/* sum over pixels of x[i][k] */
template <class A> struct value_terms {
  const A *x;
  int c;
  __device__ void operator()(size_t i, int k, double &a0, double &) const {
    a0 += ldf(x[i * c + k]);
  }
};

/* x and y are activations (the means feed the attention's conv). */
static void cuda_pool_mean(mdc_backend *be, const float *x, int batch, int h, int w, int c,
                           int window, float *y) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx || batch <= 0 || h <= 0 || w <= 0 || c <= 0) return;
  with_act_scalar(ctx, [&](auto v) {
    typedef decltype(v) A;
    if (pool_is_global(h, w, window)) { /* y[batch][c]: one group of h w pixels per image */
      size_t hw = (size_t)h * w;
      value_terms<A> f = {(const A *)x, c};
      group_sums(be, ctx, "pool_mean (global)", f, (size_t)batch * hw, hw, c, (A *)y, (A *)NULL,
                 1.0 / (double)hw, 0);
      return;
    }
    pool_separable(be, ctx, "pool_mean (box)", (const A *)x, batch, h, w, c, window, 0, (A *)y);
  });
}

/* Global: every pixel of image b gets dy[b][k] / (h w). */
static __global__ void pool_global_backward_kernel(const float *dy, size_t total, size_t hw,
                                                   unsigned c, double inv_hw, float *dx) {
  const size_t image = hw * c;
  GRID_STRIDE(j, total) {
    size_t b, k;
    if (j <= 0xffffffffu && image <= 0xffffffffu) { /* 32-bit division while it fits */
      b = (unsigned)j / (unsigned)image;
      k = (unsigned)j % c;
    } else {
      b = j / image;
      k = j % c;
    }
    dx[j] = (float)(dy[b * c + k] * inv_hw);
  }
}

static void cuda_pool_mean_backward(mdc_backend *be, int batch, int h, int w, int c, int window,
                                    const float *dy, float *dx) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx || batch <= 0 || h <= 0 || w <= 0 || c <= 0 || !dx) return;
  if (pool_is_global(h, w, window)) {
    size_t hw = (size_t)h * w, total = (size_t)batch * hw * c;
    pool_global_backward_kernel<<<mdc_cuda_blocks(total, THREADS), THREADS, 0, ctx->stream>>>(
        dy, total, hw, (unsigned)c, 1.0 / (double)hw, dx);
    mdc_cuda_check_launch(be, "pool_mean_backward (global)");
    return;
  }
  /* Each output spreads dy / area over its box: separable sums over the
   * outputs whose boxes hold the pixel. */
  pool_separable<float>(be, ctx, "pool_mean_backward (box)", dy, batch, h, w, c, window, 1, dx);
}

/* ---------------------------------------------------------- relu_sum */

/* max(x, 0) of pixel i = (r, p) of the window, rows `stride` pixels apart */
template <class A> struct relu_terms {
  const A *x;
  size_t stride;
  int w, c;
  __device__ void operator()(size_t i, int k, double &a0, double &) const {
    size_t r = i / (unsigned)w, p = i - r * (unsigned)w;
    float v = ldf(x[(r * stride + p) * c + k]);
    if (v > 0.0f) a0 += v;
  }
};

/* x is an activation; y (the classifier's pooled sums) stays fp32. */
static void cuda_relu_sum(mdc_backend *be, const float *x, int h, int w, size_t stride, int c,
                          float *y) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx || h <= 0 || w <= 0 || c <= 0) return;
  with_act_scalar(ctx, [&](auto v) {
    typedef decltype(v) A;
    relu_terms<A> f = {(const A *)x, stride, w, c};
    group_sums(be, ctx, "relu_sum", f, (size_t)h * w, 0, c, y, (float *)NULL, 1.0, 1);
  });
}

/* ------------------------------------------------------------ losses */

/* sum |pred - target|; grad = sign(d) g (0 where d == 0, NaN where d is
 * NaN), g = scale / n.  Each element is read before it is written, by one
 * thread, so grad may be pred or target. */
static __global__ void l1_loss_kernel(const float *pred, const float *target, size_t n, float g,
                                      float *grad, double *sum) {
  double s = 0.0;
  GRID_STRIDE(j, n) {
    float d = pred[j] - target[j];
    s += fabs((double)d);
    if (grad) grad[j] = d > 0.0f ? g : d < 0.0f ? -g : d == 0.0f ? 0.0f : d;
  }
  block_add_to(s, sum);
}

static double cuda_l1_loss(mdc_backend *be, const float *pred, const float *target, size_t n,
                           float scale, float *grad) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx) return NAN;
  if (n == 0) return 0.0;
  if (reduce_begin(be, ctx, "l1_loss")) return NAN;
  float g = (float)((double)scale / (double)n);
  l1_loss_kernel<<<reduce_blocks(n), THREADS, 0, ctx->stream>>>(pred, target, n, g, grad,
                                                                ctx->reduce);
  mdc_cuda_check_launch(be, "l1_loss");
  return reduce_end(be, ctx, "l1_loss") / (double)n;
}

/* sums[b] = sum (pred - target)^2 over crop b (n values), in double;
 * blockIdx.y strides over the crops. */
static __global__ void squared_error_kernel(const float *pred, const float *target, size_t n,
                                            unsigned crops, double *sums) {
  for (unsigned b = blockIdx.y; b < crops; b += gridDim.y) {
    const size_t off = (size_t)b * n;
    double s = 0.0;
    GRID_STRIDE(j, n) {
      double d = (double)pred[off + j] - target[off + j];
      s += d * d;
    }
    block_add_to(s, sums + b);
  }
}

/* grad = k (pred - target) in crop b, k = c0 / (n (mse + eps)) scale with
 * the crop's mse from the device-side sums (so the host waits only once,
 * at the end); the same double expression as the CPU's. */
static __global__ void psnr_grad_kernel(const float *pred, const float *target, size_t n,
                                        unsigned crops, const double *sums, double eps, double c0,
                                        double scale, float *grad) {
  for (unsigned b = blockIdx.y; b < crops; b += gridDim.y) {
    const size_t off = (size_t)b * n;
    const double nd = (double)n, mse = sums[b] / nd + eps, k = c0 / (nd * mse) * scale;
    GRID_STRIDE(j, n) grad[off + j] = (float)(k * ((double)pred[off + j] - target[off + j]));
  }
}

/* Crops go in chunks of MDC_CUDA_REDUCE_SLOTS, one wait per chunk: one for
 * any batch a trainer uses. */
static double cuda_psnr_loss(mdc_backend *be, const float *pred, const float *target, int batch,
                             size_t n, double eps, float scale, float *grad) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx) return NAN;
  if (n == 0 || batch <= 0) return 0.0;
  double sum = 0.0;
  for (int b0 = 0; b0 < batch; b0 += MDC_CUDA_REDUCE_SLOTS) {
    const int nb = batch - b0 < MDC_CUDA_REDUCE_SLOTS ? batch - b0 : MDC_CUDA_REDUCE_SLOTS;
    const size_t off = (size_t)b0 * n;
    if (reduce_begin_n(be, ctx, (size_t)nb, "psnr_loss")) return NAN;
    dim3 grid(reduce_blocks(n), (unsigned)nb);
    squared_error_kernel<<<grid, THREADS, 0, ctx->stream>>>(pred + off, target + off, n,
                                                            (unsigned)nb, ctx->reduce);
    if (mdc_cuda_check_launch(be, "psnr_loss")) return NAN;
    if (grad) {
      dim3 ggrid(mdc_cuda_blocks(n, THREADS), (unsigned)nb);
      psnr_grad_kernel<<<ggrid, THREADS, 0, ctx->stream>>>(pred + off, target + off, n,
                                                           (unsigned)nb, ctx->reduce, eps,
                                                           10.0 / log(10.0) * 2.0,
                                                           (double)scale, grad + off);
      mdc_cuda_check_launch(be, "psnr_loss (grad)");
    }
    const double *se = reduce_wait(be, ctx, (size_t)nb, "psnr_loss");
    if (!se) return NAN;
    for (int b = 0; b < nb; b++) sum += 10.0 * log10(se[b] / (double)n + eps);
  }
  return sum;
}

static __global__ void sum_squares_kernel(const float *x, size_t n, double *sum) {
  double s = 0.0;
  GRID_STRIDE(j, n) s += (double)x[j] * x[j];
  block_add_to(s, sum);
}

static double cuda_sum_squares(mdc_backend *be, const float *x, size_t n) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx) return NAN;
  if (n == 0) return 0.0;
  if (reduce_begin(be, ctx, "sum_squares")) return NAN;
  sum_squares_kernel<<<reduce_blocks(n), THREADS, 0, ctx->stream>>>(x, n, ctx->reduce);
  mdc_cuda_check_launch(be, "sum_squares");
  return reduce_end(be, ctx, "sum_squares");
}

/* -------------------------------------------------------------- AdamW */

/* PyTorch's AdamW in fp32 arithmetic (as torch.optim.AdamW on fp32
 * tensors): the coefficients are worked out on the host in double,
 * step_size = lr / bc1, inv_sqrt_bc2 = 1 / sqrt(bc2), decay = 1 - lr wd.
 * Within a few ulp of the CPU's double-per-element version. */
static __global__ void adamw_kernel(float *param, const float *grad, float *m, float *v, size_t n,
                                    float beta1, float one_minus_beta1, float beta2,
                                    float one_minus_beta2, float eps, float decay,
                                    float step_size, float inv_sqrt_bc2) {
  GRID_STRIDE(j, n) {
    float g = grad[j];
    float mj = beta1 * m[j] + one_minus_beta1 * g;
    float vj = beta2 * v[j] + one_minus_beta2 * g * g;
    float denom = sqrtf(vj) * inv_sqrt_bc2 + eps;
    param[j] = param[j] * decay - step_size * mj / denom;
    m[j] = mj;
    v[j] = vj;
  }
}

static void cuda_adamw_step(mdc_backend *be, float *param, const float *grad, float *m, float *v,
                            size_t n, float lr, float beta1, float beta2, float eps, float wd,
                            long step) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx || n == 0) return;
  if (step < 1) step = 1; /* bias corrections of 0 would divide by zero */
  double bc1 = 1.0 - pow((double)beta1, (double)step), bc2 = 1.0 - pow((double)beta2, (double)step);
  adamw_kernel<<<mdc_cuda_blocks(n, THREADS), THREADS, 0, ctx->stream>>>(
      param, grad, m, v, n, beta1, (float)(1.0 - (double)beta1), beta2,
      (float)(1.0 - (double)beta2), eps, (float)(1.0 - (double)lr * wd), (float)((double)lr / bc1),
      (float)(1.0 / sqrt(bc2)));
  mdc_cuda_check_launch(be, "adamw_step");
}

/* --------------------------------------------------------------- init */

extern "C" void mdc_cuda_reduce_init(mdc_backend *be) {
  be->pool_mean = cuda_pool_mean;
  be->pool_mean_backward = cuda_pool_mean_backward;
  be->relu_sum = cuda_relu_sum;
  be->l1_loss = cuda_l1_loss;
  be->psnr_loss = cuda_psnr_loss;
  be->sum_squares = cuda_sum_squares;
  be->adamw_step = cuda_adamw_step;
}
