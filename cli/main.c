/* main.c - the maskdcpt command-line tool: restore, classify, info, bench,
 * init (degrade, contact-sheet and compare live in their own files).
 * Errors go to stderr as "maskdcpt: message"; exit status 0 on success,
 * 1 on failure, 2 on a usage error, 130 when interrupted. */
#include <errno.h>
#include <getopt.h>
#include <libintl.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "degrade.h"
#include "degrade_cmd.h"
#include "image_io.h"
#include "maskdcpt.h"
#include "progress.h"
#include "weights.h"

void cli_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("maskdcpt: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static const char *usage_text =
    N_("Usage: maskdcpt COMMAND [OPTIONS]\n"
       "\n"
       "Commands:\n"
       "  restore IN OUT   restore a photo (PNG, JPEG or WebP in and out)\n"
       "  classify IN...   print the probability of each degradation type\n"
       "  info [WEIGHTS]   show a weights file's architecture, classes and provenance\n"
       "  bench            measure speed (megapixels/s, GFLOP/s, share of the FMA peak)\n"
       "  init OUT         write a randomly initialised (untrained) weights file\n"
       "  degrade IN OUT   add a synthetic degradation of a known class (test pairs)\n"
       "  contact-sheet IN OUT.png  every degradation class at three levels\n"
       "  compare REF IMG...  PSNR and SSIM of images against a reference\n"
       "\n"
       "Run 'maskdcpt COMMAND --help' for a command's options.\n"
       "Weights: --weights FILE (or 'fast', 'quality': the shipped width-16 and\n"
       "width-32 networks), else $MASKDCPT_WEIGHTS, else the shipped 'fast' one.\n");

static const char *restore_help =
    N_("Usage: maskdcpt restore IN OUT [OPTIONS]\n"
       "Restores IN and writes OUT (format from OUT's extension: .png, .jpg, .webp).\n"
       "\n"
       "  -t, --type auto|NAME   degradation to remove: auto (classify first, default)\n"
       "                         or a class of the weights file (see 'maskdcpt info')\n"
       "  -s, --strength S       0..1: out = in + S * (restored - in) (default 1)\n"
       "  -w, --weights FILE     weights file (safetensors), or fast (default) or\n"
       "                         quality: the shipped networks (see 'maskdcpt --help')\n"
       "  -d, --device D         auto (default), cpu or cuda\n"
       "      --tile N           tile edge in pixels (default: from the memory budget)\n"
       "      --memory MIB       working-memory budget in MiB (default 1024; on a GPU,\n"
       "                         half its free memory)\n"
       "  -j, --threads N        worker threads (default: all CPUs)\n"
       "  -q, --quality Q        JPEG/WebP quality 1..100 (WebP 100 = lossless; default 92)\n"
       "      --bit-depth 8|16   PNG output depth (default: that of IN)\n"
       "      --scalar           use the portable scalar kernels (slow; for testing)\n"
       "      --quiet            no progress bar or report\n"
       "Alpha is kept untouched; grey stays grey; 16-bit PNG stays 16-bit.\n"
       "On any error no output file is left behind.\n");

static const char *classify_help =
    N_("Usage: maskdcpt classify IN... [OPTIONS]\n"
       "Prints the probability of each degradation class, most likely first.\n"
       "\n"
       "  -w, --weights FILE     weights file, or fast or quality (the shipped ones)\n"
       "  -d, --device D         auto (default), cpu or cuda\n"
       "  -j, --threads N        worker threads\n"
       "      --csv              print 'file,predicted,CLASS...' (one column per class of\n"
       "                         the weights file, in its order) and one line per IN\n");

static const char *info_help =
    N_("Usage: maskdcpt info [WEIGHTS]\n"
       "Shows the architecture, classes and metadata (provenance, synthesis) of a\n"
       "weights file (default: the one restore would use).\n");

static const char *init_help =
    N_("Usage: maskdcpt init OUT [OPTIONS]\n"
       "Writes a weights file with random weights (seeded): for tests and as a\n"
       "trainer's starting point.  It restores nothing useful and says so in its\n"
       "provenance.\n"
       "\n"
       "      --width W           channels after the intro conv (default 16)\n"
       "      --enc LIST          blocks per encoder level (default 1,1,1,2)\n"
       "      --middle N          middle blocks (default 2)\n"
       "      --dec LIST          blocks per decoder level, deepest first (default 1,1,1,1)\n"
       "      --classes LIST      class names (default: the degradation classes of\n"
       "                          'maskdcpt degrade --list', in that order)\n"
       "      --hidden H          classifier width (default 64)\n"
       "      --window N          channel-attention pooling window, 0 = global (default 192)\n"
       "      --eps E             LayerNorm epsilon (default 1e-6)\n"
       "      --seed N            random seed (default 1)\n"
       "      --residual-scale S  range of beta/gamma (default 0: identity blocks as in\n"
       "                          NAFNet; tests use e.g. 0.5)\n"
       "      --fp16              store tensors as float16\n");

/* --------------------------------------------------------------- weights */

/* The shipped weights file `name` (default, quality): installed, else in
 * the source tree (a build that was not installed); NULL if neither. */
static const char *shipped_weights(const char *name) {
  static char path[4096];
  const char *dirs[] = {MASKDCPT_DATADIR "/maskdcpt", MASKDCPT_SOURCE_DATADIR};
  for (int i = 0; i < 2; i++) {
    snprintf(path, sizeof path, "%s/%s.safetensors", dirs[i], name);
    if (access(path, R_OK) == 0) return path;
  }
  return NULL;
}

const char *cli_default_weights(void) {
  const char *env = getenv("MASKDCPT_WEIGHTS");
  if (env && *env) return env;
  return shipped_weights("default");
}

const char *cli_weights_path(const char *arg) {
  if (!arg) return cli_default_weights();
  /* a file of that name in the working directory wins */
  if (access(arg, F_OK) != 0) {
    if (strcmp(arg, "fast") == 0) return shipped_weights("default");
    if (strcmp(arg, "quality") == 0) return shipped_weights("quality");
  }
  return arg;
}

maskdcpt_model *cli_load_model(const char *arg) {
  const char *path = cli_weights_path(arg);
  if (!path) {
    if (arg)
      cli_error(_("the shipped '%s' weights are not installed: pass --weights FILE"), arg);
    else
      cli_error(_("no weights file: pass --weights FILE or set MASKDCPT_WEIGHTS"));
    return NULL;
  }
  maskdcpt_model *model = NULL;
  maskdcpt_error err;
  if (maskdcpt_model_load(path, &model, &err) != MASKDCPT_OK) {
    cli_error("%s", err.message);
    return NULL;
  }
  const char *prov = maskdcpt_model_metadata(model, "provenance");
  if (prov && strstr(prov, "\"random-init\""))
    cli_error(_("warning: %s holds untrained, random weights: results are not restorations"),
              path);
  return model;
}

int cli_parse_device(const char *s, maskdcpt_device *out) {
  if (strcmp(s, "auto") == 0) *out = MASKDCPT_DEVICE_AUTO;
  else if (strcmp(s, "cpu") == 0) *out = MASKDCPT_DEVICE_CPU;
  else if (strcmp(s, "cuda") == 0) *out = MASKDCPT_DEVICE_CUDA;
  else {
    cli_error(_("unknown device '%s' (expected auto, cpu or cuda)"), s);
    return -1;
  }
  return 0;
}

int cli_parse_int(const char *s, const char *what, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) {
    cli_error(_("%s: '%s' is not a whole number in %ld..%ld"), what, s, lo, hi);
    return -1;
  }
  *out = v;
  return 0;
}

