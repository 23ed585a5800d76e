/* test_image_io.c - PNG/JPEG/WebP reading and writing (cli/image_io.c) and
 * the progress bar (cli/progress.c).
 *
 * Fixtures that image_io cannot write itself (palette, tRNS, interlaced
 * PNG, CMYK and progressive JPEG, oversized headers) are made here with
 * libpng/libjpeg directly or byte by byte.  Files go to a fresh directory
 * under $MASKDCPT_TEST_TMP (or /tmp), removed at the end.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkdtemp, setrlimit under -std=c11 */
#endif

#include "image_io.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

#include "progress.h"

static int g_passed, g_failed;
static char g_dir[2048];

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (cond) {                                                                                    \
      g_passed++;                                                                                  \
    } else {                                                                                       \
      g_failed++;                                                                                  \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                              \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fputc('\n', stderr);                                                                         \
    }                                                                                              \
  } while (0)

/* ------------------------------------------------------------ helpers */

static const char *tpath(const char *name)
{
  static char buf[8][4200];
  static int next;
  char *p = buf[next++ % 8];
  snprintf(p, sizeof buf[0], "%s/%s", g_dir, name);
  return p;
}

static int file_exists(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0;
}

static unsigned char *file_load(const char *path, size_t *len)
{
  FILE *fp = fopen(path, "rb");
  if (!fp)
    return NULL;
  fseek(fp, 0, SEEK_END);
  long n = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
  if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  fclose(fp);
  *len = (size_t)n;
  return buf;
}

static int file_store(const char *path, const void *data, size_t len)
{
  FILE *fp = fopen(path, "wb");
  if (!fp)
    return -1;
  size_t w = len ? fwrite(data, 1, len, fp) : 0;
  return (fclose(fp) == 0 && w == len) ? 0 : -1;
}

/* Entries of the test directory that look like leftover temporary files. */
static int temp_leftovers(void)
{
  DIR *d = opendir(g_dir);
  if (!d)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strstr(e->d_name, ".tmp."))
      n++;
  closedir(d);
  return n;
}

static void dir_clean(const char *dir)
{
  DIR *d = opendir(dir);
  if (!d)
    return;
  struct dirent *e;
  char path[8400];
  while ((e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
      dir_clean(path);
      rmdir(path);
    } else {
      unlink(path);
    }
  }
  closedir(d);
}

/* A deterministic image whose samples are exact multiples of 1/levels. */
static img_image pattern(int w, int h, int c, unsigned levels, unsigned seed)
{
  img_image img;
  if (img_alloc(&img, w, h, c, NULL, 0) != 0) {
    fprintf(stderr, "img_alloc failed\n");
    exit(2);
  }
  uint32_t s = seed * 2654435761u + 1u;
  for (size_t i = 0; i < (size_t)w * h * c; i++) {
    s = s * 1664525u + 1013904223u;
    img.data[i] = (float)((s >> 8) % (levels + 1)) / (float)levels;
  }
  img.bit_depth = levels > 255 ? 16 : 8;
  return img;
}

/* A smooth image, what lossy codecs are meant for. */
static img_image smooth(int w, int h, int c)
{
  img_image img;
  if (img_alloc(&img, w, h, c, NULL, 0) != 0)
    exit(2);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int k = 0; k < c; k++)
        img.data[((size_t)y * w + x) * c + k] =
            0.5f + 0.4f * sinf(0.07f * (float)x * (float)(k + 1) + 0.05f * (float)y);
  return img;
}

static int images_equal(const img_image *a, const img_image *b)
{
  if (a->width != b->width || a->height != b->height || a->channels != b->channels)
    return 0;
  size_t n = (size_t)a->width * a->height * a->channels;
  for (size_t i = 0; i < n; i++)
    if (a->data[i] != b->data[i])
      return 0;
  return 1;
}

static void image_diff(const img_image *a, const img_image *b, double *max_abs, double *mean_abs)
{
  size_t n = (size_t)a->width * a->height * a->channels;
  double mx = 0, sum = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a->data[i] - (double)b->data[i]);
    mx = d > mx ? d : mx;
    sum += d;
  }
  *max_abs = mx;
  *mean_abs = n ? sum / (double)n : 0;
}

/* ---------------------------------------------- fixtures via libpng/libjpeg */

struct png_fixture {
  int width, height, bit_depth, color_type, interlace;
  const png_color *palette;
  int num_palette;
  const png_byte *trns; /* palette alpha */
  int num_trns;
  const png_color_16 *trns_color; /* grey/RGB transparent colour */
  const unsigned char *pixels;    /* packed rows as libpng wants them */
};

static int png_fixture_write(const char *path, const struct png_fixture *f)
{
  FILE *fp = fopen(path, "wb");
  if (!fp)
    return -1;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  png_bytep *rows = malloc(sizeof(png_bytep) * (size_t)f->height);
  int channels = f->color_type == PNG_COLOR_TYPE_PALETTE ? 1
                 : f->color_type == PNG_COLOR_TYPE_GRAY ? 1
                 : f->color_type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
                 : f->color_type == PNG_COLOR_TYPE_RGB ? 3
                                                     : 4;
  size_t rowbytes = ((size_t)f->width * channels * f->bit_depth + 7) / 8;
  for (int y = 0; y < f->height; y++)
    rows[y] = (png_bytep)f->pixels + rowbytes * y;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    free(rows);
    fclose(fp);
    return -1;
  }
  png_init_io(png, fp);
  png_set_IHDR(png, info, f->width, f->height, f->bit_depth, f->color_type, f->interlace,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (f->palette)
    png_set_PLTE(png, info, f->palette, f->num_palette);
  if (f->trns || f->trns_color)
    png_set_tRNS(png, info, f->trns, f->num_trns, f->trns_color);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  free(rows);
  return fclose(fp) == 0 ? 0 : -1;
}

/* colorspace: JCS_CMYK or JCS_YCCK (input CMYK), or JCS_RGB/JCS_GRAYSCALE;
 * progressive: simple progression. */
