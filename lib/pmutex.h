/* pthread mutexes as pysync uses them: process-shared ones are always robust, and
 * an acquire that inherits a dead owner's mutex makes it consistent and reports
 * EOWNERDEAD (the caller holds it). */
#ifndef PS_PMUTEX_H
#define PS_PMUTEX_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "timing.h"

int  pmutex_init(pthread_mutex_t *m, bool shared, bool recursive);
/* 0, EOWNERDEAD, or deadline_busy(d) when it could not be had in time. */
int  pmutex_acquire(pthread_mutex_t *m, const deadline_t *d);
/* Blocking acquire for internal state; true if a dead owner left it. */
bool pmutex_lock_repair(pthread_mutex_t *m);
/* Tid of the holder of a robust mutex (non-zero for any held mutex), else 0. */
pid_t pmutex_owner(const pthread_mutex_t *m);
pid_t current_tid(void);

#endif
