/*
 * chat: the chat room on top of the shm ring (DESIGN.md "Data path").
 *
 * Publishing: a complete message becomes one ring entry holding the whole
 * server frame, built once, under the shm lock (the id and timestamp are
 * only known there). Delivery: on a wake-up every worker copies new entries
 * once into a per-room local stream; a member's pending output is just its
 * position in that stream, so a broadcast costs one copy per worker and no
 * per-recipient encoding. worker.c calls the hooks below.
 */
#ifndef WSM_CHAT_H
#define WSM_CHAT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include "chat_event.h"

struct worker;
struct conn;

/*
 * Classify a request path: 1 = chat endpoint (room slice set: "lobby" for
 * "/chat"), -1 = under /chat/ but not a valid room name (404), 0 = not chat.
 */
int  chat_route(const char *path, size_t len, const char **room, size_t *room_len);

/* Per-worker setup (after the worker's epoll loop exists). 0 or -1. */
int  chat_worker_init(struct worker *w);

/*
 * C has just been upgraded on /chat: parse nick= and since= from QUERY,
 * join ROOM, queue welcome, history and history_end. 0, or -1 when C was
 * closed (the error has been sent).
 */
int  chat_join(struct worker *w, struct conn *c, const char *room, size_t room_len,
               const char *query, size_t query_len);

/* What a retiring worker passes on with a chat connection (same binary on both ends). */
struct chat_handoff {
    struct chat_identity identity;
    uint8_t  room_len;
    char     room[RING_ROOM_MAX];
    uint64_t resume_id;         /* every entry up to this id has been written */
};

/*
 * Retiring worker: if C's member has nothing pending, describe it in H and
 * remove it from its room without a leave event. 0, or -1 (not now).
 */
int  chat_handoff_take(struct worker *w, struct conn *c, struct chat_handoff *h);

/*
 * Adopting worker: make C (already a WebSocket here) the member H describes,
 * without welcome or join event, and queue what it missed since resume_id.
 * 0, or -1 when C was closed.
 */
int  chat_handoff_adopt(struct worker *w, struct conn *c, const struct chat_handoff *h);

/* C leaves its room (closing); publishes the leave event. Idempotent. */
void chat_leave(struct worker *w, struct conn *c);

/* A complete text/binary message from member C. */
void chat_on_message(struct worker *w, struct conn *c, int opcode,
                     const uint8_t *data, size_t len);

/* The worker's eventfd fired: drain the ring into local streams. */
void chat_on_wake(struct worker *w);

/* End of a loop pass: flush members that got new stream data. */
void chat_flush_dirty(struct worker *w);

/*
 * Output of a member for worker_flush(): up to MAX iovecs in send order (the
 * rest of a stream frame under way, then private output, then the stream),
 * and the accounting of N bytes of them written.
 */
int  chat_stream_iov(struct worker *w, struct conn *c, struct iovec *iov, int max);
void chat_stream_consumed(struct worker *w, struct conn *c, size_t n);

#endif
