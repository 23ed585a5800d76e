/* avx2_conv.c - the AVX2 convolutions: 1x1 (a GEMM over pixel blocks),
 * 3x3 and 2x2 stride 2 (the same micro-kernel with one segment per tap),
 * and a 3x3 path for very few output channels.  Built with -mavx2 -mfma. */
#include <stdlib.h>

#include "avx2_internal.h"

#define MR MDC_MR
#define KCHUNK 1024 /* K chunk of the 3x3 / 2x2 convolutions = zero row length */

/* Stands in for input taps outside the image (zero padding). */
static const float zero_row[KCHUNK];

/* Packed weights (see mdc_gemm) in 64-byte aligned memory; NULL when out
 * of memory, and the caller then reads the weights in place (same
 * results, only slower). */
static float *pack_weights(const float *w, int taps, int k, int cout, size_t *tap_stride) {
  size_t per_tap = mdc_avx2_packed_size(k, cout, MDC_EPI_BIAS);
  size_t bytes = mdc_align64((size_t)taps * per_tap * sizeof(float));
  float *p = bytes ? aligned_alloc(64, bytes) : NULL;
  if (!p) return NULL;
  for (int t = 0; t < taps; t++)
    mdc_avx2_pack(w + (size_t)t * k * cout, k, cout, cout, MDC_EPI_BIAS, p + t * per_tap);
  *tap_stride = per_tap;
  return p;
}

/* ------------------------------------------------------------ conv1x1 */

typedef struct conv1x1_args {
  mdc_gemm g;
  const float *x;
  float *y;
  size_t n, block;
} conv1x1_args;

static void conv1x1_task(void *arg, int task, int thread) {
  (void)thread;
  const conv1x1_args *a = arg;
  size_t p0 = (size_t)task * a->block;
  size_t m = a->n - p0 < a->block ? a->n - p0 : a->block;
  mdc_avx2_gemm_rows(&a->g, a->x + p0 * a->g.k, a->g.k, (int)m, a->y + p0 * a->g.cout,
                     a->g.cout, NULL, 0);
}

/* Pixel blocks: x block about 48 KiB (stays in L2 across the column
 * panels), a multiple of the micro-kernel's rows. */
static size_t conv1x1_block(int cin) {
  size_t b = 12288 / (size_t)(cin > 0 ? cin : 1);
  b = b / MR * MR;
  if (b < 4 * MR) b = 4 * MR;
  if (b > 96 * MR) b = 96 * MR;
  return b;
}

void mdc_avx2_conv1x1(mdc_backend *be, const float *x, size_t n, int cin, const float *w,
                      const float *b, int cout, float *y) {
  if (n == 0 || cout <= 0) return;
  conv1x1_args a;
  a.g = (mdc_gemm){.w = w, .b = b, .ldw = cout, .k = cin, .cout = cout, .epi = MDC_EPI_BIAS};
  a.x = x;
  a.y = y;
  a.n = n;
  a.block = conv1x1_block(cin);
  size_t stride;
  float *packed = n >= 4 * MR ? pack_weights(w, 1, cin, cout, &stride) : NULL;
  if (packed) a.g.w = packed, a.g.packed = 1;
  size_t tasks = (n + a.block - 1) / a.block;
  mdc_threadpool_parallel_for(mdc_avx2_pool(be), (int)tasks, conv1x1_task, &a);
  free(packed);
}

/* ------------------------------------------------- conv3x3 / conv2x2s2 */

typedef struct convk_args {
  mdc_gemm g; /* tap 0's weights */
  size_t tap_stride;
  const float *x;
  float *y;
  int h, w_, cin, cout, stride2; /* h: one image's (3x3) or all rows (2x2s2) */
} convk_args;

/* One output row (3x3: of all batch * h): micro-tiles of 6 pixels along
 * it, one segment per tap (taps outside the image read zero_row), K split
 * in KCHUNK pieces that accumulate into y. */
