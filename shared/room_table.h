/*
 * room_table: every chat room the server knows, in shared memory, so that
 * all workers agree on who is online where and on where each room's newest
 * message sits in the ring.
 *
 * Fixed capacity (max_rooms entries, chosen at start), O(1) lookup by name
 * through a chained hash keyed with a random SipHash key. Entries never
 * move, so an index stays valid while its room lives. A room whose last
 * member left stays in the table (its history stays easy to find) until a
 * new name needs the entry: a clock hand then reclaims an empty one,
 * preferring one whose messages the ring has already overwritten.
 *
 * History: each room's messages form a chain through the ring (every entry
 * points at the room's previous message; ring.h), and the table holds its
 * head (last_pos, last_id). An entry reclaimed while its messages are still
 * in the ring breaks that chain for its name; the table remembers how far
 * such messages may reach (the horizon) and a room created before the ring
 * has passed it is "unsure": its joins find history by scanning the ring.
 *
 * Counts: one total per room (not one per worker), changed only under the
 * caller's lock. A worker that dies cannot take its members back out, so
 * the master asks for a reset; the next worker to take the lock zeroes
 * every count and starts a new epoch, and every live worker adds its
 * members back before its next change (room_table_settle). Until each has,
 * counts read low.
 *
 * Pure and in shared memory: fixed-width fields; the caller holds the
 * publish lock for every call except room_table_online(), room_table_entry()
 * reads, and room_table_request_reset() (atomics).
 */
#ifndef WSM_ROOM_TABLE_H
#define WSM_ROOM_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "result.h"
#include "ring.h"

#define ROOM_TABLE_MAX   1048576u
#define ROOM_NONE        UINT32_MAX

struct room_entry {
    char     name[RING_ROOM_MAX];
    uint8_t  name_len;          /* 0: never used */
    uint8_t  pad[3];
    uint32_t hnext;             /* next entry of its hash bucket, ROOM_NONE ends it */
    int32_t  online;            /* members on every worker (atomic loads) */
    int32_t  remote;            /* cluster mode: members on the other nodes, as the
                                   bridge last heard (atomic; never reset with online) */
    uint64_t last_pos;          /* ring position of the newest message, RING_NO_POS */
    uint64_t last_id;           /* its id; 0: no message yet */
    uint64_t unsure_below;      /* messages of this name from an earlier entry may
                                   sit in the ring below this position (0: none) */
};

struct room_table {
    uint64_t k0, k1;            /* SipHash key */
    uint32_t cap;               /* entries */
    uint32_t mask;              /* buckets - 1 */
    uint32_t used;              /* entries handed out so far (never given back) */
    uint32_t hand;              /* clock hand of the reclaimer */
    uint32_t epoch;             /* bumped by every reset of the counts */
    uint32_t reset_asked;       /* bumped by the master (atomic) */
    uint32_t reset_done;        /* reset_asked as of the last reset */
    uint32_t pad;
    uint64_t horizon;           /* see above: one past the newest position a
                                   reclaimed room's message may hold */
    uint32_t occupied;          /* rooms with members now */
    uint32_t reclaim_held;      /* 1: take no entry from an empty room (see below) */
    uint64_t reclaimed;         /* entries reclaimed so far */
    /* uint32_t bucket[mask + 1]; struct room_entry entry[cap]; follow */
};

/* Bytes a table of CAP entries (1..ROOM_TABLE_MAX) occupies. */
size_t room_table_size(uint32_t cap);
/* An empty table of CAP entries over MEM (room_table_size(cap) bytes, 8-aligned). */
void room_table_init(struct room_table *t, uint32_t cap, uint64_t k0, uint64_t k1);

/*
 * Add N (>= 0) members to room NAME (1..RING_ROOM_MAX bytes), making its
 * entry if it has none. TAIL is the ring's tail now (to tell whether a
 * reclaimed entry's messages are gone). The room's index, or -ENOSPC when
 * every entry holds a room with members, -EINVAL for a bad name.
 */
int room_table_join(struct room_table *t, const char *name, size_t len, int n, uint64_t tail);
/* The index of NAME, or -ENOENT. */
int room_table_find(const struct room_table *t, const char *name, size_t len);
/* One member of room IDX left. */
void room_table_leave(struct room_table *t, uint32_t idx);
/* Members of room IDX, this node's and (cluster mode) the others' (any process, no lock). */
int room_table_online(const struct room_table *t, uint32_t idx);
/* This node's members of room IDX only (any process, no lock). */
int room_table_local(const struct room_table *t, uint32_t idx);
/* The cluster bridge: room IDX has N members on other nodes (atomic, no lock needed). */
void room_table_set_remote(struct room_table *t, uint32_t idx, int n);
/* Entries ever handed out: every live room's index is below this (any process). */
uint32_t room_table_used(const struct room_table *t);
/* Entry IDX (< cap), for its name and history head. */
const struct room_entry *room_table_entry(const struct room_table *t, uint32_t idx);
/* 1 when IDX holds NAME. */
int room_table_is(const struct room_table *t, uint32_t idx, const char *name, size_t len);

/*
 * A message of a room with no entry (a full table) went into the ring at
 * POS, on no chain: a room of its name made later must scan for history
 * until the ring has passed it.
 */
void room_table_note_unchained(struct room_table *t, uint64_t pos);
/* Room IDX got a message: entry POS of the ring, id ID. */
void room_table_note_message(struct room_table *t, uint32_t idx, uint64_t pos, uint64_t id);
/*
 * 1 when the chain from room IDX's head reaches every message of its name
 * the ring holds (TAIL: the ring's tail now); 0 when a scan is needed.
 */
int room_table_chain_complete(const struct room_table *t, uint32_t idx, uint64_t tail);

/* Master, after a worker died: ask for a reset of the counts (no lock). */
void room_table_request_reset(struct room_table *t);
/*
 * Do a requested reset (every count to 0, a new epoch). Returns the epoch:
 * a caller whose counts belong to an older one adds its members back
 * (room_table_join by name) before any other change.
 */
uint32_t room_table_settle(struct room_table *t);
/* 1 when a reset is asked for or done after EPOCH (no lock: a cheap check per tick). */
int room_table_behind(const struct room_table *t, uint32_t epoch);

/*
 * Caller, under the lock: while HOLD, new names only get never-used
 * entries. For the time after a reset when some live worker has not yet
 * counted its members back in: their rooms read empty but are not.
 */
void room_table_hold_reclaim(struct room_table *t, int hold);

/* Rooms with members now (any process, no lock). */
uint32_t room_table_occupied(const struct room_table *t);

#endif
