/*
 * stats: see stats.h. Counters are summed over every slot with a live
 * worker at the moment of the request (relaxed loads: each counter is exact,
 * the set is a near-instant snapshot). The body is built in one static
 * buffer with a bounded writer: a document that would not fit is a 500,
 * never a cut body. A request is rare enough that formatting cost does not
 * matter.
 */
#include "stats.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "shm.h"
#include "strbuf.h"
#include "version.h"

#define LOAD(p) __atomic_load_n(&(p), __ATOMIC_RELAXED)

/*
 * NAME is the JSON key (and the shm field); PROM the Prometheus name after
 * "wschat_", following its conventions: a counter ends in _total, a unit
 * (bytes) is spelled out before it, a gauge has neither.
 */
struct field { const char *name; const char *prom; const char *help; size_t off; int gauge; };

#define F(n, p, h, g) { #n, p, h, offsetof(struct shm_counters, n), g }
static const struct field fields[] = {
    F(conns_accepted, "conns_accepted_total", "TCP connections accepted", 0),
    F(conns_current, "conns_current", "Open TCP connections", 1),
    F(ws_current, "ws_current", "Open WebSocket connections", 1),
    F(http_requests, "http_requests_total", "Plain HTTP requests answered", 0),
    F(handshakes_ok, "handshakes_ok_total", "WebSocket handshakes completed", 0),
    F(handshakes_failed, "handshakes_failed_total", "WebSocket handshakes refused", 0),
    F(msgs_in, "msgs_in_total", "WebSocket messages received", 0),
    F(msgs_published, "msgs_published_total", "Chat events published to the ring", 0),
    F(deliveries, "deliveries_total", "Chat frames queued to members", 0),
    F(bytes_in, "read_bytes_total", "Bytes read from sockets", 0),
    F(bytes_out, "written_bytes_total", "Bytes written to sockets", 0),
    F(drops_slow, "drops_slow_total", "Members closed with 1013 for a full send queue", 0),
    F(ring_overruns, "ring_overruns_total", "Times a worker fell a whole ring behind", 0),
    F(closes_protocol, "closes_protocol_total", "Connections failed for protocol errors", 0),
    F(timeouts, "timeouts_total", "Handshake, idle and close timeouts", 0),
    F(rejects_limit, "rejects_limit_total",
      "Connections shed at fd limits or refused over max_connections_per_ip", 0),
};
#undef F
#define NFIELDS (sizeof fields / sizeof fields[0])

/* Counters of the whole segment, not of a slot: no slot label in /metrics. */
#define G(n, p, h) { #n, p, h, offsetof(struct shm_segment, n), 0 }
static const struct field seg_fields[] = {
    G(handoffs, "handoffs_total", "WebSocket connections handed to a new worker at reload"),
    G(handoff_failures, "handoff_failures_total",
      "WebSocket connections closed with 1012 at reload: the new worker could not take them"),
};
#undef G
#define NSEG_FIELDS (sizeof seg_fields / sizeof seg_fields[0])

