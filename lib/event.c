/* SPDX-License-Identifier: MIT */
/* Event: threading.Event.
 *
 * _state is the futex word: bit 0 is the flag, bit 1 says a waiter may be asleep,
 * the bits above count the sets (clear -> set transitions). A waiter remembers the
 * count it saw and returns 0 as soon as the count moves, so a set followed at once
 * by a clear still releases everyone who was waiting, even a waiter whose deadline
 * passes at that instant.
 *
 * Who wakes whom: a waiter sets SLEEPERS in the same word before it sleeps on it;
 * set changes the count and clears SLEEPERS in one compare-and-swap, and enters the
 * kernel only if SLEEPERS was set. That swap is the last time set reads or writes
 * the event: a waiter may return, destroy and unmap it at once, and what follows is
 * only a FUTEX_WAKE on its address, harmless on unmapped memory (glibc bug 12674).
 * Every sleeper wakes and returns, since the count moved; later waiters set
 * SLEEPERS again. No lock: a killed waiter leaves at most a stale SLEEPERS bit
 * behind (one extra wake) and its entry in _inside, which destroy discounts. */
#include <errno.h>
#include <limits.h>
#include <pysync/threading.h>

#include "futex.h"
#include "inside.h"
#include "object.h"
#include "timing.h"

/* SPINS: with set on another CPU a few microseconds later (ping-pong, hand-offs),
 * 200 pauses (~5-10 us here) catch most sets without a futex round trip. 'make
 * bench' (Event ping-pong) measured 2.07M round trips/s with the spin, and 1.17x
 * a mutex+condvar event (~47k) without it. */
enum { FLAG = 1u, SLEEPERS = 2u, ONE_SET = 4u, SPINS = 200 };

static bool is_shared(const ps_event_t *ev) { return ev->_flags & PS_SHARED; }

static unsigned sets_of(unsigned state) { return state / ONE_SET; }

int ps_event_init(ps_event_t *ev, int flags)
{
    if (!ev || (flags & ~PS_SHARED))
        return EINVAL;
    ev->_state = 0;
    ev->_inside = (struct ps__inside){ 0 };
    ev->_flags = flags;
    return 0;
}

int ps_event_destroy(ps_event_t *ev)
{
    if (!ev)
        return EINVAL;
    return inside_busy(&ev->_inside, is_shared(ev)) ? EBUSY : 0;
}

ps_event_t *ps_event_new(int flags)
{
    OBJECT_NEW(ps_event_t, flags, ps_event_init(obj_, flags));
}

void ps_event_free(ps_event_t *ev)
{
    OBJECT_FREE(ev, ps_event_destroy(ev));
}

int ps_event_set(ps_event_t *ev)
{
    if (!ev)
        return EINVAL;
    bool shared = is_shared(ev);        /* read before the swap: see above */
    unsigned old = __atomic_load_n(&ev->_state, __ATOMIC_RELAXED);
    do {
        if (old & FLAG)
            return 0;
    } while (!__atomic_compare_exchange_n(&ev->_state, &old,
                                          ((old & ~SLEEPERS) + ONE_SET) | FLAG, true,
                                          __ATOMIC_RELEASE, __ATOMIC_RELAXED));
    if (old & SLEEPERS)
        futex_wake(&ev->_state, UINT_MAX, shared);
    return 0;
}

int ps_event_clear(ps_event_t *ev)
{
    if (!ev)
        return EINVAL;
    __atomic_fetch_and(&ev->_state, ~FLAG, __ATOMIC_RELEASE);
    return 0;
}

bool ps_event_is_set(const ps_event_t *ev)
{
    return ev && (__atomic_load_n(&ev->_state, __ATOMIC_ACQUIRE) & FLAG);
}

/* True if a set came since the caller saw the state `seen`. */
static bool set_since(ps_event_t *ev, unsigned seen)
{
    return sets_of(__atomic_load_n(&ev->_state, __ATOMIC_ACQUIRE)) != sets_of(seen);
}

static bool spin_for_set(ps_event_t *ev, unsigned seen)
{
    for (int i = 0; i < SPINS; i++) {
        if (set_since(ev, seen))
            return true;
        cpu_relax();
    }
    return false;
}

/* Sleeps until a set comes or the deadline passes; true if the set came. */
static bool sleep_for_set(ps_event_t *ev, unsigned seen, const deadline_t *d)
{
    unsigned state = __atomic_load_n(&ev->_state, __ATOMIC_ACQUIRE);
    while (sets_of(state) == sets_of(seen)) {
        if (!(state & SLEEPERS) &&
            !__atomic_compare_exchange_n(&ev->_state, &state, state | SLEEPERS, false,
                                         __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE))
            continue;                   /* state changed: look again */
        if (futex_wait(&ev->_state, state | SLEEPERS, deadline_ts(d),
                       is_shared(ev)) == ETIMEDOUT)
            return set_since(ev, seen); /* a set at the deadline still counts */
        state = __atomic_load_n(&ev->_state, __ATOMIC_ACQUIRE);
    }
    return true;
}

int ps_event_wait(ps_event_t *ev, double timeout)
{
    deadline_t d;
    if (!ev || deadline_from_timeout(timeout, &d) != 0)
        return EINVAL;
    unsigned seen = __atomic_load_n(&ev->_state, __ATOMIC_ACQUIRE);
    if (seen & FLAG)
        return 0;
    int entry = inside_enter(&ev->_inside, is_shared(ev));
    bool was_set = spin_for_set(ev, seen) || sleep_for_set(ev, seen, &d);
    inside_leave(&ev->_inside, entry);
    return was_set ? 0 : ETIMEDOUT;
}
