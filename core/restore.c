/* restore.c - whole-image classification and tiled restoration. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "tiling.h"

/* Largest image edge accepted; keeps every size computation far from overflow. */
#define MDC_MAX_EDGE (1 << 20)

static maskdcpt_status check_image(const maskdcpt_image *img, const char *what,
                                   maskdcpt_error *err) {
  if (!img || !img->data)
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT, "%s image: NULL", what);
  if (img->width < 1 || img->height < 1 || img->width > MDC_MAX_EDGE ||
      img->height > MDC_MAX_EDGE)
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT,
                         "%s image: size %dx%d outside 1..%d", what, img->width, img->height,
                         MDC_MAX_EDGE);
  if (img->channels < 1 || img->channels > 4)
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT,
                         "%s image: %d channels (expected 1 to 4)", what, img->channels);
  if (img->stride < (size_t)img->width * img->channels)
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT,
                         "%s image: stride %zu is less than width x channels (%zu)", what,
                         img->stride, (size_t)img->width * img->channels);
  return MASKDCPT_OK;
}

/* The network's input value of a sample: finite and within a range the
 * network has a chance to handle (NaN and infinities would spread through
 * a whole tile via LayerNorm and channel attention). */
static float sanitize(float v) {
  if (!(v == v)) return 0.0f;
  return v < -1.0f ? -1.0f : v > 2.0f ? 2.0f : v;
}

/* Copies a region of `img` into tight R'G'B' (grey replicated). */
static void gather_rgb(const maskdcpt_image *img, int x0, int y0, int w, int h, float *dst) {
  int nc = img->channels;
  for (int y = 0; y < h; y++) {
    const float *row = img->data + (size_t)(y0 + y) * img->stride + (size_t)x0 * nc;
    float *d = dst + (size_t)y * w * 3;
    for (int x = 0; x < w; x++, row += nc, d += 3) {
      if (nc >= 3) {
        d[0] = sanitize(row[0]), d[1] = sanitize(row[1]), d[2] = sanitize(row[2]);
      } else {
        d[0] = d[1] = d[2] = sanitize(row[0]);
      }
    }
  }
}

/* Classification crops of an image: their size and how much progress
 * they count for (the encoder is about half the network). */
static int crop_side(int size) { return size < MDC_CLASS_CROP ? size : MDC_CLASS_CROP; }

static double classify_units(int width, int height) {
  int xs[3], ys[3], cw = crop_side(width), ch = crop_side(height);
  return 0.5 * cw * ch * mdc_class_crops(width, cw, xs) * mdc_class_crops(height, ch, ys);
}

/* Host memory for a tile of th x tw: its input, its result and a row of
 * blending weights. */
static size_t tile_host_bytes(int th, int tw) {
  return (size_t)th * tw * 6 * sizeof(float) + (size_t)tw * sizeof(float) + 256;
}

/* Working memory for tiles of th x tw: the network's plus the tile's
 * input and output. */
static size_t tile_bytes(maskdcpt_context *ctx, int th, int tw) {
  return mdc_net_work_bytes(&ctx->model->net, ctx->backend, th, tw) + tile_host_bytes(th, tw);
}

/* The smallest useful tile edge. */
static int choose_tile_min(maskdcpt_context *ctx) {
  const mdc_arch *a = &ctx->model->net.arch;
  int m = mdc_arch_multiple(a);
  return (mdc_tile_min(mdc_tile_margin(a->sca_window)) + m - 1) / m * m;
}

/* The working-memory budget: the caller's; else on a device that can say,
 * half of its free memory (counting what this context already holds), so
 * a GPU with memory to spare gets large tiles and fewer context margins;
 * else the 1 GiB default. */
static size_t memory_budget(maskdcpt_context *ctx) {
  if (ctx->memory_budget) return ctx->memory_budget;
  mdc_backend *be = ctx->backend;
  size_t free_bytes = 0, total = 0;
  if (be->mem_info && be->mem_info(be, &free_bytes, &total) == 0) {
    size_t ours = ctx->work_owner == be ? ctx->work_size : 0;
    size_t half = free_bytes / 2 + ours / 2;
    return half > 0 ? half : 1;
  }
  return MDC_DEFAULT_MEMORY_BUDGET;
}

