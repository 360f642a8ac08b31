/* SPDX-License-Identifier: MIT */
/* tests/test_rlock.c - ps_rlock_t (threading.RLock).
 * Ports of CPython Lib/test/lock_tests.py BaseLockTests/RLockTests, plus error codes,
 * errno, signals, PS_SHARED robustness. */
#include <criterion/criterion.h>
#include <pysync/threading.h>

#include "helpers.h"

TestSuite(rlock, .timeout = 30);
TestSuite(rlock_shared, .timeout = 30);

typedef struct rl_ctx {
    ps_rlock_t *rl;
    bool blocking;
    double timeout;
    int rc;
    double elapsed;
    bool errno_ok;
    atomic_int started;
    atomic_int finished;
    atomic_int go;
} rl_ctx_t;

static void *rl_acquire_once(void *arg)
{
    rl_ctx_t *c = arg;
    atomic_fetch_add(&c->started, 1);
    double t0 = now();
    RECORD_RC_E(&c->rc, &c->errno_ok, ps_rlock_acquire(c->rl, c->blocking, c->timeout));
    c->elapsed = now() - t0;
    atomic_fetch_add(&c->finished, 1);
    return NULL;
}

static void *rl_release_once(void *arg)
{
    rl_ctx_t *c = arg;
    RECORD_RC_E(&c->rc, &c->errno_ok, ps_rlock_release(c->rl));
    return NULL;
}

static void rl_run_one(thread_fn fn, rl_ctx_t *c)
{
    c->errno_ok = true;
    run_threads(1, fn, c, 0);
}

/* Try-acquire from another thread (released again there if it succeeded). */
static void *rl_try_probe(void *arg)
{
    rl_ctx_t *c = arg;
    c->rc = ps_rlock_acquire(c->rl, false, PS_FOREVER);
    if (c->rc == 0)
        ps_rlock_release(c->rl);
    return NULL;
}

static bool rl_free_from_other_thread(ps_rlock_t *rl)
{
    rl_ctx_t c = { .rl = rl };
    rl_run_one(rl_try_probe, &c);
    return c.rc == 0;
}

static void *rl_acquire_release(void *arg)
{
    rl_ctx_t *c = arg;
    atomic_fetch_add(&c->started, 1);
    int rc = ps_rlock_acquire(c->rl, true, 10.0);
    if (rc == 0)
        rc = ps_rlock_release(c->rl);
    c->rc = rc;
    atomic_fetch_add(&c->finished, 1);
    return NULL;
}

static bool rl_usable_by_other_thread(ps_rlock_t *rl)
{
    rl_ctx_t c = { .rl = rl };
    rl_run_one(rl_acquire_release, &c);
    return c.rc == 0;
}

/* ------------------------------------------------------------------ basics */

Test(rlock, constructor)
{
    ps_rlock_t r;
    CHECK_RC_E(ps_rlock_init(&r, 0), 0);
    CHECK_RC_E(ps_rlock_destroy(&r), 0);
    ps_rlock_t *p = ps_rlock_new(0);
    cr_assert_not_null(p);
    ps_rlock_free(p);
    ps_rlock_free(NULL);
}

Test(rlock, null_object_einval)
{
    CHECK_RC_E(ps_rlock_init(NULL, 0), EINVAL);
    CHECK_RC_E(ps_rlock_destroy(NULL), EINVAL);
    CHECK_RC_E(ps_rlock_acquire(NULL, true, PS_FOREVER), EINVAL);
    CHECK_RC_E(ps_rlock_release(NULL), EINVAL);
}

Test(rlock, acquire_destroy)
{
    ps_rlock_t *p = ps_rlock_new(0);
    CHECK_RC_E(ps_rlock_acquire(p, true, PS_FOREVER), 0);
    CHECK_RC_E(ps_rlock_destroy(p), EBUSY);
    CHECK_RC_E(ps_rlock_acquire(p, true, PS_FOREVER), 0);  /* still works, depth 2 */
    CHECK_RC_E(ps_rlock_release(p), 0);
    CHECK_RC_E(ps_rlock_destroy(p), EBUSY);                /* depth 1: still held */
    CHECK_RC_E(ps_rlock_release(p), 0);
    CHECK_RC_E(ps_rlock_release(p), EPERM);
    ps_rlock_free(p);
}

