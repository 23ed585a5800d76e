/* cuda_nafblock.c - one NAFBlock forward on the GPU, composed from the
 * backend's own entries with the maths of the scalar reference
 * (kernels/cpu/scalar.c, scalar_nafblock_forward; the block is
 * docs/network.md's NAFBlock).  Everything stays on the device: the
 * caller's scratch (device memory) holds the intermediates.
 *
 * Three stages are fused to save memory passes (of 33 activation passes
 * of c channels per pixel, 7 go): conv2 with the gate (dwconv3x3_gate),
 * the global channel attention folded into conv3's weights (conv3(t s) =
 * t (diag(s) W3), so the scaled copy of t is never written), and the
 * first residual add with the second LayerNorm (add_scaled_layernorm).
 * Only the rounding differs from the reference.  MASKDCPT_CUDA_UNFUSED=1
 * turns all three off (cuda_backend.c), for timing them. */
#include <stdint.h>

#include "cuda_internal.h"

/* backend.h's pool_mean (one image): one mean per channel (global) or per pixel. */
static int pool_is_global(int h, int w, int window) {
  return window <= 0 || (window >= h && window >= w);
}

static size_t align256(size_t bytes) { return (bytes + 255) & ~(size_t)255; }

/* Scratch, each part 256-byte aligned (plus 256 bytes of slack to align
 * the caller's pointer); activations of es bytes (4, or 2 in the fp16
 * mode):
 *   buf0, buf1  n x 2c activations   ping-pong between the layers
 *   pooled, s   n x c activations each when windowed, c each when global
 *   w3s         c x c floats: conv3's weights times the channel scale */
static size_t cuda_nafblock_scratch_size(mdc_backend *be, int c, int h, int w, int window) {
  size_t n = (size_t)h * w, es = mdc_be_act_size(be);
  size_t pooled = pool_is_global(h, w, window) ? (size_t)c : n * c;
  return 256 + 2 * align256(n * 2 * c * es) + 2 * align256(pooled * es) +
         align256((size_t)c * c * sizeof(float));
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
  size_t n = (size_t)h * w, pooled_n = global ? 1 : n, es = mdc_be_act_size(be);
  char *s = (char *)(((uintptr_t)scratch + 255) & ~(uintptr_t)255);
  float *buf0 = (float *)s;
  s += align256(n * 2 * c * es);
  float *buf1 = (float *)s;
  s += align256(n * 2 * c * es);
  float *pooled = (float *)s;
  s += align256(pooled_n * c * es);
  float *sv = (float *)s;
  s += align256(pooled_n * c * es);
  float *w3s = (float *)s;

  /* One image (batch 1), one row of LayerNorm parameters, s per pixel
   * when windowed.  t: the gated features; f: the other buffer. */
  be->layernorm(be, x, n, c, p->norm1_w, p->norm1_b, 0, eps, buf1, NULL, NULL);
  be->conv1x1(be, buf1, n, c, p->conv1_w, p->conv1_b, 2 * c, buf0);
  float *t = buf1, *f = buf0;
  if (be->dwconv3x3_gate) {
    be->dwconv3x3_gate(be, buf0, 1, h, w, c, p->conv2_w, p->conv2_b, t);
  } else {
    be->dwconv3x3(be, buf0, 1, h, w, 2 * c, p->conv2_w, p->conv2_b, buf1);
    be->simplegate(be, buf1, n, c, buf0);
    t = buf0, f = buf1;
  }
  be->pool_mean(be, t, 1, h, w, c, window, pooled);
  be->conv1x1(be, pooled, pooled_n, c, p->sca_w, p->sca_b, c, sv);
  float *u; /* conv3's output */
  /* the fold needs mask_pixels, which the fp16 mode lacks (W3 is fp32, s half) */
  if (global && be->mask_pixels && !ctx->unfused) {
    be->mask_pixels(be, p->conv3_w, sv, (size_t)c, c, w3s); /* row i of W3 times s[i] */
    be->conv1x1(be, t, n, c, w3s, p->conv3_b, c, f);
    u = f;
  } else {
    be->scale_channels(be, t, sv, global ? 0 : 1, n, c, f);
    be->conv1x1(be, f, n, c, p->conv3_w, p->conv3_b, c, t);
    u = t;
  }
  float *o = u == buf0 ? buf1 : buf0;
  /* y = inp + beta conv3, o = LayerNorm2(y) */
  mdc_be_add_scaled_layernorm(be, x, u, p->beta, n, c, p->norm2_w, p->norm2_b, 0, eps, y, o, NULL,
                              NULL);
  be->conv1x1(be, o, n, c, p->conv4_w, p->conv4_b, 2 * c, u);
  be->simplegate(be, u, n, c, o);
  be->conv1x1(be, o, n, c, p->conv5_w, p->conv5_b, c, u);
  be->add_scaled(be, y, u, p->gamma, n, c, y); /* out = y + gamma t */
}

void mdc_cuda_nafblock_init(mdc_backend *be) {
  be->nafblock_scratch_size = cuda_nafblock_scratch_size;
  be->nafblock_forward = cuda_nafblock_forward;
}
