/* SPDX-License-Identifier: MIT */
/* tests/stress/stress_mpqueue.c - the cross-process queue (ps_mpqueue_*) under
 * load, run plain (make stress) and under ThreadSanitizer (make tsan).
 *
 *  1. MPMC runs: 4 producer and 4 consumer threads share a ps_mpqueue_new
 *     queue, from a large ring down to one that holds a single 300-byte
 *     message (so records wrap around the ring end all the time). Messages
 *     are 0..300 bytes: a header { producer, seq, len, checksum } and a
 *     pattern, or, below 16 bytes (too short for a header), a fill byte that
 *     encodes the length; those are counted per length. Puts and gets mix
 *     blocking, timed and non-blocking calls (fixed seeds), and a get now and
 *     then offers too small a buffer (ERANGE: the message must stay).
 *     Checked: every message arrives whole, valid and exactly once, each
 *     consumer sees each producer's messages in order, task_done/join
 *     balance, and no blocking call lasts as long as the 1 s backstop.
 *  2. Shutdown runs, shutdown(false) and shutdown(true): while producers are
 *     blocked on a full queue (and a joiner in join), while consumers are
 *     blocked on an empty one, and at a random moment. Checked: at most once,
 *     in order, nothing that was not put; with shutdown(false) everything put
 *     is still got; the blocked callers return ESHUTDOWN; join returns.
 *  3. Ping-pong: two threads bounce a message through two queues, answering
 *     after random delays so that puts land at every point of the getter's
 *     way into its sleep, one of them stormed by signals. A lost wake-up
 *     shows as a 1 s stall.
 *  4. "Wait, then free" (PITFALLS 13): the waiter frees the queue the moment
 *     its call returns (EBUSY retried) and a PROT_NONE page takes its place,
 *     while the waker (put, task_done, shutdown, a putter that was blocked on
 *     a full queue) may still be in its wake path; apart, together on one CPU
 *     and with the waker stormed by signals. A late access is a SIGSEGV.
 *  5. Processes (skipped under TSan, which copes badly with fork): 2 producer
 *     and 2 consumer processes pass 100k messages, twice (producers mostly
 *     blocked, then mostly putting); producers are SIGKILLed at random moments
 *     again and again, and replaced. Checked: every message whose put
 *     returned is got exactly once, the one a killed producer had in flight
 *     at most once, nothing torn, order kept, the counts balance, and the
 *     queue can be freed (reported only, for now: see process_part).
 *
 * argv[1] scales the work (default 1; TSan does a third); argv[2] picks one
 * part: runs, ping, races or procs. Exits non-zero on any failure; prints a
 * one-line summary. */
#include <pysync/multiprocessing.h>

#include "../helpers.h"

enum {
    NPROD = 4,
    NCONS = 4,
    MAX_MSG = 300,
    HDR = 16,               /* messages of HDR bytes or more carry a header */
    TINY = HDR,             /* shorter ones: len bytes of 0xE0 + len */
    MAX_ERRORS_SHOWN = 20,
};

#define STALL_S   0.9       /* a blocking call this long ran into the backstop */
#define WATCHDOG  240       /* s: the whole program, then it fails */

static atomic_int failures;
static atomic_int stalls;
static const char *volatile phase = "start";

#define CHECK(cond, ...)                                                         \
    do {                                                                         \
        if (!(cond)) {                                                           \
            if (atomic_fetch_add(&failures, 1) < MAX_ERRORS_SHOWN) {             \
                fprintf(stderr, "stress_mpqueue: %s: %s:%d: ", phase, __FILE__,  \
                        __LINE__);                                               \
                fprintf(stderr, __VA_ARGS__);                                    \
                fputc('\n', stderr);                                             \
            }                                                                    \
        }                                                                        \
    } while (0)

static void watchdog(int sig)
{
    (void)sig;
    static const char msg[] = "stress_mpqueue: watchdog: stuck, phase: ";
    ssize_t w = write(2, msg, sizeof msg - 1);
    w = write(2, phase, strlen(phase));
    w = write(2, "\n", 1);
    (void)w;
    _exit(3);
}

