/* SPDX-License-Identifier: MIT */
/* tests/test_process.c - ps_process_t (multiprocessing.Process, fork start method).
 * Names follow CPython Lib/test/_test_multiprocessing.py _TestProcess where a test
 * ports one (test_process, test_terminate, test_kill, test_exitcode...); the rest
 * checks what C adds: reaping, pidfds, errno, fork hygiene, exit-time handling.
 *
 * Children never block for long: whatever they wait for, they wait at most a few
 * seconds, so a failing test leaves no process behind for more than that. */
#include <criterion/criterion.h>
#include <pysync/multiprocessing.h>

#include <poll.h>
#include <sys/syscall.h>

#include "helpers.h"

TestSuite(process, .timeout = 30);
TestSuite(process_exit, .timeout = 30);

/* What the children of a test share with it: lives in MAP_SHARED memory. */
typedef struct shared {
    ps_event_t go;              /* children that block wait for it (5 s at most) */
    atomic_int started;
    atomic_int done;
    atomic_int pid;             /* a grandchild's pid, reported by its parent */
    atomic_int watched;         /* the test holds a pidfd on that grandchild */
    atomic_int atexit_runs;
} shared_t;

static shared_t *shared_new(void)
{
    shared_t *s = shm_alloc(sizeof *s);
    cr_assert_eq(ps_event_init(&s->go, PS_SHARED), 0);
    return s;
}

static void shared_free(shared_t *s)
{
    ps_event_destroy(&s->go);
    shm_free(s, sizeof *s);
}

/* ---- targets ---- */

static int return_int(void *arg)
{
    return (int)(intptr_t)arg;
}

/* Says it started, waits for go (5 s at most), says it is done. */
static int wait_for_go(void *arg)
{
    shared_t *s = arg;
    atomic_store(&s->started, 1);
    int rc = ps_event_wait(&s->go, 5.0);
    atomic_store(&s->done, 1);
    return rc == 0 ? 0 : 1;
}

static int sleep_5s(void *arg)
{
    shared_t *s = arg;
    atomic_store(&s->started, 1);
    sleep_s(5.0);
    return 0;
}

/* ---- helpers ---- */

static ps_process_t *start_process(int (*target)(void *), void *arg)
{
    ps_process_t *p = ps_process_new(target, arg, NULL);
    cr_assert_not_null(p);
    CHECK_RC(ps_process_start(p), 0);
    return p;
}

/* Lets a blocked child finish and reaps it. */
static void release_and_join(shared_t *s, ps_process_t *p)
{
    CHECK_RC(ps_event_set(&s->go), 0);
    CHECK_RC(ps_process_join(p, 10.0), 0);
}

