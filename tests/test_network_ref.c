/* test_network_ref.c - the C network (public API) against the float64
 * reference ref64.c on small random models.
 *
 * For each architecture: random weights (nonzero beta/gamma so every block
 * matters) written to a file and loaded with maskdcpt_model_load; one tile
 * covers the image.  On each size, with the fast (default) and the scalar
 * kernels: maskdcpt_restore with a forced class and with
 * MASKDCPT_CLASS_AUTO against ref64_restore on the one-hot / on the
 * probabilities of ref64_classify_image, maskdcpt_classify against
 * ref64_classify_image, plus strength 0.5 and grey+alpha input on one size;
 * one image large enough for several classification crops.
 *
 * Tolerances: restored pixels 2e-4, probabilities 1e-4 (fp32 against fp64
 * through a few layers; the random models output values up to about 7). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maskdcpt.h"
#include "ref64.h"
#include "weights.h"

#define PIXEL_TOL 2e-4
#define PROB_TOL 1e-4

static int passed, failed;

static void check(const char *what, double err, double tol) {
  int ok = err <= tol; /* NaN fails */
  printf("  %-4s %-58s max abs err %.3e (tol %.0e)\n", ok ? "ok" : "FAIL", what, err, tol);
  if (ok)
    passed++;
  else
    failed++;
}

static void fail(const char *what, const maskdcpt_error *err) {
  printf("  FAIL %s: %s\n", what, err ? err->message : "");
  failed++;
}

/* splitmix64: the same inputs on every machine. */
static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static float rng_unit(uint64_t *s) { return (float)(rng_next(s) >> 40) / 16777216.0f; }

static double max_abs_diff_fd(const float *a, const double *b, size_t n) {
  double m = 0.0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - b[i]);
    if (!(d <= m)) m = d; /* keeps NaN */
  }
  return m;
}

typedef struct test_case {
  const char *name;
  mdc_arch arch;
  int fp16; /* store the weights as F16 */
  double prob_tol; /* 0: PROB_TOL */
  int sizes[4][2]; /* h, w; 0-terminated */
} test_case;

static mdc_arch make_arch(int width, int levels, const int *enc, int middle, const int *dec,
                          int classes, int hidden, int window, float eps) {
  mdc_arch a;
  memset(&a, 0, sizeof a);
  a.width = width;
  a.levels = levels;
  for (int l = 0; l < levels; l++) {
    a.enc_blocks[l] = enc[l];
    a.dec_blocks[l] = dec[l];
  }
  a.middle_blocks = middle;
  a.num_classes = classes;
  a.cls_hidden = hidden;
  a.sca_window = window;
  a.norm_eps = eps;
  for (int k = 0; k < classes; k++) snprintf(a.class_names[k], MDC_MAX_CLASS_NAME, "type-%d", k);
  return a;
}

/* The float64 references for one image. */
typedef struct refs {
  int h, wd, K, forced;
  float *rgb;                   /* [h][wd][3] */
  float *grey;                  /* [h][wd][2]: Y', alpha */
  double *forced_out, *auto_out, *half_out, *grey_out; /* [h][wd][3] */
  double onehot[MDC_MAX_CLASSES], probs[MDC_MAX_CLASSES], grey_probs[MDC_MAX_CLASSES];
} refs;

static void refs_free(refs *r) {
  free(r->rgb);
  free(r->grey);
  free(r->forced_out);
  free(r->auto_out);
  free(r->half_out);
  free(r->grey_out);
}

static int refs_compute(const mdc_weights *w, int h, int wd, uint64_t seed, int extras, refs *r) {
  size_t n = (size_t)h * wd * 3, np = (size_t)h * wd;
  memset(r, 0, sizeof *r);
  r->h = h;
  r->wd = wd;
  r->K = w->arch.num_classes;
  r->forced = (int)(seed % (uint64_t)r->K);
  r->onehot[r->forced] = 1.0;
  r->rgb = malloc(sizeof(float) * n);
  r->forced_out = malloc(sizeof(double) * n);
  r->auto_out = malloc(sizeof(double) * n);
  if (!r->rgb || !r->forced_out || !r->auto_out) return -1;
  for (size_t i = 0; i < n; i++) r->rgb[i] = rng_unit(&seed);
  if (ref64_classify_image(w, r->rgb, h, wd, r->probs) ||
      ref64_restore(w, r->rgb, h, wd, r->onehot, r->forced_out) ||
      ref64_restore(w, r->rgb, h, wd, r->probs, r->auto_out))
    return -1;
  if (!extras) return 0;

  /* strength 0.5: out = in + 0.5 (restored - in) */
  r->half_out = malloc(sizeof(double) * n);
  if (!r->half_out) return -1;
  for (size_t i = 0; i < n; i++) r->half_out[i] = r->rgb[i] + 0.5 * (r->forced_out[i] - r->rgb[i]);

  /* grey + alpha: replicated to R'G'B', classified and restored (auto),
   * averaged back; alpha copied */
  r->grey = malloc(sizeof(float) * np * 2);
  float *grey_rgb = malloc(sizeof(float) * n);
  double *rest = malloc(sizeof(double) * n);
  r->grey_out = malloc(sizeof(double) * np);
  int rc = -1;
  if (r->grey && grey_rgb && rest && r->grey_out) {
    for (size_t i = 0; i < np; i++) {
      r->grey[2 * i] = rng_unit(&seed);
      r->grey[2 * i + 1] = rng_unit(&seed);
      grey_rgb[3 * i] = grey_rgb[3 * i + 1] = grey_rgb[3 * i + 2] = r->grey[2 * i];
    }
    if (!ref64_classify_image(w, grey_rgb, h, wd, r->grey_probs) &&
        !ref64_restore(w, grey_rgb, h, wd, r->grey_probs, rest)) {
      for (size_t i = 0; i < np; i++)
        r->grey_out[i] = (rest[3 * i] + rest[3 * i + 1] + rest[3 * i + 2]) / 3.0;
      rc = 0;
    }
  }
  free(grey_rgb);
  free(rest);
  return rc;
}

