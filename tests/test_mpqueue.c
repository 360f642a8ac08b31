/* SPDX-License-Identifier: MIT */
/* tests/test_mpqueue.c - the cross-process queue (multiprocessing.Queue and
 * JoinableQueue of bytes): ps_mpqueue_new and ps_manager_queue.
 *
 * Ports of CPython's _TestQueue (Lib/test/_test_multiprocessing.py: test_put,
 * test_get, test_fork, test_qsize, test_task_done, test_timeout) and of
 * Lib/test/test_queue.py (queue_task_done, queue_join and the Python 3.13
 * shutdown tests) with processes where Python uses threads; then the C-only
 * contract: the ring's byte accounting against a model, ERANGE / EMSGSIZE /
 * EAGAIN / ETIMEDOUT, EINVAL and errno, EBUSY for free and remove, 2 x 2
 * processes exchanging checksummed messages, and processes SIGKILLed in the
 * middle of puts, gets and waits.
 *
 * Black-box: a child is known to be blocked in its call once it has announced
 * the call (a flag in shared memory) and the kernel shows it asleep ('S'). */
#include <criterion/criterion.h>
#include <pysync/multiprocessing.h>

#include "helpers.h"

/* ---- named segments (manager tests): unique per test process ---- */

static const char *seg_name(const char *tag) { return test_seg_name("mpq", tag); }

TestSuite(mpqueue, .timeout = 30, .fini = test_unlink_segs);

/* ---- processes ---- */

/* Forks a child that runs fn(arg) and _exits with its result. The child dies with
 * the test process (PR_SET_PDEATHSIG), so a failed assertion leaves no child
 * blocked forever behind it. Only the main thread forks (PITFALLS 3). */
static pid_t spawn(int (*fn)(void *), void *arg)
{
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        _exit(fn(arg) & 0xff);
    }
    return pid;
}

/* In children: the call's result, or ERRNO_CHANGED if it changed errno (int
 * calls leave errno alone). Children report through their exit code. */
#define ERRNO_CHANGED 250

static int c_put(ps_mpqueue_t *q, const void *data, size_t len, bool block, double timeout)
{
    errno = 12345;
    int rc = ps_mpqueue_put(q, data, len, block, timeout);
    return errno == 12345 ? rc : ERRNO_CHANGED;
}

static int c_get(ps_mpqueue_t *q, void *buf, size_t cap, size_t *len, bool block, double timeout)
{
    errno = 12345;
    int rc = ps_mpqueue_get(q, buf, cap, len, block, timeout);
    return errno == 12345 ? rc : ERRNO_CHANGED;
}

static int c_task_done(ps_mpqueue_t *q)
{
    errno = 12345;
    int rc = ps_mpqueue_task_done(q);
    return errno == 12345 ? rc : ERRNO_CHANGED;
}

static int c_join(ps_mpqueue_t *q)
{
    errno = 12345;
    int rc = ps_mpqueue_join(q);
    return errno == 12345 ? rc : ERRNO_CHANGED;
}

/* ---- the parent's side ---- */

static ps_mpqueue_t *new_queue(size_t maxsize, size_t capacity)
{
    ps_mpqueue_t *q = ps_mpqueue_new(maxsize, capacity);
    cr_assert_not_null(q, "ps_mpqueue_new(%zu, %zu): %s", maxsize, capacity, ps_errname(errno));
    return q;
}

static ps_manager_t *new_manager(size_t size)
{
    ps_manager_t *m = ps_manager_new(NULL, size);
    cr_assert_not_null(m, "ps_manager_new: %s", ps_errname(errno));
    return m;
}

static ps_mpqueue_t *manager_queue(ps_manager_t *m, const char *name, size_t maxsize,
                                   size_t capacity)
{
    ps_mpqueue_t *q = ps_manager_queue(m, name, maxsize, capacity);
    cr_assert_not_null(q, "ps_manager_queue(%s, %zu, %zu): %s", name, maxsize, capacity,
                       ps_errname(errno));
    return q;
}

static void put_str(ps_mpqueue_t *q, const char *s)
{
    CHECK_RC_E(ps_mpqueue_put(q, s, strlen(s), true, 10.0), 0);
}

/* Gets the next message (it must come within 10 s) and checks that it is `want`. */
static void get_str(ps_mpqueue_t *q, const char *want)
{
    char buf[256];
    size_t len = 9999;
    CHECK_RC_E(ps_mpqueue_get(q, buf, sizeof buf, &len, true, 10.0), 0);
    cr_assert(len == strlen(want) && memcmp(buf, want, len) == 0,
              "got \"%.*s\" (%zu bytes), expected \"%s\"", (int)(len < sizeof buf ? len : 0), buf,
              len, want);
}

/* ---- children that make one blocking call: slots on a shared board ---- */

enum { SLOTS = 8, SLOT_CAP = 64 };

typedef struct board {
    atomic_int ready[SLOTS];            /* the child is about to make its call */
    pid_t pid[SLOTS];                   /* parent's bookkeeping */
    size_t len[SLOTS];                  /* what a getter got */
    char msg[SLOTS][SLOT_CAP];
} board_t;

static board_t *board_new(void) { return shm_alloc(sizeof(board_t)); }
static void board_free(board_t *b) { shm_free(b, sizeof *b); }

enum op { OP_GET, OP_PUT, OP_GET_TASK_DONE, OP_JOIN };

typedef struct call {
    ps_mpqueue_t *q;
    enum op op;
    int slot;
    const char *data;                   /* what a putter puts */
    double timeout;
    board_t *b;
} call_t;

static int call_main(void *arg)
{
    call_t *c = arg;
    board_t *b = c->b;
    atomic_store(&b->ready[c->slot], 1);
    switch (c->op) {
    case OP_GET:
        return c_get(c->q, b->msg[c->slot], SLOT_CAP, &b->len[c->slot], true, c->timeout);
    case OP_GET_TASK_DONE: {
        int rc = c_get(c->q, b->msg[c->slot], SLOT_CAP, &b->len[c->slot], true, c->timeout);
        return rc ? rc : c_task_done(c->q);
    }
    case OP_PUT:
        return c_put(c->q, c->data, strlen(c->data), true, c->timeout);
    default:
        return c_join(c->q);
    }
}

/* Starts a child in `slot` that makes one call (waiting forever, or `timeout`). */
static void slot_start_t(board_t *b, int slot, ps_mpqueue_t *q, enum op op, const char *data,
                         double timeout)
{
    atomic_store(&b->ready[slot], 0);
    b->len[slot] = 9999;
    call_t c = { q, op, slot, data, timeout, b };
    b->pid[slot] = spawn(call_main, &c);
}

static void slot_start(board_t *b, int slot, ps_mpqueue_t *q, enum op op, const char *data)
{
    slot_start_t(b, slot, q, op, data, PS_FOREVER);
}

/* Waits until the child in `slot` is asleep inside its call. */
static void slot_blocked(board_t *b, int slot)
{
    cr_assert(wait_count(&b->ready[slot], 1, 5.0), "child %d never started", slot);
    cr_assert(wait_task_state(b->pid[slot], b->pid[slot], 'S', 5.0),
              "child %d never blocked (state %c)", slot, task_state(b->pid[slot], b->pid[slot]));
}

/* The child's exit code: its call's result (10 s at most). */
static int slot_end(board_t *b, int slot) { return child_wait(b->pid[slot], 10.0); }

static void slot_kill(board_t *b, int slot) { child_kill(b->pid[slot]); }

/* The child is still inside its call. */
static void slot_still_blocked(board_t *b, int slot)
{
    int status;
    cr_assert_eq(waitpid(b->pid[slot], &status, WNOHANG), 0, "child %d returned too soon", slot);
}

static void slot_is(board_t *b, int slot, const char *want)
{
    size_t len = b->len[slot];
    cr_assert(len == strlen(want) && memcmp(b->msg[slot], want, len) == 0,
              "child %d got \"%.*s\" (%zu bytes), expected \"%s\"", slot,
              (int)(len <= SLOT_CAP ? len : 0), b->msg[slot], len, want);
}

/* ---- self-checking messages ----
 *
 * A message of len >= HDR bytes: magic | tag, seq, len, checksum, then bytes that
 * depend on tag, seq and position. A torn, shifted, truncated or mixed message
 * fails msg_check. */
enum { HDR = 16 };
#define MSG_MAGIC 0x6d710000u

