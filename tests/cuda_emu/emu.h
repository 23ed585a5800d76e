/* emu.h - a CPU emulation of the part of CUDA that the CUDA backend's own
 * kernels use (kernels/cuda/cuda_elementwise.cu, cuda_reduce.cu,
 * cuda_dwconv.cu), so that tests/test_cuda_ops.c checks them on machines
 * with no GPU and no CUDA toolkit (CI).
 *
 * How: translate.py rewrites every launch `k<<<grid, block, smem,
 * stream>>>(args)` into emu_launch(__FILE__, __LINE__, k, emu_cfg(grid,
 * block, smem, stream), args) and makes cuda_internal.h include this file
 * instead of the CUDA, cuBLAS and cuDNN headers; the host C++ compiler then
 * builds the .cu files as C++17.  emu_launch runs the blocks of the grid
 * one after the other.  Within a block every GPU thread is a coroutine
 * (ucontext) with its own stack; __syncthreads, __syncwarp and the warp
 * shuffles are barriers where emu.cc's scheduler switches threads.  Device
 * memory is host memory (emu.cc's backend).
 *
 * What it checks: each thread's arithmetic and indexing; that shuffles
 * read the right lane; that every thread of a block reaches the same
 * barriers; that launch configurations are within CUDA's limits (else
 * cudaErrorInvalidConfiguration, which mdc_cuda_check_launch reports).  It
 * aborts with a message on a __syncthreads that some threads of the block
 * skipped by exiting, a shuffle or __syncwarp with exited lanes, and a
 * deadlock.
 *
 * What it does NOT emulate:
 *  - concurrency: the threads of a block run one at a time, in thread
 *    order between barriers, so data races and missing atomics are NOT
 *    found (atomics are plain read-modify-writes), and a missing
 *    __syncthreads only when a thread reads what a later thread writes;
 *  - the memory model: every write is seen at once by every later read;
 *    no caches, fences, alignment faults (a float4 load from an unaligned
 *    address works here) or bounds checks;
 *  - shared memory: __shared__ variables are static storage, kept from one
 *    block to the next (not undefined on entry); no dynamic (extern)
 *    shared memory, the launch's smem size is ignored;
 *  - cuBLAS and cuDNN: only their type names exist, so that cuda_internal.h
 *    compiles.  cuda_conv.c is not built: the CPU scalar backend's
 *    convolutions stand in for its entries;
 *  - streams: everything runs synchronously, in call order; the stream
 *    arguments are ignored;
 *  - the whole grid: each grid dimension runs at most
 *    $MDC_CUDA_EMU_GRID_CAP blocks (default 2, 0: no cap) and gridDim says
 *    so.  The backend's kernels are grid-stride loops (cuda_internal.h),
 *    which cover any grid: the cap saves time and exercises the strides.
 *    A kernel that is not grid-stride fails here;
 *  - host threads: one launch at a time (the emulator's state is global);
 *  - the GPU's floating point: this is the host's (no flush to zero, fmaf
 *    from libm, contraction as the host compiler decides), so results agree
 *    with the GPU's within the test's tolerances, not bit for bit. */
#ifndef MDC_CUDA_EMU_H
#define MDC_CUDA_EMU_H

#ifndef __cplusplus
#error "emu.h is C++: the emulated .cu files and emu.cc are compiled as C++17"
#endif

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <tuple>
#include <type_traits>

/* ------------------------------------------------------- qualifiers */

#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
/* One copy per kernel, reused by each block in turn (blocks run one at a time). */
#define __shared__ static
#define warpSize 32

