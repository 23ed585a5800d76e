/* avx2_convk_backward.c - backward passes of the AVX2 3x3 (zero padding 1)
 * and 2x2 stride-2 convolutions.  Built with -mavx2 -mfma.
 *
 * dx: for the 3x3, the forward convolution of dy with the taps flipped and
 * each tap's matrix transposed (mdc_avx2_conv3x3 runs it); for the 2x2
 * stride 2, one GEMM per tap (dy . W_t^T) into every other pixel of dx.
 * dW: per tap, x (shifted, or every other pixel) ^T . dy with the conv1x1
 * weight-gradient kernel over chunks of an output row; db: column sums.
 * Tasks are groups of output rows fixed by the shape, each with its own
 * double partials, added up in group order: bit-identical for any thread
 * count. */
#include <stdlib.h>
#include <string.h>

#include "avx2_internal.h"
#include "scalar_backward.h"

#define CKB_CHUNK 128      /* output pixels of a row summed in float at a time */
#define CKB_MAX_GROUPS 64  /* weight-gradient tasks */
#define CKB_PART (1 << 20) /* doubles of partial sums, unless one group needs more */

/* 3x3: batch images of h x w (oh = h); 2x2s2: batch 1, h all rows. */
typedef struct ckb_args {
  const float *x, *dy;
  double *part; /* [groups][taps * cin * cout + cout] */
  int h, w, cin, cout, stride2, oh, ow, groups, dw, db, batch;
} ckb_args;

static void ckb_wgrad_task(void *arg, int g, int thread) {
  (void)thread;
  const ckb_args *a = arg;
  const int cin = a->cin, cout = a->cout, ks = a->stride2 ? 2 : 3;
  const size_t wsz = (size_t)cin * cout, stride = (size_t)ks * ks * wsz + cout;
  double *pw = a->part + (size_t)g * stride, *pb = pw + (size_t)ks * ks * wsz;
  memset(pw, 0, stride * sizeof(double));
  const int rows = a->batch * a->oh; /* output rows of all images */
  const int r0 = (int)((size_t)rows * g / a->groups);
  const int r1 = (int)((size_t)rows * (g + 1) / a->groups);
  for (int row = r0; row < r1; row++) {
    const int oy = row % a->oh;
    const float *x = a->x + (size_t)(row / a->oh) * a->h * a->w * cin; /* its image */
    const float *gr = a->dy + (size_t)row * a->ow * cout;
    for (int px0 = 0; px0 < a->ow; px0 += CKB_CHUNK) {
      int px1 = a->ow - px0 < CKB_CHUNK ? a->ow : px0 + CKB_CHUNK;
      for (int ky = 0; ky < ks && a->dw; ky++) {
        int sy = a->stride2 ? 2 * oy + ky : oy + ky - 1;
        if (sy < 0 || sy >= a->h) continue;
        const float *xr = x + (size_t)sy * a->w * cin;
        for (int kx = 0; kx < ks; kx++) {
          double *pt = pw + (size_t)(ky * ks + kx) * wsz;
          if (a->stride2) {
            mdc_avx2_wgrad_rows(xr + (size_t)(2 * px0 + kx) * cin, 2 * (ptrdiff_t)cin, cin,
                                gr + (size_t)px0 * cout, cout, px1 - px0, pt);
          } else { /* outputs whose tap source px + kx - 1 is inside the row */
            int lo = px0 > 1 - kx ? px0 : 1 - kx, hi = px1 < a->w + 1 - kx ? px1 : a->w + 1 - kx;
            if (lo < hi)
              mdc_avx2_wgrad_rows(xr + (size_t)(lo + kx - 1) * cin, cin, cin,
                                  gr + (size_t)lo * cout, cout, hi - lo, pt);
          }
        }
      }
      if (a->db) mdc_avx2_colsum_rows(gr + (size_t)px0 * cout, cout, px1 - px0, pb);
    }
  }
}

/* dw / db for both kinds; 0 when out of memory. */
static int ckb_wgrad(mdc_backend *be, ckb_args *a, float *dwt, float *db) {
  const int taps = a->stride2 ? 4 : 9;
  const size_t wsz = (size_t)a->cin * a->cout, stride = (size_t)taps * wsz + a->cout;
  size_t maxg = CKB_PART / stride;
  if (maxg > CKB_MAX_GROUPS) maxg = CKB_MAX_GROUPS;
  if (maxg < 1) maxg = 1;
  const size_t rows = (size_t)a->batch * a->oh;
  a->groups = rows < maxg ? (int)rows : (int)maxg;
  a->dw = dwt != NULL, a->db = db != NULL;
  a->part = malloc((size_t)a->groups * stride * sizeof(double));
  if (!a->part) return 0;
  mdc_threadpool_parallel_for(mdc_avx2_pool(be), a->groups, ckb_wgrad_task, a);
  mdc_avx2_partials_add(a->part, a->groups, (size_t)taps * wsz, dwt, a->cout, db);
  free(a->part);
  return 1;
}

