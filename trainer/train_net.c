/* train_net.c - forward with saved activations and backward through the
 * whole network; the layer maths is the backend's (kernels/backend.h). */
#include "train_net.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tr_block_cache {
  const mdc_net_block *blk;
  int level, c, h, w;
  size_t hw, n; /* pixels of one crop, of the batch */
  const float *x;    /* the block's input (the previous stage's output) */
  const float *mask; /* per pixel 0/1 when masked, else NULL */
  float *ln1, *mean1, *rstd1, *c1, *dw, *g, *pool, *s, *gs, *c3, *y, *ln2, *mean2, *rstd2, *c4,
      *g2, *c5, *out;
};

mdc_backend *tr_backend_new(const char *device, int threads, char *msg, size_t msg_size) {
  char why[400] = "";
  msg[0] = '\0';
  if (strcmp(device, "cpu") != 0) {
    int precision = mdc_cuda_strict_requested() ? MDC_CUDA_STRICT_FP32 : MDC_CUDA_TF32;
    mdc_backend *be = mdc_backend_cuda_new(0, precision, why, sizeof why);
    if (be) return be;
    if (!strcmp(device, "cuda")) {
      snprintf(msg, msg_size, "--device cuda: %s", why);
      return NULL;
    }
    snprintf(msg, msg_size, "using the CPU: %s", why);
  }
  mdc_backend *be = mdc_backend_cpu_best_new(threads);
  if (!be) snprintf(msg, msg_size, "could not start the CPU backend");
  return be;
}

/* ------------------------------------------------------------- memory */

static float *alloc_floats(mdc_backend *be, size_t n) {
  return mdc_be_alloc(be, (n ? n : 1) * sizeof(float));
}

static int block_alloc(mdc_backend *be, tr_block_cache *b, int batch) {
  size_t n = b->n, c = (size_t)b->c, bc = (size_t)batch * c;
  float **bufs[] = {&b->ln1, &b->c1, &b->dw, &b->g, &b->gs, &b->c3, &b->y, &b->ln2, &b->c4,
                    &b->g2, &b->c5, &b->out, &b->mean1, &b->rstd1, &b->mean2, &b->rstd2,
                    &b->pool, &b->s};
  size_t sizes[] = {n * c, 2 * n * c, 2 * n * c, n * c, n * c, n * c, n * c, n * c, 2 * n * c,
                    n * c, n * c, n * c, n, n, n, n, bc, bc};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
    if (!(*bufs[i] = alloc_floats(be, sizes[i]))) return -1;
  return 0;
}

static void block_free(mdc_backend *be, tr_block_cache *b) {
  float *bufs[] = {b->ln1, b->mean1, b->rstd1, b->c1, b->dw, b->g, b->pool, b->s, b->gs,
                   b->c3, b->y, b->ln2, b->mean2, b->rstd2, b->c4, b->g2, b->c5, b->out};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) mdc_be_free(be, bufs[i]);
}

/* Level of block k in network order. */
static int block_level(const mdc_net *net, const mdc_net_block *blk) {
  const mdc_arch *a = &net->arch;
  for (int l = 0; l < a->levels; l++)
    if (blk >= net->enc[l] && blk < net->enc[l] + a->enc_blocks[l]) return l;
  if (blk >= net->middle && blk < net->middle + a->middle_blocks) return a->levels;
  for (int i = 0; i < a->levels; i++)
    if (blk >= net->dec[i] && blk < net->dec[i] + a->dec_blocks[i]) return a->levels - 1 - i;
  return 0;
}

/* The head's tensors, cls.mix .. cls.fc2.bias, are contiguous (the
 * canonical tensor order ends with them): floats in that span, or 0 when
 * the layout is not the expected one. */
static size_t head_span(const mdc_net *net) {
  const mdc_arch *a = &net->arch;
  size_t hd = (size_t)a->cls_hidden, k = (size_t)a->num_classes;
  const float *mix = net->cls_mix;
  if (net->cls_fc1_w != mix + a->levels + 1 || net->cls_fc1_b != net->cls_fc1_w + hd * hd ||
      net->cls_fc2_w != net->cls_fc1_b + hd || net->cls_fc2_b != net->cls_fc2_w + k * hd)
    return 0;
  return (size_t)(net->cls_fc2_b + k - mix);
}

/* Host pointers to the head's parameters: into the net on the CPU, into
 * the host mirror (refreshed by each forward) on a device. */
static void bind_head(tr_net *t) {
  const float *base = mdc_be_is_device(t->be) ? t->head_mirror : t->net.cls_mix;
  const mdc_net *n = &t->net;
  t->head.mix = base;
  t->head.fc1_w = base + (n->cls_fc1_w - n->cls_mix);
  t->head.fc1_b = base + (n->cls_fc1_b - n->cls_mix);
  t->head.fc2_w = base + (n->cls_fc2_w - n->cls_mix);
  t->head.fc2_b = base + (n->cls_fc2_b - n->cls_mix);
}

