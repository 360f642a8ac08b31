/* SPDX-License-Identifier: MIT */
/* tests/test_manager.c - ps_manager_* (multiprocessing.Manager): named objects in
 * a shared-memory segment, found by name from forked children and from
 * unrelated processes; validation of hostile segments; ENOMEM and reuse; crash
 * safety of the segment when a process is killed in the middle of a call. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <limits.h>
#include <pysync/multiprocessing.h>
#include <sys/stat.h>

#include "helpers.h"
#include "../shm/layout.h"      /* where the header's fields are, to damage them */

#define LOCK_WORD offsetof(struct seg_header, m.mutex.__data.__lock)
#define VERSION_BYTE offsetof(struct seg_header, version)

/* ---- named segments: unique per test process, unlinked also on failure ---- */

static const char *seg_name(const char *tag) { return test_seg_name("mgr", tag); }

TestSuite(manager, .timeout = 20, .fini = test_unlink_segs);
TestSuite(manager_crash, .timeout = 30, .fini = test_unlink_segs);

/* ---- file helpers ---- */

static size_t seg_file_size(const char *name)
{
    int fd = shm_open(name, O_RDONLY, 0);
    cr_assert_geq(fd, 0, "shm_open %s: %s", name, strerror(errno));
    struct stat st;
    fstat(fd, &st);
    close(fd);
    return (size_t)st.st_size;
}

/* Reads (or writes) the whole file into buf of `size` bytes. */
static void seg_file_io(const char *name, void *buf, size_t size, bool write_it)
{
    int fd = shm_open(name, write_it ? O_RDWR : O_RDONLY, 0);
    cr_assert_geq(fd, 0);
    ssize_t n = write_it ? pwrite(fd, buf, size, 0) : pread(fd, buf, size, 0);
    cr_assert_eq((size_t)n, size);
    close(fd);
}

/* Makes a shm file that holds exactly these bytes. */
static void seg_file_make(const char *name, const void *bytes, size_t size)
{
    int fd = shm_open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (off_t)size), 0);
    if (size)
        cr_assert_eq(pwrite(fd, bytes, size, 0), (ssize_t)size);
    close(fd);
}

/* ps_manager_open must fail with EPROTO and leave the file's bytes and size. */
static void check_rejected(const char *name)
{
    size_t size = seg_file_size(name);
    unsigned char *before = malloc(size + 1), *after = malloc(size + 1);
    seg_file_io(name, before, size, false);
    errno = 0;
    ps_manager_t *m = ps_manager_open(name);
    cr_assert_null(m, "a bad segment was accepted");
    cr_assert_eq(errno, EPROTO, "errno %s, expected EPROTO", ps_errname(errno));
    cr_assert_eq(seg_file_size(name), size, "the file was resized");
    seg_file_io(name, after, size, false);
    cr_assert(memcmp(before, after, size) == 0, "the file was written");
    free(before);
    free(after);
}

static ps_manager_stats_t stats_of(ps_manager_t *m)
{
    ps_manager_stats_t st;
    CHECK_RC_E(ps_manager_stats(m, &st), 0);
    return st;
}

/* ---- the counter: 4 processes x 10000 increments ---- */

typedef struct counter_args {
    ps_manager_t *m;
    int iters;
} counter_args_t;

static int take_lock(void *l) { return ps_lock_acquire(l, true, PS_FOREVER); }
static int give_lock(void *l) { return ps_lock_release(l); }

static int counter_child(void *arg)
{
    counter_args_t *a = arg;
    /* Found by name in the child: the same objects as the parent's. */
    ps_lock_t *lock = ps_manager_lock(a->m, "lock");
    long *counter = ps_manager_value(a->m, "counter", sizeof(long));
    if (!lock || !counter)
        return 1;
    return increment_under_lock(counter, a->iters, take_lock, give_lock, lock);
}

Test(manager, anonymous_counter_four_processes)
{
    ps_manager_t *m = ps_manager_new(NULL, 0);
    cr_assert_not_null(m, "ps_manager_new: %s", ps_errname(errno));
    long *counter = ps_manager_value(m, "counter", sizeof(long));
    cr_assert_not_null(counter);
    cr_assert_not_null(ps_manager_lock(m, "lock"));
    counter_args_t a = { m, 10000 };
    pid_t pids[4];
    fork_children(pids, 4, counter_child, &a);
    CHECK_CHILDREN(pids, 4, 15.0, 0);
    cr_assert_eq(*counter, 40000, "counter %ld, expected 40000", *counter);
    CHECK_RC_E(ps_manager_close(m), 0);
}

/* ---- identity ---- */

static int identity_child(void *arg)
{
    void **want = arg;
    ps_manager_t *m = want[0];
    return ps_manager_event(m, "ev") == want[1] && ps_manager_barrier(m, "bar", 9) == want[2]
           ? 0 : 1;
}

Test(manager, find_or_create_identity_and_types)
{
    ps_manager_t *m = ps_manager_new(NULL, 64 * 1024);
    cr_assert_not_null(m);
    ps_lock_t *l = ps_manager_lock(m, "l");
    cr_assert_not_null(l);
    errno = 12345;
    cr_assert_eq(ps_manager_lock(m, "l"), l);
    cr_assert_eq(errno, 12345, "a successful find changed errno");
    ps_rlock_t *r = ps_manager_rlock(m, "r");
    ps_semaphore_t *s = ps_manager_semaphore(m, "s", 3);
    ps_event_t *e = ps_manager_event(m, "ev");
    ps_condition_t *c = ps_manager_condition(m, "c");
    ps_barrier_t *b = ps_manager_barrier(m, "bar", 2);
    cr_assert(r && s && e && c && b);
    cr_assert_eq(ps_manager_semaphore(m, "s", 7), s);      /* 7 ignored */
    cr_assert_eq(ps_semaphore_value(s), 3);
    cr_assert_eq(ps_barrier_parties(b), 2);
    cr_assert_eq(ps_manager_barrier(m, "bar", 5), b);
    cr_assert_eq(ps_barrier_parties(b), 2);
    /* The objects work and are shared ones. */
    CHECK_RC(ps_lock_acquire(l, true, PS_FOREVER), 0);
    CHECK_RC(ps_lock_release(l), 0);
    CHECK_RC(ps_condition_acquire(c, true, PS_FOREVER), 0);
    CHECK_RC(ps_condition_wait(c, 0.01), ETIMEDOUT);
    CHECK_RC(ps_condition_release(c), 0);
    /* Another type under a taken name: EEXIST. */
    errno = 0;
    cr_assert_null(ps_manager_event(m, "l"));
    cr_assert_eq(errno, EEXIST);
    errno = 0;
    cr_assert_null(ps_manager_value(m, "r", 8));
    cr_assert_eq(errno, EEXIST);
    /* Values: zeroed; asking for more than exists is EINVAL, for less is fine. */
    unsigned char *v = ps_manager_value(m, "v", 100);
    cr_assert_not_null(v);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(v[i], 0);
    cr_assert_eq(ps_manager_value(m, "v", 50), v);
    errno = 0;
    cr_assert_null(ps_manager_value(m, "v", 101));
    cr_assert_eq(errno, EINVAL);
    /* The same objects in a child. */
    void *want[3] = { m, e, b };
    pid_t pid = fork_child(identity_child, want);
    cr_assert_eq(child_wait(pid, 10.0), 0);
    cr_assert_eq(stats_of(m).objects, 7);
    CHECK_RC_E(ps_manager_close(m), 0);
}

