/* apply.c - the entry points: argument checks, class dispatch, the
 * channel-layout helper and the trainer's random draw. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg_internal.h"

void dg_msg(char *msg, size_t size, const char *fmt, ...) {
  if (!msg || !size) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, size, fmt, ap);
  va_end(ap);
}

/* Indexed by enum dg_class; clean has no function. */
static const dg_class_fn class_fns[DG_NUM_CLASSES] = {
    [DG_NOISE] = dg_noise_apply,
    [DG_GAUSSIAN_BLUR] = dg_gaussian_blur_apply,
    [DG_MOTION_BLUR] = dg_motion_blur_apply,
    [DG_DEFOCUS_BLUR] = dg_defocus_blur_apply,
    [DG_JPEG] = dg_jpeg_apply,
    [DG_HAZE] = dg_haze_apply,
    [DG_RAIN] = dg_rain_apply,
    [DG_LOW_LIGHT] = dg_lowlight_apply,
    [DG_LOW_RESOLUTION] = dg_lowres_apply,
    [DG_MIXED_REALESRGAN] = dg_mixed_realesrgan_apply,
    [DG_MIXED_LOWLIGHT] = dg_mixed_lowlight_apply,
};

uint64_t dg_class_seed(uint64_t seed, int class_index) {
  return dg_seed_derive(seed, DG_TAG_CLASS + (uint64_t)class_index);
}

static int check_args(const float *in, int w, int h, const float *out, int class_index,
                      float level, char *msg, size_t msg_size) {
  if (!in || !out) {
    dg_msg(msg, msg_size, "degrade: NULL image");
    return -1;
  }
  if (w < 1 || h < 1 || w > DG_MAX_SIDE || h > DG_MAX_SIDE) {
    dg_msg(msg, msg_size, "degrade: image size %dx%d outside 1..%d", w, h, DG_MAX_SIDE);
    return -1;
  }
  if (class_index < 0 || class_index >= DG_NUM_CLASSES) {
    dg_msg(msg, msg_size, "degrade: no class %d (0..%d)", class_index, DG_NUM_CLASSES - 1);
    return -1;
  }
  if (!(level >= 0.0f && level <= 1.0f)) {
    dg_msg(msg, msg_size, "degrade: level %g outside 0..1", (double)level);
    return -1;
  }
  return 0;
}

int dg_apply(const float *in, int w, int h, float *out, int class_index, float level,
             uint64_t seed, char *msg, size_t msg_size) {
  if (check_args(in, w, h, out, class_index, level, msg, msg_size) != 0) return -1;
  size_t n = (size_t)w * h * 3;
  if (out != in) memmove(out, in, n * sizeof *out);
  dg_clip(out, n); /* the classes may assume inputs in [0,1] */
  if (class_index == DG_CLEAN) return 0;
  if (msg && msg_size) msg[0] = '\0';
  if (class_fns[class_index](out, w, h, level, dg_class_seed(seed, class_index), msg, msg_size) !=
      0) {
    if (!msg || !msg_size || !msg[0])
      dg_msg(msg, msg_size, "degrade: %s: out of memory", dg_class_name(class_index));
    return -1;
  }
  dg_clip(out, n);
  return 0;
}

/* Runs fn on an RGB copy of a 1, 2 or 4 channel image: grey is replicated
 * to RGB and the first channel kept, alpha is copied untouched. */
typedef int (*rgb_fn)(float *rgb, int w, int h, const void *arg, char *msg, size_t msg_size);

static int on_rgb_copy(const float *in, int w, int h, int channels, float *out, rgb_fn fn,
                       const void *arg, char *msg, size_t msg_size) {
  size_t npix = (size_t)w * h;
  float *rgb = malloc(npix * 3 * sizeof *rgb);
  if (!rgb) {
    dg_msg(msg, msg_size, "degrade: out of memory");
    return -1;
  }
  int colour = channels >= 3;
  for (size_t i = 0; i < npix; i++)
    for (int c = 0; c < 3; c++) rgb[i * 3 + c] = in[i * channels + (colour ? c : 0)];
  int rc = fn(rgb, w, h, arg, msg, msg_size);
  if (rc == 0)
    for (size_t i = 0; i < npix; i++) {
      for (int c = 0; c < (colour ? 3 : 1); c++) out[i * channels + c] = rgb[i * 3 + c];
      if (channels % 2 == 0) out[i * channels + channels - 1] = in[i * channels + channels - 1];
    }
  free(rgb);
  return rc;
}

