/* gegl_baselines.c - the classical baselines of scripts/evaluate.sh: applies
 * a grid of GEGL filter chains to degraded images and scores each result
 * against the clean original with degrade/metrics.c, the metric
 * `maskdcpt compare` uses.
 *
 *   gegl-baselines GRID.tsv JOBS.tsv OUT.csv [--ssim] [--threads N]
 *
 * GRID.tsv: "id<TAB>classes<TAB>chain" per line; classes is a comma list of
 * class names (or "*") the setting is tried on; chain is in the gegl tool's
 * syntax ("gegl:denoise-dct sigma=10 gegl:unsharp-mask std-dev=1"), empty
 * for no filter.  JOBS.tsv: "key<TAB>class<TAB>degraded.png<TAB>clean.png".
 * OUT.csv: "key,class,setting,psnr[,ssim][,cpu_ms]" for every job and every
 * setting whose classes include the job's class (cpu_ms, the filter's CPU
 * time, with GEGL_BASELINES_TIMING=1 in the environment).
 *
 * Spawning the gegl tool per image and setting costs ~0.3 s each; here each
 * PNG is loaded once and every setting runs in-process.  Built inside the
 * Debian 13 root (GEGL 0.4.62) by scripts/evaluate.sh, not by meson: the
 * host has no GEGL. */
#define _POSIX_C_SOURCE 200809L /* strdup */

#include <gegl.h>
#include <math.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

/* Mirror padding around each image before filtering: the crops have no
 * surroundings, and without it filters would see GEGL's transparent
 * abyss at the borders and lose PSNR there, which a user on a whole photo
 * would not. 16 px covers the kernels of the grid (unsharp-mask std-dev 5
 * reaches 3 sigma = 15 px); more only slows denoise-dct down. */
#define PAD 16

typedef struct setting {
  char *id, *classes, *chain;
} setting;

static void die(const char *what, const char *arg) {
  fprintf(stderr, "gegl-baselines: %s%s\n", what, arg ? arg : "");
  exit(1);
}

/* Splits a line at tabs into at most n fields; returns the count. */
static int split_tabs(char *line, char **f, int n) {
  int k = 0;
  line[strcspn(line, "\r\n")] = '\0';
  while (k < n) {
    f[k++] = line;
    char *t = strchr(line, '\t');
    if (!t) break;
    *t = '\0';
    line = t + 1;
  }
  return k;
}

static int class_listed(const char *classes, const char *name) {
  if (strcmp(classes, "*") == 0) return 1;
  size_t n = strlen(name);
  for (const char *p = classes; *p;) {
    size_t len = strcspn(p, ",");
    if (len == n && strncmp(p, name, n) == 0) return 1;
    p += len + (p[len] == ',');
  }
  return 0;
}

static setting *read_grid(const char *path, int *count) {
  FILE *f = fopen(path, "r");
  if (!f) die("cannot read ", path);
  setting *s = NULL;
  int n = 0, cap = 0;
  char line[4096];
  while (fgets(line, sizeof line, f)) {
    char *fld[3] = {0};
    if (line[0] == '#' || line[0] == '\n') continue;
    if (split_tabs(line, fld, 3) < 2) die("bad grid line in ", path);
    if (n == cap && !(s = realloc(s, (cap = cap ? 2 * cap : 64) * sizeof *s))) die("out of memory", 0);
    s[n].id = strdup(fld[0]);
    s[n].classes = strdup(fld[1]);
    s[n].chain = strdup(fld[2] ? fld[2] : "");
    n++;
  }
  fclose(f);
  *count = n;
  return s;
}

/* Loads path as R'G'B' float, w x h x 3. */
static float *load_rgb(const char *path, int *w, int *h) {
  GeglNode *g = gegl_node_new();
  GeglNode *load = gegl_node_new_child(g, "operation", "gegl:load", "path", path, NULL);
  GeglRectangle r = gegl_node_get_bounding_box(load);
  float *px = r.width > 0 ? malloc((size_t)r.width * r.height * 3 * sizeof *px) : NULL;
  if (!px) die("cannot load ", path);
  gegl_node_blit(load, 1.0, &r, babl_format("R'G'B' float"), px, GEGL_AUTO_ROWSTRIDE,
                 GEGL_BLIT_DEFAULT);
  g_object_unref(g);
  *w = r.width, *h = r.height;
  return px;
}

static int reflect(int i, int n) {
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * n - 2 - i; /* reflect-101 */
  return i;
}

/* The image mirrored by PAD on each side, as a GEGL buffer. */
static GeglBuffer *padded_buffer(const float *px, int w, int h) {
  int pw = w + 2 * PAD, ph = h + 2 * PAD;
  float *p = malloc((size_t)pw * ph * 3 * sizeof *p);
  if (!p) die("out of memory", 0);
  for (int y = 0; y < ph; y++)
    for (int x = 0; x < pw; x++)
      memcpy(p + ((size_t)y * pw + x) * 3,
             px + ((size_t)reflect(y - PAD, h) * w + reflect(x - PAD, w)) * 3, 3 * sizeof *p);
  GeglRectangle r = {0, 0, pw, ph};
  GeglBuffer *b = gegl_buffer_new(&r, babl_format("R'G'B' float"));
  gegl_buffer_set(b, &r, 0, babl_format("R'G'B' float"), p, GEGL_AUTO_ROWSTRIDE);
  free(p);
  return b;
}

