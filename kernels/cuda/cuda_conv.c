/* cuda_conv.c - the dense convolutions: conv1x1 on cuBLAS, conv3x3 and
 * conv2x2s2 on cuDNN's legacy convolution API, forward and backward.
 *
 * Layouts (backend.h): tensors NHWC; conv1x1 w[cin][cout]; conv3x3 /
 * conv2x2s2 w[ky][kx][cin][cout].  Row-major y[n][cout] = x[n][cin] .
 * w[cin][cout] is, in cuBLAS's column-major view, Y^T = W^T . X^T with no
 * transposes.  cuDNN's NHWC filter format is [cout][ky][kx][cin], the
 * transpose of our [ky*kx*cin][cout] matrix: the weights are transposed
 * into the workspace with cublasSgeam before each forward / backward-data,
 * and the weight gradient is computed in cuDNN's layout and its transpose
 * added into ours.  Biases are rank-1 products with the context's vector
 * of ones, bias gradients a GEMV with it.
 *
 * TF32: only the large products may use it (ctx->gemm_compute, the
 * convolution descriptors' math type); bias terms, transposes and bias
 * gradients are plain fp32 in both modes.
 *
 * fp16 mode (ctx->half, forward only): activations are half; each call
 * converts its fp32 weights into the workspace as half (cuDNN's filter
 * transposed on the way), runs cuBLAS / cuDNN on half data with fp32
 * accumulation (CUBLAS_COMPUTE_32F, cuDNN's compute type FLOAT) and adds
 * the bias with a kernel of ours (cuda_half.cu).  Converting per call
 * costs a pass over weights that are small next to the activations, and
 * no cached copy can go stale when the caller changes its weights.
 *
 * Batches: conv3x3 takes `batch` images stored one after another and
 * hands them to cuDNN as one NHWC tensor with N = batch (cuDNN pads each
 * image on its own), so one call covers the batch.  conv2x2s2 needs no
 * batch (callers pass h = batch * image height: a 2x2 stride-2 cell never
 * crosses an image border when heights are even); it runs with N = 1.
 *
 * cuDNN descriptors and the chosen algorithm are cached per shape (batch
 * included); an algorithm that cuDNN refuses at run time is dropped for
 * that shape and the next candidate is tried.  MASKDCPT_CUDA_VERBOSE=1 prints the choices
 * to stderr. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

/* ------------------------------------------------------ cuBLAS helpers */

static cublasHandle_t blas(mdc_backend *be) {
  cublasHandle_t h = mdc_cuda_ctx_of(be)->cublas;
  /* alpha and beta are host values; another file may have left the
   * shared handle in device pointer mode. */
  cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST);
  return h;
}

/* C = op(A) op(B) + beta C, column-major, alpha 1, every matrix of `type`
 * (fp32, or half in the fp16 mode), summed as `compute` says. */
static int gemm_typed(mdc_backend *be, const char *what, cublasOperation_t ta,
                      cublasOperation_t tb, int m, int n, int k, const void *a, int lda,
                      const void *b, int ldb, float beta, void *c, int ldc, cudaDataType_t type,
                      cublasComputeType_t compute) {
  const float alpha = 1.0f;
  cublasStatus_t s = cublasGemmEx(blas(be), ta, tb, m, n, k, &alpha, a, type, lda, b, type, ldb,
                                  &beta, c, type, ldc, compute, CUBLAS_GEMM_DEFAULT);
  return mdc_cublas_check(be, s, what);
}

/* The fp32 product.  `tf32`: it may use the backend's TF32 compute type
 * (never in strict mode). */
static int gemm(mdc_backend *be, const char *what, cublasOperation_t ta, cublasOperation_t tb,
                int m, int n, int k, const float *a, int lda, const float *b, int ldb, float beta,
                float *c, int ldc, int tf32) {
  cublasComputeType_t compute = tf32 ? mdc_cuda_ctx_of(be)->gemm_compute : CUBLAS_COMPUTE_32F;
  return gemm_typed(be, what, ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc, CUDA_R_32F, compute);
}

/* Rows per cuBLAS call: at most MDC_CUDA_ONES (the ones vector) and few
 * enough that rows * channels stays far inside cuBLAS's int arguments. */
static size_t chunk_rows(int cin, int cout) {
  int wide = cin > cout ? cin : cout;
  size_t rows = ((size_t)1 << 30) / (size_t)(wide > 0 ? wide : 1);
  return rows < MDC_CUDA_ONES ? rows : MDC_CUDA_ONES;
}

/* y[i][o] = b[o] (beta 0) or y[i][o] += b[o] (beta 1) for n rows: the
 * rank-1 product b . ones^T, exact in fp32. */
