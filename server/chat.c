/*
 * chat: the /chat endpoint: rooms, members, publishing and delivery on top
 * of the shm ring (DESIGN.md "Data path"). A row of endpoints.c.
 *
 * Publishing: a complete message becomes one ring entry holding the whole
 * server frame, built once (chat_proto.c), under the shm lock (the id and
 * timestamp are only known there). Delivery: on a wake-up every worker
 * copies new entries once into a per-room local stream (stream.c); a
 * member is a cursor into its room's stream, which worker_flush() writes
 * straight from, so a broadcast costs one copy per worker and no
 * per-recipient encoding. This file owns the state; the wire text is
 * chat_proto.c's.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "chat_auth.h"
#include "chat_proto.h"
#include "chat_publish.h"
#include "cluster_gate.h"
#include "journal_gate.h"
#include "chat_replay.h"
#include "chat_limits.h"
#include "chat_rooms.h"
#include "conn.h"
#include "lock.h"
#include "log.h"
#include "rate.h"
#include "room_table.h"
#include "shm.h"
#include "stream.h"
#include "worker.h"
#include "ws_conn.h"
#include "ws_frame.h"

/*
 * A room's stream buffer on a worker starts this small, grows for bursts
 * and slow members, and is freed whenever every member has written it all.
 */
#define STREAM_MIN   (4u * 1024u)

/* A member is its connection's cursor (conn->cursor points at `cur`). */
struct chat_member {
    struct stream_cursor cur;
    struct conn *conn;
    struct local_room *room;
    int announced;              /* its join was published: a leave follows */
    struct rate_bucket rate;    /* rate_limit */
    /* While its history is replayed the cursor is detached (private output
     * only) and the member is on the worker's replay list. */
    uint8_t  replaying;
    uint8_t  greeting;          /* a fresh join: history_end and a join event follow */
    uint8_t  since_given;       /* its replay is of everything after an id (since=) */
    struct chat_replay replay;
    struct chat_member *rp_prev, *rp_next;
    struct chat_token *token;   /* an authenticated member's (its id.user points into it) */
    uint64_t live_wait_from_ms;     /* cluster: since= ahead of this node (behind_since) */
    uint8_t  live_wait_final;       /* ... and the node has read the whole stream since */
    struct chat_identity id;
};

static struct chat_member *member_of(const struct conn *c)
{
    return c->cursor != NULL
           ? (struct chat_member *)((char *)c->cursor - offsetof(struct chat_member, cur)) : NULL;
}

static struct chat_member *cursor_member(struct stream_cursor *cur)
{
    return (struct chat_member *)((char *)cur - offsetof(struct chat_member, cur));
}

struct chat_worker {
    uint64_t pos;               /* shm ring position drained up to */
    uint64_t ppos;              /* the same in the presence ring */
    uint64_t last_id;           /* id of the newest entry drained */
    uint8_t *frame;             /* scratch for one entry */
    size_t   frame_cap;
    struct chat_rooms rooms;    /* the rooms this worker has members in */
    struct local_room *dirty;
    struct chat_member *replays;    /* members whose history is under way */
    uint64_t presence_due_ms;       /* next presence tick (worker clock) */
    struct chat_tokens tokens;      /* authenticated members, for their expiry */
    uint64_t expiry_due_ms;         /* next look at them */
    uint64_t *hist;             /* history_size ring positions, for one join's scan */
    char    *input;             /* decoded JSON input */
    size_t   input_cap;
    uint8_t  rnd[512];          /* getrandom() pool for uids */
    size_t   rnd_left;
};

static struct chat_worker chat_state;
static struct chat_worker *const cw = &chat_state;

static struct ring *ring_of(struct worker *w) { return &w->ctx.seg->ring; }
static struct ring *pring_of(struct worker *w) { return shm_pring(w->ctx.seg); }

static int64_t unix_now_s(void)
{
    return (int64_t)time(NULL);
}

/* /chat is the lobby; /chat/<room> must be a valid room name; then the token (chat_auth.h). */
static int chat_check(struct worker *w, const char *sub, size_t sub_len, const char *query,
                      size_t query_len)
{
    if (sub != NULL && !chat_room_name_valid(sub, sub_len))
        return 404;
    /* A cluster node serves no room before it holds the cluster's history. */
    if (!cluster_gate_ready(w->ctx.seg))
        return 503;
    struct chat_query q;
    chat_query_parse(query, query_len, &q);
    struct jwt_claims claims;
    int rc = chat_auth_check(w->cfg, sub != NULL ? sub : "lobby", sub != NULL ? sub_len : 5,
                             q.token_present, q.token, q.token_len, unix_now_s(), &claims);
    return rc < 0 ? -rc : 0;
}

/* Free MB and what it owns. */
static void member_free(struct chat_member *mb)
{
    if (mb != NULL)
        chat_token_remove(&cw->tokens, mb->token);
    free(mb);
}

/*
 * Name MB by its token when QUERY carries one that verifies (chat_check
 * already let the request in). 0, or -EACCES when it no longer verifies
 * (it expired in between), -ENOMEM.
 */
static int identify(struct worker *w, struct chat_member *mb, const char *room, size_t room_len,
                    const struct chat_query *q)
{
    struct jwt_claims claims;
    int rc = chat_auth_check(w->cfg, room, room_len, q->token_present, q->token, q->token_len,
                             unix_now_s(), &claims);
    if (rc < 0)
        return -EACCES;
    if (rc == 0)
        return 0;
    mb->token = chat_token_add(&cw->tokens, mb, &claims, w->cfg->auth_leeway_ms);
    if (mb->token == NULL)
        return -ENOMEM;
    mb->id.user = mb->token->user;
    mb->id.user_len = mb->token->user_len;
    memcpy(mb->id.nick, claims.name, claims.name_len);
    mb->id.nick_len = (uint8_t)claims.name_len;
    return 0;
}

