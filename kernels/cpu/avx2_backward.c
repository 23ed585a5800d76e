/* avx2_backward.c - the AVX2 backend's training entries that are not
 * convolutions: layernorm_backward, simplegate_backward, mask_pixels,
 * l1_loss, adamw_step, and the table setup (mdc_avx2_backward_init).  The
 * convolutions are in avx2_conv_backward.c and avx2_convk_backward.c; the
 * remaining entries stay the scalar ones.  Built with -mavx2 -mfma.
 *
 * As in the forward entries, tasks are fixed by the shapes alone and every
 * element goes through the same instructions whatever task it lands in
 * (tails use masked loads, not scalar code), so results are bit-identical
 * for any thread count.  Parameter-gradient sums are taken in float over
 * short runs, then in double: per task, then over tasks in task order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "avx2_internal.h"
#include "scalar_backward.h"

/* -------------------------------------------------- layernorm_backward */

#define LNB_GRAIN 256 /* pixels per task (before the memory cap) */
#define LNB_FLUSH 64  /* pixels summed in float before going to double */

typedef struct lnb_args {
  const float *x, *g, *mean, *rstd, *dy;
  float *dx;
  double *part;      /* [rows][tpr][2][c]: dg, db sums, or NULL */
  float *thread_mem; /* per thread: [2][c] float sums */
  size_t n, every, rows, thread_floats; /* rows of g, of `every` pixels (the last may be short) */
  int c, tpr;                           /* tasks per row */
} lnb_args;

/* Eight pixels at a time (like the forward) so the two per-pixel channel
 * sums become one transpose-reduce each.  With xh = (x - mean) rstd and
 * e = dy g: dx = rstd (e - mean_k(e) - xh mean_k(e xh)). */