static int pidfd_of(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* True once the process behind pidfd has ended (whoever its parent is). */
static bool ended_within(int pidfd, double timeout)
{
    struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
    double end = now() + timeout;
    for (;;) {
        double left = end - now();
        if (left < 0)
            left = 0;
        int n = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (n > 0)
            return true;
        if (n == 0 && now() >= end)
            return false;
    }
}

/* SIGKILLs a process we may not be the parent of, and reaps it if we are. */
static void kill_stray(int pidfd, pid_t pid)
{
    syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
    ended_within(pidfd, 5.0);
    waitpid(pid, NULL, WNOHANG);
}

/* ------------------------------------------------------------------ basics */

/* CPython test_process: start, is_alive, join, exitcode. */
Test(process, test_process)
{
    shared_t *s = shared_new();
    ps_process_t *p = ps_process_new(wait_for_go, s, NULL);
    cr_assert_not_null(p);
    cr_assert(!ps_process_is_alive(p), "alive before start");
    cr_assert_eq(ps_process_pid(p), 0, "pid before start");
    cr_assert_eq(ps_process_exitcode(p), PS_EXITCODE_NONE);
    CHECK_RC_E(ps_process_start(p), 0);
    cr_assert_gt(ps_process_pid(p), 0);
    cr_assert_neq(ps_process_pid(p), getpid());
    cr_assert(ps_process_is_alive(p), "not alive right after start");
    cr_assert(wait_count(&s->started, 1, 5.0), "the target never ran");
    cr_assert(ps_process_is_alive(p));
    cr_assert_eq(ps_process_exitcode(p), PS_EXITCODE_NONE, "exitcode while running");
    release_and_join(s, p);
    cr_assert(!ps_process_is_alive(p));
    cr_assert_eq(ps_process_exitcode(p), 0);
    cr_assert_eq(atomic_load(&s->done), 1);
    ps_process_free(p);
    shared_free(s);
}

Test(process, null_object_einval)
{
    CHECK_RC_E(ps_process_start(NULL), EINVAL);
    CHECK_RC_E(ps_process_join(NULL, 1.0), EINVAL);
    CHECK_RC_E(ps_process_set_daemon(NULL, true), EINVAL);
    CHECK_RC_E(ps_process_terminate(NULL), EINVAL);
    CHECK_RC_E(ps_process_kill(NULL), EINVAL);
    cr_assert(!ps_process_is_alive(NULL));
    cr_assert_eq(ps_process_exitcode(NULL), PS_EXITCODE_NONE);
    cr_assert_eq(ps_process_pid(NULL), 0);
    cr_assert_null(ps_process_name(NULL));
    errno = 0;
    cr_assert_null(ps_process_new(NULL, NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    ps_process_free(NULL);
}

/* ------------------------------------------------------------------ names */

Test(process, default_names)
{
    ps_process_t *a = ps_process_new(return_int, NULL, NULL);
    ps_process_t *b = ps_process_new(return_int, NULL, NULL);
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    const char *na = ps_process_name(a), *nb = ps_process_name(b);
    cr_assert_eq(strncmp(na, "Process-", 8), 0, "default name '%s'", na);
    char *end;
    long ka = strtol(na + 8, &end, 10);
    cr_assert(*end == '\0' && ka >= 1, "default name '%s' is not Process-N", na);
    long kb = strtol(nb + 8, &end, 10);
    cr_assert(*end == '\0' && kb == ka + 1, "consecutive default names: '%s' then '%s'",
              na, nb);
    ps_process_free(a);
    ps_process_free(b);
}

/* Each test runs in a fresh process, so the first default name is Process-1. */
Test(process, first_default_name_is_process_1)
{
    ps_process_t *p = ps_process_new(return_int, NULL, NULL);
    cr_assert_str_eq(ps_process_name(p), "Process-1");
    ps_process_free(p);
}

Test(process, custom_name_copied)
{
    char buf[32] = "worker-7";
    ps_process_t *p = ps_process_new(return_int, NULL, buf);
    strcpy(buf, "changed");
    cr_assert_str_eq(ps_process_name(p), "worker-7", "name not copied");
    CHECK_RC(ps_process_start(p), 0);
    CHECK_RC(ps_process_join(p, 10.0), 0);
    cr_assert_str_eq(ps_process_name(p), "worker-7");
    ps_process_free(p);
}

Test(process, long_name_truncated_to_63_bytes)
{
    char name[200];
    for (int i = 0; i < 199; i++)
        name[i] = (char)('a' + i % 26);
    name[199] = '\0';
    ps_process_t *p = ps_process_new(return_int, NULL, name);
    cr_assert_eq(strlen(ps_process_name(p)), 63);
    cr_assert_eq(strncmp(ps_process_name(p), name, 63), 0, "not the first 63 bytes");
    ps_process_free(p);
    name[63] = '\0';
    p = ps_process_new(return_int, NULL, name);
    cr_assert_str_eq(ps_process_name(p), name, "a 63-byte name was not kept whole");
    ps_process_free(p);
}

/* ------------------------------------------------------------------ exit codes */

/* CPython test_exitcode (sys.exit(n) there, the target's return value here). */
Test(process, test_exitcode)
{
    static const struct { int ret, code; } cases[] = {
        { 0, 0 }, { 7, 7 }, { 255, 255 }, { 256, 0 }, { 300, 44 }, { -1, 255 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ps_process_t *p = start_process(return_int, (void *)(intptr_t)cases[i].ret);
        CHECK_RC_E(ps_process_join(p, 10.0), 0);
        cr_assert_eq(ps_process_exitcode(p), cases[i].code, "target returned %d: exitcode %d",
                     cases[i].ret, ps_process_exitcode(p));
        ps_process_free(p);
    }
}

/* CPython test_terminate: SIGTERM, exitcode -SIGTERM. */
Test(process, test_terminate)
{
    shared_t *s = shared_new();
    ps_process_t *p = start_process(sleep_5s, s);
    cr_assert(wait_count(&s->started, 1, 5.0));
    CHECK_RC_E(ps_process_join(p, 0.0), ETIMEDOUT);
    CHECK_RC_E(ps_process_terminate(p), 0);
    CHECK_RC_E(ps_process_join(p, 10.0), 0);
    cr_assert_eq(ps_process_exitcode(p), -SIGTERM);
    cr_assert(!ps_process_is_alive(p));
    CHECK_RC_E(ps_process_terminate(p), 0);     /* ended: nothing to do */
    CHECK_RC_E(ps_process_kill(p), 0);
    cr_assert_eq(ps_process_exitcode(p), -SIGTERM);
    ps_process_free(p);
    shared_free(s);
}

/* CPython test_kill: SIGKILL, exitcode -9. */
Test(process, test_kill)
{
    shared_t *s = shared_new();
    ps_process_t *p = start_process(sleep_5s, s);
    cr_assert(wait_count(&s->started, 1, 5.0));
    CHECK_RC_E(ps_process_kill(p), 0);
    CHECK_RC_E(ps_process_join(p, 10.0), 0);
    cr_assert_eq(ps_process_exitcode(p), -9);
    ps_process_free(p);
    shared_free(s);
}

Test(process, signal_before_start_einval)
{
    ps_process_t *p = ps_process_new(return_int, NULL, NULL);
    CHECK_RC_E(ps_process_terminate(p), EINVAL);
    CHECK_RC_E(ps_process_kill(p), EINVAL);
    ps_process_free(p);
}

static bool not_alive(void *arg)
{
    return !ps_process_is_alive(arg);
}

/* As in Python, is_alive and exitcode collect an ended child: no join needed. */
Test(process, exitcode_without_join)
{
    ps_process_t *p = start_process(return_int, (void *)5);
    cr_assert(wait_until(not_alive, p, 10.0), "still alive");
    cr_assert_eq(ps_process_exitcode(p), 5);
    CHECK_RC_E(ps_process_join(p, 0.0), 0);
    ps_process_free(p);
}

/* ------------------------------------------------------------------ join */

Test(process, join_timeout_lower_bound)
{
    shared_t *s = shared_new();
    ps_process_t *p = start_process(wait_for_go, s);
    double t0 = now();
    CHECK_RC_E(ps_process_join(p, 0.2), ETIMEDOUT);
    double el = now() - t0;
    cr_assert_geq(el, LOWER_BOUND(0.2), "ETIMEDOUT after %.4f s", el);
    cr_assert(ps_process_is_alive(p));
    cr_assert_eq(ps_process_exitcode(p), PS_EXITCODE_NONE);
    release_and_join(s, p);
    ps_process_free(p);
    shared_free(s);
}

Test(process, join_nan_or_unstarted_einval)
{
    ps_process_t *p = ps_process_new(return_int, NULL, NULL);
    CHECK_RC_E(ps_process_join(p, 1.0), EINVAL);
    CHECK_RC_E(ps_process_join(p, PS_FOREVER), EINVAL);
    CHECK_RC(ps_process_start(p), 0);
    CHECK_RC_E(ps_process_join(p, NAN), EINVAL);
    CHECK_RC(ps_process_join(p, 10.0), 0);
    ps_process_free(p);
}

Test(process, join_twice)
{
    ps_process_t *p = start_process(return_int, (void *)3);
    CHECK_RC_E(ps_process_join(p, PS_FOREVER), 0);
    CHECK_RC_E(ps_process_join(p, PS_FOREVER), 0);
    CHECK_RC_E(ps_process_join(p, 0.0), 0);
    cr_assert_eq(ps_process_exitcode(p), 3);
    ps_process_free(p);
}

typedef struct joiner {
    ps_process_t *p;
    int rc;
    int code;
    bool errno_ok;
} joiner_t;

static void *join_and_read(void *arg)
{
    joiner_t *j = arg;
    RECORD_RC_E(&j->rc, &j->errno_ok, ps_process_join(j->p, 10.0));
    j->code = ps_process_exitcode(j->p);
    return NULL;
}

Test(process, join_from_two_threads)
{
    shared_t *s = shared_new();
    ps_process_t *p = start_process(wait_for_go, s);
    joiner_t j[2] = { { .p = p, .errno_ok = true }, { .p = p, .errno_ok = true } };
    pthread_t t[2];
    start_threads(t, 2, join_and_read, j, sizeof j[0]);
    sleep_s(0.1);                       /* both in join */
    CHECK_RC(ps_event_set(&s->go), 0);
    join_threads(t, 2, NULL);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(j[i].rc, 0, "joiner %d: %d", i, j[i].rc);
        cr_assert(j[i].errno_ok, "joiner %d: errno changed", i);
        cr_assert_eq(j[i].code, 0, "joiner %d: exitcode %d", i, j[i].code);
    }
    ps_process_free(p);
    shared_free(s);
}

Test(process, join_signal_does_not_end_wait)
{
    shared_t *s = shared_new();
    ps_process_t *p = start_process(wait_for_go, s);
    signal_storm_t storm;
    signal_storm_start(&storm, pthread_self());
    double t0 = now();
    errno = 12345;
    int rc = ps_process_join(p, 0.3);
    int e = errno;
    double el = now() - t0;
    signal_storm_stop(&storm);
    cr_assert_eq(rc, ETIMEDOUT, "got %d (%s)", rc, strerror(rc));
    cr_assert_geq(el, LOWER_BOUND(0.3), "after %.4f s", el);
    cr_assert_eq(e, 12345);
    cr_assert_gt(sigusr1_count, 0, "no signal was delivered");
    release_and_join(s, p);
    ps_process_free(p);
    shared_free(s);
}

/* The program's own waitpid took the status: join says ECHILD, it does not hang. */
Test(process, join_echild_when_reaped_elsewhere)
{
    ps_process_t *p = start_process(return_int, (void *)4);
    int status;
    cr_assert_eq(waitpid(ps_process_pid(p), &status, 0), ps_process_pid(p));
    cr_assert_eq(WEXITSTATUS(status), 4);
    CHECK_RC_E(ps_process_join(p, PS_FOREVER), ECHILD);
    CHECK_RC_E(ps_process_join(p, 1.0), ECHILD);
    cr_assert(!ps_process_is_alive(p));
    cr_assert_eq(ps_process_exitcode(p), PS_EXITCODE_NONE);
    CHECK_RC_E(ps_process_terminate(p), 0);
    ps_process_free(p);
}

static void *join_forever(void *arg)
{
    joiner_t *j = arg;
    RECORD_RC_E(&j->rc, &j->errno_ok, ps_process_join(j->p, PS_FOREVER));
    return NULL;
}

/* A join already asleep when the program's waitpid takes the status wakes up: exactly one of
 * the two gets the status. */
Test(process, blocked_join_wakes_when_reaped_elsewhere)
{
    shared_t *s = shared_new();
    ps_process_t *p = start_process(wait_for_go, s);
    joiner_t j = { .p = p, .errno_ok = true };
    pthread_t t;
    start_threads(&t, 1, join_forever, &j, 0);
    sleep_s(0.1);
    CHECK_RC(ps_event_set(&s->go), 0);
    int status;
    pid_t got = waitpid(ps_process_pid(p), &status, 0);   /* as a waitpid(-1) would */
    join_threads(&t, 1, NULL);
    cr_assert(j.errno_ok);
    if (got == ps_process_pid(p))
        cr_assert_eq(j.rc, ECHILD, "reaped by waitpid, join gave %d", j.rc);
    else
        cr_assert(got < 0 && j.rc == 0, "waitpid %d, join %d", (int)got, j.rc);
    ps_process_free(p);
    shared_free(s);
}

/* ------------------------------------------------------------------ misuse */

Test(process, start_twice_einval)
{
    shared_t *s = shared_new();
    ps_process_t *p = start_process(wait_for_go, s);
    CHECK_RC_E(ps_process_start(p), EINVAL);    /* while running */
    release_and_join(s, p);
    CHECK_RC_E(ps_process_start(p), EINVAL);    /* after it ended */
    ps_process_free(p);
    shared_free(s);
}

Test(process, set_daemon_after_start_einval)
{
    ps_process_t *p = ps_process_new(return_int, NULL, NULL);
    cr_assert(!ps_process_daemon(p));
    CHECK_RC_E(ps_process_set_daemon(p, true), 0);
    cr_assert(ps_process_daemon(p));
    CHECK_RC_E(ps_process_set_daemon(p, false), 0);
    CHECK_RC(ps_process_start(p), 0);
    CHECK_RC_E(ps_process_set_daemon(p, true), EINVAL);
    cr_assert(!ps_process_daemon(p), "a failed set_daemon changed the flag");
    CHECK_RC(ps_process_join(p, 10.0), 0);
    CHECK_RC_E(ps_process_set_daemon(p, true), EINVAL);
    ps_process_free(p);
}

typedef struct selfctx {
    ps_process_t *p;            /* the child's copy of its own object */
} selfctx_t;

/* In the child: its own object is alive, cannot be joined, is not a child. */
static int look_at_self(void *arg)
{
    selfctx_t *c = arg;
    if (!ps_process_is_alive(c->p))
        return 1;
    if (ps_process_join(c->p, 1.0) != EDEADLK)
        return 2;
    if (ps_process_pid(c->p) != getpid())
        return 3;
    return 0;
}

Test(process, child_sees_itself)
{
    selfctx_t c;
    c.p = ps_process_new(look_at_self, &c, NULL);
    CHECK_RC(ps_process_start(c.p), 0);
    CHECK_RC(ps_process_join(c.p, 10.0), 0);
    cr_assert_eq(ps_process_exitcode(c.p), 0, "child's check %d failed",
                 ps_process_exitcode(c.p));
    ps_process_free(c.p);
}

/* ------------------------------------------------------------------ free */

static bool zombie(void *arg)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    pid_t pid = (pid_t)(intptr_t)arg;
    return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

/* A freed running child runs on; a later start reaps it (no zombie is left). */
Test(process, free_running_child)
{
    shared_t *s = shared_new();
    ps_process_t *p = start_process(wait_for_go, s);
    pid_t pid = ps_process_pid(p);
    cr_assert(wait_count(&s->started, 1, 5.0));
    ps_process_free(p);
    cr_assert_eq(kill(pid, 0), 0, "free killed the child");
    CHECK_RC(ps_event_set(&s->go), 0);
    cr_assert(wait_count(&s->done, 1, 5.0), "the freed child did not run on");
    cr_assert(wait_until(zombie, (void *)(intptr_t)pid, 5.0));
    ps_process_t *q = start_process(return_int, NULL);
    siginfo_t si;
    errno = 0;
    cr_assert_eq(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG), -1,
                 "the freed child was not reaped by the next start");
    cr_assert_eq(errno, ECHILD);
    CHECK_RC(ps_process_join(q, 10.0), 0);
    ps_process_free(q);
    shared_free(s);
}

/* ------------------------------------------------------------------ fork hygiene */

/* Runs fn(arg) in a forked intermediate process and returns how it ended. */
static int in_intermediate(int (*fn)(void *), void *arg)
{
    return child_wait(fork_child(fn, arg), 15.0);
}

static int print_in_child(void *arg)
{
    (void)arg;
    printf("child-");           /* no newline: still in the buffer at return */
    return 0;
}

static int parent_prints_around_child(void *arg)
{
    FILE *out = arg;
    fflush(stdout);
    if (dup2(fileno(out), STDOUT_FILENO) < 0)
        return 10;
    setvbuf(stdout, NULL, _IOFBF, 4096);        /* as for a file or a pipe */
    printf("parent-");
    ps_process_t *p = ps_process_new(print_in_child, NULL, NULL);
    if (!p || ps_process_start(p) != 0)
        return 11;
    if (ps_process_join(p, 10.0) != 0 || ps_process_exitcode(p) != 0)
        return 12;
    printf("end");
    fflush(stdout);
    return 0;
}

/* The child flushes its stdio at the end, and writes nothing the parent had
 * buffered before start. */
Test(process, child_stdio_flushed)
{
    FILE *out = tmpfile();
    cr_assert_not_null(out);
    int code = in_intermediate(parent_prints_around_child, out);
    cr_assert_eq(code, 0, "intermediate ended with %d", code);
    char buf[64] = "";
    rewind(out);
    size_t n = fread(buf, 1, sizeof buf - 1, out);
    buf[n] = '\0';
    fclose(out);
    cr_assert_str_eq(buf, "parent-child-end");
}

static void *wait_for_go_thread(void *arg)
{
    wait_for_go(arg);
    return NULL;
}

static shared_t *atexit_shared;

static void count_atexit(void)
{
    atomic_fetch_add(&atexit_shared->atexit_runs, 1);
}

/* The intermediate has an atexit handler, a non-daemon thread and a non-daemon
 * process that all wait for go; its child must end at once without any of them. */
static int parent_with_exit_work(void *arg)
{
    shared_t *s = arg;
    atexit_shared = s;
    atexit(count_atexit);
    ps_process_t *waiter = ps_process_new(wait_for_go, s, NULL);
    ps_thread_t *t = ps_thread_new(wait_for_go_thread, s, NULL);
    if (!waiter || !t || ps_process_start(waiter) != 0 || ps_thread_start(t) != 0)
        return 10;
    ps_process_t *quick = ps_process_new(return_int, (void *)9, NULL);
    if (!quick || ps_process_start(quick) != 0)
        return 11;
    int rc = ps_process_join(quick, 2.0);
    ps_event_set(&s->go);
    if (rc != 0)
        return 12;
    if (ps_process_exitcode(quick) != 9)
        return 13;
    if (atomic_load(&s->atexit_runs) != 0)
        return 14;
    exit(0);                    /* joins waiter and t, runs count_atexit once */
}

Test(process_exit, child_skips_parent_atexit_and_joins)
{
    shared_t *s = shared_new();
    int code = in_intermediate(parent_with_exit_work, s);
    cr_assert_eq(code, 0, "intermediate ended with %d (12: the child waited)", code);
    cr_assert_eq(atomic_load(&s->atexit_runs), 1, "atexit ran %d times",
                 atomic_load(&s->atexit_runs));
    shared_free(s);
}

/* ------------------------------------------------------------------ exit */

static int sleep_then_finish(void *arg)
{
    shared_t *s = arg;
    atomic_store(&s->started, 1);
    sleep_s(0.3);
    atomic_store(&s->done, 1);
    return 0;
}

static int start_and_return(void *arg)
{
    ps_process_t *p = ps_process_new(sleep_then_finish, arg, NULL);
    if (!p || ps_process_start(p) != 0)
        return 10;
    return 0;                   /* "main returns": fork_child's child calls _exit... */
}

static int start_and_exit(void *arg)
{
    if (start_and_return(arg) != 0)
        return 10;
    exit(0);                    /* ...so this one calls exit, as main's return does */
}

/* Python joins non-daemon children when the main module ends. */
Test(process_exit, nondaemon_joined_when_main_returns)
{
    shared_t *s = shared_new();
    double t0 = now();
    int code = in_intermediate(start_and_exit, s);
    double el = now() - t0;
    cr_assert_eq(code, 0, "intermediate ended with %d", code);
    cr_assert_eq(atomic_load(&s->done), 1, "exit did not wait for the child");
    cr_assert_geq(el, LOWER_BOUND(0.3));
    shared_free(s);
}

/* A child's own non-daemon children are joined when its target returns. */
Test(process_exit, child_joins_its_own_children)
{
    shared_t *s = shared_new();
    ps_process_t *p = start_process(start_and_return, s);
    CHECK_RC(ps_process_join(p, 10.0), 0);
    cr_assert_eq(ps_process_exitcode(p), 0);
    cr_assert_eq(atomic_load(&s->done), 1, "the child did not join its child");
    ps_process_free(p);
    shared_free(s);
}

/* A child's non-daemon threads are joined when its target returns, before it
 * exits (Python's child runs threading._shutdown()). */
static void *sleep_then_done(void *arg)
{
    shared_t *s = arg;
    sleep_s(0.2);
    atomic_store(&s->done, 1);
    return NULL;
}

static int start_thread_and_return(void *arg)
{
    ps_thread_t *t = ps_thread_new(sleep_then_done, arg, NULL);
    return t && ps_thread_start(t) == 0 ? 0 : 1;
}

Test(process_exit, child_joins_its_nondaemon_threads)
{
    shared_t *s = shared_new();
    ps_process_t *p = start_process(start_thread_and_return, s);
    CHECK_RC(ps_process_join(p, 10.0), 0);
    cr_assert_eq(ps_process_exitcode(p), 0);
    cr_assert_eq(atomic_load(&s->done), 1, "the child exited before its thread ended");
    ps_process_free(p);
    shared_free(s);
}

static int report_pid_and_sleep(void *arg)
{
    shared_t *s = arg;
    atomic_store(&s->pid, (int)getpid());
    atomic_store(&s->started, 1);
    sleep_s(5.0);
    atomic_store(&s->done, 1);
    return 0;
}

static int start_daemon(shared_t *s)
{
    ps_process_t *p = ps_process_new(report_pid_and_sleep, s, NULL);
    if (!p || ps_process_set_daemon(p, true) != 0 || ps_process_start(p) != 0)
        return 10;
    if (!wait_count(&s->started, 1, 5.0))
        return 11;
    return wait_count(&s->watched, 1, 5.0) ? 0 : 12;   /* or it may be gone too soon */
}

static int start_daemon_and_hang(void *arg)
{
    if (start_daemon(arg) != 0)
        return 10;
    sleep_s(10.0);              /* until the test SIGKILLs us */
    return 12;
}

static void *start_daemon_thread(void *arg)
{
    return (void *)(intptr_t)start_daemon(arg);
}

/* The thread that starts the daemon ends first (PITFALLS 3). */
static int start_daemon_from_thread_and_hang(void *arg)
{
    pthread_t t;
    void *rc;
    if (pthread_create(&t, NULL, start_daemon_thread, arg) != 0)
        return 9;
    pthread_join(t, &rc);
    if (rc != NULL)
        return 10;
    sleep_s(10.0);              /* until the test SIGKILLs us */
    return 12;
}

static int start_daemon_and_exit(void *arg)
{
    if (start_daemon(arg) != 0)
        return 10;
    exit(0);
}

/* Forks an intermediate that runs fn (which starts a daemon grandchild), waits
 * until the grandchild runs and returns a pidfd on it, and the intermediate's pid. */
static int fork_with_daemon_grandchild(shared_t *s, int (*fn)(void *), pid_t *intermediate)
{
    *intermediate = fork_child(fn, s);
    cr_assert(wait_count(&s->started, 1, 5.0), "the daemon never started");
    int pidfd = pidfd_of((pid_t)atomic_load(&s->pid));
    cr_assert_geq(pidfd, 0, "pidfd_open: %s", strerror(errno));
    atomic_store(&s->watched, 1);
    return pidfd;
}

Test(process_exit, daemon_dies_when_parent_is_killed)
{
    shared_t *s = shared_new();
    pid_t mid;
    int pidfd = fork_with_daemon_grandchild(s, start_daemon_and_hang, &mid);
    child_kill(mid);
    bool ended = ended_within(pidfd, 1.0);
    kill_stray(pidfd, (pid_t)atomic_load(&s->pid));
    close(pidfd);
    cr_assert(ended, "the daemon outlived its SIGKILLed parent by 1 s");
    cr_assert_eq(atomic_load(&s->done), 0);
    shared_free(s);
}

Test(process_exit, daemon_started_by_thread_dies_when_parent_is_killed)
{
    shared_t *s = shared_new();
    pid_t mid;
    int pidfd = fork_with_daemon_grandchild(s, start_daemon_from_thread_and_hang, &mid);
    sleep_s(0.05);              /* the starting thread is gone by now */
    pid_t daemon = (pid_t)atomic_load(&s->pid);
    char state = task_state(daemon, daemon);
    cr_assert(state != 0 && state != 'Z', "the daemon died with the thread that started it");
    child_kill(mid);
    bool ended = ended_within(pidfd, 1.0);
    kill_stray(pidfd, (pid_t)atomic_load(&s->pid));
    close(pidfd);
    cr_assert(ended, "the daemon outlived its SIGKILLed parent by 1 s");
    cr_assert_eq(atomic_load(&s->done), 0);
    shared_free(s);
}

Test(process_exit, daemon_dies_when_parent_exits)
{
    shared_t *s = shared_new();
    pid_t mid;
    int pidfd = fork_with_daemon_grandchild(s, start_daemon_and_exit, &mid);
    int code = child_wait(mid, 10.0);
    bool ended = ended_within(pidfd, 1.0);
    kill_stray(pidfd, (pid_t)atomic_load(&s->pid));
    close(pidfd);
    cr_assert_eq(code, 0, "intermediate ended with %d", code);
    cr_assert(ended, "the daemon outlived its parent's exit by 1 s");
    cr_assert_eq(atomic_load(&s->done), 0);
    shared_free(s);
}

static void *start_daemon_in_thread(void *arg)
{
    ps_process_t *p = ps_process_new(wait_for_go, arg, NULL);
    if (p && (ps_process_set_daemon(p, true) != 0 || ps_process_start(p) != 0)) {
        ps_process_free(p);
        return NULL;
    }
    /* The thread must end after the child armed whatever it arms. */
    wait_count(&((shared_t *)arg)->started, 1, 5.0);
    return p;
}

/* PITFALLS 3: the kernel's parent-death signal follows the forking thread. A
 * daemon started by a thread that ends at once must not die with that thread. */
Test(process, daemon_outlives_the_thread_that_started_it)
{
    shared_t *s = shared_new();
    pthread_t t;
    start_threads(&t, 1, start_daemon_in_thread, s, 0);
    void *res;
    join_threads(&t, 1, &res);
    ps_process_t *p = res;
    cr_assert_not_null(p);
    cr_assert(wait_count(&s->started, 1, 5.0));
    sleep_s(0.1);               /* the thread is gone: a signal would have come */
    cr_assert(ps_process_is_alive(p), "the daemon died with the thread (exitcode %d)",
              ps_process_exitcode(p));
    release_and_join(s, p);
    cr_assert_eq(ps_process_exitcode(p), 0, "exitcode %d", ps_process_exitcode(p));
    ps_process_free(p);
    shared_free(s);
}

/* ------------------------------------------------------------------ many */

Test(process, many_processes)
{
    enum { N = 20 };
    ps_process_t *p[N];
    for (int i = 0; i < N; i++)
        p[i] = start_process(return_int, (void *)(intptr_t)i);
    for (int i = 0; i < N; i++) {
        CHECK_RC(ps_process_join(p[i], 10.0), 0);
        cr_assert_eq(ps_process_exitcode(p[i]), i);
    }
    for (int i = 0; i < N; i++)
        ps_process_free(p[i]);
}

/* ------------------------------------------------------------------ copies */

typedef struct copyctx {
    ps_process_t *p;            /* a sibling's object, copied by fork */
} copyctx_t;

/* In a plain forked child: the parent's process object is not its child. */
static int use_parents_object(void *arg)
{
    copyctx_t *c = arg;
    if (ps_process_join(c->p, 1.0) != ECHILD)
        return 1;
    if (ps_process_is_alive(c->p))
        return 2;
    if (ps_process_kill(c->p) != ECHILD)
        return 3;
    ps_process_free(c->p);      /* the copy only */
    return 0;
}

Test(process, forked_copy_is_not_a_child)
{
    shared_t *s = shared_new();
    copyctx_t c = { .p = start_process(wait_for_go, s) };
    int code = child_wait(fork_child(use_parents_object, &c), 10.0);
    cr_assert(ps_process_is_alive(c.p), "the copy's calls touched the real child");
    release_and_join(s, c.p);
    cr_assert_eq(code, 0, "check %d failed in the forked child", code);
    cr_assert_eq(ps_process_exitcode(c.p), 0);
    ps_process_free(c.p);
    shared_free(s);
}
