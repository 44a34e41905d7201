/*
 * backoff: see backoff.h. attempt stops growing once the ceiling reaches
 * the cap, so a link that is down for days neither shifts past 31 bits nor
 * wraps the counter back to short delays.
 */
#include "backoff.h"

void backoff_init(struct backoff *b, uint32_t base_ms, uint32_t cap_ms)
{
    b->base_ms = base_ms;
    b->cap_ms = cap_ms;
    b->attempt = 0;
}

uint32_t backoff_ceiling(const struct backoff *b)
{
    uint64_t c = b->base_ms;
    for (uint32_t i = 0; i < b->attempt && c != 0 && c < b->cap_ms; i++)
        c <<= 1;
    return c < b->cap_ms ? (uint32_t)c : b->cap_ms;
}

uint32_t backoff_next(struct backoff *b, uint64_t rand)
{
    uint32_t ceil = backoff_ceiling(b);
    /* 64-bit value modulo a 33-bit range: the bias is below 2^-31. */
    uint32_t delay = (uint32_t)(rand % ((uint64_t)ceil + 1));
    if (ceil != 0 && ceil < b->cap_ms)   /* base 0 never grows */
        b->attempt++;
    return delay;
}

void backoff_reset(struct backoff *b)
{
    b->attempt = 0;
}
