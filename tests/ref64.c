/* ref64.c - the float64 reference forward of the network, written from
 * docs/network.md alone.  Feature maps are CHW doubles; every layer is a
 * plain loop over its definition.  See ref64.h. */
#include "ref64.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ feature maps */

typedef struct map64 {
  int c, h, w;
  double *d;
} map64;

#define AT(m, ch, y, x) ((m)->d[((size_t)(ch) * (size_t)(m)->h + (size_t)(y)) * (size_t)(m)->w + (size_t)(x)])

static int map_alloc(map64 *m, int c, int h, int w) {
  m->c = c;
  m->h = h;
  m->w = w;
  m->d = calloc((size_t)c * (size_t)h * (size_t)w, sizeof(double));
  if (!m->d) {
    fprintf(stderr, "ref64: out of memory (%d x %d x %d)\n", c, h, w);
    return -1;
  }
  return 0;
}

static void map_free(map64 *m) {
  free(m->d);
  m->d = NULL;
}

/* ------------------------------------------------------------------ tensors */

/* A tensor by printf-formatted name, or NULL with a message. */
static const float *tensor(const mdc_weights *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const float *tensor(const mdc_weights *w, const char *fmt, ...) {
  char name[128];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  const float *t = mdc_weights_tensor(w, name);
  if (!t) fprintf(stderr, "ref64: tensor '%s' not found\n", name);
  return t;
}

/* --------------------------------------------------------------------- layers */

/* Dense convolution, weight OIHW [cout][cin][k][k], zero padding `pad`,
 * stride `stride`; bias may be NULL. */
static int conv2d(const map64 *x, const float *wt, const float *b, int cout, int k, int stride,
                  int pad, map64 *y) {
  int oh = (x->h + 2 * pad - k) / stride + 1;
  int ow = (x->w + 2 * pad - k) / stride + 1;
  if (map_alloc(y, cout, oh, ow)) return -1;
  for (int o = 0; o < cout; o++)
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++) {
        double acc = b ? (double)b[o] : 0.0;
        for (int i = 0; i < x->c; i++)
          for (int ky = 0; ky < k; ky++) {
            int iy = oy * stride + ky - pad;
            if (iy < 0 || iy >= x->h) continue;
            for (int kx = 0; kx < k; kx++) {
              int ix = ox * stride + kx - pad;
              if (ix < 0 || ix >= x->w) continue;
              acc += (double)wt[(((size_t)o * x->c + i) * k + ky) * k + kx] * AT(x, i, iy, ix);
            }
          }
        AT(y, o, oy, ox) = acc;
      }
  return 0;
}

/* Depthwise 3x3, weight [c][1][3][3], zero padding 1. */
static int dwconv3x3(const map64 *x, const float *wt, const float *b, map64 *y) {
  if (map_alloc(y, x->c, x->h, x->w)) return -1;
  for (int c = 0; c < x->c; c++)
    for (int oy = 0; oy < x->h; oy++)
      for (int ox = 0; ox < x->w; ox++) {
        double acc = (double)b[c];
        for (int ky = 0; ky < 3; ky++) {
          int iy = oy + ky - 1;
          if (iy < 0 || iy >= x->h) continue;
          for (int kx = 0; kx < 3; kx++) {
            int ix = ox + kx - 1;
            if (ix < 0 || ix >= x->w) continue;
            acc += (double)wt[(size_t)c * 9 + ky * 3 + kx] * AT(x, c, iy, ix);
          }
        }
        AT(y, c, oy, ox) = acc;
      }
  return 0;
}

