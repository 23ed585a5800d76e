/* test_cuda.c - the CUDA backend's own files (kernels/cuda/cuda_backend.c,
 * cuda_conv.c, cuda_nafblock.c) against the CPU scalar reference:
 * the memory entries, conv1x1 / conv3x3 / conv2x2s2 forward and backward,
 * nafblock_forward, failure reporting and the dlopen loader.
 *
 * Inputs are random, sizes awkward (1, 2, 7, 33, 130; channels 3, 5, 16,
 * 48; n up to past the backend's 2^20-row chunks; conv3x3 batches of 2 to
 * 5 images, each image offset by its index so that padding or sums taken
 * across an image border show), outputs poisoned with NaN first, and
 * gradients start from random values on both sides (they accumulate).
 * Every group prints its largest error.
 *
 * Tolerances, as ct_rel_err measures (max |got - ref| / (1 + max |ref|)):
 *   strict fp32  1e-5: only the summation order differs from the CPU.
 *   tf32         5e-3: TF32 keeps a 10-bit mantissa, so each product in a
 *                convolution is rounded to about 2^-11 relative; over a
 *                few layers that stays well under 5e-3 but far above fp32.
 * Long reductions (weight and bias gradients over n pixels) round like a
 * random walk, about sqrt(n) ulps: their tolerance grows by
 * sqrt(n / 4096) past 4096 terms. */
#include <stdint.h>
#include <time.h>

#include "cuda_test_util.h"
#include "nafblock_params.h"

typedef struct mode {
  mdc_backend *gpu;
  const char *label;
  double tol;
} mode;

static mdc_backend *ref; /* the CPU scalar backend */

/* ------------------------------------------------------------ groups */

static struct {
  const char *name;
  double max_err;
  int checks;
} G;

static void group_start(const char *name) {
  G.name = name;
  G.max_err = 0;
  G.checks = 0;
}

static void group_report(const mode *m) {
  printf("%-22s [%-11s] %3d checks, max rel err %.3g (tol %.0e)\n", G.name, m->label, G.checks,
         G.max_err, m->tol);
  fflush(stdout);
}

static void check_close(mdc_backend *gpu, const char *what, const float *dev, const float *want,
                        size_t n, double tol) {
  double e = ct_compare(gpu, what, dev, want, n, tol);
  if (!(e <= G.max_err)) G.max_err = e; /* NaN / inf stay visible */
  G.checks++;
}

static double reduce_tol(double tol, size_t terms) {
  return terms > 4096 ? tol * sqrt((double)terms / 4096.0) : tol;
}

/* ------------------------------------------------- device buffers */

/* Device blocks made for one case, freed together. */
typedef struct blocks {
  mdc_backend *gpu;
  void *p[24];
  int n;
} blocks;

/* A device copy of host[0..n) placed `off` floats into its own block
 * (off 1: aligned to 4 bytes only); host NULL: filled with NaN. */
static float *dev_at(blocks *b, const float *host, size_t n, int off) {
  float *tmp = malloc((n + off + 1) * sizeof(float));
  for (size_t i = 0; i < n + off; i++) tmp[i] = host && i >= (size_t)off ? host[i - off] : NAN;
  float *blk = ct_upload(b->gpu, tmp, n + off);
  free(tmp);
  if (!blk) {
    printf("FAIL: cannot allocate %zu floats on the device\n", n + off);
    exit(1);
  }
  b->p[b->n++] = blk;
  return blk + off;
}

static void blocks_free(blocks *b) {
  for (int i = 0; i < b->n; i++) mdc_be_free(b->gpu, b->p[i]);
  b->n = 0;
}

/* Random floats in [-scale, scale); calloc so that n == 0 is harmless. */
static float *rnd(size_t n, float scale) {
  float *p = calloc(n ? n : 1, sizeof(float));
  for (size_t i = 0; i < n; i++) p[i] = ct_frand() * scale;
  return p;
}

static float *copy_of(const float *src, size_t n) {
  float *p = malloc((n ? n : 1) * sizeof(float));
  memcpy(p, src, n * sizeof(float));
  return p;
}

