/* SPDX-License-Identifier: MIT */
/* Worker threads consuming a Queue, with task_done() and join().
 *
 * Python original (from the queue module documentation):
 *     q = queue.Queue()
 *     def worker():
 *         while True:
 *             item = q.get()
 *             print(f'Working on {item}')
 *             q.task_done()
 *     threading.Thread(target=worker, daemon=True).start()
 *     for item in range(30):
 *         q.put(item)
 *     q.join()
 *     print('All work completed')
 *
 * Here four workers sum the items, and shutdown() ends them instead of daemon
 * threads being abandoned at exit.
 */
#include <pysync/pysync.h>
#include <stdint.h>
#include <stdio.h>

enum { WORKERS = 4, ITEMS = 30 };

static ps_queue_t q;
static ps_lock_t lock;
static long total;

static void *worker(void *arg)
{
    (void)arg;
    void *item;
    while (ps_queue_get(&q, &item, true, PS_FOREVER) == 0) {  /* ESHUTDOWN ends it */
        ps_lock_acquire(&lock, true, PS_FOREVER);
        total += (intptr_t)item;
        ps_lock_release(&lock);
        ps_queue_task_done(&q);
    }
    return NULL;
}

int main(void)
{
    ps_thread_t *threads[WORKERS];
    ps_queue_init(&q, 0);
    ps_lock_init(&lock, 0);
    for (int i = 0; i < WORKERS; i++) {
        threads[i] = ps_thread_new(worker, NULL, NULL);
        if (!threads[i] || ps_thread_start(threads[i]) != 0)
            return 1;
    }
    for (intptr_t item = 0; item < ITEMS; item++)
        ps_queue_put(&q, (void *)item, true, PS_FOREVER);
    ps_queue_join(&q);                      /* every item was task_done() */
    printf("All work completed: total = %ld (expected %d)\n", total, ITEMS * (ITEMS - 1) / 2);

    ps_queue_shutdown(&q, false);           /* wakes the idle workers */
    for (int i = 0; i < WORKERS; i++) {
        ps_thread_join(threads[i], PS_FOREVER, NULL);
        ps_thread_free(threads[i]);
    }
    ps_queue_destroy(&q);
    return total == ITEMS * (ITEMS - 1) / 2 ? 0 : 1;
}
