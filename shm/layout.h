/* SPDX-License-Identifier: MIT */
/* The bytes of a manager segment, as every process sees them.
 *
 *   [ header | name table | heap ..................................... ]
 *   0        table_off    heap_off                                  size
 *
 * Shared memory holds offsets from the start of the segment, never pointers:
 * each process maps the segment at its own address. Every word is 64 bits, so
 * that the undo log (undo.h) can save and restore any of them whole.
 *
 * The header's first part (magic .. heap_end) is written once, when the segment
 * is made, and never changes; each process checks it at open and keeps its own
 * copy (struct geometry), so a later corruption cannot move what it follows. The
 * counters, the name table and the heap's block headers change under the
 * segment mutex, each change recorded in the undo log first. */
#ifndef PS_SHM_LAYOUT_H
#define PS_SHM_LAYOUT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define SEG_MAGIC   0x4745535953595350ull   /* "PSYSYSEG" little-endian */
#define SEG_VERSION 2u                      /* 2: doubly linked free list */
#define SEG_ALIGN   16u                     /* of blocks and payloads */
#define SEG_NAME_MAX 63                     /* object names: 1..63 bytes */
#define UNDO_MAX    512                     /* words one manager call may change */
#define FIT_CLASSES 7                       /* heap_alloc's size classes */

/* One saved word: where, and what it held before. */
struct undo_entry {
    uint64_t off;
    uint64_t old;
};

struct undo_log {
    uint64_t count;                         /* entries in effect; 0: committed */
    struct undo_entry e[UNDO_MAX];
};

struct seg_header {
    /* immutable after creation */
    uint64_t magic;
    uint64_t version;
    uint64_t header_size;                   /* sizeof(struct seg_header) */
    uint64_t size;                          /* bytes of the whole segment */
    uint64_t table_off;
    uint64_t table_slots;                   /* a power of two */
    uint64_t heap_off;
    uint64_t heap_end;
    /* counters: changed under the mutex, logged */
    uint64_t free_head;                     /* first free block, 0: none */
    uint64_t free_bytes;                    /* sum of free block sizes */
    uint64_t objects;                       /* USED name entries */
    uint64_t repairs;                       /* dead holders taken over (not logged) */
    uint64_t free_tail;                     /* last free block - heap_off (a fresh,
                                               zeroed header: the one at heap_off);
                                               no meaning while free_head is 0 */
    uint64_t free_finger;                   /* where the last free was, 0: none */
    uint64_t fit[FIT_CLASSES];              /* heap_alloc's hints, 0: none (alloc.c) */
    /* the lock of everything above and below */
    union {
        pthread_mutex_t mutex;              /* robust, process-shared */
        uint64_t mutex_words[8];
    } m;
    struct undo_log undo;
};

/* Name table slots. */
enum { SLOT_EMPTY = 0, SLOT_USED = 1, SLOT_TOMB = 2 };

struct name_entry {
    uint64_t state;                         /* SLOT_*: the only word a change logs */
    uint64_t type;                          /* enum obj_type (store.h) */
    uint64_t obj_off;                       /* payload offset in the heap */
    uint64_t obj_size;                      /* payload bytes asked for at creation */
    uint64_t hash;
    uint64_t name_len;                      /* 1..SEG_NAME_MAX */
    char name[SEG_NAME_MAX + 1];            /* NUL-terminated */
};

/* Heap blocks: size counts the block header. An allocated one holds
 * BLOCK_USED_TAG in next, and its payload follows the header. A free one is
 * linked both ways in address order: next in the header, and prev, the
 * offset of the free block before it (0: none), in the word after it (there
 * is room: a block has BLOCK_MIN bytes at least). */
struct block {
    uint64_t size;
    uint64_t next;
};
#define BLOCK_USED_TAG 0x444553554b434f4cull
#define BLOCK_MIN (2 * sizeof(struct block))
#define BLOCK_PREV sizeof(struct block)     /* where a free block's prev link is */

/* What a process knows of a segment after checking it: never re-read. */
struct geometry {
    uint64_t size, table_off, table_slots, heap_off, heap_end;
};

#endif