/* ------------------------------------------------------- memory */

static void test_identity(mdc_backend *gpu) {
  ct_check(strstr(gpu->name, "cuda") != NULL, "backend name \"%s\" does not contain \"cuda\"",
           gpu->name);
  ct_check(mdc_be_is_device(gpu), "the CUDA backend has no mem_alloc entry");
  printf("backend: %s\n", gpu->name);
}

static void test_memory(mdc_backend *gpu) {
  size_t n = 1000003;
  float *host = rnd(n, 100.0f), *back = malloc(n * sizeof(float));

  /* fresh memory: 256-byte aligned and zeroed */
  float *d = mdc_be_alloc(gpu, n * sizeof(float));
  float *d2 = mdc_be_alloc(gpu, n * sizeof(float));
  ct_check(d && d2, "mem_alloc of %zu floats failed", n);
  if (!d || !d2) return;
  ct_check((uintptr_t)d % 256 == 0, "mem_alloc returned %p, not 256-byte aligned", (void *)d);
  mdc_be_download(gpu, back, d, n * sizeof(float));
  size_t nonzero = 0;
  for (size_t i = 0; i < n; i++) nonzero += back[i] != 0.0f;
  ct_check(nonzero == 0, "mem_alloc: %zu of %zu floats not zero", nonzero, n);

  /* round trip, exact */
  mdc_be_upload(gpu, d, host, n * sizeof(float));
  mdc_be_download(gpu, back, d, n * sizeof(float));
  ct_check(memcmp(host, back, n * sizeof(float)) == 0, "upload/download round trip differs");

  /* mem_zero of [100, 200) */
  mdc_be_zero(gpu, d + 100, 100 * sizeof(float));
  mdc_be_download(gpu, back, d, n * sizeof(float));
  int ok = 1;
  for (size_t i = 0; i < n; i++) ok &= back[i] == (i >= 100 && i < 200 ? 0.0f : host[i]);
  ct_check(ok, "mem_zero of floats [100, 200) wrong");

  /* mem_copy between blocks at odd offsets, then overlapping (memmove) */
  mdc_be_upload(gpu, d, host, n * sizeof(float));
  mdc_be_copy(gpu, d2 + 5, d + 3, 777 * sizeof(float));
  mdc_be_download(gpu, back, d2, 800 * sizeof(float));
  ok = 1;
  for (size_t i = 0; i < 777; i++) ok &= back[5 + i] == host[3 + i];
  ok &= back[4] == 0.0f && back[782] == 0.0f;
  ct_check(ok, "mem_copy of 777 floats from offset 3 to offset 5 wrong");
  float *want = copy_of(host, n);
  memmove(want + 10, want, 100000 * sizeof(float));
  mdc_be_copy(gpu, d + 10, d, 100000 * sizeof(float));
  mdc_be_download(gpu, back, d, n * sizeof(float));
  ct_check(memcmp(want, back, n * sizeof(float)) == 0, "overlapping mem_copy is not a memmove");
  free(want);

  /* an impossible allocation: NULL, and no lasting failure */
  void *huge = mdc_be_alloc(gpu, (size_t)1 << 50);
  ct_check(huge == NULL, "mem_alloc of 2^50 bytes did not return NULL");
  if (huge) mdc_be_free(gpu, huge);
  ct_sync_ok(gpu, "sync after a failed 2^50-byte mem_alloc");
  mdc_be_upload(gpu, d, host, 1000 * sizeof(float));
  mdc_be_download(gpu, back, d, 1000 * sizeof(float));
  ct_check(memcmp(host, back, 1000 * sizeof(float)) == 0, "transfers after a failed mem_alloc");
  ct_sync_ok(gpu, "memory entries");

  mdc_be_free(gpu, d);
  mdc_be_free(gpu, d2);
  free(host);
  free(back);
  printf("memory entries: round trip, zero, copy, memmove, 2^50 alloc checked\n");
}

