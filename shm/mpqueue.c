/* SPDX-License-Identifier: MIT */
/* The cross-process queue: multiprocessing.Queue / JoinableQueue of bytes.
 *
 * Layout
 *   One block of shared memory: this header, then a ring of ring_bytes bytes
 *   (a multiple of 8). Everything is relative to the block, so a queue works at
 *   any address (a manager's segment is mapped differently in each process).
 *   A message is an 8-byte record header { len, seq } followed by len bytes,
 *   padded to 8; it may wrap around the end of the ring (then it is copied in
 *   two pieces), so a message fits whenever the free bytes are enough.
 *
 * Invariants
 *   _tail is (position << 0 | puts << 32) and _head is (position | gets << 32):
 *   each side's whole state in one 64-bit word, written only under that side's
 *   lock (put.lock, get.lock) with a release (seq_cst) store after the bytes it
 *   publishes. puts - gets (mod 2^32) is the number of messages queued; the
 *   bytes queued follow from the two positions. Each side caches the other's
 *   word (put.head_seen, get.tail_seen) and re-reads it only when its cache says full
 *   or empty, so one producer and one consumer share a cache line about once
 *   per batch, not once per message (a two-lock queue).
 *   _done is (task_done calls << 2) | DISCARDED | JOINING. Unfinished tasks are
 *   puts - done, or, once an immediate shutdown has DISCARDED what was queued,
 *   gets - done (never below 0): what was thrown away counts as done, with no
 *   second word to update.
 *
 * Crash safety (a process SIGKILLed at any instruction)
 *   A put writes its record into free space, then publishes it with the one
 *   _tail store; a get copies the message out, then consumes it with the one
 *   _head store. A death before that store leaves nothing visible (the put) or
 *   the message still queued (the get): never a torn, duplicated or phantom
 *   message. The locks are robust: the next holder gets EOWNERDEAD and has
 *   nothing to repair, since the published words are always consistent and
 *   the caches are only hints (a stale cache underestimates).
 *   A death between a publishing store and the wake-up that should follow it
 *   would leave a sleeper asleep with work to do. So no sleep lasts longer than
 *   BACKSTOP_S: a sleeper re-checks once a second (no work while asleep)
 *   and also reaps the sleeper counts of processes killed while asleep.
 *
 * Who wakes whom
 *   As in lib/queue.c: getters sleep on not_empty, counted in getters; putters
 *   on not_full, counted in putters; joiners on the low half of _done after
 *   setting JOINING. A sleeper reads its word, counts itself, re-checks; a
 *   waker publishes (seq_cst), reads the count, and if non-zero bumps the word
 *   under its lock and calls futex_wake after releasing it. A put wakes one
 *   getter (any message lets any getter return; one whose buffer is too small
 *   returns ERANGE and passes the wake-up on to the next); a get wakes every
 *   putter (the freed bytes may suit only some of them).
 *
 * The waker's last access (PITFALLS 13)
 *   After the store that lets a waiter return, a waker touches only its own
 *   lock (destroy takes both locks, so it waits for that release) and a
 *   futex_wake on an address. Every blocking caller stays counted (put.inside,
 *   get.inside, join_inside, each on its own side's cache lines) until its
 *   last access; destroy is EBUSY while a live one is.
 *
 * Lock order: put.lock, then get.lock (shutdown and destroy take both).
 * Hostile segments: the header is checked when the manager finds the queue;
 * every record header read from the ring is checked before it is used. */
#include "mpqueue.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "futex.h"
#include "inside.h"
#include "pmutex.h"
#include "timing.h"

#define MPQ_MAGIC  0x31455545555150ull     /* "PQUEUE1" */
#define RECORD     PS_MPQUEUE_OVERHEAD     /* the record header */
#define RING_MAX   ((size_t)1 << 31)
#define LINE       64

#define WAIT_SPINS  1000        /* pauses polling before yielding (~30 us here) */
#define WAIT_YIELDS 16          /* then sched_yield polls before sleeping */
#define MIN_BACKOFF 64          /* pauses between two polls: at first, */
#define MAX_BACKOFF 256         /* and at most */
#define BACKSTOP_S  1           /* no sleep is longer (see "Crash safety") */

