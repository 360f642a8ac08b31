/* SPDX-License-Identifier: MIT */
/* What executors share: the public ps_executor_* calls check their arguments
 * and dispatch on the executor's ops. The thread executor lives in
 * lib/executor.c; a process executor (PS_PROCESSES) registers its ops from its
 * own file, e.g. from a constructor:
 *
 *     static const struct executor_ops ops = { ... };
 *     __attribute__((constructor)) static void reg(void) { executor_register_process(&ops); }
 *
 * and builds its futures with lib/future.h. Without one, ps_executor_new(n,
 * PS_PROCESSES) fails with ENOSYS. */
#ifndef PS_EXECUTOR_H
#define PS_EXECUTOR_H

#include <pysync/futures.h>

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "future.h"

struct executor_ops {
    /* max_workers is resolved (> 0), flags contain PS_PROCESSES. NULL + errno. */
    ps_executor_t *(*create)(unsigned max_workers, int flags);
    /* Arguments checked: fn != NULL, in != NULL or inlen == 0,
     * inlen <= PS_TASK_BYTES_MAX. NULL + errno (ESHUTDOWN, ENOMEM...). */
    ps_future_t *(*submit_bytes)(ps_executor_t *ex, future_bytes_fn fn, const void *in,
                                 size_t inlen);
    int (*shutdown)(ps_executor_t *ex, bool wait, bool cancel_futures);
    void (*free)(ps_executor_t *ex);         /* shutdown(ex, true, false), then unref */
    void (*destroy)(ps_executor_t *ex);      /* the last reference went: release it all */
};

/* The first member of every executor: what the public calls dispatch on. */
struct ps_executor {
    const struct executor_ops *ops;
    unsigned refs;                           /* the caller's handle (1 at create) + borrowers */
    ps_executor_t *reg_next;                 /* the at-exit registry */
    bool exit_seen;                          /* the at-exit hook has shut it down */
};

/* Keeps ex allocated (across a shutdown, a worker that outlives free...); the last
 * executor_unref calls ops->destroy. */
void executor_ref(ps_executor_t *ex);
void executor_unref(ps_executor_t *ex);

/* The at-exit registry of this process's executors (Python's _python_exit): at
 * exit executor_exiting() turns true (submits must then fail with ESHUTDOWN)
 * and each registered executor is shut down with wait, under a reference
 * (executor_ref), so its queued work finishes. A forked child starts
 * with an empty registry and a new executor_generation(). */
void executor_register(ps_executor_t *ex);
void executor_unregister(ps_executor_t *ex);      /* before the executor goes */
bool executor_exiting(void);
unsigned executor_generation(void);

/* Makes ps_executor_new(n, PS_PROCESSES) call ops->create. */
void executor_register_process(const struct executor_ops *ops);

/* max_workers 0: the number of CPUs the process may run on (sched_getaffinity). */
unsigned executor_default_workers(void);

#endif
