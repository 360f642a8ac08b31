/* SPDX-License-Identifier: MIT */
/* Processes fill a dict that a Manager shares between them.
 *
 * Python original (multiprocessing's "sharing state: server process" example):
 *     from multiprocessing import Manager, Process
 *
 *     def f(d, i):
 *         d[i] = 100
 *
 *     if __name__ == "__main__":
 *         with Manager() as manager:
 *             d = manager.dict()
 *             ps = [Process(target=f, args=(d, i)) for i in range(5)]
 *             for p in ps: p.start()
 *             for p in ps: p.join()
 *             print(d)            # {0: 100, 1: 100, 2: 100, 3: 100, 4: 100}, some order
 *
 * The keys of a pysync dict are C strings and its values bytes: here the key
 * is i written out ("0".."4") and the value the bytes of an int64_t.
 */
#include <pysync/multiprocessing.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum { PROCESSES = 5 };

static ps_dict_t *d;                    /* made before the fork: the children share it */

static int f(void *arg)
{
    char key[16];
    int64_t value = 100;
    snprintf(key, sizeof key, "%d", (int)(intptr_t)arg);
    return ps_dict_set(d, key, &value, sizeof value) == 0 ? 0 : 1;   /* d[i] = 100 */
}

/* print(d): one entry; *first says whether a comma goes before it. */
static int print_entry(const char *key, const void *value, size_t len, void *first)
{
    int64_t v = 0;
    if (len == sizeof v)
        memcpy(&v, value, sizeof v);
    printf("%s'%s': %lld", *(bool *)first ? "" : ", ", key, (long long)v);
    *(bool *)first = false;
    return 0;
}

int main(void)
{
    ps_manager_t *m = ps_manager_new(NULL, 0);          /* with Manager() as manager: */
    d = m ? ps_manager_dict(m, "d") : NULL;             /* d = manager.dict() */
    if (d == NULL) {
        perror("manager");
        return 1;
    }
    ps_process_t *ps[PROCESSES];
    bool ok = true, first = true;
    for (int i = 0; i < PROCESSES; i++) {
        ps[i] = ps_process_new(f, (void *)(intptr_t)i, NULL);
        if (ps[i] == NULL || ps_process_start(ps[i]) != 0)
            return 1;
    }
    for (int i = 0; i < PROCESSES; i++) {
        ok &= ps_process_join(ps[i], PS_FOREVER) == 0 && ps_process_exitcode(ps[i]) == 0;
        ps_process_free(ps[i]);
    }

    printf("{");
    ok &= ps_dict_foreach(d, print_entry, &first) == 0;             /* print(d) */
    printf("}\n");

    ok &= ps_dict_len(d) == PROCESSES;
    for (int i = 0; i < PROCESSES; i++) {
        char key[16];
        int64_t value;
        size_t len;
        snprintf(key, sizeof key, "%d", i);
        ok &= ps_dict_get(d, key, &value, sizeof value, &len) == 0 && value == 100;
    }
    printf("%s: %d entries of 100\n", ok ? "ok" : "FAILED", PROCESSES);
    ps_manager_close(m);
    return ok ? 0 : 1;
}
