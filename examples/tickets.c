/* SPDX-License-Identifier: MIT */
/* Ten processes try to buy the last three tickets: a race, and the Lock that ends it.
 *
 * Python original (the classic ticket-buying lesson of multiprocessing):
 *     from multiprocessing import Manager, Process
 *     import sys, time
 *
 *     def buy(n, tickets, bought, lock):
 *         with lock:                          # --no-lock: no with, the race is on
 *             left = tickets["left"]          # look at the count...
 *             time.sleep(0.02)                # ...think it over...
 *             if left > 0:
 *                 tickets["left"] = left - 1  # ...and buy
 *                 bought[n] = True
 *                 print(f"buyer {n}: got a ticket, {left - 1} left")
 *             else:
 *                 print(f"buyer {n}: sold out")
 *
 *     if __name__ == "__main__":
 *         with Manager() as m:
 *             tickets, bought, lock = m.dict(left=3), m.list([False] * 10), m.Lock()
 *             buyers = [Process(target=buy, args=(n, tickets, bought, lock))
 *                       for n in range(10)]
 *             for p in buyers: p.start()
 *             for p in buyers: p.join()
 *             print(f"{sum(bought)} sold, {tickets['left']} left")
 *             assert sum(bought) == 3 and tickets["left"] == 0
 *
 * Each dict call is atomic on its own; "look, then buy" is two calls, and
 * another buyer can look in between. The lock makes the pair one step.
 */
#define _POSIX_C_SOURCE 200809L         /* nanosleep() */
#include <pysync/multiprocessing.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum { BUYERS = 10, TICKETS = 3, THINK_MS = 20 };

/* Made before the fork, so every buyer process shares them. */
static ps_dict_t *tickets;              /* tickets = m.dict(left=3) */
static bool *bought;                    /* bought[n]: buyer n got one; each writes its own */
static ps_lock_t *lock;                 /* lock = m.Lock(); NULL with --no-lock */

static void sleep_ms(long ms)
{
    struct timespec t = { ms / 1000, ms % 1000 * 1000000L };
    while (nanosleep(&t, &t) != 0)
        ;
}

static int buy(void *arg)
{
    int n = (int)(intptr_t)arg;
    int64_t left;
    size_t len;

    /* with lock: (unless --no-lock) */
    if (lock != NULL && ps_lock_acquire(lock, true, PS_FOREVER) != 0)
        return 1;
    int rc = ps_dict_get(tickets, "left", &left, sizeof left, &len);
    sleep_ms(THINK_MS);                 /* others may look meanwhile */
    if (rc == 0 && left > 0) {
        left--;
        rc = ps_dict_set(tickets, "left", &left, sizeof left);
        bought[n] = rc == 0;
        printf("buyer %d: got a ticket, %lld left\n", n, (long long)left);
    } else if (rc == 0) {
        printf("buyer %d: sold out\n", n);
    }
    if (lock != NULL)
        ps_lock_release(lock);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    bool use_lock = argc < 2;
    if (argc > 2 || (argc == 2 && strcmp(argv[1], "--no-lock") != 0)) {
        fprintf(stderr, "usage: %s [--no-lock]\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);   /* lines appear as they happen, also in a pipe */

    ps_manager_t *m = ps_manager_new(NULL, 0);              /* with Manager() as m: */
    tickets = m ? ps_manager_dict(m, "tickets") : NULL;
    bought = m ? ps_manager_value(m, "bought", BUYERS * sizeof *bought) : NULL;
    lock = m && use_lock ? ps_manager_lock(m, "lock") : NULL;
    if (tickets == NULL || bought == NULL || (use_lock && lock == NULL)) {
        perror("manager");
        return 1;
    }
    int64_t left = TICKETS;
    if (ps_dict_set(tickets, "left", &left, sizeof left) != 0)
        return 1;
    printf("%d buyers, %d tickets, %s\n", BUYERS, TICKETS,
           use_lock ? "look-and-buy under a Lock" : "NO lock");

    ps_process_t *buyers[BUYERS];
    for (int n = 0; n < BUYERS; n++) {
        buyers[n] = ps_process_new(buy, (void *)(intptr_t)n, NULL);
        if (buyers[n] == NULL || ps_process_start(buyers[n]) != 0)
            return 1;
    }
    int failed = 0;
    for (int n = 0; n < BUYERS; n++) {
        if (ps_process_join(buyers[n], PS_FOREVER) != 0 ||
            ps_process_exitcode(buyers[n]) != 0)
            failed++;
        ps_process_free(buyers[n]);
    }

    int sold = 0;
    size_t len;
    for (int n = 0; n < BUYERS; n++)
        sold += bought[n];
    if (failed || ps_dict_get(tickets, "left", &left, sizeof left, &len) != 0) {
        fprintf(stderr, "tickets: %d buyers failed\n", failed);
        return 1;
    }
    printf("%d sold, %lld left\n", sold, (long long)left);
    ps_manager_close(m);

    if (!use_lock) {                    /* a demonstration: the race is the point */
        if (sold > TICKETS)
            printf("RACE: oversold by %d: buyers looked at the same count before "
                   "anyone bought; the Lock prevents that\n", sold - TICKETS);
        else
            printf("no overselling this time: the race depends on timing\n");
        return 0;
    }
    if (sold != TICKETS || left != 0) {
        fprintf(stderr, "tickets: expected %d sold and 0 left\n", TICKETS);
        return 1;
    }
    printf("ok: exactly %d sold, none twice\n", TICKETS);
    return 0;
}
