/* cuda_nafblock.c - one NAFBlock forward on the GPU, composed from the
 * backend's own entries in the order and with the maths of the scalar
 * reference (kernels/cpu/scalar.c, scalar_nafblock_forward; the block is
 * docs/network.md's NAFBlock).  Everything stays on the device: the
 * caller's scratch (device memory) holds the intermediates.  A later
 * version may fuse stages; this one keeps the reference's structure so
 * that a difference from the CPU points at a single entry. */
#include <stdint.h>

#include "cuda_internal.h"

/* backend.h's pool_mean (one image): one mean per channel (global) or per pixel. */
static int pool_is_global(int h, int w, int window) {
  return window <= 0 || (window >= h && window >= w);
}

static size_t align256(size_t bytes) { return (bytes + 255) & ~(size_t)255; }

/* Scratch, each part 256-byte aligned (plus 256 bytes of slack to align
 * the caller's pointer):
 *   buf0, buf1  n x 2c floats   ping-pong between the layers
 *   pooled, s   n x c floats each when windowed, c each when global */
static size_t cuda_nafblock_scratch_size(mdc_backend *be, int c, int h, int w, int window) {
  (void)be;
  size_t n = (size_t)h * w;
  size_t pooled = pool_is_global(h, w, window) ? (size_t)c : n * c;
  return 256 + 2 * align256(n * 2 * c * sizeof(float)) + 2 * align256(pooled * sizeof(float));
}

/* The entries the composition needs: the layer ones come from other
 * files, so a missing one is reported instead of called. */
static const char *missing_entry(const mdc_backend *be) {
  if (!be->layernorm) return "layernorm";
  if (!be->conv1x1) return "conv1x1";
  if (!be->dwconv3x3) return "dwconv3x3";
  if (!be->simplegate) return "simplegate";
  if (!be->pool_mean) return "pool_mean";
  if (!be->scale_channels) return "scale_channels";
  if (!be->add_scaled) return "add_scaled";
  return NULL;
}

static void cuda_nafblock_forward(mdc_backend *be, const mdc_nafblock_params *p, const float *x,
                                  int h, int w, float eps, int window, float *y, void *scratch) {
  mdc_cuda_ctx *ctx = mdc_cuda_ctx_of(be);
  if (ctx->failed || h <= 0 || w <= 0) return;
  int c = p->c, global = pool_is_global(h, w, window);
  const char *missing = missing_entry(be);
  if (missing) {
    mdc_cuda_fail(be, "nafblock_forward %dx%dx%d: the CUDA backend has no %s entry", h, w, c,
                  missing);
    return;
  }
  if (!scratch || x == y) {
    mdc_cuda_fail(be, "nafblock_forward %dx%dx%d: %s", h, w, c,
                  !scratch ? "no scratch memory" : "y must not be x");
    return;
  }
  size_t n = (size_t)h * w, pooled_n = global ? 1 : n;
  char *s = (char *)(((uintptr_t)scratch + 255) & ~(uintptr_t)255);
  float *buf0 = (float *)s;
  s += align256(n * 2 * c * sizeof(float));
  float *buf1 = (float *)s;
  s += align256(n * 2 * c * sizeof(float));
  float *pooled = (float *)s;
  s += align256(pooled_n * c * sizeof(float));
  float *sv = (float *)s;

  /* The scalar reference's sequence, line for line: one image (batch 1),
   * one row of LayerNorm parameters, s per pixel when windowed. */
  be->layernorm(be, x, n, c, p->norm1_w, p->norm1_b, 0, eps, buf1, NULL, NULL);
  be->conv1x1(be, buf1, n, c, p->conv1_w, p->conv1_b, 2 * c, buf0);
  be->dwconv3x3(be, buf0, 1, h, w, 2 * c, p->conv2_w, p->conv2_b, buf1);
  be->simplegate(be, buf1, n, c, buf0);                      /* t = buf0 */
  be->pool_mean(be, buf0, 1, h, w, c, window, pooled);
  be->conv1x1(be, pooled, pooled_n, c, p->sca_w, p->sca_b, c, sv);
  be->scale_channels(be, buf0, sv, global ? 0 : 1, n, c, buf1); /* t * s */
  be->conv1x1(be, buf1, n, c, p->conv3_w, p->conv3_b, c, buf0);
  be->add_scaled(be, x, buf0, p->beta, n, c, y);             /* y = inp + beta t */
  be->layernorm(be, y, n, c, p->norm2_w, p->norm2_b, 0, eps, buf1, NULL, NULL);
  be->conv1x1(be, buf1, n, c, p->conv4_w, p->conv4_b, 2 * c, buf0);
  be->simplegate(be, buf0, n, c, buf1);
  be->conv1x1(be, buf1, n, c, p->conv5_w, p->conv5_b, c, buf0);
  be->add_scaled(be, y, buf0, p->gamma, n, c, y);            /* out = y + gamma t */
}

void mdc_cuda_nafblock_init(mdc_backend *be) {
  be->nafblock_scratch_size = cuda_nafblock_scratch_size;
  be->nafblock_forward = cuda_nafblock_forward;
}
