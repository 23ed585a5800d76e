/* model.c - the network in kernel layouts and its forward pass on one tile.
 * The definition it follows is docs/network.md. */
#include "model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Pixels per classifier-projection chunk: bounds its scratch buffer. */
#define CLS_CHUNK 4096

/* ------------------------------------------------------------ binding */

/* Copies one tensor from PyTorch layout into the kernels' layout. */
static void convert_tensor(const mdc_tensor_spec *s, const float *src, float *dst) {
  if (s->ndim != 4) {
    memcpy(dst, src, (size_t)s->numel * sizeof(float));
    return;
  }
  int64_t co = s->shape[0], ci = s->shape[1], kh = s->shape[2], kw = s->shape[3];
  if (co == 1 && kh == 1 && kw == 1) { /* beta / gamma [1][c][1][1] */
    memcpy(dst, src, (size_t)s->numel * sizeof(float));
    return;
  }
  if (ci == 1 && kh == 3 && strstr(s->name, "conv2")) { /* depthwise -> [ky][kx][c] */
    for (int64_t o = 0; o < co; o++)
      for (int64_t k = 0; k < 9; k++) dst[k * co + o] = src[o * 9 + k];
    return;
  }
  /* dense [co][ci][kh][kw] -> [kh][kw][ci][co] */
  for (int64_t o = 0; o < co; o++)
    for (int64_t i = 0; i < ci; i++)
      for (int64_t y = 0; y < kh; y++)
        for (int64_t x = 0; x < kw; x++)
          dst[((y * kw + x) * ci + i) * co + o] = src[((o * ci + i) * kh + y) * kw + x];
}

/* The inverse of convert_tensor: kernel layout back to PyTorch layout. */
static void unconvert_tensor(const mdc_tensor_spec *s, const float *src, float *dst) {
  if (s->ndim != 4) {
    memcpy(dst, src, (size_t)s->numel * sizeof(float));
    return;
  }
  int64_t co = s->shape[0], ci = s->shape[1], kh = s->shape[2], kw = s->shape[3];
  if (co == 1 && kh == 1 && kw == 1) {
    memcpy(dst, src, (size_t)s->numel * sizeof(float));
    return;
  }
  if (ci == 1 && kh == 3 && strstr(s->name, "conv2")) {
    for (int64_t o = 0; o < co; o++)
      for (int64_t k = 0; k < 9; k++) dst[o * 9 + k] = src[k * co + o];
    return;
  }
  for (int64_t o = 0; o < co; o++)
    for (int64_t i = 0; i < ci; i++)
      for (int64_t y = 0; y < kh; y++)
        for (int64_t x = 0; x < kw; x++)
          dst[((o * ci + i) * kh + y) * kw + x] = src[((y * kw + x) * ci + i) * co + o];
}

maskdcpt_status mdc_net_to_weights(const mdc_net *net, const float *storage, mdc_weights *out,
                                   maskdcpt_error *err) {
  maskdcpt_status st = mdc_weights_alloc(out, &net->arch, err);
  if (st != MASKDCPT_OK) return st;
  size_t off = 0;
  for (int k = 0; k < out->num_tensors; k++) {
    mdc_tensor_spec s;
    mdc_arch_tensor(&net->arch, k, &s);
    unconvert_tensor(&s, (storage ? storage : net->storage) + off, out->tensors[k]);
    off += (size_t)s.numel;
  }
  return MASKDCPT_OK;
}

typedef struct binder {
  const mdc_arch *arch;
  float **ptr; /* per canonical tensor, into net storage */
  int n;
} binder;

/* The storage of the tensor named by a printf format; NULL when absent. */
static const float *bind(const binder *b, const char *fmt, ...) {
  char name[MDC_MAX_TENSOR_NAME + 32];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  mdc_tensor_spec s;
  for (int k = 0; k < b->n; k++)
    if (mdc_arch_tensor(b->arch, k, &s) && strcmp(s.name, name) == 0) return b->ptr[k];
  return NULL;
}