int tr_net_init(tr_net *t, mdc_net *net, int crop, int batch, mdc_backend *be, char *msg,
                size_t msg_size) {
  memset(t, 0, sizeof *t);
  t->be = be;
  const mdc_arch *a = &net->arch;
  int m = mdc_arch_multiple(a);
  if (crop < m || crop % m) {
    snprintf(msg, msg_size, "crop %d must be a positive multiple of %d", crop, m);
    mdc_net_clear(net);
    return -1;
  }
  if (a->sca_window && a->sca_window < crop) {
    snprintf(msg, msg_size,
             "crop %d is larger than the attention window %d: training uses the global mean",
             crop, a->sca_window);
    mdc_net_clear(net);
    return -1;
  }
  if (batch < 1 || batch > 4096) {
    snprintf(msg, msg_size, "batch %d: must be 1 to 4096", batch);
    mdc_net_clear(net);
    return -1;
  }
  t->crop = crop;
  t->batch = batch;
  t->num_params = (size_t)mdc_arch_num_params(a);
  int ok = 1;
  if (mdc_be_is_device(be)) {
    t->host = *net;
    memset(net, 0, sizeof *net);
    float *params = alloc_floats(be, t->num_params);
    ok = params && mdc_net_rebase(&t->host, params, &t->net, NULL) == MASKDCPT_OK;
    if (ok) {
      /* t->net does not own params: tr_net_free releases them through be */
      mdc_be_upload(be, params, t->host.storage, t->num_params * sizeof(float));
      ok = (t->head_mirror = malloc(head_span(&t->host) * sizeof(float) + 1)) != NULL;
    } else {
      mdc_be_free(be, params);
    }
  } else {
    t->net = *net;
    memset(net, 0, sizeof *net);
  }
  a = &t->net.arch;
  size_t B = (size_t)batch, n0 = B * crop * crop, w = (size_t)a->width,
         K = (size_t)a->num_classes, hd = (size_t)a->cls_hidden,
         nf = B * (size_t)(a->levels + 1) * hd;
  ok = ok && (t->grad = alloc_floats(be, t->num_params)) && (t->in = alloc_floats(be, n0 * 3)) &&
       (t->intro = alloc_floats(be, n0 * w)) && (t->out = alloc_floats(be, n0 * 3)) &&
       (t->target = alloc_floats(be, n0 * 3)) && (t->d_out = alloc_floats(be, n0 * 3)) &&
       (t->out_host = malloc(n0 * 3 * sizeof(float))) && head_span(&t->net) > 0 &&
       (t->head_grad = malloc(head_span(&t->net) * sizeof(float))) &&
       (t->head_grad_dev = alloc_floats(be, head_span(&t->net))) &&
       (t->cond_dev = alloc_floats(be, B * K)) && (t->vec = alloc_floats(be, 6 * B * 4096)) &&
       (t->feat = alloc_floats(be, nf)) && (t->feat_host = malloc(nf * sizeof(float))) &&
       (t->vis_host = malloc(B * sizeof(float))) && (t->g = malloc(nf * sizeof(double))) &&
       (t->cls_g = malloc(B * hd * sizeof(double))) &&
       (t->cls_hidden = malloc(B * hd * sizeof(double))) &&
       (t->logits = calloc(B * K, sizeof(double))) && (t->cond = malloc(B * K * sizeof(float))) &&
       (t->mixed = alloc_floats(be, B * mdc_net_cond_floats(&t->net))) &&
       (t->d_a = alloc_floats(be, n0 * w * 2)) && (t->d_b = alloc_floats(be, n0 * w * 2)) &&
       (t->d_c = alloc_floats(be, n0 * w * 2)) && (t->d_d = alloc_floats(be, n0 * w * 2)) &&
       (t->d_e = alloc_floats(be, n0 * w * 2)) && (t->d_f = alloc_floats(be, n0 * w * 2)) &&
       (t->blocks = calloc((size_t)(t->net.num_blocks ? t->net.num_blocks : 1),
                           sizeof *t->blocks));
  for (int l = 0; ok && l <= a->levels; l++) {
    size_t nl = n0 >> (2 * l), cl = (size_t)mdc_arch_channels(a, l);
    ok = (t->mask[l] = alloc_floats(be, nl)) && (t->mask_host[l] = malloc(nl * sizeof(float))) &&
         (t->vis_scale[l] = alloc_floats(be, B)) &&
         (t->cls_proj[l] = alloc_floats(be, nl * hd));
    if (ok && l < a->levels)
      ok = (t->down[l] = alloc_floats(be, (nl / 4) * cl * 2)) &&
           (t->up[l] = alloc_floats(be, nl * cl)) && (t->merged[l] = alloc_floats(be, nl * cl)) &&
           (t->d_skip[l] = alloc_floats(be, nl * cl));
  }
  for (int k = 0; ok && k < t->net.num_blocks; k++) {
    tr_block_cache *b = &t->blocks[k];
    b->blk = &t->net.blocks[k];
    b->level = block_level(&t->net, b->blk);
    b->c = b->blk->p.c;
    b->h = b->w = crop >> b->level;
    b->hw = (size_t)b->h * b->w;
    b->n = B * b->hw;
    ok = block_alloc(be, b, batch) == 0;
  }
  if (!ok) {
    snprintf(msg, msg_size, "out of %s memory for training activations (%d crops of %d px)",
             mdc_be_is_device(be) ? "GPU" : "host", batch, crop);
    tr_net_free(t);
    return -1;
  }
  bind_head(t);
  return 0;
}

