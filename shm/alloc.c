/* SPDX-License-Identifier: MIT */
/* The heap allocator of a segment.
 *
 * Invariants (under the segment mutex, between calls):
 *   - the heap [heap_off, heap_end) is tiled by blocks; each starts with
 *     struct block { size, next }, size a multiple of SEG_ALIGN, >= BLOCK_MIN;
 *   - an allocated block has next == BLOCK_USED_TAG; its payload follows the
 *     header and is what a name entry's obj_off points to;
 *   - free blocks form a list in strictly increasing address order, linked
 *     both ways: next in the header, prev in the word after it (BLOCK_PREV).
 *     header.free_head is the first (0: none), header.free_tail the last (as
 *     an offset from heap_off, see layout.h); the first's prev and the last's
 *     next are 0. No two free blocks are adjacent (free coalesces), and
 *     header.free_bytes is the sum of their sizes;
 *   - the hints, each 0 or a free block: header.free_finger, the block the
 *     last free made; header.fit[k], a block such that every free block
 *     before it is smaller than fit_min(k).
 *
 * heap_free needs the free blocks around its block b: the last one before it
 * and the first one after it. Four searches take one step each in turn, and
 * the first to arrive answers: forward over the blocks that follow b (to the
 * first free one, whose prev link gives the other); along the list from its
 * head, from its tail, and from the finger, towards b. So a free costs the
 * least of: the allocated blocks up to the next free one (freeing every other
 * block), the free blocks between b and the last block freed (freeing in
 * address order, either way), those before b, those after it; not the whole
 * list.
 *
 * heap_alloc is first fit in address order. A walk for `need` bytes starts at
 * the hint of the largest class that need reaches, fit[k] (or at the head),
 * and leaves the hint at the first block it met that is big enough for the
 * class: the next walk for that class skips the small blocks before it.
 *
 * Every walk moves one way only (each block checked to link to a block after
 * it, or before it for a backward one): a corrupt list that loops is caught,
 * not followed forever. Whatever is read from the heap is read once and
 * checked before it is followed or used (read_block, read_free); every link
 * followed is checked both ways (a prev link leads to a free block whose next
 * is this one; the last block is the tail). A segment that fails a check gives
 * EPROTO.
 *
 * Crash safety: every word that another call can reach is changed through
 * undo_set (put): links, sizes, the header's words, and the prev word of a
 * block being allocated or freed (it is the first word of an allocated
 * block's payload, so alloc logs it even when it is 0 already: the caller
 * writes the payload directly). The remainder after a split is written
 * directly: until a logged link to it is stored, nothing reaches it. At most
 * HEAP_UNDO_WORDS words are logged per call: six for the list, and the hints.
 * A free that finds the list unsound changes nothing (EPROTO before the first
 * write); an alloc, likewise. */
#include "alloc.h"

#include <errno.h>
#include <string.h>

#include "debug.h"
#include "undo.h"

/* A free block, as read (once) and checked. off 0: none. */
struct fb {
    uint64_t off, size, next, prev;
};

static uint64_t round_up(uint64_t n, uint64_t to) { return (n + to - 1) / to * to; }

static uint64_t load(const uint64_t *w) { return __atomic_load_n(w, __ATOMIC_RELAXED); }

static struct block *block_at(const struct segment *s, uint64_t off) { return seg_at(s, off); }

static uint64_t *prev_word(const struct segment *s, uint64_t off)
{
    return seg_at(s, off + BLOCK_PREV);
}

/* The least block size of hint class k: 64 B, 128 B, ... 4 KiB. */
static uint64_t fit_min(int k) { return (uint64_t)64 << k; }

/* ---- reading, checked ---- */

/* A block header at off that lies wholly inside the heap; *size: its size. */
static bool read_block(const struct segment *s, uint64_t off, uint64_t *size)
{
    if (off % SEG_ALIGN || !seg_in_heap(s, off, BLOCK_MIN))
        return false;
    *size = load(&block_at(s, off)->size);
    return *size >= BLOCK_MIN && *size % SEG_ALIGN == 0 && seg_in_heap(s, off, *size);
}

/* A free block at off, whose links point after and before it. */
static bool read_free(const struct segment *s, uint64_t off, struct fb *f)
{
    if (!read_block(s, off, &f->size))
        return false;
    f->off = off;
    f->next = load(&block_at(s, off)->next);
    f->prev = load(prev_word(s, off));
    return f->next != BLOCK_USED_TAG && (f->next == 0 || f->next >= off + f->size) &&
           f->prev < off;
}