/* Per-pixel LayerNorm over channels, biased variance. */
static int layernorm(const map64 *x, const double *g, const double *b, double eps, map64 *y) {
  if (map_alloc(y, x->c, x->h, x->w)) return -1;
  for (int py = 0; py < x->h; py++)
    for (int px = 0; px < x->w; px++) {
      double mean = 0.0, var = 0.0;
      for (int c = 0; c < x->c; c++) mean += AT(x, c, py, px);
      mean /= x->c;
      for (int c = 0; c < x->c; c++) {
        double d = AT(x, c, py, px) - mean;
        var += d * d;
      }
      var /= x->c;
      double inv = 1.0 / sqrt(var + eps);
      for (int c = 0; c < x->c; c++)
        AT(y, c, py, px) = (AT(x, c, py, px) - mean) * inv * g[c] + b[c];
    }
  return 0;
}

/* First half of the channels times the second half. */
static int simple_gate(const map64 *x, map64 *y) {
  int c = x->c / 2;
  if (map_alloc(y, c, x->h, x->w)) return -1;
  for (int ch = 0; ch < c; ch++)
    for (int py = 0; py < x->h; py++)
      for (int px = 0; px < x->w; px++) AT(y, ch, py, px) = AT(x, ch, py, px) * AT(x, ch + c, py, px);
  return 0;
}

/* The TLC box along one axis of `n` pixels for output position p. */
static void pool_box(int p, int n, int k, int global, int *start, int *len) {
  if (global || k >= n) {
    *start = 0;
    *len = n;
    return;
  }
  int s = p - k / 2;
  if (s < 0) s = 0;
  if (s > n - k) s = n - k;
  *start = s;
  *len = k;
}

/* pooled[c][y][x] = mean of t[c] over the k x k box of (y, x). */
static int tlc_pool(const map64 *t, int sca_window, int level, map64 *pooled) {
  int global = sca_window == 0;
  int k = sca_window >> level;
  if (k < 1) k = 1;
  if (map_alloc(pooled, t->c, t->h, t->w)) return -1;
  map64 rows;
  if (map_alloc(&rows, t->c, t->h, t->w)) {
    map_free(pooled);
    return -1;
  }
  /* Sum along x over each pixel's box, then along y: the box is separable. */
  for (int c = 0; c < t->c; c++)
    for (int py = 0; py < t->h; py++)
      for (int px = 0; px < t->w; px++) {
        int s, n;
        pool_box(px, t->w, k, global, &s, &n);
        double acc = 0.0;
        for (int i = s; i < s + n; i++) acc += AT(t, c, py, i);
        AT(&rows, c, py, px) = acc;
      }
  for (int c = 0; c < t->c; c++)
    for (int py = 0; py < t->h; py++)
      for (int px = 0; px < t->w; px++) {
        int sy, ny, sx, nx;
        pool_box(py, t->h, k, global, &sy, &ny);
        pool_box(px, t->w, k, global, &sx, &nx);
        double acc = 0.0;
        for (int i = sy; i < sy + ny; i++) acc += AT(&rows, c, i, px);
        AT(pooled, c, py, px) = acc / ((double)ny * (double)nx);
      }
  map_free(&rows);
  return 0;
}

/* ------------------------------------------------------------------ NAFBlock */

typedef struct block_tensors {
  const float *n1w, *n1b, *c1w, *c1b, *c2w, *c2b, *scaw, *scab, *c3w, *c3b;
  const float *n2w, *n2b, *c4w, *c4b, *c5w, *c5b, *beta, *gamma;
} block_tensors;

