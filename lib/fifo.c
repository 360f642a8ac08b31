/* SPDX-License-Identifier: MIT */
/* The FIFO Queue: put and get take no lock; a thread sleeps only on a full or
 * empty queue, and a put or get makes a system call only if someone sleeps.
 *
 * Two ticket words
 *   _tail (producers) and _head (consumers), on cache lines of their own, hold
 *   a position << 3 and three flags:
 *     SLEEPING  a thread may sleep on this word (_tail: getters, _head: putters)
 *     STOPPED   _tail: shut down, no more puts; _head: shut down immediately,
 *               no more gets
 *     HAS_NEXT  _head of the segmented kind: _tail is in a later segment
 *   A thread reserves a position with a CAS on its side's word, and only when
 *   the position is known to be usable: a producer when the slot is free, a
 *   consumer when a producer has reserved (and is writing or has written) the
 *   slot. So a reservation always completes (no timeout or shutdown can strand
 *   one); at worst the other side spins briefly for a preempted writer.
 *
 * Bounded (maxsize <= RING_MAX): a ring of exactly maxsize slots, Vyukov's
 *   bounded MPMC queue as crossbeam's ArrayQueue has it: positions are
 *   lap | index (one_lap the power of two above maxsize, so any maxsize works),
 *   each slot has a stamp: == position: free for the producer of that position;
 *   == position + 1: holds its item; the consumer then sets it to position +
 *   one_lap, which frees it for the next lap. Producers read only _tail and the
 *   slots, consumers only _head and the slots; the other side's word is read
 *   only when the slot says full or empty, to tell "full/empty" from "a put or
 *   get is in progress". 1 -> 1, the cache lines that move per item are the
 *   slot's (four slots to a line).
 * Unbounded (maxsize 0, or larger than RING_MAX): crossbeam's SegQueue, a
 *   linked list of segments of SEG_CAP slots, each with a state (0, WRITTEN,
 *   READ), set with plain stores: a producer's after its item, the consumer's
 *   after it took the item. Position SEG_CAP of a segment is a sentinel: the
 *   producer that reserved the last slot links a new segment and moves _tail
 *   past it; the consumer that reserved the last slot moves _head to the next
 *   segment, takes its item, waits until every other slot is READ (their
 *   consumers reserved them earlier and are a few instructions from done) and
 *   recycles the segment: no thread can still touch it, and nothing is ever
 *   copied. Recycled segments are kept for reuse until destroy (the memory of
 *   the longest backlog, as a growing array keeps its size), so a queue that
 *   streams does not malloc. A bounded one checks room against
 *   _head before its reservation CAS: _head only grows, so room seen then is
 *   room when the CAS succeeds.
 *
 * Sleeping without lost wake-ups
 *   A getter that finds the queue empty has read _tail == t (the position it
 *   wants); it sets SLEEPING with a CAS from exactly t, then futex-waits on the
 *   low 32 bits of _tail for the value it wrote. The producer that reserves t
 *   next does so with a CAS on the same word, so it sees SLEEPING (and clears
 *   it); after publishing the item it wakes every sleeper on the word. Any
 *   reservation changes the low 32 bits, so a getter not yet asleep returns at
 *   once. Putters mirror this on _head. One word carries both the position and
 *   the flag, so no fence is needed between "publish" and "anyone asleep?".
 *   Woken sleepers retry; the losers set the flag again and sleep. Waking all
 *   costs a herd when many sleep, but only on a queue that ran empty (full),
 *   and a caller polls a few microseconds before it sleeps at all.
 *
 * The waker's last access (PITFALLS 13)
 *   The publishing store (the slot's stamp or WRITTEN, the consumer's stamp
 *   that frees a slot) is what lets the other side return and maybe destroy
 *   the queue. The decision to wake was taken by the reservation CAS before
 *   that, so afterwards only futex_wake on an address follows, harmless on
 *   freed memory. The exception is a bounded segmented queue, whose consumer
 *   makes room with its CAS and then still takes its item: see try_get.
 *
 * Shutdown (with queue.c's shutdown lock held): fetch_or(_tail, STOPPED) stops
 *   puts at a fixed position; immediate also sets STOPPED on _head, so other
 *   consumers stop reserving, and removes what is left itself (waiting for the
 *   puts and gets that reserved before). Positions reserved before the flag
 *   complete normally. Setting STOPPED changes the low 32 bits: sleepers not
 *   yet asleep return, and shutdown wakes the rest. A plain shutdown also
 *   clears SLEEPING on _head, for putters that decided to sleep on a full
 *   queue before they could see STOPPED (see sleep_on).
 *
 * Counts: items ever put is a function of _tail's position, so qsize, task_done
 *   and join need no counter of their own on the fast path. Positions are
 *   size_t and never wrap (2^61 of them): 64 bits are required.
 *
 * Polling: a putter that found the queue full polls for room for a quarter of
 *   maxsize, not for one slot, so that both sides stream instead of passing
 *   one slot's cache line to and fro per item (a sleeping putter wakes for
 *   one slot, as Python's does). A getter polls for one item: waiting for
 *   more would delay the item there is.
 *
 * Not atomic: shutdown sets STOPPED on _tail, then on _head, so during an
 *   immediate shutdown() call a get may still take an item that a put made
 *   before it. Anything after the call returns sees the shut-down queue.
 */
