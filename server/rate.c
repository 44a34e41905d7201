/*
 * rate: see rate.h.
 */
#include "rate.h"

void rate_init(struct rate_bucket *b, uint32_t burst, uint64_t now_ms)
{
    b->tokens = burst * 1000u;
    b->refilled_ms = (uint32_t)now_ms;
    b->window_s = (uint32_t)(now_ms / 1000);
    b->refused = 0;
}

enum rate_verdict rate_take(struct rate_bucket *b, uint32_t rate, uint32_t burst,
                            uint64_t now_ms)
{
    uint64_t full = (uint64_t)burst * 1000;
    uint32_t now = (uint32_t)now_ms;
    /* Unsigned difference: right across the 49-day wrap of the 32-bit clock. */
    uint64_t earned = (uint64_t)(uint32_t)(now - b->refilled_ms) * rate;
    uint64_t tokens = b->tokens + earned;
    b->refilled_ms = now;
    b->tokens = (uint32_t)(tokens > full ? full : tokens);
    if (b->tokens >= 1000) {
        b->tokens -= 1000;
        return RATE_OK;
    }
    uint32_t now_s = (uint32_t)(now_ms / 1000);
    if (now_s - b->window_s >= RATE_ABUSE_WINDOW_S) {
        b->window_s = now_s;
        b->refused = 0;
    }
    return ++b->refused > 4 * burst ? RATE_ABUSE : RATE_REFUSED;
}
