/* RLock: threading.RLock.
 *
 * The lock itself is a wordlock (private) or a robust process-shared pthread mutex
 * (shared, non-recursive); recursion is counted here in _depth, which only the
 * holder reads or writes. "Do I hold it?" is answered by _owner (pthread_self of
 * the holder) for private RLocks and by the tid the kernel keeps in a robust mutex
 * for shared ones, which the kernel clears when the holder dies, so a recycled tid
 * can never mistake a dead holder's lock for its own. */
#include <errno.h>
#include <limits.h>

#include "object.h"
#include "pmutex.h"
#include "rlock.h"
#include "wordlock.h"

static bool is_shared(const ps_rlock_t *rl) { return rl->_flags & PS_SHARED; }

static unsigned long self_id(void) { return (unsigned long)pthread_self(); }

bool rlock_held_by_me(const ps_rlock_t *rl)
{
    if (is_shared(rl))
        return pmutex_owner(&rl->_u.mutex) == current_tid();
    return __atomic_load_n(&rl->_owner, __ATOMIC_RELAXED) == self_id();
}

int ps_rlock_init(ps_rlock_t *rl, int flags)
{
    if (!rl || (flags & ~PS_SHARED))
        return EINVAL;
    rl->_flags = flags;
    rl->_owner = 0;
    rl->_depth = 0;
    rl->_u.word = 0;
    return is_shared(rl) ? pmutex_init(&rl->_u.mutex, true, false) : 0;
}

int ps_rlock_destroy(ps_rlock_t *rl)
{
    if (!rl)
        return EINVAL;
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
    if (rl && ps_rlock_destroy(rl) == 0)
        object_free(rl, sizeof *rl, rl->_flags);
}

/* Takes the underlying lock; the caller is not its holder. */
static int take(ps_rlock_t *rl, const deadline_t *d)
{
    int err;
    if (is_shared(rl))
        err = pmutex_acquire(&rl->_u.mutex, d);
    else if (wordlock_try(&rl->_u.word))
        err = 0;
    else
        err = wordlock_wait(&rl->_u.word, d);
    if (err == 0 || err == EOWNERDEAD) {
        if (!is_shared(rl))
            __atomic_store_n(&rl->_owner, self_id(), __ATOMIC_RELAXED);
        rl->_depth = 1;
    }
    return err;
}

int ps_rlock_acquire(ps_rlock_t *rl, bool blocking, double timeout)
{
    deadline_t d;
    if (!rl || !acquire_args_ok(blocking, timeout))
        return EINVAL;
    if (rlock_held_by_me(rl)) {
        if (rl->_depth == UINT_MAX)
            return EAGAIN;
        rl->_depth++;
        return 0;
    }
    deadline_for_acquire(blocking, timeout, &d);
    return take(rl, &d);
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
    unsigned depth = rl->_depth;
    drop(rl);
    return depth;
}

int rlock_restore(ps_rlock_t *rl, unsigned depth)
{
    deadline_t forever = { .forever = true };
    int err = take(rl, &forever);
    rl->_depth = depth;
    return err;
}
