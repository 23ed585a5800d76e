/* degrade_cmd.c - `maskdcpt degrade IN OUT --type NAME` and
 * `maskdcpt contact-sheet IN OUT.png`, on top of degrade/ (the synthesis
 * library the trainer uses) and image_io.  The contact sheet labels its
 * cells with a small built-in 5x7 bitmap font so that no font library is
 * needed. */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "degrade.h"
#include "degrade_cmd.h"
#include "font.h"
#include "image_io.h"

static const char *degrade_help =
    N_("Usage: maskdcpt degrade IN OUT --type NAME [OPTIONS]\n"
       "       maskdcpt degrade --list\n"
       "Writes OUT: IN with a synthetic degradation of a known class, e.g. to make\n"
       "a test pair for 'maskdcpt restore' (format from OUT's extension).\n"
       "\n"
       "  -t, --type NAME        degradation class (see --list), or 'random' to draw\n"
       "                         the class and level from the seed as the trainer does\n"
       "  -l, --level L          strength 0..1, mapped onto the class's range (default 0.5)\n"
       "  -s, --seed N           seed of every random choice (default 1); the same\n"
       "                         seed, level and class give the same output\n"
       "      --sigma S          with --type noise: additive Gaussian noise of exactly\n"
       "                         S (of 255) in every channel, instead of the level's\n"
       "                         sigma and the seeded variant (the usual benchmark)\n"
       "      --crop WxH+X+Y     cut this window out of IN first (e.g. 256x256+0+0)\n"
       "  -q, --quality Q        JPEG/WebP output quality 1..100 (default 92)\n"
       "      --bit-depth 8|16   PNG output depth (default: that of IN)\n"
       "      --list             print the classes, how each is made and its ranges\n"
       "Alpha is kept untouched; grey stays grey; 16-bit PNG stays 16-bit.\n");

static const char *sheet_help =
    N_("Usage: maskdcpt contact-sheet IN OUT.png [OPTIONS]\n"
       "Writes a PNG grid: IN (centre-cropped and scaled to one cell) and every\n"
       "degradation class at levels 0.2, 0.5 and 0.9, each cell labelled.\n"
       "\n"
       "  -s, --seed N     seed of the degradations (default 1)\n"
       "  -c, --cell N     cell edge in pixels, 64..1024 (default 192)\n");

/* ------------------------------------------------------------- parsing */

static int parse_level(const char *s, float *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= 0.0 && v <= 1.0)) {
    cli_error(_("--level: '%s' is not a number in 0..1"), s);
    return -1;
  }
  *out = (float)v;
  return 0;
}

static int parse_seed(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-' || s[0] == '+') {
    cli_error(_("--seed: '%s' is not a whole number in 0..%llu"), s,
              (unsigned long long)UINT64_MAX);
    return -1;
  }
  *out = (uint64_t)v;
  return 0;
}

static int parse_sigma(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= 0.0 && v <= 255.0)) {
    cli_error(_("--sigma: '%s' is not a number in 0..255"), s);
    return -1;
  }
  *out = v;
  return 0;
}

/* "WxH+X+Y" (ImageMagick's geometry) into r[4] = x, y, w, h. */
static int parse_crop(const char *s, long r[4]) {
  char tail;
  if (sscanf(s, "%ldx%ld+%ld+%ld%c", &r[2], &r[3], &r[0], &r[1], &tail) != 4 || r[0] < 0 ||
      r[1] < 0 || r[2] < 1 || r[3] < 1) {
    cli_error(_("--crop: '%s' is not WxH+X+Y (e.g. 256x256+0+0)"), s);
    return -1;
  }
  return 0;
}

/* Replaces img by its window r = {x, y, w, h}; -1 with a message when the
 * window does not lie inside the image. */
static int crop_image(img_image *img, const long r[4], const char *path) {
  if (r[0] + r[2] > img->width || r[1] + r[3] > img->height) {
    cli_error(_("%s: --crop %ldx%ld+%ld+%ld does not fit in %dx%d"), path, r[2], r[3], r[0],
              r[1], img->width, img->height);
    return -1;
  }
  img_image out = {0};
  char msg[256];
  if (img_alloc(&out, (int)r[2], (int)r[3], img->channels, msg, sizeof msg) != 0) {
    cli_error("%s", msg);
    return -1;
  }
  size_t row = (size_t)r[2] * img->channels;
  for (long y = 0; y < r[3]; y++)
    memcpy(out.data + (size_t)y * row,
           img->data + ((size_t)(r[1] + y) * img->width + r[0]) * img->channels,
           row * sizeof *out.data);
  out.bit_depth = img->bit_depth;
  out.format = img->format;
  img_free(img);
  *img = out;
  return 0;
}

