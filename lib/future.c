/* SPDX-License-Identifier: MIT */
/* Future: concurrent.futures.Future, completed by an executor (lib/future.h).
 *
 * State
 *   One futex word: PENDING -> RUNNING -> FINISHED, or PENDING -> CANCELLED,
 *   each step one compare-and-swap, so cancel and a worker starting the task
 *   have exactly one winner. The outcome (result, bytes, task error) is stored
 *   before the swap to a final state, which publishes it (release); readers load
 *   the word with acquire and read the outcome only once it is final. The final
 *   swap clears two flags and acts on them:
 *     SLEEPERS  a thread sleeps (or is about to) on the word in result,
 *               exception or an ALL_COMPLETED wait: futex_wake everybody.
 *     SLOW      callbacks or FIRST_COMPLETED wait records are registered:
 *               take the future's lock, notify the records, run the callbacks.
 *   A future nobody waits on and with no callbacks completes with one swap and
 *   no system call.
 *
 * Callbacks and wait records
 *   Both are added under the future's lock, which first sets SLOW with a CAS
 *   that fails once the future is done; then the caller runs the callback at
 *   once itself (or, for a wait record, knows that a future is done). So every
 *   callback runs exactly once: added before the final swap, it is in the list
 *   the completer takes under the lock after the swap; added after, its adder
 *   sees the final state. The completer runs the list in order, outside the
 *   lock, after the result is visible.
 *
 *   ps_futures_wait(FIRST_COMPLETED) puts one record on its stack (CPython's
 *   _Waiter) and a node per future into each future's list. The completer
 *   notifies the record while holding that future's lock, and the waiter takes
 *   every one of those locks to unlink its nodes before it returns, so the
 *   record outlives every notification. ALL_COMPLETED needs no record: it waits
 *   for each future in turn, with one deadline.
 *
 * Lifetime
 *   Reference counted (see future.h). A thread that completes or cancels a
 *   future holds a reference while it wakes, notifies and runs callbacks, so a
 *   waiter that returns and frees its handle at once, or a callback that frees
 *   it, never frees memory the completer still uses (PITFALLS 13). */
#include "future.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "debug.h"
#include "futex.h"
#include "timing.h"
#include "wordlock.h"

#define WAIT_SPINS     1000     /* pauses polling before yielding */
#define WAIT_YIELDS    8        /* then sched_yield polls before sleeping */
#define MAX_BACKOFF    16
#define STACK_NODES    8        /* ps_futures_wait nodes on the stack */

#define load_relaxed(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define load_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)

/* ---- the pool: a cache of free futures ----
 *
 * Futures are carved out of blocks that are kept until the pool goes: a steady
 * stream of tasks allocates nothing, and a burst of n outstanding futures costs
 * O(log n + n / 32768) allocations. Small blocks first (malloc, growing by 4);
 * past BIG_AFTER futures, 2 MiB blocks of their own mapping, aligned and marked
 * MADV_HUGEPAGE: a page fault costs tens of microseconds on some VMs, and a
 * million futures touch 16k small pages but 32 huge ones. A block is carved
 * as futures are needed, never touched ahead. Everything is guarded by the
 * pool's lock; `outstanding` counts the futures handed out and not yet back, so
 * the last one back after future_pool_close frees the blocks. */

struct pool_block {
    struct pool_block *next;
    void *map;                  /* big blocks: the whole mapping, else NULL */
    size_t map_len;
};

#define BLOCK_FIRST 64          /* futures in the first block, x4 each time... */
#define BIG_AFTER   4096        /* ...until one would exceed this many */
#define BIG_SIZE    ((size_t)2 << 20)

struct future_pool {
    unsigned lock;              /* wordlock: everything (alone on its lines) */
    bool closed;
    ps_future_t *free;
    ps_future_t *bump, *bump_end;   /* the uncarved rest of the newest block */
    struct pool_block *blocks;
    size_t block_size;          /* futures in the next small block */
    size_t outstanding;
} __attribute__((aligned(64)));

