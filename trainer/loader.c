/* loader.c - see loader.h.  Two slots: the caller trains on one while the
 * workers fill the other with the following step's batch. */
#include "loader.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct slot {
  long step;     /* the batch it holds or is filling; -1 = free */
  int claimed;   /* samples handed to workers */
  int done;      /* samples finished */
  tr_sample *samples;
} slot;

struct tr_loader {
  const tr_dataset *ds;
  uint64_t seed;
  int crop, batch, num_classes, workers;
  slot slots[2];
  float *storage;
  pthread_t *threads;
  pthread_mutex_t lock;
  pthread_cond_t work, ready;
  int stopping, failed;
  char error[512];
  double waited;
};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *worker(void *arg) {
  tr_loader *l = arg;
  char msg[512];
  pthread_mutex_lock(&l->lock);
  for (;;) {
    slot *s = NULL;
    for (int i = 0; i < 2 && !s; i++) /* the earlier step first */
      if (l->slots[i].step >= 0 && l->slots[i].claimed < l->batch &&
          (!s || l->slots[i].step < s->step))
        s = &l->slots[i];
    if (l->stopping) break;
    if (!s) {
      pthread_cond_wait(&l->work, &l->lock);
      continue;
    }
    int index = s->claimed++;
    long step = s->step;
    pthread_mutex_unlock(&l->lock);
    int rc = tr_dataset_train_sample(l->ds, l->seed, step, index, l->crop, l->num_classes,
                                     &s->samples[index], msg, sizeof msg);
    pthread_mutex_lock(&l->lock);
    if (rc != 0 && !l->failed) {
      l->failed = 1;
      snprintf(l->error, sizeof l->error, "%s", msg);
    }
    s->done++;
    pthread_cond_broadcast(&l->ready);
  }
  pthread_mutex_unlock(&l->lock);
  return NULL;
}

tr_loader *tr_loader_new(const tr_dataset *ds, uint64_t seed, int crop, int batch,
                         int num_classes, int workers, char *msg, size_t msg_size) {
  tr_loader *l = calloc(1, sizeof *l);
  size_t px = (size_t)crop * crop * 3;
  if (!l || workers < 1) {
    snprintf(msg, msg_size, "loader: out of memory or no workers");
    free(l);
    return NULL;
  }
  *l = (tr_loader){.ds = ds, .seed = seed, .crop = crop, .batch = batch,
                   .num_classes = num_classes, .workers = 0};
  pthread_mutex_init(&l->lock, NULL);
  pthread_cond_init(&l->work, NULL);
  pthread_cond_init(&l->ready, NULL);
  l->storage = malloc(px * 2 * 2 * (size_t)batch * sizeof(float));
  l->threads = calloc((size_t)workers, sizeof *l->threads);
  for (int i = 0; i < 2; i++) {
    l->slots[i].step = -1;
    l->slots[i].samples = calloc((size_t)batch, sizeof(tr_sample));
  }
  if (!l->storage || !l->threads || !l->slots[0].samples || !l->slots[1].samples) {
    snprintf(msg, msg_size, "loader: out of memory");
    tr_loader_free(l);
    return NULL;
  }
  for (int i = 0; i < 2; i++)
    for (int b = 0; b < batch; b++) {
      float *base = l->storage + ((size_t)i * batch + b) * 2 * px;
      l->slots[i].samples[b].clean = base;
      l->slots[i].samples[b].degraded = base + px;
    }
  for (; l->workers < workers; l->workers++)
    if (pthread_create(&l->threads[l->workers], NULL, worker, l) != 0) {
      snprintf(msg, msg_size, "loader: cannot start worker threads");
      tr_loader_free(l);
      return NULL;
    }
  return l;
}

/* Gives slot i the batch of `step` to fill; call with the lock held. */
static void assign(tr_loader *l, int i, long step) {
  l->slots[i].step = step;
  l->slots[i].claimed = l->slots[i].done = 0;
  pthread_cond_broadcast(&l->work);
}

int tr_loader_next(tr_loader *l, long step, const tr_sample **batch, char *msg, size_t msg_size) {
  int cur = (int)(step & 1), other = 1 - cur;
  double t0 = now();
  pthread_mutex_lock(&l->lock);
  if (l->slots[cur].step != step) assign(l, cur, step); /* the first call */
  if (l->slots[other].step != step + 1) assign(l, other, step + 1); /* prefetch */
  while (l->slots[cur].done < l->batch && !l->failed) pthread_cond_wait(&l->ready, &l->lock);
  int rc = l->failed ? -1 : 0;
  if (rc) snprintf(msg, msg_size, "%s", l->error);
  pthread_mutex_unlock(&l->lock);
  l->waited += now() - t0;
  *batch = l->slots[cur].samples;
  return rc;
}

double tr_loader_wait_seconds(const tr_loader *l) { return l->waited; }

void tr_loader_free(tr_loader *l) {
  if (!l) return;
  pthread_mutex_lock(&l->lock);
  l->stopping = 1;
  pthread_cond_broadcast(&l->work);
  pthread_mutex_unlock(&l->lock);
  for (int i = 0; i < l->workers; i++) pthread_join(l->threads[i], NULL);
  pthread_mutex_destroy(&l->lock);
  pthread_cond_destroy(&l->work);
  pthread_cond_destroy(&l->ready);
  free(l->threads);
  free(l->slots[0].samples);
  free(l->slots[1].samples);
  free(l->storage);
  free(l);
}
