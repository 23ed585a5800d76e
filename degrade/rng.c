/* rng.c - the degradations' only source of randomness: xoshiro256**
 * seeded by splitmix64, with per-purpose streams derived from (seed, tag).
 * No global state, so any number of threads may draw at once. */
#include <math.h>

#include "dg_internal.h"

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Two rounds of splitmix so that nearby (seed, tag) pairs give unrelated
 * streams. */
uint64_t dg_seed_derive(uint64_t seed, uint64_t tag) {
  uint64_t x = seed;
  uint64_t a = splitmix64(&x);
  x = a ^ (tag * 0xD1B54A32D192ED03ull);
  return splitmix64(&x);
}

void dg_rng_init(dg_rng *r, uint64_t seed) {
  uint64_t x = seed;
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
  r->has_spare = 0;
  r->spare = 0.0;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t dg_rng_next(dg_rng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double dg_rng_uniform(dg_rng *r) { return (double)(dg_rng_next(r) >> 11) * 0x1.0p-53; }

double dg_rng_range(dg_rng *r, double lo, double hi) { return lo + (hi - lo) * dg_rng_uniform(r); }

double dg_rng_log_range(dg_rng *r, double lo, double hi) {
  return exp(dg_rng_range(r, log(lo), log(hi)));
}

/* Marsaglia's polar method: exact normals from one log and one sqrt per
 * pair, no trigonometry. */
double dg_rng_normal(dg_rng *r) {
  if (r->has_spare) {
    r->has_spare = 0;
    return r->spare;
  }
  double u, v, s;
  do {
    u = 2.0 * dg_rng_uniform(r) - 1.0;
    v = 2.0 * dg_rng_uniform(r) - 1.0;
    s = u * u + v * v;
  } while (s >= 1.0 || s == 0.0);
  double m = sqrt(-2.0 * log(s) / s);
  r->spare = v * m;
  r->has_spare = 1;
  return u * m;
}

int dg_rng_bernoulli(dg_rng *r, double p) { return dg_rng_uniform(r) < p; }
