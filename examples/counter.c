/* SPDX-License-Identifier: MIT */
/* A hundred threads count a shared counter down to zero under a Lock.
 *
 * Python original:
 *     counter = 100 * 1000
 *     lock = threading.Lock()
 *
 *     def decrement():
 *         global counter
 *         for _ in range(1000):
 *             with lock:
 *                 counter -= 1
 *
 *     threads = [threading.Thread(target=decrement) for _ in range(100)]
 *     for t in threads: t.start()
 *     for t in threads: t.join()
 *     assert counter == 0
 *
 * Without "with lock:", counter -= 1 is a read, a subtraction and a write, and
 * two threads that read the same value lose one of the two decrements. The
 * first run below shows that (the read and the write are each atomic, so this
 * is a lost update, not undefined behaviour); the second is the lesson.
 */
#include <pysync/threading.h>
#include <stdatomic.h>
#include <stdio.h>

enum { THREADS = 100, ROUNDS = 1000 };

static ps_lock_t lock;
static atomic_long unsafe_counter = THREADS * ROUNDS;
static long counter = THREADS * ROUNDS;

static void *decrement_unsafe(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        long value = atomic_load(&unsafe_counter);      /* read ... */
        atomic_store(&unsafe_counter, value - 1);       /* ... write: not together */
    }
    return NULL;
}

static void *decrement(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        ps_lock_acquire(&lock, true, PS_FOREVER);       /* with lock: */
        counter -= 1;
        ps_lock_release(&lock);
    }
    return NULL;
}

static int run_threads(void *(*target)(void *))
{
    ps_thread_t *threads[THREADS];
    for (int i = 0; i < THREADS; i++) {
        threads[i] = ps_thread_new(target, NULL, NULL);
        if (!threads[i] || ps_thread_start(threads[i]) != 0)
            return -1;
    }
    for (int i = 0; i < THREADS; i++) {
        ps_thread_join(threads[i], PS_FOREVER, NULL);
        ps_thread_free(threads[i]);
    }
    return 0;
}

int main(void)
{
    ps_lock_init(&lock, 0);
    printf("%d threads each decrement %d times, from %d\n", THREADS, ROUNDS, THREADS * ROUNDS);

    if (run_threads(decrement_unsafe) != 0)
        return 1;
    long lost = atomic_load(&unsafe_counter);
    if (lost > 0)
        printf("without the lock: counter = %ld (%ld decrements lost)\n", lost, lost);
    else
        printf("without the lock: counter = 0 (no update lost this time, by luck)\n");

    if (run_threads(decrement) != 0)
        return 1;
    printf("with the lock:    counter = %ld (expected 0)\n", counter);
    ps_lock_destroy(&lock);
    return counter == 0 ? 0 : 1;
}