/* The library on one image with one kernel path against the references. */
static void run_path(const refs *r, maskdcpt_model *model, int scalar, double prob_tol) {
  int h = r->h, wd = r->wd, K = r->K;
  size_t n = (size_t)h * wd * 3, np = (size_t)h * wd;
  const char *path = scalar ? "scalar" : "fast";
  char what[128];
  maskdcpt_error err;
  memset(&err, 0, sizeof err);
  float probs[MDC_MAX_CLASSES];
  maskdcpt_context *ctx = NULL;
  float *out = malloc(sizeof(float) * n);
  if (!out) {
    fail("out of memory", NULL);
    return;
  }
  if (maskdcpt_context_new(model, &ctx, &err) != MASKDCPT_OK) {
    fail("maskdcpt_context_new", &err);
    free(out);
    return;
  }
  maskdcpt_context_set_tile_size(ctx, 4096); /* one tile */
  maskdcpt_context_set_scalar(ctx, scalar);
  maskdcpt_image in = {r->rgb, wd, h, 3, (size_t)wd * 3}, o = {out, wd, h, 3, (size_t)wd * 3};

  snprintf(what, sizeof what, "%dx%d %s restore class %d", h, wd, path, r->forced);
  if (maskdcpt_restore(ctx, &in, &o, r->forced, 1.0f, probs, &err) != MASKDCPT_OK) {
    fail(what, &err);
  } else {
    check(what, max_abs_diff_fd(out, r->forced_out, n), PIXEL_TOL);
    snprintf(what, sizeof what, "%dx%d %s restore class %d: probs out one-hot", h, wd, path,
             r->forced);
    check(what, max_abs_diff_fd(probs, r->onehot, (size_t)K), 0.0);
  }

  snprintf(what, sizeof what, "%dx%d %s restore auto", h, wd, path);
  if (maskdcpt_restore(ctx, &in, &o, MASKDCPT_CLASS_AUTO, 1.0f, probs, &err) != MASKDCPT_OK) {
    fail(what, &err);
  } else {
    check(what, max_abs_diff_fd(out, r->auto_out, n), PIXEL_TOL);
    snprintf(what, sizeof what, "%dx%d %s restore auto: conditioning probs", h, wd, path);
    check(what, max_abs_diff_fd(probs, r->probs, (size_t)K), prob_tol);
  }

  snprintf(what, sizeof what, "%dx%d %s classify", h, wd, path);
  if (maskdcpt_classify(ctx, &in, probs, &err) != MASKDCPT_OK)
    fail(what, &err);
  else
    check(what, max_abs_diff_fd(probs, r->probs, (size_t)K), prob_tol);

  if (r->half_out) {
    snprintf(what, sizeof what, "%dx%d %s restore class %d strength 0.5", h, wd, path, r->forced);
    if (maskdcpt_restore(ctx, &in, &o, r->forced, 0.5f, NULL, &err) != MASKDCPT_OK)
      fail(what, &err);
    else
      check(what, max_abs_diff_fd(out, r->half_out, n), PIXEL_TOL);
  }

  if (r->grey_out) {
    float *gout = out; /* np * 2 <= n floats */
    maskdcpt_image gi = {r->grey, wd, h, 2, (size_t)wd * 2}, go = {gout, wd, h, 2, (size_t)wd * 2};
    snprintf(what, sizeof what, "%dx%d %s restore auto grey+alpha", h, wd, path);
    if (maskdcpt_restore(ctx, &gi, &go, MASKDCPT_CLASS_AUTO, 1.0f, probs, &err) != MASKDCPT_OK) {
      fail(what, &err);
    } else {
      double m = 0.0, ma = 0.0;
      for (size_t i = 0; i < np; i++) {
        double d = fabs(gout[2 * i] - r->grey_out[i]);
        double da = fabs(gout[2 * i + 1] - r->grey[2 * i + 1]);
        if (!(d <= m)) m = d;
        if (!(da <= ma)) ma = da;
      }
      check(what, m, PIXEL_TOL);
      snprintf(what, sizeof what, "%dx%d %s restore auto grey+alpha: alpha", h, wd, path);
      check(what, ma, 0.0);
      snprintf(what, sizeof what, "%dx%d %s restore auto grey+alpha: probs", h, wd, path);
      check(what, max_abs_diff_fd(probs, r->grey_probs, (size_t)K), prob_tol);
    }
  }
  maskdcpt_context_free(ctx);
  free(out);
}