static int block_get(const mdc_weights *w, const char *p, block_tensors *t) {
  t->n1w = tensor(w, "%s.norm1.weight", p);
  t->n1b = tensor(w, "%s.norm1.bias", p);
  t->c1w = tensor(w, "%s.conv1.weight", p);
  t->c1b = tensor(w, "%s.conv1.bias", p);
  t->c2w = tensor(w, "%s.conv2.weight", p);
  t->c2b = tensor(w, "%s.conv2.bias", p);
  t->scaw = tensor(w, "%s.sca.weight", p);
  t->scab = tensor(w, "%s.sca.bias", p);
  t->c3w = tensor(w, "%s.conv3.weight", p);
  t->c3b = tensor(w, "%s.conv3.bias", p);
  t->n2w = tensor(w, "%s.norm2.weight", p);
  t->n2b = tensor(w, "%s.norm2.bias", p);
  t->c4w = tensor(w, "%s.conv4.weight", p);
  t->c4b = tensor(w, "%s.conv4.bias", p);
  t->c5w = tensor(w, "%s.conv5.weight", p);
  t->c5b = tensor(w, "%s.conv5.bias", p);
  t->beta = tensor(w, "%s.beta", p);
  t->gamma = tensor(w, "%s.gamma", p);
  const float *const *all = (const float *const *)t;
  for (size_t i = 0; i < sizeof *t / sizeof(const float *); i++)
    if (!all[i]) return -1;
  return 0;
}

/* Norm parameters: [c] as they are, or [K][c] mixed by probs. */
static void norm_params(const float *wt, int c, int K, const double *probs, double *out) {
  for (int ch = 0; ch < c; ch++) {
    if (!probs) {
      out[ch] = wt[ch];
    } else {
      double acc = 0.0;
      for (int k = 0; k < K; k++) acc += probs[k] * (double)wt[(size_t)k * c + ch];
      out[ch] = acc;
    }
  }
}

/* x <- NAFBlock(x).  probs: NULL for plain norms, else the class weights
 * of the conditioned norms. */
static int nafblock(const mdc_weights *w, const char *prefix, int level, const double *probs,
                    map64 *x) {
  const mdc_arch *a = &w->arch;
  block_tensors t;
  if (block_get(w, prefix, &t)) return -1;
  int C = x->c, H = x->h, W = x->w, K = a->num_classes;
  double eps = a->norm_eps;
  double *g = malloc(sizeof(double) * C), *b = malloc(sizeof(double) * C);
  map64 t1 = {0}, t2 = {0}, t3 = {0}, gated = {0}, pooled = {0}, s = {0}, t4 = {0}, y = {0};
  int rc = -1;
  if (!g || !b) goto done;

  norm_params(t.n1w, C, K, probs, g);
  norm_params(t.n1b, C, K, probs, b);
  if (layernorm(x, g, b, eps, &t1)) goto done;
  if (conv2d(&t1, t.c1w, t.c1b, 2 * C, 1, 1, 0, &t2)) goto done;
  map_free(&t1);
  if (dwconv3x3(&t2, t.c2w, t.c2b, &t3)) goto done;
  map_free(&t2);
  if (simple_gate(&t3, &gated)) goto done;
  map_free(&t3);
  if (tlc_pool(&gated, a->sca_window, level, &pooled)) goto done;
  if (conv2d(&pooled, t.scaw, t.scab, C, 1, 1, 0, &s)) goto done;
  for (size_t i = 0; i < (size_t)C * H * W; i++) gated.d[i] *= s.d[i];
  if (conv2d(&gated, t.c3w, t.c3b, C, 1, 1, 0, &t4)) goto done;
  if (map_alloc(&y, C, H, W)) goto done;
  for (int c = 0; c < C; c++)
    for (size_t i = 0; i < (size_t)H * W; i++)
      y.d[(size_t)c * H * W + i] = x->d[(size_t)c * H * W + i] + (double)t.beta[c] * t4.d[(size_t)c * H * W + i];
  map_free(&t4);
  map_free(&gated);

  norm_params(t.n2w, C, K, probs, g);
  norm_params(t.n2b, C, K, probs, b);
  if (layernorm(&y, g, b, eps, &t1)) goto done;
  if (conv2d(&t1, t.c4w, t.c4b, 2 * C, 1, 1, 0, &t2)) goto done;
  if (simple_gate(&t2, &gated)) goto done;
  if (conv2d(&gated, t.c5w, t.c5b, C, 1, 1, 0, &t4)) goto done;
  for (int c = 0; c < C; c++)
    for (size_t i = 0; i < (size_t)H * W; i++)
      x->d[(size_t)c * H * W + i] = y.d[(size_t)c * H * W + i] + (double)t.gamma[c] * t4.d[(size_t)c * H * W + i];
  rc = 0;
done:
  free(g);
  free(b);
  map_free(&t1);
  map_free(&t2);
  map_free(&t3);
  map_free(&gated);
  map_free(&pooled);
  map_free(&s);
  map_free(&t4);
  map_free(&y);
  return rc;
}

