/* bench_kernels.c - GFLOP/s of the CPU kernels against this machine's FMA
 * peak.  Not a test; run it on an idle machine:
 *   bench_kernels [-t threads] [-r repeats] [-n rounds]
 * FLOPs are 2 x multiply-adds.  The peak is measured with independent FMAs
 * on 12 ymm accumulators, on one thread and on all threads at once.  Every
 * figure (the peak included) is the best over `rounds` passes through the
 * whole list, so a busy moment on a shared machine spoils only one pass. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define BENCH_X86 1
#endif

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}


/* ---------------------------------------------------------- kernels */

static float *rand_buf(size_t n, float scale) {
  float *p = malloc(n * sizeof(float));
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(1);
  }
  unsigned s = 12345;
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    p[i] = ((s >> 8) * (1.0f / 16777216.0f) - 0.5f) * scale;
  }
  return p;
}

typedef struct job {
  int kind; /* 0 conv1x1, 1 nafblock, 2 conv3x3 */
  int h, w, cin, cout, window, batch; /* batch: conv3x3 images of h x w */
  const float *x, *wt, *b;
  float *y;
  mdc_nafblock_params *p;
  void *scratch;
} job;

static void job_run(mdc_backend *be, const job *j) {
  if (j->kind == 0)
    be->conv1x1(be, j->x, (size_t)j->h * j->w, j->cin, j->wt, j->b, j->cout, j->y);
  else if (j->kind == 2)
    be->conv3x3(be, j->x, j->batch, j->h, j->w, j->cin, j->wt, j->b, j->cout, j->y);
  else
    be->nafblock_forward(be, j->p, j->x, j->h, j->w, 1e-6f, j->window, j->y, j->scratch);
}

/* Best seconds over `reps` runs (after one warm-up), stopping early once
 * `budget` seconds are spent. */
static double time_job(mdc_backend *be, const job *j, int reps, double budget) {
  job_run(be, j);
  double best = INFINITY, start = now();
  for (int r = 0; r < reps; r++) {
    double t0 = now();
    job_run(be, j);
    double t = now() - t0;
    if (t < best) best = t;
    if (now() - start > budget) break;
  }
  return best;
}

#define MAX_LINES 64

typedef struct bench {
  mdc_backend *scalar, *fast1, *fast;
  double peak1, peakn;
  int reps, threads, line;
  char names[MAX_LINES][48];
  double best[MAX_LINES][3]; /* GFLOP/s: scalar, avx2 1 thread, avx2 all threads */
} bench;

static void keep(double *dst, double v) {
  if (v == v && v > *dst) *dst = v;
}

static void record(bench *B, const char *name, const job *j, double flops) {
  double ts = B->scalar ? time_job(B->scalar, j, B->reps > 3 ? 3 : B->reps, 2.0) : NAN;
  double t1 = B->fast1 ? time_job(B->fast1, j, B->reps, 3.0) : NAN;
  double tn = B->fast ? time_job(B->fast, j, B->reps, 3.0) : NAN;
  int l = B->line++;
  if (l >= MAX_LINES) return;
  snprintf(B->names[l], sizeof B->names[l], "%s", name);
  keep(&B->best[l][0], flops / ts * 1e-9);
  keep(&B->best[l][1], flops / t1 * 1e-9);
  keep(&B->best[l][2], flops / tn * 1e-9);
}

static void print_table(const bench *B) {
  printf("FMA peak: 1 thread %.1f GFLOP/s, %d threads %.1f GFLOP/s\n", B->peak1, B->threads,
         B->peakn);
  printf("GFLOP/s; (%% of the FMA peak for that thread count); speed-up avx2 %dT over scalar %dT\n",
         B->threads, B->threads);
  for (int l = 0; l < B->line && l < MAX_LINES; l++) {
    const double *g = B->best[l];
    printf("%-34s scalar %7.2f | avx2 1T %7.2f (%5.1f%%) | avx2 %dT %7.2f (%5.1f%%) | x%5.1f\n",
           B->names[l], g[0], g[1], 100 * g[1] / B->peak1, B->threads, g[2],
           100 * g[2] / B->peakn, g[2] / g[0]);
  }
}

static void bench_conv1x1(bench *B, int h, int w, int cin, int cout) {
  size_t n = (size_t)h * w;
  job j = {0, h, w, cin, cout, 0, 1, rand_buf(n * cin, 1), rand_buf((size_t)cin * cout, 0.1f),
           rand_buf(cout, 1), rand_buf(n * cout, 1), NULL, NULL};
  char name[64];
  snprintf(name, sizeof name, "conv1x1 %dx%d %d->%d", h, w, cin, cout);
  record(B, name, &j, 2.0 * n * cin * cout);
  free((void *)j.x), free((void *)j.wt), free((void *)j.b), free(j.y);
}

static void bench_conv3x3(bench *B, int batch, int h, int w, int cin, int cout) {
  size_t n = (size_t)batch * h * w;
  job j = {2, h, w, cin, cout, 0, batch, rand_buf(n * cin, 1),
           rand_buf((size_t)9 * cin * cout, 0.1f), rand_buf(cout, 1), rand_buf(n * cout, 1), NULL,
           NULL};
  char name[64];
  if (batch > 1)
    snprintf(name, sizeof name, "conv3x3 %d x %dx%d %d->%d", batch, h, w, cin, cout);
  else
    snprintf(name, sizeof name, "conv3x3 %dx%d %d->%d", h, w, cin, cout);
  record(B, name, &j, 2.0 * n * 9 * cin * cout);
  free((void *)j.x), free((void *)j.wt), free((void *)j.b), free(j.y);
}

