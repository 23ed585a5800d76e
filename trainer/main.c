/* main.c - maskdcpt-train: MaskDCPT pre-training, plain training from
 * scratch and all-in-one fine-tuning on the CPU, resumable, exporting the
 * EMA weights as a weights file.  See docs/training.md. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "dataset.h"
#include "degrade.h"
#include "eval.h"
#include "loader.h"
#include "bench.h"
#include "optim.h"
#include "plot.h"
#include "split.h"
#include "train_net.h"
#include "validate.h"

typedef enum { MODE_SCRATCH, MODE_MASKDCPT, MODE_DCPT, MODE_FINETUNE, MODE_CLASSIFIER } train_mode;
static const char *mode_names[] = {"scratch", "maskdcpt", "dcpt", "finetune", "classifier"};

typedef struct settings {
  const char *data, *out, *init;
  const char *class_weights; /* --class-weights spec, NULL: uniform */
  train_mode mode;
  mdc_arch arch;
  int crop, batch, micro_batch, threads, loader_threads;
  long steps, warmup, checkpoint_every, log_every;
  double lr, wd, clip, ema, focal_gamma, cls_weight, mask_ratio, val_fraction, psnr_cap;
  long seed;
  int resume, fp16, psnr_loss, input_bits;
  const char *device; /* auto, cpu or cuda; not part of the run's identity */
} settings;

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *fmt, const char *arg) {
  fprintf(stderr, "maskdcpt-train: ");
  fprintf(stderr, fmt, arg);
  fputc('\n', stderr);
  exit(1);
}

static const char *usage =
    "Usage: maskdcpt-train DATA OUTDIR [OPTIONS]\n"
    "       maskdcpt-train eval WEIGHTS DATA [--crop 128] [--level 0.5] [--csv FILE]\n"
    "       maskdcpt-train plot OUT.png LOG.csv[=LABEL]...\n"
    "       maskdcpt-train split DATA [--crop N] [--train]   (validation photos' names)\n"
    "       maskdcpt-train bench [--device D] [--width 32] [--crop 256] [--batch 16]\n"
    "Trains on the photos in DATA (a directory or a list file) and writes\n"
    "OUTDIR/checkpoint.bin, OUTDIR/log.csv, OUTDIR/curves.png, OUTDIR/validation.csv,\n"
    "OUTDIR/validation.png (degraded / restored / clean per class) and\n"
    "OUTDIR/weights.safetensors (EMA).\n"
    "\n"
    "  --mode M            scratch (restoration + classification, no mask),\n"
    "                      maskdcpt (pre-training: 16x16 patches masked),\n"
    "                      dcpt (pre-training, two passes: autoencode the clean\n"
    "                      crop; classify the degraded one),\n"
    "                      finetune (no mask; decoder conditioned on the true\n"
    "                      label or, for half the crops, on the prediction),\n"
    "                      classifier (the classifier head of --init's network\n"
    "                      alone; the rest stays as it is: an encoder pass per\n"
    "                      crop, no restoration)\n"
    "  --init FILE         start from these weights (e.g. a pre-training export)\n"
    "  --width W --enc L --middle N --dec L --window P --hidden H\n"
    "                      architecture of a new network (default 16, 1,1,1,2, 2,\n"
    "                      1,1,1,1, 192, 64); classes: the degradation registry\n"
    "  --crop N            crop side, a multiple of 16, <= window (default 64)\n"
    "  --batch N           crops per step (default 8)\n"
    "  --micro-batch N     crops per pass through the network (default: the\n"
    "                      whole batch); gradients accumulate, so only memory\n"
    "                      and speed change: lower it when memory runs out\n"
    "  --steps N           optimizer steps in all (default 1000)\n"
    "  --lr X --warmup N   AdamW learning rate (1e-3), warm-up steps (steps/20)\n"
    "  --wd X              decoupled weight decay (0)\n"
    "  --clip X            gradient-norm clip (1.0; 0 = off)\n"
    "  --ema X             EMA decay of the exported weights (0.999; warmed up as\n"
    "                      min(X, (1+step)/(10+step)))\n"
    "  --loss L            restoration loss: l1 (default) or psnr (NAFNet's\n"
    "                      10 log10(MSE) per crop, i.e. minus its PSNR)\n"
    "  --psnr-cap DB       with --loss psnr: 10 log10(MSE + 10^(-DB/10)), so crops\n"
    "                      restored better than DB weigh no more than those at DB\n"
    "                      (default 80: NAFNet's 1e-8)\n"
    "  --input-bits N      round degraded crops to N bits per channel, as real\n"
    "                      photos are (default 8; 0 = keep them in float)\n"
    "  --class-weights L   how often each class is drawn, relative, e.g.\n"
    "                      noise=3,low-light=2 (unnamed classes 1; default:\n"
    "                      all equal); the classification loss weighs each\n"
    "                      crop by the inverse, so every class counts alike\n"
    "                      there\n"
    "  --fp16              export the weights as float16\n"
    "  --focal-gamma X     focal loss gamma (2; 0 = cross-entropy)\n"
    "  --cls-weight X      weight of the classification loss (0.1)\n"
    "  --mask-ratio X      masked share of patches in maskdcpt mode (0.5)\n"
    "  --seed N            every random draw follows from it (1)\n"
    "  --device D          auto (default: CUDA when usable, else the CPU), cpu or\n"
    "                      cuda; MASKDCPT_CUDA_STRICT=1 turns TF32 off\n"
    "  --threads N         compute threads on the CPU (all CPUs)\n"
    "  --loader-threads N  threads preparing the next batch meanwhile (1)\n"
    "  --checkpoint-every N   steps between checkpoints (100); also on Ctrl-C\n"
    "  --resume            continue OUTDIR's run from its checkpoint\n";

