/* SPDX-License-Identifier: MIT */
/* Queue, LifoQueue and PriorityQueue of void * items: Python's queue module.
 *
 * The FIFO Queue takes no lock on its fast path: lib/fifo.c (its opening
 * comment has the design). This file has the public functions, task_done and
 * join for all kinds, and the locked LifoQueue and PriorityQueue, whose put
 * and get work on the same end of one array anyway.
 *
 * Invariants
 *   Counters that only grow: items ever put (LIFO/priority: _tail; FIFO: a
 *   function of its ticket word, fifo_items_put), items ever taken (_head for
 *   LIFO/priority), and the count in _done (task_done calls plus items an
 *   immediate shutdown threw away). join waits for the done count to reach
 *   the items put, and done count <= items put always. _done is
 *   (count << 1) | JOINING: the low bit says a joiner may be asleep.
 *   LIFO and priority: _put_lock guards everything. The priority queue is a
 *   binary heap of (item, sequence) entries; the sequence is _tail at put time
 *   and breaks ties, which makes equal items leave in insertion order.
 *
 * Who wakes whom (LIFO and priority; the FIFO's is in lib/fifo.c)
 *   A caller that cannot proceed first polls for a few microseconds (the peer is
 *   usually about to make room or an item), then sleeps on a futex word: getters
 *   on _not_empty, putters on _not_full, counting themselves in _getters and
 *   _putters (the FIFO counts its sleepers there too); joiners on the low 32
 *   bits of _done, after setting JOINING. A put that sees _getters > 0 bumps
 *   _not_empty and wakes one getter; a get wakes one putter the same way; the
 *   task_done (or immediate shutdown) that brings the done count up to the items
 *   put clears JOINING in the same CAS and, if it was set, wakes all joiners;
 *   shutdown wakes everybody. When nobody sleeps nobody makes a system call.
 *
 *   No lost wake-up: the sleeper reads the futex word, counts itself, then
 *   re-checks its condition; the waker publishes its change, then reads the
 *   count. The count and the counters are updated with seq_cst operations, so
 *   either the sleeper sees the change or the waker sees the sleeper, and then
 *   its bump makes futex_wait return at once or wakes it. A joiner needs no
 *   count: it sets JOINING with a CAS on the very value it found unfinished, so
 *   a task_done either changed the word first (the CAS fails and the joiner
 *   re-checks) or sees the flag, and any change to the word makes a futex_wait
 *   not yet asleep return at once. A woken sleeper always retries before it
 *   looks at its deadline, so a wake-up is never spent on a thread that then
 *   gives up with an item waiting.
 *
 * The waker's last access (PITFALLS 13, glibc bug 12674)
 *   "Wait, then destroy or free" is an everyday pattern: join(q) then free(q),
 *   or a getter that destroys q once its item arrived. So once a waiter can
 *   observe the change, the waker touches nothing of the queue except
 *     (a) releasing an internal lock, which destroy waits for, and
 *     (b) a final FUTEX_WAKE on an address, harmless on freed or unmapped
 *         memory: every futex sleeper re-checks its condition.
 *   Hence the locked put and get decide whether to wake and bump the futex word
 *   while they still hold their lock, and only call futex_wake after releasing
 *   it; task_done's CAS is the store that lets a joiner return, which is why the
 *   joiners' flag lives in _done itself; shutdown writes everything under both
 *   locks (the FIFO's _get_lock is its shutdown lock). destroy takes both locks
 *   (held only for short, non-blocking critical sections), so it waits out a
 *   waker still inside one, and it is EBUSY while a blocking caller is counted
 *   in _inside, whose leave() is that caller's last access: the waiting part of
 *   put, get and join, polling and sleeping included, runs between enter() and
 *   leave(). Computing an address is not an access.
 */
#include <pysync/queue.h>

#include "fifo.h"
#include "futex.h"
#include "timing.h"
#include "wordlock.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { ALIVE, SHUT_DOWN, SHUT_DOWN_NOW };

struct ps_queue_entry {
    void *item;
    unsigned long long seq;     /* insertion order, the tie-breaker */
};

