/* SPDX-License-Identifier: MIT */
/* bench_threading.c - pysync threading primitives against the raw pthread pieces a C
 * programmer would use instead. Plain program (not a test): it exits 0 even when a
 * performance target is missed, and non-zero only when a result is wrong (a counter
 * is off, a call fails, a child dies).
 *
 *   1. uncontended acquire+release pairs (ns/pair)
 *   2. contended counter, 2 threads and 2 processes (ops/s)
 *   3. Event ping-pong between 2 threads (round trips/s)
 *   4. ratios against the targets of the issue
 *
 * Every system is measured in the same run, interleaved round by round (PITFALLS 11),
 * with a second, idle thread alive for the whole run (PITFALLS 2). Ratios are the
 * median of the per-round ratios, so a slow/fast mode of the VM hits both sides. */
#include "bench.h"

#include <pysync/threading.h>

#include <semaphore.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/wait.h>

/* ---- parameters (total run time ~12 s); -DNAME=value overrides for experiments ---- */
#ifndef UNC_ROUNDS
#define UNC_ROUNDS 15           /* measured rounds (plus one warm-up round) */
#endif
#ifndef UNC_PAIRS
#define UNC_PAIRS 300000L       /* acquire+release pairs per sample */
#endif
#ifndef CTR_ROUNDS
#define CTR_ROUNDS 15
#endif
#ifndef CTR_NS
#define CTR_NS 100000000ull     /* 0.1 s per contended-counter sample */
#endif
#ifndef PP_ROUNDS
#define PP_ROUNDS 15
#endif
#ifndef PP_NS
#define PP_NS 150000000ull      /* 0.15 s per ping-pong sample */
#endif
#define MAX_ROUNDS 32
#define WATCHDOG_S 150          /* a hang is a correctness failure */

static int g_fail;

#define FAIL(...)                                                          \
    do {                                                                   \
        fprintf(stderr, "bench_threading: CORRECTNESS FAILURE: " __VA_ARGS__); \
        fputc('\n', stderr);                                               \
        g_fail = 1;                                                        \
    } while (0)

static void init_robust_pshared(pthread_mutex_t *m)
{
    pthread_mutexattr_t a;
    bench_must(pthread_mutexattr_init(&a), "mutexattr_init");
    bench_must(pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED), "setpshared");
    bench_must(pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST), "setrobust");
    bench_must(pthread_mutex_init(m, &a), "mutex_init(robust pshared)");
    pthread_mutexattr_destroy(&a);
}

/* =================================================================================
 * 1. Uncontended acquire+release pairs
 * ================================================================================= */
static ps_lock_t g_lock;                /* flags 0 */
static ps_lock_t *g_slock;              /* PS_SHARED, in MAP_SHARED memory */
static ps_rlock_t g_rlock;              /* flags 0 */
static ps_semaphore_t g_sem;            /* value 1, flags 0 */
static pthread_mutex_t g_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t *g_rmtx;         /* PROCESS_SHARED + ROBUST, in MAP_SHARED memory */
static pthread_mutex_t g_recmtx;        /* PTHREAD_MUTEX_RECURSIVE (reference for RLock) */
static sem_t g_psem;                    /* POSIX semaphore (reference for Semaphore) */

/* The calls live in another object file (or libc), so they are real calls; OR-ing
 * the return codes into a local costs one instruction and proves they all succeeded. */
