/* SPDX-License-Identifier: MIT */
/* bench_manager.c - what a manager call costs, and what a manager lock costs.
 *
 *   find     ps_manager_lock of a name that exists (table 1/8 and 3/4 full)
 *   create   ps_manager_value + ps_manager_remove of a fresh name (one pair)
 *   lock     ps_manager_lock + ps_manager_remove (a robust mutex init/destroy)
 *   new      the same object without a manager: ps_lock_new(PS_SHARED) +
 *            ps_lock_free (one mmap and munmap each), the reference
 *
 * ns per operation, median of rounds run in turn (A B A B: PITFALLS 11).
 *
 * Then a contended counter, 2 forked processes each looping lock; counter++;
 * unlock for CTR_NS, on
 *   (a) ps_manager_lock(m, "counter_lock") guarding the int64 of
 *       ps_manager_value(m, "counter", 8), in an anonymous manager, allocated in
 *       that order (the mutex wholly in one line; the counter 144 bytes on);
 *   (b) a raw pthread_mutex_t (PROCESS_SHARED + ROBUST) guarding a counter in
 *       MAP_SHARED anonymous memory, the reference;
 *   (c) as (a), allocated value first: the counter in the mutex word's line, the
 *       mutex crossing into the next line (informational; see mgr_place);
 *   (d) ps_lock_init(PS_SHARED) in MAP_SHARED memory, no manager: informational,
 *       it tells the manager's share of a gap from ps_lock's.
 * In (b) and (d) the counter and the whole mutex share one cache line; the
 * manager cannot place both in one line (mgr_place). The layout is printed. The
 * systems run in turn, rotated each round; the ratio is the median of the
 * per-round ratios a/b, [min .. max], against the target (>= 0.95). Every counter is checked against the ops the two processes report: a
 * wrong count exits 1. The two processes are pinned to two distinct CPUs
 * (BENCH_NOPIN=1: not). A second, idle thread runs throughout (PITFALLS 2). */
#include <pysync/multiprocessing.h>
#include <signal.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "bench.h"

#define ROUNDS 7
#define OPS 20000
#ifndef CTR_ROUNDS
#define CTR_ROUNDS 15
#endif
#ifndef CTR_NS
#define CTR_NS 100000000ull     /* 0.1 s per contended-counter sample */
#endif
#define MAX_ROUNDS 64
#define WATCHDOG_S 120          /* a hang is a failure, not a hang of `make bench` */

static void must(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "bench_manager: %s: %s\n", what, ps_errname(errno));
        exit(1);
    }
}

/* A manager whose name table holds `objects` locks named o0, o1, ... */
static ps_manager_t *filled(size_t objects)
{
    ps_manager_t *m = ps_manager_new(NULL, 4u << 20);
    must(m != NULL, "ps_manager_new");
    char key[32];
    for (size_t i = 0; i < objects; i++) {
        snprintf(key, sizeof key, "o%zu", i);
        must(ps_manager_lock(m, key) != NULL, "fill");
    }
    return m;
}

static double find_ns(ps_manager_t *m, size_t objects)
{
    char key[32];
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < OPS; i++) {
        snprintf(key, sizeof key, "o%zu", (size_t)i * 7919 % objects);
        must(ps_manager_lock(m, key) != NULL, "find");
    }
    return (double)(bench_now_ns() - t0) / OPS;
}

static double create_remove_ns(ps_manager_t *m, bool lock)
{
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < OPS; i++) {
        void *obj = lock ? (void *)ps_manager_lock(m, "fresh") : ps_manager_value(m, "fresh", 64);
        must(obj && ps_manager_remove(m, "fresh") == 0, "create/remove");
    }
    return (double)(bench_now_ns() - t0) / OPS;
}

static double new_free_ns(void)
{
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < OPS; i++) {
        ps_lock_t *l = ps_lock_new(PS_SHARED);
        must(l != NULL, "ps_lock_new");
        ps_lock_free(l);
    }
    return (double)(bench_now_ns() - t0) / OPS;
}

/* ---- contended counter, 2 processes: manager lock vs raw robust mutex ---- */
enum { C_MGR, C_RAW, C_MGR_SAMELINE, C_PSLOCK, C_N };

static const char *const ctr_names[C_N] = {
    "(a) manager lock, 2 processes",
    "(b) raw robust pshared, 2 processes",
    "(c) manager, value then lock",
    "(d) ps_lock(PS_SHARED), no manager",
};

typedef struct ctr_sys {
    ps_lock_t *lock;            /* C_MGR, C_MGR_SAMELINE, C_PSLOCK */
    pthread_mutex_t *mutex;     /* C_RAW */
    volatile int64_t *counter;
} ctr_sys_t;

