/* SPDX-License-Identifier: MIT */
/* tests/test_thread.c - ps_thread_t (threading.Thread, current_thread).
 * Ideas from CPython Lib/test/test_threading.py ThreadTests: join result, names,
 * daemon flag, is_alive, ident, current_thread, join timeouts, exit-time joining. */
#include <criterion/criterion.h>
#include <pysync/threading.h>

#include <sys/resource.h>

#include "helpers.h"

TestSuite(thread, .timeout = 30);
TestSuite(thread_exit, .timeout = 30);

static void *return_arg(void *arg)
{
    return arg;
}

typedef struct tctx {
    ps_event_t *go;          /* the target waits for this (10 s max) */
    atomic_int running;
    atomic_int done;
    ps_thread_t *self;       /* what ps_current_thread returned in the target */
    unsigned long pthread_id;
    int join_self_rc;
    int join_self_rc2;
    ps_thread_t *expected_self;
    const char *name_in_thread;
} tctx_t;

static void *blocker(void *arg)
{
    tctx_t *c = arg;
    c->self = ps_current_thread();
    c->pthread_id = (unsigned long)pthread_self();
    atomic_store(&c->running, 1);
    if (c->go)
        ps_event_wait(c->go, 10.0);
    atomic_store(&c->done, 1);
    return (void *)0x1234;
}

/* ------------------------------------------------------------------ basics */

Test(thread, join_returns_result)
{
    ps_thread_t *t = ps_thread_new(return_arg, (void *)0xbeef, NULL);
    cr_assert_not_null(t);
    CHECK_RC_E(ps_thread_start(t), 0);
    void *res = NULL;
    CHECK_RC_E(ps_thread_join(t, 5.0, &res), 0);
    cr_assert_eq(res, (void *)0xbeef);
    res = NULL;
    CHECK_RC_E(ps_thread_join(t, 5.0, &res), 0);   /* again: same result */
    cr_assert_eq(res, (void *)0xbeef);
    CHECK_RC_E(ps_thread_join(t, PS_FOREVER, NULL), 0);  /* NULL result: ignored */
    CHECK_RC_E(ps_thread_join(t, 0.0, &res), 0);
    cr_assert_eq(res, (void *)0xbeef);
    ps_thread_free(t);
}

Test(thread, join_forever)
{
    ps_thread_t *t = ps_thread_new(return_arg, (void *)7, "x");
    CHECK_RC(ps_thread_start(t), 0);
    void *res;
    CHECK_RC_E(ps_thread_join(t, PS_FOREVER, &res), 0);
    cr_assert_eq(res, (void *)7);
    ps_thread_free(t);
}

Test(thread, null_object_einval)
{
    CHECK_RC_E(ps_thread_start(NULL), EINVAL);
    CHECK_RC_E(ps_thread_join(NULL, 1.0, NULL), EINVAL);
    CHECK_RC_E(ps_thread_set_daemon(NULL, true), EINVAL);
    ps_thread_free(NULL);
}

Test(thread, default_name)
{
    ps_thread_t *a = ps_thread_new(return_arg, NULL, NULL);
    ps_thread_t *b = ps_thread_new(return_arg, NULL, NULL);
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    const char *na = ps_thread_name(a), *nb = ps_thread_name(b);
    cr_assert_not_null(na);
    cr_assert_not_null(nb);
    cr_assert_eq(strncmp(na, "Thread-", 7), 0, "default name '%s'", na);
    cr_assert_eq(strncmp(nb, "Thread-", 7), 0, "default name '%s'", nb);
    char *end;
    long ka = strtol(na + 7, &end, 10);
    cr_assert(*end == '\0' && ka >= 1, "default name '%s' is not Thread-N", na);
    long kb = strtol(nb + 7, &end, 10);
    cr_assert(*end == '\0', "default name '%s' is not Thread-N", nb);
    cr_assert_eq(kb, ka + 1, "consecutive default names: '%s' then '%s'", na, nb);
    ps_thread_free(a);
    ps_thread_free(b);
}

