/* SPDX-License-Identifier: MIT */
/* tests/test_barrier.c - ps_barrier_t (threading.Barrier).
 * Ports of CPython Lib/test/lock_tests.py BarrierTests, plus error codes, errno,
 * signals, PS_SHARED and waiter death. */
#include <criterion/criterion.h>
#include <pysync/threading.h>

#include "helpers.h"

TestSuite(barrier, .timeout = 30);
TestSuite(barrier_shared, .timeout = 40);

enum { MAXP = 16, MAXR = 16 };

typedef struct bctx {
    ps_barrier_t *b;
    int parties;
    int rounds;
    double timeout;
    atomic_int action_count;       /* bumped by the action */
    atomic_int seen[MAXR][MAXP];   /* seen[round][index]: how many got that index */
    atomic_int bad_count;          /* waiters that saw action_count != round + 1 */
    atomic_int errors;
    atomic_int rc_count[4];        /* 0, ETIMEDOUT, EPIPE, other */
    atomic_int passed;
    atomic_int started;
    bool errno_bad;
} bctx_t;

static void count_rc(bctx_t *c, int rc)
{
    int k = rc == 0 ? 0 : rc == ETIMEDOUT ? 1 : rc == EPIPE ? 2 : 3;
    atomic_fetch_add(&c->rc_count[k], 1);
}

static void count_action(void *arg)
{
    bctx_t *c = arg;
    atomic_fetch_add(&c->action_count, 1);
}

/* Passes the barrier c->rounds times, checking indices and the action counter. */
static void *multipass(void *arg)
{
    bctx_t *c = arg;
    atomic_fetch_add(&c->started, 1);
    for (int r = 0; r < c->rounds; r++) {
        unsigned idx = 999;
        errno = 12345;
        int rc = ps_barrier_wait(c->b, c->timeout, &idx);
        if (errno != 12345)
            c->errno_bad = true;
        count_rc(c, rc);
        if (rc != 0) {
            atomic_fetch_add(&c->errors, 1);
            return NULL;
        }
        if (idx < MAXP && r < MAXR)
            atomic_fetch_add(&c->seen[r][idx], 1);
        else
            atomic_fetch_add(&c->errors, 1);
        if (atomic_load(&c->action_count) != r + 1)
            atomic_fetch_add(&c->bad_count, 1);
        atomic_fetch_add(&c->passed, 1);
    }
    return NULL;
}

static void check_multipass(bctx_t *c, int nthreads)
{
    cr_assert_eq(atomic_load(&c->errors), 0, "errors: %d (ETIMEDOUT %d, EPIPE %d, other %d)",
                 atomic_load(&c->errors), atomic_load(&c->rc_count[1]),
                 atomic_load(&c->rc_count[2]), atomic_load(&c->rc_count[3]));
    cr_assert_eq(atomic_load(&c->passed), nthreads * c->rounds);
    for (int r = 0; r < c->rounds; r++)
        for (int i = 0; i < c->parties; i++)
            cr_assert_eq(atomic_load(&c->seen[r][i]), 1,
                         "round %d: index %d was returned %d times", r, i,
                         atomic_load(&c->seen[r][i]));
}

/* ------------------------------------------------------------------ basics */

Test(barrier, constructor)
{
    ps_barrier_t b;
    CHECK_RC_E(ps_barrier_init(&b, 3, NULL, NULL, PS_FOREVER, 0), 0);
    cr_assert_eq(ps_barrier_parties(&b), 3);
    cr_assert_eq(ps_barrier_n_waiting(&b), 0);
    cr_assert(!ps_barrier_broken(&b));
    CHECK_RC_E(ps_barrier_destroy(&b), 0);
    ps_barrier_t *p = ps_barrier_new(5, NULL, NULL, 1.0, 0);
    cr_assert_not_null(p);
    cr_assert_eq(ps_barrier_parties(p), 5);
    ps_barrier_free(p);
    ps_barrier_free(NULL);
}

