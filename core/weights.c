/* weights.c - the safetensors weights file: parse and validate, write,
 * allocate and initialise at random.  Format and checks: docs/network.md.
 *
 * The parser treats its input as hostile (it is fuzzed): every length and
 * offset is checked before use, JSON goes through json-c only, and nothing
 * is allocated in proportion to a number read from the file before the
 * tensor table has been checked against the file's actual size. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "weights.h"

#define HEADER_MAX ((uint64_t)100 << 20) /* 100 MiB, as the reference implementation */
#define FORMAT_NAME "maskdcpt"
#define FORMAT_VERSION "1"
#define MSG_MAX 256 /* room for a sub-message inside err->message */

enum { DTYPE_F32 = 0, DTYPE_F16, DTYPE_BF16 };
static const char *const dtype_names[] = {"F32", "F16", "BF16"};
static const int dtype_sizes[] = {4, 2, 2};

/* Metadata written from the architecture, never copied from w->metadata. */
static const char *const reserved_keys[] = {"format", "format_version", "arch", "classes"};

/* ------------------------------------------------------- bytes, floats */

static uint64_t le64_load(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

static uint32_t le32_load(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16_load(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static void le_store(uint8_t *p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static float f32_from_bits(uint32_t b) {
  float f;
  memcpy(&f, &b, sizeof f);
  return f;
}

static uint32_t f32_to_bits(float f) {
  uint32_t b;
  memcpy(&b, &f, sizeof b);
  return b;
}

static float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp == 0x1f)
    return f32_from_bits(sign | 0x7f800000 | mant << 13);
  if (exp != 0)
    return f32_from_bits(sign | (exp + 112) << 23 | mant << 13);
  if (mant == 0)
    return f32_from_bits(sign);
  int e = -1; /* subnormal: normalise the mantissa into a float */
  do {
    e++;
    mant <<= 1;
  } while (!(mant & 0x400));
  return f32_from_bits(sign | (uint32_t)(112 - e) << 23 | (mant & 0x3ff) << 13);
}

/* Round to nearest, ties to even, through subnormals; overflow gives inf,
 * NaN stays a (quiet) NaN. */
static uint16_t f32_to_f16(float f) {
  const uint32_t x = f32_to_bits(f), sign = (x >> 16) & 0x8000, a = x & 0x7fffffff;
  if (a >= 0x7f800000)
    return (uint16_t)(sign | 0x7c00 | (a > 0x7f800000 ? 0x200 | ((a >> 13) & 0x3ff) : 0));
  if (a >= 0x477ff000) /* >= 65520, the midpoint above the largest half: inf */
    return (uint16_t)(sign | 0x7c00);
  if (a < 0x38800000) { /* below 2^-14: a half subnormal, or zero */
    const int exp = (int)(a >> 23);
    if (exp < 102) /* below 2^-25 (the midpoint of 0 and 2^-24 rounds to 0) */
      return (uint16_t)sign;
    const int shift = 126 - exp; /* 14..24: float mantissa -> units of 2^-24 */
    const uint32_t mant = (a & 0x7fffff) | 0x800000, halfway = 1u << (shift - 1);
    uint32_t q = mant >> shift, rem = mant & ((1u << shift) - 1);
    if (rem > halfway || (rem == halfway && (q & 1)))
      q++; /* may carry into the smallest normal: still the right encoding */
    return (uint16_t)(sign | q);
  }
  uint32_t h = (a >> 13) - (112u << 10), rem = a & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
    h++; /* a carry into the exponent is the correct next binade / inf */
  return (uint16_t)(sign | h);
}

static float bf16_to_f32(uint16_t b) { return f32_from_bits((uint32_t)b << 16); }

static float value_load(const uint8_t *p, int dtype) {
  switch (dtype) {
  case DTYPE_F16:
    return f16_to_f32(le16_load(p));
  case DTYPE_BF16:
    return bf16_to_f32(le16_load(p));
  default:
    return f32_from_bits(le32_load(p));
  }
}

static const char *value_class(float v) { return isnan(v) ? "NaN" : v > 0 ? "inf" : "-inf"; }

/* ------------------------------------------------------------- helpers */

static void weights_free_metadata(mdc_weights *w) {
  for (int i = 0; i < w->num_metadata; i++) {
    free(w->metadata[i].key);
    free(w->metadata[i].value);
  }
  free(w->metadata);
  w->metadata = NULL;
  w->num_metadata = 0;
}

void mdc_weights_clear(mdc_weights *w) {
  if (!w)
    return;
  weights_free_metadata(w);
  free(w->tensors);
  free(w->storage);
  memset(w, 0, sizeof *w);
}

const float *mdc_weights_tensor(const mdc_weights *w, const char *name) {
  if (!w || !w->tensors)
    return NULL;
  int i = mdc_arch_tensor_index(&w->arch, name);
  return i >= 0 && i < w->num_tensors ? w->tensors[i] : NULL;
}

const char *mdc_weights_metadata(const mdc_weights *w, const char *key) {
  if (!w || !key)
    return NULL;
  for (int i = 0; i < w->num_metadata; i++)
    if (strcmp(w->metadata[i].key, key) == 0)
      return w->metadata[i].value;
  return NULL;
}

static mdc_metadata_entry *metadata_find(mdc_weights *w, const char *key) {
  for (int i = 0; i < w->num_metadata; i++)
    if (strcmp(w->metadata[i].key, key) == 0)
      return &w->metadata[i];
  return NULL;
}

/* Room for `count` more entries in one step (a header may hold many). */
static int metadata_reserve(mdc_weights *w, size_t count) {
  if (count == 0)
    return 1;
  mdc_metadata_entry *grown =
      realloc(w->metadata, ((size_t)w->num_metadata + count) * sizeof *w->metadata);
  if (!grown)
    return 0;
  w->metadata = grown;
  return 1;
}

/* Appends after metadata_reserve() made room. */
static int metadata_push(mdc_weights *w, const char *key, const char *value) {
  char *k = strdup(key), *v = strdup(value);
  if (!k || !v) {
    free(k);
    free(v);
    return 0;
  }
  w->metadata[w->num_metadata].key = k;
  w->metadata[w->num_metadata].value = v;
  w->num_metadata++;
  return 1;
}

static int metadata_append(mdc_weights *w, const char *key, const char *value) {
  return metadata_reserve(w, 1) && metadata_push(w, key, value);
}

/* Well-formed UTF-8 (no overlongs, surrogates or values past U+10FFFF),
 * which is what a reader's JSON parser accepts. */
/* Strict UTF-8 (no overlongs, surrogates or NUL) over n bytes.  Checked
 * here rather than by json-c's JSON_TOKENER_VALIDATE_UTF8, which rejects
 * valid headers in json-c 0.18. */
static int utf8_valid_n(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str, *end = s + n;
  while (s < end) {
    unsigned c = *s, k = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2
                                     : (c & 0xf8) == 0xf0 ? 3 : 9;
    if (c == 0 || k == 9 || c == 0xc0 || c == 0xc1 || c > 0xf4 || (size_t)(end - s) < k + 1)
      return 0;
    unsigned cp = k == 0 ? c : c & (0x3f >> k);
    for (unsigned i = 1; i <= k; i++) {
      if ((s[i] & 0xc0) != 0x80)
        return 0;
      cp = cp << 6 | (s[i] & 0x3f);
    }
    static const unsigned min_cp[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return 0;
    s += k + 1;
  }
  return 1;
}

static int utf8_valid(const char *str) { return utf8_valid_n(str, strlen(str)); }

/* A copy of valid UTF-8 text with every multi-byte character written as a
 * JSON \u escape (a surrogate pair above U+FFFF); malloc'd, NULL when out
 * of memory.  Outside strings such bytes are a syntax error either way. */
static char *utf8_escape_json(const char *text, size_t len, size_t *out_len) {
  size_t extra = 0;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)text[i] >= 0x80) extra += 12; /* at most 12 bytes per input byte */
  if (len > SIZE_MAX - extra - 1) return NULL;
  char *out = malloc(len + extra + 1);
  if (!out) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < len;) {
    unsigned char c = (unsigned char)text[i];
    if (c < 0x80) {
      out[o++] = (char)c;
      i++;
      continue;
    }
    unsigned k = (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : 3;
    unsigned cp = c & (0x3f >> k);
    for (unsigned j = 1; j <= k; j++) cp = cp << 6 | ((unsigned char)text[i + j] & 0x3f);
    i += k + 1;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      o += (size_t)sprintf(out + o, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
    } else {
      o += (size_t)sprintf(out + o, "\\u%04x", cp);
    }
  }
  out[o] = '\0';
  *out_len = o;
  return out;
}

maskdcpt_status mdc_weights_set_metadata(mdc_weights *w, const char *key, const char *value,
                                         maskdcpt_error *err) {
  if (!w || !key || !*key || !value)
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT,
                         "metadata: a non-empty key and a value are required");
  if (!utf8_valid(key) || !utf8_valid(value)) /* the file could not be read back */
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT,
                         "metadata '%.60s': not valid UTF-8", key);
  mdc_metadata_entry *e = metadata_find(w, key);
  if (e) {
    char *v = strdup(value);
    if (!v)
      return mdc_set_error(err, MASKDCPT_ERROR_OUT_OF_MEMORY, "metadata '%s': out of memory", key);
    free(e->value);
    e->value = v;
    return MASKDCPT_OK;
  }
  if (!metadata_append(w, key, value))
    return mdc_set_error(err, MASKDCPT_ERROR_OUT_OF_MEMORY, "metadata '%s': out of memory", key);
  return MASKDCPT_OK;
}

