/* threadpool.c - see threadpool.h. */
#include "threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define MDC_THREADPOOL_MAX 256

struct mdc_threadpool {
  int size; /* threads running tasks, caller included */
  pthread_t *workers;
  int n_workers; /* started workers: size - 1 */

  pthread_mutex_t submit; /* one parallel_for at a time */
  pthread_mutex_t mu;
  pthread_cond_t wake; /* workers wait here for a new generation */
  pthread_cond_t done; /* the caller waits here for `busy` to reach 0 */
  unsigned long generation;
  int busy; /* workers still in the current job */
  int stop;

  mdc_task_fn fn;
  void *arg;
  int n_tasks;
  atomic_int next; /* next task to hand out */
};

typedef struct worker_start {
  mdc_threadpool *pool;
  int index;
} worker_start;

/* The pool (if any) whose task this thread is running, and its index:
 * lets a nested parallel_for run inline instead of deadlocking. */
static _Thread_local mdc_threadpool *tl_pool;
static _Thread_local int tl_index;

static void threadpool_drain(mdc_threadpool *pool, int thread) {
  int n = pool->n_tasks;
  for (;;) {
    int t = atomic_fetch_add_explicit(&pool->next, 1, memory_order_relaxed);
    if (t >= n) break;
    pool->fn(pool->arg, t, thread);
  }
}

static void *threadpool_worker(void *p) {
  worker_start *ws = p;
  mdc_threadpool *pool = ws->pool;
  int index = ws->index;
  free(ws);
  tl_pool = pool;
  tl_index = index;
  unsigned long seen = 0;
  pthread_mutex_lock(&pool->mu);
  for (;;) {
    while (!pool->stop && pool->generation == seen) pthread_cond_wait(&pool->wake, &pool->mu);
    if (pool->stop) break;
    seen = pool->generation;
    pthread_mutex_unlock(&pool->mu);
    threadpool_drain(pool, index);
    pthread_mutex_lock(&pool->mu);
    if (--pool->busy == 0) pthread_cond_signal(&pool->done);
  }
  pthread_mutex_unlock(&pool->mu);
  return NULL;
}

mdc_threadpool *mdc_threadpool_new(int threads) {
  if (threads <= 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    threads = n > 0 ? (int)n : 1;
  }
  if (threads > MDC_THREADPOOL_MAX) threads = MDC_THREADPOOL_MAX;
  mdc_threadpool *pool = calloc(1, sizeof *pool);
  if (!pool) return NULL;
  pool->workers = calloc((size_t)threads, sizeof *pool->workers);
  if (!pool->workers) {
    free(pool);
    return NULL;
  }
  pthread_mutex_init(&pool->submit, NULL);
  pthread_mutex_init(&pool->mu, NULL);
  pthread_cond_init(&pool->wake, NULL);
  pthread_cond_init(&pool->done, NULL);
  atomic_init(&pool->next, 0);
  for (int i = 1; i < threads; i++) {
    worker_start *ws = malloc(sizeof *ws);
    if (!ws) break;
    ws->pool = pool;
    ws->index = i;
    if (pthread_create(&pool->workers[pool->n_workers], NULL, threadpool_worker, ws) != 0) {
      free(ws);
      break; /* run with the threads we have */
    }
    pool->n_workers++;
  }
  pool->size = pool->n_workers + 1;
  return pool;
}

void mdc_threadpool_free(mdc_threadpool *pool) {
  if (!pool) return;
  pthread_mutex_lock(&pool->mu);
  pool->stop = 1;
  pthread_cond_broadcast(&pool->wake);
  pthread_mutex_unlock(&pool->mu);
  for (int i = 0; i < pool->n_workers; i++) pthread_join(pool->workers[i], NULL);
  pthread_cond_destroy(&pool->done);
  pthread_cond_destroy(&pool->wake);
  pthread_mutex_destroy(&pool->mu);
  pthread_mutex_destroy(&pool->submit);
  free(pool->workers);
  free(pool);
}

int mdc_threadpool_size(const mdc_threadpool *pool) { return pool ? pool->size : 1; }

void mdc_threadpool_parallel_for(mdc_threadpool *pool, int n_tasks, mdc_task_fn fn, void *arg) {
  if (n_tasks <= 0) return;
  /* Serial: no pool, one thread, one task, or nested inside a task. */
  if (!pool || pool->n_workers == 0 || n_tasks == 1 || tl_pool) {
    int thread = tl_pool == pool ? tl_index : 0;
    for (int t = 0; t < n_tasks; t++) fn(arg, t, thread);
    return;
  }
  pthread_mutex_lock(&pool->submit);
  pthread_mutex_lock(&pool->mu);
  pool->fn = fn;
  pool->arg = arg;
  pool->n_tasks = n_tasks;
  atomic_store_explicit(&pool->next, 0, memory_order_relaxed);
  pool->busy = pool->n_workers;
  pool->generation++;
  pthread_cond_broadcast(&pool->wake);
  pthread_mutex_unlock(&pool->mu);

  tl_pool = pool;
  tl_index = 0;
  threadpool_drain(pool, 0);
  tl_pool = NULL;

  pthread_mutex_lock(&pool->mu);
  while (pool->busy > 0) pthread_cond_wait(&pool->done, &pool->mu);
  pthread_mutex_unlock(&pool->mu);
  pthread_mutex_unlock(&pool->submit);
}
