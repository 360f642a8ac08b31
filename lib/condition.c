/* SPDX-License-Identifier: MIT */
/* Condition: threading.Condition.
 *
 * Every waiter has a word of its own. notify(n) picks the n waiters that have
 * waited longest, sets their words to NOTIFIED and wakes each one on its word;
 * a waiter sleeps until its word says NOTIFIED or its deadline passes, then takes
 * the lock back and leaves the queue.
 *   Private: the word is in a node on the waiter's stack, in a FIFO list (as
 *   CPython keeps a deque of waiter locks).
 *   Shared: other processes cannot see a stack, so the condition holds
 *   PS_CONDITION_SHARED_WAITERS slots; a waiter takes a free slot and a ticket
 *   (its arrival order), and notify picks the oldest tickets. Bit i of _used is
 *   set while slot i may be taken (set before, cleared after the slot's state).
 *
 * Invariants. Everything but the futex sleep happens under the condition's lock,
 * which wait and notify require (destroy takes it too):
 *   1. Only notify moves a word from WAITING to NOTIFIED, and only the waiter
 *      itself, after taking the lock back, leaves the queue. So a waiter whose
 *      word was set returns 0 even if its deadline passed meanwhile: no notify
 *      is lost, and none goes to a waiter that has timed out and left.
 *   2. notify(n) sets at most n words, each of a live waiter. Shared: when the
 *      kernel finds nobody asleep on a word, notify asks whether the waiter's
 *      thread still exists; a dead one's slot is freed and not counted, so a
 *      killed waiter never absorbs a notify meant for a live one.
 *   3. A waiter re-reads its own word after every return from futex_wait, so a
 *      notify that lands while a signal handler runs is still seen.
 *   4. The waiter needs the lock to return, and notify sets and wakes the word
 *      under the lock: a waker never touches a condition whose waiter has
 *      returned, let alone destroyed it.
 *   5. destroy answers EBUSY while a live waiter is queued (it may be re-taking
 *      the lock, or stopped, for any time) and then changes nothing a waiter
 *      could see; it wakes nobody.
 * A shared condition takes at most PS_CONDITION_SHARED_WAITERS waiters at once;
 * one more gets EAGAIN at once (ps_condition(3)). */
#include <errno.h>
#include <limits.h>

#include "debug.h"
#include "futex.h"
#include "inside.h"
#include "object.h"
#include "rlock.h"
#include "timing.h"

enum { FREE, WAITING, NOTIFIED };

struct ps__cond_waiter {
    struct ps__cond_waiter *prev, *next;
    unsigned state;             /* futex word */
};

static bool is_shared(const ps_condition_t *c) { return c->_flags & PS_SHARED; }

static ps_rlock_t *lock_of(ps_condition_t *c)
{
    return (ps_rlock_t *)((char *)c + c->_lock_off);
}

static bool owns_lock(const ps_condition_t *c)
{
    return c->_lock_off == (char *)&c->_own - (char *)c;
}

int ps_condition_init(ps_condition_t *c, ps_rlock_t *lock, int flags)
{
    if (!c || (flags & ~PS_SHARED))
        return EINVAL;
    if (lock && (lock->_flags & PS_SHARED) != (flags & PS_SHARED))
        return EINVAL;          /* a shared condition needs a shared lock, and back */
    if (!lock) {
        int err = ps_rlock_init(&c->_own, flags);
        if (err)
            return err;
        lock = &c->_own;
    }
    /* An offset, not a pointer: a shared condition and its lock in one segment stay
     * paired wherever each process maps that segment. */
    c->_lock_off = (char *)lock - (char *)c;
    c->_flags = flags;
    c->_waiters = 0;
    c->_head = c->_tail = NULL;
    c->_next_ticket = 0;
    c->_used = 0;
    for (int i = 0; i < PS_CONDITION_SHARED_WAITERS; i++)
        c->_slots[i] = (struct ps__cond_slot){ FREE, 0, 0 };
    return 0;
}

