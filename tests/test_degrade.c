/* test_degrade.c - the degradation synthesis library (degrade/): registry,
 * determinism, level monotonicity, noise statistics, kernels, JPEG against
 * a direct libjpeg round trip, edge sizes, channel layouts, thread safety,
 * exact-sigma Gaussian noise and the PSNR / SSIM metrics.
 *
 * `test_degrade --bench` instead prints degraded 256x256 crops per second
 * on one core for each class (not run by the test suite).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jpeglib.h>
#include <json-c/json.h>

#include "degrade.h"
#include "dg_internal.h"
#include "metrics.h"

static int g_passed, g_failed;

#define CHECK(cond, ...)                                              \
  do {                                                                \
    if (cond) {                                                       \
      g_passed++;                                                     \
    } else {                                                          \
      g_failed++;                                                     \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                   \
      fputc('\n', stderr);                                            \
    }                                                                 \
  } while (0)

static const char *expected_names[DG_NUM_CLASSES] = {
    "clean", "noise", "gaussian-blur", "motion-blur", "defocus-blur", "jpeg", "haze", "rain",
    "low-light", "low-resolution", "mixed-realesrgan", "mixed-lowlight"};

/* Classes whose output depends on the seed. */
static int is_random_class(int c) {
  return c != DG_CLEAN && c != DG_DEFOCUS_BLUR && c != DG_JPEG && c != DG_LOW_RESOLUTION;
}

/* ------------------------------------------------------------ helpers */

/* A photo-like RGB image: smooth shading, hard-edged shapes, a fine
 * texture and a little grain, all in [0.05, 0.95]. */
static float *photo_image(int w, int h, uint32_t seed) {
  float *img = malloc((size_t)w * h * 3 * sizeof *img);
  if (!img) return NULL;
  uint32_t s = seed * 2654435761u + 12345u;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < 3; c++) {
        s = s * 1664525u + 1013904223u;
        float grain = ((s >> 8) / 16777216.0f - 0.5f) * 0.04f;
        float v = 0.45f + 0.2f * sinf(x * 0.05f + c) * cosf(y * 0.04f - 0.5f * c);
        if (((x / 12) + (y / 9)) % 3 == 0) v += 0.18f;                   /* edges */
        float dx = x - 0.6f * w, dy = y - 0.4f * h;
        if (dx * dx + dy * dy < 0.04f * w * h) v -= 0.2f;               /* a disk */
        v += 0.08f * sinf(x * 1.3f + y * 0.7f) * sinf(y * 1.1f - x * 0.4f); /* texture */
        v += grain;
        img[((size_t)y * w + x) * 3 + c] = fminf(0.95f, fmaxf(0.05f, v));
      }
  return img;
}

static double mse(const float *a, const float *b, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
  return s / n;
}

static int all_finite_unit(const float *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!(v[i] >= 0.0f && v[i] <= 1.0f)) return 0;
  return 1;
}

static double kernel_sum(const dg_kernel *k) {
  double s = 0.0;
  for (int i = 0; i < (2 * k->rx + 1) * (2 * k->ry + 1); i++) s += k->k[i];
  return s;
}

static int kernel_nonnegative(const dg_kernel *k) {
  for (int i = 0; i < (2 * k->rx + 1) * (2 * k->ry + 1); i++)
    if (!(k->k[i] >= 0.0f)) return 0;
  return 1;
}

/* Weighted mean offset of a kernel (its centre of mass). */
static void kernel_centroid(const dg_kernel *k, double *cx, double *cy) {
  double sx = 0, sy = 0, s = 0;
  int kw = 2 * k->rx + 1;
  for (int y = 0; y < 2 * k->ry + 1; y++)
    for (int x = 0; x < kw; x++) {
      double v = k->k[y * kw + x];
      sx += v * (x - k->rx);
      sy += v * (y - k->ry);
      s += v;
    }
  *cx = sx / s;
  *cy = sy / s;
}

/* ------------------------------------------------------------ registry */

static void test_registry(void) {
  CHECK(dg_num_classes() == 12, "%d classes", dg_num_classes());
  for (int i = 0; i < DG_NUM_CLASSES; i++) {
    CHECK(dg_class_name(i) && strcmp(dg_class_name(i), expected_names[i]) == 0, "class %d is %s",
          i, dg_class_name(i) ? dg_class_name(i) : "NULL");
    CHECK(dg_class_index(expected_names[i]) == i, "index of %s", expected_names[i]);
    const char *d = dg_class_description(i);
    CHECK(d && strlen(d) > 10 && d[strlen(d) - 1] == '.', "description of %s", expected_names[i]);
    char buf[1024];
    int n = dg_class_params_format(i, buf, sizeof buf);
    CHECK(n > 0 && (size_t)n < sizeof buf && strlen(buf) == (size_t)n, "params of %s: %d",
          expected_names[i], n);
  }
  CHECK(dg_class_index("blur") == -1 && dg_class_index("") == -1 && dg_class_index(NULL) == -1,
        "unknown names");
  CHECK(dg_class_name(-1) == NULL && dg_class_name(12) == NULL, "out-of-range names");
  CHECK(dg_class_description(12) == NULL && dg_class_params_format(12, NULL, 0) == -1,
        "out-of-range description");
  char tiny[8];
  int n = dg_class_params_format(DG_NOISE, tiny, sizeof tiny);
  CHECK(n > 8 && strlen(tiny) == 7, "truncated params: %d", n);

  char *json = dg_registry_json();
  CHECK(json != NULL, "registry JSON");
  if (!json) return;
  json_object *root = json_tokener_parse(json), *v, *classes;
  CHECK(root && json_object_is_type(root, json_type_object), "JSON parses: %.80s", json);
  if (root) {
    CHECK(json_object_object_get_ex(root, "version", &v) && json_object_get_int(v) == DG_VERSION,
          "version");
    CHECK(json_object_object_get_ex(root, "generator", &v) &&
              strcmp(json_object_get_string(v), "maskdcpt-degrade") == 0,
          "generator");
    int ok = json_object_object_get_ex(root, "classes", &classes) &&
             json_object_is_type(classes, json_type_array) &&
             json_object_array_length(classes) == DG_NUM_CLASSES;
    CHECK(ok, "classes array");
    for (int i = 0; ok && i < DG_NUM_CLASSES; i++) {
      json_object *c = json_object_array_get_idx(classes, i), *name, *params, *ver;
      CHECK(json_object_object_get_ex(c, "name", &name) &&
                strcmp(json_object_get_string(name), expected_names[i]) == 0,
            "class %d name", i);
      CHECK(json_object_object_get_ex(c, "version", &ver) && json_object_get_int(ver) >= 1,
            "class %d version", i);
      CHECK(json_object_object_get_ex(c, "params", &params) &&
                json_object_is_type(params, json_type_array) &&
                (i == DG_CLEAN) == (json_object_array_length(params) == 0),
            "class %d params", i);
    }
    if (ok) {
      /* the documented noise range, read back from the JSON */
      json_object *noise = json_object_array_get_idx(classes, DG_NOISE), *params, *p, *lo, *hi;
      json_object_object_get_ex(noise, "params", &params);
      p = json_object_array_get_idx(params, 0);
      CHECK(json_object_object_get_ex(p, "level_0", &lo) &&
                json_object_object_get_ex(p, "level_1", &hi) &&
                json_object_get_double(lo) == 5.0 && json_object_get_double(hi) == 50.0,
            "noise sigma range in JSON");
    }
    json_object_put(root);
  }
  free(json);
}

