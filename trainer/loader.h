/* loader.h - prepares the next batches in worker threads while the current
 * one trains.  Samples are the dataset's pure functions of (seed, step,
 * index), so the batches are the same whatever the number of workers. */
#ifndef TR_LOADER_H
#define TR_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"

typedef struct tr_loader tr_loader;

/* workers >= 1.  NULL with a message on failure. */
tr_loader *tr_loader_new(const tr_dataset *ds, uint64_t seed, int crop, int batch,
                         int num_classes, int workers, char *msg, size_t msg_size);
/* The batch of `step` (steps must be asked for in increasing order, each
 * once); the samples stay valid until the next call.  0, or -1 with the
 * first sampling error's message. */
int tr_loader_next(tr_loader *l, long step, const tr_sample **batch, char *msg, size_t msg_size);
/* Seconds the caller has waited in tr_loader_next so far (the data
 * pipeline not keeping up). */
double tr_loader_wait_seconds(const tr_loader *l);
void tr_loader_free(tr_loader *l);

#endif
