/* SPDX-License-Identifier: MIT */
/* tests/test_dict.c - ps_dict_* (Manager().dict()): a hash table in a manager
 * segment. Basics and errors, overwrites of every size, 10000 keys, ENOMEM
 * and reuse, clear and remove giving the space back, foreach snapshots, exact
 * counts from 4 processes, and writers SIGKILLed in the middle of a set, a
 * clear and a table resize. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pysync/multiprocessing.h>
#include <sys/stat.h>

#include "helpers.h"
#include "../shm/layout.h"      /* to look at a dead writer's undo log */

/* ---- named segments: unique per test process, unlinked also on failure ---- */

static const char *seg_name(const char *tag) { return test_seg_name("dict", tag); }

TestSuite(dict, .timeout = 30, .fini = test_unlink_segs);
TestSuite(dict_crash, .timeout = 60, .fini = test_unlink_segs);

/* ps_manager_stats also checks every dict's tables, entries and counters
 * against the heap: it fails (EPROTO) if anything disagrees. */
static ps_manager_stats_t stats_of(ps_manager_t *m)
{
    ps_manager_stats_t st;
    CHECK_RC_E(ps_manager_stats(m, &st), 0);
    return st;
}

static ps_dict_t *make_dict(ps_manager_t **m, const char *seg, size_t size)
{
    *m = ps_manager_new(seg, size);
    cr_assert_not_null(*m, "ps_manager_new: %s", ps_errname(errno));
    ps_dict_t *d = ps_manager_dict(*m, "d");
    cr_assert_not_null(d, "ps_manager_dict: %s", ps_errname(errno));
    return d;
}

/* A value that says what it is: { key index, length, seq }, then bytes that
 * follow from seq. A value made of two writes does not pass check_value. */
struct tag {
    uint32_t key;
    uint32_t len;
    uint64_t seq;
};

static void fill_value(unsigned char *buf, uint32_t key, uint32_t len, uint64_t seq)
{
    struct tag t = { key, len, seq };
    memcpy(buf, &t, sizeof t);
    for (uint32_t i = sizeof t; i < len; i++)
        buf[i] = (unsigned char)(seq * 31 + i);
}

/* The seq of a sound value of key, or 0 if it is not one. */
static uint64_t check_value(const unsigned char *buf, size_t len, uint32_t key)
{
    struct tag t;
    if (len < sizeof t)
        return 0;
    memcpy(&t, buf, sizeof t);
    if (t.key != key || t.len != len || t.seq == 0)
        return 0;
    for (size_t i = sizeof t; i < len; i++)
        if (buf[i] != (unsigned char)(t.seq * 31 + i))
            return 0;
    return t.seq;
}

static int64_t get_i64(ps_dict_t *d, const char *key)
{
    int64_t v = 0;
    size_t len = 0;
    CHECK_RC_E(ps_dict_get(d, key, &v, sizeof v, &len), 0);
    cr_assert_eq(len, sizeof v);
    return v;
}

/* ---- basics ---- */

static int basics_child(void *arg)
{
    ps_manager_t *m = arg;
    ps_dict_t *d = ps_manager_dict(m, "d");
    char buf[32];
    size_t len;
    if (!d || ps_dict_get(d, "", buf, sizeof buf, &len) || len != 10 || strcmp(buf, "empty key"))
        return 1;
    return ps_dict_set(d, "from child", "hi", 3) ? 2 : 0;
}

Test(dict, basics)
{
    ps_manager_t *m;
    ps_dict_t *d = make_dict(&m, NULL, 0);
    errno = 12345;
    cr_assert_eq(ps_manager_dict(m, "d"), d, "the same name is the same dict");
    cr_assert_eq(errno, 12345);
    cr_assert_eq(ps_dict_len(d), 0);
    cr_assert(!ps_dict_contains(d, "a"));

    CHECK_RC_E(ps_dict_set(d, "a", "apple", 6), 0);
    CHECK_RC_E(ps_dict_set(d, "b", "banana", 7), 0);
    CHECK_RC_E(ps_dict_set(d, "", "empty key", 10), 0);
    CHECK_RC_E(ps_dict_set(d, "z", NULL, 0), 0);            /* an empty value */
    cr_assert_eq(ps_dict_len(d), 4);
    cr_assert(ps_dict_contains(d, "a") && ps_dict_contains(d, "") && ps_dict_contains(d, "z"));
    cr_assert(!ps_dict_contains(d, "c"));

    char buf[64];
    size_t len = 999;
    CHECK_RC_E(ps_dict_get(d, "a", buf, sizeof buf, &len), 0);
    cr_assert_eq(len, 6);
    cr_assert_str_eq(buf, "apple");
    CHECK_RC_E(ps_dict_get(d, "z", buf, sizeof buf, &len), 0);
    cr_assert_eq(len, 0);
    CHECK_RC_E(ps_dict_get(d, "z", NULL, 0, &len), 0);
    CHECK_RC_E(ps_dict_get(d, "nope", buf, sizeof buf, &len), ENOENT);

    CHECK_RC_E(ps_dict_del(d, "a"), 0);
    CHECK_RC_E(ps_dict_del(d, "a"), ENOENT);
    CHECK_RC_E(ps_dict_get(d, "a", buf, sizeof buf, &len), ENOENT);
    cr_assert(!ps_dict_contains(d, "a"));
    CHECK_RC_E(ps_dict_pop(d, "b", buf, sizeof buf, &len), 0);
    cr_assert_eq(len, 7);
    cr_assert_str_eq(buf, "banana");
    CHECK_RC_E(ps_dict_pop(d, "b", buf, sizeof buf, &len), ENOENT);
    cr_assert_eq(ps_dict_len(d), 2);

    /* Names are shared with the manager's other objects. */
    cr_assert_not_null(ps_manager_lock(m, "l"));
    errno = 0;
    cr_assert_null(ps_manager_lock(m, "d"));
    cr_assert_eq(errno, EEXIST);
    errno = 0;
    cr_assert_null(ps_manager_dict(m, "l"));
    cr_assert_eq(errno, EEXIST);

    /* A child finds it by name and changes it. */
    cr_assert_eq(child_wait(fork_child(basics_child, m), 10.0), 0);
    CHECK_RC_E(ps_dict_get(d, "from child", buf, sizeof buf, &len), 0);
    cr_assert_str_eq(buf, "hi");
    cr_assert_eq(ps_dict_len(d), 3);
    cr_assert_eq(stats_of(m).objects, 2);
    CHECK_RC_E(ps_manager_close(m), 0);
}

static int count_entries(const char *key, const void *value, size_t len, void *arg)
{
    (void)key, (void)value, (void)len;
    ++*(int *)arg;
    return 0;
}

