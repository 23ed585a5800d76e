/* checkpoint.c - see checkpoint.h. */
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char magic[8] = {'M', 'D', 'C', 'C', 'K', 'P', 'T', '1'};

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

/* fwrite that also folds the bytes into the checksum */
static int put(FILE *f, uint64_t *h, const void *data, size_t n) {
  *h = fnv1a(*h, data, n);
  return fwrite(data, 1, n, f) == n ? 0 : -1;
}

int tr_checkpoint_write(const char *path, const tr_state *s, char *msg, size_t msg_size) {
  size_t len = strlen(path);
  char *tmp = malloc(len + 16);
  if (!tmp) {
    snprintf(msg, msg_size, "%s: out of memory", path);
    return -1;
  }
  snprintf(tmp, len + 16, "%s.tmp.XXXXXX", path);
  int fd = mkstemp(tmp);
  FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
  if (!f) {
    snprintf(msg, msg_size, "%s: %s", tmp, strerror(errno));
    if (fd >= 0) close(fd), unlink(tmp);
    free(tmp);
    return -1;
  }
  uint64_t h = 0xcbf29ce484222325ull;
  uint64_t step = (uint64_t)s->step, n = s->n, slen = strlen(s->settings);
  int rc = put(f, &h, magic, 8) | put(f, &h, &step, 8) | put(f, &h, &n, 8) |
           put(f, &h, &slen, 8) | put(f, &h, s->settings, slen);
  const float *arrays[4] = {s->param, s->m, s->v, s->ema};
  for (int i = 0; i < 4 && rc == 0; i++) rc = put(f, &h, arrays[i], s->n * sizeof(float));
  if (rc == 0 && fwrite(&h, 8, 1, f) != 1) rc = -1;
  if (rc == 0 && (fflush(f) != 0 || fsync(fileno(f)) != 0)) rc = -1;
  if (fclose(f) != 0) rc = -1;
  if (rc == 0 && rename(tmp, path) != 0) rc = -1;
  if (rc != 0) {
    snprintf(msg, msg_size, "%s: writing the checkpoint failed: %s", path, strerror(errno));
    unlink(tmp);
  } else { /* make the rename itself durable */
    char *dup = strdup(path);
    int dfd = dup ? open(dirname(dup), O_RDONLY) : -1;
    if (dfd >= 0) fsync(dfd), close(dfd);
    free(dup);
  }
  free(tmp);
  return rc;
}

int tr_checkpoint_read(const char *path, tr_state *s, char *msg, size_t msg_size) {
  memset(s, 0, sizeof *s);
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(msg, msg_size, "%s: %s", path, strerror(errno));
    return -1;
  }
  uint64_t h = 0xcbf29ce484222325ull, step, n, slen, stored;
  char head[8];
  int ok = fread(head, 1, 8, f) == 8 && memcmp(head, magic, 8) == 0 &&
           fread(&step, 8, 1, f) == 1 && fread(&n, 8, 1, f) == 1 && fread(&slen, 8, 1, f) == 1 &&
           n > 0 && n < ((uint64_t)1 << 32) && slen < ((uint64_t)1 << 24);
  if (ok) {
    h = fnv1a(fnv1a(fnv1a(fnv1a(h, head, 8), &step, 8), &n, 8), &slen, 8);
    s->n = (size_t)n;
    s->step = (long)step;
    s->settings = calloc(slen + 1, 1);
    s->param = malloc(n * sizeof(float) * 4);
    ok = s->settings && s->param && fread(s->settings, 1, slen, f) == slen;
  }
  if (ok) {
    h = fnv1a(h, s->settings, slen);
    s->m = s->param + n, s->v = s->m + n, s->ema = s->v + n;
    ok = fread(s->param, sizeof(float), n * 4, f) == n * 4 && fread(&stored, 8, 1, f) == 1;
    if (ok) ok = fnv1a(h, s->param, n * 4 * sizeof(float)) == stored;
  }
  fclose(f);
  if (!ok) {
    snprintf(msg, msg_size, "%s: not a complete maskdcpt checkpoint (truncated or corrupt)", path);
    tr_state_free(s);
    return -1;
  }
  return 0;
}

void tr_state_free(tr_state *s) {
  free(s->param); /* m, v and ema share its allocation when read */
  free(s->settings);
  memset(s, 0, sizeof *s);
}
