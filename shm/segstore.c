/* SPDX-License-Identifier: MIT */
/* The segment store: named objects in a segment (store.h's interface over
 * segment.h, alloc.h, names.h and undo.h).
 *
 * Every call runs under the segment mutex (segment_lock, which also repairs
 * what a dead holder left) and ends with undo_commit, undo_discard or
 * undo_rollback before it unlocks: the log is empty whenever the mutex is free.
 *
 * create: allocate (logged), init the object in bytes nobody can reach, fill a
 *         spare name slot, publish it (logged), commit.
 * remove: save the object's words in the log, destroy it (EBUSY: discard the
 *         log, nothing changed), unpublish (logged), free (logged), commit.
 *         A death after destroy rolls the object's bytes back with the rest:
 *         the name still leads to the object as it was before the call.
 *         A dict owns more heap blocks than one log can free: dict_drain
 *         first empties it in small committed steps (a remove killed there
 *         leaves the dict in place, empty), then it goes as any object does.
 *
 * Lock order: the segment mutex, then (inside destroy) an object's own lock,
 * only ever tried, never waited for: destroy answers EBUSY instead. Nothing
 * blocks while the segment mutex is held, so no call holds it for long, and a
 * user holding any of the objects' locks may call the manager. */
#include "store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "dict.h"
#include "names.h"
#include "undo.h"

struct segstore {
    struct store base;
    struct segment seg;
};

_Static_assert(sizeof(ps_condition_t) / 8 + 1 + NAMES_UNDO_WORDS + NAMES_LOG_RESERVE < UNDO_MAX,
               "the undo log must hold the largest object's remove");
_Static_assert(HEAP_UNDO_WORDS <= NAMES_LOG_RESERVE, "heap_free must fit after unpublish");

static struct segment *seg_of(struct store *st) { return &((struct segstore *)st)->seg; }

static uint64_t round8(uint64_t n) { return (n + 7) / 8 * 8; }

/* ---- get ---- */

static int use_found(struct segment *s, const struct name_entry *e,
                     const struct obj_request *rq, void **obj)
{
    if (!names_entry_ok(s, e, OBJ_TYPE_END))
        return EPROTO;
    if (e->type != (uint64_t)rq->type)
        return EEXIST;
    /* A queue's size follows from its own header; other types have one size
     * each, except Values, which may be asked for fewer bytes than they have. */
    if (rq->sound ? !rq->sound(seg_at(s, e->obj_off), e->obj_size) : rq->size > e->obj_size)
        return rq->type == OBJ_VALUE ? EINVAL : EPROTO;
    *obj = seg_at(s, e->obj_off);
    return 0;
}

/* Three quarters full at most: probes stay short. */
static bool table_has_room(const struct segment *s)
{
    return seg_header(s)->objects < s->g.table_slots / 4 * 3;
}

static int create(struct segment *s, struct name_entry *spare, const char *name, size_t len,
                  const struct obj_request *rq, void **obj)
{
    if (!spare || !table_has_room(s))
        return ENOMEM;
    uint64_t off;
    int err = heap_alloc(s, rq->size, &off);
    if (!err && (err = rq->init(seg_at(s, off), rq->arg)) == 0) {
        names_publish(s, spare, name, len, rq->type, off, rq->size);
        undo_commit(s);
        *obj = seg_at(s, off);
        return 0;
    }
    undo_rollback(s);               /* we are alive: take the allocation back */
    return err;
}

static int seg_get(struct store *st, const char *name, const struct obj_request *rq, void **obj)
{
    struct segment *s = seg_of(st);
    size_t len = strlen(name);
    int err = segment_lock(s);
    if (err)
        return err;
    struct name_lookup l;
    err = names_find(s, name, len, &l);
    if (!err)
        err = l.found ? use_found(s, l.found, rq, obj) : create(s, l.spare, name, len, rq, obj);
    segment_unlock(s);
    return err;
}

/* ---- remove ---- */

static int remove_found(struct segment *s, struct name_entry *e, const struct obj_remover *r)
{
    if (!names_entry_ok(s, e, OBJ_TYPE_END))
        return EPROTO;
    if (e->type == OBJ_DICT) {
        if (e->obj_size < dict_header_size())
            return EPROTO;
        int err = dict_drain(s, seg_at(s, e->obj_off));
        if (err)
            return err;
    }
    uint64_t block = heap_block_bytes(s, e->obj_off);
    uint64_t save = round8(r->touched((enum obj_type)e->type));
    if (!block || save > block - sizeof(struct block))
        return EPROTO;
    undo_save(s, e->obj_off, save);
    int err = r->destroy(seg_at(s, e->obj_off), (enum obj_type)e->type);
    if (err) {
        undo_discard(s);            /* destroy changed nothing */
        return err;
    }
    names_unpublish(s, e);
    err = heap_free(s, e->obj_off);
    if (err) {
        undo_rollback(s);
        return err;
    }
    undo_commit(s);
    return 0;
}

static int seg_remove(struct store *st, const char *name, const struct obj_remover *r)
{
    struct segment *s = seg_of(st);
    int err = segment_lock(s);
    if (err)
        return err;
    struct name_lookup l;
    err = names_find(s, name, strlen(name), &l);
    if (!err)
        err = l.found ? remove_found(s, l.found, r) : ENOENT;
    segment_unlock(s);
    return err;
}

