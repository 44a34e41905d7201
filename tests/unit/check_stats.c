/*
 * check_stats: /stats and /metrics rendering (server/stats.c) over a
 * segment built in plain memory. The ring control block is only read by the
 * renderers (ring_head/tail/last_id are loads of its fields), so it is set
 * by hand and no data area is needed. Two slots are live with distinct
 * counters, a third slot has counters but no pid and must not show.
 * Renderers are run against a guard page for every short capacity.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "http.h"
#include "shm.h"
#include "stats.h"
#include "version.h"

#define NCOUNTERS (sizeof(struct shm_counters) / sizeof(uint64_t))

/* struct shm_counters in declaration order: JSON key, Prometheus name, 1 for a gauge. */
static const struct { const char *name, *prom; int gauge; } names[] = {
    { "conns_accepted", "conns_accepted_total", 0 }, { "conns_current", "conns_current", 1 },
    { "ws_current", "ws_current", 1 }, { "http_requests", "http_requests_total", 0 },
    { "handshakes_ok", "handshakes_ok_total", 0 },
    { "handshakes_failed", "handshakes_failed_total", 0 },
    { "msgs_in", "msgs_in_total", 0 }, { "msgs_published", "msgs_published_total", 0 },
    { "deliveries", "deliveries_total", 0 }, { "bytes_in", "read_bytes_total", 0 },
    { "bytes_out", "written_bytes_total", 0 }, { "drops_slow", "drops_slow_total", 0 },
    { "ring_overruns", "ring_overruns_total", 0 },
    { "closes_protocol", "closes_protocol_total", 0 }, { "timeouts", "timeouts_total", 0 },
    { "rejects_limit", "rejects_limit_total", 0 },
};
_Static_assert(sizeof names / sizeof names[0] == NCOUNTERS, "one name per counter");

static const struct { int slot; int32_t pid; uint32_t gen; uint64_t base; } live[2] = {
    { 3, 4242, 2, 1000 },
    { 70, 777, 5, 5000000000ull },
};
#define DEAD_SLOT 5

static struct shm_segment *seg;
static char out[256 * 1024];

static uint64_t value(int w, size_t f)
{
    return live[w].base + 7 * f;
}

static void set_counters(struct shm_slot *sl, uint64_t (*v)(int, size_t), int w)
{
    uint64_t c[NCOUNTERS];
    for (size_t f = 0; f < NCOUNTERS; f++)
        c[f] = v(w, f);
    memcpy(&sl->counters, c, sizeof c);
}

static uint64_t dead_value(int w, size_t f)
{
    (void)w; (void)f;
    return 999999;
}

static void seg_setup(void)
{
    /* The segment is 64-byte aligned by type; plain calloc gives 16. */
    seg = aligned_alloc(_Alignof(struct shm_segment), sizeof *seg);
    ck_assert_ptr_nonnull(seg);
    memset(seg, 0, sizeof *seg);
    for (int w = 0; w < 2; w++) {
        struct shm_slot *sl = &seg->slots[live[w].slot];
        sl->pid = live[w].pid;
        sl->generation = live[w].gen;
        set_counters(sl, value, w);
    }
    set_counters(&seg->slots[DEAD_SLOT], dead_value, 0);
    seg->slots[DEAD_SLOT].generation = 9;
    seg->ring.capacity = 4096;
    seg->ring.head = 640;
    seg->ring.tail = 128;
    seg->ring.last_id = 7;
    seg->handoffs = 11;
    seg->handoff_failures = 3;
}

static void seg_teardown(void)
{
    free(seg);
    seg = NULL;
    guard_release();
}

static int has(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

/* ---- routing ------------------------------------------------------------- */

static const struct { const char *path; int ok; } routes[] = {
    { "/stats", 1 }, { "/metrics", 1 }, { "/stats/", 0 }, { "/statsx", 0 },
    { "/metric", 0 }, { "/metricsx", 0 }, { "/Stats", 0 }, { "stats", 0 },
    { "/", 0 }, { "", 0 }, { "/stats?x=1", 0 }, { "//stats", 0 },
};

START_TEST(route)
{
    const char *p = routes[_i].path;
    char *g = guard_copy(p, strlen(p));
    ck_assert_int_eq(stats_route(g, strlen(p)), routes[_i].ok);
}
END_TEST

START_TEST(route_uses_len)
{
    ck_assert_int_eq(stats_route("/statsXYZ", 6), 1);
    ck_assert_int_eq(stats_route("/metrics/", 8), 1);
    ck_assert_int_eq(stats_route("/stats", 5), 0);
    ck_assert_int_eq(stats_route("/metrics", 7), 0);
}
END_TEST

/* ---- JSON ---------------------------------------------------------------- */

/*
 * Simple validity: one top-level object ending the document before its
 * "\n", balanced braces/brackets outside strings, closed strings, and
 * nothing outside strings but structure and digits. Index of the first
 * bad byte, or N when the shape holds.
 */
static size_t json_bad_at(const char *s, size_t n)
{
    int depth = 0, in_str = 0;
    if (n < 3 || s[0] != '{' || s[n - 1] != '\n')
        return 0;
    for (size_t i = 0; i + 1 < n; i++) {
        char c = s[i];
        if (c == '"')
            in_str = !in_str;
        else if (in_str)
            continue;
        else if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']')
            depth--;
        else if (c != ':' && c != ',' && (c < '0' || c > '9'))
            return i;
        if (depth < 0 || (depth == 0 && i + 2 < n))
            return i;
    }
    return depth == 0 && !in_str ? n : n - 1;
}

