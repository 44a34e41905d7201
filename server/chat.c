/*
 * chat: rooms, members and delivery (see chat.h for the data path).
 *
 * Per worker, a room with local members has a stream: a power-of-two byte
 * ring holding the complete frames of that room in id order, appended once
 * per entry drained from the shm ring. A member's pending output is
 * [pos + off, head) of its room's stream, written with writev straight from
 * it; `pos` is always a frame start and `off` the bytes of that frame
 * already sent, so a private frame (pong, error) is only ever inserted at a
 * frame boundary. Events are built in chat_event.c; this file owns state.
 */
#include "chat.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "chat_event.h"
#include "chat_history.h"
#include "conn.h"
#include "log.h"
#include "notify.h"
#include "shm.h"
#include "worker.h"
#include "ws_conn.h"
#include "ws_frame.h"

#define STREAM_MIN   (64u * 1024u)

struct local_room;

struct chat_member {
    struct conn *conn;
    struct local_room *room;
    struct chat_member *prev, *next;
    uint64_t pos;               /* stream position of the frame being sent */
    uint64_t off;               /* bytes of that frame already written */
    struct chat_identity id;
};

struct local_room {
    int      idx;               /* shm room index */
    uint8_t  name_len;
    char     name[RING_ROOM_MAX + 1];
    uint8_t *buf;               /* stream bytes, cap a power of two */
    uint64_t cap;
    uint64_t head;              /* logical end of the stream */
    uint64_t low;               /* lower bound of every member's pos */
    struct chat_member *members;
    uint32_t nmembers;
    int      dirty;
    struct local_room *dirty_next;
};

struct chat_worker {
    uint64_t pos;               /* shm ring position drained up to */
    uint64_t last_id;           /* id of the newest entry drained */
    uint8_t *frame;             /* scratch for one entry */
    size_t   frame_cap;
    struct local_room *rooms[SHM_MAX_ROOMS];
    struct local_room *dirty;
    uint64_t *hist;             /* history_size ring positions, for one join */
    struct chat_history index;  /* where each room's recent messages are */
    char    *input;             /* decoded JSON input */
    size_t   input_cap;
    uint8_t  rnd[512];          /* getrandom() pool for uids */
    size_t   rnd_left;
};

static struct chat_worker chat_state;

static struct ring *ring_of(struct worker *w) { return &w->ctx.seg->ring; }

int chat_route(const char *path, size_t len, const char **room, size_t *room_len)
{
    if (len == 5 && memcmp(path, "/chat", 5) == 0) {
        *room = "lobby";
        *room_len = 5;
        return 1;
    }
    if (len < 6 || memcmp(path, "/chat/", 6) != 0)
        return 0;
    *room = path + 6;
    *room_len = len - 6;
    return chat_room_name_valid(*room, *room_len) ? 1 : -1;
}

/*
 * Positions indexed per room: history_size, capped so that a huge
 * history_size does not cost 16 bytes x history_size x rooms per worker.
 * A plain join asking for more than the cap scans the ring instead.
 */
#define INDEX_MAX 1024u
static uint32_t index_size(const struct worker *w)
{
    return w->cfg->history_size < INDEX_MAX ? w->cfg->history_size : INDEX_MAX;
}

int chat_worker_init(struct worker *w)
{
    struct chat_worker *cw = &chat_state;
    cw->frame_cap = ring_max_entry(ring_of(w));
    cw->frame = malloc(cw->frame_cap);
    cw->hist = calloc(w->cfg->history_size ? w->cfg->history_size : 1, sizeof *cw->hist);
    /* Worst case of a valid input: every text byte escaped as \u00XX. */
    cw->input_cap = w->cfg->max_text * 6 + 4096;
    cw->input = malloc(cw->input_cap);
    if (cw->frame == NULL || cw->hist == NULL || cw->input == NULL)
        return -1;
    /*
     * A new worker has no members yet, but joins will ask for history:
     * index what the ring holds (one walk per worker start), then go live.
     */
    chat_history_init(&cw->index, index_size(w));
    struct ring *r = ring_of(w);
    cw->last_id = ring_last_id(r);
    cw->pos = ring_tail(r);
    for (;;) {
        struct ring_entry e;
        uint64_t at = cw->pos;
        ssize_t n = ring_peek(r, &cw->pos, &e);
        if (n == RING_LAPPED) {
            chat_history_fini(&cw->index);
            chat_history_init(&cw->index, index_size(w));
            cw->pos = ring_tail(r);
            continue;
        }
        if (n < 0)
            break;
        chat_history_note(&cw->index, &e, at);
        cw->last_id = e.id;
    }
    w->chat = cw;
    return 0;
}

