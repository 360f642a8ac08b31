/* SPDX-License-Identifier: MIT */
/* A child process changes a global: the parent never sees it. Shared memory does.
 *
 * Python original (the first surprise of multiprocessing):
 *     from multiprocessing import Manager, Process
 *
 *     counter = 0
 *
 *     def work():
 *         global counter
 *         for _ in range(10):
 *             counter += 1
 *         print("child:  counter =", counter)         # 10, in the child's copy
 *
 *     def work_shared(shared):
 *         for _ in range(10):
 *             shared.value += 1
 *
 *     if __name__ == "__main__":
 *         p = Process(target=work); p.start(); p.join()
 *         print("parent: counter =", counter)         # still 0
 *         with Manager() as m:
 *             shared = m.Value("i", 0)
 *             p = Process(target=work_shared, args=(shared,)); p.start(); p.join()
 *             print("parent: shared.value =", shared.value)   # 10
 *
 * A process gets a copy of the parent's memory when it starts (fork): the
 * child's counter is its own. Only memory mapped shared, like a manager's
 * values, is seen by both.
 */
#include <pysync/multiprocessing.h>
#include <stdio.h>

enum { ROUNDS = 10 };

static int counter;                     /* counter = 0 */

static int work(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++)
        counter++;                      /* global counter; counter += 1 */
    printf("child:  counter = %d\n", counter);
    return 0;
}

static int work_shared(void *arg)
{
    int *shared = arg;
    for (int i = 0; i < ROUNDS; i++)
        (*shared)++;                    /* shared.value += 1 (one child: no lock needed) */
    return 0;
}

/* p = Process(target=fn, args=(arg,)); p.start(); p.join(); true if it exited with 0 */
static bool run(int (*fn)(void *), void *arg)
{
    ps_process_t *p = ps_process_new(fn, arg, NULL);
    bool ok = p != NULL && ps_process_start(p) == 0 &&
              ps_process_join(p, PS_FOREVER) == 0 && ps_process_exitcode(p) == 0;
    ps_process_free(p);
    return ok;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* the child's line comes first, also in a pipe */
    if (!run(work, NULL))
        return 1;
    printf("parent: counter = %d (a global is not shared)\n", counter);

    ps_manager_t *m = ps_manager_new(NULL, 0);                    /* with Manager() as m: */
    int *shared = m ? ps_manager_value(m, "counter", sizeof *shared) : NULL; /* m.Value("i", 0) */
    if (shared == NULL) {
        perror("manager");
        return 1;
    }
    if (!run(work_shared, shared))
        return 1;
    printf("parent: shared = %d (a manager value is)\n", *shared);

    int ok = counter == 0 && *shared == ROUNDS;
    ps_manager_close(m);
    return ok ? 0 : 1;
}
