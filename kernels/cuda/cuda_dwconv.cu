/* cuda_dwconv.cu - the depthwise 3x3 convolution of the CUDA backend
 * (NAFBlock's conv2), forward and backward.  Semantics: dwconv3x3 in
 * kernels/cpu/scalar.c, dwconv3x3_backward in scalar_backward.c; weights
 * w[3][3][c], zero padding 1 around each image, NHWC; a batch of images
 * is stored one after another and every kernel covers the whole batch
 * (the image index is part of the work item, so padding never mixes two
 * images).
 *
 * Threads map to channels (innermost, so a warp's loads are coalesced),
 * and each thread walks a short column of output rows keeping the 3x3
 * input neighbourhood in registers: every step loads one new row of 3
 * values instead of 9. */
#include <stdint.h>

#include "cuda_kernels.cuh"

#define FWD_ROWS 8     /* output rows per thread, forward / dx */
#define WG_ROWS 16     /* output rows per work item, weight gradients */
#define WG_PIX 8       /* work items per block at once (blockDim.y) */
#define WG_TARGET_BLOCKS 1024

/* ------------------------------------------------------ device helpers */

template <typename V> static __device__ __forceinline__ V vzero();
template <> __device__ __forceinline__ float vzero<float>() { return 0.0f; }
template <> __device__ __forceinline__ float4 vzero<float4>() {
  return make_float4(0.0f, 0.0f, 0.0f, 0.0f);
}

static __device__ __forceinline__ float vmul(float a, float b) { return a * b; }
static __device__ __forceinline__ float4 vmul(float4 a, float4 b) {
  return make_float4(a.x * b.x, a.y * b.y, a.z * b.z, a.w * b.w);
}

/* acc + a * b */
static __device__ __forceinline__ float vfma(float a, float b, float acc) {
  return fmaf(a, b, acc);
}
static __device__ __forceinline__ float4 vfma(float4 a, float4 b, float4 acc) {
  return make_float4(fmaf(a.x, b.x, acc.x), fmaf(a.y, b.y, acc.y), fmaf(a.z, b.z, acc.z),
                     fmaf(a.w, b.w, acc.w));
}

/* in(row, px - 1 .. px + 1, k) in fp32, zero outside the image; cq
 * channels of the storage type V, P its fp32 counterpart */
template <typename V, typename P = typename act_traits<V>::param>
static __device__ __forceinline__ void load_row3(const V *in, int row, int px, int h, int w,
                                                 unsigned cq, unsigned k, P out[3]) {
#pragma unroll
  for (int d = 0; d < 3; d++) {
    int col = px + d - 1;
    out[d] = row >= 0 && row < h && col >= 0 && col < w
                 ? ldf(in[((size_t)row * w + col) * cq + k])
                 : vzero<P>();
  }
}

/* ----------------------------------------------------------- forward */

/* out(py, px, k) = b[k] + sum over taps t = ty * 3 + tx of
 * in(py + ty - 1, px + tx - 1, k) wt[t][k], taps in order as the CPU.
 * flip: use wt[8 - t] (the transposed kernel: dx from dy).  One thread
 * per (image, chunk of FWD_ROWS rows, px, k), k fastest. */