enum { ALIVE, SHUT_DOWN };
#define JOINING   ((uint64_t)1)
#define DISCARDED ((uint64_t)2)

/* The fields each side writes are kept a whole cache line (a gap) away from
 * the next side's: a queue in a manager's heap is only 16-byte aligned, so
 * where the lines fall is not known, but no line can then hold fields of
 * both. */
struct put_side {
    pthread_mutex_t lock;
    uint64_t head_seen;                 /* cache of _head */
    struct ps__inside inside;           /* blocking putters, for destroy */
};

struct get_side {
    pthread_mutex_t lock;
    uint64_t tail_seen;                 /* cache of _tail */
    struct ps__inside inside;           /* blocking getters, for destroy */
};

struct ps_mpqueue {
    /* set by init, then only read */
    uint64_t magic;
    uint64_t ring_bytes;
    uint64_t maxsize;                   /* 0: no count limit */
    uint64_t map_bytes;                 /* ps_mpqueue_new's mapping; 0: a manager's */
    char gap0[LINE];
    struct put_side put;
    char gap1[LINE];
    uint64_t tail;
    char gap2[LINE];
    struct get_side get;
    char gap3[LINE];
    uint64_t head;
    char gap4[LINE];
    /* rarely written */
    uint64_t done;
    unsigned not_empty, not_full;       /* futex words */
    unsigned shutdown;
    struct ps__inside getters, putters; /* asleep, or about to be */
    struct ps__inside join_inside;      /* joiners, for destroy */
    char gap5[LINE];
    unsigned char ring[];
};

#define load_relaxed(p)     __atomic_load_n((p), __ATOMIC_RELAXED)
#define load_acquire(p)     __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define load_sc(p)          __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define store_sc(p, v)      __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)

/* ---- words and sizes ---- */

static inline uint32_t pos_of(uint64_t word) { return (uint32_t)word; }
static inline uint32_t count_of(uint64_t word) { return (uint32_t)(word >> 32); }
static inline uint64_t pack(uint64_t pos, uint32_t count) { return (uint64_t)count << 32 | pos; }

static inline uint64_t record_bytes(uint64_t len) { return RECORD + (len + 7) / 8 * 8; }

/* pos + n for n <= ring_bytes, wrapped: no division on the fast path. */
static inline uint64_t advance(const ps_mpqueue_t *q, uint64_t pos, uint64_t n)
{
    pos += n;
    return pos >= q->ring_bytes ? pos - q->ring_bytes : pos;
}

static uint64_t used_bytes(const ps_mpqueue_t *q, uint64_t tail, uint64_t head)
{
    if (count_of(tail) == count_of(head))
        return 0;
    uint64_t t = pos_of(tail), h = pos_of(head);
    return t > h ? t - h : q->ring_bytes - (h - t);   /* t == h: full */
}

/* Is there room for msgs more messages of bytes ring bytes in all? */
static bool has_room(const ps_mpqueue_t *q, uint64_t tail, uint64_t head, uint64_t bytes,
                     uint64_t msgs)
{
    uint64_t count = (uint32_t)(count_of(tail) - count_of(head));
    if (q->maxsize && count + msgs > q->maxsize)
        return false;
    return used_bytes(q, tail, head) + bytes <= q->ring_bytes;
}

bool mpqueue_capacity_ok(size_t capacity_bytes)
{
    return capacity_bytes >= RECORD && capacity_bytes <= RING_MAX;
}

size_t mpqueue_object_size(size_t capacity_bytes)
{
    return sizeof(ps_mpqueue_t) + capacity_bytes / 8 * 8;
}

size_t mpqueue_header_size(void) { return sizeof(ps_mpqueue_t); }

static bool queue_ok(const ps_mpqueue_t *q)
{
    return q && load_acquire(&q->magic) == MPQ_MAGIC;
}

/* ---- the ring ---- */

static void ring_write(ps_mpqueue_t *q, uint64_t pos, const void *data, uint64_t len)
{
    if (len == 0)
        return;                     /* data may be NULL then */
    uint64_t first = q->ring_bytes - pos < len ? q->ring_bytes - pos : len;
    memcpy(q->ring + pos, data, first);
    memcpy(q->ring, (const char *)data + first, len - first);
}

