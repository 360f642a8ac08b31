/* Semaphore and BoundedSemaphore: threading.Semaphore / BoundedSemaphore.
 *
 * _value is the count and the futex word; _waiters counts threads that may sleep
 * on it. An acquirer announces itself in _waiters before it sleeps (and the
 * kernel re-checks _value == 0 as it sleeps); a releaser adds to _value before it
 * looks at _waiters. Both are sequentially consistent read-modify-writes, so
 * either the releaser sees the waiter or the waiter sees the new value: no lost
 * wake-up, and no futex call when nobody waits. Nothing here is a lock, so a
 * process killed anywhere leaves at most a stale _waiters count (an extra wake). */
#include <errno.h>
#include <limits.h>
#include <pysync/threading.h>

#include "futex.h"
#include "object.h"
#include "timing.h"

static bool is_shared(const ps_semaphore_t *s) { return s->_flags & PS_SHARED; }

static int init(ps_semaphore_t *s, int value, int flags, bool bounded)
{
    if (!s || value < 0 || (flags & ~PS_SHARED))
        return EINVAL;
    s->_value = (unsigned)value;
    s->_waiters = 0;
    s->_bound = bounded ? (unsigned)value : (unsigned)INT_MAX;
    s->_flags = flags;
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
    return waiters_present(&s->_waiters, &s->_value, is_shared(s)) ? EBUSY : 0;
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
    if (s && ps_semaphore_destroy(s) == 0)
        object_free(s, sizeof *s, s->_flags);
}

static bool try_take(ps_semaphore_t *s)
{
    unsigned v = __atomic_load_n(&s->_value, __ATOMIC_RELAXED);
    while (v > 0)
        if (__atomic_compare_exchange_n(&s->_value, &v, v - 1, true, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED))
            return true;
    return false;
}

static int wait_and_take(ps_semaphore_t *s, const deadline_t *d)
{
    bool took;
    int err = 0;
    __atomic_fetch_add(&s->_waiters, 1, __ATOMIC_SEQ_CST);
    while (!(took = try_take(s)) && err != ETIMEDOUT)
        err = futex_wait(&s->_value, 0, deadline_ts(d), is_shared(s));
    __atomic_fetch_sub(&s->_waiters, 1, __ATOMIC_RELAXED);
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
    return wait_and_take(s, &d);
}

int ps_semaphore_release(ps_semaphore_t *s, unsigned n)
{
    if (!s || n == 0)
        return EINVAL;
    unsigned v = __atomic_load_n(&s->_value, __ATOMIC_RELAXED);
    do {
        if (n > s->_bound || v > s->_bound - n)
            return EOVERFLOW;   /* all n or nothing */
    } while (!__atomic_compare_exchange_n(&s->_value, &v, v + n, true, __ATOMIC_SEQ_CST,
                                          __ATOMIC_RELAXED));
    if (__atomic_load_n(&s->_waiters, __ATOMIC_SEQ_CST))
        futex_wake(&s->_value, n, is_shared(s));
    return 0;
}

int ps_semaphore_value(const ps_semaphore_t *s)
{
    return s ? (int)__atomic_load_n(&s->_value, __ATOMIC_RELAXED) : 0;
}