/* The access log names a member's session by its room and, with a token, its user. */
static void access_name(struct worker *w, struct conn *c, const struct chat_member *mb,
                        const char *room, size_t room_len)
{
    _Static_assert(6 + RING_ROOM_MAX <= ACCESS_SESSION_PATH_MAX, "/chat/<room> fits");
    _Static_assert(JWT_SUB_MAX <= ACCESS_SESSION_USER_MAX, "a token's sub fits");
    char path[6 + RING_ROOM_MAX];
    if (worker_alog(w, c) == NULL)
        return;
    if (room_len > RING_ROOM_MAX)
        room_len = RING_ROOM_MAX;
    memcpy(path, "/chat/", 6);
    memcpy(path + 6, room, room_len);
    worker_access_session_name(w, c, path, 6 + room_len, mb->id.user, mb->id.user_len);
}

static void close_expired(void *owner, void *ctx)
{
    struct chat_member *mb = owner;
    ws_conn_close(ctx, mb->conn, WS_CLOSE_POLICY, "token expired");
}

static int chat_init(struct worker *w)
{
    cw->frame_cap = ring_max_entry(ring_of(w));
    cw->frame = malloc(cw->frame_cap);
    cw->hist = calloc(w->cfg->history_size ? w->cfg->history_size : 1, sizeof *cw->hist);
    /* Worst case of a valid input: every text byte escaped as \u00XX. */
    cw->input_cap = w->cfg->max_text * 6 + 4096;
    cw->input = malloc(cw->input_cap);
    if (cw->frame == NULL || cw->hist == NULL || cw->input == NULL ||
        chat_rooms_init(&cw->rooms) < 0)
        return -ENOMEM;
    /* Start live at the ring's end, knowing the id of its newest entry. */
    struct ring *r = ring_of(w);
    cw->last_id = ring_last_id(r);
    cw->pos = ring_tail(r);
    for (;;) {
        struct ring_entry e;
        ssize_t n = ring_peek(r, &cw->pos, &e);
        if (n == RING_LAPPED) {
            cw->pos = ring_tail(r);
            continue;
        }
        if (n < 0)
            break;
        cw->last_id = e.id;
    }
    /* Presence is live only: start at its end; its newest id may be the newest of all. */
    struct ring *pr = pring_of(w);
    cw->ppos = ring_head(pr);
    if (ring_last_id(pr) > cw->last_id)
        cw->last_id = ring_last_id(pr);
    return 0;
}

/* ---- streams ---- */

/* Stream bytes plus private output a member has still to receive. */
static uint64_t backlog(const struct chat_member *mb)
{
    return stream_pending(&mb->cur) + conn_out_pending(mb->conn);
}

static void mark_dirty(struct local_room *lr)
{
    if (!lr->dirty) {
        lr->dirty = 1;
        lr->dirty_next = cw->dirty;
        cw->dirty = lr;
    }
}

/* One frame for every local member of LR. */
static void room_append(struct worker *w, struct local_room *lr, const uint8_t *frame, size_t len)
{
    if (stream_append(&lr->stream, frame, len) < 0) {
        log_write(LOG_LVL_ALERT, ENOMEM, "growing the stream of room %s failed", lr->name);
        return;
    }
    STAT_ADD(w, deliveries, lr->stream.ncursors);
    mark_dirty(lr);
}

/* ---- draining the shm ring ---- */

static void on_overrun(struct worker *w)
{
    struct ring_entry oldest;
    uint64_t p = ring_tail(ring_of(w));
    uint64_t first = ring_peek(ring_of(w), &p, &oldest) >= 0 ? oldest.id : cw->last_id + 1;
    STAT_ADD(w, ring_overruns, 1);
    log_write(LOG_LVL_WARN, 0, "fell a whole ring behind: ids %llu..%llu lost here",
              (unsigned long long)cw->last_id + 1, (unsigned long long)first - 1);
    for (struct local_room *lr = cw->rooms.all; lr != NULL; lr = lr->next) {
        if (lr->stream.ncursors == 0)
            continue;
        ssize_t n = chat_proto_gap(cw->frame, cw->frame_cap, lr->name, lr->name_len,
                                   cw->last_id + 1, first - 1);
        if (n > 0)      /* frame_cap holds any event; a gap is a few dozen bytes */
            room_append(w, lr, cw->frame, (size_t)n);
    }
    cw->pos = ring_tail(ring_of(w));
}

/*
 * Cluster mode: the stream skipped ids up to ID (chat_publish_gap): every
 * room with members here says so, as after an overrun.
 */
static void on_cluster_gap(struct worker *w, uint64_t id)
{
    for (struct local_room *lr = cw->rooms.all; lr != NULL; lr = lr->next) {
        if (lr->stream.ncursors == 0)
            continue;
        ssize_t n = chat_proto_gap(cw->frame, cw->frame_cap, lr->name, lr->name_len,
                                   cw->last_id + 1, id);
        if (n > 0)
            room_append(w, lr, cw->frame, (size_t)n);
    }
}

static struct local_room *room_for(struct chat_worker *cw, const struct ring_entry *e)
{
    return chat_rooms_find(&cw->rooms, e->room, e->room_len);
}

/*
 * Deliver entry E, just peeked at *POS of R (NEXT: the position after it),
 * to its room's members, if this worker has any. 0, or RING_LAPPED when it
 * was overwritten before it could be copied.
 */
static int deliver(struct worker *w, struct ring *r, uint64_t *pos, uint64_t next,
                   struct ring_entry *e)
{
    if (e->kind == RING_KIND_GAP && e->id > cw->last_id)
        on_cluster_gap(w, e->id);
    struct local_room *lr = e->kind == RING_KIND_GAP ? NULL : room_for(cw, e);
    if (lr != NULL && lr->stream.ncursors > 0) {
        uint64_t at = *pos;
        ssize_t n = ring_read(r, &at, e, cw->frame, cw->frame_cap);
        if (n == RING_LAPPED)
            return RING_LAPPED;
        if (n < 0)
            log_write(LOG_LVL_ALERT, 0, "ring entry %llu unreadable (%zd)",
                      (unsigned long long)e->id, n);
        else
            room_append(w, lr, cw->frame, (size_t)n);
    }
    *pos = next;
    if (e->id > cw->last_id)
        cw->last_id = e->id;
    return 0;
}

