/* arch.c - the architecture: validation, the canonical tensor list, counts
 * and its JSON form (the "arch" and "classes" metadata values).
 *
 * The tensor list is never materialised: mdc_arch_tensor() walks the stages
 * skipping whole blocks, so a lookup costs O(levels) whatever the size. */
#include <json-c/json.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"

#define ARCH_LEVELS_MAX 6       /* deeper nets make no sense for 8-bit images */
#define ARCH_CHANNELS_MAX 4096  /* width << levels */
#define ARCH_HIDDEN_MAX 1024
#define ARCH_WINDOW_MAX 65536
#define ARCH_EPS_MAX 0.1
#define BLOCK_TENSORS 18

/* NAFBlock tensor suffixes in canonical order. */
static const char *const block_suffix[BLOCK_TENSORS] = {
    "norm1.weight", "norm1.bias", "conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
    "sca.weight",   "sca.bias",   "conv3.weight", "conv3.bias", "norm2.weight", "norm2.bias",
    "conv4.weight", "conv4.bias", "conv5.weight", "conv5.bias", "beta",         "gamma",
};

/* ------------------------------------------------------------ validation */

static int arch_fail(char *msg, size_t msg_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int arch_fail(char *msg, size_t msg_size, const char *fmt, ...) {
  if (msg && msg_size > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msg_size, fmt, ap);
    va_end(ap);
  }
  return 0;
}

static int arch_check_range(const char *what, long long v, long long lo, long long hi, char *msg,
                            size_t msg_size) {
  if (v >= lo && v <= hi)
    return 1;
  return arch_fail(msg, msg_size, "%s %lld out of range %lld..%lld", what, v, lo, hi);
}

static int arch_validate_blocks(const mdc_arch *a, char *msg, size_t msg_size) {
  char what[32];
  for (int l = 0; l < a->levels; l++) {
    snprintf(what, sizeof what, "enc_blocks[%d]", l);
    if (!arch_check_range(what, a->enc_blocks[l], 0, MDC_MAX_BLOCKS, msg, msg_size))
      return 0;
    snprintf(what, sizeof what, "dec_blocks[%d]", l);
    if (!arch_check_range(what, a->dec_blocks[l], 0, MDC_MAX_BLOCKS, msg, msg_size))
      return 0;
  }
  return arch_check_range("middle_blocks", a->middle_blocks, 0, MDC_MAX_BLOCKS, msg, msg_size);
}

static int arch_validate_class_name(const mdc_arch *a, int k, char *msg, size_t msg_size) {
  const char *name = a->class_names[k];
  size_t len = strnlen(name, MDC_MAX_CLASS_NAME);
  if (len == 0)
    return arch_fail(msg, msg_size, "class %d has an empty name", k);
  if (len >= MDC_MAX_CLASS_NAME)
    return arch_fail(msg, msg_size, "class %d: name longer than %d characters", k,
                     MDC_MAX_CLASS_NAME - 1);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c < 0x20 || c > 0x7e) /* the names end up in UIs and JSON: keep them plain */
      return arch_fail(msg, msg_size, "class %d: name has a non-printable or non-ASCII byte 0x%02x",
                       k, c);
  }
  for (int j = 0; j < k; j++)
    if (strcmp(a->class_names[j], name) == 0)
      return arch_fail(msg, msg_size, "class name '%s' appears twice (classes %d and %d)", name, j,
                       k);
  return 1;
}