/* "[a,b,c]" of a spec's shape. */
static void shape_format(const mdc_tensor_spec *s, char *buf, size_t size) {
  size_t at = (size_t)snprintf(buf, size, "[");
  for (int d = 0; d < s->ndim && at < size; d++)
    at += (size_t)snprintf(buf + at, size - at, "%s%" PRId64, d ? "," : "", s->shape[d]);
  if (at < size)
    snprintf(buf + at, size - at, "]");
}

/* A JSON value as compact text, cut to fit a message. */
static void json_format(json_object *v, char *buf, size_t size) {
  const char *s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
                                                        JSON_C_TO_STRING_NOSLASHESCAPE);
  size_t n = strlen(s ? s : "");
  if (n < size || size < 8)
    snprintf(buf, size, "%s", s ? s : "");
  else
    snprintf(buf, size, "%.*s...", (int)(size - 4), s);
}

/* ---------------------------------------------------------------- JSON */

/* Parses exactly `len` bytes as one JSON value of type `want` (trailing
 * whitespace allowed: safetensors pads its header with spaces).  NULL with
 * a reason on failure. */
static json_object *json_parse_exact(const char *text, size_t len, json_type want, char *why,
                                     size_t why_size) {
  if (len > INT_MAX) {
    snprintf(why, why_size, "JSON text too long (%zu bytes)", len);
    return NULL;
  }
  json_tokener *tok = json_tokener_new();
  if (!tok) {
    snprintf(why, why_size, "out of memory");
    return NULL;
  }
  if (!utf8_valid_n(text, len)) {
    json_tokener_free(tok);
    snprintf(why, why_size, "invalid JSON: not valid UTF-8");
    return NULL;
  }
  /* json-c 0.18's strict mode rejects raw multi-byte UTF-8 in strings:
   * parse a copy with those characters written as \u escapes. */
  size_t ascii_len;
  char *ascii = utf8_escape_json(text, len, &ascii_len);
  if (!ascii) {
    json_tokener_free(tok);
    snprintf(why, why_size, "out of memory");
    return NULL;
  }
  json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
  json_object *obj = json_tokener_parse_ex(tok, ascii, (int)ascii_len);
  enum json_tokener_error e = json_tokener_get_error(tok);
  size_t end = json_tokener_get_parse_end(tok);
  json_tokener_free(tok);
  if (e != json_tokener_success) {
    if (e == json_tokener_continue)
      snprintf(why, why_size, "invalid JSON: ends before the value is complete");
    else
      snprintf(why, why_size, "invalid JSON at byte %zu: %s", end, json_tokener_error_desc(e));
    json_object_put(obj);
    free(ascii);
    return NULL;
  }
  for (size_t i = end; i < ascii_len; i++)
    if (ascii[i] != ' ' && ascii[i] != '\t' && ascii[i] != '\n' && ascii[i] != '\r') {
      snprintf(why, why_size, "invalid JSON: unexpected data after the value at byte %zu", i);
      json_object_put(obj);
      free(ascii);
      return NULL;
    }
  free(ascii);
  if (!json_object_is_type(obj, want)) { /* also a JSON null, which parses to NULL */
    snprintf(why, why_size, "expected a JSON %s, found %s", json_type_to_name(want),
             json_type_to_name(json_object_get_type(obj)));
    json_object_put(obj);
    return NULL;
  }
  return obj;
}

/* A JSON integer that fits an int (json-c clamps larger ones to the int64
 * range, which is still out of ours). */
static int json_to_int(json_object *v, int *out) {
  if (!json_object_is_type(v, json_type_int))
    return 0;
  int64_t x = json_object_get_int64(v);
  if (x < INT_MIN || x > INT_MAX)
    return 0;
  *out = (int)x;
  return 1;
}

