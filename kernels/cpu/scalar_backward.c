/* scalar_backward.c - the reference training entries (backend.h, section
 * "training"): plain loops, the oracle of tests/test_backward.c, which
 * checks them against finite differences of float64 forwards.
 *
 * Every output is computed on its own, every sum is accumulated in double
 * in a fixed order (pixels in index order, then taps / channels in index
 * order), and tasks split only independent outputs, so results do not
 * depend on the thread count.  Parameter gradients are added as
 * dw += (float)sum: calling twice on a zeroed dw gives exactly 2 * dw.
 * A batch is one such sum over all its images (image by image, pixels in
 * order); dx and per-image rows (LayerNorm's dg / db, scale_channels' ds)
 * are the same bits as one call per image. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"
#include "scalar_backward.h"

#define OB 64 /* output channels per block of double accumulators (stack) */
#define KB 4  /* input channels per weight-gradient task: fewer passes over dy */

static mdc_threadpool *pool_of(mdc_backend *be) { return mdc_cpu_ctx_of(be)->pool; }

static int imin(int a, int b) { return a < b ? a : b; }

/* ------------------------------------------- column sums (bias grads) */

/* Pixels [0, n) (n > 0) in segments of `every` (the last may be
 * shorter; 0: one segment), each summed into its own row of the output
 * (a parameter with one row per `every` pixels: LayerNorm's g and b with
 * gb_every, scale_channels' s with s_every). */
typedef struct seg_split {
  size_t n, every, segs;
  int groups, cblocks; /* tasks: groups of segments x blocks of OB channels */
} seg_split;

static seg_split seg_split_of(size_t n, size_t every, int c) {
  seg_split p = {n, every && every < n ? every : n, 1, 1, (c + OB - 1) / OB};
  p.segs = (n + p.every - 1) / p.every;
  if (p.segs > 1) p.groups = mdc_cpu_range_tasks(p.segs, 1 + 16384 / (p.every * c));
  return p;
}

static void seg_of(const seg_split *p, int task, size_t *s_lo, size_t *s_hi, int *k0, int *kn,
                   int c) {
  mdc_cpu_range(p->segs, p->groups, task / p->cblocks, s_lo, s_hi);
  *k0 = task % p->cblocks * OB;
  *kn = imin(OB, c - *k0);
}

/* The term a segment sum adds up per pixel and channel. */
typedef enum seg_term {
  TERM_DY,      /* dy: bias gradients */
  TERM_DY_X,    /* dy x: scale_channels' ds */
  TERM_DY_XHAT, /* dy (x - mean) rstd: LayerNorm's dg */
} seg_term;

/* out[s][k] (+)= sum over segment s of the term, OB columns per task. */
typedef struct segsum_args {
  const float *dy, *x, *mean, *rstd;
  float *out;
  seg_split sp;
  seg_term term;
  int c, add;
} segsum_args;

static void segsum_task(void *arg, int task, int thread) {
  (void)thread;
  const segsum_args *a = arg;
  size_t s_lo, s_hi;
  int k0, kn;
  seg_of(&a->sp, task, &s_lo, &s_hi, &k0, &kn, a->c);
  for (size_t sg = s_lo; sg < s_hi; sg++) {
    size_t i1 = (sg + 1) * a->sp.every < a->sp.n ? (sg + 1) * a->sp.every : a->sp.n;
    double acc[OB] = {0};
    for (size_t i = sg * a->sp.every; i < i1; i++) {
      const float *g = a->dy + i * a->c + k0, *xi = a->x ? a->x + i * a->c + k0 : NULL;
      switch (a->term) {
      case TERM_DY:
        for (int k = 0; k < kn; k++) acc[k] += g[k];
        break;
      case TERM_DY_X:
        for (int k = 0; k < kn; k++) acc[k] += (double)g[k] * xi[k];
        break;
      case TERM_DY_XHAT: {
        double mu = a->mean[i], rs = a->rstd[i];
        for (int k = 0; k < kn; k++) acc[k] += (double)g[k] * ((xi[k] - mu) * rs);
        break;
      }
      }
    }
    float *o = a->out + sg * a->c + k0;
    for (int k = 0; k < kn; k++) o[k] = a->add ? o[k] + (float)acc[k] : (float)acc[k];
  }
}

/* out[row][c] += (add) or = the per-row sums of the term over n > 0
 * pixels, one row per `every` pixels (0: one row). */
