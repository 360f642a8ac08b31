/* SPDX-License-Identifier: MIT */
/* tests/test_lock.c - ps_lock_t (threading.Lock / multiprocessing.Lock).
 * Ports of CPython Lib/test/lock_tests.py BaseLockTests/LockTests, plus the pysync
 * contract: error codes, errno, signals, PS_SHARED ownership and robustness. */
#include <criterion/criterion.h>
#include <pysync/threading.h>

#include "helpers.h"

TestSuite(lock, .timeout = 30);
TestSuite(lock_shared, .timeout = 30);

/* Common context for small thread helpers. */
typedef struct lock_ctx {
    ps_lock_t *lock;
    bool blocking;
    double timeout;
    int rc;
    double elapsed;
    bool errno_ok;
    bool release_after;     /* acquire_once: release again if acquired */
    int release_rc;
    atomic_int started;
    atomic_int finished;
} lock_ctx_t;

static void *acquire_once(void *arg)
{
    lock_ctx_t *c = arg;
    atomic_fetch_add(&c->started, 1);
    double t0 = now();
    RECORD_RC_E(&c->rc, &c->errno_ok, ps_lock_acquire(c->lock, c->blocking, c->timeout));
    c->elapsed = now() - t0;
    if (c->release_after && c->rc == 0)
        c->release_rc = ps_lock_release(c->lock);
    atomic_fetch_add(&c->finished, 1);
    return NULL;
}

static void *release_once(void *arg)
{
    lock_ctx_t *c = arg;
    RECORD_RC_E(&c->rc, &c->errno_ok, ps_lock_release(c->lock));
    return NULL;
}

static void run_one(thread_fn fn, lock_ctx_t *c)
{
    c->errno_ok = true;
    run_threads(1, fn, c, 0);
}

/* ------------------------------------------------------------------ basics */

Test(lock, constructor)
{
    ps_lock_t l;
    CHECK_RC_E(ps_lock_init(&l, 0), 0);
    cr_assert(!ps_lock_locked(&l));
    CHECK_RC_E(ps_lock_destroy(&l), 0);

    ps_lock_t *p = ps_lock_new(0);
    cr_assert_not_null(p);
    cr_assert(!ps_lock_locked(p));
    ps_lock_free(p);
    ps_lock_free(NULL); /* no-op */
}

Test(lock, acquire_destroy)
{
    ps_lock_t *p = ps_lock_new(0);
    CHECK_RC_E(ps_lock_acquire(p, true, PS_FOREVER), 0);
    CHECK_RC_E(ps_lock_destroy(p), EBUSY);       /* held: EBUSY, nothing changes */
    cr_assert(ps_lock_locked(p));
    CHECK_RC_E(ps_lock_release(p), 0);
    CHECK_RC_E(ps_lock_acquire(p, false, PS_FOREVER), 0);
    CHECK_RC_E(ps_lock_release(p), 0);
    ps_lock_free(p);
}

Test(lock, null_object_einval)
{
    CHECK_RC_E(ps_lock_init(NULL, 0), EINVAL);
    CHECK_RC_E(ps_lock_destroy(NULL), EINVAL);
    CHECK_RC_E(ps_lock_acquire(NULL, true, PS_FOREVER), EINVAL);
    CHECK_RC_E(ps_lock_acquire(NULL, false, PS_FOREVER), EINVAL);
    CHECK_RC_E(ps_lock_release(NULL), EINVAL);
}

Test(lock, acquire_release)
{
    ps_lock_t *p = ps_lock_new(0);
    CHECK_RC_E(ps_lock_acquire(p, true, PS_FOREVER), 0);
    cr_assert(ps_lock_locked(p));
    CHECK_RC_E(ps_lock_release(p), 0);
    cr_assert(!ps_lock_locked(p));
    ps_lock_free(p);
}

Test(lock, try_acquire)
{
    ps_lock_t *p = ps_lock_new(0);
    CHECK_RC_E(ps_lock_acquire(p, false, PS_FOREVER), 0);
    CHECK_RC_E(ps_lock_acquire(p, false, PS_FOREVER), EAGAIN);
    CHECK_RC_E(ps_lock_acquire(p, false, -5.0), EAGAIN);
    CHECK_RC_E(ps_lock_release(p), 0);
    ps_lock_free(p);
}

