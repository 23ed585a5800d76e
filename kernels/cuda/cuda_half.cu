/* cuda_half.cu - the fp16 mode's own pieces (MDC_CUDA_FP16, backend.h's
 * act_half): conversions between fp32 and half on the device, the
 * converting activation transfers, the 16-bit weight copies cuBLAS and
 * cuDNN need, the bias add after a half GEMM, and the table of a half
 * backend (forward entries only).
 *
 * The layer kernels themselves are the same templates as in fp32
 * (cuda_kernels.cuh: ldf / stf): they load half, compute in fp32 and round
 * once per stored value. */
#include <stdio.h>

#include "cuda_kernels.cuh"

static __global__ void to_half_kernel(const float *src, size_t n, __half *dst) {
  GRID_STRIDE(j, n) dst[j] = __float2half_rn(src[j]);
}

static __global__ void to_float_kernel(const __half *src, size_t n, float *dst) {
  GRID_STRIDE(j, n) dst[j] = __half2float(src[j]);
}

/* dst[o][r] = wt[r][o]: our [rows][cout] weights as cuDNN's [cout][rows]
 * filter, in half. */
static __global__ void filter_to_half_kernel(const float *wt, size_t rows, unsigned cout,
                                             __half *dst) {
  GRID_STRIDE(j, rows * cout) {
    size_t o = j / rows, r = j - o * rows;
    dst[j] = __float2half_rn(wt[r * cout + o]);
  }
}

/* y[i][o] += b[o] */
static __global__ void add_bias_half_kernel(__half *y, const float *b, size_t n, unsigned cout) {
  GRID_STRIDE(j, n * cout) {
    unsigned o = (unsigned)(j % cout);
    y[j] = __float2half_rn(__half2float(y[j]) + b[o]);
  }
}

extern "C" int mdc_cuda_to_half(mdc_backend *be, void *dst, const float *src, size_t n,
                                const char *what) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx) return -1;
  if (n == 0) return 0;
  to_half_kernel<<<mdc_cuda_blocks(n, THREADS), THREADS, 0, ctx->stream>>>(src, n, (__half *)dst);
  return mdc_cuda_check_launch(be, what);
}

extern "C" int mdc_cuda_filter_to_half(mdc_backend *be, void *dst, const float *wt, size_t rows,
                                       int cout, const char *what) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx) return -1;
  if (rows == 0 || cout <= 0) return 0;
  filter_to_half_kernel<<<mdc_cuda_blocks(rows * cout, THREADS), THREADS, 0, ctx->stream>>>(
      wt, rows, (unsigned)cout, (__half *)dst);
  return mdc_cuda_check_launch(be, what);
}

extern "C" int mdc_cuda_add_bias_half(mdc_backend *be, void *y, const float *b, size_t n,
                                      int cout, const char *what) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx) return -1;
  if (n == 0 || cout <= 0) return 0;
  add_bias_half_kernel<<<mdc_cuda_blocks(n * cout, THREADS), THREADS, 0, ctx->stream>>>(
      (__half *)y, b, n, (unsigned)cout);
  return mdc_cuda_check_launch(be, what);
}

/* ------------------------------------------------ activation transfers */

/* The host values go to the workspace as fp32, then one kernel converts
 * them into dst. */
static void half_act_upload(mdc_backend *be, void *dst, const float *host, size_t count) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx || count == 0) return;
  char what[96];
  snprintf(what, sizeof what, "act_upload of %zu values to %p", count, dst);
  float *tmp = (float *)mdc_cuda_workspace(be, count * sizeof(float));
  if (!tmp || mdc_cuda_check(be,
                             cudaMemcpyAsync(tmp, host, count * sizeof(float),
                                             cudaMemcpyHostToDevice, ctx->stream),
                             what))
    return;
  mdc_cuda_to_half(be, dst, tmp, count, what);
}

static void half_act_download(mdc_backend *be, float *host, const void *src, size_t count) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx || count == 0) return;
  char what[96];
  snprintf(what, sizeof what, "act_download of %zu values from %p", count, src);
  float *tmp = (float *)mdc_cuda_workspace(be, count * sizeof(float));
  if (!tmp) return;
  to_float_kernel<<<mdc_cuda_blocks(count, THREADS), THREADS, 0, ctx->stream>>>(
      (const __half *)src, count, tmp);
  if (mdc_cuda_check_launch(be, what) ||
      mdc_cuda_check(be,
                     cudaMemcpyAsync(host, tmp, count * sizeof(float), cudaMemcpyDeviceToHost,
                                     ctx->stream),
                     what))
    return;
  mdc_cuda_check(be, cudaStreamSynchronize(ctx->stream), what);
}

/* ----------------------------------------------------------------- table */

/* After the other fillers: the forward entries read ctx->half themselves;
 * what is fp32-only goes.  Training entries (gradients, losses, the
 * optimizer) and the glue that works on parameters (mask_pixels, which the
 * NAFBlock uses to fold the channel attention into conv3's fp32 weights)
 * are NULL: callers see "not supported by this backend". */
extern "C" void mdc_cuda_half_init(mdc_backend *be) {
  be->act_half = 1;
  be->act_upload = half_act_upload;
  be->act_download = half_act_download;
  be->mask_pixels = NULL;
  be->scale = NULL;
  be->relu_mask_scale = NULL;
  be->conv1x1_backward = NULL;
  be->conv3x3_backward = NULL;
  be->dwconv3x3_backward = NULL;
  be->conv2x2s2_backward = NULL;
  be->layernorm_backward = NULL;
  be->simplegate_backward = NULL;
  be->pool_mean_backward = NULL;
  be->scale_channels_backward = NULL;
  be->add_scaled_backward = NULL;
  be->pixelshuffle_backward = NULL;
  be->l1_loss = NULL;
  be->psnr_loss = NULL;
  be->sum_squares = NULL;
  be->adamw_step = NULL;
  be->ema_update = NULL;
}