/* A whole presence ring behind: those events are gone here (they are not history). */
static void on_presence_overrun(struct worker *w)
{
    STAT_ADD(w, ring_overruns, 1);
    log_write(LOG_LVL_WARN, 0, "fell a whole presence ring behind: some join/leave events "
              "not delivered here");
    cw->ppos = ring_tail(pring_of(w));
}

/*
 * Everything new in the message ring and the presence ring, in id order.
 * Each round peeks both and takes the smaller id, after peeking again the
 * ring that did not offer it: once an id is seen (an acquire), every
 * smaller one, committed before it under the lock, is visible in the other
 * ring too; a peek from before that could miss one and reorder them.
 */
static void drain(struct worker *w)
{
    struct ring *r = ring_of(w), *pr = pring_of(w);
    /* history_fsync always: nothing reaches anyone before it is on disk. */
    uint64_t limit = journal_deliverable(w->ctx.seg);
    for (;;) {
        struct ring_entry e, pe;
        uint64_t next = cw->pos, pnext = cw->ppos;
        ssize_t n = ring_peek(r, &next, &e);
        ssize_t pn = ring_peek(pr, &pnext, &pe);
        if (pn >= 0 && (n < 0 || pe.id < e.id)) {
            next = cw->pos;
            n = ring_peek(r, &next, &e);
        } else if (n >= 0) {
            pnext = cw->ppos;
            pn = ring_peek(pr, &pnext, &pe);
        }
        if (n == RING_LAPPED) {
            on_overrun(w);
            continue;
        }
        if (pn == RING_LAPPED) {
            on_presence_overrun(w);
            continue;
        }
        if (n < 0 && pn < 0)
            return;
        int presence = pn >= 0 && (n < 0 || pe.id < e.id);
        if ((presence ? pe.id : e.id) > limit)
            return;     /* the journal wakes us once it has synced this far */
        int rc = presence ? deliver(w, pr, &cw->ppos, pnext, &pe)
                          : deliver(w, r, &cw->pos, next, &e);
        if (rc == RING_LAPPED)
            continue;   /* the next round sees the ring's lap and handles it */
    }
}

/* Another worker published: deliver it now. */
static void chat_wake(struct worker *w)
{
    drain(w);
}

static int replay_continue(struct worker *w, struct chat_member *mb, int flush);
static void presence_tick(struct worker *w);
static int rooms_lock(struct worker *w);

/*
 * End of a loop pass: drain what this worker published itself, write to
 * the members of every room that got frames, and close with 1013 a member
 * that is further behind than max_send_queue (it resumes by id).
 */
static void chat_pass_end(struct worker *w)
{
    drain(w);
    /* A worker died: count this worker's members back in now, not at its next join. */
    if (room_table_behind(shm_rooms(w->ctx.seg), cw->rooms.epoch) && rooms_lock(w) == 0)
        lock_release(&w->ctx.seg->lock);
    presence_tick(w);
    if (w->now_ms >= cw->expiry_due_ms) {
        cw->expiry_due_ms = w->now_ms + 1000;
        chat_tokens_expire(&cw->tokens, unix_now_s(), close_expired, w);
    }
    for (struct chat_member *mb = cw->replays, *next; mb != NULL; mb = next) {
        next = mb->rp_next;
        if (!(mb->conn->flags & CONN_F_WANT_WRITE))
            replay_continue(w, mb, 1);
    }
    while (cw->dirty != NULL) {
        struct local_room *lr = cw->dirty;
        cw->dirty = lr->dirty_next;
        /* lr->dirty stays set during the walk: a leave inside it must not re-queue lr. */
        struct stream_cursor *cur = lr->stream.cursors, *next;
        for (; cur != NULL; cur = next) {
            next = cur->next;
            struct chat_member *mb = cursor_member(cur);
            struct conn *c = mb->conn;
            if (!(c->flags & CONN_F_WANT_WRITE))
                worker_flush(w, c);
            if (c->state == CONN_WS && backlog(mb) > w->cfg->max_send_queue) {
                STAT_ADD(w, drops_slow, 1);
                log_at(LOG_LVL_WARN, 0, "conn %u: send queue over %llu bytes: closing with 1013",
                       c->id, (unsigned long long)w->cfg->max_send_queue);
                ws_conn_close(w, c, WS_CLOSE_TRY_AGAIN, "send queue full");
            }
        }
        lr->dirty = 0;
        if (chat_room_members(lr) == 0)
            chat_rooms_free(&cw->rooms, lr);
        else
            stream_release_drained(&lr->stream);
    }
}

/* ---- presence ---- */

/* Members of LR on every worker (to within presence_interval for the others'). */
static int room_online(struct worker *w, const struct local_room *lr)
{
    return room_table_online(shm_rooms(w->ctx.seg), lr->idx);
}

/* Ring bytes of a join plus its leave, charged to the address at the join. */
#define PRESENCE_CHARGE 512

/*
 * 1 when a room of ONLINE members gets a join or leave event per member;
 * larger ones get a count at most every presence_interval (presence_tick),
 * so N joins cost O(N) deliveries, not O(N^2), and no ring space.
 */
static int individual_presence(const struct worker *w, int online)
{
    return online <= (int64_t)w->cfg->presence_events_max;
}

/*
 * Every presence_interval: a room over presence_events_max whose count
 * (every worker's members, from shm) changed since its last presence frame
 * gets a new one in its local stream, never in the ring.
 */
