/* scalar_backward.h - the scalar reference training entries (backend.h,
 * section "training"), scalar_backward.c.  The scalar backend installs all
 * of them; the AVX2 backend installs them too and then replaces the ones
 * it has fast versions of, and falls back to them when out of memory.
 * Not installed; nothing here is part of the library API. */
#ifndef MDC_SCALAR_BACKWARD_H
#define MDC_SCALAR_BACKWARD_H

#include <stddef.h>

#include "backend.h"

/* Fills every training entry of `be` with the scalar versions below. */
void mdc_cpu_scalar_backward_init(mdc_backend *be);
/* Fills the glue entries (scale, relu_sum, ...; scalar_glue.c). */
void mdc_cpu_glue_init(mdc_backend *be);

void mdc_cpu_scalar_mask_pixels(mdc_backend *be, const float *x, const float *m, size_t n,
                                int c, float *y);
void mdc_cpu_scalar_conv1x1_backward(mdc_backend *be, const float *x, size_t n, int cin,
                                     const float *w, int cout, const float *dy, float *dx,
                                     float *dw, float *db);
void mdc_cpu_scalar_conv3x3_backward(mdc_backend *be, const float *x, int batch, int h, int w,
                                     int cin, const float *wt, int cout, const float *dy,
                                     float *dx, float *dwt, float *db);
void mdc_cpu_scalar_dwconv3x3_backward(mdc_backend *be, const float *x, int batch, int h, int w,
                                       int c, const float *wt, const float *dy, float *dx,
                                       float *dwt, float *db);
void mdc_cpu_scalar_conv2x2s2_backward(mdc_backend *be, const float *x, int h, int w, int cin,
                                       const float *wt, int cout, const float *dy, float *dx,
                                       float *dwt, float *db);
void mdc_cpu_scalar_layernorm_backward(mdc_backend *be, const float *x, size_t n, int c,
                                       const float *g, size_t gb_every, const float *mean,
                                       const float *rstd, const float *dy, float *dx, float *dg,
                                       float *db);
void mdc_cpu_scalar_simplegate_backward(mdc_backend *be, const float *x, size_t n, int c,
                                        const float *dy, float *dx);
void mdc_cpu_scalar_pool_mean_backward(mdc_backend *be, int batch, int h, int w, int c,
                                       int window, const float *dy, float *dx);
void mdc_cpu_scalar_scale_channels_backward(mdc_backend *be, const float *x, const float *s,
                                            size_t s_every, size_t n, int c, const float *dy,
                                            float *dx, float *ds);
void mdc_cpu_scalar_add_scaled_backward(mdc_backend *be, const float *b, const float *s,
                                        size_t n, int c, const float *dy, float *db, float *ds);
void mdc_cpu_scalar_pixelshuffle_backward(mdc_backend *be, int h, int w, int c,
                                          const float *dy, float *dx);
double mdc_cpu_scalar_l1_loss(mdc_backend *be, const float *pred, const float *target,
                              size_t n, float scale, float *grad);
void mdc_cpu_scalar_adamw_step(mdc_backend *be, float *param, const float *grad, float *m,
                               float *v, size_t n, float lr, float beta1, float beta2, float eps,
                               float wd, long step);

#endif