Test(rlock, bad_arguments_einval)
{
    ps_rlock_t *p = ps_rlock_new(0);
    CHECK_RC_E(ps_rlock_acquire(p, false, 0.0), EINVAL);
    CHECK_RC_E(ps_rlock_acquire(p, false, 2.0), EINVAL);
    CHECK_RC_E(ps_rlock_acquire(p, true, NAN), EINVAL);
    CHECK_RC_E(ps_rlock_release(p), EPERM);   /* none of those took it */
    ps_rlock_free(p);
}

Test(rlock, try_acquire)
{
    ps_rlock_t *p = ps_rlock_new(0);
    CHECK_RC_E(ps_rlock_acquire(p, false, PS_FOREVER), 0);
    CHECK_RC_E(ps_rlock_acquire(p, false, PS_FOREVER), 0);  /* owner: recursion */
    CHECK_RC_E(ps_rlock_acquire(p, true, 0.0), 0);
    CHECK_RC_E(ps_rlock_release(p), 0);
    CHECK_RC_E(ps_rlock_release(p), 0);
    CHECK_RC_E(ps_rlock_release(p), 0);
    CHECK_RC_E(ps_rlock_release(p), EPERM);
    ps_rlock_free(p);
}

Test(rlock, try_acquire_contended)
{
    ps_rlock_t *p = ps_rlock_new(0);
    CHECK_RC(ps_rlock_acquire(p, true, PS_FOREVER), 0);
    rl_ctx_t c = { .rl = p, .blocking = false, .timeout = PS_FOREVER };
    rl_run_one(rl_acquire_once, &c);
    cr_assert_eq(c.rc, EAGAIN, "got %d", c.rc);
    cr_assert(c.errno_ok);
    rl_ctx_t d = { .rl = p, .blocking = true, .timeout = 0.0 };
    rl_run_one(rl_acquire_once, &d);
    cr_assert_eq(d.rc, ETIMEDOUT, "got %d", d.rc);
    CHECK_RC(ps_rlock_release(p), 0);
    ps_rlock_free(p);
}

Test(rlock, acquire_contended)
{
    ps_rlock_t *p = ps_rlock_new(0);
    CHECK_RC(ps_rlock_acquire(p, true, PS_FOREVER), 0);
    CHECK_RC(ps_rlock_acquire(p, true, PS_FOREVER), 0);
    enum { N = 5 };
    rl_ctx_t c[N];
    memset(c, 0, sizeof c);
    for (int i = 0; i < N; i++)
        c[i].rl = p;
    pthread_t t[N];
    start_threads(t, N, rl_acquire_release, c, sizeof c[0]);
    for (int i = 0; i < N; i++)
        cr_assert(wait_count(&c[i].started, 1, 5.0));
    sleep_s(0.05);
    for (int i = 0; i < N; i++)
        cr_assert_eq(atomic_load(&c[i].finished), 0);
    CHECK_RC(ps_rlock_release(p), 0);
    sleep_s(0.05);
    for (int i = 0; i < N; i++)   /* still held at depth 1 */
        cr_assert_eq(atomic_load(&c[i].finished), 0, "RLock taken while held at depth 1");
    CHECK_RC(ps_rlock_release(p), 0);
    join_threads(t, N, NULL);
    for (int i = 0; i < N; i++)
        cr_assert_eq(c[i].rc, 0, "thread %d: %d", i, c[i].rc);
    ps_rlock_free(p);
}