static void presence_tick(struct worker *w)
{
    if (w->now_ms < cw->presence_due_ms)
        return;
    cw->presence_due_ms = w->now_ms + w->cfg->presence_interval_ms;
    for (struct local_room *lr = cw->rooms.all; lr != NULL; lr = lr->next) {
        if (lr->stream.ncursors == 0)
            continue;
        int online = room_online(w, lr);
        /* Small again: join/leave events carry the count from now on, but
         * the leaves that brought it down were silent, so say it once. */
        int small = individual_presence(w, online);
        if (online == lr->presence_sent || (small && lr->presence_sent < 0))
            continue;
        ssize_t n = chat_proto_presence_frame(cw->frame, cw->frame_cap, lr->name, lr->name_len,
                                              online);
        if (n > 0) {
            room_append(w, lr, cw->frame, (size_t)n);
            lr->presence_sent = small ? -1 : online;
        }
    }
}

static int publish_presence(struct worker *w, struct chat_member *mb, const char *type,
                            const char *old_nick, size_t old_len, int online)
{
    ssize_t n = chat_proto_presence_body((char *)cw->frame, cw->frame_cap, mb->room->name,
                                         mb->room->name_len, &mb->id, old_nick, old_len, online);
    if (n < 0)
        return (int)n;
    int64_t id = chat_publish(w, RING_KIND_PRESENCE, mb->room->name, mb->room->name_len,
                              type, (const char *)cw->frame, (size_t)n);
    return id < 0 ? (int)id : 0;
}

/* ---- members ---- */

static int send_text(struct worker *w, struct conn *c, const char *text, ssize_t len);

/* An error event to C. 0, or < 0 when C could not take it (C is closed). */
static int send_error(struct worker *w, struct conn *c, const char *code, const char *reason)
{
    char buf[512];
    return send_text(w, c, buf, chat_proto_error(buf, sizeof buf, code, reason));
}

static void new_uid(char out[37])
{
    if (cw->rnd_left < 16) {
        ssize_t got = getrandom(cw->rnd, sizeof cw->rnd, 0);
        if (got != (ssize_t)sizeof cw->rnd) {
            /* getrandom() on Linux >= 3.17 does not fail for 512 bytes; be safe anyway. */
            for (size_t i = 0; i < sizeof cw->rnd; i++)
                cw->rnd[i] = (uint8_t)(rand() >> 7);
        }
        cw->rnd_left = sizeof cw->rnd;
    }
    chat_uuid4(cw->rnd + sizeof cw->rnd - cw->rnd_left, out);
    cw->rnd_left -= 16;
}

static struct chat_replay_src replay_src(struct worker *w)
{
    return (struct chat_replay_src){
        .ring = ring_of(w), .scratch = cw->hist, .drained = cw->pos,
        .journal_dir = w->cfg->history_file[0] != '\0' ? w->cfg->history_file : NULL,
    };
}

/*
 * Lock the room table for a change of this worker's counts (after catching
 * up with a reset). 0, or the lock's -errno (logged).
 */
static int rooms_lock(struct worker *w)
{
    struct shm_segment *seg = w->ctx.seg;
    int lk = chat_publish_lock(seg);
    if (lk < 0)
        return lk;
    struct room_table *t = shm_rooms(seg);
    chat_rooms_sync(&cw->rooms, t, ring_tail(&seg->ring));
    __atomic_store_n(&seg->slots[w->ctx.slot].room_epoch, cw->rooms.epoch, __ATOMIC_RELAXED);
    /*
     * After a reset, a live worker that has not counted its members back in
     * yet makes its rooms read empty: no entry may be reclaimed until every
     * worker has.
     */
    int settled = 1;
    for (int s = 0; s < SHM_MAX_SLOTS && settled; s++)
        settled = __atomic_load_n(&seg->slots[s].pid, __ATOMIC_ACQUIRE) == 0 ||
                  __atomic_load_n(&seg->slots[s].room_epoch, __ATOMIC_RELAXED) == t->epoch;
    room_table_hold_reclaim(t, !settled);
    return 0;
}

/*
 * Make MB (identity filled in) a member of ROOM on C: count it in the room
 * table, note where the room's history ends (HEAD), and start its stream at
 * what this worker has drained, so everything older is the caller's to send
 * as history. Returns the room's online count, or < 0 with C failed (MB
 * freed).
 */
static int attach(struct worker *w, struct conn *c, struct chat_member *mb,
                  const char *room, size_t room_len, int carried, struct chat_room_head *head)
{
    struct shm_segment *seg = w->ctx.seg;
    struct room_table *t = shm_rooms(seg);
    int lk = rooms_lock(w);
    if (lk < 0) {
        member_free(mb);
        ws_conn_fail(w, c, WS_CLOSE_INTERNAL, "lock failed");
        return lk;
    }
    /*
     * A handed-over member is still counted, unless a reset (a worker died)
     * came in between: then nobody counted it back in.
     */
    int add = carried >= 0 && (uint32_t)carried == t->epoch ? 0 : 1;
    int idx = room_table_join(t, room, room_len, add, ring_tail(&seg->ring));
    if (idx >= 0) {
        const struct room_entry *re = room_table_entry(t, (uint32_t)idx);
        head->pos = re->last_pos;
        head->id = re->last_id;
        head->chain_complete = room_table_chain_complete(t, (uint32_t)idx, ring_tail(&seg->ring));
    }
    struct local_room *lr = idx < 0 ? NULL : chat_rooms_get(&cw->rooms, room, room_len, STREAM_MIN);
    if (lr == NULL && idx >= 0)
        room_table_leave(t, (uint32_t)idx);
    else if (idx < 0 && add == 0 && (idx = room_table_find(t, room, room_len)) >= 0)
        room_table_leave(t, (uint32_t)idx);     /* cannot be: a counted room has its entry */
    lock_release(&seg->lock);
    if (lr == NULL) {
        member_free(mb);
        ws_conn_close(w, c, WS_CLOSE_TRY_AGAIN, idx < 0 ? "too many rooms" : "out of memory");
        return idx < 0 ? -ENOSPC : -ENOMEM;
    }
    lr->idx = (uint32_t)idx;
    mb->conn = c;
    mb->room = lr;
    rate_init(&mb->rate, w->cfg->rate_limit_burst, w->now_ms);
    /* Everything drained so far is history (replayed first); what comes later is live. */
    drain(w);
    c->cursor = &mb->cur;       /* detached until the replay catches up */
    mb->replaying = 1;
    lr->replaying++;
    mb->rp_next = cw->replays;
    if (cw->replays != NULL)
        cw->replays->rp_prev = mb;
    cw->replays = mb;
    return room_table_online(t, (uint32_t)idx);
}

