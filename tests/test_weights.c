/* test_weights.c - the architecture's tensor list, the safetensors reader
 * and writer, random initialisation and error reporting.
 *
 * Malformed files are made by taking a valid file from the writer, parsing
 * its header with json-c, editing it and reassembling the file, so each case
 * differs from a valid file in exactly one way.  Every parse gets a buffer
 * of exactly the file's size so that the sanitizers see any over-read. */
#include <dirent.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arch.h"
#include "maskdcpt.h"
#include "weights.h"

static int passed, failed;

static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void check(int ok, const char *fmt, ...) {
  if (ok) {
    passed++;
    return;
  }
  failed++;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "FAIL: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
}

/* ------------------------------------------------------------ fixtures */

static mdc_arch tiny_arch(void) {
  mdc_arch a;
  memset(&a, 0, sizeof a);
  a.width = 4;
  a.levels = 2;
  a.enc_blocks[0] = a.enc_blocks[1] = 1;
  a.middle_blocks = 1;
  a.dec_blocks[0] = a.dec_blocks[1] = 1;
  a.num_classes = 3;
  a.cls_hidden = 8;
  a.sca_window = 64;
  a.norm_eps = 1e-6f;
  strcpy(a.class_names[0], "noise");
  strcpy(a.class_names[1], "blur");
  strcpy(a.class_names[2], "jpeg");
  return a;
}

static char tmp_dir[512];

static void tmp_path(char *buf, size_t size, const char *name) {
  snprintf(buf, size, "%s/tw_%ld_%s", tmp_dir, (long)getpid(), name);
}

typedef struct blob {
  uint8_t *data;
  size_t size;
} blob;

static blob blob_read(const char *path) {
  blob b = {NULL, 0};
  FILE *f = fopen(path, "rb");
  if (!f)
    return b;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  b.data = malloc(n > 0 ? (size_t)n : 1);
  b.size = fread(b.data, 1, (size_t)n, f);
  fclose(f);
  return b;
}

static uint64_t blob_header_len(const blob *b) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--)
    n = n << 8 | b->data[i];
  return n;
}

static json_object *blob_header(const blob *b) {
  uint64_t n = blob_header_len(b);
  json_tokener *tok = json_tokener_new();
  json_object *o = json_tokener_parse_ex(tok, (const char *)b->data + 8, (int)n);
  json_tokener_free(tok);
  return o;
}

static const uint8_t *blob_data(const blob *b) { return b->data + 8 + blob_header_len(b); }
static size_t blob_data_size(const blob *b) { return b->size - 8 - (size_t)blob_header_len(b); }

/* header text (padded to 8 with spaces when pad) + data. */
static blob blob_assemble(const char *text, size_t len, const uint8_t *data, size_t data_size,
                          int pad) {
  size_t hl = pad ? (len + 7) & ~(size_t)7 : len;
  blob b;
  b.size = 8 + hl + data_size;
  b.data = malloc(b.size);
  for (int i = 0; i < 8; i++)
    b.data[i] = (uint8_t)((uint64_t)hl >> (8 * i));
  memcpy(b.data + 8, text, len);
  memset(b.data + 8 + len, ' ', hl - len);
  if (data_size)
    memcpy(b.data + 8 + hl, data, data_size);
  return b;
}

static blob blob_build(json_object *hdr, const uint8_t *data, size_t data_size, int pad) {
  const char *text = json_object_to_json_string_ext(hdr, JSON_C_TO_STRING_PLAIN);
  return blob_assemble(text, strlen(text), data, data_size, pad);
}

static void blob_free(blob *b) {
  free(b->data);
  b->data = NULL;
  b->size = 0;
}

/* Parses from an exactly sized copy. */
static maskdcpt_status parse_exact(const uint8_t *data, size_t size, mdc_weights *w,
                                   maskdcpt_error *err) {
  uint8_t *copy = malloc(size ? size : 1);
  if (size)
    memcpy(copy, data, size);
  maskdcpt_status rc = mdc_weights_parse(copy, size, "bad.safetensors", w, err);
  free(copy);
  return rc;
}

static int weights_empty(const mdc_weights *w) {
  return !w->tensors && !w->storage && !w->metadata && w->num_tensors == 0 && w->num_metadata == 0;
}

/* The parse must fail with FORMAT, leave *out empty, and say what. */
static void expect_format(const blob *b, const char *what, const char *must1, const char *must2) {
  mdc_weights w;
  maskdcpt_error err;
  memset(&err, 0, sizeof err);
  maskdcpt_status rc = parse_exact(b->data, b->size, &w, &err);
  int ok = rc == MASKDCPT_ERROR_FORMAT && err.code == rc && weights_empty(&w) &&
           strstr(err.message, "bad.safetensors") && (!must1 || strstr(err.message, must1)) &&
           (!must2 || strstr(err.message, must2));
  check(ok, "%s: status %s, message '%s' (wanted '%s' '%s')", what, maskdcpt_status_name(rc),
        err.message, must1 ? must1 : "", must2 ? must2 : "");
  if (rc == MASKDCPT_OK)
    mdc_weights_clear(&w);
}

static char *str_replace(const char *s, const char *from, const char *to) {
  const char *at = strstr(s, from);
  if (!at)
    return NULL;
  size_t a = (size_t)(at - s), f = strlen(from), t = strlen(to), n = strlen(s);
  char *out = malloc(n - f + t + 1);
  memcpy(out, s, a);
  memcpy(out + a, to, t);
  memcpy(out + a + t, at + f, n - a - f + 1);
  return out;
}

/* The base file every malformed case starts from (F32 and F16). */
static blob base_f32, base_f16;
static mdc_weights base_w;

/* ------------------------------------------------ independent tensor list */

typedef struct exp_tensor {
  char name[64];
  int ndim;
  int64_t shape[4];
} exp_tensor;

static int exp_count;
static exp_tensor exp_list[400];

static void exp_add(const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
  exp_tensor *t = &exp_list[exp_count++];
  snprintf(t->name, sizeof t->name, "%s", name);
  t->ndim = ndim;
  t->shape[0] = d0;
  t->shape[1] = d1;
  t->shape[2] = d2;
  t->shape[3] = d3;
}

static void exp_sub(const char *p, const char *suffix, int ndim, int64_t a, int64_t b, int64_t c,
                    int64_t d) {
  char n[64];
  snprintf(n, sizeof n, "%s.%s", p, suffix);
  exp_add(n, ndim, a, b, c, d);
}

/* A LayerNorm pair: [c], or [k, c] when class-conditioned. */
static void exp_norm(const char *p, const char *norm, int64_t c, int k) {
  char w[32], b[32];
  snprintf(w, sizeof w, "%s.weight", norm);
  snprintf(b, sizeof b, "%s.bias", norm);
  exp_sub(p, w, k ? 2 : 1, k ? k : c, k ? c : 0, 0, 0);
  exp_sub(p, b, k ? 2 : 1, k ? k : c, k ? c : 0, 0, 0);
}

static void exp_block(const char *p, int64_t c, int k) {
  exp_norm(p, "norm1", c, k);
  exp_sub(p, "conv1.weight", 4, 2 * c, c, 1, 1);
  exp_sub(p, "conv1.bias", 1, 2 * c, 0, 0, 0);
  exp_sub(p, "conv2.weight", 4, 2 * c, 1, 3, 3);
  exp_sub(p, "conv2.bias", 1, 2 * c, 0, 0, 0);
  exp_sub(p, "sca.weight", 4, c, c, 1, 1);
  exp_sub(p, "sca.bias", 1, c, 0, 0, 0);
  exp_sub(p, "conv3.weight", 4, c, c, 1, 1);
  exp_sub(p, "conv3.bias", 1, c, 0, 0, 0);
  exp_norm(p, "norm2", c, k);
  exp_sub(p, "conv4.weight", 4, 2 * c, c, 1, 1);
  exp_sub(p, "conv4.bias", 1, 2 * c, 0, 0, 0);
  exp_sub(p, "conv5.weight", 4, c, c, 1, 1);
  exp_sub(p, "conv5.bias", 1, c, 0, 0, 0);
  exp_sub(p, "beta", 4, 1, c, 1, 1);
  exp_sub(p, "gamma", 4, 1, c, 1, 1);
}

