/* dg_internal.h - what the degradation classes share, and what the tests
 * reach into: the RNG, kernels, convolution, per-class parameter draws and
 * the constants behind every documented range (the registry's table and the
 * code read the same macros, so docs and behaviour cannot drift apart). */
#ifndef MASKDCPT_DG_INTERNAL_H
#define MASKDCPT_DG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "degrade.h"

#define DG_PI 3.14159265358979323846

/* ------------------------------------------------------------ ranges */

/* noise: sigma on the 0-255 scale, at mid-grey for the Poisson-Gaussian
 * variant (variance = sigma^2 (rho + (1 - rho) x / 0.5)). */
#define DG_NOISE_SIGMA_LO 5.0
#define DG_NOISE_SIGMA_HI 50.0
#define DG_NOISE_POISSON_PROB (1.0 / 3.0)
#define DG_NOISE_GREY_PROB 0.4 /* Real-ESRGAN's gray_noise_prob */
#define DG_NOISE_READ_SHARE_LO 0.05
#define DG_NOISE_READ_SHARE_HI 0.25

/* gaussian-blur: the larger sigma (px); the smaller is a seeded fraction of
 * it for anisotropic kernels. */
#define DG_GBLUR_SIGMA_LO 0.5
#define DG_GBLUR_SIGMA_HI 3.0
#define DG_GBLUR_ANISO_PROB 0.5
#define DG_GBLUR_RATIO_LO 0.25
#define DG_GBLUR_RATIO_HI 1.0

/* motion-blur: trajectory path length (px). */
#define DG_MOTION_LENGTH_LO 5.0
#define DG_MOTION_LENGTH_HI 25.0
#define DG_MOTION_TURN_LO 0.01 /* heading noise per step (rad), by seed */
#define DG_MOTION_TURN_HI 0.05

/* defocus-blur: disk radius (px). */
#define DG_DEFOCUS_RADIUS_LO 1.0
#define DG_DEFOCUS_RADIUS_HI 6.0

/* jpeg: quality at level 0 and 1. */
#define DG_JPEG_QUALITY_LO 60
#define DG_JPEG_QUALITY_HI 10

/* haze: extinction coefficient over a depth proxy in [DEPTH_NEAR, 1]. */
#define DG_HAZE_BETA_LO 0.1
#define DG_HAZE_BETA_HI 2.0
#define DG_HAZE_AIRLIGHT_LO 0.7
#define DG_HAZE_AIRLIGHT_HI 1.0
#define DG_HAZE_TINT 0.04 /* per-channel airlight change, +- */
#define DG_HAZE_DEPTH_NEAR 0.1
#define DG_HAZE_TILT_DEG 15.0

/* rain: streaks per pixel of image area. */
#define DG_RAIN_DENSITY_LO 0.0006
#define DG_RAIN_DENSITY_HI 0.006
#define DG_RAIN_ANGLE_DEG 30.0 /* common angle within +- this of vertical */
#define DG_RAIN_JITTER_DEG 2.0 /* per-streak angle s.d. */
#define DG_RAIN_LENGTH_LO 8.0  /* mean streak length (px), by seed */
#define DG_RAIN_LENGTH_HI 30.0
#define DG_RAIN_BLUR_LO 2.0 /* motion blur along the streaks (px) */
#define DG_RAIN_BLUR_HI 6.0
#define DG_RAIN_BRIGHT_LO 0.5
#define DG_RAIN_BRIGHT_HI 0.9

/* low-light: exposure factor in linear light; shot-noise variance =
 * SHOT x signal, read-noise s.d. READ (linear, log-uniform by seed). */
#define DG_LOWLIGHT_EXPOSURE_LO 0.4
#define DG_LOWLIGHT_EXPOSURE_HI 0.05
#define DG_LOWLIGHT_SHOT_LO 2e-4
#define DG_LOWLIGHT_SHOT_HI 2e-3
#define DG_LOWLIGHT_READ_LO 5e-4
#define DG_LOWLIGHT_READ_HI 3e-3

/* low-resolution: down-scale factor. */
#define DG_LOWRES_FACTOR_LO 2.0
#define DG_LOWRES_FACTOR_HI 4.0

/* mixed classes: each stage's strength s = level x U(STAGE_LO, 1) (seed);
 * a stage parameter goes linearly from its s = 0 to its s = 1 value. */