static int jpeg_fixture_write(const char *path, int w, int h, int comps, J_COLOR_SPACE in_space,
                              J_COLOR_SPACE file_space, int progressive, const unsigned char *px)
{
  FILE *fp = fopen(path, "wb");
  if (!fp)
    return -1;
  struct jpeg_compress_struct c;
  struct jpeg_error_mgr jerr;
  c.err = jpeg_std_error(&jerr); /* fixtures are valid: the default exit is fine */
  jpeg_create_compress(&c);
  jpeg_stdio_dest(&c, fp);
  c.image_width = w;
  c.image_height = h;
  c.input_components = comps;
  c.in_color_space = in_space;
  jpeg_set_defaults(&c);
  jpeg_set_colorspace(&c, file_space);
  jpeg_set_quality(&c, 95, TRUE);
  if (progressive)
    jpeg_simple_progression(&c);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = (JSAMPROW)px + (size_t)c.next_scanline * w * comps;
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  return fclose(fp) == 0 ? 0 : -1;
}

static uint32_t crc32_calc(const unsigned char *p, size_t n)
{
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    crc ^= p[i];
    for (int k = 0; k < 8; k++)
      crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return crc ^ 0xffffffffu;
}

static void be32_put(unsigned char *p, uint32_t v)
{
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

/* Signature, IHDR for width x height 8-bit grey, an empty IDAT, IEND: enough
 * for the header to be read and the size refused. */
static int png_header_write(const char *path, uint32_t width, uint32_t height)
{
  unsigned char b[8 + 25 + 12 + 12];
  static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  memcpy(b, sig, 8);
  unsigned char *c = b + 8;
  be32_put(c, 13);
  memcpy(c + 4, "IHDR", 4);
  be32_put(c + 8, width);
  be32_put(c + 12, height);
  c[16] = 8; /* depth */
  c[17] = 0; /* grey */
  c[18] = c[19] = c[20] = 0;
  be32_put(c + 21, crc32_calc(c + 4, 17));
  c += 25;
  be32_put(c, 0);
  memcpy(c + 4, "IDAT", 4);
  be32_put(c + 8, crc32_calc(c + 4, 4));
  c += 12;
  be32_put(c, 0);
  memcpy(c + 4, "IEND", 4);
  be32_put(c + 8, crc32_calc(c + 4, 4));
  return file_store(path, b, sizeof b);
}

/* --------------------------------------------------------------- tests */

static void test_round_trip_exact(const char *name, int w, int h, int c, int depth)
{
  img_image src = pattern(w, h, c, depth == 16 ? 65535u : 255u, (unsigned)(w * 31 + h * 7 + c));
  img_image back;
  char msg[512] = "";
  const char *path = tpath(name);
  int rc = img_write(path, &src, depth, 0, msg, sizeof msg);
  CHECK(rc == 0, "%s: write: %s", name, msg);
  rc = img_read(path, &back, msg, sizeof msg);
  CHECK(rc == 0, "%s: read: %s", name, msg);
  if (rc == 0) {
    CHECK(images_equal(&src, &back), "%s: %dx%dx%d %d-bit differs after round trip", name, w, h,
          c, depth);
    CHECK(back.bit_depth == depth, "%s: bit_depth %d, expected %d", name, back.bit_depth, depth);
  }
  img_free(&back);
  img_free(&src);
}

static void test_png_round_trips(void)
{
  static const int sizes[][2] = {{1, 1}, {7, 5}, {1, 9}, {13, 1}, {64, 48}};
  char name[64];
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
    for (int c = 1; c <= 4; c++)
      for (int depth = 8; depth <= 16; depth += 8) {
        snprintf(name, sizeof name, "rt_%dx%d_%d_%d.png", sizes[s][0], sizes[s][1], c, depth);
        test_round_trip_exact(name, sizes[s][0], sizes[s][1], c, depth);
      }

  /* bit_depth 0 follows the source depth. */
  img_image src = pattern(5, 4, 3, 65535u, 3), back;
  char msg[512];
  CHECK(img_write(tpath("auto16.png"), &src, 0, 0, msg, sizeof msg) == 0, "%s", msg);
  CHECK(img_read(tpath("auto16.png"), &back, msg, sizeof msg) == 0, "%s", msg);
  CHECK(back.bit_depth == 16 && images_equal(&src, &back), "automatic depth lost 16-bit data");
  CHECK(back.format == IMG_FORMAT_PNG, "format %d", back.format);
  img_free(&back);
  img_free(&src);
}

static void test_png_palette_trns(void)
{
  char msg[512];
  img_image img;
  static const png_color pal[4] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 20, 30}};
  static const png_byte alpha[3] = {0, 128, 255};
  /* 3x2, 8-bit indices. */
  static const unsigned char idx[6] = {0, 1, 2, 3, 2, 1};
  struct png_fixture f = {.width = 3, .height = 2, .bit_depth = 8,
                          .color_type = PNG_COLOR_TYPE_PALETTE, .palette = pal,
                          .num_palette = 4, .pixels = idx};
  CHECK(png_fixture_write(tpath("pal.png"), &f) == 0, "fixture");
  CHECK(img_read(tpath("pal.png"), &img, msg, sizeof msg) == 0, "%s", msg);
  if (img.data) {
    CHECK(img.channels == 3 && img.bit_depth == 8, "palette: %d channels", img.channels);
    int ok = 1;
    for (int i = 0; i < 6; i++)
      ok &= img.data[i * 3] == pal[idx[i]].red / 255.0f &&
            img.data[i * 3 + 1] == pal[idx[i]].green / 255.0f &&
            img.data[i * 3 + 2] == pal[idx[i]].blue / 255.0f;
    CHECK(ok, "palette colours wrong");
  }
  img_free(&img);

  /* Palette with tRNS: entries past num_trns are opaque. */
  f.trns = alpha;
  f.num_trns = 3;
  CHECK(png_fixture_write(tpath("pal_trns.png"), &f) == 0, "fixture");
  CHECK(img_read(tpath("pal_trns.png"), &img, msg, sizeof msg) == 0, "%s", msg);
  if (img.data) {
    CHECK(img.channels == 4, "palette+tRNS: %d channels", img.channels);
    int ok = 1;
    for (int i = 0; i < 6; i++) {
      float a = idx[i] < 3 ? alpha[idx[i]] / 255.0f : 1.0f;
      ok &= img.data[i * 4] == pal[idx[i]].red / 255.0f && img.data[i * 4 + 3] == a;
    }
    CHECK(ok, "palette alpha wrong");
  }
  img_free(&img);

  /* 2-bit palette: packed indices expanded too. */
  static const unsigned char idx2[2] = {0x1b, 0xe4}; /* 0,1,2,3 / 3,2,1,0 */
  struct png_fixture f2 = {.width = 4, .height = 2, .bit_depth = 2,
                           .color_type = PNG_COLOR_TYPE_PALETTE, .palette = pal,
                           .num_palette = 4, .pixels = idx2};
  CHECK(png_fixture_write(tpath("pal2.png"), &f2) == 0, "fixture");
  CHECK(img_read(tpath("pal2.png"), &img, msg, sizeof msg) == 0, "%s", msg);
  if (img.data)
    CHECK(img.channels == 3 && img.data[3 * 3 + 2] == 30 / 255.0f &&
              img.data[4 * 3 + 0] == 10 / 255.0f && img.data[7 * 3] == 1.0f,
          "2-bit palette wrong");
  img_free(&img);

  /* RGB with a transparent colour. */
  static const unsigned char rgb[2 * 2 * 3] = {1, 2, 3, 4, 5, 6, 1, 2, 3, 7, 8, 9};
  png_color_16 key = {.red = 1, .green = 2, .blue = 3};
  struct png_fixture f3 = {.width = 2, .height = 2, .bit_depth = 8,
                           .color_type = PNG_COLOR_TYPE_RGB, .trns_color = &key, .pixels = rgb};
  CHECK(png_fixture_write(tpath("rgb_trns.png"), &f3) == 0, "fixture");
  CHECK(img_read(tpath("rgb_trns.png"), &img, msg, sizeof msg) == 0, "%s", msg);
  if (img.data)
    CHECK(img.channels == 4 && img.data[3] == 0.0f && img.data[7] == 1.0f &&
              img.data[11] == 0.0f && img.data[15] == 1.0f && img.data[4] == 4 / 255.0f,
          "RGB tRNS wrong");
  img_free(&img);

  /* 1-bit grey with tRNS: scaled to 0/1 and given alpha. */
  static const unsigned char bits[2] = {0xa0, 0x50}; /* 1010 / 0101 */
  png_color_16 gkey = {.gray = 1};
  struct png_fixture f4 = {.width = 4, .height = 2, .bit_depth = 1,
                           .color_type = PNG_COLOR_TYPE_GRAY, .trns_color = &gkey, .pixels = bits};
  CHECK(png_fixture_write(tpath("grey1_trns.png"), &f4) == 0, "fixture");
  CHECK(img_read(tpath("grey1_trns.png"), &img, msg, sizeof msg) == 0, "%s", msg);
  if (img.data)
    CHECK(img.channels == 2 && img.bit_depth == 8 && img.data[0] == 1.0f && img.data[1] == 0.0f &&
              img.data[2] == 0.0f && img.data[3] == 1.0f,
          "1-bit grey tRNS wrong");
  img_free(&img);

  /* 4-bit grey without tRNS: 0..15 scaled to 0..1. */
  static const unsigned char nib[1] = {0x0f};
  struct png_fixture f5 = {.width = 2, .height = 1, .bit_depth = 4,
                           .color_type = PNG_COLOR_TYPE_GRAY, .pixels = nib};
  CHECK(png_fixture_write(tpath("grey4.png"), &f5) == 0, "fixture");
  CHECK(img_read(tpath("grey4.png"), &img, msg, sizeof msg) == 0, "%s", msg);
  if (img.data)
    CHECK(img.channels == 1 && img.data[0] == 0.0f && img.data[1] == 1.0f, "4-bit grey wrong");
  img_free(&img);

  /* 16-bit grey with tRNS keeps 16 bits and gets a 16-bit alpha. */
  static const unsigned char g16[2 * 2] = {0x12, 0x34, 0xab, 0xcd};
  png_color_16 k16 = {.gray = 0x1234};
  struct png_fixture f6 = {.width = 2, .height = 1, .bit_depth = 16,
                           .color_type = PNG_COLOR_TYPE_GRAY, .trns_color = &k16, .pixels = g16};
  CHECK(png_fixture_write(tpath("grey16_trns.png"), &f6) == 0, "fixture");
  CHECK(img_read(tpath("grey16_trns.png"), &img, msg, sizeof msg) == 0, "%s", msg);
  if (img.data)
    CHECK(img.channels == 2 && img.bit_depth == 16 && img.data[0] == 0x1234 / 65535.0f &&
              img.data[1] == 0.0f && img.data[2] == 0xabcd / 65535.0f && img.data[3] == 1.0f,
          "16-bit grey tRNS wrong");
  img_free(&img);
}