Test(lock, try_acquire_contended)
{
    ps_lock_t *p = ps_lock_new(0);
    CHECK_RC(ps_lock_acquire(p, true, PS_FOREVER), 0);
    lock_ctx_t c = { .lock = p, .blocking = false, .timeout = PS_FOREVER };
    run_one(acquire_once, &c);
    cr_assert_eq(c.rc, EAGAIN, "got %d", c.rc);
    cr_assert(c.errno_ok, "errno changed in thread");
    CHECK_RC(ps_lock_release(p), 0);
    ps_lock_free(p);
}

Test(lock, blocking_false_with_timeout_einval)
{
    ps_lock_t *p = ps_lock_new(0);
    CHECK_RC_E(ps_lock_acquire(p, false, 0.0), EINVAL);
    CHECK_RC_E(ps_lock_acquire(p, false, 1.0), EINVAL);
    cr_assert(!ps_lock_locked(p), "EINVAL acquire must not take the lock");
    CHECK_RC(ps_lock_acquire(p, true, PS_FOREVER), 0);
    CHECK_RC_E(ps_lock_acquire(p, false, 0.5), EINVAL); /* held: still EINVAL, not EAGAIN */
    CHECK_RC(ps_lock_release(p), 0);
    ps_lock_free(p);
}

Test(lock, nan_timeout_einval)
{
    ps_lock_t *p = ps_lock_new(0);
    CHECK_RC_E(ps_lock_acquire(p, true, NAN), EINVAL);
    cr_assert(!ps_lock_locked(p));
    CHECK_RC(ps_lock_acquire(p, true, PS_FOREVER), 0);
    double t0 = now();
    CHECK_RC_E(ps_lock_acquire(p, true, NAN), EINVAL);
    cr_assert_lt(now() - t0, 5.0, "NaN acquire blocked");
    CHECK_RC(ps_lock_release(p), 0);
    ps_lock_free(p);
}

Test(lock, acquire_zero_timeout_held_etimedout)
{
    ps_lock_t *p = ps_lock_new(0);
    CHECK_RC_E(ps_lock_acquire(p, true, 0.0), 0);          /* free: timeout 0 succeeds */
    CHECK_RC_E(ps_lock_acquire(p, true, 0.0), ETIMEDOUT);  /* held: ETIMEDOUT at once */
    CHECK_RC(ps_lock_release(p), 0);
    ps_lock_free(p);
}

static void *acquire_release_timed(void *arg)
{
    lock_ctx_t *c = arg;
    atomic_fetch_add(&c->started, 1);
    int rc = ps_lock_acquire(c->lock, true, 10.0);
    if (rc == 0)
        rc = ps_lock_release(c->lock);
    if (rc == 0)
        atomic_fetch_add(&c->finished, 1);
    return NULL;
}

Test(lock, acquire_contended)
{
    ps_lock_t *p = ps_lock_new(0);
    CHECK_RC(ps_lock_acquire(p, true, PS_FOREVER), 0);
    lock_ctx_t c = { .lock = p };
    enum { N = 5 };
    pthread_t t[N];
    start_threads(t, N, acquire_release_timed, &c, 0);
    cr_assert(wait_count(&c.started, N, 5.0));
    sleep_s(0.05);
    cr_assert_eq(atomic_load(&c.finished), 0, "a thread got a held lock");
    CHECK_RC(ps_lock_release(p), 0);
    join_threads(t, N, NULL);
    cr_assert_eq(atomic_load(&c.finished), N);
    cr_assert(!ps_lock_locked(p));
    ps_lock_free(p);
}

Test(lock, timeout)
{
    ps_lock_t *p = ps_lock_new(0);
    /* TIMEOUT_MAX-like huge values are fine on a free lock */
    CHECK_RC_E(ps_lock_acquire(p, true, 1e300), 0);
    CHECK_RC(ps_lock_release(p), 0);
    CHECK_RC_E(ps_lock_acquire(p, true, INFINITY), 0);
    CHECK_RC(ps_lock_release(p), 0);
    CHECK_RC_E(ps_lock_acquire(p, true, -100.0), 0);
    CHECK_RC(ps_lock_release(p), 0);
    double t0 = now();
    CHECK_RC_E(ps_lock_acquire(p, true, 5.0), 0);
    cr_assert_lt(now() - t0, 5.0);
    /* held by main: a 0.2 s acquire from another thread times out after >= 0.2 s */
    lock_ctx_t c = { .lock = p, .blocking = true, .timeout = 0.2 };
    run_one(acquire_once, &c);
    cr_assert_eq(c.rc, ETIMEDOUT, "got %d", c.rc);
    cr_assert_geq(c.elapsed, LOWER_BOUND(0.2), "timed out after %.4f s", c.elapsed);
    cr_assert(c.errno_ok, "errno changed by a timed-out acquire");
    /* and in the holder itself (not recursive: it times out) */
    t0 = now();
    CHECK_RC_E(ps_lock_acquire(p, true, 0.2), ETIMEDOUT);
    cr_assert_geq(now() - t0, LOWER_BOUND(0.2));
    CHECK_RC(ps_lock_release(p), 0);
    ps_lock_free(p);
}

