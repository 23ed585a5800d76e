/* test_train_net.c - the training graph's backward pass against finite
 * differences of its forward pass, on a small network: every kind of
 * parameter (convolutions, norms, conditioned decoder norms, attention,
 * residual scales, classifier), with and without MaskDCPT's masking. */
#include <unistd.h>

#include "test_util.h"
#include <sys/stat.h>

#include "checkpoint.h"
#include "dataset.h"
#include "degrade.h"
#include "image_io.h"
#include "loader.h"
#include "optim.h"
#include "train_net.h"

/* L = sum(w_out * out) + sum(w_log * logits) over n crops, in double.
 * w_out NULL: the classifier alone (DCPT's second pass). */
static double loss(tr_net *t, mdc_backend *be, int n, const float *const *in,
                   const unsigned char *const *masks, const float *const *cond,
                   const float *w_out, const double *w_log) {
  tr_net_forward(t, be, n, in, masks, cond, w_out != NULL);
  double l = 0;
  size_t px = (size_t)n * t->crop * t->crop * 3;
  for (size_t i = 0; w_out && i < px; i++) l += (double)w_out[i] * t->out[i];
  for (int q = 0; q < n * t->net.arch.num_classes; q++) l += w_log[q] * t->logits[q];
  return l;
}

/* The training graph of tu_small_arch(width 4, 2 levels, window) with
 * random weights from seed, for `batch` crops of crop x crop on be; 0, or
 * -1 after a failed CHECK. */
static int small_tr_net(tr_net *t, mdc_backend *be, int window, uint64_t seed, int crop,
                        int batch) {
  mdc_arch a;
  tu_small_arch(&a, 4, 2, window);
  mdc_weights w;
  mdc_net net;
  char msg[256];
  CHECK(mdc_weights_init_random(&w, &a, seed, 0.5f, NULL) == MASKDCPT_OK, "init");
  CHECK(mdc_net_init(&net, &w, NULL) == MASKDCPT_OK, "net");
  mdc_weights_clear(&w);
  if (tr_net_init(t, &net, crop, batch, be, msg, sizeof msg) != 0) {
    CHECK(0, "tr_net_init: %s", msg);
    return -1;
  }
  return 0;
}

/* Two crops in one pass, each with its own input, class weights and mask:
 * the per-crop rows of the batched layers (attention means, conditioned
 * norms, masks) all reach the gradients. */
