/* SPDX-License-Identifier: MIT */
/* Tests for the futures of <pysync/futures.h>: a port of CPython's
 * Lib/test/test_concurrent_futures/test_future.py and test_wait.py (the
 * futures there are made by hand; here a thread executor makes them, held in
 * each state by tasks that wait on an event), plus the C contract: error
 * codes, errno, bytes results, reference counting, callbacks that race with
 * completion, and "wait, then free" (PITFALLS 13). */
#include <pysync/futures.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static void *I(intptr_t n) { return (void *)n; }
static intptr_t V(void *p) { return (intptr_t)p; }

/* ---- tasks ---- */

static void *identity(void *arg) { return arg; }

/* Waits for the event passed as arg, then returns 42. */
static void *wait_event(void *arg)
{
    ps_event_wait(arg, PS_FOREVER);
    return I(42);
}

/* A task that says it started, then waits for its event. */
typedef struct gate {
    ps_event_t go;
    atomic_int started;
} gate_t;

static void gate_init(gate_t *g)
{
    cr_assert_eq(ps_event_init(&g->go, 0), 0);
    atomic_init(&g->started, 0);
}

static void *gated(void *arg)
{
    gate_t *g = arg;
    atomic_fetch_add(&g->started, 1);
    ps_event_wait(&g->go, PS_FOREVER);
    return I(7);
}

static ssize_t bytes_copy(const void *in, size_t inlen, void *out, size_t outcap)
{
    if (inlen > outcap)
        return -EMSGSIZE;
    memcpy(out, in, inlen);
    return (ssize_t)inlen;
}

static ssize_t bytes_fail_eio(const void *in, size_t inlen, void *out, size_t outcap)
{
    (void)in, (void)inlen, (void)out, (void)outcap;
    return -EIO;
}

/* ---- futures in each state (CPython's PENDING_FUTURE, RUNNING_FUTURE...) ---- */

typedef struct states {
    ps_executor_t *ex;          /* one worker */
    gate_t gate;
    ps_future_t *running;       /* holds the worker */
    ps_future_t *pending;       /* queued behind it */
    ps_future_t *cancelled;
    ps_future_t *finished;      /* result 5 */
    ps_future_t *failed;        /* bytes task that returned -EIO */
} states_t;

static void states_make(states_t *s)
{
    s->ex = ps_executor_new(1, 0);
    cr_assert_not_null(s->ex);
    gate_init(&s->gate);
    s->finished = ps_executor_submit(s->ex, identity, I(5));
    cr_assert_not_null(s->finished);
    CHECK_RC(ps_future_result(s->finished, 5.0, NULL), 0);
    s->failed = ps_executor_submit_bytes(s->ex, bytes_fail_eio, "x", 1);
    cr_assert_not_null(s->failed);
    CHECK_RC(ps_future_exception(s->failed, 5.0, NULL), 0);
    s->running = ps_executor_submit(s->ex, gated, &s->gate);
    cr_assert(wait_count(&s->gate.started, 1, 5.0));
    s->pending = ps_executor_submit(s->ex, identity, I(1));
    s->cancelled = ps_executor_submit(s->ex, identity, I(2));
    cr_assert(s->running && s->pending && s->cancelled);
    cr_assert(ps_future_cancel(s->cancelled));
}

static void states_free(states_t *s)
{
    ps_event_set(&s->gate.go);
    ps_executor_free(s->ex);
    ps_future_free(s->running);
    ps_future_free(s->pending);
    ps_future_free(s->cancelled);
    ps_future_free(s->finished);
    ps_future_free(s->failed);
    ps_event_destroy(&s->gate.go);
}

/* ---- FutureTests ---- */

Test(future, cancel)
{
    states_t s;
    states_make(&s);
    cr_assert(ps_future_cancel(s.pending));
    cr_assert(ps_future_cancelled(s.pending));
    cr_assert_not(ps_future_cancel(s.running));
    cr_assert(ps_future_running(s.running));
    cr_assert(ps_future_cancel(s.cancelled), "cancel of a cancelled future is true");
    cr_assert(ps_future_cancelled(s.cancelled));
    cr_assert_not(ps_future_cancel(s.failed));
    cr_assert_not(ps_future_cancel(s.finished));
    cr_assert_not(ps_future_cancelled(s.finished));
    states_free(&s);
}

