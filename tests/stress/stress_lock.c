/* SPDX-License-Identifier: MIT */
/* tests/stress/stress_lock.c - exact counters under Lock, RLock (recursive),
 * Semaphore(1) and BoundedSemaphore, with blocking, non-blocking and timed acquires,
 * private and PS_SHARED objects, 4 threads. Plain program (no Criterion) so that it
 * runs under ThreadSanitizer (`make tsan`); exits non-zero on a wrong result. */
#include <pysync/threading.h>

#include "../helpers.h"

enum { THREADS = 4, ITERS = 100000 };

typedef struct shared_state {
    ps_lock_t *lock;
    ps_rlock_t *rlock;
    ps_semaphore_t *sem;
    ps_semaphore_t *bsem;      /* bounded, 2 slots */
    long lock_count, rlock_count, sem_count;
    atomic_int in_bsem;        /* holders of bsem right now */
    atomic_int bsem_max;
    atomic_int errors;
    atomic_int ready;          /* start gate: all threads begin together */
    bool shared;
} state_t;

static void error(state_t *s, const char *what, int rc)
{
    fprintf(stderr, "stress_lock: %s returned %d (%s)\n", what, rc, strerror(rc));
    atomic_fetch_add(&s->errors, 1);
}

/* acquire with a mix of modes: blocking, try + retry, timed */
static int lock_any(state_t *s, int i)
{
    int rc;
    switch (i % 3) {
    case 0:
        return ps_lock_acquire(s->lock, true, PS_FOREVER);
    case 1:
        while ((rc = ps_lock_acquire(s->lock, false, PS_FOREVER)) == EAGAIN)
            sched_yield();
        return rc;
    default:
        /* libtsan (gcc 12) does not intercept pthread_mutex_clocklock, which a
         * timed acquire of a PS_SHARED lock uses, and would report the matching
         * unlock as "unlock of an unlocked mutex": under TSan, acquire untimed. */
        if (UNDER_TSAN && s->shared)
            return ps_lock_acquire(s->lock, true, PS_FOREVER);
        while ((rc = ps_lock_acquire(s->lock, true, 0.001)) == ETIMEDOUT)
            ;
        return rc;
    }
}

static void *worker(void *arg)
{
    state_t *s = arg;
    atomic_fetch_add(&s->ready, 1);
    while (atomic_load(&s->ready) < THREADS)
        sched_yield();
    for (int i = 0; i < ITERS; i++) {
        int rc = lock_any(s, i);
        if (rc) {
            error(s, "ps_lock_acquire", rc);
            continue;
        }
        s->lock_count++;
        if ((rc = ps_lock_release(s->lock)))
            error(s, "ps_lock_release", rc);

        if ((rc = ps_rlock_acquire(s->rlock, true, PS_FOREVER)) ||
            (rc = ps_rlock_acquire(s->rlock, i % 2 == 0, PS_FOREVER))) {
            error(s, "ps_rlock_acquire", rc);
            continue;
        }
        s->rlock_count++;
        if ((rc = ps_rlock_release(s->rlock)) || (rc = ps_rlock_release(s->rlock)))
            error(s, "ps_rlock_release", rc);

        if ((rc = ps_semaphore_acquire(s->sem, true, 10.0))) {
            error(s, "ps_semaphore_acquire", rc);
            continue;
        }
        s->sem_count++;
        if ((rc = ps_semaphore_release(s->sem, 1)))
            error(s, "ps_semaphore_release", rc);

        if (i % 8 == 0) {
            if ((rc = ps_semaphore_acquire(s->bsem, true, 10.0))) {
                error(s, "bounded acquire", rc);
                continue;
            }
            int in = atomic_fetch_add(&s->in_bsem, 1) + 1;
            int m = atomic_load(&s->bsem_max);
            while (in > m && !atomic_compare_exchange_weak(&s->bsem_max, &m, in))
                ;
            atomic_fetch_sub(&s->in_bsem, 1);
            if ((rc = ps_semaphore_release(s->bsem, 1)))
                error(s, "bounded release", rc);
        }
    }
    return NULL;
}

static int run(int flags)
{
    state_t s = {
        .lock = ps_lock_new(flags), .rlock = ps_rlock_new(flags),
        .sem = ps_semaphore_new(1, flags), .bsem = ps_bounded_semaphore_new(2, flags),
        .shared = flags != 0,
    };
    if (!s.lock || !s.rlock || !s.sem || !s.bsem) {
        perror("stress_lock: new");
        return 1;
    }
    double t0 = now();
    run_threads(THREADS, worker, &s, 0);
    long want = (long)THREADS * ITERS;
    int bad = atomic_load(&s.errors) != 0;
    if (s.lock_count != want || s.rlock_count != want || s.sem_count != want) {
        fprintf(stderr, "stress_lock: counters %ld %ld %ld, expected %ld\n", s.lock_count,
                s.rlock_count, s.sem_count, want);
        bad = 1;
    }
    if (atomic_load(&s.bsem_max) > 2 || ps_semaphore_value(s.bsem) != 2 ||
        ps_semaphore_value(s.sem) != 1) {
        fprintf(stderr, "stress_lock: bounded max %d, values %d %d\n",
                atomic_load(&s.bsem_max), ps_semaphore_value(s.bsem), ps_semaphore_value(s.sem));
        bad = 1;
    }
    if (ps_lock_locked(s.lock) || ps_rlock_release(s.rlock) != EPERM) {
        fprintf(stderr, "stress_lock: lock left held\n");
        bad = 1;
    }
    printf("stress_lock (%s): %d threads x %d iterations, %.2f s: %s\n",
           flags ? "PS_SHARED" : "private", THREADS, ITERS, now() - t0, bad ? "FAIL" : "ok");
    ps_lock_free(s.lock);
    ps_rlock_free(s.rlock);
    ps_semaphore_free(s.sem);
    ps_semaphore_free(s.bsem);
    return bad;
}

int main(void)
{
    int bad = run(0);
    bad |= run(PS_SHARED);
    return bad ? 1 : 0;
}
