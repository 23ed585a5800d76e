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

int dg_apply_channels(const float *in, int w, int h, int channels, float *out,
                      int class_index, float level, uint64_t seed, char *msg, size_t msg_size) {
  if (channels == 3) return dg_apply(in, w, h, out, class_index, level, seed, msg, msg_size);
  if (channels < 1 || channels > 4) {
    dg_msg(msg, msg_size, "degrade: %d channels (expected 1..4)", channels);
    return -1;
  }
  if (check_args(in, w, h, out, class_index, level, msg, msg_size) != 0) return -1;
  size_t npix = (size_t)w * h;
  float *rgb = malloc(npix * 3 * sizeof *rgb);
  if (!rgb) {
    dg_msg(msg, msg_size, "degrade: out of memory");
    return -1;
  }
  int colour = channels >= 3;
  for (size_t i = 0; i < npix; i++)
    for (int c = 0; c < 3; c++) rgb[i * 3 + c] = in[i * channels + (colour ? c : 0)];
  int rc = dg_apply(rgb, w, h, rgb, class_index, level, seed, msg, msg_size);
  if (rc == 0)
    for (size_t i = 0; i < npix; i++) {
      for (int c = 0; c < (colour ? 3 : 1); c++) out[i * channels + c] = rgb[i * 3 + c];
      if (channels % 2 == 0) out[i * channels + channels - 1] = in[i * channels + channels - 1];
    }
  free(rgb);
  return rc;
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
