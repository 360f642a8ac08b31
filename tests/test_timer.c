/* SPDX-License-Identifier: MIT */
/* tests/test_timer.c - ps_timer_t (threading.Timer).
 * Ideas from CPython Lib/test/test_threading.py TimerTests. */
#include <criterion/criterion.h>
#include <pysync/threading.h>

#include "helpers.h"

TestSuite(timer, .timeout = 30);

typedef struct tm_ctx {
    atomic_int calls;
    double fired_at;
    void *arg_seen;
    ps_event_t *block;    /* fn waits on it if set */
    atomic_int in_fn;
} tm_ctx_t;

static void timer_fn(void *arg)
{
    tm_ctx_t *c = arg;
    c->fired_at = now();
    c->arg_seen = arg;
    atomic_store(&c->in_fn, 1);
    if (c->block)
        ps_event_wait(c->block, 10.0);
    atomic_fetch_add(&c->calls, 1);
}

Test(timer, null_object_einval)
{
    CHECK_RC_E(ps_timer_start(NULL), EINVAL);
    CHECK_RC_E(ps_timer_cancel(NULL), EINVAL);
    CHECK_RC_E(ps_timer_join(NULL, 1.0), EINVAL);
    CHECK_RC_E(ps_timer_set_daemon(NULL, true), EINVAL);
    cr_assert(!ps_timer_daemon(NULL));
    ps_timer_free(NULL);
}

Test(timer, fires_after_interval)
{
    tm_ctx_t c = { 0 };
    ps_timer_t *t = ps_timer_new(0.2, timer_fn, &c);
    cr_assert_not_null(t);
    double t0 = now();
    CHECK_RC_E(ps_timer_start(t), 0);
    CHECK_RC_E(ps_timer_join(t, 5.0), 0);
    cr_assert_eq(atomic_load(&c.calls), 1);
    cr_assert_geq(c.fired_at - t0, LOWER_BOUND(0.2), "fired after %.4f s", c.fired_at - t0);
    cr_assert_eq(c.arg_seen, &c);
    CHECK_RC_E(ps_timer_join(t, 5.0), 0);   /* joining again is fine */
    ps_timer_free(t);
}

Test(timer, zero_interval)
{
    tm_ctx_t c = { 0 };
    ps_timer_t *t = ps_timer_new(0.0, timer_fn, &c);
    CHECK_RC(ps_timer_start(t), 0);
    CHECK_RC(ps_timer_join(t, 5.0), 0);
    cr_assert_eq(atomic_load(&c.calls), 1);
    ps_timer_free(t);
}

Test(timer, cancel_before_fire)
{
    tm_ctx_t c = { 0 };
    ps_timer_t *t = ps_timer_new(0.3, timer_fn, &c);
    CHECK_RC(ps_timer_start(t), 0);
    CHECK_RC_E(ps_timer_cancel(t), 0);
    CHECK_RC_E(ps_timer_join(t, 5.0), 0);   /* its thread has ended: fn can no longer run */
    cr_assert_eq(atomic_load(&c.calls), 0, "cancelled timer ran its function");
    CHECK_RC_E(ps_timer_cancel(t), 0);      /* twice: harmless */
    ps_timer_free(t);
}

Test(timer, cancel_returns_promptly)
{
    tm_ctx_t c = { 0 };
    ps_timer_t *t = ps_timer_new(30.0, timer_fn, &c);
    CHECK_RC(ps_timer_start(t), 0);
    double t0 = now();
    CHECK_RC(ps_timer_cancel(t), 0);
    CHECK_RC(ps_timer_join(t, 10.0), 0);
    cr_assert_lt(now() - t0, 5.0, "cancel did not wake the timer's wait");
    cr_assert_eq(atomic_load(&c.calls), 0);
    ps_timer_free(t);
}

Test(timer, cancel_before_start)
{
    tm_ctx_t c = { 0 };
    ps_timer_t *t = ps_timer_new(0.05, timer_fn, &c);
    CHECK_RC_E(ps_timer_cancel(t), 0);
    int rc = ps_timer_start(t);
    if (rc == 0)
        CHECK_RC(ps_timer_join(t, 5.0), 0);
    cr_assert_eq(atomic_load(&c.calls), 0, "timer cancelled before start ran its function");
    ps_timer_free(t);
}

