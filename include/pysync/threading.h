/* SPDX-License-Identifier: MIT */
/* pysync/threading.h - Python's threading module for C: Lock, RLock, Condition,
 * Semaphore, BoundedSemaphore, Event, Barrier, Thread, Timer.
 *
 * Every int-returning call returns 0 or a positive errno value and leaves errno
 * alone. Timeouts are seconds; negative or INFINITY waits forever, NaN is EINVAL.
 * Pass PS_SHARED for objects that live in memory shared between processes.
 * The struct members are private: use the functions. See pysync(7). */
#ifndef PYSYNC_THREADING_H
#define PYSYNC_THREADING_H

#include <pysync/base.h>

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PS_SHARED 1        /* object is shared between processes (MAP_SHARED memory) */
#define PS_FOREVER (-1.0)  /* timeout that never expires */

/* Private: an all-zero initializer that -Wextra accepts in C and in C++. */
#ifdef __cplusplus
#define PS__ZEROED {}
#else
#define PS__ZEROED { 0 }
#endif

/* Private: the callers inside a blocking call of an object, which destroy counts.
 * Shared objects also record who some of them are, so that destroy can discount
 * a caller whose process was killed (see EBUSY in pysync(7)). */
#define PS__INSIDE_IDS 8
struct ps__inside {
    unsigned count;                             /* callers inside */
    unsigned long long ids[PS__INSIDE_IDS];     /* shared: pid << 32 | tid, 0 free */
};

/* ---- Lock: threading.Lock / multiprocessing.Lock ---- */
typedef struct ps_lock {
    union {
        unsigned word;          /* private: 0 free, 1 held, 2 held with sleepers */
        pthread_mutex_t mutex;  /* PS_SHARED: robust, process-shared */
    } _u;
    int _flags;                 /* next to the word: the fast path reads both */
    struct ps__inside _inside;  /* callers inside a blocking acquire */
} ps_lock_t;

/* A zeroed ps_lock_t (static storage, calloc) is an unlocked private lock. */
#define PS_LOCK_INITIALIZER PS__ZEROED

PS_EXTERN int ps_lock_init(ps_lock_t *lock, int flags);        /* flags: 0 or PS_SHARED */
PS_EXTERN int ps_lock_destroy(ps_lock_t *lock);                /* EBUSY while held */
PS_EXTERN ps_lock_t *ps_lock_new(int flags);                   /* NULL + errno on failure */
PS_EXTERN void ps_lock_free(ps_lock_t *lock);
/* 0, EAGAIN (!blocking and held), ETIMEDOUT, EINVAL, EOWNERDEAD (shared, owner died). */
PS_EXTERN int ps_lock_acquire(ps_lock_t *lock, bool blocking, double timeout);
PS_EXTERN int ps_lock_release(ps_lock_t *lock);                /* EPERM: not held (shared: not owner) */
PS_EXTERN bool ps_lock_locked(const ps_lock_t *lock);

/* ---- RLock: threading.RLock ---- */
typedef struct ps_rlock {
    union {
        unsigned word;          /* private: as ps_lock_t */
        pthread_mutex_t mutex;  /* PS_SHARED: robust, process-shared; depth in _depth */
    } _u;
    unsigned long _owner;       /* private: kernel tid of the holder */
    unsigned _depth;            /* recursion depth, written by the holder only */
    int _flags;
    struct ps__inside _inside;  /* callers inside a blocking acquire */
} ps_rlock_t;

/* A zeroed ps_rlock_t is an unlocked private RLock. */
#define PS_RLOCK_INITIALIZER PS__ZEROED

PS_EXTERN int ps_rlock_init(ps_rlock_t *rlock, int flags);
PS_EXTERN int ps_rlock_destroy(ps_rlock_t *rlock);             /* EBUSY while held */
PS_EXTERN ps_rlock_t *ps_rlock_new(int flags);
PS_EXTERN void ps_rlock_free(ps_rlock_t *rlock);
PS_EXTERN int ps_rlock_acquire(ps_rlock_t *rlock, bool blocking, double timeout); /* as ps_lock_acquire */
PS_EXTERN int ps_rlock_release(ps_rlock_t *rlock);             /* EPERM: caller is not the owner */