Test(dict, invalid_arguments)
{
    ps_manager_t *m;
    ps_dict_t *d = make_dict(&m, NULL, 0);
    char buf[16];
    size_t len;
    int64_t r;
    int calls = 0;
    CHECK_RC_E(ps_dict_set(NULL, "k", "v", 1), EINVAL);
    CHECK_RC_E(ps_dict_get(NULL, "k", buf, sizeof buf, &len), EINVAL);
    CHECK_RC_E(ps_dict_pop(NULL, "k", buf, sizeof buf, &len), EINVAL);
    CHECK_RC_E(ps_dict_del(NULL, "k"), EINVAL);
    CHECK_RC_E(ps_dict_clear(NULL), EINVAL);
    CHECK_RC_E(ps_dict_incr(NULL, "k", 1, &r), EINVAL);
    CHECK_RC_E(ps_dict_foreach(NULL, count_entries, &calls), EINVAL);
    errno = 12345;
    cr_assert(!ps_dict_contains(NULL, "k"));
    cr_assert_eq(ps_dict_len(NULL), 0);
    cr_assert_eq(errno, 12345);

    CHECK_RC_E(ps_dict_set(d, NULL, "v", 1), EINVAL);
    CHECK_RC_E(ps_dict_get(d, NULL, buf, sizeof buf, &len), EINVAL);
    CHECK_RC_E(ps_dict_pop(d, NULL, buf, sizeof buf, &len), EINVAL);
    CHECK_RC_E(ps_dict_del(d, NULL), EINVAL);
    CHECK_RC_E(ps_dict_incr(d, NULL, 1, &r), EINVAL);
    cr_assert(!ps_dict_contains(d, NULL));
    CHECK_RC_E(ps_dict_set(d, "k", NULL, 5), EINVAL);        /* no bytes to copy */
    CHECK_RC_E(ps_dict_set(d, "k", "v", 1), 0);
    CHECK_RC_E(ps_dict_get(d, "k", NULL, 5, &len), EINVAL);
    CHECK_RC_E(ps_dict_foreach(d, NULL, NULL), EINVAL);
    cr_assert_eq(ps_dict_len(d), 1);

    /* Pointers that are not a dict: outside every segment, EINVAL, without
     * being read; inside one but at another object, EPROTO. */
    char local[128] = { 0 };
    CHECK_RC_E(ps_dict_set((ps_dict_t *)(void *)local, "k", "v", 1), EINVAL);
    CHECK_RC_E(ps_dict_del((ps_dict_t *)(void *)&calls, "k"), EINVAL);
    void *value = ps_manager_value(m, "v", 128);
    cr_assert_not_null(value);
    CHECK_RC_E(ps_dict_set((ps_dict_t *)value, "k", "v", 1), EPROTO);
    CHECK_RC_E(ps_dict_get((ps_dict_t *)value, "k", buf, sizeof buf, &len), EPROTO);
    cr_assert_eq(ps_dict_len((ps_dict_t *)value), 0);

    /* After close the mapping is gone: EINVAL, not a crash. */
    CHECK_RC_E(ps_manager_close(m), 0);
    CHECK_RC_E(ps_dict_set(d, "k", "v", 1), EINVAL);
    CHECK_RC_E(ps_dict_get(d, "k", buf, sizeof buf, &len), EINVAL);
    cr_assert_eq(ps_dict_len(d), 0);
    cr_assert(!ps_dict_contains(d, "k"));
}

Test(dict, erange_leaves_the_entry)
{
    ps_manager_t *m;
    ps_dict_t *d = make_dict(&m, NULL, 0);
    unsigned char value[100], buf[100];
    fill_value(value, 1, sizeof value, 5);
    CHECK_RC_E(ps_dict_set(d, "k", value, sizeof value), 0);
    size_t len = 0;
    CHECK_RC_E(ps_dict_get(d, "k", buf, 10, &len), ERANGE);
    cr_assert_eq(len, 100, "ERANGE must say the size needed");
    len = 0;
    CHECK_RC_E(ps_dict_get(d, "k", NULL, 0, &len), ERANGE);
    cr_assert_eq(len, 100);
    len = 0;
    CHECK_RC_E(ps_dict_pop(d, "k", buf, 99, &len), ERANGE);
    cr_assert_eq(len, 100);
    cr_assert(ps_dict_contains(d, "k"), "an ERANGE pop consumed the entry");
    cr_assert_eq(ps_dict_len(d), 1);
    CHECK_RC_E(ps_dict_pop(d, "k", buf, sizeof buf, &len), 0);
    cr_assert_eq(len, 100);
    cr_assert_eq(check_value(buf, len, 1), 5);
    cr_assert(!ps_dict_contains(d, "k"));
    CHECK_RC_E(ps_dict_pop(d, "k", buf, sizeof buf, &len), ENOENT);
    CHECK_RC_E(ps_manager_close(m), 0);
}

/* ---- overwrites ---- */

Test(dict, overwrite_bigger_and_smaller)
{
    ps_manager_t *m;
    ps_dict_t *d = make_dict(&m, NULL, 0);
    size_t empty = stats_of(m).free_bytes;
    static const uint32_t sizes[] = { 16, 16, 17, 24, 1000, 16, 300, 256, 250, 4096, 20, 64,
                                      63, 5000, 16 };
    static unsigned char value[8192], buf[8192];
    fill_value(value, 2, 40, 1);
    CHECK_RC_E(ps_dict_set(d, "neighbour", value, 40), 0);
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        fill_value(value, 1, sizes[i], i + 1);
        CHECK_RC_E(ps_dict_set(d, "k", value, sizes[i]), 0);
        size_t len = 0;
        CHECK_RC_E(ps_dict_get(d, "k", buf, sizeof buf, &len), 0);
        cr_assert_eq(len, sizes[i], "step %zu", i);
        cr_assert_eq(check_value(buf, len, 1), i + 1, "step %zu: torn value", i);
        cr_assert_eq(ps_dict_len(d), 2);
        stats_of(m);                                /* the byte counts agree */
    }
    /* A short value over a long one and back, both ways of writing. */
    CHECK_RC_E(ps_dict_set(d, "k", "", 0), 0);
    size_t len = 1;
    CHECK_RC_E(ps_dict_get(d, "k", buf, sizeof buf, &len), 0);
    cr_assert_eq(len, 0);
    CHECK_RC_E(ps_dict_set(d, "k", "abcdefg", 7), 0);
    CHECK_RC_E(ps_dict_set(d, "k", "xyz", 3), 0);
    CHECK_RC_E(ps_dict_get(d, "k", buf, sizeof buf, &len), 0);
    cr_assert_eq(len, 3);
    cr_assert(memcmp(buf, "xyz", 3) == 0);
    CHECK_RC_E(ps_dict_get(d, "neighbour", buf, sizeof buf, &len), 0);
    cr_assert_eq(check_value(buf, len, 2), 1, "an overwrite damaged another entry");
    CHECK_RC_E(ps_dict_clear(d), 0);
    cr_assert_eq(stats_of(m).free_bytes, empty, "overwrites leaked");
    CHECK_RC_E(ps_manager_close(m), 0);
}

