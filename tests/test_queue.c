/* SPDX-License-Identifier: MIT */
/* Tests for <pysync/queue.h>: a port of CPython's Lib/test/test_queue.py
 * (Python 3.13, shutdown included) plus the C-only contract (error codes,
 * errno, stability, growth). Where a test needs another thread to be blocked
 * first, it waits for the queue's sleeper count instead of sleeping. The last
 * section races "wait, then destroy" against the waker (PITFALLS 13). */
#include <pysync/queue.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "helpers.h"

enum kind { FIFO, LIFO, PRIO };
static const enum kind kinds[] = { FIFO, LIFO, PRIO };
#define QUEUE_SIZE 5

static void *I(intptr_t n) { return (void *)n; }
static intptr_t V(void *p) { return (intptr_t)p; }

static int cmp_int(const void *a, const void *b)
{
    intptr_t x = (intptr_t)a, y = (intptr_t)b;
    return (x > y) - (x < y);
}

static void make(ps_queue_t *q, enum kind k, size_t maxsize)
{
    int rc = k == FIFO ? ps_queue_init(q, maxsize)
           : k == LIFO ? ps_lifoqueue_init(q, maxsize)
           : ps_priorityqueue_init(q, maxsize, cmp_int);
    cr_assert_eq(rc, 0);
}

static void join_thread(pthread_t t)
{
    cr_assert_eq(pthread_join(t, NULL), 0);
}

/* White-box: waits until n threads are counted asleep in *counter, i.e. have
 * given up their fast path and block. */
static void wait_sleepers(unsigned *counter, unsigned n)
{
    while (__atomic_load_n(counter, __ATOMIC_ACQUIRE) < n)
        sched_yield();
}

/* White-box: joiners count in _inside, and one that may sleep has set JOINING,
 * the low bit of _done. Waits until n are inside join and the flag is up. */
static void wait_joiners(ps_queue_t *q, unsigned n)
{
    while (__atomic_load_n(&q->_inside, __ATOMIC_ACQUIRE) < n ||
           !(__atomic_load_n(&q->_done, __ATOMIC_ACQUIRE) & 1))
        sched_yield();
}

/* White-box: items put and not yet matched by a task_done (_done holds the
 * done count shifted left by one). Items put: _tail for LIFO and priority. The
 * FIFO's _tail is a ticket word, position << 3 | flags (lib/fifo.c): a ring of
 * _cap slots numbers positions lap | index, lap the power of two above _cap;
 * segments (_cap 0) number 1024 positions per 1023 slots. */
static size_t items_put(ps_queue_t *q, enum kind k)
{
    size_t tail = __atomic_load_n(&q->_tail, __ATOMIC_ACQUIRE);
    if (k != FIFO)
        return tail;
    size_t pos = tail >> 3, cap = q->_cap ? q->_cap : 1023, lap = 1;
    while (lap <= cap)
        lap <<= 1;
    return pos / lap * cap + pos % lap;
}

static size_t unfinished(ps_queue_t *q, enum kind k)
{
    return items_put(q, k) - (__atomic_load_n(&q->_done, __ATOMIC_ACQUIRE) >> 1);
}

static intptr_t get_ok(ps_queue_t *q)
{
    void *x = NULL;
    cr_assert_eq(ps_queue_get(q, &x, true, PS_FOREVER), 0);
    return V(x);
}

/* ---- trigger thread: waits for a blocked caller, then unblocks it ---- */

enum op { OP_PUT, OP_GET, OP_SHUTDOWN, OP_SHUTDOWN_NOW };

struct trigger {
    ps_queue_t *q;
    unsigned *sleepers;         /* wait until this many sleep... */
    unsigned n;
    enum op op;                 /* ...then do this */
    int fired;
    int rc;
    pthread_t thread;
};

static void *trigger_main(void *arg)
{
    struct trigger *t = arg;
    wait_sleepers(t->sleepers, t->n);
    __atomic_store_n(&t->fired, 1, __ATOMIC_RELEASE);
    void *x;
    switch (t->op) {
    case OP_PUT: t->rc = ps_queue_put(t->q, I(999), true, PS_FOREVER); break;
    case OP_GET: t->rc = ps_queue_get(t->q, &x, true, PS_FOREVER); break;
    case OP_SHUTDOWN: t->rc = ps_queue_shutdown(t->q, false); break;
    case OP_SHUTDOWN_NOW: t->rc = ps_queue_shutdown(t->q, true); break;
    }
    return NULL;
}

static void trigger_start(struct trigger *t, ps_queue_t *q, unsigned *sleepers, enum op op)
{
    *t = (struct trigger){ .q = q, .sleepers = sleepers, .n = 1, .op = op };
    cr_assert_eq(pthread_create(&t->thread, NULL, trigger_main, t), 0);
}

/* The blocking call has returned: it must have needed the trigger. */
static void trigger_finish(struct trigger *t)
{
    cr_assert_eq(__atomic_load_n(&t->fired, __ATOMIC_ACQUIRE), 1,
                 "blocking call appeared not to block");
    join_thread(t->thread);
    cr_assert_eq(t->rc, 0);
}

/* ---- BaseQueueTestMixin.basic_queue_test ---- */

