/* SPDX-License-Identifier: MIT */
/* The public ps_manager_* API: argument checks, the table of object types, and
 * errno. Where the objects live is the store's business (store.h). */
#include <errno.h>
#include <pysync/multiprocessing.h>
#include <stdlib.h>
#include <string.h>

#include "dict.h"
#include "mpqueue.h"
#include "store.h"

struct ps_manager {
    struct store *store;
};

/* ---- the object types ---- */

static int init_lock(void *o, const void *arg) { (void)arg; return ps_lock_init(o, PS_SHARED); }
static int init_rlock(void *o, const void *arg) { (void)arg; return ps_rlock_init(o, PS_SHARED); }
static int init_event(void *o, const void *arg) { (void)arg; return ps_event_init(o, PS_SHARED); }
static int init_value(void *o, const void *arg) { (void)o, (void)arg; return 0; }   /* zeroed */

static int init_semaphore(void *o, const void *arg)
{
    return ps_semaphore_init(o, *(const int *)arg, PS_SHARED);
}

static int init_condition(void *o, const void *arg)
{
    (void)arg;
    return ps_condition_init(o, NULL, PS_SHARED);       /* its own RLock, inside it */
}

static int init_barrier(void *o, const void *arg)
{
    return ps_barrier_init(o, *(const unsigned *)arg, NULL, NULL, PS_FOREVER, PS_SHARED);
}

struct queue_args {
    size_t maxsize, capacity;
};

static int init_queue(void *o, const void *arg)
{
    const struct queue_args *a = arg;
    return mpqueue_init_at(o, a->maxsize, a->capacity);
}

static int init_dict(void *o, const void *arg) { (void)arg; return dict_init_at(o); }

static int destroy_object(void *o, enum obj_type type)
{
    switch (type) {
    case OBJ_LOCK:      return ps_lock_destroy(o);
    case OBJ_RLOCK:     return ps_rlock_destroy(o);
    case OBJ_SEMAPHORE: return ps_semaphore_destroy(o);
    case OBJ_EVENT:     return ps_event_destroy(o);
    case OBJ_CONDITION: return ps_condition_destroy(o);
    case OBJ_BARRIER:   return ps_barrier_destroy(o);
    case OBJ_QUEUE:     return mpqueue_destroy_at(o);
    case OBJ_DICT:      return dict_destroy_at(o);
    default:            return 0;   /* a Value holds no state of its own */
    }
}

/* The bytes destroy may change: the store saves them, to undo a remove killed
 * after destroy. */
static size_t destroy_touches(enum obj_type type)
{
    switch (type) {
    case OBJ_LOCK:      return sizeof(ps_lock_t);
    case OBJ_RLOCK:     return sizeof(ps_rlock_t);
    case OBJ_SEMAPHORE: return sizeof(ps_semaphore_t);
    case OBJ_EVENT:     return sizeof(ps_event_t);
    case OBJ_CONDITION: return sizeof(ps_condition_t);
    case OBJ_BARRIER:   return sizeof(ps_barrier_t);
    case OBJ_QUEUE:     return mpqueue_header_size();
    case OBJ_DICT:      return dict_header_size();
    default:            return 0;
    }
}

static const struct obj_remover remover = { destroy_object, destroy_touches };

/* Objects whose own header says how big they are: checked when found. */
static bool (*sound_checker(enum obj_type type))(const void *, size_t)
{
    return type == OBJ_QUEUE ? mpqueue_sound : NULL;
}

/* ---- helpers ---- */

static bool object_name_ok(const char *name)
{
    if (!name)
        return false;
    size_t len = strnlen(name, PS_MANAGER_NAME_MAX + 1);
    return len >= 1 && len <= PS_MANAGER_NAME_MAX;
}

/* The common body of the find-or-create calls. errno changes only on failure. */
static void *get(ps_manager_t *m, const char *name, enum obj_type type, size_t size,
                 int (*init)(void *, const void *), const void *arg)
{
    if (!m || !object_name_ok(name)) {
        errno = EINVAL;
        return NULL;
    }
    struct obj_request rq = { type, size, init, arg, sound_checker(type) };
    void *obj = NULL;
    int err = m->store->ops->get(m->store, name, &rq, &obj);
    if (err) {
        errno = err;
        return NULL;
    }
    return obj;
}

