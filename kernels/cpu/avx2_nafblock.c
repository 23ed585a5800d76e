/* avx2_nafblock.c - the fused NAFBlock forward of the AVX2 backend.
 *
 * Pass A, per tile of rows x columns (with a one-pixel halo):
 *   LN1 -> conv1 (c -> 2c) into a ring of 3 rows -> depthwise 3x3 ->
 *   SimpleGate -> t (c channels, stored), plus per-tile channel sums.
 * Pooling: global = the tile sums reduced in tile order (a vector);
 *   windowed = box-row sums of t by a vertical sliding pass
 *   (mdc_avx2_boxpool_vertical); the horizontal pass is done per block in
 *   pass B, so the means never go through memory.
 * Pass B, per block of pixels (a row segment or whole rows) that stays in
 * L2:
 *   s = sca(pool) (global: folded into conv3's weights once; windowed: a
 *   1x1 conv of the block's box means, multiplied into t in the epilogue) ->
 *   conv3 -> y = x + beta t (epilogue) -> LN2 -> conv4 + SimpleGate
 *   (epilogue) -> conv5 -> out = y + gamma t (epilogue, in place).
 * Tiles and blocks depend only on (c, h, w), so the result is the same for
 * any thread count. */
#include <string.h>

#include "avx2_internal.h"

typedef struct naf_geom {
  int c, h, w, global;
  size_t n;
  int tw, ncols, rs, nrows, ntiles; /* pass A tiles */
  int pb, nblocks;                  /* pass B pixel blocks, at most pb pixels: */
  int bseg, bsegw, brows;           /* bseg segments of bsegw per row, or brows rows */
  /* byte offsets from the 64-aligned scratch base */
  size_t off_t, off_m, off_sums, off_vec, off_w3, off_pack, off_thr, thr_bytes, total;
  size_t pk1, pk3, pk4, pk5, pks; /* packed weights: float offsets in the pack area */
  size_t slot; /* ring row stride in floats: (tw + 2) * 2c */
} naf_geom;

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

/* Scratch layout (all parts 64-byte aligned):
 *   t        n x c floats      gated features of pass A
 *   m        n x c floats      box-row sums of t (windowed only)
 *   sums     ntiles x c doubles channel sums per pass-A tile
 *   vec      2c floats         global mean, s
 *   w3       c x c floats      diag(s) conv3_w (global only)
 *   pack     conv1, conv3 (global: diag(s) conv3), conv4 (GATE panels),
 *            conv5, sca (windowed) packed by mdc_avx2_pack
 *   threads  per thread, the largest of
 *              pass A: ring 3 x slot, zero row slot, LN row (tw+2) x c,
 *                      gate temp tw x 8 floats
 *              pass B: 3 x pb x c floats (LN2 / s*t, gated conv4, box
 *                      means), c doubles (box sums)
 *              pooling: mdc_avx2_boxpool_vertical_bytes (windowed)
 * plus 64 bytes to align the base. */
