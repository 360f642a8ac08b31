/* SPDX-License-Identifier: MIT */
/* Contracts the library keeps with itself ("called with the lock held"), checked
 * by assertions in 'make debug' builds (PS_DEBUG) and free in the others. */
#ifndef PS_DEBUG_H
#define PS_DEBUG_H

#ifdef PS_DEBUG
#undef NDEBUG
#include <assert.h>
#define PS_ASSERT(cond) assert(cond)
#else
#define PS_ASSERT(cond) ((void)0)
#endif

#endif