static void bind_block(const binder *b, mdc_net_block *blk, const char *prefix, int c,
                       int conditioned) {
  memset(blk, 0, sizeof *blk);
  mdc_nafblock_params *p = &blk->p;
  p->c = c;
  const float *n1w = bind(b, "%snorm1.weight", prefix), *n1b = bind(b, "%snorm1.bias", prefix);
  const float *n2w = bind(b, "%snorm2.weight", prefix), *n2b = bind(b, "%snorm2.bias", prefix);
  if (conditioned) {
    blk->cond_norm1_w = n1w, blk->cond_norm1_b = n1b;
    blk->cond_norm2_w = n2w, blk->cond_norm2_b = n2b;
  } else {
    p->norm1_w = n1w, p->norm1_b = n1b, p->norm2_w = n2w, p->norm2_b = n2b;
  }
  p->conv1_w = bind(b, "%sconv1.weight", prefix);
  p->conv1_b = bind(b, "%sconv1.bias", prefix);
  p->conv2_w = bind(b, "%sconv2.weight", prefix);
  p->conv2_b = bind(b, "%sconv2.bias", prefix);
  p->sca_w = bind(b, "%ssca.weight", prefix);
  p->sca_b = bind(b, "%ssca.bias", prefix);
  p->conv3_w = bind(b, "%sconv3.weight", prefix);
  p->conv3_b = bind(b, "%sconv3.bias", prefix);
  p->conv4_w = bind(b, "%sconv4.weight", prefix);
  p->conv4_b = bind(b, "%sconv4.bias", prefix);
  p->conv5_w = bind(b, "%sconv5.weight", prefix);
  p->conv5_b = bind(b, "%sconv5.bias", prefix);
  p->beta = bind(b, "%sbeta", prefix);
  p->gamma = bind(b, "%sgamma", prefix);
}