Test(barrier, bad_arguments_einval)
{
    ps_barrier_t b;
    CHECK_RC_E(ps_barrier_init(&b, 0, NULL, NULL, PS_FOREVER, 0), EINVAL);
    CHECK_RC_E(ps_barrier_init(NULL, 2, NULL, NULL, PS_FOREVER, 0), EINVAL);
    CHECK_RC_E(ps_barrier_init(&b, 2, NULL, NULL, NAN, 0), EINVAL);
    errno = 0;
    cr_assert_null(ps_barrier_new(0, NULL, NULL, PS_FOREVER, 0));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(ps_barrier_new(0, NULL, NULL, PS_FOREVER, PS_SHARED));
    cr_assert_eq(errno, EINVAL);

    CHECK_RC_E(ps_barrier_destroy(NULL), EINVAL);
    unsigned idx;
    CHECK_RC_E(ps_barrier_wait(NULL, 1.0, &idx), EINVAL);
    CHECK_RC_E(ps_barrier_reset(NULL), EINVAL);
    CHECK_RC_E(ps_barrier_abort(NULL), EINVAL);

    ps_barrier_t *p = ps_barrier_new(2, NULL, NULL, PS_FOREVER, 0);
    CHECK_RC_E(ps_barrier_wait(p, NAN, &idx), EINVAL);
    cr_assert_eq(ps_barrier_n_waiting(p), 0, "an EINVAL wait was counted as arrived");
    cr_assert(!ps_barrier_broken(p), "an EINVAL wait broke the barrier");
    ps_barrier_free(p);
}

Test(barrier, single_thread)
{
    bctx_t c = { 0 };
    ps_barrier_t *p = ps_barrier_new(1, count_action, &c, PS_FOREVER, 0);
    for (int r = 0; r < 5; r++) {
        unsigned idx = 999;
        CHECK_RC_E(ps_barrier_wait(p, PS_FOREVER, &idx), 0);
        cr_assert_eq(idx, 0);
        cr_assert_eq(atomic_load(&c.action_count), r + 1);
    }
    CHECK_RC_E(ps_barrier_wait(p, 0.0, NULL), 0);   /* index pointer may be NULL */
    ps_barrier_free(p);
}

static void run_multipass(int parties, int rounds, bool action)
{
    bctx_t *c = calloc(1, sizeof *c);
    c->parties = parties;
    c->rounds = rounds;
    c->timeout = 10.0;
    c->b = ps_barrier_new((unsigned)parties, action ? count_action : NULL, c, PS_FOREVER, 0);
    cr_assert_not_null(c->b);
    pthread_t t[MAXP];
    start_threads(t, parties, multipass, c, 0);
    join_threads(t, parties, NULL);
    check_multipass(c, parties);
    if (action) {
        cr_assert_eq(atomic_load(&c->action_count), rounds, "action ran %d times in %d rounds",
                     atomic_load(&c->action_count), rounds);
        cr_assert_eq(atomic_load(&c->bad_count), 0,
                     "%d waiters were released before the action ran",
                     atomic_load(&c->bad_count));
    }
    cr_assert(!c->errno_bad, "errno changed by ps_barrier_wait");
    cr_assert_eq(ps_barrier_n_waiting(c->b), 0);
    cr_assert(!ps_barrier_broken(c->b));
    ps_barrier_free(c->b);
    free(c);
}

Test(barrier, barrier)       { run_multipass(5, 1, true); }
Test(barrier, barrier_10)    { run_multipass(5, 10, true); }
Test(barrier, wait_return)   { run_multipass(8, 4, true); }
Test(barrier, action)        { run_multipass(4, 12, true); }
Test(barrier, two_parties_many_rounds) { run_multipass(2, 16, true); }

Test(barrier, n_waiting)
{
    bctx_t c = { .rounds = 1, .parties = 3, .timeout = 10.0 };
    c.b = ps_barrier_new(3, count_action, &c, PS_FOREVER, 0);
    pthread_t t[3];
    for (int i = 0; i < 2; i++) {
        start_threads(&t[i], 1, multipass, &c, 0);
        double end = now() + 5.0;
        while (ps_barrier_n_waiting(c.b) < (unsigned)i + 1 && now() < end)
            sleep_s(0.001);
        cr_assert_eq(ps_barrier_n_waiting(c.b), (unsigned)i + 1);
    }
    cr_assert_eq(atomic_load(&c.passed), 0);
    start_threads(&t[2], 1, multipass, &c, 0);
    join_threads(t, 3, NULL);
    check_multipass(&c, 3);
    cr_assert_eq(ps_barrier_n_waiting(c.b), 0);
    ps_barrier_free(c.b);
}

static bool barrier_has_waiters(ps_barrier_t *b, unsigned n, double timeout)
{
    double end = now() + timeout;
    while (ps_barrier_n_waiting(b) < n) {
        if (now() > end)
            return false;
        sleep_s(0.001);
    }
    return true;
}

/* ------------------------------------------------------------------ abort/reset */

typedef struct abctx {
    ps_barrier_t *b, *b2;
    int n;
    atomic_int results1, results2, results3;
    atomic_int unexpected;
} abctx_t;

