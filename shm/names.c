/* SPDX-License-Identifier: MIT */
/* The name table: a fixed array of table_slots entries (a power of two), open
 * addressing, linear probing from hash & (slots - 1).
 *
 * Invariants (under the segment mutex): an entry is EMPTY, USED or a TOMBstone
 * (a removed entry that a probe must walk past); a name is in at most one USED
 * entry, and every slot between its home and its entry is not EMPTY. A lookup
 * stops at the first EMPTY slot or after table_slots probes, so a hostile or
 * full table cannot make it loop.
 *
 * Tombstones are reused (PITFALLS 8): an insert takes the first tombstone on
 * its probe path. Removal also turns the tombstones right before an EMPTY slot
 * back into EMPTY (no probe needs to pass them), so chains stay short under
 * create/remove loops.
 *
 * Crash safety: only the state word of an entry is ever logged. The other
 * words are written while the entry is not USED, when no lookup reads them; a
 * call killed after that leaves an EMPTY or TOMB entry with new bytes in it,
 * which means nothing. */
#include "names.h"

#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "undo.h"

static struct name_entry *slot_at(const struct segment *s, uint64_t i)
{
    return (struct name_entry *)seg_at(s, s->g.table_off) + (i & (s->g.table_slots - 1));
}

/* FNV-1a, 64 bits. */
static uint64_t name_hash(const char *name, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)name[i]) * 0x100000001b3ull;
    return h;
}

static bool same_name(const struct name_entry *e, const char *name, size_t len, uint64_t hash)
{
    return e->hash == hash && e->name_len == len && memcmp(e->name, name, len) == 0;
}

int names_find(const struct segment *s, const char *name, size_t len, struct name_lookup *l)
{
    uint64_t hash = name_hash(name, len);
    *l = (struct name_lookup){ NULL, NULL };
    for (uint64_t i = 0; i < s->g.table_slots; i++) {
        struct name_entry *e = slot_at(s, hash + i);
        uint64_t state = __atomic_load_n(&e->state, __ATOMIC_ACQUIRE);
        if (state == SLOT_EMPTY) {
            if (!l->spare)
                l->spare = e;
            return 0;
        }
        if (state == SLOT_TOMB) {
            if (!l->spare)
                l->spare = e;
        } else if (state != SLOT_USED) {
            return EPROTO;
        } else if (same_name(e, name, len, hash)) {
            l->found = e;
            return 0;
        }
    }
    return 0;
}

bool names_entry_ok(const struct segment *s, const struct name_entry *e, uint64_t type_end)
{
    return e->type > 0 && e->type < type_end && e->name_len >= 1 &&
           e->name_len <= SEG_NAME_MAX && e->obj_off % SEG_ALIGN == 0 &&
           seg_in_heap(s, e->obj_off, e->obj_size);
}

void names_publish(struct segment *s, struct name_entry *spare, const char *name, size_t len,
                   uint64_t type, uint64_t obj_off, uint64_t obj_size)
{
    spare->type = type;
    spare->obj_off = obj_off;
    spare->obj_size = obj_size;
    spare->hash = name_hash(name, len);
    spare->name_len = len;
    memset(spare->name, 0, sizeof spare->name);
    memcpy(spare->name, name, len);
    undo_set(s, &spare->state, SLOT_USED);      /* publish last */
    struct seg_header *h = seg_header(s);
    undo_set(s, &h->objects, h->objects + 1);
}

void names_unpublish(struct segment *s, struct name_entry *e)
{
    struct seg_header *h = seg_header(s);
    undo_set(s, &h->objects, h->objects - 1);
    uint64_t i = (uint64_t)(e - slot_at(s, 0));
    if (slot_at(s, i + 1)->state != SLOT_EMPTY) {
        undo_set(s, &e->state, SLOT_TOMB);
        return;
    }
    /* Nothing probes past the EMPTY slot after e: e and the tombstones right
     * before it can be EMPTY. Bounded by the table and by the log's room. */
    undo_set(s, &e->state, SLOT_EMPTY);
    for (uint64_t k = 1; k < s->g.table_slots && undo_room(s) > NAMES_LOG_RESERVE; k++) {
        struct name_entry *p = slot_at(s, i - k);
        if (p->state != SLOT_TOMB)
            break;
        undo_set(s, &p->state, SLOT_EMPTY);
    }
}

/* A USED entry's object fits in the allocated block it points into. */
static uint64_t entry_block(const struct segment *s, const struct name_entry *e,
                            uint64_t type_end)
{
    if (!names_entry_ok(s, e, type_end))
        return 0;
    uint64_t block = heap_block_bytes(s, e->obj_off);
    return block && e->obj_size <= block - sizeof(struct block) ? block : 0;
}

int names_walk(const struct segment *s, struct names_walk *w, uint64_t type_end)
{
    *w = (struct names_walk){ 0 };
    for (uint64_t i = 0; i < s->g.table_slots; i++) {
        const struct name_entry *e = slot_at(s, i);
        uint64_t state = e->state, block;
        if (state == SLOT_USED) {
            if (!(block = entry_block(s, e, type_end)))
                return EPROTO;
            w->used++;
            w->used_bytes += block;
        } else if (state == SLOT_TOMB)
            w->tombstones++;
        else if (state != SLOT_EMPTY)
            return EPROTO;
    }
    return 0;
}

/* Copies first, then checks the copy: what is checked is what the caller uses,
 * even if a writer changes the slot meanwhile. */
int names_read_slot(const struct segment *s, uint64_t i, struct name_entry *copy,
                    uint64_t type_end)
{
    const struct name_entry *e = slot_at(s, i);
    copy->state = __atomic_load_n(&e->state, __ATOMIC_ACQUIRE);
    if (copy->state == SLOT_EMPTY || copy->state == SLOT_TOMB)
        return 0;
    memcpy((char *)copy + sizeof copy->state, (const char *)e + sizeof e->state,
           sizeof *e - sizeof e->state);
    if (copy->state != SLOT_USED || !entry_block(s, copy, type_end))
        return EPROTO;
    copy->name[copy->name_len] = '\0';
    return 0;
}