Test(timer, cancel_after_run)
{
    tm_ctx_t c = { 0 };
    ps_timer_t *t = ps_timer_new(0.01, timer_fn, &c);
    CHECK_RC(ps_timer_start(t), 0);
    CHECK_RC(ps_timer_join(t, 5.0), 0);
    cr_assert_eq(atomic_load(&c.calls), 1);
    CHECK_RC_E(ps_timer_cancel(t), 0);
    cr_assert_eq(atomic_load(&c.calls), 1);
    ps_timer_free(t);
}

Test(timer, cancel_while_running)
{
    tm_ctx_t c = { .block = ps_event_new(0) };
    ps_timer_t *t = ps_timer_new(0.0, timer_fn, &c);
    CHECK_RC(ps_timer_start(t), 0);
    cr_assert(wait_count(&c.in_fn, 1, 5.0));
    CHECK_RC_E(ps_timer_cancel(t), 0);      /* already started: it just completes */
    CHECK_RC(ps_event_set(c.block), 0);
    CHECK_RC(ps_timer_join(t, 5.0), 0);
    cr_assert_eq(atomic_load(&c.calls), 1);
    ps_timer_free(t);
    ps_event_free(c.block);
}

Test(timer, join_timeout)
{
    tm_ctx_t c = { 0 };
    ps_timer_t *t = ps_timer_new(2.0, timer_fn, &c);
    CHECK_RC(ps_timer_start(t), 0);
    CHECK_RC_E(ps_timer_join(t, 0.0), ETIMEDOUT);
    double t0 = now();
    CHECK_RC_E(ps_timer_join(t, 0.2), ETIMEDOUT);
    cr_assert_geq(now() - t0, LOWER_BOUND(0.2));
    CHECK_RC_E(ps_timer_join(t, NAN), EINVAL);
    CHECK_RC(ps_timer_cancel(t), 0);
    CHECK_RC(ps_timer_join(t, 5.0), 0);
    cr_assert_eq(atomic_load(&c.calls), 0);
    ps_timer_free(t);
}

Test(timer, join_unstarted_einval)
{
    tm_ctx_t c = { 0 };
    ps_timer_t *t = ps_timer_new(0.1, timer_fn, &c);
    CHECK_RC_E(ps_timer_join(t, 0.1), EINVAL);
    ps_timer_free(t);
}

Test(timer, start_twice_einval)
{
    tm_ctx_t c = { 0 };
    ps_timer_t *t = ps_timer_new(0.05, timer_fn, &c);
    CHECK_RC(ps_timer_start(t), 0);
    CHECK_RC_E(ps_timer_start(t), EINVAL);
    CHECK_RC(ps_timer_join(t, 5.0), 0);
    CHECK_RC_E(ps_timer_start(t), EINVAL);
    cr_assert_eq(atomic_load(&c.calls), 1);
    ps_timer_free(t);
}

Test(timer, signal_does_not_shorten_interval)
{
    tm_ctx_t c = { 0 };
    ps_timer_t *t = ps_timer_new(0.3, timer_fn, &c);
    install_sigusr1();
    double t0 = now();
    CHECK_RC(ps_timer_start(t), 0);
    /* storm the whole process: whatever thread the timer uses may get some */
    for (int i = 0; i < 40 && atomic_load(&c.calls) == 0; i++) {
        kill(getpid(), SIGUSR1);
        sleep_s(0.005);
    }
    CHECK_RC(ps_timer_join(t, 5.0), 0);
    cr_assert_eq(atomic_load(&c.calls), 1);
    cr_assert_geq(c.fired_at - t0, LOWER_BOUND(0.3), "fired after %.4f s", c.fired_at - t0);
    ps_timer_free(t);
}