static uint32_t fnv32(const unsigned char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static unsigned char msg_byte(unsigned tag, uint32_t seq, size_t i)
{
    return (unsigned char)(seq * 7u + (uint32_t)i * 13u + tag * 101u);
}

static void msg_build(unsigned char *buf, unsigned tag, uint32_t seq, size_t len)
{
    for (size_t i = HDR; i < len; i++)
        buf[i] = msg_byte(tag, seq, i);
    uint32_t h[4] = { MSG_MAGIC | tag, seq, (uint32_t)len,
                      fnv32(buf + HDR, len - HDR) ^ seq ^ (uint32_t)len };
    memcpy(buf, h, HDR);
}

static bool msg_check(const unsigned char *buf, size_t len, unsigned *tag, uint32_t *seq)
{
    uint32_t h[4];
    if (len < HDR)
        return false;
    memcpy(h, buf, HDR);
    if ((h[0] & 0xffff0000u) != MSG_MAGIC || h[2] != len)
        return false;
    for (size_t i = HDR; i < len; i++)
        if (buf[i] != msg_byte(h[0] & 0xffffu, h[1], i))
            return false;
    if (h[3] != (fnv32(buf + HDR, len - HDR) ^ h[1] ^ (uint32_t)len))
        return false;
    *tag = h[0] & 0xffffu;
    *seq = h[1];
    return true;
}

/* ===================================================================== */
/* ---- ports of _TestQueue (Lib/test/_test_multiprocessing.py) ---- */

typedef struct pg_args {
    ps_mpqueue_t *q;
    ps_event_t *child_can_start, *parent_can_continue;
} pg_args_t;

static int test_put_child(void *arg)
{
    pg_args_t *a = arg;
    if (ps_event_wait(a->child_can_start, 10.0) != 0)
        return 1;
    for (int i = 0; i < 6; i++) {
        char buf[8];
        size_t len;
        int rc = c_get(a->q, buf, sizeof buf, &len, true, 10.0);
        if (rc)
            return rc;
        if (len != 1 || buf[0] != '1' + i)
            return 2;
    }
    return ps_event_set(a->parent_can_continue) ? 3 : 0;
}

Test(mpqueue, put)
{
    enum { MAXSIZE = 6 };
    ps_mpqueue_t *q = new_queue(MAXSIZE, 1024);
    pg_args_t a = { q, ps_event_new(PS_SHARED), ps_event_new(PS_SHARED) };
    cr_assert(a.child_can_start && a.parent_can_continue);
    pid_t pid = spawn(test_put_child, &a);

    cr_assert(ps_mpqueue_empty(q));
    cr_assert_not(ps_mpqueue_full(q));
    CHECK_RC_E(ps_mpqueue_put(q, "1", 1, true, PS_FOREVER), 0);
    CHECK_RC_E(ps_mpqueue_put(q, "2", 1, true, PS_FOREVER), 0);
    CHECK_RC_E(ps_mpqueue_put(q, "3", 1, true, 5.0), 0);
    CHECK_RC_E(ps_mpqueue_put(q, "4", 1, false, PS_FOREVER), 0);
    CHECK_RC_E(ps_mpqueue_put(q, "5", 1, false, 0.0), 0);
    CHECK_RC_E(ps_mpqueue_put_nowait(q, "6", 1), 0);
    cr_assert_not(ps_mpqueue_empty(q));
    cr_assert(ps_mpqueue_full(q));
    cr_assert_eq(ps_mpqueue_qsize(q), MAXSIZE);

    CHECK_RC_E(ps_mpqueue_put(q, "7", 1, false, PS_FOREVER), EAGAIN);
    CHECK_RC_E(ps_mpqueue_put(q, "7", 1, false, 10.0), EAGAIN);   /* timeout ignored */
    CHECK_RC_E(ps_mpqueue_put_nowait(q, "7", 1), EAGAIN);
    double t0 = now();
    CHECK_RC_E(ps_mpqueue_put(q, "7", 1, true, 0.1), ETIMEDOUT);
    cr_assert_geq(now() - t0, LOWER_BOUND(0.1));
    CHECK_RC_E(ps_mpqueue_put(q, "7", 1, false, 0.2), EAGAIN);
    t0 = now();
    CHECK_RC_E(ps_mpqueue_put(q, "7", 1, true, 0.05), ETIMEDOUT);
    cr_assert_geq(now() - t0, LOWER_BOUND(0.05));
    cr_assert_eq(ps_mpqueue_qsize(q), MAXSIZE);

    CHECK_RC(ps_event_set(a.child_can_start), 0);
    CHECK_RC(ps_event_wait(a.parent_can_continue, 10.0), 0);
    cr_assert(ps_mpqueue_empty(q));
    cr_assert_not(ps_mpqueue_full(q));
    cr_assert_eq(child_wait(pid, 10.0), 0);
    ps_mpqueue_free(q);
    ps_event_free(a.child_can_start);
    ps_event_free(a.parent_can_continue);
}

static int test_get_child(void *arg)
{
    pg_args_t *a = arg;
    if (ps_event_wait(a->child_can_start, 10.0) != 0)
        return 1;
    for (char c = '1'; c <= '5'; c++) {
        int rc = c_put(a->q, &c, 1, true, PS_FOREVER);
        if (rc)
            return rc;
    }
    return ps_event_set(a->parent_can_continue) ? 3 : 0;
}

Test(mpqueue, get)
{
    ps_mpqueue_t *q = new_queue(0, 1024);
    pg_args_t a = { q, ps_event_new(PS_SHARED), ps_event_new(PS_SHARED) };
    cr_assert(a.child_can_start && a.parent_can_continue);
    pid_t pid = spawn(test_get_child, &a);
    cr_assert(ps_mpqueue_empty(q));
    CHECK_RC(ps_event_set(a.child_can_start), 0);
    CHECK_RC(ps_event_wait(a.parent_can_continue, 10.0), 0);
    cr_assert_not(ps_mpqueue_empty(q));

    char buf[8] = { 0 };
    size_t len = 0;
    CHECK_RC_E(ps_mpqueue_get(q, buf, sizeof buf, &len, true, PS_FOREVER), 0);
    cr_assert(len == 1 && buf[0] == '1');
    CHECK_RC_E(ps_mpqueue_get(q, buf, sizeof buf, &len, true, PS_FOREVER), 0);
    cr_assert(len == 1 && buf[0] == '2');
    CHECK_RC_E(ps_mpqueue_get(q, buf, sizeof buf, &len, true, 1.0), 0);
    cr_assert(len == 1 && buf[0] == '3');
    CHECK_RC_E(ps_mpqueue_get(q, buf, sizeof buf, &len, false, PS_FOREVER), 0);
    cr_assert(len == 1 && buf[0] == '4');
    CHECK_RC_E(ps_mpqueue_get_nowait(q, buf, sizeof buf, &len), 0);
    cr_assert(len == 1 && buf[0] == '5');
    cr_assert(ps_mpqueue_empty(q));

    CHECK_RC_E(ps_mpqueue_get(q, buf, sizeof buf, &len, false, PS_FOREVER), EAGAIN);
    CHECK_RC_E(ps_mpqueue_get(q, buf, sizeof buf, &len, false, 10.0), EAGAIN);
    CHECK_RC_E(ps_mpqueue_get_nowait(q, buf, sizeof buf, &len), EAGAIN);
    double t0 = now();
    CHECK_RC_E(ps_mpqueue_get(q, buf, sizeof buf, &len, true, 0.1), ETIMEDOUT);
    cr_assert_geq(now() - t0, LOWER_BOUND(0.1));
    CHECK_RC_E(ps_mpqueue_get(q, buf, sizeof buf, &len, false, 0.2), EAGAIN);
    t0 = now();
    CHECK_RC_E(ps_mpqueue_get(q, buf, sizeof buf, &len, true, 0.05), ETIMEDOUT);
    cr_assert_geq(now() - t0, LOWER_BOUND(0.05));
    cr_assert_eq(child_wait(pid, 10.0), 0);
    ps_mpqueue_free(q);
    ps_event_free(a.child_can_start);
    ps_event_free(a.parent_can_continue);
}

static int test_fork_child(void *arg)
{
    for (int i = 10; i < 20; i++) {
        int rc = c_put(arg, &i, sizeof i, true, PS_FOREVER);
        if (rc)
            return rc;
    }
    return 0;
}

/* The queue is filled in the parent, then a forked child adds to it. */
Test(mpqueue, fork)
{
    ps_mpqueue_t *q = new_queue(0, 4096);
    for (int i = 0; i < 10; i++)
        CHECK_RC_E(ps_mpqueue_put(q, &i, sizeof i, true, PS_FOREVER), 0);
    pid_t pid = spawn(test_fork_child, q);
    for (int i = 0; i < 20; i++) {
        int v = -1;
        size_t len = 0;
        CHECK_RC_E(ps_mpqueue_get(q, &v, sizeof v, &len, true, 10.0), 0);
        cr_assert_eq(len, sizeof v);
        cr_assert_eq(v, i);
    }
    int v;
    size_t len;
    CHECK_RC_E(ps_mpqueue_get(q, &v, sizeof v, &len, false, PS_FOREVER), EAGAIN);
    cr_assert_eq(child_wait(pid, 10.0), 0);
    ps_mpqueue_free(q);
}

static int qsize_child(void *arg)
{
    ps_mpqueue_t *q = arg;
    if (ps_mpqueue_qsize(q) != 2)
        return 1;
    int rc = c_put(q, "7", 1, true, PS_FOREVER);
    return rc ? rc : ps_mpqueue_qsize(q) == 3 ? 0 : 2;
}

Test(mpqueue, qsize)
{
    ps_mpqueue_t *q = new_queue(0, 1024);
    cr_assert_eq(ps_mpqueue_qsize(q), 0);
    put_str(q, "5");
    cr_assert_eq(ps_mpqueue_qsize(q), 1);
    put_str(q, "6");
    cr_assert_eq(ps_mpqueue_qsize(q), 2);
    cr_assert_eq(child_wait(spawn(qsize_child, q), 10.0), 0);     /* the same count there */
    cr_assert_eq(ps_mpqueue_qsize(q), 3);
    get_str(q, "5");
    cr_assert_eq(ps_mpqueue_qsize(q), 2);
    get_str(q, "6");
    get_str(q, "7");
    cr_assert_eq(ps_mpqueue_qsize(q), 0);
    ps_mpqueue_free(q);
}

/* Workers take items until a zero-length message (Python's None). */
typedef struct workers {
    ps_mpqueue_t *q;
    atomic_long cum, done;
} workers_t;

static int worker_child(void *arg)
{
    workers_t *w = arg;
    for (;;) {
        long x = 0;
        size_t len = 99;
        int rc = c_get(w->q, &x, sizeof x, &len, true, PS_FOREVER);
        if (rc)
            return rc;
        if (len == 0)
            return 0;
        if (len != sizeof x)
            return 1;
        sleep_s(0.002);
        atomic_fetch_add(&w->cum, x);
        atomic_fetch_add(&w->done, 1);
        if ((rc = c_task_done(w->q)))
            return rc;
    }
}

Test(mpqueue, task_done)
{
    workers_t *w = shm_alloc(sizeof *w);
    w->q = new_queue(0, 4096);
    pid_t pids[4];
    for (int i = 0; i < 4; i++)
        pids[i] = spawn(worker_child, w);
    for (long i = 0; i < 10; i++)
        CHECK_RC_E(ps_mpqueue_put(w->q, &i, sizeof i, true, PS_FOREVER), 0);
    CHECK_RC_E(ps_mpqueue_join(w->q), 0);
    cr_assert_eq(atomic_load(&w->done), 10, "join returned with %ld of 10 tasks done",
                 atomic_load(&w->done));
    for (int i = 0; i < 4; i++)
        CHECK_RC_E(ps_mpqueue_put(w->q, NULL, 0, true, PS_FOREVER), 0);
    CHECK_CHILDREN(pids, 4, 10.0, 0);
    ps_mpqueue_free(w->q);
    shm_free(w, sizeof *w);
}

Test(mpqueue, timeout)
{
    ps_mpqueue_t *q = new_queue(0, 256);
    char buf[8];
    size_t len;
    double t0 = now();
    CHECK_RC_E(ps_mpqueue_get(q, buf, sizeof buf, &len, true, 0.2), ETIMEDOUT);
    cr_assert_geq(now() - t0, LOWER_BOUND(0.2));
    ps_mpqueue_free(q);
}

/* ---- test_queue.py: task_done and join (JoinableQueue) across processes ---- */

Test(mpqueue, queue_task_done)
{
    ps_mpqueue_t *q = new_queue(0, 256);
    CHECK_RC_E(ps_mpqueue_task_done(q), EOVERFLOW);     /* "task count going negative" */
    for (int i = 0; i < 3; i++)
        put_str(q, "t");
    for (int i = 0; i < 3; i++)
        CHECK_RC_E(ps_mpqueue_task_done(q), 0);         /* done before got: allowed */
    CHECK_RC_E(ps_mpqueue_task_done(q), EOVERFLOW);
    CHECK_RC_E(ps_mpqueue_join(q), 0);
    cr_assert_eq(ps_mpqueue_qsize(q), 3);
    for (int i = 0; i < 3; i++)
        get_str(q, "t");
    CHECK_RC_E(ps_mpqueue_task_done(q), EOVERFLOW);
    CHECK_RC_E(ps_mpqueue_join(q), 0);
    ps_mpqueue_free(q);
}

static int join_worker(void *arg)
{
    workers_t *w = arg;
    for (;;) {
        long x = 0;
        size_t len = 0;
        int rc = c_get(w->q, &x, sizeof x, &len, true, PS_FOREVER);
        if (rc)
            return rc;
        if (len != sizeof x)
            return 1;
        if (x < 0)
            return c_task_done(w->q);
        atomic_fetch_add(&w->cum, x);
        if ((rc = c_task_done(w->q)))
            return rc;
    }
}

static void queue_join_test(workers_t *w)
{
    atomic_store(&w->cum, 0);
    pid_t pids[2];
    for (int i = 0; i < 2; i++)
        pids[i] = spawn(join_worker, w);
    for (long i = 0; i < 100; i++)
        CHECK_RC_E(ps_mpqueue_put(w->q, &i, sizeof i, true, PS_FOREVER), 0);
    CHECK_RC_E(ps_mpqueue_join(w->q), 0);
    cr_assert_eq(atomic_load(&w->cum), 4950, "join did not block until all tasks were done");
    for (long i = 0; i < 2; i++) {
        long stop = -1;
        CHECK_RC_E(ps_mpqueue_put(w->q, &stop, sizeof stop, true, PS_FOREVER), 0);
    }
    CHECK_RC_E(ps_mpqueue_join(w->q), 0);               /* join twice */
    CHECK_CHILDREN(pids, 2, 10.0, 0);
}

Test(mpqueue, queue_join)
{
    workers_t *w = shm_alloc(sizeof *w);
    w->q = new_queue(0, 256);           /* small: the workers' gets free the room */
    queue_join_test(w);
    queue_join_test(w);                 /* the same queue again */
    ps_mpqueue_free(w->q);
    shm_free(w, sizeof *w);
}

/* join in one process returns only once the last task_done, made in another
 * process, has come. */
Test(mpqueue, join_waits_for_task_done_in_other_processes)
{
    board_t *b = board_new();
    ps_mpqueue_t *q = new_queue(0, 256);
    put_str(q, "a");
    put_str(q, "b");
    slot_start(b, 0, q, OP_JOIN, NULL);
    slot_blocked(b, 0);
    slot_start(b, 1, q, OP_GET_TASK_DONE, NULL);
    cr_assert_eq(slot_end(b, 1), 0);
    slot_is(b, 1, "a");
    sleep_s(0.02);                      /* room to return early, if it would */
    slot_still_blocked(b, 0);
    get_str(q, "b");
    slot_still_blocked(b, 0);
    CHECK_RC_E(ps_mpqueue_task_done(q), 0);
    cr_assert_eq(slot_end(b, 0), 0);
    CHECK_RC_E(ps_mpqueue_task_done(q), EOVERFLOW);
    ps_mpqueue_free(q);
    board_free(b);
}

/* ===================================================================== */
/* ---- the ring: bytes and counts ---- */

/* With capacity 64: a message takes 8 bytes plus its length rounded up to 8. */
Test(mpqueue, ring_capacity_counts_header_and_padding)
{
    ps_mpqueue_t *q = new_queue(0, 64);
    unsigned char m[128], buf[128];
    for (int i = 0; i < 128; i++)
        m[i] = (unsigned char)(i * 3 + 1);
    size_t len;

    /* 57 bytes take 8 + 64 > 64: they can never fit, whatever the state. */
    CHECK_RC_E(ps_mpqueue_put_nowait(q, m, 57), EMSGSIZE);
    CHECK_RC_E(ps_mpqueue_put(q, m, 57, true, PS_FOREVER), EMSGSIZE);   /* no waiting */
    CHECK_RC_E(ps_mpqueue_put(q, m, 100, true, 1.0), EMSGSIZE);
    cr_assert(ps_mpqueue_empty(q));

    /* 56 bytes fill it alone. */
    CHECK_RC_E(ps_mpqueue_put_nowait(q, m, 56), 0);
    cr_assert_eq(ps_mpqueue_qsize(q), 1);
    cr_assert(ps_mpqueue_full(q));
    CHECK_RC_E(ps_mpqueue_put_nowait(q, m, 0), EAGAIN);  /* even 0 bytes take 8 */
    CHECK_RC_E(ps_mpqueue_put(q, m, 0, true, 0.05), ETIMEDOUT);
    CHECK_RC_E(ps_mpqueue_put(q, m, 57, true, PS_FOREVER), EMSGSIZE);
    CHECK_RC_E(ps_mpqueue_get_nowait(q, buf, sizeof buf, &len), 0);
    cr_assert(len == 56 && memcmp(buf, m, 56) == 0);
    cr_assert(ps_mpqueue_empty(q));
    cr_assert_not(ps_mpqueue_full(q));

    /* Two 24-byte messages fill it (2 * (8 + 24)); a get makes room again. */
    CHECK_RC_E(ps_mpqueue_put_nowait(q, m, 24), 0);
    cr_assert_not(ps_mpqueue_full(q));
    CHECK_RC_E(ps_mpqueue_put_nowait(q, m + 1, 24), 0);
    cr_assert(ps_mpqueue_full(q));
    CHECK_RC_E(ps_mpqueue_put_nowait(q, m + 2, 24), EAGAIN);
    CHECK_RC_E(ps_mpqueue_put_nowait(q, m + 2, 0), EAGAIN);
    cr_assert_eq(ps_mpqueue_qsize(q), 2);
    CHECK_RC_E(ps_mpqueue_get_nowait(q, buf, sizeof buf, &len), 0);
    cr_assert(len == 24 && memcmp(buf, m, 24) == 0);
    CHECK_RC_E(ps_mpqueue_put_nowait(q, m + 2, 24), 0);
    cr_assert(ps_mpqueue_full(q));
    for (int i = 1; i <= 2; i++) {
        CHECK_RC_E(ps_mpqueue_get_nowait(q, buf, sizeof buf, &len), 0);
        cr_assert(len == 24 && memcmp(buf, m + i, 24) == 0, "message %d", i);
    }

    /* Lengths are rounded up to 8: two of 17 bytes (8 + 24 each) fill it, and
     * four of 1 byte (8 + 8 each). */
    CHECK_RC_E(ps_mpqueue_put_nowait(q, m, 17), 0);
    CHECK_RC_E(ps_mpqueue_put_nowait(q, m, 17), 0);
    CHECK_RC_E(ps_mpqueue_put_nowait(q, m, 0), EAGAIN);
    for (int i = 0; i < 2; i++)
        CHECK_RC_E(ps_mpqueue_get_nowait(q, buf, sizeof buf, &len), 0);
    for (int i = 0; i < 4; i++)
        CHECK_RC_E(ps_mpqueue_put_nowait(q, m + i, 1), 0);
    CHECK_RC_E(ps_mpqueue_put_nowait(q, m, 0), EAGAIN);
    for (int i = 0; i < 4; i++) {
        CHECK_RC_E(ps_mpqueue_get_nowait(q, buf, sizeof buf, &len), 0);
        cr_assert(len == 1 && buf[0] == m[i]);
    }

    /* An empty queue takes a 56-byte message wherever the ring stands. */
    for (size_t k = 1; k <= 8; k++) {
        CHECK_RC_E(ps_mpqueue_put_nowait(q, m, 8 * (k - 1)), 0);      /* moves by 8k */
        CHECK_RC_E(ps_mpqueue_get_nowait(q, buf, sizeof buf, &len), 0);
        CHECK_RC_E(ps_mpqueue_put_nowait(q, m + k, 56), 0);
        CHECK_RC_E(ps_mpqueue_get_nowait(q, buf, sizeof buf, &len), 0);
        cr_assert(len == 56 && memcmp(buf, m + k, 56) == 0, "offset %zu", 8 * k);
    }
    ps_mpqueue_free(q);
}

/* Random puts and gets against a model of the ring: a message takes
 * 8 + round_up(len, 8) bytes, wherever the ring's position and however it wraps.
 * Checks every return code, every message and qsize/empty/full. */
static void model_run(size_t maxsize, size_t cap, unsigned seed, int steps)
{
    enum { MAXQ = 512, MAXLEN = 300 };
    ps_mpqueue_t *q = new_queue(maxsize, cap);
    uint32_t ids[MAXQ];
    size_t lens[MAXQ];
    size_t head = 0, n = 0, used = 0;
    uint32_t next_id = 0;
    unsigned char m[MAXLEN + 16], buf[MAXLEN + 16];
    unsigned x = seed;
    int puts = 0, gets = 0, eagain = 0, emsgsize = 0, erange = 0;
    for (int step = 0; step < steps; step++) {
        x = x * 1103515245u + 12345u;
        unsigned r = x >> 8;
        if (r % 16 < 8) {
            size_t len = (r >> 4) % (cap + 16 < MAXLEN ? cap + 16 : MAXLEN);
            if ((r >> 12) & 1)
                len %= 40;                  /* many small ones */
            size_t need = 8 + ((len + 7) & ~(size_t)7);
            int want = need > cap ? EMSGSIZE
                     : (maxsize && n == maxsize) || used + need > cap ? EAGAIN : 0;
            for (size_t i = 0; i < len; i++)
                m[i] = (unsigned char)(next_id * 31u + i);
            int rc = ps_mpqueue_put_nowait(q, m, len);
            cr_assert_eq(rc, want, "step %d: put of %zu bytes with %zu messages in %zu of %zu "
                         "bytes: %s, expected %s", step, len, n, used, cap, ps_errname(rc),
                         ps_errname(want));
            if (rc == 0) {
                cr_assert_lt(n, MAXQ);
                ids[(head + n) % MAXQ] = next_id++;
                lens[(head + n) % MAXQ] = len;
                n++;
                used += need;
                puts++;
            }
            eagain += rc == EAGAIN;
            emsgsize += rc == EMSGSIZE;
        } else {
            size_t bufcap = sizeof buf;
            if (n && lens[head] && (r >> 4) % 8 == 0)
                bufcap = lens[head] - 1;    /* one byte short */
            int want = n == 0 ? EAGAIN : bufcap < lens[head] ? ERANGE : 0;
            size_t len = 9999;
            int rc = ps_mpqueue_get_nowait(q, buf, bufcap, &len);
            cr_assert_eq(rc, want, "step %d: get with %zu messages: %s, expected %s", step, n,
                         ps_errname(rc), ps_errname(want));
            if (rc == ERANGE) {
                cr_assert_eq(len, lens[head], "step %d: ERANGE said %zu, the message has %zu",
                             step, len, lens[head]);
                erange++;
            } else if (rc == 0) {
                cr_assert_eq(len, lens[head], "step %d: got %zu bytes, expected %zu", step, len,
                             lens[head]);
                for (size_t i = 0; i < len; i++)
                    cr_assert_eq(buf[i], (unsigned char)(ids[head] * 31u + i),
                                 "step %d: message %u byte %zu", step, ids[head], i);
                used -= 8 + ((len + 7) & ~(size_t)7);
                head = (head + 1) % MAXQ;
                n--;
                gets++;
            }
        }
        cr_assert_eq(ps_mpqueue_qsize(q), n, "step %d", step);
        cr_assert_eq(ps_mpqueue_empty(q), n == 0, "step %d", step);
        if (n == 0)
            cr_assert_not(ps_mpqueue_full(q), "step %d: empty and full", step);
        if ((maxsize && n == maxsize) || used + 8 > cap)
            cr_assert(ps_mpqueue_full(q), "step %d: %zu messages, %zu of %zu bytes, not full",
                      step, n, used, cap);
    }
    /* the run met every case */
    cr_assert(puts > 100 && gets > 100 && eagain > 10 && erange > 10,
              "puts %d gets %d eagain %d erange %d", puts, gets, eagain, erange);
    if (cap < MAXLEN)
        cr_assert_gt(emsgsize, 10);
    ps_mpqueue_free(q);
}

Test(mpqueue, ring_accounting_matches_model)
{
    model_run(0, 256, 1, 20000);
    model_run(0, 64, 2, 20000);
    model_run(5, 260, 3, 20000);        /* not a multiple of 8; count-bounded too */
    model_run(0, 1000, 4, 20000);
}

Test(mpqueue, full_by_count)
{
    ps_mpqueue_t *q = new_queue(3, 4096);
    cr_assert_not(ps_mpqueue_full(q));
    put_str(q, "a");
    put_str(q, "");
    cr_assert_not(ps_mpqueue_full(q));
    put_str(q, "c");
    cr_assert(ps_mpqueue_full(q));
    cr_assert_eq(ps_mpqueue_qsize(q), 3);
    CHECK_RC_E(ps_mpqueue_put_nowait(q, "d", 1), EAGAIN);
    CHECK_RC_E(ps_mpqueue_put_nowait(q, NULL, 0), EAGAIN);
    double t0 = now();
    CHECK_RC_E(ps_mpqueue_put(q, "d", 1, true, 0.05), ETIMEDOUT);
    cr_assert_geq(now() - t0, LOWER_BOUND(0.05));
    get_str(q, "a");
    cr_assert_not(ps_mpqueue_full(q));
    put_str(q, "d");
    cr_assert(ps_mpqueue_full(q));
    get_str(q, "");
    get_str(q, "c");
    get_str(q, "d");
    ps_mpqueue_free(q);

    /* maxsize 1 */
    q = new_queue(1, 64);
    put_str(q, "x");
    cr_assert(ps_mpqueue_full(q));
    CHECK_RC_E(ps_mpqueue_put_nowait(q, "y", 1), EAGAIN);
    get_str(q, "x");
    put_str(q, "y");
    get_str(q, "y");
    ps_mpqueue_free(q);
}

Test(mpqueue, zero_length_messages)
{
    ps_mpqueue_t *q = new_queue(0, 64);
    for (int i = 0; i < 8; i++)
        CHECK_RC_E(ps_mpqueue_put_nowait(q, NULL, 0), 0);            /* 8 x 8 bytes */
    CHECK_RC_E(ps_mpqueue_put_nowait(q, "", 0), EAGAIN);
    cr_assert_eq(ps_mpqueue_qsize(q), 8);
    cr_assert(ps_mpqueue_full(q));
    size_t len = 9999;
    CHECK_RC_E(ps_mpqueue_get_nowait(q, NULL, 0, &len), 0);
    cr_assert_eq(len, 0);
    char buf[8];
    len = 9999;
    CHECK_RC_E(ps_mpqueue_get(q, buf, sizeof buf, &len, true, PS_FOREVER), 0);
    cr_assert_eq(len, 0);
    for (int i = 0; i < 6; i++)
        CHECK_RC_E(ps_mpqueue_get_nowait(q, NULL, 0, &len), 0);
    CHECK_RC_E(ps_mpqueue_get_nowait(q, NULL, 0, &len), EAGAIN);
    /* in order among others */
    put_str(q, "a");
    put_str(q, "");
    put_str(q, "b");
    get_str(q, "a");
    get_str(q, "");
    get_str(q, "b");
    ps_mpqueue_free(q);

    /* The smallest ring, 8 bytes: one zero-length message, nothing longer. */
    q = new_queue(0, 8);
    CHECK_RC_E(ps_mpqueue_put_nowait(q, "x", 1), EMSGSIZE);
    CHECK_RC_E(ps_mpqueue_put_nowait(q, NULL, 0), 0);
    cr_assert(ps_mpqueue_full(q));
    CHECK_RC_E(ps_mpqueue_put_nowait(q, NULL, 0), EAGAIN);
    CHECK_RC_E(ps_mpqueue_put_nowait(q, "x", 1), EMSGSIZE);
    CHECK_RC_E(ps_mpqueue_get_nowait(q, NULL, 0, &len), 0);
    cr_assert_eq(len, 0);
    CHECK_RC_E(ps_mpqueue_put_nowait(q, NULL, 0), 0);
    ps_mpqueue_free(q);
}

Test(mpqueue, erange_keeps_the_message)
{
    ps_mpqueue_t *q = new_queue(0, 1024);
    unsigned char m[100], buf[100];
    for (int i = 0; i < 100; i++)
        m[i] = (unsigned char)(200 - i);
    CHECK_RC_E(ps_mpqueue_put_nowait(q, m, 100), 0);
    put_str(q, "after");
    size_t len = 0;
    CHECK_RC_E(ps_mpqueue_get_nowait(q, buf, 99, &len), ERANGE);
    cr_assert_eq(len, 100);
    len = 0;
    CHECK_RC_E(ps_mpqueue_get(q, NULL, 0, &len, true, PS_FOREVER), ERANGE);
    cr_assert_eq(len, 100);
    len = 0;
    CHECK_RC_E(ps_mpqueue_get(q, buf, 50, &len, true, 5.0), ERANGE);  /* at once */
    cr_assert_eq(len, 100);
    cr_assert_eq(ps_mpqueue_qsize(q), 2);
    CHECK_RC_E(ps_mpqueue_task_done(q), 0);             /* ERANGE took no task */
    CHECK_RC_E(ps_mpqueue_task_done(q), 0);
    CHECK_RC_E(ps_mpqueue_task_done(q), EOVERFLOW);
    len = 0;
    CHECK_RC_E(ps_mpqueue_get(q, buf, 100, &len, true, PS_FOREVER), 0);
    cr_assert(len == 100 && memcmp(buf, m, 100) == 0);
    /* a 5-byte buffer is enough for "after" */
    len = 0;
    CHECK_RC_E(ps_mpqueue_get_nowait(q, buf, 4, &len), ERANGE);
    cr_assert_eq(len, 5);
    CHECK_RC_E(ps_mpqueue_get_nowait(q, buf, 5, &len), 0);
    cr_assert(len == 5 && memcmp(buf, "after", 5) == 0);
    cr_assert(ps_mpqueue_empty(q));
    ps_mpqueue_free(q);
}

/* ---- timed waits: lower bounds only ---- */

Test(mpqueue, timed_get_and_put_wait_at_least_timeout)
{
    ps_mpqueue_t *q = new_queue(1, 256);
    char buf[8];
    size_t len;
    double t0 = now();
    CHECK_RC_E(ps_mpqueue_get(q, buf, sizeof buf, &len, true, 0.05), ETIMEDOUT);
    cr_assert_geq(now() - t0, LOWER_BOUND(0.05));
    put_str(q, "1");
    t0 = now();
    CHECK_RC_E(ps_mpqueue_put(q, "2", 1, true, 0.05), ETIMEDOUT);
    cr_assert_geq(now() - t0, LOWER_BOUND(0.05));
    cr_assert_eq(ps_mpqueue_qsize(q), 1);
    CHECK_RC_E(ps_mpqueue_put(q, "2", 1, true, 0), ETIMEDOUT);
    CHECK_RC_E(ps_mpqueue_get(q, buf, sizeof buf, &len, true, 0), 0);
    CHECK_RC_E(ps_mpqueue_get(q, buf, sizeof buf, &len, true, 0), ETIMEDOUT);
    CHECK_RC_E(ps_mpqueue_put(q, "3", 1, true, 0), 0);
    /* block == false: EAGAIN whatever the timeout */
    CHECK_RC_E(ps_mpqueue_put(q, "4", 1, false, 0.5), EAGAIN);
    CHECK_RC_E(ps_mpqueue_put(q, "4", 1, false, PS_FOREVER), EAGAIN);
    get_str(q, "3");
    CHECK_RC_E(ps_mpqueue_get(q, buf, sizeof buf, &len, false, 0.5), EAGAIN);
    CHECK_RC_E(ps_mpqueue_get(q, buf, sizeof buf, &len, false, INFINITY), EAGAIN);
    ps_mpqueue_free(q);
}

/* Any negative timeout, or INFINITY, waits forever. */
Test(mpqueue, negative_and_infinite_timeouts_wait_forever)
{
    board_t *b = board_new();
    ps_mpqueue_t *q = new_queue(0, 256);
    slot_start_t(b, 0, q, OP_GET, NULL, -5.0);
    slot_start_t(b, 1, q, OP_GET, NULL, INFINITY);
    slot_blocked(b, 0);
    slot_blocked(b, 1);
    sleep_s(0.02);
    slot_still_blocked(b, 0);
    slot_still_blocked(b, 1);
    put_str(q, "x");
    put_str(q, "x");
    cr_assert_eq(slot_end(b, 0), 0);
    cr_assert_eq(slot_end(b, 1), 0);
    ps_mpqueue_free(q);
    board_free(b);
}

/* ---- bad input ---- */

Test(mpqueue, invalid_arguments_are_einval_and_keep_errno)
{
    ps_mpqueue_t *q = new_queue(0, 256);
    char buf[16];
    size_t len = 0;
    CHECK_RC_E(ps_mpqueue_put(NULL, "x", 1, true, PS_FOREVER), EINVAL);
    CHECK_RC_E(ps_mpqueue_put_nowait(NULL, "x", 1), EINVAL);
    CHECK_RC_E(ps_mpqueue_get(NULL, buf, sizeof buf, &len, true, PS_FOREVER), EINVAL);
    CHECK_RC_E(ps_mpqueue_get_nowait(NULL, buf, sizeof buf, &len), EINVAL);
    CHECK_RC_E(ps_mpqueue_task_done(NULL), EINVAL);
    CHECK_RC_E(ps_mpqueue_join(NULL), EINVAL);
    CHECK_RC_E(ps_mpqueue_shutdown(NULL, false), EINVAL);
    CHECK_RC_E(ps_mpqueue_shutdown(NULL, true), EINVAL);
    /* data NULL with len > 0; NaN timeouts: EINVAL and nothing put */
    CHECK_RC_E(ps_mpqueue_put(q, NULL, 1, true, PS_FOREVER), EINVAL);
    CHECK_RC_E(ps_mpqueue_put_nowait(q, NULL, 5), EINVAL);
    CHECK_RC_E(ps_mpqueue_put(q, "x", 1, true, NAN), EINVAL);
    cr_assert_eq(ps_mpqueue_qsize(q), 0);
    CHECK_RC_E(ps_mpqueue_task_done(q), EOVERFLOW);     /* a rejected put is no task */
    /* buf NULL with cap > 0, len NULL, NaN: EINVAL and nothing taken */
    put_str(q, "kept");
    CHECK_RC_E(ps_mpqueue_get(q, NULL, 8, &len, true, PS_FOREVER), EINVAL);
    CHECK_RC_E(ps_mpqueue_get_nowait(q, NULL, 1, &len), EINVAL);
    CHECK_RC_E(ps_mpqueue_get(q, buf, sizeof buf, NULL, true, PS_FOREVER), EINVAL);
    CHECK_RC_E(ps_mpqueue_get_nowait(q, buf, sizeof buf, NULL), EINVAL);
    CHECK_RC_E(ps_mpqueue_get(q, buf, sizeof buf, &len, true, NAN), EINVAL);
    cr_assert_eq(ps_mpqueue_qsize(q), 1, "EINVAL must change nothing");
    /* NULL data with len 0 and NULL buf with cap 0 are fine */
    CHECK_RC_E(ps_mpqueue_put(q, NULL, 0, true, PS_FOREVER), 0);
    get_str(q, "kept");
    CHECK_RC_E(ps_mpqueue_get(q, NULL, 0, &len, true, PS_FOREVER), 0);
    cr_assert_eq(len, 0);
    ps_mpqueue_free(q);
    ps_mpqueue_free(NULL);              /* no-op */
}

/* Like ps_queue's: NULL queries answer as for an empty queue. */
Test(mpqueue, null_queue_queries)
{
    errno = 4321;
    cr_assert_eq(ps_mpqueue_qsize(NULL), 0);
    cr_assert(ps_mpqueue_empty(NULL));
    cr_assert_not(ps_mpqueue_full(NULL));
    cr_assert_eq(errno, 4321);
}

Test(mpqueue, new_rejects_bad_capacities)
{
    const size_t bad[] = { 0, 1, 7, ((size_t)1 << 31) + 1, ((size_t)1 << 31) + 8, SIZE_MAX };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        cr_assert_null(ps_mpqueue_new(0, bad[i]), "capacity %zu accepted", bad[i]);
        cr_assert_eq(errno, EINVAL, "capacity %zu: %s", bad[i], ps_errname(errno));
        errno = 0;
        cr_assert_null(ps_mpqueue_new(4, bad[i]));
        cr_assert_eq(errno, EINVAL);
    }
    ps_mpqueue_t *q = new_queue(0, 8);
    ps_mpqueue_free(q);
    q = new_queue(SIZE_MAX, 9);         /* any maxsize */
    CHECK_RC_E(ps_mpqueue_put_nowait(q, NULL, 0), 0);
    ps_mpqueue_free(q);
}

