/* SPDX-License-Identifier: MIT */
/* Threads adding to a shared counter under a Lock.
 *
 * Python original:
 *     counter = 0
 *     lock = threading.Lock()
 *     def work():
 *         global counter
 *         for _ in range(100_000):
 *             with lock:
 *                 counter += 1
 *     threads = [threading.Thread(target=work) for _ in range(4)]
 *     for t in threads: t.start()
 *     for t in threads: t.join()
 *     assert counter == 400_000
 */
#include <pysync/threading.h>
#include <stdio.h>

enum { THREADS = 4, ROUNDS = 100000 };

static ps_lock_t lock;
static long counter;

static void *work(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        ps_lock_acquire(&lock, true, PS_FOREVER);   /* with lock: */
        counter++;
        ps_lock_release(&lock);
    }
    return NULL;
}

int main(void)
{
    ps_thread_t *threads[THREADS];
    ps_lock_init(&lock, 0);
    for (int i = 0; i < THREADS; i++) {
        threads[i] = ps_thread_new(work, NULL, NULL);
        if (!threads[i] || ps_thread_start(threads[i]) != 0)
            return 1;
    }
    for (int i = 0; i < THREADS; i++) {
        ps_thread_join(threads[i], PS_FOREVER, NULL);
        ps_thread_free(threads[i]);
    }
    printf("counter = %ld (expected %d)\n", counter, THREADS * ROUNDS);
    return counter == THREADS * ROUNDS ? 0 : 1;
}