Test(future, cancelled)
{
    states_t s;
    states_make(&s);
    cr_assert_not(ps_future_cancelled(s.pending));
    cr_assert_not(ps_future_cancelled(s.running));
    cr_assert(ps_future_cancelled(s.cancelled));
    cr_assert_not(ps_future_cancelled(s.failed));
    cr_assert_not(ps_future_cancelled(s.finished));
    states_free(&s);
}

Test(future, done)
{
    states_t s;
    states_make(&s);
    cr_assert_not(ps_future_done(s.pending));
    cr_assert_not(ps_future_done(s.running));
    cr_assert(ps_future_done(s.cancelled));
    cr_assert(ps_future_done(s.failed));
    cr_assert(ps_future_done(s.finished));
    states_free(&s);
}

Test(future, running)
{
    states_t s;
    states_make(&s);
    cr_assert_not(ps_future_running(s.pending));
    cr_assert(ps_future_running(s.running));
    cr_assert_not(ps_future_running(s.cancelled));
    cr_assert_not(ps_future_running(s.failed));
    cr_assert_not(ps_future_running(s.finished));
    states_free(&s);
}

Test(future, result_with_timeout)
{
    states_t s;
    void *r = I(-1);
    states_make(&s);
    CHECK_RC_E(ps_future_result(s.pending, 0, &r), ETIMEDOUT);
    CHECK_RC_E(ps_future_result(s.running, 0, &r), ETIMEDOUT);
    cr_assert_eq(V(r), -1, "a failed result must not store");
    CHECK_RC_E(ps_future_result(s.cancelled, 0, &r), ECANCELED);
    CHECK_RC_E(ps_future_result_bytes(s.failed, 0, NULL, 0, NULL), EIO);
    CHECK_RC_E(ps_future_result(s.finished, 0, &r), 0);
    cr_assert_eq(V(r), 5);
    double t0 = now();
    CHECK_RC(ps_future_result(s.pending, 0.05, &r), ETIMEDOUT);
    cr_assert_geq(now() - t0, LOWER_BOUND(0.05));
    states_free(&s);
}

struct later {
    ps_future_t *f;
    ps_event_t *ev;             /* set this... */
    bool cancel;                /* ...or cancel f */
    double delay;
};

static void *do_later(void *arg)
{
    struct later *l = arg;
    sleep_s(l->delay);
    if (l->cancel)
        return I(ps_future_cancel(l->f));
    ps_event_set(l->ev);
    return NULL;
}

Test(future, result_with_success)
{
    ps_executor_t *ex = ps_executor_new(1, 0);
    ps_event_t *ev = ps_event_new(0);
    ps_future_t *f = ps_executor_submit(ex, wait_event, ev);
    struct later l = { .ev = ev, .delay = 0.05 };
    pthread_t t;
    pthread_create(&t, NULL, do_later, &l);
    void *r = NULL;
    CHECK_RC_E(ps_future_result(f, 5.0, &r), 0);
    cr_assert_eq(V(r), 42);
    pthread_join(t, NULL);
    ps_future_free(f);
    ps_executor_free(ex);
    ps_event_free(ev);
}

Test(future, result_with_cancel)
{
    states_t s;
    states_make(&s);
    struct later l = { .f = s.pending, .cancel = true, .delay = 0.05 };
    pthread_t t;
    void *cancelled;
    pthread_create(&t, NULL, do_later, &l);
    CHECK_RC_E(ps_future_result(s.pending, 5.0, NULL), ECANCELED);
    pthread_join(t, &cancelled);
    cr_assert(V(cancelled));
    states_free(&s);
}

Test(future, exception_with_timeout)
{
    states_t s;
    int err = -1;
    states_make(&s);
    CHECK_RC_E(ps_future_exception(s.pending, 0, &err), ETIMEDOUT);
    CHECK_RC_E(ps_future_exception(s.running, 0, &err), ETIMEDOUT);
    CHECK_RC_E(ps_future_exception(s.cancelled, 0, &err), ECANCELED);
    cr_assert_eq(err, -1);
    CHECK_RC_E(ps_future_exception(s.failed, 0, &err), 0);
    cr_assert_eq(err, EIO);
    CHECK_RC_E(ps_future_exception(s.finished, 0, &err), 0);
    cr_assert_eq(err, 0);
    states_free(&s);
}

