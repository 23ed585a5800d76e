/* test_cuda_net.c - the whole network on the GPU against the CPU: the
 * public API's restore and classify (forced, auto, tiled, shipped weights),
 * the trainer's forward, backward and optimizer step, the fall-back to the
 * CPU when the GPU is out of memory, and the loader's messages.
 *
 * Tolerances: strict fp32 (MASKDCPT_CUDA_STRICT=1) differs from the CPU only
 * by summation order: 1e-4 absolute on images in [0, 1], 1e-4 relative on
 * gradients.  TF32 (10-bit mantissa in the products) is checked by PSNR
 * against the CPU instead: >= 45 dB.
 *
 * Without a usable GPU the test prints why and exits 77 (meson: skipped).
 *
 * Built with CT_EMULATED (tests/cuda_emu), the same checks run on the CUDA
 * backend's own kernels under the CPU emulator, with the CPU's
 * convolutions standing in for cuDNN and cuBLAS: the inference checks
 * through the public API (this file provides the loader's two functions,
 * so the library's CUDA device is the emulator) and the training step.
 * The device's memory limits, the loader's messages and TF32 are the real
 * module's and stay GPU-only. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "model.h"
#include "test_util.h"
#ifdef MDC_TEST_TRAINER
#include "train_net.h"
#endif

static double max_abs_diff(const float *a, const float *b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - b[i]);
    if (!(d <= m)) m = isnan(d) ? INFINITY : d;
  }
  return m;
}

#ifdef CT_EMULATED
/* The loader (kernels/cuda_loader.c) replaced: its object is then not
 * taken from the static kernels library. */
mdc_backend *mdc_cuda_module_backend_new(int device, int strict_fp32, char *msg, size_t msg_size);
mdc_backend *mdc_backend_cuda_new(int device, int strict_fp32, char *msg, size_t msg_size) {
  return mdc_cuda_module_backend_new(device, strict_fp32, msg, msg_size);
}
int mdc_cuda_strict_requested(void) { return 1; }
int mdc_cuda_precision_requested(void) { /* strict, or fp16 when the test asks */
  const char *f = getenv("MASKDCPT_CUDA_FP16");
  return f && !strcmp(f, "1") ? MDC_CUDA_FP16 : MDC_CUDA_STRICT_FP32;
}
#endif

/* The precision the GPU contexts below use (MDC_CUDA_*), for labels and
 * tolerances; set with set_mode, which sets the environment the core
 * reads when it makes a context's backend. */
static int g_mode = MDC_CUDA_STRICT_FP32;
static const char *mode_name(int mode) {
  return mode == MDC_CUDA_STRICT_FP32 ? "strict fp32" : mode == MDC_CUDA_FP16 ? "fp16" : "tf32";
}
static void set_mode(int mode) {
  g_mode = mode;
  setenv("MASKDCPT_CUDA_STRICT", mode == MDC_CUDA_STRICT_FP32 ? "1" : "0", 1);
  setenv("MASKDCPT_CUDA_FP16", mode == MDC_CUDA_FP16 ? "1" : "0", 1);
}

static double psnr(const float *a, const float *b, size_t n) {
  double se = 0;
  for (size_t i = 0; i < n; i++) se += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
  return se > 0 ? 10 * log10((double)n / se) : INFINITY;
}

static maskdcpt_context *make_ctx(const maskdcpt_model *m, maskdcpt_device dev, int tile) {
  maskdcpt_context *ctx = NULL;
  maskdcpt_error err;
  if (maskdcpt_context_new(m, &ctx, &err) != MASKDCPT_OK ||
      maskdcpt_context_set_device(ctx, dev, &err) != MASKDCPT_OK) {
    CHECK(0, "context: %s", err.message);
    maskdcpt_context_free(ctx);
    return NULL;
  }
  maskdcpt_context_set_tile_size(ctx, tile);
  return ctx;
}

/* Restores `img` (w x h RGB) on the CPU and on CUDA with the same class
 * setting; returns the max abs difference (and the PSNR between them). */
static double compare_restore(const maskdcpt_model *m, const float *img, int w, int h, int cls,
                              int tile, double *psnr_out) {
  size_t n = (size_t)w * h * 3;
  float *a = calloc(n, sizeof(float)), *b = calloc(n, sizeof(float));
  float pa[MDC_MAX_CLASSES] = {0}, pb[MDC_MAX_CLASSES] = {0};
  maskdcpt_context *cpu = make_ctx(m, MASKDCPT_DEVICE_CPU, tile);
  maskdcpt_context *gpu = make_ctx(m, MASKDCPT_DEVICE_CUDA, tile);
  double diff = INFINITY;
  maskdcpt_error err;
  maskdcpt_image in = {(float *)img, w, h, 3, (size_t)w * 3};
  maskdcpt_image oa = {a, w, h, 3, (size_t)w * 3}, ob = {b, w, h, 3, (size_t)w * 3};
  if (cpu && gpu) {
    int ok = maskdcpt_restore(cpu, &in, &oa, cls, 1.0f, pa, &err) == MASKDCPT_OK;
    CHECK(ok, "cpu restore: %s", err.message);
    int okg = maskdcpt_restore(gpu, &in, &ob, cls, 1.0f, pb, &err) == MASKDCPT_OK;
    CHECK(okg, "cuda restore: %s", err.message);
    CHECK(strstr(maskdcpt_context_device_name(gpu), "cuda") != NULL, "device name %s",
          maskdcpt_context_device_name(gpu));
    if (ok && okg) {
      diff = max_abs_diff(a, b, n);
      if (psnr_out) *psnr_out = psnr(a, b, n);
      if (cls == MASKDCPT_CLASS_AUTO) {
        double pd = max_abs_diff(pa, pb, (size_t)maskdcpt_model_num_classes(m));
        double ptol = g_mode == MDC_CUDA_FP16 ? 2e-3 : 1e-4;
        CHECK(pd < ptol, "%s: auto probabilities differ by %g", mode_name(g_mode), pd);
      }
    }
  }
  maskdcpt_context_free(cpu);
  maskdcpt_context_free(gpu);
  free(a);
  free(b);
  return diff;
}

static void check_inference(void) {
  for (int window = 0; window <= 24; window += 24) {
    mdc_arch arch;
    tu_small_arch(&arch, 8, 2, window);
    maskdcpt_model *m = tu_random_model(&arch, 11 + window, 0.5f, "cuda-net.safetensors");
    if (!m) return;
    int w = 67, h = 45;
    float *img = tu_test_image(w, h, 3, 5);
    double p = 0;
    double forced = compare_restore(m, img, w, h, 1, 0, &p);
    double autom = compare_restore(m, img, w, h, MASKDCPT_CLASS_AUTO, 0, NULL);
    free(img);
    /* tiles: 150 x 130 in tiles of 64 */
    w = 150, h = 130;
    img = tu_test_image(w, h, 3, 6);
    double tiled = compare_restore(m, img, w, h, 2, 64, &p);
    free(img);
    printf("%s window %d: forced %.2e, auto %.2e, tiled %.2e max abs difference\n",
           mode_name(g_mode), window, forced, autom, tiled);
    double tol = g_mode == MDC_CUDA_STRICT_FP32 ? 1e-4 : 2e-2;
    CHECK(forced <= tol && autom <= tol && tiled <= tol,
          "window %d: forced %g auto %g tiled %g (tolerance %g)", window, forced, autom, tiled,
          tol);
    maskdcpt_model_free(m);
  }
}

/* The shipped network on a photo-like image: PSNR between the GPU's and the
 * CPU's result. */
static void check_shipped(const char *weights) {
  maskdcpt_model *m = NULL;
  maskdcpt_error err;
  if (!weights || maskdcpt_model_load(weights, &m, &err) != MASKDCPT_OK) {
    printf("shipped weights not given or not loadable: skipped that case\n");
    return;
  }
#ifdef CT_EMULATED
  int w = 128, h = 96; /* emulated threads are slow */
#else
  int w = 512, h = 384;
#endif
  float *img = tu_test_image(w, h, 3, 9);
  double p = 0;
  double d = compare_restore(m, img, w, h, MASKDCPT_CLASS_AUTO, 0, &p);
  printf("%s shipped weights, %dx%d auto: max abs difference %.2e, PSNR %.1f dB\n",
         mode_name(g_mode), w, h, d, p);
  CHECK(p >= (g_mode == MDC_CUDA_STRICT_FP32 ? 80.0 : 45.0), "%s: PSNR GPU vs CPU %.1f dB",
        mode_name(g_mode), p);
  free(img);
  maskdcpt_model_free(m);
}