Test(rlock, timeout)
{
    ps_rlock_t *p = ps_rlock_new(0);
    CHECK_RC_E(ps_rlock_acquire(p, true, 1e300), 0);
    CHECK_RC_E(ps_rlock_acquire(p, true, INFINITY), 0);
    CHECK_RC_E(ps_rlock_acquire(p, true, -100.0), 0);
    CHECK_RC(ps_rlock_release(p), 0);
    CHECK_RC(ps_rlock_release(p), 0);
    /* held at depth 1 by main */
    rl_ctx_t c = { .rl = p, .blocking = true, .timeout = 0.2 };
    rl_run_one(rl_acquire_once, &c);
    cr_assert_eq(c.rc, ETIMEDOUT, "got %d", c.rc);
    cr_assert_geq(c.elapsed, LOWER_BOUND(0.2), "after %.4f s", c.elapsed);
    cr_assert(c.errno_ok);
    CHECK_RC(ps_rlock_release(p), 0);
    ps_rlock_free(p);
}

Test(rlock, reacquire)
{
    ps_rlock_t *p = ps_rlock_new(0);
    CHECK_RC(ps_rlock_acquire(p, true, PS_FOREVER), 0);
    CHECK_RC(ps_rlock_acquire(p, true, PS_FOREVER), 0);
    CHECK_RC(ps_rlock_release(p), 0);
    CHECK_RC(ps_rlock_acquire(p, true, PS_FOREVER), 0);
    CHECK_RC(ps_rlock_release(p), 0);
    CHECK_RC(ps_rlock_release(p), 0);
    cr_assert(rl_usable_by_other_thread(p));
    ps_rlock_free(p);
}

Test(rlock, release_unacquired)
{
    ps_rlock_t *p = ps_rlock_new(0);
    CHECK_RC_E(ps_rlock_release(p), EPERM);
    CHECK_RC(ps_rlock_acquire(p, true, PS_FOREVER), 0);
    CHECK_RC(ps_rlock_acquire(p, true, PS_FOREVER), 0);
    CHECK_RC(ps_rlock_release(p), 0);
    CHECK_RC(ps_rlock_acquire(p, true, PS_FOREVER), 0);
    CHECK_RC(ps_rlock_release(p), 0);
    CHECK_RC(ps_rlock_release(p), 0);
    CHECK_RC_E(ps_rlock_release(p), EPERM);
    ps_rlock_free(p);
}

Test(rlock, recursion_counted)
{
    enum { DEPTH = 50 };
    ps_rlock_t *p = ps_rlock_new(0);
    for (int i = 0; i < DEPTH; i++)
        CHECK_RC(ps_rlock_acquire(p, i % 2 == 0, PS_FOREVER), 0);
    for (int i = 0; i < DEPTH; i++) {
        cr_assert(!rl_free_from_other_thread(p), "free to others after %d of %d releases",
                  i, DEPTH);
        CHECK_RC(ps_rlock_release(p), 0);
    }
    CHECK_RC(ps_rlock_release(p), EPERM);
    cr_assert(rl_usable_by_other_thread(p));
    ps_rlock_free(p);
}

static void *hold_until_go(void *arg)
{
    rl_ctx_t *c = arg;
    c->rc = ps_rlock_acquire(c->rl, true, 5.0);
    atomic_store(&c->started, 1);
    wait_count(&c->go, 1, 10.0);
    if (c->rc == 0)
        c->rc = ps_rlock_release(c->rl);
    return NULL;
}

Test(rlock, different_thread)
{
    ps_rlock_t *p = ps_rlock_new(0);
    rl_ctx_t c = { .rl = p };
    pthread_t t;
    start_threads(&t, 1, hold_until_go, &c, 0);
    cr_assert(wait_count(&c.started, 1, 5.0));
    CHECK_RC_E(ps_rlock_release(p), EPERM);     /* main is not the owner */
    CHECK_RC_E(ps_rlock_acquire(p, false, PS_FOREVER), EAGAIN);
    atomic_store(&c.go, 1);
    join_threads(&t, 1, NULL);
    cr_assert_eq(c.rc, 0, "owner's release after a foreign EPERM: %d", c.rc);
    CHECK_RC(ps_rlock_acquire(p, false, PS_FOREVER), 0);
    CHECK_RC(ps_rlock_release(p), 0);
    ps_rlock_free(p);
}

