/*
 * shm: creation of the shared room segment and the presence table in it.
 *
 * The master creates the segment before forking (so every worker maps it at
 * the same address). It is a memfd whose fd is closed once mapped: there is
 * no name to unlink, to squat or to leave behind, and the memory goes away
 * with the last process that maps it. Presence counts live in one int32 per
 * (room, worker slot), changed with atomic adds, so a member can leave
 * without the lock and the master can wipe a dead worker's column.
 * Claiming or recycling a room entry needs the publish lock; an entry is
 * only recycled once every slot's count for it is zero.
 */
#include "shm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#define RING_MIN_BYTES 4096u
#define LABEL_MAX      249u     /* memfd_create's limit: NAME_MAX - "memfd:" */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/*
 * A memfd is not bounded by the size of /dev/shm, so fallocate() would take
 * pages until the OOM killer picked some process. Refuse a size that RAM
 * and swap together can never hold (the kernel's own overcommit guess for
 * an mmap); below that, fallocate() reports what is really missing.
 */
static int fits_in_memory(size_t total)
{
    struct sysinfo si;
    if (sysinfo(&si) != 0)
        return 1;
    unsigned long long unit = si.mem_unit != 0 ? si.mem_unit : 1;
    return total / unit <= (unsigned long long)si.totalram + si.totalswap;
}

/* Size FD to TOTAL bytes, allocate every page and map it shared; NULL on failure. */
static void *map_backed(int fd, size_t total, const char *label,
                        char *err, size_t errlen)
{
    if (ftruncate(fd, (off_t)total) != 0) {
        set_err(err, errlen, "shm \"%s\" of %zu bytes: ftruncate() failed: %s",
                label, total, strerror(errno));
        return NULL;
    }
    /*
     * Allocate the pages now: memory that is not there fails the start
     * with a message instead of a SIGBUS in a worker later.
     */
    int rc = posix_fallocate(fd, 0, (off_t)total);
    if (rc != 0) {
        set_err(err, errlen, "shm \"%s\" of %zu bytes: posix_fallocate() failed: %s",
                label, total, strerror(rc));
        errno = rc;     /* posix_fallocate() returns the error instead */
        return NULL;
    }
    void *mem = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED) {
        set_err(err, errlen, "shm \"%s\" of %zu bytes: mmap() failed: %s",
                label, total, strerror(errno));
        return NULL;
    }
    return mem;
}

struct shm_segment *shm_create(const char *label, uint64_t ring_bytes,
                               char *err, size_t errlen)
{
    size_t ring_off = offsetof(struct shm_segment, ring);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (ring_bytes < RING_MIN_BYTES ||
        ring_bytes > SIZE_MAX / 2 - ring_off - sizeof(struct ring) - page) {
        set_err(err, errlen, "shm ring size %llu out of range",
                (unsigned long long)ring_bytes);
        errno = EINVAL;
        return NULL;
    }
    size_t total = ring_off + sizeof(struct ring) + (size_t)ring_bytes;
    total = (total + page - 1) / page * page;

    char name[LABEL_MAX + 1];
    snprintf(name, sizeof name, "%s", label != NULL ? label : "wschat");
    if (!fits_in_memory(total)) {
        set_err(err, errlen, "shm \"%s\" of %zu bytes: more than this machine's "
                "RAM and swap together", name, total);
        errno = ENOMEM;
        return NULL;
    }
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0) {
        set_err(err, errlen, "memfd_create(\"%s\") failed: %s", name, strerror(errno));
        return NULL;
    }
    void *mem = map_backed(fd, total, name, err, errlen);
    int e = errno;
    close(fd);      /* the mapping holds the memory; the fd has no other use */
    if (mem == NULL) {
        errno = e;
        return NULL;
    }

    struct shm_segment *seg = mem;
    /* A fresh memfd reads as zeros; clear the control part explicitly. */
    memset(seg, 0, ring_off + sizeof(struct ring));
    seg->magic = SHM_MAGIC;
    seg->version = SHM_VERSION;
    seg->nslots = SHM_MAX_SLOTS;
    seg->total_size = total;
    seg->master_pid = (int32_t)getpid();
    int lrc = lock_init(&seg->lock);
    if (lrc < 0) {
        set_err(err, errlen, "shm \"%s\": pthread_mutex_init() failed: %s",
                name, strerror(-lrc));
        munmap(mem, total);
        errno = -lrc;
        return NULL;
    }
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
        seed = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull ^ (uint64_t)time(NULL);
    ip_limit_init(&seg->ips, seed);
    lrc = lock_init(&seg->ip_lock);
    if (lrc < 0) {
        set_err(err, errlen, "shm \"%s\": pthread_mutex_init() failed: %s",
                name, strerror(-lrc));
        lock_fini(&seg->lock);
        munmap(mem, total);
        errno = -lrc;
        return NULL;
    }
    if (ring_init(&seg->ring, total - ring_off) == NULL) {
        e = errno;
        set_err(err, errlen, "shm \"%s\": ring_init() failed: %s", name, strerror(e));
        lock_fini(&seg->lock);
        munmap(mem, total);
        errno = e;
        return NULL;
    }
    return seg;
}

