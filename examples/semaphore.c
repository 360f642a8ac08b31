/* SPDX-License-Identifier: MIT */
/* A Semaphore lets at most five of twenty threads into a section at once.
 *
 * Python original:
 *     pool = threading.Semaphore(5)        # five "connections"
 *     lock = threading.Lock()
 *     inside = high_water = 0
 *
 *     def worker(n):
 *         global inside, high_water
 *         with pool:
 *             with lock:
 *                 inside += 1
 *                 high_water = max(high_water, inside)
 *                 print(f"worker {n:2} in, {inside} inside")
 *             time.sleep(0.05)             # use the connection
 *             with lock:
 *                 inside -= 1
 *
 *     threads = [threading.Thread(target=worker, args=(n,)) for n in range(20)]
 *     for t in threads: t.start()
 *     for t in threads: t.join()
 *     assert high_water <= 5
 *
 * The C version counts with atomics instead of a lock, so that the counting
 * itself lets threads in and out at any moment.
 */
#define _POSIX_C_SOURCE 200809L         /* nanosleep() */
#include <pysync/threading.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

enum { THREADS = 20, SLOTS = 5 };

static ps_semaphore_t pool;
static atomic_int inside, high_water;

static void raise_high_water(int value)
{
    int high = atomic_load(&high_water);
    while (value > high && !atomic_compare_exchange_weak(&high_water, &high, value))
        ;                               /* high now holds the newer mark: retry */
}

static void *worker(void *arg)
{
    int n = *(int *)arg;
    const struct timespec use = { 0, 50 * 1000 * 1000 };

    ps_semaphore_acquire(&pool, true, PS_FOREVER);      /* with pool: */
    int now_inside = atomic_fetch_add(&inside, 1) + 1;
    raise_high_water(now_inside);
    printf("worker %2d in, %d inside\n", n, now_inside);
    nanosleep(&use, NULL);
    atomic_fetch_sub(&inside, 1);
    ps_semaphore_release(&pool, 1);
    return NULL;
}

int main(void)
{
    static int ids[THREADS];
    ps_thread_t *threads[THREADS];

    ps_semaphore_init(&pool, SLOTS, 0);
    for (int n = 0; n < THREADS; n++) {
        ids[n] = n;
        threads[n] = ps_thread_new(worker, &ids[n], NULL);
        if (!threads[n] || ps_thread_start(threads[n]) != 0)
            return 1;
    }
    for (int n = 0; n < THREADS; n++) {
        ps_thread_join(threads[n], PS_FOREVER, NULL);
        ps_thread_free(threads[n]);
    }
    int high = atomic_load(&high_water), value = ps_semaphore_value(&pool);
    printf("high-water mark %d (limit %d), semaphore back at %d\n", high, SLOTS, value);
    ps_semaphore_destroy(&pool);
    return high >= 1 && high <= SLOTS && value == SLOTS && atomic_load(&inside) == 0 ? 0 : 1;
}
