/* SPDX-License-Identifier: MIT */
/* Stress for the lock-free FIFO Queue (lib/fifo.c), run plain (make stress)
 * and under ThreadSanitizer (make tsan): 8 producers x 8 consumers over queues
 * of maxsize 1, 3, 64, 1000, 100000 (segmented) and unbounded, with a mix of
 * blocking, non-blocking and randomly timed puts and gets, 10^7 items in all
 * (1/50 of that under TSan, or argv[1] items).
 *
 * Every run ends with a shutdown: after the producers (the consumers then
 * drain the queue), or at a random moment from a thread of its own, plain or
 * immediate. What must hold, exactly:
 *   - every item a put accepted is received once or (immediate shutdown only)
 *     removed by the shutdown; nothing else is ever received;
 *   - each consumer sees each producer's items in the order they were put;
 *   - per producer, the received items are a prefix of the accepted ones: an
 *     immediate shutdown removes what is in the queue at once, so once one of
 *     a producer's items is removed, all its later ones are too;
 *   - task_done after each get plus the items shutdown removed balance the
 *     puts: join returns, one more task_done is EOVERFLOW;
 *   - qsize never exceeds maxsize, and is 0 at the end. */
#include <pysync/queue.h>

#include "../helpers.h"

enum { PRODUCERS = 8, CONSUMERS = 8 };
#define TOTAL_ITEMS 10000000L

static int failures;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "stress_queue_lin: %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
            __atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED);               \
        }                                                                     \
    } while (0)

/* An item: producer << 32 | (sequence + 1), never NULL. */
static void *item_of(int producer, long seq)
{
    return (void *)(uintptr_t)((uint64_t)producer << 32 | (uint64_t)(seq + 1));
}

