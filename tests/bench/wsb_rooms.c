/*
 * wsb_rooms: many small rooms at once. N rooms of two members each (2N
 * connections to /chat/<room>), each room getting R messages per second,
 * the sends of all rooms spread evenly over each second (open loop, one
 * timerfd), sent alternately by the room's two members. Every message
 * must reach both members exactly once, in order: the other member (the
 * latency figure) and the sender itself (the protocol gives a member its
 * own message back, with the id every member sees).
 *
 * Each text is a token "~r:<run>:<room>:<seq>:<ns>~" padded with 'x' to B
 * bytes (ns = intended send time since the run began, so a stalled
 * generator shows up as latency instead of hiding). (member, seq) indexes
 * a bit: set twice is a duplicate, never set is a loss; a token of another
 * room is a misrouted message, the defect a room table can have.
 *
 * Server memory is read before the first connect, once every member has
 * joined and sat idle for --hold, and after the traffic: the second minus
 * the first, per member, is what a member of a small room costs.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wsb.h"

#define TOKEN_MAX        96
#define MAX_BITMAP_BYTES (256u * 1024 * 1024)

struct rmember {
    uint8_t  first_seen, welcomed, ready, dropped;
    uint32_t next_seq;          /* order check: last seq seen + 1 */
};

struct rooms {
    const struct wsb_opts *o;
    struct wsb_loop *l;
    struct wsb_conn *conns;
    struct rmember  *m;
    uint8_t *live;              /* per room: both members ready at start */
    uint8_t *bits;              /* 2N x K delivery bitmap */
    int      N, nready, nlive, in_run;
    uint64_t K;                 /* messages planned per room */
    uint64_t epoch;
    uint32_t run;
    uint64_t welcome_errors, sent, send_fail, expected, received;
    uint64_t peer_rx, echo_rx, dups, reorders, misrouted, foreign;
    uint64_t bad_tokens, late, errors, drops, drop_before_ready;
    uint16_t first_drop_code;
    uint64_t drop_codes[2];     /* [0] 1013 (try again), [1] any other */
    struct wsb_hist peer, echo;
    char    *text;
    char     path[128];
};

/* ---- receiving ---------------------------------------------------------- */

static int parse_u64(const char **p, const char *end, char delim,
                     uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (s >= end || *s < '0' || *s > '9')
        return -1;
    while (s < end && *s >= '0' && *s <= '9')
        v = v * 10 + (uint64_t)(*s++ - '0');
    if (s >= end || *s != delim)
        return -1;
    *out = v;
    *p = s + 1;
    return 0;
}

/* Token "~r:RUN:ROOM:SEQ:NS~" in p[0..n): 1 found, 0 absent, -1 garbled. */
static int token_find(const char *p, size_t n, uint64_t v[4])
{
    const char *t = p, *end = p + n;
    for (;;) {
        t = memchr(t, '~', (size_t)(end - t));
        if (t == NULL || end - t < 3)
            return 0;
        if (t[1] == 'r' && t[2] == ':')
            break;
        t++;
    }
    const char *s = t + 3;
    if (parse_u64(&s, end, ':', &v[0]) || parse_u64(&s, end, ':', &v[1]) ||
        parse_u64(&s, end, ':', &v[2]) || parse_u64(&s, end, '~', &v[3]))
        return -1;
    return 1;
}

static int has_type(const char *p, size_t n, const char *type)
{
    char pat[48];
    int k = snprintf(pat, sizeof pat, "\"type\":\"%s\"", type);
    return memmem(p, n, pat, (size_t)k) != NULL;
}

/* Before history_end: the welcome must come first; history is ignored. */
static void member_joining(struct rooms *s, struct rmember *m,
                           const char *p, size_t n)
{
    if (!m->first_seen) {
        m->first_seen = 1;
        m->welcomed = (uint8_t)has_type(p, n, "welcome");
        if (!m->welcomed)
            s->welcome_errors++;
    }
    if (has_type(p, n, "history_end")) {
        m->ready = 1;
        s->nready++;
    }
}

