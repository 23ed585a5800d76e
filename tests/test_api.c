/* test_api.c - the public API's contract: argument checks, error codes
 * and messages, strength, alpha, grey, NaN input, strides, determinism and
 * device selection. */
#include "test_util.h"

static maskdcpt_model *model;

static maskdcpt_context *new_ctx(void) {
  maskdcpt_context *ctx = NULL;
  maskdcpt_context_new(model, &ctx, NULL);
  return ctx;
}

static void test_load_errors(void) {
  maskdcpt_model *m = (maskdcpt_model *)1;
  maskdcpt_error err;
  CHECK(maskdcpt_model_load("/nonexistent/x.safetensors", &m, &err) == MASKDCPT_ERROR_IO &&
            m == NULL && err.code == MASKDCPT_ERROR_IO && strstr(err.message, "x.safetensors"),
        "missing file: %s", err.message);
  const char junk[] = "this is not a weights file at all";
  CHECK(maskdcpt_model_load_memory(junk, sizeof junk, "junk", &m, &err) == MASKDCPT_ERROR_FORMAT,
        "junk: %s", err.message);
  CHECK(maskdcpt_model_load(NULL, &m, &err) == MASKDCPT_ERROR_INVALID_ARGUMENT, "NULL path");
  CHECK(strcmp(maskdcpt_status_name(MASKDCPT_ERROR_CANCELLED), "") != 0, "status name");
}

static void test_model_queries(void) {
  CHECK(maskdcpt_model_num_classes(model) == 4, "classes");
  CHECK(strcmp(maskdcpt_model_class_name(model, 1), "noise") == 0, "name");
  CHECK(maskdcpt_model_class_name(model, 4) == NULL && maskdcpt_model_class_name(model, -1) == NULL,
        "name range");
  CHECK(maskdcpt_model_class_index(model, "jpeg") == 3 &&
            maskdcpt_model_class_index(model, "rain") == -1,
        "index");
  const char *prov = maskdcpt_model_metadata(model, "provenance");
  CHECK(prov && strstr(prov, "random-init"), "provenance says random-init: %s", prov ? prov : "");
  maskdcpt_arch_info a;
  maskdcpt_model_arch(model, &a);
  CHECK(a.width == 8 && a.levels == 2 && a.num_params > 0 && a.macs_per_pixel > 0, "arch");
}