static uint64_t next_random(uint64_t *s)
{
    *s ^= *s << 13;     /* xorshift64 */
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* 0-1 ms, mostly short: enough to expire now and then under load. */
static double random_timeout(uint64_t *s)
{
    return (double)(next_random(s) % 1000) * 1e-6;
}

struct run {
    ps_queue_t q;
    size_t maxsize;
    long per_producer;
    unsigned char *seen;                /* [producer * per_producer + seq] */
    long accepted[PRODUCERS];           /* puts that returned 0 */
    long received;                      /* atomic */
    long timeouts;                      /* atomic: ETIMEDOUT seen, a sanity figure */
};

struct worker {
    struct run *r;
    int id;
    uint64_t rng;
    pthread_t thread;
};

/* One put (of *item) or get (into *item) that does not give up on EAGAIN or
 * ETIMEDOUT: 0 or ESHUTDOWN. Each try is non-blocking, timed or blocking, at
 * random. */
static int put_or_get(struct worker *w, bool put, void **item)
{
    ps_queue_t *q = &w->r->q;
    for (;;) {
        int rc;
        switch (next_random(&w->rng) % 4) {
        case 0:
            rc = put ? ps_queue_put_nowait(q, *item) : ps_queue_get_nowait(q, item);
            break;
        case 1: {
            double t = random_timeout(&w->rng);
            rc = put ? ps_queue_put(q, *item, true, t) : ps_queue_get(q, item, true, t);
            break;
        }
        default:
            rc = put ? ps_queue_put(q, *item, true, PS_FOREVER)
                     : ps_queue_get(q, item, true, PS_FOREVER);
            break;
        }
        if (rc == ETIMEDOUT)
            __atomic_fetch_add(&w->r->timeouts, 1, __ATOMIC_RELAXED);
        if (rc != EAGAIN && rc != ETIMEDOUT)
            return rc;
        if (rc == EAGAIN)
            sched_yield();
    }
}

static void *producer(void *arg)
{
    struct worker *w = arg;
    struct run *r = w->r;
    long seq = 0;
    for (; seq < r->per_producer; seq++) {
        void *item = item_of(w->id, seq);
        int rc = put_or_get(w, true, &item);
        if (rc == ESHUTDOWN)
            break;
        CHECK(rc == 0, "put returned %d", rc);
        if (rc != 0)
            break;
    }
    r->accepted[w->id] = seq;       /* read after pthread_join */
    for (int i = 0; i < 3 && seq < r->per_producer; i++)      /* stays shut */
        CHECK(ps_queue_put_nowait(&r->q, item_of(w->id, seq)) == ESHUTDOWN,
              "put after shutdown");
    return NULL;
}

static void *consumer(void *arg)
{
    struct worker *w = arg;
    struct run *r = w->r;
    long last[PRODUCERS];
    for (int p = 0; p < PRODUCERS; p++)
        last[p] = -1;
    for (long n = 0;; n++) {
        void *item = NULL;
        int rc = put_or_get(w, false, &item);
        if (rc == ESHUTDOWN)
            break;
        CHECK(rc == 0, "get returned %d", rc);
        uint64_t x = (uint64_t)(uintptr_t)item;
        int p = (int)(x >> 32);
        long seq = (long)(x & 0xffffffffu) - 1;
        if (p >= PRODUCERS || seq < 0 || seq >= r->per_producer) {
            CHECK(false, "bad item %#llx", (unsigned long long)x);
            continue;
        }
        CHECK(seq > last[p], "consumer %d: producer %d's item %ld after %ld", w->id, p, seq,
              last[p]);
        last[p] = seq;
        __atomic_fetch_add(&r->seen[(long)p * r->per_producer + seq], 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&r->received, 1, __ATOMIC_RELAXED);
        CHECK(ps_queue_task_done(&r->q) == 0, "task_done");
        if (r->maxsize && n % 64 == 0)
            CHECK(ps_queue_qsize(&r->q) <= r->maxsize, "qsize above maxsize");
    }
    void *x;
    CHECK(ps_queue_get_nowait(&r->q, &x) == ESHUTDOWN, "get after ESHUTDOWN");
    return NULL;
}

struct shutter {
    struct run *r;
    long after;                 /* items received */
    bool immediate;
};

static void *shutter(void *arg)
{
    struct shutter *s = arg;
    while (__atomic_load_n(&s->r->received, __ATOMIC_RELAXED) < s->after)
        sleep_s(0.0001);
    CHECK(ps_queue_shutdown(&s->r->q, s->immediate) == 0, "shutdown");
    return NULL;
}

/* The prefix rule and the exact multiset; returns the items nobody received. */
static long check_items(struct run *r, bool immediate)
{
    long missing = 0;
    for (int p = 0; p < PRODUCERS; p++) {
        const unsigned char *seen = r->seen + (long)p * r->per_producer;
        long prefix = 0;
        while (prefix < r->accepted[p] && seen[prefix] == 1)
            prefix++;
        for (long i = prefix; i < r->per_producer; i++) {
            if (seen[i] != 0) {
                CHECK(false, "producer %d item %ld received %d times (accepted %ld, prefix %ld)",
                      p, i, seen[i], r->accepted[p], prefix);
                break;
            }
        }
        CHECK(immediate || prefix == r->accepted[p],
              "producer %d: %ld of %ld accepted items received", p, prefix, r->accepted[p]);
        missing += r->accepted[p] - prefix;
    }
    return missing;
}

/* shutdown_after < 0: shut down (plainly) once the producers are done; else
 * from another thread, once that many items were received. */
static void run_one(size_t maxsize, long items, long shutdown_after, bool immediate,
                    uint64_t seed)
{
    struct run *r = calloc(1, sizeof *r);
    r->maxsize = maxsize;
    r->per_producer = items / PRODUCERS;
    r->seen = calloc((size_t)(r->per_producer * PRODUCERS), 1);
    CHECK(ps_queue_init(&r->q, maxsize) == 0, "init");
    double t0 = now();

    struct worker w[PRODUCERS + CONSUMERS];
    for (int i = 0; i < PRODUCERS + CONSUMERS; i++) {
        w[i] = (struct worker){ .r = r, .id = i < PRODUCERS ? i : i - PRODUCERS,
                                .rng = seed * 0x9e3779b97f4a7c15ULL + (uint64_t)i + 1 };
        pthread_create(&w[i].thread, NULL, i < PRODUCERS ? producer : consumer, &w[i]);
    }
    struct shutter s = { r, shutdown_after, immediate };
    pthread_t st;
    if (shutdown_after >= 0)
        pthread_create(&st, NULL, shutter, &s);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(w[i].thread, NULL);
    if (shutdown_after < 0)
        CHECK(ps_queue_shutdown(&r->q, false) == 0, "shutdown");
    else
        pthread_join(st, NULL);
    for (int i = PRODUCERS; i < PRODUCERS + CONSUMERS; i++)
        pthread_join(w[i].thread, NULL);

    long accepted = 0;
    for (int p = 0; p < PRODUCERS; p++)
        accepted += r->accepted[p];
    long removed = check_items(r, immediate);
    CHECK(accepted == r->received + removed, "accepted %ld != received %ld + removed %ld",
          accepted, r->received, removed);
    CHECK(ps_queue_qsize(&r->q) == 0 && ps_queue_empty(&r->q), "queue not empty at the end");
    CHECK(ps_queue_join(&r->q) == 0, "join");       /* returns: the counts balance */
    CHECK(ps_queue_task_done(&r->q) == EOVERFLOW, "unfinished count off");
    CHECK(ps_queue_destroy(&r->q) == 0, "destroy");
    fprintf(stderr,
            "stress_queue_lin: maxsize %-6zu %-9s accepted %8ld received %8ld removed %7ld "
            "timeouts %6ld  %.1f s\n",
            maxsize, shutdown_after < 0 ? "drained" : immediate ? "immediate" : "shutdown",
            accepted, r->received, removed, r->timeouts, now() - t0);
    free(r->seen);
    free(r);
}

int main(int argc, char **argv)
{
    static const size_t sizes[] = { 1, 3, 64, 1000, 100000, 0 };
    /* Small queues hand over one item per sleep and wake-up: fewer items. */
    static const int weight[] = { 1, 2, 4, 6, 6, 6 };
    enum { NSIZES = sizeof sizes / sizeof sizes[0] };
    long total = argc > 1 ? atol(argv[1]) : UNDER_TSAN ? TOTAL_ITEMS / 50 : TOTAL_ITEMS;
    int weights = 0;
    for (int i = 0; i < NSIZES; i++)
        weights += weight[i] + 2;
    uint64_t seed = (uint64_t)time(NULL);
    fprintf(stderr, "stress_queue_lin: %ld items, seed %llu\n", total, (unsigned long long)seed);
    for (int i = 0; i < NSIZES; i++) {
        long unit = total / weights;
        run_one(sizes[i], unit * weight[i], -1, false, seed + (uint64_t)i);
        uint64_t s = seed + 100 + (uint64_t)i;
        long after = (long)(next_random(&s) % (uint64_t)(unit + 1));
        run_one(sizes[i], unit, after, false, s);
        run_one(sizes[i], unit, after, true, s + 1);
    }
    if (failures) {
        fprintf(stderr, "stress_queue_lin: %d failures\n", failures);
        return 1;
    }
    fprintf(stderr, "stress_queue_lin: ok\n");
    return 0;
}
