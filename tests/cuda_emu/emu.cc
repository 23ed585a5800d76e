/* emu.cc - the CPU emulator's scheduler (see emu.h for what it emulates
 * and what not) and an mdc_backend around the emulated kernels, made by
 * mdc_cuda_module_backend_new as the real module's (cuda_module.c), so
 * that tests/test_cuda_ops.c links against it unchanged.
 *
 * Scheduler: one block at a time.  Each GPU thread is a ucontext coroutine;
 * a thread runs until it reaches a barrier or ends, then control passes to
 * the next runnable thread in thread order.  When none is left runnable
 * the barriers that every thread concerned has reached are released and
 * the next round starts from thread 0. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

extern "C" {
#include "backend.h" /* C declarations; it has no extern "C" of its own */
}
#include "cuda_internal.h" /* translated by translate.py: includes emu.h */

cudaError_t emu_last_error = cudaSuccess;
const emu_thread *emu_self;
uint3 emu_block_idx;
dim3 emu_block_dim, emu_grid_dim;

/* ------------------------------------------------------------ fibers */

namespace {

enum fiber_state { RUNNABLE, AT_SYNCTHREADS, AT_WARP, DONE };

struct fiber {
  ucontext_t ctx;
  emu_thread self;
  fiber_state state;
  unsigned phase; /* which exchange slot its next warp exchange uses */
  char *stack;
};

/* Plenty for the kernels' frames; only touched pages are committed. */
const size_t STACK_BYTES = 256 * 1024;
const unsigned MAX_THREADS = 1024;

fiber fibers[MAX_THREADS];
unsigned n_threads;  /* of the running block */
fiber *cur;          /* the running thread */
ucontext_t sched;    /* the scheduler (emu_run_grid's loop) */
void (*cur_body)(void *);
void *cur_arg;
const char *cur_file;
int cur_line;

/* Values published at warp exchanges.  Two slots per thread: a lane may
 * publish for its next exchange while slower lanes still read this one. */
uint64_t exchange[2][MAX_THREADS];

[[noreturn]] void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) {
  fflush(stdout); /* the test's lines first */
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "cuda_emu: launch at %s:%d, block (%u,%u,%u): ", cur_file, cur_line,
          emu_block_idx.x, emu_block_idx.y, emu_block_idx.z);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  abort();
}

/* Makes f the running thread (before switching to it). */
void enter(fiber *f) {
  cur = f;
  emu_self = &f->self;
}

/* The running thread stops (its state already set): on to the next
 * runnable thread after it, or back to the scheduler. */
void leave(void) {
  fiber *f = cur;
  for (unsigned i = f->self.lin + 1; i < n_threads; i++)
    if (fibers[i].state == RUNNABLE) {
      enter(&fibers[i]);
      swapcontext(&f->ctx, &fibers[i].ctx);
      return;
    }
  swapcontext(&f->ctx, &sched);
}

void thread_main(void) {
  cur_body(cur_arg);
  cur->state = DONE;
  leave(); /* never resumed */
}

