/* SPDX-License-Identifier: MIT */
/* tests/test_condition.c - ps_condition_t (threading.Condition).
 * Ports of CPython Lib/test/lock_tests.py ConditionTests, plus FIFO order, recursion
 * depth across wait, error codes, errno, signals, PS_SHARED and waiter death. */
#include <criterion/criterion.h>
#include <pysync/threading.h>

#include "helpers.h"

TestSuite(condition, .timeout = 30);
TestSuite(condition_shared, .timeout = 40);

enum { MAXW = 16 };

/* State shared by the waiters of one test (may live in MAP_SHARED memory). */
typedef struct cstate {
    ps_condition_t *cond;
    double timeout;
    atomic_int registered;   /* bumped under the lock right before wait */
    atomic_int returned;     /* bumped under the lock right after wait */
    int order[MAXW];         /* ids in the order they came back from wait (under lock) */
    int norder;
    int state;               /* for wait_for predicates (under lock) */
    int target;
} cstate_t;

typedef struct waiter {
    cstate_t *s;
    int id;
    int acq_rc;
    int rc;
    int rel_rc;
    double elapsed;
    bool errno_ok;
} waiter_t;

static void *cond_waiter(void *arg)
{
    waiter_t *w = arg;
    cstate_t *s = w->s;
    w->errno_ok = true;
    w->acq_rc = ps_condition_acquire(s->cond, true, 10.0);
    if (w->acq_rc != 0)
        return NULL;
    atomic_fetch_add(&s->registered, 1);
    double t0 = now();
    RECORD_RC_E(&w->rc, &w->errno_ok, ps_condition_wait(s->cond, s->timeout));
    w->elapsed = now() - t0;
    s->order[s->norder++ % MAXW] = w->id;
    atomic_fetch_add(&s->returned, 1);
    w->rel_rc = ps_condition_release(s->cond);
    return NULL;
}

/* Starts n cond_waiter threads on s, with ids first_id, first_id + 1, ... */
static void start_cond_waiters(pthread_t *t, waiter_t *w, int n, cstate_t *s, int first_id)
{
    memset(w, 0, (size_t)n * sizeof w[0]);
    for (int i = 0; i < n; i++) {
        w[i].s = s;
        w[i].id = first_id + i;
    }
    start_threads(t, n, cond_waiter, w, sizeof w[0]);
}

/* Waits until n waiters registered, then takes and drops the lock: they are all
 * inside wait (they registered while holding it). */
static void all_waiting(cstate_t *s, int n)
{
    cr_assert(wait_count(&s->registered, n, 10.0), "only %d of %d waiters registered",
              atomic_load(&s->registered), n);
    CHECK_RC(ps_condition_acquire(s->cond, true, 10.0), 0);
    CHECK_RC(ps_condition_release(s->cond), 0);
}

/* Starts n cond_waiter threads (ids 0..n-1) one at a time, each inside wait before the
 * next starts: the FIFO tests then know the order in which they began waiting. */
static void start_waiters_in_order(pthread_t *t, waiter_t *w, int n, cstate_t *s)
{
    memset(w, 0, (size_t)n * sizeof w[0]);
    for (int i = 0; i < n; i++) {
        w[i].s = s;
        w[i].id = i;
        start_threads(&t[i], 1, cond_waiter, &w[i], 0);
        all_waiting(s, i + 1);
    }
}

static void notify_locked(cstate_t *s, unsigned n, bool all)
{
    CHECK_RC(ps_condition_acquire(s->cond, true, 10.0), 0);
    if (all)
        CHECK_RC_E(ps_condition_notify_all(s->cond), 0);
    else
        CHECK_RC_E(ps_condition_notify(s->cond, n), 0);
    CHECK_RC(ps_condition_release(s->cond), 0);
}

/* ------------------------------------------------------------------ basics */

Test(condition, constructor)
{
    ps_condition_t c;
    CHECK_RC_E(ps_condition_init(&c, NULL, 0), 0);
    CHECK_RC_E(ps_condition_destroy(&c), 0);
    ps_rlock_t rl;
    CHECK_RC(ps_rlock_init(&rl, 0), 0);
    CHECK_RC_E(ps_condition_init(&c, &rl, 0), 0);
    CHECK_RC_E(ps_condition_destroy(&c), 0);
    CHECK_RC(ps_rlock_destroy(&rl), 0);
    ps_condition_t *p = ps_condition_new(NULL, 0);
    cr_assert_not_null(p);
    ps_condition_free(p);
    ps_condition_free(NULL);
}

static bool pred_true(void *arg) { (void)arg; return true; }
static bool pred_false(void *arg) { (void)arg; return false; }

Test(condition, null_object_einval)
{
    CHECK_RC_E(ps_condition_init(NULL, NULL, 0), EINVAL);
    CHECK_RC_E(ps_condition_destroy(NULL), EINVAL);
    CHECK_RC_E(ps_condition_acquire(NULL, true, PS_FOREVER), EINVAL);
    CHECK_RC_E(ps_condition_release(NULL), EINVAL);
    CHECK_RC_E(ps_condition_wait(NULL, 0.1), EINVAL);
    CHECK_RC_E(ps_condition_wait_for(NULL, pred_true, NULL, 0.1), EINVAL);
    CHECK_RC_E(ps_condition_notify(NULL, 1), EINVAL);
    CHECK_RC_E(ps_condition_notify_all(NULL), EINVAL);
}

Test(condition, bad_arguments_einval)
{
    ps_condition_t *c = ps_condition_new(NULL, 0);
    CHECK_RC_E(ps_condition_acquire(c, false, 1.0), EINVAL);
    CHECK_RC_E(ps_condition_acquire(c, true, NAN), EINVAL);
    CHECK_RC_E(ps_condition_release(c), EPERM);        /* none of those took it */
    CHECK_RC(ps_condition_acquire(c, true, PS_FOREVER), 0);
    CHECK_RC_E(ps_condition_wait(c, NAN), EINVAL);
    CHECK_RC_E(ps_condition_wait_for(c, pred_false, NULL, NAN), EINVAL);
    CHECK_RC_E(ps_condition_release(c), 0);            /* still held once after EINVAL */
    CHECK_RC_E(ps_condition_release(c), EPERM);
    ps_condition_free(c);
}

typedef struct probe {
    ps_rlock_t *rl;
    ps_condition_t *c;
    int rc;
} probe_t;

static void *probe_rlock(void *arg)
{
    probe_t *p = arg;
    p->rc = ps_rlock_acquire(p->rl, false, PS_FOREVER);
    if (p->rc == 0)
        ps_rlock_release(p->rl);
    return NULL;
}

static void *probe_cond(void *arg)
{
    probe_t *p = arg;
    p->rc = ps_condition_acquire(p->c, false, PS_FOREVER);
    if (p->rc == 0)
        ps_condition_release(p->c);
    return NULL;
}

