/* SPDX-License-Identifier: MIT */
/* Stress for <pysync/queue.h>, run plain and under ThreadSanitizer (make tsan):
 * MPMC runs over the three kinds, bounded and unbounded, where every item must
 * arrive exactly once, each consumer must see each producer's FIFO items in
 * order, task_done/join must balance, and a run ends with a shutdown while
 * producers and consumers are blocked. Then "wait, then destroy" races, 100k
 * rounds each (25k under TSan, or argv[1]): the waiter destroys the queue,
 * alone on its page, the moment its wait is over and seals the page, while
 * the waker may still be in its wake path (PITFALLS 13). Exits non-zero on
 * any failure. */
#include <pysync/queue.h>

#include "../helpers.h"

#include <semaphore.h>

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

/* ---- wait, then destroy: the waker must not touch the queue afterwards ----
 *
 * As in tests/test_queue.c, with the racer of helpers.h: the main thread waits,
 * destroys, makes the page PROT_NONE, and unmaps it once the waker is done. */

static ps_queue_t *race_queue(unsigned round, size_t maxsize)
{
    ps_queue_t *q = page_alloc();
    int rc = round % 3 == 0 ? ps_queue_init(q, maxsize)
           : round % 3 == 1 ? ps_lifoqueue_init(q, maxsize)
           : ps_priorityqueue_init(q, maxsize, cmp_int);
    CHECK(rc == 0, "init returned %d", rc);
    return q;
}

/* EBUSY only while a woken blocking caller leaves: sleep, or an idle waker
 * never gets the CPU. */
static void race_destroy(struct racer *r, ps_queue_t *q, unsigned round)
{
    int rc;
    double end = now() + 5.0;
    while ((rc = ps_queue_destroy(q)) == EBUSY && now() < end)
        sleep_s(0.00001);
    CHECK(rc == 0, "round %u: destroy returned %d", round, rc);
    if (rc == 0 && mprotect(q, OBJ_PAGE, PROT_NONE) != 0)
        CHECK(false, "mprotect: %s", strerror(errno));
    sem_wait_any(&r->done);
    if (rc == 0)
        page_free(q);           /* a queue that stayed busy is leaked, not unmapped */
}

static void race(const char *what, unsigned rounds,
                 void (*part)(struct racer *, void *, unsigned),
                 void (*round_fn)(struct racer *, unsigned))
{
    double t0 = now();
    for (int together = 0; together < 2; together++) {
        struct racer r;
        racer_start(&r, part, together);
        for (unsigned round = 1; round <= rounds / 2; round++)
            round_fn(&r, round);
        racer_stop(&r);
    }
    fprintf(stderr, "stress_queue: %s: %u rounds, %.1f s\n", what, rounds, now() - t0);
}

static void task_done_part(struct racer *r, void *q, unsigned round)
{
    race_delay(r, round);
    int rc = ps_queue_task_done(q);
    CHECK(rc == 0, "task_done returned %d", rc);
}

static void join_round(struct racer *r, unsigned round)
{
    ps_queue_t *q = race_queue(round, 0);
    void *x;
    CHECK(ps_queue_put_nowait(q, (void *)1) == 0 && ps_queue_get_nowait(q, &x) == 0, "setup");
    race_go(r, q, round);
    CHECK(ps_queue_join(q) == 0, "join");
    race_destroy(r, q, round);
}

static void put_part(struct racer *r, void *q, unsigned round)
{
    race_delay(r, round);
    int rc = ps_queue_put(q, (void *)(uintptr_t)round, true, PS_FOREVER);
    CHECK(rc == 0, "put returned %d", rc);
}

static void get_round(struct racer *r, unsigned round)
{
    ps_queue_t *q = race_queue(round, round % 2);
    void *x = NULL;
    race_go(r, q, round);
    int rc = ps_queue_get(q, &x, true, PS_FOREVER);
    CHECK(rc == 0 && x == (void *)(uintptr_t)round, "get returned %d", rc);
    race_destroy(r, q, round);
}

static void shutdown_part(struct racer *r, void *q, unsigned round)
{
    race_delay(r, round / 2);
    int rc = ps_queue_shutdown(q, round % 4 != 2);
    CHECK(rc == 0, "shutdown returned %d", rc);
}

static void shutdown_round(struct racer *r, unsigned round)
{
    bool join = round % 2;
    ps_queue_t *q = race_queue(round / 2, 0);
    void *x;
    if (join)
        CHECK(ps_queue_put_nowait(q, (void *)1) == 0 && ps_queue_put_nowait(q, (void *)2) == 0,
              "setup");
    race_go(r, q, round);
    if (join) {
        CHECK(ps_queue_join(q) == 0, "join");
    } else {
        int rc = ps_queue_get(q, &x, true, PS_FOREVER);
        CHECK(rc == ESHUTDOWN, "get after shutdown returned %d", rc);
    }
    race_destroy(r, q, round);
}

static void blocked_put_part(struct racer *r, void *q, unsigned round)
{
    (void)r;
    (void)round;                /* the getter delays instead */
    int rc = ps_queue_put(q, (void *)2, true, PS_FOREVER);
    CHECK(rc == 0, "blocked put returned %d", rc);
}

static void full_round(struct racer *r, unsigned round)
{
    ps_queue_t *q = race_queue(round, 1);
    void *a = NULL, *b = NULL;
    CHECK(ps_queue_put_nowait(q, (void *)1) == 0, "setup");
    race_go(r, q, round);
    race_delay(r, round);
    CHECK(ps_queue_get(q, &a, true, PS_FOREVER) == 0 && a == (void *)1, "first get");
    CHECK(ps_queue_get(q, &b, true, PS_FOREVER) == 0 && b == (void *)2, "second get");
    race_destroy(r, q, round);
}

/* Rounds per race. Each costs two TLB shootdowns (mprotect, munmap), tens of
 * microseconds on a VM; under TSan fewer, so that make tsan stays in minutes. */
#if defined(__SANITIZE_THREAD__)
#define RACE_ROUNDS 25000
#else
#define RACE_ROUNDS 100000
#endif

int main(int argc, char **argv)
{
    unsigned race_rounds = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : RACE_ROUNDS;
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
    race("join, destroy vs last task_done", race_rounds, task_done_part, join_round);
    race("get, destroy vs put", race_rounds, put_part, get_round);
    race("join/get, destroy vs shutdown", race_rounds, shutdown_part, shutdown_round);
    race("blocked put, get, destroy", race_rounds, blocked_put_part, full_round);
    if (failures) {
        fprintf(stderr, "stress_queue: %d failures\n", failures);
        return 1;
    }
    puts("stress_queue: ok");
    return 0;
}
