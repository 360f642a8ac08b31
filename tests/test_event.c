/* SPDX-License-Identifier: MIT */
/* tests/test_event.c - ps_event_t (threading.Event).
 * Ports of CPython Lib/test/lock_tests.py EventTests, plus error codes, errno,
 * signals, PS_SHARED and waiter death. */
#include <criterion/criterion.h>
#include <pysync/threading.h>

#include "helpers.h"

TestSuite(event, .timeout = 30);
TestSuite(event_shared, .timeout = 40);

typedef struct ev_ctx {
    ps_event_t *ev;
    double timeout;
    atomic_int started;
    atomic_int returned;
    atomic_int zero;        /* waits that returned 0 */
    atomic_int timedout;
    atomic_int other;
    atomic_int errno_bad;
    double min_elapsed;     /* smallest elapsed time of a wait (guarded by returned) */
    pthread_mutex_t m;
} ev_ctx_t;

static void ev_ctx_init(ev_ctx_t *c, ps_event_t *ev, double timeout)
{
    memset(c, 0, sizeof *c);
    c->ev = ev;
    c->timeout = timeout;
    c->min_elapsed = 1e9;
    pthread_mutex_init(&c->m, NULL);
}

static int ev_record(ev_ctx_t *c, int rc, double elapsed)
{
    if (rc == 0)
        atomic_fetch_add(&c->zero, 1);
    else if (rc == ETIMEDOUT)
        atomic_fetch_add(&c->timedout, 1);
    else
        atomic_fetch_add(&c->other, 1);
    pthread_mutex_lock(&c->m);
    if (elapsed < c->min_elapsed)
        c->min_elapsed = elapsed;
    pthread_mutex_unlock(&c->m);
    atomic_fetch_add(&c->returned, 1);
    return rc;
}

static void *ev_waiter(void *arg)
{
    ev_ctx_t *c = arg;
    atomic_fetch_add(&c->started, 1);
    errno = 12345;
    double t0 = now();
    int rc = ps_event_wait(c->ev, c->timeout);
    double el = now() - t0;
    if (errno != 12345)
        atomic_fetch_add(&c->errno_bad, 1);
    ev_record(c, rc, el);
    return NULL;
}

/* CPython's _check_notify waiter: two waits in a row. */
static void *ev_waiter_twice(void *arg)
{
    ev_ctx_t *c = arg;
    atomic_fetch_add(&c->started, 1);
    int rc1 = ps_event_wait(c->ev, c->timeout);
    int rc2 = ps_event_wait(c->ev, c->timeout);
    ev_record(c, rc1 ? rc1 : rc2, 0);
    return NULL;
}

/* Starts n threads running fn (ev_waiter or ev_waiter_twice) on a fresh context and
 * waits until they all started: the setup of most multi-waiter tests. */
static void start_ev_waiters(ev_ctx_t *c, ps_event_t *ev, double timeout, pthread_t *t, int n,
                             thread_fn fn)
{
    ev_ctx_init(c, ev, timeout);
    start_threads(t, n, fn, c, 0);
    cr_assert(wait_count(&c->started, n, 5.0));
}

/* ------------------------------------------------------------------ basics */

Test(event, constructor)
{
    ps_event_t e;
    CHECK_RC_E(ps_event_init(&e, 0), 0);
    cr_assert(!ps_event_is_set(&e));
    CHECK_RC_E(ps_event_destroy(&e), 0);
    ps_event_t *p = ps_event_new(0);
    cr_assert_not_null(p);
    cr_assert(!ps_event_is_set(p));
    ps_event_free(p);
    ps_event_free(NULL);
}

Test(event, null_object_einval)
{
    CHECK_RC_E(ps_event_init(NULL, 0), EINVAL);
    CHECK_RC_E(ps_event_destroy(NULL), EINVAL);
    CHECK_RC_E(ps_event_set(NULL), EINVAL);
    CHECK_RC_E(ps_event_clear(NULL), EINVAL);
    CHECK_RC_E(ps_event_wait(NULL, 0.1), EINVAL);
}