static void count_delivery(struct rooms *s, int mi, const uint64_t v[4])
{
    uint64_t room = v[1], seq = v[2];
    if ((int)room != mi / 2) {
        s->misrouted++;
        return;
    }
    if (seq >= s->K || !s->live[room]) {
        s->bad_tokens++;
        return;
    }
    uint64_t bit = (uint64_t)mi * s->K + seq;
    uint8_t mask = (uint8_t)(1u << (bit & 7));
    if (s->bits[bit >> 3] & mask) {
        s->dups++;
        return;
    }
    s->bits[bit >> 3] |= mask;
    s->received++;
    struct rmember *m = &s->m[mi];
    if (seq + 1 <= m->next_seq)
        s->reorders++;
    else
        m->next_seq = (uint32_t)(seq + 1);
    uint64_t now = wsb_loop_rx_ns(s->l), sent = s->epoch + v[3];
    uint64_t lat = now > sent ? now - sent : 0;
    /* Message seq of a room was sent by its member seq % 2. */
    if ((uint64_t)(mi & 1) == (seq & 1)) {
        s->echo_rx++;
        wsb_hist_add(&s->echo, lat);
    } else {
        s->peer_rx++;
        wsb_hist_add(&s->peer, lat);
    }
}

static void on_message(struct wsb_conn *c, int op, const char *p, size_t n,
                       void *ud)
{
    struct rooms *s = ud;
    struct rmember *m = &s->m[c->id];
    if (op != WSB_OP_TEXT)
        return;
    if (!m->ready) {
        member_joining(s, m, p, n);
        return;
    }
    uint64_t v[4];
    int t = token_find(p, n, v);
    if (t == 0) {
        /* join/leave/presence events; an error explains a loss */
        if (has_type(p, n, "error"))
            s->errors++;
        return;
    }
    if (t < 0)
        s->bad_tokens++;
    else if (v[0] != s->run)
        s->foreign++;
    else if (!s->in_run)
        s->late++;
    else
        count_delivery(s, (int)c->id, v);
}

static void on_done(struct wsb_conn *c, void *ud)
{
    struct rooms *s = ud;
    struct rmember *m = &s->m[c->id];
    if (!c->was_open || c->initiated || m->dropped)
        return;
    m->dropped = 1;
    if (m->ready && s->in_run)
        s->drops++;
    else if (!m->ready)
        s->drop_before_ready++;
    s->drop_codes[c->close_code == 1013 ? 0 : 1]++;
    if (!s->first_drop_code)
        s->first_drop_code = c->close_code ? c->close_code : 1006;
}

/* ---- setup -------------------------------------------------------------- */

static const char *member_path(int i, void *ud)
{
    struct rooms *s = ud;
    snprintf(s->path, sizeof s->path, "/chat/rm%08x-%d?nick=%c%d", s->run,
             i / 2, i & 1 ? 'b' : 'a', i / 2);
    return s->path;
}

static int poll_until(struct rooms *s, uint64_t until, const int *done)
{
    while (wsb_now_ns() < until && !wsb_deadline_passed() &&
           !(done && *done))
        if (wsb_loop_poll(s->l, 20) < 0)
            return -1;
    return 0;
}

static int wait_ready(struct rooms *s, int opened)
{
    uint64_t limit = wsb_now_ns() + (uint64_t)(s->o->connect_timeout * 1e9);
    while (s->nready < opened && wsb_now_ns() < limit &&
           !wsb_deadline_passed()) {
        /* Members the server closed never get ready: stop waiting then. */
        if (s->nready + (int)s->drop_before_ready >= opened)
            break;
        if (wsb_loop_poll(s->l, 20) < 0)
            return -1;
    }
    return 0;
}

static int member_ok(const struct rooms *s, int i)
{
    return s->m[i].ready && !s->m[i].dropped &&
           s->conns[i].state == WSB_ST_OPEN;
}

static void mark_live(struct rooms *s)
{
    for (int r = 0; r < s->N; r++) {
        s->live[r] = (uint8_t)(member_ok(s, 2 * r) && member_ok(s, 2 * r + 1));
        s->nlive += s->live[r];
    }
}

/* ---- traffic ------------------------------------------------------------ */

static void send_one(struct rooms *s, int room, uint64_t seq,
                     uint64_t intended)
{
    struct wsb_conn *c = &s->conns[2 * room + (int)(seq & 1)];
    size_t b = s->o->bytes;
    int len = snprintf(s->text, b + TOKEN_MAX, "~r:%u:%d:%llu:%llu~",
                       s->run, room, (unsigned long long)seq,
                       (unsigned long long)(intended - s->epoch));
    size_t n = (size_t)len < b ? b : (size_t)len;
    memset(s->text + len, 'x', n - (size_t)len);
    if (wsb_conn_send(s->l, c, WSB_OP_TEXT, s->text, n) < 0) {
        s->send_fail++;
        return;
    }
    s->sent++;
    s->expected += 2;
}

