/* validate.c - see validate.h. */
#include "validate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "degrade.h"
#include "font.h"
#include "image_io.h"

#define LABEL_W 130

static double psnr(const float *a, const float *b, size_t n) {
  double se = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - b[i];
    se += d * d;
  }
  return se > 0 ? 10.0 * log10(n / se) : 99.0;
}

/* Copies a crop x crop R'G'B' tile, enlarged `zoom` times, into the grid. */
static void blit(img_image *grid, const float *src, int crop, int zoom, int x0, int y0) {
  for (int y = 0; y < crop * zoom; y++)
    for (int x = 0; x < crop * zoom; x++) {
      const float *s = src + ((size_t)(y / zoom) * crop + x / zoom) * 3;
      float *d = grid->data + ((size_t)(y0 + y) * grid->width + x0 + x) * 3;
      for (int c = 0; c < 3; c++) d[c] = s[c] < 0 ? 0 : s[c] > 1 ? 1 : s[c];
    }
}

int tr_validate(tr_net *t, mdc_backend *be, const tr_dataset *ds, int num_classes,
                const char *png, tr_val_result *out, char *msg, size_t msg_size) {
  memset(out, 0, sizeof *out);
  int crop = t->crop, zoom = crop < 128 ? 2 : 1, cell = crop * zoom;
  size_t px = (size_t)crop * crop * 3;
  float *clean = malloc(px * sizeof(float)), *deg = malloc(px * sizeof(float));
  img_image grid = {0};
  int rc = clean && deg ? 0 : -1;
  if (rc) snprintf(msg, msg_size, "out of memory");
  if (rc == 0 && png)
    rc = img_alloc(&grid, LABEL_W + 3 * (cell + 4), 16 + num_classes * (cell + 4), 3, msg,
                   msg_size);
  const float white[3] = {1, 1, 1};
  if (rc == 0 && png) {
    for (size_t i = 0; i < (size_t)grid.width * grid.height * 3; i++) grid.data[i] = 0.12f;
    static const char *heads[3] = {"degraded", "restored", "clean"};
    for (int c = 0; c < 3; c++) text_draw(&grid, LABEL_W + c * (cell + 4), 4, heads[c], 1, white);
  }
  for (int q = 0; rc == 0 && q < num_classes; q++) {
    tr_sample s = {clean, deg, 0, 0};
    if (tr_dataset_val_sample(ds, q, crop, num_classes, 0.5f, &s, msg, msg_size) != 0) {
      rc = -1;
      break;
    }
    const float *in[1] = {deg};
    tr_net_forward(t, be, 1, in, NULL, NULL, 1);
    const float *restored = tr_net_output(t);
    int best = 0;
    for (int k = 1; k < num_classes; k++)
      if (t->logits[k] > t->logits[best]) best = k;
    out->accuracy += best == s.label;
    if (s.label != 0) { /* PSNR of a clean input is infinite: leave it out */
      out->psnr_in += psnr(deg, clean, px);
      out->psnr_out += psnr(restored, clean, px);
      out->samples++;
    }
    if (png) {
      int y = 16 + q * (cell + 4);
      text_draw(&grid, 4, y + cell / 2 - 4, dg_class_name(s.label), 1, white);
      blit(&grid, deg, crop, zoom, LABEL_W, y);
      blit(&grid, restored, crop, zoom, LABEL_W + cell + 4, y);
      blit(&grid, clean, crop, zoom, LABEL_W + 2 * (cell + 4), y);
    }
  }
  if (rc == 0) {
    out->accuracy /= num_classes;
    if (out->samples) out->psnr_in /= out->samples, out->psnr_out /= out->samples;
    if (png) rc = img_write(png, &grid, 8, 0, msg, msg_size);
  }
  img_free(&grid);
  free(clean);
  free(deg);
  return rc;
}
