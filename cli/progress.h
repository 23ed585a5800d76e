/* progress.h - a terminal progress bar and Ctrl-C cancellation for long
 * maskdcpt runs.
 *
 * The bar draws on stderr only when stderr is a terminal; otherwise every
 * call is silent (logs and pipes stay clean), but the callback still
 * reports cancellation.  All functions accept a NULL bar.
 */
#ifndef MASKDCPT_PROGRESS_H
#define MASKDCPT_PROGRESS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct progress_bar progress_bar;

/* A new bar labelled `label` (shortened to fit), started now.  NULL only
 * when out of memory, which the other calls tolerate. */
progress_bar *progress_bar_new(const char *label);

/* Records the fraction done (clamped to [0,1], NaN taken as 0) and redraws
 * at most ~10 times per second: percentage, bar, elapsed time and ETA on
 * one line of at most 79 columns.  Nothing is drawn after a Ctrl-C. */
void progress_bar_update(progress_bar *bar, double fraction);

/* Draws the final state, ends the line, and frees the bar. */
void progress_bar_finish(progress_bar *bar);

/* Usable as a maskdcpt_progress_fn with the bar (or NULL) as `user`:
 * updates the bar and returns 1, or 0 once Ctrl-C was pressed so that the
 * core stops with MASKDCPT_ERROR_CANCELLED. */
int progress_bar_callback(void *user, double fraction);

/* Installs a SIGINT handler: the first Ctrl-C only sets the cancel flag
 * (and prints a note); a second one terminates as Ctrl-C normally does.
 * Returns 0, or -1 if sigaction failed. */
int progress_bar_install_sigint(void);
/* Restores the SIGINT disposition from before progress_bar_install_sigint. */
void progress_bar_uninstall_sigint(void);
/* 1 after a Ctrl-C (since install), else 0. */
int progress_bar_cancelled(void);

/* "1:15", "1:02:05", "--:--" for a negative duration; used for elapsed and ETA. */
void progress_format_duration(char *buf, size_t size, double seconds);

#ifdef __cplusplus
}
#endif
#endif /* MASKDCPT_PROGRESS_H */