/* Message g of the run is room g % N's message g / N, due at t0 + g/(N R). */
static int send_phase(struct rooms *s, uint64_t t0, double *max_lag_ms)
{
    uint64_t total = (uint64_t)s->N * s->K, g = 0, max_lag = 0;
    double interval = 1e9 / ((double)s->N * s->o->room_rate);
    while (g < total && !wsb_deadline_passed()) {
        uint64_t now = wsb_now_ns();
        while (g < total) {
            uint64_t due = t0 + (uint64_t)((double)g * interval);
            if (due > now)
                break;
            if (now - due > max_lag)
                max_lag = now - due;
            int room = (int)(g % (uint64_t)s->N);
            if (s->live[room])
                send_one(s, room, g / (uint64_t)s->N, due);
            g++;
        }
        if (g < total)
            wsb_loop_arm(s->l, t0 + (uint64_t)((double)g * interval));
        if (wsb_loop_poll(s->l, 100) < 0)
            return -1;
    }
    wsb_loop_arm(s->l, 0);
    *max_lag_ms = (double)max_lag / 1e6;
    return 0;
}

static int drain_phase(struct rooms *s, uint64_t *last_rx)
{
    uint64_t limit = wsb_now_ns() + (uint64_t)(s->o->drain * 1e9);
    uint64_t seen = s->received;
    *last_rx = wsb_now_ns();
    while (s->received < s->expected && wsb_now_ns() < limit &&
           !wsb_deadline_passed()) {
        if (wsb_loop_poll(s->l, 20) < 0)
            return -1;
        if (s->received != seen) {
            seen = s->received;
            *last_rx = wsb_now_ns();
        }
    }
    if (s->received == s->expected)
        *last_rx = wsb_now_ns();
    return 0;
}

/* ---- report ------------------------------------------------------------- */

static void report_usage(const char *what, const char *key, int have,
                         const struct wsb_server_usage *u0,
                         const struct wsb_server_usage *u1, int members)
{
    FILE *h = wsb_human();
    if (!have || members <= 0) {
        fprintf(h, "  server memory   %s: unknown\n", what);
        return;
    }
    double rss = ((double)u1->rss_kb - (double)u0->rss_kb) * 1024 / members;
    double pss = ((double)u1->pss_kb - (double)u0->pss_kb) * 1024 / members;
    fprintf(h, "  server RSS      %s: %llu kB -> %llu kB over %d processes "
            "= %.0f B RSS, %.0f B PSS per member\n", what,
            (unsigned long long)u0->rss_kb, (unsigned long long)u1->rss_kb,
            u1->nproc, rss, pss);
    double data = ((double)u1->data_kb - (double)u0->data_kb) * 1024 / members;
    fprintf(h, "  without code    %s: %.0f B RSS per member (anon + shmem)\n", what, data);
    char k[48];
    snprintf(k, sizeof k, "%s_rss_per_member_bytes", key);
    wsb_json_num(k, rss);
    snprintf(k, sizeof k, "%s_mem_per_member_bytes", key);
    wsb_json_num(k, data);
    snprintf(k, sizeof k, "%s_pss_per_member_bytes", key);
    wsb_json_num(k, pss);
    snprintf(k, sizeof k, "%s_rss_kb", key);
    wsb_json_int(k, (int64_t)u1->rss_kb);
}

static void report_open(struct rooms *s, const struct wsb_open_result *r)
{
    FILE *h = wsb_human();
    double rate = r->seconds > 0 ? r->opened / r->seconds : 0;
    fprintf(h, "  open            %d/%d in %.2f s = %.0f joins/s\n",
            r->opened, 2 * s->N, r->seconds, rate);
    for (int i = 1; i < WSB_FAIL_COUNT; i++)
        if (r->fail[i])
            fprintf(h, "  open failures   %s: %llu\n", wsb_fail_name(i),
                    (unsigned long long)r->fail[i]);
    fprintf(h, "  ready           %d members got history_end, %d/%d rooms "
            "complete%s\n", s->nready, s->nlive, s->N,
            s->welcome_errors ? " (some without welcome first)" : "");
    if (s->drop_before_ready)
        fprintf(h, "  refused         %llu members closed by the server "
                "before history_end (%llu with 1013, first code %u)\n",
                (unsigned long long)s->drop_before_ready,
                (unsigned long long)s->drop_codes[0], s->first_drop_code);
    wsb_json_int("opened", r->opened);
    wsb_json_int("open_failed", r->failed);
    wsb_json_num("joins_per_s", rate);
    wsb_json_int("ready", s->nready);
    wsb_json_int("rooms_complete", s->nlive);
    wsb_json_int("refused_before_ready", (int64_t)s->drop_before_ready);
    wsb_json_int("refused_1013", (int64_t)s->drop_codes[0]);
    wsb_json_int("welcome_errors", (int64_t)s->welcome_errors);
}