Test(thread, custom_name)
{
    char buf[32] = "worker-7";
    ps_thread_t *t = ps_thread_new(return_arg, NULL, buf);
    cr_assert_not_null(t);
    strcpy(buf, "changed");
    cr_assert_str_eq(ps_thread_name(t), "worker-7", "name not copied");
    CHECK_RC(ps_thread_start(t), 0);
    CHECK_RC(ps_thread_join(t, 5.0, NULL), 0);
    cr_assert_str_eq(ps_thread_name(t), "worker-7");
    ps_thread_free(t);
}

static void *name_of_current(void *arg)
{
    (void)arg;
    return (void *)ps_thread_name(ps_current_thread());
}

Test(thread, current_thread_name_in_thread)
{
    ps_thread_t *t = ps_thread_new(name_of_current, NULL, "named-one");
    CHECK_RC(ps_thread_start(t), 0);
    void *res;
    CHECK_RC(ps_thread_join(t, 5.0, &res), 0);
    cr_assert_not_null(res);
    cr_assert_str_eq((const char *)res, "named-one");
    ps_thread_free(t);
}

Test(thread, daemon_flag)
{
    ps_thread_t *t = ps_thread_new(return_arg, NULL, NULL);
    cr_assert(!ps_thread_daemon(t), "threads made by the main thread are not daemons");
    CHECK_RC_E(ps_thread_set_daemon(t, true), 0);
    cr_assert(ps_thread_daemon(t));
    CHECK_RC_E(ps_thread_set_daemon(t, false), 0);
    cr_assert(!ps_thread_daemon(t));
    CHECK_RC_E(ps_thread_set_daemon(t, true), 0);
    CHECK_RC(ps_thread_start(t), 0);
    CHECK_RC_E(ps_thread_set_daemon(t, false), EINVAL);   /* after start */
    cr_assert(ps_thread_daemon(t), "failed set_daemon changed the flag");
    CHECK_RC(ps_thread_join(t, 5.0, NULL), 0);
    CHECK_RC_E(ps_thread_set_daemon(t, false), EINVAL);
    ps_thread_free(t);
}

Test(thread, start_twice_einval)
{
    tctx_t c = { .go = ps_event_new(0) };
    ps_thread_t *t = ps_thread_new(blocker, &c, NULL);
    CHECK_RC_E(ps_thread_start(t), 0);
    CHECK_RC_E(ps_thread_start(t), EINVAL);     /* while running */
    CHECK_RC(ps_event_set(c.go), 0);
    CHECK_RC(ps_thread_join(t, 5.0, NULL), 0);
    CHECK_RC_E(ps_thread_start(t), EINVAL);     /* after it ended */
    ps_thread_free(t);
    ps_event_free(c.go);
}

Test(thread, join_unstarted_einval)
{
    ps_thread_t *t = ps_thread_new(return_arg, NULL, NULL);
    void *res;
    CHECK_RC_E(ps_thread_join(t, 1.0, &res), EINVAL);
    CHECK_RC_E(ps_thread_join(t, PS_FOREVER, NULL), EINVAL);
    ps_thread_free(t);
}

static void *join_self(void *arg)
{
    tctx_t *c = arg;
    c->join_self_rc = ps_thread_join(ps_current_thread(), 1.0, NULL);
    c->join_self_rc2 = ps_thread_join(c->expected_self, PS_FOREVER, NULL);
    return NULL;
}

Test(thread, self_join_edeadlk)
{
    tctx_t c = { 0 };
    ps_thread_t *t = ps_thread_new(join_self, &c, NULL);
    c.expected_self = t;
    CHECK_RC(ps_thread_start(t), 0);
    CHECK_RC(ps_thread_join(t, 5.0, NULL), 0);
    cr_assert_eq(c.join_self_rc, EDEADLK, "self-join (current_thread): %d", c.join_self_rc);
    cr_assert_eq(c.join_self_rc2, EDEADLK, "self-join (own handle): %d", c.join_self_rc2);
    /* the main thread joining itself */
    ps_thread_t *m = ps_current_thread();
    CHECK_RC_E(ps_thread_join(m, 0.5, NULL), EDEADLK);
    ps_thread_free(t);
}