static void basic_queue_test(ps_queue_t *q, enum kind k)
{
    static const intptr_t order[3][3] = { { 111, 333, 222 }, { 222, 333, 111 },
                                          { 111, 222, 333 } };
    struct trigger t;
    void *x;

    cr_assert_eq(ps_queue_qsize(q), 0);
    cr_assert(ps_queue_empty(q));
    cr_assert_not(ps_queue_full(q));
    ps_queue_put(q, I(111), true, PS_FOREVER);
    ps_queue_put(q, I(333), true, PS_FOREVER);
    ps_queue_put(q, I(222), true, PS_FOREVER);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(get_ok(q), order[k][i], "kind %d item %d", k, i);
    for (int i = 0; i < QUEUE_SIZE - 1; i++) {
        cr_assert_eq(ps_queue_put(q, I(i), true, PS_FOREVER), 0);
        cr_assert_eq(ps_queue_qsize(q), (size_t)i + 1);
    }
    cr_assert_not(ps_queue_full(q));
    cr_assert_eq(ps_queue_put(q, I(2 * QUEUE_SIZE), true, PS_FOREVER), 0);
    cr_assert(ps_queue_full(q));
    cr_assert_not(ps_queue_empty(q));
    cr_assert_eq(ps_queue_put(q, I(30), false, PS_FOREVER), EAGAIN);
    cr_assert_eq(ps_queue_put(q, I(30), true, 0.01), ETIMEDOUT);
    /* blocking put, released by a get in another thread */
    trigger_start(&t, q, &q->_putters, OP_GET);
    cr_assert_eq(ps_queue_put(q, I(30), true, PS_FOREVER), 0);
    trigger_finish(&t);
    trigger_start(&t, q, &q->_putters, OP_GET);
    cr_assert_eq(ps_queue_put(q, I(30), true, 10), 0);
    trigger_finish(&t);
    for (int i = 0; i < QUEUE_SIZE; i++)
        get_ok(q);
    cr_assert_eq(ps_queue_qsize(q), 0);
    cr_assert_eq(ps_queue_get(q, &x, false, PS_FOREVER), EAGAIN);
    cr_assert_eq(ps_queue_get(q, &x, true, 0.01), ETIMEDOUT);
    /* blocking get, released by a put in another thread */
    trigger_start(&t, q, &q->_getters, OP_PUT);
    cr_assert_eq(get_ok(q), 999);
    trigger_finish(&t);
    trigger_start(&t, q, &q->_getters, OP_PUT);
    x = NULL;
    cr_assert_eq(ps_queue_get(q, &x, true, 10), 0);
    cr_assert_eq(V(x), 999);
    trigger_finish(&t);
    /* leave the unfinished count at 0 for the next round */
    while (ps_queue_task_done(q) == 0)
        ;
}

static void test_basic(enum kind k)
{
    ps_queue_t q;
    make(&q, k, QUEUE_SIZE);
    basic_queue_test(&q, k);
    basic_queue_test(&q, k);    /* same instance reused */
    cr_assert_eq(ps_queue_destroy(&q), 0);
}

Test(queue, basic_queue) { test_basic(FIFO); }
Test(queue, basic_lifoqueue) { test_basic(LIFO); }
Test(queue, basic_priorityqueue) { test_basic(PRIO); }

/* ---- task_done / join ---- */

struct worker {
    ps_queue_t *q;
    intptr_t *cum;
    pthread_mutex_t *cumlock;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (;;) {
        intptr_t x = get_ok(w->q);
        if (x < 0) {
            ps_queue_task_done(w->q);
            return NULL;
        }
        pthread_mutex_lock(w->cumlock);
        *w->cum += x;
        pthread_mutex_unlock(w->cumlock);
        ps_queue_task_done(w->q);
    }
}

static void queue_join_test(ps_queue_t *q)
{
    intptr_t cum = 0;
    pthread_mutex_t cumlock = PTHREAD_MUTEX_INITIALIZER;
    struct worker w = { q, &cum, &cumlock };
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, worker_main, &w), 0);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(ps_queue_put(q, I(i), true, PS_FOREVER), 0);
    cr_assert_eq(ps_queue_join(q), 0);
    pthread_mutex_lock(&cumlock);
    cr_assert_eq(cum, 4950, "join did not block until all tasks were done");
    pthread_mutex_unlock(&cumlock);
    for (int i = 0; i < 2; i++)
        ps_queue_put(q, I(-1), true, PS_FOREVER);
    cr_assert_eq(ps_queue_join(q), 0);      /* join twice */
    for (int i = 0; i < 2; i++)
        join_thread(th[i]);
}

Test(queue, queue_task_done)
{
    for (int k = 0; k < 3; k++) {
        ps_queue_t q;
        make(&q, kinds[k], 0);
        errno = 1234;
        cr_assert_eq(ps_queue_task_done(&q), EOVERFLOW);
        cr_assert_eq(errno, 1234);
        ps_queue_put_nowait(&q, I(1));
        cr_assert_eq(ps_queue_task_done(&q), 0);
        cr_assert_eq(ps_queue_task_done(&q), EOVERFLOW);
        ps_queue_destroy(&q);
    }
}

Test(queue, queue_join)
{
    for (int k = 0; k < 3; k++) {
        ps_queue_t q;
        make(&q, kinds[k], 0);
        queue_join_test(&q);
        queue_join_test(&q);
        cr_assert_eq(ps_queue_task_done(&q), EOVERFLOW);
        cr_assert_eq(ps_queue_destroy(&q), 0);
    }
}

Test(queue, nowait)
{
    for (int k = 0; k < 3; k++) {
        ps_queue_t q;
        void *x;
        make(&q, kinds[k], QUEUE_SIZE);
        for (int i = 0; i < QUEUE_SIZE; i++)
            cr_assert_eq(ps_queue_put_nowait(&q, I(1)), 0);
        cr_assert_eq(ps_queue_put_nowait(&q, I(1)), EAGAIN);
        cr_assert_eq(ps_queue_put(&q, I(1), false, 5.0), EAGAIN);  /* timeout ignored */
        for (int i = 0; i < QUEUE_SIZE; i++)
            cr_assert_eq(ps_queue_get_nowait(&q, &x), 0);
        cr_assert_eq(ps_queue_get_nowait(&q, &x), EAGAIN);
        cr_assert_eq(ps_queue_get(&q, &x, false, 5.0), EAGAIN);
        ps_queue_destroy(&q);
    }
}

/* ---- timing: lower bounds only ---- */

Test(queue, timed_get_and_put_wait_at_least_timeout)
{
    ps_queue_t q;
    void *x;
    make(&q, FIFO, 1);
    double t0 = now();
    cr_assert_eq(ps_queue_get(&q, &x, true, 0.05), ETIMEDOUT);
    cr_assert_geq(now() - t0, 0.05);
    ps_queue_put_nowait(&q, I(1));
    t0 = now();
    cr_assert_eq(ps_queue_put(&q, I(2), true, 0.05), ETIMEDOUT);
    cr_assert_geq(now() - t0, 0.05);
    cr_assert_eq(ps_queue_qsize(&q), 1);
    cr_assert_eq(ps_queue_put(&q, I(2), true, 0), ETIMEDOUT);
    cr_assert_eq(ps_queue_get(&q, &x, true, 0), 0);
    cr_assert_eq(ps_queue_get(&q, &x, true, 0), ETIMEDOUT);
    ps_queue_destroy(&q);
}

/* ---- bad input ---- */