/* ------------------------------------------------------- conv1x1 */

static void conv1x1_forward_case(const mode *m, size_t n, int cin, int cout, int bias) {
  mdc_backend *g = m->gpu;
  blocks B = {.gpu = g};
  float *x = rnd(n * cin, 1.0f), *w = rnd((size_t)cin * cout, 1.0f / sqrtf((float)cin));
  float *b = bias ? rnd((size_t)cout, 0.5f) : NULL, *y = malloc(n * cout * sizeof(float));
  ref->conv1x1(ref, x, n, cin, w, b, cout, y);
  float *dy = dev_at(&B, NULL, n * cout, 0);
  g->conv1x1(g, dev_at(&B, x, n * cin, 0), n, cin, dev_at(&B, w, (size_t)cin * cout, 0),
             b ? dev_at(&B, b, (size_t)cout, 0) : NULL, cout, dy);
  char what[128];
  snprintf(what, sizeof what, "conv1x1 %zux%d->%d %s [%s]", n, cin, cout,
           bias ? "bias" : "no bias", m->label);
  check_close(g, what, dy, y, n * cout, m->tol);
  ct_sync_ok(g, what);
  blocks_free(&B);
  free(x), free(w), free(b), free(y);
}

/* flags: 1 dx, 2 dw, 4 db */
static void conv1x1_backward_case(const mode *m, size_t n, int cin, int cout, int flags) {
  mdc_backend *g = m->gpu;
  blocks B = {.gpu = g};
  float *x = rnd(n * cin, 1.0f), *w = rnd((size_t)cin * cout, 1.0f / sqrtf((float)cin));
  float *dy = rnd(n * cout, 1.0f), *dw0 = rnd((size_t)cin * cout, 1.0f);
  float *db0 = rnd((size_t)cout, 1.0f);
  float *dx = malloc(n * cin * sizeof(float)), *dw = copy_of(dw0, (size_t)cin * cout);
  float *db = copy_of(db0, (size_t)cout);
  ref->conv1x1_backward(ref, x, n, cin, w, cout, dy, flags & 1 ? dx : NULL, flags & 2 ? dw : NULL,
                        flags & 4 ? db : NULL);
  float *gdx = flags & 1 ? dev_at(&B, NULL, n * cin, 0) : NULL;
  float *gdw = flags & 2 ? dev_at(&B, dw0, (size_t)cin * cout, 0) : NULL;
  float *gdb = flags & 4 ? dev_at(&B, db0, (size_t)cout, 0) : NULL;
  g->conv1x1_backward(g, dev_at(&B, x, n * cin, 0), n, cin, dev_at(&B, w, (size_t)cin * cout, 0),
                      cout, dev_at(&B, dy, n * cout, 0), gdx, gdw, gdb);
  char what[128];
  snprintf(what, sizeof what, "conv1x1_backward %zux%d->%d flags %d [%s]", n, cin, cout, flags,
           m->label);
  if (gdx) check_close(g, what, gdx, dx, n * cin, m->tol);
  if (gdw) check_close(g, what, gdw, dw, (size_t)cin * cout, reduce_tol(m->tol, n));
  if (gdb) check_close(g, what, gdb, db, (size_t)cout, reduce_tol(m->tol, n));
  ct_sync_ok(g, what);
  blocks_free(&B);
  free(x), free(w), free(dy), free(dw0), free(db0), free(dx), free(dw), free(db);
}

static const struct {
  size_t n;
  int cin, cout;
} c1_shapes[] = {{1, 3, 16},     {17, 5, 48},    {1000, 48, 5},  {1000, 16, 16},
                 {70001, 16, 3}, {70001, 3, 48}, {1000, 3, 3},   {((size_t)1 << 20) + 17, 4, 3}};
#define N_C1 (sizeof c1_shapes / sizeof c1_shapes[0])

