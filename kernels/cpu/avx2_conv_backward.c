/* avx2_conv_backward.c - backward passes of the AVX2 1x1 and depthwise 3x3
 * convolutions, and the weight-gradient kernel the 3x3 / 2x2 ones share
 * (avx2_convk_backward.c).  conv1x1: dx = dy . W^T on the forward's GEMM
 * (W^T packed), dW = x^T . dy on a 6 x 16 kernel of its own that reads x
 * and dy in place.  Built with -mavx2 -mfma.
 *
 * Weight gradients are sums over all pixels.  They are split by the shape
 * alone: float sums over short runs of pixels (a block, a row chunk), added
 * in double into one partial per task, and the partials added up in task
 * order at the end - bit-identical for any thread count. */
#include <stdlib.h>
#include <string.h>

#include "avx2_internal.h"
#include "scalar_backward.h"

/* ---------------------------------------------------- conv1x1_backward */

#define C1B_MAX_GROUPS 64  /* tasks; each takes a run of blocks */
#define C1B_PART (1 << 20) /* doubles of partial dW sums, unless one group needs more */

void mdc_avx2_pack_transposed(const float *w, int cin, int cout, float *dst) {
  for (int j = 0; j < cin; j += 16) {
    int rem = cin - j, width = rem > 8 ? 16 : 8;
    float *panel = dst + (size_t)j * cout;
    for (int o = 0; o < cout; o++) {
      float *row = panel + (size_t)o * width;
      for (int q = 0; q < width; q++) row[q] = q < rem ? w[(size_t)(j + q) * cout + o] : 0.0f;
    }
  }
}

/* The dW micro-kernel: for kr (1..6) input channels from k0 x 16 output
 * channels (nv vectors, masked at the edge),
 * t[r][0..16) = sum over m pixels of x[i][k0 + r] dy[i][j..j + 16) (x rows
 * ldx apart, dy rows cout apart).  It
 * reads x and dy in place along their rows (copying dy panels out first
 * measured slower), so nothing is transposed or packed; up to 12
 * accumulators in registers, as the forward's micro-kernel.  kr, nv and
 * masked are constants in each instance. */
static inline __attribute__((always_inline)) void dw_tile(const float *x, ptrdiff_t ldx, const float *dy,
                                                          int cout, int m, __m256i m0, __m256i m1,
                                                          float (*t)[16], const int kr,
                                                          const int nv, const int masked) {
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00;
  __m256 a30 = a00, a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00;
  for (int i = 0; i < m; i++, x += ldx, dy += cout) {
    __m256 w0 = masked ? _mm256_maskload_ps(dy, m0) : _mm256_loadu_ps(dy), w1 = w0, xb;
    if (nv == 2) w1 = masked ? _mm256_maskload_ps(dy + 8, m1) : _mm256_loadu_ps(dy + 8);
#define DW_ROW(R)                                            \
  if (R < kr) {                                              \
    xb = _mm256_broadcast_ss(x + R);                         \
    a##R##0 = _mm256_fmadd_ps(xb, w0, a##R##0);              \
    if (nv == 2) a##R##1 = _mm256_fmadd_ps(xb, w1, a##R##1); \
  }
    DW_ROW(0) DW_ROW(1) DW_ROW(2) DW_ROW(3) DW_ROW(4) DW_ROW(5)
#undef DW_ROW
  }
  const __m256 acc[6][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}, {a40, a41}, {a50, a51}};
  for (int r = 0; r < kr; r++) {
    _mm256_storeu_ps(t[r], acc[r][0]);
    _mm256_storeu_ps(t[r] + 8, acc[r][1]);
  }
}

typedef void (*dw_tile_fn)(const float *x, ptrdiff_t ldx, const float *dy, int cout, int m, __m256i m0,
                           __m256i m1, float (*t)[16]);
#define DW_TILE(KR, NV, MS)                                                                  \
  static void dw_tile_##KR##_##NV##_##MS(const float *x, ptrdiff_t ldx, const float *dy,   \
                                         int cout, int m, __m256i m0, __m256i m1,            \
                                         float (*t)[16]) {                                   \
    dw_tile(x, ldx, dy, cout, m, m0, m1, t, KR, NV, MS);                                     \
  }
#define DW_TILE4(KR) DW_TILE(KR, 1, 0) DW_TILE(KR, 1, 1) DW_TILE(KR, 2, 0) DW_TILE(KR, 2, 1)
DW_TILE4(1)
DW_TILE4(2)
DW_TILE4(3)
DW_TILE4(4)
DW_TILE4(5)
DW_TILE4(6)
#undef DW_TILE4
#undef DW_TILE

