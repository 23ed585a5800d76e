/* test_kernels.c - the CPU kernels: the scalar reference on hand-computed
 * cases, a float64 NAFBlock against the scalar composition, every AVX2
 * entry against the scalar one on random inputs of awkward sizes and
 * thread counts, and batched calls (several images, per-image rows of
 * LayerNorm's g / b and of scale_channels' s) against one call per image.
 *
 * Tolerance: max |got - ref| <= TOL * (1 + max |ref|), TOL = 1e-4 (the
 * AVX2 kernels use FMA and other summation orders).  Results for 1, 2 and 3
 * threads must be bit-identical (both backends fix their task split by the
 * shapes alone). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "nafblock_params.h"
#include "cpu/threadpool.h"

#define TOL 1e-4

static int n_passed, n_failed;

static void check(int ok, const char *what) {
  if (ok) {
    n_passed++;
  } else {
    n_failed++;
    printf("FAIL: %s\n", what);
  }
}

/* ----------------------------------------------------------- helpers */

static unsigned long long rng_state = 0x9E3779B97F4A7C15ull;

static float frand(void) { /* uniform in [-1, 1) */
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (float)((rng_state >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static float *rand_buf(size_t n, float scale) {
  float *p = malloc((n ? n : 1) * sizeof(float));
  for (size_t i = 0; i < n; i++) p[i] = frand() * scale;
  return p;
}

/* Output buffers start as NaN so unwritten elements show up. */
static float *nan_buf(size_t n) {
  float *p = malloc((n ? n : 1) * sizeof(float));
  for (size_t i = 0; i < n; i++) p[i] = NAN;
  return p;
}

static int close_enough(const float *got, const float *ref, size_t n, double *err_out) {
  double maxref = 0.0, err = 0.0;
  for (size_t i = 0; i < n; i++) {
    if (fabs(ref[i]) > maxref) maxref = fabs(ref[i]);
    double e = fabs((double)got[i] - ref[i]);
    if (!(e <= err)) err = isnan(e) ? INFINITY : e; /* NaN counts as failure */
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

static void check_exact(const float *got, const float *ref, size_t n, const char *what) {
  check(memcmp(got, ref, n * sizeof(float)) == 0, what);
}

static void check_near(double got, double want, const char *what) {
  int ok = fabs(got - want) <= 1e-5 * (1.0 + fabs(want));
  if (!ok) printf("  %s: got %.9g want %.9g\n", what, got, want);
  check(ok, what);
}

/* --------------------------------------------- scalar, hand-computed */

static void test_scalar_hand(mdc_backend *s) {
  { /* conv1x1: y = b + x . w, w[cin][cout] */
    const float x[] = {1, 2, 3, 4}, w[] = {1, 0, 2, 0, 1, -1}, b[] = {0.5f, 0, 1};
    const float want[] = {1.5f, 2, 1, 3.5f, 4, 3};
    float y[6];
    s->conv1x1(s, x, 2, 2, w, b, 3, y);
    check_exact(y, want, 6, "scalar conv1x1 hand");
    const float want_nb[] = {1, 2, 0, 3, 4, 2};
    s->conv1x1(s, x, 2, 2, w, NULL, 3, y);
    check_exact(y, want_nb, 6, "scalar conv1x1 no bias");
  }
  { /* pixelshuffle: x channel c*4 + dy*2 + dx -> y(2i+dy, 2j+dx, c) */
    float x[8], skip[8], y[8];
    for (int i = 0; i < 8; i++) x[i] = (float)i, skip[i] = 100.0f * (i + 1);
    s->pixelshuffle_add(s, x, 1, 1, 2, NULL, y);
    int ok = 1;
    for (int dy = 0; dy < 2; dy++)
      for (int dx = 0; dx < 2; dx++)
        for (int c = 0; c < 2; c++) ok &= y[(dy * 2 + dx) * 2 + c] == x[c * 4 + dy * 2 + dx];
    check(ok, "scalar pixelshuffle channel order");
    s->pixelshuffle_add(s, x, 1, 1, 2, skip, y);
    ok = 1;
    for (int dy = 0; dy < 2; dy++)
      for (int dx = 0; dx < 2; dx++)
        for (int c = 0; c < 2; c++) {
          int o = (dy * 2 + dx) * 2 + c;
          ok &= y[o] == x[c * 4 + dy * 2 + dx] + skip[o];
        }
    check(ok, "scalar pixelshuffle + skip");
  }
  { /* clamped box on a 1-D ramp 0..6, along w and along h */
    const float ramp[7] = {0, 1, 2, 3, 4, 5, 6};
    const float want3[7] = {1, 1, 2, 3, 4, 5, 5};
    const float want4[7] = {1.5f, 1.5f, 1.5f, 2.5f, 3.5f, 4.5f, 4.5f};
    float y[7];
    s->pool_mean(s, ramp, 1, 1, 7, 1, 3, y);
    check_exact(y, want3, 7, "scalar box window 3 on a row");
    s->pool_mean(s, ramp, 1, 7, 1, 1, 3, y);
    check_exact(y, want3, 7, "scalar box window 3 on a column");
    s->pool_mean(s, ramp, 1, 1, 7, 1, 4, y);
    check_exact(y, want4, 7, "scalar box window 4 (even)");
    s->pool_mean(s, ramp, 1, 1, 7, 1, 1, y);
    check_exact(y, ramp, 7, "scalar box window 1 = identity");
    s->pool_mean(s, ramp, 1, 1, 7, 1, 7, y);
    check_near(y[0], 3.0, "scalar pool window = size is global");
    s->pool_mean(s, ramp, 1, 1, 7, 1, 0, y);
    check_near(y[0], 3.0, "scalar pool window 0 is global");
    /* 2-D: 2 x 3 map, window 2: rows span the axis, columns clamp */
    const float m[6] = {0, 1, 2, 10, 11, 12};
    const float want2[6] = {5.5f, 5.5f, 6.5f, 5.5f, 5.5f, 6.5f};
    float y2[6];
    s->pool_mean(s, m, 1, 2, 3, 1, 2, y2);
    check_exact(y2, want2, 6, "scalar box 2-D window 2 on 2x3");
  }
  { /* layernorm: biased variance */
    const float x[4] = {1, 2, 3, 4}, g[4] = {1, 1, 2, 1}, b[4] = {0, 0, 0, 1};
    float y[4], mean, rstd;
    s->layernorm(s, x, 1, 4, g, b, 0, 0.0f, y, &mean, &rstd);
    double r = 1.0 / sqrt(1.25);
    check_near(mean, 2.5, "scalar layernorm mean");
    check_near(rstd, r, "scalar layernorm rstd");
    check_near(y[0], -1.5 * r, "scalar layernorm y0");
    check_near(y[2], 2 * 0.5 * r, "scalar layernorm y2 (gain)");
    check_near(y[3], 1.5 * r + 1, "scalar layernorm y3 (bias)");
  }
  { /* dwconv3x3 of ones with unit weights counts the taps inside */
    float x[9], w[9], y[9];
    for (int i = 0; i < 9; i++) x[i] = 1, w[i] = 1;
    const float want[9] = {4, 6, 4, 6, 9, 6, 4, 6, 4};
    s->dwconv3x3(s, x, 1, 3, 3, 1, w, NULL, y);
    check_exact(y, want, 9, "scalar dwconv3x3 zero padding");
    /* tap order: w[ky][kx] multiplies x(y+ky-1, x+kx-1) */
    float xd[9] = {0}, wd[9];
    xd[0] = 1; /* top-left pixel */
    for (int i = 0; i < 9; i++) wd[i] = (float)i;
    s->dwconv3x3(s, xd, 1, 3, 3, 1, wd, NULL, y);
    check(y[4] == 0 && y[0] == 4 && y[1] == 3 && y[3] == 1, "scalar dwconv3x3 tap order");
    /* conv3x3 with one channel equals dwconv3x3 */
    float y3[9];
    s->conv3x3(s, xd, 1, 3, 3, 1, wd, NULL, 1, y3);
    check_exact(y3, y, 9, "scalar conv3x3 = dwconv3x3 for c = 1");
  }
  { /* conv2x2s2: w[ky][kx][cin][cout] */
    const float x[4] = {1, 2, 3, 4}, w[4] = {1, 2, 3, 4}, b[1] = {0.5f};
    float y[1];
    s->conv2x2s2(s, x, 2, 2, 1, w, b, 1, y);
    check_near(y[0], 30.5, "scalar conv2x2s2 hand");
  }
  { /* elementwise */
    const float x[4] = {1, 2, 3, 4}, sv[2] = {10, 100}, b[4] = {1, 1, 2, 2};
    float y[4];
    s->simplegate(s, x, 1, 2, y);
    check(y[0] == 3 && y[1] == 8, "scalar simplegate");
    s->scale_channels(s, x, sv, 0, 2, 2, y);
    check(y[0] == 10 && y[1] == 200 && y[2] == 30 && y[3] == 400, "scalar scale_channels vector");
    s->scale_channels(s, x, b, 1, 2, 2, y);
    check(y[0] == 1 && y[1] == 2 && y[2] == 6 && y[3] == 8, "scalar scale_channels per pixel");
    s->add_scaled(s, x, b, sv, 2, 2, y);
    check(y[0] == 11 && y[1] == 102 && y[2] == 23 && y[3] == 204, "scalar add_scaled");
    s->add_scaled(s, x, b, NULL, 2, 2, y);
    check(y[0] == 2 && y[1] == 3 && y[2] == 5 && y[3] == 6, "scalar add_scaled plain");
  }
  { /* a batch: an image border is a zero padding, never the next image */
    float x[2 * 3] = {1, 2, 3, 10, 20, 30}, w9[9], y[6];
    for (int t = 0; t < 9; t++) w9[t] = 1.0f;
    s->dwconv3x3(s, x, 2, 3, 1, 1, w9, NULL, y); /* two 3 x 1 columns */
    const float want[6] = {3, 6, 5, 30, 60, 50};
    check_exact(y, want, 6, "scalar dwconv3x3 batch 2: no taps across images");
    s->conv3x3(s, x, 2, 3, 1, 1, w9, NULL, 1, y);
    check_exact(y, want, 6, "scalar conv3x3 batch 2: no taps across images");
    float pm[2];
    s->pool_mean(s, x, 2, 3, 1, 1, 0, pm);
    check(pm[0] == 2.0f && pm[1] == 20.0f, "scalar pool_mean batch 2: one mean per image");
    const float s2[2] = {2, -1}, g2[4] = {1, 1, 2, 2}, b2[4] = {0, 0, 5, 5};
    s->scale_channels(s, x, s2, 3, 6, 1, y);
    const float want_s[6] = {2, 4, 6, -10, -20, -30};
    check_exact(y, want_s, 6, "scalar scale_channels s_every 3: one row per image");
    const float xl[4] = {1, 3, 1, 3}; /* two pixels of 2 channels: (x - mean) rstd = -1, 1 */
    float yl[4];
    s->layernorm(s, xl, 2, 2, g2, b2, 1, 0.0f, yl, NULL, NULL);
    check(yl[0] == -1 && yl[1] == 1 && yl[2] == 3 && yl[3] == 7,
          "scalar layernorm gb_every 1: one g / b row per pixel");
  }
}

/* ------------------------------------------ NAFBlock params, float64 */

typedef struct naf_owned {
  mdc_nafblock_params p;
  float *buf[TEST_NAFBLOCK_NUM_PARAMS];
} naf_owned;

static void naf_make(naf_owned *o, int c) {
  float sc = 1.0f / sqrtf((float)c);
  memset(o, 0, sizeof *o);
  o->p.c = c;
  int k = 0;
#define P(field, n, scale) o->p.field = o->buf[k++] = rand_buf((size_t)(n), scale);
  TEST_NAFBLOCK_PARAMS(P, c, sc)
#undef P
}

static void naf_free(naf_owned *o) {
  for (int i = 0; i < 18; i++) free(o->buf[i]);
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

/* docs/network.md's NAFBlock written out in double, independent of the
 * backends. */
static void naf_ref64(const mdc_nafblock_params *p, const float *x, int h, int w, double eps,
                      int window, float *out) {
  int c = p->c;
  size_t n = (size_t)h * w;
  double *a = calloc(n * 2 * c, sizeof(double)), *d = calloc(n * 2 * c, sizeof(double));
  double *t = calloc(n * c, sizeof(double)), *pool = calloc(n * c, sizeof(double));
  double *y = calloc(n * c, sizeof(double)), *u = calloc(n * c, sizeof(double));
  double *l = calloc(c, sizeof(double)), *s = calloc(c, sizeof(double));
  for (size_t i = 0; i < n; i++) { /* LN1, conv1 */
    const float *xi = x + i * c;
    double mu = 0, var = 0;
    for (int k = 0; k < c; k++) mu += xi[k];
    mu /= c;
    for (int k = 0; k < c; k++) var += (xi[k] - mu) * (xi[k] - mu);
    var /= c;
    for (int k = 0; k < c; k++) l[k] = (xi[k] - mu) / sqrt(var + eps) * p->norm1_w[k] + p->norm1_b[k];
    for (int o = 0; o < 2 * c; o++) {
      double acc = p->conv1_b[o];
      for (int k = 0; k < c; k++) acc += l[k] * p->conv1_w[k * 2 * c + o];
      a[i * 2 * c + o] = acc;
    }
  }
  for (int py = 0; py < h; py++) /* conv2 */
    for (int px = 0; px < w; px++)
      for (int o = 0; o < 2 * c; o++) {
        double acc = p->conv2_b[o];
        for (int ky = 0; ky < 3; ky++)
          for (int kx = 0; kx < 3; kx++) {
            int sy = py + ky - 1, sx = px + kx - 1;
            if (sy < 0 || sy >= h || sx < 0 || sx >= w) continue;
            acc += a[((size_t)sy * w + sx) * 2 * c + o] * p->conv2_w[(ky * 3 + kx) * 2 * c + o];
          }
        d[((size_t)py * w + px) * 2 * c + o] = acc;
      }
  for (size_t i = 0; i < n; i++) /* gate */
    for (int k = 0; k < c; k++) t[i * c + k] = d[i * 2 * c + k] * d[i * 2 * c + c + k];
  for (int py = 0; py < h; py++) /* pool (global = a window covering all) */
    for (int px = 0; px < w; px++) {
      int y0, bh, x0, bw, win = window <= 0 ? (h > w ? h : w) : window;
      box_of(py, h, win, &y0, &bh);
      box_of(px, w, win, &x0, &bw);
      for (int k = 0; k < c; k++) {
        double acc = 0;
        for (int sy = y0; sy < y0 + bh; sy++)
          for (int sx = x0; sx < x0 + bw; sx++) acc += t[((size_t)sy * w + sx) * c + k];
        pool[((size_t)py * w + px) * c + k] = acc / (bh * bw);
      }
    }
  for (size_t i = 0; i < n; i++) { /* sca, t * s, conv3, y */
    for (int o = 0; o < c; o++) {
      double acc = p->sca_b[o];
      for (int k = 0; k < c; k++) acc += pool[i * c + k] * p->sca_w[k * c + o];
      s[o] = acc;
    }
    for (int o = 0; o < c; o++) {
      double acc = p->conv3_b[o];
      for (int k = 0; k < c; k++) acc += t[i * c + k] * s[k] * p->conv3_w[k * c + o];
      y[i * c + o] = x[i * c + o] + p->beta[o] * acc;
    }
  }
  for (size_t i = 0; i < n; i++) { /* LN2, conv4, gate, conv5, out */
    double mu = 0, var = 0;
    for (int k = 0; k < c; k++) mu += y[i * c + k];
    mu /= c;
    for (int k = 0; k < c; k++) var += (y[i * c + k] - mu) * (y[i * c + k] - mu);
    var /= c;
    for (int k = 0; k < c; k++)
      l[k] = (y[i * c + k] - mu) / sqrt(var + eps) * p->norm2_w[k] + p->norm2_b[k];
    for (int o = 0; o < c; o++) {
      double g0 = p->conv4_b[o], g1 = p->conv4_b[c + o];
      for (int k = 0; k < c; k++) {
        g0 += l[k] * p->conv4_w[k * 2 * c + o];
        g1 += l[k] * p->conv4_w[k * 2 * c + c + o];
      }
      u[i * c + o] = g0 * g1;
    }
    for (int o = 0; o < c; o++) {
      double acc = p->conv5_b[o];
      for (int k = 0; k < c; k++) acc += u[i * c + k] * p->conv5_w[k * c + o];
      out[i * c + o] = (float)(y[i * c + o] + p->gamma[o] * acc);
    }
  }
  free(a), free(d), free(t), free(pool), free(y), free(u), free(l), free(s);
}

/* Runs nafblock_forward with a deliberately misaligned, NaN-filled scratch. */
static float *naf_run(mdc_backend *be, const mdc_nafblock_params *p, const float *x, int h, int w,
                      int window) {
  size_t bytes = be->nafblock_scratch_size(be, p->c, h, w, window);
  unsigned char *scr = malloc(bytes + 4);
  memset(scr, 0xFF, bytes + 4);
  float *y = nan_buf((size_t)h * w * p->c);
  be->nafblock_forward(be, p, x, h, w, 1e-6f, window, y, scr + 4);
  free(scr);
  return y;
}

static void test_scalar_nafblock(mdc_backend *s) {
  static const int shapes[][3] = {{1, 1, 3}, {5, 7, 4}, {7, 13, 5}, {9, 4, 16}};
  static const int windows[] = {0, 1, 3, 4, 100};
  char what[128];
  for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
    for (size_t k = 0; k < sizeof windows / sizeof *windows; k++) {
      int h = shapes[i][0], w = shapes[i][1], c = shapes[i][2], win = windows[k];
      naf_owned o;
      naf_make(&o, c);
      float *x = rand_buf((size_t)h * w * c, 1.0f), *ref = nan_buf((size_t)h * w * c);
      naf_ref64(&o.p, x, h, w, 1e-6, win, ref);
      float *got = naf_run(s, &o.p, x, h, w, win);
      snprintf(what, sizeof what, "scalar nafblock vs float64 %dx%d c=%d window=%d", h, w, c, win);
      check_close(got, ref, (size_t)h * w * c, what);
      free(x), free(ref), free(got);
      naf_free(&o);
    }
}

/* ------------------------------------------- AVX2 against the scalar */

typedef struct backends {
  mdc_backend *ref;    /* scalar, 3 threads */
  mdc_backend *ref1;   /* scalar, 1 thread */
  mdc_backend *fast[3]; /* AVX2 with 1, 2, 3 threads */
} backends;

/* Runs the same call on the reference and on each AVX2 backend; compares
 * with the tolerance and the AVX2 results with each other bit for bit. */
#define COMPARE(B, OUTN, WHAT, CALL)                                                 \
  do {                                                                               \
    size_t n_ = (OUTN);                                                              \
    float *ref_ = nan_buf(n_), *got_[3];                                             \
    {                                                                                \
      mdc_backend *be = (B)->ref;                                                    \
      float *out = ref_;                                                             \
      CALL;                                                                          \
    }                                                                                \
    for (int t_ = 0; t_ < 3; t_++) {                                                 \
      mdc_backend *be = (B)->fast[t_];                                               \
      float *out = got_[t_] = nan_buf(n_);                                           \
      CALL;                                                                          \
    }                                                                                \
    check_close(got_[0], ref_, n_, WHAT);                                            \
    int same_ = memcmp(got_[0], got_[1], n_ * 4) == 0 && memcmp(got_[0], got_[2], n_ * 4) == 0; \
    if (!same_) printf("  %s: thread counts differ\n", WHAT);                        \
    check(same_, WHAT);                                                              \
    free(ref_), free(got_[0]), free(got_[1]), free(got_[2]);                         \
  } while (0)

static const int sizes[][2] = {{1, 1}, {7, 13}, {1, 33}, {65, 3}, {4, 6}};
#define NSIZES (sizeof sizes / sizeof *sizes)
static const int chans[] = {1, 3, 5, 7, 12, 16, 17, 32, 33, 64};
#define NCHANS (sizeof chans / sizeof *chans)

static void test_conv1x1(backends *B) {
  static const size_t ns[] = {1, 5, 6, 7, 37};
  char what[128];
  for (size_t a = 0; a < NCHANS; a++)
    for (size_t b = 0; b < NCHANS; b++) {
      int cin = chans[a], cout = chans[b];
      size_t n = ns[(a + b) % 5];
      float *x = rand_buf(n * cin, 1), *w = rand_buf((size_t)cin * cout, 1), *bias = rand_buf(cout, 1);
      snprintf(what, sizeof what, "conv1x1 n=%zu %d->%d", n, cin, cout);
      COMPARE(B, n * cout, what, be->conv1x1(be, x, n, cin, w, (a + b) % 3 ? bias : NULL, cout, out));
      free(x), free(w), free(bias);
    }
  static const int big[][2] = {{16, 32}, {32, 64}, {64, 32}, {128, 256}, {48, 40}};
  for (size_t i = 0; i < sizeof big / sizeof *big; i++) {
    int cin = big[i][0], cout = big[i][1];
    size_t n = 1000 + 3 * i;
    float *x = rand_buf(n * cin, 1), *w = rand_buf((size_t)cin * cout, 1), *bias = rand_buf(cout, 1);
    snprintf(what, sizeof what, "conv1x1 n=%zu %d->%d", n, cin, cout);
    COMPARE(B, n * cout, what, be->conv1x1(be, x, n, cin, w, bias, cout, out));
    free(x), free(w), free(bias);
  }
}

static void test_conv3x3_2x2(backends *B) {
  static const int io[][2] = {{3, 16}, {16, 3}, {5, 7}, {17, 33}, {16, 16}, {1, 1},
                              {17, 3}, {9, 1}, {12, 2}, {33, 4}, {8, 3}, {5, 2}};
  char what[128];
  for (size_t s = 0; s < NSIZES; s++)
    for (size_t k = 0; k < sizeof io / sizeof *io; k++) {
      int h = sizes[s][0], w = sizes[s][1], cin = io[k][0], cout = io[k][1];
      float *x = rand_buf((size_t)h * w * cin, 1), *wt = rand_buf((size_t)9 * cin * cout, 1);
      float *bias = rand_buf(cout, 1);
      snprintf(what, sizeof what, "conv3x3 %dx%d %d->%d", h, w, cin, cout);
      COMPARE(B, (size_t)h * w * cout, what, be->conv3x3(be, x, 1, h, w, cin, wt, k % 2 ? bias : NULL, cout, out));
      int he = h + (h & 1), we = w + (w & 1); /* conv2x2s2 needs even sizes */
      float *xe = rand_buf((size_t)he * we * cin, 1);
      snprintf(what, sizeof what, "conv2x2s2 %dx%d %d->%d", he, we, cin, cout);
      COMPARE(B, (size_t)(he / 2) * (we / 2) * cout, what,
              be->conv2x2s2(be, xe, he, we, cin, wt, k % 2 ? NULL : bias, cout, out));
      free(x), free(xe), free(wt), free(bias);
    }
  /* cin beyond the K chunk (1024): partial sums accumulate through y */
  int cin = 1100, cout = 5;
  float *x = rand_buf((size_t)4 * 4 * cin, 1), *wt = rand_buf((size_t)9 * cin * cout, 1);
  float *bias = rand_buf(cout, 1);
  COMPARE(B, (size_t)4 * 4 * cout, "conv3x3 4x4 1100->5",
          be->conv3x3(be, x, 1, 4, 4, cin, wt, bias, cout, out));
  COMPARE(B, (size_t)2 * 2 * cout, "conv2x2s2 4x4 1100->5",
          be->conv2x2s2(be, x, 4, 4, cin, wt, bias, cout, out));
  free(x), free(wt), free(bias);
}

static void test_pointwise(backends *B) {
  char what[128];
  for (size_t s = 0; s < NSIZES; s++)
    for (size_t k = 0; k < NCHANS; k++) {
      int h = sizes[s][0], w = sizes[s][1], c = chans[k];
      size_t n = (size_t)h * w, nc = n * c;
      float *x = rand_buf(nc * 4, 2), *x2 = rand_buf(nc, 1), *wt = rand_buf((size_t)9 * c, 1);
      float *g = rand_buf(c, 1), *b = rand_buf(c, 1), *sp = rand_buf(nc, 1);
      for (size_t i = 0; i < n; i++) x[i * c] += 3.0f; /* a nonzero mean */
      snprintf(what, sizeof what, "dwconv3x3 %dx%d c=%d", h, w, c);
      COMPARE(B, nc, what, be->dwconv3x3(be, x, 1, h, w, c, wt, k % 2 ? b : NULL, out));
      snprintf(what, sizeof what, "layernorm %dx%d c=%d", h, w, c);
      COMPARE(B, nc, what, be->layernorm(be, x, n, c, g, b, 0, 1e-6f, out, NULL, NULL));
      snprintf(what, sizeof what, "layernorm stats %dx%d c=%d", h, w, c);
      COMPARE(B, 2 * n, what, be->layernorm(be, x, n, c, g, b, 0, 1e-6f, x2, out, out + n));
      snprintf(what, sizeof what, "simplegate %dx%d c=%d", h, w, c);
      COMPARE(B, nc, what, be->simplegate(be, x, n, c, out));
      snprintf(what, sizeof what, "scale_channels vector %dx%d c=%d", h, w, c);
      COMPARE(B, nc, what, be->scale_channels(be, x, g, 0, n, c, out));
      snprintf(what, sizeof what, "scale_channels per pixel %dx%d c=%d", h, w, c);
      COMPARE(B, nc, what, be->scale_channels(be, x, sp, 1, n, c, out));
      snprintf(what, sizeof what, "add_scaled %dx%d c=%d", h, w, c);
      COMPARE(B, nc, what, be->add_scaled(be, x, x2, g, n, c, out));
      snprintf(what, sizeof what, "add_scaled plain %dx%d c=%d", h, w, c);
      COMPARE(B, nc, what, be->add_scaled(be, x, x2, NULL, n, c, out));
      snprintf(what, sizeof what, "add_scaled in place %dx%d c=%d", h, w, c);
      COMPARE(B, nc, what, (memcpy(out, x, nc * 4), be->add_scaled(be, out, x2, g, n, c, out)));
      snprintf(what, sizeof what, "pixelshuffle_add %dx%d c=%d", h, w, c);
      COMPARE(B, nc * 4, what, be->pixelshuffle_add(be, x, h, w, c, x, out));
      snprintf(what, sizeof what, "pixelshuffle %dx%d c=%d", h, w, c);
      COMPARE(B, nc * 4, what, be->pixelshuffle_add(be, x, h, w, c, NULL, out));
      free(x), free(x2), free(wt), free(g), free(b), free(sp);
    }
}

static void test_pool(backends *B) {
  static const int pool_sizes[][2] = {{1, 1}, {7, 13}, {1, 33}, {65, 3}, {16, 16}, {30, 41}};
  static const int cs[] = {1, 5, 16, 17};
  char what[128];
  for (size_t s = 0; s < sizeof pool_sizes / sizeof *pool_sizes; s++)
    for (size_t k = 0; k < sizeof cs / sizeof *cs; k++) {
      int h = pool_sizes[s][0], w = pool_sizes[s][1], c = cs[k];
      int mx = h > w ? h : w, mn = h < w ? h : w;
      int wins[] = {0, 1, 2, 3, 4, 7, mn, mx, mx + 5};
      float *x = rand_buf((size_t)h * w * c, 1);
      for (size_t i = 0; i < sizeof wins / sizeof *wins; i++) {
        int win = wins[i], global = win <= 0 || (win >= h && win >= w);
        snprintf(what, sizeof what, "pool_mean %dx%d c=%d window=%d", h, w, c, win);
        COMPARE(B, global ? (size_t)c : (size_t)h * w * c, what,
                be->pool_mean(be, x, 1, h, w, c, win, out));
      }
      free(x);
    }
}

static void test_nafblock(backends *B) {
  static const int shapes[][3] = {
      {1, 1, 16}, {7, 13, 5}, {1, 33, 3}, {65, 3, 7}, {16, 16, 16}, {12, 17, 32},
      {9, 23, 12}, {20, 20, 1}, {5, 9, 17}, {3, 140, 64}, {70, 9, 16}, {6, 6, 33},
      {10, 600, 16}, {2, 300, 32}, {17, 70, 128},
  };
  char what[160];
  for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
    int h = shapes[i][0], w = shapes[i][1], c = shapes[i][2];
    int mx = h > w ? h : w, mn = h < w ? h : w;
    int wins[] = {0, 3, 4, mn, mx, mx + 3};
    naf_owned o;
    naf_make(&o, c);
    float *x = rand_buf((size_t)h * w * c, 1.0f);
    size_t nc = (size_t)h * w * c;
    for (size_t k = 0; k < sizeof wins / sizeof *wins; k++) {
      int win = wins[k];
      float *ref = naf_run(B->ref, &o.p, x, h, w, win);
      float *ref1 = naf_run(B->ref1, &o.p, x, h, w, win);
      snprintf(what, sizeof what, "scalar nafblock 1 vs 3 threads %dx%d c=%d window=%d", h, w, c, win);
      check_exact(ref1, ref, nc, what);
      float *got[3];
      for (int t = 0; t < 3; t++) got[t] = naf_run(B->fast[t], &o.p, x, h, w, win);
      snprintf(what, sizeof what, "nafblock fused vs scalar %dx%d c=%d window=%d", h, w, c, win);
      check_close(got[0], ref, nc, what);
      snprintf(what, sizeof what, "nafblock fused 1/2/3 threads %dx%d c=%d window=%d", h, w, c, win);
      check(memcmp(got[0], got[1], nc * 4) == 0 && memcmp(got[0], got[2], nc * 4) == 0, what);
      free(ref), free(ref1), free(got[0]), free(got[1]), free(got[2]);
    }
    free(x);
    naf_free(&o);
  }
}

/* ------------------------------------------------------ batches */

/* One batched call against `batch` single-image calls on the same
 * backend: bit for bit (every output of a batch is computed as for its
 * image alone).  Images in x are `in` floats apart, in out `out`. */
#define PER_IMAGE(BE, BATCH, OUTN, WHAT, CALL_ALL, CALL_ONE)                     \
  do {                                                                          \
    size_t n_ = (OUTN);                                                         \
    float *all_ = nan_buf(n_ * (BATCH)), *one_ = nan_buf(n_ * (BATCH));         \
    {                                                                           \
      mdc_backend *be = (BE);                                                   \
      float *out = all_;                                                        \
      CALL_ALL;                                                                 \
      for (int img = 0; img < (BATCH); img++) {                                 \
        out = one_ + (size_t)img * n_;                                          \
        CALL_ONE;                                                               \
      }                                                                         \
    }                                                                           \
    char m_[192];                                                               \
    snprintf(m_, sizeof m_, "%s %s: batched = per image", (BE)->name, WHAT);    \
    check_exact(all_, one_, n_ * (BATCH), m_);                                  \
    free(all_), free(one_);                                                     \
  } while (0)

/* batch, h, w, cin, cout (cin >= 8, cout <= 4: AVX2's small-cout 3x3) */
static const int batch_shapes[][5] = {{3, 5, 7, 3, 5},  {3, 5, 7, 17, 3}, {2, 1, 1, 5, 17},
                                      {3, 7, 5, 5, 17}, {4, 6, 9, 16, 16}, {3, 2, 13, 33, 4}};

static void test_batched(backends *B) {
  char what[160];
  for (size_t i = 0; i < sizeof batch_shapes / sizeof *batch_shapes; i++) {
    const int nb = batch_shapes[i][0], h = batch_shapes[i][1], w = batch_shapes[i][2];
    const int cin = batch_shapes[i][3], cout = batch_shapes[i][4];
    const size_t hw = (size_t)h * w, n = nb * hw;
    float *x = rand_buf(n * cin, 1), *wt = rand_buf((size_t)9 * cin * cout, 1);
    float *bias = rand_buf(cout, 1), *dwt = rand_buf((size_t)9 * cin, 1), *db = rand_buf(cin, 1);
    /* rows of g, b and s: per image, or (every 4 pixels) up to n */
    float *g = rand_buf(n * cin, 1), *b = rand_buf(n * cin, 1), *sv = rand_buf(n * cin, 1);
    float *y = nan_buf(n * cin);
    for (size_t p = 0; p < n; p++) x[p * cin] += 3.0f; /* a nonzero mean */
    const int mx = h > w ? h : w, wins[] = {0, 3, mx}; /* global, windowed, global */

    if (B->fast[0]) { /* (a) AVX2 against the scalar, batched */
      snprintf(what, sizeof what, "batch %d: conv3x3 %dx%d %d->%d", nb, h, w, cin, cout);
      COMPARE(B, n * cout, what, be->conv3x3(be, x, nb, h, w, cin, wt, bias, cout, out));
      snprintf(what, sizeof what, "batch %d: dwconv3x3 %dx%d c=%d", nb, h, w, cin);
      COMPARE(B, n * cin, what, be->dwconv3x3(be, x, nb, h, w, cin, dwt, db, out));
      for (int k = 0; k < 3; k++) {
        int glob = wins[k] <= 0 || (wins[k] >= h && wins[k] >= w);
        snprintf(what, sizeof what, "batch %d: pool_mean %dx%d c=%d window=%d", nb, h, w, cin,
                 wins[k]);
        COMPARE(B, glob ? (size_t)nb * cin : n * cin, what,
                be->pool_mean(be, x, nb, h, w, cin, wins[k], out));
      }
      snprintf(what, sizeof what, "batch %d: layernorm per-image g/b %dx%d c=%d", nb, h, w, cin);
      COMPARE(B, n * cin, what, be->layernorm(be, x, n, cin, g, b, hw, 1e-6f, out, NULL, NULL));
      snprintf(what, sizeof what, "batch %d: layernorm stats per-image g/b %dx%d c=%d", nb, h, w,
               cin);
      COMPARE(B, 2 * n, what, be->layernorm(be, x, n, cin, g, b, hw, 1e-6f, y, out, out + n));
      snprintf(what, sizeof what, "layernorm g/b every 4 pixels n=%zu c=%d", n, cin);
      COMPARE(B, n * cin, what, be->layernorm(be, x, n, cin, g, b, 4, 1e-6f, out, NULL, NULL));
      snprintf(what, sizeof what, "batch %d: scale_channels per image %dx%d c=%d", nb, h, w, cin);
      COMPARE(B, n * cin, what, be->scale_channels(be, x, sv, hw, n, cin, out));
      snprintf(what, sizeof what, "scale_channels s every 4 pixels n=%zu c=%d", n, cin);
      COMPARE(B, n * cin, what, be->scale_channels(be, x, sv, 4, n, cin, out));
    }

    /* (b) batched = one call per image, both backends */
    mdc_backend *bes[2] = {B->ref, B->fast[1]};
    for (int e = 0; e < 2 && bes[e]; e++) {
      snprintf(what, sizeof what, "batch %d conv3x3 %dx%d %d->%d", nb, h, w, cin, cout);
      PER_IMAGE(bes[e], nb, hw * cout, what,
                be->conv3x3(be, x, nb, h, w, cin, wt, bias, cout, out),
                be->conv3x3(be, x + img * hw * cin, 1, h, w, cin, wt, bias, cout, out));
      snprintf(what, sizeof what, "batch %d dwconv3x3 %dx%d c=%d", nb, h, w, cin);
      PER_IMAGE(bes[e], nb, hw * cin, what, be->dwconv3x3(be, x, nb, h, w, cin, dwt, db, out),
                be->dwconv3x3(be, x + img * hw * cin, 1, h, w, cin, dwt, db, out));
      for (int k = 0; k < 3; k++) {
        int glob = wins[k] <= 0 || (wins[k] >= h && wins[k] >= w);
        snprintf(what, sizeof what, "batch %d pool_mean %dx%d c=%d window=%d", nb, h, w, cin,
                 wins[k]);
        PER_IMAGE(bes[e], nb, glob ? (size_t)cin : hw * cin, what,
                  be->pool_mean(be, x, nb, h, w, cin, wins[k], out),
                  be->pool_mean(be, x + img * hw * cin, 1, h, w, cin, wins[k], out));
      }
      snprintf(what, sizeof what, "batch %d layernorm per-image g/b %dx%d c=%d", nb, h, w, cin);
      PER_IMAGE(bes[e], nb, hw * cin, what,
                be->layernorm(be, x, n, cin, g, b, hw, 1e-6f, out, NULL, NULL),
                be->layernorm(be, x + img * hw * cin, hw, cin, g + img * cin, b + img * cin, 0,
                              1e-6f, out, NULL, NULL));
      snprintf(what, sizeof what, "batch %d scale_channels per image %dx%d c=%d", nb, h, w, cin);
      PER_IMAGE(bes[e], nb, hw * cin, what, be->scale_channels(be, x, sv, hw, n, cin, out),
                be->scale_channels(be, x + img * hw * cin, sv + img * cin, 0, hw, cin, out));
    }
    free(x), free(wt), free(bias), free(dwt), free(db), free(g), free(b), free(sv), free(y);
  }
}

/* ------------------------------------------------------ thread pool */

typedef struct pool_probe {
  int counts[1000];
  int bad_thread, threads;
  mdc_threadpool *pool;
  int nested[8];
} pool_probe;

static void probe_task(void *arg, int task, int thread) {
  pool_probe *p = arg;
  __atomic_fetch_add(&p->counts[task], 1, __ATOMIC_RELAXED);
  if (thread < 0 || thread >= p->threads) __atomic_store_n(&p->bad_thread, 1, __ATOMIC_RELAXED);
}

static void nested_inner(void *arg, int task, int thread) {
  (void)thread;
  __atomic_fetch_add(&((int *)arg)[task], 1, __ATOMIC_RELAXED);
}

static void nested_task(void *arg, int task, int thread) {
  (void)thread;
  pool_probe *p = arg;
  int inner[4] = {0};
  mdc_threadpool_parallel_for(p->pool, 4, nested_inner, inner); /* runs inline */
  p->nested[task] = inner[0] + inner[1] + inner[2] + inner[3];
}

static void test_threadpool(void) {
  char what[96];
  for (int threads = 0; threads <= 4; threads++) {
    mdc_threadpool *pool = mdc_threadpool_new(threads);
    check(pool != NULL, "threadpool created");
    if (!pool) continue;
    int size = mdc_threadpool_size(pool);
    snprintf(what, sizeof what, "threadpool size for %d", threads);
    check(threads > 0 ? size == threads : size >= 1, what);
    static const int ns[] = {0, 1, 2, 3, 17, 1000};
    for (int rep = 0; rep < 20; rep++)
      for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
        pool_probe p = {{0}, 0, size, pool, {0}};
        mdc_threadpool_parallel_for(pool, ns[k], probe_task, &p);
        int ok = !p.bad_thread;
        for (int t = 0; t < 1000; t++) ok &= p.counts[t] == (t < ns[k] ? 1 : 0);
        if (!ok || rep == 0) {
          snprintf(what, sizeof what, "threadpool %d threads: %d tasks each once", size, ns[k]);
          check(ok, what);
        }
      }
    pool_probe p = {{0}, 0, size, pool, {0}};
    mdc_threadpool_parallel_for(pool, 8, nested_task, &p);
    int ok = 1;
    for (int t = 0; t < 8; t++) ok &= p.nested[t] == 4;
    snprintf(what, sizeof what, "threadpool %d threads: nested call runs inline", size);
    check(ok, what);
    mdc_threadpool_free(pool);
  }
  mdc_threadpool_free(NULL);
}

int main(void) {
  backends B = {0};
  B.ref = mdc_backend_cpu_scalar_new(3);
  B.ref1 = mdc_backend_cpu_scalar_new(1);
  check(B.ref && B.ref1, "scalar backend created");
  if (!B.ref || !B.ref1) {
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return 1;
  }
  check(strcmp(B.ref->name, "cpu-scalar") == 0, "scalar backend name");

  test_threadpool();
  test_scalar_hand(B.ref);
  test_scalar_nafblock(B.ref);

  mdc_backend *best = mdc_backend_cpu_best_new(0);
  check(best != NULL, "best backend created");
  if (best) printf("best backend: %s\n", best->name);
  mdc_backend_free(best);

  if (!mdc_cpu_has_avx2_fma()) {
    check(mdc_backend_cpu_avx2_new(1) == NULL, "no AVX2: avx2 backend is NULL");
    printf("no AVX2+FMA on this CPU: fast-path comparisons skipped\n");
  } else {
    int ok = 1;
    for (int t = 0; t < 3; t++) ok &= (B.fast[t] = mdc_backend_cpu_avx2_new(t + 1)) != NULL;
    check(ok, "avx2 backends created");
    if (ok) {
      test_conv1x1(&B);
      test_conv3x3_2x2(&B);
      test_pointwise(&B);
      test_pool(&B);
      test_nafblock(&B);
    } else {
      for (int t = 0; t < 3; t++) mdc_backend_free(B.fast[t]), B.fast[t] = NULL;
    }
  }
  test_batched(&B); /* the scalar alone without AVX2 */
  for (int t = 0; t < 3; t++) mdc_backend_free(B.fast[t]);
  mdc_backend_free(B.ref);
  mdc_backend_free(B.ref1);
  printf("%d passed, %d failed\n", n_passed, n_failed);
  return n_failed ? 1 : 0;
}
