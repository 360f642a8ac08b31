/* SPDX-License-Identifier: MIT */
/* Four workers go through three phases in step; a Barrier's action closes each phase.
 *
 * Python original:
 *     PARTIES, PHASES = 4, 3
 *     phase = 0
 *     arrivals = [[] for _ in range(PHASES)]
 *     indices = [[None] * PARTIES for _ in range(PHASES)]
 *
 *     def phase_done():                    # run by the last to arrive, once per phase
 *         global phase
 *         print(f"phase {phase} complete, arrival order {arrivals[phase]}")
 *         phase += 1
 *
 *     barrier = threading.Barrier(PARTIES, action=phase_done)
 *
 *     def worker(w):
 *         for p in range(PHASES):
 *             time.sleep(random.random() / 100)   # this phase's work
 *             arrivals[p].append(w)
 *             indices[p][w] = barrier.wait()      # 0 .. PARTIES-1
 *             assert phase == p + 1               # the action ran before anyone left
 *             assert len(arrivals[p]) == PARTIES  # nobody left early
 *
 *     threads = [threading.Thread(target=worker, args=(w,)) for w in range(PARTIES)]
 *     for t in threads: t.start()
 *     for t in threads: t.join()
 *     for p in range(PHASES):
 *         assert sorted(indices[p]) == list(range(PARTIES))   # distinct per phase
 */
#define _POSIX_C_SOURCE 200809L         /* nanosleep() */
#include <pysync/threading.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

enum { PARTIES = 4, PHASES = 3 };

static ps_barrier_t barrier;
static int phase;                       /* written by the action only */
static atomic_int n_arrived[PHASES];
static int arrivals[PHASES][PARTIES];   /* slot n_arrived[p]++ belongs to one worker */
static unsigned indices[PHASES][PARTIES];
static atomic_int broken_rules;

static void phase_done(void *arg)
{
    (void)arg;
    printf("phase %d complete, arrival order", phase);
    for (int i = 0; i < PARTIES; i++)
        printf(" %d", arrivals[phase][i]);
    printf("\n");
    phase += 1;
}

static void *worker(void *arg)
{
    int w = *(int *)arg;
    for (int p = 0; p < PHASES; p++) {
        /* This phase's work: each worker a different time, so arrivals vary. */
        struct timespec work = { 0, (1 + (w * 7 + p * 3) % 5) * 2000 * 1000L };
        nanosleep(&work, NULL);
        arrivals[p][atomic_fetch_add(&n_arrived[p], 1)] = w;
        if (ps_barrier_wait(&barrier, PS_FOREVER, &indices[p][w]) != 0)
            atomic_fetch_add(&broken_rules, 1);
        if (phase != p + 1 || atomic_load(&n_arrived[p]) != PARTIES)
            atomic_fetch_add(&broken_rules, 1);
    }
    return NULL;
}

/* Each index 0 .. PARTIES-1 given to exactly one worker in phase p. */
static bool distinct(int p)
{
    unsigned seen = 0;
    for (int w = 0; w < PARTIES; w++)
        if (indices[p][w] < PARTIES)
            seen |= 1u << indices[p][w];
    return seen == (1u << PARTIES) - 1;
}

int main(void)
{
    static int ids[PARTIES];
    ps_thread_t *threads[PARTIES];

    ps_barrier_init(&barrier, PARTIES, phase_done, NULL, PS_FOREVER, 0);
    for (int w = 0; w < PARTIES; w++) {
        ids[w] = w;
        threads[w] = ps_thread_new(worker, &ids[w], NULL);
        if (!threads[w] || ps_thread_start(threads[w]) != 0)
            return 1;
    }
    for (int w = 0; w < PARTIES; w++) {
        ps_thread_join(threads[w], PS_FOREVER, NULL);
        ps_thread_free(threads[w]);
    }
    for (int p = 0; p < PHASES; p++) {
        printf("phase %d indices:", p);
        for (int w = 0; w < PARTIES; w++)
            printf(" worker %d=%u", w, indices[p][w]);
        printf("%s\n", distinct(p) ? "" : "  NOT DISTINCT");
        broken_rules += !distinct(p);
    }
    printf("%d phases, %d rules broken\n", phase, atomic_load(&broken_rules));
    ps_barrier_destroy(&barrier);
    return phase == PHASES && broken_rules == 0 ? 0 : 1;
}
