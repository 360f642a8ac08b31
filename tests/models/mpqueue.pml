/* SPDX-License-Identifier: MIT */
/* The cross-process queue's protocol (shm/mpqueue.c), checked by SPIN against
 * every interleaving: two producers (two messages, one message) put through a
 * ring of three 8-byte cells (maxsize 2, so both the count limit and the byte
 * limit stop putters, and a 16-byte record may wrap around the ring end), one
 * consumer gets until ESHUTDOWN, and a closer calls shutdown(false). Producer
 * 0 or the consumer (or nobody) is SIGKILLed between any two steps: the
 * kernel frees its robust locks (the next holder repairs nothing) and takes
 * it off the futex queue, and from then on a sleep may also end by the
 * 1-second backstop, modeled as a wake-up once nothing else can move.
 *
 * A put: lock put_lock; room check against the head_seen cache, re-read of
 * _head; the record's bytes (header { seq, len } and payload); the one _tail
 * store that publishes it; the sleeper count read and the bump of not_empty;
 * unlock; futex_wake of one getter. A get is the mirror image (tail_seen
 * cache, the header check that is EPROTO in the C code, copy out, the one
 * _head store) and wakes every putter. A sleeper (sleep_unless): read the
 * futex word, count itself, re-check, futex_wait(word, seen), uncount.
 *
 * Checked:
 *   - what a get returns was published and is whole (the header's seq is the
 *     get count, its length fits what _tail published, the payload is the
 *     one its putter wrote), never twice, in each producer's order (asserts);
 *   - a live consumer gets every message that was published, also after a
 *     shutdown (init's asserts once all ended);
 *   - no lost wake-up: without a kill there is no backstop, so a sleeper left
 *     asleep with work to do is a deadlock, which pan reports as an invalid
 *     end state (this is how `make verify`, which runs pan for safety only,
 *     checks liveness). The closer either shuts down at any moment, or, in
 *     the runs that check this, only once the producers ended and the
 *     consumer has all that was published: its wake-all must not hide a lost
 *     wake-up. With a kill, everybody must still end (no deadlock) but may
 *     rely on the backstop.
 * Memory is sequentially consistent here: the C code's seq_cst publish and
 * sleeper-count accesses are what make that true of the real thing. Not
 * modeled: task_done/join (the done word), immediate shutdown, timeouts,
 * ERANGE, several getters.
 *
 * Run with `make verify` (about 4 million states, 0.5 GB). To see it catch a
 * bug, inject one:
 *   spin -DBUG_PUBLISH_FIRST -a mpqueue.pml   (_tail stored before the bytes:
 *                                               an unwritten record is read)
 *   spin -DBUG_COUNT_FIRST -a mpqueue.pml     (the waker reads the sleeper
 *                                               count before its publish)
 *   spin -DBUG_WORD_LATE -a mpqueue.pml       (the sleeper reads the futex
 *                                               word after its re-check)
 *   spin -DBUG_NO_BACKSTOP -a mpqueue.pml     (sleeps without the backstop: a
 *                                               waker killed before its wake)
 * then cc -O2 -o pan pan.c && ./pan -m200000: "assertion violated" for the
 * first, "invalid end state" (a lost wake-up) for the others.
 * -DNPROD=1 checks one producer only (40 thousand states). */

#ifndef NPROD
#define NPROD    2
#endif
#ifndef MSGS1
#define MSGS1    1          /* producer 1's messages (producer 0 puts two) */
#endif
#define RING     3          /* cells of 8 bytes */
#ifndef MAXSIZE
#define MAXSIZE  2          /* 0: no count limit */
#endif
#define C        NPROD      /* the consumer's index */
#define NPROC    (NPROD + 1)
#define NOBODY   15

#define OK       0
#define EAGAIN   1
#define ESHUT    2