static ssize_t bytes_wait_then_fail(const void *in, size_t inlen, void *out, size_t outcap)
{
    (void)inlen, (void)out, (void)outcap;
    ps_event_t *ev;
    memcpy(&ev, in, sizeof ev);
    ps_event_wait(ev, PS_FOREVER);
    return -ENOENT;
}

Test(future, exception_with_success)
{
    ps_executor_t *ex = ps_executor_new(1, 0);
    ps_event_t *ev = ps_event_new(0);
    ps_future_t *f = ps_executor_submit_bytes(ex, bytes_wait_then_fail, &ev, sizeof ev);
    cr_assert_not_null(f);
    struct later l = { .ev = ev, .delay = 0.05 };
    pthread_t t;
    pthread_create(&t, NULL, do_later, &l);
    int err = 0;
    CHECK_RC_E(ps_future_exception(f, 5.0, &err), 0);
    cr_assert_eq(err, ENOENT);
    CHECK_RC(ps_future_result_bytes(f, 0, NULL, 0, NULL), ENOENT);
    pthread_join(t, NULL);
    ps_future_free(f);
    ps_executor_free(ex);
    ps_event_free(ev);
}

Test(future, multiple_results)
{
    ps_executor_t *ex = ps_executor_new(2, 0);
    ps_future_t *f = ps_executor_submit(ex, identity, I(99));
    for (int i = 0; i < 3; i++) {
        void *r = NULL;
        CHECK_RC(ps_future_result(f, 5.0, &r), 0);
        cr_assert_eq(V(r), 99);
    }
    CHECK_RC(ps_future_result(f, 0, NULL), 0);      /* NULL: value not stored */
    ps_future_free(f);
    ps_executor_free(ex);
}

/* ---- done callbacks ---- */

typedef struct cbrec {
    atomic_int calls;
    int rc;
    void *value;
    int task_error;
    bool cancelled;
    pthread_t thread;
    ps_event_t ran;
} cbrec_t;

static void cbrec_init(cbrec_t *c)
{
    memset(c, 0, sizeof *c);
    ps_event_init(&c->ran, 0);
}

static void record_result(ps_future_t *f, void *arg)
{
    cbrec_t *c = arg;
    c->thread = pthread_self();
    c->rc = ps_future_result(f, 0, &c->value);
    c->cancelled = ps_future_cancelled(f);
    atomic_fetch_add(&c->calls, 1);
    ps_event_set(&c->ran);
}

static void record_exception(ps_future_t *f, void *arg)
{
    cbrec_t *c = arg;
    c->rc = ps_future_exception(f, 0, &c->task_error);
    atomic_fetch_add(&c->calls, 1);
    ps_event_set(&c->ran);
}

Test(future, done_callback_with_result)
{
    ps_executor_t *ex = ps_executor_new(1, 0);
    gate_t g;
    cbrec_t c;
    gate_init(&g);
    cbrec_init(&c);
    ps_future_t *f = ps_executor_submit(ex, gated, &g);
    CHECK_RC_E(ps_future_add_done_callback(f, record_result, &c), 0);
    cr_assert_eq(atomic_load(&c.calls), 0);
    ps_event_set(&g.go);
    CHECK_RC(ps_event_wait(&c.ran, 5.0), 0);
    CHECK_RC(c.rc, 0);
    cr_assert_eq(V(c.value), 7);
    cr_assert_not(pthread_equal(c.thread, pthread_self()), "runs in the completing thread");
    ps_executor_free(ex);
    cr_assert_eq(atomic_load(&c.calls), 1);
    ps_future_free(f);
}

Test(future, done_callback_with_exception)
{
    ps_executor_t *ex = ps_executor_new(1, 0);
    ps_event_t *ev = ps_event_new(0);
    cbrec_t c;
    cbrec_init(&c);
    ps_future_t *f = ps_executor_submit_bytes(ex, bytes_wait_then_fail, &ev, sizeof ev);
    CHECK_RC(ps_future_add_done_callback(f, record_exception, &c), 0);
    ps_event_set(ev);
    CHECK_RC(ps_event_wait(&c.ran, 5.0), 0);
    CHECK_RC(c.rc, 0);
    cr_assert_eq(c.task_error, ENOENT);
    ps_executor_free(ex);
    ps_future_free(f);
    ps_event_free(ev);
}