static void naf_geom_init(naf_geom *g, int c, int h, int w, int window, int threads) {
  g->c = c, g->h = h, g->w = w;
  g->global = mdc_pool_is_global(h, w, window);
  g->n = (size_t)h * w;

  /* Ring of 3 conv1 rows about 192 KiB: fits L2 with the rest. */
  int tw = 8192 / c - 2;
  if (tw < 8) tw = 8;
  if (w <= tw) {
    g->ncols = 1, g->tw = w;
  } else {
    g->ncols = (w + tw - 1) / tw;
    g->tw = (w + g->ncols - 1) / g->ncols;
  }
  /* About 12+ tiles for load balance; strips of >= 8 rows keep the
   * recomputed halo rows cheap. */
  int nrows = (12 + g->ncols - 1) / g->ncols;
  int rs = (h + nrows - 1) / nrows;
  if (rs < 8) rs = 8;
  if (rs > 64) rs = 64;
  g->rs = rs;
  g->nrows = (h + rs - 1) / rs;
  g->ntiles = g->nrows * g->ncols;

  /* Pass B blocks about 32 KiB per buffer, aligned to rows so the box
   * means of a block come from its rows of box-row sums. */
  int pb = 8192 / c;
  g->pb = pb < MDC_MR ? MDC_MR : pb;
  if (w > g->pb) {
    g->bseg = (w + g->pb - 1) / g->pb;
    g->bsegw = (w + g->bseg - 1) / g->bseg;
    g->brows = 1;
    g->nblocks = h * g->bseg;
  } else {
    g->bseg = 1, g->bsegw = w;
    g->brows = g->pb / w;
    g->nblocks = (h + g->brows - 1) / g->brows;
  }

  g->slot = (size_t)(g->tw + 2) * 2 * c;
  size_t off = 0, nc = g->n * c * sizeof(float);
  g->off_t = off, off += mdc_align64(nc);
  g->off_m = off, off += g->global ? 0 : mdc_align64(nc);
  g->off_sums = off, off += mdc_align64((size_t)g->ntiles * c * sizeof(double));
  g->off_vec = off, off += mdc_align64(2 * (size_t)c * sizeof(float));
  g->off_w3 = off, off += g->global ? mdc_align64((size_t)c * c * sizeof(float)) : 0;
  size_t pk = 0;
  g->pk1 = pk, pk += mdc_align64(mdc_avx2_packed_size(c, 2 * c, MDC_EPI_BIAS) * 4) / 4;
  g->pk3 = pk, pk += mdc_align64(mdc_avx2_packed_size(c, c, MDC_EPI_BIAS) * 4) / 4;
  g->pk4 = pk, pk += mdc_align64(mdc_avx2_packed_size(c, c, MDC_EPI_GATE) * 4) / 4;
  g->pk5 = pk, pk += mdc_align64(mdc_avx2_packed_size(c, c, MDC_EPI_BIAS) * 4) / 4;
  g->pks = pk, pk += g->global ? 0 : mdc_align64(mdc_avx2_packed_size(c, c, MDC_EPI_BIAS) * 4) / 4;
  g->off_pack = off, off += pk * sizeof(float);
  g->off_thr = off;
  size_t a = 4 * mdc_align64(g->slot * sizeof(float)) +
             mdc_align64((size_t)(g->tw + 2) * c * sizeof(float)) +
             mdc_align64((size_t)g->tw * 8 * sizeof(float));
  size_t b = 3 * mdc_align64((size_t)g->pb * c * sizeof(float)) +
             mdc_align64((size_t)c * sizeof(double));
  size_t t = max_sz(a, b);
  if (!g->global) t = max_sz(t, mdc_avx2_boxpool_vertical_bytes(h, w, c, window));
  g->thr_bytes = t;
  g->total = 64 + off + t * (size_t)threads;
}

size_t mdc_avx2_nafblock_scratch_size(mdc_backend *be, int c, int h, int w, int window) {
  if (c <= 0 || h <= 0 || w <= 0) return 64;
  naf_geom g;
  naf_geom_init(&g, c, h, w, window, mdc_cpu_ctx_of(be)->threads);
  return g.total;
}

typedef struct naf_run {
  naf_geom g;
  const mdc_nafblock_params *p;
  const float *x;
  float *y, eps;
  int window;
  char *base;
  float *t, *m, *w3, *mean, *s, *pack;
  double *sums;
} naf_run;

static char *thread_area(const naf_run *R, int thread) {
  return R->base + R->g.off_thr + (size_t)thread * R->g.thr_bytes;
}

/* ---------------------------------------------------------------- pass A */

/* Depthwise 3x3 over the ring rows (zero-padded columns), then SimpleGate;
 * writes `cnt` pixels of t and adds their channel sums.  Taps in (ky, kx)
 * order after the bias, 9 weights of one half in registers at a time. */