/* A waker that touches a freed queue lands here: say where, then die of it. */
static void on_segv(int sig)
{
    static const char msg[] = "stress_mpqueue: SIGSEGV (a freed queue touched?), phase: ";
    ssize_t w = write(2, msg, sizeof msg - 1);
    w = write(2, phase, strlen(phase));
    w = write(2, "\n", 1);
    (void)w;
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ---- randomness, messages ---- */

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static inline uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

struct hdr {
    uint32_t tag;           /* TAG_MAGIC | producer */
    uint32_t seq;
    uint32_t len;           /* the whole message */
    uint32_t sum;           /* FNV-1a of the payload and the fields above */
};
#define TAG_MAGIC 0x4d510000u

/* One message in 16 is tiny (0..15 bytes), the others 16..300. */
static size_t msg_len(uint32_t p, uint32_t s)
{
    uint64_t x = mix64((uint64_t)p << 32 ^ s ^ 0x5bd1e995u);
    if (x % 16 == 0)
        return (size_t)((x >> 8) % TINY);
    return HDR + (size_t)((x >> 8) % (MAX_MSG - HDR + 1));
}

static uint32_t fnv(uint32_t h, const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 16777619u;
    return h;
}

/* Builds message s of producer p into buf; returns its length. */
static size_t make_msg(unsigned char *buf, uint32_t p, uint32_t s)
{
    size_t len = msg_len(p, s);
    if (len < HDR) {
        memset(buf, 0xE0 + (int)len, len);
        return len;
    }
    unsigned char base = (unsigned char)mix64((uint64_t)p * 1000003u + s);
    for (size_t i = HDR; i < len; i++)
        buf[i] = (unsigned char)(base + i * 131);
    struct hdr h = { TAG_MAGIC | p, s, (uint32_t)len, 0 };
    h.sum = fnv(fnv(2166136261u, (const unsigned char *)&h, 12), buf + HDR, len - HDR);
    memcpy(buf, &h, sizeof h);
    return len;
}

/* 1: a valid message of producer *p < nprod, seq *s < per; 0: a valid tiny
 * one; -1: torn or invalid. */
static int check_msg(const unsigned char *buf, size_t len, uint32_t nprod, uint32_t per,
                     uint32_t *p, uint32_t *s)
{
    if (len < HDR) {
        for (size_t i = 0; i < len; i++)
            if (buf[i] != 0xE0 + len)
                return -1;
        return 0;
    }
    struct hdr h;
    memcpy(&h, buf, sizeof h);
    if ((h.tag & 0xffff0000u) != TAG_MAGIC || (h.tag & 0xffff) >= nprod || h.seq >= per ||
        h.len != len)
        return -1;
    unsigned char want[MAX_MSG];
    if (make_msg(want, h.tag & 0xffff, h.seq) != len || memcmp(want, buf, len) != 0)
        return -1;
    *p = h.tag & 0xffff;
    *s = h.seq;
    return 1;
}

/* ---- calls with a random mix of modes ---- */

static const double timeouts[] = { 0, 1e-4, 1e-3, 5e-3 };

/* Blocking (forever) calls that return 0 later than STALL_S count as stalls. */
static void note_stall(double t0, int rc)
{
    if (rc == 0 && now() - t0 > STALL_S)
        atomic_fetch_add(&stalls, 1);
}

/* 0, ESHUTDOWN or an unexpected code. */
static int put_mixed(ps_mpqueue_t *q, const void *msg, size_t len, uint64_t *rng)
{
    uint64_t x = rnd(rng);
    int rc, kind = (int)(x % 10);
    if (kind < 2) {                         /* non-blocking, then blocking */
        for (int i = 0; i < 20; i++) {
            if ((rc = ps_mpqueue_put_nowait(q, msg, len)) != EAGAIN)
                return rc;
            sched_yield();
        }
    } else if (kind < 4) {                  /* timed, retried */
        double t = timeouts[(x >> 8) % 4];
        while ((rc = ps_mpqueue_put(q, msg, len, true, t)) == ETIMEDOUT)
            if (t == 0)
                sched_yield();
        return rc;
    }
    double t0 = now();
    rc = ps_mpqueue_put(q, msg, len, true, PS_FOREVER);
    note_stall(t0, rc);
    return rc;
}

/* 0, ERANGE, ESHUTDOWN or an unexpected code. */
static int get_mixed(ps_mpqueue_t *q, void *buf, size_t cap, size_t *len, uint64_t x)
{
    int rc, kind = (int)(x % 10);
    if (kind < 2) {
        for (int i = 0; i < 20; i++) {
            if ((rc = ps_mpqueue_get_nowait(q, buf, cap, len)) != EAGAIN)
                return rc;
            sched_yield();
        }
    } else if (kind < 4) {
        double t = timeouts[(x >> 8) % 4];
        while ((rc = ps_mpqueue_get(q, buf, cap, len, true, t)) == ETIMEDOUT)
            if (t == 0)
                sched_yield();
        return rc;
    }
    double t0 = now();
    rc = ps_mpqueue_get(q, buf, cap, len, true, PS_FOREVER);
    note_stall(t0, rc);
    return rc;
}

/* ---- join with a time limit: a thread joins, the caller polls ---- */

typedef struct joiner {
    ps_mpqueue_t *q;
    pthread_t thread;
    atomic_int done;
    int rc;
} joiner_t;

static void *joiner_main(void *arg)
{
    joiner_t *j = arg;
    j->rc = ps_mpqueue_join(j->q);
    atomic_store(&j->done, 1);
    return NULL;
}

static void joiner_start(joiner_t *j, ps_mpqueue_t *q)
{
    j->q = q;
    atomic_init(&j->done, 0);
    j->rc = -1;
    start_threads(&j->thread, 1, joiner_main, j, 0);
}

/* true if the join returned 0 within secs. Else the thread is left behind. */
static bool joiner_wait(joiner_t *j, double secs)
{
    double end = now() + secs;
    while (!atomic_load(&j->done)) {
        if (now() > end)
            return false;
        sleep_s(0.0005);
    }
    pthread_join(j->thread, NULL);
    return j->rc == 0;
}

static bool join_within(ps_mpqueue_t *q, double secs)
{
    joiner_t j;
    joiner_start(&j, q);
    return joiner_wait(&j, secs);
}

/* Frees q, retrying while EBUSY (a caller still leaving) for at most secs.
 * true if freed. */
static bool free_queue(ps_mpqueue_t *q, double secs)
{
    double end = now() + secs;
    for (;;) {
        errno = 0;
        ps_mpqueue_free(q);
        if (errno == 0)
            return true;
        if (errno != EBUSY || now() > end)
            return false;
        sleep_s(0.00001);
    }
}

/* ---- threads: MPMC and shutdown runs ---- */

enum stop_mode { NO_SHUTDOWN, PUTTERS_BLOCKED, GETTERS_BLOCKED, ANY_MOMENT };
static const char *const mode_names[] = { "no shutdown", "putters blocked",
                                           "getters blocked", "any moment" };

typedef struct run {
    ps_mpqueue_t *q;
    uint32_t per_prod;
    uint64_t seed;
    atomic_uchar *seen;             /* [producer * per_prod + seq]: times got */
    atomic_uchar *put_ok;           /* ... its put returned 0 */
    atomic_long tiny_put[TINY], tiny_got[TINY];
    atomic_long puts, gets, ranges, shut_puts, shut_gets;
    atomic_int pause_cons, pause_prod;
} run_t;

typedef struct worker {
    run_t *r;
    uint32_t id;
} worker_t;

static void *producer(void *arg)
{
    worker_t *w = arg;
    run_t *r = w->r;
    uint64_t rng = mix64(r->seed ^ (0x100u + w->id)) | 1;
    unsigned char msg[MAX_MSG];
    for (uint32_t s = 0; s < r->per_prod; s++) {
        while (atomic_load(&r->pause_prod))
            sleep_s(0.0002);
        size_t len = make_msg(msg, w->id, s);
        int rc = put_mixed(r->q, msg, len, &rng);
        if (rc == ESHUTDOWN) {
            atomic_fetch_add(&r->shut_puts, 1);
            break;
        }
        CHECK(rc == 0, "put returned %d (%s)", rc, strerror(rc));
        if (rc)
            break;
        atomic_store(&r->put_ok[(size_t)w->id * r->per_prod + s], 1);
        if (len < TINY)
            atomic_fetch_add(&r->tiny_put[len], 1);
        atomic_fetch_add(&r->puts, 1);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    worker_t *w = arg;
    run_t *r = w->r;
    uint64_t rng = mix64(r->seed ^ (0x200u + w->id)) | 1;
    unsigned char buf[MAX_MSG + 8];
    int64_t last[NPROD];
    for (int i = 0; i < NPROD; i++)
        last[i] = -1;
    for (;;) {
        while (atomic_load(&r->pause_cons))
            sleep_s(0.0002);
        uint64_t x = rnd(&rng);
        size_t cap = x % 20 == 0 ? (size_t)(x >> 40) % 17 : sizeof buf, len = 99999;
        int rc = get_mixed(r->q, buf, cap, &len, x >> 5);
        if (rc == ERANGE) {
            CHECK(len > cap && len <= MAX_MSG, "ERANGE with cap %zu, len %zu", cap, len);
            atomic_fetch_add(&r->ranges, 1);
            continue;
        }
        if (rc == ESHUTDOWN) {
            atomic_fetch_add(&r->shut_gets, 1);
            break;
        }
        CHECK(rc == 0, "get returned %d (%s)", rc, strerror(rc));
        if (rc)
            break;
        uint32_t p, s;
        int kind = check_msg(buf, len, NPROD, r->per_prod, &p, &s);
        CHECK(kind >= 0, "torn or invalid message of %zu bytes", len);
        if (kind == 0) {
            atomic_fetch_add(&r->tiny_got[len], 1);
        } else if (kind == 1) {
            unsigned before = atomic_fetch_add(&r->seen[(size_t)p * r->per_prod + s], 1);
            CHECK(before == 0, "producer %u's message %u got twice", p, s);
            CHECK((int64_t)s > last[p], "producer %u: %u after %lld", p, s, (long long)last[p]);
            last[p] = s;
        }
        atomic_fetch_add(&r->gets, 1);
        rc = ps_mpqueue_task_done(r->q);
        CHECK(rc == 0, "task_done returned %d", rc);
    }
    return NULL;
}

/* Polls until at least n messages were got, for at most secs. */
static void wait_gets(run_t *r, long n, double secs)
{
    double end = now() + secs;
    while (atomic_load(&r->gets) < n && now() < end)
        sleep_s(0.0002);
}

/* Polls until *counter stayed the same for `quiet` s (the threads that move
 * it are blocked), for at most secs. */
static void wait_quiet(atomic_long *counter, double quiet, double secs)
{
    double end = now() + secs, since = now();
    long last = atomic_load(counter);
    while (now() < end) {
        sleep_s(0.001);
        long v = atomic_load(counter);
        if (v != last) {
            last = v;
            since = now();
        } else if (now() - since >= quiet) {
            return;
        }
    }
}

static long total_msgs, total_runs;

static void mpmc_run(size_t maxsize, size_t capacity, uint32_t per_prod, enum stop_mode mode,
                     bool immediate, uint64_t seed)
{
    static char name[96];
    double t0 = now();
    snprintf(name, sizeof name, "run(maxsize %zu, %zu bytes, %s%s)", maxsize, capacity,
             mode_names[mode], mode == NO_SHUTDOWN ? "" : immediate ? ", immediate" : ", drain");
    phase = name;
    run_t *r = calloc(1, sizeof *r);
    r->q = ps_mpqueue_new(maxsize, capacity);
    CHECK(r->q != NULL, "ps_mpqueue_new: %s", strerror(errno));
    if (!r->q)
        return;
    r->per_prod = per_prod;
    r->seed = seed;
    r->seen = calloc((size_t)NPROD * per_prod, 1);
    r->put_ok = calloc((size_t)NPROD * per_prod, 1);
    worker_t pw[NPROD], cw[NCONS];
    pthread_t pt[NPROD], ct[NCONS];
    for (uint32_t i = 0; i < NCONS; i++) {
        cw[i] = (worker_t){ r, i };
        start_threads(&ct[i], 1, consumer, &cw[i], 0);
    }
    for (uint32_t i = 0; i < NPROD; i++) {
        pw[i] = (worker_t){ r, i };
        start_threads(&pt[i], 1, producer, &pw[i], 0);
    }

    joiner_t blocked_joiner;
    bool joiner_started = false;
    uint64_t rng = mix64(seed) | 1;
    if (mode == NO_SHUTDOWN) {
        join_threads(pt, NPROD, NULL);
        CHECK(join_within(r->q, 60), "join did not return after every message was done");
        CHECK(ps_mpqueue_qsize(r->q) == 0, "qsize %zu after join", ps_mpqueue_qsize(r->q));
        ps_mpqueue_shutdown(r->q, false);           /* lets the consumers go */
    } else {
        if (mode == PUTTERS_BLOCKED) {
            wait_gets(r, (long)per_prod * NPROD / 4, 30);
            atomic_store(&r->pause_cons, 1);
            wait_quiet(&r->puts, 0.02, 30);         /* the putters are blocked */
            joiner_start(&blocked_joiner, r->q);    /* and a joiner */
            joiner_started = true;
            sleep_s(0.005);
        } else if (mode == GETTERS_BLOCKED) {
            wait_gets(r, (long)per_prod * NPROD / 4, 30);
            atomic_store(&r->pause_prod, 1);
            wait_quiet(&r->gets, 0.02, 30);         /* the getters are blocked */
        } else {
            sleep_s((double)(rnd(&rng) % 10000) * 1e-6);
        }
        int rc = ps_mpqueue_shutdown(r->q, immediate);
        CHECK(rc == 0, "shutdown returned %d", rc);
        atomic_store(&r->pause_cons, 0);
        atomic_store(&r->pause_prod, 0);
        join_threads(pt, NPROD, NULL);
    }
    join_threads(ct, NCONS, NULL);
    if (joiner_started)
        CHECK(joiner_wait(&blocked_joiner, 30), "a joiner blocked at shutdown never returned");

    /* What arrived: at most once (checked on arrival), only what was put;
     * everything put unless an immediate shutdown discarded it. */
    bool exact = mode == NO_SHUTDOWN || !immediate;
    long missing = 0, phantom = 0, tiny_off = 0;
    for (size_t i = 0; i < (size_t)NPROD * per_prod; i++) {
        unsigned seen = atomic_load(&r->seen[i]), ok = atomic_load(&r->put_ok[i]);
        bool tiny = msg_len((uint32_t)(i / per_prod), (uint32_t)(i % per_prod)) < TINY;
        if (tiny)
            continue;
        phantom += seen && !ok;
        missing += exact && ok && !seen;
    }
    for (int l = 0; l < TINY; l++) {
        long put = atomic_load(&r->tiny_put[l]), got = atomic_load(&r->tiny_got[l]);
        tiny_off += exact ? got != put : got > put;
    }
    CHECK(phantom == 0, "%ld messages got that were never put", phantom);
    CHECK(missing == 0, "%ld messages put but never got", missing);
    CHECK(tiny_off == 0, "tiny messages: counts of got and put differ");
    if (mode == NO_SHUTDOWN)
        CHECK(atomic_load(&r->puts) == (long)NPROD * per_prod, "only %ld puts",
              atomic_load(&r->puts));
    CHECK(atomic_load(&r->shut_gets) == NCONS, "%ld consumers saw ESHUTDOWN",
          atomic_load(&r->shut_gets));
    if (mode == PUTTERS_BLOCKED && atomic_load(&r->puts) < (long)NPROD * per_prod)
        CHECK(atomic_load(&r->shut_puts) > 0, "no blocked putter saw ESHUTDOWN");

    /* The counts balance; the queue stays shut. */
    unsigned char b[8];
    size_t len;
    CHECK(ps_mpqueue_qsize(r->q) == 0 && ps_mpqueue_empty(r->q), "queue not empty at the end");
    CHECK(join_within(r->q, 30), "join after the end did not return");
    int rc = ps_mpqueue_task_done(r->q);
    CHECK(rc == EOVERFLOW, "task_done after the end returned %d", rc);
    CHECK(ps_mpqueue_put_nowait(r->q, "x", 1) == ESHUTDOWN, "put after shutdown");
    CHECK(ps_mpqueue_get_nowait(r->q, b, sizeof b, &len) == ESHUTDOWN, "get after shutdown");
    CHECK(free_queue(r->q, 5), "free at the end failed: %s", strerror(errno));
    total_msgs += atomic_load(&r->gets);
    total_runs++;
    if (getenv("STRESS_VERBOSE"))
        fprintf(stderr, "%s: %ld got, %ld ERANGE, %ld puts shut out, %.2f s\n", name,
                atomic_load(&r->gets), atomic_load(&r->ranges), atomic_load(&r->shut_puts),
                now() - t0);
    free(r->seen);
    free(r->put_ok);
    free(r);
}

/* ---- ping-pong: each message has to wake a getter that is falling asleep ----
 *
 * Two threads bounce a message through two queues. Each side waits a random
 * while before it answers, from nothing to longer than a getter polls before
 * it sleeps, so puts land at every moment of the getter's way into its sleep
 * (count itself, re-check, futex_wait). A wake-up lost there shows as a get
 * that lasts as long as the 1 s backstop: a stall. */

typedef struct pingpong {
    ps_mpqueue_t *ab, *ba;
    long rounds;
} pingpong_t;

/* A quarter below 16 us (the getter still polls), the rest 16..143 us, around
 * the moment a getter stops polling and goes to sleep (~50 us here). */
static double pp_delay_us(uint64_t *rng)
{
    uint64_t x = rnd(rng);
    return x % 4 == 0 ? (double)(x >> 8 & 15) : 16.0 + (double)(x >> 8 & 127);
}

static void *pp_echo(void *arg)
{
    pingpong_t *pp = arg;
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    unsigned char buf[MAX_MSG];
    for (;;) {
        size_t len;
        int rc = ps_mpqueue_get(pp->ab, buf, sizeof buf, &len, true, PS_FOREVER);
        if (rc == ESHUTDOWN)
            return NULL;
        CHECK(rc == 0, "echo: get returned %d", rc);
        spin_us(pp_delay_us(&rng));
        rc = ps_mpqueue_put(pp->ba, buf, len, true, PS_FOREVER);
        CHECK(rc == 0, "echo: put returned %d", rc);
    }
}

static long pp_rounds_done;

static void ping_pong(long rounds)
{
    phase = "ping-pong";
    pingpong_t pp = { ps_mpqueue_new(0, 1024), ps_mpqueue_new(1, 1024), rounds };
    CHECK(pp.ab && pp.ba, "ps_mpqueue_new");
    if (!pp.ab || !pp.ba)
        return;
    pthread_t t;
    start_threads(&t, 1, pp_echo, &pp, 0);
    /* Signals whose handler runs 20 us stop the echo thread at any point of
     * its calls now and then: a put stopped between its steps gives a getter
     * going to sleep a long time to slip in between. */
    fast_storm_t storm;
    install_busy_handler(SIGUSR1, 20e-6);
    fast_storm_start(&storm, t, SIGUSR1, 50e-6);
    uint64_t rng = 0x2545f4914f6cdd1dULL;
    unsigned char msg[MAX_MSG], back[MAX_MSG];
    for (long i = 0; i < rounds; i++) {
        size_t len = make_msg(msg, 0, (uint32_t)i), got = 0;
        spin_us(pp_delay_us(&rng));
        int rc = ps_mpqueue_put(pp.ab, msg, len, true, PS_FOREVER);
        CHECK(rc == 0, "put returned %d", rc);
        double t0 = now();
        rc = ps_mpqueue_get(pp.ba, back, sizeof back, &got, true, PS_FOREVER);
        note_stall(t0, rc);
        CHECK(rc == 0 && got == len && memcmp(msg, back, len) == 0, "round %ld: get %d", i, rc);
    }
    ps_mpqueue_shutdown(pp.ab, false);
    fast_storm_stop(&storm);
    join_threads(&t, 1, NULL);
    CHECK(free_queue(pp.ab, 5) && free_queue(pp.ba, 5), "free");
    pp_rounds_done += rounds;
}

/* ---- wait, then free: the waker must not touch the queue afterwards ---- */

static long race_rounds_done, race_ebusy;

/* Frees q (retrying on EBUSY), then holds its page with a PROT_NONE mapping
 * until the waker is done, so that a late access by the waker is a SIGSEGV
 * even if something else could have been mapped there. */
static void race_free(racer_t *r, ps_mpqueue_t *q, unsigned round)
{
    double end = now() + 5.0;
    bool freed = false;
    for (;;) {
        errno = 0;
        ps_mpqueue_free(q);
        if (errno == 0) {
            freed = true;
            break;
        }
        if (errno != EBUSY || now() > end)
            break;
        race_ebusy++;
        sleep_s(0.00001);
    }
    CHECK(freed, "round %u: free failed: %s", round, strerror(errno));
    void *guard = MAP_FAILED;
    if (freed)
        guard = mmap(q, OBJ_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                     -1, 0);
    sem_wait_any(&r->done);
    if (guard != MAP_FAILED)
        munmap(guard, OBJ_PAGE);
    CHECK(r->errors == 0, "round %u: the waker's call failed", round);
    r->errors = 0;
    race_rounds_done++;
}

static ps_mpqueue_t *race_queue(size_t maxsize, unsigned round)
{
    ps_mpqueue_t *q = ps_mpqueue_new(maxsize, 64 + 8 * (round % 4));
    if (!q) {
        perror("ps_mpqueue_new");
        abort();
    }
    return q;
}

static void put_part(racer_t *r, void *q, unsigned round)
{
    race_delay(r, round);
    race_expect(r, ps_mpqueue_put(q, &round, sizeof round, true, PS_FOREVER), 0);
}

static void get_round(racer_t *r, unsigned round)
{
    ps_mpqueue_t *q = race_queue(round % 2, round);
    unsigned x = 0;
    size_t len = 0;
    race_go(r, q, round);
    int rc = ps_mpqueue_get(q, &x, sizeof x, &len, true, PS_FOREVER);
    CHECK(rc == 0 && len == sizeof x && x == round, "round %u: get returned %d", round, rc);
    race_free(r, q, round);
}

static void task_done_part(racer_t *r, void *q, unsigned round)
{
    race_delay(r, round);
    race_expect(r, ps_mpqueue_task_done(q), 0);
}

static void join_round(racer_t *r, unsigned round)
{
    ps_mpqueue_t *q = race_queue(0, round);
    unsigned x;
    size_t len;
    CHECK(ps_mpqueue_put_nowait(q, &round, sizeof round) == 0 &&
          ps_mpqueue_get_nowait(q, &x, sizeof x, &len) == 0, "setup");
    race_go(r, q, round);
    CHECK(ps_mpqueue_join(q) == 0, "join");
    race_free(r, q, round);
}

static void shutdown_part(racer_t *r, void *q, unsigned round)
{
    race_delay(r, round / 2);
    race_expect(r, ps_mpqueue_shutdown(q, round % 4 < 2), 0);
}

static void shutdown_round(racer_t *r, unsigned round)
{
    ps_mpqueue_t *q = race_queue(0, round);
    unsigned x;
    size_t len;
    race_go(r, q, round);
    int rc = ps_mpqueue_get(q, &x, sizeof x, &len, true, PS_FOREVER);
    CHECK(rc == ESHUTDOWN, "round %u: get after shutdown returned %d", round, rc);
    race_free(r, q, round);
}

static void blocked_put_part(racer_t *r, void *q, unsigned round)
{
    (void)round;                /* the getter delays instead */
    unsigned two = 2;
    race_expect(r, ps_mpqueue_put(q, &two, sizeof two, true, PS_FOREVER), 0);
}

static void full_round(racer_t *r, unsigned round)
{
    ps_mpqueue_t *q = race_queue(1, round);
    unsigned one = 1, a = 0, b = 0;
    size_t len;
    CHECK(ps_mpqueue_put_nowait(q, &one, sizeof one) == 0, "setup");
    race_go(r, q, round);
    race_delay(r, round);
    CHECK(ps_mpqueue_get(q, &a, sizeof a, &len, true, PS_FOREVER) == 0 && a == 1, "first get");
    CHECK(ps_mpqueue_get(q, &b, sizeof b, &len, true, PS_FOREVER) == 0 && b == 2, "second get");
    race_free(r, q, round);
}

/* Three phases: apart, together (helpers.h: the waiter preempts the waker
 * right where its wake-up lets it run) and apart with the waker stormed by
 * signals whose handler runs 20 us, so that now and then it stops for that
 * long at any instruction, e.g. right after its store. */
static void race(const char *what, unsigned rounds, void (*part)(racer_t *, void *, unsigned),
                 void (*round_fn)(racer_t *, unsigned))
{
    phase = what;
    for (int kind = 0; kind < 3; kind++) {
        racer_t r;
        fast_storm_t storm;
        racer_start(&r, part, kind == 1);
        if (kind == 2) {
            install_busy_handler(SIGUSR1, 20e-6);
            fast_storm_start(&storm, r.thread, SIGUSR1, 50e-6);
        }
        for (unsigned round = 1; round <= rounds / 3; round++)
            round_fn(&r, round);
        if (kind == 2)
            fast_storm_stop(&storm);
        racer_stop(&r);
    }
}

/* ---- processes: producers killed and replaced ---- */

enum { XSLOTS = 2, XCONS = 2, XMAX_INC = 256, XPER_INC = 50000 };

typedef struct xshared {
    atomic_long done_seq[XMAX_INC];         /* puts of that incarnation that returned */
    atomic_long tiny_put[TINY], tiny_got[TINY];
    atomic_long gets;
    atomic_int errors;
    atomic_uchar got[XMAX_INC][XPER_INC];
} xshared_t;

typedef struct xarg {
    ps_mpqueue_t *q;
    xshared_t *x;
    uint32_t inc;                           /* the producer's identity in messages */
    long count;
} xarg_t;

static void child_setup(void)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        _exit(9);
}

static void xerror(xshared_t *x, const char *what, long a, long b)
{
    if (atomic_fetch_add(&x->errors, 1) < MAX_ERRORS_SHOWN)
        fprintf(stderr, "stress_mpqueue: processes: %s (%ld, %ld)\n", what, a, b);
}

static int xproducer(void *arg)
{
    xarg_t *a = arg;
    child_setup();
    uint64_t rng = mix64(0xabcdefu + a->inc) | 1;
    unsigned char msg[MAX_MSG];
    for (long s = 0; s < a->count; s++) {
        size_t len = make_msg(msg, a->inc, (uint32_t)s);
        int rc = put_mixed(a->q, msg, len, &rng);
        if (rc) {
            xerror(a->x, "put returned", rc, s);
            return 1;
        }
        if (len < TINY)
            atomic_fetch_add(&a->x->tiny_put[len], 1);
        atomic_store(&a->x->done_seq[a->inc], s + 1);
    }
    return 0;
}

static int xconsumer(void *arg)
{
    xarg_t *a = arg;
    xshared_t *x = a->x;
    child_setup();
    uint64_t rng = mix64(0x13579bu + a->inc) | 1;
    unsigned char buf[MAX_MSG + 8];
    static long last[XMAX_INC];
    for (int i = 0; i < XMAX_INC; i++)
        last[i] = -1;
    for (;;) {
        uint64_t r = rnd(&rng);
        size_t cap = r % 20 == 0 ? (size_t)(r >> 40) % 17 : sizeof buf, len = 99999;
        int rc = get_mixed(a->q, buf, cap, &len, r >> 5);
        if (rc == ESHUTDOWN)
            break;
        if (rc == ERANGE) {
            if (len <= cap || len > MAX_MSG)
                xerror(x, "ERANGE with cap, len", (long)cap, (long)len);
            continue;
        }
        if (rc) {
            xerror(x, "get returned", rc, 0);
            return 1;
        }
        uint32_t p, s;
        int kind = check_msg(buf, len, XMAX_INC, XPER_INC, &p, &s);
        if (kind < 0) {
            xerror(x, "torn or invalid message, bytes", (long)len, 0);
        } else if (kind == 0) {
            atomic_fetch_add(&x->tiny_got[len], 1);
        } else {
            if (atomic_fetch_add(&x->got[p][s], 1) != 0)
                xerror(x, "message got twice (producer, seq)", p, s);
            if ((long)s <= last[p])
                xerror(x, "out of order (producer, seq)", p, s);
            last[p] = s;
        }
        atomic_fetch_add(&x->gets, 1);
        if ((rc = ps_mpqueue_task_done(a->q)) != 0)
            xerror(x, "task_done returned", rc, 0);
    }
    return 0;
}

static long xkills, xmsgs, xinflight, busy_after_kills;

/* total messages through a queue of capacity bytes; up to `kills` kills, one
 * every 1..max_gap_ms. */
static void process_part(long total, size_t capacity, int kills, int max_gap_ms)
{
    static char name[64];
    snprintf(name, sizeof name, "processes (%zu bytes)", capacity);
    phase = name;
    xshared_t *x = shm_alloc(sizeof *x);
    ps_mpqueue_t *q = ps_mpqueue_new(0, capacity);
    if (!q) {
        perror("ps_mpqueue_new");
        abort();
    }
    uint64_t rng = 0x2545F4914F6CDD1DULL;
    pid_t cons[XCONS], prod[XSLOTS];
    uint32_t inc_of[XSLOTS];
    long remaining[XSLOTS];
    bool running[XSLOTS];
    uint32_t next_inc = 0;
    long killed = 0;
    for (int i = 0; i < XCONS; i++) {
        xarg_t a = { q, x, (uint32_t)i, 0 };
        cons[i] = fork_child(xconsumer, &a);
    }
    for (int i = 0; i < XSLOTS; i++) {
        remaining[i] = total / XSLOTS;
        xarg_t a = { q, x, inc_of[i] = next_inc++, remaining[i] };
        prod[i] = fork_child(xproducer, &a);
        running[i] = true;
    }
    for (int k = 0; k < kills && (running[0] || running[1]); k++) {
        sleep_s((double)(1 + rnd(&rng) % (uint64_t)max_gap_ms) * 1e-3);
        int slot = (int)(rnd(&rng) % XSLOTS);
        if (!running[slot])
            slot ^= 1;
        int status;
        if (waitpid(prod[slot], &status, WNOHANG) == prod[slot]) {     /* done already */
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a producer failed");
            running[slot] = false;
            continue;
        }
        child_kill(prod[slot]);
        killed++;
        remaining[slot] -= atomic_load(&x->done_seq[inc_of[slot]]);
        if (remaining[slot] <= 0 || next_inc >= XMAX_INC) {
            running[slot] = false;
            continue;
        }
        xarg_t a = { q, x, inc_of[slot] = next_inc++, remaining[slot] };
        prod[slot] = fork_child(xproducer, &a);
    }
    for (int i = 0; i < XSLOTS; i++)
        if (running[i])
            CHECK(child_wait(prod[i], 120) == 0, "a producer failed or hung");
    CHECK(ps_mpqueue_shutdown(q, false) == 0, "shutdown");
    for (int i = 0; i < XCONS; i++)
        CHECK(child_wait(cons[i], 120) == 0, "a consumer failed or hung");

    /* Each put that returned: got once; the one in flight at a kill: at most once. */
    long missing = 0, beyond = 0, tiny_extra = 0;
    for (uint32_t inc = 0; inc < next_inc; inc++) {
        long done = atomic_load(&x->done_seq[inc]);
        for (long s = 0; s < XPER_INC; s++) {
            unsigned got = atomic_load(&x->got[inc][s]);
            if (s < done)
                missing += got != 1 && msg_len(inc, (uint32_t)s) >= TINY;
            else if (s == done)
                xinflight += got;
            else
                beyond += got != 0;
        }
    }
    for (int l = 0; l < TINY; l++) {
        long put = atomic_load(&x->tiny_put[l]), got = atomic_load(&x->tiny_got[l]);
        CHECK(got >= put, "tiny messages of %d bytes: %ld put, %ld got", l, put, got);
        tiny_extra += got - put;
    }
    CHECK(missing == 0, "%ld messages put but not got exactly once", missing);
    CHECK(beyond == 0, "%ld messages got that were never put", beyond);
    CHECK(tiny_extra <= killed, "%ld tiny messages got that were never put", tiny_extra - killed);
    CHECK(atomic_load(&x->errors) == 0, "%d errors in the children", atomic_load(&x->errors));
    CHECK(ps_mpqueue_qsize(q) == 0, "queue not empty at the end");
    CHECK(join_within(q, 30), "join after the end did not return");
    CHECK(ps_mpqueue_task_done(q) == EOVERFLOW, "task_done after the end");
    xmsgs += atomic_load(&x->gets);
    xkills += killed;
    /* A caller killed anywhere inside is recorded (one CAS enters, lib/inside.h)
     * and discounted once dead, so the queue must go. */
    if (!free_queue(q, 2.0)) {
        busy_after_kills++;
        CHECK(false, "%s: free stays EBUSY after %ld kills", name, killed);
    }
    shm_free(x, sizeof *x);
}

/* ---- main ---- */

int main(int argc, char **argv)
{
    double scale = argc > 1 ? atof(argv[1]) : 1.0;
    const char *only = argc > 2 ? argv[2] : NULL;   /* runs, ping, races, procs */
    if (!(scale > 0)) {
        fprintf(stderr, "usage: %s [scale (default 1) [runs|ping|races|procs]]\n", argv[0]);
        return 2;
    }
    if (UNDER_TSAN)
        scale /= 3;
    signal(SIGALRM, watchdog);
    signal(SIGSEGV, on_segv);
    alarm(WATCHDOG);
    double t0 = now();

    static const struct { size_t maxsize, capacity; } configs[] = {
        { 0, 1 << 16 },     /* never full in practice */
        { 8, 4096 },        /* full by count */
        { 0, 1024 },        /* full by bytes, wraps often */
        { 0, 312 },         /* one 300-byte message at a time, or a few small */
        { 3, 700 },         /* both limits */
    };
    const size_t nconf = sizeof configs / sizeof configs[0];
    if (!only || strstr(only, "run")) {
        uint32_t per = (uint32_t)(25000 * scale) + 50;
        for (size_t i = 0; i < nconf; i++)
            mpmc_run(configs[i].maxsize, configs[i].capacity, per, NO_SHUTDOWN, false, 1 + i);
        uint32_t per_shut = (uint32_t)(8000 * scale) + 200;
        for (int m = PUTTERS_BLOCKED; m <= ANY_MOMENT; m++)
            for (int imm = 0; imm < 2; imm++) {
                size_t c = (size_t)(m * 2 + imm) % nconf;
                if (m == PUTTERS_BLOCKED && configs[c].capacity > 4096)
                    c = 1;                          /* a queue that fills */
                mpmc_run(configs[c].maxsize, configs[c].capacity, per_shut,
                         (enum stop_mode)m, imm, 100 + (uint64_t)m * 2 + (uint64_t)imm);
            }
    }
    if (!only || strstr(only, "ping"))
        ping_pong((long)(8000 * scale) + 100);
    if (!only || strstr(only, "race")) {
        unsigned rounds = (unsigned)(4500 * scale) + 30;
        race("get, free vs put", rounds, put_part, get_round);
        race("join, free vs last task_done", rounds, task_done_part, join_round);
        race("get, free vs shutdown", rounds, shutdown_part, shutdown_round);
        race("blocked put, gets, free", rounds, blocked_put_part, full_round);
    }
    if (!UNDER_TSAN && (!only || strstr(only, "proc"))) {
        process_part(100000, 4096, 25, 20);     /* producers mostly blocked */
        process_part(100000, 65536, 100, 4);    /* producers mostly putting */
    }

    /* One stall may be the VM stopping us for a second; lost wake-ups make many. */
    int st = atomic_load(&stalls);
    phase = "end";
    CHECK(st <= 1, "%d blocking calls lasted as long as the 1 s backstop (lost wake-ups?)", st);
    int f = atomic_load(&failures);
    char procs[160] = "processes: skipped under TSan";
    if (!UNDER_TSAN)
        snprintf(procs, sizeof procs,
                 "processes: %ld messages, %ld kills, %ld in flight got, %ld left EBUSY",
                 xmsgs, xkills, xinflight, busy_after_kills);
    printf("stress_mpqueue: %s: %ld runs, %ld messages; %ld ping-pongs; %ld free races "
           "(%ld EBUSY); %s; %d stalls; %.1f s\n",
           f ? "FAILED" : "ok", total_runs, total_msgs, pp_rounds_done, race_rounds_done,
           race_ebusy, procs, st, now() - t0);
    fflush(stdout);
    if (f) {
        fprintf(stderr, "stress_mpqueue: %d failures\n", f);
        return 1;
    }
    return 0;
}
