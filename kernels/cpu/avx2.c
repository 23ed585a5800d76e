/* avx2.c - the AVX2+FMA backend: its constructor and the entries that are
 * not convolutions or pooling (avx2_conv.c, avx2_pool.c, the fused NAFBlock
 * in avx2_nafblock.c).  Built with -mavx2 -mfma;
 * only reached through mdc_backend_cpu_avx2_new (select.c), which checks
 * the CPU first.
 *
 * Work is split into tasks fixed by the shapes alone (never by the thread
 * count), and every output is computed by the same instruction sequence
 * whatever task it lands in, so results are bit-identical for any number
 * of threads. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "avx2_internal.h"
#include "scalar_backward.h"

/* ---------------------------------------------------------- dwconv3x3 */

typedef struct dw_args {
  const float *x, *w, *b;
  float *y;
  int h, w_, c;
} dw_args;

/* One output row of all batch * h, 8 channels at a time with the 9 tap
 * weights held in registers; taps in (ky, kx) order after the bias. */
static void dwconv3x3_task(void *arg, int row, int thread) {
  (void)thread;
  const dw_args *a = arg;
  const int c = a->c, w = a->w_, py = row % a->h;
  const float *x = a->x + (size_t)(row - py) * w * c; /* its image */
  const float *rows[3];
  for (int d = 0; d < 3; d++) {
    int sy = py + d - 1;
    rows[d] = sy < 0 || sy >= a->h ? NULL : x + (size_t)sy * w * c;
  }
  float *yrow = a->y + (size_t)row * w * c;
  for (int j = 0; j < c; j += 8) {
    int nj = c - j < 8 ? c - j : 8;
    __m256i m = mdc_avx2_tail_mask(nj);
    __m256 wk[9];
    for (int t = 0; t < 9; t++) wk[t] = mdc_avx2_load(a->w + t * c + j, nj, m);
    __m256 bias = a->b ? mdc_avx2_load(a->b + j, nj, m) : _mm256_setzero_ps();
    for (int px = 0; px < w; px++) {
      __m256 acc = bias;
      for (int d = 0; d < 3; d++) {
        if (!rows[d]) continue;
        const float *p = rows[d] + (size_t)px * c + j;
        if (px > 0) acc = _mm256_fmadd_ps(mdc_avx2_load(p - c, nj, m), wk[d * 3], acc);
        acc = _mm256_fmadd_ps(mdc_avx2_load(p, nj, m), wk[d * 3 + 1], acc);
        if (px < w - 1) acc = _mm256_fmadd_ps(mdc_avx2_load(p + c, nj, m), wk[d * 3 + 2], acc);
      }
      mdc_avx2_store(yrow + (size_t)px * c + j, nj, m, acc);
    }
  }
}

static void avx2_dwconv3x3(mdc_backend *be, const float *x, int batch, int h, int w, int c,
                           const float *wt, const float *b, float *y) {
  if (batch <= 0 || h <= 0) return;
  dw_args a = {x, wt, b, y, h, w, c};
  mdc_threadpool_parallel_for(mdc_avx2_pool(be), batch * h, dwconv3x3_task, &a);
}

/* ---------------------------------------------------------- layernorm */

/* Eight pixels at a time so the per-pixel horizontal sums become one
 * transpose-reduce per statistic; two passes (mean, then squared
 * deviations) over rows that are in L1. */
