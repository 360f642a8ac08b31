/* SPDX-License-Identifier: MIT */
/* The shared dict: a hash table in a manager segment's heap.
 *
 * What the name leads to is a small header (struct dict_header). The table is
 * another heap block: a power of two of slots {hash, entry}, open addressing
 * with linear probing; entry is 0 (EMPTY), 1 (TOMBstone: a deleted entry a
 * probe must walk past) or the heap offset of an entry block:
 *
 *   { key_len, value_len, key bytes, NUL, padding to 8 | value, padding to 8 }
 *
 * The value is 8-byte aligned, so an int64 value is one word (incr logs one
 * word). Shared memory holds offsets only. The header counts the live entries
 * (len), the tombstones, and the heap bytes the dict owns (bytes: table, entry
 * and garbage blocks, block headers included) - stats checks all three
 * against a walk (dict_account).
 *
 * Every call runs under the segment mutex (segment_lock, which first undoes
 * what a dead holder left half done) and ends with undo_commit, undo_discard
 * or undo_rollback before it unlocks, as segstore.c does. A word another call
 * can reach (the header, a published table slot, a published entry's value)
 * is changed only through undo_set; a block just allocated (a new entry, a
 * new table) is written directly and becomes reachable by one logged store.
 * So a call killed at any point is taken back whole by the next caller:
 *
 *   set of an existing key, new value of the same number of words and at most
 *       INPLACE_MAX bytes: the changed words are overwritten in place, logged;
 *   otherwise: a new entry is written, the slot's entry offset is swapped
 *       (logged), the old entry freed (logged);
 *   insert: the entry is written, the slot filled (logged), the counters
 *       updated (logged); when used + tombstones would pass 3/4 of the slots,
 *       the table is first rebuilt (grown, or at the same size to drop the
 *       tombstones: PITFALLS 8) into a new block, published by two logged
 *       stores, and the old table freed: the same transaction;
 *   del/pop: the slot becomes a TOMBstone (or EMPTY, with the tombstones right
 *       before it, when the next slot is EMPTY), the entry is freed;
 *   ENOMEM and every other error roll the transaction back: nothing changed.
 *
 * clear must be atomic with any number of entries, but one transaction may
 * log only UNDO_MAX words. So it detaches the table in one committed step (the
 * dict is then empty; the old table becomes garbage, recorded in the header)
 * and then frees the garbage entries in further committed steps of about 50
 * (each marks its garbage slots EMPTY, logged), and at last the garbage table. A
 * process killed in between leaves garbage that the next call on the dict
 * frees before it does anything else. ps_manager_remove of a dict drains it
 * the same way (dict_drain) before the store removes the header: a remove
 * killed halfway may leave the dict in place, but empty.
 *
 * foreach copies every entry into malloc'd memory under the mutex, unlocks,
 * then calls fn on the copy: fn sees one state, and may do what it likes.
 *
 * Everything read from the segment is checked before it is followed (the
 * table against the heap, each entry offset and length), so a corrupt segment
 * gives EPROTO, never a wild access or an endless loop. */
#include "dict.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "registry.h"
#include "undo.h"

#define DICT_MAGIC  0x5443494453595350ull   /* "PSYSDICT" little-endian */
#define MIN_SLOTS   8u
#define INPLACE_MAX 256u                    /* bytes a set may overwrite in place */
#define E_EMPTY     0u
#define E_TOMB      1u

struct dict_header {
    uint64_t magic;
    uint64_t table_off;                     /* 0: no table yet */
    uint64_t slots;                         /* a power of two >= MIN_SLOTS, or 0 */
    uint64_t len;                           /* live entries */
    uint64_t tombs;                         /* TOMB slots in the table */
    uint64_t bytes;                         /* heap bytes owned, block headers included */
    uint64_t garbage_off;                   /* a detached table being freed, or 0 */
    uint64_t garbage_slots;
};