Test(rlock, release_by_non_owner_thread_eperm)
{
    ps_rlock_t *p = ps_rlock_new(0);
    CHECK_RC(ps_rlock_acquire(p, true, PS_FOREVER), 0);
    rl_ctx_t c = { .rl = p };
    rl_run_one(rl_release_once, &c);
    cr_assert_eq(c.rc, EPERM, "got %d", c.rc);
    cr_assert(c.errno_ok);
    CHECK_RC(ps_rlock_release(p), 0);   /* still held by main at depth 1 */
    CHECK_RC(ps_rlock_release(p), EPERM);
    ps_rlock_free(p);
}

/* ------------------------------------------------------------------ counter */

enum { RC_THREADS = 8, RC_ITERS = 20000 };

typedef struct rcounter {
    ps_rlock_t *rl;
    long counter;
    atomic_int errors;
} rcounter_t;

/* take/give adapters for increment_under_lock: every round takes the RLock twice */
static int rl_take_twice_forever(void *rl)
{
    return ps_rlock_acquire(rl, true, PS_FOREVER) != 0 ||
           ps_rlock_acquire(rl, false, PS_FOREVER) != 0;   /* recursion */
}

static int rl_take_twice_10s(void *rl)
{
    return ps_rlock_acquire(rl, true, 10.0) != 0 || ps_rlock_acquire(rl, true, 10.0) != 0;
}

static int rl_give_twice(void *rl)
{
    return ps_rlock_release(rl) != 0 || ps_rlock_release(rl) != 0;
}

static void *rcounter_thread(void *arg)
{
    rcounter_t *c = arg;
    if (increment_under_lock(&c->counter, RC_ITERS, rl_take_twice_forever, rl_give_twice,
                             c->rl) != 0)
        atomic_fetch_add(&c->errors, 1);
    return NULL;
}

Test(rlock, counter_8_threads)
{
    rcounter_t c = { .rl = ps_rlock_new(0) };
    run_threads(RC_THREADS, rcounter_thread, &c, 0);
    cr_assert_eq(atomic_load(&c.errors), 0);
    cr_assert_eq(c.counter, (long)RC_THREADS * RC_ITERS, "counter %ld", c.counter);
    CHECK_RC(ps_rlock_release(c.rl), EPERM);
    ps_rlock_free(c.rl);
}

/* ------------------------------------------------------------------ signals */

static void rl_signal_test(ps_rlock_t *p)
{
    CHECK_RC(ps_rlock_acquire(p, true, PS_FOREVER), 0);
    rl_ctx_t c = { .rl = p, .blocking = true, .timeout = 0.3, .errno_ok = true };
    run_thread_under_signals(rl_acquire_once, &c);
    cr_assert_eq(c.rc, ETIMEDOUT, "got %d (%s)", c.rc, strerror(c.rc));
    cr_assert_geq(c.elapsed, LOWER_BOUND(0.3), "after %.4f s", c.elapsed);
    cr_assert(c.errno_ok);
    CHECK_RC(ps_rlock_release(p), 0);
}

Test(rlock, signal_does_not_end_wait)
{
    ps_rlock_t *p = ps_rlock_new(0);
    rl_signal_test(p);
    ps_rlock_free(p);
}

/* ================================================================== PS_SHARED */

Test(rlock_shared, basics)
{
    ps_rlock_t *p = ps_rlock_new(PS_SHARED);
    cr_assert_not_null(p);
    CHECK_RC_E(ps_rlock_acquire(p, true, PS_FOREVER), 0);
    CHECK_RC_E(ps_rlock_acquire(p, false, PS_FOREVER), 0);
    CHECK_RC_E(ps_rlock_acquire(p, true, 0.0), 0);
    CHECK_RC_E(ps_rlock_acquire(p, false, 0.0), EINVAL);
    CHECK_RC_E(ps_rlock_acquire(p, true, NAN), EINVAL);
    CHECK_RC_E(ps_rlock_destroy(p), EBUSY);
    CHECK_RC_E(ps_rlock_release(p), 0);
    CHECK_RC_E(ps_rlock_release(p), 0);
    CHECK_RC_E(ps_rlock_release(p), 0);
    CHECK_RC_E(ps_rlock_release(p), EPERM);
    cr_assert(rl_usable_by_other_thread(p));
    ps_rlock_free(p);
}