Test(queue, invalid_arguments_are_einval_and_keep_errno)
{
    ps_queue_t q;
    void *x = I(7);
    errno = 4321;
    cr_assert_eq(ps_queue_init(NULL, 0), EINVAL);
    cr_assert_eq(ps_lifoqueue_init(NULL, 0), EINVAL);
    cr_assert_eq(ps_priorityqueue_init(&q, 0, NULL), EINVAL);
    cr_assert_eq(ps_priorityqueue_init(NULL, 0, cmp_int), EINVAL);
    make(&q, FIFO, 2);
    cr_assert_eq(ps_queue_put(NULL, x, true, PS_FOREVER), EINVAL);
    cr_assert_eq(ps_queue_get(NULL, &x, true, PS_FOREVER), EINVAL);
    cr_assert_eq(ps_queue_get(&q, NULL, true, PS_FOREVER), EINVAL);
    cr_assert_eq(ps_queue_put(&q, x, true, NAN), EINVAL);
    cr_assert_eq(ps_queue_qsize(&q), 0);
    ps_queue_put_nowait(&q, x);
    cr_assert_eq(ps_queue_get(&q, &x, true, NAN), EINVAL);
    cr_assert_eq(ps_queue_qsize(&q), 1, "EINVAL must change nothing");
    cr_assert_eq(ps_queue_get_nowait(&q, NULL), EINVAL);
    cr_assert_eq(ps_queue_task_done(NULL), EINVAL);
    cr_assert_eq(ps_queue_join(NULL), EINVAL);
    cr_assert_eq(ps_queue_shutdown(NULL, false), EINVAL);
    cr_assert_eq(ps_queue_destroy(NULL), EINVAL);
    cr_assert_eq(ps_queue_qsize(NULL), 0);
    cr_assert(ps_queue_empty(NULL));
    cr_assert_not(ps_queue_full(NULL));
    cr_assert_eq(errno, 4321);
    ps_queue_free(NULL);
    cr_assert_eq(ps_queue_destroy(&q), 0);

    errno = 0;
    cr_assert_null(ps_priorityqueue_new(4, NULL));
    cr_assert_eq(errno, EINVAL);
}

Test(queue, new_and_free)
{
    ps_queue_t *a = ps_queue_new(0), *b = ps_lifoqueue_new(3),
               *c = ps_priorityqueue_new(0, cmp_int);
    cr_assert(a && b && c);
    cr_assert_eq(ps_queue_put_nowait(a, I(1)), 0);   /* items are the caller's */
    ps_queue_free(a);
    ps_queue_free(b);
    ps_queue_free(c);
}

static void *blocked_get(void *arg)
{
    void *x;
    return I(ps_queue_get(arg, &x, true, PS_FOREVER));
}

Test(queue, destroy_while_waited_on_is_ebusy)
{
    ps_queue_t *q = ps_queue_new(0);
    pthread_t th;
    void *rc;
    cr_assert_eq(pthread_create(&th, NULL, blocked_get, q), 0);
    wait_sleepers(&q->_getters, 1);
    cr_assert_eq(ps_queue_destroy(q), EBUSY);
    errno = 0;
    ps_queue_free(q);
    cr_assert_eq(errno, EBUSY);
    cr_assert_eq(ps_queue_put_nowait(q, I(5)), 0, "queue must be untouched");
    pthread_join(th, &rc);
    cr_assert_eq(V(rc), 0);
    cr_assert_eq(ps_queue_destroy(q), 0);
    free(q);
}

/* ---- orders, growth, stability ---- */

Test(queue, unbounded_growth_keeps_order)
{
    enum { N = 100000 };
    for (int k = 0; k < 3; k++) {
        ps_queue_t q;
        make(&q, kinds[k], 0);
        for (int round = 0; round < 2; round++) {
            /* interleave to wrap the ring before it grows */
            for (intptr_t i = 0; i < 10; i++)
                ps_queue_put_nowait(&q, I(i));
            for (intptr_t i = 0; i < 10; i++)
                get_ok(&q);
            for (intptr_t i = 0; i < N; i++)
                cr_assert_eq(ps_queue_put_nowait(&q, I(kinds[k] == PRIO ? N - 1 - i : i)), 0);
            cr_assert_eq(ps_queue_qsize(&q), N);
            cr_assert_not(ps_queue_full(&q));
            for (intptr_t i = 0; i < N; i++) {
                intptr_t want = kinds[k] == LIFO ? N - 1 - i : i;
                intptr_t got = get_ok(&q);
                if (got != want)
                    cr_assert_fail("kind %d: item %ld is %ld", k, (long)i, (long)got);
            }
        }
        ps_queue_destroy(&q);
    }
}

struct keyed { int key, seq; };

static int cmp_key(const void *a, const void *b)
{
    const struct keyed *x = a, *y = b;
    return (x->key > y->key) - (x->key < y->key);
}

Test(queue, priority_is_stable_for_equal_keys)
{
    enum { N = 5000 };
    static struct keyed items[N];
    ps_queue_t q;
    cr_assert_eq(ps_priorityqueue_init(&q, 0, cmp_key), 0);
    srand(42);
    for (int i = 0; i < N; i++) {
        items[i] = (struct keyed){ rand() % 7, i };
        ps_queue_put_nowait(&q, &items[i]);
    }
    const struct keyed *prev = NULL;
    for (int i = 0; i < N; i++) {
        void *x;
        cr_assert_eq(ps_queue_get_nowait(&q, &x), 0);
        const struct keyed *cur = x;
        if (prev) {
            cr_assert_leq(prev->key, cur->key);
            if (prev->key == cur->key)
                cr_assert_lt(prev->seq, cur->seq, "equal keys left out of insertion order");
        }
        prev = cur;
    }
    ps_queue_destroy(&q);
}

/* ---- shutdown (Python 3.13) ---- */

Test(queue, shutdown_empty)
{
    for (int k = 0; k < 3; k++) {
        ps_queue_t q;
        void *x;
        make(&q, kinds[k], 0);
        cr_assert_eq(ps_queue_shutdown(&q, false), 0);
        cr_assert_eq(ps_queue_put(&q, I(1), true, PS_FOREVER), ESHUTDOWN);
        cr_assert_eq(ps_queue_get(&q, &x, true, PS_FOREVER), ESHUTDOWN);
        ps_queue_destroy(&q);
    }
}

Test(queue, shutdown_nonempty)
{
    for (int k = 0; k < 3; k++) {
        ps_queue_t q;
        void *x;
        make(&q, kinds[k], 0);
        ps_queue_put_nowait(&q, I(1));
        ps_queue_shutdown(&q, false);
        cr_assert_eq(ps_queue_get(&q, &x, true, PS_FOREVER), 0);
        cr_assert_eq(ps_queue_get(&q, &x, true, PS_FOREVER), ESHUTDOWN);
        ps_queue_destroy(&q);
    }
}

