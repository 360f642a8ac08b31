/* SPDX-License-Identifier: MIT */
/* Processes send their results back to the parent through a Queue.
 *
 * Python original (multiprocessing's "exchanging objects between processes"):
 *     from multiprocessing import Process, Queue
 *
 *     def f(q, n):
 *         q.put(n)
 *
 *     if __name__ == "__main__":
 *         q = Queue()
 *         ps = [Process(target=f, args=(q, n)) for n in range(5)]
 *         for p in ps: p.start()
 *         got = [q.get() for _ in range(5)]      # in whatever order they came
 *         for p in ps: p.join()
 *         print(got)
 *         assert sorted(got) == [0, 1, 2, 3, 4]
 *
 * A pysync queue carries bytes, not pickled objects: here each message is
 * the bytes of an int.
 */
#include <pysync/multiprocessing.h>
#include <stdint.h>
#include <stdio.h>

enum { PROCESSES = 5 };

static ps_mpqueue_t *q;                 /* made before the fork: the children share it */

static int f(void *arg)
{
    int n = (int)(intptr_t)arg;
    return ps_mpqueue_put(q, &n, sizeof n, true, PS_FOREVER) == 0 ? 0 : 1;  /* q.put(n) */
}

int main(void)
{
    q = ps_mpqueue_new(0, 4096);        /* q = Queue(): no count limit, 4 KiB of ring */
    if (q == NULL) {
        perror("ps_mpqueue_new");
        return 1;
    }
    ps_process_t *ps[PROCESSES];
    for (int n = 0; n < PROCESSES; n++) {
        ps[n] = ps_process_new(f, (void *)(intptr_t)n, NULL);
        if (ps[n] == NULL || ps_process_start(ps[n]) != 0)
            return 1;
    }

    bool seen[PROCESSES] = { false }, ok = true;
    printf("got [");
    for (int i = 0; i < PROCESSES; i++) {
        int n;
        size_t len;
        ok &= ps_mpqueue_get(q, &n, sizeof n, &len, true, 10.0) == 0 &&  /* q.get() */
              len == sizeof n && n >= 0 && n < PROCESSES && !seen[n];
        if (!ok)
            break;
        seen[n] = true;
        printf("%s%d", i ? ", " : "", n);
    }
    printf("]\n");

    for (int n = 0; n < PROCESSES; n++) {
        ok &= ps_process_join(ps[n], PS_FOREVER) == 0 && ps_process_exitcode(ps[n]) == 0;
        ps_process_free(ps[n]);
    }
    ok &= ps_mpqueue_empty(q);
    printf("%s: each of 0..%d arrived once\n", ok ? "ok" : "FAILED", PROCESSES - 1);
    ps_mpqueue_free(q);
    return ok ? 0 : 1;
}
