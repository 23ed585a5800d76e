/* avx2_internal.h - helpers shared by the AVX2 backend's files (built with
 * -mavx2 -mfma). */
#ifndef MDC_AVX2_INTERNAL_H
#define MDC_AVX2_INTERNAL_H

#include <immintrin.h>

#include "avx2_gemm.h"
#include "cpu_internal.h"

static inline __m256 mdc_avx2_load(const float *p, int n, __m256i m) {
  return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m);
}
static inline void mdc_avx2_store(float *p, int n, __m256i m, __m256 v) {
  if (n >= 8)
    _mm256_storeu_ps(p, v);
  else
    _mm256_maskstore_ps(p, m, v);
}
static inline float mdc_avx2_hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

static inline mdc_threadpool *mdc_avx2_pool(mdc_backend *be) { return mdc_cpu_ctx_of(be)->pool; }

/* Splits [0, n) into about n / grain tasks (at most 4096): a split fixed
 * by the shape, never by the thread count. */
static inline int mdc_avx2_range_tasks(size_t n, size_t grain) {
  size_t t = (n + grain - 1) / grain;
  if (t > 4096) t = 4096;
  return t < 1 ? 1 : (int)t;
}

static inline void mdc_avx2_range(size_t n, int tasks, int t, size_t *lo, size_t *hi) {
  *lo = n * (size_t)t / (size_t)tasks;
  *hi = n * (size_t)(t + 1) / (size_t)tasks;
}

/* Sums of 8 vectors, one total per lane: lane q = sum of v[q]'s lanes. */
static inline __m256 mdc_avx2_reduce8(const __m256 *v) {
  __m256 h01 = _mm256_hadd_ps(v[0], v[1]), h23 = _mm256_hadd_ps(v[2], v[3]);
  __m256 h45 = _mm256_hadd_ps(v[4], v[5]), h67 = _mm256_hadd_ps(v[6], v[7]);
  __m256 q0 = _mm256_hadd_ps(h01, h23), q1 = _mm256_hadd_ps(h45, h67);
  return _mm256_add_ps(_mm256_permute2f128_ps(q0, q1, 0x20), _mm256_permute2f128_ps(q0, q1, 0x31));
}

/* d[0..n) += the first n lanes of v, in double (n in 1..8). */
static inline void mdc_avx2_add_to_double(double *d, __m256 v, int n) {
  if (n >= 8) {
    _mm256_storeu_pd(d, _mm256_add_pd(_mm256_loadu_pd(d), _mm256_cvtps_pd(_mm256_castps256_ps128(v))));
    _mm256_storeu_pd(d + 4, _mm256_add_pd(_mm256_loadu_pd(d + 4),
                                          _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))));
    return;
  }
  _Alignas(32) float t[8];
  _mm256_store_ps(t, v);
  for (int i = 0; i < n; i++) d[i] += t[i];
}

/* Entries defined in avx2_conv.c and avx2_pool.c. */
void mdc_avx2_conv1x1(mdc_backend *be, const float *x, size_t n, int cin, const float *w,
                      const float *b, int cout, float *y);
void mdc_avx2_conv3x3(mdc_backend *be, const float *x, int batch, int h, int w, int cin,
                      const float *wt, const float *b, int cout, float *y);
void mdc_avx2_conv2x2s2(mdc_backend *be, const float *x, int h, int w, int cin,
                        const float *wt, const float *b, int cout, float *y);
void mdc_avx2_pool_mean(mdc_backend *be, const float *x, int batch, int h, int w, int c,
                        int window, float *y);

/* Per-pixel LayerNorm of m rows of c channels (see backend.h), statistics
 * in float. */
void mdc_avx2_layernorm_rows(const float *x, size_t m, int c, const float *g, const float *b,
                             float eps, float *y, float *mean, float *rstd);

