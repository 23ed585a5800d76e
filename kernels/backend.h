/* backend.h - the layer kernels behind one interface.
 *
 * A backend is a table of functions plus a context (ggml style).  Tensors
 * are fp32, NHWC, contiguous, in memory the backend can address (host
 * memory for the CPU backends).  A batch of images of the same size is
 * stored one image after another (N = batch): the per-pixel entries
 * take n = batch * h * w; the entries whose result depends on image
 * borders or per-image statistics take `batch` (conv3x3, dwconv3x3,
 * pool_mean and their backward); conv2x2s2 and PixelShuffle take
 * h = batch * image height (their 2x2 cells never cross an image border
 * because heights are even); scale_channels and layernorm take per-image
 * rows of s / of g and b through their `*_every` arguments.  Weight layouts are the kernels' own; the
 * core converts from the file's PyTorch layout once at load time:
 *   conv1x1   w[cin][cout]
 *   conv3x3   w[3][3][cin][cout]    (ky, kx, cin, cout), zero padding 1
 *   dwconv3x3 w[3][3][c]            zero padding 1
 *   conv2x2s2 w[2][2][cin][cout]    stride 2, no padding
 * Biases may be NULL (no bias).
 *
 * Forward entries are required.  The trainer adds backward entries to this
 * table; an entry left NULL means "not supported by this backend".
 *
 * Every fast path is tested against the scalar backend (the reference) on
 * random inputs of awkward sizes: tests/test_kernels.c (CPU) and
 * tests/test_cuda.c (GPU).
 *
 * Memory: a device backend (CUDA) sets the mem_* entries and every tensor
 * pointer given to it must come from mem_alloc (offsets into such a block
 * are fine).  The CPU backends leave them NULL: tensors are host memory.
 * Callers go through the mdc_be_* helpers at the end of this file, which
 * work for both.  Parameters passed as plain numbers (eps, scale, lr) and
 * the return values of the losses are host values.  Kernels and transfers
 * run in order on one queue.
 */
#ifndef MDC_BACKEND_H
#define MDC_BACKEND_H

#include <stddef.h>

typedef struct mdc_backend mdc_backend;

/* The parameters of one NAFBlock in kernel layouts, with any class
 * conditioning of the LayerNorms already mixed in. */
typedef struct mdc_nafblock_params {
  int c;
  const float *norm1_w, *norm1_b; /* [c] */
  const float *conv1_w, *conv1_b; /* [c][2c], [2c] */
  const float *conv2_w, *conv2_b; /* [3][3][2c], [2c] (depthwise) */
  const float *sca_w, *sca_b;     /* [c][c], [c] */
  const float *conv3_w, *conv3_b; /* [c][c], [c] */
  const float *norm2_w, *norm2_b; /* [c] */
  const float *conv4_w, *conv4_b; /* [c][2c], [2c] */
  const float *conv5_w, *conv5_b; /* [c][c], [c] */
  const float *beta, *gamma;      /* [c] */
} mdc_nafblock_params;

struct mdc_backend {
  const char *name; /* "cpu-scalar", "cpu-avx2", ... */
  void *ctx;        /* backend state (thread pool, device handles) */
  /* 1: activations are stored as IEEE half (the CUDA fp16 mode).  Every
   * tensor a layer reads or writes as data (x, y, a, b, skip, pool_mean's
   * means, scale_channels' s) then holds 16-bit values packed from the
   * start of its float-sized slot; weights, biases, LayerNorm and residual
   * parameters, mean/rstd and relu_sum's sums stay fp32.  Such a backend
   * has the forward entries only (every training entry is NULL), and
   * activations cross to and from the host through act_upload and
   * act_download (mdc_be_act_upload / mdc_be_act_download below). */
  int act_half;

  void (*free)(mdc_backend *be);