Test(dict, incr)
{
    ps_manager_t *m;
    ps_dict_t *d = make_dict(&m, NULL, 0);
    int64_t r = 0;
    CHECK_RC_E(ps_dict_incr(d, "n", 5, &r), 0);           /* missing: counts as 0 */
    cr_assert_eq(r, 5);
    CHECK_RC_E(ps_dict_incr(d, "n", -7, &r), 0);
    cr_assert_eq(r, -2);
    CHECK_RC_E(ps_dict_incr(d, "n", 0, NULL), 0);
    cr_assert_eq(get_i64(d, "n"), -2);
    int64_t big = INT64_MAX;
    CHECK_RC_E(ps_dict_set(d, "max", &big, sizeof big), 0);
    CHECK_RC_E(ps_dict_incr(d, "max", 1, &r), 0);
    cr_assert_eq(r, INT64_MIN, "wraps as two's complement");

    /* A value that is not 8 bytes: EINVAL, and it stays as it was. */
    CHECK_RC_E(ps_dict_set(d, "s", "abc", 3), 0);
    CHECK_RC_E(ps_dict_incr(d, "s", 1, &r), EINVAL);
    CHECK_RC_E(ps_dict_set(d, "s16", "0123456789abcdef", 16), 0);
    CHECK_RC_E(ps_dict_incr(d, "s16", 1, &r), EINVAL);
    CHECK_RC_E(ps_dict_set(d, "e", NULL, 0), 0);
    CHECK_RC_E(ps_dict_incr(d, "e", 1, &r), EINVAL);
    char buf[32];
    size_t len;
    CHECK_RC_E(ps_dict_get(d, "s", buf, sizeof buf, &len), 0);
    cr_assert(len == 3 && memcmp(buf, "abc", 3) == 0);
    cr_assert_eq(ps_dict_len(d), 5);
    stats_of(m);
    CHECK_RC_E(ps_manager_close(m), 0);
}

typedef struct incr_args {
    ps_manager_t *m;
    int iters;
} incr_args_t;

static int incr_child(void *arg)
{
    incr_args_t *a = arg;
    ps_dict_t *d = ps_manager_dict(a->m, "d");      /* found by name */
    if (!d)
        return 1;
    char mine[32];
    snprintf(mine, sizeof mine, "pid%d", (int)getpid());
    for (int i = 0; i < a->iters; i++) {
        if (ps_dict_incr(d, "counter", 1, NULL) || ps_dict_incr(d, mine, 2, NULL))
            return 2;
    }
    return 0;
}

Test(dict, incr_four_processes_exact)
{
    ps_manager_t *m;
    ps_dict_t *d = make_dict(&m, NULL, 0);
    incr_args_t a = { m, 10000 };
    pid_t pids[4];
    fork_children(pids, 4, incr_child, &a);
    CHECK_CHILDREN(pids, 4, 20.0, 0);
    cr_assert_eq(get_i64(d, "counter"), 40000);
    char key[32];
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "pid%d", (int)pids[i]);
        cr_assert_eq(get_i64(d, key), 20000);
    }
    cr_assert_eq(ps_dict_len(d), 5);
    stats_of(m);
    CHECK_RC_E(ps_manager_close(m), 0);
}

/* ---- many keys ---- */

struct walk {
    int calls, bad;
    int stop_at, stop_with;
    int seen[10000];
};

static int check_entry(const char *key, const void *value, size_t len, void *arg)
{
    struct walk *w = arg;
    int i;
    if (sscanf(key, "key%d", &i) != 1 || i < 0 || i >= 10000 || w->seen[i]++ ||
        check_value(value, len, (uint32_t)i) != (uint64_t)i + 1)
        w->bad++;
    if (((uintptr_t)value & 7) != 0)
        w->bad++;                                   /* values are 8-byte aligned */
    return ++w->calls == w->stop_at ? w->stop_with : 0;
}

Test(dict, ten_thousand_keys)
{
    ps_manager_t *m;
    ps_dict_t *d = make_dict(&m, NULL, 8u << 20);
    char key[32];
    unsigned char value[64], buf[64];
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof key, "key%d", i);
        uint32_t len = 16 + (uint32_t)i % 40;
        fill_value(value, (uint32_t)i, len, (uint64_t)i + 1);
        CHECK_RC(ps_dict_set(d, key, value, len), 0);
    }
    cr_assert_eq(ps_dict_len(d), 10000);
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof key, "key%d", i);
        size_t len;
        CHECK_RC(ps_dict_get(d, key, buf, sizeof buf, &len), 0);
        cr_assert_eq(check_value(buf, len, (uint32_t)i), (uint64_t)i + 1, "%s", key);
    }
    static struct walk w;
    memset(&w, 0, sizeof w);
    CHECK_RC_E(ps_dict_foreach(d, check_entry, &w), 0);
    cr_assert_eq(w.calls, 10000);
    cr_assert_eq(w.bad, 0);
    for (int i = 0; i < 10000; i += 2) {
        snprintf(key, sizeof key, "key%d", i);
        CHECK_RC(ps_dict_del(d, key), 0);
    }
    cr_assert_eq(ps_dict_len(d), 5000);
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof key, "key%d", i);
        cr_assert_eq(ps_dict_contains(d, key), i % 2 == 1, "%s", key);
    }
    /* Deleted slots are reused: the same keys again, then all of them. */
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 10000; i += 2) {
            snprintf(key, sizeof key, "key%d", i);
            fill_value(value, (uint32_t)i, 16, (uint64_t)i + 1);
            if (round % 2 == 0)
                CHECK_RC(ps_dict_set(d, key, value, 16), 0);
            else
                CHECK_RC(ps_dict_del(d, key), 0);
        }
    cr_assert_eq(ps_dict_len(d), 10000);
    memset(&w, 0, sizeof w);
    CHECK_RC_E(ps_dict_foreach(d, check_entry, &w), 0);
    cr_assert_eq(w.calls, 10000);
    cr_assert_eq(w.bad, 0);
    stats_of(m);
    CHECK_RC_E(ps_manager_close(m), 0);
}

