/* model.h - the network in kernel layouts and its forward pass on one tile. */
#ifndef MDC_MODEL_H
#define MDC_MODEL_H

#include <stddef.h>

#include "arch.h"
#include "backend.h"
#include "weights.h"

/* A decoder block keeps its per-class LayerNorm parameters; the forward
 * pass takes them mixed for the run's class weights from an mdc_net_cond. */
typedef struct mdc_net_block {
  mdc_nafblock_params p;
  const float *cond_norm1_w, *cond_norm1_b; /* [K][c], decoder blocks only */
  const float *cond_norm2_w, *cond_norm2_b;
  size_t cond_offset; /* of this block's [4][c] in mdc_net_cond.mixed */
} mdc_net_block;

typedef struct mdc_net {
  mdc_arch arch;
  float *storage; /* every parameter, kernel layouts, one allocation */
  int external_storage; /* storage belongs to someone else (mdc_net_rebase) */
  const float *intro_w, *intro_b; /* [3][3][3][W], [W] */
  mdc_net_block *enc[MDC_MAX_LEVELS];
  const float *down_w[MDC_MAX_LEVELS], *down_b[MDC_MAX_LEVELS];
  mdc_net_block *middle;
  const float *up_w[MDC_MAX_LEVELS]; /* [C][2C] */
  mdc_net_block *dec[MDC_MAX_LEVELS];
  const float *ending_w, *ending_b; /* [3][3][W][3], [3] */
  const float *cls_proj_w[MDC_MAX_LEVELS + 1], *cls_proj_b[MDC_MAX_LEVELS + 1]; /* [C_l][H], [H] */
  const float *cls_mix;                /* [levels+1] */
  const float *cls_fc1_w, *cls_fc1_b;  /* [H][H] (out, in), [H] */
  const float *cls_fc2_w, *cls_fc2_b;  /* [K][H], [K] */
  mdc_net_block *blocks; /* all blocks, one array */
  int num_blocks;
} mdc_net;

/* Converts parsed weights into kernel layouts.  `w` may be cleared after. */
maskdcpt_status mdc_net_init(mdc_net *net, const mdc_weights *w, maskdcpt_error *err);
void mdc_net_clear(mdc_net *net);
/* A copy of `src` whose parameter pointers point into `storage` (a copy of
 * src->storage, e.g. in device memory) at the same offsets.  dst does not
 * own storage; mdc_net_clear(dst) frees only its block table. */
maskdcpt_status mdc_net_rebase(const mdc_net *src, float *storage, mdc_net *dst,
                               maskdcpt_error *err);
/* Parameters back to a weights struct in the file's (PyTorch) layout, for
 * writing: from `storage` (same layout as net->storage, e.g. the trainer's
 * EMA copy) or, when NULL, net->storage.  *out is allocated. */
maskdcpt_status mdc_net_to_weights(const mdc_net *net, const float *storage, mdc_weights *out,
                                   maskdcpt_error *err);

/* The decoder norms mixed for one set of class weights; owned by a context
 * so that contexts sharing a net never race. */
typedef struct mdc_net_cond {
  float *mixed; /* per decoder block [4][c]: norm1 w, norm1 b, norm2 w, norm2 b */
  size_t size;  /* floats */
} mdc_net_cond;
/* Floats of one set of mixed norms: 4 x c per conditioned block. */
size_t mdc_net_cond_floats(const mdc_net *net);
maskdcpt_status mdc_net_cond_init(mdc_net_cond *cond, const mdc_net *net);
void mdc_net_cond_set(mdc_net_cond *cond, const mdc_net *net, const float *probs);
void mdc_net_cond_clear(mdc_net_cond *cond);

/* Bytes of working memory for one tile of h x w pixels (before padding). */
size_t mdc_net_work_bytes(const mdc_net *net, mdc_backend *be, int h, int w);

/* Runs the network on one tile.
 *   net: parameters in memory the backend addresses (mdc_net_rebase for a
 *        device backend)
 *   in:  [h][w][3] R'G'B', finite, host memory
 *   out: [h][w][3] restored, host memory (NULL: encoder only)
 *   cond: conditioning from mdc_net_cond_set, `mixed` in backend memory
 *        (ignored when out is NULL)
 *   g:   when non-NULL, receives the pooled classifier features
 *        [(levels+1)][H] (means over the valid area) and counts[levels+1]
 *   work: mdc_net_work_bytes(net, be, h, w) bytes of backend memory
 * Fails only on a device backend (MASKDCPT_ERROR_DEVICE with the device's
 * message, or out of host memory for the staging buffer). */
maskdcpt_status mdc_net_forward(const mdc_net *net, mdc_backend *be, const float *in, int h,
                                int w, const mdc_net_cond *cond, float *out, double *g,
                                double *counts, void *work, maskdcpt_error *err);

/* Class probabilities from pooled features. */
void mdc_net_classify(const mdc_net *net, const double *g, float *probs);

#endif