/* The largest tile edge: MDC_MAX_TILE on the CPU; on a device, the
 * largest whose biggest tensor (2 x width channels at full resolution)
 * keeps element counts in an int, as cuDNN needs, also for the last tile
 * of a row (up to m - 1 pixels larger). */
static int max_tile(maskdcpt_context *ctx, int m) {
  if (!mdc_be_is_device(ctx->backend)) return MDC_MAX_TILE;
  double edge = sqrt((double)INT_MAX / (2.0 * ctx->model->net.arch.width)) - (m - 1);
  return edge < MDC_MAX_DEVICE_TILE ? (int)edge : MDC_MAX_DEVICE_TILE;
}

/* Tile edge: the caller's, or the largest whose working memory fits the
 * budget (at least the smallest useful tile).  A device short of memory
 * overrides the caller's size. */
static int choose_tile(maskdcpt_context *ctx) {
  const mdc_net *net = &ctx->model->net;
  int m = mdc_arch_multiple(&net->arch);
  int min = choose_tile_min(ctx);
  if (ctx->tile_size > 0 && !ctx->device_budget) {
    int t = (ctx->tile_size + m - 1) / m * m;
    return t < min ? min : t;
  }
  size_t budget = memory_budget(ctx);
  if (ctx->device_budget && ctx->device_budget < budget) budget = ctx->device_budget;
  int best = min;
  for (int t = max_tile(ctx, m) / m * m; t >= min; t -= m) {
    /* the last tile of a row or column may be up to m - 1 pixels larger */
    if (tile_bytes(ctx, t + m - 1, t + m - 1) <= budget) {
      best = t;
      break;
    }
  }
  return best;
}

void maskdcpt_context_plan(maskdcpt_context *ctx, int width, int height, int *tile_size,
                           size_t *work_bytes) {
  int tile = 0;
  size_t bytes = 0;
  if (ctx && width > 0 && height > 0 && mdc_context_backend(ctx, NULL) == MASKDCPT_OK) {
    tile = choose_tile(ctx);
    const mdc_arch *a = &ctx->model->net.arch;
    int align = mdc_arch_multiple(a), margin = mdc_tile_margin(a->sca_window);
    mdc_tile_axis ax, ay;
    if (mdc_tile_axis_plan(&ax, width, tile, align, margin) == 0 &&
        mdc_tile_axis_plan(&ay, height, tile, align, margin) == 0)
      bytes = tile_bytes(ctx, ay.max_size, ax.max_size);
    mdc_tile_axis_clear(&ax);
    mdc_tile_axis_clear(&ay);
    size_t cb = tile_bytes(ctx, crop_side(height), crop_side(width));
    if (cb > bytes) bytes = cb;
  }
  if (tile_size) *tile_size = tile;
  if (work_bytes) *work_bytes = bytes;
}

/* Pixels of the axis that tile i is the first to cover: progress counts
 * each pixel once. */
static double tile_share(const mdc_tile_axis *a, int i, int size) {
  return (double)(i + 1 < a->count ? a->start[i + 1] : size) - a->start[i];
}

/* Progress bookkeeping in units of pixel-passes through the network. */
typedef struct progress {
  maskdcpt_context *ctx;
  double done, total;
} progress;

static int progress_step(progress *p, double units) {
  p->done += units;
  if (!p->ctx->progress) return 1;
  double f = p->total > 0 ? p->done / p->total : 1.0;
  return p->ctx->progress(p->ctx->progress_user, f > 1.0 ? 1.0 : f);
}

/* More work than planned (passes known after classifying): the fraction
 * shown so far stays, the rest spreads over the larger total. */
static void progress_grow(progress *p, double total) {
  if (p->total > 0) p->done *= total / p->total;
  p->total = total;
}