Test(manager, invalid_arguments)
{
    ps_manager_t *m = ps_manager_new(NULL, 0);
    cr_assert_not_null(m);
    char long_name[80];
    memset(long_name, 'x', sizeof long_name);
    long_name[64] = '\0';                           /* 64 bytes: too long */
    const char *bad[] = { NULL, "", long_name };
    for (int i = 0; i < 3; i++) {
        errno = 0;
        cr_assert_null(ps_manager_lock(m, bad[i]));
        cr_assert_eq(errno, EINVAL);
        errno = 0;
        cr_assert_null(ps_manager_value(m, bad[i], 8));
        cr_assert_eq(errno, EINVAL);
        CHECK_RC_E(ps_manager_remove(m, bad[i]), EINVAL);
    }
    long_name[63] = '\0';                           /* 63 bytes: fine */
    cr_assert_not_null(ps_manager_lock(m, long_name));
    errno = 0;
    cr_assert_null(ps_manager_lock(NULL, "x"));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(ps_manager_semaphore(m, "s", -1));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(ps_manager_barrier(m, "b", 0));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(ps_manager_value(m, "z", 0));
    cr_assert_eq(errno, EINVAL);
    CHECK_RC_E(ps_manager_remove(m, "missing"), ENOENT);
    CHECK_RC_E(ps_manager_close(NULL), EINVAL);
    CHECK_RC_E(ps_manager_close(m), 0);
    /* Segment names and sizes. */
    const char *bad_seg[] = { "noslash", "/a/b", "/", "" };
    for (int i = 0; i < 4; i++) {
        errno = 0;
        cr_assert_null(ps_manager_new(bad_seg[i], 0));
        cr_assert_eq(errno, EINVAL, "%s: %s", bad_seg[i], ps_errname(errno));
        errno = 0;
        cr_assert_null(ps_manager_open(bad_seg[i]));
        cr_assert_eq(errno, EINVAL);
    }
    errno = 0;
    cr_assert_null(ps_manager_new(NULL, 100));
    cr_assert_eq(errno, EINVAL);
    const char *name = seg_name("inval");
    CHECK_RC_E(ps_manager_unlink(name), ENOENT);
    errno = 0;
    cr_assert_null(ps_manager_open(name));
    cr_assert_eq(errno, ENOENT);
    m = ps_manager_new(name, 0);
    cr_assert_not_null(m);
    errno = 0;
    cr_assert_null(ps_manager_new(name, 0));
    cr_assert_eq(errno, EEXIST);
    struct stat st;
    int fd = shm_open(name, O_RDONLY, 0);
    fstat(fd, &st);
    close(fd);
    cr_assert_eq(st.st_mode & 0777, 0600);
    CHECK_RC_E(ps_manager_close(m), 0);
    CHECK_RC_E(ps_manager_unlink(name), 0);
    CHECK_RC_E(ps_manager_unlink(name), ENOENT);
}

/* ---- unrelated processes ---- */

static void helper_path(char *path, size_t cap)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    cr_assert_gt(n, 0);
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    *slash = '\0';
    snprintf(path, cap, "%s/manager_helper", self);
    cr_assert_eq(access(path, X_OK), 0, "%s is missing: make build/tests/manager_helper", path);
}

Test(manager, named_segment_from_unrelated_processes)
{
    const char *name = seg_name("unrel");
    ps_manager_t *m = ps_manager_new(name, 128 * 1024);
    cr_assert_not_null(m, "%s", ps_errname(errno));
    char *greeting = ps_manager_value(m, "greeting", 6);
    long *counter = ps_manager_value(m, "counter", sizeof(long));
    long *offsets = ps_manager_value(m, "offsets", sizeof(long));
    ps_lock_t *lock = ps_manager_lock(m, "lock");
    ps_event_t *done = ps_manager_event(m, "done");
    cr_assert(greeting && counter && offsets && lock && done);
    strcpy(greeting, "hello");
    char path[PATH_MAX + 32];
    helper_path(path, sizeof path);
    pid_t pids[3];
    for (int i = 0; i < 3; i++) {
        fflush(NULL);
        pids[i] = fork();
        if (pids[i] == 0) {
            execl(path, path, name, "2000", (char *)NULL);
            _exit(127);
        }
    }
    for (int i = 0; i < 2000; i++) {
        CHECK_RC(ps_lock_acquire(lock, true, PS_FOREVER), 0);
        ++*counter;
        CHECK_RC(ps_lock_release(lock), 0);
    }
    CHECK_CHILDREN(pids, 3, 15.0, 0);
    CHECK_RC(ps_event_wait(done, 0), 0);
    cr_assert_eq(*counter, 8000);
    cr_assert_eq(*offsets, (long)((char *)counter - greeting), "the layout differs");
    CHECK_RC_E(ps_manager_close(m), 0);
}

/* A child that unmaps and re-opens by name sees the segment at another address. */
static int reopen_child(void *arg)
{
    const char *name = arg;
    ps_manager_t *m = ps_manager_open(name);
    if (!m)
        return 1;
    long *v = ps_manager_value(m, "v", sizeof(long));
    return v && *v == 1234 ? 0 : 2;
}