static int parse_list(const char *s, int *v) {
  int n = 0;
  for (const char *p = s; *p && n < MDC_MAX_LEVELS;) {
    char *end;
    long x = strtol(p, &end, 10);
    if (end == p || x < 0 || x > MDC_MAX_BLOCKS) return -1;
    v[n++] = (int)x;
    p = *end == ',' ? end + 1 : end;
    if (*end && *end != ',') return -1;
  }
  return n;
}

static void parse_args(int argc, char **argv, settings *s) {
  static const struct option opts[] = {
      {"mode", 1, 0, 'm'},     {"init", 1, 0, 'i'},      {"width", 1, 0, 'W'},
      {"enc", 1, 0, 'e'},      {"middle", 1, 0, 'M'},    {"dec", 1, 0, 'd'},
      {"window", 1, 0, 'P'},   {"hidden", 1, 0, 'H'},    {"crop", 1, 0, 'c'},
      {"batch", 1, 0, 'b'},    {"steps", 1, 0, 's'},     {"lr", 1, 0, 'l'},
      {"warmup", 1, 0, 'u'},   {"wd", 1, 0, 'w'},        {"clip", 1, 0, 'C'},
      {"ema", 1, 0, 'E'},      {"focal-gamma", 1, 0, 'g'}, {"cls-weight", 1, 0, 'k'},
      {"mask-ratio", 1, 0, 'r'}, {"seed", 1, 0, 'S'},    {"threads", 1, 0, 'j'},
      {"checkpoint-every", 1, 0, 'K'}, {"resume", 0, 0, 'R'}, {"help", 0, 0, 'h'},
      {"loader-threads", 1, 0, 'L'}, {"loss", 1, 0, 'o'}, {"fp16", 0, 0, 'F'},
      {"device", 1, 0, 'D'},   {"psnr-cap", 1, 0, 'Q'},  {"input-bits", 1, 0, 'I'},
      {"micro-batch", 1, 0, 'B'}, {"class-weights", 1, 0, 'T'},
      {0, 0, 0, 0}};
  memset(s, 0, sizeof *s);
  s->mode = MODE_MASKDCPT;
  s->arch.width = 16;
  s->arch.levels = parse_list("1,1,1,2", s->arch.enc_blocks);
  parse_list("1,1,1,1", s->arch.dec_blocks);
  s->arch.middle_blocks = 2;
  s->arch.cls_hidden = 64;
  s->arch.sca_window = 192;
  s->arch.norm_eps = 1e-6f;
  s->crop = 64, s->batch = 8, s->steps = 1000, s->warmup = -1, s->checkpoint_every = 100;
  s->loader_threads = 1;
  s->device = "auto";
  s->log_every = 10;
  s->lr = 1e-3, s->clip = 1.0, s->ema = 0.999, s->focal_gamma = 2.0, s->cls_weight = 0.1;
  s->psnr_cap = 80, s->input_bits = 8;
  s->mask_ratio = 0.5, s->val_fraction = TR_VAL_FRACTION, s->seed = 1;
  int c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'm':
      s->mode = !strcmp(optarg, "scratch") ? MODE_SCRATCH
                : !strcmp(optarg, "maskdcpt") ? MODE_MASKDCPT
                : !strcmp(optarg, "dcpt")     ? MODE_DCPT
                : !strcmp(optarg, "finetune") ? MODE_FINETUNE
                : !strcmp(optarg, "classifier") ? MODE_CLASSIFIER
                                                : (die("unknown mode '%s'", optarg), MODE_SCRATCH);
      break;
    case 'i': s->init = optarg; break;
    case 'W': s->arch.width = atoi(optarg); break;
    case 'e': s->arch.levels = parse_list(optarg, s->arch.enc_blocks); break;
    case 'M': s->arch.middle_blocks = atoi(optarg); break;
    case 'd':
      if (parse_list(optarg, s->arch.dec_blocks) != s->arch.levels)
        die("--dec needs as many counts as --enc (%s)", optarg);
      break;
    case 'P': s->arch.sca_window = atoi(optarg); break;
    case 'H': s->arch.cls_hidden = atoi(optarg); break;
    case 'c': s->crop = atoi(optarg); break;
    case 'b': s->batch = atoi(optarg); break;
    case 'B': s->micro_batch = atoi(optarg); break;
    case 's': s->steps = atol(optarg); break;
    case 'l': s->lr = atof(optarg); break;
    case 'u': s->warmup = atol(optarg); break;
    case 'w': s->wd = atof(optarg); break;
    case 'C': s->clip = atof(optarg); break;
    case 'E': s->ema = atof(optarg); break;
    case 'g': s->focal_gamma = atof(optarg); break;
    case 'k': s->cls_weight = atof(optarg); break;
    case 'r': s->mask_ratio = atof(optarg); break;
    case 'S': s->seed = atol(optarg); break;
    case 'j': s->threads = atoi(optarg); break;
    case 'K': s->checkpoint_every = atol(optarg); break;
    case 'R': s->resume = 1; break;
    case 'L': s->loader_threads = atoi(optarg); break;
    case 'o':
      if (strcmp(optarg, "l1") && strcmp(optarg, "psnr")) die("--loss: l1 or psnr, not '%s'", optarg);
      s->psnr_loss = !strcmp(optarg, "psnr");
      break;
    case 'F': s->fp16 = 1; break;
    case 'Q': s->psnr_cap = atof(optarg); break;
    case 'I': s->input_bits = atoi(optarg); break;
    case 'T': s->class_weights = optarg; break;
    case 'D':
      if (strcmp(optarg, "auto") && strcmp(optarg, "cpu") && strcmp(optarg, "cuda"))
        die("--device: auto, cpu or cuda, not '%s'", optarg);
      s->device = optarg;
      break;
    case 'h': fputs(usage, stdout); exit(0);
    default: fputs(usage, stderr); exit(2);
    }
  }
  if (argc - optind != 2) {
    fputs(usage, stderr);
    exit(2);
  }
  s->data = argv[optind];
  s->out = argv[optind + 1];
  if (s->mode == MODE_CLASSIFIER && !s->init)
    die("%s", "--mode classifier retrains the head of a trained network: give it with --init");
  if (s->warmup < 0) s->warmup = s->steps / 20;
  if (s->batch < 1 || s->micro_batch < 0 || s->steps < 1 || s->crop < 16 || !(s->lr > 0) || s->mask_ratio < 0 ||
      s->loader_threads < 1 || s->mask_ratio >= 1 || !(s->psnr_cap > 0 && s->psnr_cap <= 120) || s->input_bits < 0 || s->input_bits > 16)
    die("%s", "bad --batch, --micro-batch, --steps, --crop, --lr, --mask-ratio, --psnr-cap or --input-bits");
  s->arch.num_classes = dg_num_classes();
  for (int i = 0; i < s->arch.num_classes; i++)
    snprintf(s->arch.class_names[i], MDC_MAX_CLASS_NAME, "%s", dg_class_name(i));
  if (s->class_weights) { /* checked now, before the photos load */
    tr_dataset probe = {0};
    char msg[256];
    if (tr_dataset_set_class_weights(&probe, s->class_weights, s->arch.num_classes, msg,
                                     sizeof msg))
      die("--class-weights: %s", msg);
  }
}

