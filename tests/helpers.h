/* tests/helpers.h - small helpers shared by the test files and the stress programs.
 *
 * Everything here is static (one runner binary links all test files together).
 * This header does not include Criterion, so plain programs (tests/stress) can use it;
 * the CHECK_RC* macros expand to Criterion asserts and are only usable in tests. */
#ifndef PS_TEST_HELPERS_H
#define PS_TEST_HELPERS_H

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- time ---- */

/* Seconds on CLOCK_MONOTONIC. */
static inline double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleeps at least s seconds, even if signals arrive. */
static inline void sleep_s(double s)
{
    double end = now() + s;
    for (;;) {
        double left = end - now();
        if (left <= 0)
            return;
        struct timespec ts = { (time_t)left, (long)((left - (double)(time_t)left) * 1e9) };
        nanosleep(&ts, NULL);
    }
}

/* A timed wait of `t` seconds must last at least this long (CLOCK_MONOTONIC, with a
 * tiny allowance for the double arithmetic). No upper bounds: the VM is noisy. */
#define LOWER_BOUND(t) ((t) - 0.001)

/* ---- shared memory ---- */

/* Zeroed anonymous MAP_SHARED memory, shared with children forked afterwards. */
static inline void *shm_alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        abort();
    }
    memset(p, 0, size);
    return p;
}

static inline void shm_free(void *p, size_t size)
{
    if (p)
        munmap(p, size);
}

/* An object alone in its own page: after a successful destroy the test unmaps it,
 * so a thread still inside a wait that touches it crashes (SIGSEGV) at once instead
 * of silently using freed memory. */
#define OBJ_PAGE 4096
static inline void *page_alloc(void) { return shm_alloc(OBJ_PAGE); }
static inline void page_free(void *p) { shm_free(p, OBJ_PAGE); }

/* rc = call, retried while it says EBUSY (waiters still leaving), for at most 5 s. */
#define DESTROY_RETRY(rc, call) do {                                                \
        double end_ = now() + 5.0;                                                  \
        while (((rc) = (call)) == EBUSY && now() < end_)                            \
            sched_yield();                                                          \
    } while (0)

/* ---- threads ---- */

typedef void *(*thread_fn)(void *);

/* Starts n threads; thread i gets (char *)args + i * stride (stride 0: all get args). */
static inline void start_threads(pthread_t *tids, int n, thread_fn fn, void *args, size_t stride)
{
    for (int i = 0; i < n; i++) {
        int rc = pthread_create(&tids[i], NULL, fn, (char *)args + (size_t)i * stride);
        if (rc != 0) {
            fprintf(stderr, "pthread_create: %s\n", strerror(rc));
            abort();
        }
    }
}

/* Joins n threads; results may be NULL. */
static inline void join_threads(pthread_t *tids, int n, void **results)
{
    for (int i = 0; i < n; i++)
        pthread_join(tids[i], results ? &results[i] : NULL);
}

/* Starts n threads and joins them all. */
static inline void run_threads(int n, thread_fn fn, void *args, size_t stride)
{
    pthread_t tids[n];
    start_threads(tids, n, fn, args, stride);
    join_threads(tids, n, NULL);
}

/* ---- processes ---- */

/* Forks; the child runs fn(arg) and ends with _exit(its return value). */
static inline pid_t fork_child(int (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        abort();
    }
    if (pid == 0)
        _exit(fn(arg) & 0xff);
    return pid;
}

#define CHILD_TIMEOUT (-1000)   /* child_wait: child did not end in time (it was killed) */
#define CHILD_ERROR   (-1001)   /* child_wait: waitpid failed */

/* Waits for a child for at most `timeout` s. Returns its exit code, -N if it was killed
 * by signal N, CHILD_TIMEOUT if it did not end in time (it is then SIGKILLed and reaped). */
static inline int child_wait(pid_t pid, double timeout)
{
    double end = now() + timeout;
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            return CHILD_ERROR;
        if (now() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return CHILD_TIMEOUT;
        }
        sleep_s(0.001);
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return -WTERMSIG(status);
    return CHILD_ERROR;
}

/* SIGKILLs a child and reaps it. */
static inline void child_kill(pid_t pid)
{
    kill(pid, SIGKILL);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
}