static void check_gradients(int masked, int window, int fast, int classify_only) {
  mdc_arch a;
  tu_small_arch(&a, 4, 2, window);
  tr_net t;
  int crop = 8, nb = 2;
  mdc_backend *be = fast ? mdc_backend_cpu_best_new(2) : mdc_backend_cpu_scalar_new(1);
  if (small_tr_net(&t, be, window, 5, crop, nb) != 0) return;
  size_t n = (size_t)crop * crop * 3;
  float *in0 = tu_test_image(crop, crop, 3, 7), *in1 = tu_test_image(crop, crop, 3, 9);
  float *w_out = tu_test_image(crop, 2 * crop, 3, 8);
  for (size_t i = 0; i < 2 * n; i++) w_out[i] -= 0.5f;
  double w_log[8] = {0.3, -0.7, 0.2, 0.5, -0.4, 0.1, 0.6, -0.2};
  float cond0[4] = {0.1f, 0.6f, 0.2f, 0.1f}, cond1[4] = {0.7f, 0.0f, 0.1f, 0.2f};
  unsigned char mask0[4] = {1, 0, 0, 1}, mask1[4] = {0, 1, 1, 1}; /* 2x2 patches of 4 px */
  const float *ins[2] = {in0, in1}, *conds[2] = {cond0, cond1};
  const unsigned char *mk[2] = {mask0, mask1}, *const *m = masked ? mk : NULL;

  const float *wo = classify_only ? NULL : w_out;
  tr_net_zero_grad(&t);
  loss(&t, be, nb, ins, m, conds, wo, w_log);
  tr_net_backward(&t, be, wo, w_log);

  /* every tensor: its largest-gradient element and a few others */
  int nt = mdc_arch_num_tensors(&a), bad = 0, checked = 0;
  double worst = 0;
  size_t off = 0;
  for (int k = 0; k < nt; k++) {
    mdc_tensor_spec s;
    mdc_arch_tensor(&a, k, &s);
    for (int e = 0; e < 3 && e < s.numel; e++) {
      size_t i = off + (size_t)((e * 7919) % s.numel);
      float keep = t.net.storage[i];
      /* small steps: masked pixels give LayerNorm near-zero variances,
       * where the loss bends sharply */
      double h = 1e-3 * fmax(1.0, fabs(keep));
      t.net.storage[i] = (float)(keep + h);
      double lp = loss(&t, be, nb, ins, m, conds, wo, w_log);
      t.net.storage[i] = (float)(keep - h);
      double lm = loss(&t, be, nb, ins, m, conds, wo, w_log);
      t.net.storage[i] = keep;
      double num = (lp - lm) / (2 * h), ana = t.grad[i];
      double err = fabs(num - ana) / fmax(1.0, fabs(num));
      checked++;
      if (err > worst) worst = err;
      if (err > 2e-2) {
        if (bad++ < 8)
          fprintf(stderr, "  %s[%zu]: analytic %.6g numeric %.6g\n", s.name, i - off, ana, num);
      }
    }
    off += (size_t)s.numel;
  }
  printf("%s, 2 crops, mask %d, window %d%s: %d parameters checked, worst relative error "
         "%.2e\n",
         be->name, masked, window, classify_only ? ", classifier only" : "", checked, worst);
  CHECK(bad == 0, "%s mask %d window %d: %d of %d gradients off", be->name, masked, window, bad,
        checked);
  free(in0);
  free(in1);
  free(w_out);
  tr_net_free(&t);
  mdc_backend_free(be);
}

/* The head alone (--mode classifier): tr_net_backward_head gives the
 * classifier's tensors ("cls.*") the gradients the whole backward gives
 * them, and every other tensor none. */
static void check_head_only(int fast) {
  mdc_arch a;
  tu_small_arch(&a, 4, 2, 0);
  tr_net t;
  int crop = 8, nb = 2;
  mdc_backend *be = fast ? mdc_backend_cpu_best_new(2) : mdc_backend_cpu_scalar_new(1);
  if (small_tr_net(&t, be, 0, 6, crop, nb) != 0) return;
  float *in0 = tu_test_image(crop, crop, 3, 3), *in1 = tu_test_image(crop, crop, 3, 4);
  const float *ins[2] = {in0, in1};
  double w_log[8] = {0.3, -0.7, 0.2, 0.5, -0.4, 0.1, 0.6, -0.2};
  size_t np = t.num_params;
  float *full = malloc(np * sizeof(float));
  tr_net_zero_grad(&t);
  tr_net_forward(&t, be, nb, ins, NULL, NULL, 0);
  tr_net_backward(&t, be, NULL, w_log);
  memcpy(full, t.grad, np * sizeof(float));
  tr_net_zero_grad(&t);
  tr_net_forward(&t, be, nb, ins, NULL, NULL, 0);
  tr_net_backward_head(&t, be, w_log);
  int nt = mdc_arch_num_tensors(&a), head_tensors = 0, off_head = 0, nonzero_head = 0;
  double worst = 0;
  size_t off = 0;
  for (int k = 0; k < nt; k++) {
    mdc_tensor_spec s;
    mdc_arch_tensor(&a, k, &s);
    int head = strncmp(s.name, "cls.", 4) == 0;
    head_tensors += head;
    for (size_t i = off; i < off + (size_t)s.numel; i++) {
      if (!head) {
        off_head += t.grad[i] != 0.0f;
        continue;
      }
      nonzero_head += t.grad[i] != 0.0f;
      double e = fabs((double)t.grad[i] - full[i]) / fmax(1e-3, fabs(full[i]));
      if (e > worst) worst = e;
    }
    off += (size_t)s.numel;
  }
  printf("%s, head only: %d classifier tensors, worst relative difference %.2e, %d other "
         "gradients set\n",
         be->name, head_tensors, worst, off_head);
  CHECK(head_tensors >= 4 && nonzero_head > 0, "%d head tensors, %d nonzero", head_tensors,
        nonzero_head);
  CHECK(worst < 1e-5, "head gradients differ from the full backward's: %.3g", worst);
  CHECK(off_head == 0, "%d gradients outside the classifier are set", off_head);
  free(in0), free(in1), free(full);
  tr_net_free(&t);
  mdc_backend_free(be);
}