/* Prints text word-wrapped to 78 columns, each line indented by 6. */
static void print_wrapped(FILE *f, const char *text) {
  const int indent = 6, width = 78;
  int col = 0;
  while (*text) {
    while (*text == ' ') text++;
    size_t n = strcspn(text, " ");
    if (!n) break;
    if (col && col + 1 + (int)n > width) {
      fputc('\n', f);
      col = 0;
    }
    if (!col) col = fprintf(f, "%*s", indent, "");
    else col += fprintf(f, " ");
    col += fprintf(f, "%.*s", (int)n, text);
    text += n;
  }
  fputc('\n', f);
}

static void print_classes(FILE *f) {
  char params[1024];
  fprintf(f, _("Degradation classes, in the network's order (synthesis version %d).\n"
               "A level in 0..1 maps linearly onto each 'by level' range.\n"),
          DG_VERSION);
  for (int i = 0; i < dg_num_classes(); i++) {
    dg_class_params_format(i, params, sizeof params);
    fprintf(f, "\n  %2d  %s\n", i, dg_class_name(i));
    print_wrapped(f, dg_class_description(i));
    print_wrapped(f, params);
  }
}

/* --------------------------------------------------------------- degrade */

int cli_degrade(int argc, char **argv) {
  static const struct option opts[] = {
      {"type", required_argument, 0, 't'},    {"level", required_argument, 0, 'l'},
      {"seed", required_argument, 0, 's'},    {"quality", required_argument, 0, 'q'},
      {"bit-depth", required_argument, 0, 'b'}, {"list", no_argument, 0, 'L'},
      {"sigma", required_argument, 0, 'S'},   {"crop", required_argument, 0, 'C'},
      {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
  const char *type = NULL;
  float level = 0.5f;
  double sigma = -1.0; /* < 0: from the level */
  long crop[4] = {0, 0, 0, 0};
  uint64_t seed = 1;
  long quality = 0, bit_depth = 0;
  int c;
  while ((c = getopt_long(argc, argv, "t:l:s:q:h", opts, NULL)) != -1) {
    switch (c) {
    case 't': type = optarg; break;
    case 'l': if (parse_level(optarg, &level)) return 2; break;
    case 's': if (parse_seed(optarg, &seed)) return 2; break;
    case 'q': if (cli_parse_int(optarg, "--quality", 1, 100, &quality)) return 2; break;
    case 'b':
      if (cli_parse_int(optarg, "--bit-depth", 8, 16, &bit_depth)) return 2;
      if (bit_depth != 8 && bit_depth != 16) {
        cli_error(_("--bit-depth: expected 8 or 16"));
        return 2;
      }
      break;
    case 'S': if (parse_sigma(optarg, &sigma)) return 2; break;
    case 'C': if (parse_crop(optarg, crop)) return 2; break;
    case 'L': print_classes(stdout); return 0;
    case 'h': fputs(_(degrade_help), stdout); return 0;
    default: fputs(_(degrade_help), stderr); return 2;
    }
  }
  if (argc - optind != 2 || !type) {
    if (!type && argc - optind == 2) cli_error(_("--type is required (see --list)"));
    fputs(_(degrade_help), stderr);
    return 2;
  }
  int random = strcmp(type, "random") == 0;
  int class_index = random ? -1 : dg_class_index(type);
  if (!random && class_index < 0) {
    cli_error(_("unknown degradation '%s' (see 'maskdcpt degrade --list')"), type);
    return 2;
  }
  if (sigma >= 0.0 && class_index != DG_NOISE) {
    cli_error(_("--sigma needs --type noise"));
    return 2;
  }
  const char *in_path = argv[optind], *out_path = argv[optind + 1];
  img_format out_format;
  if (img_format_from_path(out_path, &out_format) != 0) {
    cli_error(_("%s: unknown output format (use .png, .jpg or .webp)"), out_path);
    return 2;
  }
  char msg[1024];
  img_image img = {0};
  if (img_read(in_path, &img, msg, sizeof msg) != 0) {
    cli_error("%s", msg);
    return 1;
  }
  if (crop[2] && crop_image(&img, crop, in_path) != 0) {
    img_free(&img);
    return 1;
  }
  if (random) dg_random_draw(seed, &class_index, &level);
  /* In place, same layout: grey stays grey, alpha is copied, and bit_depth
   * is kept for the writer. */
  int rc = sigma >= 0.0 ? dg_apply_gaussian_noise(img.data, img.width, img.height, img.channels,
                                                  img.data, sigma, seed, msg, sizeof msg)
                        : dg_apply_channels(img.data, img.width, img.height, img.channels,
                                            img.data, class_index, level, seed, msg, sizeof msg);
  if (rc != 0) {
    cli_error("%s: %s", in_path, msg);
    img_free(&img);
    return 1;
  }
  if (out_format == IMG_FORMAT_JPEG && img_has_alpha(&img)) {
    fprintf(stderr, "maskdcpt: %s\n", _("JPEG has no alpha: alpha dropped"));
    img_drop_alpha(&img);
  }
  if (img_write(out_path, &img, (int)bit_depth, (int)quality, msg, sizeof msg) != 0) {
    cli_error("%s", msg);
    img_free(&img);
    return 1;
  }
  if (sigma >= 0.0)
    printf(_("Wrote %s (%dx%d, Gaussian noise sigma %g/255, seed %llu)\n"), out_path, img.width,
           img.height, sigma, (unsigned long long)seed);
  else
    printf(_("Wrote %s (%dx%d, %s, level %.2f, seed %llu)\n"), out_path, img.width, img.height,
           dg_class_name(class_index), (double)level, (unsigned long long)seed);
  img_free(&img);
  return 0;
}

/* --------------------------------------------------------- contact sheet */

#define SHEET_LEVELS 3
static const float sheet_levels[SHEET_LEVELS] = {0.2f, 0.5f, 0.9f};
#define SHEET_GROUPS_PER_ROW 2 /* class groups of SHEET_LEVELS cells */
#define SHEET_GAP 8            /* between cells: room between labels */
#define SHEET_GROUP_GAP 16     /* between class groups */
#define SHEET_MARGIN 8

typedef struct sheet_layout {
  int cell, scale, label_h, cols, rows, width, height;
} sheet_layout;

static void sheet_layout_make(sheet_layout *l, int cell) {
  l->cell = cell;
  /* the largest text scale at which the longest class name fits a cell */
  int longest = 0;
  for (int i = 0; i < dg_num_classes(); i++) {
    int w = text_width(dg_class_name(i), 1);
    if (w > longest) longest = w;
  }
  l->scale = (cell - 2) / longest;
  if (l->scale < 1) l->scale = 1;
  if (l->scale > 3) l->scale = 3;
  l->label_h = 2 * (FONT_H * l->scale) + 3 * 2 * l->scale; /* two lines */
  l->cols = SHEET_GROUPS_PER_ROW;
  l->rows = (dg_num_classes() + l->cols - 1) / l->cols;
  int group_w = SHEET_LEVELS * cell + (SHEET_LEVELS - 1) * SHEET_GAP;
  l->width = 2 * SHEET_MARGIN + l->cols * group_w + (l->cols - 1) * SHEET_GROUP_GAP;
  l->height = 2 * SHEET_MARGIN + l->rows * (l->label_h + cell) + (l->rows - 1) * SHEET_GROUP_GAP;
}

/* Top-left corner of cell `slot` (0..SHEET_LEVELS-1) of class group g. */
static void sheet_cell_origin(const sheet_layout *l, int g, int slot, int *x, int *y) {
  int group_w = SHEET_LEVELS * l->cell + (SHEET_LEVELS - 1) * SHEET_GAP;
  *x = SHEET_MARGIN + (g % l->cols) * (group_w + SHEET_GROUP_GAP) + slot * (l->cell + SHEET_GAP);
  *y = SHEET_MARGIN + (g / l->cols) * (l->label_h + l->cell + SHEET_GROUP_GAP);
}

static void sheet_put_cell(img_image *sheet, const sheet_layout *l, int g, int slot,
                           const float *pixels, const char *line1, const char *line2) {
  int x0, y0;
  sheet_cell_origin(l, g, slot, &x0, &y0);
  static const float white[3] = {0.95f, 0.95f, 0.95f}, grey[3] = {0.7f, 0.7f, 0.7f};
  int pad = 2 * l->scale;
  text_draw(sheet, x0 + 1, y0 + pad, line1, l->scale, white);
  text_draw(sheet, x0 + 1, y0 + 2 * pad + FONT_H * l->scale, line2, l->scale, grey);
  for (int y = 0; y < l->cell; y++)
    memcpy(sheet->data + ((size_t)(y0 + l->label_h + y) * sheet->width + x0) * 3,
           pixels + (size_t)y * l->cell * 3, (size_t)l->cell * 3 * sizeof(float));
}

/* IN centre-cropped to a square and scaled to cell x cell RGB. */
static float *sheet_source(const img_image *rgb, int cell, char *msg, size_t msg_size) {
  int side = rgb->width < rgb->height ? rgb->width : rgb->height;
  int x0 = (rgb->width - side) / 2, y0 = (rgb->height - side) / 2;
  float *crop = malloc((size_t)side * side * 3 * sizeof *crop);
  float *out = malloc((size_t)cell * cell * 3 * sizeof *out);
  if (!crop || !out) {
    snprintf(msg, msg_size, "out of memory");
    free(crop), free(out);
    return NULL;
  }
  for (int y = 0; y < side; y++)
    memcpy(crop + (size_t)y * side * 3, rgb->data + ((size_t)(y0 + y) * rgb->width + x0) * 3,
           (size_t)side * 3 * sizeof *crop);
  int rc = dg_resize(crop, side, side, 3, out, cell, cell);
  free(crop);
  if (rc != 0) {
    snprintf(msg, msg_size, "resizing failed");
    free(out);
    return NULL;
  }
  /* bicubic overshoots a little at edges: keep the clean cell in range */
  for (size_t i = 0; i < (size_t)cell * cell * 3; i++)
    out[i] = out[i] < 0.0f ? 0.0f : (out[i] > 1.0f ? 1.0f : out[i]);
  return out;
}

int cli_contact_sheet(int argc, char **argv) {
  static const struct option opts[] = {{"seed", required_argument, 0, 's'},
                                       {"cell", required_argument, 0, 'c'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  uint64_t seed = 1;
  long cell = 192;
  int c;
  while ((c = getopt_long(argc, argv, "s:c:h", opts, NULL)) != -1) {
    switch (c) {
    case 's': if (parse_seed(optarg, &seed)) return 2; break;
    case 'c': if (cli_parse_int(optarg, "--cell", 64, 1024, &cell)) return 2; break;
    case 'h': fputs(_(sheet_help), stdout); return 0;
    default: fputs(_(sheet_help), stderr); return 2;
    }
  }
  if (argc - optind != 2) {
    fputs(_(sheet_help), stderr);
    return 2;
  }
  const char *in_path = argv[optind], *out_path = argv[optind + 1];
  char msg[1024];
  img_image in = {0}, rgb = {0}, sheet = {0};
  float *src = NULL, *cellbuf = NULL;
  int status = 1;
  if (img_read(in_path, &in, msg, sizeof msg) != 0 ||
      img_convert(&in, 3, &rgb, msg, sizeof msg) != 0) {
    cli_error("%s", msg);
    goto done;
  }
  sheet_layout l;
  sheet_layout_make(&l, (int)cell);
  if (img_alloc(&sheet, l.width, l.height, 3, msg, sizeof msg) != 0) {
    cli_error("%s", msg);
    goto done;
  }
  for (size_t i = 0; i < (size_t)l.width * l.height * 3; i++) sheet.data[i] = 0.13f;
  src = sheet_source(&rgb, (int)cell, msg, sizeof msg);
  cellbuf = malloc((size_t)cell * cell * 3 * sizeof *cellbuf);
  if (!src || !cellbuf) {
    cli_error("%s: %s", in_path, src ? "out of memory" : msg);
    goto done;
  }
  sheet_put_cell(&sheet, &l, 0, 0, src, dg_class_name(DG_CLEAN), "original");
  for (int k = 1; k < dg_num_classes(); k++)
    for (int j = 0; j < SHEET_LEVELS; j++) {
      if (dg_apply(src, (int)cell, (int)cell, cellbuf, k, sheet_levels[j], seed, msg,
                   sizeof msg) != 0) {
        cli_error("%s", msg);
        goto done;
      }
      char level[32];
      snprintf(level, sizeof level, "level %.1f", (double)sheet_levels[j]);
      sheet_put_cell(&sheet, &l, k, j, cellbuf, dg_class_name(k), level);
    }
  if (img_write_format(out_path, &sheet, IMG_FORMAT_PNG, 8, 0, msg, sizeof msg) != 0) {
    cli_error("%s", msg);
    goto done;
  }
  printf(_("Wrote %s (%dx%d, %d classes at levels 0.2, 0.5, 0.9, seed %llu)\n"), out_path,
         l.width, l.height, dg_num_classes(), (unsigned long long)seed);
  status = 0;
done:
  free(src);
  free(cellbuf);
  img_free(&in);
  img_free(&rgb);
  img_free(&sheet);
  return status;
}
