/*
 * presence: presence at scale and per-address connection limits against
 * the real wsmaster. A room of at most presence_events_max members gets
 * join/leave events (decided on its size after a join, before a leave);
 * a larger one gets {"type":"presence","room":…,"online":N} at most once
 * per presence_interval, only on a change, exact within two intervals;
 * nick events stay individual; the welcome's count is exact; presence
 * never reaches the message ring (small rooms' events have a ring of their
 * own), so history survives any churn, 100,000 join/leave cycles included. Then
 * max_connections_per_ip: 503 + Retry-After before the request is read,
 * counts given back on close, 0 = off, recounted after a worker dies.
 *
 * Members are spread over two workers (max_connections below the member
 * count). Every server frame is checked as a strict flat JSON object of
 * the shape its type promises (own reader below). Every wait has a deadline.
 */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define IVL 200                 /* presence_interval of these tests, ms */
#define IVL_CONF "presence_interval 200ms\n"

static int left_ms(int64_t end)
{
    int64_t r = end - it_now_ms();
    return r < 0 ? 0 : (int)r;
}

/* ---- a strict flat JSON object reader ---------------------------------------- */

struct jv {
    char   key[16];
    char   val[256];            /* decoded, NUL-terminated */
    size_t len;
    int    str;                 /* 1 string, 0 number or literal */
};

#define JV_MAX 10