/* --------------------------------------------------------- determinism */

static void test_determinism(void) {
  const int w = 48, h = 40;
  size_t n = (size_t)w * h * 3;
  float *img = photo_image(w, h, 1);
  float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
  char msg[256];
  for (int k = 0; k < DG_NUM_CLASSES; k++) {
    int rc = dg_apply(img, w, h, a, k, 0.6f, 7, msg, sizeof msg);
    rc |= dg_apply(img, w, h, b, k, 0.6f, 7, msg, sizeof msg);
    CHECK(rc == 0 && memcmp(a, b, n * sizeof *a) == 0, "%s: same seed, same bytes",
          expected_names[k]);
    /* in place gives the same bytes as out of place */
    memcpy(c, img, n * sizeof *c);
    rc = dg_apply(c, w, h, c, k, 0.6f, 7, msg, sizeof msg);
    CHECK(rc == 0 && memcmp(a, c, n * sizeof *a) == 0, "%s: in place", expected_names[k]);
    /* another seed: different output for the random classes (gaussian-blur
     * may draw an isotropic kernel twice, so try a few), the same for the
     * deterministic ones */
    int differs = 0;
    for (uint64_t s = 8; s < 12 && !differs; s++) {
      dg_apply(img, w, h, b, k, 0.6f, s, msg, sizeof msg);
      differs = memcmp(a, b, n * sizeof *a) != 0;
    }
    CHECK(differs == is_random_class(k), "%s: another seed %s", expected_names[k],
          differs ? "differs" : "is the same");
    if (k != DG_GAUSSIAN_BLUR && is_random_class(k)) {
      dg_apply(img, w, h, b, k, 0.6f, 8, msg, sizeof msg);
      CHECK(memcmp(a, b, n * sizeof *a) != 0, "%s: seed 8 differs from seed 7",
            expected_names[k]);
    }
  }
  /* the input is never written when out differs */
  float *copy = photo_image(w, h, 1);
  for (int k = 0; k < DG_NUM_CLASSES; k++) dg_apply(img, w, h, a, k, 0.9f, 3, msg, sizeof msg);
  CHECK(memcmp(img, copy, n * sizeof *img) == 0, "input untouched");
  free(copy);
  free(img), free(a), free(b), free(c);
}

static void test_clean(void) {
  const int w = 31, h = 17;
  size_t n = (size_t)w * h * 3;
  float *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
  dg_rng r;
  dg_rng_init(&r, 99);
  for (size_t i = 0; i < n; i++) in[i] = (float)dg_rng_uniform(&r);
  in[0] = 0.0f, in[1] = 1.0f, in[2] = 1e-40f; /* edges and a subnormal */
  char msg[256];
  CHECK(dg_apply(in, w, h, out, DG_CLEAN, 0.7f, 5, msg, sizeof msg) == 0 &&
            memcmp(in, out, n * sizeof *in) == 0,
        "clean is a bit-exact copy");
  /* out-of-range input is clipped like every class's output */
  in[3] = -0.5f, in[4] = 2.0f, in[5] = NAN;
  dg_apply(in, w, h, out, DG_CLEAN, 0.0f, 5, msg, sizeof msg);
  CHECK(out[3] == 0.0f && out[4] == 1.0f && out[5] == 0.0f, "clean clips %g %g %g",
        (double)out[3], (double)out[4], (double)out[5]);
  free(in), free(out);
}

/* ------------------------------------------------------- monotonicity */

static void test_monotonic(void) {
  const int w = 96, h = 96;
  size_t n = (size_t)w * h * 3;
  float *img = photo_image(w, h, 2), *out = malloc(n * sizeof *out);
  const float levels[3] = {0.1f, 0.5f, 0.9f};
  char msg[256];
  for (int k = 1; k < DG_NUM_CLASSES; k++) {
    double psnr[3];
    for (int l = 0; l < 3; l++) {
      double e = 0.0;
      for (uint64_t seed = 1; seed <= 3; seed++) {
        dg_apply(img, w, h, out, k, levels[l], seed, msg, sizeof msg);
        e += mse(img, out, n) / 3.0;
      }
      psnr[l] = 10.0 * log10(1.0 / e);
    }
    CHECK(psnr[0] > psnr[1] && psnr[1] > psnr[2] && psnr[0] < 60.0,
          "%s: PSNR %.2f, %.2f, %.2f dB at levels 0.1, 0.5, 0.9", expected_names[k], psnr[0],
          psnr[1], psnr[2]);
  }
  free(img), free(out);
}