static ps_manager_t *wrap(int err, struct store *st)
{
    ps_manager_t *m = err ? NULL : malloc(sizeof *m);
    if (!err && !m) {
        st->ops->close(st);
        err = ENOMEM;
    }
    if (err) {
        errno = err;
        return NULL;
    }
    m->store = st;
    return m;
}

/* ---- public API ---- */

ps_manager_t *ps_manager_new(const char *name, size_t size)
{
    int saved = errno;
    struct store *st = NULL;
    int err = segstore_create(name, size, &st);
    errno = saved;
    return wrap(err, st);
}

ps_manager_t *ps_manager_open(const char *name)
{
    int saved = errno;
    struct store *st = NULL;
    int err = segstore_open(name, &st);
    errno = saved;
    return wrap(err, st);
}

int ps_manager_close(ps_manager_t *m)
{
    if (!m)
        return EINVAL;
    int saved = errno;
    m->store->ops->close(m->store);
    free(m);
    errno = saved;
    return 0;
}

int ps_manager_unlink(const char *name)
{
    int saved = errno;
    int err = segstore_unlink(name);
    errno = saved;
    return err;
}

ps_lock_t *ps_manager_lock(ps_manager_t *m, const char *name)
{
    return get(m, name, OBJ_LOCK, sizeof(ps_lock_t), init_lock, NULL);
}

ps_rlock_t *ps_manager_rlock(ps_manager_t *m, const char *name)
{
    return get(m, name, OBJ_RLOCK, sizeof(ps_rlock_t), init_rlock, NULL);
}

ps_semaphore_t *ps_manager_semaphore(ps_manager_t *m, const char *name, int value)
{
    if (value < 0) {
        errno = EINVAL;
        return NULL;
    }
    return get(m, name, OBJ_SEMAPHORE, sizeof(ps_semaphore_t), init_semaphore, &value);
}

ps_event_t *ps_manager_event(ps_manager_t *m, const char *name)
{
    return get(m, name, OBJ_EVENT, sizeof(ps_event_t), init_event, NULL);
}

ps_condition_t *ps_manager_condition(ps_manager_t *m, const char *name)
{
    return get(m, name, OBJ_CONDITION, sizeof(ps_condition_t), init_condition, NULL);
}

ps_barrier_t *ps_manager_barrier(ps_manager_t *m, const char *name, unsigned parties)
{
    if (parties == 0) {
        errno = EINVAL;
        return NULL;
    }
    return get(m, name, OBJ_BARRIER, sizeof(ps_barrier_t), init_barrier, &parties);
}

ps_mpqueue_t *ps_manager_queue(ps_manager_t *m, const char *name, size_t maxsize,
                               size_t capacity_bytes)
{
    if (!mpqueue_capacity_ok(capacity_bytes)) {
        errno = EINVAL;
        return NULL;
    }
    struct queue_args a = { maxsize, capacity_bytes };
    return get(m, name, OBJ_QUEUE, mpqueue_object_size(capacity_bytes), init_queue, &a);
}

ps_dict_t *ps_manager_dict(ps_manager_t *m, const char *name)
{
    return get(m, name, OBJ_DICT, dict_header_size(), init_dict, NULL);
}

void *ps_manager_value(ps_manager_t *m, const char *name, size_t size)
{
    if (size == 0) {
        errno = EINVAL;
        return NULL;
    }
    return get(m, name, OBJ_VALUE, size, init_value, NULL);
}

int ps_manager_remove(ps_manager_t *m, const char *name)
{
    if (!m || !object_name_ok(name))
        return EINVAL;
    int saved = errno;
    int err = m->store->ops->remove(m->store, name, &remover);
    errno = saved;
    return err;
}

int ps_manager_stats(ps_manager_t *m, ps_manager_stats_t *stats)
{
    if (!m || !stats)
        return EINVAL;
    int saved = errno;
    int err = m->store->ops->stats(m->store, stats);
    errno = saved;
    return err;
}
