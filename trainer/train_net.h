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

/* The classifier head's parameters as the host reads them (it runs in
 * double on the host: a few thousand multiply-adds per crop). */
typedef struct tr_head {
  const float *mix, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} tr_head;

typedef struct tr_net {
  mdc_backend *be; /* every buffer below lives in its memory unless marked host */
  mdc_net net;     /* parameters */
  mdc_net host;    /* device backend: the host-side net (layout, export); else unused */
  float *grad;     /* gradients, same layout as net.storage */
  size_t num_params;
  int crop;     /* side of the square crops this plan holds */
  float *target, *d_out; /* clean crop and d loss / d out for tr_net_restoration_loss */
  float *out_host;       /* host copy of out (tr_net_output) */
  tr_head head;          /* host */
  float *head_mirror;    /* device backend: host copy of the head's parameters */
  float *head_grad;      /* host: the head's gradients of one backward */
  float *head_grad_dev;  /* the same, on its way into grad */
  float *cond_dev;       /* class weights [K] */
  float *vec;            /* per-channel scratch: 8 x 4096 floats */
  float *mask_host[MDC_MAX_LEVELS + 1]; /* host copies of mask[] */
  float vis_scale[MDC_MAX_LEVELS + 1];  /* pixels / visible pixels per level */
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

/* The backend for --device auto|cpu|cuda (MASKDCPT_CUDA_STRICT=1: no
 * TF32).  auto falls back to the best CPU backend and then says why in
 * msg ("using the CPU: ..."); msg is empty otherwise.  NULL with the reason
 * in msg when cuda fails or no CPU backend starts. */
mdc_backend *tr_backend_new(const char *device, int threads, char *msg, size_t msg_size);

/* Takes over `net` (host; its storage becomes the trained parameters, on
 * a device backend copied to the device) and plans activations for crops
 * of crop x crop (a multiple of 2^levels) in `be`'s memory.  0, or -1
 * with a message. */
int tr_net_init(tr_net *t, mdc_net *net, int crop, mdc_backend *be, char *msg, size_t msg_size);
void tr_net_free(tr_net *t);
void tr_net_zero_grad(tr_net *t);

/* Forward on one crop: in [crop][crop][3]; mask: [crop/16][crop/16] of
 * 0/1 (patch granularity 2^levels), or NULL; cond: class weights for the
 * decoder, or NULL for the classifier's own probabilities (auto mode).  Fills t->out (restored, [crop][crop][3]) and t->logits.
 * restore == 0 runs the encoder and classifier only. */
void tr_net_forward(tr_net *t, mdc_backend *be, const float *in, const unsigned char *mask,
                    const float *cond, int restore);

/* The restoration loss of the last forward against `clean` (host,
 * [crop][crop][3]): L1, or with psnr NAFNet's PSNR loss 10 log10(MSE +
 * psnr_eps).  Leaves scale * d loss / d out in t->d_out for
 * tr_net_backward. */
double tr_net_restoration_loss(tr_net *t, const float *clean, int psnr, double psnr_eps,
                               float scale);

/* t->out on the host (downloaded for a device backend). */
const float *tr_net_output(tr_net *t);

/* Parameters, their gradients or optimizer state between host arrays and
 * the backend's memory (n floats from / to t->net.storage layout). */
void tr_net_download(tr_net *t, float *host, const float *src, size_t n);
void tr_net_upload(tr_net *t, float *dst, const float *host, size_t n);

/* 0, or -1 with the backend's failure (device backends). */
int tr_net_check(tr_net *t, char *msg, size_t msg_size);

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