/* ===================================================================== */
/* ---- blocking across processes ---- */

Test(mpqueue, blocked_get_is_woken_by_a_put_from_another_process)
{
    board_t *b = board_new();
    ps_mpqueue_t *q = new_queue(0, 256);
    for (int round = 0; round < 3; round++) {
        slot_start(b, 0, q, OP_GET, NULL);
        slot_blocked(b, 0);
        put_str(q, "hello");
        cr_assert_eq(slot_end(b, 0), 0);
        slot_is(b, 0, "hello");
        /* and the other way: a child's put reaches a getter here */
        slot_start(b, 1, q, OP_PUT, "from the child");
        cr_assert_eq(slot_end(b, 1), 0);
        get_str(q, "from the child");
    }
    cr_assert(ps_mpqueue_empty(q));
    ps_mpqueue_free(q);
    board_free(b);
}

/* A blocked put returns only when its message fits: one get that frees too
 * little leaves it blocked. */
Test(mpqueue, blocked_put_waits_until_the_message_fits)
{
    board_t *b = board_new();
    ps_mpqueue_t *q = new_queue(0, 64);
    unsigned char m[24];
    memset(m, 'a', sizeof m);
    CHECK_RC_E(ps_mpqueue_put_nowait(q, m, 24), 0);
    memset(m, 'b', sizeof m);
    CHECK_RC_E(ps_mpqueue_put_nowait(q, m, 24), 0);
    char big[57];
    memset(big, 'Z', 56);
    big[56] = '\0';
    slot_start(b, 0, q, OP_PUT, big);                   /* 56 bytes: needs the whole ring */
    slot_blocked(b, 0);
    unsigned char buf[64];
    size_t len;
    CHECK_RC_E(ps_mpqueue_get_nowait(q, buf, sizeof buf, &len), 0);
    cr_assert(len == 24 && buf[0] == 'a');
    sleep_s(0.05);                      /* room to misbehave */
    slot_still_blocked(b, 0);
    cr_assert_eq(ps_mpqueue_qsize(q), 1);
    CHECK_RC_E(ps_mpqueue_get_nowait(q, buf, sizeof buf, &len), 0);
    cr_assert(len == 24 && buf[0] == 'b');
    cr_assert_eq(slot_end(b, 0), 0);
    get_str(q, big);
    ps_mpqueue_free(q);

    /* by count */
    q = new_queue(1, 256);
    put_str(q, "first");
    slot_start(b, 1, q, OP_PUT, "second");
    slot_blocked(b, 1);
    get_str(q, "first");
    cr_assert_eq(slot_end(b, 1), 0);
    get_str(q, "second");
    ps_mpqueue_free(q);
    board_free(b);
}