#define PAIR_LOOP(fn, ACQ, REL)                                             \
    static double fn(long n)                                                \
    {                                                                       \
        int bad = 0;                                                        \
        uint64_t t0 = bench_now_ns();                                       \
        for (long i = 0; i < n; i++) {                                      \
            bad |= (ACQ);                                                   \
            bad |= (REL);                                                   \
        }                                                                   \
        uint64_t t1 = bench_now_ns();                                       \
        if (bad)                                                            \
            FAIL("%s: an acquire or release returned an error", #fn);       \
        return (double)(t1 - t0) / (double)n;                               \
    }

PAIR_LOOP(pair_ps_lock, ps_lock_acquire(&g_lock, true, PS_FOREVER), ps_lock_release(&g_lock))
PAIR_LOOP(pair_ps_slock, ps_lock_acquire(g_slock, true, PS_FOREVER), ps_lock_release(g_slock))
PAIR_LOOP(pair_ps_rlock, ps_rlock_acquire(&g_rlock, true, PS_FOREVER), ps_rlock_release(&g_rlock))
PAIR_LOOP(pair_ps_sem, ps_semaphore_acquire(&g_sem, true, PS_FOREVER),
          ps_semaphore_release(&g_sem, 1))
PAIR_LOOP(pair_mutex, pthread_mutex_lock(&g_mtx), pthread_mutex_unlock(&g_mtx))
PAIR_LOOP(pair_robust, pthread_mutex_lock(g_rmtx), pthread_mutex_unlock(g_rmtx))
PAIR_LOOP(pair_recmtx, pthread_mutex_lock(&g_recmtx), pthread_mutex_unlock(&g_recmtx))
PAIR_LOOP(pair_psem, sem_wait(&g_psem) ? errno : 0, sem_post(&g_psem) ? errno : 0)

enum { U_LOCK, U_SLOCK, U_RLOCK, U_SEM, U_MUTEX, U_ROBUST, U_RECMTX, U_PSEM, U_N };

static const struct {
    const char *name;
    double (*run)(long n);
} g_unc[U_N] = {
    [U_LOCK] = { "ps_lock (0)", pair_ps_lock },
    [U_SLOCK] = { "ps_lock (PS_SHARED, MAP_SHARED)", pair_ps_slock },
    [U_RLOCK] = { "ps_rlock (0)", pair_ps_rlock },
    [U_SEM] = { "ps_semaphore (0) acquire+release", pair_ps_sem },
    [U_MUTEX] = { "raw pthread_mutex (default)", pair_mutex },
    [U_ROBUST] = { "raw pthread_mutex PSHARED+ROBUST", pair_robust },
    [U_RECMTX] = { "raw pthread_mutex RECURSIVE", pair_recmtx },
    [U_PSEM] = { "raw sem_wait+sem_post", pair_psem },
};

static double g_unc_ns[U_N][MAX_ROUNDS];

static void bench_uncontended(void)
{
    bench_must(ps_lock_init(&g_lock, 0), "ps_lock_init(0)");
    g_slock = bench_shared_alloc(4096);
    bench_must(ps_lock_init(g_slock, PS_SHARED), "ps_lock_init(PS_SHARED)");
    bench_must(ps_rlock_init(&g_rlock, 0), "ps_rlock_init(0)");
    bench_must(ps_semaphore_init(&g_sem, 1, 0), "ps_semaphore_init(1, 0)");
    g_rmtx = bench_shared_alloc(4096);
    init_robust_pshared(g_rmtx);
    pthread_mutexattr_t a;
    bench_must(pthread_mutexattr_init(&a), "mutexattr_init");
    bench_must(pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE), "settype");
    bench_must(pthread_mutex_init(&g_recmtx, &a), "mutex_init(recursive)");
    pthread_mutexattr_destroy(&a);
    if (sem_init(&g_psem, 0, 1) != 0)
        bench_must(errno, "sem_init");

    /* Round r runs the systems in a rotated order, so none is always first or last. */
    for (int r = -1; r < UNC_ROUNDS; r++) {
        for (int k = 0; k < U_N; k++) {
            int s = (k + (r < 0 ? 0 : r)) % U_N;
            double ns = g_unc[s].run(UNC_PAIRS);
            if (r >= 0)
                g_unc_ns[s][r] = ns;
        }
    }

    if (ps_lock_locked(&g_lock) || ps_lock_locked(g_slock))
        FAIL("a lock is still held after the uncontended loops");
    if (ps_semaphore_value(&g_sem) != 1)
        FAIL("semaphore value %d after the loops, expected 1", ps_semaphore_value(&g_sem));
    bench_must(ps_lock_destroy(&g_lock), "ps_lock_destroy");
    bench_must(ps_lock_destroy(g_slock), "ps_lock_destroy(shared)");
    bench_must(ps_rlock_destroy(&g_rlock), "ps_rlock_destroy");
    bench_must(ps_semaphore_destroy(&g_sem), "ps_semaphore_destroy");
    pthread_mutex_destroy(g_rmtx);
    pthread_mutex_destroy(&g_recmtx);
    sem_destroy(&g_psem);
}

/* =================================================================================
 * 2. Contended counter: lock; counter++; unlock, for a fixed time
 * ================================================================================= */
enum { K_PS, K_RAW };