struct future_pool *future_pool_new(void)
{
    void *mem;
    if (posix_memalign(&mem, 64, sizeof(struct future_pool)) != 0)
        return NULL;
    struct future_pool *pool = memset(mem, 0, sizeof *pool);
    pool->block_size = BLOCK_FIRST;
    return pool;
}

static void pool_destroy(struct future_pool *pool)
{
    while (pool->blocks) {
        struct pool_block *block = pool->blocks;
        pool->blocks = block->next;
        if (block->map)
            munmap(block->map, block->map_len);
        else
            free(block);
    }
    free(pool);
}

/* A 2 MiB block aligned on 2 MiB, so that it can be one huge page. */
static struct pool_block *big_block(size_t *n)
{
    size_t len = 2 * BIG_SIZE;
    char *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED)
        return NULL;
    char *start = (char *)(((uintptr_t)map + BIG_SIZE - 1) & ~(uintptr_t)(BIG_SIZE - 1));
    if (start > map)
        munmap(map, (size_t)(start - map));
    if (start + BIG_SIZE < map + len)
        munmap(start + BIG_SIZE, (size_t)(map + len - (start + BIG_SIZE)));
    madvise(start, BIG_SIZE, MADV_HUGEPAGE);    /* a hint: fine if refused */
    struct pool_block *block = (struct pool_block *)start;
    block->map = start;
    block->map_len = BIG_SIZE;
    *n = BIG_SIZE / sizeof(ps_future_t) - 1;
    return block;
}

/* With the lock held: a new block to carve from. */
static bool pool_grow(struct future_pool *pool)
{
    int saved = errno;          /* madvise may refuse: a submit leaves errno alone */
    size_t n = pool->block_size;
    struct pool_block *block = NULL;
    if (n <= BIG_AFTER) {
        void *mem;
        if (posix_memalign(&mem, sizeof(ps_future_t), (n + 1) * sizeof(ps_future_t)) == 0) {
            block = mem;
            block->map = NULL;
            pool->block_size *= 4;
        }
    } else {
        block = big_block(&n);
    }
    errno = saved;
    if (!block)
        return false;
    block->next = pool->blocks;
    pool->blocks = block;
    pool->bump = (ps_future_t *)block + 1;     /* the first line holds the header */
    pool->bump_end = pool->bump + n;
    return true;
}

void future_pool_close(struct future_pool *pool)
{
    if (!pool)
        return;
    wordlock_lock(&pool->lock);
    pool->closed = true;
    bool last = pool->outstanding == 0;
    wordlock_release(&pool->lock);
    if (last)
        pool_destroy(pool);
}

static ps_future_t *pool_get(struct future_pool *pool)
{
    wordlock_lock(&pool->lock);
    ps_future_t *f = pool->free;
    if (f)
        pool->free = f->next;
    else if (pool->bump != pool->bump_end || pool_grow(pool))
        f = pool->bump++;
    if (f)
        pool->outstanding++;
    wordlock_release(&pool->lock);
    return f;
}

static void pool_put(struct future_pool *pool, ps_future_t *f)
{
    wordlock_lock(&pool->lock);
    pool->outstanding--;
    bool last = pool->closed && pool->outstanding == 0;
    if (!pool->closed) {
        f->next = pool->free;
        pool->free = f;
    }
    wordlock_release(&pool->lock);
    if (last)
        pool_destroy(pool);
}

/* ---- making and freeing ---- */

static struct future_ext *ext_new(void)
{
    return calloc(1, sizeof(struct future_ext));
}