/* Forks n children, each running fn(arg) (see fork_child). */
static inline void fork_children(pid_t *pids, int n, int (*fn)(void *), void *arg)
{
    for (int i = 0; i < n; i++)
        pids[i] = fork_child(fn, arg);
}

/* Waits for all n children (child_wait, `timeout` s each) and stores their codes, so no
 * child is left behind even when the caller then fails on the first bad code. */
static inline void wait_children(const pid_t *pids, int n, double timeout, int *codes)
{
    for (int i = 0; i < n; i++)
        codes[i] = child_wait(pids[i], timeout);
}

/* SIGKILLs and reaps n children. */
static inline void kill_children(const pid_t *pids, int n)
{
    for (int i = 0; i < n; i++)
        child_kill(pids[i]);
}

/* ---- waiters that are processes or threads ---- */

/* The waiter-death tests alternate rounds of waiter processes and waiter threads running
 * the same int fn(arg); this group starts and joins either kind the same way. */
enum { WAITERS_MAX = 8 };

typedef struct waiters {
    bool procs;                 /* processes (fork_child) or threads */
    int n;
    int (*fn)(void *);
    void *arg;
    pid_t pids[WAITERS_MAX];
    pthread_t tids[WAITERS_MAX];
} waiters_t;

static inline void *waiters_thread_main(void *arg)
{
    waiters_t *w = (waiters_t *)arg;
    return (void *)(intptr_t)w->fn(w->arg);
}

/* Starts n waiters running fn(arg): processes if procs, else threads. */
static inline void waiters_start(waiters_t *w, bool procs, int n, int (*fn)(void *), void *arg)
{
    w->procs = procs;
    w->n = n;
    w->fn = fn;
    w->arg = arg;
    if (procs)
        fork_children(w->pids, n, fn, arg);
    else
        start_threads(w->tids, n, waiters_thread_main, w, 0);
}

/* Joins the group and stores what fn returned in each waiter (for a process: its exit
 * code as child_wait reports it, waiting `timeout` s for each). */
static inline void waiters_join(waiters_t *w, double timeout, int *codes)
{
    if (w->procs) {
        wait_children(w->pids, w->n, timeout, codes);
        return;
    }
    for (int i = 0; i < w->n; i++) {
        void *r;
        pthread_join(w->tids[i], &r);
        codes[i] = (int)(intptr_t)r;
    }
}

/* ---- waiting for a condition ---- */

/* Polls pred(arg) until it is true or `timeout` s passed; returns its last value. */
static inline bool wait_until(bool (*pred)(void *), void *arg, double timeout)
{
    double end = now() + timeout;
    while (!pred(arg)) {
        if (now() > end)
            return pred(arg);
        sleep_s(0.0005);
    }
    return true;
}

/* Polls until *counter >= target (the counter may be in shared memory). */
static inline bool wait_count(atomic_int *counter, int target, double timeout)
{
    double end = now() + timeout;
    while (atomic_load(counter) < target) {
        if (now() > end)
            return atomic_load(counter) >= target;
        sleep_s(0.0005);
    }
    return true;
}

/* ---- signals ---- */

static volatile sig_atomic_t sigusr1_count;

static inline void sigusr1_handler(int sig)
{
    (void)sig;
    sigusr1_count++;
}

/* SIGUSR1 handler without SA_RESTART: a wait that returned EINTR would show. */
static inline void install_sigusr1(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = sigusr1_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(SIGUSR1, &sa, NULL);
}

/* A thread that sends SIGUSR1 to `target` every ~5 ms until stopped. */
typedef struct signal_storm {
    pthread_t target;
    pthread_t thread;
    atomic_bool stop;
    atomic_int sent;
} signal_storm_t;

static inline void *signal_storm_main(void *arg)
{
    signal_storm_t *s = (signal_storm_t *)arg;
    while (!atomic_load(&s->stop)) {
        pthread_kill(s->target, SIGUSR1);
        atomic_fetch_add(&s->sent, 1);
        sleep_s(0.005);
    }
    return NULL;
}

