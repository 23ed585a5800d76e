/* progress.c - terminal progress bar and SIGINT cancellation; see progress.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* clock_gettime, sigaction under -std=c11 */
#endif

#include "progress.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

enum {
  LABEL_MAX = 24,  /* bytes of label kept */
  LINE_MAX_COLS = 79, /* one short of 80: writing the last column wraps on some terminals */
  BAR_MIN = 8       /* narrower than this, the bar is left out */
};

#define REDRAW_INTERVAL 0.1 /* seconds */

struct progress_bar {
  char label[LABEL_MAX + 1];
  int enabled;       /* stderr is a terminal */
  double start;      /* monotonic seconds */
  double last_draw;  /* when last drawn, < 0 before the first draw */
  double fraction;
  double drawn_fraction;
  int last_len;      /* length of the last line, to blank leftovers */
  atomic_flag busy;  /* the core may report from worker threads: one drawer at a time */
};

static volatile sig_atomic_t g_cancelled;
static struct sigaction g_old_sigint;
static int g_sigint_installed;

static double clock_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* "m:ss", or "h:mm:ss" from an hour on; "--:--" when unknown. */
void progress_format_duration(char *buf, size_t size, double seconds)
{
  if (!(seconds >= 0.0) || seconds > 359999.0) {
    snprintf(buf, size, "--:--");
    return;
  }
  unsigned s = (unsigned)(seconds + 0.5);
  if (s >= 3600)
    snprintf(buf, size, "%u:%02u:%02u", s / 3600, s / 60 % 60, s % 60);
  else
    snprintf(buf, size, "%u:%02u", s / 60, s % 60);
}

static int terminal_columns(void)
{
  struct winsize ws;
  int cols = 80;
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    cols = ws.ws_col;
  cols -= 1;
  return cols < LINE_MAX_COLS ? cols : LINE_MAX_COLS;
}

static void bar_draw(progress_bar *bar, double now, int final)
{
  double f = bar->fraction;
  double elapsed = now - bar->start;
  char el[32], eta[32], tail[96];
  progress_format_duration(el, sizeof el, elapsed);
  /* Fixed-width fields, so the bar does not jump as the text changes. */
  if (final) {
    snprintf(tail, sizeof tail, " %3d%%  %5s  done     ", (int)(f * 100.0), el);
  } else {
    /* A rate from the first second or first 0.1% is noise. */
    if (f >= 1.0)
      progress_format_duration(eta, sizeof eta, 0.0);
    else if (f > 0.001 && elapsed > 1.0)
      progress_format_duration(eta, sizeof eta, elapsed * (1.0 - f) / f);
    else
      progress_format_duration(eta, sizeof eta, -1.0);
    snprintf(tail, sizeof tail, " %3d%%  %5s  ETA %-5s", (int)(f * 100.0), el, eta);
  }

  int cols = terminal_columns();
  int label_len = (int)strlen(bar->label);
  int tail_len = (int)strlen(tail);
  int bar_width = cols - label_len - (label_len ? 1 : 0) - 2 - tail_len;

  char line[128];
  int n = 0;
  if (label_len)
    n += snprintf(line + n, sizeof line - (size_t)n, "%s ", bar->label);
  if (bar_width >= BAR_MIN) {
    int filled = (int)(f * bar_width);
    line[n++] = '[';
    for (int i = 0; i < bar_width; i++)
      line[n++] = i < filled ? '#' : '-';
    line[n++] = ']';
  }
  n += snprintf(line + n, sizeof line - (size_t)n, "%s", tail);
  if (n > cols) /* a very narrow terminal: better cut than wrapped */
    n = cols > 0 ? cols : 0;
  line[n] = '\0';

  /* Blank what a longer previous line left (the terminal may have shrunk
   * or the ETA got shorter). */
  int pad = bar->last_len > n ? bar->last_len - n : 0;
  fprintf(stderr, "\r%s%*s", line, pad, "");
  if (pad)
    fprintf(stderr, "\r%s", line);
  fflush(stderr);
  bar->last_len = n;
  bar->last_draw = now;
  bar->drawn_fraction = f;
}

progress_bar *progress_bar_new(const char *label)
{
  progress_bar *bar = calloc(1, sizeof *bar);
  if (!bar)
    return NULL;
  if (label) {
    size_t len = strlen(label);
    if (len > LABEL_MAX) {
      len = LABEL_MAX;
      /* Do not cut a UTF-8 sequence in half. */
      while (len > 0 && ((unsigned char)label[len] & 0xC0) == 0x80)
        len--;
    }
    memcpy(bar->label, label, len);
    bar->label[len] = '\0';
  }
  bar->enabled = isatty(STDERR_FILENO);
  bar->start = clock_now();
  bar->last_draw = -1.0;
  bar->drawn_fraction = -1.0;
  atomic_flag_clear(&bar->busy);
  return bar;
}

void progress_bar_update(progress_bar *bar, double fraction)
{
  if (!bar)
    return;
  if (atomic_flag_test_and_set(&bar->busy))
    return; /* another thread is drawing; a skipped update is harmless */
  if (!(fraction > 0.0)) /* also NaN */
    fraction = 0.0;
  if (fraction > 1.0)
    fraction = 1.0;
  bar->fraction = fraction;
  if (bar->enabled && !g_cancelled) {
    double now = clock_now();
    /* Throttled, except that reaching 100% is always shown. */
    if (bar->last_draw < 0.0 || now - bar->last_draw >= REDRAW_INTERVAL ||
        (fraction >= 1.0 && bar->drawn_fraction < 1.0))
      bar_draw(bar, now, 0);
  }
  atomic_flag_clear(&bar->busy);
}

void progress_bar_finish(progress_bar *bar)
{
  if (!bar)
    return;
  /* After Ctrl-C the handler already broke the line; do not redraw a bar
   * that suggests the run went on. */
  if (bar->enabled && !g_cancelled) {
    bar_draw(bar, clock_now(), 1);
    fputc('\n', stderr);
    fflush(stderr);
  }
  free(bar);
}

int progress_bar_callback(void *user, double fraction)
{
  progress_bar_update(user, fraction);
  return g_cancelled ? 0 : 1;
}

static void sigint_handler(int sig)
{
  int saved = errno;
  if (g_cancelled) {
    /* Second Ctrl-C: the user wants out now.  SIGINT is blocked while we
     * run, so the re-raised signal is delivered, with the default action,
     * as soon as the handler returns. */
    signal(sig, SIG_DFL);
    raise(sig);
  } else {
    g_cancelled = 1;
    static const char note[] =
        "\nInterrupted: stopping after the current step (Ctrl-C again to quit now)\n";
    ssize_t w = write(STDERR_FILENO, note, sizeof note - 1);
    (void)w;
  }
  errno = saved;
}

int progress_bar_install_sigint(void)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = sigint_handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART; /* reads and writes in progress carry on */
  g_cancelled = 0;
  struct sigaction old;
  if (sigaction(SIGINT, &sa, &old) != 0)
    return -1;
  if (!g_sigint_installed)
    g_old_sigint = old;
  g_sigint_installed = 1;
  return 0;
}

void progress_bar_uninstall_sigint(void)
{
  if (!g_sigint_installed)
    return;
  sigaction(SIGINT, &g_old_sigint, NULL);
  g_sigint_installed = 0;
}

int progress_bar_cancelled(void)
{
  return g_cancelled ? 1 : 0;
}
