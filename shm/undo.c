/* SPDX-License-Identifier: MIT */
/* The undo log; the protocol is described in undo.h. */
#include "undo.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

static struct undo_log *log_of(const struct segment *s) { return &seg_header(s)->undo; }

static uint64_t count_of(const struct undo_log *log)
{
    return __atomic_load_n(&log->count, __ATOMIC_ACQUIRE);
}

/* The counters, and everything from the name table on; never the mutex or the
 * log itself. */
bool undo_target_ok(const struct geometry *g, uint64_t off)
{
    if (off % sizeof(uint64_t) || off > g->size - sizeof(uint64_t))
        return false;
    bool counter = off >= offsetof(struct seg_header, free_head) &&
                   off < offsetof(struct seg_header, m);
    return counter || off >= g->table_off;
}

uint64_t undo_room(const struct segment *s)
{
    uint64_t n = count_of(log_of(s));
    return n < UNDO_MAX ? UNDO_MAX - n : 0;
}

static void append(struct segment *s, uint64_t off)
{
    struct undo_log *log = log_of(s);
    uint64_t n = count_of(log);
    if (n >= UNDO_MAX || !undo_target_ok(&s->g, off))
        abort();                /* a bug in this library: callers reserve room */
    log->e[n].off = off;
    log->e[n].old = *(uint64_t *)seg_at(s, off);
    __atomic_store_n(&log->count, n + 1, __ATOMIC_RELEASE);    /* entry first */
}

void undo_set(struct segment *s, uint64_t *word, uint64_t value)
{
    append(s, seg_off(s, word));
    __atomic_store_n(word, value, __ATOMIC_RELEASE);
}

void undo_save(struct segment *s, uint64_t off, uint64_t len)
{
    for (uint64_t at = off; at < off + len; at += sizeof(uint64_t))
        append(s, at);
}

void undo_commit(struct segment *s)
{
    __atomic_store_n(&log_of(s)->count, 0, __ATOMIC_RELEASE);
}

void undo_discard(struct segment *s) { undo_commit(s); }

int undo_rollback(struct segment *s)
{
    struct undo_log *log = log_of(s);
    uint64_t n = count_of(log);
    if (n > UNDO_MAX)
        return EPROTO;
    for (uint64_t i = 0; i < n; i++)
        if (!undo_target_ok(&s->g, log->e[i].off))
            return EPROTO;
    for (uint64_t i = n; i-- > 0;)
        __atomic_store_n((uint64_t *)seg_at(s, log->e[i].off), log->e[i].old, __ATOMIC_RELAXED);
    undo_commit(s);
    return 0;
}