Test(condition, acquire)
{
    ps_condition_t *c = ps_condition_new(NULL, 0);
    /* default lock is an RLock */
    CHECK_RC_E(ps_condition_acquire(c, true, PS_FOREVER), 0);
    CHECK_RC_E(ps_condition_acquire(c, false, PS_FOREVER), 0);
    probe_t pr = { .c = c };
    run_threads(1, probe_cond, &pr, 0);
    cr_assert_eq(pr.rc, EAGAIN, "other thread got a held condition: %d", pr.rc);
    CHECK_RC_E(ps_condition_release(c), 0);
    CHECK_RC_E(ps_condition_release(c), 0);
    CHECK_RC_E(ps_condition_release(c), EPERM);
    run_threads(1, probe_cond, &pr, 0);
    cr_assert_eq(pr.rc, 0);
    ps_condition_free(c);

    /* a given RLock is the condition's lock */
    ps_rlock_t *rl = ps_rlock_new(0);
    c = ps_condition_new(rl, 0);
    cr_assert_not_null(c);
    CHECK_RC(ps_condition_acquire(c, true, PS_FOREVER), 0);
    pr.rl = rl;
    run_threads(1, probe_rlock, &pr, 0);
    cr_assert_eq(pr.rc, EAGAIN, "condition acquire did not take the given RLock: %d", pr.rc);
    CHECK_RC(ps_condition_release(c), 0);
    run_threads(1, probe_rlock, &pr, 0);
    cr_assert_eq(pr.rc, 0);
    CHECK_RC(ps_rlock_acquire(rl, true, PS_FOREVER), 0);
    pr.c = c;
    run_threads(1, probe_cond, &pr, 0);
    cr_assert_eq(pr.rc, EAGAIN, "RLock held, condition acquire got %d", pr.rc);
    CHECK_RC(ps_condition_release(c), 0);      /* same lock: releases the RLock */
    CHECK_RC(ps_rlock_release(rl), EPERM);
    ps_condition_free(c);
    ps_rlock_free(rl);
}

Test(condition, unacquired_wait)
{
    ps_condition_t *c = ps_condition_new(NULL, 0);
    CHECK_RC_E(ps_condition_wait(c, 0.1), EPERM);
    CHECK_RC_E(ps_condition_wait(c, PS_FOREVER), EPERM);
    CHECK_RC_E(ps_condition_wait_for(c, pred_false, NULL, 0.1), EPERM);
    CHECK_RC_E(ps_condition_release(c), EPERM);
    ps_condition_free(c);
}

Test(condition, unacquired_notify)
{
    ps_condition_t *c = ps_condition_new(NULL, 0);
    CHECK_RC_E(ps_condition_notify(c, 1), EPERM);
    CHECK_RC_E(ps_condition_notify_all(c), EPERM);
    ps_condition_free(c);
}

typedef struct other_ctx {
    ps_condition_t *c;
    int wait_rc, notify_rc, all_rc, rel_rc;
} other_ctx_t;

static void *other_thread_ops(void *arg)
{
    other_ctx_t *o = arg;
    o->wait_rc = ps_condition_wait(o->c, 0.1);
    o->notify_rc = ps_condition_notify(o->c, 1);
    o->all_rc = ps_condition_notify_all(o->c);
    o->rel_rc = ps_condition_release(o->c);
    return NULL;
}

Test(condition, wait_notify_by_non_owner_eperm)
{
    ps_condition_t *c = ps_condition_new(NULL, 0);
    CHECK_RC(ps_condition_acquire(c, true, PS_FOREVER), 0);   /* main holds it */
    other_ctx_t o = { .c = c };
    run_threads(1, other_thread_ops, &o, 0);
    cr_assert_eq(o.wait_rc, EPERM, "wait: %d", o.wait_rc);
    cr_assert_eq(o.notify_rc, EPERM, "notify: %d", o.notify_rc);
    cr_assert_eq(o.all_rc, EPERM, "notify_all: %d", o.all_rc);
    cr_assert_eq(o.rel_rc, EPERM, "release: %d", o.rel_rc);
    CHECK_RC(ps_condition_release(c), 0);
    ps_condition_free(c);
}

Test(condition, notify_without_waiters)
{
    ps_condition_t *c = ps_condition_new(NULL, 0);
    CHECK_RC(ps_condition_acquire(c, true, PS_FOREVER), 0);
    CHECK_RC_E(ps_condition_notify(c, 1), 0);
    CHECK_RC_E(ps_condition_notify(c, 100), 0);
    CHECK_RC_E(ps_condition_notify_all(c), 0);
    /* notifications are not remembered: a later wait times out */
    double t0 = now();
    CHECK_RC_E(ps_condition_wait(c, 0.1), ETIMEDOUT);
    cr_assert_geq(now() - t0, LOWER_BOUND(0.1));
    CHECK_RC(ps_condition_release(c), 0);
    ps_condition_free(c);
}

/* ------------------------------------------------------------------ notify */

/* Deterministic port of ConditionTests._check_notify: notify(n) wakes at most n. */
static void check_notify(ps_condition_t *c)
{
    enum { N = 5 };
    cstate_t s = { .cond = c, .timeout = 10.0 };
    waiter_t w[N];
    pthread_t t[N];
    start_cond_waiters(t, w, N, &s, 0);
    all_waiting(&s, N);
    cr_assert_eq(atomic_load(&s.returned), 0);

    notify_locked(&s, 2, false);
    cr_assert(wait_count(&s.returned, 2, 5.0), "notify(2) woke %d", atomic_load(&s.returned));
    sleep_s(0.1);
    cr_assert_eq(atomic_load(&s.returned), 2, "notify(2) woke %d waiters",
                 atomic_load(&s.returned));

    notify_locked(&s, 1, false);
    cr_assert(wait_count(&s.returned, 3, 5.0));
    sleep_s(0.1);
    cr_assert_eq(atomic_load(&s.returned), 3, "notify(1) woke more than one");

    notify_locked(&s, 0, true);   /* notify_all: the other 2 */
    join_threads(t, N, NULL);
    cr_assert_eq(atomic_load(&s.returned), N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(w[i].acq_rc, 0);
        cr_assert_eq(w[i].rc, 0, "waiter %d: wait returned %d", i, w[i].rc);
        cr_assert_eq(w[i].rel_rc, 0, "waiter %d: release after wait %d", i, w[i].rel_rc);
        cr_assert(w[i].errno_ok, "waiter %d: errno changed", i);
    }
}

Test(condition, notify)
{
    ps_condition_t *c = ps_condition_new(NULL, 0);
    check_notify(c);
    check_notify(c);  /* a second time, internal state still ok */
    ps_condition_free(c);
}

Test(condition, notify_more_than_waiters)
{
    ps_condition_t *c = ps_condition_new(NULL, 0);
    enum { N = 3 };
    cstate_t s = { .cond = c, .timeout = 10.0 };
    waiter_t w[N];
    pthread_t t[N];
    start_cond_waiters(t, w, N, &s, 0);
    all_waiting(&s, N);
    notify_locked(&s, 10, false);
    join_threads(t, N, NULL);
    for (int i = 0; i < N; i++)
        cr_assert_eq(w[i].rc, 0);
    /* the surplus is not stored for later waiters */
    CHECK_RC(ps_condition_acquire(c, true, PS_FOREVER), 0);
    CHECK_RC(ps_condition_wait(c, 0.1), ETIMEDOUT);
    CHECK_RC(ps_condition_release(c), 0);
    ps_condition_free(c);
}

Test(condition, notify_all)
{
    ps_condition_t *c = ps_condition_new(NULL, 0);
    enum { N = 8 };
    for (int round = 0; round < 3; round++) {
        cstate_t s = { .cond = c, .timeout = 10.0 };
        waiter_t w[N];
        pthread_t t[N];
        start_cond_waiters(t, w, N, &s, 0);
        all_waiting(&s, N);
        sleep_s(0.02);
        cr_assert_eq(atomic_load(&s.returned), 0, "a waiter returned without notify");
        notify_locked(&s, 0, true);
        join_threads(t, N, NULL);
        for (int i = 0; i < N; i++)
            cr_assert_eq(w[i].rc, 0, "round %d waiter %d: %d", round, i, w[i].rc);
    }
    ps_condition_free(c);
}

/* Waiters start one at a time; each registers under the lock right before waiting,
 * so the order in which they started waiting is known. notify(1) wakes the oldest. */
static void check_fifo(ps_condition_t *c)
{
    enum { N = 8 };
    cstate_t s = { .cond = c, .timeout = 10.0 };
    waiter_t w[N];
    pthread_t t[N];
    start_waiters_in_order(t, w, N, &s);
    for (int k = 0; k < N; k++) {
        notify_locked(&s, 1, false);
        cr_assert(wait_count(&s.returned, k + 1, 5.0), "notify(1) #%d woke nobody", k);
    }
    join_threads(t, N, NULL);
    for (int k = 0; k < N; k++)
        cr_assert_eq(s.order[k], k, "wake #%d went to waiter %d (expected %d): not FIFO",
                     k, s.order[k], k);
    for (int i = 0; i < N; i++)
        cr_assert_eq(w[i].rc, 0);
}

