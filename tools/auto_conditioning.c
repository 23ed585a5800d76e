/* auto_conditioning.c - how auto mode would restore if the decoder were
 * conditioned on a sharpened version of the classifier's probabilities.
 *
 *   auto_conditioning WEIGHTS SETDIR [CSV]
 *
 * SETDIR holds clean/NAME.png and degraded/NAME@CLASS.png, as
 * scripts/evaluate.sh's set (eval-data/set) does.  Each degraded crop is
 * classified once (maskdcpt_classify) and restored with
 * maskdcpt_restore_with_probabilities under each rule below, and forced to
 * its true class; the table has the mean PSNR (8-bit, as `maskdcpt compare`
 * on saved PNGs) per class and rule.  CSV, when given, gets one row per
 * crop: name, class, the 12 probabilities, then the PSNR per rule.
 *
 * Rules: soft (the probabilities as they are: what auto mode does), p^2
 * and p^4 (raised to a power, then normalised), top (the top class alone)
 * and majority (the top class alone when it has more than half of the
 * probability, else soft).  A weights file's own 'auto_focus' metadata
 * (docs/network.md) applies after each rule, so measure a file without it.
 * docs/evaluation.md has what they measured. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_io.h"
#include "maskdcpt.h"
#include "metrics.h"

enum { RULE_SOFT, RULE_POW2, RULE_POW4, RULE_TOP, RULE_MAJORITY, RULE_FORCED, RULES };
static const char *const rule_name[RULES] = {"soft", "p^2", "p^4", "top", "majority", "forced"};
#define MAX_CLASSES 32

/* Rounds img to 8-bit levels, as writing the PNG that `maskdcpt compare`
 * reads would, so that dg_psnr gives that figure. */
static void round_to_8bit(float *img, size_t n) {
  for (size_t i = 0; i < n; i++)
    img[i] = floorf(fminf(fmaxf(img[i], 0.0f), 1.0f) * 255.0f + 0.5f) / 255.0f;
}

/* The conditioning of `rule` for probabilities p (true class `truth`). */
static void condition(int rule, const float *p, int k, int truth, float *q) {
  int top = 0;
  for (int c = 1; c < k; c++)
    if (p[c] > p[top]) top = c;
  for (int c = 0; c < k; c++) {
    switch (rule) {
    case RULE_POW2: q[c] = (p[c] / p[top]) * (p[c] / p[top]); break;
    case RULE_POW4: q[c] = powf(p[c] / p[top], 4.0f); break;
    case RULE_TOP: q[c] = c == top; break;
    case RULE_MAJORITY: q[c] = p[top] > 0.5f ? (float)(c == top) : p[c]; break;
    case RULE_FORCED: q[c] = c == truth; break;
    default: q[c] = p[c];
    }
  }
}

typedef struct totals {
  double psnr[MAX_CLASSES][RULES];
  int count[MAX_CLASSES];
} totals;

/* Classifies and restores one crop under every rule; 0 or -1 (message printed). */
static int one_crop(maskdcpt_context *ctx, const maskdcpt_model *m, const char *setdir,
                    const char *file, totals *t, FILE *csv) {
  const char *at = strrchr(file, '@'), *dot = strrchr(file, '.');
  if (!at || !dot || dot < at || strcmp(dot, ".png")) return 0; /* not a crop */
  char cls[64], path[4096], clean_path[4096], msg[512];
  snprintf(cls, sizeof cls, "%.*s", (int)(dot - at - 1), at + 1);
  int truth = maskdcpt_model_class_index(m, cls);
  if (truth < 0) return 0; /* e.g. noise-s25: not a class of the network */
  snprintf(path, sizeof path, "%s/degraded/%s", setdir, file);
  snprintf(clean_path, sizeof clean_path, "%s/clean/%.*s.png", setdir, (int)(at - file), file);
  img_image in = {0}, clean = {0};
  if (img_read(path, &in, msg, sizeof msg) || img_read(clean_path, &clean, msg, sizeof msg)) {
    fprintf(stderr, "auto_conditioning: %s\n", msg);
    img_free(&in);
    return -1;
  }
  int rc = -1, k = maskdcpt_model_num_classes(m);
  size_t n = (size_t)in.width * in.height * in.channels;
  float *out = malloc(n * sizeof(float));
  maskdcpt_image src = {in.data, in.width, in.height, in.channels, (size_t)in.width * in.channels};
  maskdcpt_image dst = src;
  dst.data = out;
  float p[MAX_CLASSES], q[MAX_CLASSES];
  double row[RULES];
  maskdcpt_error err;
  if (!out) {
    fprintf(stderr, "auto_conditioning: out of memory\n");
    goto done;
  }
  if (clean.width != in.width || clean.height != in.height || clean.channels != in.channels) {
    fprintf(stderr, "auto_conditioning: %s and %s differ in size\n", path, clean_path);
    goto done;
  }
  if (maskdcpt_classify(ctx, &src, p, &err) != MASKDCPT_OK) {
    fprintf(stderr, "auto_conditioning: %s: %s\n", path, err.message);
    goto done;
  }
  for (int r = 0; r < RULES; r++) {
    condition(r, p, k, truth, q);
    if (maskdcpt_restore_with_probabilities(ctx, &src, &dst, q, k, 1.0f, &err) != MASKDCPT_OK) {
      fprintf(stderr, "auto_conditioning: %s: %s\n", path, err.message);
      goto done;
    }
    round_to_8bit(out, n);
    row[r] = dg_psnr(clean.data, out, n);
    t->psnr[truth][r] += row[r];
  }
  t->count[truth]++;
  if (csv) {
    fprintf(csv, "%.*s,%s", (int)(at - file), file, cls);
    for (int c = 0; c < k; c++) fprintf(csv, ",%.6f", p[c]);
    for (int r = 0; r < RULES; r++) fprintf(csv, ",%.4f", row[r]);
    fputc('\n', csv);
  }
  rc = 0;
done:
  free(out);
  img_free(&in);
  img_free(&clean);
  return rc;
}

