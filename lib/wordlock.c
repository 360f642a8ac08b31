/* SPDX-License-Identifier: MIT */
#include "wordlock.h"

#include <errno.h>

#include "futex.h"

/* No spinning before sleeping: measured here, a waiter spinning on the word pulls
 * the cache line away from the holder and lowers contended throughput. */
int wordlock_wait(unsigned *word, const deadline_t *d)
{
    while (__atomic_exchange_n(word, 2, __ATOMIC_ACQUIRE) != 0) {
        if (futex_wait(word, 2, deadline_ts(d), false) == ETIMEDOUT)
            return __atomic_exchange_n(word, 2, __ATOMIC_ACQUIRE) == 0 ? 0 : ETIMEDOUT;
    }
    return 0;
}

void wordlock_wake(unsigned *word)
{
    futex_wake(word, 1, false);
}