static void lnb_task(void *arg, int task, int thread) {
  const lnb_args *a = arg;
  const int c = a->c, cf = c / 8 * 8;
  const __m256i mt = mdc_avx2_tail_mask(c - cf);
  const __m256 inv_c = _mm256_set1_ps(1.0f / (float)c);
  const size_t row = (size_t)(task / a->tpr), first = row * a->every;
  const float *gw = a->g + row * c; /* the task's pixels share one row of g */
  size_t lo, hi;
  const size_t len = first + a->every < a->n ? a->every : a->n - first;
  mdc_avx2_range(len, a->tpr, task % a->tpr, &lo, &hi);
  lo += first, hi += first;
  float *sg = NULL, *sb = NULL;
  double *pg = NULL, *pb = NULL;
  if (a->part) {
    sg = a->thread_mem + (size_t)thread * a->thread_floats, sb = sg + c;
    pg = a->part + (size_t)task * 2 * c, pb = pg + c;
    memset(pg, 0, 2 * (size_t)c * sizeof(double));
    memset(sg, 0, 2 * (size_t)c * sizeof(float));
  }
  for (size_t i0 = lo; i0 < hi; i0 += 8) {
    int cnt = hi - i0 < 8 ? (int)(hi - i0) : 8;
    const float *xp[8], *gp[8];
    for (int q = 0; q < 8; q++) {
      size_t i = i0 + (q < cnt ? q : cnt - 1);
      xp[q] = a->x + i * c;
      gp[q] = a->dy + i * c;
    }
    _Alignas(32) float s1[8] = {0}, s2[8] = {0}; /* stay 0 without dx */
    if (a->dx) {
      __m256 acc1[8], acc2[8];
      for (int q = 0; q < 8; q++) {
        size_t i = i0 + (q < cnt ? q : cnt - 1);
        __m256 vmu = _mm256_broadcast_ss(a->mean + i), vrs = _mm256_broadcast_ss(a->rstd + i);
        __m256 t1 = _mm256_setzero_ps(), t2 = _mm256_setzero_ps();
        for (int j = 0; j < c; j += 8) {
          int nj = c - j < 8 ? c - j : 8;
          __m256 e = _mm256_mul_ps(mdc_avx2_load(gp[q] + j, nj, mt), mdc_avx2_load(gw + j, nj, mt));
          __m256 xh = _mm256_mul_ps(_mm256_sub_ps(mdc_avx2_load(xp[q] + j, nj, mt), vmu), vrs);
          t1 = _mm256_add_ps(t1, e); /* masked lanes: e = 0 */
          t2 = _mm256_fmadd_ps(e, xh, t2);
        }
        acc1[q] = t1, acc2[q] = t2;
      }
      _mm256_store_ps(s1, _mm256_mul_ps(mdc_avx2_reduce8(acc1), inv_c));
      _mm256_store_ps(s2, _mm256_mul_ps(mdc_avx2_reduce8(acc2), inv_c));
    }
    for (int q = 0; q < cnt; q++) {
      size_t i = i0 + q;
      __m256 vmu = _mm256_broadcast_ss(a->mean + i), vrs = _mm256_broadcast_ss(a->rstd + i);
      __m256 va = _mm256_broadcast_ss(s1 + q), vb = _mm256_broadcast_ss(s2 + q);
      float *di = a->dx ? a->dx + i * c : NULL;
      for (int j = 0; j < c; j += 8) {
        int nj = c - j < 8 ? c - j : 8;
        __m256 gv = mdc_avx2_load(gp[q] + j, nj, mt);
        __m256 xh = _mm256_mul_ps(_mm256_sub_ps(mdc_avx2_load(xp[q] + j, nj, mt), vmu), vrs);
        if (di) {
          __m256 e = _mm256_mul_ps(gv, mdc_avx2_load(gw + j, nj, mt));
          /* cancel before scaling by rstd (large when var << eps) */
          __m256 d = _mm256_fnmadd_ps(xh, vb, _mm256_sub_ps(e, va));
          mdc_avx2_store(di + j, nj, mt, _mm256_mul_ps(vrs, d));
        }
        if (sg) {
          mdc_avx2_store(sg + j, nj, mt, _mm256_fmadd_ps(gv, xh, mdc_avx2_load(sg + j, nj, mt)));
          mdc_avx2_store(sb + j, nj, mt, _mm256_add_ps(gv, mdc_avx2_load(sb + j, nj, mt)));
        }
      }
    }
    /* float sums go to double every LNB_FLUSH pixels and at the end */
    if (sg && ((i0 - lo + 8) % LNB_FLUSH == 0 || i0 + 8 >= hi)) {
      for (int j = 0; j < c; j += 8) {
        int nj = c - j < 8 ? c - j : 8;
        mdc_avx2_add_to_double(pg + j, mdc_avx2_load(sg + j, nj, mt), nj);
        mdc_avx2_add_to_double(pb + j, mdc_avx2_load(sb + j, nj, mt), nj);
      }
      memset(sg, 0, 2 * (size_t)c * sizeof(float));
    }
  }
}

