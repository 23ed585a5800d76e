/* bench.c - `maskdcpt bench`: throughput of the real restoration path,
 * compared in the same run with the machine's measured FMA peak and with
 * the scalar reference kernels. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "cli.h"
#include "weights.h"

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Seconds for one forced-class restore of an n x n image (best of reps,
 * after one warm-up), host-to-device and back included.  tile: the tile
 * edge (n: one tile, measuring the network rather than the tiling; 0: the
 * image up to 2048 px on the CPU, the core's plan from the free memory on
 * a GPU); *tile_used (may be NULL) gets the edge used. */
static double time_restore(const maskdcpt_model *model, int n, int tile, int threads, int scalar,
                           maskdcpt_device device, int reps, char *device_name, size_t name_size,
                           int *tile_used) {
  maskdcpt_context *ctx = NULL;
  maskdcpt_error err;
  if (maskdcpt_context_new(model, &ctx, NULL) != MASKDCPT_OK) return -1.0;
  if (maskdcpt_context_set_device(ctx, scalar ? MASKDCPT_DEVICE_CPU : device, &err) != MASKDCPT_OK) {
    cli_error("%s", err.message);
    maskdcpt_context_free(ctx);
    return -1.0;
  }
  maskdcpt_context_set_threads(ctx, threads);
  maskdcpt_context_set_scalar(ctx, scalar);
  if (!tile && strncmp(maskdcpt_context_device_name(ctx), "cpu", 3) == 0)
    tile = n < 2048 ? n : 2048;
  maskdcpt_context_set_tile_size(ctx, tile);
  if (tile_used) maskdcpt_context_plan(ctx, n, n, tile_used, NULL);
  if (device_name) snprintf(device_name, name_size, "%s", maskdcpt_context_device_name(ctx));
  size_t px = (size_t)n * n * 3;
  float *in = malloc(px * sizeof(float)), *out = malloc(px * sizeof(float));
  double best = -1.0;
  if (in && out) {
    unsigned s = 12345;
    for (size_t i = 0; i < px; i++) in[i] = (float)((s = s * 1103515245u + 12345u) >> 8) / 16777216.0f;
    maskdcpt_image a = {in, n, n, 3, (size_t)n * 3}, b = {out, n, n, 3, (size_t)n * 3};
    /* warm-up: working memory, the network's upload, library start-up */
    int ok = reps <= 1 || maskdcpt_restore(ctx, &a, &b, 0, 1.0f, NULL, &err) == MASKDCPT_OK;
    for (int r = 0; ok && r < reps; r++) {
      double t0 = now_seconds();
      if (maskdcpt_restore(ctx, &a, &b, 0, 1.0f, NULL, &err) != MASKDCPT_OK) {
        ok = 0;
        break;
      }
      double t = now_seconds() - t0;
      if (best < 0 || t < best) best = t;
    }
    if (!ok) {
      cli_error("%s", err.message);
      best = -1.0;
    }
  }
  free(in);
  free(out);
  maskdcpt_context_free(ctx);
  return best;
}

/* Seconds for one NAFBlock forward on the backend (best of reps). */
static double time_block(mdc_backend *be, const mdc_nafblock_params *p, int n, int window,
                         int reps) {
  size_t elems = (size_t)n * n * p->c;
  float *x = malloc(elems * sizeof(float)), *y = malloc(elems * sizeof(float));
  void *scratch = malloc(be->nafblock_scratch_size(be, p->c, n, n, window) + 64);
  double best = -1.0;
  if (x && y && scratch) {
    for (size_t i = 0; i < elems; i++) x[i] = (float)((i * 7919) % 1000) / 1000.0f;
    for (int r = 0; r < reps; r++) {
      double t0 = now_seconds();
      be->nafblock_forward(be, p, x, n, n, 1e-6f, window, y, scratch);
      double t = now_seconds() - t0;
      if (best < 0 || t < best) best = t;
    }
  }
  free(x);
  free(y);
  free(scratch);
  return best;
}

/* Multiply-adds per pixel of one NAFBlock with c channels. */
static double block_macs(int c, int window) {
  return 2.0 * c * c + 18.0 * c + (window ? c * c : 0) + c * c + 2.0 * c * c + c * c;
}