static uint64_t first_free(const struct segment *s) { return load(&seg_header(s)->free_head); }

static uint64_t last_free(const struct segment *s)
{
    return first_free(s) ? s->g.heap_off + load(&seg_header(s)->free_tail) : 0;
}

/* The list's first (or last) free block, checked. */
static bool list_end(const struct segment *s, bool first, struct fb *f)
{
    uint64_t off = first ? first_free(s) : last_free(s);
    *f = (struct fb){ 0 };
    return !off || (read_free(s, off, f) && (first ? f->prev : f->next) == 0);
}

/* Moves f to its neighbour in the list, after it (forward) or before it,
 * checked: a free block that links back to f. f->off becomes 0 past an end of
 * the list, and then f must have been the list's last (first) block. */
static bool step(const struct segment *s, struct fb *f, bool forward)
{
    uint64_t from = f->off, off = forward ? f->next : f->prev;
    if (!off) {
        *f = (struct fb){ 0 };
        return (forward ? last_free(s) : first_free(s)) == from;
    }
    return read_free(s, off, f) && (forward ? f->prev : f->next) == from;
}

/* f (unless none) and its neighbours on both sides link to each other: what
 * a change around f will write to is sound. */
static bool links_ok(const struct segment *s, const struct fb *f)
{
    struct fb before = *f, after = *f;
    return !f->off || (step(s, &before, false) && step(s, &after, true));
}

/* A hint: 0, or a free block in the list (its prev links back to it). */
static bool read_hint(const struct segment *s, uint64_t off, struct fb *f)
{
    *f = (struct fb){ 0 };
    if (!off)
        return true;
    if (!read_free(s, off, f))
        return false;
    struct fb before = *f;
    return step(s, &before, false);
}

/* ---- writing, logged ---- */

static void put(struct segment *s, uint64_t *word, uint64_t value)
{
    if (*word != value)
        undo_set(s, word, value);
}

/* Makes the list go from p to n (0: its start, its end). */
static void join(struct segment *s, uint64_t p, uint64_t n)
{
    struct seg_header *h = seg_header(s);
    put(s, p ? &block_at(s, p)->next : &h->free_head, n);
    if (n)
        put(s, prev_word(s, n), p);
    else
        put(s, &h->free_tail, p ? p - s->g.heap_off : 0);
}

static void add_free_bytes(struct segment *s, uint64_t add, uint64_t sub)
{
    uint64_t *w = &seg_header(s)->free_bytes;
    undo_set(s, w, *w + add - sub);
}

/* ---- alloc ---- */

/* The hint class of an allocation: the largest k with fit_min(k) <= need,
 * -1 if none. */
static int fit_class(uint64_t need)
{
    int k = -1;
    while (k + 1 < FIT_CLASSES && need >= fit_min(k + 1))
        k++;
    return k;
}

/* The first free block of at least need bytes, from class k's hint (or the
 * head); *big: the first block the walk met of at least fit_min(k) bytes. */
static int first_fit(const struct segment *s, uint64_t need, int k, struct fb *f, uint64_t *big)
{
    uint64_t hint = k >= 0 ? load(&seg_header(s)->fit[k]) : 0;
    if (!(hint ? read_hint(s, hint, f) : list_end(s, true, f)))
        return EPROTO;
    *big = 0;
    while (f->off && f->size < need) {
        if (!*big && k >= 0 && f->size >= fit_min(k))
            *big = f->off;
        if (!step(s, f, true))
            return EPROTO;
    }
    if (!*big)
        *big = f->off;
    if (!f->off)
        return ENOMEM;
    return links_ok(s, f) ? 0 : EPROTO;
}

/* Takes need bytes from the front of free block f. The rest, if it is big
 * enough to be a block, takes f's place in the list. Returns the bytes taken
 * (need, or all of f); *after: the free block that now follows them. */