static void utf8_put(char *o, size_t *w, unsigned cp)
{
    if (cp < 0x80) {
        o[(*w)++] = (char)cp;
    } else if (cp < 0x800) {
        o[(*w)++] = (char)(0xC0 | cp >> 6);
        o[(*w)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        o[(*w)++] = (char)(0xE0 | cp >> 12);
        o[(*w)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[(*w)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        o[(*w)++] = (char)(0xF0 | cp >> 18);
        o[(*w)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[(*w)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[(*w)++] = (char)(0x80 | (cp & 0x3F));
    }
}

static int hex4_at(const char *s, size_t n, size_t i, unsigned *v)
{
    *v = 0;
    if (i + 4 > n)
        return -1;
    for (size_t k = i; k < i + 4; k++) {
        char c = s[k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        *v = *v << 4 | (unsigned)d;
    }
    return 0;
}

/* The string at s[*i] == '"' into OUT (CAP bytes with the NUL); -1 if bad or too long. */
static int jstr(const char *s, size_t n, size_t *i, char *out, size_t cap, size_t *olen)
{
    size_t p = *i + 1, w = 0;
    for (;;) {
        if (p >= n || w + 5 > cap)
            return -1;
        unsigned char c = (unsigned char)s[p++];
        if (c == '"')
            break;
        if (c < 0x20)
            return -1;
        if (c != '\\') {
            out[w++] = (char)c;
            continue;
        }
        if (p >= n)
            return -1;
        char e = s[p++];
        const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
        const char *hit = e != '\0' ? strchr(from, e) : NULL;
        if (hit != NULL) {
            out[w++] = to[hit - from];
            continue;
        }
        unsigned cp, lo;
        if (e != 'u' || hex4_at(s, n, p, &cp) < 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
            return -1;
        p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (p + 6 > n || s[p] != '\\' || s[p + 1] != 'u' || hex4_at(s, n, p + 2, &lo) < 0 ||
                lo < 0xDC00 || lo > 0xDFFF)
                return -1;
            p += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        utf8_put(out, &w, cp);
    }
    out[w] = '\0';
    *olen = w;
    *i = p;
    return 0;
}

/* A JSON number, true, false or null, exactly T[0..n). */
static int jlit_ok(const char *t, size_t n)
{
    if ((n == 4 && (memcmp(t, "true", 4) == 0 || memcmp(t, "null", 4) == 0)) ||
        (n == 5 && memcmp(t, "false", 5) == 0))
        return 1;
    size_t i = t[0] == '-';
    if (i >= n || t[i] < '0' || t[i] > '9')
        return 0;
    if (t[i] == '0' && i + 1 < n && t[i + 1] >= '0' && t[i + 1] <= '9')
        return 0;
    while (i < n && t[i] >= '0' && t[i] <= '9')
        i++;
    if (i < n && t[i] == '.') {
        size_t d = ++i;
        while (i < n && t[i] >= '0' && t[i] <= '9')
            i++;
        if (i == d)
            return 0;
    }
    if (i < n && (t[i] == 'e' || t[i] == 'E')) {
        i++;
        if (i < n && (t[i] == '+' || t[i] == '-'))
            i++;
        size_t d = i;
        while (i < n && t[i] >= '0' && t[i] <= '9')
            i++;
        if (i == d)
            return 0;
    }
    return i == n;
}

static void jws(const char *s, size_t n, size_t *i)
{
    while (*i < n && strchr(" \t\r\n", s[*i]) != NULL && s[*i] != '\0')
        (*i)++;
}

/* One flat object (no nesting, no duplicate keys) into V; the field count, or -1. */
static int jflat(const char *s, size_t n, struct jv *v, int max)
{
    size_t i = 0;
    int k = 0;
    jws(s, n, &i);
    if (i >= n || s[i++] != '{')
        return -1;
    jws(s, n, &i);
    if (i < n && s[i] == '}') {
        i++;
    } else {
        for (;;) {
            if (k == max || i >= n || s[i] != '"')
                return -1;
            size_t kl;
            if (jstr(s, n, &i, v[k].key, sizeof v[k].key, &kl) < 0)
                return -1;
            for (int j = 0; j < k; j++)
                if (strcmp(v[j].key, v[k].key) == 0)
                    return -1;
            jws(s, n, &i);
            if (i >= n || s[i++] != ':')
                return -1;
            jws(s, n, &i);
            if (i < n && s[i] == '"') {
                if (jstr(s, n, &i, v[k].val, sizeof v[k].val, &v[k].len) < 0)
                    return -1;
                v[k].str = 1;
            } else {
                size_t st = i;
                while (i < n && strchr(",} \t\r\n", s[i]) == NULL)
                    i++;
                if (i == st || i - st >= sizeof v[k].val || !jlit_ok(s + st, i - st))
                    return -1;
                v[k].len = i - st;
                memcpy(v[k].val, s + st, v[k].len);
                v[k].val[v[k].len] = '\0';
                v[k].str = 0;
            }
            k++;
            jws(s, n, &i);
            if (i < n && s[i] == ',') {
                i++;
                jws(s, n, &i);
                continue;
            }
            if (i < n && s[i] == '}') {
                i++;
                break;
            }
            return -1;
        }
    }
    jws(s, n, &i);
    return i == n ? k : -1;
}

/* ---- events ----------------------------------------------------------------------- */

struct ev {
    char     type[16];
    char     room[40], uid[40], nick[136], old[136], text[64];
    int      online;            /* -1: the event carries no count */
    uint64_t id, last_id;
    int      live;              /* arrived after history_end */
};

/* Fields after "type" of each event, name:s for a string, name:n for an unsigned integer. */
static const struct { const char *type, *spec; } shapes[] = {
    { "welcome", "uid:s nick:s room:s online:n last_id:n" },
    { "history_end", "" },
    { "message", "id:n ts:n room:s uid:s nick:s text:s" },
    { "join", "id:n ts:n room:s uid:s nick:s online:n" },
    { "leave", "id:n ts:n room:s uid:s nick:s online:n" },
    { "nick", "id:n ts:n room:s uid:s nick:s old:s online:n" },
    { "presence", "room:s online:n" },
    { "gap", "room:s from:n to:n" },
    { "error", "code:s reason:s" },
};

static const struct jv *jfind(const struct jv *v, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v[i].key, key) == 0)
            return &v[i];
    return NULL;
}

static void copy_field(const struct jv *v, int n, const char *key, char *out, size_t cap,
                       const char *raw)
{
    const struct jv *f = jfind(v, n, key);
    if (f == NULL)
        return;
    ck_assert_msg(f->len < cap, "%s: \"%s\" too long for this test (%zu)", raw, key, f->len);
    memcpy(out, f->val, f->len + 1);
}

/* Decode one server text frame into E, asserting the exact shape of its type. */
static void ev_parse(const uint8_t *data, size_t len, struct ev *e)
{
    char raw[160];
    snprintf(raw, sizeof raw, "event %.*s%s", (int)(len < 120 ? len : 120), (const char *)data,
             len > 120 ? "..." : "");
    ck_assert_msg(it_utf8_valid(data, len), "%s: not UTF-8", raw);
    struct jv v[JV_MAX];
    int n = jflat((const char *)data, len, v, JV_MAX);
    ck_assert_msg(n > 0, "%s: not a flat JSON object", raw);
    const struct jv *t = jfind(v, n, "type");
    ck_assert_msg(t != NULL && t->str, "%s: no string type", raw);
    const char *spec = NULL;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (strcmp(shapes[i].type, t->val) == 0)
            spec = shapes[i].spec;
    ck_assert_msg(spec != NULL, "%s: unknown type", raw);
    int want = 1;
    for (const char *p = spec; *p != '\0'; want++) {
        char key[16];
        size_t kl = strcspn(p, ":");
        ck_assert(kl < sizeof key && p[kl] == ':');
        memcpy(key, p, kl);
        key[kl] = '\0';
        int str = p[kl + 1] == 's';
        const struct jv *f = jfind(v, n, key);
        ck_assert_msg(f != NULL && f->str == str, "%s: \"%s\" missing or not a %s", raw, key,
                      str ? "string" : "number");
        if (!str)
            ck_assert_msg(f->len <= 20 && strspn(f->val, "0123456789") == f->len,
                          "%s: \"%s\" is not an unsigned integer", raw, key);
        p += kl + 2;
        p += *p == ' ';
    }
    ck_assert_msg(n == want, "%s: %d fields, want %d", raw, n, want);
    memset(e, 0, sizeof *e);
    copy_field(v, n, "type", e->type, sizeof e->type, raw);
    copy_field(v, n, "room", e->room, sizeof e->room, raw);
    copy_field(v, n, "uid", e->uid, sizeof e->uid, raw);
    copy_field(v, n, "nick", e->nick, sizeof e->nick, raw);
    copy_field(v, n, "old", e->old, sizeof e->old, raw);
    copy_field(v, n, "text", e->text, sizeof e->text, raw);
    const struct jv *f = jfind(v, n, "online");
    e->online = f ? atoi(f->val) : -1;
    if ((f = jfind(v, n, "id")) != NULL)
        e->id = strtoull(f->val, NULL, 10);
    if ((f = jfind(v, n, "last_id")) != NULL)
        e->last_id = strtoull(f->val, NULL, 10);
}

/* ---- members ---------------------------------------------------------------------- */

struct peer {
    struct client c;
    char     uid[40], nick[136];
    int      online0;           /* welcome */
    uint64_t last_id0;          /* welcome */
    int64_t  opened;            /* it_now_ms() before the connect */
    struct ev *e;
    size_t   n, cap;
    int      ended;             /* history_end seen */
    int      closed;            /* ended (either side) */
};

static void peer_free(struct peer *p)
{
    free(p->e);
    p->e = NULL;
    p->n = p->cap = 0;
    cli_close(&p->c);
    p->closed = 1;
}

/*
 * Read one frame and record it: 1 a frame was handled, 0 the connection
 * ended (close frame or EOF), -1 nothing within TIMEOUT_MS.
 */
static int peer_pump(struct peer *p, int timeout_ms)
{
    if (p->closed)
        return 0;
    struct wsc_msg m;
    int r = wsc_recv(&p->c, &m, timeout_ms);
    if (r < 0)
        return -1;
    if (r == 0 || m.opcode == WS_OP_CLOSE) {
        p->closed = 1;
        if (r > 0)
            wsc_msg_free(&m);
        return 0;
    }
    if (m.opcode == WS_OP_PING)
        wsc_send(&p->c, WS_FIN | WS_OP_PONG, m.data, m.len);
    else if (m.opcode != WS_OP_PONG) {
        ck_assert_msg(m.opcode == WS_OP_TEXT && m.fin, "chat sent opcode %d fin %d", m.opcode,
                      m.fin);
        if (p->n == p->cap) {
            p->cap = p->cap ? p->cap * 2 : 64;
            p->e = realloc(p->e, p->cap * sizeof *p->e);
            ck_assert_ptr_nonnull(p->e);
        }
        struct ev *e = &p->e[p->n];
        ev_parse(m.data, m.len, e);
        ck_assert_msg(p->n > 0 || strcmp(e->type, "welcome") == 0, "first event is %s",
                      e->type);
        e->live = p->ended;
        if (strcmp(e->type, "history_end") == 0) {
            ck_assert_msg(!p->ended, "a second history_end");
            p->ended = 1;
        }
        p->n++;
    }
    wsc_msg_free(&m);
    return 1;
}

static int peer_until(struct peer *p, int (*pred)(const struct peer *, const void *),
                      const void *arg, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    while (!pred(p, arg))
        if (peer_pump(p, left_ms(end)) <= 0 && (p->closed || it_now_ms() >= end))
            return pred(p, arg);
    return 1;
}

/*
 * Record whatever any open member of P[0..n) has, waiting up to TIMEOUT_MS
 * for something when nothing is buffered. Returns the frames handled.
 */
static int pump_all(struct peer *p, int n, int timeout_ms)
{
    struct pollfd pfd[64];
    int map[64], k = 0, got = 0;
    ck_assert_int_le(n, 64);
    for (int i = 0; i < n; i++)
        while (peer_pump(&p[i], 0) > 0)
            got++;
    if (got > 0 || timeout_ms <= 0)
        return got;
    for (int i = 0; i < n; i++)
        if (!p[i].closed) {
            pfd[k] = (struct pollfd){ .fd = p[i].c.fd, .events = POLLIN };
            map[k++] = i;
        }
    if (k > 0 && poll(pfd, (nfds_t)k, timeout_ms) > 0)
        for (int j = 0; j < k; j++)
            if (pfd[j].revents)
                while (peer_pump(&p[map[j]], 0) > 0)
                    got++;
    return got;
}

/* Record everything the members get for MS milliseconds. */
static void watch(struct peer *p, int n, int ms)
{
    int64_t end = it_now_ms() + ms;
    while (it_now_ms() < end)
        pump_all(p, n, left_ms(end) < 50 ? left_ms(end) : 50);
}

/* Until PRED holds for every open member of P[0..n); 1 if it did in time. */
static int all_until(struct peer *p, int n, int (*pred)(const struct peer *, const void *),
                     const void *arg, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        int ok = 1;
        for (int i = 0; i < n && ok; i++)
            ok = p[i].closed || pred(&p[i], arg);
        if (ok)
            return 1;
        if (it_now_ms() >= end)
            return 0;
        pump_all(p, n, left_ms(end) < 50 ? left_ms(end) : 50);
    }
}

static int p_ended(const struct peer *p, const void *a) { (void)a; return p->ended; }

/* Events of TYPE (from UID when not NULL) at index FROM or later. */
static size_t count_ev(const struct peer *p, const char *type, const char *uid, size_t from)
{
    size_t k = 0;
    for (size_t i = from; i < p->n; i++)
        k += strcmp(p->e[i].type, type) == 0 && (uid == NULL || strcmp(p->e[i].uid, uid) == 0);
    return k;
}

/* The count of P's newest presence event, or of any count-carrying one (ANY); -1 if none. */
static int last_count(const struct peer *p, int any)
{
    for (size_t i = p->n; i > 0; i--) {
        const struct ev *e = &p->e[i - 1];
        if (strcmp(e->type, "presence") == 0 || (any && e->online >= 0 && e->live))
            return e->online;
    }
    return any ? p->online0 : -1;
}

static int p_presence_is(const struct peer *p, const void *a)
{
    return last_count(p, 0) == *(const int *)a;
}

static int p_count_is(const struct peer *p, const void *a)
{
    return last_count(p, 1) == *(const int *)a;
}

struct want { const char *type, *uid; size_t from; };

static long find_ev(const struct peer *p, const struct want *w)
{
    for (size_t i = w->from; i < p->n; i++)
        if (strcmp(p->e[i].type, w->type) == 0 &&
            (w->uid == NULL || strcmp(p->e[i].uid, w->uid) == 0))
            return (long)i;
    return -1;
}

static int p_event(const struct peer *p, const void *a) { return find_ev(p, a) >= 0; }

/* Wait for an event of TYPE from UID (any when NULL) at FROM or later; its index. */
static size_t expect_ev(struct peer *p, const char *type, const char *uid, size_t from,
                        int timeout_ms)
{
    struct want w = { type, uid, from };
    ck_assert_msg(peer_until(p, p_event, &w, timeout_ms), "%s: no %s event%s%s within %d ms",
                  p->nick, type, uid ? " from " : "", uid ? uid : "", timeout_ms);
    return (size_t)find_ev(p, &w);
}

/* Connect, upgrade on PATH and read up to history_end. */
static void peer_open(struct peer *p, int port, const char *path)
{
    memset(p, 0, sizeof *p);
    p->opened = it_now_ms();
    ck_assert_msg(cli_connect(&p->c, port) == 0, "connect: %s", strerror(errno));
    int st = wsc_handshake(&p->c, path, NULL, NULL, 0);
    ck_assert_msg(st == 101, "upgrade of %s: status %d", path, st);
    ck_assert_msg(peer_until(p, p_ended, NULL, 5000), "%s: no history_end within 5 s", path);
    memcpy(p->uid, p->e[0].uid, sizeof p->uid);
    memcpy(p->nick, p->e[0].nick, sizeof p->nick);
    p->online0 = p->e[0].online;
    p->last_id0 = p->e[0].last_id;
}

/* Open N members of PATH_FMT (%d = index) one after the other; each must be told i + 1. */
static void open_n(struct peer *p, int n, int port, const char *path_fmt)
{
    for (int i = 0; i < n; i++) {
        char path[128];
        snprintf(path, sizeof path, path_fmt, i);
        peer_open(&p[i], port, path);
        ck_assert_msg(p[i].online0 == i + 1, "member %d: welcome online %d, want %d (exact at "
                      "the join)", i, p[i].online0, i + 1);
        pump_all(p, i + 1, 0);
    }
}

/* Leave the room: a close frame first when CLEAN, else just the TCP close. */
static void peer_leave(struct peer *p, int clean)
{
    if (clean)
        wsc_send_close(&p->c, 1000, "bye", 3);
    cli_close(&p->c);
    p->closed = 1;
}

static void send_obj(struct peer *p, const char *type, const char *key, const char *val)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf, "{\"type\":\"%s\",\"%s\":\"%s\"}", type, key, val);
    ck_assert_msg(wsc_send(&p->c, WS_FIN | WS_OP_TEXT, buf, (size_t)n) == 0, "send: %s",
                  strerror(errno));
}

/* Per member "nick:last presence/last count" for failure messages. */
static const char *counts_str(const struct peer *p, int n)
{
    static char buf[1024];
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && o < sizeof buf - 64; i++)
        if (!p[i].closed)
            o += (size_t)snprintf(buf + o, sizeof buf - o, " %s:%d/%d", p[i].nick,
                                  last_count(&p[i], 0), last_count(&p[i], 1));
    return buf;
}

/* ---- /stats ------------------------------------------------------------------------ */

static char *stats_get(int port)
{
    struct client c;
    ck_assert_int_eq(cli_connect(&c, port), 0);
    ck_assert_int_eq(cli_sendstr(&c, "GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
                     0);
    struct httpc_resp r;
    ck_assert_int_eq(httpc_read_head(&c, &r, 5000), 200);
    char v[32];
    ck_assert_ptr_nonnull(httpc_header(&r, "Content-Length", v, sizeof v));
    size_t want = (size_t)strtoul(v, NULL, 10);
    int64_t end = it_now_ms() + 5000;
    while (cli_pending(&c) < want && cli_fill(&c, left_ms(end)) > 0)
        ;
    ck_assert_uint_ge(cli_pending(&c), want);
    char *body = malloc(want + 1);
    memcpy(body, c.rx + c.off, want);
    body[want] = '\0';
    cli_close(&c);
    return body;
}

/* KEY's number inside the object opened by SECTION ("\"ring\":{" ...). */
static uint64_t stats_num(const char *body, const char *section, const char *key)
{
    const char *s = strstr(body, section);
    ck_assert_msg(s != NULL, "/stats has no %s", section);
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *f = strstr(s, k);
    ck_assert_msg(f != NULL, "/stats %s has no %s", section, key);
    return strtoull(f + strlen(k), NULL, 10);
}

static uint64_t ring_last_id(int port)
{
    char *b = stats_get(port);
    uint64_t id = stats_num(b, "\"ring\":{", "last_id");
    free(b);
    return id;
}

/* Workers holding a WebSocket connection; the total in *TOTAL. */
static int ws_spread(int port, uint64_t *total)
{
    char *b = stats_get(port);
    const char *stop = strstr(b, "\"total\":{");
    ck_assert_ptr_nonnull(stop);
    int busy = 0;
    *total = 0;
    for (const char *p = b; (p = strstr(p, "\"ws_current\":")) != NULL && p < stop; p++) {
        uint64_t v = strtoull(p + 13, NULL, 10);
        *total += v;
        busy += v > 0;
    }
    free(b);
    return busy;
}

static void expect_spread(int port, uint64_t members)
{
    uint64_t total;
    int busy = ws_spread(port, &total);
    ck_assert_msg(total == members, "/stats: %llu WebSocket connections, want %llu",
                  (unsigned long long)total, (unsigned long long)members);
    ck_assert_msg(busy >= 2, "all members on one worker");
}

/* ---- small and large rooms --------------------------------------------------------- */

START_TEST(small_room_individual_events)
{
    struct server s;
    srv_start(&s, "workers 2\nmax_connections 2\npresence_events_max 5\n" IVL_CONF);
    struct peer p[3];
    open_n(p, 3, s.port, "/chat/small?nick=s%d");
    expect_spread(s.port, 3);
    /* Everyone already in, the newcomer too, sees each join with the count after it. */
    for (int k = 0; k < 3; k++)
        for (int i = 0; i <= k; i++) {
            size_t at = expect_ev(&p[i], "join", p[k].uid, 0, 5000);
            ck_assert_msg(p[i].e[at].online == k + 1, "%s: join of %s with online %d, want %d",
                          p[i].nick, p[k].nick, p[i].e[at].online, k + 1);
            ck_assert_str_eq(p[i].e[at].nick, p[k].nick);
            ck_assert_str_eq(p[i].e[at].room, "small");
            ck_assert(p[i].e[at].live);
        }
    peer_leave(&p[2], 1);
    for (int i = 0; i < 2; i++) {
        size_t at = expect_ev(&p[i], "leave", p[2].uid, 0, 5000);
        ck_assert_msg(p[i].e[at].online == 2, "%s: leave with online %d, want 2", p[i].nick,
                      p[i].e[at].online);
    }
    watch(p, 3, 3 * IVL);
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(count_ev(&p[i], "presence", NULL, 0) == 0, "%s got a presence event in a "
                      "room of at most presence_events_max", p[i].nick);
        for (int k = i; k < 3; k++)
            ck_assert_uint_eq(count_ev(&p[i], "join", p[k].uid, 0), 1);
    }
    ck_assert_uint_eq(count_ev(&p[0], "leave", NULL, 0), 1);
    for (int i = 0; i < 3; i++)
        peer_free(&p[i]);
    srv_stop(&s);
}
END_TEST

#define BIG_N 8

START_TEST(large_room_coalesced_counts)
{
    struct server s;
    srv_start(&s, "workers 2\nmax_connections 6\npresence_events_max 3\n" IVL_CONF);
    static struct peer p[BIG_N];
    int64_t t0 = it_now_ms();
    open_n(p, BIG_N, s.port, "/chat/big?nick=b%d");
    int64_t t1 = it_now_ms();

    /* Once the joins stop, every member's last presence event is exact within 2 intervals. */
    int want = BIG_N;
    ck_assert_msg(all_until(p, BIG_N, p_presence_is, &want, left_ms(t1 + 2 * IVL)),
                  "%d ms after the last join the last presence counts (presence/any) are%s; "
                  "want %d", 2 * IVL, counts_str(p, BIG_N), want);
    /* Nothing changes: no more presence events. */
    size_t mark[BIG_N];
    for (int i = 0; i < BIG_N; i++)
        mark[i] = p[i].n;
    watch(p, BIG_N, 3 * IVL);
    for (int i = 0; i < BIG_N; i++)
        ck_assert_msg(count_ev(&p[i], "presence", NULL, mark[i]) == 0, "%s: presence event "
                      "with an unchanged count", p[i].nick);
    expect_spread(s.port, BIG_N);

    for (int i = 0; i < BIG_N; i++) {
        /* Joins 1..3 were individual (the room's size after each was <= 3), 4..8 not. */
        for (int k = 0; k < BIG_N; k++) {
            size_t j = count_ev(&p[i], "join", p[k].uid, 0);
            if (k >= 3 || k < i)
                ck_assert_msg(j == 0, "%s got the join of %s (room of %d > 3)", p[i].nick,
                              p[k].nick, k + 1);
            else
                ck_assert_msg(j == 1, "%s got %zu join events of %s (room of %d)", p[i].nick,
                              j, p[k].nick, k + 1);
        }
        /* At most one presence event per interval (and two at the edges). */
        size_t np = count_ev(&p[i], "presence", NULL, 0);
        int64_t bound = (t1 - p[i].opened) / IVL + 2;
        ck_assert_msg((int64_t)np <= bound, "%s: %zu presence events over %lld ms of joins "
                      "(at most %lld)", p[i].nick, np, (long long)(t1 - p[i].opened),
                      (long long)bound);
        for (size_t k = 0; k < p[i].n; k++)
            if (strcmp(p[i].e[k].type, "presence") == 0) {
                ck_assert_str_eq(p[i].e[k].room, "big");
                ck_assert(p[i].e[k].live);
                ck_assert_int_gt(p[i].e[k].online, 3);
                ck_assert_int_le(p[i].e[k].online, BIG_N);
            }
    }
    ck_assert_msg(t1 - t0 < 5000, "joins took %lld ms", (long long)(t1 - t0));

    /* Three leave from 8: the size before each is over 3, so no leave events. */
    for (int k = BIG_N - 1; k >= BIG_N - 3; k--)
        peer_leave(&p[k], k % 2);
    int64_t t2 = it_now_ms();
    want = BIG_N - 3;
    ck_assert_msg(all_until(p, BIG_N, p_presence_is, &want, left_ms(t2 + 2 * IVL)),
                  "%d ms after the leaves the last presence counts are%s; want %d", 2 * IVL,
                  counts_str(p, BIG_N), want);
    watch(p, BIG_N, IVL);
    for (int i = 0; i < BIG_N - 3; i++)
        ck_assert_msg(count_ev(&p[i], "leave", NULL, 0) == 0, "%s got a leave event from a "
                      "room over presence_events_max", p[i].nick);

    /* Presence frames are not history: a newcomer gets welcome, history_end. */
    struct peer late;
    peer_open(&late, s.port, "/chat/big?nick=late");
    ck_assert_int_eq(late.online0, BIG_N - 2);
    ck_assert_str_eq(late.e[1].type, "history_end");
    peer_free(&late);
    for (int i = 0; i < BIG_N; i++)
        peer_free(&p[i]);
    srv_stop(&s);
}
END_TEST

/*
 * 5 -> 4 -> 3 with presence_events_max 3. The leave from 4 is decided on
 * the size before it (4 > 3): no leave event. The count members are left
 * with must still reach the exact 3.
 */
START_TEST(shrink_across_threshold_count_exact)
{
    struct server s;
    srv_start(&s, "workers 2\nmax_connections 3\npresence_events_max 3\n" IVL_CONF);
    struct peer p[5];
    open_n(p, 5, s.port, "/chat/shrink?nick=r%d");
    int want = 5;
    ck_assert_msg(all_until(p, 5, p_presence_is, &want, 2 * IVL + 2000), "counts%s, want 5",
                  counts_str(p, 5));
    peer_leave(&p[4], 1);
    want = 4;
    ck_assert_msg(all_until(p, 5, p_presence_is, &want, 2 * IVL + 2000), "counts%s, want 4",
                  counts_str(p, 5));
    size_t mark[3];
    for (int i = 0; i < 3; i++)
        mark[i] = p[i].n;
    peer_leave(&p[3], 0);
    int64_t t = it_now_ms();
    want = 3;
    int ok = all_until(p, 3, p_count_is, &want, left_ms(t + 2 * IVL));
    watch(p, 3, IVL);
    ck_assert_msg(ok, "room shrank 4 -> 3 (presence_events_max 3): %d ms later the members' "
                  "last counts (presence/any event) are%s, want 3; events since:%s%s",
                  2 * IVL, counts_str(p, 3),
                  count_ev(&p[0], "leave", NULL, mark[0]) ? " leave" : " no leave",
                  count_ev(&p[0], "presence", NULL, mark[0]) ? ", presence" : ", no presence");
    for (int i = 0; i < 3; i++)
        ck_assert_msg(count_ev(&p[i], "leave", p[3].uid, mark[i]) == 0, "%s: leave event for a "
                      "leave from a room of 4 > presence_events_max 3", p[i].nick);
    for (int i = 0; i < 5; i++)
        peer_free(&p[i]);
    srv_stop(&s);
}
END_TEST

/* Back at or below the threshold, join/leave events are individual again. */
START_TEST(small_again_individual_events)
{
    struct server s;
    srv_start(&s, "workers 2\nmax_connections 3\npresence_events_max 3\n" IVL_CONF);
    struct peer p[5];
    open_n(p, 4, s.port, "/chat/again?nick=g%d");
    int want = 4;
    ck_assert_msg(all_until(p, 4, p_presence_is, &want, 2 * IVL + 2000), "counts%s, want 4",
                  counts_str(p, 4));
    for (int i = 0; i < 4; i++)
        ck_assert_uint_eq(count_ev(&p[i], "join", p[3].uid, 0), 0);
    peer_leave(&p[3], 1);       /* from 4: no event */
    watch(p, 4, 3 * IVL);
    size_t mark[2] = { p[0].n, p[1].n };
    peer_leave(&p[2], 0);       /* from 3: a leave event with the count after it */
    for (int i = 0; i < 2; i++) {
        size_t at = expect_ev(&p[i], "leave", p[2].uid, mark[i], 5000);
        ck_assert_msg(p[i].e[at].online == 2, "%s: leave with online %d, want 2", p[i].nick,
                      p[i].e[at].online);
        ck_assert_uint_eq(count_ev(&p[i], "leave", p[3].uid, 0), 0);
    }
    peer_open(&p[4], s.port, "/chat/again?nick=g4");
    ck_assert_int_eq(p[4].online0, 3);
    struct peer *now[] = { &p[0], &p[1], &p[4] };
    for (int i = 0; i < 3; i++) {
        size_t at = expect_ev(now[i], "join", p[4].uid, 0, 5000);
        ck_assert_msg(now[i]->e[at].online == 3, "%s: join with online %d, want 3",
                      now[i]->nick, now[i]->e[at].online);
    }
    for (int i = 0; i < 5; i++)
        peer_free(&p[i]);
    srv_stop(&s);
}
END_TEST

START_TEST(nick_events_individual_in_large_room)
{
    struct server s;
    srv_start(&s, "workers 2\nmax_connections 3\npresence_events_max 2\n" IVL_CONF);
    struct peer p[5];
    open_n(p, 5, s.port, "/chat/nicks?nick=n%d");
    expect_spread(s.port, 5);
    send_obj(&p[2], "nick", "nick", "renamed-2");
    send_obj(&p[4], "nick", "nick", "renamed-4");
    for (int i = 0; i < 5; i++) {
        size_t at = expect_ev(&p[i], "nick", p[2].uid, 0, 5000);
        const struct ev *e = &p[i].e[at];
        ck_assert_str_eq(e->nick, "renamed-2");
        ck_assert_str_eq(e->old, "n2");
        ck_assert_str_eq(e->room, "nicks");
        ck_assert_int_eq(e->online, 5);
        at = expect_ev(&p[i], "nick", p[4].uid, 0, 5000);
        ck_assert_str_eq(p[i].e[at].nick, "renamed-4");
        ck_assert_str_eq(p[i].e[at].old, "n4");
        for (int k = 2; k < 5; k++)
            ck_assert_uint_eq(count_ev(&p[i], "join", p[k].uid, 0), 0);
    }
    for (int i = 0; i < 5; i++)
        peer_free(&p[i]);
    srv_stop(&s);
}
END_TEST

START_TEST(events_max_zero_counts_only)
{
    struct server s;
    srv_start(&s, "workers 2\nmax_connections 2\npresence_events_max 0\n" IVL_CONF);
    struct peer p[3], solo;
    open_n(p, 3, s.port, "/chat/zero?nick=z%d");
    expect_spread(s.port, 3);
    int want = 3;
    ck_assert_msg(all_until(p, 3, p_presence_is, &want, 2 * IVL), "counts%s, want 3",
                  counts_str(p, 3));
    peer_leave(&p[2], 1);
    want = 2;
    ck_assert_msg(all_until(p, 3, p_presence_is, &want, 2 * IVL), "counts%s, want 2",
                  counts_str(p, 3));
    /* Alone in a room is over 0 too. */
    peer_open(&solo, s.port, "/chat/solo?nick=solo");
    want = 1;
    ck_assert_msg(all_until(&solo, 1, p_presence_is, &want, 2 * IVL), "solo member: last "
                  "presence %d, want 1", last_count(&solo, 0));
    watch(p, 3, IVL);
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(count_ev(&p[i], "join", NULL, 0) == 0, "%s got a join event with "
                      "presence_events_max 0", p[i].nick);
        ck_assert_msg(count_ev(&p[i], "leave", NULL, 0) == 0, "%s got a leave event with "
                      "presence_events_max 0", p[i].nick);
    }
    ck_assert_uint_eq(count_ev(&solo, "join", NULL, 0), 0);
    peer_free(&solo);
    for (int i = 0; i < 3; i++)
        peer_free(&p[i]);
    srv_stop(&s);
}
END_TEST

