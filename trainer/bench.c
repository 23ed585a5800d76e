/* bench.c - `maskdcpt-train bench`: training steps per second of the real
 * training step (forward with saved activations, PSNR and focal losses,
 * backward, clipping, AdamW, EMA) on random crops already in memory, so
 * that it measures compute, not data loading.  The PyTorch side of the
 * same measurement is tools/torch_bench.py train. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "optim.h"
#include "train_net.h"

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *bench_usage =
    "Usage: maskdcpt-train bench [--device auto|cpu|cuda] [--width 32] [--crop 256]\n"
    "                            [--batch 16] [--micro-batch N] [--steps 20]\n"
    "                            [--threads N]\n"
    "Times training steps of a random network (blocks 1,1,1,2 / 2 / 1,1,1,1,\n"
    "12 classes) on random crops: median step time after 3 warm-up steps.\n"
    "--micro-batch: crops per pass (default: the whole batch).\n";

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int tr_bench_main(int argc, char **argv) {
  static const struct option opts[] = {{"device", 1, 0, 'D'}, {"width", 1, 0, 'W'},
                                       {"crop", 1, 0, 'c'},   {"batch", 1, 0, 'b'},
                                       {"steps", 1, 0, 's'},  {"threads", 1, 0, 'j'},
                                       {"micro-batch", 1, 0, 'B'},
                                       {"help", 0, 0, 'h'},   {0, 0, 0, 0}};
  const char *device = "auto";
  int width = 32, crop = 256, batch = 16, micro = 0, steps = 20, threads = 0, c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'D': device = optarg; break;
    case 'W': width = atoi(optarg); break;
    case 'c': crop = atoi(optarg); break;
    case 'b': batch = atoi(optarg); break;
    case 'B': micro = atoi(optarg); break;
    case 's': steps = atoi(optarg); break;
    case 'j': threads = atoi(optarg); break;
    case 'h': fputs(bench_usage, stdout); return 0;
    default: fputs(bench_usage, stderr); return 2;
    }
  }
  if (width < 1 || width > MDC_MAX_WIDTH || crop < 16 || crop % 16 || crop > 384 || batch < 1 ||
      micro < 0 || steps < 1 ||
      (strcmp(device, "auto") && strcmp(device, "cpu") && strcmp(device, "cuda"))) {
    fputs(bench_usage, stderr);
    return 2;
  }
  char msg[512];
  mdc_backend *be = tr_backend_new(device, threads, msg, sizeof msg);
  if (msg[0]) fprintf(stderr, "maskdcpt-train bench: %s\n", msg);
  if (!be) return 1;
  mdc_arch a;
  mdc_arch_benchmark(&a, width);
  mdc_weights w;
  mdc_net net;
  tr_net t;
  maskdcpt_error err;
  if (mdc_weights_init_random(&w, &a, 1, 0.5f, &err) != MASKDCPT_OK ||
      mdc_net_init(&net, &w, &err) != MASKDCPT_OK) {
    fprintf(stderr, "maskdcpt-train bench: %s\n", err.message);
    return 1;
  }
  mdc_weights_clear(&w);
  if (tr_net_init(&t, &net, crop, tr_micro_batch(micro, batch), be, msg, sizeof msg) != 0) {
    fprintf(stderr, "maskdcpt-train bench: %s\n", msg);
    return 1;
  }
  size_t np = t.num_params, px = (size_t)crop * crop * 3;
  float *opt = mdc_be_alloc(be, np * 3 * sizeof(float));
  float *crops = malloc(px * 2 * (size_t)batch * sizeof(float));
  double *times = malloc((size_t)steps * sizeof(double));
  if (!opt || !crops || !times) {
    fprintf(stderr, "maskdcpt-train bench: out of memory\n");
    return 1;
  }
  unsigned s = 12345;
  for (size_t i = 0; i < px * 2 * (size_t)batch; i++)
    crops[i] = (float)((s = s * 1103515245u + 12345u) >> 8) / 16777216.0f;
  mdc_be_copy(be, opt + 2 * np, t.net.storage, np * sizeof(float));
  int k = a.num_classes, rc = 0;
  for (int step = -3; step < steps && rc == 0; step++) {
    double t0 = now_seconds();
    tr_net_zero_grad(&t);
    for (int b0 = 0; b0 < batch; b0 += t.batch) {
      int n = batch - b0 < t.batch ? batch - b0 : t.batch;
      const float *deg[n], *clean[n], *cond[n];
      float onehot[n][MDC_MAX_CLASSES];
      double dlog[n * k];
      for (int i = 0; i < n; i++) {
        deg[i] = crops + px * 2 * (size_t)(b0 + i), clean[i] = deg[i] + px;
        memset(onehot[i], 0, sizeof onehot[i]);
        onehot[i][(b0 + i) % k] = 1.0f;
        cond[i] = onehot[i];
      }
      tr_net_forward(&t, be, n, deg, NULL, cond, 1);
      tr_net_restoration_loss(&t, clean, 1, 1e-8, 1.0f / batch);
      for (int i = 0; i < n; i++)
        tr_focal_loss(t.logits + (size_t)i * k, k, (b0 + i) % k, 2.0, 1.0 / batch, dlog + i * k);
      tr_net_backward(&t, be, t.d_out, dlog);
    }
    tr_clip_grad_norm(be, t.grad, np, 1.0);
    be->adamw_step(be, t.net.storage, t.grad, opt, opt + np, np, 1e-3f, 0.9f, 0.9f, 1e-8f, 0.0f,
                   step + 4);
    be->ema_update(be, opt + 2 * np, t.net.storage, np, 0.999f);
    if (tr_net_check(&t, msg, sizeof msg) != 0) {
      fprintf(stderr, "maskdcpt-train bench: %s\n", msg);
      rc = 1;
    }
    if (step >= 0) times[step] = now_seconds() - t0;
  }
  if (rc == 0) {
    qsort(times, (size_t)steps, sizeof *times, cmp_double);
    double med = times[steps / 2];
    /* forward + backward of the restoration path: about 3x the forward's MACs */
    double gflops = 3.0 * 2.0 * mdc_arch_macs_per_pixel(&a) * crop * crop * batch / med / 1e9;
    printf("%s: width %d, %zu parameters, crop %d, batch %d (%d per pass): median step %.2f ms (min %.2f, "
           "max %.2f) = %.2f steps/s, %.1f crops/s, about %.0f GFLOP/s\n",
           be->name, width, np, crop, batch, t.batch, med * 1e3, times[0] * 1e3, times[steps - 1] * 1e3,
           1.0 / med, batch / med, gflops);
  }
  mdc_be_free(be, opt);
  free(crops);
  free(times);
  tr_net_free(&t);
  mdc_backend_free(be);
  return rc;
}