Test(timer, join_signal_does_not_end_wait)
{
    tm_ctx_t c = { 0 };
    ps_timer_t *t = ps_timer_new(3.0, timer_fn, &c);
    CHECK_RC(ps_timer_start(t), 0);
    signal_storm_t s;
    signal_storm_start(&s, pthread_self());
    double t0 = now();
    errno = 12345;
    int rc = ps_timer_join(t, 0.3);
    int e = errno;
    double el = now() - t0;
    signal_storm_stop(&s);
    cr_assert_eq(rc, ETIMEDOUT, "got %d (%s)", rc, strerror(rc));
    cr_assert_geq(el, LOWER_BOUND(0.3), "after %.4f s", el);
    cr_assert_eq(e, 12345);
    CHECK_RC(ps_timer_cancel(t), 0);
    CHECK_RC(ps_timer_join(t, 5.0), 0);
    ps_timer_free(t);
}

Test(timer, many_timers_order)
{
    enum { N = 6 };
    tm_ctx_t c[N];
    ps_timer_t *t[N];
    memset(c, 0, sizeof c);
    double t0 = now();
    for (int i = 0; i < N; i++) {
        t[i] = ps_timer_new(0.05 * (i + 1), timer_fn, &c[i]);
        CHECK_RC(ps_timer_start(t[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        CHECK_RC(ps_timer_join(t[i], 5.0), 0);
        cr_assert_eq(atomic_load(&c[i].calls), 1);
        cr_assert_geq(c[i].fired_at - t0, LOWER_BOUND(0.05 * (i + 1)));
    }
    for (int i = 0; i < N; i++)
        ps_timer_free(t[i]);
}

Test(timer, bad_arguments)
{
    tm_ctx_t c = { 0 };
    errno = 0;
    cr_assert_null(ps_timer_new(NAN, timer_fn, &c));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(ps_timer_new(1.0, NULL, &c));
    cr_assert_eq(errno, EINVAL);
}

Test(timer, free_pending_timer)
{
    tm_ctx_t c = { 0 };
    ps_timer_t *t = ps_timer_new(30.0, timer_fn, &c);
    CHECK_RC(ps_timer_start(t), 0);
    double t0 = now();
    ps_timer_free(t);     /* cancels and waits for its thread; fn does not run */
    cr_assert_lt(now() - t0, 5.0);
    cr_assert_eq(atomic_load(&c.calls), 0);
}

/* ------------------------------------------------------------------ daemon */

Test(timer, not_daemon_when_made_by_main_thread)
{
    tm_ctx_t c = { 0 };
    ps_timer_t *t = ps_timer_new(0.01, timer_fn, &c);
    cr_assert(!ps_timer_daemon(t));
    ps_timer_free(t);
}

static void *make_timer_in_thread(void *arg)
{
    return ps_timer_new(0.01, timer_fn, arg);
}

/* Python: a Timer is a Thread, and daemon is inherited from the creating thread. */
Test(timer, daemon_inherited_from_creating_thread)
{
    tm_ctx_t c = { 0 };
    ps_thread_t *maker = ps_thread_new(make_timer_in_thread, &c, NULL);
    CHECK_RC(ps_thread_set_daemon(maker, true), 0);
    CHECK_RC(ps_thread_start(maker), 0);
    void *res = NULL;
    CHECK_RC(ps_thread_join(maker, 5.0, &res), 0);
    ps_timer_t *t = res;
    cr_assert_not_null(t);
    cr_assert(ps_timer_daemon(t), "a timer made by a daemon thread is not a daemon");
    CHECK_RC(ps_timer_start(t), 0);
    CHECK_RC(ps_timer_join(t, 5.0), 0);
    cr_assert_eq(atomic_load(&c.calls), 1);
    ps_timer_free(t);
    ps_thread_free(maker);
}

Test(timer, set_daemon)
{
    tm_ctx_t c = { 0 };
    ps_timer_t *t = ps_timer_new(0.01, timer_fn, &c);
    CHECK_RC_E(ps_timer_set_daemon(t, true), 0);
    cr_assert(ps_timer_daemon(t));
    CHECK_RC_E(ps_timer_set_daemon(t, false), 0);
    cr_assert(!ps_timer_daemon(t));
    CHECK_RC_E(ps_timer_set_daemon(t, true), 0);
    CHECK_RC(ps_timer_start(t), 0);
    CHECK_RC_E(ps_timer_set_daemon(t, false), EINVAL);   /* after start */
    cr_assert(ps_timer_daemon(t), "failed set_daemon changed the flag");
    CHECK_RC(ps_timer_join(t, 5.0), 0);
    CHECK_RC_E(ps_timer_set_daemon(t, false), EINVAL);
    ps_timer_free(t);
}

/* ------------------------------------------------------------------ exit */

typedef struct exit_ctx {
    atomic_int fired;           /* in shared memory: written by the child's timer */
    atomic_int armed;
    double interval;
    int daemon;                 /* -1: inherited; 0, 1: set with ps_timer_set_daemon */
} exit_ctx_t;

static void mark_fired(void *arg)
{
    atomic_store(&((exit_ctx_t *)arg)->fired, 1);
}

/* Timers alive when a forked child calls exit(): kept reachable for LeakSanitizer. */
static void *volatile timer_keep_alive[2];

static int start_timer(exit_ctx_t *e)
{
    ps_timer_t *t = ps_timer_new(e->interval, mark_fired, e);
    timer_keep_alive[0] = t;
    if (!t)
        return 2;
    if (e->daemon >= 0 && ps_timer_set_daemon(t, e->daemon) != 0)
        return 3;
    if (ps_timer_start(t) != 0)
        return 4;
    atomic_store(&e->armed, 1);
    return 0;
}

static int child_timer_then_exit(void *arg)
{
    int rc = start_timer(arg);
    if (rc != 0)
        return rc;
    exit(0);   /* "main returns": atexit handlers run */
}

static void *timer_from_daemon_thread(void *arg)
{
    return (void *)(intptr_t)start_timer(arg);
}

/* The timer is made in a daemon thread, which ends before main returns. */
static int child_daemon_thread_timer_then_exit(void *arg)
{
    ps_thread_t *maker = ps_thread_new(timer_from_daemon_thread, arg, NULL);
    timer_keep_alive[1] = maker;
    void *rc = NULL;
    if (!maker || ps_thread_set_daemon(maker, true) != 0 || ps_thread_start(maker) != 0)
        return 5;
    if (ps_thread_join(maker, 5.0, &rc) != 0 || rc)
        return rc ? (int)(intptr_t)rc : 6;
    exit(0);
}

/* Runs child in a forked process; returns whether its timer fired, and how long it took. */
static bool child_timer_fired(int (*child)(void *), double interval, int daemon, double *took)
{
    exit_ctx_t *e = shm_alloc(sizeof *e);
    e->interval = interval;
    e->daemon = daemon;
    double t0 = now();
    int code = child_wait(fork_child(child, e), 20.0);
    *took = now() - t0;
    cr_assert_eq(code, 0, "child ended with %d", code);
    cr_assert_eq(atomic_load(&e->armed), 1);
    bool fired = atomic_load(&e->fired);
    shm_free(e, sizeof *e);
    return fired;
}

Test(timer, nondaemon_timer_fires_before_exit)
{
    double took;
    cr_assert(child_timer_fired(child_timer_then_exit, 0.1, -1, &took),
              "exit did not wait for a non-daemon timer");
    cr_assert_geq(took, LOWER_BOUND(0.1));
}

Test(timer, daemon_timer_does_not_block_exit)
{
    double took;
    cr_assert(!child_timer_fired(child_timer_then_exit, 8.0, true, &took),
              "a daemon timer fired");
    cr_assert_lt(took, 5.0, "exit waited %.2f s for a daemon timer", took);
}

/* Made by a daemon thread, a timer is a daemon (Python), so exit does not wait. */
Test(timer, inherited_daemon_timer_does_not_block_exit)
{
    double took;
    cr_assert(!child_timer_fired(child_daemon_thread_timer_then_exit, 8.0, -1, &took),
              "a timer made by a daemon thread fired");
    cr_assert_lt(took, 5.0, "exit waited %.2f s for a daemon timer", took);
}

/* ps_timer_set_daemon(t, false) in a daemon thread: exit waits for the timer. */
Test(timer, nondaemon_timer_from_daemon_thread_fires_before_exit)
{
    double took;
    cr_assert(child_timer_fired(child_daemon_thread_timer_then_exit, 0.1, false, &took),
              "exit did not wait for a timer made non-daemon");
    cr_assert_geq(took, LOWER_BOUND(0.1));
}