static void segsum(mdc_backend *be, seg_term term, const float *dy, const float *x,
                   const float *mean, const float *rstd, size_t n, size_t every, int c, int add,
                   float *out) {
  segsum_args a = {dy, x, mean, rstd, out, seg_split_of(n, every, c), term, c, add};
  mdc_threadpool_parallel_for(pool_of(be), a.sp.groups * a.sp.cblocks, segsum_task, &a);
}

/* db[row][k] += the column sums of dy (bias gradients). */
static void colsum_add(mdc_backend *be, const float *dy, size_t n, size_t every, int c, float *db) {
  segsum(be, TERM_DY, dy, NULL, NULL, NULL, n, every, c, 1, db);
}

/* -------------------------------------------------------- mask_pixels */

typedef struct pix_args {
  const float *x, *m, *s, *dy;
  float *y, *dx, *ds;
  size_t n, s_every;
  int c, tasks;
} pix_args;

static void mask_task(void *arg, int task, int thread) {
  (void)thread;
  const pix_args *a = arg;
  size_t lo, hi;
  mdc_cpu_range(a->n, a->tasks, task, &lo, &hi);
  for (size_t i = lo; i < hi; i++)
    for (int k = 0; k < a->c; k++) a->y[i * a->c + k] = a->x[i * a->c + k] * a->m[i];
}

void mdc_cpu_scalar_mask_pixels(mdc_backend *be, const float *x, const float *m, size_t n,
                                int c, float *y) {
  if (c <= 0 || n == 0) return;
  pix_args a = {.x = x, .m = m, .y = y, .n = n, .c = c};
  a.tasks = mdc_cpu_range_tasks(n * c, 16384);
  mdc_threadpool_parallel_for(pool_of(be), a.tasks, mask_task, &a);
}

/* ---------------------------------------------------- conv1x1_backward */

typedef struct c1_args {
  const float *x, *w, *dy;
  float *dx, *dw;
  size_t n;
  int cin, cout, tasks;
} c1_args;

/* dx[i][k] = sum_o dy[i][o] w[k][o] */
static void c1_dx_task(void *arg, int task, int thread) {
  (void)thread;
  const c1_args *a = arg;
  size_t lo, hi;
  mdc_cpu_range(a->n, a->tasks, task, &lo, &hi);
  for (size_t i = lo; i < hi; i++) {
    const float *g = a->dy + i * a->cout;
    for (int k = 0; k < a->cin; k++) {
      const float *wk = a->w + (size_t)k * a->cout;
      double acc = 0.0;
      for (int o = 0; o < a->cout; o++) acc += (double)g[o] * wk[o];
      a->dx[i * a->cin + k] = (float)acc;
    }
  }
}

/* dw[k][o] += sum_i x[i][k] dy[i][o] for rows [k0, k0 + KB). */
static void c1_dw_task(void *arg, int task, int thread) {
  (void)thread;
  const c1_args *a = arg;
  int k0 = task * KB, kn = imin(KB, a->cin - k0);
  for (int o0 = 0; o0 < a->cout; o0 += OB) {
    int on = imin(OB, a->cout - o0);
    double acc[KB][OB];
    memset(acc, 0, sizeof acc);
    for (size_t i = 0; i < a->n; i++) {
      const float *g = a->dy + i * a->cout + o0, *xi = a->x + i * a->cin + k0;
      for (int kk = 0; kk < kn; kk++) {
        double xv = xi[kk];
        for (int o = 0; o < on; o++) acc[kk][o] += xv * g[o];
      }
    }
    for (int kk = 0; kk < kn; kk++)
      for (int o = 0; o < on; o++) a->dw[(size_t)(k0 + kk) * a->cout + o0 + o] += (float)acc[kk][o];
  }
}

void mdc_cpu_scalar_conv1x1_backward(mdc_backend *be, const float *x, size_t n, int cin,
                                     const float *w, int cout, const float *dy, float *dx,
                                     float *dw, float *db) {
  if (cin <= 0 || cout <= 0 || n == 0) return;
  c1_args a = {x, w, dy, dx, dw, n, cin, cout, 0};
  if (dx) {
    a.tasks = mdc_cpu_range_tasks(n, 64);
    mdc_threadpool_parallel_for(pool_of(be), a.tasks, c1_dx_task, &a);
  }
  if (dw) mdc_threadpool_parallel_for(pool_of(be), (cin + KB - 1) / KB, c1_dw_task, &a);
  if (db) colsum_add(be, dy, n, 0, cout, db);
}

