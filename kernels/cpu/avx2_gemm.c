/* avx2_gemm.c - the 6 x 16 FMA micro-kernel and a dense row GEMM on top
 * of it.  Built with -mavx2 -mfma. */
#include "avx2_gemm.h"

#define MR MDC_MR

/* One body, specialised by the constant arguments (always_inline) so the
 * hot loop holds no branches: 12 accumulators + 2 weight vectors + 1
 * broadcast = 15 of the 16 ymm registers. */
static inline __attribute__((always_inline)) void ukr_body(const mdc_ukr *u, const int nv,
                                                           const int masked, const int epi) {
  const __m256i m0 = u->m0, m1 = u->m1;
  /* Named accumulators: GCC keeps arrays of vectors in memory here. */
  __m256 a00, a01, a10, a11, a20, a21, a30, a31, a40, a41, a50, a51;
  if (u->init_y) {
#define MDC_INIT_Y(R)                                                                         \
  {                                                                                         \
    const float *yr = u->y[R < u->mr ? R : 0];                                              \
    a##R##0 = masked ? _mm256_maskload_ps(yr, m0) : _mm256_loadu_ps(yr);                    \
    a##R##1 = nv == 2 ? (masked ? _mm256_maskload_ps(yr + 8, m1) : _mm256_loadu_ps(yr + 8)) \
                      : _mm256_setzero_ps();                                                \
  }
    MDC_INIT_Y(0) MDC_INIT_Y(1) MDC_INIT_Y(2) MDC_INIT_Y(3) MDC_INIT_Y(4) MDC_INIT_Y(5)
#undef MDC_INIT_Y
  } else {
    __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
    if (u->b0) b0 = masked ? _mm256_maskload_ps(u->b0, m0) : _mm256_loadu_ps(u->b0);
    if (nv == 2 && u->b1) b1 = masked ? _mm256_maskload_ps(u->b1, m1) : _mm256_loadu_ps(u->b1);
    a00 = a10 = a20 = a30 = a40 = a50 = b0;
    a01 = a11 = a21 = a31 = a41 = a51 = b1;
  }

  const ptrdiff_t ldw = u->ldw, off1 = u->off1;
  for (int s = 0; s < u->nseg; s++) {
    const mdc_ukr_seg *sg = &u->seg[s];
    const float *w = sg->w;
    const float *x0 = sg->x[0], *x1 = sg->x[1], *x2 = sg->x[2];
    const float *x3 = sg->x[3], *x4 = sg->x[4], *x5 = sg->x[5];
    const int kn = sg->k;
    for (int k = 0; k < kn; k++) {
      __m256 w0 = masked ? _mm256_maskload_ps(w, m0) : _mm256_loadu_ps(w);
      __m256 w1 = _mm256_setzero_ps();
      if (nv == 2) w1 = masked ? _mm256_maskload_ps(w + off1, m1) : _mm256_loadu_ps(w + off1);
      __m256 xb;
#define MDC_ROW(R)                                         \
  xb = _mm256_broadcast_ss(x##R + k);                      \
  a##R##0 = _mm256_fmadd_ps(xb, w0, a##R##0);              \
  if (nv == 2) a##R##1 = _mm256_fmadd_ps(xb, w1, a##R##1);
      MDC_ROW(0) MDC_ROW(1) MDC_ROW(2) MDC_ROW(3) MDC_ROW(4) MDC_ROW(5)
#undef MDC_ROW
      w += ldw;
    }
  }

  __m256 g0 = _mm256_setzero_ps(), g1 = _mm256_setzero_ps();
  if (epi == MDC_EPI_RESID) {
    g0 = masked ? _mm256_maskload_ps(u->g, m0) : _mm256_loadu_ps(u->g);
    if (nv == 2) g1 = masked ? _mm256_maskload_ps(u->g + 8, m1) : _mm256_loadu_ps(u->g + 8);
  }
#define MDC_STORE(R)                                                                   \
  if (R < u->mr) {                                                                     \
    float *yr = u->y[R];                                                               \
    __m256 v0 = a##R##0, v1 = a##R##1;                                                 \
    if (epi == MDC_EPI_GATE) {                                                         \
      v0 = _mm256_mul_ps(v0, v1);                                                      \
    } else if (epi == MDC_EPI_RESID || epi == MDC_EPI_MUL) {                           \
      const float *rr = u->r[R];                                                       \
      __m256 r0 = masked ? _mm256_maskload_ps(rr, m0) : _mm256_loadu_ps(rr);           \
      __m256 r1 = _mm256_setzero_ps();                                                 \
      if (nv == 2) r1 = masked ? _mm256_maskload_ps(rr + 8, m1) : _mm256_loadu_ps(rr + 8); \
      if (epi == MDC_EPI_RESID) {                                                      \
        v0 = _mm256_fmadd_ps(g0, v0, r0);                                              \
        v1 = _mm256_fmadd_ps(g1, v1, r1);                                              \
      } else {                                                                         \
        v0 = _mm256_mul_ps(r0, v0);                                                    \
        v1 = _mm256_mul_ps(r1, v1);                                                    \
      }                                                                                \
    }                                                                                  \
    if (masked)                                                                        \
      _mm256_maskstore_ps(yr, m0, v0);                                                 \
    else                                                                               \
      _mm256_storeu_ps(yr, v0);                                                        \
    if (nv == 2 && epi != MDC_EPI_GATE) {                                              \
      if (masked)                                                                      \
        _mm256_maskstore_ps(yr + 8, m1, v1);                                           \
      else                                                                             \
        _mm256_storeu_ps(yr + 8, v1);                                                  \
    }                                                                                  \
  }
  MDC_STORE(0) MDC_STORE(1) MDC_STORE(2) MDC_STORE(3) MDC_STORE(4) MDC_STORE(5)
#undef MDC_STORE
}

#define MDC_UKR(EPI, NV, MS) \
  static void ukr_##EPI##_##NV##_##MS(const mdc_ukr *u) { ukr_body(u, NV, MS, EPI); }
#define MDC_UKR4(EPI) MDC_UKR(EPI, 1, 0) MDC_UKR(EPI, 1, 1) MDC_UKR(EPI, 2, 0) MDC_UKR(EPI, 2, 1)
MDC_UKR4(MDC_EPI_BIAS)
MDC_UKR4(MDC_EPI_RESID)
MDC_UKR4(MDC_EPI_MUL)
MDC_UKR(MDC_EPI_GATE, 2, 0)
MDC_UKR(MDC_EPI_GATE, 2, 1)

mdc_ukr_fn mdc_avx2_ukr_pick(int nvec, int masked, int epi) {
#define MDC_ROW4(EPI)                                                                     \
  {{ukr_##EPI##_1_0, ukr_##EPI##_1_1}, {ukr_##EPI##_2_0, ukr_##EPI##_2_1}}
  static const mdc_ukr_fn table[MDC_EPI_COUNT][2][2] = {
      MDC_ROW4(MDC_EPI_BIAS),
      MDC_ROW4(MDC_EPI_RESID),
      MDC_ROW4(MDC_EPI_MUL),
      {{ukr_MDC_EPI_GATE_2_0, ukr_MDC_EPI_GATE_2_1}, {ukr_MDC_EPI_GATE_2_0, ukr_MDC_EPI_GATE_2_1}},
  };
#undef MDC_ROW4
  return table[epi][nvec == 2][masked != 0];
}

size_t mdc_avx2_packed_size(int k, int cout, int epi) {
  size_t cols = (size_t)(cout + 7) / 8 * 8;
  return (size_t)k * (epi == MDC_EPI_GATE ? 2 * cols : cols);
}

void mdc_avx2_pack(const float *w, int k, ptrdiff_t ldw, int cout, int epi, float *dst) {
  const int gate = epi == MDC_EPI_GATE, step = gate ? 8 : 16;
  for (int j = 0; j < cout; j += step) {
    int rem = cout - j, width = gate || rem > 8 ? 16 : 8;
    float *panel = dst + (size_t)(gate ? 2 * j : j) * k;
    for (int kk = 0; kk < k; kk++) {
      const float *src = w + kk * ldw;
      float *row = panel + (size_t)kk * width;
      for (int c = 0; c < width; c++) {
        int col = gate ? (c < 8 ? j + c : cout + j + c - 8) : j + c;
        int valid = gate ? (c < 8 ? c : c - 8) < rem : c < rem;
        row[c] = valid ? src[col] : 0.0f;
      }
    }
  }
}

int mdc_avx2_panel_setup(mdc_ukr *u, const mdc_gemm *p, int j, mdc_ukr_fn *fn, const float **wp) {
  const int cout = p->cout, rem = cout - j;
  const float *b = p->b;
  int nv, masked;
  if (p->epi == MDC_EPI_GATE) {
    nv = 2;
    masked = rem < 8;
    u->m0 = u->m1 = mdc_avx2_tail_mask(rem < 8 ? rem : 8);
    u->b1 = b ? b + cout + j : NULL;
  } else {
    nv = rem > 8 ? 2 : 1;
    masked = rem < 16 && rem != 8;
    u->m0 = mdc_avx2_tail_mask(rem < 8 ? rem : 8);
    u->m1 = mdc_avx2_tail_mask(rem >= 16 ? 8 : rem > 8 ? rem - 8 : 0);
    u->b1 = b ? b + j + 8 : NULL;
  }
  u->b0 = b ? b + j : NULL;
  u->g = p->g ? p->g + j : NULL;
  if (p->packed) {
    int width = p->epi == MDC_EPI_GATE || rem > 8 ? 16 : 8;
    *wp = p->w + (size_t)(p->epi == MDC_EPI_GATE ? 2 * j : j) * p->k;
    u->ldw = width;
    u->off1 = 8;
  } else {
    *wp = p->w + j;
    u->ldw = p->ldw;
    u->off1 = p->epi == MDC_EPI_GATE ? cout : 8;
  }
  *fn = mdc_avx2_ukr_pick(nv, masked, p->epi);
  return p->epi == MDC_EPI_GATE ? 8 : 16;
}

void mdc_avx2_gemm_rows(const mdc_gemm *p, const float *x, ptrdiff_t ldx, int m, float *y,
                        ptrdiff_t ldy, const float *r, ptrdiff_t ldr) {
  mdc_ukr u;
  u.nseg = 1;
  u.init_y = 0;
  u.seg[0].k = p->k;
  const int needs_r = p->epi == MDC_EPI_RESID || p->epi == MDC_EPI_MUL;
  for (int j = 0; j < p->cout;) {
    mdc_ukr_fn fn;
    int step = mdc_avx2_panel_setup(&u, p, j, &fn, &u.seg[0].w);
    /* Full tiles: pointers advance by MR rows. */
    for (int rr = 0; rr < MR; rr++) {
      u.seg[0].x[rr] = x + rr * ldx;
      u.y[rr] = y + rr * ldy + j;
      u.r[rr] = needs_r ? r + rr * ldr + j : NULL;
    }
    u.mr = MR;
    int i = 0;
    for (; i + MR <= m; i += MR) {
      fn(&u);
      for (int rr = 0; rr < MR; rr++) {
        u.seg[0].x[rr] += MR * ldx;
        u.y[rr] += MR * ldy;
        if (needs_r) u.r[rr] += MR * ldr;
      }
    }
    if (i < m) { /* leftover rows: extra rows re-read row i, not stored */
      u.mr = m - i;
      for (int rr = 0; rr < MR; rr++) {
        ptrdiff_t row = i + (rr < u.mr ? rr : 0);
        u.seg[0].x[rr] = x + row * ldx;
        u.y[rr] = y + row * ldy + j;
        u.r[rr] = needs_r ? r + row * ldr + j : NULL;
      }
      fn(&u);
    }
    j += step;
  }
}
