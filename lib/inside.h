/* SPDX-License-Identifier: MIT */
/* Who is inside a blocking call of an object, for destroy's EBUSY.
 *
 * count is exact: a caller adds itself before it may block and removes itself as
 * its very last access to the object, so a destroy that finds count == 0 never
 * frees memory that a caller still uses.
 *
 * In shared memory a caller can be killed inside a call and then never leaves. To
 * tell it from a caller that is merely slow (blocked for seconds, stopped, running
 * a signal handler), shared callers also record who they are (pid << 32 | tid) in a
 * free entry of ids. destroy discounts a recorded caller only when its death is a
 * fact: the thread no longer exists, or is a zombie. A caller that finds every
 * entry taken first discounts the dead ones that hold entries (inside_reap);
 * one that still finds none is never discounted, so if it dies (or dies
 * between counting and recording itself), destroy stays EBUSY: wrong only on
 * the safe side. */
#ifndef PS_INSIDE_H
#define PS_INSIDE_H

#include <pysync/threading.h>
#include <stdbool.h>

int  inside_record(struct ps__inside *in);      /* shared: the entry taken, or -1 */

/* Returns the entry the caller recorded itself in (-1: none), for inside_leave.
 * Inline: it is on every contended lock acquire. */
static inline int inside_enter(struct ps__inside *in, bool shared)
{
    __atomic_fetch_add(&in->count, 1, __ATOMIC_SEQ_CST);
    return shared ? inside_record(in) : -1;
}

/* The caller's last access to the object. */
static inline void inside_leave(struct ps__inside *in, int entry)
{
    if (entry >= 0)
        __atomic_store_n(&in->ids[entry], 0, __ATOMIC_RELAXED);
    __atomic_fetch_sub(&in->count, 1, __ATOMIC_RELEASE);
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