/* The fp16 mode's working memory: activations take half the bytes, so a
 * tile needs about half of fp32's (the tile planner then takes larger
 * tiles from the same budget). */
static void check_fp16_plan(void) {
  mdc_arch arch;
  tu_small_arch(&arch, 8, 2, 24);
  mdc_weights w;
  mdc_net net;
  char msg[256];
  if (mdc_weights_init_random(&w, &arch, 3, 0.5f, NULL) != MASKDCPT_OK ||
      mdc_net_init(&net, &w, NULL) != MASKDCPT_OK) {
    CHECK(0, "%s", "a random network");
    return;
  }
  mdc_weights_clear(&w);
  mdc_backend *b32 = mdc_backend_cuda_new(0, MDC_CUDA_STRICT_FP32, msg, sizeof msg);
  mdc_backend *b16 = mdc_backend_cuda_new(0, MDC_CUDA_FP16, msg, sizeof msg);
  CHECK(b32 && b16, "backends: %s", msg);
  if (b32 && b16) {
    size_t a = mdc_net_work_bytes(&net, b32, 512, 384), b = mdc_net_work_bytes(&net, b16, 512, 384);
    printf("working memory for 512x384: fp32 %zu bytes, fp16 %zu (%.3f)\n", a, b, (double)b / a);
    CHECK(b > a * 0.45 && b < a * 0.55, "fp16 plan %zu bytes against fp32 %zu", b, a);
  }
  mdc_backend_free(b32);
  mdc_backend_free(b16);
  mdc_net_clear(&net);
}

#ifndef CT_EMULATED /* the real module's memory and messages */
/* Takes the GPU's memory, then restores in AUTO mode: tiles shrink, then
 * the CPU takes over with a note, and the result is the CPU's. */
static void check_out_of_memory(void) {
  char msg[256];
  mdc_backend *hog = mdc_backend_cuda_new(0, 1, msg, sizeof msg);
  if (!hog) {
    CHECK(0, "second backend: %s", msg);
    return;
  }
  enum { MAX_CHUNKS = 4096 };
  void **chunks = calloc(MAX_CHUNKS, sizeof *chunks);
  int n = 0;
  for (size_t size = (size_t)1 << 30; size >= ((size_t)1 << 20) && n < MAX_CHUNKS; size >>= 2)
    while (n < MAX_CHUNKS && (chunks[n] = hog->mem_alloc(hog, size)) != NULL) n++;
  CHECK(mdc_be_sync(hog, msg, sizeof msg) == 0, "the backend survives running out: %s", msg);

  mdc_arch arch;
  tu_small_arch(&arch, 8, 2, 0);
  maskdcpt_model *m = tu_random_model(&arch, 3, 0.5f, "cuda-oom.safetensors");
  int w = 300, h = 200;
  size_t px = (size_t)w * h * 3;
  float *img = tu_test_image(w, h, 3, 4), *a = calloc(px, 4), *b = calloc(px, 4);
  maskdcpt_image in = {img, w, h, 3, (size_t)w * 3};
  maskdcpt_image oa = {a, w, h, 3, (size_t)w * 3}, ob = {b, w, h, 3, (size_t)w * 3};
  maskdcpt_context *autoc = make_ctx(m, MASKDCPT_DEVICE_AUTO, 0);
  maskdcpt_context *cpu = make_ctx(m, MASKDCPT_DEVICE_CPU, 0);
  maskdcpt_error err;
  if (autoc && cpu) {
    int ok = maskdcpt_restore(autoc, &in, &oa, 1, 1.0f, NULL, &err) == MASKDCPT_OK;
    CHECK(ok, "auto device with a full GPU: %s", err.message);
    CHECK(maskdcpt_restore(cpu, &in, &ob, 1, 1.0f, NULL, &err) == MASKDCPT_OK, "cpu: %s",
          err.message);
    const char *note = maskdcpt_context_device_note(autoc);
    printf("full GPU: %d chunks taken; AUTO now on %s: \"%s\"\n", n,
           maskdcpt_context_device_name(autoc), note);
    CHECK(strstr(note, "out of memory") != NULL, "note: %s", note);
    CHECK(strstr(maskdcpt_context_device_name(autoc), "cpu") != NULL, "device %s",
          maskdcpt_context_device_name(autoc));
    CHECK(ok && max_abs_diff(a, b, px) == 0.0, "fallback result equals the CPU's");
  }
  maskdcpt_context_free(autoc);
  maskdcpt_context_free(cpu);
  maskdcpt_model_free(m);
  for (int i = 0; i < n; i++) hog->mem_free(hog, chunks[i]);
  free(chunks);
  mdc_backend_free(hog);
  free(img), free(a), free(b);
}