void mdc_avx2_conv3x3_backward(mdc_backend *be, const float *x, int batch, int h, int w,
                               int cin, const float *wt, int cout, const float *dy, float *dx,
                               float *dwt, float *db) {
  if (cin <= 0 || cout <= 0 || h <= 0 || w <= 0 || batch <= 0) return;
  float *v = NULL;
  if (dx) { /* v[8 - t][o][k] = wt[t][k][o] */
    v = malloc((size_t)9 * cin * cout * sizeof(float));
    if (!v) goto fallback;
    for (int t = 0; t < 9; t++)
      for (int k = 0; k < cin; k++)
        for (int o = 0; o < cout; o++)
          v[((size_t)(8 - t) * cout + o) * cin + k] = wt[((size_t)t * cin + k) * cout + o];
  }
  if (dwt || db) {
    ckb_args a = {x, dy, NULL, h, w, cin, cout, 0, h, w, 0, 0, 0, batch};
    if (!ckb_wgrad(be, &a, dwt, db)) goto fallback;
  }
  if (v) mdc_avx2_conv3x3(be, dy, batch, h, w, cout, v, NULL, cin, dx);
  free(v);
  return;
fallback: /* out of memory: the scalar reference needs none (and has not
             touched dw / db when we get here) */
  free(v);
  mdc_cpu_scalar_conv3x3_backward(be, x, batch, h, w, cin, wt, cout, dy, dx, dwt, db);
}

/* ---------------------------------------------------- conv2x2s2 dx */

typedef struct ck2_args {
  mdc_gemm g[4]; /* packed W_t^T per tap */
  const float *dy;
  float *dx;
  int w, cin, cout, ow;
} ck2_args;

/* Output row oy feeds input rows 2 oy and 2 oy + 1: per tap, a GEMM over
 * the row's ow pixels writing every other pixel of dx. */
static void ck2_dx_task(void *arg, int oy, int thread) {
  (void)thread;
  const ck2_args *a = arg;
  for (int t = 0; t < 4; t++)
    mdc_avx2_gemm_rows(&a->g[t], a->dy + (size_t)oy * a->ow * a->cout, a->cout, a->ow,
                       a->dx + ((size_t)(2 * oy + t / 2) * a->w + t % 2) * a->cin,
                       2 * (ptrdiff_t)a->cin, NULL, 0);
}

void mdc_avx2_conv2x2s2_backward(mdc_backend *be, const float *x, int h, int w, int cin,
                                 const float *wt, int cout, const float *dy, float *dx,
                                 float *dwt, float *db) {
  if (cin <= 0 || cout <= 0 || h <= 0 || w <= 0) return;
  const int oh = h / 2, ow = w / 2;
  float *packed = NULL;
  if (dx && oh > 0 && ow > 0) {
    size_t per_tap = mdc_avx2_packed_size(cout, cin, MDC_EPI_BIAS);
    packed = aligned_alloc(64, mdc_align64(4 * per_tap * sizeof(float)));
    if (!packed) goto fallback;
  }
  if ((dwt || db) && oh > 0 && ow > 0) {
    ckb_args a = {x, dy, NULL, h, w, cin, cout, 1, oh, ow, 0, 0, 0, 1};
    if (!ckb_wgrad(be, &a, dwt, db)) goto fallback;
  }
  if (dx) {
    if (packed) {
      ck2_args a = {.dy = dy, .dx = dx, .w = w, .cin = cin, .cout = cout, .ow = ow};
      size_t per_tap = mdc_avx2_packed_size(cout, cin, MDC_EPI_BIAS);
      for (int t = 0; t < 4; t++) {
        mdc_avx2_pack_transposed(wt + (size_t)t * cin * cout, cin, cout, packed + t * per_tap);
        a.g[t] = (mdc_gemm){.w = packed + t * per_tap, .ldw = cin, .k = cout, .cout = cin,
                            .epi = MDC_EPI_BIAS, .packed = 1};
      }
      mdc_threadpool_parallel_for(mdc_avx2_pool(be), oh, ck2_dx_task, &a);
    }
    /* an odd last row / column (outside the contract) reads no output */
    if (h & 1) memset(dx + (size_t)(h - 1) * w * cin, 0, (size_t)w * cin * sizeof(float));
    if (w & 1)
      for (int sy = 0; sy < 2 * oh; sy++)
        memset(dx + ((size_t)sy * w + w - 1) * cin, 0, (size_t)cin * sizeof(float));
  }
  free(packed);
  return;
fallback:
  free(packed);
  mdc_cpu_scalar_conv2x2s2_backward(be, x, h, w, cin, wt, cout, dy, dx, dwt, db);
}