Test(condition, notify_fifo)
{
    ps_condition_t *c = ps_condition_new(NULL, 0);
    check_fifo(c);
    ps_condition_free(c);
}

/* notify(2) wakes the two oldest. */
Test(condition, notify_n_fifo)
{
    ps_condition_t *c = ps_condition_new(NULL, 0);
    enum { N = 6 };
    cstate_t s = { .cond = c, .timeout = 10.0 };
    waiter_t w[N];
    pthread_t t[N];
    start_waiters_in_order(t, w, N, &s);
    for (int k = 0; k < N; k += 2) {
        notify_locked(&s, 2, false);
        cr_assert(wait_count(&s.returned, k + 2, 5.0));
        int a = s.order[k], b = s.order[k + 1];
        cr_assert((a == k && b == k + 1) || (a == k + 1 && b == k),
                  "notify(2) #%d woke %d and %d, expected %d and %d", k / 2, a, b, k, k + 1);
    }
    join_threads(t, N, NULL);
    ps_condition_free(c);
}

/* ------------------------------------------------------------------ timeouts */

Test(condition, timeout)
{
    ps_condition_t *c = ps_condition_new(NULL, 0);
    enum { N = 5 };
    cstate_t s = { .cond = c, .timeout = 0.2 };
    waiter_t w[N];
    memset(w, 0, sizeof w);
    for (int i = 0; i < N; i++)
        w[i].s = &s;
    run_threads(N, cond_waiter, w, sizeof w[0]);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(w[i].rc, ETIMEDOUT, "waiter %d: %d", i, w[i].rc);
        cr_assert_geq(w[i].elapsed, LOWER_BOUND(0.2), "waiter %d: %.4f s", i, w[i].elapsed);
        cr_assert_eq(w[i].rel_rc, 0, "lock not re-acquired after a timed-out wait");
        cr_assert(w[i].errno_ok);
    }
    /* main: timeout 0 does not block */
    CHECK_RC(ps_condition_acquire(c, true, PS_FOREVER), 0);
    CHECK_RC_E(ps_condition_wait(c, 0.0), ETIMEDOUT);
    CHECK_RC(ps_condition_release(c), 0);
    ps_condition_free(c);
}

static bool state_reached(void *arg)
{
    cstate_t *s = arg;
    return s->state >= s->target;
}

typedef struct wf_ctx {
    cstate_t *s;
    int rc, rel_rc;
    double elapsed;
    bool pred_on_return;
    bool errno_ok;
} wf_ctx_t;

static void *waitfor_thread(void *arg)
{
    wf_ctx_t *w = arg;
    w->errno_ok = true;
    if (ps_condition_acquire(w->s->cond, true, 10.0) != 0)
        return NULL;
    atomic_fetch_add(&w->s->registered, 1);
    double t0 = now();
    RECORD_RC_E(&w->rc, &w->errno_ok,
                ps_condition_wait_for(w->s->cond, state_reached, w->s, w->s->timeout));
    w->elapsed = now() - t0;
    w->pred_on_return = state_reached(w->s);
    w->rel_rc = ps_condition_release(w->s->cond);
    return NULL;
}

Test(condition, waitfor)
{
    ps_condition_t *c = ps_condition_new(NULL, 0);
    cstate_t s = { .cond = c, .timeout = 10.0, .target = 4 };
    wf_ctx_t w = { .s = &s };
    pthread_t t;
    start_threads(&t, 1, waitfor_thread, &w, 0);
    all_waiting(&s, 1);
    for (int i = 0; i < 4; i++) {
        sleep_s(0.01);
        CHECK_RC(ps_condition_acquire(c, true, PS_FOREVER), 0);
        s.state++;
        CHECK_RC(ps_condition_notify(c, 1), 0);
        CHECK_RC(ps_condition_release(c), 0);
    }
    join_threads(&t, 1, NULL);
    cr_assert_eq(w.rc, 0, "wait_for returned %d", w.rc);
    cr_assert(w.pred_on_return);
    cr_assert_eq(w.rel_rc, 0);
    cr_assert(w.errno_ok);
    ps_condition_free(c);
}

Test(condition, waitfor_timeout)
{
    ps_condition_t *c = ps_condition_new(NULL, 0);
    cstate_t s = { .cond = c, .timeout = 0.2, .target = 4 };
    wf_ctx_t w = { .s = &s };
    pthread_t t;
    start_threads(&t, 1, waitfor_thread, &w, 0);
    all_waiting(&s, 1);
    /* a notify with the predicate still false: wait_for keeps waiting */
    CHECK_RC(ps_condition_acquire(c, true, PS_FOREVER), 0);
    CHECK_RC(ps_condition_notify(c, 1), 0);
    CHECK_RC(ps_condition_release(c), 0);
    join_threads(&t, 1, NULL);
    cr_assert_eq(w.rc, ETIMEDOUT, "wait_for returned %d", w.rc);
    cr_assert_geq(w.elapsed, LOWER_BOUND(0.2), "after %.4f s", w.elapsed);
    cr_assert_eq(w.rel_rc, 0);
    cr_assert(w.errno_ok);

    CHECK_RC(ps_condition_acquire(c, true, PS_FOREVER), 0);
    /* predicate already true: 0 at once, even with timeout 0 */
    CHECK_RC_E(ps_condition_wait_for(c, pred_true, NULL, 0.0), 0);
    CHECK_RC_E(ps_condition_wait_for(c, pred_true, NULL, PS_FOREVER), 0);
    /* predicate false, timeout 0 */
    CHECK_RC_E(ps_condition_wait_for(c, pred_false, NULL, 0.0), ETIMEDOUT);
    double t0 = now();
    CHECK_RC_E(ps_condition_wait_for(c, pred_false, NULL, 0.2), ETIMEDOUT);
    cr_assert_geq(now() - t0, LOWER_BOUND(0.2));
    CHECK_RC(ps_condition_release(c), 0);
    CHECK_RC(ps_condition_release(c), EPERM);
    ps_condition_free(c);
}

/* The predicate becomes true just as the timeout expires: 0 if true on return. */
static bool after_deadline(void *arg)
{
    return now() >= *(double *)arg;
}

Test(condition, waitfor_true_on_return)
{
    ps_condition_t *c = ps_condition_new(NULL, 0);
    CHECK_RC(ps_condition_acquire(c, true, PS_FOREVER), 0);
    double when = now() + 0.1;
    int rc = ps_condition_wait_for(c, after_deadline, &when, 0.1);
    cr_assert_eq(rc, 0, "predicate true on return, got %d", rc);
    CHECK_RC(ps_condition_release(c), 0);
    ps_condition_free(c);
}

/* ------------------------------------------------------------------ recursion */

typedef struct rec_ctx {
    ps_condition_t *c;
    ps_rlock_t *rl;          /* NULL: use condition acquire/release */
    int depth;
    atomic_int in_wait;
    int wait_rc;
    int rel_rc[8];
    int extra_rc;
} rec_ctx_t;

static int rec_acquire(rec_ctx_t *r)
{
    return r->rl ? ps_rlock_acquire(r->rl, true, 10.0) : ps_condition_acquire(r->c, true, 10.0);
}

static int rec_release(rec_ctx_t *r)
{
    return r->rl ? ps_rlock_release(r->rl) : ps_condition_release(r->c);
}