/* ------------------------------------------------------------ the arch */

static const char *const arch_keys[] = {"width",      "levels",     "enc_blocks", "middle_blocks",
                                        "dec_blocks", "cls_hidden", "sca_window", "norm_eps"};
#define ARCH_NUM_KEYS ((int)(sizeof arch_keys / sizeof arch_keys[0]))

static int arch_known_key(const char *key) {
  for (int i = 0; i < ARCH_NUM_KEYS; i++)
    if (strcmp(key, arch_keys[i]) == 0)
      return 1;
  return 0;
}

static int arch_get_int(json_object *o, const char *key, int *out, char *why, size_t n) {
  json_object *v = json_object_object_get(o, key);
  char found[64];
  if (json_to_int(v, out))
    return 1;
  json_format(v, found, sizeof found);
  snprintf(why, n, "key '%s': expected an integer that fits in 32 bits, found %s", key, found);
  return 0;
}

static int arch_get_array(json_object *o, const char *key, int count, int *out, char *why,
                          size_t n) {
  json_object *v = json_object_object_get(o, key);
  char found[64];
  json_format(v, found, sizeof found);
  if (!json_object_is_type(v, json_type_array) || (int)json_object_array_length(v) != count) {
    snprintf(why, n, "key '%s': expected an array of %d integers (one per level), found %s", key,
             count, found);
    return 0;
  }
  for (int i = 0; i < count; i++)
    if (!json_to_int(json_object_array_get_idx(v, (size_t)i), &out[i])) {
      snprintf(why, n, "key '%s': element %d is not an integer in range: %s", key, i, found);
      return 0;
    }
  return 1;
}

static int arch_get_eps(json_object *o, float *out, char *why, size_t n) {
  json_object *v = json_object_object_get(o, "norm_eps");
  char found[64];
  json_format(v, found, sizeof found);
  if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int)) {
    snprintf(why, n, "key 'norm_eps': expected a number, found %s", found);
    return 0;
  }
  double d = json_object_get_double(v);
  if (!(d > 0.0 && d <= 1.0)) { /* checked before the cast: a huge double to float is UB */
    snprintf(why, n, "key 'norm_eps': %s out of range (0, 0.1]", found);
    return 0;
  }
  *out = (float)d;
  return 1;
}

static int arch_check_keys(json_object *o, char *why, size_t n) {
  json_object_object_foreach(o, key, val) {
    (void)val;
    if (!arch_known_key(key)) {
      snprintf(why, n, "unknown key '%.60s'", key);
      return 0;
    }
  }
  for (int i = 0; i < ARCH_NUM_KEYS; i++)
    if (!json_object_object_get_ex(o, arch_keys[i], NULL)) {
      snprintf(why, n, "key '%s' missing", arch_keys[i]);
      return 0;
    }
  return 1;
}

/* Fills the architecture fields of `a` from the "arch" object; the caller
 * validates the ranges. */
static int arch_from_object(json_object *o, mdc_arch *a, char *why, size_t n) {
  if (!arch_check_keys(o, why, n) || !arch_get_int(o, "width", &a->width, why, n) ||
      !arch_get_int(o, "levels", &a->levels, why, n) ||
      !arch_get_int(o, "middle_blocks", &a->middle_blocks, why, n) ||
      !arch_get_int(o, "cls_hidden", &a->cls_hidden, why, n) ||
      !arch_get_int(o, "sca_window", &a->sca_window, why, n) || !arch_get_eps(o, &a->norm_eps, why, n))
    return 0;
  /* The scalars first (block arrays still zero, a placeholder class), so
   * that a bad `levels` is reported as such and bounds the arrays. */
  a->num_classes = 1;
  snprintf(a->class_names[0], sizeof a->class_names[0], "x");
  if (!mdc_arch_validate(a, why, n))
    return 0;
  return arch_get_array(o, "enc_blocks", a->levels, a->enc_blocks, why, n) &&
         arch_get_array(o, "dec_blocks", a->levels, a->dec_blocks, why, n);
}

static int classes_from_array(json_object *arr, mdc_arch *a, char *why, size_t n) {
  int count = (int)json_object_array_length(arr);
  if (count < 1 || count > MDC_MAX_CLASSES) {
    snprintf(why, n, "expected 1..%d class names, found %d", MDC_MAX_CLASSES, count);
    return 0;
  }
  for (int k = 0; k < count; k++) {
    json_object *v = json_object_array_get_idx(arr, (size_t)k);
    char found[64];
    json_format(v, found, sizeof found);
    if (!json_object_is_type(v, json_type_string)) {
      snprintf(why, n, "class %d: expected a string, found %s", k, found);
      return 0;
    }
    const char *s = json_object_get_string(v);
    size_t len = (size_t)json_object_get_string_len(v);
    if (strlen(s) != len || len >= MDC_MAX_CLASS_NAME) {
      snprintf(why, n, "class %d: expected a name of 1..%d characters without NUL, found %s", k,
               MDC_MAX_CLASS_NAME - 1, found);
      return 0;
    }
    memcpy(a->class_names[k], s, len + 1);
  }
  a->num_classes = count;
  return 1;
}

/* --------------------------------------------------------- the parser */

typedef struct parse_state {
  const char *name;    /* file name for messages */
  maskdcpt_error *err;
  json_object *root;   /* the header */
  const uint8_t *data; /* the data section */
  uint64_t data_size;
  mdc_weights w;
} parse_state;

/* Where one tensor lies in the data section. */
typedef struct tensor_loc {
  uint64_t begin, end;
  int index, dtype;
} tensor_loc;

