/*
 * shm: creation of the shared room segment and the presence table in it.
 *
 * The master creates the segment before forking (so every worker maps it at
 * the same address). It is a memfd whose fd is closed once mapped: there is
 * no name to unlink, to squat or to leave behind, and the memory goes away
 * with the last process that maps it. The room table follows the ring's
 * data, so both can be sized at start while the fixed part keeps its
 * offsets.
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

/* The presence ring: an eighth of the message ring, 1 to 64 MiB (events are small). */
static size_t pring_bytes(uint64_t ring_bytes)
{
    uint64_t b = ring_bytes / 8;
    b = b < (1u << 20) ? (1u << 20) : b > (64u << 20) ? (64u << 20) : b;
    return (size_t)b + sizeof(struct ring);
}

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

struct shm_segment *shm_create(const char *label, uint64_t ring_bytes, uint32_t max_rooms,
                               uint64_t outbox_bytes, char *err, size_t errlen)
{
    size_t ring_off = offsetof(struct shm_segment, ring);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (ring_bytes < RING_MIN_BYTES ||
        ring_bytes > SIZE_MAX / 4 - ring_off - sizeof(struct ring) - page) {
        set_err(err, errlen, "shm ring size %llu out of range",
                (unsigned long long)ring_bytes);
        errno = EINVAL;
        return NULL;
    }
    if (max_rooms == 0 || max_rooms > ROOM_TABLE_MAX) {
        set_err(err, errlen, "max_rooms %u out of range (1..%u)", max_rooms, ROOM_TABLE_MAX);
        errno = EINVAL;
        return NULL;
    }
    size_t rooms_off = (ring_off + sizeof(struct ring) + (size_t)ring_bytes + 63) & ~(size_t)63;
    size_t pring_off = (rooms_off + room_table_size(max_rooms) + 63) & ~(size_t)63;
    if (outbox_bytes != 0 && (outbox_bytes < 65536 || outbox_bytes > ((uint64_t)1 << 32))) {
        set_err(err, errlen, "shm outbox size %llu out of range",
                (unsigned long long)outbox_bytes);
        errno = EINVAL;
        return NULL;
    }
    size_t obox_off = (pring_off + pring_bytes(ring_bytes) + 63) & ~(size_t)63;
    size_t total = outbox_bytes ? obox_off + sizeof(struct ring) + (size_t)outbox_bytes
                                : pring_off + pring_bytes(ring_bytes);
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
    seg->rooms_off = rooms_off;
    seg->pring_off = pring_off;
    seg->obox_off = outbox_bytes ? obox_off : 0;
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
    seg->cluster.node_id = seed * 0x94d049bb133111ebull ^ (uint64_t)getpid();
    uint64_t key[2];
    if (getrandom(key, sizeof key, 0) != (ssize_t)sizeof key) {
        key[0] = seed * 0xbf58476d1ce4e5b9ull;
        key[1] = seed ^ (uint64_t)clock();
    }
    room_table_init(shm_rooms(seg), max_rooms, key[0], key[1]);
    lrc = lock_init(&seg->ip_lock);
    if (lrc < 0) {
        set_err(err, errlen, "shm \"%s\": pthread_mutex_init() failed: %s",
                name, strerror(-lrc));
        lock_fini(&seg->lock);
        munmap(mem, total);
        errno = -lrc;
        return NULL;
    }
    if (ring_init(&seg->ring, rooms_off - ring_off) == NULL ||
        ring_init(shm_pring(seg), (outbox_bytes ? obox_off : total) - pring_off) == NULL ||
        (outbox_bytes && ring_init(shm_outbox(seg), total - obox_off) == NULL)) {
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

struct ring *shm_pring(struct shm_segment *seg)
{
    return (struct ring *)((char *)seg + seg->pring_off);
}

struct ring *shm_outbox(struct shm_segment *seg)
{
    return seg->obox_off ? (struct ring *)((char *)seg + seg->obox_off) : NULL;
}

struct room_table *shm_rooms(struct shm_segment *seg)
{
    return (struct room_table *)((char *)seg + seg->rooms_off);
}

const struct room_table *shm_rooms_const(const struct shm_segment *seg)
{
    return (const struct room_table *)((const char *)seg + seg->rooms_off);
}

void shm_slot_reset(struct shm_segment *seg, int slot)
{
    if (slot < 0 || (uint32_t)slot >= seg->nslots)
        return;
    struct shm_slot *s = &seg->slots[slot];
    uint64_t *c = (uint64_t *)&s->counters;
    for (size_t k = 0; k < sizeof s->counters / sizeof *c; k++)
        __atomic_store_n(&c[k], 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->wake_pending, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->heartbeat_ms, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->room_epoch, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->generation, 0, __ATOMIC_RELAXED);
    /*
     * pid last, with release: whoever claims the slot by seeing pid == 0
     * (acquire) starts from the zeroed counters and flags.
     */
    __atomic_store_n(&s->pid, 0, __ATOMIC_RELEASE);
}