/* ------------------------------------------------------------ types */

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
/* Aligned as CUDA's, so that sizeof and pointer arithmetic agree. */
struct alignas(8) float2 {
  float x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
static inline float2 make_float2(float x, float y) { return float2{x, y}; }
static inline float4 make_float4(float x, float y, float z, float w) {
  return float4{x, y, z, w};
}

/* IEEE half (cuda_fp16.h's __half), stored as its 16 bits; conversions
 * round to nearest even, as the GPU's __float2half_rn. */
struct __half {
  uint16_t bits;
};
struct alignas(4) __half2 {
  __half x, y;
};
static inline float __half2float(__half h) {
  uint32_t sign = (uint32_t)(h.bits & 0x8000u) << 16, exp = (h.bits >> 10) & 0x1fu,
           mant = h.bits & 0x3ffu, f;
  if (exp == 0) { /* zero or subnormal: mant * 2^-24, exact in float */
    float v = (float)mant * 5.9604644775390625e-8f;
    memcpy(&f, &v, 4);
    f |= sign;
  } else if (exp == 31) {
    f = sign | 0x7f800000u | (mant << 13); /* inf, NaN */
  } else {
    f = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float r;
  memcpy(&r, &f, 4);
  return r;
}
static inline __half __float2half_rn(float v) {
  uint32_t f;
  memcpy(&f, &v, 4);
  const uint32_t sign = f & 0x80000000u;
  f ^= sign;
  uint16_t o;
  if (f >= (uint32_t)(127 + 16) << 23) { /* >= 2^16 (or inf, NaN) */
    o = f > 0x7f800000u ? 0x7e00 : 0x7c00;
  } else if (f < (uint32_t)113 << 23) { /* below 2^-14: subnormal half */
    /* adding 0.5 lines the half's last mantissa bit up with float's,
     * so the float addition rounds (to nearest even) for us */
    const uint32_t magic_bits = (uint32_t)((127 - 15) + (23 - 10) + 1) << 23;
    float x, magic;
    memcpy(&x, &f, 4);
    memcpy(&magic, &magic_bits, 4);
    volatile float sum = x + magic;
    float r = sum;
    memcpy(&f, &r, 4);
    o = (uint16_t)(f - magic_bits);
  } else {
    const uint32_t odd = (f >> 13) & 1u; /* ties to even */
    f += ((uint32_t)(15 - 127) << 23) + 0xfffu + odd;
    o = (uint16_t)(f >> 13); /* a carry into the exponent gives inf past 65504 */
  }
  __half h;
  h.bits = (uint16_t)(o | (sign >> 16));
  return h;
}
static inline float2 __half22float2(__half2 h) {
  return float2{__half2float(h.x), __half2float(h.y)};
}
static inline __half2 __floats2half2_rn(float a, float b) {
  return __half2{__float2half_rn(a), __float2half_rn(b)};
}

/* -------------------------------------------------- runtime API subset
 * Synchronous, on host memory.  Error codes as CUDA numbers them. */

enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
};
typedef enum cudaError cudaError_t;
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
typedef struct CUstream_st *cudaStream_t;

/* The last launch error, as cudaGetLastError reads and clears it. */
extern cudaError_t emu_last_error;

static inline cudaError_t cudaGetLastError(void) {
  cudaError_t e = emu_last_error;
  emu_last_error = cudaSuccess;
  return e;
}
static inline cudaError_t cudaPeekAtLastError(void) { return emu_last_error; }
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);

static inline cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes,
                                          cudaStream_t = nullptr) {
  if (bytes) memset(p, value, bytes);
  return cudaSuccess;
}
static inline cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes,
                                          cudaMemcpyKind, cudaStream_t = nullptr) {
  if (bytes) memmove(dst, src, bytes);
  return cudaSuccess;
}
static inline cudaError_t cudaMemset(void *p, int value, size_t bytes) {
  return cudaMemsetAsync(p, value, bytes);
}
static inline cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes,
                                     cudaMemcpyKind kind) {
  return cudaMemcpyAsync(dst, src, bytes, kind);
}
static inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
static inline cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }

/* cuBLAS and cuDNN: names only (cuda_internal.h's context holds handles). */
typedef struct cublasContext *cublasHandle_t;
typedef enum { CUBLAS_STATUS_SUCCESS = 0 } cublasStatus_t;
typedef enum { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_TF32 = 77 } cublasComputeType_t;
typedef struct cudnnContext *cudnnHandle_t;
typedef enum { CUDNN_STATUS_SUCCESS = 0 } cudnnStatus_t;

/* ------------------------------------------------ threads and barriers */

/* The running GPU thread (emu.cc switches it). */
struct emu_thread {
  uint3 idx;    /* threadIdx */
  unsigned lin; /* linear index in the block: x fastest, as CUDA forms warps */
};
extern const emu_thread *emu_self;
extern uint3 emu_block_idx;
extern dim3 emu_block_dim, emu_grid_dim;

#define threadIdx (emu_self->idx)
#define blockIdx (emu_block_idx)
#define blockDim (emu_block_dim)
#define gridDim (emu_grid_dim)