#include "fifo.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "futex.h"

_Static_assert(sizeof(size_t) >= 8, "lib/fifo.c: positions need a 64-bit size_t");

#define RING_MAX  (1u << 16)    /* bigger bounded queues are segmented */
#define SEG_LAP   1024          /* positions per segment, the sentinel included */
#define SEG_CAP   (SEG_LAP - 1)

#define SLEEPING  ((size_t)1)
#define STOPPED   ((size_t)2)
#define HAS_NEXT  ((size_t)4)
#define FLAG_BITS 3

/* A caller that finds the queue full or empty polls a little before it
 * sleeps. Short: on a loaded machine the peer often shares our CPU, and then
 * every pause only delays it (measured: 7 pauses and 4 yields move 2-3x the
 * items/s of 1023 pauses and 16 yields, 1->1 and 4x4, on 2 busy vCPUs). */
static const struct spin_policy poll_spin = {
    .spins = 15, .min_gap = 1, .max_gap = 8,    /* polls 1, 2, 4, 8 pauses apart */
    .yields = 8,                                /* then with a sched_yield between */
};

#define load_relaxed(p)     __atomic_load_n((p), __ATOMIC_RELAXED)
#define load_acquire(p)     __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define load_sc(p)          __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
/* The reservation: on failure *expected holds the word's current value. */
#define cas(p, expected, v)                                                   \
    __atomic_compare_exchange_n((p), (expected), (v), true, __ATOMIC_SEQ_CST,  \
                                __ATOMIC_RELAXED)

static inline size_t pos_of(size_t word) { return word >> FLAG_BITS; }
static inline size_t word_at(size_t pos) { return pos << FLAG_BITS; }

/* ---- waiting ---- */

/* For a thread that waits for another thread in the middle of its put or get
 * (a few instructions, unless it was preempted: then yield to it). */
typedef struct { unsigned step; } backoff_t;

/* After a lost reservation race: a short pause, so that the winners go on. */
static void spin(backoff_t *b)
{
    for (unsigned i = 0; i < 1u << (b->step < 6 ? b->step : 6); i++)
        cpu_relax();
    b->step++;
}

static void snooze(backoff_t *b)
{
    if (b->step < 7) {
        for (unsigned i = 0; i < 1u << b->step; i++)
            cpu_relax();
        b->step++;
    } else {
        sched_yield();
    }
}

/* futex_wait takes 32 bits: the low half of a ticket word, which every
 * reservation and every flag change alters. */
static unsigned *low_half(size_t *word)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return (unsigned *)word + (sizeof *word / sizeof(unsigned) - 1);
#else
    return (unsigned *)word;
#endif
}

static void wake_all(size_t *word)
{
    futex_wake(low_half(word), UINT_MAX, false);
}

/* Sleeps on *word (_tail or _head), which read `seen` when the caller found
 * the queue full or empty, unless the word has changed since (then the caller
 * retries). A putter may have read _tail before a plain shutdown stopped it
 * and sleeps on _head, which that shutdown does not stop: hence the check of
 * _tail after the flag is up, against shutdown's stop of _tail followed by
 * its clearing SLEEPING on _head (seq_cst both sides): either the check sees
 * STOPPED, or the clearing changes the word the sleeper waits on. */
static void sleep_on(ps_queue_t *q, size_t *word, size_t seen, unsigned *sleepers,
                     const deadline_t *d)
{
    __atomic_fetch_add(sleepers, 1, __ATOMIC_SEQ_CST);
    if (((seen & SLEEPING) || cas(word, &seen, seen | SLEEPING)) &&
        !(load_sc(&q->_tail) & STOPPED))
        futex_wait(low_half(word), (unsigned)(seen | SLEEPING), deadline_ts(d), false);
    __atomic_fetch_sub(sleepers, 1, __ATOMIC_RELAXED);
}