/* Huge, infinite and negative timeouts wait until the lock is released. */
Test(lock, huge_timeouts_wait_forever)
{
    const double timeouts[] = { 1e300, 1e20, INFINITY, -100.0, PS_FOREVER };
    ps_lock_t *p = ps_lock_new(0);
    for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++) {
        CHECK_RC(ps_lock_acquire(p, true, PS_FOREVER), 0);
        lock_ctx_t c = { .lock = p, .blocking = true, .timeout = timeouts[i], .errno_ok = true };
        pthread_t t;
        start_threads(&t, 1, acquire_once, &c, 0);
        cr_assert(wait_count(&c.started, 1, 5.0));
        sleep_s(0.05);
        cr_assert_eq(atomic_load(&c.finished), 0, "timeout %g: acquire returned %d early",
                     timeouts[i], c.rc);
        CHECK_RC(ps_lock_release(p), 0);
        join_threads(&t, 1, NULL);
        cr_assert_eq(c.rc, 0, "timeout %g: got %d", timeouts[i], c.rc);
        CHECK_RC(ps_lock_release(p), 0);
    }
    ps_lock_free(p);
}

typedef struct reacq_ctx {
    ps_lock_t *lock;
    atomic_int phase;
    int rc1, rc2;
} reacq_ctx_t;

static void *reacquire_thread(void *arg)
{
    reacq_ctx_t *c = arg;
    c->rc1 = ps_lock_acquire(c->lock, true, 5.0);
    atomic_store(&c->phase, 1);
    c->rc2 = ps_lock_acquire(c->lock, true, 10.0);
    atomic_store(&c->phase, 2);
    return NULL;
}

Test(lock, reacquire)
{
    ps_lock_t *p = ps_lock_new(0);
    reacq_ctx_t c = { .lock = p };
    pthread_t t;
    start_threads(&t, 1, reacquire_thread, &c, 0);
    cr_assert(wait_count(&c.phase, 1, 5.0));
    sleep_s(0.05);
    cr_assert_eq(atomic_load(&c.phase), 1, "Lock is recursive: second acquire did not block");
    CHECK_RC(ps_lock_release(p), 0);     /* another thread releases it */
    join_threads(&t, 1, NULL);
    cr_assert_eq(c.rc1, 0);
    cr_assert_eq(c.rc2, 0, "got %d", c.rc2);
    cr_assert(ps_lock_locked(p));
    CHECK_RC(ps_lock_release(p), 0);
    ps_lock_free(p);
}

Test(lock, different_thread)
{
    ps_lock_t *p = ps_lock_new(0);
    CHECK_RC(ps_lock_acquire(p, true, PS_FOREVER), 0);
    lock_ctx_t c = { .lock = p };
    run_one(release_once, &c);
    cr_assert_eq(c.rc, 0, "release by another thread: got %d", c.rc);
    cr_assert(c.errno_ok);
    cr_assert(!ps_lock_locked(p));
    CHECK_RC(ps_lock_acquire(p, false, PS_FOREVER), 0);
    CHECK_RC(ps_lock_release(p), 0);
    ps_lock_free(p);
}

Test(lock, state_after_timeout)
{
    ps_lock_t *p = ps_lock_new(0);
    CHECK_RC(ps_lock_acquire(p, true, PS_FOREVER), 0);
    CHECK_RC(ps_lock_acquire(p, true, 0.01), ETIMEDOUT);
    CHECK_RC(ps_lock_release(p), 0);
    cr_assert(!ps_lock_locked(p));
    CHECK_RC(ps_lock_acquire(p, false, PS_FOREVER), 0);
    CHECK_RC(ps_lock_release(p), 0);
    ps_lock_free(p);
}

