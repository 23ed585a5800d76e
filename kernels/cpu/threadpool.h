/* threadpool.h - a small fixed pthread pool for data-parallel loops.
 *
 * mdc_threadpool_parallel_for() runs fn(arg, task, thread) for every task in
 * [0, n_tasks) and returns when all are done.  The calling thread takes part
 * as thread 0; workers are 1 .. size-1, so `thread` can index per-thread
 * scratch.  Tasks are handed out dynamically: a task's result must not
 * depend on which thread runs it (the kernels keep their outputs
 * deterministic by fixing the task decomposition independently of the
 * thread count).  Idle workers sleep on a condition variable.
 *
 * Calls from several threads are serialised; a call made from inside a
 * task runs serially on the calling thread (no deadlock). */
#ifndef MDC_THREADPOOL_H
#define MDC_THREADPOOL_H

typedef struct mdc_threadpool mdc_threadpool;
typedef void (*mdc_task_fn)(void *arg, int task, int thread);

/* threads <= 0: one per online CPU.  NULL when out of memory.  If some
 * threads cannot be started the pool runs with fewer. */
mdc_threadpool *mdc_threadpool_new(int threads);
/* Wakes, stops and joins the workers. NULL is fine. */
void mdc_threadpool_free(mdc_threadpool *pool);
/* Number of threads that can run tasks, the caller included (>= 1). */
int mdc_threadpool_size(const mdc_threadpool *pool);
void mdc_threadpool_parallel_for(mdc_threadpool *pool, int n_tasks, mdc_task_fn fn, void *arg);

#endif
