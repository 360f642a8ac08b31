/* pthread mutexes as pysync uses them: process-shared ones are always robust, and
 * an acquire that inherits a dead owner's mutex makes it consistent and reports
 * EOWNERDEAD (the caller holds it). */
#ifndef PS_PMUTEX_H
#define PS_PMUTEX_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "timing.h"

int  pmutex_init(pthread_mutex_t *m, bool shared, bool recursive);
int  pmutex_acquire_slow(pthread_mutex_t *m, const deadline_t *d);

/* 0, EOWNERDEAD, or deadline_busy(d) when it could not be had in time.
 * Inline: the untimed case is a shared lock's fast path. */
static inline int pmutex_acquire(pthread_mutex_t *m, const deadline_t *d)
{
    if (!d->forever)
        return pmutex_acquire_slow(m, d);
    int err = pthread_mutex_lock(m);
    if (err == EOWNERDEAD)
        pthread_mutex_consistent(m);    /* else the next unlock makes it unusable */
    return err;
}
/* Blocking acquire for internal state; true if a dead owner left it. */
bool pmutex_lock_repair(pthread_mutex_t *m);
/* Tid of the holder of a robust mutex (non-zero for any held mutex), else 0. */
pid_t pmutex_owner(const pthread_mutex_t *m);
pid_t current_tid(void);

#endif