static void test_bad_arguments(void) {
  maskdcpt_context *ctx = new_ctx();
  float buf[64 * 3], out[64 * 3];
  memset(buf, 0, sizeof buf);
  maskdcpt_image in = {buf, 8, 8, 3, 24}, o = {out, 8, 8, 3, 24};
  maskdcpt_error err;
  struct {
    maskdcpt_image in;
    const char *what;
  } bad[] = {
      {{NULL, 8, 8, 3, 24}, "NULL data"},   {{buf, 0, 8, 3, 24}, "zero width"},
      {{buf, 8, -1, 3, 24}, "negative height"}, {{buf, 8, 8, 0, 24}, "0 channels"},
      {{buf, 8, 8, 5, 40}, "5 channels"},   {{buf, 8, 8, 3, 23}, "short stride"},
      {{buf, 1 << 21, 1, 3, 3 << 21}, "huge width"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    CHECK(maskdcpt_restore(ctx, &bad[i].in, &o, 0, 1.0f, NULL, &err) ==
              MASKDCPT_ERROR_INVALID_ARGUMENT,
          "%s", bad[i].what);
  CHECK(maskdcpt_restore(ctx, &in, &o, 4, 1.0f, NULL, &err) == MASKDCPT_ERROR_INVALID_ARGUMENT &&
            strstr(err.message, "class"),
        "class out of range: %s", err.message);
  CHECK(maskdcpt_restore(ctx, &in, &o, -2, 1.0f, NULL, &err) == MASKDCPT_ERROR_INVALID_ARGUMENT,
        "class -2");
  CHECK(maskdcpt_restore(ctx, &in, &o, 0, NAN, NULL, &err) == MASKDCPT_ERROR_INVALID_ARGUMENT,
        "NaN strength");
  CHECK(maskdcpt_restore(ctx, &in, &o, 0, 1.5f, NULL, &err) == MASKDCPT_ERROR_INVALID_ARGUMENT,
        "strength > 1");
  CHECK(maskdcpt_restore(ctx, &in, &in, 0, 1.0f, NULL, &err) == MASKDCPT_ERROR_INVALID_ARGUMENT &&
            strstr(err.message, "overlap"),
        "in place");
  maskdcpt_image small = {out, 4, 8, 3, 12};
  CHECK(maskdcpt_restore(ctx, &in, &small, 0, 1.0f, NULL, &err) == MASKDCPT_ERROR_INVALID_ARGUMENT,
        "size mismatch");
  CHECK(maskdcpt_restore(NULL, &in, &o, 0, 1.0f, NULL, &err) == MASKDCPT_ERROR_INVALID_ARGUMENT,
        "NULL ctx");
  float probs[4];
  CHECK(maskdcpt_classify(ctx, &in, NULL, &err) == MASKDCPT_ERROR_INVALID_ARGUMENT, "NULL probs");
  CHECK(maskdcpt_classify(ctx, &bad[1].in, probs, &err) == MASKDCPT_ERROR_INVALID_ARGUMENT,
        "classify zero width");
  maskdcpt_context_free(ctx);
}

static void test_device(void) {
  maskdcpt_context *ctx = new_ctx();
  maskdcpt_error err;
  CHECK(maskdcpt_context_set_device(ctx, MASKDCPT_DEVICE_AUTO, &err) == MASKDCPT_OK, "auto");
  CHECK(strncmp(maskdcpt_context_device_name(ctx), "cpu", 3) == 0, "auto is the CPU here");
  CHECK(maskdcpt_context_set_device(ctx, MASKDCPT_DEVICE_CPU, &err) == MASKDCPT_OK, "cpu");
  maskdcpt_status st = maskdcpt_context_set_device(ctx, MASKDCPT_DEVICE_CUDA, &err);
  CHECK(st == MASKDCPT_OK || (st == MASKDCPT_ERROR_DEVICE && strlen(err.message) > 10),
        "cuda: a clear error when unavailable: %s", err.message);
  CHECK(maskdcpt_context_set_device(ctx, (maskdcpt_device)42, &err) ==
            MASKDCPT_ERROR_INVALID_ARGUMENT,
        "unknown device");
  maskdcpt_context_free(ctx);
}

/* Restores an image with `ch` channels and a padded stride; checks alpha,
 * strength 0, grey consistency and that padding is untouched. */
static void test_channels(int ch) {
  int w = 37, h = 29;
  size_t stride = (size_t)w * ch + 5;
  float *in = calloc(stride * h, sizeof(float)), *out = calloc(stride * h, sizeof(float));
  float *rgb = tu_test_image(w, h, 3, 3);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      float *p = in + y * stride + (size_t)x * ch;
      const float *s = rgb + ((size_t)y * w + x) * 3;
      if (ch >= 3) p[0] = s[0], p[1] = s[1], p[2] = s[2];
      else p[0] = s[0];
      if (ch == 2 || ch == 4) p[ch - 1] = (float)((x * 7 + y) % 11) / 10.0f;
    }
  for (int y = 0; y < h; y++)
    for (size_t k = (size_t)w * ch; k < stride; k++) out[y * stride + k] = -7.0f;
  maskdcpt_context *ctx = new_ctx();
  maskdcpt_image src = {in, w, h, ch, stride}, dst = {out, w, h, ch, stride};
  maskdcpt_error err;
  CHECK(maskdcpt_restore(ctx, &src, &dst, 1, 1.0f, NULL, &err) == MASKDCPT_OK, "%d ch: %s", ch,
        err.message);
  int alpha_ok = 1, pad_ok = 1, changed = 0, finite = 1;
  for (int y = 0; y < h; y++) {
    for (int x = 0; x < w; x++) {
      const float *p = in + y * stride + (size_t)x * ch, *q = out + y * stride + (size_t)x * ch;
      if ((ch == 2 || ch == 4) && p[ch - 1] != q[ch - 1]) alpha_ok = 0;
      for (int c = 0; c < (ch == 2 || ch == 4 ? ch - 1 : ch); c++) {
        if (fabsf(p[c] - q[c]) > 1e-3f) changed = 1;
        if (!isfinite(q[c])) finite = 0;
      }
    }
    for (size_t k = (size_t)w * ch; k < stride; k++)
      if (out[y * stride + k] != -7.0f) pad_ok = 0;
  }
  CHECK(alpha_ok, "%d ch: alpha untouched", ch);
  CHECK(pad_ok, "%d ch: stride padding untouched", ch);
  CHECK(changed && finite, "%d ch: output changed and finite", ch);
  CHECK(maskdcpt_restore(ctx, &src, &dst, MASKDCPT_CLASS_AUTO, 0.0f, NULL, &err) == MASKDCPT_OK,
        "strength 0");
  int same = 1;
  for (int y = 0; y < h; y++)
    for (size_t k = 0; k < (size_t)w * ch; k++)
      if (in[y * stride + k] != out[y * stride + k]) same = 0;
  CHECK(same, "%d ch: strength 0 leaves the image bit-identical", ch);
  maskdcpt_context_free(ctx);
  free(in);
  free(out);
  free(rgb);
}

/* Strength blends linearly: s = 0.5 lies halfway. */
static void test_strength_linear(void) {
  int w = 40, h = 24;
  float *in = tu_test_image(w, h, 3, 8);
  float *full = malloc(sizeof(float) * w * h * 3), *half = malloc(sizeof(float) * w * h * 3);
  maskdcpt_context *ctx = new_ctx();
  maskdcpt_image s = {in, w, h, 3, (size_t)w * 3}, a = {full, w, h, 3, (size_t)w * 3},
                 b = {half, w, h, 3, (size_t)w * 3};
  maskdcpt_restore(ctx, &s, &a, 2, 1.0f, NULL, NULL);
  maskdcpt_restore(ctx, &s, &b, 2, 0.5f, NULL, NULL);
  double worst = 0;
  for (int i = 0; i < w * h * 3; i++) {
    double e = fabs(half[i] - 0.5 * (in[i] + full[i]));
    if (e > worst) worst = e;
  }
  CHECK(worst < 1e-5, "strength 0.5 is halfway (err %g)", worst);
  maskdcpt_context_free(ctx);
  free(in);
  free(full);
  free(half);
}

/* NaN and infinite pixels neither crash nor spread. */
static void test_nan_input(void) {
  int w = 50, h = 40;
  float *in = tu_test_image(w, h, 3, 4), *out = malloc(sizeof(float) * w * h * 3);
  in[(10 * w + 10) * 3] = NAN;
  in[(20 * w + 30) * 3 + 1] = INFINITY;
  in[(5 * w + 45) * 3 + 2] = -INFINITY;
  maskdcpt_context *ctx = new_ctx();
  maskdcpt_image s = {in, w, h, 3, (size_t)w * 3}, d = {out, w, h, 3, (size_t)w * 3};
  float probs[4];
  CHECK(maskdcpt_restore(ctx, &s, &d, MASKDCPT_CLASS_AUTO, 1.0f, probs, NULL) == MASKDCPT_OK,
        "restore");
  int finite = 1;
  for (int i = 0; i < w * h * 3; i++)
    if (!isfinite(out[i])) finite = 0;
  CHECK(finite, "output finite everywhere");
  double sum = 0;
  for (int q = 0; q < 4; q++) sum += probs[q];
  CHECK(fabs(sum - 1.0) < 1e-5, "probs sum to 1 (%g)", sum);
  maskdcpt_context_free(ctx);
  free(in);
  free(out);
}

/* Same input, same output: across runs and across thread counts. */
static void test_determinism(void) {
  int w = 300, h = 200;
  float *in = tu_test_image(w, h, 3, 6);
  size_t n = (size_t)w * h * 3;
  float *o1 = malloc(n * 4), *o2 = malloc(n * 4), *o3 = malloc(n * 4);
  maskdcpt_context *ctx = new_ctx();
  maskdcpt_context_set_tile_size(ctx, 160);
  maskdcpt_image s = {in, w, h, 3, (size_t)w * 3};
  maskdcpt_image d1 = {o1, w, h, 3, (size_t)w * 3}, d2 = {o2, w, h, 3, (size_t)w * 3},
                 d3 = {o3, w, h, 3, (size_t)w * 3};
  maskdcpt_restore(ctx, &s, &d1, MASKDCPT_CLASS_AUTO, 1.0f, NULL, NULL);
  maskdcpt_restore(ctx, &s, &d2, MASKDCPT_CLASS_AUTO, 1.0f, NULL, NULL);
  CHECK(memcmp(o1, o2, n * 4) == 0, "rerun is bit-identical");
  maskdcpt_context_set_threads(ctx, 1);
  maskdcpt_restore(ctx, &s, &d3, MASKDCPT_CLASS_AUTO, 1.0f, NULL, NULL);
  double worst = 0;
  for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(o1[i] - o3[i]));
  printf("1 thread vs default threads: max abs difference %g\n", worst);
  CHECK(worst < 1e-5, "thread count changes nothing beyond rounding (%g)", worst);
  maskdcpt_context_free(ctx);
  free(in);
  free(o1);
  free(o2);
  free(o3);
}