/* _head and _tail: count * 4 + position, one word each. */
#define POS(w)      ((w) % 4)
#define CNT(w)      ((w) / 4)
#define WORD(c, p)  ((c) * 4 + (p))
#define USED(t, h)  (CNT(t) == CNT(h) -> 0 : \
                     (POS(t) > POS(h) -> POS(t) - POS(h) : RING - (POS(h) - POS(t))))
#define ROOM(t, h, need) ((MAXSIZE == 0 || CNT(t) - CNT(h) < MAXSIZE) && \
                          USED(t, h) + (need) <= RING)
/* Messages: id = producer * 2 + k + 1. Producer 0 puts 1 (8 payload bytes),
 * then 2 (empty); producer 1 puts 3 (8 bytes), and 4 (empty) if MSGS1 is 2.
 * Message 1 wraps around the ring end when it follows message 3. */
#define MSGS(p)     ((p) == 0 -> 2 : MSGS1)
#define ID(p, k)    ((p) * 2 + (k) + 1)
#define LEN(id)     ((id) % 2)
#define NEED(id)    (1 + LEN(id))      /* ring cells: header + payload */
/* A header cell { seq, len }; payload cells hold their message's id (< 16). */
#define HDR(s, n)   (16 + (s) * 2 + (n))
#define HSEQ(v)     (((v) - 16) / 2)
#define HLEN(v)     (((v) - 16) % 2)

byte tail, head;                /* the two published words */
byte head_seen, tail_seen;      /* the caches, under put_lock / get_lock */
byte cell[RING];
byte gid[RING];                 /* ghost: which put wrote the header in a cell */
byte put_holder = NOBODY, get_holder = NOBODY;     /* robust mutexes */
byte not_empty, not_full;       /* futex words */
byte getters, putters;          /* sleeper counts */
bool shut;
bool asleep[NPROC];             /* in the kernel's futex queue */
bool alive[NPROC];
bool finished[NPROC];           /* ended, or dead */
bool killed;                    /* a kill happened: the backstop may end sleeps */
byte victim = NOBODY;           /* chosen by init */
bool late;                      /* the closer waits for the end (see above) */
byte published[NPROD];          /* ghost: per producer, _tail stores */
byte delivered[NPROD];          /* ghost: per producer, messages got */

#if NPROD > 1
#define PRODUCERS_DONE  (finished[0] && finished[1])
#define ALL_DELIVERED   (delivered[0] == published[0] && delivered[1] == published[1])
#define WAKE_PUTTERS    asleep[0] = false; asleep[1] = false
#else
#define PRODUCERS_DONE  finished[0]
#define ALL_DELIVERED   (delivered[0] == published[0])
#define WAKE_PUTTERS    asleep[0] = false
#endif
#define WAKE_GETTER     asleep[C] = false

/* futex_wait(word, seen): asleep only if the word is unchanged, atomically;
 * then until a futex_wake takes it off the queue, or the backstop. Waking up
 * and uncounting are one step (in between, a waker could only waste a wake). */
inline futex_wait_and_uncount(word, seen, count)
{
    atomic { if :: word == seen -> asleep[me] = true :: else fi };
    if
    :: atomic { !asleep[me] -> count--; seen = 0 }
#ifndef BUG_NO_BACKSTOP
    :: atomic { killed && timeout ->        /* the backstop */
                asleep[me] = false; count--; seen = 0 }
#endif
    fi
}

/* can_put: _head (seq_cst), then _tail and the flag; can_get: _tail
 * (seq_cst), then _head and the flag. (SPIN's inline takes no such long
 * expression as an argument: sleep_unless is told which one.) */
#define CAN_PUT     (ROOM(tail, head, NEED(ID(me, k))) || shut)
#define CAN_GET     (CNT(tail) != CNT(head) || shut)

