/* select.c - run-time choice of the CPU backend. */
#include "cpu_internal.h"

int mdc_cpu_has_avx2_fma(void) {
#if defined(MDC_HAVE_AVX2) && defined(__GNUC__)
  /* libgcc's check also verifies that the OS saves the YMM state. */
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return 0;
#endif
}

/* Defined here, not in avx2.c, so that the CPU check runs before any code
 * built with -mavx2. */
mdc_backend *mdc_backend_cpu_avx2_new(int threads) {
#ifdef MDC_HAVE_AVX2
  if (!mdc_cpu_has_avx2_fma()) return NULL;
  return mdc_cpu_avx2_create(threads);
#else
  (void)threads;
  return NULL;
#endif
}

mdc_backend *mdc_backend_cpu_best_new(int threads) {
  mdc_backend *be = mdc_backend_cpu_avx2_new(threads);
  return be ? be : mdc_backend_cpu_scalar_new(threads);
}