/* ===================================================================== */
/* ---- shutdown (Python 3.13), blocked callers in other processes ---- */

Test(mpqueue, shutdown_empty)
{
    ps_mpqueue_t *q = new_queue(0, 256);
    char buf[8];
    size_t len;
    CHECK_RC_E(ps_mpqueue_shutdown(q, false), 0);
    CHECK_RC_E(ps_mpqueue_put(q, "1", 1, true, PS_FOREVER), ESHUTDOWN);
    CHECK_RC_E(ps_mpqueue_put_nowait(q, "1", 1), ESHUTDOWN);
    CHECK_RC_E(ps_mpqueue_get(q, buf, sizeof buf, &len, true, PS_FOREVER), ESHUTDOWN);
    CHECK_RC_E(ps_mpqueue_get_nowait(q, buf, sizeof buf, &len), ESHUTDOWN);
    /* seen from another process */
    board_t *b = board_new();
    slot_start(b, 0, q, OP_PUT, "late");
    cr_assert_eq(slot_end(b, 0), ESHUTDOWN);
    slot_start(b, 1, q, OP_GET, NULL);
    cr_assert_eq(slot_end(b, 1), ESHUTDOWN);
    board_free(b);
    ps_mpqueue_free(q);
}

Test(mpqueue, shutdown_nonempty)
{
    ps_mpqueue_t *q = new_queue(0, 256);
    char buf[8];
    size_t len;
    put_str(q, "1");
    CHECK_RC_E(ps_mpqueue_shutdown(q, false), 0);
    get_str(q, "1");
    CHECK_RC_E(ps_mpqueue_get(q, buf, sizeof buf, &len, true, PS_FOREVER), ESHUTDOWN);
    ps_mpqueue_free(q);
}

Test(mpqueue, shutdown_immediate)
{
    ps_mpqueue_t *q = new_queue(0, 256);
    char buf[8];
    size_t len;
    put_str(q, "1");
    CHECK_RC_E(ps_mpqueue_shutdown(q, true), 0);
    CHECK_RC_E(ps_mpqueue_get(q, buf, sizeof buf, &len, true, PS_FOREVER), ESHUTDOWN);
    cr_assert_eq(ps_mpqueue_qsize(q), 0);
    cr_assert(ps_mpqueue_empty(q));
    CHECK_RC_E(ps_mpqueue_join(q), 0);                   /* discarded: done */
    CHECK_RC_E(ps_mpqueue_task_done(q), EOVERFLOW);
    ps_mpqueue_free(q);
}

Test(mpqueue, shutdown_allowed_transitions)
{
    ps_mpqueue_t *q = new_queue(0, 256);
    char buf[8];
    size_t len;
    put_str(q, "1");
    CHECK_RC_E(ps_mpqueue_shutdown(q, false), 0);
    CHECK_RC_E(ps_mpqueue_shutdown(q, false), 0);
    cr_assert_eq(ps_mpqueue_qsize(q), 1);
    CHECK_RC_E(ps_mpqueue_shutdown(q, true), 0);
    cr_assert_eq(ps_mpqueue_qsize(q), 0);
    CHECK_RC_E(ps_mpqueue_shutdown(q, false), 0);       /* no way back */
    CHECK_RC_E(ps_mpqueue_put_nowait(q, "1", 1), ESHUTDOWN);
    CHECK_RC_E(ps_mpqueue_get_nowait(q, buf, sizeof buf, &len), ESHUTDOWN);
    ps_mpqueue_free(q);
}

static void shutdown_all_methods_in_one_thread(bool immediate)
{
    ps_mpqueue_t *q = new_queue(2, 256);
    char buf[8];
    size_t len;
    put_str(q, "L");
    CHECK_RC_E(ps_mpqueue_put_nowait(q, "O", 1), 0);
    CHECK_RC_E(ps_mpqueue_shutdown(q, immediate), 0);
    CHECK_RC_E(ps_mpqueue_put(q, "E", 1, true, PS_FOREVER), ESHUTDOWN);
    CHECK_RC_E(ps_mpqueue_put_nowait(q, "W", 1), ESHUTDOWN);
    if (immediate) {
        CHECK_RC_E(ps_mpqueue_get(q, buf, sizeof buf, &len, true, PS_FOREVER), ESHUTDOWN);
        CHECK_RC_E(ps_mpqueue_get_nowait(q, buf, sizeof buf, &len), ESHUTDOWN);
        CHECK_RC_E(ps_mpqueue_task_done(q), EOVERFLOW);
        CHECK_RC_E(ps_mpqueue_join(q), 0);
    } else {
        get_str(q, "L");
        CHECK_RC_E(ps_mpqueue_task_done(q), 0);
        get_str(q, "O");
        CHECK_RC_E(ps_mpqueue_task_done(q), 0);
        CHECK_RC_E(ps_mpqueue_join(q), 0);
        CHECK_RC_E(ps_mpqueue_get(q, buf, sizeof buf, &len, true, PS_FOREVER), ESHUTDOWN);
        CHECK_RC_E(ps_mpqueue_get_nowait(q, buf, sizeof buf, &len), ESHUTDOWN);
        CHECK_RC_E(ps_mpqueue_get(q, buf, sizeof buf, &len, true, 1.0), ESHUTDOWN);
    }
    ps_mpqueue_free(q);
}

Test(mpqueue, shutdown_all_methods_in_one_thread) { shutdown_all_methods_in_one_thread(false); }
Test(mpqueue, shutdown_immediate_all_methods_in_one_thread)
{
    shutdown_all_methods_in_one_thread(true);
}

