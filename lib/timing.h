/* SPDX-License-Identifier: MIT */
/* Deadlines for timed waits. Python timeouts (double seconds) become absolute
 * CLOCK_MONOTONIC deadlines once, at the start of a wait, so that retries after
 * spurious wake-ups or signals never stretch the total wait. */
#ifndef PS_TIMING_H
#define PS_TIMING_H

#include <stdbool.h>
#include <time.h>

typedef struct deadline {
    bool forever;
    bool nowait;            /* blocking == false: fail with EAGAIN, never sleep */
    struct timespec at;     /* CLOCK_MONOTONIC, valid unless forever or nowait */
} deadline_t;

/* EINVAL for NaN; negative and infinite timeouts wait forever. */
int  deadline_from_timeout(double timeout, deadline_t *d);
/* The acquire(blocking, timeout) rule: blocking == false with a timeout >= 0 (or
 * NaN) is EINVAL, as in Python. */
int  deadline_for_acquire_slow(bool blocking, double timeout, deadline_t *d);
static inline int deadline_for_acquire(bool blocking, double timeout, deadline_t *d)
{
    if (blocking && timeout < 0) {  /* the common case, inline: no clock read */
        d->forever = true;
        d->nowait = false;
        return 0;
    }
    return deadline_for_acquire_slow(blocking, timeout, d);
}
/* The same check, cheap enough for a lock's fast path. */
static inline bool acquire_args_ok(bool blocking, double timeout)
{
    return timeout == timeout && (blocking || timeout < 0);     /* not NaN */
}
bool deadline_passed(const deadline_t *d);
/* NULL for forever, else &d->at: the form futex and *_clocklock take. */
static inline const struct timespec *deadline_ts(const deadline_t *d)
{
    return d->forever ? NULL : &d->at;
}

#endif