template <typename V, typename P = typename act_traits<V>::param>
static __global__ void dwconv3x3_kernel(const V *in_all, int batch, int h, int w, unsigned cq,
                                        const P *wt, const P *b, int flip, V *out_all) {
  const size_t nchunks = ((size_t)h + FWD_ROWS - 1) / FWD_ROWS;
  const size_t image = (size_t)h * w * cq;
  GRID_STRIDE(t, (size_t)batch * nchunks * w * cq) {
    unsigned k = (unsigned)(t % cq);
    size_t r = t / cq, rows = r / (unsigned)w, img = rows / nchunks;
    int px = (int)(r % (unsigned)w), r0 = (int)(rows - img * nchunks) * FWD_ROWS;
    int r1 = r0 + FWD_ROWS < h ? r0 + FWD_ROWS : h;
    const V *in = in_all + img * image;
    V *out = out_all + img * image;
    P wr[9];
#pragma unroll
    for (int tap = 0; tap < 9; tap++) wr[tap] = wt[(size_t)(flip ? 8 - tap : tap) * cq + k];
    const P bias = b ? b[k] : vzero<P>();
    P top[3], mid[3], bot[3];
    load_row3(in, r0 - 1, px, h, w, cq, k, top);
    load_row3(in, r0, px, h, w, cq, k, mid);
    for (int py = r0; py < r1; py++) {
      load_row3(in, py + 1, px, h, w, cq, k, bot);
      P acc = bias;
#pragma unroll
      for (int d = 0; d < 3; d++) acc = vfma(top[d], wr[d], acc);
#pragma unroll
      for (int d = 0; d < 3; d++) acc = vfma(mid[d], wr[3 + d], acc);
#pragma unroll
      for (int d = 0; d < 3; d++) acc = vfma(bot[d], wr[6 + d], acc);
      stf(out + ((size_t)py * w + px) * cq + k, acc);
#pragma unroll
      for (int d = 0; d < 3; d++) {
        top[d] = mid[d];
        mid[d] = bot[d];
      }
    }
  }
}

/* in and out: activations; wt and b: fp32 parameters (16-byte aligned
 * for the four-wide path). */
static void dwconv_launch(mdc_backend *be, mdc_cuda_ctx *ctx, const char *what, const float *in,
                          int batch, int h, int w, int c, const float *wt, const float *b,
                          int flip, float *out) {
  size_t items = (size_t)batch * (((size_t)h + FWD_ROWS - 1) / FWD_ROWS) * w;
  bool vec = c % 4 == 0 && aligned16(wt) && aligned16(b);
  with_act_type(ctx, vec, {in, out}, [&](auto v) {
    typedef decltype(v) V;
    typedef typename act_traits<V>::param P;
    unsigned cv = (unsigned)c / act_traits<V>::width;
    dwconv3x3_kernel<V><<<mdc_cuda_blocks(items * cv, THREADS), THREADS, 0, ctx->stream>>>(
        (const V *)in, batch, h, w, cv, (const P *)wt, (const P *)b, flip, (V *)out);
  });
  mdc_cuda_check_launch(be, what);
}

static void cuda_dwconv3x3(mdc_backend *be, const float *x, int batch, int h, int w, int c,
                           const float *wt, const float *b, float *y) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx || batch <= 0 || h <= 0 || w <= 0 || c <= 0) return;
  dwconv_launch(be, ctx, "dwconv3x3", x, batch, h, w, c, wt, b, 0, y);
}

/* dwconv3x3 of 2c channels then SimpleGate: out(py, px, k) = conv(k) *
 * conv(k + c) for k < c, each conv as dwconv3x3_kernel's (same taps in
 * the same order, so the same bits as the two entries one after the
 * other).  cq: output channels in units of V; the input has 2 cq. */
