/*
 * stats: /stats (JSON) and /metrics (Prometheus text) rendered from the
 * per-worker counters in shared memory, summed over live worker slots.
 */
#ifndef WSM_STATS_H
#define WSM_STATS_H

#include <stddef.h>

struct worker;
struct conn;

/* 1 if PATH is /stats or /metrics. */
int stats_route(const char *path, size_t len);

/* Queue the response. Returns 0, or an HTTP status on failure. */
int stats_serve(struct worker *w, struct conn *c, const char *path, size_t len,
                int head_only, int keep);

#endif