static void ring_read(const ps_mpqueue_t *q, uint64_t pos, void *buf, uint64_t len)
{
    if (len == 0)
        return;                     /* buf may be NULL then */
    uint64_t first = q->ring_bytes - pos < len ? q->ring_bytes - pos : len;
    memcpy(buf, q->ring + pos, first);
    memcpy((char *)buf + first, q->ring, len - first);
}

/* ---- the done word ---- */

/* Joiners sleep on its low 32 bits, which change with every task_done. */
static inline unsigned *done_word(ps_mpqueue_t *q)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return (unsigned *)&q->done + 1;
#else
    return (unsigned *)&q->done;
#endif
}

static uint32_t unfinished(ps_mpqueue_t *q, uint64_t done)
{
    uint32_t finished = (uint32_t)(done >> 2);
    if (!(done & DISCARDED))
        return count_of(load_acquire(&q->tail)) - finished;
    int32_t left = (int32_t)(count_of(load_acquire(&q->head)) - finished);
    return left > 0 ? (uint32_t)left : 0;
}

/* done after a change that leaves `left` tasks: the change that finishes them
 * all clears JOINING in the same CAS, which tells its maker to wake. */
static inline uint64_t settle(uint64_t next, uint32_t left)
{
    return left ? next : next & ~JOINING;
}

static inline bool wakes_joiners(uint64_t before, uint64_t after)
{
    return (before & JOINING) && !(after & JOINING);
}

/* ---- sleeping ---- */

/* The deadline of one sleep: d's, but never more than BACKSTOP away. */
static const struct timespec *sleep_until(const deadline_t *d, struct timespec *at)
{
    clock_gettime(CLOCK_MONOTONIC, at);
    at->tv_sec += BACKSTOP_S;
    if (d->forever || d->at.tv_sec > at->tv_sec ||
        (d->at.tv_sec == at->tv_sec && d->at.tv_nsec > at->tv_nsec))
        return at;
    return &d->at;
}

/* A sleep that ran into the backstop: the sleepers it shares the count with
 * may include processes killed while asleep, which make every waker call
 * futex_wake in vain until they are discounted. */
static void reap_dead(struct ps__inside *sleepers, int err)
{
    if (err == ETIMEDOUT)
        inside_reap(sleepers);
}

typedef bool ready_fn(ps_mpqueue_t *q, uint64_t need);

/* Sleeps once on *word, counted in *sleepers, unless ready() already holds.
 * Returns on any wake-up; the caller re-checks. */
static void sleep_unless(ps_mpqueue_t *q, unsigned *word, struct ps__inside *sleepers,
                         ready_fn *ready, uint64_t need, const deadline_t *d)
{
    struct timespec at;
    unsigned seen = load_acquire(word);
    int entry = inside_enter(sleepers, true);       /* seq_cst, before the re-check */
    if (!ready(q, need))
        reap_dead(sleepers, futex_wait(word, seen, sleep_until(d, &at), true));
    inside_leave(sleepers, entry);
}

/* A short poll first: with the peer running on another CPU, room or a message
 * usually appears within microseconds, and a futex sleep and wake cost several.
 * Polls are spaced out (MIN_BACKOFF pauses, about 2 us here): each poll pulls
 * the line the peer is writing, and a consumer that looked after every single
 * put would make the producer fetch its _tail line back once per message; a
 * little slack lets messages arrive in batches (6 vs 4 M msgs/s of 64 bytes
 * here, for about 1 us more latency). The yields let a peer that shares our
 * CPU run. */
struct ready_call {
    ps_mpqueue_t *q;
    ready_fn *ready;
    uint64_t need;
};

static bool ready_now(void *arg)
{
    struct ready_call *c = arg;
    return c->ready(c->q, c->need);
}

static void spin_until(ps_mpqueue_t *q, ready_fn *ready, uint64_t need)
{
    static const struct spin_policy spin = { WAIT_SPINS, MIN_BACKOFF, MAX_BACKOFF, WAIT_YIELDS };
    struct ready_call c = { q, ready, need };
    spin_until_ready(&spin, ready_now, &c);
}