void tr_net_free(tr_net *t) {
  mdc_backend *be = t->be;
  if (!be) return;
  if (t->blocks)
    for (int k = 0; k < t->net.num_blocks; k++) block_free(be, &t->blocks[k]);
  free(t->blocks);
  float *bufs[] = {t->grad, t->in,  t->intro, t->out, t->target, t->d_out, t->cond_dev, t->vec,
                   t->feat, t->head_grad_dev, t->mixed, t->d_a, t->d_b, t->d_c, t->d_d,
                   t->d_e, t->d_f};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) mdc_be_free(be, bufs[i]);
  for (int l = 0; l <= MDC_MAX_LEVELS; l++) {
    mdc_be_free(be, t->mask[l]);
    free(t->mask_host[l]);
    mdc_be_free(be, t->vis_scale[l]);
    mdc_be_free(be, t->cls_proj[l]);
    if (l < MDC_MAX_LEVELS) {
      mdc_be_free(be, t->down[l]);
      mdc_be_free(be, t->up[l]);
      mdc_be_free(be, t->merged[l]);
      mdc_be_free(be, t->d_skip[l]);
    }
  }
  free(t->out_host);
  free(t->head_mirror);
  free(t->head_grad);
  free(t->feat_host);
  free(t->vis_host);
  free(t->g);
  free(t->cls_g);
  free(t->cls_hidden);
  free(t->logits);
  free(t->cond);
  if (mdc_be_is_device(be)) {
    mdc_be_free(be, t->net.storage);
    mdc_net_clear(&t->host);
  }
  mdc_net_clear(&t->net);
  memset(t, 0, sizeof *t);
}

void tr_net_zero_grad(tr_net *t) { mdc_be_zero(t->be, t->grad, t->num_params * sizeof(float)); }

void tr_net_download(tr_net *t, float *host, const float *src, size_t n) {
  mdc_be_download(t->be, host, src, n * sizeof(float));
}

void tr_net_upload(tr_net *t, float *dst, const float *host, size_t n) {
  mdc_be_upload(t->be, dst, host, n * sizeof(float));
}

int tr_net_check(tr_net *t, char *msg, size_t msg_size) {
  if (mdc_be_sync(t->be, msg, msg_size) == 0) return 0;
  return -1;
}

const float *tr_net_output(tr_net *t) {
  if (!mdc_be_is_device(t->be)) return t->out;
  tr_net_download(t, t->out_host, t->out, (size_t)t->n * t->crop * t->crop * 3);
  return t->out_host;
}

double tr_net_restoration_loss(tr_net *t, const float *const *clean, int psnr, double psnr_eps,
                               float scale) {
  mdc_backend *be = t->be;
  size_t px = (size_t)t->crop * t->crop * 3;
  for (int i = 0; i < t->n; i++) tr_net_upload(t, t->target + i * px, clean[i], px);
  if (!psnr) /* the mean over the batch of per-crop means is one mean */
    return t->n * be->l1_loss(be, t->out, t->target, t->n * px, scale * t->n, t->d_out);
  return be->psnr_loss(be, t->out, t->target, t->n, px, psnr_eps, scale, t->d_out);
}

/* ------------------------------------------------------------ forward */

/* The block's parameters with conditioned norms resolved: per-crop rows
 * of t->mixed (see train_net.h), read with gb_every = pixels per crop. */
static mdc_nafblock_params block_params(const tr_net *t, const mdc_net_block *blk,
                                        size_t *gb_every, size_t hw) {
  mdc_nafblock_params p = blk->p;
  *gb_every = 0;
  if (blk->cond_norm1_w) {
    size_t bc = (size_t)t->batch * p.c;
    const float *m = t->mixed + blk->cond_offset * t->batch;
    p.norm1_w = m, p.norm1_b = m + bc, p.norm2_w = m + 2 * bc, p.norm2_b = m + 3 * bc;
    *gb_every = hw;
  }
  return p;
}