START_TEST(welcome_online_exact)
{
    struct server s;
    srv_start(&s, "workers 2\nmax_connections 3\npresence_events_max 2\n" IVL_CONF);
    struct peer p[6];
    open_n(p, 5, s.port, "/chat/wel?nick=w%d");     /* asserts online0 = 1..5 */
    expect_spread(s.port, 5);
    /* A leave, seen by everyone as a count of 4, then a newcomer is told 5. */
    peer_leave(&p[0], 1);
    int want = 4;
    ck_assert_msg(all_until(p, 5, p_presence_is, &want, 2 * IVL + 2000), "counts%s, want 4",
                  counts_str(p, 5));
    peer_open(&p[5], s.port, "/chat/wel?nick=w5");
    ck_assert_msg(p[5].online0 == 5, "welcome online %d after 5 joins and 1 leave, want 5",
                  p[5].online0);
    for (int i = 0; i < 6; i++)
        peer_free(&p[i]);
    srv_stop(&s);
}
END_TEST

/* ---- history and the ring ---------------------------------------------------------- */

#define CHURN 3000

START_TEST(history_survives_churn)
{
    struct server s;
    srv_start(&s, "workers 2\nhistory_size 20\nring_size 1m\nrate_limit 0\n"
                  "presence_events_max 0\n" IVL_CONF);
    struct peer a, q;
    peer_open(&a, s.port, "/chat/A?nick=a");
    char t[32];
    for (int i = 0; i < 20; i++) {
        snprintf(t, sizeof t, "h%02d", i);
        send_obj(&a, "message", "text", t);
    }
    int64_t end = it_now_ms() + 5000;
    while (count_ev(&a, "message", NULL, 0) < 20 && peer_pump(&a, left_ms(end)) > 0)
        ;
    ck_assert_uint_eq(count_ev(&a, "message", NULL, 0), 20);
    uint64_t last = 0;
    for (size_t i = 0; i < a.n; i++)
        if (strcmp(a.e[i].type, "message") == 0)
            last = a.e[i].id;
    uint64_t before = ring_last_id(s.port);
    ck_assert_msg(before == last, "ring last_id %llu, newest message %llu",
                  (unsigned long long)before, (unsigned long long)last);

    int64_t t0 = it_now_ms();
    for (int k = 0; k < CHURN; k++) {
        peer_open(&q, s.port, k % 2 ? "/chat/A?nick=churn" : "/chat/A");
        ck_assert_uint_eq(count_ev(&q, "message", NULL, 0), 20);
        if (k % 3 == 0)
            wsc_send_close(&q.c, 1000, NULL, 0);
        peer_free(&q);
        if (k % 64 == 0)
            while (peer_pump(&a, 0) > 0)
                ;
        ck_assert_msg(it_now_ms() - t0 < 20000, "%d cycles in 20 s", k);
    }
    uint64_t after = ring_last_id(s.port);
    ck_assert_msg(after == before, "%d join/leave cycles with presence_events_max 0 wrote %llu "
                  "ring entries", CHURN, (unsigned long long)(after - before));

    struct peer n;
    peer_open(&n, s.port, "/chat/A?nick=n");
    ck_assert_uint_eq(n.last_id0, last);
    size_t k = 0;
    for (size_t i = 1; i < n.n && strcmp(n.e[i].type, "history_end") != 0; i++) {
        ck_assert_str_eq(n.e[i].type, "message");
        snprintf(t, sizeof t, "h%02zu", k++);
        ck_assert_str_eq(n.e[i].text, t);
    }
    ck_assert_uint_eq(k, 20);
    peer_free(&n);
    peer_free(&a);
    srv_stop(&s);
}
END_TEST

