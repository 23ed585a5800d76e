/* plot.h - training curves as a PNG: L1 loss, classification (focal) loss
 * and batch accuracy against the step, one line per run, from log.csv. */
#ifndef TR_PLOT_H
#define TR_PLOT_H

#include <stddef.h>

/* logs[n] are log.csv paths, labels[n] their legend; 0, or -1 with a message. */
int tr_plot_logs(const char *png, const char *const *logs, const char *const *labels, int n,
                 char *msg, size_t msg_size);
/* `maskdcpt-train plot OUT.png LOG.csv[=LABEL]...` */
int tr_plot_main(int argc, char **argv);

#endif
