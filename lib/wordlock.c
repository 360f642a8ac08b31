#include "wordlock.h"

#include "futex.h"

/* Spinning briefly before sleeping lets a holder that is running on the other core
 * finish its critical section: far cheaper than a futex round trip. */
enum { SPINS = 100 };

static bool spin_until_free(unsigned *word)
{
    for (int i = 0; i < SPINS; i++) {
        if (__atomic_load_n(word, __ATOMIC_RELAXED) == 0)
            return true;
        cpu_relax();
    }
    return false;
}

int wordlock_wait(unsigned *word, const deadline_t *d)
{
    if (d->nowait)
        return EAGAIN;
    if (spin_until_free(word) && wordlock_try(word))
        return 0;
    while (__atomic_exchange_n(word, 2, __ATOMIC_ACQUIRE) != 0) {
        if (futex_wait(word, 2, deadline_ts(d), false) == ETIMEDOUT)
            return __atomic_exchange_n(word, 2, __ATOMIC_ACQUIRE) == 0 ? 0 : ETIMEDOUT;
    }
    return 0;
}

bool wordlock_release(unsigned *word)
{
    unsigned old = __atomic_exchange_n(word, 0, __ATOMIC_RELEASE);
    if (old == 2)
        futex_wake(word, 1, false);
    return old != 0;
}