/* A member's own frame. 0, or < 0 when C could not take it (C is closed). */
static int send_text(struct worker *w, struct conn *c, const char *text, ssize_t len)
{
    if (len < 0) {
        /* Our builders' buffers are sized for the largest event: a bug, not input. */
        log_write(LOG_LVL_ALERT, 0, "conn %u: an event did not fit its buffer", c->id);
        ws_conn_fail(w, c, WS_CLOSE_INTERNAL, "internal error");
        return (int)len;
    }
    return ws_conn_send(w, c, WS_OP_TEXT, text, (size_t)len);
}

/* Take MB off the replay list (its room's count included). */
static void replay_unlink(struct chat_member *mb)
{
    if (mb->rp_prev != NULL)
        mb->rp_prev->rp_next = mb->rp_next;
    else
        cw->replays = mb->rp_next;
    if (mb->rp_next != NULL)
        mb->rp_next->rp_prev = mb->rp_prev;
    mb->rp_prev = mb->rp_next = NULL;
    mb->replaying = 0;
    mb->room->replaying--;
    chat_replay_fini(&mb->replay);
}

/*
 * MB's history reached what this worker drained: attach it to the room's
 * stream at its head (everything later arrives there), and for a fresh join
 * send history_end and announce it. 0, or < 0 with C closed.
 */
static int go_live(struct worker *w, struct chat_member *mb)
{
    struct conn *c = mb->conn;
    struct local_room *lr = mb->room;
    replay_unlink(mb);
    stream_attach(&lr->stream, &mb->cur);
    mark_dirty(lr);
    if (!mb->greeting)
        return 0;
    mb->greeting = 0;
    char buf[64];
    int rc = send_text(w, c, buf, chat_proto_simple(buf, sizeof buf, "history_end"));
    if (rc < 0)
        return rc;
    int online = room_online(w, lr);
    if (!individual_presence(w, online)) {
        mb->announced = 1;      /* counted, not named; a leave once small is named */
        return 0;
    }
    /*
     * The join and the leave to come go into the ring: charge both to the
     * address now (its connection may be gone by the leave), so join/leave
     * churn pushes history out no faster than ip_publish_rate. Over it, the
     * member is in the room unannounced: no join event, no leave event.
     */
    if (!worker_ip_charge(w, c, PRESENCE_CHARGE))
        return 0;
    /* Not announced (Redis unreachable in cluster mode): no leave to pair with it either. */
    mb->announced = publish_presence(w, mb, "join", NULL, 0, online) == 0;
    return 0;
}

/*
 * Cluster mode: a member that resumes here with a since= from a node further
 * along the stream than this one would get the ids up to since again from
 * the live stream, as this node reads them. It waits out of the stream, its
 * replay scanning what this worker drains for messages after since, until
 * the drain has passed since; or until the bridge has read the whole
 * stream by a read sent after the wait began (since is then past the
 * stream's end: a client's own number), or LIVE_WAIT_MAX_MS at most (a
 * bridge that cannot read). 1 while it must wait, 2 when its replay is to
 * go on at once before it goes live, 0 when it may.
 */
#define LIVE_WAIT_MAX_MS 30000

static int behind_since(struct worker *w, struct chat_member *mb)
{
    if (!cluster_gate_on(w->ctx.seg) || mb->replay.after <= cw->last_id)
        return 0;
    if (mb->live_wait_from_ms == 0) {
        mb->live_wait_from_ms = w->now_ms;
        mb->replay.scan = 1;
        mb->replay.pos = cw->pos;   /* everything before it was replayed or is older */
        return 1;
    }
    if (mb->live_wait_final)
        return 0;
    if (cluster_gate_read_all_since(w->ctx.seg, mb->live_wait_from_ms)) {
        /* What the bridge wrote before saying so may not be drained yet: drain, scan it, go. */
        drain(w);
        mb->live_wait_final = 1;
        return 2;
    }
    return w->now_ms < mb->live_wait_from_ms + LIVE_WAIT_MAX_MS;
}

/*
 * Go on with MB's replay: copy under the max_send_queue budget and, when
 * FLUSH, write and copy again while the socket takes it (no other event
 * would come for a connection whose writes complete at once). Goes live
 * when caught up; the end of the pass writes what is left. 0, or < 0 with
 * C closed (MB may be freed).
 */