/* A forced class and auto give different results; classify agrees with
 * the probabilities restore reports. */
static void test_classes(void) {
  int w = 64, h = 48;
  float *in = tu_test_image(w, h, 3, 2);
  size_t n = (size_t)w * h * 3;
  float *a = malloc(n * 4), *b = malloc(n * 4);
  maskdcpt_context *ctx = new_ctx();
  maskdcpt_image s = {in, w, h, 3, (size_t)w * 3};
  maskdcpt_image da = {a, w, h, 3, (size_t)w * 3}, db = {b, w, h, 3, (size_t)w * 3};
  float p1[4], p2[4];
  maskdcpt_restore(ctx, &s, &da, 0, 1.0f, NULL, NULL);
  maskdcpt_restore(ctx, &s, &db, 3, 1.0f, NULL, NULL);
  CHECK(memcmp(a, b, n * 4) != 0, "conditioning changes the result");
  maskdcpt_restore(ctx, &s, &da, MASKDCPT_CLASS_AUTO, 1.0f, p1, NULL);
  CHECK(maskdcpt_classify(ctx, &s, p2, NULL) == MASKDCPT_OK, "classify");
  CHECK(memcmp(p1, p2, sizeof p1) == 0, "restore reports the classification it used");
  maskdcpt_context_free(ctx);
  free(in);
  free(a);
  free(b);
}