static int bias_rows(mdc_backend *be, const char *what, const float *b, size_t n, int cout,
                     float beta, float *y) {
  const float *ones = mdc_cuda_ctx_of(be)->ones;
  size_t chunk = chunk_rows(1, cout);
  for (size_t r = 0; r < n; r += chunk) {
    int rows = (int)(n - r < chunk ? n - r : chunk);
    if (gemm(be, what, CUBLAS_OP_N, CUBLAS_OP_N, cout, rows, 1, b, cout, ones, 1, beta,
             y + r * cout, cout, 0))
      return -1;
  }
  return 0;
}

/* db[o] += sum_i dy[i][o]: dy^T . ones, a GEMV per chunk of rows. */
static int bias_grad(mdc_backend *be, const char *what, const float *dy, size_t n, int cout,
                     float *db) {
  const float *ones = mdc_cuda_ctx_of(be)->ones;
  const float one = 1.0f;
  size_t chunk = chunk_rows(1, cout);
  for (size_t r = 0; r < n; r += chunk) {
    int rows = (int)(n - r < chunk ? n - r : chunk);
    cublasStatus_t s =
        cublasSgemv(blas(be), CUBLAS_OP_N, cout, rows, &one, dy + r * cout, cout, ones, 1, &one,
                    db, 1);
    if (mdc_cublas_check(be, s, what)) return -1;
  }
  return 0;
}

/* ------------------------------------------------------------ conv1x1 */

/* fp32: the bias first, as the reference does, then the product added.
 * fp16: the weights converted to half in the workspace, the product, then
 * the bias (cuda_half.cu). */
static void cuda_conv1x1(mdc_backend *be, const float *x, size_t n, int cin, const float *w,
                         const float *b, int cout, float *y) {
  mdc_cuda_ctx *ctx = mdc_cuda_ctx_of(be);
  if (ctx->failed || n == 0 || cout <= 0) return;
  char what[96];
  snprintf(what, sizeof what, "conv1x1 %zux%d->%d", n, cin, cout);
  if (cin <= 0) {
    mdc_cuda_fail(be, "%s: no input channels", what);
    return;
  }
  const size_t es = ctx->half ? 2 : sizeof(float);
  const cudaDataType_t type = ctx->half ? CUDA_R_16F : CUDA_R_32F;
  const cublasComputeType_t compute = ctx->half ? CUBLAS_COMPUTE_32F : ctx->gemm_compute;
  const void *wm = w;
  if (ctx->half) {
    void *wh = mdc_cuda_workspace(be, (size_t)cin * cout * es);
    if (!wh || mdc_cuda_to_half(be, wh, w, (size_t)cin * cout, what)) return;
    wm = wh;
  }
  size_t chunk = chunk_rows(cin, cout);
  for (size_t r = 0; r < n; r += chunk) {
    int rows = (int)(n - r < chunk ? n - r : chunk);
    char *yr = (char *)y + r * cout * es;
    float beta = 0.0f;
    if (b && !ctx->half) {
      if (bias_rows(be, what, b, (size_t)rows, cout, 0.0f, (float *)yr)) return;
      beta = 1.0f;
    }
    if (gemm_typed(be, what, CUBLAS_OP_N, CUBLAS_OP_N, cout, rows, cin, wm, cout,
                   (const char *)x + r * cin * es, cin, beta, yr, cout, type, compute))
      return;
  }
  if (b && ctx->half) mdc_cuda_add_bias_half(be, y, b, n, cout, what);
}

static void cuda_conv1x1_backward(mdc_backend *be, const float *x, size_t n, int cin,
                                  const float *w, int cout, const float *dy, float *dx, float *dw,
                                  float *db) {
  if (mdc_cuda_ctx_of(be)->failed || n == 0 || cin <= 0 || cout <= 0) return;
  char what[112];
  snprintf(what, sizeof what, "conv1x1_backward %zux%d->%d", n, cin, cout);
  size_t chunk = chunk_rows(cin, cout);
  for (size_t r = 0; r < n; r += chunk) {
    int rows = (int)(n - r < chunk ? n - r : chunk);
    /* dX^T (cin x rows) = W (cin x cout) . dY^T: w is stored as W^T. */
    if (dx && gemm(be, what, CUBLAS_OP_T, CUBLAS_OP_N, cin, rows, cout, w, cout, dy + r * cout,
                   cout, 0.0f, dx + r * cin, cin, 1))
      return;
    /* dW^T (cout x cin) += dY^T (cout x rows) . X (rows x cin). */
    if (dw && gemm(be, what, CUBLAS_OP_N, CUBLAS_OP_T, cout, cin, rows, dy + r * cout, cout,
                   x + r * cin, cin, 1.0f, dw, cout, 1))
      return;
  }
  if (db) bias_grad(be, what, dy, n, cout, db);
}

