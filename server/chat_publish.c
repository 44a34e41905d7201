/*
 * chat_publish: see chat_publish.h.
 */
#include "chat_publish.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "chat_proto.h"
#include "cluster_gate.h"
#include "journal_gate.h"
#include "lock.h"
#include "log.h"
#include "notify.h"
#include "ring.h"
#include "room_table.h"
#include "shm.h"
#include "worker.h"

/* Unix time in ms: the "ts" of an event. */
static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The caller holds the publish lock (or is the master before any fork) and
 * has reserved the entry at AT in R, its frame written and META filled but
 * for the chain: a message goes on its room's chain, pointing back at the
 * room's newest message (that one forward at it), and the room table's head
 * moves to it. A room with no entry (a full table) gets its message
 * unchained: delivered, but found for history only by a scan. Commits with
 * id ID (the next of R's sequence) and returns it.
 */
static uint64_t chain_and_commit(struct shm_segment *seg, struct ring *r, struct ring_entry *meta,
                                 uint64_t at, uint64_t id)
{
    const char *room = meta->room;
    size_t room_len = meta->room_len;
    meta->prev_pos = RING_NO_POS;
    meta->prev_id = 0;
    int idx = -ENOENT;
    if (meta->kind == RING_KIND_MESSAGE) {
        struct room_table *t = shm_rooms(seg);
        idx = room_table_find(t, room, room_len);
        if (idx < 0)
            idx = room_table_join(t, room, room_len, 0, ring_tail(r));
        const struct room_entry *re = idx >= 0 ? room_table_entry(t, (uint32_t)idx) : NULL;
        if (re != NULL && re->last_id != 0) {
            meta->prev_pos = re->last_pos;
            meta->prev_id = re->last_id;
            ring_link(r, re->last_pos, re->last_id, at);
        }
    }
    /* The message ring's sequence moves past this id first: a writer killed
     * before its commit leaves a gap in the ids, never a duplicate. */
    if (r != &seg->ring)
        ring_continue_ids(&seg->ring, id + 1);
    ring_commit(r, meta);
    if (idx >= 0)
        room_table_note_message(shm_rooms(seg), (uint32_t)idx, at, id);
    else if (meta->kind == RING_KIND_MESSAGE)
        room_table_note_unchained(shm_rooms(seg), at);
    return id;
}

static void meta_init(struct ring_entry *meta, int kind, const char *room, size_t room_len,
                      int64_t ts, size_t len)
{
    memset(meta, 0, sizeof *meta);
    meta->ts_ms = ts;
    meta->len = (uint32_t)len;
    meta->kind = (uint8_t)kind;
    meta->room_len = (uint8_t)room_len;
    memcpy(meta->room, room, room_len);
}

/*
 * Frame event TYPE (BODY after its id and ts) into the ring as one entry of
 * KIND for ROOM with id ID (the next of the one sequence, or above it) and
 * time TS; the caller holds the publish lock. The id, or -EMSGSIZE over
 * ring_max_entry.
 */
static int64_t ring_write_event_at(struct shm_segment *seg, int kind, const char *room,
                                   size_t room_len, const char *type, const char *body,
                                   size_t body_len, uint64_t id, int64_t ts)
{
    /*
     * Presence goes to its own ring (shm.h), numbered on from the message
     * ring's sequence and handing the sequence back, so ids stay one order.
     */
    struct ring *r = kind == RING_KIND_PRESENCE ? shm_pring(seg) : &seg->ring;
    ring_continue_ids(r, id);
    size_t len = chat_proto_event_frame_len(type, id, ts, body_len);
    if (len > ring_max_entry(r))
        return -EMSGSIZE;
    uint64_t at;
    uint8_t *dst = ring_reserve(r, (uint32_t)len, &at);
    if (dst == NULL)
        return -EMSGSIZE;
    ssize_t n = chat_proto_event_frame(dst, len, type, id, ts, body, body_len);
    if (n < 0)
        return (int)n;      /* reserved but never committed: readers see nothing */
    struct ring_entry meta;
    meta_init(&meta, kind, room, room_len, ts, (size_t)n);
    return (int64_t)chain_and_commit(seg, r, &meta, at, id);
}

/* The same with the next id of this node's sequence and the clock's time. */
static int64_t ring_write_event(struct shm_segment *seg, int kind, const char *room,
                                size_t room_len, const char *type, const char *body,
                                size_t body_len)
{
    uint64_t id = ring_next_id(&seg->ring);
    if (kind == RING_KIND_PRESENCE && ring_next_id(shm_pring(seg)) > id)
        id = ring_next_id(shm_pring(seg));
    return ring_write_event_at(seg, kind, room, room_len, type, body, body_len, id, wall_ms());
}

int64_t chat_publish_restore(struct shm_segment *seg, uint64_t id, int64_t ts_ms,
                             const char *room, size_t room_len, const uint8_t *frame, size_t len)
{
    struct ring *r = &seg->ring;
    if (id < ring_next_id(r) || room_len == 0 || room_len > RING_ROOM_MAX)
        return -EINVAL;
    if (len > ring_max_entry(r))
        return -EMSGSIZE;
    ring_continue_ids(r, id);
    uint64_t at;
    uint8_t *dst = ring_reserve(r, (uint32_t)len, &at);
    if (dst == NULL)
        return -EMSGSIZE;
    memcpy(dst, frame, len);
    struct ring_entry meta;
    meta_init(&meta, RING_KIND_MESSAGE, room, room_len, ts_ms, len);
    return (int64_t)chain_and_commit(seg, r, &meta, at, id);
}

int chat_publish_lock(struct shm_segment *seg)
{
    int lk = lock_acquire(&seg->lock);
    if (lk < 0) {
        log_write(LOG_LVL_ALERT, -lk, "lock_acquire() failed");
        return lk;
    }
    if (lk == LOCK_RECOVERED)
        log_write(LOG_LVL_WARN, 0, "publish lock recovered from a dead worker");
    return 0;
}

int64_t chat_publish_remote(struct shm_segment *seg, const struct chat_remote_event *ev)
{
    if (ev->room_len > RING_ROOM_MAX ||
        (ev->kind != RING_KIND_MESSAGE && ev->kind != RING_KIND_PRESENCE) ||
        (ev->kind == RING_KIND_MESSAGE && ev->room_len == 0))
        return -EINVAL;
    int lk = chat_publish_lock(seg);
    if (lk < 0)
        return lk;
    int64_t rc = -EINVAL;
    uint64_t next = ring_next_id(&seg->ring);
    if (ring_next_id(shm_pring(seg)) > next)
        next = ring_next_id(shm_pring(seg));
    if (ev->id >= next)
        rc = ring_write_event_at(seg, ev->kind, ev->room, ev->room_len, ev->type, ev->body,
                                 ev->body_len, ev->id, ev->ts_ms);
    lock_release(&seg->lock);
    return rc;
}

int64_t chat_publish_gap(struct shm_segment *seg, uint64_t id)
{
    int lk = chat_publish_lock(seg);
    if (lk < 0)
        return lk;
    int64_t rc = -EINVAL;
    struct ring *r = &seg->ring;
    if (id >= ring_next_id(r) && id >= ring_next_id(shm_pring(seg))) {
        ring_continue_ids(r, id);
        uint64_t at;
        if (ring_reserve(r, 0, &at) != NULL) {
            struct ring_entry meta;
            meta_init(&meta, RING_KIND_GAP, "", 0, wall_ms(), 0);
            rc = (int64_t)chain_and_commit(seg, r, &meta, at, id);
        }
    }
    lock_release(&seg->lock);
    return rc;
}

int64_t chat_publish(struct worker *w, int kind, const char *room, size_t room_len,
                     const char *type, const char *body, size_t body_len)
{
    struct shm_segment *seg = w->ctx.seg;
    if (cluster_gate_on(seg)) {
        int lk = chat_publish_lock(seg);
        if (lk < 0)
            return lk;
        int rc = cluster_gate_queue(seg, kind, room, room_len, type, body, body_len);
        lock_release(&seg->lock);
        if (rc < 0)
            return rc;
        STAT_ADD(w, msgs_published, 1);
        cluster_gate_notify(seg, w->ctx.cluster_efd);
        return 0;
    }
    /* history_fsync always keeps its promise: nothing is taken that cannot be written. */
    if (kind == RING_KIND_MESSAGE && journal_refuses(seg))
        return -EAGAIN;
    int lk = chat_publish_lock(seg);
    if (lk < 0)
        return lk;
    int64_t rc = ring_write_event(seg, kind, room, room_len, type, body, body_len);
    lock_release(&seg->lock);
    if (rc < 0) {
        log_write(LOG_LVL_ALERT, (int)-rc, "event of %zu bytes not published", body_len);
        return rc;
    }
    STAT_ADD(w, msgs_published, 1);
    journal_notify(seg, w->ctx.journal_efd);
    notify_all_except(seg, w->ctx.eventfds, w->ctx.slot);
    return rc;
}
