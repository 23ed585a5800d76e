/* test_device_memory.c - the core and the trainer keep to the device
 * memory contract of backend.h, checked without a GPU.
 *
 * A "checked" backend wraps the CPU scalar backend and behaves like a
 * device: its memory is an arena that is inaccessible (PROT_NONE) except
 * while one of its own entries runs, so host code that reads or writes
 * device memory directly crashes the test; and every pointer handed to a
 * kernel must lie in the arena, so host memory handed to a kernel (a stack
 * array, a staging buffer) is reported.  An allocation limit makes it run
 * out of memory on purpose: tiles must shrink, and in AUTO mode the
 * context must fall back to the CPU.
 *
 * Results must match the plain CPU backend: the same kernels run, only the
 * classifier's pooling chunks and the decoder's class mixing are ordered
 * differently on a device (1e-5). */
#include <stdarg.h>
#include <stdint.h>
#include <sys/mman.h>

#include "context.h"
#include "nafblock_params.h"
#include "test_util.h"
#ifdef MDC_TEST_TRAINER
#include "train_net.h"
#endif

/* ------------------------------------------------------------- arena */

#define ARENA_RESERVE ((size_t)1 << 31)

static char *arena;
static size_t arena_used, arena_limit;
static int arena_depth; /* > 0 while an entry runs */
static int bad_pointers;
static char first_bad[256];

static void arena_open(void) {
  if (arena_depth++ == 0 && arena_used)
    mprotect(arena, (arena_used + 4095) & ~(size_t)4095, PROT_READ | PROT_WRITE);
}

static void arena_close(void) {
  if (--arena_depth == 0 && arena_used)
    mprotect(arena, (arena_used + 4095) & ~(size_t)4095, PROT_NONE);
}

static int in_arena(const void *p) {
  return (const char *)p >= arena && (const char *)p < arena + arena_used;
}

static void expect_device(const void *p, const char *entry, const char *arg) {
  if (!p || in_arena(p)) return;
  if (!bad_pointers++)
    snprintf(first_bad, sizeof first_bad, "%s: argument %s is host memory", entry, arg);
}

#define DEV(p) expect_device((p), __func__, #p)

static mdc_backend *inner; /* the CPU scalar backend doing the work */

/* ------------------------------------------------------ the wrappers */

#define WRAP(call) \
  do {             \
    arena_open();  \
    call;          \
    arena_close(); \
  } while (0)

/* Allocations as a stack: freeing the top ones gives their memory back,
 * enough for the core's grow-on-demand working memory. */
#define MAX_BLOCKS 4096
static struct {
  size_t offset;
  int live;
} blocks[MAX_BLOCKS];
static int num_blocks;

static void *c_alloc(mdc_backend *be, size_t bytes) {
  (void)be;
  size_t rounded = (bytes + 255) & ~(size_t)255;
  if (arena_used + rounded > arena_limit || num_blocks == MAX_BLOCKS) return NULL;
  blocks[num_blocks].offset = arena_used, blocks[num_blocks].live = 1, num_blocks++;
  void *p = arena + arena_used;
  arena_depth++; /* newly used pages start inaccessible too */
  arena_used += rounded;
  mprotect(arena, (arena_used + 4095) & ~(size_t)4095, PROT_READ | PROT_WRITE);
  memset(p, 0, rounded);
  arena_depth--;
  if (arena_depth == 0) mprotect(arena, (arena_used + 4095) & ~(size_t)4095, PROT_NONE);
  return p;
}
static void c_free(mdc_backend *be, void *p) {
  (void)be, DEV(p);
  for (int i = num_blocks - 1; i >= 0; i--)
    if (arena + blocks[i].offset == (char *)p) blocks[i].live = 0;
  while (num_blocks > 0 && !blocks[num_blocks - 1].live) arena_used = blocks[--num_blocks].offset;
}
/* The arena's free bytes, or what a test pretends a device has. */
static size_t reported_free;
static int c_mem_info(mdc_backend *be, size_t *free_bytes, size_t *total_bytes) {
  (void)be;
  *free_bytes = reported_free ? reported_free : arena_limit - arena_used;
  *total_bytes = reported_free ? reported_free : arena_limit;
  return 0;
}
static void c_upload(mdc_backend *be, void *dst, const void *host, size_t n) {
  (void)be;
  DEV(dst);
  if (in_arena(host) && !bad_pointers++) snprintf(first_bad, sizeof first_bad, "upload from device");
  WRAP(memcpy(dst, host, n));
}
static void c_download(mdc_backend *be, void *host, const void *src, size_t n) {
  (void)be;
  DEV(src);
  if (in_arena(host) && !bad_pointers++) snprintf(first_bad, sizeof first_bad, "download to device");
  WRAP(memcpy(host, src, n));
}
static void c_copy(mdc_backend *be, void *dst, const void *src, size_t n) {
  (void)be, DEV(dst), DEV(src);
  WRAP(memmove(dst, src, n));
}
static void c_zero(mdc_backend *be, void *p, size_t n) {
  (void)be, DEV(p);
  WRAP(memset(p, 0, n));
}
static int c_sync(mdc_backend *be, char *msg, size_t size) {
  (void)be, (void)msg, (void)size;
  return 0;
}
static void c_free_backend(mdc_backend *be) { free(be); }

