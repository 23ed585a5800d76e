/* image_io.c - PNG (libpng), JPEG (libjpeg-turbo) and WebP (libwebp) files
 * to and from float images.  See image_io.h for the contract.
 *
 * libpng and libjpeg report errors by longjmp.  Each codec is split into an
 * outer function that owns every resource in a state struct and an inner
 * "run" function that calls setjmp and does the work: after a longjmp the
 * state struct (not a local of the setjmp caller) is intact, so the outer
 * function frees everything without volatile tricks and no path leaks.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkstemp, fsync, fdopen, realpath under -std=c11 */
#endif

#include "image_io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <jerror.h> /* after jpeglib.h: its message list depends on jconfig.h */
#include <png.h>
#include <webp/decode.h>
#include <webp/encode.h>

/* ------------------------------------------------------------- helpers */

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void msg_set(char *msg, size_t msg_size, const char *fmt, ...)
{
  if (!msg || msg_size == 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, msg_size, fmt, ap);
  va_end(ap);
}

/* Checks dimensions against the limits before any size arithmetic, so
 * width * height * channels * sizeof(float) cannot overflow afterwards. */
static int size_check(const char *name, unsigned long long width, unsigned long long height,
                      char *msg, size_t msg_size)
{
  if (width == 0 || height == 0) {
    msg_set(msg, msg_size, "%s: image has no pixels (%llux%llu)", name, width, height);
    return -1;
  }
  if (width > IMG_MAX_SIDE || height > IMG_MAX_SIDE || width * height > IMG_MAX_PIXELS) {
    msg_set(msg, msg_size,
            "%s: image is too large (%llux%llu); the limit is %d pixels per side and "
            "%zu pixels in all",
            name, width, height, IMG_MAX_SIDE, (size_t)IMG_MAX_PIXELS);
    return -1;
  }
  /* Only matters where size_t is 32 bits. */
  if (width * height * 4u > SIZE_MAX / sizeof(float)) {
    msg_set(msg, msg_size, "%s: image is too large (%llux%llu) for this system", name, width,
            height);
    return -1;
  }
  return 0;
}

static float *pixels_alloc(const char *name, int width, int height, int channels, char *msg,
                           size_t msg_size)
{
  size_t count = (size_t)width * (size_t)height * (size_t)channels;
  float *data = malloc(count * sizeof(float));
  if (!data)
    msg_set(msg, msg_size, "%s: out of memory (%zu MiB for a %dx%d image)", name,
            count * sizeof(float) >> 20, width, height);
  return data;
}

/* Clamp to [0,1], NaN to 0, round to nearest. */
static inline unsigned sample_quantize(float x, float scale)
{
  if (!(x > 0.0f))
    return 0;
  if (x >= 1.0f)
    return (unsigned)scale;
  return (unsigned)(x * scale + 0.5f);
}

static void row_from_u8(float *dst, const unsigned char *src, size_t n)
{
  for (size_t i = 0; i < n; i++)
    dst[i] = (float)src[i] / 255.0f;
}

static void row_from_u16be(float *dst, const unsigned char *src, size_t n)
{
  for (size_t i = 0; i < n; i++)
    dst[i] = (float)((unsigned)src[2 * i] << 8 | src[2 * i + 1]) / 65535.0f;
}

static void row_to_u8(unsigned char *dst, const float *src, size_t n)
{
  for (size_t i = 0; i < n; i++)
    dst[i] = (unsigned char)sample_quantize(src[i], 255.0f);
}

static void row_to_u16be(unsigned char *dst, const float *src, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    unsigned v = sample_quantize(src[i], 65535.0f);
    dst[2 * i] = (unsigned char)(v >> 8);
    dst[2 * i + 1] = (unsigned char)(v & 0xff);
  }
}

void img_free(img_image *img)
{
  if (!img)
    return;
  free(img->data);
  memset(img, 0, sizeof *img);
}

const char *img_format_name(img_format format)
{
  switch (format) {
  case IMG_FORMAT_PNG: return "PNG";
  case IMG_FORMAT_JPEG: return "JPEG";
  case IMG_FORMAT_WEBP: return "WebP";
  }
  return "unknown";
}

int img_format_from_path(const char *path, img_format *out)
{
  if (!path)
    return -1;
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  const char *dot = strrchr(base, '.');
  if (!dot || dot == base) /* ".png" alone is a hidden file's name, not an extension */
    return -1;
  const char *ext = dot + 1;
  img_format f;
  if (strcasecmp(ext, "png") == 0)
    f = IMG_FORMAT_PNG;
  else if (strcasecmp(ext, "jpg") == 0 || strcasecmp(ext, "jpeg") == 0)
    f = IMG_FORMAT_JPEG;
  else if (strcasecmp(ext, "webp") == 0)
    f = IMG_FORMAT_WEBP;
  else
    return -1;
  if (out)
    *out = f;
  return 0;
}

int img_alloc(img_image *out, int width, int height, int channels, char *msg, size_t msg_size)
{
  if (!out) {
    msg_set(msg, msg_size, "image: no output given");
    return -1;
  }
  memset(out, 0, sizeof *out);
  if (channels < 1 || channels > 4) {
    msg_set(msg, msg_size, "image: %d channels (1 to 4 supported)", channels);
    return -1;
  }
  if (width < 0 || height < 0 || size_check("image", (unsigned)width, (unsigned)height, msg,
                                            msg_size) != 0) {
    if (width < 0 || height < 0)
      msg_set(msg, msg_size, "image: negative size %dx%d", width, height);
    return -1;
  }
  size_t count = (size_t)width * (size_t)height * (size_t)channels;
  out->data = calloc(count, sizeof(float));
  if (!out->data) {
    msg_set(msg, msg_size, "image: out of memory (%zu MiB for a %dx%d image)",
            count * sizeof(float) >> 20, width, height);
    return -1;
  }
  out->width = width;
  out->height = height;
  out->channels = channels;
  out->bit_depth = 8;
  out->format = IMG_FORMAT_PNG;
  return 0;
}

