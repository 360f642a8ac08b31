/* What Condition needs from RLock: drop every level of a held RLock and take it
 * back at the same depth. */
#ifndef PS_RLOCK_H
#define PS_RLOCK_H

#include <pysync/threading.h>

bool     rlock_held_by_me(const ps_rlock_t *rl);
unsigned rlock_release_all(ps_rlock_t *rl);               /* returns the depth */
int      rlock_restore(ps_rlock_t *rl, unsigned depth);   /* 0 or EOWNERDEAD */

#endif
