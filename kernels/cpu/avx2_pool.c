/* avx2_pool.c - channel means for the AVX2 backend: the global mean
 * (fixed pixel chunks summed in float, chunks reduced in double in order)
 * and exact clamped-box means by sliding sums (also used by the fused
 * NAFBlock).  Built with -mavx2 -mfma. */
#include <stdlib.h>
#include <string.h>

#include "avx2_internal.h"

/* ---------------------------------------------------------- pool_mean */

#define POOL_GRAIN 2048 /* pixels per global-mean task */
#define POOL_SUB 64     /* pixels summed in float before going to double */

typedef struct gpool_args {
  const float *x;
  double *part; /* [batch][tasks][c] */
  size_t n;     /* pixels per image */
  int c, tasks; /* tasks per image */
} gpool_args;

/* Adds 8 floats into 8 doubles at d. */
static inline void add_to_double(double *d, __m256 v) {
  _mm256_storeu_pd(d, _mm256_add_pd(_mm256_loadu_pd(d), _mm256_cvtps_pd(_mm256_castps256_ps128(v))));
  _mm256_storeu_pd(d + 4,
                   _mm256_add_pd(_mm256_loadu_pd(d + 4), _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))));
}

/* A pixel range of one image: `task` counts over all images. */
static void gpool_task(void *arg, int task, int thread) {
  (void)thread;
  const gpool_args *a = arg;
  const int c = a->c;
  size_t lo, hi, first = (size_t)(task / a->tasks) * a->n; /* the image's first pixel */
  mdc_avx2_range(a->n, a->tasks, task % a->tasks, &lo, &hi);
  lo += first, hi += first;
  double *part = a->part + (size_t)task * c;
  memset(part, 0, (size_t)c * sizeof(double));
  for (size_t i0 = lo; i0 < hi; i0 += POOL_SUB) {
    size_t i1 = hi - i0 < POOL_SUB ? hi : i0 + POOL_SUB;
    int j = 0;
    for (; j + 8 <= c; j += 8) {
      __m256 s = _mm256_setzero_ps();
      for (size_t i = i0; i < i1; i++) s = _mm256_add_ps(s, _mm256_loadu_ps(a->x + i * c + j));
      add_to_double(part + j, s);
    }
    for (; j < c; j++) {
      float s = 0.0f;
      for (size_t i = i0; i < i1; i++) s += a->x[i * c + j];
      part[j] += s;
    }
  }
}

/* Box means need per-thread buffers; see avx2_internal.h. */
int mdc_avx2_boxpool_chunk(int h, int w, int c, int window) {
  /* The rows between the one added and the one subtracted stay in L2
   * (about 512 KiB); at least 8 tasks. */
  int bh = window < h ? window : h;
  long cw = 131072L / ((long)bh * (c > 0 ? c : 1));
  int eighth = (w + 7) / 8;
  if (cw > eighth) cw = eighth;
  return cw < 1 ? 1 : (int)cw;
}

size_t mdc_avx2_boxpool_vertical_bytes(int h, int w, int c, int window) {
  return mdc_align64((size_t)mdc_avx2_boxpool_chunk(h, w, c, window) * c * sizeof(double));
}

size_t mdc_avx2_boxpool_thread_bytes(int h, int w, int c, int window) {
  size_t v = mdc_avx2_boxpool_vertical_bytes(h, w, c, window);
  size_t r = mdc_align64((size_t)w * c * sizeof(float)) + mdc_align64((size_t)c * sizeof(double));
  return v > r ? v : r;
}

/* Vertical: running sums of the box rows for a chunk of columns (which is
 * contiguous in each row); the box start moves by at most one row per
 * output row. */
static void boxpool_vertical_task(void *arg, int task, int thread) {
  const mdc_avx2_boxpool *bp = arg;
  const int c = bp->c, w = bp->w, h = bp->h;
  int xa = task * bp->cw, xb = xa + bp->cw < w ? xa + bp->cw : w;
  size_t len = (size_t)(xb - xa) * c, rs = (size_t)w * c;
  double *cs = (double *)(bp->thread_mem + (size_t)thread * bp->thread_bytes);
  const float *x = bp->x + (size_t)xa * c;
  float *y = bp->y + (size_t)xa * c;
  int y0, bh;
  mdc_pool_box(0, h, bp->window, &y0, &bh);
  memset(cs, 0, len * sizeof(double));
  for (int sy = y0; sy < y0 + bh; sy++) {
    const float *r = x + sy * rs;
    size_t l = 0;
    for (; l + 4 <= len; l += 4)
      _mm256_storeu_pd(cs + l, _mm256_add_pd(_mm256_loadu_pd(cs + l), _mm256_cvtps_pd(_mm_loadu_ps(r + l))));
    for (; l < len; l++) cs[l] += r[l];
  }
  int cur = y0;
  for (int py = 0; py < h; py++) {
    int s, n;
    mdc_pool_box(py, h, bp->window, &s, &n);
    if (s != cur) { /* s == cur + 1 */
      const float *add = x + (size_t)(cur + bh) * rs, *sub = x + (size_t)cur * rs;
      size_t l = 0;
      for (; l + 4 <= len; l += 4) {
        __m256d d = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(add + l)),
                                  _mm256_cvtps_pd(_mm_loadu_ps(sub + l)));
        _mm256_storeu_pd(cs + l, _mm256_add_pd(_mm256_loadu_pd(cs + l), d));
      }
      for (; l < len; l++) cs[l] += (double)add[l] - (double)sub[l];
      cur = s;
    }
    float *o = y + py * rs;
    size_t l = 0;
    for (; l + 4 <= len; l += 4) _mm_storeu_ps(o + l, _mm256_cvtpd_ps(_mm256_loadu_pd(cs + l)));
    for (; l < len; l++) o[l] = (float)cs[l];
  }
}