#define FIRST_CAP    64         /* slots of the first allocation */
#define WAIT_SPINS   1000       /* pauses polling before yielding (tens of us) */
#define WAIT_YIELDS  16         /* then sched_yield polls before sleeping */
#define MAX_BACKOFF  64         /* pauses between two polls, at most */
#define BATCH_DIV    4          /* a spinning putter waits for maxsize/4 free slots */

#define load_relaxed(p)     __atomic_load_n((p), __ATOMIC_RELAXED)
#define load_acquire(p)     __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define load_sc(p)          __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define store_sc(p, v)      __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)

/* ---- waking and sleeping ---- */

/* Called with the only lock that writes *word held, right after publishing with a
 * seq_cst store a change that may let a sleeper of *word proceed. If anybody
 * sleeps, bumps the word (a plain store: every writer holds this lock) and
 * returns it for wake_one() once the lock is released; else returns NULL. */
static inline unsigned *bump_if_sleepers(unsigned *word, unsigned *sleepers)
{
    if (load_sc(sleepers) == 0)
        return NULL;
    store_release(word, load_relaxed(word) + 1);
    return word;
}

/* After releasing the lock: a futex_wake on an address, the waker's last access. */
static inline void wake_one(unsigned *word)
{
    if (word)
        futex_wake(word, 1, false);
}

/* Shutdown's bump, with both locks held; the wake follows their release. */
static void bump(unsigned *word)
{
    store_release(word, load_relaxed(word) + 1);
}

/* Sleeps once on *word, counted in *sleepers, unless ready(q) already holds.
 * Returns on a wake-up, a signal, a spurious wake or the deadline: the caller
 * re-checks. */
static void sleep_unless(ps_queue_t *q, unsigned *word, unsigned *sleepers,
                         bool (*ready)(void *), const deadline_t *d)
{
    unsigned seen = load_acquire(word);
    __atomic_fetch_add(sleepers, 1, __ATOMIC_SEQ_CST);    /* before the re-check */
    if (!ready(q))
        futex_wait(word, seen, deadline_ts(d), false);
    __atomic_fetch_sub(sleepers, 1, __ATOMIC_RELAXED);
}

/* A short poll before sleeping: with the peer running on another CPU, room or
 * an item usually appears within a microsecond, and a futex sleep and wake cost
 * several. The polls back off so as not to keep stealing the cache line the peer
 * writes; the yields then let a peer that shares our CPU run (more threads than
 * CPUs), where pausing would only burn the time it needs. */
static void spin_until(ps_queue_t *q, bool (*ready)(void *))
{
    static const struct spin_policy spin = { WAIT_SPINS, 1, MAX_BACKOFF, WAIT_YIELDS };
    spin_until_ready(&spin, ready, q);
}

static bool can_get(void *arg)
{
    ps_queue_t *q = arg;
    return load_sc(&q->_tail) != load_relaxed(&q->_head) ||
           load_relaxed(&q->_shutdown) != ALIVE;
}

static bool can_put(void *arg)
{
    ps_queue_t *q = arg;
    size_t head = load_sc(&q->_head);           /* head first: never above tail */
    return load_relaxed(&q->_tail) - head < q->_maxsize ||
           load_relaxed(&q->_shutdown) != ALIVE;
}

/* What a spinning putter waits for: room for a batch, not for one item, so
 * that putters and getters do not hand the lock to and fro once per item. A
 * putter that sleeps waits for one slot (can_put), as Python's does. */
static bool can_put_batch(void *arg)
{
    ps_queue_t *q = arg;
    size_t head = load_acquire(&q->_head);
    size_t want = q->_maxsize / BATCH_DIV ? q->_maxsize / BATCH_DIV : 1;
    return load_relaxed(&q->_tail) - head + want <= q->_maxsize ||
           load_relaxed(&q->_shutdown) != ALIVE;
}

/* ---- the done word: (count << 1) | JOINING ---- */

#define JOINING    ((size_t)1)      /* a joiner may sleep on the word */
#define COUNT_MASK (SIZE_MAX >> 1)  /* the count has one bit less than _tail */

/* Whether the done word counts every item up to tail (modulo the count's width). */
static inline bool count_reaches(size_t done, size_t tail)
{
    return done >> 1 == (tail & COUNT_MASK);
}

/* The done word after n more finished tasks. The change that completes the
 * count also clears JOINING, so the same CAS lets the joiners return and tells
 * the caller (wakes_joiners) to wake them. */