  /* y[n][cout] = b + x[n][cin] . w[cin][cout] */
  void (*conv1x1)(mdc_backend *be, const float *x, size_t n, int cin, const float *w,
                  const float *b, int cout, float *y);
  /* y[batch][h][w][cout], same size, zero padding around each image */
  void (*conv3x3)(mdc_backend *be, const float *x, int batch, int h, int w, int cin,
                  const float *wt, const float *b, int cout, float *y);
  /* y[batch][h][w][c], depthwise, zero padding around each image */
  void (*dwconv3x3)(mdc_backend *be, const float *x, int batch, int h, int w, int c,
                    const float *wt, const float *b, float *y);
  /* y[h/2][w/2][cout]; h and w even */
  void (*conv2x2s2)(mdc_backend *be, const float *x, int h, int w, int cin, const float *wt,
                    const float *b, int cout, float *y);
  /* Per-pixel LayerNorm over channels, biased variance:
   * y = (x - mean) / sqrt(var + eps) * g + b.  g and b are [c] when
   * gb_every == 0, else one row of c per gb_every pixels (pixel i uses
   * row i / gb_every, ceil(n / gb_every) rows: per-image parameters with
   * gb_every = h * w).
   * mean/rstd [n] may be NULL; when given they receive the statistics
   * (for the backward pass). */
  void (*layernorm)(mdc_backend *be, const float *x, size_t n, int c, const float *g,
                    const float *b, size_t gb_every, float eps, float *y, float *mean,
                    float *rstd);
  /* y[n][c] = x[n][0..c) * x[n][c..2c) */
  void (*simplegate)(mdc_backend *be, const float *x, size_t n, int c, float *y);
  /* Channel means for channel attention, per image.  window == 0 or
   * window >= both h and w: y[batch][c] is the mean over all pixels of
   * each image (global).  Otherwise y[batch][h][w][c] is the mean over a
   * window x window box placed at
   * (clamp(py - window/2, 0, h - window), clamp(px - window/2, 0, w - window))
   * per axis; along an axis where window >= size the box spans the axis. */
  void (*pool_mean)(mdc_backend *be, const float *x, int batch, int h, int w, int c,
                    int window, float *y);
  /* y[i][c] = x[i][c] * s[i / s_every][c] (ceil(n / s_every) rows);
   * s_every == 0: s[0][c] for every pixel (1: per pixel; h * w: per
   * image). */
  void (*scale_channels)(mdc_backend *be, const float *x, const float *s, size_t s_every,
                         size_t n, int c, float *y);
  /* y[n][c] = a[n][c] + s[c] * b[n][c]  (s NULL: plain add); y may be a or b */
  void (*add_scaled)(mdc_backend *be, const float *a, const float *b, const float *s,
                     size_t n, int c, float *y);
  /* y[2h][2w][c] = PixelShuffle2(x[h][w][4c]) + skip[2h][2w][c]; PyTorch's
   * channel order: x channel c*4 + dy*2 + dx feeds y(2i+dy, 2j+dx, c).
   * skip may be NULL. */
  void (*pixelshuffle_add)(mdc_backend *be, const float *x, int h, int w, int c,
                           const float *skip, float *y);

  /* Optional fused forms, to save memory traffic; NULL: callers compose
   * the entries above, with the same result up to rounding.
   * dwconv3x3_gate: y[batch][h][w][c] = simplegate(dwconv3x3(x)), x, wt
   *   and b of 2c channels (NAFBlock's conv2 and gate without writing
   *   the 2c intermediate).
   * add_scaled_layernorm: y = add_scaled(a, b, s) and ln = layernorm(y),
   *   arguments as there (a residual add and the LayerNorm after it in
   *   one pass); y may be a or b, ln is neither.  Callers go through
   *   mdc_be_add_scaled_layernorm (below), which composes when NULL. */
  void (*dwconv3x3_gate)(mdc_backend *be, const float *x, int batch, int h, int w, int c,
                         const float *wt, const float *b, float *y);
  void (*add_scaled_layernorm)(mdc_backend *be, const float *a, const float *b, const float *s,
                               size_t n, int c, const float *ln_g, const float *ln_b,
                               size_t gb_every, float eps, float *y, float *ln, float *mean,
                               float *rstd);

  /* One NAFBlock forward, y[h][w][c] from x[h][w][c] (y != x).  `scratch`
   * holds nafblock_scratch_size(be, c, h, w) bytes.  The scalar backend
   * composes the entries above; fast backends fuse. */
  size_t (*nafblock_scratch_size)(mdc_backend *be, int c, int h, int w, int window);
  void (*nafblock_forward)(mdc_backend *be, const mdc_nafblock_params *p, const float *x,
                           int h, int w, float eps, int window, float *y, void *scratch);