/* ------------------------------------ conv3x3 / conv2x2s2 backward */

/* Output (py, px) reads input (py * stride + ky - pad, px * stride + kx - pad)
 * through tap (ky, kx): 3x3 is ks 3, stride 1, pad 1; 2x2s2 is ks 2,
 * stride 2, pad 0.  batch images of h x w (2x2s2: one of h = batch * its
 * height, as no 2x2 cell crosses an image border). */
typedef struct ck_args {
  const float *x, *w, *dy;
  float *dx, *dw;
  int h, w_, cin, cout, ks, stride, pad, oh, ow, batch;
} ck_args;

/* The output coordinate that reads input s through tap k, or -1. */
static int ck_out(const ck_args *a, int s, int k, int osize) {
  int t = s + a->pad - k;
  if (t < 0 || t % a->stride) return -1;
  t /= a->stride;
  return t < osize ? t : -1;
}

/* One input row of dx (of all batch * h): taps in (ky, kx) order, then
 * output channels. */
static void ck_dx_task(void *arg, int row, int thread) {
  (void)thread;
  const ck_args *a = arg;
  const int sy = row % a->h;
  const float *dy = a->dy + (size_t)(row / a->h) * a->oh * a->ow * a->cout; /* its image */
  for (int sx = 0; sx < a->w_; sx++)
    for (int k = 0; k < a->cin; k++) {
      double acc = 0.0;
      for (int ky = 0; ky < a->ks; ky++) {
        int py = ck_out(a, sy, ky, a->oh);
        if (py < 0) continue;
        for (int kx = 0; kx < a->ks; kx++) {
          int px = ck_out(a, sx, kx, a->ow);
          if (px < 0) continue;
          const float *g = dy + ((size_t)py * a->ow + px) * a->cout;
          const float *wk = a->w + ((size_t)(ky * a->ks + kx) * a->cin + k) * a->cout;
          for (int o = 0; o < a->cout; o++) acc += (double)g[o] * wk[o];
        }
      }
      a->dx[((size_t)row * a->w_ + sx) * a->cin + k] = (float)acc;
    }
}

/* dw[tap][k0 .. k0 + KB)[o] += sum over all outputs (image by image, in
 * order) of x . dy. */
static void ck_dw_task(void *arg, int task, int thread) {
  (void)thread;
  const ck_args *a = arg;
  int kblocks = (a->cin + KB - 1) / KB, tap = task / kblocks;
  int ky = tap / a->ks, kx = tap % a->ks;
  int k0 = task % kblocks * KB, kn = imin(KB, a->cin - k0);
  const size_t xs = (size_t)a->h * a->w_ * a->cin, gs = (size_t)a->oh * a->ow * a->cout;
  for (int o0 = 0; o0 < a->cout; o0 += OB) {
    int on = imin(OB, a->cout - o0);
    double acc[KB][OB];
    memset(acc, 0, sizeof acc);
    for (int b = 0; b < a->batch; b++) {
      const float *x = a->x + b * xs, *dy = a->dy + b * gs;
      for (int py = 0; py < a->oh; py++) {
        int sy = py * a->stride + ky - a->pad;
        if (sy < 0 || sy >= a->h) continue;
        for (int px = 0; px < a->ow; px++) {
          int sx = px * a->stride + kx - a->pad;
          if (sx < 0 || sx >= a->w_) continue;
          const float *xi = x + ((size_t)sy * a->w_ + sx) * a->cin + k0;
          const float *g = dy + ((size_t)py * a->ow + px) * a->cout + o0;
          for (int kk = 0; kk < kn; kk++) {
            double xv = xi[kk];
            for (int o = 0; o < on; o++) acc[kk][o] += xv * g[o];
          }
        }
      }
    }
    for (int kk = 0; kk < kn; kk++)
      for (int o = 0; o < on; o++)
        a->dw[((size_t)tap * a->cin + k0 + kk) * a->cout + o0 + o] += (float)acc[kk][o];
  }
}