static inline size_t add_done(size_t done, size_t n, size_t tail)
{
    size_t next = done + (n << 1);
    return count_reaches(next, tail) ? next & ~JOINING : next;
}

static inline bool wakes_joiners(size_t before, size_t after)
{
    return (before & JOINING) && !(after & JOINING);
}

/* Joiners sleep on the low 32 bits of _done: any change of the count changes
 * them (unless exactly 2^31 task_dones land between a joiner's load and its
 * sleep). futex_wait expects (unsigned)value there. */
static inline unsigned *done_word(ps_queue_t *q)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return (unsigned *)&q->_done + (sizeof q->_done / sizeof(unsigned) - 1);
#else
    return (unsigned *)&q->_done;
#endif
}

/* ---- storage ---- */

static size_t next_capacity(const ps_queue_t *q, size_t elem_size)
{
    if (q->_cap == 0)
        return FIRST_CAP;
    return q->_cap <= SIZE_MAX / 2 / elem_size ? q->_cap * 2 : 0;
}

/* LIFO stack or heap: the only lock is held, a plain realloc will do. */
static int grow(ps_queue_t *q)
{
    int saved = errno;      /* realloc may set it; int-returning calls keep it */
    bool heap = q->_kind == KIND_PRIORITY;
    size_t elem = heap ? sizeof(struct ps_queue_entry) : sizeof(void *);
    size_t cap = next_capacity(q, elem);
    void *p = cap ? realloc(heap ? (void *)q->_heap : (void *)q->_slots, cap * elem) : NULL;
    errno = saved;
    if (!p)
        return ENOMEM;
    if (heap)
        q->_heap = p;
    else
        q->_slots = p;
    q->_cap = cap;
    return 0;
}

/* ---- the binary heap, ordered by (cmp, seq) ---- */

static inline bool entry_before(const ps_queue_t *q, const struct ps_queue_entry *a,
                                const struct ps_queue_entry *b)
{
    int c = q->_cmp(a->item, b->item);
    return c < 0 || (c == 0 && a->seq < b->seq);
}

/* Moves the hole at i up until e fits there, then stores e. */
static void heap_sift_up(ps_queue_t *q, size_t i, struct ps_queue_entry e)
{
    struct ps_queue_entry *h = q->_heap;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!entry_before(q, &e, &h[parent]))
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = e;
}

/* Removes the root of a heap of n entries. Floyd's way: walk the hole down to a
 * leaf along the smaller children, then sift the last entry up from there. The
 * last entry usually belongs near the bottom, so this costs about half the
 * comparisons of sifting it down from the root. */
static void *heap_pop(ps_queue_t *q, size_t n)
{
    struct ps_queue_entry *h = q->_heap;
    void *top = h[0].item;
    struct ps_queue_entry last = h[--n];
    size_t i = 0, child;
    while ((child = 2 * i + 1) < n) {
        if (child + 1 < n && entry_before(q, &h[child + 1], &h[child]))
            child++;
        h[i] = h[child];
        i = child;
    }
    heap_sift_up(q, i, last);
    return top;
}

/* ---- LIFO and priority: tail/head are the counters of the item to store/take ---- */

static void store_item(ps_queue_t *q, size_t tail, void *item)
{
    size_t size = tail - load_relaxed(&q->_head);   /* exact: the only lock is ours */
    if (q->_kind == KIND_LIFO) {
        q->_slots[size] = item;
    } else {
        struct ps_queue_entry e = { item, tail };
        heap_sift_up(q, size, e);
    }
}

static void *take_item(ps_queue_t *q, size_t head)
{
    size_t tail = load_relaxed(&q->_tail);
    if (q->_kind == KIND_LIFO)
        return q->_slots[tail - head - 1];
    return heap_pop(q, tail - head);
}

/* ---- put and get, one attempt each ---- */

