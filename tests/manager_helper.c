/* SPDX-License-Identifier: MIT */
/* tests/manager_helper.c - an unrelated process for tests/test_manager.c: it is
 * exec'ed, so it shares nothing with the test but the segment's name.
 *
 * usage: manager_helper /segment increments
 * Opens the segment, checks that value "greeting" holds "hello", adds
 * `increments` to the long in value "counter" under lock "lock", writes its
 * counter's offset from "greeting" into value "offsets" (the same in every
 * mapping: no raw pointers), and sets event "done". Exit 0 on success. */
#include <pysync/multiprocessing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what)
{
    fprintf(stderr, "manager_helper: %s: %s\n", what, ps_errname(errno));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    ps_manager_t *m = ps_manager_open(argv[1]);
    if (!m)
        return fail("ps_manager_open");
    char *greeting = ps_manager_value(m, "greeting", 6);
    long *counter = ps_manager_value(m, "counter", sizeof(long));
    long *offsets = ps_manager_value(m, "offsets", sizeof(long));
    ps_lock_t *lock = ps_manager_lock(m, "lock");
    ps_event_t *done = ps_manager_event(m, "done");
    if (!greeting || !counter || !offsets || !lock || !done)
        return fail("find");
    if (strcmp(greeting, "hello") != 0)
        return fail("greeting");
    for (long i = atol(argv[2]); i > 0; i--) {
        if (ps_lock_acquire(lock, true, PS_FOREVER) != 0)
            return fail("acquire");
        ++*counter;
        ps_lock_release(lock);
    }
    *offsets = (long)((char *)counter - greeting);
    if (ps_event_set(done) != 0 || ps_manager_close(m) != 0)
        return fail("done");
    return 0;
}