int img_has_alpha(const img_image *img)
{
  return img && (img->channels == 2 || img->channels == 4);
}

void img_drop_alpha(img_image *img)
{
  if (!img_has_alpha(img) || !img->data)
    return;
  int c = img->channels, nc = c - 1;
  size_t n = (size_t)img->width * (size_t)img->height;
  /* In place, front to back: the write position never passes the read one. */
  for (size_t i = 0; i < n; i++)
    for (int k = 0; k < nc; k++)
      img->data[i * nc + k] = img->data[i * c + k];
  float *shrunk = realloc(img->data, n * nc * sizeof(float));
  if (shrunk) /* keeping the larger block is harmless */
    img->data = shrunk;
  img->channels = nc;
}

int img_convert(const img_image *src, int channels, img_image *dst, char *msg, size_t msg_size)
{
  if (!dst) {
    msg_set(msg, msg_size, "image: no output given");
    return -1;
  }
  memset(dst, 0, sizeof *dst);
  if (!src || !src->data || src->channels < 1 || src->channels > 4) {
    msg_set(msg, msg_size, "image: invalid source image");
    return -1;
  }
  if (img_alloc(dst, src->width, src->height, channels, msg, msg_size) != 0)
    return -1;
  dst->bit_depth = src->bit_depth;
  dst->format = src->format;
  int sc = src->channels;
  size_t n = (size_t)src->width * (size_t)src->height;
  for (size_t i = 0; i < n; i++) {
    const float *s = src->data + i * sc;
    float *d = dst->data + i * channels;
    float r, g, b, a = 1.0f, y;
    if (sc <= 2) {
      r = g = b = y = s[0];
      if (sc == 2)
        a = s[1];
    } else {
      r = s[0];
      g = s[1];
      b = s[2];
      if (sc == 4)
        a = s[3];
      y = 0.2126f * r + 0.7152f * g + 0.0722f * b;
    }
    switch (channels) {
    case 1: d[0] = y; break;
    case 2: d[0] = y; d[1] = a; break;
    case 3: d[0] = r; d[1] = g; d[2] = b; break;
    default: d[0] = r; d[1] = g; d[2] = b; d[3] = a; break;
    }
  }
  return 0;
}

/* ----------------------------------------------------------------- PNG */

/* Shared by reading and writing: the stream, and why libpng stopped. */
struct png_io {
  FILE *fp;
  int truncated; /* short read at end of file */
  int io_errno;  /* errno of a failed read or write */
  char text[200]; /* libpng's own message */
};

static void png_on_error(png_structp png, png_const_charp text)
{
  struct png_io *io = png_get_error_ptr(png);
  if (io && !io->truncated && !io->io_errno)
    snprintf(io->text, sizeof io->text, "%s", text ? text : "unknown error");
  png_longjmp(png, 1);
}

/* Warnings concern ancillary chunks (bad iCCP, CRC of a text chunk...):
 * the pixels are fine, so stay quiet rather than print from a library. */
static void png_on_warning(png_structp png, png_const_charp text)
{
  (void)png;
  (void)text;
}

/* Own read function so that a short file is told apart from a read error
 * (libpng's default says "Read Error" for both). */
static void png_on_read(png_structp png, png_bytep buf, size_t len)
{
  struct png_io *io = png_get_io_ptr(png);
  size_t got = fread(buf, 1, len, io->fp);
  if (got != len) {
    if (ferror(io->fp))
      io->io_errno = errno ? errno : EIO;
    else
      io->truncated = 1;
    png_error(png, "read failed");
  }
}

static void png_on_write(png_structp png, png_bytep buf, size_t len)
{
  struct png_io *io = png_get_io_ptr(png);
  if (fwrite(buf, 1, len, io->fp) != len) {
    io->io_errno = errno ? errno : EIO;
    png_error(png, "write failed");
  }
}

static void png_on_flush(png_structp png)
{
  (void)png; /* the caller flushes and syncs once at the end */
}

static void png_io_message(const struct png_io *io, const char *path, int writing, char *msg,
                           size_t msg_size)
{
  if (io->truncated)
    msg_set(msg, msg_size, "%s: truncated PNG data", path);
  else if (io->io_errno)
    msg_set(msg, msg_size, "%s: %s error: %s", path, writing ? "write" : "read",
            strerror(io->io_errno));
  else if (writing)
    msg_set(msg, msg_size, "%s: cannot write PNG: %s", path, io->text);
  else
    msg_set(msg, msg_size, "%s: invalid PNG: %s", path, io->text);
}

struct png_read_state {
  struct png_io io;
  png_structp png;
  png_infop info;
  unsigned char *bytes;  /* one row, or the whole image when interlaced */
  png_bytep *rows;       /* row pointers when interlaced */
  float *data;
  int width, height, channels, bit_depth;
  int size_error; /* the message is already in msg */
};