static void test_conv1x1(const mode *m) {
  group_start("conv1x1 forward");
  for (size_t i = 0; i < N_C1; i++)
    for (int bias = 0; bias < 2; bias++)
      conv1x1_forward_case(m, c1_shapes[i].n, c1_shapes[i].cin, c1_shapes[i].cout, bias);
  group_report(m);
  group_start("conv1x1 backward");
  for (size_t i = 0; i < N_C1; i++)
    conv1x1_backward_case(m, c1_shapes[i].n, c1_shapes[i].cin, c1_shapes[i].cout, 7);
  conv1x1_backward_case(m, 1000, 48, 5, 6); /* no dx */
  conv1x1_backward_case(m, 1000, 48, 5, 1); /* dx only */
  conv1x1_backward_case(m, 17, 5, 48, 3);   /* no db */
  group_report(m);
}

/* ---------------------------------------------- conv3x3 / conv2x2s2 */

typedef struct kshape {
  int ks;                 /* 3: conv3x3; 2: conv2x2s2 */
  int n, h, w, cin, cout; /* n: batch (conv3x3; conv2x2s2 has none: 1) */
} kshape;

static const char *kname(int ks) { return ks == 3 ? "conv3x3" : "conv2x2s2"; }
static int kout(int ks, int v) { return ks == 3 ? v : v / 2; }

/* Random input of a batch: image i is offset by i, so that a padding
 * value or a sum taken from the neighbouring image is far off. */
static float *rnd_batch(const kshape *s) {
  size_t image = (size_t)s->h * s->w * s->cin;
  float *x = rnd(s->n * image, 1.0f);
  for (size_t i = 0; i < s->n * image; i++) x[i] += (float)(i / image);
  return x;
}

/* off 1 places every tensor 4 bytes past a 16-byte boundary. */
static void convk_forward_case(const mode *m, kshape s, int bias, int off) {
  mdc_backend *g = m->gpu;
  blocks B = {.gpu = g};
  size_t nx = (size_t)s.n * s.h * s.w * s.cin;
  size_t ny = (size_t)s.n * kout(s.ks, s.h) * kout(s.ks, s.w) * s.cout;
  size_t nw = (size_t)s.ks * s.ks * s.cin * s.cout;
  float *x = rnd_batch(&s), *w = rnd(nw, 1.0f / sqrtf((float)(s.ks * s.ks * s.cin)));
  float *b = bias ? rnd((size_t)s.cout, 0.5f) : NULL, *y = malloc((ny ? ny : 1) * sizeof(float));
  if (s.ks == 3)
    ref->conv3x3(ref, x, s.n, s.h, s.w, s.cin, w, b, s.cout, y);
  else
    ref->conv2x2s2(ref, x, s.h, s.w, s.cin, w, b, s.cout, y);
  float *gy = dev_at(&B, NULL, ny, off), *gx = dev_at(&B, x, nx, off), *gw = dev_at(&B, w, nw, off);
  float *gb = b ? dev_at(&B, b, (size_t)s.cout, off) : NULL;
  if (s.ks == 3)
    g->conv3x3(g, gx, s.n, s.h, s.w, s.cin, gw, gb, s.cout, gy);
  else
    g->conv2x2s2(g, gx, s.h, s.w, s.cin, gw, gb, s.cout, gy);
  char what[128];
  snprintf(what, sizeof what, "%s %dx%dx%dx%d->%d %s%s [%s]", kname(s.ks), s.n, s.h, s.w, s.cin,
           s.cout, bias ? "bias" : "no bias", off ? " misaligned" : "", m->label);
  check_close(g, what, gy, y, ny, m->tol);
  ct_sync_ok(g, what);
  blocks_free(&B);
  free(x), free(w), free(b), free(y);
}