static bool can_get(ps_mpqueue_t *q, uint64_t need)
{
    (void)need;
    return count_of(load_sc(&q->tail)) != count_of(load_relaxed(&q->head)) ||
           load_relaxed(&q->shutdown) != ALIVE || (load_relaxed(&q->done) & DISCARDED);
}

static bool can_put(ps_mpqueue_t *q, uint64_t need)
{
    uint64_t head = load_sc(&q->head);
    return has_room(q, load_relaxed(&q->tail), head, need, 1) ||
           load_relaxed(&q->shutdown) != ALIVE;
}

/* What a spinning putter waits for: room for a batch (a quarter of the queue),
 * so that it does not go back to a full queue after every get and move the
 * head's cache line once per message. A sleeping putter waits for its own. */
static bool can_put_batch(ps_mpqueue_t *q, uint64_t need)
{
    uint64_t quarter = q->ring_bytes / 4 / 8 * 8;
    uint64_t msgs = q->maxsize / 4 ? q->maxsize / 4 : 1;
    uint64_t head = load_acquire(&q->head);
    return has_room(q, load_relaxed(&q->tail), head, need > quarter ? need : quarter, msgs) ||
           load_relaxed(&q->shutdown) != ALIVE;
}

/* ---- put and get, one attempt each ---- */

/* Called under a lock, after a seq_cst publish: if anybody sleeps, bumps the
 * word and returns it for a wake after the unlock. An atomic add: a getter
 * under the other lock may bump not_empty too (see try_get). */
static inline unsigned *bump_if_sleepers(unsigned *word, struct ps__inside *sleepers)
{
    if (inside_count(sleepers) == 0)
        return NULL;
    __atomic_fetch_add(word, 1, __ATOMIC_RELEASE);
    return word;
}

/* Untimed: the locks guard only short copies, never a sleep. A dead holder
 * left nothing to repair (see "Crash safety"). */
static void lock_side(pthread_mutex_t *m)
{
    if (pmutex_trylock(m) == EBUSY)
        pmutex_lock(m);
}

/* put_lock held. 0, ESHUTDOWN or EAGAIN. */
static int put_locked(ps_mpqueue_t *q, const void *data, uint64_t len)
{
    if (load_relaxed(&q->shutdown) != ALIVE)
        return ESHUTDOWN;
    uint64_t tail = load_relaxed(&q->tail), need = record_bytes(len);
    if (!has_room(q, tail, q->put.head_seen, need, 1)) {
        q->put.head_seen = load_acquire(&q->head);      /* the cache may be stale */
        if (!has_room(q, tail, q->put.head_seen, need, 1))
            return EAGAIN;
    }
    uint32_t pos = pos_of(tail), seq = count_of(tail);
    uint64_t record = (uint64_t)seq << 32 | len;
    memcpy(q->ring + pos, &record, RECORD);         /* never wraps: all is 8-aligned */
    ring_write(q, advance(q, pos, RECORD), data, len);
    store_sc(&q->tail, pack(advance(q, pos, need), seq + 1));   /* publish */
    return 0;
}

/* get_lock held. 0, ERANGE (*len set), ESHUTDOWN, EAGAIN or EPROTO. */
static int get_locked(ps_mpqueue_t *q, void *buf, size_t cap, size_t *len)
{
    if (load_acquire(&q->done) & DISCARDED)
        return ESHUTDOWN;
    uint64_t head = load_relaxed(&q->head);
    if (count_of(q->get.tail_seen) == count_of(head)) {
        /* Shutdown before _tail: a shutdown seen here came after every put
         * it stopped, so those messages are visible below. */
        unsigned state = load_acquire(&q->shutdown);
        q->get.tail_seen = load_acquire(&q->tail);
        if (count_of(q->get.tail_seen) == count_of(head))
            return state != ALIVE ? ESHUTDOWN : EAGAIN;
    }
    uint32_t pos = pos_of(head), seq = count_of(head);
    uint64_t record;
    memcpy(&record, q->ring + pos, RECORD);
    uint64_t n = (uint32_t)record;
    if (record >> 32 != seq || record_bytes(n) > used_bytes(q, q->get.tail_seen, head))
        return EPROTO;
    *len = n;
    if (n > cap)
        return ERANGE;
    ring_read(q, advance(q, pos, RECORD), buf, n);
    store_sc(&q->head, pack(advance(q, pos, record_bytes(n)), seq + 1));  /* consume */
    return 0;
}