/* ------------------------------------------------ cuDNN shape cache */

enum { DIR_FWD, DIR_BWD_DATA, DIR_BWD_FILTER, DIRS };
static const char *const dir_name[DIRS] = {"forward", "backward-data", "backward-filter"};

#define CAND_MAX 24
#define CACHE_SIZE 64
#define WS_CAP ((size_t)256 << 20) /* largest cuDNN workspace we accept */

/* The usable algorithms for one direction, best first; `pick` moves on
 * when one fails at run time. */
typedef struct conv_choice {
  int listed; /* 0: not yet; 1: cuDNN's ranking; 2: and the fallbacks */
  int count, pick;
  int algo[CAND_MAX];
  cudnnMathType_t math[CAND_MAX];
  size_t ws[CAND_MAX];
  const char *why; /* why the last candidate was dropped */
} conv_choice;

typedef struct conv_shape {
  int ks;                 /* 3: conv3x3 (pad 1, stride 1); 2: conv2x2s2 */
  int n, h, w, cin, cout; /* n: images in the batch (cuDNN's N) */
} conv_shape;

typedef struct conv_entry {
  int used;
  unsigned long long stamp; /* last use, for eviction */
  conv_shape s;
  cudnnTensorDescriptor_t xd, yd;
  cudnnFilterDescriptor_t wd;
  cudnnConvolutionDescriptor_t cd;
  conv_choice dir[DIRS];
} conv_entry;

struct mdc_cuda_conv_cache {
  conv_entry e[CACHE_SIZE];
  unsigned long long clock;
};

static int out_size(int ks, int v) { return ks == 3 ? v : v / 2; }

static int verbose(void) {
  const char *v = getenv("MASKDCPT_CUDA_VERBOSE");
  return v && *v && *v != '0';
}

static void entry_clear(conv_entry *e) {
  if (e->xd) cudnnDestroyTensorDescriptor(e->xd);
  if (e->yd) cudnnDestroyTensorDescriptor(e->yd);
  if (e->wd) cudnnDestroyFilterDescriptor(e->wd);
  if (e->cd) cudnnDestroyConvolutionDescriptor(e->cd);
  memset(e, 0, sizeof *e);
}

static int entry_make(mdc_backend *be, conv_entry *e, const conv_shape *s, const char *what) {
  const conv_shape c = *s;
  /* fp16 mode: half tensors and filter, fp32 compute (cuDNN's "pseudo
   * half" configuration) */
  cudnnDataType_t data = mdc_cuda_ctx_of(be)->half ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
  int pad = c.ks == 3 ? 1 : 0, stride = c.ks == 3 ? 1 : 2;
  int oh = out_size(c.ks, c.h), ow = out_size(c.ks, c.w);
  e->s = c;
  if (mdc_cudnn_check(be, cudnnCreateTensorDescriptor(&e->xd), what) ||
      mdc_cudnn_check(be, cudnnCreateTensorDescriptor(&e->yd), what) ||
      mdc_cudnn_check(be, cudnnCreateFilterDescriptor(&e->wd), what) ||
      mdc_cudnn_check(be, cudnnCreateConvolutionDescriptor(&e->cd), what))
    return -1;
  /* NHWC packed: cuDNN derives the strides (n: h w c, h: w c, w: c, c: 1),
   * which is our layout of a batch stored image after image. */
  if (mdc_cudnn_check(be, cudnnSetTensor4dDescriptor(e->xd, CUDNN_TENSOR_NHWC, data, c.n, c.cin,
                                                     c.h, c.w),
                      what) ||
      mdc_cudnn_check(be, cudnnSetTensor4dDescriptor(e->yd, CUDNN_TENSOR_NHWC, data, c.n, c.cout,
                                                     oh, ow),
                      what) ||
      mdc_cudnn_check(be, cudnnSetFilter4dDescriptor(e->wd, data, CUDNN_TENSOR_NHWC, c.cout, c.cin,
                                                     c.ks, c.ks),
                      what) ||
      mdc_cudnn_check(be, cudnnSetConvolution2dDescriptor(e->cd, pad, pad, stride, stride, 1, 1,
                                                          CUDNN_CROSS_CORRELATION,
                                                          CUDNN_DATA_FLOAT),
                      what))
    return -1;
  int dn, dc, dh, dw;
  if (mdc_cudnn_check(be, cudnnGetConvolution2dForwardOutputDim(e->cd, e->xd, e->wd, &dn, &dc, &dh,
                                                                &dw),
                      what))
    return -1;
  if (dn != c.n || dc != c.cout || dh != oh || dw != ow) {
    mdc_cuda_fail(be, "%s: cuDNN computes a %dx%dx%dx%d output, expected %dx%dx%dx%d", what, dn,
                  dh, dw, dc, c.n, oh, ow, c.cout);
    return -1;
  }
  for (int d = 0; d < DIRS; d++) e->dir[d].why = "none listed";
  return 0;
}

