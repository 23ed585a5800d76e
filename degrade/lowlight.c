/* lowlight.c - the low-light class: the photo as an under-exposed shot.
 * In linear light (sRGB EOTF) the signal is scaled by the exposure factor,
 * then shot noise (Poisson, approximated by a Gaussian of variance
 * shot x signal) and read noise (signal-independent) are added per channel,
 * clipped and encoded back to sRGB.  The dark tones' steep sRGB curve is
 * what makes the noise so visible there, as in real night shots. */
#include <math.h>

#include "dg_internal.h"

void dg_lowlight_params_draw(float level, uint64_t seed, dg_lowlight_params *p) {
  dg_rng rng;
  dg_rng_init(&rng, seed);
  p->exposure = dg_lerp(DG_LOWLIGHT_EXPOSURE_LO, DG_LOWLIGHT_EXPOSURE_HI, level);
  p->shot = dg_rng_log_range(&rng, DG_LOWLIGHT_SHOT_LO, DG_LOWLIGHT_SHOT_HI);
  p->read = dg_rng_log_range(&rng, DG_LOWLIGHT_READ_LO, DG_LOWLIGHT_READ_HI);
}

void dg_lowlight_render(float *img, size_t npix, const dg_lowlight_params *p, uint64_t seed) {
  dg_rng rng;
  dg_rng_init(&rng, seed);
  double r2 = p->read * p->read;
  for (size_t i = 0; i < npix * 3; i++) {
    double s = dg_srgb_to_linear(img[i]) * p->exposure;
    double v = s + sqrt(p->shot * s + r2) * dg_rng_normal(&rng);
    img[i] = dg_linear_to_srgb((float)v);
  }
}

int dg_lowlight_apply(float *img, int w, int h, float level, uint64_t seed, char *msg, size_t n) {
  (void)msg, (void)n;
  dg_lowlight_params p;
  dg_lowlight_params_draw(level, dg_seed_derive(seed, DG_TAG_PARAMS), &p);
  dg_lowlight_render(img, (size_t)w * h, &p, dg_seed_derive(seed, DG_TAG_PIXELS));
  return 0;
}