ps_future_t *future_new(struct future_pool *pool, int kind)
{
    struct future_ext *ext = NULL;
    if (kind == FUT_BYTES && !(ext = ext_new())) {
        errno = ENOMEM;
        return NULL;
    }
    ps_future_t *f = pool ? pool_get(pool) : aligned_alloc(sizeof *f, sizeof *f);
    if (!f) {
        free(ext);
        errno = ENOMEM;
        return NULL;
    }
    f->state = FUT_PENDING;
    f->refs = 2;
    f->lock = 0;
    f->kind = (unsigned char)kind;
    f->fn.ptr = NULL;
    f->arg = NULL;
    f->result = NULL;
    f->next = NULL;
    f->pool = pool;
    f->ext = ext;
    return f;
}

static void future_destroy(ps_future_t *f)
{
    if (f->kind == FUT_BYTES) {
        free(f->arg);
        free(f->result);
    }
    if (f->ext) {
        free(f->ext->more);     /* callbacks of a future that never completed */
        free(f->ext);
    }
    if (f->pool)
        pool_put(f->pool, f);
    else
        free(f);
}

void future_release(ps_future_t *f)
{
    /* refs == 1: ours is the last, and only holders add references. */
    if (load_acquire(&f->refs) == 1 ||
        __atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) == 0)
        future_destroy(f);
}

void ps_future_free(ps_future_t *f)
{
    if (f)
        future_release(f);
}

/* ---- wait records (ps_futures_wait) ---- */

struct future_waiter {
    unsigned word;              /* futex word: 0 waiting, 1 notified, 2 asleep */
};

/* With the future's lock held: the record stays valid until the waiter has
 * taken that lock to unlink its node. */
static void waiter_notify(struct future_waiter *w)
{
    if (__atomic_exchange_n(&w->word, 1, __ATOMIC_RELEASE) == 2)
        futex_wake(&w->word, 1, false);
}

/* ---- completion ---- */

/* After the swap to a final state, by a thread holding a reference: wake the
 * sleepers, notify the wait records, run the callbacks. */
static void after_final(ps_future_t *f, unsigned old)
{
    if (!(old & (FUT_SLEEPERS | FUT_SLOW)))
        return;
    __atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);  /* a callback may free f */
    if (old & FUT_SLEEPERS)
        futex_wake(&f->state, UINT_MAX, false);
    if (old & FUT_SLOW) {
        wordlock_lock(&f->lock);
        struct future_ext *ext = f->ext;    /* SLOW is set only once it exists */
        struct future_callback first = ext->cb, *more = ext->more;
        unsigned n = ext->ncb;
        ext->ncb = 0;
        ext->more = NULL;
        ext->nmore_cap = 0;
        for (struct future_wait_node *node = ext->waiters; node; node = node->next)
            waiter_notify(node->w);
        wordlock_release(&f->lock);
        if (n > 0)
            first.fn(f, first.arg);
        for (unsigned i = 0; i + 1 < n; i++)
            more[i].fn(f, more[i].arg);
        free(more);
    }
    future_release(f);
}

/* Moves a PENDING or RUNNING future to RUNNING; false if it is done. */
static bool begin_completion(ps_future_t *f)
{
    unsigned s = load_relaxed(&f->state);
    return (s & FUT_STATE) == FUT_RUNNING || future_set_running(f);
}

/* RUNNING -> FINISHED: only the thread that started it gets here. */
static void end_completion(ps_future_t *f)
{
    unsigned old = __atomic_exchange_n(&f->state, FUT_FINISHED, __ATOMIC_ACQ_REL);
    after_final(f, old);
}

bool future_complete_ptr(ps_future_t *f, void *result)
{
    if (!begin_completion(f))
        return false;
    f->result = result;
    end_completion(f);
    return true;
}

bool future_complete_error(ps_future_t *f, int err)
{
    PS_ASSERT(f->kind == FUT_BYTES);    /* pointer tasks have no error */
    if (!begin_completion(f))
        return false;
    f->ext->task_error = err > 0 ? err : EINVAL;
    end_completion(f);
    return true;
}