/*
 * With the default presence_events_max (100) a small room gets every join
 * and leave, numbered in the one sequence of ids, but none of them goes
 * into the message ring: they cannot push history out.
 */
START_TEST(small_room_presence_off_the_ring)
{
    struct server s;
    srv_start(&s, "workers 2\nmax_connections 2\nrate_limit 0");
    struct peer a, q;
    peer_open(&a, s.port, "/chat/R?nick=a");
    expect_ev(&a, "join", a.uid, 0, 5000);
    uint64_t before = ring_last_id(s.port), prev_id = 0;
    for (int k = 0; k < 10; k++) {
        peer_open(&q, s.port, "/chat/R?nick=q");
        char uid[40];
        memcpy(uid, q.uid, sizeof uid);
        size_t at = expect_ev(&a, "join", uid, 0, 5000);
        ck_assert_int_eq(a.e[at].online, 2);
        ck_assert_uint_gt(a.e[at].id, prev_id);
        prev_id = a.e[at].id;
        peer_leave(&q, k % 2);
        peer_free(&q);
        at = expect_ev(&a, "leave", uid, at, 5000);
        ck_assert_int_eq(a.e[at].online, 1);
        ck_assert_uint_gt(a.e[at].id, prev_id);
        prev_id = a.e[at].id;
    }
    ck_assert_msg(ring_last_id(s.port) == before, "10 joins and leaves wrote %llu message ring "
                  "entries, want none", (unsigned long long)(ring_last_id(s.port) - before));
    /* A message after them comes later in the one order of ids. */
    send_obj(&a, "message", "text", "after");
    int64_t end = it_now_ms() + 5000;
    long m = -1;
    while (m < 0 && peer_pump(&a, left_ms(end)) > 0)
        for (size_t i = 0; i < a.n; i++)
            if (strcmp(a.e[i].type, "message") == 0)
                m = (long)i;
    ck_assert_int_ge(m, 0);
    ck_assert_uint_gt(a.e[m].id, prev_id);
    peer_free(&a);
    srv_stop(&s);
}
END_TEST