/* The settings that must match for a resume, as JSON. */
static char *settings_json(const settings *s) {
  char *arch = mdc_arch_to_json(&s->arch), *buf = malloc(4096);
  if (!arch || !buf) die("%s", "out of memory");
  snprintf(buf, 4096,
           "{\"mode\":\"%s\",\"arch\":%s,\"crop\":%d,\"batch\":%d,\"steps\":%ld,\"lr\":%g,"
           "\"warmup\":%ld,\"wd\":%g,\"clip\":%g,\"ema\":%g,\"focal_gamma\":%g,"
           "\"cls_weight\":%g,\"mask_ratio\":%g,\"seed\":%ld,\"init\":\"%s\","
           "\"loss\":\"%s\",\"psnr_cap\":%g,\"input_bits\":%d,\"synthesis_version\":%d%s%s%s}",
           mode_names[s->mode], arch, s->crop, s->batch, s->steps, s->lr, s->warmup, s->wd,
           s->clip, s->ema, s->focal_gamma, s->cls_weight, s->mask_ratio, s->seed,
           s->init ? s->init : "", s->psnr_loss ? "psnr" : "l1", s->psnr_cap, s->input_bits, DG_VERSION,
           /* only when given, so that earlier runs' checkpoints still resume */
           s->class_weights ? ",\"class_weights\":\"" : "",
           s->class_weights ? s->class_weights : "", s->class_weights ? "\"" : "");
  free(arch);
  return buf;
}

