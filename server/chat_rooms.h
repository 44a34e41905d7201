/*
 * chat_rooms: one worker's rooms, the ones it has members in, found by
 * name in O(1) (ring entries are routed to them by name) and walked in a
 * list (presence ticks, overruns). Each keeps the room's local stream.
 *
 * It also keeps this worker's share of the shared room table
 * (room_table.h) right: every change of a room's member count here goes
 * through chat_rooms_sync() first, under the publish lock, which after a
 * reset of the table's counts (a worker died) adds this worker's members
 * back by name before anything else.
 */
#ifndef WSM_CHAT_ROOMS_H
#define WSM_CHAT_ROOMS_H

#include <stddef.h>
#include <stdint.h>

#include "result.h"
#include "ring.h"
#include "stream.h"

struct room_table;

struct local_room {
    uint32_t idx;               /* entry in the shared room table */
    uint8_t  name_len;
    char     name[RING_ROOM_MAX + 1];
    struct stream stream;       /* its cursors are the live local members */
    uint32_t replaying;         /* members still receiving history (not cursors yet) */
    int      presence_sent;     /* online count of the last presence frame, -1: none */
    int      dirty;
    struct local_room *dirty_next;
    struct local_room *hnext;   /* its hash bucket's chain */
    struct local_room *prev, *next;     /* every room of the worker */
};

struct chat_rooms {
    struct local_room **bucket;
    uint32_t mask;              /* buckets - 1 */
    uint32_t count;
    struct local_room *all;
    uint64_t k0, k1;            /* SipHash key (room names come from clients) */
    uint32_t epoch;             /* room table epoch our counts belong to */
    uint32_t unplaced;          /* rooms with members but no table entry */
};

/* No rooms yet. 0 or -ENOMEM. */
int  chat_rooms_init(struct chat_rooms *rs);
/* Free every room (their members are gone). */
void chat_rooms_fini(struct chat_rooms *rs);

/* The room NAME, or NULL. */
struct local_room *chat_rooms_find(const struct chat_rooms *rs, const char *name, size_t len);
/* The room NAME, made (empty, STREAM_MIN bytes of stream) if new; NULL: no memory. */
struct local_room *chat_rooms_get(struct chat_rooms *rs, const char *name, size_t len,
                                  uint64_t stream_min);
/* Free LR (no members, no replays). */
void chat_rooms_free(struct chat_rooms *rs, struct local_room *lr);

/* Members of LR on this worker: live ones and those still replaying. */
uint32_t chat_room_members(const struct local_room *lr);

/*
 * Caller holds the publish lock: do a reset of T's counts if one was asked
 * for, and if our counts are from an older epoch add every local room's
 * members back (TAIL: the ring's tail). A room the table cannot take keeps
 * ROOM_NONE as its index (it reads as empty) and is tried again at every
 * sync until it gets an entry.
 */
void chat_rooms_sync(struct chat_rooms *rs, struct room_table *t, uint64_t tail);

#endif
