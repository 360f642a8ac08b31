/* SPDX-License-Identifier: MIT */
/* tests/helpers.h - small helpers shared by the test files and the stress programs.
 *
 * Everything here is static (one runner binary links all test files together).
 * This header does not include Criterion, so plain programs (tests/stress) can use it;
 * the CHECK_RC* macros expand to Criterion asserts and are only usable in tests. */
#ifndef PS_TEST_HELPERS_H
#define PS_TEST_HELPERS_H

/* 1 in a ThreadSanitizer build (gcc or clang), where every access is ~10x
 * slower: the stress programs then run fewer rounds. */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pysync/threading.h>

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

/* ---- signal handlers that take time, fast storms ---- */

/* Handlers installed by install_busy_handler: while one runs, busy_handler_inside[sig]
 * is 1; busy_handler_runs[sig] counts the runs that finished. (Lock-free atomics are
 * async-signal-safe.) */
enum { BUSY_SIGS = 65 };
static double busy_handler_secs[BUSY_SIGS];
static atomic_int busy_handler_inside[BUSY_SIGS];
static atomic_int busy_handler_runs[BUSY_SIGS];

static inline void busy_handler(int sig)
{
    int saved = errno;
    atomic_store(&busy_handler_inside[sig], 1);
    double secs = busy_handler_secs[sig];
    if (secs >= 0.001) {
        sleep_s(secs);                  /* a long handler: sleeps (nanosleep) */
    } else {
        double end = now() + secs;      /* a short one: runs on the CPU */
        while (now() < end)
            ;
    }
    atomic_store(&busy_handler_inside[sig], 0);
    atomic_fetch_add(&busy_handler_runs[sig], 1);
    errno = saved;
}

/* Installs for `sig` a handler that runs for `secs` s, without SA_RESTART. */
static inline void install_busy_handler(int sig, double secs)
{
    busy_handler_secs[sig] = secs;
    atomic_store(&busy_handler_inside[sig], 0);
    atomic_store(&busy_handler_runs[sig], 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = busy_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(sig, &sa, NULL);
}

/* A thread that sends `sig` to thread `target` every `period` s until stopped.
 * A nanosleep lasts ~100 us at least on this kind of VM, so shorter periods are
 * timed by polling the clock (yielding the CPU meanwhile). */
typedef struct fast_storm {
    pthread_t target, thread;
    int sig;
    double period;
    atomic_bool stop;
    atomic_int sent;
} fast_storm_t;

static inline void *fast_storm_main(void *arg)
{
    fast_storm_t *s = (fast_storm_t *)arg;
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    double next = now();
    while (!atomic_load(&s->stop)) {
        if (pthread_kill(s->target, s->sig) != 0)
            break;
        atomic_fetch_add(&s->sent, 1);
        next += s->period;
        if (s->period >= 200e-6) {
            sleep_s(next - now());
        } else {
            while (now() < next && !atomic_load(&s->stop))
                sched_yield();
        }
        if (now() > next + 10 * s->period)
            next = now();       /* fell behind (descheduled): do not burst */
    }
    return NULL;
}

/* The target must stay joinable (not joined) until fast_storm_stop returns. */
static inline void fast_storm_start(fast_storm_t *s, pthread_t target, int sig, double period)
{
    s->target = target;
    s->sig = sig;
    s->period = period;
    atomic_init(&s->stop, false);
    atomic_init(&s->sent, 0);
    pthread_create(&s->thread, NULL, fast_storm_main, s);
}

static inline void fast_storm_stop(fast_storm_t *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
}

/* ---- thread and process states (/proc) ---- */

/* The kernel's state letter of thread `tid` of process `pid` ('R', 'S', 'T', 'Z'...),
 * or 0 if it cannot be read. For a process's main thread, tid == pid. */
static inline char task_state(pid_t pid, pid_t tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)pid, (int)tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' ? paren[2] : 0;
}

/* Polls until the task is in `state` (e.g. 'S': asleep, 'T': stopped). */
static inline bool wait_task_state(pid_t pid, pid_t tid, char state, double timeout)
{
    double end = now() + timeout;
    while (task_state(pid, tid) != state) {
        if (now() > end)
            return false;
        sleep_s(0.0005);
    }
    return true;
}