Test(future, done_callback_with_cancel)
{
    states_t s;
    cbrec_t c;
    states_make(&s);
    cbrec_init(&c);
    CHECK_RC(ps_future_add_done_callback(s.pending, record_result, &c), 0);
    cr_assert(ps_future_cancel(s.pending));
    cr_assert_eq(atomic_load(&c.calls), 1, "callbacks have run when cancel returns");
    cr_assert(c.cancelled);
    CHECK_RC(c.rc, ECANCELED);
    cr_assert(pthread_equal(c.thread, pthread_self()), "run by the thread that cancelled");
    cr_assert(ps_future_cancel(s.pending));
    cr_assert_eq(atomic_load(&c.calls), 1);
    states_free(&s);
}

Test(future, done_callback_already_successful)
{
    states_t s;
    cbrec_t c;
    states_make(&s);
    cbrec_init(&c);
    CHECK_RC_E(ps_future_add_done_callback(s.finished, record_result, &c), 0);
    cr_assert_eq(atomic_load(&c.calls), 1, "run at once when already done");
    cr_assert(pthread_equal(c.thread, pthread_self()));
    cr_assert_eq(V(c.value), 5);
    states_free(&s);
}

Test(future, done_callback_already_failed)
{
    states_t s;
    cbrec_t c;
    states_make(&s);
    cbrec_init(&c);
    CHECK_RC(ps_future_add_done_callback(s.failed, record_exception, &c), 0);
    cr_assert_eq(atomic_load(&c.calls), 1);
    cr_assert_eq(c.task_error, EIO);
    states_free(&s);
}

Test(future, done_callback_already_cancelled)
{
    states_t s;
    cbrec_t c;
    states_make(&s);
    cbrec_init(&c);
    CHECK_RC(ps_future_add_done_callback(s.cancelled, record_result, &c), 0);
    cr_assert_eq(atomic_load(&c.calls), 1);
    cr_assert(c.cancelled);
    states_free(&s);
}

/* Callbacks run in the order they were added, each once. */
typedef struct order {
    int seen[40];
    atomic_int n;
} order_t;

static order_t order_rec;

static void record_order(ps_future_t *f, void *arg)
{
    (void)f;
    int i = atomic_fetch_add(&order_rec.n, 1);
    if (i < 40)
        order_rec.seen[i] = (int)V(arg);
}

Test(future, done_callbacks_run_in_order)
{
    states_t s;
    states_make(&s);
    for (int i = 0; i < 30; i++)
        CHECK_RC(ps_future_add_done_callback(s.running, record_order, I(i)), 0);
    ps_event_set(&s.gate.go);
    CHECK_RC(ps_future_result(s.running, 5.0, NULL), 0);
    cr_assert(wait_count(&order_rec.n, 30, 5.0));
    for (int i = 30; i < 35; i++)       /* done now: each runs at once */
        CHECK_RC(ps_future_add_done_callback(s.running, record_order, I(i)), 0);
    cr_assert_eq(atomic_load(&order_rec.n), 35);
    for (int i = 0; i < 35; i++)
        cr_assert_eq(order_rec.seen[i], i, "callback %d ran as %d", i, order_rec.seen[i]);
    states_free(&s);
}

static void free_in_callback(ps_future_t *f, void *arg)
{
    ps_future_free(f);
    atomic_fetch_add((atomic_int *)arg, 1);
}

/* ps_future_free at any time: before the task starts, while it runs, or from a
 * callback; the task still runs and the callbacks still fire. */
Test(future, free_at_any_time)
{
    ps_executor_t *ex = ps_executor_new(1, 0);
    gate_t g;
    atomic_int ran = 0;
    gate_init(&g);
    ps_future_t *a = ps_executor_submit(ex, gated, &g);
    cr_assert(wait_count(&g.started, 1, 5.0));
    ps_future_t *b = ps_executor_submit(ex, gated, &g);
    CHECK_RC(ps_future_add_done_callback(a, free_in_callback, &ran), 0);
    CHECK_RC(ps_future_add_done_callback(b, free_in_callback, &ran), 0);
    ps_future_t *c = ps_executor_submit(ex, identity, NULL);
    ps_future_free(c);          /* not started yet */
    ps_event_set(&g.go);
    cr_assert(wait_count(&ran, 2, 5.0));
    cr_assert(wait_count(&g.started, 2, 5.0), "the freed task still ran");
    ps_executor_free(ex);
    ps_event_destroy(&g.go);
}