/* flags: 1 dx, 2 dw, 4 db */
static void convk_backward_case(const mode *m, kshape s, int flags, int off) {
  mdc_backend *g = m->gpu;
  blocks B = {.gpu = g};
  size_t npix = (size_t)s.n * kout(s.ks, s.h) * kout(s.ks, s.w); /* the whole batch */
  size_t nx = (size_t)s.n * s.h * s.w * s.cin, ny = npix * s.cout;
  size_t nw = (size_t)s.ks * s.ks * s.cin * s.cout;
  float *x = rnd_batch(&s), *w = rnd(nw, 1.0f / sqrtf((float)(s.ks * s.ks * s.cin)));
  float *dy = rnd(ny, 1.0f), *dw0 = rnd(nw, 1.0f), *db0 = rnd((size_t)s.cout, 1.0f);
  float *dx = malloc(nx * sizeof(float)), *dw = copy_of(dw0, nw), *db = copy_of(db0, (size_t)s.cout);
  float *rdx = flags & 1 ? dx : NULL, *rdw = flags & 2 ? dw : NULL, *rdb = flags & 4 ? db : NULL;
  if (s.ks == 3)
    ref->conv3x3_backward(ref, x, s.n, s.h, s.w, s.cin, w, s.cout, dy, rdx, rdw, rdb);
  else
    ref->conv2x2s2_backward(ref, x, s.h, s.w, s.cin, w, s.cout, dy, rdx, rdw, rdb);
  float *gdx = flags & 1 ? dev_at(&B, NULL, nx, off) : NULL;
  float *gdw = flags & 2 ? dev_at(&B, dw0, nw, off) : NULL;
  float *gdb = flags & 4 ? dev_at(&B, db0, (size_t)s.cout, off) : NULL;
  float *gx = dev_at(&B, x, nx, off), *gw = dev_at(&B, w, nw, off), *gdy = dev_at(&B, dy, ny, off);
  if (s.ks == 3)
    g->conv3x3_backward(g, gx, s.n, s.h, s.w, s.cin, gw, s.cout, gdy, gdx, gdw, gdb);
  else
    g->conv2x2s2_backward(g, gx, s.h, s.w, s.cin, gw, s.cout, gdy, gdx, gdw, gdb);
  char what[128];
  snprintf(what, sizeof what, "%s_backward %dx%dx%dx%d->%d flags %d%s [%s]", kname(s.ks), s.n,
           s.h, s.w, s.cin, s.cout, flags, off ? " misaligned" : "", m->label);
  if (gdx) check_close(g, what, gdx, dx, nx, m->tol);
  if (gdw) check_close(g, what, gdw, dw, nw, reduce_tol(m->tol, npix));
  if (gdb) check_close(g, what, gdb, db, (size_t)s.cout, reduce_tol(m->tol, npix));
  ct_sync_ok(g, what);
  blocks_free(&B);
  free(x), free(w), free(dy), free(dw0), free(db0), free(dx), free(dw), free(db);
}

/* conv3x3: single images, then batches (the last one also misaligned).
 * 5x7x3->5 runs with batch 1, 3, 2 in a row: the descriptor cache must
 * tell them apart (a stale N leaves images unwritten, i.e. NaN). */
static const kshape k3_shapes[] = {
    {3, 1, 1, 1, 3, 16},     {3, 1, 2, 7, 5, 48},     {3, 1, 7, 33, 16, 3},
    {3, 1, 33, 7, 48, 5},    {3, 1, 130, 130, 3, 16}, {3, 1, 130, 33, 16, 16},
    {3, 1, 33, 130, 16, 48}, {3, 1, 130, 130, 16, 3}, {3, 1, 5, 7, 3, 5},
    {3, 3, 5, 7, 3, 5},      {3, 2, 5, 7, 3, 5},      {3, 3, 5, 7, 33, 16},
    {3, 4, 1, 1, 5, 3},      {3, 5, 2, 130, 3, 16},   {3, 2, 33, 7, 16, 48},
    {3, 16, 32, 32, 16, 16}, {3, 3, 7, 5, 17, 33},
};
/* conv2x2s2 has no batch: callers pass h = batch * image height */
static const kshape k2_shapes[] = {
    {2, 1, 2, 2, 3, 16},      {2, 1, 2, 34, 5, 48}, {2, 1, 34, 2, 16, 3},
    {2, 1, 130, 130, 16, 32}, {2, 1, 8, 130, 48, 5}, {2, 1, 34, 34, 3, 3},
};
#define N_K3 (sizeof k3_shapes / sizeof k3_shapes[0])
#define N_K2 (sizeof k2_shapes / sizeof k2_shapes[0])

