/* SPDX-License-Identifier: MIT */
/* tests/stress/stress_condition.c - producer/consumer on a Condition (wait_for,
 * notify, notify_all), Event ping-pong, Barrier rounds with an action, Semaphore
 * hand-off; private and PS_SHARED objects, threads only. Plain program (no Criterion)
 * so that it runs under ThreadSanitizer; exits non-zero on a wrong result. */
#include <pysync/threading.h>

#include "../helpers.h"

/* libtsan (gcc 12) does not intercept pthread_mutex_clocklock, which a timed acquire
 * of a PS_SHARED lock uses: TSan then reports the matching unlock as "unlock of an
 * unlocked mutex". Condition acquires here are therefore untimed; the waits keep
 * their timeouts, so a bug still fails instead of hanging. */
#define ACQ_TIMEOUT PS_FOREVER

static atomic_int errors;

static void fail(const char *what, int rc)
{
    fprintf(stderr, "stress_condition: %s: %d (%s)\n", what, rc, strerror(rc));
    atomic_fetch_add(&errors, 1);
}

/* ---- producer / consumer ---- */

enum { PRODUCERS = 2, CONSUMERS = 2, ITEMS = 10000, CAP = 4 };

typedef struct pc {
    ps_condition_t *c;
    int buf[CAP];
    int head, count, produced_done;
    long sum;
    int taken;
} pc_t;

static bool not_full(void *arg) { return ((pc_t *)arg)->count < CAP; }
static bool not_empty_or_done(void *arg)
{
    pc_t *p = arg;
    return p->count > 0 || p->produced_done == PRODUCERS;
}

static void *producer(void *arg)
{
    pc_t *p = arg;
    for (int i = 1; i <= ITEMS; i++) {
        int rc = ps_condition_acquire(p->c, true, ACQ_TIMEOUT);
        if (rc) {
            fail("producer acquire", rc);
            return NULL;
        }
        if ((rc = ps_condition_wait_for(p->c, not_full, p, 10.0))) {
            fail("producer wait_for", rc);
            ps_condition_release(p->c);
            return NULL;
        }
        p->buf[(p->head + p->count) % CAP] = i;
        p->count++;
        ps_condition_notify(p->c, 1);
        ps_condition_release(p->c);
    }
    ps_condition_acquire(p->c, true, ACQ_TIMEOUT);
    p->produced_done++;
    ps_condition_notify_all(p->c);
    ps_condition_release(p->c);
    return NULL;
}

static void *consumer(void *arg)
{
    pc_t *p = arg;
    for (;;) {
        int rc = ps_condition_acquire(p->c, true, ACQ_TIMEOUT);
        if (rc) {
            fail("consumer acquire", rc);
            return NULL;
        }
        if ((rc = ps_condition_wait_for(p->c, not_empty_or_done, p, 10.0))) {
            fail("consumer wait_for", rc);
            ps_condition_release(p->c);
            return NULL;
        }
        if (p->count == 0) {
            ps_condition_release(p->c);
            return NULL;
        }
        p->sum += p->buf[p->head];
        p->head = (p->head + 1) % CAP;
        p->count--;
        p->taken++;
        ps_condition_notify_all(p->c);   /* producers and consumers share it */
        ps_condition_release(p->c);
    }
}

static void producer_consumer(int flags)
{
    pc_t p = { .c = ps_condition_new(NULL, flags) };
    pthread_t pr[PRODUCERS], co[CONSUMERS];
    start_threads(co, CONSUMERS, consumer, &p, 0);
    start_threads(pr, PRODUCERS, producer, &p, 0);
    join_threads(pr, PRODUCERS, NULL);
    join_threads(co, CONSUMERS, NULL);
    long want = (long)PRODUCERS * ITEMS * (ITEMS + 1) / 2;
    if (p.taken != PRODUCERS * ITEMS || p.sum != want) {
        fprintf(stderr, "stress_condition: took %d items, sum %ld (expected %d, %ld)\n",
                p.taken, p.sum, PRODUCERS * ITEMS, want);
        atomic_fetch_add(&errors, 1);
    }
    ps_condition_free(p.c);
}

/* ---- event ping-pong ---- */

enum { PINGS = 3000 };

typedef struct pp {
    ps_event_t *ping, *pong;
    long n;
} pp_t;

static void *ponger(void *arg)
{
    pp_t *p = arg;
    for (int i = 0; i < PINGS; i++) {
        int rc = ps_event_wait(p->ping, 10.0);
        if (rc) {
            fail("pong wait", rc);
            return NULL;
        }
        ps_event_clear(p->ping);
        p->n++;
        ps_event_set(p->pong);
    }
    return NULL;
}

static void event_pingpong(int flags)
{
    pp_t p = { .ping = ps_event_new(flags), .pong = ps_event_new(flags) };
    pthread_t t;
    start_threads(&t, 1, ponger, &p, 0);
    for (int i = 0; i < PINGS; i++) {
        ps_event_set(p.ping);
        int rc = ps_event_wait(p.pong, 10.0);
        if (rc) {
            fail("ping wait", rc);
            break;
        }
        ps_event_clear(p.pong);
        p.n++;
    }
    join_threads(&t, 1, NULL);
    if (p.n != 2 * PINGS) {
        fprintf(stderr, "stress_condition: ping-pong count %ld\n", p.n);
        atomic_fetch_add(&errors, 1);
    }
    ps_event_free(p.ping);
    ps_event_free(p.pong);
}

