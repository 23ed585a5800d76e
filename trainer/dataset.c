/* dataset.c - loading the training photos and drawing samples. */
#include "dataset.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "degrade.h"
#include "image_io.h"

/* splitmix64: the sample draws' generator (independent of the degrade
 * library's, which has its own). */
static uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static uint64_t name_hash(const char *s, uint64_t seed) {
  uint64_t h = mix64(seed);
  for (; *s; s++) h = mix64(h ^ (unsigned char)*s);
  return h;
}

static int has_image_extension(const char *name) {
  const char *dot = strrchr(name, '.');
  return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") ||
                 !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".webp"));
}

static int compare_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static int compare_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The paths to load: a directory's images, or a list file's lines. */
static char **list_sources(const char *source, int *count, char *msg, size_t msg_size) {
  size_t n = 0, cap = 64;
  char **paths = malloc(cap * sizeof *paths);
  DIR *dir = opendir(source);
  FILE *list = dir ? NULL : fopen(source, "r");
  if (!paths || (!dir && !list)) {
    snprintf(msg, msg_size, "%s: cannot open as a directory or a list file", source);
    free(paths);
    if (dir) closedir(dir);
    return NULL;
  }
  char line[4096];
  for (;;) {
    char *path = NULL;
    if (dir) {
      struct dirent *e = readdir(dir);
      if (!e) break;
      if (e->d_name[0] == '.' || !has_image_extension(e->d_name)) continue;
      size_t len = strlen(source) + strlen(e->d_name) + 2;
      path = malloc(len);
      if (path) snprintf(path, len, "%s/%s", source, e->d_name);
    } else {
      if (!fgets(line, sizeof line, list)) break;
      line[strcspn(line, "\r\n")] = '\0';
      if (!line[0] || line[0] == '#') continue;
      path = strdup(line);
    }
    if (!path || (n == cap && !(paths = realloc(paths, (cap *= 2) * sizeof *paths)))) {
      snprintf(msg, msg_size, "out of memory listing %s", source);
      free(path);
      n = 0;
      break;
    }
    paths[n++] = path;
  }
  if (dir) closedir(dir);
  if (list) fclose(list);
  qsort(paths, n, sizeof *paths, compare_names);
  *count = (int)n;
  return paths;
}

static int load_photo(const char *path, tr_photo *p, char *msg, size_t msg_size) {
  img_image img;
  if (img_read(path, &img, msg, msg_size) != 0) return -1;
  p->width = img.width;
  p->height = img.height;
  p->rgb = malloc((size_t)img.width * img.height * 3);
  const char *base = strrchr(path, '/');
  p->name = strdup(base ? base + 1 : path);
  if (!p->rgb || !p->name) {
    snprintf(msg, msg_size, "%s: out of memory", path);
    img_free(&img);
    return -1;
  }
  size_t px = (size_t)img.width * img.height;
  int nc = img.channels;
  for (size_t i = 0; i < px; i++)
    for (int c = 0; c < 3; c++) {
      float v = img.data[i * nc + (nc >= 3 ? c : 0)];
      p->rgb[i * 3 + c] = (uint8_t)(v <= 0 ? 0 : v >= 1 ? 255 : v * 255.0f + 0.5f);
    }
  img_free(&img);
  return 0;
}