Test(lock, release_unlocked_eperm)
{
    ps_lock_t l;
    CHECK_RC(ps_lock_init(&l, 0), 0);
    CHECK_RC_E(ps_lock_release(&l), EPERM);
    CHECK_RC(ps_lock_acquire(&l, true, PS_FOREVER), 0);
    CHECK_RC_E(ps_lock_release(&l), 0);
    CHECK_RC_E(ps_lock_release(&l), EPERM);
    cr_assert(!ps_lock_locked(&l));
    CHECK_RC(ps_lock_destroy(&l), 0);
}

Test(lock, locked)
{
    ps_lock_t *p = ps_lock_new(0);
    cr_assert(!ps_lock_locked(p));
    CHECK_RC(ps_lock_acquire(p, true, PS_FOREVER), 0);
    cr_assert(ps_lock_locked(p));
    CHECK_RC(ps_lock_acquire(p, true, 0.01), ETIMEDOUT);
    cr_assert(ps_lock_locked(p));
    CHECK_RC(ps_lock_release(p), 0);
    cr_assert(!ps_lock_locked(p));
    ps_lock_free(p);
}

/* ------------------------------------------------------------------ counters */

enum { CT_THREADS = 8, CT_ITERS = 20000 };

typedef struct counter_ctx {
    ps_lock_t *lock;
    long counter;
    atomic_int errors;
} counter_ctx_t;

/* take/give adapters for increment_under_lock */
static int lock_take_forever(void *l) { return ps_lock_acquire(l, true, PS_FOREVER); }
static int lock_take_10s(void *l) { return ps_lock_acquire(l, true, 10.0); }
static int lock_give(void *l) { return ps_lock_release(l); }

static void *counter_thread(void *arg)
{
    counter_ctx_t *c = arg;
    if (increment_under_lock(&c->counter, CT_ITERS, lock_take_forever, lock_give, c->lock) != 0)
        atomic_fetch_add(&c->errors, 1);
    return NULL;
}

Test(lock, counter_8_threads)
{
    counter_ctx_t c = { .lock = ps_lock_new(0) };
    run_threads(CT_THREADS, counter_thread, &c, 0);
    cr_assert_eq(atomic_load(&c.errors), 0);
    cr_assert_eq(c.counter, (long)CT_THREADS * CT_ITERS, "counter %ld", c.counter);
    cr_assert(!ps_lock_locked(c.lock));
    ps_lock_free(c.lock);
}

/* ------------------------------------------------------------------ signals */

static void signal_test(ps_lock_t *p)
{
    CHECK_RC(ps_lock_acquire(p, true, PS_FOREVER), 0);
    /* timed wait: signals must not end it early */
    lock_ctx_t c = { .lock = p, .blocking = true, .timeout = 0.3, .errno_ok = true };
    cr_assert_gt(run_thread_under_signals(acquire_once, &c), 0);
    cr_assert_eq(c.rc, ETIMEDOUT, "got %d (%s)", c.rc, strerror(c.rc));
    cr_assert_geq(c.elapsed, LOWER_BOUND(0.3), "returned after %.4f s", c.elapsed);
    cr_assert(c.errno_ok, "errno changed (EINTR leaked?)");

    /* untimed wait: must still be waiting after a storm, then get the lock */
    lock_ctx_t d = { .lock = p, .blocking = true, .timeout = PS_FOREVER, .errno_ok = true,
                     .release_after = true, .release_rc = -1 };
    pthread_t t;
    start_threads(&t, 1, acquire_once, &d, 0);
    cr_assert(wait_count(&d.started, 1, 5.0));
    signal_thread_for(t, 0.2);
    cr_assert_eq(atomic_load(&d.finished), 0, "untimed acquire returned %d during signals", d.rc);
    CHECK_RC(ps_lock_release(p), 0);
    join_threads(&t, 1, NULL);
    cr_assert_eq(d.rc, 0);
    cr_assert(d.errno_ok);
    cr_assert_eq(d.release_rc, 0);
    cr_assert(!ps_lock_locked(p));
}

Test(lock, signal_does_not_end_wait)
{
    ps_lock_t *p = ps_lock_new(0);
    signal_test(p);
    ps_lock_free(p);
}

/* ================================================================== PS_SHARED */