maskdcpt_status mdc_net_init(mdc_net *net, const mdc_weights *w, maskdcpt_error *err) {
  memset(net, 0, sizeof *net);
  net->arch = w->arch;
  const mdc_arch *a = &net->arch;
  int n = mdc_arch_num_tensors(a);
  int nblocks = a->middle_blocks;
  for (int l = 0; l < a->levels; l++) nblocks += a->enc_blocks[l] + a->dec_blocks[l];

  float **ptr = calloc((size_t)n, sizeof *ptr);
  net->storage = malloc((size_t)mdc_arch_num_params(a) * sizeof(float));
  net->blocks = calloc((size_t)(nblocks ? nblocks : 1), sizeof *net->blocks);
  if (!ptr || !net->storage || !net->blocks) {
    free(ptr);
    mdc_net_clear(net);
    return mdc_set_error(err, MASKDCPT_ERROR_OUT_OF_MEMORY, "out of memory for the network");
  }
  size_t off = 0;
  for (int k = 0; k < n; k++) {
    mdc_tensor_spec s;
    mdc_arch_tensor(a, k, &s);
    ptr[k] = net->storage + off;
    convert_tensor(&s, w->tensors[k], ptr[k]);
    off += (size_t)s.numel;
  }
  binder b = {a, ptr, n};
  char prefix[MDC_MAX_TENSOR_NAME];
  net->intro_w = bind(&b, "intro.weight");
  net->intro_b = bind(&b, "intro.bias");
  mdc_net_block *blk = net->blocks;
  size_t cond_off = 0;
  for (int l = 0; l < a->levels; l++) {
    net->enc[l] = blk;
    for (int j = 0; j < a->enc_blocks[l]; j++) {
      snprintf(prefix, sizeof prefix, "encoders.%d.%d.", l, j);
      bind_block(&b, blk++, prefix, mdc_arch_channels(a, l), 0);
    }
    net->down_w[l] = bind(&b, "downs.%d.weight", l);
    net->down_b[l] = bind(&b, "downs.%d.bias", l);
  }
  net->middle = blk;
  for (int j = 0; j < a->middle_blocks; j++) {
    snprintf(prefix, sizeof prefix, "middle.%d.", j);
    bind_block(&b, blk++, prefix, mdc_arch_channels(a, a->levels), 0);
  }
  for (int i = 0; i < a->levels; i++) {
    int c = mdc_arch_channels(a, a->levels - 1 - i);
    net->up_w[i] = bind(&b, "ups.%d.weight", i);
    net->dec[i] = blk;
    for (int j = 0; j < a->dec_blocks[i]; j++) {
      snprintf(prefix, sizeof prefix, "decoders.%d.%d.", i, j);
      bind_block(&b, blk, prefix, c, 1);
      blk->cond_offset = cond_off;
      cond_off += 4 * (size_t)c;
      blk++;
    }
  }
  net->num_blocks = (int)(blk - net->blocks);
  net->ending_w = bind(&b, "ending.weight");
  net->ending_b = bind(&b, "ending.bias");
  for (int l = 0; l <= a->levels; l++) {
    net->cls_proj_w[l] = bind(&b, "cls.proj.%d.weight", l);
    net->cls_proj_b[l] = bind(&b, "cls.proj.%d.bias", l);
  }
  net->cls_mix = bind(&b, "cls.mix");
  net->cls_fc1_w = bind(&b, "cls.fc1.weight");
  net->cls_fc1_b = bind(&b, "cls.fc1.bias");
  net->cls_fc2_w = bind(&b, "cls.fc2.weight");
  net->cls_fc2_b = bind(&b, "cls.fc2.bias");
  free(ptr);
  if (!net->intro_w || !net->ending_w || !net->cls_mix || !net->cls_fc2_b)
    return mdc_set_error(err, MASKDCPT_ERROR_FORMAT, "internal: tensor binding failed");
  return MASKDCPT_OK;
}

void mdc_net_clear(mdc_net *net) {
  if (!net->external_storage) free(net->storage);
  free(net->blocks);
  memset(net, 0, sizeof *net);
}

static const float *rebase_ptr(const float *p, const float *from, const float *to) {
  return p ? to + (p - from) : NULL;
}

maskdcpt_status mdc_net_rebase(const mdc_net *src, float *storage, mdc_net *dst,
                               maskdcpt_error *err) {
  *dst = *src;
  dst->storage = storage;
  dst->external_storage = 1;
  dst->blocks = malloc((size_t)(src->num_blocks ? src->num_blocks : 1) * sizeof *dst->blocks);
  if (!dst->blocks) {
    memset(dst, 0, sizeof *dst);
    return mdc_set_error(err, MASKDCPT_ERROR_OUT_OF_MEMORY, "out of memory for the network");
  }
  const float *from = src->storage;
#define REBASE(field) dst->field = rebase_ptr(src->field, from, storage)
  REBASE(intro_w), REBASE(intro_b), REBASE(ending_w), REBASE(ending_b);
  REBASE(cls_mix), REBASE(cls_fc1_w), REBASE(cls_fc1_b), REBASE(cls_fc2_w), REBASE(cls_fc2_b);
  for (int l = 0; l < MDC_MAX_LEVELS; l++) {
    REBASE(down_w[l]), REBASE(down_b[l]), REBASE(up_w[l]);
    dst->enc[l] = src->enc[l] ? dst->blocks + (src->enc[l] - src->blocks) : NULL;
    dst->dec[l] = src->dec[l] ? dst->blocks + (src->dec[l] - src->blocks) : NULL;
  }
  for (int l = 0; l <= MDC_MAX_LEVELS; l++) REBASE(cls_proj_w[l]), REBASE(cls_proj_b[l]);
  dst->middle = src->middle ? dst->blocks + (src->middle - src->blocks) : NULL;
  for (int k = 0; k < src->num_blocks; k++) {
    REBASE(blocks[k].cond_norm1_w), REBASE(blocks[k].cond_norm1_b);
    REBASE(blocks[k].cond_norm2_w), REBASE(blocks[k].cond_norm2_b);
    dst->blocks[k].cond_offset = src->blocks[k].cond_offset;
    dst->blocks[k].p.c = src->blocks[k].p.c;
    REBASE(blocks[k].p.norm1_w), REBASE(blocks[k].p.norm1_b);
    REBASE(blocks[k].p.conv1_w), REBASE(blocks[k].p.conv1_b);
    REBASE(blocks[k].p.conv2_w), REBASE(blocks[k].p.conv2_b);
    REBASE(blocks[k].p.sca_w), REBASE(blocks[k].p.sca_b);
    REBASE(blocks[k].p.conv3_w), REBASE(blocks[k].p.conv3_b);
    REBASE(blocks[k].p.norm2_w), REBASE(blocks[k].p.norm2_b);
    REBASE(blocks[k].p.conv4_w), REBASE(blocks[k].p.conv4_b);
    REBASE(blocks[k].p.conv5_w), REBASE(blocks[k].p.conv5_b);
    REBASE(blocks[k].p.beta), REBASE(blocks[k].p.gamma);
  }
#undef REBASE
  return MASKDCPT_OK;
}