/* Start/stop flags and results, in MAP_SHARED memory away from the counters. */
typedef struct ctr_ctl {
    alignas(64) atomic_int ready;
    atomic_int go;
    atomic_int stop;
    alignas(64) struct {
        int64_t ops;
        uint64_t t_end;
        int bad;
    } w[2];
} ctr_ctl_t;

/* The raw reference: the counter, then the mutex, in one cache line; (d) alike. */
typedef struct raw_ctr {
    alignas(64) volatile int64_t counter;
    pthread_mutex_t mutex;
} raw_ctr_t;

typedef struct pslock_ctr {
    alignas(64) volatile int64_t counter;
    ps_lock_t lock;
} pslock_ctr_t;

static void ctr_loop(const ctr_sys_t *s, int kind, ctr_ctl_t *c, int idx)
{
    int64_t ops = 0;
    int bad = 0;
    bench_pin_self(idx);
    atomic_fetch_add(&c->ready, 1);
    bench_spin_until(&c->go, 1);
    if (kind == C_RAW) {
        while (!atomic_load_explicit(&c->stop, memory_order_relaxed)) {
            bad |= pthread_mutex_lock(s->mutex);
            (*s->counter)++;
            bad |= pthread_mutex_unlock(s->mutex);
            ops++;
        }
    } else {
        while (!atomic_load_explicit(&c->stop, memory_order_relaxed)) {
            bad |= ps_lock_acquire(s->lock, true, PS_FOREVER);
            (*s->counter)++;
            bad |= ps_lock_release(s->lock);
            ops++;
        }
    }
    c->w[idx].t_end = bench_now_ns();
    c->w[idx].ops = ops;
    c->w[idx].bad = bad;
}

