/*
 * shm: the shared-memory room segment, created by the master before it
 * forks and inherited by every worker (same address in all of them).
 *
 * Layout (cross-process ABI, fixed-width fields, versioned): a header, the
 * publish lock, one slot per worker (pid, wake flag, counters), the
 * per-address table, the message ring (shared/ring.h), then the room table
 * (shared/room_table.h), both sized at start. The segment has
 * no name: it is a memfd mapped MAP_SHARED and the fd is closed at once, so
 * only fork() passes it on (workers are never exec'd), no other process can
 * open, pre-create or squat it, and it vanishes with the last process that
 * maps it, crash or not. The master creates it and resets a dead worker's
 * slot.
 */
#ifndef WSM_SHM_H
#define WSM_SHM_H

#include <stddef.h>
#include <stdint.h>
#include "ip_limit.h"
#include "kick_table.h"
#include "lock.h"
#include "ring.h"
#include "room_table.h"

#define SHM_MAGIC      0x3174616863737755ull   /* "Uwschat1" little-endian */
#define SHM_VERSION    4u
#define SHM_MAX_SLOTS  128      /* worker slots: two generations of 64 */

/* Per-worker counters; each written by its worker only (relaxed atomics). */
struct shm_counters {
    uint64_t conns_accepted;    /* TCP connections accepted */
    uint64_t conns_current;     /* open TCP connections */
    uint64_t ws_current;        /* open WebSocket connections */
    uint64_t http_requests;     /* plain HTTP requests answered */
    uint64_t handshakes_ok;
    uint64_t handshakes_failed;
    uint64_t msgs_in;           /* WebSocket messages received */
    uint64_t msgs_published;    /* chat entries this worker published */
    uint64_t deliveries;        /* frames queued to local members */
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t drops_slow;        /* members closed with 1013 */
    uint64_t ring_overruns;     /* times this worker fell a whole ring behind */
    uint64_t closes_protocol;   /* connections failed for a protocol error */
    uint64_t timeouts;          /* handshake/idle/close timeouts */
    uint64_t rejects_limit;     /* over max_connections or fd limits */
};

struct shm_slot {
    _Alignas(64) int32_t pid;   /* 0 = free */
    uint32_t generation;
    uint32_t wake_pending;      /* 1 while an eventfd wake is outstanding */
    uint32_t pad;
    uint64_t heartbeat_ms;      /* worker clock at its last loop pass (watchdog) */
    uint32_t room_epoch;        /* room table epoch its members are counted in */
    uint32_t pad2;
    struct shm_counters counters;
};

/*
 * The history journal's state (server/journal.c): written by the journal
 * process, read by workers (delivery under history_fsync always, refusals)
 * and by /stats.
 */
struct shm_journal {
    uint32_t on;                /* a journal process follows the ring */
    uint32_t wake_pending;      /* 1 while an eventfd wake of it is outstanding */
    uint32_t failing;           /* writes fail (disk full, EIO): always refuses */
    uint32_t always;            /* history_fsync always: deliver up to durable_id */
    uint64_t durable_id;        /* every id up to this is on disk (atomic) */
    uint64_t written_id;        /* the newest message handed to the file */
    uint64_t records;           /* records written (journal process only) */
    uint64_t write_errors;      /* failed writes and syncs */
    uint64_t lost;              /* times the ring lapped the journal */
    uint64_t syncs;
};

/*
 * Cluster mode (server/cluster.h): the bridge process's state, written by
 * it and read by workers (may they publish, may they serve /chat) and by
 * /stats. The outbox ring (shm_outbox) carries publishes from the workers
 * to the bridge: workers write it under seg->lock, never past what the
 * bridge has confirmed (out_done), so nothing queued is ever overwritten.
 */