Test(lock_shared, basics)
{
    ps_lock_t *p = ps_lock_new(PS_SHARED);
    cr_assert_not_null(p);
    cr_assert(!ps_lock_locked(p));
    CHECK_RC_E(ps_lock_acquire(p, false, PS_FOREVER), 0);
    cr_assert(ps_lock_locked(p));
    CHECK_RC_E(ps_lock_acquire(p, false, PS_FOREVER), EAGAIN);
    CHECK_RC_E(ps_lock_acquire(p, false, 0.0), EINVAL);
    CHECK_RC_E(ps_lock_acquire(p, true, NAN), EINVAL);
    CHECK_RC_E(ps_lock_acquire(p, true, 0.0), ETIMEDOUT);
    double t0 = now();
    CHECK_RC_E(ps_lock_acquire(p, true, 0.2), ETIMEDOUT);  /* not recursive, not EDEADLK */
    cr_assert_geq(now() - t0, LOWER_BOUND(0.2));
    CHECK_RC_E(ps_lock_destroy(p), EBUSY);
    CHECK_RC_E(ps_lock_release(p), 0);
    CHECK_RC_E(ps_lock_release(p), EPERM);
    cr_assert(!ps_lock_locked(p));
    ps_lock_free(p);

    ps_lock_t l;   /* in-place init also accepts PS_SHARED */
    CHECK_RC_E(ps_lock_init(&l, PS_SHARED), 0);
    CHECK_RC_E(ps_lock_acquire(&l, true, PS_FOREVER), 0);
    CHECK_RC_E(ps_lock_release(&l), 0);
    CHECK_RC_E(ps_lock_destroy(&l), 0);
}

Test(lock_shared, timeout_other_thread)
{
    ps_lock_t *p = ps_lock_new(PS_SHARED);
    CHECK_RC(ps_lock_acquire(p, true, PS_FOREVER), 0);
    lock_ctx_t c = { .lock = p, .blocking = true, .timeout = 0.2 };
    run_one(acquire_once, &c);
    cr_assert_eq(c.rc, ETIMEDOUT, "got %d", c.rc);
    cr_assert_geq(c.elapsed, LOWER_BOUND(0.2), "after %.4f s", c.elapsed);
    cr_assert(c.errno_ok);
    lock_ctx_t d = { .lock = p, .blocking = false, .timeout = PS_FOREVER };
    run_one(acquire_once, &d);
    cr_assert_eq(d.rc, EAGAIN, "got %d", d.rc);
    CHECK_RC(ps_lock_release(p), 0);
    ps_lock_free(p);
}

Test(lock_shared, release_by_other_thread_eperm)
{
    ps_lock_t *p = ps_lock_new(PS_SHARED);
    CHECK_RC(ps_lock_acquire(p, true, PS_FOREVER), 0);
    lock_ctx_t c = { .lock = p };
    run_one(release_once, &c);
    cr_assert_eq(c.rc, EPERM, "release of a shared lock by a non-owner thread: got %d", c.rc);
    cr_assert(c.errno_ok);
    cr_assert(ps_lock_locked(p));
    CHECK_RC(ps_lock_release(p), 0);
    ps_lock_free(p);
}

static int child_release(void *arg)
{
    return ps_lock_release(arg);
}

Test(lock_shared, release_by_other_process_eperm)
{
    ps_lock_t *p = ps_lock_new(PS_SHARED);
    CHECK_RC(ps_lock_acquire(p, true, PS_FOREVER), 0);
    int code = child_wait(fork_child(child_release, p), 10.0);
    cr_assert_eq(code, EPERM, "child's release of the parent's lock returned %d", code);
    cr_assert(ps_lock_locked(p));
    CHECK_RC(ps_lock_release(p), 0);
    ps_lock_free(p);
}

Test(lock_shared, signal_does_not_end_wait)
{
    ps_lock_t *p = ps_lock_new(PS_SHARED);
    signal_test(p);
    ps_lock_free(p);
}

enum { SH_PROCS = 4, SH_ITERS = 20000 };

typedef struct shared_counter {
    ps_lock_t *lock;
    long counter;
} shared_counter_t;

static int counter_child(void *arg)
{
    shared_counter_t *s = arg;
    return increment_under_lock(&s->counter, SH_ITERS, lock_take_10s, lock_give, s->lock);
}