static void test_png_interlaced(void)
{
  char msg[512];
  const int w = 11, h = 9;
  unsigned char px[11 * 9 * 4 * 2];
  for (size_t i = 0; i < sizeof px; i++)
    px[i] = (unsigned char)(i * 37 + 11);
  for (int depth = 8; depth <= 16; depth += 8) {
    struct png_fixture f = {.width = w, .height = h, .bit_depth = depth,
                            .color_type = PNG_COLOR_TYPE_RGB_ALPHA,
                            .interlace = PNG_INTERLACE_ADAM7, .pixels = px};
    CHECK(png_fixture_write(tpath("adam7.png"), &f) == 0, "fixture");
    img_image img;
    CHECK(img_read(tpath("adam7.png"), &img, msg, sizeof msg) == 0, "%s", msg);
    if (img.data) {
      int ok = img.channels == 4 && img.bit_depth == depth;
      for (int i = 0; i < w * h * 4 && ok; i++) {
        float e = depth == 8 ? px[i] / 255.0f : (px[2 * i] << 8 | px[2 * i + 1]) / 65535.0f;
        ok = img.data[i] == e;
      }
      CHECK(ok, "interlaced %d-bit PNG decoded wrong", depth);
    }
    img_free(&img);
  }
}

static void test_jpeg(void)
{
  char msg[512];
  for (int c = 1; c <= 3; c += 2) {
    static const int sizes[][2] = {{1, 1}, {7, 5}, {17, 3}, {64, 48}};
    for (size_t s = 0; s < 4; s++) {
      int w = sizes[s][0], h = sizes[s][1];
      img_image src = smooth(w, h, c), back;
      CHECK(img_write(tpath("q95.jpg"), &src, 0, 95, msg, sizeof msg) == 0, "%s", msg);
      CHECK(img_read(tpath("q95.jpg"), &back, msg, sizeof msg) == 0, "%s", msg);
      if (back.data) {
        double mx, mean;
        image_diff(&src, &back, &mx, &mean);
        CHECK(back.channels == c && back.width == w && back.height == h &&
                  back.format == IMG_FORMAT_JPEG && back.bit_depth == 8,
              "JPEG %dx%dx%d read back as %dx%dx%d", w, h, c, back.width, back.height,
              back.channels);
        CHECK(mx < 0.04 && mean < 0.01, "JPEG q95 %dx%dx%d: max %.4f mean %.4f", w, h, c, mx,
              mean);
      }
      img_free(&back);
      img_free(&src);
    }
  }

  /* Alpha is refused before anything is created; dropping it works. */
  img_image rgba = smooth(8, 8, 4), back;
  msg[0] = '\0';
  CHECK(img_write(tpath("alpha.jpg"), &rgba, 0, 0, msg, sizeof msg) == -1, "JPEG took alpha");
  CHECK(strstr(msg, "alpha") && strstr(msg, "alpha.jpg"), "message: %s", msg);
  CHECK(!file_exists(tpath("alpha.jpg")) && temp_leftovers() == 0, "file left after refusal");
  img_drop_alpha(&rgba);
  CHECK(rgba.channels == 3, "drop_alpha: %d channels", rgba.channels);
  CHECK(img_write(tpath("alpha.jpg"), &rgba, 0, 0, msg, sizeof msg) == 0, "%s", msg);
  img_free(&rgba);

  /* 16-bit JPEG asked explicitly is refused; automatic depth is 8. */
  img_image deep = pattern(4, 4, 3, 65535u, 9);
  CHECK(img_write(tpath("deep.jpg"), &deep, 16, 0, msg, sizeof msg) == -1, "16-bit JPEG");
  CHECK(img_write(tpath("deep.jpg"), &deep, 0, 0, msg, sizeof msg) == 0, "%s", msg);
  img_free(&deep);

  /* CMYK (Adobe, inverted) and YCCK are converted to RGB. */
  enum { W = 16, H = 16 };
  static unsigned char cmyk[W * H * 4];
  for (int i = 0; i < W * H; i++) {
    cmyk[i * 4] = 200;
    cmyk[i * 4 + 1] = 100;
    cmyk[i * 4 + 2] = 50;
    cmyk[i * 4 + 3] = 255;
  }
  const J_COLOR_SPACE spaces[2] = {JCS_CMYK, JCS_YCCK};
  for (int k = 0; k < 2; k++) {
    CHECK(jpeg_fixture_write(tpath("cmyk.jpg"), W, H, 4, JCS_CMYK, spaces[k], 0, cmyk) == 0,
          "fixture");
    CHECK(img_read(tpath("cmyk.jpg"), &back, msg, sizeof msg) == 0, "%s", msg);
    if (back.data)
      CHECK(back.channels == 3 && fabsf(back.data[0] - 200 / 255.0f) < 0.02f &&
                fabsf(back.data[1] - 100 / 255.0f) < 0.02f &&
                fabsf(back.data[2] - 50 / 255.0f) < 0.02f,
            "%s: got %.3f %.3f %.3f", k ? "YCCK" : "CMYK", back.data[0], back.data[1],
            back.data[2]);
    img_free(&back);
  }

  /* Junk just before EOI (common from cameras) or after it is harmless. */
  img_image sm = smooth(16, 16, 3);
  CHECK(img_write(tpath("eoi.jpg"), &sm, 0, 0, msg, sizeof msg) == 0, "%s", msg);
  img_free(&sm);
  size_t jl;
  unsigned char *jb = file_load(tpath("eoi.jpg"), &jl);
  if (jb && jl > 4 && jb[jl - 2] == 0xff && jb[jl - 1] == 0xd9) {
    unsigned char *mod = malloc(jl + 3);
    memcpy(mod, jb, jl - 2);
    memcpy(mod + jl - 2, "\x01\x02\x03\xff\xd9", 5);
    CHECK(file_store(tpath("eoi_junk.jpg"), mod, jl + 3) == 0, "store");
    CHECK(img_read(tpath("eoi_junk.jpg"), &back, msg, sizeof msg) == 0, "junk before EOI: %s",
          msg);
    img_free(&back);
    memcpy(mod, jb, jl);
    memcpy(mod + jl, "abc", 3);
    CHECK(file_store(tpath("eoi_tail.jpg"), mod, jl + 3) == 0, "store");
    CHECK(img_read(tpath("eoi_tail.jpg"), &back, msg, sizeof msg) == 0, "junk after EOI: %s",
          msg);
    img_free(&back);
    free(mod);
  } else {
    CHECK(0, "eoi.jpg does not end with EOI");
  }
  free(jb);

  /* Progressive JPEG reads like a baseline one. */
  static unsigned char rgb[W * H * 3];
  for (int i = 0; i < W * H * 3; i++)
    rgb[i] = (unsigned char)(128 + (i % 48));
  CHECK(jpeg_fixture_write(tpath("prog.jpg"), W, H, 3, JCS_RGB, JCS_YCbCr, 1, rgb) == 0,
        "fixture");
  CHECK(img_read(tpath("prog.jpg"), &back, msg, sizeof msg) == 0, "%s", msg);
  CHECK(back.data && back.channels == 3 && back.width == W, "progressive JPEG");
  img_free(&back);
}