static int png_read_run(struct png_read_state *s, const char *path, char *msg, size_t msg_size)
{
  png_structp png = s->png;
  png_infop info = s->info;
  if (setjmp(png_jmpbuf(png)))
    return -1;

  png_set_read_fn(png, &s->io, png_on_read);
  /* Lift libpng's own 1e6 default so our limit (and message) decides. */
  png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
  png_read_info(png, info);

  png_uint_32 w, h;
  int depth, color, interlace;
  png_get_IHDR(png, info, &w, &h, &depth, &color, &interlace, NULL, NULL);
  if (size_check(path, w, h, msg, msg_size) != 0) {
    s->size_error = 1;
    return -1;
  }

  /* Palette -> RGB, grey below 8 bits -> 8 bits, tRNS -> alpha channel.
   * 16-bit samples stay 16-bit (big-endian in the row buffer). */
  png_set_expand(png);
  int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);

  int channels = png_get_channels(png, info);
  int out_depth = png_get_bit_depth(png, info);
  size_t rowbytes = png_get_rowbytes(png, info);
  size_t samples = (size_t)w * (size_t)channels;
  if (channels < 1 || channels > 4 || (out_depth != 8 && out_depth != 16) ||
      rowbytes != samples * (size_t)(out_depth / 8)) {
    snprintf(s->io.text, sizeof s->io.text, "unexpected layout after expansion");
    return -1;
  }

  s->data = pixels_alloc(path, (int)w, (int)h, channels, msg, msg_size);
  if (!s->data) {
    s->size_error = 1;
    return -1;
  }

  if (passes > 1) {
    /* Interlaced passes fill each row several times: keep them all. */
    s->bytes = malloc(rowbytes * h);
    s->rows = malloc(sizeof(png_bytep) * h);
    if (!s->bytes || !s->rows) {
      msg_set(msg, msg_size, "%s: out of memory reading an interlaced PNG", path);
      s->size_error = 1;
      return -1;
    }
    for (png_uint_32 y = 0; y < h; y++)
      s->rows[y] = s->bytes + rowbytes * y;
    png_read_image(png, s->rows);
  } else {
    s->bytes = malloc(rowbytes);
    if (!s->bytes) {
      msg_set(msg, msg_size, "%s: out of memory", path);
      s->size_error = 1;
      return -1;
    }
  }
  for (png_uint_32 y = 0; y < h; y++) {
    unsigned char *row = s->rows ? s->rows[y] : s->bytes;
    if (!s->rows)
      png_read_row(png, row, NULL);
    float *dst = s->data + samples * y;
    if (out_depth == 16)
      row_from_u16be(dst, row, samples);
    else
      row_from_u8(dst, row, samples);
  }
  /* Reads up to IEND, so a file cut after the pixels is still caught. */
  png_read_end(png, NULL);

  s->width = (int)w;
  s->height = (int)h;
  s->channels = channels;
  s->bit_depth = out_depth;
  return 0;
}

static int png_read_file(FILE *fp, const char *path, img_image *out, char *msg, size_t msg_size)
{
  struct png_read_state s;
  memset(&s, 0, sizeof s);
  s.io.fp = fp;
  s.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s.io, png_on_error, png_on_warning);
  if (s.png)
    s.info = png_create_info_struct(s.png);
  if (!s.png || !s.info) {
    msg_set(msg, msg_size, "%s: out of memory", path);
    png_destroy_read_struct(s.png ? &s.png : NULL, NULL, NULL);
    return -1;
  }
  int rc = png_read_run(&s, path, msg, msg_size);
  if (rc != 0 && !s.size_error)
    png_io_message(&s.io, path, 0, msg, msg_size);
  png_destroy_read_struct(&s.png, &s.info, NULL);
  free(s.bytes);
  free(s.rows);
  if (rc != 0) {
    free(s.data);
    return -1;
  }
  out->data = s.data;
  out->width = s.width;
  out->height = s.height;
  out->channels = s.channels;
  out->bit_depth = s.bit_depth;
  out->format = IMG_FORMAT_PNG;
  return 0;
}

struct png_write_state {
  struct png_io io;
  png_structp png;
  png_infop info;
  unsigned char *row;
};

static int png_write_run(struct png_write_state *s, const img_image *img, int depth)
{
  png_structp png = s->png;
  png_infop info = s->info;
  if (setjmp(png_jmpbuf(png)))
    return -1;

  static const int color_types[4] = {PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                     PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
  png_set_write_fn(png, &s->io, png_on_write, png_on_flush);
  png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, depth,
               color_types[img->channels - 1], PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  /* zlib level 3, not libpng's 6: on a restored (smooth) 12-megapixel
   * photo 6 spends 5.5 s in deflate's match search, 3 spends 1.0 s, for
   * a file 13 % larger (docs/benchmarks.md). */
  png_set_compression_level(png, 3);
  png_write_info(png, info);
  size_t samples = (size_t)img->width * (size_t)img->channels;
  for (int y = 0; y < img->height; y++) {
    const float *src = img->data + samples * (size_t)y;
    if (depth == 16)
      row_to_u16be(s->row, src, samples);
    else
      row_to_u8(s->row, src, samples);
    png_write_row(png, s->row);
  }
  png_write_end(png, NULL);
  return 0;
}

static int png_write_file(FILE *fp, const char *path, const img_image *img, int depth, char *msg,
                          size_t msg_size)
{
  struct png_write_state s;
  memset(&s, 0, sizeof s);
  s.io.fp = fp;
  s.row = malloc((size_t)img->width * (size_t)img->channels * (size_t)(depth / 8));
  s.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &s.io, png_on_error, png_on_warning);
  if (s.png)
    s.info = png_create_info_struct(s.png);
  int rc;
  if (!s.row || !s.png || !s.info) {
    msg_set(msg, msg_size, "%s: out of memory", path);
    rc = -1;
  } else {
    rc = png_write_run(&s, img, depth);
    if (rc != 0)
      png_io_message(&s.io, path, 1, msg, msg_size);
  }
  if (s.png)
    png_destroy_write_struct(&s.png, &s.info);
  free(s.row);
  return rc;
}

/* ---------------------------------------------------------------- JPEG */

struct jpeg_err {
  struct jpeg_error_mgr mgr; /* first: libjpeg hands us a pointer to it */
  jmp_buf jump;
  int code;      /* message code that stopped us */
  int io_errno;  /* errno at the time, for write errors */
  char text[JMSG_LENGTH_MAX];
};

static void jpeg_on_error(j_common_ptr cinfo)
{
  struct jpeg_err *e = (struct jpeg_err *)cinfo->err;
  e->io_errno = errno;
  e->code = cinfo->err->msg_code;
  cinfo->err->format_message(cinfo, e->text);
  longjmp(e->jump, 1);
}

/* Warnings that mean the pixels are damaged or missing: a truncated file
 * only produces a warning ("Premature end of JPEG file") and grey padding,
 * which must not pass for a good image. */
