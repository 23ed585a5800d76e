/* scalar.c - the reference CPU backend: plain loops, the oracle of
 * tests/test_kernels.c.
 *
 * Every output is accumulated on its own in a fixed order (the bias first,
 * then the inputs in index order), so results do not depend on how the
 * work is split over threads.  Statistics (LayerNorm, channel means) are
 * accumulated in double.  nafblock_forward composes the entries exactly as
 * docs/network.md's NAFBlock.  In a batch every output is the same bits as
 * in a call on its image alone; tasks run over the rows of all images, so
 * that the pool stays busy. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"
#include "scalar_backward.h"

/* ------------------------------------------------------------ helpers */

/* Splits [0, n) into about n / grain tasks (at most 4096). */
static int range_tasks(size_t n, size_t grain) {
  size_t t = (n + grain - 1) / grain;
  if (t > 4096) t = 4096;
  return t < 1 ? 1 : (int)t;
}

static void range_of(size_t n, int tasks, int t, size_t *lo, size_t *hi) {
  *lo = n * (size_t)t / (size_t)tasks;
  *hi = n * (size_t)(t + 1) / (size_t)tasks;
}

static mdc_threadpool *pool_of(mdc_backend *be) { return mdc_cpu_ctx_of(be)->pool; }

/* ------------------------------------------------------------ conv1x1 */

typedef struct conv1x1_args {
  const float *x, *w, *b;
  float *y;
  size_t n;
  int cin, cout, tasks;
} conv1x1_args;

static void conv1x1_task(void *arg, int task, int thread) {
  (void)thread;
  const conv1x1_args *a = arg;
  size_t lo, hi;
  range_of(a->n, a->tasks, task, &lo, &hi);
  for (size_t i = lo; i < hi; i++) {
    const float *xi = a->x + i * a->cin;
    float *yi = a->y + i * a->cout;
    for (int o = 0; o < a->cout; o++) yi[o] = a->b ? a->b[o] : 0.0f;
    for (int k = 0; k < a->cin; k++) {
      float xv = xi[k];
      const float *wk = a->w + (size_t)k * a->cout;
      for (int o = 0; o < a->cout; o++) yi[o] += xv * wk[o];
    }
  }
}

static void scalar_conv1x1(mdc_backend *be, const float *x, size_t n, int cin, const float *w,
                           const float *b, int cout, float *y) {
  conv1x1_args a = {x, w, b, y, n, cin, cout, 0};
  a.tasks = range_tasks(n, 64);
  mdc_threadpool_parallel_for(pool_of(be), a.tasks, conv1x1_task, &a);
}

/* ------------------------------------------------- conv3x3 / conv2x2s2 */

typedef struct convk_args {
  const float *x, *w, *b;
  float *y;
  int h, w_, cin, cout;
} convk_args;

/* One output row of the batch: row `row` of all batch * h. */
static void conv3x3_task(void *arg, int row, int thread) {
  (void)thread;
  const convk_args *a = arg;
  const int py = row % a->h;
  const float *x = a->x + (size_t)(row / a->h) * a->h * a->w_ * a->cin; /* its image */
  for (int px = 0; px < a->w_; px++) {
    float *yo = a->y + ((size_t)row * a->w_ + px) * a->cout;
    for (int o = 0; o < a->cout; o++) yo[o] = a->b ? a->b[o] : 0.0f;
    for (int ky = 0; ky < 3; ky++) {
      int sy = py + ky - 1;
      if (sy < 0 || sy >= a->h) continue;
      for (int kx = 0; kx < 3; kx++) {
        int sx = px + kx - 1;
        if (sx < 0 || sx >= a->w_) continue;
        const float *xi = x + ((size_t)sy * a->w_ + sx) * a->cin;
        const float *wt = a->w + (size_t)(ky * 3 + kx) * a->cin * a->cout;
        for (int k = 0; k < a->cin; k++)
          for (int o = 0; o < a->cout; o++) yo[o] += xi[k] * wt[(size_t)k * a->cout + o];
      }
    }
  }
}