int mdc_arch_validate(const mdc_arch *a, char *msg, size_t msg_size) {
  if (!a)
    return arch_fail(msg, msg_size, "no architecture");
  if (!arch_check_range("width", a->width, 1, MDC_MAX_WIDTH, msg, msg_size) ||
      !arch_check_range("levels", a->levels, 1, ARCH_LEVELS_MAX, msg, msg_size))
    return 0;
  if ((a->width << a->levels) > ARCH_CHANNELS_MAX)
    return arch_fail(msg, msg_size, "width %d << levels %d = %d channels exceeds %d", a->width,
                     a->levels, a->width << a->levels, ARCH_CHANNELS_MAX);
  if (!arch_validate_blocks(a, msg, msg_size) ||
      !arch_check_range("num_classes", a->num_classes, 1, MDC_MAX_CLASSES, msg, msg_size) ||
      !arch_check_range("cls_hidden", a->cls_hidden, 1, ARCH_HIDDEN_MAX, msg, msg_size) ||
      !arch_check_range("sca_window", a->sca_window, 0, ARCH_WINDOW_MAX, msg, msg_size))
    return 0;
  if (!isfinite(a->norm_eps) || !(a->norm_eps > 0.0f) || !(a->norm_eps <= (float)ARCH_EPS_MAX))
    return arch_fail(msg, msg_size, "norm_eps %g out of range (0, %g]", (double)a->norm_eps,
                     ARCH_EPS_MAX);
  for (int k = 0; k < a->num_classes; k++)
    if (!arch_validate_class_name(a, k, msg, msg_size))
      return 0;
  return 1;
}

/* --------------------------------------------------------- tensor specs */

/* The structural minimum for walking the list safely (an unvalidated arch
 * must not make us index out of the arrays or overflow a count). */
static int arch_walkable(const mdc_arch *a) {
  if (!a || a->levels < 1 || a->levels > MDC_MAX_LEVELS || a->width < 1 ||
      a->width > MDC_MAX_WIDTH || a->num_classes < 1 || a->num_classes > MDC_MAX_CLASSES ||
      a->cls_hidden < 1 || a->cls_hidden > ARCH_HIDDEN_MAX || a->middle_blocks < 0 ||
      a->middle_blocks > MDC_MAX_BLOCKS)
    return 0;
  for (int l = 0; l < a->levels; l++)
    if (a->enc_blocks[l] < 0 || a->enc_blocks[l] > MDC_MAX_BLOCKS || a->dec_blocks[l] < 0 ||
        a->dec_blocks[l] > MDC_MAX_BLOCKS)
      return 0;
  return 1;
}

static void spec_shape(mdc_tensor_spec *s, mdc_tensor_role role, int fan_in, int ndim, int64_t d0,
                       int64_t d1, int64_t d2, int64_t d3) {
  const int64_t d[MDC_MAX_DIMS] = {d0, d1, d2, d3};
  s->role = role;
  s->fan_in = fan_in;
  s->ndim = ndim;
  s->numel = 1;
  for (int i = 0; i < MDC_MAX_DIMS; i++) {
    s->shape[i] = i < ndim ? d[i] : 0;
    if (i < ndim)
      s->numel *= d[i];
  }
}

/* A "prefix.weight" / "prefix.bias" pair of a convolution or linear layer;
 * the bias has the weight's first dimension. */
static void spec_layer(mdc_tensor_spec *s, const char *prefix, int which, int ndim, int64_t cout,
                       int64_t cin, int64_t k) {
  snprintf(s->name, sizeof s->name, "%s.%s", prefix, which == 0 ? "weight" : "bias");
  if (which != 0)
    spec_shape(s, MDC_ROLE_BIAS, 0, 1, cout, 0, 0, 0);
  else if (ndim == 2)
    spec_shape(s, MDC_ROLE_WEIGHT, (int)cin, 2, cout, cin, 0, 0);
  else
    spec_shape(s, MDC_ROLE_WEIGHT, (int)(cin * k * k), 4, cout, cin, k, k);
}

/* Tensor j of a NAFBlock with c channels; classes > 0 makes its norms
 * class-conditioned ([classes, c]). */