static maskdcpt_status parse_fail(parse_state *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static maskdcpt_status parse_fail(parse_state *st, const char *fmt, ...) {
  char msg[sizeof st->err->message];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return mdc_set_error(st->err, MASKDCPT_ERROR_FORMAT, "%s: %s", st->name, msg);
}

static maskdcpt_status parse_header(parse_state *st, const uint8_t *data, size_t size) {
  if (size < 8)
    return parse_fail(st, "file too short (%zu bytes): expected an 8-byte header length", size);
  const uint64_t n = le64_load(data), room = (uint64_t)size - 8;
  const uint64_t limit = room < HEADER_MAX ? room : HEADER_MAX;
  if (n < 2 || n > limit)
    return parse_fail(st, "header length %" PRIu64 " out of range 2..%" PRIu64
                          " (file of %zu bytes, at most %" PRIu64 " bytes of header)",
                      n, limit, size, HEADER_MAX);
  char why[MSG_MAX];
  st->root = json_parse_exact((const char *)data + 8, (size_t)n, json_type_object, why, sizeof why);
  if (!st->root)
    return parse_fail(st, "header: %s", why);
  st->data = data + 8 + n;
  st->data_size = room - n;
  return MASKDCPT_OK;
}

/* Copies every __metadata__ entry; the values must be strings. */
static maskdcpt_status parse_metadata_entries(parse_state *st) {
  json_object *meta;
  if (!json_object_object_get_ex(st->root, "__metadata__", &meta))
    return parse_fail(st, "no __metadata__ (expected format \"" FORMAT_NAME "\")");
  if (!json_object_is_type(meta, json_type_object))
    return parse_fail(st, "__metadata__: expected an object, found %s",
                      json_type_to_name(json_object_get_type(meta)));
  if (!metadata_reserve(&st->w, (size_t)json_object_object_length(meta)))
    return mdc_set_error(st->err, MASKDCPT_ERROR_OUT_OF_MEMORY, "%s: out of memory", st->name);
  json_object_object_foreach(meta, key, val) {
    if (!json_object_is_type(val, json_type_string))
      return parse_fail(st, "metadata '%.60s': expected a string, found %s", key,
                        json_type_to_name(json_object_get_type(val)));
    const char *s = json_object_get_string(val);
    if (strlen(s) != (size_t)json_object_get_string_len(val))
      return parse_fail(st, "metadata '%.60s': value contains a NUL character", key);
    if (!metadata_push(&st->w, key, s))
      return mdc_set_error(st->err, MASKDCPT_ERROR_OUT_OF_MEMORY, "%s: out of memory", st->name);
  }
  return MASKDCPT_OK;
}

static maskdcpt_status parse_metadata_fixed(parse_state *st, const char *key, const char *want) {
  const char *v = mdc_weights_metadata(&st->w, key);
  if (!v)
    return parse_fail(st, "metadata '%s' missing (expected \"%s\")", key, want);
  if (strcmp(v, want) != 0)
    return parse_fail(st, "metadata '%s': expected \"%s\", found \"%.80s\"", key, want, v);
  return MASKDCPT_OK;
}

static maskdcpt_status parse_arch(parse_state *st) {
  mdc_arch *a = &st->w.arch;
  char why[MSG_MAX];
  const char *text = mdc_weights_metadata(&st->w, "arch");
  if (!text)
    return parse_fail(st, "metadata 'arch' missing");
  json_object *o = json_parse_exact(text, strlen(text), json_type_object, why, sizeof why);
  int ok = o && arch_from_object(o, a, why, sizeof why);
  json_object_put(o);
  if (!ok)
    return parse_fail(st, "metadata 'arch': %s", why);
  /* Still with the placeholder class: the block counts, before the real
   * classes, so that errors name the right key. */
  if (!mdc_arch_validate(a, why, sizeof why))
    return parse_fail(st, "metadata 'arch': %s", why);
  return MASKDCPT_OK;
}

static maskdcpt_status parse_classes(parse_state *st) {
  mdc_arch *a = &st->w.arch;
  char why[MSG_MAX];
  const char *text = mdc_weights_metadata(&st->w, "classes");
  if (!text)
    return parse_fail(st, "metadata 'classes' missing");
  memset(a->class_names, 0, sizeof a->class_names);
  json_object *arr = json_parse_exact(text, strlen(text), json_type_array, why, sizeof why);
  int ok = arr && classes_from_array(arr, a, why, sizeof why);
  json_object_put(arr);
  if (!ok || !mdc_arch_validate(a, why, sizeof why))
    return parse_fail(st, "metadata 'classes': %s", why);
  return MASKDCPT_OK;
}

/* Optional metadata `key`, JSON of type `want`: *out is the parsed value
 * (the caller puts it), or NULL when the key is absent (MASKDCPT_OK) or
 * malformed (the error). */
static maskdcpt_status parse_optional_json(parse_state *st, const char *key, json_type want,
                                           json_object **out) {
  char why[MSG_MAX];
  const char *text = mdc_weights_metadata(&st->w, key);
  *out = NULL;
  if (!text) return MASKDCPT_OK;
  *out = json_parse_exact(text, strlen(text), want, why, sizeof why);
  return *out ? MASKDCPT_OK : parse_fail(st, "metadata '%s': %s", key, why);
}

/* Optional metadata 'auto_focus': the classes that auto mode conditions on
 * alone once they hold more than half of the probability (docs/network.md).
 * A JSON array of distinct class names of this file; absent = none. */
static maskdcpt_status parse_auto_focus(parse_state *st) {
  json_object *arr;
  maskdcpt_status rc = parse_optional_json(st, "auto_focus", json_type_array, &arr);
  if (!arr) return rc;
  for (size_t i = 0; rc == MASKDCPT_OK && i < json_object_array_length(arr); i++) {
    json_object *v = json_object_array_get_idx(arr, i);
    int k = json_object_is_type(v, json_type_string)
                ? mdc_arch_class_index(&st->w.arch, json_object_get_string(v))
                : -1;
    if (k >= 0 && !st->w.auto_focus[k]) {
      st->w.auto_focus[k] = 1;
      continue;
    }
    char found[64];
    json_format(v, found, sizeof found);
    rc = k < 0 ? parse_fail(st, "metadata 'auto_focus': entry %zu: expected a class name of this "
                            "file, found %s", i, found)
               : parse_fail(st, "metadata 'auto_focus': class %s is listed twice", found);
  }
  json_object_put(arr);
  return rc;
}

/* Optional metadata 'passes': how many times the network runs, each pass on
 * the previous one's output, when a class leads the conditioning
 * (docs/network.md).  A JSON object from class names of this file to
 * integers 1..MDC_MAX_PASSES; absent classes run once. */
static maskdcpt_status parse_passes(parse_state *st) {
  json_object *obj;
  maskdcpt_status rc = parse_optional_json(st, "passes", json_type_object, &obj);
  if (!obj) return rc;
  json_object_object_foreach(obj, name, v) {
    int k = mdc_arch_class_index(&st->w.arch, name);
    int64_t n = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : 0;
    if (k >= 0 && n >= 1 && n <= MDC_MAX_PASSES) {
      st->w.passes[k] = (unsigned char)n;
      continue;
    }
    /* the key as JSON, so that a hostile name prints escaped */
    char key[64], found[64];
    json_object *name_obj = json_object_new_string(name);
    json_format(name_obj, key, sizeof key);
    json_object_put(name_obj);
    json_format(v, found, sizeof found);
    rc = k < 0 ? parse_fail(st, "metadata 'passes': %s is not a class of this file", key)
               : parse_fail(st, "metadata 'passes': %s: expected an integer 1..%d, found %s", key,
                            MDC_MAX_PASSES, found);
    break;
  }
  json_object_put(obj);
  return rc;
}

static int dtype_from_name(const char *s) {
  for (int d = 0; d < 3; d++)
    if (strcmp(s, dtype_names[d]) == 0)
      return d;
  return -1;
}

static int shape_matches(json_object *shape, const mdc_tensor_spec *s) {
  if (!json_object_is_type(shape, json_type_array) ||
      json_object_array_length(shape) != (size_t)s->ndim)
    return 0;
  for (int d = 0; d < s->ndim; d++) {
    json_object *v = json_object_array_get_idx(shape, (size_t)d);
    if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) != s->shape[d])
      return 0;
  }
  return 1;
}