static void assert_json_shape(const char *s, size_t n)
{
    size_t bad = json_bad_at(s, n);
    ck_assert_msg(bad == n, "JSON shape broken at byte %zu of %zu", bad, n);
}

/* The object that starts with PREFIX, up to its first '}', as a string. */
static char *object_at(const char *doc, const char *prefix, char *dst, size_t cap)
{
    const char *p = strstr(doc, prefix);
    ck_assert_msg(p != NULL, "no %s", prefix);
    const char *e = strchr(p, '}');
    ck_assert_ptr_nonnull(e);
    ck_assert_uint_lt((size_t)(e - p), cap);
    memcpy(dst, p, (size_t)(e - p + 1));
    dst[e - p + 1] = '\0';
    return dst;
}

START_TEST(json_document)
{
    ssize_t n = stats_render_json(seg, out, sizeof out);
    ck_assert_int_gt(n, 0);
    out[n] = '\0';
    ck_assert_uint_eq(strlen(out), (size_t)n);
    assert_json_shape(out, (size_t)n);
    ck_assert_mem_eq(out, "{\"workers\":[{\"slot\":3,", 22);
    ck_assert_mem_eq(out + n - 2, "}\n", 2);

    char obj[2048], want[96];
    for (int w = 0; w < 2; w++) {
        snprintf(want, sizeof want, "{\"slot\":%d,\"pid\":%d,\"generation\":%u,",
                 live[w].slot, live[w].pid, live[w].gen);
        object_at(out, want, obj, sizeof obj);
        for (size_t f = 0; f < NCOUNTERS; f++) {
            snprintf(want, sizeof want, "\"%s\":%llu%c", names[f].name,
                     (unsigned long long)value(w, f), f + 1 < NCOUNTERS ? ',' : '}');
            ck_assert_msg(has(obj, want), "slot %d lacks %s", live[w].slot, want);
        }
    }
    ck_assert(!has(out, "\"slot\":5,"));
    ck_assert(!has(out, "999999"));
    ck_assert(has(out, "}],\"total\":{"));

    object_at(out, "\"total\":{", obj, sizeof obj);
    ck_assert(has(obj, "\"total\":{\"workers\":2,"));
    for (size_t f = 0; f < NCOUNTERS; f++) {
        snprintf(want, sizeof want, "\"%s\":%llu,", names[f].name,
                 (unsigned long long)(value(0, f) + value(1, f)));
        ck_assert_msg(has(obj, want), "total lacks %s", want);
    }
    /* The segment's own counters close the totals (no worker holds them). */
    ck_assert(has(obj, ",\"rejects_limit\":"));
    ck_assert(has(obj, ",\"handoffs\":11,\"handoff_failures\":3}"));
    ck_assert(!has(out, "\"slot\":3,\"pid\":4242,\"generation\":2,\"handoffs\""));
    const char ring[] = ",\"ring\":{\"capacity\":4096,\"head\":640,\"tail\":128,"
                        "\"last_id\":7}}\n";
    ck_assert_uint_gt((size_t)n, sizeof ring - 1);
    ck_assert_str_eq(out + n - (sizeof ring - 1), ring);
}
END_TEST

START_TEST(json_no_workers)
{
    memset(seg->slots, 0, sizeof seg->slots);
    ssize_t n = stats_render_json(seg, out, sizeof out);
    ck_assert_int_gt(n, 0);
    out[n] = '\0';
    ck_assert_mem_eq(out, "{\"workers\":[],\"total\":{\"workers\":0,\"conns_accepted\":0,", 53);
    assert_json_shape(out, (size_t)n);
}
END_TEST

/* ---- Prometheus text ----------------------------------------------------- */

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

