/*
 * chat_replay: see chat_replay.h. Entries are copied straight from the ring
 * into the member's output buffer; a writer can overwrite an entry between
 * finding it and copying it, and then the copy is redone or, for the index
 * path, covered by the gap check (the ring no longer holds it).
 */
#include "chat_replay.h"

#include <errno.h>
#include <string.h>

#include "chat_history.h"
#include "chat_proto.h"
#include "conn.h"
#include "ring.h"
#include "worker.h"

/*
 * Copy the entry at ring position AT into C's output. 0, RING_LAPPED if it
 * was overwritten (nothing copied), or -ENOMEM.
 */
static int copy_entry(const struct chat_replay_src *src, struct worker *w, struct conn *c,
                      uint64_t at)
{
    struct ring_entry e;
    uint64_t q = at;
    if (ring_peek(src->ring, &q, &e) < 0)
        return RING_LAPPED;
    uint8_t *dst = conn_out_reserve(&w->conns, c, e.len);
    if (dst == NULL)
        return -ENOMEM;
    if (ring_read(src->ring, &at, &e, dst, e.len) != (ssize_t)e.len) {
        c->out_len -= e.len;
        return RING_LAPPED;
    }
    return 0;
}

static int is_room_message(const struct ring_entry *e, const char *room, size_t room_len)
{
    return e->kind == RING_KIND_MESSAGE && e->room_len == room_len &&
           memcmp(e->room, room, room_len) == 0;
}

/*
 * The slow path of send_history(): walk the ring from its tail up to what
 * this worker drained. If a writer laps the walk, the output is rolled back
 * to MARK (counted from out_off) and the walk starts again. 0, or -ENOMEM
 * (the output is rolled back).
 */
static int scan_history(const struct chat_replay_src *src, struct worker *w, struct conn *c,
                        const char *room, size_t room_len, int have_since, uint64_t since,
                        size_t mark)
{
    struct ring *r = src->ring;
    uint32_t want = w->cfg->history_size;
    struct ring_entry e;
    uint64_t count;
    int rc;
restart:
    c->out_len = c->out_off + (uint32_t)mark;
    count = 0;
    for (uint64_t p = ring_tail(r);;) {
        uint64_t at = p;
        ssize_t n = ring_peek(r, &p, &e);
        if (n == RING_LAPPED)
            goto restart;
        if (n < 0 || at >= src->drained)
            break;
        if (!is_room_message(&e, room, room_len))
            continue;
        if (have_since) {
            if (e.id > since && (rc = copy_entry(src, w, c, at)) < 0)
                goto failed;
        } else if (want > 0) {
            src->scratch[count++ % want] = at;
        }
    }
    for (uint64_t i = count > want ? count - want : 0; !have_since && i < count; i++)
        if ((rc = copy_entry(src, w, c, src->scratch[i % want])) < 0)
            goto failed;
    return 0;
failed:
    if (rc == RING_LAPPED)
        goto restart;
    c->out_len = c->out_off + (uint32_t)mark;
    return rc;
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

int chat_replay(const struct chat_replay_src *src, struct worker *w, struct conn *c,
                int room_idx, const char *room, size_t room_len, int have_since, uint64_t since)
{
    /* Where this history starts, counted from out_off: growing may slide the buffer. */
    size_t mark = conn_out_pending(c);
    long n = -1;
    if (have_since || w->cfg->history_size <= src->index->per_room)
        n = chat_history_select(src->index, room_idx, room, room_len,
                                have_since, since, src->scratch);
    if (n < 0 && scan_history(src, w, c, room, room_len, have_since, since, mark) < 0)
        return -ENOMEM;
    for (long i = 0; i < n; i++)
        /* One lapped meanwhile is covered by the gap check below. */
        if (copy_entry(src, w, c, src->scratch[i]) == -ENOMEM)
            return -ENOMEM;
    if (!have_since)
        return 0;
    /*
     * Ids this client has not seen but the ring no longer holds: from
     * since + 1 (or, for since=0, "nothing seen", from the first id this
     * ring issued) up to its oldest entry. An id below the ring's first
     * comes from before a restart, and that history is gone too.
     */
    uint64_t lo = since == 0 ? ring_first_id(src->ring) : since + 1;
    uint64_t oldest = ring_oldest_id(src->ring);
    if (oldest > lo) {
        /* The gap goes first: move what was queued since MARK behind it. */
        uint8_t gap[256];
        ssize_t g = chat_proto_gap(gap, sizeof gap, room, room_len, lo, oldest - 1);
        if (g < 0 || conn_out_insert(&w->conns, c, mark, gap, (size_t)g) < 0)
            return -ENOMEM;
    }
    return 0;
}