Test(thread, join_nan_einval)
{
    tctx_t c = { .go = ps_event_new(0) };
    ps_thread_t *t = ps_thread_new(blocker, &c, NULL);
    CHECK_RC(ps_thread_start(t), 0);
    CHECK_RC_E(ps_thread_join(t, NAN, NULL), EINVAL);
    CHECK_RC(ps_event_set(c.go), 0);
    CHECK_RC(ps_thread_join(t, 5.0, NULL), 0);
    ps_thread_free(t);
    ps_event_free(c.go);
}

static bool not_alive(void *arg)
{
    return !ps_thread_is_alive(arg);
}

Test(thread, is_alive)
{
    tctx_t c = { .go = ps_event_new(0) };
    ps_thread_t *t = ps_thread_new(blocker, &c, NULL);
    cr_assert(!ps_thread_is_alive(t), "alive before start");
    CHECK_RC(ps_thread_start(t), 0);
    cr_assert(ps_thread_is_alive(t), "not alive right after start");
    cr_assert(wait_count(&c.running, 1, 5.0));
    cr_assert(ps_thread_is_alive(t));
    CHECK_RC(ps_event_set(c.go), 0);
    cr_assert(wait_count(&c.done, 1, 5.0));
    /* finished target: becomes not alive even without join */
    cr_assert(wait_until(not_alive, t, 5.0), "still alive after its target returned");
    CHECK_RC(ps_thread_join(t, 5.0, NULL), 0);
    cr_assert(!ps_thread_is_alive(t));
    ps_thread_free(t);
    ps_event_free(c.go);
}

Test(thread, ident)
{
    tctx_t c = { .go = ps_event_new(0) };
    ps_thread_t *t = ps_thread_new(blocker, &c, NULL);
    cr_assert_eq(ps_thread_ident(t), 0, "ident before start");
    CHECK_RC(ps_thread_start(t), 0);
    unsigned long id = ps_thread_ident(t);
    cr_assert_neq(id, 0, "ident 0 right after start");
    cr_assert(wait_count(&c.running, 1, 5.0));
    cr_assert_eq(id, c.pthread_id, "ident %lu != pthread_self %lu in the thread", id,
                 c.pthread_id);
    CHECK_RC(ps_event_set(c.go), 0);
    CHECK_RC(ps_thread_join(t, 5.0, NULL), 0);
    cr_assert_eq(ps_thread_ident(t), id, "ident changed after the thread ended");
    ps_thread_free(t);
    ps_event_free(c.go);
}

Test(thread, current_thread)
{
    tctx_t c = { 0 };
    ps_thread_t *t = ps_thread_new(blocker, &c, "cur");
    CHECK_RC(ps_thread_start(t), 0);
    CHECK_RC(ps_thread_join(t, 5.0, NULL), 0);
    cr_assert_eq(c.self, t, "ps_current_thread in the thread is not its ps_thread_t");
    ps_thread_free(t);
}

Test(thread, main_thread)
{
    ps_thread_t *m = ps_current_thread();
    cr_assert_not_null(m);
    cr_assert_eq(ps_current_thread(), m, "two calls, two objects");
    cr_assert_not_null(ps_thread_name(m));
    cr_assert_str_eq(ps_thread_name(m), "MainThread");
    cr_assert(ps_thread_is_alive(m));
    cr_assert(!ps_thread_daemon(m));
    cr_assert_eq(ps_thread_ident(m), (unsigned long)pthread_self());
    CHECK_RC_E(ps_thread_start(m), EINVAL);   /* already running */
    CHECK_RC_E(ps_thread_set_daemon(m, true), EINVAL);
}

