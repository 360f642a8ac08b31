/* SPDX-License-Identifier: MIT */
/* Thin futex wrappers. Every wait in pysync sleeps here (or in a pthread call that
 * does): an absolute CLOCK_MONOTONIC deadline, FUTEX_PRIVATE_FLAG unless the word
 * is in memory shared between processes. errno is saved and restored. */
#ifndef PS_FUTEX_H
#define PS_FUTEX_H

#include <stdbool.h>
#include <time.h>

/* Sleeps while *word == expected. 0: woken (maybe spuriously), EINTR: a signal
 * arrived, EAGAIN: *word != expected already, ETIMEDOUT: deadline (NULL: none)
 * passed. Callers re-check their condition and never pass EINTR on. */
int futex_wait(unsigned *word, unsigned expected, const struct timespec *deadline,
               bool shared);
/* Wakes up to n sleepers (n > INT_MAX: all); returns how many it woke. */
int futex_wake(unsigned *word, unsigned n, bool shared);

/* How a caller polls before it sleeps on a futex (the peer is often about to make
 * its change, and a sleep and a wake cost several microseconds): polls spaced by
 * min_gap pauses, the gap doubling up to max_gap, for `spins` pauses in all; then
 * `yields` polls with a sched_yield before each, for a peer sharing our CPU. */
struct spin_policy {
    unsigned spins, min_gap, max_gap, yields;
};

/* Polls ready(arg) as p says; true as soon as it returns true. */
bool spin_until_ready(const struct spin_policy *p, bool (*ready)(void *), void *arg);

/* Tell the CPU we are spinning (saves power, yields to the sibling hyperthread). */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif
