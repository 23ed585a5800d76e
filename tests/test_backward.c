/* test_backward.c - the training entries of the CPU backends.
 *
 *  - Every scalar backward against central finite differences of a float64
 *    forward written here (independent of the backends): with the loss
 *    L = sum(dy * y) for a fixed random dy, each input and parameter
 *    element (a random sample for larger tensors) is moved by +-h = 1e-6 in
 *    double; |analytic - fd| <= GC_RTOL |fd| + GC_ATOL (1e-3, 1e-5), the
 *    analytic gradient being the float backward's.
 *  - The += contract (parameter gradients accumulate) and dx overwrite.
 *  - Batches (several images; per-image rows of LayerNorm's g / b and of
 *    scale_channels' s): finite differences as above, and one batched call
 *    against one call per image (dx and per-image parameter rows bit for
 *    bit; weight and bias gradients, one sum over all images, within the
 *    AVX2 tolerance).
 *  - A whole NAFBlock composed from the entries (with feature masks),
 *    against finite differences of a float64 block.
 *  - Every AVX2 entry against the scalar one on awkward shapes (max |got -
 *    ref| <= 1e-4 (1 + max |ref|)), and 1 / 2 / 3 threads bit-identical.
 *  - adamw_step against a float64 reference over several steps; l1_loss.
 *
 * `test_backward --bench` times conv1x1_backward (and a few others) at
 * 256 x 256 instead. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"

#define GC_H 1e-6
#define GC_RTOL 1e-3
#define GC_ATOL 1e-5
#define TOL 1e-4 /* AVX2 vs scalar */

static int n_passed, n_failed;
static double gc_worst; /* largest |analytic - fd| / tolerance seen */

static void check(int ok, const char *what) {
  if (ok) {
    n_passed++;
  } else {
    n_failed++;
    printf("FAIL: %s\n", what);
  }
}

/* ----------------------------------------------------------- helpers */

static unsigned long long rng_state = 0x2545F4914F6CDD1Dull;