static void *foreign(void *arg)
{
    ps_thread_t **out = arg;
    out[0] = ps_current_thread();
    out[1] = ps_current_thread();
    if (out[0] && ps_thread_ident(out[0]) != (unsigned long)pthread_self())
        out[2] = out[0];   /* flag */
    if (out[0] && !ps_thread_is_alive(out[0]))
        out[2] = out[0];
    return NULL;
}

/* A thread not made by ps_thread (a "dummy" thread in Python) still has one. */
Test(thread, current_thread_in_foreign_thread)
{
    ps_thread_t *out[3] = { 0 };
    run_threads(1, foreign, out, 0);
    cr_assert_not_null(out[0], "ps_current_thread returned NULL in a plain pthread");
    cr_assert_eq(out[0], out[1]);
    cr_assert_null(out[2], "foreign thread's object: wrong ident or not alive");
    cr_assert_neq(out[0], ps_current_thread());
}

Test(thread, join_timeout)
{
    tctx_t c = { .go = ps_event_new(0) };
    ps_thread_t *t = ps_thread_new(blocker, &c, NULL);
    CHECK_RC(ps_thread_start(t), 0);
    void *res = (void *)1;
    CHECK_RC_E(ps_thread_join(t, 0.0, &res), ETIMEDOUT);
    double t0 = now();
    CHECK_RC_E(ps_thread_join(t, 0.2, &res), ETIMEDOUT);
    cr_assert_geq(now() - t0, LOWER_BOUND(0.2), "after %.4f s", now() - t0);
    cr_assert(ps_thread_is_alive(t));
    CHECK_RC(ps_event_set(c.go), 0);
    CHECK_RC_E(ps_thread_join(t, 5.0, &res), 0);
    cr_assert_eq(res, (void *)0x1234);
    ps_thread_free(t);
    ps_event_free(c.go);
}

Test(thread, join_signal_does_not_end_wait)
{
    tctx_t c = { .go = ps_event_new(0) };
    ps_thread_t *t = ps_thread_new(blocker, &c, NULL);
    CHECK_RC(ps_thread_start(t), 0);
    signal_storm_t s;
    signal_storm_start(&s, pthread_self());
    double t0 = now();
    errno = 12345;
    int rc = ps_thread_join(t, 0.3, NULL);
    int e = errno;
    double el = now() - t0;
    signal_storm_stop(&s);
    cr_assert_eq(rc, ETIMEDOUT, "got %d (%s)", rc, strerror(rc));
    cr_assert_geq(el, LOWER_BOUND(0.3), "after %.4f s", el);
    cr_assert_eq(e, 12345);
    cr_assert_gt(sigusr1_count, 0, "no signal was delivered");
    CHECK_RC(ps_event_set(c.go), 0);
    CHECK_RC(ps_thread_join(t, 5.0, NULL), 0);
    ps_thread_free(t);
    ps_event_free(c.go);
}

/* Waiting forever in join, with signals: still waits. */
static void *set_later(void *arg)
{
    tctx_t *c = arg;
    sleep_s(0.3);
    ps_event_set(c->go);
    return NULL;
}

Test(thread, join_forever_with_signals)
{
    tctx_t c = { .go = ps_event_new(0) };
    ps_thread_t *t = ps_thread_new(blocker, &c, NULL);
    CHECK_RC(ps_thread_start(t), 0);
    pthread_t setter;
    start_threads(&setter, 1, set_later, &c, 0);
    signal_storm_t s;
    signal_storm_start(&s, pthread_self());
    void *res = NULL;
    int rc = ps_thread_join(t, PS_FOREVER, &res);
    signal_storm_stop(&s);
    join_threads(&setter, 1, NULL);
    cr_assert_eq(rc, 0);
    cr_assert_eq(res, (void *)0x1234, "join returned before the thread ended");
    cr_assert_eq(atomic_load(&c.done), 1);
    ps_thread_free(t);
    ps_event_free(c.go);
}

