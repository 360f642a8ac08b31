/* SPDX-License-Identifier: MIT */
/* Built by `make install-check` against an installed copy, with pkg-config, as C
 * and as C++. It includes one header only: the error codes must come with it. */
#include <pysync/threading.h>
#include <stdio.h>

int main(void)
{
    ps_lock_t *lock = ps_lock_new(0);
    if (!lock || ps_lock_acquire(lock, true, PS_FOREVER) != 0 || !ps_lock_locked(lock))
        return 1;
    if (ps_lock_acquire(lock, true, 0.01) != ETIMEDOUT || ps_lock_release(lock) != 0)
        return 1;
    ps_lock_free(lock);
    if (ps_version() != PS_VERSION_HEX)
        return 1;
    printf("installed pysync %s works\n", ps_version_string());
    return 0;
}