static uint64_t seg_counter(const struct shm_segment *seg, size_t f)
{
    const uint64_t *p = (const uint64_t *)((const char *)seg + seg_fields[f].off);
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

int stats_route(const char *path, size_t len)
{
    return (len == 6 && memcmp(path, "/stats", 6) == 0) ||
           (len == 8 && memcmp(path, "/metrics", 8) == 0);
}

static uint64_t counter(const struct shm_slot *s, size_t f)
{
    const uint64_t *p = (const uint64_t *)((const char *)&s->counters + fields[f].off);
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

ssize_t stats_render_json(const struct shm_segment *seg, char *dst, size_t cap)
{
    struct strbuf b;
    uint64_t total[NFIELDS] = { 0 };
    int workers = 0;
    strbuf_init(&b, dst, cap);
    strbuf_puts(&b, "{\"workers\":[");
    for (int s = 0; s < SHM_MAX_SLOTS; s++) {
        const struct shm_slot *sl = &seg->slots[s];
        int pid = LOAD(sl->pid);
        if (pid == 0)
            continue;
        strbuf_printf(&b, "%s{\"slot\":%d,\"pid\":%d,\"generation\":%u",
                      workers ? "," : "", s, pid, LOAD(sl->generation));
        for (size_t f = 0; f < NFIELDS; f++) {
            uint64_t v = counter(sl, f);
            total[f] += v;
            strbuf_printf(&b, ",\"%s\":%llu", fields[f].name, (unsigned long long)v);
        }
        strbuf_puts(&b, "}");
        workers++;
    }
    strbuf_printf(&b, "],\"total\":{\"workers\":%d", workers);
    for (size_t f = 0; f < NFIELDS; f++)
        strbuf_printf(&b, ",\"%s\":%llu", fields[f].name, (unsigned long long)total[f]);
    /* Server-wide only: counted by retiring workers, which are gone soon after. */
    for (size_t f = 0; f < NSEG_FIELDS; f++)
        strbuf_printf(&b, ",\"%s\":%llu", seg_fields[f].name,
                      (unsigned long long)seg_counter(seg, f));
    strbuf_printf(&b, "},\"ring\":{\"capacity\":%llu,\"head\":%llu,\"tail\":%llu,"
                  "\"last_id\":%llu}",
                  (unsigned long long)seg->ring.capacity,
                  (unsigned long long)ring_head(&seg->ring),
                  (unsigned long long)ring_tail(&seg->ring),
                  (unsigned long long)ring_last_id(&seg->ring));
    const struct shm_journal *j = &seg->journal;
    if (LOAD(j->on))
        strbuf_printf(&b, ",\"journal\":{\"written_id\":%llu,\"durable_id\":%llu,"
                      "\"records\":%llu,\"syncs\":%llu,\"write_errors\":%llu,\"lost\":%llu,"
                      "\"failing\":%s}",
                      (unsigned long long)LOAD(j->written_id), (unsigned long long)LOAD(j->durable_id),
                      (unsigned long long)LOAD(j->records), (unsigned long long)LOAD(j->syncs),
                      (unsigned long long)LOAD(j->write_errors), (unsigned long long)LOAD(j->lost),
                      LOAD(j->failing) ? "true" : "false");
    const struct shm_cluster *cl = &seg->cluster;
    if (cl->on)
        strbuf_printf(&b, ",\"cluster\":{\"up\":%u,\"synced\":%u,\"reconnects\":%llu,"
                      "\"publish_errors\":%llu,\"published\":%llu,\"received\":%llu,"
                      "\"gaps\":%llu,\"lag_ms\":%lld,\"last_id\":%llu}",
                      (unsigned)LOAD(cl->up), (unsigned)LOAD(cl->synced),
                      (unsigned long long)LOAD(cl->reconnects),
                      (unsigned long long)LOAD(cl->publish_errors),
                      (unsigned long long)LOAD(cl->published),
                      (unsigned long long)LOAD(cl->received), (unsigned long long)LOAD(cl->gaps),
                      (long long)LOAD(cl->lag_ms), (unsigned long long)LOAD(cl->last_id));
    strbuf_puts(&b, "}\n");
    return strbuf_result(&b);
}

ssize_t stats_render_metrics(const struct shm_segment *seg, char *dst, size_t cap)
{
    struct strbuf b;
    strbuf_init(&b, dst, cap);
    strbuf_printf(&b, "# HELP wschat_build_info The running wsmaster's version\n"
                  "# TYPE wschat_build_info gauge\nwschat_build_info{version=\"%s\"} 1\n",
                  WSCHAT_VERSION);
    for (size_t f = 0; f < NFIELDS; f++) {
        strbuf_printf(&b, "# HELP wschat_%s %s\n# TYPE wschat_%s %s\n", fields[f].prom,
                      fields[f].help, fields[f].prom, fields[f].gauge ? "gauge" : "counter");
        for (int s = 0; s < SHM_MAX_SLOTS; s++) {
            const struct shm_slot *sl = &seg->slots[s];
            if (LOAD(sl->pid) == 0)
                continue;
            strbuf_printf(&b, "wschat_%s{slot=\"%d\"} %llu\n", fields[f].prom, s,
                          (unsigned long long)counter(sl, f));
        }
    }
    for (size_t f = 0; f < NSEG_FIELDS; f++)
        strbuf_printf(&b, "# HELP wschat_%s %s\n# TYPE wschat_%s counter\nwschat_%s %llu\n",
                      seg_fields[f].prom, seg_fields[f].help, seg_fields[f].prom,
                      seg_fields[f].prom, (unsigned long long)seg_counter(seg, f));
    /* An id, not a count of events: a gauge (that happens only to grow). */
    strbuf_printf(&b, "# HELP wschat_ring_last_id Id of the newest chat event\n"
                  "# TYPE wschat_ring_last_id gauge\nwschat_ring_last_id %llu\n",
                  (unsigned long long)ring_last_id(&seg->ring));
    const struct shm_journal *j = &seg->journal;
    if (LOAD(j->on)) {
        static const struct { const char *name, *help; size_t off; } jf[] = {
            { "journal_records_total", "Records the history journal wrote",
              offsetof(struct shm_journal, records) },
            { "journal_syncs_total", "Syncs of the history journal to disk",
              offsetof(struct shm_journal, syncs) },
            { "journal_write_errors_total", "Failed writes or syncs of the history journal",
              offsetof(struct shm_journal, write_errors) },
            { "journal_lost_total", "Times the ring overwrote messages the journal had not read",
              offsetof(struct shm_journal, lost) },
        };
        for (size_t i = 0; i < sizeof jf / sizeof jf[0]; i++)
            strbuf_printf(&b, "# HELP wschat_%s %s\n# TYPE wschat_%s counter\nwschat_%s %llu\n",
                          jf[i].name, jf[i].help, jf[i].name, jf[i].name,
                          (unsigned long long)LOAD(*(const uint64_t *)(const void *)
                                                   ((const char *)j + jf[i].off)));
        strbuf_printf(&b, "# HELP wschat_journal_failing 1 while the history journal cannot "
                      "write\n# TYPE wschat_journal_failing gauge\nwschat_journal_failing %u\n",
                      (unsigned)LOAD(j->failing));
    }
    const struct shm_cluster *cl = &seg->cluster;
    if (cl->on) {
        static const struct { const char *name, *help; size_t off; } cf[] = {
            { "cluster_reconnects_total", "Times the link to Redis came back after a loss",
              offsetof(struct shm_cluster, reconnects) },
            { "cluster_publish_errors_total", "Batches Redis refused (sent again)",
              offsetof(struct shm_cluster, publish_errors) },
            { "cluster_published_total", "Events this node appended to the cluster's stream",
              offsetof(struct shm_cluster, published) },
            { "cluster_received_total", "Events this node read from the cluster's stream",
              offsetof(struct shm_cluster, received) },
            { "cluster_gaps_total", "Times ids were missing from the stream (members got a gap)",
              offsetof(struct shm_cluster, gaps) },
        };
        for (size_t i = 0; i < sizeof cf / sizeof cf[0]; i++)
            strbuf_printf(&b, "# HELP wschat_%s %s\n# TYPE wschat_%s counter\nwschat_%s %llu\n",
                          cf[i].name, cf[i].help, cf[i].name, cf[i].name,
                          (unsigned long long)LOAD(*(const uint64_t *)(const void *)
                                                   ((const char *)cl + cf[i].off)));
        strbuf_printf(&b, "# HELP wschat_cluster_up 1 while the link to Redis works\n"
                      "# TYPE wschat_cluster_up gauge\nwschat_cluster_up %u\n"
                      "# HELP wschat_cluster_lag_ms Age of the newest event read from the stream "
                      "when it was read\n# TYPE wschat_cluster_lag_ms gauge\n"
                      "wschat_cluster_lag_ms %lld\n",
                      (unsigned)LOAD(cl->up), (long long)LOAD(cl->lag_ms));
    }
    return strbuf_result(&b);
}

int stats_serve(const struct shm_segment *seg, const char *path, size_t len,
                struct http_response *resp)
{
    /* Every slot with every counter, both formats, fits with room to spare. */
    static char body[128 * 1024];
    int json = len == 6;
    (void)path;
    ssize_t n = json ? stats_render_json(seg, body, sizeof body)
                     : stats_render_metrics(seg, body, sizeof body);
    if (n < 0)
        return -500;
    http_response_init(resp);
    resp->status = 200;
    resp->ctype = json ? "application/json" : "text/plain; version=0.0.4";
    resp->body = body;
    resp->length = (size_t)n;
    memcpy(resp->headers, "Cache-Control: no-store\r\n", sizeof "Cache-Control: no-store\r\n");
    return 0;
}
