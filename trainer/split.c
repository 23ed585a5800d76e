/* split.c - `maskdcpt-train split`: prints the validation (or training)
 * photos' file names, one per line, in name order.  It loads the photos
 * through tr_dataset_load itself rather than re-implementing the hash,
 * because the split also depends on which photos pass the size check. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "dataset.h"
#include "split.h"

static const char *split_usage =
    "Usage: maskdcpt-train split DATA [--crop N] [--train]\n"
    "Prints the file names of the validation photos that training and 'eval'\n"
    "hold out (with --train: the training photos), one per line.  Photos\n"
    "smaller than the crop (default 64, training's default) are left out\n"
    "before the split, as in training: pass the run's --crop.\n";

int tr_split_main(int argc, char **argv) {
  static const struct option opts[] = {
      {"crop", 1, 0, 'c'}, {"train", 0, 0, 't'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  int crop = 64, train = 0, c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'c': crop = atoi(optarg); break;
    case 't': train = 1; break;
    case 'h': fputs(split_usage, stdout); return 0;
    default: fputs(split_usage, stderr); return 2;
    }
  }
  if (argc - optind != 1 || crop < 1) {
    fputs(split_usage, stderr);
    return 2;
  }
  tr_dataset ds;
  char msg[512];
  if (tr_dataset_load(&ds, argv[optind], crop, TR_VAL_FRACTION, TR_SPLIT_SEED, msg,
                      sizeof msg) != 0) {
    fprintf(stderr, "maskdcpt-train split: %s\n", msg);
    return 1;
  }
  int n = train ? ds.num_train : ds.num_val;
  const int *idx = train ? ds.train : ds.val;
  for (int i = 0; i < n; i++) printf("%s\n", ds.photos[idx[i]].name);
  tr_dataset_free(&ds);
  return 0;
}