static void ck_backward(mdc_backend *be, ck_args *a, float *db) {
  if (a->cin <= 0 || a->cout <= 0 || a->h <= 0 || a->w_ <= 0 || a->batch <= 0) return;
  if (a->dx) mdc_threadpool_parallel_for(pool_of(be), a->batch * a->h, ck_dx_task, a);
  if (a->oh <= 0 || a->ow <= 0) return;
  if (a->dw)
    mdc_threadpool_parallel_for(pool_of(be), a->ks * a->ks * ((a->cin + KB - 1) / KB), ck_dw_task,
                                a);
  if (db) colsum_add(be, a->dy, (size_t)a->batch * a->oh * a->ow, 0, a->cout, db);
}

void mdc_cpu_scalar_conv3x3_backward(mdc_backend *be, const float *x, int batch, int h, int w,
                                     int cin, const float *wt, int cout, const float *dy,
                                     float *dx, float *dwt, float *db) {
  ck_args a = {x, wt, dy, dx, dwt, h, w, cin, cout, 3, 1, 1, h, w, batch};
  ck_backward(be, &a, db);
}

void mdc_cpu_scalar_conv2x2s2_backward(mdc_backend *be, const float *x, int h, int w, int cin,
                                       const float *wt, int cout, const float *dy, float *dx,
                                       float *dwt, float *db) {
  ck_args a = {x, wt, dy, dx, dwt, h, w, cin, cout, 2, 2, 0, h / 2, w / 2, 1};
  ck_backward(be, &a, db);
}

/* -------------------------------------------------- dwconv3x3_backward */

#define DWB 8 /* channels per weight-gradient task */

typedef struct dwb_args {
  const float *x, *w, *dy;
  float *dx, *dw;
  int batch, h, w_, c;
} dwb_args;

/* dx(sy, sx) = sum over taps of dy(sy - ky + 1, sx - kx + 1) w[ky][kx];
 * one row of all batch * h. */
static void dwb_dx_task(void *arg, int row, int thread) {
  (void)thread;
  const dwb_args *a = arg;
  const int sy = row % a->h;
  const float *dy = a->dy + (size_t)(row / a->h) * a->h * a->w_ * a->c; /* its image */
  for (int sx = 0; sx < a->w_; sx++)
    for (int ch = 0; ch < a->c; ch++) {
      double acc = 0.0;
      for (int ky = 0; ky < 3; ky++) {
        int py = sy - ky + 1;
        if (py < 0 || py >= a->h) continue;
        for (int kx = 0; kx < 3; kx++) {
          int px = sx - kx + 1;
          if (px < 0 || px >= a->w_) continue;
          acc += (double)dy[((size_t)py * a->w_ + px) * a->c + ch] *
                 a->w[(ky * 3 + kx) * a->c + ch];
        }
      }
      a->dx[((size_t)row * a->w_ + sx) * a->c + ch] = (float)acc;
    }
}

/* dw[tap][ch] += sum over all outputs (image by image, in order) of
 * x(tap source) dy. */
static void dwb_dw_task(void *arg, int task, int thread) {
  (void)thread;
  const dwb_args *a = arg;
  int c0 = task * DWB, cn = imin(DWB, a->c - c0);
  const size_t per_image = (size_t)a->h * a->w_ * a->c;
  double acc[9][DWB];
  memset(acc, 0, sizeof acc);
  for (int b = 0; b < a->batch; b++) {
    const float *x = a->x + b * per_image, *dy = a->dy + b * per_image;
    for (int py = 0; py < a->h; py++)
      for (int px = 0; px < a->w_; px++) {
        const float *g = dy + ((size_t)py * a->w_ + px) * a->c + c0;
        for (int t = 0; t < 9; t++) {
          int sy = py + t / 3 - 1, sx = px + t % 3 - 1;
          if (sy < 0 || sy >= a->h || sx < 0 || sx >= a->w_) continue;
          const float *xi = x + ((size_t)sy * a->w_ + sx) * a->c + c0;
          for (int k = 0; k < cn; k++) acc[t][k] += (double)xi[k] * g[k];
        }
      }
  }
  for (int t = 0; t < 9; t++)
    for (int k = 0; k < cn; k++) a->dw[t * a->c + c0 + k] += (float)acc[t][k];
}