  /* ---------------------------------------------------- training ----
   * y[n][c] = x[n][c] * m[n]: MaskDCPT's feature masking (m is 0 or 1 per
   * pixel).  Its own backward: dx = dy * m. */
  void (*mask_pixels)(mdc_backend *be, const float *x, const float *m, size_t n, int c,
                      float *y);

  /* Backward passes.  Each takes the forward's inputs and dy (the gradient
   * of the loss with respect to the forward's output) and writes dx
   * (overwritten; NULL: not needed), and ACCUMULATES (+=) parameter
   * gradients into dw / db / dg (NULL: not needed).  Layouts as forward. */
  void (*conv1x1_backward)(mdc_backend *be, const float *x, size_t n, int cin, const float *w,
                           int cout, const float *dy, float *dx, float *dw, float *db);
  void (*conv3x3_backward)(mdc_backend *be, const float *x, int batch, int h, int w, int cin,
                           const float *wt, int cout, const float *dy, float *dx, float *dwt,
                           float *db);
  void (*dwconv3x3_backward)(mdc_backend *be, const float *x, int batch, int h, int w, int c,
                             const float *wt, const float *dy, float *dx, float *dwt,
                             float *db);
  void (*conv2x2s2_backward)(mdc_backend *be, const float *x, int h, int w, int cin,
                             const float *wt, int cout, const float *dy, float *dx, float *dwt,
                             float *db);
  /* mean/rstd as written by the forward; dg and db have g's shape (one
   * row per gb_every pixels), each row accumulating its own pixels. */
  void (*layernorm_backward)(mdc_backend *be, const float *x, size_t n, int c, const float *g,
                             size_t gb_every, const float *mean, const float *rstd,
                             const float *dy, float *dx, float *dg, float *db);
  /* x is the forward's [n][2c] input; dx [n][2c]. */
  void (*simplegate_backward)(mdc_backend *be, const float *x, size_t n, int c, const float *dy,
                              float *dx);
  /* dy has pool_mean's output shape ([batch][c] or [batch][h][w][c]);
   * dx [batch][h][w][c]. */
  void (*pool_mean_backward)(mdc_backend *be, int batch, int h, int w, int c, int window,
                             const float *dy, float *dx);
  /* y = x * s: dx = dy * s; ds (overwritten, s's shape) = sum dy * x over
   * each row's pixels. */
  void (*scale_channels_backward)(mdc_backend *be, const float *x, const float *s,
                                  size_t s_every, size_t n, int c, const float *dy, float *dx,
                                  float *ds);
  /* y = a + s * b: da = dy (the caller reuses dy), db = s * dy (overwritten),
   * ds += sum_n dy * b.  s NULL (plain add): db = dy. */
  void (*add_scaled_backward)(mdc_backend *be, const float *b, const float *s, size_t n, int c,
                              const float *dy, float *db, float *ds);
  /* y = PixelShuffle2(x) + skip: dx [h][w][4c] overwritten; dskip = dy. */
  void (*pixelshuffle_backward)(mdc_backend *be, int h, int w, int c, const float *dy,
                                float *dx);

  /* Losses over n values: returns the loss, writes its gradient times
   * `scale` into grad (NULL: not needed).  L1 is the mean absolute error:
   * grad = sign(pred - target) * scale / n, 0 where pred == target. */
  double (*l1_loss)(mdc_backend *be, const float *pred, const float *target, size_t n,
                    float scale, float *grad);
  /* One AdamW step over n parameters (decoupled weight decay wd; `step`
   * counts from 1, for the bias corrections; below 1 it is taken as 1). */
  void (*adamw_step)(mdc_backend *be, float *param, const float *grad, float *m, float *v,
                     size_t n, float lr, float beta1, float beta2, float eps, float wd,
                     long step);