/* ---------------------------------------------------------- statistics */

static void flat(float *img, size_t npix, float v) {
  for (size_t i = 0; i < npix * 3; i++) img[i] = v;
}

/* Standard deviation and mean of channel c. */
static void channel_stats(const float *img, size_t npix, int c, double *mean, double *sd) {
  double s = 0, s2 = 0;
  for (size_t i = 0; i < npix; i++) {
    double v = img[i * 3 + c];
    s += v;
    s2 += v * v;
  }
  *mean = s / npix;
  *sd = sqrt(s2 / npix - *mean * *mean);
}

/* First seed >= start whose noise draw has the wanted variant. */
static uint64_t noise_seed(int poisson, uint64_t start) {
  dg_noise_params p;
  for (uint64_t s = start;; s++) {
    dg_noise_class_params(0.5f, s, &p);
    if (p.poisson == poisson) return s;
  }
}

static void test_noise_stats(void) {
  const int w = 256, h = 256;
  size_t npix = (size_t)w * h;
  float *img = malloc(npix * 3 * sizeof *img), *out = malloc(npix * 3 * sizeof *out);
  char msg[256];
  flat(img, npix, 0.5f);
  const float levels[3] = {0.0f, 0.5f, 1.0f};
  for (int variant = 0; variant < 2; variant++) {
    uint64_t seed = noise_seed(variant, 1);
    dg_noise_params p;
    dg_noise_class_params(0.5f, seed, &p);
    CHECK(p.poisson == variant, "noise variant");
    for (int l = 0; l < 3; l++) {
      double want = (5.0 + 45.0 * levels[l]) / 255.0;
      dg_apply(img, w, h, out, DG_NOISE, levels[l], seed, msg, sizeof msg);
      for (int c = 0; c < 3; c++) {
        double mean, sd;
        channel_stats(out, npix, c, &mean, &sd);
        CHECK(fabs(sd - want) < 0.05 * want && fabs(mean - 0.5) < 0.01,
              "%s noise, level %.1f: sd %.5f (want %.5f), mean %.4f",
              variant ? "Poisson-Gaussian" : "Gaussian", levels[l], sd, want, mean);
      }
    }
  }
  /* Poisson-Gaussian noise grows with the signal; Gaussian does not */
  for (int variant = 0; variant < 2; variant++) {
    uint64_t seed = noise_seed(variant, 1);
    double sd_dark, sd_light, mean;
    flat(img, npix, 0.2f);
    dg_apply(img, w, h, out, DG_NOISE, 0.3f, seed, msg, sizeof msg);
    channel_stats(out, npix, 1, &mean, &sd_dark);
    flat(img, npix, 0.8f);
    dg_apply(img, w, h, out, DG_NOISE, 0.3f, seed, msg, sizeof msg);
    channel_stats(out, npix, 1, &mean, &sd_light);
    if (variant)
      CHECK(sd_light > 1.5 * sd_dark, "Poisson-Gaussian is signal-dependent: %.4f vs %.4f",
            sd_dark, sd_light);
    else
      CHECK(fabs(sd_light - sd_dark) < 0.05 * sd_dark, "Gaussian is not: %.4f vs %.4f", sd_dark,
            sd_light);
  }
  /* grey noise: all three channels move together */
  int found = 0;
  for (uint64_t s = 1; s < 200 && !found; s++) {
    dg_noise_params p;
    dg_noise_class_params(0.5f, s, &p);
    if (!p.grey) continue;
    found = 1;
    flat(img, npix, 0.5f);
    dg_apply(img, w, h, out, DG_NOISE, 0.5f, s, msg, sizeof msg);
    int same = 1;
    for (size_t i = 0; i < npix; i++)
      if (out[i * 3] != out[i * 3 + 1] || out[i * 3] != out[i * 3 + 2]) same = 0;
    CHECK(same, "grey noise is grey");
  }
  CHECK(found, "some seed draws grey noise");
  /* low-light darkens (exposure 0.4..0.05 in linear light) */
  flat(img, npix, 0.5f);
  double mean_lo, mean_hi, sd;
  dg_apply(img, w, h, out, DG_LOW_LIGHT, 0.0f, 3, msg, sizeof msg);
  channel_stats(out, npix, 0, &mean_lo, &sd);
  dg_apply(img, w, h, out, DG_LOW_LIGHT, 1.0f, 3, msg, sizeof msg);
  channel_stats(out, npix, 0, &mean_hi, &sd);
  double lin = dg_srgb_to_linear(0.5f);
  CHECK(fabs(mean_lo - dg_linear_to_srgb((float)(0.4 * lin))) < 0.02 &&
            fabs(mean_hi - dg_linear_to_srgb((float)(0.05 * lin))) < 0.03,
        "low-light means %.3f, %.3f", mean_lo, mean_hi);
  free(img), free(out);
}

/* dg_apply_gaussian_noise: exactly sigma in every channel, independent
 * channels, and the class's own pixels when its seed draws that variant. */