static int replay_continue(struct worker *w, struct chat_member *mb, int flush)
{
    struct conn *c = mb->conn;
    size_t budget = w->cfg->max_send_queue;
    for (;;) {
        if (c->state != CONN_WS)
            return -EPIPE;
        struct chat_replay_src src = replay_src(w);
        int rc = chat_replay_step(&src, &mb->replay, w, c, mb->room->name, mb->room->name_len,
                                  budget);
        int wait = rc == 1 ? behind_since(w, mb) : 0;
        if (rc == 1 && wait == 0)
            return go_live(w, mb);      /* C may be closed and MB freed: touch neither */
        if (wait == 2)
            continue;
        if (rc == 1)
            return 0;   /* the end of each pass tries again */
        if (rc == RING_LAPPED) {
            STAT_ADD(w, drops_slow, 1);
            log_at(LOG_LVL_WARN, 0, "conn %u: history replay overtaken by the ring: closing "
                   "with 1013", c->id);
            ws_conn_close(w, c, WS_CLOSE_TRY_AGAIN, "history replay fell behind; resume by id");
            return rc;
        }
        if (rc == -ENOMEM) {
            ws_conn_fail(w, c, WS_CLOSE_INTERNAL, "out of memory");
            return rc;
        }
        if (rc < 0)
            return rc;
        if (!flush || (c->flags & CONN_F_WANT_WRITE))
            return 0;
        size_t before = conn_out_pending(c);
        worker_flush(w, c);
        if (c->state != CONN_WS || conn_out_pending(c) >= before)
            return 0;   /* nothing written: wait for the socket */
    }
}

/*
 * Queue welcome and the query's errors for a new member and start its
 * history; history_end and its join event follow when the replay catches
 * up (go_live). 0, or < 0 with C failed or closed.
 */
static int greet(struct worker *w, struct conn *c, struct chat_member *mb,
                 const struct chat_query *q, int online, const struct chat_room_head *head)
{
    struct local_room *lr = mb->room;
    char buf[1024];
    int rc = send_text(w, c, buf, chat_proto_welcome(buf, sizeof buf, &mb->id, lr->name,
                                                     lr->name_len, online, cw->last_id));
    if (rc == 0 && q->nick_present && !q->nick_ok)
        rc = send_error(w, c, "bad_nick", "nick must be 1-32 visible characters, no space at either end");
    if (rc == 0 && q->since_present && !q->since_ok)
        rc = send_error(w, c, "bad_since", "since must be a message id");
    if (rc < 0)
        return rc;
    mb->greeting = 1;
    mb->announced = 0;
    mb->since_given = q->since_present && q->since_ok;
    struct chat_replay_src src = replay_src(w);
    if (chat_replay_start(&src, &mb->replay, w, c, head, lr->name, lr->name_len,
                          q->since_present && q->since_ok, q->since) < 0) {
        ws_conn_fail(w, c, WS_CLOSE_INTERNAL, "out of memory");
        return -ENOMEM;
    }
    return replay_continue(w, mb, 0);
}

/* The open hook: C was upgraded on /chat[/SUB] with QUERY. */
static int chat_open(struct worker *w, struct conn *c, const char *sub, size_t sub_len,
                     const char *query, size_t query_len)
{
    struct chat_query q;
    chat_query_parse(query, query_len, &q);
    struct chat_member *mb = calloc(1, sizeof *mb);
    if (mb == NULL) {
        ws_conn_fail(w, c, WS_CLOSE_INTERNAL, "out of memory");
        return -ENOMEM;
    }
    new_uid(mb->id.uid);
    if (q.nick_ok) {
        memcpy(mb->id.nick, q.nick, q.nick_len);
        mb->id.nick_len = (uint8_t)q.nick_len;
    } else {
        mb->id.nick_len = (uint8_t)chat_guest_nick(mb->id.uid, mb->id.nick);
    }
    const char *room = sub != NULL ? sub : "lobby";
    size_t room_len = sub != NULL ? sub_len : 5;
    int rc = identify(w, mb, room, room_len, &q);
    if (rc < 0) {
        member_free(mb);
        if (rc == -EACCES)
            ws_conn_close(w, c, WS_CLOSE_POLICY, "token expired");
        else
            ws_conn_fail(w, c, WS_CLOSE_INTERNAL, "out of memory");
        return rc;
    }
    access_name(w, c, mb, room, room_len);
    struct chat_room_head head;
    int online = attach(w, c, mb, room, room_len, -1, &head);
    if (online < 0)
        return online;
    return greet(w, c, mb, &q, online, &head);
}

/*
 * Take C's member out of its room's stream and the shm presence count (no
 * event), and return it (the caller frees it); NULL if C is no member. The
 * room is freed at the end of the pass once it has no members.
 */
static struct chat_member *detach(struct worker *w, struct conn *c, int keep_count)
{
    struct chat_member *mb = member_of(c);
    if (mb == NULL)
        return NULL;
    struct local_room *lr = mb->room;
    /* Counted out while still counted in here, so a catch-up in between is exact. */
    if (!keep_count && rooms_lock(w) == 0) {
        room_table_leave(shm_rooms(w->ctx.seg), lr->idx);
        lock_release(&w->ctx.seg->lock);
    }
    if (mb->replaying)
        replay_unlink(mb);
    else
        stream_detach(&mb->cur);
    c->cursor = NULL;
    mark_dirty(lr);
    return mb;
}

/*
 * What a retiring worker passes on with a chat connection (same binary on
 * both ends; the adopter checks every field, chat_handoff_check).
 * Everything up to resume_id is in the connection's queued output, or was
 * written: the adopter replays the room's messages after it.
 */
struct chat_handoff {
    struct chat_identity identity;  /* its user pointer is not used: user[] is */
    uint8_t  room_len;
    char     room[RING_ROOM_MAX];
    uint64_t resume_id;         /* every entry up to this id has been written or queued */
    uint32_t room_epoch;        /* room table epoch it stayed counted in */
    uint8_t  user_len;          /* 0: a guest */
    char     user[JWT_SUB_MAX];
    int64_t  expires_s;         /* its token's end, with user_len */
    uint8_t  have_since;        /* 0: a join whose history had not begun: the room's
                                   last history_size messages, not those after an id */
    uint8_t  greeting;          /* its history_end and join event are still to come */
    uint8_t  announced;         /* its join was published: a leave follows */
};

/*
 * MB's stream bytes not yet written join its connection's private output,
 * in the order worker_flush() writes them: the rest of a frame under way
 * in front of everything, the frames after it at the end. 0 or -ENOMEM.
 */
