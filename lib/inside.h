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
 * fact: the thread no longer exists, or is a zombie. A caller that found every
 * entry taken is never discounted, so if such a caller dies, destroy stays EBUSY:
 * wrong only on the safe side. */
#ifndef PS_INSIDE_H
#define PS_INSIDE_H

#include <pysync/threading.h>
#include <stdbool.h>

/* Returns the entry the caller recorded itself in (-1: none), for inside_leave. */
int  inside_enter(struct ps__inside *in, bool shared);
/* The caller's last access to the object. */
void inside_leave(struct ps__inside *in, int entry);
/* For destroy: is a caller, alive as far as anyone can tell, still inside? */
bool inside_busy(struct ps__inside *in, bool shared);

/* The calling thread as shared memory records it: pid << 32 | tid. */
unsigned long long caller_id(void);
/* False only if the thread that id names has certainly ended. */
bool caller_alive(unsigned long long id);

#endif