/* One pass over three crops gives what three passes over one crop give:
 * outputs, logits, losses and accumulated gradients (auto mode for one
 * crop, masks for all: every per-crop path of the batched graph). */
static void check_batch_equals_crops(int fast) {
  enum { NB = 3, CROP = 16 };
  tr_net t[2];
  mdc_backend *be = fast ? mdc_backend_cpu_best_new(2) : mdc_backend_cpu_scalar_new(1);
  for (int k = 0; k < 2; k++)
    if (small_tr_net(&t[k], be, 0, 11, CROP, k ? NB : 1) != 0) return;
  size_t px = (size_t)CROP * CROP * 3, np = t[0].num_params;
  float *in[NB], *clean[NB];
  float cond[NB][4] = {{0, 1, 0, 0}, {0.2f, 0.2f, 0.5f, 0.1f}, {0}};
  unsigned char masks[NB][16];
  const float *cin[NB], *cclean[NB], *ccond[NB];
  const unsigned char *cmask[NB];
  for (int i = 0; i < NB; i++) {
    in[i] = tu_test_image(CROP, CROP, 3, 20 + i);
    clean[i] = tu_test_image(CROP, CROP, 3, 30 + i);
    for (int p = 0; p < 16; p++) masks[i][p] = (unsigned char)((p * 7 + i) % 3 != 0);
    cin[i] = in[i], cclean[i] = clean[i], cmask[i] = masks[i];
    ccond[i] = i == 2 ? NULL : cond[i];
  }
  double dlog[NB * 4];
  for (int q = 0; q < NB * 4; q++) dlog[q] = 0.1 * (q % 5) - 0.2;
  float *out1 = malloc(NB * px * sizeof(float));
  double logits1[NB * 4], loss1 = 0;
  tr_net_zero_grad(&t[0]);
  for (int i = 0; i < NB; i++) {
    tr_net_forward(&t[0], be, 1, cin + i, cmask + i, ccond + i, 1);
    memcpy(out1 + i * px, tr_net_output(&t[0]), px * sizeof(float));
    memcpy(logits1 + i * 4, t[0].logits, 4 * sizeof(double));
    loss1 += tr_net_restoration_loss(&t[0], cclean + i, 1, 1e-8, 0.5f);
    tr_net_backward(&t[0], be, t[0].d_out, dlog + i * 4);
  }
  tr_net_zero_grad(&t[1]);
  tr_net_forward(&t[1], be, NB, cin, cmask, ccond, 1);
  const float *outb = tr_net_output(&t[1]);
  double loss_b = tr_net_restoration_loss(&t[1], cclean, 1, 1e-8, 0.5f);
  double dout = 0, dlg = 0, dgrad = 0, gmax = 0;
  for (size_t i = 0; i < NB * px; i++) dout = fmax(dout, fabs(outb[i] - out1[i]));
  for (int q = 0; q < NB * 4; q++) dlg = fmax(dlg, fabs(t[1].logits[q] - logits1[q]));
  tr_net_backward(&t[1], be, t[1].d_out, dlog);
  for (size_t i = 0; i < np; i++) {
    dgrad = fmax(dgrad, fabs(t[1].grad[i] - t[0].grad[i]));
    gmax = fmax(gmax, fabs(t[0].grad[i]));
  }
  printf("%s: 3 crops in one pass vs one by one: output %.2e, logits %.2e, loss %.2e, "
         "gradients %.2e of max %.3g\n",
         be->name, dout, dlg, fabs(loss_b - loss1), dgrad, gmax);
  CHECK(dout < 1e-5 && dlg < 1e-5, "%s batched forward differs: %g %g", be->name, dout, dlg);
  CHECK(fabs(loss_b - loss1) < 1e-6 * fmax(1.0, fabs(loss1)), "%s loss %g vs %g", be->name,
        loss_b, loss1);
  CHECK(dgrad < 1e-5 * fmax(1.0, gmax), "%s batched gradients differ by %g", be->name, dgrad);
  for (int i = 0; i < NB; i++) free(in[i]), free(clean[i]);
  free(out1);
  for (int k = 0; k < 2; k++) tr_net_free(&t[k]);
  mdc_backend_free(be);
}

