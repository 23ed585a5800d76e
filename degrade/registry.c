/* registry.c - the class list (in the network's order), its descriptions
 * and parameter ranges, as text for `maskdcpt degrade --list` and as JSON
 * for a weights file's "synthesis" metadata.  The numbers are the macros
 * the classes themselves use (dg_internal.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg_internal.h"

typedef enum {
  P_LEVEL,        /* a at level 0 -> b at level 1 */
  P_SEED,         /* uniform in [a, b] by the seed */
  P_SEED_LOG,     /* log-uniform in [a, b] by the seed */
  P_PROB,         /* chosen by the seed with probability a */
  P_LEVEL_SCALED, /* level x uniform in [a, b] by the seed */
  P_STAGE,        /* a at stage strength 0 -> b at 1 */
  P_SPAN          /* a fixed span of values [a, b] (e.g. a per-pixel field) */
} param_kind;

typedef struct param {
  const char *name;
  param_kind kind;
  double a, b;
  const char *unit;
} param;

#define MAX_PARAMS 8

typedef struct class_info {
  const char *name;
  int version; /* bumped when this class's output changes */
  const char *description;
  param params[MAX_PARAMS];
} class_info;

static const class_info classes[DG_NUM_CLASSES] = {
    {"clean", 1, "The photo unchanged (a bit-exact copy).", {{0}}},
    {"noise", 1,
     "Additive Gaussian noise on the sRGB values or, by seed, Poisson-Gaussian noise whose "
     "variance grows with the signal (labelled sigma at mid-grey), per channel or the same in "
     "all three.",
     {{"sigma", P_LEVEL, DG_NOISE_SIGMA_LO, DG_NOISE_SIGMA_HI, "/255"},
      {"poisson_gaussian", P_PROB, DG_NOISE_POISSON_PROB, 0, ""},
      {"grey", P_PROB, DG_NOISE_GREY_PROB, 0, ""},
      {"read_share", P_SEED, DG_NOISE_READ_SHARE_LO, DG_NOISE_READ_SHARE_HI, ""}}},
    {"gaussian-blur", 1,
     "Convolution with an isotropic or anisotropic rotated Gaussian kernel (Real-ESRGAN's family), "
     "reflected borders.",
     {{"sigma", P_LEVEL, DG_GBLUR_SIGMA_LO, DG_GBLUR_SIGMA_HI, "px"},
      {"anisotropic", P_PROB, DG_GBLUR_ANISO_PROB, 0, ""},
      {"minor_ratio", P_SEED, DG_GBLUR_RATIO_LO, DG_GBLUR_RATIO_HI, ""},
      {"rotation", P_SEED, 0, 180, "deg"}}},
    {"motion-blur", 1,
     "Convolution with a camera-shake kernel: a random walk with momentum in heading and speed, "
     "rasterised with sub-pixel accumulation.",
     {{"length", P_LEVEL, DG_MOTION_LENGTH_LO, DG_MOTION_LENGTH_HI, "px"},
      {"turn", P_SEED, DG_MOTION_TURN_LO, DG_MOTION_TURN_HI, "rad/step"}}},
    {"defocus-blur", 1, "Convolution with an anti-aliased disk kernel (area-weighted pixels).",
     {{"radius", P_LEVEL, DG_DEFOCUS_RADIUS_LO, DG_DEFOCUS_RADIUS_HI, "px"}}},
    {"jpeg", 1, "A real JPEG encode and decode through libjpeg in memory, 4:2:0 chroma.",
     {{"quality", P_LEVEL, DG_JPEG_QUALITY_LO, DG_JPEG_QUALITY_HI, ""}}},
    {"haze", 1,
     "Atmospheric scattering I = J t + A (1 - t) in linear light, t = exp(-beta d) over a smooth "
     "depth proxy (tilted vertical gradient plus low-frequency noise), slightly tinted airlight A.",
     {{"beta", P_LEVEL, DG_HAZE_BETA_LO, DG_HAZE_BETA_HI, ""},
      {"depth", P_SPAN, DG_HAZE_DEPTH_NEAR, 1.0, ""},
      {"airlight", P_SEED, DG_HAZE_AIRLIGHT_LO, DG_HAZE_AIRLIGHT_HI, ""},
      {"tint", P_SEED, -DG_HAZE_TINT, DG_HAZE_TINT, ""},
      {"tilt", P_SEED, -DG_HAZE_TILT_DEG, DG_HAZE_TILT_DEG, "deg"}}},
    {"rain", 1,
     "Thin streaks at one common angle near vertical, motion-blurred along it and added to the "
     "photo.",
     {{"density", P_LEVEL, DG_RAIN_DENSITY_LO, DG_RAIN_DENSITY_HI, "streaks/px"},
      {"angle", P_SEED, -DG_RAIN_ANGLE_DEG, DG_RAIN_ANGLE_DEG, "deg"},
      {"length", P_SEED, DG_RAIN_LENGTH_LO, DG_RAIN_LENGTH_HI, "px"},
      {"blur", P_SEED, DG_RAIN_BLUR_LO, DG_RAIN_BLUR_HI, "px"},
      {"brightness", P_SEED, DG_RAIN_BRIGHT_LO, DG_RAIN_BRIGHT_HI, ""}}},
    {"low-light", 1,
     "Exposure scaled in linear light, shot noise (variance proportional to the signal) and read "
     "noise added, encoded back to sRGB.",
     {{"exposure", P_LEVEL, DG_LOWLIGHT_EXPOSURE_LO, DG_LOWLIGHT_EXPOSURE_HI, ""},
      {"shot", P_SEED_LOG, DG_LOWLIGHT_SHOT_LO, DG_LOWLIGHT_SHOT_HI, "var/signal"},
      {"read", P_SEED_LOG, DG_LOWLIGHT_READ_LO, DG_LOWLIGHT_READ_HI, "sd"}}},
    {"low-resolution", 1,
     "Antialiased bicubic down-scaling, then bicubic up-scaling back to the exact original size.",
     {{"factor", P_LEVEL, DG_LOWRES_FACTOR_LO, DG_LOWRES_FACTOR_HI, "x"}}},
    {"mixed-realesrgan", 1,
     "Real-ESRGAN's order: Gaussian-family blur, down-scaling, noise, JPEG, bicubic up-scaling "
     "back, each stage's strength drawn from the seed and scaled by the level.",
     {{"stage_strength", P_LEVEL_SCALED, DG_MIXED_STAGE_LO, 1.0, ""},
      {"blur_sigma", P_STAGE, DG_MIX_SIGMA_LO, DG_MIX_SIGMA_HI, "px"},
      {"downscale", P_STAGE, DG_MIX_FACTOR_LO, DG_MIX_FACTOR_HI, "x"},
      {"noise_sigma", P_STAGE, DG_MIX_NOISE_LO, DG_MIX_NOISE_HI, "/255"},
      {"jpeg_quality", P_STAGE, DG_MIX_QUALITY_LO, DG_MIX_QUALITY_HI, ""}}},
    {"mixed-lowlight", 1,
     "A night shot: camera-shake or Gaussian blur, then under-exposure in linear light with "
     "amplified shot and read noise.",
     {{"stage_strength", P_LEVEL_SCALED, DG_MIXED_STAGE_LO, 1.0, ""},
      {"motion", P_PROB, DG_MIXLL_MOTION_PROB, 0, ""},
      {"motion_length", P_STAGE, DG_MIXLL_LENGTH_LO, DG_MIXLL_LENGTH_HI, "px"},
      {"blur_sigma", P_STAGE, DG_MIXLL_SIGMA_LO, DG_MIXLL_SIGMA_HI, "px"},
      {"exposure", P_STAGE, DG_LOWLIGHT_EXPOSURE_LO, DG_LOWLIGHT_EXPOSURE_HI, ""},
      {"noise_gain", P_STAGE, DG_MIXLL_NOISE_GAIN_LO, DG_MIXLL_NOISE_GAIN_HI, "x"}}},
};