static int reopen_elsewhere(void *arg)
{
    ps_manager_t *m = ((void **)arg)[0];
    long *old_v = ((void **)arg)[1];
    ps_manager_close(m);
    void *block = mmap(old_v, 1 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    (void)block;        /* keeps the old address taken */
    ps_manager_t *again = ps_manager_open(((void **)arg)[2]);
    if (!again)
        return 1;
    long *v = ps_manager_value(again, "v", sizeof(long));
    if (!v || v == old_v || *v != 1234)
        return 2;
    *v = 4321;
    return ps_manager_close(again);
}

Test(manager, reopen_at_another_address)
{
    const char *name = seg_name("reopen");
    ps_manager_t *m = ps_manager_new(name, 0);
    cr_assert_not_null(m);
    long *v = ps_manager_value(m, "v", sizeof(long));
    *v = 1234;
    cr_assert_eq(child_wait(fork_child(reopen_child, (void *)name), 10.0), 0);
    void *args[3] = { m, v, (void *)name };
    cr_assert_eq(child_wait(fork_child(reopen_elsewhere, args), 10.0), 0);
    cr_assert_eq(*v, 4321);
    CHECK_RC_E(ps_manager_close(m), 0);
}

/* ---- hostile segments ---- */

Test(manager, open_rejects_bad_segments)
{
    const char *name = seg_name("bad");
    unsigned char junk[64 * 1024];
    srand(7);
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)rand();
    seg_file_make(name, junk, sizeof junk);         /* garbage */
    check_rejected(name);
    seg_file_make(name, junk, 10);                  /* too small */
    check_rejected(name);
    seg_file_make(name, NULL, 0);                   /* empty */
    check_rejected(name);

    shm_unlink(name);
    ps_manager_t *m = ps_manager_new(name, 64 * 1024);
    cr_assert_not_null(m);
    cr_assert_not_null(ps_manager_lock(m, "l"));
    ps_manager_close(m);
    size_t size = seg_file_size(name);
    unsigned char *good = malloc(size), *bytes = malloc(size);
    seg_file_io(name, good, size, false);

    memcpy(bytes, good, size);                      /* another version */
    bytes[VERSION_BYTE] ^= 0x7f;
    seg_file_make(name, bytes, size);
    check_rejected(name);
    memcpy(bytes, good, size);                      /* another magic */
    bytes[0] ^= 1;
    seg_file_make(name, bytes, size);
    check_rejected(name);
    seg_file_make(name, good, size - 4096);         /* truncated */
    check_rejected(name);
    seg_file_make(name, good, size);                /* and the original is fine */
    m = ps_manager_open(name);
    cr_assert_not_null(m, "%s", ps_errname(errno));
    cr_assert_not_null(ps_manager_lock(m, "l"));
    ps_manager_close(m);
    free(good);
    free(bytes);
}

/* Random bytes over a real segment's header, name table and first heap blocks,
 * then open, look up, create, remove: any answer but a crash or a hang. */
Test(manager, fuzz_never_crashes)
{
    const char *name = seg_name("fuzz");
    ps_manager_t *m = ps_manager_new(name, 64 * 1024);
    cr_assert_not_null(m);
    char key[32];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "k%d", i);
        cr_assert_not_null(i % 2 ? (void *)ps_manager_lock(m, key) : ps_manager_value(m, key, 24));
    }
    ps_manager_remove(m, "k4");
    ps_manager_remove(m, "k7");
    ps_manager_close(m);
    size_t size = seg_file_size(name);
    unsigned char *good = malloc(size), *bytes = malloc(size);
    seg_file_io(name, good, size, false);
    /* The mutex's lock word is left alone: a made-up owner that happens to be a
     * live thread cannot be told from a real one (open checks that it exists). */
    const size_t lock_word = LOCK_WORD, span = 24 * 1024;
    unsigned x = 12345;
    int opened = 0;
    double end = now() + 1.0;
    for (int round = 0; round < 3000 && now() < end; round++) {
        memcpy(bytes, good, size);
        int flips = 1 + (int)((x = x * 1103515245u + 12345u) >> 16) % 16;
        for (int f = 0; f < flips; f++) {
            x = x * 1103515245u + 12345u;
            size_t at = (x >> 8) % span;
            if (at / 4 != lock_word / 4)
                bytes[at] = (unsigned char)(x >> 3);
        }
        seg_file_io(name, bytes, size, true);
        ps_manager_t *f = ps_manager_open(name);
        if (!f) {
            cr_assert(errno == EPROTO, "round %d: %s", round, ps_errname(errno));
            continue;
        }
        opened++;
        ps_manager_stats_t st;
        ps_manager_stats(f, &st);
        for (int i = 0; i < 22; i++) {
            snprintf(key, sizeof key, "k%d", i);
            ps_manager_value(f, key, 8);
        }
        ps_manager_remove(f, "k0");
        ps_manager_lock(f, "new");
        ps_manager_close(f);
    }
    cr_assert_gt(opened, 0, "no mutation was ever accepted: the test tests little");
    free(good);
    free(bytes);
}

static int exit_now(void *arg) { (void)arg; return 0; }

/* The lock word of the segment mutex names a thread that does not exist: a
 * lock call would wait for it forever, so open rejects it. */
Test(manager, open_rejects_a_made_up_mutex_owner)
{
    const char *name = seg_name("lockword");
    ps_manager_t *m = ps_manager_new(name, 0);
    cr_assert_not_null(m);
    ps_manager_close(m);
    size_t size = seg_file_size(name);
    unsigned char *bytes = malloc(size);
    seg_file_io(name, bytes, size, false);
    pid_t gone = fork_child(exit_now, NULL);
    child_wait(gone, 5.0);
    unsigned word = (unsigned)gone;
    memcpy(bytes + LOCK_WORD, &word, sizeof word);
    seg_file_io(name, bytes, size, true);
    check_rejected(name);
    free(bytes);
}

/* ---- full, then reused ---- */

Test(manager, enomem_when_full_then_reuse)
{
    ps_manager_t *m = ps_manager_new(NULL, 32 * 1024);
    cr_assert_not_null(m);
    ps_manager_stats_t empty = stats_of(m);
    char key[32];
    int n = 0;
    for (;; n++) {
        snprintf(key, sizeof key, "v%d", n);
        unsigned char *v = ps_manager_value(m, key, 500);
        if (!v) {
            cr_assert_eq(errno, ENOMEM, "%s", ps_errname(errno));
            break;
        }
        memset(v, n + 1, 500);
    }
    cr_assert_gt(n, 5);
    errno = 0;
    cr_assert_null(ps_manager_lock(m, "one more"));
    cr_assert_eq(errno, ENOMEM);
    for (int i = 0; i < n; i++) {                   /* nothing lost */
        snprintf(key, sizeof key, "v%d", i);
        unsigned char *v = ps_manager_value(m, key, 500);
        cr_assert_not_null(v);
        for (int k = 0; k < 500; k++)
            cr_assert_eq(v[k], (unsigned char)(i + 1));
    }
    cr_assert_eq(stats_of(m).objects, (size_t)n);
    for (int round = 0; round < 20; round++) {      /* remove all, fill again */
        char old = "vw"[round % 2], new = "wv"[round % 2];
        for (int i = 0; i < n; i++) {
            snprintf(key, sizeof key, "%c%d", old, i);
            CHECK_RC_E(ps_manager_remove(m, key), 0);
        }
        ps_manager_stats_t st = stats_of(m);
        cr_assert_eq(st.free_bytes, empty.free_bytes);
        cr_assert_eq(st.free_blocks, 1, "not coalesced: %zu blocks", st.free_blocks);
        cr_assert_eq(st.objects, 0);
        for (int i = 0; i < n; i++) {
            snprintf(key, sizeof key, "%c%d", new, i);
            cr_assert_not_null(ps_manager_value(m, key, 500), "round %d, %d: %s", round, i,
                               ps_errname(errno));
        }
    }
    CHECK_RC_E(ps_manager_close(m), 0);
}