/* One attempt each; whom to wake is settled under the lock. */
static int try_put(ps_mpqueue_t *q, const void *data, uint64_t len)
{
    unsigned *wake = NULL;
    lock_side(&q->put.lock);
    int err = put_locked(q, data, len);
    if (err == 0)
        wake = bump_if_sleepers(&q->not_empty, &q->getters);
    pthread_mutex_unlock(&q->put.lock);
    if (wake)
        futex_wake(wake, 1, true);
    return err;
}

static int try_get(ps_mpqueue_t *q, void *buf, size_t cap, size_t *len)
{
    unsigned *wake_putters = NULL, *wake_getter = NULL;
    lock_side(&q->get.lock);
    int err = get_locked(q, buf, cap, len);
    if (err == 0)
        wake_putters = bump_if_sleepers(&q->not_full, &q->putters);
    else if (err == ERANGE)     /* the put's one wake-up may have been ours: pass it on */
        wake_getter = bump_if_sleepers(&q->not_empty, &q->getters);
    pthread_mutex_unlock(&q->get.lock);
    if (wake_putters)
        futex_wake(wake_putters, UINT_MAX, true);
    if (wake_getter)
        futex_wake(wake_getter, 1, true);
    return err;
}

static int put_slow(ps_mpqueue_t *q, const void *data, uint64_t len, const deadline_t *d)
{
    int entry = inside_enter(&q->put.inside, true), err;
    uint64_t need = record_bytes(len);
    spin_until(q, can_put_batch, need);
    while ((err = try_put(q, data, len)) == EAGAIN) {
        if (deadline_passed(d)) {
            err = ETIMEDOUT;
            break;
        }
        sleep_unless(q, &q->not_full, &q->putters, can_put, need, d);
    }
    inside_leave(&q->put.inside, entry);
    return err;
}

static int get_slow(ps_mpqueue_t *q, void *buf, size_t cap, size_t *len, const deadline_t *d)
{
    int entry = inside_enter(&q->get.inside, true), err;
    spin_until(q, can_get, 0);
    while ((err = try_get(q, buf, cap, len)) == EAGAIN) {
        if (deadline_passed(d)) {
            err = ETIMEDOUT;
            break;
        }
        sleep_unless(q, &q->not_empty, &q->getters, can_get, 0, d);
    }
    inside_leave(&q->get.inside, entry);
    return err;
}

/* ---- life ---- */

int mpqueue_init_at(void *obj, size_t maxsize, size_t capacity_bytes)
{
    ps_mpqueue_t *q = obj;
    if (!mpqueue_capacity_ok(capacity_bytes))
        return EINVAL;
    int err = pmutex_init(&q->put.lock, true);
    if (!err && (err = pmutex_init(&q->get.lock, true)) != 0)
        pthread_mutex_destroy(&q->put.lock);
    if (err)
        return err;
    q->ring_bytes = capacity_bytes / 8 * 8;
    q->maxsize = maxsize;
    store_release(&q->magic, MPQ_MAGIC);
    return 0;
}

/* Both locks wait out a waker still in put, get or shutdown. */
int mpqueue_destroy_at(void *obj)
{
    ps_mpqueue_t *q = obj;
    if (!queue_ok(q))
        return EINVAL;
    lock_side(&q->put.lock);
    lock_side(&q->get.lock);
    bool busy = inside_busy(&q->put.inside, true) || inside_busy(&q->get.inside, true) ||
                inside_busy(&q->join_inside, true);
    if (!busy)
        store_release(&q->magic, 0);
    pthread_mutex_unlock(&q->get.lock);
    pthread_mutex_unlock(&q->put.lock);
    if (busy)
        return EBUSY;
    pthread_mutex_destroy(&q->get.lock);
    pthread_mutex_destroy(&q->put.lock);
    return 0;
}

