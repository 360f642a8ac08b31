/* SPDX-License-Identifier: MIT */
#include "futex.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
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

bool spin_until_ready(const struct spin_policy *p, bool (*ready)(void *), void *arg)
{
    unsigned gap = p->min_gap;
    for (unsigned spun = 0; spun < p->spins; spun += gap) {
        if (ready(arg))
            return true;
        for (unsigned i = 0; i < gap; i++)
            cpu_relax();
        if (gap < p->max_gap)
            gap *= 2;
    }
    for (unsigned i = 0; i < p->yields; i++) {
        if (ready(arg))
            return true;
        sched_yield();
    }
    return ready(arg);
}
