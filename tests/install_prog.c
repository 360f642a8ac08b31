/* SPDX-License-Identifier: MIT */
/* Built by `make install-check` against an installed copy, with pkg-config. */
#include <pysync/pysync.h>
#include <stdio.h>

int main(void)
{
    ps_lock_t *lock = ps_lock_new(0);
    if (!lock || ps_lock_acquire(lock, true, PS_FOREVER) != 0 || !ps_lock_locked(lock))
        return 1;
    if (ps_lock_release(lock) != 0)
        return 1;
    ps_lock_free(lock);
    puts("installed pysync works");
    return 0;
}
