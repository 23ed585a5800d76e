/* test_tiling.c - the tile grid's blending weights, tiled versus
 * whole-image agreement, the absence of seams, the memory budget, progress
 * and cancel. */
#include "test_util.h"
#include "tiling.h"

/* Weights of all tiles sum to 1, tiles cover the axis, and no tile counts
 * within the margin of an inner edge. */
static void test_axis_weights(void) {
  int sizes[] = {1, 7, 100, 160, 161, 257, 500, 1000, 4097};
  int tiles[] = {160, 192, 256, 512, 1024};
  int margins[] = {32, 48, 192};
  for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
    for (size_t ti = 0; ti < sizeof tiles / sizeof *tiles; ti++)
      for (size_t mi = 0; mi < sizeof margins / sizeof *margins; mi++) {
      int size = sizes[si], margin = margins[mi];
      if (tiles[ti] < mdc_tile_min(margin)) continue;
      mdc_tile_axis ax;
      CHECK(mdc_tile_axis_plan(&ax, size, tiles[ti], 16, margin) == 0, "plan");
      int aligned = 1;
      for (int i = 0; i < ax.count; i++)
        if (ax.start[i] % 16 || ax.size[i] > tiles[ti] + 15 ||
            (i + 1 == ax.count && ax.start[i] + ax.size[i] != size))
          aligned = 0;
      CHECK(aligned, "size %d tile %d: aligned starts, last tile to the edge", size, tiles[ti]);
      int ok_sum = 1, ok_margin = 1, ok_cover = 1;
      for (int p = 0; p < size; p++) {
        double sum = 0.0;
        int covered = 0;
        for (int i = 0; i < ax.count; i++) {
          int s = ax.start[i];
          if (p < s || p >= s + ax.size[i]) continue;
          covered = 1;
          float w = mdc_tile_axis_weight(&ax, i, p);
          sum += w;
          int inner_left = i > 0 && p < s + margin;
          int inner_right = i + 1 < ax.count && p >= s + ax.size[i] - margin;
          if ((inner_left || inner_right) && w != 0.0f) ok_margin = 0;
        }
        if (fabs(sum - 1.0) > 1e-6) ok_sum = 0;
        if (!covered) ok_cover = 0;
      }
      CHECK(ok_sum && ok_margin && ok_cover, "size %d tile %d: sum %d margin %d cover %d", size,
            tiles[ti], ok_sum, ok_margin, ok_cover);
      mdc_tile_axis_clear(&ax);
    }
}

static void test_class_crops(void) {
  int s[3];
  CHECK(mdc_class_crops(100, 100, s) == 1 && s[0] == 0, "small");
  CHECK(mdc_class_crops(300, 256, s) == 2 && s[0] == 0 && s[1] == 44, "two");
  CHECK(mdc_class_crops(1000, 256, s) == 3 && s[0] == 0 && s[1] == 372 && s[2] == 744, "three");
}

typedef struct stats {
  double mean_abs, max_abs, seam_excess;
} stats;

/* Restores img with the given tile size (0: one tile). */
static int restore_with_tile(const maskdcpt_model *m, const float *img, int w, int h, int tile,
                             float *out) {
  maskdcpt_context *ctx = NULL;
  if (maskdcpt_context_new(m, &ctx, NULL) != MASKDCPT_OK) return -1;
  maskdcpt_context_set_tile_size(ctx, tile ? tile : 4096);
  maskdcpt_image a = {(float *)img, w, h, 3, (size_t)w * 3}, b = {out, w, h, 3, (size_t)w * 3};
  maskdcpt_error err;
  int rc = maskdcpt_restore(ctx, &a, &b, 1, 1.0f, NULL, &err) == MASKDCPT_OK ? 0 : -1;
  if (rc) fprintf(stderr, "restore: %s\n", err.message);
  maskdcpt_context_free(ctx);
  return rc;
}

