/* SPDX-License-Identifier: MIT */
/* tests/test_semaphore.c - ps_semaphore_t (threading.Semaphore / BoundedSemaphore).
 * Ports of CPython Lib/test/lock_tests.py BaseSemaphoreTests, SemaphoreTests,
 * BoundedSemaphoreTests, plus error codes, errno, signals, PS_SHARED, waiter death. */
#include <criterion/criterion.h>
#include <limits.h>
#include <pysync/threading.h>

#include "helpers.h"

TestSuite(semaphore, .timeout = 30);
TestSuite(bounded_semaphore, .timeout = 30);
TestSuite(semaphore_shared, .timeout = 40);

typedef struct sem_ctx {
    ps_semaphore_t *sem;
    bool blocking;
    double timeout;
    int times;              /* acquires per thread (default 1) */
    atomic_int started;
    atomic_int acquired;    /* successful acquires */
    atomic_int failed;
    int rc;                 /* last result (single-thread use) */
    double elapsed;
    bool errno_ok;
} sem_ctx_t;

static void *sem_acquirer(void *arg)
{
    sem_ctx_t *c = arg;
    atomic_fetch_add(&c->started, 1);
    int times = c->times ? c->times : 1;
    for (int i = 0; i < times; i++) {
        double t0 = now();
        int rc;
        bool ok = true;
        RECORD_RC_E(&rc, &ok, ps_semaphore_acquire(c->sem, c->blocking, c->timeout));
        c->elapsed = now() - t0;
        c->rc = rc;
        if (!ok)
            c->errno_ok = false;
        if (rc == 0)
            atomic_fetch_add(&c->acquired, 1);
        else
            atomic_fetch_add(&c->failed, 1);
    }
    return NULL;
}

static void sem_run_one(sem_ctx_t *c)
{
    c->errno_ok = true;
    run_threads(1, sem_acquirer, c, 0);
}

/* ------------------------------------------------------------------ basics */

Test(semaphore, constructor)
{
    ps_semaphore_t s;
    CHECK_RC_E(ps_semaphore_init(&s, 0, 0), 0);
    cr_assert_eq(ps_semaphore_value(&s), 0);
    CHECK_RC_E(ps_semaphore_destroy(&s), 0);
    CHECK_RC_E(ps_semaphore_init(&s, 5, 0), 0);
    cr_assert_eq(ps_semaphore_value(&s), 5);
    CHECK_RC_E(ps_semaphore_destroy(&s), 0);
    ps_semaphore_t *p = ps_semaphore_new(3, 0);
    cr_assert_not_null(p);
    cr_assert_eq(ps_semaphore_value(p), 3);
    ps_semaphore_free(p);
    ps_semaphore_free(NULL);
}

Test(semaphore, negative_value_einval)
{
    ps_semaphore_t s;
    CHECK_RC_E(ps_semaphore_init(&s, -1, 0), EINVAL);
    CHECK_RC_E(ps_semaphore_init(&s, INT_MIN, 0), EINVAL);
    CHECK_RC_E(ps_bounded_semaphore_init(&s, -1, 0), EINVAL);
    errno = 0;
    cr_assert_null(ps_semaphore_new(-1, 0));
    cr_assert_eq(errno, EINVAL, "errno %d", errno);
    errno = 0;
    cr_assert_null(ps_bounded_semaphore_new(-5, 0));
    cr_assert_eq(errno, EINVAL, "errno %d", errno);
    errno = 0;
    cr_assert_null(ps_semaphore_new(-1, PS_SHARED));
    cr_assert_eq(errno, EINVAL, "errno %d", errno);
}

Test(semaphore, null_object_einval)
{
    CHECK_RC_E(ps_semaphore_init(NULL, 1, 0), EINVAL);
    CHECK_RC_E(ps_bounded_semaphore_init(NULL, 1, 0), EINVAL);
    CHECK_RC_E(ps_semaphore_destroy(NULL), EINVAL);
    CHECK_RC_E(ps_semaphore_acquire(NULL, true, PS_FOREVER), EINVAL);
    CHECK_RC_E(ps_semaphore_release(NULL, 1), EINVAL);
}