/* ---- streams ---- */

/* Total length of the frame starting at stream position POS. */
static uint64_t frame_len_at(const struct local_room *lr, uint64_t pos)
{
    uint8_t h[10];
    uint64_t m = lr->cap - 1;
    h[0] = lr->buf[pos & m];
    h[1] = lr->buf[(pos + 1) & m];
    uint64_t len = h[1] & 0x7f;
    if (len == 126) {
        len = (uint64_t)lr->buf[(pos + 2) & m] << 8 | lr->buf[(pos + 3) & m];
        return 4 + len;
    }
    if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | lr->buf[(pos + 2 + (uint64_t)i) & m];
        return 10 + len;
    }
    return 2 + len;
}

static void advance(struct chat_member *mb, uint64_t n)
{
    struct local_room *lr = mb->room;
    mb->off += n;
    while (mb->pos < lr->head) {
        uint64_t fl = frame_len_at(lr, mb->pos);
        if (mb->off < fl)
            break;
        mb->off -= fl;
        mb->pos += fl;
    }
}

/* Up to two iovecs covering stream bytes [from, to). */
static int stream_iov(const struct local_room *lr, uint64_t from, uint64_t to,
                      struct iovec *iov, int max)
{
    int n = 0;
    while (from < to && n < max) {
        uint64_t at = from & (lr->cap - 1);
        uint64_t run = lr->cap - at < to - from ? lr->cap - at : to - from;
        iov[n].iov_base = lr->buf + at;
        iov[n].iov_len = run;
        n++;
        from += run;
    }
    return n;
}

int chat_stream_iov(struct worker *w, struct conn *c, struct iovec *iov, int max)
{
    struct chat_member *mb = c->member;
    struct local_room *lr = mb->room;
    int n = 0;
    uint64_t from = mb->pos + mb->off;
    if (mb->off > 0) {
        /* Finish the frame under way before any private frame goes out. */
        uint64_t end = mb->pos + frame_len_at(lr, mb->pos);
        n += stream_iov(lr, from, end, iov, max);
        from = end;
    }
    if (conn_out_pending(c) > 0 && n < max) {
        iov[n].iov_base = c->out + c->out_off;
        iov[n].iov_len = conn_out_pending(c);
        n++;
    }
    n += stream_iov(lr, from, lr->head, iov + n, max - n);
    (void)w;
    return n;
}

void chat_stream_consumed(struct worker *w, struct conn *c, size_t n)
{
    struct chat_member *mb = c->member;
    if (mb->off > 0) {
        uint64_t rest = frame_len_at(mb->room, mb->pos) - mb->off;
        uint64_t take = n < rest ? n : rest;
        advance(mb, take);
        n -= take;
    }
    size_t priv = conn_out_pending(c) < n ? conn_out_pending(c) : n;
    if (priv > 0)
        conn_out_consume(&w->conns, c, priv);
    n -= priv;
    if (n > 0)
        advance(mb, n);
}

static uint64_t backlog(const struct chat_member *mb)
{
    return mb->room->head - mb->pos - mb->off + conn_out_pending(mb->conn);
}