/* The canonical order written out from the specification, by hand. */
static void exp_build(const mdc_arch *a) {
  char n[32]; /* prefixes stay short, so the names built from them fit */
  const int L = a->levels, W = a->width, K = a->num_classes, H = a->cls_hidden;
  exp_count = 0;
  exp_add("intro.weight", 4, W, 3, 3, 3);
  exp_add("intro.bias", 1, W, 0, 0, 0);
  for (int l = 0; l < L; l++) {
    for (int b = 0; b < a->enc_blocks[l]; b++) {
      snprintf(n, sizeof n, "encoders.%d.%d", l, b);
      exp_block(n, W << l, 0);
    }
    snprintf(n, sizeof n, "downs.%d.weight", l);
    exp_add(n, 4, 2 * (W << l), W << l, 2, 2);
    snprintf(n, sizeof n, "downs.%d.bias", l);
    exp_add(n, 1, 2 * (W << l), 0, 0, 0);
  }
  for (int b = 0; b < a->middle_blocks; b++) {
    snprintf(n, sizeof n, "middle.%d", b);
    exp_block(n, W << L, 0);
  }
  for (int i = 0; i < L; i++) {
    int cin = W << (L - i);
    snprintf(n, sizeof n, "ups.%d.weight", i);
    exp_add(n, 4, 2 * cin, cin, 1, 1);
    for (int b = 0; b < a->dec_blocks[i]; b++) {
      snprintf(n, sizeof n, "decoders.%d.%d", i, b);
      exp_block(n, W << (L - 1 - i), K);
    }
  }
  exp_add("ending.weight", 4, 3, W, 3, 3);
  exp_add("ending.bias", 1, 3, 0, 0, 0);
  for (int l = 0; l <= L; l++) {
    snprintf(n, sizeof n, "cls.proj.%d.weight", l);
    exp_add(n, 4, H, W << l, 1, 1);
    snprintf(n, sizeof n, "cls.proj.%d.bias", l);
    exp_add(n, 1, H, 0, 0, 0);
  }
  exp_add("cls.mix", 1, L + 1, 0, 0, 0);
  exp_add("cls.fc1.weight", 2, H, H, 0, 0);
  exp_add("cls.fc1.bias", 1, H, 0, 0, 0);
  exp_add("cls.fc2.weight", 2, K, H, 0, 0);
  exp_add("cls.fc2.bias", 1, K, 0, 0, 0);
}

static int spec_equals(const mdc_tensor_spec *s, const exp_tensor *e) {
  int64_t numel = 1;
  if (strcmp(s->name, e->name) != 0 || s->ndim != e->ndim)
    return 0;
  for (int d = 0; d < e->ndim; d++) {
    if (s->shape[d] != e->shape[d])
      return 0;
    numel *= e->shape[d];
  }
  return numel == s->numel;
}

/* ------------------------------------------------------------ arch tests */

static void test_arch_list(const mdc_arch *a, const char *label) {
  exp_build(a);
  int n = mdc_arch_num_tensors(a);
  check(n == exp_count, "%s: %d tensors, expected %d", label, n, exp_count);
  int64_t total = 0;
  for (int i = 0; i < n && i < exp_count; i++) {
    mdc_tensor_spec s;
    int ok = mdc_arch_tensor(a, i, &s);
    check(ok && spec_equals(&s, &exp_list[i]), "%s: tensor %d is '%s', expected '%s'", label, i,
          s.name, exp_list[i].name);
    check(mdc_arch_tensor_index(a, s.name) == i, "%s: index of '%s'", label, s.name);
    total += s.numel;
  }
  mdc_tensor_spec s;
  check(!mdc_arch_tensor(a, n, &s) && !mdc_arch_tensor(a, -1, &s), "%s: out of range index", label);
  check(mdc_arch_num_params(a) == total, "%s: num_params", label);
}

static void test_arch_specs(void) {
  mdc_arch a = tiny_arch();
  test_arch_list(&a, "tiny");
  check(mdc_arch_num_tensors(&a) == 111, "tiny arch has 111 tensors (%d)", mdc_arch_num_tensors(&a));
  mdc_arch b = tiny_arch();
  b.levels = 4;
  b.width = 16;
  b.enc_blocks[2] = 0;
  b.enc_blocks[3] = 2;
  b.middle_blocks = 0;
  b.dec_blocks[0] = 3;
  b.dec_blocks[1] = 0;
  b.dec_blocks[2] = 1;
  b.dec_blocks[3] = 1;
  test_arch_list(&b, "mixed");

  struct { const char *name; mdc_tensor_role role; int fan_in; } roles[] = {
      {"intro.weight", MDC_ROLE_WEIGHT, 27},          {"intro.bias", MDC_ROLE_BIAS, 0},
      {"encoders.0.0.conv2.weight", MDC_ROLE_WEIGHT, 9}, {"encoders.1.0.conv1.weight", MDC_ROLE_WEIGHT, 8},
      {"downs.0.weight", MDC_ROLE_WEIGHT, 16},        {"ups.0.weight", MDC_ROLE_WEIGHT, 16},
      {"ending.weight", MDC_ROLE_WEIGHT, 36},         {"decoders.0.0.norm1.weight", MDC_ROLE_NORM_WEIGHT, 0},
      {"middle.0.norm2.bias", MDC_ROLE_NORM_BIAS, 0}, {"middle.0.beta", MDC_ROLE_RESIDUAL_SCALE, 0},
      {"decoders.1.0.gamma", MDC_ROLE_RESIDUAL_SCALE, 0}, {"cls.mix", MDC_ROLE_MIX, 0},
      {"cls.fc1.weight", MDC_ROLE_WEIGHT, 8},         {"cls.proj.2.weight", MDC_ROLE_WEIGHT, 16},
  };
  for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
    mdc_tensor_spec s;
    memset(&s, 0, sizeof s);
    int idx = mdc_arch_tensor_index(&a, roles[i].name);
    int ok = idx >= 0 && mdc_arch_tensor(&a, idx, &s) && s.role == roles[i].role &&
             s.fan_in == roles[i].fan_in;
    check(ok, "role/fan_in of %s (idx %d role %d fan_in %d)", roles[i].name, idx, ok ? 0 : (int)s.role,
          ok ? 0 : s.fan_in);
  }
  const char *bogus[] = {"encoders.0.00.conv1.weight", "encoders.2.0.conv1.weight",
                         "encoders.0.1.conv1.weight",  "encoders.-0.0.beta",
                         "ups.0.bias",                 "ups.2.weight",
                         "cls.mix.x",                  "cls.proj.3.weight",
                         "intro.weight.",              "",
                         "decoders.0.0.conv9.weight",  "middle.1.beta",
                         "downs.2.weight",             "encoders.0.0.conv1.weight "};
  for (size_t i = 0; i < sizeof bogus / sizeof bogus[0]; i++)
    check(mdc_arch_tensor_index(&a, bogus[i]) == -1, "'%s' is not a tensor", bogus[i]);
  check(mdc_arch_tensor_index(&a, NULL) == -1, "NULL name");
}

static void test_arch_macs(void) {
  mdc_arch a = tiny_arch();
  /* By hand: block(C) = 7C^2 + 18C; intro+ending 216; downs/ups 32 each. */
  double want = 216 + 184 + 32 + 592 / 4.0 + 32 + 2080 / 16.0 + 32 + 592 / 4.0 + 32 + 184;
  check(fabs(mdc_arch_macs_per_pixel(&a) - want) < 1e-9, "macs %g, expected %g",
        mdc_arch_macs_per_pixel(&a), want);
  a.sca_window = 0; /* the sca then runs once per image: five C^2/4^l terms of 16 go */
  check(fabs(mdc_arch_macs_per_pixel(&a) - (want - 80)) < 1e-9, "macs global pool %g",
        mdc_arch_macs_per_pixel(&a));
}

