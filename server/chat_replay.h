/*
 * chat_replay: a joining member's history, queued from the shm ring into
 * its connection's output: its room's last history_size messages, or with
 * since= every message after that id, preceded by a gap event when the
 * ring no longer reaches back to since + 1. Only entries the worker has
 * drained count (later ones reach the member through the room's stream),
 * so nothing is sent twice. The worker's index (chat_history.c) answers
 * most joins; a scan of the ring the rest.
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

/*
 * Queue the history of room ROOM (shm index ROOM_IDX) on C. 0, or -ENOMEM
 * with the output rolled back (the caller fails C).
 */
int chat_replay(const struct chat_replay_src *src, struct worker *w, struct conn *c,
                int room_idx, const char *room, size_t room_len, int have_since, uint64_t since);

#endif
