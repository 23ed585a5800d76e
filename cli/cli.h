/* cli.h - pieces shared by the command-line tool's commands. */
#ifndef MASKDCPT_CLI_H
#define MASKDCPT_CLI_H

#include <libintl.h>

#include "maskdcpt.h"

#define _(s) gettext(s)
#define N_(s) s

void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The weights restore uses when --weights is absent, or NULL. */
const char *cli_default_weights(void);
/* The file --weights ARG names: ARG itself, or for "fast" / "quality"
 * (unless such a file exists) the shipped default.safetensors /
 * quality.safetensors; NULL ARG: the default.  NULL when not found. */
const char *cli_weights_path(const char *arg);
/* Loads the weights --weights ARG names (NULL: the default), printing the
 * error; NULL on failure. */
maskdcpt_model *cli_load_model(const char *arg);
int cli_parse_device(const char *s, maskdcpt_device *out);
int cli_parse_int(const char *s, const char *what, long lo, long hi, long *out);

int cli_bench(int argc, char **argv);
/* `maskdcpt compare REFERENCE IMAGE...` (compare.c) */
int cli_compare(int argc, char **argv);

#endif
