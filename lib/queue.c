/* SPDX-License-Identifier: MIT */
/* Queue, LifoQueue and PriorityQueue of void * items: Python's queue module.
 *
 * Invariants
 *   Counters that only grow: _tail (items ever stored), _head (items ever
 *   taken) and the count in _done (task_done calls plus items an immediate
 *   shutdown threw away). qsize is _tail - _head, join waits for the done count
 *   to reach _tail, and _head <= _tail, done count <= _tail always. _tail is
 *   written only under the put lock, _head only under the get lock, both with
 *   release (or seq_cst) stores, so either side may read the other's counter
 *   without its lock. _slots, _heap and _cap change only with both locks held.
 *   _done is (count << 1) | JOINING: the low bit says a joiner may be asleep.
 *
 *   FIFO: a power-of-two ring indexed by counter & (_cap - 1), with separate put
 *   and get locks (a two-lock queue): one producer and one consumer never touch
 *   the same lock, and each side caches the other's counter (_head_seen,
 *   _tail_seen) and reads the real one only when its cache says full or empty, so
 *   the shared cache lines move about once per batch, not once per item. Growing
 *   the ring takes the get lock while holding the put lock (the only nesting,
 *   always in that order).
 *   LIFO and priority: both operations work on the same end, so the put lock
 *   guards everything. The priority queue is a binary heap of (item, sequence)
 *   entries; the sequence is _tail at put time and breaks ties, which makes equal
 *   items leave in insertion order.
 *
 * Who wakes whom
 *   A caller that cannot proceed first polls for a few microseconds (the peer is
 *   usually about to make room or an item), then sleeps on a futex word: getters
 *   on _not_empty, putters on _not_full, counting themselves in _getters and
 *   _putters; joiners on the low 32 bits of _done, after setting JOINING. A put
 *   that sees _getters > 0 bumps _not_empty and wakes one getter; a get wakes one
 *   putter the same way; the task_done (or immediate shutdown) that brings the
 *   done count up to _tail clears JOINING in the same CAS and, if it was set,
 *   wakes all joiners; shutdown wakes everybody. When nobody sleeps nobody makes
 *   a system call.
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
 *   Hence put and get decide whether to wake and bump the futex word while they
 *   still hold their lock, and only call futex_wake after releasing it;
 *   task_done's CAS is the store that lets a joiner return, which is why the
 *   joiners' flag lives in _done itself; shutdown writes everything under both
 *   locks. destroy takes both locks (held only for short, non-blocking critical
 *   sections), so it waits out a waker still inside one, and it is EBUSY while
 *   a blocking caller is counted in _inside, whose leave() is that caller's
 *   last access: put_slow, get_slow and join, polling and sleeping included,
 *   all run between enter() and leave(). grow_ring runs under the put lock
 *   before the _tail store that releases anybody. Computing an address is not
 *   an access.
 */
#include <pysync/queue.h>

#include "futex.h"
#include "timing.h"
#include "wordlock.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { KIND_FIFO = 1, KIND_LIFO, KIND_PRIORITY };
enum { ALIVE, SHUT_DOWN, SHUT_DOWN_NOW };

struct ps_queue_entry {
    void *item;
    unsigned long long seq;     /* insertion order, the tie-breaker */
};

#define FIRST_CAP    64         /* slots of the first allocation... */
#define PREALLOC_MAX 4096       /* ...unless the whole bounded queue is this small */
#define WAIT_SPINS   1000       /* pauses polling before yielding (tens of us) */
#define WAIT_YIELDS  16         /* then sched_yield polls before sleeping */
#define MAX_BACKOFF  64         /* pauses between two polls, at most */
#define BATCH_DIV    4          /* a spinning putter waits for maxsize/4 free slots */

#define load_relaxed(p)     __atomic_load_n((p), __ATOMIC_RELAXED)
#define load_acquire(p)     __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define load_sc(p)          __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define store_sc(p, v)      __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)

