/* Stress for <pysync/queue.h>, run plain and under ThreadSanitizer (make tsan):
 * MPMC runs over the three kinds, bounded and unbounded, where every item must
 * arrive exactly once, each consumer must see each producer's FIFO items in
 * order, task_done/join must balance, and a final run ends with a shutdown
 * while producers and consumers are blocked. Exits non-zero on any failure. */
#include <pysync/queue.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRODUCERS 3
#define CONSUMERS 3
#define ITEMS     20000         /* per producer; keeps a TSan run to a few seconds */

static int failures;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "stress_queue: %s:%d: ", __FILE__, __LINE__);     \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
            __atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED);               \
        }                                                                     \
    } while (0)

static int cmp_int(const void *a, const void *b)
{
    intptr_t x = (intptr_t)a, y = (intptr_t)b;
    return (x > y) - (x < y);
}

struct ctx {
    ps_queue_t *q;
    unsigned char *seen;        /* per item: times received */
    bool fifo;
    int id;
};

/* Items are 1 + producer * ITEMS + i; 0 tells a consumer to stop. */
static void *producer(void *arg)
{
    struct ctx *c = arg;
    for (intptr_t i = 0; i < ITEMS; i++) {
        void *item = (void *)(1 + (intptr_t)c->id * ITEMS + i);
        int rc;
        if (i % 7 == 0) {           /* mix in non-blocking and timed puts */
            while ((rc = ps_queue_put_nowait(c->q, item)) == EAGAIN)
                ;
        } else if (i % 7 == 1) {
            while ((rc = ps_queue_put(c->q, item, true, 0.001)) == ETIMEDOUT)
                ;
        } else {
            rc = ps_queue_put(c->q, item, true, PS_FOREVER);
        }
        CHECK(rc == 0, "put returned %d", rc);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    struct ctx *c = arg;
    intptr_t last[PRODUCERS] = { 0 };
    for (long n = 0;; n++) {
        void *item = NULL;
        int rc;
        if (n % 5 == 0) {
            while ((rc = ps_queue_get_nowait(c->q, &item)) == EAGAIN)
                ;
        } else if (n % 5 == 1) {
            while ((rc = ps_queue_get(c->q, &item, true, 0.001)) == ETIMEDOUT)
                ;
        } else {
            rc = ps_queue_get(c->q, &item, true, PS_FOREVER);
        }
        CHECK(rc == 0, "get returned %d", rc);
        intptr_t x = (intptr_t)item;
        CHECK(ps_queue_task_done(c->q) == 0, "task_done failed");
        if (x == 0)
            return NULL;
        CHECK(x > 0 && x <= PRODUCERS * ITEMS, "bad item %ld", (long)x);
        __atomic_fetch_add(&c->seen[x - 1], 1, __ATOMIC_RELAXED);
        intptr_t p = (x - 1) / ITEMS;
        if (c->fifo) {
            CHECK(x > last[p], "producer %ld's items out of order", (long)p);
            last[p] = x;
        }
    }
}

static void mpmc_run(ps_queue_t *q, bool fifo, const char *what)
{
    unsigned char *seen = calloc(PRODUCERS * ITEMS, 1);
    struct ctx pc[PRODUCERS], cc[CONSUMERS];
    pthread_t pt[PRODUCERS], ct[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++) {
        cc[i] = (struct ctx){ q, seen, fifo, i };
        pthread_create(&ct[i], NULL, consumer, &cc[i]);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pc[i] = (struct ctx){ q, seen, fifo, i };
        pthread_create(&pt[i], NULL, producer, &pc[i]);
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(pt[i], NULL);
    /* LIFO and priority would hand a stop sign out before older items: send
     * them once every item is processed, which is what join waits for. */
    CHECK(ps_queue_join(q) == 0, "join");
    for (int i = 0; i < CONSUMERS; i++)
        CHECK(ps_queue_put(q, (void *)0, true, PS_FOREVER) == 0, "stop sign");
    for (int i = 0; i < CONSUMERS; i++)
        pthread_join(ct[i], NULL);
    long wrong = 0;
    for (long i = 0; i < PRODUCERS * ITEMS; i++)
        wrong += seen[i] != 1;
    CHECK(wrong == 0, "%s: %ld items not received exactly once", what, wrong);
    CHECK(ps_queue_qsize(q) == 0, "%s: queue not empty", what);
    CHECK(ps_queue_task_done(q) == EOVERFLOW, "%s: unfinished count off", what);
    free(seen);
}

/* ---- blocked callers released by shutdown ---- */

static void *blocked_put(void *arg)
{
    int rc;
    while ((rc = ps_queue_put(arg, (void *)1, true, PS_FOREVER)) == 0)
        ;
    return (void *)(intptr_t)rc;
}

static void *blocked_get(void *arg)
{
    void *x;
    int rc;
    while ((rc = ps_queue_get(arg, &x, true, PS_FOREVER)) == 0)
        ;
    return (void *)(intptr_t)rc;
}

static void shutdown_run(bool immediate)
{
    ps_queue_t full, empty;
    ps_queue_init(&full, 4);
    ps_queue_init(&empty, 0);
    pthread_t p[3], g[3];
    for (int i = 0; i < 3; i++) {
        pthread_create(&p[i], NULL, blocked_put, &full);
        pthread_create(&g[i], NULL, blocked_get, &empty);
    }
    while (__atomic_load_n(&full._putters, __ATOMIC_ACQUIRE) < 3 ||
           __atomic_load_n(&empty._getters, __ATOMIC_ACQUIRE) < 3)
        sched_yield();
    CHECK(ps_queue_destroy(&full) == EBUSY, "destroy of a waited-on queue");
    ps_queue_shutdown(&full, immediate);
    ps_queue_shutdown(&empty, immediate);
    for (int i = 0; i < 3; i++) {
        void *rc;
        pthread_join(p[i], &rc);
        CHECK((intptr_t)rc == ESHUTDOWN, "blocked put returned %ld", (long)(intptr_t)rc);
        pthread_join(g[i], &rc);
        CHECK((intptr_t)rc == ESHUTDOWN, "blocked get returned %ld", (long)(intptr_t)rc);
    }
    CHECK(ps_queue_qsize(&full) == (immediate ? 0u : 4u), "qsize after shutdown");
    CHECK(ps_queue_destroy(&full) == 0 && ps_queue_destroy(&empty) == 0, "destroy");
}

int main(void)
{
    static const size_t sizes[] = { 0, 8 };
    for (int s = 0; s < 2; s++) {
        ps_queue_t q;
        ps_queue_init(&q, sizes[s]);
        mpmc_run(&q, true, sizes[s] ? "Queue(8)" : "Queue()");
        CHECK(ps_queue_destroy(&q) == 0, "destroy");
        ps_lifoqueue_init(&q, sizes[s]);
        mpmc_run(&q, false, "LifoQueue");
        CHECK(ps_queue_destroy(&q) == 0, "destroy");
        ps_priorityqueue_init(&q, sizes[s], cmp_int);
        mpmc_run(&q, false, "PriorityQueue");
        CHECK(ps_queue_destroy(&q) == 0, "destroy");
    }
    shutdown_run(false);
    shutdown_run(true);
    if (failures) {
        fprintf(stderr, "stress_queue: %d failures\n", failures);
        return 1;
    }
    puts("stress_queue: ok");
    return 0;
}