Test(semaphore, bad_arguments_einval)
{
    ps_semaphore_t *p = ps_semaphore_new(1, 0);
    CHECK_RC_E(ps_semaphore_release(p, 0), EINVAL);
    cr_assert_eq(ps_semaphore_value(p), 1);
    CHECK_RC_E(ps_semaphore_acquire(p, false, 0.0), EINVAL);
    CHECK_RC_E(ps_semaphore_acquire(p, false, 1.0), EINVAL);
    CHECK_RC_E(ps_semaphore_acquire(p, true, NAN), EINVAL);
    cr_assert_eq(ps_semaphore_value(p), 1, "an EINVAL acquire changed the value");
    ps_semaphore_free(p);
}

Test(semaphore, acquire)
{
    ps_semaphore_t *p = ps_semaphore_new(1, 0);
    CHECK_RC_E(ps_semaphore_acquire(p, true, PS_FOREVER), 0);
    cr_assert_eq(ps_semaphore_value(p), 0);
    CHECK_RC_E(ps_semaphore_acquire(p, false, PS_FOREVER), EAGAIN);
    CHECK_RC_E(ps_semaphore_release(p, 1), 0);
    cr_assert_eq(ps_semaphore_value(p), 1);
    ps_semaphore_free(p);

    p = ps_semaphore_new(2, 0);
    CHECK_RC_E(ps_semaphore_acquire(p, true, PS_FOREVER), 0);
    CHECK_RC_E(ps_semaphore_acquire(p, true, PS_FOREVER), 0);
    CHECK_RC_E(ps_semaphore_acquire(p, false, PS_FOREVER), EAGAIN);
    CHECK_RC_E(ps_semaphore_release(p, 1), 0);
    CHECK_RC_E(ps_semaphore_release(p, 1), 0);
    cr_assert_eq(ps_semaphore_value(p), 2);
    ps_semaphore_free(p);
}

Test(semaphore, acquire_destroy)
{
    ps_semaphore_t *p = ps_semaphore_new(2, 0);
    CHECK_RC(ps_semaphore_acquire(p, true, PS_FOREVER), 0);
    ps_semaphore_free(p);   /* acquired but not waited on: fine */
}

Test(semaphore, try_acquire)
{
    ps_semaphore_t *p = ps_semaphore_new(2, 0);
    CHECK_RC_E(ps_semaphore_acquire(p, false, PS_FOREVER), 0);
    CHECK_RC_E(ps_semaphore_acquire(p, false, PS_FOREVER), 0);
    CHECK_RC_E(ps_semaphore_acquire(p, false, PS_FOREVER), EAGAIN);
    CHECK_RC_E(ps_semaphore_acquire(p, true, 0.0), ETIMEDOUT);
    CHECK_RC(ps_semaphore_release(p, 2), 0);
    cr_assert_eq(ps_semaphore_value(p), 2);
    ps_semaphore_free(p);
}

Test(semaphore, try_acquire_contended)
{
    ps_semaphore_t *p = ps_semaphore_new(4, 0);
    for (int i = 0; i < 4; i++)
        CHECK_RC(ps_semaphore_acquire(p, true, PS_FOREVER), 0);
    sem_ctx_t c = { .sem = p, .blocking = false, .timeout = PS_FOREVER };
    sem_run_one(&c);
    cr_assert_eq(c.rc, EAGAIN, "got %d", c.rc);
    cr_assert(c.errno_ok);
    ps_semaphore_free(p);
}

Test(semaphore, acquire_timeout)
{
    ps_semaphore_t *p = ps_semaphore_new(2, 0);
    CHECK_RC(ps_semaphore_acquire(p, false, PS_FOREVER), 0);
    CHECK_RC(ps_semaphore_acquire(p, true, 0.2), 0);
    double t0 = now();
    CHECK_RC_E(ps_semaphore_acquire(p, true, 0.2), ETIMEDOUT);
    cr_assert_geq(now() - t0, LOWER_BOUND(0.2));
    sem_ctx_t c = { .sem = p, .blocking = true, .timeout = 0.2 };
    sem_run_one(&c);
    cr_assert_eq(c.rc, ETIMEDOUT);
    cr_assert_geq(c.elapsed, LOWER_BOUND(0.2), "after %.4f s", c.elapsed);
    cr_assert(c.errno_ok);
    CHECK_RC(ps_semaphore_release(p, 1), 0);
    CHECK_RC(ps_semaphore_acquire(p, true, 0.2), 0);
    cr_assert_eq(ps_semaphore_value(p), 0);
    ps_semaphore_free(p);
}