static const float *block_forward(tr_net *t, mdc_backend *be, tr_block_cache *b, const float *x,
                                  const float *mask) {
  size_t gbe, n = (size_t)t->n * b->hw;
  mdc_nafblock_params p = block_params(t, b->blk, &gbe, b->hw);
  int c = b->c, nb = t->n;
  float eps = t->net.arch.norm_eps;
  b->x = x;
  b->mask = mask;
  be->layernorm(be, x, n, c, p.norm1_w, p.norm1_b, gbe, eps, b->ln1, b->mean1, b->rstd1);
  be->conv1x1(be, b->ln1, n, c, p.conv1_w, p.conv1_b, 2 * c, b->c1);
  be->dwconv3x3(be, b->c1, nb, b->h, b->w, 2 * c, p.conv2_w, p.conv2_b, b->dw);
  if (mask) be->mask_pixels(be, b->dw, mask, n, 2 * c, b->dw);
  be->simplegate(be, b->dw, n, c, b->g);
  be->pool_mean(be, b->g, nb, b->h, b->w, c, 0, b->pool);
  /* masked: the mean over visible pixels, each crop its own share */
  if (mask) be->mask_pixels(be, b->pool, t->vis_scale[b->level], (size_t)nb, c, b->pool);
  be->conv1x1(be, b->pool, (size_t)nb, c, p.sca_w, p.sca_b, c, b->s);
  be->scale_channels(be, b->g, b->s, b->hw, n, c, b->gs);
  be->conv1x1(be, b->gs, n, c, p.conv3_w, p.conv3_b, c, b->c3);
  mdc_be_add_scaled_layernorm(be, x, b->c3, p.beta, n, c, p.norm2_w, p.norm2_b, gbe, eps, b->y,
                              b->ln2, b->mean2, b->rstd2);
  be->conv1x1(be, b->ln2, n, c, p.conv4_w, p.conv4_b, 2 * c, b->c4);
  be->simplegate(be, b->c4, n, c, b->g2);
  be->conv1x1(be, b->g2, n, c, p.conv5_w, p.conv5_b, c, b->c5);
  be->add_scaled(be, b->y, b->c5, p.gamma, n, c, b->out);
  return b->out;
}

/* Crop i's logits = fc2(ReLU(fc1(sum_l softmax(mix)_l g_l))), in double on
 * the host; keeps what the backward needs. */
static void classifier_head(tr_net *t, int i) {
  const tr_head *h = &t->head;
  const mdc_arch *a = &t->net.arch;
  int hd = a->cls_hidden, k = a->num_classes, nlv = a->levels + 1;
  const double *g = t->g + (size_t)i * nlv * hd;
  double *cls_g = t->cls_g + (size_t)i * hd, *hidden = t->cls_hidden + (size_t)i * hd;
  double *logits = t->logits + (size_t)i * k;
  for (int j = 0; j < hd; j++) {
    cls_g[j] = 0;
    for (int l = 0; l < nlv; l++) cls_g[j] += t->cls_mix[l] * g[(size_t)l * hd + j];
  }
  for (int o = 0; o < hd; o++) {
    double acc = h->fc1_b[o];
    for (int j = 0; j < hd; j++) acc += (double)h->fc1_w[(size_t)o * hd + j] * cls_g[j];
    hidden[o] = acc > 0 ? acc : 0;
  }
  for (int q = 0; q < k; q++) {
    double acc = h->fc2_b[q];
    for (int j = 0; j < hd; j++) acc += (double)h->fc2_w[(size_t)q * hd + j] * hidden[j];
    logits[q] = acc;
  }
}

/* softmax(cls.mix): the levels' weights, shared by all crops. */
static void classifier_mix(tr_net *t) {
  const tr_head *h = &t->head;
  int nlv = t->net.arch.levels + 1;
  double mmax = -INFINITY, msum = 0;
  for (int l = 0; l < nlv; l++) mmax = fmax(mmax, h->mix[l]);
  for (int l = 0; l < nlv; l++) msum += t->cls_mix[l] = exp(h->mix[l] - mmax);
  for (int l = 0; l < nlv; l++) t->cls_mix[l] /= msum;
}

/* Expands the crops' patch masks to every level (a patch is
 * 2^(levels - l) pixels at level l), with each crop's pixels / visible
 * pixels per level. */
static void expand_masks(tr_net *t, const unsigned char *const *masks) {
  const mdc_arch *a = &t->net.arch;
  int patches = t->crop >> a->levels;
  for (int l = 0; l <= a->levels; l++) {
    int side = t->crop >> l, ps = 1 << (a->levels - l);
    size_t nl = (size_t)side * side;
    for (int i = 0; i < t->n; i++) {
      const unsigned char *mask = masks[i];
      float *mh = t->mask_host[l] + i * nl;
      double vis = 0;
      for (int y = 0; y < side; y++)
        for (int x = 0; x < side; x++) {
          float v = mask[(y / ps) * patches + x / ps] ? 1.0f : 0.0f;
          mh[(size_t)y * side + x] = v;
          vis += v;
        }
      t->vis_host[i] = vis > 0 ? (float)(nl / vis) : 1.0f;
    }
    tr_net_upload(t, t->mask[l], t->mask_host[l], t->n * nl);
    tr_net_upload(t, t->vis_scale[l], t->vis_host, (size_t)t->n);
  }
}