static void c_conv1x1(mdc_backend *be, const float *x, size_t n, int cin, const float *w,
                      const float *b, int cout, float *y) {
  (void)be, DEV(x), DEV(w), DEV(b), DEV(y);
  WRAP(inner->conv1x1(inner, x, n, cin, w, b, cout, y));
}
static void c_conv3x3(mdc_backend *be, const float *x, int nb, int h, int w, int cin, const float *wt,
                      const float *b, int cout, float *y) {
  (void)be, DEV(x), DEV(wt), DEV(b), DEV(y);
  WRAP(inner->conv3x3(inner, x, nb, h, w, cin, wt, b, cout, y));
}
static void c_dwconv3x3(mdc_backend *be, const float *x, int nb, int h, int w, int c, const float *wt,
                        const float *b, float *y) {
  (void)be, DEV(x), DEV(wt), DEV(b), DEV(y);
  WRAP(inner->dwconv3x3(inner, x, nb, h, w, c, wt, b, y));
}
static void c_conv2x2s2(mdc_backend *be, const float *x, int h, int w, int cin, const float *wt,
                        const float *b, int cout, float *y) {
  (void)be, DEV(x), DEV(wt), DEV(b), DEV(y);
  WRAP(inner->conv2x2s2(inner, x, h, w, cin, wt, b, cout, y));
}
static void c_layernorm(mdc_backend *be, const float *x, size_t n, int c, const float *g,
                        const float *b, size_t gbe, float eps, float *y, float *mean,
                        float *rstd) {
  (void)be, DEV(x), DEV(g), DEV(b), DEV(y), DEV(mean), DEV(rstd);
  WRAP(inner->layernorm(inner, x, n, c, g, b, gbe, eps, y, mean, rstd));
}
static void c_simplegate(mdc_backend *be, const float *x, size_t n, int c, float *y) {
  (void)be, DEV(x), DEV(y);
  WRAP(inner->simplegate(inner, x, n, c, y));
}
static void c_pool_mean(mdc_backend *be, const float *x, int nb, int h, int w, int c, int window,
                        float *y) {
  (void)be, DEV(x), DEV(y);
  WRAP(inner->pool_mean(inner, x, nb, h, w, c, window, y));
}
static void c_scale_channels(mdc_backend *be, const float *x, const float *s, size_t pp, size_t n,
                             int c, float *y) {
  (void)be, DEV(x), DEV(s), DEV(y);
  WRAP(inner->scale_channels(inner, x, s, pp, n, c, y));
}
static void c_add_scaled(mdc_backend *be, const float *a, const float *b, const float *s,
                         size_t n, int c, float *y) {
  (void)be, DEV(a), DEV(b), DEV(s), DEV(y);
  WRAP(inner->add_scaled(inner, a, b, s, n, c, y));
}
static void c_pixelshuffle_add(mdc_backend *be, const float *x, int h, int w, int c,
                               const float *skip, float *y) {
  (void)be, DEV(x), DEV(skip), DEV(y);
  WRAP(inner->pixelshuffle_add(inner, x, h, w, c, skip, y));
}
static size_t c_nafblock_scratch_size(mdc_backend *be, int c, int h, int w, int window) {
  (void)be;
  return inner->nafblock_scratch_size(inner, c, h, w, window);
}
static void c_nafblock_forward(mdc_backend *be, const mdc_nafblock_params *p, const float *x,
                               int h, int w, float eps, int window, float *y, void *scratch) {
  (void)be, DEV(x), DEV(y), DEV(scratch);
#define FIELD(field, n, scale) p->field,
  const float *params[] = {TEST_NAFBLOCK_PARAMS(FIELD, p->c, 0)};
#undef FIELD
  for (size_t i = 0; i < sizeof params / sizeof *params; i++)
    expect_device(params[i], __func__, "a block parameter");
  WRAP(inner->nafblock_forward(inner, p, x, h, w, eps, window, y, scratch));
}
static void c_mask_pixels(mdc_backend *be, const float *x, const float *m, size_t n, int c,
                          float *y) {
  (void)be, DEV(x), DEV(m), DEV(y);
  WRAP(inner->mask_pixels(inner, x, m, n, c, y));
}
static void c_conv1x1_backward(mdc_backend *be, const float *x, size_t n, int cin,
                               const float *w, int cout, const float *dy, float *dx, float *dw,
                               float *db) {
  (void)be, DEV(x), DEV(w), DEV(dy), DEV(dx), DEV(dw), DEV(db);
  WRAP(inner->conv1x1_backward(inner, x, n, cin, w, cout, dy, dx, dw, db));
}
static void c_conv3x3_backward(mdc_backend *be, const float *x, int nb, int h, int w, int cin,
                               const float *wt, int cout, const float *dy, float *dx,
                               float *dwt, float *db) {
  (void)be, DEV(x), DEV(wt), DEV(dy), DEV(dx), DEV(dwt), DEV(db);
  WRAP(inner->conv3x3_backward(inner, x, nb, h, w, cin, wt, cout, dy, dx, dwt, db));
}
static void c_dwconv3x3_backward(mdc_backend *be, const float *x, int nb, int h, int w, int c,
                                 const float *wt, const float *dy, float *dx, float *dwt,
                                 float *db) {
  (void)be, DEV(x), DEV(wt), DEV(dy), DEV(dx), DEV(dwt), DEV(db);
  WRAP(inner->dwconv3x3_backward(inner, x, nb, h, w, c, wt, dy, dx, dwt, db));
}
static void c_conv2x2s2_backward(mdc_backend *be, const float *x, int h, int w, int cin,
                                 const float *wt, int cout, const float *dy, float *dx,
                                 float *dwt, float *db) {
  (void)be, DEV(x), DEV(wt), DEV(dy), DEV(dx), DEV(dwt), DEV(db);
  WRAP(inner->conv2x2s2_backward(inner, x, h, w, cin, wt, cout, dy, dx, dwt, db));
}
static void c_layernorm_backward(mdc_backend *be, const float *x, size_t n, int c,
                                 const float *g, size_t gbe, const float *mean,
                                 const float *rstd, const float *dy, float *dx, float *dg,
                                 float *db) {
  (void)be, DEV(x), DEV(g), DEV(mean), DEV(rstd), DEV(dy), DEV(dx), DEV(dg), DEV(db);
  WRAP(inner->layernorm_backward(inner, x, n, c, g, gbe, mean, rstd, dy, dx, dg, db));
}
static void c_simplegate_backward(mdc_backend *be, const float *x, size_t n, int c,
                                  const float *dy, float *dx) {
  (void)be, DEV(x), DEV(dy), DEV(dx);
  WRAP(inner->simplegate_backward(inner, x, n, c, dy, dx));
}
static void c_pool_mean_backward(mdc_backend *be, int nb, int h, int w, int c, int window,
                                 const float *dy, float *dx) {
  (void)be, DEV(dy), DEV(dx);
  WRAP(inner->pool_mean_backward(inner, nb, h, w, c, window, dy, dx));
}
static void c_scale_channels_backward(mdc_backend *be, const float *x, const float *s, size_t pp,
                                      size_t n, int c, const float *dy, float *dx, float *ds) {
  (void)be, DEV(x), DEV(s), DEV(dy), DEV(dx), DEV(ds);
  WRAP(inner->scale_channels_backward(inner, x, s, pp, n, c, dy, dx, ds));
}
static void c_add_scaled_backward(mdc_backend *be, const float *b, const float *s, size_t n,
                                  int c, const float *dy, float *db, float *ds) {
  (void)be, DEV(b), DEV(s), DEV(dy), DEV(db), DEV(ds);
  WRAP(inner->add_scaled_backward(inner, b, s, n, c, dy, db, ds));
}
static void c_pixelshuffle_backward(mdc_backend *be, int h, int w, int c, const float *dy,
                                    float *dx) {
  (void)be, DEV(dy), DEV(dx);
  WRAP(inner->pixelshuffle_backward(inner, h, w, c, dy, dx));
}
/* the fused forms, composed on the CPU (which has none) */
static void c_dwconv3x3_gate(mdc_backend *be, const float *x, int nb, int h, int w, int c,
                             const float *wt, const float *b, float *y) {
  (void)be, DEV(x), DEV(wt), DEV(b), DEV(y);
  size_t n = (size_t)nb * h * w;
  float *dw = malloc(n * 2 * c * sizeof(float));
  WRAP(inner->dwconv3x3(inner, x, nb, h, w, 2 * c, wt, b, dw);
       inner->simplegate(inner, dw, n, c, y));
  free(dw);
}
static void c_add_scaled_layernorm(mdc_backend *be, const float *a, const float *b,
                                   const float *s, size_t n, int c, const float *ln_g,
                                   const float *ln_b, size_t gb_every, float eps, float *y,
                                   float *ln, float *mean, float *rstd) {
  (void)be, DEV(a), DEV(b), DEV(s), DEV(ln_g), DEV(ln_b), DEV(y), DEV(ln), DEV(mean), DEV(rstd);
  WRAP(mdc_be_add_scaled_layernorm(inner, a, b, s, n, c, ln_g, ln_b, gb_every, eps, y, ln, mean,
                                   rstd));
}
static double c_l1_loss(mdc_backend *be, const float *pred, const float *target, size_t n,
                        float scale, float *grad) {
  (void)be, DEV(pred), DEV(target), DEV(grad);
  double r;
  WRAP(r = inner->l1_loss(inner, pred, target, n, scale, grad));
  return r;
}
static double c_psnr_loss(mdc_backend *be, const float *pred, const float *target, int batch,
                          size_t n, double eps, float scale, float *grad) {
  (void)be, DEV(pred), DEV(target), DEV(grad);
  double r;
  WRAP(r = inner->psnr_loss(inner, pred, target, batch, n, eps, scale, grad));
  return r;
}
static void c_adamw_step(mdc_backend *be, float *param, const float *grad, float *m, float *v,
                         size_t n, float lr, float b1, float b2, float eps, float wd, long step) {
  (void)be, DEV(param), DEV(grad), DEV(m), DEV(v);
  WRAP(inner->adamw_step(inner, param, grad, m, v, n, lr, b1, b2, eps, wd, step));
}
static void c_scale(mdc_backend *be, const float *x, size_t n, float alpha, float *y) {
  (void)be, DEV(x), DEV(y);
  WRAP(inner->scale(inner, x, n, alpha, y));
}
static void c_relu_sum(mdc_backend *be, const float *x, int h, int w, size_t stride, int c,
                       float *y) {
  (void)be, DEV(x), DEV(y);
  WRAP(inner->relu_sum(inner, x, h, w, stride, c, y));
}
static void c_relu_mask_scale(mdc_backend *be, const float *x, const float *s, size_t n, int c,
                              float *y) {
  (void)be, DEV(x), DEV(s), DEV(y);
  WRAP(inner->relu_mask_scale(inner, x, s, n, c, y));
}
static double c_sum_squares(mdc_backend *be, const float *x, size_t n) {
  (void)be, DEV(x);
  double r;
  WRAP(r = inner->sum_squares(inner, x, n));
  return r;
}
static void c_ema_update(mdc_backend *be, float *ema, const float *param, size_t n, float d) {
  (void)be, DEV(ema), DEV(param);
  WRAP(inner->ema_update(inner, ema, param, n, d));
}


