/* scalar_glue.c - the small "glue" entries of backend.h (scale, relu_sum,
 * relu_mask_scale, psnr_loss, sum_squares, ema_update) for both CPU
 * backends: one memory-bound pass each, never a hot spot on the CPU. */
#include <math.h>

#include "cpu_internal.h"
#include "scalar_backward.h"

static void glue_scale(mdc_backend *be, const float *x, size_t n, float alpha, float *y) {
  (void)be;
  for (size_t i = 0; i < n; i++) y[i] = alpha * x[i];
}

static void glue_relu_sum(mdc_backend *be, const float *x, int h, int w, size_t stride, int c,
                          float *y) {
  (void)be;
  double acc[1024]; /* cls_hidden <= 1024 (mdc_arch_validate); wider: in chunks */
  for (int c0 = 0; c0 < c; c0 += 1024) {
    int cn = c - c0 < 1024 ? c - c0 : 1024;
    for (int j = 0; j < cn; j++) acc[j] = 0;
    for (int r = 0; r < h; r++)
      for (int p = 0; p < w; p++) {
        const float *v = x + ((size_t)r * stride + p) * c + c0;
        for (int j = 0; j < cn; j++)
          if (v[j] > 0) acc[j] += v[j];
      }
    for (int j = 0; j < cn; j++) y[c0 + j] += (float)acc[j];
  }
}

static void glue_relu_mask_scale(mdc_backend *be, const float *x, const float *s, size_t n,
                                 int c, float *y) {
  (void)be;
  for (size_t i = 0; i < n; i++)
    for (int j = 0; j < c; j++) y[i * c + j] = x[i * c + j] > 0 ? s[j] : 0.0f;
}

static double glue_psnr_loss(mdc_backend *be, const float *pred, const float *target, int batch,
                             size_t n, double eps, float scale, float *grad) {
  (void)be;
  if (n == 0) return 0.0;
  double sum = 0;
  for (int b = 0; b < batch; b++) {
    const float *p = pred + (size_t)b * n, *t = target + (size_t)b * n;
    double se = 0;
    for (size_t i = 0; i < n; i++) {
      double d = (double)p[i] - t[i];
      se += d * d;
    }
    double mse = se / n + eps;
    if (grad) {
      double k = 10.0 / log(10.0) * 2.0 / (n * mse) * scale;
      float *g = grad + (size_t)b * n;
      for (size_t i = 0; i < n; i++) g[i] = (float)(k * ((double)p[i] - t[i]));
    }
    sum += 10.0 * log10(mse);
  }
  return sum;
}

static double glue_sum_squares(mdc_backend *be, const float *x, size_t n) {
  (void)be;
  double ss = 0;
  for (size_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
  return ss;
}

static void glue_ema_update(mdc_backend *be, float *ema, const float *param, size_t n,
                            float decay) {
  (void)be;
  for (size_t i = 0; i < n; i++) ema[i] = decay * ema[i] + (1.0f - decay) * param[i];
}

void mdc_cpu_glue_init(mdc_backend *be) {
  be->scale = glue_scale;
  be->relu_sum = glue_relu_sum;
  be->relu_mask_scale = glue_relu_mask_scale;
  be->psnr_loss = glue_psnr_loss;
  be->sum_squares = glue_sum_squares;
  be->ema_update = glue_ema_update;
}