static void test_webp(void)
{
  char msg[512];
  static const int sizes[][2] = {{1, 1}, {7, 5}, {1, 9}, {13, 1}, {64, 48}};
  for (size_t s = 0; s < 5; s++) {
    int w = sizes[s][0], h = sizes[s][1];
    /* Lossless is exact for RGB and RGBA, transparent pixels included. */
    for (int c = 3; c <= 4; c++) {
      img_image src = pattern(w, h, c, 255u, (unsigned)(s * 5 + c)), back;
      CHECK(img_write(tpath("ll.webp"), &src, 0, 100, msg, sizeof msg) == 0, "%s", msg);
      CHECK(img_read(tpath("ll.webp"), &back, msg, sizeof msg) == 0, "%s", msg);
      CHECK(back.data && images_equal(&src, &back) && back.format == IMG_FORMAT_WEBP,
            "lossless WebP %dx%dx%d not exact", w, h, c);
      img_free(&back);
      img_free(&src);
    }
    /* Grey (and grey+alpha) is written as RGB(A). */
    for (int c = 1; c <= 2; c++) {
      img_image src = pattern(w, h, c, 255u, (unsigned)(s + 40 * c)), back, expect;
      CHECK(img_write(tpath("grey.webp"), &src, 0, 100, msg, sizeof msg) == 0, "%s", msg);
      CHECK(img_read(tpath("grey.webp"), &back, msg, sizeof msg) == 0, "%s", msg);
      CHECK(img_convert(&src, c + 2, &expect, msg, sizeof msg) == 0, "%s", msg);
      CHECK(back.data && images_equal(&expect, &back), "grey WebP %dx%dx%d", w, h, c);
      img_free(&expect);
      img_free(&back);
      img_free(&src);
    }
    /* Lossy within a tolerance on a smooth image. */
    for (int c = 3; c <= 4; c++) {
      img_image src = smooth(w, h, c), back;
      CHECK(img_write(tpath("lossy.webp"), &src, 0, 95, msg, sizeof msg) == 0, "%s", msg);
      CHECK(img_read(tpath("lossy.webp"), &back, msg, sizeof msg) == 0, "%s", msg);
      if (back.data) {
        double mx, mean;
        image_diff(&src, &back, &mx, &mean);
        CHECK(back.channels == c && mx < 0.08 && mean < 0.015,
              "lossy WebP %dx%dx%d: %d channels, max %.4f mean %.4f", w, h, c, back.channels,
              mx, mean);
      }
      img_free(&back);
      img_free(&src);
    }
  }

  /* An animated WebP (VP8X with the animation flag, ANIM chunk) is refused. */
  unsigned char anim[12 + 18 + 14];
  memcpy(anim, "RIFF", 4);
  anim[4] = sizeof anim - 8;
  anim[5] = anim[6] = anim[7] = 0;
  memcpy(anim + 8, "WEBP", 4);
  unsigned char *p = anim + 12;
  memcpy(p, "VP8X", 4);
  p[4] = 10;
  p[5] = p[6] = p[7] = 0;
  memset(p + 8, 0, 10);
  p[8] = 0x02;                 /* animation */
  p[12] = 15;                  /* canvas width - 1 */
  p[15] = 15;                  /* canvas height - 1 */
  p += 18;
  memcpy(p, "ANIM", 4);
  p[4] = 6;
  p[5] = p[6] = p[7] = 0;
  memset(p + 8, 0, 6);
  CHECK(file_store(tpath("anim.webp"), anim, sizeof anim) == 0, "fixture");
  img_image img;
  msg[0] = '\0';
  CHECK(img_read(tpath("anim.webp"), &img, msg, sizeof msg) == -1 && img.data == NULL,
        "animated WebP accepted");
  CHECK(strstr(msg, "animated") != NULL, "message: %s", msg);

  /* Too large for WebP: refused before any file exists. */
  img_image wide;
  CHECK(img_alloc(&wide, 16384, 1, 3, msg, sizeof msg) == 0, "%s", msg);
  CHECK(img_write(tpath("wide.webp"), &wide, 0, 0, msg, sizeof msg) == -1 &&
            !file_exists(tpath("wide.webp")),
        "16384-wide WebP written");
  img_free(&wide);
}

