/* tiling.h - covering an image with overlapping tiles and blending them.
 *
 * Along each axis a tile of size T overlaps its neighbour by at least
 * V = 2 * margin + BLEND pixels.  Inside each overlap the left tile's
 * weight ramps linearly from 1 to 0 over BLEND pixels centred in the
 * overlap and the right tile's ramps from 0 to 1, so the weights of all
 * tiles sum to exactly 1 at every pixel and the outermost MARGIN pixels of
 * every inner tile edge (those that lack context) never count.  2-D weights
 * are the product of the two axes' weights.
 *
 * Tiles start at multiples of the network's alignment (2^levels) so that
 * every level's pixel grid inside a tile is the whole image's grid; the
 * last tile runs to the image edge (up to tile + align - 1 pixels) so that
 * it is padded exactly as the whole image is. */
#ifndef MDC_TILING_H
#define MDC_TILING_H

#define MDC_TILE_BLEND 32

/* The context margin a network needs: a pixel's channel-attention means
 * reach about half the pooling window away, and further through later
 * blocks; 3/4 of the window (32..192 px; 64 for global pooling) keeps tiled
 * and whole-image results within a small fraction of 1/255 (measured in
 * tests/test_tiling.c). */
int mdc_tile_margin(int sca_window);
/* Smallest useful tile for a margin. */
static inline int mdc_tile_min(int margin) { return 2 * margin + 3 * MDC_TILE_BLEND; }

typedef struct mdc_tile_axis {
  int count;
  int margin;
  int max_size; /* largest tile along the axis */
  int *start;   /* [count] first pixel of each tile */
  int *size;    /* [count] pixels of each tile */
  int *ramp;    /* [count - 1] first pixel of the ramp between tile i and i+1 */
} mdc_tile_axis;

/* Plans one axis of `size` pixels with tiles of about `tile` pixels (at
 * least mdc_tile_min(margin); a multiple of `align`, a power of two).
 * Returns 0, or -1 when out of memory. */
int mdc_tile_axis_plan(mdc_tile_axis *axis, int size, int tile, int align, int margin);
void mdc_tile_axis_clear(mdc_tile_axis *axis);
/* Weight of tile i at absolute position p (inside the tile). */
float mdc_tile_axis_weight(const mdc_tile_axis *axis, int i, int p);

/* Crops used for whole-image classification along an axis: count (1..3),
 * their size and starts (docs/network.md). */
int mdc_class_crops(int size, int crop, int *start);

#endif
