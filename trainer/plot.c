/* plot.c - see plot.h. */
#include "plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "font.h"
#include "image_io.h"

#define PANEL_W 420
#define PANEL_H 260
#define MARGIN 36
#define MAX_RUNS 6
#define MAX_ROWS 100000

typedef struct series {
  int n;
  double *step, *col[3]; /* l1, focal, accuracy */
} series;

static const char *panel_names[3] = {"restoration loss", "focal loss - log scale",
                                     "batch accuracy"};

/* Positive losses are drawn on a log scale (the PSNR loss is negative:
 * linear), accuracy linearly. */
static int log_panel[3];
static double scaled(int panel, double v) { return log_panel[panel] ? log10(fmax(v, 1e-6)) : v; }
static double unscaled(int panel, double v) { return log_panel[panel] ? pow(10, v) : v; }
static const int panel_cols[3] = {2, 3, 4}; /* columns of log.csv */
static const float colours[MAX_RUNS][3] = {{0.85f, 0.25f, 0.2f}, {0.2f, 0.45f, 0.85f},
                                           {0.2f, 0.65f, 0.3f}, {0.6f, 0.3f, 0.7f},
                                           {0.9f, 0.6f, 0.1f},  {0.3f, 0.3f, 0.3f}};

static int read_log(const char *path, series *s, char *msg, size_t msg_size) {
  memset(s, 0, sizeof *s);
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(msg, msg_size, "%s: cannot open", path);
    return -1;
  }
  s->step = malloc(MAX_ROWS * 4 * sizeof(double));
  if (!s->step) {
    fclose(f);
    snprintf(msg, msg_size, "out of memory");
    return -1;
  }
  for (int c = 0; c < 3; c++) s->col[c] = s->step + (size_t)MAX_ROWS * (c + 1);
  char line[512];
  while (fgets(line, sizeof line, f) && s->n < MAX_ROWS) {
    double v[8];
    if (sscanf(line, "%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
               &v[6], &v[7]) != 8)
      continue; /* the header */
    s->step[s->n] = v[0];
    for (int c = 0; c < 3; c++) s->col[c][s->n] = v[panel_cols[c]];
    s->n++;
  }
  fclose(f);
  return 0;
}

static void put(img_image *img, int x, int y, const float *rgb) {
  if (x < 0 || y < 0 || x >= img->width || y >= img->height) return;
  memcpy(img->data + ((size_t)y * img->width + x) * 3, rgb, 3 * sizeof(float));
}

static void line(img_image *img, int x0, int y0, int x1, int y1, const float *rgb) {
  int steps = abs(x1 - x0) > abs(y1 - y0) ? abs(x1 - x0) : abs(y1 - y0);
  for (int i = 0; i <= steps; i++) {
    double t = steps ? (double)i / steps : 0;
    put(img, (int)lround(x0 + t * (x1 - x0)), (int)lround(y0 + t * (y1 - y0)), rgb);
  }
}