struct shm_cluster {
    uint32_t on;                /* cluster mode: publishes go through the outbox */
    uint32_t up;                /* the bridge's link to Redis works (atomic) */
    uint32_t synced;            /* the stream's tail is in the ring: /chat may be served */
    uint32_t wake_pending;      /* 1 while an eventfd wake of the bridge is outstanding */
    uint64_t node_id;           /* random per segment: names this node in Redis */
    uint64_t out_done;          /* outbox position Redis has confirmed up to (atomic) */
    uint64_t reconnects;        /* the rest: counters for /stats (bridge only, atomic) */
    uint64_t publish_errors;
    uint64_t refused;           /* publishes workers refused as unavailable (workers, atomic) */
    uint64_t published;
    uint64_t received;
    uint64_t gaps;
    int64_t  lag_ms;            /* now minus the newest received entry's Redis time */
    uint64_t last_id;           /* newest id received from the stream */
    uint64_t read_all_ms;       /* when the last read that found the stream's end was sent
                                   (worker clock; its entries are in the ring) */
};

struct shm_segment {
    uint64_t magic;
    uint32_t version;
    uint32_t nslots;
    uint64_t total_size;
    int32_t  master_pid;
    uint32_t pad;
    uint64_t rooms_off;         /* where the room table starts (after the ring) */
    uint64_t pring_off;         /* where the presence ring starts (after the rooms) */
    uint64_t obox_off;          /* where the cluster outbox starts (after it), 0: none */
    _Alignas(64) struct shm_lock lock;
    struct shm_slot slots[SHM_MAX_SLOTS];
    /* Reload hand-overs, server-wide: they outlive the retiring workers that count them. */
    _Alignas(64) uint64_t handoffs;         /* connections adopted by a new worker */
    uint64_t handoff_failures;              /* closed with 1012 instead */
    _Alignas(64) struct shm_lock ip_lock;   /* guards ips (not the publish lock:
                                               accepts must not wait on publishers) */
    struct ip_limit ips;                    /* connections per client address */
    struct kick_table kicks;                /* POST /api/disconnect (under lock) */
    _Alignas(64) struct shm_journal journal;
    _Alignas(64) struct shm_cluster cluster;
    _Alignas(64) struct ring ring;    /* must stay last: data[] follows */
};
_Static_assert(KICK_SLOT_WORDS * 64 >= SHM_MAX_SLOTS, "a pending bit per worker slot");

/*
 * Create an anonymous segment with a ring of ring_bytes data bytes and a
 * room table of max_rooms entries (1..ROOM_TABLE_MAX), a cluster outbox of
 * outbox_bytes (0: none, else at least 64 KiB), and map
 * it shared, every page allocated up front (a ring the machine cannot back
 * fails here, not with a SIGBUS in a worker later). LABEL (e.g.
 * "wschat-8000", may be NULL) only names the mapping in /proc/PID/maps as
 * "memfd:LABEL"; it is cut to the kernel's 249 bytes and never makes
 * creation fail. Returns the mapping, which a fork()ed child inherits at
 * the same address, or NULL with errno set and a message in err (err may
 * be NULL): EINVAL for a ring size out of range, ENOMEM for one larger than
 * RAM and swap together, else the failing call's errno. A memfd obeys
 * RLIMIT_FSIZE: past it ftruncate() fails with EFBIG and raises SIGXFSZ,
 * which the caller ignores to get the message instead of a core dump.
 */
struct shm_segment *shm_create(const char *label, uint64_t ring_bytes, uint32_t max_rooms,
                               uint64_t outbox_bytes, char *err, size_t errlen);

/*
 * Unmap SEG in this process (NULL is allowed); the memory is freed once no
 * process maps it any more.
 */
void shm_destroy(struct shm_segment *seg);

/*
 * The presence ring: small rooms' join, leave and nick events, kept apart
 * from the messages so that no churn of members can push history out of
 * the ring. Written under seg->lock with ids from the same sequence as
 * the message ring (ring_continue_ids); readers merge the two by id.
 */
struct ring *shm_pring(struct shm_segment *seg);

/* The cluster outbox (struct shm_cluster), NULL without one. */
struct ring *shm_outbox(struct shm_segment *seg);

/* The room table (guarded by seg->lock, see room_table.h). */
struct room_table *shm_rooms(struct shm_segment *seg);
const struct room_table *shm_rooms_const(const struct shm_segment *seg);
/* Master, after reaping a worker: zero its counters and free its slot. */
void shm_slot_reset(struct shm_segment *seg, int slot);

#endif