/* Put lock held. 0, ESHUTDOWN, EAGAIN (full) or ENOMEM. */
static int put_locked(ps_queue_t *q, void *item)
{
    if (load_relaxed(&q->_shutdown) != ALIVE)
        return ESHUTDOWN;
    size_t tail = load_relaxed(&q->_tail);
    size_t size = tail - load_relaxed(&q->_head);   /* exact: the only lock is ours */
    if (q->_maxsize && size >= q->_maxsize)
        return EAGAIN;
    if (size >= q->_cap) {
        int err = grow(q);
        if (err)
            return err;
    }
    store_item(q, tail, item);
    store_sc(&q->_tail, tail + 1);     /* seq_cst: see "No lost wake-up" */
    return 0;
}

/* Get lock held. 0, ESHUTDOWN (shut down and empty) or EAGAIN (empty). */
static int get_locked(ps_queue_t *q, void **item)
{
    size_t head = load_relaxed(&q->_head);
    if (head == load_relaxed(&q->_tail))
        return load_relaxed(&q->_shutdown) != ALIVE ? ESHUTDOWN : EAGAIN;
    *item = take_item(q, head);
    if (q->_maxsize)
        store_sc(&q->_head, head + 1);      /* a putter may sleep on it */
    else
        store_release(&q->_head, head + 1);
    return 0;
}

/* One attempt. Whom to wake is settled under the lock; after its release only
 * the futex_wake remains (see "The waker's last access"). */
static int try_put(ps_queue_t *q, void *item)
{
    unsigned *wake = NULL;
    wordlock_lock(&q->_put_lock);
    int err = put_locked(q, item);
    if (err == 0)
        wake = bump_if_sleepers(&q->_not_empty, &q->_getters);
    wordlock_release(&q->_put_lock);
    wake_one(wake);
    return err;
}

static int try_get(ps_queue_t *q, void **item)
{
    unsigned *wake = NULL;
    wordlock_lock(&q->_put_lock);
    int err = get_locked(q, item);
    if (err == 0 && q->_maxsize)    /* unbounded queues have no putters asleep */
        wake = bump_if_sleepers(&q->_not_full, &q->_putters);
    wordlock_release(&q->_put_lock);
    wake_one(wake);
    return err;
}

static int put_slow(ps_queue_t *q, void *item, const deadline_t *d)
{
    if (!deadline_passed(d))
        spin_until(q, can_put_batch);
    for (;;) {
        int err = try_put(q, item);
        if (err != EAGAIN)
            return err;
        if (deadline_passed(d))
            return ETIMEDOUT;
        sleep_unless(q, &q->_not_full, &q->_putters, can_put, d);
    }
}

static int get_slow(ps_queue_t *q, void **item, const deadline_t *d)
{
    if (!deadline_passed(d))
        spin_until(q, can_get);
    for (;;) {
        int err = try_get(q, item);
        if (err != EAGAIN)
            return err;
        if (deadline_passed(d))
            return ETIMEDOUT;
        sleep_unless(q, &q->_not_empty, &q->_getters, can_get, d);
    }
}

/* Blocking callers stay counted in _inside until their last access, so destroy
 * never frees a queue that a woken or polling thread still reads. */
static void enter(ps_queue_t *q) { __atomic_fetch_add(&q->_inside, 1, __ATOMIC_RELAXED); }
static void leave(ps_queue_t *q) { __atomic_fetch_sub(&q->_inside, 1, __ATOMIC_RELEASE); }

/* Shutdown and destroy: everything. LIFO and priority never take _get_lock, so
 * taking it costs one uncontended CAS and saves a case. */
static void lock_both(ps_queue_t *q)
{
    wordlock_lock(&q->_put_lock);
    wordlock_lock(&q->_get_lock);
}

static void release_both(ps_queue_t *q)
{
    wordlock_release(&q->_get_lock);
    wordlock_release(&q->_put_lock);
}

/* Items ever put, what the done count must reach. */
static size_t items_put(ps_queue_t *q)
{
    return is_fifo(q) ? fifo_items_put(q) : load_acquire(&q->_tail);
}

/* ---- public API ---- */

static int init_queue(ps_queue_t *q, size_t maxsize, int kind,
                      int (*cmp)(const void *, const void *))
{
    if (!q || (kind == KIND_PRIORITY && !cmp))
        return EINVAL;
    memset(q, 0, sizeof *q);    /* LIFO, priority: storage comes with the first put */
    q->_maxsize = maxsize;
    q->_cmp = cmp;
    if (kind == KIND_RING)
        return fifo_init(q, maxsize);       /* picks ring or segments */
    q->_kind = kind;
    return 0;
}