/* ------------------------------------------------------- conditioning */

size_t mdc_net_cond_floats(const mdc_net *net) {
  size_t size = 0;
  for (int k = 0; k < net->num_blocks; k++)
    if (net->blocks[k].cond_norm1_w) size += 4 * (size_t)net->blocks[k].p.c;
  return size;
}

maskdcpt_status mdc_net_cond_init(mdc_net_cond *cond, const mdc_net *net) {
  size_t size = mdc_net_cond_floats(net);
  cond->size = size;
  cond->mixed = calloc(size ? size : 1, sizeof(float));
  return cond->mixed ? MASKDCPT_OK : MASKDCPT_ERROR_OUT_OF_MEMORY;
}

void mdc_net_cond_set(mdc_net_cond *cond, const mdc_net *net, const float *probs) {
  int classes = net->arch.num_classes;
  for (int k = 0; k < net->num_blocks; k++) {
    const mdc_net_block *blk = &net->blocks[k];
    if (!blk->cond_norm1_w) continue;
    int c = blk->p.c;
    const float *src[4] = {blk->cond_norm1_w, blk->cond_norm1_b, blk->cond_norm2_w,
                           blk->cond_norm2_b};
    for (int t = 0; t < 4; t++) {
      float *dst = cond->mixed + blk->cond_offset + (size_t)t * c;
      for (int ch = 0; ch < c; ch++) {
        double acc = 0.0;
        for (int q = 0; q < classes; q++) acc += (double)probs[q] * src[t][(size_t)q * c + ch];
        dst[ch] = (float)acc;
      }
    }
  }
}

void mdc_net_cond_clear(mdc_net_cond *cond) {
  free(cond->mixed);
  cond->mixed = NULL;
  cond->size = 0;
}

/* ------------------------------------------------------ memory plan */

typedef struct plan {
  int hp, wp;         /* padded size */
  int cls_rows;       /* rows per classifier-projection chunk at level 0 */
  size_t inp, a, b, f, skip[MDC_MAX_LEVELS], cls, gsum, scratch; /* offsets in floats / bytes */
  size_t scratch_bytes;
  size_t total_bytes;
} plan;

static int round_up(int v, int m) { return (v + m - 1) / m * m; }

static int level_window(const mdc_arch *a, int level) {
  if (a->sca_window == 0) return 0;
  int k = a->sca_window >> level;
  return k < 1 ? 1 : k;
}