static void test_arch_json(void) {
  mdc_arch a = tiny_arch();
  a.width = 16;
  a.levels = 4;
  int enc[4] = {1, 1, 1, 2}, dec[4] = {1, 1, 1, 1};
  memcpy(a.enc_blocks, enc, sizeof enc);
  memcpy(a.dec_blocks, dec, sizeof dec);
  a.cls_hidden = 64;
  a.sca_window = 384;
  char *j = mdc_arch_to_json(&a);
  const char *want = "{\"width\":16,\"levels\":4,\"enc_blocks\":[1,1,1,2],\"middle_blocks\":1,"
                     "\"dec_blocks\":[1,1,1,1],\"cls_hidden\":64,\"sca_window\":384,"
                     "\"norm_eps\":1e-06}";
  check(j && strcmp(j, want) == 0, "arch json '%s'", j ? j : "(null)");
  free(j);
  a.norm_eps = 0.0123456789f;
  j = mdc_arch_to_json(&a);
  const char *eps = j ? strstr(j, "\"norm_eps\":") : NULL;
  check(eps && strtof(eps + 11, NULL) == a.norm_eps, "norm_eps round trips: %s", j ? j : "");
  free(j);
  strcpy(a.class_names[1], "a/b \"q\"");
  j = mdc_arch_classes_to_json(&a);
  check(j && strcmp(j, "[\"noise\",\"a/b \\\"q\\\"\",\"jpeg\"]") == 0, "classes json %s", j ? j : "");
  free(j);
}

static void expect_invalid(const mdc_arch *a, const char *what, const char *must) {
  char msg[256] = "";
  int ok = mdc_arch_validate(a, msg, sizeof msg);
  check(!ok && strstr(msg, must), "validate rejects %s: '%s'", what, msg);
}