/* fp32 activations: the converting transfers are byte copies, checked */
static void c_act_upload(mdc_backend *be, void *dst, const float *host, size_t count) {
  c_upload(be, dst, host, count * sizeof(float));
}
static void c_act_download(mdc_backend *be, float *host, const void *src, size_t count) {
  c_download(be, host, src, count * sizeof(float));
}

static mdc_backend *checked_backend_new(void) {
  mdc_backend *be = calloc(1, sizeof *be);
  be->name = "checked-device";
  be->free = c_free_backend;
  be->conv1x1 = c_conv1x1, be->conv3x3 = c_conv3x3, be->dwconv3x3 = c_dwconv3x3;
  be->conv2x2s2 = c_conv2x2s2, be->layernorm = c_layernorm, be->simplegate = c_simplegate;
  be->pool_mean = c_pool_mean, be->scale_channels = c_scale_channels;
  be->add_scaled = c_add_scaled, be->pixelshuffle_add = c_pixelshuffle_add;
  be->dwconv3x3_gate = c_dwconv3x3_gate, be->add_scaled_layernorm = c_add_scaled_layernorm;
  be->nafblock_scratch_size = c_nafblock_scratch_size;
  be->nafblock_forward = c_nafblock_forward;
  be->mask_pixels = c_mask_pixels, be->conv1x1_backward = c_conv1x1_backward;
  be->conv3x3_backward = c_conv3x3_backward, be->dwconv3x3_backward = c_dwconv3x3_backward;
  be->conv2x2s2_backward = c_conv2x2s2_backward;
  be->layernorm_backward = c_layernorm_backward;
  be->simplegate_backward = c_simplegate_backward;
  be->pool_mean_backward = c_pool_mean_backward;
  be->scale_channels_backward = c_scale_channels_backward;
  be->add_scaled_backward = c_add_scaled_backward;
  be->pixelshuffle_backward = c_pixelshuffle_backward;
  be->l1_loss = c_l1_loss, be->psnr_loss = c_psnr_loss, be->adamw_step = c_adamw_step;
  be->scale = c_scale, be->relu_sum = c_relu_sum, be->relu_mask_scale = c_relu_mask_scale;
  be->sum_squares = c_sum_squares, be->ema_update = c_ema_update;
  be->mem_alloc = c_alloc, be->mem_free = c_free, be->mem_upload = c_upload;
  be->mem_download = c_download, be->mem_copy = c_copy, be->mem_zero = c_zero;
  be->mem_info = c_mem_info;
  be->act_upload = c_act_upload, be->act_download = c_act_download;
  be->sync = c_sync;
  return be;
}