/* Waits until a SIGKILLed (or exiting) child is a zombie, without reaping it. */
static inline bool wait_zombie(pid_t pid, double timeout)
{
    double end = now() + timeout;
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid)
            return true;
        if (now() > end)
            return false;
        sleep_s(0.0005);
    }
}

/* ---- destroy must stay EBUSY while a live caller is slow ---- */

/* Calls destroy(obj) every ~5 ms for `secs` s (counting the calls in *calls). Returns
 * EBUSY if every call said so, else the first other result (and stops there). */
static inline int destroy_stays_ebusy(int (*destroy)(void *), void *obj, double secs, int *calls)
{
    double end = now() + secs;
    *calls = 0;
    do {
        int rc = destroy(obj);
        ++*calls;
        if (rc != EBUSY)
            return rc;
        sleep_s(0.005);
    } while (now() < end);
    return EBUSY;
}

/* A thread that records its kernel tid, then blocks on obj through w->wait, which
 * calls tid_waiter_ready(w) just before it blocks; w->rc gets what wait returned. */
typedef struct tid_waiter {
    void *obj;
    int (*wait)(struct tid_waiter *w);
    pid_t tid;
    atomic_int ready;
    int rc;
} tid_waiter_t;

static inline void tid_waiter_ready(tid_waiter_t *w) { atomic_store(&w->ready, 1); }

static inline void *tid_waiter_main(void *arg)
{
    tid_waiter_t *w = (tid_waiter_t *)arg;
    w->tid = gettid();
    w->rc = w->wait(w);
    return NULL;
}

/* Thread t (kernel tid `tid`) of this process is about to sleep in a wait on obj:
 * once it sleeps, a SIGUSR2 handler that runs for `secs` s is run in it, and destroy
 * is polled during the handler (all but its last 0.1 s). Returns EBUSY if every call
 * said so, else the first other result; -1 if the thread never slept or the handler
 * never ran. Returns after the handler ended. */
static inline int destroy_during_long_handler(pthread_t t, pid_t tid, int (*destroy)(void *),
                                              void *obj, double secs, int *calls)
{
    install_busy_handler(SIGUSR2, secs);
    *calls = 0;
    if (!wait_task_state(getpid(), tid, 'S', 5.0))
        return -1;
    pthread_kill(t, SIGUSR2);
    double end = now() + 5.0;
    while (!atomic_load(&busy_handler_inside[SIGUSR2]) && !atomic_load(&busy_handler_runs[SIGUSR2]))
        if (now() > end)
            return -1;
    int rc = destroy_stays_ebusy(destroy, obj, secs - 0.1, calls);
    while (atomic_load(&busy_handler_runs[SIGUSR2]) == 0)
        sleep_s(0.001);
    return rc;
}

/* Child process pid is about to sleep in a wait on obj: once it sleeps it is
 * SIGSTOPped, and destroy is polled for `secs` s. Returns as destroy_stays_ebusy,
 * -1 if the child never slept or stopped. The child stays stopped. */
static inline int destroy_during_stop(pid_t pid, int (*destroy)(void *), void *obj, double secs,
                                      int *calls)
{
    *calls = 0;
    if (!wait_task_state(pid, pid, 'S', 5.0))
        return -1;
    kill(pid, SIGSTOP);
    if (!wait_task_state(pid, pid, 'T', 5.0))
        return -1;
    return destroy_stays_ebusy(destroy, obj, secs, calls);
}

/* ---- "wait, then destroy and unmap" against a waker on another thread ----
 *
 * PITFALLS 13: a waker must not touch an object after the store that lets its waiter
 * return, since the waiter may destroy and free it at once (a completion object on
 * the waiter's stack). A page_race runs rounds: the calling thread takes a fresh page,
 * builds the object in it (init), publishes it to a persistent waker thread, and runs
 * waiter(); the waker thread runs waker() on the same object. Whoever destroys it
 * (destroy returned 0) calls page_protect() at once, so any later access to the
 * object, by anyone, is a SIGSEGV. The page is reused only after both sides of its
 * round returned.
 * The waker spins a random 0..max_jitter pauses first, so both orders happen. */
