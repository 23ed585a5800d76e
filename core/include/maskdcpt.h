/* maskdcpt.h - public API of libmaskdcpt, the MaskDCPT restoration core.
 *
 * The contract every front end (CLI, GEGL operation, GIMP plug-in, trainer)
 * is written against:
 *  - opaque handles (maskdcpt_model, maskdcpt_context) created and freed by
 *    the library; nothing else is allocated for the caller;
 *  - every fallible call returns a maskdcpt_status and, when `err` is not
 *    NULL, fills it with the same code and a readable message;
 *  - the library never aborts or exits on bad input.
 *
 * Thread safety: a model is immutable once loaded and may be shared by any
 * number of contexts on any threads.  A context must be used by one thread at
 * a time (it owns scratch memory and a worker pool).
 */
#ifndef MASKDCPT_H
#define MASKDCPT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MASKDCPT_API __attribute__((visibility("default")))
#else
#define MASKDCPT_API
#endif

#define MASKDCPT_VERSION_MAJOR 0
#define MASKDCPT_VERSION_MINOR 1
#define MASKDCPT_VERSION_MICRO 0

typedef enum maskdcpt_status {
  MASKDCPT_OK = 0,
  MASKDCPT_ERROR_INVALID_ARGUMENT, /* a NULL, negative or inconsistent argument */
  MASKDCPT_ERROR_IO,               /* a file could not be opened or read */
  MASKDCPT_ERROR_FORMAT,           /* a weights file is malformed */
  MASKDCPT_ERROR_UNSUPPORTED,      /* valid, but not something this build runs */
  MASKDCPT_ERROR_OUT_OF_MEMORY,
  MASKDCPT_ERROR_CANCELLED,        /* the progress callback asked to stop */
  MASKDCPT_ERROR_DEVICE            /* the requested device failed */
} maskdcpt_status;

/* Filled by every fallible call when non-NULL.  The message names the
 * problem (file, tensor, expected versus found) in English. */
typedef struct maskdcpt_error {
  maskdcpt_status code;
  char message[512];
} maskdcpt_error;

MASKDCPT_API const char *maskdcpt_status_name(maskdcpt_status status);
MASKDCPT_API const char *maskdcpt_version_string(void);

/* ---------------------------------------------------------------- model */

typedef struct maskdcpt_model maskdcpt_model;

/* Loads and validates a safetensors weights file.  On success *out owns a
 * new model, freed with maskdcpt_model_free().  On failure *out is NULL. */
MASKDCPT_API maskdcpt_status maskdcpt_model_load(const char *path, maskdcpt_model **out,
                                                 maskdcpt_error *err);
/* Same, from memory (the bytes are copied; `name` is used in messages). */
MASKDCPT_API maskdcpt_status maskdcpt_model_load_memory(const void *data, size_t size,
                                                        const char *name, maskdcpt_model **out,
                                                        maskdcpt_error *err);
MASKDCPT_API void maskdcpt_model_free(maskdcpt_model *model);

/* Architecture read from the file. */
typedef struct maskdcpt_arch_info {
  int width;             /* channels after the intro convolution */
  int levels;            /* encoder (and decoder) levels */
  int enc_blocks[8];     /* NAFBlocks per encoder level, levels entries */
  int middle_blocks;
  int dec_blocks[8];     /* NAFBlocks per decoder level, deepest first */
  int num_classes;
  int cls_hidden;        /* width of the classification decoder */
  int sca_window;        /* channel-attention pooling window in pixels, 0 = global */
  float norm_eps;
  int64_t num_params;
  double macs_per_pixel; /* multiply-adds per input pixel, restoration path */
} maskdcpt_arch_info;

MASKDCPT_API void maskdcpt_model_arch(const maskdcpt_model *model, maskdcpt_arch_info *out);
MASKDCPT_API int maskdcpt_model_num_classes(const maskdcpt_model *model);
/* Class names in the file's order; NULL when out of range. */
MASKDCPT_API const char *maskdcpt_model_class_name(const maskdcpt_model *model, int index);
/* Index of a class name, or -1. */
MASKDCPT_API int maskdcpt_model_class_index(const maskdcpt_model *model, const char *name);
/* A `__metadata__` string of the file ("provenance", "synthesis", ...), or
 * NULL when absent.  Owned by the model. */
MASKDCPT_API const char *maskdcpt_model_metadata(const maskdcpt_model *model, const char *key);
/* The i-th metadata key in file order, or NULL past the end. */
MASKDCPT_API const char *maskdcpt_model_metadata_key(const maskdcpt_model *model, int index);

/* -------------------------------------------------------------- images */

/* A float image in the caller's memory, values nominally in [0,1],
 * non-linear sRGB-encoded (R'G'B').  channels: 1 (Y'), 2 (Y'A), 3 (R'G'B')
 * or 4 (R'G'B'A).  stride is in floats between row starts (>= width*channels).
 * Alpha is never modified; grey is restored as R'=G'=B' and averaged back. */
typedef struct maskdcpt_image {
  float *data;
  int width;
  int height;
  int channels;
  size_t stride;
} maskdcpt_image;

/* ------------------------------------------------------------- context */

typedef enum maskdcpt_device {
  MASKDCPT_DEVICE_AUTO = 0, /* CUDA when built and usable, else the CPU */
  MASKDCPT_DEVICE_CPU,
  MASKDCPT_DEVICE_CUDA
} maskdcpt_device;