static int stream_to_output(struct worker *w, struct chat_member *mb)
{
    struct conn *c = mb->conn;
    struct iovec rest[2], all[4];
    int k = stream_rest_of_frame(&mb->cur, rest);
    int n = stream_iov(&mb->cur, NULL, 0, all, 4);   /* the same rest first, then the frames */
    size_t at = 0;
    for (int i = 0; i < k; at += rest[i].iov_len, i++)
        if (conn_out_insert(&w->conns, c, at, rest[i].iov_base, rest[i].iov_len) < 0)
            return -ENOMEM;
    for (int i = k; i < n; i++)
        if (conn_out_append(&w->conns, c, all[i].iov_base, all[i].iov_len) < 0)
            return -ENOMEM;
    return 0;
}

/*
 * Any member moves: a live one with what its stream still had for it
 * moved into its output (resuming after the newest id drained here), one
 * whose history is under way after the last message it was given.
 */
static ssize_t chat_handoff_take(struct worker *w, struct conn *c, void *rec, size_t cap)
{
    struct chat_member *mb = member_of(c);
    struct chat_handoff h;
    if (mb == NULL || cap < sizeof h)
        return -EAGAIN;
    if (!mb->replaying && backlog(mb) > w->cfg->max_send_queue) {
        /* What the end of this pass would do to it (chat_pass_end). */
        STAT_ADD(w, drops_slow, 1);
        log_at(LOG_LVL_WARN, 0, "conn %u: send queue over %llu bytes: closing with 1013",
               c->id, (unsigned long long)w->cfg->max_send_queue);
        ws_conn_close(w, c, WS_CLOSE_TRY_AGAIN, "send queue full");
        return -EPIPE;
    }
    memset(&h, 0, sizeof h);
    if (mb->replaying) {
        /* Messages go out in id order: the last one given is where to go on. */
        h.resume_id = mb->replay.after;
        h.have_since = mb->since_given || mb->replay.after != 0;
    } else {
        if (stream_to_output(w, mb) < 0) {
            log_write(LOG_LVL_ALERT, ENOMEM, "conn %u: moving its stream to its output failed",
                      c->id);
            worker_close_now(w, c);     /* the peer would see a cut frame */
            return -ENOMEM;
        }
        h.resume_id = cw->last_id;
        h.have_since = 1;
    }
    h.greeting = mb->greeting;
    h.announced = (uint8_t)(mb->announced != 0);
    h.identity = mb->id;
    h.identity.user = NULL;
    if (mb->token != NULL) {
        h.user_len = mb->token->user_len;
        memcpy(h.user, mb->token->user, h.user_len);
        h.expires_s = mb->token->expires_s;
    }
    h.room_len = mb->room->name_len;
    memcpy(h.room, mb->room->name, h.room_len);
    /*
     * It stays counted in its room while in flight: the room must not read
     * empty (and lose its entry to a new name) between the two workers.
     */
    h.room_epoch = cw->rooms.epoch;
    member_free(detach(w, c, 1));
    memcpy(rec, &h, sizeof h);
    return (ssize_t)sizeof h;
}

/* A record nobody adopts: its member leaves the count it was carried in. */
static void chat_handoff_abort(struct worker *w, const void *rec, size_t len)
{
    struct chat_handoff h;
    if (len != sizeof h || rooms_lock(w) < 0)
        return;
    memcpy(&h, rec, sizeof h);
    struct room_table *t = shm_rooms(w->ctx.seg);
    int idx = room_table_find(t, h.room, h.room_len > RING_ROOM_MAX ? RING_ROOM_MAX : h.room_len);
    if (idx >= 0 && h.room_epoch == t->epoch)
        room_table_leave(t, (uint32_t)idx);
    lock_release(&w->ctx.seg->lock);
}

/* A uuid4 as new_uid() writes it: 36 characters, dashes at 8, 13, 18, 23, NUL. */
static int uid_valid(const char uid[37])
{
    for (int i = 0; i < 36; i++) {
        char ch = uid[i];
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? ch != '-' : !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return 0;
    }
    return uid[36] == '\0';
}

/* Every field of a record from another process, before its connection is taken. */
static int chat_handoff_check(struct worker *w, const void *rec, size_t len)
{
    struct chat_handoff h;
    (void)w;
    if (len != sizeof h)
        return -EINVAL;
    memcpy(&h, rec, sizeof h);
    const struct chat_identity *id = &h.identity;
    int ok = h.room_len <= RING_ROOM_MAX && chat_room_name_valid(h.room, h.room_len) &&
             uid_valid(id->uid) && id->nick_len <= CHAT_NICK_MAX_BYTES &&
             chat_nick_valid(id->nick, id->nick_len) && h.user_len <= JWT_SUB_MAX &&
             id->user_len == h.user_len && (h.user_len > 0 || h.expires_s == 0) &&
             h.have_since <= 1 && h.greeting <= 1 && h.announced <= 1 &&
             (h.have_since || h.resume_id == 0);
    return ok ? 0 : -EINVAL;
}

