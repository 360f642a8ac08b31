/* SPDX-License-Identifier: MIT */
/* The per-process registry of mapped segments.
 *
 * A fixed array of slots; a slot's base is 0 (free), 1 (claimed, being
 * filled) or the mapping's address (in use). Adding claims a free slot with a
 * compare-and-swap, copies the segment in and publishes the base last (release);
 * finding loads each base (acquire) up to the highest slot ever used, so it
 * takes no lock and costs a few loads for the usual one or two segments. Each
 * thread remembers the slot of its last hit and tries it first.
 *
 * The registry is process memory: a child forked later inherits it together
 * with the mappings it describes. Unmapping a segment while another thread of
 * the process still uses objects in it is the caller's error (as with free). */
#include "registry.h"

#include <errno.h>

#define REGISTRY_SLOTS 1024
#define CLAIMED ((char *)1)

struct reg_slot {
    char *base;                     /* atomic: NULL, CLAIMED or seg.base */
    struct segment seg;
};

static struct reg_slot slots[REGISTRY_SLOTS];
static unsigned used_slots;        /* atomic: slots [0, used_slots) were ever claimed */
static __thread unsigned last_hit __attribute__((tls_model("initial-exec")));

int seg_registry_add(const struct segment *s)
{
    for (unsigned i = 0; i < REGISTRY_SLOTS; i++) {
        char *expected = NULL;
        if (!__atomic_compare_exchange_n(&slots[i].base, &expected, CLAIMED, false,
                                         __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            continue;
        unsigned n = __atomic_load_n(&used_slots, __ATOMIC_RELAXED);
        while (n < i + 1 && !__atomic_compare_exchange_n(&used_slots, &n, i + 1, true,
                                                         __ATOMIC_RELEASE, __ATOMIC_RELAXED))
            ;
        slots[i].seg = *s;
        __atomic_store_n(&slots[i].base, s->base, __ATOMIC_RELEASE);
        return 0;
    }
    return ENOMEM;
}

void seg_registry_remove(const struct segment *s)
{
    unsigned n = __atomic_load_n(&used_slots, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < n; i++)
        if (__atomic_load_n(&slots[i].base, __ATOMIC_ACQUIRE) == s->base) {
            __atomic_store_n(&slots[i].base, NULL, __ATOMIC_RELEASE);
            return;
        }
}

static bool holds(const struct reg_slot *slot, const char *p)
{
    const char *base = __atomic_load_n(&slot->base, __ATOMIC_ACQUIRE);
    if (base == NULL || base == CLAIMED || (uintptr_t)p < (uintptr_t)base)
        return false;
    uint64_t off = (uint64_t)((uintptr_t)p - (uintptr_t)base);
    return off >= slot->seg.g.heap_off && off < slot->seg.g.heap_end;
}

struct segment *seg_registry_find(const void *p)
{
    unsigned hint = last_hit;
    if (hint < REGISTRY_SLOTS && holds(&slots[hint], p))
        return &slots[hint].seg;
    unsigned n = __atomic_load_n(&used_slots, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < n; i++)
        if (holds(&slots[i], p)) {
            last_hit = i;
            return &slots[i].seg;
        }
    return NULL;
}