void mdc_avx2_layernorm_rows(const float *x, size_t m, int c, const float *g, const float *b,
                             float eps, float *y, float *mean, float *rstd) {
  const int cf = c / 8 * 8;
  const __m256i mt = mdc_avx2_tail_mask(c - cf);
  const __m256 inv_c = _mm256_set1_ps(1.0f / (float)c), veps = _mm256_set1_ps(eps);
  for (size_t i0 = 0; i0 < m; i0 += 8) {
    int cnt = m - i0 < 8 ? (int)(m - i0) : 8;
    const float *xp[8];
    __m256 acc[8];
    for (int q = 0; q < 8; q++) {
      xp[q] = x + (i0 + (q < cnt ? q : cnt - 1)) * c;
      __m256 s = _mm256_setzero_ps();
      for (int j = 0; j < cf; j += 8) s = _mm256_add_ps(s, _mm256_loadu_ps(xp[q] + j));
      if (cf < c) s = _mm256_add_ps(s, _mm256_maskload_ps(xp[q] + cf, mt));
      acc[q] = s;
    }
    _Alignas(32) float mu[8], rs[8];
    _mm256_store_ps(mu, _mm256_mul_ps(mdc_avx2_reduce8(acc), inv_c));
    for (int q = 0; q < 8; q++) {
      __m256 vmu = _mm256_broadcast_ss(mu + q), v = _mm256_setzero_ps();
      for (int j = 0; j < cf; j += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(xp[q] + j), vmu);
        v = _mm256_fmadd_ps(d, d, v);
      }
      if (cf < c) {
        __m256 d = _mm256_sub_ps(_mm256_maskload_ps(xp[q] + cf, mt), vmu);
        d = _mm256_and_ps(d, _mm256_castsi256_ps(mt));
        v = _mm256_fmadd_ps(d, d, v);
      }
      acc[q] = v;
    }
    __m256 var = _mm256_mul_ps(mdc_avx2_reduce8(acc), inv_c);
    _mm256_store_ps(rs, _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_sqrt_ps(_mm256_add_ps(var, veps))));
    for (int q = 0; q < cnt; q++) {
      const float *xi = xp[q];
      float *yi = y + (i0 + q) * c;
      __m256 vmu = _mm256_broadcast_ss(mu + q), vrs = _mm256_broadcast_ss(rs + q);
      int j = 0;
      for (; j < cf; j += 8) {
        __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xi + j), vmu), vrs);
        _mm256_storeu_ps(yi + j, _mm256_fmadd_ps(d, _mm256_loadu_ps(g + j), _mm256_loadu_ps(b + j)));
      }
      if (j < c) {
        __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(xi + j, mt), vmu), vrs);
        __m256 o = _mm256_fmadd_ps(d, _mm256_maskload_ps(g + j, mt), _mm256_maskload_ps(b + j, mt));
        _mm256_maskstore_ps(yi + j, mt, o);
      }
      if (mean) mean[i0 + q] = mu[q];
      if (rstd) rstd[i0 + q] = rs[q];
    }
  }
}

typedef struct ln_args {
  const float *x, *g, *b;
  float *y, *mean, *rstd;
  size_t n, gb_every;
  int c, tasks;
  float eps;
} ln_args;

/* A range of pixels, cut where the row of g and b changes (each pixel's
 * result does not depend on its neighbours, so cuts change no bits). */
static void layernorm_task(void *arg, int task, int thread) {
  (void)thread;
  const ln_args *a = arg;
  const size_t c = (size_t)a->c, every = a->gb_every ? a->gb_every : a->n;
  size_t lo, hi;
  mdc_avx2_range(a->n, a->tasks, task, &lo, &hi);
  while (lo < hi) {
    size_t row = lo / every, end = (row + 1) * every < hi ? (row + 1) * every : hi;
    const size_t gb = a->gb_every ? row * c : 0;
    mdc_avx2_layernorm_rows(a->x + lo * c, end - lo, a->c, a->g + gb, a->b + gb, a->eps,
                            a->y + lo * c, a->mean ? a->mean + lo : NULL,
                            a->rstd ? a->rstd + lo : NULL);
    lo = end;
  }
}