/* Every prefix of a valid file is an error with a message, never a crash
 * or an image. */
static void test_truncated(const char *name, const img_image *src, int quality)
{
  char msg[512];
  const char *full = tpath(name);
  CHECK(img_write(full, src, 0, quality, msg, sizeof msg) == 0, "%s", msg);
  size_t len = 0;
  unsigned char *bytes = file_load(full, &len);
  CHECK(bytes && len > 64, "%s: %zu bytes", name, len);
  if (!bytes || len <= 64) {
    free(bytes);
    return;
  }
  size_t cuts[] = {1, 2, 3, 5, 8, 11, 12, 16, 20, 30, 33, 40, 50, len / 3, len / 2,
                   2 * len / 3, len - 20, len - 12, len - 4, len - 2, len - 1};
  char cut_name[128];
  snprintf(cut_name, sizeof cut_name, "cut_%s", name);
  const char *cut_path = tpath(cut_name);
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    CHECK(file_store(cut_path, bytes, cuts[i]) == 0, "store");
    img_image img;
    msg[0] = '\0';
    int rc = img_read(cut_path, &img, msg, sizeof msg);
    CHECK(rc == -1 && img.data == NULL && img.width == 0, "%s cut at %zu/%zu: read succeeded",
          name, cuts[i], len);
    CHECK(strstr(msg, cut_path) && strstr(msg, "truncated"), "%s cut at %zu/%zu: message '%s'",
          name, cuts[i], len, msg);
    img_free(&img);
  }
  /* The intact file still reads. */
  img_image img;
  CHECK(img_read(full, &img, msg, sizeof msg) == 0, "%s", msg);
  img_free(&img);
  free(bytes);
}