/* data_offsets: two non-negative integers. */
static int offsets_read(json_object *offs, uint64_t *begin, uint64_t *end) {
  if (!json_object_is_type(offs, json_type_array) || json_object_array_length(offs) != 2)
    return 0;
  int64_t v[2];
  for (int i = 0; i < 2; i++) {
    json_object *x = json_object_array_get_idx(offs, (size_t)i);
    if (!json_object_is_type(x, json_type_int) || (v[i] = json_object_get_int64(x)) < 0)
      return 0;
  }
  *begin = (uint64_t)v[0];
  *end = (uint64_t)v[1];
  return 1;
}

static maskdcpt_status parse_tensor_dtype(parse_state *st, const mdc_tensor_spec *s,
                                          json_object *entry, int *dtype) {
  json_object *v;
  if (!json_object_object_get_ex(entry, "dtype", &v))
    return parse_fail(st, "tensor '%s': no dtype", s->name);
  *dtype = json_object_is_type(v, json_type_string) ? dtype_from_name(json_object_get_string(v)) : -1;
  if (*dtype >= 0)
    return MASKDCPT_OK;
  char found[64];
  json_format(v, found, sizeof found);
  return parse_fail(st, "tensor '%s': unsupported dtype %s (expected F32, F16 or BF16)", s->name,
                    found);
}

/* Messages are only formatted on failure: the parser runs once per tensor. */
static maskdcpt_status parse_tensor_offsets(parse_state *st, const mdc_tensor_spec *s,
                                            json_object *entry, tensor_loc *loc) {
  json_object *offs;
  if (!json_object_object_get_ex(entry, "data_offsets", &offs))
    return parse_fail(st, "tensor '%s': no data_offsets", s->name);
  const int read = offsets_read(offs, &loc->begin, &loc->end);
  const int inside = read && loc->begin <= loc->end && loc->end <= st->data_size;
  /* numel is at most 2^26 here (validated arch), so this cannot overflow. */
  const uint64_t want = (uint64_t)s->numel * (uint64_t)dtype_sizes[loc->dtype];
  if (inside && loc->end - loc->begin == want)
    return MASKDCPT_OK;
  char found[96];
  json_format(offs, found, sizeof found);
  if (!read)
    return parse_fail(st, "tensor '%s': data_offsets must be [begin, end], two non-negative "
                          "integers, found %s", s->name, found);
  if (!inside)
    return parse_fail(st, "tensor '%s': data_offsets %s outside the data section of %" PRIu64
                          " bytes (or begin > end)", s->name, found, st->data_size);
  return parse_fail(st, "tensor '%s': data_offsets %s span %" PRIu64 " bytes, expected %" PRIu64
                        " (%" PRId64 " x %s)", s->name, found, loc->end - loc->begin, want,
                    s->numel, dtype_names[loc->dtype]);
}

static maskdcpt_status parse_tensor_entry(parse_state *st, const mdc_tensor_spec *s,
                                          tensor_loc *loc) {
  json_object *entry, *shape = NULL;
  char want[96], found[96];
  if (!json_object_object_get_ex(st->root, s->name, &entry)) {
    shape_format(s, want, sizeof want);
    return parse_fail(st, "tensor '%s' missing (expected shape %s)", s->name, want);
  }
  if (!json_object_is_type(entry, json_type_object))
    return parse_fail(st, "tensor '%s': expected an object, found %s", s->name,
                      json_type_to_name(json_object_get_type(entry)));
  maskdcpt_status rc = parse_tensor_dtype(st, s, entry, &loc->dtype);
  if (rc != MASKDCPT_OK)
    return rc;
  json_object_object_get_ex(entry, "shape", &shape);
  if (!shape_matches(shape, s)) {
    shape_format(s, want, sizeof want);
    json_format(shape, found, sizeof found);
    return parse_fail(st, "tensor '%s': expected shape %s, found %s", s->name, want,
                      shape ? found : "no shape");
  }
  return parse_tensor_offsets(st, s, entry, loc);
}

/* Reports the first tensor name the architecture does not have. */
static maskdcpt_status parse_find_unexpected(parse_state *st) {
  json_object_object_foreach(st->root, key, val) {
    (void)val;
    if (strcmp(key, "__metadata__") != 0 && mdc_arch_tensor_index(&st->w.arch, key) < 0)
      return parse_fail(st, "unexpected tensor '%.100s' (not part of this architecture)", key);
  }
  /* Unreachable with json-c's unique keys, kept so a count mismatch always fails. */
  return parse_fail(st, "unexpected tensors in the header");
}

static int loc_compare(const void *pa, const void *pb) {
  const tensor_loc *a = pa, *b = pb;
  if (a->begin != b->begin)
    return a->begin < b->begin ? -1 : 1;
  return a->end < b->end ? -1 : a->end > b->end;
}

static maskdcpt_status parse_check_overlap(parse_state *st, tensor_loc *locs, int n) {
  tensor_loc *sorted = malloc((size_t)n * sizeof *sorted);
  if (!sorted)
    return mdc_set_error(st->err, MASKDCPT_ERROR_OUT_OF_MEMORY, "%s: out of memory", st->name);
  memcpy(sorted, locs, (size_t)n * sizeof *sorted);
  qsort(sorted, (size_t)n, sizeof *sorted, loc_compare);
  for (int k = 1; k < n; k++)
    if (sorted[k].begin < sorted[k - 1].end) {
      mdc_tensor_spec a, b;
      mdc_arch_tensor(&st->w.arch, sorted[k - 1].index, &a);
      mdc_arch_tensor(&st->w.arch, sorted[k].index, &b);
      tensor_loc la = sorted[k - 1], lb = sorted[k];
      free(sorted);
      return parse_fail(st, "tensors '%s' [%" PRIu64 ",%" PRIu64 "] and '%s' [%" PRIu64
                            ",%" PRIu64 "] overlap", a.name, la.begin, la.end, b.name, lb.begin,
                        lb.end);
    }
  free(sorted);
  return MASKDCPT_OK;
}