static void avx2_layernorm(mdc_backend *be, const float *x, size_t n, int c, const float *g,
                           const float *b, size_t gb_every, float eps, float *y, float *mean,
                           float *rstd) {
  if (c <= 0 || n == 0) return;
  ln_args a = {x, g, b, y, mean, rstd, n, gb_every, c, 0, eps};
  a.tasks = mdc_avx2_range_tasks(n * c, 16384);
  mdc_threadpool_parallel_for(mdc_avx2_pool(be), a.tasks, layernorm_task, &a);
}

/* ------------------------------------------------- elementwise entries */

enum { EW_GATE, EW_SCALE, EW_ADD };

typedef struct ew_args {
  const float *x, *x2, *s;
  float *y;
  size_t n, s_every;
  int c, op, tasks;
} ew_args;

static void ew_task(void *arg, int task, int thread) {
  (void)thread;
  const ew_args *a = arg;
  size_t lo, hi;
  mdc_avx2_range(a->n, a->tasks, task, &lo, &hi);
  const int c = a->c;
  const __m256i mt = mdc_avx2_tail_mask(c % 8);
  for (size_t i = lo; i < hi; i++) {
    float *yi = a->y + i * c;
    for (int j = 0; j < c; j += 8) {
      int nj = c - j < 8 ? c - j : 8;
      __m256 v;
      if (a->op == EW_GATE) {
        const float *xi = a->x + i * 2 * c + j;
        v = _mm256_mul_ps(mdc_avx2_load(xi, nj, mt), mdc_avx2_load(xi + c, nj, mt));
      } else {
        __m256 x1 = mdc_avx2_load(a->x + i * c + j, nj, mt);
        __m256 x2 = mdc_avx2_load(a->x2 + i * c + j, nj, mt);
        v = a->s ? _mm256_fmadd_ps(mdc_avx2_load(a->s + j, nj, mt), x2, x1) : _mm256_add_ps(x1, x2);
      }
      mdc_avx2_store(yi + j, nj, mt, v);
    }
  }
}

/* y = x s[row]: the row of s moves on every s_every pixels (counted, not
 * divided per pixel); s_every 0: one row. */
static void scale_task(void *arg, int task, int thread) {
  (void)thread;
  const ew_args *a = arg;
  size_t lo, hi;
  mdc_avx2_range(a->n, a->tasks, task, &lo, &hi);
  const int c = a->c;
  const size_t every = a->s_every;
  const __m256i mt = mdc_avx2_tail_mask(c % 8);
  const float *s = a->s + (every ? lo / every * c : 0);
  size_t left = every ? every - lo % every : 0; /* pixels of this row from lo on */
  for (size_t i = lo; i < hi; i++) {
    if (every && left-- == 0) s += c, left = every - 1;
    for (int j = 0; j < c; j += 8) {
      int nj = c - j < 8 ? c - j : 8;
      __m256 v = mdc_avx2_load(a->x + i * c + j, nj, mt);
      mdc_avx2_store(a->y + i * c + j, nj, mt, _mm256_mul_ps(v, mdc_avx2_load(s + j, nj, mt)));
    }
  }
}

static void ew_run(mdc_backend *be, ew_args *a) {
  if (a->c <= 0) return;
  a->tasks = mdc_avx2_range_tasks(a->n * a->c, 65536);
  mdc_threadpool_parallel_for(mdc_avx2_pool(be), a->tasks,
                              a->op == EW_SCALE ? scale_task : ew_task, a);
}

static void avx2_simplegate(mdc_backend *be, const float *x, size_t n, int c, float *y) {
  ew_args a = {x, NULL, NULL, y, n, 0, c, EW_GATE, 0};
  ew_run(be, &a);
}

static void avx2_scale_channels(mdc_backend *be, const float *x, const float *s,
                                size_t s_every, size_t n, int c, float *y) {
  ew_args a = {x, NULL, s, y, n, s_every, c, EW_SCALE, 0};
  ew_run(be, &a);
}