static int parse_float(const char *s, const char *what, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= lo && v <= hi)) {
    cli_error(_("%s: '%s' is not a number in %g..%g"), what, s, lo, hi);
    return -1;
  }
  *out = v;
  return 0;
}

/* Makes a context with the common options applied; NULL on error. */
static maskdcpt_context *make_context(const maskdcpt_model *model, maskdcpt_device device,
                                      int threads, int tile, long memory_mib, int scalar,
                                      int quiet) {
  maskdcpt_context *ctx = NULL;
  maskdcpt_error err;
  if (maskdcpt_context_new(model, &ctx, &err) != MASKDCPT_OK ||
      maskdcpt_context_set_device(ctx, device, &err) != MASKDCPT_OK) {
    cli_error("%s", err.message);
    maskdcpt_context_free(ctx);
    return NULL;
  }
  maskdcpt_context_set_threads(ctx, threads);
  maskdcpt_context_set_tile_size(ctx, tile);
  maskdcpt_context_set_memory_budget(ctx, (size_t)memory_mib << 20);
  maskdcpt_context_set_scalar(ctx, scalar);
  const char *note = maskdcpt_context_device_note(ctx);
  if (!quiet && device == MASKDCPT_DEVICE_AUTO && note[0] && getenv("MASKDCPT_VERBOSE"))
    fprintf(stderr, "maskdcpt: %s\n", note);
  return ctx;
}