/* Called with the fraction done in [0,1].  Return 0 to cancel; the call in
 * progress then returns MASKDCPT_ERROR_CANCELLED and leaves the output
 * image unspecified (callers keep their own copy, as GIMP's shadow buffers do). */
typedef int (*maskdcpt_progress_fn)(void *user, double fraction);

typedef struct maskdcpt_context maskdcpt_context;

/* The context keeps a reference to `model`, which must outlive it. */
MASKDCPT_API maskdcpt_status maskdcpt_context_new(const maskdcpt_model *model,
                                                  maskdcpt_context **out, maskdcpt_error *err);
MASKDCPT_API void maskdcpt_context_free(maskdcpt_context *ctx);

/* Picks the backend.  AUTO never fails: it falls back to the CPU and
 * records why (maskdcpt_context_device_note).  CUDA fails with
 * MASKDCPT_ERROR_DEVICE when CUDA is not usable. */
MASKDCPT_API maskdcpt_status maskdcpt_context_set_device(maskdcpt_context *ctx,
                                                         maskdcpt_device device,
                                                         maskdcpt_error *err);
/* The backend in use ("cpu-avx2", "cpu-scalar", "cuda ..."). */
MASKDCPT_API const char *maskdcpt_context_device_name(const maskdcpt_context *ctx);
/* Why AUTO did not pick CUDA, or "" when it did / nothing to say. */
MASKDCPT_API const char *maskdcpt_context_device_note(const maskdcpt_context *ctx);

/* Worker threads; 0 (default) = one per online CPU. */
MASKDCPT_API void maskdcpt_context_set_threads(maskdcpt_context *ctx, int threads);
/* Tile edge in pixels including overlap; 0 (default) = from the memory
 * budget.  Rounded to the network's multiple (2^levels), at least 32. */
MASKDCPT_API void maskdcpt_context_set_tile_size(maskdcpt_context *ctx, int tile_size);
/* Bytes of working memory a run may use besides the caller's images;
 * 0 (default) = 1 GiB, or on a GPU half of its free memory (tiles up to
 * 8192 px there instead of 2048). */
MASKDCPT_API void maskdcpt_context_set_memory_budget(maskdcpt_context *ctx, size_t bytes);
/* Forces the portable scalar kernels (the test oracle) on the CPU. */
MASKDCPT_API void maskdcpt_context_set_scalar(maskdcpt_context *ctx, int scalar);
MASKDCPT_API void maskdcpt_context_set_progress(maskdcpt_context *ctx, maskdcpt_progress_fn fn,
                                                void *user);
/* The tile size a run on a width x height image would use, and the peak
 * working memory in bytes it is planned to need. */
MASKDCPT_API void maskdcpt_context_plan(maskdcpt_context *ctx, int width, int height,
                                        int *tile_size, size_t *work_bytes);

/* ----------------------------------------------------------- inference */

/* Probabilities per class (maskdcpt_model_num_classes entries, summing
 * to 1) for the whole image, pooled over up to 9 crops spread over it. */
MASKDCPT_API maskdcpt_status maskdcpt_classify(maskdcpt_context *ctx, const maskdcpt_image *image,
                                               float *probs, maskdcpt_error *err);

#define MASKDCPT_CLASS_AUTO (-1)

/* Restores `in` into `out` (same size; may have a different channel count
 * and stride but must not overlap `in`).
 * class_index: MASKDCPT_CLASS_AUTO to classify first and condition on the
 * probabilities, or a class to force.  strength in [0,1]:
 * out = in + strength * (restored - in).  When probs is non-NULL it
 * receives the conditioning used (num_classes entries).  Alpha of `out`
 * is copied from `in` (or set to 1 when `in` has none).  When the weights
 * file's 'passes' metadata gives the class leading the conditioning more
 * than one pass, the network runs that many times, each pass on the last
 * one's output (that much longer, plus a full-image float RGB buffer), and
 * strength blends the last pass with `in` (docs/network.md). */
MASKDCPT_API maskdcpt_status maskdcpt_restore(maskdcpt_context *ctx, const maskdcpt_image *in,
                                              const maskdcpt_image *out, int class_index,
                                              float strength, float *probs, maskdcpt_error *err);

/* As maskdcpt_restore, conditioned on the caller's class probabilities
 * instead of a classification of `in`: e.g. those maskdcpt_classify gave
 * for a whole image, to restore a crop of it as the whole run would.
 * num_probabilities must equal maskdcpt_model_num_classes; each value must
 * be finite and >= 0, and their sum > 0.  They are normalised to sum 1
 * (each divided by their sum, as maskdcpt_restore does with its own
 * classification), so the output of maskdcpt_classify restores exactly as
 * MASKDCPT_CLASS_AUTO does on the same image, and a one-hot vector exactly
 * as forcing that class.  Nothing is classified. */
MASKDCPT_API maskdcpt_status maskdcpt_restore_with_probabilities(
    maskdcpt_context *ctx, const maskdcpt_image *in, const maskdcpt_image *out,
    const float *probabilities, int num_probabilities, float strength, maskdcpt_error *err);

/* How many network passes a restore conditioned on these probabilities
 * (as maskdcpt_restore reports them, or a one-hot for a forced class) runs
 * with this model: the weights file's 'passes' for the class holding more
 * than half of them, else 1 (docs/network.md).  0 when the arguments are
 * not valid probabilities for the model (as restore_with_probabilities
 * checks them). */
MASKDCPT_API int maskdcpt_model_passes(const maskdcpt_model *model, const float *probabilities,
                                       int num_probabilities);

#ifdef __cplusplus
}
#endif
#endif /* MASKDCPT_H */