int tr_dataset_load(tr_dataset *ds, const char *source, int min_side, double val_fraction,
                    uint64_t split_seed, char *msg, size_t msg_size) {
  memset(ds, 0, sizeof *ds);
  ds->input_bits = 8;
  int n = 0;
  char **paths = list_sources(source, &n, msg, msg_size);
  if (!paths) return -1;
  ds->photos = calloc(n ? (size_t)n : 1, sizeof *ds->photos);
  int rc = ds->photos ? 0 : -1;
  for (int i = 0; i < n && rc == 0; i++) {
    tr_photo *p = &ds->photos[ds->count];
    if (load_photo(paths[i], p, msg, msg_size) != 0) {
      rc = -1;
    } else if (p->width < min_side || p->height < min_side) {
      free(p->rgb);
      free(p->name);
    } else {
      ds->count++;
    }
  }
  for (int i = 0; i < n; i++) free(paths[i]);
  free(paths);
  if (rc == 0 && ds->count == 0) {
    snprintf(msg, msg_size, "%s: no photos of at least %d px", source, min_side);
    rc = -1;
  }
  if (rc == 0) {
    ds->train = malloc((size_t)ds->count * sizeof(int));
    ds->val = malloc((size_t)ds->count * sizeof(int));
    if (!ds->train || !ds->val) rc = -1;
  }
  if (rc != 0) {
    tr_dataset_free(ds);
    return -1;
  }
  /* Validation: the photos whose name hashes are the lowest, a fixed
   * fraction; adding photos later moves few of them between the sets. */
  int want_val = ds->count >= 2 ? (int)(ds->count * val_fraction + 0.5) : 0;
  if (ds->count >= 2 && want_val < 1) want_val = 1;
  uint64_t *h = malloc((size_t)ds->count * 2 * sizeof *h);
  if (!h) {
    snprintf(msg, msg_size, "out of memory");
    tr_dataset_free(ds);
    return -1;
  }
  uint64_t *sorted = h + ds->count;
  for (int i = 0; i < ds->count; i++) sorted[i] = h[i] = name_hash(ds->photos[i].name, split_seed);
  qsort(sorted, (size_t)ds->count, sizeof *sorted, compare_u64);
  for (int i = 0; i < ds->count; i++) {
    if (want_val > 0 && h[i] <= sorted[want_val - 1]) ds->val[ds->num_val++] = i;
    else ds->train[ds->num_train++] = i;
  }
  free(h);
  return 0;
}

void tr_dataset_free(tr_dataset *ds) {
  for (int i = 0; i < ds->count; i++) {
    free(ds->photos[i].rgb);
    free(ds->photos[i].name);
  }
  free(ds->photos);
  free(ds->train);
  free(ds->val);
  memset(ds, 0, sizeof *ds);
}

/* Copies a crop x crop window at (x0, y0), transformed by `orient`
 * (bit 0: mirror, bits 1-2: quarter turns), into float R'G'B'. */
static void crop_photo(const tr_photo *p, int x0, int y0, int crop, int orient, float *dst) {
  for (int y = 0; y < crop; y++)
    for (int x = 0; x < crop; x++) {
      int u = orient & 1 ? crop - 1 - x : x, v = y;
      for (int r = 0; r < (orient >> 1); r++) { /* rotate (u, v) by 90 degrees */
        int t = u;
        u = crop - 1 - v;
        v = t;
      }
      const uint8_t *s = p->rgb + ((size_t)(y0 + v) * p->width + (x0 + u)) * 3;
      float *d = dst + ((size_t)y * crop + x) * 3;
      d[0] = s[0] / 255.0f, d[1] = s[1] / 255.0f, d[2] = s[2] / 255.0f;
    }
}

static int degrade_into(const tr_dataset *ds, tr_sample *out, int crop, int label, float level,
                        uint64_t seed, char *msg, size_t msg_size) {
  out->label = label;
  out->level = level;
  if (dg_apply(out->clean, crop, crop, out->degraded, label, level, seed, msg, msg_size) != 0)
    return -1;
  if (ds->input_bits > 0) {
    float q = (float)((1 << ds->input_bits) - 1);
    for (size_t i = 0, n = (size_t)crop * crop * 3; i < n; i++) {
      float v = out->degraded[i];
      out->degraded[i] = floorf((v < 0 ? 0 : v > 1 ? 1 : v) * q + 0.5f) / q;
    }
  }
  return 0;
}

/* The class for the random word d: d mod num_classes when uniform, else
 * by the weights' cumulative sums. */
static double weight_total(const tr_dataset *ds, int num_classes) {
  double total = 0;
  for (int k = 0; k < num_classes; k++) total += ds->class_weight[k];
  return total;
}

static int pick_class(const tr_dataset *ds, uint64_t d, int num_classes) {
  if (!ds->class_weighted) return (int)(d % (uint64_t)num_classes);
  double total = weight_total(ds, num_classes);
  double u = (double)(d >> 11) * (1.0 / 9007199254740992.0) * total;
  int last = 0;
  for (int k = 0; k < num_classes; k++) {
    if (ds->class_weight[k] <= 0) continue;
    last = k;
    if (u < ds->class_weight[k]) return k;
    u -= ds->class_weight[k];
  }
  return last; /* rounding left u at the very end */
}