/* Getters blocked in other processes: two messages arrive, then shutdown
 * releases the rest. */
static void shutdown_blocked_getters(bool immediate)
{
    board_t *b = board_new();
    ps_mpqueue_t *q = new_queue(2, 256);
    for (int i = 0; i < 3; i++)
        slot_start(b, i, q, OP_GET, NULL);
    for (int i = 0; i < 3; i++)
        slot_blocked(b, i);
    put_str(q, "Y");
    put_str(q, "D");
    CHECK_RC_E(ps_mpqueue_shutdown(q, immediate), 0);
    int ok = 0, shut = 0;
    for (int i = 0; i < 3; i++) {
        int rc = slot_end(b, i);
        ok += rc == 0;
        shut += rc == ESHUTDOWN;
    }
    cr_assert_eq(ok + shut, 3, "ok %d, shut down %d", ok, shut);
    if (!immediate)
        cr_assert_eq(ok, 2);
    cr_assert_eq(ps_mpqueue_qsize(q), 0);
    ps_mpqueue_free(q);
    board_free(b);
}

Test(mpqueue, shutdown_releases_blocked_getters) { shutdown_blocked_getters(false); }
Test(mpqueue, shutdown_immediate_releases_blocked_getters) { shutdown_blocked_getters(true); }

/* _shutdown_get: a full queue of two is shut down before the getters run. */
static void shutdown_get(bool immediate)
{
    board_t *b = board_new();
    ps_mpqueue_t *q = new_queue(2, 256);
    int n = immediate ? 2 : 3;
    put_str(q, "Y");
    put_str(q, "D");
    CHECK_RC_E(ps_mpqueue_shutdown(q, immediate), 0);
    for (int i = 0; i < n; i++)
        slot_start(b, i, q, OP_GET, NULL);
    int ok = 0, shut = 0;
    for (int i = 0; i < n; i++) {
        int rc = slot_end(b, i);
        ok += rc == 0;
        shut += rc == ESHUTDOWN;
    }
    cr_assert_eq(ok, immediate ? 0 : 2);
    cr_assert_eq(shut, immediate ? 2 : 1);
    ps_mpqueue_free(q);
    board_free(b);
}

Test(mpqueue, shutdown_get) { shutdown_get(false); }
Test(mpqueue, shutdown_immediate_get) { shutdown_get(true); }

/* Putters blocked (full by count, then full by bytes) in other processes. */
static void shutdown_put(bool immediate)
{
    board_t *b = board_new();
    for (int bytes = 0; bytes < 2; bytes++) {
        ps_mpqueue_t *q = bytes ? new_queue(0, 32) : new_queue(2, 256);
        put_str(q, "Y");                                /* 8 + 8 bytes */
        put_str(q, "D");
        for (int i = 0; i < 2; i++)
            slot_start(b, i, q, OP_PUT, "E");
        for (int i = 0; i < 2; i++)
            slot_blocked(b, i);
        CHECK_RC_E(ps_mpqueue_shutdown(q, immediate), 0);
        for (int i = 0; i < 2; i++)
            cr_assert_eq(slot_end(b, i), ESHUTDOWN, "putter %d (full by %s)", i,
                         bytes ? "bytes" : "count");
        cr_assert_eq(ps_mpqueue_qsize(q), immediate ? 0u : 2u);
        ps_mpqueue_free(q);
    }
    board_free(b);
}

Test(mpqueue, shutdown_put) { shutdown_put(false); }
Test(mpqueue, shutdown_immediate_put) { shutdown_put(true); }

static void shutdown_join(bool immediate)
{
    board_t *b = board_new();
    ps_mpqueue_t *q = new_queue(0, 256);
    put_str(q, "Y");
    for (int i = 0; i < 2; i++)
        slot_start(b, i, q, OP_JOIN, NULL);
    for (int i = 0; i < 2; i++)
        slot_blocked(b, i);
    if (!immediate)
        slot_start(b, 2, q, OP_GET_TASK_DONE, NULL);
    CHECK_RC_E(ps_mpqueue_shutdown(q, immediate), 0);
    if (!immediate) {
        cr_assert_eq(slot_end(b, 2), 0);
        slot_is(b, 2, "Y");
    }
    for (int i = 0; i < 2; i++)
        cr_assert_eq(slot_end(b, i), 0, "joiner %d", i);
    ps_mpqueue_free(q);
    board_free(b);
}

Test(mpqueue, shutdown_join) { shutdown_join(false); }
Test(mpqueue, shutdown_immediate_join) { shutdown_join(true); }

static void shutdown_put_join(bool immediate)
{
    board_t *b = board_new();
    ps_mpqueue_t *q = new_queue(2, 256);
    char buf[8];
    size_t len;
    put_str(q, "Y");
    slot_start(b, 0, q, OP_JOIN, NULL);
    slot_blocked(b, 0);
    CHECK_RC_E(ps_mpqueue_shutdown(q, immediate), 0);
    CHECK_RC_E(ps_mpqueue_put(q, "E", 1, true, PS_FOREVER), ESHUTDOWN);
    if (immediate) {
        CHECK_RC_E(ps_mpqueue_get_nowait(q, buf, sizeof buf, &len), ESHUTDOWN);
    } else {
        slot_still_blocked(b, 0);
        get_str(q, "Y");
        CHECK_RC_E(ps_mpqueue_task_done(q), 0);
    }
    cr_assert_eq(slot_end(b, 0), 0);
    ps_mpqueue_free(q);
    board_free(b);
}

Test(mpqueue, shutdown_put_join) { shutdown_put_join(false); }
Test(mpqueue, shutdown_immediate_put_join) { shutdown_put_join(true); }