Test(semaphore, huge_timeouts_wait_forever)
{
    const double timeouts[] = { 1e300, INFINITY, -7.0 };
    ps_semaphore_t *p = ps_semaphore_new(0, 0);
    for (int i = 0; i < 3; i++) {
        sem_ctx_t c = { .sem = p, .blocking = true, .timeout = timeouts[i] };
        pthread_t t;
        start_threads(&t, 1, sem_acquirer, &c, 0);
        cr_assert(wait_count(&c.started, 1, 5.0));
        sleep_s(0.05);
        cr_assert_eq(atomic_load(&c.failed) + atomic_load(&c.acquired), 0,
                     "timeout %g: returned %d early", timeouts[i], c.rc);
        CHECK_RC(ps_semaphore_release(p, 1), 0);
        join_threads(&t, 1, NULL);
        cr_assert_eq(c.rc, 0);
    }
    ps_semaphore_free(p);
}

/* CPython test_acquire_contended, made deterministic with counters. */
Test(semaphore, acquire_contended)
{
    ps_semaphore_t *p = ps_semaphore_new(7, 0);
    CHECK_RC(ps_semaphore_acquire(p, true, PS_FOREVER), 0);
    enum { N = 10 };
    sem_ctx_t c = { .sem = p, .blocking = true, .timeout = 10.0, .times = 2, .errno_ok = true };
    pthread_t t[N];
    start_threads(t, N, sem_acquirer, &c, 0);
    cr_assert(wait_count(&c.acquired, 6, 5.0));
    sleep_s(0.05);
    cr_assert_eq(atomic_load(&c.acquired), 6, "acquired %d of 6", atomic_load(&c.acquired));
    for (int i = 0; i < 7; i++)
        CHECK_RC(ps_semaphore_release(p, 1), 0);
    cr_assert(wait_count(&c.acquired, 13, 5.0));
    sleep_s(0.05);
    cr_assert_eq(atomic_load(&c.acquired), 13);
    CHECK_RC(ps_semaphore_release(p, 6), 0);
    cr_assert(wait_count(&c.acquired, 19, 5.0));
    sleep_s(0.05);
    cr_assert_eq(atomic_load(&c.acquired), 19);
    CHECK_RC(ps_semaphore_acquire(p, false, PS_FOREVER), EAGAIN);
    CHECK_RC(ps_semaphore_release(p, 1), 0);
    join_threads(t, N, NULL);
    cr_assert_eq(atomic_load(&c.acquired), 2 * N);
    cr_assert_eq(atomic_load(&c.failed), 0);
    cr_assert(c.errno_ok);
    cr_assert_eq(ps_semaphore_value(p), 0);
    ps_semaphore_free(p);
}

Test(semaphore, multirelease)
{
    ps_semaphore_t *p = ps_semaphore_new(7, 0);
    for (int i = 0; i < 7; i++)
        CHECK_RC(ps_semaphore_acquire(p, false, PS_FOREVER), 0);
    CHECK_RC_E(ps_semaphore_release(p, 7), 0);
    cr_assert_eq(ps_semaphore_value(p), 7);
    for (int i = 0; i < 7; i++)
        CHECK_RC(ps_semaphore_acquire(p, false, PS_FOREVER), 0);
    CHECK_RC(ps_semaphore_acquire(p, false, PS_FOREVER), EAGAIN);
    ps_semaphore_free(p);
}

/* release(n) wakes n waiters, no more. */
Test(semaphore, release_n_wakes_n)
{
    ps_semaphore_t *p = ps_semaphore_new(0, 0);
    enum { N = 5 };
    sem_ctx_t c = { .sem = p, .blocking = true, .timeout = 10.0, .errno_ok = true };
    pthread_t t[N];
    start_threads(t, N, sem_acquirer, &c, 0);
    cr_assert(wait_count(&c.started, N, 5.0));
    sleep_s(0.05);
    CHECK_RC_E(ps_semaphore_release(p, 3), 0);
    cr_assert(wait_count(&c.acquired, 3, 5.0), "release(3) woke %d", atomic_load(&c.acquired));
    sleep_s(0.1);
    cr_assert_eq(atomic_load(&c.acquired), 3, "release(3) let %d through",
                 atomic_load(&c.acquired));
    cr_assert_eq(ps_semaphore_value(p), 0);
    CHECK_RC_E(ps_semaphore_release(p, 2), 0);
    join_threads(t, N, NULL);
    cr_assert_eq(atomic_load(&c.acquired), N);
    cr_assert_eq(ps_semaphore_value(p), 0);
    ps_semaphore_free(p);
}