/* Classification: encoder on up to 3x3 crops, features averaged. */
static maskdcpt_status classify_image(maskdcpt_context *ctx, const maskdcpt_image *img,
                                      float *probs, progress *prog, maskdcpt_error *err) {
  const mdc_net *net;
  maskdcpt_status st = mdc_context_net(ctx, &net, err);
  if (st != MASKDCPT_OK) return st;
  const mdc_arch *a = &net->arch;
  int cw = crop_side(img->width), ch = crop_side(img->height);
  int xs[3], ys[3];
  int nx = mdc_class_crops(img->width, cw, xs), ny = mdc_class_crops(img->height, ch, ys);
  st = mdc_context_work(ctx, mdc_net_work_bytes(net, ctx->backend, ch, cw), err);
  if (st == MASKDCPT_OK) st = mdc_context_host_work(ctx, (size_t)ch * cw * 3 * sizeof(float), err);
  if (st != MASKDCPT_OK) return st;
  float *rgb = ctx->host_work;
  size_t ng = (size_t)(a->levels + 1) * a->cls_hidden;
  double *g = calloc(ng * 2 + 2 * (size_t)(a->levels + 1), sizeof(double));
  if (!g) return mdc_set_error(err, MASKDCPT_ERROR_OUT_OF_MEMORY, "out of memory");
  double *gsum = g + ng, *counts = gsum + ng, *csum = counts + a->levels + 1;
  for (int iy = 0; iy < ny; iy++)
    for (int ix = 0; ix < nx; ix++) {
      gather_rgb(img, xs[ix], ys[iy], cw, ch, rgb);
      st = mdc_net_forward(net, ctx->backend, rgb, ch, cw, NULL, NULL, g, counts, ctx->work, err);
      if (st != MASKDCPT_OK) {
        free(g);
        return st;
      }
      for (int l = 0; l <= a->levels; l++) {
        csum[l] += counts[l];
        for (int j = 0; j < a->cls_hidden; j++)
          gsum[(size_t)l * a->cls_hidden + j] += g[(size_t)l * a->cls_hidden + j] * counts[l];
      }
      if (prog && !progress_step(prog, 0.5 * cw * ch)) {
        free(g);
        return mdc_set_error(err, MASKDCPT_ERROR_CANCELLED, "cancelled");
      }
    }
  for (int l = 0; l <= a->levels; l++)
    for (int j = 0; j < a->cls_hidden; j++) gsum[(size_t)l * a->cls_hidden + j] /= csum[l];
  mdc_net_classify(&ctx->model->net, gsum, probs); /* on the host */
  free(g);
  return MASKDCPT_OK;
}

/* classify_image, leaving a GPU that is out of memory for the CPU (AUTO
 * device only): the crops are small, so there is no smaller tile to try. */
static maskdcpt_status classify_or_fail_over(maskdcpt_context *ctx, const maskdcpt_image *img,
                                             float *probs, progress *prog, maskdcpt_error *err) {
  double done = prog->done;
  maskdcpt_status st = classify_image(ctx, img, probs, prog, err);
  if (st == MASKDCPT_ERROR_OUT_OF_MEMORY && mdc_be_is_device(ctx->backend) &&
      mdc_context_fail_over(ctx, "the GPU is out of memory") &&
      mdc_context_backend(ctx, err) == MASKDCPT_OK) {
    prog->done = done;
    st = classify_image(ctx, img, probs, prog, err);
  }
  return st;
}

maskdcpt_status maskdcpt_classify(maskdcpt_context *ctx, const maskdcpt_image *image,
                                  float *probs, maskdcpt_error *err) {
  if (!ctx || !probs)
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT, "classify: NULL argument");
  maskdcpt_status st = check_image(image, "input", err);
  if (st == MASKDCPT_OK) st = mdc_context_backend(ctx, err);
  if (st != MASKDCPT_OK) return st;
  progress prog = {ctx, 0.0, classify_units(image->width, image->height)};
  return classify_or_fail_over(ctx, image, probs, &prog, err);
}

