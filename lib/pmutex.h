/* SPDX-License-Identifier: MIT */
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

int  pmutex_init(pthread_mutex_t *m, bool shared);
/* Untimed acquire: 0 or EOWNERDEAD. Inline: it is a shared lock's fast path. */
static inline int pmutex_lock(pthread_mutex_t *m)
{
    int err = pthread_mutex_lock(m);
    if (__builtin_expect(err == EOWNERDEAD, 0))
        pthread_mutex_consistent(m);    /* else the next unlock makes it unusable */
    return err;
}

/* 0, EBUSY or EOWNERDEAD. */
static inline int pmutex_trylock(pthread_mutex_t *m)
{
    int err = pthread_mutex_trylock(m);
    if (__builtin_expect(err == EOWNERDEAD, 0))
        pthread_mutex_consistent(m);
    return err;
}

/* A wait (d is not nowait: callers try first): 0, EOWNERDEAD or ETIMEDOUT. */
int  pmutex_acquire(pthread_mutex_t *m, const deadline_t *d);
/* Blocking acquire for internal state; true if a dead owner left it. */
bool pmutex_lock_repair(pthread_mutex_t *m);
/* Tid of the holder of a robust mutex (non-zero for any held mutex), else 0.
 * glibc keeps the owner's tid in __lock for robust mutexes; the kernel clears it
 * (leaving FUTEX_OWNER_DIED) when the owner dies, and then the mutex is free to be
 * taken. A private mutex has 1 or 2 there instead: still non-zero. */
static inline pid_t pmutex_owner(const pthread_mutex_t *m)
{
    return __atomic_load_n(&m->__data.__lock, __ATOMIC_RELAXED) & 0x3fffffff; /* FUTEX_TID_MASK */
}
/* The caller's kernel thread id, cached per thread (a syscall otherwise). */
extern __thread pid_t ps_cached_tid __attribute__((tls_model("initial-exec")));
pid_t current_tid_slow(void);
static inline pid_t current_tid(void)
{
    pid_t tid = ps_cached_tid;
    return tid ? tid : current_tid_slow();
}
/* The caller's process id, cached per process (reset in a forked child). */
pid_t current_pid(void);

/* For assertions: glibc records the holder's tid in __owner for every kind. */
static inline bool pmutex_held_by_me(const pthread_mutex_t *m)
{
    return m->__data.__owner == current_tid();
}

#endif