static void report_traffic(struct rooms *s, double active, double wall,
                           double cpu, double lag_ms)
{
    FILE *h = wsb_human();
    uint64_t lost = s->expected > s->received ? s->expected - s->received : 0;
    double dps = active > 0 ? (double)s->received / active : 0;
    fprintf(h, "  sent            %llu messages to %d rooms (%llu failed), "
            "max publish lag %.1f ms\n", (unsigned long long)s->sent,
            s->nlive, (unsigned long long)s->send_fail, lag_ms);
    fprintf(h, "  delivered       %llu/%llu = %.0f deliveries/s; lost %llu, "
            "dup %llu, reordered %llu, misrouted %llu\n",
            (unsigned long long)s->received, (unsigned long long)s->expected,
            dps, (unsigned long long)lost, (unsigned long long)s->dups,
            (unsigned long long)s->reorders,
            (unsigned long long)s->misrouted);
    fprintf(h, "  to the peer ms  p50 %.2f  p99 %.2f  p99.9 %.2f  max %.2f "
            "(%llu)\n", wsb_hist_quantile(&s->peer, 0.5) / 1e6,
            wsb_hist_quantile(&s->peer, 0.99) / 1e6,
            wsb_hist_quantile(&s->peer, 0.999) / 1e6,
            (s->peer.count ? s->peer.max : 0) / 1e6,
            (unsigned long long)s->peer_rx);
    fprintf(h, "  own echo ms     p50 %.2f  p99 %.2f (%llu)\n",
            wsb_hist_quantile(&s->echo, 0.5) / 1e6,
            wsb_hist_quantile(&s->echo, 0.99) / 1e6,
            (unsigned long long)s->echo_rx);
    if (s->errors || s->drops || s->late || s->foreign || s->bad_tokens)
        fprintf(h, "  other           %llu error events, %llu members dropped, "
                "%llu late, %llu foreign, %llu bad tokens\n",
                (unsigned long long)s->errors, (unsigned long long)s->drops,
                (unsigned long long)s->late, (unsigned long long)s->foreign,
                (unsigned long long)s->bad_tokens);
    wsb_report_cpu("traffic", "generator_traffic", wall, cpu);
    wsb_json_hist_ms("peer_latency", &s->peer);
    wsb_json_hist_ms("echo_latency", &s->echo);
    wsb_json_int("sent", (int64_t)s->sent);
    wsb_json_int("send_failures", (int64_t)s->send_fail);
    wsb_json_int("expected", (int64_t)s->expected);
    wsb_json_int("received", (int64_t)s->received);
    wsb_json_int("lost", (int64_t)lost);
    wsb_json_int("duplicates", (int64_t)s->dups);
    wsb_json_int("reorders", (int64_t)s->reorders);
    wsb_json_int("misrouted", (int64_t)s->misrouted);
    wsb_json_int("foreign_tokens", (int64_t)s->foreign);
    wsb_json_int("bad_tokens", (int64_t)s->bad_tokens);
    wsb_json_int("late", (int64_t)s->late);
    wsb_json_int("server_errors", (int64_t)s->errors);
    wsb_json_int("member_drops", (int64_t)s->drops);
    wsb_json_num("max_publish_lag_ms", lag_ms);
    wsb_json_num("deliveries_per_s", dps);
    /* Flat copies for run-bench.sh, which reads top-level keys. */
    wsb_json_num("peer_p50_ms", wsb_hist_quantile(&s->peer, 0.5) / 1e6);
    wsb_json_num("peer_p99_ms", wsb_hist_quantile(&s->peer, 0.99) / 1e6);
    wsb_json_num("echo_p99_ms", wsb_hist_quantile(&s->echo, 0.99) / 1e6);
}

/* ---- driver ------------------------------------------------------------- */