#define CYCLES 100000
#define BATCH  50      /* the room stays under presence_events_max: every join and leave is an event */

/*
 * 100,000 members join a small room and leave again (a join event and a
 * leave event each, with the default presence_events_max), BATCH at a
 * time over raw sockets: the message ring gets not one entry and the
 * room's history is replayed whole afterwards.
 */
START_TEST(history_intact_after_100k_cycles)
{
    struct server s;
    srv_start(&s, "workers 2\nmax_connections 1000\nhistory_size 20\nring_size 1m\n"
                  "rate_limit 0\nmax_connections_per_ip 0\n" IVL_CONF);
    struct peer a;
    peer_open(&a, s.port, "/chat/C?nick=a");
    char t[32];
    for (int i = 0; i < 20; i++) {
        snprintf(t, sizeof t, "c%02d", i);
        send_obj(&a, "message", "text", t);
    }
    int64_t end = it_now_ms() + 5000;
    while (count_ev(&a, "message", NULL, 0) < 20 && peer_pump(&a, left_ms(end)) > 0)
        ;
    ck_assert_uint_eq(count_ev(&a, "message", NULL, 0), 20);
    uint64_t before = ring_last_id(s.port);

    static const char req[] = "GET /chat/C HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n";
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)s.port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int64_t t0 = it_now_ms();
    for (int done = 0; done < CYCLES; done += BATCH) {
        int fds[BATCH];
        for (int i = 0; i < BATCH; i++) {
            fds[i] = socket(AF_INET, SOCK_STREAM, 0);
            ck_assert_int_ge(fds[i], 0);
            ck_assert_int_eq(connect(fds[i], (struct sockaddr *)&sa, sizeof sa), 0);
            ck_assert_int_eq(write(fds[i], req, sizeof req - 1), (ssize_t)(sizeof req - 1));
        }
        /* Each is a member once its 101 and welcome arrive; then it leaves. */
        for (int i = 0; i < BATCH; i++) {
            char buf[4096];
            size_t got = 0;
            while (got < sizeof buf - 1) {
                struct pollfd p = { .fd = fds[i], .events = POLLIN };
                ck_assert_msg(poll(&p, 1, 5000) == 1, "cycle %d: no answer after %zu bytes",
                              done + i, got);
                ssize_t n = read(fds[i], buf + got, sizeof buf - 1 - got);
                ck_assert_msg(n > 0, "cycle %d: closed", done + i);
                got += (size_t)n;
                /* memmem: a frame's extended length can hold a zero byte. */
                if (memmem(buf, got, "history_end", 11) != NULL)
                    break;
            }
            ck_assert_msg(strncmp(buf, "HTTP/1.1 101", 12) == 0, "cycle %d: %.40s", done + i, buf);
            close(fds[i]);
        }
        if (done % 5000 == 0)
            while (peer_pump(&a, 0) > 0)
                ;
    }
    int64_t took = it_now_ms() - t0;
    fprintf(stderr, "presence: %d join/leave cycles in %lld ms\n", CYCLES, (long long)took);
    ck_assert_msg(ring_last_id(s.port) == before, "%d join/leave cycles wrote %llu message ring "
                  "entries", CYCLES, (unsigned long long)(ring_last_id(s.port) - before));
    struct peer n;
    peer_open(&n, s.port, "/chat/C?nick=n");
    size_t k = 0;
    for (size_t i = 1; i < n.n && strcmp(n.e[i].type, "history_end") != 0; i++) {
        ck_assert_str_eq(n.e[i].type, "message");
        snprintf(t, sizeof t, "c%02zu", k++);
        ck_assert_str_eq(n.e[i].text, t);
    }
    ck_assert_uint_eq(k, 20);
    peer_free(&n);
    peer_free(&a);
    srv_stop(&s);
}
END_TEST