/* Runs every thread of one block to its end. */
void run_block(void) {
  for (unsigned i = 0; i < n_threads; i++) {
    fiber &f = fibers[i];
    if (!f.stack) {
      /* a guard page below each stack turns an overflow into a crash */
      long page = sysconf(_SC_PAGESIZE);
      void *p = mmap(nullptr, STACK_BYTES + page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED || mprotect(p, page, PROT_NONE)) fatal("no memory for thread stacks");
      f.stack = (char *)p + page;
    }
    f.self.lin = i;
    f.self.idx = uint3{i % emu_block_dim.x, i / emu_block_dim.x % emu_block_dim.y,
                       i / (emu_block_dim.x * emu_block_dim.y)};
    f.state = RUNNABLE;
    f.phase = 0;
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack;
    f.ctx.uc_stack.ss_size = STACK_BYTES;
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, thread_main, 0);
  }
  for (;;) {
    /* one round: every runnable thread, in order, until it blocks or ends */
    for (unsigned i = 0; i < n_threads; i++)
      if (fibers[i].state == RUNNABLE) {
        enter(&fibers[i]);
        swapcontext(&sched, &fibers[i].ctx);
        break; /* the threads pass control along; back here when all are stopped */
      }
    int released = 0, at_block = 0, done = 0;
    for (unsigned w0 = 0; w0 < n_threads; w0 += 32) {
      unsigned lanes = n_threads - w0 < 32 ? n_threads - w0 : 32;
      int at = 0, gone = 0;
      for (unsigned l = 0; l < lanes; l++) {
        at += fibers[w0 + l].state == AT_WARP;
        gone += fibers[w0 + l].state == DONE;
      }
      if (at == (int)lanes) {
        for (unsigned l = 0; l < lanes; l++) fibers[w0 + l].state = RUNNABLE;
        released = 1;
      } else if (at && at + gone == (int)lanes) {
        fatal("warp %u: a shuffle or __syncwarp that %d of its lanes left by exiting", w0 / 32,
              gone);
      }
    }
    for (unsigned i = 0; i < n_threads; i++) {
      at_block += fibers[i].state == AT_SYNCTHREADS;
      done += fibers[i].state == DONE;
    }
    if (done == (int)n_threads) return;
    if (at_block && at_block + done == (int)n_threads) {
      if (done) fatal("__syncthreads that %d threads of the block skipped by exiting", done);
      for (unsigned i = 0; i < n_threads; i++) fibers[i].state = RUNNABLE;
      released = 1;
    }
    if (!released)
      fatal("deadlock: %d threads at __syncthreads, the others at warp barriers or done (%d)",
            at_block, done);
  }
}

/* $MDC_CUDA_EMU_GRID_CAP: blocks per grid dimension (0: all). */
unsigned grid_cap(void) {
  static unsigned cap = [] {
    const char *s = getenv("MDC_CUDA_EMU_GRID_CAP");
    return s && *s ? (unsigned)strtoul(s, nullptr, 10) : 2u;
  }();
  return cap;
}

unsigned capped(unsigned n) {
  unsigned cap = grid_cap();
  return cap && n > cap ? cap : n;
}

} // namespace

void emu_syncthreads(void) {
  cur->state = AT_SYNCTHREADS;
  leave();
}

uint64_t emu_warp_exchange(unsigned mask, uint64_t bits, unsigned src) {
  unsigned w0 = cur->self.lin & ~31u, lanes = n_threads - w0 < 32 ? n_threads - w0 : 32;
  unsigned all = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1;
  if ((mask & all) != all) fatal("warp exchange with mask %#x: partial masks are not emulated", mask);
  unsigned slot = cur->phase;
  cur->phase ^= 1;
  exchange[slot][cur->self.lin] = bits;
  cur->state = AT_WARP;
  leave();
  return exchange[slot][w0 + (src < lanes ? src : cur->self.lin - w0)];
}

void emu_run_grid(const char *file, int line, const emu_cfg &cfg, void (*body)(void *),
                  void *arg) {
  const dim3 g = cfg.grid, b = cfg.block;
  /* CUDA's limits (compute capability 7.5 to 9.0) */
  unsigned long long threads = (unsigned long long)b.x * b.y * b.z;
  if (!g.x || !g.y || !g.z || !b.x || !b.y || !b.z || g.x > 0x7fffffffu || g.y > 65535 ||
      g.z > 65535 || b.x > 1024 || b.y > 1024 || b.z > 64 || threads > MAX_THREADS) {
    emu_last_error = cudaErrorInvalidConfiguration;
    return;
  }
  cur_file = file;
  cur_line = line;
  cur_body = body;
  cur_arg = arg;
  n_threads = (unsigned)threads;
  emu_block_dim = b;
  emu_grid_dim = dim3(capped(g.x), capped(g.y), capped(g.z));
  for (unsigned z = 0; z < emu_grid_dim.z; z++)
    for (unsigned y = 0; y < emu_grid_dim.y; y++)
      for (unsigned x = 0; x < emu_grid_dim.x; x++) {
        emu_block_idx = uint3{x, y, z};
        run_block();
      }
  emu_self = nullptr;
}

