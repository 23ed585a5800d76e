/* compare.c - `maskdcpt compare REFERENCE IMAGE...`: PSNR and SSIM of each
 * image against a reference, with the metrics the trainer's eval uses
 * (degrade/metrics.h), so that numbers from scripts and from the trainer
 * can be put side by side. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "image_io.h"
#include "metrics.h"

static const char *compare_help =
    N_("Usage: maskdcpt compare REFERENCE IMAGE... [OPTIONS]\n"
       "Prints the PSNR and SSIM of each IMAGE against REFERENCE (PNG, JPEG or WebP).\n"
       "Pixels are compared as R'G'B' values in 0..1 (8-bit v/255, 16-bit v/65535;\n"
       "grey is replicated to RGB); alpha is ignored.  PSNR = 10 log10(1 / MSE) over\n"
       "the three channels, 'inf' for identical pixels; SSIM: 11x11 Gaussian window\n"
       "(sigma 1.5), mean over the channels, 'nan' below 11x11 pixels.\n"
       "\n"
       "      --csv     print 'file,psnr,ssim' and one line per IMAGE\n"
       "Exit status 1 when an IMAGE cannot be read or its size differs from\n"
       "REFERENCE's (the other images are still compared).\n");

/* Reads path as RGB (grey replicated, alpha dropped). */
static int read_rgb(const char *path, img_image *rgb) {
  char msg[1024];
  img_image img = {0};
  int rc = img_read(path, &img, msg, sizeof msg) != 0 ||
           img_convert(&img, 3, rgb, msg, sizeof msg) != 0;
  if (rc) cli_error("%s", msg);
  img_free(&img);
  return rc ? -1 : 0;
}

/* A CSV field, quoted when it holds a comma, quote or line break. */
static void print_csv_field(const char *s) {
  if (!s[strcspn(s, ",\"\r\n")]) {
    fputs(s, stdout);
    return;
  }
  putchar('"');
  for (; *s; s++) {
    if (*s == '"') putchar('"');
    putchar(*s);
  }
  putchar('"');
}

int cli_compare(int argc, char **argv) {
  static const struct option opts[] = {
      {"csv", no_argument, 0, 'c'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  int csv = 0, c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'c': csv = 1; break;
    case 'h': fputs(_(compare_help), stdout); return 0;
    default: fputs(_(compare_help), stderr); return 2;
    }
  }
  if (argc - optind < 2) {
    fputs(_(compare_help), stderr);
    return 2;
  }
  const char *ref_path = argv[optind];
  img_image ref = {0};
  if (read_rgb(ref_path, &ref) != 0) return 1;
  if (csv) printf("file,psnr,ssim\n");
  int status = 0;
  for (int i = optind + 1; i < argc; i++) {
    img_image img = {0};
    if (read_rgb(argv[i], &img) != 0) {
      status = 1;
      continue;
    }
    if (img.width != ref.width || img.height != ref.height) {
      cli_error(_("%s: %dx%d, but the reference %s is %dx%d: sizes must match"), argv[i],
                img.width, img.height, ref_path, ref.width, ref.height);
      img_free(&img);
      status = 1;
      continue;
    }
    size_t n = (size_t)img.width * img.height * 3;
    double mse = dg_mse(img.data, ref.data, n);
    double psnr = mse > 0 ? -10.0 * log10(mse) : INFINITY;
    double ssim = dg_ssim(img.data, ref.data, img.width, img.height);
    if (csv) {
      print_csv_field(argv[i]);
      printf(",%.4f,%.6f\n", psnr, ssim);
    } else {
      printf(_("%s: PSNR %.2f dB, SSIM %.4f\n"), argv[i], psnr, ssim);
    }
    img_free(&img);
  }
  img_free(&ref);
  return status;
}
