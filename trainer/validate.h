/* validate.h - validation while training: every class on the validation
 * photos through the training graph in auto mode (the classifier's own
 * probabilities condition the decoder), PSNR before and after, and a PNG
 * grid of degraded / restored / clean crops. */
#ifndef TR_VALIDATE_H
#define TR_VALIDATE_H

#include <stddef.h>

#include "dataset.h"
#include "train_net.h"

typedef struct tr_val_result {
  double psnr_in, psnr_out; /* means over the samples */
  double accuracy;          /* auto-mode classification */
  int samples;
} tr_val_result;

/* One sample per class (class q on validation photo q % num_val), at level
 * 0.5.  png may be NULL.  0, or -1 with a message. */
int tr_validate(tr_net *t, mdc_backend *be, const tr_dataset *ds, int num_classes,
                const char *png, tr_val_result *out, char *msg, size_t msg_size);

#endif