static void *rec_waiter(void *arg)
{
    rec_ctx_t *r = arg;
    for (int i = 0; i < r->depth; i++)
        if (rec_acquire(r) != 0)
            return NULL;
    atomic_store(&r->in_wait, 1);
    r->wait_rc = ps_condition_wait(r->c, 10.0);
    for (int i = 0; i < r->depth; i++)
        r->rel_rc[i] = rec_release(r);
    r->extra_rc = rec_release(r);
    return NULL;
}

static void check_recursive_wait(ps_condition_t *c, ps_rlock_t *rl)
{
    rec_ctx_t r = { .c = c, .rl = rl, .depth = 3, .extra_rc = -1 };
    pthread_t t;
    start_threads(&t, 1, rec_waiter, &r, 0);
    cr_assert(wait_count(&r.in_wait, 1, 5.0));
    /* the lock is released completely while the owner waits */
    int rc = ps_condition_acquire(c, true, 5.0);
    cr_assert_eq(rc, 0, "lock held recursively (depth 3) not released by wait: %d", rc);
    if (rl) {
        CHECK_RC(ps_rlock_acquire(rl, false, PS_FOREVER), 0);
        CHECK_RC(ps_rlock_release(rl), 0);
    }
    CHECK_RC(ps_condition_notify(c, 1), 0);
    CHECK_RC(ps_condition_release(c), 0);
    join_threads(&t, 1, NULL);
    cr_assert_eq(r.wait_rc, 0);
    for (int i = 0; i < r.depth; i++)
        cr_assert_eq(r.rel_rc[i], 0, "release %d of %d after wait: %d (depth not restored)",
                     i + 1, r.depth, r.rel_rc[i]);
    cr_assert_eq(r.extra_rc, EPERM, "release %d after wait: %d (depth too big)",
                 r.depth + 1, r.extra_rc);
}

Test(condition, wait_releases_recursive_lock)
{
    ps_condition_t *c = ps_condition_new(NULL, 0);
    check_recursive_wait(c, NULL);
    ps_condition_free(c);

    ps_rlock_t *rl = ps_rlock_new(0);
    c = ps_condition_new(rl, 0);
    check_recursive_wait(c, rl);
    ps_condition_free(c);
    ps_rlock_free(rl);
}

Test(condition, timed_out_wait_restores_depth)
{
    ps_condition_t *c = ps_condition_new(NULL, 0);
    for (int i = 0; i < 4; i++)
        CHECK_RC(ps_condition_acquire(c, true, PS_FOREVER), 0);
    CHECK_RC(ps_condition_wait(c, 0.05), ETIMEDOUT);
    for (int i = 0; i < 4; i++)
        CHECK_RC(ps_condition_release(c), 0);
    CHECK_RC(ps_condition_release(c), EPERM);
    ps_condition_free(c);
}

/* ------------------------------------------------------------------ misc */

Test(condition, destroy_while_waited_ebusy)
{
    ps_condition_t cond;
    CHECK_RC(ps_condition_init(&cond, NULL, 0), 0);
    cstate_t s = { .cond = &cond, .timeout = 10.0 };
    waiter_t w = { .s = &s };
    pthread_t t;
    start_threads(&t, 1, cond_waiter, &w, 0);
    all_waiting(&s, 1);
    CHECK_RC_E(ps_condition_destroy(&cond), EBUSY);
    notify_locked(&s, 1, false);     /* still fully usable */
    join_threads(&t, 1, NULL);
    cr_assert_eq(w.rc, 0);
    CHECK_RC_E(ps_condition_destroy(&cond), 0);
}

/* Shared by both signal tests: a 0.3 s wait stormed with signals times out, not
 * earlier, and leaves errno alone. */
static void check_timed_wait_under_signals(ps_condition_t *c)
{
    cstate_t s = { .cond = c, .timeout = 0.3 };
    waiter_t w = { .s = &s };
    run_thread_under_signals(cond_waiter, &w);
    cr_assert_eq(w.rc, ETIMEDOUT, "got %d (%s)", w.rc, strerror(w.rc));
    cr_assert_geq(w.elapsed, LOWER_BOUND(0.3), "after %.4f s", w.elapsed);
    cr_assert(w.errno_ok);
}

Test(condition, signal_does_not_end_wait)
{
    ps_condition_t *c = ps_condition_new(NULL, 0);
    check_timed_wait_under_signals(c);

    /* untimed wait: survives signals, then is notified */
    cstate_t s2 = { .cond = c, .timeout = PS_FOREVER };
    waiter_t w2 = { .s = &s2 };
    pthread_t t;
    start_threads(&t, 1, cond_waiter, &w2, 0);
    all_waiting(&s2, 1);
    signal_thread_for(t, 0.2);
    cr_assert_eq(atomic_load(&s2.returned), 0, "untimed wait returned %d on a signal", w2.rc);
    notify_locked(&s2, 1, false);
    join_threads(&t, 1, NULL);
    cr_assert_eq(w2.rc, 0);
    ps_condition_free(c);
}

/* Producer/consumer with exact accounting (4 producers, 4 consumers). */
enum { PC_N = 4, PC_ITEMS = 5000, PC_CAP = 8 };

typedef struct pc {
    ps_condition_t *c;
    int buf[PC_CAP];
    int head, count;
    long sum;
    int taken;
    atomic_int errors;
} pc_t;

static bool pc_not_full(void *arg) { return ((pc_t *)arg)->count < PC_CAP; }
static bool pc_not_empty(void *arg)
{
    pc_t *p = arg;
    return p->count > 0 || p->taken >= PC_N * PC_ITEMS;
}

