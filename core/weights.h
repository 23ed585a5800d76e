/* weights.h - the safetensors weights file: parse, validate, write, and
 * random initialisation (for tests and as the trainer's starting point).
 * Format and checks: docs/network.md. */
#ifndef MDC_WEIGHTS_H
#define MDC_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "arch.h"
#include "maskdcpt.h"

typedef struct mdc_metadata_entry {
  char *key;
  char *value;
} mdc_metadata_entry;

/* Parsed weights: fp32 copies of every tensor in the canonical order of
 * mdc_arch_tensor(), PyTorch layout, carved from one allocation. */
typedef struct mdc_weights {
  mdc_arch arch;
  int num_tensors;
  float **tensors;   /* [num_tensors], pointers into `storage` */
  float *storage;
  int num_metadata;
  mdc_metadata_entry *metadata; /* every __metadata__ entry, as in the file */
  unsigned char auto_focus[MDC_MAX_CLASSES]; /* parsed from metadata 'auto_focus' */
  unsigned char passes[MDC_MAX_CLASSES];     /* from metadata 'passes'; 0 = not set (1 pass) */
} mdc_weights;

/* Parses `size` bytes of a safetensors file.  `name` (file name) is used in
 * messages.  On failure returns the status, fills err, leaves *out empty. */
maskdcpt_status mdc_weights_parse(const uint8_t *data, size_t size, const char *name,
                                  mdc_weights *out, maskdcpt_error *err);
/* Reads a whole file and parses it. */
maskdcpt_status mdc_weights_load(const char *path, mdc_weights *out, maskdcpt_error *err);
void mdc_weights_clear(mdc_weights *w);

/* Tensor by canonical index or by name; NULL when absent. */
const float *mdc_weights_tensor(const mdc_weights *w, const char *name);
const char *mdc_weights_metadata(const mdc_weights *w, const char *key);

/* Allocates the tensors of `arch` (zeroed) with no metadata besides those
 * the writer adds. */
maskdcpt_status mdc_weights_alloc(mdc_weights *out, const mdc_arch *arch, maskdcpt_error *err);

/* Random initialisation with a fixed seed (same bytes on every machine):
 * weights ~ U(-1,1) * sqrt(3 / fan_in) (PyTorch-like), biases small
 * uniform, norm weights 1 + U(-0.1,0.1), norm biases U(-0.1, 0.1),
 * residual scales (beta, gamma) U(-residual_scale, residual_scale) -- a
 * fresh NAFNet has 0 there (identity blocks); tests use nonzero values so
 * that every block matters -- and cls.mix U(-0.5, 0.5).  Adds metadata
 * provenance {"kind":"random-init","seed":N}. */
maskdcpt_status mdc_weights_init_random(mdc_weights *out, const mdc_arch *arch, uint64_t seed,
                                        float residual_scale, maskdcpt_error *err);

/* Sets (adds or replaces) a metadata entry; "format", "format_version",
 * "arch" and "classes" are always written from the architecture. */
maskdcpt_status mdc_weights_set_metadata(mdc_weights *w, const char *key, const char *value,
                                         maskdcpt_error *err);

/* Writes a safetensors file atomically (temporary file in the same
 * directory, fsync, rename).  fp16: store tensors as F16 (round to nearest
 * even) instead of F32. */
maskdcpt_status mdc_weights_write(const mdc_weights *w, const char *path, int fp16,
                                  maskdcpt_error *err);

/* Fills err (when non-NULL) with code and a printf-style message; returns code. */
maskdcpt_status mdc_set_error(maskdcpt_error *err, maskdcpt_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