Test(semaphore, release_unacquired)
{
    /* an unbounded semaphore may be released above its initial value */
    ps_semaphore_t *p = ps_semaphore_new(0, 0);
    CHECK_RC_E(ps_semaphore_release(p, 1), 0);
    CHECK_RC_E(ps_semaphore_release(p, 3), 0);
    cr_assert_eq(ps_semaphore_value(p), 4);
    for (int i = 0; i < 4; i++)
        CHECK_RC(ps_semaphore_acquire(p, false, PS_FOREVER), 0);
    CHECK_RC(ps_semaphore_acquire(p, false, PS_FOREVER), EAGAIN);
    ps_semaphore_free(p);
}

Test(semaphore, destroy_while_waited_ebusy)
{
    ps_semaphore_t s;
    CHECK_RC(ps_semaphore_init(&s, 0, 0), 0);
    sem_ctx_t c = { .sem = &s, .blocking = true, .timeout = 10.0 };
    pthread_t t;
    start_threads(&t, 1, sem_acquirer, &c, 0);
    cr_assert(wait_count(&c.started, 1, 5.0));
    sleep_s(0.05);
    CHECK_RC_E(ps_semaphore_destroy(&s), EBUSY);
    CHECK_RC(ps_semaphore_release(&s, 1), 0);
    join_threads(&t, 1, NULL);
    cr_assert_eq(c.rc, 0);
    CHECK_RC_E(ps_semaphore_destroy(&s), 0);
}

enum { SC_THREADS = 8, SC_ITERS = 20000 };

typedef struct scounter {
    ps_semaphore_t *sem;
    long counter;
    atomic_int errors;
} scounter_t;

/* take/give adapters for increment_under_lock (a semaphore of value 1 as a lock) */
static int sem_take_forever(void *s) { return ps_semaphore_acquire(s, true, PS_FOREVER); }
static int sem_take_10s(void *s) { return ps_semaphore_acquire(s, true, 10.0); }
static int sem_give(void *s) { return ps_semaphore_release(s, 1); }

static void *scounter_thread(void *arg)
{
    scounter_t *c = arg;
    if (increment_under_lock(&c->counter, SC_ITERS, sem_take_forever, sem_give, c->sem) != 0)
        atomic_fetch_add(&c->errors, 1);
    return NULL;
}

Test(semaphore, counter_8_threads)
{
    scounter_t c = { .sem = ps_semaphore_new(1, 0) };
    run_threads(SC_THREADS, scounter_thread, &c, 0);
    cr_assert_eq(atomic_load(&c.errors), 0);
    cr_assert_eq(c.counter, (long)SC_THREADS * SC_ITERS, "counter %ld", c.counter);
    cr_assert_eq(ps_semaphore_value(c.sem), 1);
    ps_semaphore_free(c.sem);
}

static void sem_signal_test(ps_semaphore_t *p)
{
    sem_ctx_t c = { .sem = p, .blocking = true, .timeout = 0.3, .errno_ok = true };
    run_thread_under_signals(sem_acquirer, &c);
    cr_assert_eq(c.rc, ETIMEDOUT, "got %d (%s)", c.rc, strerror(c.rc));
    cr_assert_geq(c.elapsed, LOWER_BOUND(0.3), "after %.4f s", c.elapsed);
    cr_assert(c.errno_ok);
    cr_assert_eq(ps_semaphore_value(p), 0);
}

Test(semaphore, signal_does_not_end_wait)
{
    ps_semaphore_t *p = ps_semaphore_new(0, 0);
    sem_signal_test(p);
    ps_semaphore_free(p);
}

/* ================================================================== bounded */

Test(bounded_semaphore, constructor)
{
    ps_semaphore_t s;
    CHECK_RC_E(ps_bounded_semaphore_init(&s, 3, 0), 0);
    cr_assert_eq(ps_semaphore_value(&s), 3);
    CHECK_RC_E(ps_semaphore_destroy(&s), 0);
    ps_semaphore_t *p = ps_bounded_semaphore_new(2, 0);
    cr_assert_not_null(p);
    cr_assert_eq(ps_semaphore_value(p), 2);
    ps_semaphore_free(p);
}

Test(bounded_semaphore, release_unacquired)
{
    ps_semaphore_t *p = ps_bounded_semaphore_new(1, 0);
    CHECK_RC_E(ps_semaphore_release(p, 1), EOVERFLOW);
    cr_assert_eq(ps_semaphore_value(p), 1);
    CHECK_RC(ps_semaphore_acquire(p, true, PS_FOREVER), 0);
    CHECK_RC_E(ps_semaphore_release(p, 1), 0);
    CHECK_RC_E(ps_semaphore_release(p, 1), EOVERFLOW);
    cr_assert_eq(ps_semaphore_value(p), 1);
    ps_semaphore_free(p);

    p = ps_bounded_semaphore_new(0, 0);
    CHECK_RC_E(ps_semaphore_release(p, 1), EOVERFLOW);
    cr_assert_eq(ps_semaphore_value(p), 0);
    ps_semaphore_free(p);
}