/* ---- Condition: threading.Condition ---- */
#define PS_CONDITION_SHARED_WAITERS 64  /* most waiters at once on a PS_SHARED one */
struct ps__cond_waiter;
struct ps__cond_slot {          /* private: a PS_SHARED waiter's place */
    unsigned state;             /* futex word: free, waiting, notified */
    unsigned ticket;            /* arrival order */
    unsigned long long id;      /* pid << 32 | tid of the waiter */
};
typedef struct ps_condition {
    ps_rlock_t _own;            /* used when no lock was passed to init */
    ptrdiff_t _lock_off;        /* offset from this object to its RLock (no raw pointer) */
    int _flags;
    unsigned _waiters;          /* private: callers inside wait */
    struct ps__cond_waiter *_head, *_tail; /* private: FIFO of waiters */
    unsigned _next_ticket;      /* shared: ticket of the next waiter */
    unsigned long long _used;   /* shared: bit i set while slot i may be taken */
    struct ps__cond_slot _slots[PS_CONDITION_SHARED_WAITERS];
} ps_condition_t;

/* A zeroed ps_condition_t is a private condition with its own RLock. */
#define PS_CONDITION_INITIALIZER PS__ZEROED

PS_EXTERN int ps_condition_init(ps_condition_t *cond, ps_rlock_t *lock, int flags); /* lock NULL: own RLock */
PS_EXTERN int ps_condition_destroy(ps_condition_t *cond);      /* EBUSY while waited on */
PS_EXTERN ps_condition_t *ps_condition_new(ps_rlock_t *lock, int flags);
PS_EXTERN void ps_condition_free(ps_condition_t *cond);
PS_EXTERN int ps_condition_acquire(ps_condition_t *cond, bool blocking, double timeout);
PS_EXTERN int ps_condition_release(ps_condition_t *cond);
/* Releases the lock fully, waits, restores the depth: 0 notified, ETIMEDOUT, EPERM. */
PS_EXTERN int ps_condition_wait(ps_condition_t *cond, double timeout);
/* Waits until predicate(arg) is true: 0 if it is true on return, else ETIMEDOUT. */
PS_EXTERN int ps_condition_wait_for(ps_condition_t *cond, bool (*predicate)(void *arg), void *arg,
                           double timeout);
PS_EXTERN int ps_condition_notify(ps_condition_t *cond, unsigned n); /* wakes <= n, oldest first */
PS_EXTERN int ps_condition_notify_all(ps_condition_t *cond);

/* ---- Semaphore, BoundedSemaphore ---- */
typedef struct ps_semaphore {
    unsigned long long _word;   /* low half: the value (futex word); high: sleepers */
    unsigned _bound;            /* bounded: the initial value */
    int _flags;
    struct ps__inside _inside;  /* callers inside a blocking acquire */
} ps_semaphore_t;

/* Private semaphores in static storage (a zeroed one is not valid). */
#define PS_SEMAPHORE_INITIALIZER(value) { (value), 0x7fffffffu, 0, { 0, { 0 } } }
#define PS_BOUNDED_SEMAPHORE_INITIALIZER(value) { (value), (value), 0, { 0, { 0 } } }

PS_EXTERN int ps_semaphore_init(ps_semaphore_t *sem, int value, int flags); /* value < 0: EINVAL */
PS_EXTERN int ps_bounded_semaphore_init(ps_semaphore_t *sem, int value, int flags);
PS_EXTERN int ps_semaphore_destroy(ps_semaphore_t *sem);       /* EBUSY while waited on */
PS_EXTERN ps_semaphore_t *ps_semaphore_new(int value, int flags);
PS_EXTERN ps_semaphore_t *ps_bounded_semaphore_new(int value, int flags);
PS_EXTERN void ps_semaphore_free(ps_semaphore_t *sem);
PS_EXTERN int ps_semaphore_acquire(ps_semaphore_t *sem, bool blocking, double timeout);
PS_EXTERN int ps_semaphore_release(ps_semaphore_t *sem, unsigned n); /* n == 0: EINVAL; EOVERFLOW */
PS_EXTERN int ps_semaphore_value(const ps_semaphore_t *sem);

/* ---- Event ---- */
typedef struct ps_event {
    /* First, so that its count (written by every waiter, even one that only
     * spins) is never on the cache line of _state, which set swaps. */
    struct ps__inside _inside;  /* callers inside wait */
    unsigned _state;            /* futex word: bit 0 set, bit 1 sleepers, 2.. sets */
    int _flags;
} ps_event_t;

/* A zeroed ps_event_t is a private event, not set. */
#define PS_EVENT_INITIALIZER PS__ZEROED