  /* -------------------------------------------------- glue ----------
   * Small passes the network code needs between layers, so that nothing
   * but the classifier head reads activations on the host. */
  /* y[n] = alpha * x[n]; y may be x. */
  void (*scale)(mdc_backend *be, const float *x, size_t n, float alpha, float *y);
  /* y[c] += sum of max(x, 0) over an h x w window of pixels whose rows are
   * `stride` pixels apart (the classifier's pooled features). */
  void (*relu_sum)(mdc_backend *be, const float *x, int h, int w, size_t stride, int c,
                   float *y);
  /* y[n][c] = x[n][c] > 0 ? s[c] : 0 (ReLU's backward of a mean). */
  void (*relu_mask_scale)(mdc_backend *be, const float *x, const float *s, size_t n, int c,
                          float *y);
  /* NAFNet's PSNR loss of `batch` crops of n values each, one after
   * another: the sum over the crops of 10 log10(MSE of the crop + eps)
   * (NAFNet: eps 1e-8; a larger eps caps the weight of crops already
   * restored better than eps).  grad (NULL: not wanted) = scale * d loss
   * / d pred; on a device backend the host waits once for all crops. */
  double (*psnr_loss)(mdc_backend *be, const float *pred, const float *target, int batch,
                      size_t n, double eps, float scale, float *grad);
  /* sum of x[i]^2 (the gradient norm), accumulated in double or better. */
  double (*sum_squares)(mdc_backend *be, const float *x, size_t n);
  /* ema = decay * ema + (1 - decay) * param */
  void (*ema_update)(mdc_backend *be, float *ema, const float *param, size_t n, float decay);

  /* ------------------------------------------------ memory ----------
   * NULL on the CPU backends (see the helpers below).  mem_alloc returns
   * zeroed memory aligned to 256 bytes, NULL when out of memory. */
  void *(*mem_alloc)(mdc_backend *be, size_t bytes);
  void (*mem_free)(mdc_backend *be, void *p);
  void (*mem_upload)(mdc_backend *be, void *dst, const void *host, size_t bytes);
  void (*mem_download)(mdc_backend *be, void *host, const void *src, size_t bytes); /* waits */
  void (*mem_copy)(mdc_backend *be, void *dst, const void *src, size_t bytes);
  void (*mem_zero)(mdc_backend *be, void *p, size_t bytes);
  /* The device's free and total memory in bytes (0), or -1 when it cannot
   * say: the core sizes tiles from it. */
  int (*mem_info)(mdc_backend *be, size_t *free_bytes, size_t *total_bytes);
  /* Activation transfers that convert: count fp32 host values to the
   * device's activation storage and back (NULL when activations are fp32:
   * the helpers then copy bytes). */
  void (*act_upload)(mdc_backend *be, void *dst, const float *host, size_t count);
  void (*act_download)(mdc_backend *be, float *host, const void *src, size_t count); /* waits */
  /* Waits for the queued work.  0, or -1 with the first failure since the
   * backend was made (a kernel launch, a transfer, cuDNN) in msg; the
   * failure stays: a backend that failed once keeps failing. */
  int (*sync)(mdc_backend *be, char *msg, size_t msg_size);
};

/* CPU backends.  threads <= 0: one per online CPU.  Returns NULL when out
 * of memory.  mdc_backend_cpu_best picks AVX2+FMA when the CPU has it. */
mdc_backend *mdc_backend_cpu_scalar_new(int threads);
mdc_backend *mdc_backend_cpu_avx2_new(int threads); /* NULL if the CPU lacks AVX2/FMA */
mdc_backend *mdc_backend_cpu_best_new(int threads);
int mdc_cpu_has_avx2_fma(void);
/* GFLOP/s of `threads` threads running independent AVX2 FMAs at once (best
 * of reps): the machine's compute peak for benchmarks.  0 without AVX2. */
double mdc_cpu_fma_peak_gflops(int threads, int reps);

static inline void mdc_backend_free(mdc_backend *be) {
  if (be) be->free(be);
}

/* The CUDA backend's precision modes. */
enum {
  MDC_CUDA_TF32 = 0,        /* fp32 storage; products may use TF32 tensor cores, fp32 sums */
  MDC_CUDA_STRICT_FP32 = 1, /* no TF32 anywhere (for comparing with the CPU) */
  MDC_CUDA_FP16 = 2         /* activations stored as half, fp32 sums; inference only */
};
/* The CUDA backend, from the module libmaskdcpt-cuda.so (kernels/cuda),
 * loaded on first use: $MASKDCPT_CUDA_MODULE, else the installed one.
 * device: CUDA device index; precision: one of the modes above.  NULL with
 * the reason in msg (no module, no driver, no device, too old a device,
 * out of memory). */