Test(bounded_semaphore, release_all_or_nothing)
{
    ps_semaphore_t *p = ps_bounded_semaphore_new(5, 0);
    for (int i = 0; i < 3; i++)
        CHECK_RC(ps_semaphore_acquire(p, true, PS_FOREVER), 0);
    cr_assert_eq(ps_semaphore_value(p), 2);
    CHECK_RC_E(ps_semaphore_release(p, 4), EOVERFLOW);
    cr_assert_eq(ps_semaphore_value(p), 2, "EOVERFLOW release changed the value");
    CHECK_RC_E(ps_semaphore_release(p, UINT_MAX), EOVERFLOW);
    cr_assert_eq(ps_semaphore_value(p), 2);
    CHECK_RC_E(ps_semaphore_release(p, 0), EINVAL);
    CHECK_RC_E(ps_semaphore_release(p, 3), 0);
    cr_assert_eq(ps_semaphore_value(p), 5);
    CHECK_RC_E(ps_semaphore_release(p, 1), EOVERFLOW);
    cr_assert_eq(ps_semaphore_value(p), 5);
    ps_semaphore_free(p);
}

Test(bounded_semaphore, release_n_wakes_n)
{
    ps_semaphore_t *p = ps_bounded_semaphore_new(4, 0);
    for (int i = 0; i < 4; i++)
        CHECK_RC(ps_semaphore_acquire(p, true, PS_FOREVER), 0);
    enum { N = 4 };
    sem_ctx_t c = { .sem = p, .blocking = true, .timeout = 10.0, .errno_ok = true };
    pthread_t t[N];
    start_threads(t, N, sem_acquirer, &c, 0);
    cr_assert(wait_count(&c.started, N, 5.0));
    sleep_s(0.05);
    CHECK_RC(ps_semaphore_release(p, 2), 0);
    cr_assert(wait_count(&c.acquired, 2, 5.0));
    sleep_s(0.05);
    cr_assert_eq(atomic_load(&c.acquired), 2);
    CHECK_RC(ps_semaphore_release(p, 2), 0);
    join_threads(t, N, NULL);
    cr_assert_eq(atomic_load(&c.acquired), N);
    /* all 4 holders (main's) are still out: 4 releases allowed, then EOVERFLOW */
    CHECK_RC(ps_semaphore_release(p, 4), 0);
    CHECK_RC(ps_semaphore_release(p, 1), EOVERFLOW);
    ps_semaphore_free(p);
}

typedef struct brel {
    ps_semaphore_t *sem;
    atomic_int ok;
} brel_t;

static void *brel_thread(void *arg)
{
    brel_t *b = arg;
    for (int i = 0; i < 2000; i++) {
        if (ps_semaphore_acquire(b->sem, true, 10.0) != 0)
            continue;
        int rc = ps_semaphore_release(b->sem, 1);
        if (rc == 0)
            atomic_fetch_add(&b->ok, 1);
    }
    return NULL;
}

/* Under contention the value never exceeds the bound. */
Test(bounded_semaphore, bound_under_contention)
{
    ps_semaphore_t *p = ps_bounded_semaphore_new(3, 0);
    brel_t b = { .sem = p };
    run_threads(4, brel_thread, &b, 0);
    cr_assert_eq(atomic_load(&b.ok), 4 * 2000);
    cr_assert_eq(ps_semaphore_value(p), 3, "value %d", ps_semaphore_value(p));
    ps_semaphore_free(p);
}

/* ================================================================== PS_SHARED */

Test(semaphore_shared, basics)
{
    ps_semaphore_t *p = ps_semaphore_new(2, PS_SHARED);
    cr_assert_not_null(p);
    CHECK_RC_E(ps_semaphore_acquire(p, false, PS_FOREVER), 0);
    CHECK_RC_E(ps_semaphore_acquire(p, true, 0.0), 0);
    CHECK_RC_E(ps_semaphore_acquire(p, false, PS_FOREVER), EAGAIN);
    CHECK_RC_E(ps_semaphore_acquire(p, true, 0.0), ETIMEDOUT);
    double t0 = now();
    CHECK_RC_E(ps_semaphore_acquire(p, true, 0.2), ETIMEDOUT);
    cr_assert_geq(now() - t0, LOWER_BOUND(0.2));
    CHECK_RC_E(ps_semaphore_release(p, 0), EINVAL);
    CHECK_RC_E(ps_semaphore_release(p, 2), 0);
    cr_assert_eq(ps_semaphore_value(p), 2);
    ps_semaphore_free(p);

    p = ps_bounded_semaphore_new(2, PS_SHARED);
    CHECK_RC(ps_semaphore_acquire(p, true, PS_FOREVER), 0);
    CHECK_RC_E(ps_semaphore_release(p, 2), EOVERFLOW);
    cr_assert_eq(ps_semaphore_value(p), 1);
    CHECK_RC_E(ps_semaphore_release(p, 1), 0);
    ps_semaphore_free(p);
}

Test(semaphore_shared, signal_does_not_end_wait)
{
    ps_semaphore_t *p = ps_semaphore_new(0, PS_SHARED);
    sem_signal_test(p);
    ps_semaphore_free(p);
}

enum { SSH_PROCS = 4, SSH_ITERS = 10000 };

typedef struct sshared {
    ps_semaphore_t *sem;
    long counter;
    atomic_int registered;
    atomic_int returned;
    double timeout;
} sshared_t;

static int sem_counter_child(void *arg)
{
    sshared_t *s = arg;
    return increment_under_lock(&s->counter, SSH_ITERS, sem_take_10s, sem_give, s->sem);
}

Test(semaphore_shared, counter_4_processes)
{
    sshared_t *s = shm_alloc(sizeof *s);
    s->sem = ps_semaphore_new(1, PS_SHARED);
    pid_t pids[SSH_PROCS];
    fork_children(pids, SSH_PROCS, sem_counter_child, s);
    CHECK_CHILDREN(pids, SSH_PROCS, 20.0, 0);
    cr_assert_eq(s->counter, (long)SSH_PROCS * SSH_ITERS, "counter %ld", s->counter);
    cr_assert_eq(ps_semaphore_value(s->sem), 1);
    ps_semaphore_free(s->sem);
    shm_free(s, sizeof *s);
}

static int sem_proc_waiter(void *arg)
{
    sshared_t *s = arg;
    atomic_fetch_add(&s->registered, 1);
    int rc = ps_semaphore_acquire(s->sem, true, s->timeout);
    atomic_fetch_add(&s->returned, 1);
    return rc;
}

Test(semaphore_shared, release_wakes_other_process)
{
    sshared_t *s = shm_alloc(sizeof *s);
    s->sem = ps_semaphore_new(0, PS_SHARED);
    s->timeout = 10.0;
    pid_t pids[3];
    fork_children(pids, 3, sem_proc_waiter, s);
    cr_assert(wait_count(&s->registered, 3, 5.0));
    sleep_s(0.05);
    CHECK_RC(ps_semaphore_release(s->sem, 2), 0);
    cr_assert(wait_count(&s->returned, 2, 5.0));
    sleep_s(0.1);
    cr_assert_eq(atomic_load(&s->returned), 2, "release(2) woke %d processes",
                 atomic_load(&s->returned));
    CHECK_RC(ps_semaphore_release(s->sem, 1), 0);
    CHECK_CHILDREN(pids, 3, 10.0, 0);
    cr_assert_eq(ps_semaphore_value(s->sem), 0);
    ps_semaphore_free(s->sem);
    shm_free(s, sizeof *s);
}

Test(semaphore_shared, waiter_killed)
{
    sshared_t *s = shm_alloc(sizeof *s);
    s->sem = ps_semaphore_new(0, PS_SHARED);
    s->timeout = 20.0;
    pid_t dead[2];
    fork_children(dead, 2, sem_proc_waiter, s);
    cr_assert(wait_count(&s->registered, 2, 5.0));
    sleep_s(0.05);
    kill_children(dead, 2);
    cr_assert_eq(ps_semaphore_value(s->sem), 0);

    s->timeout = 5.0;
    for (int round = 0; round < 5; round++) {
        int base_reg = atomic_load(&s->registered), base_ret = atomic_load(&s->returned);
        waiters_t w;
        waiters_start(&w, round % 2 == 0, 2, sem_proc_waiter, s);
        cr_assert(wait_count(&s->registered, base_reg + 2, 5.0));
        sleep_s(0.05);
        cr_assert_eq(atomic_load(&s->returned), base_ret, "round %d: acquired without release",
                     round);
        if (round % 4 < 2) {
            CHECK_RC(ps_semaphore_release(s->sem, 1), 0);
            cr_assert(wait_count(&s->returned, base_ret + 1, 5.0),
                      "round %d: release(1) woke no live waiter", round);
            CHECK_RC(ps_semaphore_release(s->sem, 1), 0);
        } else {
            CHECK_RC(ps_semaphore_release(s->sem, 2), 0);
        }
        CHECK_WAITERS_OK(&w, round);
        cr_assert_eq(ps_semaphore_value(s->sem), 0, "round %d: value %d", round,
                     ps_semaphore_value(s->sem));
    }
    CHECK_RC(ps_semaphore_acquire(s->sem, true, 0.05), ETIMEDOUT);
    ps_semaphore_free(s->sem);
    shm_free(s, sizeof *s);
}

/* ================================================================== destroy races */

/* release, then destroy at once: EBUSY is fine while woken waiters are still inside
 * acquire, but once destroy returns 0 nobody may touch the semaphore (unmapped). */
static void destroy_after_release(int flags)
{
    for (int iter = 0; iter < 20; iter++) {
        ps_semaphore_t *s = page_alloc();
        CHECK_RC(ps_semaphore_init(s, 0, flags), 0);
        enum { N = 3 };
        sem_ctx_t c = { .sem = s, .blocking = true, .timeout = 5.0, .errno_ok = true };
        pthread_t t[N];
        start_threads(t, N, sem_acquirer, &c, 0);
        cr_assert(wait_count(&c.started, N, 5.0));
        sleep_s(0.01);
        CHECK_RC(ps_semaphore_release(s, N), 0);
        int rc;
        DESTROY_RETRY(rc, ps_semaphore_destroy(s));
        cr_assert_eq(rc, 0, "iteration %d: destroy after release: %d", iter, rc);
        page_free(s);
        join_threads(t, N, NULL);
        cr_assert_eq(atomic_load(&c.acquired), N, "iteration %d: %d of %d acquired", iter,
                     atomic_load(&c.acquired), N);
    }
}

Test(semaphore, destroy_right_after_release) { destroy_after_release(0); }
Test(semaphore_shared, destroy_right_after_release) { destroy_after_release(PS_SHARED); }

/* ================================================================== waiter destroys */

/* PITFALLS 13 (glibc bug 12674, sem_post vs sem_destroy): the acquirer returns,
 * destroys the semaphore and its page becomes PROT_NONE at once, while release
 * still runs on the waker thread: release must not touch the semaphore after the
 * store that lets the acquirer return. */
static void semaphore_page_race(int flags)
{
    page_race_t r = { .init = race_sem_init, .waiter = race_sem_waiter,
                      .waker = race_sem_waker, .flags = flags, .max_jitter = 300 };
    CHECK_PAGE_RACE(&r, 3000, 0.5);
}

Test(semaphore, acquirer_destroys_right_after_acquire) { semaphore_page_race(0); }
Test(semaphore_shared, acquirer_destroys_right_after_acquire) { semaphore_page_race(PS_SHARED); }

/* ================================================================== slow live waiters */

static int semaphore_destroy_obj(void *s) { return ps_semaphore_destroy(s); }

static int sem_tid_acquire(tid_waiter_t *w)
{
    tid_waiter_ready(w);
    return ps_semaphore_acquire(w->obj, true, 10.0);
}

/* An acquirer whose thread runs a 0.5 s signal handler in the middle of its wait is
 * alive: destroy says EBUSY all through the handler (the old code took it for dead
 * after 0.2 s), and the acquirer then gets the release. */
Test(semaphore_shared, destroy_ebusy_while_acquirer_runs_long_signal_handler)
{
    ps_semaphore_t *sem = shm_alloc(sizeof *sem);
    CHECK_RC(ps_semaphore_init(sem, 0, PS_SHARED), 0);
    tid_waiter_t w = { .obj = sem, .wait = sem_tid_acquire };
    pthread_t t;
    start_threads(&t, 1, tid_waiter_main, &w, 0);
    cr_assert(wait_count(&w.ready, 1, 5.0));
    int calls, rc = destroy_during_long_handler(t, w.tid, semaphore_destroy_obj, sem, 0.5,
                                                &calls);
    cr_assert_eq(rc, EBUSY, "destroy during the acquirer's signal handler returned %d at "
                 "call %d", rc, calls);
    CHECK_RC(ps_semaphore_release(sem, 1), 0);
    join_threads(&t, 1, NULL);
    cr_assert_eq(w.rc, 0, "acquire returned %d", w.rc);
    cr_assert_eq(ps_semaphore_value(sem), 0);
    CHECK_RC_E(ps_semaphore_destroy(sem), 0);
    shm_free(sem, sizeof *sem);
}