Test(rlock_shared, release_by_other_thread_eperm)
{
    ps_rlock_t *p = ps_rlock_new(PS_SHARED);
    CHECK_RC(ps_rlock_acquire(p, true, PS_FOREVER), 0);
    rl_ctx_t c = { .rl = p };
    rl_run_one(rl_release_once, &c);
    cr_assert_eq(c.rc, EPERM, "got %d", c.rc);
    rl_ctx_t d = { .rl = p, .blocking = true, .timeout = 0.2 };
    rl_run_one(rl_acquire_once, &d);
    cr_assert_eq(d.rc, ETIMEDOUT, "got %d", d.rc);
    cr_assert_geq(d.elapsed, LOWER_BOUND(0.2));
    CHECK_RC(ps_rlock_release(p), 0);
    ps_rlock_free(p);
}

static int rl_child_release(void *arg)
{
    return ps_rlock_release(arg);
}

static int rl_child_try(void *arg)
{
    return ps_rlock_acquire(arg, false, PS_FOREVER);
}

Test(rlock_shared, other_process)
{
    ps_rlock_t *p = ps_rlock_new(PS_SHARED);
    CHECK_RC(ps_rlock_acquire(p, true, PS_FOREVER), 0);
    int code = child_wait(fork_child(rl_child_release, p), 10.0);
    cr_assert_eq(code, EPERM, "child release: %d", code);
    code = child_wait(fork_child(rl_child_try, p), 10.0);
    cr_assert_eq(code, EAGAIN, "child try-acquire of parent's RLock: %d", code);
    CHECK_RC(ps_rlock_release(p), 0);
    CHECK_RC(ps_rlock_release(p), EPERM);
    ps_rlock_free(p);
}

Test(rlock_shared, signal_does_not_end_wait)
{
    ps_rlock_t *p = ps_rlock_new(PS_SHARED);
    rl_signal_test(p);
    ps_rlock_free(p);
}

enum { RSH_PROCS = 4, RSH_ITERS = 20000 };

typedef struct rshared {
    ps_rlock_t *rl;
    long counter;
    atomic_int held;
    int how;
} rshared_t;

static int rcounter_child(void *arg)
{
    rshared_t *s = arg;
    int rc = increment_under_lock(&s->counter, RSH_ITERS, rl_take_twice_10s, rl_give_twice, s->rl);
    if (rc != 0)
        return rc;
    return ps_rlock_release(s->rl) == EPERM ? 0 : 5;
}

Test(rlock_shared, counter_4_processes)
{
    rshared_t *s = shm_alloc(sizeof *s);
    s->rl = ps_rlock_new(PS_SHARED);
    pid_t pids[RSH_PROCS];
    fork_children(pids, RSH_PROCS, rcounter_child, s);
    CHECK_CHILDREN(pids, RSH_PROCS, 20.0, 0);
    cr_assert_eq(s->counter, (long)RSH_PROCS * RSH_ITERS, "counter %ld", s->counter);
    ps_rlock_free(s->rl);
    shm_free(s, sizeof *s);
}

static int rholder_child(void *arg)
{
    rshared_t *s = arg;
    for (int i = 0; i < 3; i++)          /* held at depth 3 */
        if (ps_rlock_acquire(s->rl, true, 10.0) != 0)
            return 2;
    atomic_store(&s->held, 1);
    if (s->how == 1)
        _exit(0);
    for (;;)
        pause();
}

