/* SPDX-License-Identifier: MIT */
#include "pmutex.h"

#include <errno.h>
#include <unistd.h>

int pmutex_init(pthread_mutex_t *m, bool shared)
{
    pthread_mutexattr_t attr;
    int err = pthread_mutexattr_init(&attr);
    if (err)
        return err;
    /* A shared mutex that is not robust would deadlock, not report, an owner's death:
     * better no mutex than that one. */
    if (shared)
        err = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (shared && !err)
        err = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    if (!err)
        err = pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
    return err;
}

#if defined(__SANITIZE_THREAD__)
#define PS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PS_TSAN 1
#endif
#endif

#ifdef PS_TSAN
/* ThreadSanitizer (gcc 12) does not intercept pthread_mutex_clocklock, so it would
 * miss the acquire and report the unlock. Sanitizer builds poll instead. */
static int clocklock_for_tsan(pthread_mutex_t *m, const struct timespec *at)
{
    const struct timespec pause = { 0, 100000 };
    deadline_t d = { .forever = false, .nowait = false, .at = *at };
    int err;
    while ((err = pthread_mutex_trylock(m)) == EBUSY && !deadline_passed(&d))
        nanosleep(&pause, NULL);
    return err == EBUSY ? ETIMEDOUT : err;
}
#endif

int pmutex_acquire(pthread_mutex_t *m, const deadline_t *d)
{
    int err;
    if (d->forever)
        return pmutex_lock(m);
#ifdef PS_TSAN
    err = clocklock_for_tsan(m, &d->at);
#else
    err = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &d->at);
#endif
    if (err == EOWNERDEAD)
        pthread_mutex_consistent(m);
    return err;
}

bool pmutex_lock_repair(pthread_mutex_t *m)
{
    return pmutex_lock(m) == EOWNERDEAD;
}

__thread pid_t ps_cached_tid;
static pid_t cached_pid;

/* A forked child must not keep its parent's ids: the fork hook clears the caches
 * in the child. It is registered before the first id is cached. */
static void forget_ids(void)
{
    ps_cached_tid = 0;
    __atomic_store_n(&cached_pid, 0, __ATOMIC_RELAXED);
}
static void register_fork_hook(void) { pthread_atfork(NULL, NULL, forget_ids); }

pid_t current_tid_slow(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_fork_hook);
    return ps_cached_tid = gettid();
}

pid_t current_pid(void)
{
    pid_t pid = __atomic_load_n(&cached_pid, __ATOMIC_RELAXED);
    if (!pid) {
        current_tid();              /* registers the fork hook first */
        pid = getpid();
        __atomic_store_n(&cached_pid, pid, __ATOMIC_RELAXED);
    }
    return pid;
}
