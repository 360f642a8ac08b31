/* SPDX-License-Identifier: MIT */
/* What Condition needs from RLock: drop every level of a held RLock and take it
 * back at the same depth. */
#ifndef PS_RLOCK_H
#define PS_RLOCK_H

#include <pysync/threading.h>

#include "pmutex.h"

/* A shared RLock's holder is the tid the kernel keeps in its robust mutex, which
 * the kernel clears when the holder dies, so a recycled tid can never mistake a
 * dead holder's lock for its own. A private RLock records its holder in _owner. */
static inline bool rlock_held_by(const ps_rlock_t *rl, pid_t tid)
{
    if (rl->_flags & PS_SHARED)
        return pmutex_owner(&rl->_u.mutex) == tid;
    return __atomic_load_n(&rl->_owner, __ATOMIC_RELAXED) == (unsigned long)tid;
}

static inline bool rlock_held_by_me(const ps_rlock_t *rl)
{
    return rlock_held_by(rl, current_tid());
}

unsigned rlock_release_all(ps_rlock_t *rl);               /* returns the depth */
int      rlock_restore(ps_rlock_t *rl, unsigned depth);   /* 0 or EOWNERDEAD */

#endif
