/* jpeg.c - the jpeg class: a real encode and decode through libjpeg(-turbo)
 * in memory, so the blocking, ringing and 4:2:0 colour bleeding are the
 * codec's own.  The error manager longjmps back instead of exiting, and the
 * compressed bytes go to a buffer this file owns (not jpeg_mem_dest's), so
 * an error half-way leaks nothing.  Settings are pinned (islow DCT, fancy
 * upsampling, no optimised Huffman tables) so the bytes are reproducible. */
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "dg_internal.h"

int dg_jpeg_quality(float level) {
  return (int)lround(dg_lerp(DG_JPEG_QUALITY_LO, DG_JPEG_QUALITY_HI, level));
}

/* ------------------------------------------------------- error manager */

typedef struct jpeg_err {
  struct jpeg_error_mgr mgr;
  jmp_buf jump;
  char text[JMSG_LENGTH_MAX];
} jpeg_err;

static void on_error(j_common_ptr cinfo) {
  jpeg_err *e = (jpeg_err *)cinfo->err;
  e->mgr.format_message(cinfo, e->text);
  longjmp(e->jump, 1);
}

static void on_output(j_common_ptr cinfo) { (void)cinfo; /* never print from a library */ }

static void err_init(jpeg_err *e) {
  jpeg_std_error(&e->mgr);
  e->mgr.error_exit = on_error;
  e->mgr.output_message = on_output;
  e->text[0] = '\0';
}

/* ------------------------------------------------- growable destination */

typedef struct mem_dest {
  struct jpeg_destination_mgr pub;
  unsigned char *data;
  size_t cap, size;
} mem_dest;

static int dest_grow(mem_dest *d, size_t cap) {
  unsigned char *p = realloc(d->data, cap);
  if (!p) return -1;
  d->data = p;
  d->cap = cap;
  return 0;
}

static void dest_init(j_compress_ptr cinfo) {
  mem_dest *d = (mem_dest *)cinfo->dest;
  d->pub.next_output_byte = d->data;
  d->pub.free_in_buffer = d->cap;
}

static boolean dest_empty(j_compress_ptr cinfo) {
  mem_dest *d = (mem_dest *)cinfo->dest;
  size_t used = d->cap; /* the library only calls this when the buffer is full */
  if (dest_grow(d, d->cap * 2) != 0) ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 0);
  d->pub.next_output_byte = d->data + used;
  d->pub.free_in_buffer = d->cap - used;
  return TRUE;
}

static void dest_term(j_compress_ptr cinfo) {
  mem_dest *d = (mem_dest *)cinfo->dest;
  d->size = d->cap - d->pub.free_in_buffer;
}

/* --------------------------------------------------------------- encode */

typedef struct enc_state {
  struct jpeg_compress_struct cinfo;
  jpeg_err err;
  mem_dest dest;
  unsigned char *row;
  int created;
} enc_state;

/* setjmp lives here; everything a longjmp must see is in *s. */
static int encode_run(enc_state *s, const float *img, int w, int h, int quality) {
  if (setjmp(s->err.jump)) return -1;
  s->created = 1; /* cinfo was zeroed: destroying a half-made one is safe */
  jpeg_create_compress(&s->cinfo);
  s->cinfo.dest = &s->dest.pub;
  s->cinfo.image_width = (JDIMENSION)w;
  s->cinfo.image_height = (JDIMENSION)h;
  s->cinfo.input_components = 3;
  s->cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&s->cinfo);
  jpeg_set_quality(&s->cinfo, quality, TRUE);
  s->cinfo.dct_method = JDCT_ISLOW;
  s->cinfo.optimize_coding = FALSE;
  /* 4:2:0: luma 2x2, chroma 1x1 */
  s->cinfo.comp_info[0].h_samp_factor = 2;
  s->cinfo.comp_info[0].v_samp_factor = 2;
  for (int i = 1; i < 3; i++)
    s->cinfo.comp_info[i].h_samp_factor = s->cinfo.comp_info[i].v_samp_factor = 1;
  jpeg_start_compress(&s->cinfo, TRUE);
  while (s->cinfo.next_scanline < s->cinfo.image_height) {
    const float *src = img + (size_t)s->cinfo.next_scanline * w * 3;
    for (size_t i = 0; i < (size_t)w * 3; i++) {
      float v = src[i];
      v = v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f; /* also NaN -> 0 */
      s->row[i] = (unsigned char)(v * 255.0f + 0.5f);
    }
    JSAMPROW rows[1] = {s->row};
    jpeg_write_scanlines(&s->cinfo, rows, 1);
  }
  jpeg_finish_compress(&s->cinfo);
  return 0;
}