Test(queue, shutdown_immediate)
{
    for (int k = 0; k < 3; k++) {
        ps_queue_t q;
        void *x;
        make(&q, kinds[k], 0);
        ps_queue_put_nowait(&q, I(1));
        ps_queue_shutdown(&q, true);
        cr_assert_eq(ps_queue_get(&q, &x, true, PS_FOREVER), ESHUTDOWN);
        cr_assert_eq(ps_queue_qsize(&q), 0);
        ps_queue_destroy(&q);
    }
}

Test(queue, shutdown_allowed_transitions)
{
    ps_queue_t q;
    void *x;
    make(&q, FIFO, 0);
    ps_queue_put_nowait(&q, I(1));
    cr_assert_eq(ps_queue_shutdown(&q, false), 0);
    cr_assert_eq(ps_queue_shutdown(&q, false), 0);
    cr_assert_eq(ps_queue_qsize(&q), 1);
    cr_assert_eq(ps_queue_shutdown(&q, true), 0);
    cr_assert_eq(ps_queue_qsize(&q), 0);
    cr_assert_eq(ps_queue_shutdown(&q, false), 0);     /* no way back */
    cr_assert_eq(ps_queue_put_nowait(&q, I(1)), ESHUTDOWN);
    cr_assert_eq(ps_queue_get_nowait(&q, &x), ESHUTDOWN);
    ps_queue_destroy(&q);
}

static void shutdown_all_methods_in_one_thread(bool immediate)
{
    for (int k = 0; k < 3; k++) {
        ps_queue_t q;
        void *x;
        make(&q, kinds[k], 2);
        ps_queue_put(&q, I('L'), true, PS_FOREVER);
        ps_queue_put_nowait(&q, I('O'));
        ps_queue_shutdown(&q, immediate);
        cr_assert_eq(ps_queue_put(&q, I('E'), true, PS_FOREVER), ESHUTDOWN);
        cr_assert_eq(ps_queue_put_nowait(&q, I('W')), ESHUTDOWN);
        if (immediate) {
            cr_assert_eq(ps_queue_get(&q, &x, true, PS_FOREVER), ESHUTDOWN);
            cr_assert_eq(ps_queue_get_nowait(&q, &x), ESHUTDOWN);
            cr_assert_eq(ps_queue_task_done(&q), EOVERFLOW);
            cr_assert_eq(ps_queue_join(&q), 0);
        } else {
            intptr_t a = get_ok(&q);
            cr_assert_eq(ps_queue_task_done(&q), 0);
            intptr_t b = get_ok(&q);
            cr_assert_eq(ps_queue_task_done(&q), 0);
            cr_assert_eq(a + b, 'L' + 'O');
            cr_assert_eq(ps_queue_join(&q), 0);
            cr_assert_eq(ps_queue_get(&q, &x, true, PS_FOREVER), ESHUTDOWN);
            cr_assert_eq(ps_queue_get_nowait(&q, &x), ESHUTDOWN);
            cr_assert_eq(ps_queue_get(&q, &x, true, 1.0), ESHUTDOWN);
        }
        ps_queue_destroy(&q);
    }
}

Test(queue, shutdown_all_methods_in_one_thread) { shutdown_all_methods_in_one_thread(false); }
Test(queue, shutdown_immediate_all_methods_in_one_thread) { shutdown_all_methods_in_one_thread(true); }

/* Threads that call one blocking method and record its return code. */
struct call {
    ps_queue_t *q;
    enum { C_GET, C_PUT, C_GET_TASK_DONE, C_JOIN } what;
    int rc;
    pthread_t thread;
};

static void *call_main(void *arg)
{
    struct call *c = arg;
    void *x;
    switch (c->what) {
    case C_GET: c->rc = ps_queue_get(c->q, &x, true, PS_FOREVER); break;
    case C_PUT: c->rc = ps_queue_put(c->q, I('E'), true, PS_FOREVER); break;
    case C_GET_TASK_DONE:
        c->rc = ps_queue_get(c->q, &x, true, PS_FOREVER);
        if (c->rc == 0)
            c->rc = ps_queue_task_done(c->q);
        break;
    case C_JOIN: c->rc = ps_queue_join(c->q); break;
    }
    return NULL;
}

static void call_start(struct call *c, ps_queue_t *q, int what)
{
    c->q = q;
    c->what = what;
    c->rc = -1;
    cr_assert_eq(pthread_create(&c->thread, NULL, call_main, c), 0);
}

static int call_finish(struct call *c)
{
    join_thread(c->thread);
    return c->rc;
}

/* Getters blocked on an empty queue: two items arrive, then shutdown releases
 * the rest. */
static void shutdown_blocked_get(bool immediate)
{
    for (int k = 0; k < 3; k++) {
        ps_queue_t q;
        struct call c[3];
        make(&q, kinds[k], 2);
        for (int i = 0; i < 3; i++)
            call_start(&c[i], &q, C_GET);
        wait_sleepers(&q._getters, 3);
        ps_queue_put_nowait(&q, I('Y'));
        ps_queue_put_nowait(&q, I('D'));
        ps_queue_shutdown(&q, immediate);
        int ok = 0, shut = 0;
        for (int i = 0; i < 3; i++) {
            int rc = call_finish(&c[i]);
            ok += rc == 0;
            shut += rc == ESHUTDOWN;
        }
        /* the two items went to two getters, or (immediate) maybe got discarded */
        cr_assert_eq(ok + shut, 3);
        if (!immediate)
            cr_assert_eq(ok, 2);
        cr_assert_eq(ps_queue_qsize(&q), 0);
        ps_queue_destroy(&q);
    }
}

Test(queue, shutdown_releases_blocked_getters) { shutdown_blocked_get(false); }
Test(queue, shutdown_immediate_releases_blocked_getters) { shutdown_blocked_get(true); }