/* Probabilities sorted for display. */
static void print_probs(FILE *f, const maskdcpt_model *model, const float *probs) {
  int k = maskdcpt_model_num_classes(model);
  int order[64];
  for (int i = 0; i < k; i++) order[i] = i;
  for (int i = 1; i < k; i++)
    for (int j = i; j > 0 && probs[order[j]] > probs[order[j - 1]]; j--) {
      int t = order[j];
      order[j] = order[j - 1];
      order[j - 1] = t;
    }
  for (int i = 0; i < k; i++) {
    int q = order[i], bars = (int)(probs[q] * 30.0f + 0.5f);
    fprintf(f, "  %-20s %6.2f%%  ", maskdcpt_model_class_name(model, q), 100.0 * probs[q]);
    for (int b = 0; b < bars; b++) fputc('#', f);
    fputc('\n', f);
  }
}

/* --------------------------------------------------------------- restore */

static int cmd_restore(int argc, char **argv) {
  static const struct option opts[] = {
      {"type", required_argument, 0, 't'},    {"strength", required_argument, 0, 's'},
      {"weights", required_argument, 0, 'w'}, {"device", required_argument, 0, 'd'},
      {"tile", required_argument, 0, 'T'},    {"memory", required_argument, 0, 'M'},
      {"threads", required_argument, 0, 'j'}, {"quality", required_argument, 0, 'q'},
      {"bit-depth", required_argument, 0, 'b'}, {"scalar", no_argument, 0, 'S'},
      {"quiet", no_argument, 0, 'Q'},         {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  const char *type = "auto", *weights = NULL;
  double strength = 1.0;
  maskdcpt_device device = MASKDCPT_DEVICE_AUTO;
  /* memory 0: the core's default budget (1 GiB; on a GPU, half its free memory) */
  long tile = 0, memory = 0, threads = 0, quality = 0, bit_depth = 0;
  int scalar = 0, quiet = 0, c;
  while ((c = getopt_long(argc, argv, "t:s:w:d:j:q:h", opts, NULL)) != -1) {
    switch (c) {
    case 't': type = optarg; break;
    case 's': if (parse_float(optarg, "--strength", 0.0, 1.0, &strength)) return 2; break;
    case 'w': weights = optarg; break;
    case 'd': if (cli_parse_device(optarg, &device)) return 2; break;
    case 'T': if (cli_parse_int(optarg, "--tile", 0, 1 << 16, &tile)) return 2; break;
    case 'M': if (cli_parse_int(optarg, "--memory", 64, 1 << 20, &memory)) return 2; break;
    case 'j': if (cli_parse_int(optarg, "--threads", 0, 1024, &threads)) return 2; break;
    case 'q': if (cli_parse_int(optarg, "--quality", 1, 100, &quality)) return 2; break;
    case 'b':
      if (cli_parse_int(optarg, "--bit-depth", 8, 16, &bit_depth)) return 2;
      if (bit_depth != 8 && bit_depth != 16) {
        cli_error(_("--bit-depth: expected 8 or 16"));
        return 2;
      }
      break;
    case 'S': scalar = 1; break;
    case 'Q': quiet = 1; break;
    case 'h': fputs(_(restore_help), stdout); return 0;
    default: fputs(_(restore_help), stderr); return 2;
    }
  }
  if (argc - optind != 2) {
    fputs(_(restore_help), stderr);
    return 2;
  }
  const char *in_path = argv[optind], *out_path = argv[optind + 1];
  img_format out_format;
  if (img_format_from_path(out_path, &out_format) != 0) {
    cli_error(_("%s: unknown output format (use .png, .jpg, .jpeg or .webp)"), out_path);
    return 2;
  }
  maskdcpt_model *model = cli_load_model(weights);
  if (!model) return 1;
  int class_index = MASKDCPT_CLASS_AUTO;
  if (strcmp(type, "auto") != 0) {
    class_index = maskdcpt_model_class_index(model, type);
    if (class_index < 0) {
      cli_error(_("unknown type '%s'; this weights file knows:"), type);
      for (int i = 0; i < maskdcpt_model_num_classes(model); i++)
        fprintf(stderr, "  %s\n", maskdcpt_model_class_name(model, i));
      maskdcpt_model_free(model);
      return 2;
    }
  }
  char msg[1024];
  img_image in = {0}, out = {0};
  int status = 1;
  maskdcpt_context *ctx = NULL;
  progress_bar *bar = NULL;
  if (img_read(in_path, &in, msg, sizeof msg) != 0) {
    cli_error("%s", msg);
    goto done;
  }
  if (img_alloc(&out, in.width, in.height, in.channels, msg, sizeof msg) != 0) {
    cli_error("%s", msg);
    goto done;
  }
  out.bit_depth = in.bit_depth;
  ctx = make_context(model, device, (int)threads, (int)tile, memory, scalar, quiet);
  if (!ctx) goto done;
  progress_bar_install_sigint();
  bar = quiet ? NULL : progress_bar_new(_("Restoring"));
  maskdcpt_context_set_progress(ctx, progress_bar_callback, bar);
  maskdcpt_image src = {in.data, in.width, in.height, in.channels, (size_t)in.width * in.channels};
  maskdcpt_image dst = {out.data, out.width, out.height, out.channels,
                        (size_t)out.width * out.channels};
  float probs[64];
  maskdcpt_error err;
  maskdcpt_status st = maskdcpt_restore(ctx, &src, &dst, class_index, (float)strength, probs, &err);
  progress_bar_finish(bar);
  bar = NULL;
  if (st != MASKDCPT_OK) {
    cli_error("%s", st == MASKDCPT_ERROR_CANCELLED ? _("interrupted; nothing written")
                                                    : err.message);
    status = st == MASKDCPT_ERROR_CANCELLED ? 130 : 1;
    goto done;
  }
  if (out_format == IMG_FORMAT_JPEG && img_has_alpha(&out)) {
    if (!quiet) fprintf(stderr, "maskdcpt: %s\n", _("JPEG has no alpha: alpha dropped"));
    img_drop_alpha(&out);
  }
  if (img_write(out_path, &out, (int)bit_depth, (int)quality, msg, sizeof msg) != 0) {
    cli_error("%s", msg);
    goto done;
  }
  if (!quiet) {
    if (class_index == MASKDCPT_CLASS_AUTO) {
      printf(_("Detected degradation (auto):\n"));
      print_probs(stdout, model, probs);
    } else {
      printf(_("Forced degradation: %s\n"), type);
    }
    int tile_px;
    size_t work;
    maskdcpt_context_plan(ctx, out.width, out.height, &tile_px, &work);
    printf(_("Wrote %s (%dx%d, %s, strength %.2f, %s, tiles of %d px, %zu MiB working "
             "memory)\n"),
           out_path, out.width, out.height, img_format_name(out_format), strength,
           maskdcpt_context_device_name(ctx), tile_px, work >> 20);
    int passes = maskdcpt_model_passes(model, probs, maskdcpt_model_num_classes(model));
    if (passes > 1)
      printf(_("The network ran %d times, each on the last result: this weights file's "
               "setting for this damage\n"),
             passes);
  }
  status = 0;
done:
  progress_bar_finish(bar);
  maskdcpt_context_free(ctx);
  maskdcpt_model_free(model);
  img_free(&in);
  img_free(&out);
  return status;
}

/* -------------------------------------------------------------- classify */

/* One CSV line per image: the file, the most likely class, then every
 * class's probability in the weights file's order. */
static void print_probs_csv(const maskdcpt_model *model, const char *path, const float *probs) {
  int k = maskdcpt_model_num_classes(model), best = 0;
  for (int i = 1; i < k; i++)
    if (probs[i] > probs[best]) best = i;
  printf("%s,%s", path, maskdcpt_model_class_name(model, best));
  for (int i = 0; i < k; i++) printf(",%.6f", probs[i]);
  printf("\n");
}

static int cmd_classify(int argc, char **argv) {
  static const struct option opts[] = {{"weights", required_argument, 0, 'w'},
                                       {"device", required_argument, 0, 'd'},
                                       {"threads", required_argument, 0, 'j'},
                                       {"csv", no_argument, 0, 'c'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *weights = NULL;
  maskdcpt_device device = MASKDCPT_DEVICE_AUTO;
  long threads = 0;
  int csv = 0, c;
  while ((c = getopt_long(argc, argv, "w:d:j:h", opts, NULL)) != -1) {
    switch (c) {
    case 'w': weights = optarg; break;
    case 'd': if (cli_parse_device(optarg, &device)) return 2; break;
    case 'j': if (cli_parse_int(optarg, "--threads", 0, 1024, &threads)) return 2; break;
    case 'c': csv = 1; break;
    case 'h': fputs(_(classify_help), stdout); return 0;
    default: fputs(_(classify_help), stderr); return 2;
    }
  }
  if (argc - optind < 1) {
    fputs(_(classify_help), stderr);
    return 2;
  }
  /* one model for all files: a batch costs one load */
  maskdcpt_model *model = cli_load_model(weights);
  maskdcpt_context *ctx = model ? make_context(model, device, (int)threads, 0, 1024, 0, 1) : NULL;
  if (!ctx) {
    maskdcpt_model_free(model);
    return 1;
  }
  if (csv) {
    printf("file,predicted");
    for (int i = 0; i < maskdcpt_model_num_classes(model); i++)
      printf(",%s", maskdcpt_model_class_name(model, i));
    printf("\n");
  }
  int status = 0;
  for (int f = optind; f < argc; f++) {
    char msg[1024];
    img_image in = {0};
    if (img_read(argv[f], &in, msg, sizeof msg) != 0) {
      cli_error("%s", msg);
      status = 1;
      continue;
    }
    maskdcpt_image src = {in.data, in.width, in.height, in.channels, (size_t)in.width * in.channels};
    float probs[64];
    maskdcpt_error err;
    if (maskdcpt_classify(ctx, &src, probs, &err) == MASKDCPT_OK) {
      if (csv) {
        print_probs_csv(model, argv[f], probs);
      } else {
        printf("%s:\n", argv[f]);
        print_probs(stdout, model, probs);
      }
    } else {
      cli_error("%s", err.message);
      status = 1;
    }
    img_free(&in);
  }
  maskdcpt_context_free(ctx);
  maskdcpt_model_free(model);
  return status;
}

/* ------------------------------------------------------------------ info */

static void print_list(const char *label, const int *v, int n) {
  printf("%s", label);
  for (int i = 0; i < n; i++) printf("%s%d", i ? "," : "", v[i]);
  printf("\n");
}

static int cmd_info(int argc, char **argv) {
  if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    fputs(_(info_help), stdout);
    return 0;
  }
  if (argc > 2) {
    fputs(_(info_help), stderr);
    return 2;
  }
  const char *path = cli_weights_path(argc == 2 ? argv[1] : NULL);
  maskdcpt_model *model = cli_load_model(argc == 2 ? argv[1] : NULL);
  if (!model) return 1;
  maskdcpt_arch_info a;
  maskdcpt_model_arch(model, &a);
  printf(_("Weights:         %s\n"), path);
  printf(_("Architecture:    NAFNet U-Net, width %d, %d levels\n"), a.width, a.levels);
  print_list(_("Encoder blocks:  "), a.enc_blocks, a.levels);
  printf(_("Middle blocks:   %d\n"), a.middle_blocks);
  print_list(_("Decoder blocks:  "), a.dec_blocks, a.levels);
  printf(_("Classifier:      width %d, %d classes\n"), a.cls_hidden, a.num_classes);
  printf(_("Attention pool:  %s"), a.sca_window ? "" : _("global mean\n"));
  if (a.sca_window) printf(_("local %d px window (TLC)\n"), a.sca_window);
  printf(_("LayerNorm eps:   %g\n"), (double)a.norm_eps);
  printf(_("Parameters:      %lld\n"), (long long)a.num_params);
  printf(_("Cost:            %.1f k multiply-adds per pixel\n"), a.macs_per_pixel / 1e3);
  printf(_("Classes:\n"));
  for (int i = 0; i < a.num_classes; i++)
    printf("  %2d  %s\n", i, maskdcpt_model_class_name(model, i));
  /* everything else the file carries: provenance, recipe, synthesis, ... */
  const char *key;
  for (int i = 0; (key = maskdcpt_model_metadata_key(model, i)); i++)
    if (strcmp(key, "format") && strcmp(key, "format_version") && strcmp(key, "arch") &&
        strcmp(key, "classes"))
      printf("%s: %s\n", key, maskdcpt_model_metadata(model, key));
  maskdcpt_model_free(model);
  return 0;
}

/* ------------------------------------------------------------------ init */

/* Parses "1,1,2" into v; returns the count or -1. */
static int parse_int_list(const char *s, int *v, int max) {
  int n = 0;
  const char *p = s;
  while (*p) {
    char *end;
    long x = strtol(p, &end, 10);
    if (end == p || x < 0 || x > MDC_MAX_BLOCKS || n == max) return -1;
    v[n++] = (int)x;
    if (*end == ',') end++;
    else if (*end) return -1;
    p = end;
  }
  return n;
}

static int cmd_init(int argc, char **argv) {
  static const struct option opts[] = {
      {"width", required_argument, 0, 'W'},  {"enc", required_argument, 0, 'e'},
      {"middle", required_argument, 0, 'm'}, {"dec", required_argument, 0, 'D'},
      {"classes", required_argument, 0, 'c'}, {"hidden", required_argument, 0, 'H'},
      {"window", required_argument, 0, 'P'}, {"eps", required_argument, 0, 'E'},
      {"seed", required_argument, 0, 'r'},   {"residual-scale", required_argument, 0, 'R'},
      {"fp16", no_argument, 0, 'f'},         {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  mdc_arch arch;
  memset(&arch, 0, sizeof arch);
  arch.width = 16;
  arch.middle_blocks = 2;
  arch.cls_hidden = 64;
  arch.sca_window = 192;
  arch.norm_eps = 1e-6f;
  const char *enc = "1,1,1,2", *dec = "1,1,1,1", *classes = NULL;
  long v, seed = 1;
  double d, residual = 0.0, eps = 1e-6;
  int fp16 = 0, c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'W': if (cli_parse_int(optarg, "--width", 1, MDC_MAX_WIDTH, &v)) return 2; arch.width = (int)v; break;
    case 'e': enc = optarg; break;
    case 'm': if (cli_parse_int(optarg, "--middle", 0, MDC_MAX_BLOCKS, &v)) return 2; arch.middle_blocks = (int)v; break;
    case 'D': dec = optarg; break;
    case 'c': classes = optarg; break;
    case 'H': if (cli_parse_int(optarg, "--hidden", 1, 1024, &v)) return 2; arch.cls_hidden = (int)v; break;
    case 'P': if (cli_parse_int(optarg, "--window", 0, 65536, &v)) return 2; arch.sca_window = (int)v; break;
    case 'E': if (parse_float(optarg, "--eps", 1e-12, 0.1, &eps)) return 2; break;
    case 'r': if (cli_parse_int(optarg, "--seed", 0, 0x7fffffffL, &seed)) return 2; break;
    case 'R': if (parse_float(optarg, "--residual-scale", 0.0, 10.0, &d)) return 2; residual = d; break;
    case 'f': fp16 = 1; break;
    case 'h': fputs(_(init_help), stdout); return 0;
    default: fputs(_(init_help), stderr); return 2;
    }
  }
  if (argc - optind != 1) {
    fputs(_(init_help), stderr);
    return 2;
  }
  arch.norm_eps = (float)eps;
  arch.levels = parse_int_list(enc, arch.enc_blocks, MDC_MAX_LEVELS);
  int nd = parse_int_list(dec, arch.dec_blocks, MDC_MAX_LEVELS);
  if (arch.levels < 1 || nd != arch.levels) {
    cli_error(_("--enc and --dec need the same number (1..%d) of block counts"), MDC_MAX_LEVELS);
    return 2;
  }
  if (!classes) /* the degradation registry's classes, in its order */
    for (int i = 0; i < dg_num_classes() && i < MDC_MAX_CLASSES; i++)
      snprintf(arch.class_names[arch.num_classes++], MDC_MAX_CLASS_NAME, "%s", dg_class_name(i));
  for (const char *p = classes ? classes : ""; *p && arch.num_classes < MDC_MAX_CLASSES;) {
    size_t n = strcspn(p, ",");
    if (n == 0 || n >= MDC_MAX_CLASS_NAME) {
      cli_error(_("--classes: empty or too long class name"));
      return 2;
    }
    memcpy(arch.class_names[arch.num_classes++], p, n);
    p += n + (p[n] == ',');
  }
  char msg[512];
  if (!mdc_arch_validate(&arch, msg, sizeof msg)) {
    cli_error("%s", msg);
    return 2;
  }
  mdc_weights w;
  maskdcpt_error err;
  char *synthesis = classes ? NULL : dg_registry_json();
  if (mdc_weights_init_random(&w, &arch, (uint64_t)seed, (float)residual, &err) != MASKDCPT_OK ||
      (synthesis && mdc_weights_set_metadata(&w, "synthesis", synthesis, &err) != MASKDCPT_OK) ||
      mdc_weights_write(&w, argv[optind], fp16, &err) != MASKDCPT_OK) {
    free(synthesis);
    cli_error("%s", err.message);
    mdc_weights_clear(&w);
    return 1;
  }
  printf(_("Wrote %s: untrained, random weights (seed %ld), %lld parameters\n"), argv[optind],
         seed, (long long)mdc_arch_num_params(&arch));
  free(synthesis);
  mdc_weights_clear(&w);
  return 0;
}

/* ------------------------------------------------------------------ main */

int main(int argc, char **argv) {
  setlocale(LC_ALL, "");
  bindtextdomain("maskdcpt", MASKDCPT_LOCALEDIR);
  textdomain("maskdcpt");
  if (argc < 2) {
    fputs(_(usage_text), stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
    fputs(_(usage_text), stdout);
    return 0;
  }
  if (strcmp(cmd, "--version") == 0) {
    printf("maskdcpt %s\n", maskdcpt_version_string());
    return 0;
  }
  /* getopt_long sees the command as argv[0] */
  argc--, argv++;
  if (strcmp(cmd, "restore") == 0) return cmd_restore(argc, argv);
  if (strcmp(cmd, "classify") == 0) return cmd_classify(argc, argv);
  if (strcmp(cmd, "info") == 0) return cmd_info(argc, argv);
  if (strcmp(cmd, "bench") == 0) return cli_bench(argc, argv);
  if (strcmp(cmd, "init") == 0) return cmd_init(argc, argv);
  if (strcmp(cmd, "degrade") == 0) return cli_degrade(argc, argv);
  if (strcmp(cmd, "contact-sheet") == 0) return cli_contact_sheet(argc, argv);
  if (strcmp(cmd, "compare") == 0) return cli_compare(argc, argv);
  cli_error(_("unknown command '%s'"), cmd);
  fputs(_(usage_text), stderr);
  return 2;
}