/* Every entry of the table is set: a new backend.h entry must get a
 * wrapper here too. */
static void check_table_complete(const mdc_backend *be) {
  const void *const *p = (const void *const *)&be->free;
  size_t n = (sizeof *be - offsetof(mdc_backend, free)) / sizeof(void *);
  int missing = 0;
  for (size_t i = 0; i < n; i++) missing += p[i] == NULL;
  CHECK(missing == 0, "%d entries of the checked backend are NULL", missing);
}

/* ------------------------------------------------------------- tests */

/* A context that runs on a fresh checked backend, as if it were CUDA. */
static maskdcpt_context *checked_context(const maskdcpt_model *m, maskdcpt_device device,
                                         size_t limit) {
  maskdcpt_context *ctx = NULL;
  maskdcpt_context_new(m, &ctx, NULL);
  if (!ctx) return NULL;
  maskdcpt_context_set_device(ctx, MASKDCPT_DEVICE_CPU, NULL);
  arena_used = 0, num_blocks = 0; /* the previous context's memory is gone with it */
  arena_limit = limit;
  ctx->cuda = checked_backend_new();
  ctx->device = device;
  ctx->device_note[0] = '\0';
  return ctx;
}

static void restore_with(maskdcpt_context *ctx, const float *img, float *out, int w, int h,
                         int cls, float *probs) {
  maskdcpt_image in = {(float *)img, w, h, 3, (size_t)w * 3}, o = {out, w, h, 3, (size_t)w * 3};
  maskdcpt_error err;
  maskdcpt_status st = maskdcpt_restore(ctx, &in, &o, cls, 1.0f, probs, &err);
  CHECK(st == MASKDCPT_OK, "restore: %s", err.message);
}

