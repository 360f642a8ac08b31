/* SPDX-License-Identifier: MIT */
/* Who is inside a blocking call of an object, for destroy's EBUSY.
 *
 * A caller adds itself before it may block and removes itself as its very last
 * access to the object, so a destroy that finds nobody inside never frees
 * memory that a caller still uses.
 *
 * Private objects count callers in count. In shared memory a caller can be
 * killed inside a call and then never leaves; to tell it from a caller that is
 * merely slow (blocked for seconds, stopped, running a signal handler), a shared
 * caller enters by writing who it is (pid << 32 | tid) into a free entry of ids,
 * one CAS: a caller killed at any instruction is either not inside yet or
 * recorded. destroy discounts a recorded caller only when its death is a fact:
 * the thread no longer exists, or is a zombie. A caller that finds every entry
 * taken first discounts the dead ones that hold entries (inside_reap); if it
 * still finds none (more than PS__INSIDE_IDS callers inside), it is counted in
 * count instead, and if it dies there, destroy stays EBUSY: wrong only on the
 * safe side. */
#ifndef PS_INSIDE_H
#define PS_INSIDE_H

#include <pysync/threading.h>
#include <stdbool.h>

int  inside_record(struct ps__inside *in);      /* shared: the entry taken, or -1 */

/* Returns the entry the caller recorded itself in (-1: counted), for
 * inside_leave. seq_cst: a sleeper's entry is what its waker looks for.
 * Inline: it is on every contended lock acquire. */
static inline int inside_enter(struct ps__inside *in, bool shared)
{
    int entry = shared ? inside_record(in) : -1;
    if (entry < 0)
        __atomic_fetch_add(&in->count, 1, __ATOMIC_SEQ_CST);
    return entry;
}

/* The caller's last access to the object. */
static inline void inside_leave(struct ps__inside *in, int entry)
{
    if (entry >= 0)
        __atomic_store_n(&in->ids[entry], 0, __ATOMIC_RELEASE);
    else
        __atomic_fetch_sub(&in->count, 1, __ATOMIC_RELEASE);
}

/* How many are inside (dead ones not yet discounted included). seq_cst loads:
 * a waker that published a change reads this to decide whether to wake. */
static inline unsigned inside_count(const struct ps__inside *in)
{
    unsigned n = __atomic_load_n(&in->count, __ATOMIC_SEQ_CST);
    for (int i = 0; i < PS__INSIDE_IDS; i++)
        n += __atomic_load_n(&in->ids[i], __ATOMIC_SEQ_CST) != 0;
    return n;
}

/* Discounts the recorded callers whose thread has certainly ended; how many. */
unsigned inside_reap(struct ps__inside *in);
/* For destroy: is a caller, alive as far as anyone can tell, still inside? */
bool inside_busy(struct ps__inside *in, bool shared);

/* The calling thread as shared memory records it: pid << 32 | tid. */
unsigned long long caller_id(void);
/* False only if the thread that id names has certainly ended. */
bool caller_alive(unsigned long long id);

#endif
