/* optim.c - focal loss, schedule, clipping and EMA; see optim.h. */
#include "optim.h"

#include <math.h>

double tr_focal_loss(const double *logits, int k, int label, double gamma, double scale,
                     double *grad) {
  double mx = logits[0];
  for (int q = 1; q < k; q++) mx = fmax(mx, logits[q]);
  double sum = 0;
  for (int q = 0; q < k; q++) sum += exp(logits[q] - mx);
  double logp = logits[label] - mx - log(sum), p = exp(logp);
  double one_m = 1.0 - p, w = gamma > 0 ? pow(one_m, gamma) : 1.0;
  double loss = -w * logp;
  if (grad) {
    /* dL/dp = gamma (1-p)^(gamma-1) log p - (1-p)^gamma / p; dp/dz_q = p (delta - p_q) */
    double dl_dlogp = -w + (gamma > 0 && one_m > 0 ? gamma * pow(one_m, gamma - 1) * p * logp : 0);
    for (int q = 0; q < k; q++) {
      double pq = exp(logits[q] - mx) / sum;
      grad[q] = scale * dl_dlogp * ((q == label ? 1.0 : 0.0) - pq);
    }
  }
  return loss;
}

double tr_lr_at(long step, long total, long warmup, double lr, double final_fraction) {
  if (warmup > 0 && step < warmup) return lr * (step + 1) / (double)warmup;
  if (total <= warmup) return lr;
  double t = (double)(step - warmup) / (double)(total - warmup);
  if (t > 1) t = 1;
  return lr * (final_fraction + (1 - final_fraction) * 0.5 * (1 + cos(M_PI * t)));
}

double tr_clip_grad_norm(mdc_backend *be, float *grad, size_t n, double max_norm) {
  double norm = sqrt(be->sum_squares(be, grad, n));
  if (max_norm > 0 && norm > max_norm) be->scale(be, grad, n, (float)(max_norm / norm), grad);
  return norm;
}