ps_mpqueue_t *ps_mpqueue_new(size_t maxsize, size_t capacity_bytes)
{
    if (!mpqueue_capacity_ok(capacity_bytes)) {
        errno = EINVAL;
        return NULL;
    }
    size_t bytes = mpqueue_object_size(capacity_bytes);
    void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return NULL;
    int err = mpqueue_init_at(mem, maxsize, capacity_bytes);
    if (err) {
        munmap(mem, bytes);
        errno = err;
        return NULL;
    }
    ((ps_mpqueue_t *)mem)->map_bytes = bytes;
    return mem;
}

void ps_mpqueue_free(ps_mpqueue_t *q)
{
    if (!q)
        return;
    if (!queue_ok(q)) {
        errno = EINVAL;
        return;
    }
    uint64_t bytes = q->map_bytes;
    if (!bytes)
        return;                     /* a manager's: it lives as long as its segment */
    int err = mpqueue_destroy_at(q);
    if (err)
        errno = err;
    else
        munmap(q, bytes);
}

/* ---- put and get ---- */

int ps_mpqueue_put(ps_mpqueue_t *q, const void *data, size_t len, bool block, double timeout)
{
    if (!queue_ok(q) || (!data && len) || timeout != timeout)
        return EINVAL;
    if (len > q->ring_bytes - RECORD)
        return EMSGSIZE;
    int saved = errno, err = try_put(q, data, len);
    if (err == EAGAIN && block) {
        deadline_t d;
        deadline_from_timeout(timeout, &d);
        err = timeout == 0 ? ETIMEDOUT : put_slow(q, data, len, &d);
    }
    errno = saved;
    return err;
}

int ps_mpqueue_get(ps_mpqueue_t *q, void *buf, size_t cap, size_t *len, bool block,
                   double timeout)
{
    if (!queue_ok(q) || (!buf && cap) || !len || timeout != timeout)
        return EINVAL;
    int saved = errno, err = try_get(q, buf, cap, len);
    if (err == EAGAIN && block) {
        deadline_t d;
        deadline_from_timeout(timeout, &d);
        err = timeout == 0 ? ETIMEDOUT : get_slow(q, buf, cap, len, &d);
    }
    errno = saved;
    return err;
}

int ps_mpqueue_put_nowait(ps_mpqueue_t *q, const void *data, size_t len)
{
    return ps_mpqueue_put(q, data, len, false, 0);
}

int ps_mpqueue_get_nowait(ps_mpqueue_t *q, void *buf, size_t cap, size_t *len)
{
    return ps_mpqueue_get(q, buf, cap, len, false, 0);
}

/* ---- sizes ---- */

size_t ps_mpqueue_qsize(ps_mpqueue_t *q)
{
    if (!queue_ok(q) || (load_acquire(&q->done) & DISCARDED))
        return 0;
    uint64_t head = load_acquire(&q->head);         /* head first: never above tail */
    return (uint32_t)(count_of(load_acquire(&q->tail)) - count_of(head));
}

bool ps_mpqueue_empty(ps_mpqueue_t *q)
{
    return ps_mpqueue_qsize(q) == 0;
}

/* Full by count, or without room for even an empty message. */
bool ps_mpqueue_full(ps_mpqueue_t *q)
{
    if (!queue_ok(q) || (load_acquire(&q->done) & DISCARDED))
        return false;
    uint64_t head = load_acquire(&q->head);
    return !has_room(q, load_acquire(&q->tail), head, RECORD, 1);
}

/* ---- JoinableQueue ---- */

int ps_mpqueue_task_done(ps_mpqueue_t *q)
{
    if (!queue_ok(q))
        return EINVAL;
    unsigned *joiners = done_word(q);
    uint64_t done = load_sc(&q->done), next;
    do {
        uint32_t left = unfinished(q, done);
        if (left == 0)
            return EOVERFLOW;       /* every message put is already done */
        next = settle(done + 4, left - 1);
    } while (!__atomic_compare_exchange_n(&q->done, &done, next, true, __ATOMIC_SEQ_CST,
                                          __ATOMIC_SEQ_CST));
    /* A joiner may have returned and freed q: wake by address only. */
    if (wakes_joiners(done, next)) {
        int saved = errno;
        futex_wake(joiners, UINT_MAX, true);
        errno = saved;
    }
    return 0;
}