#define DG_MIXED_STAGE_LO 0.6
#define DG_MIX_SIGMA_LO 0.2
#define DG_MIX_SIGMA_HI 3.0
#define DG_MIX_FACTOR_LO 1.0
#define DG_MIX_FACTOR_HI 4.0
#define DG_MIX_NOISE_LO 1.0
#define DG_MIX_NOISE_HI 30.0
#define DG_MIX_QUALITY_LO 95
#define DG_MIX_QUALITY_HI 30
/* mixed-lowlight */
#define DG_MIXLL_MOTION_PROB 0.5
#define DG_MIXLL_SIGMA_LO 0.3
#define DG_MIXLL_SIGMA_HI 2.0
#define DG_MIXLL_LENGTH_LO 3.0
#define DG_MIXLL_LENGTH_HI 15.0
#define DG_MIXLL_NOISE_GAIN_LO 1.0 /* multiplies low-light's shot and read noise */
#define DG_MIXLL_NOISE_GAIN_HI 4.0

/* Linear map of level (or stage strength) t in [0,1] from lo to hi. */
static inline double dg_lerp(double lo, double hi, double t) { return lo + (hi - lo) * t; }

/* -------------------------------------------------------------- rng */

/* xoshiro256** seeded by splitmix64; a per-purpose stream comes from
 * dg_seed_derive(seed, tag) so that one part's draws never shift another's
 * (e.g. more rain streaks at a higher level leave the angle unchanged). */
typedef struct dg_rng {
  uint64_t s[4];
  int has_spare;
  double spare;
} dg_rng;

/* Stream tags. */
enum {
  DG_TAG_CLASS = 1, /* + class index: each class's own seed */
  DG_TAG_PARAMS = 100,
  DG_TAG_PIXELS,
  DG_TAG_KERNEL,
  DG_TAG_FIELD,
  DG_TAG_STREAKS,
  DG_TAG_RANDOM,
  DG_TAG_STAGE = 200 /* + stage number in the mixed classes */
};

uint64_t dg_seed_derive(uint64_t seed, uint64_t tag);
void dg_rng_init(dg_rng *r, uint64_t seed);
uint64_t dg_rng_next(dg_rng *r);
double dg_rng_uniform(dg_rng *r); /* [0,1) */
double dg_rng_range(dg_rng *r, double lo, double hi);
double dg_rng_log_range(dg_rng *r, double lo, double hi); /* log-uniform */
double dg_rng_normal(dg_rng *r);                          /* N(0,1) */
int dg_rng_bernoulli(dg_rng *r, double p);

/* ------------------------------------------------------------ colour */

float dg_srgb_to_linear(float v); /* sRGB EOTF; v clamped to [0,1] */
float dg_linear_to_srgb(float v); /* inverse; v clamped to [0,1] */
/* Clamps to [0,1], NaN to 0; values inside are left bit-exact. */
void dg_clip(float *v, size_t n);

/* ----------------------------------------------------------- kernels */

/* A (2ry+1) x (2rx+1) kernel, row-major, centred, summing to 1. */
typedef struct dg_kernel {
  int rx, ry;
  float *k;
} dg_kernel;

void dg_kernel_free(dg_kernel *k);
/* Rotated Gaussian: sigma sx along the angle theta (rad), sy across it. */
int dg_kernel_gaussian(dg_kernel *k, double sx, double sy, double theta);
/* One axis of an isotropic Gaussian: a 1 x (2r+1) row, or a column when
 * vertical; a row pass then a column pass equal the 2-D kernel. */
int dg_kernel_gaussian_1d(dg_kernel *k, double sigma, int vertical);
/* Disk of the given radius, pixels weighted by covered area. */
int dg_kernel_disk(dg_kernel *k, double radius);
/* Straight segment of the given length through the centre at angle (rad,
 * 0 = along +x), sub-pixel accumulated. */
int dg_kernel_line(dg_kernel *k, double length, double angle);
/* Camera-shake kernel: a seeded random walk with momentum (heading noise
 * `turn` rad per step) scaled to path length `length` px. */
int dg_kernel_motion(dg_kernel *k, double length, double turn, uint64_t seed);
/* Accumulates weight wt at (x, y) relative to the centre, bilinearly. */
void dg_kernel_splat(dg_kernel *k, double x, double y, double wt);
/* Scales the weights to sum to 1 (a zero kernel becomes the identity). */
void dg_kernel_normalize(dg_kernel *k);