static void test_truncations(void)
{
  img_image rgb = smooth(40, 30, 3), rgba = pattern(40, 30, 4, 255u, 5),
            g16 = pattern(40, 30, 1, 65535u, 6);
  test_truncated("t8.png", &rgba, 0);
  test_truncated("t16.png", &g16, 0);
  test_truncated("t.jpg", &rgb, 90);
  test_truncated("tl.webp", &rgba, 100);
  test_truncated("ty.webp", &rgb, 80);
  img_free(&rgb);
  img_free(&rgba);
  img_free(&g16);

  /* Progressive JPEG cut mid-way: libjpeg only warns; must be an error. */
  enum { W = 32, H = 32 };
  static unsigned char px[W * H * 3];
  for (int i = 0; i < W * H * 3; i++)
    px[i] = (unsigned char)(i * 7);
  CHECK(jpeg_fixture_write(tpath("p.jpg"), W, H, 3, JCS_RGB, JCS_YCbCr, 1, px) == 0, "fixture");
  size_t len;
  unsigned char *bytes = file_load(tpath("p.jpg"), &len);
  char msg[512];
  for (int k = 1; k <= 3 && bytes; k++) {
    CHECK(file_store(tpath("pcut.jpg"), bytes, len * k / 4) == 0, "store");
    img_image img;
    CHECK(img_read(tpath("pcut.jpg"), &img, msg, sizeof msg) == -1 && !img.data,
          "progressive JPEG cut at %zu read", len * k / 4);
    CHECK(strstr(msg, "truncated") != NULL, "message: %s", msg);
  }
  free(bytes);
}

static void test_bad_inputs(void)
{
  char msg[512];
  img_image img;

  /* Missing file: the system's message. */
  const char *missing = tpath("missing.png");
  msg[0] = '\0';
  CHECK(img_read(missing, &img, msg, sizeof msg) == -1 && !img.data, "missing file read");
  CHECK(strstr(msg, missing) && strstr(msg, "No such file or directory"), "message: %s", msg);

  /* Empty file. */
  CHECK(file_store(tpath("empty.png"), "", 0) == 0, "store");
  CHECK(img_read(tpath("empty.png"), &img, msg, sizeof msg) == -1 && !img.data, "empty read");
  CHECK(strstr(msg, "empty") != NULL, "message: %s", msg);

  /* Garbage, whatever the extension says. */
  unsigned char junk[300];
  for (size_t i = 0; i < sizeof junk; i++)
    junk[i] = (unsigned char)(i * 73 + 5);
  CHECK(file_store(tpath("x.png"), junk, sizeof junk) == 0, "store");
  CHECK(img_read(tpath("x.png"), &img, msg, sizeof msg) == -1 && !img.data, "garbage read");
  char expect[600];
  snprintf(expect, sizeof expect, "%s: not a PNG, JPEG or WebP file", tpath("x.png"));
  CHECK(strcmp(msg, expect) == 0, "message: %s", msg);

  /* Correct signatures followed by garbage. */
  static const unsigned char sigs[3][12] = {
      {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13},
      {0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0, 1},
      {'R', 'I', 'F', 'F', 0x20, 1, 0, 0, 'W', 'E', 'B', 'P'}};
  for (int k = 0; k < 3; k++) {
    memcpy(junk, sigs[k], 12);
    CHECK(file_store(tpath("junk.img"), junk, sizeof junk) == 0, "store");
    msg[0] = '\0';
    CHECK(img_read(tpath("junk.img"), &img, msg, sizeof msg) == -1 && !img.data,
          "signature %d + garbage read", k);
    CHECK(strstr(msg, "junk.img") != NULL, "message: %s", msg);
  }

  /* Format by content, not by name: a PNG called .jpg. */
  img_image src = pattern(3, 3, 3, 255u, 1);
  CHECK(img_write_format(tpath("really_png.jpg"), &src, IMG_FORMAT_PNG, 8, 0, msg, sizeof msg) ==
            0,
        "%s", msg);
  CHECK(img_read(tpath("really_png.jpg"), &img, msg, sizeof msg) == 0 &&
            img.format == IMG_FORMAT_PNG && images_equal(&src, &img),
        "PNG named .jpg: %s", msg);
  img_free(&img);
  img_free(&src);

  /* A directory. */
  CHECK(img_read(g_dir, &img, msg, sizeof msg) == -1 && !img.data, "directory read");

  /* Oversized headers are refused before any allocation. */
  CHECK(png_header_write(tpath("wide.png"), (1u << 20) + 1u, 1) == 0, "fixture");
  CHECK(img_read(tpath("wide.png"), &img, msg, sizeof msg) == -1 && !img.data, "wide PNG read");
  CHECK(strstr(msg, "too large") != NULL, "message: %s", msg);
  CHECK(png_header_write(tpath("big.png"), 1u << 20, 1025) == 0, "fixture");
  CHECK(img_read(tpath("big.png"), &img, msg, sizeof msg) == -1 && !img.data, "big PNG read");
  CHECK(strstr(msg, "too large") != NULL, "message: %s", msg);
  CHECK(png_header_write(tpath("ok_hdr.png"), 4, 4) == 0, "fixture");
  CHECK(img_read(tpath("ok_hdr.png"), &img, msg, sizeof msg) == -1 && !img.data,
        "PNG without data read");
  CHECK(strstr(msg, "too large") == NULL, "message: %s", msg);

  /* A JPEG whose SOF claims 65000x65000. */
  img_image small = smooth(8, 8, 3);
  CHECK(img_write(tpath("sof.jpg"), &small, 0, 0, msg, sizeof msg) == 0, "%s", msg);
  img_free(&small);
  size_t len;
  unsigned char *b = file_load(tpath("sof.jpg"), &len);
  int patched = 0;
  for (size_t i = 2; b && i + 9 < len; i++)
    if (b[i] == 0xff && (b[i + 1] == 0xc0 || b[i + 1] == 0xc1)) {
      b[i + 5] = b[i + 7] = 0xfd;
      b[i + 6] = b[i + 8] = 0xe8; /* 65000 */
      patched = 1;
      break;
    }
  CHECK(patched && file_store(tpath("sof.jpg"), b, len) == 0, "patch SOF");
  free(b);
  CHECK(img_read(tpath("sof.jpg"), &img, msg, sizeof msg) == -1 && !img.data, "huge JPEG read");
  CHECK(strstr(msg, "too large") != NULL, "message: %s", msg);
}