static void test_gaussian_noise(void) {
  const int w = 256, h = 256;
  size_t npix = (size_t)w * h;
  float *img = malloc(npix * 3 * sizeof *img), *out = malloc(npix * 3 * sizeof *out);
  float *ref = malloc(npix * 3 * sizeof *ref);
  char msg[256];
  flat(img, npix, 0.5f);
  CHECK(dg_apply_gaussian_noise(img, w, h, 3, out, 25.0, 9, msg, sizeof msg) == 0, "%s", msg);
  double corr = 0;
  for (int c = 0; c < 3; c++) {
    double mean, sd;
    channel_stats(out, npix, c, &mean, &sd);
    CHECK(fabs(sd - 25.0 / 255) < 0.02 * 25.0 / 255 && fabs(mean - 0.5) < 0.005,
          "sigma 25: channel %d sd %.5f, mean %.4f", c, sd * 255, mean);
  }
  for (size_t i = 0; i < npix; i++) corr += (out[i * 3] - 0.5) * (out[i * 3 + 1] - 0.5);
  corr /= npix * (25.0 / 255) * (25.0 / 255);
  CHECK(fabs(corr) < 0.03, "channels independent: correlation %.4f", corr);
  uint64_t seed = 1; /* a seed whose class draw is colour Gaussian noise */
  dg_noise_params p;
  for (;; seed++) {
    dg_noise_class_params(0.5f, seed, &p);
    if (!p.poisson && !p.grey) break;
  }
  float *photo = photo_image(64, 48, 3);
  dg_apply(photo, 64, 48, ref, DG_NOISE, 0.5f, seed, msg, sizeof msg);
  dg_apply_gaussian_noise(photo, 64, 48, 3, out, 5.0 + 45.0 * 0.5, seed, msg, sizeof msg);
  double worst = 0;
  for (size_t i = 0; i < 64 * 48 * 3; i++)
    if (fabs(out[i] - ref[i]) > worst) worst = fabs(out[i] - ref[i]);
  CHECK(worst == 0, "same pixels as the noise class at the same sigma: %.3g", worst);
  /* grey in, grey out */
  float grey[64 * 48];
  for (int i = 0; i < 64 * 48; i++) grey[i] = photo[i * 3];
  CHECK(dg_apply_gaussian_noise(grey, 64, 48, 1, grey, 25.0, 1, msg, sizeof msg) == 0, "%s", msg);
  CHECK(dg_apply_gaussian_noise(grey, 64, 48, 3, grey, 300.0, 1, msg, sizeof msg) != 0,
        "sigma outside 0..255 refused");
  free(photo), free(img), free(out), free(ref);
}

/* The straightforward 2-D form of SSIM that metrics.c computes separably. */
static double ssim_direct(const float *a, const float *b, int w, int h) {
  double g[11], gs = 0, total = 0;
  for (int i = 0; i < 11; i++) gs += g[i] = exp(-(i - 5) * (i - 5) / (2 * 1.5 * 1.5));
  long count = 0;
  for (int c = 0; c < 3; c++)
    for (int y = 5; y < h - 5; y++)
      for (int x = 5; x < w - 5; x++) {
        double ma = 0, mb = 0, saa = 0, sbb = 0, sab = 0;
        for (int dy = -5; dy <= 5; dy++)
          for (int dx = -5; dx <= 5; dx++) {
            double wt = g[dy + 5] * g[dx + 5] / (gs * gs);
            size_t i = ((size_t)(y + dy) * w + (x + dx)) * 3 + c;
            ma += wt * a[i], mb += wt * b[i];
            saa += wt * a[i] * a[i], sbb += wt * b[i] * b[i], sab += wt * a[i] * b[i];
          }
        double va = saa - ma * ma, vb = sbb - mb * mb, cov = sab - ma * mb;
        total += ((2 * ma * mb + 1e-4) * (2 * cov + 9e-4)) /
                 ((ma * ma + mb * mb + 1e-4) * (va + vb + 9e-4));
        count++;
      }
  return total / count;
}

static void test_metrics(void) {
  const int w = 40, h = 29;
  size_t n = (size_t)w * h * 3;
  float *a = photo_image(w, h, 5), *b = malloc(n * sizeof *b);
  for (size_t i = 0; i < n; i++) b[i] = a[i] + 0.01f;
  CHECK(fabs(dg_psnr(a, b, n) - 40.0) < 1e-3, "offset 0.01: PSNR %.4f (want 40)", dg_psnr(a, b, n));
  CHECK(dg_psnr(a, a, n) == DG_PSNR_IDENTICAL, "identical: PSNR %g", dg_psnr(a, a, n));
  CHECK(fabs(dg_ssim(a, a, w, h) - 1.0) < 1e-12, "identical: SSIM %.15f", dg_ssim(a, a, w, h));
  char msg[256];
  dg_apply(a, w, h, b, DG_NOISE, 0.5f, 3, msg, sizeof msg);
  double s = dg_ssim(a, b, w, h), d = ssim_direct(a, b, w, h);
  CHECK(fabs(s - d) < 1e-12 && s < 0.9, "noisy: SSIM %.15f, direct %.15f", s, d);
  CHECK(isnan(dg_ssim(a, b, 10, 40)), "SSIM below 11 px is NaN");
  free(a), free(b);
}

/* ------------------------------------------------------------- kernels */

