/*
 * stats: see stats.h. Counters are summed over every slot with a live
 * worker at the moment of the request (relaxed loads: each counter is exact,
 * the set is a near-instant snapshot). The body is built in a fixed stack
 * buffer; a request is rare enough that formatting cost does not matter.
 */
#include "stats.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "http.h"
#include "http_conn.h"
#include "shm.h"
#include "worker.h"

#define LOAD(p) __atomic_load_n(&(p), __ATOMIC_RELAXED)

struct field { const char *name; const char *help; size_t off; int gauge; };

#define F(n, h, g) { #n, h, offsetof(struct shm_counters, n), g }
static const struct field fields[] = {
    F(conns_accepted, "TCP connections accepted", 0),
    F(conns_current, "Open TCP connections", 1),
    F(ws_current, "Open WebSocket connections", 1),
    F(http_requests, "Plain HTTP requests answered", 0),
    F(handshakes_ok, "WebSocket handshakes completed", 0),
    F(handshakes_failed, "WebSocket handshakes refused", 0),
    F(msgs_in, "WebSocket messages received", 0),
    F(msgs_published, "Chat events published to the ring", 0),
    F(deliveries, "Chat frames queued to members", 0),
    F(bytes_in, "Bytes read from sockets", 0),
    F(bytes_out, "Bytes written to sockets", 0),
    F(drops_slow, "Members closed with 1013 for a full send queue", 0),
    F(ring_overruns, "Times a worker fell a whole ring behind", 0),
    F(closes_protocol, "Connections failed for protocol errors", 0),
    F(timeouts, "Handshake, idle and close timeouts", 0),
    F(rejects_limit, "Connections shed at fd limits", 0),
};
#undef F
#define NFIELDS (sizeof fields / sizeof fields[0])

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

/* Append to buf at *n, never past cap (a cut body is still valid up to *n). */
static void put(char *buf, size_t cap, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t cap, size_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *n, cap - *n, fmt, ap);
    va_end(ap);
    if (w > 0)
        *n = (*n + (size_t)w < cap) ? *n + (size_t)w : cap - 1;
}

static size_t render_json(const struct shm_segment *seg, char *buf, size_t cap)
{
    size_t n = 0;
    uint64_t total[NFIELDS] = { 0 };
    int workers = 0;
    put(buf, cap, &n, "{\"workers\":[");
    for (int s = 0; s < SHM_MAX_SLOTS; s++) {
        const struct shm_slot *sl = &seg->slots[s];
        int pid = LOAD(sl->pid);
        if (pid == 0)
            continue;
        put(buf, cap, &n, "%s{\"slot\":%d,\"pid\":%d,\"generation\":%u", workers ? "," : "",
            s, pid, LOAD(sl->generation));
        for (size_t f = 0; f < NFIELDS; f++) {
            uint64_t v = counter(sl, f);
            total[f] += v;
            put(buf, cap, &n, ",\"%s\":%llu", fields[f].name, (unsigned long long)v);
        }
        put(buf, cap, &n, "}");
        workers++;
    }
    put(buf, cap, &n, "],\"total\":{\"workers\":%d", workers);
    for (size_t f = 0; f < NFIELDS; f++)
        put(buf, cap, &n, ",\"%s\":%llu", fields[f].name, (unsigned long long)total[f]);
    put(buf, cap, &n, "},\"ring\":{\"capacity\":%llu,\"head\":%llu,\"tail\":%llu,\"last_id\":%llu}}\n",
        (unsigned long long)seg->ring.capacity, (unsigned long long)ring_head(&seg->ring),
        (unsigned long long)ring_tail(&seg->ring), (unsigned long long)ring_last_id(&seg->ring));
    return n;
}

static size_t render_metrics(const struct shm_segment *seg, char *buf, size_t cap)
{
    size_t n = 0;
    for (size_t f = 0; f < NFIELDS; f++) {
        put(buf, cap, &n, "# HELP wschat_%s %s\n# TYPE wschat_%s %s\n", fields[f].name,
            fields[f].help, fields[f].name, fields[f].gauge ? "gauge" : "counter");
        for (int s = 0; s < SHM_MAX_SLOTS; s++) {
            const struct shm_slot *sl = &seg->slots[s];
            if (LOAD(sl->pid) == 0)
                continue;
            put(buf, cap, &n, "wschat_%s{slot=\"%d\"} %llu\n", fields[f].name, s,
                (unsigned long long)counter(sl, f));
        }
    }
    put(buf, cap, &n, "# HELP wschat_ring_last_id Id of the newest chat event\n"
        "# TYPE wschat_ring_last_id counter\nwschat_ring_last_id %llu\n",
        (unsigned long long)ring_last_id(&seg->ring));
    return n;
}

int stats_serve(struct worker *w, struct conn *c, const char *path, size_t len,
                int head_only, int keep)
{
    static char body[128 * 1024];
    int json = len == 6;
    (void)path;
    size_t n = json ? render_json(w->ctx.seg, body, sizeof body)
                    : render_metrics(w->ctx.seg, body, sizeof body);
    http_conn_respond(w, c, 200, json ? "application/json" : "text/plain; version=0.0.4",
                      body, n, head_only, keep, "Cache-Control: no-store\r\n");
    return 0;
}
