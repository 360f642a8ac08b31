/* SPDX-License-Identifier: MIT */
/* The name table of a segment: open addressing with linear probing. All calls
 * but names_read_slot need the segment mutex; see names.c. */
#ifndef PS_SHM_NAMES_H
#define PS_SHM_NAMES_H

#include <stddef.h>
#include <stdint.h>

#include "segment.h"

/* Words of the undo log names_publish may use, and names_unpublish at least;
 * names_unpublish may use more, but always leaves NAMES_LOG_RESERVE free for
 * the heap_free that follows it. */
#define NAMES_UNDO_WORDS 4
#define NAMES_LOG_RESERVE 16

struct name_lookup {
    struct name_entry *found;   /* the USED entry of the name, or NULL */
    struct name_entry *spare;   /* where it would go (first tombstone or empty), or NULL */
};

/* 0 or EPROTO (a slot in a state that does not exist). name is 1..SEG_NAME_MAX. */
int  names_find(const struct segment *s, const char *name, size_t len, struct name_lookup *l);
/* Does a USED entry describe an object inside the heap of a known type? */
bool names_entry_ok(const struct segment *s, const struct name_entry *e, uint64_t type_end);
/* Fills the spare slot (unreachable while not USED), then marks it USED, logged. */
void names_publish(struct segment *s, struct name_entry *spare, const char *name, size_t len,
                   uint64_t type, uint64_t obj_off, uint64_t obj_size);
/* Marks a USED entry free again, logged. */
void names_unpublish(struct segment *s, struct name_entry *e);

struct names_walk {
    uint64_t used, tombstones;
    uint64_t used_bytes;        /* heap blocks of the USED entries, headers included */
};
/* Counts the table; EPROTO if a slot is garbage or a USED entry does not lead
 * to an allocated block. */
int  names_walk(const struct segment *s, struct names_walk *w, uint64_t type_end);

/* Slot i, for a reader that holds no lock: *copy gets its state and, if USED,
 * its words, checked as names_walk checks them (name NUL-terminated). 0, or
 * EPROTO for a slot that is garbage. */
int  names_read_slot(const struct segment *s, uint64_t i, struct name_entry *copy,
                     uint64_t type_end);

#endif