Test(thread, many_threads)
{
    enum { N = 40 };
    ps_thread_t *t[N];
    for (int i = 0; i < N; i++) {
        t[i] = ps_thread_new(return_arg, (void *)(intptr_t)(i + 1), NULL);
        cr_assert_not_null(t[i]);
        CHECK_RC(ps_thread_start(t[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        void *res;
        CHECK_RC(ps_thread_join(t[i], 5.0, &res), 0);
        cr_assert_eq((intptr_t)res, i + 1);
        for (int j = 0; j < i; j++)
            cr_assert_str_neq(ps_thread_name(t[i]), ps_thread_name(t[j]));
    }
    for (int i = 0; i < N; i++)
        ps_thread_free(t[i]);
}

typedef struct freectx {
    ps_event_t *go;
    atomic_int done;
} freectx_t;

static void *wait_go_then_done(void *arg)
{
    freectx_t *f = arg;
    ps_event_wait(f->go, 10.0);
    atomic_store(&f->done, 1);
    return NULL;
}

/* A running thread may be freed; it is released when it ends. */
Test(thread, free_running_thread)
{
    freectx_t f = { .go = ps_event_new(0) };
    ps_thread_t *t = ps_thread_new(wait_go_then_done, &f, NULL);
    CHECK_RC(ps_thread_start(t), 0);
    ps_thread_free(t);
    CHECK_RC(ps_event_set(f.go), 0);
    cr_assert(wait_count(&f.done, 1, 5.0));
    sleep_s(0.05);  /* let it finish tearing down (ASan would flag a use after free) */
    ps_event_free(f.go);
}

/* ------------------------------------------------------------------ exit */

typedef struct exitctx {
    atomic_int flag;
    atomic_int started;
} exitctx_t;

static void *sleep_then_flag(void *arg)
{
    exitctx_t *e = arg;
    atomic_store(&e->started, 1);
    sleep_s(0.2);
    atomic_store(&e->flag, 1);
    return NULL;
}

static void *sleep_long_then_flag(void *arg)
{
    exitctx_t *e = arg;
    atomic_store(&e->started, 1);
    sleep_s(8.0);
    atomic_store(&e->flag, 1);
    return NULL;
}

/* Objects alive when a forked child calls exit(): kept reachable from globals so
 * LeakSanitizer (make sanitize) does not report them as leaks of the child. */
static void *volatile keep_alive[4];

static int child_nondaemon(void *arg)
{
    ps_thread_t *t = ps_thread_new(sleep_then_flag, arg, NULL);
    keep_alive[0] = t;
    if (!t || ps_thread_start(t) != 0)
        return 2;
    exit(0);   /* "main returns": atexit handlers run */
}

static int child_daemon(void *arg)
{
    ps_thread_t *t = ps_thread_new(sleep_long_then_flag, arg, NULL);
    keep_alive[0] = t;
    if (!t || ps_thread_set_daemon(t, true) != 0 || ps_thread_start(t) != 0)
        return 2;
    if (!wait_count(&((exitctx_t *)arg)->started, 1, 5.0))
        return 3;
    exit(0);
}

Test(thread_exit, nondaemon_joined_at_exit)
{
    exitctx_t *e = shm_alloc(sizeof *e);
    double t0 = now();
    int code = child_wait(fork_child(child_nondaemon, e), 10.0);
    double el = now() - t0;
    cr_assert_eq(code, 0, "child ended with %d", code);
    cr_assert_eq(atomic_load(&e->flag), 1, "exit did not wait for the non-daemon thread");
    cr_assert_geq(el, LOWER_BOUND(0.2));
    shm_free(e, sizeof *e);
}

Test(thread_exit, daemon_not_waited_for)
{
    exitctx_t *e = shm_alloc(sizeof *e);
    double t0 = now();
    int code = child_wait(fork_child(child_daemon, e), 10.0);
    double el = now() - t0;
    cr_assert_eq(code, 0, "child ended with %d", code);
    cr_assert_lt(el, 5.0, "exit waited %.2f s for a daemon thread", el);
    cr_assert_eq(atomic_load(&e->flag), 0);
    shm_free(e, sizeof *e);
}

static int child_just_exit(void *arg)
{
    (void)arg;
    exit(0);
}

/* A forked child that exits must not try to join its parent's threads. */
Test(thread_exit, forked_child_does_not_join_parent_threads)
{
    tctx_t c = { .go = ps_event_new(0) };
    ps_thread_t *t = ps_thread_new(blocker, &c, NULL);   /* non-daemon, blocked */
    keep_alive[1] = t;
    keep_alive[2] = c.go;
    CHECK_RC(ps_thread_start(t), 0);
    cr_assert(wait_count(&c.running, 1, 5.0));
    double t0 = now();
    int code = child_wait(fork_child(child_just_exit, NULL), 10.0);
    double el = now() - t0;
    CHECK_RC(ps_event_set(c.go), 0);
    CHECK_RC(ps_thread_join(t, 5.0, NULL), 0);
    cr_assert_eq(code, 0, "child ended with %d (CHILD_TIMEOUT = %d)", code, CHILD_TIMEOUT);
    cr_assert_lt(el, 5.0, "child's exit took %.2f s", el);
    ps_thread_free(t);
    ps_event_free(c.go);
}

static int child_uses_threads(void *arg)
{
    (void)arg;
    ps_thread_t *m = ps_current_thread();
    if (!m)
        return 2;
    ps_thread_t *t = ps_thread_new(return_arg, (void *)5, NULL);
    void *res;
    if (!t)
        return 3;
    if (ps_thread_start(t) != 0)
        return 4;
    int rc = ps_thread_join(t, 5.0, &res);
    if (rc != 0)
        return 10 + rc;     /* 10 + ETIMEDOUT = 120 */
    if (res != (void *)5)
        return 5;
    ps_thread_free(t);
    exit(0);
}

Test(thread_exit, threads_work_in_forked_child)
{
    tctx_t c = { .go = ps_event_new(0) };
    ps_thread_t *t = ps_thread_new(blocker, &c, NULL);
    keep_alive[1] = t;
    keep_alive[2] = c.go;
    CHECK_RC(ps_thread_start(t), 0);
    cr_assert(wait_count(&c.running, 1, 5.0));
    sleep_s(0.01);   /* let it settle in its wait (ASan's fork + pthread_create race) */
    int code = child_wait(fork_child(child_uses_threads, NULL), 10.0);
    CHECK_RC(ps_event_set(c.go), 0);
    CHECK_RC(ps_thread_join(t, 5.0, NULL), 0);
    cr_assert_eq(code, 0, "child ended with %d", code);
    ps_thread_free(t);
    ps_event_free(c.go);
}

/* ------------------------------------------------------------------ Python details */

static void *make_child_thread(void *arg)
{
    (void)arg;
    ps_thread_t *t = ps_thread_new(return_arg, NULL, NULL);
    bool d = t && ps_thread_daemon(t);
    ps_thread_free(t);
    return (void *)(intptr_t)(d ? 1 : 2);
}

/* Python: "The initial value is inherited from the creating thread." */
Test(thread, daemon_inherited_from_creator)
{
    ps_thread_t *t = ps_thread_new(make_child_thread, NULL, NULL);
    CHECK_RC(ps_thread_set_daemon(t, true), 0);
    CHECK_RC(ps_thread_start(t), 0);
    void *res;
    CHECK_RC(ps_thread_join(t, 5.0, &res), 0);
    cr_assert_eq((intptr_t)res, 1, "a thread made by a daemon thread is not a daemon");
    ps_thread_free(t);
}

/* ps_thread(3): a name is copied, at most 63 bytes of it; longer ones are cut. */
Test(thread, long_name_truncated_to_63_bytes)
{
    char name[200];
    for (int i = 0; i < 199; i++)
        name[i] = (char)('a' + i % 26);
    name[199] = '\0';
    ps_thread_t *t = ps_thread_new(return_arg, NULL, name);
    cr_assert_not_null(t);
    cr_assert_eq(strlen(ps_thread_name(t)), 63, "199-byte name kept as %zu bytes",
                 strlen(ps_thread_name(t)));
    cr_assert_eq(strncmp(ps_thread_name(t), name, 63), 0, "not the first 63 bytes");
    ps_thread_free(t);
}

Test(thread, name_of_63_bytes_kept_whole)
{
    char name[64];
    memset(name, 'n', 63);
    name[63] = '\0';
    ps_thread_t *t = ps_thread_new(return_arg, NULL, name);
    cr_assert_not_null(t);
    cr_assert_str_eq(ps_thread_name(t), name);
    ps_thread_free(t);
}

/* ------------------------------------------------------------------ out of memory */

/* Blocks taken by exhaust_memory, chained through their first word so that they stay
 * reachable (the compiler cannot drop the calls, LeakSanitizer sees no leak). */
static void *volatile memory_hoard;

static bool hoard(size_t size)
{
    void **block = malloc(size);
    if (!block)
        return false;
    *block = memory_hoard;
    memory_hoard = block;
    return true;
}

/* Makes later allocations of this (child) process fail: the address space may no
 * longer grow, and what the heaps still hold is taken, largest blocks first.
 * False if that did not work (the limit had no effect). */
static bool exhaust_memory(void)
{
    long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld", &pages) != 1)
        return false;
    fclose(f);
    struct rlimit lim = { .rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) };
    lim.rlim_max = lim.rlim_cur;
    if (setrlimit(RLIMIT_AS, &lim) != 0)
        return false;
    size_t taken = 0;
    for (size_t size = (size_t)1 << 20; size >= sizeof(void *); size /= 2) {
        while (hoard(size)) {
            taken += size;
            if (taken > ((size_t)1 << 30))
                return false;
        }
    }
    return true;
}

#define NOT_EXHAUSTED 90    /* child: could not make allocations fail */

static int current_thread_without_memory(const char *expected_prefix)
{
    if (!exhaust_memory())
        return NOT_EXHAUSTED;
    if (hoard(256))             /* more than the old code asked for */
        return NOT_EXHAUSTED;
    ps_thread_t *t = ps_current_thread();
    if (!t)
        return 1;
    if (ps_current_thread() != t)
        return 2;
    if (strncmp(ps_thread_name(t), expected_prefix, strlen(expected_prefix)) != 0)
        return 3;
    if (!ps_thread_is_alive(t) || ps_thread_ident(t) != (unsigned long)pthread_self())
        return 4;
    return 0;
}

static int child_main_thread_without_memory(void *arg)
{
    (void)arg;
    return current_thread_without_memory("MainThread");
}

static void *foreign_thread_without_memory(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)current_thread_without_memory("Dummy-");
}

static int child_foreign_thread_without_memory(void *arg)
{
    (void)arg;
    pthread_t tid;
    void *code;
    if (pthread_create(&tid, NULL, foreign_thread_without_memory, NULL) != 0)
        return 80;
    pthread_join(tid, &code);
    return (int)(intptr_t)code;
}

static void check_child_without_memory(int (*child)(void *))
{
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("ASan's allocator cannot run under a tight RLIMIT_AS");
#endif
    int code = child_wait(fork_child(child, NULL), 20.0);
    if (code == NOT_EXHAUSTED)
        cr_skip_test("could not make allocations fail here");
    cr_assert_eq(code, 0, "child ended with %d (1: ps_current_thread returned NULL)", code);
}

/* The header promises "never NULL": adopting the main thread must need no memory. */
Test(thread, current_thread_in_main_needs_no_memory)
{
    check_child_without_memory(child_main_thread_without_memory);
}

Test(thread, current_thread_in_foreign_thread_needs_no_memory)
{
    check_child_without_memory(child_foreign_thread_without_memory);
}