bool future_complete_bytes(ps_future_t *f, const void *data, ssize_t len)
{
    PS_ASSERT(f->kind == FUT_BYTES);
    if (!begin_completion(f))
        return false;
    struct future_ext *ext = f->ext;
    if (len < 0) {
        ext->task_error = len >= -(ssize_t)INT_MAX ? (int)-len : EINVAL;
    } else if (len > 0) {
        void *copy = malloc((size_t)len);
        if (copy) {
            memcpy(copy, data, (size_t)len);
            f->result = copy;
            ext->outlen = (size_t)len;
        } else {
            ext->task_error = ENOMEM;
        }
    }
    end_completion(f);
    return true;
}

bool future_cancel(ps_future_t *f)
{
    unsigned old = load_relaxed(&f->state);
    for (;;) {
        unsigned st = old & FUT_STATE;
        if (st == FUT_CANCELLED)
            return true;
        if (st != FUT_PENDING)
            return false;
        if (__atomic_compare_exchange_n(&f->state, &old, FUT_CANCELLED, true, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED))
            break;
    }
    after_final(f, old);
    return true;
}

/* ---- waiting for one future ---- */

/* The task is often about to end: poll a while before sleeping. */
static const struct spin_policy wait_spin = { WAIT_SPINS, 1, MAX_BACKOFF, WAIT_YIELDS };

struct done_poll {
    ps_future_t *f;
    unsigned state;             /* the last word read */
};

static bool polled_done(void *arg)
{
    struct done_poll *p = arg;
    return future_state_done(p->state = load_acquire(&p->f->state));
}

/* Waits until f is done (0, *state is its final word) or d passes (ETIMEDOUT). */
static int wait_done(ps_future_t *f, const deadline_t *d, unsigned *state)
{
    unsigned s = load_acquire(&f->state);
    if (future_state_done(s))
        goto done;
    if (!d->forever && deadline_passed(d))
        return ETIMEDOUT;
    struct done_poll poll = { f, s };
    bool finished = spin_until_ready(&wait_spin, polled_done, &poll);
    s = poll.state;
    if (finished)
        goto done;
    for (;;) {
        if (!(s & FUT_SLEEPERS)) {
            if (!__atomic_compare_exchange_n(&f->state, &s, s | FUT_SLEEPERS, false,
                                             __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE)) {
                if (future_state_done(s))
                    goto done;
                continue;       /* a flag changed: try again */
            }
            s |= FUT_SLEEPERS;
        }
        int err = futex_wait(&f->state, s, deadline_ts(d), false);
        s = load_acquire(&f->state);
        if (future_state_done(s))
            goto done;
        if (err == ETIMEDOUT)
            return ETIMEDOUT;
    }
done:
    *state = s;
    return 0;
}

int future_wait(ps_future_t *f, const deadline_t *d)
{
    unsigned s;
    return wait_done(f, d, &s);
}

/* The common start of result, result_bytes and exception: 0 with f's final
 * state word, or the error to return. */
static int wait_final(ps_future_t *f, double timeout, unsigned *state)
{
    if (timeout != timeout)
        return EINVAL;
    unsigned s = load_acquire(&f->state);
    if (!future_state_done(s)) {
        deadline_t d;
        deadline_from_timeout(timeout, &d);
        int err = wait_done(f, &d, &s);
        if (err)
            return err;
    }
    *state = s;
    return (s & FUT_STATE) == FUT_CANCELLED ? ECANCELED : 0;
}

int ps_future_result(ps_future_t *f, double timeout, void **result)
{
    unsigned s;
    if (!f || f->kind != FUT_PTR)
        return EINVAL;
    int err = wait_final(f, timeout, &s);
    if (!err && result)
        *result = f->result;
    return err;
}

