/*
 * chat_replay: a joining member's history, streamed from the shm ring into
 * its connection's output as the member drains it: its room's last
 * history_size messages, or with since= every message after that id,
 * preceded by a gap event when the ring no longer reaches back to
 * since + 1.
 *
 * A replay is a position in the ring and the last id sent. Each step copies
 * the room's messages from there while the connection's private output is
 * under a budget (max_send_queue), so a replay of the whole ring costs the
 * worker no more memory than one slow reader. It chases the worker's own
 * drain position: once it reaches it, everything later comes through the
 * room's stream, and the caller attaches the member there. Nothing is sent
 * twice and nothing is skipped; a replay that the ring laps (the reader is
 * slower than the room's traffic) ends, and the caller closes with 1013 so
 * the client resumes by id.
 *
 * The worker's index (chat_history.c) finds where a replay starts for most
 * joins; a scan of the ring the rest.
 */
#ifndef WSM_CHAT_REPLAY_H
#define WSM_CHAT_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "result.h"

struct chat_history;
struct conn;
struct ring;
struct worker;

/* What a replay reads. */
struct chat_replay_src {
    struct ring *ring;
    const struct chat_history *index;   /* where each room's messages sit */
    uint64_t *scratch;                  /* history_size ring positions */
    uint64_t drained;                   /* the worker's ring position: the stream
                                           carries everything from here on */
};

/* One member's replay under way. */
struct chat_replay {
    uint64_t pos;                       /* ring position to continue from */
    uint64_t after;                     /* only messages with a higher id are sent */
};

/*
 * Begin the history of room ROOM (shm index ROOM_IDX) for C: find where it
 * starts and queue the gap event if one is due. 0, or -ENOMEM.
 */
int chat_replay_start(const struct chat_replay_src *src, struct chat_replay *rp,
                      struct worker *w, struct conn *c, int room_idx, const char *room,
                      size_t room_len, int have_since, uint64_t since);

/*
 * Copy the room's next messages into C's output until its private output
 * reaches BUDGET bytes (one message may pass it). 1 when the replay has
 * reached SRC->drained (the member goes live), 0 when the budget stopped it,
 * RING_LAPPED when the ring overwrote what it had still to send, -ENOMEM.
 */
int chat_replay_step(const struct chat_replay_src *src, struct chat_replay *rp,
                     struct worker *w, struct conn *c, const char *room, size_t room_len,
                     size_t budget);

#endif