/* _shutdown_get: a full queue of two is shut down before the getters run. */
static void shutdown_get(bool immediate)
{
    for (int k = 0; k < 3; k++) {
        ps_queue_t q;
        struct call c[3];
        int n = immediate ? 2 : 3;
        make(&q, kinds[k], 2);
        ps_queue_put_nowait(&q, I('Y'));
        ps_queue_put_nowait(&q, I('D'));
        ps_queue_shutdown(&q, immediate);
        for (int i = 0; i < n; i++)
            call_start(&c[i], &q, C_GET);
        int ok = 0, shut = 0;
        for (int i = 0; i < n; i++) {
            int rc = call_finish(&c[i]);
            ok += rc == 0;
            shut += rc == ESHUTDOWN;
        }
        cr_assert_eq(ok, immediate ? 0 : 2);
        cr_assert_eq(shut, immediate ? 2 : 1);
        ps_queue_destroy(&q);
    }
}

Test(queue, shutdown_get) { shutdown_get(false); }
Test(queue, shutdown_immediate_get) { shutdown_get(true); }

/* Blocked putters on a full queue: shutdown releases them with ESHUTDOWN. */
static void shutdown_put(bool immediate)
{
    for (int k = 0; k < 3; k++) {
        ps_queue_t q;
        struct call c[2];
        make(&q, kinds[k], 2);
        ps_queue_put_nowait(&q, I('Y'));
        ps_queue_put_nowait(&q, I('D'));
        for (int i = 0; i < 2; i++)
            call_start(&c[i], &q, C_PUT);
        wait_sleepers(&q._putters, 2);
        ps_queue_shutdown(&q, immediate);
        for (int i = 0; i < 2; i++)
            cr_assert_eq(call_finish(&c[i]), ESHUTDOWN);
        cr_assert_eq(ps_queue_qsize(&q), immediate ? 0u : 2u);
        ps_queue_destroy(&q);
    }
}

Test(queue, shutdown_put) { shutdown_put(false); }
Test(queue, shutdown_immediate_put) { shutdown_put(true); }

static void shutdown_join(bool immediate)
{
    for (int k = 0; k < 3; k++) {
        ps_queue_t q;
        struct call j[2], g;
        make(&q, kinds[k], 0);
        ps_queue_put_nowait(&q, I('Y'));
        for (int i = 0; i < 2; i++)
            call_start(&j[i], &q, C_JOIN);
        wait_joiners(&q, 2);
        if (!immediate)
            call_start(&g, &q, C_GET_TASK_DONE);
        ps_queue_shutdown(&q, immediate);
        if (!immediate)
            cr_assert_eq(call_finish(&g), 0);
        for (int i = 0; i < 2; i++)
            cr_assert_eq(call_finish(&j[i]), 0);
        ps_queue_destroy(&q);
    }
}

Test(queue, shutdown_join) { shutdown_join(false); }
Test(queue, shutdown_immediate_join) { shutdown_join(true); }

static void shutdown_put_join(bool immediate)
{
    for (int k = 0; k < 3; k++) {
        ps_queue_t q;
        struct call j;
        void *x;
        make(&q, kinds[k], 2);
        ps_queue_put_nowait(&q, I('Y'));
        call_start(&j, &q, C_JOIN);
        wait_joiners(&q, 1);
        cr_assert_eq(unfinished(&q, kinds[k]), 1);
        ps_queue_shutdown(&q, immediate);
        cr_assert_eq(ps_queue_put(&q, I('E'), true, PS_FOREVER), ESHUTDOWN);
        if (immediate) {
            cr_assert_eq(ps_queue_get_nowait(&q, &x), ESHUTDOWN);
        } else {
            cr_assert_eq(get_ok(&q), 'Y');
            cr_assert_eq(ps_queue_task_done(&q), 0);
        }
        cr_assert_eq(call_finish(&j), 0);
        ps_queue_destroy(&q);
    }
}

Test(queue, shutdown_put_join) { shutdown_put_join(false); }
Test(queue, shutdown_immediate_put_join) { shutdown_put_join(true); }

Test(queue, shutdown_get_task_done_join)
{
    for (int k = 0; k < 3; k++) {
        ps_queue_t q;
        struct call c[4];
        make(&q, kinds[k], 2);
        ps_queue_put_nowait(&q, I('Y'));
        ps_queue_put_nowait(&q, I('D'));
        cr_assert_eq(unfinished(&q, kinds[k]), ps_queue_qsize(&q));
        call_start(&c[0], &q, C_GET_TASK_DONE);
        call_start(&c[1], &q, C_GET_TASK_DONE);
        call_start(&c[2], &q, C_JOIN);
        call_start(&c[3], &q, C_JOIN);
        ps_queue_shutdown(&q, false);
        for (int i = 0; i < 4; i++)
            cr_assert_eq(call_finish(&c[i]), 0, "thread %d", i);
        ps_queue_destroy(&q);
    }
}

Test(queue, shutdown_pending_get)
{
    for (int k = 0; k < 3; k++) {
        ps_queue_t q;
        struct call g;
        make(&q, kinds[k], 0);
        call_start(&g, &q, C_GET);
        wait_sleepers(&q._getters, 1);
        ps_queue_shutdown(&q, false);
        cr_assert_eq(call_finish(&g), ESHUTDOWN);
        ps_queue_destroy(&q);
    }
}

/* _shutdown_all_methods_in_many_threads: writers put until shut down, readers
 * get + task_done until shut down, one thread shuts down midway, (immediate)
 * joiners wait. Every item put is either got or discarded, exactly once. */
struct many {
    ps_queue_t *q;
    long puts, gets;            /* totals, atomic */
    long trigger_at;
    int shut_writer;            /* writers that saw ESHUTDOWN */
    int shut_reader;
    bool immediate;
};

static void *many_writer(void *arg)
{
    struct many *m = arg;
    for (intptr_t i = 0;; i++) {
        int rc = ps_queue_put(m->q, I(i), true, PS_FOREVER);
        if (rc == ESHUTDOWN) {
            __atomic_fetch_add(&m->shut_writer, 1, __ATOMIC_RELAXED);
            return NULL;
        }
        cr_assert_eq(rc, 0);
        if (__atomic_add_fetch(&m->puts, 1, __ATOMIC_RELAXED) == m->trigger_at)
            ps_queue_shutdown(m->q, m->immediate);
    }
}

static void *many_reader(void *arg)
{
    struct many *m = arg;
    for (;;) {
        void *x;
        int rc = ps_queue_get(m->q, &x, true, PS_FOREVER);
        if (rc == ESHUTDOWN) {
            __atomic_fetch_add(&m->shut_reader, 1, __ATOMIC_RELAXED);
            return NULL;
        }
        cr_assert_eq(rc, 0);
        __atomic_fetch_add(&m->gets, 1, __ATOMIC_RELAXED);
        int td = ps_queue_task_done(m->q);
        /* an immediate shutdown may already have counted this item as done */
        cr_assert(td == 0 || (m->immediate && td == EOVERFLOW));
    }
}