/* ---- barrier rounds ---- */

enum { PARTIES = 4, ROUNDS = 1000 };

typedef struct br {
    ps_barrier_t *b, *b2;          /* b runs the action; b2 separates the rounds */
    atomic_int trips;
    atomic_int idx_seen[PARTIES];  /* per-round index counts, checked by the action */
    atomic_int bad;
    long work[PARTIES];
    long total;                    /* written by the action only */
} br_t;

/* Runs in the last arriving thread before anyone is released. */
static void action(void *arg)
{
    br_t *r = arg;
    for (int i = 0; i < PARTIES; i++)
        r->total += r->work[i];    /* everyone wrote before arriving */
    atomic_fetch_add(&r->trips, 1);
}

typedef struct br_arg {
    br_t *r;
    int me;
} br_arg_t;

static void *party(void *arg)
{
    br_arg_t *a = arg;
    br_t *r = a->r;
    for (int round = 0; round < ROUNDS; round++) {
        r->work[a->me] = round;
        unsigned idx = 999;
        int rc = ps_barrier_wait(r->b, 10.0, &idx);
        if (rc) {
            fail("barrier wait", rc);
            return NULL;
        }
        if (idx >= PARTIES)
            atomic_fetch_add(&r->bad, 1);
        else
            atomic_fetch_add(&r->idx_seen[idx], 1);
        if (atomic_load(&r->trips) != round + 1)
            atomic_fetch_add(&r->bad, 1);
        /* nobody rewrites work[] or re-arrives before everyone checked */
        if ((rc = ps_barrier_wait(r->b2, 10.0, NULL))) {
            fail("barrier wait 2", rc);
            return NULL;
        }
        if (a->me == 0) {
            for (int i = 0; i < PARTIES; i++)
                if (atomic_load(&r->idx_seen[i]) != round + 1)
                    atomic_fetch_add(&r->bad, 1);
        }
    }
    return NULL;
}

static void barrier_rounds(int flags)
{
    br_t *r = calloc(1, sizeof *r);
    r->b = ps_barrier_new(PARTIES, action, r, PS_FOREVER, flags);
    r->b2 = ps_barrier_new(PARTIES, NULL, NULL, PS_FOREVER, flags);
    br_arg_t args[PARTIES];
    for (int i = 0; i < PARTIES; i++)
        args[i] = (br_arg_t){ r, i };
    run_threads(PARTIES, party, args, sizeof args[0]);
    long want = (long)PARTIES * ROUNDS * (ROUNDS - 1) / 2;
    if (atomic_load(&r->trips) != ROUNDS || atomic_load(&r->bad) || r->total != want) {
        fprintf(stderr, "stress_condition: barrier trips %d bad %d total %ld (want %ld)\n",
                atomic_load(&r->trips), atomic_load(&r->bad), r->total, want);
        atomic_fetch_add(&errors, 1);
    }
    ps_barrier_free(r->b);
    ps_barrier_free(r->b2);
    free(r);
}

/* ---- semaphore hand-off: each release lets exactly one waiter through ---- */

enum { HANDOFFS = 5000, WAITERS = 3 };

typedef struct ho {
    ps_semaphore_t *sem, *done;
    atomic_int passed;
} ho_t;

static void *handoff_waiter(void *arg)
{
    ho_t *h = arg;
    for (;;) {
        int rc = ps_semaphore_acquire(h->sem, true, 10.0);
        if (rc) {
            fail("handoff acquire", rc);
            return NULL;
        }
        if (atomic_fetch_add(&h->passed, 1) >= HANDOFFS)
            return NULL;           /* the stop tokens */
        ps_semaphore_release(h->done, 1);
    }
}

static void semaphore_handoff(int flags)
{
    ho_t h = { .sem = ps_semaphore_new(0, flags), .done = ps_semaphore_new(0, flags) };
    pthread_t t[WAITERS];
    start_threads(t, WAITERS, handoff_waiter, &h, 0);
    for (int i = 0; i < HANDOFFS; i++) {
        ps_semaphore_release(h.sem, 1);
        int rc = ps_semaphore_acquire(h.done, true, 10.0);
        if (rc) {
            fail("handoff done", rc);
            break;
        }
    }
    ps_semaphore_release(h.sem, WAITERS);
    join_threads(t, WAITERS, NULL);
    if (atomic_load(&h.passed) != HANDOFFS + WAITERS || ps_semaphore_value(h.sem) != 0) {
        fprintf(stderr, "stress_condition: hand-off passed %d value %d\n",
                atomic_load(&h.passed), ps_semaphore_value(h.sem));
        atomic_fetch_add(&errors, 1);
    }
    ps_semaphore_free(h.sem);
    ps_semaphore_free(h.done);
}

int main(void)
{
    for (int flags = 0; flags <= PS_SHARED; flags += PS_SHARED) {
        double t0 = now();
        producer_consumer(flags);
        event_pingpong(flags);
        barrier_rounds(flags);
        semaphore_handoff(flags);
        printf("stress_condition (%s): %.2f s: %s\n", flags ? "PS_SHARED" : "private",
               now() - t0, atomic_load(&errors) ? "FAIL" : "ok");
    }
    return atomic_load(&errors) ? 1 : 0;
}
