/* SPDX-License-Identifier: MIT */
/* A manager segment: make, open (and check), map, lock. See layout.h for its
 * bytes and undo.h for how a call killed halfway is undone. */
#ifndef PS_SHM_SEGMENT_H
#define PS_SHM_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

#define SEG_MIN_SIZE     (16u * 1024)
#define SEG_DEFAULT_SIZE (1024u * 1024)

struct segment {
    char *base;                 /* this process's mapping */
    struct geometry g;          /* checked at open, never re-read */
};

/* name NULL: anonymous MAP_SHARED memory, shared with children forked later.
 * Else a new shm object (EEXIST if it exists). size 0: SEG_DEFAULT_SIZE.
 * segment_create and segment_open also enter the mapping in the process's
 * registry (registry.h), so that a pointer into its heap (a ps_dict_t *) leads
 * back to it; segment_unmap takes it out. ENOMEM if the registry is full. */
int  segment_create(struct segment *s, const char *name, size_t size);
/* EPROTO if it is not a sound segment of this version; nothing is written then. */
int  segment_open(struct segment *s, const char *name);
/* As segment_open, but opens the file O_RDONLY and leaves the mapping PROT_READ:
 * for readers that never write (pysync-stat). *why: what is wrong, for EPROTO
 * and EINVAL. */
int  segment_open_readonly(struct segment *s, const char *name, const char **why);
void segment_unmap(struct segment *s);
int  segment_unlink(const char *name);
bool segment_name_ok(const char *name);

/* Takes the segment mutex; if its holder died, undoes what it left half done.
 * 0, or EPROTO for a segment whose mutex or log is garbage (then not held). */
int  segment_lock(struct segment *s);
void segment_unlock(struct segment *s);

static inline struct seg_header *seg_header(const struct segment *s)
{
    return (struct seg_header *)s->base;
}

/* Is [off, off + len) inside the heap? Overflow-proof. */
static inline bool seg_in_heap(const struct segment *s, uint64_t off, uint64_t len)
{
    return off >= s->g.heap_off && off <= s->g.heap_end && len <= s->g.heap_end - off;
}

static inline void *seg_at(const struct segment *s, uint64_t off)
{
    return s->base + off;
}

static inline uint64_t seg_off(const struct segment *s, const void *p)
{
    return (uint64_t)((const char *)p - s->base);
}

#endif