Test(mpqueue, shutdown_get_task_done_join)
{
    board_t *b = board_new();
    ps_mpqueue_t *q = new_queue(2, 256);
    put_str(q, "Y");
    put_str(q, "D");
    slot_start(b, 0, q, OP_GET_TASK_DONE, NULL);
    slot_start(b, 1, q, OP_GET_TASK_DONE, NULL);
    slot_start(b, 2, q, OP_JOIN, NULL);
    slot_start(b, 3, q, OP_JOIN, NULL);
    CHECK_RC_E(ps_mpqueue_shutdown(q, false), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(slot_end(b, i), 0, "child %d", i);
    cr_assert(b->msg[0][0] + b->msg[1][0] == 'Y' + 'D');
    ps_mpqueue_free(q);
    board_free(b);
}

Test(mpqueue, shutdown_pending_get)
{
    board_t *b = board_new();
    ps_mpqueue_t *q = new_queue(0, 256);
    slot_start(b, 0, q, OP_GET, NULL);
    slot_blocked(b, 0);
    CHECK_RC_E(ps_mpqueue_shutdown(q, false), 0);
    cr_assert_eq(slot_end(b, 0), ESHUTDOWN);
    ps_mpqueue_free(q);
    board_free(b);
}

/* An immediate shutdown wakes every kind of waiter at once: getters on an empty
 * queue, putters and joiners on a full one (two queues). */
Test(mpqueue, shutdown_immediate_wakes_every_waiter)
{
    board_t *b = board_new();
    ps_mpqueue_t *empty = new_queue(0, 256), *full = new_queue(1, 256);
    put_str(full, "x");
    slot_start(b, 0, empty, OP_GET, NULL);
    slot_start(b, 1, empty, OP_GET_TASK_DONE, NULL);
    slot_start(b, 2, full, OP_PUT, "y");
    slot_start(b, 3, full, OP_JOIN, NULL);
    for (int i = 0; i < 4; i++)
        slot_blocked(b, i);
    CHECK_RC_E(ps_mpqueue_shutdown(empty, true), 0);
    CHECK_RC_E(ps_mpqueue_shutdown(full, true), 0);
    cr_assert_eq(slot_end(b, 0), ESHUTDOWN);
    cr_assert_eq(slot_end(b, 1), ESHUTDOWN);
    cr_assert_eq(slot_end(b, 2), ESHUTDOWN);
    cr_assert_eq(slot_end(b, 3), 0);
    cr_assert_eq(ps_mpqueue_qsize(full), 0);
    CHECK_RC_E(ps_mpqueue_task_done(full), EOVERFLOW);
    ps_mpqueue_free(empty);
    ps_mpqueue_free(full);
    board_free(b);
}

/* _shutdown_all_methods_in_many_threads, with processes: writers put until shut
 * down, readers get + task_done until shut down, one writer shuts down midway,
 * joiners wait. Every message put is got once, or (immediate) discarded. */
typedef struct many {
    ps_mpqueue_t *q;
    long trigger_at;
    bool immediate;
    atomic_long puts, gets;
    atomic_int shut_writer, shut_reader;
} many_t;

static int many_writer(void *arg)
{
    many_t *m = arg;
    for (long i = 0;; i++) {
        int rc = c_put(m->q, &i, sizeof i, true, PS_FOREVER);
        if (rc == ESHUTDOWN) {
            atomic_fetch_add(&m->shut_writer, 1);
            return 0;
        }
        if (rc)
            return rc;
        if (atomic_fetch_add(&m->puts, 1) + 1 == m->trigger_at &&
            (rc = ps_mpqueue_shutdown(m->q, m->immediate)))
            return rc;
    }
}

static int many_reader(void *arg)
{
    many_t *m = arg;
    for (;;) {
        long x;
        size_t len;
        int rc = c_get(m->q, &x, sizeof x, &len, true, PS_FOREVER);
        if (rc == ESHUTDOWN) {
            atomic_fetch_add(&m->shut_reader, 1);
            return 0;
        }
        if (rc)
            return rc;
        if (len != sizeof x)
            return 1;
        atomic_fetch_add(&m->gets, 1);
        rc = c_task_done(m->q);
        /* an immediate shutdown may already have counted this one as done */
        if (rc && !(m->immediate && rc == EOVERFLOW))
            return rc;
    }
}

static int many_joiner(void *arg) { return c_join(((many_t *)arg)->q); }

static void shutdown_all_methods_in_many_processes(bool immediate)
{
    enum { WRITERS = 4, READERS = 6, JOINERS = 2, N = WRITERS + READERS + JOINERS };
    many_t *m = shm_alloc(sizeof *m);
    m->q = new_queue(64, 4096);
    m->trigger_at = 5000;
    m->immediate = immediate;
    pid_t pids[N];
    int k = 0;
    for (int i = 0; i < READERS; i++)
        pids[k++] = spawn(many_reader, m);
    for (int i = 0; i < WRITERS; i++)
        pids[k++] = spawn(many_writer, m);
    for (int i = 0; i < JOINERS; i++)
        pids[k++] = spawn(many_joiner, m);
    CHECK_CHILDREN(pids, N, 20.0, 0);
    cr_assert_eq(atomic_load(&m->shut_writer), WRITERS);
    cr_assert_eq(atomic_load(&m->shut_reader), READERS);
    cr_assert_geq(atomic_load(&m->puts), m->trigger_at);
    if (immediate)
        cr_assert_leq(atomic_load(&m->gets), atomic_load(&m->puts));
    else
        cr_assert_eq(atomic_load(&m->gets), atomic_load(&m->puts),
                     "a plain shutdown lets readers drain: %ld put, %ld got",
                     atomic_load(&m->puts), atomic_load(&m->gets));
    cr_assert(ps_mpqueue_empty(m->q));
    ps_mpqueue_free(m->q);
    shm_free(m, sizeof *m);
}

Test(mpqueue, shutdown_all_methods_in_many_processes)
{
    shutdown_all_methods_in_many_processes(false);
}
Test(mpqueue, shutdown_immediate_all_methods_in_many_processes)
{
    shutdown_all_methods_in_many_processes(true);
}

/* ===================================================================== */
/* ---- 2 producers x 2 consumers x 20000 messages of 0..300 bytes ----
 *
 * Messages of HDR bytes or more are msg_build ones (tag = producer) and each is
 * checked to arrive exactly once and, per consumer, in its producer's order.
 * Shorter ones (0..15 bytes) carry only their producer and length in a pattern,
 * and are counted per (producer, length); zero-length ones in short_seen[0][0]. */
enum { SP_PRODUCERS = 2, SP_CONSUMERS = 2, SP_MSGS = 20000, SP_MAXLEN = 300 };

typedef struct sp {
    ps_mpqueue_t *q;
    atomic_uchar seen[SP_PRODUCERS][SP_MSGS];
    atomic_int short_seen[SP_PRODUCERS][HDR];
    atomic_long received;
    atomic_int eranges;
    /* the first error a consumer met */
    atomic_int failed;
    int what, rc, producer;
    uint32_t seq, last;
    size_t len;
} sp_t;

struct sp_arg {
    sp_t *s;
    int id;
};

static size_t sp_len(int p, uint32_t seq)
{
    return (size_t)((((seq + 1) * 2654435761u) ^ ((uint32_t)p * 0x9e3779b9u)) >> 8) %
           (SP_MAXLEN + 1);
}

static unsigned char sp_short_byte(int p, size_t i) { return (unsigned char)(0xa0 + p * 16 + (int)i); }

enum { SP_BAD_RC = 1, SP_BAD_ERANGE, SP_TORN, SP_SHORT_TORN, SP_UNKNOWN, SP_WRONG_LEN,
       SP_OUT_OF_ORDER };

static int sp_fail(sp_t *s, int what, int rc, int p, uint32_t seq, uint32_t last, size_t len)
{
    int no = 0;
    if (atomic_compare_exchange_strong(&s->failed, &no, 1)) {
        s->what = what;
        s->rc = rc;
        s->producer = p;
        s->seq = seq;
        s->last = last;
        s->len = len;
    }
    return what;
}

static int sp_producer(void *arg)
{
    struct sp_arg *a = arg;
    unsigned char buf[SP_MAXLEN];
    for (uint32_t seq = 0; seq < SP_MSGS; seq++) {
        size_t len = sp_len(a->id, seq);
        if (len >= HDR)
            msg_build(buf, (unsigned)a->id, seq, len);
        else
            for (size_t i = 0; i < len; i++)
                buf[i] = sp_short_byte(a->id, i);
        int rc = c_put(a->s->q, buf, len, true, PS_FOREVER);
        if (rc)
            return rc;
    }
    return 0;
}

static int sp_consumer(void *arg)
{
    struct sp_arg *a = arg;
    sp_t *s = a->s;
    unsigned char buf[SP_MAXLEN + 64];
    long last[SP_PRODUCERS];
    for (int p = 0; p < SP_PRODUCERS; p++)
        last[p] = -1;
    for (;;) {
        size_t len = 0;
        int rc;
        if (a->id == 1) {               /* this one asks with a small buffer first */
            rc = c_get(s->q, buf, 150, &len, true, PS_FOREVER);
            if (rc == ERANGE) {
                if (len <= 150 || len > SP_MAXLEN)
                    return sp_fail(s, SP_BAD_ERANGE, rc, -1, 0, 0, len);
                atomic_fetch_add(&s->eranges, 1);
                len = 0;
                rc = c_get(s->q, buf, sizeof buf, &len, true, PS_FOREVER);
            }
        } else {
            rc = c_get(s->q, buf, sizeof buf, &len, true, PS_FOREVER);
        }
        if (rc == ESHUTDOWN)
            return 0;
        if (rc)
            return sp_fail(s, SP_BAD_RC, rc, -1, 0, 0, len);
        atomic_fetch_add(&s->received, 1);
        if (len < HDR) {
            int p = len ? (buf[0] - 0xa0) / 16 : 0;
            if (p < 0 || p >= SP_PRODUCERS)
                return sp_fail(s, SP_SHORT_TORN, 0, p, 0, 0, len);
            for (size_t i = 0; i < len; i++)
                if (buf[i] != sp_short_byte(p, i))
                    return sp_fail(s, SP_SHORT_TORN, 0, p, 0, 0, len);
            atomic_fetch_add(&s->short_seen[p][len], 1);
            continue;
        }
        unsigned tag;
        uint32_t seq;
        if (!msg_check(buf, len, &tag, &seq))
            return sp_fail(s, SP_TORN, 0, -1, 0, 0, len);
        if (tag >= SP_PRODUCERS || seq >= SP_MSGS)
            return sp_fail(s, SP_UNKNOWN, 0, (int)tag, seq, 0, len);
        if (sp_len((int)tag, seq) != len)
            return sp_fail(s, SP_WRONG_LEN, 0, (int)tag, seq, 0, len);
        if ((long)seq <= last[tag])
            return sp_fail(s, SP_OUT_OF_ORDER, 0, (int)tag, seq, (uint32_t)last[tag], len);
        last[tag] = seq;
        atomic_fetch_add(&s->seen[tag][seq], 1);
    }
}

static void producers_consumers(ps_mpqueue_t *q)
{
    sp_t *s = shm_alloc(sizeof *s);
    s->q = q;
    pid_t cons[SP_CONSUMERS], prods[SP_PRODUCERS];
    for (int i = 0; i < SP_CONSUMERS; i++) {
        struct sp_arg a = { s, i };
        cons[i] = spawn(sp_consumer, &a);
    }
    for (int i = 0; i < SP_PRODUCERS; i++) {
        struct sp_arg a = { s, i };
        prods[i] = spawn(sp_producer, &a);
    }
    /* Until the producers are done; a consumer that stopped at a bad message
     * would leave them blocked on a full queue, so that ends the wait too. */
    int pcodes[SP_PRODUCERS], ccodes[SP_CONSUMERS], left = SP_PRODUCERS;
    bool ended[SP_PRODUCERS] = { false };
    double end = now() + 20.0;
    while (left && !atomic_load(&s->failed) && now() < end) {
        for (int i = 0; i < SP_PRODUCERS; i++) {
            int status;
            if (!ended[i] && waitpid(prods[i], &status, WNOHANG) == prods[i]) {
                ended[i] = true;
                left--;
                pcodes[i] = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
            }
        }
        sleep_s(0.001);
    }
    for (int i = 0; i < SP_PRODUCERS; i++)
        if (!ended[i]) {
            child_kill(prods[i]);
            pcodes[i] = CHILD_TIMEOUT;
        }
    if (atomic_load(&s->failed))
        kill_children(cons, SP_CONSUMERS);
    CHECK_RC_E(ps_mpqueue_shutdown(q, false), 0);       /* consumers drain, then stop */
    wait_children(cons, SP_CONSUMERS, 20.0, ccodes);
    static const char *const whats[] = { "", "get failed", "ERANGE with a bad size",
                                         "torn message", "torn short message",
                                         "unknown message", "wrong length",
                                         "out of producer order" };
    cr_assert_eq(atomic_load(&s->failed), 0,
                 "consumer: %s: rc %s, producer %d, seq %u (after %u), len %zu",
                 whats[s->what], ps_errname(s->rc), s->producer, s->seq, s->last, s->len);
    for (int i = 0; i < SP_PRODUCERS; i++)
        cr_assert_eq(pcodes[i], 0, "producer %d ended with %d", i, pcodes[i]);
    for (int i = 0; i < SP_CONSUMERS; i++)
        cr_assert_eq(ccodes[i], 0, "consumer %d ended with %d", i, ccodes[i]);
    /* each exactly once */
    int want_short[SP_PRODUCERS][HDR];
    memset(want_short, 0, sizeof want_short);
    for (int p = 0; p < SP_PRODUCERS; p++)
        for (uint32_t seq = 0; seq < SP_MSGS; seq++) {
            size_t len = sp_len(p, seq);
            if (len >= HDR)
                cr_assert_eq(atomic_load(&s->seen[p][seq]), 1,
                             "producer %d message %u (%zu bytes) arrived %d times", p, seq, len,
                             atomic_load(&s->seen[p][seq]));
            else
                want_short[len ? p : 0][len]++;
        }
    for (int p = 0; p < SP_PRODUCERS; p++)
        for (int len = 0; len < HDR; len++)
            cr_assert_eq(atomic_load(&s->short_seen[p][len]), want_short[p][len],
                         "producer %d, %d-byte messages: %d arrived, %d sent", p, len,
                         atomic_load(&s->short_seen[p][len]), want_short[p][len]);
    cr_assert_eq(atomic_load(&s->received), SP_PRODUCERS * SP_MSGS);
    cr_assert_gt(atomic_load(&s->eranges), 0, "the small buffer never met a long message");
    cr_assert(ps_mpqueue_empty(q));
    char buf[8];
    size_t len;
    CHECK_RC_E(ps_mpqueue_get_nowait(q, buf, sizeof buf, &len), ESHUTDOWN);
    shm_free(s, sizeof *s);
}

/* A 2 KiB ring: full by bytes all the time (about 13 messages of 150 bytes). */
Test(mpqueue, two_producers_two_consumers_checksums_bounded_by_bytes)
{
    ps_mpqueue_t *q = new_queue(0, 2048);
    producers_consumers(q);
    ps_mpqueue_free(q);
}

/* A manager's queue of at most 8 messages. */
Test(mpqueue, two_producers_two_consumers_checksums_bounded_by_count)
{
    ps_manager_t *m = new_manager(256 * 1024);
    producers_consumers(manager_queue(m, "q", 8, 64 * 1024));
    CHECK_RC_E(ps_manager_close(m), 0);
}

/* ===================================================================== */
/* ---- processes killed in the middle ---- */

enum { KILL_CAP = 8192, KILL_MAXLEN = HDR + 1500 };

static size_t kill_len(uint32_t seq) { return HDR + ((seq + 1) * 2654435761u >> 9) % 1500; }

typedef struct kp {
    ps_mpqueue_t *q;
    atomic_int started;
    unsigned tag;
    uint32_t count;                     /* 0: forever */
} kp_t;

/* Puts tag's messages 0, 1, 2... as fast as the queue takes them. */
static int kill_producer(void *arg)
{
    kp_t *k = arg;
    unsigned char buf[KILL_MAXLEN];
    atomic_store(&k->started, 1);
    for (uint32_t seq = 0; k->count == 0 || seq < k->count; seq++) {
        size_t len = kill_len(seq);
        msg_build(buf, k->tag, seq, len);
        int rc = c_put(k->q, buf, len, true, PS_FOREVER);
        if (rc)
            return rc;
    }
    return 0;
}

/* A consumer of one producer's stream: every message whole, the next in order,
 * and task_done'd. */
enum { D_OK, D_RC, D_TORN, D_TAG, D_ORDER, D_TASK_DONE };

typedef struct drain {
    ps_mpqueue_t *q;
    unsigned tag;
    uint32_t next;                      /* the seq expected next */
    atomic_bool stop;
    int error, rc;
    size_t len;
    uint32_t seq;
} drain_t;

static bool drain_take(drain_t *d, int rc, const unsigned char *buf, size_t len)
{
    unsigned tag;
    uint32_t seq = 0;
    if (d->error)
        return false;
    if (rc)
        d->error = D_RC, d->rc = rc;
    else if (!msg_check(buf, len, &tag, &seq))
        d->error = D_TORN, d->len = len;
    else if (tag != d->tag)
        d->error = D_TAG, d->seq = seq;
    else if (seq != d->next)
        d->error = D_ORDER, d->seq = seq;
    else if ((rc = ps_mpqueue_task_done(d->q)))
        d->error = D_TASK_DONE, d->rc = rc;
    else
        d->next++;
    return d->error == D_OK;
}

static void *drain_main(void *arg)
{
    drain_t *d = arg;
    unsigned char buf[KILL_MAXLEN];
    for (;;) {
        size_t len = 0;
        int rc = ps_mpqueue_get(d->q, buf, sizeof buf, &len, true, 0.005);
        if (rc == ETIMEDOUT) {
            if (atomic_load(&d->stop))
                return NULL;
            continue;
        }
        if (!drain_take(d, rc, buf, len))
            return NULL;
    }
}

/* get_nowait until EAGAIN. */
static void drain_rest(drain_t *d)
{
    unsigned char buf[KILL_MAXLEN];
    for (;;) {
        size_t len = 0;
        int rc = ps_mpqueue_get_nowait(d->q, buf, sizeof buf, &len);
        if (rc == EAGAIN || !drain_take(d, rc, buf, len))
            return;
    }
}

static void drain_assert(const drain_t *d, int round)
{
    static const char *const whats[] = { "", "get failed", "torn message", "wrong producer",
                                         "out of order", "task_done failed" };
    cr_assert_eq(d->error, D_OK, "round %d: %s (%s, %zu bytes, seq %u, expected seq %u)",
                 round, whats[d->error], ps_errname(d->rc), d->len, d->seq, d->next);
}

/* One round: a producer is killed at a random moment of its put loop while a
 * thread here consumes. Then: what is left is whole and in sequence, the counts
 * of join agree, and a new producer's messages go through. */
static void producer_kill_round(ps_mpqueue_t *q, kp_t *k, unsigned *x, int round, long *total)
{
    k->q = q;
    k->tag = 1;
    k->count = 0;
    atomic_store(&k->started, 0);
    drain_t d = { .q = q, .tag = 1 };
    pid_t pid = spawn(kill_producer, k);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, drain_main, &d), 0);
    cr_assert(wait_count(&k->started, 1, 5.0));
    *x = *x * 1103515245u + 12345u;
    sleep_s((double)((*x >> 16) % 3000) * 1e-6);        /* 0 .. 3 ms */
    kill(pid, SIGKILL);
    int code = child_wait(pid, 10.0);
    atomic_store(&d.stop, true);
    pthread_join(t, NULL);
    cr_assert_eq(code, -SIGKILL, "round %d: the producer ended with %d", round, code);
    drain_assert(&d, round);
    drain_rest(&d);
    drain_assert(&d, round);
    cr_assert_eq(ps_mpqueue_qsize(q), 0, "round %d", round);
    cr_assert(ps_mpqueue_empty(q));
    /* Every message got was task_done'd: nothing the dead put left counts. */
    CHECK_RC_E(ps_mpqueue_task_done(q), EOVERFLOW);
    CHECK_RC_E(ps_mpqueue_join(q), 0);
    *total += d.next;

    /* A new producer; this process consumes. */
    k->tag = 2;
    k->count = 20;
    drain_t e = { .q = q, .tag = 2 };
    pid = spawn(kill_producer, k);
    unsigned char buf[KILL_MAXLEN];
    for (int i = 0; i < 20; i++) {
        size_t len = 0;
        int rc = ps_mpqueue_get(q, buf, sizeof buf, &len, true, 10.0);
        drain_take(&e, rc, buf, len);
        drain_assert(&e, round);
    }
    cr_assert_eq(child_wait(pid, 10.0), 0, "round %d", round);
    size_t len;
    CHECK_RC_E(ps_mpqueue_get_nowait(q, buf, sizeof buf, &len), EAGAIN);
    CHECK_RC_E(ps_mpqueue_task_done(q), EOVERFLOW);
}

/* After a SIGKILL at a random moment of a call: frees or removes the queue.
 * A caller killed anywhere inside is recorded (lib/inside.h: one CAS enters),
 * so its death is a fact destroy can check: the queue must go. */