/* Counts the result of the wait that the abort or reset breaks: 0 (results1), EPIPE
 * (results2) or anything else (unexpected). */
static void count_broken_wait(abctx_t *c, int rc)
{
    if (rc == 0)
        atomic_fetch_add(&c->results1, 1);
    else if (rc == EPIPE)
        atomic_fetch_add(&c->results2, 1);
    else
        atomic_fetch_add(&c->unexpected, 1);
}

/* The first wait of the abort/reset tests: -1 if it failed (counted as unexpected),
 * 1 for the thread that got index n/2 (it breaks the next wait), 0 for the others. */
static int first_pass(abctx_t *c)
{
    unsigned i;
    if (ps_barrier_wait(c->b, 10.0, &i) != 0) {
        atomic_fetch_add(&c->unexpected, 1);
        return -1;
    }
    return i == (unsigned)c->n / 2;
}

/* CPython test_abort */
static void *abort_f(void *arg)
{
    abctx_t *c = arg;
    unsigned i;
    int role = first_pass(c);
    if (role < 0)
        return NULL;
    if (role == 1) {
        ps_barrier_abort(c->b);
        return NULL;
    }
    count_broken_wait(c, ps_barrier_wait(c->b, 10.0, &i));
    return NULL;
}

Test(barrier, abort)
{
    abctx_t c = { .n = 5 };
    c.b = ps_barrier_new(5, NULL, NULL, PS_FOREVER, 0);
    run_threads(c.n, abort_f, &c, 0);
    cr_assert_eq(atomic_load(&c.unexpected), 0);
    cr_assert_eq(atomic_load(&c.results1), 0);
    cr_assert_eq(atomic_load(&c.results2), c.n - 1);
    cr_assert(ps_barrier_broken(c.b));
    unsigned idx;
    CHECK_RC_E(ps_barrier_wait(c.b, 1.0, &idx), EPIPE);   /* later callers */
    CHECK_RC_E(ps_barrier_wait(c.b, PS_FOREVER, &idx), EPIPE);
    CHECK_RC_E(ps_barrier_reset(c.b), 0);
    cr_assert(!ps_barrier_broken(c.b));
    ps_barrier_free(c.b);
}

/* CPython test_reset */
static void *reset_f(void *arg)
{
    abctx_t *c = arg;
    unsigned i;
    int role = first_pass(c);
    if (role < 0)
        return NULL;
    if (role == 1) {
        if (!barrier_has_waiters(c->b, (unsigned)c->n - 1, 10.0))
            atomic_fetch_add(&c->unexpected, 1);
        if (ps_barrier_reset(c->b) != 0)
            atomic_fetch_add(&c->unexpected, 1);
    } else {
        count_broken_wait(c, ps_barrier_wait(c->b, 10.0, &i));
    }
    /* now pass the barrier again */
    if (ps_barrier_wait(c->b, 10.0, &i) == 0)
        atomic_fetch_add(&c->results3, 1);
    else
        atomic_fetch_add(&c->unexpected, 1);
    return NULL;
}

/* After test_reset and test_abort_and_reset: the broken wait gave EPIPE to all but the
 * one who broke it, and then everyone passed again. */
static void check_broken_then_passed(abctx_t *c)
{
    cr_assert_eq(atomic_load(&c->unexpected), 0, "unexpected results: %d",
                 atomic_load(&c->unexpected));
    cr_assert_eq(atomic_load(&c->results1), 0);
    cr_assert_eq(atomic_load(&c->results2), c->n - 1);
    cr_assert_eq(atomic_load(&c->results3), c->n);
}

Test(barrier, reset)
{
    abctx_t c = { .n = 5 };
    c.b = ps_barrier_new(5, NULL, NULL, PS_FOREVER, 0);
    run_threads(c.n, reset_f, &c, 0);
    check_broken_then_passed(&c);
    cr_assert(!ps_barrier_broken(c.b));
    ps_barrier_free(c.b);
}