/* 64-bit FNV-1a of a file, or 0 when it cannot be read: the training
 * data's manifest, recorded in the weights' provenance. */
static uint64_t file_hash(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  uint64_t h = 0xcbf29ce484222325ull;
  int c;
  while ((c = fgetc(f)) != EOF) h = (h ^ (unsigned char)c) * 0x100000001b3ull;
  fclose(f);
  return h;
}

/* splitmix64 for the masks */
static uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* Exactly round(ratio * patches) patches masked, chosen by a seeded shuffle. */
static void draw_mask(unsigned char *mask, int patches, double ratio, uint64_t seed) {
  int n = patches * patches, masked = (int)(ratio * n + 0.5);
  int order[4096];
  for (int i = 0; i < n; i++) order[i] = i;
  for (int i = n - 1; i > 0; i--) {
    int j = (int)(mix64(seed + (uint64_t)i) % (uint64_t)(i + 1)), t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  for (int i = 0; i < n; i++) mask[order[i]] = i >= masked;
}

/* The compute backend --device asks for: CUDA (auto: when usable) or the
 * best CPU one. */
static mdc_backend *make_backend(const settings *s) {
  char msg[512];
  mdc_backend *be = tr_backend_new(s->device, s->threads, msg, sizeof msg);
  if (!be) die("%s", msg);
  if (msg[0]) fprintf(stderr, "maskdcpt-train: %s\n", msg);
  return be;
}

/* The provenance of the --init weights, kept so that a chain of runs
 * (e.g. pre-training, then fine-tuning) stays on record in the export. */
static char *init_provenance;

static int export_weights(const tr_net *t, const float *ema, const settings *s, long step,
                          const tr_val_result *val, const char *path) {
  mdc_weights w;
  maskdcpt_error err;
  char prov[4096], manifest[4096], *cfg = settings_json(s), *synth = dg_registry_json();
  snprintf(manifest, sizeof manifest, "%s/training-manifest.tsv", s->data);
  snprintf(prov, sizeof prov,
           "{\"kind\":\"trained\",\"trainer\":\"maskdcpt-train %s\",\"steps\":%ld,"
           "\"data\":\"%s\",\"data_manifest_fnv1a64\":\"%016llx\",\"settings\":%s,"
           "\"validation\":{\"psnr_input\":%.3f,\"psnr_restored\":%.3f,\"accuracy\":%.4f,"
           "\"samples\":%d,\"weights\":\"current (not EMA) at the last checkpoint\"}}",
           maskdcpt_version_string(), step, s->data, (unsigned long long)file_hash(manifest), cfg,
           val->psnr_in, val->psnr_out, val->accuracy, val->samples);
  char *full = NULL;
  if (init_provenance) { /* prov ends with '}': insert the init's record */
    size_t n = strlen(prov) + strlen(init_provenance) + 32;
    if (!(full = malloc(n))) die("%s", "out of memory");
    snprintf(full, n, "%.*s,\"init_provenance\":%s}", (int)strlen(prov) - 1, prov,
             init_provenance);
  }
  int rc = mdc_net_to_weights(&t->net, ema, &w, &err) == MASKDCPT_OK &&
                   mdc_weights_set_metadata(&w, "provenance", full ? full : prov, &err) ==
                       MASKDCPT_OK &&
                   (!synth || mdc_weights_set_metadata(&w, "synthesis", synth, &err) == MASKDCPT_OK) &&
                   mdc_weights_write(&w, path, s->fp16, &err) == MASKDCPT_OK
               ? 0
               : -1;
  if (rc) fprintf(stderr, "maskdcpt-train: %s\n", err.message);
  mdc_weights_clear(&w);
  free(full);
  free(cfg);
  free(synth);
  return rc;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "eval") == 0) return tr_eval_main(argc - 1, argv + 1);
  if (argc > 1 && strcmp(argv[1], "plot") == 0) return tr_plot_main(argc - 1, argv + 1);
  if (argc > 1 && strcmp(argv[1], "split") == 0) return tr_split_main(argc - 1, argv + 1);
  if (argc > 1 && strcmp(argv[1], "bench") == 0) return tr_bench_main(argc - 1, argv + 1);
  settings s;
  parse_args(argc, argv, &s);
  char msg[1024], path[4096];
  if (mkdir(s.out, 0755) != 0 && errno != EEXIST) die("cannot create %s", s.out);

  /* network: new, or from --init */
  mdc_weights w;
  maskdcpt_error err;
  if (s.init) {
    if (mdc_weights_load(s.init, &w, &err) != MASKDCPT_OK) die("%s", err.message);
    s.arch = w.arch;
    const char *prov = mdc_weights_metadata(&w, "provenance");
    if (prov && *prov == '{' && !(init_provenance = strdup(prov))) die("%s", "out of memory");
  } else if (mdc_weights_init_random(&w, &s.arch, (uint64_t)s.seed, 0.0f, &err) != MASKDCPT_OK) {
    die("%s", err.message);
  }
  mdc_net net;
  if (mdc_net_init(&net, &w, &err) != MASKDCPT_OK) die("%s", err.message);
  mdc_weights_clear(&w);
  mdc_backend *be = make_backend(&s);
  int micro = tr_micro_batch(s.micro_batch, s.batch);
  tr_net t;
  if (tr_net_init(&t, &net, s.crop, micro, be, msg, sizeof msg) != 0) die("%s", msg);

  tr_dataset ds;
  if (tr_dataset_load(&ds, s.data, s.crop, s.val_fraction, TR_SPLIT_SEED, msg, sizeof msg) != 0)
    die("%s", msg);
  ds.input_bits = s.input_bits;
  if (s.class_weights &&
      tr_dataset_set_class_weights(&ds, s.class_weights, s.arch.num_classes, msg, sizeof msg))
    die("--class-weights: %s", msg);

  /* optimizer state: param (= the net's storage), m, v, ema in the
   * backend's memory; `st` holds host copies for checkpoints and export */
  size_t np = t.num_params;
  float *param = t.net.storage, *opt = mdc_be_alloc(be, np * 3 * sizeof(float));
  float *opt_m = opt, *opt_v = opt ? opt + np : NULL, *ema = opt ? opt + 2 * np : NULL;
  tr_state st = {0};
  st.n = np;
  st.settings = settings_json(&s);
  float *host = calloc(np * 4, sizeof(float));
  if (!opt || !host) die("%s", "out of memory for the optimizer state");
  st.param = host, st.m = host + np, st.v = host + 2 * np, st.ema = host + 3 * np;
  mdc_be_copy(be, ema, param, np * sizeof(float));
  snprintf(path, sizeof path, "%s/checkpoint.bin", s.out);
  if (s.resume) {
    tr_state saved;
    if (tr_checkpoint_read(path, &saved, msg, sizeof msg) != 0) die("%s", msg);
    if (saved.n != st.n || strcmp(saved.settings, st.settings) != 0)
      die("%s: the checkpoint was made with other settings", path);
    tr_net_upload(&t, param, saved.param, np);
    tr_net_upload(&t, opt, saved.m, np * 3); /* m, v, ema: contiguous in the file's arrays */
    st.step = saved.step;
    tr_state_free(&saved);
    fprintf(stderr, "maskdcpt-train: resuming %s at step %ld\n", s.out, st.step);
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

  snprintf(path, sizeof path, "%s/log.csv", s.out);
  FILE *log = fopen(path, s.resume ? "a" : "w");
  if (!log) die("cannot write %s", path);
  if (!s.resume) /* restoration: the L1 or PSNR loss */
    fprintf(log, "step,loss,restoration,focal,accuracy,lr,grad_norm,crops_per_s\n");
  snprintf(path, sizeof path, "%s/validation.csv", s.out);
  FILE *val_log = fopen(path, s.resume ? "a" : "w");
  if (val_log && !s.resume) fprintf(val_log, "step,psnr_input,psnr_restored,accuracy\n");

  int patches = s.crop >> s.arch.levels;
  unsigned char *mask = malloc((size_t)patches * patches * micro);
  if (!mask || patches * patches > 4096) die("%s", "out of memory");
  int k = s.arch.num_classes;
  const double psnr_eps = pow(10.0, -s.psnr_cap / 10);
  tr_loader *loader = tr_loader_new(&ds, (uint64_t)s.seed, s.crop, s.batch, k, s.loader_threads,
                                    msg, sizeof msg);
  if (!loader) die("%s", msg);
  fprintf(stderr,
          "maskdcpt-train: %s, %d training / %d validation photos, %lld parameters, crop %d, "
          "batch %d, %ld steps, %s\n",
          mode_names[s.mode], ds.num_train, ds.num_val, (long long)st.n, s.crop, s.batch, s.steps,
          be->name);

  double t_start = now_seconds(), t_log = t_start;
  tr_val_result last_val = {0};
  double sum_loss = 0, sum_l1 = 0, sum_focal = 0;
  int correct = 0, seen = 0;
  while (st.step < s.steps && !stop_requested) {
    long step = st.step;
    tr_net_zero_grad(&t);
    const tr_sample *samples;
    if (tr_loader_next(loader, step, &samples, msg, sizeof msg) != 0) die("%s", msg);
    for (int b0 = 0; b0 < s.batch; b0 += t.batch) {
      int n = s.batch - b0 < t.batch ? s.batch - b0 : t.batch;
      const float *clean[n], *deg[n], *cond[n];
      const unsigned char *masks[n];
      float onehot[n][MDC_MAX_CLASSES];
      double dlog[n * k]; /* [n][K], as tr_net_backward reads it */
      for (int i = 0; i < n; i++) {
        const tr_sample *smp = &samples[b0 + i];
        clean[i] = smp->clean, deg[i] = smp->degraded;
        memset(onehot[i], 0, sizeof onehot[i]);
        onehot[i][smp->label] = 1.0f;
        /* fine-tuning teaches auto mode: half the crops use the prediction */
        cond[i] = s.mode == MODE_FINETUNE && ((b0 + i) & 1) ? NULL : onehot[i];
        masks[i] = mask + (size_t)i * patches * patches;
        if (s.mode == MODE_MASKDCPT)
          draw_mask(mask + (size_t)i * patches * patches, patches, s.mask_ratio,
                    mix64((uint64_t)s.seed ^ mix64(step * 131 + b0 + i)));
      }
      double rec = 0, focal = 0;
      if (s.mode == MODE_CLASSIFIER) {
        tr_net_forward(&t, be, n, deg, NULL, NULL, 0);
      } else if (s.mode == MODE_DCPT) {
        /* DCPT: the network autoencodes the clean crops (conditioned on
         * "clean"), and the classifier names the degraded crops' damage
         * from its encoder features: two forward and backward passes. */
        float clean_class[MDC_MAX_CLASSES] = {1.0f};
        const float *cc[n];
        for (int i = 0; i < n; i++) cc[i] = clean_class;
        tr_net_forward(&t, be, n, clean, NULL, cc, 1);
        rec = tr_net_restoration_loss(&t, clean, 0, 0.0, 1.0f / s.batch);
        tr_net_backward(&t, be, t.d_out, NULL);
        tr_net_forward(&t, be, n, deg, NULL, NULL, 0);
      } else {
        tr_net_forward(&t, be, n, deg, s.mode == MODE_MASKDCPT ? masks : NULL, cond, 1);
        rec = tr_net_restoration_loss(&t, clean, s.psnr_loss, psnr_eps, 1.0f / s.batch);
      }
      for (int i = 0; i < n; i++) {
        const double *lg = t.logits + (size_t)i * k;
        int label = samples[b0 + i].label;
        /* with --class-weights, each class counts alike in the classifier's loss */
        double balance = tr_dataset_class_balance(&ds, label, k);
        focal += tr_focal_loss(lg, k, label, s.focal_gamma, s.cls_weight * balance / s.batch,
                               dlog + i * k);
        int best = 0;
        for (int q = 1; q < k; q++)
          if (lg[q] > lg[best]) best = q;
        correct += best == label;
      }
      if (s.mode == MODE_CLASSIFIER)
        tr_net_backward_head(&t, be, dlog);
      else if (s.mode == MODE_DCPT)
        tr_net_backward(&t, be, NULL, dlog);
      else
        tr_net_backward(&t, be, t.d_out, s.cls_weight > 0 ? dlog : NULL);
      seen += n;
      sum_l1 += rec, sum_focal += focal, sum_loss += rec + s.cls_weight * focal;
    }
    double norm = tr_clip_grad_norm(be, t.grad, np, s.clip);
    double lr = tr_lr_at(step, s.steps, s.warmup, s.lr, 0.01);
    be->adamw_step(be, param, t.grad, opt_m, opt_v, np, (float)lr, 0.9f, 0.9f, 1e-8f,
                   (float)s.wd, step + 1);
    /* EMA warm-up: early on, the average follows the weights closely */
    double decay = fmin(s.ema, (1.0 + step) / (10.0 + step));
    be->ema_update(be, ema, param, np, (float)decay);
    st.step = step + 1;
    if (tr_net_check(&t, msg, sizeof msg) != 0) die("%s", msg);

    if (st.step % s.log_every == 0 || st.step == s.steps) {
      double tnow = now_seconds(), rate = seen / (tnow - t_log);
      double eta = (s.steps - st.step) * s.batch / (rate > 0 ? rate : 1);
      fprintf(log, "%ld,%.6f,%.6f,%.6f,%.4f,%.6g,%.4f,%.2f\n", st.step, sum_loss / seen,
              sum_l1 / seen, sum_focal / seen, (double)correct / seen, lr, norm, rate);
      fflush(log);
      fprintf(stderr,
              "\rstep %ld/%ld  loss %.4f  rec %.4f  focal %.3f  acc %.2f  lr %.2e  %.1f crops/s  "
              "ETA %.0f s   ",
              st.step, s.steps, sum_loss / seen, sum_l1 / seen, sum_focal / seen,
              (double)correct / seen, lr, rate, eta);
      t_log = tnow, sum_loss = sum_l1 = sum_focal = 0, correct = seen = 0;
    }
    if (st.step % s.checkpoint_every == 0 || st.step == s.steps || stop_requested) {
      snprintf(path, sizeof path, "%s/checkpoint.bin", s.out);
      tr_net_download(&t, st.param, param, np);
      tr_net_download(&t, st.m, opt, np * 3);
      if (tr_checkpoint_write(path, &st, msg, sizeof msg) != 0) die("%s", msg);
      char log_path[4096], png[4096];
      snprintf(log_path, sizeof log_path, "%s/log.csv", s.out);
      snprintf(png, sizeof png, "%s/curves.png", s.out);
      const char *lp = log_path, *label = mode_names[s.mode];
      if (tr_plot_logs(png, &lp, &label, 1, msg, sizeof msg) != 0)
        fprintf(stderr, "maskdcpt-train: %s\n", msg);
      /* validation: current weights, auto mode, one crop per class */
      if (ds.num_val > 0) {
        tr_val_result *v = &last_val;
        snprintf(png, sizeof png, "%s/validation.png", s.out);
        if (tr_validate(&t, be, &ds, k, png, v, msg, sizeof msg) != 0) {
          fprintf(stderr, "maskdcpt-train: %s\n", msg);
        } else if (val_log) {
          fprintf(val_log, "%ld,%.4f,%.4f,%.4f\n", st.step, v->psnr_in, v->psnr_out, v->accuracy);
          fflush(val_log);
        }
      }
    }
  }
  fputc('\n', stderr);
  double waited = tr_loader_wait_seconds(loader), elapsed = now_seconds() - t_start;
  fprintf(stderr, "maskdcpt-train: waited for data %.1f s of %.1f s (%.1f%%)\n", waited, elapsed,
          elapsed > 0 ? 100 * waited / elapsed : 0.0);
  tr_loader_free(loader);
  fclose(log);
  if (val_log) fclose(val_log);
  /* a resume with no steps left (e.g. to export again with --fp16) still
   * records real validation figures */
  if (last_val.samples == 0 && ds.num_val > 0) {
    snprintf(path, sizeof path, "%s/validation.png", s.out);
    if (tr_validate(&t, be, &ds, k, path, &last_val, msg, sizeof msg) != 0)
      fprintf(stderr, "maskdcpt-train: %s\n", msg);
  }
  snprintf(path, sizeof path, "%s/weights.safetensors", s.out);
  tr_net_download(&t, st.ema, ema, np);
  int rc = export_weights(&t, st.ema, &s, st.step, &last_val, path);
  if (rc == 0)
    fprintf(stderr, "maskdcpt-train: %s after %ld steps (%.0f s): %s\n",
            stop_requested ? "stopped" : "done", st.step, now_seconds() - t_start, path);
  free(mask), free(host), free(st.settings), free(init_provenance);
  mdc_be_free(be, opt);
  tr_dataset_free(&ds);
  tr_net_free(&t);
  mdc_backend_free(be);
  return rc ? 1 : stop_requested ? 130 : 0;
}
