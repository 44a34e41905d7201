/*
 * kick_table: requests to close every connection of one user on every
 * worker (POST /api/disconnect), in the shm segment.
 *
 * The worker that takes the API call posts a request naming the user and
 * the live worker slots that must act on it (a bit each), closes its own
 * members of that user and wakes the others. Each of them, at its next
 * wake, closes its members of that user, adds how many to the request's
 * count and clears its bit; the poster answers once no live slot's bit is
 * left (or its deadline passes) and frees the request.
 *
 * Every write (post, ack, free) happens under the segment's publish lock,
 * so an ack can check that the request is still the one it acted on (a
 * request freed at its deadline and reused is never counted into). Readers
 * scan without the lock: `seq` of the table is the last request posted,
 * each request carries its own seq (0 = free), and a reader that copied a
 * request checks under the lock, at ack time, that its seq is unchanged.
 *
 * Cross-process ABI: fixed-width fields only.
 */
#ifndef WSM_KICK_TABLE_H
#define WSM_KICK_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "result.h"

#define KICK_REQS       16      /* outstanding requests, node-wide */
#define KICK_USER_MAX   64      /* a token's sub: JWT_SUB_MAX bytes */
#define KICK_SLOT_WORDS 2       /* 128 worker slots (SHM_MAX_SLOTS) */

struct kick_req {
    uint64_t seq;                       /* 0: free */
    int32_t  origin;                    /* the slot that posted it (answers the API call) */
    uint32_t user_len;
    uint32_t closed;                    /* connections closed so far, every worker */
    uint32_t pad;
    uint64_t pending[KICK_SLOT_WORDS];  /* slots that have not acted yet */
    char     user[KICK_USER_MAX];
};

struct kick_table {
    uint64_t seq;                       /* the last request posted (atomic) */
    struct kick_req req[KICK_REQS];
};

/* A set of worker slots, as the pending bits hold them. */
struct kick_slots { uint64_t w[KICK_SLOT_WORDS]; };

static inline void kick_slots_add(struct kick_slots *s, int slot)
{
    s->w[slot / 64] |= 1ull << (slot % 64);
}

/*
 * Caller holds the publish lock. Post a request for USER (1..KICK_USER_MAX
 * bytes) from ORIGIN, to be acted on by every slot in WHO. Returns its
 * index (>= 0), -EBUSY when KICK_REQS are outstanding, -EINVAL for a bad
 * user or slot. *SEQ receives the request's seq.
 */
int kick_post(struct kick_table *t, int origin, const struct kick_slots *who,
              const char *user, size_t len, uint64_t *seq);

/* The seq of the last request posted (acquire). */
uint64_t kick_last_seq(const struct kick_table *t);

/*
 * Without the lock: the next request after *SEEN (in seq order, at most
 * up to kick_last_seq()) that SLOT must act on, copied into *OUT; its index
 * (>= 0), or -ENOENT when none is left. *SEEN moves past what was looked
 * at. The copy may be torn by a concurrent free: kick_ack() tells.
 */
int kick_next(const struct kick_table *t, int slot, uint64_t *seen, struct kick_req *out);

/*
 * Caller holds the publish lock. SLOT has closed CLOSED connections for
 * request IDX, which it read as SEQ: count them and clear its bit. 1 when
 * counted, 0 when the request is no longer that one (freed, reused).
 */
int kick_ack(struct kick_table *t, int idx, uint64_t seq, int slot, uint32_t closed);

/*
 * Caller holds the publish lock. 1 when request IDX (seq SEQ) needs nothing
 * more of the slots in LIVE (every slot it named has acted, or is no longer
 * live), 0 while some must still act; *CLOSED receives its count either
 * way. -ENOENT when IDX is no longer SEQ.
 */
int kick_settled(const struct kick_table *t, int idx, uint64_t seq, const struct kick_slots *live,
                 uint32_t *closed);

/* Caller holds the publish lock: free request IDX if it is still SEQ. */
void kick_free(struct kick_table *t, int idx, uint64_t seq);

/* Caller holds the publish lock: free every request SLOT posted (it died). */
void kick_free_origin(struct kick_table *t, int slot);

#endif