static double max_diff(const float *a, const float *b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - b[i]);
    if (!(d <= m)) m = isnan(d) ? INFINITY : d;
  }
  return m;
}

static void check_inference(void) {
  mdc_arch arch;
  tu_small_arch(&arch, 8, 2, 24);
  maskdcpt_model *m = tu_random_model(&arch, 17, 0.5f, "device-memory.safetensors");
  if (!m) return;
  int w = 150, h = 110;
  size_t n = (size_t)w * h * 3;
  float *img = tu_test_image(w, h, 3, 2), *ref = calloc(n, 4), *got = calloc(n, 4);
  float pr[MDC_MAX_CLASSES], pg[MDC_MAX_CLASSES];
  maskdcpt_context *cpu = NULL;
  maskdcpt_context_new(m, &cpu, NULL);
  maskdcpt_context_set_device(cpu, MASKDCPT_DEVICE_CPU, NULL);
  maskdcpt_context_set_scalar(cpu, 1);

  for (int cls = -1; cls <= 2; cls += 3) { /* auto, then forced class 2 */
    for (int tile = 0; tile <= 64; tile += 64) {
      maskdcpt_context *dev = checked_context(m, MASKDCPT_DEVICE_CUDA, ARENA_RESERVE);
      maskdcpt_context_set_tile_size(cpu, tile);
      maskdcpt_context_set_tile_size(dev, tile);
      restore_with(cpu, img, ref, w, h, cls, pr);
      restore_with(dev, img, got, w, h, cls, pg);
      CHECK(strcmp(maskdcpt_context_device_name(dev), "checked-device") == 0, "ran on %s",
            maskdcpt_context_device_name(dev));
      double d = max_diff(ref, got, n), dp = max_diff(pr, pg, (size_t)arch.num_classes);
      printf("device-memory restore, class %d, tile %d: max difference %.2e, probabilities %.2e\n",
             cls, tile, d, dp);
      CHECK(d <= 1e-5 && dp <= 1e-5, "class %d tile %d: %g %g", cls, tile, d, dp);
      maskdcpt_context_free(dev);
    }
  }

  /* Short of memory: smaller tiles on the device; tiles blend where they
   * overlap, so the result matches to tiling's tolerance (test_tiling). */
  free(img), free(ref), free(got);
  w = 400, h = 300, n = (size_t)w * h * 3;
  img = tu_test_image(w, h, 3, 8), ref = calloc(n, 4), got = calloc(n, 4);
  maskdcpt_context_set_tile_size(cpu, 0);
  restore_with(cpu, img, ref, w, h, 2, NULL);
  size_t plenty = 0;
  {
    maskdcpt_context *dev = checked_context(m, MASKDCPT_DEVICE_CUDA, ARENA_RESERVE);
    restore_with(dev, img, got, w, h, 2, NULL);
    plenty = arena_used;
    maskdcpt_context_free(dev);
  }
  maskdcpt_context *dev = checked_context(m, MASKDCPT_DEVICE_CUDA, plenty / 2);
  restore_with(dev, img, got, w, h, 2, NULL);
  printf("device-memory restore in %zu of the %zu bytes one tile takes: max difference %.2e, %s\n",
         plenty / 2, plenty, max_diff(ref, got, n), maskdcpt_context_device_name(dev));
  CHECK(max_diff(ref, got, n) < 1.0 / 255, "smaller tiles: %g", max_diff(ref, got, n));
  CHECK(strcmp(maskdcpt_context_device_name(dev), "checked-device") == 0, "still on the device");
  maskdcpt_context_free(dev);

  /* No memory at all: CUDA fails with a message, AUTO falls back. */
  dev = checked_context(m, MASKDCPT_DEVICE_CUDA, 1024);
  maskdcpt_image in = {img, w, h, 3, (size_t)w * 3}, o = {got, w, h, 3, (size_t)w * 3};
  maskdcpt_error err;
  maskdcpt_status st = maskdcpt_restore(dev, &in, &o, 2, 1.0f, NULL, &err);
  CHECK(st == MASKDCPT_ERROR_OUT_OF_MEMORY && strstr(err.message, "GPU"),
        "CUDA device without memory: %d %s", st, err.message);
  maskdcpt_context_free(dev);
  dev = checked_context(m, MASKDCPT_DEVICE_AUTO, 1024);
  restore_with(dev, img, got, w, h, 2, NULL);
  const char *note = maskdcpt_context_device_note(dev);
  printf("AUTO without device memory: %s, \"%s\"\n", maskdcpt_context_device_name(dev), note);
  CHECK(strstr(note, "out of memory") && strncmp(maskdcpt_context_device_name(dev), "cpu", 3) == 0,
        "fell back: %s", note);
  /* the fallback runs the AVX2 kernels, the reference the scalar ones */
  CHECK(max_diff(ref, got, n) <= 1e-4, "fallback result: %g", max_diff(ref, got, n));
  maskdcpt_context_free(dev);
  /* ... also when classification runs first (auto mode) */
  dev = checked_context(m, MASKDCPT_DEVICE_AUTO, 1024);
  restore_with(dev, img, got, w, h, MASKDCPT_CLASS_AUTO, pg);
  CHECK(strncmp(maskdcpt_context_device_name(dev), "cpu", 3) == 0, "auto-mode fallback on %s",
        maskdcpt_context_device_name(dev));
  maskdcpt_context_free(dev);

  maskdcpt_context_free(cpu);
  maskdcpt_model_free(m);
  free(img), free(ref), free(got);
}