void mdc_cpu_scalar_dwconv3x3_backward(mdc_backend *be, const float *x, int batch, int h, int w,
                                       int c, const float *wt, const float *dy, float *dx,
                                       float *dwt, float *db) {
  if (c <= 0 || h <= 0 || w <= 0 || batch <= 0) return;
  dwb_args a = {x, wt, dy, dx, dwt, batch, h, w, c};
  if (dx) mdc_threadpool_parallel_for(pool_of(be), batch * h, dwb_dx_task, &a);
  if (dwt) mdc_threadpool_parallel_for(pool_of(be), (c + DWB - 1) / DWB, dwb_dw_task, &a);
  if (db) colsum_add(be, dy, (size_t)batch * h * w, 0, c, db);
}

/* -------------------------------------------------- layernorm_backward */

typedef struct lnb_args {
  const float *x, *g, *mean, *rstd, *dy;
  float *dx;
  size_t n, gb_every;
  int c, tasks;
} lnb_args;

/* With xh = (x - mean) rstd and e = dy g:
 * dx = rstd (e - mean_k(e) - xh mean_k(e xh)). */
static void lnb_dx_task(void *arg, int task, int thread) {
  (void)thread;
  const lnb_args *a = arg;
  size_t lo, hi;
  mdc_cpu_range(a->n, a->tasks, task, &lo, &hi);
  const int c = a->c;
  for (size_t i = lo; i < hi; i++) {
    const float *xi = a->x + i * c, *gi = a->dy + i * c;
    const float *gw = a->g + (a->gb_every ? i / a->gb_every * c : 0); /* its row of g */
    double mu = a->mean[i], rs = a->rstd[i], s1 = 0.0, s2 = 0.0;
    for (int k = 0; k < c; k++) {
      double e = (double)gi[k] * gw[k];
      s1 += e;
      s2 += e * ((xi[k] - mu) * rs);
    }
    s1 /= c;
    s2 /= c;
    for (int k = 0; k < c; k++) {
      double e = (double)gi[k] * gw[k], xh = (xi[k] - mu) * rs;
      a->dx[i * c + k] = (float)(rs * (e - s1 - xh * s2));
    }
  }
}

void mdc_cpu_scalar_layernorm_backward(mdc_backend *be, const float *x, size_t n, int c,
                                       const float *g, size_t gb_every, const float *mean,
                                       const float *rstd, const float *dy, float *dx, float *dg,
                                       float *db) {
  if (c <= 0 || n == 0) return;
  lnb_args a = {x, g, mean, rstd, dy, dx, n, gb_every, c, 0};
  /* parameter gradients first: they read dy, which dx may overwrite */
  if (dg) segsum(be, TERM_DY_XHAT, dy, x, mean, rstd, n, gb_every, c, 1, dg);
  if (db) colsum_add(be, dy, n, gb_every, c, db);
  if (dx) {
    a.tasks = mdc_cpu_range_tasks(n, 256);
    mdc_threadpool_parallel_for(pool_of(be), a.tasks, lnb_dx_task, &a);
  }
}

/* ------------------------------------------------- simplegate_backward */

static void gate_task(void *arg, int task, int thread) {
  (void)thread;
  const pix_args *a = arg;
  size_t lo, hi;
  mdc_cpu_range(a->n, a->tasks, task, &lo, &hi);
  const int c = a->c;
  for (size_t i = lo; i < hi; i++) {
    const float *xi = a->x + i * 2 * c, *gi = a->dy + i * c;
    float *di = a->dx + i * 2 * c;
    for (int k = 0; k < c; k++) {
      di[k] = gi[k] * xi[c + k];
      di[c + k] = gi[k] * xi[k];
    }
  }
}

void mdc_cpu_scalar_simplegate_backward(mdc_backend *be, const float *x, size_t n, int c,
                                        const float *dy, float *dx) {
  if (c <= 0 || n == 0 || !dx) return;
  pix_args a = {.x = x, .dy = dy, .dx = dx, .n = n, .c = c};
  a.tasks = mdc_cpu_range_tasks(n * c, 16384);
  mdc_threadpool_parallel_for(pool_of(be), a.tasks, gate_task, &a);
}

/* -------------------------------------------------- pool_mean_backward */

/* Each output's gradient is spread uniformly over its box:
 * dx(q) = sum over outputs p whose box holds q of dy(p) / area.  Boxes are
 * separable, so with S(py, qx) = sum over px in span(qx) of dy(py, px)
 * (px in order), dx(qy, qx) = sum over py in span(qy) of S(py, qx) (py in
 * order) / area.  S is kept in a buffer when memory allows; without one it
 * is recomputed - the same sums in the same order. */