/* A callback added by one thread while the worker completes the future: it runs
 * exactly once (by the completer or at once by the adder). The adder is one
 * persistent thread that plays its part once per round after a handshake. */
typedef struct adder {
    ps_future_t *f;
    atomic_int *count;
    sem_t go, done;
    bool stop;
} adder_t;

static __thread bool in_adder;
static atomic_int ran_in_adder, ran_in_completer;

static void count_cb(ps_future_t *f, void *arg)
{
    (void)f;
    atomic_fetch_add(in_adder ? &ran_in_adder : &ran_in_completer, 1);
    atomic_fetch_add((atomic_int *)arg, 1);
}

static void *add_callbacks(void *arg)
{
    adder_t *a = arg;
    in_adder = true;
    for (;;) {
        while (sem_wait(&a->go) != 0)
            ;
        if (a->stop)
            return NULL;
        for (int i = 0; i < 4; i++)
            ps_future_add_done_callback(a->f, count_cb, a->count);
        sem_post(&a->done);
    }
}

static void *spin_a_little(void *arg)
{
    for (volatile int i = 0; i < (int)V(arg); i++)
        ;
    return NULL;
}

Test(future, callbacks_added_during_completion_run_once)
{
    enum { ROUNDS = 2000 };
    ps_executor_t *ex = ps_executor_new(1, 0);
    adder_t a = { .stop = false };
    sem_init(&a.go, 0, 0);
    sem_init(&a.done, 0, 0);
    pthread_t t;
    pthread_create(&t, NULL, add_callbacks, &a);
    for (int round = 0; round < ROUNDS; round++) {
        atomic_int count = 0;
        a.count = &count;
        a.f = ps_executor_submit(ex, spin_a_little, I(round % 64 * 20));
        cr_assert_not_null(a.f);
        sem_post(&a.go);
        while (sem_wait(&a.done) != 0)
            ;
        CHECK_RC(ps_future_result(a.f, 5.0, NULL), 0);
        cr_assert(wait_count(&count, 4, 5.0));
        ps_future_free(a.f);    /* the completer holds its own reference */
        cr_assert_eq(atomic_load(&count), 4, "round %d: %d calls", round, atomic_load(&count));
    }
    a.stop = true;
    sem_post(&a.go);
    pthread_join(t, NULL);
    ps_executor_free(ex);
    cr_assert(atomic_load(&ran_in_adder) > 0 && atomic_load(&ran_in_completer) > 0,
              "no race: %d callbacks ran in the adder, %d in the worker",
              atomic_load(&ran_in_adder), atomic_load(&ran_in_completer));
}

/* ---- bytes results ---- */

Test(future, result_bytes_roundtrip_and_erange)
{
    ps_executor_t *ex = ps_executor_new(2, 0);
    char in[300], out[300];
    for (int i = 0; i < 300; i++)
        in[i] = (char)i;
    ps_future_t *f = ps_executor_submit_bytes(ex, bytes_copy, in, sizeof in);
    cr_assert_not_null(f);
    size_t len = 0;
    CHECK_RC_E(ps_future_result_bytes(f, 5.0, out, 10, &len), ERANGE);
    cr_assert_eq(len, 300, "ERANGE reports the size needed");
    len = 0;
    CHECK_RC_E(ps_future_result_bytes(f, 5.0, out, sizeof out, &len), 0);
    cr_assert_eq(len, 300);
    cr_assert_eq(memcmp(in, out, sizeof in), 0);
    CHECK_RC(ps_future_result_bytes(f, 5.0, out, sizeof out, &len), 0);    /* again */
    CHECK_RC_E(ps_future_result(f, 0, NULL), EINVAL);                       /* wrong kind */
    ps_future_t *g = ps_executor_submit_bytes(ex, bytes_copy, NULL, 0);    /* empty input */
    cr_assert_not_null(g);
    len = 99;
    CHECK_RC(ps_future_result_bytes(g, 5.0, NULL, 0, &len), 0);
    cr_assert_eq(len, 0);
    ps_future_t *p = ps_executor_submit(ex, identity, NULL);
    CHECK_RC_E(ps_future_result_bytes(p, 5.0, out, sizeof out, &len), EINVAL);
    int err = -1;
    CHECK_RC(ps_future_exception(p, 5.0, &err), 0);
    cr_assert_eq(err, 0);
    ps_future_free(f);
    ps_future_free(g);
    ps_future_free(p);
    ps_executor_free(ex);
}

