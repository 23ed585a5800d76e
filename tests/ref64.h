/* ref64.h - an independent float64 reference of the network (docs/network.md).
 *
 * Written from the specification alone, with plain CHW double loops and no
 * shared code with the core or the kernels besides the weights loader: it
 * reads every tensor by name (PyTorch layout, OIHW) from an mdc_weights and
 * the architecture from w->arch.  Slow on purpose; for tests only.
 *
 * Images: float R'G'B', h x wd, tightly packed HWC.
 * Every int-returning function returns 0 on success and -1 on failure (a
 * missing tensor or out of memory; a message goes to stderr).
 */
#ifndef MDC_REF64_H
#define MDC_REF64_H

#include "weights.h"

/* Runs intro, encoders and middle on the image (padded per the spec) and
 * returns the classifier's pooled features:
 *   g_levels     [(levels+1) * cls_hidden]: g_l = mean over the valid area
 *                (ceil(h/2^l) x ceil(wd/2^l)) of ReLU(cls.proj.l(f_l)),
 *   valid_counts [levels+1]: the number of valid pixels at each level. */
int ref64_features(const mdc_weights *w, const float *rgb, int h, int wd, double *g_levels,
                   double *valid_counts);

/* probs [num_classes] = softmax(fc2(ReLU(fc1(sum_l softmax(mix)_l g_l)))). */
void ref64_classify_from_g(const mdc_weights *w, const double *g_levels, double *probs);

/* Whole-image classification: up to 3 x 3 crops of at most 256 x 256,
 * placed evenly (first top-left, last bottom-right; per axis
 * n = min(3, ceil(size / 256)) crops at i * (size - crop) / (n - 1) rounded
 * to nearest, halves up), g_l averaged over the crops weighted by their
 * valid counts. */
int ref64_classify_image(const mdc_weights *w, const float *rgb, int h, int wd, double *probs);

/* Restoration conditioned on class_probs [num_classes] (a one-hot for a
 * forced class).  out: h x wd x 3, HWC. */
int ref64_restore(const mdc_weights *w, const float *rgb, int h, int wd,
                  const double *class_probs, double *out);

/* The padding's index map (reflect without repeating the edge, periodic
 * when the pad exceeds n - 1; 0 when n == 1), exposed for tests. */
int ref64_reflect_index(int i, int n);

#endif