typedef struct poolb_args {
  const float *dy;
  float *dx;
  double *S; /* batch x h x w x c, or NULL */
  int batch, h, w, c, window, tasks;
} poolb_args;

/* Rows are rows of all batch * h; a box never leaves its image. */
static double poolb_row_sum(const poolb_args *a, int row, int qx, int k) {
  int lo, hi;
  mdc_pool_span(qx, a->w, a->window, &lo, &hi);
  double s = 0.0;
  for (int px = lo; px < hi; px++) s += a->dy[((size_t)row * a->w + px) * a->c + k];
  return s;
}

static void poolb_s_task(void *arg, int row, int thread) {
  (void)thread;
  const poolb_args *a = arg;
  for (int qx = 0; qx < a->w; qx++)
    for (int k = 0; k < a->c; k++)
      a->S[((size_t)row * a->w + qx) * a->c + k] = poolb_row_sum(a, row, qx, k);
}

static void poolb_dx_task(void *arg, int row, int thread) {
  (void)thread;
  const poolb_args *a = arg;
  const int qy = row % a->h, first = row - qy; /* the image's first row */
  int lo, hi;
  mdc_pool_span(qy, a->h, a->window, &lo, &hi);
  double area = (double)(a->window < a->h ? a->window : a->h) * (a->window < a->w ? a->window : a->w);
  for (int qx = 0; qx < a->w; qx++)
    for (int k = 0; k < a->c; k++) {
      double s = 0.0;
      for (int py = first + lo; py < first + hi; py++)
        s += a->S ? a->S[((size_t)py * a->w + qx) * a->c + k] : poolb_row_sum(a, py, qx, k);
      a->dx[((size_t)row * a->w + qx) * a->c + k] = (float)(s / area);
    }
}

/* Global: every pixel of image b gets dy[b] / (h w). */
static void poolb_global_task(void *arg, int task, int thread) {
  (void)thread;
  const poolb_args *a = arg;
  size_t n = (size_t)a->h * a->w, lo, hi;
  mdc_cpu_range(n * a->batch, a->tasks, task, &lo, &hi);
  for (size_t i = lo; i < hi; i++) {
    const float *dy = a->dy + i / n * a->c;
    for (int k = 0; k < a->c; k++) a->dx[i * a->c + k] = (float)((double)dy[k] / (double)n);
  }
}

void mdc_cpu_scalar_pool_mean_backward(mdc_backend *be, int batch, int h, int w, int c,
                                       int window, const float *dy, float *dx) {
  if (c <= 0 || h <= 0 || w <= 0 || batch <= 0 || !dx) return;
  poolb_args a = {dy, dx, NULL, batch, h, w, c, window, 0};
  size_t rows = (size_t)batch * h;
  if (mdc_pool_is_global(h, w, window)) {
    a.tasks = mdc_cpu_range_tasks(rows * w * c, 16384);
    mdc_threadpool_parallel_for(pool_of(be), a.tasks, poolb_global_task, &a);
    return;
  }
  a.S = malloc(rows * w * c * sizeof(double));
  if (a.S) mdc_threadpool_parallel_for(pool_of(be), (int)rows, poolb_s_task, &a);
  mdc_threadpool_parallel_for(pool_of(be), (int)rows, poolb_dx_task, &a);
  free(a.S);
}

/* --------------------------------------------- scale_channels_backward */

/* dx = dy s[row]; with one row of s per pixel (s_every 1) also
 * ds = dy x, in the same pass. */
static void scale_dx_task(void *arg, int task, int thread) {
  (void)thread;
  const pix_args *a = arg;
  size_t lo, hi;
  mdc_cpu_range(a->n, a->tasks, task, &lo, &hi);
  const int c = a->c, ds_here = a->ds && a->s_every == 1;
  for (size_t i = lo; i < hi; i++) {
    const float *s = a->s + (a->s_every ? i / a->s_every * c : 0);
    for (int k = 0; k < c; k++) {
      float g = a->dy[i * c + k]; /* read once: dx may be dy */
      if (ds_here) a->ds[i * c + k] = g * a->x[i * c + k];
      if (a->dx) a->dx[i * c + k] = g * s[k];
    }
  }
}