static void test_kernels(void) {
  dg_kernel k;
  const double g[][3] = {{0.5, 0.5, 0}, {3, 3, 0}, {3, 0.75, 0.7}, {1.2, 0.4, 2.5}, {0.2, 0.2, 0}};
  for (size_t i = 0; i < sizeof g / sizeof *g; i++) {
    CHECK(dg_kernel_gaussian(&k, g[i][0], g[i][1], g[i][2]) == 0, "gaussian kernel");
    double cx, cy;
    kernel_centroid(&k, &cx, &cy);
    CHECK(fabs(kernel_sum(&k) - 1.0) < 1e-5 && kernel_nonnegative(&k) && fabs(cx) < 1e-5 &&
              fabs(cy) < 1e-5,
          "gaussian %g,%g,%g: sum %.7f, centre %g,%g", g[i][0], g[i][1], g[i][2], kernel_sum(&k),
          cx, cy);
    dg_kernel_free(&k);
  }
  /* the separable isotropic path: 1-D kernels summing to 1, and blurring
   * with them equals one pass with their outer product */
  dg_kernel row, col;
  CHECK(dg_kernel_gaussian_1d(&row, 1.7, 0) == 0 && dg_kernel_gaussian_1d(&col, 1.7, 1) == 0,
        "1-D gaussian kernels");
  CHECK(row.ry == 0 && col.rx == 0 && row.rx == 6 && col.ry == 6 &&
            fabs(kernel_sum(&row) - 1.0) < 1e-5 && fabs(kernel_sum(&col) - 1.0) < 1e-5,
        "1-D kernel shapes and sums");
  dg_kernel outer = {row.rx, col.ry, malloc(13 * 13 * sizeof(float))};
  for (int y = 0; y < 13; y++)
    for (int x = 0; x < 13; x++) outer.k[y * 13 + x] = col.k[y] * row.k[x];
  float *a = photo_image(29, 23, 3), *b = photo_image(29, 23, 3);
  dg_gauss_params iso = {1.7, 1.7, 0.0};
  dg_gauss_blur(a, 29, 23, &iso);
  dg_convolve(b, 29, 23, 3, &outer);
  double worst = 0.0;
  for (int i = 0; i < 29 * 23 * 3; i++) worst = fmax(worst, fabs(a[i] - b[i]));
  CHECK(worst < 1e-5, "separable = 2-D: %g", worst);
  free(a), free(b);
  dg_kernel_free(&outer);
  dg_kernel_free(&row);
  dg_kernel_free(&col);

  /* rotated by 90 degrees = axes swapped */
  dg_kernel k2;
  dg_kernel_gaussian(&k, 2.0, 0.7, 0.0);
  dg_kernel_gaussian(&k2, 2.0, 0.7, DG_PI / 2);
  float along = k.k[k.ry * (2 * k.rx + 1) + k.rx + 2];       /* (2, 0) */
  float along2 = k2.k[(k2.ry + 2) * (2 * k2.rx + 1) + k2.rx]; /* (0, 2) */
  CHECK(k.rx == k2.ry && k.ry == k2.rx && fabs(along - along2) < 1e-6, "rotation");
  dg_kernel_free(&k);
  dg_kernel_free(&k2);

  const double radii[] = {1.0, 2.5, 6.0};
  for (size_t i = 0; i < 3; i++) {
    CHECK(dg_kernel_disk(&k, radii[i]) == 0, "disk kernel");
    int kw = 2 * k.rx + 1;
    double centre = k.k[k.ry * kw + k.rx], corner = k.k[0];
    CHECK(fabs(kernel_sum(&k) - 1.0) < 1e-5 && kernel_nonnegative(&k) && corner < centre &&
              fabs(centre - 1.0 / (DG_PI * radii[i] * radii[i])) < 0.01 * centre,
          "disk %g: sum %.7f, centre %g", radii[i], kernel_sum(&k), centre);
    dg_kernel_free(&k);
  }
  for (int len = 0; len <= 12; len += 6) {
    CHECK(dg_kernel_line(&k, len, 0.3) == 0 && fabs(kernel_sum(&k) - 1.0) < 1e-5 &&
              kernel_nonnegative(&k),
          "line %d", len);
    dg_kernel_free(&k);
  }
  int prev_r = 0;
  for (int i = 0; i < 5; i++) {
    double length = 5.0 + 5.0 * i;
    CHECK(dg_kernel_motion(&k, length, 0.03, 42) == 0, "motion kernel");
    double cx, cy;
    kernel_centroid(&k, &cx, &cy);
    CHECK(fabs(kernel_sum(&k) - 1.0) < 1e-5 && kernel_nonnegative(&k) && fabs(cx) < 0.5 &&
              fabs(cy) < 0.5 && k.rx >= prev_r && k.rx <= length / 2 + 2,
          "motion %g: sum %.7f, centre %g,%g, radius %d", length, kernel_sum(&k), cx, cy, k.rx);
    prev_r = k.rx;
    dg_kernel_free(&k);
  }
  for (uint64_t s = 0; s < 20; s++) {
    dg_kernel_motion(&k, 25.0, 0.05, s);
    CHECK(fabs(kernel_sum(&k) - 1.0) < 1e-5, "motion seed %llu", (unsigned long long)s);
    dg_kernel_free(&k);
  }
  CHECK(dg_kernel_gaussian(&k, 0.0, 1.0, 0.0) != 0 && dg_kernel_disk(&k, -1.0) != 0 &&
            dg_kernel_gaussian(&k, 1e6, 1.0, 0.0) != 0,
        "bad kernel arguments refused");

  /* reflect-101 index stays in bounds for any offset */
  int ok = 1;
  for (int n = 1; n < 6; n++)
    for (int i = -40; i < 40; i++) {
      int r = dg_reflect_index(i, n);
      if (r < 0 || r >= n || (i >= 0 && i < n && r != i)) ok = 0;
    }
  CHECK(ok && dg_reflect_index(-1, 5) == 1 && dg_reflect_index(5, 5) == 3, "reflect index");

  /* a kernel far larger than the image: constant stays constant */
  float tiny[2 * 3 * 3];
  for (int i = 0; i < 18; i++) tiny[i] = 0.25f;
  dg_kernel_gaussian(&k, 3.0, 3.0, 0.0);
  CHECK(dg_convolve(tiny, 2, 3, 3, &k) == 0 && fabsf(tiny[0] - 0.25f) < 1e-6f &&
            fabsf(tiny[17] - 0.25f) < 1e-6f,
        "big kernel on 2x3");
  dg_kernel_free(&k);
}

/* ----------------------------------------------------------------- jpeg */

/* An independent encode + decode with libjpeg: RGB, quality q, 4:2:0,
 * islow, then back to floats. */