/* ---- max_connections_per_ip --------------------------------------------------------- */

/*
 * Connect and upgrade on /echo; a 503 is retried (a connection of the
 * harness's start-up probe may still be counted) until TIMEOUT_MS. The
 * last status; C is open only on 101.
 */
static int echo_open(struct client *c, int port, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        ck_assert_msg(cli_connect(c, port) == 0, "connect: %s", strerror(errno));
        int st = wsc_handshake(c, "/echo", NULL, NULL, 0);
        if (st == 101)
            return st;
        cli_close(c);
        if (st != 503 || it_now_ms() >= end)
            return st;
        it_sleep_ms(20);
    }
}

/* A connection that sends nothing is answered 503 with Retry-After, then closed. */
static void expect_refused(int port, const char *why)
{
    struct client c;
    struct httpc_resp r;
    ck_assert_int_eq(cli_connect(&c, port), 0);
    int st = httpc_read_head(&c, &r, 3000);
    ck_assert_msg(st == 503, "%s: a connection over the limit got status %d before sending "
                  "(-2: nothing in 3 s, it was let in), want 503", why, st);
    char v[32];
    ck_assert_msg(httpc_header(&r, "Retry-After", v, sizeof v) != NULL, "503 without Retry-After");
    ck_assert_msg(v[0] != '\0' && strspn(v, "0123456789") == strlen(v) && atoi(v) > 0,
                  "Retry-After: %s", v);
    ck_assert_msg(cli_expect_closed(&c, 3000), "%s: the refused connection stays open", why);
    cli_close(&c);
}

