/* rain.c - the rain class: thin streaks at one common angle (each jittered
 * a little), of seeded lengths and intensities, drawn with sub-pixel
 * accumulation into a mask, motion-blurred along the angle and added to
 * the photo.  Every streak takes the same number of draws from its own
 * stream, so a higher level adds streaks to the same rain. */
#include <math.h>
#include <stdlib.h>

#include "dg_internal.h"

int dg_rain_apply(float *img, int w, int h, float level, uint64_t seed, char *msg, size_t n) {
  (void)msg, (void)n;
  dg_rng rng;
  dg_rng_init(&rng, dg_seed_derive(seed, DG_TAG_PARAMS));
  double angle = dg_rng_range(&rng, -DG_RAIN_ANGLE_DEG, DG_RAIN_ANGLE_DEG) * DG_PI / 180.0;
  double mean_len = dg_rng_range(&rng, DG_RAIN_LENGTH_LO, DG_RAIN_LENGTH_HI);
  double blur = dg_rng_range(&rng, DG_RAIN_BLUR_LO, DG_RAIN_BLUR_HI);
  double bright = dg_rng_range(&rng, DG_RAIN_BRIGHT_LO, DG_RAIN_BRIGHT_HI);
  double density = dg_lerp(DG_RAIN_DENSITY_LO, DG_RAIN_DENSITY_HI, level);
  long count = lround(density * w * h);

  dg_kernel mask = {0};
  /* The mask is a kernel-shaped buffer centred on the image so that
   * dg_kernel_splat can draw into it; its odd size may exceed w x h by one
   * row or column, which is never read back. */
  mask.rx = w / 2;
  mask.ry = h / 2;
  int mw = 2 * mask.rx + 1, mh = 2 * mask.ry + 1;
  mask.k = calloc((size_t)mw * mh, sizeof *mask.k);
  if (!mask.k) return -1;

  dg_rng_init(&rng, dg_seed_derive(seed, DG_TAG_STREAKS));
  double margin = 1.5 * mean_len; /* streaks may enter from outside */
  for (long s = 0; s < count; s++) {
    double cx = dg_rng_range(&rng, -margin, w + margin);
    double cy = dg_rng_range(&rng, -margin, h + margin);
    double len = mean_len * dg_rng_range(&rng, 0.5, 1.5);
    double a = angle + DG_RAIN_JITTER_DEG * DG_PI / 180.0 * dg_rng_normal(&rng);
    double inten = dg_rng_range(&rng, 0.4, 1.0);
    double dx = sin(a), dy = cos(a); /* angle from vertical */
    int steps = (int)ceil(len * 2.0) + 1;
    for (int i = 0; i < steps; i++) {
      double t = len * ((double)i / (steps - 1) - 0.5);
      double x = cx + t * dx, y = cy + t * dy;
      if (x < -1.0 || y < -1.0 || x > w || y > h) continue;
      /* mask pixel (x, y) sits at offset (x - rx, y - ry) from its centre */
      dg_kernel_splat(&mask, x - mask.rx, y - mask.ry, inten * len / steps);
    }
  }

  dg_kernel line;
  int rc = -1;
  if (dg_kernel_line(&line, blur, atan2(cos(angle), sin(angle))) == 0) {
    rc = dg_convolve(mask.k, mw, mh, 1, &line);
    dg_kernel_free(&line);
  }
  if (rc == 0)
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++) {
        float m = mask.k[(size_t)y * mw + x];
        float add = (float)bright * (m < 1.0f ? m : 1.0f);
        float *px = img + ((size_t)y * w + x) * 3;
        for (int c = 0; c < 3; c++) px[c] += add;
      }
  free(mask.k);
  return rc;
}