/* Adds tile (tx, ty)'s weighted, strength-blended result into `out`. */
static void scatter_tile(const maskdcpt_image *out, const float *src, const float *restored,
                         const mdc_tile_axis *ax, int ix, const mdc_tile_axis *ay, int iy,
                         float strength, float *wx /* [ax->max_size] scratch */) {
  int x0 = ax->start[ix], y0 = ay->start[iy], w = ax->size[ix], h = ay->size[iy];
  int nc = out->channels;
  for (int x = 0; x < w; x++) wx[x] = mdc_tile_axis_weight(ax, ix, x0 + x);
  for (int y = 0; y < h; y++) {
    float wy = mdc_tile_axis_weight(ay, iy, y0 + y);
    if (wy == 0.0f) continue;
    const float *s = src + (size_t)y * w * 3, *r = restored + (size_t)y * w * 3;
    float *o = out->data + (size_t)(y0 + y) * out->stride + (size_t)x0 * nc;
    for (int x = 0; x < w; x++, s += 3, r += 3, o += nc) {
      float wt = wy * wx[x];
      if (wt == 0.0f) continue;
      float v0 = s[0] + strength * (r[0] - s[0]);
      float v1 = s[1] + strength * (r[1] - s[1]);
      float v2 = s[2] + strength * (r[2] - s[2]);
      if (nc >= 3) {
        o[0] += wt * v0, o[1] += wt * v1, o[2] += wt * v2;
      } else {
        o[0] += wt * ((v0 + v1 + v2) * (1.0f / 3.0f));
      }
    }
  }
}

/* Zeroes the colour channels of `out` (tiles add into them) and sets its
 * alpha from `in`. */
static void prepare_output(const maskdcpt_image *in, const maskdcpt_image *out) {
  int ci = in->channels, co = out->channels;
  int in_alpha = ci == 2 || ci == 4, out_alpha = co == 2 || co == 4;
  for (int y = 0; y < out->height; y++) {
    const float *s = in->data + (size_t)y * in->stride;
    float *o = out->data + (size_t)y * out->stride;
    for (int x = 0; x < out->width; x++, s += ci, o += co) {
      for (int c = 0; c < (out_alpha ? co - 1 : co); c++) o[c] = 0.0f;
      if (out_alpha) o[co - 1] = in_alpha ? s[ci - 1] : 1.0f;
    }
  }
}

/* Strength 0: the input's colour, exactly (the network does not run). */
static void copy_colour(const maskdcpt_image *in, const maskdcpt_image *out) {
  int ci = in->channels, co = out->channels;
  for (int y = 0; y < out->height; y++) {
    const float *s = in->data + (size_t)y * in->stride;
    float *o = out->data + (size_t)y * out->stride;
    for (int x = 0; x < out->width; x++, s += ci, o += co) {
      if (ci >= 3 && co >= 3) o[0] = s[0], o[1] = s[1], o[2] = s[2];
      else if (ci >= 3) o[0] = (s[0] + s[1] + s[2]) * (1.0f / 3.0f);
      else if (co >= 3) o[0] = o[1] = o[2] = s[0];
      else o[0] = s[0];
    }
  }
}

static int ranges_overlap(const maskdcpt_image *a, const maskdcpt_image *b) {
  const char *a0 = (const char *)a->data, *b0 = (const char *)b->data;
  const char *a1 = (const char *)(a->data + (size_t)(a->height - 1) * a->stride +
                                  (size_t)a->width * a->channels);
  const char *b1 = (const char *)(b->data + (size_t)(b->height - 1) * b->stride +
                                  (size_t)b->width * b->channels);
  return a0 < b1 && b0 < a1;
}

/* The checks every restore call shares: images, sizes, overlap, strength.
 * `fn` names the call in messages. */
static maskdcpt_status check_restore(const maskdcpt_image *in, const maskdcpt_image *out,
                                     float strength, const char *fn, maskdcpt_error *err) {
  maskdcpt_status st = check_image(in, "input", err);
  if (st == MASKDCPT_OK) st = check_image(out, "output", err);
  if (st != MASKDCPT_OK) return st;
  if (in->width != out->width || in->height != out->height)
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT,
                         "%s: output %dx%d differs from input %dx%d", fn, out->width,
                         out->height, in->width, in->height);
  if (ranges_overlap(in, out))
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT,
                         "%s: input and output buffers overlap", fn);
  if (!(strength >= 0.0f && strength <= 1.0f))
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT, "%s: strength %g outside [0, 1]",
                         fn, (double)strength);
  return MASKDCPT_OK;
}

/* The caller's probabilities: as many as the model has classes, finite,
 * >= 0 and not all 0 (restore_conditioned normalises them). */