/* Kernel layouts back to the file's: the export path gives back exactly
 * the tensors that were loaded. */
static void check_export_round_trip(void) {
  mdc_arch a;
  tu_small_arch(&a, 8, 2, 64);
  mdc_weights w, back;
  mdc_net net;
  mdc_weights_init_random(&w, &a, 9, 0.5f, NULL);
  CHECK(mdc_net_init(&net, &w, NULL) == MASKDCPT_OK, "net");
  CHECK(mdc_net_to_weights(&net, NULL, &back, NULL) == MASKDCPT_OK, "to weights");
  int same = back.num_tensors == w.num_tensors;
  for (int k = 0; same && k < w.num_tensors; k++) {
    mdc_tensor_spec s;
    mdc_arch_tensor(&a, k, &s);
    same = memcmp(w.tensors[k], back.tensors[k], (size_t)s.numel * sizeof(float)) == 0;
  }
  CHECK(same, "export gives back the loaded tensors bit for bit");
  mdc_weights_clear(&w);
  mdc_weights_clear(&back);
  mdc_net_clear(&net);
}

/* Focal loss gradient against finite differences; gamma 0 is
 * cross-entropy. */
static void check_focal(void) {
  double z[5] = {0.3, -1.2, 2.0, 0.1, -0.4}, g[5];
  double gammas[] = {0.0, 2.0};
  for (int gi = 0; gi < 2; gi++) {
    tr_focal_loss(z, 5, 3, gammas[gi], 1.0, g);
    double worst = 0;
    for (int q = 0; q < 5; q++) {
      double keep = z[q], h = 1e-6;
      z[q] = keep + h;
      double lp = tr_focal_loss(z, 5, 3, gammas[gi], 1.0, NULL);
      z[q] = keep - h;
      double lm = tr_focal_loss(z, 5, 3, gammas[gi], 1.0, NULL);
      z[q] = keep;
      worst = fmax(worst, fabs((lp - lm) / (2 * h) - g[q]));
    }
    CHECK(worst < 1e-7, "focal gamma %g: gradient error %g", gammas[gi], worst);
  }
  double ce = tr_focal_loss(z, 5, 2, 0.0, 1.0, NULL), sum = 0;
  for (int q = 0; q < 5; q++) sum += exp(z[q]);
  CHECK(fabs(ce - (log(sum) - z[2])) < 1e-12, "gamma 0 is cross-entropy");
  CHECK(fabs(tr_lr_at(0, 100, 10, 1e-3, 0.01) - 1e-4) < 1e-12 &&
            fabs(tr_lr_at(10, 100, 10, 1e-3, 0.01) - 1e-3) < 1e-12 &&
            fabs(tr_lr_at(100, 100, 10, 1e-3, 0.01) - 1e-5) < 1e-12,
        "warm-up and cosine schedule");
}

