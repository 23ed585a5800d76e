/* noise.c - the noise class: additive Gaussian or Poisson-Gaussian noise
 * on the encoded values (Real-ESRGAN's model; sensor-faithful noise in
 * linear light is the low-light class's job).  The Poisson-Gaussian
 * variance sigma^2 (rho + (1 - rho) x / 0.5) equals the labelled sigma^2 at
 * mid-grey, shrinks towards black and grows towards white. */
#include <math.h>

#include "dg_internal.h"

void dg_noise_params_draw(double sigma255, uint64_t seed, dg_noise_params *p) {
  dg_rng rng;
  dg_rng_init(&rng, seed);
  p->sigma = sigma255 / 255.0;
  p->poisson = dg_rng_bernoulli(&rng, DG_NOISE_POISSON_PROB);
  p->grey = dg_rng_bernoulli(&rng, DG_NOISE_GREY_PROB);
  p->read_share = dg_rng_range(&rng, DG_NOISE_READ_SHARE_LO, DG_NOISE_READ_SHARE_HI);
}

void dg_noise_add(float *img, size_t npix, const dg_noise_params *p, uint64_t seed) {
  dg_rng rng;
  dg_rng_init(&rng, seed);
  double s2 = p->sigma * p->sigma, rho = p->read_share;
  for (size_t i = 0; i < npix; i++) {
    float *px = img + 3 * i;
    /* grey noise scales with the pixel's mean so that it stays grey */
    double mean = (px[0] + px[1] + px[2]) / 3.0, z = 0.0;
    for (int c = 0; c < 3; c++) {
      if (c == 0 || !p->grey) z = dg_rng_normal(&rng);
      double sd = p->sigma;
      if (p->poisson) {
        double x = p->grey ? mean : px[c];
        if (x < 0.0) x = 0.0;
        sd = sqrt(s2 * (rho + (1.0 - rho) * x / 0.5));
      }
      px[c] = (float)(px[c] + sd * z);
    }
  }
}

static void class_params(float level, uint64_t class_seed, dg_noise_params *p) {
  dg_noise_params_draw(dg_lerp(DG_NOISE_SIGMA_LO, DG_NOISE_SIGMA_HI, level),
                       dg_seed_derive(class_seed, DG_TAG_PARAMS), p);
}

void dg_noise_class_params(float level, uint64_t seed, dg_noise_params *p) {
  class_params(level, dg_class_seed(seed, DG_NOISE), p);
}

int dg_noise_apply(float *img, int w, int h, float level, uint64_t seed, char *msg, size_t n) {
  (void)msg, (void)n;
  dg_noise_params p;
  class_params(level, seed, &p);
  dg_noise_add(img, (size_t)w * h, &p, dg_seed_derive(seed, DG_TAG_PIXELS));
  return 0;
}