int dg_jpeg_encode(const float *img, int w, int h, int quality, unsigned char **data, size_t *size,
                   char *msg, size_t msg_size) {
  *data = NULL;
  *size = 0;
  if (w < 1 || h < 1 || w > DG_MAX_SIDE || h > DG_MAX_SIDE || quality < 1 || quality > 100) {
    dg_msg(msg, msg_size, "jpeg: bad size %dx%d or quality %d", w, h, quality);
    return -1;
  }
  enc_state *s = calloc(1, sizeof *s);
  if (!s) {
    dg_msg(msg, msg_size, "jpeg: out of memory");
    return -1;
  }
  err_init(&s->err);
  s->cinfo.err = &s->err.mgr;
  s->dest.pub.init_destination = dest_init;
  s->dest.pub.empty_output_buffer = dest_empty;
  s->dest.pub.term_destination = dest_term;
  s->row = malloc((size_t)w * 3);
  int rc = -1;
  if (!s->row || dest_grow(&s->dest, 4096 + (size_t)w * h / 2) != 0) {
    dg_msg(msg, msg_size, "jpeg: out of memory");
  } else if (encode_run(s, img, w, h, quality) != 0) {
    dg_msg(msg, msg_size, "jpeg: encoding failed: %s", s->err.text);
  } else {
    *data = s->dest.data;
    *size = s->dest.size;
    s->dest.data = NULL;
    rc = 0;
  }
  if (s->created) jpeg_destroy_compress(&s->cinfo);
  free(s->dest.data);
  free(s->row);
  free(s);
  return rc;
}

/* --------------------------------------------------------------- decode */

typedef struct dec_state {
  struct jpeg_decompress_struct cinfo;
  jpeg_err err;
  unsigned char *row;
  int created;
} dec_state;

static int decode_run(dec_state *s, const unsigned char *data, size_t size, float *img, int w,
                      int h) {
  if (setjmp(s->err.jump)) return -1;
  s->created = 1;
  jpeg_create_decompress(&s->cinfo);
  jpeg_mem_src(&s->cinfo, data, (unsigned long)size);
  jpeg_read_header(&s->cinfo, TRUE);
  s->cinfo.out_color_space = JCS_RGB;
  s->cinfo.dct_method = JDCT_ISLOW;
  s->cinfo.do_fancy_upsampling = TRUE;
  jpeg_start_decompress(&s->cinfo);
  if ((int)s->cinfo.output_width != w || (int)s->cinfo.output_height != h ||
      s->cinfo.output_components != 3) {
    snprintf(s->err.text, sizeof s->err.text, "decoded %ux%u x%d, expected %dx%d x3",
             s->cinfo.output_width, s->cinfo.output_height, s->cinfo.output_components, w, h);
    return -1;
  }
  s->row = malloc((size_t)w * 3);
  if (!s->row) {
    snprintf(s->err.text, sizeof s->err.text, "out of memory");
    return -1;
  }
  while (s->cinfo.output_scanline < s->cinfo.output_height) {
    float *dst = img + (size_t)s->cinfo.output_scanline * w * 3;
    JSAMPROW rows[1] = {s->row};
    jpeg_read_scanlines(&s->cinfo, rows, 1);
    for (size_t i = 0; i < (size_t)w * 3; i++) dst[i] = s->row[i] / 255.0f;
  }
  jpeg_finish_decompress(&s->cinfo);
  return 0;
}

int dg_jpeg_decode(const unsigned char *data, size_t size, float *img, int w, int h, char *msg,
                   size_t msg_size) {
  dec_state *s = calloc(1, sizeof *s);
  if (!s) {
    dg_msg(msg, msg_size, "jpeg: out of memory");
    return -1;
  }
  err_init(&s->err);
  s->cinfo.err = &s->err.mgr;
  int rc = decode_run(s, data, size, img, w, h);
  if (rc != 0) dg_msg(msg, msg_size, "jpeg: decoding failed: %s", s->err.text);
  if (s->created) jpeg_destroy_decompress(&s->cinfo);
  free(s->row);
  free(s);
  return rc;
}

int dg_jpeg_roundtrip(float *img, int w, int h, int quality, char *msg, size_t msg_size) {
  unsigned char *data;
  size_t size;
  if (dg_jpeg_encode(img, w, h, quality, &data, &size, msg, msg_size) != 0) return -1;
  int rc = dg_jpeg_decode(data, size, img, w, h, msg, msg_size);
  free(data);
  return rc;
}

int dg_jpeg_apply(float *img, int w, int h, float level, uint64_t seed, char *msg, size_t n) {
  (void)seed;
  return dg_jpeg_roundtrip(img, w, h, dg_jpeg_quality(level), msg, n);
}
