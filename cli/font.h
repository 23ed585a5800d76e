/* font.h - a 5x7 bitmap font for labels drawn into R'G'B' float images:
 * a-z (upper case drawn as lower case), 0-9, '-', '.', ':', '/', space. */
#ifndef MASKDCPT_FONT_H
#define MASKDCPT_FONT_H

#include "image_io.h"

#define FONT_W 5
#define FONT_H 7
#define FONT_ADVANCE (FONT_W + 1)

/* Width in pixels of s drawn at `scale`. */
int text_width(const char *s, int scale);
/* Draws s in colour rgb (3 floats) with its top-left corner at (x0, y0),
 * clipped to the image, which must have 3 channels. */
void text_draw(img_image *img, int x0, int y0, const char *s, int scale, const float *rgb);

#endif