static int stream_grow(struct local_room *lr, uint64_t need)
{
    uint64_t cap = lr->cap ? lr->cap : STREAM_MIN;
    while (cap < need)
        cap *= 2;
    if (cap == lr->cap)
        return 0;
    uint8_t *nb = malloc(cap);
    if (nb == NULL)
        return -1;
    /* Live bytes keep their logical positions: copy [low, head) over. */
    for (uint64_t p = lr->low; p < lr->head;) {
        uint64_t at = p & (lr->cap - 1);
        uint64_t run = lr->cap - at < lr->head - p ? lr->cap - at : lr->head - p;
        uint64_t nat = p & (cap - 1);
        uint64_t nrun = cap - nat < run ? cap - nat : run;
        memcpy(nb + nat, lr->buf + at, nrun);
        if (nrun < run)
            memcpy(nb, lr->buf + at + nrun, run - nrun);
        p += run;
    }
    free(lr->buf);
    lr->buf = nb;
    lr->cap = cap;
    return 0;
}

static void mark_dirty(struct chat_worker *cw, struct local_room *lr)
{
    if (!lr->dirty) {
        lr->dirty = 1;
        lr->dirty_next = cw->dirty;
        cw->dirty = lr;
    }
}

static void stream_append(struct worker *w, struct local_room *lr, const uint8_t *frame, size_t len)
{
    if (lr->head + len - lr->low > lr->cap) {
        uint64_t low = lr->head;
        for (struct chat_member *mb = lr->members; mb; mb = mb->next)
            low = mb->pos < low ? mb->pos : low;
        lr->low = low;
        if (lr->head + len - low > lr->cap && stream_grow(lr, lr->head + len - low) < 0) {
            log_write(LOG_LVL_ALERT, ENOMEM, "growing the stream of room %s failed", lr->name);
            return;
        }
    }
    uint64_t at = lr->head & (lr->cap - 1);
    uint64_t run = lr->cap - at < len ? lr->cap - at : len;
    memcpy(lr->buf + at, frame, run);
    if (run < len)
        memcpy(lr->buf, frame + run, len - run);
    lr->head += len;
    STAT_ADD(w, deliveries, lr->nmembers);
    mark_dirty(w->chat, lr);
}

/* ---- draining the shm ring ---- */

static void on_overrun(struct worker *w)
{
    struct chat_worker *cw = w->chat;
    struct ring_entry oldest;
    uint64_t p = ring_tail(ring_of(w));
    uint64_t first = ring_peek(ring_of(w), &p, &oldest) >= 0 ? oldest.id : cw->last_id + 1;
    STAT_ADD(w, ring_overruns, 1);
    log_write(LOG_LVL_WARN, 0, "fell a whole ring behind: ids %llu..%llu lost here",
              (unsigned long long)cw->last_id + 1, (unsigned long long)first - 1);
    for (int i = 0; i < SHM_MAX_ROOMS; i++) {
        struct local_room *lr = cw->rooms[i];
        if (lr == NULL || lr->nmembers == 0)
            continue;
        size_t n = chat_event_gap(cw->frame, cw->frame_cap, lr->name, lr->name_len,
                                  cw->last_id + 1, first - 1);
        stream_append(w, lr, cw->frame, n);
    }
    cw->pos = ring_tail(ring_of(w));
}

static struct local_room *room_for(struct chat_worker *cw, const struct ring_entry *e)
{
    if (e->room_slot >= SHM_MAX_ROOMS)
        return NULL;
    struct local_room *lr = cw->rooms[e->room_slot];
    if (lr == NULL || lr->name_len != e->room_len || memcmp(lr->name, e->room, e->room_len) != 0)
        return NULL;
    return lr;
}

static void drain(struct worker *w)
{
    struct chat_worker *cw = w->chat;
    struct ring *r = ring_of(w);
    for (;;) {
        struct ring_entry e;
        uint64_t next = cw->pos;
        ssize_t n = ring_peek(r, &next, &e);
        if (n == RING_EMPTY)
            return;
        if (n == RING_LAPPED) {
            on_overrun(w);
            continue;
        }
        struct local_room *lr = room_for(cw, &e);
        if (lr == NULL || lr->nmembers == 0) {
            chat_history_note(&cw->index, &e, cw->pos);
            cw->pos = next;
            cw->last_id = e.id;
            continue;
        }
        uint64_t at = cw->pos;
        n = ring_read(r, &at, &e, cw->frame, cw->frame_cap);
        if (n == RING_LAPPED) {
            on_overrun(w);
            continue;
        }
        if (n < 0) {
            log_write(LOG_LVL_ALERT, 0, "ring entry %llu unreadable (%zd)",
                      (unsigned long long)e.id, n);
            cw->pos = next;
            continue;
        }
        chat_history_note(&cw->index, &e, cw->pos);
        cw->pos = at;
        cw->last_id = e.id;
        stream_append(w, lr, cw->frame, (size_t)n);
    }
}