/* Reflect-101 index of i in [0, n) (periodic when |i| exceeds n). */
int dg_reflect_index(int i, int n);
/* In-place convolution of a w x h x c image with reflected borders. */
int dg_convolve(float *img, int w, int h, int c, const dg_kernel *k);

/* ------------------------------------------------------- blur params */

typedef struct dg_gauss_params {
  double sx, sy, theta;
} dg_gauss_params;
/* Isotropic, or (DG_GBLUR_ANISO_PROB) anisotropic with a seeded ratio and
 * rotation; sigma is the larger axis. */
void dg_gauss_params_draw(double sigma, uint64_t seed, dg_gauss_params *p);
int dg_gauss_blur(float *img, int w, int h, const dg_gauss_params *p);

/* ------------------------------------------------------------- noise */

typedef struct dg_noise_params {
  double sigma;      /* 0..1 scale; at mid-grey for Poisson-Gaussian */
  int poisson;       /* variance grows with the signal */
  int grey;          /* same noise in all three channels */
  double read_share; /* rho: signal-independent share of the variance at mid-grey */
} dg_noise_params;
/* sigma255 on the 0-255 scale; variant choices from the seed. */
void dg_noise_params_draw(double sigma255, uint64_t seed, dg_noise_params *p);
void dg_noise_add(float *img, size_t npix, const dg_noise_params *p, uint64_t seed);
/* The parameters dg_apply(DG_NOISE, level, seed) uses (seed = the caller's). */
void dg_noise_class_params(float level, uint64_t seed, dg_noise_params *p);

/* -------------------------------------------------------------- jpeg */

int dg_jpeg_quality(float level);
/* Encodes (quality, 4:2:0, islow DCT) into a malloc'd buffer. */
int dg_jpeg_encode(const float *img, int w, int h, int quality, unsigned char **data, size_t *size,
                   char *msg, size_t msg_size);
/* Decodes a w x h RGB JPEG into img (values k/255). */
int dg_jpeg_decode(const unsigned char *data, size_t size, float *img, int w, int h, char *msg,
                   size_t msg_size);
int dg_jpeg_roundtrip(float *img, int w, int h, int quality, char *msg, size_t msg_size);

/* ---------------------------------------------------------- low-light */

typedef struct dg_lowlight_params {
  double exposure, shot, read;
} dg_lowlight_params;
void dg_lowlight_params_draw(float level, uint64_t seed, dg_lowlight_params *p);
void dg_lowlight_render(float *img, size_t npix, const dg_lowlight_params *p, uint64_t seed);

/* ------------------------------------------------------------ resize */

/* Down-scales by `factor` (>= 1) and back up to w x h, in place. */
int dg_resize_roundtrip(float *img, int w, int h, double factor);

/* ----------------------------------------------------------- classes */

/* In place on a w x h x 3 image; seed is already the class's own. */
typedef int (*dg_class_fn)(float *img, int w, int h, float level, uint64_t seed, char *msg,
                           size_t msg_size);

int dg_noise_apply(float *img, int w, int h, float level, uint64_t seed, char *msg, size_t n);
int dg_gaussian_blur_apply(float *img, int w, int h, float level, uint64_t seed, char *msg,
                           size_t n);
int dg_motion_blur_apply(float *img, int w, int h, float level, uint64_t seed, char *msg, size_t n);
int dg_defocus_blur_apply(float *img, int w, int h, float level, uint64_t seed, char *msg,
                          size_t n);
int dg_jpeg_apply(float *img, int w, int h, float level, uint64_t seed, char *msg, size_t n);
int dg_haze_apply(float *img, int w, int h, float level, uint64_t seed, char *msg, size_t n);
int dg_rain_apply(float *img, int w, int h, float level, uint64_t seed, char *msg, size_t n);
int dg_lowlight_apply(float *img, int w, int h, float level, uint64_t seed, char *msg, size_t n);
int dg_lowres_apply(float *img, int w, int h, float level, uint64_t seed, char *msg, size_t n);
int dg_mixed_realesrgan_apply(float *img, int w, int h, float level, uint64_t seed, char *msg,
                              size_t n);
int dg_mixed_lowlight_apply(float *img, int w, int h, float level, uint64_t seed, char *msg,
                            size_t n);

/* A class's own seed, derived from the caller's. */
uint64_t dg_class_seed(uint64_t seed, int class_index);

/* snprintf into msg when it is not NULL. */
void dg_msg(char *msg, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif /* MASKDCPT_DG_INTERNAL_H */