static bool release_after_kill(ps_manager_t *m, const char *name, ps_mpqueue_t *q, int round)
{
    if (m) {
        int rc = ps_manager_remove(m, name);
        cr_assert(rc == 0 || rc == EBUSY, "round %d: ps_manager_remove: %s", round,
                  ps_errname(rc));
        return rc == 0;
    }
    errno = 0;
    ps_mpqueue_free(q);
    return errno != EBUSY;
}

/* The test: 20 kills; even rounds on a ps_mpqueue_new queue, odd ones on
 * a manager's. */
Test(mpqueue, producer_killed_in_put_loop)
{
    kp_t *k = shm_alloc(sizeof *k);
    ps_manager_t *m = new_manager(256 * 1024);
    unsigned x = 20240601;
    long total = 0;
    int busy = 0;
    for (int round = 0; round < 20; round++) {
        bool managed = round % 2;
        char name[16];
        snprintf(name, sizeof name, "kq%d", round);
        ps_mpqueue_t *q = managed ? manager_queue(m, name, 0, KILL_CAP) : new_queue(0, KILL_CAP);
        producer_kill_round(q, k, &x, round, &total);
        busy += !release_after_kill(managed ? m : NULL, name, q, round);
    }
    cr_assert_eq(busy, 0, "%d of 20 queues stayed busy after their producer was killed", busy);
    cr_assert_gt(total, 20, "hardly any message went through before the kills");
    CHECK_RC_E(ps_manager_close(m), 0);
    shm_free(k, sizeof *k);
}

/* A consumer killed at a random moment of its get loop: a message is either still
 * queued or wholly taken; none is duplicated, torn or reordered, and at most the
 * one in flight (taken but not yet recorded) is missing. */
enum { MID_MAX = 1 << 20 };

typedef struct mid {
    ps_mpqueue_t *q;
    atomic_int started;
    atomic_uint taken;                  /* messages 0 .. taken-1 were got */
} mid_t;

static int mid_consumer(void *arg)
{
    mid_t *m = arg;
    unsigned char buf[KILL_MAXLEN];
    atomic_store(&m->started, 1);
    for (uint32_t next = 0;; next++) {
        size_t len = 0;
        unsigned tag;
        uint32_t seq;
        int rc = c_get(m->q, buf, sizeof buf, &len, true, PS_FOREVER);
        if (rc)
            return 1;
        if (!msg_check(buf, len, &tag, &seq) || tag != 3)
            return 2;
        if (seq != next)
            return 3;
        atomic_store(&m->taken, next + 1);
    }
}

typedef struct feeder {
    ps_mpqueue_t *q;
    atomic_bool stop;
    uint32_t put;
    int rc;
} feeder_t;

static void *feeder_main(void *arg)
{
    feeder_t *f = arg;
    unsigned char buf[KILL_MAXLEN];
    while (!atomic_load(&f->stop) && f->put < MID_MAX) {
        size_t len = kill_len(f->put);
        msg_build(buf, 3, f->put, len);
        int rc = ps_mpqueue_put(f->q, buf, len, true, 0.002);
        if (rc == 0) {
            f->put++;
        } else if (rc != ETIMEDOUT) {
            f->rc = rc;
            break;
        }
    }
    return NULL;
}

Test(mpqueue, consumer_killed_mid_stream)
{
    mid_t *m = shm_alloc(sizeof *m);
    ps_manager_t *mgr = new_manager(256 * 1024);
    unsigned x = 777;
    long total = 0;
    int busy = 0;
    for (int round = 0; round < 12; round++) {
        bool managed = round % 2;
        char name[16];
        snprintf(name, sizeof name, "mq%d", round);
        ps_mpqueue_t *q = managed ? manager_queue(mgr, name, 0, KILL_CAP)
                                  : new_queue(0, KILL_CAP);
        m->q = q;
        atomic_store(&m->started, 0);
        atomic_store(&m->taken, 0);
        feeder_t f = { .q = q };
        pid_t pid = spawn(mid_consumer, m);
        cr_assert(wait_count(&m->started, 1, 5.0));
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, feeder_main, &f), 0);
        x = x * 1103515245u + 12345u;
        sleep_s(0.0002 + (double)((x >> 16) % 3000) * 1e-6);
        kill(pid, SIGKILL);
        int code = child_wait(pid, 10.0);
        atomic_store(&f.stop, true);
        pthread_join(t, NULL);
        cr_assert_eq(code, -SIGKILL, "round %d: the consumer ended with %d (2: torn, 3: order)",
                     round, code);
        cr_assert_eq(f.rc, 0, "round %d: put: %s", round, ps_errname(f.rc));
        uint32_t taken = atomic_load(&m->taken);
        total += taken;
        /* What is left: consecutive, starting right after what the consumer
         * recorded, or one later (the message it had taken when it died). */
        unsigned char buf[KILL_MAXLEN];
        uint32_t next = 0;
        bool first = true;
        for (;;) {
            size_t len = 0;
            unsigned tag;
            uint32_t seq;
            int rc = ps_mpqueue_get_nowait(q, buf, sizeof buf, &len);
            if (rc == EAGAIN)
                break;
            cr_assert_eq(rc, 0, "round %d: %s", round, ps_errname(rc));
            cr_assert(msg_check(buf, len, &tag, &seq) && tag == 3, "round %d: torn (%zu bytes)",
                      round, len);
            if (first)
                cr_assert(seq == taken || seq == taken + 1,
                          "round %d: first left is %u, the consumer took %u", round, seq, taken);
            else
                cr_assert_eq(seq, next, "round %d: %u after %u", round, seq, next - 1);
            first = false;
            next = seq + 1;
        }
        if (first)
            cr_assert(f.put == taken || f.put == taken + 1,
                      "round %d: %u put, %u taken, none left", round, f.put, taken);
        else
            cr_assert_eq(next, f.put, "round %d: the last %u put are missing", round,
                         f.put - next);
        cr_assert(ps_mpqueue_empty(q));
        /* still usable */
        put_str(q, "after");
        get_str(q, "after");
        busy += !release_after_kill(managed ? mgr : NULL, name, q, round);
    }
    cr_assert_eq(busy, 0, "%d of 12 queues stayed busy after their consumer was killed", busy);
    cr_assert_gt(total, 12, "hardly any message went through before the kills");
    CHECK_RC_E(ps_manager_close(mgr), 0);
    shm_free(m, sizeof *m);
}

/* Waiters killed while asleep: a wake-up meant for one of them reaches the
 * living, and nothing is lost or wedged. */
Test(mpqueue, waiters_killed_while_blocked_do_not_wedge_the_queue)
{
    board_t *b = board_new();
    ps_mpqueue_t *q = new_queue(1, 256);
    for (int round = 0; round < 4; round++) {
        int dead = round % 2, live = 1 - dead;
        /* two getters on an empty queue; one is killed; a put reaches the other */
        slot_start(b, 0, q, OP_GET, NULL);
        slot_start(b, 1, q, OP_GET, NULL);
        slot_blocked(b, 0);
        slot_blocked(b, 1);
        slot_kill(b, dead);
        put_str(q, "to the living");
        cr_assert_eq(slot_end(b, live), 0, "round %d", round);
        slot_is(b, live, "to the living");
        cr_assert(ps_mpqueue_empty(q));
        /* a getter killed alone: the next message waits for the next getter */
        slot_start(b, 2, q, OP_GET, NULL);
        slot_blocked(b, 2);
        slot_kill(b, 2);
        put_str(q, "kept");
        get_str(q, "kept");
        /* two putters on a full queue; one is killed; a get lets the other in */
        put_str(q, "full");
        slot_start(b, 3, q, OP_PUT, "p3");
        slot_start(b, 4, q, OP_PUT, "p4");
        slot_blocked(b, 3);
        slot_blocked(b, 4);
        slot_kill(b, 3 + dead);
        get_str(q, "full");
        cr_assert_eq(slot_end(b, 3 + live), 0, "round %d", round);
        get_str(q, live ? "p4" : "p3");
        size_t len;
        char buf[8];
        CHECK_RC_E(ps_mpqueue_get_nowait(q, buf, sizeof buf, &len), EAGAIN);
        /* four messages went through: done with them */
        for (int i = 0; i < 4; i++)
            CHECK_RC_E(ps_mpqueue_task_done(q), 0);
        CHECK_RC_E(ps_mpqueue_task_done(q), EOVERFLOW);
        /* a joiner killed; another joiner returns once the work is done */
        put_str(q, "work");
        slot_start(b, 5, q, OP_JOIN, NULL);
        slot_blocked(b, 5);
        slot_kill(b, 5);
        slot_start(b, 6, q, OP_JOIN, NULL);
        slot_blocked(b, 6);
        get_str(q, "work");
        CHECK_RC_E(ps_mpqueue_task_done(q), 0);
        cr_assert_eq(slot_end(b, 6), 0, "round %d", round);
    }
    ps_mpqueue_free(q);
    board_free(b);
}

/* ===================================================================== */
/* ---- signals never end a wait early ---- */

static void install_sigusr1_restart(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = sigusr1_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
}

typedef struct sig_call {
    ps_mpqueue_t *q;
    bool put;                           /* else get */
    double timeout;
    pid_t tid;
    atomic_int started, go, returned;
    int rc;
    bool errno_ok;
    double elapsed;
    int signals;                        /* handler runs during the call */
    size_t len;
    char buf[64];
} sig_call_t;

/* Waits for `go` (signals already landing), then makes the call. */
static void *sig_call_main(void *arg)
{
    sig_call_t *c = arg;
    c->tid = gettid();
    c->errno_ok = true;
    atomic_store(&c->started, 1);
    while (!atomic_load(&c->go))
        sched_yield();
    int before = sigusr1_count;
    double t0 = now();
    if (c->put)
        RECORD_RC_E(&c->rc, &c->errno_ok, ps_mpqueue_put(c->q, "p", 1, true, c->timeout));
    else
        RECORD_RC_E(&c->rc, &c->errno_ok,
                    ps_mpqueue_get(c->q, c->buf, sizeof c->buf, &c->len, true, c->timeout));
    c->elapsed = now() - t0;
    c->signals = sigusr1_count - before;
    atomic_store(&c->returned, 1);
    return NULL;
}

/* Starts the call's thread and a storm of SIGUSR1 at it (every 0.5 ms); lets the
 * thread make its call once the first signals have landed. */
static void sig_call_start(sig_call_t *c, pthread_t *t, fast_storm_t *storm, ps_mpqueue_t *q,
                           bool put, double timeout)
{
    memset(c, 0, sizeof *c);
    c->q = q;
    c->put = put;
    c->timeout = timeout;
    c->rc = -1;
    sigusr1_count = 0;
    cr_assert_eq(pthread_create(t, NULL, sig_call_main, c), 0);
    cr_assert(wait_count(&c->started, 1, 5.0));
    fast_storm_start(storm, *t, SIGUSR1, 0.0005);
    double end = now() + 5.0;
    while (sigusr1_count < 3 && now() < end)
        sleep_s(0.0005);
    atomic_store(&c->go, 1);
}

static void sig_call_finish(sig_call_t *c, pthread_t t, fast_storm_t *storm)
{
    cr_assert(wait_count(&c->returned, 1, 10.0));
    fast_storm_stop(storm);
    pthread_join(t, NULL);
    cr_assert(c->errno_ok, "the call changed errno");
}

/* A timed call on a queue where it must wait, under a storm: ETIMEDOUT, after
 * the whole timeout. Retried (a few times at most) until signals did land
 * during the call: on a loaded machine the storm thread may not run for a while. */
static void storm_timed(ps_mpqueue_t *q, bool put, double timeout)
{
    int signals = 0;
    for (int attempt = 0; attempt < 5 && signals == 0; attempt++) {
        sig_call_t c;
        pthread_t t;
        fast_storm_t storm;
        sig_call_start(&c, &t, &storm, q, put, timeout);
        sig_call_finish(&c, t, &storm);
        cr_assert_eq(c.rc, ETIMEDOUT, "%s: %s", put ? "put" : "get", ps_errname(c.rc));
        cr_assert_geq(c.elapsed, LOWER_BOUND(timeout), "%s returned after %.3f s of %.3f",
                      put ? "put" : "get", c.elapsed, timeout);
        signals = c.signals;
    }
    cr_assert_gt(signals, 0, "no signal landed during the wait");
}

/* An untimed get survives a storm (20 signals or more), then returns the message
 * put afterwards. */
static void storm_untimed_get(ps_mpqueue_t *q)
{
    sig_call_t c;
    pthread_t t;
    fast_storm_t storm;
    sig_call_start(&c, &t, &storm, q, false, PS_FOREVER);
    cr_assert(wait_task_state(getpid(), c.tid, 'S', 5.0));
    int from = sigusr1_count;
    double end = now() + 5.0;
    while (sigusr1_count - from < 20 && now() < end)
        sleep_s(0.001);
    cr_assert_geq(sigusr1_count - from, 20, "the storm did not reach the getter");
    cr_assert_eq(atomic_load(&c.returned), 0, "get returned %s during the storm",
                 ps_errname(c.rc));
    put_str(q, "late");
    sig_call_finish(&c, t, &storm);
    cr_assert_eq(c.rc, 0, "get: %s", ps_errname(c.rc));
    cr_assert(c.len == 4 && memcmp(c.buf, "late", 4) == 0);
}

Test(mpqueue, signal_storm_never_ends_a_wait_early)
{
    ps_mpqueue_t *q = new_queue(1, 256);
    for (int restart = 1; restart >= 0; restart--) {
        if (restart)
            install_sigusr1_restart();
        else
            install_sigusr1();
        storm_timed(q, false, 0.15);
        put_str(q, "full");
        storm_timed(q, true, 0.15);
        get_str(q, "full");
        storm_untimed_get(q);
    }
    ps_mpqueue_free(q);
}

