/* metrics.c - PSNR and SSIM (see metrics.h). */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>

double dg_mse(const float *a, const float *b, size_t n) {
  double se = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - b[i];
    se += d * d;
  }
  return n ? se / n : 0.0;
}

double dg_psnr(const float *a, const float *b, size_t n) {
  double mse = dg_mse(a, b, n);
  return mse > 0 ? -10.0 * log10(mse) : DG_PSNR_IDENTICAL;
}

#define SSIM_R 5 /* window radius: 11x11 */
#define SSIM_TAPS (2 * SSIM_R + 1)
#define SSIM_MAPS 5 /* a, b, a*a, b*b, a*b */

/* The 2-D Gaussian window is separable, so each statistic is filtered
 * along rows into a ring of the last 11 rows, then down the columns:
 * 22 instead of 121 taps per pixel, and memory for 11 rows only, so
 * `maskdcpt compare` also works on very large photos. */
double dg_ssim(const float *a, const float *b, int w, int h) {
  const double c1 = 0.0001, c2 = 0.0009;
  if (w < SSIM_TAPS || h < SSIM_TAPS) return NAN;
  double g[SSIM_TAPS], gs = 0;
  for (int i = 0; i < SSIM_TAPS; i++)
    gs += g[i] = exp(-(i - SSIM_R) * (i - SSIM_R) / (2 * 1.5 * 1.5));
  for (int i = 0; i < SSIM_TAPS; i++) g[i] /= gs;
  size_t wv = (size_t)w - 2 * SSIM_R; /* output columns */
  double *ring = malloc(SSIM_TAPS * SSIM_MAPS * wv * sizeof *ring);
  if (!ring) return NAN;
  double total = 0;
  long count = 0;
  for (int c = 0; c < 3; c++)
    for (int y = 0; y < h; y++) {
      double *row = ring + (size_t)(y % SSIM_TAPS) * SSIM_MAPS * wv;
      for (size_t x = 0; x < wv; x++) {
        double s[SSIM_MAPS] = {0};
        for (int k = 0; k < SSIM_TAPS; k++) {
          size_t i = ((size_t)y * w + x + k) * 3 + c;
          double va = a[i], vb = b[i];
          s[0] += g[k] * va, s[1] += g[k] * vb;
          s[2] += g[k] * va * va, s[3] += g[k] * vb * vb, s[4] += g[k] * va * vb;
        }
        for (int m = 0; m < SSIM_MAPS; m++) row[m * wv + x] = s[m];
      }
      if (y < SSIM_TAPS - 1) continue;
      for (size_t x = 0; x < wv; x++) { /* window rows y-10..y, centre y-5 */
        double s[SSIM_MAPS] = {0};
        for (int k = 0; k < SSIM_TAPS; k++) {
          const double *r = ring + (size_t)((y - 2 * SSIM_R + k) % SSIM_TAPS) * SSIM_MAPS * wv;
          for (int m = 0; m < SSIM_MAPS; m++) s[m] += g[k] * r[m * wv + x];
        }
        double ma = s[0], mb = s[1];
        double va = s[2] - ma * ma, vb = s[3] - mb * mb, cov = s[4] - ma * mb;
        total += ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
        count++;
      }
    }
  free(ring);
  return total / count;
}