void mdc_cpu_scalar_scale_channels_backward(mdc_backend *be, const float *x, const float *s,
                                            size_t s_every, size_t n, int c, const float *dy,
                                            float *dx, float *ds) {
  if (c <= 0) return;
  pix_args a = {.x = x, .s = s, .dy = dy, .dx = dx, .ds = ds, .n = n, .c = c,
                .s_every = s_every};
  /* rows of s: sums first, they read dy, which dx may overwrite */
  if (s_every != 1 && ds) {
    if (n == 0) {
      if (s_every == 0) memset(ds, 0, (size_t)c * sizeof(float)); /* else no rows */
    } else {
      segsum(be, TERM_DY_X, dy, x, NULL, NULL, n, s_every, c, 0, ds);
    }
  }
  if (n == 0 || !(dx || (ds && s_every == 1))) return;
  a.tasks = mdc_cpu_range_tasks(n * c, 16384);
  mdc_threadpool_parallel_for(pool_of(be), a.tasks, scale_dx_task, &a);
}

/* ------------------------------------------------- add_scaled_backward */

/* db = s dy (dy when s is NULL). */
static void addb_db_task(void *arg, int task, int thread) {
  (void)thread;
  const pix_args *a = arg;
  size_t lo, hi;
  mdc_cpu_range(a->n, a->tasks, task, &lo, &hi);
  const int c = a->c;
  for (size_t i = lo; i < hi; i++)
    for (int k = 0; k < c; k++) a->dx[i * c + k] = a->s ? a->s[k] * a->dy[i * c + k] : a->dy[i * c + k];
}

/* ds[k] += sum_i dy b, OB channels per task. */
static void addb_ds_task(void *arg, int task, int thread) {
  (void)thread;
  const pix_args *a = arg;
  int k0 = task * OB, kn = imin(OB, a->c - k0);
  double acc[OB] = {0};
  for (size_t i = 0; i < a->n; i++) {
    const float *bi = a->x + i * a->c + k0, *gi = a->dy + i * a->c + k0;
    for (int k = 0; k < kn; k++) acc[k] += (double)gi[k] * bi[k];
  }
  for (int k = 0; k < kn; k++) a->ds[k0 + k] += (float)acc[k];
}

void mdc_cpu_scalar_add_scaled_backward(mdc_backend *be, const float *b, const float *s,
                                        size_t n, int c, const float *dy, float *db, float *ds) {
  if (c <= 0 || n == 0) return;
  pix_args a = {.x = b, .s = s, .dy = dy, .dx = db, .ds = ds, .n = n, .c = c};
  /* ds first: it reads dy, which db may overwrite */
  if (ds) mdc_threadpool_parallel_for(pool_of(be), (c + OB - 1) / OB, addb_ds_task, &a);
  if (db) {
    a.tasks = mdc_cpu_range_tasks(n * c, 16384);
    mdc_threadpool_parallel_for(pool_of(be), a.tasks, addb_db_task, &a);
  }
}

/* ----------------------------------------------- pixelshuffle_backward */

typedef struct psb_args {
  const float *dy;
  float *dx;
  int h, w, c;
} psb_args;

/* x channel k*4 + oy*2 + ox fed y(2i + oy, 2j + ox, k): gather it back. */
static void psb_task(void *arg, int i, int thread) {
  (void)thread;
  const psb_args *a = arg;
  const int c = a->c, w = a->w;
  for (int j = 0; j < w; j++) {
    float *di = a->dx + ((size_t)i * w + j) * 4 * c;
    for (int k = 0; k < c; k++)
      for (int q = 0; q < 4; q++)
        di[k * 4 + q] = a->dy[((size_t)(2 * i + q / 2) * (2 * w) + 2 * j + q % 2) * c + k];
  }
}

void mdc_cpu_scalar_pixelshuffle_backward(mdc_backend *be, int h, int w, int c,
                                          const float *dy, float *dx) {
  if (c <= 0 || h <= 0 || w <= 0 || !dx) return;
  psb_args a = {dy, dx, h, w, c};
  mdc_threadpool_parallel_for(pool_of(be), h, psb_task, &a);
}

/* ------------------------------------------------------------ l1_loss */

#define L1_CHUNK 8192 /* values per partial sum; partials added in order */

typedef struct l1_args {
  const float *pred, *target;
  float *grad;
  double *part;
  size_t n;
  float g; /* scale / n */
  int tasks;
} l1_args;

/* Sum of |d| over one chunk; grad = sign(d) scale / n (0 where d == 0,
 * NaN where d is NaN so that bad inputs show). */