int ps_queue_init(ps_queue_t *q, size_t maxsize)
{
    return init_queue(q, maxsize, KIND_RING, NULL);
}

int ps_lifoqueue_init(ps_queue_t *q, size_t maxsize)
{
    return init_queue(q, maxsize, KIND_LIFO, NULL);
}

int ps_priorityqueue_init(ps_queue_t *q, size_t maxsize,
                          int (*cmp)(const void *a, const void *b))
{
    return init_queue(q, maxsize, KIND_PRIORITY, cmp);
}

static void free_storage(ps_queue_t *q)
{
    if (is_fifo(q))
        fifo_free(q);
    else
        free(q->_slots);
    free(q->_heap);
    q->_slots = NULL;
    q->_heap = NULL;
    q->_cap = 0;
    q->_kind = 0;       /* a second destroy is EINVAL, not a double free */
}

/* Holding both locks waits out a waker still in a locked put or get or in
 * shutdown (their critical sections are short and never block), which then
 * touches the queue no more; the blocking callers counted in _inside may
 * still, hence EBUSY. */
int ps_queue_destroy(ps_queue_t *q)
{
    if (!q || !q->_kind)
        return EINVAL;
    lock_both(q);
    int err = load_acquire(&q->_inside) ? EBUSY : 0;
    if (err == 0)
        free_storage(q);
    release_both(q);
    return err;
}

static ps_queue_t *new_queue(size_t maxsize, int kind, int (*cmp)(const void *, const void *))
{
    if (kind == KIND_PRIORITY && !cmp) {
        errno = EINVAL;
        return NULL;
    }
    ps_queue_t *q = malloc(sizeof *q);
    if (!q) {
        errno = ENOMEM;
        return NULL;
    }
    int err = init_queue(q, maxsize, kind, cmp);
    if (err) {
        free(q);
        errno = err;
        return NULL;
    }
    return q;
}

ps_queue_t *ps_queue_new(size_t maxsize)
{
    return new_queue(maxsize, KIND_RING, NULL);
}

ps_queue_t *ps_lifoqueue_new(size_t maxsize)
{
    return new_queue(maxsize, KIND_LIFO, NULL);
}

ps_queue_t *ps_priorityqueue_new(size_t maxsize, int (*cmp)(const void *, const void *))
{
    return new_queue(maxsize, KIND_PRIORITY, cmp);
}

void ps_queue_free(ps_queue_t *q)
{
    if (!q)
        return;
    int err = ps_queue_destroy(q);
    if (err) {          /* still waited on: freeing it would pull the rug */
        errno = err;
        return;
    }
    free(q);
}

int ps_queue_put(ps_queue_t *q, void *item, bool block, double timeout)
{
    if (!q || !q->_kind || (block && isnan(timeout)))
        return EINVAL;
    bool fifo = is_fifo(q);
    int err = fifo ? fifo_put_nowait(q, item) : try_put(q, item);
    if (err != EAGAIN || !block)
        return err;
    deadline_t d;
    deadline_from_timeout(timeout, &d);     /* NaN was refused above */
    enter(q);
    err = fifo ? fifo_put_wait(q, item, &d) : put_slow(q, item, &d);
    leave(q);
    return err;
}

int ps_queue_get(ps_queue_t *q, void **item, bool block, double timeout)
{
    if (!q || !q->_kind || !item || (block && isnan(timeout)))
        return EINVAL;
    bool fifo = is_fifo(q);
    int err = fifo ? fifo_get_nowait(q, item) : try_get(q, item);
    if (err != EAGAIN || !block)
        return err;
    deadline_t d;
    deadline_from_timeout(timeout, &d);
    enter(q);
    err = fifo ? fifo_get_wait(q, item, &d) : get_slow(q, item, &d);
    leave(q);
    return err;
}

int ps_queue_put_nowait(ps_queue_t *q, void *item)
{
    return ps_queue_put(q, item, false, 0);
}

int ps_queue_get_nowait(ps_queue_t *q, void **item)
{
    return ps_queue_get(q, item, false, 0);
}