Test(lock_shared, counter_4_processes)
{
    shared_counter_t *s = shm_alloc(sizeof *s);
    s->lock = ps_lock_new(PS_SHARED);
    cr_assert_not_null(s->lock);
    pid_t pids[SH_PROCS];
    fork_children(pids, SH_PROCS, counter_child, s);
    CHECK_CHILDREN(pids, SH_PROCS, 20.0, 0);
    cr_assert_eq(s->counter, (long)SH_PROCS * SH_ITERS, "counter %ld", s->counter);
    cr_assert(!ps_lock_locked(s->lock));
    ps_lock_free(s->lock);
    shm_free(s, sizeof *s);
}

/* ---- owner death ---- */

typedef struct holder {
    ps_lock_t *lock;
    atomic_int held;
    int how;          /* 0: wait to be killed, 1: _exit(0) holding it */
} holder_t;

static int holder_child(void *arg)
{
    holder_t *h = arg;
    if (ps_lock_acquire(h->lock, true, 10.0) != 0)
        return 2;
    atomic_store(&h->held, 1);
    if (h->how == 1)
        _exit(0);
    for (;;)
        pause();
}

/* The recovering caller holds the lock once and it then works normally. */
static void check_recovered(ps_lock_t *p)
{
    cr_assert(ps_lock_locked(p));
    CHECK_RC_E(ps_lock_release(p), 0);
    CHECK_RC_E(ps_lock_release(p), EPERM);
    cr_assert(!ps_lock_locked(p));
    CHECK_RC_E(ps_lock_acquire(p, false, PS_FOREVER), 0);
    CHECK_RC_E(ps_lock_release(p), 0);
    CHECK_RC_E(ps_lock_acquire(p, true, 1.0), 0);
    CHECK_RC_E(ps_lock_release(p), 0);
    /* and another process can use it too */
    shared_counter_t *s = shm_alloc(sizeof *s);
    s->lock = p;
    int code = child_wait(fork_child(counter_child, s), 20.0);
    cr_assert_eq(code, 0, "child using the recovered lock ended with %d", code);
    cr_assert_eq(s->counter, SH_ITERS);
    shm_free(s, sizeof *s);
}

static pid_t start_holder(holder_t *h, int how)
{
    h->how = how;
    atomic_store(&h->held, 0);
    pid_t pid = fork_child(holder_child, h);
    cr_assert(wait_count(&h->held, 1, 5.0), "child never took the lock");
    return pid;
}

/* A child takes the lock and dies holding it (how: 0 SIGKILLed, 1 _exit); then
 * acquire(blocking, timeout) must say EOWNERDEAD promptly and the lock must recover. */
static void check_owner_death(int how, bool blocking, double timeout)
{
    holder_t *h = shm_alloc(sizeof *h);
    h->lock = ps_lock_new(PS_SHARED);
    pid_t pid = start_holder(h, how);
    if (how == 0)
        child_kill(pid);
    else
        cr_assert_eq(child_wait(pid, 10.0), 0);
    double t0 = now();
    CHECK_RC_E(ps_lock_acquire(h->lock, blocking, timeout), EOWNERDEAD);
    cr_assert_lt(now() - t0, 5.0);
    check_recovered(h->lock);
    ps_lock_free(h->lock);
    shm_free(h, sizeof *h);
}

Test(lock_shared, owner_killed_eownerdead) { check_owner_death(0, true, 5.0); }
Test(lock_shared, owner_killed_nonblocking_eownerdead) { check_owner_death(0, false, PS_FOREVER); }
Test(lock_shared, owner_killed_timed_zero_eownerdead) { check_owner_death(0, true, 0.0); }
Test(lock_shared, owner_exit_eownerdead) { check_owner_death(1, true, 5.0); }

/* A waiter already blocked when the owner dies gets EOWNERDEAD promptly. */
Test(lock_shared, owner_killed_while_blocked_waiter)
{
    holder_t *h = shm_alloc(sizeof *h);
    h->lock = ps_lock_new(PS_SHARED);
    pid_t pid = start_holder(h, 0);
    lock_ctx_t c = { .lock = h->lock, .blocking = true, .timeout = 8.0, .errno_ok = true };
    pthread_t t;
    start_threads(&t, 1, acquire_once, &c, 0);
    cr_assert(wait_count(&c.started, 1, 5.0));
    sleep_s(0.05);
    child_kill(pid);
    join_threads(&t, 1, NULL);
    cr_assert_eq(c.rc, EOWNERDEAD, "blocked waiter got %d (%s) after %.3f s", c.rc,
                 strerror(c.rc), c.elapsed);
    cr_assert_lt(c.elapsed, 5.0, "EOWNERDEAD took %.3f s", c.elapsed);
    /* the waiter thread holds it now and has exited: the next acquirer sees it dead too */
    int rc = ps_lock_acquire(h->lock, false, PS_FOREVER);
    cr_assert_eq(rc, EOWNERDEAD, "thread exited holding the recovered lock: got %d", rc);
    check_recovered(h->lock);
    ps_lock_free(h->lock);
    shm_free(h, sizeof *h);
}