static void test_write_failures(void)
{
  char msg[512];
  img_image src = pattern(64, 64, 3, 255u, 77);

  /* Into a directory that does not exist: fails, creates nothing. */
  const char *nodir = tpath("no_such_dir/out.png");
  msg[0] = '\0';
  CHECK(img_write(nodir, &src, 0, 0, msg, sizeof msg) == -1, "write into missing dir");
  CHECK(strstr(msg, "no_such_dir/out.png") != NULL, "message: %s", msg);
  CHECK(!file_exists(tpath("no_such_dir")) && temp_leftovers() == 0, "something was created");

  /* Unknown extension. */
  CHECK(img_write(tpath("out.tif"), &src, 0, 0, msg, sizeof msg) == -1 &&
            !file_exists(tpath("out.tif")),
        "wrote .tif");

  /* Onto a directory. */
  CHECK(mkdir(tpath("adir.png"), 0700) == 0, "mkdir");
  CHECK(img_write(tpath("adir.png"), &src, 0, 0, msg, sizeof msg) == -1, "wrote over a dir");
  CHECK(temp_leftovers() == 0, "temp left");

  /* A write that fails half-way (file size limit) leaves the old file
   * intact and no temporary behind, for each encoder. */
  static const char precious[] = "precious contents";
  const char *names[3] = {"keep.png", "keep.jpg", "keep.webp"};
  img_image noisy = pattern(256, 256, 3, 255u, 78);
  struct rlimit old_lim, lim;
  getrlimit(RLIMIT_FSIZE, &old_lim);
  void (*old_xfsz)(int) = signal(SIGXFSZ, SIG_IGN); /* get EFBIG, not a signal */
  for (int k = 0; k < 3; k++) {
    const char *path = tpath(names[k]);
    CHECK(file_store(path, precious, sizeof precious) == 0, "store");
    lim = old_lim;
    lim.rlim_cur = 2000;
    setrlimit(RLIMIT_FSIZE, &lim);
    msg[0] = '\0';
    int rc = img_write(path, &noisy, 0, 100, msg, sizeof msg);
    setrlimit(RLIMIT_FSIZE, &old_lim);
    CHECK(rc == -1, "%s: write past the size limit succeeded", names[k]);
    CHECK(strstr(msg, names[k]) != NULL, "message: %s", msg);
    size_t len = 0;
    unsigned char *b = file_load(path, &len);
    CHECK(b && len == sizeof precious && memcmp(b, precious, len) == 0, "%s clobbered",
          names[k]);
    free(b);
    CHECK(temp_leftovers() == 0, "%s: temporary file left behind", names[k]);
  }
  signal(SIGXFSZ, old_xfsz);
  img_free(&noisy);

  /* A successful write replaces the old file, with ordinary permissions. */
  const char *path = tpath("keep.png");
  CHECK(img_write(path, &src, 0, 0, msg, sizeof msg) == 0, "%s", msg);
  img_image back;
  CHECK(img_read(path, &back, msg, sizeof msg) == 0 && images_equal(&src, &back), "replace");
  img_free(&back);
  struct stat st;
  mode_t mask = umask(0);
  umask(mask);
  CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == (0666 & ~mask), "mode %o",
        (unsigned)(st.st_mode & 0777));

  /* Through a symlink: the target is replaced and the link kept. */
  CHECK(symlink("keep.png", tpath("link.png")) == 0, "symlink");
  img_image other = pattern(5, 5, 1, 255u, 3);
  CHECK(img_write(tpath("link.png"), &other, 0, 0, msg, sizeof msg) == 0, "%s", msg);
  struct stat lst;
  CHECK(lstat(tpath("link.png"), &lst) == 0 && S_ISLNK(lst.st_mode), "link replaced");
  CHECK(img_read(path, &back, msg, sizeof msg) == 0 && images_equal(&other, &back),
        "link target not written");
  img_free(&back);
  img_free(&other);

  /* Bad arguments. */
  CHECK(img_write(tpath("bad.png"), &src, 12, 0, msg, sizeof msg) == -1, "12-bit PNG");
  img_image empty = {0};
  CHECK(img_write(tpath("bad.png"), &empty, 0, 0, msg, sizeof msg) == -1, "empty image");
  CHECK(!file_exists(tpath("bad.png")) && temp_leftovers() == 0, "bad.png created");
  img_free(&src);
}

static void test_quantization(void)
{
  char msg[512];
  img_image img;
  CHECK(img_alloc(&img, 6, 1, 1, msg, sizeof msg) == 0, "%s", msg);
  const float in[6] = {NAN, -1.0f, 2.0f, 0.5f, INFINITY, 0.499f / 255.0f};
  memcpy(img.data, in, sizeof in);
  CHECK(img_write(tpath("q.png"), &img, 8, 0, msg, sizeof msg) == 0, "%s", msg);
  img_image back;
  CHECK(img_read(tpath("q.png"), &back, msg, sizeof msg) == 0, "%s", msg);
  if (back.data)
    CHECK(back.data[0] == 0.0f && back.data[1] == 0.0f && back.data[2] == 1.0f &&
              back.data[3] == 128 / 255.0f && back.data[4] == 1.0f && back.data[5] == 0.0f,
          "clamp/round: %g %g %g %g %g %g", back.data[0], back.data[1], back.data[2],
          back.data[3], back.data[4], back.data[5]);
  img_free(&back);
  CHECK(img_write(tpath("q16.png"), &img, 16, 0, msg, sizeof msg) == 0, "%s", msg);
  CHECK(img_read(tpath("q16.png"), &back, msg, sizeof msg) == 0, "%s", msg);
  if (back.data)
    CHECK(back.data[0] == 0.0f && back.data[2] == 1.0f && back.data[3] == 32768 / 65535.0f,
          "16-bit clamp/round");
  img_free(&back);
  img_free(&img);
}