typedef struct class_arg {
  int class_index;
  float level;
  uint64_t seed;
} class_arg;

static int class_on_rgb(float *rgb, int w, int h, const void *arg, char *msg, size_t msg_size) {
  const class_arg *a = arg;
  return dg_apply(rgb, w, h, rgb, a->class_index, a->level, a->seed, msg, msg_size);
}

int dg_apply_channels(const float *in, int w, int h, int channels, float *out,
                      int class_index, float level, uint64_t seed, char *msg, size_t msg_size) {
  if (channels == 3) return dg_apply(in, w, h, out, class_index, level, seed, msg, msg_size);
  if (channels < 1 || channels > 4) {
    dg_msg(msg, msg_size, "degrade: %d channels (expected 1..4)", channels);
    return -1;
  }
  if (check_args(in, w, h, out, class_index, level, msg, msg_size) != 0) return -1;
  class_arg a = {class_index, level, seed};
  return on_rgb_copy(in, w, h, channels, out, class_on_rgb, &a, msg, msg_size);
}

typedef struct awgn_arg {
  double sigma255;
  uint64_t seed;
} awgn_arg;

/* The noise class's colour Gaussian variant at an exact sigma, drawing
 * from the same pixel stream as dg_apply(DG_NOISE, ..., seed). */
static int awgn_on_rgb(float *rgb, int w, int h, const void *arg, char *msg, size_t msg_size) {
  (void)msg, (void)msg_size;
  const awgn_arg *a = arg;
  size_t n = (size_t)w * h * 3;
  dg_noise_params p = {0};
  p.sigma = a->sigma255 / 255.0;
  dg_clip(rgb, n);
  dg_noise_add(rgb, (size_t)w * h, &p,
               dg_seed_derive(dg_class_seed(a->seed, DG_NOISE), DG_TAG_PIXELS));
  dg_clip(rgb, n);
  return 0;
}

int dg_apply_gaussian_noise(const float *in, int w, int h, int channels, float *out,
                            double sigma255, uint64_t seed, char *msg, size_t msg_size) {
  if (check_args(in, w, h, out, DG_NOISE, 0.0f, msg, msg_size) != 0) return -1;
  if (channels < 1 || channels > 4 || !(sigma255 >= 0.0 && sigma255 <= 255.0)) {
    dg_msg(msg, msg_size, "degrade: %d channels (expected 1..4) or sigma %g outside 0..255",
           channels, sigma255);
    return -1;
  }
  awgn_arg a = {sigma255, seed};
  if (channels == 3) {
    if (out != in) memmove(out, in, (size_t)w * h * 3 * sizeof *out);
    return awgn_on_rgb(out, w, h, &a, msg, msg_size);
  }
  return on_rgb_copy(in, w, h, channels, out, awgn_on_rgb, &a, msg, msg_size);
}

void dg_random_draw(uint64_t seed, int *class_out, float *level_out) {
  dg_rng rng;
  dg_rng_init(&rng, dg_seed_derive(seed, DG_TAG_RANDOM));
  *class_out = (int)(dg_rng_uniform(&rng) * DG_NUM_CLASSES);
  float level = (float)dg_rng_uniform(&rng);
  *level_out = level > 1.0f ? 1.0f : level; /* a double just below 1 may round up */
}

int dg_apply_random(const float *in, int w, int h, float *out, uint64_t seed, int *class_out,
                    float *level_out, char *msg, size_t msg_size) {
  int class_index;
  float level;
  dg_random_draw(seed, &class_index, &level);
  if (class_out) *class_out = class_index;
  if (level_out) *level_out = level;
  return dg_apply(in, w, h, out, class_index, level, seed, msg, msg_size);
}
