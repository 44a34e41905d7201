/*
 * chat_replay: a joining member's history, streamed from the shm ring into
 * its connection's output as the member drains it: its room's last
 * history_size messages, or with since= every message after that id,
 * preceded by a gap event when messages of the room after since are no
 * longer kept. With a history journal, the part of a since= the ring no
 * longer holds is read from the journal first (chat_replay_journal.h).
 *
 * The room's messages are chained through the ring (ring.h): the join
 * walks back from the room's newest message (room_table.h) to where its
 * history starts, then forward along the chain, so it reads only its own
 * room's entries, whatever the other rooms publish. A room whose chain may
 * miss older messages of its name (its table entry was reclaimed while
 * they were still in the ring) is replayed by scanning the ring instead.
 *
 * Each step copies while the connection's private output is under a
 * budget (max_send_queue), so a replay of the whole ring costs the worker
 * no more memory than one slow reader. It chases the worker's own drain
 * position: once it reaches it, everything later comes through the room's
 * stream, and the caller attaches the member there. Nothing is sent twice
 * and nothing is skipped; a replay that the ring laps (the reader is slower
 * than the room's traffic) ends, and the caller closes with 1013 so the
 * client resumes by id.
 */
#ifndef WSM_CHAT_REPLAY_H
#define WSM_CHAT_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "result.h"

struct chat_replay_journal;
struct conn;
struct ring;
struct worker;

/* What a replay reads. */
struct chat_replay_src {
    struct ring *ring;
    uint64_t *scratch;                  /* history_size ring positions (scan mode) */
    uint64_t drained;                   /* the worker's ring position: the stream
                                           carries everything from here on */
    const char *journal_dir;            /* history_file: older history, NULL: none */
};

/* Where a room's history ends, read from the room table under the lock. */
struct chat_room_head {
    uint64_t pos;                       /* newest message's position, RING_NO_POS */
    uint64_t id;                        /* its id, 0: the room has none */
    int      chain_complete;            /* room_table_chain_complete() */
};

/* One member's replay under way. */
struct chat_replay {
    uint64_t pos;                       /* ring position to continue from */
    uint64_t after;                     /* only messages with a higher id are sent */
    uint64_t prev;                      /* chain: the entry sent last, RING_NO_POS */
    int      scan;                      /* 1: walk every entry, not the chain */
    struct chat_replay_journal *journal; /* older than the ring, being read first */
};

/*
 * Begin the history of room ROOM, whose chain ends at HEAD, for C: find
 * where it starts and queue the gap event if one is due. 0, or -ENOMEM.
 */
int chat_replay_start(const struct chat_replay_src *src, struct chat_replay *rp,
                      struct worker *w, struct conn *c, const struct chat_room_head *head,
                      const char *room, size_t room_len, int have_since, uint64_t since);

/*
 * Copy the room's next messages into C's output until its private output
 * reaches BUDGET bytes (one message may pass it). 1 when the replay has
 * reached SRC->drained (the member goes live), 0 when the budget stopped it,
 * RING_LAPPED when the ring overwrote what it had still to send, -ENOMEM.
 */
int chat_replay_step(const struct chat_replay_src *src, struct chat_replay *rp,
                     struct worker *w, struct conn *c, const char *room, size_t room_len,
                     size_t budget);

/* Let go of what a replay that will not be stepped again holds (idempotent). */
void chat_replay_fini(struct chat_replay *rp);

#endif