static void dwgate_row(const naf_run *R, const float *rows[3], int cnt, float *tmp, float *tout,
                       double *sums) {
  const int c = R->g.c, c2 = 2 * c;
  const float *w2 = R->p->conv2_w, *b2 = R->p->conv2_b;
  for (int j = 0; j < c; j += 8) {
    int nj = c - j < 8 ? c - j : 8;
    __m256i m = mdc_avx2_tail_mask(nj);
    __m256 wk[9], bias;
    for (int t = 0; t < 9; t++) wk[t] = mdc_avx2_load(w2 + t * c2 + j, nj, m);
    bias = b2 ? mdc_avx2_load(b2 + j, nj, m) : _mm256_setzero_ps();
    for (int l = 1; l <= cnt; l++) {
      __m256 acc = bias;
      for (int d = 0; d < 3; d++) {
        const float *q = rows[d] + (size_t)l * c2 + j;
        acc = _mm256_fmadd_ps(mdc_avx2_load(q - c2, nj, m), wk[3 * d], acc);
        acc = _mm256_fmadd_ps(mdc_avx2_load(q, nj, m), wk[3 * d + 1], acc);
        acc = _mm256_fmadd_ps(mdc_avx2_load(q + c2, nj, m), wk[3 * d + 2], acc);
      }
      _mm256_storeu_ps(tmp + (l - 1) * 8, acc);
    }
    for (int t = 0; t < 9; t++) wk[t] = mdc_avx2_load(w2 + t * c2 + c + j, nj, m);
    bias = b2 ? mdc_avx2_load(b2 + c + j, nj, m) : _mm256_setzero_ps();
    __m256 sum = _mm256_setzero_ps();
    for (int l = 1; l <= cnt; l++) {
      __m256 acc = bias;
      for (int d = 0; d < 3; d++) {
        const float *q = rows[d] + (size_t)l * c2 + c + j;
        acc = _mm256_fmadd_ps(mdc_avx2_load(q - c2, nj, m), wk[3 * d], acc);
        acc = _mm256_fmadd_ps(mdc_avx2_load(q, nj, m), wk[3 * d + 1], acc);
        acc = _mm256_fmadd_ps(mdc_avx2_load(q + c2, nj, m), wk[3 * d + 2], acc);
      }
      __m256 t = _mm256_mul_ps(acc, _mm256_loadu_ps(tmp + (l - 1) * 8));
      mdc_avx2_store(tout + (size_t)(l - 1) * c + j, nj, m, t);
      sum = _mm256_add_ps(sum, t);
    }
    float part[8];
    _mm256_storeu_ps(part, sum);
    for (int k = 0; k < nj; k++) sums[j + k] += part[k];
  }
}

/* LN1 + conv1 of image row r, image columns [col0, col0 + cnt), into ring
 * row `dst` (already offset to the first of those columns). */
static void conv1_row(const naf_run *R, int r, int col0, int cnt, float *ln, float *dst) {
  const mdc_nafblock_params *p = R->p;
  const int c = R->g.c;
  const float *xr = R->x + ((size_t)r * R->g.w + col0) * c;
  mdc_avx2_layernorm_rows(xr, (size_t)cnt, c, p->norm1_w, p->norm1_b, R->eps, ln, NULL, NULL);
  mdc_gemm g = {.w = R->pack + R->g.pk1, .b = p->conv1_b, .k = c, .cout = 2 * c,
                .epi = MDC_EPI_BIAS, .packed = 1};
  mdc_avx2_gemm_rows(&g, ln, c, cnt, dst, 2 * c, NULL, 0);
}

