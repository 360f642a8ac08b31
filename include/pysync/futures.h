/* SPDX-License-Identifier: MIT */
/* pysync/futures.h - Python's concurrent.futures for C: an executor (a pool of
 * worker threads, or of worker processes with PS_PROCESSES) whose submit
 * returns a future; result with timeout, cancel, done callbacks, wait, map and
 * shutdown. multiprocessing.Pool's apply_async/close/join are submit_bytes and
 * shutdown(ex, true, false).
 *
 * Every int-returning call returns 0 or a positive errno value and leaves errno
 * alone; calls that return a pointer return NULL and set errno. Timeouts are
 * seconds; negative or INFINITY waits forever, NaN is EINVAL. Executors and
 * futures are opaque. See ps_executor(3) and ps_future(3). */
#ifndef PYSYNC_FUTURES_H
#define PYSYNC_FUTURES_H

#include <pysync/threading.h>

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>      /* ssize_t */

#ifdef __cplusplus
extern "C" {
#endif

/* ps_executor_new flags: 0 for worker threads, PS_PROCESSES for worker processes
 * forked from the creating process. */
#define PS_PROCESSES 2

/* The largest input of a bytes task; the output buffer its function gets holds at
 * least this many bytes (1 MiB). */
#define PS_TASK_BYTES_MAX (1024u * 1024u)

/* ps_futures_wait: return when any future is done, or when all are. */
#define PS_FIRST_COMPLETED 1
#define PS_ALL_COMPLETED 2

typedef struct ps_executor ps_executor_t;
typedef struct ps_future ps_future_t;

/* ThreadPoolExecutor(max_workers) or, with PS_PROCESSES, a pool of worker
 * processes. max_workers 0: one per CPU the process may run on. Workers start on
 * demand (one worker process at once). NULL and errno: EINVAL (unknown flags),
 * ENOMEM, or the fork's error. */
PS_EXTERN ps_executor_t *ps_executor_new(unsigned max_workers, int flags);
/* Runs fn(arg) in a worker thread (thread executors only); the future's result is
 * its return value. NULL and errno: EINVAL (NULL ex or fn, process executor),
 * ESHUTDOWN (shut down, or the program is exiting), ENOMEM, EAGAIN (no thread). */
PS_EXTERN ps_future_t *ps_executor_submit(ps_executor_t *ex, void *(*fn)(void *), void *arg);
/* Copies inlen bytes of in for a worker, which calls fn(in, inlen, out, outcap)
 * with outcap >= PS_TASK_BYTES_MAX; fn returns the count of bytes it wrote to out,
 * or a negative errno value (the task's error). inlen > PS_TASK_BYTES_MAX:
 * EMSGSIZE; otherwise as ps_executor_submit. */
PS_EXTERN ps_future_t *ps_executor_submit_bytes(ps_executor_t *ex,
        ssize_t (*fn)(const void *in, size_t inlen, void *out, size_t outcap),
        const void *in, size_t inlen);
/* results[i] = fn(args[i]) for i < n, run by the workers (thread executors only).
 * 0, ETIMEDOUT (tasks not yet started are cancelled, results of running ones are
 * dropped), ESHUTDOWN, EINVAL, ENOMEM. results NULL: the results are dropped. */
PS_EXTERN int ps_executor_map(ps_executor_t *ex, void *(*fn)(void *), void *const *args,
                              void **results, size_t n, double timeout);
/* Later submits fail with ESHUTDOWN. cancel_futures: the tasks not yet started are
 * cancelled before it returns. wait: returns once every queued task has run and
 * the workers are gone. Twice is harmless. */
PS_EXTERN int ps_executor_shutdown(ps_executor_t *ex, bool wait, bool cancel_futures);
/* ps_executor_shutdown(ex, true, false), then frees ex; NULL is a no-op. Futures
 * stay valid until they are freed. */
PS_EXTERN void ps_executor_free(ps_executor_t *ex);

/* Waits for the task and stores its return value in *result (result NULL: not
 * stored). 0, ETIMEDOUT (call again), ECANCELED, EINVAL (NULL f, NaN timeout, a
 * bytes future). */
PS_EXTERN int ps_future_result(ps_future_t *f, double timeout, void **result);
/* Waits for a bytes task and copies its output to buf, its size to *len. 0,
 * ERANGE (cap too small: *len is the size needed, the result stays), the task's
 * own error (what its fn returned, negated; EPIPE: its worker process died),
 * ETIMEDOUT, ECANCELED, EINVAL (a pointer future). */
PS_EXTERN int ps_future_result_bytes(ps_future_t *f, double timeout, void *buf, size_t cap,
                                     size_t *len);
/* Future.exception(): waits like result, then returns 0 with *task_error set to the
 * task's error (0 if it succeeded). Returns ETIMEDOUT or ECANCELED itself. */
PS_EXTERN int ps_future_exception(ps_future_t *f, double timeout, int *task_error);
/* True if the task had not started (it never will) or was already cancelled; its
 * done callbacks have run when this returns true. False once it runs or ran. */
PS_EXTERN bool ps_future_cancel(ps_future_t *f);
PS_EXTERN bool ps_future_cancelled(ps_future_t *f);  /* cancelled (and so done) */
PS_EXTERN bool ps_future_running(ps_future_t *f);    /* the task is running now */
PS_EXTERN bool ps_future_done(ps_future_t *f);       /* finished or cancelled */
/* cb(f, arg) runs once the future is done, in the thread that completed it, or at
 * once in the caller if it is done already; callbacks run in the order added.
 * 0, EINVAL (NULL f or cb), ENOMEM. */
PS_EXTERN int ps_future_add_done_callback(ps_future_t *f,
                                          void (*cb)(ps_future_t *f, void *arg), void *arg);
/* Drops the caller's handle; may be called at any time (the task still runs and
 * its callbacks still fire). NULL is a no-op. */
PS_EXTERN void ps_future_free(ps_future_t *f);
/* concurrent.futures.wait: 0 when one (PS_FIRST_COMPLETED) or every
 * (PS_ALL_COMPLETED) future of fs[0..n) is done (cancelled counts as done),
 * ETIMEDOUT, or EINVAL (NULL fs with n > 0, a NULL future, unknown return_when,
 * NaN timeout). */
PS_EXTERN int ps_futures_wait(ps_future_t *const *fs, size_t n, double timeout,
                              int return_when);

#ifdef __cplusplus
}
#endif
#endif