/* Floats of plan space for n activation values: n, or in the fp16 mode
 * (2-byte values) half of it, rounded up to 64 bytes so that every
 * tensor stays aligned. */
static size_t act_floats(const mdc_backend *be, size_t n) {
  return be->act_half ? (n + 31) / 32 * 16 : n;
}

static void make_plan(const mdc_net *net, mdc_backend *be, int h, int w, plan *p) {
  const mdc_arch *a = &net->arch;
  int m = mdc_arch_multiple(a);
  p->hp = round_up(h, m);
  p->wp = round_up(w, m);
  size_t pix = (size_t)p->hp * p->wp;
  size_t s0 = act_floats(be, pix * (size_t)a->width), s3 = act_floats(be, pix * 3);
  size_t off = 0;
  p->inp = off, off += s3;
  p->a = off, off += s0;
  p->b = off, off += s0;
  p->f = off, off += s0 > s3 ? s0 : s3;
  for (int l = 0; l < a->levels; l++) {
    p->skip[l] = off;
    off += act_floats(be, (pix >> (2 * l)) * (size_t)mdc_arch_channels(a, l));
  }
  /* whole rows per chunk: a device backend takes bigger ones (fewer launches) */
  size_t chunk = mdc_be_is_device(be) ? 16 * (size_t)CLS_CHUNK : CLS_CHUNK;
  p->cls_rows = chunk > (size_t)p->wp ? (int)(chunk / p->wp) : 1;
  p->cls = off, off += act_floats(be, (size_t)p->cls_rows * p->wp * a->cls_hidden);
  p->gsum = off, off += (size_t)(a->levels + 1) * a->cls_hidden;
  size_t scratch = 0;
  for (int l = 0; l <= a->levels; l++) {
    size_t sb = be->nafblock_scratch_size(be, mdc_arch_channels(a, l), p->hp >> l, p->wp >> l,
                                          level_window(a, l));
    if (sb > scratch) scratch = sb;
  }
  /* scratch starts 64-byte aligned after the float buffers */
  size_t bytes = (off * sizeof(float) + 63) & ~(size_t)63;
  p->scratch = bytes;
  p->scratch_bytes = scratch;
  p->total_bytes = bytes + scratch + 64;
}

size_t mdc_net_work_bytes(const mdc_net *net, mdc_backend *be, int h, int w) {
  plan p;
  make_plan(net, be, h, w, &p);
  return p.total_bytes;
}

/* ------------------------------------------------------------ forward */

/* Reflect-101 index of i in [0, n), periodic for any i >= 0. */
static int reflect_index(int i, int n) {
  if (n == 1) return 0;
  int period = 2 * (n - 1);
  i %= period;
  return i < n ? i : period - i;
}

static void pad_input(const float *in, int h, int w, float *dst, int hp, int wp) {
  for (int y = 0; y < hp; y++) {
    const float *row = in + (size_t)reflect_index(y, h) * w * 3;
    float *d = dst + (size_t)y * wp * 3;
    memcpy(d, row, (size_t)w * 3 * sizeof(float));
    for (int x = w; x < wp; x++) memcpy(d + x * 3, row + reflect_index(x, w) * 3, 3 * sizeof(float));
  }
}

/* Runs `count` blocks ping-ponging between *x and *tmp; the result ends
 * in *x. */
static void run_blocks(mdc_backend *be, const mdc_net_block *blocks, int count,
                       const mdc_net_cond *cond, float **x, float **tmp, int h, int w, float eps,
                       int window, void *scratch) {
  for (int k = 0; k < count; k++) {
    mdc_nafblock_params p = blocks[k].p;
    if (blocks[k].cond_norm1_w) {
      const float *m = cond->mixed + blocks[k].cond_offset;
      p.norm1_w = m, p.norm1_b = m + p.c, p.norm2_w = m + 2 * p.c, p.norm2_b = m + 3 * p.c;
    }
    be->nafblock_forward(be, &p, *x, h, w, eps, window, *tmp, scratch);
    float *t = *x;
    *x = *tmp;
    *tmp = t;
  }
}

