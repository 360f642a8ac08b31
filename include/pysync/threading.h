/* pysync/threading.h - Python's threading module for C: Lock, RLock, Condition,
 * Semaphore, BoundedSemaphore, Event, Barrier, Thread, Timer.
 *
 * Every int-returning call returns 0 or a positive errno value and leaves errno
 * alone. Timeouts are seconds; negative or INFINITY waits forever, NaN is EINVAL.
 * Pass PS_SHARED for objects that live in memory shared between processes.
 * The struct members are private: use the functions. See pysync(7). */
#ifndef PYSYNC_THREADING_H
#define PYSYNC_THREADING_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PS_SHARED 1        /* object is shared between processes (MAP_SHARED memory) */
#define PS_FOREVER (-1.0)  /* timeout that never expires */

/* ---- Lock: threading.Lock / multiprocessing.Lock ---- */
typedef struct ps_lock {
    union {
        unsigned word;          /* private: 0 free, 1 held, 2 held with sleepers */
        pthread_mutex_t mutex;  /* PS_SHARED: robust, process-shared */
    } _u;
    unsigned _waiters;          /* callers inside a blocking acquire */
    int _flags;
} ps_lock_t;

int  ps_lock_init(ps_lock_t *lock, int flags);          /* flags: 0 or PS_SHARED */
int  ps_lock_destroy(ps_lock_t *lock);                  /* EBUSY while held */
ps_lock_t *ps_lock_new(int flags);                      /* NULL + errno on failure */
void ps_lock_free(ps_lock_t *lock);
/* 0, EAGAIN (!blocking and held), ETIMEDOUT, EINVAL, EOWNERDEAD (shared, owner died). */
int  ps_lock_acquire(ps_lock_t *lock, bool blocking, double timeout);
int  ps_lock_release(ps_lock_t *lock);                  /* EPERM: not held (shared: not owner) */
bool ps_lock_locked(const ps_lock_t *lock);

/* ---- RLock: threading.RLock ---- */
typedef struct ps_rlock {
    union {
        unsigned word;          /* private: as ps_lock_t */
        pthread_mutex_t mutex;  /* PS_SHARED: robust, recursive, process-shared */
    } _u;
    unsigned long _owner;       /* private: kernel tid of the holder */
    unsigned _depth;            /* recursion depth, written by the holder only */
    unsigned _waiters;          /* callers inside a blocking acquire */
    int _flags;
} ps_rlock_t;

int  ps_rlock_init(ps_rlock_t *rlock, int flags);
int  ps_rlock_destroy(ps_rlock_t *rlock);               /* EBUSY while held */
ps_rlock_t *ps_rlock_new(int flags);
void ps_rlock_free(ps_rlock_t *rlock);
int  ps_rlock_acquire(ps_rlock_t *rlock, bool blocking, double timeout); /* as ps_lock_acquire */
int  ps_rlock_release(ps_rlock_t *rlock);               /* EPERM: caller is not the owner */

/* ---- Condition: threading.Condition ---- */
struct ps_cond_waiter;
typedef struct ps_condition {
    ps_rlock_t _own;            /* used when no lock was passed to init */
    ptrdiff_t _lock_off;        /* offset from this object to its RLock (no raw pointer) */
    unsigned _seq;              /* shared: futex word, bumped by every notify */
    unsigned _waiters;          /* callers inside wait */
    unsigned _woken;            /* shared: waiters the kernel woke, not yet back */
    unsigned _signals;          /* shared: notifications for waiters not asleep */
    unsigned _signal_seq;       /* shared: _seq of the last notify leaving _signals */
    struct ps_cond_waiter *_head, *_tail; /* private: FIFO of waiters */
    int _flags;
} ps_condition_t;

int  ps_condition_init(ps_condition_t *cond, ps_rlock_t *lock, int flags); /* lock NULL: own RLock */
int  ps_condition_destroy(ps_condition_t *cond);        /* EBUSY while waited on */
ps_condition_t *ps_condition_new(ps_rlock_t *lock, int flags);
void ps_condition_free(ps_condition_t *cond);
int  ps_condition_acquire(ps_condition_t *cond, bool blocking, double timeout);
int  ps_condition_release(ps_condition_t *cond);
/* Releases the lock fully, waits, restores the depth: 0 notified, ETIMEDOUT, EPERM. */
int  ps_condition_wait(ps_condition_t *cond, double timeout);
/* Waits until predicate(arg) is true: 0 if it is true on return, else ETIMEDOUT. */
int  ps_condition_wait_for(ps_condition_t *cond, bool (*predicate)(void *arg), void *arg,
                           double timeout);
int  ps_condition_notify(ps_condition_t *cond, unsigned n);  /* wakes <= n, oldest first */
int  ps_condition_notify_all(ps_condition_t *cond);

