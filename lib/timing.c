/* SPDX-License-Identifier: MIT */
#include "timing.h"

#include <errno.h>
#include <math.h>

int deadline_from_timeout(double timeout, deadline_t *d)
{
    if (isnan(timeout))
        return EINVAL;
    d->nowait = false;
    d->forever = timeout < 0 || isinf(timeout);
    if (d->forever)
        return 0;
    clock_gettime(CLOCK_MONOTONIC, &d->at);
    if (timeout > 1e9)              /* ~31 years: as good as forever, no overflow */
        timeout = 1e9;
    time_t secs = (time_t)timeout;
    long nsec = d->at.tv_nsec + (long)((timeout - (double)secs) * 1e9);
    d->at.tv_sec += secs + nsec / 1000000000L;
    d->at.tv_nsec = nsec % 1000000000L;
    return 0;
}

bool deadline_passed(const deadline_t *d)
{
    if (d->forever)
        return false;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > d->at.tv_sec ||
           (now.tv_sec == d->at.tv_sec && now.tv_nsec >= d->at.tv_nsec);
}

int deadline_for_acquire_slow(bool blocking, double timeout, deadline_t *d)
{
    if (!acquire_args_ok(blocking, timeout))
        return EINVAL;
    if (blocking)
        return deadline_from_timeout(timeout, d);
    deadline_from_timeout(0, d);
    d->nowait = true;
    return 0;
}