static void scalar_conv3x3(mdc_backend *be, const float *x, int batch, int h, int w, int cin,
                           const float *wt, const float *b, int cout, float *y) {
  if (batch <= 0 || h <= 0) return;
  convk_args a = {x, wt, b, y, h, w, cin, cout};
  mdc_threadpool_parallel_for(pool_of(be), batch * h, conv3x3_task, &a);
}

/* One output row of the stride-2 2x2 convolution; h, w are the input's. */
static void conv2x2s2_task(void *arg, int oy, int thread) {
  (void)thread;
  const convk_args *a = arg;
  int wo = a->w_ / 2;
  for (int ox = 0; ox < wo; ox++) {
    float *yo = a->y + ((size_t)oy * wo + ox) * a->cout;
    for (int o = 0; o < a->cout; o++) yo[o] = a->b ? a->b[o] : 0.0f;
    for (int ky = 0; ky < 2; ky++)
      for (int kx = 0; kx < 2; kx++) {
        const float *xi = a->x + ((size_t)(2 * oy + ky) * a->w_ + 2 * ox + kx) * a->cin;
        const float *wt = a->w + (size_t)(ky * 2 + kx) * a->cin * a->cout;
        for (int k = 0; k < a->cin; k++)
          for (int o = 0; o < a->cout; o++) yo[o] += xi[k] * wt[(size_t)k * a->cout + o];
      }
  }
}

static void scalar_conv2x2s2(mdc_backend *be, const float *x, int h, int w, int cin,
                             const float *wt, const float *b, int cout, float *y) {
  convk_args a = {x, wt, b, y, h, w, cin, cout};
  mdc_threadpool_parallel_for(pool_of(be), h / 2, conv2x2s2_task, &a);
}

/* ---------------------------------------------------------- dwconv3x3 */

typedef struct dw_args {
  const float *x, *w, *b;
  float *y;
  int h, w_, c;
} dw_args;

/* One output row of the batch, as conv3x3_task. */
static void dwconv3x3_task(void *arg, int row, int thread) {
  (void)thread;
  const dw_args *a = arg;
  const int py = row % a->h;
  const float *x = a->x + (size_t)(row / a->h) * a->h * a->w_ * a->c;
  for (int px = 0; px < a->w_; px++)
    for (int ch = 0; ch < a->c; ch++) {
      float acc = a->b ? a->b[ch] : 0.0f;
      for (int ky = 0; ky < 3; ky++) {
        int sy = py + ky - 1;
        if (sy < 0 || sy >= a->h) continue;
        for (int kx = 0; kx < 3; kx++) {
          int sx = px + kx - 1;
          if (sx < 0 || sx >= a->w_) continue;
          acc += x[((size_t)sy * a->w_ + sx) * a->c + ch] * a->w[(ky * 3 + kx) * a->c + ch];
        }
      }
      a->y[((size_t)row * a->w_ + px) * a->c + ch] = acc;
    }
}

static void scalar_dwconv3x3(mdc_backend *be, const float *x, int batch, int h, int w, int c,
                             const float *wt, const float *b, float *y) {
  if (batch <= 0 || h <= 0) return;
  dw_args a = {x, wt, b, y, h, w, c};
  mdc_threadpool_parallel_for(pool_of(be), batch * h, dwconv3x3_task, &a);
}

/* ---------------------------------------------------------- layernorm */

typedef struct ln_args {
  const float *x, *g, *b;
  float *y, *mean, *rstd;
  size_t n, gb_every;
  int c, tasks;
  float eps;
} ln_args;

static void layernorm_task(void *arg, int task, int thread) {
  (void)thread;
  const ln_args *a = arg;
  size_t lo, hi;
  range_of(a->n, a->tasks, task, &lo, &hi);
  for (size_t i = lo; i < hi; i++) {
    const float *xi = a->x + i * a->c;
    float *yi = a->y + i * a->c;
    double mean = 0.0, var = 0.0;
    for (int k = 0; k < a->c; k++) mean += xi[k];
    mean /= a->c;
    for (int k = 0; k < a->c; k++) var += (xi[k] - mean) * (xi[k] - mean);
    var /= a->c;
    double rstd = 1.0 / sqrt(var + a->eps);
    size_t row = a->gb_every ? i / a->gb_every * a->c : 0;
    const float *g = a->g + row, *b = a->b + row;
    for (int k = 0; k < a->c; k++) yi[k] = (float)((xi[k] - mean) * rstd * g[k] + b[k]);
    if (a->mean) a->mean[i] = (float)mean;
    if (a->rstd) a->rstd[i] = (float)rstd;
  }
}

