/* SPDX-License-Identifier: MIT */
/* Tests for the executors of <pysync/futures.h>: a port of CPython's
 * Lib/test/test_concurrent_futures/executor.py, test_thread_pool.py and
 * test_shutdown.py for the thread executor (the interpreter-shutdown tests run
 * in a forked child that calls exit), plus the C contract and the issue's
 * counts: 100k tasks each run once, never more than max_workers at once,
 * cancel against a worker taking the task (one winner), shutdown with
 * cancel_futures over 1000 pending tasks, bad input. */
#include <pysync/futures.h>
#include <pysync/multiprocessing.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static void *I(intptr_t n) { return (void *)n; }
static intptr_t V(void *p) { return (intptr_t)p; }

/* ---- tasks ---- */

static void *square(void *arg) { return I(V(arg) * V(arg)); }
static void *identity(void *arg) { return arg; }

static void *sleep_ms(void *arg)
{
    sleep_s((double)V(arg) / 1000.0);
    return arg;
}

static void *wait_event(void *arg)
{
    ps_event_wait(arg, PS_FOREVER);
    return I(1);
}

/* Concurrency meter: running now, and the most ever seen at once. */
typedef struct meter {
    atomic_int running, high, calls;
    ps_semaphore_t sem;         /* tasks that block take one */
    pthread_t threads[64];      /* distinct worker threads seen */
    atomic_int nthreads;
    pthread_mutex_t mutex;
} meter_t;

static void meter_init(meter_t *m)
{
    memset(m, 0, sizeof *m);
    ps_semaphore_init(&m->sem, 0, 0);
    pthread_mutex_init(&m->mutex, NULL);
}

static void meter_thread(meter_t *m)
{
    pthread_t self = pthread_self();
    pthread_mutex_lock(&m->mutex);
    int n = atomic_load(&m->nthreads);
    bool seen = false;
    for (int i = 0; i < n; i++)
        seen = seen || pthread_equal(m->threads[i], self);
    if (!seen && n < 64) {
        m->threads[n] = self;
        atomic_store(&m->nthreads, n + 1);
    }
    pthread_mutex_unlock(&m->mutex);
}

static void meter_enter(meter_t *m)
{
    meter_thread(m);
    atomic_fetch_add(&m->calls, 1);
    int now_running = atomic_fetch_add(&m->running, 1) + 1;
    int high = atomic_load(&m->high);
    while (now_running > high && !atomic_compare_exchange_weak(&m->high, &high, now_running))
        ;
}

static void *metered_block(void *arg)
{
    meter_t *m = arg;
    meter_enter(m);
    ps_semaphore_acquire(&m->sem, true, PS_FOREVER);
    atomic_fetch_sub(&m->running, 1);
    return NULL;
}

static void *metered_spin(void *arg)
{
    meter_t *m = arg;
    meter_enter(m);
    for (volatile int i = 0; i < 2000; i++)
        ;
    atomic_fetch_sub(&m->running, 1);
    return NULL;
}

static ssize_t reverse(const void *in, size_t inlen, void *out, size_t outcap)
{
    if (inlen > outcap)
        return -EMSGSIZE;
    for (size_t i = 0; i < inlen; i++)
        ((char *)out)[i] = ((const char *)in)[inlen - 1 - i];
    return (ssize_t)inlen;
}

/* ---- ExecutorTest ---- */

Test(executor, submit)
{
    ps_executor_t *ex = ps_executor_new(5, 0);
    cr_assert_not_null(ex);
    errno = 777;
    ps_future_t *f = ps_executor_submit(ex, square, I(16));
    cr_assert_not_null(f);
    cr_assert_eq(errno, 777, "a successful submit leaves errno alone");
    void *r = NULL;
    CHECK_RC_E(ps_future_result(f, PS_FOREVER, &r), 0);
    cr_assert_eq(V(r), 256);
    ps_future_free(f);
    ps_executor_free(ex);
}