/* The decoder's norms mixed for t->cond: per tensor a [n][K] x [K][c]
 * product into crop rows of t->mixed. */
static void mix_conditioning(tr_net *t, mdc_backend *be) {
  int k = t->net.arch.num_classes;
  tr_net_upload(t, t->cond_dev, t->cond, (size_t)t->n * k); /* add_cond_grad reads it too */
  for (int b = 0; b < t->net.num_blocks; b++) {
    const mdc_net_block *blk = &t->net.blocks[b];
    if (!blk->cond_norm1_w) continue;
    int c = blk->p.c;
    const float *src[4] = {blk->cond_norm1_w, blk->cond_norm1_b, blk->cond_norm2_w,
                           blk->cond_norm2_b};
    float *dst = t->mixed + blk->cond_offset * t->batch;
    for (int q = 0; q < 4; q++)
      be->conv1x1(be, t->cond_dev, (size_t)t->n, k, src[q], NULL, c,
                  dst + (size_t)q * t->batch * c);
  }
}

void tr_net_forward(tr_net *t, mdc_backend *be, int n, const float *const *in,
                    const unsigned char *const *masks, const float *const *cond, int restore) {
  const mdc_arch *a = &t->net.arch;
  const mdc_net *net = &t->net;
  int s = t->crop, hd = a->cls_hidden, nlv = a->levels + 1, k = a->num_classes;
  t->n = n = n < 1 ? 1 : n > t->batch ? t->batch : n;
  size_t px = (size_t)s * s, n0 = (size_t)n * px;
  int masked = masks != NULL;
  if (mdc_be_is_device(be)) /* the head runs on the host: this step's parameters */
    tr_net_download(t, t->head_mirror, net->cls_mix, head_span(net));
  if (masked) expand_masks(t, masks);
  for (int i = 0; i < n; i++) tr_net_upload(t, t->in + i * px * 3, in[i], px * 3);
  if (masked) be->mask_pixels(be, t->in, t->mask[0], n0, 3, t->in);
  be->conv3x3(be, t->in, n, s, s, 3, net->intro_w, net->intro_b, a->width, t->intro);
  if (masked) be->mask_pixels(be, t->intro, t->mask[0], n0, a->width, t->intro);

  t->masked = masked;
  const float *x = t->intro;
  tr_block_cache *bc = t->blocks;
  for (int l = 0; l < a->levels; l++) {
    const float *ml = masked ? t->mask[l] : NULL;
    for (int j = 0; j < a->enc_blocks[l]; j++) x = block_forward(t, be, bc++, x, ml);
    t->skip[l] = (float *)x;
    int side = s >> l, c = mdc_arch_channels(a, l);
    /* crops stacked along rows: a 2x2 cell never spans two crops */
    be->conv2x2s2(be, x, n * side, side, c, net->down_w[l], net->down_b[l], 2 * c, t->down[l]);
    x = t->down[l];
  }
  for (int j = 0; j < a->middle_blocks; j++)
    x = block_forward(t, be, bc++, x, masked ? t->mask[a->levels] : NULL);
  t->mid_out = x;

  /* classifier: g_l = mean ReLU(proj_l(f_l)) over each whole crop */
  float *feat = t->feat;
  mdc_be_zero(be, feat, (size_t)n * nlv * hd * sizeof(float));
  for (int l = 0; l <= a->levels; l++) {
    const float *f = l < a->levels ? t->skip[l] : x;
    int side = s >> l;
    size_t nl = (size_t)side * side;
    be->conv1x1(be, f, n * nl, mdc_arch_channels(a, l), net->cls_proj_w[l], net->cls_proj_b[l],
                hd, t->cls_proj[l]);
    for (int i = 0; i < n; i++)
      be->relu_sum(be, t->cls_proj[l] + i * nl * hd, side, side, (size_t)side, hd,
                   feat + ((size_t)i * nlv + l) * hd);
  }
  tr_net_download(t, t->feat_host, feat, (size_t)n * nlv * hd);
  classifier_mix(t);
  for (int i = 0; i < n; i++) {
    for (int l = 0; l < nlv; l++) {
      size_t o = ((size_t)i * nlv + l) * hd;
      for (int j = 0; j < hd; j++) t->g[o + j] = t->feat_host[o + j] / (double)(px >> (2 * l));
    }
    classifier_head(t, i);
  }
  if (!restore) return;

  for (int i = 0; i < n; i++) {
    float *ci = t->cond + (size_t)i * k;
    if (cond && cond[i]) {
      memcpy(ci, cond[i], (size_t)k * sizeof(float));
      continue;
    }
    /* the classifier's own probabilities, as at inference in auto mode */
    const double *lg = t->logits + (size_t)i * k;
    double mx = lg[0], sum = 0;
    for (int q = 1; q < k; q++) mx = fmax(mx, lg[q]);
    for (int q = 0; q < k; q++) sum += exp(lg[q] - mx);
    for (int q = 0; q < k; q++) ci[q] = (float)(exp(lg[q] - mx) / sum);
  }
  mix_conditioning(t, be);
  for (int i = 0; i < a->levels; i++) {
    int l = a->levels - 1 - i, c = mdc_arch_channels(a, l), side = s >> (l + 1);
    t->dec_in[i] = x;
    be->conv1x1(be, x, (size_t)n * side * side, 2 * c, net->up_w[i], NULL, 4 * c, t->up[l]);
    be->pixelshuffle_add(be, t->up[l], n * side, side, c, t->skip[l], t->merged[l]);
    x = t->merged[l];
    for (int j = 0; j < a->dec_blocks[i]; j++) x = block_forward(t, be, bc++, x, NULL);
  }
  t->dec_out = x;
  be->conv3x3(be, x, n, s, s, a->width, net->ending_w, net->ending_b, 3, t->out);
  be->add_scaled(be, t->out, t->in, NULL, n0, 3, t->out);
}

