/* SPDX-License-Identifier: MIT */
/* The private lock word behind ps_lock_t and ps_rlock_t: 0 free, 1 held, 2 held
 * and a sleeper may exist. Whoever takes the word after sleeping stores 2, since
 * other sleepers may remain; a release that finds 2 wakes one. No owner is kept,
 * so any thread may release (Python's Lock). */
#ifndef PS_WORDLOCK_H
#define PS_WORDLOCK_H

#include <stdbool.h>

#include "timing.h"

static inline bool wordlock_try(unsigned *word)
{
    unsigned free_word = 0;
    return __atomic_compare_exchange_n(word, &free_word, 1, false, __ATOMIC_ACQUIRE,
                                       __ATOMIC_RELAXED);
}

/* Slow path, a wait (d is not nowait: callers try first): 0 or ETIMEDOUT. */
int wordlock_wait(unsigned *word, const deadline_t *d);

/* Untimed acquire, for locks guarding internal state. */
static inline void wordlock_lock(unsigned *word)
{
    static const deadline_t forever = { .forever = true };
    if (!wordlock_try(word))
        wordlock_wait(word, &forever);
}

void wordlock_wake(unsigned *word);

/* Returns false (and changes nothing) if the word was not held. */
static inline bool wordlock_release(unsigned *word)
{
    unsigned old = __atomic_exchange_n(word, 0, __ATOMIC_RELEASE);
    if (old == 2)
        wordlock_wake(word);
    return old != 0;
}

#endif