Test(manager, name_table_full_then_tombstones_reused)
{
    ps_manager_t *m = ps_manager_new(NULL, 0);
    cr_assert_not_null(m);
    size_t slots = stats_of(m).name_slots;
    char key[32];
    size_t n = 0;
    for (;; n++) {
        snprintf(key, sizeof key, "e%zu", n);
        if (!ps_manager_event(m, key))
            break;
    }
    cr_assert_eq(errno, ENOMEM);
    cr_assert_eq(n, slots / 4 * 3);
    for (int round = 0; round < 50; round++) {
        for (size_t i = round % 2; i < n; i += 2) {
            snprintf(key, sizeof key, "e%zu", i);
            CHECK_RC_E(ps_manager_remove(m, key), 0);
        }
        for (size_t i = round % 2; i < n; i += 2) {
            snprintf(key, sizeof key, "e%zu", i);
            cr_assert_not_null(ps_manager_event(m, key), "round %d: %s", round, ps_errname(errno));
        }
    }
    cr_assert_eq(stats_of(m).objects, n);
    CHECK_RC_E(ps_manager_close(m), 0);
}

Test(manager, remove_busy_objects)
{
    ps_manager_t *m = ps_manager_new(NULL, 0);
    cr_assert_not_null(m);
    ps_lock_t *l = ps_manager_lock(m, "l");
    CHECK_RC(ps_lock_acquire(l, true, PS_FOREVER), 0);
    CHECK_RC_E(ps_manager_remove(m, "l"), EBUSY);
    cr_assert_eq(ps_manager_lock(m, "l"), l);        /* still there and held */
    cr_assert(ps_lock_locked(l));
    CHECK_RC(ps_lock_release(l), 0);
    CHECK_RC_E(ps_manager_remove(m, "l"), 0);
    CHECK_RC_E(ps_manager_remove(m, "l"), ENOENT);
    ps_condition_t *c = ps_manager_condition(m, "c");
    CHECK_RC(ps_condition_acquire(c, true, PS_FOREVER), 0);
    CHECK_RC_E(ps_manager_remove(m, "c"), EBUSY);
    CHECK_RC(ps_condition_release(c), 0);
    CHECK_RC_E(ps_manager_remove(m, "c"), 0);
    cr_assert_eq(stats_of(m).objects, 0);
    CHECK_RC_E(ps_manager_close(m), 0);
}

static int wait_on_event(void *arg)
{
    ps_event_t *e = ps_manager_event(arg, "e");
    return e ? ps_event_wait(e, 10.0) : 1;
}

/* A waiter keeps its object from being removed while it lives, not after. */
Test(manager, remove_waited_on_event)
{
    ps_manager_t *m = ps_manager_new(NULL, 0);
    cr_assert_not_null(m);
    ps_event_t *e = ps_manager_event(m, "e");
    pid_t pid = fork_child(wait_on_event, m);
    double end = now() + 5.0;           /* until the child is inside its wait */
    while (callers_inside(&e->_inside) == 0 && now() < end)
        sleep_s(0.001);
    CHECK_RC_E(ps_manager_remove(m, "e"), EBUSY);
    /* Killed while inside, recorded: discounted. */
    cr_assert(wait_task_state(pid, pid, 'S', 5.0));
    cr_assert_eq(ps_manager_event(m, "e"), e);
    child_kill(pid);
    CHECK_RC_E(ps_manager_remove(m, "e"), 0);
    cr_assert_eq(stats_of(m).objects, 0);
    CHECK_RC_E(ps_manager_close(m), 0);
}

/* ---- crash safety ---- */

static int hold_and_die(void *arg)
{
    ps_lock_t *l = ps_manager_lock(arg, "l");
    if (!l || ps_lock_acquire(l, true, PS_FOREVER) != 0)
        return 1;
    raise(SIGKILL);
    return 2;
}

Test(manager_crash, lock_holder_killed_gives_eownerdead)
{
    ps_manager_t *m = ps_manager_new(NULL, 0);
    cr_assert_not_null(m);
    ps_lock_t *l = ps_manager_lock(m, "l");
    cr_assert_eq(child_wait(fork_child(hold_and_die, m), 10.0), -SIGKILL);
    CHECK_RC(ps_lock_acquire(l, true, 5.0), EOWNERDEAD);
    CHECK_RC(ps_lock_release(l), 0);
    CHECK_RC(ps_lock_acquire(l, false, PS_FOREVER), 0);
    CHECK_RC(ps_lock_release(l), 0);
    CHECK_RC_E(ps_manager_close(m), 0);
}

/* Creates and removes objects of every type and random sizes, forever. */
static int churn(void *arg)
{
    ps_manager_t *m = arg;
    unsigned x = (unsigned)getpid();
    char key[32];
    for (;;) {
        x = x * 1103515245u + 12345u;
        snprintf(key, sizeof key, "c%u", (x >> 16) % 24);
        switch ((x >> 8) % 5) {
        case 0: ps_manager_condition(m, key); break;
        case 1: ps_manager_lock(m, key); break;
        case 2: ps_manager_barrier(m, key, 3); break;
        case 3: ps_manager_value(m, key, 16 + (x >> 4) % 2000); break;
        default: ps_manager_remove(m, key); break;
        }
    }
    return 0;
}

/* Every object the churn left works, also one whose remove was killed after its
 * destroy (the undo log brings its bytes back). */
static void check_objects_usable(ps_manager_t *m, int round)
{
    char key[32];
    for (int i = 0; i < 24; i++) {
        snprintf(key, sizeof key, "c%d", i);
        ps_lock_t *l = ps_manager_lock(m, key);
        ps_condition_t *c = l ? NULL : ps_manager_condition(m, key);
        ps_barrier_t *b = l || c ? NULL : ps_manager_barrier(m, key, 3);
        if (l) {
            CHECK_RC(ps_lock_acquire(l, false, PS_FOREVER), 0);
            CHECK_RC(ps_lock_release(l), 0);
        } else if (c) {
            CHECK_RC(ps_condition_acquire(c, false, PS_FOREVER), 0);
            CHECK_RC(ps_condition_release(c), 0);
        } else if (b) {
            cr_assert_eq(ps_barrier_parties(b), 3, "round %d: %s", round, key);
            cr_assert(!ps_barrier_broken(b));
        }
        if (l || c || b)
            CHECK_RC_E(ps_manager_remove(m, key), 0);
        else
            cr_assert(errno == EEXIST, "round %d: %s: %s", round, key, ps_errname(errno));
    }
}