static dw_tile_fn dw_tile_pick(int kr, int nv, int masked) {
#define DW_ROW4(KR) {{dw_tile_##KR##_1_0, dw_tile_##KR##_1_1}, {dw_tile_##KR##_2_0, dw_tile_##KR##_2_1}}
  static const dw_tile_fn table[6][2][2] = {DW_ROW4(1), DW_ROW4(2), DW_ROW4(3),
                                            DW_ROW4(4), DW_ROW4(5), DW_ROW4(6)};
#undef DW_ROW4
  return table[kr - 1][nv == 2][masked != 0];
}

/* Column sums of m rows of dy in four interleaved float chains (an add's
 * latency would otherwise serialise the loop), combined in a fixed order. */
static __m256 colsum8(const float *dy, int cout, int m, int nj, __m256i mt) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int i = 0;
  for (; i + 4 <= m; i += 4, dy += 4 * (size_t)cout) {
    s0 = _mm256_add_ps(s0, mdc_avx2_load(dy, nj, mt));
    s1 = _mm256_add_ps(s1, mdc_avx2_load(dy + cout, nj, mt));
    s2 = _mm256_add_ps(s2, mdc_avx2_load(dy + 2 * (size_t)cout, nj, mt));
    s3 = _mm256_add_ps(s3, mdc_avx2_load(dy + 3 * (size_t)cout, nj, mt));
  }
  for (; i < m; i++, dy += cout) s0 = _mm256_add_ps(s0, mdc_avx2_load(dy, nj, mt));
  return _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
}

void mdc_avx2_colsum_rows(const float *dy, int cout, int m, double *pb) {
  const __m256i mt = mdc_avx2_tail_mask(cout % 8);
  for (int j = 0; j < cout; j += 8) {
    int nj = cout - j < 8 ? cout - j : 8;
    mdc_avx2_add_to_double(pb + j, colsum8(dy + j, cout, m, nj, mt), nj);
  }
}

void mdc_avx2_wgrad_rows(const float *x, ptrdiff_t ldx, int cin, const float *dy, int cout, int m,
                         double *pw) {
  for (int j = 0; j < cout; j += 16) {
    int rem = cout - j, nv = rem > 8 ? 2 : 1, masked = rem < 16 && rem != 8;
    __m256i m0 = mdc_avx2_tail_mask(rem < 8 ? rem : 8), m1 = mdc_avx2_tail_mask(rem - 8);
    int nc = rem < 16 ? rem : 16;
    /* input channels in nt tiles of even sizes (5 and 6, not 6 and 2:
     * few rows leave the FMAs waiting on their latency) */
    const int nt = (cin + MDC_MR - 1) / MDC_MR;
    for (int q = 0; q < nt; q++) {
      int k0 = cin * q / nt, kr = cin * (q + 1) / nt - k0;
      float t[MDC_MR][16];
      dw_tile_pick(kr, nv, masked)(x + k0, ldx, dy + j, cout, m, m0, m1, t);
      for (int r = 0; r < kr; r++) {
        double *o = pw + (size_t)(k0 + r) * cout + j;
        mdc_avx2_add_to_double(o, _mm256_loadu_ps(t[r]), nc < 8 ? nc : 8);
        if (nc > 8) mdc_avx2_add_to_double(o + 8, _mm256_loadu_ps(t[r] + 8), nc - 8);
      }
    }
  }
}

void mdc_avx2_partials_add(double *part, int parts, size_t wsz, float *dw, int cout, float *db) {
  const size_t stride = wsz + cout;
  for (int g = 1; g < parts; g++) /* in part order, streaming, into part 0 */
    for (size_t e = 0; e < stride; e++) part[e] += part[(size_t)g * stride + e];
  if (dw)
    for (size_t e = 0; e < wsz; e++) dw[e] += (float)part[e];
  if (db)
    for (int o = 0; o < cout; o++) db[o] += (float)part[wsz + o];
}

typedef struct c1b_args {
  mdc_gemm gwt; /* packed W^T, for dx = dy . W^T */
  const float *x, *dy;
  float *dx;
  double *part; /* [groups][cin * cout + cout]: dW then db sums */
  size_t n;
  int cin, cout, block, nblocks, groups, dw, db;
} c1b_args;