/* sleep_unless: read the word, count yourself, re-check, sleep, uncount. */
inline sleep_unless(word, count, putter)
{
#ifndef BUG_WORD_LATE
    seen = word;
#endif
    count++;
    if
    :: atomic { (putter -> CAN_PUT : CAN_GET) ->
#ifdef BUG_WORD_LATE
       seen = word;
#endif
       count--; seen = 0 }
    :: else ->
#ifdef BUG_WORD_LATE
       seen = word;
#endif
       futex_wait_and_uncount(word, seen, count)
    fi
}

/* Steps merged below follow the usual reduction: taking a lock can be
 * delayed to the first access that others can see, and releasing it can be
 * done together with the last access before it (so a put is: lock and room
 * check; the record's bytes; the _tail store; count read, bump and unlock;
 * futex_wake). The two cells of a record are written in one step: nobody
 * may look at them before the publish anyway. */
proctype producer(byte me)
{
    byte k, pos, seq, err, seen;
    bool wake;
    {
        do
        :: k < MSGS(me) ->
            do
            :: /* try_put: tail, shut and head_seen change only under put_lock;
                * the re-read of _head is the one foreign access. */
               atomic {
                   put_holder == NOBODY -> put_holder = me;
                   if
                   :: shut -> err = ESHUT
                   :: !shut && ROOM(tail, head_seen, NEED(ID(me, k))) -> err = OK
                   :: else ->
                      head_seen = head;
                      err = (ROOM(tail, head_seen, NEED(ID(me, k))) -> OK : EAGAIN)
                   fi;
                   pos = POS(tail); seq = CNT(tail)
               };
               if
               :: err == OK ->
#ifdef BUG_COUNT_FIRST
                  wake = (getters != 0);
#endif
#ifdef BUG_PUBLISH_FIRST
                  d_step { tail = WORD(seq + 1, (pos + NEED(ID(me, k))) % RING); published[me]++ };
#endif
                  d_step {
                      cell[pos] = HDR(seq, LEN(ID(me, k)));
                      gid[pos] = ID(me, k);
                      if
                      :: LEN(ID(me, k)) -> cell[(pos + 1) % RING] = ID(me, k)
                      :: else
                      fi
                  };
#ifndef BUG_PUBLISH_FIRST
                  d_step { tail = WORD(seq + 1, (pos + NEED(ID(me, k))) % RING); published[me]++ };
#endif
                  atomic {
#ifndef BUG_COUNT_FIRST
                      wake = (getters != 0);
#endif
                      if
                      :: wake -> not_empty++
                      :: else
                      fi;
                      pos = 0; seq = 0;
                      put_holder = NOBODY
                  };
                  if
                  :: wake -> d_step { wake = false; WAKE_GETTER }    /* futex_wake 1 */
                  :: else
                  fi
               :: else -> d_step { pos = 0; seq = 0; put_holder = NOBODY }
               fi;
               if
               :: err != EAGAIN -> break
               :: else -> sleep_unless(not_full, putters, true)
               fi
            od;
            if
            :: err == ESHUT -> break
            :: else -> d_step { k++; err = 0 }
            fi
        :: else -> break
        od
    } unless { !alive[me] };
    finished[me] = true
}

/* A get: lock, the shutdown flag (stable under get_lock: shutdown takes both
 * locks) and the _tail re-read; copy out and the _head store (the message's
 * cells cannot change before that store); count read, bump and unlock;
 * futex_wake. */