static void remove_churned(ps_manager_t *m)
{
    char key[32];
    for (int i = 0; i < 24; i++) {
        snprintf(key, sizeof key, "c%d", i);
        int rc = ps_manager_remove(m, key);
        cr_assert(rc == 0 || rc == ENOENT, "%s: %s", key, ps_errname(rc));
    }
}

Test(manager_crash, killed_in_create_remove_loop)
{
    ps_manager_t *m = ps_manager_new(NULL, 64 * 1024);
    cr_assert_not_null(m);
    ps_manager_stats_t empty = stats_of(m);
    unsigned x = 99;
    for (int round = 0; round < 50; round++) {
        pid_t pid = fork_child(churn, m);
        x = x * 1103515245u + 12345u;
        sleep_s(0.001 + (double)((x >> 16) % 3000) / 1e6);
        child_kill(pid);
        /* Consistent, and it works: stats checks the counters against a walk. */
        ps_manager_stats_t st = stats_of(m);
        cr_assert_leq(st.objects, 24);
        check_objects_usable(m, round);
        long *probe = ps_manager_value(m, "probe", sizeof(long));
        cr_assert_not_null(probe, "round %d: %s", round, ps_errname(errno));
        CHECK_RC_E(ps_manager_remove(m, "probe"), 0);
    }
    remove_churned(m);
    ps_manager_stats_t st = stats_of(m);
    cr_assert_gt(st.repairs, 0, "no kill landed inside a manager call");
    cr_assert_eq(st.objects, 0);
    cr_assert_eq(st.free_bytes, empty.free_bytes, "leaked %zu bytes",
                 empty.free_bytes - st.free_bytes);
    cr_assert_eq(st.free_blocks, 1);
    CHECK_RC_E(ps_manager_close(m), 0);
}

/* Two processes churn at once and one of them is killed: the survivor (or the
 * parent) repairs while the other keeps going; the counts stay exact. */
Test(manager_crash, killed_while_another_churns)
{
    ps_manager_t *m = ps_manager_new(NULL, 64 * 1024);
    cr_assert_not_null(m);
    ps_manager_stats_t empty = stats_of(m);
    unsigned x = 4242;
    for (int round = 0; round < 20; round++) {
        pid_t a = fork_child(churn, m), b = fork_child(churn, m);
        x = x * 1103515245u + 12345u;
        sleep_s(0.001 + (double)((x >> 16) % 2000) / 1e6);
        child_kill(a);
        sleep_s(0.001);
        child_kill(b);
        cr_assert_leq(stats_of(m).objects, 24, "round %d", round);
    }
    check_objects_usable(m, 20);
    remove_churned(m);
    ps_manager_stats_t st = stats_of(m);
    cr_assert_eq(st.objects, 0);
    cr_assert_eq(st.free_bytes, empty.free_bytes);
    CHECK_RC_E(ps_manager_close(m), 0);
}

/* ---- pysync-stat(1): a read-only look at a live segment ---- */

#include <sys/syscall.h>

/* build/pysync-stat, next to the directory of this runner (build/tests/run). */
static void stat_tool_path(char *path, size_t cap)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    cr_assert_gt(n, 0);
    self[n] = '\0';
    *strrchr(self, '/') = '\0';
    snprintf(path, cap, "%s/../pysync-stat", self);
    cr_assert_eq(access(path, X_OK), 0, "%s is missing: make build/pysync-stat", path);
}

/* Runs pysync-stat on name; its stdout and stderr go to out. Returns its exit
 * status, or -N if signal N killed it. */
