/*
 * chat_chain: see chat_chain.h.
 */
#include "chat_chain.h"

#include <string.h>

int chat_chain_is_message(const struct ring_entry *e, const char *room, size_t len)
{
    return e->kind == RING_KIND_MESSAGE && e->room_len == len && memcmp(e->room, room, len) == 0;
}

void chat_chain_walk_back(const struct ring *r, uint64_t pos, uint64_t id, const char *room,
                          size_t len, int have_since, uint64_t since, uint32_t want,
                          uint64_t below, struct chat_chain_back *out)
{
    out->start = RING_NO_POS;
    out->count = 0;
    out->lost = 0;
    out->first_reached = id == 0 || pos == RING_NO_POS;
    while (!out->first_reached) {
        if (have_since ? id <= since : out->count == want)
            return;
        uint64_t q = pos;
        struct ring_entry e;
        /* A link to an entry overwritten, or no longer the one named: what lies beyond is lost. */
        if (ring_peek(r, &q, &e) < 0 || e.id != id || !chat_chain_is_message(&e, room, len)) {
            out->lost = id;
            return;
        }
        if (pos < below) {
            out->start = pos;
            out->count++;
        }
        pos = e.prev_pos;
        id = e.prev_id;
        out->first_reached = pos == RING_NO_POS;
    }
}

int chat_chain_peek(const struct ring *r, uint64_t pos, uint64_t prev, const char *room,
                    size_t len, struct ring_entry *e)
{
    if (pos == RING_NO_POS)
        return 0;
    uint64_t q = pos;
    ssize_t n = ring_peek(r, &q, e);
    if (n == RING_LAPPED)
        return RING_LAPPED;
    if (n < 0 || !chat_chain_is_message(e, room, len) ||
        (prev != RING_NO_POS && e->prev_pos != prev))
        return 0;
    return 1;
}
