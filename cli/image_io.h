/* image_io.h - reading and writing PNG, JPEG and WebP files as float images
 * for the maskdcpt command-line tool.
 *
 * Images are tightly packed floats in [0,1] (row-major, channels
 * interleaved), so a maskdcpt_image can point straight at img_image.data
 * with stride = width * channels.
 *
 * Every fallible call returns 0 on success and -1 on failure; when msg is
 * not NULL it then receives one line naming the file and the problem, e.g.
 * "photo.jpg: truncated JPEG data".  On failure outputs are left empty
 * (data NULL) and nothing needs freeing.
 */
#ifndef MASKDCPT_IMAGE_IO_H
#define MASKDCPT_IMAGE_IO_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum img_format { IMG_FORMAT_PNG, IMG_FORMAT_JPEG, IMG_FORMAT_WEBP } img_format;

/* Size limits, checked on read, allocation and write: larger images are
 * refused with a message instead of risking overflow or exhausting memory.
 * A build may lower IMG_MAX_PIXELS (the fuzz target does, so that a tiny
 * file declaring a huge image cannot make it allocate gigabytes). */
#define IMG_MAX_SIDE (1 << 20)
#ifndef IMG_MAX_PIXELS
#define IMG_MAX_PIXELS ((size_t)1 << 30)
#endif

/* Default JPEG / lossy WebP quality when the caller passes quality <= 0. */
#define IMG_DEFAULT_QUALITY 92

typedef struct img_image {
  float *data;      /* width * height * channels floats, values in [0,1] */
  int width, height;
  int channels;     /* 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA */
  int bit_depth;    /* of the source: 8 or 16 */
  img_format format; /* of the source */
} img_image;

/* Reads a PNG, JPEG or WebP file; the format is detected from its first
 * bytes, not its name.  PNG palette/low-depth/tRNS are expanded (palette
 * to RGB or RGBA); 16-bit PNG samples are kept exactly (value / 65535).
 * JPEG CMYK/YCCK is converted to RGB.  Animated WebP is refused. */
int img_read(const char *path, img_image *out, char *msg, size_t msg_size);

/* Writes img in the format given by path's extension (img_format_from_path).
 * bit_depth: 0 = automatic (PNG: img->bit_depth, i.e. 16 when the source
 * was 16-bit, else 8; JPEG/WebP: 8), 8, or 16 (PNG only).
 * quality: 1..100 for JPEG and WebP, <= 0 = IMG_DEFAULT_QUALITY; WebP with
 * quality >= 100 is lossless (exact).  Ignored for PNG.
 * JPEG refuses images with alpha (call img_drop_alpha first); WebP writes
 * grey as RGB.  Samples are clamped to [0,1], rounded to nearest, NaN
 * written as 0.
 * Atomic: the file is written to "PATH.tmp.XXXXXX" in the same directory,
 * synced and renamed onto path; on any failure the temporary file is
 * removed and an existing file at path is left untouched. */
int img_write(const char *path, const img_image *img, int bit_depth, int quality, char *msg,
              size_t msg_size);
/* Same with an explicit format, whatever path's extension. */
int img_write_format(const char *path, const img_image *img, img_format format, int bit_depth,
                     int quality, char *msg, size_t msg_size);

/* Frees img->data and zeroes *img.  Safe on a zeroed or already freed image. */
void img_free(img_image *img);

/* Format from the extension (.png, .jpg, .jpeg, .webp, any case): 0 and
 * *out set, or -1 when the extension is none of these. */
int img_format_from_path(const char *path, img_format *out);
/* "PNG", "JPEG" or "WebP". */
const char *img_format_name(img_format format);

/* A new zero-filled image (bit_depth 8, format PNG).  channels 1..4. */
int img_alloc(img_image *out, int width, int height, int channels, char *msg, size_t msg_size);
/* 1 when the image has an alpha channel (2 or 4 channels). */
int img_has_alpha(const img_image *img);
/* Removes alpha in place (2 -> 1, 4 -> 3 channels) without compositing;
 * no-op without alpha. */
void img_drop_alpha(img_image *img);
/* A copy of src with `channels` channels in *dst: grey is replicated to RGB,
 * RGB becomes grey by Rec. 709 luma weights on the encoded values, alpha is
 * dropped or added as 1.  bit_depth and format are copied. */
int img_convert(const img_image *src, int channels, img_image *dst, char *msg, size_t msg_size);

#ifdef __cplusplus
}
#endif
#endif /* MASKDCPT_IMAGE_IO_H */
