/* SPDX-License-Identifier: MIT */
/* The segments this process has mapped writable, so that a call given only a
 * pointer into one (a ps_dict_t *) can find its segment. See registry.c. */
#ifndef PS_SHM_REGISTRY_H
#define PS_SHM_REGISTRY_H

#include "segment.h"

/* Remembers s (a copy of it). 0, or ENOMEM if too many segments are mapped. */
int  seg_registry_add(const struct segment *s);
/* Forgets the segment mapped at s->base; a no-op if it is not registered. */
void seg_registry_remove(const struct segment *s);
/* The registered segment whose heap holds p, or NULL. Lock-free. */
struct segment *seg_registry_find(const void *p);

#endif