static void *many_joiner(void *arg)
{
    return I(ps_queue_join(arg));
}

static void shutdown_all_methods_in_many_threads(bool immediate)
{
    enum { WRITERS = 4, READERS = 6, JOINERS = 2 };
    for (int k = 0; k < 3; k++) {
        ps_queue_t q;
        make(&q, kinds[k], 64);
        struct many m = { .q = &q, .trigger_at = 20000, .immediate = immediate };
        pthread_t w[WRITERS], r[READERS], j[JOINERS];
        for (int i = 0; i < READERS; i++)
            pthread_create(&r[i], NULL, many_reader, &m);
        for (int i = 0; i < WRITERS; i++)
            pthread_create(&w[i], NULL, many_writer, &m);
        for (int i = 0; i < JOINERS; i++)
            pthread_create(&j[i], NULL, many_joiner, &q);
        for (int i = 0; i < WRITERS; i++)
            join_thread(w[i]);
        for (int i = 0; i < READERS; i++)
            join_thread(r[i]);
        for (int i = 0; i < JOINERS; i++)
            join_thread(j[i]);
        cr_assert_eq(m.shut_writer, WRITERS);
        cr_assert_eq(m.shut_reader, READERS);
        cr_assert_geq(m.puts, m.trigger_at);
        if (immediate)
            cr_assert_leq(m.gets, m.puts);
        else
            cr_assert_eq(m.gets, m.puts, "a plain shutdown lets readers drain");
        cr_assert(ps_queue_empty(&q));
        cr_assert_eq(ps_queue_destroy(&q), 0);
    }
}

Test(queue, shutdown_all_methods_in_many_threads) { shutdown_all_methods_in_many_threads(false); }
Test(queue, shutdown_immediate_all_methods_in_many_threads)
{
    shutdown_all_methods_in_many_threads(true);
}

/* ---- test_many_threads: 4 producers x 4 consumers x 100k, exactly once ---- */

enum { MT_PRODUCERS = 4, MT_CONSUMERS = 4, MT_ITEMS = 100000 };

struct mt {
    ps_queue_t *q;
    unsigned char *seen;
    int id;
    bool order_ok;
};

static void *mt_producer(void *arg)
{
    struct mt *p = arg;
    for (intptr_t i = 0; i < MT_ITEMS; i++)
        if (ps_queue_put(p->q, I(p->id * MT_ITEMS + i + 1), true, PS_FOREVER) != 0)
            return I(1);
    return NULL;
}

static void *mt_consumer(void *arg)
{
    struct mt *c = arg;
    intptr_t last[MT_PRODUCERS];
    memset(last, 0, sizeof last);
    c->order_ok = true;
    for (;;) {
        intptr_t x = get_ok(c->q);
        if (x == 0)
            return NULL;
        __atomic_fetch_add(&c->seen[x - 1], 1, __ATOMIC_RELAXED);
        intptr_t p = (x - 1) / MT_ITEMS;
        if (x <= last[p])       /* FIFO: one producer's items keep their order */
            c->order_ok = false;
        last[p] = x;
    }
}

static void many_threads(size_t maxsize)
{
    ps_queue_t q;
    make(&q, FIFO, maxsize);
    unsigned char *seen = calloc(MT_PRODUCERS * MT_ITEMS, 1);
    struct mt p[MT_PRODUCERS], c[MT_CONSUMERS];
    pthread_t pt[MT_PRODUCERS], ct[MT_CONSUMERS];
    for (int i = 0; i < MT_CONSUMERS; i++) {
        c[i] = (struct mt){ &q, seen, i, true };
        cr_assert_eq(pthread_create(&ct[i], NULL, mt_consumer, &c[i]), 0);
    }
    for (int i = 0; i < MT_PRODUCERS; i++) {
        p[i] = (struct mt){ &q, seen, i, true };
        cr_assert_eq(pthread_create(&pt[i], NULL, mt_producer, &p[i]), 0);
    }
    for (int i = 0; i < MT_PRODUCERS; i++) {
        void *rc;
        pthread_join(pt[i], &rc);
        cr_assert_null(rc);
    }
    for (int i = 0; i < MT_CONSUMERS; i++)
        ps_queue_put(&q, I(0), true, PS_FOREVER);      /* one stop sign each */
    for (int i = 0; i < MT_CONSUMERS; i++) {
        join_thread(ct[i]);
        cr_assert(c[i].order_ok, "consumer %d saw a producer's items out of order", i);
    }
    for (long i = 0; i < (long)MT_PRODUCERS * MT_ITEMS; i++)
        if (seen[i] != 1)
            cr_assert_fail("item %ld arrived %d times", i + 1, seen[i]);
    cr_assert_eq(ps_queue_qsize(&q), 0);
    cr_assert_eq(ps_queue_destroy(&q), 0);
    free(seen);
}

Test(queue, many_threads) { many_threads(0); }
Test(queue, many_threads_bounded) { many_threads(64); }
Test(queue, many_threads_bounded_odd) { many_threads(3); }
Test(queue, many_threads_bounded_large) { many_threads(70000); }   /* segmented, bounded */

/* ---- the FIFO's two structures (lib/fifo.c): a ring of exactly maxsize
 * slots for maxsize <= 65536, linked segments of 1023 slots otherwise ---- */

/* Fills to exactly maxsize, then wraps many laps in steps of `step` items,
 * checking order, qsize, full and empty all along. */