/* With no budget set, a device's tiles follow its free memory: one tile
 * for a 6000 x 6000 photo on a large GPU (the CPU stays at 2048), small
 * ones on a small GPU; a budget the caller sets wins. */
static void check_device_budget(void) {
  mdc_arch arch;
  tu_small_arch(&arch, 8, 2, 24);
  maskdcpt_model *m = tu_random_model(&arch, 17, 0.5f, "device-memory.safetensors");
  if (!m) return;
  maskdcpt_context *cpu = NULL;
  maskdcpt_context_new(m, &cpu, NULL);
  maskdcpt_context_set_device(cpu, MASKDCPT_DEVICE_CPU, NULL);
  int tile_cpu = 0, tile_big = 0, tile_small = 0, tile_set = 0;
  size_t work_big = 0, work_small = 0, work_set = 0;
  maskdcpt_context_plan(cpu, 6000, 6000, &tile_cpu, NULL);
  maskdcpt_context *dev = checked_context(m, MASKDCPT_DEVICE_CUDA, ARENA_RESERVE);
  reported_free = (size_t)64 << 30;
  maskdcpt_context_plan(dev, 6000, 6000, &tile_big, &work_big);
  maskdcpt_context_set_memory_budget(dev, (size_t)512 << 20);
  maskdcpt_context_plan(dev, 6000, 6000, &tile_set, &work_set);
  maskdcpt_context_set_memory_budget(dev, 0);
  reported_free = (size_t)256 << 20;
  maskdcpt_context_plan(dev, 6000, 6000, &tile_small, &work_small);
  reported_free = 0;
  printf("tiles for 6000x6000: CPU %d; device with 64 GiB free %d (%zu MiB), with 256 MiB free "
         "%d (%zu MiB), with a 512 MiB budget %d (%zu MiB)\n",
         tile_cpu, tile_big, work_big >> 20, tile_small, work_small >> 20, tile_set,
         work_set >> 20);
  CHECK(tile_cpu <= 2048 && tile_big >= 6000 && work_big <= (size_t)32 << 30,
        "large device: tile %d (%zu bytes), CPU %d", tile_big, work_big, tile_cpu);
  CHECK(tile_small < tile_cpu && work_small <= (size_t)128 << 20, "small device: tile %d, %zu",
        tile_small, work_small);
  CHECK(work_set <= (size_t)512 << 20 && tile_set < tile_big, "set budget: tile %d, %zu",
        tile_set, work_set);
  maskdcpt_context_free(dev);
  maskdcpt_context_free(cpu);
  maskdcpt_model_free(m);
}