int dg_num_classes(void) { return DG_NUM_CLASSES; }

const char *dg_class_name(int index) {
  return index >= 0 && index < DG_NUM_CLASSES ? classes[index].name : NULL;
}

int dg_class_index(const char *name) {
  if (!name) return -1;
  for (int i = 0; i < DG_NUM_CLASSES; i++)
    if (strcmp(classes[i].name, name) == 0) return i;
  return -1;
}

const char *dg_class_description(int index) {
  return index >= 0 && index < DG_NUM_CLASSES ? classes[index].description : NULL;
}

/* ------------------------------------------------------ string builder */

typedef struct sbuf {
  char *s;
  size_t len, cap;
  int failed;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
  if (b->failed) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->failed = 1;
    return;
  }
  if (b->len + (size_t)n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + (size_t)n + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
      b->failed = 1;
      return;
    }
    b->s = s;
    b->cap = cap;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
  }
  b->len += (size_t)n;
}

/* Our strings hold no control characters; quotes and backslashes are
 * escaped anyway so the JSON stays valid if a description ever has one. */
static void sb_json_string(sbuf *b, const char *s) {
  sb_printf(b, "\"");
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') sb_printf(b, "\\%c", *s);
    else sb_printf(b, "%c", *s);
  }
  sb_printf(b, "\"");
}

