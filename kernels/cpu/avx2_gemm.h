/* avx2_gemm.h - the register-blocked GEMM micro-kernel behind every
 * convolution of the AVX2 backend (1x1, 3x3, 2x2 stride 2, and the fused
 * NAFBlock).  Include only from files built with -mavx2 -mfma.
 *
 * A micro-kernel call computes MR (6) output rows (pixels) x 16 output
 * columns (two ymm vectors, the second `off1` weight columns after the
 * first) with 12 accumulators kept in registers:
 *   acc[r] = bias + sum over segments s, k < seg.k of seg.x[r][k] * seg.w[k * ldw]
 * A segment is one input tap (a 3x3 conv has up to 9) so that padding and
 * strides are just per-row pointers.  Weights are in [k][cout] layout and
 * read in place; x values are broadcast.  Rows r >= mr are computed from
 * valid memory but not stored. */
#ifndef MDC_AVX2_GEMM_H
#define MDC_AVX2_GEMM_H

#include <immintrin.h>
#include <stddef.h>

#define MDC_MR 6
#define MDC_MAX_SEG 9

enum {
  MDC_EPI_BIAS,  /* y = acc + b */
  MDC_EPI_RESID, /* y = r + g * (acc + b)   (r may alias y) */
  MDC_EPI_MUL,   /* y = r * (acc + b) */
  MDC_EPI_GATE,  /* y[0..8) = (acc0 + b0) * (acc1 + b1): SimpleGate of two column groups */
  MDC_EPI_COUNT
};

typedef struct mdc_ukr_seg {
  const float *x[MDC_MR]; /* row pointers at the segment's first k */
  const float *w;         /* weights at (first k, column j) */
  int k;
} mdc_ukr_seg;

typedef struct mdc_ukr {
  int nseg;
  mdc_ukr_seg seg[MDC_MAX_SEG];
  ptrdiff_t ldw;  /* weight row stride */
  ptrdiff_t off1; /* column offset of the second vector: 8, or c for GATE */
  int mr;         /* rows to store, 1..MR */
  int init_y;     /* start from y instead of the bias (later K chunks) */
  const float *b0, *b1; /* bias at the two column groups, or NULL */
  __m256i m0, m1;       /* column masks (masked kernels) */
  float *y[MDC_MR];       /* output rows at column j */
  const float *r[MDC_MR]; /* RESID/MUL operand rows at column j */
  const float *g;         /* RESID scale at column j */
} mdc_ukr;

typedef void (*mdc_ukr_fn)(const mdc_ukr *u);

/* nvec: 1 (8 columns) or 2 (16 columns; GATE always 2); masked: use m0/m1
 * for partial column groups. */
mdc_ukr_fn mdc_avx2_ukr_pick(int nvec, int masked, int epi);

/* Lanes [0, n) set, n in 0..8. */
static inline __m256i mdc_avx2_tail_mask(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* A GEMM's operands: y[i][0..cout) = epilogue(x[i] . w + b).  For GATE,
 * `cout` is c and w has 2c columns:
 * y = (x.w[:, :c] + b[:c]) * (x.w[:, c:] + b[c:]).
 * Weights are either [k][ldw] in place, or `packed` by mdc_avx2_pack into
 * contiguous zero-padded panels: a panel's rows then sit in consecutive
 * cache lines instead of ldw apart (power-of-two strides of 512 B and more
 * map a panel onto a few L1 sets and miss). */
typedef struct mdc_gemm {
  const float *w, *b;
  ptrdiff_t ldw;
  int k, cout, epi, packed;
  const float *g;
} mdc_gemm;

/* Packed layout: panels of 16 columns (GATE: 8 columns of each half side
 * by side), the last one 8 wide when at most 8 columns remain; the panel
 * at column j starts at j * k (GATE: 2 j k), its rows are `width` floats. */
size_t mdc_avx2_packed_size(int k, int cout, int epi); /* floats */
void mdc_avx2_pack(const float *w, int k, ptrdiff_t ldw, int cout, int epi, float *dst);

/* Sets u's column fields (masks, ldw, off1, bias, g) for the panel at
 * column j, picks its kernel and returns the weights of the panel's first
 * row in *wp; returns the panel's step (16, GATE 8). */
int mdc_avx2_panel_setup(mdc_ukr *u, const mdc_gemm *p, int j, mdc_ukr_fn *fn, const float **wp);

void mdc_avx2_gemm_rows(const mdc_gemm *p, const float *x, ptrdiff_t ldx, int m, float *y,
                        ptrdiff_t ldy, const float *r, ptrdiff_t ldr);

#endif