#ifdef MDC_TEST_TRAINER
static void check_training(int masked) {
  mdc_arch arch;
  tu_small_arch(&arch, 4, 2, 0);
  mdc_backend *be[2] = {mdc_backend_cpu_scalar_new(1), NULL};
  arena_used = 0, num_blocks = 0, arena_limit = ARENA_RESERVE;
  be[1] = checked_backend_new();
  tr_net t[2];
  char msg[256];
  int crop = 16;
  for (int k = 0; k < 2; k++) {
    mdc_weights w;
    mdc_net net;
    mdc_weights_init_random(&w, &arch, 5, 0.5f, NULL);
    mdc_net_init(&net, &w, NULL);
    mdc_weights_clear(&w);
    if (tr_net_init(&t[k], &net, crop, 2, be[k], msg, sizeof msg) != 0) {
      CHECK(0, "%s", msg);
      return;
    }
  }
  /* two crops in one pass: the second in auto mode */
  size_t px = (size_t)crop * crop * 3 * 2, np = t[0].num_params;
  float *in0 = tu_test_image(crop, crop, 3, 3), *clean0 = tu_test_image(crop, crop, 3, 4);
  float *in1 = tu_test_image(crop, crop, 3, 5), *clean1 = tu_test_image(crop, crop, 3, 6);
  unsigned char mask[2][16]; /* (crop >> levels)^2 patches of 4 x 4 px */
  for (int i = 0; i < 32; i++) mask[i / 16][i % 16] = (i * 7) % 3 != 0;
  float cond[4] = {0.25f, 0.25f, 0.4f, 0.1f};
  const float *in[2] = {in0, in1}, *clean[2] = {clean0, clean1}, *conds[2] = {cond, NULL};
  const unsigned char *masks[2] = {mask[0], mask[1]};
  double dlog[8] = {0.2, -0.1, 0.05, -0.15, -0.3, 0.1, 0.0, 0.2};
  float *out[2], *grad[2], *param[2];
  double loss[2];
  for (int k = 0; k < 2; k++) {
    float *opt = mdc_be_alloc(be[k], np * 3 * sizeof(float));
    tr_net_zero_grad(&t[k]);
    tr_net_forward(&t[k], be[k], 2, in, masked ? masks : NULL, conds, 1);
    out[k] = malloc(px * 4);
    memcpy(out[k], tr_net_output(&t[k]), px * 4);
    loss[k] = tr_net_restoration_loss(&t[k], clean, masked, 1e-8, 1.0f);
    tr_net_backward(&t[k], be[k], t[k].d_out, dlog);
    grad[k] = malloc(np * 4);
    tr_net_download(&t[k], grad[k], t[k].grad, np);
    be[k]->adamw_step(be[k], t[k].net.storage, t[k].grad, opt, opt + np, np, 1e-3f, 0.9f, 0.9f,
                      1e-8f, 0.0f, 1);
    be[k]->ema_update(be[k], opt + 2 * np, t[k].net.storage, np, 0.5f);
    param[k] = malloc(np * 4);
    tr_net_download(&t[k], param[k], t[k].net.storage, np);
    mdc_be_free(be[k], opt);
  }
  double gmax = 0;
  for (size_t i = 0; i < np; i++) gmax = fmax(gmax, fabs(grad[0][i]));
  double dout = max_diff(out[0], out[1], px), dgrad = max_diff(grad[0], grad[1], np) / gmax;
  printf("device-memory training step, mask %d: out %.2e, loss %.2e, gradients %.2e of max\n",
         masked, dout, fabs(loss[0] - loss[1]), dgrad);
  CHECK(dout <= 1e-5 && fabs(loss[0] - loss[1]) <= 1e-5 && dgrad <= 1e-5,
        "training step: out %g loss %g gradients %g", dout, fabs(loss[0] - loss[1]), dgrad);
  for (int k = 0; k < 2; k++) {
    tr_net_free(&t[k]);
    mdc_backend_free(be[k]);
    free(out[k]), free(grad[k]), free(param[k]);
  }
  free(in0), free(clean0), free(in1), free(clean1);
}
#endif

int main(void) {
  arena = mmap(NULL, ARENA_RESERVE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (arena == MAP_FAILED) {
    printf("SKIP: cannot reserve address space for the arena\n");
    return 77;
  }
  inner = mdc_backend_cpu_scalar_new(1);
  mdc_backend *probe = checked_backend_new();
  check_table_complete(probe);
  mdc_backend_free(probe);
  check_inference();
  check_device_budget();
#ifdef MDC_TEST_TRAINER
  check_training(0);
  check_training(1);
#endif
  CHECK(bad_pointers == 0, "%d host pointers reached kernels; first: %s", bad_pointers, first_bad);
  mdc_backend_free(inner);
  return tu_finish();
}