/* ---- the ring (KIND_RING): _slots points to _cap slots ---- */

struct ring_slot {
    size_t stamp;
    void *item;
};

static inline struct ring_slot *ring_slots(ps_queue_t *q)
{
    return (struct ring_slot *)(void *)q->_slots;
}

/* The power of two above cap: positions are lap | index, index < cap. */
static inline size_t one_lap(size_t cap)
{
    return (size_t)2 << (sizeof(unsigned long long) * CHAR_BIT - 1 -
                         (unsigned)__builtin_clzll((unsigned long long)cap));
}

static inline size_t ring_next(size_t pos, size_t cap, size_t lap)
{
    size_t index = pos & (lap - 1);
    return index + 1 < cap ? pos + 1 : (pos & ~(lap - 1)) + lap;
}

static size_t ring_items(const ps_queue_t *q, size_t pos)
{
    size_t lap = one_lap(q->_cap);
    return pos / lap * q->_cap + (pos & (lap - 1));
}

static int ring_init(ps_queue_t *q, size_t cap)
{
    size_t bytes = (cap * sizeof(struct ring_slot) + 63) / 64 * 64;
    struct ring_slot *slots = aligned_alloc(64, bytes);
    if (!slots)
        return ENOMEM;
    for (size_t i = 0; i < cap; i++)
        slots[i].stamp = i;
    q->_slots = (void **)(void *)slots;
    q->_cap = cap;
    return 0;
}

/* *seen: on EAGAIN, the _head word that proved the ring full. */
static int ring_put(ps_queue_t *q, void *item, size_t *seen)
{
    struct ring_slot *slots = ring_slots(q);
    size_t cap = q->_cap, lap = one_lap(cap);
    size_t tail = load_relaxed(&q->_tail);
    backoff_t b = { 0 };
    for (;;) {
        if (tail & STOPPED)
            return ESHUTDOWN;
        size_t pos = pos_of(tail);
        struct ring_slot *s = &slots[pos & (lap - 1)];
        size_t stamp = load_acquire(&s->stamp);
        if (stamp == pos) {
            if (cas(&q->_tail, &tail, word_at(ring_next(pos, cap, lap)))) {
                s->item = item;
                store_release(&s->stamp, pos + 1);
                if (tail & SLEEPING)
                    wake_all(&q->_tail);
                return 0;
            }
            spin(&b);                           /* tail is fresh */
            continue;
        }
        if (stamp + lap == pos + 1) {           /* the slot holds last lap's item */
            size_t head = load_sc(&q->_head);
            if (pos_of(head) + lap == pos) {
                *seen = head;
                return EAGAIN;
            }
        }
        snooze(&b);                             /* a get in progress, or tail moved */
        tail = load_relaxed(&q->_tail);
    }
}

/* *seen: on EAGAIN, the _tail word that proved the ring empty. force: the
 * immediate shutdown's drain, which gets past STOPPED on _head. */
static int ring_get(ps_queue_t *q, void **item, size_t *seen, bool force)
{
    struct ring_slot *slots = ring_slots(q);
    size_t cap = q->_cap, lap = one_lap(cap);
    size_t head = load_relaxed(&q->_head);
    backoff_t b = { 0 };
    for (;;) {
        if ((head & STOPPED) && !force)
            return ESHUTDOWN;
        size_t pos = pos_of(head);
        struct ring_slot *s = &slots[pos & (lap - 1)];
        size_t stamp = load_acquire(&s->stamp);
        if (stamp == pos + 1) {
            if (cas(&q->_head, &head, word_at(ring_next(pos, cap, lap)) | (head & STOPPED))) {
                *item = s->item;
                store_release(&s->stamp, pos + lap);
                if (head & SLEEPING)
                    wake_all(&q->_head);
                return 0;
            }
            spin(&b);
            continue;
        }
        if (stamp == pos) {                     /* not written in this lap */
            size_t tail = load_sc(&q->_tail);
            if (pos_of(tail) == pos) {
                *seen = tail;
                return tail & STOPPED ? ESHUTDOWN : EAGAIN;
            }
        }
        snooze(&b);                             /* a put in progress, or head moved */
        head = load_relaxed(&q->_head);
    }
}