static void avx2_add_scaled(mdc_backend *be, const float *a_, const float *b, const float *s,
                            size_t n, int c, float *y) {
  ew_args a = {a_, b, s, y, n, 0, c, EW_ADD, 0};
  ew_run(be, &a);
}

/* ---------------------------------------------------- pixelshuffle_add */

typedef struct ps_args {
  const float *x, *skip;
  float *y;
  int h, w, c;
} ps_args;

/* One input row -> two output rows.  8 channels x 4 sub-pixels are loaded
 * as 4 vectors and transposed so each output pixel gets 8 channels. */
static void pixelshuffle_task(void *arg, int i, int thread) {
  (void)thread;
  const ps_args *a = arg;
  const int c = a->c, w = a->w;
  const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int jx = 0; jx < w; jx++) {
    const float *xi = a->x + ((size_t)i * w + jx) * 4 * c;
    size_t o[4];
    for (int q = 0; q < 4; q++)
      o[q] = ((size_t)(2 * i + q / 2) * (2 * w) + 2 * jx + q % 2) * c;
    int k = 0;
    for (; k + 8 <= c; k += 8) {
      const float *p = xi + 4 * k;
      __m256 v0 = _mm256_loadu_ps(p), v1 = _mm256_loadu_ps(p + 8);
      __m256 v2 = _mm256_loadu_ps(p + 16), v3 = _mm256_loadu_ps(p + 24);
      __m256 t0 = _mm256_unpacklo_ps(v0, v1), t1 = _mm256_unpackhi_ps(v0, v1);
      __m256 t2 = _mm256_unpacklo_ps(v2, v3), t3 = _mm256_unpackhi_ps(v2, v3);
      __m256 u[4];
      u[0] = _mm256_shuffle_ps(t0, t2, 0x44);
      u[1] = _mm256_shuffle_ps(t0, t2, 0xEE);
      u[2] = _mm256_shuffle_ps(t1, t3, 0x44);
      u[3] = _mm256_shuffle_ps(t1, t3, 0xEE);
      for (int q = 0; q < 4; q++) {
        __m256 v = _mm256_permutevar8x32_ps(u[q], perm);
        if (a->skip) v = _mm256_add_ps(v, _mm256_loadu_ps(a->skip + o[q] + k));
        _mm256_storeu_ps(a->y + o[q] + k, v);
      }
    }
    for (; k < c; k++)
      for (int q = 0; q < 4; q++)
        a->y[o[q] + k] = xi[4 * k + q] + (a->skip ? a->skip[o[q] + k] : 0.0f);
  }
}

static void avx2_pixelshuffle_add(mdc_backend *be, const float *x, int h, int w, int c,
                                  const float *skip, float *y) {
  ps_args a = {x, skip, y, h, w, c};
  mdc_threadpool_parallel_for(mdc_avx2_pool(be), h, pixelshuffle_task, &a);
}

/* --------------------------------------------------------------- new */

mdc_backend *mdc_cpu_avx2_create(int threads) {
  mdc_backend *be = mdc_cpu_backend_alloc("cpu-avx2", threads);
  if (!be) return NULL;
  be->conv1x1 = mdc_avx2_conv1x1;
  be->conv3x3 = mdc_avx2_conv3x3;
  be->dwconv3x3 = avx2_dwconv3x3;
  be->conv2x2s2 = mdc_avx2_conv2x2s2;
  be->layernorm = avx2_layernorm;
  be->simplegate = avx2_simplegate;
  be->pool_mean = mdc_avx2_pool_mean;
  be->scale_channels = avx2_scale_channels;
  be->add_scaled = avx2_add_scaled;
  be->pixelshuffle_add = avx2_pixelshuffle_add;
  be->nafblock_scratch_size = mdc_avx2_nafblock_scratch_size;
  be->nafblock_forward = mdc_avx2_nafblock_forward;
  mdc_cpu_scalar_backward_init(be); /* then the fast training entries: */
  mdc_avx2_backward_init(be);
  return be;
}