/* g[H] += sum over the valid hv x wv area of ReLU(proj(f)); f is [hl][wl][c].
 * Whole rows per chunk (the padding columns are projected too, but not
 * summed). */
static void pool_classifier_level(const mdc_net *net, mdc_backend *be, int level, const float *f,
                                  int wl, int hv, int wv, int rows, float *tmp, float *g) {
  int c = mdc_arch_channels(&net->arch, level), hdim = net->arch.cls_hidden;
  for (int y = 0; y < hv; y += rows) {
    int r = hv - y < rows ? hv - y : rows;
    be->conv1x1(be, f + (size_t)y * wl * c, (size_t)r * wl, c, net->cls_proj_w[level],
                net->cls_proj_b[level], hdim, tmp);
    be->relu_sum(be, tmp, r, wv, (size_t)wl, hdim, g);
  }
}

/* Frees the staging buffer and reports a device failure (a kernel, a
 * transfer, a library call) as MASKDCPT_ERROR_DEVICE. */
static maskdcpt_status finish_forward(mdc_backend *be, float *staging, maskdcpt_error *err) {
  free(staging);
  char msg[512];
  if (mdc_be_sync(be, msg, sizeof msg) != 0)
    return mdc_set_error(err, MASKDCPT_ERROR_DEVICE, "%s: %s", be->name, msg);
  return MASKDCPT_OK;
}

maskdcpt_status mdc_net_forward(const mdc_net *net, mdc_backend *be, const float *in, int h,
                                int w, const mdc_net_cond *cond, float *out, double *g,
                                double *counts, void *work, maskdcpt_error *err) {
  const mdc_arch *a = &net->arch;
  plan pl;
  make_plan(net, be, h, w, &pl);
  float *base = work;
  void *scratch = (char *)work + pl.scratch;
  float *inp = base + pl.inp, *x = base + pl.a, *tmp = base + pl.b, *f = base + pl.f;
  int hl = pl.hp, wl = pl.wp;
  int device = mdc_be_is_device(be);
  size_t padded_bytes = (size_t)pl.hp * pl.wp * 3 * sizeof(float);
  /* A device backend reads the padded input from, and leaves the result
   * in, device memory: both go through one host staging buffer. */
  float *staging = device ? malloc(padded_bytes) : NULL;
  if (device && !staging)
    return mdc_set_error(err, MASKDCPT_ERROR_OUT_OF_MEMORY, "out of memory for a tile");

  if (device) {
    pad_input(in, h, w, staging, pl.hp, pl.wp);
    mdc_be_act_upload(be, inp, staging, (size_t)pl.hp * pl.wp * 3);
  } else {
    pad_input(in, h, w, inp, pl.hp, pl.wp);
  }
  be->conv3x3(be, inp, 1, hl, wl, 3, net->intro_w, net->intro_b, a->width, x);

  for (int l = 0; l < a->levels; l++) {
    int c = mdc_arch_channels(a, l);
    run_blocks(be, net->enc[l], a->enc_blocks[l], cond, &x, &tmp, hl, wl, a->norm_eps,
               level_window(a, l), scratch);
    float *skip = base + pl.skip[l];
    mdc_be_copy(be, skip, x, (size_t)hl * wl * c * mdc_be_act_size(be));
    be->conv2x2s2(be, skip, hl, wl, c, net->down_w[l], net->down_b[l], 2 * c, x);
    hl /= 2, wl /= 2;
  }
  run_blocks(be, net->middle, a->middle_blocks, cond, &x, &tmp, hl, wl, a->norm_eps,
             level_window(a, a->levels), scratch);

  if (g) {
    int hd = a->cls_hidden;
    size_t ng = (size_t)(a->levels + 1) * hd;
    float *gsum = base + pl.gsum, gh[(MDC_MAX_LEVELS + 1) * 1024];
    mdc_be_zero(be, gsum, ng * sizeof(float));
    for (int l = 0; l <= a->levels; l++) {
      const float *feat = l < a->levels ? base + pl.skip[l] : x;
      int hv = (h + (1 << l) - 1) >> l, wv = (w + (1 << l) - 1) >> l;
      int rows = pl.cls_rows << l; /* the same chunk size in pixels at every level */
      pool_classifier_level(net, be, l, feat, pl.wp >> l, hv, wv, rows, base + pl.cls,
                            gsum + (size_t)l * hd);
      counts[l] = (double)hv * wv;
    }
    mdc_be_download(be, gh, gsum, ng * sizeof(float));
    for (int l = 0; l <= a->levels; l++)
      for (int j = 0; j < hd; j++) g[(size_t)l * hd + j] = gh[(size_t)l * hd + j] / counts[l];
  }
  if (!out) return finish_forward(be, staging, err);

  for (int i = 0; i < a->levels; i++) {
    int l = a->levels - 1 - i, c = mdc_arch_channels(a, l);
    be->conv1x1(be, x, (size_t)hl * wl, 2 * c, net->up_w[i], NULL, 4 * c, f);
    be->pixelshuffle_add(be, f, hl, wl, c, base + pl.skip[l], x);
    hl *= 2, wl *= 2;
    run_blocks(be, net->dec[i], a->dec_blocks[i], cond, &x, &tmp, hl, wl, a->norm_eps,
               level_window(a, l), scratch);
  }
  be->conv3x3(be, x, 1, hl, wl, a->width, net->ending_w, net->ending_b, 3, f);
  const float *res = f;
  if (device) {
    mdc_be_act_download(be, staging, f, (size_t)pl.hp * pl.wp * 3);
    res = staging;
  }
  for (int y = 0; y < h; y++) {
    const float *r = res + (size_t)y * pl.wp * 3, *s = in + (size_t)y * w * 3;
    float *o = out + (size_t)y * w * 3;
    for (int k = 0; k < w * 3; k++) o[k] = r[k] + s[k];
  }
  return finish_forward(be, staging, err);
}

