#include "pmutex.h"

#include <errno.h>
#include <linux/futex.h>
#include <unistd.h>

int pmutex_init(pthread_mutex_t *m, bool shared, bool recursive)
{
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    if (recursive)
        pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    if (shared) {
        pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
        pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    }
    int err = pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
    return err;
}

int pmutex_acquire_slow(pthread_mutex_t *m, const deadline_t *d)
{
    int err;
    if (d->nowait) {
        err = pthread_mutex_trylock(m);
        if (err == EBUSY)
            err = EAGAIN;
    } else
        err = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &d->at);
    if (err == EOWNERDEAD)
        pthread_mutex_consistent(m);
    return err;
}

bool pmutex_lock_repair(pthread_mutex_t *m)
{
    int err = pthread_mutex_lock(m);
    if (err == EOWNERDEAD)
        pthread_mutex_consistent(m);
    return err == EOWNERDEAD;
}

pid_t pmutex_owner(const pthread_mutex_t *m)
{
    /* glibc keeps the owner's tid in __lock for robust mutexes; the kernel clears it
     * (leaving FUTEX_OWNER_DIED) when the owner dies, and then the mutex is free to
     * be taken. A private mutex has 1 or 2 there instead: still non-zero. */
    return __atomic_load_n(&m->__data.__lock, __ATOMIC_RELAXED) & FUTEX_TID_MASK;
}

static __thread pid_t cached_tid;

/* A forked child must not keep its parent's tid: the fork hook clears the cache in
 * the child. It is registered before the first tid is cached. */
static void forget_tid(void) { cached_tid = 0; }
static void register_fork_hook(void) { pthread_atfork(NULL, NULL, forget_tid); }

pid_t current_tid(void)
{
    if (!cached_tid) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        pthread_once(&once, register_fork_hook);
        cached_tid = gettid();
    }
    return cached_tid;
}