void mdc_avx2_boxpool_vertical(mdc_threadpool *pool, mdc_avx2_boxpool *bp) {
  mdc_threadpool_parallel_for(pool, (bp->w + bp->cw - 1) / bp->cw, boxpool_vertical_task, bp);
}

void mdc_avx2_box_row(const float *v, int h, int w, int c, int window, int xa, int xb, double *rs,
                      float *out) {
  int x0, bw, y0, bh;
  mdc_pool_box(xa, w, window, &x0, &bw);
  mdc_pool_box(0, h, window, &y0, &bh);
  const double inv_area = 1.0 / ((double)bw * bh); /* a multiply: vdivpd is slow */
  const __m256d vinv = _mm256_set1_pd(inv_area);
  memset(rs, 0, (size_t)c * sizeof(double));
  for (int sx = x0; sx < x0 + bw; sx++) {
    const float *t = v + (size_t)sx * c;
    int l = 0;
    for (; l + 4 <= c; l += 4)
      _mm256_storeu_pd(rs + l, _mm256_add_pd(_mm256_loadu_pd(rs + l), _mm256_cvtps_pd(_mm_loadu_ps(t + l))));
    for (; l < c; l++) rs[l] += t[l];
  }
  int cur = x0;
  for (int px = xa; px < xb; px++) {
    int s, n;
    mdc_pool_box(px, w, window, &s, &n);
    if (s != cur) { /* s == cur + 1 */
      const float *add = v + (size_t)(cur + bw) * c, *sub = v + (size_t)cur * c;
      int l = 0;
      for (; l + 4 <= c; l += 4) {
        __m256d d = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(add + l)),
                                  _mm256_cvtps_pd(_mm_loadu_ps(sub + l)));
        _mm256_storeu_pd(rs + l, _mm256_add_pd(_mm256_loadu_pd(rs + l), d));
      }
      for (; l < c; l++) rs[l] += (double)add[l] - (double)sub[l];
      cur = s;
    }
    float *o = out + (size_t)(px - xa) * c;
    int l = 0;
    for (; l + 4 <= c; l += 4)
      _mm_storeu_ps(o + l, _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_loadu_pd(rs + l), vinv)));
    for (; l < c; l++) o[l] = (float)(rs[l] * inv_area);
  }
}

/* Horizontal, one row in place (via a copy). */
static void boxpool_horizontal_task(void *arg, int py, int thread) {
  const mdc_avx2_boxpool *bp = arg;
  const int c = bp->c, w = bp->w;
  char *mem = bp->thread_mem + (size_t)thread * bp->thread_bytes;
  float *tmp = (float *)mem;
  double *rs = (double *)(mem + mdc_align64((size_t)w * c * sizeof(float)));
  float *row = bp->y + (size_t)py * w * c;
  memcpy(tmp, row, (size_t)w * c * sizeof(float));
  mdc_avx2_box_row(tmp, bp->h, w, c, bp->window, 0, w, rs, row);
}

void mdc_avx2_pool_mean(mdc_backend *be, const float *x, int batch, int h, int w, int c,
                        int window, float *y) {
  if (c <= 0 || h <= 0 || w <= 0 || batch <= 0) return;
  mdc_cpu_ctx *ctx = mdc_cpu_ctx_of(be);
  if (mdc_pool_is_global(h, w, window)) {
    gpool_args a = {x, NULL, (size_t)h * w, c, 0};
    a.tasks = mdc_avx2_range_tasks(a.n, POOL_GRAIN);
    a.part = malloc((size_t)batch * a.tasks * c * sizeof(double));
    if (!a.part) {
      mdc_cpu_scalar_pool_mean(be, x, batch, h, w, c, window, y);
      return;
    }
    mdc_threadpool_parallel_for(ctx->pool, batch * a.tasks, gpool_task, &a);
    for (int b = 0; b < batch; b++) /* each image's tasks in order */
      for (int j = 0; j < c; j++) {
        const double *part = a.part + (size_t)b * a.tasks * c;
        double s = 0.0;
        for (int t = 0; t < a.tasks; t++) s += part[(size_t)t * c + j];
        y[(size_t)b * c + j] = (float)(s / (double)a.n);
      }
    free(a.part);
    return;
  }
  mdc_avx2_boxpool bp = {x, y, h, w, c, window, mdc_avx2_boxpool_chunk(h, w, c, window), NULL,
                         mdc_avx2_boxpool_thread_bytes(h, w, c, window)};
  void *mem = malloc(bp.thread_bytes * ctx->threads + 64);
  if (!mem) {
    mdc_cpu_scalar_pool_mean(be, x, batch, h, w, c, window, y);
    return;
  }
  bp.thread_mem = mdc_scratch_base(mem);
  const size_t per_image = (size_t)h * w * c;
  for (int b = 0; b < batch; b++) { /* image by image: both passes keep their tasks */
    bp.x = x + b * per_image, bp.y = y + b * per_image;
    mdc_avx2_boxpool_vertical(ctx->pool, &bp);
    mdc_threadpool_parallel_for(ctx->pool, h, boxpool_horizontal_task, &bp);
  }
  free(mem);
}