void shm_destroy(struct shm_segment *seg)
{
    if (seg != NULL)
        munmap(seg, (size_t)seg->total_size);
}

static int room_sum(const struct shm_room *room, uint32_t nslots)
{
    int sum = 0;
    for (uint32_t s = 0; s < nslots; s++)
        sum += __atomic_load_n(&room->online[s], __ATOMIC_RELAXED);
    return sum;
}

int shm_room_join(struct shm_segment *seg, const char *name, size_t len,
                  int slot)
{
    if (len == 0 || len > RING_ROOM_MAX || slot < 0 ||
        (uint32_t)slot >= seg->nslots)
        return -1;
    int spare = -1, unused = -1;
    for (int i = 0; i < SHM_MAX_ROOMS; i++) {
        struct shm_room *room = &seg->rooms[i];
        uint8_t nl = __atomic_load_n(&room->name_len, __ATOMIC_RELAXED);
        if (nl == len && memcmp(room->name, name, len) == 0) {
            __atomic_fetch_add(&room->online[slot], 1, __ATOMIC_RELAXED);
            return i;
        }
        /*
         * Counts only drop without the lock (leave, slot reset) and we hold
         * it, so a sum of zero stays zero and the entry is safe to reuse.
         */
        if (nl == 0) {
            if (unused < 0)
                unused = i;
        } else if (spare < 0 && room_sum(room, seg->nslots) == 0) {
            spare = i;
        }
    }
    /*
     * A never-used entry first: an empty room keeps its entry (and so the
     * index its ring entries carry) until the table has no other room left.
     */
    if (unused >= 0)
        spare = unused;
    if (spare < 0)
        return -1;
    struct shm_room *room = &seg->rooms[spare];
    memset(room->name, 0, sizeof room->name);
    memcpy(room->name, name, len);
    /* Release: a lock-free reader that sees name_len sees the name bytes. */
    __atomic_store_n(&room->name_len, (uint8_t)len, __ATOMIC_RELEASE);
    __atomic_fetch_add(&room->online[slot], 1, __ATOMIC_RELAXED);
    return spare;
}

void shm_room_leave(struct shm_segment *seg, int idx, int slot)
{
    if (idx < 0 || idx >= SHM_MAX_ROOMS || slot < 0 ||
        (uint32_t)slot >= seg->nslots)
        return;
    __atomic_fetch_sub(&seg->rooms[idx].online[slot], 1, __ATOMIC_RELAXED);
}

int shm_room_online(const struct shm_segment *seg, int idx)
{
    if (idx < 0 || idx >= SHM_MAX_ROOMS)
        return 0;
    return room_sum(&seg->rooms[idx], seg->nslots);
}

void shm_slot_reset(struct shm_segment *seg, int slot)
{
    if (slot < 0 || (uint32_t)slot >= seg->nslots)
        return;
    for (int i = 0; i < SHM_MAX_ROOMS; i++)
        __atomic_store_n(&seg->rooms[i].online[slot], 0, __ATOMIC_RELAXED);

    struct shm_slot *s = &seg->slots[slot];
    uint64_t *c = (uint64_t *)&s->counters;
    for (size_t k = 0; k < sizeof s->counters / sizeof *c; k++)
        __atomic_store_n(&c[k], 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->wake_pending, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->generation, 0, __ATOMIC_RELAXED);
    /*
     * pid last, with release: whoever claims the slot by seeing pid == 0
     * (acquire) starts from the zeroed counters and flags.
     */
    __atomic_store_n(&s->pid, 0, __ATOMIC_RELEASE);
}