static int rooms_traffic(struct rooms *s, pid_t spid,
                         const struct wsb_server_usage *u0, int have)
{
    uint64_t bytes = ((uint64_t)2 * s->N * s->K + 7) / 8;
    if (bytes > MAX_BITMAP_BYTES || !(s->bits = calloc(1, bytes ? bytes : 1))) {
        fprintf(stderr, "wsbench: rooms x duration too large\n");
        return -1;
    }
    wsb_hist_init(&s->peer);
    wsb_hist_init(&s->echo);
    double cpu0 = wsb_cpu_s(), lag = 0;
    uint64_t t0 = wsb_now_ns() + 1000000, last_rx;
    s->in_run = 1;
    if (send_phase(s, t0, &lag) < 0 || drain_phase(s, &last_rx) < 0)
        return -1;
    s->in_run = 0;
    double wall = (double)(wsb_now_ns() - t0) / 1e9;
    double cpu = wsb_cpu_s() - cpu0;
    report_traffic(s, (double)(last_rx - t0) / 1e9, wall, cpu, lag);
    struct wsb_server_usage u2;
    report_usage("after traffic", "after",
                 have && wsb_server_usage(spid, &u2) == 0, u0, &u2,
                 2 * s->nlive);
    return 0;
}

static int rooms_measure(struct rooms *s)
{
    pid_t spid = wsb_server_pid(s->o);
    struct wsb_server_usage u0, u1;
    int have = wsb_server_usage(spid, &u0) == 0;
    struct wsb_open_result r = { 0 };
    wsb_open_all(s->l, s->conns, 2 * s->N, member_path, s, &r);
    if (r.opened == 0 || wait_ready(s, r.opened) < 0) {
        report_open(s, &r);
        return 2;
    }
    /* Idle members: join events settle, then the memory is read. */
    if (poll_until(s, wsb_now_ns() + (uint64_t)(s->o->hold * 1e9), NULL) < 0)
        return 2;
    mark_live(s);
    report_open(s, &r);
    report_usage("joined, idle", "idle",
                 have && wsb_server_usage(spid, &u1) == 0, &u0, &u1,
                 2 * s->nlive);
    if (s->nlive == 0)
        return 2;
    if (rooms_traffic(s, spid, &u0, have) < 0)
        return 2;
    uint64_t lost = s->expected > s->received ? s->expected - s->received : 0;
    int ok = r.failed == 0 && s->nlive == s->N && s->welcome_errors == 0 &&
             lost == 0 && s->dups == 0 && s->reorders == 0 &&
             s->misrouted == 0 && s->foreign == 0 && s->bad_tokens == 0 &&
             s->send_fail == 0 && s->drops == 0 && s->sent > 0;
    return ok ? 0 : 1;
}

int wsb_rooms_run(const struct wsb_opts *o)
{
    struct rooms s;
    memset(&s, 0, sizeof s);
    s.o = o;
    s.N = o->rooms;
    s.K = (uint64_t)(o->duration * o->room_rate + 0.5);
    if (s.K == 0)
        s.K = 1;
    s.conns = calloc((size_t)s.N * 2, sizeof *s.conns);
    s.m = calloc((size_t)s.N * 2, sizeof *s.m);
    s.live = calloc((size_t)s.N, 1);
    s.text = malloc(o->bytes + TOKEN_MAX);
    struct wsb_handlers hd = { NULL, on_message, on_done };
    if (!s.conns || !s.m || !s.live || !s.text ||
        !(s.l = wsb_loop_create(o, &hd, &s))) {
        fprintf(stderr, "wsbench: out of memory\n");
        free(s.conns); free(s.m); free(s.live); free(s.text);
        return 2;
    }
    wsb_random(&s.run, sizeof s.run);
    fprintf(wsb_human(), "rooms: %d rooms of 2 members, %.3g msg/s per room "
            "(%.0f msg/s in all), %zu-byte messages, %.1f s\n", s.N,
            o->room_rate, s.N * o->room_rate, o->bytes, o->duration);
    wsb_json_int("rooms", s.N);
    wsb_json_int("members", 2 * s.N);
    wsb_json_num("room_rate", o->room_rate);
    wsb_json_int("bytes", (int64_t)o->bytes);
    wsb_json_num("duration", o->duration);
    double cpu0 = wsb_cpu_s();
    uint64_t w0 = wsb_now_ns();
    s.epoch = w0;
    int rc = rooms_measure(&s);
    if (rc == 2)
        fprintf(wsb_human(), "  could not run: %d/%d rooms complete\n",
                s.nlive, s.N);
    wsb_close_all(s.l, s.conns, 2 * s.N);
    wsb_report_cpu("total", "generator", (double)(wsb_now_ns() - w0) / 1e9,
                   wsb_cpu_s() - cpu0);
    wsb_json_int("pass", rc == 0);
    fprintf(wsb_human(), "  result          %s\n", rc == 0 ? "PASS" : "FAIL");
    wsb_loop_destroy(s.l);
    free(s.conns); free(s.m); free(s.live); free(s.text); free(s.bits);
    return rc;
}