static maskdcpt_status parse_tensor_table(parse_state *st, tensor_loc *locs, int n) {
  for (int i = 0; i < n; i++) {
    mdc_tensor_spec s;
    mdc_arch_tensor(&st->w.arch, i, &s);
    locs[i].index = i;
    maskdcpt_status rc = parse_tensor_entry(st, &s, &locs[i]);
    if (rc != MASKDCPT_OK)
      return rc;
  }
  /* All n canonical names are present; any further key is unexpected. */
  int keys = json_object_object_length(st->root) - 1; /* less __metadata__ */
  if (keys != n)
    return parse_find_unexpected(st);
  return parse_check_overlap(st, locs, n);
}

/* Allocates the storage and converts every tensor to fp32, checking that
 * each value is finite. */
static maskdcpt_status parse_convert(parse_state *st, const tensor_loc *locs, int n) {
  mdc_weights *w = &st->w;
  int64_t total = 0;
  mdc_tensor_spec s;
  for (int i = 0; i < n; i++) {
    mdc_arch_tensor(&w->arch, i, &s);
    total += s.numel;
  }
  /* Every tensor's bytes lie in the file without overlap: total is bounded. */
  w->storage = malloc((size_t)(total > 0 ? total : 1) * sizeof(float));
  w->tensors = calloc((size_t)n, sizeof *w->tensors);
  if (!w->storage || !w->tensors)
    return mdc_set_error(st->err, MASKDCPT_ERROR_OUT_OF_MEMORY, "%s: out of memory for %" PRId64
                         " parameters", st->name, total);
  w->num_tensors = n;
  float *dst = w->storage;
  for (int i = 0; i < n; i++) {
    mdc_arch_tensor(&w->arch, i, &s);
    const uint8_t *src = st->data + locs[i].begin;
    const int dsize = dtype_sizes[locs[i].dtype];
    w->tensors[i] = dst;
    for (int64_t e = 0; e < s.numel; e++) {
      float v = value_load(src + e * dsize, locs[i].dtype);
      if (!isfinite(v))
        return parse_fail(st, "tensor '%s': element %" PRId64 " is %s (every value must be finite)",
                          s.name, e, value_class(v));
      dst[e] = v;
    }
    dst += s.numel;
  }
  return MASKDCPT_OK;
}

static maskdcpt_status parse_run(parse_state *st, const uint8_t *data, size_t size) {
  maskdcpt_status rc;
  if ((rc = parse_header(st, data, size)) != MASKDCPT_OK ||
      (rc = parse_metadata_entries(st)) != MASKDCPT_OK ||
      (rc = parse_metadata_fixed(st, "format", FORMAT_NAME)) != MASKDCPT_OK ||
      (rc = parse_metadata_fixed(st, "format_version", FORMAT_VERSION)) != MASKDCPT_OK ||
      (rc = parse_arch(st)) != MASKDCPT_OK || (rc = parse_classes(st)) != MASKDCPT_OK ||
      (rc = parse_auto_focus(st)) != MASKDCPT_OK || (rc = parse_passes(st)) != MASKDCPT_OK)
    return rc;
  const int n = mdc_arch_num_tensors(&st->w.arch);
  tensor_loc *locs = calloc((size_t)n, sizeof *locs);
  if (!locs)
    return mdc_set_error(st->err, MASKDCPT_ERROR_OUT_OF_MEMORY, "%s: out of memory", st->name);
  rc = parse_tensor_table(st, locs, n);
  if (rc == MASKDCPT_OK)
    rc = parse_convert(st, locs, n);
  free(locs);
  return rc;
}

maskdcpt_status mdc_weights_parse(const uint8_t *data, size_t size, const char *name,
                                  mdc_weights *out, maskdcpt_error *err) {
  if (!out)
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT, "weights: no output");
  memset(out, 0, sizeof *out);
  if (!data && size > 0)
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT, "weights: no data");
  parse_state st;
  memset(&st, 0, sizeof st);
  st.name = name ? name : "<memory>";
  st.err = err;
  maskdcpt_status rc = parse_run(&st, data ? data : (const uint8_t *)"", size);
  json_object_put(st.root);
  if (rc != MASKDCPT_OK) {
    mdc_weights_clear(&st.w);
    return rc;
  }
  *out = st.w;
  return MASKDCPT_OK;
}

/* --------------------------------------------------------------- load */

/* Reads a whole stream; the size is only a hint (pipes have none). */
static int file_read_all(FILE *f, uint8_t **buf, size_t *size) {
  struct stat sb;
  size_t cap = fstat(fileno(f), &sb) == 0 && sb.st_size > 0 ? (size_t)sb.st_size + 1 : 65536;
  size_t used = 0;
  uint8_t *b = malloc(cap);
  if (!b)
    return ENOMEM;
  for (;;) {
    if (used == cap) {
      uint8_t *grown = cap < SIZE_MAX / 2 ? realloc(b, cap * 2) : NULL;
      if (!grown) {
        free(b);
        return ENOMEM;
      }
      b = grown;
      cap *= 2;
    }
    size_t got = fread(b + used, 1, cap - used, f);
    used += got;
    if (got == 0)
      break;
  }
  if (ferror(f)) {
    int e = errno ? errno : EIO;
    free(b);
    return e;
  }
  *buf = b;
  *size = used;
  return 0;
}

maskdcpt_status mdc_weights_load(const char *path, mdc_weights *out, maskdcpt_error *err) {
  if (out)
    memset(out, 0, sizeof *out);
  if (!path || !out)
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT, "weights: no path or output");
  FILE *f = fopen(path, "rb");
  if (!f)
    return mdc_set_error(err, MASKDCPT_ERROR_IO, "%s: cannot open: %s", path, strerror(errno));
  uint8_t *buf = NULL;
  size_t size = 0;
  errno = 0;
  int e = file_read_all(f, &buf, &size);
  fclose(f);
  if (e == ENOMEM)
    return mdc_set_error(err, MASKDCPT_ERROR_OUT_OF_MEMORY, "%s: out of memory reading the file",
                         path);
  if (e)
    return mdc_set_error(err, MASKDCPT_ERROR_IO, "%s: read error: %s", path, strerror(e));
  maskdcpt_status rc = mdc_weights_parse(buf, size, path, out, err);
  free(buf);
  return rc;
}

/* --------------------------------------------------- alloc and random */

