/* make_corpus.c - writes the seed corpus of fuzz_weights: a few small
 * valid weights files made by the real writer, and invalid variants of
 * them (each seed < 20 KB).
 *
 *   gcc -std=c11 -D_GNU_SOURCE -Icore -Icore/include tests/fuzz/make_corpus.c \
 *       core/weights.c core/arch.c core/error.c -ljson-c -lm -o /tmp/make_corpus
 *   /tmp/make_corpus tests/fuzz/corpus
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weights.h"

static mdc_arch corpus_arch(int width, int levels, int blocks, int classes, int hidden) {
  mdc_arch a;
  memset(&a, 0, sizeof a);
  a.width = width;
  a.levels = levels;
  for (int l = 0; l < levels; l++)
    a.enc_blocks[l] = a.dec_blocks[l] = blocks;
  a.middle_blocks = blocks;
  a.num_classes = classes;
  a.cls_hidden = hidden;
  a.sca_window = 16;
  a.norm_eps = 1e-6f;
  for (int k = 0; k < classes; k++)
    snprintf(a.class_names[k], sizeof a.class_names[k], "class%d", k);
  return a;
}

static int write_model(const char *dir, const char *name, const mdc_arch *a, int fp16) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  mdc_weights w;
  maskdcpt_error err;
  if (mdc_weights_init_random(&w, a, 1, 0.5f, &err) != MASKDCPT_OK ||
      mdc_weights_set_metadata(&w, "synthesis", "{\"seed\":1}", &err) != MASKDCPT_OK ||
      mdc_weights_set_metadata(&w, "auto_focus", "[\"class0\"]", &err) != MASKDCPT_OK ||
      mdc_weights_set_metadata(&w, "passes", "{\"class1\":2}", &err) != MASKDCPT_OK ||
      mdc_weights_write(&w, path, fp16, &err) != MASKDCPT_OK) {
    fprintf(stderr, "%s: %s\n", path, err.message);
    mdc_weights_clear(&w);
    return 0;
  }
  mdc_weights_clear(&w);
  return 1;
}

static unsigned char *read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)n);
  *size = b ? fread(b, 1, (size_t)n, f) : 0;
  fclose(f);
  return b;
}

static int write_bytes(const char *dir, const char *name, const unsigned char *b, size_t n) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  int ok = f && fwrite(b, 1, n, f) == n;
  if (f)
    ok &= fclose(f) == 0;
  if (!ok)
    fprintf(stderr, "%s: cannot write\n", path);
  return ok;
}

/* Invalid variants of a valid file: cut short, a NaN, a bad header length. */
static int write_variants(const char *dir, const char *from) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, from);
  size_t n;
  unsigned char *b = read_file(path, &n);
  if (!b || n < 16)
    return 0;
  int ok = write_bytes(dir, "invalid-truncated", b, n - 3);
  memcpy(b + n - 4, "\x00\x00\xc0\x7f", 4); /* F32 NaN in the last tensor */
  ok &= write_bytes(dir, "invalid-nan", b, n);
  b[7] = 1; /* header length beyond the file */
  ok &= write_bytes(dir, "invalid-header-length", b, n);
  free(b);
  return ok;
}

/* A BF16 file: the F16 micro model with its dtype renamed (any F16 bit
 * pattern that is finite is a finite BF16 too); the header is rebuilt
 * since "BF16" is one byte longer. */
static int write_bf16(const char *dir, const char *from) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, from);
  size_t n;
  unsigned char *b = read_file(path, &n);
  if (!b || n < 8)
    return 0;
  size_t hl = 0;
  for (int i = 7; i >= 0; i--)
    hl = hl << 8 | b[i];
  if (hl > n - 8) {
    free(b);
    return 0;
  }
  unsigned char *out = malloc(n + 2 * hl + 16);
  size_t at = 16; /* length written last */
  for (size_t i = 8; i < 8 + hl; i++) {
    if (i + 5 <= 8 + hl && memcmp(b + i, "\"F16\"", 5) == 0) {
      memcpy(out + at, "\"BF16\"", 6);
      at += 6;
      i += 4;
    } else
      out[at++] = b[i];
  }
  while ((at - 16) % 8)
    out[at++] = ' ';
  size_t new_hl = at - 16;
  memcpy(out + at, b + 8 + hl, n - 8 - hl);
  at += n - 8 - hl;
  for (int i = 0; i < 8; i++)
    out[8 + i] = (unsigned char)(new_hl >> (8 * i));
  int ok = write_bytes(dir, "valid-micro-bf16", out + 8, at - 8);
  free(out);
  free(b);
  return ok;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const char *dir = argv[1];
  mdc_arch micro = corpus_arch(1, 1, 0, 1, 1), small = corpus_arch(2, 1, 1, 2, 2),
           deeper = corpus_arch(2, 2, 1, 3, 4);
  int ok = write_model(dir, "valid-micro-f32", &micro, 0) &&
           write_model(dir, "valid-micro-f16", &micro, 1) &&
           write_model(dir, "valid-small-f32", &small, 0) &&
           write_model(dir, "valid-deeper-f16", &deeper, 1) && write_variants(dir, "valid-small-f32") &&
           write_bf16(dir, "valid-micro-f16");
  return ok ? 0 : 1;
}