/* ----------------------------------------------------------------- text */

static void param_text(sbuf *b, const param *p) {
  const char *u = p->unit[0] ? " " : "";
  switch (p->kind) {
  case P_LEVEL: sb_printf(b, "%s %g..%g%s%s by level", p->name, p->a, p->b, u, p->unit); break;
  case P_SEED: sb_printf(b, "%s %g..%g%s%s by seed", p->name, p->a, p->b, u, p->unit); break;
  case P_SEED_LOG:
    sb_printf(b, "%s %g..%g%s%s by seed (log-uniform)", p->name, p->a, p->b, u, p->unit);
    break;
  case P_PROB: sb_printf(b, "%s with probability %.2g", p->name, p->a); break;
  case P_LEVEL_SCALED: sb_printf(b, "%s s = level x %g..%g by seed", p->name, p->a, p->b); break;
  case P_STAGE: sb_printf(b, "%s %g..%g%s%s by s", p->name, p->a, p->b, u, p->unit); break;
  case P_SPAN: sb_printf(b, "%s within %g..%g%s%s", p->name, p->a, p->b, u, p->unit); break;
  }
}

int dg_class_params_format(int index, char *buf, size_t size) {
  if (index < 0 || index >= DG_NUM_CLASSES) return -1;
  sbuf b = {0};
  const class_info *c = &classes[index];
  if (!c->params[0].name) sb_printf(&b, "no parameters");
  for (int i = 0; i < MAX_PARAMS && c->params[i].name; i++) {
    if (i) sb_printf(&b, "; ");
    param_text(&b, &c->params[i]);
  }
  int n = b.failed ? -1 : (int)b.len;
  if (buf && size) snprintf(buf, size, "%s", b.failed ? "" : b.s);
  free(b.s);
  return n;
}

/* ----------------------------------------------------------------- JSON */

static void param_json(sbuf *b, const param *p) {
  sb_printf(b, "{\"name\":");
  sb_json_string(b, p->name);
  if (p->unit[0]) {
    sb_printf(b, ",\"unit\":");
    sb_json_string(b, p->unit);
  }
  switch (p->kind) {
  case P_LEVEL: sb_printf(b, ",\"level_0\":%.9g,\"level_1\":%.9g}", p->a, p->b); break;
  case P_SEED: sb_printf(b, ",\"seed_uniform\":[%.9g,%.9g]}", p->a, p->b); break;
  case P_SEED_LOG: sb_printf(b, ",\"seed_log_uniform\":[%.9g,%.9g]}", p->a, p->b); break;
  case P_PROB: sb_printf(b, ",\"probability\":%.9g}", p->a); break;
  case P_LEVEL_SCALED: sb_printf(b, ",\"level_times_uniform\":[%.9g,%.9g]}", p->a, p->b); break;
  case P_STAGE: sb_printf(b, ",\"stage_0\":%.9g,\"stage_1\":%.9g}", p->a, p->b); break;
  case P_SPAN: sb_printf(b, ",\"span\":[%.9g,%.9g]}", p->a, p->b); break;
  }
}

char *dg_registry_json(void) {
  sbuf b = {0};
  sb_printf(&b, "{\"generator\":\"maskdcpt-degrade\",\"version\":%d,\"classes\":[", DG_VERSION);
  for (int i = 0; i < DG_NUM_CLASSES; i++) {
    const class_info *c = &classes[i];
    sb_printf(&b, "%s{\"name\":", i ? "," : "");
    sb_json_string(&b, c->name);
    sb_printf(&b, ",\"index\":%d,\"version\":%d,\"description\":", i, c->version);
    sb_json_string(&b, c->description);
    sb_printf(&b, ",\"params\":[");
    for (int j = 0; j < MAX_PARAMS && c->params[j].name; j++) {
      if (j) sb_printf(&b, ",");
      param_json(&b, &c->params[j]);
    }
    sb_printf(&b, "]}");
  }
  sb_printf(&b, "]}");
  if (b.failed) {
    free(b.s);
    return NULL;
  }
  return b.s;
}