double tr_dataset_class_balance(const tr_dataset *ds, int label, int num_classes) {
  if (!ds->class_weighted || label < 0 || label >= num_classes) return 1.0;
  if (!(ds->class_weight[label] > 0)) return 0.0; /* never drawn */
  return weight_total(ds, num_classes) / num_classes / ds->class_weight[label];
}

int tr_dataset_set_class_weights(tr_dataset *ds, const char *spec, int num_classes, char *msg,
                                 size_t msg_size) {
  if (num_classes < 1 || num_classes > TR_MAX_CLASSES) {
    snprintf(msg, msg_size, "class weights: %d classes", num_classes);
    return -1;
  }
  double w[TR_MAX_CLASSES];
  for (int k = 0; k < num_classes; k++) w[k] = 1.0;
  const char *p = spec;
  while (*p) {
    const char *eq = strchr(p, '='), *comma = strchr(p, ',');
    if (!comma) comma = p + strlen(p);
    if (!eq || eq > comma) {
      snprintf(msg, msg_size, "class weights: '%.*s' is not NAME=WEIGHT", (int)(comma - p), p);
      return -1;
    }
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)(eq - p), p);
    int k = dg_class_index(name);
    if (k < 0 || k >= num_classes) {
      snprintf(msg, msg_size, "class weights: unknown class '%s' (maskdcpt degrade --list)", name);
      return -1;
    }
    char *end;
    double x = strtod(eq + 1, &end);
    if (end != comma || !(x >= 0 && x <= 1e6)) {
      snprintf(msg, msg_size, "class weights: bad weight for %s: '%.*s'", name,
               (int)(comma - eq - 1), eq + 1);
      return -1;
    }
    w[k] = x;
    p = *comma ? comma + 1 : comma;
  }
  double total = 0;
  int uniform = 1;
  for (int k = 0; k < num_classes; k++) {
    total += w[k];
    uniform &= w[k] == w[0];
  }
  if (!(total > 0)) {
    snprintf(msg, msg_size, "class weights: every weight is 0");
    return -1;
  }
  ds->class_weighted = !uniform;
  for (int k = 0; k < num_classes; k++) ds->class_weight[k] = w[k];
  return 0;
}

int tr_dataset_train_sample(const tr_dataset *ds, uint64_t seed, long step, int index, int crop,
                            int num_classes, tr_sample *out, char *msg, size_t msg_size) {
  if (ds->num_train == 0 || num_classes < 1 || num_classes > dg_num_classes()) {
    snprintf(msg, msg_size, "no training photos, or %d classes of %d", num_classes,
             dg_num_classes());
    return -1;
  }
  uint64_t r = mix64(mix64(mix64(seed) ^ (uint64_t)step) ^ (uint64_t)index);
  const tr_photo *p = &ds->photos[ds->train[r % (uint64_t)ds->num_train]];
  if (p->width < crop || p->height < crop) {
    snprintf(msg, msg_size, "%s: %dx%d is smaller than the %d px crop", p->name, p->width,
             p->height, crop);
    return -1;
  }
  uint64_t a = mix64(r + 1), b = mix64(r + 2), c = mix64(r + 3), d = mix64(r + 4);
  int x0 = (int)(a % (uint64_t)(p->width - crop + 1));
  int y0 = (int)(b % (uint64_t)(p->height - crop + 1));
  crop_photo(p, x0, y0, crop, (int)(c & 7), out->clean);
  int label = pick_class(ds, d, num_classes);
  float level = (float)((mix64(r + 5) >> 11) * (1.0 / 9007199254740992.0));
  return degrade_into(ds, out, crop, label, level, mix64(r + 6), msg, msg_size);
}

int tr_dataset_val_sample(const tr_dataset *ds, int index, int crop, int num_classes, float level,
                          tr_sample *out, char *msg, size_t msg_size) {
  if (ds->num_val == 0 || num_classes < 1) {
    snprintf(msg, msg_size, "no validation photos");
    return -1;
  }
  const tr_photo *p = &ds->photos[ds->val[index % ds->num_val]];
  if (p->width < crop || p->height < crop) {
    snprintf(msg, msg_size, "%s: smaller than the %d px crop", p->name, crop);
    return -1;
  }
  crop_photo(p, (p->width - crop) / 2, (p->height - crop) / 2, crop, 0, out->clean);
  return degrade_into(ds, out, crop, index % num_classes, level, mix64((uint64_t)index), msg,
                      msg_size);
}