int ps_future_result_bytes(ps_future_t *f, double timeout, void *buf, size_t cap, size_t *len)
{
    unsigned s;
    if (!f || f->kind != FUT_BYTES || (!buf && cap > 0))
        return EINVAL;
    int err = wait_final(f, timeout, &s);
    if (err)
        return err;
    const struct future_ext *ext = f->ext;
    if (ext->task_error)
        return ext->task_error;
    if (len)
        *len = ext->outlen;
    if (cap < ext->outlen)
        return ERANGE;
    if (ext->outlen)
        memcpy(buf, f->result, ext->outlen);
    return 0;
}

int ps_future_exception(ps_future_t *f, double timeout, int *task_error)
{
    unsigned s;
    if (!f)
        return EINVAL;
    int err = wait_final(f, timeout, &s);
    if (!err && task_error)
        *task_error = f->kind == FUT_BYTES ? f->ext->task_error : 0;
    return err;
}

bool ps_future_cancel(ps_future_t *f)
{
    return f && future_cancel(f);
}

static unsigned state_of(ps_future_t *f)
{
    return load_acquire(&f->state) & FUT_STATE;
}

bool ps_future_cancelled(ps_future_t *f)
{
    return f && state_of(f) == FUT_CANCELLED;
}

bool ps_future_running(ps_future_t *f)
{
    return f && state_of(f) == FUT_RUNNING;
}

bool ps_future_done(ps_future_t *f)
{
    return f && state_of(f) >= FUT_FINISHED;
}

/* ---- callbacks ---- */

/* With f's lock held: makes sure f has its ext and sets SLOW, unless f is done.
 * 1: done, 0: SLOW set, -1: no memory. */
