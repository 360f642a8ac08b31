/* SPDX-License-Identifier: MIT */
/* The shared dict as a manager object. See dict.c. */
#ifndef PS_SHM_DICT_H
#define PS_SHM_DICT_H

#include <pysync/multiprocessing.h>
#include <stddef.h>
#include <stdint.h>

#include "segment.h"

size_t dict_header_size(void);          /* the object the name leads to */
int    dict_init_at(void *obj);         /* on zeroed shared bytes of that size */
/* The header part of a remove: 0 once dict_drain has emptied the dict, EBUSY
 * (nothing changed) while it still owns heap blocks. */
int    dict_destroy_at(void *obj);

/* For the store's remove, under the segment mutex with an empty undo log:
 * frees every entry and table of the dict at obj in small committed steps (a
 * remove killed halfway leaves the dict there, empty). 0 or EPROTO. */
int    dict_drain(struct segment *s, void *obj);

/* For stats, with or without the mutex (read-only mappings too): walks the
 * dict at obj, checks every table and entry against the heap and the header's
 * counters, and adds up the heap bytes it owns (block headers included).
 * 0, or EPROTO if anything disagrees. */
int    dict_account(const struct segment *s, const void *obj, uint64_t *bytes);

/* The header's entry count and heap bytes, read without a lock (for
 * pysync-stat): a call in progress may be half-counted. 0, or EPROTO if obj
 * is not a dict. */
int    dict_peek(const void *obj, size_t *len, size_t *bytes);

#endif