static void fifo_laps(size_t maxsize, size_t step, size_t items)
{
    ps_queue_t q;
    void *x;
    make(&q, FIFO, maxsize);
    intptr_t next_in = 1, next_out = 1;
    for (size_t i = 0; i < maxsize; i++)
        cr_assert_eq(ps_queue_put_nowait(&q, I(next_in++)), 0);
    cr_assert(ps_queue_full(&q));
    cr_assert_eq(ps_queue_qsize(&q), maxsize);
    cr_assert_eq(ps_queue_put_nowait(&q, I(0)), EAGAIN, "maxsize %zu", maxsize);
    cr_assert_eq(ps_queue_put(&q, I(0), true, 0.001), ETIMEDOUT);
    while ((size_t)next_in <= items) {
        for (size_t i = 0; i < step; i++) {
            cr_assert_eq(ps_queue_get_nowait(&q, &x), 0);
            cr_assert_eq(V(x), next_out++);
        }
        cr_assert_eq(ps_queue_qsize(&q), maxsize - step);
        for (size_t i = 0; i < step; i++)
            cr_assert_eq(ps_queue_put_nowait(&q, I(next_in++)), 0);
        cr_assert_eq(ps_queue_put_nowait(&q, I(0)), EAGAIN);
    }
    while (next_out < next_in) {
        cr_assert_eq(ps_queue_get_nowait(&q, &x), 0);
        cr_assert_eq(V(x), next_out++);
    }
    cr_assert(ps_queue_empty(&q));
    cr_assert_eq(ps_queue_get_nowait(&q, &x), EAGAIN);
    cr_assert_eq(ps_queue_get(&q, &x, true, 0.001), ETIMEDOUT);
    for (intptr_t i = 1; i < next_in; i++)
        cr_assert_eq(ps_queue_task_done(&q), 0);
    cr_assert_eq(ps_queue_task_done(&q), EOVERFLOW);
    cr_assert_eq(ps_queue_join(&q), 0);
    cr_assert_eq(ps_queue_destroy(&q), 0);
}

Test(queue, fifo_ring_any_maxsize_wraps)
{
    fifo_laps(1, 1, 5000);
    fifo_laps(3, 1, 5000);
    fifo_laps(3, 2, 5000);
    fifo_laps(1000, 7, 20000);
    fifo_laps(1024, 1024, 20000);
    fifo_laps(65536, 999, 200000);      /* the largest ring */
}

Test(queue, fifo_segments_bounded_wraps)
{
    fifo_laps(65537, 1000, 200000);
    fifo_laps(100000, 1023, 300000);
}

/* Unbounded across many segments, with task_done counted across them. */
Test(queue, fifo_segments_count_items_and_tasks)
{
    enum { N = 5000 };          /* about 5 segments */
    ps_queue_t q;
    void *x;
    make(&q, FIFO, 0);
    for (int round = 0; round < 3; round++) {
        for (intptr_t i = 0; i < N; i++) {
            cr_assert_eq(ps_queue_put_nowait(&q, I(i + 1)), 0);
            cr_assert_eq(ps_queue_qsize(&q), (size_t)i + 1);
        }
        cr_assert_not(ps_queue_full(&q));
        for (intptr_t i = 0; i < N; i++) {
            cr_assert_eq(ps_queue_get_nowait(&q, &x), 0);
            cr_assert_eq(V(x), i + 1);
            cr_assert_eq(ps_queue_qsize(&q), (size_t)(N - 1 - i));
        }
        cr_assert_eq(unfinished(&q, FIFO), (size_t)N);
        for (int i = 0; i < N; i++)
            cr_assert_eq(ps_queue_task_done(&q), 0);
        cr_assert_eq(ps_queue_task_done(&q), EOVERFLOW);
        cr_assert_eq(ps_queue_join(&q), 0);
    }
    cr_assert_eq(ps_queue_destroy(&q), 0);
}

/* An immediate shutdown empties a ring or several segments and counts the
 * removed items as done; gets and puts then fail, and qsize stays 0. */
Test(queue, fifo_shutdown_immediate_empties_every_structure)
{
    static const size_t sizes[] = { 1, 5, 1024, 70000, 0 };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k] ? (sizes[k] < 3000 ? sizes[k] : 3000) : 3000;
        ps_queue_t q;
        void *x;
        make(&q, FIFO, sizes[k]);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(ps_queue_put_nowait(&q, I((intptr_t)i + 1)), 0);
        cr_assert_eq(ps_queue_get_nowait(&q, &x), 0);
        cr_assert_eq(ps_queue_task_done(&q), 0);
        cr_assert_eq(ps_queue_shutdown(&q, true), 0);
        cr_assert_eq(ps_queue_qsize(&q), 0, "maxsize %zu", sizes[k]);
        cr_assert_eq(ps_queue_get_nowait(&q, &x), ESHUTDOWN);
        cr_assert_eq(ps_queue_get(&q, &x, true, PS_FOREVER), ESHUTDOWN);
        cr_assert_eq(ps_queue_put_nowait(&q, I(1)), ESHUTDOWN);
        cr_assert_eq(ps_queue_join(&q), 0);
        cr_assert_eq(ps_queue_task_done(&q), EOVERFLOW);
        cr_assert_eq(ps_queue_shutdown(&q, true), 0);     /* again: harmless */
        cr_assert_eq(ps_queue_destroy(&q), 0);
    }
}

/* A plain shutdown then lets the gets drain, also across segments. */
Test(queue, fifo_shutdown_then_drain_across_segments)
{
    ps_queue_t q;
    void *x;
    make(&q, FIFO, 0);
    for (intptr_t i = 0; i < 2500; i++)
        cr_assert_eq(ps_queue_put_nowait(&q, I(i + 1)), 0);
    cr_assert_eq(ps_queue_shutdown(&q, false), 0);
    cr_assert_eq(ps_queue_put_nowait(&q, I(1)), ESHUTDOWN);
    for (intptr_t i = 0; i < 2500; i++) {
        cr_assert_eq(ps_queue_get(&q, &x, true, PS_FOREVER), 0);
        cr_assert_eq(V(x), i + 1);
    }
    cr_assert_eq(ps_queue_get(&q, &x, true, PS_FOREVER), ESHUTDOWN);
    cr_assert_eq(ps_queue_shutdown(&q, true), 0);       /* immediate may follow */
    cr_assert_eq(ps_queue_qsize(&q), 0);
    cr_assert_eq(ps_queue_destroy(&q), 0);
}

/* Sleepers on both words: a put wakes every getter asleep on the empty
 * queue, one gets the item, the others sleep again until more come. */
static void *get_one_item(void *arg)
{
    void *x = NULL;
    int rc = ps_queue_get(arg, &x, true, PS_FOREVER);
    return rc ? I(-rc) : x;
}