void chat_on_wake(struct worker *w)
{
    notify_ack(w->ctx.seg, w->ctx.eventfds, w->ctx.slot);
    drain(w);
}

void chat_flush_dirty(struct worker *w)
{
    struct chat_worker *cw = w->chat;
    drain(w);
    while (cw->dirty != NULL) {
        struct local_room *lr = cw->dirty;
        cw->dirty = lr->dirty_next;
        /* lr->dirty stays set during the walk: a leave inside it must not re-queue lr. */
        struct chat_member *mb = lr->members, *next;
        for (; mb != NULL; mb = next) {
            next = mb->next;
            struct conn *c = mb->conn;
            if (!(c->flags & CONN_F_WANT_WRITE))
                worker_flush(w, c);
            if (c->member == mb && backlog(mb) > w->cfg->max_send_queue) {
                STAT_ADD(w, drops_slow, 1);
                log_at(LOG_LVL_WARN, 0, "conn %u: send queue over %llu bytes: closing with 1013",
                       c->id, (unsigned long long)w->cfg->max_send_queue);
                ws_conn_close(w, c, WS_CLOSE_TRY_AGAIN, "send queue full");
            }
        }
        lr->dirty = 0;
        if (lr->nmembers == 0) {
            cw->rooms[lr->idx] = NULL;
            free(lr->buf);
            free(lr);
        }
    }
}

/* ---- publishing ---- */

/*
 * Publish one event of TYPE whose body after the id and ts is BODY. The id
 * and timestamp are assigned under the lock, so ids and times rise together
 * and every worker sees one order.
 */
static int publish(struct worker *w, int kind, int room_idx, const char *room, size_t room_len,
                   const char *type, const char *body, size_t body_len)
{
    struct shm_segment *seg = w->ctx.seg;
    int lk = lock_acquire(&seg->lock);
    if (lk < 0) {
        log_write(LOG_LVL_ALERT, errno, "lock_acquire() failed");
        return -1;
    }
    if (lk == LOCK_RECOVERED)
        log_write(LOG_LVL_WARN, 0, "publish lock recovered from a dead worker");
    int rc = chat_event_commit(&seg->ring, kind, room_idx, room, room_len, type, body, body_len);
    lock_release(&seg->lock);
    if (rc < 0) {
        log_write(LOG_LVL_ALERT, 0, "event too large for the ring (%zu bytes)", body_len);
        return -1;
    }
    STAT_ADD(w, msgs_published, 1);
    notify_all_except(seg, w->ctx.eventfds, w->ctx.slot);
    return 0;
}

static int publish_presence(struct worker *w, struct chat_member *mb, const char *type,
                            const char *old_nick, size_t old_len, int online)
{
    struct chat_worker *cw = w->chat;
    size_t n = chat_event_presence_body((char *)cw->frame, cw->frame_cap, mb->room->name,
                                        mb->room->name_len, &mb->id, old_nick, old_len, online);
    return publish(w, RING_KIND_PRESENCE, mb->room->idx, mb->room->name, mb->room->name_len,
                   type, (const char *)cw->frame, n);
}

/* ---- members ---- */

static void send_error(struct worker *w, struct conn *c, const char *code, const char *reason)
{
    char buf[512];
    size_t n = chat_event_error(buf, sizeof buf, code, reason);
    ws_conn_send(w, c, WS_OP_TEXT, buf, n);
}

static void new_uid(struct chat_worker *cw, char out[37])
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

