/* test_util.h - small helpers shared by the core's tests: a check macro
 * with a pass/fail count, temporary paths and seeded random models. */
#ifndef MDC_TEST_UTIL_H
#define MDC_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maskdcpt.h"
#include "weights.h"

static int tu_passed, tu_failed;

#define CHECK(cond, ...)                                              \
  do {                                                                \
    if (cond) {                                                       \
      tu_passed++;                                                    \
    } else {                                                          \
      tu_failed++;                                                    \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                   \
      fputc('\n', stderr);                                            \
    }                                                                 \
  } while (0)

static inline int tu_finish(void) {
  printf("%d passed, %d failed\n", tu_passed, tu_failed);
  return tu_failed ? 1 : 0;
}

static inline void tu_tmp_path(char *buf, size_t size, const char *name) {
  const char *dir = getenv("MASKDCPT_TEST_TMP");
  snprintf(buf, size, "%s/%s", dir && *dir ? dir : "/tmp", name);
}

/* A small architecture: width w, `levels` levels of one block each. */
static inline void tu_small_arch(mdc_arch *a, int width, int levels, int window) {
  memset(a, 0, sizeof *a);
  a->width = width;
  a->levels = levels;
  for (int l = 0; l < levels; l++) a->enc_blocks[l] = a->dec_blocks[l] = 1;
  a->middle_blocks = 1;
  a->num_classes = 4;
  const char *names[4] = {"clean", "noise", "blur", "jpeg"};
  for (int i = 0; i < 4; i++) snprintf(a->class_names[i], MDC_MAX_CLASS_NAME, "%s", names[i]);
  a->cls_hidden = 16;
  a->sca_window = window;
  a->norm_eps = 1e-6f;
}

/* Writes a seeded random model, with one metadata entry when `key` is not
 * NULL and its tensors changed by `edit` when not NULL, to a temporary file
 * and loads it. */
static inline maskdcpt_model *tu_random_model_edit(const mdc_arch *a, uint64_t seed,
                                                   float residual, const char *file,
                                                   const char *key, const char *value,
                                                   void (*edit)(mdc_weights *w)) {
  char path[512];
  tu_tmp_path(path, sizeof path, file);
  mdc_weights w;
  maskdcpt_error err;
  maskdcpt_model *m = NULL;
  if (mdc_weights_init_random(&w, a, seed, residual, &err) != MASKDCPT_OK) {
    fprintf(stderr, "random model: %s\n", err.message);
    return NULL;
  }
  if (edit) edit(&w);
  if ((key && mdc_weights_set_metadata(&w, key, value, &err) != MASKDCPT_OK) ||
      mdc_weights_write(&w, path, 0, &err) != MASKDCPT_OK ||
      maskdcpt_model_load(path, &m, &err) != MASKDCPT_OK)
    fprintf(stderr, "random model: %s\n", err.message);
  mdc_weights_clear(&w);
  return m;
}

/* As tu_random_model_edit, without an edit. */
static inline maskdcpt_model *tu_random_model_meta(const mdc_arch *a, uint64_t seed,
                                                   float residual, const char *file,
                                                   const char *key, const char *value) {
  return tu_random_model_edit(a, seed, residual, file, key, value, NULL);
}

/* Writes a seeded random model to a temporary file and loads it. */
static inline maskdcpt_model *tu_random_model(const mdc_arch *a, uint64_t seed, float residual,
                                              const char *file) {
  return tu_random_model_meta(a, seed, residual, file, NULL, NULL);
}

/* A photo-like test image: smooth gradients, a few edges, mild noise. */
static inline float *tu_test_image(int w, int h, int channels, uint32_t seed) {
  float *img = malloc((size_t)w * h * channels * sizeof(float));
  if (!img) return NULL;
  uint32_t s = seed * 2654435761u + 1;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < channels; c++) {
        s = s * 1664525u + 1013904223u;
        float noise = ((s >> 8) / 16777216.0f - 0.5f) * 0.05f;
        float v = 0.5f + 0.3f * sinf(x * 0.02f + c) * cosf(y * 0.03f - c);
        if ((x / 40 + y / 50) % 3 == 0) v += 0.2f;
        img[((size_t)y * w + x) * channels + c] = v + noise;
      }
  return img;
}

#endif
