/* SPDX-License-Identifier: MIT */
/* Making, checking and mapping manager segments.
 *
 * A segment opened by name may come from anyone who can write the file, so
 * open trusts nothing in it: it maps the file read-only, checks the header
 * (magic, version, sizes against the file's real size, the geometry, the
 * mutex, the undo log) and only then makes the mapping writable. A rejected
 * file is neither written nor resized. */
#include "segment.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pmutex.h"
#include "registry.h"
#include "undo.h"

#define TABLE_MIN_SLOTS 16u
#define TABLE_MAX_SLOTS (1u << 16)
#define BYTES_PER_SLOT  1024u       /* one name slot per KiB of segment */

static uint64_t round_up(uint64_t n, uint64_t to) { return (n + to - 1) / to * to; }
static bool is_pow2(uint64_t n) { return n && !(n & (n - 1)); }

/* shm_open rules: one leading '/', no other, not empty, at most NAME_MAX. */
bool segment_name_ok(const char *name)
{
    if (!name || name[0] != '/')
        return false;
    size_t len = strnlen(name, NAME_MAX + 1);
    return len >= 2 && len <= NAME_MAX && !strchr(name + 1, '/');
}

/* ---- making ---- */

static struct geometry geometry_for(uint64_t size)
{
    struct geometry g = { .size = size };
    uint64_t slots = TABLE_MIN_SLOTS;
    while (slots < TABLE_MAX_SLOTS && slots * 2 * BYTES_PER_SLOT <= size)
        slots *= 2;
    g.table_off = round_up(sizeof(struct seg_header), 64);
    g.table_slots = slots;
    g.heap_off = round_up(g.table_off + slots * sizeof(struct name_entry), 64);
    g.heap_end = size / SEG_ALIGN * SEG_ALIGN;
    return g;
}

/* Fresh zeroed memory: nobody else can see it until the magic is stored. */
static int format(struct segment *s)
{
    struct seg_header *h = seg_header(s);
    int err = pmutex_init(&h->m.mutex, true);
    if (err)
        return err;
    h->version = SEG_VERSION;
    h->header_size = sizeof *h;
    h->size = s->g.size;
    h->table_off = s->g.table_off;
    h->table_slots = s->g.table_slots;
    h->heap_off = s->g.heap_off;
    h->heap_end = s->g.heap_end;
    struct block *all = seg_at(s, s->g.heap_off);
    all->size = s->g.heap_end - s->g.heap_off;
    all->next = 0;
    h->free_head = s->g.heap_off;
    h->free_bytes = all->size;
    __atomic_store_n(&h->magic, SEG_MAGIC, __ATOMIC_RELEASE);  /* last: now it is one */
    return 0;
}

static int map_new(const char *name, uint64_t size, void **base)
{
    if (!name) {
        *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        return *base == MAP_FAILED ? errno : 0;
    }
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno;
    int err = ftruncate(fd, (off_t)size) ? errno : 0;
    if (!err) {
        *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        err = *base == MAP_FAILED ? errno : 0;
    }
    close(fd);
    if (err)
        shm_unlink(name);
    return err;
}

int segment_create(struct segment *s, const char *name, size_t size)
{
    if (name && !segment_name_ok(name))
        return EINVAL;
    if (size == 0)
        size = SEG_DEFAULT_SIZE;
    if (size < SEG_MIN_SIZE || size > (size_t)1 << 46)
        return EINVAL;
    uint64_t bytes = round_up(size, (uint64_t)sysconf(_SC_PAGESIZE));
    void *base;
    int err = map_new(name, bytes, &base);
    if (err)
        return err == EMFILE || err == ENFILE || err == ENOSPC ? ENOMEM : err;
    s->base = base;
    s->g = geometry_for(bytes);
    err = format(s);
    if (!err)
        err = seg_registry_add(s);      /* so that a dict pointer leads back to s */
    if (err) {
        munmap(base, bytes);
        if (name)
            shm_unlink(name);
    }
    return err;
}

/* ---- checking ---- */

static bool geometry_ok(const struct geometry *g)
{
    uint64_t table_bytes = g->table_slots * sizeof(struct name_entry);
    return g->table_off >= sizeof(struct seg_header) && g->table_off % 8 == 0 &&
           is_pow2(g->table_slots) && g->table_slots <= TABLE_MAX_SLOTS &&
           g->heap_off >= g->table_off + table_bytes && g->heap_off % SEG_ALIGN == 0 &&
           g->heap_end <= g->size && g->heap_end % SEG_ALIGN == 0 &&
           g->heap_end > g->heap_off && g->heap_end - g->heap_off >= BLOCK_MIN;
}

/* The mutex must be of our kind, and if it looks held, by a thread that exists
 * (or one the kernel marked dead): a made-up owner would block us forever. */
