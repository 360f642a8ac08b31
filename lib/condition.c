/* Condition: threading.Condition.
 *
 * All condition state is guarded by the condition's RLock, which wait and notify
 * require the caller to hold.
 *
 * Private conditions keep a FIFO of waiters, one node on each waiter's stack with
 * its own futex word, as CPython keeps a deque of waiter locks: notify(n) unlinks
 * the n oldest nodes and flags each one, so the order is exact. A waiter whose
 * wait times out unlinks itself after taking the lock back; if a notify flagged it
 * first, the notification counts (it returns 0), so none is lost.
 *
 * Shared conditions cannot point into a waiter's stack, and their waiters may be
 * killed at any moment, so they use a futex sequence word: notify(n) bumps _seq,
 * then wakes up to n sleepers (the kernel wakes the longest sleepers first, and
 * never a dead one) and counts them in _woken; each of those returns 0. What is
 * left of n becomes _signals for latecomers: waiters that were not asleep when
 * it came (between unlock and sleep, or in a signal handler), whose futex_wait
 * then fails with EAGAIN; _signal_seq, the _seq of the last notify that left
 * signals, tells a latecomer whether any are meant for it. A waiter woken by a
 * timeout is never chosen. Killed waiters stay in _waiters, so a notify may leave
 * spare signals; only a latecomer of a later notify that leaves signals too can
 * take one, so after a kill a notify can rarely wake one waiter more than asked.
 *
 * Both kinds count the callers inside wait in _waiters until they hold the lock
 * again, so destroy never frees a condition that a woken waiter still uses. */
#include <errno.h>
#include <limits.h>

#include "futex.h"
#include "object.h"
#include "rlock.h"
#include "timing.h"

struct ps_cond_waiter {
    struct ps_cond_waiter *prev, *next;
    unsigned notified;          /* futex word, set under the lock by notify */
};

static bool is_shared(const ps_condition_t *c) { return c->_flags & PS_SHARED; }

static ps_rlock_t *lock_of(ps_condition_t *c)
{
    return (ps_rlock_t *)((char *)c + c->_lock_off);
}

int ps_condition_init(ps_condition_t *c, ps_rlock_t *lock, int flags)
{
    if (!c || (flags & ~PS_SHARED))
        return EINVAL;
    if (!lock) {
        int err = ps_rlock_init(&c->_own, flags);
        if (err)
            return err;
        lock = &c->_own;
    }
    /* An offset, not a pointer: a shared condition and its lock in one segment stay
     * paired wherever each process maps that segment. */
    c->_lock_off = (char *)lock - (char *)c;
    c->_seq = c->_waiters = c->_woken = c->_signals = c->_signal_seq = 0;
    c->_head = c->_tail = NULL;
    c->_flags = flags;
    return 0;
}

static bool owns_lock(const ps_condition_t *c)
{
    return c->_lock_off == (char *)&c->_own - (char *)c;
}

int ps_condition_destroy(ps_condition_t *c)
{
    if (!c)
        return EINVAL;
    if (waiters_present(&c->_waiters, &c->_seq, is_shared(c)))
        return EBUSY;
    return owns_lock(c) ? ps_rlock_destroy(&c->_own) : 0;
}

ps_condition_t *ps_condition_new(ps_rlock_t *lock, int flags)
{
    OBJECT_NEW(ps_condition_t, flags, ps_condition_init(obj_, lock, flags));
}

void ps_condition_free(ps_condition_t *c)
{
    if (c && ps_condition_destroy(c) == 0)
        object_free(c, sizeof *c, c->_flags);
}

int ps_condition_acquire(ps_condition_t *c, bool blocking, double timeout)
{
    return c ? ps_rlock_acquire(lock_of(c), blocking, timeout) : EINVAL;
}

int ps_condition_release(ps_condition_t *c)
{
    return c ? ps_rlock_release(lock_of(c)) : EINVAL;
}

/* ---- private: FIFO of stack nodes ---- */

static void unlink_waiter(ps_condition_t *c, struct ps_cond_waiter *w)
{
    *(w->prev ? &w->prev->next : &c->_head) = w->next;
    *(w->next ? &w->next->prev : &c->_tail) = w->prev;
}

static int wait_private(ps_condition_t *c, const deadline_t *d)
{
    struct ps_cond_waiter w = { .prev = c->_tail, .next = NULL, .notified = 0 };
    *(c->_tail ? &c->_tail->next : &c->_head) = &w;
    c->_tail = &w;

    ps_rlock_t *lock = lock_of(c);
    unsigned depth = rlock_release_all(lock);
    while (!__atomic_load_n(&w.notified, __ATOMIC_ACQUIRE))
        if (futex_wait(&w.notified, 0, deadline_ts(d), false) == ETIMEDOUT)
            break;
    int relock = rlock_restore(lock, depth);

    if (w.notified)             /* stable now: notify sets it under the lock */
        return relock;
    unlink_waiter(c, &w);
    return relock ? relock : ETIMEDOUT;
}