static maskdcpt_status check_probabilities(const maskdcpt_model *model, const float *given,
                                           int count, maskdcpt_error *err) {
  static const char fn[] = "restore_with_probabilities";
  int k = model->net.arch.num_classes;
  if (!given)
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT, "%s: NULL probabilities", fn);
  if (count != k)
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT,
                         "%s: %d probabilities given, but the model has %d classes", fn, count, k);
  double sum = 0.0;
  for (int q = 0; q < k; q++) {
    if (!isfinite(given[q]) || given[q] < 0.0f)
      return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT,
                           "%s: probability %d (%s) is %g; each must be finite and >= 0", fn, q,
                           model->net.arch.class_names[q], (double)given[q]);
    sum += given[q];
  }
  if (!(sum > 0.0))
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT,
                         "%s: the probabilities are all 0; at least one must be positive", fn);
  return MASKDCPT_OK;
}

static int top_class(const float *p, int k) {
  int top = 0;
  for (int q = 1; q < k; q++)
    if (p[q] > p[top]) top = q;
  return top;
}

/* `probs` divided by their sum; then, when the class with more than half
 * of it is one the weights file lists in 'auto_focus', that class alone
 * (the file's authors measured that mixing in the runners-up only dilutes
 * its restoration; docs/network.md).  Every mode conditions through here,
 * so classify's output given back restores bit for bit as auto mode, and
 * a one-hot vector (sum exactly 1) as the forced class. */
static void normalise(const maskdcpt_model *model, const float *probs, int k, float *norm) {
  double sum = 0.0;
  for (int q = 0; q < k; q++) sum += probs[q];
  for (int q = 0; q < k; q++) norm[q] = (float)(probs[q] / sum);
  int top = top_class(norm, k);
  if (norm[top] > 0.5f && model->auto_focus[top])
    for (int q = 0; q < k; q++) norm[q] = q == top ? 1.0f : 0.0f;
}

/* Network passes for the normalised conditioning: the weights file's
 * 'passes' of the class holding more than half of it, else 1.  Where one
 * pass leaves part of the damage (noise), a second pass on its output
 * removes more (measured per file; docs/network.md). */
static int count_passes(const maskdcpt_model *model, const float *norm, int k) {
  int top = top_class(norm, k);
  return norm[top] > 0.5f && model->passes[top] > 1 ? model->passes[top] : 1;
}

/* One pass of the network over `src` into `dst` (same size, `dst`'s
 * colour zeroed first and its alpha taken from `in`), tile by tile, each
 * tile blended with its input by `strength`. */
static maskdcpt_status run_pass(maskdcpt_context *ctx, const mdc_net *net,
                                const mdc_net_cond *cond, const mdc_tile_axis *ax,
                                const mdc_tile_axis *ay, const maskdcpt_image *in,
                                const maskdcpt_image *src, const maskdcpt_image *dst,
                                float strength, progress *prog, maskdcpt_error *err) {
  size_t px = (size_t)ax->max_size * ay->max_size * 3;
  float *tile_in = ctx->host_work, *tile_out = tile_in + px, *wx = tile_out + px;
  prepare_output(in, dst);
  for (int iy = 0; iy < ay->count; iy++)
    for (int ix = 0; ix < ax->count; ix++) {
      int tw = ax->size[ix], th = ay->size[iy];
      gather_rgb(src, ax->start[ix], ay->start[iy], tw, th, tile_in);
      maskdcpt_status st = mdc_net_forward(net, ctx->backend, tile_in, th, tw, cond, tile_out,
                                           NULL, NULL, ctx->work, err);
      if (st != MASKDCPT_OK) return st;
      scatter_tile(dst, tile_in, tile_out, ax, ix, ay, iy, strength, wx);
      if (!progress_step(prog, tile_share(ax, ix, src->width) * tile_share(ay, iy, src->height)))
        return mdc_set_error(err, MASKDCPT_ERROR_CANCELLED, "cancelled");
    }
  return MASKDCPT_OK;
}

/* out = in + strength * (out - in) on the colour channels, `in`'s colour
 * taken as the network saw it (sanitised, grey replicated or averaged as
 * `out` needs): the blend a single pass does per tile, for the last of
 * several passes. */