/* ----------------------------------------------------------- backward */

/* Adds d(norm params of the mixed copies) into the per-class gradients:
 * g[q][i] += sum over crops of cond[crop][q] * d[crop][i], a [K] x [n] x
 * [c] product. */
static void add_cond_grad(tr_net *t, mdc_backend *be, const float *cond_param, const float *d,
                          int c) {
  int k = t->net.arch.num_classes;
  be->conv1x1_backward(be, t->cond_dev, (size_t)t->n, k, cond_param, c, d, NULL,
                       tr_grad_of(t, cond_param), NULL);
}

/* dx from dout through one block (both [n][h][w][c]); dout and dx must not
 * be any of t->d_a .. t->d_d. */
static void block_backward(tr_net *t, mdc_backend *be, tr_block_cache *b, const float *dout,
                           float *dx) {
  const mdc_net_block *blk = b->blk;
  size_t gbe, n = (size_t)t->n * b->hw;
  mdc_nafblock_params p = block_params(t, blk, &gbe, b->hw);
  int c = b->c, nb = t->n, cond = blk->cond_norm1_w != NULL;
  float *d2a = t->d_a, *d2b = t->d_b, *d1a = t->d_c, *dy = t->d_d;
  /* per-crop, per-channel scratch (channels <= 4096, mdc_arch_validate) */
  size_t row = (size_t)t->batch * 4096;
  float *dn1w = t->vec, *dn1b = dn1w + row, *dn2w = dn1b + row, *dn2b = dn2w + row;
  float *dsv = dn2b + row, *dpool = dsv + row;
  float *g_n1w = cond ? dn1w : tr_grad_of(t, p.norm1_w), *g_n1b = cond ? dn1b : tr_grad_of(t, p.norm1_b);
  float *g_n2w = cond ? dn2w : tr_grad_of(t, p.norm2_w), *g_n2b = cond ? dn2b : tr_grad_of(t, p.norm2_b);
  if (cond) mdc_be_zero(be, dn1w, 4 * row * sizeof(float));
  /* out = y + gamma * c5 */
  be->add_scaled_backward(be, b->c5, p.gamma, n, c, dout, d1a, tr_grad_of(t, p.gamma));
  be->conv1x1_backward(be, b->g2, n, c, p.conv5_w, c, d1a, dx, tr_grad_of(t, p.conv5_w),
                       tr_grad_of(t, p.conv5_b));
  be->simplegate_backward(be, b->c4, n, c, dx, d2a);
  be->conv1x1_backward(be, b->ln2, n, c, p.conv4_w, 2 * c, d2a, d1a, tr_grad_of(t, p.conv4_w),
                       tr_grad_of(t, p.conv4_b));
  be->layernorm_backward(be, b->y, n, c, p.norm2_w, gbe, b->mean2, b->rstd2, d1a, dy, g_n2w,
                         g_n2b);
  be->add_scaled(be, dy, dout, NULL, n, c, dy);
  /* y = x + beta * c3 */
  be->add_scaled_backward(be, b->c3, p.beta, n, c, dy, d1a, tr_grad_of(t, p.beta));
  be->conv1x1_backward(be, b->gs, n, c, p.conv3_w, c, d1a, dx, tr_grad_of(t, p.conv3_w),
                       tr_grad_of(t, p.conv3_b));
  /* gs = g * s, s = sca(pool(g)) per crop */
  be->scale_channels_backward(be, b->g, b->s, b->hw, n, c, dx, d1a, dsv);
  be->conv1x1_backward(be, b->pool, (size_t)nb, c, p.sca_w, c, dsv, dpool,
                       tr_grad_of(t, p.sca_w), tr_grad_of(t, p.sca_b));
  if (b->mask) be->mask_pixels(be, dpool, t->vis_scale[b->level], (size_t)nb, c, dpool);
  be->pool_mean_backward(be, nb, b->h, b->w, c, 0, dpool, dx);
  be->add_scaled(be, d1a, dx, NULL, n, c, d1a);
  /* g = gate(mask(dwconv(c1))) */
  be->simplegate_backward(be, b->dw, n, c, d1a, d2a);
  if (b->mask) be->mask_pixels(be, d2a, b->mask, n, 2 * c, d2a);
  be->dwconv3x3_backward(be, b->c1, nb, b->h, b->w, 2 * c, p.conv2_w, d2a, d2b,
                         tr_grad_of(t, p.conv2_w), tr_grad_of(t, p.conv2_b));
  be->conv1x1_backward(be, b->ln1, n, c, p.conv1_w, 2 * c, d2b, d1a, tr_grad_of(t, p.conv1_w),
                       tr_grad_of(t, p.conv1_b));
  be->layernorm_backward(be, b->x, n, c, p.norm1_w, gbe, b->mean1, b->rstd1, d1a, dx, g_n1w,
                         g_n1b);
  be->add_scaled(be, dx, dy, NULL, n, c, dx);
  if (cond) {
    add_cond_grad(t, be, blk->cond_norm1_w, dn1w, c);
    add_cond_grad(t, be, blk->cond_norm1_b, dn1b, c);
    add_cond_grad(t, be, blk->cond_norm2_w, dn2w, c);
    add_cond_grad(t, be, blk->cond_norm2_b, dn2b, c);
  }
}

