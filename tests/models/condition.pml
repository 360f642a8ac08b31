/* SPDX-License-Identifier: MIT */
/* The shared Condition's protocol (lib/condition.c), checked by SPIN against every
 * interleaving: two waiters, each of which may time out at any moment, waiter 0
 * may also be killed between any two steps (its robust lock is then freed), and a
 * notifier calls notify(1) twice. Checked: a live waiter returns "notified"
 * exactly when a notify counted it (no lost and no invented notification);
 * notify(1) counts exactly one waiter when a live one waits, and the oldest; a
 * notify never goes to a waiter that left or died; nobody deadlocks.
 * Run with `make verify`. */

#define W        2
#define FREE     0
#define WAITING  1
#define NOTIFIED 2
#define NOBODY   0
#define NOTIFIER 9

byte holder = NOBODY;       /* the condition's robust lock: who holds it */
byte state[W];              /* each waiter's slot word */
byte ticket[W];
byte next_ticket;
bool alive[W];
bool returned[W];           /* its wait returned */
bool got[W];                /* ... with 0 ("notified") */
bool told[W];               /* a notify counted it */

inline acquire(me) { atomic { holder == NOBODY -> holder = me } }
inline release()   { holder = NOBODY }

proctype waiter(byte i)
{
    {
        acquire(i + 1);
        ticket[i] = next_ticket;            /* claim_slot: data first... */
        next_ticket++;
        state[i] = WAITING;                 /* ...published last */
        release();
        do                                  /* sleep_until_notified */
        :: state[i] == NOTIFIED -> break
        :: true -> break                    /* the deadline, at any moment */
        od;
        acquire(i + 1);                     /* rlock_restore */
        got[i] = (state[i] == NOTIFIED);
        state[i] = FREE;                    /* free_slot */
        returned[i] = true;
        release()
    } unless { !alive[i] }
}

/* SIGKILL of waiter 0 at any moment; the kernel frees its robust lock. */
proctype killer()
{
    atomic { alive[0] = false; if :: holder == 1 -> holder = NOBODY :: else fi }
}

/* notify(1) under the lock, one step: the oldest waiting slot is set; a dead
 * owner's slot is freed and the notify goes on to the next. */
inline notify_one()
{
    d_step {
        byte j, live_waiting = 0, counted = 0;
        j = 0;
        do
        :: j < W -> if :: state[j] == WAITING && alive[j] -> live_waiting++ :: else fi; j++
        :: else -> break
        od;
        do
        :: true ->
            byte best = W;
            j = 0;
            do
            :: j < W ->
                if
                :: state[j] == WAITING && (best == W || ticket[j] < ticket[best]) -> best = j
                :: else
                fi;
                j++
            :: else -> break
            od;
            if
            :: best == W -> break
            :: else
            fi;
            state[best] = NOTIFIED;
            if
            :: !alive[best] -> state[best] = FREE   /* dead: next one */
            :: else ->
                assert(!returned[best]);
                j = 0;                              /* the oldest live one */
                do
                :: j < W -> assert(!(state[j] == WAITING && alive[j] && ticket[j] < ticket[best])); j++
                :: else -> break
                od;
                told[best] = true;
                counted++;
                break
            fi
        od;
        assert(counted == (live_waiting > 0 -> 1 : 0))
    }
}

proctype notifier()
{
    byte k = 0;
    do
    :: k < 2 -> acquire(NOTIFIER); notify_one(); release(); k++
    :: else -> break
    od
}

init
{
    atomic {
        alive[0] = true; alive[1] = true;
        run waiter(0); run waiter(1); run notifier(); run killer()
    }
    _nr_pr == 1;
    byte i = 0;
    do
    :: i < W -> assert(!alive[i] || (returned[i] && got[i] == told[i])); i++
    :: else -> break
    od
}
