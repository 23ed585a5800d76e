/* split.h - `maskdcpt-train split DATA`: the names of the photos that
 * training and `eval` hold out for validation (or, with --train, of those
 * they train on), so that outside evaluations use exactly that split. */
#ifndef TR_SPLIT_H
#define TR_SPLIT_H

int tr_split_main(int argc, char **argv);

#endif
