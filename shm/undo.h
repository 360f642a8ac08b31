/* SPDX-License-Identifier: MIT */
/* The undo log: how a manager call killed halfway is taken back.
 *
 * Rule: while it holds the segment mutex, a call changes a word that other
 * calls can reach (a counter, a name slot's state, a free block's header, the
 * bytes of a published object) only through undo_set/undo_save, which first
 * append (offset, old value) to the log. Bytes nobody can reach yet (a block
 * just taken off the free list, a slot not yet USED) are written directly: if
 * the call dies, they are unreachable again once the log is undone.
 *
 * Commit is one store: count = 0. Everything the log names before that store
 * is undone by the next owner of the mutex, which gets EOWNERDEAD and replays
 * the log backwards (undo_rollback), restoring the state before the call. A
 * repairer that dies while replaying leaves the log as it was (replay does not
 * shorten it until it is done), and the next one replays it again: restoring
 * old values is idempotent.
 *
 * An entry is written before count is raised past it, so a death between the
 * two leaves an entry that is not in effect and a word not yet changed.
 *
 * shm/undo_log.pml is a SPIN model of this protocol (a caller and a repairer
 * each killed at any step); it also fails if replay runs forwards or if a word
 * is changed before its entry is in effect. */
#ifndef PS_SHM_UNDO_H
#define PS_SHM_UNDO_H

#include <stdbool.h>
#include <stdint.h>

#include "segment.h"

/* Logs the word's old value, then stores value. */
void undo_set(struct segment *s, uint64_t *word, uint64_t value);
/* Logs len bytes (whole words) at off that a call is about to change in ways it
 * cannot log itself (an object's destroy). */
void undo_save(struct segment *s, uint64_t off, uint64_t len);
/* Entries still free in the log. */
uint64_t undo_room(const struct segment *s);
/* The call is complete. */
void undo_commit(struct segment *s);
/* The call changed nothing after all (its writes are to be kept as they are). */
void undo_discard(struct segment *s);
/* Restores every logged word, newest first, then empties the log. EPROTO if an
 * entry points outside the words a call may change (nothing is written then). */
int  undo_rollback(struct segment *s);
/* May a log entry name this offset? For open's checks too. */
bool undo_target_ok(const struct geometry *g, uint64_t off);

#endif
