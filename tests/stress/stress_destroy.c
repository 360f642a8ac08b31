/* SPDX-License-Identifier: MIT */
/* tests/stress/stress_destroy.c - "wait, then destroy and unmap" (PITFALLS 13, glibc
 * bug 12674) for every blocking type: the waiter's call returns, it destroys the
 * object and makes its page PROT_NONE at once, while the waker (set, release,
 * notify, the other barrier party) still runs on another thread. A waker that
 * touches the object after the store that lets its waiter return crashes here
 * (SIGSEGV); a wrong return code or a destroy that never returns 0 is reported.
 *
 * Each pattern runs ROUNDS rounds (argv[1], default 50000) plain, and a fifth of
 * that with the waker thread stormed by signals (so it now and then stops right
 * after its store). argv[2] picks the patterns whose name contains it. Plain program (no Criterion) so that it runs under ThreadSanitizer (make
 * tsan); exits non-zero on any wrong result. */
#include <pysync/threading.h>

#include "../helpers.h"

/* Under ThreadSanitizer every access is ~10x slower: fewer rounds by default. */
#if UNDER_TSAN
#define ROUNDS 10000
#else
#define ROUNDS 50000
#endif

typedef struct pattern {
    const char *name;
    int (*init)(void *, page_race_t *);
    int (*waiter)(void *, page_race_t *);
    int (*waker)(void *, page_race_t *);
    int flags;
} pattern_t;

static const pattern_t patterns[] = {
    { "event set vs wait", race_event_init, race_event_waiter, race_event_waker, 0 },
    { "event set vs wait (shared)", race_event_init, race_event_waiter, race_event_waker,
      PS_SHARED },
    { "semaphore release vs acquire", race_sem_init, race_sem_waiter, race_sem_waker, 0 },
    { "semaphore release vs acquire (shared)", race_sem_init, race_sem_waiter,
      race_sem_waker, PS_SHARED },
    { "lock release vs blocked acquire", race_lock_init, race_lock_waiter, race_lock_waker,
      0 },
    { "lock owner's release vs blocked acquire (shared)", race_owned_lock_init,
      race_owned_lock_waiter, race_owned_lock_waker, PS_SHARED },
    { "rlock owner's release vs blocked acquire", race_rlock_init, race_rlock_waiter,
      race_rlock_waker, 0 },
    { "rlock owner's release vs blocked acquire (shared)", race_rlock_init,
      race_rlock_waiter, race_rlock_waker, PS_SHARED },
    { "condition notify vs wait", race_cond_init, race_cond_waiter, race_cond_waker, 0 },
    { "condition notify vs wait (shared)", race_cond_init, race_cond_waiter,
      race_cond_waker, PS_SHARED },
    { "barrier of 2, first out destroys", race_barrier_init, race_barrier_waiter,
      race_barrier_waker, 0 },
    { "barrier of 2, first out destroys (shared)", race_barrier_init, race_barrier_waiter,
      race_barrier_waker, PS_SHARED },
};

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : ROUNDS;
    const char *only = argc > 2 ? argv[2] : NULL;
    if (rounds <= 0) {
        fprintf(stderr, "usage: %s [rounds per pattern [pattern name part]]\n", argv[0]);
        return 2;
    }
    int failures = 0;
    size_t n = sizeof patterns / sizeof patterns[0];
    for (size_t i = 0; i < n; i++) {
        if (only && !strstr(patterns[i].name, only))
            continue;
        for (int stormed = 0; stormed < 2; stormed++) {
            const pattern_t *p = &patterns[i];
            page_race_t r = { .init = p->init, .waiter = p->waiter, .waker = p->waker,
                              .flags = p->flags, .max_jitter = 300 };
            if (stormed) {
                r.storm_period = 50e-6;
                r.storm_handler = 20e-6;
            }
            long want = stormed ? rounds / 5 : rounds;      /* stormed rounds are slower */
            double t0 = now();
            bool ok = page_race_run(&r, want, 120.0);
            double el = now() - t0;
            if (!ok) {
                fprintf(stderr, "stress_destroy: %s%s: round %ld: %s: %d (%s)\n", p->name,
                        stormed ? " (waker stormed)" : "", r.fail_round, r.what, r.rc,
                        strerror(r.rc > 0 ? r.rc : 0));
                failures++;
                continue;
            }
            if (r.rounds < want) {
                fprintf(stderr, "stress_destroy: %s%s: only %ld of %ld rounds in %.0f s\n",
                        p->name, stormed ? " (waker stormed)" : "", r.rounds, want, el);
                failures++;
                continue;
            }
            printf("%-52s %s %7ld rounds  %6.2f s  (%.0f/s)\n", p->name,
                   stormed ? "stormed" : "plain  ", r.rounds, el, (double)r.rounds / el);
            fflush(stdout);
        }
    }
    if (failures) {
        fprintf(stderr, "stress_destroy: %d pattern(s) failed\n", failures);
        return 1;
    }
    printf("stress_destroy: all %zu patterns passed\n", n);
    return 0;
}