/* A benchmark is not a test, but it must not report a wrong result. */
static _Noreturn __attribute__((format(printf, 2, 3))) void ctr_wrong(const char *what,
                                                                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_manager: CORRECTNESS FAILURE: %s: ", what);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* One sample: returns ops/s; *share: the slower process's share of the ops. */
static double ctr_sample(const ctr_sys_t *s, int kind, ctr_ctl_t *c, double *share)
{
    const char *what = ctr_names[kind];
    pid_t pid[2];
    memset(c, 0, sizeof *c);
    *s->counter = 0;
    for (int i = 0; i < 2; i++) {
        if ((pid[i] = bench_fork(WATCHDOG_S)) == 0) {
            ctr_loop(s, kind, c, i);
            _exit(0);   /* none of the parent's atexit handlers */
        }
    }
    bench_spin_until(&c->ready, 2);
    uint64_t t0 = bench_now_ns();
    atomic_store(&c->go, 1);
    bench_sleep_ns(CTR_NS);
    atomic_store(&c->stop, 1);
    for (int i = 0; i < 2; i++) {
        int st;
        while (waitpid(pid[i], &st, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            ctr_wrong(what, "child %d ended with status 0x%x", i, st);
    }
    int64_t total = c->w[0].ops + c->w[1].ops;
    if (c->w[0].bad || c->w[1].bad)
        ctr_wrong(what, "an acquire or release failed");
    if (*s->counter != total)
        ctr_wrong(what, "counter %lld, expected %lld", (long long)*s->counter, (long long)total);
    if (kind == C_RAW ? pthread_mutex_trylock(s->mutex) != 0 || pthread_mutex_unlock(s->mutex) != 0
                      : ps_lock_locked(s->lock))
        ctr_wrong(what, "lock still held at the end");
    uint64_t t1 = c->w[0].t_end > c->w[1].t_end ? c->w[0].t_end : c->w[1].t_end;
    int64_t lo = c->w[0].ops < c->w[1].ops ? c->w[0].ops : c->w[1].ops;
    *share = total ? (double)lo / (double)total : 0.0;
    return t1 > t0 ? (double)total / ((double)(t1 - t0) / 1e9) : 0.0;
}

static long line_of(const volatile void *p) { return (long)((uintptr_t)p / 64); }

static bool mutex_in_one_line(const void *lockword)
{
    return (uintptr_t)lockword % 64 + sizeof(pthread_mutex_t) <= 64;
}

/* Where the counter landed, relative to the cache line of the lock's mutex word
 * (the first word of a ps_lock_t and of a pthread_mutex_t), and whether the
 * 40-byte pthread_mutex_t itself crosses a line. */
static void describe_layout(char *buf, size_t n, const volatile void *counter, const void *lockword)
{
    long d = line_of(counter) - line_of(lockword);
    unsigned long c = (uintptr_t)counter % 64, l = (uintptr_t)lockword % 64;
    snprintf(buf, n, "counter at +%lu, mutex at +%lu..+%zu of a line: %s%s", c, l,
             l + sizeof(pthread_mutex_t) - 1,
             d == 0 ? "counter in the lock word's line" : d == 1 || d == -1 ? "adjacent lines"
                                                                            : "lines apart",
             mutex_in_one_line(lockword) ? "" : ", mutex crosses a line");
}

/* The manager heap gives an 8-byte value a 32-byte block and a ps_lock_t (120
 * bytes, its mutex first) a 144-byte one, so the counter and the whole 40-byte
 * mutex cannot share a line:
 *   (a) the lock, then the value (the order a user writes): the mutex wholly in
 *       one line, the counter 144 bytes on;
 *   (c) the value, then the lock: the counter in the mutex word's line, but the
 *       mutex (owner, kind, robust-list links) then crosses into the next line.
 * When a placement misses, an 8-byte pad value moves both objects by 32 bytes. */
static void mgr_place(ps_manager_t *m, ctr_sys_t *s, bool counter_first)
{
    for (int tries = 0;; tries++) {
        if (counter_first)
            must((s->counter = ps_manager_value(m, "counter", 8)) != NULL, "ps_manager_value");
        must((s->lock = ps_manager_lock(m, "counter_lock")) != NULL, "ps_manager_lock");
        if (!counter_first)
            must((s->counter = ps_manager_value(m, "counter", 8)) != NULL, "ps_manager_value");
        bool ok = counter_first ? line_of(s->counter) == line_of(s->lock)
                                : mutex_in_one_line(s->lock);
        if (ok || tries == 3)
            return;     /* the layout is printed either way */
        must(ps_manager_remove(m, "counter_lock") == 0 && ps_manager_remove(m, "counter") == 0,
             "ps_manager_remove");
        char pad[16];
        snprintf(pad, sizeof pad, "pad%d", tries);
        must(ps_manager_value(m, pad, 8) != NULL, "ps_manager_value(pad)");
    }
}

static double g_ctr[C_N][MAX_ROUNDS], g_share[C_N][MAX_ROUNDS];

static void ctr_row(int kind)
{
    const double *v = g_ctr[kind];
    printf("  %-38s %7.2f [%6.2f .. %6.2f]   %4.0f%%\n", ctr_names[kind],
           bench_median(v, CTR_ROUNDS) * 1e-6, bench_min(v, CTR_ROUNDS) * 1e-6,
           bench_max(v, CTR_ROUNDS) * 1e-6, 100 * bench_median(g_share[kind], CTR_ROUNDS));
}

/* Median of the per-round ratios num/den, [min .. max]; target <= 0: info only. */
static void ctr_ratio(const char *name, int num, int den, double target)
{
    double q[MAX_ROUNDS];
    for (int r = 0; r < CTR_ROUNDS; r++)
        q[r] = g_ctr[den][r] > 0 ? g_ctr[num][r] / g_ctr[den][r] : 0.0;
    double med = bench_median(q, CTR_ROUNDS);
    printf("  %-38s %6.3fx [%5.3f .. %5.3f]  ", name, med, bench_min(q, CTR_ROUNDS),
           bench_max(q, CTR_ROUNDS));
    if (target > 0)
        printf(">= %.2f %s\n", target, med >= target ? "ok" : "MISS");
    else
        printf("info\n");
}

static void bench_contended(int pinned)
{
    _Static_assert(CTR_ROUNDS <= MAX_ROUNDS, "CTR_ROUNDS");
    ctr_ctl_t *c = bench_shared_alloc(sizeof *c);
    raw_ctr_t *raw = bench_shared_alloc(sizeof *raw);
    pthread_mutexattr_t a;
    bench_must(pthread_mutexattr_init(&a), "mutexattr_init");
    bench_must(pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED), "setpshared");
    bench_must(pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST), "setrobust");
    bench_must(pthread_mutex_init(&raw->mutex, &a), "pthread_mutex_init");
    pthread_mutexattr_destroy(&a);

    pslock_ctr_t *pl = bench_shared_alloc(sizeof *pl);
    bench_must(ps_lock_init(&pl->lock, PS_SHARED), "ps_lock_init");

    ps_manager_t *mt = ps_manager_new(NULL, 0), *ma = ps_manager_new(NULL, 0);
    must(mt != NULL && ma != NULL, "ps_manager_new");
    ctr_sys_t sys[C_N] = { [C_RAW] = { NULL, &raw->mutex, &raw->counter },
                           [C_PSLOCK] = { &pl->lock, NULL, &pl->counter } };
    mgr_place(mt, &sys[C_MGR], false);
    mgr_place(ma, &sys[C_MGR_SAMELINE], true);

    uint64_t t0 = bench_now_ns();
    for (int r = 0; r < CTR_ROUNDS; r++)
        for (int j = 0; j < C_N; j++) {
            int kind = (j + r) % C_N;   /* a b c d, b c d a, c d a b, ... */
            g_ctr[kind][r] = ctr_sample(&sys[kind], kind, c, &g_share[kind][r]);
        }
    double secs = (double)(bench_now_ns() - t0) / 1e9;

    printf("\ncontended counter, 2 processes (lock; counter++; unlock), M ops/s, "
           "%d rounds x %.2f s, rotated; counters verified; %.1f s\n", CTR_ROUNDS, CTR_NS / 1e9,
           secs);
    printf("  2 processes %s\n", pinned ? "pinned to two distinct CPUs"
                                       : "not pinned (BENCH_NOPIN set, or fewer than 2 CPUs)");
    char buf[160];
    for (int k = 0; k < C_N; k++) {
        const void *lockword = k == C_RAW ? (const void *)sys[k].mutex : (const void *)sys[k].lock;
        describe_layout(buf, sizeof buf, sys[k].counter, lockword);
        printf("  %-38s %s\n", ctr_names[k], buf);
    }
    printf("  %-38s %7s [%6s .. %6s]   %s\n", "system", "median", "min", "max",
           "slower process's share");
    for (int k = 0; k < C_N; k++)
        ctr_row(k);
    printf("  ratios: median of per-round ratios [min .. max]\n");
    ctr_ratio("(a) / (b), manager lock / raw robust", C_MGR, C_RAW, 0.95);
    ctr_ratio("(c) / (b), value first / raw robust", C_MGR_SAMELINE, C_RAW, 0);
    ctr_ratio("(d) / (b), ps_lock / raw robust", C_PSLOCK, C_RAW, 0);
    ctr_ratio("(a) / (d), manager lock / ps_lock", C_MGR, C_PSLOCK, 0);

    ps_manager_close(mt);
    ps_manager_close(ma);
    bench_must(ps_lock_destroy(&pl->lock), "ps_lock_destroy");
    munmap(pl, sizeof *pl);
    pthread_mutex_destroy(&raw->mutex);
    munmap(raw, sizeof *raw);
    munmap(c, sizeof *c);
}

int main(void)
{
    bench_idle_t idle;
    setvbuf(stdout, NULL, _IOLBF, 0);
    int pinned = bench_pin_init();
    alarm(WATCHDOG_S);
    bench_idle_start(&idle);
    uint64_t t_start = bench_now_ns();
    ps_manager_t *m = filled(0);
    ps_manager_stats_t st;
    must(ps_manager_stats(m, &st) == 0, "stats");
    size_t light = st.name_slots / 8, full = st.name_slots / 4 * 3 - 1;
    ps_manager_close(m);
    ps_manager_t *ml = filled(light), *mf = filled(full);
    double find_l[ROUNDS], find_f[ROUNDS], value[ROUNDS], lock[ROUNDS], ref[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        find_l[r] = find_ns(ml, light);
        find_f[r] = find_ns(mf, full);
        value[r] = create_remove_ns(ml, false);
        lock[r] = create_remove_ns(ml, true);
        ref[r] = new_free_ns();
    }
    printf("manager (%zu name slots), ns per operation, median of %d rounds:\n",
           st.name_slots, ROUNDS);
    printf("  find, %5zu objects                %8.0f\n", light, bench_median(find_l, ROUNDS));
    printf("  find, %5zu objects (3/4 full)     %8.0f\n", full, bench_median(find_f, ROUNDS));
    printf("  value create + remove             %8.0f\n", bench_median(value, ROUNDS));
    printf("  lock create + remove              %8.0f\n", bench_median(lock, ROUNDS));
    printf("  ps_lock_new(PS_SHARED) + free     %8.0f  (reference, no manager)\n",
           bench_median(ref, ROUNDS));
    must(ps_manager_stats(ml, &st) == 0 && st.objects == light, "accounting");
    ps_manager_close(ml);
    ps_manager_close(mf);
    bench_contended(pinned);
    bench_idle_stop(&idle);
    printf("\ntotal %.1f s; all results verified\n", (double)(bench_now_ns() - t_start) / 1e9);
    return 0;
}
