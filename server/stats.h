/*
 * stats: /stats (JSON) and /metrics (Prometheus text) rendered from the
 * per-worker counters in shared memory, summed over live worker slots.
 * Reads the segment only; never touches a connection.
 */
#ifndef WSM_STATS_H
#define WSM_STATS_H

#include <stddef.h>
#include <sys/types.h>

#include "http.h"
#include "result.h"

struct shm_segment;

/* 1 if PATH is /stats or /metrics. */
int stats_route(const char *path, size_t len);

/* The JSON document of /stats into DST[0..cap): length, or -ENOSPC. */
ssize_t stats_render_json(const struct shm_segment *seg, char *dst, size_t cap);

/* The Prometheus text of /metrics into DST[0..cap): length, or -ENOSPC. */
ssize_t stats_render_metrics(const struct shm_segment *seg, char *dst, size_t cap);

/*
 * The 200 response for PATH (one stats_route() accepted). Its body lives in
 * a buffer of this module, valid until the next call: queue it at once.
 * 0, or -500 when the document did not fit.
 */
int stats_serve(const struct shm_segment *seg, const char *path, size_t len,
                struct http_response *resp);

#endif