static int same_shape(const conv_shape *a, const conv_shape *b) {
  return a->ks == b->ks && a->n == b->n && a->h == b->h && a->w == b->w && a->cin == b->cin &&
         a->cout == b->cout;
}

/* The cached entry for a shape, made on a miss (evicting the least
 * recently used).  NULL after recording a failure. */
static conv_entry *entry_get(mdc_backend *be, const conv_shape *s, const char *what) {
  mdc_cuda_ctx *ctx = mdc_cuda_ctx_of(be);
  if (!ctx->conv_cache) {
    ctx->conv_cache = calloc(1, sizeof *ctx->conv_cache);
    if (!ctx->conv_cache) {
      mdc_cuda_fail(be, "%s: out of host memory", what);
      return NULL;
    }
  }
  struct mdc_cuda_conv_cache *cache = ctx->conv_cache;
  unsigned long long now = ++cache->clock;
  conv_entry *victim = &cache->e[0];
  for (int i = 0; i < CACHE_SIZE; i++) {
    conv_entry *e = &cache->e[i];
    if (e->used && same_shape(&e->s, s)) {
      e->stamp = now;
      return e;
    }
    if (e->stamp < victim->stamp) victim = e; /* unused entries have stamp 0 */
  }
  entry_clear(victim);
  if (entry_make(be, victim, s, what)) {
    entry_clear(victim);
    return NULL;
  }
  victim->used = 1;
  victim->stamp = now;
  return victim;
}

void mdc_cuda_conv_release(mdc_backend *be) {
  mdc_cuda_ctx *ctx = mdc_cuda_ctx_of(be);
  if (!ctx->conv_cache) return;
  for (int i = 0; i < CACHE_SIZE; i++) entry_clear(&ctx->conv_cache->e[i]);
  free(ctx->conv_cache);
  ctx->conv_cache = NULL;
}

/* ------------------------------------------------ algorithm choice */

typedef struct algo_hint {
  int algo;
  cudnnStatus_t status;
  cudnnMathType_t math;
} algo_hint;

/* cuDNN's heuristic ranking for one direction (count, 0 when it has none). */
static int heuristics(mdc_backend *be, conv_entry *e, int dir, algo_hint *out) {
  cudnnHandle_t h = mdc_cuda_ctx_of(be)->cudnn;
  int n = 0;
  cudnnStatus_t st;
  if (dir == DIR_FWD) {
    cudnnConvolutionFwdAlgoPerf_t p[CAND_MAX];
    st = cudnnGetConvolutionForwardAlgorithm_v7(h, e->xd, e->wd, e->cd, e->yd, CAND_MAX, &n, p);
    for (int i = 0; st == CUDNN_STATUS_SUCCESS && i < n; i++)
      out[i] = (algo_hint){(int)p[i].algo, p[i].status, p[i].mathType};
  } else if (dir == DIR_BWD_DATA) {
    cudnnConvolutionBwdDataAlgoPerf_t p[CAND_MAX];
    st = cudnnGetConvolutionBackwardDataAlgorithm_v7(h, e->wd, e->yd, e->cd, e->xd, CAND_MAX, &n,
                                                     p);
    for (int i = 0; st == CUDNN_STATUS_SUCCESS && i < n; i++)
      out[i] = (algo_hint){(int)p[i].algo, p[i].status, p[i].mathType};
  } else {
    cudnnConvolutionBwdFilterAlgoPerf_t p[CAND_MAX];
    st = cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, e->xd, e->yd, e->cd, e->wd, CAND_MAX, &n,
                                                       p);
    for (int i = 0; st == CUDNN_STATUS_SUCCESS && i < n; i++)
      out[i] = (algo_hint){(int)p[i].algo, p[i].status, p[i].mathType};
  }
  if (st != CUDNN_STATUS_SUCCESS) {
    /* Not fatal: every algorithm is still tried below. */
    if (verbose())
      fprintf(stderr, "maskdcpt cuda: cuDNN %s heuristics failed: %s\n", dir_name[dir],
              cudnnGetErrorString(st));
    return 0;
  }
  return n < 0 ? 0 : n > CAND_MAX ? CAND_MAX : n;
}

