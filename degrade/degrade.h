/* degrade.h - synthetic photo degradations with known labels.
 *
 * Turns a clean photo into a damaged one of a named class at a level in
 * [0,1]: the trainer's data (class index = the network's label), the
 * tests' inputs and a user's way to make test pairs (`maskdcpt degrade`).
 *
 * Images are float R'G'B' (sRGB-encoded values in [0,1]), row-major,
 * 3 channels interleaved and tightly packed (dg_apply_channels takes 1-4
 * channels).  Every random choice is a pure function of (image, class,
 * level, seed): no global state, no clock, no rand(); all calls are
 * thread-safe, and the same inputs give the same bytes with the same
 * binary.  Outputs are clipped to [0,1] (NaN becomes 0).
 *
 * The class order below is the network's output order; the parameter
 * ranges are documented in docs/degradations.md and returned by
 * dg_registry_json() for a weights file's "synthesis" metadata.
 */
#ifndef MASKDCPT_DEGRADE_H
#define MASKDCPT_DEGRADE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever any class's output for a given (image, level, seed)
 * changes, so a weights file records which synthesis made its data. */
#define DG_VERSION 1

enum dg_class {
  DG_CLEAN,
  DG_NOISE,
  DG_GAUSSIAN_BLUR,
  DG_MOTION_BLUR,
  DG_DEFOCUS_BLUR,
  DG_JPEG,
  DG_HAZE,
  DG_RAIN,
  DG_LOW_LIGHT,
  DG_LOW_RESOLUTION,
  DG_MIXED_REALESRGAN,
  DG_MIXED_LOWLIGHT,
  DG_NUM_CLASSES
};

/* Largest image side (libjpeg's limit, which the jpeg classes need). */
#define DG_MAX_SIDE 65500

int dg_num_classes(void);
/* "clean", "noise", ...; NULL when index is out of range. */
const char *dg_class_name(int index);
/* Index of a class name, or -1 if unknown. */
int dg_class_index(const char *name);
/* One sentence saying how the class is made; NULL when out of range. */
const char *dg_class_description(int index);
/* Writes the class's parameters as one line, e.g.
 * "sigma 5..50 (/255) by level; poisson-gaussian p 0.33 (seed); ...".
 * Returns the length snprintf would give (buf may be NULL if size is 0),
 * or -1 when index is out of range. */
int dg_class_params_format(int index, char *buf, size_t size);

/* Degrades in (w x h x 3) into out (same size; out may equal in).
 * level in [0,1] maps linearly onto the class's documented parameter
 * range (0 mildest); seed picks every random choice.  Returns 0, or -1
 * with a one-line message in msg (bad arguments, out of memory, a JPEG
 * library error). */
int dg_apply(const float *in, int w, int h, float *out, int class_index, float level,
             uint64_t seed, char *msg, size_t msg_size);

/* dg_apply on an image with `channels` interleaved channels (1 grey,
 * 2 grey+alpha, 3 RGB, 4 RGBA): grey is replicated to RGB, degraded, and
 * the first channel kept (each channel carries the labelled statistics;
 * averaging would shrink colour noise); alpha is copied untouched. */
int dg_apply_channels(const float *in, int w, int h, int channels, float *out,
                      int class_index, float level, uint64_t seed, char *msg, size_t msg_size);

/* Additive white Gaussian noise of exactly sigma255 (0..255 scale) on the
 * encoded values, independent in R, G and B: the usual denoising benchmark
 * (e.g. sigma 25), i.e. the noise class's colour Gaussian variant without
 * its seeded choice of variant.  Same layouts as dg_apply_channels; the
 * pixel noise is that of dg_apply(DG_NOISE, level, seed) whenever the
 * class draws that variant for the seed. */
int dg_apply_gaussian_noise(const float *in, int w, int h, int channels, float *out,
                            double sigma255, uint64_t seed, char *msg, size_t msg_size);

/* The trainer's draw: a class uniformly from all DG_NUM_CLASSES and a
 * level uniformly from [0,1], both from the seed. */
void dg_random_draw(uint64_t seed, int *class_out, float *level_out);
/* dg_random_draw then dg_apply with the same seed.  class_out and
 * level_out may be NULL. */
int dg_apply_random(const float *in, int w, int h, float *out, uint64_t seed, int *class_out,
                    float *level_out, char *msg, size_t msg_size);

/* malloc'd JSON object: {"generator":"maskdcpt-degrade","version":N,
 * "classes":[{"name","index","version","description","params":[...]}]}
 * with the classes in order; NULL when out of memory.  free() it. */
char *dg_registry_json(void);

/* Resamples in (w x h x channels) to out (out_w x out_h x channels) with
 * Keys bicubic (a = -0.5), stretched by the scale factor when shrinking so
 * it also antialiases (like MATLAB's imresize); edges are clamped.  in and
 * out must not overlap.  0, or -1 on bad arguments or out of memory. */
int dg_resize(const float *in, int w, int h, int channels, float *out, int out_w, int out_h);

#ifdef __cplusplus
}
#endif
#endif /* MASKDCPT_DEGRADE_H */