static void convk_task(void *arg, int row, int thread) {
  (void)thread;
  const convk_args *a = arg;
  const int ks = a->stride2 ? 2 : 3, ow = a->stride2 ? a->w_ / 2 : a->w_;
  const int oy = a->stride2 ? row : row % a->h;
  const float *x = a->x + (size_t)(row - oy) * a->w_ * a->cin; /* 3x3: its image */
  float *yrow = a->y + (size_t)row * ow * a->cout;
  mdc_ukr u;
  for (int k0 = 0; k0 < a->cin; k0 += KCHUNK) {
    int kn = a->cin - k0 < KCHUNK ? a->cin - k0 : KCHUNK;
    u.init_y = k0 > 0;
    for (int j = 0; j < a->cout;) {
      mdc_ukr_fn fn;
      const float *wp;
      int step = mdc_avx2_panel_setup(&u, &a->g, j, &fn, &wp);
      wp += (size_t)k0 * u.ldw;
      for (int i = 0; i < ow; i += MR) {
        u.mr = ow - i < MR ? ow - i : MR;
        for (int r = 0; r < MR; r++) u.y[r] = yrow + (size_t)(i + (r < u.mr ? r : 0)) * a->cout + j;
        u.nseg = 0;
        for (int ky = 0; ky < ks; ky++) {
          int sy = a->stride2 ? 2 * oy + ky : oy + ky - 1;
          if (sy < 0 || sy >= a->h) continue;
          const float *xrow = x + (size_t)sy * a->w_ * a->cin + k0;
          for (int kx = 0; kx < ks; kx++) {
            mdc_ukr_seg *sg = &u.seg[u.nseg++];
            sg->k = kn;
            sg->w = wp + (size_t)(ky * ks + kx) * a->tap_stride;
            for (int r = 0; r < MR; r++) {
              int px = i + (r < u.mr ? r : 0);
              int sx = a->stride2 ? 2 * px + kx : px + kx - 1;
              sg->x[r] = sx < 0 || sx >= a->w_ ? zero_row : xrow + (size_t)sx * a->cin;
            }
          }
        }
        fn(&u);
      }
      j += step;
    }
  }
}

/* 3x3: batch images of h rows; 2x2s2: batch 1, h all rows. */
static void convk_run(mdc_backend *be, const float *x, int batch, int h, int w, int cin,
                      const float *wt, const float *b, int cout, float *y, int stride2) {
  if (cout <= 0 || batch <= 0 || h <= 0) return;
  int taps = stride2 ? 4 : 9;
  convk_args a;
  a.g = (mdc_gemm){.w = wt, .b = b, .ldw = cout, .k = cin, .cout = cout, .epi = MDC_EPI_BIAS};
  a.tap_stride = (size_t)cin * cout;
  a.x = x, a.y = y, a.h = h, a.w_ = w, a.cin = cin, a.cout = cout, a.stride2 = stride2;
  float *packed = pack_weights(wt, taps, cin, cout, &a.tap_stride);
  if (packed) a.g.w = packed, a.g.packed = 1;
  mdc_threadpool_parallel_for(mdc_avx2_pool(be), stride2 ? h / 2 : batch * h, convk_task, &a);
  free(packed);
}

/* conv3x3 with few output channels (the network's last layer, cout = 3):
 * the GEMM tile would waste most of its 16 columns, so vectorise over
 * input channels instead: NP pixels x cout accumulators (at most 12)
 * share each x and weight load; weights are transposed to wt[o][tap][cin];
 * the lanes are summed 8 outputs at a time by reduce8. */
#define SMALL_COUT 4

typedef struct small_args {
  const float *x, *wt, *b; /* wt transposed */
  float *y;
  int h, w, cin, cout;
} small_args;

/* np pixels from column px -> y[0 .. valid * co).  Border tiles pass
 * per-tap pointers p[pix][tap] (zero_row outside); interior tiles pass
 * p = NULL and read the 3 rows (NULL = outside) at fixed offsets. */
static inline __attribute__((always_inline)) void small_tile(const small_args *a,
                                                             const float *const (*p)[9],
                                                             const float *const *rows, int px,
                                                             float *y, int valid,
                                                             const float *bias, const int np,
                                                             const int co) {
  const int cin = a->cin, cf = cin / 8 * 8;
  const __m256i mt = mdc_avx2_tail_mask(cin - cf);
  const size_t ow = (size_t)9 * cin; /* stride between output channels of wt */
  const __m256 z = _mm256_setzero_ps();
  __m256 a00 = z, a01 = z, a02 = z, a03 = z, a10 = z, a11 = z, a12 = z, a13 = z;
  __m256 a20 = z, a21 = z, a22 = z, a30 = z, a31 = z, a32 = z;
  for (int t = 0; t < 9; t++) {
    const float *w0 = a->wt + (size_t)t * cin, *q0, *q1, *q2, *q3;
    if (p) {
      q0 = p[0][t], q1 = p[1][t], q2 = p[np > 2 ? 2 : 0][t], q3 = p[np > 3 ? 3 : 0][t];
    } else {
      if (!rows[t / 3]) continue;
      q0 = rows[t / 3] + (size_t)(px + t % 3 - 1) * cin;
      q1 = q0 + cin, q2 = q1 + cin, q3 = q2 + cin;
    }
    for (int j = 0; j < cin; j += 8) {
      const int full = j < cf;
#define SMALL_LD(q) (full ? _mm256_loadu_ps((q) + j) : _mm256_maskload_ps((q) + j, mt))
      __m256 x0 = SMALL_LD(q0), x1 = SMALL_LD(q1), x2 = z, x3 = z, wv;
      if (np > 2) x2 = SMALL_LD(q2), x3 = SMALL_LD(q3);
#define SMALL_O(O)                                       \
  if (co > O) {                                          \
    wv = SMALL_LD(w0 + O * ow);                          \
    a0##O = _mm256_fmadd_ps(x0, wv, a0##O);              \
    a1##O = _mm256_fmadd_ps(x1, wv, a1##O);              \
    SMALL_O34(O)                                         \
  }
#define SMALL_O34(O)                                     \
  if (np > 2) {                                          \
    a2##O = _mm256_fmadd_ps(x2, wv, a2##O);              \
    a3##O = _mm256_fmadd_ps(x3, wv, a3##O);              \
  }
      SMALL_O(0) SMALL_O(1) SMALL_O(2)
#undef SMALL_O34
#define SMALL_O34(O)
      SMALL_O(3)
#undef SMALL_O34
#undef SMALL_O
#undef SMALL_LD
    }
  }
  /* outputs in y order: pixel-major, channel-minor */
  const __m256 acc[4][4] = {{a00, a01, a02, a03}, {a10, a11, a12, a13},
                            {a20, a21, a22, z}, {a30, a31, a32, z}};
  __m256 v[16];
  int nq = valid * co;
  for (int q = 0; q < 16; q++) v[q] = q < np * co ? acc[q / co][q % co] : z;
  for (int q0 = 0; q0 < nq; q0 += 8) {
    int cnt = nq - q0 < 8 ? nq - q0 : 8;
    __m256 r = _mm256_add_ps(mdc_avx2_reduce8(v + q0), _mm256_loadu_ps(bias + q0));
    _mm256_maskstore_ps(y + q0, mdc_avx2_tail_mask(cnt), r);
  }
}