START_TEST(metrics_document)
{
    ssize_t n = stats_render_metrics(seg, out, sizeof out);
    ck_assert_int_gt(n, 0);
    out[n] = '\0';
    ck_assert_uint_eq(strlen(out), (size_t)n);
    ck_assert_int_eq(out[n - 1], '\n');
    char want[128];
    for (size_t f = 0; f < NCOUNTERS; f++) {
        snprintf(want, sizeof want, "\n# TYPE wschat_%s %s\n", names[f].prom,
                 names[f].gauge ? "gauge" : "counter");
        ck_assert_msg(has(out, want), "no %s", want + 1);
        snprintf(want, sizeof want, "# HELP wschat_%s ", names[f].prom);
        ck_assert_msg(has(out, want), "no %s", want);
        for (int w = 0; w < 2; w++) {
            snprintf(want, sizeof want, "\nwschat_%s{slot=\"%d\"} %llu\n", names[f].prom,
                     live[w].slot, (unsigned long long)value(w, f));
            ck_assert_msg(has(out, want), "no %s", want + 1);
        }
    }
    ck_assert(!has(out, "{slot=\"5\"}"));
    ck_assert(has(out, "# TYPE wschat_ring_last_id gauge\nwschat_ring_last_id 7\n"));
    ck_assert(has(out, "\n# TYPE wschat_handoffs_total counter\nwschat_handoffs_total 11\n"));
    ck_assert(has(out, "\n# TYPE wschat_handoff_failures_total counter\n"
                  "wschat_handoff_failures_total 3\n"));
    /* HELP + TYPE + one line per live slot, per counter; three each for
     * build_info, ring_last_id and the two server-wide hand-over counters. */
    ck_assert_uint_eq(count_lines(out), NCOUNTERS * 4 + 12);
    ck_assert(has(out, "# HELP wschat_build_info "));
    ck_assert_mem_eq(out, "# HELP wschat_build_info ", 25);
    snprintf(want, sizeof want, "\n# TYPE wschat_build_info gauge\n"
             "wschat_build_info{version=\"%s\"} 1\n", WSCHAT_VERSION);
    ck_assert_msg(has(out, want), "no %s", want + 1);
}
END_TEST

/*
 * The exposition conventions, read off the document itself: every family
 * has HELP then TYPE; a counter's name ends in _total, a gauge's does not;
 * every sample belongs to the family last declared; names are
 * [a-zA-Z_:][a-zA-Z0-9_:]* and all start with wschat_.
 */
START_TEST(metrics_conventions)
{
    ssize_t n = stats_render_metrics(seg, out, sizeof out);
    ck_assert_int_gt(n, 0);
    out[n] = '\0';
    char family[128] = "", help[128] = "";
    int families = 0;
    for (char *line = out, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        ck_assert_ptr_nonnull(nl);
        *nl = '\0';
        char name[128], type[32];
        if (sscanf(line, "# HELP %127s", help) == 1)
            continue;
        if (sscanf(line, "# TYPE %127s %31s", name, type) == 2) {
            ck_assert_str_eq(name, help);
            size_t len = strlen(name);
            int total = len > 6 && strcmp(name + len - 6, "_total") == 0;
            if (strcmp(type, "counter") == 0)
                ck_assert_msg(total, "counter %s lacks _total", name);
            else
                ck_assert_msg(strcmp(type, "gauge") == 0 && !total, "%s: %s", name, type);
            ck_assert_msg(strncmp(name, "wschat_", 7) == 0, "%s", name);
            ck_assert_uint_eq(strspn(name, "abcdefghijklmnopqrstuvwxyz_"), len);
            snprintf(family, sizeof family, "%s", name);
            families++;
            continue;
        }
        size_t len = strcspn(line, "{ ");
        ck_assert_msg(len == strlen(family) && strncmp(line, family, len) == 0,
                      "sample \"%s\" outside family %s", line, family);
    }
    ck_assert_int_eq(families, (int)NCOUNTERS + 4);
}
END_TEST

/* ---- bounded writing ----------------------------------------------------- */

typedef ssize_t (*render_fn)(const struct shm_segment *, char *, size_t);
static const render_fn renderers[] = { stats_render_json, stats_render_metrics };

/*
 * For every cap below the full length: -ENOSPC, nothing written past cap
 * (the guard page), nothing before the buffer either (bytes in front keep
 * their fill). At the full length the document fits exactly.
 */
START_TEST(short_caps)
{
    render_fn render = renderers[_i];
    ssize_t full = render(seg, out, sizeof out);
    ck_assert_int_gt(full, 0);
    static char fill[256 * 1024], doc[256 * 1024];
    memcpy(doc, out, (size_t)full);
    memset(fill, 0xee, (size_t)full);
    for (size_t cap = 0; cap < (size_t)full; cap++) {
        char *base = guard_copy(fill, (size_t)full);
        char *dst = base + ((size_t)full - cap);
        ssize_t rc = render(seg, dst, cap);
        ck_assert_msg(rc == -ENOSPC, "cap %zu of %zd: got %zd", cap, full, rc);
        size_t front = 0;
        while (front < (size_t)full - cap && (unsigned char)base[front] == 0xee)
            front++;
        ck_assert_msg(front == (size_t)full - cap, "cap %zu: byte %zu before dst written",
                      cap, front);
    }
    char *dst = guard_copy(fill, (size_t)full);
    ck_assert_int_eq(render(seg, dst, (size_t)full), full);
    ck_assert_mem_eq(dst, doc, (size_t)full);
}
END_TEST