/* CPython test_abort_and_reset */
static void *abort_and_reset_f(void *arg)
{
    abctx_t *c = arg;
    unsigned i;
    int role = first_pass(c);
    if (role == 1)
        ps_barrier_abort(c->b);
    else if (role == 0)
        count_broken_wait(c, ps_barrier_wait(c->b, 10.0, &i));
    /* synchronize and reset: everyone has left b when we reset, nobody enters before */
    int rc = ps_barrier_wait(c->b2, 10.0, &i);
    if (rc != 0)
        atomic_fetch_add(&c->unexpected, 1);
    if (rc == 0 && i == (unsigned)c->n / 2 && ps_barrier_reset(c->b) != 0)
        atomic_fetch_add(&c->unexpected, 1);
    if (ps_barrier_wait(c->b2, 10.0, &i) != 0)
        atomic_fetch_add(&c->unexpected, 1);
    if (ps_barrier_wait(c->b, 10.0, &i) == 0)
        atomic_fetch_add(&c->results3, 1);
    else
        atomic_fetch_add(&c->unexpected, 1);
    return NULL;
}

Test(barrier, abort_and_reset)
{
    abctx_t c = { .n = 5 };
    c.b = ps_barrier_new(5, NULL, NULL, PS_FOREVER, 0);
    c.b2 = ps_barrier_new(5, NULL, NULL, PS_FOREVER, 0);
    run_threads(c.n, abort_and_reset_f, &c, 0);
    check_broken_then_passed(&c);
    ps_barrier_free(c.b);
    ps_barrier_free(c.b2);
}

/* reset makes current waiters EPIPE and the barrier usable again. */
Test(barrier, reset_waiters_epipe)
{
    bctx_t c = { .rounds = 1, .parties = 3, .timeout = 10.0 };
    c.b = ps_barrier_new(3, NULL, NULL, PS_FOREVER, 0);
    pthread_t t[2];
    start_threads(t, 2, multipass, &c, 0);
    cr_assert(barrier_has_waiters(c.b, 2, 5.0));
    CHECK_RC_E(ps_barrier_reset(c.b), 0);
    join_threads(t, 2, NULL);
    cr_assert_eq(atomic_load(&c.rc_count[2]), 2, "reset: %d of 2 waiters got EPIPE "
                 "(0: %d, ETIMEDOUT: %d, other: %d)", atomic_load(&c.rc_count[2]),
                 atomic_load(&c.rc_count[0]), atomic_load(&c.rc_count[1]),
                 atomic_load(&c.rc_count[3]));
    cr_assert(!ps_barrier_broken(c.b));
    cr_assert_eq(ps_barrier_n_waiting(c.b), 0);
    /* usable again: full rounds with the same barrier */
    bctx_t d = { .rounds = 3, .parties = 3, .timeout = 10.0, .b = c.b };
    pthread_t t3[3];
    start_threads(t3, 3, multipass, &d, 0);
    join_threads(t3, 3, NULL);
    cr_assert_eq(atomic_load(&d.errors), 0, "after reset: ETIMEDOUT %d, EPIPE %d, other %d",
                 atomic_load(&d.rc_count[1]), atomic_load(&d.rc_count[2]),
                 atomic_load(&d.rc_count[3]));
    cr_assert_eq(atomic_load(&d.passed), 9);
    ps_barrier_free(c.b);
}

Test(barrier, reset_then_rounds)
{
    bctx_t *c = calloc(1, sizeof *c);
    c->rounds = 1;
    c->parties = 3;
    c->timeout = 10.0;
    c->b = ps_barrier_new(3, count_action, c, PS_FOREVER, 0);
    pthread_t t[3];
    start_threads(t, 2, multipass, c, 0);
    cr_assert(barrier_has_waiters(c->b, 2, 5.0));
    CHECK_RC(ps_barrier_reset(c->b), 0);
    join_threads(t, 2, NULL);
    cr_assert_eq(atomic_load(&c->rc_count[2]), 2);
    /* fresh bookkeeping, same barrier */
    ps_barrier_t *b = c->b;
    memset(c, 0, sizeof *c);
    c->b = b;
    c->rounds = 4;
    c->parties = 3;
    c->timeout = 10.0;
    /* the action counter of the barrier is c->action_count (arg c): reset to 0 above */
    start_threads(t, 3, multipass, c, 0);
    join_threads(t, 3, NULL);
    check_multipass(c, 3);
    cr_assert_eq(atomic_load(&c->action_count), 4);
    ps_barrier_free(b);
    free(c);
}

/* ------------------------------------------------------------------ timeouts */

typedef struct tw {
    ps_barrier_t *b;
    double timeout;
    int rc;
    double elapsed;
    bool errno_ok;
} tw_t;

static void *timed_wait(void *arg)
{
    tw_t *w = arg;
    unsigned idx;
    w->errno_ok = true;
    double t0 = now();
    RECORD_RC_E(&w->rc, &w->errno_ok, ps_barrier_wait(w->b, w->timeout, &idx));
    w->elapsed = now() - t0;
    return NULL;
}

Test(barrier, timeout)
{
    ps_barrier_t *b = ps_barrier_new(3, NULL, NULL, PS_FOREVER, 0);
    tw_t slow = { .b = b, .timeout = 5.0 }, fast = { .b = b, .timeout = 0.2 };
    pthread_t t[2];
    start_threads(&t[0], 1, timed_wait, &slow, 0);
    cr_assert(barrier_has_waiters(b, 1, 5.0));
    start_threads(&t[1], 1, timed_wait, &fast, 0);
    join_threads(t, 2, NULL);
    cr_assert_eq(fast.rc, ETIMEDOUT, "timed-out waiter got %d", fast.rc);
    cr_assert_geq(fast.elapsed, LOWER_BOUND(0.2), "after %.4f s", fast.elapsed);
    cr_assert_eq(slow.rc, EPIPE, "other waiter got %d", slow.rc);
    cr_assert_lt(slow.elapsed, 4.9, "other waiter was not released by the break");
    cr_assert(fast.errno_ok && slow.errno_ok);
    cr_assert(ps_barrier_broken(b));
    unsigned idx;
    CHECK_RC_E(ps_barrier_wait(b, 1.0, &idx), EPIPE);     /* later callers */
    CHECK_RC_E(ps_barrier_wait(b, 0.0, &idx), EPIPE);
    CHECK_RC_E(ps_barrier_reset(b), 0);
    cr_assert(!ps_barrier_broken(b));
    /* usable again */
    bctx_t c = { .rounds = 2, .parties = 3, .timeout = 10.0, .b = b };
    pthread_t t3[3];
    start_threads(t3, 3, multipass, &c, 0);
    join_threads(t3, 3, NULL);
    cr_assert_eq(atomic_load(&c.passed), 6);
    ps_barrier_free(b);
}

Test(barrier, timeout_zero)
{
    ps_barrier_t *b = ps_barrier_new(2, NULL, NULL, PS_FOREVER, 0);
    unsigned idx;
    CHECK_RC_E(ps_barrier_wait(b, 0.0, &idx), ETIMEDOUT);
    cr_assert(ps_barrier_broken(b));
    CHECK_RC_E(ps_barrier_reset(b), 0);
    ps_barrier_free(b);
}

Test(barrier, default_timeout)
{
    ps_barrier_t *b = ps_barrier_new(2, NULL, NULL, 0.2, 0);
    tw_t w = { .b = b, .timeout = PS_FOREVER };
    run_threads(1, timed_wait, &w, 0);
    cr_assert_eq(w.rc, ETIMEDOUT, "wait(-1) with default timeout 0.2: %d", w.rc);
    cr_assert_geq(w.elapsed, LOWER_BOUND(0.2), "after %.4f s", w.elapsed);
    cr_assert(ps_barrier_broken(b));
    CHECK_RC(ps_barrier_reset(b), 0);
    /* any negative timeout means "the default" */
    tw_t w2 = { .b = b, .timeout = -3.0 };
    run_threads(1, timed_wait, &w2, 0);
    cr_assert_eq(w2.rc, ETIMEDOUT);
    cr_assert_geq(w2.elapsed, LOWER_BOUND(0.2));
    CHECK_RC(ps_barrier_reset(b), 0);
    /* an explicit timeout overrides the default */
    tw_t w3 = { .b = b, .timeout = 0.4 };
    run_threads(1, timed_wait, &w3, 0);
    cr_assert_eq(w3.rc, ETIMEDOUT);
    cr_assert_geq(w3.elapsed, LOWER_BOUND(0.4), "explicit 0.4 s, returned after %.4f s",
                  w3.elapsed);
    ps_barrier_free(b);

    /* default timeout -1: forever */
    b = ps_barrier_new(2, NULL, NULL, PS_FOREVER, 0);
    tw_t w4 = { .b = b, .timeout = PS_FOREVER };
    pthread_t t;
    start_threads(&t, 1, timed_wait, &w4, 0);
    cr_assert(barrier_has_waiters(b, 1, 5.0));
    sleep_s(0.2);
    cr_assert_eq(ps_barrier_n_waiting(b), 1);
    cr_assert(!ps_barrier_broken(b));
    unsigned idx;
    CHECK_RC(ps_barrier_wait(b, 5.0, &idx), 0);
    join_threads(&t, 1, NULL);
    cr_assert_eq(w4.rc, 0);
    ps_barrier_free(b);
}