static void *acquire_and_exit(void *arg)
{
    lock_ctx_t *c = arg;
    c->rc = ps_lock_acquire(c->lock, true, 5.0);
    return NULL;
}

Test(lock_shared, owner_thread_exit_eownerdead)
{
    ps_lock_t *p = ps_lock_new(PS_SHARED);
    lock_ctx_t c = { .lock = p };
    run_one(acquire_and_exit, &c);
    cr_assert_eq(c.rc, 0);
    CHECK_RC_E(ps_lock_acquire(p, true, 5.0), EOWNERDEAD);
    check_recovered(p);

    /* non-blocking acquirer too */
    run_one(acquire_and_exit, &c);
    cr_assert_eq(c.rc, 0);
    CHECK_RC_E(ps_lock_acquire(p, false, PS_FOREVER), EOWNERDEAD);
    check_recovered(p);
    ps_lock_free(p);
}

/* ================================================================== destroy races */

static void *acquire_release_5s(void *arg)
{
    lock_ctx_t *c = arg;
    atomic_fetch_add(&c->started, 1);
    int rc = ps_lock_acquire(c->lock, true, 5.0);
    if (rc == 0)
        rc = ps_lock_release(c->lock);
    if (rc == 0)
        atomic_fetch_add(&c->finished, 1);
    return NULL;
}

/* Threads blocked in acquire; the holder releases and destroys at once. EBUSY is
 * fine while they are still waiting or holding it; once destroy returns 0 nobody
 * may touch the lock (its page is unmapped). */
static void destroy_after_release(int flags)
{
    for (int iter = 0; iter < 20; iter++) {
        ps_lock_t *l = page_alloc();
        CHECK_RC(ps_lock_init(l, flags), 0);
        CHECK_RC(ps_lock_acquire(l, true, PS_FOREVER), 0);
        lock_ctx_t c = { .lock = l };
        pthread_t t[2];
        start_threads(t, 2, acquire_release_5s, &c, 0);
        cr_assert(wait_count(&c.started, 2, 5.0));
        sleep_s(0.01);
        CHECK_RC(ps_lock_release(l), 0);
        int rc;
        DESTROY_RETRY(rc, ps_lock_destroy(l));
        cr_assert_eq(rc, 0, "iteration %d: %d", iter, rc);
        page_free(l);
        join_threads(t, 2, NULL);
        cr_assert_eq(atomic_load(&c.finished), 2, "iteration %d: %d of 2 threads got the lock",
                     iter, atomic_load(&c.finished));
    }
}

Test(lock, destroy_right_after_release) { destroy_after_release(0); }
Test(lock_shared, destroy_right_after_release) { destroy_after_release(PS_SHARED); }

/* ================================================================== acquirer destroys */

/* PITFALLS 13: the acquirer, blocked in acquire, gets the lock, releases it,
 * destroys it and its page becomes PROT_NONE at once, while the releaser (another
 * thread: a private Lock has no owner) may still be inside release: release must
 * not touch the lock after the store that lets the acquirer in. */
Test(lock, acquirer_destroys_right_after_release)
{
    page_race_t r = { .init = race_lock_init, .waiter = race_lock_waiter,
                      .waker = race_lock_waker, .flags = 0, .max_jitter = 300 };
    CHECK_PAGE_RACE(&r, 3000, 0.5);
}

/* The same with an owned (PS_SHARED) Lock: the waker takes it, the acquirer blocks,
 * the waker releases it. */
Test(lock_shared, acquirer_destroys_right_after_release)
{
    page_race_t r = { .init = race_owned_lock_init, .waiter = race_owned_lock_waiter,
                      .waker = race_owned_lock_waker, .flags = PS_SHARED, .max_jitter = 300 };
    CHECK_PAGE_RACE(&r, 3000, 0.5);
}