static void test_convk(const mode *m, const kshape *shapes, size_t count, const char *fwd_name,
                       const char *bwd_name) {
  group_start(fwd_name);
  for (size_t i = 0; i < count; i++)
    for (int bias = 0; bias < 2; bias++) convk_forward_case(m, shapes[i], bias, 0);
  convk_forward_case(m, shapes[1], 1, 1);
  convk_forward_case(m, shapes[count - 1], 1, 1);
  group_report(m);
  group_start(bwd_name);
  for (size_t i = 0; i < count; i++) convk_backward_case(m, shapes[i], 7, 0);
  convk_backward_case(m, shapes[2], 6, 0); /* no dx */
  convk_backward_case(m, shapes[3], 1, 0); /* dx only */
  convk_backward_case(m, shapes[count - 2], 6, 0); /* no dx (conv3x3: a batch) */
  convk_backward_case(m, shapes[count - 3], 5, 0); /* no dw (conv3x3: a batch) */
  convk_backward_case(m, shapes[1], 7, 1);
  convk_backward_case(m, shapes[count - 1], 7, 1);
  group_report(m);
}

/* ------------------------------------------------------- NAFBlock */

typedef struct naf_set {
  mdc_nafblock_params host, dev;
  float *bufs[TEST_NAFBLOCK_NUM_PARAMS];
} naf_set;

/* Random parameters on the host and their device copies. */
static void naf_make(naf_set *s, blocks *B, int c) {
  float sc = 1.0f / sqrtf((float)c);
  memset(s, 0, sizeof *s);
  s->host.c = s->dev.c = c;
  int k = 0;
#define P(field, n, scale)                                   \
  do {                                                       \
    float *h_ = s->bufs[k++] = rnd((size_t)(n), scale);  \
    s->host.field = h_;                                      \
    s->dev.field = dev_at(B, h_, (size_t)(n), 0);            \
  } while (0);
  TEST_NAFBLOCK_PARAMS(P, c, sc)
#undef P
}

static void naf_case(const mode *m, int c, int h, int w, int window) {
  mdc_backend *g = m->gpu;
  blocks B = {.gpu = g};
  naf_set s;
  naf_make(&s, &B, c);
  size_t n = (size_t)h * w * c;
  float *x = rnd(n, 1.0f), *y = malloc(n * sizeof(float));
  void *scratch = malloc(ref->nafblock_scratch_size(ref, c, h, w, window));
  ref->nafblock_forward(ref, &s.host, x, h, w, 1e-6f, window, y, scratch);
  free(scratch);

  /* device scratch: NaN-filled and 4 bytes off alignment, as callers may pass it */
  size_t bytes = g->nafblock_scratch_size(g, c, h, w, window);
  float *gscratch = dev_at(&B, NULL, bytes / sizeof(float) + 2, 0);
  float *gy = dev_at(&B, NULL, n, 0);
  g->nafblock_forward(g, &s.dev, dev_at(&B, x, n, 0), h, w, 1e-6f, window, gy,
                      (char *)gscratch + 4);
  char what[128];
  snprintf(what, sizeof what, "nafblock %dx%d c=%d window=%d [%s]", h, w, c, window, m->label);
  check_close(g, what, gy, y, n, m->tol);
  ct_sync_ok(g, what);
  blocks_free(&B);
  for (int i = 0; i < TEST_NAFBLOCK_NUM_PARAMS; i++) free(s.bufs[i]);
  free(x), free(y);
}

static void test_nafblock(const mode *m) {
  group_start("nafblock forward");
  naf_case(m, 16, 13, 9, 0);
  naf_case(m, 16, 13, 9, 4);
  naf_case(m, 5, 13, 9, 4);
  naf_case(m, 16, 33, 7, 8);
  naf_case(m, 48, 7, 33, 5);
  naf_case(m, 16, 1, 1, 0);
  naf_case(m, 3, 2, 130, 4);
  group_report(m);
}