static int run_stat(const char *name, char *out, size_t cap)
{
    char path[PATH_MAX + 32], cmd[2 * PATH_MAX];
    stat_tool_path(path, sizeof path);
    snprintf(cmd, sizeof cmd, "'%s' '%s' 2>&1", path, name);
    fflush(NULL);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

/* Is line one whole line of out? */
static bool has_line(const char *out, const char *line)
{
    size_t len = strlen(line);
    for (const char *p = out; (p = strstr(p, line)); p++)
        if ((p == out || p[-1] == '\n') && p[len] == '\n')
            return true;
    return false;
}

static int stat_hold_until_released(void *arg)
{
    ps_manager_t *m = arg;
    ps_lock_t *l = ps_manager_lock(m, "child_lock");
    if (!l || ps_lock_acquire(l, true, PS_FOREVER))
        return 1;
    int rc = ps_event_wait(ps_manager_event(m, "release"), 15.0);
    return rc || ps_lock_release(l) ? 2 : 0;
}

static int stat_wait_for_lock(void *arg)
{
    ps_lock_t *l = ps_manager_lock(arg, "child_lock");
    int rc = l ? ps_lock_acquire(l, true, 15.0) : 1;
    return rc || ps_lock_release(l) ? 3 : 0;
}

static int stat_die_holding(void *arg)
{
    ps_lock_t *l = ps_manager_lock(arg, "dead_lock");
    return l && ps_lock_acquire(l, true, PS_FOREVER) == 0 ? 0 : 1;    /* exits holding it */
}

Test(manager, pysync_stat_shows_holders_and_states)
{
    const char *name = seg_name("stat");
    ps_manager_t *m = ps_manager_new(name, 128 * 1024);
    cr_assert_not_null(m, "%s", ps_errname(errno));
    ps_lock_t *held = ps_manager_lock(m, "held");
    ps_rlock_t *r = ps_manager_rlock(m, "r");
    ps_lock_t *child_lock = ps_manager_lock(m, "child_lock");
    ps_event_t *e = ps_manager_event(m, "e"), *release = ps_manager_event(m, "release");
    cr_assert(held && r && child_lock && e && release);
    cr_assert(ps_manager_semaphore(m, "s", 3) && ps_manager_condition(m, "cond") &&
              ps_manager_barrier(m, "b", 3) && ps_manager_value(m, "v", 24) &&
              ps_manager_value(m, "a b", 8) && ps_manager_lock(m, "dead_lock"));
    CHECK_RC(ps_event_set(e), 0);
    cr_assert_eq(child_wait(fork_child(stat_die_holding, m), 10.0), 0);

    /* A child holds child_lock, another waits for it: both asleep. */
    pid_t holder = fork_child(stat_hold_until_released, m);
    while (!ps_lock_locked(child_lock))
        sleep_s(0.001);
    pid_t waiter = fork_child(stat_wait_for_lock, m);
    cr_assert(wait_task_state(holder, holder, 'S', 10.0));
    cr_assert(wait_task_state(waiter, waiter, 'S', 10.0));
    while (callers_inside(&child_lock->_inside) != 1)
        sleep_s(0.001);
    CHECK_RC(ps_lock_acquire(held, true, PS_FOREVER), 0);
    CHECK_RC(ps_rlock_acquire(r, true, PS_FOREVER), 0);
    CHECK_RC(ps_rlock_acquire(r, true, PS_FOREVER), 0);

    /* It never writes: the segment's bytes are the same after it ran. */
    size_t size = seg_file_size(name);
    unsigned char *before = malloc(size), *after = malloc(size);
    seg_file_io(name, before, size, false);
    static char out[16384];
    int rc = run_stat(name, out, sizeof out);
    seg_file_io(name, after, size, false);
    cr_assert(memcmp(before, after, size) == 0, "pysync-stat wrote to the segment");
    cr_assert_eq(rc, 0, "exit %d:\n%s", rc, out);

    char me[64], line[160];
    pid_t pid = getpid(), tid = (pid_t)syscall(SYS_gettid);
    if (tid == pid)
        snprintf(me, sizeof me, "pid %d", (int)pid);
    else
        snprintf(me, sizeof me, "pid %d tid %d", (int)pid, (int)tid);
    const char *fixed[] = {
        "lock dead_lock free (its last holder died)", "semaphore s value 3", "event e set",
        "event release clear, waiters 1", "condition cond lock free, waiting 0",
        "barrier b parties 3, waiting 0", "value v 24 bytes", "value a\\x20b 8 bytes",
    };
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        cr_assert(has_line(out, fixed[i]), "no line '%s' in:\n%s", fixed[i], out);
    snprintf(line, sizeof line, "lock held held by %s (alive)", me);
    cr_assert(has_line(out, line), "no line '%s' in:\n%s", line, out);
    snprintf(line, sizeof line, "rlock r held by %s (alive), depth 2", me);
    cr_assert(has_line(out, line), "no line '%s' in:\n%s", line, out);
    snprintf(line, sizeof line, "lock child_lock held by pid %d (alive), waiters 1", (int)holder);
    cr_assert(has_line(out, line), "no line '%s' in:\n%s", line, out);
    snprintf(line, sizeof line, "%s: 11 objects, ", name);
    cr_assert(strstr(out, line), "no '%s' in:\n%s", line, out);
    int lines = 0;
    for (const char *p = out; (p = strchr(p, '\n')); p++)
        lines++;
    cr_assert_eq(lines, 2 + 11, "%s", out);

    CHECK_RC(ps_event_set(release), 0);
    cr_assert_eq(child_wait(holder, 10.0), 0);
    cr_assert_eq(child_wait(waiter, 10.0), 0);
    CHECK_RC(ps_rlock_release(r), 0);
    CHECK_RC(ps_rlock_release(r), 0);
    CHECK_RC(ps_lock_release(held), 0);
    CHECK_RC_E(ps_manager_close(m), 0);

    /* Not a segment: the reason and 1, the file untouched. Missing: 2. */
    before[0] ^= 0xff;
    seg_file_io(name, before, size, true);
    cr_assert_eq(run_stat(name, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "bad magic"), "%s", out);
    seg_file_io(name, after, size, false);
    cr_assert(memcmp(before, after, size) == 0, "pysync-stat wrote to a rejected segment");
    shm_unlink(name);
    cr_assert_eq(run_stat(name, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "no such segment"), "%s", out);
    free(before);
    free(after);
}

/* Random bytes over the header, name table and heap: pysync-stat answers 0 or
 * 1, never crashes, and never writes. */
/* Flips random bytes in the first 40 KiB of segment `name` (never its lock
 * word), 400 times or for 2 s, from a seed: pysync-stat must exit 0 (sound) or
 * 1 (rejected), never crash or hang, never write, and both answers must come. */
static void stat_survives_damage(const char *name, unsigned seed)
{
    size_t size = seg_file_size(name);
    unsigned char *good = malloc(size), *bytes = malloc(size), *after = malloc(size);
    seg_file_io(name, good, size, false);
    const size_t lock_word = LOCK_WORD, span = 40 * 1024;
    static char out[65536];
    unsigned x = seed;
    int answers[2] = { 0, 0 };
    double end = now() + 2.0;
    for (int round = 0; round < 400 && now() < end; round++) {
        memcpy(bytes, good, size);
        int flips = 1 + (int)((x = x * 1103515245u + 12345u) >> 16) % 8;
        for (int f = 0; f < flips; f++) {
            x = x * 1103515245u + 12345u;
            size_t at = (x >> 8) % span;
            if (at / 4 != lock_word / 4)
                bytes[at] = (unsigned char)(x >> 3);
        }
        seg_file_io(name, bytes, size, true);
        int rc = run_stat(name, out, sizeof out);
        cr_assert(rc == 0 || rc == 1, "round %d: exit %d:\n%s", round, rc, out);
        answers[rc]++;
        seg_file_io(name, after, size, false);
        cr_assert(memcmp(bytes, after, size) == 0, "round %d: pysync-stat wrote", round);
    }
    cr_assert(answers[0] > 0 && answers[1] > 0, "sound %d, rejected %d: the test tests little",
              answers[0], answers[1]);
    free(good);
    free(bytes);
    free(after);
}

Test(manager, pysync_stat_survives_damage)
{
    const char *name = seg_name("statfuzz");
    ps_manager_t *m = ps_manager_new(name, 64 * 1024);
    cr_assert_not_null(m);
    char key[32];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "k%d", i);
        cr_assert_not_null(i % 3 == 0   ? (void *)ps_manager_lock(m, key)
                           : i % 3 == 1 ? (void *)ps_manager_condition(m, key)
                                        : ps_manager_value(m, key, 24));
    }
    ps_manager_remove(m, "k4");
    ps_manager_close(m);
    stat_survives_damage(name, 4242);
}

/* ---- pysync-stat(1) on queues and dicts ---- */

static int stat_sleep_in_get(void *arg)
{
    ps_mpqueue_t *q = ps_manager_queue(arg, "empty", 0, 64);
    char buf[8];
    size_t len;
    return q && ps_mpqueue_get(q, buf, sizeof buf, &len, true, 15.0) == 0 && len == 3 ? 0 : 1;
}

static int stat_sleep_in_put(void *arg)
{
    ps_mpqueue_t *q = ps_manager_queue(arg, "full", 1, 64);
    return q && ps_mpqueue_put(q, "two", 3, true, 15.0) == 0 ? 0 : 1;
}

/* Runs pysync-stat until out has every line of want (sleepers may take a
 * moment to be counted), for at most 10 s. Returns its last exit status. */
static int stat_until_lines(const char *name, char *out, size_t cap, const char *const *want,
                            size_t n)
{
    double end = now() + 10.0;
    for (;;) {
        int rc = run_stat(name, out, cap);
        size_t found = 0;
        while (found < n && has_line(out, want[found]))
            found++;
        if (found == n || now() > end)
            return rc;
        sleep_s(0.01);
    }
}