/* Waits for every thread of the block. */
void emu_syncthreads(void);
/* Waits for every lane of the warp (mask: all of them), publishing `bits`;
 * returns what lane src published. */
uint64_t emu_warp_exchange(unsigned mask, uint64_t bits, unsigned src);

static inline void __syncthreads(void) { emu_syncthreads(); }
static inline void __syncwarp(unsigned mask = 0xffffffffu) {
  emu_warp_exchange(mask, 0, emu_self->lin & 31);
}

/* Value of lane src (src < 0: the caller's own) for 4- and 8-byte types. */
template <class T> static inline T emu_shfl(unsigned mask, T v, int src) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value,
                "shuffles move values of at most 8 bytes");
  const unsigned lane = emu_self->lin & 31;
  uint64_t bits = 0;
  memcpy(&bits, &v, sizeof v);
  bits = emu_warp_exchange(mask, bits, src < 0 ? lane : (unsigned)src);
  memcpy(&v, &bits, sizeof v);
  return v;
}
/* CUDA's rules for width < 32: lanes form groups of `width`; a source
 * outside the caller's group (later groups for xor) gives its own value. */
template <class T> static inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  int base = (int)(emu_self->lin & 31) & ~(width - 1);
  return emu_shfl(mask, v, base + (src & (width - 1)));
}
template <class T>
static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  int lane = (int)(emu_self->lin & 31), src = lane ^ lane_mask;
  return emu_shfl(mask, v, src >= (lane & ~(width - 1)) + width ? -1 : src);
}
template <class T> static inline T __shfl_down_sync(unsigned mask, T v, unsigned d, int width = 32) {
  int lane = (int)(emu_self->lin & 31), src = lane + (int)d;
  return emu_shfl(mask, v, src >= (lane & ~(width - 1)) + width ? -1 : src);
}
template <class T> static inline T __shfl_up_sync(unsigned mask, T v, unsigned d, int width = 32) {
  int lane = (int)(emu_self->lin & 31), src = lane - (int)d;
  return emu_shfl(mask, v, src < (lane & ~(width - 1)) ? -1 : src);
}

/* ------------------------------------------------------- intrinsics */

/* Atomics: one thread runs at a time, so a plain update is atomic. */
#define EMU_ATOMIC_ADD(T)                          \
  static inline T atomicAdd(T *p, T v) {           \
    T old = *p;                                    \
    *p = old + v;                                  \
    return old;                                    \
  }
EMU_ATOMIC_ADD(float)
EMU_ATOMIC_ADD(double)
EMU_ATOMIC_ADD(int)
EMU_ATOMIC_ADD(unsigned)
EMU_ATOMIC_ADD(unsigned long long)
#undef EMU_ATOMIC_ADD

/* Correctly rounded, never contracted into a fused multiply-add (volatile
 * keeps the compiler from fusing across calls). */
static inline float __fadd_rn(float a, float b) {
  volatile float r = a + b;
  return r;
}
static inline float __fsub_rn(float a, float b) {
  volatile float r = a - b;
  return r;
}
static inline float __fmul_rn(float a, float b) {
  volatile float r = a * b;
  return r;
}
static inline float __fdiv_rn(float a, float b) {
  volatile float r = a / b;
  return r;
}
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
template <class T> static inline T __ldg(const T *p) { return *p; }

/* ----------------------------------------------------------- launches */

/* <<<grid, block, smem, stream>>>; smem and stream are ignored. */
struct emu_cfg {
  dim3 grid, block;
  emu_cfg(dim3 g, dim3 b, size_t = 0, cudaStream_t = nullptr) : grid(g), block(b) {}
};

/* Runs body(arg) as every thread of every block of the (capped) grid, or
 * sets emu_last_error when the configuration is invalid.  file:line names
 * the launch in fatal messages. */
void emu_run_grid(const char *file, int line, const emu_cfg &cfg, void (*body)(void *),
                  void *arg);

template <class... P, class... A>
static void emu_launch(const char *file, int line, void (*kernel)(P...), const emu_cfg &cfg,
                       A &&...args) {
  /* As CUDA: the arguments are converted to the parameter types once, at
   * the launch; every thread gets its own copy of them. */
  std::tuple<P...> params(std::forward<A>(args)...);
  auto body = [&]() { std::apply(kernel, params); };
  emu_run_grid(
      file, line, cfg, [](void *b) { (*static_cast<decltype(body) *>(b))(); }, &body);
}

#endif