static void avx2_layernorm_backward(mdc_backend *be, const float *x, size_t n, int c,
                                    const float *g, size_t gb_every, const float *mean,
                                    const float *rstd, const float *dy, float *dx, float *dg,
                                    float *db) {
  if (c <= 0 || n == 0 || !(dx || dg || db)) return;
  mdc_cpu_ctx *ctx = mdc_cpu_ctx_of(be);
  lnb_args a = {x, g, mean, rstd, dy, dx, NULL, NULL, n, n, 1, 0, c, 0};
  if (gb_every && gb_every < n) a.every = gb_every, a.rows = (n + gb_every - 1) / gb_every;
  /* tasks never span two rows of g: per row, as a call on that row alone */
  a.tpr = mdc_avx2_range_tasks(a.every, LNB_GRAIN);
  size_t cap = ((size_t)1 << 21) / (2 * (size_t)c); /* partial sums within 16 MB */
  if (cap < 1) cap = 1;
  if (a.rows * a.tpr > cap) a.tpr = a.rows > cap ? 0 : (int)(cap / a.rows);
  void *mem = NULL;
  if (dg || db) {
    a.thread_floats = mdc_align64(2 * (size_t)c * sizeof(float)) / sizeof(float);
    a.part = a.tpr ? malloc(a.rows * a.tpr * 2 * c * sizeof(double)) : NULL;
    mem = malloc(a.thread_floats * sizeof(float) * ctx->threads + 64);
  }
  if (!a.tpr || ((dg || db) && (!a.part || !mem))) { /* out of memory, or very many rows */
    free(a.part), free(mem);
    mdc_cpu_scalar_layernorm_backward(be, x, n, c, g, gb_every, mean, rstd, dy, dx, dg, db);
    return;
  }
  if (mem) a.thread_mem = mdc_scratch_base(mem);
  mdc_threadpool_parallel_for(ctx->pool, (int)(a.rows * a.tpr), lnb_task, &a);
  if (a.part) {
    for (size_t r = 0; r < a.rows; r++) /* each row's tasks in order */
      for (int k = 0; k < c; k++) {
        const double *part = a.part + r * a.tpr * 2 * c;
        double sgk = 0.0, sbk = 0.0;
        for (int t = 0; t < a.tpr; t++) {
          sgk += part[(size_t)t * 2 * c + k];
          sbk += part[(size_t)t * 2 * c + c + k];
        }
        if (dg) dg[r * c + k] += (float)sgk;
        if (db) db[r * c + k] += (float)sbk;
      }
  }
  free(a.part), free(mem);
}

/* ------------------------------------ simplegate_backward, mask_pixels */

typedef struct ewb_args {
  const float *x, *m, *dy;
  float *out;
  size_t n;
  int c, gate, tasks;
} ewb_args;

static void ewb_task(void *arg, int task, int thread) {
  (void)thread;
  const ewb_args *a = arg;
  const int c = a->c;
  const __m256i mt = mdc_avx2_tail_mask(c % 8);
  size_t lo, hi;
  mdc_avx2_range(a->n, a->tasks, task, &lo, &hi);
  for (size_t i = lo; i < hi; i++) {
    if (a->gate) { /* dx[:c] = dy x[c:], dx[c:] = dy x[:c] */
      const float *xi = a->x + i * 2 * c, *gi = a->dy + i * c;
      float *di = a->out + i * 2 * c;
      for (int j = 0; j < c; j += 8) {
        int nj = c - j < 8 ? c - j : 8;
        __m256 g = mdc_avx2_load(gi + j, nj, mt);
        __m256 x1 = mdc_avx2_load(xi + j, nj, mt), x2 = mdc_avx2_load(xi + c + j, nj, mt);
        mdc_avx2_store(di + j, nj, mt, _mm256_mul_ps(g, x2));
        mdc_avx2_store(di + c + j, nj, mt, _mm256_mul_ps(g, x1));
      }
    } else { /* y = x m */
      const __m256 mv = _mm256_broadcast_ss(a->m + i);
      for (int j = 0; j < c; j += 8) {
        int nj = c - j < 8 ? c - j : 8;
        mdc_avx2_store(a->out + i * c + j, nj, mt, _mm256_mul_ps(mdc_avx2_load(a->x + i * c + j, nj, mt), mv));
      }
    }
  }
}

static void avx2_simplegate_backward(mdc_backend *be, const float *x, size_t n, int c,
                                     const float *dy, float *dx) {
  if (c <= 0 || n == 0 || !dx) return;
  ewb_args a = {x, NULL, dy, dx, n, c, 1, 0};
  a.tasks = mdc_avx2_range_tasks(n * c, 32768);
  mdc_threadpool_parallel_for(mdc_avx2_pool(be), a.tasks, ewb_task, &a);
}