static void notify_private(ps_condition_t *c, unsigned n)
{
    for (; n > 0 && c->_head; n--) {
        struct ps_cond_waiter *w = c->_head;
        unlink_waiter(c, w);
        __atomic_store_n(&w->notified, 1, __ATOMIC_RELEASE);
        /* The node may be gone once the flag is seen: waking a futex at a dead
         * stack address is harmless, every futex sleeper re-checks its word. */
        futex_wake(&w->notified, 1, false);
    }
}

/* ---- shared: sequence word and signal count ---- */

static int wait_shared(ps_condition_t *c, const deadline_t *d)
{
    ps_rlock_t *lock = lock_of(c);
    unsigned start = c->_seq;
    unsigned depth = rlock_release_all(lock);
    for (;;) {
        unsigned awake_at = start;  /* _seq when it was last awake, outside the kernel */
        int slept = futex_wait(&c->_seq, start, deadline_ts(d), true);
        while (slept == EINTR) {
            awake_at = __atomic_load_n(&c->_seq, __ATOMIC_ACQUIRE);
            slept = futex_wait(&c->_seq, start, deadline_ts(d), true);
        }
        int relock = rlock_restore(lock, depth);
        /* Woken by the kernel after a notify: chosen. Found _seq moved instead of
         * sleeping: chosen if a notify since it was last awake left signals for
         * such latecomers. Older signals are spares, never taken here. */
        if (c->_seq != start && slept == 0 && c->_woken > 0) {
            c->_woken--;
            return relock;
        }
        if (slept == EAGAIN && c->_signals > 0 && (int)(c->_signal_seq - awake_at) > 0) {
            c->_signals--;
            return relock;
        }
        if (slept == ETIMEDOUT)
            return relock ? relock : ETIMEDOUT;
        start = c->_seq;        /* not chosen: wait for the next notify */
        rlock_release_all(lock);
    }
}

static void notify_shared(ps_condition_t *c, unsigned n)
{
    unsigned waiters = __atomic_load_n(&c->_waiters, __ATOMIC_RELAXED);
    if (n == 0 || waiters == c->_woken + c->_signals)
        return;                 /* nobody left to notify */
    /* Bumped first: a waiter between unlock and sleep now cannot fall asleep. */
    __atomic_fetch_add(&c->_seq, 1, __ATOMIC_RELEASE);
    unsigned woken = (unsigned)futex_wake(&c->_seq, n, true);
    c->_woken += woken;
    /* The rest of n goes to such latecomers (or to killed waiters, a spare). */
    unsigned latecomers = waiters - c->_woken - c->_signals;
    unsigned signals = n - woken < latecomers ? n - woken : latecomers;
    if (signals > 0) {
        c->_signals += signals;
        c->_signal_seq = c->_seq;
    }
}

/* Called with the lock held; _waiters (which destroy reads) counts the caller
 * until it has the lock back. */
static int wait_once(ps_condition_t *c, const deadline_t *d)
{
    __atomic_fetch_add(&c->_waiters, 1, __ATOMIC_RELAXED);
    int err = is_shared(c) ? wait_shared(c, d) : wait_private(c, d);
    unsigned others = __atomic_load_n(&c->_waiters, __ATOMIC_RELAXED) - 1;
    if (c->_woken > others)     /* woken ones that timed out first */
        c->_woken = others;
    if (c->_signals > others - c->_woken)   /* left for waiters that timed out or died */
        c->_signals = others - c->_woken;
    __atomic_fetch_sub(&c->_waiters, 1, __ATOMIC_RELEASE);
    return err;
}

int ps_condition_wait(ps_condition_t *c, double timeout)
{
    deadline_t d;
    if (!c || deadline_from_timeout(timeout, &d) != 0)
        return EINVAL;
    if (!rlock_held_by_me(lock_of(c)))
        return EPERM;
    return wait_once(c, &d);
}

int ps_condition_wait_for(ps_condition_t *c, bool (*predicate)(void *), void *arg,
                          double timeout)
{
    deadline_t d;
    if (!c || !predicate || deadline_from_timeout(timeout, &d) != 0)
        return EINVAL;
    if (!rlock_held_by_me(lock_of(c)))
        return EPERM;
    /* Later waits share the first deadline, as Python's wait_for does. */
    while (!predicate(arg)) {
        if (deadline_passed(&d))
            return ETIMEDOUT;
        int err = wait_once(c, &d);
        if (err && err != ETIMEDOUT)
            return err;
    }
    return 0;
}

int ps_condition_notify(ps_condition_t *c, unsigned n)
{
    if (!c)
        return EINVAL;
    if (!rlock_held_by_me(lock_of(c)))
        return EPERM;
    if (is_shared(c))
        notify_shared(c, n);
    else
        notify_private(c, n);
    return 0;
}

int ps_condition_notify_all(ps_condition_t *c)
{
    return ps_condition_notify(c, UINT_MAX);
}