/* Training entries: avx2_backward.c installs the fast ones (over the
 * scalar ones the constructor put in first); avx2_conv_backward.c holds
 * the convolutions'. */
void mdc_avx2_backward_init(mdc_backend *be);
void mdc_avx2_conv1x1_backward(mdc_backend *be, const float *x, size_t n, int cin,
                               const float *w, int cout, const float *dy, float *dx, float *dw,
                               float *db);
void mdc_avx2_conv3x3_backward(mdc_backend *be, const float *x, int batch, int h, int w,
                               int cin, const float *wt, int cout, const float *dy, float *dx,
                               float *dwt, float *db);
void mdc_avx2_conv2x2s2_backward(mdc_backend *be, const float *x, int h, int w, int cin,
                                 const float *wt, int cout, const float *dy, float *dx,
                                 float *dwt, float *db);
/* Weight-gradient pieces (avx2_conv_backward.c).  pw[k][o] += sum over m
 * pixels of x[i][k] dy[i][o] (x rows ldx apart, dy rows cout apart), float
 * sums over the m pixels added in double; pb[o] += column sums of dy
 * likewise; and the final step: parts partials of [wsz + cout] doubles
 * (dW, then db) summed in part order (into part 0) and added to dw / db
 * (either NULL). */
/* Packs W^T (cout rows of cin columns) in mdc_avx2_pack's layout straight
 * from w[cin][cout]; mdc_avx2_packed_size(cout, cin, MDC_EPI_BIAS) floats. */
void mdc_avx2_pack_transposed(const float *w, int cin, int cout, float *dst);
void mdc_avx2_wgrad_rows(const float *x, ptrdiff_t ldx, int cin, const float *dy, int cout, int m,
                         double *pw);
void mdc_avx2_colsum_rows(const float *dy, int cout, int m, double *pb);
void mdc_avx2_partials_add(double *part, int parts, size_t wsz, float *dw, int cout, float *db);
void mdc_avx2_dwconv3x3_backward(mdc_backend *be, const float *x, int batch, int h, int w,
                                 int c, const float *wt, const float *dy, float *dx, float *dwt,
                                 float *db);

/* The fused NAFBlock, avx2_nafblock.c. */
size_t mdc_avx2_nafblock_scratch_size(mdc_backend *be, int c, int h, int w, int window);
void mdc_avx2_nafblock_forward(mdc_backend *be, const mdc_nafblock_params *p, const float *x,
                               int h, int w, float eps, int window, float *y, void *scratch);

/* Windowed box means over a h x w x c map, exact clamped boxes (backend.h),
 * in two sliding passes with running sums in double:
 * mdc_avx2_boxpool_vertical writes the box-row sums of x into y (tasks
 * are column chunks of cw, each thread needs
 * mdc_avx2_boxpool_vertical_bytes); mdc_avx2_box_row turns one row of
 * those sums into means for columns [xa, xb).  Tasks are fixed by
 * (h, w, c), so results do not depend on the thread count. */
typedef struct mdc_avx2_boxpool {
  const float *x;
  float *y;
  int h, w, c, window, cw;
  char *thread_mem; /* per-thread areas of `thread_bytes` */
  size_t thread_bytes;
} mdc_avx2_boxpool;

int mdc_avx2_boxpool_chunk(int h, int w, int c, int window); /* cw */
size_t mdc_avx2_boxpool_vertical_bytes(int h, int w, int c, int window);
/* Both passes (pool_mean): vertical, then rows in place via a w x c copy. */
size_t mdc_avx2_boxpool_thread_bytes(int h, int w, int c, int window);
void mdc_avx2_boxpool_vertical(mdc_threadpool *pool, mdc_avx2_boxpool *bp);
/* v: one row of vertical sums (w x c); rs: c doubles of scratch; out gets
 * (xb - xa) x c means. */
void mdc_avx2_box_row(const float *v, int h, int w, int c, int window, int xa, int xb, double *rs,
                      float *out);

#endif