/* Pixels per block: float sums run over a block, then go to double.
 * 128 measured best from 16 to 64 channels (256 and 512 a little slower). */
#define C1B_BLOCK 128

/* One group of blocks: dx rows, and the group's dW / db partial sums. */
static void c1b_task(void *arg, int g, int thread) {
  (void)thread;
  const c1b_args *a = arg;
  const int cin = a->cin, cout = a->cout;
  const size_t wsz = (size_t)cin * cout;
  const int b0 = (int)((size_t)a->nblocks * g / a->groups);
  const int b1 = (int)((size_t)a->nblocks * (g + 1) / a->groups);
  double *pw = NULL, *pb = NULL;
  if (a->part) {
    pw = a->part + (size_t)g * (wsz + cout), pb = pw + wsz;
    memset(pw, 0, (wsz + cout) * sizeof(double));
  }
  for (int b = b0; b < b1; b++) {
    size_t p0 = (size_t)b * a->block;
    int m = a->n - p0 < (size_t)a->block ? (int)(a->n - p0) : a->block;
    const float *dyb = a->dy + p0 * cout;
    if (a->dx) mdc_avx2_gemm_rows(&a->gwt, dyb, cout, m, a->dx + p0 * cin, cin, NULL, 0);
    if (a->dw) mdc_avx2_wgrad_rows(a->x + p0 * cin, cin, cin, dyb, cout, m, pw);
    if (a->db) mdc_avx2_colsum_rows(dyb, cout, m, pb);
  }
}

void mdc_avx2_conv1x1_backward(mdc_backend *be, const float *x, size_t n, int cin,
                               const float *w, int cout, const float *dy, float *dx, float *dw,
                               float *db) {
  if (n == 0 || cin <= 0 || cout <= 0 || !(dx || dw || db)) return;
  mdc_cpu_ctx *ctx = mdc_cpu_ctx_of(be);
  const size_t wsz = (size_t)cin * cout;
  c1b_args a;
  memset(&a, 0, sizeof a);
  a.x = x, a.dy = dy, a.dx = dx, a.n = n, a.cin = cin, a.cout = cout;
  a.dw = dw != NULL, a.db = db != NULL;
  a.block = C1B_BLOCK;
  a.nblocks = (int)((n + a.block - 1) / a.block);
  size_t maxg = C1B_MAX_GROUPS;
  if ((dw || db) && C1B_PART / (wsz + cout) < maxg) maxg = C1B_PART / (wsz + cout);
  if (maxg < 1) maxg = 1;
  a.groups = (size_t)a.nblocks < maxg ? a.nblocks : (int)maxg;

  float *wt = NULL;
  int fail = 0;
  if (dx) {
    wt = aligned_alloc(64, mdc_align64(mdc_avx2_packed_size(cout, cin, MDC_EPI_BIAS) * sizeof(float)));
    fail |= !wt;
    a.gwt = (mdc_gemm){.w = wt, .ldw = cin, .k = cout, .cout = cin, .epi = MDC_EPI_BIAS, .packed = 1};
  }
  if (dw || db) {
    a.part = malloc((size_t)a.groups * (wsz + cout) * sizeof(double));
    fail |= !a.part;
  }
  if (fail) { /* out of memory: the scalar reference needs none */
    free(wt), free(a.part);
    mdc_cpu_scalar_conv1x1_backward(be, x, n, cin, w, cout, dy, dx, dw, db);
    return;
  }
  if (wt) mdc_avx2_pack_transposed(w, cin, cout, wt);
  mdc_threadpool_parallel_for(ctx->pool, a.groups, c1b_task, &a);
  if (a.part) mdc_avx2_partials_add(a.part, a.groups, wsz, dw, cout, db);
  free(wt), free(a.part);
}

/* -------------------------------------------------- dwconv3x3_backward */

#define DWB_SUB 256      /* pixels of a row summed in float before going to double */
#define DWB_MAX_TASKS 64 /* row groups of the weight gradient */

typedef struct dwb_args {
  const float *x, *dy;
  double *part; /* [tasks][10][c]: 9 taps, then the bias */
  int h, w_, c, tasks, rows; /* rows: batch * h */
} dwb_args;