Test(manager, pysync_stat_shows_queues_and_dicts)
{
    const char *name = seg_name("statq");
    ps_manager_t *m = ps_manager_new(name, 128 * 1024);
    cr_assert_not_null(m, "%s", ps_errname(errno));
    ps_mpqueue_t *jobs = ps_manager_queue(m, "jobs", 4, 100);   /* a ring of 96 bytes */
    ps_mpqueue_t *empty = ps_manager_queue(m, "empty", 0, 64);
    ps_mpqueue_t *full = ps_manager_queue(m, "full", 1, 64);
    ps_mpqueue_t *shut = ps_manager_queue(m, "shut", 0, 4096);
    ps_dict_t *d = ps_manager_dict(m, "d"), *none = ps_manager_dict(m, "none");
    cr_assert(jobs && empty && full && shut && d && none, "%s", ps_errname(errno));

    /* jobs: 16 + 16 + 24 bytes put, the first message taken and done. */
    CHECK_RC(ps_mpqueue_put_nowait(jobs, "a", 1), 0);
    CHECK_RC(ps_mpqueue_put_nowait(jobs, "12345678", 8), 0);
    CHECK_RC(ps_mpqueue_put_nowait(jobs, "thirteen byte", 13), 0);
    char buf[16];
    size_t len;
    CHECK_RC(ps_mpqueue_get_nowait(jobs, buf, sizeof buf, &len), 0);
    CHECK_RC(ps_mpqueue_task_done(jobs), 0);
    CHECK_RC(ps_mpqueue_put_nowait(full, "one", 3), 0);
    CHECK_RC(ps_mpqueue_put_nowait(shut, "x", 1), 0);
    CHECK_RC(ps_mpqueue_put_nowait(shut, "y", 1), 0);
    CHECK_RC(ps_mpqueue_shutdown(shut, true), 0);
    CHECK_RC(ps_dict_set(d, "k1", "v1", 2), 0);
    CHECK_RC(ps_dict_set(d, "k2", "value two", 9), 0);

    pid_t getter = fork_child(stat_sleep_in_get, m);
    pid_t putter = fork_child(stat_sleep_in_put, m);
    cr_assert(wait_task_state(getter, getter, 'S', 10.0));
    cr_assert(wait_task_state(putter, putter, 'S', 10.0));

    static char out[16384];
    const char *want[] = {
        "queue jobs depth 2, bytes 40/96, maxsize 4, getters 0, putters 0, unfinished 2",
        "queue empty depth 0, bytes 0/64, maxsize 0, getters 1, putters 0, unfinished 0",
        "queue full depth 1, bytes 16/64, maxsize 1, getters 0, putters 1, unfinished 1",
        "queue shut depth 0, bytes 0/4096, maxsize 0, getters 0, putters 0, unfinished 0, shut down",
        "dict none len 0, bytes 0",
    };
    size_t n = sizeof want / sizeof *want;
    int rc = stat_until_lines(name, out, sizeof out, want, n);
    cr_assert_eq(rc, 0, "exit %d:\n%s", rc, out);
    for (size_t i = 0; i < n; i++)
        cr_assert(has_line(out, want[i]), "no line '%s' in:\n%s", want[i], out);
    const char *dl = strstr(out, "\ndict d len 2, bytes ");
    cr_assert(dl, "no line 'dict d len 2, bytes N' in:\n%s", out);
    unsigned long dict_bytes = strtoul(dl + strlen("\ndict d len 2, bytes "), NULL, 10);
    cr_assert_gt(dict_bytes, 0, "%s", out);
    int lines = 0;
    for (const char *p = out; (p = strchr(p, '\n')); p++)
        lines++;
    cr_assert_eq(lines, 2 + 6, "%s", out);

    /* Release the sleepers: the counts go back to 0. */
    CHECK_RC(ps_mpqueue_put_nowait(empty, "abc", 3), 0);
    CHECK_RC(ps_mpqueue_get_nowait(full, buf, sizeof buf, &len), 0);
    cr_assert_eq(child_wait(getter, 10.0), 0);
    cr_assert_eq(child_wait(putter, 10.0), 0);
    const char *after[] = {
        "queue empty depth 0, bytes 0/64, maxsize 0, getters 0, putters 0, unfinished 1",
        "queue full depth 1, bytes 16/64, maxsize 1, getters 0, putters 0, unfinished 2",
    };
    rc = stat_until_lines(name, out, sizeof out, after, 2);
    cr_assert_eq(rc, 0, "exit %d:\n%s", rc, out);
    for (size_t i = 0; i < 2; i++)
        cr_assert(has_line(out, after[i]), "no line '%s' in:\n%s", after[i], out);
    CHECK_RC_E(ps_manager_close(m), 0);
}

/* Finds the 8 bytes of magic in the segment's file and flips one of them. */
static void damage_magic(const char *name, const char *magic)
{
    size_t size = seg_file_size(name);
    unsigned char *bytes = malloc(size);
    seg_file_io(name, bytes, size, false);
    unsigned char *at = memmem(bytes, size, magic, 8);
    cr_assert_not_null(at, "no magic %s in the segment", magic);
    at[0] ^= 0xff;
    seg_file_io(name, bytes, size, true);
    free(bytes);
}

/* A queue or dict whose header is not one: the reason and exit 1, never a
 * crash, and the other objects are still listed. */
Test(manager, pysync_stat_rejects_damaged_queue_and_dict)
{
    const char *name = seg_name("statbad");
    ps_manager_t *m = ps_manager_new(name, 64 * 1024);
    cr_assert_not_null(m);
    cr_assert(ps_manager_queue(m, "q", 0, 64) && ps_manager_dict(m, "d") &&
              ps_manager_lock(m, "l"));
    CHECK_RC_E(ps_manager_close(m), 0);
    static char out[16384];
    cr_assert_eq(run_stat(name, out, sizeof out), 0, "%s", out);

    damage_magic(name, "PQUEUE1");     /* with its NUL: 8 bytes */
    cr_assert_eq(run_stat(name, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "queue q is not a sound queue"), "%s", out);
    cr_assert(has_line(out, "lock l free"), "%s", out);

    damage_magic(name, "PSYSDICT");
    cr_assert_eq(run_stat(name, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "dict d is not a sound dict"), "%s", out);
    cr_assert(has_line(out, "lock l free"), "%s", out);
}

/* Random bytes over a segment of queues and dicts: pysync-stat answers 0 or 1,
 * never crashes, and never writes. */
