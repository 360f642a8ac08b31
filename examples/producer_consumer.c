/* SPDX-License-Identifier: MIT */
/* Producer and consumer processes around a JoinableQueue.
 *
 * Python original (the classic multiprocessing producer/consumer):
 *     from multiprocessing import JoinableQueue, Process
 *     import time
 *
 *     def producer(q, n):
 *         for i in range(10):
 *             q.put(n * 10 + i)
 *             time.sleep(0.002)
 *         print(f"producer {n}: made items {n * 10}..{n * 10 + 9}")
 *
 *     def consumer(q, n):
 *         while True:
 *             item = q.get()
 *             print(f"consumer {n}: ate item {item}")
 *             q.task_done()
 *
 *     if __name__ == "__main__":
 *         q = JoinableQueue()
 *         producers = [Process(target=producer, args=(q, n)) for n in range(2)]
 *         consumers = [Process(target=consumer, args=(q, n), daemon=True)
 *                      for n in range(2)]
 *         for p in producers + consumers: p.start()
 *         for p in producers: p.join()        # everything is put...
 *         q.join()                            # ...and every item task_done()
 *         print("all items eaten")            # the daemon consumers die at exit
 *
 * Python's multiprocessing queues have no shutdown(), so the consumers are
 * daemons killed at exit. pysync queues have Python 3.13's queue.shutdown():
 * the consumers' get() returns ESHUTDOWN and they end cleanly. Each consumer
 * also counts what it ate in shared memory, and the parent checks that each
 * of the 20 items was eaten exactly once.
 */
#define _POSIX_C_SOURCE 200809L         /* nanosleep() */
#include <pysync/multiprocessing.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

enum { PRODUCERS = 2, CONSUMERS = 2, ITEMS = 10, ALL = PRODUCERS * ITEMS };

/* Made before the fork, so every process shares them. */
static ps_mpqueue_t *q;                 /* q = JoinableQueue() */
static int (*eaten)[ALL];               /* eaten[n][item]: times consumer n ate item */

static void sleep_ms(long ms)
{
    struct timespec t = { ms / 1000, ms % 1000 * 1000000L };
    while (nanosleep(&t, &t) != 0)
        ;
}

static int producer(void *arg)
{
    int n = (int)(intptr_t)arg;
    for (int i = 0; i < ITEMS; i++) {
        int item = n * ITEMS + i;
        if (ps_mpqueue_put(q, &item, sizeof item, true, PS_FOREVER) != 0)  /* q.put(item) */
            return 1;
        sleep_ms(2);                    /* lets the other producer's items interleave */
    }
    printf("producer %d: made items %d..%d\n", n, n * ITEMS, n * ITEMS + ITEMS - 1);
    return 0;
}

static int consumer(void *arg)
{
    int n = (int)(intptr_t)arg, item, rc;
    size_t len;
    while ((rc = ps_mpqueue_get(q, &item, sizeof item, &len, true, PS_FOREVER)) == 0) {
        if (len != sizeof item || item < 0 || item >= ALL)
            return 1;
        eaten[n][item]++;               /* row n is this consumer's alone */
        printf("consumer %d: ate item %d\n", n, item);
        if (ps_mpqueue_task_done(q) != 0)                                  /* q.task_done() */
            return 1;
    }
    return rc == ESHUTDOWN ? 0 : 1;     /* the queue was shut down: nothing more to eat */
}

/* Starts n processes running fn(0), fn(1)... */
static bool start(ps_process_t **ps, int n, int (*fn)(void *))
{
    for (int i = 0; i < n; i++)
        if ((ps[i] = ps_process_new(fn, (void *)(intptr_t)i, NULL)) == NULL ||
            ps_process_start(ps[i]) != 0)
            return false;
    return true;
}

/* Joins and frees n processes; true if all exited with 0. */
static bool join(ps_process_t **ps, int n)
{
    bool ok = true;
    for (int i = 0; i < n; i++) {
        ok &= ps_process_join(ps[i], PS_FOREVER) == 0 && ps_process_exitcode(ps[i]) == 0;
        ps_process_free(ps[i]);
    }
    return ok;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* lines appear as they happen, also in a pipe */
    ps_manager_t *m = ps_manager_new(NULL, 0);
    q = m ? ps_manager_queue(m, "items", 0, 4096) : NULL;
    eaten = m ? ps_manager_value(m, "eaten", CONSUMERS * sizeof *eaten) : NULL;
    if (q == NULL || eaten == NULL) {
        perror("manager");
        return 1;
    }

    ps_process_t *producers[PRODUCERS], *consumers[CONSUMERS];
    if (!start(producers, PRODUCERS, producer) || !start(consumers, CONSUMERS, consumer))
        return 1;
    bool ok = join(producers, PRODUCERS);       /* everything is put... */
    ok &= ps_mpqueue_join(q) == 0;              /* ...and every item task_done() */
    printf("all items eaten (q.join() returned)\n");
    ok &= ps_mpqueue_shutdown(q, false) == 0;   /* consumers' get() now returns ESHUTDOWN */
    ok &= join(consumers, CONSUMERS);

    int once = 0, ate[CONSUMERS] = { 0 };
    for (int item = 0; item < ALL; item++) {
        int times = 0;
        for (int n = 0; n < CONSUMERS; n++) {
            times += eaten[n][item];
            ate[n] += eaten[n][item];
        }
        once += times == 1;
    }
    printf("%d of %d items eaten exactly once (consumer 0 ate %d, consumer 1 ate %d)\n",
           once, ALL, ate[0], ate[1]);
    ps_manager_close(m);
    return ok && once == ALL ? 0 : 1;
}