/* ---- foreach ---- */

static int call_dict_from_fn(const char *key, const void *value, size_t len, void *arg)
{
    (void)value, (void)len;
    return ps_dict_set(arg, key, "seen", 4) ? -1 : 0;      /* works on a snapshot */
}

Test(dict, foreach_stops_early)
{
    ps_manager_t *m;
    ps_dict_t *d = make_dict(&m, NULL, 0);
    static struct walk w;
    memset(&w, 0, sizeof w);
    CHECK_RC_E(ps_dict_foreach(d, check_entry, &w), 0);     /* empty: no call */
    cr_assert_eq(w.calls, 0);
    char key[32];
    unsigned char value[64];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "key%d", i);
        fill_value(value, (uint32_t)i, 20, (uint64_t)i + 1);
        CHECK_RC(ps_dict_set(d, key, value, 20), 0);
    }
    memset(&w, 0, sizeof w);
    w.stop_at = 5;
    w.stop_with = 42;
    CHECK_RC_E(ps_dict_foreach(d, check_entry, &w), 42);
    cr_assert_eq(w.calls, 5, "fn ran after it returned non-zero");
    memset(&w, 0, sizeof w);
    w.stop_at = 20;
    w.stop_with = -3;
    CHECK_RC_E(ps_dict_foreach(d, check_entry, &w), -3);
    cr_assert_eq(w.calls, 20);
    cr_assert_eq(w.bad, 0);
    /* fn sees a copy, so even a call into the same dict does no harm. */
    CHECK_RC_E(ps_dict_foreach(d, call_dict_from_fn, d), 0);
    cr_assert_eq(ps_dict_len(d), 20);
    CHECK_RC_E(ps_manager_close(m), 0);
}

/* A writer sets k0, k1, ..., k(N-1) to gen, then to gen + 1, and so on. A
 * consistent snapshot is a step: gen for k0..k(j-1), gen - 1 for the rest. */
#define STEP_KEYS 64

static int step_writer(void *arg)
{
    ps_dict_t *d = arg;
    char key[32];
    for (int64_t gen = 1;; gen++)
        for (int i = 0; i < STEP_KEYS; i++) {
            snprintf(key, sizeof key, "k%d", i);
            if (ps_dict_set(d, key, &gen, sizeof gen))
                return 1;
        }
}

struct step {
    int64_t v[STEP_KEYS];
    int n, bad;
};

static int collect_step(const char *key, const void *value, size_t len, void *arg)
{
    struct step *s = arg;
    int i;
    if (sscanf(key, "k%d", &i) != 1 || i < 0 || i >= STEP_KEYS || len != 8)
        s->bad++;
    else
        memcpy(&s->v[i], value, 8);
    s->n++;
    return 0;
}

Test(dict, foreach_sees_one_state)
{
    ps_manager_t *m;
    ps_dict_t *d = make_dict(&m, NULL, 0);
    char key[32];
    int64_t zero = 0;
    for (int i = 0; i < STEP_KEYS; i++) {
        snprintf(key, sizeof key, "k%d", i);
        CHECK_RC(ps_dict_set(d, key, &zero, sizeof zero), 0);
    }
    pid_t pid = fork_child(step_writer, d);
    double end = now() + 10.0;
    while (get_i64(d, "k0") == 0 && now() < end)        /* until the writer runs */
        sleep_s(0.0005);
    int steps_seen = 0;
    end = now() + 3.0;
    for (int round = 0; (round < 500 || steps_seen < 20) && now() < end; round++) {
        struct step s = { .n = 0 };
        CHECK_RC(ps_dict_foreach(d, collect_step, &s), 0);
        cr_assert_eq(s.n, STEP_KEYS);
        cr_assert_eq(s.bad, 0);
        int j = 0;
        while (j < STEP_KEYS && s.v[j] == s.v[0])
            j++;
        for (int i = j; i < STEP_KEYS; i++)
            cr_assert_eq(s.v[i], s.v[0] - 1, "round %d: k%d is %lld, k0 is %lld: torn snapshot",
                         round, i, (long long)s.v[i], (long long)s.v[0]);
        steps_seen += j < STEP_KEYS;
    }
    child_kill(pid);
    cr_assert_gt(steps_seen, 0, "the writer never ran during a foreach: the test tests little");
    stats_of(m);
    CHECK_RC_E(ps_manager_close(m), 0);
}

/* ---- space: ENOMEM, clear, remove ---- */

Test(dict, enomem_keeps_entries_then_reuse)
{
    ps_manager_t *m;
    ps_dict_t *d = make_dict(&m, NULL, 64 * 1024);
    size_t empty = stats_of(m).free_bytes;
    char key[32];
    unsigned char value[200], buf[200];
    int n = 0;
    for (;; n++) {
        snprintf(key, sizeof key, "k%d", n);
        fill_value(value, (uint32_t)n, sizeof value, 1);
        int rc = ps_dict_set(d, key, value, sizeof value);
        if (rc) {
            CHECK_RC(rc, ENOMEM);
            break;
        }
    }
    cr_assert_gt(n, 50);
    cr_assert_eq(ps_dict_len(d), (size_t)n);
    stats_of(m);
    /* An overwrite that does not fit keeps the old value; so does a value
     * larger than the whole segment. */
    static unsigned char huge[40 * 1024];
    fill_value(huge, 0, sizeof huge, 9);
    CHECK_RC_E(ps_dict_set(d, "k0", huge, sizeof huge), ENOMEM);
    CHECK_RC_E(ps_dict_set(d, "k1", huge, (size_t)1 << 40), ENOMEM);
    int64_t r;
    for (int i = 0; i < 50; i++) {          /* counters until nothing fits */
        snprintf(key, sizeof key, "c%d", i);
        int rc = ps_dict_incr(d, key, 1, &r);
        cr_assert(rc == 0 || rc == ENOMEM, "%s", ps_errname(rc));
    }
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "k%d", i);
        size_t len;
        CHECK_RC(ps_dict_get(d, key, buf, sizeof buf, &len), 0);
        cr_assert_eq(check_value(buf, len, (uint32_t)i), 1, "%s damaged", key);
    }
    stats_of(m);
    /* Freed space is reused. */
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "k%d", i);
        CHECK_RC(ps_dict_del(d, key), 0);
    }
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof key, "new%d", i);
        CHECK_RC(ps_dict_set(d, key, value, sizeof value), 0);
    }
    CHECK_RC_E(ps_dict_clear(d), 0);
    cr_assert_eq(stats_of(m).free_bytes, empty);
    int again = 0;
    for (;; again++) {
        snprintf(key, sizeof key, "k%d", again);
        fill_value(value, (uint32_t)again, sizeof value, 1);
        if (ps_dict_set(d, key, value, sizeof value))
            break;
    }
    cr_assert_geq(again, n - 2, "only %d of %d entries fit after clear", again, n);
    stats_of(m);
    CHECK_RC_E(ps_manager_close(m), 0);
}

