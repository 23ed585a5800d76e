/* motion.c - camera-shake kernels: a random walk with momentum in the
 * heading (smooth curves, occasional wiggles) and in the speed (so the
 * exposure piles up where the camera slows down), rasterised with
 * sub-pixel accumulation.  The walk's shape depends only on the seed and is
 * then scaled to the requested path length, so a higher level is the same
 * shake, longer. */
#include <math.h>
#include <stdlib.h>

#include "dg_internal.h"

#define MOTION_STEPS 64
#define MOTION_MOMENTUM 0.8

int dg_kernel_motion(dg_kernel *k, double length, double turn, uint64_t seed) {
  k->k = NULL;
  if (!(length >= 0.0) || length > 400.0) return -1;
  dg_rng rng;
  dg_rng_init(&rng, seed);
  double px[MOTION_STEPS + 1], py[MOTION_STEPS + 1];
  double heading = dg_rng_range(&rng, 0.0, 2.0 * DG_PI), omega = 0.0, speed = 0.0;
  double path = 0.0;
  px[0] = py[0] = 0.0;
  for (int i = 1; i <= MOTION_STEPS; i++) {
    omega = MOTION_MOMENTUM * omega + turn * dg_rng_normal(&rng);
    speed = MOTION_MOMENTUM * speed + 0.3 * dg_rng_normal(&rng);
    heading += omega;
    double step = exp(speed); /* always forward, speed varies ~ x0.5..x2 */
    px[i] = px[i - 1] + step * cos(heading);
    py[i] = py[i - 1] + step * sin(heading);
    path += step;
  }
  double scale = length / path;
  /* Centre on the centroid of the (equal-time) samples, so the blur moves
   * no edge on average. */
  double cx = 0.0, cy = 0.0;
  for (int i = 0; i < MOTION_STEPS; i++) {
    cx += 0.5 * (px[i] + px[i + 1]);
    cy += 0.5 * (py[i] + py[i + 1]);
  }
  cx /= MOTION_STEPS;
  cy /= MOTION_STEPS;
  double ext = 0.0;
  for (int i = 0; i <= MOTION_STEPS; i++) {
    px[i] = (px[i] - cx) * scale;
    py[i] = (py[i] - cy) * scale;
    ext = fmax(ext, fmax(fabs(px[i]), fabs(py[i])));
  }
  int r = (int)ceil(ext) + 1;
  k->rx = k->ry = r;
  k->k = calloc((size_t)(2 * r + 1) * (size_t)(2 * r + 1), sizeof *k->k);
  if (!k->k) return -1;
  /* Each step takes the same time: its weight is spread over sub-samples
   * at most a quarter pixel apart. */
  for (int i = 0; i < MOTION_STEPS; i++) {
    double dx = px[i + 1] - px[i], dy = py[i + 1] - py[i];
    int n = (int)ceil(sqrt(dx * dx + dy * dy) * 4.0) + 1;
    for (int j = 0; j < n; j++) {
      double t = (j + 0.5) / n;
      dg_kernel_splat(k, px[i] + t * dx, py[i] + t * dy, 1.0 / n);
    }
  }
  dg_kernel_normalize(k);
  return 0;
}