/* d(logits) ([n][K]) back to the classifier's parameters and to the
 * features it read: d f_l is added into d_skip[l] (l < levels) and d_mid
 * (the middle output's gradient); d_mid NULL: to the parameters only.
 * The head's gradients are computed on the host and added into t->grad in
 * one pass. */
static void classifier_backward(tr_net *t, mdc_backend *be, const double *d_logits,
                                float *d_mid) {
  const mdc_net *net = &t->net;
  const tr_head *h = &t->head;
  const mdc_arch *a = &net->arch;
  int hd = a->cls_hidden, k = a->num_classes, nlv = a->levels + 1;
  size_t span = head_span(net);
  double d_hidden[1024], d_g[1024];
  float *hg = t->head_grad;
  memset(hg, 0, span * sizeof(float));
  float *g_mix = hg, *g_fc1w = hg + (h->fc1_w - h->mix), *g_fc1b = hg + (h->fc1_b - h->mix);
  float *g_fc2w = hg + (h->fc2_w - h->mix), *g_fc2b = hg + (h->fc2_b - h->mix);
  float *coef = t->feat_host; /* [n][levels + 1][hd]: each level's share of d_g per crop */
  for (int i = 0; i < t->n; i++) {
    const double *dl = d_logits + (size_t)i * k, *g = t->g + (size_t)i * nlv * hd;
    const double *hidden = t->cls_hidden + (size_t)i * hd, *cls_g = t->cls_g + (size_t)i * hd;
    for (int j = 0; j < hd; j++) d_hidden[j] = 0;
    for (int q = 0; q < k; q++) {
      g_fc2b[q] += (float)dl[q];
      for (int j = 0; j < hd; j++) {
        g_fc2w[(size_t)q * hd + j] += (float)(dl[q] * hidden[j]);
        d_hidden[j] += h->fc2_w[(size_t)q * hd + j] * dl[q];
      }
    }
    for (int j = 0; j < hd; j++) d_g[j] = 0;
    for (int o = 0; o < hd; o++) {
      if (hidden[o] <= 0) continue;
      g_fc1b[o] += (float)d_hidden[o];
      for (int j = 0; j < hd; j++) {
        g_fc1w[(size_t)o * hd + j] += (float)(d_hidden[o] * cls_g[j]);
        d_g[j] += h->fc1_w[(size_t)o * hd + j] * d_hidden[o];
      }
    }
    /* g = sum_l pi_l g_l with pi = softmax(mix) */
    double dot[MDC_MAX_LEVELS + 1], avg = 0;
    for (int l = 0; l < nlv; l++) {
      dot[l] = 0;
      for (int j = 0; j < hd; j++) dot[l] += d_g[j] * g[(size_t)l * hd + j];
      avg += t->cls_mix[l] * dot[l];
    }
    for (int l = 0; l < nlv; l++) {
      g_mix[l] += (float)(t->cls_mix[l] * (dot[l] - avg));
      double nl = (double)(((size_t)t->crop * t->crop) >> (2 * l));
      float *cf = coef + ((size_t)i * nlv + l) * hd;
      for (int j = 0; j < hd; j++) cf[j] = (float)(t->cls_mix[l] * d_g[j] / nl);
    }
  }
  float *grad_head = tr_grad_of(t, net->cls_mix);
  if (mdc_be_is_device(be)) {
    tr_net_upload(t, t->head_grad_dev, hg, span);
    be->add_scaled(be, grad_head, t->head_grad_dev, NULL, span, 1, grad_head);
  } else {
    for (size_t i = 0; i < span; i++) grad_head[i] += hg[i];
  }

  float *coef_dev = t->feat;
  tr_net_upload(t, coef_dev, coef, (size_t)t->n * nlv * hd);
  for (int l = 0; l < nlv; l++) {
    size_t nl = ((size_t)t->crop * t->crop) >> (2 * l);
    int cl = mdc_arch_channels(a, l);
    /* ReLU outputs, overwritten by their gradient: the mean's share of d_g */
    float *dp = t->cls_proj[l];
    for (int i = 0; i < t->n; i++)
      be->relu_mask_scale(be, dp + i * nl * hd, coef_dev + ((size_t)i * nlv + l) * hd, nl, hd,
                          dp + i * nl * hd);
    const float *f = l < a->levels ? t->skip[l] : t->mid_out;
    be->conv1x1_backward(be, f, t->n * nl, cl, net->cls_proj_w[l], hd, dp, d_mid ? t->d_a : NULL,
                         tr_grad_of(t, net->cls_proj_w[l]), tr_grad_of(t, net->cls_proj_b[l]));
    if (!d_mid) continue;
    float *dst = l < a->levels ? t->d_skip[l] : d_mid;
    be->add_scaled(be, dst, t->d_a, NULL, t->n * nl, cl, dst);
  }
}