static void print_table(const maskdcpt_model *m, const totals *t) {
  int k = maskdcpt_model_num_classes(m), classes = 0;
  double mean[RULES] = {0};
  printf("%-18s %4s", "class", "n");
  for (int r = 0; r < RULES; r++) printf(" %9s", rule_name[r]);
  printf("\n");
  for (int c = 0; c < k; c++) {
    if (!t->count[c]) continue;
    const char *name = maskdcpt_model_class_name(m, c);
    int damaged = strcmp(name, "clean") != 0;
    printf("%-18s %4d", name, t->count[c]);
    for (int r = 0; r < RULES; r++) {
      double v = t->psnr[c][r] / t->count[c];
      printf(" %9.2f", v);
      if (damaged) mean[r] += v;
    }
    printf("\n");
    classes += damaged;
  }
  if (!classes) return;
  printf("%-18s %4s", "mean (damaged)", "");
  for (int r = 0; r < RULES; r++) printf(" %9.3f", mean[r] / classes);
  printf("\n");
}

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: auto_conditioning WEIGHTS SETDIR [CSV]\n");
    return 2;
  }
  maskdcpt_error err;
  maskdcpt_model *m = NULL;
  maskdcpt_context *ctx = NULL;
  if (maskdcpt_model_load(argv[1], &m, &err) != MASKDCPT_OK ||
      maskdcpt_context_new(m, &ctx, &err) != MASKDCPT_OK) {
    fprintf(stderr, "auto_conditioning: %s\n", err.message);
    maskdcpt_model_free(m);
    return 1;
  }
  /* the file's own inference keys act on top of every rule */
  static const char *const keys[] = {"auto_focus", "passes"};
  for (int i = 0; i < (int)(sizeof keys / sizeof keys[0]); i++) {
    const char *v = maskdcpt_model_metadata(m, keys[i]);
    if (v)
      fprintf(stderr,
              "auto_conditioning: note: %s has %s %s, which applies after every rule below; "
              "measure a copy without it (tools/set_inference_metadata.py IN OUT %s=)\n",
              argv[1], keys[i], v, keys[i]);
  }
  if (maskdcpt_model_num_classes(m) > MAX_CLASSES) {
    fprintf(stderr, "auto_conditioning: more than %d classes\n", MAX_CLASSES);
    return 1;
  }
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/degraded", argv[2]);
  DIR *d = opendir(dir);
  if (!d) {
    fprintf(stderr, "auto_conditioning: cannot open %s\n", dir);
    return 1;
  }
  FILE *csv = argc == 4 ? fopen(argv[3], "w") : NULL;
  if (argc == 4 && !csv) {
    fprintf(stderr, "auto_conditioning: cannot write %s\n", argv[3]);
    return 1;
  }
  totals *t = calloc(1, sizeof *t);
  int rc = t ? 0 : 1;
  for (struct dirent *de; rc == 0 && (de = readdir(d));)
    if (one_crop(ctx, m, argv[2], de->d_name, t, csv)) rc = 1;
  closedir(d);
  if (csv && fclose(csv)) rc = 1;
  if (rc == 0) print_table(m, t);
  free(t);
  maskdcpt_context_free(ctx);
  maskdcpt_model_free(m);
  return rc;
}