Test(event, nan_timeout_einval)
{
    ps_event_t *p = ps_event_new(0);
    CHECK_RC_E(ps_event_wait(p, NAN), EINVAL);
    CHECK_RC(ps_event_set(p), 0);
    CHECK_RC_E(ps_event_wait(p, NAN), EINVAL);
    ps_event_free(p);
}

Test(event, is_set)
{
    ps_event_t *p = ps_event_new(0);
    cr_assert(!ps_event_is_set(p));
    CHECK_RC_E(ps_event_set(p), 0);
    cr_assert(ps_event_is_set(p));
    CHECK_RC_E(ps_event_set(p), 0);
    cr_assert(ps_event_is_set(p));
    CHECK_RC_E(ps_event_clear(p), 0);
    cr_assert(!ps_event_is_set(p));
    CHECK_RC_E(ps_event_clear(p), 0);
    cr_assert(!ps_event_is_set(p));
    ps_event_free(p);
}

Test(event, wait_when_set)
{
    ps_event_t *p = ps_event_new(0);
    CHECK_RC(ps_event_set(p), 0);
    CHECK_RC_E(ps_event_wait(p, 0.0), 0);
    CHECK_RC_E(ps_event_wait(p, PS_FOREVER), 0);
    CHECK_RC_E(ps_event_wait(p, 1e300), 0);
    CHECK_RC_E(ps_event_wait(p, INFINITY), 0);
    ps_event_free(p);
}

/* CPython _check_notify: all threads get notified. */
static void check_notify(ps_event_t *p)
{
    enum { N = 5 };
    ev_ctx_t c;
    pthread_t t[N];
    start_ev_waiters(&c, p, 10.0, t, N, ev_waiter_twice);
    sleep_s(0.05);
    cr_assert_eq(atomic_load(&c.returned), 0, "a wait returned before set");
    CHECK_RC_E(ps_event_set(p), 0);
    join_threads(t, N, NULL);
    cr_assert_eq(atomic_load(&c.zero), N, "%d of %d waiters got 0", atomic_load(&c.zero), N);
}

Test(event, notify)
{
    ps_event_t *p = ps_event_new(0);
    check_notify(p);
    CHECK_RC(ps_event_set(p), 0);
    CHECK_RC(ps_event_clear(p), 0);
    check_notify(p);   /* again, after an explicit clear */
    ps_event_free(p);
}

Test(event, timeout)
{
    ps_event_t *p = ps_event_new(0);
    CHECK_RC_E(ps_event_wait(p, 0.0), ETIMEDOUT);
    double t0 = now();
    CHECK_RC_E(ps_event_wait(p, 0.2), ETIMEDOUT);
    cr_assert_geq(now() - t0, LOWER_BOUND(0.2));

    enum { N = 5 };
    ev_ctx_t c;
    ev_ctx_init(&c, p, 0.2);
    run_threads(N, ev_waiter, &c, 0);
    cr_assert_eq(atomic_load(&c.timedout), N, "%d of %d timed out (%d got 0, %d other)",
                 atomic_load(&c.timedout), N, atomic_load(&c.zero), atomic_load(&c.other));
    cr_assert_geq(c.min_elapsed, LOWER_BOUND(0.2), "a wait timed out after %.4f s",
                  c.min_elapsed);
    cr_assert_eq(atomic_load(&c.errno_bad), 0);

    /* the event is set: every wait returns 0 */
    CHECK_RC(ps_event_set(p), 0);
    ev_ctx_init(&c, p, 0.2);
    run_threads(N, ev_waiter, &c, 0);
    cr_assert_eq(atomic_load(&c.zero), N);
    ps_event_free(p);
}