static void blend_with_input(const maskdcpt_image *in, const maskdcpt_image *out, float strength) {
  int ci = in->channels, co = out->channels;
  for (int y = 0; y < out->height; y++) {
    const float *s = in->data + (size_t)y * in->stride;
    float *o = out->data + (size_t)y * out->stride;
    for (int x = 0; x < out->width; x++, s += ci, o += co) {
      float r, g, b;
      if (ci >= 3) r = sanitize(s[0]), g = sanitize(s[1]), b = sanitize(s[2]);
      else r = g = b = sanitize(s[0]);
      if (co >= 3) {
        o[0] = r + strength * (o[0] - r);
        o[1] = g + strength * (o[1] - g);
        o[2] = b + strength * (o[2] - b);
      } else {
        float v = (r + g + b) * (1.0f / 3.0f);
        o[0] = v + strength * (o[0] - v);
      }
    }
  }
}

/* `passes` passes from `in` into `out`: the intermediate results in
 * full-image RGB buffers (two from the third pass on), the strength
 * applied once, against `in`, at the end. */
static maskdcpt_status run_passes(maskdcpt_context *ctx, const mdc_net *net,
                                  const mdc_net_cond *cond, const mdc_tile_axis *ax,
                                  const mdc_tile_axis *ay, const maskdcpt_image *in,
                                  const maskdcpt_image *out, int passes, float strength,
                                  progress *prog, maskdcpt_error *err) {
  if (passes == 1) return run_pass(ctx, net, cond, ax, ay, in, in, out, strength, prog, err);
  size_t n = (size_t)in->width * in->height * 3;
  maskdcpt_image buf[2];
  int nbuf = passes > 2 ? 2 : 1;
  for (int i = 0; i < 2; i++) {
    buf[i] = (maskdcpt_image){NULL, in->width, in->height, 3, (size_t)in->width * 3};
    if (i < nbuf && !(buf[i].data = malloc(n * sizeof(float)))) {
      free(buf[0].data);
      return mdc_set_error(err, MASKDCPT_ERROR_OUT_OF_MEMORY,
                           "out of memory for the %d-pass restoration's %zu MiB intermediate image",
                           passes, (n * sizeof(float)) >> 20);
    }
  }
  maskdcpt_status st = MASKDCPT_OK;
  const maskdcpt_image *src = in;
  for (int p = 0; p < passes && st == MASKDCPT_OK; p++) {
    const maskdcpt_image *dst = p == passes - 1 ? out : &buf[p % 2];
    st = run_pass(ctx, net, cond, ax, ay, in, src, dst, 1.0f, prog, err);
    src = dst;
  }
  if (st == MASKDCPT_OK && strength != 1.0f) blend_with_input(in, out, strength);
  free(buf[0].data);
  free(buf[1].data);
  return st;
}

/* The tiled restoration of `in` into `out` (both checked), conditioned on
 * `probs` (valid, normalised here); with `classify`, `probs` is first
 * filled by classifying `in` (auto mode), which progress then counts too. */