maskdcpt_status mdc_weights_alloc(mdc_weights *out, const mdc_arch *arch, maskdcpt_error *err) {
  char why[MSG_MAX];
  if (!out || !arch)
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT, "weights: no architecture");
  memset(out, 0, sizeof *out);
  if (!mdc_arch_validate(arch, why, sizeof why))
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT, "invalid architecture: %s", why);
  const int n = mdc_arch_num_tensors(arch);
  const int64_t total = mdc_arch_num_params(arch);
  if ((uint64_t)total > SIZE_MAX / sizeof(float))
    return mdc_set_error(err, MASKDCPT_ERROR_OUT_OF_MEMORY, "%" PRId64 " parameters do not fit",
                         total);
  out->arch = *arch;
  out->storage = calloc((size_t)total, sizeof(float));
  out->tensors = calloc((size_t)n, sizeof *out->tensors);
  if (!out->storage || !out->tensors) {
    mdc_weights_clear(out);
    return mdc_set_error(err, MASKDCPT_ERROR_OUT_OF_MEMORY, "out of memory for %" PRId64
                         " parameters", total);
  }
  out->num_tensors = n;
  float *p = out->storage;
  for (int i = 0; i < n; i++) {
    mdc_tensor_spec s;
    mdc_arch_tensor(arch, i, &s);
    out->tensors[i] = p;
    p += s.numel;
  }
  return MASKDCPT_OK;
}

/* splitmix64: tiny, fully specified, identical everywhere. */
static uint64_t splitmix64_next(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Uniform in [-1, 1) from the top 53 bits. */
static double rng_symmetric(uint64_t *state) {
  return (double)(splitmix64_next(state) >> 11) * 0x1.0p-52 - 1.0;
}

#define INIT_BIAS_RANGE 0.05
#define INIT_NORM_RANGE 0.1
#define INIT_MIX_RANGE 0.5

static double init_value(const mdc_tensor_spec *s, double u, float residual_scale) {
  switch (s->role) {
  case MDC_ROLE_WEIGHT:
    return u * sqrt(3.0 / (s->fan_in > 0 ? s->fan_in : 1));
  case MDC_ROLE_BIAS:
    return u * INIT_BIAS_RANGE;
  case MDC_ROLE_NORM_WEIGHT:
    return 1.0 + u * INIT_NORM_RANGE;
  case MDC_ROLE_NORM_BIAS:
    return u * INIT_NORM_RANGE;
  case MDC_ROLE_RESIDUAL_SCALE:
    return u * residual_scale;
  case MDC_ROLE_MIX:
    return u * INIT_MIX_RANGE;
  }
  return 0.0;
}

maskdcpt_status mdc_weights_init_random(mdc_weights *out, const mdc_arch *arch, uint64_t seed,
                                        float residual_scale, maskdcpt_error *err) {
  if (out)
    memset(out, 0, sizeof *out);
  if (!isfinite(residual_scale))
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT,
                         "random init: residual scale must be finite");
  maskdcpt_status rc = mdc_weights_alloc(out, arch, err);
  if (rc != MASKDCPT_OK)
    return rc;
  uint64_t state = seed;
  for (int i = 0; i < out->num_tensors; i++) {
    mdc_tensor_spec s;
    mdc_arch_tensor(arch, i, &s);
    for (int64_t e = 0; e < s.numel; e++)
      out->tensors[i][e] = (float)init_value(&s, rng_symmetric(&state), residual_scale);
  }
  char prov[80];
  snprintf(prov, sizeof prov, "{\"kind\":\"random-init\",\"seed\":%" PRIu64 "}", seed);
  rc = mdc_weights_set_metadata(out, "provenance", prov, err);
  if (rc != MASKDCPT_OK)
    mdc_weights_clear(out);
  return rc;
}

/* --------------------------------------------------------------- write */

static int reserved_key(const char *key) {
  for (size_t i = 0; i < sizeof reserved_keys / sizeof reserved_keys[0]; i++)
    if (strcmp(key, reserved_keys[i]) == 0)
      return 1;
  return 0;
}

/* Values a reader will accept: finite, and representable in F16 when
 * writing F16 (a silent inf would make the file unloadable). */
static maskdcpt_status write_check_values(const mdc_weights *w, int fp16, maskdcpt_error *err) {
  for (int i = 0; i < w->num_tensors; i++) {
    mdc_tensor_spec s;
    mdc_arch_tensor(&w->arch, i, &s);
    if (!w->tensors[i])
      return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT, "tensor '%s': no data", s.name);
    for (int64_t e = 0; e < s.numel; e++) {
      float v = w->tensors[i][e];
      if (!isfinite(v))
        return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT,
                             "tensor '%s': element %" PRId64 " is %s", s.name, e, value_class(v));
      if (fp16 && (f32_to_f16(v) & 0x7c00) == 0x7c00)
        return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT,
                             "tensor '%s': element %" PRId64 " = %g does not fit in F16", s.name,
                             e, (double)v);
    }
  }
  return MASKDCPT_OK;
}

static int json_add_string(json_object *o, const char *key, const char *value) {
  json_object *v = value ? json_object_new_string(value) : NULL;
  return v && json_object_object_add(o, key, v) == 0;
}

static json_object *header_metadata(const mdc_weights *w) {
  json_object *meta = json_object_new_object();
  char *arch = mdc_arch_to_json(&w->arch), *classes = mdc_arch_classes_to_json(&w->arch);
  int ok = meta && json_add_string(meta, "format", FORMAT_NAME) &&
           json_add_string(meta, "format_version", FORMAT_VERSION) &&
           json_add_string(meta, "arch", arch) && json_add_string(meta, "classes", classes);
  for (int i = 0; ok && i < w->num_metadata; i++)
    if (!reserved_key(w->metadata[i].key))
      ok = json_add_string(meta, w->metadata[i].key, w->metadata[i].value);
  free(arch);
  free(classes);
  if (!ok) {
    json_object_put(meta);
    return NULL;
  }
  return meta;
}

static json_object *header_tensor(const mdc_tensor_spec *s, int fp16, uint64_t begin,
                                  uint64_t end) {
  json_object *t = json_object_new_object(), *shape = json_object_new_array(),
              *offs = json_object_new_array();
  int ok = t && shape && offs && json_add_string(t, "dtype", fp16 ? "F16" : "F32");
  for (int d = 0; ok && d < s->ndim; d++)
    ok = json_object_array_add(shape, json_object_new_int64(s->shape[d])) == 0;
  ok = ok && json_object_array_add(offs, json_object_new_int64((int64_t)begin)) == 0 &&
       json_object_array_add(offs, json_object_new_int64((int64_t)end)) == 0;
  if (!ok) {
    json_object_put(t);
    json_object_put(shape);
    json_object_put(offs);
    return NULL;
  }
  json_object_object_add(t, "shape", shape);
  json_object_object_add(t, "data_offsets", offs);
  return t;
}

/* The header JSON padded with spaces to a multiple of 8 (keeps the data
 * section aligned for readers that map the file); malloc'd. */