/* Copy the entry at ring position AT into C's output. 0, or -1 if it was overwritten. */
static int copy_entry(struct worker *w, struct conn *c, uint64_t at)
{
    struct ring_entry e;
    uint64_t q = at;
    if (ring_peek(ring_of(w), &q, &e) < 0)
        return -1;
    uint8_t *dst = conn_out_reserve(&w->conns, c, e.len);
    if (dst == NULL)
        return -1;
    if (ring_read(ring_of(w), &at, &e, dst, e.len) != (ssize_t)e.len) {
        c->out_len -= e.len;
        return -1;
    }
    return 0;
}

static int is_room_message(const struct ring_entry *e, const struct local_room *lr)
{
    return e->kind == RING_KIND_MESSAGE && e->room_len == lr->name_len &&
           memcmp(e->room, lr->name, lr->name_len) == 0;
}

/*
 * The slow path of send_history(): walk the ring from its tail up to what
 * this worker drained. If a writer laps the walk, the output is rolled back
 * to MARK (counted from out_off) and the walk starts again.
 */
static void scan_history(struct worker *w, struct conn *c, struct local_room *lr,
                         int have_since, uint64_t since, size_t mark)
{
    struct chat_worker *cw = w->chat;
    struct ring *r = ring_of(w);
    uint32_t want = w->cfg->history_size;
    struct ring_entry e;
    uint64_t count;
restart:
    c->out_len = c->out_off + (uint32_t)mark;
    count = 0;
    for (uint64_t p = ring_tail(r);;) {
        uint64_t at = p;
        ssize_t n = ring_peek(r, &p, &e);
        if (n == RING_LAPPED)
            goto restart;
        if (n < 0 || at >= cw->pos)
            break;
        if (!is_room_message(&e, lr))
            continue;
        if (have_since) {
            if (e.id > since && copy_entry(w, c, at) < 0)
                goto restart;
        } else if (want > 0) {
            cw->hist[count++ % want] = at;
        }
    }
    for (uint64_t i = count > want ? count - want : 0; !have_since && i < count; i++)
        if (copy_entry(w, c, cw->hist[i % want]) < 0)
            goto restart;
}

/* Id of the oldest entry the ring holds, or of the next one when it is empty. */
static uint64_t ring_oldest_id(struct worker *w)
{
    struct ring *r = ring_of(w);
    struct ring_entry e;
    for (;;) {
        uint64_t p = ring_tail(r);
        ssize_t n = ring_peek(r, &p, &e);
        if (n >= 0)
            return e.id;
        if (n == RING_EMPTY) {
            uint64_t last = ring_last_id(r);
            return last + 1 > ring_first_id(r) ? last + 1 : ring_first_id(r);
        }
    }
}

/*
 * Queue the room's history: its last history_size messages, or with since=
 * every message after that id, preceded by a gap event when the ring no
 * longer reaches back to since + 1. Only entries this worker has drained
 * count (later ones reach the member through its stream), so nothing is
 * sent twice. The worker's index answers most joins; a ring scan the rest.
 */
static void send_history(struct worker *w, struct conn *c, struct local_room *lr,
                         int have_since, uint64_t since)
{
    struct chat_worker *cw = w->chat;
    /* Where this history starts, counted from out_off: growing may slide the buffer. */
    size_t mark = conn_out_pending(c);
    long n = -1;
    if (have_since || w->cfg->history_size <= cw->index.per_room)
        n = chat_history_select(&cw->index, lr->idx, lr->name, lr->name_len,
                                have_since, since, cw->hist);
    if (n < 0)
        scan_history(w, c, lr, have_since, since, mark);
    for (long i = 0; i < n; i++)
        copy_entry(w, c, cw->hist[i]);  /* one lapped meanwhile is covered by the gap check */
    if (!have_since)
        return;
    /*
     * Ids this client has not seen but the ring no longer holds: from
     * since + 1 (or, for since=0, "nothing seen", from the first id this
     * ring issued) up to its oldest entry. An id below the ring's first
     * comes from before a restart, and that history is gone too.
     */
    uint64_t lo = since == 0 ? ring_first_id(ring_of(w)) : since + 1;
    uint64_t oldest = ring_oldest_id(w);
    if (oldest > lo) {
        /* The gap goes first: move what was queued since MARK behind it. */
        uint8_t gap[256];
        size_t g = chat_event_gap(gap, sizeof gap, lr->name, lr->name_len, lo, oldest - 1);
        conn_out_insert(&w->conns, c, mark, gap, g);
    }
}

