/* resize.c - separable Keys bicubic resampling (a = -0.5, as MATLAB's
 * imresize and PIL), widened by the factor when shrinking so that it also
 * antialiases, and the low-resolution class built on it. */
#include <math.h>
#include <stdlib.h>

#include "dg_internal.h"

static double cubic(double x) {
  x = fabs(x);
  if (x <= 1.0) return (1.5 * x - 2.5) * x * x + 1.0;
  if (x < 2.0) return ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0;
  return 0.0;
}

/* Per output sample: `taps` clamped input indices and weights summing to 1. */
typedef struct contrib {
  int taps;
  int *idx;
  float *wt;
} contrib;

static int contrib_make(contrib *c, int in_n, int out_n) {
  double scale = (double)out_n / in_n;
  double stretch = scale < 1.0 ? scale : 1.0;
  double support = 2.0 / stretch;
  c->taps = (int)ceil(2.0 * support) + 2;
  c->idx = malloc((size_t)out_n * c->taps * sizeof *c->idx);
  c->wt = malloc((size_t)out_n * c->taps * sizeof *c->wt);
  if (!c->idx || !c->wt) return -1;
  for (int o = 0; o < out_n; o++) {
    double center = (o + 0.5) / scale - 0.5;
    int first = (int)floor(center - support) + 1;
    double sum = 0.0;
    for (int t = 0; t < c->taps; t++) sum += cubic((first + t - center) * stretch);
    for (int t = 0; t < c->taps; t++) {
      int i = first + t;
      c->idx[(size_t)o * c->taps + t] = i < 0 ? 0 : (i >= in_n ? in_n - 1 : i);
      c->wt[(size_t)o * c->taps + t] = (float)(cubic((first + t - center) * stretch) / sum);
    }
  }
  return 0;
}

static void contrib_free(contrib *c) {
  free(c->idx);
  free(c->wt);
}

int dg_resize(const float *in, int w, int h, int channels, float *out, int out_w, int out_h) {
  if (!in || !out || w < 1 || h < 1 || out_w < 1 || out_h < 1 || channels < 1 || channels > 4 ||
      w > DG_MAX_SIDE || h > DG_MAX_SIDE || out_w > DG_MAX_SIDE || out_h > DG_MAX_SIDE)
    return -1;
  contrib cx = {0}, cy = {0};
  size_t orow = (size_t)out_w * channels;
  float *tmp = malloc(orow * h * sizeof *tmp);
  int rc = -1;
  if (!tmp || contrib_make(&cx, w, out_w) != 0 || contrib_make(&cy, h, out_h) != 0) goto done;
  for (int y = 0; y < h; y++) {
    const float *src = in + (size_t)y * w * channels;
    float *dst = tmp + (size_t)y * orow;
    for (int x = 0; x < out_w; x++) {
      const int *idx = cx.idx + (size_t)x * cx.taps;
      const float *wt = cx.wt + (size_t)x * cx.taps;
      for (int c = 0; c < channels; c++) {
        float acc = 0.0f;
        for (int t = 0; t < cx.taps; t++) acc += wt[t] * src[(size_t)idx[t] * channels + c];
        dst[(size_t)x * channels + c] = acc;
      }
    }
  }
  for (int y = 0; y < out_h; y++) {
    float *dst = out + (size_t)y * orow;
    const int *idx = cy.idx + (size_t)y * cy.taps;
    const float *wt = cy.wt + (size_t)y * cy.taps;
    for (size_t i = 0; i < orow; i++) dst[i] = 0.0f;
    for (int t = 0; t < cy.taps; t++) {
      const float *src = tmp + (size_t)idx[t] * orow;
      for (size_t i = 0; i < orow; i++) dst[i] += wt[t] * src[i];
    }
  }
  rc = 0;
done:
  contrib_free(&cx);
  contrib_free(&cy);
  free(tmp);
  return rc;
}

int dg_resize_roundtrip(float *img, int w, int h, double factor) {
  /* the sizes are rounded; the filters use the actual ratio */
  int sw = (int)lround(w / factor), sh = (int)lround(h / factor);
  if (sw < 1) sw = 1;
  if (sh < 1) sh = 1;
  if (sw == w && sh == h) return 0;
  float *small = malloc((size_t)sw * sh * 3 * sizeof *small);
  if (!small) return -1;
  int rc = dg_resize(img, w, h, 3, small, sw, sh);
  if (rc == 0) rc = dg_resize(small, sw, sh, 3, img, w, h);
  free(small);
  return rc;
}

int dg_lowres_apply(float *img, int w, int h, float level, uint64_t seed, char *msg, size_t n) {
  (void)seed, (void)msg, (void)n;
  return dg_resize_roundtrip(img, w, h, dg_lerp(DG_LOWRES_FACTOR_LO, DG_LOWRES_FACTOR_HI, level));
}