const char *cudaGetErrorString(cudaError_t e) {
  switch (e) {
  case cudaSuccess: return "no error";
  case cudaErrorInvalidValue: return "invalid argument";
  case cudaErrorMemoryAllocation: return "out of memory";
  case cudaErrorInvalidConfiguration: return "invalid configuration argument";
  }
  return "unknown error";
}

const char *cudaGetErrorName(cudaError_t e) {
  switch (e) {
  case cudaSuccess: return "cudaSuccess";
  case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
  case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
  case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
  }
  return "cudaErrorUnknown";
}

/* ----------------------------------------------------------- backend
 * What cuda_backend.c does, on host memory: failure recording, the
 * workspace, the memory entries.  The messages match its. */

extern "C" void mdc_cuda_fail(mdc_backend *be, const char *fmt, ...) {
  mdc_cuda_ctx *ctx = mdc_cuda_ctx_of(be);
  if (ctx->failed) return; /* the first failure is the one worth reading */
  ctx->failed = 1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx->error, sizeof ctx->error, fmt, ap);
  va_end(ap);
}

extern "C" int mdc_cuda_check(mdc_backend *be, cudaError_t e, const char *what) {
  if (e == cudaSuccess) return 0;
  (void)cudaGetLastError();
  mdc_cuda_fail(be, "%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
  return -1;
}

extern "C" int mdc_cuda_check_launch(mdc_backend *be, const char *what) {
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) return 0;
  mdc_cuda_fail(be, "%s: kernel launch failed: %s (%s)", what, cudaGetErrorString(e),
                cudaGetErrorName(e));
  return -1;
}

namespace {

/* The context: cuda_internal.h's first (mdc_cuda_ctx_of casts be->ctx),
 * then the CPU backend that stands in for the library-based entries. */
struct emu_ctx {
  mdc_cuda_ctx cuda;
  mdc_backend *cpu;
};
static_assert(std::is_standard_layout<emu_ctx>::value, "mdc_cuda_ctx_of needs cuda first");

void *host_alloc(size_t bytes) { /* 256-aligned, as cudaMalloc */
  size_t rounded = (bytes + 255) & ~(size_t)255;
  if (rounded < bytes) return nullptr;
  return aligned_alloc(256, rounded ? rounded : 256);
}

/* Fresh device memory is not zero: NaN shows reads of unwritten parts. */
void poison(void *p, size_t bytes) {
  float *f = (float *)p;
  for (size_t i = 0; i < bytes / sizeof(float); i++) f[i] = NAN;
}

} // namespace

extern "C" void *mdc_cuda_workspace_try(mdc_backend *be, size_t bytes) {
  mdc_cuda_ctx *ctx = mdc_cuda_ctx_of(be);
  const size_t MIB = (size_t)1 << 20;
  if (ctx->failed) return nullptr;
  if (bytes <= ctx->workspace_size && ctx->workspace) return ctx->workspace;
  if (bytes > SIZE_MAX - MIB) return nullptr;
  size_t rounded = bytes ? (bytes + MIB - 1) / MIB * MIB : MIB;
  free(ctx->workspace);
  ctx->workspace = host_alloc(rounded);
  ctx->workspace_size = ctx->workspace ? rounded : 0;
  if (ctx->workspace) poison(ctx->workspace, rounded);
  return ctx->workspace;
}

extern "C" void *mdc_cuda_workspace(mdc_backend *be, size_t bytes) {
  void *p = mdc_cuda_workspace_try(be, bytes);
  if (!p) mdc_cuda_fail(be, "workspace: out of device memory for %zu bytes", bytes);
  return p;
}

