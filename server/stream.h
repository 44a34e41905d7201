/*
 * stream: one room's outgoing frames on one worker, written once and read by
 * every local member (DESIGN.md "Data path", step "deliver").
 *
 * A stream is a power-of-two byte ring of complete, unmasked WebSocket
 * frames in id order, addressed by logical positions that only grow. A
 * member is a cursor into it: what it still has to receive is
 * [pos + off, head), written with writev straight out of the ring, so a
 * broadcast costs one copy per worker and nothing per member. `pos` is
 * always a frame start and `off` the bytes of that frame already written,
 * which lets a connection's private frames (pong, error) go out between two
 * stream frames and never inside one.
 *
 * Pure memory: no I/O, no logging; the caller does the writev.
 */
#ifndef WSM_STREAM_H
#define WSM_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "result.h"

struct stream_cursor;

struct stream {
    uint8_t *buf;                   /* NULL while empty: an idle room costs no buffer */
    uint64_t cap;                   /* a power of two, 0 without a buffer */
    uint64_t min_cap;               /* the first buffer's size */
    uint64_t head;                  /* logical end: where the next frame goes */
    uint64_t low;                   /* no cursor's pos is below this */
    struct stream_cursor *cursors;
    uint32_t ncursors;
};

struct stream_cursor {
    struct stream *s;               /* NULL while detached */
    struct stream_cursor *prev, *next;
    uint64_t pos;                   /* start of the frame being written */
    uint64_t off;                   /* bytes of that frame already written */
};

/*
 * An empty stream whose buffer, made at the first append, holds at least
 * MIN_CAP bytes (rounded up to a power of two). 0 or -ENOMEM.
 */
int  stream_init(struct stream *s, uint64_t min_cap);
/*
 * Give the buffer back when no cursor has anything left to write in it, so
 * the memory of a quiet room is its members' structs only (thousands of
 * small rooms would otherwise each keep a buffer). 1 when it was freed.
 */
int  stream_release_drained(struct stream *s);
/* Free the bytes; the caller has detached every cursor. */
void stream_fini(struct stream *s);

/*
 * Append one complete frame for every attached cursor. The ring grows
 * (keeping every byte a cursor still needs) when it is full. 0, or -ENOMEM:
 * then nothing was appended.
 */
int  stream_append(struct stream *s, const uint8_t *frame, size_t len);

/* Attach CUR at the stream's head: it receives frames appended from now on. */
void stream_attach(struct stream *s, struct stream_cursor *cur);
/* Detach CUR (attached). What it had not written is dropped for it. */
void stream_detach(struct stream_cursor *cur);

/* Stream bytes CUR still has to write (0 when detached). */
static inline uint64_t stream_pending(const struct stream_cursor *cur)
{
    return cur->s != NULL ? cur->s->head - cur->pos - cur->off : 0;
}

/*
 * What a connection with cursor CUR writes next, in order, as up to MAX
 * iovecs: the rest of a stream frame already under way, then the private
 * bytes PRIV[0..priv_len), then the stream up to its head. Returns the
 * count (0: nothing to write). CUR may be detached (private bytes only).
 */
int  stream_iov(const struct stream_cursor *cur, const uint8_t *priv, size_t priv_len,
                struct iovec *iov, int max);

/*
 * Account for N bytes of stream_iov()'s iovecs written (same CUR and
 * priv_len). Advances CUR and returns how many of the N were private bytes,
 * for the caller to consume from its own buffer.
 */
size_t stream_consumed(struct stream_cursor *cur, size_t priv_len, size_t n);

/*
 * The unwritten rest of the frame CUR has half written (0-2 iovecs, count
 * returned; 0 when CUR is between frames). A member that leaves its room
 * mid-frame copies this into its private output before detaching, so the
 * peer still receives a whole frame.
 */
int  stream_rest_of_frame(const struct stream_cursor *cur, struct iovec iov[2]);

#endif