/* ------------------------------------------------------------------- network */

int ref64_reflect_index(int i, int n) {
  if (n <= 1) return 0;
  int period = 2 * (n - 1);
  int m = i % period;
  if (m < 0) m += period;
  return m < n ? m : period - m;
}

/* The padded input, 3 x Hp x Wp. */
static int pad_input(const float *rgb, int h, int wd, int multiple, map64 *inp) {
  int hp = (h + multiple - 1) / multiple * multiple;
  int wp = (wd + multiple - 1) / multiple * multiple;
  if (map_alloc(inp, 3, hp, wp)) return -1;
  for (int y = 0; y < hp; y++)
    for (int x = 0; x < wp; x++) {
      int sy = ref64_reflect_index(y, h), sx = ref64_reflect_index(x, wd);
      for (int c = 0; c < 3; c++) AT(inp, c, y, x) = rgb[((size_t)sy * wd + sx) * 3 + c];
    }
  return 0;
}

/* intro, encoders (keeping the skips), middle.  skips[l] for l < L receive
 * f_l; x receives f_L. */
static int run_encoder(const mdc_weights *w, const map64 *inp, map64 *skips, map64 *x) {
  const mdc_arch *a = &w->arch;
  char prefix[64];
  const float *iw = tensor(w, "intro.weight"), *ib = tensor(w, "intro.bias");
  if (!iw || !ib) return -1;
  if (conv2d(inp, iw, ib, a->width, 3, 1, 1, x)) return -1;
  for (int l = 0; l < a->levels; l++) {
    for (int bl = 0; bl < a->enc_blocks[l]; bl++) {
      snprintf(prefix, sizeof prefix, "encoders.%d.%d", l, bl);
      if (nafblock(w, prefix, l, NULL, x)) return -1;
    }
    skips[l] = *x;
    const float *dw = tensor(w, "downs.%d.weight", l), *db = tensor(w, "downs.%d.bias", l);
    map64 down;
    if (!dw || !db || conv2d(&skips[l], dw, db, 2 * x->c, 2, 2, 0, &down)) {
      x->d = NULL; /* owned by skips[l] now */
      return -1;
    }
    *x = down;
  }
  for (int bl = 0; bl < a->middle_blocks; bl++) {
    snprintf(prefix, sizeof prefix, "middle.%d", bl);
    if (nafblock(w, prefix, a->levels, NULL, x)) return -1;
  }
  return 0;
}

/* g_l from f_l over the valid top-left vh x vw area. */
static int pool_features(const mdc_weights *w, int l, const map64 *f, int vh, int vw, double *g) {
  int H = w->arch.cls_hidden;
  const float *pw = tensor(w, "cls.proj.%d.weight", l), *pb = tensor(w, "cls.proj.%d.bias", l);
  if (!pw || !pb) return -1;
  for (int j = 0; j < H; j++) {
    double sum = 0.0;
    for (int y = 0; y < vh; y++)
      for (int x = 0; x < vw; x++) {
        double acc = pb[j];
        for (int c = 0; c < f->c; c++) acc += (double)pw[(size_t)j * f->c + c] * AT(f, c, y, x);
        sum += acc > 0.0 ? acc : 0.0;
      }
    g[j] = sum / ((double)vh * (double)vw);
  }
  return 0;
}