static void scalar_layernorm(mdc_backend *be, const float *x, size_t n, int c, const float *g,
                             const float *b, size_t gb_every, float eps, float *y, float *mean,
                             float *rstd) {
  ln_args a = {x, g, b, y, mean, rstd, n, gb_every, c, 0, eps};
  a.tasks = range_tasks(n, 256);
  mdc_threadpool_parallel_for(pool_of(be), a.tasks, layernorm_task, &a);
}

/* ------------------------------------------------- elementwise entries */

typedef struct ew_args {
  const float *x, *x2, *s;
  float *y;
  size_t n, s_every;
  int c, tasks;
} ew_args;

static void simplegate_task(void *arg, int task, int thread) {
  (void)thread;
  const ew_args *a = arg;
  size_t lo, hi;
  range_of(a->n, a->tasks, task, &lo, &hi);
  for (size_t i = lo; i < hi; i++)
    for (int k = 0; k < a->c; k++)
      a->y[i * a->c + k] = a->x[i * 2 * a->c + k] * a->x[i * 2 * a->c + a->c + k];
}

static void scalar_simplegate(mdc_backend *be, const float *x, size_t n, int c, float *y) {
  ew_args a = {x, NULL, NULL, y, n, 0, c, 0};
  a.tasks = range_tasks(n, 1024);
  mdc_threadpool_parallel_for(pool_of(be), a.tasks, simplegate_task, &a);
}

static void scale_channels_task(void *arg, int task, int thread) {
  (void)thread;
  const ew_args *a = arg;
  size_t lo, hi;
  range_of(a->n, a->tasks, task, &lo, &hi);
  for (size_t i = lo; i < hi; i++) {
    const float *s = a->s_every ? a->s + i / a->s_every * a->c : a->s;
    for (int k = 0; k < a->c; k++) a->y[i * a->c + k] = a->x[i * a->c + k] * s[k];
  }
}

static void scalar_scale_channels(mdc_backend *be, const float *x, const float *s,
                                  size_t s_every, size_t n, int c, float *y) {
  ew_args a = {x, NULL, s, y, n, s_every, c, 0};
  a.tasks = range_tasks(n, 1024);
  mdc_threadpool_parallel_for(pool_of(be), a.tasks, scale_channels_task, &a);
}

/* y may alias a (the NAFBlock adds in place). */
static void add_scaled_task(void *arg, int task, int thread) {
  (void)thread;
  const ew_args *a = arg;
  size_t lo, hi;
  range_of(a->n, a->tasks, task, &lo, &hi);
  for (size_t i = lo; i < hi; i++)
    for (int k = 0; k < a->c; k++) {
      size_t j = i * a->c + k;
      a->y[j] = a->s ? a->x[j] + a->s[k] * a->x2[j] : a->x[j] + a->x2[j];
    }
}

static void scalar_add_scaled(mdc_backend *be, const float *a_, const float *b, const float *s,
                              size_t n, int c, float *y) {
  ew_args a = {a_, b, s, y, n, 0, c, 0};
  a.tasks = range_tasks(n, 1024);
  mdc_threadpool_parallel_for(pool_of(be), a.tasks, add_scaled_task, &a);
}

typedef struct ps_args {
  const float *x, *skip;
  float *y;
  int h, w, c;
} ps_args;

static void pixelshuffle_add_task(void *arg, int i, int thread) {
  (void)thread;
  const ps_args *a = arg;
  for (int dy = 0; dy < 2; dy++)
    for (int j = 0; j < a->w; j++)
      for (int dx = 0; dx < 2; dx++) {
        size_t o = ((size_t)(2 * i + dy) * (2 * a->w) + 2 * j + dx) * a->c;
        const float *xi = a->x + ((size_t)i * a->w + j) * 4 * a->c;
        for (int k = 0; k < a->c; k++)
          a->y[o + k] = xi[k * 4 + dy * 2 + dx] + (a->skip ? a->skip[o + k] : 0.0f);
      }
}

