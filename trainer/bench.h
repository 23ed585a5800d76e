/* bench.h - `maskdcpt-train bench` (bench.c). */
#ifndef TR_BENCH_H
#define TR_BENCH_H

int tr_bench_main(int argc, char **argv);

#endif
