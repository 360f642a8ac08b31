/* Event: threading.Event.
 *
 * _state is the futex word: bit 0 is the flag, the bits above count the sets
 * (clear -> set transitions). A waiter remembers the state it saw and returns 0 as
 * soon as the state shows the flag or a newer set, so a set followed at once by a
 * clear still releases everyone who was waiting, even a waiter whose deadline
 * passes at that instant. _waiters is announced before sleeping and read by set
 * after it changes _state (both sequentially consistent), so set only enters the
 * kernel when somebody may sleep. No lock: a killed waiter leaves only a stale
 * _waiters count behind. */
#include <errno.h>
#include <limits.h>
#include <pysync/threading.h>

#include "futex.h"
#include "object.h"
#include "timing.h"

enum { FLAG = 1u, ONE_SET = 2u, SPINS = 200 };

static bool is_shared(const ps_event_t *ev) { return ev->_flags & PS_SHARED; }

int ps_event_init(ps_event_t *ev, int flags)
{
    if (!ev || (flags & ~PS_SHARED))
        return EINVAL;
    ev->_state = 0;
    ev->_waiters = 0;
    ev->_flags = flags;
    return 0;
}

int ps_event_destroy(ps_event_t *ev)
{
    if (!ev)
        return EINVAL;
    return waiters_present(&ev->_waiters, &ev->_state, is_shared(ev)) ? EBUSY : 0;
}

ps_event_t *ps_event_new(int flags)
{
    OBJECT_NEW(ps_event_t, flags, ps_event_init(obj_, flags));
}

void ps_event_free(ps_event_t *ev)
{
    if (ev && ps_event_destroy(ev) == 0)
        object_free(ev, sizeof *ev, ev->_flags);
}

int ps_event_set(ps_event_t *ev)
{
    if (!ev)
        return EINVAL;
    unsigned old = __atomic_load_n(&ev->_state, __ATOMIC_RELAXED);
    do {
        if (old & FLAG)
            return 0;
    } while (!__atomic_compare_exchange_n(&ev->_state, &old, (old + ONE_SET) | FLAG, true,
                                          __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
    if (__atomic_load_n(&ev->_waiters, __ATOMIC_SEQ_CST))
        futex_wake(&ev->_state, UINT_MAX, is_shared(ev));
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

/* An event is often set by a thread running on another core a few microseconds
 * later (ping-pong, hand-offs): a short spin saves both sides a futex round trip,
 * which costs ~10 us on this kind of VM. True if the state changed. */
static bool spin_while_equal(unsigned *state, unsigned seen)
{
    for (int i = 0; i < SPINS; i++) {
        if (__atomic_load_n(state, __ATOMIC_ACQUIRE) != seen)
            return true;
        cpu_relax();
    }
    return false;
}

int ps_event_wait(ps_event_t *ev, double timeout)
{
    deadline_t d;
    if (!ev || deadline_from_timeout(timeout, &d) != 0)
        return EINVAL;
    unsigned seen = __atomic_load_n(&ev->_state, __ATOMIC_ACQUIRE);
    if (seen & FLAG)
        return 0;
    if (spin_while_equal(&ev->_state, seen))
        return 0;
    int err = 0;
    __atomic_fetch_add(&ev->_waiters, 1, __ATOMIC_SEQ_CST);
    /* Only a set changes the state while the flag is down (clear leaves it alone). */
    while (__atomic_load_n(&ev->_state, __ATOMIC_ACQUIRE) == seen && err != ETIMEDOUT)
        err = futex_wait(&ev->_state, seen, deadline_ts(&d), is_shared(ev));
    bool was_set = __atomic_load_n(&ev->_state, __ATOMIC_ACQUIRE) != seen;
    __atomic_fetch_sub(&ev->_waiters, 1, __ATOMIC_RELAXED);
    return was_set ? 0 : ETIMEDOUT;
}