static void spec_block(mdc_tensor_spec *s, const char *prefix, int j, int64_t c, int classes) {
  snprintf(s->name, sizeof s->name, "%s.%s", prefix, block_suffix[j]);
  switch (j) {
  case 0: case 10: /* norm weights */
    if (classes > 0)
      spec_shape(s, MDC_ROLE_NORM_WEIGHT, 0, 2, classes, c, 0, 0);
    else
      spec_shape(s, MDC_ROLE_NORM_WEIGHT, 0, 1, c, 0, 0, 0);
    break;
  case 1: case 11: /* norm biases */
    if (classes > 0)
      spec_shape(s, MDC_ROLE_NORM_BIAS, 0, 2, classes, c, 0, 0);
    else
      spec_shape(s, MDC_ROLE_NORM_BIAS, 0, 1, c, 0, 0, 0);
    break;
  case 2: case 12: /* conv1, conv4: C -> 2C */
    spec_shape(s, MDC_ROLE_WEIGHT, (int)c, 4, 2 * c, c, 1, 1);
    break;
  case 3: case 5: case 13:
    spec_shape(s, MDC_ROLE_BIAS, 0, 1, 2 * c, 0, 0, 0);
    break;
  case 4: /* depthwise 3x3 */
    spec_shape(s, MDC_ROLE_WEIGHT, 9, 4, 2 * c, 1, 3, 3);
    break;
  case 6: case 8: case 14: /* sca, conv3, conv5: C -> C */
    spec_shape(s, MDC_ROLE_WEIGHT, (int)c, 4, c, c, 1, 1);
    break;
  case 7: case 9: case 15:
    spec_shape(s, MDC_ROLE_BIAS, 0, 1, c, 0, 0, 0);
    break;
  default: /* 16, 17: beta, gamma */
    spec_shape(s, MDC_ROLE_RESIDUAL_SCALE, 0, 4, 1, c, 1, 1);
    break;
  }
}

/* Block stage: r indexes into blocks * BLOCK_TENSORS tensors. */
static void spec_stage(mdc_tensor_spec *s, const char *stage, int r, int64_t c, int classes) {
  char prefix[40];
  snprintf(prefix, sizeof prefix, "%s.%d", stage, r / BLOCK_TENSORS);
  spec_block(s, prefix, r % BLOCK_TENSORS, c, classes);
}

static int spec_cls(const mdc_arch *a, int r, mdc_tensor_spec *s) {
  const int64_t h = a->cls_hidden;
  char prefix[24];
  if (r < 2 * (a->levels + 1)) {
    snprintf(prefix, sizeof prefix, "cls.proj.%d", r / 2);
    spec_layer(s, prefix, r % 2, 4, h, mdc_arch_channels(a, r / 2), 1);
    return 1;
  }
  r -= 2 * (a->levels + 1);
  if (r == 0) {
    snprintf(s->name, sizeof s->name, "cls.mix");
    spec_shape(s, MDC_ROLE_MIX, 0, 1, a->levels + 1, 0, 0, 0);
    return 1;
  }
  r -= 1;
  if (r < 2) {
    spec_layer(s, "cls.fc1", r, 2, h, h, 0);
    return 1;
  }
  r -= 2;
  if (r < 2) {
    spec_layer(s, "cls.fc2", r, 2, a->num_classes, h, 0);
    return 1;
  }
  return 0;
}

/* The encoder half: intro, encoders, downs, middle.  Consumes *r. */
static int spec_encoder(const mdc_arch *a, int *r, mdc_tensor_spec *s) {
  char stage[24]; /* "decoders.N": short, so names fit */
  if (*r < 2) {
    spec_layer(s, "intro", *r, 4, a->width, 3, 3);
    return 1;
  }
  *r -= 2;
  for (int l = 0; l < a->levels; l++) {
    const int64_t c = mdc_arch_channels(a, l);
    int n = a->enc_blocks[l] * BLOCK_TENSORS;
    if (*r < n) {
      snprintf(stage, sizeof stage, "encoders.%d", l);
      spec_stage(s, stage, *r, c, 0);
      return 1;
    }
    *r -= n;
    if (*r < 2) {
      snprintf(stage, sizeof stage, "downs.%d", l);
      spec_layer(s, stage, *r, 4, 2 * c, c, 2);
      return 1;
    }
    *r -= 2;
  }
  if (*r < a->middle_blocks * BLOCK_TENSORS) {
    spec_stage(s, "middle", *r, mdc_arch_channels(a, a->levels), 0);
    return 1;
  }
  *r -= a->middle_blocks * BLOCK_TENSORS;
  return 0;
}