/* ---- the waiter's word ---- */

static void sleep_until_notified(unsigned *word, const deadline_t *d, bool shared)
{
    while (__atomic_load_n(word, __ATOMIC_ACQUIRE) == WAITING)
        if (futex_wait(word, WAITING, deadline_ts(d), shared) == ETIMEDOUT)
            return;
}

/* Returns how many the kernel woke: 0 if the waiter was not asleep. */
static int notify_word(unsigned *word, bool shared)
{
    __atomic_store_n(word, NOTIFIED, __ATOMIC_RELEASE);
    return futex_wake(word, 1, shared);
}

/* What wait returns once the lock is back (relock: 0 or EOWNERDEAD). */
static int wait_result(bool notified, int relock)
{
    return notified || relock ? relock : ETIMEDOUT;
}

/* ---- private: FIFO of stack nodes ---- */

static void unlink_waiter(ps_condition_t *c, struct ps__cond_waiter *w)
{
    *(w->prev ? &w->prev->next : &c->_head) = w->next;
    *(w->next ? &w->next->prev : &c->_tail) = w->prev;
}

static int wait_private(ps_condition_t *c, const deadline_t *d)
{
    struct ps__cond_waiter w = { .prev = c->_tail, .next = NULL, .state = WAITING };
    *(c->_tail ? &c->_tail->next : &c->_head) = &w;
    c->_tail = &w;
    c->_waiters++;

    ps_rlock_t *lock = lock_of(c);
    unsigned depth = rlock_release_all(lock);
    sleep_until_notified(&w.state, d, false);
    int relock = rlock_restore(lock, depth);

    bool notified = w.state == NOTIFIED;    /* stable: notify sets it under the lock */
    if (!notified)
        unlink_waiter(c, &w);               /* notify unlinked the notified ones */
    c->_waiters--;
    return wait_result(notified, relock);
}

static void notify_private(ps_condition_t *c, unsigned n)
{
    PS_ASSERT(rlock_held_by_me(lock_of(c)));
    for (; n > 0 && c->_head; n--) {
        struct ps__cond_waiter *w = c->_head;
        unlink_waiter(c, w);
        notify_word(&w->state, false);  /* the node lives until its waiter has the lock */
    }
}

static bool busy_private(ps_condition_t *c)
{
    return c->_waiters > 0;
}

/* ---- shared: slots with tickets ---- */

static void free_slot(ps_condition_t *c, struct ps__cond_slot *s)
{
    PS_ASSERT(rlock_held_by_me(lock_of(c)));
    __atomic_store_n(&s->state, FREE, __ATOMIC_RELAXED);
    c->_used &= ~(1ull << (s - c->_slots));
}

/* A taken slot whose waiter has died (killed while waiting) is freed. */
static bool slot_owner_dead(ps_condition_t *c, struct ps__cond_slot *s)
{
    if (caller_alive(s->id))
        return false;
    free_slot(c, s);
    return true;
}

/* Index of a free slot, or -1 when live waiters hold them all. */
static int find_free_slot(ps_condition_t *c)
{
    if (~c->_used)
        return __builtin_ctzll(~c->_used);
    /* All marked: some may be free (a crash between state and mark) or dead. */
    for (int i = 0; i < PS_CONDITION_SHARED_WAITERS; i++) {
        struct ps__cond_slot *s = &c->_slots[i];
        if (s->state == FREE || slot_owner_dead(c, s))
            return i;
    }
    return -1;
}

static struct ps__cond_slot *claim_slot(ps_condition_t *c)
{
    PS_ASSERT(rlock_held_by_me(lock_of(c)));
    int i = find_free_slot(c);
    if (i < 0)
        return NULL;
    struct ps__cond_slot *s = &c->_slots[i];
    s->ticket = c->_next_ticket++;
    s->id = caller_id();
    c->_used |= 1ull << i;
    /* Published last: a waiter killed before this store leaves a free slot. */
    __atomic_store_n(&s->state, WAITING, __ATOMIC_RELEASE);
    return s;
}