/* One round of the set tests: n waiters with `timeout`, set 0.1 s after they started
 * (and cleared right away if clear), then joined; c holds their results. */
static void set_round(ev_ctx_t *c, ps_event_t *p, int n, double timeout, bool clear)
{
    pthread_t t[n];
    start_ev_waiters(c, p, timeout, t, n, ev_waiter);
    sleep_s(0.1);
    CHECK_RC(ps_event_set(p), 0);
    if (clear)
        CHECK_RC(ps_event_clear(p), 0);
    join_threads(t, n, NULL);
}

/* Issue #13502: wait() returns 0 even when the event is cleared right after set. */
Test(event, set_and_clear)
{
    ps_event_t *p = ps_event_new(0);
    enum { N = 5 };
    for (int round = 0; round < 3; round++) {
        ev_ctx_t c;
        set_round(&c, p, N, 5.0, true);
        cr_assert_eq(atomic_load(&c.zero), N,
                     "round %d: %d of %d waiters got 0 (%d timed out)", round,
                     atomic_load(&c.zero), N, atomic_load(&c.timedout));
        cr_assert(!ps_event_is_set(p));
    }
    ps_event_free(p);
}

/* Event wakes waiters whose timeout expires at about the same instant. */
Test(event, set_near_deadline)
{
    ps_event_t *p = ps_event_new(0);
    enum { N = 4 };
    for (int round = 0; round < 5; round++) {
        ev_ctx_t c;
        set_round(&c, p, N, 0.1, false);
        /* each either timed out before the set or was woken by it: nothing else */
        cr_assert_eq(atomic_load(&c.zero) + atomic_load(&c.timedout), N);
        cr_assert(ps_event_is_set(p));
        CHECK_RC(ps_event_clear(p), 0);
    }
    ps_event_free(p);
}

Test(event, destroy_while_waited_ebusy)
{
    ps_event_t e;
    CHECK_RC(ps_event_init(&e, 0), 0);
    ev_ctx_t c;
    pthread_t t;
    start_ev_waiters(&c, &e, 10.0, &t, 1, ev_waiter);
    sleep_s(0.05);
    CHECK_RC_E(ps_event_destroy(&e), EBUSY);
    CHECK_RC(ps_event_set(&e), 0);
    join_threads(&t, 1, NULL);
    cr_assert_eq(atomic_load(&c.zero), 1);
    CHECK_RC_E(ps_event_destroy(&e), 0);
}

static void ev_signal_test(ps_event_t *p)
{
    ev_ctx_t c;
    ev_ctx_init(&c, p, 0.3);
    run_thread_under_signals(ev_waiter, &c);
    cr_assert_eq(atomic_load(&c.timedout), 1, "wait did not time out (0: %d, other: %d)",
                 atomic_load(&c.zero), atomic_load(&c.other));
    cr_assert_geq(c.min_elapsed, LOWER_BOUND(0.3), "after %.4f s", c.min_elapsed);
    cr_assert_eq(atomic_load(&c.errno_bad), 0);

    /* untimed wait: signals don't end it, set does */
    pthread_t t;
    start_ev_waiters(&c, p, PS_FOREVER, &t, 1, ev_waiter);
    signal_thread_for(t, 0.2);
    cr_assert_eq(atomic_load(&c.returned), 0, "untimed wait ended by a signal");
    CHECK_RC(ps_event_set(p), 0);
    join_threads(&t, 1, NULL);
    cr_assert_eq(atomic_load(&c.zero), 1);
    CHECK_RC(ps_event_clear(p), 0);
}

Test(event, signal_does_not_end_wait)
{
    ps_event_t *p = ps_event_new(0);
    ev_signal_test(p);
    ps_event_free(p);
}

/* Many set/clear cycles with a waiter per cycle, exact. */
typedef struct pingev {
    ps_event_t *ping, *pong;
    atomic_int errors;
} pingev_t;