static inline void signal_storm_start(signal_storm_t *s, pthread_t target)
{
    install_sigusr1();
    s->target = target;
    atomic_init(&s->stop, false);
    atomic_init(&s->sent, 0);
    pthread_create(&s->thread, NULL, signal_storm_main, s);
}

static inline void signal_storm_stop(signal_storm_t *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
}

/* Runs fn(arg) in a new thread, storming it with SIGUSR1 until it returns (a timed wait
 * must neither end early nor report EINTR). Returns how many signals were sent. */
static inline int run_thread_under_signals(thread_fn fn, void *arg)
{
    pthread_t t;
    start_threads(&t, 1, fn, arg, 0);
    signal_storm_t s;
    signal_storm_start(&s, t);
    join_threads(&t, 1, NULL);
    signal_storm_stop(&s);
    return atomic_load(&s.sent);
}

/* Storms thread t with SIGUSR1 for `secs` s (an untimed wait must survive it). */
static inline void signal_thread_for(pthread_t t, double secs)
{
    signal_storm_t s;
    signal_storm_start(&s, t);
    sleep_s(secs);
    signal_storm_stop(&s);
}

/* ---- mutual exclusion counters ---- */

/* The counter tests' body, shared by the lock-like types: `iters` times take(obj), do a
 * non-atomic read, yield, write of *counter, then give(obj). Returns 0, or 2 if a take
 * failed, 3 if a give failed (it then stops). */
static inline int increment_under_lock(long *counter, int iters, int (*take)(void *),
                                       int (*give)(void *), void *obj)
{
    for (int i = 0; i < iters; i++) {
        if (take(obj) != 0)
            return 2;
        long v = *counter;
        if ((i & 255) == 0)
            sched_yield();
        *counter = v + 1;
        if (give(obj) != 0)
            return 3;
    }
    return 0;
}

/* ---- assertions (Criterion only) ---- */

/* Asserts that `call` returns `want`. */
#define CHECK_RC(call, want) do {                                                   \
        int rc_ = (call), want_ = (want);                                           \
        cr_assert_eq(rc_, want_, "%s returned %d (%s), expected %d (%s)", #call,    \
                     rc_, strerror(rc_), want_, strerror(want_));                   \
    } while (0)

/* As CHECK_RC, and checks that errno is unchanged by the call. */
#define CHECK_RC_E(call, want) do {                                                 \
        errno = 12345;                                                              \
        int rc_ = (call), want_ = (want), errno_ = errno;                           \
        cr_assert_eq(rc_, want_, "%s returned %d (%s), expected %d (%s)", #call,    \
                     rc_, strerror(rc_), want_, strerror(want_));                   \
        cr_assert_eq(errno_, 12345, "%s changed errno from 12345 to %d (%s)", #call,\
                     errno_, strerror(errno_));                                     \
    } while (0)

/* In a thread: records the call's result into int *slot and errno preservation into
 * bool *errno_ok (so the main thread can assert). */
#define RECORD_RC_E(slot, errno_ok, call) do {                                      \
        errno = 12345;                                                              \
        *(slot) = (call);                                                           \
        if (errno != 12345)                                                         \
            *(errno_ok) = false;                                                    \
    } while (0)

/* Joins a waiters_t group (10 s per process) and asserts that every waiter returned 0. */
#define CHECK_WAITERS_OK(w, round) do {                                             \
        int codes_[WAITERS_MAX];                                                    \
        waiters_join((w), 10.0, codes_);                                            \
        for (int i_ = 0; i_ < (w)->n; i_++)                                         \
            cr_assert_eq(codes_[i_], 0, "round %d: waiter %s %d got %d", (round),   \
                         (w)->procs ? "process" : "thread", i_, codes_[i_]);        \
    } while (0)

/* Waits for n children (`timeout` s each, all of them first) and asserts that each
 * exited with `want`. */
#define CHECK_CHILDREN(pids, n, timeout, want) do {                                 \
        int codes_[n];                                                              \
        wait_children((pids), (n), (timeout), codes_);                              \
        for (int i_ = 0; i_ < (n); i_++)                                            \
            cr_assert_eq(codes_[i_], (want), "child %d ended with %d, expected %d", \
                         i_, codes_[i_], (want));                                   \
    } while (0)

#endif