static double l1_chunk(const l1_args *a, size_t t) {
  size_t lo = t * L1_CHUNK, hi = lo + L1_CHUNK < a->n ? lo + L1_CHUNK : a->n;
  double s = 0.0;
  for (size_t i = lo; i < hi; i++) {
    float d = a->pred[i] - a->target[i];
    s += fabs((double)d);
    if (a->grad) a->grad[i] = d > 0.0f ? a->g : d < 0.0f ? -a->g : d == 0.0f ? 0.0f : d;
  }
  return s;
}

static void l1_task(void *arg, int task, int thread) {
  (void)thread;
  const l1_args *a = arg;
  a->part[task] = l1_chunk(a, (size_t)task);
}

double mdc_cpu_scalar_l1_loss(mdc_backend *be, const float *pred, const float *target,
                              size_t n, float scale, float *grad) {
  if (n == 0) return 0.0;
  l1_args a = {pred, target, grad, NULL, n, (float)((double)scale / (double)n), 0};
  size_t chunks = (n + L1_CHUNK - 1) / L1_CHUNK;
  a.tasks = chunks > 1u << 30 ? 0 : (int)chunks;
  a.part = a.tasks ? malloc(chunks * sizeof(double)) : NULL;
  double s = 0.0;
  if (a.part) {
    mdc_threadpool_parallel_for(pool_of(be), a.tasks, l1_task, &a);
    for (int t = 0; t < a.tasks; t++) s += a.part[t];
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
  size_t n;
  double lr, b1, b2, eps, decay, bc1, bc2;
  int tasks;
} adamw_args;

/* PyTorch's AdamW, in double per element. */
static void adamw_task(void *arg, int task, int thread) {
  (void)thread;
  const adamw_args *a = arg;
  size_t lo, hi;
  mdc_cpu_range(a->n, a->tasks, task, &lo, &hi);
  for (size_t i = lo; i < hi; i++) {
    double g = a->grad[i], p = a->param[i] * a->decay;
    double m = a->b1 * a->m[i] + (1.0 - a->b1) * g;
    double v = a->b2 * a->v[i] + (1.0 - a->b2) * g * g;
    p -= a->lr * (m / a->bc1) / (sqrt(v / a->bc2) + a->eps);
    a->m[i] = (float)m;
    a->v[i] = (float)v;
    a->param[i] = (float)p;
  }
}

void mdc_cpu_scalar_adamw_step(mdc_backend *be, float *param, const float *grad, float *m,
                               float *v, size_t n, float lr, float beta1, float beta2, float eps,
                               float wd, long step) {
  if (n == 0) return;
  if (step < 1) step = 1; /* bias corrections of 0 would divide by zero */
  adamw_args a = {param, m, v, grad, n, lr, beta1, beta2, eps, 1.0 - (double)lr * wd,
                  1.0 - pow(beta1, (double)step), 1.0 - pow(beta2, (double)step), 0};
  a.tasks = mdc_cpu_range_tasks(n, 16384);
  mdc_threadpool_parallel_for(pool_of(be), a.tasks, adamw_task, &a);
}

/* ---------------------------------------------------------------- init */

void mdc_cpu_scalar_backward_init(mdc_backend *be) {
  be->mask_pixels = mdc_cpu_scalar_mask_pixels;
  be->conv1x1_backward = mdc_cpu_scalar_conv1x1_backward;
  be->conv3x3_backward = mdc_cpu_scalar_conv3x3_backward;
  be->dwconv3x3_backward = mdc_cpu_scalar_dwconv3x3_backward;
  be->conv2x2s2_backward = mdc_cpu_scalar_conv2x2s2_backward;
  be->layernorm_backward = mdc_cpu_scalar_layernorm_backward;
  be->simplegate_backward = mdc_cpu_scalar_simplegate_backward;
  be->pool_mean_backward = mdc_cpu_scalar_pool_mean_backward;
  be->scale_channels_backward = mdc_cpu_scalar_scale_channels_backward;
  be->add_scaled_backward = mdc_cpu_scalar_add_scaled_backward;
  be->pixelshuffle_backward = mdc_cpu_scalar_pixelshuffle_backward;
  be->l1_loss = mdc_cpu_scalar_l1_loss;
  be->adamw_step = mdc_cpu_scalar_adamw_step;
  mdc_cpu_glue_init(be);
}
