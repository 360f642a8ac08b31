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
 *       ps_manager_value(m, "counter", 8), in an anonymous manager;
 *   (b) a raw pthread_mutex_t (PROCESS_SHARED + ROBUST) guarding a counter in
 *       MAP_SHARED anonymous memory, the reference;
 *   (c) as (a), but allocated in the order a user would write (lock first, then
 *       the value), which puts the counter lines away from the lock: informational.
 * In (a) and (b) the counter and the lock's mutex word share one cache line; the
 * layout is printed. The systems run in turn, rotated each round; the ratio is the
 * median of the per-round ratios a/b, [min .. max], against the target
 * (>= 0.95). Every counter is checked against the ops the two processes report: a
 * wrong count exits 1. The two processes are pinned to two distinct CPUs
 * (BENCH_NOPIN=1: not). A second, idle thread runs throughout (PITFALLS 2). */
#include <pysync/multiprocessing.h>
#include <stdatomic.h>

#include "bench.h"

#define ROUNDS 7
#define OPS 20000

static atomic_int g_stop;

static void *idle_thread(void *arg)
{
    while (!atomic_load(&g_stop))
        bench_sleep_ns(1000000);
    return arg;
}

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

int main(void)
{
    pthread_t idle;
    pthread_create(&idle, NULL, idle_thread, NULL);
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
    atomic_store(&g_stop, 1);
    pthread_join(idle, NULL);
    return 0;
}