static int jpeg_warning_is_fatal(int code, int marker)
{
  switch (code) {
  case JWRN_JPEG_EOF:
  case JWRN_HIT_MARKER:
  case JWRN_MUST_RESYNC:
  case JWRN_HUFF_BAD_CODE:
#if JPEG_LIB_VERSION >= 70 || defined(C_ARITH_CODING_SUPPORTED) || \
    defined(D_ARITH_CODING_SUPPORTED)
  case JWRN_ARITH_BAD_CODE: /* declared by jerror.h only in these builds */
#endif
  case JWRN_BOGUS_PROGRESSION:
    return 1;
  case JWRN_EXTRANEOUS_DATA:
    /* Junk before the final EOI is common in camera files and harmless:
     * every scan has been decoded by then. */
    return marker != 0xD9;
  default:
    return 0;
  }
}

static void jpeg_on_message(j_common_ptr cinfo, int level)
{
  if (level >= 0)
    return; /* trace output */
  if (jpeg_warning_is_fatal(cinfo->err->msg_code, cinfo->err->msg_parm.i[1]))
    jpeg_on_error(cinfo);
  cinfo->err->num_warnings++;
}

static void jpeg_on_output(j_common_ptr cinfo)
{
  (void)cinfo; /* never print from inside the library */
}

static void jpeg_err_init(struct jpeg_err *e)
{
  jpeg_std_error(&e->mgr);
  e->mgr.error_exit = jpeg_on_error;
  e->mgr.emit_message = jpeg_on_message;
  e->mgr.output_message = jpeg_on_output;
}

struct jpeg_read_state {
  struct jpeg_decompress_struct cinfo;
  struct jpeg_err err;
  int created;
  JSAMPLE *row;
  float *data;
  int width, height, channels;
  int size_error;
};

static int jpeg_read_run(struct jpeg_read_state *s, FILE *fp, const char *path, char *msg,
                         size_t msg_size)
{
  struct jpeg_decompress_struct *cinfo = &s->cinfo;
  if (setjmp(s->err.jump))
    return -1;

  s->created = 1; /* cinfo was zeroed: destroying a half-made one is safe */
  jpeg_create_decompress(cinfo);
  jpeg_stdio_src(cinfo, fp);
  jpeg_read_header(cinfo, TRUE);
  if (size_check(path, cinfo->image_width, cinfo->image_height, msg, msg_size) != 0) {
    s->size_error = 1;
    return -1;
  }
  int cmyk = 0;
  switch (cinfo->jpeg_color_space) {
  case JCS_GRAYSCALE:
    cinfo->out_color_space = JCS_GRAYSCALE;
    break;
  case JCS_CMYK:
  case JCS_YCCK:
    cinfo->out_color_space = JCS_CMYK; /* libjpeg undoes YCCK; we do CMYK -> RGB */
    cmyk = 1;
    break;
  default:
    cinfo->out_color_space = JCS_RGB;
    break;
  }
  jpeg_start_decompress(cinfo);

  int width = (int)cinfo->output_width, height = (int)cinfo->output_height;
  int comps = cinfo->output_components;
  int channels = cmyk ? 3 : comps;
  if ((cmyk && comps != 4) || (!cmyk && comps != 1 && comps != 3)) {
    snprintf(s->err.text, sizeof s->err.text, "unexpected %d colour components", comps);
    return -1;
  }
  s->row = malloc((size_t)width * (size_t)comps);
  if (!s->row) {
    msg_set(msg, msg_size, "%s: out of memory", path);
    s->size_error = 1;
    return -1;
  }
  s->data = pixels_alloc(path, width, height, channels, msg, msg_size);
  if (!s->data) {
    s->size_error = 1;
    return -1;
  }
  /* Adobe writes CMYK inverted (255 = no ink); others store it plainly. */
  int inverted = cinfo->saw_Adobe_marker;
  while (cinfo->output_scanline < cinfo->output_height) {
    size_t y = cinfo->output_scanline;
    JSAMPROW rowp = s->row;
    if (jpeg_read_scanlines(cinfo, &rowp, 1) != 1) {
      snprintf(s->err.text, sizeof s->err.text, "no scanline returned");
      return -1;
    }
    float *dst = s->data + y * (size_t)width * (size_t)channels;
    if (!cmyk) {
      row_from_u8(dst, s->row, (size_t)width * (size_t)comps);
      continue;
    }
    for (int x = 0; x < width; x++) {
      const JSAMPLE *p = s->row + 4 * (size_t)x;
      float c = p[0] / 255.0f, m = p[1] / 255.0f, yl = p[2] / 255.0f, k = p[3] / 255.0f;
      if (!inverted) {
        c = 1.0f - c;
        m = 1.0f - m;
        yl = 1.0f - yl;
        k = 1.0f - k;
      }
      /* Naive conversion (no ICC profile): R = (1-C)(1-K) etc. */
      dst[3 * x] = c * k;
      dst[3 * x + 1] = m * k;
      dst[3 * x + 2] = yl * k;
    }
  }
  jpeg_finish_decompress(cinfo); /* reads to EOI: catches a cut after the scans */
  s->width = width;
  s->height = height;
  s->channels = channels;
  return 0;
}