/* 20000 entries fill most of the segment: twice that fits only if clear gave
 * the space back. */
Test(dict, clear_twenty_thousand_then_reuse)
{
    ps_manager_t *m;
    ps_dict_t *d = make_dict(&m, NULL, 3u << 20);
    ps_manager_stats_t empty = stats_of(m);
    char key[32];
    unsigned char value[24], buf[24];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 20000; i++) {
            snprintf(key, sizeof key, "r%d-%d", round, i);
            fill_value(value, (uint32_t)i, sizeof value, (uint64_t)round + 1);
            CHECK_RC(ps_dict_set(d, key, value, sizeof value), 0);
        }
        cr_assert_eq(ps_dict_len(d), 20000);
        ps_manager_stats_t full = stats_of(m);
        cr_assert_lt(full.free_bytes, empty.free_bytes / 2, "the test needs a fuller segment");
        double t0 = now();
        CHECK_RC_E(ps_dict_clear(d), 0);
        double took = now() - t0;
        cr_assert_lt(took, 1.0, "clear of 20000 entries took %.3f s", took);
        cr_assert_eq(ps_dict_len(d), 0);
        snprintf(key, sizeof key, "r%d-7", round);
        size_t len;
        CHECK_RC_E(ps_dict_get(d, key, buf, sizeof buf, &len), ENOENT);
        int calls = 0;
        CHECK_RC_E(ps_dict_foreach(d, count_entries, &calls), 0);
        cr_assert_eq(calls, 0);
        ps_manager_stats_t st = stats_of(m);
        cr_assert_eq(st.free_bytes, empty.free_bytes, "clear leaked %zu bytes",
                     empty.free_bytes - st.free_bytes);
        cr_assert_eq(st.free_blocks, empty.free_blocks);
    }
    CHECK_RC_E(ps_dict_clear(d), 0);                        /* an empty dict */
    CHECK_RC_E(ps_manager_close(m), 0);
}

Test(dict, remove_gives_the_space_back)
{
    ps_manager_t *m = ps_manager_new(NULL, 2u << 20);
    cr_assert_not_null(m);
    ps_manager_stats_t empty = stats_of(m);
    char key[32];
    unsigned char value[100];
    for (int round = 0; round < 3; round++) {
        ps_dict_t *d = ps_manager_dict(m, "d");
        cr_assert_not_null(d);
        cr_assert_eq(ps_dict_len(d), 0, "round %d: a new dict of the name is empty", round);
        for (int i = 0; i < 5000; i++) {
            snprintf(key, sizeof key, "k%d", i);
            fill_value(value, (uint32_t)i, 16 + (uint32_t)i % 80, 1);
            CHECK_RC(ps_dict_set(d, key, value, 16 + (size_t)i % 80), 0);
        }
        cr_assert_eq(stats_of(m).objects, 1);
        CHECK_RC_E(ps_manager_remove(m, "d"), 0);
        ps_manager_stats_t st = stats_of(m);
        cr_assert_eq(st.objects, 0);
        cr_assert_eq(st.free_bytes, empty.free_bytes, "remove leaked %zu bytes",
                     empty.free_bytes - st.free_bytes);
        cr_assert_eq(st.free_blocks, 1);
        CHECK_RC_E(ps_manager_remove(m, "d"), ENOENT);
    }
    CHECK_RC_E(ps_manager_close(m), 0);
}

/* ---- hostile segments ---- */

static int ignore_entry(const char *key, const void *value, size_t len, void *arg)
{
    (void)key, (void)value, (void)len, (void)arg;
    return 0;
}

/* Random bytes over the heap of a segment that holds a dict (its header, its
 * table, its entries, the allocator's block headers), then every dict call:
 * any answer but a crash or a hang. */
Test(dict, fuzz_never_crashes)
{
    const char *name = seg_name("fuzz");
    ps_manager_t *m;
    ps_dict_t *d = make_dict(&m, name, 64 * 1024);
    char key[32];
    unsigned char value[64];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof key, "k%d", i);
        fill_value(value, (uint32_t)i, 16 + (uint32_t)i, 1);
        CHECK_RC(ps_dict_set(d, key, value, 16 + (size_t)i), 0);
    }
    for (int i = 0; i < 40; i += 3) {
        snprintf(key, sizeof key, "k%d", i);
        CHECK_RC(ps_dict_del(d, key), 0);
    }
    CHECK_RC(ps_manager_close(m), 0);
    int fd = shm_open(name, O_RDWR, 0);
    cr_assert_geq(fd, 0);
    struct stat st;
    fstat(fd, &st);
    size_t size = (size_t)st.st_size;
    unsigned char *good = malloc(size), *bytes = malloc(size);
    cr_assert_eq(pread(fd, good, size, 0), (ssize_t)size);
    uint64_t heap_off;
    memcpy(&heap_off, good + offsetof(struct seg_header, heap_off), sizeof heap_off);
    const size_t span = 8 * 1024;                   /* the dict's blocks are in front */
    cr_assert_lt(heap_off + span, size);
    unsigned x = 31337;
    int opened = 0, answered = 0, rejected = 0, rounds = 0;
    double end = now() + 1.0;
    for (int round = 0; round < 2000 && now() < end; round++) {
        rounds++;
        memcpy(bytes, good, size);
        int flips = 1 + (int)((x = x * 1103515245u + 12345u) >> 16) % 8;
        for (int f = 0; f < flips; f++) {
            x = x * 1103515245u + 12345u;
            bytes[heap_off + (x >> 8) % span] = (unsigned char)(x >> 3);
        }
        cr_assert_eq(pwrite(fd, bytes, size, 0), (ssize_t)size);
        ps_manager_t *f = ps_manager_open(name);
        if (!f)
            continue;
        opened++;
        ps_dict_t *fd_dict = ps_manager_dict(f, "d");
        if (fd_dict) {
            char buf[128];
            size_t len;
            int64_t r;
            answered += ps_dict_get(fd_dict, "k1", buf, sizeof buf, &len) == 0;
            ps_dict_contains(fd_dict, "k2");
            ps_dict_len(fd_dict);
            rejected += ps_dict_set(fd_dict, "k4", "new value", 10) == EPROTO;
            ps_dict_set(fd_dict, "k5", value, 60);
            ps_dict_set(fd_dict, "fresh", "x", 1);
            ps_dict_incr(fd_dict, "k7", 1, &r);
            ps_dict_pop(fd_dict, "k8", buf, sizeof buf, &len);
            ps_dict_del(fd_dict, "k10");
            ps_dict_foreach(fd_dict, ignore_entry, NULL);
            ps_manager_stats_t sts;
            ps_manager_stats(f, &sts);
            ps_dict_clear(fd_dict);
            ps_manager_remove(f, "d");
        }
        ps_manager_close(f);
    }
    close(fd);
    cr_log_info("dict fuzz: %d rounds, %d opened, %d answered a get, %d set said EPROTO\n",
                rounds, opened, answered, rejected);
    cr_assert_gt(opened, 0);
    cr_assert_gt(answered, 0, "no damaged dict ever answered: the test tests little");
    free(good);
    free(bytes);
}