static cudnnStatus_t workspace_size(mdc_backend *be, conv_entry *e, int dir, int algo,
                                    size_t *bytes) {
  cudnnHandle_t h = mdc_cuda_ctx_of(be)->cudnn;
  *bytes = 0;
  if (dir == DIR_FWD)
    return cudnnGetConvolutionForwardWorkspaceSize(h, e->xd, e->wd, e->cd, e->yd,
                                                   (cudnnConvolutionFwdAlgo_t)algo, bytes);
  if (dir == DIR_BWD_DATA)
    return cudnnGetConvolutionBackwardDataWorkspaceSize(h, e->wd, e->yd, e->cd, e->xd,
                                                        (cudnnConvolutionBwdDataAlgo_t)algo, bytes);
  return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, e->xd, e->yd, e->cd, e->wd,
                                                        (cudnnConvolutionBwdFilterAlgo_t)algo,
                                                        bytes);
}

static int algo_count(int dir) {
  return dir == DIR_FWD        ? CUDNN_CONVOLUTION_FWD_ALGO_COUNT
         : dir == DIR_BWD_DATA ? CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT
                               : CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
}

/* FFT algorithms round more than the others: in strict mode (the one
 * compared with the CPU) they are the last resort. */
static int is_fft(int dir, int algo) {
  if (dir == DIR_FWD)
    return algo == CUDNN_CONVOLUTION_FWD_ALGO_FFT || algo == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING;
  if (dir == DIR_BWD_DATA)
    return algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT ||
           algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING;
  return algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT ||
         algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING;
}

/* Strict fp32: FMA kernels only (no tensor cores, so no TF32).  Otherwise
 * the heuristic's math type, but never a down-conversion below TF32. */
static cudnnMathType_t math_for(mdc_backend *be, cudnnMathType_t hinted) {
  if (mdc_cuda_ctx_of(be)->strict_fp32) return CUDNN_FMA_MATH;
  return hinted == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION ? CUDNN_DEFAULT_MATH : hinted;
}

/* Appends (algo, math) unless listed, unsupported or its workspace is too large. */
static void add_candidate(mdc_backend *be, conv_entry *e, int dir, int algo,
                          cudnnMathType_t math) {
  conv_choice *c = &e->dir[dir];
  for (int i = 0; i < c->count; i++)
    if (c->algo[i] == algo && c->math[i] == math) return;
  if (c->count == CAND_MAX) return;
  size_t bytes = 0;
  cudnnStatus_t st = cudnnSetConvolutionMathType(e->cd, math);
  if (st == CUDNN_STATUS_SUCCESS) st = workspace_size(be, e, dir, algo, &bytes);
  if (st != CUDNN_STATUS_SUCCESS) {
    c->why = cudnnGetErrorString(st);
    return;
  }
  if (bytes > WS_CAP) {
    c->why = "its workspace is over 256 MiB";
    return;
  }
  c->algo[c->count] = algo;
  c->math[c->count] = math;
  c->ws[c->count] = bytes;
  c->count++;
}

/* cuDNN's ranking, in order (FFT last in strict mode). */
static void add_ranked(mdc_backend *be, conv_entry *e, int dir) {
  int strict = mdc_cuda_ctx_of(be)->strict_fp32;
  algo_hint hint[CAND_MAX];
  cudnnSetConvolutionMathType(e->cd, strict ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH);
  int n = heuristics(be, e, dir, hint);
  for (int pass = 0; pass < (strict ? 2 : 1); pass++)
    for (int i = 0; i < n; i++)
      if (hint[i].status == CUDNN_STATUS_SUCCESS && (!strict || is_fft(dir, hint[i].algo) == pass))
        add_candidate(be, e, dir, hint[i].algo, math_for(be, hint[i].math));
}

/* Every algorithm the ranking left out, for when all ranked ones were
 * refused (listed only then: each workspace query takes time). */
static void add_fallbacks(mdc_backend *be, conv_entry *e, int dir) {
  int strict = mdc_cuda_ctx_of(be)->strict_fp32;
  for (int pass = 0; pass < (strict ? 2 : 1); pass++)
    for (int a = 0; a < algo_count(dir); a++)
      if (!strict || is_fft(dir, a) == pass)
        add_candidate(be, e, dir, a, math_for(be, CUDNN_DEFAULT_MATH));
}

static void show_candidates(const conv_choice *c, int dir, const char *what, const char *kind) {
  if (!verbose()) return;
  fprintf(stderr, "maskdcpt cuda: %s %s, %s candidates:", what, dir_name[dir], kind);
  for (int i = c->pick; i < c->count; i++)
    fprintf(stderr, " algo %d (math %d, %zu B)", c->algo[i], (int)c->math[i], c->ws[i]);
  fprintf(stderr, "%s\n", c->pick < c->count ? "" : " none");
}