static char *header_build(const mdc_weights *w, int fp16, size_t *len) {
  json_object *root = json_object_new_object(), *meta = header_metadata(w);
  int ok = root && meta && json_object_object_add(root, "__metadata__", meta) == 0;
  if (!ok)
    json_object_put(meta);
  uint64_t at = 0;
  for (int i = 0; ok && i < w->num_tensors; i++) {
    mdc_tensor_spec s;
    mdc_arch_tensor(&w->arch, i, &s);
    uint64_t bytes = (uint64_t)s.numel * (fp16 ? 2u : 4u);
    json_object *t = header_tensor(&s, fp16, at, at + bytes);
    ok = t && json_object_object_add(root, s.name, t) == 0;
    at += bytes;
  }
  const char *text = ok ? json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE)
                        : NULL;
  char *out = NULL;
  if (text) {
    size_t n = strlen(text), padded = (n + 7) & ~(size_t)7;
    out = malloc(padded + 1);
    if (out) {
      memcpy(out, text, n);
      memset(out + n, ' ', padded - n);
      out[padded] = '\0';
      *len = padded;
    }
  }
  json_object_put(root);
  return out;
}

/* Buffered writes to a file descriptor. */
typedef struct file_writer {
  int fd;
  int error; /* errno of the first failure */
  size_t used;
  uint8_t buf[1 << 16];
} file_writer;

static void writer_flush(file_writer *fw) {
  size_t done = 0;
  while (!fw->error && done < fw->used) {
    ssize_t n = write(fw->fd, fw->buf + done, fw->used - done);
    if (n < 0 && errno != EINTR)
      fw->error = errno;
    else if (n > 0)
      done += (size_t)n;
  }
  fw->used = 0;
}

static void writer_put(file_writer *fw, const void *data, size_t size) {
  const uint8_t *p = data;
  while (size > 0 && !fw->error) {
    if (fw->used == sizeof fw->buf)
      writer_flush(fw);
    size_t n = sizeof fw->buf - fw->used < size ? sizeof fw->buf - fw->used : size;
    memcpy(fw->buf + fw->used, p, n);
    fw->used += n;
    p += n;
    size -= n;
  }
}

/* Converts in chunks so the byte order is explicit without a call per value. */
static void writer_tensors(file_writer *fw, const mdc_weights *w, int fp16) {
  uint8_t chunk[4096];
  const int dsize = fp16 ? 2 : 4, per = (int)sizeof chunk / dsize;
  for (int i = 0; i < w->num_tensors && !fw->error; i++) {
    mdc_tensor_spec s;
    mdc_arch_tensor(&w->arch, i, &s);
    for (int64_t e = 0; e < s.numel; e += per) {
      int m = s.numel - e < per ? (int)(s.numel - e) : per;
      for (int k = 0; k < m; k++) {
        float v = w->tensors[i][e + k];
        le_store(chunk + k * dsize, fp16 ? f32_to_f16(v) : f32_to_bits(v), dsize);
      }
      writer_put(fw, chunk, (size_t)(m * dsize));
    }
  }
}

/* Writes everything to fd and syncs it; returns 0 or an errno. */
static int write_contents(int fd, const mdc_weights *w, int fp16, const char *header, size_t len) {
  file_writer *fw = malloc(sizeof *fw);
  if (!fw)
    return ENOMEM;
  fw->fd = fd;
  fw->error = 0;
  fw->used = 0;
  uint8_t n[8];
  le_store(n, len, 8);
  writer_put(fw, n, 8);
  writer_put(fw, header, len);
  writer_tensors(fw, w, fp16);
  writer_flush(fw);
  int e = fw->error;
  free(fw);
  if (!e && fsync(fd) != 0)
    e = errno;
  return e;
}

/* Makes the rename durable; failure only loses durability, not data. */
static void directory_sync(const char *path) {
  char *dir = strdup(path);
  if (!dir)
    return;
  char *slash = strrchr(dir, '/');
  const char *d = ".";
  if (slash == dir)
    d = "/";
  else if (slash) {
    *slash = '\0';
    d = dir;
  }
  int fd = open(d, O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
  free(dir);
}

static maskdcpt_status write_file(const mdc_weights *w, const char *path, int fp16,
                                  const char *header, size_t len, maskdcpt_error *err) {
  size_t plen = strlen(path);
  char *tmp = malloc(plen + sizeof ".tmp.XXXXXX");
  if (!tmp)
    return mdc_set_error(err, MASKDCPT_ERROR_OUT_OF_MEMORY, "%s: out of memory", path);
  memcpy(tmp, path, plen);
  memcpy(tmp + plen, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
  int fd = mkstemp(tmp);
  if (fd < 0) {
    int e = errno;
    free(tmp);
    return mdc_set_error(err, MASKDCPT_ERROR_IO, "%s: cannot create a temporary file: %s", path,
                         strerror(e));
  }
  (void)fchmod(fd, 0644); /* mkstemp makes 0600; weights files are not secrets */
  int e = write_contents(fd, w, fp16, header, len);
  if (close(fd) != 0 && !e)
    e = errno;
  if (!e && rename(tmp, path) != 0)
    e = errno;
  if (e)
    unlink(tmp);
  free(tmp);
  if (e)
    return mdc_set_error(err, e == ENOMEM ? MASKDCPT_ERROR_OUT_OF_MEMORY : MASKDCPT_ERROR_IO,
                         "%s: write failed: %s", path, strerror(e));
  directory_sync(path);
  return MASKDCPT_OK;
}

maskdcpt_status mdc_weights_write(const mdc_weights *w, const char *path, int fp16,
                                  maskdcpt_error *err) {
  char why[MSG_MAX];
  if (!w || !path || !*path)
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT, "write: no weights or path");
  if (!mdc_arch_validate(&w->arch, why, sizeof why))
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT, "%s: invalid architecture: %s",
                         path, why);
  if (!w->tensors || w->num_tensors != mdc_arch_num_tensors(&w->arch))
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT,
                         "%s: %d tensors, the architecture has %d", path, w->num_tensors,
                         mdc_arch_num_tensors(&w->arch));
  maskdcpt_status rc = write_check_values(w, fp16 != 0, err);
  if (rc != MASKDCPT_OK)
    return rc;
  size_t len = 0;
  char *header = header_build(w, fp16 != 0, &len);
  if (!header)
    return mdc_set_error(err, MASKDCPT_ERROR_OUT_OF_MEMORY, "%s: out of memory building the header",
                         path);
  if (len > HEADER_MAX) {
    free(header);
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT,
                         "%s: header of %zu bytes exceeds the limit", path, len);
  }
  rc = write_file(w, path, fp16 != 0, header, len, err);
  free(header);
  return rc;
}