/* ---- the segments (KIND_SEGMENTS) ----
 * The consumers' segment pointer lives in _head_segment (on the line of the get
 * lock, next to nothing hot), the producers' in _tail_segment. */

enum { WRITTEN = 1, READ = 2 };

struct seg_slot {
    void *item;
    unsigned state;
};

struct segment {
    struct segment *next;
    struct seg_slot slot[SEG_CAP];
};

static inline size_t *head_segment(ps_queue_t *q) { return &q->_head_segment; }
static inline size_t *tail_segment(ps_queue_t *q) { return &q->_tail_segment; }
/* Zeroed segments for reuse, a stack linked through next. Only the producer
 * that reserved a segment's last slot pops (one at a time: the next boundary
 * is reached only after it linked the new segment), so the stack has no ABA
 * problem; consumers push. It lives in _heap: written once per segment. */
static inline struct segment **free_segments(ps_queue_t *q)
{
    return (struct segment **)(void *)&q->_heap;
}

/* Nobody can touch seg any more. Zeroed here, off the producers' path. */
static void recycle_segment(ps_queue_t *q, struct segment *seg)
{
    memset(seg, 0, sizeof *seg);
    struct segment *top = load_relaxed(free_segments(q));
    do
        seg->next = top;
    while (!__atomic_compare_exchange_n(free_segments(q), &top, seg, true, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED));
}

/* Before reserving a last slot: the pop after it must find a segment, since a
 * reservation cannot fail. ENOMEM leaves the queue as it was. */
static int ensure_free_segment(ps_queue_t *q)
{
    if (load_acquire(free_segments(q)))
        return 0;
    struct segment *seg = calloc(1, sizeof *seg);
    if (!seg)
        return ENOMEM;
    recycle_segment(q, seg);
    return 0;
}

static struct segment *pop_free_segment(ps_queue_t *q)
{
    struct segment *top = load_acquire(free_segments(q));
    while (!__atomic_compare_exchange_n(free_segments(q), &top, top->next, true,
                                        __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE))
        ;
    top->next = NULL;
    return top;
}

static inline struct segment *load_segment(size_t *word)
{
    return (struct segment *)(uintptr_t)load_acquire(word);
}

static inline void store_segment(size_t *word, struct segment *seg)
{
    store_release(word, (size_t)(uintptr_t)seg);
}

static size_t seg_items(size_t pos)
{
    return pos / SEG_LAP * SEG_CAP + pos % SEG_LAP;
}

static int seg_init(ps_queue_t *q)
{
    *free_segments(q) = NULL;
    struct segment *seg = calloc(1, sizeof *seg);
    if (!seg)
        return ENOMEM;
    store_segment(head_segment(q), seg);
    store_segment(tail_segment(q), seg);
    return 0;
}

/* The producer that reserved a segment's last slot links the next one and
 * moves _tail past the sentinel, keeping flags set meanwhile. */
static void link_segment(ps_queue_t *q, struct segment *seg)
{
    struct segment *next = pop_free_segment(q);
    store_segment(tail_segment(q), next);
    __atomic_fetch_add(&q->_tail, word_at(1), __ATOMIC_RELEASE);
    store_release(&seg->next, next);
}

static int seg_put(ps_queue_t *q, void *item, size_t *seen)
{
    size_t tail = load_acquire(&q->_tail);
    struct segment *seg = load_segment(tail_segment(q));
    backoff_t b = { 0 };
    for (;;) {
        size_t pos = pos_of(tail), offset = pos % SEG_LAP;
        if (tail & STOPPED)
            return ESHUTDOWN;
        if (offset == SEG_CAP) {            /* another producer links a segment */
            snooze(&b);
            tail = load_acquire(&q->_tail);
            seg = load_segment(tail_segment(q));
            continue;
        }
        if (q->_maxsize) {
            size_t head = load_sc(&q->_head);
            if (seg_items(pos) - seg_items(pos_of(head)) >= q->_maxsize) {
                *seen = head;
                return EAGAIN;
            }
        }
        if (offset + 1 == SEG_CAP && ensure_free_segment(q) != 0)
            return ENOMEM;
        if (cas(&q->_tail, &tail, word_at(pos + 1))) {
            if (offset + 1 == SEG_CAP)
                link_segment(q, seg);
            struct seg_slot *s = &seg->slot[offset];
            s->item = item;
            store_release(&s->state, WRITTEN);
            if (tail & SLEEPING)
                wake_all(&q->_tail);
            return 0;
        }
        spin(&b);
        seg = load_segment(tail_segment(q));
    }
}