static uint64_t take(struct segment *s, const struct fb *f, uint64_t need, uint64_t *after)
{
    *after = f->next;
    if (f->size - need >= BLOCK_MIN) {
        *after = f->off + need;
        struct block *rest = block_at(s, *after);           /* unreachable yet */
        rest->size = f->size - need;
        rest->next = f->next;
        *prev_word(s, *after) = f->prev;
        join(s, *after, f->next);
        put(s, &block_at(s, f->off)->size, need);
    } else {
        need = f->size;
    }
    join(s, f->prev, *after);
    put(s, &block_at(s, f->off)->next, BLOCK_USED_TAG);
    /* The first word of the payload: logged even if it is 0 already, since
     * the caller writes the payload directly and a rollback must undo that. */
    undo_set(s, prev_word(s, f->off), 0);
    add_free_bytes(s, 0, need);
    return need;
}

/* Block f was taken and `after` follows it: no hint may name f. Class k's
 * walk showed that no block before `big` reaches fit_min(k): its hint moves
 * there, or past f if big was f. */
static void hints_after_alloc(struct segment *s, uint64_t f, uint64_t after, int k, uint64_t big)
{
    struct seg_header *h = seg_header(s);
    for (int j = 0; j < FIT_CLASSES; j++)
        if (j == k || h->fit[j] == f)
            put(s, &h->fit[j], j == k && big != f ? big : after);
    if (h->free_finger == f)
        put(s, &h->free_finger, after);
}

int heap_alloc(struct segment *s, uint64_t bytes, uint64_t *payload)
{
    if (bytes > s->g.heap_end - s->g.heap_off)
        return ENOMEM;
    uint64_t need = round_up(bytes + sizeof(struct block), SEG_ALIGN);
    if (need < BLOCK_MIN)
        need = BLOCK_MIN;
    int k = fit_class(need);
    struct fb f;
    uint64_t big, after, room = undo_room(s);
    int err = first_fit(s, need, k, &f, &big);
    if (err)
        return err;
    uint64_t taken = take(s, &f, need, &after);
    hints_after_alloc(s, f.off, after, k, big);
    PS_ASSERT(room - undo_room(s) <= HEAP_UNDO_WORDS);
    (void)room;
    *payload = f.off + sizeof(struct block);
    memset(seg_at(s, *payload), 0, taken - sizeof(struct block));
    return 0;
}

/* ---- free ---- */

uint64_t heap_block_bytes(const struct segment *s, uint64_t payload)
{
    uint64_t size;
    if (payload < sizeof(struct block))
        return 0;
    uint64_t off = payload - sizeof(struct block);
    if (!read_block(s, off, &size) || load(&block_at(s, off)->next) != BLOCK_USED_TAG)
        return 0;
    return size;
}

/* One step of the search over the blocks that follow b, now at *over: 1 when
 * it found the free blocks around b (*p, *n), 0 to go on, -1: EPROTO. */
static int over_step(const struct segment *s, uint64_t *over, struct fb *p, struct fb *n)
{
    uint64_t size;
    if (*over == s->g.heap_end) {                           /* nothing free after b */
        *n = (struct fb){ 0 };
        return list_end(s, false, p) ? 1 : -1;
    }
    if (!read_block(s, *over, &size))
        return -1;
    if (load(&block_at(s, *over)->next) != BLOCK_USED_TAG) {
        if (!read_free(s, *over, n))
            return -1;
        *p = *n;
        return step(s, p, false) ? 1 : -1;
    }
    *over += size;
    return 0;
}

/* A search along the list for b's place, at block `at` (none: past an end of
 * the list), coming from `from`; it moves towards b. */
struct search {
    struct fb at, from;
    bool forward;
};

static bool search_start(const struct segment *s, struct search *w, uint64_t off, uint64_t b)
{
    w->from = (struct fb){ 0 };
    w->forward = off < b;
    return read_hint(s, off, &w->at);
}

/* One step of search w, as over_step. */
static int list_step(const struct segment *s, struct search *w, uint64_t b, struct fb *p,
                     struct fb *n)
{
    if (!w->at.off || (w->forward ? w->at.off > b : w->at.off < b)) {
        *p = w->forward ? w->from : w->at;
        *n = w->forward ? w->at : w->from;
        return 1;
    }
    w->from = w->at;
    return step(s, &w->at, w->forward) ? 0 : -1;
}

/* The free blocks around allocated block [b, end): *p, the last one before
 * it, and *n, the first one after it. The four searches of the comment at the
 * top, in turn. */