static ssize_t bytes_fill_max(const void *in, size_t inlen, void *out, size_t outcap)
{
    (void)in, (void)inlen;
    if (outcap < PS_TASK_BYTES_MAX)
        return -ENOSPC;
    memset(out, 0xab, PS_TASK_BYTES_MAX);
    return PS_TASK_BYTES_MAX;
}

Test(future, bytes_task_may_write_task_bytes_max)
{
    ps_executor_t *ex = ps_executor_new(1, 0);
    ps_future_t *f = ps_executor_submit_bytes(ex, bytes_fill_max, NULL, 0);
    unsigned char *buf = malloc(PS_TASK_BYTES_MAX);
    size_t len = 0;
    CHECK_RC(ps_future_result_bytes(f, 5.0, buf, PS_TASK_BYTES_MAX, &len), 0);
    cr_assert_eq(len, PS_TASK_BYTES_MAX);
    cr_assert(buf[0] == 0xab && buf[PS_TASK_BYTES_MAX - 1] == 0xab);
    free(buf);
    ps_future_free(f);
    ps_executor_free(ex);
}

/* ---- bad input ---- */

Test(future, invalid_arguments_are_einval_and_keep_errno)
{
    states_t s;
    states_make(&s);
    void *r;
    errno = 4321;
    cr_assert_eq(ps_future_result(NULL, 0, &r), EINVAL);
    cr_assert_eq(ps_future_result(s.finished, NAN, &r), EINVAL);
    cr_assert_eq(ps_future_result_bytes(NULL, 0, NULL, 0, NULL), EINVAL);
    cr_assert_eq(ps_future_result_bytes(s.failed, NAN, NULL, 0, NULL), EINVAL);
    cr_assert_eq(ps_future_result_bytes(s.failed, 0, NULL, 5, NULL), EINVAL);
    cr_assert_eq(ps_future_exception(NULL, 0, NULL), EINVAL);
    cr_assert_eq(ps_future_exception(s.pending, NAN, NULL), EINVAL);
    cr_assert_eq(ps_future_add_done_callback(NULL, count_cb, NULL), EINVAL);
    cr_assert_eq(ps_future_add_done_callback(s.pending, NULL, NULL), EINVAL);
    cr_assert_not(ps_future_cancel(NULL));
    cr_assert_not(ps_future_cancelled(NULL));
    cr_assert_not(ps_future_running(NULL));
    cr_assert_not(ps_future_done(NULL));
    ps_future_free(NULL);
    ps_future_t *fs[2] = { s.finished, NULL };
    cr_assert_eq(ps_futures_wait(NULL, 1, 0, PS_ALL_COMPLETED), EINVAL);
    cr_assert_eq(ps_futures_wait(fs, 2, 0, PS_ALL_COMPLETED), EINVAL);
    cr_assert_eq(ps_futures_wait(fs, 1, 0, 0), EINVAL);
    cr_assert_eq(ps_futures_wait(fs, 1, 0, 42), EINVAL);
    cr_assert_eq(ps_futures_wait(fs, 1, NAN, PS_FIRST_COMPLETED), EINVAL);
    cr_assert_eq(ps_futures_wait(NULL, 0, 0, PS_FIRST_COMPLETED), 0);
    cr_assert_eq(ps_futures_wait(NULL, 0, 0, PS_ALL_COMPLETED), 0);
    cr_assert_eq(errno, 4321);
    cr_assert(ps_future_running(s.running), "bad calls changed nothing");
    cr_assert_not(ps_future_done(s.pending));
    states_free(&s);
}

/* ---- WaitTests ---- */

Test(future, wait_20369)
{
    ps_executor_t *ex = ps_executor_new(2, 0);
    ps_future_t *f = ps_executor_submit(ex, identity, I(2));
    ps_future_t *fs[2] = { f, f };
    CHECK_RC_E(ps_futures_wait(fs, 2, PS_FOREVER, PS_ALL_COMPLETED), 0);
    cr_assert(ps_future_done(f));
    ps_future_free(f);
    ps_executor_free(ex);
}