typedef struct page_race page_race_t;
struct page_race {
    /* set by the test */
    int (*init)(void *obj, page_race_t *r);     /* calling thread, before publishing */
    int (*waiter)(void *obj, page_race_t *r);   /* calling thread */
    int (*waker)(void *obj, page_race_t *r);    /* waker thread */
    void *ctx;                                  /* for the test */
    int flags;                                  /* for the test: 0 or PS_SHARED */
    unsigned max_jitter;
    /* If storm_period > 0: the waker thread gets SIGUSR1 every storm_period s, with a
     * handler that runs storm_handler s. A signal lands at any instruction, so now
     * and then the waker stops for that long right after its store: a waker that
     * still touches the object then is caught even if it does so a few
     * instructions later. */
    double storm_period, storm_handler;
    /* scratch for the callbacks, zeroed before each round */
    atomic_int first, mask, held;
    int flag;
    /* results: 0, or the first failure: what, its code, the round */
    const char *what;
    int rc;
    long fail_round;
    long rounds;                                /* rounds completed */
    /* internal */
    pthread_t thread;
    void *_Atomic obj;
    atomic_long round, done;
    atomic_bool stop;
    const char *_Atomic waker_what;
    atomic_int waker_rc;
};

/* A failure in a callback: records it (first one wins) and returns rc (non-zero). */
static inline int race_fail(page_race_t *r, bool waker, const char *what, int rc)
{
    if (waker) {
        const char *none = NULL;
        if (atomic_compare_exchange_strong(&r->waker_what, &none, what))
            atomic_store(&r->waker_rc, rc);
    } else if (!r->what) {
        r->what = what;
        r->rc = rc;
    }
    return rc ? rc : -1;
}

static inline void page_protect(void *obj)
{
    if (mprotect(obj, OBJ_PAGE, PROT_NONE) != 0) {
        perror("mprotect");
        abort();
    }
}

static inline void spin_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Spins, then yields, until *v != old or *stop; false on stop or after 10 s. */
static inline bool spin_until_changed(atomic_long *v, long old, atomic_bool *stop)
{
    double end = 0;
    for (int i = 0; atomic_load(v) == old; i++) {
        if (stop && atomic_load(stop))
            return false;
        if (i < 2000) {
            spin_pause();
            continue;
        }
        sched_yield();
        if ((i & 255) == 0) {
            if (end == 0)
                end = now() + 10.0;
            else if (now() > end)
                return false;
        }
    }
    return true;
}

static inline void *page_race_waker_main(void *arg)
{
    page_race_t *r = (page_race_t *)arg;
    unsigned x = 0x9e3779b9u;
    long seen = 0;
    for (;;) {
        if (!spin_until_changed(&r->round, seen, &r->stop))
            return NULL;
        seen = atomic_load(&r->round);
        void *obj = atomic_load(&r->obj);
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        unsigned jitter = r->max_jitter ? x % (r->max_jitter + 1) : 0;
        for (unsigned i = 0; i < jitter; i++)
            spin_pause();
        r->waker(obj, r);
        atomic_store(&r->done, seen);
    }
}

/* Runs up to `rounds` rounds, or fewer if `secs` s pass. Returns true if every round
 * passed; else r->what, r->rc and r->fail_round say what failed first. */