static int chat_handoff_adopt(struct worker *w, struct conn *c, const void *rec, size_t len)
{
    struct chat_handoff h;
    memcpy(&h, rec, len < sizeof h ? len : sizeof h);   /* chat_handoff_check()ed */
    struct chat_member *mb = calloc(1, sizeof *mb);
    if (mb == NULL) {
        chat_handoff_abort(w, rec, len);
        ws_conn_fail(w, c, WS_CLOSE_INTERNAL, "out of memory");
        return -ENOMEM;
    }
    mb->id = h.identity;
    mb->id.user = NULL;
    mb->id.user_len = 0;
    if (h.user_len > 0) {
        mb->token = chat_token_restore(&cw->tokens, mb, h.user, h.user_len, h.expires_s);
        if (mb->token == NULL) {
            free(mb);
            chat_handoff_abort(w, rec, len);
            ws_conn_fail(w, c, WS_CLOSE_INTERNAL, "out of memory");
            return -ENOMEM;
        }
        mb->id.user = mb->token->user;
        mb->id.user_len = mb->token->user_len;
    }
    mb->announced = h.announced;
    mb->greeting = h.greeting;
    mb->since_given = h.have_since;
    access_name(w, c, mb, h.room, h.room_len);
    struct chat_room_head head;
    int rc = attach(w, c, mb, h.room, h.room_len, (int)h.room_epoch, &head);
    if (rc < 0)
        return rc;
    /*
     * The old worker had queued everything up to resume_id; attach() drained
     * this worker to the ring head, which is at least that far, so what the
     * member misses in between is exactly the history after resume_id.
     */
    struct chat_replay_src src = replay_src(w);
    if (chat_replay_start(&src, &mb->replay, w, c, &head, mb->room->name,
                          mb->room->name_len, h.have_since, h.resume_id) < 0) {
        ws_conn_fail(w, c, WS_CLOSE_INTERNAL, "out of memory");
        return -ENOMEM;
    }
    return replay_continue(w, mb, 0);
}

/*
 * The close hook: C leaves its room, from its close frame being queued or
 * its release, whichever comes first; the leave event is published here.
 */
static void chat_close(struct worker *w, struct conn *c)
{
    struct chat_member *mb = member_of(c);
    if (mb == NULL)
        return;
    struct iovec rest[2];
    int k = c->state != CONN_DEAD ? stream_rest_of_frame(&mb->cur, rest) : 0;
    /* Half a frame is on the wire: its rest must precede anything private. */
    for (int i = 0, at = 0; i < k; at += (int)rest[i].iov_len, i++)
        if (conn_out_insert(&w->conns, c, (size_t)at, rest[i].iov_base, rest[i].iov_len) < 0) {
            worker_close_now(w, c);     /* the peer would see a cut frame */
            break;
        }
    struct local_room *lr = mb->room;
    detach(w, c, 0);
    /*
     * A worker that is stopping closes every member at once and they come
     * straight back (1012): a leave event each would cost every other
     * member of the room one delivery per leaver, for nothing.
     */
    int online = room_online(w, lr);
    /* The room's size before this leave decides, as it did for the join. */
    if (mb->announced && !w->stopping && individual_presence(w, online + 1))
        publish_presence(w, mb, "leave", NULL, 0, online);
    member_free(mb);
}

/* The message hook: a complete text or binary message from member C. */
static void chat_message(struct worker *w, struct conn *c, int opcode, const uint8_t *data,
                         size_t len)
{
    struct chat_member *mb = member_of(c);
    if (mb == NULL || !chat_limit_rate(w, c, &mb->rate))
        return;
    if (opcode != WS_OP_TEXT) {
        send_error(w, c, "binary", "binary messages are not supported; send text");
        return;
    }
    struct chat_input in;
    int rc = chat_input_parse((const char *)data, len, cw->input, cw->input_cap, &in);
    if (rc < 0) {
        send_error(w, c, chat_input_error_code(rc), chat_input_error_reason(rc));
        return;
    }
    if (in.kind == CHAT_INPUT_NICK) {
        if (mb->token != NULL) {
            send_error(w, c, "nick_locked", "your name comes from your token");
            return;
        }
        char old[sizeof mb->id.nick];
        size_t old_len = mb->id.nick_len;
        if (!chat_nick_valid(in.value, in.value_len)) {
            send_error(w, c, "bad_nick", "nick must be 1-32 visible characters, no space at either end");
            return;
        }
        /* A nick event is about two nicks and a uid: charge its typical size. */
        if (!chat_limit_address(w, c, 256))
            return;
        memcpy(old, mb->id.nick, old_len);
        memcpy(mb->id.nick, in.value, in.value_len);
        mb->id.nick_len = (uint8_t)in.value_len;
        publish_presence(w, mb, "nick", old, old_len, room_online(w, mb->room));
        return;
    }
    if (in.value_len == 0) {
        send_error(w, c, "empty", "message text is empty");
        return;
    }
    if (in.value_len > w->cfg->max_text) {
        send_error(w, c, "too_long", "message text is longer than max_text");
        return;
    }
    ssize_t n = chat_proto_message_body((char *)cw->frame, cw->frame_cap, mb->room->name,
                                        mb->room->name_len, &mb->id, in.value, in.value_len);
    if (n >= 0 && !chat_limit_address(w, c, (size_t)n))
        return;
    int64_t id = n < 0 ? -ENOMEM
               : chat_publish(w, RING_KIND_MESSAGE, mb->room->name, mb->room->name_len,
                              "message", (const char *)cw->frame, (size_t)n);
    if (id == -EAGAIN && cluster_gate_on(w->ctx.seg))
        send_error(w, c, "unavailable", "the cluster cannot be reached now: message not sent");
    else if (id == -EAGAIN)
        send_error(w, c, "unavailable", "history cannot be written now: message not sent");
    else if (id < 0)
        send_error(w, c, "internal", "the message could not be published");
}

static int chat_of_user(const struct conn *c, const char *user, size_t len)
{
    const struct chat_member *mb = member_of(c);
    return mb != NULL && mb->token != NULL && mb->id.user_len == len &&
           memcmp(mb->id.user, user, len) == 0;
}

const struct ws_endpoint chat_endpoint = {
    .name = "chat",
    .path = "/chat",
    .subpaths = 1,
    .check = chat_check,
    .init = chat_init,
    .open = chat_open,
    .message = chat_message,
    .close = chat_close,
    .handoff_take = chat_handoff_take,
    .handoff_check = chat_handoff_check,
    .handoff_adopt = chat_handoff_adopt,
    .handoff_abort = chat_handoff_abort,
    .of_user = chat_of_user,
    .wake = chat_wake,
    .pass_end = chat_pass_end,
};