static int direct_jpeg(const float *img, int w, int h, int q, float *out) {
  struct jpeg_compress_struct ci;
  struct jpeg_error_mgr jerr;
  ci.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&ci);
  unsigned char *buf = NULL;
  unsigned long size = 0;
  jpeg_mem_dest(&ci, &buf, &size);
  ci.image_width = w;
  ci.image_height = h;
  ci.input_components = 3;
  ci.in_color_space = JCS_RGB;
  jpeg_set_defaults(&ci);
  jpeg_set_quality(&ci, q, TRUE);
  ci.comp_info[0].h_samp_factor = ci.comp_info[0].v_samp_factor = 2;
  ci.dct_method = JDCT_ISLOW;
  jpeg_start_compress(&ci, TRUE);
  unsigned char *row = malloc((size_t)w * 3);
  while (ci.next_scanline < ci.image_height) {
    for (int i = 0; i < w * 3; i++)
      row[i] = (unsigned char)lroundf(img[(size_t)ci.next_scanline * w * 3 + i] * 255.0f);
    jpeg_write_scanlines(&ci, &row, 1);
  }
  jpeg_finish_compress(&ci);
  jpeg_destroy_compress(&ci);

  struct jpeg_decompress_struct di;
  di.err = jpeg_std_error(&jerr);
  jpeg_create_decompress(&di);
  jpeg_mem_src(&di, buf, size);
  jpeg_read_header(&di, TRUE);
  di.out_color_space = JCS_RGB;
  jpeg_start_decompress(&di);
  int ok = (int)di.output_width == w && (int)di.output_height == h;
  while (ok && di.output_scanline < di.output_height) {
    float *dst = out + (size_t)di.output_scanline * w * 3;
    jpeg_read_scanlines(&di, &row, 1);
    for (int i = 0; i < w * 3; i++) dst[i] = row[i] / 255.0f;
  }
  jpeg_finish_decompress(&di);
  jpeg_destroy_decompress(&di);
  free(row);
  free(buf);
  return ok ? 0 : -1;
}

static void test_jpeg(void) {
  CHECK(dg_jpeg_quality(0.0f) == 60 && dg_jpeg_quality(1.0f) == 10 && dg_jpeg_quality(0.5f) == 35,
        "quality mapping %d %d %d", dg_jpeg_quality(0.0f), dg_jpeg_quality(1.0f),
        dg_jpeg_quality(0.5f));
  const int sizes[][2] = {{64, 48}, {37, 21}, {1, 1}};
  char msg[256];
  for (int i = 0; i < 3; i++) {
    int w = sizes[i][0], h = sizes[i][1];
    size_t n = (size_t)w * h * 3;
    float *img = photo_image(w, h, 4), *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    for (int l = 0; l <= 2; l++) {
      float level = 0.5f * l;
      int rc = dg_apply(img, w, h, a, DG_JPEG, level, 1, msg, sizeof msg);
      CHECK(rc == 0 && direct_jpeg(img, w, h, dg_jpeg_quality(level), b) == 0 &&
                memcmp(a, b, n * sizeof *a) == 0,
            "%dx%d level %.1f equals a direct libjpeg round trip", w, h, level);
      if (w > 1) CHECK(memcmp(a, img, n * sizeof *a) != 0, "jpeg changes the image");
    }
    free(img), free(a), free(b);
  }
  /* the encoder's bytes are a JPEG a decoder reads back to the same pixels */
  float *img = photo_image(40, 30, 5), *a = malloc(40 * 30 * 3 * sizeof *a);
  float *b = malloc(40 * 30 * 3 * sizeof *b);
  unsigned char *data;
  size_t size;
  CHECK(dg_jpeg_encode(img, 40, 30, 35, &data, &size, msg, sizeof msg) == 0 && size > 100 &&
            data[0] == 0xFF && data[1] == 0xD8,
        "encoded JPEG");
  dg_jpeg_decode(data, size, a, 40, 30, msg, sizeof msg);
  dg_apply(img, 40, 30, b, DG_JPEG, 0.5f, 0, msg, sizeof msg);
  CHECK(memcmp(a, b, 40 * 30 * 3 * sizeof *a) == 0, "class output = decoded bytes");
  /* truncated data: libjpeg pads it with grey and warns; either way no crash */
  msg[0] = '\0';
  int rc = dg_jpeg_decode(data, size / 2, a, 40, 30, msg, sizeof msg);
  CHECK(rc == 0 || strstr(msg, "jpeg"), "truncated data: %d %s", rc, msg);
  CHECK(dg_jpeg_decode(data, 10, a, 40, 30, msg, sizeof msg) != 0 && strstr(msg, "jpeg"),
        "garbage is an error: %s", msg);
  CHECK(dg_jpeg_decode(data, size, a, 41, 30, msg, sizeof msg) != 0, "size mismatch refused");
  free(data);
  free(img), free(a), free(b);
}

/* -------------------------------------------------------------- resize */

static void test_resize(void) {
  float in[8 * 6 * 3], out[5 * 3 * 3], big[20 * 15 * 3];
  for (int i = 0; i < 8 * 6 * 3; i++) in[i] = 0.3f;
  CHECK(dg_resize(in, 8, 6, 3, out, 5, 3) == 0 && fabsf(out[0] - 0.3f) < 1e-6f &&
            fabsf(out[44] - 0.3f) < 1e-6f,
        "constant stays constant (down)");
  CHECK(dg_resize(in, 8, 6, 3, big, 20, 15) == 0 && fabsf(big[0] - 0.3f) < 1e-6f &&
            fabsf(big[20 * 15 * 3 - 1] - 0.3f) < 1e-6f,
        "constant stays constant (up)");
  /* a 1-pixel checkerboard halved: the antialiasing averages it away */
  float cb[16 * 16], half[8 * 8];
  for (int y = 0; y < 16; y++)
    for (int x = 0; x < 16; x++) cb[y * 16 + x] = (float)((x + y) % 2);
  dg_resize(cb, 16, 16, 1, half, 8, 8);
  CHECK(fabsf(half[27] - 0.5f) < 0.05f, "antialiased: %g", (double)half[27]);
  /* same size is the identity */
  float id[6 * 4];
  for (int i = 0; i < 24; i++) id[i] = i / 24.0f;
  float id2[6 * 4];
  dg_resize(id, 6, 4, 1, id2, 6, 4);
  int same = 1;
  for (int i = 0; i < 24; i++)
    if (fabsf(id[i] - id2[i]) > 1e-6f) same = 0;
  CHECK(same, "same size is the identity");
  CHECK(dg_resize(in, 0, 6, 3, out, 5, 3) != 0 && dg_resize(in, 8, 6, 5, out, 5, 3) != 0,
        "bad resize arguments refused");
}