static int jpeg_read_file(FILE *fp, const char *path, img_image *out, char *msg, size_t msg_size)
{
  struct jpeg_read_state s;
  memset(&s, 0, sizeof s);
  jpeg_err_init(&s.err);
  s.cinfo.err = &s.err.mgr;
  int rc = jpeg_read_run(&s, fp, path, msg, msg_size);
  if (rc != 0 && !s.size_error) {
    int code = s.err.code;
    if (ferror(fp))
      msg_set(msg, msg_size, "%s: read error: %s", path,
              strerror(s.err.io_errno ? s.err.io_errno : EIO));
    else if (code == JWRN_JPEG_EOF || code == JERR_INPUT_EOF || code == JERR_INPUT_EMPTY)
      msg_set(msg, msg_size, "%s: truncated JPEG data", path);
    else if (code == JERR_OUT_OF_MEMORY)
      msg_set(msg, msg_size, "%s: out of memory decoding JPEG", path);
    else if (jpeg_warning_is_fatal(code, s.err.mgr.msg_parm.i[1]))
      msg_set(msg, msg_size, "%s: %s", path, s.err.text); /* "Corrupt JPEG data: ..." */
    else
      msg_set(msg, msg_size, "%s: invalid JPEG: %s", path, s.err.text);
  }
  if (s.created)
    jpeg_destroy_decompress(&s.cinfo);
  free(s.row);
  if (rc != 0) {
    free(s.data);
    return -1;
  }
  out->data = s.data;
  out->width = s.width;
  out->height = s.height;
  out->channels = s.channels;
  out->bit_depth = 8;
  out->format = IMG_FORMAT_JPEG;
  return 0;
}

struct jpeg_write_state {
  struct jpeg_compress_struct cinfo;
  struct jpeg_err err;
  int created;
  JSAMPLE *row;
};

static int jpeg_write_run(struct jpeg_write_state *s, FILE *fp, const img_image *img, int quality)
{
  struct jpeg_compress_struct *cinfo = &s->cinfo;
  if (setjmp(s->err.jump))
    return -1;

  s->created = 1; /* cinfo was zeroed: destroying a half-made one is safe */
  jpeg_create_compress(cinfo);
  jpeg_stdio_dest(cinfo, fp);
  cinfo->image_width = (JDIMENSION)img->width;
  cinfo->image_height = (JDIMENSION)img->height;
  cinfo->input_components = img->channels;
  cinfo->in_color_space = img->channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(cinfo);
  jpeg_set_quality(cinfo, quality, TRUE);
  cinfo->optimize_coding = TRUE;
  if (img->channels == 3 && quality >= 90) {
    /* Full-resolution chroma: at high quality 4:2:0 would smear the
     * colour detail a restoration just recovered. */
    for (int i = 0; i < cinfo->num_components; i++) {
      cinfo->comp_info[i].h_samp_factor = 1;
      cinfo->comp_info[i].v_samp_factor = 1;
    }
  }
  jpeg_start_compress(cinfo, TRUE);
  size_t samples = (size_t)img->width * (size_t)img->channels;
  while (cinfo->next_scanline < cinfo->image_height) {
    row_to_u8(s->row, img->data + samples * cinfo->next_scanline, samples);
    JSAMPROW rowp = s->row;
    jpeg_write_scanlines(cinfo, &rowp, 1);
  }
  jpeg_finish_compress(cinfo);
  return 0;
}

static int jpeg_write_file(FILE *fp, const char *path, const img_image *img, int quality,
                           char *msg, size_t msg_size)
{
  struct jpeg_write_state s;
  memset(&s, 0, sizeof s);
  jpeg_err_init(&s.err);
  s.cinfo.err = &s.err.mgr;
  s.row = malloc((size_t)img->width * (size_t)img->channels);
  int rc;
  if (!s.row) {
    msg_set(msg, msg_size, "%s: out of memory", path);
    rc = -1;
  } else {
    rc = jpeg_write_run(&s, fp, img, quality);
    if (rc != 0) {
      if (s.err.code == JERR_FILE_WRITE)
        msg_set(msg, msg_size, "%s: write error: %s", path,
                strerror(s.err.io_errno ? s.err.io_errno : EIO));
      else
        msg_set(msg, msg_size, "%s: cannot write JPEG: %s", path, s.err.text);
    }
  }
  if (s.created)
    jpeg_destroy_compress(&s.cinfo);
  free(s.row);
  return rc;
}

/* ---------------------------------------------------------------- WebP */

/* Reads the rest of a stream into memory (WebP decoding wants it whole). */
static int file_slurp(FILE *fp, const char *path, unsigned char **out, size_t *out_len, char *msg,
                      size_t msg_size)
{
  /* A RIFF size is 32 bits: nothing larger can be a valid WebP file. */
  const size_t max_len = (size_t)UINT32_MAX + 8u;
  size_t cap = 1 << 16, len = 0;
  struct stat st;
  if (fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
      (unsigned long long)st.st_size < max_len)
    cap = (size_t)st.st_size + 1; /* +1 to see EOF without growing */
  unsigned char *buf = malloc(cap);
  if (!buf) {
    msg_set(msg, msg_size, "%s: out of memory", path);
    return -1;
  }
  for (;;) {
    len += fread(buf + len, 1, cap - len, fp);
    if (ferror(fp)) {
      msg_set(msg, msg_size, "%s: read error: %s", path, strerror(errno ? errno : EIO));
      free(buf);
      return -1;
    }
    if (feof(fp))
      break;
    if (cap >= max_len) {
      msg_set(msg, msg_size, "%s: invalid WebP: file too large", path);
      free(buf);
      return -1;
    }
    size_t ncap = cap > max_len / 2 ? max_len : cap * 2;
    unsigned char *nbuf = realloc(buf, ncap);
    if (!nbuf) {
      msg_set(msg, msg_size, "%s: out of memory", path);
      free(buf);
      return -1;
    }
    buf = nbuf;
    cap = ncap;
  }
  *out = buf;
  *out_len = len;
  return 0;
}

static void webp_status_message(VP8StatusCode status, const char *path, char *msg,
                                size_t msg_size)
{
  switch (status) {
  case VP8_STATUS_NOT_ENOUGH_DATA:
    msg_set(msg, msg_size, "%s: truncated WebP data", path);
    break;
  case VP8_STATUS_OUT_OF_MEMORY:
    msg_set(msg, msg_size, "%s: out of memory decoding WebP", path);
    break;
  case VP8_STATUS_UNSUPPORTED_FEATURE:
    msg_set(msg, msg_size, "%s: unsupported WebP feature", path);
    break;
  default:
    msg_set(msg, msg_size, "%s: invalid WebP data", path);
    break;
  }
}