/* Differences between tiled and whole; seam_excess compares the
 * horizontal and vertical steps across tile-blend zones with the same
 * steps in the whole-image result. */
static stats compare(const float *tiled, const float *whole, int w, int h, int tile, int align,
                     int margin) {
  stats st = {0, 0, 0};
  size_t n = (size_t)w * h * 3;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)tiled[i] - whole[i]);
    st.mean_abs += d;
    if (d > st.max_abs) st.max_abs = d;
  }
  st.mean_abs /= n;
  mdc_tile_axis ax, ay;
  mdc_tile_axis_plan(&ax, w, tile, align, margin);
  mdc_tile_axis_plan(&ay, h, tile, align, margin);
  for (int i = 0; i + 1 < ax.count; i++)
    for (int x = ax.ramp[i] - 1; x <= ax.ramp[i] + MDC_TILE_BLEND; x++)
      for (int y = 0; y < h; y++)
        for (int c = 0; c < 3; c++) {
          size_t p = ((size_t)y * w + x) * 3 + c;
          double dt = tiled[p + 3] - tiled[p], dw = whole[p + 3] - whole[p];
          double e = fabs(dt - dw);
          if (e > st.seam_excess) st.seam_excess = e;
        }
  for (int i = 0; i + 1 < ay.count; i++)
    for (int y = ay.ramp[i] - 1; y <= ay.ramp[i] + MDC_TILE_BLEND; y++)
      for (int x = 0; x < w; x++)
        for (int c = 0; c < 3; c++) {
          size_t p = ((size_t)y * w + x) * 3 + c;
          double dt = tiled[p + (size_t)w * 3] - tiled[p], dw = whole[p + (size_t)w * 3] - whole[p];
          double e = fabs(dt - dw);
          if (e > st.seam_excess) st.seam_excess = e;
        }
  mdc_tile_axis_clear(&ax);
  mdc_tile_axis_clear(&ay);
  return st;
}

/* assert: 0 only prints the figures (global pooling cannot agree closely:
 * each tile sees its own mean). */
static void test_tiled_vs_whole(int window, float residual, int assert) {
  mdc_arch a;
  tu_small_arch(&a, 8, 3, window);
  maskdcpt_model *m = tu_random_model(&a, 11, residual, "tiling.safetensors");
  CHECK(m != NULL, "model");
  if (!m) return;
  int w = 611, h = 433;
  float *img = tu_test_image(w, h, 3, 5);
  float *whole = malloc((size_t)w * h * 3 * sizeof(float));
  float *tiled = malloc((size_t)w * h * 3 * sizeof(float));
  CHECK(restore_with_tile(m, img, w, h, 0, whole) == 0, "whole");
  int tiles[] = {mdc_tile_min(mdc_tile_margin(window)), 320, 448};
  for (size_t t = 0; t < sizeof tiles / sizeof *tiles; t++) {
    CHECK(restore_with_tile(m, img, w, h, tiles[t], tiled) == 0, "tiled");
    stats st = compare(tiled, whole, w, h, tiles[t], 1 << a.levels, mdc_tile_margin(window));
    printf("window %3d residual %.2f tile %3d: mean abs %.2e, max abs %.2e, seam excess %.2e "
           "(in 1/255: %.3f, %.3f, %.3f)\n",
           window, residual, tiles[t], st.mean_abs, st.max_abs, st.seam_excess,
           st.mean_abs * 255, st.max_abs * 255, st.seam_excess * 255);
    if (!assert) continue;
    CHECK(st.mean_abs < 0.05 / 255, "tile %d: mean abs %g >= 0.05/255", tiles[t], st.mean_abs);
    CHECK(st.max_abs < 1.0 / 255, "tile %d: max abs %g >= 1/255", tiles[t], st.max_abs);
    CHECK(st.seam_excess < 1.0 / 255, "tile %d: seam step excess %g >= 1/255", tiles[t],
          st.seam_excess);
  }
  free(img);
  free(whole);
  free(tiled);
  maskdcpt_model_free(m);
}