/* ---- stats_serve --------------------------------------------------------- */

START_TEST(serve_json)
{
    struct http_response resp;
    memset(&resp, 0x5a, sizeof resp);
    ck_assert_int_eq(stats_serve(seg, "/stats", 6, &resp), 0);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(resp.ctype, "application/json");
    ck_assert_str_eq(resp.headers, "Cache-Control: no-store\r\n");
    ck_assert_ptr_null(resp.owned);
    ssize_t n = stats_render_json(seg, out, sizeof out);
    ck_assert_uint_eq(resp.length, (size_t)n);
    ck_assert_mem_eq(resp.body, out, (size_t)n);
}
END_TEST

START_TEST(serve_metrics)
{
    struct http_response resp;
    memset(&resp, 0x5a, sizeof resp);
    ck_assert_int_eq(stats_serve(seg, "/metrics", 8, &resp), 0);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(resp.ctype, "text/plain; version=0.0.4");
    ck_assert_str_eq(resp.headers, "Cache-Control: no-store\r\n");
    ck_assert_ptr_null(resp.owned);
    ssize_t n = stats_render_metrics(seg, out, sizeof out);
    ck_assert_uint_eq(resp.length, (size_t)n);
    ck_assert_mem_eq(resp.body, out, (size_t)n);
}
END_TEST

static uint64_t max_value(int w, size_t f)
{
    (void)w; (void)f;
    return UINT64_MAX;
}

/* Every slot live, every counter and ring field at its widest: still fits. */
START_TEST(serve_worst_case)
{
    for (int s = 0; s < SHM_MAX_SLOTS; s++) {
        seg->slots[s].pid = INT32_MAX;
        seg->slots[s].generation = UINT32_MAX;
        set_counters(&seg->slots[s], max_value, 0);
    }
    seg->ring.capacity = seg->ring.head = seg->ring.tail = UINT64_MAX;
    seg->ring.last_id = UINT64_MAX;
    const struct { const char *path; size_t len; render_fn render; } both[] = {
        { "/stats", 6, stats_render_json }, { "/metrics", 8, stats_render_metrics },
    };
    for (int k = 0; k < 2; k++) {
        struct http_response resp;
        ck_assert_int_eq(stats_serve(seg, both[k].path, both[k].len, &resp), 0);
        ck_assert_int_eq(resp.status, 200);
        ssize_t n = both[k].render(seg, out, sizeof out);
        ck_assert_int_gt(n, 0);
        ck_assert_uint_eq(resp.length, (size_t)n);
        ck_assert_mem_eq(resp.body, out, (size_t)n);
        out[n] = '\0';
        ck_assert(has(out, "18446744073709551615"));
    }
    /* The JSON total wraps per counter; it still says 128 workers. */
    ssize_t n = stats_render_json(seg, out, sizeof out);
    out[n] = '\0';
    ck_assert(has(out, "\"total\":{\"workers\":128,"));
    ck_assert(has(out, "{\"slot\":127,\"pid\":2147483647,\"generation\":4294967295,"));
    n = stats_render_metrics(seg, out, sizeof out);
    out[n] = '\0';
    ck_assert_uint_eq(count_lines(out), NCOUNTERS * (2 + SHM_MAX_SLOTS) + 12);
}
END_TEST

Suite *stats_suite(void)
{
    Suite *s = suite_create("stats");
    TCase *tc;

    tc = tcase_create("route");
    tcase_add_loop_test(tc, route, 0, sizeof routes / sizeof routes[0]);
    tcase_add_test(tc, route_uses_len);
    suite_add_tcase(s, tc);

    tc = tcase_create("render");
    tcase_add_checked_fixture(tc, seg_setup, seg_teardown);
    tcase_add_test(tc, json_document);
    tcase_add_test(tc, json_no_workers);
    tcase_add_test(tc, metrics_document);
    tcase_add_test(tc, metrics_conventions);
    tcase_add_loop_test(tc, short_caps, 0, 2);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("serve");
    tcase_add_checked_fixture(tc, seg_setup, seg_teardown);
    tcase_add_test(tc, serve_json);
    tcase_add_test(tc, serve_metrics);
    tcase_add_test(tc, serve_worst_case);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    return s;
}