static struct local_room *local_room_get(struct worker *w, int idx, const char *name, size_t len)
{
    struct chat_worker *cw = w->chat;
    struct local_room *lr = cw->rooms[idx];
    if (lr != NULL)
        return lr;
    lr = calloc(1, sizeof *lr);
    if (lr == NULL)
        return NULL;
    lr->idx = idx;
    lr->name_len = (uint8_t)len;
    memcpy(lr->name, name, len);
    if (stream_grow(lr, STREAM_MIN) < 0) {
        free(lr);
        return NULL;
    }
    cw->rooms[idx] = lr;
    return lr;
}

/*
 * Make MB (identity filled in) a member of ROOM on C: count it in the shm
 * presence table, and start its stream at what this worker has drained, so
 * everything older is the caller's to send as history. Returns the room's
 * online count, or -1 with C closed (MB freed).
 */
static int attach(struct worker *w, struct conn *c, struct chat_member *mb,
                  const char *room, size_t room_len)
{
    struct shm_segment *seg = w->ctx.seg;
    if (lock_acquire(&seg->lock) < 0) {
        free(mb);
        ws_conn_fail(w, c, WS_CLOSE_INTERNAL, "lock failed");
        return -1;
    }
    int idx = shm_room_join(seg, room, room_len, w->ctx.slot);
    lock_release(&seg->lock);
    struct local_room *lr = idx < 0 ? NULL : local_room_get(w, idx, room, room_len);
    if (lr == NULL) {
        if (idx >= 0)
            shm_room_leave(seg, idx, w->ctx.slot);
        free(mb);
        ws_conn_close(w, c, WS_CLOSE_TRY_AGAIN, idx < 0 ? "too many rooms" : "out of memory");
        return -1;
    }
    mb->conn = c;
    mb->room = lr;
    c->member = mb;

    /* Everything drained so far is history; what comes later is live. */
    drain(w);
    mb->pos = lr->head;
    mb->next = lr->members;
    if (lr->members)
        lr->members->prev = mb;
    lr->members = mb;
    lr->nmembers++;
    mark_dirty(w->chat, lr);
    return shm_room_online(seg, idx);
}

int chat_join(struct worker *w, struct conn *c, const char *room, size_t room_len,
              const char *query, size_t query_len)
{
    struct chat_worker *cw = w->chat;
    struct chat_query q;
    chat_query_parse(query, query_len, &q);

    struct chat_member *mb = calloc(1, sizeof *mb);
    if (mb == NULL) {
        ws_conn_fail(w, c, WS_CLOSE_INTERNAL, "out of memory");
        return -1;
    }
    new_uid(cw, mb->id.uid);
    if (q.nick_ok) {
        memcpy(mb->id.nick, q.nick, q.nick_len);
        mb->id.nick_len = (uint8_t)q.nick_len;
    } else {
        mb->id.nick_len = (uint8_t)chat_guest_nick(mb->id.uid, mb->id.nick);
    }
    int online = attach(w, c, mb, room, room_len);
    if (online < 0)
        return -1;
    struct local_room *lr = mb->room;
    char buf[1024];
    size_t n = chat_event_welcome(buf, sizeof buf, &mb->id, lr->name, lr->name_len, online,
                                  cw->last_id);
    ws_conn_send(w, c, WS_OP_TEXT, buf, n);
    if (q.nick_present && !q.nick_ok)
        send_error(w, c, "bad_nick", "nick must be 1-32 characters without control characters");
    if (q.since_present && !q.since_ok)
        send_error(w, c, "bad_since", "since must be a message id");
    send_history(w, c, lr, q.since_present && q.since_ok, q.since);
    n = chat_event_simple(buf, sizeof buf, "history_end");
    ws_conn_send(w, c, WS_OP_TEXT, buf, n);
    publish_presence(w, mb, "join", NULL, 0, online);
    return 0;
}

/*
 * Take C's member out of its room's list and the shm presence count (no
 * event). The member struct stays allocated (the caller frees it); the room
 * is freed at the next flush pass once it has no members.
 */
