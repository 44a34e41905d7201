/*
 * backoff: reconnect delays, exponential with full jitter: the delay before
 * attempt k (from 0) is uniform in [0, min(cap, base * 2^k)] ms. Full jitter
 * spreads the reconnects of many nodes after a shared outage instead of
 * having them retry in lock step. Pure: the caller supplies the random
 * value and owns the clock, so tests choose both. Used by the cluster
 * bridge's link to Redis.
 */
#ifndef WSM_BACKOFF_H
#define WSM_BACKOFF_H

#include <stdint.h>

struct backoff {
    uint32_t base_ms, cap_ms;
    uint32_t attempt;       /* failures since the last success (stops growing at the cap) */
};

/* Start with no failures. cap_ms < base_ms is taken as cap_ms. */
void backoff_init(struct backoff *b, uint32_t base_ms, uint32_t cap_ms);

/* The ceiling of the next delay: min(cap, base * 2^attempt), never overflowing. */
uint32_t backoff_ceiling(const struct backoff *b);

/*
 * After a failed attempt: the delay before the next one, RAND (any 64-bit
 * random value, e.g. from getrandom()) reduced to [0, backoff_ceiling()],
 * and the next ceiling doubles.
 */
uint32_t backoff_next(struct backoff *b, uint64_t rand);

/* After a success: the next failure starts again from base. */
void backoff_reset(struct backoff *b);

#endif
