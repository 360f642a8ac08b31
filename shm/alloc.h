/* SPDX-License-Identifier: MIT */
/* The heap of a segment: first fit over an address-ordered, doubly linked
 * free list that coalesces on free. All calls need the segment mutex (but
 * heap_walk, which a reader without it may retry); see alloc.c. */
#ifndef PS_SHM_ALLOC_H
#define PS_SHM_ALLOC_H

#include <stdint.h>

#include "segment.h"

/* Words of the undo log one heap_alloc or heap_free may use: six for the
 * free list, FIT_CLASSES + 1 for the hints. */
#define HEAP_UNDO_WORDS (6 + FIT_CLASSES + 1)

/* *payload: offset of `bytes` zeroed bytes, SEG_ALIGN-aligned. ENOMEM (nothing
 * changed) or EPROTO (a corrupt free list). */
int heap_alloc(struct segment *s, uint64_t bytes, uint64_t *payload);
/* Gives back what heap_alloc returned. EPROTO if that is not an allocated block. */
int heap_free(struct segment *s, uint64_t payload);
/* Bytes of the block holding payload (its header included), 0 if not a block. */
uint64_t heap_block_bytes(const struct segment *s, uint64_t payload);

struct heap_walk {
    uint64_t free_bytes, largest_free, free_blocks;
};
/* Walks the free list; EPROTO if it is not sound. */
int heap_walk(const struct segment *s, struct heap_walk *w);

#endif
