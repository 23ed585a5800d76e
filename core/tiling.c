/* tiling.c - tile grid and blending weights; see tiling.h. */
#include "tiling.h"

#include <stdlib.h>
#include <string.h>

int mdc_tile_margin(int sca_window) {
  if (sca_window <= 0) return 64;
  int m = (sca_window * 3 / 4 + 15) / 16 * 16;
  return m < 32 ? 32 : m > 192 ? 192 : m;
}

int mdc_tile_axis_plan(mdc_tile_axis *axis, int size, int tile, int align, int margin) {
  memset(axis, 0, sizeof *axis);
  axis->margin = margin;
  if (tile < mdc_tile_min(margin)) tile = mdc_tile_min(margin);
  tile = (tile + align - 1) / align * align;
  /* step: tile minus the overlap, down to the alignment */
  int step = (tile - (2 * margin + MDC_TILE_BLEND)) / align * align;
  if (step < align) step = align;
  /* tiles at 0, step, 2 step, ... while the rest does not fit in one tile */
  int count = 1;
  while (size - (count - 1) * step > tile + align - 1) count++;
  axis->count = count;
  axis->start = malloc((size_t)count * sizeof(int));
  axis->size = malloc((size_t)count * sizeof(int));
  axis->ramp = malloc((size_t)count * sizeof(int));
  if (!axis->start || !axis->size || !axis->ramp) {
    mdc_tile_axis_clear(axis);
    return -1;
  }
  for (int i = 0; i < count; i++) {
    axis->start[i] = i * step;
    axis->size[i] = i == count - 1 ? size - i * step : tile;
    if (axis->size[i] > axis->max_size) axis->max_size = axis->size[i];
  }
  for (int i = 0; i + 1 < count; i++) {
    int lo = axis->start[i + 1], hi = axis->start[i] + axis->size[i]; /* overlap [lo, hi) */
    axis->ramp[i] = lo + (hi - lo - MDC_TILE_BLEND) / 2;
  }
  return 0;
}

void mdc_tile_axis_clear(mdc_tile_axis *axis) {
  free(axis->start);
  free(axis->size);
  free(axis->ramp);
  memset(axis, 0, sizeof *axis);
}

/* Rising ramp value at offset t from the ramp's start. */
static float ramp_up(int t) {
  if (t < 0) return 0.0f;
  if (t >= MDC_TILE_BLEND) return 1.0f;
  return (t + 0.5f) / MDC_TILE_BLEND;
}

float mdc_tile_axis_weight(const mdc_tile_axis *axis, int i, int p) {
  float w = 1.0f;
  if (i > 0) w *= ramp_up(p - axis->ramp[i - 1]);
  if (i + 1 < axis->count) w *= 1.0f - ramp_up(p - axis->ramp[i]);
  return w;
}

int mdc_class_crops(int size, int crop, int *start) {
  if (crop >= size) {
    start[0] = 0;
    return 1;
  }
  int n = (size + crop - 1) / crop;
  if (n > 3) n = 3;
  for (int i = 0; i < n; i++)
    start[i] = (int)(((long long)i * (size - crop) * 2 + (n - 1)) / (2 * (n - 1)));
  return n;
}