/* ---- the same dict through two mappings at different addresses ---- */

static int reopen_child(void *arg)
{
    const char *name = arg;
    ps_manager_t *m = ps_manager_open(name);        /* a second mapping */
    ps_dict_t *d = m ? ps_manager_dict(m, "d") : NULL;
    if (!d)
        return 1;
    char buf[16];
    size_t len;
    if (ps_dict_get(d, "greeting", buf, sizeof buf, &len) || strcmp(buf, "hello"))
        return 2;
    if (ps_dict_set(d, "answer", "world", 6) || ps_dict_incr(d, "n", 1, NULL))
        return 3;
    return ps_manager_close(m) ? 4 : 0;
}

Test(dict, named_segment_reopened_elsewhere)
{
    const char *name = seg_name("reopen");
    ps_manager_t *m;
    ps_dict_t *d = make_dict(&m, name, 0);
    CHECK_RC(ps_dict_set(d, "greeting", "hello", 6), 0);
    cr_assert_eq(child_wait(fork_child(reopen_child, (void *)name), 10.0), 0);
    ps_manager_t *m2 = ps_manager_open(name);
    cr_assert_not_null(m2);
    ps_dict_t *d2 = ps_manager_dict(m2, "d");
    cr_assert(d2 && d2 != d);
    char buf[16];
    size_t len;
    CHECK_RC(ps_dict_get(d2, "answer", buf, sizeof buf, &len), 0);
    cr_assert_str_eq(buf, "world");
    cr_assert_eq(get_i64(d, "n"), 1);
    CHECK_RC(ps_dict_incr(d2, "n", 1, NULL), 0);
    cr_assert_eq(get_i64(d, "n"), 2);
    CHECK_RC_E(ps_manager_close(m2), 0);
    cr_assert_eq(get_i64(d, "n"), 2, "closing one mapping broke the other");
    CHECK_RC_E(ps_manager_close(m), 0);
}

/* ---- crash safety ---- */

#define CRASH_KEYS 64

/* What the writer did, in shared memory: for key i, the seq it last stored
 * (0: deleted) and the one it is storing now; the same for counter i. */
struct crash_log {
    uint64_t done[CRASH_KEYS], trying[CRASH_KEYS];
    int64_t count_done[CRASH_KEYS];
    uint64_t next_seq;
    unsigned seed;
};

static const uint32_t crash_sizes[] = { 16, 16, 24, 100, 100, 256, 300, 2000 };

static int crash_writer(void *arg)
{
    void **a = arg;
    ps_dict_t *d = a[0];
    struct crash_log *log = a[1];
    static unsigned char value[2048];
    char key[32];
    unsigned x = log->seed;
    for (;;) {
        x = x * 1103515245u + 12345u;
        uint32_t i = (x >> 16) % CRASH_KEYS;
        unsigned op = (x >> 8) % 10;
        if (op < 7) {
            uint64_t seq = ++log->next_seq;
            uint32_t len = crash_sizes[(x >> 4) % 8];
            snprintf(key, sizeof key, "key%u", i);
            fill_value(value, i, len, seq);
            __atomic_store_n(&log->trying[i], seq, __ATOMIC_SEQ_CST);
            int rc = ps_dict_set(d, key, value, len);
            if (rc && rc != ENOMEM)
                return 1;
            if (!rc)
                __atomic_store_n(&log->done[i], seq, __ATOMIC_SEQ_CST);
        } else if (op < 8) {
            snprintf(key, sizeof key, "key%u", i);
            __atomic_store_n(&log->trying[i], 0, __ATOMIC_SEQ_CST);
            int rc = ps_dict_del(d, key);
            if (rc && rc != ENOENT)
                return 2;
            __atomic_store_n(&log->done[i], 0, __ATOMIC_SEQ_CST);
        } else {
            snprintf(key, sizeof key, "count%u", i);
            int64_t r;
            if (ps_dict_incr(d, key, 1, &r))
                return 3;
            __atomic_store_n(&log->count_done[i], r, __ATOMIC_SEQ_CST);
        }
    }
}

/* After the writer died: every key holds its last stored value or the one
 * being stored (or is gone, for a delete), whole; every counter is exact or
 * one ahead. Then the log is set to what the dict holds. */
static void check_after_kill(ps_dict_t *d, struct crash_log *log, int round)
{
    static unsigned char buf[2048];
    char key[32];
    for (uint32_t i = 0; i < CRASH_KEYS; i++) {
        snprintf(key, sizeof key, "key%u", i);
        size_t len = 0;
        int rc = ps_dict_get(d, key, buf, sizeof buf, &len);
        cr_assert(rc == 0 || rc == ENOENT, "round %d: %s: %s", round, key, ps_errname(rc));
        uint64_t seq = rc ? 0 : check_value(buf, len, i);
        cr_assert(rc || seq, "round %d: %s holds a torn or mixed value (%zu bytes)", round, key,
                  len);
        cr_assert(seq == log->done[i] || seq == log->trying[i],
                  "round %d: %s holds seq %llu, the writer stored %llu / was storing %llu",
                  round, key, (unsigned long long)seq, (unsigned long long)log->done[i],
                  (unsigned long long)log->trying[i]);
        log->done[i] = log->trying[i] = seq;
        snprintf(key, sizeof key, "count%u", i);
        int64_t c = 0;
        rc = ps_dict_get(d, key, &c, sizeof c, &len);
        cr_assert(rc == 0 || rc == ENOENT);
        cr_assert(c == log->count_done[i] || c == log->count_done[i] + 1,
                  "round %d: %s is %lld, the writer saw %lld", round, key, (long long)c,
                  (long long)log->count_done[i]);
        log->count_done[i] = c;
    }
}

