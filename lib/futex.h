/* Thin futex wrappers. Every wait in pysync sleeps here (or in a pthread call that
 * does): an absolute CLOCK_MONOTONIC deadline, FUTEX_PRIVATE_FLAG unless the word
 * is in memory shared between processes. errno is saved and restored. */
#ifndef PS_FUTEX_H
#define PS_FUTEX_H

#include <stdbool.h>
#include <time.h>

/* Sleeps while *word == expected. 0: woken (maybe spuriously, or by a signal),
 * EAGAIN: *word != expected already, ETIMEDOUT: deadline (NULL: none) passed.
 * Callers always re-check their condition: a 0 proves nothing. */
int futex_wait(unsigned *word, unsigned expected, const struct timespec *deadline,
               bool shared);
/* Wakes up to n sleepers (n > INT_MAX: all); returns how many it woke. */
int futex_wake(unsigned *word, unsigned n, bool shared);

/* For destroy: is anybody waiting on word? *waiters counts announced waiters, but in
 * shared memory it may include waiters that were killed, so there it is checked
 * against the kernel: the sleepers are woken (they re-check and sleep again) and
 * counted. */
bool waiters_present(unsigned *waiters, unsigned *word, bool shared);

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