Test(barrier, destroy_while_waited_ebusy)
{
    ps_barrier_t b;
    CHECK_RC(ps_barrier_init(&b, 2, NULL, NULL, PS_FOREVER, 0), 0);
    tw_t w = { .b = &b, .timeout = 10.0 };
    pthread_t t;
    start_threads(&t, 1, timed_wait, &w, 0);
    cr_assert(barrier_has_waiters(&b, 1, 5.0));
    CHECK_RC_E(ps_barrier_destroy(&b), EBUSY);
    cr_assert_eq(ps_barrier_n_waiting(&b), 1);
    CHECK_RC(ps_barrier_abort(&b), 0);
    join_threads(&t, 1, NULL);
    cr_assert_eq(w.rc, EPIPE, "abort: waiter got %d", w.rc);
    CHECK_RC_E(ps_barrier_destroy(&b), 0);
}

static void barrier_signal_test(ps_barrier_t *b)
{
    tw_t w = { .b = b, .timeout = 0.3 };
    run_thread_under_signals(timed_wait, &w);
    cr_assert_eq(w.rc, ETIMEDOUT, "got %d (%s)", w.rc, strerror(w.rc));
    cr_assert_geq(w.elapsed, LOWER_BOUND(0.3), "after %.4f s", w.elapsed);
    cr_assert(w.errno_ok);
    CHECK_RC(ps_barrier_reset(b), 0);

    /* untimed */
    tw_t w2 = { .b = b, .timeout = PS_FOREVER };
    pthread_t t;
    start_threads(&t, 1, timed_wait, &w2, 0);
    cr_assert(barrier_has_waiters(b, 1, 5.0));
    signal_thread_for(t, 0.2);
    cr_assert_eq(ps_barrier_n_waiting(b), 1, "untimed barrier wait ended by a signal");
    unsigned idx;
    CHECK_RC(ps_barrier_wait(b, 5.0, &idx), 0);
    join_threads(&t, 1, NULL);
    cr_assert_eq(w2.rc, 0);
}

Test(barrier, signal_does_not_end_wait)
{
    ps_barrier_t *b = ps_barrier_new(2, NULL, NULL, PS_FOREVER, 0);
    barrier_signal_test(b);
    ps_barrier_free(b);
}

/* ================================================================== PS_SHARED */

typedef struct bshared {
    ps_barrier_t *b;
    double timeout;
    int rounds;
    atomic_int action_count;
    atomic_int registered;
    atomic_int seen[MAXR][MAXP];
    atomic_int bad;
} bshared_t;

static void shared_action(void *arg)
{
    bshared_t *s = arg;
    atomic_fetch_add(&s->action_count, 1);
}

static int bproc(void *arg)
{
    bshared_t *s = arg;
    atomic_fetch_add(&s->registered, 1);
    for (int r = 0; r < s->rounds; r++) {
        unsigned idx = 999;
        int rc = ps_barrier_wait(s->b, s->timeout, &idx);
        if (rc != 0)
            return rc;
        if (idx >= MAXP)
            return 200;
        atomic_fetch_add(&s->seen[r][idx], 1);
        if (atomic_load(&s->action_count) < r + 1)
            atomic_fetch_add(&s->bad, 1);
    }
    return 0;
}

Test(barrier_shared, processes_rounds)
{
    bshared_t *s = shm_alloc(sizeof *s);
    s->b = ps_barrier_new(3, shared_action, s, PS_FOREVER, PS_SHARED);
    cr_assert_not_null(s->b);
    s->timeout = 10.0;
    s->rounds = 8;
    pid_t pids[3];
    fork_children(pids, 3, bproc, s);
    CHECK_CHILDREN(pids, 3, 20.0, 0);
    for (int r = 0; r < s->rounds; r++)
        for (int i = 0; i < 3; i++)
            cr_assert_eq(atomic_load(&s->seen[r][i]), 1, "round %d index %d: %d", r, i,
                         atomic_load(&s->seen[r][i]));
    cr_assert_eq(atomic_load(&s->action_count), s->rounds);
    cr_assert_eq(atomic_load(&s->bad), 0, "released before the action ran");
    ps_barrier_free(s->b);
    shm_free(s, sizeof *s);
}

Test(barrier_shared, timeout_and_signal)
{
    ps_barrier_t *b = ps_barrier_new(2, NULL, NULL, 0.2, PS_SHARED);
    unsigned idx;
    double t0 = now();
    CHECK_RC_E(ps_barrier_wait(b, PS_FOREVER, &idx), ETIMEDOUT);
    cr_assert_geq(now() - t0, LOWER_BOUND(0.2));
    cr_assert(ps_barrier_broken(b));
    CHECK_RC_E(ps_barrier_wait(b, PS_FOREVER, &idx), EPIPE);
    CHECK_RC(ps_barrier_reset(b), 0);
    ps_barrier_free(b);

    b = ps_barrier_new(2, NULL, NULL, PS_FOREVER, PS_SHARED);
    barrier_signal_test(b);
    ps_barrier_free(b);
}

