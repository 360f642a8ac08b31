/* SPDX-License-Identifier: MIT */
/* Barrier: threading.Barrier.
 *
 * _mutex guards every field (robust when shared). Waiters sleep on _seq, which
 * every state change bumps (trip, break, reset), so a waiter that is about to
 * sleep when the change happens finds _seq moved and does not sleep.
 *
 * A waiter remembers its round (_gen). When _gen has moved on, its round ended
 * either by a trip (success) or by a reset (EPIPE); bit (round % 64) of
 * _reset_rounds says which. That bit could only be stale if 64 rounds ended before
 * the waiter took the mutex back. Within a round, _broken (a timeout or abort)
 * sends everyone EPIPE until reset. Unlike CPython there is no draining phase: a
 * new round may fill while the last round's waiters are still leaving, so a
 * killed waiter can never hold the barrier in such a phase. A killed waiter does
 * still count as arrived in its round; reset clears it.
 *
 * _inside records the callers inside wait (of any round), for destroy. It changes
 * only under the mutex, and a waiter leaves it just before its final unlock, so
 * destroy, which takes the mutex too, sees either the waiter inside or a waiter
 * whose only access left is that unlock (glibc's unlock touches nothing after the
 * store that frees the mutex but a FUTEX_WAKE on its address). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pysync/threading.h>

#include "debug.h"
#include "futex.h"
#include "inside.h"
#include "object.h"
#include "pmutex.h"
#include "timing.h"

static bool is_shared(const ps_barrier_t *b) { return b->_flags & PS_SHARED; }

static unsigned long long round_bit(unsigned gen) { return 1ull << (gen % 64); }

int ps_barrier_init(ps_barrier_t *b, unsigned parties, void (*action)(void *), void *arg,
                    double timeout, int flags)
{
    if (!b || parties == 0 || isnan(timeout) || (flags & ~PS_SHARED))
        return EINVAL;
    b->_seq = b->_gen = b->_count = b->_broken = 0;
    b->_inside = (struct ps__inside){ 0 };
    b->_reset_rounds = 0;
    b->_parties = parties;
    b->_action = action;
    b->_arg = arg;
    b->_timeout = timeout;
    b->_flags = flags;
    return pmutex_init(&b->_mutex, is_shared(b));
}

/* A holder that died inside action or mid-update leaves the round undefined:
 * break it, so that everyone hears about it and reset recovers. */
static void lock(ps_barrier_t *b)
{
    if (pmutex_lock_repair(&b->_mutex))
        b->_broken = 1;
}

static void unlock(ps_barrier_t *b) { pthread_mutex_unlock(&b->_mutex); }

/* Called with the mutex held, like everything that changes the fields. */
static void wake_all(ps_barrier_t *b)
{
    PS_ASSERT(pmutex_held_by_me(&b->_mutex));
    __atomic_fetch_add(&b->_seq, 1, __ATOMIC_RELEASE);
    futex_wake(&b->_seq, UINT_MAX, is_shared(b));
}

int ps_barrier_destroy(ps_barrier_t *b)
{
    if (!b)
        return EINVAL;
    int err = pmutex_trylock(&b->_mutex);
    if (err == EBUSY)
        return EBUSY;           /* a caller is inside, maybe running the action */
    if (err == EOWNERDEAD)
        b->_broken = 1;
    bool busy = inside_busy(&b->_inside, is_shared(b));
    unlock(b);
    if (busy)
        return EBUSY;
    pthread_mutex_destroy(&b->_mutex);
    return 0;
}

ps_barrier_t *ps_barrier_new(unsigned parties, void (*action)(void *), void *arg,
                             double timeout, int flags)
{
    OBJECT_NEW(ps_barrier_t, flags, ps_barrier_init(obj_, parties, action, arg, timeout, flags));
}

void ps_barrier_free(ps_barrier_t *b)
{
    OBJECT_FREE(b, ps_barrier_destroy(b));
}

/* The last arrival: run the action, then release the round. */
static void trip(ps_barrier_t *b)
{
    PS_ASSERT(pmutex_held_by_me(&b->_mutex));
    if (b->_action)
        b->_action(b->_arg);
    b->_reset_rounds &= ~round_bit(b->_gen);
    b->_gen++;
    b->_count = 0;
    wake_all(b);
}

static void break_barrier(ps_barrier_t *b)
{
    b->_broken = 1;
    wake_all(b);
}

/* Called and returns with the mutex held. */
static int wait_for_round(ps_barrier_t *b, unsigned gen, const deadline_t *d)
{
    PS_ASSERT(pmutex_held_by_me(&b->_mutex));
    for (;;) {
        unsigned seq = b->_seq;
        unlock(b);
        int slept = futex_wait(&b->_seq, seq, deadline_ts(d), is_shared(b));
        lock(b);
        if (b->_gen != gen)
            return b->_reset_rounds & round_bit(gen) ? EPIPE : 0;
        if (b->_broken)
            return EPIPE;
        if (slept == ETIMEDOUT) {
            break_barrier(b);
            return ETIMEDOUT;
        }
    }
}

int ps_barrier_wait(ps_barrier_t *b, double timeout, unsigned *index)
{
    deadline_t d;
    if (!b)
        return EINVAL;
    if (deadline_from_timeout(timeout < 0 ? b->_timeout : timeout, &d) != 0)
        return EINVAL;
    lock(b);
    if (b->_broken) {
        unlock(b);
        return EPIPE;
    }
    int entry = inside_enter(&b->_inside, is_shared(b));
    unsigned gen = b->_gen, my_index = b->_count++;
    int err = 0;
    if (b->_count == b->_parties)
        trip(b);
    else
        err = wait_for_round(b, gen, &d);
    inside_leave(&b->_inside, entry);
    unlock(b);
    if (err == 0 && index)
        *index = my_index;
    return err;
}

int ps_barrier_reset(ps_barrier_t *b)
{
    if (!b)
        return EINVAL;
    lock(b);
    b->_reset_rounds |= round_bit(b->_gen);
    b->_gen++;
    b->_count = 0;
    b->_broken = 0;
    wake_all(b);
    unlock(b);
    return 0;
}

int ps_barrier_abort(ps_barrier_t *b)
{
    if (!b)
        return EINVAL;
    lock(b);
    break_barrier(b);
    unlock(b);
    return 0;
}

unsigned ps_barrier_parties(const ps_barrier_t *b)
{
    return b ? b->_parties : 0;
}

/* The queries take the mutex: the fields change under it. */
unsigned ps_barrier_n_waiting(const ps_barrier_t *b)
{
    if (!b)
        return 0;
    ps_barrier_t *mb = (ps_barrier_t *)b;
    lock(mb);
    unsigned n = mb->_broken ? 0 : mb->_count;
    unlock(mb);
    return n;
}

bool ps_barrier_broken(const ps_barrier_t *b)
{
    if (!b)
        return false;
    ps_barrier_t *mb = (ps_barrier_t *)b;
    lock(mb);
    bool broken = mb->_broken;
    unlock(mb);
    return broken;
}
