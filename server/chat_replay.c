/*
 * chat_replay: see chat_replay.h. Entries are copied straight from the ring
 * into the member's output buffer; a writer can overwrite an entry between
 * finding it and copying it, which the ring's read validation reports as
 * RING_LAPPED (nothing copied).
 */
#include "chat_replay.h"

#include <errno.h>

#include "chat_chain.h"
#include "chat_proto.h"
#include "chat_replay_journal.h"
#include "conn.h"
#include "ring.h"
#include "worker.h"

/*
 * Copy entry E at ring position AT into C's output. 0, RING_LAPPED if it
 * was overwritten (nothing copied), or -ENOMEM.
 */
static int copy_entry(struct ring *r, struct worker *w, struct conn *c, uint64_t at,
                      const struct ring_entry *e)
{
    uint8_t *dst = conn_out_reserve(&w->conns, c, e->len);
    if (dst == NULL)
        return -ENOMEM;
    struct ring_entry got;
    if (ring_read(r, &at, &got, dst, e->len) != (ssize_t)e->len) {
        c->out_len -= e->len;
        return RING_LAPPED;
    }
    return 0;
}

/* Id of the oldest entry the ring holds, or of the next one when it is empty. */
static uint64_t ring_oldest_id(struct ring *r)
{
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
 * Without the index: walk the ring from its tail up to what the worker
 * drained, keeping the positions of the room's last WANT messages in
 * SCRATCH; the replay starts at the oldest of them. Restarts if a writer
 * laps the walk (it only reads headers, so a restart costs no output).
 */
static uint64_t scan_start(const struct chat_replay_src *src, const char *room,
                           size_t room_len, uint32_t want)
{
    struct ring *r = src->ring;
    for (;;) {
        uint64_t count = 0;
        int lapped = 0;
        for (uint64_t p = ring_tail(r);;) {
            uint64_t at = p;
            struct ring_entry e;
            ssize_t n = ring_peek(r, &p, &e);
            if (n == RING_LAPPED) {
                lapped = 1;
                break;
            }
            if (n < 0 || at >= src->drained)
                break;
            if (chat_chain_is_message(&e, room, room_len))
                src->scratch[count++ % want] = at;
        }
        if (lapped)
            continue;
        if (count == 0)
            return src->drained;
        return src->scratch[count > want ? count % want : 0];
    }
}

/* Queue a gap event for ids LO..HI of ROOM, when LO <= HI. 0 or -ENOMEM. */
static int queue_gap(struct worker *w, struct conn *c, const char *room, size_t room_len,
                     uint64_t lo, uint64_t hi)
{
    if (lo > hi)
        return 0;
    uint8_t gap[256];
    ssize_t g = chat_proto_gap(gap, sizeof gap, room, room_len, lo, hi);
    if (g < 0 || conn_out_append(&w->conns, c, gap, (size_t)g) < 0)
        return -ENOMEM;
    return 0;
}

/*
 * Ids LO..HI of ROOM are no longer in the ring: read what the journal keeps
 * of them first, and a gap for the rest; without a journal, a gap for all.
 */
static int older(const struct chat_replay_src *src, struct chat_replay *rp, struct worker *w,
                 struct conn *c, const char *room, size_t room_len, uint64_t lo, uint64_t hi)
{
    if (lo > hi)
        return 0;
    if (src->journal_dir != NULL && rp->journal == NULL) {
        uint64_t missing;
        int rc = chat_replay_journal_open(src->journal_dir, room, room_len, lo - 1, hi,
                                          &rp->journal, &missing);
        if (rc == 0)
            return queue_gap(w, c, room, room_len, lo, missing);
        if (rc == -ENOMEM)
            return rc;
    }
    return queue_gap(w, c, room, room_len, lo, hi);
}

/*
 * Scan mode: the room's chain may not reach all of its messages. Start at
 * the oldest of its last history_size messages the ring holds (found by a
 * walk of the whole ring) or, for since=, at the tail; gap when the ring
 * no longer reaches back to since + 1.
 */
static int start_scan(const struct chat_replay_src *src, struct chat_replay *rp,
                      struct worker *w, struct conn *c, const char *room, size_t room_len,
                      int have_since, uint64_t since)
{
    struct ring *r = src->ring;
    rp->scan = 1;
    rp->pos = have_since ? ring_tail(r) : scan_start(src, room, room_len, w->cfg->history_size);
    if (rp->pos < ring_tail(r))
        rp->pos = ring_tail(r);
    if (!have_since)
        return 0;
    /*
     * Ids this client has not seen but the ring no longer holds: from
     * since + 1 (or, for since=0, "nothing seen", from the first id this
     * ring issued) up to its oldest entry. An id below the ring's first
     * comes from before a restart, and that history is gone too.
     */
    uint64_t lo = since == 0 ? ring_first_id(r) : since + 1;
    uint64_t oldest = ring_oldest_id(r);
    return oldest > lo ? older(src, rp, w, c, room, room_len, lo, oldest - 1) : 0;
}

int chat_replay_start(const struct chat_replay_src *src, struct chat_replay *rp,
                      struct worker *w, struct conn *c, const struct chat_room_head *head,
                      const char *room, size_t room_len, int have_since, uint64_t since)
{
    struct ring *r = src->ring;
    uint32_t want = w->cfg->history_size;
    rp->after = have_since ? since : 0;
    rp->prev = RING_NO_POS;
    rp->scan = 0;
    rp->journal = NULL;
    rp->pos = RING_NO_POS;
    if (!have_since && want == 0)
        return 0;
    if (!head->chain_complete)
        return start_scan(src, rp, w, c, room, room_len, have_since, since);
    /*
     * Back from the newest message: the last WANT ones, or every one after
     * since. Those at or past this worker's drain reach the member through
     * the stream, so they are not counted here.
     */
    struct chat_chain_back back;
    chat_chain_walk_back(r, head->pos, head->id, room, room_len, have_since, since, want,
                         src->drained, &back);
    rp->pos = back.start;
    if (!have_since)
        return 0;
    uint64_t lo = since == 0 ? ring_first_id(r) : since + 1;
    if (back.lost != 0)
        return older(src, rp, w, c, room, room_len, lo, back.lost);
    /* Before the room's first message here, ids below the ring's first are
     * from before a restart: that history is gone. */
    if (back.first_reached && lo < ring_first_id(r))
        return older(src, rp, w, c, room, room_len, lo, ring_first_id(r) - 1);
    return 0;
}

/* Scan mode: every entry from rp->pos, the room's sent. */
static int step_scan(const struct chat_replay_src *src, struct chat_replay *rp,
                     struct worker *w, struct conn *c, const char *room, size_t room_len,
                     size_t budget)
{
    struct ring *r = src->ring;
    while (conn_out_pending(c) < budget) {
        if (rp->pos >= src->drained)
            return 1;
        uint64_t next = rp->pos;
        struct ring_entry e;
        ssize_t n = ring_peek(r, &next, &e);
        if (n == RING_LAPPED)
            return RING_LAPPED;
        if (n < 0)
            return 1;       /* empty: nothing is left below the drain position */
        if (chat_chain_is_message(&e, room, room_len) && e.id > rp->after) {
            int rc = copy_entry(r, w, c, rp->pos, &e);
            if (rc < 0)
                return rc;
            rp->after = e.id;
        }
        rp->pos = next;
    }
    return 0;
}

int chat_replay_step(const struct chat_replay_src *src, struct chat_replay *rp,
                     struct worker *w, struct conn *c, const char *room, size_t room_len,
                     size_t budget)
{
    if (rp->journal != NULL) {
        uint64_t lo, hi;
        int rc = chat_replay_journal_step(rp->journal, w, c, budget, &rp->after, &lo, &hi);
        if (rc == 0 || rc == -ENOMEM)
            return rc;
        chat_replay_fini(rp);
        if (rc == -EIO && queue_gap(w, c, room, room_len, lo, hi) < 0)
            return -ENOMEM;
    }
    if (rp->scan)
        return step_scan(src, rp, w, c, room, room_len, budget);
    struct ring *r = src->ring;
    while (conn_out_pending(c) < budget) {
        if (rp->pos == RING_NO_POS || rp->pos >= src->drained)
            return 1;
        struct ring_entry e;
        int got = chat_chain_peek(r, rp->pos, rp->prev, room, room_len, &e);
        if (got <= 0)
            return got == RING_LAPPED ? RING_LAPPED : 1;    /* 0: the chain ends here */
        if (e.id > rp->after) {
            int rc = copy_entry(r, w, c, rp->pos, &e);
            if (rc < 0)
                return rc;
            rp->after = e.id;
        }
        rp->prev = rp->pos;
        rp->pos = e.next_pos;
    }
    return 0;
}

void chat_replay_fini(struct chat_replay *rp)
{
    chat_replay_journal_close(rp->journal);
    rp->journal = NULL;
}
