/* kick_table: see kick_table.h. */
#include "kick_table.h"

#include <string.h>

int kick_post(struct kick_table *t, int origin, const struct kick_slots *who,
              const char *user, size_t len, uint64_t *seq)
{
    if (len == 0 || len > KICK_USER_MAX || origin < 0 || origin >= KICK_SLOT_WORDS * 64)
        return -EINVAL;
    for (int i = 0; i < KICK_REQS; i++) {
        struct kick_req *r = &t->req[i];
        if (r->seq != 0)
            continue;
        r->origin = origin;
        r->user_len = (uint32_t)len;
        r->closed = 0;
        memcpy(r->pending, who->w, sizeof r->pending);
        memset(r->user, 0, sizeof r->user);
        memcpy(r->user, user, len);
        uint64_t s = t->seq + 1;
        /* The request's fields before its seq, its seq before the table's:
         * a reader that sees the new table seq finds the whole request. */
        __atomic_store_n(&r->seq, s, __ATOMIC_RELEASE);
        __atomic_store_n(&t->seq, s, __ATOMIC_RELEASE);
        *seq = s;
        return i;
    }
    return -EBUSY;
}

uint64_t kick_last_seq(const struct kick_table *t)
{
    return __atomic_load_n(&t->seq, __ATOMIC_ACQUIRE);
}

static int has_slot(const uint64_t *w, int slot)
{
    return (__atomic_load_n(&w[slot / 64], __ATOMIC_RELAXED) >> (slot % 64)) & 1u;
}

int kick_next(const struct kick_table *t, int slot, uint64_t *seen, struct kick_req *out)
{
    uint64_t last = kick_last_seq(t);
    /* Requests are few: pick the oldest unseen one by scanning them all. */
    while (*seen < last) {
        int best = -1;
        uint64_t best_seq = UINT64_MAX;
        for (int i = 0; i < KICK_REQS; i++) {
            uint64_t s = __atomic_load_n(&t->req[i].seq, __ATOMIC_ACQUIRE);
            if (s > *seen && s <= last && s < best_seq) {
                best = i;
                best_seq = s;
            }
        }
        if (best < 0) {
            *seen = last;       /* the rest were freed before we looked */
            break;
        }
        *seen = best_seq;
        const struct kick_req *r = &t->req[best];
        if (!has_slot(r->pending, slot))
            continue;
        memcpy(out, r, sizeof *out);
        /* Seqlock check: freed (and maybe reposted) during the copy, it may
         * be torn; a freed request needs nothing more of anyone. */
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&r->seq, __ATOMIC_RELAXED) != best_seq)
            continue;
        out->seq = best_seq;
        if (out->user_len == 0 || out->user_len > KICK_USER_MAX)
            continue;
        return best;
    }
    return -ENOENT;
}

int kick_ack(struct kick_table *t, int idx, uint64_t seq, int slot, uint32_t closed)
{
    if (idx < 0 || idx >= KICK_REQS || slot < 0 || slot >= KICK_SLOT_WORDS * 64)
        return 0;
    struct kick_req *r = &t->req[idx];
    if (r->seq != seq)
        return 0;
    r->closed += closed;
    __atomic_fetch_and(&r->pending[slot / 64], ~(1ull << (slot % 64)), __ATOMIC_RELAXED);
    return 1;
}

int kick_settled(const struct kick_table *t, int idx, uint64_t seq, const struct kick_slots *live,
                 uint32_t *closed)
{
    if (idx < 0 || idx >= KICK_REQS || t->req[idx].seq != seq)
        return -ENOENT;
    const struct kick_req *r = &t->req[idx];
    *closed = r->closed;
    for (int k = 0; k < KICK_SLOT_WORDS; k++)
        if (r->pending[k] & live->w[k])
            return 0;
    return 1;
}

void kick_free(struct kick_table *t, int idx, uint64_t seq)
{
    if (idx >= 0 && idx < KICK_REQS && t->req[idx].seq == seq)
        __atomic_store_n(&t->req[idx].seq, 0, __ATOMIC_RELEASE);
}

void kick_free_origin(struct kick_table *t, int slot)
{
    for (int i = 0; i < KICK_REQS; i++)
        if (t->req[i].seq != 0 && t->req[i].origin == slot)
            __atomic_store_n(&t->req[i].seq, 0, __ATOMIC_RELEASE);
}
