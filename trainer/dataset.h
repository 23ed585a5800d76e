/* dataset.h - the trainer's photos and the degraded samples drawn from them.
 *
 * Photos are held in memory as 8-bit R'G'B'.  A fixed, seeded split puts
 * some photos aside for validation.  Every sample is a pure function of
 * (dataset, seed, step, index): the same run draws the same crops,
 * flips, rotations, classes and levels on every machine and after a
 * resume. */
#ifndef TR_DATASET_H
#define TR_DATASET_H

#include <stddef.h>
#include <stdint.h>

/* The split every command uses (training, eval, split): 5 % of the
 * photos, chosen by a hash of the name seeded with 7. */
#define TR_VAL_FRACTION 0.05
#define TR_SPLIT_SEED 7
#define TR_MAX_CLASSES 32

typedef struct tr_photo {
  char *name; /* file name, for messages and the manifest */
  int width, height;
  uint8_t *rgb; /* width * height * 3 */
} tr_photo;

typedef struct tr_dataset {
  int count;
  tr_photo *photos; /* sorted by name */
  int num_train, num_val;
  int *train; /* indices into photos */
  int *val;
  /* Degraded crops are rounded to this many bits per channel, as the
   * photos the network will restore are (8 after tr_dataset_load; 0: kept
   * in float).  Unrounded training lets the classifier rely on detail below
   * 1/255 that real 8-bit photos do not have. */
  int input_bits;
  /* Relative weights of the training classes (num_classes of the
   * registry's first ones); class_weighted == 0: uniform, drawn as before
   * weights existed, so earlier runs' samples stay the same. */
  int class_weighted;
  double class_weight[TR_MAX_CLASSES];
} tr_dataset;

/* Parses "name=W,name=W,..." (registry class names, W >= 0; unnamed
 * classes keep 1) into ds's class weights.  0, or -1 with a message for an
 * unknown name, a bad number, or all weights 0. */
int tr_dataset_set_class_weights(tr_dataset *ds, const char *spec, int num_classes, char *msg,
                                 size_t msg_size);

/* Loads every .png/.jpg/.jpeg/.webp in `dir` (or every path listed, one per
 * line, in a file), skipping photos smaller than min_side on either side.
 * val_fraction of the photos (at least one when there are two or more)
 * go to validation, chosen by a hash of the name and split_seed.
 * 0, or -1 with a message. */
int tr_dataset_load(tr_dataset *ds, const char *source, int min_side, double val_fraction,
                    uint64_t split_seed, char *msg, size_t msg_size);
void tr_dataset_free(tr_dataset *ds);

typedef struct tr_sample {
  float *clean;    /* crop * crop * 3, caller's memory */
  float *degraded; /* crop * crop * 3, caller's memory */
  int label;       /* degradation class */
  float level;
} tr_sample;

/* The weight that makes a per-crop loss count every class alike when
 * classes are drawn by weight: (mean weight) / (weight of label); 1 when
 * drawn uniformly.  The trainer puts it on the classification loss, so
 * the classifier does not learn the drawing frequencies as a prior. */
double tr_dataset_class_balance(const tr_dataset *ds, int label, int num_classes);

/* Training sample `index` of step `step`: a random crop of a random
 * training photo, flipped and rotated by 90-degree steps, degraded with a
 * class (num_classes of the registry's first classes, uniformly or by the
 * class weights) and a level drawn uniformly.  0, or -1 with a message. */
int tr_dataset_train_sample(const tr_dataset *ds, uint64_t seed, long step, int index, int crop,
                            int num_classes, tr_sample *out, char *msg, size_t msg_size);

/* Validation sample `index`: validation photo index % num_val, its centre
 * crop, class index % num_classes at `level`; no randomness besides the
 * degradation's own, seeded by index. */
int tr_dataset_val_sample(const tr_dataset *ds, int index, int crop, int num_classes, float level,
                          tr_sample *out, char *msg, size_t msg_size);

#endif