static int wait_shared(ps_condition_t *c, const deadline_t *d)
{
    struct ps__cond_slot *s = claim_slot(c);
    if (!s)
        return EAGAIN;
    ps_rlock_t *lock = lock_of(c);
    unsigned depth = rlock_release_all(lock);
    sleep_until_notified(&s->state, d, true);
    int relock = rlock_restore(lock, depth);

    bool notified = s->state == NOTIFIED;   /* stable: notify sets it under the lock */
    free_slot(c, s);
    return wait_result(notified, relock);
}

/* The waiting slot with the oldest ticket among *candidates, which it leaves out
 * of *candidates from then on; NULL if none. */
static struct ps__cond_slot *oldest_waiting(ps_condition_t *c, unsigned long long *candidates)
{
    struct ps__cond_slot *oldest = NULL;
    unsigned oldest_age = 0;
    for (unsigned long long bits = *candidates; bits; bits &= bits - 1) {
        struct ps__cond_slot *s = &c->_slots[__builtin_ctzll(bits)];
        unsigned age = c->_next_ticket - s->ticket;     /* wraps safely */
        if (s->state != WAITING)
            *candidates &= ~(1ull << (s - c->_slots));
        else if (!oldest || age > oldest_age)
            oldest = s, oldest_age = age;
    }
    if (oldest)
        *candidates &= ~(1ull << (oldest - c->_slots));
    return oldest;
}

static void notify_shared(ps_condition_t *c, unsigned n)
{
    PS_ASSERT(rlock_held_by_me(lock_of(c)));
    unsigned long long candidates = c->_used;
    struct ps__cond_slot *s;
    while (n > 0 && (s = oldest_waiting(c, &candidates))) {
        /* Nobody asleep on the word: the waiter is on its way (it will see the
         * word) or dead, and then the notify is for the next one. */
        if (notify_word(&s->state, true) == 0 && slot_owner_dead(c, s))
            continue;
        n--;
    }
}

static bool busy_shared(ps_condition_t *c)
{
    for (unsigned long long bits = c->_used; bits; bits &= bits - 1) {
        struct ps__cond_slot *s = &c->_slots[__builtin_ctzll(bits)];
        if (s->state != FREE && !slot_owner_dead(c, s))
            return true;
    }
    return false;
}

/* ---- public API ---- */

int ps_condition_destroy(ps_condition_t *c)
{
    if (!c)
        return EINVAL;
    ps_rlock_t *lock = lock_of(c);
    int err = ps_rlock_acquire(lock, false, PS_FOREVER);
    if (err == EAGAIN)
        return EBUSY;           /* another thread holds the lock: in use */
    if (err && err != EOWNERDEAD)
        return err;
    bool busy = is_shared(c) ? busy_shared(c) : busy_private(c);
    ps_rlock_release(lock);
    if (busy)
        return EBUSY;
    return owns_lock(c) ? ps_rlock_destroy(&c->_own) : 0;
}

ps_condition_t *ps_condition_new(ps_rlock_t *lock, int flags)
{
    OBJECT_NEW(ps_condition_t, flags, ps_condition_init(obj_, lock, flags));
}

void ps_condition_free(ps_condition_t *c)
{
    OBJECT_FREE(c, ps_condition_destroy(c));
}

int ps_condition_acquire(ps_condition_t *c, bool blocking, double timeout)
{
    return c ? ps_rlock_acquire(lock_of(c), blocking, timeout) : EINVAL;
}

int ps_condition_release(ps_condition_t *c)
{
    return c ? ps_rlock_release(lock_of(c)) : EINVAL;
}

/* Called with the lock held. */
static int wait_once(ps_condition_t *c, const deadline_t *d)
{
    PS_ASSERT(rlock_held_by_me(lock_of(c)));
    return is_shared(c) ? wait_shared(c, d) : wait_private(c, d);
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