Test(barrier_shared, abort_wakes_other_process)
{
    bshared_t *s = shm_alloc(sizeof *s);
    s->b = ps_barrier_new(3, NULL, NULL, PS_FOREVER, PS_SHARED);
    s->timeout = 10.0;
    s->rounds = 1;
    pid_t pids[2];
    fork_children(pids, 2, bproc, s);
    cr_assert(barrier_has_waiters(s->b, 2, 5.0));
    CHECK_RC(ps_barrier_abort(s->b), 0);
    CHECK_CHILDREN(pids, 2, 10.0, EPIPE);
    ps_barrier_free(s->b);
    shm_free(s, sizeof *s);
}

/* Two waiting processes are SIGKILLed; after a reset, five rounds of new waiters
 * (processes on even rounds, threads on odd ones) pass exactly as before. */
Test(barrier_shared, waiter_killed)
{
    bshared_t *s = shm_alloc(sizeof *s);
    s->b = ps_barrier_new(3, shared_action, s, PS_FOREVER, PS_SHARED);
    s->timeout = 20.0;
    s->rounds = 1;
    pid_t dead[2];
    fork_children(dead, 2, bproc, s);
    cr_assert(barrier_has_waiters(s->b, 2, 5.0));
    sleep_s(0.05);
    kill_children(dead, 2);
    CHECK_RC_E(ps_barrier_reset(s->b), 0);
    cr_expect_eq(ps_barrier_n_waiting(s->b), 0, "n_waiting after reset: %u",
                 ps_barrier_n_waiting(s->b));
    cr_assert(!ps_barrier_broken(s->b));

    s->timeout = 5.0;
    for (int round = 0; round < 5; round++) {
        memset(s->seen, 0, sizeof s->seen);
        atomic_store(&s->action_count, 0);
        waiters_t w;
        waiters_start(&w, round % 2 == 0, 3, bproc, s);
        CHECK_WAITERS_OK(&w, round);
        for (int i = 0; i < 3; i++)
            cr_assert_eq(atomic_load(&s->seen[0][i]), 1, "round %d: index %d seen %d times",
                         round, i, atomic_load(&s->seen[0][i]));
        cr_assert_eq(atomic_load(&s->action_count), 1);
    }
    ps_barrier_free(s->b);
    shm_free(s, sizeof *s);
}

/* ================================================================== destroy races */

/* Two threads wait, then the barrier is released (the third arrival: abort false) or
 * aborted (abort true) and destroyed at once: EBUSY is fine while the others are still
 * leaving wait, but once destroy returns 0 nobody may touch the barrier (its page is
 * unmapped). The waiters get 0 after a trip, EPIPE after an abort. */
static void destroy_after_wake(int flags, bool abort)
{
    int want = abort ? EPIPE : 0;
    for (int iter = 0; iter < 20; iter++) {
        ps_barrier_t *b = page_alloc();
        CHECK_RC(ps_barrier_init(b, 3, NULL, NULL, PS_FOREVER, flags), 0);
        tw_t w[2] = { { .b = b, .timeout = 5.0 }, { .b = b, .timeout = 5.0 } };
        pthread_t t[2];
        start_threads(t, 2, timed_wait, w, sizeof w[0]);
        cr_assert(barrier_has_waiters(b, 2, 5.0));
        if (abort) {
            CHECK_RC(ps_barrier_abort(b), 0);
        } else {
            unsigned idx;
            CHECK_RC(ps_barrier_wait(b, 5.0, &idx), 0);
        }
        int rc;
        DESTROY_RETRY(rc, ps_barrier_destroy(b));
        cr_assert_eq(rc, 0, "iteration %d: destroy after %s: %d", iter,
                     abort ? "abort" : "the round", rc);
        page_free(b);
        join_threads(t, 2, NULL);
        cr_assert_eq(w[0].rc, want, "iteration %d: %d", iter, w[0].rc);
        cr_assert_eq(w[1].rc, want, "iteration %d: %d", iter, w[1].rc);
    }
}