/* The candidate to use now, or -1 after recording a failure. */
static int choose(mdc_backend *be, conv_entry *e, int dir, const char *what) {
  conv_choice *c = &e->dir[dir];
  if (c->listed == 0) {
    add_ranked(be, e, dir);
    c->listed = 1;
    show_candidates(c, dir, what, "ranked");
  }
  if (c->pick >= c->count && c->listed == 1) {
    add_fallbacks(be, e, dir);
    c->listed = 2;
    show_candidates(c, dir, what, "fallback");
  }
  if (c->pick < c->count) return c->pick;
  mdc_cuda_fail(be, "%s: cuDNN has no usable %s algorithm for NHWC %s (%d candidates tried; "
                "last reason: %s)",
                what, dir_name[dir], mdc_cuda_ctx_of(be)->half ? "fp16" : "fp32", c->count,
                c->why);
  return -1;
}

/* A run-time refusal of this algorithm for this case: try the next. */
static int retryable(cudnnStatus_t st) {
  return CUDNN_STATUS_CATEGORY(st) == CUDNN_STATUS_NOT_SUPPORTED ||
         st == CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER;
}

/* ------------------------------------------------ running cuDNN */

/* One direction of one convolution.  a, b: the inputs (forward: x;
 * backward-data: dy; backward-filter: x, dy); out: y or dx (NULL for
 * backward-filter); wt: our weights (forward, backward-data); dwt: our
 * weight gradient, accumulated (backward-filter). */
typedef struct conv_call {
  conv_entry *e;
  int dir;
  const char *what;
  const float *a, *b, *wt;
  float *out, *dwt;
  size_t na, nb, nout, nf; /* element counts */
} conv_call;

static size_t align256(size_t bytes) { return (bytes + 255) & ~(size_t)255; }

/* cuDNN's kernels may load 16 bytes at a time; tensors at odd offsets
 * into a block are staged through the (aligned) workspace. */
static int misaligned(const void *p) { return ((uintptr_t)p & 15) != 0; }

static cudnnStatus_t conv_exec(mdc_backend *be, const conv_entry *e, int dir, int algo,
                               const float *a, const float *b, float *filt, float *out, void *ws,
                               size_t ws_bytes) {
  cudnnHandle_t h = mdc_cuda_ctx_of(be)->cudnn;
  const float one = 1.0f, zero = 0.0f;
  if (dir == DIR_FWD)
    return cudnnConvolutionForward(h, &one, e->xd, a, e->wd, filt, e->cd,
                                   (cudnnConvolutionFwdAlgo_t)algo, ws, ws_bytes, &zero, e->yd,
                                   out);
  if (dir == DIR_BWD_DATA)
    return cudnnConvolutionBackwardData(h, &one, e->wd, filt, e->yd, a, e->cd,
                                        (cudnnConvolutionBwdDataAlgo_t)algo, ws, ws_bytes, &zero,
                                        e->xd, out);
  return cudnnConvolutionBackwardFilter(h, &one, e->xd, a, e->yd, b, e->cd,
                                        (cudnnConvolutionBwdFilterAlgo_t)algo, ws, ws_bytes, &zero,
                                        e->wd, filt);
}

/* filt[o][r] = wt[r][o], r = (ky, kx, cin): our [rows][cout] matrix to
 * cuDNN's [cout][rows].  Column-major: wt is cout x rows, filt rows x cout.
 * B = wt with beta 0 keeps cuBLAS from reading the uninitialised output. */
static int to_cudnn_filter(mdc_backend *be, const conv_call *k, float *filt) {
  const conv_shape *s = &k->e->s;
  int rows = s->ks * s->ks * s->cin;
  const float one = 1.0f, zero = 0.0f;
  cublasStatus_t st = cublasSgeam(blas(be), CUBLAS_OP_T, CUBLAS_OP_T, rows, s->cout, &one, k->wt,
                                  s->cout, &zero, k->wt, s->cout, filt, rows);
  return mdc_cublas_check(be, st, k->what);
}

/* dwt[r][o] += filt[o][r]; C == B in place is allowed (B not transposed). */
static int add_from_cudnn_filter(mdc_backend *be, const conv_call *k, const float *filt) {
  const conv_shape *s = &k->e->s;
  int rows = s->ks * s->ks * s->cin;
  const float one = 1.0f;
  cublasStatus_t st = cublasSgeam(blas(be), CUBLAS_OP_T, CUBLAS_OP_N, s->cout, rows, &one, filt,
                                  rows, &one, k->dwt, s->cout, k->dwt, s->cout);
  return mdc_cublas_check(be, st, k->what);
}

static int copy_async(mdc_backend *be, void *dst, const void *src, size_t bytes, const char *what) {
  return mdc_cuda_check(be, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice,
                                            mdc_cuda_ctx_of(be)->stream),
                        what);
}

/* Workspace layout: [cuDNN-layout filter][staged a][staged b][staged out][cuDNN's].
 * Sizes in activation values (half in the fp16 mode; the filter too). */
