/* fuzz_image_read.c - libFuzzer target for img_read() (cli/image_io.c):
 * the PNG, JPEG and WebP readers behind every command that opens a photo.
 *
 * img_read takes a path, so each input is written to one file in a
 * private temporary directory first.  A read that succeeds must give a
 * sane size and channel count and samples in [0,1]; one that fails must
 * leave no data and say why. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "image_io.h"

static char dir[4000], path[4096];

static void remove_input(void) {
  unlink(path);
  rmdir(dir);
}

static void write_input(const uint8_t *data, size_t size) {
  if (!path[0]) {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/fuzz_image_read.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) abort();
    snprintf(path, sizeof path, "%s/input", dir);
    atexit(remove_input);
  }
  FILE *fp = fopen(path, "wb");
  if (!fp || (size && fwrite(data, 1, size, fp) != size) || fclose(fp) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  write_input(data, size);
  img_image img;
  char msg[512] = "";
  if (img_read(path, &img, msg, sizeof msg) != 0) {
    if (img.data || !msg[0]) abort(); /* failures leave nothing and say why */
    return 0;
  }
  if (img.width < 1 || img.height < 1 || img.width > IMG_MAX_SIDE || img.height > IMG_MAX_SIDE ||
      img.channels < 1 || img.channels > 4 || (img.bit_depth != 8 && img.bit_depth != 16))
    abort();
  size_t n = (size_t)img.width * img.height * img.channels;
  for (size_t i = 0; i < n; i++)
    if (!(img.data[i] >= 0.0f && img.data[i] <= 1.0f)) abort();
  img_free(&img);
  return 0;
}