/* ===================================================================== */
/* ---- free while waited on ---- */

Test(mpqueue, free_while_waited_on_is_ebusy)
{
    board_t *b = board_new();
    /* a getter in another process */
    ps_mpqueue_t *q = new_queue(1, 256);
    slot_start(b, 0, q, OP_GET, NULL);
    slot_blocked(b, 0);
    errno = 0;
    ps_mpqueue_free(q);
    cr_assert_eq(errno, EBUSY, "free of a waited-on queue: errno %s", ps_errname(errno));
    put_str(q, "still here");
    cr_assert_eq(slot_end(b, 0), 0);
    slot_is(b, 0, "still here");
    ps_mpqueue_free(q);

    /* a putter */
    q = new_queue(1, 256);
    put_str(q, "a");
    slot_start(b, 1, q, OP_PUT, "b");
    slot_blocked(b, 1);
    errno = 0;
    ps_mpqueue_free(q);
    cr_assert_eq(errno, EBUSY);
    get_str(q, "a");
    cr_assert_eq(slot_end(b, 1), 0);
    get_str(q, "b");
    ps_mpqueue_free(q);

    /* a joiner */
    q = new_queue(0, 256);
    put_str(q, "c");
    slot_start(b, 2, q, OP_JOIN, NULL);
    slot_blocked(b, 2);
    errno = 0;
    ps_mpqueue_free(q);
    cr_assert_eq(errno, EBUSY);
    get_str(q, "c");
    CHECK_RC_E(ps_mpqueue_task_done(q), 0);
    cr_assert_eq(slot_end(b, 2), 0);
    ps_mpqueue_free(q);
    board_free(b);
}

/* A waiter that was killed does not keep the queue (its death is a fact). */
Test(mpqueue, free_after_the_waiter_was_killed)
{
    board_t *b = board_new();
    ps_mpqueue_t *q = new_queue(0, 256);
    slot_start(b, 0, q, OP_GET, NULL);
    slot_blocked(b, 0);
    slot_kill(b, 0);
    errno = 0;
    ps_mpqueue_free(q);
    cr_assert_neq(errno, EBUSY, "a dead getter still keeps the queue");
    board_free(b);
}

/* ===================================================================== */
/* ---- manager queues ---- */

static int manager_child(void *arg)
{
    void **a = arg;
    ps_manager_t *m = a[0];
    ps_mpqueue_t *q = ps_manager_queue(m, "q", 0, 64);
    if (q != a[1])
        return 1;
    char buf[8];
    size_t len;
    for (int i = 0; i < 2; i++) {
        int rc = c_get(q, buf, sizeof buf, &len, true, 10.0);
        if (rc)
            return rc;
        if (len != 1 || buf[0] != 'a' + i)
            return 2;
    }
    return 0;
}

Test(mpqueue, manager_queue_find_or_create)
{
    ps_manager_t *m = new_manager(64 * 1024);
    ps_mpqueue_t *q = manager_queue(m, "q", 2, 1024);
    errno = 12345;
    cr_assert_eq(ps_manager_queue(m, "q", 10, 512), q);    /* found: arguments ignored */
    cr_assert_eq(errno, 12345, "a successful find changed errno");
    put_str(q, "a");
    put_str(q, "b");
    cr_assert(ps_mpqueue_full(q), "maxsize 2 was not kept");
    CHECK_RC_E(ps_mpqueue_put_nowait(q, "c", 1), EAGAIN);
    /* the same queue, found by name in a child */
    void *a[2] = { m, q };
    cr_assert_eq(child_wait(spawn(manager_child, a), 10.0), 0);
    cr_assert(ps_mpqueue_empty(q));

    /* another type under the name: EEXIST either way */
    cr_assert_not_null(ps_manager_lock(m, "l"));
    errno = 0;
    cr_assert_null(ps_manager_queue(m, "l", 0, 64));
    cr_assert_eq(errno, EEXIST);
    errno = 0;
    cr_assert_null(ps_manager_event(m, "q"));
    cr_assert_eq(errno, EEXIST);
    errno = 0;
    cr_assert_null(ps_manager_value(m, "q", 8));
    cr_assert_eq(errno, EEXIST);

    /* bad arguments */
    char long_name[80];
    memset(long_name, 'x', sizeof long_name);
    long_name[64] = '\0';
    const char *bad_names[] = { NULL, "", long_name };
    for (int i = 0; i < 3; i++) {
        errno = 0;
        cr_assert_null(ps_manager_queue(m, bad_names[i], 0, 64));
        cr_assert_eq(errno, EINVAL);
    }
    errno = 0;
    cr_assert_null(ps_manager_queue(NULL, "z", 0, 64));
    cr_assert_eq(errno, EINVAL);
    const size_t bad_caps[] = { 0, 7, ((size_t)1 << 31) + 8, SIZE_MAX };
    for (size_t i = 0; i < sizeof bad_caps / sizeof bad_caps[0]; i++) {
        errno = 0;
        cr_assert_null(ps_manager_queue(m, "z", 0, bad_caps[i]), "capacity %zu", bad_caps[i]);
        cr_assert_eq(errno, EINVAL, "capacity %zu: %s", bad_caps[i], ps_errname(errno));
    }
    /* larger than the segment */
    errno = 0;
    cr_assert_null(ps_manager_queue(m, "z", 0, 1 << 20));
    cr_assert_eq(errno, ENOMEM, "%s", ps_errname(errno));
    ps_manager_stats_t st;
    CHECK_RC_E(ps_manager_stats(m, &st), 0);
    cr_assert_eq(st.objects, 2);                        /* q and l */
    /* q still works */
    put_str(q, "x");
    get_str(q, "x");
    /* ps_mpqueue_free leaves a manager's queue alone */
    put_str(q, "y");
    ps_mpqueue_free(q);
    get_str(q, "y");
    cr_assert_eq(ps_manager_queue(m, "q", 0, 64), q);
    CHECK_RC_E(ps_manager_close(m), 0);
}

/* Creation arguments are used only at creation (API.md, Details): a find that
 * names a larger capacity than the queue was made with finds it all the same
 * (only ps_manager_value's size is checked against the existing object). */
Test(mpqueue, manager_queue_found_with_other_creation_arguments)
{
    ps_manager_t *m = new_manager(64 * 1024);
    ps_mpqueue_t *q = manager_queue(m, "q", 2, 1024);
    const size_t maxsizes[] = { 0, 2, 10 }, caps[] = { 8, 512, 1024, 1032, 4096, 1 << 20 };
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 6; j++) {
            errno = 12345;
            ps_mpqueue_t *found = ps_manager_queue(m, "q", maxsizes[i], caps[j]);
            cr_assert_eq(found, q, "ps_manager_queue(\"q\", %zu, %zu): %p, errno %s",
                         maxsizes[i], caps[j], (void *)found, ps_errname(errno));
            cr_assert_eq(errno, 12345);
        }
    CHECK_RC_E(ps_manager_close(m), 0);
}

/* A process that opens the segment by name finds the queues at other addresses
 * and talks with this one through them, blocking on both sides. */
static int reopen_child(void *arg)
{
    void **a = arg;
    ps_manager_t *m = a[0];
    ps_mpqueue_t *old_to = a[1];
    const char *name = a[2];
    ps_manager_close(m);
    /* keeps the old address taken, so the segment lands elsewhere */
    void *page = (void *)((uintptr_t)old_to & ~(uintptr_t)4095);
    if (mmap(page, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) !=
        page)
        return 7;
    ps_manager_t *again = ps_manager_open(name);
    if (!again)
        return 1;
    ps_mpqueue_t *to = ps_manager_queue(again, "to", 0, 1024);
    ps_mpqueue_t *from = ps_manager_queue(again, "from", 0, 1024);
    if (!to || !from)
        return 2;
    if (to == old_to)
        return 3;
    char buf[16];
    size_t len;
    int rc = c_get(to, buf, sizeof buf, &len, true, 10.0);
    if (rc)
        return rc;
    if (len != 4 || memcmp(buf, "ping", 4) != 0)
        return 4;
    if ((rc = c_put(from, "pong", 4, true, 10.0)))
        return rc;
    if ((rc = c_task_done(to)))         /* releases the parent's join */
        return rc;
    if ((rc = c_get(to, buf, sizeof buf, &len, true, PS_FOREVER)))  /* until "bye" */
        return rc;
    if (len != 3 || memcmp(buf, "bye", 3) != 0)
        return 6;
    return ps_manager_close(again);
}

Test(mpqueue, manager_queue_from_a_reopened_segment)
{
    const char *name = seg_name("reopen");
    ps_manager_t *m = ps_manager_new(name, 64 * 1024);
    cr_assert_not_null(m, "%s", ps_errname(errno));
    ps_mpqueue_t *to = manager_queue(m, "to", 0, 1024);
    ps_mpqueue_t *from = manager_queue(m, "from", 0, 1024);
    void *a[3] = { m, to, (void *)name };
    pid_t pid = spawn(reopen_child, a);
    put_str(to, "ping");
    char buf[16];
    size_t len = 0;
    int rc = ps_mpqueue_get(from, buf, sizeof buf, &len, true, 10.0);
    if (rc != 0) {
        int code = child_wait(pid, 1.0);
        cr_assert_fail("no pong: get %s; the child ended with %d", ps_errname(rc), code);
    }
    cr_assert(len == 4 && memcmp(buf, "pong", 4) == 0);
    CHECK_RC_E(ps_mpqueue_join(to), 0);         /* the child's task_done */
    cr_assert(wait_task_state(pid, pid, 'S', 5.0));
    put_str(to, "bye");
    cr_assert_eq(child_wait(pid, 10.0), 0);
    CHECK_RC_E(ps_manager_close(m), 0);
}

Test(mpqueue, manager_remove_waited_on_queue_is_ebusy)
{
    board_t *b = board_new();
    ps_manager_t *m = new_manager(0);
    ps_mpqueue_t *q = manager_queue(m, "q", 0, 256);
    slot_start(b, 0, q, OP_GET, NULL);
    slot_blocked(b, 0);
    CHECK_RC_E(ps_manager_remove(m, "q"), EBUSY);
    cr_assert_eq(ps_manager_queue(m, "q", 0, 256), q);
    put_str(q, "x");
    cr_assert_eq(slot_end(b, 0), 0);
    slot_is(b, 0, "x");
    CHECK_RC_E(ps_manager_remove(m, "q"), 0);
    CHECK_RC_E(ps_manager_remove(m, "q"), ENOENT);

    /* messages but no waiter: removable */
    q = manager_queue(m, "q2", 0, 256);
    put_str(q, "y");
    CHECK_RC_E(ps_manager_remove(m, "q2"), 0);

    /* a blocked putter keeps it too */
    q = manager_queue(m, "q3", 1, 256);
    put_str(q, "full");
    slot_start(b, 1, q, OP_PUT, "more");
    slot_blocked(b, 1);
    CHECK_RC_E(ps_manager_remove(m, "q3"), EBUSY);
    get_str(q, "full");
    cr_assert_eq(slot_end(b, 1), 0);
    get_str(q, "more");
    CHECK_RC_E(ps_manager_remove(m, "q3"), 0);

    /* a waiter that was killed does not */
    q = manager_queue(m, "q4", 0, 256);
    slot_start(b, 2, q, OP_GET, NULL);
    slot_blocked(b, 2);
    slot_kill(b, 2);
    CHECK_RC_E(ps_manager_remove(m, "q4"), 0);

    /* a new queue under the old name is a fresh one */
    q = manager_queue(m, "q", 0, 256);
    cr_assert(ps_mpqueue_empty(q));
    CHECK_RC_E(ps_mpqueue_task_done(q), EOVERFLOW);
    ps_manager_stats_t st;
    CHECK_RC_E(ps_manager_stats(m, &st), 0);
    cr_assert_eq(st.objects, 1);
    CHECK_RC_E(ps_manager_close(m), 0);
    board_free(b);
}

/* A put wakes one sleeping getter. If that one's buffer is too small it returns
 * ERANGE and leaves the message queued: the wake-up must go on to the next
 * sleeper, which otherwise sleeps until the 1 s backstop and here times out. */
struct erange_getter {
    ps_mpqueue_t *q;
    size_t cap;
    double timeout;
    int rc;
};

static void *erange_getter_main(void *arg)
{
    struct erange_getter *g = arg;
    char buf[64];
    size_t len;
    g->rc = ps_mpqueue_get(g->q, buf, g->cap, &len, true, g->timeout);
    return NULL;
}

Test(mpqueue, erange_passes_the_wake_up_on)
{
    ps_mpqueue_t *q = ps_mpqueue_new(0, 4096);
    cr_assert_not_null(q);
    struct erange_getter small = { q, 4, PS_FOREVER, -1 }, big = { q, 64, 0.5, -1 };
    pthread_t a, b;
    cr_assert_eq(pthread_create(&a, NULL, erange_getter_main, &small), 0);
    usleep(100000);                     /* the small one falls asleep first */
    cr_assert_eq(pthread_create(&b, NULL, erange_getter_main, &big), 0);
    usleep(100000);
    char msg[32] = "hello";
    cr_assert_eq(ps_mpqueue_put(q, msg, sizeof msg, true, PS_FOREVER), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    cr_expect_eq(small.rc, ERANGE);
    cr_expect_eq(big.rc, 0, "the big getter got %s", ps_errname(big.rc));
    ps_mpqueue_free(q);
}