/* The decoder half: ups, decoders, ending.  Consumes *r. */
static int spec_decoder(const mdc_arch *a, int *r, mdc_tensor_spec *s) {
  char stage[24]; /* "decoders.N": short, so names fit */
  for (int i = 0; i < a->levels; i++) {
    const int64_t cin = mdc_arch_channels(a, a->levels - i);
    if (*r < 1) {
      snprintf(s->name, sizeof s->name, "ups.%d.weight", i);
      spec_shape(s, MDC_ROLE_WEIGHT, (int)cin, 4, 2 * cin, cin, 1, 1);
      return 1;
    }
    *r -= 1;
    int n = a->dec_blocks[i] * BLOCK_TENSORS;
    if (*r < n) {
      snprintf(stage, sizeof stage, "decoders.%d", i);
      spec_stage(s, stage, *r, cin / 2, a->num_classes);
      return 1;
    }
    *r -= n;
  }
  if (*r < 2) {
    spec_layer(s, "ending", *r, 4, 3, a->width, 3);
    return 1;
  }
  *r -= 2;
  return 0;
}

int mdc_arch_tensor(const mdc_arch *a, int i, mdc_tensor_spec *out) {
  if (!out || i < 0 || !arch_walkable(a))
    return 0;
  memset(out, 0, sizeof *out);
  int r = i;
  if (spec_encoder(a, &r, out) || spec_decoder(a, &r, out))
    return 1;
  return spec_cls(a, r, out);
}

int mdc_arch_num_tensors(const mdc_arch *a) {
  if (!arch_walkable(a))
    return 0;
  int n = 2 + a->middle_blocks * BLOCK_TENSORS + 2;
  for (int l = 0; l < a->levels; l++)
    n += (a->enc_blocks[l] + a->dec_blocks[l]) * BLOCK_TENSORS + 2 + 1;
  return n + 2 * (a->levels + 1) + 5; /* cls: proj pairs, mix, fc1, fc2 */
}

int64_t mdc_arch_num_params(const mdc_arch *a) {
  int n = mdc_arch_num_tensors(a);
  int64_t total = 0;
  mdc_tensor_spec s;
  for (int i = 0; i < n; i++)
    if (mdc_arch_tensor(a, i, &s))
      total += s.numel;
  return total;
}

/* ------------------------------------------------------ name -> index */

static int name_take(const char **p, const char *prefix) {
  size_t n = strlen(prefix);
  if (strncmp(*p, prefix, n) != 0)
    return 0;
  *p += n;
  return 1;
}

/* A small decimal number followed by '.'; leading zeros and signs are
 * caught later by comparing the regenerated name. */
static int name_number(const char **p, int *v) {
  int x = 0, digits = 0;
  while (**p >= '0' && **p <= '9' && digits < 6) {
    x = x * 10 + (**p - '0');
    (*p)++;
    digits++;
  }
  if (digits == 0 || **p != '.')
    return 0;
  (*p)++;
  *v = x;
  return 1;
}

static int name_pair(const char *p) {
  return strcmp(p, "weight") == 0 ? 0 : strcmp(p, "bias") == 0 ? 1 : -1;
}

static int name_block(const char *p) {
  for (int j = 0; j < BLOCK_TENSORS; j++)
    if (strcmp(p, block_suffix[j]) == 0)
      return j;
  return -1;
}

/* Start index of every stage, for the inverse lookup. */
typedef struct arch_layout {
  int enc[MDC_MAX_LEVELS], down[MDC_MAX_LEVELS];
  int middle;
  int up[MDC_MAX_LEVELS];
  int ending, cls;
} arch_layout;

static void arch_layout_compute(const mdc_arch *a, arch_layout *lay) {
  int at = 2;
  for (int l = 0; l < a->levels; l++) {
    lay->enc[l] = at;
    at += a->enc_blocks[l] * BLOCK_TENSORS;
    lay->down[l] = at;
    at += 2;
  }
  lay->middle = at;
  at += a->middle_blocks * BLOCK_TENSORS;
  for (int i = 0; i < a->levels; i++) {
    lay->up[i] = at;
    at += 1 + a->dec_blocks[i] * BLOCK_TENSORS;
  }
  lay->ending = at;
  lay->cls = at + 2;
}