static inline bool page_race_run(page_race_t *r, long rounds, double secs)
{
    atomic_init(&r->round, 0);
    atomic_init(&r->done, 0);
    atomic_init(&r->stop, false);
    atomic_init(&r->waker_what, NULL);
    atomic_init(&r->waker_rc, 0);
    r->what = NULL;
    r->rc = 0;
    r->rounds = 0;
    pthread_create(&r->thread, NULL, page_race_waker_main, r);
    fast_storm_t storm;
    if (r->storm_period > 0) {
        install_busy_handler(SIGUSR1, r->storm_handler);
        fast_storm_start(&storm, r->thread, SIGUSR1, r->storm_period);
    }
    /* Pages are used in turn from a pool, which is made accessible again (one call)
     * each time it wraps around: the waker has finished with all of them by then.
     * (mmap/munmap per round costs several times more on this kind of VM.) */
    enum { POOL = 64 };
    char *pool = (char *)shm_alloc(POOL * OBJ_PAGE);
    double end = now() + secs;
    for (long i = 1; i <= rounds && now() < end; i++) {
        if (i > 1 && (i - 1) % POOL == 0 &&
            mprotect(pool, POOL * OBJ_PAGE, PROT_READ | PROT_WRITE) != 0) {
            perror("mprotect");
            abort();
        }
        void *obj = pool + (size_t)((i - 1) % POOL) * OBJ_PAGE;
        memset(obj, 0, OBJ_PAGE);
        atomic_store(&r->first, 0);
        atomic_store(&r->mask, 0);
        atomic_store(&r->held, 0);
        r->flag = 0;
        int rc = r->init(obj, r);
        if (rc) {
            race_fail(r, false, "init", rc);
            r->fail_round = i;
            break;
        }
        atomic_store(&r->obj, obj);
        atomic_store(&r->round, i);
        rc = r->waiter(obj, r);
        bool finished = spin_until_changed(&r->done, i - 1, NULL);
        const char *ww = atomic_load(&r->waker_what);
        if (rc || !finished || ww) {
            if (!finished)
                race_fail(r, false, "the waker did not finish its round in 10 s", ETIMEDOUT);
            else if (!rc && ww)
                race_fail(r, false, ww, atomic_load(&r->waker_rc));
            r->fail_round = i;
            if (!finished) {    /* the waker is stuck in obj: leave both alone */
                atomic_store(&r->stop, true);
                if (r->storm_period > 0)
                    fast_storm_stop(&storm);
                pthread_detach(r->thread);
                return false;
            }
            break;
        }
        r->rounds = i;
    }
    atomic_store(&r->stop, true);
    if (r->storm_period > 0)
        fast_storm_stop(&storm);
    pthread_join(r->thread, NULL);
    munmap(pool, POOL * OBJ_PAGE);
    return r->what == NULL;
}

/* ---- page_race callbacks for the threading types ----
 * Each pattern: the waiter's blocking call returns, it destroys the object (retrying
 * while EBUSY: e.g. a party still leaving) and protects the page; the waker's call
 * must not touch the object after the store that lets the waiter return. Acquires
 * are untimed (a timed acquire of a PS_SHARED lock is a pthread_mutex_clocklock,
 * which ThreadSanitizer does not intercept); the waits are timed, so a lost wake-up
 * fails instead of hanging. */
#define RACE_WAIT 5.0

static inline int race_destroyed(page_race_t *r, bool waker, const char *what, int rc, void *obj)
{
    if (rc)
        return race_fail(r, waker, what, rc);
    page_protect(obj);
    return 0;
}

/* Event: set vs wait. */
static inline int race_event_init(void *o, page_race_t *r) { return ps_event_init(o, r->flags); }
static inline int race_event_waiter(void *o, page_race_t *r)
{
    int rc = ps_event_wait(o, RACE_WAIT);
    if (rc)
        return race_fail(r, false, "ps_event_wait", rc);
    DESTROY_RETRY(rc, ps_event_destroy(o));
    return race_destroyed(r, false, "ps_event_destroy after wait", rc, o);
}
static inline int race_event_waker(void *o, page_race_t *r)
{
    int rc = ps_event_set(o);
    return rc ? race_fail(r, true, "ps_event_set", rc) : 0;
}

/* Semaphore: release vs acquire (value 0). */
static inline int race_sem_init(void *o, page_race_t *r) { return ps_semaphore_init(o, 0, r->flags); }
static inline int race_sem_waiter(void *o, page_race_t *r)
{
    int rc = ps_semaphore_acquire(o, true, RACE_WAIT);
    if (rc)
        return race_fail(r, false, "ps_semaphore_acquire", rc);
    DESTROY_RETRY(rc, ps_semaphore_destroy(o));
    return race_destroyed(r, false, "ps_semaphore_destroy after acquire", rc, o);
}
static inline int race_sem_waker(void *o, page_race_t *r)
{
    int rc = ps_semaphore_release(o, 1);
    return rc ? race_fail(r, true, "ps_semaphore_release", rc) : 0;
}