static int mark_slow(ps_future_t *f)
{
    if (future_state_done(load_relaxed(&f->state)))
        return 1;
    if (!f->ext && !(f->ext = ext_new()))
        return -1;
    unsigned s = load_relaxed(&f->state);
    for (;;) {
        if (future_state_done(s))
            return 1;
        if ((s & FUT_SLOW) ||
            __atomic_compare_exchange_n(&f->state, &s, s | FUT_SLOW, true, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return 0;
    }
}

/* With f's lock held and SLOW set. */
static int append_callback(struct future_ext *ext, void (*cb)(ps_future_t *, void *), void *arg)
{
    if (ext->ncb > 0) {
        unsigned i = ext->ncb - 1;
        if (i >= ext->nmore_cap) {
            unsigned cap = ext->nmore_cap ? ext->nmore_cap * 2 : 4;
            if (cap <= ext->nmore_cap)
                return ENOMEM;
            struct future_callback *more = realloc(ext->more, cap * sizeof *more);
            if (!more)
                return ENOMEM;
            ext->more = more;
            ext->nmore_cap = cap;
        }
        ext->more[i] = (struct future_callback){ cb, arg };
    } else {
        ext->cb = (struct future_callback){ cb, arg };
    }
    ext->ncb++;
    return 0;
}

int ps_future_add_done_callback(ps_future_t *f, void (*cb)(ps_future_t *f, void *arg), void *arg)
{
    if (!f || !cb)
        return EINVAL;
    if (!future_state_done(load_acquire(&f->state))) {
        int saved = errno, err;
        wordlock_lock(&f->lock);
        int state = mark_slow(f);
        err = state < 0 ? ENOMEM : state == 0 ? append_callback(f->ext, cb, arg) : 0;
        wordlock_release(&f->lock);
        errno = saved;
        if (state <= 0)
            return err;
    }
    cb(f, arg);                 /* done already: at once, in the caller */
    return 0;
}

/* ---- ps_futures_wait ---- */

/* Adds node to f's records: 0, 1 (f is done: nothing added) or -1 (no memory). */
static int register_node(ps_future_t *f, struct future_wait_node *node, struct future_waiter *w)
{
    wordlock_lock(&f->lock);
    int state = mark_slow(f);
    if (state == 0) {
        struct future_ext *ext = f->ext;
        node->w = w;
        node->prev = NULL;
        node->next = ext->waiters;
        if (ext->waiters)
            ext->waiters->prev = node;
        ext->waiters = node;
    }
    wordlock_release(&f->lock);
    return state;
}

static void unregister_node(ps_future_t *f, struct future_wait_node *node)
{
    wordlock_lock(&f->lock);
    if (node->prev)
        node->prev->next = node->next;
    else
        f->ext->waiters = node->next;
    if (node->next)
        node->next->prev = node->prev;
    wordlock_release(&f->lock);
}

static bool any_done(ps_future_t *const *fs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (future_state_done(load_acquire(&fs[i]->state)))
            return true;
    return false;
}

static bool waiter_notified(void *arg)
{
    return load_acquire(&((struct future_waiter *)arg)->word) == 1;
}

/* Sleeps until the record is notified or d passes. */
static void waiter_sleep(struct future_waiter *w, const deadline_t *d)
{
    static const struct spin_policy spin = { WAIT_SPINS, 1, MAX_BACKOFF, 0 };
    if (spin_until_ready(&spin, waiter_notified, w))
        return;
    for (;;) {
        unsigned v = 0;
        if (!__atomic_compare_exchange_n(&w->word, &v, 2, false, __ATOMIC_ACQUIRE,
                                         __ATOMIC_ACQUIRE) && v == 1)
            return;
        if (futex_wait(&w->word, 2, deadline_ts(d), false) == ETIMEDOUT ||
            load_acquire(&w->word) == 1)
            return;
    }
}

/* Without memory for the nodes: polls, sleeping a little between looks. */
static int wait_first_polling(ps_future_t *const *fs, size_t n, const deadline_t *d)
{
    for (;;) {
        if (any_done(fs, n))
            return 0;
        if (deadline_passed(d))
            return ETIMEDOUT;
        struct timespec pause = { 0, 200000 };
        nanosleep(&pause, NULL);
    }
}

static int wait_first(ps_future_t *const *fs, size_t n, const deadline_t *d)
{
    if (any_done(fs, n))
        return 0;
    if (!d->forever && deadline_passed(d))
        return ETIMEDOUT;
    struct future_wait_node stack_nodes[STACK_NODES];
    struct future_wait_node *nodes = stack_nodes;
    if (n > STACK_NODES) {
        nodes = n <= SIZE_MAX / sizeof *nodes ? malloc(n * sizeof *nodes) : NULL;
        if (!nodes)
            return wait_first_polling(fs, n, d);
    }
    struct future_waiter w = { 0 };
    size_t registered = 0;
    int state = 0;
    while (registered < n && (state = register_node(fs[registered], &nodes[registered], &w)) == 0)
        registered++;
    if (registered == n)
        waiter_sleep(&w, d);
    for (size_t i = 0; i < registered; i++)
        unregister_node(fs[i], &nodes[i]);
    if (nodes != stack_nodes)
        free(nodes);
    if (state < 0)
        return wait_first_polling(fs, n, d);
    return any_done(fs, n) ? 0 : ETIMEDOUT;
}

static int wait_all(ps_future_t *const *fs, size_t n, const deadline_t *d)
{
    for (size_t i = 0; i < n; i++) {
        unsigned s;
        int err = wait_done(fs[i], d, &s);
        if (err)
            return err;
    }
    return 0;
}

int ps_futures_wait(ps_future_t *const *fs, size_t n, double timeout, int return_when)
{
    deadline_t d;
    if ((!fs && n > 0) || (return_when != PS_FIRST_COMPLETED && return_when != PS_ALL_COMPLETED) ||
        deadline_from_timeout(timeout, &d) != 0)
        return EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!fs[i])
            return EINVAL;
    if (n == 0)
        return 0;
    int saved = errno;
    int err = return_when == PS_FIRST_COMPLETED ? wait_first(fs, n, &d) : wait_all(fs, n, &d);
    errno = saved;
    return err;
}