START_TEST(per_ip_limit_refuses_with_503)
{
    struct server s;
    srv_start(&s, "workers 2\nmax_connections 3\nmax_connections_per_ip 5");
    struct client c[5], x;
    /* max_connections 3: the five hold both workers. */
    for (int i = 0; i < 5; i++) {
        int st = echo_open(&c[i], s.port, 2000);
        ck_assert_msg(st == 101, "connection %d of 5: status %d", i + 1, st);
    }
    expect_refused(s.port, "6th");
    /* With its request sent: an upgrade and plain HTTP alike. */
    ck_assert_int_eq(cli_connect(&x, s.port), 0);
    int st = wsc_handshake(&x, "/echo", NULL, NULL, 0);
    ck_assert_msg(st == 503, "upgrade over the limit: status %d, want 503", st);
    ck_assert(cli_expect_closed(&x, 3000));
    cli_close(&x);
    struct httpc_resp r;
    st = httpc_get_status(s.port, "GET /stats HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    ck_assert_msg(st == 503, "GET over the limit: status %d, want 503", st);
    for (int i = 0; i < 5; i++)
        wsc_echo_check(&c[i], WS_OP_TEXT, "still here", 10);

    /* A closed connection gives its count back. */
    cli_close(&c[4]);
    st = echo_open(&c[4], s.port, 2000);
    ck_assert_msg(st == 101, "after a close: status %d within 2 s, want 101", st);
    wsc_echo_check(&c[4], WS_OP_TEXT, "back", 4);
    expect_refused(s.port, "6th after the reopen");
    for (int i = 0; i < 5; i++)
        cli_close(&c[i]);
    srv_stop(&s);
}
END_TEST

#define NOLIMIT_N 300

START_TEST(per_ip_zero_is_off)
{
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < NOLIMIT_N + 64 && rl.rlim_max >= NOLIMIT_N + 64) {
        rl.rlim_cur = NOLIMIT_N + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    ck_assert_msg(rl.rlim_cur >= NOLIMIT_N + 64, "RLIMIT_NOFILE %llu too low",
                  (unsigned long long)rl.rlim_cur);
    struct server s;
    /* More than the default limit of 256, so an ignored 0 would fail too. */
    srv_start(&s, "workers 2\nmax_connections_per_ip 0");
    static struct client c[NOLIMIT_N];
    for (int i = 0; i < NOLIMIT_N; i++) {
        ck_assert_int_eq(cli_connect(&c[i], s.port), 0);
        int st = wsc_handshake(&c[i], "/echo", NULL, NULL, 0);
        ck_assert_msg(st == 101, "connection %d with max_connections_per_ip 0: status %d",
                      i + 1, st);
    }
    for (int i = 0; i < NOLIMIT_N; i += 37)
        wsc_echo_check(&c[i], WS_OP_TEXT, "ok", 2);
    for (int i = 0; i < NOLIMIT_N; i++)
        cli_close(&c[i]);
    srv_stop(&s);
}
END_TEST

/*
 * The worker (of WK[0..n)) holding the server end of C: the socket whose
 * /proc/net/tcp entry is 127.0.0.1:PORT <- C's local port, found among
 * each worker's fds. -1 if none.
 */
static pid_t conn_owner(const struct client *c, int port, const pid_t *wk, int n)
{
    struct sockaddr_in me;
    socklen_t ml = sizeof me;
    ck_assert_int_eq(getsockname(c->fd, (struct sockaddr *)&me, &ml), 0);
    FILE *f = fopen("/proc/net/tcp", "r");
    ck_assert_ptr_nonnull(f);
    char line[512], want[64];
    unsigned long inode = 0;
    snprintf(want, sizeof want, "0100007F:%04X 0100007F:%04X", (unsigned)port,
             (unsigned)ntohs(me.sin_port));
    while (inode == 0 && fgets(line, sizeof line, f) != NULL) {
        char *at = strstr(line, want);
        if (at != NULL && sscanf(at + strlen(want), " %*x %*s %*s %*s %*u %*u %lu", &inode) != 1)
            inode = 0;
    }
    fclose(f);
    ck_assert_msg(inode != 0, "no server socket for local port %u", (unsigned)ntohs(me.sin_port));
    char link[64], path[64], got[64];
    snprintf(link, sizeof link, "socket:[%lu]", inode);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "/proc/%d/fd", (int)wk[i]);
        DIR *d = opendir(path);
        ck_assert_msg(d != NULL, "opendir %s: %s", path, strerror(errno));
        struct dirent *de;
        int hit = 0;
        while (!hit && (de = readdir(d)) != NULL) {
            char fd[sizeof path + 300];
            snprintf(fd, sizeof fd, "%s/%s", path, de->d_name);
            ssize_t k = readlink(fd, got, sizeof got - 1);
            hit = k > 0 && (size_t)k == strlen(link) && memcmp(got, link, (size_t)k) == 0;
        }
        closedir(d);
        if (hit)
            return wk[i];
    }
    return -1;
}