Test(barrier, destroy_right_after_trip) { destroy_after_wake(0, false); }
Test(barrier_shared, destroy_right_after_trip) { destroy_after_wake(PS_SHARED, false); }
Test(barrier, destroy_right_after_abort) { destroy_after_wake(0, true); }
Test(barrier_shared, destroy_right_after_abort) { destroy_after_wake(PS_SHARED, true); }

/* ================================================================== first out destroys */

/* PITFALLS 13: two parties; whichever returns first destroys the barrier (retrying
 * while EBUSY: the other party is still leaving) and its page becomes PROT_NONE at
 * once. The other party must not touch the barrier once destroy can return 0 (the
 * old code let destroy succeed before the last party's unlock). The stormed runs
 * send the waker thread signals, so it sometimes stops right where it leaves. */
static void barrier_page_race(int flags, bool stormed)
{
    page_race_t r = { .init = race_barrier_init, .waiter = race_barrier_waiter,
                      .waker = race_barrier_waker, .flags = flags, .max_jitter = 300 };
    if (stormed) {
        r.storm_period = 50e-6;
        r.storm_handler = 20e-6;
    }
    CHECK_PAGE_RACE(&r, 3000, stormed ? 0.3 : 0.5);
}

Test(barrier, first_out_destroys) { barrier_page_race(0, false); }
Test(barrier, first_out_destroys_stormed) { barrier_page_race(0, true); }
Test(barrier_shared, first_out_destroys) { barrier_page_race(PS_SHARED, false); }
Test(barrier_shared, first_out_destroys_stormed) { barrier_page_race(PS_SHARED, true); }

/* ================================================================== slow live parties */

typedef struct slow_action {
    ps_barrier_t *b;
    double secs;
    atomic_int phase;           /* 1 while the action runs, 2 once it ended */
    atomic_int registered;
} slow_action_t;

static void slow_action(void *arg)
{
    slow_action_t *s = arg;
    atomic_store(&s->phase, 1);
    sleep_s(s->secs);
    atomic_store(&s->phase, 2);
}

/* Returns the index the party got, or 100 + the error. */
static int slow_party(void *arg)
{
    slow_action_t *s = arg;
    atomic_fetch_add(&s->registered, 1);
    unsigned idx = 99;
    int rc = ps_barrier_wait(s->b, 10.0, &idx);
    return rc ? 100 + rc : (int)idx;
}

/* Both parties are inside wait while the last one runs an action of `secs` s:
 * destroy says EBUSY all through the action (polled every 5 ms); once both
 * returned (indices 0 and 1) it returns 0. Parties are threads, or processes if
 * procs. */
static void destroy_during_action(int flags, bool procs, double secs)
{
    slow_action_t *s = shm_alloc(sizeof *s);
    s->b = shm_alloc(sizeof *s->b);
    s->secs = secs;
    CHECK_RC(ps_barrier_init(s->b, 2, slow_action, s, PS_FOREVER, flags), 0);
    waiters_t w;
    waiters_start(&w, procs, 2, slow_party, s);
    double end = now() + 5.0;
    while (atomic_load(&s->phase) == 0 && now() < end)
        sleep_s(0.0005);
    int calls = 0, bad = EBUSY;
    bool ok = atomic_load(&s->phase) != 0;
    while (ok && atomic_load(&s->phase) == 1) {
        int rc = ps_barrier_destroy(s->b);
        calls++;
        if (rc != EBUSY && atomic_load(&s->phase) == 1) {
            bad = rc;
            break;
        }
        sleep_s(0.005);
    }
    int codes[WAITERS_MAX];
    waiters_join(&w, 10.0, codes);
    cr_assert(ok, "the action never ran");
    cr_assert_eq(bad, EBUSY, "destroy while the action runs (call %d): %d (%s)", calls, bad,
                 strerror(bad));
    cr_assert_geq(calls, 10, "only %d destroy calls during the action", calls);
    cr_assert(codes[0] + codes[1] == 1 && codes[0] * codes[1] == 0,
              "parties got %d and %d (want indices 0 and 1)", codes[0], codes[1]);
    CHECK_RC_E(ps_barrier_destroy(s->b), 0);
    shm_free(s->b, sizeof *s->b);
    shm_free(s, sizeof *s);
}

Test(barrier, destroy_ebusy_during_long_action) { destroy_during_action(0, false, 0.25); }
Test(barrier_shared, destroy_ebusy_during_long_action)
{
    destroy_during_action(PS_SHARED, false, 0.5);
}
Test(barrier_shared, destroy_ebusy_during_long_action_processes)
{
    destroy_during_action(PS_SHARED, true, 0.5);
}
