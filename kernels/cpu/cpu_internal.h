/* cpu_internal.h - shared by the CPU backends (scalar, AVX2) and select.c.
 * Not installed; nothing here is part of the library API. */
#ifndef MDC_CPU_INTERNAL_H
#define MDC_CPU_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "threadpool.h"

typedef struct mdc_cpu_ctx {
  mdc_threadpool *pool;
  int threads; /* mdc_threadpool_size(pool) */
} mdc_cpu_ctx;

/* Allocates a backend with a CPU context and a thread pool; the caller
 * fills in the entries.  NULL when out of memory. */
mdc_backend *mdc_cpu_backend_alloc(const char *name, int threads);
/* The `free` entry of the CPU backends. */
void mdc_cpu_backend_free(mdc_backend *be);

static inline mdc_cpu_ctx *mdc_cpu_ctx_of(mdc_backend *be) { return (mdc_cpu_ctx *)be->ctx; }

/* The AVX2+FMA backend's constructor, in avx2.c.  Only call it after
 * mdc_cpu_has_avx2_fma() said yes: that file is built with -mavx2 -mfma
 * and may use those instructions anywhere. */
mdc_backend *mdc_cpu_avx2_create(int threads);

/* Pooling geometry of backend.h's pool_mean (and docs/network.md's TLC). */
static inline int mdc_pool_is_global(int h, int w, int window) {
  return window <= 0 || (window >= h && window >= w);
}

/* The box along one axis for position p: [*start, *start + *len). */
static inline void mdc_pool_box(int p, int size, int window, int *start, int *len) {
  if (window >= size) {
    *start = 0;
    *len = size;
    return;
  }
  int s = p - window / 2;
  if (s > size - window) s = size - window;
  if (s < 0) s = 0;
  *start = s;
  *len = window;
}

/* The outputs whose box contains position q along one axis:
 * [*lo, *hi), contiguous because box starts never decrease with p (the
 * inverse of mdc_pool_box, for pool_mean_backward). */
static inline void mdc_pool_span(int q, int size, int window, int *lo, int *hi) {
  if (window >= size) {
    *lo = 0;
    *hi = size;
    return;
  }
  int half = window / 2;
  /* start(p) <= q: every p once q reaches the last start, else p <= q + half */
  *hi = q >= size - window ? size : q + half + 1;
  /* start(p) > q - window: every p while q < window, else p > q - window + half */
  *lo = q < window ? 0 : q - window + half + 1;
}

/* Splits [0, n) into about n / grain tasks (at most 4096): a split fixed
 * by the shape, never by the thread count. */
static inline int mdc_cpu_range_tasks(size_t n, size_t grain) {
  size_t t = (n + grain - 1) / grain;
  if (t > 4096) t = 4096;
  return t < 1 ? 1 : (int)t;
}

static inline void mdc_cpu_range(size_t n, int tasks, int t, size_t *lo, size_t *hi) {
  *lo = n * (size_t)t / (size_t)tasks;
  *hi = n * (size_t)(t + 1) / (size_t)tasks;
}

/* The scalar reference pool_mean, for the AVX2 backend's out-of-memory
 * fallback. */
void mdc_cpu_scalar_pool_mean(mdc_backend *be, const float *x, int batch, int h, int w, int c,
                              int window, float *y);

/* Rounds a byte offset up to a cache line. */
static inline size_t mdc_align64(size_t v) { return (v + 63) & ~(size_t)63; }

/* Aligns a scratch pointer up to 64 bytes (the scratch sizes include 64
 * bytes of slack for this). */
static inline void *mdc_scratch_base(void *p) {
  return (void *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

#endif
