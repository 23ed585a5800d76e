/* optim.h - the pieces of a training step around the backward pass:
 * focal loss, learning-rate schedule and gradient clipping (the optimizer
 * step and the EMA of the weights are the backend's adamw_step and
 * ema_update). */
#ifndef TR_OPTIM_H
#define TR_OPTIM_H

#include <stddef.h>

#include "backend.h"

/* Focal loss (Lin et al.) of logits[k] for `label`:
 * -(1 - p)^gamma log p, p = softmax(logits)[label]; gamma 0 is
 * cross-entropy.  Writes d loss / d logits times `scale` into grad (may be
 * NULL).  Returns the loss. */
double tr_focal_loss(const double *logits, int k, int label, double gamma, double scale,
                     double *grad);

/* Linear warm-up over `warmup` steps, then cosine decay from lr to
 * lr * final_fraction at `total` steps.  step counts from 0. */
double tr_lr_at(long step, long total, long warmup, double lr, double final_fraction);

/* Scales grad[n] so that its L2 norm is at most max_norm (no-op when
 * max_norm <= 0); returns the norm before clipping. */
double tr_clip_grad_norm(mdc_backend *be, float *grad, size_t n, double max_norm);


#endif
