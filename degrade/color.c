/* color.c - sRGB transfer functions and clipping.  Physical models (haze,
 * low light) work in linear light; everything else on the encoded values
 * the network sees. */
#include <math.h>

#include "dg_internal.h"

float dg_srgb_to_linear(float v) {
  if (!(v > 0.0f)) return 0.0f;
  if (v >= 1.0f) return 1.0f;
  return v <= 0.04045f ? v / 12.92f : powf((v + 0.055f) / 1.055f, 2.4f);
}

float dg_linear_to_srgb(float v) {
  if (!(v > 0.0f)) return 0.0f;
  if (v >= 1.0f) return 1.0f;
  return v <= 0.0031308f ? v * 12.92f : 1.055f * powf(v, 1.0f / 2.4f) - 0.055f;
}

void dg_clip(float *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float x = v[i];
    /* comparisons, not fminf/fmaxf: values inside keep their exact bits
     * (including -0.0), NaN fails both tests and becomes 0 */
    if (x < 0.0f) v[i] = 0.0f;
    else if (x > 1.0f) v[i] = 1.0f;
    else if (x != x) v[i] = 0.0f;
  }
}
