/* SPDX-License-Identifier: MIT */
/* shm/undo_log.pml - a SPIN model of the undo log of shm/undo.c.
 *
 * A caller makes one manager call: four logged writes to three shared words,
 * one word written twice (so replay order matters), then the commit. It may be
 * killed between any two steps. Whoever takes the mutex next (the repairer)
 * replays the log backwards; it may be killed halfway too, and a second
 * repairer replays again. Claim: once a repair completed, the words are
 * exactly as before the call if it had not committed, and as after it if it
 * had. Run: spin -a shm/undo_log.pml && cc -o pan pan.c && ./pan */

#define WORDS 3
#define LOG   4

byte mem[WORDS];
byte log_off[LOG];
byte log_old[LOG];
byte count;                 /* entries in effect; 0: committed */
bool committed;             /* ghost: the commit store happened */
bool caller_dead, repairer_dead, repaired;

/* undo_set: entry first, then the count that puts it in effect, then the word. */
inline undo_set(w, v) {
    log_off[count] = w;
    log_old[count] = mem[w];
    count = count + 1;
    mem[w] = v
}

proctype caller()
{
    {
        undo_set(0, 1);
        undo_set(1, 2);
        undo_set(0, 3);
        undo_set(2, 4);
        d_step { count = 0; committed = true }
    } unless { caller_dead }
}

/* undo_rollback: backwards, then empty the log (count stays until the end, so
 * a repairer killed halfway leaves the whole log for the next one). */
inline rollback(i) {
    i = count;
    do
    :: i > 0 -> i = i - 1; mem[log_off[i]] = log_old[i]
    :: else -> break
    od;
    count = 0
}

proctype repairer()
{
    byte i;
end_idle:
    caller_dead;            /* nobody repairs unless the caller died */
    { rollback(i) } unless { repairer_dead };
    if
    :: repairer_dead -> rollback(i)     /* the next owner of the mutex */
    :: else -> skip
    fi;
    repaired = true
}

init {
    mem[0] = 7; mem[1] = 8; mem[2] = 9;
    run caller();
    run repairer();
    /* The killer: the caller may die at any step, the repairer too. */
    if
    :: caller_dead = true;
       if
       :: repairer_dead = true
       :: skip
       fi
    :: skip
    fi;
    (repaired || (committed && !caller_dead)) ->
    if
    :: committed -> assert(mem[0] == 3 && mem[1] == 2 && mem[2] == 4)
    :: else      -> assert(mem[0] == 7 && mem[1] == 8 && mem[2] == 9)
    fi;
    assert(count == 0)
}