static void run_case(const test_case *tc, uint64_t seed) {
  maskdcpt_error err;
  memset(&err, 0, sizeof err);
  mdc_weights w, wl;
  memset(&w, 0, sizeof w);
  memset(&wl, 0, sizeof wl);
  maskdcpt_model *model = NULL;
  char path[1024];
  const char *dir = getenv("MASKDCPT_TEST_TMP");
  snprintf(path, sizeof path, "%s/test_network_ref_%s.safetensors", dir && *dir ? dir : "/tmp",
           tc->name);

  printf("%s: width %d levels %d sca_window %d classes %d hidden %d eps %g%s\n", tc->name,
         tc->arch.width, tc->arch.levels, tc->arch.sca_window, tc->arch.num_classes,
         tc->arch.cls_hidden, (double)tc->arch.norm_eps, tc->fp16 ? " (F16 file)" : "");
  if (mdc_weights_init_random(&w, &tc->arch, seed, 0.5f, &err) != MASKDCPT_OK) {
    fail("mdc_weights_init_random", &err);
    return;
  }
  if (mdc_weights_write(&w, path, tc->fp16, &err) != MASKDCPT_OK) {
    fail("mdc_weights_write", &err);
    goto done;
  }
  if (maskdcpt_model_load(path, &model, &err) != MASKDCPT_OK) {
    fail("maskdcpt_model_load", &err);
    goto done;
  }
  /* The reference reads what the file holds (F16-rounded for fp16 files). */
  const mdc_weights *ref_w = &w;
  if (tc->fp16) {
    if (mdc_weights_load(path, &wl, &err) != MASKDCPT_OK) {
      fail("mdc_weights_load", &err);
      goto done;
    }
    ref_w = &wl;
  }
  for (int s = 0; s < 4 && tc->sizes[s][0]; s++) {
    refs r;
    /* strength 0.5 and grey+alpha on the third size (or the only one) */
    int extras = s == 2 || (s == 0 && !tc->sizes[1][0]);
    if (refs_compute(ref_w, tc->sizes[s][0], tc->sizes[s][1], seed * 1000 + (uint64_t)s, extras,
                     &r)) {
      fail("ref64 failed or out of memory", NULL);
    } else {
      for (int scalar = 0; scalar <= 1; scalar++)
        run_path(&r, model, scalar, tc->prob_tol > 0 ? tc->prob_tol : PROB_TOL);
    }
    refs_free(&r);
  }
done:
  maskdcpt_model_free(model);
  mdc_weights_clear(&w);
  mdc_weights_clear(&wl);
  remove(path);
}

int main(void) {
  static const int b11[] = {1, 1}, b121[] = {1, 2, 1}, b112[] = {1, 1, 2};
  test_case cases[] = {
      {"w8_global", make_arch(8, 2, b11, 1, b11, 4, 16, 0, 1e-6f), 0, 0,
       {{1, 1}, {7, 5}, {33, 17}, {64, 64}}},
      /* window 24: global on 1x1 and 7x5 (padded 4x4 / 8x8), windowed along
       * the height only at level 0 on 33x17 (36x20), on every level of 64x64 */
      {"w8_window24", make_arch(8, 2, b11, 1, b11, 4, 16, 24, 1e-5f), 0, 0,
       {{1, 1}, {7, 5}, {33, 17}, {64, 64}}},
      /* padded 48x40: k = 32, 16, 8, 4 at levels 0..3, windowed everywhere */
      {"w16_l3_window32", make_arch(16, 3, b121, 2, b112, 5, 24, 32, 1e-6f), 0, 0,
       {{45, 38}}},
      {"w8_global_f16", make_arch(8, 2, b11, 1, b11, 3, 8, 0, 1e-6f), 1, 0, {{33, 17}}},
      /* whole-image classification over 2 x 3 crops of 256 x 256; 531 - 256
       * is odd, so the middle crop's start (137.5) depends on the rounding;
       * a one-pixel shift moves the probabilities by about 1e-4 only, hence
       * the tighter tolerance (the error seen is about 1e-8) */
      {"w4_l1_crops", make_arch(4, 1, b11, 1, b11, 3, 8, 16, 1e-6f), 0, 1e-6, {{300, 531}}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i], 11 + i);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