static void rl_check_recovered(rshared_t *s)
{
    /* held once (depth 1), not 3 */
    CHECK_RC_E(ps_rlock_release(s->rl), 0);
    CHECK_RC_E(ps_rlock_release(s->rl), EPERM);
    CHECK_RC_E(ps_rlock_acquire(s->rl, false, PS_FOREVER), 0);
    CHECK_RC_E(ps_rlock_acquire(s->rl, false, PS_FOREVER), 0);
    CHECK_RC_E(ps_rlock_release(s->rl), 0);
    CHECK_RC_E(ps_rlock_release(s->rl), 0);
    CHECK_RC_E(ps_rlock_release(s->rl), EPERM);
    cr_assert(rl_usable_by_other_thread(s->rl));
    s->counter = 0;
    int code = child_wait(fork_child(rcounter_child, s), 20.0);
    cr_assert_eq(code, 0, "child on the recovered RLock ended with %d", code);
    cr_assert_eq(s->counter, RSH_ITERS);
}

/* A child takes the RLock (depth 3) and dies holding it (how: 0 SIGKILLed, 1 _exit);
 * then acquire(blocking, timeout) must say EOWNERDEAD and the RLock must recover. */
static void rl_check_owner_death(int how, bool blocking, double timeout)
{
    rshared_t *s = shm_alloc(sizeof *s);
    s->rl = ps_rlock_new(PS_SHARED);
    s->how = how;
    pid_t pid = fork_child(rholder_child, s);
    if (how == 0) {
        cr_assert(wait_count(&s->held, 1, 5.0));
        child_kill(pid);
    } else {
        cr_assert_eq(child_wait(pid, 10.0), 0);
    }
    CHECK_RC_E(ps_rlock_acquire(s->rl, blocking, timeout), EOWNERDEAD);
    rl_check_recovered(s);
    ps_rlock_free(s->rl);
    shm_free(s, sizeof *s);
}

Test(rlock_shared, owner_killed_eownerdead) { rl_check_owner_death(0, true, 5.0); }
Test(rlock_shared, owner_killed_nonblocking_eownerdead)
{
    rl_check_owner_death(0, false, PS_FOREVER);
}
Test(rlock_shared, owner_exit_eownerdead) { rl_check_owner_death(1, true, 5.0); }

static void *rl_acquire_thrice_and_exit(void *arg)
{
    rl_ctx_t *c = arg;
    c->rc = ps_rlock_acquire(c->rl, true, 5.0);
    if (c->rc == 0)
        c->rc = ps_rlock_acquire(c->rl, true, 5.0);
    if (c->rc == 0)
        c->rc = ps_rlock_acquire(c->rl, true, 5.0);
    return NULL;
}

Test(rlock_shared, owner_thread_exit_eownerdead)
{
    rshared_t *s = shm_alloc(sizeof *s);
    s->rl = ps_rlock_new(PS_SHARED);
    rl_ctx_t c = { .rl = s->rl };
    rl_run_one(rl_acquire_thrice_and_exit, &c);
    cr_assert_eq(c.rc, 0);
    CHECK_RC_E(ps_rlock_acquire(s->rl, true, 5.0), EOWNERDEAD);
    rl_check_recovered(s);
    ps_rlock_free(s->rl);
    shm_free(s, sizeof *s);
}

/* ================================================================== acquirer destroys */

/* PITFALLS 13: the owner (another thread, at depth 2) releases; the acquirer,
 * blocked in acquire, gets the RLock, releases it, destroys it and its page becomes
 * PROT_NONE at once: the owner's last release must not touch the RLock after the
 * store that lets the acquirer in. */
static void rlock_page_race(int flags)
{
    page_race_t r = { .init = race_rlock_init, .waiter = race_rlock_waiter,
                      .waker = race_rlock_waker, .flags = flags, .max_jitter = 300 };
    CHECK_PAGE_RACE(&r, 3000, 0.5);
}

Test(rlock, acquirer_destroys_right_after_release) { rlock_page_race(0); }
Test(rlock_shared, acquirer_destroys_right_after_release) { rlock_page_race(PS_SHARED); }