static int conv_run(mdc_backend *be, const conv_call *k) {
  mdc_cuda_ctx *ctx = mdc_cuda_ctx_of(be);
  conv_choice *c = &k->e->dir[k->dir];
  const size_t es = ctx->half ? 2 : sizeof(float);
  int stage_a = misaligned(k->a), stage_b = k->b && misaligned(k->b);
  int stage_out = k->out && misaligned(k->out);
  size_t off_a = align256(k->nf * es);
  size_t off_b = off_a + (stage_a ? align256(k->na * es) : 0);
  size_t off_out = off_b + (stage_b ? align256(k->nb * es) : 0);
  size_t off_ws = off_out + (stage_out ? align256(k->nout * es) : 0);
  for (;;) {
    int i = choose(be, k->e, k->dir, k->what);
    if (i < 0) return -1;
    char *base = mdc_cuda_workspace_try(be, off_ws + c->ws[i]);
    if (!base) {
      if (ctx->failed) return -1;
      c->why = "out of device memory for its workspace";
      c->pick++;
      continue;
    }
    float *filt = (float *)base;
    const float *a = k->a, *b = k->b;
    float *out = k->out;
    if (k->dir != DIR_BWD_FILTER) {
      const conv_shape *s = &k->e->s;
      if (ctx->half ? mdc_cuda_filter_to_half(be, filt, k->wt, (size_t)s->ks * s->ks * s->cin,
                                              s->cout, k->what)
                    : to_cudnn_filter(be, k, filt))
        return -1;
    }
    if (stage_a) {
      if (copy_async(be, base + off_a, a, k->na * es, k->what)) return -1;
      a = (const float *)(base + off_a);
    }
    if (stage_b) {
      if (copy_async(be, base + off_b, b, k->nb * es, k->what)) return -1;
      b = (const float *)(base + off_b);
    }
    if (stage_out) out = (float *)(base + off_out);
    cudnnStatus_t st = cudnnSetConvolutionMathType(k->e->cd, c->math[i]);
    if (st == CUDNN_STATUS_SUCCESS)
      st = conv_exec(be, k->e, k->dir, c->algo[i], a, b, filt, out, base + off_ws, c->ws[i]);
    if (retryable(st)) {
      c->why = cudnnGetErrorString(st);
      if (verbose())
        fprintf(stderr, "maskdcpt cuda: %s %s: algo %d refused (%s), trying the next\n", k->what,
                dir_name[k->dir], c->algo[i], c->why);
      c->pick++;
      continue;
    }
    if (st != CUDNN_STATUS_SUCCESS) {
      char what[192];
      snprintf(what, sizeof what, "%s %s (algo %d, math %d)", k->what, dir_name[k->dir],
               c->algo[i], (int)c->math[i]);
      mdc_cudnn_check(be, st, what);
      return -1;
    }
    if (stage_out && copy_async(be, k->out, out, k->nout * es, k->what)) return -1;
    if (k->dir == DIR_BWD_FILTER) return add_from_cudnn_filter(be, k, filt);
    return 0;
  }
}

/* cuDNN takes int sizes and offsets: whole tensors, the batch included. */
static int check_limits(mdc_backend *be, const conv_shape *s, const char *what) {
  size_t nx = (size_t)s->n * s->h * s->w * s->cin;
  size_t ny = (size_t)s->n * out_size(s->ks, s->h) * out_size(s->ks, s->w) * s->cout;
  size_t nf = (size_t)s->ks * s->ks * s->cin * s->cout;
  size_t big = nx > ny ? nx : ny;
  if (nf > big) big = nf;
  if (big <= INT_MAX) return 0;
  mdc_cuda_fail(be, "%s: a tensor of %zu elements; cuDNN takes at most 2^31 - 1 (use smaller tiles)",
                what, big);
  return -1;
}

/* ------------------------------------------------ conv3x3 / conv2x2s2 */

/* "conv3x3 64x48x16->32", with "4x" in front for a batch of 4. */
static void shape_name(char *what, size_t size, const char *name, const char *suffix, int batch,
                       int h, int w, int cin, int cout) {
  if (batch == 1)
    snprintf(what, size, "%s%s %dx%dx%d->%d", name, suffix, h, w, cin, cout);
  else
    snprintf(what, size, "%s%s %dx%dx%dx%d->%d", name, suffix, batch, h, w, cin, cout);
}