template <typename V, typename P = typename act_traits<V>::param>
static __global__ void dwconv3x3_gate_kernel(const V *in_all, int batch, int h, int w,
                                             unsigned cq, const P *wt, const P *b,
                                             V *out_all) {
  const size_t nchunks = ((size_t)h + FWD_ROWS - 1) / FWD_ROWS;
  const unsigned cin = 2 * cq;
  GRID_STRIDE(t, (size_t)batch * nchunks * w * cq) {
    unsigned k = (unsigned)(t % cq);
    size_t r = t / cq, rows = r / (unsigned)w, img = rows / nchunks;
    int px = (int)(r % (unsigned)w), r0 = (int)(rows - img * nchunks) * FWD_ROWS;
    int r1 = r0 + FWD_ROWS < h ? r0 + FWD_ROWS : h;
    const V *in = in_all + img * h * w * cin;
    V *out = out_all + img * h * w * cq;
    P wa[9], wb[9];
#pragma unroll
    for (int tap = 0; tap < 9; tap++) {
      wa[tap] = wt[(size_t)tap * cin + k];
      wb[tap] = wt[(size_t)tap * cin + cq + k];
    }
    const P ba = b ? b[k] : vzero<P>(), bb = b ? b[cq + k] : vzero<P>();
    P at[3], am[3], ab[3], bt[3], bm[3], bbot[3];
    load_row3(in, r0 - 1, px, h, w, cin, k, at);
    load_row3(in, r0, px, h, w, cin, k, am);
    load_row3(in, r0 - 1, px, h, w, cin, cq + k, bt);
    load_row3(in, r0, px, h, w, cin, cq + k, bm);
    for (int py = r0; py < r1; py++) {
      load_row3(in, py + 1, px, h, w, cin, k, ab);
      load_row3(in, py + 1, px, h, w, cin, cq + k, bbot);
      P acc_a = ba, acc_b = bb;
#pragma unroll
      for (int d = 0; d < 3; d++)
        acc_a = vfma(at[d], wa[d], acc_a), acc_b = vfma(bt[d], wb[d], acc_b);
#pragma unroll
      for (int d = 0; d < 3; d++)
        acc_a = vfma(am[d], wa[3 + d], acc_a), acc_b = vfma(bm[d], wb[3 + d], acc_b);
#pragma unroll
      for (int d = 0; d < 3; d++)
        acc_a = vfma(ab[d], wa[6 + d], acc_a), acc_b = vfma(bbot[d], wb[6 + d], acc_b);
      stf(out + ((size_t)py * w + px) * cq + k, vmul(acc_a, acc_b));
#pragma unroll
      for (int d = 0; d < 3; d++) {
        at[d] = am[d], am[d] = ab[d];
        bt[d] = bm[d], bm[d] = bbot[d];
      }
    }
  }
}

static void cuda_dwconv3x3_gate(mdc_backend *be, const float *x, int batch, int h, int w, int c,
                                const float *wt, const float *b, float *y) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx || batch <= 0 || h <= 0 || w <= 0 || c <= 0) return;
  size_t items = (size_t)batch * (((size_t)h + FWD_ROWS - 1) / FWD_ROWS) * w;
  bool vec = c % 4 == 0 && aligned16(wt) && aligned16(b);
  with_act_type(ctx, vec, {x, y}, [&](auto v) {
    typedef decltype(v) V;
    typedef typename act_traits<V>::param P;
    unsigned cv = (unsigned)c / act_traits<V>::width;
    dwconv3x3_gate_kernel<V><<<mdc_cuda_blocks(items * cv, THREADS), THREADS, 0, ctx->stream>>>(
        (const V *)x, batch, h, w, cv, (const P *)wt, (const P *)b, (V *)y);
  });
  mdc_cuda_check_launch(be, "dwconv3x3_gate");
}

/* ---------------------------------------------------------- backward */

/* dwt[t][k] += sum over outputs p of every image of x(p + tap offset, k)
 * dy(p, k), db[k] += sum dy(p, k).  Block (32, WG_PIX): blockIdx.x picks
 * 32 channels (strided); a work item is a column of WG_ROWS output rows at
 * one px of one image, items strided over (blockIdx.y, threadIdx.y).  Per
 * item the sums are float (at most WG_ROWS terms), then double per thread
 * and block; one float atomicAdd per block, tap and channel (their order
 * varies: dwt and db vary in the last bits from run to run). */
