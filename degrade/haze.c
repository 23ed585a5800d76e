/* haze.c - the haze class: the atmospheric scattering model
 * I = J t + A (1 - t), t = exp(-beta d), applied in linear light (the model
 * is one of radiance; mixing in encoded values would make the haze too
 * dark in the shadows).  d is a smooth depth proxy: a vertical gradient
 * (far at the top, as in most outdoor photos), tilted a little, blended
 * with two octaves of low-frequency value noise, scaled to
 * [DG_HAZE_DEPTH_NEAR, 1].  The field is defined in image-relative
 * coordinates, so a crop of any size gets the same kind of haze. */
#include <math.h>
#include <stdlib.h>

#include "dg_internal.h"

#define GRID 9 /* value-noise nodes per side: octaves of 4 and 8 cells */

static float smooth(float t) { return t * t * (3.0f - 2.0f * t); }

/* Value noise on a (cells + 1)^2 grid of node values, u, v in [0,1]. */
static float value_noise(const float *nodes, int cells, float u, float v) {
  float fx = u * cells, fy = v * cells;
  int ix = (int)fx, iy = (int)fy;
  if (ix >= cells) ix = cells - 1;
  if (iy >= cells) iy = cells - 1;
  float ax = smooth(fx - ix), ay = smooth(fy - iy);
  const float *r0 = nodes + iy * GRID, *r1 = r0 + GRID;
  float top = r0[ix] + ax * (r0[ix + 1] - r0[ix]);
  float bot = r1[ix] + ax * (r1[ix + 1] - r1[ix]);
  return top + ay * (bot - top);
}

int dg_haze_apply(float *img, int w, int h, float level, uint64_t seed, char *msg, size_t n) {
  (void)msg, (void)n;
  dg_rng rng;
  dg_rng_init(&rng, dg_seed_derive(seed, DG_TAG_PARAMS));
  double beta = dg_lerp(DG_HAZE_BETA_LO, DG_HAZE_BETA_HI, level);
  double a = dg_rng_range(&rng, DG_HAZE_AIRLIGHT_LO, DG_HAZE_AIRLIGHT_HI);
  float air[3];
  for (int c = 0; c < 3; c++) {
    double v = a * (1.0 + dg_rng_range(&rng, -DG_HAZE_TINT, DG_HAZE_TINT));
    air[c] = dg_srgb_to_linear((float)(v < 1.0 ? v : 1.0));
  }
  double tilt = dg_rng_range(&rng, -DG_HAZE_TILT_DEG, DG_HAZE_TILT_DEG) * DG_PI / 180.0;
  float gs = (float)sin(tilt), gc = (float)cos(tilt);

  float oct1[GRID * GRID], oct2[GRID * GRID];
  dg_rng_init(&rng, dg_seed_derive(seed, DG_TAG_FIELD));
  for (int i = 0; i < GRID * GRID; i++) oct1[i] = (float)dg_rng_uniform(&rng);
  for (int i = 0; i < GRID * GRID; i++) oct2[i] = (float)dg_rng_uniform(&rng);

  float *depth = malloc((size_t)w * h * sizeof *depth);
  if (!depth) return -1;
  float lo = INFINITY, hi = -INFINITY;
  for (int y = 0; y < h; y++) {
    float v = (y + 0.5f) / h;
    for (int x = 0; x < w; x++) {
      float u = (x + 0.5f) / w;
      float grad = 0.5f - ((u - 0.5f) * gs + (v - 0.5f) * gc); /* 1 at the top */
      float noise = 0.7f * value_noise(oct1, 4, u, v) + 0.3f * value_noise(oct2, 8, u, v);
      float d = 0.65f * grad + 0.35f * noise;
      depth[(size_t)y * w + x] = d;
      lo = fminf(lo, d);
      hi = fmaxf(hi, d);
    }
  }
  float span = hi - lo;
  for (size_t i = 0; i < (size_t)w * h; i++) {
    float d = span > 1e-6f ? (depth[i] - lo) / span : 0.5f;
    d = (float)DG_HAZE_DEPTH_NEAR + (1.0f - (float)DG_HAZE_DEPTH_NEAR) * d;
    float t = expf(-(float)beta * d);
    float *px = img + 3 * i;
    for (int c = 0; c < 3; c++)
      px[c] = dg_linear_to_srgb(dg_srgb_to_linear(px[c]) * t + air[c] * (1.0f - t));
  }
  free(depth);
  return 0;
}