Test(dict_crash, writer_killed_mid_loop)
{
    ps_manager_t *m;
    ps_dict_t *d = make_dict(&m, NULL, 256 * 1024);
    struct crash_log *log = shm_alloc(sizeof *log);
    void *args[2] = { d, log };
    unsigned x = 77;
    for (int round = 0; round < 40; round++) {
        log->seed = 1000u + (unsigned)round;
        pid_t pid = fork_child(crash_writer, args);
        x = x * 1103515245u + 12345u;
        sleep_s(0.001 + (double)((x >> 16) % 3000) / 1e6);
        child_kill(pid);
        stats_of(m);                    /* repairs, then checks every count */
        check_after_kill(d, log, round);
    }
    ps_manager_stats_t st = stats_of(m);
    cr_assert_gt(st.repairs, 0, "no kill landed inside a dict call");
    /* Still a working dict. */
    CHECK_RC(ps_dict_set(d, "after", "ok", 3), 0);
    CHECK_RC_E(ps_dict_clear(d), 0);
    cr_assert_eq(ps_dict_len(d), 0);
    stats_of(m);
    shm_free(log, sizeof *log);
    CHECK_RC_E(ps_manager_close(m), 0);
}

/* A clear of CLEAR_KEYS entries, killed at a random point of it. */
#define CLEAR_KEYS 20000

struct clear_sync {
    int phase;                      /* 1: clear called, 2: clear returned */
    double took;                    /* a whole clear, measured by round 0 */
};

static void fill_clear_keys(ps_dict_t *d)
{
    char key[32];
    unsigned char value[24];
    for (int i = 0; i < CLEAR_KEYS; i++) {
        snprintf(key, sizeof key, "key%d", i);
        fill_value(value, (uint32_t)i, sizeof value, 1);
        if (ps_dict_set(d, key, value, sizeof value))
            abort();
    }
}

static int clear_writer(void *arg)
{
    void **a = arg;
    ps_dict_t *d = a[0];
    struct clear_sync *sync = a[1];
    __atomic_store_n(&sync->phase, 1, __ATOMIC_SEQ_CST);
    double t0 = now();
    if (ps_dict_clear(d))
        return 1;
    sync->took = now() - t0;
    __atomic_store_n(&sync->phase, 2, __ATOMIC_SEQ_CST);
    for (;;)
        pause();
}

Test(dict_crash, writer_killed_mid_clear)
{
    ps_manager_t *m;
    ps_dict_t *d = make_dict(&m, NULL, 4u << 20);
    size_t empty = stats_of(m).free_bytes;
    struct clear_sync *sync = shm_alloc(sizeof *sync);
    void *args[2] = { d, sync };
    /* Round 0 measures a whole clear. */
    fill_clear_keys(d);
    pid_t pid = fork_child(clear_writer, args);
    double limit = now() + 10.0;
    while (__atomic_load_n(&sync->phase, __ATOMIC_SEQ_CST) != 2 && now() < limit)
        sleep_s(0.0005);
    cr_assert_eq(sync->phase, 2, "the clear did not finish");
    child_kill(pid);
    double took = sync->took;
    cr_assert_eq(stats_of(m).free_bytes, empty);
    int in_garbage = 0, before = 0, after = 0;
    unsigned x = 4242;
    double end = now() + 8.0;
    for (int round = 1; round < 60 && in_garbage < 3 && now() < end; round++) {
        fill_clear_keys(d);
        sync->phase = 0;
        pid = fork_child(clear_writer, args);
        double limit = now() + 10.0;
        while (__atomic_load_n(&sync->phase, __ATOMIC_SEQ_CST) == 0 && now() < limit)
            ;
        x = x * 1103515245u + 12345u;
        spin_us(took * 1e6 * (double)((x >> 16) % 1000) / 1000.0);
        child_kill(pid);
        /* stats repairs the call in progress, and counts what a half-done
         * clear left as the dict's; the next dict call frees that. */
        ps_manager_stats_t st1 = stats_of(m);
        size_t n = ps_dict_len(d);
        ps_manager_stats_t st2 = stats_of(m);
        cr_assert(n == 0 || n == CLEAR_KEYS, "round %d: a clear killed halfway left %zu entries",
                  round, n);
        if (n == CLEAR_KEYS) {
            before++;
            unsigned char buf[24];
            char key[32];
            size_t len;
            for (int i = 0; i < CLEAR_KEYS; i += 97) {
                snprintf(key, sizeof key, "key%d", i);
                CHECK_RC(ps_dict_get(d, key, buf, sizeof buf, &len), 0);
                cr_assert_eq(check_value(buf, len, (uint32_t)i), 1);
            }
            CHECK_RC(ps_dict_clear(d), 0);
        } else if (st2.free_bytes > st1.free_bytes) {
            in_garbage++;
        } else {
            after++;
        }
        cr_assert_eq(stats_of(m).free_bytes, empty, "round %d: leaked", round);
        CHECK_RC(ps_dict_set(d, "usable", "yes", 4), 0);
        CHECK_RC(ps_dict_del(d, "usable"), 0);
    }
    cr_log_info("clear killed: %d before it, %d while freeing, %d after\n", before, in_garbage,
                after);
    cr_assert_gt(in_garbage, 0, "no kill landed while clear freed the entries (%d before, "
                 "%d after): the test tests little", before, after);
    shm_free(sync, sizeof *sync);
    CHECK_RC_E(ps_manager_close(m), 0);
}

/* A writer inserting keys past the point where the table doubles, killed
 * while the rebuild is in flight: the parent watches the segment's undo log
 * and kills the writer the moment it shows the new table's allocation in
 * progress; the next caller rolls it back. */
#define RESIZE_FROM 20000
#define RESIZE_TO   26000           /* past 3/4 of 32768 slots */

struct resize_sync {
    long done;                      /* keys inserted */
};

static void resize_key(char *key, size_t cap, long i) { snprintf(key, cap, "key%ld", i); }

static int resize_writer(void *arg)
{
    void **a = arg;
    ps_dict_t *d = a[0];
    struct resize_sync *sync = a[1];
    char key[32];
    unsigned char value[24];
    for (long i = sync->done; i < RESIZE_TO; i++) {
        resize_key(key, sizeof key, i);
        fill_value(value, (uint32_t)i, sizeof value, 1);
        if (ps_dict_set(d, key, value, sizeof value))
            return 1;
        __atomic_store_n(&sync->done, i + 1, __ATOMIC_SEQ_CST);
    }
    return 0;
}

/* The segment's header, mapped read-only: the parent watches the writer's
 * undo log through it. */