static void avx2_mask_pixels(mdc_backend *be, const float *x, const float *m, size_t n, int c,
                             float *y) {
  if (c <= 0 || n == 0) return;
  ewb_args a = {x, m, NULL, y, n, c, 0, 0};
  a.tasks = mdc_avx2_range_tasks(n * c, 65536);
  mdc_threadpool_parallel_for(mdc_avx2_pool(be), a.tasks, ewb_task, &a);
}

/* ------------------------------------------------------------ l1_loss */

#define L1_CHUNK 8192 /* values per task (a multiple of 8) */
#define L1_SUB 64     /* values summed in float before going to double */

typedef struct l1_args {
  const float *pred, *target;
  float *grad;
  double *part;
  size_t n;
  float g; /* scale / n */
} l1_args;

/* Sum of |d| over one chunk; grad = sign(d) g (0 where d == 0, NaN where
 * d is NaN, as the scalar). */
static double l1_chunk(const l1_args *a, size_t t) {
  size_t lo = t * L1_CHUNK, hi = lo + L1_CHUNK < a->n ? lo + L1_CHUNK : a->n;
  const __m256 gp = _mm256_set1_ps(a->g), gn = _mm256_set1_ps(-a->g), zero = _mm256_setzero_ps();
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  for (size_t i0 = lo; i0 < hi; i0 += L1_SUB) {
    size_t i1 = hi - i0 < L1_SUB ? hi : i0 + L1_SUB;
    __m256 s = zero;
    for (size_t i = i0; i < i1; i += 8) {
      int ni = i1 - i < 8 ? (int)(i1 - i) : 8;
      __m256i m = mdc_avx2_tail_mask(ni);
      __m256 d = _mm256_sub_ps(mdc_avx2_load(a->pred + i, ni, m), mdc_avx2_load(a->target + i, ni, m));
      s = _mm256_add_ps(s, _mm256_and_ps(d, abs_mask));
      if (a->grad) {
        __m256 r = _mm256_or_ps(_mm256_and_ps(_mm256_cmp_ps(d, zero, _CMP_GT_OQ), gp),
                                _mm256_and_ps(_mm256_cmp_ps(d, zero, _CMP_LT_OQ), gn));
        r = _mm256_blendv_ps(r, d, _mm256_cmp_ps(d, d, _CMP_UNORD_Q));
        mdc_avx2_store(a->grad + i, ni, m, r);
      }
    }
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(s)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(s, 1)));
  }
  _Alignas(32) double t4[4];
  _mm256_store_pd(t4, _mm256_add_pd(s0, s1));
  return (t4[0] + t4[1]) + (t4[2] + t4[3]);
}

static void l1_task(void *arg, int task, int thread) {
  (void)thread;
  const l1_args *a = arg;
  a->part[task] = l1_chunk(a, (size_t)task);
}

static double avx2_l1_loss(mdc_backend *be, const float *pred, const float *target, size_t n,
                           float scale, float *grad) {
  if (n == 0) return 0.0;
  l1_args a = {pred, target, grad, NULL, n, (float)((double)scale / (double)n)};
  size_t chunks = (n + L1_CHUNK - 1) / L1_CHUNK;
  a.part = chunks <= 1u << 30 ? malloc(chunks * sizeof(double)) : NULL;
  double s = 0.0;
  if (a.part) {
    mdc_threadpool_parallel_for(mdc_avx2_pool(be), (int)chunks, l1_task, &a);
    for (size_t t = 0; t < chunks; t++) s += a.part[t];
    free(a.part);
  } else { /* out of memory: the same sums, serially */
    for (size_t t = 0; t < chunks; t++) s += l1_chunk(&a, t);
  }
  return s / (double)n;
}

/* --------------------------------------------------------- adamw_step */

typedef struct adamw_args {
  float *param, *m, *v;
  const float *grad;
  size_t nvec; /* 8-element groups; the last one may be partial */
  size_t n;
  float decay, b1, c1, b2, c2, step, inv_sqrt_bc2, eps;
  int tasks;
} adamw_args;