proctype consumer(byte me)
{
    byte hv, g, pv, err, seen;
    byte k;                     /* stays 0: CAN_PUT names it */
    bool wake;
    {
        do
        :: /* try_get: _head and tail_seen change only under get_lock */
           atomic {
               get_holder == NOBODY -> get_holder = me;
               if
               :: CNT(tail_seen) == CNT(head) ->
                  tail_seen = tail;     /* (the flag cannot change under get_lock) */
                  err = (CNT(tail_seen) != CNT(head) -> OK : (shut -> ESHUT : EAGAIN))
               :: else -> err = OK
               fi
           };
           if
           :: err == OK ->
              d_step {
                  hv = cell[POS(head)]; g = gid[POS(head)];     /* the record header */
                  /* else EPROTO: a stale or unwritten header */
                  assert(hv >= 16 && HSEQ(hv) == CNT(head) &&
                         1 + HLEN(hv) <= USED(tail_seen, head));
                  if
                  :: HLEN(hv) -> pv = cell[(POS(head) + 1) % RING]
                  :: else
                  fi;
                  head = WORD(CNT(head) + 1, (POS(head) + 1 + HLEN(hv)) % RING);
                  /* What the get returns: whole, published, once, in order. */
                  assert(g >= 1 && g <= 2 * NPROD && HLEN(hv) == LEN(g));
                  assert(HLEN(hv) == 0 || pv == g);
                  assert((g - 1) % 2 == delivered[(g - 1) / 2]);
                  assert(delivered[(g - 1) / 2] < published[(g - 1) / 2]);
                  delivered[(g - 1) / 2]++;
                  hv = 0; g = 0; pv = 0
              };
              atomic {
                  wake = (putters != 0);
                  if
                  :: wake -> not_full++
                  :: else
                  fi;
                  get_holder = NOBODY
              };
              if
              :: wake -> d_step { wake = false; WAKE_PUTTERS }     /* futex_wake all */
              :: else
              fi
           :: else -> get_holder = NOBODY
           fi;
           if
           :: err == ESHUT -> break
           :: err == OK
           :: else -> sleep_unless(not_empty, getters, false)
           fi;
           err = 0
        od
    } unless { !alive[me] };
    finished[me] = true
}

/* shutdown(false): both locks, the flag, both words bumped, unlock, wake
 * everybody. Late: only once the producers ended and the consumer has every
 * published message (or is dead), so that nothing but the protocol wakes a
 * sleeper. */
proctype closer()
{
    if
    :: late -> PRODUCERS_DONE && (finished[C] || ALL_DELIVERED)
    :: else
    fi;
    atomic {
        put_holder == NOBODY && get_holder == NOBODY ->
        shut = true;
        not_empty++;
        not_full++
    };
    d_step { WAKE_GETTER; WAKE_PUTTERS }
}

/* SIGKILL of the victim at any moment, unless it already ended: the kernel
 * releases its robust mutexes and takes it off the futex queue. */
proctype killer()
{
    d_step {
        if
        :: !finished[victim] ->
            alive[victim] = false;
            killed = true;
            asleep[victim] = false;
            if :: put_holder == victim -> put_holder = NOBODY :: else fi;
            if :: get_holder == victim -> get_holder = NOBODY :: else fi
        :: else
        fi
    }
}

init
{
    atomic {
        alive[0] = true; alive[C] = true;
#if defined(VICTIM) && defined(LATE)
        victim = VICTIM; late = LATE;
#else
        /* Without a kill, the closer is early or late. With one, it is late:
         * an early shutdown adds nothing there but states. (Killing
         * producer 1 instead of 0 adds states, and nothing the other
         * producer would not see.) */
        if
        :: victim = NOBODY; late = false
        :: victim = NOBODY; late = true
        :: victim = 0; late = true
        :: victim = C; late = true
        fi;
#endif
        run producer(0); run consumer(C); run closer();
#if NPROD > 1
        alive[1] = true;
        run producer(1);
#endif
        if
        :: victim != NOBODY -> run killer()
        :: else
        fi
    }
    _nr_pr == 1;
    /* Everything ended: a live consumer got all that was published (and
     * nothing else, by the asserts in consumer). */
    assert(!alive[C] || ALL_DELIVERED);
    /* A live producer put all its messages unless shut out. */
    assert(!alive[0] || published[0] == MSGS(0) || shut);
#if NPROD > 1
    assert(!alive[1] || published[1] == MSGS(1) || shut)
#endif
}