static void *producer(void *arg)
{
    pc_t *p = arg;
    for (int i = 1; i <= PC_ITEMS; i++) {
        if (ps_condition_acquire(p->c, true, 10.0) != 0 ||
            ps_condition_wait_for(p->c, pc_not_full, p, 10.0) != 0) {
            atomic_fetch_add(&p->errors, 1);
            return NULL;
        }
        p->buf[(p->head + p->count) % PC_CAP] = i;
        p->count++;
        ps_condition_notify_all(p->c);
        ps_condition_release(p->c);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    pc_t *p = arg;
    for (;;) {
        if (ps_condition_acquire(p->c, true, 10.0) != 0 ||
            ps_condition_wait_for(p->c, pc_not_empty, p, 10.0) != 0) {
            atomic_fetch_add(&p->errors, 1);
            return NULL;
        }
        if (p->count == 0) {          /* all taken */
            ps_condition_release(p->c);
            return NULL;
        }
        p->sum += p->buf[p->head];
        p->head = (p->head + 1) % PC_CAP;
        p->count--;
        p->taken++;
        ps_condition_notify_all(p->c);
        ps_condition_release(p->c);
    }
}

Test(condition, producer_consumer_exact)
{
    pc_t p = { .c = ps_condition_new(NULL, 0) };
    pthread_t prod[PC_N], cons[PC_N];
    start_threads(cons, PC_N, consumer, &p, 0);
    start_threads(prod, PC_N, producer, &p, 0);
    join_threads(prod, PC_N, NULL);
    join_threads(cons, PC_N, NULL);
    cr_assert_eq(atomic_load(&p.errors), 0);
    cr_assert_eq(p.taken, PC_N * PC_ITEMS);
    cr_assert_eq(p.sum, (long)PC_N * PC_ITEMS * (PC_ITEMS + 1) / 2);
    ps_condition_free(p.c);
}

/* ================================================================== PS_SHARED */

static int proc_waiter(void *arg)
{
    /* returns the wait result; 100 + x for setup failures */
    cstate_t *s = arg;
    int rc = ps_condition_acquire(s->cond, true, 10.0);
    if (rc != 0)
        return 100 + rc;
    atomic_fetch_add(&s->registered, 1);
    rc = ps_condition_wait(s->cond, s->timeout);
    atomic_fetch_add(&s->returned, 1);
    int rel = ps_condition_release(s->cond);
    return rel ? 100 + rel : rc;
}

Test(condition_shared, basics)
{
    ps_condition_t *c = ps_condition_new(NULL, PS_SHARED);
    cr_assert_not_null(c);
    CHECK_RC_E(ps_condition_wait(c, 0.1), EPERM);
    CHECK_RC_E(ps_condition_notify(c, 1), EPERM);
    CHECK_RC(ps_condition_acquire(c, true, PS_FOREVER), 0);
    CHECK_RC(ps_condition_acquire(c, true, PS_FOREVER), 0);
    double t0 = now();
    CHECK_RC_E(ps_condition_wait(c, 0.2), ETIMEDOUT);
    cr_assert_geq(now() - t0, LOWER_BOUND(0.2));
    CHECK_RC_E(ps_condition_notify(c, 1), 0);
    CHECK_RC_E(ps_condition_notify_all(c), 0);
    CHECK_RC(ps_condition_release(c), 0);
    CHECK_RC(ps_condition_release(c), 0);
    CHECK_RC(ps_condition_release(c), EPERM);
    ps_condition_free(c);

    ps_rlock_t *rl = ps_rlock_new(PS_SHARED);
    c = ps_condition_new(rl, PS_SHARED);
    cr_assert_not_null(c);
    check_recursive_wait(c, rl);
    ps_condition_free(c);
    ps_rlock_free(rl);
}

Test(condition_shared, recursive_wait_own_lock)
{
    ps_condition_t *c = ps_condition_new(NULL, PS_SHARED);
    check_recursive_wait(c, NULL);
    ps_condition_free(c);
}

Test(condition_shared, notify_other_process)
{
    cstate_t *s = shm_alloc(sizeof *s);
    s->cond = ps_condition_new(NULL, PS_SHARED);
    s->timeout = 10.0;
    enum { N = 3 };
    pid_t pids[N];
    fork_children(pids, N, proc_waiter, s);
    all_waiting(s, N);
    notify_locked(s, 1, false);
    cr_assert(wait_count(&s->returned, 1, 5.0));
    sleep_s(0.1);
    cr_assert_eq(atomic_load(&s->returned), 1, "notify(1) woke %d processes",
                 atomic_load(&s->returned));
    notify_locked(s, 0, true);
    CHECK_CHILDREN(pids, N, 10.0, 0);
    ps_condition_free(s->cond);
    shm_free(s, sizeof *s);
}

Test(condition_shared, signal_does_not_end_wait)
{
    ps_condition_t *c = ps_condition_new(NULL, PS_SHARED);
    check_timed_wait_under_signals(c);
    ps_condition_free(c);
}

/* Ping-pong between two processes: exact alternation via wait_for. */
typedef struct pingpong {
    ps_condition_t *c;
    int turn;          /* 0: parent's, 1: child's */
    int count;
} pingpong_t;

enum { PP_ROUNDS = 2000 };

static bool pp_child_turn(void *arg) { return ((pingpong_t *)arg)->turn == 1; }
static bool pp_parent_turn(void *arg) { return ((pingpong_t *)arg)->turn == 0; }

static int pp_child(void *arg)
{
    pingpong_t *p = arg;
    for (int i = 0; i < PP_ROUNDS; i++) {
        if (ps_condition_acquire(p->c, true, 10.0) != 0)
            return 2;
        if (ps_condition_wait_for(p->c, pp_child_turn, p, 10.0) != 0)
            return 3;
        p->count++;
        p->turn = 0;
        ps_condition_notify(p->c, 1);
        ps_condition_release(p->c);
    }
    return 0;
}

Test(condition_shared, pingpong_processes)
{
    pingpong_t *p = shm_alloc(sizeof *p);
    p->c = ps_condition_new(NULL, PS_SHARED);
    pid_t pid = fork_child(pp_child, p);
    int failures = 0;
    for (int i = 0; i < PP_ROUNDS && !failures; i++) {
        CHECK_RC(ps_condition_acquire(p->c, true, 10.0), 0);
        if (ps_condition_wait_for(p->c, pp_parent_turn, p, 10.0) != 0)
            failures++;
        p->count++;
        p->turn = 1;
        ps_condition_notify(p->c, 1);
        CHECK_RC(ps_condition_release(p->c), 0);
    }
    int code = child_wait(pid, 20.0);
    cr_assert_eq(failures, 0);
    cr_assert_eq(code, 0, "child ended with %d", code);
    cr_assert_eq(p->count, 2 * PP_ROUNDS);
    ps_condition_free(p->c);
    shm_free(p, sizeof *p);
}

/* The waiter-death tests' setup: a shared condition on which two waiting processes were
 * SIGKILLed; its state is in shared memory, later waiters wait 5 s. */
static cstate_t *with_killed_waiters(void)
{
    cstate_t *s = shm_alloc(sizeof *s);
    s->cond = ps_condition_new(NULL, PS_SHARED);
    s->timeout = 20.0;
    pid_t dead[2];
    for (int i = 0; i < 2; i++)
        dead[i] = fork_child(proc_waiter, s);
    all_waiting(s, 2);
    sleep_s(0.05);
    for (int i = 0; i < 2; i++)
        child_kill(dead[i]);

    s->timeout = 5.0;
    return s;
}

/* Two waiting processes are SIGKILLed; five rounds of new waiters (processes on even
 * rounds, threads on odd ones) must then wait and be woken exactly as before. */
Test(condition_shared, waiter_killed)
{
    cstate_t *s = with_killed_waiters();
    for (int round = 0; round < 5; round++) {
        int base_reg = atomic_load(&s->registered), base_ret = atomic_load(&s->returned);
        waiters_t w;
        waiters_start(&w, round % 2 == 0, 2, proc_waiter, s);
        all_waiting(s, base_reg + 2);
        sleep_s(0.05);
        cr_assert_eq(atomic_load(&s->returned), base_ret,
                     "round %d: a waiter returned without notify (stale notification?)",
                     round);
        if (round % 4 < 2) {          /* notify(1) per waiter */
            notify_locked(s, 1, false);
            cr_assert(wait_count(&s->returned, base_ret + 1, 5.0),
                      "round %d: notify(1) woke no live waiter", round);
            notify_locked(s, 1, false);
        } else {
            notify_locked(s, 0, true);
        }
        CHECK_WAITERS_OK(&w, round);
    }
    /* and timeouts still work */
    CHECK_RC(ps_condition_acquire(s->cond, true, 5.0), 0);
    CHECK_RC(ps_condition_wait(s->cond, 0.05), ETIMEDOUT);
    CHECK_RC(ps_condition_release(s->cond), 0);
    ps_condition_free(s->cond);
    shm_free(s, sizeof *s);
}

/* ================================================================== destroy races */

/* notify_all and release, then destroy at once: EBUSY is fine while notified waiters
 * are still inside wait (re-taking the lock), but once destroy returns 0 nobody may
 * touch the condition or its own RLock (the page is unmapped). */
static void destroy_after_notify(int flags)
{
    for (int iter = 0; iter < 20; iter++) {
        ps_condition_t *c = page_alloc();
        CHECK_RC(ps_condition_init(c, NULL, flags), 0);
        enum { N = 3 };
        cstate_t s = { .cond = c, .timeout = 5.0 };
        waiter_t w[N];
        pthread_t t[N];
        start_cond_waiters(t, w, N, &s, 0);
        all_waiting(&s, N);
        notify_locked(&s, 0, true);
        int rc;
        DESTROY_RETRY(rc, ps_condition_destroy(c));
        cr_assert_eq(rc, 0, "iteration %d: destroy after notify_all: %d", iter, rc);
        page_free(c);
        join_threads(t, N, NULL);
        for (int i = 0; i < N; i++) {
            cr_assert_eq(w[i].rc, 0, "iteration %d waiter %d: wait %d", iter, i, w[i].rc);
            cr_assert_eq(w[i].rel_rc, 0, "iteration %d waiter %d: release %d", iter, i,
                         w[i].rel_rc);
        }
    }
}

Test(condition, destroy_right_after_notify) { destroy_after_notify(0); }
Test(condition_shared, destroy_right_after_notify) { destroy_after_notify(PS_SHARED); }

/* After waiters were killed (and a notify_all), a notify(1) still wakes one waiter
 * only: the second, stormed with signals, must stay in wait until notified. */
Test(condition_shared, waiter_killed_no_spurious_wakeup)
{
    cstate_t *s = with_killed_waiters();
    for (int round = 0; round < 2; round++) {
        int base_reg = atomic_load(&s->registered), base_ret = atomic_load(&s->returned);
        waiter_t w[2];
        pthread_t t[2];
        start_cond_waiters(t, w, 2, s, 100);
        all_waiting(s, base_reg + 2);
        sleep_s(0.02);
        if (round == 0) {            /* plain round: both notified */
            notify_locked(s, 0, true);
            join_threads(t, 2, NULL);
            continue;
        }
        notify_locked(s, 1, false);
        cr_assert(wait_count(&s->returned, base_ret + 1, 5.0));
        int first = s->order[(s->norder - 1) % MAXW];
        int other = first == 100 ? 1 : 0;
        signal_thread_for(t[other], 0.2);
        cr_assert_eq(atomic_load(&s->returned), base_ret + 1,
                     "notify(1) after killed waiters: a second waiter returned %d on a "
                     "signal (stale notification)", w[other].rc);
        notify_locked(s, 1, false);
        join_threads(t, 2, NULL);
        cr_assert_eq(w[0].rc, 0);
        cr_assert_eq(w[1].rc, 0);
    }
    ps_condition_free(s->cond);
    shm_free(s, sizeof *s);
}

/* ================================================================== lock kinds, waiter limit */

/* A PS_SHARED condition needs a PS_SHARED RLock and a private one a private RLock. */
Test(condition, init_lock_kind_mismatch_einval)
{
    ps_rlock_t *priv = ps_rlock_new(0), *sh = ps_rlock_new(PS_SHARED);
    cr_assert(priv && sh);
    ps_condition_t c;
    CHECK_RC_E(ps_condition_init(&c, priv, PS_SHARED), EINVAL);
    CHECK_RC_E(ps_condition_init(&c, sh, 0), EINVAL);
    errno = 0;
    cr_assert_null(ps_condition_new(priv, PS_SHARED));
    cr_assert_eq(errno, EINVAL, "errno %d", errno);
    errno = 0;
    cr_assert_null(ps_condition_new(sh, 0));
    cr_assert_eq(errno, EINVAL, "errno %d", errno);
    CHECK_RC_E(ps_condition_init(&c, priv, 0), 0);
    CHECK_RC_E(ps_condition_destroy(&c), 0);
    CHECK_RC_E(ps_condition_init(&c, sh, PS_SHARED), 0);
    CHECK_RC_E(ps_condition_destroy(&c), 0);
    ps_rlock_free(priv);
    ps_rlock_free(sh);
}

#ifndef PS_CONDITION_SHARED_WAITERS     /* the old headers did not have it */
#define PS_CONDITION_SHARED_WAITERS 64
#endif

/* A PS_SHARED condition takes PS_CONDITION_SHARED_WAITERS waiters at once: one more
 * wait (or wait_for) returns EAGAIN at once, still holding the lock at its depth.
 * Once a waiter left, a new one gets in. */
Test(condition_shared, waiter_limit_eagain)
{
    enum { N = PS_CONDITION_SHARED_WAITERS };
    ps_condition_t *c = shm_alloc(sizeof *c);
    CHECK_RC(ps_condition_init(c, NULL, PS_SHARED), 0);
    cstate_t s = { .cond = c, .timeout = 20.0 };
    static waiter_t w[N + 1];
    static pthread_t t[N + 1];
    start_cond_waiters(t, w, N, &s, 0);
    all_waiting(&s, N);

    CHECK_RC(ps_condition_acquire(c, true, PS_FOREVER), 0);
    CHECK_RC(ps_condition_acquire(c, true, PS_FOREVER), 0);
    double t0 = now();
    CHECK_RC_E(ps_condition_wait(c, 2.0), EAGAIN);
    CHECK_RC_E(ps_condition_wait_for(c, pred_false, NULL, 2.0), EAGAIN);
    double el = now() - t0;
    cr_assert_lt(el, 1.0, "the refused waits took %.3f s", el);
    CHECK_RC_E(ps_condition_notify(c, 0), 0);          /* still held */
    CHECK_RC(ps_condition_release(c), 0);
    CHECK_RC(ps_condition_release(c), 0);
    CHECK_RC(ps_condition_release(c), EPERM);
    cr_assert_eq(atomic_load(&s.returned), 0);

    notify_locked(&s, 1, false);
    cr_assert(wait_count(&s.returned, 1, 5.0), "notify(1) woke nobody");
    CHECK_RC(ps_condition_acquire(c, true, PS_FOREVER), 0);
    CHECK_RC_E(ps_condition_wait(c, 0.05), ETIMEDOUT);  /* got a place this time */
    CHECK_RC(ps_condition_release(c), 0);

    start_cond_waiters(&t[N], &w[N], 1, &s, N);
    all_waiting(&s, N + 1);
    notify_locked(&s, 0, true);
    join_threads(t, N + 1, NULL);
    for (int i = 0; i <= N; i++)
        cr_assert_eq(w[i].rc, 0, "waiter %d: %d", i, w[i].rc);
    cr_assert_eq(atomic_load(&s.returned), N + 1);
    CHECK_RC_E(ps_condition_destroy(c), 0);
    shm_free(c, sizeof *c);
}

/* ================================================================== notify vs signal handler */

/* PITFALLS 12: a timed futex wait returns EINTR even with SA_RESTART, so a handler
 * can run in the middle of any wait; a notify that lands while it runs must still
 * reach that waiter. One waiter thread loops acquire, wait(3 s), release; a second
 * thread sends it SIGUSR1 every ~40 us (the handler, without SA_RESTART, runs
 * ~30 us); the main thread notifies once per round, under the lock, once the waiter
 * is in wait. Every wait must return 0 (the old shared code lost a notify within
 * 6-12 rounds: the wait timed out after 3 s). */
enum { NL_ROUNDS = 200 };

typedef struct notify_loss {
    ps_condition_t *c;
    int waiting;            /* under the lock: the round the waiter waits in, 0: none */
    atomic_int finished;    /* rounds the waiter completed */
    atomic_bool quit;
    int bad_round, bad_rc;
    double bad_elapsed;
} notify_loss_t;

static void *nl_waiter(void *arg)
{
    notify_loss_t *n = arg;
    for (int r = 1; r <= NL_ROUNDS; r++) {
        int rc = ps_condition_acquire(n->c, true, PS_FOREVER);
        double t0 = now();
        if (rc == 0) {
            n->waiting = r;
            rc = ps_condition_wait(n->c, 3.0);
            if (rc == 0 && n->waiting != 0)
                rc = -1;                /* 0 without a notify */
            n->waiting = 0;
            int rel = ps_condition_release(n->c);
            rc = rc ? rc : rel;
        }
        if (rc) {
            n->bad_round = r;
            n->bad_rc = rc;
            n->bad_elapsed = now() - t0;
            atomic_store(&n->quit, true);
            return NULL;
        }
        atomic_store(&n->finished, r);
    }
    return NULL;
}

static void check_notify_during_handler(int flags)
{
    ps_condition_t *c = shm_alloc(sizeof *c);
    CHECK_RC(ps_condition_init(c, NULL, flags), 0);
    notify_loss_t *n = shm_alloc(sizeof *n);
    n->c = c;
    install_busy_handler(SIGUSR1, 30e-6);
    pthread_t t;
    start_threads(&t, 1, nl_waiter, n, 0);
    fast_storm_t storm;
    fast_storm_start(&storm, t, SIGUSR1, 40e-6);
    int notify_bad = 0;
    unsigned x = 12345;
    for (int r = 1; r <= NL_ROUNDS && !atomic_load(&n->quit); ) {
        if (ps_condition_acquire(c, true, PS_FOREVER) != 0) {
            notify_bad = -1;
            break;
        }
        if (n->waiting == r) {
            /* It waits: let it sleep (and take signals) a little, then notify. */
            CHECK_RC(ps_condition_release(c), 0);
            x = x * 1103515245u + 12345u;
            sleep_s((double)(x >> 16 & 0xff) / 255.0 * 150e-6);
            CHECK_RC(ps_condition_acquire(c, true, PS_FOREVER), 0);
            int rc = ps_condition_notify(c, 1);
            if (rc)
                notify_bad = rc;
            n->waiting = 0;
            r++;
        }
        ps_condition_release(c);
        if (notify_bad)
            break;
        sched_yield();
    }
    double end = now() + 10.0;
    while (!atomic_load(&n->quit) && atomic_load(&n->finished) < NL_ROUNDS && !notify_bad &&
           now() < end)
        sleep_s(0.001);
    fast_storm_stop(&storm);
    join_threads(&t, 1, NULL);
    int handled = atomic_load(&busy_handler_runs[SIGUSR1]);
    cr_assert_eq(notify_bad, 0, "notify: %d", notify_bad);
    cr_assert_eq(n->bad_rc, 0, "round %d: wait returned %d (%s) after %.3f s (%d signals "
                 "handled in all)", n->bad_round, n->bad_rc, strerror(n->bad_rc > 0 ? n->bad_rc : 0),
                 n->bad_elapsed, handled);
    cr_assert_eq(atomic_load(&n->finished), NL_ROUNDS);
    cr_assert_geq(handled, 20, "only %d signals were handled", handled);
    CHECK_RC_E(ps_condition_destroy(c), 0);
    shm_free(n, sizeof *n);
    shm_free(c, sizeof *c);
}

Test(condition, notify_during_signal_handler_not_lost) { check_notify_during_handler(0); }
Test(condition_shared, notify_during_signal_handler_not_lost)
{
    check_notify_during_handler(PS_SHARED);
}

/* ================================================================== EBUSY changes nothing */

static int cond_destroy(void *c) { return ps_condition_destroy(c); }

/* A waiter sleeps in wait; then acquire, destroy (EBUSY, twice), notify(1), release:
 * the EBUSY destroy changed nothing, so the waiter wakes with 0 (with the old shared
 * code it never woke). Waiters are threads, and processes on odd rounds if shared. */
static void check_destroy_ebusy_changes_nothing(int flags)
{
    cstate_t *s = shm_alloc(sizeof *s);
    s->cond = shm_alloc(sizeof *s->cond);
    CHECK_RC(ps_condition_init(s->cond, NULL, flags), 0);
    s->timeout = 3.0;
    for (int round = 0; round < 4; round++) {
        waiters_t w;
        waiters_start(&w, (flags & PS_SHARED) && round % 2 == 1, 1, proc_waiter, s);
        all_waiting(s, round + 1);
        sleep_s(0.02);                          /* asleep in the kernel by now */
        CHECK_RC(ps_condition_acquire(s->cond, true, PS_FOREVER), 0);
        CHECK_RC_E(ps_condition_destroy(s->cond), EBUSY);
        CHECK_RC_E(ps_condition_destroy(s->cond), EBUSY);
        CHECK_RC_E(ps_condition_notify(s->cond, 1), 0);
        CHECK_RC(ps_condition_release(s->cond), 0);
        CHECK_WAITERS_OK(&w, round);
        CHECK_RC_E(ps_condition_destroy(s->cond), 0);
        CHECK_RC(ps_condition_init(s->cond, NULL, flags), 0);
    }
    CHECK_RC_E(ps_condition_destroy(s->cond), 0);
    shm_free(s->cond, sizeof *s->cond);
    shm_free(s, sizeof *s);
}

Test(condition, destroy_ebusy_changes_nothing) { check_destroy_ebusy_changes_nothing(0); }
Test(condition_shared, destroy_ebusy_changes_nothing)
{
    check_destroy_ebusy_changes_nothing(PS_SHARED);
}

/* ================================================================== slow live waiters */

typedef struct destroy_poller {
    ps_condition_t *c;
    atomic_bool stop;
    int calls, bad;
} destroy_poller_t;

static void *destroy_poller(void *arg)
{
    destroy_poller_t *p = arg;
    p->bad = EBUSY;
    while (!atomic_load(&p->stop)) {
        int rc = ps_condition_destroy(p->c);
        p->calls++;
        if (rc != EBUSY) {
            p->bad = rc;
            break;
        }
        sleep_s(0.005);
    }
    return NULL;
}

/* Shared condition with an external shared RLock: the notified waiter (a thread,
 * then a process) is waiting to take the lock back, which the notifier holds for
 * 0.5 s. Meanwhile destroy is EBUSY, both from the notifier (holding the lock) and
 * from a third thread; once the waiter left it returns 0. */
Test(condition_shared, destroy_ebusy_while_notified_waiter_retakes_lock)
{
    cstate_t *s = shm_alloc(sizeof *s);
    ps_rlock_t *rl = shm_alloc(sizeof *rl);
    CHECK_RC(ps_rlock_init(rl, PS_SHARED), 0);
    s->cond = shm_alloc(sizeof *s->cond);
    CHECK_RC(ps_condition_init(s->cond, rl, PS_SHARED), 0);
    s->timeout = 10.0;
    for (int round = 0; round < 2; round++) {
        waiters_t w;
        waiters_start(&w, round == 1, 1, proc_waiter, s);
        all_waiting(s, round + 1);
        CHECK_RC(ps_rlock_acquire(rl, true, PS_FOREVER), 0);
        CHECK_RC(ps_condition_notify(s->cond, 1), 0);
        destroy_poller_t p = { .c = s->cond };
        pthread_t t;
        start_threads(&t, 1, destroy_poller, &p, 0);
        int calls = 0, bad = EBUSY, rl_bad = EBUSY;
        double end = now() + 0.5;
        while (now() < end) {
            int rc = ps_condition_destroy(s->cond);
            int rc2 = ps_rlock_destroy(rl);
            calls++;
            if (rc != EBUSY && bad == EBUSY)
                bad = rc;
            if (rc2 != EBUSY && rl_bad == EBUSY)
                rl_bad = rc2;
            sleep_s(0.005);
        }
        atomic_store(&p.stop, true);
        join_threads(&t, 1, NULL);
        int returned = atomic_load(&s->returned);
        CHECK_RC(ps_rlock_release(rl), 0);              /* held once: destroy left it so */
        int extra = ps_rlock_release(rl);
        CHECK_WAITERS_OK(&w, round);
        cr_assert_eq(bad, EBUSY, "round %d: destroy by the lock holder: %d", round, bad);
        cr_assert_eq(rl_bad, EBUSY, "round %d: destroy of the held RLock: %d", round, rl_bad);
        cr_assert_eq(p.bad, EBUSY, "round %d: destroy by a third thread (call %d): %d", round,
                     p.calls, p.bad);
        cr_assert_geq(calls, 10);
        cr_assert_eq(returned, round, "round %d: the waiter returned without the lock", round);
        cr_assert_eq(extra, EPERM, "round %d: the holder's depth changed", round);
        CHECK_RC_E(ps_condition_destroy(s->cond), 0);
        CHECK_RC(ps_condition_init(s->cond, rl, PS_SHARED), 0);
    }
    CHECK_RC_E(ps_condition_destroy(s->cond), 0);
    CHECK_RC_E(ps_rlock_destroy(rl), 0);
    shm_free(s->cond, sizeof *s->cond);
    shm_free(rl, sizeof *rl);
    shm_free(s, sizeof *s);
}

static int cond_tid_wait(tid_waiter_t *w)
{
    int rc = ps_condition_acquire(w->obj, true, PS_FOREVER);
    if (rc)
        return rc;
    tid_waiter_ready(w);
    rc = ps_condition_wait(w->obj, 10.0);
    ps_condition_release(w->obj);
    return rc;
}

/* A waiter whose thread runs a 0.5 s signal handler in the middle of its wait is
 * alive: destroy says EBUSY all through the handler; the waiter is then notified. */
Test(condition_shared, destroy_ebusy_while_waiter_runs_long_signal_handler)
{
    ps_condition_t *c = shm_alloc(sizeof *c);
    CHECK_RC(ps_condition_init(c, NULL, PS_SHARED), 0);
    tid_waiter_t w = { .obj = c, .wait = cond_tid_wait };
    pthread_t t;
    start_threads(&t, 1, tid_waiter_main, &w, 0);
    cr_assert(wait_count(&w.ready, 1, 5.0));
    CHECK_RC(ps_condition_acquire(c, true, PS_FOREVER), 0);    /* it is in wait */
    CHECK_RC(ps_condition_release(c), 0);
    int calls, rc = destroy_during_long_handler(t, w.tid, cond_destroy, c, 0.5, &calls);
    cr_assert_eq(rc, EBUSY, "destroy during the waiter's signal handler returned %d at call %d",
                 rc, calls);
    CHECK_RC(ps_condition_acquire(c, true, PS_FOREVER), 0);
    CHECK_RC(ps_condition_notify(c, 1), 0);
    CHECK_RC(ps_condition_release(c), 0);
    join_threads(&t, 1, NULL);
    cr_assert_eq(w.rc, 0, "wait returned %d", w.rc);
    CHECK_RC_E(ps_condition_destroy(c), 0);
    shm_free(c, sizeof *c);
}

/* A waiter process that is SIGSTOPped is alive: destroy says EBUSY while it is
 * stopped. Round 0: SIGCONT, then notify; round 1: notify while it is stopped
 * (destroy still EBUSY), then SIGCONT. Either way it returns 0, then destroy 0. */
Test(condition_shared, destroy_ebusy_while_waiter_process_stopped)
{
    cstate_t *s = shm_alloc(sizeof *s);
    s->cond = shm_alloc(sizeof *s->cond);
    CHECK_RC(ps_condition_init(s->cond, NULL, PS_SHARED), 0);
    s->timeout = 10.0;
    for (int round = 0; round < 2; round++) {
        pid_t pid = fork_child(proc_waiter, s);
        int calls = 0, rc = -1, rc2 = EBUSY;
        if (wait_count(&s->registered, round + 1, 5.0))
            rc = destroy_during_stop(pid, cond_destroy, s->cond, 0.25, &calls);
        if (round == 1) {
            ps_condition_acquire(s->cond, true, PS_FOREVER);
            ps_condition_notify(s->cond, 1);
            ps_condition_release(s->cond);
            int calls2;
            rc2 = destroy_stays_ebusy(cond_destroy, s->cond, 0.1, &calls2);
        }
        kill(pid, SIGCONT);
        if (round == 0) {
            ps_condition_acquire(s->cond, true, PS_FOREVER);
            ps_condition_notify(s->cond, 1);
            ps_condition_release(s->cond);
        }
        int code = child_wait(pid, 10.0);
        cr_assert_eq(rc, EBUSY, "round %d: destroy while the waiter is stopped: %d at call %d",
                     round, rc, calls);
        cr_assert_eq(rc2, EBUSY, "destroy after notify, waiter still stopped: %d", rc2);
        cr_assert_eq(code, 0, "round %d: the waiter ended with %d", round, code);
        CHECK_RC_E(ps_condition_destroy(s->cond), 0);
        CHECK_RC(ps_condition_init(s->cond, NULL, PS_SHARED), 0);
    }
    CHECK_RC_E(ps_condition_destroy(s->cond), 0);
    shm_free(s->cond, sizeof *s->cond);
    shm_free(s, sizeof *s);
}

/* Kills a waiting process: reaped (zombie false) or left a zombie (zombie true). */
static void kill_waiter(pid_t pid, bool zombie)
{
    cr_assert(wait_task_state(pid, pid, 'S', 5.0));
    if (!zombie) {
        child_kill(pid);
    } else {
        kill(pid, SIGKILL);
        cr_assert(wait_zombie(pid, 5.0));
    }
}

/* A waiter process SIGKILLed in wait is dead for sure, once reaped (round 0) and
 * already as a zombie (round 1): destroy then returns 0 at once; and when a live
 * thread waits behind a killed process, notify(1) wakes the live one instead of
 * being absorbed by the dead one. */
Test(condition_shared, destroy_after_waiter_process_killed)
{
    cstate_t *s = shm_alloc(sizeof *s);
    s->cond = shm_alloc(sizeof *s->cond);
    CHECK_RC(ps_condition_init(s->cond, NULL, PS_SHARED), 0);
    s->timeout = 20.0;
    for (int round = 0; round < 2; round++) {
        bool zombie = round == 1;
        int reg = atomic_load(&s->registered);
        pid_t dead = fork_child(proc_waiter, s);
        all_waiting(s, reg + 1);
        kill_waiter(dead, zombie);
        int rc = ps_condition_destroy(s->cond);
        if (zombie)
            child_wait(dead, 5.0);
        cr_assert_eq(rc, 0, "round %d: destroy after the only waiter was killed (%s): %d",
                     round, zombie ? "zombie" : "reaped", rc);
        CHECK_RC(ps_condition_init(s->cond, NULL, PS_SHARED), 0);

        /* a dead waiter first in line, then a live one */
        dead = fork_child(proc_waiter, s);
        all_waiting(s, reg + 2);
        kill_waiter(dead, zombie);
        s->timeout = 5.0;
        int ret = atomic_load(&s->returned);
        waiter_t w;
        pthread_t t;
        start_cond_waiters(&t, &w, 1, s, 7);
        all_waiting(s, reg + 3);
        notify_locked(s, 1, false);
        bool woke = wait_count(&s->returned, ret + 1, 2.0);
        if (!woke)
            notify_locked(s, 0, true);          /* do not leave it behind */
        join_threads(&t, 1, NULL);
        rc = ps_condition_destroy(s->cond);
        if (zombie)
            child_wait(dead, 5.0);
        cr_assert(woke, "round %d: notify(1) went to the killed waiter (%s), not the live one",
                  round, zombie ? "zombie" : "reaped");
        cr_assert_eq(w.rc, 0);
        cr_assert_eq(rc, 0, "round %d: destroy with only a killed waiter left: %d", round, rc);
        CHECK_RC(ps_condition_init(s->cond, NULL, PS_SHARED), 0);
        s->timeout = 20.0;
    }
    CHECK_RC_E(ps_condition_destroy(s->cond), 0);
    shm_free(s->cond, sizeof *s->cond);
    shm_free(s, sizeof *s);
}

/* ================================================================== waiter destroys */

/* PITFALLS 13: the waiter's wait returns, it releases and destroys the condition
 * and the page becomes PROT_NONE at once, while the notifier (acquire, notify,
 * release on another thread) may still be leaving: nothing it does after the store
 * that lets the waiter go may touch the condition or its own RLock. */
static void cond_page_race(int flags)
{
    page_race_t r = { .init = race_cond_init, .waiter = race_cond_waiter,
                      .waker = race_cond_waker, .flags = flags, .max_jitter = 300 };
    CHECK_PAGE_RACE(&r, 3000, 0.5);
}

Test(condition, waiter_destroys_right_after_wait) { cond_page_race(0); }
Test(condition_shared, waiter_destroys_right_after_wait) { cond_page_race(PS_SHARED); }
