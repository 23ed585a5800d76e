/* test_cuda_ops.c - the CUDA backend's own kernels (cuda_elementwise.cu,
 * cuda_reduce.cu, cuda_dwconv.cu) against the CPU scalar backend, entry by
 * entry, on random inputs of awkward shapes.
 *
 * Every output is compared with ct_rel_err (max |got - ref| / (1 + max
 * |ref|)):
 *  - TOL_EW 1e-5 for per-element results and per-pixel sums over at most
 *    a few thousand channels or a 3x3 / window box: fp32 on the GPU vs
 *    double or fp32 on the CPU, a few ulp apart;
 *  - TOL_RED 1e-4 for sums over many pixels (parameter gradients, global
 *    means, relu_sum): the GPU adds per-thread partials and then per-block
 *    float atomics in a different order than the CPU's double loop, so the
 *    last float roundings of up to ~1e5 terms differ;
 *  - TOL_LOSS 1e-6 relative for the host doubles returned by the losses and
 *    sum_squares (double accumulation on both sides).
 * Outputs that are overwritten start as NaN on both sides (an unwritten
 * element fails); accumulated ones (+=) start from the same random values.
 * Vectorized paths (c a multiple of 4, 16-byte aligned) are also run on
 * buffers shifted by one float, which takes the scalar fallback.
 *
 * Batches: the entries with a batch (dwconv3x3, pool_mean) or per-image
 * parameter rows (layernorm's gb_every, scale_channels' s_every) are also
 * run on several images of awkward sizes (e.g. 3 images of 5 x 7) with
 * random values in every image and every row, so that mixing images
 * (padding across a border, a mean over two images, a row's sum landing in
 * the next row) shows up as an error against the reference.
 *
 * Sums over pixels (parameter gradients, global means) must also give the
 * same bits when run twice: the "deterministic" group (on a GPU, where the
 * order in which blocks run varies).
 *
 * Prints one line per entry with the worst error.  Without a usable GPU it
 * prints SKIP and exits 77. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda_test_util.h"
#include "nafblock_params.h"

#define TOL_EW 1e-5
#define TOL_RED 1e-4
#define TOL_LOSS 1e-6

static mdc_backend *gpu, *cpu;

/* ------------------------------------------------------- bookkeeping */

#define MAX_STATS 64
static struct {
  const char *name;
  double worst, tol;
  int checks;
} stats[MAX_STATS];
static int n_stats;

static void note(const char *name, double err, double tol) {
  int i = 0;
  while (i < n_stats && strcmp(stats[i].name, name)) i++;
  if (i == n_stats) {
    if (n_stats == MAX_STATS) return;
    stats[n_stats].name = name;
    stats[n_stats].worst = 0;
    stats[n_stats].tol = tol;
    stats[n_stats].checks = 0;
    n_stats++;
  }
  if (!(err <= stats[i].worst)) stats[i].worst = err; /* NaN sticks */
  if (tol > stats[i].tol) stats[i].tol = tol;
  stats[i].checks++;
}

/* A host array (the CPU's copy) and a device array with the same contents;
 * the device one starts `g_shift` floats into its allocation (1: not
 * 16-byte aligned, for the scalar fallbacks). */
typedef struct buf {
  float *h, *d, *base;
  size_t n;
} buf;

static int g_shift;

static buf buf_from(float *host, size_t n) { /* takes host */
  buf b = {host, NULL, NULL, n};
  b.base = mdc_be_alloc(gpu, (n + 1) * sizeof(float));
  if (!b.base) {
    printf("FAIL: out of device memory (%zu floats)\n", n);
    exit(1);
  }
  b.d = b.base + g_shift;
  if (n) mdc_be_upload(gpu, b.d, host, n * sizeof(float));
  return b;
}

/* Host arrays: uniform in [offset - scale, offset + scale), or NaN. */
static float *host_rand(size_t n, float scale, float offset) {
  float *h = ct_rand(n, scale);
  for (size_t i = 0; i < n; i++) h[i] += offset;
  return h;
}

static float *host_nan(size_t n) {
  float *h = malloc((n ? n : 1) * sizeof(float));
  for (size_t i = 0; i < n; i++) h[i] = NAN;
  return h;
}

static buf buf_rand(size_t n, float scale, float offset) {
  return buf_from(host_rand(n, scale, offset), n);
}

static buf buf_nan(size_t n) { return buf_from(host_nan(n), n); }

static buf buf_copy(const buf *src) {
  float *h = malloc((src->n ? src->n : 1) * sizeof(float));
  memcpy(h, src->h, src->n * sizeof(float));
  return buf_from(h, src->n);
}

/* Sends the host contents to the device again (after the CPU wrote them). */
static void buf_resend(buf *b) {
  if (b->n) mdc_be_upload(gpu, b->d, b->h, b->n * sizeof(float));
}

static void buf_free(buf *b) {
  free(b->h);
  mdc_be_free(gpu, b->base);
  memset(b, 0, sizeof *b);
}

/* "entry case...", the name a failure is reported under */
static void case_name(char *what, size_t size, const char *entry, const char *fmt, va_list ap) {
  int len = snprintf(what, size, "%s ", entry);
  vsnprintf(what + len, size - len, fmt, ap);
}