static int webp_read_file(FILE *fp, const char *path, img_image *out, char *msg, size_t msg_size)
{
  unsigned char *file = NULL, *pixels = NULL;
  size_t len = 0;
  float *data = NULL;
  int rc = -1;
  if (file_slurp(fp, path, &file, &len, msg, msg_size) != 0)
    return -1;

  WebPBitstreamFeatures features;
  VP8StatusCode status = WebPGetFeatures(file, len, &features);
  if (status != VP8_STATUS_OK) {
    webp_status_message(status, path, msg, msg_size);
    goto done;
  }
  if (features.has_animation) {
    msg_set(msg, msg_size, "%s: animated WebP is not supported (extract one frame first)", path);
    goto done;
  }
  if (size_check(path, (unsigned)features.width, (unsigned)features.height, msg, msg_size) != 0)
    goto done;
  int width = features.width, height = features.height;
  int channels = features.has_alpha ? 4 : 3;
  size_t stride = (size_t)width * (size_t)channels;
  pixels = malloc(stride * (size_t)height);
  data = pixels_alloc(path, width, height, channels, msg, msg_size);
  if (!pixels || !data) {
    msg_set(msg, msg_size, "%s: out of memory", path);
    goto done;
  }

  WebPDecoderConfig config;
  if (!WebPInitDecoderConfig(&config)) {
    msg_set(msg, msg_size, "%s: libwebp version mismatch", path);
    goto done;
  }
  config.output.colorspace = channels == 4 ? MODE_RGBA : MODE_RGB;
  config.output.is_external_memory = 1;
  config.output.u.RGBA.rgba = pixels;
  config.output.u.RGBA.stride = (int)stride;
  config.output.u.RGBA.size = stride * (size_t)height;
  status = WebPDecode(file, len, &config);
  WebPFreeDecBuffer(&config.output); /* frees nothing external; required by the API */
  if (status != VP8_STATUS_OK) {
    webp_status_message(status, path, msg, msg_size);
    goto done;
  }
  row_from_u8(data, pixels, stride * (size_t)height);

  out->data = data;
  data = NULL;
  out->width = width;
  out->height = height;
  out->channels = channels;
  out->bit_depth = 8;
  out->format = IMG_FORMAT_WEBP;
  rc = 0;
done:
  free(data);
  free(pixels);
  free(file);
  return rc;
}

static const char *webp_error_text(WebPEncodingError e)
{
  switch (e) {
  case VP8_ENC_ERROR_OUT_OF_MEMORY:
  case VP8_ENC_ERROR_BITSTREAM_OUT_OF_MEMORY: return "out of memory";
  case VP8_ENC_ERROR_BAD_DIMENSION: return "bad dimensions";
  case VP8_ENC_ERROR_PARTITION0_OVERFLOW:
  case VP8_ENC_ERROR_PARTITION_OVERFLOW: return "partition overflow";
  case VP8_ENC_ERROR_FILE_TOO_BIG: return "file too big";
  default: return "encoder error";
  }
}

static int webp_write_file(FILE *fp, const char *path, const img_image *img, int quality,
                           char *msg, size_t msg_size)
{
  int alpha = img_has_alpha(img);
  int out_ch = alpha ? 4 : 3;
  size_t n = (size_t)img->width * (size_t)img->height;
  unsigned char *bytes = malloc(n * (size_t)out_ch);
  if (!bytes) {
    msg_set(msg, msg_size, "%s: out of memory", path);
    return -1;
  }
  if (img->channels >= 3) {
    row_to_u8(bytes, img->data, n * (size_t)out_ch);
  } else {
    /* WebP has no grey mode: replicate grey into R, G and B. */
    for (size_t i = 0; i < n; i++) {
      const float *s = img->data + i * (size_t)img->channels;
      unsigned char *d = bytes + i * (size_t)out_ch;
      d[0] = d[1] = d[2] = (unsigned char)sample_quantize(s[0], 255.0f);
      if (alpha)
        d[3] = (unsigned char)sample_quantize(s[1], 255.0f);
    }
  }

  int rc = -1;
  WebPConfig config;
  WebPPicture pic;
  WebPMemoryWriter writer;
  WebPMemoryWriterInit(&writer);
  if (!WebPPictureInit(&pic) || !WebPConfigInit(&config)) {
    free(bytes);
    msg_set(msg, msg_size, "%s: libwebp version mismatch", path);
    return -1;
  }
  if (quality >= 100) {
    config.lossless = 1;
    config.exact = 1; /* keep RGB under transparent pixels: a true round trip */
    config.quality = 75;
  } else {
    config.quality = (float)quality;
    config.use_sharp_yuv = 1; /* less colour bleeding on edges */
    config.alpha_quality = 100;
  }
  config.method = 4;
  pic.use_argb = 1; /* WebPEncode converts to YUV itself (with sharp YUV) */
  pic.width = img->width;
  pic.height = img->height;
  pic.writer = WebPMemoryWrite;
  pic.custom_ptr = &writer;
  int stride = img->width * out_ch;
  int ok = WebPValidateConfig(&config) &&
           (alpha ? WebPPictureImportRGBA(&pic, bytes, stride)
                  : WebPPictureImportRGB(&pic, bytes, stride));
  free(bytes);
  if (!ok) {
    msg_set(msg, msg_size, "%s: cannot write WebP: %s", path, webp_error_text(pic.error_code));
  } else if (!WebPEncode(&config, &pic)) {
    msg_set(msg, msg_size, "%s: cannot write WebP: %s", path, webp_error_text(pic.error_code));
  } else if (fwrite(writer.mem, 1, writer.size, fp) != writer.size) {
    msg_set(msg, msg_size, "%s: write error: %s", path, strerror(errno ? errno : EIO));
  } else {
    rc = 0;
  }
  WebPPictureFree(&pic);
  WebPMemoryWriterClear(&writer);
  return rc;
}