Test(executor, map)
{
    enum { N = 10 };
    ps_executor_t *ex = ps_executor_new(5, 0);
    void *args[N], *results[N];
    for (int i = 0; i < N; i++)
        args[i] = I(i);
    CHECK_RC_E(ps_executor_map(ex, square, args, results, N, PS_FOREVER), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(V(results[i]), i * i);
    CHECK_RC(ps_executor_map(ex, square, args, NULL, N, 5.0), 0);    /* results dropped */
    CHECK_RC(ps_executor_map(ex, square, NULL, NULL, 0, 5.0), 0);
    ps_executor_free(ex);
}

/* arg NULL: returns at once; else waits for the event arg. */
static void *maybe_wait(void *arg)
{
    if (arg)
        ps_event_wait(arg, PS_FOREVER);
    return I(11);
}

Test(executor, map_timeout)
{
    ps_executor_t *ex = ps_executor_new(5, 0);
    ps_event_t *ev = ps_event_new(0);
    void *args[3] = { NULL, NULL, ev };
    void *results[3] = { I(-1), I(-1), I(-1) };
    double t0 = now();
    CHECK_RC_E(ps_executor_map(ex, maybe_wait, args, results, 3, 0.1), ETIMEDOUT);
    double el = now() - t0;
    cr_assert_geq(el, LOWER_BOUND(0.1));
    cr_assert_lt(el, 2.5, "map waited %.2f s", el);
    cr_assert_eq(V(results[0]), 11);
    cr_assert_eq(V(results[1]), 11);
    cr_assert_null(results[2]);
    ps_event_set(ev);
    ps_executor_free(ex);
    ps_event_free(ev);
}

Test(executor, shutdown_race_issue12456)
{
    enum { WORKERS = 5 };
    ps_executor_t *ex = ps_executor_new(WORKERS, 0);
    void *args[WORKERS + 1], *results[WORKERS + 1];
    for (int i = 0; i <= WORKERS; i++)
        args[i] = I(2);
    CHECK_RC(ps_executor_map(ex, identity, args, results, WORKERS + 1, PS_FOREVER), 0);
    CHECK_RC(ps_executor_shutdown(ex, true, false), 0);
    ps_executor_free(ex);
}

Test(executor, max_workers_default_is_cpu_count)
{
    cpu_set_t set;
    cr_assert_eq(sched_getaffinity(0, sizeof set, &set), 0);
    int cpus = CPU_COUNT(&set);
    ps_executor_t *ex = ps_executor_new(0, 0);
    meter_t m;
    meter_init(&m);
    ps_future_t *fs[80];
    int n = cpus * 3 < 80 ? cpus * 3 : 80;
    for (int i = 0; i < n; i++)
        fs[i] = ps_executor_submit(ex, metered_block, &m);
    cr_assert(wait_count(&m.running, cpus < n ? cpus : n, 5.0));
    sleep_s(0.02);
    cr_assert_eq(atomic_load(&m.high), cpus, "max_workers 0 ran %d at once, CPUs: %d",
                 atomic_load(&m.high), cpus);
    ps_semaphore_release(&m.sem, (unsigned)n);
    ps_executor_free(ex);
    for (int i = 0; i < n; i++)
        ps_future_free(fs[i]);
}

/* ---- ThreadPoolExecutorTest ---- */

Test(executor, saturation)
{
    enum { MAX = 4, N = 15 * MAX };
    ps_executor_t *ex = ps_executor_new(MAX, 0);
    meter_t m;
    meter_init(&m);
    for (int i = 0; i < N; i++) {
        ps_future_t *f = ps_executor_submit(ex, metered_block, &m);
        cr_assert_not_null(f);
        ps_future_free(f);
    }
    cr_assert(wait_count(&m.running, MAX, 5.0));
    sleep_s(0.02);
    cr_assert_eq(atomic_load(&m.high), MAX);
    cr_assert_eq(atomic_load(&m.nthreads), MAX, "threads: %d", atomic_load(&m.nthreads));
    ps_semaphore_release(&m.sem, N);
    ps_executor_free(ex);
    cr_assert_eq(atomic_load(&m.calls), N);
    cr_assert_leq(atomic_load(&m.nthreads), MAX);
}

Test(executor, idle_thread_reuse)
{
    ps_executor_t *ex = ps_executor_new(0, 0);
    meter_t m;
    meter_init(&m);
    for (int i = 0; i < 3; i++) {
        ps_future_t *f = ps_executor_submit(ex, metered_spin, &m);
        CHECK_RC(ps_future_result(f, 5.0, NULL), 0);
        ps_future_free(f);
    }
    cr_assert_eq(atomic_load(&m.nthreads), 1, "%d threads ran 3 sequential tasks",
                 atomic_load(&m.nthreads));
    ps_executor_free(ex);
}

/* Two tasks that need each other: a second thread must start even though the
 * first was idle a moment before. */
static void *rendezvous(void *arg)
{
    ps_barrier_t *b = arg;
    return I(ps_barrier_wait(b, 5.0, NULL));
}

Test(executor, tasks_that_need_each_other_get_threads)
{
    ps_executor_t *ex = ps_executor_new(3, 0);
    ps_future_t *warm = ps_executor_submit(ex, identity, NULL);
    CHECK_RC(ps_future_result(warm, 5.0, NULL), 0);
    ps_future_free(warm);
    ps_barrier_t *b = ps_barrier_new(3, NULL, NULL, PS_FOREVER, 0);
    ps_future_t *fs[3];
    for (int i = 0; i < 3; i++)
        fs[i] = ps_executor_submit(ex, rendezvous, b);
    for (int i = 0; i < 3; i++) {
        void *r = I(-1);
        CHECK_RC(ps_future_result(fs[i], 10.0, &r), 0);
        cr_assert_eq(V(r), 0, "task %d: barrier said %ld", i, (long)V(r));
        ps_future_free(fs[i]);
    }
    ps_executor_free(ex);
    ps_barrier_free(b);
}

/* test_process_fork_from_a_threadpool: a task starts a Process (fork), which
 * must not try to join the pool's threads when it ends. */
static int child_returns_zero(void *arg)
{
    (void)arg;
    return 0;
}

static void *start_process(void *arg)
{
    (void)arg;
    ps_process_t *p = ps_process_new(child_returns_zero, NULL, NULL);
    if (!p || ps_process_start(p) != 0)
        return I(-2);
    int rc = ps_process_join(p, 10.0);
    int code = rc ? -3 : ps_process_exitcode(p);
    ps_process_free(p);
    return I(code);
}

Test(executor, process_fork_from_a_threadpool)
{
    ps_executor_t *ex = ps_executor_new(1, 0);
    ps_future_t *f = ps_executor_submit(ex, start_process, NULL);
    void *code = I(-1);
    CHECK_RC(ps_future_result(f, 15.0, &code), 0);
    cr_assert_eq(V(code), 0, "the process ended with %ld", (long)V(code));
    ps_future_free(f);
    ps_executor_free(ex);
}

/* ThreadPoolExecutorTest.test_executor_map_current_future_cancel */
typedef struct logbook {
    pthread_mutex_t mutex;
    char text[256];
    ps_event_t stop;
} logbook_t;

static logbook_t book = { .mutex = PTHREAD_MUTEX_INITIALIZER };

static void log_line(const char *what, const char *ident)
{
    pthread_mutex_lock(&book.mutex);
    size_t len = strlen(book.text);
    snprintf(book.text + len, sizeof book.text - len, "%s %s;", ident, what);
    pthread_mutex_unlock(&book.mutex);
}

static void *log_n_wait(void *arg)
{
    log_line("started", arg);
    ps_event_wait(&book.stop, PS_FOREVER);
    log_line("stopped", arg);
    return NULL;
}

Test(executor, executor_map_current_future_cancel)
{
    ps_event_init(&book.stop, 0);
    ps_executor_t *ex = ps_executor_new(1, 0);
    ps_future_t *f = ps_executor_submit(ex, log_n_wait, "first");
    void *args[2] = { "second", "third" }, *results[2];
    CHECK_RC(ps_executor_map(ex, log_n_wait, args, results, 2, 0), ETIMEDOUT);
    ps_event_set(&book.stop);
    CHECK_RC(ps_future_result(f, 5.0, NULL), 0);
    ps_executor_free(ex);
    ps_future_free(f);
    cr_assert_str_eq(book.text, "first started;first stopped;");
}

/* ---- ExecutorShutdownTest ---- */

Test(executor, run_after_shutdown)
{
    ps_executor_t *ex = ps_executor_new(2, 0);
    CHECK_RC_E(ps_executor_shutdown(ex, true, false), 0);
    errno = 0;
    cr_assert_null(ps_executor_submit(ex, identity, NULL));
    cr_assert_eq(errno, ESHUTDOWN);
    errno = 0;
    cr_assert_null(ps_executor_submit_bytes(ex, reverse, "", 0));
    cr_assert_eq(errno, ESHUTDOWN);
    void *args[1] = { NULL };
    CHECK_RC(ps_executor_map(ex, identity, args, NULL, 1, 1.0), ESHUTDOWN);
    CHECK_RC(ps_executor_shutdown(ex, true, true), 0);     /* twice is harmless */
    ps_executor_free(ex);
}

Test(executor, hang_issue12364)
{
    enum { N = 50 };
    ps_executor_t *ex = ps_executor_new(5, 0);
    ps_future_t *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = ps_executor_submit(ex, sleep_ms, I(5));
    CHECK_RC(ps_executor_shutdown(ex, true, false), 0);
    for (int i = 0; i < N; i++) {
        cr_assert(ps_future_done(fs[i]), "shutdown(wait) returned before task %d ran", i);
        CHECK_RC(ps_future_result(fs[i], 0, NULL), 0);
        ps_future_free(fs[i]);
    }
    ps_executor_free(ex);
}

static atomic_int cancel_cb_calls;

static void count_cancel(ps_future_t *f, void *arg)
{
    (void)arg;
    if (ps_future_cancelled(f))
        atomic_fetch_add(&cancel_cb_calls, 1);
}

Test(executor, cancel_futures)
{
    enum { N = 50 };
    ps_executor_t *ex = ps_executor_new(3, 0);
    ps_future_t *fs[N];
    for (int i = 0; i < N; i++) {
        fs[i] = ps_executor_submit(ex, sleep_ms, I(10));
        ps_future_add_done_callback(fs[i], count_cancel, NULL);
    }
    CHECK_RC(ps_executor_shutdown(ex, true, true), 0);
    int cancelled = 0, others = 0;
    for (int i = 0; i < N; i++) {
        if (ps_future_cancelled(fs[i])) {
            cancelled++;
        } else {
            cr_assert(ps_future_done(fs[i]));
            CHECK_RC(ps_future_exception(fs[i], 0, NULL), 0);
            others++;
        }
        ps_future_free(fs[i]);
    }
    cr_assert_gt(cancelled, 20);
    cr_assert_gt(others, 0);
    cr_assert_eq(atomic_load(&cancel_cb_calls), cancelled, "callbacks ran before shutdown returned");
    ps_executor_free(ex);
}

Test(executor, hang_gh94440)
{
    ps_executor_t *ex = ps_executor_new(1, 0);
    ps_future_t *f = ps_executor_submit(ex, identity, NULL);
    CHECK_RC(ps_future_result(f, 5.0, NULL), 0);
    ps_future_free(f);
    f = ps_executor_submit(ex, identity, NULL);
    ps_future_cancel(f);
    double t0 = now();
    CHECK_RC(ps_executor_shutdown(ex, true, false), 0);
    cr_assert_lt(now() - t0, 5.0);
    ps_future_free(f);
    ps_executor_free(ex);
}

/* ---- ThreadPoolShutdownTest ---- */

Test(executor, threads_terminate)
{
    ps_executor_t *ex = ps_executor_new(5, 0);
    meter_t m;
    meter_init(&m);
    for (int i = 0; i < 3; i++)
        ps_future_free(ps_executor_submit(ex, metered_block, &m));
    cr_assert(wait_count(&m.running, 3, 5.0));
    cr_assert_eq(atomic_load(&m.nthreads), 3);
    ps_semaphore_release(&m.sem, 3);
    CHECK_RC(ps_executor_shutdown(ex, true, false), 0);
    cr_assert_eq(atomic_load(&m.running), 0);
    ps_executor_free(ex);
}

Test(executor, context_manager_shutdown)
{
    ps_executor_t *ex = ps_executor_new(5, 0);
    void *args[10], *results[10];
    for (int i = 0; i < 10; i++)
        args[i] = I(i - 5);
    CHECK_RC(ps_executor_map(ex, square, args, results, 10, PS_FOREVER), 0);
    ps_executor_free(ex);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(V(results[i]), (i - 5) * (i - 5));
}

Test(executor, shutdown_no_wait)
{
    enum { N = 10 };
    ps_executor_t *ex = ps_executor_new(5, 0);
    ps_future_t *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = ps_executor_submit(ex, sleep_ms, I(i));
    double t0 = now();
    CHECK_RC(ps_executor_shutdown(ex, false, false), 0);
    cr_assert_lt(now() - t0, 0.005 + 0.5, "shutdown(wait=false) waited");
    for (int i = 0; i < N; i++) {
        void *r = I(-1);
        CHECK_RC(ps_future_result(fs[i], 5.0, &r), 0);     /* queued work still runs */
        cr_assert_eq(V(r), i);
        ps_future_free(fs[i]);
    }
    ps_executor_free(ex);
}

/* Futures outlive their executor. */
Test(executor, futures_outlive_the_executor)
{
    ps_executor_t *ex = ps_executor_new(2, 0);
    ps_future_t *fs[100];
    for (int i = 0; i < 100; i++)
        fs[i] = ps_executor_submit(ex, square, I(i));
    ps_executor_free(ex);
    for (int i = 0; i < 100; i++) {
        void *r;
        CHECK_RC(ps_future_result(fs[i], 0, &r), 0);
        cr_assert_eq(V(r), i * i);
        ps_future_free(fs[i]);
    }
}

/* ---- at exit (test_interpreter_shutdown and friends), in forked children ---- */

typedef struct exitlog {
    atomic_int done;            /* tasks that ran */
    atomic_int submit_rc;       /* what a submit during exit returned */
} exitlog_t;

static exitlog_t *xlog;

static void *slow_then_count(void *arg)
{
    (void)arg;
    sleep_s(0.02);
    atomic_fetch_add(&xlog->done, 1);
    return NULL;
}

static int child_exit_with_queued_work(void *arg)
{
    xlog = arg;
    ps_executor_t *ex = ps_executor_new(1, 0);
    for (int i = 0; i < 5; i++)
        if (!ps_executor_submit(ex, slow_then_count, NULL))
            return 2;
    exit(0);                    /* "main returns" without shutdown */
}

Test(executor, interpreter_shutdown)
{
    exitlog_t *x = shm_alloc(sizeof *x);
    int code = child_wait(fork_child(child_exit_with_queued_work, x), 10.0);
    cr_assert_eq(code, 0, "child ended with %d", code);
    cr_assert_eq(atomic_load(&x->done), 5, "only %d of 5 queued tasks ran", atomic_load(&x->done));
    shm_free(x, sizeof *x);
}

static int child_shutdown_no_wait_then_exit(void *arg)
{
    xlog = arg;
    ps_executor_t *ex = ps_executor_new(3, 0);
    if (!ps_executor_submit(ex, slow_then_count, NULL))
        return 2;
    ps_executor_shutdown(ex, false, false);
    exit(0);
}

Test(executor, hang_gh83386)
{
    exitlog_t *x = shm_alloc(sizeof *x);
    int code = child_wait(fork_child(child_shutdown_no_wait_then_exit, x), 10.0);
    cr_assert_eq(code, 0, "child ended with %d", code);
    cr_assert_eq(atomic_load(&x->done), 1);
    shm_free(x, sizeof *x);
}

static int child_cancel_futures_wait_false(void *arg)
{
    xlog = arg;
    ps_executor_t *ex = ps_executor_new(0, 0);
    for (int i = 0; i < 20; i++)
        ps_executor_submit(ex, slow_then_count, NULL);
    ps_executor_shutdown(ex, false, true);
    exit(0);
}

Test(executor, cancel_futures_wait_false)
{
    exitlog_t *x = shm_alloc(sizeof *x);
    int code = child_wait(fork_child(child_cancel_futures_wait_false, x), 10.0);
    cr_assert_eq(code, 0, "child ended with %d", code);
    cr_assert_lt(atomic_load(&x->done), 20);
    shm_free(x, sizeof *x);
}

static ps_executor_t *exit_ex;

static void *submit_during_exit(void *arg)
{
    (void)arg;
    sleep_s(0.05);              /* main is in exit by now */
    errno = 0;
    ps_future_t *f = ps_executor_submit(exit_ex, identity, NULL);
    atomic_store(&xlog->submit_rc, f ? 0 : errno);
    atomic_fetch_add(&xlog->done, 1);
    return NULL;
}

static int child_submit_after_exit(void *arg)
{
    xlog = arg;
    exit_ex = ps_executor_new(2, 0);
    if (!ps_executor_submit(exit_ex, submit_during_exit, NULL))
        return 2;
    exit(0);
}

Test(executor, submit_after_interpreter_shutdown)
{
    exitlog_t *x = shm_alloc(sizeof *x);
    atomic_store(&x->submit_rc, -1);
    int code = child_wait(fork_child(child_submit_after_exit, x), 10.0);
    cr_assert_eq(code, 0, "child ended with %d", code);
    cr_assert_eq(atomic_load(&x->done), 1);
    cr_assert_eq(atomic_load(&x->submit_rc), ESHUTDOWN);
    shm_free(x, sizeof *x);
}

/* A child forked while the parent's executor has workers exits at once. */
static int child_exit_zero(void *arg)
{
    (void)arg;
    exit(0);
}

Test(executor, forked_child_does_not_wait_for_parent_workers)
{
    ps_executor_t *ex = ps_executor_new(2, 0);
    ps_event_t *ev = ps_event_new(0);
    ps_future_t *f = ps_executor_submit(ex, wait_event, ev);
    double t0 = now();
    int code = child_wait(fork_child(child_exit_zero, NULL), 10.0);
    cr_assert_lt(now() - t0, 5.0);
    ps_event_set(ev);
    cr_assert_eq(code, 0);
    CHECK_RC(ps_future_result(f, 5.0, NULL), 0);
    ps_future_free(f);
    ps_executor_free(ex);
    ps_event_free(ev);
}

/* A child can neither use nor free its parent's executor: submits fail at once
 * (its threads do not exist here), free leaves it alone, exit does not wait. */
static ps_executor_t *parent_ex;

static int child_uses_parent_executor(void *arg)
{
    (void)arg;
    errno = 0;
    if (ps_executor_submit(parent_ex, identity, NULL) || errno != ESHUTDOWN)
        return 2;
    if (ps_executor_shutdown(parent_ex, true, true) != 0)
        return 3;
    ps_executor_free(parent_ex);
    ps_executor_t *mine = ps_executor_new(2, 0);        /* its own work fine */
    ps_future_t *f = ps_executor_submit(mine, identity, I(8));
    void *r = NULL;
    if (ps_future_result(f, 5.0, &r) != 0 || V(r) != 8)
        return 4;
    ps_future_free(f);
    ps_executor_free(mine);
    exit(0);
}

Test(executor, forked_child_cannot_use_parent_executor)
{
    parent_ex = ps_executor_new(2, 0);
    ps_event_t *ev = ps_event_new(0);
    ps_future_t *f = ps_executor_submit(parent_ex, wait_event, ev);
    int code = child_wait(fork_child(child_uses_parent_executor, NULL), 10.0);
    ps_event_set(ev);
    cr_assert_eq(code, 0, "child ended with %d", code);
    CHECK_RC(ps_future_result(f, 5.0, NULL), 0);
    ps_future_free(f);
    ps_executor_free(parent_ex);
    ps_event_free(ev);
}

static void *call_exit(void *arg)
{
    (void)arg;
    exit(3);
}

static int child_task_calls_exit(void *arg)
{
    (void)arg;
    ps_executor_t *ex = ps_executor_new(2, 0);
    ps_future_t *f = ps_executor_submit(ex, call_exit, NULL);
    ps_future_result(f, PS_FOREVER, NULL);
    return 4;
}

/* exit() from a task: the at-exit shutdown must not wait for that worker. */
Test(executor, exit_from_a_task_does_not_hang)
{
    int code = child_wait(fork_child(child_task_calls_exit, NULL), 10.0);
    cr_assert_eq(code, 3, "child ended with %d", code);
}

/* ps_executor_free from one of the executor's own tasks. */
static void *free_own_executor(void *arg)
{
    ps_executor_free(arg);
    return I(5);
}

Test(executor, free_from_own_task)
{
    ps_executor_t *ex = ps_executor_new(2, 0);
    ps_future_t *a = ps_executor_submit(ex, square, I(3));
    ps_future_t *f = ps_executor_submit(ex, free_own_executor, ex);
    void *r = NULL;
    CHECK_RC(ps_future_result(f, 5.0, &r), 0);
    cr_assert_eq(V(r), 5);
    CHECK_RC(ps_future_result(a, 5.0, &r), 0);
    cr_assert_eq(V(r), 9);
    ps_future_free(a);
    ps_future_free(f);
}

/* ---- the issue's counts ---- */

typedef struct counts {
    unsigned char *runs;        /* per task: times run */
} counts_t;

static counts_t cnt;

static void *count_run(void *arg)
{
    __atomic_fetch_add(&cnt.runs[V(arg)], 1, __ATOMIC_RELAXED);
    return arg;
}

Test(executor, hundred_thousand_tasks_run_once)
{
    enum { N = 100000 };
    cnt.runs = calloc(N, 1);
    ps_future_t **fs = malloc(N * sizeof *fs);
    ps_executor_t *ex = ps_executor_new(4, 0);
    for (intptr_t i = 0; i < N; i++) {
        fs[i] = ps_executor_submit(ex, count_run, I(i));
        cr_assert_not_null(fs[i]);
    }
    long wrong = 0;
    for (intptr_t i = 0; i < N; i++) {
        void *r = NULL;
        if (ps_future_result(fs[i], 10.0, &r) != 0 || V(r) != i)
            wrong++;
        ps_future_free(fs[i]);
    }
    ps_executor_free(ex);
    for (intptr_t i = 0; i < N; i++)
        wrong += cnt.runs[i] != 1;
    cr_assert_eq(wrong, 0, "%ld tasks did not run exactly once", wrong);
    free(fs);
    free(cnt.runs);
}

Test(executor, never_more_than_max_workers_at_once)
{
    enum { MAX = 3, N = 3000 };
    ps_executor_t *ex = ps_executor_new(MAX, 0);
    meter_t m;
    meter_init(&m);
    for (int i = 0; i < N; i++) {
        ps_future_t *f = ps_executor_submit(ex, metered_spin, &m);
        cr_assert_not_null(f);
        ps_future_free(f);
        if (i % 500 == 0)
            sleep_s(0.001);
    }
    ps_executor_free(ex);
    cr_assert_eq(atomic_load(&m.calls), N);
    cr_assert_leq(atomic_load(&m.high), MAX, "%d tasks ran at once", atomic_load(&m.high));
    cr_assert_leq(atomic_load(&m.nthreads), MAX);
}

/* cancel against a worker picking the task up: exactly one of them wins. */
static atomic_int race_runs;

static void *race_task(void *arg)
{
    atomic_fetch_add(&race_runs, 1);
    return arg;
}

Test(executor, cancel_races_the_worker)
{
    enum { ROUNDS = 10000 };
    ps_executor_t *ex = ps_executor_new(1, 0);
    int won = 0, lost = 0;
    for (int round = 0; round < ROUNDS; round++) {
        int before = atomic_load(&race_runs);
        ps_future_t *f = ps_executor_submit(ex, race_task, I(round));
        spin_us((round % 80) * 0.25);   /* 0..20 us: around the worker's pickup time */
        bool cancelled = ps_future_cancel(f);
        void *r = NULL;
        int rc = ps_future_result(f, 5.0, &r);
        /* the worker has dropped f or is about to: let it, so runs is final */
        CHECK_RC(ps_futures_wait(&f, 1, 5.0, PS_ALL_COMPLETED), 0);
        if (cancelled) {
            CHECK_RC(rc, ECANCELED);
            cr_assert(ps_future_cancelled(f));
            won++;
        } else {
            CHECK_RC(rc, 0);
            cr_assert_eq(V(r), round);
            cr_assert_eq(atomic_load(&race_runs), before + 1, "round %d: ran %d times", round,
                         atomic_load(&race_runs) - before);
            lost++;
        }
        ps_future_free(f);
    }
    ps_executor_free(ex);
    cr_assert_eq(atomic_load(&race_runs), lost, "cancelled tasks ran");
    cr_assert_eq(won + lost, ROUNDS);
    cr_assert(won > 0 && lost > 0, "no race: cancel won %d, the worker %d", won, lost);
}

Test(executor, shutdown_cancel_futures_with_1000_pending)
{
    enum { N = 1000 };
    ps_executor_t *ex = ps_executor_new(1, 0);
    ps_event_t *ev = ps_event_new(0);
    ps_future_t *blocker = ps_executor_submit(ex, wait_event, ev);
    while (!ps_future_running(blocker))
        sched_yield();
    ps_future_t **fs = malloc(N * sizeof *fs);
    atomic_store(&cancel_cb_calls, 0);
    for (int i = 0; i < N; i++) {
        fs[i] = ps_executor_submit(ex, identity, I(i));
        ps_future_add_done_callback(fs[i], count_cancel, NULL);
    }
    CHECK_RC_E(ps_executor_shutdown(ex, false, true), 0);
    cr_assert_eq(atomic_load(&cancel_cb_calls), N);
    for (int i = 0; i < N; i++) {
        cr_assert(ps_future_cancelled(fs[i]), "future %d not cancelled", i);
        CHECK_RC(ps_future_result(fs[i], 0, NULL), ECANCELED);
        ps_future_free(fs[i]);
    }
    cr_assert_not(ps_future_done(blocker), "a running task is not cancelled");
    cr_assert_null(ps_executor_submit(ex, identity, NULL));
    ps_event_set(ev);
    CHECK_RC(ps_executor_shutdown(ex, true, false), 0);
    cr_assert(ps_future_done(blocker));
    ps_future_free(blocker);
    ps_executor_free(ex);
    ps_event_free(ev);
    free(fs);
}

/* A one-worker executor starts tasks in submission order. */
static int order_seen[200];
static atomic_int order_n;

static void *record_order(void *arg)
{
    order_seen[atomic_fetch_add(&order_n, 1)] = (int)V(arg);
    return NULL;
}

Test(executor, one_worker_runs_tasks_in_submission_order)
{
    ps_executor_t *ex = ps_executor_new(1, 0);
    for (int i = 0; i < 200; i++)
        ps_future_free(ps_executor_submit(ex, record_order, I(i)));
    ps_executor_free(ex);
    cr_assert_eq(atomic_load(&order_n), 200);
    for (int i = 0; i < 200; i++)
        cr_assert_eq(order_seen[i], i, "task %d ran as number %d", order_seen[i], i);
}

/* ---- bytes tasks ---- */

Test(executor, submit_bytes)
{
    ps_executor_t *ex = ps_executor_new(2, 0);
    char buf[16];
    size_t len = 0;
    char msg[] = "hello";
    ps_future_t *f = ps_executor_submit_bytes(ex, reverse, msg, 5);
    memset(msg, 0, sizeof msg);     /* the input was copied */
    CHECK_RC(ps_future_result_bytes(f, 5.0, buf, sizeof buf, &len), 0);
    cr_assert_eq(len, 5);
    cr_assert_eq(memcmp(buf, "olleh", 5), 0);
    ps_future_free(f);
    static char big[PS_TASK_BYTES_MAX + 1];
    errno = 0;
    cr_assert_null(ps_executor_submit_bytes(ex, reverse, big, sizeof big));
    cr_assert_eq(errno, EMSGSIZE);
    f = ps_executor_submit_bytes(ex, reverse, big, PS_TASK_BYTES_MAX);
    cr_assert_not_null(f);
    CHECK_RC(ps_future_result_bytes(f, 5.0, NULL, 0, &len), ERANGE);
    cr_assert_eq(len, PS_TASK_BYTES_MAX);
    ps_future_free(f);
    errno = 0;
    cr_assert_null(ps_executor_submit_bytes(ex, reverse, NULL, 3));
    cr_assert_eq(errno, EINVAL);
    ps_executor_free(ex);
}

/* ---- bad input ---- */

Test(executor, invalid_arguments)
{
    errno = 0;
    cr_assert_null(ps_executor_new(2, 0x40));
    cr_assert_eq(errno, EINVAL);
    ps_executor_t *ex = ps_executor_new(2, 0);
    errno = 0;
    cr_assert_null(ps_executor_submit(NULL, identity, NULL));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(ps_executor_submit(ex, NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(ps_executor_submit_bytes(NULL, reverse, "", 0));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(ps_executor_submit_bytes(ex, NULL, "", 0));
    cr_assert_eq(errno, EINVAL);
    void *args[2] = { I(1), I(2) }, *results[2];
    errno = 4321;
    cr_assert_eq(ps_executor_map(NULL, identity, args, results, 2, 1.0), EINVAL);
    cr_assert_eq(ps_executor_map(ex, NULL, args, results, 2, 1.0), EINVAL);
    cr_assert_eq(ps_executor_map(ex, identity, NULL, results, 2, 1.0), EINVAL);
    cr_assert_eq(ps_executor_map(ex, identity, args, results, 2, NAN), EINVAL);
    cr_assert_eq(ps_executor_shutdown(NULL, true, false), EINVAL);
    cr_assert_eq(errno, 4321);
    ps_executor_free(NULL);
    /* still usable */
    CHECK_RC(ps_executor_map(ex, square, args, results, 2, 5.0), 0);
    cr_assert_eq(V(results[1]), 4);
    ps_executor_free(ex);
}

/* No thread can start (the address space is full): submit fails with the
 * error, the future is not left to hang, and once threads can start again the
 * executor works. (ASan reserves too much address space for this.) */
#include <sys/resource.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
static int child_no_threads(void *arg)
{
    (void)arg;
    exit(0);
}
#else
static long vm_size_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static void *block_on_event(void *arg)
{
    ps_event_wait(arg, PS_FOREVER);
    return NULL;
}

static int child_no_threads(void *arg)
{
    (void)arg;
    ps_executor_t *ex = ps_executor_new(2, 0);
    ps_event_t *release = ps_event_new(0);
    struct rlimit old, tight;
    getrlimit(RLIMIT_AS, &old);
    tight = old;
    tight.rlim_cur = (rlim_t)(vm_size_kb() + 1024) * 1024;   /* no room for a stack */
    if (setrlimit(RLIMIT_AS, &tight) != 0)
        return 2;
    /* glibc reuses the stacks of ended threads: use them all up first */
    pthread_t hold[64];
    int held = 0;
    while (held < 64 && pthread_create(&hold[held], NULL, block_on_event, release) == 0)
        held++;
    errno = 0;
    ps_future_t *f = ps_executor_submit(ex, identity, I(1));
    int err = errno;
    ps_event_set(release);
    for (int i = 0; i < held; i++)
        pthread_join(hold[i], NULL);
    setrlimit(RLIMIT_AS, &old);
    if (held == 64)
        exit(0);                /* could not fill the address space: nothing to see */
    if (f || (err != EAGAIN && err != ENOMEM))
        return 3;
    f = ps_executor_submit(ex, identity, I(2));
    void *r = NULL;
    if (!f || ps_future_result(f, 5.0, &r) != 0 || V(r) != 2)
        return 4;
    ps_future_free(f);
    ps_executor_free(ex);
    ps_event_free(release);
    exit(0);
}

#endif

Test(executor, no_thread_can_start)
{
    int code = child_wait(fork_child(child_no_threads, NULL), 10.0);
    cr_assert_eq(code, 0, "child ended with %d", code);
}

/* PS_PROCESSES needs a process executor in the library: without one, ENOSYS;
 * with one, the thread-only calls are EINVAL. */
static ssize_t one_byte(const void *in, size_t inlen, void *out, size_t outcap)
{
    (void)in, (void)inlen, (void)outcap;
    *(char *)out = 'p';
    return 1;
}

Test(executor, processes_flag)
{
    errno = 0;
    ps_executor_t *ex = ps_executor_new(1, PS_PROCESSES);
    if (!ex) {
        cr_assert_eq(errno, ENOSYS, "errno %d", errno);
        return;
    }
    errno = 0;
    cr_assert_null(ps_executor_submit(ex, identity, NULL));
    cr_assert_eq(errno, EINVAL);
    void *args[1] = { NULL };
    cr_assert_eq(ps_executor_map(ex, identity, args, NULL, 1, 5.0), EINVAL);
    ps_future_t *f = ps_executor_submit_bytes(ex, one_byte, NULL, 0);
    cr_assert_not_null(f);
    char c = 0;
    size_t len = 0;
    CHECK_RC(ps_future_result_bytes(f, 10.0, &c, 1, &len), 0);
    cr_assert_eq(c, 'p');
    CHECK_RC(ps_future_result(f, 0, NULL), EINVAL);
    ps_future_free(f);
    ps_executor_free(ex);
}
