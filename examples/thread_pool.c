/* SPDX-License-Identifier: MIT */
/* A ThreadPoolExecutor runs ten tasks on five threads; a done callback reports each.
 *
 * Python original:
 *     from concurrent.futures import ThreadPoolExecutor
 *     lock = threading.Lock()
 *     results = {}
 *
 *     def task(n):
 *         time.sleep(0.02)
 *         return n * n
 *
 *     def make_callback(n):
 *         def callback(future):            # in the worker that ran the task
 *             with lock:
 *                 results[n] = future.result()
 *                 print(f"task {n} -> {results[n]}")
 *         return callback
 *
 *     executor = ThreadPoolExecutor(5)
 *     for n in range(10):
 *         executor.submit(task, n).add_done_callback(make_callback(n))
 *     executor.shutdown()                  # waits for all ten
 *     assert results == {n: n * n for n in range(10)}
 */
#define _POSIX_C_SOURCE 200809L         /* nanosleep() */
#include <pysync/futures.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

enum { WORKERS = 5, TASKS = 10 };

struct slot {                           /* what callback n learns; under lock */
    intptr_t result;
    int calls;
};

static ps_lock_t lock;
static struct slot slots[TASKS];

static void *task(void *arg)
{
    const struct timespec work = { 0, 20 * 1000 * 1000 };
    intptr_t n = (intptr_t)arg;
    nanosleep(&work, NULL);
    return (void *)(n * n);
}

static void callback(ps_future_t *future, void *arg)
{
    struct slot *slot = arg;
    void *result = NULL;
    int rc = ps_future_result(future, 0, &result);     /* done: no wait */

    ps_lock_acquire(&lock, true, PS_FOREVER);
    slot->calls++;
    slot->result = rc == 0 ? (intptr_t)result : -1;
    printf("task %ld -> %ld\n", (long)(slot - slots), (long)slot->result);
    ps_lock_release(&lock);
}

int main(void)
{
    ps_lock_init(&lock, 0);
    ps_executor_t *executor = ps_executor_new(WORKERS, 0);
    if (!executor)
        return 1;
    for (intptr_t n = 0; n < TASKS; n++) {
        ps_future_t *future = ps_executor_submit(executor, task, (void *)n);
        if (!future || ps_future_add_done_callback(future, callback, &slots[n]) != 0)
            return 1;
        ps_future_free(future);         /* Python drops it too; the callback still runs */
    }
    ps_executor_shutdown(executor, true, false);        /* waits for all ten */
    ps_executor_free(executor);

    int bad = 0;
    ps_lock_acquire(&lock, true, PS_FOREVER);
    for (int n = 0; n < TASKS; n++)
        bad += slots[n].calls != 1 || slots[n].result != n * n;
    ps_lock_release(&lock);
    printf("%d tasks, %d callbacks wrong or missing\n", TASKS, bad);
    ps_lock_destroy(&lock);
    return bad == 0 ? 0 : 1;
}