/*
 * A SIGKILLed worker never gives its counts back: the master starts the
 * table over and the live workers count theirs in again on their timer
 * tick. max_connections 3 splits the five connections 3 + 2; the worker
 * holding two is killed, so the survivor, full, accepts nothing and only
 * its tick can count its three in again. After that the limit holds over
 * exactly what is still open: never stricter, and not looser for long.
 */
START_TEST(per_ip_recount_after_worker_death)
{
    enum { LIMIT = 5 };
    struct server s;
    srv_start(&s, "workers 2\nmax_connections 3\nmax_connections_per_ip 5");
    snprintf(s.alert_ok, sizeof s.alert_ok, "killed by signal");
    struct client c[LIMIT + 1];
    for (int i = 0; i < LIMIT; i++) {
        int st = echo_open(&c[i], s.port, 2000);
        ck_assert_msg(st == 101, "connection %d of %d: status %d", i + 1, LIMIT, st);
    }
    expect_refused(s.port, "6th");

    pid_t wk[SRV_MAX_WORKERS], owner[LIMIT];
    ck_assert_int_eq(srv_workers(&s, wk, SRV_MAX_WORKERS), 2);
    int on0 = 0;
    for (int i = 0; i < LIMIT; i++) {
        owner[i] = conn_owner(&c[i], s.port, wk, 2);
        ck_assert_msg(owner[i] == wk[0] || owner[i] == wk[1], "connection %d: no worker holds it",
                      i);
        on0 += owner[i] == wk[0];
    }
    ck_assert_msg(on0 == 2 || on0 == 3, "split %d + %d with max_connections 3", on0, LIMIT - on0);
    pid_t victim = on0 == 2 ? wk[0] : wk[1];
    ck_assert_int_eq(kill(victim, SIGKILL), 0);
    ck_assert(WAIT_FOR(!it_proc_alive(victim), 5000));
    ck_assert_msg(srv_wait_worker_count(&s, 2, 5000), "the killed worker was not replaced");

    /* Exactly the victim's two connections ended. */
    int alive = 0;
    for (int i = 0; i < LIMIT; i++) {
        ssize_t r = cli_fill(&c[i], owner[i] == victim ? 2000 : 100);
        ck_assert_msg(r <= 0, "connection %d got unexpected bytes", i);
        ck_assert_msg((r == 0) == (owner[i] == victim), "connection %d (on %s worker) %s", i,
                      owner[i] == victim ? "the killed" : "the surviving",
                      r == 0 ? "ended" : "is still open");
        alive += r < 0;
        if (r == 0)
            cli_close(&c[i]);
    }
    ck_assert_int_eq(alive, 3);
    it_sleep_ms(1500);      /* the survivor recounts on its timer tick */

    for (int i = 0; i < LIMIT; i++)
        if (owner[i] == victim) {
            ck_assert_int_eq(cli_connect(&c[i], s.port), 0);
            int st = wsc_handshake(&c[i], "/echo", NULL, NULL, 0);
            ck_assert_msg(st == 101, "with %d open after the kill, a new connection got %d "
                          "(limit %d)", alive, st, LIMIT);
            alive++;
        }
    expect_refused(s.port, "6th after the kill (the survivor's 3 recounted)");
    for (int i = 0; i < LIMIT; i++)
        wsc_echo_check(&c[i], WS_OP_TEXT, "alive", 5);
    for (int i = 0; i < LIMIT; i++)
        cli_close(&c[i]);
    srv_stop(&s);
}
END_TEST

Suite *presence_suite(void)
{
    Suite *s = suite_create("presence");
    TCase *tc = tcase_create("rooms");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, small_room_individual_events);
    tcase_add_test(tc, large_room_coalesced_counts);
    tcase_add_test(tc, shrink_across_threshold_count_exact);
    tcase_add_test(tc, small_again_individual_events);
    tcase_add_test(tc, nick_events_individual_in_large_room);
    tcase_add_test(tc, events_max_zero_counts_only);
    tcase_add_test(tc, welcome_online_exact);
    suite_add_tcase(s, tc);

    tc = tcase_create("ring");
    tcase_set_timeout(tc, 150);
    tcase_add_test(tc, history_survives_churn);
    tcase_add_test(tc, small_room_presence_off_the_ring);
    tcase_add_test(tc, history_intact_after_100k_cycles);
    suite_add_tcase(s, tc);

    tc = tcase_create("per_ip");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, per_ip_limit_refuses_with_503);
    tcase_add_test(tc, per_ip_zero_is_off);
    tcase_add_test(tc, per_ip_recount_after_worker_death);
    suite_add_tcase(s, tc);
    return s;
}