static unsigned long long rng_next(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static float frand(void) { /* uniform in [-1, 1) */
  return (float)((rng_next() >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static float *rand_buf(size_t n, float scale) {
  float *p = malloc((n ? n : 1) * sizeof(float));
  for (size_t i = 0; i < n; i++) p[i] = frand() * scale;
  return p;
}

static float *nan_buf(size_t n) {
  float *p = malloc((n ? n : 1) * sizeof(float));
  for (size_t i = 0; i < n; i++) p[i] = NAN;
  return p;
}

static float *zero_buf(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

static float *copy_buf(const float *src, size_t n) {
  float *p = malloc((n ? n : 1) * sizeof(float));
  memcpy(p, src, n * sizeof(float));
  return p;
}

/* A 0/1 mask with about a third zeros. */
static float *mask_buf(size_t n) {
  float *p = malloc((n ? n : 1) * sizeof(float));
  for (size_t i = 0; i < n; i++) p[i] = rng_next() % 3 == 0 ? 0.0f : 1.0f;
  return p;
}

static double *to_double(const float *p, size_t n) {
  double *d = malloc((n ? n : 1) * sizeof(double));
  for (size_t i = 0; i < n; i++) d[i] = p ? p[i] : 0.0;
  return d;
}

static int close_enough(const float *got, const float *ref, size_t n, double *err_out) {
  double maxref = 0.0, err = 0.0;
  for (size_t i = 0; i < n; i++) {
    if (fabs(ref[i]) > maxref) maxref = fabs(ref[i]);
    double e = fabs((double)got[i] - ref[i]);
    if (!(e <= err)) err = isnan(e) ? INFINITY : e;
  }
  if (err_out) *err_out = err / (1.0 + maxref);
  return err <= TOL * (1.0 + maxref);
}

static void check_close(const float *got, const float *ref, size_t n, const char *what) {
  double e;
  int ok = close_enough(got, ref, n, &e);
  if (!ok) printf("  %s: relative error %.3g\n", what, e);
  check(ok, what);
}

static void box_of(int p, int size, int win, int *s, int *n) {
  if (win >= size) {
    *s = 0, *n = size;
    return;
  }
  int v = p - win / 2;
  if (v > size - win) v = size - win;
  if (v < 0) v = 0;
  *s = v, *n = win;
}

static int pool_global(int h, int w, int window) { return window <= 0 || (window >= h && window >= w); }

/* ------------------------------------------------ float64 forwards */

static void conv1x1_64(const double *x, size_t n, int cin, const double *w, const double *b,
                       int cout, double *y) {
  for (size_t i = 0; i < n; i++)
    for (int o = 0; o < cout; o++) {
      double acc = b ? b[o] : 0.0;
      for (int k = 0; k < cin; k++) acc += x[i * cin + k] * w[(size_t)k * cout + o];
      y[i * cout + o] = acc;
    }
}

/* ks 3 / stride 1 / pad 1 (conv3x3) or ks 2 / stride 2 / pad 0 (conv2x2s2),
 * batch images one after another. */
static void convk_64(const double *x, int batch, int h, int w, int cin, const double *wt,
                     const double *b, int cout, int ks, int stride, int pad, double *y) {
  int oh = stride == 2 ? h / 2 : h, ow = stride == 2 ? w / 2 : w;
  for (int img = 0; img < batch; img++, x += (size_t)h * w * cin, y += (size_t)oh * ow * cout)
  for (int py = 0; py < oh; py++)
    for (int px = 0; px < ow; px++)
      for (int o = 0; o < cout; o++) {
        double acc = b ? b[o] : 0.0;
        for (int ky = 0; ky < ks; ky++)
          for (int kx = 0; kx < ks; kx++) {
            int sy = py * stride + ky - pad, sx = px * stride + kx - pad;
            if (sy < 0 || sy >= h || sx < 0 || sx >= w) continue;
            for (int k = 0; k < cin; k++)
              acc += x[((size_t)sy * w + sx) * cin + k] * wt[((size_t)(ky * ks + kx) * cin + k) * cout + o];
          }
        y[((size_t)py * ow + px) * cout + o] = acc;
      }
}

static void dwconv_64(const double *x, int batch, int h, int w, int c, const double *wt,
                      const double *b, double *y) {
  for (int img = 0; img < batch; img++, x += (size_t)h * w * c, y += (size_t)h * w * c)
  for (int py = 0; py < h; py++)
    for (int px = 0; px < w; px++)
      for (int ch = 0; ch < c; ch++) {
        double acc = b ? b[ch] : 0.0;
        for (int ky = 0; ky < 3; ky++)
          for (int kx = 0; kx < 3; kx++) {
            int sy = py + ky - 1, sx = px + kx - 1;
            if (sy < 0 || sy >= h || sx < 0 || sx >= w) continue;
            acc += x[((size_t)sy * w + sx) * c + ch] * wt[(ky * 3 + kx) * c + ch];
          }
        y[((size_t)py * w + px) * c + ch] = acc;
      }
}

/* g and b: row i / gb_every for pixel i (one row when gb_every is 0) */
static void layernorm_64(const double *x, size_t n, int c, const double *g, const double *b,
                         size_t gb_every, double eps, double *y) {
  for (size_t i = 0; i < n; i++) {
    const double *xi = x + i * c;
    size_t row = gb_every ? i / gb_every * c : 0;
    double mu = 0, var = 0;
    for (int k = 0; k < c; k++) mu += xi[k];
    mu /= c;
    for (int k = 0; k < c; k++) var += (xi[k] - mu) * (xi[k] - mu);
    var /= c;
    for (int k = 0; k < c; k++)
      y[i * c + k] = (xi[k] - mu) / sqrt(var + eps) * g[row + k] + b[row + k];
  }
}

static void gate_64(const double *x, size_t n, int c, double *y) {
  for (size_t i = 0; i < n; i++)
    for (int k = 0; k < c; k++) y[i * c + k] = x[i * 2 * c + k] * x[i * 2 * c + c + k];
}

/* Per image, output [c] when global, else [h][w][c]: boxes written out
 * directly. */
static void pool_64(const double *x, int batch, int h, int w, int c, int window, double *y) {
  const size_t hw = (size_t)h * w;
  if (pool_global(h, w, window)) {
    for (int img = 0; img < batch; img++)
      for (int k = 0; k < c; k++) {
        double acc = 0;
        for (size_t i = 0; i < hw; i++) acc += x[(img * hw + i) * c + k];
        y[(size_t)img * c + k] = acc / (double)hw;
      }
    return;
  }
  for (int img = 0; img < batch; img++, x += hw * c, y += hw * c)
  for (int py = 0; py < h; py++)
    for (int px = 0; px < w; px++) {
      int y0, bh, x0, bw;
      box_of(py, h, window, &y0, &bh);
      box_of(px, w, window, &x0, &bw);
      for (int k = 0; k < c; k++) {
        double acc = 0;
        for (int sy = y0; sy < y0 + bh; sy++)
          for (int sx = x0; sx < x0 + bw; sx++) acc += x[((size_t)sy * w + sx) * c + k];
        y[((size_t)py * w + px) * c + k] = acc / ((double)bh * bw);
      }
    }
}

/* s: row i / s_every for pixel i (one row when s_every is 0) */
static void scale_64(const double *x, const double *s, size_t s_every, size_t n, int c, double *y) {
  for (size_t i = 0; i < n; i++)
    for (int k = 0; k < c; k++)
      y[i * c + k] = x[i * c + k] * s[(s_every ? i / s_every * c : 0) + k];
}

static void add_scaled_64(const double *a, const double *b, const double *s, size_t n, int c,
                          double *y) {
  for (size_t i = 0; i < n; i++)
    for (int k = 0; k < c; k++) y[i * c + k] = a[i * c + k] + (s ? s[k] : 1.0) * b[i * c + k];
}

static void mask_64(const double *x, const float *m, size_t n, int c, double *y) {
  for (size_t i = 0; i < n; i++)
    for (int k = 0; k < c; k++) y[i * c + k] = x[i * c + k] * m[i];
}

/* y[2h][2w][c] from x[h][w][4c], PyTorch's channel order. */
static void pixelshuffle_64(const double *x, int h, int w, int c, double *y) {
  for (int i = 0; i < h; i++)
    for (int j = 0; j < w; j++)
      for (int k = 0; k < c; k++)
        for (int q = 0; q < 4; q++)
          y[((size_t)(2 * i + q / 2) * 2 * w + 2 * j + q % 2) * c + k] =
              x[((size_t)i * w + j) * 4 * c + k * 4 + q];
}

/* ------------------------------------------- finite-difference check */

typedef struct gc_tensor {
  const char *name;
  const float *val;  /* the point */
  size_t n;
  const float *grad; /* analytic gradient (float backward), NULL: not checked */
} gc_tensor;

#define GC_MAX_T 20

/* out = forward(inputs) in float64; sizes fixed by ctx. */
typedef void (*gc_fwd)(const void *ctx, double *const *in, double *out);

static double gc_loss(gc_fwd f, const void *ctx, double *const *in, double *out, size_t nout,
                      const double *dy) {
  f(ctx, in, out);
  double L = 0.0;
  for (size_t i = 0; i < nout; i++) L += dy[i] * out[i];
  return L;
}

/* Checks every tensor's gradient (up to `samples` random elements each,
 * the first and last always) against central differences of L = sum(dy y). */
static void grad_check(const char *what, gc_fwd f, const void *ctx, const gc_tensor *t, int nt,
                       size_t nout, const float *dyf, size_t samples) {
  double *in[GC_MAX_T], *out = malloc((nout ? nout : 1) * sizeof(double));
  double *dy = to_double(dyf, nout);
  for (int k = 0; k < nt; k++) in[k] = to_double(t[k].val, t[k].n);
  for (int k = 0; k < nt; k++) {
    if (!t[k].grad || t[k].n == 0) continue;
    size_t m = t[k].n <= samples ? t[k].n : samples;
    double worst = 0.0, wa = 0, wf = 0;
    size_t widx = 0;
    int ok = 1;
    for (size_t s = 0; s < m; s++) {
      size_t idx = t[k].n <= samples ? s : s == 0 ? 0 : s == 1 ? t[k].n - 1 : rng_next() % t[k].n;
      double v = in[k][idx];
      in[k][idx] = v + GC_H;
      double lp = gc_loss(f, ctx, in, out, nout, dy);
      in[k][idx] = v - GC_H;
      double lm = gc_loss(f, ctx, in, out, nout, dy);
      in[k][idx] = v;
      double fd = (lp - lm) / (2 * GC_H), a = t[k].grad[idx];
      double r = fabs(a - fd) / (GC_RTOL * fabs(fd) + GC_ATOL);
      if (!(r <= 1.0)) ok = 0;
      if (!(r <= worst)) worst = r, widx = idx, wa = a, wf = fd;
      if (!(r <= gc_worst)) gc_worst = r;
    }
    char msg[256];
    snprintf(msg, sizeof msg, "%s: d%s", what, t[k].name);
    if (!ok)
      printf("  %s[%zu]: analytic %.9g, finite difference %.9g (%.3g x tolerance)\n", msg, widx,
             wa, wf, worst);
    check(ok, msg);
  }
  for (int k = 0; k < nt; k++) free(in[k]);
  free(out), free(dy);
}

/* --------------------------------------- scalar gradient checks, per op */

#define SAMPLES 48 /* elements per tensor checked by finite differences */

typedef struct op_ctx {
  int batch, h, w, c, cin, cout, window, has_s;
  size_t n, every; /* every: gb_every of layernorm, s_every of scale_channels */
  double eps;
  const float *m;
} op_ctx;

static void fw_conv1x1(const void *p, double *const *in, double *out) {
  const op_ctx *o = p;
  conv1x1_64(in[0], o->n, o->cin, in[1], in[2], o->cout, out);
}
static void fw_conv3x3(const void *p, double *const *in, double *out) {
  const op_ctx *o = p;
  convk_64(in[0], o->batch, o->h, o->w, o->cin, in[1], in[2], o->cout, 3, 1, 1, out);
}
static void fw_conv2x2s2(const void *p, double *const *in, double *out) {
  const op_ctx *o = p;
  convk_64(in[0], 1, o->h, o->w, o->cin, in[1], in[2], o->cout, 2, 2, 0, out);
}
static void fw_dwconv(const void *p, double *const *in, double *out) {
  const op_ctx *o = p;
  dwconv_64(in[0], o->batch, o->h, o->w, o->c, in[1], in[2], out);
}
static void fw_layernorm(const void *p, double *const *in, double *out) {
  const op_ctx *o = p;
  layernorm_64(in[0], o->n, o->c, in[1], in[2], o->every, o->eps, out);
}
static void fw_gate(const void *p, double *const *in, double *out) {
  const op_ctx *o = p;
  gate_64(in[0], o->n, o->c, out);
}
static void fw_pool(const void *p, double *const *in, double *out) {
  const op_ctx *o = p;
  pool_64(in[0], o->batch, o->h, o->w, o->c, o->window, out);
}
static void fw_scale(const void *p, double *const *in, double *out) {
  const op_ctx *o = p;
  scale_64(in[0], in[1], o->every, o->n, o->c, out);
}
static void fw_add_scaled(const void *p, double *const *in, double *out) {
  const op_ctx *o = p;
  add_scaled_64(in[0], in[1], o->has_s ? in[2] : NULL, o->n, o->c, out);
}
static void fw_pixelshuffle(const void *p, double *const *in, double *out) {
  const op_ctx *o = p;
  pixelshuffle_64(in[0], o->h, o->w, o->c, out);
}
static void fw_mask(const void *p, double *const *in, double *out) {
  const op_ctx *o = p;
  mask_64(in[0], o->m, o->n, o->c, out);
}

/* got == start + once, element by element in float (the += contract). */
static void check_accum(const float *got, const float *start, const float *once, size_t n,
                        const char *what) {
  int ok = 1;
  for (size_t i = 0; i < n; i++) ok &= got[i] == start[i] + once[i];
  check(ok, what);
}

/* Calls the backward a second time on copies of the parameter gradients
 * (a fresh random start for the first, the first call's result for the
 * second): they must come out as start + once. */
#define ACCUM_CHECK(WHAT, NP, P_ONCE, P_SIZES, CALL)                                      \
  do {                                                                                    \
    float *acc_[NP], *start_[NP];                                                         \
    char m_[200];                                                                         \
    for (int r_ = 0; r_ < 2; r_++) {                                                      \
      for (int q_ = 0; q_ < NP; q_++) {                                                   \
        start_[q_] = r_ ? copy_buf(P_ONCE[q_], P_SIZES[q_]) : rand_buf(P_SIZES[q_], 2);   \
        acc_[q_] = copy_buf(start_[q_], P_SIZES[q_]);                                     \
      }                                                                                   \
      CALL;                                                                               \
      for (int q_ = 0; q_ < NP; q_++) {                                                   \
        snprintf(m_, sizeof m_, "%s: += %s (param %d)", WHAT, r_ ? "doubles" : "from a random start", q_); \
        check_accum(acc_[q_], start_[q_], P_ONCE[q_], P_SIZES[q_], m_);                   \
        free(acc_[q_]), free(start_[q_]);                                                 \
      }                                                                                   \
    }                                                                                     \
  } while (0)

static void gc_conv1x1(mdc_backend *be, size_t n, int cin, int cout) {
  char what[128];
  float *x = rand_buf(n * cin, 1), *w = rand_buf((size_t)cin * cout, 1), *b = rand_buf(cout, 1);
  float *dy = rand_buf(n * cout, 1), *dx = nan_buf(n * cin);
  float *dw = zero_buf((size_t)cin * cout), *db = zero_buf(cout);
  be->conv1x1_backward(be, x, n, cin, w, cout, dy, dx, dw, db);
  gc_tensor t[] = {{"x", x, n * cin, dx}, {"w", w, (size_t)cin * cout, dw}, {"b", b, cout, db}};
  op_ctx o = {.n = n, .cin = cin, .cout = cout};
  snprintf(what, sizeof what, "%s conv1x1_backward n=%zu %d->%d", be->name, n, cin, cout);
  grad_check(what, fw_conv1x1, &o, t, 3, n * cout, dy, SAMPLES);
  float *once[2] = {dw, db};
  size_t sz[2] = {(size_t)cin * cout, (size_t)cout};
  ACCUM_CHECK(what, 2, once, sz, be->conv1x1_backward(be, x, n, cin, w, cout, dy, NULL, acc_[0], acc_[1]));
  free(x), free(w), free(b), free(dy), free(dx), free(dw), free(db);
}

/* A conv3x3 over `batch` images, or a conv2x2s2 (batch 1). */
static void convk_backward(mdc_backend *be, int stride2, const float *x, int batch, int h, int w,
                           int cin, const float *wt, int cout, const float *dy, float *dx,
                           float *dw, float *db) {
  if (stride2) be->conv2x2s2_backward(be, x, h, w, cin, wt, cout, dy, dx, dw, db);
  else be->conv3x3_backward(be, x, batch, h, w, cin, wt, cout, dy, dx, dw, db);
}

static void gc_convk(mdc_backend *be, int batch, int h, int w, int cin, int cout, int stride2) {
  char what[128];
  int oh = stride2 ? h / 2 : h, ow = stride2 ? w / 2 : w, taps = stride2 ? 4 : 9;
  size_t nin = (size_t)batch * h * w * cin, nout = (size_t)batch * oh * ow * cout;
  size_t nw = (size_t)taps * cin * cout;
  float *x = rand_buf(nin, 1), *wt = rand_buf(nw, 1), *b = rand_buf(cout, 1);
  float *dy = rand_buf(nout, 1), *dx = nan_buf(nin), *dw = zero_buf(nw), *db = zero_buf(cout);
  convk_backward(be, stride2, x, batch, h, w, cin, wt, cout, dy, dx, dw, db);
  gc_tensor t[] = {{"x", x, nin, dx}, {"w", wt, nw, dw}, {"b", b, cout, db}};
  op_ctx o = {.batch = batch, .h = h, .w = w, .cin = cin, .cout = cout};
  snprintf(what, sizeof what, "%s %s_backward batch %d %dx%d %d->%d", be->name,
           stride2 ? "conv2x2s2" : "conv3x3", batch, h, w, cin, cout);
  grad_check(what, stride2 ? fw_conv2x2s2 : fw_conv3x3, &o, t, 3, nout, dy, SAMPLES);
  float *once[2] = {dw, db};
  size_t sz[2] = {nw, (size_t)cout};
  ACCUM_CHECK(what, 2, once, sz,
              convk_backward(be, stride2, x, batch, h, w, cin, wt, cout, dy, NULL, acc_[0],
                             acc_[1]));
  free(x), free(wt), free(b), free(dy), free(dx), free(dw), free(db);
}

static void gc_dwconv(mdc_backend *be, int batch, int h, int w, int c) {
  char what[128];
  size_t nc = (size_t)batch * h * w * c;
  float *x = rand_buf(nc, 1), *wt = rand_buf((size_t)9 * c, 1), *b = rand_buf(c, 1);
  float *dy = rand_buf(nc, 1), *dx = nan_buf(nc), *dw = zero_buf((size_t)9 * c), *db = zero_buf(c);
  be->dwconv3x3_backward(be, x, batch, h, w, c, wt, dy, dx, dw, db);
  gc_tensor t[] = {{"x", x, nc, dx}, {"w", wt, (size_t)9 * c, dw}, {"b", b, c, db}};
  op_ctx o = {.batch = batch, .h = h, .w = w, .c = c};
  snprintf(what, sizeof what, "%s dwconv3x3_backward batch %d %dx%d c=%d", be->name, batch, h, w, c);
  grad_check(what, fw_dwconv, &o, t, 3, nc, dy, SAMPLES);
  float *once[2] = {dw, db};
  size_t sz[2] = {(size_t)9 * c, (size_t)c};
  ACCUM_CHECK(what, 2, once, sz,
              be->dwconv3x3_backward(be, x, batch, h, w, c, wt, dy, NULL, acc_[0], acc_[1]));
  free(x), free(wt), free(b), free(dy), free(dx), free(dw), free(db);
}

/* Rows of a per-pixel parameter used `every` pixels at a time (0: one). */
static size_t rows_of(size_t n, size_t every) { return every && n ? (n + every - 1) / every : 1; }

static void gc_layernorm(mdc_backend *be, size_t n, int c, size_t gb_every) {
  char what[128];
  size_t nc = n * c, ng = rows_of(n, gb_every) * c;
  float *x = rand_buf(nc, 1), *g = rand_buf(ng, 1), *b = rand_buf(ng, 1), *dy = rand_buf(nc, 1);
  for (size_t i = 0; i < n; i++) x[i * c] += 2.0f; /* a nonzero mean */
  float *y = nan_buf(nc), *mean = nan_buf(n), *rstd = nan_buf(n);
  float *dx = nan_buf(nc), *dg = zero_buf(ng), *db = zero_buf(ng);
  const float eps = 1e-6f;
  be->layernorm(be, x, n, c, g, b, gb_every, eps, y, mean, rstd);
  be->layernorm_backward(be, x, n, c, g, gb_every, mean, rstd, dy, dx, dg, db);
  gc_tensor t[] = {{"x", x, nc, dx}, {"g", g, ng, dg}, {"b", b, ng, db}};
  op_ctx o = {.n = n, .c = c, .eps = eps, .every = gb_every};
  snprintf(what, sizeof what, "%s layernorm_backward n=%zu c=%d gb_every=%zu", be->name, n, c,
           gb_every);
  grad_check(what, fw_layernorm, &o, t, 3, nc, dy, SAMPLES);
  float *once[2] = {dg, db};
  size_t sz[2] = {ng, ng};
  ACCUM_CHECK(what, 2, once, sz,
              be->layernorm_backward(be, x, n, c, g, gb_every, mean, rstd, dy, NULL, acc_[0],
                                     acc_[1]));
  free(x), free(g), free(b), free(dy), free(y), free(mean), free(rstd), free(dx), free(dg), free(db);
}

static void gc_gate(mdc_backend *be, size_t n, int c) {
  char what[128];
  float *x = rand_buf(n * 2 * c, 1), *dy = rand_buf(n * c, 1), *dx = nan_buf(n * 2 * c);
  be->simplegate_backward(be, x, n, c, dy, dx);
  gc_tensor t[] = {{"x", x, n * 2 * c, dx}};
  op_ctx o = {.n = n, .c = c};
  snprintf(what, sizeof what, "%s simplegate_backward n=%zu c=%d", be->name, n, c);
  grad_check(what, fw_gate, &o, t, 1, n * c, dy, SAMPLES);
  free(x), free(dy), free(dx);
}

static void gc_pool(mdc_backend *be, int batch, int h, int w, int c, int window) {
  char what[128];
  size_t nc = (size_t)batch * h * w * c;
  size_t ny = pool_global(h, w, window) ? (size_t)batch * c : nc;
  float *x = rand_buf(nc, 1), *dy = rand_buf(ny, 1), *dx = nan_buf(nc);
  be->pool_mean_backward(be, batch, h, w, c, window, dy, dx);
  gc_tensor t[] = {{"x", x, nc, dx}};
  op_ctx o = {.batch = batch, .h = h, .w = w, .c = c, .window = window};
  snprintf(what, sizeof what, "%s pool_mean_backward batch %d %dx%d c=%d window=%d", be->name,
           batch, h, w, c, window);
  grad_check(what, fw_pool, &o, t, 1, ny, dy, 1000);
  free(x), free(dy), free(dx);
}

static void gc_scale(mdc_backend *be, size_t n, int c, size_t s_every) {
  char what[128];
  size_t nc = n * c, ns = rows_of(n, s_every) * c;
  float *x = rand_buf(nc, 1), *s = rand_buf(ns, 1), *dy = rand_buf(nc, 1);
  float *dx = nan_buf(nc), *ds = nan_buf(ns);
  be->scale_channels_backward(be, x, s, s_every, n, c, dy, dx, ds);
  gc_tensor t[] = {{"x", x, nc, dx}, {"s", s, ns, ds}};
  op_ctx o = {.n = n, .c = c, .every = s_every};
  snprintf(what, sizeof what, "%s scale_channels_backward n=%zu c=%d s_every=%zu", be->name, n, c,
           s_every);
  grad_check(what, fw_scale, &o, t, 2, nc, dy, SAMPLES);
  /* ds is overwritten, not accumulated */
  float *ds2 = rand_buf(ns, 5);
  be->scale_channels_backward(be, x, s, s_every, n, c, dy, NULL, ds2);
  snprintf(what, sizeof what, "%s scale_channels_backward n=%zu c=%d s_every=%zu: ds overwritten",
           be->name, n, c, s_every);
  check(memcmp(ds2, ds, ns * sizeof(float)) == 0, what);
  free(x), free(s), free(dy), free(dx), free(ds), free(ds2);
}

static void gc_add_scaled(mdc_backend *be, size_t n, int c, int has_s) {
  char what[128];
  size_t nc = n * c;
  float *a = rand_buf(nc, 1), *b = rand_buf(nc, 1), *s = rand_buf(c, 1), *dy = rand_buf(nc, 1);
  float *db = nan_buf(nc), *ds = zero_buf(c);
  be->add_scaled_backward(be, b, has_s ? s : NULL, n, c, dy, db, has_s ? ds : NULL);
  /* da is dy itself */
  gc_tensor t[] = {{"a", a, nc, dy}, {"b", b, nc, db}, {"s", s, c, has_s ? ds : NULL}};
  op_ctx o = {.n = n, .c = c, .has_s = has_s};
  snprintf(what, sizeof what, "%s add_scaled_backward n=%zu c=%d%s", be->name, n, c,
           has_s ? "" : " (no s)");
  grad_check(what, fw_add_scaled, &o, t, 3, nc, dy, SAMPLES);
  if (has_s) {
    float *once[1] = {ds};
    size_t sz[1] = {(size_t)c};
    ACCUM_CHECK(what, 1, once, sz, be->add_scaled_backward(be, b, s, n, c, dy, NULL, acc_[0]));
  }
  free(a), free(b), free(s), free(dy), free(db), free(ds);
}

static void gc_pixelshuffle(mdc_backend *be, int h, int w, int c) {
  char what[128];
  size_t nc = (size_t)h * w * 4 * c;
  float *x = rand_buf(nc, 1), *dy = rand_buf(nc, 1), *dx = nan_buf(nc);
  be->pixelshuffle_backward(be, h, w, c, dy, dx);
  gc_tensor t[] = {{"x", x, nc, dx}};
  op_ctx o = {.h = h, .w = w, .c = c};
  snprintf(what, sizeof what, "%s pixelshuffle_backward %dx%d c=%d", be->name, h, w, c);
  grad_check(what, fw_pixelshuffle, &o, t, 1, nc, dy, SAMPLES);
  free(x), free(dy), free(dx);
}

static void gc_mask(mdc_backend *be, size_t n, int c) {
  char what[128];
  size_t nc = n * c;
  float *x = rand_buf(nc, 1), *m = mask_buf(n), *dy = rand_buf(nc, 1), *dx = nan_buf(nc);
  float *y = nan_buf(nc);
  be->mask_pixels(be, x, m, n, c, y); /* forward: exact products */
  int ok = 1;
  for (size_t i = 0; i < nc; i++) ok &= y[i] == x[i] * m[i / c];
  snprintf(what, sizeof what, "%s mask_pixels n=%zu c=%d", be->name, n, c);
  check(ok, what);
  be->mask_pixels(be, dy, m, n, c, dx); /* its own backward */
  gc_tensor t[] = {{"x", x, nc, dx}};
  op_ctx o = {.n = n, .c = c, .m = m};
  snprintf(what, sizeof what, "%s mask_pixels backward n=%zu c=%d", be->name, n, c);
  grad_check(what, fw_mask, &o, t, 1, nc, dy, SAMPLES);
  free(x), free(m), free(dy), free(dx), free(y);
}

static void test_gradients(mdc_backend *be) {
  static const int hw[][2] = {{1, 1}, {3, 5}, {7, 6}, {2, 9}};
  static const int cs[] = {1, 3, 5, 17};
  for (int i = 0; i < 4; i++) {
    int h = hw[i][0], w = hw[i][1];
    size_t n = (size_t)h * w;
    for (int k = 0; k < 4; k++) {
      int c = cs[k], c2 = cs[(k + i + 1) % 4];
      gc_conv1x1(be, n, c, c2);
      gc_convk(be, 1, h, w, c, c2, 0);
      gc_convk(be, 1, h + (h & 1), w + (w & 1), c, c2, 1);
      gc_dwconv(be, 1, h, w, c);
      gc_layernorm(be, n, c, 0);
      gc_gate(be, n, c);
      gc_scale(be, n, c, 0);
      gc_scale(be, n, c, 1);
      gc_add_scaled(be, n, c, 1);
      gc_add_scaled(be, n, c, 0);
      gc_pixelshuffle(be, h, w, c);
      gc_mask(be, n, c);
    }
  }
  /* pooling: windows smaller than, equal to and larger than each axis,
   * odd and even, and global (0, or covering both axes) */
  static const int ph[][2] = {{1, 1}, {3, 5}, {7, 6}, {6, 7}, {1, 9}, {8, 2}};
  for (int i = 0; i < 6; i++)
    for (int win = 0; win <= 9; win++) gc_pool(be, 1, ph[i][0], ph[i][1], 1 + (win + i) % 3 * 2, win);
  /* batches: 3 images of 5 x 7 (and 2 of 1 x 1), per-image rows of g / b
   * and of s (and rows every 4 pixels, across image borders) */
  static const int bc[][5] = {{3, 5, 7, 3, 5}, {3, 5, 7, 5, 17}, {3, 5, 7, 17, 3}, {2, 1, 1, 5, 3}};
  for (int k = 0; k < 4; k++) { /* batch, h, w, c, c2 */
    int nb = bc[k][0], h = bc[k][1], w = bc[k][2], c = bc[k][3], c2 = bc[k][4];
    const size_t hw = (size_t)h * w, n = nb * hw;
    gc_convk(be, nb, h, w, c, c2, 0);
    gc_dwconv(be, nb, h, w, c);
    for (int win = 0; win <= 3; win += 3) gc_pool(be, nb, h, w, c, win);
    gc_layernorm(be, n, c, hw);
    gc_scale(be, n, c, hw);
  }
  gc_layernorm(be, 30, 3, 4);
  gc_scale(be, 30, 3, 4);
}

/* ------------------------------------------- batched = one call per image */

/* exact: bit for bit; else within the AVX2 tolerance */
static void check_same(const float *got, const float *ref, size_t n, int exact, const char *what) {
  if (exact) check(memcmp(got, ref, n * sizeof(float)) == 0, what);
  else check_close(got, ref, n, what);
}

/* One batched backward against `batch` single-image calls on the same
 * backend, parameter gradients accumulating from the same random start:
 * dx and the per-image rows (LayerNorm's dg / db, scale_channels' ds) bit
 * for bit; the shared weight and bias gradients within the tolerance
 * (a batch adds one float sum over all images, the single calls one per
 * image). */
static void test_batch_vs_images(mdc_backend *be) {
  static const int shapes[][5] = {/* batch, h, w, cin, cout */
                                  {3, 5, 7, 3, 5}, {3, 5, 7, 17, 3}, {3, 7, 5, 5, 17},
                                  {2, 1, 1, 5, 3}, {6, 12, 11, 16, 16}};
  char what[192];
  for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
    const int nb = shapes[i][0], h = shapes[i][1], w = shapes[i][2];
    const int cin = shapes[i][3], cout = shapes[i][4];
    const size_t hw = (size_t)h * w, n = nb * hw, nx = n * cin, ny = n * cout;
    const size_t nw = (size_t)9 * cin * cout, nbc = (size_t)nb * cin;
    float *x = rand_buf(nx, 1), *wt = rand_buf(nw, 1), *dy = rand_buf(ny, 1);
    float *dyc = rand_buf(nx, 1); /* dy of the entries with cin channels out */
    float *dwt = rand_buf((size_t)9 * cin, 1), *g = rand_buf(nbc, 1), *b = rand_buf(nbc, 1);
    float *sv = rand_buf(nbc, 1), *y = nan_buf(nx), *mean = nan_buf(n), *rstd = nan_buf(n);
    /* random starts of the accumulated gradients */
    float *sw = rand_buf(nw, 1), *sb = rand_buf(cout, 1), *sg = rand_buf(nbc, 1);
    float *sgb = rand_buf(nbc, 1);
    for (size_t p = 0; p < n; p++) x[p * cin] += 2.0f; /* a nonzero mean */
    be->layernorm(be, x, n, cin, g, b, hw, 1e-6f, y, mean, rstd);

    { /* conv3x3 */
      float *dx1 = nan_buf(nx), *dw1 = copy_buf(sw, nw), *db1 = copy_buf(sb, cout);
      float *dx2 = nan_buf(nx), *dw2 = copy_buf(sw, nw), *db2 = copy_buf(sb, cout);
      be->conv3x3_backward(be, x, nb, h, w, cin, wt, cout, dy, dx1, dw1, db1);
      for (int img = 0; img < nb; img++)
        be->conv3x3_backward(be, x + img * hw * cin, 1, h, w, cin, wt, cout, dy + img * hw * cout,
                             dx2 + img * hw * cin, dw2, db2);
      snprintf(what, sizeof what, "%s conv3x3_backward batch %d %dx%d %d->%d = per image", be->name,
               nb, h, w, cin, cout);
      check_same(dx1, dx2, nx, 1, what);
      check_same(dw1, dw2, nw, 0, what);
      check_same(db1, db2, cout, 0, what);
      free(dx1), free(dw1), free(db1), free(dx2), free(dw2), free(db2);
    }
    { /* dwconv3x3, c = cin */
      float *dx1 = nan_buf(nx), *dw1 = copy_buf(sw, (size_t)9 * cin), *db1 = copy_buf(sg, cin);
      float *dx2 = nan_buf(nx), *dw2 = copy_buf(sw, (size_t)9 * cin), *db2 = copy_buf(sg, cin);
      be->dwconv3x3_backward(be, x, nb, h, w, cin, dwt, dyc, dx1, dw1, db1);
      for (int img = 0; img < nb; img++)
        be->dwconv3x3_backward(be, x + img * hw * cin, 1, h, w, cin, dwt, dyc + img * hw * cin,
                               dx2 + img * hw * cin, dw2, db2);
      snprintf(what, sizeof what, "%s dwconv3x3_backward batch %d %dx%d c=%d = per image", be->name,
               nb, h, w, cin);
      check_same(dx1, dx2, nx, 1, what);
      check_same(dw1, dw2, (size_t)9 * cin, 0, what);
      check_same(db1, db2, cin, 0, what);
      free(dx1), free(dw1), free(db1), free(dx2), free(dw2), free(db2);
    }
    for (int win = 0; win <= 3; win += 3) { /* pool_mean: global, window 3 */
      int glob = pool_global(h, w, win);
      float *dx1 = nan_buf(nx), *dx2 = nan_buf(nx);
      be->pool_mean_backward(be, nb, h, w, cin, win, dyc, dx1);
      for (int img = 0; img < nb; img++)
        be->pool_mean_backward(be, 1, h, w, cin, win, dyc + img * (glob ? (size_t)cin : hw * cin),
                               dx2 + img * hw * cin);
      snprintf(what, sizeof what, "%s pool_mean_backward batch %d %dx%d c=%d window=%d = per image",
               be->name, nb, h, w, cin, win);
      check_same(dx1, dx2, nx, 1, what);
      free(dx1), free(dx2);
    }
    { /* layernorm, one row of g / b per image: every row is one image's */
      float *dx1 = nan_buf(nx), *dg1 = copy_buf(sg, nbc), *db1 = copy_buf(sgb, nbc);
      float *dx2 = nan_buf(nx), *dg2 = copy_buf(sg, nbc), *db2 = copy_buf(sgb, nbc);
      be->layernorm_backward(be, x, n, cin, g, hw, mean, rstd, dyc, dx1, dg1, db1);
      for (int img = 0; img < nb; img++) {
        size_t p0 = img * hw, r = (size_t)img * cin;
        be->layernorm_backward(be, x + p0 * cin, hw, cin, g + r, 0, mean + p0, rstd + p0,
                               dyc + p0 * cin, dx2 + p0 * cin, dg2 + r, db2 + r);
      }
      snprintf(what, sizeof what,
               "%s layernorm_backward batch %d %dx%d c=%d gb_every=%zu = per image", be->name, nb,
               h, w, cin, hw);
      check_same(dx1, dx2, nx, 1, what);
      check_same(dg1, dg2, nbc, 1, what);
      check_same(db1, db2, nbc, 1, what);
      free(dx1), free(dg1), free(db1), free(dx2), free(dg2), free(db2);
    }
    { /* scale_channels, one row of s per image */
      float *dx1 = nan_buf(nx), *ds1 = nan_buf(nbc), *dx2 = nan_buf(nx), *ds2 = nan_buf(nbc);
      be->scale_channels_backward(be, x, sv, hw, n, cin, dyc, dx1, ds1);
      for (int img = 0; img < nb; img++) {
        size_t p0 = img * hw, r = (size_t)img * cin;
        be->scale_channels_backward(be, x + p0 * cin, sv + r, 0, hw, cin, dyc + p0 * cin,
                                    dx2 + p0 * cin, ds2 + r);
      }
      snprintf(what, sizeof what,
               "%s scale_channels_backward batch %d %dx%d c=%d s_every=%zu = per image", be->name,
               nb, h, w, cin, hw);
      check_same(dx1, dx2, nx, 1, what);
      check_same(ds1, ds2, nbc, 1, what);
      free(dx1), free(ds1), free(dx2), free(ds2);
    }
    free(x), free(wt), free(dy), free(dyc), free(dwt), free(g), free(b), free(sv), free(y);
    free(mean), free(rstd), free(sw), free(sb), free(sg), free(sgb);
  }
}

/* ------------------------------------------------ whole NAFBlock check */

enum { N1W, N1B, C1W, C1B, C2W, C2B, SCW, SCB, C3W, C3B, N2W, N2B, C4W, C4B, C5W, C5B, BETA, GAMMA, NPRM };
static const char *const prm_name[NPRM] = {
    "norm1_w", "norm1_b", "conv1_w", "conv1_b", "conv2_w", "conv2_b", "sca_w", "sca_b", "conv3_w",
    "conv3_b", "norm2_w", "norm2_b", "conv4_w", "conv4_b", "conv5_w", "conv5_b", "beta", "gamma"};

static size_t prm_size(int q, int c) {
  static const int mult[NPRM] = {1, 1, 2, 2, 18, 2, 1, 1, 1, 1, 1, 1, 2, 2, 1, 1, 1, 1};
  int per_c = q == C1W || q == SCW || q == C3W || q == C4W || q == C5W; /* [c][..] */
  return (size_t)mult[q] * (per_c ? c : 1) * c;
}

typedef struct naf_ctx {
  int h, w, c, window;
  float eps;
  const float *m1, *m2; /* masks after LN1 and after conv2, or NULL */
} naf_ctx;

/* docs/network.md's NAFBlock in float64, with the masks; in[0] = x,
 * in[1 + q] = parameter q. */
static void fw_naf(const void *ctx, double *const *in, double *out) {
  const naf_ctx *o = ctx;
  const int c = o->c, h = o->h, w = o->w, glob = pool_global(h, w, o->window);
  const size_t n = (size_t)h * w, pn = glob ? 1 : n;
  double *const *P = in + 1;
  double *l1 = calloc(n * c, sizeof(double)), *a = calloc(n * 2 * c, sizeof(double));
  double *d = calloc(n * 2 * c, sizeof(double)), *t = calloc(n * c, sizeof(double));
  double *p = calloc(pn * c, sizeof(double)), *s = calloc(pn * c, sizeof(double));
  double *u = calloc(n * c, sizeof(double)), *v = calloc(n * c, sizeof(double));
  double *y = calloc(n * c, sizeof(double));
  layernorm_64(in[0], n, c, P[N1W], P[N1B], 0, o->eps, l1);
  if (o->m1) mask_64(l1, o->m1, n, c, l1);
  conv1x1_64(l1, n, c, P[C1W], P[C1B], 2 * c, a);
  dwconv_64(a, 1, h, w, 2 * c, P[C2W], P[C2B], d);
  if (o->m2) mask_64(d, o->m2, n, 2 * c, d);
  gate_64(d, n, c, t);
  pool_64(t, 1, h, w, c, o->window, p);
  conv1x1_64(p, pn, c, P[SCW], P[SCB], c, s);
  scale_64(t, s, glob ? 0 : 1, n, c, u);
  conv1x1_64(u, n, c, P[C3W], P[C3B], c, v);
  add_scaled_64(in[0], v, P[BETA], n, c, y);
  layernorm_64(y, n, c, P[N2W], P[N2B], 0, o->eps, l1);
  conv1x1_64(l1, n, c, P[C4W], P[C4B], 2 * c, a);
  gate_64(a, n, c, t);
  conv1x1_64(t, n, c, P[C5W], P[C5B], c, v);
  add_scaled_64(y, v, P[GAMMA], n, c, out);
  free(l1), free(a), free(d), free(t), free(p), free(s), free(u), free(v), free(y);
}

/* The block forward with the backend's entries (keeping what the backward
 * needs), then the backward composed from the training entries.  dP[q]
 * accumulate; dx is written. */
static void naf_grads(mdc_backend *be, const naf_ctx *o, float *const *P, const float *x,
                      const float *dout, float *dx, float *const *dP) {
  const int c = o->c, h = o->h, w = o->w, glob = pool_global(h, w, o->window);
  const size_t n = (size_t)h * w, pn = glob ? 1 : n, nc = n * c, nc2 = 2 * nc;
  float *mean1 = nan_buf(n), *rstd1 = nan_buf(n), *mean2 = nan_buf(n), *rstd2 = nan_buf(n);
  float *l1 = nan_buf(nc), *l1m = nan_buf(nc), *a = nan_buf(nc2), *d = nan_buf(nc2);
  float *dm = nan_buf(nc2), *t = nan_buf(nc), *p = nan_buf(pn * c), *s = nan_buf(pn * c);
  float *u = nan_buf(nc), *v = nan_buf(nc), *y = nan_buf(nc), *l2 = nan_buf(nc);
  float *e = nan_buf(nc2), *f = nan_buf(nc), *z = nan_buf(nc);
  be->layernorm(be, x, n, c, P[N1W], P[N1B], 0, o->eps, l1, mean1, rstd1);
  if (o->m1) be->mask_pixels(be, l1, o->m1, n, c, l1m);
  else memcpy(l1m, l1, nc * sizeof(float));
  be->conv1x1(be, l1m, n, c, P[C1W], P[C1B], 2 * c, a);
  be->dwconv3x3(be, a, 1, h, w, 2 * c, P[C2W], P[C2B], d);
  if (o->m2) be->mask_pixels(be, d, o->m2, n, 2 * c, dm);
  else memcpy(dm, d, nc2 * sizeof(float));
  be->simplegate(be, dm, n, c, t);
  be->pool_mean(be, t, 1, h, w, c, o->window, p);
  be->conv1x1(be, p, pn, c, P[SCW], P[SCB], c, s);
  be->scale_channels(be, t, s, glob ? 0 : 1, n, c, u);
  be->conv1x1(be, u, n, c, P[C3W], P[C3B], c, v);
  be->add_scaled(be, x, v, P[BETA], n, c, y);
  be->layernorm(be, y, n, c, P[N2W], P[N2B], 0, o->eps, l2, mean2, rstd2);
  be->conv1x1(be, l2, n, c, P[C4W], P[C4B], 2 * c, e);
  be->simplegate(be, e, n, c, f);
  be->conv1x1(be, f, n, c, P[C5W], P[C5B], c, z);

  float *dz = nan_buf(nc), *df = nan_buf(nc), *de = nan_buf(nc2), *dl2 = nan_buf(nc);
  float *dY = nan_buf(nc), *dv = nan_buf(nc), *du = nan_buf(nc), *dt = nan_buf(nc);
  float *dt2 = nan_buf(nc), *ds = nan_buf(pn * c), *dp = nan_buf(pn * c), *ddm = nan_buf(nc2);
  float *dd = nan_buf(nc2), *da = nan_buf(nc2), *dl1m = nan_buf(nc), *dl1 = nan_buf(nc);
  float *dx1 = nan_buf(nc);
  be->add_scaled_backward(be, z, P[GAMMA], n, c, dout, dz, dP[GAMMA]); /* dy += dout */
  be->conv1x1_backward(be, f, n, c, P[C5W], c, dz, df, dP[C5W], dP[C5B]);
  be->simplegate_backward(be, e, n, c, df, de);
  be->conv1x1_backward(be, l2, n, c, P[C4W], 2 * c, de, dl2, dP[C4W], dP[C4B]);
  be->layernorm_backward(be, y, n, c, P[N2W], 0, mean2, rstd2, dl2, dY, dP[N2W], dP[N2B]);
  for (size_t i = 0; i < nc; i++) dY[i] += dout[i];
  be->add_scaled_backward(be, v, P[BETA], n, c, dY, dv, dP[BETA]); /* dx += dY */
  be->conv1x1_backward(be, u, n, c, P[C3W], c, dv, du, dP[C3W], dP[C3B]);
  be->scale_channels_backward(be, t, s, glob ? 0 : 1, n, c, du, dt, ds);
  be->conv1x1_backward(be, p, pn, c, P[SCW], c, ds, dp, dP[SCW], dP[SCB]);
  be->pool_mean_backward(be, 1, h, w, c, o->window, dp, dt2);
  for (size_t i = 0; i < nc; i++) dt[i] += dt2[i];
  be->simplegate_backward(be, dm, n, c, dt, ddm);
  if (o->m2) be->mask_pixels(be, ddm, o->m2, n, 2 * c, dd);
  else memcpy(dd, ddm, nc2 * sizeof(float));
  be->dwconv3x3_backward(be, a, 1, h, w, 2 * c, P[C2W], dd, da, dP[C2W], dP[C2B]);
  be->conv1x1_backward(be, l1m, n, c, P[C1W], 2 * c, da, dl1m, dP[C1W], dP[C1B]);
  if (o->m1) be->mask_pixels(be, dl1m, o->m1, n, c, dl1);
  else memcpy(dl1, dl1m, nc * sizeof(float));
  be->layernorm_backward(be, x, n, c, P[N1W], 0, mean1, rstd1, dl1, dx1, dP[N1W], dP[N1B]);
  for (size_t i = 0; i < nc; i++) dx[i] = dY[i] + dx1[i];

  float *bufs[] = {mean1, rstd1, mean2, rstd2, l1, l1m, a, d, dm, t, p, s, u, v, y, l2, e, f, z,
                   dz, df, de, dl2, dY, dv, du, dt, dt2, ds, dp, ddm, dd, da, dl1m, dl1, dx1};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
}

typedef struct naf_case {
  naf_ctx o;
  float *x, *dout, *P[NPRM], *m1, *m2;
} naf_case;

static void naf_case_make(naf_case *k, int h, int w, int c, int window, int masks) {
  memset(k, 0, sizeof *k);
  k->o = (naf_ctx){h, w, c, window, 1e-6f, NULL, NULL};
  size_t n = (size_t)h * w;
  k->x = rand_buf(n * c, 1);
  k->dout = rand_buf(n * c, 1);
  float sc = 1.0f / sqrtf((float)c);
  for (int q = 0; q < NPRM; q++) {
    int weight = q == C1W || q == SCW || q == C3W || q == C4W || q == C5W;
    k->P[q] = rand_buf(prm_size(q, c), weight ? sc : q == C2W ? 0.5f : q == N1W || q == N2W ? 1.0f : 0.5f);
  }
  for (int i = 0; i < c; i++) k->P[N1W][i] += 1.0f, k->P[N2W][i] += 1.0f;
  if (masks) {
    k->o.m1 = k->m1 = mask_buf(n);
    k->o.m2 = k->m2 = mask_buf(n);
  }
}

static void naf_case_free(naf_case *k) {
  free(k->x), free(k->dout), free(k->m1), free(k->m2);
  for (int q = 0; q < NPRM; q++) free(k->P[q]);
}

/* Gradients of one case on `be`: dx, then the NPRM parameter gradients. */
static float **naf_case_grads(mdc_backend *be, const naf_case *k) {
  int c = k->o.c;
  size_t nc = (size_t)k->o.h * k->o.w * c;
  float **g = malloc((NPRM + 1) * sizeof *g);
  g[0] = nan_buf(nc);
  for (int q = 0; q < NPRM; q++) g[1 + q] = zero_buf(prm_size(q, c));
  naf_grads(be, &k->o, k->P, k->x, k->dout, g[0], g + 1);
  return g;
}

static void grads_free(float **g) {
  for (int q = 0; q <= NPRM; q++) free(g[q]);
  free(g);
}

static void test_nafblock_gradients(mdc_backend *be) {
  static const int cases[][5] = {/* h, w, c, window, masks */
                                 {5, 6, 3, 0, 0}, {5, 6, 3, 0, 1}, {4, 7, 4, 3, 1},
                                 {6, 5, 5, 4, 0}, {3, 3, 2, 2, 1}, {1, 1, 3, 0, 1}};
  char what[128];
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    naf_case k;
    naf_case_make(&k, cases[i][0], cases[i][1], cases[i][2], cases[i][3], cases[i][4]);
    float **g = naf_case_grads(be, &k);
    gc_tensor t[NPRM + 1];
    int c = k.o.c;
    t[0] = (gc_tensor){"x", k.x, (size_t)k.o.h * k.o.w * c, g[0]};
    for (int q = 0; q < NPRM; q++) t[1 + q] = (gc_tensor){prm_name[q], k.P[q], prm_size(q, c), g[1 + q]};
    snprintf(what, sizeof what, "%s nafblock backward %dx%d c=%d window=%d%s", be->name, k.o.h,
             k.o.w, c, k.o.window, k.m1 ? " masked" : "");
    grad_check(what, fw_naf, &k.o, t, NPRM + 1, (size_t)k.o.h * k.o.w * c, k.dout, SAMPLES);
    grads_free(g);
    naf_case_free(&k);
  }
}

/* ------------------------------------------- AVX2 against the scalar */

typedef struct backends {
  mdc_backend *ref, *ref1; /* scalar, 3 threads and 1 thread */
  mdc_backend *fast[3];    /* AVX2, 1 / 2 / 3 threads */
} backends;

enum { K_CONV1X1, K_CONV3X3, K_CONV2X2, K_DWCONV, K_LN, K_GATE, K_POOL, K_SCALE, K_ADD, K_PS, K_MASK };

/* One backward call: inputs, and up to 3 outputs (accumulated ones start
 * from `start`, the others from NaN; a bit of `null_mask` passes NULL). */
typedef struct bw_case {
  int kind, batch, h, w, c, cin, cout, window, null_mask, nout;
  size_t n, every, out_n[3]; /* every: gb_every / s_every */
  const float *x, *wt, *dy, *g, *mean, *rstd, *s, *m;
  const float *start[3]; /* NULL: output overwritten */
} bw_case;

static void bw_run(mdc_backend *be, const bw_case *k, float **out) {
  float *o[3];
  for (int q = 0; q < 3; q++) o[q] = k->null_mask >> q & 1 ? NULL : out[q];
  switch (k->kind) {
    case K_CONV1X1:
      be->conv1x1_backward(be, k->x, k->n, k->cin, k->wt, k->cout, k->dy, o[0], o[1], o[2]);
      break;
    case K_CONV3X3:
      be->conv3x3_backward(be, k->x, k->batch, k->h, k->w, k->cin, k->wt, k->cout, k->dy, o[0],
                           o[1], o[2]);
      break;
    case K_CONV2X2:
      be->conv2x2s2_backward(be, k->x, k->h, k->w, k->cin, k->wt, k->cout, k->dy, o[0], o[1], o[2]);
      break;
    case K_DWCONV:
      be->dwconv3x3_backward(be, k->x, k->batch, k->h, k->w, k->c, k->wt, k->dy, o[0], o[1], o[2]);
      break;
    case K_LN:
      be->layernorm_backward(be, k->x, k->n, k->c, k->g, k->every, k->mean, k->rstd, k->dy, o[0],
                             o[1], o[2]);
      break;
    case K_GATE: be->simplegate_backward(be, k->x, k->n, k->c, k->dy, o[0]); break;
    case K_POOL:
      be->pool_mean_backward(be, k->batch, k->h, k->w, k->c, k->window, k->dy, o[0]);
      break;
    case K_SCALE:
      be->scale_channels_backward(be, k->x, k->s, k->every, k->n, k->c, k->dy, o[0], o[1]);
      break;
    case K_ADD: be->add_scaled_backward(be, k->x, k->s, k->n, k->c, k->dy, o[0], o[1]); break;
    case K_PS: be->pixelshuffle_backward(be, k->h, k->w, k->c, k->dy, o[0]); break;
    case K_MASK: be->mask_pixels(be, k->x, k->m, k->n, k->c, o[0]); break;
  }
}

static float **bw_outputs(const bw_case *k) {
  float **o = malloc(3 * sizeof *o);
  for (int q = 0; q < 3; q++)
    o[q] = q >= k->nout ? NULL : k->start[q] ? copy_buf(k->start[q], k->out_n[q]) : nan_buf(k->out_n[q]);
  return o;
}

static void outputs_free(float **o) {
  for (int q = 0; q < 3; q++) free(o[q]);
  free(o);
}

/* Scalar 1 vs 3 threads bit-identical; AVX2 1/2/3 threads bit-identical
 * and close to the scalar. */
static void bw_compare(backends *B, const bw_case *k, const char *what) {
  float **ref = bw_outputs(k), **ref1 = bw_outputs(k), **got[3];
  bw_run(B->ref, k, ref);
  bw_run(B->ref1, k, ref1);
  for (int t = 0; t < 3; t++) {
    got[t] = bw_outputs(k);
    bw_run(B->fast[t], k, got[t]);
  }
  char msg[200];
  for (int q = 0; q < k->nout; q++) {
    if (k->null_mask >> q & 1) continue;
    size_t n = k->out_n[q];
    snprintf(msg, sizeof msg, "%s: output %d avx2 vs scalar", what, q);
    check_close(got[0][q], ref[q], n, msg);
    snprintf(msg, sizeof msg, "%s: output %d avx2 1/2/3 threads identical", what, q);
    check(!memcmp(got[0][q], got[1][q], n * 4) && !memcmp(got[0][q], got[2][q], n * 4), msg);
    snprintf(msg, sizeof msg, "%s: output %d scalar 1/3 threads identical", what, q);
    check(!memcmp(ref[q], ref1[q], n * 4), msg);
  }
  outputs_free(ref), outputs_free(ref1);
  for (int t = 0; t < 3; t++) outputs_free(got[t]);
}

static const int sizes[][2] = {{1, 1}, {7, 13}, {1, 33}, {65, 3}, {4, 6}};
#define NSIZES (sizeof sizes / sizeof *sizes)
static const int chans[] = {1, 3, 5, 7, 12, 16, 17, 32, 33, 64};
#define NCHANS (sizeof chans / sizeof *chans)

static void cmp_conv1x1(backends *B, size_t n, int cin, int cout, int null_mask) {
  char what[128];
  float *x = rand_buf(n * cin, 1), *w = rand_buf((size_t)cin * cout, 1), *dy = rand_buf(n * cout, 1);
  float *s1 = rand_buf((size_t)cin * cout, 1), *s2 = rand_buf(cout, 1);
  bw_case k = {.kind = K_CONV1X1, .cin = cin, .cout = cout, .n = n, .x = x, .wt = w, .dy = dy,
               .nout = 3, .out_n = {n * cin, (size_t)cin * cout, (size_t)cout},
               .start = {NULL, s1, s2}, .null_mask = null_mask};
  snprintf(what, sizeof what, "conv1x1_backward n=%zu %d->%d null=%d", n, cin, cout, null_mask);
  bw_compare(B, &k, what);
  free(x), free(w), free(dy), free(s1), free(s2);
}

/* stride2: batch must be 1 (conv2x2s2 takes all rows as h) */
static void cmp_convk(backends *B, int batch, int h, int w, int cin, int cout, int stride2,
                      int null_mask) {
  char what[128];
  int taps = stride2 ? 4 : 9, oh = stride2 ? h / 2 : h, ow = stride2 ? w / 2 : w;
  size_t nw = (size_t)taps * cin * cout, nin = (size_t)batch * h * w * cin;
  float *x = rand_buf(nin, 1), *wt = rand_buf(nw, 1);
  float *dy = rand_buf((size_t)batch * oh * ow * cout, 1), *s1 = rand_buf(nw, 1);
  float *s2 = rand_buf(cout, 1);
  bw_case k = {.kind = stride2 ? K_CONV2X2 : K_CONV3X3, .batch = batch, .h = h, .w = w,
               .cin = cin, .cout = cout, .x = x, .wt = wt, .dy = dy, .nout = 3,
               .out_n = {nin, nw, (size_t)cout}, .start = {NULL, s1, s2},
               .null_mask = null_mask};
  snprintf(what, sizeof what, "%s_backward batch %d %dx%d %d->%d null=%d",
           stride2 ? "conv2x2s2" : "conv3x3", batch, h, w, cin, cout, null_mask);
  bw_compare(B, &k, what);
  free(x), free(wt), free(dy), free(s1), free(s2);
}

/* batch images of h x w (the pixel-wise entries see n = batch h w);
 * LayerNorm's g / b and scale_channels' s also per image. */
static void cmp_pointwise(backends *B, int batch, int h, int w, int c) {
  char what[128];
  size_t hw = (size_t)h * w, n = batch * hw, nc = n * c, nbc = (size_t)batch * c;
  float *x = rand_buf(nc * 4, 1), *dy = rand_buf(nc * 4, 1), *wt = rand_buf((size_t)9 * c, 1);
  float *g = rand_buf(nbc, 1), *b = rand_buf(nbc, 1), *sp = rand_buf(nc, 1), *m = mask_buf(n);
  float *s9 = rand_buf((size_t)9 * c, 1), *sc1 = rand_buf(nbc, 1), *sc2 = rand_buf(nbc, 1);
  float *y = nan_buf(nc), *mean = nan_buf(n), *rstd = nan_buf(n);
  float *mean_b = nan_buf(n), *rstd_b = nan_buf(n);
  for (size_t i = 0; i < n; i++) x[i * c] += 3.0f; /* a nonzero mean */
  B->ref->layernorm(B->ref, x, n, c, g, b, 0, 1e-6f, y, mean, rstd);
  B->ref->layernorm(B->ref, x, n, c, g, b, hw, 1e-6f, y, mean_b, rstd_b);

  bw_case k = {.kind = K_DWCONV, .batch = batch, .h = h, .w = w, .c = c, .x = x, .wt = wt,
               .dy = dy, .nout = 3, .out_n = {nc, (size_t)9 * c, (size_t)c},
               .start = {NULL, s9, sc1}};
  snprintf(what, sizeof what, "dwconv3x3_backward batch %d %dx%d c=%d", batch, h, w, c);
  bw_compare(B, &k, what);
  k.null_mask = 1 + 4 * (c & 1);
  snprintf(what, sizeof what, "dwconv3x3_backward batch %d %dx%d c=%d null=%d", batch, h, w, c,
           k.null_mask);
  bw_compare(B, &k, what);

  k = (bw_case){.kind = K_LN, .n = n, .c = c, .x = x, .g = g, .mean = mean, .rstd = rstd, .dy = dy,
                .nout = 3, .out_n = {nc, (size_t)c, (size_t)c}, .start = {NULL, sc1, sc2}};
  snprintf(what, sizeof what, "layernorm_backward %dx%d c=%d", h, w, c);
  bw_compare(B, &k, what);
  k.null_mask = c & 1 ? 6 : 1;
  snprintf(what, sizeof what, "layernorm_backward %dx%d c=%d null=%d", h, w, c, k.null_mask);
  bw_compare(B, &k, what);
  if (batch > 1) { /* one row of g / b per image */
    k = (bw_case){.kind = K_LN, .n = n, .c = c, .every = hw, .x = x, .g = g, .mean = mean_b,
                  .rstd = rstd_b, .dy = dy, .nout = 3, .out_n = {nc, nbc, nbc},
                  .start = {NULL, sc1, sc2}};
    snprintf(what, sizeof what, "layernorm_backward batch %d %dx%d c=%d gb_every=%zu", batch, h,
             w, c, hw);
    bw_compare(B, &k, what);
    k.null_mask = c & 1 ? 6 : 1;
    snprintf(what, sizeof what, "layernorm_backward batch %d %dx%d c=%d gb_every=%zu null=%d",
             batch, h, w, c, hw, k.null_mask);
    bw_compare(B, &k, what);
  }

  k = (bw_case){.kind = K_GATE, .n = n, .c = c, .x = x, .dy = dy, .nout = 1, .out_n = {2 * nc}};
  snprintf(what, sizeof what, "simplegate_backward %dx%d c=%d", h, w, c);
  bw_compare(B, &k, what);

  k = (bw_case){.kind = K_MASK, .n = n, .c = c, .x = x, .m = m, .nout = 1, .out_n = {nc}};
  snprintf(what, sizeof what, "mask_pixels %dx%d c=%d", h, w, c);
  bw_compare(B, &k, what);

  const size_t everys[3] = {0, 1, hw}; /* one row of s, per pixel, per image */
  for (int e = 0; e < (batch > 1 ? 3 : 2); e++) {
    size_t ns = (everys[e] == 1 ? n : everys[e] ? (size_t)batch : 1) * c;
    k = (bw_case){.kind = K_SCALE, .n = n, .c = c, .x = x, .s = everys[e] == 1 ? sp : g,
                  .every = everys[e], .dy = dy, .nout = 2, .out_n = {nc, ns}};
    snprintf(what, sizeof what, "scale_channels_backward batch %d %dx%d c=%d s_every=%zu", batch,
             h, w, c, everys[e]);
    bw_compare(B, &k, what);
  }
  k = (bw_case){.kind = K_ADD, .n = n, .c = c, .x = x, .s = g, .dy = dy, .nout = 2,
                .out_n = {nc, (size_t)c}, .start = {NULL, sc1}};
  snprintf(what, sizeof what, "add_scaled_backward %dx%d c=%d", h, w, c);
  bw_compare(B, &k, what);
  k = (bw_case){.kind = K_PS, .h = batch * h, .w = w, .c = c, .dy = dy, .nout = 1,
                .out_n = {4 * nc}};
  snprintf(what, sizeof what, "pixelshuffle_backward %dx%d c=%d", batch * h, w, c);
  bw_compare(B, &k, what);
  for (int win = 0; win < 6; win += 3) {
    int glob = pool_global(h, w, win);
    k = (bw_case){.kind = K_POOL, .batch = batch, .h = h, .w = w, .c = c, .window = win, .dy = dy,
                  .nout = 1, .out_n = {nc}};
    snprintf(what, sizeof what, "pool_mean_backward batch %d %dx%d c=%d window=%d%s", batch, h, w,
             c, win, glob ? " (global)" : "");
    bw_compare(B, &k, what);
  }
  free(x), free(dy), free(wt), free(g), free(b), free(sp), free(m), free(s9), free(sc1), free(sc2);
  free(y), free(mean), free(rstd), free(mean_b), free(rstd_b);
}

static void test_avx2_vs_scalar(backends *B) {
  static const size_t ns[] = {1, 5, 6, 7, 37};
  for (size_t a = 0; a < NCHANS; a++)
    for (size_t b = 0; b < NCHANS; b++) cmp_conv1x1(B, ns[(a + b) % 5], chans[a], chans[b], 0);
  static const int big[][3] = {{16, 32, 1000}, {32, 64, 2053}, {64, 32, 600},  {128, 256, 300},
                               {48, 40, 777},  {3, 16, 4103},  {16, 3, 1500}, {33, 17, 513},
                               {16, 32, 20000}, {7, 9, 70001}}; /* > 64 blocks: groups of several */
  for (size_t i = 0; i < sizeof big / sizeof *big; i++)
    for (int nm = 0; nm < 8; nm += (i ? 3 : 1)) cmp_conv1x1(B, big[i][2], big[i][0], big[i][1], nm);
  static const int io[][2] = {{3, 16}, {16, 3}, {5, 7}, {1, 1}};
  for (size_t s = 0; s < NSIZES; s += 2)
    for (size_t k = 0; k < sizeof io / sizeof *io; k++) {
      cmp_convk(B, 1, sizes[s][0], sizes[s][1], io[k][0], io[k][1], 0, 0);
      cmp_convk(B, 1, sizes[s][0] + (sizes[s][0] & 1), sizes[s][1] + (sizes[s][1] & 1), io[k][0],
                io[k][1], 1, 0);
    }
  /* long rows (chunks), many rows (groups), more channels */
  static const int kbig[][4] = {{6, 300, 16, 32}, {140, 6, 3, 16}, {8, 10, 33, 17}, {12, 12, 32, 3}};
  for (size_t i = 0; i < sizeof kbig / sizeof *kbig; i++) {
    for (int nm = 0; nm < 7; nm += 3) { /* all outputs, dx only (dw, db NULL), dw only */
      cmp_convk(B, 1, kbig[i][0], kbig[i][1], kbig[i][2], kbig[i][3], 0, nm == 6 ? 5 : nm);
      cmp_convk(B, 1, kbig[i][0], kbig[i][1], kbig[i][2], kbig[i][3], 1, nm == 6 ? 5 : nm);
    }
  }
  for (size_t s = 0; s < NSIZES; s++)
    for (size_t k = 0; k < NCHANS; k++) cmp_pointwise(B, 1, sizes[s][0], sizes[s][1], chans[k]);
  /* several row blocks, long rows, many pixels */
  cmp_pointwise(B, 1, 150, 7, 16);
  cmp_pointwise(B, 1, 3, 700, 5);
  cmp_pointwise(B, 1, 64, 80, 32);
  /* batches: awkward sizes; more rows than weight-gradient groups (64),
   * so that groups span image borders; images of one pixel */
  static const int bio[][2] = {{3, 5}, {5, 17}, {17, 3}, {16, 16}};
  for (size_t k = 0; k < sizeof bio / sizeof *bio; k++)
    for (int nm = 0; nm < 7; nm += 3)
      cmp_convk(B, 3, 5, 7, bio[k][0], bio[k][1], 0, nm == 6 ? 5 : nm);
  cmp_convk(B, 8, 12, 12, 16, 16, 0, 0);
  cmp_convk(B, 5, 1, 1, 5, 3, 0, 0);
  static const int bcs[] = {3, 5, 17};
  for (int k = 0; k < 3; k++) cmp_pointwise(B, 3, 5, 7, bcs[k]);
  cmp_pointwise(B, 8, 12, 12, 16);
  cmp_pointwise(B, 5, 1, 1, 5);
  cmp_pointwise(B, 3, 40, 30, 16); /* several LayerNorm tasks per image */
}

/* The composed NAFBlock backward on AVX2 against the scalar one. */
static void test_avx2_nafblock(backends *B) {
  static const int cases[][5] = {{16, 16, 16, 0, 1}, {9, 23, 12, 5, 0}, {12, 17, 32, 0, 0}, {7, 13, 5, 4, 1}};
  char what[160];
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    naf_case k;
    naf_case_make(&k, cases[i][0], cases[i][1], cases[i][2], cases[i][3], cases[i][4]);
    float **ref = naf_case_grads(B->ref, &k), **got[2];
    got[0] = naf_case_grads(B->fast[0], &k);
    got[1] = naf_case_grads(B->fast[2], &k);
    int c = k.o.c;
    for (int q = 0; q <= NPRM; q++) {
      size_t n = q ? prm_size(q - 1, c) : (size_t)k.o.h * k.o.w * c;
      snprintf(what, sizeof what, "nafblock backward %dx%d c=%d window=%d: d%s avx2 vs scalar",
               k.o.h, k.o.w, c, k.o.window, q ? prm_name[q - 1] : "x");
      check_close(got[0][q], ref[q], n, what);
      snprintf(what, sizeof what, "nafblock backward %dx%d c=%d window=%d: d%s avx2 1/3 threads",
               k.o.h, k.o.w, c, k.o.window, q ? prm_name[q - 1] : "x");
      check(!memcmp(got[0][q], got[1][q], n * 4), what);
    }
    grads_free(ref), grads_free(got[0]), grads_free(got[1]);
    naf_case_free(&k);
  }
}

/* The += contract on the AVX2 reductions: a second call on the first
 * call's gradients doubles them exactly. */
static void test_avx2_accumulate(mdc_backend *be) {
  static const int shp[][3] = {{37, 5, 17}, {1000, 16, 32}, {2053, 33, 64}};
  char what[128];
  for (int i = 0; i < 3; i++) {
    size_t n = shp[i][0];
    int cin = shp[i][1], cout = shp[i][2];
    float *x = rand_buf(n * cin, 1), *w = rand_buf((size_t)cin * cout, 1), *dy = rand_buf(n * cout, 1);
    float *g = rand_buf(cin, 1), *mean = rand_buf(n, 1), *rstd = rand_buf(n, 1);
    float *once[3] = {zero_buf((size_t)cin * cout), zero_buf(cout), zero_buf((size_t)9 * cin)};
    size_t sz[3] = {(size_t)cin * cout, (size_t)cout, (size_t)9 * cin};
    be->conv1x1_backward(be, x, n, cin, w, cout, dy, NULL, once[0], once[1]);
    snprintf(what, sizeof what, "%s conv1x1_backward n=%zu %d->%d", be->name, n, cin, cout);
    ACCUM_CHECK(what, 2, once, sz, be->conv1x1_backward(be, x, n, cin, w, cout, dy, NULL, acc_[0], acc_[1]));
    free(once[0]), free(once[1]);
    once[0] = zero_buf(cin), once[1] = zero_buf(cin);
    sz[0] = sz[1] = (size_t)cin;
    be->layernorm_backward(be, x, n, cin, g, 0, mean, rstd, x, NULL, once[0], once[1]);
    snprintf(what, sizeof what, "%s layernorm_backward n=%zu c=%d", be->name, n, cin);
    ACCUM_CHECK(what, 2, once, sz, be->layernorm_backward(be, x, n, cin, g, 0, mean, rstd, x, NULL, acc_[0], acc_[1]));
    int h = (int)(n / 37), ww = 37; /* dwconv on h * 37 <= n pixels */
    free(once[1]);
    once[1] = zero_buf(cin);
    be->dwconv3x3_backward(be, x, 1, h, ww, cin, w, dy, NULL, once[2], once[1]);
    float *o2[2] = {once[2], once[1]};
    size_t s2[2] = {(size_t)9 * cin, (size_t)cin};
    snprintf(what, sizeof what, "%s dwconv3x3_backward %dx%d c=%d", be->name, h, ww, cin);
    ACCUM_CHECK(what, 2, o2, s2, be->dwconv3x3_backward(be, x, 1, h, ww, cin, w, dy, NULL, acc_[0], acc_[1]));
    for (int q = 0; q < 3; q++) free(once[q]);
    free(x), free(w), free(dy), free(g), free(mean), free(rstd);
  }
}

/* --------------------------------------------------- l1_loss, adamw */

static void test_l1(mdc_backend *be, backends *B) {
  static const size_t ns[] = {1, 7, 8193, 100003};
  char what[128];
  for (int i = 0; i < 4; i++) {
    size_t n = ns[i];
    float *pred = rand_buf(n, 1), *target = rand_buf(n, 1), *grad = nan_buf(n);
    for (size_t j = 0; j < n; j += 5) target[j] = pred[j]; /* gradient 0 there */
    float scale = 0.75f;
    double want = 0.0;
    for (size_t j = 0; j < n; j++) want += fabs((double)pred[j] - target[j]);
    want /= (double)n;
    double got = be->l1_loss(be, pred, target, n, scale, grad);
    snprintf(what, sizeof what, "%s l1_loss n=%zu value", be->name, n);
    if (!(fabs(got - want) <= 1e-6 * want)) printf("  got %.12g want %.12g\n", got, want);
    check(fabs(got - want) <= 1e-6 * want, what);
    float g = (float)((double)scale / (double)n);
    int ok = 1;
    for (size_t j = 0; j < n; j++) {
      float d = pred[j] - target[j];
      ok &= grad[j] == (d > 0 ? g : d < 0 ? -g : 0.0f);
    }
    snprintf(what, sizeof what, "%s l1_loss n=%zu gradient sign * scale / n", be->name, n);
    check(ok, what);
    snprintf(what, sizeof what, "%s l1_loss n=%zu without gradient", be->name, n);
    check(be->l1_loss(be, pred, target, n, scale, NULL) == got, what);
    if (B) { /* same bits for every thread count */
      ok = 1;
      for (int t = 0; t < 3; t++) {
        float *g2 = nan_buf(n);
        ok &= B->fast[t]->l1_loss(B->fast[t], pred, target, n, scale, g2) == got;
        ok &= !memcmp(g2, grad, n * 4);
        free(g2);
      }
      snprintf(what, sizeof what, "%s l1_loss n=%zu 1/2/3 threads identical", be->name, n);
      check(ok, what);
    }
    free(pred), free(target), free(grad);
  }
  check(be->l1_loss(be, NULL, NULL, 0, 1.0f, NULL) == 0.0, "l1_loss of nothing is 0");
}

/* PyTorch's AdamW in float64. */
static void adamw_ref(double *p, const double *g, double *m, double *v, size_t n, double lr,
                      double b1, double b2, double eps, double wd, long step) {
  double bc1 = 1 - pow(b1, (double)step), bc2 = 1 - pow(b2, (double)step);
  for (size_t i = 0; i < n; i++) {
    p[i] -= lr * wd * p[i];
    m[i] = b1 * m[i] + (1 - b1) * g[i];
    v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
    p[i] -= lr * (m[i] / bc1) / (sqrt(v[i] / bc2) + eps);
  }
}

static int near_all(const float *got, const double *ref, size_t n, double tol) {
  for (size_t i = 0; i < n; i++)
    if (!(fabs(got[i] - ref[i]) <= tol * (1.0 + fabs(ref[i])))) return 0;
  return 1;
}

static void test_adamw(mdc_backend *be, backends *B) {
  const size_t n = 1003;
  const float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f;
  float *p = rand_buf(n, 1), *m = zero_buf(n), *v = zero_buf(n);
  double *pr = to_double(p, n), *mr = to_double(m, n), *vr = to_double(v, n);
  float *pt[3], *mt[3], *vt[3];
  for (int t = 0; t < 3; t++) pt[t] = copy_buf(p, n), mt[t] = zero_buf(n), vt[t] = zero_buf(n);
  int ok = 1, ok_fast = 1, same = 1;
  for (long step = 1; step <= 6; step++) {
    float *g = rand_buf(n, step == 3 ? 1e-3f : 1.0f);
    for (size_t i = 0; i < n; i += 7) g[i] = 0.0f;
    double *gr = to_double(g, n);
    be->adamw_step(be, p, g, m, v, n, lr, b1, b2, eps, wd, step);
    adamw_ref(pr, gr, mr, vr, n, lr, b1, b2, eps, wd, step);
    ok &= near_all(p, pr, n, 1e-6) && near_all(m, mr, n, 1e-6) && near_all(v, vr, n, 1e-6);
    if (B)
      for (int t = 0; t < 3; t++) {
        B->fast[t]->adamw_step(B->fast[t], pt[t], g, mt[t], vt[t], n, lr, b1, b2, eps, wd, step);
        if (t) same &= !memcmp(pt[t], pt[0], n * 4) && !memcmp(vt[t], vt[0], n * 4);
      }
    if (B) ok_fast &= near_all(pt[0], pr, n, 1e-6) && near_all(vt[0], vr, n, 1e-6);
    free(g), free(gr);
  }
  char what[128];
  snprintf(what, sizeof what, "%s adamw_step 6 steps vs float64 (tol 1e-6 (1 + |ref|))", be->name);
  check(ok, what);
  if (B) {
    snprintf(what, sizeof what, "%s adamw_step 1/2/3 threads identical", B->fast[0]->name);
    check(same, what);
    snprintf(what, sizeof what, "%s adamw_step 6 steps vs float64", B->fast[0]->name);
    check(ok_fast, what);
  }
  free(p), free(m), free(v), free(pr), free(mr), free(vr);
  for (int t = 0; t < 3; t++) free(pt[t]), free(mt[t]), free(vt[t]);
}

/* -------------------------------------------------------------- bench */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Best of `reps` wall times of one conv1x1_backward (parts: 1 dx, 2 dw+db). */
static double time_c1(mdc_backend *be, const float *x, size_t n, int cin, const float *w,
                      int cout, const float *dy, float *dx, float *dw, float *db, int parts,
                      int reps) {
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    double t0 = now();
    be->conv1x1_backward(be, x, n, cin, w, cout, dy, parts & 1 ? dx : NULL, parts & 2 ? dw : NULL,
                         parts & 2 ? db : NULL);
    double t = now() - t0;
    if (t < best) best = t;
  }
  return best;
}

static int bench(void) {
  mdc_backend *sc = mdc_backend_cpu_scalar_new(0), *fa = mdc_backend_cpu_avx2_new(0);
  mdc_backend *fa1 = mdc_backend_cpu_avx2_new(1);
  if (!sc || !fa || !fa1) {
    printf("bench needs the AVX2 backend\n");
    return 1;
  }
  printf("conv1x1_backward at 256x256, GFLOP/s (2 n cin cout flops per part), best of reps\n");
  printf("%-10s %-6s %12s %12s %12s %12s\n", "shape", "part", "scalar", "avx2 1 thr", "avx2 all",
         "fwd avx2 all");
  static const int shp[][2] = {{16, 32}, {32, 64}, {32, 16}, {64, 32}};
  const size_t n = 256 * 256;
  for (int i = 0; i < 4; i++) {
    int cin = shp[i][0], cout = shp[i][1];
    float *x = rand_buf(n * cin, 1), *w = rand_buf((size_t)cin * cout, 1), *dy = rand_buf(n * cout, 1);
    float *dx = zero_buf(n * cin), *dw = zero_buf((size_t)cin * cout), *db = zero_buf(cout);
    float *y = zero_buf(n * cout);
    double flops = 2.0 * n * cin * cout;
    double tf = 1e30;
    for (int r = 0; r < 10; r++) {
      double t0 = now();
      fa->conv1x1(fa, x, n, cin, w, NULL, cout, y);
      double t = now() - t0;
      if (t < tf) tf = t;
    }
    for (int part = 1; part <= 2; part++) {
      double ts = time_c1(sc, x, n, cin, w, cout, dy, dx, dw, db, part, 2);
      double t1 = time_c1(fa1, x, n, cin, w, cout, dy, dx, dw, db, part, 10);
      double ta = time_c1(fa, x, n, cin, w, cout, dy, dx, dw, db, part, 10);
      char shape[16];
      snprintf(shape, sizeof shape, "%d->%d", cin, cout);
      printf("%-10s %-6s %12.2f %12.2f %12.2f %12.2f\n", shape, part == 1 ? "dx" : "dw+db",
             flops / ts * 1e-9, flops / t1 * 1e-9, flops / ta * 1e-9, flops / tf * 1e-9);
    }
    free(x), free(w), free(dy), free(dx), free(dw), free(db), free(y);
  }
  /* other entries, milliseconds per call at 256 x 256 */
  printf("\nother entries at 256x256, ms per call (best of 5; scalar and avx2 on all threads)\n");
  printf("%-34s %10s %10s\n", "entry", "scalar", "avx2 all");
  const int c = 32;
  float *x = rand_buf(n * 2 * c, 1), *dy = rand_buf(n * 2 * c, 1), *dx = zero_buf(n * 2 * c);
  float *g = rand_buf(2 * c, 1), *b = rand_buf(2 * c, 1), *wt = rand_buf(9 * 2 * c, 1);
  float *mean = zero_buf(n), *rstd = zero_buf(n), *y = zero_buf(n * 2 * c);
  float *dg = zero_buf(9 * 2 * c), *db = zero_buf(2 * c), *m = mask_buf(n);
  float *pm = zero_buf(n * 2 * c), *pv = zero_buf(n * 2 * c);
  sc->layernorm(sc, x, n, c, g, b, 0, 1e-6f, y, mean, rstd);
  float *x3 = rand_buf(n * 3, 1), *w3 = rand_buf(9 * 16 * 32, 1), *dy3 = rand_buf(n * 3, 1);
  float *dw3 = zero_buf(9 * 16 * 32), *db3 = zero_buf(32);
  for (int e = 0; e < 13; e++) {
    static const char *const names[] = {
        "layernorm_backward c=32",        "dwconv3x3_backward c=64",
        "simplegate_backward c=32",       "mask_pixels c=64",
        "l1_loss n=256*256*3",            "adamw_step n=256*256*64",
        "conv3x3_backward 3->16 (no dx)", "conv3x3_backward 16->3",
        "conv2x2s2_backward 16->32",      "scale_channels_backward c=32",
        "add_scaled_backward c=32",       "pool_mean_backward c=32 global",
        "pixelshuffle_backward 128^2 c=16"};
    double best[2] = {1e30, 1e30};
    for (int k = 0; k < 2; k++) {
      mdc_backend *be = k ? fa : sc;
      for (int r = 0; r < 5; r++) {
        double t0 = now();
        switch (e) {
          case 0: be->layernorm_backward(be, x, n, c, g, 0, mean, rstd, dy, dx, dg, db); break;
          case 1: be->dwconv3x3_backward(be, x, 1, 256, 256, 2 * c, wt, dy, dx, dg, db); break;
          case 2: be->simplegate_backward(be, x, n, c, dy, dx); break;
          case 3: be->mask_pixels(be, x, m, n, 2 * c, dx); break;
          case 4: (void)be->l1_loss(be, x, dy, n * 3, 1.0f, dx); break;
          case 5: be->adamw_step(be, dx, dy, pm, pv, n * 2 * c, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 1); break;
          case 6: be->conv3x3_backward(be, x3, 1, 256, 256, 3, w3, 16, dy, NULL, dw3, db3); break;
          case 7: be->conv3x3_backward(be, x, 1, 256, 256, 16, w3, 3, dy3, dx, dw3, db3); break;
          case 8: be->conv2x2s2_backward(be, x, 256, 256, 16, w3, 32, dy, dx, dw3, db3); break;
          case 9: be->scale_channels_backward(be, x, g, 0, n, c, dy, dx, db); break;
          case 10: be->add_scaled_backward(be, x, g, n, c, dy, dx, db); break;
          case 11: be->pool_mean_backward(be, 1, 256, 256, c, 0, dy, dx); break;
          case 12: be->pixelshuffle_backward(be, 128, 128, 16, dy, dx); break;
        }
        double t = now() - t0;
        if (t < best[k]) best[k] = t;
      }
    }
    printf("%-34s %10.2f %10.2f\n", names[e], best[0] * 1e3, best[1] * 1e3);
  }
  free(x), free(dy), free(dx), free(g), free(b), free(wt), free(mean), free(rstd), free(y);
  free(dg), free(db), free(m), free(pm), free(pv), free(x3), free(w3), free(dy3), free(dw3), free(db3);
  mdc_backend_free(sc), mdc_backend_free(fa), mdc_backend_free(fa1);
  return 0;
}

/* --------------------------------------------------------------- main */

static int has_training_entries(const mdc_backend *be) {
  return be->mask_pixels && be->conv1x1_backward && be->conv3x3_backward &&
         be->dwconv3x3_backward && be->conv2x2s2_backward && be->layernorm_backward &&
         be->simplegate_backward && be->pool_mean_backward && be->scale_channels_backward &&
         be->add_scaled_backward && be->pixelshuffle_backward && be->l1_loss && be->adamw_step;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--bench") == 0) return bench();
  backends B = {0};
  B.ref = mdc_backend_cpu_scalar_new(3);
  B.ref1 = mdc_backend_cpu_scalar_new(1);
  check(B.ref && B.ref1, "scalar backend created");
  if (!B.ref || !B.ref1) {
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return 1;
  }
  check(has_training_entries(B.ref), "scalar backend has every training entry");

  test_gradients(B.ref);
  test_batch_vs_images(B.ref);
  test_nafblock_gradients(B.ref);
  test_l1(B.ref, NULL);
  test_adamw(B.ref, NULL);

  if (!mdc_cpu_has_avx2_fma()) {
    printf("no AVX2+FMA on this CPU: fast-path comparisons skipped\n");
  } else {
    int ok = 1;
    for (int t = 0; t < 3; t++) ok &= (B.fast[t] = mdc_backend_cpu_avx2_new(t + 1)) != NULL;
    check(ok, "avx2 backends created");
    if (ok) {
      check(has_training_entries(B.fast[0]), "avx2 backend has every training entry");
      test_gradients(B.fast[1]);
      test_batch_vs_images(B.fast[1]);
      test_nafblock_gradients(B.fast[1]);
      test_avx2_vs_scalar(&B);
      test_avx2_nafblock(&B);
      test_avx2_accumulate(B.fast[1]);
      test_l1(B.fast[0], &B);
      test_adamw(B.fast[0], &B);
    }
    for (int t = 0; t < 3; t++) mdc_backend_free(B.fast[t]);
  }
  mdc_backend_free(B.ref);
  mdc_backend_free(B.ref1);
  printf("gradient checks: worst error %.3g of the tolerance (%g |fd| + %g)\n", gc_worst, GC_RTOL,
         GC_ATOL);
  printf("%d passed, %d failed\n", n_passed, n_failed);
  return n_failed ? 1 : 0;
}