int tr_plot_logs(const char *png, const char *const *logs, const char *const *labels, int n,
                 char *msg, size_t msg_size) {
  if (n < 1 || n > MAX_RUNS) {
    snprintf(msg, msg_size, "1 to %d logs", MAX_RUNS);
    return -1;
  }
  series runs[MAX_RUNS];
  int loaded = 0;
  for (; loaded < n; loaded++)
    if (read_log(logs[loaded], &runs[loaded], msg, msg_size) != 0) break;
  img_image img = {0};
  int rc = loaded == n ? 0 : -1;
  int width = 3 * PANEL_W, height = PANEL_H + 24 + 14 * n;
  if (rc == 0) rc = img_alloc(&img, width, height, 3, msg, msg_size);
  const float grey[3] = {0.8f, 0.8f, 0.8f}, black[3] = {0, 0, 0};
  for (size_t i = 0; rc == 0 && i < (size_t)width * height * 3; i++) img.data[i] = 1.0f;
  for (int p = 0; rc == 0 && p < 3; p++) {
    log_panel[p] = p < 2;
    for (int r = 0; r < n; r++)
      for (int i = 0; i < runs[r].n; i++)
        if (runs[r].col[p][i] <= 0) log_panel[p] = 0;
    double xmax = 1, ymin = INFINITY, ymax = -INFINITY;
    for (int r = 0; r < n; r++)
      for (int i = 0; i < runs[r].n; i++) {
        xmax = fmax(xmax, runs[r].step[i]);
        ymin = fmin(ymin, scaled(p, runs[r].col[p][i]));
        ymax = fmax(ymax, scaled(p, runs[r].col[p][i]));
      }
    if (!(ymax > ymin)) ymin = 0, ymax = 1;
    int x0 = p * PANEL_W + MARGIN + 12, y0 = 20, pw = PANEL_W - MARGIN - 24, ph = PANEL_H - 50;
    line(&img, x0, y0 + ph, x0 + pw, y0 + ph, black);
    line(&img, x0, y0, x0, y0 + ph, black);
    text_draw(&img, x0, 4, panel_names[p], 2, black);
    char lab[32];
    snprintf(lab, sizeof lab, "%.3g", unscaled(p, ymax));
    text_draw(&img, x0 - text_width(lab, 1) - 3, y0, lab, 1, black);
    snprintf(lab, sizeof lab, "%.3g", unscaled(p, ymin));
    text_draw(&img, x0 - text_width(lab, 1) - 3, y0 + ph - 7, lab, 1, black);
    snprintf(lab, sizeof lab, "step %.0f", xmax);
    text_draw(&img, x0 + pw - text_width(lab, 1), y0 + ph + 5, lab, 1, black);
    for (int g = 1; g < 4; g++) line(&img, x0 + 1, y0 + ph * g / 4, x0 + pw, y0 + ph * g / 4, grey);
    for (int r = 0; r < n; r++)
      for (int i = 1; i < runs[r].n; i++) {
        int xa = x0 + (int)(pw * runs[r].step[i - 1] / xmax), xb = x0 + (int)(pw * runs[r].step[i] / xmax);
        int ya = y0 + ph - (int)(ph * (scaled(p, runs[r].col[p][i - 1]) - ymin) / (ymax - ymin));
        int yb = y0 + ph - (int)(ph * (scaled(p, runs[r].col[p][i]) - ymin) / (ymax - ymin));
        line(&img, xa, ya, xb, yb, colours[r]);
      }
  }
  for (int r = 0; rc == 0 && r < n; r++) {
    int y = PANEL_H + 8 + 14 * r;
    for (int k = 0; k < 20; k++) line(&img, 20 + k, y + 3, 21 + k, y + 3, colours[r]);
    text_draw(&img, 48, y, labels[r], 1, black);
  }
  if (rc == 0) rc = img_write(png, &img, 8, 0, msg, msg_size);
  img_free(&img);
  for (int r = 0; r < loaded; r++) free(runs[r].step);
  return rc;
}

int tr_plot_main(int argc, char **argv) {
  if (argc < 3 || argc - 2 > MAX_RUNS) {
    fprintf(stderr, "Usage: maskdcpt-train plot OUT.png LOG.csv[=LABEL]... (at most %d)\n",
            MAX_RUNS);
    return 2;
  }
  const char *logs[MAX_RUNS], *labels[MAX_RUNS];
  char buf[MAX_RUNS][1024];
  int n = argc - 2;
  for (int i = 0; i < n; i++) {
    snprintf(buf[i], sizeof buf[i], "%s", argv[i + 2]);
    char *eq = strchr(buf[i], '=');
    if (eq) *eq = '\0';
    logs[i] = buf[i];
    labels[i] = eq ? eq + 1 : buf[i];
  }
  char msg[512];
  if (tr_plot_logs(argv[1], logs, labels, n, msg, sizeof msg) != 0) {
    fprintf(stderr, "maskdcpt-train plot: %s\n", msg);
    return 1;
  }
  return 0;
}