/* maskdcpt_restore_with_probabilities: a one-hot vector is the forced
 * class, classify's output is auto mode, both bit for bit; other vectors
 * are normalised; bad vectors are refused with a message. */
static void test_with_probabilities(void) {
  int w = 70, h = 52;
  float *in = tu_test_image(w, h, 3, 5);
  size_t n = (size_t)w * h * 3;
  float *a = malloc(n * 4), *b = malloc(n * 4);
  maskdcpt_context *ctx = new_ctx();
  maskdcpt_image s = {in, w, h, 3, (size_t)w * 3};
  maskdcpt_image da = {a, w, h, 3, (size_t)w * 3}, db = {b, w, h, 3, (size_t)w * 3};
  maskdcpt_error err;
  for (int c = 0; c < 4; c++) {
    float onehot[4] = {0};
    onehot[c] = 1.0f;
    maskdcpt_restore(ctx, &s, &da, c, 0.8f, NULL, NULL);
    CHECK(maskdcpt_restore_with_probabilities(ctx, &s, &db, onehot, 4, 0.8f, &err) == MASKDCPT_OK,
          "one-hot %d: %s", c, err.message);
    CHECK(memcmp(a, b, n * 4) == 0, "one-hot %d is bit-identical to forcing class %d", c, c);
  }
  float p[4];
  CHECK(maskdcpt_classify(ctx, &s, p, NULL) == MASKDCPT_OK, "classify");
  /* Not summing to 1: normalised, so twice a vector restores as it. */
  float half[4] = {0.5f, 0.0f, 0.5f, 0.0f}, twice[4] = {1.0f, 0.0f, 1.0f, 0.0f};
  maskdcpt_restore_with_probabilities(ctx, &s, &da, half, 4, 1.0f, NULL);
  CHECK(maskdcpt_restore_with_probabilities(ctx, &s, &db, twice, 4, 1.0f, &err) == MASKDCPT_OK,
        "%s", err.message);
  CHECK(memcmp(a, b, n * 4) == 0, "probabilities are normalised to sum 1");
  maskdcpt_restore(ctx, &s, &db, 0, 1.0f, NULL, NULL);
  CHECK(memcmp(a, b, n * 4) != 0, "a mixture differs from a single class");

  float nan4[4] = {0.5f, NAN, 0.5f, 0.0f}, inf4[4] = {INFINITY, 0, 0, 0};
  float neg[4] = {0.6f, -0.1f, 0.5f, 0.0f}, zero[4] = {0};
  struct {
    const float *p;
    int count;
    const char *what, *says;
  } bad[] = {
      {p, 3, "3 of 4", "4 classes"},       {p, 5, "5 of 4", "4 classes"},
      {nan4, 4, "NaN", "finite"},          {inf4, 4, "infinity", "finite"},
      {neg, 4, "negative", ">= 0"},        {zero, 4, "all zero", "positive"},
      {NULL, 4, "NULL", "NULL"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    memset(&err, 0, sizeof err);
    maskdcpt_status st =
        maskdcpt_restore_with_probabilities(ctx, &s, &db, bad[i].p, bad[i].count, 1.0f, &err);
    CHECK(st == MASKDCPT_ERROR_INVALID_ARGUMENT && err.code == st &&
              strstr(err.message, bad[i].says),
          "%s refused with a clear message: %s", bad[i].what, err.message);
  }
  maskdcpt_restore_with_probabilities(ctx, &s, &db, neg, 4, 1.0f, &err);
  CHECK(strstr(err.message, "noise") != NULL, "the message names the class: %s", err.message);
  CHECK(maskdcpt_restore_with_probabilities(NULL, &s, &db, p, 4, 1.0f, &err) ==
            MASKDCPT_ERROR_INVALID_ARGUMENT,
        "NULL context");
  CHECK(maskdcpt_restore_with_probabilities(ctx, &s, &db, p, 4, 1.5f, &err) ==
            MASKDCPT_ERROR_INVALID_ARGUMENT,
        "strength > 1");
  CHECK(maskdcpt_restore_with_probabilities(ctx, &s, &s, p, 4, 1.0f, &err) ==
            MASKDCPT_ERROR_INVALID_ARGUMENT && strstr(err.message, "overlap"),
        "in place");
  maskdcpt_context_free(ctx);
  free(in);
  free(a);
  free(b);
}

/* A file's 'auto_focus' classes are restored alone once they hold more
 * than half of the probability; other classes, or no majority, keep the
 * mix; auto mode goes the same way and still reports the classifier's own
 * probabilities. */
static void test_auto_focus(const mdc_arch *arch) {
  /* the same random network as `model`, with the key */
  maskdcpt_model *fm = tu_random_model_meta(arch, 21, 0.3f, "api-focus.safetensors", "auto_focus",
                                            "[\"noise\",\"jpeg\"]");
  CHECK(fm != NULL, "model with auto_focus loads");
  if (!fm) return;
  int w = 61, h = 45;
  float *in = tu_test_image(w, h, 3, 9);
  size_t n = (size_t)w * h * 3;
  float *a = malloc(n * 4), *b = malloc(n * 4);
  maskdcpt_context *plain = new_ctx(), *focused = NULL;
  maskdcpt_error err;
  CHECK(maskdcpt_context_new(fm, &focused, &err) == MASKDCPT_OK, "context: %s", err.message);
  maskdcpt_image s = {in, w, h, 3, (size_t)w * 3};
  maskdcpt_image da = {a, w, h, 3, (size_t)w * 3}, db = {b, w, h, 3, (size_t)w * 3};
  const struct {
    float p[4];
    int as_class; /* -1: as the plain network's mix */
    const char *what;
  } cases[] = {
      {{0.1f, 0.6f, 0.3f, 0.0f}, 1, "noise 0.6 (listed): noise alone"},
      {{0.0f, 0.2f, 0.2f, 0.6f}, 3, "jpeg 0.6 (listed): jpeg alone"},
      {{0.1f, 0.3f, 0.6f, 0.0f}, -1, "blur 0.6 (not listed): the mix"},
      {{0.0f, 0.5f, 0.5f, 0.0f}, -1, "noise 0.5 (no majority): the mix"},
      {{0.3f, 0.45f, 0.25f, 0.0f}, -1, "noise 0.45 on top: the mix"},
      {{0.2f, 1.2f, 0.4f, 0.2f}, 1, "noise 0.6 after normalising: noise alone"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    if (cases[i].as_class >= 0)
      maskdcpt_restore(plain, &s, &da, cases[i].as_class, 1.0f, NULL, NULL);
    else
      maskdcpt_restore_with_probabilities(plain, &s, &da, cases[i].p, 4, 1.0f, NULL);
    CHECK(maskdcpt_restore_with_probabilities(focused, &s, &db, cases[i].p, 4, 1.0f, &err) ==
              MASKDCPT_OK,
          "%s: %s", cases[i].what, err.message);
    CHECK(memcmp(a, b, n * 4) == 0, "%s (bit for bit)", cases[i].what);
  }
  /* and the two differ where it matters */
  float mix[4] = {0.1f, 0.6f, 0.3f, 0.0f};
  maskdcpt_restore_with_probabilities(plain, &s, &da, mix, 4, 1.0f, NULL);
  maskdcpt_restore_with_probabilities(focused, &s, &db, mix, 4, 1.0f, NULL);
  CHECK(memcmp(a, b, n * 4) != 0, "focusing changes the restoration");

  /* Auto mode: as classify's output given back, which it reports as is. */
  float p[4], q[4];
  CHECK(maskdcpt_classify(focused, &s, p, &err) == MASKDCPT_OK, "classify: %s", err.message);
  maskdcpt_restore_with_probabilities(focused, &s, &da, p, 4, 1.0f, NULL);
  CHECK(maskdcpt_restore(focused, &s, &db, MASKDCPT_CLASS_AUTO, 1.0f, q, &err) == MASKDCPT_OK,
        "auto: %s", err.message);
  CHECK(memcmp(a, b, n * 4) == 0 && memcmp(p, q, sizeof p) == 0,
        "auto mode focuses as restore_with_probabilities and reports the classifier's probabilities");
  maskdcpt_context_free(plain);
  maskdcpt_context_free(focused);
  maskdcpt_model_free(fm);
  free(in);
  free(a);
  free(b);
}

typedef struct progress_log {
  int calls, monotonic, cancel_at;
  double last;
} progress_log;

static int log_progress(void *user, double f) {
  progress_log *l = user;
  if (f < l->last) l->monotonic = 0;
  l->last = f;
  return ++l->calls != l->cancel_at;
}

/* Copies the colour of an image with `ci` channels into a tight RGB one. */
static void rgb_of(const float *src, int ci, size_t pixels, float *dst) {
  for (size_t i = 0; i < pixels; i++)
    for (int c = 0; c < 3; c++) dst[i * 3 + c] = src[i * ci + c];
}

/* A classifier that says noise, whatever the image. */
static void classify_noise(mdc_weights *w) {
  float *bias = (float *)mdc_weights_tensor(w, "cls.fc2.bias");
  if (bias) bias[1] = 20.0f;
}

/* A file's 'passes': when a listed class leads the conditioning, the
 * network runs that many times, each pass on the last one's output (as
 * restoring the result again would), and the strength blends once against
 * the input; other classes and mixes without a majority run once; alpha
 * stays the input's; progress counts every pass, also in auto mode, and a
 * cancel in a later pass stops it. */
static void test_passes(const mdc_arch *arch) {
  maskdcpt_model *pm = tu_random_model_meta(arch, 21, 0.3f, "api-passes.safetensors", "passes",
                                            "{\"noise\":2,\"jpeg\":3}");
  CHECK(pm != NULL, "model with passes loads");
  if (!pm) return;
  int w = 53, h = 38;
  size_t px = (size_t)w * h;
  float *in = tu_test_image(w, h, 4, 11); /* RGBA: alpha must come through */
  float *want = malloc(px * 3 * 4), *tmp = malloc(px * 3 * 4), *got = malloc(px * 4 * 4);
  float *got_rgb = malloc(px * 3 * 4), *src = malloc(px * 3 * 4);
  maskdcpt_context *plain = new_ctx(), *ctx = NULL;
  maskdcpt_error err;
  CHECK(maskdcpt_context_new(pm, &ctx, &err) == MASKDCPT_OK, "context: %s", err.message);
  maskdcpt_image s4 = {in, w, h, 4, (size_t)w * 4}, g4 = {got, w, h, 4, (size_t)w * 4};
  maskdcpt_image wi = {want, w, h, 3, (size_t)w * 3}, ti = {tmp, w, h, 3, (size_t)w * 3};
  maskdcpt_image si = {src, w, h, 3, (size_t)w * 3};

  const struct {
    int cls, passes;
  } forced[] = {{1, 2}, {3, 3}, {2, 1}, {0, 1}};
  for (size_t i = 0; i < sizeof forced / sizeof *forced; i++) {
    int c = forced[i].cls;
    rgb_of(in, 4, px, src);
    for (int p = 0; p < forced[i].passes; p++) {
      maskdcpt_restore(plain, &si, &wi, c, 1.0f, NULL, NULL);
      memcpy(src, want, px * 3 * 4);
    }
    CHECK(maskdcpt_restore(ctx, &s4, &g4, c, 1.0f, NULL, &err) == MASKDCPT_OK, "class %d: %s", c,
          err.message);
    rgb_of(got, 4, px, got_rgb);
    int alpha_kept = 1;
    for (size_t q = 0; q < px; q++) alpha_kept &= got[q * 4 + 3] == in[q * 4 + 3];
    CHECK(memcmp(got_rgb, want, px * 3 * 4) == 0 && alpha_kept,
          "class %d forced: %d passes, each on the last one's output (bit for bit), alpha kept", c,
          forced[i].passes);
  }

  /* the count restore runs, as the API reports it */
  float onehot[4][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};
  float no_major[4] = {0.1f, 0.45f, 0.45f, 0.0f}, major[4] = {0.1f, 1.2f, 0.4f, 0.2f};
  CHECK(maskdcpt_model_passes(pm, onehot[0], 4) == 1 &&
            maskdcpt_model_passes(pm, onehot[1], 4) == 2 &&
            maskdcpt_model_passes(pm, onehot[2], 4) == 1 &&
            maskdcpt_model_passes(pm, onehot[3], 4) == 3,
        "model_passes: clean 1, noise 2, blur 1, jpeg 3");
  CHECK(maskdcpt_model_passes(pm, no_major, 4) == 1 && maskdcpt_model_passes(pm, major, 4) == 2,
        "model_passes: no majority 1; noise leading after normalising 2");
  CHECK(maskdcpt_model_passes(pm, onehot[1], 3) == 0 &&
            maskdcpt_model_passes(NULL, onehot[1], 4) == 0 &&
            maskdcpt_model_passes(pm, NULL, 4) == 0 &&
            maskdcpt_model_passes(model, onehot[1], 4) == 1,
        "model_passes: 0 for a wrong count or NULL; 1 for a file without the key");

  /* strength: one blend of the last pass against the input */
  rgb_of(in, 4, px, src);
  maskdcpt_restore(plain, &si, &ti, 1, 1.0f, NULL, NULL);
  maskdcpt_restore(plain, &ti, &wi, 1, 1.0f, NULL, NULL);
  CHECK(maskdcpt_restore(ctx, &s4, &g4, 1, 0.3f, NULL, &err) == MASKDCPT_OK, "strength 0.3: %s",
        err.message);
  float worst = 0.0f;
  for (size_t q = 0; q < px * 3; q++) {
    float e = fabsf(got[q / 3 * 4 + q % 3] - (src[q] + 0.3f * (want[q] - src[q])));
    if (e > worst) worst = e;
  }
  CHECK(worst < 1e-6f, "strength 0.3 blends the second pass with the input (max error %g)",
        (double)worst);

  /* no majority: one pass, as the plain network's mix */
  float mix[4] = {0.1f, 0.45f, 0.45f, 0.0f};
  maskdcpt_restore_with_probabilities(plain, &si, &wi, mix, 4, 1.0f, NULL);
  maskdcpt_image g3 = {got_rgb, w, h, 3, (size_t)w * 3};
  maskdcpt_restore_with_probabilities(ctx, &si, &g3, mix, 4, 1.0f, NULL);
  CHECK(memcmp(got_rgb, want, px * 3 * 4) == 0, "noise 0.45, no majority: one pass");

  /* progress: twice the calls of one pass; a cancel in the second pass */
  progress_log one = {0, 1, -1, 0.0}, two = {0, 1, -1, 0.0};
  maskdcpt_context_set_progress(plain, log_progress, &one);
  maskdcpt_restore(plain, &si, &wi, 1, 1.0f, NULL, NULL);
  maskdcpt_context_set_progress(ctx, log_progress, &two);
  maskdcpt_restore(ctx, &si, &g3, 1, 1.0f, NULL, NULL);
  CHECK(two.calls == 2 * one.calls && two.monotonic && fabs(two.last - 1.0) < 1e-9,
        "progress over 2 passes: %d calls (one pass: %d), last %g", two.calls, one.calls,
        two.last);
  progress_log cancel = {0, 1, one.calls + 1, 0.0};
  maskdcpt_context_set_progress(ctx, log_progress, &cancel);
  CHECK(maskdcpt_restore(ctx, &si, &g3, 1, 1.0f, NULL, &err) == MASKDCPT_ERROR_CANCELLED &&
            cancel.calls == one.calls + 1,
        "cancel in the second pass (%d calls)", cancel.calls);

  /* auto mode: progress stays monotonic when classification brings more
   * passes than planned (a classifier made to say noise) */
  maskdcpt_model *says_noise = tu_random_model_edit(
      arch, 21, 0.3f, "api-passes-noise.safetensors", "passes", "{\"noise\":2}", classify_noise);
  maskdcpt_context *actx = NULL;
  if (says_noise && maskdcpt_context_new(says_noise, &actx, &err) == MASKDCPT_OK) {
    float p[4];
    int bw = 200, bh = 150;
    float *big = tu_test_image(bw, bh, 3, 12), *bout = malloc((size_t)bw * bh * 3 * 4);
    maskdcpt_image bi = {big, bw, bh, 3, (size_t)bw * 3}, bo = {bout, bw, bh, 3, (size_t)bw * 3};
    progress_log a = {0, 1, -1, 0.0};
    maskdcpt_context_set_progress(actx, log_progress, &a);
    maskdcpt_context_set_tile_size(actx, 1); /* the smallest: many tiles, small steps */
    CHECK(maskdcpt_restore(actx, &bi, &bo, MASKDCPT_CLASS_AUTO, 1.0f, p, &err) == MASKDCPT_OK,
          "auto: %s", err.message);
    CHECK(p[1] > 0.5f, "precondition: noise leads (%g)", (double)p[1]);
    CHECK(a.monotonic && fabs(a.last - 1.0) < 1e-9 && a.calls > 4,
          "auto mode with 2 passes: progress monotonic to 1 over %d calls", a.calls);
    free(big);
    free(bout);
  }
  CHECK(actx != NULL, "model whose classifier says noise");
  maskdcpt_context_free(actx);
  maskdcpt_model_free(says_noise);
  maskdcpt_context_free(plain);
  maskdcpt_context_free(ctx);
  maskdcpt_model_free(pm);
  free(in);
  free(want);
  free(tmp);
  free(got);
  free(got_rgb);
  free(src);
}

int main(void) {
  mdc_arch arch;
  tu_small_arch(&arch, 8, 2, 32);
  model = tu_random_model(&arch, 21, 0.3f, "api.safetensors");
  if (!model) {
    printf("0 passed, 1 failed\n");
    return 1;
  }
  test_load_errors();
  test_model_queries();
  test_bad_arguments();
  test_device();
  for (int ch = 1; ch <= 4; ch++) test_channels(ch);
  test_strength_linear();
  test_nan_input();
  test_determinism();
  test_classes();
  test_with_probabilities();
  test_auto_focus(&arch);
  test_passes(&arch);
  maskdcpt_model_free(model);
  return tu_finish();
}