static void pass_a_task(void *arg, int task, int thread) {
  const naf_run *R = arg;
  const naf_geom *G = &R->g;
  const int c = G->c, c2 = 2 * c, h = G->h, w = G->w;
  int tr = task / G->ncols, tc = task % G->ncols;
  int r0 = tr * G->rs, r1 = r0 + G->rs < h ? r0 + G->rs : h;
  int c0 = tc * G->tw, c1 = c0 + G->tw < w ? c0 + G->tw : w;
  int rw = c1 - c0 + 2; /* ring columns = image columns c0-1 .. c1 */
  int va = c0 > 0 ? 0 : 1, vb = c1 < w ? rw : rw - 1; /* inside the image */

  char *mem = thread_area(R, thread);
  size_t slot_b = mdc_align64(G->slot * sizeof(float));
  float *ring[3] = {(float *)mem, (float *)(mem + slot_b), (float *)(mem + 2 * slot_b)};
  float *zero = (float *)(mem + 3 * slot_b);
  float *ln = (float *)(mem + 4 * slot_b);
  float *tmp = (float *)(mem + 4 * slot_b + mdc_align64((size_t)(G->tw + 2) * c * sizeof(float)));

  memset(zero, 0, (size_t)rw * c2 * sizeof(float));
  for (int s = 0; s < 3; s++) { /* padding columns stay zero */
    if (va) memset(ring[s], 0, (size_t)c2 * sizeof(float));
    if (vb < rw) memset(ring[s] + (size_t)(rw - 1) * c2, 0, (size_t)c2 * sizeof(float));
  }
  double *sums = R->sums + (size_t)task * c;
  memset(sums, 0, (size_t)c * sizeof(double));

  int col0 = c0 - 1 + va, cnt = vb - va;
  if (r0 > 0) conv1_row(R, r0 - 1, col0, cnt, ln, ring[(r0 - 1) % 3] + (size_t)va * c2);
  conv1_row(R, r0, col0, cnt, ln, ring[r0 % 3] + (size_t)va * c2);
  for (int py = r0; py < r1; py++) {
    if (py + 1 < h) conv1_row(R, py + 1, col0, cnt, ln, ring[(py + 1) % 3] + (size_t)va * c2);
    const float *rows[3] = {py > 0 ? ring[(py - 1) % 3] : zero, ring[py % 3],
                            py + 1 < h ? ring[(py + 1) % 3] : zero};
    dwgate_row(R, rows, c1 - c0, tmp, R->t + ((size_t)py * w + c0) * c, sums);
  }
}

/* ---------------------------------------------------------------- pass B */

static void pass_b_task(void *arg, int blk, int thread) {
  const naf_run *R = arg;
  const naf_geom *G = &R->g;
  const mdc_nafblock_params *p = R->p;
  const int c = G->c, w = G->w;
  int r0, r1, xa, xb; /* rows [r0, r1), columns [xa, xb) */
  if (G->bseg > 1 || G->brows == 1) {
    r0 = blk / G->bseg, r1 = r0 + 1;
    xa = blk % G->bseg * G->bsegw;
    xb = xa + G->bsegw < w ? xa + G->bsegw : w;
  } else {
    r0 = blk * G->brows, r1 = r0 + G->brows < G->h ? r0 + G->brows : G->h;
    xa = 0, xb = w;
  }
  size_t p0 = (size_t)r0 * w + xa;
  int m = (r1 - r0) * (xb - xa);
  char *mem = thread_area(R, thread);
  size_t buf_b = mdc_align64((size_t)G->pb * c * sizeof(float));
  float *ubuf = (float *)mem, *gbuf = (float *)(mem + buf_b), *hbuf = (float *)(mem + 2 * buf_b);
  double *rs = (double *)(mem + 3 * buf_b);
  const float *t = R->t + p0 * c, *x = R->x + p0 * c;
  float *y = R->y + p0 * c;

  mdc_gemm g3 = {.w = R->pack + G->pk3, .b = p->conv3_b, .k = c, .cout = c,
                 .epi = MDC_EPI_RESID, .packed = 1, .g = p->beta};
  if (G->global) { /* conv3's weights carry diag(s) */
    mdc_avx2_gemm_rows(&g3, t, c, m, y, c, x, c);
  } else {
    for (int r = r0; r < r1; r++) /* box means of the block */
      mdc_avx2_box_row(R->m + (size_t)r * w * c, G->h, w, c, R->window, xa, xb, rs,
                       hbuf + (size_t)(r - r0) * (xb - xa) * c);
    mdc_gemm gs = {.w = R->pack + G->pks, .b = p->sca_b, .k = c, .cout = c,
                   .epi = MDC_EPI_MUL, .packed = 1};
    mdc_avx2_gemm_rows(&gs, hbuf, c, m, ubuf, c, t, c); /* t * s */
    mdc_avx2_gemm_rows(&g3, ubuf, c, m, y, c, x, c);
  }
  mdc_avx2_layernorm_rows(y, (size_t)m, c, p->norm2_w, p->norm2_b, R->eps, ubuf, NULL, NULL);
  mdc_gemm g4 = {.w = R->pack + G->pk4, .b = p->conv4_b, .k = c, .cout = c,
                 .epi = MDC_EPI_GATE, .packed = 1};
  mdc_avx2_gemm_rows(&g4, ubuf, c, m, gbuf, c, NULL, 0);
  mdc_gemm g5 = {.w = R->pack + G->pk5, .b = p->conv5_b, .k = c, .cout = c,
                 .epi = MDC_EPI_RESID, .packed = 1, .g = p->gamma};
  mdc_avx2_gemm_rows(&g5, gbuf, c, m, y, c, y, c);
}