static void test_arch_validate(void) {
  mdc_arch a = tiny_arch(), b;
  char msg[256];
  check(mdc_arch_validate(&a, msg, sizeof msg), "tiny arch valid");
#define BAD(field, value, must)                                                                    \
  do {                                                                                             \
    b = a;                                                                                         \
    b.field = value;                                                                               \
    expect_invalid(&b, #field " = " #value, must);                                                 \
  } while (0)
  BAD(width, 0, "width");
  BAD(width, MDC_MAX_WIDTH + 1, "width");
  BAD(levels, 0, "levels");
  BAD(levels, 7, "levels");
  BAD(levels, -1, "levels");
  BAD(enc_blocks[1], -1, "enc_blocks[1]");
  BAD(dec_blocks[0], MDC_MAX_BLOCKS + 1, "dec_blocks[0]");
  BAD(middle_blocks, -3, "middle_blocks");
  BAD(num_classes, 0, "num_classes");
  BAD(num_classes, MDC_MAX_CLASSES + 1, "num_classes");
  BAD(cls_hidden, 0, "cls_hidden");
  BAD(cls_hidden, 1025, "cls_hidden");
  BAD(sca_window, -1, "sca_window");
  BAD(sca_window, 65537, "sca_window");
  BAD(norm_eps, 0.0f, "norm_eps");
  BAD(norm_eps, 0.2f, "norm_eps");
  BAD(norm_eps, -1e-6f, "norm_eps");
  BAD(norm_eps, NAN, "norm_eps");
  BAD(norm_eps, INFINITY, "norm_eps");
#undef BAD
  b = a;
  b.width = 256;
  b.levels = 5;
  expect_invalid(&b, "too many channels", "channels");
  b = a;
  strcpy(b.class_names[2], "noise");
  expect_invalid(&b, "duplicate class", "twice");
  b = a;
  b.class_names[1][0] = '\0';
  expect_invalid(&b, "empty class name", "empty");
  b = a;
  strcpy(b.class_names[1], "bl\tur");
  expect_invalid(&b, "control char in class", "non-printable");
  b = a;
  memset(b.class_names[0], 'x', MDC_MAX_CLASS_NAME); /* unterminated */
  expect_invalid(&b, "unterminated class", "longer");
  b = a;
  b.width = 64;
  b.levels = 6;
  b.enc_blocks[5] = b.dec_blocks[5] = 0;
  check(mdc_arch_validate(&b, msg, sizeof msg), "width 64 << 6 = 4096 is allowed: %s", msg);
  check(!mdc_arch_validate(NULL, msg, sizeof msg), "NULL arch invalid");
  b = a;
  b.levels = 9; /* not walkable: no tensors, no crash */
  check(mdc_arch_num_tensors(&b) == 0 && mdc_arch_num_params(&b) == 0 &&
            mdc_arch_macs_per_pixel(&b) == 0.0 && mdc_arch_to_json(&b) == NULL,
        "invalid arch walks nothing");
}

/* -------------------------------------------------------- error strings */

static void test_errors(void) {
  maskdcpt_error err;
  check(mdc_set_error(NULL, MASKDCPT_ERROR_IO, "x %d", 1) == MASKDCPT_ERROR_IO, "NULL err");
  check(mdc_set_error(&err, MASKDCPT_ERROR_FORMAT, "a %s %d", "b", 3) == MASKDCPT_ERROR_FORMAT &&
            err.code == MASKDCPT_ERROR_FORMAT && strcmp(err.message, "a b 3") == 0,
        "set_error formats");
  char big[2000];
  memset(big, 'y', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  mdc_set_error(&err, MASKDCPT_ERROR_IO, "%s", big);
  check(strlen(err.message) == sizeof err.message - 1, "long message truncated");
  for (int s = MASKDCPT_OK; s <= MASKDCPT_ERROR_DEVICE; s++)
    for (int t = MASKDCPT_OK; t < s; t++)
      check(strcmp(maskdcpt_status_name((maskdcpt_status)s),
                   maskdcpt_status_name((maskdcpt_status)t)) != 0,
            "status names %d and %d differ", s, t);
  check(strcmp(maskdcpt_status_name((maskdcpt_status)99), "unknown status") == 0, "unknown status");
  check(strcmp(maskdcpt_version_string(), "0.1.0") == 0, "version %s", maskdcpt_version_string());
}

/* ------------------------------------------------------ init and write */

static void test_init_random(void) {
  mdc_arch a = tiny_arch();
  mdc_weights w1, w2, w3;
  maskdcpt_error err;
  check(mdc_weights_init_random(&w1, &a, 42, 0.5f, &err) == MASKDCPT_OK, "init 1");
  check(mdc_weights_init_random(&w2, &a, 42, 0.5f, &err) == MASKDCPT_OK, "init 2");
  check(mdc_weights_init_random(&w3, &a, 43, 0.5f, &err) == MASKDCPT_OK, "init 3");
  int64_t total = mdc_arch_num_params(&a);
  check(memcmp(w1.storage, w2.storage, (size_t)total * sizeof(float)) == 0, "same seed, same values");
  check(memcmp(w1.storage, w3.storage, (size_t)total * sizeof(float)) != 0, "other seed differs");
  const char *prov = mdc_weights_metadata(&w1, "provenance");
  check(prov && strcmp(prov, "{\"kind\":\"random-init\",\"seed\":42}") == 0, "provenance %s",
        prov ? prov : "");
  int in_range = 1, nonzero_residual = 0;
  for (int i = 0; i < w1.num_tensors; i++) {
    mdc_tensor_spec s;
    mdc_arch_tensor(&a, i, &s);
    check(mdc_weights_tensor(&w1, s.name) == w1.tensors[i], "tensor lookup %s", s.name);
    for (int64_t e = 0; e < s.numel; e++) {
      double v = w1.tensors[i][e];
      switch (s.role) {
      case MDC_ROLE_WEIGHT: in_range &= fabs(v) <= sqrt(3.0 / s.fan_in) + 1e-6; break;
      case MDC_ROLE_NORM_WEIGHT: in_range &= fabs(v - 1.0) <= 0.1 + 1e-6; break;
      case MDC_ROLE_RESIDUAL_SCALE:
        in_range &= fabs(v) <= 0.5;
        nonzero_residual |= v != 0.0;
        break;
      case MDC_ROLE_MIX: in_range &= fabs(v) <= 0.5; break;
      default: in_range &= fabs(v) <= 0.1 + 1e-6; break;
      }
    }
  }
  check(in_range && nonzero_residual, "random values within their ranges");
  check(mdc_weights_tensor(&w1, "nope") == NULL && mdc_weights_metadata(&w1, "nope") == NULL,
        "absent lookups give NULL");
  mdc_weights_clear(&w1);
  mdc_weights_clear(&w2);
  mdc_weights_clear(&w3);
  mdc_arch bad = a;
  bad.width = 0;
  check(mdc_weights_init_random(&w1, &bad, 1, 0.f, &err) == MASKDCPT_ERROR_INVALID_ARGUMENT &&
            strstr(err.message, "width") && weights_empty(&w1),
        "init of an invalid arch: %s", err.message);
  check(mdc_weights_init_random(&w1, &a, 1, NAN, &err) == MASKDCPT_ERROR_INVALID_ARGUMENT,
        "NaN residual scale refused");
  check(mdc_weights_alloc(&w1, &a, &err) == MASKDCPT_OK && w1.num_metadata == 0 &&
            w1.tensors[0][0] == 0.0f && w1.tensors[w1.num_tensors - 1][2] == 0.0f,
        "alloc gives zeros");
  check(mdc_weights_set_metadata(&w1, "k", "v1", &err) == MASKDCPT_OK &&
            mdc_weights_set_metadata(&w1, "k", "v2", &err) == MASKDCPT_OK && w1.num_metadata == 1 &&
            strcmp(mdc_weights_metadata(&w1, "k"), "v2") == 0,
        "set_metadata replaces");
  check(mdc_weights_set_metadata(&w1, "", "v", &err) == MASKDCPT_ERROR_INVALID_ARGUMENT,
        "empty metadata key refused");
  const char *bad_utf8[] = {"\xff", "a\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80"};
  for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++)
    check(mdc_weights_set_metadata(&w1, "k", bad_utf8[i], &err) == MASKDCPT_ERROR_INVALID_ARGUMENT &&
              mdc_weights_set_metadata(&w1, bad_utf8[i], "v", &err) == MASKDCPT_ERROR_INVALID_ARGUMENT,
          "invalid UTF-8 metadata %zu refused", i);
  check(mdc_weights_set_metadata(&w1, "k", "\xe2\x82\xac \xf0\x9f\x98\x80", &err) == MASKDCPT_OK,
        "valid UTF-8 metadata accepted");
  mdc_weights_clear(&w1);
}

static int metadata_equal(const mdc_weights *w, const char *key, const char *value) {
  const char *v = mdc_weights_metadata(w, key);
  return v && strcmp(v, value) == 0;
}

static void check_same_weights(const mdc_weights *a, const mdc_weights *b, const char *what) {
  int64_t total = mdc_arch_num_params(&a->arch);
  check(b->num_tensors == a->num_tensors &&
            mdc_arch_num_params(&b->arch) == total &&
            memcmp(a->storage, b->storage, (size_t)total * sizeof(float)) == 0,
        "%s: tensors identical", what);
  check(memcmp(&a->arch, &b->arch, sizeof a->arch) == 0, "%s: arch identical", what);
}

/* Leftover temporary files of this process in the temp dir. */
static int count_temp_files(void) {
  char prefix[64];
  snprintf(prefix, sizeof prefix, "tw_%ld_", (long)getpid());
  int n = 0;
  DIR *d = opendir(tmp_dir);
  struct dirent *e;
  while (d && (e = readdir(d)))
    n += strncmp(e->d_name, prefix, strlen(prefix)) == 0 && strstr(e->d_name, ".tmp.") != NULL;
  if (d)
    closedir(d);
  return n;
}

static void test_round_trip_f32(void) {
  mdc_arch a = tiny_arch();
  maskdcpt_error err;
  char p1[600], p2[600];
  tmp_path(p1, sizeof p1, "rt32.safetensors");
  tmp_path(p2, sizeof p2, "rt32b.safetensors");
  mdc_weights_init_random(&base_w, &a, 42, 0.5f, &err);
  mdc_weights_set_metadata(&base_w, "synthesis", "{\"degradations\":[\"noise\"]}", &err);
  mdc_weights_set_metadata(&base_w, "note", "a/b \"quoted\" \xc3\xbc", &err);
  mdc_weights_set_metadata(&base_w, "format", "bogus", &err); /* always written from the arch */
  check(mdc_weights_write(&base_w, p1, 0, &err) == MASKDCPT_OK, "write f32: %s", err.message);
  mdc_weights r;
  check(mdc_weights_load(p1, &r, &err) == MASKDCPT_OK, "load f32: %s", err.message);
  check_same_weights(&base_w, &r, "f32 round trip");
  char *arch_json = mdc_arch_to_json(&a);
  check(metadata_equal(&r, "format", "maskdcpt") && metadata_equal(&r, "format_version", "1") &&
            metadata_equal(&r, "arch", arch_json) &&
            metadata_equal(&r, "classes", "[\"noise\",\"blur\",\"jpeg\"]") &&
            metadata_equal(&r, "provenance", "{\"kind\":\"random-init\",\"seed\":42}") &&
            metadata_equal(&r, "synthesis", "{\"degradations\":[\"noise\"]}") &&
            metadata_equal(&r, "note", "a/b \"quoted\" \xc3\xbc") && r.num_metadata == 7,
        "metadata kept (%d entries)", r.num_metadata);
  free(arch_json);
  /* Writing what was read gives the same bytes. */
  check(mdc_weights_write(&r, p2, 0, &err) == MASKDCPT_OK, "rewrite");
  blob b1 = blob_read(p1), b2 = blob_read(p2);
  check(b1.size == b2.size && b1.size > 0 && memcmp(b1.data, b2.data, b1.size) == 0,
        "rewrite is byte-identical");
  uint64_t n = blob_header_len(&b1);
  check(n % 8 == 0 && b1.data[8 + n - 1] != '\0', "header padded to 8 (%" PRIu64 ")", n);
  json_object *hdr = blob_header(&b1);
  int first = 1, order_ok = 1, i = 0;
  json_object_object_foreach(hdr, key, val) {
    (void)val;
    if (first)
      order_ok &= strcmp(key, "__metadata__") == 0;
    else {
      mdc_tensor_spec s;
      order_ok &= mdc_arch_tensor(&a, i++, &s) && strcmp(s.name, key) == 0;
    }
    first = 0;
  }
  check(order_ok && i == mdc_arch_num_tensors(&a), "header in canonical order");
  json_object_put(hdr);
  base_f32 = b1;
  blob_free(&b2);
  mdc_weights_clear(&r);
  unlink(p1);
  unlink(p2);
  check(count_temp_files() == 0, "no temporary files left");
}

/* Reference fp16 rounding found by search over all halves (independent of
 * the bit tricks in weights.c). */
static double half_value(unsigned h) {
  unsigned e = (h >> 10) & 0x1f, m = h & 0x3ff;
  return e == 0 ? ldexp(m, -24) : ldexp(1024 + m, (int)e - 25);
}

static float ref_round_f16(float v) {
  double x = fabs((double)v);
  unsigned lo = 0, hi = 0x7bff;
  while (lo < hi) { /* largest h with value <= x */
    unsigned mid = (lo + hi + 1) / 2;
    if (half_value(mid) <= x)
      lo = mid;
    else
      hi = mid - 1;
  }
  unsigned h = lo;
  if (h < 0x7bff) {
    double d0 = x - half_value(h), d1 = half_value(h + 1) - x;
    if (d1 < d0 || (d1 == d0 && (h & 1)))
      h++;
  }
  double r = half_value(h);
  return (float)(v < 0 ? -r : r);
}

static void test_round_trip_f16(void) {
  maskdcpt_error err;
  char p[600];
  tmp_path(p, sizeof p, "rt16.safetensors");
  mdc_weights w;
  mdc_arch a = tiny_arch();
  mdc_weights_init_random(&w, &a, 7, 0.25f, &err);
  /* Hard cases in the first tensor: ties, subnormals, the top of the range. */
  const float special[] = {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, -1.0f - 0x1p-11f, 0x1p-25f,
                           0x1.0001p-25f,   0x1p-24f,            3 * 0x1p-25f,     0x1.ffcp-15f,
                           0x1.ffep-15f,    6.1e-5f,             1e-7f,            -3e-8f,
                           65504.0f,        65519.0f,            -65519.0f,        0.0f,
                           -0.0f,           1e-30f,              2049.0f,          2051.0f};
  const int ns = (int)(sizeof special / sizeof special[0]);
  memcpy(w.tensors[0], special, sizeof special);
  check(mdc_weights_write(&w, p, 1, &err) == MASKDCPT_OK, "write f16: %s", err.message);
  mdc_weights r;
  check(mdc_weights_load(p, &r, &err) == MASKDCPT_OK, "load f16: %s", err.message);
  int64_t total = mdc_arch_num_params(&a), bad = 0;
  for (int64_t e = 0; e < total && r.storage; e++) {
    float want = ref_round_f16(w.storage[e]);
    if (memcmp(&want, &r.storage[e], sizeof want) != 0 && !(want == 0 && r.storage[e] == 0)) {
      if (bad++ < 5)
        fprintf(stderr, "  f16 element %" PRId64 ": %a -> %a, expected %a\n", e,
                (double)w.storage[e], (double)r.storage[e], (double)want);
    }
  }
  check(bad == 0, "f16 values rounded to nearest even (%" PRId64 " wrong)", bad);
  check(r.storage && signbit(r.storage[16]) && r.storage[16] == 0, "-0 keeps its sign");
  check(r.storage && r.storage[13] == 65504.0f && r.storage[3] == 0.0f && r.storage[5] == 0x1p-24f,
        "f16 edge values");
  (void)ns;
  blob b = blob_read(p);
  base_f16 = b;
  mdc_weights_clear(&r);
  /* Values the file cannot hold are refused before anything is written. */
  w.tensors[3][1] = 70000.0f;
  check(mdc_weights_write(&w, p, 1, &err) == MASKDCPT_ERROR_INVALID_ARGUMENT &&
            strstr(err.message, "encoders.0.0.norm1.bias") && strstr(err.message, "F16"),
        "f16 overflow refused: %s", err.message);
  w.tensors[3][1] = NAN;
  check(mdc_weights_write(&w, p, 0, &err) == MASKDCPT_ERROR_INVALID_ARGUMENT &&
            strstr(err.message, "encoders.0.0.norm1.bias") && strstr(err.message, "NaN"),
        "NaN refused: %s", err.message);
  check(count_temp_files() == 0, "no temporary files left after refusals");
  mdc_weights_clear(&w);
  unlink(p);
}

/* BF16 and unaligned, reordered data: built by hand from the F32 file. */
static void test_bf16_and_layout(void) {
  json_object *hdr = blob_header(&base_f32);
  const uint8_t *src = blob_data(&base_f32);
  size_t ds = blob_data_size(&base_f32), out_size = 0;
  uint8_t *data = malloc(ds / 2);
  int n = mdc_arch_num_tensors(&base_w.arch);
  for (int i = n - 1; i >= 0; i--) { /* reverse order in the data section */
    mdc_tensor_spec s;
    mdc_arch_tensor(&base_w.arch, i, &s);
    json_object *t = json_object_object_get(hdr, s.name);
    json_object *offs = json_object_object_get(t, "data_offsets");
    int64_t begin = json_object_get_int64(json_object_array_get_idx(offs, 0));
    for (int64_t e = 0; e < s.numel; e++) { /* keep the top half of each float */
      data[out_size + 2 * e] = src[begin + 4 * e + 2];
      data[out_size + 2 * e + 1] = src[begin + 4 * e + 3];
    }
    json_object_object_add(t, "dtype", json_object_new_string("BF16"));
    json_object_array_put_idx(offs, 0, json_object_new_int64((int64_t)out_size));
    json_object_array_put_idx(offs, 1, json_object_new_int64((int64_t)(out_size + 2 * s.numel)));
    out_size += 2 * (size_t)s.numel;
  }
  blob b = blob_build(hdr, data, out_size, 0); /* odd header length: unaligned data */
  mdc_weights r;
  maskdcpt_error err;
  check(parse_exact(b.data, b.size, &r, &err) == MASKDCPT_OK, "bf16 parse: %s", err.message);
  int64_t total = mdc_arch_num_params(&base_w.arch), bad = 0;
  for (int64_t e = 0; e < total && r.storage; e++) {
    uint32_t bits;
    memcpy(&bits, &base_w.storage[e], 4);
    bits &= 0xffff0000u;
    float want;
    memcpy(&want, &bits, 4);
    bad += r.storage[e] != want;
  }
  check(r.storage && bad == 0, "bf16 values (%" PRId64 " wrong)", bad);
  mdc_weights_clear(&r);
  blob_free(&b);
  free(data);
  json_object_put(hdr);
}

static void test_io_errors(void) {
  mdc_weights w;
  maskdcpt_error err;
  char p[600];
  tmp_path(p, sizeof p, "does-not-exist.safetensors");
  check(mdc_weights_load(p, &w, &err) == MASKDCPT_ERROR_IO && strstr(err.message, p) &&
            strstr(err.message, "No such file"),
        "missing file: %s", err.message);
  check(mdc_weights_load(tmp_dir, &w, &err) == MASKDCPT_ERROR_IO, "directory: %s", err.message);
  snprintf(p, sizeof p, "%s/tw_%ld_no_such_dir/x.safetensors", tmp_dir, (long)getpid());
  check(mdc_weights_write(&base_w, p, 0, &err) == MASKDCPT_ERROR_IO && strstr(err.message, p),
        "write into a missing directory: %s", err.message);
  tmp_path(p, sizeof p, "replace.safetensors");
  mdc_weights other;
  mdc_weights_init_random(&other, &base_w.arch, 99, 0.1f, &err);
  check(mdc_weights_write(&base_w, p, 0, &err) == MASKDCPT_OK &&
            mdc_weights_write(&other, p, 0, &err) == MASKDCPT_OK &&
            mdc_weights_load(p, &w, &err) == MASKDCPT_OK,
        "overwrite: %s", err.message);
  check_same_weights(&other, &w, "overwritten file");
  mdc_weights_clear(&w);
  mdc_weights_clear(&other);
  unlink(p);
  check(mdc_weights_parse(NULL, 0, "x", &w, &err) == MASKDCPT_ERROR_FORMAT, "empty input");
  check(mdc_weights_parse(NULL, 5, "x", &w, &err) == MASKDCPT_ERROR_INVALID_ARGUMENT, "NULL data");
  check(count_temp_files() == 0, "no temporary files left after IO errors");
}

/* ---------------------------------------------------- malformed files */

/* Cut the file at many lengths; every prefix must be refused.  stride > 1
 * samples the data section, keeping every length around the header and
 * near the end. */
static void test_truncated(const blob *base, const char *label, size_t stride) {
  int wrong = 0, tried = 0;
  const size_t dense_to = 8 + (size_t)blob_header_len(base) + 256;
  for (size_t len = 0; len < base->size; len += len < dense_to || len + 256 >= base->size ? 1 : stride) {
    tried++;
    mdc_weights w;
    maskdcpt_error err;
    memset(&err, 0, sizeof err);
    maskdcpt_status rc = parse_exact(base->data, len, &w, &err);
    if (rc != MASKDCPT_ERROR_FORMAT || !strstr(err.message, "bad.safetensors") || !weights_empty(&w)) {
      if (wrong++ < 5)
        fprintf(stderr, "  %s cut at %zu: %s '%s'\n", label, len, maskdcpt_status_name(rc),
                err.message);
      if (rc == MASKDCPT_OK)
        mdc_weights_clear(&w);
    }
  }
  check(wrong == 0, "%s: every truncation refused (%d accepted or wrong), %d of %zu lengths",
        label, wrong, tried, base->size);
}

static void test_header_length(void) {
  blob b = {malloc(base_f32.size), base_f32.size};
  const uint64_t bad[] = {0, 1, b.size - 8 + 1, b.size, UINT64_MAX, (uint64_t)1 << 63,
                          ((uint64_t)100 << 20) + 1};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memcpy(b.data, base_f32.data, b.size);
    for (int k = 0; k < 8; k++)
      b.data[k] = (uint8_t)(bad[i] >> (8 * k));
    char what[64];
    snprintf(what, sizeof what, "header length %" PRIu64, bad[i]);
    expect_format(&b, what, "header length", NULL);
  }
  /* A header length cutting the JSON short. */
  memcpy(b.data, base_f32.data, b.size);
  b.data[0] = 40;
  for (int k = 1; k < 8; k++)
    b.data[k] = 0;
  expect_format(&b, "short header", "JSON", NULL);
  blob_free(&b);
}