int ref64_features(const mdc_weights *w, const float *rgb, int h, int wd, double *g_levels,
                   double *valid_counts) {
  const mdc_arch *a = &w->arch;
  int L = a->levels;
  map64 inp = {0}, x = {0}, skips[MDC_MAX_LEVELS];
  memset(skips, 0, sizeof skips);
  int rc = -1;
  if (pad_input(rgb, h, wd, 1 << L, &inp)) goto done;
  if (run_encoder(w, &inp, skips, &x)) goto done;
  for (int l = 0; l <= L; l++) {
    int vh = (h + (1 << l) - 1) >> l, vw = (wd + (1 << l) - 1) >> l;
    if (pool_features(w, l, l < L ? &skips[l] : &x, vh, vw, g_levels + (size_t)l * a->cls_hidden))
      goto done;
    if (valid_counts) valid_counts[l] = (double)vh * (double)vw;
  }
  rc = 0;
done:
  map_free(&inp);
  map_free(&x);
  for (int l = 0; l < L; l++) map_free(&skips[l]);
  return rc;
}

static void softmax(const double *in, int n, double *out) {
  double m = in[0];
  for (int i = 1; i < n; i++)
    if (in[i] > m) m = in[i];
  double s = 0.0;
  for (int i = 0; i < n; i++) s += out[i] = exp(in[i] - m);
  for (int i = 0; i < n; i++) out[i] /= s;
}

void ref64_classify_from_g(const mdc_weights *w, const double *g_levels, double *probs) {
  const mdc_arch *a = &w->arch;
  int L = a->levels, H = a->cls_hidden, K = a->num_classes;
  const float *mix = tensor(w, "cls.mix");
  const float *f1w = tensor(w, "cls.fc1.weight"), *f1b = tensor(w, "cls.fc1.bias");
  const float *f2w = tensor(w, "cls.fc2.weight"), *f2b = tensor(w, "cls.fc2.bias");
  if (!mix || !f1w || !f1b || !f2w || !f2b) {
    for (int k = 0; k < K; k++) probs[k] = NAN;
    return;
  }
  double m[MDC_MAX_LEVELS + 1] = {0}, sm[MDC_MAX_LEVELS + 1] = {0};
  for (int l = 0; l <= L; l++) m[l] = mix[l];
  softmax(m, L + 1, sm);
  double *g = calloc((size_t)H * 2, sizeof(double));
  double logits[MDC_MAX_CLASSES];
  if (!g) {
    for (int k = 0; k < K; k++) probs[k] = NAN;
    return;
  }
  double *hid = g + H;
  for (int l = 0; l <= L; l++)
    for (int j = 0; j < H; j++) g[j] += sm[l] * g_levels[(size_t)l * H + j];
  for (int i = 0; i < H; i++) {
    double acc = f1b[i];
    for (int j = 0; j < H; j++) acc += (double)f1w[(size_t)i * H + j] * g[j];
    hid[i] = acc > 0.0 ? acc : 0.0;
  }
  for (int k = 0; k < K; k++) {
    double acc = f2b[k];
    for (int j = 0; j < H; j++) acc += (double)f2w[(size_t)k * H + j] * hid[j];
    logits[k] = acc;
  }
  softmax(logits, K, probs);
  free(g);
}

/* Crops along one axis: their count, and the i-th start, i * (n - size) /
 * (count - 1) rounded to nearest (halves up). */
static int crop_count(int n) {
  int c = (n + 255) / 256;
  return c > 3 ? 3 : c;
}

static int crop_start(int i, int count, int n, int size) {
  if (count == 1) return 0;
  return (int)((2LL * i * (n - size) + (count - 1)) / (2LL * (count - 1)));
}

