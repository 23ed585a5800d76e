/* metrics.h - full-reference image quality: PSNR and SSIM on interleaved
 * R'G'B' floats in [0,1] (sRGB-encoded values, as stored in the files).
 *
 * One implementation for the trainer's `eval`, `maskdcpt compare` and the
 * GEGL baselines of scripts/evaluate.sh, so that every table compares
 * like with like (docs/evaluation.md gives the definitions).  Plain C11
 * and libm only: tools built outside meson compile this file directly. */
#ifndef MASKDCPT_METRICS_H
#define MASKDCPT_METRICS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* PSNR returned for identical inputs, so that averages stay finite. */
#define DG_PSNR_IDENTICAL 99.0

/* Mean squared error of n values. */
double dg_mse(const float *a, const float *b, size_t n);

/* 10 log10(1 / MSE) over n values (peak 1), DG_PSNR_IDENTICAL when equal. */
double dg_psnr(const float *a, const float *b, size_t n);

/* Mean SSIM of two w x h x 3 images: Wang et al. 2004 with an 11x11
 * Gaussian window (sigma 1.5), C1 = 0.01^2, C2 = 0.03^2, over the
 * positions where the window fits (no padding), averaged over the three
 * channels.  NaN when a side is below 11 px or memory runs out. */
double dg_ssim(const float *a, const float *b, int w, int h);

#ifdef __cplusplus
}
#endif
#endif /* MASKDCPT_METRICS_H */
