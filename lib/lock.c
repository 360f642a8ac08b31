/* SPDX-License-Identifier: MIT */
/* Lock: threading.Lock and multiprocessing.Lock.
 *
 * Private locks are a wordlock (wordlock.h): one futex word, no owner, so any
 * thread may release, as in Python. Shared locks are robust process-shared
 * pthread mutexes: the kernel's robust-futex list hands a dead holder's lock to the
 * next acquirer with EOWNERDEAD, whether the holder was a killed process or a thread
 * that exited. They are owned: only the holder may release (EPERM otherwise). */
#include <errno.h>
#include <pysync/threading.h>

#include "inside.h"
#include "object.h"
#include "pmutex.h"
#include "wordlock.h"

static bool is_shared(const ps_lock_t *lock) { return lock->_flags & PS_SHARED; }

int ps_lock_init(ps_lock_t *lock, int flags)
{
    if (!lock || (flags & ~PS_SHARED))
        return EINVAL;
    lock->_flags = flags;
    lock->_inside = (struct ps__inside){ 0 };
    if (!is_shared(lock)) {
        lock->_u.word = 0;
        return 0;
    }
    return pmutex_init(&lock->_u.mutex, true);
}

int ps_lock_destroy(ps_lock_t *lock)
{
    if (!lock)
        return EINVAL;
    /* Waiters first: one that leaves may have just taken the lock. */
    if (inside_busy(&lock->_inside, is_shared(lock)) || ps_lock_locked(lock))
        return EBUSY;
    if (is_shared(lock))
        pthread_mutex_destroy(&lock->_u.mutex);
    return 0;
}

ps_lock_t *ps_lock_new(int flags)
{
    OBJECT_NEW(ps_lock_t, flags, ps_lock_init(obj_, flags));
}

void ps_lock_free(ps_lock_t *lock)
{
    OBJECT_FREE(lock, ps_lock_destroy(lock));
}

/* Callers that may sleep count themselves in _inside, so destroy can see them. */
static int acquire_slow(ps_lock_t *lock, bool blocking, double timeout)
{
    deadline_t d;
    deadline_for_acquire(blocking, timeout, &d);
    if (d.nowait)
        return EAGAIN;
    int entry = inside_enter(&lock->_inside, is_shared(lock));
    int err = is_shared(lock) ? pmutex_acquire(&lock->_u.mutex, &d)
                              : wordlock_wait(&lock->_u.word, &d);
    inside_leave(&lock->_inside, entry);
    return err;
}

int ps_lock_acquire(ps_lock_t *lock, bool blocking, double timeout)
{
    if (!lock || !acquire_args_ok(blocking, timeout))
        return EINVAL;
    if (!is_shared(lock)) {
        if (wordlock_try(&lock->_u.word))
            return 0;
    } else {
        int err = pmutex_trylock(&lock->_u.mutex);
        if (err != EBUSY)
            return err;
    }
    return acquire_slow(lock, blocking, timeout);
}

int ps_lock_release(ps_lock_t *lock)
{
    if (!lock)
        return EINVAL;
    if (is_shared(lock))
        return pthread_mutex_unlock(&lock->_u.mutex);   /* EPERM: not the owner */
    return wordlock_release(&lock->_u.word) ? 0 : EPERM;
}

bool ps_lock_locked(const ps_lock_t *lock)
{
    if (!lock)
        return false;
    if (is_shared(lock))
        return pmutex_owner(&lock->_u.mutex) != 0;
    return __atomic_load_n(&lock->_u.word, __ATOMIC_RELAXED) != 0;
}