static void scalar_pixelshuffle_add(mdc_backend *be, const float *x, int h, int w, int c,
                                    const float *skip, float *y) {
  ps_args a = {x, skip, y, h, w, c};
  mdc_threadpool_parallel_for(pool_of(be), h, pixelshuffle_add_task, &a);
}

/* ---------------------------------------------------------- pool_mean */

typedef struct pool_args {
  const float *x;
  float *y;
  double *rows; /* windowed: threads x w x c column sums, or NULL */
  int h, w, c, window, tasks; /* global: tasks per image */
} pool_args;

/* Global: per image, one task per channel range, pixels summed in order. */
static void pool_global_task(void *arg, int task, int thread) {
  (void)thread;
  const pool_args *a = arg;
  size_t lo, hi, n = (size_t)a->h * a->w, img = (size_t)(task / a->tasks);
  range_of((size_t)a->c, a->tasks, task % a->tasks, &lo, &hi);
  const float *x = a->x + img * n * a->c;
  for (size_t k = lo; k < hi; k++) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += x[i * a->c + k];
    a->y[img * a->c + k] = (float)(s / (double)n);
  }
}

/* Windowed, one output row of the batch.  The box sum is sum over box
 * columns of (sum over box rows), both in order; with a row buffer the
 * inner sums are shared between pixels, without one they are recomputed -
 * same result. */
static void pool_window_task(void *arg, int row, int thread) {
  const pool_args *a = arg;
  const int py = row % a->h;
  const size_t base = (size_t)(row / a->h) * a->h * a->w * a->c; /* its image */
  const float *x = a->x + base;
  float *y = a->y + base;
  int y0, bh;
  mdc_pool_box(py, a->h, a->window, &y0, &bh);
  double *cs = a->rows ? a->rows + (size_t)thread * a->w * a->c : NULL;
  if (cs)
    for (int sx = 0; sx < a->w; sx++)
      for (int k = 0; k < a->c; k++) {
        double s = 0.0;
        for (int sy = y0; sy < y0 + bh; sy++) s += x[((size_t)sy * a->w + sx) * a->c + k];
        cs[(size_t)sx * a->c + k] = s;
      }
  for (int px = 0; px < a->w; px++) {
    int x0, bw;
    mdc_pool_box(px, a->w, a->window, &x0, &bw);
    for (int k = 0; k < a->c; k++) {
      double s = 0.0;
      for (int sx = x0; sx < x0 + bw; sx++) {
        double col = 0.0;
        if (cs)
          col = cs[(size_t)sx * a->c + k];
        else
          for (int sy = y0; sy < y0 + bh; sy++) col += x[((size_t)sy * a->w + sx) * a->c + k];
        s += col;
      }
      y[((size_t)py * a->w + px) * a->c + k] = (float)(s / ((double)bh * bw));
    }
  }
}

static void pool_mean_run(mdc_backend *be, const float *x, int batch, int h, int w, int c,
                          int window, float *y, double *rows) {
  if (batch <= 0 || h <= 0 || w <= 0 || c <= 0) return;
  pool_args a = {x, y, rows, h, w, c, window, 0};
  if (mdc_pool_is_global(h, w, window)) {
    a.tasks = range_tasks((size_t)c, 4);
    mdc_threadpool_parallel_for(pool_of(be), batch * a.tasks, pool_global_task, &a);
  } else {
    mdc_threadpool_parallel_for(pool_of(be), batch * h, pool_window_task, &a);
  }
}

void mdc_cpu_scalar_pool_mean(mdc_backend *be, const float *x, int batch, int h, int w, int c,
                              int window, float *y) {
  double *rows = NULL;
  if (!mdc_pool_is_global(h, w, window))
    rows = malloc((size_t)mdc_cpu_ctx_of(be)->threads * w * c * sizeof(double));
  pool_mean_run(be, x, batch, h, w, c, window, y, rows); /* rows NULL: slower, same result */
  free(rows);
}

/* ----------------------------------------------------------- NAFBlock */