/* One output row of all batch * h. */
static void small_cout_task(void *arg, int row, int thread) {
  (void)thread;
  const small_args *a = arg;
  const int py = row % a->h;
  const float *x = a->x + (size_t)(row - py) * a->w * a->cin; /* its image */
  const float *rows[3];
  for (int d = 0; d < 3; d++) {
    int sy = py + d - 1;
    rows[d] = sy < 0 || sy >= a->h ? NULL : x + (size_t)sy * a->w * a->cin;
  }
  const int np = a->cout <= 3 ? 4 : 2;
  float bias[16]; /* bias in output order, pixel-major */
  for (int q = 0; q < 16; q++) bias[q] = a->b && q < np * a->cout ? a->b[q % a->cout] : 0.0f;
  for (int px = 0; px < a->w; px += np) {
    const float *p[4][9];
    int valid = a->w - px < np ? a->w - px : np, border = px == 0 || px + np >= a->w;
    if (border)
      for (int i = 0; i < np; i++)
        for (int t = 0; t < 9; t++) {
          int d = t / 3, sx = px + (i < valid ? i : 0) + t % 3 - 1;
          p[i][t] = !rows[d] || sx < 0 || sx >= a->w ? zero_row : rows[d] + (size_t)sx * a->cin;
        }
    const float *const(*pp)[9] = border ? (const float *const(*)[9])p : NULL;
    float *y = a->y + ((size_t)row * a->w + px) * a->cout;
    switch (a->cout) { /* constant counts keep the accumulators in registers */
      case 1: small_tile(a, pp, rows, px, y, valid, bias, 4, 1); break;
      case 2: small_tile(a, pp, rows, px, y, valid, bias, 4, 2); break;
      case 3: small_tile(a, pp, rows, px, y, valid, bias, 4, 3); break;
      default: small_tile(a, pp, rows, px, y, valid, bias, 2, 4); break;
    }
  }
}

/* Returns 0 when it cannot run (shape or memory); the caller falls back
 * to the GEMM path. */
static int conv3x3_small_cout(mdc_backend *be, const float *x, int batch, int h, int w, int cin,
                              const float *wt, const float *b, int cout, float *y) {
  if (cout > SMALL_COUT || cin < 8 || cin > KCHUNK) return 0;
  float *wtt = malloc((size_t)9 * cin * cout * sizeof(float));
  if (!wtt) return 0;
  for (int t = 0; t < 9; t++)
    for (int k = 0; k < cin; k++)
      for (int o = 0; o < cout; o++)
        wtt[((size_t)o * 9 + t) * cin + k] = wt[((size_t)t * cin + k) * cout + o];
  small_args a = {x, wtt, b, y, h, w, cin, cout};
  mdc_threadpool_parallel_for(mdc_avx2_pool(be), batch * h, small_cout_task, &a);
  free(wtt);
  return 1;
}

void mdc_avx2_conv3x3(mdc_backend *be, const float *x, int batch, int h, int w, int cin,
                      const float *wt, const float *b, int cout, float *y) {
  if (batch <= 0 || h <= 0 || w <= 0) return;
  if (conv3x3_small_cout(be, x, batch, h, w, cin, wt, b, cout, y)) return;
  convk_run(be, x, batch, h, w, cin, wt, b, cout, y, 0);
}

void mdc_avx2_conv2x2s2(mdc_backend *be, const float *x, int h, int w, int cin,
                        const float *wt, const float *b, int cout, float *y) {
  convk_run(be, x, 1, h, w, cin, wt, b, cout, y, 1);
}
