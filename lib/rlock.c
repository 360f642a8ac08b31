/* SPDX-License-Identifier: MIT */
/* RLock: threading.RLock.
 *
 * The lock itself is a wordlock (private) or a robust process-shared pthread mutex
 * (shared, non-recursive); recursion is counted here in _depth, which only the
 * holder reads or writes. rlock.h answers "do I hold it?". */
#include <errno.h>
#include <limits.h>

#include "debug.h"
#include "inside.h"
#include "object.h"
#include "pmutex.h"
#include "rlock.h"
#include "wordlock.h"

static bool is_shared(const ps_rlock_t *rl) { return rl->_flags & PS_SHARED; }

int ps_rlock_init(ps_rlock_t *rl, int flags)
{
    if (!rl || (flags & ~PS_SHARED))
        return EINVAL;
    rl->_flags = flags;
    rl->_owner = 0;
    rl->_depth = 0;
    rl->_inside = (struct ps__inside){ 0 };
    rl->_u.word = 0;
    return is_shared(rl) ? pmutex_init(&rl->_u.mutex, true) : 0;
}

int ps_rlock_destroy(ps_rlock_t *rl)
{
    if (!rl)
        return EINVAL;
    /* Waiters first: one that leaves may have just taken the lock. */
    if (inside_busy(&rl->_inside, is_shared(rl)))
        return EBUSY;
    bool held = is_shared(rl) ? pmutex_owner(&rl->_u.mutex) != 0
                              : __atomic_load_n(&rl->_u.word, __ATOMIC_RELAXED) != 0;
    if (held)
        return EBUSY;
    if (is_shared(rl))
        pthread_mutex_destroy(&rl->_u.mutex);
    return 0;
}

ps_rlock_t *ps_rlock_new(int flags)
{
    OBJECT_NEW(ps_rlock_t, flags, ps_rlock_init(obj_, flags));
}

void ps_rlock_free(ps_rlock_t *rl)
{
    OBJECT_FREE(rl, ps_rlock_destroy(rl));
}

/* The caller (tid me) now holds the underlying lock, or inherited it (EOWNERDEAD). */
static int taken(ps_rlock_t *rl, pid_t me, int err)
{
    if (err == 0 || err == EOWNERDEAD) {
        if (!is_shared(rl))
            __atomic_store_n(&rl->_owner, (unsigned long)me, __ATOMIC_RELAXED);
        rl->_depth = 1;
    }
    return err;
}

/* The fast attempt: 0, EOWNERDEAD, or EBUSY. */
static int try_take(ps_rlock_t *rl, pid_t me)
{
    if (is_shared(rl))
        return taken(rl, me, pmutex_trylock(&rl->_u.mutex));
    return wordlock_try(&rl->_u.word) ? taken(rl, me, 0) : EBUSY;
}

/* Callers that may sleep count themselves in _inside, so destroy can see them. */
static int take(ps_rlock_t *rl, pid_t me, const deadline_t *d)
{
    int err = try_take(rl, me);
    if (err != EBUSY)
        return err;
    if (d->nowait)
        return EAGAIN;
    int entry = inside_enter(&rl->_inside, is_shared(rl));
    if (is_shared(rl))
        err = taken(rl, me, pmutex_acquire(&rl->_u.mutex, d));
    else
        err = taken(rl, me, wordlock_wait(&rl->_u.word, d));
    inside_leave(&rl->_inside, entry);
    return err;
}

int ps_rlock_acquire(ps_rlock_t *rl, bool blocking, double timeout)
{
    deadline_t d;
    if (!rl || !acquire_args_ok(blocking, timeout))
        return EINVAL;
    pid_t me = current_tid();
    if (rlock_held_by(rl, me)) {
        if (rl->_depth == UINT_MAX)
            return EAGAIN;
        rl->_depth++;
        return 0;
    }
    int err = try_take(rl, me);
    if (err != EBUSY)
        return err;
    deadline_for_acquire(blocking, timeout, &d);
    return take(rl, me, &d);
}

static void drop(ps_rlock_t *rl)
{
    rl->_depth = 0;
    if (is_shared(rl)) {
        pthread_mutex_unlock(&rl->_u.mutex);
    } else {
        __atomic_store_n(&rl->_owner, 0, __ATOMIC_RELAXED);
        wordlock_release(&rl->_u.word);
    }
}

int ps_rlock_release(ps_rlock_t *rl)
{
    if (!rl)
        return EINVAL;
    if (!rlock_held_by_me(rl))
        return EPERM;
    if (--rl->_depth == 0)
        drop(rl);
    return 0;
}

unsigned rlock_release_all(ps_rlock_t *rl)
{
    PS_ASSERT(rlock_held_by_me(rl) && rl->_depth > 0);
    unsigned depth = rl->_depth;
    drop(rl);
    return depth;
}

int rlock_restore(ps_rlock_t *rl, unsigned depth)
{
    PS_ASSERT(!rlock_held_by_me(rl) && depth > 0);
    deadline_t forever = { .forever = true };
    int err = take(rl, current_tid(), &forever);
    rl->_depth = depth;
    return err;
}