Test(future, wait_first_completed)
{
    ps_executor_t *ex = ps_executor_new(2, 0);
    ps_event_t *ev = ps_event_new(0);
    gate_t g;
    gate_init(&g);
    ps_future_t *blocker = ps_executor_submit(ex, gated, &g);
    cr_assert(wait_count(&g.started, 1, 5.0));
    ps_future_t *f1 = ps_executor_submit(ex, wait_event, ev);
    ps_future_t *f2 = ps_executor_submit(ex, wait_event, ev);   /* queued behind */
    ps_future_t *fs[3] = { f1, f2, blocker };
    CHECK_RC_E(ps_futures_wait(fs, 3, 0.02, PS_FIRST_COMPLETED), ETIMEDOUT);
    struct later l = { .ev = ev, .delay = 0.02 };
    pthread_t t;
    pthread_create(&t, NULL, do_later, &l);
    CHECK_RC_E(ps_futures_wait(fs, 3, 5.0, PS_FIRST_COMPLETED), 0);
    cr_assert(ps_future_done(f1) || ps_future_done(f2));
    cr_assert_not(ps_future_done(blocker));
    pthread_join(t, NULL);
    ps_event_set(&g.go);
    ps_executor_free(ex);
    ps_future_free(blocker);
    ps_future_free(f1);
    ps_future_free(f2);
    ps_event_free(ev);
}

Test(future, wait_first_completed_some_already_completed)
{
    states_t s;
    states_make(&s);
    ps_future_t *fs[3] = { s.cancelled, s.finished, s.running };
    CHECK_RC(ps_futures_wait(fs, 3, PS_FOREVER, PS_FIRST_COMPLETED), 0);
    ps_future_t *gs[2] = { s.running, s.cancelled };
    CHECK_RC(ps_futures_wait(gs, 2, 0, PS_FIRST_COMPLETED), 0);
    cr_assert(ps_future_running(s.running));
    states_free(&s);
}

Test(future, wait_all_completed)
{
    states_t s;
    states_make(&s);
    ps_future_t *f = ps_executor_submit(s.ex, identity, I(3));
    ps_future_t *fs[5] = { s.finished, s.cancelled, s.failed, s.running, f };
    ps_event_set(&s.gate.go);
    CHECK_RC_E(ps_futures_wait(fs, 5, 5.0, PS_ALL_COMPLETED), 0);
    for (int i = 0; i < 5; i++)
        cr_assert(ps_future_done(fs[i]));
    ps_future_free(f);
    states_free(&s);
}

Test(future, wait_timeout)
{
    states_t s;
    states_make(&s);
    ps_future_t *fs[4] = { s.cancelled, s.failed, s.finished, s.running };
    double t0 = now();
    CHECK_RC_E(ps_futures_wait(fs, 4, 0.05, PS_ALL_COMPLETED), ETIMEDOUT);
    cr_assert_geq(now() - t0, LOWER_BOUND(0.05));
    t0 = now();
    ps_future_t *gs[2] = { s.running, s.pending };
    CHECK_RC_E(ps_futures_wait(gs, 2, 0.05, PS_FIRST_COMPLETED), ETIMEDOUT);
    cr_assert_geq(now() - t0, LOWER_BOUND(0.05));
    CHECK_RC(ps_futures_wait(gs, 2, 0, PS_FIRST_COMPLETED), ETIMEDOUT);
    states_free(&s);
}

/* ThreadPoolWaitTests.test_pending_calls_race: many futures finishing at once. */
Test(future, wait_pending_calls_race)
{
    enum { N = 100 };
    ps_executor_t *ex = ps_executor_new(4, 0);
    ps_event_t *ev = ps_event_new(0);
    ps_future_t *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = ps_executor_submit(ex, wait_event, ev);
    ps_event_set(ev);
    CHECK_RC(ps_futures_wait(fs, N, 10.0, PS_ALL_COMPLETED), 0);
    for (int i = 0; i < N; i++) {
        cr_assert(ps_future_done(fs[i]));
        ps_future_free(fs[i]);
    }
    ps_executor_free(ex);
    ps_event_free(ev);
}