/* A checkpoint reads back exactly; a truncated or altered one is refused. */
static void check_checkpoint(void) {
  char path[512], msg[512];
  tu_tmp_path(path, sizeof path, "ckpt.bin");
  size_t n = 1000;
  float *a = malloc(4 * n * sizeof(float));
  for (size_t i = 0; i < 4 * n; i++) a[i] = (float)i * 0.25f - 7.0f;
  char settings[] = "{\"mode\":\"test\"}";
  tr_state s = {42, n, a, a + n, a + 2 * n, a + 3 * n, settings}, r;
  CHECK(tr_checkpoint_write(path, &s, msg, sizeof msg) == 0, "write: %s", msg);
  CHECK(tr_checkpoint_read(path, &r, msg, sizeof msg) == 0 && r.step == 42 && r.n == n &&
            memcmp(r.param, a, 4 * n * sizeof(float)) == 0 && strcmp(r.settings, settings) == 0,
        "read back: %s", msg);
  tr_state_free(&r);
  FILE *f = fopen(path, "r+b");
  fseek(f, 100, SEEK_SET);
  fputc(0x55, f);
  fclose(f);
  CHECK(tr_checkpoint_read(path, &r, msg, sizeof msg) != 0 && strstr(msg, "corrupt"),
        "a changed byte is detected: %s", msg);
  CHECK(truncate(path, 5000) == 0 && tr_checkpoint_read(path, &r, msg, sizeof msg) != 0,
        "a truncated file is refused");
  free(a);
}

/* The prefetching loader gives exactly the dataset's samples, whatever
 * its number of workers. */