/* Scratch (floats unless noted), each part 64-byte aligned:
 *   buf0, buf1  n x 2c   ping-pong between the layers
 *   pooled, s   n x c each when windowed, c each when global
 *   rows        windowed only: threads x w x c doubles (pool_mean) */
static size_t scalar_nafblock_scratch_size(mdc_backend *be, int c, int h, int w, int window) {
  size_t n = (size_t)h * w, pooled = mdc_pool_is_global(h, w, window) ? (size_t)c : n * c;
  size_t bytes = 64 + 2 * mdc_align64(n * 2 * c * sizeof(float)) +
                 2 * mdc_align64(pooled * sizeof(float));
  if (!mdc_pool_is_global(h, w, window))
    bytes += mdc_align64((size_t)mdc_cpu_ctx_of(be)->threads * w * c * sizeof(double));
  return bytes;
}

static void scalar_nafblock_forward(mdc_backend *be, const mdc_nafblock_params *p,
                                    const float *x, int h, int w, float eps, int window, float *y,
                                    void *scratch) {
  int c = p->c, global = mdc_pool_is_global(h, w, window);
  size_t n = (size_t)h * w, pooled_n = global ? 1 : n;
  char *s = mdc_scratch_base(scratch);
  float *buf0 = (float *)s;
  s += mdc_align64(n * 2 * c * sizeof(float));
  float *buf1 = (float *)s;
  s += mdc_align64(n * 2 * c * sizeof(float));
  float *pooled = (float *)s;
  s += mdc_align64(pooled_n * c * sizeof(float));
  float *sv = (float *)s;
  s += mdc_align64(pooled_n * c * sizeof(float));
  double *rows = global ? NULL : (double *)s;

  scalar_layernorm(be, x, n, c, p->norm1_w, p->norm1_b, 0, eps, buf1, NULL, NULL);
  scalar_conv1x1(be, buf1, n, c, p->conv1_w, p->conv1_b, 2 * c, buf0);
  scalar_dwconv3x3(be, buf0, 1, h, w, 2 * c, p->conv2_w, p->conv2_b, buf1);
  scalar_simplegate(be, buf1, n, c, buf0);                       /* t = buf0 */
  pool_mean_run(be, buf0, 1, h, w, c, window, pooled, rows);
  scalar_conv1x1(be, pooled, pooled_n, c, p->sca_w, p->sca_b, c, sv);
  scalar_scale_channels(be, buf0, sv, global ? 0 : 1, n, c, buf1); /* t * s */
  scalar_conv1x1(be, buf1, n, c, p->conv3_w, p->conv3_b, c, buf0);
  scalar_add_scaled(be, x, buf0, p->beta, n, c, y);              /* y = inp + beta t */
  scalar_layernorm(be, y, n, c, p->norm2_w, p->norm2_b, 0, eps, buf1, NULL, NULL);
  scalar_conv1x1(be, buf1, n, c, p->conv4_w, p->conv4_b, 2 * c, buf0);
  scalar_simplegate(be, buf0, n, c, buf1);
  scalar_conv1x1(be, buf1, n, c, p->conv5_w, p->conv5_b, c, buf0);
  scalar_add_scaled(be, y, buf0, p->gamma, n, c, y);             /* out = y + gamma t */
}

/* --------------------------------------------------------------- new */

mdc_backend *mdc_backend_cpu_scalar_new(int threads) {
  mdc_backend *be = mdc_cpu_backend_alloc("cpu-scalar", threads);
  if (!be) return NULL;
  be->conv1x1 = scalar_conv1x1;
  be->conv3x3 = scalar_conv3x3;
  be->dwconv3x3 = scalar_dwconv3x3;
  be->conv2x2s2 = scalar_conv2x2s2;
  be->layernorm = scalar_layernorm;
  be->simplegate = scalar_simplegate;
  be->pool_mean = mdc_cpu_scalar_pool_mean;
  be->scale_channels = scalar_scale_channels;
  be->add_scaled = scalar_add_scaled;
  be->pixelshuffle_add = scalar_pixelshuffle_add;
  be->nafblock_scratch_size = scalar_nafblock_scratch_size;
  be->nafblock_forward = scalar_nafblock_forward;
  mdc_cpu_scalar_backward_init(be); /* training entries: scalar_backward.c */
  return be;
}