typedef struct ctr {
    /* the counter and the lock that guards it share one cache line, for both
     * systems (a ps_lock_t is larger than a pthread_mutex_t: counter first) */
    alignas(64) volatile long counter;
    union {
        ps_lock_t ps;
        pthread_mutex_t m;
    } lk;
    alignas(64) atomic_int ready;
    atomic_int go;
    atomic_int stop;
    alignas(64) struct {
        long ops;
        uint64_t t_end;
        int bad;
    } w[2];
} ctr_t;

static void ctr_loop(ctr_t *c, int kind, int idx)
{
    long ops = 0;
    int bad = 0;
    bench_pin_self(idx);
    atomic_fetch_add(&c->ready, 1);
    bench_spin_until(&c->go, 1);
    if (kind == K_PS) {
        while (!atomic_load_explicit(&c->stop, memory_order_relaxed)) {
            bad |= ps_lock_acquire(&c->lk.ps, true, PS_FOREVER);
            c->counter++;
            bad |= ps_lock_release(&c->lk.ps);
            ops++;
        }
    } else {
        while (!atomic_load_explicit(&c->stop, memory_order_relaxed)) {
            bad |= pthread_mutex_lock(&c->lk.m);
            c->counter++;
            bad |= pthread_mutex_unlock(&c->lk.m);
            ops++;
        }
    }
    c->w[idx].t_end = bench_now_ns();
    c->w[idx].ops = ops;
    c->w[idx].bad = bad;
}

struct ctr_arg {
    ctr_t *c;
    int kind, idx;
};

static void *ctr_thread(void *p)
{
    struct ctr_arg *a = p;
    ctr_loop(a->c, a->kind, a->idx);
    return NULL;
}

static void ctr_prepare(ctr_t *c, int kind, bool shared)
{
    memset(c, 0, sizeof *c);
    if (kind == K_PS)
        bench_must(ps_lock_init(&c->lk.ps, shared ? PS_SHARED : 0), "ps_lock_init");
    else if (shared)
        init_robust_pshared(&c->lk.m);
    else
        bench_must(pthread_mutex_init(&c->lk.m, NULL), "pthread_mutex_init");
}

/* Starts the clock when both workers are ready, stops them after CTR_NS. */
static uint64_t ctr_drive(ctr_t *c)
{
    bench_spin_until(&c->ready, 2);
    uint64_t t0 = bench_now_ns();
    atomic_store(&c->go, 1);
    bench_sleep_ns(CTR_NS);
    atomic_store(&c->stop, 1);
    return t0;
}

/* One sample: returns ops/s, stores the share of the slower worker in *share. */
static double ctr_finish(ctr_t *c, int kind, uint64_t t0, const char *what, double *share)
{
    long total = c->w[0].ops + c->w[1].ops;
    uint64_t t1 = c->w[0].t_end > c->w[1].t_end ? c->w[0].t_end : c->w[1].t_end;
    if (c->w[0].bad || c->w[1].bad)
        FAIL("%s: an acquire or release returned an error", what);
    if (c->counter != total)
        FAIL("%s: counter %ld, expected %ld", what, (long)c->counter, total);
    if (kind == K_PS) {
        if (ps_lock_locked(&c->lk.ps))
            FAIL("%s: lock still held at the end", what);
        bench_must(ps_lock_destroy(&c->lk.ps), "ps_lock_destroy");
    } else {
        pthread_mutex_destroy(&c->lk.m);
    }
    long lo = c->w[0].ops < c->w[1].ops ? c->w[0].ops : c->w[1].ops;
    *share = total ? (double)lo / (double)total : 0.0;
    return t1 > t0 ? (double)total / ((double)(t1 - t0) / 1e9) : 0.0;
}

static double ctr_threads(ctr_t *c, int kind, double *share)
{
    pthread_t t[2];
    struct ctr_arg a[2];
    ctr_prepare(c, kind, false);
    for (int i = 0; i < 2; i++) {
        a[i] = (struct ctr_arg){ c, kind, i };
        bench_must(pthread_create(&t[i], NULL, ctr_thread, &a[i]), "pthread_create");
    }
    uint64_t t0 = ctr_drive(c);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    return ctr_finish(c, kind, t0, kind == K_PS ? "ps_lock 2 threads" : "mutex 2 threads",
                      share);
}

