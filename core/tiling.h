/* tiling.h - covering an image with overlapping tiles and blending them.
 *
 * Along each axis a tile of size T overlaps its neighbour by at least
 * V = 2 * MARGIN + BLEND pixels.  Inside each overlap the left tile's
 * weight ramps linearly from 1 to 0 over BLEND pixels centred in the
 * overlap and the right tile's ramps from 0 to 1, so the weights of all
 * tiles sum to exactly 1 at every pixel and the outermost MARGIN pixels of
 * every inner tile edge (those that lack context) never count.  2-D weights
 * are the product of the two axes' weights. */
#ifndef MDC_TILING_H
#define MDC_TILING_H

#define MDC_TILE_MARGIN 32
#define MDC_TILE_BLEND 32
#define MDC_TILE_MIN (2 * MDC_TILE_MARGIN + 3 * MDC_TILE_BLEND)

typedef struct mdc_tile_axis {
  int count;
  int tile;   /* tile size along the axis (<= image size) */
  int *start; /* [count] first pixel of each tile */
  int *ramp;  /* [count - 1] first pixel of the ramp between tile i and i+1 */
} mdc_tile_axis;

/* Plans one axis of `size` pixels with tiles of `tile` pixels (clamped to
 * [MDC_TILE_MIN, size]).  Returns 0, or -1 when out of memory. */
int mdc_tile_axis_plan(mdc_tile_axis *axis, int size, int tile);
void mdc_tile_axis_clear(mdc_tile_axis *axis);
/* Weight of tile i at absolute position p (inside the tile). */
float mdc_tile_axis_weight(const mdc_tile_axis *axis, int i, int p);

/* Crops used for whole-image classification along an axis: count (1..3),
 * their size and starts (docs/network.md). */
int mdc_class_crops(int size, int crop, int *start);

#endif