struct dict_slot {
    uint64_t hash;
    uint64_t entry;                         /* E_EMPTY, E_TOMB or an entry's offset */
};

struct dict_entry {
    uint64_t key_len;
    uint64_t value_len;
    char key[];                             /* key_len bytes, NUL, then the value */
};

/* A checked entry: the lengths are the ones that were checked. */
struct entry_view {
    struct dict_entry *e;
    uint64_t klen, vlen;
};

_Static_assert(INPLACE_MAX / 8 + 1 + 4 < UNDO_MAX / 4, "an in-place set logs few words");
_Static_assert(sizeof(struct dict_header) % 8 == 0, "the header is whole words");

/* ---- small helpers ---- */

static uint64_t round8(uint64_t n) { return (n + 7) & ~(uint64_t)7; }
static bool is_pow2(uint64_t n) { return n && !(n & (n - 1)); }
static uint64_t heap_size(const struct segment *s) { return s->g.heap_end - s->g.heap_off; }

static uint64_t entry_span(uint64_t klen, uint64_t vlen)
{
    return sizeof(struct dict_entry) + round8(klen + 1) + round8(vlen);
}

static char *value_of(struct dict_entry *e, uint64_t klen) { return e->key + round8(klen + 1); }

static uint64_t load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static uint64_t load32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t mix(uint64_t a, uint64_t b)
{
    unsigned __int128 r = (unsigned __int128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* A multiply-mix hash in the manner of wyhash: a few cycles for short keys,
 * every input bit reaching the low bits that pick the slot. */
static uint64_t key_hash(const char *key, size_t n)
{
    static const uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull,
                          k2 = 0x8ebc6af09c88c6e3ull;
    const unsigned char *p = (const unsigned char *)key;
    uint64_t h = k0 ^ (uint64_t)n, a, b;
    size_t left = n;
    while (left > 16) {
        h = mix(load64(p) ^ k1, load64(p + 8) ^ h);
        p += 16;
        left -= 16;
    }
    if (left > 8) {
        a = load64(p);
        b = load64(p + left - 8);
    } else if (left >= 4) {
        a = load32(p);
        b = load32(p + left - 4);
    } else if (left > 0) {
        a = (uint64_t)p[0] << 16 | (uint64_t)p[left / 2] << 8 | p[left - 1];
        b = 0;
    } else {
        a = b = 0;
    }
    return mix(mix(a ^ k1, b ^ h) ^ k2, (uint64_t)n ^ k1);
}

/* ---- checks of what the segment holds ---- */

static bool table_ok(const struct segment *s, uint64_t off, uint64_t slots)
{
    if (off == 0)
        return slots == 0;
    return off % SEG_ALIGN == 0 && is_pow2(slots) && slots >= MIN_SLOTS &&
           slots <= heap_size(s) / sizeof(struct dict_slot) &&
           seg_in_heap(s, off, slots * sizeof(struct dict_slot));
}

static bool entry_check(const struct segment *s, uint64_t off, struct entry_view *v)
{
    if (off % SEG_ALIGN || !seg_in_heap(s, off, sizeof(struct dict_entry)))
        return false;
    struct dict_entry *e = seg_at(s, off);
    uint64_t klen = e->key_len, vlen = e->value_len, heap = heap_size(s);
    if (klen >= heap || vlen >= heap || !seg_in_heap(s, off, entry_span(klen, vlen)))
        return false;
    *v = (struct entry_view){ e, klen, vlen };
    return true;
}

static int header_ok(const struct segment *s, const struct dict_header *h)
{
    if (h->magic != DICT_MAGIC || !table_ok(s, h->table_off, h->slots) ||
        !table_ok(s, h->garbage_off, h->garbage_slots) || h->len > h->slots ||
        h->tombs > h->slots - h->len)
        return EPROTO;
    return 0;
}

static struct dict_slot *table_of(const struct segment *s, uint64_t off)
{
    return seg_at(s, off);
}

/* ---- freeing a detached table (clear, remove, repair) ---- */

/* Commits the step so far. */
static void end_step(struct segment *s, struct dict_header *h, uint64_t *freed)
{
    if (*freed)
        undo_set(s, &h->bytes, h->bytes - *freed);
    undo_commit(s);
    *freed = 0;
}

/* Frees the garbage table's entries and then the table, in committed steps.
 * Needs an empty log. On EPROTO the step in progress is rolled back. */
static int collect(struct segment *s, struct dict_header *h)
{
    struct dict_slot *t = table_of(s, h->garbage_off);
    uint64_t slots = h->garbage_slots, freed = 0;
    int err = 0;
    for (uint64_t k = 0; k < slots && !err; k++) {
        struct dict_slot *sl = &t[k];
        uint64_t off = sl->entry, block;
        if (off <= E_TOMB)
            continue;
        if (undo_room(s) < HEAP_UNDO_WORDS + 4)
            end_step(s, h, &freed);
        if (!(block = heap_block_bytes(s, off)))
            err = EPROTO;
        else if (!(err = heap_free(s, off))) {
            undo_set(s, &sl->entry, E_EMPTY);
            freed += block;
        }
    }
    if (!err && undo_room(s) < HEAP_UNDO_WORDS + 8)
        end_step(s, h, &freed);
    uint64_t block = err ? 0 : heap_block_bytes(s, h->garbage_off);
    if (!err && !block)
        err = EPROTO;
    if (!err)
        err = heap_free(s, h->garbage_off);
    if (err) {
        undo_rollback(s);
        return err;
    }
    freed += block;
    undo_set(s, &h->garbage_off, 0);
    undo_set(s, &h->garbage_slots, 0);
    end_step(s, h, &freed);
    return 0;
}

/* Detaches the table as garbage: the dict is empty from this commit on. */
static void retire_table(struct segment *s, struct dict_header *h)
{
    if (!h->table_off)
        return;
    undo_set(s, &h->garbage_off, h->table_off);
    undo_set(s, &h->garbage_slots, h->slots);
    undo_set(s, &h->table_off, 0);
    undo_set(s, &h->slots, 0);
    undo_set(s, &h->len, 0);
    undo_set(s, &h->tombs, 0);
    undo_commit(s);
}

/* ---- a call ---- */

struct call {
    struct segment *s;
    struct dict_header *h;
};

/* Finds d's segment, takes its mutex, checks the header and frees garbage a
 * dead clear left. 0 with the mutex held, or an error without it. */
static int enter(ps_dict_t *d, struct call *c)
{
    if (!d)
        return EINVAL;
    struct segment *s = seg_registry_find(d);
    if (!s)
        return EINVAL;
    uint64_t off = seg_off(s, d);
    if (off % SEG_ALIGN || !seg_in_heap(s, off, sizeof(struct dict_header)))
        return EINVAL;
    int err = segment_lock(s);
    if (err)
        return err;
    struct dict_header *h = (struct dict_header *)(void *)d;
    err = header_ok(s, h);
    if (!err && h->garbage_off)
        err = collect(s, h);
    if (err) {
        segment_unlock(s);
        return err;
    }
    c->s = s;
    c->h = h;
    return 0;
}

/* Ends a call that may have logged: commit on success, else roll back. */
static int finish(struct call *c, int err)
{
    if (err)
        undo_rollback(c->s);
    else
        undo_commit(c->s);
    segment_unlock(c->s);
    return err;
}

/* ---- lookup ---- */

struct probe {
    struct dict_slot *slot;                 /* the key's slot, or NULL */
    struct entry_view v;                    /* its entry */
    struct dict_slot *spare;                /* first TOMB or EMPTY on the path, or NULL */
};

static int probe(const struct segment *s, const struct dict_header *h, const char *key,
                 uint64_t klen, uint64_t hash, struct probe *p)
{
    p->slot = p->spare = NULL;
    if (!h->table_off)
        return 0;
    struct dict_slot *t = table_of(s, h->table_off);
    uint64_t mask = h->slots - 1, at = hash & mask;
    for (uint64_t i = 0; i <= mask; i++, at = (at + 1) & mask) {
        struct dict_slot *sl = &t[at];
        uint64_t off = sl->entry;
        if (off <= E_TOMB) {
            if (!p->spare)
                p->spare = sl;
            if (off == E_EMPTY)
                return 0;
            continue;
        }
        if (sl->hash != hash)
            continue;
        if (!entry_check(s, off, &p->v))
            return EPROTO;
        if (p->v.klen == klen && memcmp(p->v.e->key, key, klen) == 0) {
            p->slot = sl;
            return 0;
        }
    }
    return 0;
}

/* The first EMPTY slot of hash's path in a table without tombstones. */
static struct dict_slot *first_empty(const struct segment *s, const struct dict_header *h,
                                     uint64_t hash)
{
    struct dict_slot *t = table_of(s, h->table_off);
    uint64_t mask = h->slots - 1, at = hash & mask;
    while (t[at].entry != E_EMPTY)
        at = (at + 1) & mask;
    return &t[at];
}

/* ---- changes ---- */

/* A new entry block, written directly (unreachable until a slot points to it). */
static int make_entry(struct segment *s, const char *key, uint64_t klen, const void *value,
                      uint64_t vlen, uint64_t *off, uint64_t *block)
{
    if (klen >= heap_size(s) || vlen >= heap_size(s))
        return ENOMEM;
    int err = heap_alloc(s, entry_span(klen, vlen), off);      /* zeroed */
    if (err)
        return err;
    struct dict_entry *e = seg_at(s, *off);
    e->key_len = klen;
    e->value_len = vlen;
    memcpy(e->key, key, klen);
    if (vlen)
        memcpy(value_of(e, klen), value, vlen);
    *block = heap_block_bytes(s, *off);
    return 0;
}

/* Smallest table that holds n entries at most half full. */
static uint64_t slots_for(uint64_t n)
{
    uint64_t slots = MIN_SLOTS;
    while (n * 2 > slots)
        slots *= 2;
    return slots;
}

/* Rebuilds the table into a new block of `slots` slots (filled directly, then
 * published by logged stores) and frees the old one. ENOMEM: nothing changed. */
static int rehash(struct segment *s, struct dict_header *h, uint64_t slots)
{
    if (slots > heap_size(s) / sizeof(struct dict_slot))
        return ENOMEM;
    uint64_t off, old_block = 0;
    int err = heap_alloc(s, slots * sizeof(struct dict_slot), &off);
    if (err)
        return err;
    struct dict_slot *to = table_of(s, off);                  /* zeroed: all EMPTY */
    uint64_t mask = slots - 1, moved = 0;
    if (h->table_off) {
        const struct dict_slot *from = table_of(s, h->table_off);
        for (uint64_t i = 0; i < h->slots; i++) {
            if (from[i].entry <= E_TOMB)
                continue;
            if (++moved >= slots)
                return EPROTO;                  /* more entries than len says */
            uint64_t at = from[i].hash & mask;
            while (to[at].entry != E_EMPTY)
                at = (at + 1) & mask;
            to[at] = from[i];
        }
        old_block = heap_block_bytes(s, h->table_off);
        if (moved != h->len || !old_block)
            return EPROTO;
        if ((err = heap_free(s, h->table_off)))
            return err;
    }
    undo_set(s, &h->table_off, off);
    undo_set(s, &h->slots, slots);
    undo_set(s, &h->tombs, 0);
    undo_set(s, &h->bytes, h->bytes - old_block + heap_block_bytes(s, off));
    return 0;
}

static int insert(struct segment *s, struct dict_header *h, struct dict_slot *spare,
                  uint64_t hash, const char *key, uint64_t klen, const void *value, uint64_t vlen)
{
    uint64_t off, block;
    int err = make_entry(s, key, klen, value, vlen, &off, &block);
    if (err)
        return err;
    bool crowded = !spare || (spare->entry == E_EMPTY &&
                              (h->len + h->tombs + 1) * 4 > h->slots * 3);
    if (crowded) {
        err = rehash(s, h, slots_for(h->len + 1));
        if (!err)
            spare = first_empty(s, h, hash);
        else if (err == ENOMEM && spare && h->len + h->tombs + 1 < h->slots)
            err = 0;                    /* no room to grow, but room left: go on */
        else
            return err;
    }
    if (spare->entry == E_TOMB)
        undo_set(s, &h->tombs, h->tombs - 1);
    undo_set(s, &spare->hash, hash);
    undo_set(s, &spare->entry, off);
    undo_set(s, &h->len, h->len + 1);
    undo_set(s, &h->bytes, h->bytes + block);
    return 0;
}

/* Overwrites the value's changed words, each logged. */
static void write_in_place(struct segment *s, const struct entry_view *v, const void *value,
                           uint64_t vlen)
{
    uint64_t *w = (uint64_t *)(void *)value_of(v->e, v->klen);
    const unsigned char *src = value;
    for (uint64_t at = 0; at < vlen; at += 8) {
        uint64_t word = 0;
        memcpy(&word, src + at, vlen - at < 8 ? vlen - at : 8);
        if (w[at / 8] != word)
            undo_set(s, &w[at / 8], word);
    }
    if (v->vlen != vlen)
        undo_set(s, &v->e->value_len, vlen);
}

static int replace(struct segment *s, struct dict_header *h, const struct probe *p,
                   const void *value, uint64_t vlen)
{
    if (vlen <= INPLACE_MAX && round8(vlen) == round8(p->v.vlen)) {
        write_in_place(s, &p->v, value, vlen);
        return 0;
    }
    uint64_t old = p->slot->entry, old_block = heap_block_bytes(s, old), off, block;
    if (!old_block)
        return EPROTO;
    int err = make_entry(s, p->v.e->key, p->v.klen, value, vlen, &off, &block);
    if (err)
        return err;
    undo_set(s, &p->slot->entry, off);
    undo_set(s, &h->bytes, h->bytes - old_block + block);
    return heap_free(s, old);
}

/* Removes the entry p found. */
static int remove_found(struct segment *s, struct dict_header *h, const struct probe *p)
{
    uint64_t off = p->slot->entry, block = heap_block_bytes(s, off);
    if (!block)
        return EPROTO;
    struct dict_slot *t = table_of(s, h->table_off);
    uint64_t mask = h->slots - 1, i = (uint64_t)(p->slot - t);
    if (t[(i + 1) & mask].entry != E_EMPTY) {
        undo_set(s, &p->slot->entry, E_TOMB);
        undo_set(s, &h->tombs, h->tombs + 1);
    } else {
        /* No probe passes the EMPTY slot after it: it and the tombstones
         * right before it can be EMPTY. Bounded by the log's room. */
        undo_set(s, &p->slot->entry, E_EMPTY);
        uint64_t cleared = 0;
        for (uint64_t k = 1; k <= mask && undo_room(s) > HEAP_UNDO_WORDS + 8; k++) {
            struct dict_slot *q = &t[(i - k) & mask];
            if (q->entry != E_TOMB)
                break;
            undo_set(s, &q->entry, E_EMPTY);
            cleared++;
        }
        if (cleared)
            undo_set(s, &h->tombs, h->tombs - cleared);
    }
    undo_set(s, &h->len, h->len - 1);
    undo_set(s, &h->bytes, h->bytes - block);
    return heap_free(s, off);
}

/* ---- the calls ---- */

/* A call on one key: the key hashed once, the dict entered, the key probed. */
struct keyed {
    struct call c;
    struct probe p;
    size_t klen;
    uint64_t hash;
    int err;                                /* probe's answer */
};

/* 0 with the dict entered (leave through finish or segment_unlock, whatever
 * k->err says), or enter's error with nothing held. */
static int enter_key(ps_dict_t *d, const char *key, struct keyed *k)
{
    k->klen = strlen(key);
    k->hash = key_hash(key, k->klen);
    int err = enter(d, &k->c);
    if (!err)
        k->err = probe(k->c.s, k->c.h, key, k->klen, k->hash, &k->p);
    return err;
}

static int dict_set(ps_dict_t *d, const char *key, const void *value, size_t len)
{
    if (!key || (!value && len))
        return EINVAL;
    struct keyed k;
    int err = enter_key(d, key, &k);
    if (err)
        return err;
    if (!(err = k.err))
        err = k.p.slot ? replace(k.c.s, k.c.h, &k.p, value, len)
                       : insert(k.c.s, k.c.h, k.p.spare, k.hash, key, k.klen, value, len);
    return finish(&k.c, err);
}

static int dict_get(ps_dict_t *d, const char *key, void *buf, size_t cap, size_t *len, bool pop)
{
    if (!key || (!buf && cap))
        return EINVAL;
    struct keyed k;
    int err = enter_key(d, key, &k);
    if (err)
        return err;
    const struct probe *p = &k.p;
    if (!(err = k.err) && !p->slot)
        err = ENOENT;
    if (!err) {
        if (len)
            *len = p->v.vlen;
        if (p->v.vlen > cap)
            err = ERANGE;                   /* nothing consumed */
        else {
            if (p->v.vlen)
                memcpy(buf, value_of(p->v.e, p->v.klen), p->v.vlen);
            if (pop)
                err = remove_found(k.c.s, k.c.h, &k.p);
        }
    }
    if (!pop) {
        segment_unlock(k.c.s);              /* nothing was logged */
        return err;
    }
    return finish(&k.c, err);
}

static int dict_del(ps_dict_t *d, const char *key)
{
    if (!key)
        return EINVAL;
    struct keyed k;
    int err = enter_key(d, key, &k);
    if (err)
        return err;
    if (!(err = k.err))
        err = k.p.slot ? remove_found(k.c.s, k.c.h, &k.p) : ENOENT;
    return finish(&k.c, err);
}

static int dict_incr(ps_dict_t *d, const char *key, int64_t delta, int64_t *result)
{
    if (!key)
        return EINVAL;
    struct keyed k;
    int err = enter_key(d, key, &k);
    if (err)
        return err;
    const struct probe *p = &k.p;
    int64_t now = delta;
    if (!(err = k.err) && p->slot) {
        if (p->v.vlen != sizeof(int64_t))
            err = EINVAL;
        else {
            uint64_t *w = (uint64_t *)(void *)value_of(p->v.e, p->v.klen);
            uint64_t sum = *w + (uint64_t)delta;           /* wraps, as two's complement */
            if (sum != *w)
                undo_set(k.c.s, w, sum);
            memcpy(&now, &sum, sizeof now);
        }
    } else if (!err) {
        err = insert(k.c.s, k.c.h, k.p.spare, k.hash, key, k.klen, &now, sizeof now);
    }
    err = finish(&k.c, err);
    if (!err && result)
        *result = now;
    return err;
}

static int dict_clear(ps_dict_t *d)
{
    struct call c;
    int err = enter(d, &c);                 /* frees older garbage first */
    if (err)
        return err;
    retire_table(c.s, c.h);
    if (c.h->garbage_off)
        err = collect(c.s, c.h);
    segment_unlock(c.s);                    /* collect committed or rolled back */
    return err;
}

static int dict_len(ps_dict_t *d, size_t *len)
{
    struct call c;
    int err = enter(d, &c);
    if (err)
        return err;
    *len = c.h->len;
    segment_unlock(c.s);
    return 0;
}

/* The snapshot: records laid out like entries, { key_len, value_len, key,
 * NUL, padding | value, padding }, so values are 8-byte aligned. */
static int snapshot(const struct segment *s, const struct dict_header *h, char **out,
                    uint64_t *count)
{
    *out = NULL;
    *count = 0;
    if (!h->len)
        return 0;
    const struct dict_slot *t = table_of(s, h->table_off);
    uint64_t total = 0, n = 0;
    struct entry_view v;
    for (uint64_t i = 0; i < h->slots; i++) {
        if (t[i].entry <= E_TOMB)
            continue;
        if (!entry_check(s, t[i].entry, &v))
            return EPROTO;
        total += entry_span(v.klen, v.vlen);
        if (total > heap_size(s))
            return EPROTO;                  /* entries that overlap */
        n++;
    }
    if (n != h->len)
        return EPROTO;
    char *buf = malloc(total), *at = buf;
    if (!buf)
        return ENOMEM;
    for (uint64_t i = 0; i < h->slots; i++) {
        if (t[i].entry <= E_TOMB || !entry_check(s, t[i].entry, &v))
            continue;
        uint64_t span = entry_span(v.klen, v.vlen);
        struct dict_entry *r = (struct dict_entry *)(void *)at;
        memcpy(r, v.e, span);
        r->key_len = v.klen;                /* the checked lengths */
        r->value_len = v.vlen;
        r->key[v.klen] = '\0';
        at += span;
    }
    *out = buf;
    *count = n;
    return 0;
}

static int dict_foreach(ps_dict_t *d,
                        int (*fn)(const char *key, const void *value, size_t len, void *arg),
                        void *arg)
{
    if (!fn)
        return EINVAL;
    struct call c;
    int err = enter(d, &c);
    if (err)
        return err;
    char *snap;
    uint64_t n;
    err = snapshot(c.s, c.h, &snap, &n);
    segment_unlock(c.s);
    if (err)
        return err;
    int rc = 0;
    char *at = snap;
    for (uint64_t i = 0; i < n && rc == 0; i++) {
        struct dict_entry *r = (struct dict_entry *)(void *)at;
        rc = fn(r->key, value_of(r, r->key_len), r->value_len, arg);
        at += entry_span(r->key_len, r->value_len);
    }
    free(snap);
    return rc;
}

/* ---- public API: errno is left as it was ---- */

int ps_dict_set(ps_dict_t *d, const char *key, const void *value, size_t len)
{
    int saved = errno;
    int err = dict_set(d, key, value, len);
    errno = saved;
    return err;
}

int ps_dict_get(ps_dict_t *d, const char *key, void *buf, size_t cap, size_t *len)
{
    int saved = errno;
    int err = dict_get(d, key, buf, cap, len, false);
    errno = saved;
    return err;
}

int ps_dict_pop(ps_dict_t *d, const char *key, void *buf, size_t cap, size_t *len)
{
    int saved = errno;
    int err = dict_get(d, key, buf, cap, len, true);
    errno = saved;
    return err;
}

int ps_dict_del(ps_dict_t *d, const char *key)
{
    int saved = errno;
    int err = dict_del(d, key);
    errno = saved;
    return err;
}

bool ps_dict_contains(ps_dict_t *d, const char *key)
{
    int saved = errno;
    size_t len;
    int err = d && key ? dict_get(d, key, NULL, 0, &len, false) : EINVAL;
    errno = saved;
    return err == 0 || err == ERANGE;
}

size_t ps_dict_len(ps_dict_t *d)
{
    int saved = errno;
    size_t len = 0;
    if (dict_len(d, &len))
        len = 0;
    errno = saved;
    return len;
}

int ps_dict_clear(ps_dict_t *d)
{
    int saved = errno;
    int err = dict_clear(d);
    errno = saved;
    return err;
}

int ps_dict_incr(ps_dict_t *d, const char *key, int64_t delta, int64_t *result)
{
    int saved = errno;
    int err = dict_incr(d, key, delta, result);
    errno = saved;
    return err;
}

int ps_dict_foreach(ps_dict_t *d,
                    int (*fn)(const char *key, const void *value, size_t len, void *arg),
                    void *arg)
{
    int saved = errno;
    int err = dict_foreach(d, fn, arg);
    errno = saved;
    return err;
}

/* ---- the manager's hooks ---- */

size_t dict_header_size(void) { return sizeof(struct dict_header); }

int dict_init_at(void *obj)
{
    struct dict_header *h = obj;            /* zeroed, unreachable: no table yet */
    h->magic = DICT_MAGIC;
    return 0;
}

int dict_destroy_at(void *obj)
{
    struct dict_header *h = obj;
    if (h->table_off || h->garbage_off)
        return EBUSY;                       /* not drained: it would leak */
    h->magic = 0;                           /* a stale pointer gets EPROTO */
    return 0;
}

int dict_drain(struct segment *s, void *obj)
{
    struct dict_header *h = obj;
    int err = header_ok(s, h);
    if (!err && h->garbage_off)
        err = collect(s, h);
    if (err)
        return err;
    retire_table(s, h);
    return h->garbage_off ? collect(s, h) : 0;
}

/* Adds the blocks of one table (and of the entries it points to) to *bytes;
 * counts its live entries and tombstones. */
static int account_table(const struct segment *s, uint64_t off, uint64_t slots, uint64_t *live,
                         uint64_t *tombs, uint64_t *bytes)
{
    if (!table_ok(s, off, slots))
        return EPROTO;
    if (!off)
        return 0;
    uint64_t block = heap_block_bytes(s, off), heap = heap_size(s);
    if (!block || block - sizeof(struct block) < slots * sizeof(struct dict_slot))
        return EPROTO;
    *bytes += block;
    const struct dict_slot *t = table_of(s, off);
    for (uint64_t i = 0; i < slots; i++) {
        uint64_t e = __atomic_load_n(&t[i].entry, __ATOMIC_RELAXED);
        struct entry_view v;
        if (e == E_EMPTY)
            continue;
        if (e == E_TOMB) {
            ++*tombs;
            continue;
        }
        if (!entry_check(s, e, &v) || !(block = heap_block_bytes(s, e)) ||
            block - sizeof(struct block) < entry_span(v.klen, v.vlen))
            return EPROTO;
        ++*live;
        if ((*bytes += block) > heap)
            return EPROTO;
    }
    return 0;
}

int dict_account(const struct segment *s, const void *obj, uint64_t *bytes)
{
    const struct dict_header *p = obj;
    struct dict_header h;
    uint64_t *w = (uint64_t *)(void *)&h;
    const uint64_t *from = (const uint64_t *)(const void *)p;
    for (size_t i = 0; i < sizeof h / 8; i++)
        w[i] = __atomic_load_n(&from[i], __ATOMIC_RELAXED);
    if (h.magic != DICT_MAGIC)
        return EPROTO;
    uint64_t live = 0, tombs = 0, glive = 0, gtombs = 0, sum = 0;
    int err = account_table(s, h.table_off, h.slots, &live, &tombs, &sum);
    if (!err)
        err = account_table(s, h.garbage_off, h.garbage_slots, &glive, &gtombs, &sum);
    if (err)
        return err;
    if (live != h.len || tombs != h.tombs || sum != h.bytes)
        return EPROTO;
    *bytes = sum;
    return 0;
}

int dict_peek(const void *obj, size_t *len, size_t *bytes)
{
    const struct dict_header *h = obj;
    if (__atomic_load_n(&h->magic, __ATOMIC_RELAXED) != DICT_MAGIC)
        return EPROTO;
    *len = (size_t)__atomic_load_n(&h->len, __ATOMIC_RELAXED);
    *bytes = (size_t)__atomic_load_n(&h->bytes, __ATOMIC_RELAXED);
    return 0;
}
