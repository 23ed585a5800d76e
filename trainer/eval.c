/* eval.c - `maskdcpt-train eval`: per-class quality of a weights file on
 * the validation photos, through the same library calls the editor uses.
 *
 * For every validation photo and every class: the centre crop is degraded
 * at the given level, then restored in auto mode and with the true class
 * forced.  PSNR and SSIM (on R'G'B', 0..1) of the degraded input and of
 * both restorations are averaged per class; the auto-mode classification
 * gives the accuracy and the confusion matrix.  PSNR and SSIM are those of
 * degrade/metrics.h, the same as `maskdcpt compare`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "degrade.h"
#include "eval.h"
#include "arch.h"
#include "maskdcpt.h"
#include "metrics.h"

typedef struct class_stats {
  double psnr_in, psnr_auto, psnr_forced, ssim_in, ssim_auto, ssim_forced;
  int n;
} class_stats;

int tr_eval_main(int argc, char **argv) {
  static const struct option opts[] = {{"crop", 1, 0, 'c'}, {"level", 1, 0, 'l'},
                                       {"csv", 1, 0, 'o'},  {"threads", 1, 0, 'j'},
                                       {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  int crop = 128, threads = 0, c;
  double level = 0.5;
  const char *csv = NULL;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'c': crop = atoi(optarg); break;
    case 'l': level = atof(optarg); break;
    case 'o': csv = optarg; break;
    case 'j': threads = atoi(optarg); break;
    default:
      fputs("Usage: maskdcpt-train eval WEIGHTS DATA [--crop 128] [--level 0.5] [--csv FILE]\n",
            c == 'h' ? stdout : stderr);
      return c == 'h' ? 0 : 2;
    }
  }
  if (argc - optind != 2 || crop < 16 || !(level >= 0 && level <= 1)) {
    fputs("Usage: maskdcpt-train eval WEIGHTS DATA [--crop 128] [--level 0.5] [--csv FILE]\n",
          stderr);
    return 2;
  }
  maskdcpt_model *model = NULL;
  maskdcpt_context *ctx = NULL;
  maskdcpt_error err;
  if (maskdcpt_model_load(argv[optind], &model, &err) != MASKDCPT_OK ||
      maskdcpt_context_new(model, &ctx, &err) != MASKDCPT_OK) {
    fprintf(stderr, "maskdcpt-train eval: %s\n", err.message);
    maskdcpt_model_free(model);
    return 1;
  }
  maskdcpt_context_set_threads(ctx, threads);
  int k = maskdcpt_model_num_classes(model);
  if (k > dg_num_classes()) k = dg_num_classes();
  tr_dataset ds;
  char msg[512];
  /* the same split as training */
  if (tr_dataset_load(&ds, argv[optind + 1], crop, TR_VAL_FRACTION, TR_SPLIT_SEED, msg,
                      sizeof msg) != 0) {
    fprintf(stderr, "maskdcpt-train eval: %s\n", msg);
    return 1;
  }
  size_t px = (size_t)crop * crop * 3;
  float *clean = malloc(px * 4), *deg = malloc(px * 4), *ra = malloc(px * 4), *rf = malloc(px * 4);
  class_stats st[MDC_MAX_CLASSES] = {{0}};
  int confusion[MDC_MAX_CLASSES][MDC_MAX_CLASSES] = {{0}};
  int total = ds.num_val * k, correct = 0;
  for (int i = 0; i < total; i++) {
    tr_sample s = {clean, deg, 0, 0};
    if (tr_dataset_val_sample(&ds, i, crop, k, (float)level, &s, msg, sizeof msg) != 0) {
      fprintf(stderr, "maskdcpt-train eval: %s\n", msg);
      return 1;
    }
    maskdcpt_image in = {deg, crop, crop, 3, (size_t)crop * 3};
    maskdcpt_image oa = {ra, crop, crop, 3, (size_t)crop * 3}, of = {rf, crop, crop, 3, (size_t)crop * 3};
    float probs[MDC_MAX_CLASSES];
    if (maskdcpt_restore(ctx, &in, &oa, MASKDCPT_CLASS_AUTO, 1.0f, probs, &err) != MASKDCPT_OK ||
        maskdcpt_restore(ctx, &in, &of, s.label, 1.0f, NULL, &err) != MASKDCPT_OK) {
      fprintf(stderr, "maskdcpt-train eval: %s\n", err.message);
      return 1;
    }
    int best = 0;
    for (int q = 1; q < k; q++)
      if (probs[q] > probs[best]) best = q;
    confusion[s.label][best]++;
    correct += best == s.label;
    class_stats *cs = &st[s.label];
    cs->psnr_in += dg_psnr(deg, clean, px), cs->psnr_auto += dg_psnr(ra, clean, px);
    cs->psnr_forced += dg_psnr(rf, clean, px);
    cs->ssim_in += dg_ssim(deg, clean, crop, crop);
    cs->ssim_auto += dg_ssim(ra, clean, crop, crop);
    cs->ssim_forced += dg_ssim(rf, clean, crop, crop);
    cs->n++;
    fprintf(stderr, "\reval %d/%d", i + 1, total);
  }
  fprintf(stderr, "\n");
  FILE *out = csv ? fopen(csv, "w") : NULL;
  if (out) fprintf(out, "class,n,psnr_input,psnr_auto,psnr_forced,ssim_input,ssim_auto,ssim_forced\n");
  printf("%d validation photos, %dx%d crops, level %.2f, %s\n", ds.num_val, crop, crop, level,
         argv[optind]);
  printf("%-18s %4s  %21s  %21s\n", "class", "n", "PSNR in/auto/forced", "SSIM in/auto/forced");
  for (int q = 0; q < k; q++) {
    class_stats *cs = &st[q];
    if (!cs->n) continue;
    double n = cs->n;
    printf("%-18s %4d  %6.2f %6.2f %6.2f   %6.3f %6.3f %6.3f\n", dg_class_name(q), cs->n,
           cs->psnr_in / n, cs->psnr_auto / n, cs->psnr_forced / n, cs->ssim_in / n,
           cs->ssim_auto / n, cs->ssim_forced / n);
    if (out)
      fprintf(out, "%s,%d,%.4f,%.4f,%.4f,%.5f,%.5f,%.5f\n", dg_class_name(q), cs->n,
              cs->psnr_in / n, cs->psnr_auto / n, cs->psnr_forced / n, cs->ssim_in / n,
              cs->ssim_auto / n, cs->ssim_forced / n);
  }
  printf("classification accuracy (auto): %.1f%% (%d/%d)\nconfusion (rows: true, columns: "
         "predicted):\n",
         100.0 * correct / total, correct, total);
  for (int a = 0; a < k; a++) {
    printf("  %-18s", dg_class_name(a));
    for (int b = 0; b < k; b++) printf(" %2d", confusion[a][b]);
    printf("\n");
  }
  if (out) fclose(out);
  free(clean), free(deg), free(ra), free(rf);
  tr_dataset_free(&ds);
  maskdcpt_context_free(ctx);
  maskdcpt_model_free(model);
  return 0;
}