static void check_loader(void) {
  char dir[512], path[600], msg[512];
  tu_tmp_path(dir, sizeof dir, "photos");
  mkdir(dir, 0755);
  for (int i = 0; i < 3; i++) {
    img_image img = {tu_test_image(80, 72, 3, 30 + i), 80, 72, 3, 8, IMG_FORMAT_PNG};
    snprintf(path, sizeof path, "%s/p%d.png", dir, i);
    CHECK(img_write(path, &img, 8, 0, msg, sizeof msg) == 0, "write %s: %s", path, msg);
    free(img.data);
  }
  tr_dataset ds;
  CHECK(tr_dataset_load(&ds, dir, 32, 0.34, 7, msg, sizeof msg) == 0, "dataset: %s", msg);
  CHECK(ds.count == 3 && ds.num_val == 1 && ds.num_train == 2, "split %d/%d", ds.num_train,
        ds.num_val);
  int crop = 32, batch = 3;
  size_t px = (size_t)crop * crop * 3;
  float *c = malloc(px * 4), *d = malloc(px * 4);
  tr_loader *l1 = tr_loader_new(&ds, 5, crop, batch, 12, 1, msg, sizeof msg);
  tr_loader *l3 = tr_loader_new(&ds, 5, crop, batch, 12, 3, msg, sizeof msg);
  int same = l1 && l3;
  for (long step = 0; same && step < 4; step++) {
    const tr_sample *a, *b;
    same = tr_loader_next(l1, step, &a, msg, sizeof msg) == 0 &&
           tr_loader_next(l3, step, &b, msg, sizeof msg) == 0;
    for (int i = 0; same && i < batch; i++) {
      tr_sample direct = {c, d, 0, 0};
      same = tr_dataset_train_sample(&ds, 5, step, i, crop, 12, &direct, msg, sizeof msg) == 0 &&
             a[i].label == direct.label && b[i].label == direct.label &&
             memcmp(a[i].degraded, d, px * 4) == 0 && memcmp(b[i].degraded, d, px * 4) == 0 &&
             memcmp(a[i].clean, c, px * 4) == 0;
    }
  }
  CHECK(same, "loader batches equal the direct samples with 1 and 3 workers");
  tr_loader_free(l1);
  tr_loader_free(l3);

  /* Degraded crops come as 8-bit photos would (noise: a class whose float
   * output is never on the grid); input_bits 0 keeps them in float. */
  int off_grid[2] = {0, 0};
  for (int bits = 8, k = 0; k < 2; bits = 0, k++) {
    ds.input_bits = bits;
    tr_sample s = {c, d, 0, 0};
    for (int i = 0; i < 12; i++) {
      CHECK(tr_dataset_val_sample(&ds, i, crop, 12, 0.5f, &s, msg, sizeof msg) == 0, "%s", msg);
      if (s.label != 1) continue; /* noise */
      for (size_t j = 0; j < px; j++) {
        float v = d[j] * 255.0f;
        off_grid[k] += fabsf(v - floorf(v + 0.5f)) > 1e-3f || d[j] < 0 || d[j] > 1;
      }
    }
  }
  CHECK(off_grid[0] == 0 && off_grid[1] > (int)px / 2,
        "8-bit inputs: %d values off the 1/255 grid (want 0); float: %d", off_grid[0],
        off_grid[1]);

  /* Class weights: drawn in proportion (noise 3, haze 0, the rest 1, so
   * 13 units: noise 3/13, haze never), uniform weights draw as before,
   * and bad specs are refused. */
  ds.input_bits = 8;
  int uniform_labels[64], counts[12] = {0}, draws = 600, same_uniform = 1;
  for (int i = 0; i < 64; i++) {
    tr_sample s = {c, d, 0, 0};
    CHECK(tr_dataset_train_sample(&ds, 9, i, 0, crop, 12, &s, msg, sizeof msg) == 0, "%s", msg);
    uniform_labels[i] = s.label;
  }
  CHECK(tr_dataset_set_class_weights(&ds, "clean=2,noise=2,jpeg=2", 12, msg, sizeof msg) == 0,
        "%s", msg);
  CHECK(ds.class_weighted, "unequal weights are weighted");
  CHECK(tr_dataset_set_class_weights(&ds, "", 12, msg, sizeof msg) == 0 && !ds.class_weighted &&
            tr_dataset_class_balance(&ds, 1, 12) == 1.0,
        "no weights: uniform, balance 1");
  for (int i = 0; i < 64; i++) {
    tr_sample s = {c, d, 0, 0};
    tr_dataset_train_sample(&ds, 9, i, 0, crop, 12, &s, msg, sizeof msg);
    same_uniform &= s.label == uniform_labels[i];
  }
  CHECK(same_uniform, "uniform weights draw the classes as before");
  int noise = dg_class_index("noise"), haze = dg_class_index("haze");
  CHECK(tr_dataset_set_class_weights(&ds, "noise=3,haze=0", 12, msg, sizeof msg) == 0, "%s", msg);
  for (int i = 0; i < draws; i++)
    for (int j = 0; j < 12; j++) {
      tr_sample s = {c, d, -1, 0};
      CHECK(tr_dataset_train_sample(&ds, 9, i, j, crop, 12, &s, msg, sizeof msg) == 0, "%s", msg);
      if (s.label >= 0 && s.label < 12) counts[s.label]++;
    }
  /* the classification loss's balance: (13 / 12) / weight */
  CHECK(fabs(tr_dataset_class_balance(&ds, noise, 12) - 13.0 / 36) < 1e-12 &&
            fabs(tr_dataset_class_balance(&ds, 0, 12) - 13.0 / 12) < 1e-12 &&
            tr_dataset_class_balance(&ds, haze, 12) == 0.0,
        "class balance %g %g %g", tr_dataset_class_balance(&ds, noise, 12),
        tr_dataset_class_balance(&ds, 0, 12), tr_dataset_class_balance(&ds, haze, 12));
  int n = draws * 12;
  CHECK(counts[haze] == 0, "weight 0: haze never drawn (%d)", counts[haze]);
  double share = (double)counts[noise] / n;
  CHECK(fabs(share - 3.0 / 13) < 0.02, "noise drawn %.3f of the time (want 3/13 = %.3f)", share,
        3.0 / 13);
  for (int k = 0; k < 12; k++)
    if (k != noise && k != haze)
      CHECK(fabs((double)counts[k] / n - 1.0 / 13) < 0.015, "class %d drawn %.3f (want %.3f)", k,
            (double)counts[k] / n, 1.0 / 13);
  const char *bad[] = {"noise", "nosie=2", "noise=-1", "noise=2x", "noise=1,,jpeg=1"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    CHECK(tr_dataset_set_class_weights(&ds, bad[i], 12, msg, sizeof msg) != 0,
          "'%s' refused: %s", bad[i], msg);
  CHECK(tr_dataset_set_class_weights(&ds, "clean=0,noise=0,gaussian-blur=0,motion-blur=0,"
                                          "defocus-blur=0,jpeg=0,haze=0,rain=0,low-light=0,"
                                          "low-resolution=0,mixed-realesrgan=0,mixed-lowlight=0",
                                     12, msg, sizeof msg) != 0 && strstr(msg, "every weight is 0"),
        "all zero refused: %s", msg);
  free(c);
  free(d);
  tr_dataset_free(&ds);
}

/* A tiny network fits one batch: the whole training step (forward, both
 * losses, backward, clipping, AdamW) drives the loss towards zero. */
static void check_overfit(void) {
  mdc_arch a;
  tu_small_arch(&a, 8, 2, 0);
  mdc_weights w;
  mdc_net net;
  mdc_weights_init_random(&w, &a, 3, 0.0f, NULL);
  mdc_net_init(&net, &w, NULL);
  mdc_weights_clear(&w);
  tr_net t;
  char msg[256];
  int crop = 16;
  mdc_backend *be = mdc_backend_cpu_best_new(2);
  if (tr_net_init(&t, &net, crop, 1, be, msg, sizeof msg) != 0) {
    CHECK(0, "%s", msg);
    return;
  }
  size_t px = (size_t)crop * crop * 3;
  float *clean = tu_test_image(crop, crop, 3, 12), *deg = malloc(px * 4);
  for (size_t i = 0; i < px; i++) deg[i] = clean[i] + 0.1f * (float)((i * 7919 % 11) / 10.0 - 0.5);
  float *m = calloc(t.num_params * 2, sizeof(float)), *v = m + t.num_params;
  float onehot[4] = {0, 1, 0, 0};
  double first = 0, last = 0, l1 = 0, focal = 0;
  for (int step = 0; step < 600; step++) {
    tr_net_zero_grad(&t);
    const float *ins[1] = {deg}, *cls[1] = {clean}, *conds[1] = {onehot};
    tr_net_forward(&t, be, 1, ins, NULL, conds, 1);
    double dlog[4];
    l1 = tr_net_restoration_loss(&t, cls, 0, 0.0, 1.0f);
    focal = tr_focal_loss(t.logits, 4, 1, 2.0, 1.0, dlog);
    tr_net_backward(&t, be, t.d_out, dlog);
    tr_clip_grad_norm(be, t.grad, t.num_params, 1.0);
    be->adamw_step(be, t.net.storage, t.grad, m, v, t.num_params, 2e-3f, 0.9f, 0.9f, 1e-8f, 0.0f,
                   step + 1);
    if (step == 0) first = l1 + focal;
    last = l1 + focal;
  }
  printf("overfit one crop: loss %.4f -> %.5f (L1 %.5f, focal %.5f) in 600 steps\n", first, last,
         l1, focal);
  CHECK(l1 < 0.01 && focal < 0.01 && last < first / 20, "loss %g -> %g", first, last);
  free(clean), free(deg), free(m);
  tr_net_free(&t);
  mdc_backend_free(be);
}

int main(void) {
  check_overfit();
  check_loader();
  check_checkpoint();
  check_focal();
  check_export_round_trip();
  check_gradients(0, 0, 0, 0);
  check_gradients(1, 0, 0, 0);
  check_gradients(0, 64, 0, 0);
  check_gradients(0, 0, 0, 1);
  check_gradients(0, 0, 1, 0);
  check_gradients(1, 0, 1, 0);
  check_batch_equals_crops(0);
  check_batch_equals_crops(1);
  check_head_only(0);
  check_head_only(1);
  return tu_finish();
}
