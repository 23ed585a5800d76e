/* tiling.c - tile grid and blending weights; see tiling.h. */
#include "tiling.h"

#include <stdlib.h>

int mdc_tile_axis_plan(mdc_tile_axis *axis, int size, int tile) {
  axis->start = NULL;
  axis->ramp = NULL;
  if (tile < MDC_TILE_MIN) tile = MDC_TILE_MIN;
  if (tile >= size) {
    axis->count = 1;
    axis->tile = size;
  } else {
    int step = tile - (2 * MDC_TILE_MARGIN + MDC_TILE_BLEND);
    axis->count = 1 + (size - tile + step - 1) / step;
    axis->tile = tile;
  }
  axis->start = malloc((size_t)axis->count * sizeof(int));
  axis->ramp = malloc((size_t)axis->count * sizeof(int));
  if (!axis->start || !axis->ramp) {
    mdc_tile_axis_clear(axis);
    return -1;
  }
  int step = axis->tile - (2 * MDC_TILE_MARGIN + MDC_TILE_BLEND);
  for (int i = 0; i < axis->count; i++)
    axis->start[i] = i == axis->count - 1 ? size - axis->tile : i * step;
  for (int i = 0; i + 1 < axis->count; i++) {
    int lo = axis->start[i + 1], hi = axis->start[i] + axis->tile; /* overlap [lo, hi) */
    axis->ramp[i] = lo + (hi - lo - MDC_TILE_BLEND) / 2;
  }
  return 0;
}

void mdc_tile_axis_clear(mdc_tile_axis *axis) {
  free(axis->start);
  free(axis->ramp);
  axis->start = axis->ramp = NULL;
  axis->count = 0;
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
