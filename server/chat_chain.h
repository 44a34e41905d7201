/*
 * chat_chain: reading one room's messages along their chain in the ring
 * (ring.h: each message names the room's previous one, and the next once
 * it exists), for a joiner's replay (chat_replay.c) and the API's history
 * (api.c) alike. Pure reads of the shared ring: every link is checked
 * against what is found there, since a position may have been overwritten
 * or left behind by a writer that died before its commit.
 */
#ifndef WSM_CHAT_CHAIN_H
#define WSM_CHAT_CHAIN_H

#include <stddef.h>
#include <stdint.h>

#include "result.h"
#include "ring.h"

/* 1 when E is a message (not presence, not pad) of ROOM[0..len). */
int chat_chain_is_message(const struct ring_entry *e, const char *room, size_t len);

/* Where a walk back along a room's chain stopped. */
struct chat_chain_back {
    uint64_t start;             /* the oldest message it counted, RING_NO_POS: none */
    uint32_t count;             /* messages counted */
    uint64_t lost;              /* id of the first message it could not read, 0: none */
    int      first_reached;     /* it went back to the room's first message in the ring */
};

/*
 * Walk back from the room's newest message (POS, ID; ID 0: the room has
 * none): with HAVE_SINCE up to the first one with an id <= SINCE, else up
 * to WANT counted messages. Messages at positions >= BELOW are passed over
 * uncounted (UINT64_MAX: count all). Reads headers only.
 */
void chat_chain_walk_back(const struct ring *r, uint64_t pos, uint64_t id, const char *room,
                          size_t len, int have_since, uint64_t since, uint32_t want,
                          uint64_t below, struct chat_chain_back *out);

/*
 * The header of the message at POS along the chain, PREV being the one
 * reached before it (RING_NO_POS at the start), into E. 1: it is the
 * chain's next message; 0: the chain ends here (nothing committed there
 * yet, or a link a dead writer left); RING_LAPPED: overwritten.
 */
int chat_chain_peek(const struct ring *r, uint64_t pos, uint64_t prev, const char *room,
                    size_t len, struct ring_entry *e);

#endif