static void bench_blocks(int threads, int n, double peak) {
  const int widths[] = {16, 32, 64, 128};
  mdc_backend *fast = mdc_backend_cpu_best_new(threads);
  if (!fast) return;
  printf(_("  NAFBlock alone (%s, %dx%d, TLC window 384):\n"), fast->name, n, n);
  for (size_t i = 0; i < sizeof widths / sizeof *widths; i++) {
    int c = widths[i];
    mdc_weights w;
    mdc_arch a;
    mdc_arch_benchmark(&a, c);
    a.levels = 1, a.enc_blocks[0] = 1, a.middle_blocks = 0, a.dec_blocks[0] = 0;
    if (mdc_weights_init_random(&w, &a, 7, 0.5f, NULL) != MASKDCPT_OK) continue;
    mdc_nafblock_params p = {c,
                             mdc_weights_tensor(&w, "encoders.0.0.norm1.weight"),
                             mdc_weights_tensor(&w, "encoders.0.0.norm1.bias"),
                             mdc_weights_tensor(&w, "encoders.0.0.conv1.weight"),
                             mdc_weights_tensor(&w, "encoders.0.0.conv1.bias"),
                             mdc_weights_tensor(&w, "encoders.0.0.conv2.weight"),
                             mdc_weights_tensor(&w, "encoders.0.0.conv2.bias"),
                             mdc_weights_tensor(&w, "encoders.0.0.sca.weight"),
                             mdc_weights_tensor(&w, "encoders.0.0.sca.bias"),
                             mdc_weights_tensor(&w, "encoders.0.0.conv3.weight"),
                             mdc_weights_tensor(&w, "encoders.0.0.conv3.bias"),
                             mdc_weights_tensor(&w, "encoders.0.0.norm2.weight"),
                             mdc_weights_tensor(&w, "encoders.0.0.norm2.bias"),
                             mdc_weights_tensor(&w, "encoders.0.0.conv4.weight"),
                             mdc_weights_tensor(&w, "encoders.0.0.conv4.bias"),
                             mdc_weights_tensor(&w, "encoders.0.0.conv5.weight"),
                             mdc_weights_tensor(&w, "encoders.0.0.conv5.bias"),
                             mdc_weights_tensor(&w, "encoders.0.0.beta"),
                             mdc_weights_tensor(&w, "encoders.0.0.gamma")};
    /* Layouts differ from the file's, but values are random: the speed is the same. */
    double t = time_block(fast, &p, n, 384, 5);
    double gflops = 2.0 * block_macs(c, 384) * n * n / t / 1e9;
    printf(_("    c=%-4d %8.2f ms  %7.1f GFLOP/s  %5.1f%% of peak\n"), c, t * 1e3, gflops,
           100.0 * gflops / peak);
    mdc_weights_clear(&w);
  }
  mdc_backend_free(fast);
}

static const char *bench_help =
    N_("Usage: maskdcpt bench [OPTIONS]\n"
       "Measures the FMA peak of this machine, then restoration throughput of the\n"
       "fast CPU path and the scalar reference path on the same network.\n"
       "\n"
       "  -w, --weights FILE   network to measure (default: random networks of\n"
       "                       widths 16 and 32, blocks 1,1,1,2 / 2 / 1,1,1,1)\n"
       "      --width LIST     widths of the random networks (default 16,32)\n"
       "      --size N         image edge for the fast path (default 512)\n"
       "      --scalar-size N  image edge for the scalar path (default 128; 0 skips)\n"
       "      --tile N         tile edge for the fast path (default: the image, up to\n"
       "                       2048, on the CPU; the planned tile on a GPU)\n"
       "  -d, --device D       auto (default), cpu or cuda: where the fast path runs\n"
       "  -j, --threads N      threads (default: all CPUs)\n"
       "      --blocks         also time single NAFBlocks of 16..128 channels\n");