/* An acquirer process that is SIGSTOPped is alive: destroy says EBUSY while it is
 * stopped. Round 0: SIGCONT, then release; round 1: release while it is stopped
 * (destroy still EBUSY), then SIGCONT. Either way it gets the unit (value back to
 * 0) and destroy then returns 0. */
Test(semaphore_shared, destroy_ebusy_while_acquirer_process_stopped)
{
    sshared_t *s = shm_alloc(sizeof *s);
    s->sem = shm_alloc(sizeof *s->sem);
    CHECK_RC(ps_semaphore_init(s->sem, 0, PS_SHARED), 0);
    s->timeout = 10.0;
    for (int round = 0; round < 2; round++) {
        pid_t pid = fork_child(sem_proc_waiter, s);
        int calls = 0, rc = -1, rc2 = EBUSY;
        if (wait_count(&s->registered, round + 1, 5.0))
            rc = destroy_during_stop(pid, semaphore_destroy_obj, s->sem, 0.25, &calls);
        if (round == 1) {
            ps_semaphore_release(s->sem, 1);
            int calls2;
            rc2 = destroy_stays_ebusy(semaphore_destroy_obj, s->sem, 0.1, &calls2);
        }
        kill(pid, SIGCONT);
        if (round == 0)
            ps_semaphore_release(s->sem, 1);
        int code = child_wait(pid, 10.0);
        cr_assert_eq(rc, EBUSY, "round %d: destroy while the acquirer is stopped: %d at "
                     "call %d", round, rc, calls);
        cr_assert_eq(rc2, EBUSY, "destroy after release, acquirer still stopped: %d", rc2);
        cr_assert_eq(code, 0, "round %d: the acquirer ended with %d", round, code);
        cr_assert_eq(ps_semaphore_value(s->sem), 0);
        CHECK_RC_E(ps_semaphore_destroy(s->sem), 0);
        CHECK_RC(ps_semaphore_init(s->sem, 0, PS_SHARED), 0);
    }
    CHECK_RC_E(ps_semaphore_destroy(s->sem), 0);
    shm_free(s->sem, sizeof *s->sem);
    shm_free(s, sizeof *s);
}

/* An acquirer process SIGKILLed in acquire is dead for sure: destroy returns 0 at
 * once, once it is reaped (round 0) and already while it is a zombie (round 1). The
 * re-initialized semaphore then works for a live acquirer. */
Test(semaphore_shared, destroy_after_acquirer_process_killed)
{
    sshared_t *s = shm_alloc(sizeof *s);
    s->sem = shm_alloc(sizeof *s->sem);
    CHECK_RC(ps_semaphore_init(s->sem, 0, PS_SHARED), 0);
    s->timeout = 20.0;
    for (int round = 0; round < 2; round++) {
        pid_t pid = fork_child(sem_proc_waiter, s);
        cr_assert(wait_count(&s->registered, round + 1, 5.0));
        cr_assert(wait_task_state(pid, pid, 'S', 5.0));
        if (round == 0) {
            child_kill(pid);
        } else {
            kill(pid, SIGKILL);
            cr_assert(wait_zombie(pid, 5.0));
        }
        int rc = ps_semaphore_destroy(s->sem);
        if (round == 1)
            child_wait(pid, 5.0);
        cr_assert_eq(rc, 0, "round %d: destroy after the only acquirer was killed (%s): %d",
                     round, round ? "zombie" : "reaped", rc);
        CHECK_RC(ps_semaphore_init(s->sem, 0, PS_SHARED), 0);
    }
    s->timeout = 5.0;
    pid_t pid = fork_child(sem_proc_waiter, s);
    cr_assert(wait_count(&s->registered, 3, 5.0));
    CHECK_RC(ps_semaphore_release(s->sem, 1), 0);
    CHECK_CHILDREN(&pid, 1, 10.0, 0);
    cr_assert_eq(ps_semaphore_value(s->sem), 0);
    CHECK_RC_E(ps_semaphore_destroy(s->sem), 0);
    shm_free(s->sem, sizeof *s->sem);
    shm_free(s, sizeof *s);
}