/* Private Lock: the waiter holds it and blocks in a second acquire; the waker (any
 * thread may release a private Lock) releases it. */
static inline int race_lock_init(void *o, page_race_t *r)
{
    int rc = ps_lock_init(o, r->flags);
    return rc ? rc : ps_lock_acquire(o, false, PS_FOREVER);
}
static inline int race_lock_waiter(void *o, page_race_t *r)
{
    int rc = ps_lock_acquire(o, true, PS_FOREVER);
    if (rc)
        return race_fail(r, false, "ps_lock_acquire", rc);
    if ((rc = ps_lock_release(o)))
        return race_fail(r, false, "ps_lock_release", rc);
    DESTROY_RETRY(rc, ps_lock_destroy(o));
    return race_destroyed(r, false, "ps_lock_destroy after acquire", rc, o);
}
static inline int race_lock_waker(void *o, page_race_t *r)
{
    int rc = ps_lock_release(o);
    return rc ? race_fail(r, true, "ps_lock_release", rc) : 0;
}

/* Owned locks (shared Lock, RLock): the waker takes it, the waiter blocks in acquire
 * once it is taken, the waker releases it. */
static inline void race_wait_held(page_race_t *r)
{
    for (int i = 0; !atomic_load(&r->held); i++)
        if (i < 2000)
            spin_pause();
        else
            sched_yield();
}
static inline int race_owned_lock_init(void *o, page_race_t *r) { return ps_lock_init(o, r->flags); }
static inline int race_owned_lock_waiter(void *o, page_race_t *r)
{
    race_wait_held(r);
    return race_lock_waiter(o, r);
}
static inline int race_owned_lock_waker(void *o, page_race_t *r)
{
    int rc = ps_lock_acquire(o, true, PS_FOREVER);
    if (rc)
        return race_fail(r, true, "waker: ps_lock_acquire", rc);
    atomic_store(&r->held, 1);
    for (int i = 0; i < 100; i++)
        spin_pause();
    rc = ps_lock_release(o);
    return rc ? race_fail(r, true, "waker: ps_lock_release", rc) : 0;
}
static inline int race_rlock_init(void *o, page_race_t *r) { return ps_rlock_init(o, r->flags); }
static inline int race_rlock_waiter(void *o, page_race_t *r)
{
    race_wait_held(r);
    int rc = ps_rlock_acquire(o, true, PS_FOREVER);
    if (rc)
        return race_fail(r, false, "ps_rlock_acquire", rc);
    if ((rc = ps_rlock_release(o)))
        return race_fail(r, false, "ps_rlock_release", rc);
    DESTROY_RETRY(rc, ps_rlock_destroy(o));
    return race_destroyed(r, false, "ps_rlock_destroy after acquire", rc, o);
}
static inline int race_rlock_waker(void *o, page_race_t *r)
{
    int rc = ps_rlock_acquire(o, true, PS_FOREVER);
    if (!rc)
        rc = ps_rlock_acquire(o, true, PS_FOREVER);     /* depth 2 */
    if (rc)
        return race_fail(r, true, "waker: ps_rlock_acquire", rc);
    atomic_store(&r->held, 1);
    for (int i = 0; i < 100; i++)
        spin_pause();
    if (!(rc = ps_rlock_release(o)))
        rc = ps_rlock_release(o);
    return rc ? race_fail(r, true, "waker: ps_rlock_release", rc) : 0;
}

/* Condition (own RLock): the waiter holds the lock and waits until the flag is set;
 * the waker takes the lock (so the waiter is inside wait), sets the flag, notifies
 * and releases. The waiter returns, releases, destroys. */