/* ------------------------------------------------------------- forward */

void mdc_avx2_nafblock_forward(mdc_backend *be, const mdc_nafblock_params *p, const float *x,
                               int h, int w, float eps, int window, float *y, void *scratch) {
  const int c = p->c;
  if (c <= 0 || h <= 0 || w <= 0) return;
  mdc_cpu_ctx *ctx = mdc_cpu_ctx_of(be);
  naf_run R;
  naf_geom_init(&R.g, c, h, w, window, ctx->threads);
  R.p = p, R.x = x, R.y = y, R.eps = eps, R.window = window;
  R.base = mdc_scratch_base(scratch);
  R.t = (float *)(R.base + R.g.off_t);
  R.m = (float *)(R.base + R.g.off_m);
  R.sums = (double *)(R.base + R.g.off_sums);
  R.mean = (float *)(R.base + R.g.off_vec);
  R.s = R.mean + c;
  R.w3 = (float *)(R.base + R.g.off_w3);
  R.pack = (float *)(R.base + R.g.off_pack);
  mdc_avx2_pack(p->conv1_w, c, 2 * c, 2 * c, MDC_EPI_BIAS, R.pack + R.g.pk1);
  mdc_avx2_pack(p->conv4_w, c, 2 * c, c, MDC_EPI_GATE, R.pack + R.g.pk4);
  mdc_avx2_pack(p->conv5_w, c, c, c, MDC_EPI_BIAS, R.pack + R.g.pk5);

  mdc_threadpool_parallel_for(ctx->pool, R.g.ntiles, pass_a_task, &R);

  if (R.g.global) {
    for (int k = 0; k < c; k++) {
      double s = 0.0;
      for (int t = 0; t < R.g.ntiles; t++) s += R.sums[(size_t)t * c + k];
      R.mean[k] = (float)(s / (double)R.g.n);
    }
    for (int j = 0; j < c; j++) { /* s = sca_b + mean . sca_w, as a 1x1 conv */
      float acc = p->sca_b ? p->sca_b[j] : 0.0f;
      for (int k = 0; k < c; k++) acc += R.mean[k] * p->sca_w[(size_t)k * c + j];
      R.s[j] = acc;
    }
    for (int k = 0; k < c; k++)
      for (int j = 0; j < c; j++) R.w3[(size_t)k * c + j] = R.s[k] * p->conv3_w[(size_t)k * c + j];
    mdc_avx2_pack(R.w3, c, c, c, MDC_EPI_BIAS, R.pack + R.g.pk3);
  } else {
    mdc_avx2_pack(p->conv3_w, c, c, c, MDC_EPI_BIAS, R.pack + R.g.pk3);
    mdc_avx2_pack(p->sca_w, c, c, c, MDC_EPI_BIAS, R.pack + R.g.pks);
    mdc_avx2_boxpool bp = {R.t, R.m, h, w, c, window, mdc_avx2_boxpool_chunk(h, w, c, window),
                           R.base + R.g.off_thr, R.g.thr_bytes};
    mdc_avx2_boxpool_vertical(ctx->pool, &bp);
  }

  mdc_threadpool_parallel_for(ctx->pool, R.g.nblocks, pass_b_task, &R);
}