static void *pong_thread(void *arg)
{
    pingev_t *p = arg;
    for (int i = 0; i < 2000; i++) {
        if (ps_event_wait(p->ping, 5.0) != 0) {
            atomic_fetch_add(&p->errors, 1);
            return NULL;
        }
        ps_event_clear(p->ping);
        ps_event_set(p->pong);
    }
    return NULL;
}

Test(event, pingpong)
{
    pingev_t p = { .ping = ps_event_new(0), .pong = ps_event_new(0) };
    pthread_t t;
    start_threads(&t, 1, pong_thread, &p, 0);
    int errors = 0;
    for (int i = 0; i < 2000 && !errors; i++) {
        ps_event_set(p.ping);
        if (ps_event_wait(p.pong, 5.0) != 0)
            errors++;
        ps_event_clear(p.pong);
    }
    join_threads(&t, 1, NULL);
    cr_assert_eq(errors + atomic_load(&p.errors), 0);
    ps_event_free(p.ping);
    ps_event_free(p.pong);
}

/* ================================================================== PS_SHARED */

typedef struct evshared {
    ps_event_t *ev;
    double timeout;
    atomic_int registered;
    atomic_int returned;
} evshared_t;

static int ev_proc_waiter(void *arg)
{
    evshared_t *s = arg;
    atomic_fetch_add(&s->registered, 1);
    int rc = ps_event_wait(s->ev, s->timeout);
    atomic_fetch_add(&s->returned, 1);
    return rc;
}

Test(event_shared, basics)
{
    ps_event_t *p = ps_event_new(PS_SHARED);
    cr_assert_not_null(p);
    cr_assert(!ps_event_is_set(p));
    double t0 = now();
    CHECK_RC_E(ps_event_wait(p, 0.2), ETIMEDOUT);
    cr_assert_geq(now() - t0, LOWER_BOUND(0.2));
    CHECK_RC_E(ps_event_set(p), 0);
    CHECK_RC_E(ps_event_wait(p, 0.2), 0);
    CHECK_RC_E(ps_event_clear(p), 0);
    cr_assert(!ps_event_is_set(p));
    ps_event_free(p);
}

Test(event_shared, signal_does_not_end_wait)
{
    ps_event_t *p = ps_event_new(PS_SHARED);
    ev_signal_test(p);
    ps_event_free(p);
}

Test(event_shared, set_wakes_other_processes)
{
    evshared_t *s = shm_alloc(sizeof *s);
    s->ev = ps_event_new(PS_SHARED);
    s->timeout = 10.0;
    enum { N = 4 };
    pid_t pids[N];
    fork_children(pids, N, ev_proc_waiter, s);
    cr_assert(wait_count(&s->registered, N, 5.0));
    sleep_s(0.05);
    cr_assert_eq(atomic_load(&s->returned), 0);
    CHECK_RC(ps_event_set(s->ev), 0);
    CHECK_RC(ps_event_clear(s->ev), 0);    /* woken waiters still return 0 */
    CHECK_CHILDREN(pids, N, 10.0, 0);
    ps_event_free(s->ev);
    shm_free(s, sizeof *s);
}

Test(event_shared, waiter_killed)
{
    evshared_t *s = shm_alloc(sizeof *s);
    s->ev = ps_event_new(PS_SHARED);
    s->timeout = 20.0;
    pid_t dead[2];
    fork_children(dead, 2, ev_proc_waiter, s);
    cr_assert(wait_count(&s->registered, 2, 5.0));
    sleep_s(0.05);
    kill_children(dead, 2);

    s->timeout = 5.0;
    for (int round = 0; round < 5; round++) {
        int base_reg = atomic_load(&s->registered), base_ret = atomic_load(&s->returned);
        waiters_t w;
        waiters_start(&w, round % 2 == 0, 2, ev_proc_waiter, s);
        cr_assert(wait_count(&s->registered, base_reg + 2, 5.0));
        sleep_s(0.05);
        cr_assert_eq(atomic_load(&s->returned), base_ret, "round %d: wait returned before set",
                     round);
        CHECK_RC(ps_event_set(s->ev), 0);
        CHECK_WAITERS_OK(&w, round);
        CHECK_RC(ps_event_clear(s->ev), 0);
    }
    CHECK_RC(ps_event_wait(s->ev, 0.05), ETIMEDOUT);
    ps_event_free(s->ev);
    shm_free(s, sizeof *s);
}