/* ---------------------------------------------------------- edge cases */

static void test_edges(void) {
  const int sizes[][2] = {{1, 1}, {1, 9}, {9, 1}, {2, 2}, {3, 5}, {17, 13}, {33, 1}, {1, 40}};
  char msg[256];
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
    int w = sizes[s][0], h = sizes[s][1];
    size_t n = (size_t)w * h * 3;
    float *img = photo_image(w, h, 6), *out = malloc(n * sizeof *out);
    for (int k = 0; k < DG_NUM_CLASSES; k++)
      for (int l = 0; l <= 2; l++) {
        int rc = dg_apply(img, w, h, out, k, 0.5f * l, 11, msg, sizeof msg);
        CHECK(rc == 0 && all_finite_unit(out, n), "%s on %dx%d at level %.1f: %s",
              expected_names[k], w, h, 0.5 * l, rc ? msg : "out of range");
      }
    free(img), free(out);
  }
  /* out-of-range and NaN input still gives [0,1] output */
  float wild[4 * 4 * 3], out[4 * 4 * 3];
  for (int i = 0; i < 48; i++) wild[i] = (i % 3 == 0) ? -3.0f : (i % 3 == 1 ? 7.0f : NAN);
  for (int k = 0; k < DG_NUM_CLASSES; k++)
    CHECK(dg_apply(wild, 4, 4, out, k, 1.0f, 1, msg, sizeof msg) == 0 && all_finite_unit(out, 48),
          "%s on wild input", expected_names[k]);
  /* argument errors */
  msg[0] = '\0';
  CHECK(dg_apply(wild, 0, 4, out, 1, 0.5f, 1, msg, sizeof msg) != 0 && msg[0], "w = 0: %s", msg);
  CHECK(dg_apply(wild, 4, -1, out, 1, 0.5f, 1, msg, sizeof msg) != 0, "h < 0");
  CHECK(dg_apply(wild, 70000, 1, out, 1, 0.5f, 1, msg, sizeof msg) != 0, "too wide");
  CHECK(dg_apply(wild, 4, 4, out, -1, 0.5f, 1, msg, sizeof msg) != 0 &&
            dg_apply(wild, 4, 4, out, 12, 0.5f, 1, msg, sizeof msg) != 0,
        "bad class");
  CHECK(dg_apply(wild, 4, 4, out, 1, NAN, 1, msg, sizeof msg) != 0 &&
            dg_apply(wild, 4, 4, out, 1, 1.01f, 1, msg, sizeof msg) != 0 &&
            dg_apply(wild, 4, 4, out, 1, -0.01f, 1, msg, sizeof msg) != 0,
        "bad level");
  CHECK(dg_apply(NULL, 4, 4, out, 1, 0.5f, 1, NULL, 0) != 0 &&
            dg_apply(wild, 4, 4, NULL, 1, 0.5f, 1, msg, sizeof msg) != 0,
        "NULL images");
  CHECK(dg_apply_channels(wild, 4, 4, 5, out, 1, 0.5f, 1, msg, sizeof msg) != 0 &&
            dg_apply_channels(wild, 4, 4, 0, out, 1, 0.5f, 1, msg, sizeof msg) != 0,
        "bad channel count");
}

/* ------------------------------------------------------------- channels */

static void test_channels(void) {
  const int w = 23, h = 19;
  size_t npix = (size_t)w * h;
  float *rgb = photo_image(w, h, 8);
  char msg[256];
  for (int channels = 1; channels <= 4; channels++) {
    float *in = malloc(npix * channels * sizeof *in), *out = malloc(npix * channels * sizeof *out);
    float *ref = malloc(npix * 3 * sizeof *ref), *ref_out = malloc(npix * 3 * sizeof *ref_out);
    int colour = channels >= 3, alpha = channels % 2 == 0;
    for (size_t i = 0; i < npix; i++) {
      for (int c = 0; c < (colour ? 3 : 1); c++) in[i * channels + c] = rgb[i * 3 + c];
      if (alpha) in[i * channels + channels - 1] = (float)((i * 37) % 101) / 100.0f;
      for (int c = 0; c < 3; c++) ref[i * 3 + c] = rgb[i * 3 + (colour ? c : 0)];
    }
    for (int k = 0; k < DG_NUM_CLASSES; k++) {
      int rc = dg_apply_channels(in, w, h, channels, out, k, 0.7f, 3, msg, sizeof msg);
      dg_apply(ref, w, h, ref_out, k, 0.7f, 3, msg, sizeof msg);
      int colour_ok = 1, alpha_ok = 1;
      for (size_t i = 0; i < npix; i++) {
        for (int c = 0; c < (colour ? 3 : 1); c++)
          if (out[i * channels + c] != ref_out[i * 3 + c]) colour_ok = 0;
        if (alpha && out[i * channels + channels - 1] != in[i * channels + channels - 1])
          alpha_ok = 0;
      }
      CHECK(rc == 0 && colour_ok && alpha_ok, "%d channels, %s: colour %d, alpha %d", channels,
            expected_names[k], colour_ok, alpha_ok);
    }
    /* in place keeps alpha too */
    float *copy = malloc(npix * channels * sizeof *copy);
    memcpy(copy, in, npix * channels * sizeof *copy);
    dg_apply_channels(copy, w, h, channels, copy, DG_RAIN, 0.9f, 3, msg, sizeof msg);
    int alpha_ok = 1;
    for (size_t i = 0; alpha && i < npix; i++)
      if (copy[i * channels + channels - 1] != in[i * channels + channels - 1]) alpha_ok = 0;
    CHECK(alpha_ok, "%d channels in place: alpha untouched", channels);
    free(copy);
    free(in), free(out), free(ref), free(ref_out);
  }
  free(rgb);

  /* 16-bit samples survive clean exactly, in every layout */
  for (int channels = 1; channels <= 4; channels++) {
    size_t n = npix * channels;
    float *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
    for (size_t i = 0; i < n; i++) in[i] = (float)((i * 7919u) % 65536u) / 65535.0f;
    int rc = dg_apply_channels(in, w, h, channels, out, DG_CLEAN, 0.5f, 1, msg, sizeof msg);
    int exact = 1;
    for (size_t i = 0; i < n; i++)
      if (out[i] != in[i] || lroundf(out[i] * 65535.0f) != (long)((i * 7919u) % 65536u)) exact = 0;
    CHECK(rc == 0 && exact, "16-bit clean, %d channels", channels);
    free(in), free(out);
  }
}

