/*
 * chat_publish: step 3 of the data path (README "Architecture"). One event
 * into the shared ring: take the publish lock, give the event the next id
 * and the wall-clock time under it (ids and times rise together, every
 * worker reads one order), frame it straight into its reserved ring entry
 * (chat_proto_event_frame), commit, and wake the other workers. A message
 * is also linked into its room's history chain (ring.h, room_table.h).
 */
#ifndef WSM_CHAT_PUBLISH_H
#define WSM_CHAT_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

#include "result.h"

struct worker;
struct shm_segment;

/*
 * Take SEG's publish lock (the ring, the room table, the kick table),
 * logging a failure at alert and a recovery from a dead holder at warn.
 * 0, or the lock's -errno. Release with lock_release(&seg->lock).
 */
int chat_publish_lock(struct shm_segment *seg);

/*
 * Publish event TYPE (a literal: "message", "join"...) whose BODY follows
 * its id and ts (a chat_proto_*_body() result), as a ring entry of KIND
 * (RING_KIND_*) for ROOM. Its id (> 0); in cluster mode 0: queued for
 * Redis, which gives the id (cluster_gate.h). Or -EMSGSIZE when it is
 * larger than a ring entry may be, -EAGAIN for a message while the history
 * journal cannot write under history_fsync always (journal.h) or, in
 * cluster mode, while Redis cannot be reached, or the lock's -errno (logged).
 */
int64_t chat_publish(struct worker *w, int kind, const char *room, size_t room_len,
                 const char *type, const char *body, size_t body_len);

/*
 * The master, before any worker runs: put back a message read from the
 * history journal, as it was (its frame, id ID and time): on its room's
 * chain and into the room table, as chat_publish would have. ID must be
 * at least the ring's next id (the journal is in id order). ID, or
 * -EINVAL, or -EMSGSIZE for a frame larger than this ring's entries.
 */
int64_t chat_publish_restore(struct shm_segment *seg, uint64_t id, int64_t ts_ms,
                             const char *room, size_t room_len, const uint8_t *frame, size_t len);

/* An event read back from the cluster's stream, with the id and time Redis gave it. */
struct chat_remote_event {
    int         kind;               /* RING_KIND_MESSAGE or RING_KIND_PRESENCE */
    const char *room;
    size_t      room_len;
    const char *type;               /* NUL-terminated: "message", "join"... */
    const char *body;               /* what follows the id and ts in the event */
    size_t      body_len;
    uint64_t    id;
    int64_t     ts_ms;
};

/*
 * The cluster bridge: put EV into the ring (or the presence ring) with its
 * id, framed as the publishing node framed it, chained as chat_publish
 * would. EV->id must be above every id the rings hold. Its id, or -EINVAL,
 * -EMSGSIZE, or the lock's -errno. The caller wakes the workers.
 */
int64_t chat_publish_remote(struct shm_segment *seg, const struct chat_remote_event *ev);

/*
 * The cluster bridge: ids up to ID that this node will never have (the
 * stream skipped them): an entry of kind RING_KIND_GAP with id ID, which
 * every worker turns into a gap event for each of its rooms. ID, or
 * -EINVAL when ID is not above every id held, or the lock's -errno.
 */
int64_t chat_publish_gap(struct shm_segment *seg, uint64_t id);

#endif
