/* checkpoint.h - the trainer's resumable state on disk.
 *
 * File: "MDCCKPT1", step, parameter count, settings (JSON) length, the
 * settings, then parameters, AdamW's m and v and the EMA weights (fp32,
 * little-endian), then a 64-bit FNV-1a checksum of everything before it.
 * Written to a temporary file, synced and renamed, so a crash at any
 * moment leaves the previous checkpoint intact. */
#ifndef TR_CHECKPOINT_H
#define TR_CHECKPOINT_H

#include <stddef.h>

typedef struct tr_state {
  long step;        /* optimizer steps done */
  size_t n;         /* parameters */
  float *param, *m, *v, *ema;
  char *settings;   /* JSON; a resume must match it */
} tr_state;

int tr_checkpoint_write(const char *path, const tr_state *s, char *msg, size_t msg_size);
/* Reads into a zeroed *s (allocating its arrays); 0, or -1 with a message
 * (missing, truncated, corrupt). */
int tr_checkpoint_read(const char *path, tr_state *s, char *msg, size_t msg_size);
void tr_state_free(tr_state *s);

#endif
