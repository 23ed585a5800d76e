/* train_net.h - the network's forward pass with saved activations and its
 * backward pass, for one crop at a time (gradients accumulate over a
 * batch).  Parameters live in an mdc_net (kernel layouts), so the trainer
 * and the inference core always run the same network; gradients have the
 * same layout in a parallel array.
 *
 * MaskDCPT's masking (DESIGN.md section 5): the input is zeroed on masked
 * 16x16 patches, the features are zeroed there after the intro conv and
 * after every block's spatial (depthwise) branch, and channel attention
 * averages over visible positions only.  Training uses the global
 * attention mean (crop <= sca_window, or sca_window 0), which is exactly
 * what the TLC window computes at that size.
 *
 * The decoder is conditioned on class weights given by the caller
 * (teacher-forced label, predicted probabilities, or a mix); they are
 * treated as constants: the classifier learns from its own loss. */
#ifndef TR_TRAIN_NET_H
#define TR_TRAIN_NET_H

#include <stddef.h>

#include "backend.h"
#include "model.h"

typedef struct tr_block_cache tr_block_cache;

typedef struct tr_net {
  mdc_net net;  /* parameters */
  float *grad;  /* gradients, same layout as net.storage */
  size_t num_params;
  int crop;     /* side of the square crops this plan holds */
  /* saved activations for one crop */
  float *in, *intro, *skip[MDC_MAX_LEVELS], *down[MDC_MAX_LEVELS], *up[MDC_MAX_LEVELS],
      *merged[MDC_MAX_LEVELS], *out;
  float *mask[MDC_MAX_LEVELS + 1]; /* per level, 1 visible / 0 masked; NULL: no mask */
  tr_block_cache *blocks;          /* one per block, network order */
  float *cls_proj[MDC_MAX_LEVELS + 1];
  const float *mid_out, *dec_in[MDC_MAX_LEVELS], *dec_out; /* stage outputs */
  int masked;
  double g[(MDC_MAX_LEVELS + 1) * 1024]; /* classifier: pooled features per level */
  double cls_mix[MDC_MAX_LEVELS + 1];    /* softmax of cls.mix */
  double cls_g[1024], cls_hidden[1024];  /* mixed features, ReLU(fc1) */
  double logits[MDC_MAX_CLASSES];
  float cond[MDC_MAX_CLASSES];
  mdc_net_cond mixed;
  /* backward scratch: d_a..d_d inside blocks, d_e/d_f for the flow */
  float *d_a, *d_b, *d_c, *d_d, *d_e, *d_f, *d_skip[MDC_MAX_LEVELS];
} tr_net;

/* Takes over `net` (its storage becomes the trained parameters) and plans
 * activations for crops of crop x crop (a multiple of 2^levels).  0, or -1
 * with a message. */
int tr_net_init(tr_net *t, mdc_net *net, int crop, char *msg, size_t msg_size);
void tr_net_free(tr_net *t);
void tr_net_zero_grad(tr_net *t);

/* Forward on one crop: in [crop][crop][3]; mask: [crop/16][crop/16] of
 * 0/1 (patch granularity 2^levels), or NULL; cond: class weights for the
 * decoder, or NULL for the classifier's own probabilities (auto mode).  Fills t->out (restored, [crop][crop][3]) and t->logits.
 * restore == 0 runs the encoder and classifier only. */
void tr_net_forward(tr_net *t, mdc_backend *be, const float *in, const unsigned char *mask,
                    const float *cond, int restore);

/* Backward from d_out (d loss / d restored, [crop][crop][3]; NULL when the
 * restoration has no loss) and d_logits (d loss / d logits; NULL when the
 * classifier has none), accumulating into t->grad.  Needs the forward of
 * the same crop just before. */
void tr_net_backward(tr_net *t, mdc_backend *be, const float *d_out, const double *d_logits);

/* The gradient slot of a parameter pointer into t->net.storage. */
static inline float *tr_grad_of(tr_net *t, const float *param) {
  return param ? t->grad + (param - t->net.storage) : NULL;
}

#endif