static void test_helpers(void)
{
  img_format f = IMG_FORMAT_WEBP;
  CHECK(img_format_from_path("a.png", &f) == 0 && f == IMG_FORMAT_PNG, "png");
  CHECK(img_format_from_path("dir.x/A.PNG", &f) == 0 && f == IMG_FORMAT_PNG, "PNG");
  CHECK(img_format_from_path("b.jpg", &f) == 0 && f == IMG_FORMAT_JPEG, "jpg");
  CHECK(img_format_from_path("b.JPeG", &f) == 0 && f == IMG_FORMAT_JPEG, "JPeG");
  CHECK(img_format_from_path("c.d.WebP", &f) == 0 && f == IMG_FORMAT_WEBP, "WebP");
  CHECK(img_format_from_path("noext", &f) == -1, "noext");
  CHECK(img_format_from_path("dir.png/file", &f) == -1, "dir.png/file");
  CHECK(img_format_from_path(".png", &f) == -1, ".png");
  CHECK(img_format_from_path("x.tiff", &f) == -1, "tiff");
  CHECK(img_format_from_path("x.png.bak", &f) == -1, "png.bak");
  CHECK(img_format_from_path("x.", &f) == -1, "x.");
  CHECK(img_format_from_path(NULL, &f) == -1, "NULL");
  CHECK(strcmp(img_format_name(IMG_FORMAT_WEBP), "WebP") == 0, "name");

  char msg[512];
  img_image img;
  CHECK(img_alloc(&img, IMG_MAX_SIDE + 1, 1, 1, msg, sizeof msg) == -1 && !img.data, "wide");
  CHECK(img_alloc(&img, 1 << 15, (1 << 15) + 1, 4, msg, sizeof msg) == -1 && !img.data, "big");
  CHECK(strstr(msg, "too large") != NULL, "message: %s", msg);
  CHECK(img_alloc(&img, 0, 5, 3, msg, sizeof msg) == -1, "zero width");
  CHECK(img_alloc(&img, -3, 5, 3, msg, sizeof msg) == -1, "negative width");
  CHECK(img_alloc(&img, 3, 5, 5, msg, sizeof msg) == -1, "5 channels");
  CHECK(img_alloc(&img, 3, 2, 4, msg, sizeof msg) == 0 && img.data[23] == 0.0f, "alloc");
  for (int i = 0; i < 24; i++)
    img.data[i] = (float)i;
  CHECK(img_has_alpha(&img), "has alpha");
  img_image grey;
  CHECK(img_convert(&img, 2, &grey, msg, sizeof msg) == 0, "%s", msg);
  CHECK(grey.channels == 2 && grey.data[1] == 3.0f && grey.data[11] == 23.0f &&
            fabsf(grey.data[0] - (0.2126f * 0 + 0.7152f * 1 + 0.0722f * 2)) < 1e-5f,
        "RGBA -> grey+alpha");
  img_image rgb;
  CHECK(img_convert(&grey, 3, &rgb, msg, sizeof msg) == 0 && rgb.data[0] == grey.data[0] &&
            rgb.data[2] == grey.data[0] && rgb.data[3] == grey.data[2],
        "grey -> RGB");
  img_free(&rgb);
  img_drop_alpha(&grey);
  CHECK(grey.channels == 1 && grey.data[5] == grey.data[5], "drop grey alpha");
  img_drop_alpha(&img);
  CHECK(img.channels == 3 && img.data[3] == 4.0f && img.data[17] == 22.0f, "drop RGBA alpha");
  img_drop_alpha(&img); /* no-op */
  CHECK(img.channels == 3 && !img_has_alpha(&img), "drop twice");
  img_free(&grey);
  img_free(&img);
  img_free(&img); /* freeing twice is safe */
  CHECK(img.data == NULL && img.width == 0, "free zeroes");
}

static void test_progress(void)
{
  /* Not a terminal here (stderr redirected to a file): nothing drawn, but
   * the callback works and Ctrl-C cancels. */
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  FILE *cap = fopen(tpath("stderr.txt"), "w+");
  CHECK(saved >= 0 && cap, "redirect");
  if (saved < 0 || !cap)
    return;
  dup2(fileno(cap), STDERR_FILENO);

  progress_bar *bar = progress_bar_new("a rather long label that gets shortened");
  CHECK(bar != NULL, "bar");
  CHECK(progress_bar_callback(bar, 0.25) == 1, "callback");
  progress_bar_update(bar, NAN);
  progress_bar_update(bar, 7.0);
  CHECK(progress_bar_callback(NULL, 0.5) == 1, "NULL bar");
  progress_bar_finish(bar);
  progress_bar_finish(NULL);

  CHECK(progress_bar_install_sigint() == 0, "install");
  CHECK(!progress_bar_cancelled(), "cancelled before Ctrl-C");
  raise(SIGINT);
  CHECK(progress_bar_cancelled(), "not cancelled after SIGINT");
  bar = progress_bar_new("run");
  CHECK(progress_bar_callback(bar, 0.5) == 0, "callback did not cancel");
  progress_bar_finish(bar);
  progress_bar_uninstall_sigint();

  fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
  long size = ftell(cap);
  fseek(cap, 0, SEEK_END);
  size = ftell(cap);
  char text[256] = "";
  fseek(cap, 0, SEEK_SET);
  size_t n = fread(text, 1, sizeof text - 1, cap);
  text[n] = '\0';
  fclose(cap);
  /* Only the interrupt note, no bar. */
  CHECK(size > 0 && strstr(text, "Interrupted") && !strchr(text, '['), "stderr: '%s'", text);

  /* The formatting pieces, for a terminal. */
  char buf[32];
  progress_format_duration(buf, sizeof buf, 75.0);
  CHECK(strcmp(buf, "1:15") == 0, "%s", buf);
  progress_format_duration(buf, sizeof buf, 3725.0);
  CHECK(strcmp(buf, "1:02:05") == 0, "%s", buf);
  progress_format_duration(buf, sizeof buf, -1.0);
  CHECK(strcmp(buf, "--:--") == 0, "%s", buf);
}

int main(void)
{
  const char *base = getenv("MASKDCPT_TEST_TMP");
  if (!base || !*base)
    base = "/tmp";
  snprintf(g_dir, sizeof g_dir, "%s/test_image_io.XXXXXX", base);
  if (!mkdtemp(g_dir)) {
    fprintf(stderr, "cannot create a directory under %s: %s\n", base, strerror(errno));
    printf("0 passed, 1 failed\n");
    return 1;
  }

  test_helpers();
  test_png_round_trips();
  test_png_palette_trns();
  test_png_interlaced();
  test_jpeg();
  test_webp();
  test_truncations();
  test_bad_inputs();
  test_write_failures();
  test_quantization();
  test_progress();

  dir_clean(g_dir);
  rmdir(g_dir);
  printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}