int cli_bench(int argc, char **argv) {
  static const struct option opts[] = {{"weights", required_argument, 0, 'w'},
                                       {"width", required_argument, 0, 'W'},
                                       {"size", required_argument, 0, 'n'},
                                       {"scalar-size", required_argument, 0, 's'},
                                       {"threads", required_argument, 0, 'j'},
                                       {"blocks", no_argument, 0, 'B'},
                                       {"tile", required_argument, 0, 't'},
                                       {"device", required_argument, 0, 'd'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *weights = NULL, *widths = "16,32";
  long size = 512, scalar_size = 128, threads = 0, tile = 0;
  maskdcpt_device device = MASKDCPT_DEVICE_AUTO;
  int blocks = 0, c;
  while ((c = getopt_long(argc, argv, "w:j:d:h", opts, NULL)) != -1) {
    switch (c) {
    case 'w': weights = optarg; break;
    case 'W': widths = optarg; break;
    case 'n': if (cli_parse_int(optarg, "--size", 16, 16384, &size)) return 2; break;
    case 's': if (cli_parse_int(optarg, "--scalar-size", 0, 4096, &scalar_size)) return 2; break;
    case 'j': if (cli_parse_int(optarg, "--threads", 0, 256, &threads)) return 2; break;
    case 'B': blocks = 1; break;
    case 't': if (cli_parse_int(optarg, "--tile", 64, 16384, &tile)) return 2; break;
    case 'd': if (cli_parse_device(optarg, &device)) return 2; break;
    case 'h': fputs(_(bench_help), stdout); return 0;
    default: fputs(_(bench_help), stderr); return 2;
    }
  }
  int nthreads = threads > 0 ? (int)threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (nthreads < 1) nthreads = 1;
  if (nthreads > 256) nthreads = 256;
  if (!mdc_cpu_has_avx2_fma()) {
    cli_error(_("this CPU has no AVX2+FMA: only the scalar path runs here"));
  }
  double peak1 = mdc_cpu_has_avx2_fma() ? mdc_cpu_fma_peak_gflops(1, 5) : 0.0;
  double peak = mdc_cpu_has_avx2_fma() ? mdc_cpu_fma_peak_gflops(nthreads, 5) : 0.0;
  printf(_("FMA peak (measured): %.1f GFLOP/s on 1 thread, %.1f GFLOP/s on %d threads\n"),
         peak1, peak, nthreads);

  const char *p = weights ? "file" : widths;
  while (*p) {
    maskdcpt_model *model = NULL;
    char label[256];
    if (weights) {
      model = cli_load_model(weights);
      snprintf(label, sizeof label, "%s", weights);
      p = "";
    } else {
      char *end;
      long wd = strtol(p, &end, 10);
      if (end == p || wd < 1 || wd > MDC_MAX_WIDTH) {
        cli_error(_("--width: bad list '%s'"), widths);
        return 2;
      }
      p = *end == ',' ? end + 1 : end;
      mdc_arch a;
      mdc_arch_benchmark(&a, (int)wd);
      mdc_weights w;
      if (mdc_weights_init_random(&w, &a, 1, 0.5f, NULL) == MASKDCPT_OK) {
        char path[] = "/tmp/maskdcpt-bench-XXXXXX";
        int fd = mkstemp(path);
        if (fd >= 0) {
          close(fd);
          if (mdc_weights_write(&w, path, 0, NULL) == MASKDCPT_OK) model = cli_load_model(path);
          unlink(path);
        }
        mdc_weights_clear(&w);
      }
      snprintf(label, sizeof label, _("random network, width %ld"), wd);
    }
    if (!model) return 1;
    maskdcpt_arch_info info;
    maskdcpt_model_arch(model, &info);
    printf(_("\n%s: %.1f k MACs/pixel, %lld parameters\n"), label, info.macs_per_pixel / 1e3,
           (long long)info.num_params);
    char dev_name[128] = "";
    int fast_tile = 0;
    double t = time_restore(model, (int)size, (int)tile, nthreads, 0, device, 5, dev_name,
                            sizeof dev_name, &fast_tile);
    if (t <= 0) return 1;
    double mp = (double)size * size / 1e6;
    double gflops = 2.0 * info.macs_per_pixel * mp * 1e6 / t / 1e9;
    if (strncmp(dev_name, "cpu", 3) == 0)
      printf(_("  fast   (%ldx%ld, %s): %8.3f s  %7.3f MP/s  %7.1f GFLOP/s  %5.1f%% of peak\n"),
             size, size, dev_name, t, mp / t, gflops, peak > 0 ? 100.0 * gflops / peak : 0.0);
    else /* a GPU: its peak is the device's, not this CPU's */
      printf(_("  fast   (%ldx%ld, tiles of %d, %s): %8.3f s  %7.3f MP/s  %7.1f GFLOP/s\n"),
             size, size, fast_tile, dev_name, t, mp / t, gflops);
    if (scalar_size > 0) {
      double ts = time_restore(model, (int)scalar_size, (int)scalar_size, nthreads, 1,
                               MASKDCPT_DEVICE_CPU, 1, NULL, 0, NULL);
      double mps = (double)scalar_size * scalar_size / 1e6;
      printf(_("  scalar (%ldx%ld): %8.3f s  %7.3f MP/s  %7.1f GFLOP/s  fast/scalar %.1fx\n"),
             scalar_size, scalar_size, ts, mps / ts,
             2.0 * info.macs_per_pixel * mps * 1e6 / ts / 1e9, (mp / t) / (mps / ts));
    }
    if (blocks) {
      bench_blocks(nthreads, 256, peak);
      blocks = 0;
    }
    maskdcpt_model_free(model);
  }
  return 0;
}
