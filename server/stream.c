/*
 * stream: see stream.h.
 *
 * Frame boundaries are not stored: a cursor steps from one frame to the
 * next by decoding the length in the frame's own header (ws_frame_length),
 * the frames being the server's own, so always well formed.
 */
#include "stream.h"

#include <stdlib.h>
#include <string.h>

#include "ws_frame.h"

/* N rounded up to a power of two (at least 64), or 0 when that would overflow. */
static uint64_t round_pow2(uint64_t n)
{
    uint64_t cap = 64;
    if (n > (UINT64_C(1) << 62))
        return 0;
    while (cap < n)
        cap *= 2;
    return cap;
}

int stream_init(struct stream *s, uint64_t min_cap)
{
    memset(s, 0, sizeof *s);
    s->min_cap = round_pow2(min_cap);
    return s->min_cap != 0 ? 0 : -ENOMEM;
}

void stream_fini(struct stream *s)
{
    free(s->buf);
    s->buf = NULL;
    s->cap = 0;
}

int stream_release_drained(struct stream *s)
{
    if (s->buf == NULL)
        return 0;
    for (const struct stream_cursor *c = s->cursors; c != NULL; c = c->next)
        if (c->pos + c->off != s->head)
            return 0;
    stream_fini(s);
    s->low = s->head;
    return 1;
}

/* Total length of the frame starting at logical position POS. */
static uint64_t frame_len_at(const struct stream *s, uint64_t pos)
{
    uint8_t hdr[WS_HEADER_MAX];
    uint64_t avail = s->head - pos < sizeof hdr ? s->head - pos : sizeof hdr;
    for (uint64_t i = 0; i < avail; i++)
        hdr[i] = s->buf[(pos + i) & (s->cap - 1)];
    return ws_frame_length(hdr, (size_t)avail);
}

/* Copy [from, to) of the live range into NB of capacity NCAP, same logical positions. */
static void copy_range(const struct stream *s, uint64_t from, uint64_t to, uint8_t *nb,
                       uint64_t ncap)
{
    while (from < to) {
        uint64_t at = from & (s->cap - 1), nat = from & (ncap - 1);
        uint64_t run = to - from;
        if (run > s->cap - at)
            run = s->cap - at;
        if (run > ncap - nat)
            run = ncap - nat;
        memcpy(nb + nat, s->buf + at, run);
        from += run;
    }
}

/* Make room for LEN more bytes after head. 0 or -ENOMEM. */
static int make_room(struct stream *s, uint64_t len)
{
    if (s->head + len - s->low <= s->cap)
        return 0;
    /* Recompute the low-water mark only when full: O(cursors) per wrap, not per frame. */
    uint64_t low = s->head;
    for (const struct stream_cursor *c = s->cursors; c != NULL; c = c->next)
        low = c->pos < low ? c->pos : low;
    s->low = low;
    if (s->head + len - low <= s->cap)
        return 0;
    uint64_t need = s->head + len - low;
    uint64_t ncap = round_pow2(need > s->min_cap ? need : s->min_cap);
    uint8_t *nb = ncap != 0 ? malloc(ncap) : NULL;
    if (nb == NULL)
        return -ENOMEM;
    copy_range(s, low, s->head, nb, ncap);
    free(s->buf);
    s->buf = nb;
    s->cap = ncap;
    return 0;
}

int stream_append(struct stream *s, const uint8_t *frame, size_t len)
{
    int rc = make_room(s, len);
    if (rc < 0)
        return rc;
    uint64_t at = s->head & (s->cap - 1);
    uint64_t run = s->cap - at < len ? s->cap - at : len;
    memcpy(s->buf + at, frame, run);
    if (run < len)
        memcpy(s->buf, frame + run, len - run);
    s->head += len;
    return 0;
}

void stream_attach(struct stream *s, struct stream_cursor *cur)
{
    cur->s = s;
    cur->pos = s->head;
    cur->off = 0;
    cur->prev = NULL;
    cur->next = s->cursors;
    if (s->cursors != NULL)
        s->cursors->prev = cur;
    s->cursors = cur;
    s->ncursors++;
}

void stream_detach(struct stream_cursor *cur)
{
    struct stream *s = cur->s;
    if (cur->prev != NULL)
        cur->prev->next = cur->next;
    else
        s->cursors = cur->next;
    if (cur->next != NULL)
        cur->next->prev = cur->prev;
    s->ncursors--;
    cur->s = NULL;
    cur->prev = cur->next = NULL;
}

/* Up to MAX iovecs covering logical bytes [from, to) of S. */
static int range_iov(const struct stream *s, uint64_t from, uint64_t to, struct iovec *iov,
                     int max)
{
    int n = 0;
    while (from < to && n < max) {
        uint64_t at = from & (s->cap - 1);
        uint64_t run = s->cap - at < to - from ? s->cap - at : to - from;
        iov[n].iov_base = s->buf + at;
        iov[n].iov_len = (size_t)run;
        n++;
        from += run;
    }
    return n;
}

int stream_iov(const struct stream_cursor *cur, const uint8_t *priv, size_t priv_len,
               struct iovec *iov, int max)
{
    const struct stream *s = cur->s;
    int n = 0;
    uint64_t from = s != NULL ? cur->pos + cur->off : 0;
    if (s != NULL && cur->off > 0) {
        /* Finish the frame under way before any private frame goes out. */
        uint64_t end = cur->pos + frame_len_at(s, cur->pos);
        n += range_iov(s, from, end, iov, max);
        from = end;
    }
    if (priv_len > 0 && n < max) {
        iov[n].iov_base = (void *)priv;
        iov[n].iov_len = priv_len;
        n++;
    }
    if (s != NULL)
        n += range_iov(s, from, s->head, iov + n, max - n);
    return n;
}

/* Move CUR forward by N stream bytes, stepping over every frame completed. */
static void advance(struct stream_cursor *cur, uint64_t n)
{
    const struct stream *s = cur->s;
    cur->off += n;
    while (cur->pos < s->head) {
        uint64_t len = frame_len_at(s, cur->pos);
        if (cur->off < len)
            break;
        cur->off -= len;
        cur->pos += len;
    }
}

size_t stream_consumed(struct stream_cursor *cur, size_t priv_len, size_t n)
{
    if (cur->s != NULL && cur->off > 0) {
        uint64_t rest = frame_len_at(cur->s, cur->pos) - cur->off;
        uint64_t take = n < rest ? n : rest;
        advance(cur, take);
        n -= (size_t)take;
    }
    size_t priv = priv_len < n ? priv_len : n;
    n -= priv;
    if (n > 0 && cur->s != NULL)
        advance(cur, n);
    return priv;
}

int stream_rest_of_frame(const struct stream_cursor *cur, struct iovec iov[2])
{
    if (cur->s == NULL || cur->off == 0)
        return 0;
    uint64_t end = cur->pos + frame_len_at(cur->s, cur->pos);
    return range_iov(cur->s, cur->pos + cur->off, end, iov, 2);
}
