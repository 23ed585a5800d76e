/* blur.c - the three blur classes: level -> kernel size, seed -> kernel
 * shape, then one convolution. */
#include "dg_internal.h"

void dg_gauss_params_draw(double sigma, uint64_t seed, dg_gauss_params *p) {
  dg_rng rng;
  dg_rng_init(&rng, seed);
  /* All three draws are made either way, so the rotation does not depend
   * on whether the kernel came out anisotropic. */
  int aniso = dg_rng_bernoulli(&rng, DG_GBLUR_ANISO_PROB);
  double ratio = dg_rng_range(&rng, DG_GBLUR_RATIO_LO, DG_GBLUR_RATIO_HI);
  double theta = dg_rng_range(&rng, 0.0, DG_PI);
  p->sx = sigma;
  p->sy = aniso ? sigma * ratio : sigma;
  p->theta = aniso ? theta : 0.0;
}

int dg_gauss_blur(float *img, int w, int h, const dg_gauss_params *p) {
  dg_kernel k;
  if (p->sx == p->sy) {
    /* isotropic: separable, 2 (2r+1) taps instead of (2r+1)^2 */
    for (int vertical = 0; vertical < 2; vertical++) {
      if (dg_kernel_gaussian_1d(&k, p->sx, vertical) != 0) return -1;
      int rc = dg_convolve(img, w, h, 3, &k);
      dg_kernel_free(&k);
      if (rc != 0) return -1;
    }
    return 0;
  }
  if (dg_kernel_gaussian(&k, p->sx, p->sy, p->theta) != 0) return -1;
  int rc = dg_convolve(img, w, h, 3, &k);
  dg_kernel_free(&k);
  return rc;
}

int dg_gaussian_blur_apply(float *img, int w, int h, float level, uint64_t seed, char *msg,
                           size_t n) {
  (void)msg, (void)n;
  dg_gauss_params p;
  dg_gauss_params_draw(dg_lerp(DG_GBLUR_SIGMA_LO, DG_GBLUR_SIGMA_HI, level),
                       dg_seed_derive(seed, DG_TAG_KERNEL), &p);
  return dg_gauss_blur(img, w, h, &p);
}

int dg_motion_blur_apply(float *img, int w, int h, float level, uint64_t seed, char *msg,
                         size_t n) {
  (void)msg, (void)n;
  dg_rng rng;
  dg_rng_init(&rng, dg_seed_derive(seed, DG_TAG_PARAMS));
  double turn = dg_rng_range(&rng, DG_MOTION_TURN_LO, DG_MOTION_TURN_HI);
  dg_kernel k;
  if (dg_kernel_motion(&k, dg_lerp(DG_MOTION_LENGTH_LO, DG_MOTION_LENGTH_HI, level), turn,
                       dg_seed_derive(seed, DG_TAG_KERNEL)) != 0)
    return -1;
  int rc = dg_convolve(img, w, h, 3, &k);
  dg_kernel_free(&k);
  return rc;
}

int dg_defocus_blur_apply(float *img, int w, int h, float level, uint64_t seed, char *msg,
                          size_t n) {
  (void)seed, (void)msg, (void)n;
  dg_kernel k;
  if (dg_kernel_disk(&k, dg_lerp(DG_DEFOCUS_RADIUS_LO, DG_DEFOCUS_RADIUS_HI, level)) != 0)
    return -1;
  int rc = dg_convolve(img, w, h, 3, &k);
  dg_kernel_free(&k);
  return rc;
}