/* ================================================================== destroy races */

/* set, then destroy at once: destroy may say EBUSY while woken waiters are still
 * leaving wait, but once it returns 0 nobody may touch the event (it is unmapped). */
static void destroy_after_set(int flags)
{
    for (int iter = 0; iter < 20; iter++) {
        ps_event_t *ev = page_alloc();
        CHECK_RC(ps_event_init(ev, flags), 0);
        enum { N = 3 };
        ev_ctx_t c;
        pthread_t t[N];
        start_ev_waiters(&c, ev, 5.0, t, N, ev_waiter);
        sleep_s(0.01);
        CHECK_RC(ps_event_set(ev), 0);
        int rc;
        DESTROY_RETRY(rc, ps_event_destroy(ev));
        cr_assert_eq(rc, 0, "iteration %d: destroy after set: %d", iter, rc);
        page_free(ev);                   /* a waiter touching it now crashes */
        join_threads(t, N, NULL);
        cr_assert_eq(atomic_load(&c.zero), N, "iteration %d: %d of %d waiters got 0", iter,
                     atomic_load(&c.zero), N);
    }
}

Test(event, destroy_right_after_set) { destroy_after_set(0); }
Test(event_shared, destroy_right_after_set) { destroy_after_set(PS_SHARED); }

/* ================================================================== waiter destroys */

/* PITFALLS 13 (glibc bug 12674): the waiter's wait returns, it destroys the event and
 * the page becomes PROT_NONE at once, while set still runs on the waker thread: set
 * must not touch the event after the store that lets the waiter return. */
static void event_page_race(int flags)
{
    page_race_t r = { .init = race_event_init, .waiter = race_event_waiter,
                      .waker = race_event_waker, .flags = flags, .max_jitter = 300 };
    CHECK_PAGE_RACE(&r, 3000, 0.5);
}

Test(event, waiter_destroys_right_after_wait) { event_page_race(0); }
Test(event_shared, waiter_destroys_right_after_wait) { event_page_race(PS_SHARED); }

/* ================================================================== slow live waiters */

static int ev_destroy(void *ev) { return ps_event_destroy(ev); }

static int ev_tid_wait(tid_waiter_t *w)
{
    tid_waiter_ready(w);
    return ps_event_wait(w->obj, 10.0);
}

/* A waiter whose thread runs a 0.5 s signal handler in the middle of its wait is
 * alive: destroy says EBUSY all through the handler (the old code took it for dead
 * after 0.2 s), and the waiter then gets the set. */
Test(event_shared, destroy_ebusy_while_waiter_runs_long_signal_handler)
{
    ps_event_t *ev = shm_alloc(sizeof *ev);
    CHECK_RC(ps_event_init(ev, PS_SHARED), 0);
    tid_waiter_t w = { .obj = ev, .wait = ev_tid_wait };
    pthread_t t;
    start_threads(&t, 1, tid_waiter_main, &w, 0);
    cr_assert(wait_count(&w.ready, 1, 5.0));
    int calls, rc = destroy_during_long_handler(t, w.tid, ev_destroy, ev, 0.5, &calls);
    cr_assert_eq(rc, EBUSY, "destroy during the waiter's signal handler returned %d (%s) "
                 "at call %d", rc, strerror(rc > 0 ? rc : 0), calls);
    CHECK_RC(ps_event_set(ev), 0);
    join_threads(&t, 1, NULL);
    cr_assert_eq(w.rc, 0, "wait returned %d", w.rc);
    CHECK_RC_E(ps_event_destroy(ev), 0);
    shm_free(ev, sizeof *ev);
}

