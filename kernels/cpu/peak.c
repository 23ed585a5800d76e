/* peak.c - the machine's measured single-precision FMA peak, the
 * yardstick every benchmark reports its GFLOP/s against. */
#include <pthread.h>
#include <time.h>

#include "backend.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define PEAK_X86 1
#endif

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#define PEAK_ITERS 20000000L

#ifdef PEAK_X86
/* 12 independent accumulators hide the FMA latency (4 cycles x 2 pipes
 * needs at least 8 in flight); returns flops done. */
__attribute__((target("avx2,fma"))) static double fma_loop(float seed) {
  /* named variables: GCC keeps arrays of vectors in memory */
  __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(seed * 1e-7f);
  __m256 a0 = _mm256_set1_ps(seed), a1 = _mm256_set1_ps(seed + 1), a2 = _mm256_set1_ps(seed + 2);
  __m256 a3 = _mm256_set1_ps(seed + 3), a4 = _mm256_set1_ps(seed + 4), a5 = _mm256_set1_ps(seed + 5);
  __m256 a6 = _mm256_set1_ps(seed + 6), a7 = _mm256_set1_ps(seed + 7), a8 = _mm256_set1_ps(seed + 8);
  __m256 a9 = _mm256_set1_ps(seed + 9), a10 = _mm256_set1_ps(seed + 10), a11 = _mm256_set1_ps(seed + 11);
  for (long it = 0; it < PEAK_ITERS; it++) {
#define F(i) a##i = _mm256_fmadd_ps(a##i, m, c);
    F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9) F(10) F(11)
#undef F
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                           _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
  s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
  float out[8];
  _mm256_storeu_ps(out, s);
  volatile float sink = out[0];
  (void)sink;
  return (double)PEAK_ITERS * 12 * 8 * 2;
}
#endif

typedef struct peak_arg {
  double flops, seconds;
  pthread_barrier_t *bar;
} peak_arg;

static void *peak_thread(void *p) {
  peak_arg *a = p;
  pthread_barrier_wait(a->bar);
  double t0 = now();
  a->flops = 0.0;
#ifdef PEAK_X86
  a->flops = fma_loop(1.0f);
#endif
  a->seconds = now() - t0;
  return NULL;
}

/* GFLOP/s of `threads` threads each running the FMA loop; best of reps. */
double mdc_cpu_fma_peak_gflops(int threads, int reps) {
  if (!mdc_cpu_has_avx2_fma()) return 0.0;
  if (threads < 1) threads = 1;
  if (threads > 256) threads = 256;
  double best = 0.0;
  for (int r = 0; r < reps; r++) {
    pthread_t th[256];
    peak_arg args[256];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)threads);
    for (int i = 0; i < threads; i++) {
      args[i].bar = &bar;
      if (i) pthread_create(&th[i], NULL, peak_thread, &args[i]);
    }
    peak_thread(&args[0]);
    double flops = args[0].flops, secs = args[0].seconds;
    for (int i = 1; i < threads; i++) {
      pthread_join(th[i], NULL);
      flops += args[i].flops;
      if (args[i].seconds > secs) secs = args[i].seconds;
    }
    pthread_barrier_destroy(&bar);
    double g = flops / secs * 1e-9;
    if (g > best) best = g;
  }
  return best;
}