/* Runs chain on the padded buffer into out (w x h x 3), rounded to 8 bits
 * as a PNG of the result would be, like every other method's output. */
static int run_chain(GeglBuffer *in, int w, int h, const char *chain, float *out) {
  GeglNode *g = gegl_node_new();
  GeglNode *src = gegl_node_new_child(g, "operation", "gegl:buffer-source", "buffer", in, NULL);
  GeglNode *sink = gegl_node_new_child(g, "operation", "gegl:nop", NULL);
  GError *err = NULL;
  if (chain[0]) {
    gegl_create_chain(chain, src, sink, 0.0, h + 2 * PAD, NULL, &err);
  } else {
    gegl_node_link(src, sink);
  }
  if (err) {
    fprintf(stderr, "gegl-baselines: '%s': %s\n", chain, err->message);
    g_error_free(err);
    g_object_unref(g);
    return -1;
  }
  GeglRectangle r = {PAD, PAD, w, h};
  gegl_node_blit(sink, 1.0, &r, babl_format("R'G'B' float"), out, GEGL_AUTO_ROWSTRIDE,
                 GEGL_BLIT_DEFAULT);
  g_object_unref(g);
  for (size_t i = 0; i < (size_t)w * h * 3; i++) {
    float v = out[i];
    v = v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f; /* NaN -> 0 */
    out[i] = roundf(v * 255.0f) / 255.0f;
  }
  return 0;
}

int main(int argc, char **argv) {
  int ssim = 0, threads = 1, timing = getenv("GEGL_BASELINES_TIMING") != NULL;
  const char *pos[3];
  int np = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--ssim") == 0) ssim = 1;
    else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
    else if (np < 3) pos[np++] = argv[i];
    else np = 4;
  }
  if (np != 3) {
    fputs("Usage: gegl-baselines GRID.tsv JOBS.tsv OUT.csv [--ssim] [--threads N]\n", stderr);
    return 2;
  }
  /* GPL-3 operations (gaussian-blur-selective, shadows-highlights, ...)
   * load only for GPL-3 applications, which maskdcpt is; set before
   * gegl_init, since a later change reloads every module */
  g_object_set(gegl_config(), "application-license", "GPL3", "threads", threads > 0 ? threads : 1,
               "use-opencl", FALSE, NULL);
  gegl_init(NULL, NULL);
  /* a grid value outside a property's range is only a GObject warning and
   * the default would run silently under the setting's name: make it fatal */
  g_log_set_fatal_mask("GLib-GObject", G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR);
  int ns;
  setting *grid = read_grid(pos[0], &ns);
  FILE *jobs = fopen(pos[1], "r"), *out = fopen(pos[2], "w");
  if (!jobs) die("cannot read ", pos[1]);
  if (!out) die("cannot write ", pos[2]);
  fprintf(out, "key,class,setting,psnr%s%s\n", ssim ? ",ssim" : "", timing ? ",cpu_ms" : "");
  char line[8192];
  int done = 0, failed = 0;
  while (fgets(line, sizeof line, jobs)) {
    char *f[4] = {0};
    if (line[0] == '#' || split_tabs(line, f, 4) != 4) continue;
    int w, h, cw, ch;
    float *deg = load_rgb(f[2], &w, &h), *clean = load_rgb(f[3], &cw, &ch);
    if (w != cw || h != ch) die("sizes differ: ", f[2]);
    float *res = malloc((size_t)w * h * 3 * sizeof *res);
    if (!res) die("out of memory", 0);
    GeglBuffer *in = padded_buffer(deg, w, h);
    for (int s = 0; s < ns; s++) {
      if (!class_listed(grid[s].classes, f[1])) continue;
      clock_t t0 = clock();
      if (run_chain(in, w, h, grid[s].chain, res) != 0) {
        failed++;
        continue;
      }
      size_t n = (size_t)w * h * 3;
      double ms = 1e3 * (double)(clock() - t0) / CLOCKS_PER_SEC; /* the filter's CPU time */
      fprintf(out, "%s,%s,%s,%.4f", f[0], f[1], grid[s].id, dg_psnr(res, clean, n));
      if (ssim) fprintf(out, ",%.6f", dg_ssim(res, clean, w, h));
      if (timing) fprintf(out, ",%.1f", ms);
      fputc('\n', out);
    }
    g_object_unref(in);
    free(deg), free(clean), free(res);
    fprintf(stderr, "\rgegl-baselines: %d images", ++done);
  }
  fprintf(stderr, "\n");
  fclose(jobs);
  if (fclose(out) != 0) die("cannot write ", pos[2]);
  for (int s = 0; s < ns; s++) free(grid[s].id), free(grid[s].classes), free(grid[s].chain);
  free(grid);
  gegl_exit();
  return failed ? 1 : 0;
}
