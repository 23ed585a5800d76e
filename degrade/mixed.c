/* mixed.c - the two mixed classes.  Each stage's strength is
 * s = level x U(DG_MIXED_STAGE_LO, 1) from the seed, and each stage's
 * parameter maps linearly from s, so the level still orders the damage
 * while the balance between stages varies from seed to seed.  Every stage
 * draws from its own stream. */
#include <math.h>
#include <stdlib.h>

#include "dg_internal.h"

static void stage_strengths(float level, uint64_t seed, double *s, int n) {
  dg_rng rng;
  dg_rng_init(&rng, dg_seed_derive(seed, DG_TAG_PARAMS));
  for (int i = 0; i < n; i++) s[i] = level * dg_rng_range(&rng, DG_MIXED_STAGE_LO, 1.0);
}

static uint64_t stage_seed(uint64_t seed, int stage) {
  return dg_seed_derive(seed, DG_TAG_STAGE + (uint64_t)stage);
}

/* Real-ESRGAN's first-order pipeline: blur -> down-scale -> noise -> JPEG,
 * then (since our network restores at the input size) bicubic back up. */
int dg_mixed_realesrgan_apply(float *img, int w, int h, float level, uint64_t seed, char *msg,
                              size_t n) {
  double s[4];
  stage_strengths(level, seed, s, 4);
  dg_gauss_params gp;
  dg_gauss_params_draw(dg_lerp(DG_MIX_SIGMA_LO, DG_MIX_SIGMA_HI, s[0]), stage_seed(seed, 0), &gp);
  if (dg_gauss_blur(img, w, h, &gp) != 0) return -1;

  double factor = dg_lerp(DG_MIX_FACTOR_LO, DG_MIX_FACTOR_HI, s[1]);
  int sw = (int)lround(w / factor), sh = (int)lround(h / factor);
  if (sw < 1) sw = 1;
  if (sh < 1) sh = 1;
  float *small = img;
  if (sw != w || sh != h) {
    small = malloc((size_t)sw * sh * 3 * sizeof *small);
    if (!small || dg_resize(img, w, h, 3, small, sw, sh) != 0) {
      free(small);
      return -1;
    }
  }
  dg_noise_params np;
  dg_noise_params_draw(dg_lerp(DG_MIX_NOISE_LO, DG_MIX_NOISE_HI, s[2]), stage_seed(seed, 2), &np);
  dg_noise_add(small, (size_t)sw * sh, &np, stage_seed(seed, 12));
  int quality = (int)lround(dg_lerp(DG_MIX_QUALITY_LO, DG_MIX_QUALITY_HI, s[3]));
  int rc = dg_jpeg_roundtrip(small, sw, sh, quality, msg, n);
  if (small != img) {
    if (rc == 0) rc = dg_resize(small, sw, sh, 3, img, w, h);
    free(small);
  }
  return rc;
}

/* A night shot: blur (camera shake or slight defocus/Gaussian) before the
 * sensor, then under-exposure with amplified shot and read noise. */
int dg_mixed_lowlight_apply(float *img, int w, int h, float level, uint64_t seed, char *msg,
                            size_t n) {
  (void)msg, (void)n;
  double s[3];
  stage_strengths(level, seed, s, 3);
  dg_rng rng;
  dg_rng_init(&rng, stage_seed(seed, 0));
  int motion = dg_rng_bernoulli(&rng, DG_MIXLL_MOTION_PROB);
  double turn = dg_rng_range(&rng, DG_MOTION_TURN_LO, DG_MOTION_TURN_HI);
  int rc;
  if (motion) {
    dg_kernel k;
    if (dg_kernel_motion(&k, dg_lerp(DG_MIXLL_LENGTH_LO, DG_MIXLL_LENGTH_HI, s[0]), turn,
                         stage_seed(seed, 10)) != 0)
      return -1;
    rc = dg_convolve(img, w, h, 3, &k);
    dg_kernel_free(&k);
  } else {
    dg_gauss_params gp;
    dg_gauss_params_draw(dg_lerp(DG_MIXLL_SIGMA_LO, DG_MIXLL_SIGMA_HI, s[0]), stage_seed(seed, 10),
                         &gp);
    rc = dg_gauss_blur(img, w, h, &gp);
  }
  if (rc != 0) return -1;
  dg_lowlight_params lp;
  dg_lowlight_params_draw((float)s[1], stage_seed(seed, 1), &lp);
  double gain = dg_lerp(DG_MIXLL_NOISE_GAIN_LO, DG_MIXLL_NOISE_GAIN_HI, s[2]);
  lp.shot *= gain * gain; /* gain scales standard deviations */
  lp.read *= gain;
  dg_lowlight_render(img, (size_t)w * h, &lp, stage_seed(seed, 11));
  return 0;
}
