/* SPDX-License-Identifier: MIT */
/* Semaphore and BoundedSemaphore: threading.Semaphore / BoundedSemaphore.
 *
 * _word holds the value in its low half, which is also the futex word, and the
 * number of acquirers that may sleep in its high half. An acquirer adds itself to
 * the high half before it sleeps (the kernel re-checks value == 0 as it sleeps);
 * a releaser adds to the value and learns whether anyone may sleep in the same
 * compare-and-swap, so no wake-up is lost and nobody enters the kernel when
 * nobody waits.
 *
 * That swap is the releaser's last access: an acquirer may take the value, return,
 * destroy and unmap the semaphore at once, and the releaser then only makes a
 * FUTEX_WAKE on its address, harmless on unmapped memory (glibc bug 12674).
 * Nothing here is a lock, so a process killed anywhere leaves at most a stale
 * sleeper count (extra wakes) and its entry in _inside, which destroy discounts. */
#include <errno.h>
#include <limits.h>
#include <pysync/threading.h>

#include "futex.h"
#include "inside.h"
#include "object.h"
#include "timing.h"

#define ONE_SLEEPER (1ull << 32)
#define VALUE(word) ((unsigned)((word) & 0xffffffffu))

static bool is_shared(const ps_semaphore_t *s) { return s->_flags & PS_SHARED; }

/* The value half of _word, as the kernel sees it. */
static unsigned *value_word(ps_semaphore_t *s)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return (unsigned *)&s->_word;
#else
    return (unsigned *)&s->_word + 1;
#endif
}

static int init(ps_semaphore_t *s, int value, int flags, bool bounded)
{
    if (!s || value < 0 || (flags & ~PS_SHARED))
        return EINVAL;
    s->_word = (unsigned)value;
    s->_bound = bounded ? (unsigned)value : (unsigned)INT_MAX;
    s->_flags = flags;
    s->_inside = (struct ps__inside){ 0 };
    return 0;
}

int ps_semaphore_init(ps_semaphore_t *s, int value, int flags)
{
    return init(s, value, flags, false);
}

int ps_bounded_semaphore_init(ps_semaphore_t *s, int value, int flags)
{
    return init(s, value, flags, true);
}

int ps_semaphore_destroy(ps_semaphore_t *s)
{
    if (!s)
        return EINVAL;
    return inside_busy(&s->_inside, is_shared(s)) ? EBUSY : 0;
}

ps_semaphore_t *ps_semaphore_new(int value, int flags)
{
    OBJECT_NEW(ps_semaphore_t, flags, init(obj_, value, flags, false));
}

ps_semaphore_t *ps_bounded_semaphore_new(int value, int flags)
{
    OBJECT_NEW(ps_semaphore_t, flags, init(obj_, value, flags, true));
}

void ps_semaphore_free(ps_semaphore_t *s)
{
    OBJECT_FREE(s, ps_semaphore_destroy(s));
}

static bool try_take(ps_semaphore_t *s)
{
    unsigned long long w = __atomic_load_n(&s->_word, __ATOMIC_RELAXED);
    while (VALUE(w) > 0)
        if (__atomic_compare_exchange_n(&s->_word, &w, w - 1, true, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED))
            return true;
    return false;
}

static int wait_and_take(ps_semaphore_t *s, const deadline_t *d)
{
    bool took;
    int err = 0;
    __atomic_fetch_add(&s->_word, ONE_SLEEPER, __ATOMIC_SEQ_CST);
    while (!(took = try_take(s)) && err != ETIMEDOUT)
        err = futex_wait(value_word(s), 0, deadline_ts(d), is_shared(s));
    __atomic_fetch_sub(&s->_word, ONE_SLEEPER, __ATOMIC_RELAXED);
    return took ? 0 : ETIMEDOUT;
}

int ps_semaphore_acquire(ps_semaphore_t *s, bool blocking, double timeout)
{
    deadline_t d;
    if (!s || !acquire_args_ok(blocking, timeout))
        return EINVAL;
    if (try_take(s))
        return 0;
    deadline_for_acquire(blocking, timeout, &d);
    if (d.nowait)
        return EAGAIN;
    int entry = inside_enter(&s->_inside, is_shared(s));
    int err = wait_and_take(s, &d);
    inside_leave(&s->_inside, entry);
    return err;
}

int ps_semaphore_release(ps_semaphore_t *s, unsigned n)
{
    if (!s || n == 0)
        return EINVAL;
    unsigned bound = s->_bound;         /* read before the swap: see above */
    bool shared = is_shared(s);
    unsigned long long w = __atomic_load_n(&s->_word, __ATOMIC_RELAXED);
    do {
        if (n > bound || VALUE(w) > bound - n)
            return EOVERFLOW;   /* all n or nothing */
    } while (!__atomic_compare_exchange_n(&s->_word, &w, w + n, true, __ATOMIC_SEQ_CST,
                                          __ATOMIC_RELAXED));
    if (w >= ONE_SLEEPER)
        futex_wake(value_word(s), n, shared);
    return 0;
}

int ps_semaphore_value(const ps_semaphore_t *s)
{
    return s ? (int)VALUE(__atomic_load_n(&s->_word, __ATOMIC_RELAXED)) : 0;
}
