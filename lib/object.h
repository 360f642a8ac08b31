/* SPDX-License-Identifier: MIT */
/* Storage for ps_xxx_new objects: malloc for private ones, a MAP_SHARED anonymous
 * mapping for PS_SHARED ones, so that children forked later share them. */
#ifndef PS_OBJECT_H
#define PS_OBJECT_H

#include <stddef.h>

void *object_alloc(size_t size, int flags);      /* zeroed; NULL + errno */
void  object_free(void *obj, size_t size, int flags);

/* The common body of ps_xxx_new: allocate, run init, hand errors to errno. */
#define OBJECT_NEW(type, flags, init_call)                         \
    do {                                                           \
        type *obj_ = object_alloc(sizeof(type), (flags));          \
        if (!obj_)                                                 \
            return NULL;                                           \
        int err_ = init_call;                                      \
        if (err_) {                                                \
            object_free(obj_, sizeof(type), (flags));              \
            errno = err_;                                          \
            return NULL;                                           \
        }                                                          \
        return obj_;                                               \
    } while (0)

/* The common body of ps_xxx_free: a NULL object is a no-op; one that destroy
 * finds busy is left alone with errno EBUSY (free returns nothing), as the
 * queue has always done; otherwise errno is untouched. */
#define OBJECT_FREE(obj, destroy_call)                             \
    do {                                                           \
        if (!(obj))                                                \
            return;                                                \
        int flags_ = (obj)->_flags, err_ = destroy_call;           \
        if (err_)                                                  \
            errno = err_;                                          \
        else                                                       \
            object_free((obj), sizeof *(obj), flags_);             \
    } while (0)

#endif