/* The tile chosen from a budget keeps the planned memory within it. */
static void test_memory_budget(void) {
  mdc_arch a;
  tu_small_arch(&a, 16, 4, 384);
  maskdcpt_model *m = tu_random_model(&a, 3, 0.1f, "budget.safetensors");
  CHECK(m != NULL, "model");
  if (!m) return;
  maskdcpt_context *ctx = NULL;
  maskdcpt_context_new(m, &ctx, NULL);
  size_t budgets[] = {(size_t)128 << 20, (size_t)256 << 20, (size_t)1 << 30};
  int prev = 0;
  for (size_t i = 0; i < 3; i++) {
    maskdcpt_context_set_memory_budget(ctx, budgets[i]);
    int tile;
    size_t bytes;
    maskdcpt_context_plan(ctx, 10000, 10000, &tile, &bytes);
    printf("budget %4zu MiB: tile %d, planned %zu MiB\n", budgets[i] >> 20, tile, bytes >> 20);
    CHECK(bytes <= budgets[i], "budget %zu: planned %zu", budgets[i], bytes);
    CHECK(tile >= prev, "tile grows with the budget");
    prev = tile;
  }
  maskdcpt_context_free(ctx);
  maskdcpt_model_free(m);
}

typedef struct cancel_state {
  double last;
  int calls, monotonic, cancel_at;
} cancel_state;

static int on_progress(void *user, double f) {
  cancel_state *s = user;
  if (f < s->last || f > 1.0) s->monotonic = 0;
  s->last = f;
  return ++s->calls != s->cancel_at;
}

static void test_progress_and_cancel(void) {
  mdc_arch a;
  tu_small_arch(&a, 4, 2, 0);
  maskdcpt_model *m = tu_random_model(&a, 9, 0.5f, "progress.safetensors");
  if (!m) return;
  int w = 500, h = 300;
  float *img = tu_test_image(w, h, 3, 1), *out = malloc((size_t)w * h * 3 * sizeof(float));
  maskdcpt_context *ctx = NULL;
  maskdcpt_context_new(m, &ctx, NULL);
  maskdcpt_context_set_tile_size(ctx, 1);
  maskdcpt_image src = {img, w, h, 3, (size_t)w * 3}, dst = {out, w, h, 3, (size_t)w * 3};
  cancel_state s = {0.0, 0, 1, -1};
  maskdcpt_context_set_progress(ctx, on_progress, &s);
  CHECK(maskdcpt_restore(ctx, &src, &dst, MASKDCPT_CLASS_AUTO, 1.0f, NULL, NULL) == MASKDCPT_OK,
        "restore");
  CHECK(s.calls > 4 && s.monotonic && fabs(s.last - 1.0) < 1e-9, "progress calls %d last %g",
        s.calls, s.last);
  cancel_state c = {0.0, 0, 1, 3};
  maskdcpt_context_set_progress(ctx, on_progress, &c);
  maskdcpt_error err;
  CHECK(maskdcpt_restore(ctx, &src, &dst, MASKDCPT_CLASS_AUTO, 1.0f, NULL, &err) ==
            MASKDCPT_ERROR_CANCELLED,
        "cancel");
  CHECK(c.calls == 3, "stopped at the cancelling call (%d)", c.calls);
  free(img);
  free(out);
  maskdcpt_context_free(ctx);
  maskdcpt_model_free(m);
}

int main(void) {
  test_axis_weights();
  test_class_crops();
  test_tiled_vs_whole(0, 0.1f, 0);
  test_tiled_vs_whole(64, 0.1f, 1);
  test_tiled_vs_whole(64, 0.3f, 1);
  test_tiled_vs_whole(128, 0.1f, 1);
  test_memory_budget();
  test_progress_and_cancel();
  return tu_finish();
}