mdc_backend *mdc_backend_cuda_new(int device, int precision, char *msg, size_t msg_size);
/* MASKDCPT_CUDA_STRICT set and not "0": callers ask for strict fp32. */
int mdc_cuda_strict_requested(void);
/* The precision restoring asks for: MDC_CUDA_STRICT_FP32 when
 * MASKDCPT_CUDA_STRICT is set, else MDC_CUDA_FP16 when MASKDCPT_CUDA_FP16
 * is set (not "0"), else MDC_CUDA_TF32.  Training never uses fp16. */
int mdc_cuda_precision_requested(void);
/* The module's entry point, resolved by mdc_backend_cuda_new. */
typedef mdc_backend *(*mdc_backend_cuda_new_fn)(int device, int precision, char *msg,
                                                size_t msg_size);
#define MDC_CUDA_MODULE_SYMBOL "mdc_cuda_module_backend_new"

/* ---------------------------------------------- memory helpers ----
 * The same calls for host (CPU) and device backends. */
#include <stdlib.h>
#include <string.h>

static inline int mdc_be_is_device(const mdc_backend *be) { return be->mem_alloc != NULL; }

static inline void *mdc_be_alloc(mdc_backend *be, size_t bytes) {
  if (be->mem_alloc) return be->mem_alloc(be, bytes ? bytes : 1);
  size_t rounded = bytes ? (bytes + 63) & ~(size_t)63 : 64;
  void *p = NULL;
  if (rounded < bytes || posix_memalign(&p, 64, rounded)) return NULL;
  memset(p, 0, rounded);
  return p;
}

static inline void mdc_be_free(mdc_backend *be, void *p) {
  if (!p) return;
  if (be->mem_free) be->mem_free(be, p);
  else free(p);
}

static inline void mdc_be_upload(mdc_backend *be, void *dst, const void *host, size_t bytes) {
  if (be->mem_upload) be->mem_upload(be, dst, host, bytes);
  else if (dst != host && bytes) memcpy(dst, host, bytes);
}

static inline void mdc_be_download(mdc_backend *be, void *host, const void *src, size_t bytes) {
  if (be->mem_download) be->mem_download(be, host, src, bytes);
  else if (host != src && bytes) memcpy(host, src, bytes);
}

static inline void mdc_be_copy(mdc_backend *be, void *dst, const void *src, size_t bytes) {
  if (be->mem_copy) be->mem_copy(be, dst, src, bytes);
  else if (dst != src && bytes) memmove(dst, src, bytes);
}

static inline void mdc_be_zero(mdc_backend *be, void *p, size_t bytes) {
  if (be->mem_zero) be->mem_zero(be, p, bytes);
  else if (bytes) memset(p, 0, bytes);
}

/* Bytes of one activation value (4, or 2 in the fp16 mode). */
static inline size_t mdc_be_act_size(const mdc_backend *be) { return be->act_half ? 2 : 4; }

/* count fp32 values to / from activation storage. */
static inline void mdc_be_act_upload(mdc_backend *be, void *dst, const float *host, size_t count) {
  if (be->act_upload) be->act_upload(be, dst, host, count);
  else mdc_be_upload(be, dst, host, count * sizeof(float));
}

static inline void mdc_be_act_download(mdc_backend *be, float *host, const void *src,
                                       size_t count) {
  if (be->act_download) be->act_download(be, host, src, count);
  else mdc_be_download(be, host, src, count * sizeof(float));
}

static inline int mdc_be_sync(mdc_backend *be, char *msg, size_t msg_size) {
  return be->sync ? be->sync(be, msg, msg_size) : 0;
}

/* add_scaled then layernorm of the sum: the backend's fused entry, or the
 * two plain entries where it has none. */
static inline void mdc_be_add_scaled_layernorm(mdc_backend *be, const float *a, const float *b,
                                               const float *s, size_t n, int c,
                                               const float *ln_g, const float *ln_b,
                                               size_t gb_every, float eps, float *y, float *ln,
                                               float *mean, float *rstd) {
  if (be->add_scaled_layernorm) {
    be->add_scaled_layernorm(be, a, b, s, n, c, ln_g, ln_b, gb_every, eps, y, ln, mean, rstd);
    return;
  }
  be->add_scaled(be, a, b, s, n, c, y);
  be->layernorm(be, y, n, c, ln_g, ln_b, gb_every, eps, ln, mean, rstd);
}

#endif