static __global__ void dwconv3x3_wgrad_kernel(const float *x_all, const float *dy_all, int batch,
                                              int h, int w, int c, float *dwt, float *db) {
  __shared__ double sh[10][WG_PIX][32];
  const size_t nchunks = ((size_t)h + WG_ROWS - 1) / WG_ROWS;
  const size_t items = (size_t)batch * nchunks * w, image = (size_t)h * w * c;
  /* channel tiles strided too, so any grid covers every channel */
  for (int k0 = blockIdx.x * 32; k0 < c; k0 += gridDim.x * 32) {
    const int k = k0 + threadIdx.x;
    double acc[10];
#pragma unroll
    for (int q = 0; q < 10; q++) acc[q] = 0.0;
    if (k < c)
      for (size_t it = (size_t)blockIdx.y * WG_PIX + threadIdx.y; it < items;
           it += (size_t)gridDim.y * WG_PIX) {
        size_t rows = it / (unsigned)w, img = rows / nchunks;
        int px = (int)(it % (unsigned)w), r0 = (int)(rows - img * nchunks) * WG_ROWS;
        int r1 = r0 + WG_ROWS < h ? r0 + WG_ROWS : h;
        const float *x = x_all + img * image, *dy = dy_all + img * image;
        float a[10], top[3], mid[3], bot[3];
#pragma unroll
        for (int q = 0; q < 10; q++) a[q] = 0.0f;
        load_row3(x, r0 - 1, px, h, w, (unsigned)c, (unsigned)k, top);
        load_row3(x, r0, px, h, w, (unsigned)c, (unsigned)k, mid);
        for (int py = r0; py < r1; py++) {
          load_row3(x, py + 1, px, h, w, (unsigned)c, (unsigned)k, bot);
          float g = dy[((size_t)py * w + px) * c + k];
#pragma unroll
          for (int d = 0; d < 3; d++) {
            a[d] = fmaf(top[d], g, a[d]);
            a[3 + d] = fmaf(mid[d], g, a[3 + d]);
            a[6 + d] = fmaf(bot[d], g, a[6 + d]);
            top[d] = mid[d];
            mid[d] = bot[d];
          }
          a[9] += g;
        }
#pragma unroll
        for (int q = 0; q < 10; q++) acc[q] += a[q];
      }
#pragma unroll
    for (int q = 0; q < 10; q++) sh[q][threadIdx.y][threadIdx.x] = acc[q];
    __syncthreads();
    for (int o = threadIdx.y * 32 + threadIdx.x; o < 10 * 32; o += WG_PIX * 32) {
      int q = o / 32, lane = o % 32, kk = k0 + lane;
      if (kk >= c) continue;
      double s = 0.0;
#pragma unroll
      for (int r = 0; r < WG_PIX; r++) s += sh[q][r][lane];
      if (q < 9) {
        if (dwt) atomicAdd(dwt + (size_t)q * c + kk, (float)s);
      } else if (db) {
        atomicAdd(db + kk, (float)s);
      }
    }
    __syncthreads(); /* sh is rewritten by the next tile */
  }
}

static void cuda_dwconv3x3_backward(mdc_backend *be, const float *x, int batch, int h, int w,
                                    int c, const float *wt, const float *dy, float *dx,
                                    float *dwt, float *db) {
  mdc_cuda_ctx *ctx = live_ctx(be);
  if (!ctx || batch <= 0 || h <= 0 || w <= 0 || c <= 0) return;
  if (dwt || db) { /* first: they read x and dy, which dx might overwrite */
    unsigned gx = (unsigned)((c + 31) / 32);
    size_t items = (size_t)batch * (((size_t)h + WG_ROWS - 1) / WG_ROWS) * w;
    size_t gy = (items + WG_PIX - 1) / WG_PIX, cap = WG_TARGET_BLOCKS / gx;
    if (cap < 1) cap = 1;
    if (gy > cap) gy = cap;
    if (gy > 65535) gy = 65535;
    dwconv3x3_wgrad_kernel<<<dim3(gx, (unsigned)gy), dim3(32, WG_PIX), 0, ctx->stream>>>(
        x, dy, batch, h, w, c, dwt, db);
    if (mdc_cuda_check_launch(be, "dwconv3x3_backward (dwt, db)")) return;
  }
  /* dx(s) = sum over taps t of dy(s - tap offset) wt[t]: the forward
   * correlation with the kernel flipped, no bias. */
  if (dx)
    dwconv_launch(be, ctx, "dwconv3x3_backward (dx)", dy, batch, h, w, c, wt,
                  (const float *)NULL, 1, dx);
}

/* --------------------------------------------------------------- init */

extern "C" void mdc_cuda_dwconv_init(mdc_backend *be) {
  be->dwconv3x3 = cuda_dwconv3x3;
  be->dwconv3x3_gate = cuda_dwconv3x3_gate;
  be->dwconv3x3_backward = cuda_dwconv3x3_backward;
}