/* ---- Semaphore, BoundedSemaphore ---- */
typedef struct ps_semaphore {
    unsigned _value;            /* futex word */
    unsigned _waiters;
    unsigned _bound;            /* bounded: the initial value */
    int _flags;
} ps_semaphore_t;

int  ps_semaphore_init(ps_semaphore_t *sem, int value, int flags);   /* value < 0: EINVAL */
int  ps_bounded_semaphore_init(ps_semaphore_t *sem, int value, int flags);
int  ps_semaphore_destroy(ps_semaphore_t *sem);         /* EBUSY while waited on */
ps_semaphore_t *ps_semaphore_new(int value, int flags);
ps_semaphore_t *ps_bounded_semaphore_new(int value, int flags);
void ps_semaphore_free(ps_semaphore_t *sem);
int  ps_semaphore_acquire(ps_semaphore_t *sem, bool blocking, double timeout);
int  ps_semaphore_release(ps_semaphore_t *sem, unsigned n); /* n == 0: EINVAL; EOVERFLOW */
int  ps_semaphore_value(const ps_semaphore_t *sem);

/* ---- Event ---- */
typedef struct ps_event {
    unsigned _state;            /* futex word: bit 0 set, bits 1.. count the sets */
    unsigned _waiters;
    int _flags;
} ps_event_t;

int  ps_event_init(ps_event_t *ev, int flags);
int  ps_event_destroy(ps_event_t *ev);                  /* EBUSY while waited on */
ps_event_t *ps_event_new(int flags);
void ps_event_free(ps_event_t *ev);
int  ps_event_set(ps_event_t *ev);
int  ps_event_clear(ps_event_t *ev);
bool ps_event_is_set(const ps_event_t *ev);
int  ps_event_wait(ps_event_t *ev, double timeout);     /* 0 if set, else ETIMEDOUT */

/* ---- Barrier ---- */
typedef struct ps_barrier {
    pthread_mutex_t _mutex;     /* guards the fields below; robust when shared */
    unsigned _seq;              /* futex word, bumped by every trip, break and reset */
    unsigned _gen;              /* current round */
    unsigned _count;            /* arrived in this round */
    unsigned _inside;           /* callers inside wait, of any round */
    unsigned _parties;
    unsigned _broken;
    unsigned long long _reset_rounds; /* bit (round % 64): that round ended by reset */
    void (*_action)(void *);
    void *_arg;
    double _timeout;
    int _flags;
} ps_barrier_t;

int  ps_barrier_init(ps_barrier_t *b, unsigned parties, void (*action)(void *), void *arg,
                     double timeout, int flags);        /* parties == 0: EINVAL */
int  ps_barrier_destroy(ps_barrier_t *b);               /* EBUSY while waited on */
ps_barrier_t *ps_barrier_new(unsigned parties, void (*action)(void *), void *arg,
                             double timeout, int flags);
void ps_barrier_free(ps_barrier_t *b);
/* 0 and *index (0..parties-1), ETIMEDOUT (this caller broke it), EPIPE (broken). */
int  ps_barrier_wait(ps_barrier_t *b, double timeout, unsigned *index); /* timeout < 0: default */
int  ps_barrier_reset(ps_barrier_t *b);
int  ps_barrier_abort(ps_barrier_t *b);
unsigned ps_barrier_parties(const ps_barrier_t *b);
unsigned ps_barrier_n_waiting(const ps_barrier_t *b);
bool ps_barrier_broken(const ps_barrier_t *b);

/* ---- Thread ---- */
typedef struct ps_thread ps_thread_t;

ps_thread_t *ps_thread_new(void *(*target)(void *), void *arg, const char *name); /* name NULL: "Thread-N" */
int  ps_thread_set_daemon(ps_thread_t *t, bool daemon); /* before start, else EINVAL */
bool ps_thread_daemon(const ps_thread_t *t);
int  ps_thread_start(ps_thread_t *t);                   /* twice: EINVAL */
int  ps_thread_join(ps_thread_t *t, double timeout, void **result); /* ETIMEDOUT; self: EDEADLK */
bool ps_thread_is_alive(const ps_thread_t *t);
const char *ps_thread_name(const ps_thread_t *t);
unsigned long ps_thread_ident(const ps_thread_t *t);    /* 0 before start */
void ps_thread_free(ps_thread_t *t);                    /* a running thread is freed when it ends */
ps_thread_t *ps_current_thread(void);                   /* any thread, also main; never NULL */

/* ---- Timer ---- */
typedef struct ps_timer ps_timer_t;

ps_timer_t *ps_timer_new(double interval, void (*fn)(void *), void *arg);
int  ps_timer_start(ps_timer_t *t);
int  ps_timer_cancel(ps_timer_t *t);    /* fn will not run if it has not started */
int  ps_timer_join(ps_timer_t *t, double timeout);
void ps_timer_free(ps_timer_t *t);

#ifdef __cplusplus
}
#endif
#endif