static int guess_in_stage(int base, int block, int blocks, const char *p) {
  int j = name_block(p);
  if (block >= blocks || j < 0)
    return -1;
  return base + block * BLOCK_TENSORS + j;
}

static int guess_with_pair(int base, const char *p) {
  int w = name_pair(p);
  return w < 0 ? -1 : base + w;
}

static int guess_cls(const mdc_arch *a, const arch_layout *lay, const char *p) {
  int l;
  if (name_take(&p, "proj."))
    return name_number(&p, &l) && l <= a->levels ? guess_with_pair(lay->cls + 2 * l, p) : -1;
  const int after = lay->cls + 2 * (a->levels + 1);
  if (strcmp(p, "mix") == 0)
    return after;
  if (name_take(&p, "fc1."))
    return guess_with_pair(after + 1, p);
  if (name_take(&p, "fc2."))
    return guess_with_pair(after + 3, p);
  return -1;
}

/* Where `name` would sit if it is canonical; the caller verifies. */
static int arch_index_guess(const mdc_arch *a, const arch_layout *lay, const char *p) {
  int l, b;
  if (name_take(&p, "intro."))
    return guess_with_pair(0, p);
  if (name_take(&p, "encoders."))
    return name_number(&p, &l) && l < a->levels && name_number(&p, &b)
               ? guess_in_stage(lay->enc[l], b, a->enc_blocks[l], p)
               : -1;
  if (name_take(&p, "downs."))
    return name_number(&p, &l) && l < a->levels ? guess_with_pair(lay->down[l], p) : -1;
  if (name_take(&p, "middle."))
    return name_number(&p, &b) ? guess_in_stage(lay->middle, b, a->middle_blocks, p) : -1;
  if (name_take(&p, "ups."))
    return name_number(&p, &l) && l < a->levels && strcmp(p, "weight") == 0 ? lay->up[l] : -1;
  if (name_take(&p, "decoders."))
    return name_number(&p, &l) && l < a->levels && name_number(&p, &b)
               ? guess_in_stage(lay->up[l] + 1, b, a->dec_blocks[l], p)
               : -1;
  if (name_take(&p, "ending."))
    return guess_with_pair(lay->ending, p);
  if (name_take(&p, "cls."))
    return guess_cls(a, lay, p);
  return -1;
}

int mdc_arch_class_index(const mdc_arch *a, const char *name) {
  for (int k = 0; name && k < a->num_classes; k++)
    if (strcmp(a->class_names[k], name) == 0) return k;
  return -1;
}

int mdc_arch_tensor_index(const mdc_arch *a, const char *name) {
  if (!name || !arch_walkable(a))
    return -1;
  arch_layout lay;
  arch_layout_compute(a, &lay);
  int i = arch_index_guess(a, &lay, name);
  mdc_tensor_spec s;
  if (i < 0 || !mdc_arch_tensor(a, i, &s) || strcmp(s.name, name) != 0)
    return -1;
  return i;
}

/* ------------------------------------------------------------------ MACs */

/* One NAFBlock per pixel: conv1 and conv4 (2C^2 each), depthwise 3x3 on 2C
 * (18C), conv3 and conv5 (C^2 each), and the sca 1x1 when it runs per pixel
 * (a windowed pool gives every pixel its own vector). */
static double block_macs(double c, int sca_window) {
  return 6.0 * c * c + 18.0 * c + (sca_window > 0 ? c * c : 0.0);
}

double mdc_arch_macs_per_pixel(const mdc_arch *a) {
  if (!arch_walkable(a))
    return 0.0;
  const int L = a->levels;
  double macs = 2.0 * 27.0 * a->width; /* intro 3 -> W and ending W -> 3, 3x3 */
  for (int l = 0; l < L; l++) {
    const double c = mdc_arch_channels(a, l), area = ldexp(1.0, -2 * l);
    macs += area * a->enc_blocks[l] * block_macs(c, a->sca_window);
    macs += area * 0.25 * (2.0 * c * c * 4.0); /* downs: 2x2 conv at the next level */
  }
  macs += ldexp(1.0, -2 * L) * a->middle_blocks *
          block_macs(mdc_arch_channels(a, L), a->sca_window);
  for (int i = 0; i < L; i++) {
    const double cin = mdc_arch_channels(a, L - i), c = cin / 2.0;
    macs += ldexp(1.0, -2 * (L - i)) * 2.0 * cin * cin; /* ups 1x1 before the shuffle */
    macs += ldexp(1.0, -2 * (L - 1 - i)) * a->dec_blocks[i] * block_macs(c, a->sca_window);
  }
  return macs;
}

