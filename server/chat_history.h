/*
 * chat_history: per-worker index of where each room's recent messages sit
 * in the shm ring, so a join replays history in O(history_size) instead of
 * scanning the whole ring (which a reload, when every client rejoins at
 * once, would do thousands of times).
 *
 * The worker notes every message entry it drains, for every room, keyed by
 * the entry's room slot. An index is "complete" when it holds every message
 * of its room that the ring can still hold (nothing evicted, no slot reuse
 * since it was built). A ring overrun leaves it complete: what the worker
 * missed was overwritten, so the ring no longer holds it either, and stale
 * positions fail the caller's read. chat_history_select() says
 * when it cannot answer, and the caller falls back to a ring scan. Pure:
 * no I/O; positions are only read by the caller, which validates them.
 */
#ifndef WSM_CHAT_HISTORY_H
#define WSM_CHAT_HISTORY_H

#include <stddef.h>
#include <stdint.h>
#include "ring.h"
#include "shm.h"

struct hist_slot;

struct chat_history {
    uint32_t per_room;                      /* history_size */
    struct hist_slot *rooms[SHM_MAX_ROOMS]; /* allocated on first message */
};

/* Start empty; a slot's array is allocated at its first message (no memory: no index). */
void chat_history_init(struct chat_history *h, uint32_t per_room);
void chat_history_fini(struct chat_history *h);

/* A message entry E was drained at ring position POS (ids only rise). */
void chat_history_note(struct chat_history *h, const struct ring_entry *e, uint64_t pos);

/*
 * Positions (oldest first) of the messages to replay to a member of room
 * NAME in SLOT: the last per_room messages, or with have_since every message
 * with id > since. Returns how many were written to out (room for per_room),
 * or -1 when the index cannot answer and the ring must be scanned.
 */
long chat_history_select(const struct chat_history *h, int slot, const char *name,
                         size_t len, int have_since, uint64_t since, uint64_t *out);

#endif