/* Consumers of a FIFO have their own lock; the other kinds share one. */
static inline unsigned *get_lock(ps_queue_t *q)
{
    return q->_kind == KIND_FIFO ? &q->_get_lock : &q->_put_lock;
}

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
                         bool (*ready)(ps_queue_t *), const deadline_t *d)
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
static void spin_until(ps_queue_t *q, bool (*ready)(ps_queue_t *))
{
    unsigned pauses = 1;
    for (int i = 0; i < WAIT_SPINS && !ready(q); i += (int)pauses) {
        for (unsigned j = 0; j < pauses; j++)
            cpu_relax();
        if (pauses < MAX_BACKOFF)
            pauses *= 2;
    }
    for (int i = 0; i < WAIT_YIELDS && !ready(q); i++)
        sched_yield();
}

static bool can_get(ps_queue_t *q)
{
    return load_sc(&q->_tail) != load_relaxed(&q->_head) ||
           load_relaxed(&q->_shutdown) != ALIVE;
}

static bool can_put(ps_queue_t *q)
{
    size_t head = load_sc(&q->_head);           /* head first: never above tail */
    return load_relaxed(&q->_tail) - head < q->_maxsize ||
           load_relaxed(&q->_shutdown) != ALIVE;
}

/* What a spinning putter waits for: room for a batch, not for one item. Going
 * back to a full queue after every get would move the head's cache line once
 * per item; a quarter of the queue lets both sides run at full speed for a
 * while. A putter that sleeps waits for one slot (can_put), as Python's does. */
