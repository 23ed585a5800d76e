/* train_net.h - the network's forward pass with saved activations and its
 * backward pass, for up to `batch` crops at once (each layer runs once
 * over all of them; gradients accumulate, so a large optimizer batch can
 * run as several smaller ones).  Parameters live in an mdc_net (kernel layouts), so the trainer
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
  int batch;    /* most crops per forward/backward */
  int n;        /* crops in the last forward */
  float *target, *d_out; /* clean crops and d loss / d out for tr_net_restoration_loss */
  float *out_host;       /* host copy of out (tr_net_output) */
  tr_head head;          /* host */
  float *head_mirror;    /* device backend: host copy of the head's parameters */
  float *head_grad;      /* host: the head's gradients of one backward */
  float *head_grad_dev;  /* the same, on its way into grad */
  float *cond_dev;       /* class weights [batch][K] */
  float *vec;            /* per-crop, per-channel scratch: 6 x batch x 4096 floats */
  float *feat;           /* the classifier's pooled feature sums [batch][levels + 1][hidden] */
  float *feat_host;      /* host copy of feat, and the head's coefficients on their way back */
  float *mask_host[MDC_MAX_LEVELS + 1]; /* host copies of mask[] */
  float *vis_scale[MDC_MAX_LEVELS + 1]; /* [batch] pixels / visible pixels per level */
  float *vis_host;                      /* host copy of one level's vis_scale */
  /* saved activations, [batch][...] */
  float *in, *intro, *skip[MDC_MAX_LEVELS], *down[MDC_MAX_LEVELS], *up[MDC_MAX_LEVELS],
      *merged[MDC_MAX_LEVELS], *out;
  float *mask[MDC_MAX_LEVELS + 1]; /* per level, 1 visible / 0 masked; NULL: no mask */
  tr_block_cache *blocks;          /* one per block, network order */
  float *cls_proj[MDC_MAX_LEVELS + 1];
  const float *mid_out, *dec_in[MDC_MAX_LEVELS], *dec_out; /* stage outputs */
  int masked;
  /* classifier, per crop (host, double) */
  double *g;                          /* [batch][levels + 1][hidden] pooled features */
  double cls_mix[MDC_MAX_LEVELS + 1]; /* softmax of cls.mix (shared) */
  double *cls_g, *cls_hidden;         /* [batch][hidden] mixed features, ReLU(fc1) */
  double *logits;                     /* [batch][K]: crop i's at logits + i * K */
  float *cond;                        /* [batch][K] the decoder's class weights */
  float *mixed; /* the decoder's mixed norms: block k's tensor q of crop i at
                 * mixed + (cond_offset * batch) + (q * batch + i) * c */
  /* backward scratch: d_a..d_d inside blocks, d_e/d_f for the flow */
  float *d_a, *d_b, *d_c, *d_d, *d_e, *d_f, *d_skip[MDC_MAX_LEVELS];
} tr_net;

/* The backend for --device auto|cpu|cuda (MASKDCPT_CUDA_STRICT=1: no
 * TF32).  auto falls back to the best CPU backend and then says why in
 * msg ("using the CPU: ..."); msg is empty otherwise.  NULL with the reason
 * in msg when cuda fails or no CPU backend starts. */
mdc_backend *tr_backend_new(const char *device, int threads, char *msg, size_t msg_size);

/* Crops per pass for --micro-batch `asked`: it, or (0) the whole batch,
 * the fastest on both the GPU and the CPU (docs/training.md); at most the
 * batch. */
static inline int tr_micro_batch(int asked, int batch) {
  int m = asked ? asked : batch;
  return m < batch ? m : batch;
}

/* Takes over `net` (host; its storage becomes the trained parameters, on
 * a device backend copied to the device) and plans activations for up to
 * `batch` crops of crop x crop (a multiple of 2^levels) in `be`'s memory.
 * 0, or -1 with a message. */
int tr_net_init(tr_net *t, mdc_net *net, int crop, int batch, mdc_backend *be, char *msg,
                size_t msg_size);
void tr_net_free(tr_net *t);
void tr_net_zero_grad(tr_net *t);

/* Forward on n crops (1 <= n <= t->batch): in[i] is crop i (host,
 * [crop][crop][3]); masks: NULL, or masks[i] the [crop/16][crop/16] 0/1
 * patch mask of crop i (patch granularity 2^levels); cond: NULL, or
 * cond[i] crop i's class weights for the decoder, where NULL (and a NULL
 * cond) means the classifier's own probabilities (auto mode).  Fills
 * t->out ([n][crop][crop][3]) and t->logits ([n][K]).  restore == 0 runs
 * the encoder and classifier only. */
void tr_net_forward(tr_net *t, mdc_backend *be, int n, const float *const *in,
                    const unsigned char *const *masks, const float *const *cond, int restore);

/* The restoration loss of the last forward against clean[i] (host,
 * [crop][crop][3]), summed over its crops: per crop L1, or with psnr
 * NAFNet's PSNR loss 10 log10(MSE + psnr_eps).  Leaves scale * d loss_i /
 * d out_i in t->d_out for tr_net_backward. */
double tr_net_restoration_loss(tr_net *t, const float *const *clean, int psnr, double psnr_eps,
                               float scale);

/* t->out on the host, [n][crop][crop][3] (downloaded for a device backend). */
const float *tr_net_output(tr_net *t);

/* Parameters, their gradients or optimizer state between host arrays and
 * the backend's memory (n floats from / to t->net.storage layout). */
void tr_net_download(tr_net *t, float *host, const float *src, size_t n);
void tr_net_upload(tr_net *t, float *dst, const float *host, size_t n);

/* 0, or -1 with the backend's failure (device backends). */
int tr_net_check(tr_net *t, char *msg, size_t msg_size);

/* Backward from d_out (d loss / d restored, [n][crop][crop][3]; NULL when
 * the restoration has no loss) and d_logits (host, [n][K] d loss / d
 * logits; NULL when the classifier has none), accumulating into t->grad.
 * Needs the forward of the same crops just before. */
void tr_net_backward(tr_net *t, mdc_backend *be, const float *d_out, const double *d_logits);

/* Backward from d_logits into the classifier's own parameters only (the
 * per-level projections, the level mix and the two dense layers): the
 * encoder gets no gradient and is not walked, so the head can be
 * retrained on a finished network at the cost of an encoder forward. */
void tr_net_backward_head(tr_net *t, mdc_backend *be, const double *d_logits);

/* The gradient slot of a parameter pointer into t->net.storage. */
static inline float *tr_grad_of(tr_net *t, const float *param) {
  return param ? t->grad + (param - t->net.storage) : NULL;
}

#endif
