/* cluster_gate: see cluster_gate.h. */
#include "cluster_gate.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "ring.h"
#include "shm.h"

int cluster_gate_on(const struct shm_segment *seg)
{
    return seg->cluster.on != 0;
}

int cluster_gate_ready(const struct shm_segment *seg)
{
    return !seg->cluster.on || __atomic_load_n(&seg->cluster.synced, __ATOMIC_ACQUIRE);
}

/*
 * Bytes an entry of LEN frame bytes may take in the ring at most: its header
 * and aligned frame, plus the pad that may end the data area before it.
 */
static uint64_t footprint(size_t len)
{
    return 2 * (sizeof(struct ring_entry) + ((len + 7) & ~(size_t)7));
}

int cluster_gate_queue(struct shm_segment *seg, int kind, const char *room, size_t room_len,
                       const char *type, const char *body, size_t body_len)
{
    struct ring *r = shm_outbox(seg);
    size_t type_len = strlen(type);
    size_t len = 1 + type_len + body_len;
    if (r == NULL || type_len == 0 || type_len > 255 || room_len > RING_ROOM_MAX)
        return -EINVAL;
    if (len > ring_max_entry(r))
        return -EMSGSIZE;
    uint64_t done = __atomic_load_n(&seg->cluster.out_done, __ATOMIC_ACQUIRE);
    if (!__atomic_load_n(&seg->cluster.up, __ATOMIC_ACQUIRE) ||
        ring_head(r) - done + footprint(len) > r->capacity) {
        /* Down, or Redis slower than the publishers: refuse, never overwrite. */
        __atomic_fetch_add(&seg->cluster.refused, 1, __ATOMIC_RELAXED);
        return -EAGAIN;
    }
    uint8_t *dst = ring_reserve(r, (uint32_t)len, NULL);
    if (dst == NULL)
        return -EMSGSIZE;
    dst[0] = (uint8_t)type_len;
    memcpy(dst + 1, type, type_len);
    memcpy(dst + 1 + type_len, body, body_len);
    struct ring_entry meta;
    memset(&meta, 0, sizeof meta);
    meta.len = (uint32_t)len;
    meta.kind = (uint8_t)kind;
    meta.room_len = (uint8_t)room_len;
    memcpy(meta.room, room, room_len);
    ring_commit(r, &meta);
    return 0;
}

int cluster_gate_read_all_since(const struct shm_segment *seg, uint64_t from_ms)
{
    return __atomic_load_n(&seg->cluster.read_all_ms, __ATOMIC_ACQUIRE) >= from_ms;
}

void cluster_gate_notify(struct shm_segment *seg, int efd)
{
    if (efd < 0 || __atomic_exchange_n(&seg->cluster.wake_pending, 1u, __ATOMIC_SEQ_CST) != 0)
        return;
    uint64_t one = 1;
    ssize_t rc = write(efd, &one, sizeof one);
    (void)rc;       /* EAGAIN: the counter is saturated, a wake is pending anyway */
}

int cluster_gate_split(const uint8_t *buf, size_t len, const char **type, size_t *type_len,
                       const char **body, size_t *body_len)
{
    if (len < 1 || (size_t)buf[0] + 1 > len || buf[0] == 0)
        return -EINVAL;
    *type = (const char *)buf + 1;
    *type_len = buf[0];
    *body = (const char *)buf + 1 + buf[0];
    *body_len = len - 1 - buf[0];
    return 0;
}
