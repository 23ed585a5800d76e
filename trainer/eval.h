/* eval.h - `maskdcpt-train eval WEIGHTS DATA`: per-class PSNR/SSIM of the
 * input, the auto-mode and the forced-class restorations on the validation
 * photos, with the classification accuracy and confusion matrix. */
#ifndef TR_EVAL_H
#define TR_EVAL_H

int tr_eval_main(int argc, char **argv);

#endif