/* ------------------------------------------------------------------ JSON */

/* Shortest %g form that reads back as the same float, so 1e-6f prints as
 * 1e-06 rather than 9.9999999747524271e-07. */
static void format_float_short(float v, char *buf, size_t size) {
  for (int prec = 6; prec <= 9; prec++) {
    snprintf(buf, size, "%.*g", prec, (double)v);
    if (strtof(buf, NULL) == v)
      return;
  }
}

static json_object *json_int_array(const int *v, int n) {
  json_object *arr = json_object_new_array();
  for (int i = 0; arr && i < n; i++)
    if (json_object_array_add(arr, json_object_new_int(v[i])) != 0) {
      json_object_put(arr);
      return NULL;
    }
  return arr;
}

static char *json_take_string(json_object *obj) {
  const char *s =
      obj ? json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
          : NULL;
  char *copy = s ? strdup(s) : NULL;
  json_object_put(obj);
  return copy;
}

char *mdc_arch_to_json(const mdc_arch *a) {
  if (!arch_walkable(a) || !isfinite(a->norm_eps)) /* JSON has no NaN */
    return NULL;
  json_object *o = json_object_new_object();
  if (!o)
    return NULL;
  char eps[32];
  format_float_short(a->norm_eps, eps, sizeof eps);
  json_object *enc = json_int_array(a->enc_blocks, a->levels);
  json_object *dec = json_int_array(a->dec_blocks, a->levels);
  json_object *epsv = json_object_new_double_s(a->norm_eps, eps);
  if (!enc || !dec || !epsv) {
    json_object_put(enc);
    json_object_put(dec);
    json_object_put(epsv);
    json_object_put(o);
    return NULL;
  }
  json_object_object_add(o, "width", json_object_new_int(a->width));
  json_object_object_add(o, "levels", json_object_new_int(a->levels));
  json_object_object_add(o, "enc_blocks", enc);
  json_object_object_add(o, "middle_blocks", json_object_new_int(a->middle_blocks));
  json_object_object_add(o, "dec_blocks", dec);
  json_object_object_add(o, "cls_hidden", json_object_new_int(a->cls_hidden));
  json_object_object_add(o, "sca_window", json_object_new_int(a->sca_window));
  json_object_object_add(o, "norm_eps", epsv);
  return json_take_string(o);
}

char *mdc_arch_classes_to_json(const mdc_arch *a) {
  if (!a || a->num_classes < 0 || a->num_classes > MDC_MAX_CLASSES)
    return NULL;
  json_object *arr = json_object_new_array();
  for (int k = 0; arr && k < a->num_classes; k++) {
    char name[MDC_MAX_CLASS_NAME];
    /* bounded even if the caller left a name unterminated */
    snprintf(name, sizeof name, "%.*s", MDC_MAX_CLASS_NAME - 1, a->class_names[k]);
    if (json_object_array_add(arr, json_object_new_string(name)) != 0) {
      json_object_put(arr);
      return NULL;
    }
  }
  return json_take_string(arr);
}

void mdc_arch_benchmark(mdc_arch *a, int width) {
  memset(a, 0, sizeof *a);
  a->width = width;
  a->levels = 4;
  int enc[4] = {1, 1, 1, 2}, dec[4] = {1, 1, 1, 1};
  memcpy(a->enc_blocks, enc, sizeof enc);
  memcpy(a->dec_blocks, dec, sizeof dec);
  a->middle_blocks = 2;
  a->num_classes = 12;
  for (int i = 0; i < a->num_classes; i++) snprintf(a->class_names[i], MDC_MAX_CLASS_NAME, "c%d", i);
  a->cls_hidden = 64;
  a->sca_window = 384;
  a->norm_eps = 1e-6f;
}