namespace {

void *emu_mem_alloc(mdc_backend *be, size_t bytes) {
  if (mdc_cuda_ctx_of(be)->failed) return nullptr;
  size_t rounded = ((bytes ? bytes : 1) + 255) & ~(size_t)255;
  void *p = host_alloc(rounded);
  if (p) memset(p, 0, rounded); /* backend.h: mem_alloc returns zeroed memory */
  return p;
}

void emu_mem_free(mdc_backend *, void *p) { free(p); }

void emu_mem_upload(mdc_backend *be, void *dst, const void *host, size_t bytes) {
  if (!mdc_cuda_ctx_of(be)->failed && bytes) memcpy(dst, host, bytes);
}

void emu_mem_download(mdc_backend *be, void *host, const void *src, size_t bytes) {
  if (!mdc_cuda_ctx_of(be)->failed && bytes) memcpy(host, src, bytes);
}

void emu_mem_copy(mdc_backend *be, void *dst, const void *src, size_t bytes) {
  if (!mdc_cuda_ctx_of(be)->failed && bytes && dst != src) memmove(dst, src, bytes);
}

void emu_mem_zero(mdc_backend *be, void *p, size_t bytes) {
  if (!mdc_cuda_ctx_of(be)->failed && bytes) memset(p, 0, bytes);
}

int emu_sync(mdc_backend *be, char *msg, size_t msg_size) {
  mdc_cuda_ctx *ctx = mdc_cuda_ctx_of(be);
  if (!ctx->failed) return 0;
  if (msg && msg_size) snprintf(msg, msg_size, "%s", ctx->error);
  return -1;
}

void emu_free(mdc_backend *be) {
  emu_ctx *e = (emu_ctx *)be->ctx;
  mdc_backend_free(e->cpu);
  free(e->cuda.workspace);
  free(e->cuda.reduce);
  free(e->cuda.reduce_host);
  free(e->cuda.ones);
  free(e);
  free(be);
}

/* NOT EMULATED: the entries of cuda_conv.c (cuDNN, cuBLAS) run the CPU
 * scalar backend's code, so that the table is complete (and so that
 * cuda_nafblock.c's composition runs).  test_cuda_ops.c does not test them
 * alone; test_cuda.c does, on a GPU.
 * cpu_forward<type of entry x>::call<&mdc_backend::x> forwards x. */
template <class Fn> struct cpu_forward;
template <class R, class... A> struct cpu_forward<R (*)(mdc_backend *, A...)> {
  template <R (*mdc_backend::*entry)(mdc_backend *, A...)>
  static R call(mdc_backend *be, A... args) {
    mdc_backend *cpu = ((emu_ctx *)be->ctx)->cpu;
    return (cpu->*entry)(cpu, args...);
  }
};
#define CPU_ENTRY(name) \
  be->name = cpu_forward<decltype(mdc_backend::name)>::call<&mdc_backend::name>

/* The fp16 mode's stand-ins: activations converted around the CPU's fp32
 * convolutions, weights as they are (the GPU converts them to half, so its
 * results differ from these by that rounding too, within the tests'
 * fp16 tolerances). */
float *half_to_float(const void *p, size_t n) {
  float *f = (float *)malloc((n ? n : 1) * sizeof(float));
  if (!f) abort();
  for (size_t i = 0; i < n; i++) f[i] = __half2float(((const __half *)p)[i]);
  return f;
}

void float_to_half(void *p, float *f, size_t n) { /* frees f */
  for (size_t i = 0; i < n; i++) ((__half *)p)[i] = __float2half_rn(f[i]);
  free(f);
}

mdc_backend *cpu_of(mdc_backend *be) { return ((emu_ctx *)be->ctx)->cpu; }

void half_conv1x1(mdc_backend *be, const float *x, size_t n, int cin, const float *w,
                  const float *b, int cout, float *y) {
  float *xf = half_to_float(x, n * cin), *yf = (float *)malloc((n * cout + 1) * sizeof(float));
  cpu_of(be)->conv1x1(cpu_of(be), xf, n, cin, w, b, cout, yf);
  free(xf);
  float_to_half(y, yf, n * cout);
}

void half_conv3x3(mdc_backend *be, const float *x, int batch, int h, int w, int cin,
                  const float *wt, const float *b, int cout, float *y) {
  size_t px = (size_t)batch * h * w;
  float *xf = half_to_float(x, px * cin), *yf = (float *)malloc((px * cout + 1) * sizeof(float));
  cpu_of(be)->conv3x3(cpu_of(be), xf, batch, h, w, cin, wt, b, cout, yf);
  free(xf);
  float_to_half(y, yf, px * cout);
}

void half_conv2x2s2(mdc_backend *be, const float *x, int h, int w, int cin, const float *wt,
                    const float *b, int cout, float *y) {
  size_t out = (size_t)(h / 2) * (w / 2) * cout;
  float *xf = half_to_float(x, (size_t)h * w * cin), *yf = (float *)malloc((out + 1) * sizeof(float));
  cpu_of(be)->conv2x2s2(cpu_of(be), xf, h, w, cin, wt, b, cout, yf);
  free(xf);
  float_to_half(y, yf, out);
}

} // namespace

