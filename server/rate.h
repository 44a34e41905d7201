/*
 * rate: the per-connection input budget of rate_limit, as pure arithmetic.
 *
 * A token bucket RATE inputs per second deep BURST, in thousandths of an
 * input so a low rate still refills smoothly, on a wrapping millisecond
 * clock. Refusals are counted in a fixed window: a client that keeps
 * sending when refused more than 4 x BURST times within RATE_ABUSE_WINDOW_S
 * is abusing, not bursting.
 */
#ifndef WSM_RATE_H
#define WSM_RATE_H

#include <stdint.h>

#define RATE_ABUSE_WINDOW_S 10

struct rate_bucket {
    uint32_t tokens;            /* thousandths of an input */
    uint32_t refilled_ms;       /* clock of the last refill (wrapping) */
    uint32_t window_s;          /* start of the current abuse window */
    uint32_t refused;           /* refusals in that window */
};

enum rate_verdict { RATE_OK, RATE_REFUSED, RATE_ABUSE };

/* A full bucket at NOW_MS. */
void rate_init(struct rate_bucket *b, uint32_t burst, uint64_t now_ms);

/* Take one input at NOW_MS: RATE_OK, RATE_REFUSED, or RATE_ABUSE (refused, and too often). */
enum rate_verdict rate_take(struct rate_bucket *b, uint32_t rate, uint32_t burst,
                            uint64_t now_ms);

#endif
