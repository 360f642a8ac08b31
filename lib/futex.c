/* SPDX-License-Identifier: MIT */
#include "futex.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int futex_wait(unsigned *word, unsigned expected, const struct timespec *deadline,
               bool shared)
{
    int op = FUTEX_WAIT_BITSET | (shared ? 0 : FUTEX_PRIVATE_FLAG);
    int saved = errno, err = 0;
    /* Without FUTEX_CLOCK_REALTIME, a WAIT_BITSET deadline is on CLOCK_MONOTONIC. */
    if (syscall(SYS_futex, word, op, expected, deadline, NULL, FUTEX_BITSET_MATCH_ANY) != 0)
        err = errno;
    errno = saved;
    return err;
}

int futex_wake(unsigned *word, unsigned n, bool shared)
{
    int op = FUTEX_WAKE | (shared ? 0 : FUTEX_PRIVATE_FLAG);
    int saved = errno;
    long woken = syscall(SYS_futex, word, op, n > INT_MAX ? INT_MAX : (int)n, NULL, NULL, 0);
    errno = saved;
    return woken > 0 ? (int)woken : 0;
}
