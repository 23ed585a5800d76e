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
  size_t n;
  const float *x;    /* the block's input (the previous stage's output) */
  const float *mask; /* per pixel 0/1 when masked, else NULL */
  float *ln1, *mean1, *rstd1, *c1, *dw, *g, *pool, *s, *gs, *c3, *y, *ln2, *mean2, *rstd2, *c4,
      *g2, *c5, *out;
  float vis_scale; /* pixels / visible pixels: the attention mean over visible ones */
};

/* ------------------------------------------------------------- memory */

static float *alloc_floats(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

static int block_alloc(tr_block_cache *b) {
  size_t n = b->n, c = (size_t)b->c;
  float **bufs[] = {&b->ln1, &b->c1, &b->dw, &b->g, &b->gs, &b->c3, &b->y, &b->ln2, &b->c4,
                    &b->g2, &b->c5, &b->out};
  size_t sizes[] = {n * c, 2 * n * c, 2 * n * c, n * c, n * c, n * c, n * c, n * c, 2 * n * c,
                    n * c, n * c, n * c};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
    if (!(*bufs[i] = alloc_floats(sizes[i]))) return -1;
  if (!(b->mean1 = alloc_floats(n)) || !(b->rstd1 = alloc_floats(n)) ||
      !(b->mean2 = alloc_floats(n)) || !(b->rstd2 = alloc_floats(n)) ||
      !(b->pool = alloc_floats(c)) || !(b->s = alloc_floats(c)))
    return -1;
  return 0;
}

static void block_free(tr_block_cache *b) {
  float *bufs[] = {b->ln1, b->mean1, b->rstd1, b->c1, b->dw, b->g, b->pool, b->s, b->gs,
                   b->c3, b->y, b->ln2, b->mean2, b->rstd2, b->c4, b->g2, b->c5, b->out};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
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

int tr_net_init(tr_net *t, mdc_net *net, int crop, char *msg, size_t msg_size) {
  memset(t, 0, sizeof *t);
  t->net = *net;
  memset(net, 0, sizeof *net);
  const mdc_arch *a = &t->net.arch;
  int m = mdc_arch_multiple(a);
  if (crop < m || crop % m) {
    snprintf(msg, msg_size, "crop %d must be a positive multiple of %d", crop, m);
    return -1;
  }
  if (a->sca_window && a->sca_window < crop) {
    snprintf(msg, msg_size,
             "crop %d is larger than the attention window %d: training uses the global mean",
             crop, a->sca_window);
    return -1;
  }
  t->crop = crop;
  t->num_params = (size_t)mdc_arch_num_params(a);
  size_t n0 = (size_t)crop * crop, w = (size_t)a->width;
  int ok = (t->grad = alloc_floats(t->num_params)) && (t->in = alloc_floats(n0 * 3)) &&
           (t->intro = alloc_floats(n0 * w)) && (t->out = alloc_floats(n0 * 3)) &&
           (t->d_a = alloc_floats(n0 * w * 2)) && (t->d_b = alloc_floats(n0 * w * 2)) &&
           (t->d_c = alloc_floats(n0 * w * 2)) && (t->d_d = alloc_floats(n0 * w * 2)) &&
           (t->d_e = alloc_floats(n0 * w * 2)) && (t->d_f = alloc_floats(n0 * w * 2)) &&
           mdc_net_cond_init(&t->mixed, &t->net) == MASKDCPT_OK &&
           (t->blocks = calloc((size_t)(t->net.num_blocks ? t->net.num_blocks : 1),
                               sizeof *t->blocks));
  for (int l = 0; ok && l <= a->levels; l++) {
    size_t nl = n0 >> (2 * l), cl = (size_t)mdc_arch_channels(a, l);
    ok = (t->mask[l] = alloc_floats(nl)) && (t->cls_proj[l] = alloc_floats(nl * a->cls_hidden));
    if (ok && l < a->levels)
      ok = (t->down[l] = alloc_floats((nl / 4) * cl * 2)) && (t->up[l] = alloc_floats(nl * cl)) &&
           (t->merged[l] = alloc_floats(nl * cl)) && (t->d_skip[l] = alloc_floats(nl * cl));
  }
  for (int k = 0; ok && k < t->net.num_blocks; k++) {
    tr_block_cache *b = &t->blocks[k];
    b->blk = &t->net.blocks[k];
    b->level = block_level(&t->net, b->blk);
    b->c = b->blk->p.c;
    b->h = b->w = crop >> b->level;
    b->n = (size_t)b->h * b->w;
    ok = block_alloc(b) == 0;
  }
  if (!ok) {
    snprintf(msg, msg_size, "out of memory for training activations (crop %d)", crop);
    tr_net_free(t);
    return -1;
  }
  return 0;
}

void tr_net_free(tr_net *t) {
  if (t->blocks)
    for (int k = 0; k < t->net.num_blocks; k++) block_free(&t->blocks[k]);
  free(t->blocks);
  free(t->grad);
  free(t->in);
  free(t->intro);
  free(t->out);
  free(t->d_a);
  free(t->d_b);
  free(t->d_c);
  free(t->d_d);
  free(t->d_e);
  free(t->d_f);
  for (int l = 0; l <= MDC_MAX_LEVELS; l++) {
    free(t->mask[l]);
    free(t->cls_proj[l]);
    if (l < MDC_MAX_LEVELS) {
      free(t->down[l]);
      free(t->up[l]);
      free(t->merged[l]);
      free(t->d_skip[l]);
    }
  }
  mdc_net_cond_clear(&t->mixed);
  mdc_net_clear(&t->net);
  memset(t, 0, sizeof *t);
}

void tr_net_zero_grad(tr_net *t) { memset(t->grad, 0, t->num_params * sizeof(float)); }

/* ------------------------------------------------------------ forward */

/* The block's parameters with conditioned norms resolved. */
static mdc_nafblock_params block_params(const tr_net *t, const mdc_net_block *blk) {
  mdc_nafblock_params p = blk->p;
  if (blk->cond_norm1_w) {
    const float *m = t->mixed.mixed + blk->cond_offset;
    p.norm1_w = m, p.norm1_b = m + p.c, p.norm2_w = m + 2 * p.c, p.norm2_b = m + 3 * p.c;
  }
  return p;
}

static const float *block_forward(tr_net *t, mdc_backend *be, tr_block_cache *b, const float *x,
                                  const float *mask) {
  mdc_nafblock_params p = block_params(t, b->blk);
  size_t n = b->n;
  int c = b->c;
  float eps = t->net.arch.norm_eps;
  b->x = x;
  b->mask = mask;
  double vis = 0;
  if (mask)
    for (size_t i = 0; i < n; i++) vis += mask[i];
  b->vis_scale = mask && vis > 0 ? (float)(n / vis) : 1.0f;
  be->layernorm(be, x, n, c, p.norm1_w, p.norm1_b, eps, b->ln1, b->mean1, b->rstd1);
  be->conv1x1(be, b->ln1, n, c, p.conv1_w, p.conv1_b, 2 * c, b->c1);
  be->dwconv3x3(be, b->c1, b->h, b->w, 2 * c, p.conv2_w, p.conv2_b, b->dw);
  if (mask) be->mask_pixels(be, b->dw, mask, n, 2 * c, b->dw);
  be->simplegate(be, b->dw, n, c, b->g);
  be->pool_mean(be, b->g, b->h, b->w, c, 0, b->pool);
  if (mask)
    for (int i = 0; i < c; i++) b->pool[i] *= b->vis_scale;
  be->conv1x1(be, b->pool, 1, c, p.sca_w, p.sca_b, c, b->s);
  be->scale_channels(be, b->g, b->s, 0, n, c, b->gs);
  be->conv1x1(be, b->gs, n, c, p.conv3_w, p.conv3_b, c, b->c3);
  be->add_scaled(be, x, b->c3, p.beta, n, c, b->y);
  be->layernorm(be, b->y, n, c, p.norm2_w, p.norm2_b, eps, b->ln2, b->mean2, b->rstd2);
  be->conv1x1(be, b->ln2, n, c, p.conv4_w, p.conv4_b, 2 * c, b->c4);
  be->simplegate(be, b->c4, n, c, b->g2);
  be->conv1x1(be, b->g2, n, c, p.conv5_w, p.conv5_b, c, b->c5);
  be->add_scaled(be, b->y, b->c5, p.gamma, n, c, b->out);
  return b->out;
}

/* logits = fc2(ReLU(fc1(sum_l softmax(mix)_l g_l))), in double; keeps
 * what the backward needs. */
static void classifier_head(tr_net *t) {
  const mdc_net *net = &t->net;
  const mdc_arch *a = &net->arch;
  int hd = a->cls_hidden, k = a->num_classes, nlv = a->levels + 1;
  double mmax = -INFINITY, msum = 0;
  for (int l = 0; l < nlv; l++) mmax = fmax(mmax, net->cls_mix[l]);
  for (int l = 0; l < nlv; l++) msum += t->cls_mix[l] = exp(net->cls_mix[l] - mmax);
  for (int l = 0; l < nlv; l++) t->cls_mix[l] /= msum;
  for (int j = 0; j < hd; j++) {
    t->cls_g[j] = 0;
    for (int l = 0; l < nlv; l++) t->cls_g[j] += t->cls_mix[l] * t->g[(size_t)l * hd + j];
  }
  for (int o = 0; o < hd; o++) {
    double acc = net->cls_fc1_b[o];
    for (int j = 0; j < hd; j++) acc += (double)net->cls_fc1_w[(size_t)o * hd + j] * t->cls_g[j];
    t->cls_hidden[o] = acc > 0 ? acc : 0;
  }
  for (int q = 0; q < k; q++) {
    double acc = net->cls_fc2_b[q];
    for (int j = 0; j < hd; j++) acc += (double)net->cls_fc2_w[(size_t)q * hd + j] * t->cls_hidden[j];
    t->logits[q] = acc;
  }
}

/* Expands the patch mask to every level: a patch is 2^(levels - l)
 * pixels at level l. */
static void expand_mask(tr_net *t, const unsigned char *mask) {
  const mdc_arch *a = &t->net.arch;
  int patches = t->crop >> a->levels;
  for (int l = 0; l <= a->levels; l++) {
    int side = t->crop >> l, ps = 1 << (a->levels - l);
    for (int y = 0; y < side; y++)
      for (int x = 0; x < side; x++)
        t->mask[l][(size_t)y * side + x] = mask[(y / ps) * patches + x / ps] ? 1.0f : 0.0f;
  }
}

void tr_net_forward(tr_net *t, mdc_backend *be, const float *in, const unsigned char *mask,
                    const float *cond, int restore) {
  const mdc_arch *a = &t->net.arch;
  const mdc_net *net = &t->net;
  int s = t->crop;
  size_t n0 = (size_t)s * s;
  int masked = mask != NULL;
  if (masked) expand_mask(t, mask);
  memcpy(t->in, in, n0 * 3 * sizeof(float));
  if (masked) be->mask_pixels(be, t->in, t->mask[0], n0, 3, t->in);
  be->conv3x3(be, t->in, s, s, 3, net->intro_w, net->intro_b, a->width, t->intro);
  if (masked) be->mask_pixels(be, t->intro, t->mask[0], n0, a->width, t->intro);

  t->masked = masked;
  const float *x = t->intro;
  tr_block_cache *bc = t->blocks;
  for (int l = 0; l < a->levels; l++) {
    const float *ml = masked ? t->mask[l] : NULL;
    for (int j = 0; j < a->enc_blocks[l]; j++) x = block_forward(t, be, bc++, x, ml);
    t->skip[l] = (float *)x;
    int side = s >> l, c = mdc_arch_channels(a, l);
    be->conv2x2s2(be, x, side, side, c, net->down_w[l], net->down_b[l], 2 * c, t->down[l]);
    x = t->down[l];
  }
  for (int j = 0; j < a->middle_blocks; j++)
    x = block_forward(t, be, bc++, x, masked ? t->mask[a->levels] : NULL);
  t->mid_out = x;

  /* classifier: g_l = mean ReLU(proj_l(f_l)) over the whole crop */
  int hd = a->cls_hidden;
  for (int l = 0; l <= a->levels; l++) {
    const float *f = l < a->levels ? t->skip[l] : x;
    size_t nl = n0 >> (2 * l);
    be->conv1x1(be, f, nl, mdc_arch_channels(a, l), net->cls_proj_w[l], net->cls_proj_b[l], hd,
                t->cls_proj[l]);
    double *gl = t->g + (size_t)l * hd;
    for (int j = 0; j < hd; j++) gl[j] = 0.0;
    for (size_t i = 0; i < nl; i++)
      for (int j = 0; j < hd; j++) {
        float v = t->cls_proj[l][i * hd + j];
        if (v > 0) gl[j] += v;
      }
    for (int j = 0; j < hd; j++) gl[j] /= (double)nl;
  }
  classifier_head(t);
  if (!restore) return;

  if (cond) {
    memcpy(t->cond, cond, (size_t)a->num_classes * sizeof(float));
  } else { /* the classifier's own probabilities, as at inference in auto mode */
    double mx = t->logits[0], sum = 0;
    for (int q = 1; q < a->num_classes; q++) mx = fmax(mx, t->logits[q]);
    for (int q = 0; q < a->num_classes; q++) sum += exp(t->logits[q] - mx);
    for (int q = 0; q < a->num_classes; q++) t->cond[q] = (float)(exp(t->logits[q] - mx) / sum);
  }
  mdc_net_cond_set(&t->mixed, net, t->cond);
  for (int i = 0; i < a->levels; i++) {
    int l = a->levels - 1 - i, c = mdc_arch_channels(a, l), side = s >> (l + 1);
    t->dec_in[i] = x;
    be->conv1x1(be, x, (size_t)side * side, 2 * c, net->up_w[i], NULL, 4 * c, t->up[l]);
    be->pixelshuffle_add(be, t->up[l], side, side, c, t->skip[l], t->merged[l]);
    x = t->merged[l];
    for (int j = 0; j < a->dec_blocks[i]; j++) x = block_forward(t, be, bc++, x, NULL);
  }
  t->dec_out = x;
  be->conv3x3(be, x, s, s, a->width, net->ending_w, net->ending_b, 3, t->out);
  for (size_t i = 0; i < n0 * 3; i++) t->out[i] += t->in[i];
}

/* ----------------------------------------------------------- backward */

/* Adds d(norm params of the mixed copy) into the per-class gradients. */
static void add_cond_grad(tr_net *t, const float *cond_param, const float *d, int c) {
  float *g = tr_grad_of(t, cond_param);
  for (int q = 0; q < t->net.arch.num_classes; q++)
    for (int i = 0; i < c; i++) g[(size_t)q * c + i] += t->cond[q] * d[i];
}

/* dx[n][c] from dout[n][c] through one block; dout and dx must not be
 * any of t->d_a .. t->d_d. */
static void block_backward(tr_net *t, mdc_backend *be, tr_block_cache *b, const float *dout,
                           float *dx) {
  const mdc_net_block *blk = b->blk;
  mdc_nafblock_params p = block_params(t, blk);
  size_t n = b->n;
  int c = b->c, cond = blk->cond_norm1_w != NULL;
  float *d2a = t->d_a, *d2b = t->d_b, *d1a = t->d_c, *dy = t->d_d;
  /* channels <= 4096 (mdc_arch_validate) */
  float dn1w[4096], dn1b[4096], dn2w[4096], dn2b[4096], dsv[4096], dpool[4096];
  float *g_n1w = cond ? dn1w : tr_grad_of(t, p.norm1_w), *g_n1b = cond ? dn1b : tr_grad_of(t, p.norm1_b);
  float *g_n2w = cond ? dn2w : tr_grad_of(t, p.norm2_w), *g_n2b = cond ? dn2b : tr_grad_of(t, p.norm2_b);
  if (cond) {
    memset(dn1w, 0, sizeof(float) * c), memset(dn1b, 0, sizeof(float) * c);
    memset(dn2w, 0, sizeof(float) * c), memset(dn2b, 0, sizeof(float) * c);
  }
  /* out = y + gamma * c5 */
  be->add_scaled_backward(be, b->c5, p.gamma, n, c, dout, d1a, tr_grad_of(t, p.gamma));
  be->conv1x1_backward(be, b->g2, n, c, p.conv5_w, c, d1a, dx, tr_grad_of(t, p.conv5_w),
                       tr_grad_of(t, p.conv5_b));
  be->simplegate_backward(be, b->c4, n, c, dx, d2a);
  be->conv1x1_backward(be, b->ln2, n, c, p.conv4_w, 2 * c, d2a, d1a, tr_grad_of(t, p.conv4_w),
                       tr_grad_of(t, p.conv4_b));
  be->layernorm_backward(be, b->y, n, c, p.norm2_w, b->mean2, b->rstd2, d1a, dy, g_n2w, g_n2b);
  for (size_t i = 0; i < n * c; i++) dy[i] += dout[i];
  /* y = x + beta * c3 */
  be->add_scaled_backward(be, b->c3, p.beta, n, c, dy, d1a, tr_grad_of(t, p.beta));
  be->conv1x1_backward(be, b->gs, n, c, p.conv3_w, c, d1a, dx, tr_grad_of(t, p.conv3_w),
                       tr_grad_of(t, p.conv3_b));
  /* gs = g * s, s = sca(pool(g)) */
  be->scale_channels_backward(be, b->g, b->s, 0, n, c, dx, d1a, dsv);
  be->conv1x1_backward(be, b->pool, 1, c, p.sca_w, c, dsv, dpool, tr_grad_of(t, p.sca_w),
                       tr_grad_of(t, p.sca_b));
  for (int i = 0; i < c; i++) dpool[i] *= b->vis_scale;
  be->pool_mean_backward(be, b->h, b->w, c, 0, dpool, dx);
  for (size_t i = 0; i < n * c; i++) d1a[i] += dx[i];
  /* g = gate(mask(dwconv(c1))) */
  be->simplegate_backward(be, b->dw, n, c, d1a, d2a);
  if (b->mask) be->mask_pixels(be, d2a, b->mask, n, 2 * c, d2a);
  be->dwconv3x3_backward(be, b->c1, b->h, b->w, 2 * c, p.conv2_w, d2a, d2b,
                         tr_grad_of(t, p.conv2_w), tr_grad_of(t, p.conv2_b));
  be->conv1x1_backward(be, b->ln1, n, c, p.conv1_w, 2 * c, d2b, d1a, tr_grad_of(t, p.conv1_w),
                       tr_grad_of(t, p.conv1_b));
  be->layernorm_backward(be, b->x, n, c, p.norm1_w, b->mean1, b->rstd1, d1a, dx, g_n1w, g_n1b);
  for (size_t i = 0; i < n * c; i++) dx[i] += dy[i];
  if (cond) {
    add_cond_grad(t, blk->cond_norm1_w, dn1w, c);
    add_cond_grad(t, blk->cond_norm1_b, dn1b, c);
    add_cond_grad(t, blk->cond_norm2_w, dn2w, c);
    add_cond_grad(t, blk->cond_norm2_b, dn2b, c);
  }
}

/* d(logits) back to the classifier's parameters and to the features it
 * read: d f_l is added into d_skip[l] (l < levels) and d_mid (the middle
 * output's gradient). */
static void classifier_backward(tr_net *t, mdc_backend *be, const double *d_logits,
                                float *d_mid) {
  const mdc_net *net = &t->net;
  const mdc_arch *a = &net->arch;
  int hd = a->cls_hidden, k = a->num_classes, nlv = a->levels + 1;
  double d_hidden[1024], d_g[1024];
  float *g_fc2w = tr_grad_of(t, net->cls_fc2_w), *g_fc2b = tr_grad_of(t, net->cls_fc2_b);
  float *g_fc1w = tr_grad_of(t, net->cls_fc1_w), *g_fc1b = tr_grad_of(t, net->cls_fc1_b);
  float *g_mix = tr_grad_of(t, net->cls_mix);
  for (int j = 0; j < hd; j++) d_hidden[j] = 0;
  for (int q = 0; q < k; q++) {
    g_fc2b[q] += (float)d_logits[q];
    for (int j = 0; j < hd; j++) {
      g_fc2w[(size_t)q * hd + j] += (float)(d_logits[q] * t->cls_hidden[j]);
      d_hidden[j] += net->cls_fc2_w[(size_t)q * hd + j] * d_logits[q];
    }
  }
  for (int j = 0; j < hd; j++) d_g[j] = 0;
  for (int o = 0; o < hd; o++) {
    if (t->cls_hidden[o] <= 0) continue;
    g_fc1b[o] += (float)d_hidden[o];
    for (int j = 0; j < hd; j++) {
      g_fc1w[(size_t)o * hd + j] += (float)(d_hidden[o] * t->cls_g[j]);
      d_g[j] += net->cls_fc1_w[(size_t)o * hd + j] * d_hidden[o];
    }
  }
  /* g = sum_l pi_l g_l with pi = softmax(mix) */
  double dot[MDC_MAX_LEVELS + 1], avg = 0;
  for (int l = 0; l < nlv; l++) {
    dot[l] = 0;
    for (int j = 0; j < hd; j++) dot[l] += d_g[j] * t->g[(size_t)l * hd + j];
    avg += t->cls_mix[l] * dot[l];
  }
  for (int l = 0; l < nlv; l++) g_mix[l] += (float)(t->cls_mix[l] * (dot[l] - avg));
  for (int l = 0; l < nlv; l++) {
    size_t nl = ((size_t)t->crop * t->crop) >> (2 * l);
    int cl = mdc_arch_channels(a, l);
    float *dp = t->cls_proj[l]; /* ReLU outputs, overwritten by their gradient */
    for (size_t i = 0; i < nl; i++)
      for (int j = 0; j < hd; j++) {
        float *v = &dp[i * hd + j];
        *v = *v > 0 ? (float)(t->cls_mix[l] * d_g[j] / (double)nl) : 0.0f;
      }
    const float *f = l < a->levels ? t->skip[l] : t->mid_out;
    be->conv1x1_backward(be, f, nl, cl, net->cls_proj_w[l], hd, dp, t->d_a,
                         tr_grad_of(t, net->cls_proj_w[l]), tr_grad_of(t, net->cls_proj_b[l]));
    float *dst = l < a->levels ? t->d_skip[l] : d_mid;
    for (size_t i = 0; i < nl * cl; i++) dst[i] += t->d_a[i];
  }
}

static void swap(float **a, float **b) {
  float *t = *a;
  *a = *b;
  *b = t;
}

void tr_net_backward(tr_net *t, mdc_backend *be, const float *d_out, const double *d_logits) {
  const mdc_arch *a = &t->net.arch;
  const mdc_net *net = &t->net;
  int s = t->crop;
  size_t n0 = (size_t)s * s;
  float *ga = t->d_e, *gb = t->d_f;
  for (int l = 0; l < a->levels; l++)
    memset(t->d_skip[l], 0, (n0 >> (2 * l)) * mdc_arch_channels(a, l) * sizeof(float));
  int first_dec = a->middle_blocks;
  for (int l = 0; l < a->levels; l++) first_dec += a->enc_blocks[l];
  tr_block_cache *bc = t->blocks + first_dec;
  size_t n_mid = n0 >> (2 * a->levels);
  int c_mid = mdc_arch_channels(a, a->levels);

  if (d_out) {
    bc = t->blocks + net->num_blocks;
    be->conv3x3_backward(be, t->dec_out, s, s, a->width, net->ending_w, 3, d_out, ga,
                         tr_grad_of(t, net->ending_w), tr_grad_of(t, net->ending_b));
    for (int i = a->levels - 1; i >= 0; i--) {
      int l = a->levels - 1 - i, c = mdc_arch_channels(a, l), side = s >> (l + 1);
      for (int j = a->dec_blocks[i] - 1; j >= 0; j--) {
        block_backward(t, be, --bc, ga, gb);
        swap(&ga, &gb);
      }
      size_t nl = n0 >> (2 * l);
      for (size_t q = 0; q < nl * c; q++) t->d_skip[l][q] += ga[q];
      be->pixelshuffle_backward(be, side, side, c, ga, gb);
      be->conv1x1_backward(be, t->dec_in[i], (size_t)side * side, 2 * c, net->up_w[i], 4 * c, gb,
                           ga, tr_grad_of(t, net->up_w[i]), NULL);
    }
  } else {
    memset(ga, 0, n_mid * c_mid * sizeof(float));
  }
  if (d_logits) classifier_backward(t, be, d_logits, ga);
  for (int j = a->middle_blocks - 1; j >= 0; j--) {
    block_backward(t, be, --bc, ga, gb);
    swap(&ga, &gb);
  }
  for (int l = a->levels - 1; l >= 0; l--) {
    int side = s >> l, c = mdc_arch_channels(a, l);
    size_t nl = (size_t)side * side;
    be->conv2x2s2_backward(be, t->skip[l], side, side, c, net->down_w[l], 2 * c, ga, gb,
                           tr_grad_of(t, net->down_w[l]), tr_grad_of(t, net->down_b[l]));
    for (size_t q = 0; q < nl * c; q++) gb[q] += t->d_skip[l][q];
    swap(&ga, &gb);
    for (int j = a->enc_blocks[l] - 1; j >= 0; j--) {
      block_backward(t, be, --bc, ga, gb);
      swap(&ga, &gb);
    }
  }
  if (t->masked) be->mask_pixels(be, ga, t->mask[0], n0, a->width, ga);
  be->conv3x3_backward(be, t->in, s, s, 3, net->intro_w, a->width, ga, NULL,
                       tr_grad_of(t, net->intro_w), tr_grad_of(t, net->intro_b));
}
