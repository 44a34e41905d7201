/*
 * wsb_hist: log-linear latency histogram with a fixed footprint.
 *
 * Values below 2^SUB_BITS land in their own bucket; above, each power of
 * two is split into 2^(SUB_BITS-1) equal sub-buckets, so a bucket's width
 * is at most 1/64 of its value. Millions of samples cost no memory and
 * quantiles carry that ~1.6 % error; min and max are kept exactly.
 */
#include <string.h>

#include "wsb.h"

#define HALF (1u << (WSB_HIST_SUB_BITS - 1))

static unsigned bucket_of(uint64_t v)
{
    if (v < (1u << WSB_HIST_SUB_BITS))
        return (unsigned)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - (WSB_HIST_SUB_BITS - 1);
    /* v >> shift lies in [HALF, 2*HALF); shift 0 would be the linear
     * range above, so the index continues it without a gap. */
    return (unsigned)shift * HALF + (unsigned)(v >> shift);
}

/* Midpoint of bucket i, the value reported for a quantile inside it. */
static uint64_t value_of(unsigned i)
{
    if (i < (1u << WSB_HIST_SUB_BITS))
        return i;
    unsigned shift = i / HALF - 1;
    uint64_t sub = i - shift * HALF;
    uint64_t lo = sub << shift;
    return lo + ((1ull << shift) >> 1);
}

void wsb_hist_init(struct wsb_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

void wsb_hist_add(struct wsb_hist *h, uint64_t v)
{
    h->bucket[bucket_of(v)]++;
    h->count++;
    h->sum += (double)v;
    if (v < h->min) h->min = v;
    if (v > h->max) h->max = v;
}

void wsb_hist_merge(struct wsb_hist *into, const struct wsb_hist *from)
{
    for (unsigned i = 0; i < WSB_HIST_BUCKETS; i++)
        into->bucket[i] += from->bucket[i];
    into->count += from->count;
    into->sum += from->sum;
    if (from->min < into->min) into->min = from->min;
    if (from->max > into->max) into->max = from->max;
}

uint64_t wsb_hist_quantile(const struct wsb_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q <= 0.0)
        return h->min;
    if (q >= 1.0)
        return h->max;
    /* Rank of the sample at q, 1-based, rounded up (nearest-rank). */
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if ((double)rank < q * (double)h->count)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < WSB_HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            uint64_t v = value_of(i);
            /* The midpoint may fall outside what was observed. */
            if (v < h->min) v = h->min;
            if (v > h->max) v = h->max;
            return v;
        }
    }
    return h->max;
}

double wsb_hist_mean(const struct wsb_hist *h)
{
    return h->count ? h->sum / (double)h->count : 0.0;
}