static struct segment *wait_next(struct segment *seg)
{
    backoff_t b = { 0 };
    struct segment *next;
    while (!(next = load_acquire(&seg->next)))
        snooze(&b);
    return next;
}

/* The consumer that reserved a segment's last slot: _head moves to the next
 * segment, keeping the flags others set meanwhile (only flags can change while
 * _head is on the sentinel). */
static void advance_head(ps_queue_t *q, struct segment *seg)
{
    struct segment *next = wait_next(seg);
    size_t has_next = load_acquire(&next->next) ? HAS_NEXT : 0;
    store_segment(head_segment(q), next);
    size_t head = load_relaxed(&q->_head);
    while (!cas(&q->_head, &head,
                word_at(pos_of(head) + 1) | (head & (SLEEPING | STOPPED)) | has_next))
        ;
}

/* The consumer of a segment's last slot: the consumers of the others reserved
 * theirs before, and only have to finish taking their items. */
static void wait_all_read(struct segment *seg)
{
    for (size_t i = 0; i < SEG_CAP - 1; i++) {
        backoff_t b = { 0 };
        while (load_acquire(&seg->slot[i].state) != READ)
            snooze(&b);
    }
}

static int seg_get(ps_queue_t *q, void **item, size_t *seen, bool force)
{
    size_t head = load_acquire(&q->_head);
    struct segment *seg = load_segment(head_segment(q));
    backoff_t b = { 0 };
    for (;;) {
        size_t pos = pos_of(head), offset = pos % SEG_LAP;
        if ((head & STOPPED) && !force)
            return ESHUTDOWN;
        if (offset == SEG_CAP) {            /* another consumer moves to the next */
            snooze(&b);
            head = load_acquire(&q->_head);
            seg = load_segment(head_segment(q));
            continue;
        }
        size_t next = word_at(pos + 1) | (head & (STOPPED | HAS_NEXT));
        if (!(head & HAS_NEXT)) {
            size_t tail = load_sc(&q->_tail);
            if (pos_of(tail) == pos) {
                *seen = tail;
                return tail & STOPPED ? ESHUTDOWN : EAGAIN;
            }
            if (pos / SEG_LAP != pos_of(tail) / SEG_LAP)
                next |= HAS_NEXT;
        }
        if (cas(&q->_head, &head, next)) {
            if (offset + 1 == SEG_CAP)
                advance_head(q, seg);
            struct seg_slot *s = &seg->slot[offset];
            backoff_t w = { 0 };
            while (!(load_acquire(&s->state) & WRITTEN))
                snooze(&w);                 /* its producer is writing it */
            *item = s->item;
            if (offset + 1 == SEG_CAP) {
                wait_all_read(seg);
                recycle_segment(q, seg);
            } else {
                store_release(&s->state, READ);
            }
            if (head & SLEEPING)
                wake_all(&q->_head);
            return 0;
        }
        spin(&b);
        seg = load_segment(head_segment(q));
    }
}

static void seg_free(ps_queue_t *q)
{
    struct segment *lists[2] = { load_segment(head_segment(q)), *free_segments(q) };
    for (int i = 0; i < 2; i++) {
        for (struct segment *seg = lists[i], *next; seg; seg = next) {
            next = seg->next;
            free(seg);
        }
    }
    *free_segments(q) = NULL;
}

/* ---- the interface ---- */

int fifo_init(ps_queue_t *q, size_t maxsize)
{
    int saved = errno;      /* malloc may set it; int-returning calls keep it */
    bool ring = maxsize > 0 && maxsize <= RING_MAX;
    int err = ring ? ring_init(q, maxsize) : seg_init(q);
    if (err == 0)
        q->_kind = ring ? KIND_RING : KIND_SEGMENTS;
    errno = saved;
    return err;
}

void fifo_free(ps_queue_t *q)
{
    if (q->_kind == KIND_RING)
        free(q->_slots);
    else
        seg_free(q);
    q->_slots = NULL;
}

static int try_put(ps_queue_t *q, void *item, size_t *seen)
{
    if (q->_kind == KIND_RING)
        return ring_put(q, item, seen);
    int saved = errno;      /* calloc of the next segment */
    int err = seg_put(q, item, seen);
    errno = saved;
    return err;
}

/* A bounded segmented queue makes room with the consumer's reservation CAS,
 * before the consumer has taken its item: a putter it releases might return
 * and destroy the queue at once. So its gets count themselves in _inside,
 * which makes destroy EBUSY until they are done (two more atomic operations
 * per get, for maxsize > RING_MAX only). */