static inline int race_cond_init(void *o, page_race_t *r)
{
    int rc = ps_condition_init(o, NULL, r->flags);
    return rc ? rc : ps_condition_acquire(o, true, PS_FOREVER);
}
static inline int race_cond_waiter(void *o, page_race_t *r)
{
    int rc;
    while (!r->flag)
        if ((rc = ps_condition_wait(o, RACE_WAIT)))
            return race_fail(r, false, "ps_condition_wait", rc);
    if ((rc = ps_condition_release(o)))
        return race_fail(r, false, "ps_condition_release", rc);
    DESTROY_RETRY(rc, ps_condition_destroy(o));
    return race_destroyed(r, false, "ps_condition_destroy after wait", rc, o);
}
static inline int race_cond_waker(void *o, page_race_t *r)
{
    int rc = ps_condition_acquire(o, true, PS_FOREVER);
    if (rc)
        return race_fail(r, true, "waker: ps_condition_acquire", rc);
    r->flag = 1;
    if ((rc = ps_condition_notify(o, 1)))
        return race_fail(r, true, "waker: ps_condition_notify", rc);
    rc = ps_condition_release(o);
    return rc ? race_fail(r, true, "waker: ps_condition_release", rc) : 0;
}

/* Barrier of 2: both sides wait; whichever returns first destroys (retrying while
 * the other party is still leaving). Indices must be 0 and 1. */
static inline int race_barrier_init(void *o, page_race_t *r)
{
    return ps_barrier_init(o, 2, NULL, NULL, RACE_WAIT, r->flags);
}
static inline int race_barrier_party(void *o, page_race_t *r, bool waker)
{
    unsigned idx = 99;
    int rc = ps_barrier_wait(o, PS_FOREVER, &idx);     /* the default: RACE_WAIT */
    if (rc)
        return race_fail(r, waker, "ps_barrier_wait", rc);
    if (idx > 1)
        return race_fail(r, waker, "ps_barrier_wait: index out of range", (int)idx);
    atomic_fetch_or(&r->mask, 1 << idx);
    if (atomic_fetch_add(&r->first, 1) == 0) {
        DESTROY_RETRY(rc, ps_barrier_destroy(o));
        return race_destroyed(r, waker, "ps_barrier_destroy after wait", rc, o);
    }
    int mask = atomic_load(&r->mask);
    return mask == 3 ? 0 : race_fail(r, waker, "ps_barrier_wait: indices not {0, 1}", mask);
}
static inline int race_barrier_waiter(void *o, page_race_t *r) { return race_barrier_party(o, r, false); }
static inline int race_barrier_waker(void *o, page_race_t *r) { return race_barrier_party(o, r, true); }

/* ---- a persistent waker thread for "wait, then destroy" races ----
 *
 * The main thread waits on an object alone on a page, destroys it and makes the
 * page PROT_NONE at once; the waker is one persistent thread that plays its part
 * once per round after a handshake (two semaphores, off the page), so rounds cost
 * microseconds. Two phases:
 *   apart:    the waker runs wherever the scheduler puts it, after a delay that
 *             varies with the round (race_delay), so the waiter is sometimes still
 *             polling and sometimes asleep on its futex when the change lands;
 *   together: both threads share one CPU and the waker runs at SCHED_IDLE, so the
 *             waiter that its futex_wake readies preempts it right there and runs
 *             on to destroy while the waker is still in its wake path. */
typedef struct racer {
    void (*part)(struct racer *r, void *obj, unsigned round);  /* the waker's */
    void *obj;                  /* this round's object, handed over by race_go */
    unsigned round;
    sem_t go, done;             /* main -> waker: play; waker -> main: played */
    bool together;
    bool stop;
    int errors;                 /* the waker's unexpected return codes */
    cpu_set_t cpus;             /* the main thread's affinity before the phase */
    pthread_t thread;
} racer_t;

/* Busy-waits about us microseconds: sleeping would hand the CPU over. */
static inline void spin_us(double us)
{
    double end = now() + us * 1e-6;
    while (now() < end)
        ;
}

/* Apart: 0, 3, 40 or 250 us, the last outlasting the waiter's polling so that it
 * sleeps. Together: none, the waker runs only once the waiter blocks. */
static inline void race_delay(const racer_t *r, unsigned round)
{
    static const double us[] = { 0, 3, 40, 250 };
    if (!r->together)
        spin_us(us[round % 4]);
}

static inline void race_expect(racer_t *r, int rc, int want)
{
    if (rc != want)
        __atomic_fetch_add(&r->errors, 1, __ATOMIC_RELAXED);
}