/* ---------------------------------------------------------------- read */

enum { MAGIC_LEN = 12 };

/* Which format `magic` (got bytes) starts with; -1 if none.  *partial is set
 * when the file is shorter than the signature but matches it so far. */
static int format_from_magic(const unsigned char *m, size_t got, int *partial)
{
  static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  static const unsigned char jpeg_sig[3] = {0xff, 0xd8, 0xff};
  *partial = 0;
  size_t k;
  for (k = 0; k < got && k < 8 && m[k] == png_sig[k]; k++)
    ;
  if (k == 8 || (k == got && got < 8)) {
    *partial = k < 8;
    return IMG_FORMAT_PNG;
  }
  for (k = 0; k < got && k < 3 && m[k] == jpeg_sig[k]; k++)
    ;
  if (k == 3 || (k == got && got < 3)) {
    *partial = k < 3;
    return IMG_FORMAT_JPEG;
  }
  /* "RIFF" size "WEBP": bytes 4..7 can be anything. */
  int riff = 1;
  for (k = 0; k < got && k < MAGIC_LEN; k++) {
    if (k < 4 && m[k] != (unsigned char)"RIFF"[k])
      riff = 0;
    if (k >= 8 && m[k] != (unsigned char)"WEBP"[k - 8])
      riff = 0;
  }
  if (riff) {
    *partial = got < MAGIC_LEN;
    return IMG_FORMAT_WEBP;
  }
  return -1;
}

int img_read(const char *path, img_image *out, char *msg, size_t msg_size)
{
  if (!out) {
    msg_set(msg, msg_size, "%s: no output given", path ? path : "(null)");
    return -1;
  }
  memset(out, 0, sizeof *out);
  if (!path || !*path) {
    msg_set(msg, msg_size, "no input file name given");
    return -1;
  }
  FILE *fp = fopen(path, "rb");
  if (!fp) {
    msg_set(msg, msg_size, "%s: %s", path, strerror(errno));
    return -1;
  }
  struct stat st;
  if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
    msg_set(msg, msg_size, "%s: %s", path, strerror(EISDIR));
    fclose(fp);
    return -1;
  }
  unsigned char magic[MAGIC_LEN];
  size_t got = fread(magic, 1, sizeof magic, fp);
  int rc = -1;
  if (ferror(fp)) {
    msg_set(msg, msg_size, "%s: read error: %s", path, strerror(errno ? errno : EIO));
    goto done;
  }
  if (got == 0) {
    msg_set(msg, msg_size, "%s: empty file", path);
    goto done;
  }
  int partial;
  int format = format_from_magic(magic, got, &partial);
  if (format < 0) {
    msg_set(msg, msg_size, "%s: not a PNG, JPEG or WebP file", path);
    goto done;
  }
  if (partial) {
    msg_set(msg, msg_size, "%s: truncated %s data", path, img_format_name((img_format)format));
    goto done;
  }
  if (fseek(fp, 0, SEEK_SET) != 0) {
    msg_set(msg, msg_size, "%s: cannot rewind: %s", path, strerror(errno));
    goto done;
  }
  switch (format) {
  case IMG_FORMAT_PNG: rc = png_read_file(fp, path, out, msg, msg_size); break;
  case IMG_FORMAT_JPEG: rc = jpeg_read_file(fp, path, out, msg, msg_size); break;
  default: rc = webp_read_file(fp, path, out, msg, msg_size); break;
  }
done:
  fclose(fp);
  if (rc != 0)
    memset(out, 0, sizeof *out);
  return rc;
}

/* --------------------------------------------------------------- write */

static mode_t umask_get(void)
{
  /* POSIX has no read-only query; the CLI is single-threaded here. */
  mode_t m = umask(022);
  umask(m);
  return m;
}

/* Best effort: makes the rename itself durable. */
static void dir_sync(const char *file_path)
{
  char *copy = strdup(file_path);
  if (!copy)
    return;
  char *slash = strrchr(copy, '/');
  const char *dir = ".";
  if (slash) {
    slash[slash == copy ? 1 : 0] = '\0';
    dir = copy;
  }
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
  free(copy);
}

static int encode_to(FILE *fp, const char *path, const img_image *img, img_format format,
                     int depth, int quality, char *msg, size_t msg_size)
{
  switch (format) {
  case IMG_FORMAT_PNG: return png_write_file(fp, path, img, depth, msg, msg_size);
  case IMG_FORMAT_JPEG: return jpeg_write_file(fp, path, img, quality, msg, msg_size);
  case IMG_FORMAT_WEBP: return webp_write_file(fp, path, img, quality, msg, msg_size);
  }
  msg_set(msg, msg_size, "%s: unknown output format", path);
  return -1;
}

/* Writing to a device or FIFO (/dev/stdout, a pipe): nothing to replace
 * atomically, and renaming over a device node would destroy it. */
static int write_direct(const char *path, const img_image *img, img_format format, int depth,
                        int quality, char *msg, size_t msg_size)
{
  FILE *fp = fopen(path, "wb");
  if (!fp) {
    msg_set(msg, msg_size, "%s: %s", path, strerror(errno));
    return -1;
  }
  int rc = encode_to(fp, path, img, format, depth, quality, msg, msg_size);
  if (rc == 0 && fflush(fp) != 0) {
    msg_set(msg, msg_size, "%s: write error: %s", path, strerror(errno));
    rc = -1;
  }
  if (fclose(fp) != 0 && rc == 0) {
    msg_set(msg, msg_size, "%s: write error: %s", path, strerror(errno));
    rc = -1;
  }
  return rc;
}

