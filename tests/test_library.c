/* SPDX-License-Identifier: MIT */
/* What every header shares: version, error names, static initializers, and the
 * same _free behaviour for every type. */
#include <criterion/criterion.h>
#include <pysync/pysync.h>

#include "helpers.h"

Test(library, version)
{
    cr_assert_eq(ps_version(), PS_VERSION_HEX);
    cr_assert_eq(PS_VERSION_HEX,
                 (PS_VERSION_MAJOR << 16) | (PS_VERSION_MINOR << 8) | PS_VERSION_PATCH);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", PS_VERSION_MAJOR, PS_VERSION_MINOR,
             PS_VERSION_PATCH);
    cr_assert_str_eq(ps_version_string(), want);
}

Test(library, strerror_says_what_pysync_means)
{
    cr_assert_str_eq(ps_strerror(ESHUTDOWN), "queue or executor is shut down");
    cr_assert_str_eq(ps_strerror(ENOSYS), "not available in this build (process executor)");
    cr_assert_str_eq(ps_strerror(EOWNERDEAD), "previous owner died holding the lock");
    cr_assert(strstr(ps_strerror(EOVERFLOW), "released too many times"));
    cr_assert_not_null(ps_strerror(-7));
    cr_assert_not_null(ps_strerror(123456));
}

Test(library, errname)
{
    cr_assert_str_eq(ps_errname(ETIMEDOUT), "ETIMEDOUT");
    cr_assert_str_eq(ps_errname(EAGAIN), "EAGAIN");
    cr_assert_str_eq(ps_errname(EPROTO), "EPROTO");
    cr_assert_str_eq(ps_errname(ENOTDIR), "ENOTDIR");      /* not ours, still named */
    cr_assert(strstr(ps_errname(123456), "123456"), "got %s", ps_errname(123456));
}

static ps_lock_t s_lock = PS_LOCK_INITIALIZER;
static ps_rlock_t s_rlock = PS_RLOCK_INITIALIZER;
static ps_condition_t s_cond = PS_CONDITION_INITIALIZER;
static ps_semaphore_t s_sem = PS_SEMAPHORE_INITIALIZER(2);
static ps_semaphore_t s_bsem = PS_BOUNDED_SEMAPHORE_INITIALIZER(1);
static ps_event_t s_event = PS_EVENT_INITIALIZER;

Test(library, static_initializers)
{
    CHECK_RC(ps_lock_acquire(&s_lock, false, PS_FOREVER), 0);
    CHECK_RC(ps_lock_acquire(&s_lock, false, PS_FOREVER), EAGAIN);
    CHECK_RC(ps_lock_release(&s_lock), 0);
    CHECK_RC(ps_rlock_acquire(&s_rlock, true, PS_FOREVER), 0);
    CHECK_RC(ps_rlock_acquire(&s_rlock, true, PS_FOREVER), 0);
    CHECK_RC(ps_rlock_release(&s_rlock), 0);
    CHECK_RC(ps_rlock_release(&s_rlock), 0);
    CHECK_RC(ps_rlock_release(&s_rlock), EPERM);
    CHECK_RC(ps_condition_acquire(&s_cond, true, PS_FOREVER), 0);
    CHECK_RC(ps_condition_wait(&s_cond, 0.01), ETIMEDOUT);
    CHECK_RC(ps_condition_release(&s_cond), 0);
    cr_assert_eq(ps_semaphore_value(&s_sem), 2);
    CHECK_RC(ps_semaphore_release(&s_sem, 1), 0);
    CHECK_RC(ps_semaphore_release(&s_bsem, 1), EOVERFLOW);
    CHECK_RC(ps_event_wait(&s_event, 0.01), ETIMEDOUT);
    CHECK_RC(ps_event_set(&s_event), 0);
    CHECK_RC(ps_event_wait(&s_event, 0), 0);
}

/* Every _free of a busy object leaves it alone and says EBUSY in errno; a free of
 * an idle one leaves errno alone. */
#define CHECK_FREE_BUSY(free_call, obj) do {                                        \
        errno = 0;                                                                  \
        free_call(obj);                                                             \
        cr_assert_eq(errno, EBUSY, #free_call " of a busy object: errno %d", errno);\
    } while (0)
#define CHECK_FREE_IDLE(free_call, obj) do {                                        \
        errno = 12345;                                                              \
        free_call(obj);                                                             \
        cr_assert_eq(errno, 12345, #free_call ": errno changed to %d", errno);      \
    } while (0)

Test(library, free_of_busy_object_sets_ebusy)
{
    ps_lock_t *lock = ps_lock_new(0);
    ps_lock_acquire(lock, true, PS_FOREVER);
    CHECK_FREE_BUSY(ps_lock_free, lock);
    ps_lock_release(lock);
    CHECK_FREE_IDLE(ps_lock_free, lock);

    ps_rlock_t *rlock = ps_rlock_new(PS_SHARED);
    ps_rlock_acquire(rlock, true, PS_FOREVER);
    CHECK_FREE_BUSY(ps_rlock_free, rlock);
    ps_rlock_release(rlock);
    CHECK_FREE_IDLE(ps_rlock_free, rlock);

    ps_condition_t *cond = ps_condition_new(NULL, 0);
    ps_condition_acquire(cond, true, PS_FOREVER);
    CHECK_FREE_BUSY(ps_condition_free, cond);
    ps_condition_release(cond);
    CHECK_FREE_IDLE(ps_condition_free, cond);

    ps_queue_t *q = ps_queue_new(0);
    CHECK_FREE_IDLE(ps_queue_free, q);
    CHECK_FREE_IDLE(ps_lock_free, NULL);
    CHECK_FREE_IDLE(ps_event_free, NULL);
    CHECK_FREE_IDLE(ps_semaphore_free, NULL);
    CHECK_FREE_IDLE(ps_barrier_free, NULL);
}