static double ctr_processes(ctr_t *c, int kind, double *share)
{
    pid_t pid[2];
    ctr_prepare(c, kind, true);
    for (int i = 0; i < 2; i++) {
        if ((pid[i] = bench_fork(WATCHDOG_S)) == 0) {
            ctr_loop(c, kind, i);
            _exit(0);  /* no atexit handlers of the parent's library state */
        }
    }
    uint64_t t0 = ctr_drive(c);
    const char *what = kind == K_PS ? "ps_lock(PS_SHARED) 2 processes"
                                    : "robust mutex 2 processes";
    for (int i = 0; i < 2; i++) {
        int st;
        while (waitpid(pid[i], &st, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            FAIL("%s: child %d ended with status 0x%x", what, i, st);
    }
    return ctr_finish(c, kind, t0, what, share);
}

/* [mode: 0 threads, 1 processes][kind][round] */
static double g_ctr_ops[2][2][MAX_ROUNDS], g_ctr_share[2][2][MAX_ROUNDS];

static void bench_contended(void)
{
    ctr_t *c = bench_shared_alloc(sizeof(ctr_t));
    for (int r = 0; r < CTR_ROUNDS; r++) {
        for (int j = 0; j < 2; j++) {
            int kind = (j + r) % 2;  /* A B, B A, A B ... */
            g_ctr_ops[0][kind][r] = ctr_threads(c, kind, &g_ctr_share[0][kind][r]);
        }
        for (int j = 0; j < 2; j++) {
            int kind = (j + r) % 2;
            g_ctr_ops[1][kind][r] = ctr_processes(c, kind, &g_ctr_share[1][kind][r]);
        }
    }
    munmap(c, sizeof(ctr_t));
}

/* =================================================================================
 * 3. Event ping-pong: A sets e1 and waits e2 (clearing it); B waits e1, clears, sets e2
 * ================================================================================= */
typedef struct cv_event {  /* the plain mutex + condvar event a C programmer writes */
    pthread_mutex_t m;
    pthread_cond_t c;
    bool flag;
} cv_event_t;

static void cv_event_init(cv_event_t *e)
{
    bench_must(pthread_mutex_init(&e->m, NULL), "pthread_mutex_init");
    bench_must(pthread_cond_init(&e->c, NULL), "pthread_cond_init");
    e->flag = false;
}

static void cv_event_destroy(cv_event_t *e)
{
    pthread_cond_destroy(&e->c);
    pthread_mutex_destroy(&e->m);
}

static int cv_event_set(cv_event_t *e)
{
    int bad = pthread_mutex_lock(&e->m);
    e->flag = true;
    bad |= pthread_cond_broadcast(&e->c);
    bad |= pthread_mutex_unlock(&e->m);
    return bad;
}

static int cv_event_clear(cv_event_t *e)
{
    int bad = pthread_mutex_lock(&e->m);
    e->flag = false;
    bad |= pthread_mutex_unlock(&e->m);
    return bad;
}

static int cv_event_wait(cv_event_t *e)
{
    int bad = pthread_mutex_lock(&e->m);
    while (!e->flag)
        bad |= pthread_cond_wait(&e->c, &e->m);
    bad |= pthread_mutex_unlock(&e->m);
    return bad;
}

typedef struct pp {
    ps_event_t pe[2];
    cv_event_t ce[2];
    int kind;
    alignas(64) atomic_int ready;
    atomic_int go;
    atomic_int stop;   /* main -> A */
    atomic_int bstop;  /* A -> B */
    alignas(64) long a_trips;
    uint64_t a_end;
    int a_bad;
    alignas(64) long b_trips;
    int b_bad;
} pp_t;

#define EV_SET(p, i) ((p)->kind == K_PS ? ps_event_set(&(p)->pe[i]) : cv_event_set(&(p)->ce[i]))
#define EV_CLEAR(p, i) \
    ((p)->kind == K_PS ? ps_event_clear(&(p)->pe[i]) : cv_event_clear(&(p)->ce[i]))
#define EV_WAIT(p, i) \
    ((p)->kind == K_PS ? ps_event_wait(&(p)->pe[i], PS_FOREVER) : cv_event_wait(&(p)->ce[i]))

static void *pp_a(void *arg)
{
    pp_t *p = arg;
    long n = 0;
    int bad = 0;
    bench_pin_self(0);
    atomic_fetch_add(&p->ready, 1);
    bench_spin_until(&p->go, 1);
    while (!atomic_load_explicit(&p->stop, memory_order_relaxed)) {
        bad |= EV_SET(p, 0);
        bad |= EV_WAIT(p, 1);
        bad |= EV_CLEAR(p, 1);
        n++;
    }
    p->a_end = bench_now_ns();
    p->a_trips = n;
    p->a_bad = bad;
    atomic_store(&p->bstop, 1);
    bad |= EV_SET(p, 0);  /* wake B for the last time */
    p->a_bad |= bad;
    return NULL;
}

static void *pp_b(void *arg)
{
    pp_t *p = arg;
    long n = 0;
    int bad = 0;
    bench_pin_self(1);
    atomic_fetch_add(&p->ready, 1);
    for (;;) {
        bad |= EV_WAIT(p, 0);
        bad |= EV_CLEAR(p, 0);
        if (atomic_load(&p->bstop))
            break;
        bad |= EV_SET(p, 1);
        n++;
    }
    p->b_trips = n;
    p->b_bad = bad;
    return NULL;
}

static double pingpong(pp_t *p, int kind)
{
    memset(p, 0, sizeof *p);
    p->kind = kind;
    for (int i = 0; i < 2; i++) {
        if (kind == K_PS)
            bench_must(ps_event_init(&p->pe[i], 0), "ps_event_init");
        else
            cv_event_init(&p->ce[i]);
    }
    pthread_t ta, tb;
    bench_must(pthread_create(&tb, NULL, pp_b, p), "pthread_create");
    bench_must(pthread_create(&ta, NULL, pp_a, p), "pthread_create");
    bench_spin_until(&p->ready, 2);
    uint64_t t0 = bench_now_ns();
    atomic_store(&p->go, 1);
    bench_sleep_ns(PP_NS);
    atomic_store(&p->stop, 1);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);

    const char *what = kind == K_PS ? "ps_event ping-pong" : "condvar event ping-pong";
    if (p->a_bad || p->b_bad)
        FAIL("%s: a set/clear/wait returned an error", what);
    if (p->a_trips != p->b_trips)
        FAIL("%s: A counted %ld round trips, B %ld", what, p->a_trips, p->b_trips);
    for (int i = 0; i < 2; i++) {
        if (kind == K_PS) {
            if (ps_event_is_set(&p->pe[i]))
                FAIL("%s: event %d still set at the end", what, i);
            bench_must(ps_event_destroy(&p->pe[i]), "ps_event_destroy");
        } else {
            cv_event_destroy(&p->ce[i]);
        }
    }
    return p->a_end > t0 ? (double)p->a_trips / ((double)(p->a_end - t0) / 1e9) : 0.0;
}

static double g_pp[2][MAX_ROUNDS];

static void bench_pingpong(void)
{
    pp_t *p = bench_shared_alloc(sizeof(pp_t));
    for (int r = 0; r < PP_ROUNDS; r++)
        for (int j = 0; j < 2; j++) {
            int kind = (j + r) % 2;
            g_pp[kind][r] = pingpong(p, kind);
        }
    munmap(p, sizeof(pp_t));
}

/* =================================================================================
 * Report
 * ================================================================================= */
static void row(const char *name, const double *v, int n, double scale, const char *extra)
{
    printf("  %-36s %9.2f %9.2f %9.2f%s\n", name, bench_median(v, (size_t)n) * scale,
           bench_min(v, (size_t)n) * scale, bench_max(v, (size_t)n) * scale, extra ? extra : "");
}

/* Per-round ratio num/den, then median and spread; higher_is_better selects the target
 * direction. target <= 0: informational only. */
static void ratio(const char *name, const double *num, const double *den, int n,
                  double target, bool higher_is_better)
{
    double q[MAX_ROUNDS];
    for (int i = 0; i < n; i++)
        q[i] = den[i] > 0 ? num[i] / den[i] : 0.0;
    double m = bench_median(q, (size_t)n);
    const char *verdict = "info";
    char tgt[16] = "     -";
    if (target > 0) {
        bool ok = higher_is_better ? m >= target : m <= target;
        verdict = ok ? "ok" : "MISS";
        snprintf(tgt, sizeof tgt, "%s %.2f", higher_is_better ? ">=" : "<=", target);
    }
    printf("  %-44s %6.2fx  [%5.2f .. %5.2f]  %-8s %s\n", name, m, bench_min(q, (size_t)n),
           bench_max(q, (size_t)n), tgt, verdict);
}

int main(void)
{
    bench_idle_t idle;
    setvbuf(stdout, NULL, _IOLBF, 0);
    int pinned = bench_pin_init();
    alarm(WATCHDOG_S);  /* a deadlock is a failure, not a hang of `make bench` */
    bench_idle_start(&idle);

    uint64_t t_start = bench_now_ns();
    printf("bench_threading: pysync threading vs raw pthread "
           "(2nd idle thread running; interleaved rounds; median [min .. max])\n");
    printf("2-party runs: %s\n\n",
           pinned ? "the two parties pinned to two distinct CPUs (BENCH_NOPIN=1: let the "
                    "scheduler place them)"
                  : "not pinned (BENCH_NOPIN set, or fewer than 2 CPUs)");

    bench_uncontended();
    printf("1. uncontended acquire+release pair, ns/pair "
           "(%d rounds x %ld pairs)\n", UNC_ROUNDS, UNC_PAIRS);
    printf("  %-36s %9s %9s %9s\n", "system", "median", "min", "max");
    for (int s = 0; s < U_N; s++)
        row(g_unc[s].name, g_unc_ns[s], UNC_ROUNDS, 1.0, NULL);

    bench_contended();
    printf("\n2. contended counter (lock; counter++; unlock), M ops/s "
           "(%d rounds x %.1f s; counters verified)\n", CTR_ROUNDS, CTR_NS / 1e9);
    printf("  %-36s %9s %9s %9s  %s\n", "system", "median", "min", "max",
           "slower party's share");
    static const char *const ctr_names[2][2] = {
        { "ps_lock (0), 2 threads", "raw pthread_mutex, 2 threads" },
        { "ps_lock (PS_SHARED), 2 processes", "raw robust pshared, 2 processes" },
    };
    for (int mode = 0; mode < 2; mode++)
        for (int kind = 0; kind < 2; kind++) {
            char extra[32];
            snprintf(extra, sizeof extra, "  %4.0f%%",
                     100 * bench_median(g_ctr_share[mode][kind], CTR_ROUNDS));
            row(ctr_names[mode][kind], g_ctr_ops[mode][kind], CTR_ROUNDS, 1e-6, extra);
        }

    bench_pingpong();
    printf("\n3. Event ping-pong, 2 threads, k round trips/s (%d rounds x %.2f s)\n",
           PP_ROUNDS, PP_NS / 1e9);
    printf("  %-36s %9s %9s %9s\n", "system", "median", "min", "max");
    row("ps_event (0)", g_pp[K_PS], PP_ROUNDS, 1e-3, NULL);
    row("plain mutex+condvar event", g_pp[K_RAW], PP_ROUNDS, 1e-3, NULL);

    printf("\n4. ratios (median of per-round ratios [min .. max]) against the targets\n");
    ratio("ps_lock(0) / pthread_mutex pair", g_unc_ns[U_LOCK], g_unc_ns[U_MUTEX],
          UNC_ROUNDS, 1.0, false);
    ratio("ps_lock(SHARED) / robust pshared pair", g_unc_ns[U_SLOCK], g_unc_ns[U_ROBUST],
          UNC_ROUNDS, 1.0, false);
    ratio("contended 2 threads: ps_lock / mutex", g_ctr_ops[0][K_PS], g_ctr_ops[0][K_RAW],
          CTR_ROUNDS, 1.0, true);
    ratio("contended 2 procs: ps_lock(SHARED) / robust", g_ctr_ops[1][K_PS],
          g_ctr_ops[1][K_RAW], CTR_ROUNDS, 1.0, true);
    ratio("Event ping-pong: ps_event / condvar event", g_pp[K_PS], g_pp[K_RAW], PP_ROUNDS,
          1.0, true);
    ratio("ps_rlock(0) / pthread_mutex pair", g_unc_ns[U_RLOCK], g_unc_ns[U_MUTEX],
          UNC_ROUNDS, 0, false);
    ratio("ps_rlock(0) / recursive pthread_mutex pair", g_unc_ns[U_RLOCK],
          g_unc_ns[U_RECMTX], UNC_ROUNDS, 0, false);
    ratio("ps_semaphore(0) / sem_wait+sem_post", g_unc_ns[U_SEM], g_unc_ns[U_PSEM],
          UNC_ROUNDS, 0, false);
    ratio("ps_semaphore(0) / pthread_mutex pair", g_unc_ns[U_SEM], g_unc_ns[U_MUTEX],
          UNC_ROUNDS, 0, false);

    bench_idle_stop(&idle);
    printf("\ntotal %.1f s; %s\n", (double)(bench_now_ns() - t_start) / 1e9,
           g_fail ? "CORRECTNESS FAILURE (see stderr)" : "all results verified");
    return g_fail ? 1 : 0;
}