static bool mutex_ok(const pthread_mutex_t *m)
{
    pthread_mutex_t model;
    if (pmutex_init(&model, true))
        return false;
    bool same_kind = m->__data.__kind == model.__data.__kind;
    pthread_mutex_destroy(&model);
    unsigned word = __atomic_load_n((const unsigned *)&m->__data.__lock, __ATOMIC_RELAXED);
    pid_t tid = (pid_t)(word & 0x3fffffffu);         /* FUTEX_TID_MASK */
    bool owner_dead = word & 0x40000000u;             /* FUTEX_OWNER_DIED */
    bool owner_ok = tid == 0 || owner_dead || kill(tid, 0) == 0 || errno == EPERM;
    return same_kind && owner_ok;
}

static bool log_ok(const struct geometry *g, const struct undo_log *log)
{
    uint64_t n = __atomic_load_n(&log->count, __ATOMIC_ACQUIRE);
    if (n > UNDO_MAX)
        return false;
    for (uint64_t i = 0; i < n; i++)
        if (!undo_target_ok(g, log->e[i].off))
            return false;
    return true;
}

/* h is mapped read-only and file_size bytes long (>= sizeof *h). NULL if it
 * is sound, else why not. */
static const char *header_problem(const struct seg_header *h, uint64_t file_size,
                                  struct geometry *g)
{
    if (h->magic != SEG_MAGIC)
        return "not a pysync segment (bad magic)";
    if (h->version != SEG_VERSION || h->header_size != sizeof *h)
        return "a pysync segment of another version";
    if (h->size != file_size)
        return "its size field is not the file's size (truncated?)";
    *g = (struct geometry){ h->size, h->table_off, h->table_slots, h->heap_off, h->heap_end };
    if (!geometry_ok(g))
        return "its name table and heap bounds are not sound";
    if (!mutex_ok(&h->m.mutex))
        return "its mutex is not one of ours, or names a thread that never existed";
    if (!log_ok(g, &h->undo))
        return "its undo log is garbage";
    return NULL;
}

static int map_checked(int fd, struct segment *s, bool writable, const char **why)
{
    struct stat st;
    if (fstat(fd, &st))
        return errno;
    if (st.st_size < (off_t)sizeof(struct seg_header) || (uint64_t)st.st_size > (uint64_t)1 << 46) {
        *why = "too small or too large to be a pysync segment";
        return EPROTO;
    }
    size_t size = (size_t)st.st_size;
    void *base = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        return errno;
    if ((*why = header_problem(base, size, &s->g))) {
        munmap(base, size);
        return EPROTO;
    }
    if (writable && mprotect(base, size, PROT_READ | PROT_WRITE)) {
        int err = errno;
        munmap(base, size);
        return err;
    }
    s->base = base;
    return 0;
}

int segment_open(struct segment *s, const char *name)
{
    if (!segment_name_ok(name))
        return EINVAL;
    int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    const char *why;
    int err = map_checked(fd, s, true, &why);
    close(fd);
    if (!err && (err = seg_registry_add(s)) != 0) {
        munmap(s->base, s->g.size);
        s->base = NULL;
    }
    return err;
}

int segment_open_readonly(struct segment *s, const char *name, const char **why)
{
    if (!segment_name_ok(name)) {
        *why = "not a segment name (\"/name\")";
        return EINVAL;
    }
    int fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    int err = map_checked(fd, s, false, why);
    close(fd);
    return err;
}

void segment_unmap(struct segment *s)
{
    seg_registry_remove(s);             /* a read-only mapping is not there: no-op */
    munmap(s->base, s->g.size);
    s->base = NULL;
}

int segment_unlink(const char *name)
{
    if (!segment_name_ok(name))
        return EINVAL;
    return shm_unlink(name) ? errno : 0;
}

/* ---- the mutex ---- */

int segment_lock(struct segment *s)
{
    pthread_mutex_t *m = &seg_header(s)->m.mutex;
    int err = pthread_mutex_lock(m);
    if (err != 0 && err != EOWNERDEAD)
        return EPROTO;              /* EINVAL, ENOTRECOVERABLE: not a mutex of ours */
    if (err == EOWNERDEAD)
        pthread_mutex_consistent(m);
    /* Without a death the log is empty (every call commits or discards before
     * it unlocks), so this replays only what a dead holder left. */
    if (undo_rollback(s)) {
        pthread_mutex_unlock(m);
        return EPROTO;
    }
    if (err == EOWNERDEAD)
        seg_header(s)->repairs++;   /* statistics only: lost if we die here */
    return 0;
}

void segment_unlock(struct segment *s)
{
    pthread_mutex_unlock(&seg_header(s)->m.mutex);
}