static int try_get(ps_queue_t *q, void **item, size_t *seen, bool force)
{
    if (q->_kind == KIND_RING)
        return ring_get(q, item, seen, force);
    if (!q->_maxsize)
        return seg_get(q, item, seen, force);
    __atomic_fetch_add(&q->_inside, 1, __ATOMIC_RELAXED);
    int err = seg_get(q, item, seen, force);
    __atomic_fetch_sub(&q->_inside, 1, __ATOMIC_RELEASE);
    return err;
}

int fifo_put_nowait(ps_queue_t *q, void *item)
{
    size_t seen;
    return try_put(q, item, &seen);
}

int fifo_get_nowait(ps_queue_t *q, void **item)
{
    size_t seen;
    return try_get(q, item, &seen, false);
}

static size_t items_at(const ps_queue_t *q, size_t pos)
{
    return q->_kind == KIND_RING ? ring_items(q, pos) : seg_items(pos);
}

/* Items in the queue, reservations included; head first: never above tail. */
static size_t size_now(ps_queue_t *q)
{
    size_t head = pos_of(load_sc(&q->_head));
    return items_at(q, pos_of(load_sc(&q->_tail))) - items_at(q, head);
}

static bool stopped(ps_queue_t *q)
{
    return (load_relaxed(&q->_tail) & STOPPED) != 0;
}

/* What a polling putter waits for: room for a batch, not for one item. Going
 * back to a full queue after every get would move a slot's cache line to and
 * fro once per item; a quarter of the queue lets both sides stream for a
 * while. A sleeping putter wakes for one slot, as Python's does. */
static bool room_for_batch(void *arg)
{
    ps_queue_t *q = arg;
    size_t want = q->_maxsize / 4 ? q->_maxsize / 4 : 1;
    return size_now(q) + want <= q->_maxsize || stopped(q);
}

static bool has_item(void *arg)
{
    ps_queue_t *q = arg;
    return size_now(q) > 0 || stopped(q);
}

/* A short poll before sleeping: with the peer on another CPU, room or an item
 * usually appears within a microsecond, and a futex sleep and wake cost
 * several. The polls back off so as not to keep stealing the line the peer
 * writes; the yields then let a peer that shares our CPU run. */
static void poll_until(ps_queue_t *q, bool (*ready)(void *))
{
    spin_until_ready(&poll_spin, ready, q);
}

int fifo_put_wait(ps_queue_t *q, void *item, const deadline_t *d)
{
    if (!deadline_passed(d))
        poll_until(q, room_for_batch);
    for (;;) {
        size_t seen;
        int err = try_put(q, item, &seen);
        if (err != EAGAIN)
            return err;
        if (deadline_passed(d))
            return ETIMEDOUT;
        sleep_on(q, &q->_head, seen, &q->_putters, d);
    }
}

int fifo_get_wait(ps_queue_t *q, void **item, const deadline_t *d)
{
    if (!deadline_passed(d))
        poll_until(q, has_item);
    for (;;) {
        size_t seen;
        int err = try_get(q, item, &seen, false);
        if (err != EAGAIN)
            return err;
        if (deadline_passed(d))
            return ETIMEDOUT;
        sleep_on(q, &q->_tail, seen, &q->_getters, d);
    }
}

size_t fifo_items_put(ps_queue_t *q)
{
    return items_at(q, pos_of(load_acquire(&q->_tail)));
}

size_t fifo_qsize(ps_queue_t *q)
{
    size_t size = size_now(q);
    return q->_maxsize && size > q->_maxsize ? q->_maxsize : size;
}

size_t fifo_shutdown(ps_queue_t *q, bool immediate)
{
    __atomic_fetch_or(&q->_tail, STOPPED, __ATOMIC_SEQ_CST);
    __atomic_fetch_and(&q->_head, ~SLEEPING, __ATOMIC_SEQ_CST);    /* see sleep_on */
    if (!immediate)
        return 0;
    __atomic_fetch_or(&q->_head, STOPPED, __ATOMIC_SEQ_CST);
    size_t removed = 0, seen;
    void *item;
    while (try_get(q, &item, &seen, true) == 0)
        removed++;
    return removed;
}

unsigned *fifo_getters_word(ps_queue_t *q) { return low_half(&q->_tail); }
unsigned *fifo_putters_word(ps_queue_t *q) { return low_half(&q->_head); }