static void detach(struct worker *w, struct conn *c)
{
    struct chat_member *mb = c->member;
    struct local_room *lr = mb->room;
    if (mb->prev) mb->prev->next = mb->next; else lr->members = mb->next;
    if (mb->next) mb->next->prev = mb->prev;
    lr->nmembers--;
    c->member = NULL;
    shm_room_leave(w->ctx.seg, lr->idx, w->ctx.slot);
    mark_dirty(w->chat, lr);
}

int chat_handoff_take(struct worker *w, struct conn *c, struct chat_handoff *h)
{
    struct chat_member *mb = c->member;
    /* Only a member with nothing of its stream pending: then it has seen every entry drained here. */
    if (mb == NULL || mb->off != 0 || mb->pos != mb->room->head)
        return -1;
    struct local_room *lr = mb->room;
    h->identity = mb->id;
    h->room_len = lr->name_len;
    memcpy(h->room, lr->name, lr->name_len);
    h->resume_id = w->chat->last_id;
    detach(w, c);
    free(mb);
    return 0;
}

int chat_handoff_adopt(struct worker *w, struct conn *c, const struct chat_handoff *h)
{
    struct chat_member *mb = calloc(1, sizeof *mb);
    if (mb == NULL) {
        ws_conn_fail(w, c, WS_CLOSE_INTERNAL, "out of memory");
        return -1;
    }
    mb->id = h->identity;
    if (attach(w, c, mb, h->room, h->room_len) < 0)
        return -1;
    /*
     * The old worker had sent everything up to resume_id; attach() drained
     * this worker to the ring head, which is at least that far, so what the
     * member misses in between is exactly the history after resume_id.
     */
    send_history(w, c, mb->room, 1, h->resume_id);
    return 0;
}

void chat_leave(struct worker *w, struct conn *c)
{
    struct chat_member *mb = c->member;
    if (mb == NULL)
        return;
    struct local_room *lr = mb->room;
    if (mb->off > 0 && c->state != CONN_DEAD) {
        /* Half a frame is on the wire: its rest must precede anything private. */
        uint64_t end = mb->pos + frame_len_at(lr, mb->pos);
        struct iovec iov[2];
        int k = stream_iov(lr, mb->pos + mb->off, end, iov, 2);
        size_t at = 0;
        for (int i = 0; i < k; at += iov[i].iov_len, i++)
            conn_out_insert(&w->conns, c, at, iov[i].iov_base, iov[i].iov_len);
    }
    detach(w, c);
    /*
     * A worker that is stopping closes every member at once and they come
     * straight back (1012): a leave event each would cost every other
     * member of the room one delivery per leaver, for nothing.
     */
    if (!w->stopping) {
        int online = shm_room_online(w->ctx.seg, lr->idx);
        publish_presence(w, mb, "leave", NULL, 0, online);
    }
    free(mb);
}

void chat_on_message(struct worker *w, struct conn *c, int opcode, const uint8_t *data, size_t len)
{
    struct chat_worker *cw = w->chat;
    struct chat_member *mb = c->member;
    if (mb == NULL)
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
        char old[sizeof mb->id.nick];
        size_t old_len = mb->id.nick_len;
        if (!chat_nick_valid(in.value, in.value_len)) {
            send_error(w, c, "bad_nick", "nick must be 1-32 characters without control characters");
            return;
        }
        memcpy(old, mb->id.nick, old_len);
        memcpy(mb->id.nick, in.value, in.value_len);
        mb->id.nick_len = (uint8_t)in.value_len;
        publish_presence(w, mb, "nick", old, old_len, shm_room_online(w->ctx.seg, mb->room->idx));
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
    size_t n = chat_event_message_body((char *)cw->frame, cw->frame_cap, mb->room->name,
                                       mb->room->name_len, &mb->id, in.value, in.value_len);
    if (publish(w, RING_KIND_MESSAGE, mb->room->idx, mb->room->name, mb->room->name_len,
                "message", (const char *)cw->frame, n) < 0)
        send_error(w, c, "internal", "the message could not be published");
}
