/* SPDX-License-Identifier: MIT */
/* The heap allocator of a segment.
 *
 * Invariants (under the segment mutex, between calls):
 *   - the heap [heap_off, heap_end) is tiled by blocks; each starts with
 *     struct block { size, next }, size a multiple of SEG_ALIGN, >= BLOCK_MIN;
 *   - free blocks form a list from header.free_head in strictly increasing
 *     address order, and no two free blocks are adjacent (free coalesces);
 *     header.free_bytes is the sum of their sizes;
 *   - an allocated block has next == BLOCK_USED_TAG; its payload follows the
 *     header and is what a name entry's obj_off points to.
 * Address order makes every walk finish (a corrupt list that goes backwards is
 * caught, not followed forever), and lets free merge with both neighbours.
 *
 * Crash safety: every word of the list that another call can reach is changed
 * through undo_set. The header of the remainder after a split is written
 * directly: until the logged link to it is stored, nothing reaches it. At most
 * HEAP_UNDO_WORDS words are logged per call.
 *
 * Hostile segments: every block offset and size is checked against the heap
 * before it is followed (block_ok). */
#include "alloc.h"

#include <errno.h>
#include <string.h>

#include "undo.h"

static uint64_t round_up(uint64_t n, uint64_t to) { return (n + to - 1) / to * to; }

static struct block *block_at(const struct segment *s, uint64_t off) { return seg_at(s, off); }

/* A block header at off that lies wholly inside the heap. */
static bool block_ok(const struct segment *s, uint64_t off)
{
    if (off % SEG_ALIGN || !seg_in_heap(s, off, BLOCK_MIN))
        return false;
    uint64_t size = block_at(s, off)->size;
    return size >= BLOCK_MIN && size % SEG_ALIGN == 0 && seg_in_heap(s, off, size);
}

/* A free block whose successor lies after it. */
static bool free_block_ok(const struct segment *s, uint64_t off)
{
    if (!block_ok(s, off))
        return false;
    const struct block *b = block_at(s, off);
    return b->next == 0 || b->next >= off + b->size;
}

static uint64_t *free_bytes(const struct segment *s) { return &seg_header(s)->free_bytes; }

/* Takes `need` bytes from the front of free block b (of `size` bytes, checked),
 * whose link is *link. Returns the bytes taken: need, or all of b if the rest
 * would be too small to be a block. */
static uint64_t take(struct segment *s, uint64_t *link, uint64_t b_off, uint64_t size,
                     uint64_t need)
{
    struct block *b = block_at(s, b_off);
    if (size - need >= BLOCK_MIN) {
        struct block *rest = block_at(s, b_off + need);     /* unreachable yet */
        rest->size = size - need;
        rest->next = b->next;
        undo_set(s, link, b_off + need);
        undo_set(s, &b->size, need);
    } else {
        need = size;
        undo_set(s, link, b->next);
    }
    undo_set(s, &b->next, BLOCK_USED_TAG);
    undo_set(s, free_bytes(s), *free_bytes(s) - need);
    return need;
}

int heap_alloc(struct segment *s, uint64_t bytes, uint64_t *payload)
{
    if (bytes > s->g.heap_end - s->g.heap_off)
        return ENOMEM;
    uint64_t need = round_up(bytes + sizeof(struct block), SEG_ALIGN);
    if (need < BLOCK_MIN)
        need = BLOCK_MIN;
    uint64_t *link = &seg_header(s)->free_head;
    for (uint64_t off = *link; off; off = *link) {
        if (!free_block_ok(s, off))
            return EPROTO;
        struct block *b = block_at(s, off);
        uint64_t size = b->size;        /* read once: what was checked is used */
        if (size >= need) {
            uint64_t taken = take(s, link, off, size, need);
            *payload = off + sizeof(struct block);
            memset(seg_at(s, *payload), 0, taken - sizeof(struct block));
            return 0;
        }
        link = &b->next;
    }
    return ENOMEM;
}

uint64_t heap_block_bytes(const struct segment *s, uint64_t payload)
{
    if (payload < sizeof(struct block))
        return 0;
    uint64_t off = payload - sizeof(struct block);
    if (!block_ok(s, off) || block_at(s, off)->next != BLOCK_USED_TAG)
        return 0;
    return block_at(s, off)->size;
}

/* Links block b (allocated, size bytes) back between free blocks prev (0: the
 * list head) and next (0: none), merging it with either when adjacent. */
static void insert(struct segment *s, uint64_t prev, uint64_t b_off, uint64_t next)
{
    struct block *b = block_at(s, b_off);
    uint64_t size = b->size, new_next = next;
    undo_set(s, free_bytes(s), *free_bytes(s) + size);
    if (next && b_off + size == next) {                     /* merge forward */
        size += block_at(s, next)->size;
        new_next = block_at(s, next)->next;
    }
    if (prev && prev + block_at(s, prev)->size == b_off) {  /* merge backward */
        struct block *p = block_at(s, prev);
        undo_set(s, &p->next, new_next);
        undo_set(s, &p->size, p->size + size);
        return;
    }
    undo_set(s, &b->next, new_next);
    undo_set(s, &b->size, size);
    undo_set(s, prev ? &block_at(s, prev)->next : &seg_header(s)->free_head, b_off);
}

int heap_free(struct segment *s, uint64_t payload)
{
    if (!heap_block_bytes(s, payload))
        return EPROTO;
    uint64_t b_off = payload - sizeof(struct block), prev = 0;
    uint64_t next = seg_header(s)->free_head;
    while (next && next < b_off) {
        if (!free_block_ok(s, next))
            return EPROTO;
        prev = next;
        next = block_at(s, next)->next;
    }
    if (next && (!free_block_ok(s, next) || next < b_off + block_at(s, b_off)->size))
        return EPROTO;                      /* overlaps the block being freed */
    if (prev && prev + block_at(s, prev)->size > b_off)
        return EPROTO;
    insert(s, prev, b_off, next);
    return 0;
}

int heap_walk(const struct segment *s, struct heap_walk *w)
{
    *w = (struct heap_walk){ 0 };
    for (uint64_t off = seg_header(s)->free_head; off; off = block_at(s, off)->next) {
        if (!free_block_ok(s, off))
            return EPROTO;
        uint64_t size = block_at(s, off)->size;
        w->free_bytes += size;
        w->free_blocks++;
        if (size > w->largest_free)
            w->largest_free = size;
    }
    return 0;
}