Test(queue, fifo_many_sleepers_each_get_one)
{
    enum { N = 6 };
    for (int bounded = 0; bounded < 2; bounded++) {
        ps_queue_t q;
        pthread_t th[N];
        make(&q, FIFO, bounded ? 2 : 0);
        for (int i = 0; i < N; i++)
            cr_assert_eq(pthread_create(&th[i], NULL, get_one_item, &q), 0);
        wait_sleepers(&q._getters, N);
        intptr_t sum = 0;
        for (intptr_t i = 1; i <= N; i++) {
            cr_assert_eq(ps_queue_put(&q, I(i), true, PS_FOREVER), 0);
            sum += i;
        }
        for (int i = 0; i < N; i++) {
            void *rc;
            pthread_join(th[i], &rc);
            cr_assert_gt(V(rc), 0);
            sum -= V(rc);
        }
        cr_assert_eq(sum, 0, "every item went to exactly one getter");
        cr_assert_eq(ps_queue_destroy(&q), 0);
    }
}

/* ---- wait, then destroy: the waker must not touch the queue afterwards ----
 *
 * Each round's queue lives alone on a fresh page; the waker is the persistent
 * racer of helpers.h, in its two phases (apart, together). The main thread
 * waits (join, get...), destroys the queue as soon as its wait is over, and the
 * moment destroy returns 0 makes the page PROT_NONE: a waker still touching the
 * queue on another thread faults at once. */

enum { RACE_ROUNDS = 2000, RACE_MIN_ROUNDS = 500 };     /* per phase */
#define RACE_BUDGET 0.7         /* seconds per phase, past RACE_MIN_ROUNDS */

/* A fresh page holding only a queue of the round's kind. */
static ps_queue_t *race_queue(unsigned round, size_t maxsize)
{
    ps_queue_t *q = page_alloc();
    make(q, kinds[round % 3], maxsize);
    return q;
}

/* The wait is over: destroy at once, seal the page, and unmap it once the
 * waker is done with its round. EBUSY only while a woken blocking caller is
 * still leaving: sleep, don't spin, or an idle waker never gets the CPU. */
static void race_destroy(struct racer *r, ps_queue_t *q, unsigned round)
{
    int rc;
    double end = now() + 5.0;
    while ((rc = ps_queue_destroy(q)) == EBUSY && now() < end)
        sleep_s(0.00001);
    cr_assert_eq(rc, 0, "round %u: destroy returned %d", round, rc);
    cr_assert_eq(mprotect(q, OBJ_PAGE, PROT_NONE), 0);
    sem_wait_any(&r->done);
    page_free(q);
}

/* Both phases: RACE_ROUNDS rounds each, or fewer past RACE_MIN_ROUNDS once the
 * phase's time budget is spent (a loaded VM). */
static void race(void (*part)(struct racer *, void *, unsigned),
                 void (*round_fn)(struct racer *, unsigned))
{
    for (int together = 0; together < 2; together++) {
        struct racer r;
        racer_start(&r, part, together);
        double end = now() + RACE_BUDGET;
        for (unsigned round = 1; round <= RACE_ROUNDS; round++) {
            if (round > RACE_MIN_ROUNDS && now() > end)
                break;
            round_fn(&r, round);
        }
        int errors = racer_stop(&r);
        cr_assert_eq(errors, 0, "the waker got %d unexpected return codes", errors);
    }
}

/* (a) join(q); destroy(q) racing the task_done that completes the count. */
static void task_done_part(struct racer *r, void *q, unsigned round)
{
    race_delay(r, round);
    race_expect(r, ps_queue_task_done(q), 0);
}

static void join_round(struct racer *r, unsigned round)
{
    ps_queue_t *q = race_queue(round, 0);
    void *x;
    cr_assert_eq(ps_queue_put_nowait(q, I(1)), 0);
    cr_assert_eq(ps_queue_get_nowait(q, &x), 0);
    race_go(r, q, round);
    cr_assert_eq(ps_queue_join(q), 0);
    race_destroy(r, q, round);
}

Test(queue, join_then_destroy_races_last_task_done)
{
    race(task_done_part, join_round);
}

/* (b) A getter destroys the queue right after its get returns, racing the
 * producer still in put. Bounded in odd rounds, so the get wakes putters too. */
static void put_part(struct racer *r, void *q, unsigned round)
{
    race_delay(r, round);
    race_expect(r, ps_queue_put(q, I(round), true, PS_FOREVER), 0);
}

static void get_round(struct racer *r, unsigned round)
{
    ps_queue_t *q = race_queue(round, round % 2);
    void *x = NULL;
    race_go(r, q, round);
    cr_assert_eq(ps_queue_get(q, &x, true, PS_FOREVER), 0);
    cr_assert_eq(V(x), (intptr_t)round);
    race_destroy(r, q, round);
}

Test(queue, get_then_destroy_races_put)
{
    race(put_part, get_round);
}

/* (c) Shutdown racing a blocked get (immediate, or plain every fourth round) or
 * a blocked join (immediate: the discarded items complete the count), then
 * destroy. */
static void shutdown_part(struct racer *r, void *q, unsigned round)
{
    race_delay(r, round / 2);      /* every delay for both halves */
    race_expect(r, ps_queue_shutdown(q, round % 4 != 2), 0);
}

static void shutdown_round(struct racer *r, unsigned round)
{
    bool join = round % 2;
    ps_queue_t *q = race_queue(round / 2, 0);
    void *x;
    if (join) {
        cr_assert_eq(ps_queue_put_nowait(q, I(1)), 0);
        cr_assert_eq(ps_queue_put_nowait(q, I(2)), 0);
    }
    race_go(r, q, round);
    if (join)
        cr_assert_eq(ps_queue_join(q), 0);
    else
        cr_assert_eq(ps_queue_get(q, &x, true, PS_FOREVER), ESHUTDOWN);
    race_destroy(r, q, round);
}

Test(queue, shutdown_races_blocked_join_and_get_then_destroy)
{
    race(shutdown_part, shutdown_round);
}

/* (d) A putter blocks on a full queue of one; the getter takes the old item
 * (waking the putter), then the putter's, and destroys the queue. */
static void blocked_put_part(struct racer *r, void *q, unsigned round)
{
    (void)round;                /* the getter delays instead */
    race_expect(r, ps_queue_put(q, I(2), true, PS_FOREVER), 0);
}

static void full_round(struct racer *r, unsigned round)
{
    ps_queue_t *q = race_queue(round, 1);
    cr_assert_eq(ps_queue_put_nowait(q, I(1)), 0);
    race_go(r, q, round);
    race_delay(r, round);
    cr_assert_eq(get_ok(q), 1);
    cr_assert_eq(get_ok(q), 2);
    race_destroy(r, q, round);
}

Test(queue, blocked_putter_then_getter_destroys)
{
    race(blocked_put_part, full_round);
}
