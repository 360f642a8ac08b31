/* SPDX-License-Identifier: MIT */
/* Where a manager keeps its named objects: the one interface manager.c uses,
 * so that another store (a server, say) can stand behind the same public API.
 * The segment store (segstore.c) keeps them in a shared-memory segment. */
#ifndef PS_SHM_STORE_H
#define PS_SHM_STORE_H

#include <pysync/multiprocessing.h>
#include <stdbool.h>
#include <stddef.h>

/* Stored in segments: never renumber, only append. */
enum obj_type {
    OBJ_LOCK = 1, OBJ_RLOCK, OBJ_SEMAPHORE, OBJ_EVENT, OBJ_CONDITION, OBJ_BARRIER,
    OBJ_VALUE, OBJ_QUEUE, OBJ_DICT,
    OBJ_TYPE_END
};

/* What to make if the name is not there yet. */
struct obj_request {
    enum obj_type type;
    size_t size;                                /* bytes of the object */
    int (*init)(void *obj, const void *arg);    /* on zeroed bytes; 0 or an error */
    const void *arg;
    /* NULL, or: does an object found under the name (size bytes) fit in them? */
    bool (*sound)(const void *obj, size_t size);
};

/* How to take an object down: destroy answers 0 or EBUSY (then it changed
 * nothing), and changes at most the first touched(type) bytes of the object. */
struct obj_remover {
    int (*destroy)(void *obj, enum obj_type type);
    size_t (*touched)(enum obj_type type);
};

struct store;
struct store_ops {
    /* Finds the object named name (1..63 bytes, checked by the caller), or makes
     * it from rq; atomic against every other call from any process.
     * 0 and *obj; EEXIST (another type), EINVAL (smaller than rq->size),
     * ENOMEM (full: nothing changed), EPROTO (a corrupt store), init's error. */
    int  (*get)(struct store *st, const char *name, const struct obj_request *rq, void **obj);
    /* 0, ENOENT, EBUSY (destroy's answer), EPROTO. */
    int  (*remove)(struct store *st, const char *name, const struct obj_remover *r);
    /* Counts, checked against each other: EPROTO if they disagree. */
    int  (*stats)(struct store *st, ps_manager_stats_t *out);
    void (*close)(struct store *st);            /* the objects live on */
};

struct store {
    const struct store_ops *ops;
};

/* The segment store. name NULL: anonymous, shared with children forked later. */
int segstore_create(const char *name, size_t size, struct store **out);
int segstore_open(const char *name, struct store **out);
int segstore_unlink(const char *name);

/* A read-only view of a named segment, for pysync-stat: mapped PROT_READ and
 * checked as segstore_open checks it. It never writes, never takes the mutex
 * and never repairs, so the segment may change while it is read (every offset
 * read is still checked). *why: what is wrong, for EPROTO and EINVAL. */
struct segview;
struct segview_object {
    enum obj_type type;
    char name[PS_MANAGER_NAME_MAX + 1];         /* name_len bytes, then NUL */
    size_t name_len;
    const void *obj;                            /* size bytes inside the mapping */
    size_t size;
};
int  segview_open(const char *name, struct segview **out, const char **why);
/* As stats; counts that disagree are read again a few times before EPROTO. */
int  segview_stats(struct segview *v, ps_manager_stats_t *out, const char **why);
/* The next named object from name slot *slot on (0 at first): 0, ENOENT after
 * the last one, or EPROTO for a corrupt slot (*slot is then past it too). */
int  segview_next(struct segview *v, size_t *slot, struct segview_object *o);
void segview_close(struct segview *v);

#endif