int img_write_format(const char *path, const img_image *img, img_format format, int bit_depth,
                     int quality, char *msg, size_t msg_size)
{
  if (!path || !*path) {
    msg_set(msg, msg_size, "no output file name given");
    return -1;
  }
  if (!img || !img->data || img->channels < 1 || img->channels > 4) {
    msg_set(msg, msg_size, "%s: invalid image to write", path);
    return -1;
  }
  if (img->width < 1 || img->height < 1 ||
      size_check(path, (unsigned)img->width, (unsigned)img->height, msg, msg_size) != 0) {
    if (img->width < 1 || img->height < 1)
      msg_set(msg, msg_size, "%s: invalid image size %dx%d", path, img->width, img->height);
    return -1;
  }
  if (format != IMG_FORMAT_PNG && format != IMG_FORMAT_JPEG && format != IMG_FORMAT_WEBP) {
    msg_set(msg, msg_size, "%s: unknown output format", path);
    return -1;
  }

  /* Every refusal that can be known in advance comes before any file is
   * created. */
  int depth = bit_depth;
  if (depth == 0)
    depth = (format == IMG_FORMAT_PNG && img->bit_depth == 16) ? 16 : 8;
  if (depth != 8 && depth != 16) {
    msg_set(msg, msg_size, "%s: unsupported bit depth %d (8 or 16)", path, bit_depth);
    return -1;
  }
  if (depth == 16 && format != IMG_FORMAT_PNG) {
    msg_set(msg, msg_size, "%s: %s output is 8-bit only; use PNG for 16-bit", path,
            img_format_name(format));
    return -1;
  }
  if (quality <= 0)
    quality = IMG_DEFAULT_QUALITY;
  if (quality > 100)
    quality = 100;
  if (format == IMG_FORMAT_JPEG && img_has_alpha(img)) {
    msg_set(msg, msg_size,
            "%s: the image has an alpha channel, which JPEG cannot store; "
            "write PNG or WebP, or drop the alpha",
            path);
    return -1;
  }
  if (format == IMG_FORMAT_JPEG && (img->width > (int)JPEG_MAX_DIMENSION ||
                                    img->height > (int)JPEG_MAX_DIMENSION)) {
    msg_set(msg, msg_size, "%s: JPEG is limited to %d pixels per side (image is %dx%d)", path,
            (int)JPEG_MAX_DIMENSION, img->width, img->height);
    return -1;
  }
  if (format == IMG_FORMAT_WEBP && (img->width > WEBP_MAX_DIMENSION ||
                                    img->height > WEBP_MAX_DIMENSION)) {
    msg_set(msg, msg_size, "%s: WebP is limited to %d pixels per side (image is %dx%d)", path,
            WEBP_MAX_DIMENSION, img->width, img->height);
    return -1;
  }

  /* Where the file really goes: through a symlink to its target (so the
   * link survives), straight into a device or FIFO. */
  char *resolved = NULL;
  struct stat st;
  if (lstat(path, &st) == 0) {
    if (S_ISLNK(st.st_mode)) {
      if (stat(path, &st) == 0)
        resolved = realpath(path, NULL);
      else
        st.st_mode = S_IFREG; /* dangling link: replace the link itself */
    }
    if (S_ISDIR(st.st_mode)) {
      msg_set(msg, msg_size, "%s: %s", path, strerror(EISDIR));
      free(resolved);
      return -1;
    }
    if (!S_ISREG(st.st_mode)) {
      free(resolved);
      return write_direct(path, img, format, depth, quality, msg, msg_size);
    }
  }
  const char *target = resolved ? resolved : path;

  static const char suffix[] = ".tmp.XXXXXX";
  size_t tlen = strlen(target);
  char *tmp = malloc(tlen + sizeof suffix);
  if (!tmp) {
    msg_set(msg, msg_size, "%s: out of memory", path);
    free(resolved);
    return -1;
  }
  memcpy(tmp, target, tlen);
  memcpy(tmp + tlen, suffix, sizeof suffix);

  int rc = -1;
  FILE *fp = NULL;
  int fd = mkstemp(tmp);
  if (fd < 0) {
    msg_set(msg, msg_size, "%s: cannot create a file there: %s", path, strerror(errno));
    free(tmp);
    free(resolved);
    return -1;
  }
  /* mkstemp makes 0600; give the file the usual permissions instead. */
  (void)fchmod(fd, 0666 & ~umask_get());
  fp = fdopen(fd, "wb");
  if (!fp) {
    msg_set(msg, msg_size, "%s: %s", path, strerror(errno));
    close(fd);
    goto fail;
  }
  if (encode_to(fp, path, img, format, depth, quality, msg, msg_size) != 0)
    goto fail;
  if (fflush(fp) != 0 || ferror(fp)) {
    msg_set(msg, msg_size, "%s: write error: %s", path, strerror(errno ? errno : EIO));
    goto fail;
  }
  /* Data on disk before the rename, so a crash never leaves an empty
   * file under the final name.  EINVAL: the file system cannot sync. */
  if (fsync(fd) != 0 && errno != EINVAL) {
    msg_set(msg, msg_size, "%s: write error: %s", path, strerror(errno));
    goto fail;
  }
  int closed = fclose(fp);
  fp = NULL;
  if (closed != 0) {
    msg_set(msg, msg_size, "%s: write error: %s", path, strerror(errno));
    goto fail;
  }
  if (rename(tmp, target) != 0) {
    msg_set(msg, msg_size, "%s: cannot replace the file: %s", path, strerror(errno));
    goto fail;
  }
  dir_sync(target);
  rc = 0;
  goto out;
fail:
  if (fp)
    fclose(fp);
  unlink(tmp);
out:
  free(tmp);
  free(resolved);
  return rc;
}

int img_write(const char *path, const img_image *img, int bit_depth, int quality, char *msg,
              size_t msg_size)
{
  img_format format;
  if (img_format_from_path(path, &format) != 0) {
    msg_set(msg, msg_size,
            "%s: unknown output format (use a .png, .jpg, .jpeg or .webp file name)",
            path ? path : "(null)");
    return -1;
  }
  return img_write_format(path, img, format, bit_depth, quality, msg, msg_size);
}