void mdc_net_classify(const mdc_net *net, const double *g, float *probs) {
  const mdc_arch *a = &net->arch;
  int hd = a->cls_hidden, k = a->num_classes, nl = a->levels + 1;
  double mix[MDC_MAX_LEVELS + 1], mmax = -INFINITY, msum = 0.0;
  for (int l = 0; l < nl; l++) mmax = fmax(mmax, net->cls_mix[l]);
  for (int l = 0; l < nl; l++) msum += mix[l] = exp(net->cls_mix[l] - mmax);
  double gm[1024] = {0}, hid[1024], logit[MDC_MAX_CLASSES]; /* cls_hidden <= 1024 */
  for (int l = 0; l < nl; l++)
    for (int j = 0; j < hd; j++) gm[j] += mix[l] / msum * g[(size_t)l * hd + j];
  for (int o = 0; o < hd; o++) {
    double acc = net->cls_fc1_b[o];
    for (int j = 0; j < hd; j++) acc += (double)net->cls_fc1_w[(size_t)o * hd + j] * gm[j];
    hid[o] = acc > 0.0 ? acc : 0.0;
  }
  double lmax = -INFINITY, lsum = 0.0;
  for (int q = 0; q < k; q++) {
    double acc = net->cls_fc2_b[q];
    for (int j = 0; j < hd; j++) acc += (double)net->cls_fc2_w[(size_t)q * hd + j] * hid[j];
    logit[q] = acc;
    lmax = fmax(lmax, acc);
  }
  for (int q = 0; q < k; q++) lsum += logit[q] = exp(logit[q] - lmax);
  for (int q = 0; q < k; q++) probs[q] = (float)(logit[q] / lsum);
}