/* --------------------------------------------------------------- random */

static void test_random(void) {
  const int w = 32, h = 24;
  size_t n = (size_t)w * h * 3;
  float *img = photo_image(w, h, 9), *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
  char msg[256];
  int seen[DG_NUM_CLASSES] = {0}, ok = 1;
  double level_sum = 0.0;
  for (uint64_t s = 0; s < 600; s++) {
    int k;
    float level;
    /* the draw only, on a 1x1 image: cheap */
    float px[3] = {0.5f, 0.5f, 0.5f}, po[3];
    if (dg_apply_random(px, 1, 1, po, s, &k, &level, msg, sizeof msg) != 0 || k < 0 ||
        k >= DG_NUM_CLASSES || !(level >= 0.0f && level <= 1.0f))
      ok = 0;
    else
      seen[k]++, level_sum += level;
  }
  int all = 1;
  for (int k = 0; k < DG_NUM_CLASSES; k++) all &= seen[k] > 20;
  CHECK(ok && all && fabs(level_sum / 600 - 0.5) < 0.05, "random draws cover every class");
  for (uint64_t s = 0; s < 12; s++) {
    int k1, k2;
    float l1, l2;
    dg_apply_random(img, w, h, a, s, &k1, &l1, msg, sizeof msg);
    dg_apply_random(img, w, h, b, s, &k2, &l2, msg, sizeof msg);
    CHECK(k1 == k2 && l1 == l2 && memcmp(a, b, n * sizeof *a) == 0, "random is deterministic");
    dg_apply(img, w, h, b, k1, l1, s, msg, sizeof msg);
    CHECK(memcmp(a, b, n * sizeof *a) == 0, "random = dg_apply(drawn class, level, seed)");
  }
  CHECK(dg_apply_random(img, w, h, a, 5, NULL, NULL, msg, sizeof msg) == 0, "NULL outputs");
  int k1, k2;
  float l1, l2;
  dg_random_draw(77, &k1, &l1);
  dg_apply_random(img, w, h, a, 77, &k2, &l2, msg, sizeof msg);
  CHECK(k1 == k2 && l1 == l2, "dg_random_draw = dg_apply_random's draw");
  free(img), free(a), free(b);
}

/* -------------------------------------------------------------- threads */

typedef struct job {
  const float *img;
  float *out;
  int w, h, k;
  int rc;
} job;

static void *run_job(void *arg) {
  job *j = arg;
  j->rc = 0;
  for (int rep = 0; rep < 3; rep++)
    j->rc |= dg_apply(j->img, j->w, j->h, j->out, j->k, 0.8f, 21, NULL, 0);
  return NULL;
}

static void test_threads(void) {
  const int w = 40, h = 36;
  size_t n = (size_t)w * h * 3;
  float *img = photo_image(w, h, 10);
  job jobs[DG_NUM_CLASSES];
  pthread_t tid[DG_NUM_CLASSES];
  for (int k = 0; k < DG_NUM_CLASSES; k++) {
    jobs[k] = (job){img, malloc(n * sizeof(float)), w, h, k, -1};
    pthread_create(&tid[k], NULL, run_job, &jobs[k]);
  }
  float *ref = malloc(n * sizeof *ref);
  for (int k = 0; k < DG_NUM_CLASSES; k++) {
    pthread_join(tid[k], NULL);
    dg_apply(img, w, h, ref, k, 0.8f, 21, NULL, 0);
    CHECK(jobs[k].rc == 0 && memcmp(ref, jobs[k].out, n * sizeof *ref) == 0,
          "%s from a thread = serial", expected_names[k]);
    free(jobs[k].out);
  }
  free(ref);
  free(img);
}

/* ---------------------------------------------------------------- bench */

/* CPU time of this thread: the one-core cost, whatever else the machine
 * is doing. */
static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int bench(void) {
  const int w = 256, h = 256;
  size_t n = (size_t)w * h * 3;
  float *img = photo_image(w, h, 11), *out = malloc(n * sizeof *out);
  printf("degraded 256x256 crops per second of one core's CPU time (levels spread over 0..1):\n");
  for (int k = 0; k < DG_NUM_CLASSES; k++) {
    int count = 0;
    double t0 = now(), t;
    do {
      float level = (float)((count * 0.618034) - floor(count * 0.618034));
      dg_apply(img, w, h, out, k, level, (uint64_t)count, NULL, 0);
      count++;
      t = now() - t0;
    } while (t < 1.0);
    printf("  %-18s %8.1f\n", expected_names[k], count / t);
  }
  free(img), free(out);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--bench") == 0) return bench();
  test_registry();
  test_determinism();
  test_clean();
  test_monotonic();
  test_noise_stats();
  test_gaussian_noise();
  test_metrics();
  test_kernels();
  test_jpeg();
  test_resize();
  test_edges();
  test_channels();
  test_random();
  test_threads();
  printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}