/* PyTorch's AdamW in float: p *= 1 - lr wd; m = b1 m + (1 - b1) g;
 * v = b2 v + (1 - b2) g^2; p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps). */
static void adamw_task(void *arg, int task, int thread) {
  (void)thread;
  const adamw_args *a = arg;
  size_t lo, hi;
  mdc_avx2_range(a->nvec, a->tasks, task, &lo, &hi);
  const __m256 decay = _mm256_set1_ps(a->decay), b1 = _mm256_set1_ps(a->b1);
  const __m256 c1 = _mm256_set1_ps(a->c1), b2 = _mm256_set1_ps(a->b2), c2 = _mm256_set1_ps(a->c2);
  const __m256 step = _mm256_set1_ps(a->step), isb = _mm256_set1_ps(a->inv_sqrt_bc2);
  const __m256 eps = _mm256_set1_ps(a->eps);
  for (size_t vi = lo; vi < hi; vi++) {
    size_t i = vi * 8;
    int ni = a->n - i < 8 ? (int)(a->n - i) : 8;
    __m256i mk = mdc_avx2_tail_mask(ni);
    __m256 g = mdc_avx2_load(a->grad + i, ni, mk);
    __m256 p = _mm256_mul_ps(mdc_avx2_load(a->param + i, ni, mk), decay);
    __m256 m = _mm256_fmadd_ps(b1, mdc_avx2_load(a->m + i, ni, mk), _mm256_mul_ps(c1, g));
    __m256 v = _mm256_fmadd_ps(b2, mdc_avx2_load(a->v + i, ni, mk), _mm256_mul_ps(_mm256_mul_ps(c2, g), g));
    __m256 den = _mm256_fmadd_ps(_mm256_sqrt_ps(v), isb, eps);
    p = _mm256_fnmadd_ps(step, _mm256_div_ps(m, den), p);
    mdc_avx2_store(a->m + i, ni, mk, m);
    mdc_avx2_store(a->v + i, ni, mk, v);
    mdc_avx2_store(a->param + i, ni, mk, p);
  }
}

static void avx2_adamw_step(mdc_backend *be, float *param, const float *grad, float *m, float *v,
                            size_t n, float lr, float beta1, float beta2, float eps, float wd,
                            long step) {
  if (n == 0) return;
  if (step < 1) step = 1; /* as the scalar */
  double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
  adamw_args a = {param, m, v, grad, (n + 7) / 8, n,
                  (float)(1.0 - (double)lr * wd), beta1, (float)(1.0 - beta1), beta2,
                  (float)(1.0 - beta2), (float)(lr / bc1), (float)(1.0 / sqrt(bc2)), eps, 0};
  a.tasks = mdc_avx2_range_tasks(a.nvec, 4096);
  mdc_threadpool_parallel_for(mdc_avx2_pool(be), a.tasks, adamw_task, &a);
}

/* --------------------------------------------------------------- init */

/* Fast versions of the entries that dominate training time; the others
 * (pool_mean, scale_channels, add_scaled, pixelshuffle backward: one
 * memory-bound pass each) stay the scalar ones. */
void mdc_avx2_backward_init(mdc_backend *be) {
  be->mask_pixels = avx2_mask_pixels;
  be->conv1x1_backward = mdc_avx2_conv1x1_backward;
  be->conv3x3_backward = mdc_avx2_conv3x3_backward;
  be->conv2x2s2_backward = mdc_avx2_conv2x2s2_backward;
  be->dwconv3x3_backward = mdc_avx2_dwconv3x3_backward;
  be->layernorm_backward = avx2_layernorm_backward;
  be->simplegate_backward = avx2_simplegate_backward;
  be->l1_loss = avx2_l1_loss;
  be->adamw_step = avx2_adamw_step;
}