PS_EXTERN int ps_event_init(ps_event_t *ev, int flags);
PS_EXTERN int ps_event_destroy(ps_event_t *ev);                /* EBUSY while waited on */
PS_EXTERN ps_event_t *ps_event_new(int flags);
PS_EXTERN void ps_event_free(ps_event_t *ev);
PS_EXTERN int ps_event_set(ps_event_t *ev);
PS_EXTERN int ps_event_clear(ps_event_t *ev);
PS_EXTERN bool ps_event_is_set(const ps_event_t *ev);
PS_EXTERN int ps_event_wait(ps_event_t *ev, double timeout);   /* 0 if set, else ETIMEDOUT */

/* ---- Barrier ---- */
typedef struct ps_barrier {
    pthread_mutex_t _mutex;     /* guards the fields below; robust when shared */
    unsigned _seq;              /* futex word, bumped by every trip, break and reset */
    unsigned _gen;              /* current round */
    unsigned _count;            /* arrived in this round */
    unsigned _parties;
    unsigned _broken;
    unsigned long long _reset_rounds; /* bit (round % 64): that round ended by reset */
    void (*_action)(void *);
    void *_arg;
    double _timeout;
    int _flags;
    struct ps__inside _inside;  /* callers inside wait, of any round */
} ps_barrier_t;

PS_EXTERN int ps_barrier_init(ps_barrier_t *b, unsigned parties, void (*action)(void *), void *arg,
                     double timeout, int flags);        /* parties == 0: EINVAL */
PS_EXTERN int ps_barrier_destroy(ps_barrier_t *b);             /* EBUSY while waited on */
PS_EXTERN ps_barrier_t *ps_barrier_new(unsigned parties, void (*action)(void *), void *arg,
                             double timeout, int flags);
PS_EXTERN void ps_barrier_free(ps_barrier_t *b);
/* 0 and *index (0..parties-1), ETIMEDOUT (this caller broke it), EPIPE (broken). */
PS_EXTERN int ps_barrier_wait(ps_barrier_t *b, double timeout, unsigned *index); /* timeout < 0: default */
PS_EXTERN int ps_barrier_reset(ps_barrier_t *b);
PS_EXTERN int ps_barrier_abort(ps_barrier_t *b);
PS_EXTERN unsigned ps_barrier_parties(const ps_barrier_t *b);
PS_EXTERN unsigned ps_barrier_n_waiting(const ps_barrier_t *b);
PS_EXTERN bool ps_barrier_broken(const ps_barrier_t *b);

/* ---- Thread ---- */
typedef struct ps_thread ps_thread_t;

/* name NULL: "Thread-N"; a name longer than 63 bytes is cut to its first 63 bytes.
 * The daemon flag is inherited from the calling thread, as in Python. */
PS_EXTERN ps_thread_t *ps_thread_new(void *(*target)(void *), void *arg, const char *name);
PS_EXTERN int ps_thread_set_daemon(ps_thread_t *t, bool daemon); /* before start, else EINVAL */
PS_EXTERN bool ps_thread_daemon(const ps_thread_t *t);
PS_EXTERN int ps_thread_start(ps_thread_t *t);                 /* twice: EINVAL */
PS_EXTERN int ps_thread_join(ps_thread_t *t, double timeout, void **result); /* ETIMEDOUT; self: EDEADLK */
PS_EXTERN bool ps_thread_is_alive(const ps_thread_t *t);
PS_EXTERN const char *ps_thread_name(const ps_thread_t *t);
PS_EXTERN unsigned long ps_thread_ident(const ps_thread_t *t); /* 0 before start */
PS_EXTERN void ps_thread_free(ps_thread_t *t);                 /* a running thread is freed when it ends */
PS_EXTERN ps_thread_t *ps_current_thread(void);                /* any thread, also main; never NULL */

/* ---- Timer ---- */
typedef struct ps_timer ps_timer_t;

/* A timer is a thread (Python: Timer is a Thread subclass): made by a daemon
 * thread it is a daemon, which exit does not wait for; otherwise it is joined at
 * exit. ps_timer_set_daemon chooses. */
PS_EXTERN ps_timer_t *ps_timer_new(double interval, void (*fn)(void *), void *arg);
PS_EXTERN int ps_timer_set_daemon(ps_timer_t *t, bool daemon); /* before start, else EINVAL */
PS_EXTERN bool ps_timer_daemon(const ps_timer_t *t);
PS_EXTERN int ps_timer_start(ps_timer_t *t);
PS_EXTERN int ps_timer_cancel(ps_timer_t *t);                  /* fn will not run if it has not started */
PS_EXTERN int ps_timer_join(ps_timer_t *t, double timeout);
PS_EXTERN void ps_timer_free(ps_timer_t *t);

#ifdef __cplusplus
}
#endif
#endif
