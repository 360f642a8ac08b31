/* SPDX-License-Identifier: MIT */
/* Futures as executors see them: make one, move it to RUNNING, complete it,
 * drop the executor's reference. The thread executor (lib/executor.c) and the
 * process executor use the same calls, so cancel, callbacks, waits and results
 * behave the same for both.
 *
 * A future is reference counted: future_new hands out two references, one for
 * the caller of submit (dropped by ps_future_free) and one for the executor
 * (dropped by future_release once the executor is done with the future: after
 * completing it, or after future_set_running found it cancelled). Whoever drops
 * the last one frees it; completing never touches a future the completer holds
 * no reference to.
 *
 * A process executor makes bytes futures (future_new_bytes, or future_new with
 * a pool of its own), calls future_set_running when a worker takes the task
 * (false: cancelled, do not send it), then future_complete_bytes with what the
 * worker wrote or its negative errno, or future_complete_error(f, EPIPE) if the
 * worker died, and future_release for its reference. f->ext->exec_data is its
 * to use. */
#ifndef PS_FUTURE_H
#define PS_FUTURE_H

#include <pysync/futures.h>

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "timing.h"

/* The state word (a futex word): the low two bits are the state, changed by one
 * compare-and-swap each (PENDING -> RUNNING -> FINISHED, or PENDING -> CANCELLED:
 * cancel and start have exactly one winner); the flags tell the thread that moves
 * it to a final state what else to do. */
enum {
    FUT_PENDING = 0,
    FUT_RUNNING = 1,
    FUT_FINISHED = 2,
    FUT_CANCELLED = 3,
    FUT_STATE = 3u,         /* mask */
    FUT_SLEEPERS = 4u,      /* a thread may sleep on the word: futex_wake it */
    FUT_SLOW = 8u,          /* callbacks or wait records: take the lock, notify */
};

enum { FUT_PTR = 1, FUT_BYTES = 2 };

typedef ssize_t (*future_bytes_fn)(const void *in, size_t inlen, void *out, size_t outcap);

struct future_callback {
    void (*fn)(ps_future_t *f, void *arg);
    void *arg;
};

struct future_waiter;           /* ps_futures_wait's record, on the waiter's stack */
struct future_wait_node {       /* one per future waited on */
    struct future_waiter *w;
    struct future_wait_node *prev, *next;
};

struct future_pool;

/* What most futures never need, allocated on first use (bytes futures: at once). */
struct future_ext {
    struct future_callback cb;      /* the first callback */
    struct future_callback *more;   /* the others, malloc'd */
    unsigned ncb, nmore_cap;        /* callbacks added (cb and more), room in more */
    struct future_wait_node *waiters;
    size_t inlen, outlen;           /* bytes: input and output sizes */
    int task_error;                 /* bytes: the task's error (positive), 0 if none */
    void *exec_data;                /* for the executor (bytes futures) */
};

/* One cache line: a pointer task touches nothing else. */
struct ps_future {
    unsigned state;             /* futex word: see above */
    unsigned refs;
    unsigned lock;              /* wordlock: ext's callbacks and wait nodes */
    unsigned char kind;         /* FUT_PTR or FUT_BYTES */
    union {
        void *(*ptr)(void *);
        future_bytes_fn bytes;
    } fn;
    void *arg;                  /* pointer task: its argument; bytes: the input copy */
    void *result;               /* pointer task: its value; bytes: the output copy */
    ps_future_t *next;          /* the executor's queue link (or the pool's) */
    struct future_pool *pool;   /* where it goes when freed; NULL: free() */
    struct future_ext *ext;     /* NULL until needed */
} __attribute__((aligned(64)));

static inline bool future_state_done(unsigned state)
{
    return (state & FUT_STATE) >= FUT_FINISHED;
}

/* ---- a cache of free futures, owned by one executor ----
 * It keeps as many futures as were ever outstanding at once, for reuse.
 * future_pool_close is the owner letting go: the pool and its memory go once
 * the last future made from it has been freed. */
struct future_pool *future_pool_new(void);
void future_pool_close(struct future_pool *pool);

/* A PENDING future with two references (see above); pool NULL: malloc. A bytes
 * future comes with its ext. NULL and errno ENOMEM. */
ps_future_t *future_new(struct future_pool *pool, int kind);
static inline ps_future_t *future_new_bytes(void)
{
    return future_new(NULL, FUT_BYTES);
}

/* PENDING -> RUNNING. False if it was cancelled: the executor must not run it
 * (and still drops its reference). */
static inline bool future_set_running(ps_future_t *f)
{
    unsigned old = __atomic_load_n(&f->state, __ATOMIC_RELAXED);
    while ((old & FUT_STATE) == FUT_PENDING)
        if (__atomic_compare_exchange_n(&f->state, &old, (old & ~FUT_STATE) | FUT_RUNNING,
                                        true, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return true;
    return false;
}

/* Completions, from PENDING or RUNNING: store the outcome, move to FINISHED, wake
 * the waiters and run the callbacks in the calling thread. False (nothing stored
 * or copied) if the future was already done (cancelled). The caller holds a
 * reference. */
bool future_complete_ptr(ps_future_t *f, void *result);
/* len >= 0: data[0..len) is copied as the result; len < 0: -len is the task's
 * error. ENOMEM while copying completes it with the error ENOMEM. */
bool future_complete_bytes(ps_future_t *f, const void *data, ssize_t len);
/* A bytes task failed with err (> 0), e.g. EPIPE: its worker process died. */
bool future_complete_error(ps_future_t *f, int err);
/* PENDING -> CANCELLED, as ps_future_cancel (true if cancelled, now or before). */
bool future_cancel(ps_future_t *f);

/* Drops one reference; the last one frees the future. */
void future_release(ps_future_t *f);

/* Waits until f is done: 0, or ETIMEDOUT once d has passed. */
int future_wait(ps_future_t *f, const deadline_t *d);

#endif
