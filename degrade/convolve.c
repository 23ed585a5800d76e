/* convolve.c - 2-D convolution with reflect-101 borders.  The image is
 * copied once into a reflected, padded buffer (so any kernel size works,
 * even one larger than the image), then each nonzero tap adds a shifted
 * row: contiguous loops the compiler vectorises, and sparse kernels (motion,
 * lines) cost only their nonzero taps. */
#include <stdlib.h>

#include "dg_internal.h"

int dg_reflect_index(int i, int n) {
  if (n <= 1) return 0;
  int period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

typedef struct tap {
  int dx, dy;
  float v;
} tap;

int dg_convolve(float *img, int w, int h, int c, const dg_kernel *k) {
  int kw = 2 * k->rx + 1, kh = 2 * k->ry + 1;
  size_t pw = (size_t)w + 2 * (size_t)k->rx, ph = (size_t)h + 2 * (size_t)k->ry;
  size_t row = pw * (size_t)c;
  float *pad = malloc(row * ph * sizeof *pad);
  float *acc = malloc((size_t)w * c * sizeof *acc);
  tap *taps = malloc((size_t)kw * kh * sizeof *taps);
  if (!pad || !acc || !taps) {
    free(pad), free(acc), free(taps);
    return -1;
  }
  for (size_t y = 0; y < ph; y++) {
    const float *src = img + (size_t)dg_reflect_index((int)y - k->ry, h) * w * c;
    float *dst = pad + y * row;
    for (size_t x = 0; x < pw; x++) {
      const float *s = src + (size_t)dg_reflect_index((int)x - k->rx, w) * c;
      for (int ch = 0; ch < c; ch++) dst[x * c + ch] = s[ch];
    }
  }
  int nt = 0;
  for (int y = 0; y < kh; y++)
    for (int x = 0; x < kw; x++) {
      float v = k->k[(size_t)y * kw + x];
      if (v != 0.0f) taps[nt++] = (tap){x, y, v};
    }
  size_t n = (size_t)w * c;
  for (int y = 0; y < h; y++) {
    for (size_t i = 0; i < n; i++) acc[i] = 0.0f;
    for (int t = 0; t < nt; t++) {
      /* tap (dx, dy) reads input offset (dx - rx, dy - ry): correlation,
       * the same as convolution for the symmetric kernels and harmless for
       * random ones */
      const float *src = pad + (size_t)(y + taps[t].dy) * row + (size_t)taps[t].dx * c;
      float v = taps[t].v;
      for (size_t i = 0; i < n; i++) acc[i] += v * src[i];
    }
    float *dst = img + (size_t)y * n;
    for (size_t i = 0; i < n; i++) dst[i] = acc[i];
  }
  free(pad);
  free(acc);
  free(taps);
  return 0;
}