static void bench_nafblock(bench *B, int h, int w, int c, int window) {
  size_t n = (size_t)h * w, cc = (size_t)c;
  mdc_nafblock_params p = {c,
                           rand_buf(cc, 1), rand_buf(cc, 0.1f),
                           rand_buf(cc * 2 * cc, 0.3f), rand_buf(2 * cc, 0.1f),
                           rand_buf(18 * cc, 0.3f), rand_buf(2 * cc, 0.1f),
                           rand_buf(cc * cc, 0.3f), rand_buf(cc, 0.1f),
                           rand_buf(cc * cc, 0.3f), rand_buf(cc, 0.1f),
                           rand_buf(cc, 1), rand_buf(cc, 0.1f),
                           rand_buf(cc * 2 * cc, 0.3f), rand_buf(2 * cc, 0.1f),
                           rand_buf(cc * cc, 0.3f), rand_buf(cc, 0.1f),
                           rand_buf(cc, 0.5f), rand_buf(cc, 0.5f)};
  size_t bytes = 0;
  mdc_backend *all[3] = {B->scalar, B->fast1, B->fast};
  for (int i = 0; i < 3; i++)
    if (all[i]) {
      size_t s = all[i]->nafblock_scratch_size(all[i], c, h, w, window);
      if (s > bytes) bytes = s;
    }
  job j = {1, h, w, c, c, window, 1, rand_buf(n * cc, 1), NULL, NULL, rand_buf(n * cc, 1), &p,
           malloc(bytes)};
  int global = window <= 0 || (window >= h && window >= w);
  /* MACs per pixel: conv1 2c^2, dw 18c, (sca c^2 per pixel when windowed),
   * conv3 c^2, conv4 2c^2, conv5 c^2. */
  double macs = (double)n * (6.0 * c * c + 18.0 * c + (global ? 0.0 : (double)c * c));
  char name[64];
  if (global)
    snprintf(name, sizeof name, "nafblock %dx%d c=%d global", h, w, c);
  else
    snprintf(name, sizeof name, "nafblock %dx%d c=%d window=%d", h, w, c, window);
  record(B, name, &j, 2.0 * macs);
  const float **f = &p.norm1_w;
  for (int i = 0; i < 18; i++) free((void *)f[i]);
  free((void *)j.x), free(j.y), free(j.scratch);
}

static void bench_round(bench *B) {
  B->line = 0;
  bench_conv1x1(B, 512, 512, 16, 32);
  bench_conv1x1(B, 512, 512, 32, 16);
  bench_conv1x1(B, 512, 512, 16, 16);
  bench_conv1x1(B, 512, 512, 32, 64);
  bench_conv1x1(B, 512, 512, 64, 32);
  bench_conv1x1(B, 512, 512, 32, 32);
  bench_conv1x1(B, 256, 256, 64, 128);
  bench_conv1x1(B, 256, 256, 64, 64);
  bench_conv1x1(B, 128, 128, 128, 256);
  bench_conv1x1(B, 128, 128, 256, 128);
  bench_conv1x1(B, 64, 64, 256, 512);
  bench_conv1x1(B, 64, 64, 512, 256);
  bench_conv1x1(B, 512, 512, 17, 33);
  bench_conv1x1(B, 256, 256, 60, 100);
  bench_conv3x3(B, 1, 512, 512, 3, 16);
  bench_conv3x3(B, 1, 512, 512, 16, 3);
  bench_conv3x3(B, 1, 256, 256, 32, 32);
  bench_conv3x3(B, 16, 64, 64, 32, 32); /* a training batch: as many pixels as 256x256 */
  bench_conv3x3(B, 16, 128, 128, 16, 3);
  for (int c = 16; c <= 64; c *= 2) {
    bench_nafblock(B, 256, 256, c, 0);
    bench_nafblock(B, 512, 512, c, 0);
  }
  bench_nafblock(B, 512, 512, 16, 384);
  bench_nafblock(B, 256, 256, 32, 192);
  bench_nafblock(B, 512, 512, 32, 192);
}

int main(int argc, char **argv) {
  int threads = 0, reps = 7, rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "-t")) threads = atoi(argv[i + 1]);
    if (!strcmp(argv[i], "-r")) reps = atoi(argv[i + 1]);
    if (!strcmp(argv[i], "-n")) rounds = atoi(argv[i + 1]);
  }
  static bench B; /* large: keep it off the stack */
  B.reps = reps < 1 ? 1 : reps;
  B.scalar = mdc_backend_cpu_scalar_new(threads);
  if (!mdc_cpu_has_avx2_fma()) {
    printf("no AVX2+FMA: nothing to compare\n");
    mdc_backend_free(B.scalar);
    return 0;
  }
  B.fast1 = mdc_backend_cpu_avx2_new(1);
  B.fast = mdc_backend_cpu_avx2_new(threads);
  int nt = threads > 0 ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN); /* as the pool does */
  if (nt < 1) nt = 1;
  if (nt > 256) nt = 256;
  B.threads = nt;
  for (int r = 0; r < (rounds < 1 ? 1 : rounds); r++) {
    keep(&B.peak1, mdc_cpu_fma_peak_gflops(1, 3));
    keep(&B.peakn, mdc_cpu_fma_peak_gflops(nt, 3));
    bench_round(&B);
    fprintf(stderr, "round %d done\n", r + 1);
  }
  print_table(&B);
  mdc_backend_free(B.scalar);
  mdc_backend_free(B.fast1);
  mdc_backend_free(B.fast);
  return 0;
}
