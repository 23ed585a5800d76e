/* kernel.c - blur kernel builders: rotated Gaussian, anti-aliased disk and
 * sub-pixel line.  Every builder leaves a centred kernel summing to 1.
 * (Camera-shake kernels are in motion.c.) */
#include <math.h>
#include <stdlib.h>

#include "dg_internal.h"

/* Radii are capped: a kernel this wide is never asked for by the
 * documented ranges, and the cap keeps a bad argument from allocating
 * gigabytes. */
#define DG_KERNEL_MAX_RADIUS 256

static int kernel_alloc(dg_kernel *k, int rx, int ry) {
  k->k = NULL;
  if (rx < 0 || ry < 0 || rx > DG_KERNEL_MAX_RADIUS || ry > DG_KERNEL_MAX_RADIUS) return -1;
  k->rx = rx;
  k->ry = ry;
  k->k = calloc((size_t)(2 * rx + 1) * (size_t)(2 * ry + 1), sizeof *k->k);
  return k->k ? 0 : -1;
}

void dg_kernel_free(dg_kernel *k) {
  free(k->k);
  k->k = NULL;
  k->rx = k->ry = 0;
}

void dg_kernel_normalize(dg_kernel *k) {
  size_t n = (size_t)(2 * k->rx + 1) * (size_t)(2 * k->ry + 1);
  double sum = 0.0;
  for (size_t i = 0; i < n; i++) sum += k->k[i];
  if (!(sum > 0.0)) {
    for (size_t i = 0; i < n; i++) k->k[i] = 0.0f;
    k->k[(size_t)k->ry * (2 * k->rx + 1) + k->rx] = 1.0f;
    return;
  }
  for (size_t i = 0; i < n; i++) k->k[i] = (float)(k->k[i] / sum);
}

int dg_kernel_gaussian(dg_kernel *k, double sx, double sy, double theta) {
  if (!(sx > 0.0) || !(sy > 0.0)) return -1;
  /* Inverse covariance of R diag(sx^2, sy^2) R^T. */
  double c = cos(theta), s = sin(theta);
  double a = c * c / (sx * sx) + s * s / (sy * sy);
  double b = c * s * (1.0 / (sx * sx) - 1.0 / (sy * sy));
  double d = s * s / (sx * sx) + c * c / (sy * sy);
  /* Half-extents of the 3-sigma ellipse along x and y. */
  double ex = 3.0 * sqrt(sx * sx * c * c + sy * sy * s * s);
  double ey = 3.0 * sqrt(sx * sx * s * s + sy * sy * c * c);
  int rx = (int)ceil(ex), ry = (int)ceil(ey);
  if (rx < 1) rx = 1;
  if (ry < 1) ry = 1;
  if (kernel_alloc(k, rx, ry) != 0) return -1;
  int kw = 2 * rx + 1;
  /* Taps outside the 3-sigma ellipse (under 1.1% of the peak) are left at
   * zero: a thin rotated kernel then costs a fraction of its bounding box
   * in dg_convolve, which skips zero taps. */
  for (int y = -ry; y <= ry; y++)
    for (int x = -rx; x <= rx; x++) {
      double q = a * x * x + 2.0 * b * x * y + d * y * y;
      if (q <= 9.0 || (x == 0 && y == 0))
        k->k[(size_t)(y + ry) * kw + (x + rx)] = (float)exp(-0.5 * q);
    }
  dg_kernel_normalize(k);
  return 0;
}

int dg_kernel_gaussian_1d(dg_kernel *k, double sigma, int vertical) {
  if (!(sigma > 0.0)) return -1;
  int r = (int)ceil(3.0 * sigma);
  if (r < 1) r = 1;
  if (kernel_alloc(k, vertical ? 0 : r, vertical ? r : 0) != 0) return -1;
  /* same samples as the 2-D kernel's centre row: their outer product,
   * normalised, is exactly the isotropic 2-D kernel */
  for (int i = -r; i <= r; i++) k->k[i + r] = (float)exp(-0.5 * i * i / (sigma * sigma));
  dg_kernel_normalize(k);
  return 0;
}

int dg_kernel_disk(dg_kernel *k, double radius) {
  if (!(radius > 0.0)) return -1;
  /* A pixel at offset i covers [i - 0.5, i + 0.5]: ceil(radius) reaches
   * every pixel the disk touches. */
  int r = (int)ceil(radius);
  if (kernel_alloc(k, r, r) != 0) return -1;
  enum { SUB = 16 }; /* 16 x 16 samples per pixel: area to within ~0.4% */
  double r2 = radius * radius;
  int kw = 2 * r + 1;
  for (int y = -r; y <= r; y++)
    for (int x = -r; x <= r; x++) {
      int inside = 0;
      for (int j = 0; j < SUB; j++) {
        double py = y - 0.5 + (j + 0.5) / SUB;
        for (int i = 0; i < SUB; i++) {
          double px = x - 0.5 + (i + 0.5) / SUB;
          inside += px * px + py * py <= r2;
        }
      }
      k->k[(size_t)(y + r) * kw + (x + r)] = (float)inside;
    }
  dg_kernel_normalize(k);
  return 0;
}

void dg_kernel_splat(dg_kernel *k, double x, double y, double wt) {
  double fx = floor(x), fy = floor(y);
  int ix = (int)fx + k->rx, iy = (int)fy + k->ry;
  double ax = x - fx, ay = y - fy;
  int kw = 2 * k->rx + 1, kh = 2 * k->ry + 1;
  double w4[4] = {(1 - ax) * (1 - ay), ax * (1 - ay), (1 - ax) * ay, ax * ay};
  int dx[4] = {0, 1, 0, 1}, dy[4] = {0, 0, 1, 1};
  for (int i = 0; i < 4; i++) {
    int px = ix + dx[i], py = iy + dy[i];
    if (px >= 0 && px < kw && py >= 0 && py < kh) k->k[(size_t)py * kw + px] += (float)(wt * w4[i]);
  }
}

int dg_kernel_line(dg_kernel *k, double length, double angle) {
  if (!(length >= 0.0)) return -1;
  double c = cos(angle), s = sin(angle), half = 0.5 * length;
  int rx = (int)ceil(fabs(c) * half) + 1, ry = (int)ceil(fabs(s) * half) + 1;
  if (kernel_alloc(k, rx, ry) != 0) return -1;
  /* Samples every quarter pixel along the segment, equal weights. */
  int n = (int)ceil(length * 4.0) + 1;
  for (int i = 0; i < n; i++) {
    double t = n == 1 ? 0.0 : -half + length * i / (n - 1);
    dg_kernel_splat(k, t * c, t * s, 1.0);
  }
  dg_kernel_normalize(k);
  return 0;
}