size_t ps_queue_qsize(ps_queue_t *q)
{
    if (!q || !q->_kind)
        return 0;
    if (is_fifo(q))
        return fifo_qsize(q);
    size_t head = load_acquire(&q->_head);      /* head first: never above tail */
    size_t size = load_acquire(&q->_tail) - head;
    return q->_maxsize && size > q->_maxsize ? q->_maxsize : size;
}

bool ps_queue_empty(ps_queue_t *q)
{
    return ps_queue_qsize(q) == 0;
}

bool ps_queue_full(ps_queue_t *q)
{
    return q && q->_maxsize > 0 && ps_queue_qsize(q) >= q->_maxsize;
}

int ps_queue_task_done(ps_queue_t *q)
{
    if (!q || !q->_kind)
        return EINVAL;
    unsigned *joiners = done_word(q);
    size_t done = load_relaxed(&q->_done), next;
    do {
        size_t put = items_put(q);
        if (count_reaches(done, put))
            return EOVERFLOW;       /* every item put is already done */
        next = add_done(done, 1, put);
    } while (!__atomic_compare_exchange_n(&q->_done, &done, next, true,
                                          __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
    /* A joiner may have returned and freed q: wake by address only. */
    if (wakes_joiners(done, next))
        futex_wake(joiners, UINT_MAX, false);
    return 0;
}

/* Sleeps until the done count reaches the items put. JOINING is set with a CAS
 * on the exact value found unfinished, so the task_done that completes the
 * count sees it (or changed the word first, and the CAS fails). */
static void wait_all_done(ps_queue_t *q)
{
    size_t done = load_sc(&q->_done);
    while (!count_reaches(done, items_put(q))) {    /* done first: never above */
        if (!(done & JOINING) &&
            !__atomic_compare_exchange_n(&q->_done, &done, done | JOINING, false,
                                         __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            continue;                                   /* done changed: re-check */
        futex_wait(done_word(q), (unsigned)(done | JOINING), NULL, false);
        done = load_sc(&q->_done);
    }
}

int ps_queue_join(ps_queue_t *q)
{
    if (!q || !q->_kind)
        return EINVAL;
    enter(q);
    wait_all_done(q);
    leave(q);
    return 0;
}

/* An immediate shutdown removed `removed` items: they count as done, though
 * never beyond the items put (a task_done may already have counted some).
 * Returns whether joiners must be woken. */
static bool count_removed_as_done(ps_queue_t *q, size_t removed)
{
    size_t put = items_put(q);
    size_t done = load_relaxed(&q->_done), next;
    do {
        size_t unfinished = (put - (done >> 1)) & COUNT_MASK;
        next = add_done(done, removed < unfinished ? removed : unfinished, put);
    } while (!__atomic_compare_exchange_n(&q->_done, &done, next, true,
                                          __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
    return wakes_joiners(done, next);
}

/* LIFO and priority, both locks held: empties the queue. */
static size_t discard_all(ps_queue_t *q)
{
    size_t tail = load_relaxed(&q->_tail);
    size_t removed = tail - load_relaxed(&q->_head);
    store_release(&q->_head, tail);
    return removed;
}

/* Every write happens under both locks; once they are released a woken caller
 * may destroy q, so only futex_wakes on addresses follow. */
int ps_queue_shutdown(ps_queue_t *q, bool immediate)
{
    if (!q || !q->_kind)
        return EINVAL;
    bool fifo = is_fifo(q);
    unsigned *getters = fifo ? fifo_getters_word(q) : &q->_not_empty;
    unsigned *putters = fifo ? fifo_putters_word(q) : &q->_not_full;
    unsigned *done = done_word(q);
    lock_both(q);
    unsigned state = immediate ? SHUT_DOWN_NOW : SHUT_DOWN;
    if (load_relaxed(&q->_shutdown) < state)
        store_release(&q->_shutdown, state);
    size_t removed = fifo ? fifo_shutdown(q, immediate) : immediate ? discard_all(q) : 0;
    bool wake_joiners = immediate && count_removed_as_done(q, removed);
    if (!fifo) {
        bump(getters);
        bump(putters);
    }
    release_both(q);
    futex_wake(getters, UINT_MAX, false);
    futex_wake(putters, UINT_MAX, false);
    if (wake_joiners)
        futex_wake(done, UINT_MAX, false);
    return 0;
}