/* FIRST_COMPLETED over more futures than fit the waiter's stack records. */
Test(future, wait_first_completed_many)
{
    enum { N = 50 };
    ps_executor_t *ex = ps_executor_new(1, 0);
    gate_t g;
    gate_init(&g);
    ps_future_t *fs[N];
    fs[0] = ps_executor_submit(ex, gated, &g);
    cr_assert(wait_count(&g.started, 1, 5.0));
    for (int i = 1; i < N; i++)
        fs[i] = ps_executor_submit(ex, identity, I(i));
    struct later l = { .f = fs[N - 1], .cancel = true, .delay = 0.02 };
    pthread_t t;
    pthread_create(&t, NULL, do_later, &l);
    CHECK_RC(ps_futures_wait(fs, N, 5.0, PS_FIRST_COMPLETED), 0);
    cr_assert(ps_future_cancelled(fs[N - 1]));
    pthread_join(t, NULL);
    ps_event_set(&g.go);
    CHECK_RC(ps_futures_wait(fs, N, 5.0, PS_ALL_COMPLETED), 0);
    ps_executor_free(ex);
    for (int i = 0; i < N; i++)
        ps_future_free(fs[i]);
    ps_event_destroy(&g.go);
}

/* ---- signals never end a wait early (PITFALLS 12) ---- */

typedef struct sigwait {
    ps_future_t *f;
    int rc_timed, rc_first, rc_forever;
    double timed_took;
    ps_event_t *release;
} sigwait_t;

static void *wait_under_signals(void *arg)
{
    sigwait_t *w = arg;
    double t0 = now();
    w->rc_timed = ps_future_result(w->f, 0.15, NULL);
    w->timed_took = now() - t0;
    w->rc_first = ps_futures_wait(&w->f, 1, 0.05, PS_FIRST_COMPLETED);
    ps_event_set(w->release);
    w->rc_forever = ps_future_result(w->f, PS_FOREVER, NULL);
    return NULL;
}

static void *wait_release_then_spin(void *arg)
{
    ps_event_wait(arg, PS_FOREVER);
    sleep_s(0.1);               /* the waiter sleeps through signals meanwhile */
    return NULL;
}

Test(future, signals_do_not_end_waits)
{
    ps_executor_t *ex = ps_executor_new(1, 0);
    sigwait_t w = { .release = ps_event_new(0) };
    w.f = ps_executor_submit(ex, wait_release_then_spin, w.release);
    int sent = run_thread_under_signals(wait_under_signals, &w);
    cr_assert_gt(sent, 10);
    CHECK_RC(w.rc_timed, ETIMEDOUT);
    cr_assert_geq(w.timed_took, LOWER_BOUND(0.15));
    CHECK_RC(w.rc_first, ETIMEDOUT);
    CHECK_RC(w.rc_forever, 0);
    ps_future_free(w.f);
    ps_executor_free(ex);
    ps_event_free(w.release);
}

/* ---- wait, then free at once (PITFALLS 13) ----
 * Whoever returns from result, exception or a wait frees the future (and the
 * executor) at once, while the completer may still be in its wake path. Run
 * under ASan (make sanitize) a use after free is reported. */

static void nop_cb(ps_future_t *f, void *arg)
{
    (void)f, (void)arg;
}

Test(future, wait_then_free_races_the_completer)
{
    enum { ROUNDS = 3000 };
    for (int round = 0; round < ROUNDS; round++) {
        ps_executor_t *ex = ps_executor_new(1, 0);
        ps_future_t *f = ps_executor_submit(ex, spin_a_little, I(round % 8 * 50));
        cr_assert_not_null(f);
        if (round % 3 == 1)
            CHECK_RC(ps_future_add_done_callback(f, nop_cb, NULL), 0);
        switch (round % 4) {
        case 0: CHECK_RC(ps_future_result(f, 5.0, NULL), 0); break;
        case 1: CHECK_RC(ps_future_exception(f, 5.0, NULL), 0); break;
        case 2: CHECK_RC(ps_futures_wait(&f, 1, 5.0, PS_FIRST_COMPLETED), 0); break;
        case 3: CHECK_RC(ps_futures_wait(&f, 1, 5.0, PS_ALL_COMPLETED), 0); break;
        }
        ps_future_free(f);
        if (round % 2)
            ps_executor_free(ex);
        else
            ps_executor_shutdown(ex, false, false), ps_executor_free(ex);
    }
}