static const struct seg_header *map_header(const char *name)
{
    int fd = shm_open(name, O_RDONLY, 0);
    cr_assert_geq(fd, 0);
    const struct seg_header *h = mmap(NULL, sizeof *h, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    cr_assert_neq((void *)h, MAP_FAILED);
    return h;
}

/* The writer's log (before anyone repairs it): is a big allocation - a table's -
 * in progress, the heap's free bytes down by at least `bytes`? */
static bool log_shows_allocation(const struct seg_header *h, uint64_t bytes)
{
    uint64_t n = __atomic_load_n(&h->undo.count, __ATOMIC_ACQUIRE);
    for (uint64_t i = 0; i < n && i < UNDO_MAX; i++)
        if (h->undo.e[i].off == offsetof(struct seg_header, free_bytes) &&
            h->undo.e[i].old >= __atomic_load_n(&h->free_bytes, __ATOMIC_RELAXED) + bytes)
            return true;
    return false;
}

Test(dict_crash, writer_killed_mid_resize)
{
    const char *name = seg_name("resize");
    ps_manager_t *m;
    ps_dict_t *d = make_dict(&m, name, 8u << 20);
    struct resize_sync *sync = shm_alloc(sizeof *sync);
    void *args[2] = { d, sync };
    char key[32];
    unsigned char value[24], buf[24];
    for (long i = 0; i < RESIZE_FROM; i++) {
        resize_key(key, sizeof key, i);
        fill_value(value, (uint32_t)i, sizeof value, 1);
        CHECK_RC(ps_dict_set(d, key, value, sizeof value), 0);
    }
    sync->done = RESIZE_FROM;
    const struct seg_header *h = map_header(name);
    int landed = 0, rounds = 0;
    double end = now() + 8.0;
    while (landed < 3 && rounds < 60 && now() < end) {
        rounds++;
        pid_t pid = fork_child(resize_writer, args);
        bool killed = false;
        for (;;) {
            if (log_shows_allocation(h, 256 * 1024)) {
                kill(pid, SIGKILL);     /* it is building the new table */
                killed = true;
                break;
            }
            if (waitpid(pid, NULL, WNOHANG) == pid)
                break;                  /* it finished: no kill this round */
        }
        if (killed) {
            child_kill(pid);
            landed += log_shows_allocation(h, 256 * 1024);  /* still, as it died */
        } else {
            /* It got through: start over below the resize (a clear, as
             * deleting does not shrink the table). */
            CHECK_RC(ps_dict_clear(d), 0);
            for (long i = 0; i < RESIZE_FROM; i++) {
                resize_key(key, sizeof key, i);
                fill_value(value, (uint32_t)i, sizeof value, 1);
                CHECK_RC(ps_dict_set(d, key, value, sizeof value), 0);
            }
            sync->done = RESIZE_FROM;
        }
        /* Everything inserted is there and whole; the insert in flight is
         * there or not. */
        long done = sync->done, n = (long)ps_dict_len(d);
        cr_assert(n == done || n == done + 1, "round %d: %ld entries, %ld inserted", rounds, n,
                  done);
        for (long i = 0; i < n; i++) {
            resize_key(key, sizeof key, i);
            size_t len;
            CHECK_RC(ps_dict_get(d, key, buf, sizeof buf, &len), 0);
            cr_assert_eq(check_value(buf, len, (uint32_t)i), 1, "round %d: %s", rounds, key);
        }
        resize_key(key, sizeof key, n);
        cr_assert(!ps_dict_contains(d, key));
        sync->done = n;
        stats_of(m);
    }
    cr_log_info("resize: %d of %d kills landed in a table rebuild\n", landed, rounds);
    cr_assert_gt(landed, 0, "no kill landed in a table rebuild: the test tests little");
    /* The rest goes in, and a full walk agrees. */
    for (long i = sync->done; i < RESIZE_TO; i++) {
        resize_key(key, sizeof key, i);
        fill_value(value, (uint32_t)i, sizeof value, 1);
        CHECK_RC(ps_dict_set(d, key, value, sizeof value), 0);
    }
    cr_assert_eq(ps_dict_len(d), RESIZE_TO);
    int calls = 0;
    CHECK_RC(ps_dict_foreach(d, count_entries, &calls), 0);
    cr_assert_eq(calls, RESIZE_TO);
    stats_of(m);
    munmap((void *)h, sizeof *h);
    shm_free(sync, sizeof *sync);
    CHECK_RC_E(ps_manager_close(m), 0);
}

/* ---- many keys: deleting every other one ---- */

/* 100000 keys, then every other one deleted: each delete frees an entry
 * block between two live ones. The allocator finds its place in the free
 * list from its neighbours, not by walking the list from its head (which
 * made this quadratic). Then the rest, then the dict: the heap is whole. */
Test(dict, delete_every_other_of_100k)
{
    enum { N = 100000 };
    ps_manager_t *m;
    ps_dict_t *d = make_dict(&m, NULL, 32u << 20);
    ps_manager_stats_t empty = stats_of(m);
    char key[32];
    unsigned char value[24], buf[24];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "key%d", i);
        fill_value(value, (uint32_t)i, sizeof value, 1);
        CHECK_RC(ps_dict_set(d, key, value, sizeof value), 0);
    }
    for (int i = 0; i < N; i += 2) {
        snprintf(key, sizeof key, "key%d", i);
        CHECK_RC(ps_dict_del(d, key), 0);
    }
    cr_assert_eq(ps_dict_len(d), N / 2);
    ps_manager_stats_t st = stats_of(m);
    /* Each freed entry is a block of its own, but where two freed ones touch
     * (next to the holes that old tables left, which later keys filled). */
    cr_assert_gt(st.free_blocks, N / 2 - N / 100, "%zu free blocks", st.free_blocks);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "key%d", i);
        size_t len;
        if (i % 2) {
            CHECK_RC(ps_dict_get(d, key, buf, sizeof buf, &len), 0);
            cr_assert_eq(check_value(buf, len, (uint32_t)i), 1, "%s", key);
        } else {
            cr_assert(!ps_dict_contains(d, key), "%s", key);
        }
    }
    for (int i = 1; i < N; i += 2) {
        snprintf(key, sizeof key, "key%d", i);
        CHECK_RC(ps_dict_del(d, key), 0);
    }
    cr_assert_eq(ps_dict_len(d), 0);
    CHECK_RC_E(ps_manager_remove(m, "d"), 0);
    st = stats_of(m);
    cr_assert_eq(st.free_blocks, 1);
    cr_assert_eq(st.free_bytes, st.heap_bytes, "the heap is whole again");
    cr_assert_lt(empty.free_bytes, st.heap_bytes);
    CHECK_RC_E(ps_manager_close(m), 0);
}