static int find_place(const struct segment *s, uint64_t b, uint64_t end, struct fb *p, struct fb *n)
{
    struct search w[3];
    uint64_t finger = load(&seg_header(s)->free_finger), over = end;
    int found = 0, ways = finger ? 3 : 2;   /* a list search needs a place to start */
    if (!search_start(s, &w[0], first_free(s), b) || !search_start(s, &w[1], last_free(s), b) ||
        !search_start(s, &w[2], finger, b))
        return EPROTO;
    while (!found) {
        found = over_step(s, &over, p, n);
        for (int i = 0; i < ways && !found; i++)
            found = list_step(s, &w[i], b, p, n);
    }
    return found > 0 ? 0 : EPROTO;
}

/* p and n follow each other in the list, [b, end) fits between them, and
 * the blocks that insert may write to around them link soundly. */
static bool place_ok(const struct segment *s, uint64_t b, uint64_t end, const struct fb *p,
                     const struct fb *n)
{
    return (!p->off || p->off + p->size <= b) && (!n->off || n->off >= end) &&
           (p->off ? p->next : first_free(s)) == n->off && links_ok(s, p) && links_ok(s, n);
}

/* Block m was made by a free: it is the finger now, and hints it passes or
 * swallowed move back to it. */
static void hints_after_free(struct segment *s, const struct fb *m)
{
    struct seg_header *h = seg_header(s);
    for (int j = 0; j < FIT_CLASSES; j++) {
        uint64_t at = h->fit[j];
        if (at > m->off && (m->size >= fit_min(j) || m->off + m->size > at))
            put(s, &h->fit[j], m->off);
    }
    put(s, &h->free_finger, m->off);
}

/* Links block b (allocated, size bytes) into the list between p and n,
 * merged with either when it touches it. */
static void insert(struct segment *s, const struct fb *p, uint64_t b, uint64_t size,
                   const struct fb *n)
{
    struct fb m = { b, size, n->off, p->off };
    if (n->off == b + size) {                               /* merge forward */
        m.size += n->size;
        m.next = n->next;
    }
    if (p->off && p->off + p->size == b)                    /* merge backward */
        m = (struct fb){ p->off, p->size + m.size, m.next, p->prev };
    put(s, &block_at(s, m.off)->size, m.size);
    join(s, m.prev, m.off);
    join(s, m.off, m.next);
    add_free_bytes(s, size, 0);
    hints_after_free(s, &m);
}

int heap_free(struct segment *s, uint64_t payload)
{
    uint64_t size = heap_block_bytes(s, payload);
    if (!size)
        return EPROTO;
    uint64_t b = payload - sizeof(struct block), room = undo_room(s);
    struct fb p, n;
    int err = find_place(s, b, b + size, &p, &n);
    if (err)
        return err;
    if (!place_ok(s, b, b + size, &p, &n))
        return EPROTO;
    insert(s, &p, b, size, &n);
    PS_ASSERT(room - undo_room(s) <= HEAP_UNDO_WORDS);
    (void)room;
    return 0;
}

/* ---- walk ---- */

/* Free block f against the hints: if it comes before fit[j], it must be
 * smaller than fit_min(j). Bit j of *met: hint j (FIT_CLASSES: the finger)
 * is f. */
static bool hints_ok(const uint64_t *hint, const struct fb *f, unsigned *met)
{
    for (int j = 0; j <= FIT_CLASSES; j++) {
        if (hint[j] == f->off)
            *met |= 1u << j;
        if (j < FIT_CLASSES && hint[j] > f->off && f->size >= fit_min(j))
            return false;
    }
    return true;
}

int heap_walk(const struct segment *s, struct heap_walk *w)
{
    const struct seg_header *h = seg_header(s);
    uint64_t hint[FIT_CLASSES + 1];
    unsigned met = 0, want = 0;
    for (int j = 0; j <= FIT_CLASSES; j++) {
        hint[j] = load(j < FIT_CLASSES ? &h->fit[j] : &h->free_finger);
        want |= (unsigned)(hint[j] != 0) << j;
    }
    struct fb f;
    *w = (struct heap_walk){ 0 };
    if (!list_end(s, true, &f))
        return EPROTO;
    while (f.off) {
        if (!hints_ok(hint, &f, &met))
            return EPROTO;
        w->free_bytes += f.size;
        w->free_blocks++;
        if (f.size > w->largest_free)
            w->largest_free = f.size;
        if (!step(s, &f, true))             /* the last one must be the tail */
            return EPROTO;
    }
    return met == want ? 0 : EPROTO;        /* every hint names a free block */
}