/* A waiter process that is SIGSTOPped is alive: destroy says EBUSY while it is
 * stopped. Round 0: SIGCONT, then set; round 1: set while it is stopped (destroy
 * still EBUSY), then SIGCONT. Either way it returns 0 and destroy then returns 0. */
Test(event_shared, destroy_ebusy_while_waiter_process_stopped)
{
    evshared_t *s = shm_alloc(sizeof *s);
    s->ev = shm_alloc(sizeof *s->ev);
    CHECK_RC(ps_event_init(s->ev, PS_SHARED), 0);
    s->timeout = 10.0;
    for (int round = 0; round < 2; round++) {
        pid_t pid = fork_child(ev_proc_waiter, s);
        int calls = 0, rc = -1, rc2 = EBUSY;
        if (wait_count(&s->registered, round + 1, 5.0))
            rc = destroy_during_stop(pid, ev_destroy, s->ev, 0.25, &calls);
        if (round == 1) {
            ps_event_set(s->ev);
            int calls2;
            rc2 = destroy_stays_ebusy(ev_destroy, s->ev, 0.1, &calls2);
        }
        kill(pid, SIGCONT);
        if (round == 0)
            ps_event_set(s->ev);
        int code = child_wait(pid, 10.0);
        cr_assert_eq(rc, EBUSY, "round %d: destroy while the waiter is stopped: %d at call %d",
                     round, rc, calls);
        cr_assert_eq(rc2, EBUSY, "destroy after set, waiter still stopped: %d", rc2);
        cr_assert_eq(code, 0, "round %d: the waiter ended with %d", round, code);
        CHECK_RC_E(ps_event_destroy(s->ev), 0);
        CHECK_RC(ps_event_init(s->ev, PS_SHARED), 0);
    }
    CHECK_RC_E(ps_event_destroy(s->ev), 0);
    shm_free(s->ev, sizeof *s->ev);
    shm_free(s, sizeof *s);
}

/* A waiter process SIGKILLed in wait is dead for sure: destroy returns 0 at once,
 * once it is reaped (round 0) and already while it is a zombie (round 1). The
 * re-initialized event then works for a live waiter. */
Test(event_shared, destroy_after_waiter_process_killed)
{
    evshared_t *s = shm_alloc(sizeof *s);
    s->ev = shm_alloc(sizeof *s->ev);
    CHECK_RC(ps_event_init(s->ev, PS_SHARED), 0);
    s->timeout = 20.0;
    for (int round = 0; round < 2; round++) {
        pid_t pid = fork_child(ev_proc_waiter, s);
        cr_assert(wait_count(&s->registered, round + 1, 5.0));
        cr_assert(wait_task_state(pid, pid, 'S', 5.0));
        if (round == 0) {
            child_kill(pid);
        } else {
            kill(pid, SIGKILL);
            cr_assert(wait_zombie(pid, 5.0));
        }
        int rc = ps_event_destroy(s->ev);
        if (round == 1)
            child_wait(pid, 5.0);
        cr_assert_eq(rc, 0, "round %d: destroy after the only waiter was killed (%s): %d",
                     round, round ? "zombie" : "reaped", rc);
        CHECK_RC(ps_event_init(s->ev, PS_SHARED), 0);
    }
    s->timeout = 5.0;
    pid_t pid = fork_child(ev_proc_waiter, s);
    cr_assert(wait_count(&s->registered, 3, 5.0));
    CHECK_RC(ps_event_set(s->ev), 0);
    CHECK_CHILDREN(&pid, 1, 10.0, 0);
    CHECK_RC_E(ps_event_destroy(s->ev), 0);
    shm_free(s->ev, sizeof *s->ev);
    shm_free(s, sizeof *s);
}
