/* SPDX-License-Identifier: MIT */
#include "inside.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pmutex.h"

/* Takes a free entry, starting at one picked by the tid so that callers rarely
 * race for one. */
static int take_free_entry(struct ps__inside *in, unsigned long long me)
{
    for (unsigned i = 0, first = (unsigned)me; i < PS__INSIDE_IDS; i++) {
        unsigned at = (first + i) % PS__INSIDE_IDS;
        unsigned long long free_id = 0;
        if (__atomic_compare_exchange_n(&in->ids[at], &free_id, me, false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_RELAXED))
            return (int)at;
    }
    return -1;
}

/* Every entry taken: callers killed inside may hold some (nobody leaves for
 * them until a destroy looks). Discounting them here keeps the entries for the
 * living, so that a caller killed later can still be told apart; this costs a
 * few system calls, only when more than PS__INSIDE_IDS callers are inside. */
int inside_record(struct ps__inside *in)
{
    unsigned long long me = caller_id();
    int at = take_free_entry(in, me);
    if (at < 0 && inside_reap(in) > 0)
        at = take_free_entry(in, me);
    return at;
}

unsigned inside_reap(struct ps__inside *in)
{
    unsigned reaped = 0;
    for (int i = 0; i < PS__INSIDE_IDS; i++) {
        unsigned long long id = __atomic_load_n(&in->ids[i], __ATOMIC_RELAXED);
        if (!id || caller_alive(id))
            continue;
        /* Dead: leave for it. The exchange makes sure only one caller does. */
        if (__atomic_compare_exchange_n(&in->ids[i], &id, 0, false, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
            reaped++;
    }
    return reaped;
}

bool inside_busy(struct ps__inside *in, bool shared)
{
    if (!shared)        /* exact: threads of one process die together */
        return __atomic_load_n(&in->count, __ATOMIC_ACQUIRE) != 0;
    if (inside_count(in) == 0)
        return false;
    inside_reap(in);
    /* Whoever is left is alive, was not recorded, or is entering or leaving
     * right now. */
    return inside_count(in) != 0;
}

unsigned long long caller_id(void)
{
    return (unsigned long long)current_pid() << 32 | (unsigned)current_tid();
}

/* The state letter of /proc/PID/task/TID/stat: 'Z' and 'X' are dead. 0: unknown. */
static char thread_state(pid_t pid, pid_t tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)pid, (int)tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 'X' : 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *paren = strrchr(buf, ')');      /* the name may hold spaces and ')' */
    return paren && paren[1] == ' ' ? paren[2] : 0;
}

/* A killed process stays a zombie until its parent reaps it, and signal 0 still
 * reaches a zombie, so a thread that exists is only alive if /proc says so. */
bool caller_alive(unsigned long long id)
{
    pid_t pid = (pid_t)(id >> 32), tid = (pid_t)(id & 0xffffffffu);
    int saved = errno;
    bool exists = syscall(SYS_tgkill, pid, tid, 0) == 0 || errno != ESRCH;
    char state = exists && pid != current_pid() ? thread_state(pid, tid) : 0;
    errno = saved;
    return exists && state != 'Z' && state != 'X' && state != 'x';
}