static void check_loader_messages(void) {
  char msg[256], *saved = getenv("MASKDCPT_CUDA_MODULE") ? strdup(getenv("MASKDCPT_CUDA_MODULE"))
                                                          : NULL;
  setenv("MASKDCPT_CUDA_MODULE", "/nonexistent/libmaskdcpt-cuda.so", 1);
  mdc_backend *be = mdc_backend_cuda_new(0, 1, msg, sizeof msg);
  CHECK(!be && strstr(msg, "cannot load the CUDA backend"), "missing module: %s", msg);
  mdc_backend_free(be);
  if (saved) setenv("MASKDCPT_CUDA_MODULE", saved, 1);
  free(saved);
  be = mdc_backend_cuda_new(99, 1, msg, sizeof msg);
  CHECK(!be && msg[0], "device 99: %s", msg);
  printf("device 99: \"%s\"\n", msg);
  mdc_backend_free(be);
}

#endif

#ifdef MDC_TEST_TRAINER

/* One training step on both backends from the same parameters and data. */
static void check_training(int masked) {
  mdc_arch arch;
  tu_small_arch(&arch, 8, 2, 0);
  char msg[256];
  mdc_backend *cpu = mdc_backend_cpu_scalar_new(1);
  mdc_backend *gpu = mdc_backend_cuda_new(0, 1, msg, sizeof msg);
  if (!gpu) {
    CHECK(0, "cuda backend: %s", msg);
    mdc_backend_free(cpu);
    return;
  }
  tr_net t[2];
  mdc_backend *be[2] = {cpu, gpu};
  enum { NB = 3 };
  int crop = 32;
  for (int k = 0; k < 2; k++) {
    mdc_weights w;
    mdc_net net;
    mdc_weights_init_random(&w, &arch, 21, 0.5f, NULL);
    mdc_net_init(&net, &w, NULL);
    mdc_weights_clear(&w);
    if (tr_net_init(&t[k], &net, crop, NB, be[k], msg, sizeof msg) != 0) {
      CHECK(0, "tr_net_init: %s", msg);
      return;
    }
  }
  /* three crops in one pass, each with its own mask and class weights (the
   * last in auto mode) */
  size_t px = (size_t)NB * crop * crop * 3, np = t[0].num_params;
  float *in[NB], *clean[NB];
  unsigned char mask[NB][64]; /* (crop >> levels)^2 = 8 x 8 patches of 4 x 4 px */
  float cond[NB][4] = {{0.1f, 0.6f, 0.2f, 0.1f}, {0, 0, 1, 0}, {0}};
  const float *cin[NB], *cclean[NB], *ccond[NB];
  const unsigned char *cmask[NB];
  for (int i = 0; i < NB; i++) {
    in[i] = tu_test_image(crop, crop, 3, 31 + 2 * i);
    clean[i] = tu_test_image(crop, crop, 3, 32 + 2 * i);
    for (int p = 0; p < 64; p++) mask[i][p] = (p * 5 + i) % 3 != 0;
    cin[i] = in[i], cclean[i] = clean[i], cmask[i] = mask[i];
    ccond[i] = i == NB - 1 ? NULL : cond[i];
  }
  double loss[2], dlog[2][NB * 4];
  float *grads[2], *params[2], *outs[2];
  for (int k = 0; k < 2; k++) {
    tr_net_zero_grad(&t[k]);
    tr_net_forward(&t[k], be[k], NB, cin, masked ? cmask : NULL, ccond, 1);
    outs[k] = malloc(px * sizeof(float));
    memcpy(outs[k], tr_net_output(&t[k]), px * sizeof(float));
    loss[k] = tr_net_restoration_loss(&t[k], cclean, 1, 1e-8, 1.0f);
    for (int q = 0; q < NB * 4; q++) dlog[k][q] = 0.1 * (q % 4 + 1) - 0.25 + 0.05 * (q / 4);
    tr_net_backward(&t[k], be[k], t[k].d_out, dlog[k]);
    grads[k] = malloc(np * sizeof(float));
    tr_net_download(&t[k], grads[k], t[k].grad, np);
  }
  double dout = max_abs_diff(outs[0], outs[1], px);
  double dl = fabs(loss[0] - loss[1]);
  double gmax = 0, gerr = 0;
  for (size_t i = 0; i < np; i++) gmax = fmax(gmax, fabs(grads[0][i]));
  gerr = max_abs_diff(grads[0], grads[1], np) / (gmax > 0 ? gmax : 1);
  double lerr = 0;
  for (int q = 0; q < NB * 4; q++) lerr = fmax(lerr, fabs(t[0].logits[q] - t[1].logits[q]));
  /* one AdamW step on each side */
  float *m[2], *v[2];
  for (int k = 0; k < 2; k++) {
    m[k] = mdc_be_alloc(be[k], np * 4), v[k] = mdc_be_alloc(be[k], np * 4);
    be[k]->adamw_step(be[k], t[k].net.storage, t[k].grad, m[k], v[k], np, 1e-3f, 0.9f, 0.9f,
                      1e-8f, 0.01f, 1);
    params[k] = malloc(np * 4);
    tr_net_download(&t[k], params[k], t[k].net.storage, np);
  }
  double perr = max_abs_diff(params[0], params[1], np);
  size_t moved_apart = 0; /* parameters whose tiny gradient changed sign */
  for (size_t i = 0; i < np; i++) moved_apart += fabs((double)params[0][i] - params[1][i]) > 1e-5;
  printf("training step, mask %d: out %.2e, loss %.2e, logits %.2e, gradients %.2e (relative "
         "to max %.3g), parameters after AdamW %.2e\n",
         masked, dout, dl, lerr, gerr, gmax, perr);
  CHECK(dout < 1e-4 && dl < 1e-4 && lerr < 1e-4, "forward: out %g loss %g logits %g", dout, dl,
        lerr);
  CHECK(gerr < 1e-4, "gradients differ by %g of their maximum", gerr);
  /* AdamW's first step moves each parameter by about lr: the sign of tiny
   * gradients may differ, so allow up to 2 lr on a few */
  CHECK(perr < 2.1e-3 && moved_apart * 1000 <= np,
        "parameters after AdamW differ by %g; %zu of %zu by more than 1e-5", perr, moved_apart, np);
  CHECK(tr_net_check(&t[1], msg, sizeof msg) == 0, "device: %s", msg);
  for (int k = 0; k < 2; k++) {
    mdc_be_free(be[k], m[k]), mdc_be_free(be[k], v[k]);
    free(outs[k]), free(grads[k]), free(params[k]);
    tr_net_free(&t[k]);
  }
  for (int i = 0; i < NB; i++) free(in[i]), free(clean[i]);
  mdc_backend_free(cpu);
  mdc_backend_free(gpu);
}
#endif

#ifdef CT_EMULATED
int main(int argc, char **argv) {
  set_mode(MDC_CUDA_STRICT_FP32);
  check_inference();
  check_shipped(argc > 1 ? argv[1] : NULL);
#ifdef MDC_TEST_TRAINER
  check_training(0);
  check_training(1);
#endif
  set_mode(MDC_CUDA_FP16);
  check_inference();
  check_shipped(argc > 1 ? argv[1] : NULL);
  check_fp16_plan();
  return tu_finish();
}
#else
int main(int argc, char **argv) {
  char msg[256];
  set_mode(MDC_CUDA_STRICT_FP32);
  mdc_backend *probe = mdc_backend_cuda_new(0, 1, msg, sizeof msg);
  if (!probe) {
    printf("SKIP: no usable CUDA device: %s\n", msg);
    return 77;
  }
  printf("device: %s\n", probe->name);
  mdc_backend_free(probe);
  const char *weights = argc > 1 ? argv[1] : NULL;
  check_inference();
  check_shipped(weights);
#ifdef MDC_TEST_TRAINER
  check_training(0);
  check_training(1);
#endif
  set_mode(MDC_CUDA_TF32);
  check_inference();
  check_shipped(weights);
  set_mode(MDC_CUDA_FP16);
  check_inference();
  check_shipped(weights);
  check_fp16_plan();
  set_mode(MDC_CUDA_TF32);
  check_loader_messages();
  check_out_of_memory();
  return tu_finish();
}
#endif