/* ---------------------------------------- failures and the loader */

/* A shape past cuDNN's int limits is refused before any memory is
 * touched: sync must report it, naming the entry, and keep reporting it. */
static void test_failure_report(void) {
  char msg[512] = "";
  mdc_backend *g = ct_backend_or_skip(1);
  float *buf = mdc_be_alloc(g, 1024);
  g->conv3x3(g, buf, 1, 70000, 70000, 1, buf, NULL, 1, buf);
  int rc = mdc_be_sync(g, msg, sizeof msg);
  ct_check(rc == -1, "an impossible conv3x3 was not reported (sync returned %d)", rc);
  ct_check(strstr(msg, "conv3x3 70000x70000x1->1") != NULL,
           "the failure message does not name the entry and shape: \"%s\"", msg);
  ct_check(mdc_be_sync(g, NULL, 0) == -1, "the failure did not stay");
  printf("failure report: \"%s\"\n", msg);
  mdc_be_free(g, buf);
  mdc_backend_free(g);

  /* the limit counts the whole batch: 40000 images of 256 x 256 pass
   * cuDNN's int dimensions one by one but not as one tensor */
  g = ct_backend_or_skip(1);
  buf = mdc_be_alloc(g, 1024);
  g->conv3x3(g, buf, 40000, 256, 256, 1, buf, NULL, 1, buf);
  rc = mdc_be_sync(g, msg, sizeof msg);
  ct_check(rc == -1, "an impossible batched conv3x3 was not reported (sync returned %d)", rc);
  ct_check(strstr(msg, "conv3x3 40000x256x256x1->1") != NULL,
           "the failure message does not name the batch and shape: \"%s\"", msg);
  printf("failure report: \"%s\"\n", msg);
  mdc_be_free(g, buf);
  mdc_backend_free(g);
}

/* mdc_backend_cuda_new loads the module named by MASKDCPT_CUDA_MODULE
 * (meson test sets it); by hand, without it, this check is skipped. */
static void test_loader(void) {
  if (!getenv("MASKDCPT_CUDA_MODULE")) {
    printf("loader: skipped (MASKDCPT_CUDA_MODULE not set; meson test sets it)\n");
    return;
  }
  char msg[512] = "";
  mdc_backend *g = mdc_backend_cuda_new(0, 1, msg, sizeof msg);
  ct_check(g != NULL, "mdc_backend_cuda_new: %s", msg);
  if (!g) return;
  ct_check(strstr(g->name, "cuda") != NULL, "loaded backend's name \"%s\"", g->name);
  mode m = {g, "via loader", 1e-5};
  group_start("loader conv1x1");
  conv1x1_forward_case(&m, 1000, 16, 48, 1);
  group_report(&m);
  mdc_backend_free(g);
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
  double t0 = now_s();
  mdc_backend *strict = ct_backend_or_skip(1);
  mdc_backend *tf32 = ct_backend_or_skip(0);
  ref = mdc_backend_cpu_scalar_new(1);
  if (!ref) {
    printf("FAIL: cannot make the CPU scalar backend\n");
    return 1;
  }
  test_identity(strict);
  test_identity(tf32);
  test_memory(strict);

  const mode modes[2] = {{strict, "strict fp32", 1e-5}, {tf32, "tf32", 5e-3}};
  for (int i = 0; i < 2; i++) {
    test_conv1x1(&modes[i]);
    test_convk(&modes[i], k3_shapes, N_K3, "conv3x3 forward", "conv3x3 backward");
    test_convk(&modes[i], k2_shapes, N_K2, "conv2x2s2 forward", "conv2x2s2 backward");
    test_nafblock(&modes[i]);
  }
  test_failure_report();
  test_loader();

  mdc_backend_free(strict);
  mdc_backend_free(tf32);
  mdc_backend_free(ref);
  printf("time: %.1f s\n", now_s() - t0);
  return ct_finish();
}