/* The emulated "device 0".  MDC_CUDA_STRICT_FP32 is kept but changes
 * nothing here (TF32 is a cuBLAS / cuDNN matter); MDC_CUDA_FP16 stores
 * activations as half, as on a GPU. */
extern "C" mdc_backend *mdc_cuda_module_backend_new(int device, int precision, char *msg,
                                                    size_t msg_size) {
  if (precision != MDC_CUDA_TF32 && precision != MDC_CUDA_STRICT_FP32 &&
      precision != MDC_CUDA_FP16) {
    snprintf(msg, msg_size, "unknown CUDA precision mode %d", precision);
    return nullptr;
  }
  const int strict_fp32 = precision == MDC_CUDA_STRICT_FP32, half = precision == MDC_CUDA_FP16;
  if (device != 0) {
    snprintf(msg, msg_size, "CUDA device %d does not exist (the emulator has only device 0)",
             device);
    return nullptr;
  }
  mdc_backend *be = (mdc_backend *)calloc(1, sizeof *be);
  emu_ctx *e = (emu_ctx *)calloc(1, sizeof *e);
  if (e) e->cpu = mdc_backend_cpu_scalar_new(1);
  if (e) e->cuda.reduce = (double *)host_alloc(MDC_CUDA_REDUCE_SLOTS * sizeof(double));
  if (e) e->cuda.reduce_host = (double *)host_alloc(MDC_CUDA_REDUCE_SLOTS * sizeof(double));
  if (e) e->cuda.ones = (float *)host_alloc(MDC_CUDA_ONES * sizeof(float));
  if (!be || !e || !e->cpu || !e->cuda.reduce || !e->cuda.reduce_host || !e->cuda.ones) {
    if (e) mdc_backend_free(e->cpu);
    if (e) free(e->cuda.reduce), free(e->cuda.reduce_host), free(e->cuda.ones);
    free(e);
    free(be);
    snprintf(msg, msg_size, "out of host memory");
    return nullptr;
  }
  poison(e->cuda.reduce, MDC_CUDA_REDUCE_SLOTS * sizeof(double));
  for (size_t i = 0; i < MDC_CUDA_ONES; i++) e->cuda.ones[i] = 1.0f;
  e->cuda.device = 0;
  e->cuda.strict_fp32 = strict_fp32;
  e->cuda.half = half;
  e->cuda.gemm_compute = strict_fp32 ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_FAST_TF32;
  snprintf(e->cuda.name, sizeof e->cuda.name, "cuda:0 emulated on the CPU (tests/cuda_emu, %s)",
           half ? "fp16" : strict_fp32 ? "strict fp32" : "fp32");
  be->ctx = e;
  be->name = e->cuda.name;
  be->free = emu_free;
  be->mem_alloc = emu_mem_alloc;
  be->mem_free = emu_mem_free;
  be->mem_upload = emu_mem_upload;
  be->mem_download = emu_mem_download;
  be->mem_copy = emu_mem_copy;
  be->mem_zero = emu_mem_zero;
  be->sync = emu_sync;
  CPU_ENTRY(conv1x1);
  CPU_ENTRY(conv3x3);
  CPU_ENTRY(conv2x2s2);
  CPU_ENTRY(conv1x1_backward);
  CPU_ENTRY(conv3x3_backward);
  CPU_ENTRY(conv2x2s2_backward);
  /* the emulated files */
  mdc_cuda_nafblock_init(be);
  mdc_cuda_elementwise_init(be);
  mdc_cuda_reduce_init(be);
  mdc_cuda_dwconv_init(be);
  if (half) {
    mdc_cuda_half_init(be);
    be->conv1x1 = half_conv1x1;
    be->conv3x3 = half_conv3x3;
    be->conv2x2s2 = half_conv2x2s2;
  }
  return be;
}