void tr_net_backward_head(tr_net *t, mdc_backend *be, const double *d_logits) {
  classifier_backward(t, be, d_logits, NULL);
}

static void swap(float **a, float **b) {
  float *t = *a;
  *a = *b;
  *b = t;
}

void tr_net_backward(tr_net *t, mdc_backend *be, const float *d_out, const double *d_logits) {
  const mdc_arch *a = &t->net.arch;
  const mdc_net *net = &t->net;
  int s = t->crop, nb = t->n;
  size_t n0 = (size_t)nb * s * s;
  float *ga = t->d_e, *gb = t->d_f;
  for (int l = 0; l < a->levels; l++)
    mdc_be_zero(be, t->d_skip[l], (n0 >> (2 * l)) * mdc_arch_channels(a, l) * sizeof(float));
  int first_dec = a->middle_blocks;
  for (int l = 0; l < a->levels; l++) first_dec += a->enc_blocks[l];
  tr_block_cache *bc = t->blocks + first_dec;
  size_t n_mid = n0 >> (2 * a->levels);
  int c_mid = mdc_arch_channels(a, a->levels);

  if (d_out) {
    bc = t->blocks + net->num_blocks;
    be->conv3x3_backward(be, t->dec_out, nb, s, s, a->width, net->ending_w, 3, d_out, ga,
                         tr_grad_of(t, net->ending_w), tr_grad_of(t, net->ending_b));
    for (int i = a->levels - 1; i >= 0; i--) {
      int l = a->levels - 1 - i, c = mdc_arch_channels(a, l), side = s >> (l + 1);
      for (int j = a->dec_blocks[i] - 1; j >= 0; j--) {
        block_backward(t, be, --bc, ga, gb);
        swap(&ga, &gb);
      }
      size_t nl = n0 >> (2 * l);
      be->add_scaled(be, t->d_skip[l], ga, NULL, nl, c, t->d_skip[l]);
      be->pixelshuffle_backward(be, nb * side, side, c, ga, gb);
      be->conv1x1_backward(be, t->dec_in[i], (size_t)nb * side * side, 2 * c, net->up_w[i],
                           4 * c, gb, ga, tr_grad_of(t, net->up_w[i]), NULL);
    }
  } else {
    mdc_be_zero(be, ga, n_mid * c_mid * sizeof(float));
  }
  if (d_logits) classifier_backward(t, be, d_logits, ga);
  for (int j = a->middle_blocks - 1; j >= 0; j--) {
    block_backward(t, be, --bc, ga, gb);
    swap(&ga, &gb);
  }
  for (int l = a->levels - 1; l >= 0; l--) {
    int side = s >> l, c = mdc_arch_channels(a, l);
    size_t nl = (size_t)nb * side * side;
    be->conv2x2s2_backward(be, t->skip[l], nb * side, side, c, net->down_w[l], 2 * c, ga, gb,
                           tr_grad_of(t, net->down_w[l]), tr_grad_of(t, net->down_b[l]));
    be->add_scaled(be, gb, t->d_skip[l], NULL, nl, c, gb);
    swap(&ga, &gb);
    for (int j = a->enc_blocks[l] - 1; j >= 0; j--) {
      block_backward(t, be, --bc, ga, gb);
      swap(&ga, &gb);
    }
  }
  if (t->masked) be->mask_pixels(be, ga, t->mask[0], n0, a->width, ga);
  be->conv3x3_backward(be, t->in, nb, s, s, 3, net->intro_w, a->width, ga, NULL,
                       tr_grad_of(t, net->intro_w), tr_grad_of(t, net->intro_b));
}