/* ---- stats ---- */

/* The heap blocks the dicts own beside their headers (tables, entries), each
 * dict checked against its own counters. */
static int dict_blocks(const struct segment *s, uint64_t *bytes)
{
    *bytes = 0;
    for (uint64_t i = 0; i < s->g.table_slots; i++) {
        const struct name_entry *e = (const struct name_entry *)seg_at(s, s->g.table_off) + i;
        if (__atomic_load_n(&e->state, __ATOMIC_ACQUIRE) != SLOT_USED ||
            __atomic_load_n(&e->type, __ATOMIC_RELAXED) != OBJ_DICT)
            continue;
        struct name_entry copy;
        uint64_t b;
        if (names_read_slot(s, i, &copy, OBJ_TYPE_END))
            return EPROTO;
        if (copy.state != SLOT_USED || copy.type != OBJ_DICT)
            continue;
        if (copy.obj_size < dict_header_size() ||
            dict_account(s, seg_at(s, copy.obj_off), &b))
            return EPROTO;
        *bytes += b;
    }
    return 0;
}

/* The counters the header keeps must match what the heap and the table hold,
 * and the two must tile the heap exactly. */
static int count(struct segment *s, ps_manager_stats_t *out)
{
    struct heap_walk hw;
    struct names_walk nw;
    uint64_t dicts = 0;
    int err = heap_walk(s, &hw);
    if (!err)
        err = names_walk(s, &nw, OBJ_TYPE_END);
    if (!err)
        err = dict_blocks(s, &dicts);
    if (err)
        return err;
    const struct seg_header *h = seg_header(s);
    uint64_t heap = s->g.heap_end - s->g.heap_off;
    if (hw.free_bytes != h->free_bytes || nw.used != h->objects ||
        dicts > heap || hw.free_bytes + nw.used_bytes + dicts != heap)
        return EPROTO;
    *out = (ps_manager_stats_t){
        .size = s->g.size, .heap_bytes = heap, .free_bytes = hw.free_bytes,
        .largest_free = hw.largest_free, .free_blocks = hw.free_blocks,
        .objects = nw.used, .name_slots = s->g.table_slots, .tombstones = nw.tombstones,
        .repairs = h->repairs,
    };
    return 0;
}

static int seg_stats(struct store *st, ps_manager_stats_t *out)
{
    struct segment *s = seg_of(st);
    int err = segment_lock(s);
    if (err)
        return err;
    err = count(s, out);
    segment_unlock(s);
    return err;
}

/* ---- life ---- */

static void seg_close(struct store *st)
{
    segment_unmap(seg_of(st));
    free(st);
}

static const struct store_ops segstore_ops = {
    .get = seg_get, .remove = seg_remove, .stats = seg_stats, .close = seg_close,
};

static int make(const char *name, size_t size, bool create_it, struct store **out)
{
    struct segstore *ss = calloc(1, sizeof *ss);
    if (!ss)
        return ENOMEM;
    int err = create_it ? segment_create(&ss->seg, name, size) : segment_open(&ss->seg, name);
    if (err) {
        free(ss);
        return err;
    }
    ss->base.ops = &segstore_ops;
    *out = &ss->base;
    return 0;
}

int segstore_create(const char *name, size_t size, struct store **out)
{
    return make(name, size, true, out);
}

int segstore_open(const char *name, struct store **out)
{
    return make(name, 0, false, out);
}

int segstore_unlink(const char *name)
{
    return segment_unlink(name);
}

/* ---- the read-only view ---- */

struct segview {
    struct segment seg;                         /* its mapping is PROT_READ */
};

int segview_open(const char *name, struct segview **out, const char **why)
{
    *why = NULL;
    struct segview *v = calloc(1, sizeof *v);
    if (!v)
        return ENOMEM;
    int err = segment_open_readonly(&v->seg, name, why);
    if (err)
        free(v);
    else
        *out = v;
    return err;
}

/* Without the mutex, a call in progress can make the counts disagree for a
 * moment; a call killed halfway, until the next call repairs it. */
int segview_stats(struct segview *v, ps_manager_stats_t *out, const char **why)
{
    int err = EPROTO;
    for (int try = 0; try < 20 && err == EPROTO; try++) {
        if (try)
            nanosleep(&(struct timespec){ 0, 5 * 1000 * 1000 }, NULL);
        err = count(&v->seg, out);
    }
    if (err)
        *why = __atomic_load_n(&seg_header(&v->seg)->undo.count, __ATOMIC_ACQUIRE)
                   ? "a call is in progress, or was killed halfway (the next call repairs it)"
                   : "its counts, free list and name table disagree";
    return err;
}

int segview_next(struct segview *v, size_t *slot, struct segview_object *o)
{
    const struct segment *s = &v->seg;
    while (*slot < s->g.table_slots) {
        struct name_entry e;
        if (names_read_slot(s, (*slot)++, &e, OBJ_TYPE_END))
            return EPROTO;
        if (e.state != SLOT_USED)
            continue;
        o->type = (enum obj_type)e.type;
        o->name_len = e.name_len;
        memcpy(o->name, e.name, e.name_len + 1);
        o->obj = seg_at(s, e.obj_off);
        o->size = e.obj_size;
        return 0;
    }
    return ENOENT;
}

void segview_close(struct segview *v)
{
    segment_unmap(&v->seg);
    free(v);
}
