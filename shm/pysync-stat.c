/* SPDX-License-Identifier: MIT */
/* pysync-stat - what a named manager segment holds, who holds its locks, and
 * how full its queues and dicts are.
 *
 * usage: pysync-stat /segment...
 * Reads through a read-only mapping (segview, store.h): it never writes, never
 * takes the segment mutex and never repairs, so it works while the segment's
 * users hang, and what it prints may be changing as it reads.
 * Exit status: 0 if every segment is sound; 1 if one is not (EPROTO, with the
 * reason); 2 for other errors (missing, no permission, a bad name). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "dict.h"
#include "inside.h"
#include "mpqueue.h"
#include "pmutex.h"
#include "store.h"

static const struct { const char *name; size_t size; } types[OBJ_TYPE_END] = {
    [OBJ_LOCK] = { "lock", sizeof(ps_lock_t) },
    [OBJ_RLOCK] = { "rlock", sizeof(ps_rlock_t) },
    [OBJ_SEMAPHORE] = { "semaphore", sizeof(ps_semaphore_t) },
    [OBJ_EVENT] = { "event", sizeof(ps_event_t) },
    [OBJ_CONDITION] = { "condition", sizeof(ps_condition_t) },
    [OBJ_BARRIER] = { "barrier", sizeof(ps_barrier_t) },
    [OBJ_VALUE] = { "value", 1 },
    [OBJ_QUEUE] = { "queue", 1 },
    [OBJ_DICT] = { "dict", 1 },
};

/* The process of thread tid (/proc/TID/status): 0 if there is no such thread,
 * -1 if /proc does not say. */
static pid_t process_of(pid_t tid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)tid);
    FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? 0 : -1;
    int pid = -1;
    while (pid < 0 && fgets(line, sizeof line, f))
        if (sscanf(line, "Tgid: %d", &pid) != 1)
            pid = -1;
    fclose(f);
    return pid;
}

/* "free", or who holds a robust mutex. The kernel frees the mutex of a holder
 * that dies, leaving FUTEX_OWNER_DIED, so "dead" means a tid the kernel could
 * not clean up (or a tid of another pid namespace). */
static void print_mutex(const pthread_mutex_t *m)
{
    unsigned word = __atomic_load_n((const unsigned *)&m->__data.__lock, __ATOMIC_RELAXED);
    pid_t tid = pmutex_owner(m);
    if (!tid) {
        printf(word & 0x40000000u ? "free (its last holder died)" : "free");
        return;
    }
    pid_t pid = process_of(tid);
    bool alive = pid > 0 ? caller_alive((unsigned long long)pid << 32 | (unsigned)tid)
                         : pid < 0 && (kill(tid, 0) == 0 || errno == EPERM);
    if (pid > 0 && pid != tid)
        printf("held by pid %d tid %d", (int)pid, (int)tid);
    else
        printf("held by %s %d", pid > 0 ? "pid" : "tid", (int)tid);
    printf(" (%s)", alive ? "alive" : "dead");
}

/* Names are bytes: anything but printable ASCII is escaped, so one object is
 * one line with no blanks in its name, whatever the segment holds. */
static void print_name(FILE *f, const char *name, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        fprintf(f, c > ' ' && c < 0x7f && c != '\\' ? "%c" : "\\x%02x", c);
    }
}

/* The bytes an object of this type has at least: a queue's and a dict's
 * header sizes are known at run time only. */
static size_t min_size(enum obj_type type)
{
    switch (type) {
    case OBJ_QUEUE: return mpqueue_header_size();
    case OBJ_DICT:  return dict_header_size();
    default:        return types[type].size;
    }
}

/* "pysync-stat: /seg: type name " on stderr, for a complaint about an object. */
static void complain(const char *seg, const struct segview_object *o)
{
    fprintf(stderr, "pysync-stat: %s: %s ", seg, types[o->type].name);
    print_name(stderr, o->name, o->name_len);
    fputc(' ', stderr);
}

/* A queue's or dict's state, read without its locks. 0, or 1 (with the reason
 * on stderr) for one whose header does not hold up. */
static int peek_object(const char *seg, const struct segview_object *o, struct mpqueue_peek *q,
                       size_t *dict_len, size_t *dict_bytes)
{
    int err = 0;
    if (o->type == OBJ_QUEUE)
        err = mpqueue_peek(o->obj, o->size, q);
    else if (o->type == OBJ_DICT)
        err = dict_peek(o->obj, dict_len, dict_bytes);
    if (!err)
        return 0;
    complain(seg, o);
    fprintf(stderr, "is not a sound %s\n", types[o->type].name);
    return 1;
}

