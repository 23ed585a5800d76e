/* cuda_test_util.h - shared by the GPU tests (test_cuda.c, test_cuda_ops.c):
 * backend creation or a skip, device buffers from host data, and the
 * comparison against the CPU scalar reference.
 *
 * Without a usable GPU the tests print why and exit 77 (meson: skipped). */
#ifndef MDC_CUDA_TEST_UTIL_H
#define MDC_CUDA_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

mdc_backend *mdc_cuda_module_backend_new(int device, int precision, char *msg, size_t msg_size);

static int ct_passed, ct_failed;

static inline void ct_check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
static inline void ct_check(int ok, const char *fmt, ...) {
  if (ok) {
    ct_passed++;
    return;
  }
  ct_failed++;
  va_list ap;
  va_start(ap, fmt);
  fputs("FAIL: ", stdout);
  vprintf(fmt, ap);
  fputc('\n', stdout);
  va_end(ap);
}

static inline int ct_finish(void) {
  printf("%d passed, %d failed\n", ct_passed, ct_failed);
  return ct_failed ? 1 : 0;
}

/* The CUDA backend, or exit 77 with the reason when there is no GPU. */
static inline mdc_backend *ct_backend_or_skip(int precision) {
  char msg[512];
  mdc_backend *be = mdc_cuda_module_backend_new(0, precision, msg, sizeof msg);
  if (!be) {
    printf("SKIP: no usable CUDA device: %s\n", msg);
    exit(77);
  }
  return be;
}

static unsigned long long ct_rng = 0x9E3779B97F4A7C15ull;

static inline float ct_frand(void) { /* uniform in [-1, 1) */
  ct_rng ^= ct_rng << 13;
  ct_rng ^= ct_rng >> 7;
  ct_rng ^= ct_rng << 17;
  return (float)((ct_rng >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static inline float *ct_rand(size_t n, float scale) {
  float *p = malloc((n ? n : 1) * sizeof(float));
  for (size_t i = 0; i < n; i++) p[i] = ct_frand() * scale;
  return p;
}

/* A device copy of host data (n floats). */
static inline float *ct_upload(mdc_backend *be, const float *host, size_t n) {
  float *d = mdc_be_alloc(be, (n ? n : 1) * sizeof(float));
  if (d && n) mdc_be_upload(be, d, host, n * sizeof(float));
  return d;
}

/* A device buffer filled with NaN, so that unwritten elements show up. */
static inline float *ct_nan_device(mdc_backend *be, size_t n) {
  float *h = malloc((n ? n : 1) * sizeof(float));
  for (size_t i = 0; i < n; i++) h[i] = NAN;
  float *d = ct_upload(be, h, n);
  free(h);
  return d;
}

/* A host copy of device data (n floats); the caller frees it. */
static inline float *ct_download(mdc_backend *be, const float *dev, size_t n) {
  float *h = malloc((n ? n : 1) * sizeof(float));
  if (n) mdc_be_download(be, h, dev, n * sizeof(float));
  return h;
}

/* max |got - ref| / (1 + max |ref|); NaN anywhere counts as infinite. */
static inline double ct_rel_err(const float *got, const float *ref, size_t n) {
  double maxref = 0, err = 0;
  for (size_t i = 0; i < n; i++) {
    if (fabs(ref[i]) > maxref) maxref = fabs(ref[i]);
    double e = fabs((double)got[i] - ref[i]);
    if (!(e <= err)) err = isnan(e) ? INFINITY : e;
  }
  return err / (1.0 + maxref);
}

/* Compares device data with a host reference and records the result. */
static inline double ct_compare(mdc_backend *be, const char *what, const float *dev,
                                const float *ref, size_t n, double tol) {
  float *got = ct_download(be, dev, n);
  double e = ct_rel_err(got, ref, n);
  ct_check(e <= tol, "%s: relative error %.3g > %.3g", what, e, tol);
  free(got);
  return e;
}

/* Fails the test when the backend recorded an error. */
static inline void ct_sync_ok(mdc_backend *be, const char *what) {
  char msg[512];
  ct_check(mdc_be_sync(be, msg, sizeof msg) == 0, "%s: %s", what, msg);
}

#endif