int ref64_classify_image(const mdc_weights *w, const float *rgb, int h, int wd, double *probs) {
  const mdc_arch *a = &w->arch;
  int L = a->levels, H = a->cls_hidden;
  int ny = crop_count(h), nx = crop_count(wd);
  int ch = h < 256 ? h : 256, cw = wd < 256 ? wd : 256;
  double *sum = calloc((size_t)(L + 1) * H * 2, sizeof(double));
  float *crop = malloc(sizeof(float) * 3 * (size_t)ch * cw);
  double counts[MDC_MAX_LEVELS + 1], total[MDC_MAX_LEVELS + 1] = {0};
  int rc = -1;
  if (!sum || !crop) goto done;
  double *g = sum + (size_t)(L + 1) * H;
  for (int iy = 0; iy < ny; iy++)
    for (int ix = 0; ix < nx; ix++) {
      int y0 = crop_start(iy, ny, h, ch), x0 = crop_start(ix, nx, wd, cw);
      for (int y = 0; y < ch; y++)
        memcpy(crop + (size_t)y * cw * 3, rgb + ((size_t)(y0 + y) * wd + x0) * 3,
               sizeof(float) * 3 * (size_t)cw);
      if (ref64_features(w, crop, ch, cw, g, counts)) goto done;
      for (int l = 0; l <= L; l++) {
        total[l] += counts[l];
        for (int j = 0; j < H; j++) sum[(size_t)l * H + j] += counts[l] * g[(size_t)l * H + j];
      }
    }
  for (int l = 0; l <= L; l++)
    for (int j = 0; j < H; j++) sum[(size_t)l * H + j] /= total[l];
  ref64_classify_from_g(w, sum, probs);
  rc = isnan(probs[0]) ? -1 : 0;
done:
  free(sum);
  free(crop);
  return rc;
}

int ref64_restore(const mdc_weights *w, const float *rgb, int h, int wd,
                  const double *class_probs, double *out) {
  const mdc_arch *a = &w->arch;
  int L = a->levels;
  char prefix[64];
  map64 inp = {0}, x = {0}, up = {0}, y = {0}, skips[MDC_MAX_LEVELS];
  memset(skips, 0, sizeof skips);
  int rc = -1;
  if (pad_input(rgb, h, wd, 1 << L, &inp)) goto done;
  if (run_encoder(w, &inp, skips, &x)) goto done;
  for (int i = 0; i < L; i++) {
    int l = L - 1 - i;
    const float *uw = tensor(w, "ups.%d.weight", i);
    if (!uw) goto done;
    if (conv2d(&x, uw, NULL, 2 * x.c, 1, 1, 0, &up)) goto done;
    map_free(&x);
    /* PixelShuffle(2): out[c][2y+i][2x+j] = in[4c + 2i + j][y][x]. */
    if (map_alloc(&x, up.c / 4, up.h * 2, up.w * 2)) goto done;
    for (int c = 0; c < x.c; c++)
      for (int py = 0; py < x.h; py++)
        for (int px = 0; px < x.w; px++)
          AT(&x, c, py, px) = AT(&up, 4 * c + 2 * (py & 1) + (px & 1), py / 2, px / 2) +
                              AT(&skips[l], c, py, px);
    map_free(&up);
    for (int bl = 0; bl < a->dec_blocks[i]; bl++) {
      snprintf(prefix, sizeof prefix, "decoders.%d.%d", i, bl);
      if (nafblock(w, prefix, l, class_probs, &x)) goto done;
    }
  }
  const float *ew = tensor(w, "ending.weight"), *eb = tensor(w, "ending.bias");
  if (!ew || !eb) goto done;
  if (conv2d(&x, ew, eb, 3, 3, 1, 1, &y)) goto done;
  for (int py = 0; py < h; py++)
    for (int px = 0; px < wd; px++)
      for (int c = 0; c < 3; c++)
        out[((size_t)py * wd + px) * 3 + c] = AT(&y, c, py, px) + AT(&inp, c, py, px);
  rc = 0;
done:
  map_free(&inp);
  map_free(&x);
  map_free(&up);
  map_free(&y);
  for (int l = 0; l < L; l++) map_free(&skips[l]);
  return rc;
}