static bool can_put_batch(ps_queue_t *q)
{
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

static size_t first_capacity(const ps_queue_t *q)
{
    if (q->_maxsize == 0 || q->_maxsize > PREALLOC_MAX)
        return FIRST_CAP;
    size_t cap = 1;
    while (cap < q->_maxsize)
        cap <<= 1;
    return cap;
}

static size_t next_capacity(const ps_queue_t *q, size_t elem_size)
{
    if (q->_cap == 0)
        return first_capacity(q);
    return q->_cap <= SIZE_MAX / 2 / elem_size ? q->_cap * 2 : 0;
}

/* Doubles the ring. The put lock is held; consumers read the ring under the get
 * lock, so the items move under that one too. The new ring is allocated before,
 * so consumers wait only for the copy. */
static int grow_ring(ps_queue_t *q)
{
    size_t cap = next_capacity(q, sizeof(void *));
    void **slots = cap ? malloc(cap * sizeof *slots) : NULL;
    if (!slots)
        return ENOMEM;
    wordlock_lock(&q->_get_lock);
    size_t tail = load_relaxed(&q->_tail);
    for (size_t i = load_relaxed(&q->_head); i != tail; i++)
        slots[i & (cap - 1)] = q->_slots[i & (q->_cap - 1)];
    void **old = q->_slots;
    q->_slots = slots;
    q->_cap = cap;
    wordlock_release(&q->_get_lock);
    free(old);
    return 0;
}

/* LIFO stack or heap: the only lock is held, a plain realloc will do. */
static int grow_array(ps_queue_t *q)
{
    bool heap = q->_kind == KIND_PRIORITY;
    size_t elem = heap ? sizeof(struct ps_queue_entry) : sizeof(void *);
    size_t cap = next_capacity(q, elem);
    void *p = cap ? realloc(heap ? (void *)q->_heap : (void *)q->_slots, cap * elem) : NULL;
    if (!p)
        return ENOMEM;
    if (heap)
        q->_heap = p;
    else
        q->_slots = p;
    q->_cap = cap;
    return 0;
}

static int grow(ps_queue_t *q)
{
    int saved = errno;      /* malloc may set it; int-returning calls keep it */
    int err = q->_kind == KIND_FIFO ? grow_ring(q) : grow_array(q);
    errno = saved;
    return err;
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

/* ---- the three kinds: tail/head are the counters of the item to store/take ---- */

static void store_item(ps_queue_t *q, size_t tail, void *item)
{
    if (q->_kind == KIND_FIFO) {
        q->_slots[tail & (q->_cap - 1)] = item;     /* _head stays untouched */
        return;
    }
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
    switch (q->_kind) {
    case KIND_FIFO:
        return q->_slots[head & (q->_cap - 1)];
    case KIND_LIFO:
        return q->_slots[load_relaxed(&q->_tail) - head - 1];
    default:
        return heap_pop(q, load_relaxed(&q->_tail) - head);
    }
}

/* ---- put and get, one attempt each ---- */

/* Put lock held. 0, ESHUTDOWN, EAGAIN (full) or ENOMEM. */
static int put_locked(ps_queue_t *q, void *item)
{
    if (load_relaxed(&q->_shutdown) != ALIVE)
        return ESHUTDOWN;
    size_t tail = load_relaxed(&q->_tail);
    size_t room = q->_maxsize && q->_maxsize < q->_cap ? q->_maxsize : q->_cap;
    if (tail - q->_head_seen >= room) {
        q->_head_seen = load_acquire(&q->_head);    /* the cache may be stale */
        size_t size = tail - q->_head_seen;
        if (q->_maxsize && size >= q->_maxsize)
            return EAGAIN;
        if (size >= q->_cap) {
            int err = grow(q);
            if (err)
                return err;
        }
    }
    store_item(q, tail, item);
    store_sc(&q->_tail, tail + 1);     /* seq_cst: see "No lost wake-up" */
    return 0;
}

/* Get lock held. 0, ESHUTDOWN (shut down and empty) or EAGAIN (empty). */
static int get_locked(ps_queue_t *q, void **item)
{
    size_t head = load_relaxed(&q->_head);
    if (head == q->_tail_seen) {
        /* Shutdown state before _tail: a shutdown seen here was ordered after
         * every put it stopped, so those items are visible below. */
        unsigned state = load_acquire(&q->_shutdown);
        q->_tail_seen = load_acquire(&q->_tail);
        if (head == q->_tail_seen)
            return state != ALIVE ? ESHUTDOWN : EAGAIN;
    }
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
    unsigned *wake = NULL, *lock = get_lock(q);
    wordlock_lock(lock);
    int err = get_locked(q, item);
    if (err == 0 && q->_maxsize)    /* unbounded queues have no putters asleep */
        wake = bump_if_sleepers(&q->_not_full, &q->_putters);
    wordlock_release(lock);
    wake_one(wake);
    return err;
}

static int put_slow(ps_queue_t *q, void *item, double timeout)
{
    deadline_t d;
    deadline_from_timeout(timeout, &d);     /* NaN was refused by the caller */
    if (timeout != 0)
        spin_until(q, can_put_batch);
    for (;;) {
        int err = try_put(q, item);
        if (err != EAGAIN)
            return err;
        if (deadline_passed(&d))
            return ETIMEDOUT;
        sleep_unless(q, &q->_not_full, &q->_putters, can_put, &d);
    }
}

static int get_slow(ps_queue_t *q, void **item, double timeout)
{
    deadline_t d;
    deadline_from_timeout(timeout, &d);
    if (timeout != 0)
        spin_until(q, can_get);
    for (;;) {
        int err = try_get(q, item);
        if (err != EAGAIN)
            return err;
        if (deadline_passed(&d))
            return ETIMEDOUT;
        sleep_unless(q, &q->_not_empty, &q->_getters, can_get, &d);
    }
}

/* Blocking callers stay counted in _inside until their last access, so destroy
 * never frees a queue that a woken or polling thread still reads. */
static void enter(ps_queue_t *q) { __atomic_fetch_add(&q->_inside, 1, __ATOMIC_RELAXED); }
static void leave(ps_queue_t *q) { __atomic_fetch_sub(&q->_inside, 1, __ATOMIC_RELEASE); }

/* Shutdown and destroy: everything. Other kinds never take _get_lock, so taking
 * it costs one uncontended CAS and saves a case. Put lock first, as grow_ring. */
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

/* ---- public API ---- */

static int init_queue(ps_queue_t *q, size_t maxsize, int kind,
                      int (*cmp)(const void *, const void *))
{
    if (!q || (kind == KIND_PRIORITY && !cmp))
        return EINVAL;
    memset(q, 0, sizeof *q);    /* storage comes with the first put */
    q->_maxsize = maxsize;
    q->_kind = kind;
    q->_cmp = cmp;
    return 0;
}

int ps_queue_init(ps_queue_t *q, size_t maxsize)
{
    return init_queue(q, maxsize, KIND_FIFO, NULL);
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
    free(q->_slots);
    free(q->_heap);
    q->_slots = NULL;
    q->_heap = NULL;
    q->_cap = 0;
    q->_kind = 0;       /* a second destroy is EINVAL, not a double free */
}

/* Holding both locks waits out a waker still in put, get or shutdown (their
 * critical sections are short and never block), which then touches the queue
 * no more; the blocking callers counted in _inside may still, hence EBUSY. */
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
    init_queue(q, maxsize, kind, cmp);
    return q;
}

ps_queue_t *ps_queue_new(size_t maxsize)
{
    return new_queue(maxsize, KIND_FIFO, NULL);
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
    int err = try_put(q, item);
    if (err != EAGAIN || !block)
        return err;
    enter(q);
    err = put_slow(q, item, timeout);
    leave(q);
    return err;
}

int ps_queue_get(ps_queue_t *q, void **item, bool block, double timeout)
{
    if (!q || !q->_kind || !item || (block && isnan(timeout)))
        return EINVAL;
    int err = try_get(q, item);
    if (err != EAGAIN || !block)
        return err;
    enter(q);
    err = get_slow(q, item, timeout);
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
    if (!q)
        return 0;
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
        size_t tail = load_acquire(&q->_tail);
        if (count_reaches(done, tail))
            return EOVERFLOW;       /* every item put is already done */
        next = add_done(done, 1, tail);
    } while (!__atomic_compare_exchange_n(&q->_done, &done, next, true,
                                          __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
    /* A joiner may have returned and freed q: wake by address only. */
    if (wakes_joiners(done, next))
        futex_wake(joiners, UINT_MAX, false);
    return 0;
}

/* Sleeps until the done count reaches _tail. JOINING is set with a CAS on the
 * exact value found unfinished, so the task_done that completes the count sees
 * it (or changed the word first, and the CAS fails). */
static void wait_all_done(ps_queue_t *q)
{
    size_t done = load_sc(&q->_done);
    while (!count_reaches(done, load_sc(&q->_tail))) {   /* done first: never above tail */
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

/* Both locks held: empties the queue; removed items count as done, though
 * never beyond _tail (a task_done may already have counted some). Returns
 * whether joiners must be woken. */
static bool discard_all(ps_queue_t *q)
{
    size_t tail = load_relaxed(&q->_tail);
    size_t removed = tail - load_relaxed(&q->_head);
    store_release(&q->_head, tail);
    q->_head_seen = q->_tail_seen = tail;
    size_t done = load_relaxed(&q->_done), next;
    do {
        size_t unfinished = (tail - (done >> 1)) & COUNT_MASK;
        next = add_done(done, removed < unfinished ? removed : unfinished, tail);
    } while (!__atomic_compare_exchange_n(&q->_done, &done, next, true,
                                          __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
    return wakes_joiners(done, next);
}

/* Every write happens under both locks; once they are released a woken caller
 * may destroy q, so only futex_wakes on addresses follow. */
int ps_queue_shutdown(ps_queue_t *q, bool immediate)
{
    if (!q || !q->_kind)
        return EINVAL;
    unsigned *not_empty = &q->_not_empty, *not_full = &q->_not_full, *done = done_word(q);
    lock_both(q);
    unsigned state = immediate ? SHUT_DOWN_NOW : SHUT_DOWN;
    if (load_relaxed(&q->_shutdown) < state)
        store_release(&q->_shutdown, state);
    bool wake_joiners = immediate && discard_all(q);
    bump(not_empty);
    bump(not_full);
    release_both(q);
    futex_wake(not_empty, UINT_MAX, false);
    futex_wake(not_full, UINT_MAX, false);
    if (wake_joiners)
        futex_wake(done, UINT_MAX, false);
    return 0;
}