static inline void sem_wait_any(sem_t *s)
{
    while (sem_wait(s) != 0)
        ;                       /* EINTR */
}

static inline void *racer_main(void *arg)
{
    racer_t *r = (racer_t *)arg;
    if (r->together) {          /* unprivileged threads may lower themselves */
        struct sched_param idle = { 0 };
        pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle);
    }
    for (;;) {
        sem_wait_any(&r->go);
        if (r->stop)
            return NULL;
        r->part(r, r->obj, r->round);
        sem_post(&r->done);
    }
}

/* Together: the waker joins the main thread on the CPU it runs on (not a fixed
 * one, so that tests running in parallel spread out). */
static inline void racer_start(racer_t *r, void (*part)(racer_t *, void *, unsigned),
                               bool together)
{
    *r = (racer_t){ .part = part, .together = together };
    if (sem_init(&r->go, 0, 0) || sem_init(&r->done, 0, 0) ||
        pthread_getaffinity_np(pthread_self(), sizeof r->cpus, &r->cpus))
        abort();
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (together) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(sched_getcpu(), &one);
        pthread_setaffinity_np(pthread_self(), sizeof one, &one);
        pthread_attr_setaffinity_np(&attr, sizeof one, &one);
    }
    if (pthread_create(&r->thread, &attr, racer_main, r) != 0)
        abort();
    pthread_attr_destroy(&attr);
}

/* Returns the waker's count of unexpected return codes. */
static inline int racer_stop(racer_t *r)
{
    r->stop = true;
    sem_post(&r->go);
    pthread_join(r->thread, NULL);
    pthread_setaffinity_np(pthread_self(), sizeof r->cpus, &r->cpus);
    sem_destroy(&r->go);
    sem_destroy(&r->done);
    return r->errors;
}

static inline void race_go(racer_t *r, void *obj, unsigned round)
{
    r->obj = obj;
    r->round = round;
    sem_post(&r->go);
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

/* Runs a page_race (up to `rounds` rounds, at most `secs` s) and asserts that every
 * round passed and that at least 100 rounds ran. */
#define CHECK_PAGE_RACE(r, max_rounds, secs) do {                                   \
        bool ok_ = page_race_run((r), (max_rounds), (secs));                            \
        cr_assert(ok_, "round %ld: %s: %d (%s)", (r)->fail_round, (r)->what,         \
                  (r)->rc, strerror((r)->rc));                                      \
        cr_assert_geq((r)->rounds, 100, "only %ld rounds ran", (r)->rounds);        \
    } while (0)

/* White-box: the callers inside an object, as lib/inside.h keeps them (a count,
 * plus one recorded id per caller of a shared object). */
static inline unsigned callers_inside(const struct ps__inside *in)
{
    unsigned n = __atomic_load_n(&in->count, __ATOMIC_ACQUIRE);
    for (int i = 0; i < PS__INSIDE_IDS; i++)
        n += __atomic_load_n(&in->ids[i], __ATOMIC_ACQUIRE) != 0;
    return n;
}

#ifdef cr_assert        /* Criterion tests only */
/* ---- named shm segments: unique per test process, unlinked by the suite's
 * .fini (test_unlink_segs), also when a test fails ---- */
#define TEST_SEGS_MAX 8

static inline char (*test_segs(int **count))[64]
{
    static char names[TEST_SEGS_MAX][64];
    static int n;
    *count = &n;
    return names;
}

/* "/ps_test_<suite>_<pid>_<tag>", unlinked first (a leftover of a crashed run). */
static inline const char *test_seg_name(const char *suite, const char *tag)
{
    int *count;
    char (*names)[64] = test_segs(&count);
    cr_assert_lt(*count, TEST_SEGS_MAX);
    char *name = names[(*count)++];
    snprintf(name, 64, "/ps_test_%s_%d_%s", suite, (int)getpid(), tag);
    shm_unlink(name);
    return name;
}

static inline void test_unlink_segs(void)
{
    int *count;
    char (*names)[64] = test_segs(&count);
    for (int i = 0; i < *count; i++)
        shm_unlink(names[i]);
    *count = 0;
}

#endif

#endif