int ps_mpqueue_join(ps_mpqueue_t *q)
{
    if (!queue_ok(q))
        return EINVAL;
    int saved = errno, entry = inside_enter(&q->join_inside, true);
    uint64_t done = load_sc(&q->done);
    while (unfinished(q, done)) {
        /* JOINING is set on the very value found unfinished: the task_done that
         * finishes the count sees it, or changed the word first. */
        if (!(done & JOINING) &&
            !__atomic_compare_exchange_n(&q->done, &done, done | JOINING, false,
                                         __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            continue;
        struct timespec at;
        static const deadline_t forever = { .forever = true };
        futex_wait(done_word(q), (unsigned)(done | JOINING), sleep_until(&forever, &at), true);
        done = load_sc(&q->done);
    }
    inside_leave(&q->join_inside, entry);
    errno = saved;
    return 0;
}

/* ---- shutdown ---- */

/* Both locks held, so no get is under way and gets stay as they are: from now
 * on what was queued counts as done (see "Invariants"). Returns whether
 * joiners must be woken. */
static bool discard_all(ps_mpqueue_t *q)
{
    uint64_t done = load_sc(&q->done), next;
    do {
        next = done | DISCARDED;
        next = settle(next, unfinished(q, next));
    } while (!__atomic_compare_exchange_n(&q->done, &done, next, true, __ATOMIC_SEQ_CST,
                                          __ATOMIC_SEQ_CST));
    return wakes_joiners(done, next);
}

/* Every write under both locks; after their release only futex_wakes. */
int ps_mpqueue_shutdown(ps_mpqueue_t *q, bool immediate)
{
    if (!queue_ok(q))
        return EINVAL;
    int saved = errno;
    unsigned *not_empty = &q->not_empty, *not_full = &q->not_full, *joiners = done_word(q);
    lock_side(&q->put.lock);
    lock_side(&q->get.lock);
    store_sc(&q->shutdown, SHUT_DOWN);
    bool wake_joiners = immediate && discard_all(q);
    __atomic_fetch_add(not_empty, 1, __ATOMIC_RELEASE);
    __atomic_fetch_add(not_full, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&q->get.lock);
    pthread_mutex_unlock(&q->put.lock);
    futex_wake(not_empty, UINT_MAX, true);
    futex_wake(not_full, UINT_MAX, true);
    if (wake_joiners)
        futex_wake(joiners, UINT_MAX, true);
    errno = saved;
    return 0;
}

/* ---- for pysync-stat ---- */

bool mpqueue_sound(const void *obj, size_t size)
{
    const ps_mpqueue_t *q = obj;
    if (size < sizeof *q)
        return false;
    uint64_t ring = q->ring_bytes, head = q->head, tail = q->tail;
    return load_acquire(&q->magic) == MPQ_MAGIC && ring >= RECORD &&
           ring <= size - sizeof *q && ring % 8 == 0 && pos_of(head) < ring &&
           pos_of(tail) < ring && pos_of(head) % 8 == 0 && pos_of(tail) % 8 == 0;
}

int mpqueue_peek(const void *obj, size_t obj_size, struct mpqueue_peek *out)
{
    ps_mpqueue_t *q = (ps_mpqueue_t *)obj;
    if (!mpqueue_sound(obj, obj_size))
        return EPROTO;
    uint64_t done = load_acquire(&q->done);
    uint64_t head = load_acquire(&q->head), tail = load_acquire(&q->tail);
    bool discarded = done & DISCARDED;
    *out = (struct mpqueue_peek){
        .maxsize = q->maxsize,
        .capacity = q->ring_bytes,
        .depth = discarded ? 0 : (uint32_t)(count_of(tail) - count_of(head)),
        .bytes_used = discarded ? 0 : used_bytes(q, tail, head),
        .getters = inside_count(&q->getters),
        .putters = inside_count(&q->putters),
        .unfinished = unfinished(q, done),
        .shut_down = load_relaxed(&q->shutdown) != ALIVE,
    };
    return 0;
}