static maskdcpt_status restore_conditioned(maskdcpt_context *ctx, const maskdcpt_image *in,
                                           const maskdcpt_image *out, float *probs,
                                           int classify, float strength, maskdcpt_error *err) {
  maskdcpt_status st = mdc_context_backend(ctx, err);
  if (st != MASKDCPT_OK) return st;
  const mdc_arch *arch = &ctx->model->net.arch;
  progress prog = {ctx, 0.0, (double)in->width * in->height};
  if (classify) {
    prog.total += classify_units(in->width, in->height);
    st = classify_or_fail_over(ctx, in, probs, &prog, err);
    if (st != MASKDCPT_OK) return st;
  }
  if (strength == 0.0f) {
    prepare_output(in, out);
    copy_colour(in, out);
    return MASKDCPT_OK;
  }
  float norm[MDC_MAX_CLASSES];
  normalise(ctx->model, probs, arch->num_classes, norm);
  int passes = count_passes(ctx->model, norm, arch->num_classes);
  progress_grow(&prog, prog.total + (passes - 1.0) * in->width * in->height);

  /* Working memory for the tile size; a GPU short of memory gets smaller
   * tiles, and in AUTO mode the CPU once the smallest tile does not fit. */
  int align = mdc_arch_multiple(arch), margin = mdc_tile_margin(arch->sca_window);
  mdc_tile_axis ax = {0}, ay = {0};
  const mdc_net *net = NULL;
  const mdc_net_cond *cond = NULL;
  for (;;) {
    int tile = choose_tile(ctx);
    mdc_tile_axis_clear(&ax);
    mdc_tile_axis_clear(&ay);
    if (mdc_tile_axis_plan(&ax, in->width, tile, align, margin) ||
        mdc_tile_axis_plan(&ay, in->height, tile, align, margin)) {
      st = mdc_set_error(err, MASKDCPT_ERROR_OUT_OF_MEMORY, "out of memory");
      break;
    }
    st = mdc_context_cond(ctx, norm, &cond, err);
    if (st == MASKDCPT_OK) st = mdc_context_net(ctx, &net, err);
    if (st == MASKDCPT_OK)
      st = mdc_context_work(ctx, mdc_net_work_bytes(net, ctx->backend, ay.max_size, ax.max_size),
                            err);
    if (st != MASKDCPT_OK && st == MASKDCPT_ERROR_OUT_OF_MEMORY &&
        mdc_be_is_device(ctx->backend)) {
      size_t need = tile_bytes(ctx, ay.max_size, ax.max_size);
      int min_tile = choose_tile_min(ctx);
      if (tile > min_tile) {
        ctx->device_budget = need / 2; /* a smaller tile, and keep it */
        continue;
      }
      if (mdc_context_fail_over(ctx, "the GPU is out of memory even for the smallest tile") &&
          mdc_context_backend(ctx, err) == MASKDCPT_OK)
        continue;
    }
    break;
  }
  if (st == MASKDCPT_OK)
    st = mdc_context_host_work(ctx, tile_host_bytes(ay.max_size, ax.max_size), err);
  if (st == MASKDCPT_OK)
    st = run_passes(ctx, net, cond, &ax, &ay, in, out, passes, strength, &prog, err);
  mdc_tile_axis_clear(&ax);
  mdc_tile_axis_clear(&ay);
  return st;
}

maskdcpt_status maskdcpt_restore(maskdcpt_context *ctx, const maskdcpt_image *in,
                                 const maskdcpt_image *out, int class_index, float strength,
                                 float *probs_out, maskdcpt_error *err) {
  if (!ctx) return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT, "restore: NULL context");
  maskdcpt_status st = check_restore(in, out, strength, "restore", err);
  if (st != MASKDCPT_OK) return st;
  int k = ctx->model->net.arch.num_classes;
  if (class_index != MASKDCPT_CLASS_AUTO && (class_index < 0 || class_index >= k))
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT,
                         "restore: class %d out of range (the model has %d classes)", class_index,
                         k);
  float probs[MDC_MAX_CLASSES];
  for (int q = 0; q < k; q++) probs[q] = q == class_index ? 1.0f : 0.0f;
  st = restore_conditioned(ctx, in, out, probs, class_index == MASKDCPT_CLASS_AUTO, strength, err);
  if (st == MASKDCPT_OK && probs_out) memcpy(probs_out, probs, (size_t)k * sizeof(float));
  return st;
}

int maskdcpt_model_passes(const maskdcpt_model *model, const float *probabilities,
                          int num_probabilities) {
  if (!model || check_probabilities(model, probabilities, num_probabilities, NULL) != MASKDCPT_OK)
    return 0;
  float norm[MDC_MAX_CLASSES];
  normalise(model, probabilities, num_probabilities, norm);
  return count_passes(model, norm, num_probabilities);
}

maskdcpt_status maskdcpt_restore_with_probabilities(maskdcpt_context *ctx,
                                                    const maskdcpt_image *in,
                                                    const maskdcpt_image *out,
                                                    const float *probabilities,
                                                    int num_probabilities, float strength,
                                                    maskdcpt_error *err) {
  if (!ctx)
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT,
                         "restore_with_probabilities: NULL context");
  maskdcpt_status st = check_restore(in, out, strength, "restore_with_probabilities", err);
  if (st != MASKDCPT_OK) return st;
  st = check_probabilities(ctx->model, probabilities, num_probabilities, err);
  if (st != MASKDCPT_OK) return st;
  float probs[MDC_MAX_CLASSES];
  memcpy(probs, probabilities, (size_t)num_probabilities * sizeof(float));
  return restore_conditioned(ctx, in, out, probs, 0, strength, err);
}