/* Tap row D of one pixel: x(py + D - 1, px - 1 .. px + 1) times g. */
#define DWB_ROW(D, A0, A1, A2)                                                            \
  if (xr[D]) {                                                                            \
    const float *p = xr[D] + (size_t)px * c + j;                                          \
    if (px > 0) A0 = _mm256_fmadd_ps(mdc_avx2_load(p - c, nj, m), g, A0);                 \
    A1 = _mm256_fmadd_ps(mdc_avx2_load(p, nj, m), g, A1);                                 \
    if (px < w - 1) A2 = _mm256_fmadd_ps(mdc_avx2_load(p + c, nj, m), g, A2);             \
  }

/* A group of rows (of all batch * h) of the weight gradient: per row, 8
 * channels and up to DWB_SUB pixels at a time in 10 registers (9 taps +
 * bias). */
static void dwb_dw_task(void *arg, int task, int thread) {
  (void)thread;
  const dwb_args *a = arg;
  const int c = a->c, w = a->w_;
  int r0 = (int)((size_t)a->rows * task / a->tasks);
  int r1 = (int)((size_t)a->rows * (task + 1) / a->tasks);
  double *pw = a->part + (size_t)task * 10 * c;
  memset(pw, 0, (size_t)10 * c * sizeof(double));
  for (int row = r0; row < r1; row++) {
    const int py = row % a->h;
    const float *x = a->x + (size_t)(row - py) * w * c; /* its image */
    const float *xr[3], *gr = a->dy + (size_t)row * w * c;
    for (int d = 0; d < 3; d++) {
      int sy = py + d - 1;
      xr[d] = sy < 0 || sy >= a->h ? NULL : x + (size_t)sy * w * c;
    }
    for (int j = 0; j < c; j += 8) {
      int nj = c - j < 8 ? c - j : 8;
      __m256i m = mdc_avx2_tail_mask(nj);
      for (int px0 = 0; px0 < w; px0 += DWB_SUB) {
        int px1 = w - px0 < DWB_SUB ? w : px0 + DWB_SUB;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0;
        __m256 a7 = a0, a8 = a0, ab = a0;
        for (int px = px0; px < px1; px++) {
          __m256 g = mdc_avx2_load(gr + (size_t)px * c + j, nj, m);
          ab = _mm256_add_ps(ab, g);
          DWB_ROW(0, a0, a1, a2)
          DWB_ROW(1, a3, a4, a5)
          DWB_ROW(2, a6, a7, a8)
        }
        const __m256 acc[10] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, ab};
        for (int t = 0; t < 10; t++) mdc_avx2_add_to_double(pw + (size_t)t * c + j, acc[t], nj);
      }
    }
  }
}

void mdc_avx2_dwconv3x3_backward(mdc_backend *be, const float *x, int batch, int h, int w,
                                 int c, const float *wt, const float *dy, float *dx, float *dwt,
                                 float *db) {
  if (c <= 0 || h <= 0 || w <= 0 || batch <= 0) return;
  const int rows = batch * h;
  dwb_args a = {x, dy, NULL, h, w, c, rows < DWB_MAX_TASKS ? rows : DWB_MAX_TASKS, rows};
  /* dx(sy, sx) = sum over taps of dy(sy - ky + 1, sx - kx + 1) w[ky][kx]:
   * the forward convolution of dy with the taps flipped and no bias. */
  float *flipped = dx ? malloc((size_t)9 * c * sizeof(float)) : NULL;
  if (dwt || db) a.part = malloc((size_t)a.tasks * 10 * c * sizeof(double));
  if ((dx && !flipped) || ((dwt || db) && !a.part)) {
    free(flipped);
    free(a.part);
    mdc_cpu_scalar_dwconv3x3_backward(be, x, batch, h, w, c, wt, dy, dx, dwt, db);
    return;
  }
  if (dx) {
    for (int t = 0; t < 9; t++)
      memcpy(flipped + (size_t)t * c, wt + (size_t)(8 - t) * c, (size_t)c * sizeof(float));
    be->dwconv3x3(be, dy, batch, h, w, c, flipped, NULL, dx);
    free(flipped);
  }
  mdc_threadpool *pool = mdc_avx2_pool(be);
  if (!a.part) return;
  mdc_threadpool_parallel_for(pool, a.tasks, dwb_dw_task, &a);
  for (int t = 0; t < 10; t++) {
    float *out = t < 9 ? (dwt ? dwt + (size_t)t * c : NULL) : db;
    if (!out) continue;
    for (int k = 0; k < c; k++) {
      double s = 0.0;
      for (int q = 0; q < a.tasks; q++) s += a.part[((size_t)q * 10 + t) * c + k];
      out[k] += (float)s;
    }
  }
  free(a.part);
}