static void test_bad_json(void) {
  const char *cases[][2] = {
      {"{\"a\":", "JSON"},
      {"[1,2,3]", "object"},
      {"null ", "object"},
      {"\"text\"", "object"},
      {"12345678", "JSON"},
      {"{} x", "after"},
      {"{}{}", "after"},
      {"{\"a\":1,}", "JSON"},
      {"{\"a\":\"\xff\"}", "JSON"},
      {"{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]"
       "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
       "JSON"},
      {"{}", "__metadata__"},
      {"{\"__metadata__\":[]}", "__metadata__"},
      {"{\"__metadata__\":{\"format\":\"maskdcpt\",\"x\":1}}", "'x'"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    blob b = blob_assemble(cases[i][0], strlen(cases[i][0]), NULL, 0, 1);
    expect_format(&b, cases[i][0], cases[i][1], NULL);
    blob_free(&b);
  }
  /* NUL bytes inside the header. */
  const char with_nul[] = "{\"__metadata__\":{}}\0\0\0\0";
  blob b = blob_assemble(with_nul, sizeof with_nul - 1, NULL, 0, 0);
  expect_format(&b, "NUL padding", "JSON", NULL);
  blob_free(&b);
}

/* Header edits on the base F32 file. */
typedef void (*edit_fn)(json_object *hdr, const void *arg);

static void expect_edit(const blob *base, edit_fn edit, const void *arg, const char *what,
                        const char *must1, const char *must2) {
  json_object *hdr = blob_header(base);
  edit(hdr, arg);
  blob b = blob_build(hdr, blob_data(base), blob_data_size(base), 1);
  expect_format(&b, what, must1, must2);
  blob_free(&b);
  json_object_put(hdr);
}

static json_object *meta_of(json_object *hdr) { return json_object_object_get(hdr, "__metadata__"); }

typedef struct kv {
  const char *key, *value; /* value NULL: delete */
} kv;

static void edit_meta(json_object *hdr, const void *arg) {
  const kv *p = arg;
  if (p->value)
    json_object_object_add(meta_of(hdr), p->key, json_object_new_string(p->value));
  else
    json_object_object_del(meta_of(hdr), p->key);
}

/* Replaces text inside the "arch" string. */
static void edit_arch_text(json_object *hdr, const void *arg) {
  const kv *p = arg;
  const char *arch = json_object_get_string(json_object_object_get(meta_of(hdr), "arch"));
  char *changed = str_replace(arch, p->key, p->value);
  if (!changed) {
    fprintf(stderr, "  test bug: '%s' not in %s\n", p->key, arch);
    return;
  }
  json_object_object_add(meta_of(hdr), "arch", json_object_new_string(changed));
  free(changed);
}

static void test_bad_metadata(void) {
  const struct { kv edit; const char *must1, *must2; } meta[] = {
      {{"format", NULL}, "'format'", "missing"},
      {{"format", "safetensors"}, "'format'", "safetensors"},
      {{"format_version", NULL}, "'format_version'", "missing"},
      {{"format_version", "2"}, "'format_version'", "\"2\""},
      {{"arch", NULL}, "'arch'", "missing"},
      {{"arch", "{\"width\":4"}, "'arch'", "JSON"},
      {{"arch", "[4,2]"}, "'arch'", "object"},
      {{"arch", ""}, "'arch'", "JSON"},
      {{"arch", "{\"width\":128,\"levels\":6,\"enc_blocks\":[1,1,1,1,1,1],\"middle_blocks\":1,"
                "\"dec_blocks\":[1,1,1,1,1,1],\"cls_hidden\":8,\"sca_window\":64,\"norm_eps\":1e-06}"},
       "'arch'", "channels"},
      {{"classes", NULL}, "'classes'", "missing"},
      {{"classes", "[\"noise\",\"blur\",\"noise\"]"}, "'classes'", "twice"},
      {{"classes", "[\"noise\",\"blur\"]"}, "decoders.0.0.norm1.weight", "expected shape [2,8]"},
      {{"classes", "{\"a\":1}"}, "'classes'", "array"},
      {{"classes", "[]"}, "'classes'", "found 0"},
      {{"classes", "[1,2,3]"}, "'classes'", "string"},
      {{"classes", "[\"noise\",\"\",\"jpeg\"]"}, "'classes'", "empty"},
      {{"classes", "[\"noise\",\"b\\u0001\",\"jpeg\"]"}, "'classes'", "non-printable"},
      {{"classes", "[\"noise\",\"b\\u0000x\",\"jpeg\"]"}, "'classes'", "NUL"},
      {{"classes", "[\"a123456789a123456789a123456789a123456789a123456789\",\"b\",\"c\"]"},
       "'classes'", "characters"},
      {{"classes", "[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\",\"l\",\"m\","
                   "\"n\",\"o\",\"p\",\"q\",\"r\",\"s\",\"t\",\"u\",\"v\",\"w\",\"x\",\"y\",\"z\","
                   "\"A\",\"B\",\"C\",\"D\",\"E\",\"F\",\"G\"]"},
       "'classes'", "found 33"},
      {{"auto_focus", "\"noise\""}, "'auto_focus'", "array"},
      {{"auto_focus", "[\"noise\""}, "'auto_focus'", "JSON"},
      {{"auto_focus", "[\"noise\",\"haze\"]"}, "'auto_focus'", "entry 1"},
      {{"auto_focus", "[\"noise\",3]"}, "'auto_focus'", "found 3"},
      {{"auto_focus", "[\"noise\",\"blur\",\"noise\"]"}, "'auto_focus'", "twice"},
      {{"auto_focus", "[\"Noise\"]"}, "'auto_focus'", "class name"},
      {{"passes", "[\"noise\"]"}, "'passes'", "object"},
      {{"passes", "{\"noise\":2"}, "'passes'", "JSON"},
      {{"passes", "{\"haze\":2}"}, "'passes'", "\"haze\" is not a class"},
      {{"passes", "{\"noise\":0}"}, "'passes'", "integer 1..4, found 0"},
      {{"passes", "{\"noise\":5}"}, "'passes'", "found 5"},
      {{"passes", "{\"noise\":-1}"}, "'passes'", "found -1"},
      {{"passes", "{\"noise\":2.0}"}, "'passes'", "integer"},
      {{"passes", "{\"noise\":\"2\"}"}, "'passes'", "integer"},
      {{"passes", "{\"noise\":2,\"jpeg\":true}"}, "'passes'", "jpeg"},
      {{"passes", "{\"a\\u0001b\":2}"}, "'passes'", "\"a\\u0001b\" is not a class"},
  };
  for (size_t i = 0; i < sizeof meta / sizeof meta[0]; i++)
    expect_edit(&base_f32, edit_meta, &meta[i].edit, meta[i].edit.value ? meta[i].edit.value : meta[i].edit.key,
                meta[i].must1, meta[i].must2);
}

/* The per-class metadata parsed into per-class values: 'auto_focus' into
 * flags (listed classes only, in any order), 'passes' into counts (named
 * classes only; 0 stands for one pass); an empty list or object and no
 * entry mean none. */
static void test_class_metadata(void) {
  const struct {
    const char *key, *value;
    unsigned char want[4];
  } cases[] = {
      {"auto_focus", "[\"jpeg\",\"noise\"]", {1, 0, 1, 0}},
      {"auto_focus", "[\"blur\"]", {0, 1, 0, 0}},
      {"auto_focus", "[]", {0, 0, 0, 0}},
      {"auto_focus", NULL, {0, 0, 0, 0}},
      {"passes", "{\"jpeg\":2,\"noise\":4}", {4, 0, 2, 0}},
      {"passes", "{\"blur\":1}", {0, 1, 0, 0}},
      {"passes", "{}", {0, 0, 0, 0}},
      {"passes", NULL, {0, 0, 0, 0}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_object *hdr = blob_header(&base_f32);
    kv edit = {cases[i].key, cases[i].value};
    edit_meta(hdr, &edit);
    blob b = blob_build(hdr, blob_data(&base_f32), blob_data_size(&base_f32), 1);
    mdc_weights w;
    maskdcpt_error err;
    maskdcpt_status rc = parse_exact(b.data, b.size, &w, &err);
    const unsigned char *got = strcmp(cases[i].key, "passes") == 0 ? w.passes : w.auto_focus;
    check(rc == MASKDCPT_OK && memcmp(got, cases[i].want, 4) == 0,
          "%s %s: %s, values %d %d %d %d", cases[i].key,
          cases[i].value ? cases[i].value : "(absent)", rc == MASKDCPT_OK ? "parsed" : err.message,
          got[0], got[1], got[2], got[3]);
    if (rc == MASKDCPT_OK) mdc_weights_clear(&w);
    blob_free(&b);
    json_object_put(hdr);
  }
}

static void edit_meta_number(json_object *hdr, const void *arg) {
  json_object_object_add(meta_of(hdr), (const char *)arg, json_object_new_int(1));
}

static void edit_drop_meta(json_object *hdr, const void *arg) {
  (void)arg;
  json_object_object_del(hdr, "__metadata__");
}

static void test_bad_arch(void) {
  const struct { kv edit; const char *must1, *must2; } cases[] = {
      /* json-c 0.16 clamps integers beyond int64 (then 'width' is out of
       * range); 0.18 rejects them as invalid JSON: either way 'arch' fails. */
      {{"\"width\":4", "\"width\":99999999999999999999"}, "'arch'", NULL},
      {{"\"width\":4", "\"width\":-99999999999999999999"}, "'arch'", NULL},
      {{"\"width\":4", "\"width\":1e300"}, "'arch'", "'width'"},
      {{"\"width\":4", "\"width\":4.0"}, "'arch'", "'width'"},
      {{"\"width\":4", "\"width\":\"4\""}, "'arch'", "'width'"},
      {{"\"width\":4", "\"width\":null"}, "'arch'", "'width'"},
      {{"\"width\":4", "\"width\":0"}, "'arch'", "width 0"},
      {{"\"width\":4", "\"width\":2147483648"}, "'arch'", "'width'"},
      {{"\"width\":4", "\"width\":8"}, "intro.weight", "expected shape [8,3,3,3], found [4,3,3,3]"},
      {{"\"levels\":2", "\"levels\":4294967297"}, "'arch'", "'levels'"},
      {{"\"levels\":2", "\"levels\":0"}, "'arch'", "levels 0"},
      {{"\"levels\":2", "\"levels\":7"}, "'arch'", "levels 7"},
      {{"\"levels\":2", "\"levels\":9"}, "'arch'", "levels 9"},
      {{"\"levels\":2", "\"levels\":3"}, "'arch'", "'enc_blocks'"},
      {{"\"levels\":2", "\"levels\":1"}, "'arch'", "'enc_blocks'"},
      {{"\"enc_blocks\":[1,1]", "\"enc_blocks\":[1]"}, "'arch'", "'enc_blocks'"},
      {{"\"enc_blocks\":[1,1]", "\"enc_blocks\":[1,1e18]"}, "'arch'", "'enc_blocks'"},
      {{"\"enc_blocks\":[1,1]", "\"enc_blocks\":[1,1000000000000000000]"}, "'arch'", "'enc_blocks'"},
      {{"\"enc_blocks\":[1,1]", "\"enc_blocks\":[1,-1]"}, "'arch'", "enc_blocks[1]"},
      {{"\"enc_blocks\":[1,1]", "\"enc_blocks\":[1,65]"}, "'arch'", "enc_blocks[1]"},
      {{"\"enc_blocks\":[1,1]", "\"enc_blocks\":{\"0\":1}"}, "'arch'", "'enc_blocks'"},
      {{"\"dec_blocks\":[1,1]", "\"dec_blocks\":[1,\"a\"]"}, "'arch'", "'dec_blocks'"},
      {{"\"dec_blocks\":[1,1]", "\"dec_blocks\":[1,1,1]"}, "'arch'", "'dec_blocks'"},
      {{"\"dec_blocks\":[1,1]", "\"dec_blocks\":[1,2]"}, "decoders.1.1.norm1.weight", "missing"},
      {{"\"middle_blocks\":1", "\"middle_blocks\":-1"}, "'arch'", "middle_blocks"},
      {{"\"middle_blocks\":1", "\"middle_blocks\":10000000000"}, "'arch'", "'middle_blocks'"},
      {{"\"middle_blocks\":1", "\"middle_blocks\":0"}, "unexpected tensor", "middle.0."},
      {{"\"cls_hidden\":8", "\"cls_hidden\":2147483648"}, "'arch'", "'cls_hidden'"},
      {{"\"cls_hidden\":8", "\"cls_hidden\":0"}, "'arch'", "cls_hidden 0"},
      {{"\"sca_window\":64", "\"sca_window\":-5"}, "'arch'", "sca_window -5"},
      {{"\"sca_window\":64", "\"sca_window\":65537"}, "'arch'", "sca_window 65537"},
      {{"\"norm_eps\":1e-06", "\"norm_eps\":0"}, "'arch'", "'norm_eps'"},
      {{"\"norm_eps\":1e-06", "\"norm_eps\":-1"}, "'arch'", "'norm_eps'"},
      {{"\"norm_eps\":1e-06", "\"norm_eps\":1e300"}, "'arch'", "'norm_eps'"},
      {{"\"norm_eps\":1e-06", "\"norm_eps\":1e999"}, "'arch'", "'norm_eps'"},
      {{"\"norm_eps\":1e-06", "\"norm_eps\":1e-400"}, "'arch'", "'norm_eps'"},
      {{"\"norm_eps\":1e-06", "\"norm_eps\":NaN"}, "'arch'", "norm_eps"},
      {{"\"norm_eps\":1e-06", "\"norm_eps\":0.5"}, "'arch'", "norm_eps 0.5"},
      {{"\"norm_eps\":1e-06", "\"norm_eps\":\"1e-6\""}, "'arch'", "'norm_eps'"},
      {{"\"norm_eps\":1e-06", "\"norm_eps\":1e-06,\"extra\":1"}, "'arch'", "'extra'"},
      {{"\"width\":4,", ""}, "'arch'", "'width' missing"},
      {{"\"levels\":2,", ""}, "'arch'", "'levels' missing"},
      {{"\"enc_blocks\":[1,1],", ""}, "'arch'", "'enc_blocks' missing"},
      {{"\"middle_blocks\":1,", ""}, "'arch'", "'middle_blocks' missing"},
      {{"\"dec_blocks\":[1,1],", ""}, "'arch'", "'dec_blocks' missing"},
      {{"\"cls_hidden\":8,", ""}, "'arch'", "'cls_hidden' missing"},
      {{"\"sca_window\":64,", ""}, "'arch'", "'sca_window' missing"},
      {{",\"norm_eps\":1e-06", ""}, "'arch'", "'norm_eps' missing"},
      {{"}", "} x"}, "'arch'", "after"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char what[160];
    snprintf(what, sizeof what, "arch %s -> %s", cases[i].edit.key, cases[i].edit.value);
    expect_edit(&base_f32, edit_arch_text, &cases[i].edit, what, cases[i].must1, cases[i].must2);
  }
  expect_edit(&base_f32, edit_meta_number, "provenance", "numeric metadata", "'provenance'",
              "string");
  expect_edit(&base_f32, edit_drop_meta, NULL, "no __metadata__", "__metadata__", NULL);
}

/* Tensor entry edits: set `field` of tensor `name` to the JSON `value`
 * (NULL deletes the field; field NULL replaces or deletes the entry). */
typedef struct tensor_edit {
  const char *name, *field, *value;
} tensor_edit;

static void edit_tensor(json_object *hdr, const void *arg) {
  const tensor_edit *t = arg;
  json_object *v = t->value ? json_tokener_parse(t->value) : NULL;
  if (t->value && !v && strcmp(t->value, "null") != 0)
    fprintf(stderr, "  test bug: bad JSON %s\n", t->value);
  if (!t->field) {
    if (t->value)
      json_object_object_add(hdr, t->name, v);
    else
      json_object_object_del(hdr, t->name);
    return;
  }
  json_object *entry = json_object_object_get(hdr, t->name);
  if (t->value)
    json_object_object_add(entry, t->field, v);
  else
    json_object_object_del(entry, t->field);
}

/* Copies the entry of `from` to the name `to`. */
static void edit_copy_entry(json_object *hdr, const void *arg) {
  const tensor_edit *t = arg;
  json_object *src = json_object_object_get(hdr, t->name), *copy = NULL;
  json_object_deep_copy(src, &copy, NULL);
  json_object_object_add(hdr, t->value, copy);
}

/* Sets the offsets of t->name to those of t->value, or shifts them by 4. */
static void edit_offsets_from(json_object *hdr, const void *arg) {
  const tensor_edit *t = arg;
  json_object *dst = json_object_object_get(json_object_object_get(hdr, t->name), "data_offsets");
  if (t->value) {
    json_object *src = json_object_object_get(json_object_object_get(hdr, t->value), "data_offsets");
    for (int k = 0; k < 2; k++)
      json_object_array_put_idx(dst, (size_t)k,
                                json_object_new_int64(json_object_get_int64(json_object_array_get_idx(src, (size_t)k))));
    return;
  }
  for (int k = 0; k < 2; k++)
    json_object_array_put_idx(dst, (size_t)k,
                              json_object_new_int64(json_object_get_int64(json_object_array_get_idx(dst, (size_t)k)) + 4));
}

static void test_bad_tensors(void) {
  char big_end[64];
  snprintf(big_end, sizeof big_end, "[0,%zu]", blob_data_size(&base_f32) + 4);
  const char *c1 = "encoders.0.0.conv1.weight";
  const struct { tensor_edit e; const char *must1, *must2; } cases[] = {
      {{c1, NULL, NULL}, "'encoders.0.0.conv1.weight' missing", "[8,4,1,1]"},
      {{"cls.fc2.bias", NULL, NULL}, "'cls.fc2.bias' missing", NULL},
      {{c1, NULL, "[1,2]"}, c1, "object"},
      {{c1, "shape", "[8,4,3,3]"}, c1, "expected shape [8,4,1,1], found [8,4,3,3]"},
      {{c1, "shape", "[8,4,1]"}, c1, "found [8,4,1]"},
      {{c1, "shape", "[8,4,1,1,1]"}, c1, "found [8,4,1,1,1]"},
      {{c1, "shape", "[8,4,\"1\",1]"}, c1, "expected shape"},
      {{c1, "shape", "[8,4,1.0,1]"}, c1, "expected shape"},
      {{c1, "shape", "[-8,-4,1,1]"}, c1, "expected shape"},
      {{c1, "shape", "[99999999999999999999,4,1,1]"}, c1, "expected shape"},
      {{c1, "shape", "32"}, c1, "expected shape"},
      {{c1, "shape", NULL}, c1, "no shape"},
      {{c1, "dtype", "\"F64\""}, c1, "F64"},
      {{c1, "dtype", "\"I32\""}, c1, "I32"},
      {{c1, "dtype", "\"f32\""}, c1, "dtype"},
      {{c1, "dtype", "4"}, c1, "dtype"},
      {{c1, "dtype", NULL}, c1, "no dtype"},
      {{c1, "dtype", "\"F16\""}, c1, "expected 64"},
      {{c1, "data_offsets", big_end}, c1, "outside"},
      {{c1, "data_offsets", "[200,100]"}, c1, "outside"},
      {{c1, "data_offsets", "[-128,0]"}, c1, "non-negative"},
      {{c1, "data_offsets", "[0]"}, c1, "[begin, end]"},
      {{c1, "data_offsets", "[0,128,256]"}, c1, "[begin, end]"},
      {{c1, "data_offsets", "[0,1e3]"}, c1, "[begin, end]"},
      {{c1, "data_offsets", "[0,99999999999999999999]"}, c1, "outside"},
      {{c1, "data_offsets", "[9223372036854775807,9223372036854775807]"}, c1, "outside"},
      {{c1, "data_offsets", "\"0-128\""}, c1, "[begin, end]"},
      {{c1, "data_offsets", NULL}, c1, "no data_offsets"},
      {{c1, "data_offsets", "[0,100]"}, c1, "expected 128"},
      {{"foo", NULL, "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}"}, "unexpected tensor 'foo'", NULL},
      {{"", NULL, "{}"}, "unexpected tensor ''", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char what[200];
    snprintf(what, sizeof what, "tensor %s %s -> %s", cases[i].e.name,
             cases[i].e.field ? cases[i].e.field : "(entry)", cases[i].e.value ? cases[i].e.value : "(deleted)");
    expect_edit(&base_f32, edit_tensor, &cases[i].e, what, cases[i].must1, cases[i].must2);
  }
  tensor_edit extra = {"encoders.0.0.conv1.weight", NULL, "encoders.0.1.conv1.weight"};
  expect_edit(&base_f32, edit_copy_entry, &extra, "extra block tensor",
              "unexpected tensor 'encoders.0.1.conv1.weight'", NULL);
  tensor_edit same = {"encoders.0.0.conv2.bias", NULL, "encoders.0.0.conv1.bias"};
  expect_edit(&base_f32, edit_offsets_from, &same, "identical offsets",
              "'encoders.0.0.conv1.bias'", "'encoders.0.0.conv2.bias'");
  tensor_edit shifted = {"intro.bias", NULL, NULL};
  expect_edit(&base_f32, edit_offsets_from, &shifted, "shifted offsets", "overlap", "intro.bias");
}

/* Puts a bit pattern into element `e` of a tensor of the base file. */
static void expect_bad_value(const blob *base, const char *name, int64_t e, uint32_t bits,
                             int bytes, const char *must) {
  json_object *hdr = blob_header(base);
  json_object *offs = json_object_object_get(json_object_object_get(hdr, name), "data_offsets");
  int64_t begin = json_object_get_int64(json_object_array_get_idx(offs, 0));
  json_object_put(hdr);
  blob b = {malloc(base->size), base->size};
  memcpy(b.data, base->data, b.size);
  uint8_t *p = b.data + (blob_data(base) - base->data) + begin + e * bytes;
  for (int k = 0; k < bytes; k++)
    p[k] = (uint8_t)(bits >> (8 * k));
  char what[128];
  snprintf(what, sizeof what, "%s[%" PRId64 "] = 0x%x", name, e, bits);
  expect_format(&b, what, name, must);
  blob_free(&b);
}

static void test_bad_values(void) {
  expect_bad_value(&base_f32, "cls.fc2.bias", 1, 0x7fc00000u, 4, "element 1 is NaN");
  expect_bad_value(&base_f32, "intro.weight", 0, 0x7f800000u, 4, "element 0 is inf");
  expect_bad_value(&base_f32, "middle.0.gamma", 15, 0xff800000u, 4, "element 15 is -inf");
  expect_bad_value(&base_f32, "encoders.1.0.sca.weight", 3, 0x7f800001u, 4, "NaN");
  expect_bad_value(&base_f16, "decoders.1.0.norm2.bias", 2, 0x7c00u, 2, "element 2 is inf");
  expect_bad_value(&base_f16, "cls.mix", 0, 0xfe00u, 2, "NaN");
}

/* Byte flips across the file: never a crash, and any failure is FORMAT. */
static void test_corruption(const blob *base) {
  uint64_t state = 12345;
  int wrong = 0;
  blob b = {malloc(base->size), base->size};
  for (int trial = 0; trial < 3000; trial++) {
    memcpy(b.data, base->data, b.size);
    for (int k = 0; k < 1 + trial % 3; k++) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      size_t at = (size_t)(state >> 33) % (trial % 2 ? b.size : 8 + blob_header_len(base));
      b.data[at] ^= (uint8_t)(1u << ((state >> 20) & 7));
    }
    mdc_weights w;
    maskdcpt_error err;
    maskdcpt_status rc = parse_exact(b.data, b.size, &w, &err);
    if (rc == MASKDCPT_OK)
      mdc_weights_clear(&w);
    else if (rc != MASKDCPT_ERROR_FORMAT || !weights_empty(&w))
      wrong++;
  }
  check(wrong == 0, "corrupted files give FORMAT (%d did not)", wrong);
  blob_free(&b);
}

int main(void) {
  const char *t = getenv("MASKDCPT_TEST_TMP");
  snprintf(tmp_dir, sizeof tmp_dir, "%s", t && *t ? t : "/tmp");

  test_errors();
  test_arch_specs();
  test_arch_macs();
  test_arch_json();
  test_arch_validate();
  test_init_random();
  test_round_trip_f32();
  test_round_trip_f16();
  if (base_f32.data && base_f16.data) {
    test_bf16_and_layout();
    test_io_errors();
    test_header_length();
    test_bad_json();
    test_bad_metadata();
    test_class_metadata();
    test_bad_arch();
    test_bad_tensors();
    test_bad_values();
    test_truncated(&base_f16, "f16 file", 1);
    test_truncated(&base_f32, "f32 file", 7);
    test_corruption(&base_f32);
  } else {
    check(0, "no base file; malformed-file tests skipped");
  }
  blob_free(&base_f32);
  blob_free(&base_f16);
  mdc_weights_clear(&base_w);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