/* Compares the device copy with the host (reference) one. */
static void check_buf(const char *entry, const buf *b, double tol, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void check_buf(const char *entry, const buf *b, double tol, const char *fmt, ...) {
  char what[256];
  va_list ap;
  va_start(ap, fmt);
  case_name(what, sizeof what, entry, fmt, ap);
  va_end(ap);
  note(entry, ct_compare(gpu, what, b->d, b->h, b->n, tol), tol);
}

static void check_value(const char *entry, double got, double ref, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void check_value(const char *entry, double got, double ref, const char *fmt, ...) {
  char what[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  double e = fabs(got - ref) / (fabs(ref) > 1e-30 ? fabs(ref) : 1e-30);
  if (got == ref) e = 0;
  if (isnan(got) || isnan(ref)) e = INFINITY;
  ct_check(e <= TOL_LOSS, "%s %s: %.17g vs %.17g (relative %.3g)", entry, what, got, ref, e);
  note(entry, e, TOL_LOSS);
}

/* ------------------------------------------------------------ shapes */

typedef struct {
  size_t n;
  int c;
} pix_shape;

/* The large sizes: pixels of the biggest shapes, values of the biggest
 * reductions.  tests/cuda_emu (the kernels on a CPU emulator) passes smaller
 * ones; on a GPU these defaults apply. */
#ifndef CT_LARGE_N
#define CT_LARGE_N 65537
#endif
#ifndef CT_HUGE_N
#define CT_HUGE_N (3u << 20)
#endif

static const pix_shape SHAPES[] = {{1, 1},          {3, 3},           {1000, 16}, {1000, 33},
                                   {CT_LARGE_N, 3}, {CT_LARGE_N, 16}, {3, 1024},  {1000, 1024},
                                   {CT_LARGE_N, 33}};
#define N_SHAPES (sizeof SHAPES / sizeof SHAPES[0])

static const int SIDES[] = {1, 2, 5, 31, 130};
#define N_SIDES 5
static const int IMG_C[] = {1, 3, 16, 33};
#define N_IMG_C 4

/* ------------------------------------------------------------ layernorm */

/* Rows of per-image parameters for n pixels, one per `every` (0: one row). */
static size_t rows_of(size_t n, size_t every) { return every ? (n + every - 1) / every : 1; }

/* every: gb_every (0: one row of g and b; h * w: one row per image) */
static void test_layernorm_case(size_t n, int c, size_t every) {
  const float eps = 1e-5f;
  const size_t rows = rows_of(n, every);
  buf x = buf_rand(n * c, 1.0f, 3.0f); /* mean far from 0: tests the two-pass */
  buf g = buf_rand(rows * c, 1.0f, 0.0f), b = buf_rand(rows * c, 1.0f, 0.0f);
  buf y = buf_nan(n * c), mean = buf_nan(n), rstd = buf_nan(n), y2 = buf_nan(n * c);
  cpu->layernorm(cpu, x.h, n, c, g.h, b.h, every, eps, y.h, mean.h, rstd.h);
  gpu->layernorm(gpu, x.d, n, c, g.d, b.d, every, eps, y.d, mean.d, rstd.d);
  check_buf("layernorm", &y, TOL_EW, "y n=%zu c=%d every=%zu", n, c, every);
  check_buf("layernorm", &mean, TOL_EW, "mean n=%zu c=%d every=%zu", n, c, every);
  check_buf("layernorm", &rstd, TOL_EW, "rstd n=%zu c=%d every=%zu", n, c, every);
  gpu->layernorm(gpu, x.d, n, c, g.d, b.d, every, eps, y2.d, NULL, NULL);
  memcpy(y2.h, y.h, n * c * sizeof(float));
  check_buf("layernorm", &y2, TOL_EW, "y (no stats) n=%zu c=%d every=%zu", n, c, every);

  /* backward, from the CPU's statistics on both sides; dg and db have g's
   * shape, each row accumulating its own pixels */
  buf_resend(&mean);
  buf_resend(&rstd);
  buf dy = buf_rand(n * c, 1.0f, 0.0f), dx = buf_nan(n * c);
  buf dg = buf_rand(rows * c, 1.0f, 0.0f), db = buf_rand(rows * c, 1.0f, 0.0f);
  cpu->layernorm_backward(cpu, x.h, n, c, g.h, every, mean.h, rstd.h, dy.h, dx.h, dg.h, db.h);
  gpu->layernorm_backward(gpu, x.d, n, c, g.d, every, mean.d, rstd.d, dy.d, dx.d, dg.d, db.d);
  check_buf("layernorm_backward dx", &dx, TOL_EW, "n=%zu c=%d every=%zu", n, c, every);
  check_buf("layernorm_backward dg,db", &dg, TOL_RED, "dg n=%zu c=%d every=%zu", n, c, every);
  check_buf("layernorm_backward dg,db", &db, TOL_RED, "db n=%zu c=%d every=%zu", n, c, every);
  /* dx NULL: parameters only, accumulating again */
  cpu->layernorm_backward(cpu, x.h, n, c, g.h, every, mean.h, rstd.h, dy.h, NULL, dg.h, db.h);
  gpu->layernorm_backward(gpu, x.d, n, c, g.d, every, mean.d, rstd.d, dy.d, NULL, dg.d, db.d);
  check_buf("layernorm_backward dg,db", &dg, TOL_RED, "dg (twice, dx NULL) n=%zu c=%d every=%zu",
            n, c, every);
  check_buf("layernorm_backward dg,db", &db, TOL_RED, "db (twice, dx NULL) n=%zu c=%d every=%zu",
            n, c, every);
  /* in place (dx = dy) with the parameter gradients read from dy first */
  cpu->layernorm_backward(cpu, x.h, n, c, g.h, every, mean.h, rstd.h, dy.h, dy.h, dg.h, NULL);
  gpu->layernorm_backward(gpu, x.d, n, c, g.d, every, mean.d, rstd.d, dy.d, dy.d, dg.d, NULL);
  check_buf("layernorm_backward dx", &dy, TOL_EW, "(dx = dy) n=%zu c=%d every=%zu", n, c, every);
  check_buf("layernorm_backward dg,db", &dg, TOL_RED, "dg (dx = dy) n=%zu c=%d every=%zu", n, c,
            every);
  buf_free(&x), buf_free(&g), buf_free(&b), buf_free(&y), buf_free(&mean), buf_free(&rstd);
  buf_free(&y2), buf_free(&dy), buf_free(&dx), buf_free(&dg), buf_free(&db);
}

static void test_layernorm(void) {
  for (size_t s = 0; s < N_SHAPES; s++) test_layernorm_case(SHAPES[s].n, SHAPES[s].c, 0);
  /* the wide-row (block per pixel) kernels */
  test_layernorm_case(2, 1025, 0);
  test_layernorm_case(37, 2000, 0);
  test_layernorm_case(5, 4096, 0);
  /* per-image rows (gb_every = h * w): 3 images of 5 x 7, odd channels;
   * large images whose sums take several blocks each; wide rows; a row
   * per pixel; gb_every >= n (one row) */
  test_layernorm_case(3 * 35, 3, 35);
  test_layernorm_case(3 * 35, 33, 35);
  test_layernorm_case(3 * 35, 16, 35);
  test_layernorm_case(2 * 1000, 1, 1000);
  test_layernorm_case(3 * (size_t)CT_LARGE_N, 33, CT_LARGE_N);
  test_layernorm_case(4 * 37, 2000, 37);
  test_layernorm_case(3 * 5, 1025, 5);
  test_layernorm_case(17, 16, 1);
  test_layernorm_case(35, 5, 35);
  test_layernorm_case(35, 5, 100);
  ct_sync_ok(gpu, "layernorm");
}

/* ------------------------------------------------------------ simplegate */

static void test_simplegate_case(size_t n, int c) {
  buf x = buf_rand(n * 2 * c, 1.0f, 0.0f), y = buf_nan(n * c);
  cpu->simplegate(cpu, x.h, n, c, y.h);
  gpu->simplegate(gpu, x.d, n, c, y.d);
  check_buf("simplegate", &y, TOL_EW, "n=%zu c=%d shift=%d", n, c, g_shift);
  buf dy = buf_rand(n * c, 1.0f, 0.0f), dx = buf_nan(n * 2 * c);
  cpu->simplegate_backward(cpu, x.h, n, c, dy.h, dx.h);
  gpu->simplegate_backward(gpu, x.d, n, c, dy.d, dx.d);
  check_buf("simplegate_backward", &dx, TOL_EW, "n=%zu c=%d", n, c);
  gpu->simplegate_backward(gpu, x.d, n, c, dy.d, NULL); /* nothing to do */
  buf_free(&x), buf_free(&y), buf_free(&dy), buf_free(&dx);
}

static void test_simplegate(void) {
  for (size_t s = 0; s < N_SHAPES; s++) test_simplegate_case(SHAPES[s].n, SHAPES[s].c);
  g_shift = 1;
  test_simplegate_case(1000, 16);
  g_shift = 0;
  ct_sync_ok(gpu, "simplegate");
}

/* -------------------------------------------------------- scale_channels */

/* every: s_every (0: one row of s; 1: one per pixel; h * w: one per image) */
static void test_scale_channels_case(size_t n, int c, size_t every) {
  size_t sn = rows_of(n, every) * c;
  /* a row per pixel: products, no sums */
  double ds_tol = every == 1 ? TOL_EW : TOL_RED;
  const char *ds_name = every == 1   ? "scale_channels_backward ds (per pixel)"
                        : every == 0 ? "scale_channels_backward ds"
                                     : "scale_channels_backward ds (per image)";
  buf x = buf_rand(n * c, 1.0f, 0.0f), s = buf_rand(sn, 1.0f, 0.0f), y = buf_nan(n * c);
  cpu->scale_channels(cpu, x.h, s.h, every, n, c, y.h);
  gpu->scale_channels(gpu, x.d, s.d, every, n, c, y.d);
  check_buf("scale_channels", &y, TOL_EW, "n=%zu c=%d every=%zu shift=%d", n, c, every, g_shift);

  buf dy = buf_rand(n * c, 1.0f, 0.0f), dx = buf_nan(n * c), ds = buf_nan(sn);
  cpu->scale_channels_backward(cpu, x.h, s.h, every, n, c, dy.h, dx.h, ds.h);
  gpu->scale_channels_backward(gpu, x.d, s.d, every, n, c, dy.d, dx.d, ds.d);
  check_buf("scale_channels_backward dx", &dx, TOL_EW, "n=%zu c=%d every=%zu", n, c, every);
  check_buf(ds_name, &ds, ds_tol, "n=%zu c=%d every=%zu", n, c, every);
  buf dx2 = buf_nan(n * c), ds2 = buf_nan(sn);
  /* dx only, then ds only */
  cpu->scale_channels_backward(cpu, x.h, s.h, every, n, c, dy.h, dx2.h, NULL);
  gpu->scale_channels_backward(gpu, x.d, s.d, every, n, c, dy.d, dx2.d, NULL);
  check_buf("scale_channels_backward dx", &dx2, TOL_EW, "(ds NULL) n=%zu c=%d every=%zu", n, c,
            every);
  cpu->scale_channels_backward(cpu, x.h, s.h, every, n, c, dy.h, NULL, ds2.h);
  gpu->scale_channels_backward(gpu, x.d, s.d, every, n, c, dy.d, NULL, ds2.d);
  check_buf(ds_name, &ds2, ds_tol, "(dx NULL) n=%zu c=%d every=%zu", n, c, every);
  /* ds is overwritten, not accumulated: a second call gives the same */
  gpu->scale_channels_backward(gpu, x.d, s.d, every, n, c, dy.d, NULL, ds2.d);
  check_buf(ds_name, &ds2, ds_tol, "(again) n=%zu c=%d every=%zu", n, c, every);
  /* in place: dx = dy, ds read from dy before it is overwritten */
  for (size_t i = 0; i < sn; i++) ds2.h[i] = NAN;
  buf_resend(&ds2);
  cpu->scale_channels_backward(cpu, x.h, s.h, every, n, c, dy.h, dy.h, ds2.h);
  gpu->scale_channels_backward(gpu, x.d, s.d, every, n, c, dy.d, dy.d, ds2.d);
  check_buf("scale_channels_backward dx", &dy, TOL_EW, "(dx = dy) n=%zu c=%d every=%zu", n, c,
            every);
  check_buf(ds_name, &ds2, ds_tol, "(dx = dy) n=%zu c=%d every=%zu", n, c, every);
  buf_free(&x), buf_free(&s), buf_free(&y), buf_free(&dy), buf_free(&dx), buf_free(&ds);
  buf_free(&dx2), buf_free(&ds2);
}

static void test_scale_channels(void) {
  for (int pp = 0; pp < 2; pp++)
    for (size_t s = 0; s < N_SHAPES; s++)
      test_scale_channels_case(SHAPES[s].n, SHAPES[s].c, (size_t)pp);
  /* one row of s per image (s_every = h * w): 3 images of 5 x 7 with odd
   * and vector-friendly channels, large images (several blocks per row's
   * sum), s_every >= n (one row) */
  test_scale_channels_case(3 * 35, 3, 35);
  test_scale_channels_case(3 * 35, 33, 35);
  test_scale_channels_case(3 * 35, 16, 35);
  test_scale_channels_case(5 * 1000, 1, 1000);
  test_scale_channels_case(3 * (size_t)CT_LARGE_N, 33, CT_LARGE_N);
  test_scale_channels_case(2 * 3, 1024, 3);
  test_scale_channels_case(35, 7, 100);
  g_shift = 1;
  test_scale_channels_case(1000, 16, 0);
  test_scale_channels_case(1000, 16, 1);
  test_scale_channels_case(3 * 35, 16, 35);
  g_shift = 0;
  /* n == 0 with per-channel s: ds is still overwritten (with zeros) */
  buf s = buf_rand(5, 1.0f, 0.0f), ds = buf_nan(5);
  cpu->scale_channels_backward(cpu, NULL, s.h, 0, 0, 5, NULL, NULL, ds.h);
  gpu->scale_channels_backward(gpu, NULL, s.d, 0, 0, 5, NULL, NULL, ds.d);
  check_buf("scale_channels_backward ds", &ds, TOL_EW, "n=0 c=5");
  buf_free(&s), buf_free(&ds);
  ct_sync_ok(gpu, "scale_channels");
}

/* ------------------------------------------------------------ add_scaled */

static void test_add_scaled_case(size_t n, int c, int with_s) {
  buf a = buf_rand(n * c, 1.0f, 0.0f), b = buf_rand(n * c, 1.0f, 0.0f);
  buf s = buf_rand(c, 1.0f, 0.0f), y = buf_nan(n * c);
  const float *sh = with_s ? s.h : NULL, *sd = with_s ? s.d : NULL;
  cpu->add_scaled(cpu, a.h, b.h, sh, n, c, y.h);
  gpu->add_scaled(gpu, a.d, b.d, sd, n, c, y.d);
  check_buf("add_scaled", &y, TOL_EW, "n=%zu c=%d s=%d shift=%d", n, c, with_s, g_shift);
  /* in place: y = a, then y = b */
  buf a2 = buf_copy(&a), b2 = buf_copy(&b);
  cpu->add_scaled(cpu, a2.h, b.h, sh, n, c, a2.h);
  gpu->add_scaled(gpu, a2.d, b.d, sd, n, c, a2.d);
  check_buf("add_scaled", &a2, TOL_EW, "(y = a) n=%zu c=%d s=%d", n, c, with_s);
  cpu->add_scaled(cpu, a.h, b2.h, sh, n, c, b2.h);
  gpu->add_scaled(gpu, a.d, b2.d, sd, n, c, b2.d);
  check_buf("add_scaled", &b2, TOL_EW, "(y = b) n=%zu c=%d s=%d", n, c, with_s);

  buf dy = buf_rand(n * c, 1.0f, 0.0f), db = buf_nan(n * c), ds = buf_rand(c, 1.0f, 0.0f);
  float *dsh = with_s ? ds.h : NULL, *dsd = with_s ? ds.d : NULL;
  cpu->add_scaled_backward(cpu, b.h, sh, n, c, dy.h, db.h, dsh);
  gpu->add_scaled_backward(gpu, b.d, sd, n, c, dy.d, db.d, dsd);
  check_buf("add_scaled_backward db", &db, TOL_EW, "n=%zu c=%d s=%d", n, c, with_s);
  if (with_s) {
    check_buf("add_scaled_backward ds", &ds, TOL_RED, "n=%zu c=%d", n, c);
    /* db NULL: ds accumulates again; then db = dy in place after ds */
    cpu->add_scaled_backward(cpu, b.h, sh, n, c, dy.h, NULL, dsh);
    gpu->add_scaled_backward(gpu, b.d, sd, n, c, dy.d, NULL, dsd);
    check_buf("add_scaled_backward ds", &ds, TOL_RED, "(twice, db NULL) n=%zu c=%d", n, c);
    cpu->add_scaled_backward(cpu, b.h, sh, n, c, dy.h, dy.h, dsh);
    gpu->add_scaled_backward(gpu, b.d, sd, n, c, dy.d, dy.d, dsd);
    check_buf("add_scaled_backward ds", &ds, TOL_RED, "(db = dy) n=%zu c=%d", n, c);
    check_buf("add_scaled_backward db", &dy, TOL_EW, "(db = dy) n=%zu c=%d", n, c);
  }
  buf_free(&a), buf_free(&b), buf_free(&s), buf_free(&y), buf_free(&a2), buf_free(&b2);
  buf_free(&dy), buf_free(&db), buf_free(&ds);
}

static void test_add_scaled(void) {
  for (int ws = 0; ws < 2; ws++)
    for (size_t s = 0; s < N_SHAPES; s++) test_add_scaled_case(SHAPES[s].n, SHAPES[s].c, ws);
  g_shift = 1;
  test_add_scaled_case(1000, 16, 1);
  g_shift = 0;
  ct_sync_ok(gpu, "add_scaled");
}

/* ------------------------------------------------------ pixelshuffle */

static void test_pixelshuffle_case(int h, int w, int c, int with_skip) {
  size_t n = (size_t)h * w;
  buf x = buf_rand(n * 4 * c, 1.0f, 0.0f), skip = buf_rand(n * 4 * c, 1.0f, 0.0f);
  buf y = buf_nan(n * 4 * c);
  cpu->pixelshuffle_add(cpu, x.h, h, w, c, with_skip ? skip.h : NULL, y.h);
  gpu->pixelshuffle_add(gpu, x.d, h, w, c, with_skip ? skip.d : NULL, y.d);
  check_buf("pixelshuffle_add", &y, TOL_EW, "h=%d w=%d c=%d skip=%d shift=%d", h, w, c,
            with_skip, g_shift);
  buf dy = buf_rand(n * 4 * c, 1.0f, 0.0f), dx = buf_nan(n * 4 * c);
  cpu->pixelshuffle_backward(cpu, h, w, c, dy.h, dx.h);
  gpu->pixelshuffle_backward(gpu, h, w, c, dy.d, dx.d);
  check_buf("pixelshuffle_backward", &dx, TOL_EW, "h=%d w=%d c=%d shift=%d", h, w, c, g_shift);
  buf_free(&x), buf_free(&skip), buf_free(&y), buf_free(&dy), buf_free(&dx);
}

static void test_pixelshuffle(void) {
  for (int a = 0; a < N_SIDES; a++)
    for (int b = 0; b < N_SIDES; b++)
      for (int k = 0; k < N_IMG_C; k++)
        test_pixelshuffle_case(SIDES[a], SIDES[b], IMG_C[k], (a + b + k) % 2);
  test_pixelshuffle_case(5, 31, 1024, 1);
  g_shift = 1;
  test_pixelshuffle_case(31, 5, 16, 1);
  test_pixelshuffle_case(2, 130, 3, 0);
  g_shift = 0;
  ct_sync_ok(gpu, "pixelshuffle");
}

/* ------------------------------------------------ small glue entries */

static void test_glue_case(size_t n, int c) {
  size_t nc = n * c;
  /* mask_pixels: a 0/1 mask per pixel */
  buf x = buf_rand(nc, 1.0f, 0.0f), m = buf_rand(n, 1.0f, 0.0f), y = buf_nan(nc);
  for (size_t i = 0; i < n; i++) m.h[i] = m.h[i] > -0.3f ? 1.0f : 0.0f;
  buf_resend(&m);
  cpu->mask_pixels(cpu, x.h, m.h, n, c, y.h);
  gpu->mask_pixels(gpu, x.d, m.d, n, c, y.d);
  check_buf("mask_pixels", &y, TOL_EW, "n=%zu c=%d shift=%d", n, c, g_shift);

  /* scale: fresh output, then in place */
  buf y2 = buf_nan(nc);
  cpu->scale(cpu, x.h, nc, -1.7f, y2.h);
  gpu->scale(gpu, x.d, nc, -1.7f, y2.d);
  check_buf("scale", &y2, TOL_EW, "n=%zu shift=%d", nc, g_shift);
  cpu->scale(cpu, y2.h, nc, 0.3f, y2.h);
  gpu->scale(gpu, y2.d, nc, 0.3f, y2.d);
  check_buf("scale", &y2, TOL_EW, "(y = x) n=%zu", nc);

  /* relu_mask_scale */
  buf s = buf_rand(c, 1.0f, 0.0f), y3 = buf_nan(nc);
  cpu->relu_mask_scale(cpu, x.h, s.h, n, c, y3.h);
  gpu->relu_mask_scale(gpu, x.d, s.d, n, c, y3.d);
  check_buf("relu_mask_scale", &y3, TOL_EW, "n=%zu c=%d", n, c);

  /* ema_update, twice */
  buf ema = buf_rand(nc, 1.0f, 0.0f);
  for (int r = 0; r < 2; r++) {
    cpu->ema_update(cpu, ema.h, x.h, nc, 0.999f);
    gpu->ema_update(gpu, ema.d, x.d, nc, 0.999f);
  }
  check_buf("ema_update", &ema, TOL_EW, "n=%zu", nc);
  buf_free(&x), buf_free(&m), buf_free(&y), buf_free(&y2), buf_free(&s), buf_free(&y3);
  buf_free(&ema);
}

static void test_glue(void) {
  for (size_t s = 0; s < N_SHAPES; s++) test_glue_case(SHAPES[s].n, SHAPES[s].c);
  g_shift = 1;
  test_glue_case(1000, 16);
  g_shift = 0;
  ct_sync_ok(gpu, "glue");
}

/* ------------------------------------------------------------- pool_mean */

static void test_pool_case(int batch, int h, int w, int c, int window) {
  size_t n = (size_t)batch * h * w;
  int global = window <= 0 || (window >= h && window >= w);
  size_t yn = global ? (size_t)batch * c : n * c;
  /* each image its own offset, so a mean over the wrong image is far off */
  buf x = buf_rand(n * c, 1.0f, 0.5f), y = buf_nan(yn);
  for (size_t i = 0; i < n * c; i++) x.h[i] += (float)(i / ((size_t)h * w * c));
  buf_resend(&x);
  cpu->pool_mean(cpu, x.h, batch, h, w, c, window, y.h);
  gpu->pool_mean(gpu, x.d, batch, h, w, c, window, y.d);
  /* global: a mean over up to 17000 pixels (TOL_RED); boxes: a few hundred */
  check_buf(global ? "pool_mean (global)" : "pool_mean (box)", &y, global ? TOL_RED : TOL_EW,
            "batch=%d h=%d w=%d c=%d window=%d", batch, h, w, c, window);
  buf dy = buf_rand(yn, 1.0f, 0.0f), dx = buf_nan(n * c);
  cpu->pool_mean_backward(cpu, batch, h, w, c, window, dy.h, dx.h);
  gpu->pool_mean_backward(gpu, batch, h, w, c, window, dy.d, dx.d);
  check_buf(global ? "pool_mean_backward (global)" : "pool_mean_backward (box)", &dx, TOL_EW,
            "batch=%d h=%d w=%d c=%d window=%d", batch, h, w, c, window);
  buf_free(&x), buf_free(&y), buf_free(&dy), buf_free(&dx);
}

static void test_pool(void) {
  static const int windows[] = {0, 4, 7, 200};
  for (int a = 0; a < N_SIDES; a++)
    for (int b = 0; b < N_SIDES; b++)
      for (int k = 0; k < N_IMG_C; k++)
        for (int wi = 0; wi < 4; wi++)
          test_pool_case(1, SIDES[a], SIDES[b], IMG_C[k], windows[wi]);
  test_pool_case(1, 31, 130, 1024, 7);
  test_pool_case(1, 130, 31, 64, 40);
  test_pool_case(1, 130, 131, 16, 130); /* box spans all rows but not all columns */
  /* batches: every small side pair, odd channels, every window kind */
  for (int a = 0; a < 4; a++)
    for (int b = 0; b < 4; b++)
      for (int wi = 0; wi < 4; wi++)
        test_pool_case(3, SIDES[a], SIDES[b], (a + b) % 2 ? 3 : 33, windows[wi]);
  test_pool_case(3, 5, 7, 3, 4);
  test_pool_case(3, 5, 7, 33, 0);
  test_pool_case(2, 130, 31, 16, 0);  /* several blocks per image's mean */
  test_pool_case(2, 31, 130, 33, 7);
  test_pool_case(4, 130, 131, 16, 130);
  ct_sync_ok(gpu, "pool_mean");
}

/* -------------------------------------------------------------- relu_sum */

static void test_relu_sum_case(int h, int w, size_t stride, int c) {
  size_t len = ((size_t)(h - 1) * stride + w) * c;
  buf x = buf_rand(len, 1.0f, 0.0f), y = buf_rand(c, 1.0f, 0.0f);
  cpu->relu_sum(cpu, x.h, h, w, stride, c, y.h);
  gpu->relu_sum(gpu, x.d, h, w, stride, c, y.d);
  check_buf("relu_sum", &y, TOL_RED, "h=%d w=%d stride=%zu c=%d", h, w, stride, c);
  buf_free(&x), buf_free(&y);
}

static void test_relu_sum(void) {
  static const int cs[] = {1, 3, 16, 33, 1024};
  for (int a = 0; a < N_SIDES; a++)
    for (int b = 0; b < N_SIDES; b++)
      for (int k = 0; k < 5; k++) {
        if ((size_t)SIDES[a] * SIDES[b] * cs[k] > 4u << 20) continue;
        test_relu_sum_case(SIDES[a], SIDES[b], (size_t)SIDES[b] + (a % 2) * 3, cs[k]);
      }
  ct_sync_ok(gpu, "relu_sum");
}

/* ---------------------------------------------------------------- losses */

static void test_losses_case(size_t n) {
  buf pred = buf_rand(n, 1.0f, 0.0f), target = buf_rand(n, 1.0f, 0.0f);
  for (size_t i = 3; i < n; i += 7) target.h[i] = pred.h[i]; /* zero differences too */
  buf_resend(&target);
  buf grad = buf_nan(n);
  double ref = cpu->l1_loss(cpu, pred.h, target.h, n, 0.5f, grad.h);
  double got = gpu->l1_loss(gpu, pred.d, target.d, n, 0.5f, grad.d);
  check_value("l1_loss", got, ref, "value n=%zu", n);
  check_buf("l1_loss grad", &grad, TOL_EW, "n=%zu", n);
  got = gpu->l1_loss(gpu, pred.d, target.d, n, 0.5f, NULL);
  check_value("l1_loss", got, ref, "value (grad NULL) n=%zu", n);

  buf grad2 = buf_nan(n);
  /* NAFNet's eps and one as large as the random inputs' MSE */
  static const double eps[] = {1e-8, 0.5};
  for (int e = 0; e < 2; e++) {
    ref = cpu->psnr_loss(cpu, pred.h, target.h, 1, n, eps[e], 2.0f, grad2.h);
    got = gpu->psnr_loss(gpu, pred.d, target.d, 1, n, eps[e], 2.0f, grad2.d);
    check_value("psnr_loss", got, ref, "value n=%zu eps %g", n, eps[e]);
    check_buf("psnr_loss grad", &grad2, TOL_EW, "n=%zu eps %g", n, eps[e]);
    got = gpu->psnr_loss(gpu, pred.d, target.d, 1, n, eps[e], 2.0f, NULL);
    check_value("psnr_loss", got, ref, "value (grad NULL) n=%zu eps %g", n, eps[e]);
  }

  /* Crops one after another, each its own MSE (errors 1, 4, 16 ... times
   * the first crop's), so that a crop reading another's sum is caught. */
  static const int batches[] = {2, 5};
  for (int k = 0; k < 2; k++) {
    int nb = batches[k];
    size_t per = n / (size_t)nb;
    if (per == 0) continue;
    buf p = buf_copy(&pred), g = buf_copy(&target); /* a tail past the crops stays as is */
    for (size_t i = 0; i < per * (size_t)nb; i++)
      p.h[i] = target.h[i] + (pred.h[i] - target.h[i]) * (float)(1u << (2 * (i / per)));
    buf_resend(&p);
    ref = cpu->psnr_loss(cpu, p.h, target.h, nb, per, 1e-8, 0.25f, g.h);
    got = gpu->psnr_loss(gpu, p.d, target.d, nb, per, 1e-8, 0.25f, g.d);
    check_value("psnr_loss", got, ref, "value %d crops of %zu", nb, per);
    check_buf("psnr_loss grad", &g, TOL_EW, "%d crops of %zu", nb, per);
    buf_free(&p), buf_free(&g);
  }

  ref = cpu->sum_squares(cpu, pred.h, n);
  got = gpu->sum_squares(gpu, pred.d, n);
  check_value("sum_squares", got, ref, "n=%zu", n);
  buf_free(&pred), buf_free(&target), buf_free(&grad), buf_free(&grad2);
}

static void test_losses(void) {
  static const size_t ns[] = {1, 3, 1000, CT_LARGE_N, CT_HUGE_N};
  for (int i = 0; i < 5; i++) test_losses_case(ns[i]);
  check_value("sum_squares", gpu->sum_squares(gpu, NULL, 0), 0.0, "n=0");
  check_value("l1_loss", gpu->l1_loss(gpu, NULL, NULL, 0, 1.0f, NULL), 0.0, "n=0");
  ct_sync_ok(gpu, "losses");
}

/* ----------------------------------------------------------------- adamw */

static void test_adamw_case(size_t n, long first_step) {
  const float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.05f;
  buf p = buf_rand(n, 1.0f, 0.0f), m = buf_rand(n, 0.1f, 0.0f), v = buf_rand(n, 0.01f, 0.0f);
  for (size_t i = 0; i < n; i++) {
    if (first_step == 1) m.h[i] = v.h[i] = 0.0f; /* a fresh optimizer */
    else v.h[i] = fabsf(v.h[i]);
  }
  buf_resend(&m);
  buf_resend(&v);
  for (long step = first_step; step < first_step + 3; step++) {
    buf g = buf_rand(n, step == first_step + 1 ? 1e-3f : 1.0f, 0.0f);
    cpu->adamw_step(cpu, p.h, g.h, m.h, v.h, n, lr, b1, b2, eps, wd, step);
    gpu->adamw_step(gpu, p.d, g.d, m.d, v.d, n, lr, b1, b2, eps, wd, step);
    check_buf("adamw_step", &p, TOL_EW, "param n=%zu step=%ld", n, step);
    check_buf("adamw_step", &m, TOL_EW, "m n=%zu step=%ld", n, step);
    check_buf("adamw_step", &v, TOL_EW, "v n=%zu step=%ld", n, step);
    buf_free(&g);
  }
  buf_free(&p), buf_free(&m), buf_free(&v);
}

static void test_adamw(void) {
  static const size_t ns[] = {1, 3, 1000, CT_LARGE_N};
  for (int i = 0; i < 4; i++) {
    test_adamw_case(ns[i], 1);
    test_adamw_case(ns[i], 7);
  }
  ct_sync_ok(gpu, "adamw_step");
}

/* ---------------------------------------------------------------- dwconv */

static void test_dwconv_case(int batch, int h, int w, int c, int with_bias) {
  size_t nc = (size_t)batch * h * w * c;
  buf x = buf_rand(nc, 1.0f, 0.0f), wt = buf_rand(9 * (size_t)c, 1.0f, 0.0f);
  buf b = buf_rand(c, 1.0f, 0.0f), y = buf_nan(nc);
  /* each image its own offset, so padding taken from a neighbour shows */
  for (size_t i = 0; i < nc; i++) x.h[i] += (float)(i / ((size_t)h * w * c));
  buf_resend(&x);
  const float *bh = with_bias ? b.h : NULL, *bd = with_bias ? b.d : NULL;
  cpu->dwconv3x3(cpu, x.h, batch, h, w, c, wt.h, bh, y.h);
  gpu->dwconv3x3(gpu, x.d, batch, h, w, c, wt.d, bd, y.d);
  check_buf("dwconv3x3", &y, TOL_EW, "batch=%d h=%d w=%d c=%d bias=%d shift=%d", batch, h, w, c,
            with_bias, g_shift);

  buf dy = buf_rand(nc, 1.0f, 0.0f), dx = buf_nan(nc);
  buf dwt = buf_rand(9 * (size_t)c, 1.0f, 0.0f), db = buf_rand(c, 1.0f, 0.0f);
  cpu->dwconv3x3_backward(cpu, x.h, batch, h, w, c, wt.h, dy.h, dx.h, dwt.h, db.h);
  gpu->dwconv3x3_backward(gpu, x.d, batch, h, w, c, wt.d, dy.d, dx.d, dwt.d, db.d);
  check_buf("dwconv3x3_backward dx", &dx, TOL_EW, "batch=%d h=%d w=%d c=%d shift=%d", batch, h, w,
            c, g_shift);
  check_buf("dwconv3x3_backward dwt,db", &dwt, TOL_RED, "dwt batch=%d h=%d w=%d c=%d", batch, h,
            w, c);
  check_buf("dwconv3x3_backward dwt,db", &db, TOL_RED, "db batch=%d h=%d w=%d c=%d", batch, h, w,
            c);
  /* dx NULL, then only dx */
  cpu->dwconv3x3_backward(cpu, x.h, batch, h, w, c, wt.h, dy.h, NULL, dwt.h, db.h);
  gpu->dwconv3x3_backward(gpu, x.d, batch, h, w, c, wt.d, dy.d, NULL, dwt.d, db.d);
  check_buf("dwconv3x3_backward dwt,db", &dwt, TOL_RED,
            "dwt (twice, dx NULL) batch=%d h=%d w=%d c=%d", batch, h, w, c);
  check_buf("dwconv3x3_backward dwt,db", &db, TOL_RED,
            "db (twice, dx NULL) batch=%d h=%d w=%d c=%d", batch, h, w, c);
  buf dx2 = buf_nan(nc);
  cpu->dwconv3x3_backward(cpu, x.h, batch, h, w, c, wt.h, dy.h, dx2.h, NULL, NULL);
  gpu->dwconv3x3_backward(gpu, x.d, batch, h, w, c, wt.d, dy.d, dx2.d, NULL, NULL);
  check_buf("dwconv3x3_backward dx", &dx2, TOL_EW, "(no dwt, db) batch=%d h=%d w=%d c=%d", batch,
            h, w, c);
  buf_free(&x), buf_free(&wt), buf_free(&b), buf_free(&y), buf_free(&dy), buf_free(&dx);
  buf_free(&dwt), buf_free(&db), buf_free(&dx2);
}

static void test_dwconv(void) {
  for (int a = 0; a < N_SIDES; a++)
    for (int b = 0; b < N_SIDES; b++)
      for (int k = 0; k < N_IMG_C; k++)
        test_dwconv_case(1, SIDES[a], SIDES[b], IMG_C[k], (a + b + k) % 2);
  test_dwconv_case(1, 5, 5, 1024, 1);
  test_dwconv_case(1, 31, 130, 64, 0);
  test_dwconv_case(1, 130, 130, 64, 1);
  /* batches: small sides (images of 1 to 31 rows; 9 rows span two row
   * chunks), odd and vector-friendly channels */
  for (int a = 0; a < 4; a++)
    for (int b = 0; b < 4; b++)
      for (int k = 0; k < N_IMG_C; k++)
        test_dwconv_case(3, SIDES[a], SIDES[b], IMG_C[k], (a + b + k) % 2);
  test_dwconv_case(3, 5, 7, 33, 1);
  test_dwconv_case(3, 9, 7, 5, 0);
  test_dwconv_case(3, 17, 3, 16, 1);
  test_dwconv_case(2, 31, 130, 64, 1);
  test_dwconv_case(5, 2, 1, 1024, 0);
  g_shift = 1;
  test_dwconv_case(1, 31, 130, 16, 1);
  test_dwconv_case(3, 5, 7, 16, 1);
  g_shift = 0;
  ct_sync_ok(gpu, "dwconv3x3");
}

/* --------------------------------------------------------- fused forms */

/* dwconv3x3_gate against dwconv3x3 of 2c channels then simplegate */
static void test_dwconv_gate_case(int batch, int h, int w, int c, int with_bias) {
  size_t n = (size_t)batch * h * w, n2 = n * 2 * c;
  buf x = buf_rand(n2, 1.0f, 0.0f), wt = buf_rand(9 * 2 * (size_t)c, 1.0f, 0.0f);
  buf b = buf_rand(2 * (size_t)c, 1.0f, 0.0f), y = buf_nan(n * c);
  /* each image its own offset, so padding taken from a neighbour shows */
  for (size_t i = 0; i < n2; i++) x.h[i] += (float)(i / ((size_t)h * w * 2 * c));
  buf_resend(&x);
  const float *bh = with_bias ? b.h : NULL, *bd = with_bias ? b.d : NULL;
  float *dw = malloc(n2 * sizeof(float));
  cpu->dwconv3x3(cpu, x.h, batch, h, w, 2 * c, wt.h, bh, dw);
  cpu->simplegate(cpu, dw, n, c, y.h);
  gpu->dwconv3x3_gate(gpu, x.d, batch, h, w, c, wt.d, bd, y.d);
  check_buf("dwconv3x3_gate", &y, TOL_EW, "batch=%d h=%d w=%d c=%d bias=%d shift=%d", batch, h, w,
            c, with_bias, g_shift);
  free(dw);
  buf_free(&x), buf_free(&wt), buf_free(&b), buf_free(&y);
}

static void test_dwconv_gate(void) {
  for (int a = 0; a < N_SIDES; a++)
    for (int b = 0; b < N_SIDES; b++)
      for (int k = 0; k < N_IMG_C; k++)
        test_dwconv_gate_case(1, SIDES[a], SIDES[b], IMG_C[k], (a + b + k) % 2);
  test_dwconv_gate_case(1, 5, 5, 512, 1);
  test_dwconv_gate_case(1, 130, 130, 32, 1);
  test_dwconv_gate_case(3, 9, 7, 5, 0);
  test_dwconv_gate_case(3, 17, 3, 16, 1);
  test_dwconv_gate_case(2, 31, 130, 64, 1);
  g_shift = 1;
  test_dwconv_gate_case(1, 31, 130, 16, 1);
  test_dwconv_gate_case(3, 5, 7, 16, 0);
  g_shift = 0;
  ct_sync_ok(gpu, "dwconv3x3_gate");
}

/* add_scaled_layernorm against add_scaled then layernorm.  in_place: 0
 * (y its own buffer), 1 (y = a), 2 (y = b). */
static void test_add_layernorm_case(size_t n, int c, size_t every, int with_s, int in_place) {
  const float eps = 1e-5f;
  const size_t rows = rows_of(n, every), nc = n * c;
  buf a = buf_rand(nc, 1.0f, 3.0f), r = buf_rand(nc, 1.0f, 0.0f), s = buf_rand(c, 1.0f, 0.0f);
  buf g = buf_rand(rows * c, 1.0f, 0.0f), gb = buf_rand(rows * c, 1.0f, 0.0f);
  buf y = buf_nan(nc), ln = buf_nan(nc), mean = buf_nan(n), rstd = buf_nan(n);
  const float *sh = with_s ? s.h : NULL, *sd = with_s ? s.d : NULL;
  cpu->add_scaled(cpu, a.h, r.h, sh, n, c, y.h);
  cpu->layernorm(cpu, y.h, n, c, g.h, gb.h, every, eps, ln.h, mean.h, rstd.h);
  /* the buffer receiving y on the GPU, its host side the expected y */
  buf *out = in_place == 1 ? &a : in_place == 2 ? &r : &y;
  gpu->add_scaled_layernorm(gpu, a.d, r.d, sd, n, c, g.d, gb.d, every, eps, out->d, ln.d, mean.d,
                            rstd.d);
  if (out != &y) memcpy(out->h, y.h, nc * sizeof(float));
  const char *mode = in_place == 1 ? "y = a" : in_place == 2 ? "y = b" : "y apart";
  check_buf("add_scaled_layernorm", out, TOL_EW, "y n=%zu c=%d every=%zu s=%d %s shift=%d", n,
            c, every, with_s, mode, g_shift);
  check_buf("add_scaled_layernorm", &ln, TOL_EW, "ln n=%zu c=%d every=%zu s=%d %s", n, c, every,
            with_s, mode);
  check_buf("add_scaled_layernorm", &mean, TOL_EW, "mean n=%zu c=%d every=%zu", n, c, every);
  check_buf("add_scaled_layernorm", &rstd, TOL_EW, "rstd n=%zu c=%d every=%zu", n, c, every);
  if (!in_place) { /* no statistics wanted */
    buf ln2 = buf_nan(nc);
    gpu->add_scaled_layernorm(gpu, a.d, r.d, sd, n, c, g.d, gb.d, every, eps, y.d, ln2.d, NULL,
                              NULL);
    memcpy(ln2.h, ln.h, nc * sizeof(float));
    check_buf("add_scaled_layernorm", &ln2, TOL_EW, "ln (no stats) n=%zu c=%d", n, c);
    buf_free(&ln2);
  }
  buf_free(&a), buf_free(&r), buf_free(&s), buf_free(&g), buf_free(&gb), buf_free(&y);
  buf_free(&ln), buf_free(&mean), buf_free(&rstd);
}

static void test_add_layernorm(void) {
  for (size_t k = 0; k < N_SHAPES; k++)
    test_add_layernorm_case(SHAPES[k].n, SHAPES[k].c, 0, (int)(k % 2), (int)(k % 3));
  /* the wide-row (block per pixel) kernel, in place too */
  for (int m = 0; m < 3; m++) test_add_layernorm_case(37, 2000, 0, 1, m);
  test_add_layernorm_case(2, 1025, 0, 0, 0);
  /* per-image rows; a row per pixel */
  test_add_layernorm_case(3 * 35, 33, 35, 1, 0);
  test_add_layernorm_case(3 * 35, 16, 35, 0, 1);
  test_add_layernorm_case(4 * 37, 2000, 37, 1, 2);
  test_add_layernorm_case(17, 16, 1, 1, 0);
  g_shift = 1;
  test_add_layernorm_case(1000, 16, 0, 1, 0);
  g_shift = 0;
  ct_sync_ok(gpu, "add_scaled_layernorm");
}

/* ------------------------------------------------------------ NAFBlock */

/* The backend's whole NAFBlock (its fused composition) against the CPU
 * scalar reference; under the emulator the convolutions are the CPU's, so
 * this checks the composition's own kernels and buffers. */
static void test_nafblock_case(int c, int h, int w, int window) {
  buf prm[TEST_NAFBLOCK_NUM_PARAMS];
  mdc_nafblock_params hp = {.c = c}, dp = {.c = c};
  float sc = 1.0f / sqrtf((float)c);
  int k = 0;
#define P(field, count, scale)                             \
  prm[k] = buf_rand((size_t)(count), scale, 0.0f);         \
  hp.field = prm[k].h, dp.field = prm[k].d;                \
  k++;
  TEST_NAFBLOCK_PARAMS(P, c, sc)
#undef P
  size_t n = (size_t)h * w * c;
  buf x = buf_rand(n, 1.0f, 0.0f), y = buf_nan(n);
  void *scratch = malloc(cpu->nafblock_scratch_size(cpu, c, h, w, window));
  cpu->nafblock_forward(cpu, &hp, x.h, h, w, 1e-6f, window, y.h, scratch);
  free(scratch);
  /* device scratch NaN-filled and 4 bytes off alignment, as callers may pass it */
  buf gs = buf_nan(gpu->nafblock_scratch_size(gpu, c, h, w, window) / sizeof(float) + 2);
  gpu->nafblock_forward(gpu, &dp, x.d, h, w, 1e-6f, window, y.d, (char *)gs.d + 4);
  check_buf("nafblock_forward", &y, TOL_RED, "%dx%d c=%d window=%d shift=%d", h, w, c, window,
            g_shift);
  for (int i = 0; i < TEST_NAFBLOCK_NUM_PARAMS; i++) buf_free(&prm[i]);
  buf_free(&x), buf_free(&y), buf_free(&gs);
}

static void test_nafblock(void) {
  test_nafblock_case(16, 13, 9, 0);  /* global channel attention: folded into conv3 */
  test_nafblock_case(16, 13, 9, 4);  /* windowed: scaled per pixel */
  test_nafblock_case(5, 13, 9, 4);
  test_nafblock_case(5, 13, 9, 0);
  test_nafblock_case(16, 33, 7, 8);
  test_nafblock_case(48, 7, 33, 5);
  test_nafblock_case(16, 1, 1, 0);
  test_nafblock_case(3, 2, 130, 4);
  g_shift = 1;
  test_nafblock_case(16, 13, 9, 0);
  g_shift = 0;
  /* without the fused entries (MASKDCPT_CUDA_UNFUSED clears them): the
   * composition's plain branches */
  void (*gate)(mdc_backend *, const float *, int, int, int, int, const float *, const float *,
               float *) = gpu->dwconv3x3_gate;
  void (*add_ln)(mdc_backend *, const float *, const float *, const float *, size_t, int,
                 const float *, const float *, size_t, float, float *, float *, float *,
                 float *) = gpu->add_scaled_layernorm;
  gpu->dwconv3x3_gate = NULL, gpu->add_scaled_layernorm = NULL;
  test_nafblock_case(16, 13, 9, 0);
  test_nafblock_case(5, 13, 9, 4);
  gpu->dwconv3x3_gate = gate, gpu->add_scaled_layernorm = add_ln;
  ct_sync_ok(gpu, "nafblock_forward");
}

/* -------------------------------------------------------------- fp16 mode
 * The backend made with MDC_CUDA_FP16 stores activations as half.  Inputs
 * are rounded to half on the device (act_upload) and read back, so the
 * CPU reference starts from exactly the values the device holds; what
 * remains is the rounding of each stored result (2^-11 relative) and,
 * where a result is computed from a stored intermediate, that rounding
 * carried on:
 *  - TOL_F16 1e-3: results rounded once (per-element entries, LayerNorm,
 *    the means, the depthwise convolutions);
 *  - TOL_F16_CONV 5e-3: the dense convolutions, whose weights are
 *    converted to half too on a GPU (cuBLAS / cuDNN take both operands
 *    in half), and the residual sum's LayerNorm (normalised from the
 *    rounded sum);
 *  - TOL_F16_BLOCK 1e-2: the NAFBlock, nine stored intermediates deep.
 * Parameters (weights, biases, LayerNorm rows) stay fp32. */
#define TOL_F16 1e-3
#define TOL_F16_CONV 5e-3
#define TOL_F16_BLOCK 1e-2

static mdc_backend *gpu16;

/* A host array and the device's half copy; h holds the rounded values. */
typedef struct hbuf {
  float *h;
  char *d, *base;
  size_t n;
} hbuf;

static hbuf h_from(float *host, size_t n) { /* takes host */
  hbuf b = {host, NULL, mdc_be_alloc(gpu16, (n + 4) * 2), n};
  if (!b.base) {
    printf("FAIL: out of device memory (%zu halves)\n", n);
    exit(1);
  }
  b.d = b.base + 2 * g_shift; /* g_shift 1: 2 bytes off, the one-at-a-time paths */
  if (n) {
    mdc_be_act_upload(gpu16, b.d, host, n);
    mdc_be_act_download(gpu16, host, b.d, n);
  }
  return b;
}

static hbuf h_rand(size_t n, float scale, float offset) {
  return h_from(host_rand(n, scale, offset), n);
}

static hbuf h_nan(size_t n) { return h_from(host_nan(n), n); }

static void h_free(hbuf *b) {
  free(b->h);
  mdc_be_free(gpu16, b->base);
  memset(b, 0, sizeof *b);
}

/* The device's result (read back as fp32) against the host reference in h. */
static void h_check(const char *entry, const hbuf *b, double tol, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void h_check(const char *entry, const hbuf *b, double tol, const char *fmt, ...) {
  char what[256];
  va_list ap;
  va_start(ap, fmt);
  case_name(what, sizeof what, entry, fmt, ap);
  va_end(ap);
  float *got = malloc((b->n ? b->n : 1) * sizeof(float));
  mdc_be_act_download(gpu16, got, b->d, b->n);
  double e = ct_rel_err(got, b->h, b->n);
  ct_check(e <= tol, "%s: relative error %.3g > %.3g", what, e, tol);
  free(got);
  note(entry, e, tol);
}

/* fp32 parameters on the fp16 backend */
typedef struct pbuf {
  float *h, *d;
} pbuf;
static pbuf p_rand(size_t n, float scale) {
  pbuf p = {ct_rand(n, scale), NULL};
  p.d = ct_upload(gpu16, p.h, n);
  return p;
}
static void p_free(pbuf *p) {
  free(p->h);
  mdc_be_free(gpu16, p->d);
}

static void test_fp16_transfers(void) {
  /* exactly representable values come back as they were; others round to
   * the nearest half; past 65504 is infinity; NaN stays NaN */
  float v[] = {0.0f, 1.0f, -2.0f, 0.5f, 65504.0f, 6.103515625e-05f, 5.9604644775390625e-08f,
               1.0f / 3.0f, 65520.0f, -1e9f, 1e-9f, NAN, 2049.0f};
  float want[] = {0.0f, 1.0f, -2.0f, 0.5f, 65504.0f, 6.103515625e-05f, 5.9604644775390625e-08f,
                  0.333251953125f, INFINITY, -INFINITY, 0.0f, NAN, 2048.0f};
  size_t n = sizeof v / sizeof v[0];
  float *copy = malloc(sizeof v);
  memcpy(copy, v, sizeof v);
  hbuf b = h_from(copy, n);
  int ok = 1;
  for (size_t i = 0; i < n; i++)
    ok &= isnan(want[i]) ? isnan(b.h[i]) : b.h[i] == want[i];
  ct_check(ok, "fp16 transfers: values round to the nearest half");
  for (size_t i = 0; i < n && !ok; i++) printf("  %.9g -> %.9g (want %.9g)\n", v[i], b.h[i], want[i]);
  h_free(&b);
  /* random values: within half an ulp of the original, and a rounded
   * value goes through unchanged */
  float *orig = ct_rand(10007, 4.0f), *again = malloc(10007 * sizeof(float));
  memcpy(again, orig, 10007 * sizeof(float));
  hbuf r = h_from(again, 10007);
  double worst = 0;
  for (size_t i = 0; i < r.n; i++) {
    double e = fabs((double)r.h[i] - orig[i]), bound = fabs(orig[i]) * ldexp(1.0, -11);
    if (bound < ldexp(1.0, -25)) bound = ldexp(1.0, -25); /* subnormal halves */
    if (!(e / bound <= worst)) worst = e / bound;
  }
  ct_check(worst <= 1.0, "fp16 transfers: rounding error %.3g half-ulps (want <= 1)", worst);
  float *rounded = malloc(10007 * sizeof(float));
  memcpy(rounded, r.h, 10007 * sizeof(float));
  hbuf r2 = h_from(rounded, 10007);
  ct_check(memcmp(r2.h, r.h, 10007 * sizeof(float)) == 0,
           "fp16 transfers: a rounded value comes back unchanged");
  free(orig);
  h_free(&r);
  h_free(&r2);
  ct_sync_ok(gpu16, "fp16 transfers");
}

static void test_fp16_elementwise(size_t n, int c) {
  /* layernorm, mean far from 0 */
  hbuf x = h_rand(n * c, 1.0f, 3.0f), y = h_nan(n * c);
  pbuf g = p_rand((size_t)c, 1.0f), b = p_rand((size_t)c, 1.0f);
  cpu->layernorm(cpu, x.h, n, c, g.h, b.h, 0, 1e-5f, y.h, NULL, NULL);
  gpu16->layernorm(gpu16, (float *)x.d, n, c, g.d, b.d, 0, 1e-5f, (float *)y.d, NULL, NULL);
  h_check("layernorm (fp16)", &y, TOL_F16, "n=%zu c=%d shift=%d", n, c, g_shift);
  /* add_scaled_layernorm: y = x + s r stored, LayerNorm of it */
  hbuf r = h_rand(n * c, 1.0f, 0.0f), sum = h_nan(n * c), ln = h_nan(n * c);
  pbuf s = p_rand((size_t)c, 1.0f);
  cpu->add_scaled(cpu, x.h, r.h, s.h, n, c, sum.h);
  cpu->layernorm(cpu, sum.h, n, c, g.h, b.h, 0, 1e-5f, ln.h, NULL, NULL);
  gpu16->add_scaled_layernorm(gpu16, (float *)x.d, (float *)r.d, s.d, n, c, g.d, b.d, 0, 1e-5f,
                              (float *)sum.d, (float *)ln.d, NULL, NULL);
  h_check("add_scaled_layernorm (fp16)", &sum, TOL_F16, "sum n=%zu c=%d", n, c);
  h_check("add_scaled_layernorm (fp16)", &ln, TOL_F16_CONV, "ln n=%zu c=%d", n, c);
  /* add_scaled with and without s, into y */
  cpu->add_scaled(cpu, x.h, r.h, s.h, n, c, y.h);
  gpu16->add_scaled(gpu16, (float *)x.d, (float *)r.d, s.d, n, c, (float *)y.d);
  h_check("add_scaled (fp16)", &y, TOL_F16, "s n=%zu c=%d shift=%d", n, c, g_shift);
  cpu->add_scaled(cpu, x.h, r.h, NULL, n, c, y.h);
  gpu16->add_scaled(gpu16, (float *)x.d, (float *)r.d, NULL, n, c, (float *)y.d);
  h_check("add_scaled (fp16)", &y, TOL_F16, "no s n=%zu c=%d shift=%d", n, c, g_shift);
  /* simplegate: x2 holds 2c channels */
  hbuf x2 = h_rand(n * 2 * c, 1.0f, 0.0f);
  cpu->simplegate(cpu, x2.h, n, c, y.h);
  gpu16->simplegate(gpu16, (float *)x2.d, n, c, (float *)y.d);
  h_check("simplegate (fp16)", &y, TOL_F16, "n=%zu c=%d shift=%d", n, c, g_shift);
  /* scale_channels: one row, then one row per pixel (s an activation) */
  hbuf s1 = h_rand((size_t)c, 1.0f, 0.0f), sp = h_rand(n * c, 1.0f, 0.0f);
  cpu->scale_channels(cpu, x.h, s1.h, 0, n, c, y.h);
  gpu16->scale_channels(gpu16, (float *)x.d, (float *)s1.d, 0, n, c, (float *)y.d);
  h_check("scale_channels (fp16)", &y, TOL_F16, "one row n=%zu c=%d shift=%d", n, c, g_shift);
  cpu->scale_channels(cpu, x.h, sp.h, 1, n, c, y.h);
  gpu16->scale_channels(gpu16, (float *)x.d, (float *)sp.d, 1, n, c, (float *)y.d);
  h_check("scale_channels (fp16)", &y, TOL_F16, "per pixel n=%zu c=%d shift=%d", n, c, g_shift);
  h_free(&x), h_free(&y), h_free(&r), h_free(&sum), h_free(&ln), h_free(&x2), h_free(&s1);
  h_free(&sp), p_free(&g), p_free(&b), p_free(&s);
}

static void test_fp16_image(int batch, int h, int w, int c, int window) {
  size_t n = (size_t)batch * h * w;
  int global = window <= 0 || (window >= h && window >= w);
  /* pool_mean: each image its own offset */
  float *xh = ct_rand(n * c, 1.0f);
  for (size_t i = 0; i < n * c; i++) xh[i] += 0.5f + (float)(i / ((size_t)h * w * c));
  hbuf x = h_from(xh, n * c), m = h_nan(global ? (size_t)batch * c : n * c);
  cpu->pool_mean(cpu, x.h, batch, h, w, c, window, m.h);
  gpu16->pool_mean(gpu16, (float *)x.d, batch, h, w, c, window, (float *)m.d);
  h_check(global ? "pool_mean (global) (fp16)" : "pool_mean (box) (fp16)", &m, TOL_F16,
          "batch=%d h=%d w=%d c=%d window=%d", batch, h, w, c, window);
  /* dwconv3x3 and the fused gate */
  pbuf wt = p_rand(9 * 2 * (size_t)c, 1.0f), bias = p_rand(2 * (size_t)c, 1.0f);
  hbuf y = h_nan(n * c);
  cpu->dwconv3x3(cpu, x.h, batch, h, w, c, wt.h, bias.h, y.h);
  gpu16->dwconv3x3(gpu16, (float *)x.d, batch, h, w, c, wt.d, bias.d, (float *)y.d);
  h_check("dwconv3x3 (fp16)", &y, TOL_F16, "batch=%d h=%d w=%d c=%d shift=%d", batch, h, w, c, g_shift);
  hbuf x2 = h_rand(n * 2 * c, 1.0f, 0.0f);
  float *tmp = malloc(n * 2 * c * sizeof(float));
  cpu->dwconv3x3(cpu, x2.h, batch, h, w, 2 * c, wt.h, bias.h, tmp);
  cpu->simplegate(cpu, tmp, n, c, y.h);
  free(tmp);
  gpu16->dwconv3x3_gate(gpu16, (float *)x2.d, batch, h, w, c, wt.d, bias.d, (float *)y.d);
  h_check("dwconv3x3_gate (fp16)", &y, TOL_F16, "batch=%d h=%d w=%d c=%d shift=%d", batch, h, w, c,
          g_shift);
  /* relu_sum over the first image's rows (its sums stay fp32) */
  float *sums = ct_rand((size_t)c, 1.0f);
  float *dsums = ct_upload(gpu16, sums, (size_t)c);
  cpu->relu_sum(cpu, x2.h, h, w, (size_t)w, c, sums);
  gpu16->relu_sum(gpu16, (float *)x2.d, h, w, (size_t)w, c, dsums);
  note("relu_sum (fp16)", ct_compare(gpu16, "relu_sum (fp16)", dsums, sums, (size_t)c, TOL_RED),
       TOL_RED);
  free(sums);
  mdc_be_free(gpu16, dsums);
  /* pixelshuffle_add, h x w input of 4c channels */
  if (batch == 1) {
    hbuf px = h_rand(n * 4 * c, 1.0f, 0.0f), skip = h_rand(n * 4 * c, 1.0f, 0.0f);
    hbuf py = h_nan(n * 4 * c);
    cpu->pixelshuffle_add(cpu, px.h, h, w, c, skip.h, py.h);
    gpu16->pixelshuffle_add(gpu16, (float *)px.d, h, w, c, (float *)skip.d, (float *)py.d);
    h_check("pixelshuffle_add (fp16)", &py, TOL_F16, "h=%d w=%d c=%d shift=%d", h, w, c, g_shift);
    h_free(&px), h_free(&skip), h_free(&py);
  }
  h_free(&x), h_free(&m), h_free(&y), h_free(&x2), p_free(&wt), p_free(&bias);
}

/* The dense convolutions: cuBLAS / cuDNN on a GPU, the CPU's fp32 code
 * between conversions under the emulator. */
static void test_fp16_conv(int batch, int h, int w, int cin, int cout, int with_bias) {
  size_t n = (size_t)batch * h * w;
  hbuf x = h_rand(n * cin, 1.0f, 0.0f), y = h_nan(n * cout);
  pbuf w1 = p_rand((size_t)cin * cout, 1.0f / sqrtf((float)cin)), b = p_rand((size_t)cout, 1.0f);
  pbuf w3 = p_rand(9 * (size_t)cin * cout, 1.0f / sqrtf(9.0f * cin));
  const float *bh = with_bias ? b.h : NULL, *bd = with_bias ? b.d : NULL;
  cpu->conv1x1(cpu, x.h, n, cin, w1.h, bh, cout, y.h);
  gpu16->conv1x1(gpu16, (float *)x.d, n, cin, w1.d, bd, cout, (float *)y.d);
  h_check("conv1x1 (fp16)", &y, TOL_F16_CONV, "n=%zu %d->%d bias=%d", n, cin, cout, with_bias);
  cpu->conv3x3(cpu, x.h, batch, h, w, cin, w3.h, bh, cout, y.h);
  gpu16->conv3x3(gpu16, (float *)x.d, batch, h, w, cin, w3.d, bd, cout, (float *)y.d);
  h_check("conv3x3 (fp16)", &y, TOL_F16_CONV, "batch=%d %dx%d %d->%d bias=%d", batch, h, w, cin, cout,
          with_bias);
  if (h % 2 == 0 && w % 2 == 0) { /* batch * h rows, as the callers pass it */
    int c2 = cout / 4 ? cout / 4 : 1;
    pbuf w2 = p_rand(4 * (size_t)cin * c2, 0.5f / sqrtf((float)cin));
    hbuf y2 = h_nan(n / 4 * c2);
    cpu->conv2x2s2(cpu, x.h, batch * h, w, cin, w2.h, bh, c2, y2.h);
    gpu16->conv2x2s2(gpu16, (float *)x.d, batch * h, w, cin, w2.d, bd, c2, (float *)y2.d);
    h_check("conv2x2s2 (fp16)", &y2, TOL_F16_CONV, "%dx%d %d->%d bias=%d", batch * h, w, cin, c2,
            with_bias);
    h_free(&y2), p_free(&w2);
  }
  h_free(&x), h_free(&y), p_free(&w1), p_free(&b), p_free(&w3);
}

static void test_fp16_nafblock(int c, int h, int w, int window) {
  pbuf prm[TEST_NAFBLOCK_NUM_PARAMS];
  mdc_nafblock_params hp = {.c = c}, dp = {.c = c};
  float sc = 1.0f / sqrtf((float)c);
  int k = 0;
#define P(field, count, scale)       \
  prm[k] = p_rand((size_t)(count), scale); \
  hp.field = prm[k].h, dp.field = prm[k].d; \
  k++;
  TEST_NAFBLOCK_PARAMS(P, c, sc)
#undef P
  size_t n = (size_t)h * w * c;
  hbuf x = h_rand(n, 1.0f, 0.0f), y = h_nan(n);
  void *scratch = malloc(cpu->nafblock_scratch_size(cpu, c, h, w, window));
  cpu->nafblock_forward(cpu, &hp, x.h, h, w, 1e-6f, window, y.h, scratch);
  free(scratch);
  void *gs = mdc_be_alloc(gpu16, gpu16->nafblock_scratch_size(gpu16, c, h, w, window) + 8);
  gpu16->nafblock_forward(gpu16, &dp, (float *)x.d, h, w, 1e-6f, window, (float *)y.d,
                          (char *)gs + 4);
  h_check("nafblock_forward (fp16)", &y, TOL_F16_BLOCK, "%dx%d c=%d window=%d", h, w, c, window);
  mdc_be_free(gpu16, gs);
  for (int i = 0; i < TEST_NAFBLOCK_NUM_PARAMS; i++) p_free(&prm[i]);
  h_free(&x), h_free(&y);
}

static void test_fp16(void) {
  char msg[512];
  gpu16 = mdc_cuda_module_backend_new(0, MDC_CUDA_FP16, msg, sizeof msg);
  ct_check(gpu16 != NULL, "fp16 backend: %s", msg);
  if (!gpu16) return;
  printf("  fp16 device: %s\n", gpu16->name);
  ct_check(gpu16->act_half && gpu16->act_upload && gpu16->act_download && gpu16->nafblock_forward,
           "fp16 backend: half activations with their transfers");
  ct_check(!gpu16->conv1x1_backward && !gpu16->layernorm_backward && !gpu16->psnr_loss &&
               !gpu16->adamw_step && !gpu16->mask_pixels,
           "fp16 backend: no training entries (inference only)");
  test_fp16_transfers();
  test_fp16_elementwise(1000, 16);
  test_fp16_elementwise(1000, 33);
  test_fp16_elementwise(3, 1024);
  test_fp16_elementwise(5, 2050); /* LayerNorm's block-per-pixel kernel */
  test_fp16_image(1, 31, 130, 16, 0);
  test_fp16_image(1, 31, 130, 16, 7);
  test_fp16_image(3, 5, 7, 33, 4);
  test_fp16_image(2, 9, 7, 5, 0);
  test_fp16_conv(1, 13, 9, 16, 32, 1);
  test_fp16_conv(1, 13, 9, 33, 5, 0);
  test_fp16_conv(2, 10, 14, 3, 16, 1); /* the intro's 3 channels */
  test_fp16_conv(1, 12, 6, 16, 3, 1);  /* the ending's 3 */
  test_fp16_nafblock(16, 13, 9, 0);
  test_fp16_nafblock(16, 13, 9, 4);
  test_fp16_nafblock(5, 13, 9, 4);
  test_fp16_nafblock(48, 7, 33, 0);
  g_shift = 1;
  test_fp16_elementwise(1000, 16);
  test_fp16_image(1, 31, 130, 16, 7);
  g_shift = 0;
  ct_sync_ok(gpu16, "fp16");
  mdc_backend_free(gpu16);
  gpu16 = NULL;
}

/* --------------------------------------------------------- determinism */

/* Records whether two runs' results have the same bits; frees both. */
static void same_bits(const char *name, float *first, float *again, size_t n) {
  int same = memcmp(first, again, n * sizeof(float)) == 0;
  ct_check(same, "%s: two runs differ", name);
  note("deterministic (bitwise)", same ? 0.0 : INFINITY, 0.0);
  free(first);
  free(again);
}

/* Runs `call` twice into `out` (zeroed first when `zero`, for the
 * accumulating entries) and checks that both results have the same bits. */
#define SAME_TWICE(name, out, zero, call)                                \
  do {                                                                   \
    if (zero) mdc_be_zero(gpu, (out).d, (out).n * sizeof(float));        \
    call;                                                                \
    float *first_ = ct_download(gpu, (out).d, (out).n);                  \
    if (zero) mdc_be_zero(gpu, (out).d, (out).n * sizeof(float));        \
    call;                                                                \
    same_bits(name, first_, ct_download(gpu, (out).d, (out).n), (out).n); \
  } while (0)

static void test_deterministic(void) {
  const int batch = 3, h = 130, w = 131, c = 33;
  const size_t hw = (size_t)h * w, n = batch * hw;
  buf x = buf_rand(n * c, 1.0f, 0.5f), dy = buf_rand(n * c, 1.0f, 0.0f);
  buf mean = buf_rand(n, 0.1f, 0.0f), rstd = buf_rand(n, 0.1f, 1.0f);
  buf g = buf_rand((size_t)batch * c, 1.0f, 0.0f);
  buf rows0 = buf_nan((size_t)batch * c), rows1 = buf_nan((size_t)batch * c);
  buf row0 = buf_nan((size_t)c), row1 = buf_nan((size_t)c);
  SAME_TWICE("pool_mean (global, per image)", rows0, 0,
             gpu->pool_mean(gpu, x.d, batch, h, w, c, 0, rows0.d));
  SAME_TWICE("scale_channels_backward ds (per image)", rows0, 0,
             gpu->scale_channels_backward(gpu, x.d, g.d, hw, n, c, dy.d, NULL, rows0.d));
  SAME_TWICE("scale_channels_backward ds (one row)", row0, 0,
             gpu->scale_channels_backward(gpu, x.d, g.d, 0, n, c, dy.d, NULL, row0.d));
  SAME_TWICE("layernorm_backward dg (per image)", rows0, 1,
             gpu->layernorm_backward(gpu, x.d, n, c, g.d, hw, mean.d, rstd.d, dy.d, NULL,
                                     rows0.d, rows1.d));
  SAME_TWICE("layernorm_backward db (per image)", rows1, 1,
             gpu->layernorm_backward(gpu, x.d, n, c, g.d, hw, mean.d, rstd.d, dy.d, NULL,
                                     rows0.d, rows1.d));
  SAME_TWICE("layernorm_backward dg (one row)", row0, 1,
             gpu->layernorm_backward(gpu, x.d, n, c, g.d, 0, mean.d, rstd.d, dy.d, NULL, row0.d,
                                     row1.d));
  SAME_TWICE("add_scaled_backward ds", row0, 1,
             gpu->add_scaled_backward(gpu, x.d, g.d, n, c, dy.d, NULL, row0.d));
  SAME_TWICE("relu_sum", row0, 1, gpu->relu_sum(gpu, x.d, batch * h, w, (size_t)w, c, row0.d));
  buf_free(&x), buf_free(&dy), buf_free(&mean), buf_free(&rstd), buf_free(&g);
  buf_free(&rows0), buf_free(&rows1), buf_free(&row0), buf_free(&row1);
  ct_sync_ok(gpu, "deterministic");
}

/* ------------------------------------------------------------------ main */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(void) {
  gpu = ct_backend_or_skip(1);
  cpu = mdc_backend_cpu_scalar_new(1);
  if (!cpu) {
    printf("FAIL: no CPU backend\n");
    return 1;
  }
  printf("device: %s\n", gpu->name);
  static const struct {
    const char *name;
    void (*run)(void);
  } groups[] = {{"layernorm", test_layernorm},   {"simplegate", test_simplegate},
                {"scale_channels", test_scale_channels}, {"add_scaled", test_add_scaled},
                {"pixelshuffle", test_pixelshuffle}, {"glue", test_glue},
                {"pool_mean", test_pool},        {"relu_sum", test_relu_sum},
                {"losses", test_losses},         {"adamw", test_adamw},
                {"dwconv3x3", test_dwconv},      {"dwconv3x3_gate", test_dwconv_gate},
                {"add_scaled_layernorm", test_add_layernorm}, {"nafblock", test_nafblock},
                {"deterministic", test_deterministic}, {"fp16", test_fp16}};
  for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
    double t0 = now();
    groups[i].run();
    printf("  %-16s %.2f s\n", groups[i].name, now() - t0);
    fflush(stdout);
  }
  printf("%-42s %-10s %-8s %s\n", "entry", "worst", "tol", "checks");
  for (int i = 0; i < n_stats; i++)
    printf("%-42s %-10.3g %-8.0e %d%s\n", stats[i].name, stats[i].worst, stats[i].tol,
           stats[i].checks, stats[i].worst <= stats[i].tol ? "" : "  FAIL");
  mdc_backend_free(cpu);
  mdc_backend_free(gpu);
  return ct_finish();
}