static void conv_forward(mdc_backend *be, const char *name, int ks, const float *x, int batch,
                         int h, int w, int cin, const float *wt, const float *b, int cout,
                         float *y) {
  if (mdc_cuda_ctx_of(be)->failed || batch <= 0 || h <= 0 || w <= 0 || cout <= 0) return;
  char what[128];
  shape_name(what, sizeof what, name, "", batch, h, w, cin, cout);
  int oh = out_size(ks, h), ow = out_size(ks, w);
  if (oh == 0 || ow == 0) return;
  if (cin <= 0) {
    mdc_cuda_fail(be, "%s: no input channels", what);
    return;
  }
  conv_shape s = {ks, batch, h, w, cin, cout};
  if (check_limits(be, &s, what)) return;
  conv_entry *e = entry_get(be, &s, what);
  if (!e) return;
  size_t npix = (size_t)batch * oh * ow; /* output pixels of the whole batch */
  conv_call k = {.e = e, .dir = DIR_FWD, .what = what, .a = x, .wt = wt, .out = y,
                 .na = (size_t)batch * h * w * cin, .nout = npix * cout,
                 .nf = (size_t)ks * ks * cin * cout};
  if (conv_run(be, &k) || !b) return;
  if (mdc_cuda_ctx_of(be)->half) mdc_cuda_add_bias_half(be, y, b, npix, cout, what);
  else bias_rows(be, what, b, npix, cout, 1.0f, y);
}

static void conv_backward(mdc_backend *be, const char *name, int ks, const float *x, int batch,
                          int h, int w, int cin, const float *wt, int cout, const float *dy,
                          float *dx, float *dwt, float *db) {
  mdc_cuda_ctx *ctx = mdc_cuda_ctx_of(be);
  if (ctx->failed || batch <= 0 || h <= 0 || w <= 0 || cin <= 0 || cout <= 0) return;
  char what[144];
  shape_name(what, sizeof what, name, "_backward", batch, h, w, cin, cout);
  int oh = out_size(ks, h), ow = out_size(ks, w);
  size_t npix = (size_t)batch * oh * ow; /* output pixels of the whole batch */
  size_t nx = (size_t)batch * h * w * cin, ny = npix * cout;
  if (oh == 0 || ow == 0) { /* no outputs: no gradient reaches x */
    if (dx)
      mdc_cuda_check(be, cudaMemsetAsync(dx, 0, nx * sizeof(float), ctx->stream), what);
    return;
  }
  conv_shape s = {ks, batch, h, w, cin, cout};
  if (check_limits(be, &s, what)) return;
  conv_entry *e = entry_get(be, &s, what);
  if (!e) return;
  size_t nf = (size_t)ks * ks * cin * cout;
  if (dx) {
    conv_call k = {.e = e, .dir = DIR_BWD_DATA, .what = what, .a = dy, .wt = wt, .out = dx,
                   .na = ny, .nout = nx, .nf = nf};
    if (conv_run(be, &k)) return;
  }
  if (dwt) {
    conv_call k = {.e = e, .dir = DIR_BWD_FILTER, .what = what, .a = x, .b = dy, .dwt = dwt,
                   .na = nx, .nb = ny, .nf = nf};
    if (conv_run(be, &k)) return;
  }
  if (db) bias_grad(be, what, dy, npix, cout, db);
}

static void cuda_conv3x3(mdc_backend *be, const float *x, int batch, int h, int w, int cin,
                         const float *wt, const float *b, int cout, float *y) {
  conv_forward(be, "conv3x3", 3, x, batch, h, w, cin, wt, b, cout, y);
}

/* h may be batch * image height: one N = 1 tensor (see the top). */
static void cuda_conv2x2s2(mdc_backend *be, const float *x, int h, int w, int cin,
                           const float *wt, const float *b, int cout, float *y) {
  conv_forward(be, "conv2x2s2", 2, x, 1, h, w, cin, wt, b, cout, y);
}

static void cuda_conv3x3_backward(mdc_backend *be, const float *x, int batch, int h, int w,
                                  int cin, const float *wt, int cout, const float *dy, float *dx,
                                  float *dwt, float *db) {
  conv_backward(be, "conv3x3", 3, x, batch, h, w, cin, wt, cout, dy, dx, dwt, db);
}

static void cuda_conv2x2s2_backward(mdc_backend *be, const float *x, int h, int w, int cin,
                                    const float *wt, int cout, const float *dy, float *dx,
                                    float *dwt, float *db) {
  conv_backward(be, "conv2x2s2", 2, x, 1, h, w, cin, wt, cout, dy, dx, dwt, db);
}

void mdc_cuda_conv_init(mdc_backend *be) {
  be->conv1x1 = cuda_conv1x1;
  be->conv3x3 = cuda_conv3x3;
  be->conv2x2s2 = cuda_conv2x2s2;
  be->conv1x1_backward = cuda_conv1x1_backward;
  be->conv3x3_backward = cuda_conv3x3_backward;
  be->conv2x2s2_backward = cuda_conv2x2s2_backward;
}