/* One line: type, name, state. 0, or 1 for an object too small for its type
 * or (a queue, a dict) whose header does not hold up. */
static int print_object(const char *seg, const struct segview_object *o)
{
    const char *type = types[o->type].name;
    if (o->size < min_size(o->type)) {
        complain(seg, o);
        fprintf(stderr, "is too small (%zu bytes)\n", o->size);
        return 1;
    }
    struct mpqueue_peek q = { 0 };
    size_t dict_len = 0, dict_bytes = 0;
    if (peek_object(seg, o, &q, &dict_len, &dict_bytes))
        return 1;
    printf("%s ", type);
    print_name(stdout, o->name, o->name_len);
    putchar(' ');
    const struct ps__inside *in = NULL;
    switch (o->type) {
    case OBJ_LOCK: {
        const ps_lock_t *l = o->obj;
        print_mutex(&l->_u.mutex);
        in = &l->_inside;
        break;
    }
    case OBJ_RLOCK: {
        const ps_rlock_t *r = o->obj;
        print_mutex(&r->_u.mutex);
        if (pmutex_owner(&r->_u.mutex))
            printf(", depth %u", r->_depth);
        in = &r->_inside;
        break;
    }
    case OBJ_SEMAPHORE: {
        const ps_semaphore_t *s = o->obj;
        printf("value %u", (unsigned)(__atomic_load_n(&s->_word, __ATOMIC_RELAXED) & 0xffffffffu));
        in = &s->_inside;
        break;
    }
    case OBJ_EVENT: {
        const ps_event_t *e = o->obj;
        printf(__atomic_load_n(&e->_state, __ATOMIC_RELAXED) & 1 ? "set" : "clear");
        in = &e->_inside;
        break;
    }
    case OBJ_CONDITION: {
        const ps_condition_t *c = o->obj;
        unsigned waiting = 0;
        for (int i = 0; i < PS_CONDITION_SHARED_WAITERS; i++)
            waiting += __atomic_load_n(&c->_slots[i].state, __ATOMIC_RELAXED) != 0;
        printf("lock ");
        print_mutex(&c->_own._u.mutex);     /* a manager's condition has its own */
        printf(", waiting %u", waiting);
        in = &c->_own._inside;
        break;
    }
    case OBJ_BARRIER: {
        const ps_barrier_t *b = o->obj;
        printf("parties %u, waiting %u%s", b->_parties, b->_count, b->_broken ? ", broken" : "");
        in = &b->_inside;
        break;
    }
    case OBJ_QUEUE:
        printf("depth %zu, bytes %zu/%zu, maxsize %zu, getters %zu, putters %zu, unfinished %zu%s",
               q.depth, q.bytes_used, q.capacity, q.maxsize, q.getters, q.putters, q.unfinished,
               q.shut_down ? ", shut down" : "");
        break;
    case OBJ_DICT:
        printf("len %zu, bytes %zu", dict_len, dict_bytes);
        break;
    default:
        printf("%zu bytes", o->size);
    }
    unsigned inside = in ? inside_count(in) : 0;
    if (inside)
        printf(", waiters %u", inside);
    putchar('\n');
    return 0;
}

static int stat_one(const char *name)
{
    struct segview *v;
    const char *why;
    int err = segview_open(name, &v, &why);
    if (err) {
        fprintf(stderr, "pysync-stat: %s: %s\n", name, why ? why
                : err == ENOENT ? "no such segment" : strerror(err));
        return err == EPROTO ? 1 : 2;
    }
    int rc = 0;
    ps_manager_stats_t st;
    if (segview_stats(v, &st, &why)) {
        fprintf(stderr, "pysync-stat: %s: %s\n", name, why);
        rc = 1;
    } else {
        printf("%s: %zu bytes, heap %zu, free %zu in %zu blocks (largest %zu)\n", name, st.size,
               st.heap_bytes, st.free_bytes, st.free_blocks, st.largest_free);
        printf("%s: %zu objects, %zu name slots, %zu tombstones, %zu repairs of dead callers\n",
               name, st.objects, st.name_slots, st.tombstones, st.repairs);
    }
    struct segview_object o;
    size_t slot = 0;
    while ((err = segview_next(v, &slot, &o)) != ENOENT) {
        if (err) {
            fprintf(stderr, "pysync-stat: %s: name slot %zu is corrupt\n", name, slot - 1);
            rc = 1;
        } else if (print_object(name, &o)) {
            rc = 1;
        }
    }
    segview_close(v);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: pysync-stat /segment...\n");
        return 2;
    }
    int worst = 0;
    for (int i = 1; i < argc; i++) {
        int rc = stat_one(argv[i]);
        if (rc > worst)
            worst = rc;
    }
    return worst;
}