Test(manager, pysync_stat_survives_damaged_queues_and_dicts)
{
    const char *name = seg_name("statqfuzz");
    ps_manager_t *m = ps_manager_new(name, 64 * 1024);
    cr_assert_not_null(m);
    char key[32];
    for (int i = 0; i < 6; i++) {
        snprintf(key, sizeof key, "q%d", i);
        ps_mpqueue_t *q = ps_manager_queue(m, key, (size_t)i, 64 + 8 * (size_t)i);
        snprintf(key, sizeof key, "d%d", i);
        ps_dict_t *d = ps_manager_dict(m, key);
        cr_assert(q && d, "%s", ps_errname(errno));
        for (int j = 0; j < i; j++) {
            CHECK_RC(ps_mpqueue_put_nowait(q, key, (size_t)j), 0);
            snprintf(key, sizeof key, "k%d", j);
            CHECK_RC(ps_dict_set(d, key, key, strlen(key)), 0);
        }
    }
    ps_manager_close(m);
    stat_survives_damage(name, 2424);
}

/* ---- the allocator: many blocks, and a damaged free list ---- */

/* 20000 small values, then every other one removed: each removal leaves a
 * free block between two used ones (the last one joins the free rest of the
 * heap). Then the holes are filled again, first fit, and all removed. */
Test(manager, remove_every_other_of_twenty_thousand)
{
    enum { N = 20000, BYTES = 16, BLOCK = 32 };     /* a 16-byte header, then the value */
    ps_manager_t *m = ps_manager_new(NULL, 32u << 20);
    cr_assert_not_null(m, "%s", ps_errname(errno));
    ps_manager_stats_t empty = stats_of(m);
    cr_assert_geq(empty.name_slots / 4 * 3, (size_t)N, "the test needs more name slots");
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "v%d", i);
        uint64_t *v = ps_manager_value(m, key, BYTES);
        cr_assert_not_null(v, "%s: %s", key, ps_errname(errno));
        v[0] = (uint64_t)i * 7 + 1;
    }
    ps_manager_stats_t full = stats_of(m);
    cr_assert_eq(full.free_bytes + (size_t)N * BLOCK, full.heap_bytes);
    for (int i = 1; i < N; i += 2) {
        snprintf(key, sizeof key, "v%d", i);
        CHECK_RC_E(ps_manager_remove(m, key), 0);
    }
    ps_manager_stats_t st = stats_of(m);
    cr_assert_eq(st.objects, (size_t)N / 2);
    cr_assert_eq(st.free_blocks, (size_t)N / 2, "%zu free blocks", st.free_blocks);
    cr_assert_eq(st.free_bytes + (size_t)N / 2 * BLOCK, st.heap_bytes, "the heap does not tile");
    cr_assert_eq(st.largest_free, full.free_bytes + BLOCK);
    for (int i = 0; i < N; i += 2) {                        /* the others are untouched */
        snprintf(key, sizeof key, "v%d", i);
        uint64_t *v = ps_manager_value(m, key, BYTES);
        cr_assert(v && v[0] == (uint64_t)i * 7 + 1, "%s", key);
    }
    for (int i = 1; i < N; i += 2) {                        /* first fit: the holes again */
        snprintf(key, sizeof key, "w%d", i);
        cr_assert_not_null(ps_manager_value(m, key, BYTES), "%s: %s", key, ps_errname(errno));
    }
    st = stats_of(m);
    cr_assert_eq(st.free_blocks, 1);
    cr_assert_eq(st.free_bytes, full.free_bytes);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "%c%d", "vw"[i % 2], i);
        CHECK_RC_E(ps_manager_remove(m, key), 0);
    }
    st = stats_of(m);
    cr_assert_eq(st.objects, 0);
    cr_assert_eq(st.free_blocks, 1);
    cr_assert_eq(st.free_bytes, empty.free_bytes);
    CHECK_RC_E(ps_manager_close(m), 0);
}

/* A free block's prev link (the word after its header) damaged in the file:
 * the calls that follow it, and stats, say EPROTO; none crashes or hangs,
 * and the objects away from the damage still work. */
Test(manager, damaged_prev_link_gives_eproto)
{
    const char *name = seg_name("prevlink");
    ps_manager_t *m = ps_manager_new(name, 64 * 1024);
    cr_assert_not_null(m);
    const char *keys[] = { "a", "b", "c", "d" };
    for (int i = 0; i < 4; i++) {
        uint64_t *v = ps_manager_value(m, keys[i], 16);
        cr_assert_not_null(v);
        v[0] = (uint64_t)i + 100;
    }
    CHECK_RC_E(ps_manager_remove(m, "b"), 0);       /* free: b's block, the rest after d */
    ps_manager_stats_t st = stats_of(m);
    cr_assert_eq(st.free_blocks, 2);
    ps_manager_close(m);
    size_t size = seg_file_size(name);
    unsigned char *good = malloc(size), *bytes = malloc(size);
    seg_file_io(name, good, size, false);
    const struct seg_header *h = (const void *)good;
    uint64_t first = h->free_head, last;
    memcpy(&last, good + first + offsetof(struct block, next), sizeof last);
    uint64_t was;
    memcpy(&was, good + last + BLOCK_PREV, sizeof was);
    cr_assert_eq(was, first, "the rest's prev link is b's block");
    const uint64_t bad[] = { 0, last, first + 16, first - 32, h->heap_off, h->heap_end,
                             size, ~(uint64_t)0, BLOCK_USED_TAG };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        memcpy(bytes, good, size);
        memcpy(bytes + last + BLOCK_PREV, &bad[k], sizeof bad[k]);
        seg_file_io(name, bytes, size, true);
        m = ps_manager_open(name);
        cr_assert_not_null(m, "%s", ps_errname(errno));
        CHECK_RC_E(ps_manager_stats(m, &st), EPROTO);
        CHECK_RC_E(ps_manager_remove(m, "d"), EPROTO);  /* d's block is before the rest */
        errno = 0;
        cr_assert_null(ps_manager_value(m, "new", 16), "case %zu", k);  /* first fit: b's */
        cr_assert_eq(errno, EPROTO, "case %zu: %s", k, ps_errname(errno));
        for (int i = 0; i < 4; i += 1 + (i == 0)) {     /* nothing else lost (b is gone) */
            uint64_t *v = ps_manager_value(m, keys[i], 16);
            cr_assert(v && v[0] == (uint64_t)i + 100, "case %zu: %s", k, keys[i]);
        }
        ps_manager_close(m);
    }
    seg_file_io(name, good, size, true);                /* and undamaged, all is well */
    m = ps_manager_open(name);
    cr_assert_not_null(m);
    CHECK_RC_E(ps_manager_remove(m, "d"), 0);
    cr_assert_not_null(ps_manager_value(m, "new", 16));
    cr_assert_eq(stats_of(m).free_blocks, 1);
    ps_manager_close(m);
    free(good);
    free(bytes);
}
