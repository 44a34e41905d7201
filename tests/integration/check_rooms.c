/*
 * rooms: the shared room table of max_rooms entries, seen from outside.
 * 15,000 one-member rooms live at once, isolated from each other; a full
 * table upgrades a join of a new room and closes it with 1013 "too many
 * rooms", and an empty room's entry is reclaimed for a new name; history
 * of a room whose entry was reclaimed is still replayed exactly (plain
 * join and since=); counts and entries come right again after a worker
 * is killed; max_rooms is checked by -t and only warned about on SIGHUP.
 * Two tests hold the table's promise through a reload and through the
 * count reset after a crash: a live room's entry must never go to a new
 * name (reload_keeps_live_rooms, crash_keeps_live_rooms).
 *
 * Every server frame is read as a strict flat JSON object by the small
 * extractor below. Every wait has a deadline; only 127.0.0.1 is used.
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

#define KILL_OK "killed by signal"

static int until(int64_t end)
{
    int64_t r = end - it_now_ms();
    return r < 0 ? 0 : (int)r;
}

/* ---- events: a strict flat JSON object, only the fields these tests use ---- */

struct ev {
    char     type[16], room[40], uid[40], text[64], reason[64];
    int      online;                /* -1: absent */
    uint64_t id, last_id, from, to;
};

/* String at **P (just past its opening quote) into OUT; 0, or -1 if bad. */
static int jstring(const char **p, const char *end, char *out, size_t cap)
{
    size_t w = 0;
    const char *s = *p;
    while (s < end && *s != '"') {
        unsigned c = (unsigned char)*s++;
        if (c < 0x20)
            return -1;
        if (c == '\\') {
            if (s >= end)
                return -1;
            char e = *s++;
            const char *esc = strchr("\"\\/bfnrt", e);
            if (e == 'u') {
                unsigned v = 0;
                for (int k = 0; k < 4; k++, s++) {
                    if (s >= end || !strchr("0123456789abcdefABCDEF", *s) || *s == '\0')
                        return -1;
                    v = v << 4 | (unsigned)(*s <= '9' ? *s - '0' : (*s | 0x20) - 'a' + 10);
                }
                if (v >= 0xD800 && v <= 0xDFFF)
                    return -1;              /* no test text needs a surrogate */
                c = v < 0x80 ? v : '?';     /* the fields compared here are ASCII */
            } else if (e != '\0' && esc != NULL) {
                c = (unsigned char)"\"\\/\b\f\n\r\t"[esc - "\"\\/bfnrt"];
            } else {
                return -1;
            }
        }
        if (w + 1 >= cap)
            return -1;
        out[w++] = (char)c;
    }
    if (s >= end)
        return -1;
    out[w] = '\0';
    *p = s + 1;
    return 0;
}

/* Unsigned integer at **P (or true/false/null, value 0); 0, or -1 if bad. */
static int jscalar(const char **p, const char *end, uint64_t *v, int *num)
{
    const char *s = *p;
    static const char *const lit[] = { "true", "false", "null" };
    for (int k = 0; k < 3; k++) {
        size_t l = strlen(lit[k]);
        if ((size_t)(end - s) >= l && memcmp(s, lit[k], l) == 0) {
            *p = s + l, *v = 0, *num = 0;
            return 0;
        }
    }
    if (s >= end || *s < '0' || *s > '9' || (*s == '0' && s + 1 < end && s[1] >= '0' && s[1] <= '9'))
        return -1;
    uint64_t x = 0;
    int digits = 0;
    while (s < end && *s >= '0' && *s <= '9' && digits++ < 19)
        x = x * 10 + (uint64_t)(*s++ - '0');
    if (s < end && strchr(".eE0123456789", *s) && *s != '\0')
        return -1;                          /* every number of the protocol is an id or count */
    *p = s, *v = x, *num = 1;
    return 0;
}

static void skip_ws(const char **p, const char *end)
{
    while (*p < end && (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r'))
        (*p)++;
}

/*
 * Parse TEXT[0..n) as one flat object into E (keys unique, values strings or
 * unsigned integers or literals, nothing after the closing brace); 0, or -1.
 */
static int ev_parse(const char *text, size_t n, struct ev *e)
{
    static const char *const strs[] = { "type", "room", "uid", "text", "reason" };
    static const char *const nums[] = { "online", "id", "last_id", "from", "to" };
    const char *p = text, *end = text + n;
    char keys[16][24];
    int nk = 0;
    memset(e, 0, sizeof *e);
    e->online = -1;
    skip_ws(&p, end);
    if (p >= end || *p++ != '{')
        return -1;
    skip_ws(&p, end);
    if (p < end && *p == '}')
        p++;
    else
        for (;;) {
            if (nk == 16 || p >= end || *p++ != '"' || jstring(&p, end, keys[nk], sizeof keys[nk]))
                return -1;
            for (int k = 0; k < nk; k++)
                if (strcmp(keys[k], keys[nk]) == 0)
                    return -1;
            const char *key = keys[nk++];
            skip_ws(&p, end);
            if (p >= end || *p++ != ':')
                return -1;
            skip_ws(&p, end);
            char sval[136];
            uint64_t v = 0;
            int is_str = p < end && *p == '"', num = 0;
            if (is_str ? (p++, jstring(&p, end, sval, sizeof sval)) : jscalar(&p, end, &v, &num))
                return -1;
            char *dst[] = { e->type, e->room, e->uid, e->text, e->reason };
            size_t dcap[] = { sizeof e->type, sizeof e->room, sizeof e->uid, sizeof e->text,
                              sizeof e->reason };
            uint64_t *ndst[] = { NULL, &e->id, &e->last_id, &e->from, &e->to };
            for (int k = 0; k < 5; k++) {
                if (strcmp(key, strs[k]) == 0) {
                    if (!is_str || strlen(sval) >= dcap[k])
                        return -1;
                    strcpy(dst[k], sval);
                }
                if (strcmp(key, nums[k]) == 0) {
                    if (!num)
                        return -1;
                    if (k == 0)
                        e->online = v > 100000000 ? -2 : (int)v;
                    else
                        *ndst[k] = v;
                }
            }
            skip_ws(&p, end);
            if (p < end && *p == ',') {
                p++;
                skip_ws(&p, end);
                continue;
            }
            if (p < end && *p == '}') {
                p++;
                break;
            }
            return -1;
        }
    skip_ws(&p, end);
    return p == end && e->type[0] != '\0' ? 0 : -1;
}

/* ---- members ---------------------------------------------------------------- */

#define HIST_MAX 16

struct mem {
    struct client c;
    struct ev w;                    /* the welcome */
    int      welcomed, ended;       /* welcome / history_end seen */
    int      closed, code;          /* ended; the close code (-1: no close frame) */
    char     reason[64];
    int      nh, gaps;              /* history messages and gap events before history_end */
    uint64_t hid[HIST_MAX];
    char     htext[HIST_MAX][24];
};

/* Give back the input buffer of an idle client (15,000 of 64 KiB would add up). */
static void rx_release(struct client *c)
{
    if (c->rx != NULL && cli_pending(c) == 0) {
        free(c->rx);
        c->rx = NULL;
        c->off = c->len = c->cap = 0;
    }
}

/*
 * Next event of M into E: 1, 0 when the connection ended (M->code holds the
 * close frame's code, -1 without one), -1 on timeout. Pings are answered.
 */
static int next_ev(struct mem *m, struct ev *e, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        if (m->closed)
            return 0;
        struct wsc_msg f;
        int r = wsc_recv(&m->c, &f, until(end));
        if (r < 0)
            return -1;
        if (r == 0) {
            m->closed = 1;
            return 0;
        }
        if (f.opcode == WS_OP_CLOSE) {
            m->closed = 1;
            m->code = f.len >= 2 ? f.data[0] << 8 | f.data[1] : 0;
            snprintf(m->reason, sizeof m->reason, "%.*s", f.len > 2 ? (int)f.len - 2 : 0,
                     f.len > 2 ? (const char *)f.data + 2 : "");
            wsc_msg_free(&f);
            return 0;
        }
        if (f.opcode == WS_OP_PING)
            wsc_send(&m->c, WS_FIN | WS_OP_PONG, f.data, f.len);
        if (f.opcode == WS_OP_TEXT) {
            ck_assert_msg(f.fin, "a fragmented chat event");
            int bad = ev_parse((const char *)f.data, f.len, e);
            ck_assert_msg(!bad, "not a strict flat JSON object: %.200s", (const char *)f.data);
            wsc_msg_free(&f);
            return 1;
        }
        ck_assert_msg(f.opcode == WS_OP_PING || f.opcode == WS_OP_PONG, "chat sent opcode %d",
                      f.opcode);
        wsc_msg_free(&f);
    }
}

/*
 * Read M's welcome, history and history_end. 1 joined, 0 the server closed
 * it first (M->code, M->reason, M->welcomed tell what came).
 */
static int read_join(struct mem *m, const char *room)
{
    struct ev e;
    int r;
    while ((r = next_ev(m, &e, 5000)) == 1) {
        if (!m->welcomed) {
            ck_assert_msg(strcmp(e.type, "welcome") == 0, "room %s: first event %s", room, e.type);
            ck_assert_msg(strcmp(e.room, room) == 0, "welcome to room %s, joined %s", e.room, room);
            ck_assert_msg(e.online >= 1 && e.uid[0] != '\0', "welcome without uid/online");
            m->w = e;
            m->welcomed = 1;
        } else if (strcmp(e.type, "history_end") == 0) {
            m->ended = 1;
            return 1;
        } else if (strcmp(e.type, "gap") == 0) {
            m->gaps++;
        } else {
            ck_assert_msg(strcmp(e.type, "message") == 0, "room %s: %s event in the history",
                          room, e.type);
            ck_assert_msg(strcmp(e.room, room) == 0, "room %s got history of room %s (%s)", room,
                          e.room, e.text);
            ck_assert_msg(m->nh < HIST_MAX, "room %s: more than %d history messages", room,
                          HIST_MAX);
            m->hid[m->nh] = e.id;
            snprintf(m->htext[m->nh++], sizeof m->htext[0], "%.23s", e.text);
        }
    }
    ck_assert_msg(r == 0, "room %s: no history_end within 5 s", room);
    return 0;
}

/* "r" of "/chat/r?since=3" into OUT. */
static void room_of(const char *path, char *out, size_t cap)
{
    const char *r = path + strlen("/chat/");
    snprintf(out, cap, "%.*s", (int)strcspn(r, "?"), r);
}

/* Connect and join PATH: 1 joined, 0 upgraded and then closed (see M). */
static int join(struct mem *m, int port, const char *path)
{
    char room[40];
    memset(m, 0, sizeof *m);
    m->code = -1;
    room_of(path, room, sizeof room);
    ck_assert_msg(cli_connect(&m->c, port) == 0, "connect: %s", strerror(errno));
    int st = wsc_handshake(&m->c, path, NULL, NULL, 0);
    ck_assert_msg(st == 101, "upgrade of %s: status %d", path, st);
    return read_join(m, room);
}

static void leave(struct mem *m)
{
    if (!m->closed)
        wsc_send_close(&m->c, 1000, NULL, 0);
    cli_close(&m->c);
    m->closed = 1;
}

/* Join PATH, asserting it works. */
static void join_ok(struct mem *m, int port, const char *path)
{
    ck_assert_msg(join(m, port, path), "join of %s: closed with %d \"%s\"", path, m->code,
                  m->reason);
}

/* A join of PATH must be upgraded, then closed with 1013 "too many rooms" before a welcome. */
static void join_refused(int port, const char *path)
{
    struct mem m;
    int ok = join(&m, port, path);
    ck_assert_msg(!ok, "join of %s with a full room table: welcome online %d", path, m.w.online);
    ck_assert_msg(!m.welcomed, "join of %s got a welcome and then close %d", path, m.code);
    ck_assert_msg(m.code == 1013 && strcmp(m.reason, "too many rooms") == 0,
                  "join of %s with a full room table: close %d \"%s\", want 1013 \"too many rooms\"",
                  path, m.code, m.reason);
    wsc_send_close(&m.c, 1013, NULL, 0);
    cli_close(&m.c);
}

/*
 * Join PATH, retrying while it is refused with 1013 (a leave the server has
 * not yet seen) until END. 1 when it joined.
 */
static int join_retry(struct mem *m, int port, const char *path, int64_t end)
{
    for (;;) {
        if (join(m, port, path))
            return 1;
        ck_assert_msg(m->code == 1013, "join of %s: close %d \"%s\"", path, m->code, m->reason);
        cli_close(&m->c);
        if (it_now_ms() >= end)
            return 0;
        it_sleep_ms(20);
    }
}

static void say(struct mem *m, const char *text)
{
    char buf[128];
    int n = snprintf(buf, sizeof buf, "{\"type\":\"message\",\"text\":\"%s\"}", text);
    ck_assert_msg(wsc_send(&m->c, WS_FIN | WS_OP_TEXT, buf, (size_t)n) == 0, "send: %s",
                  strerror(errno));
}

/* Wait for M's copy of its own message TEXT (other events skipped); its id. */
static uint64_t expect_own(struct mem *m, const char *text, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    struct ev e;
    for (;;) {
        int r = next_ev(m, &e, until(end));
        ck_assert_msg(r == 1, "%s: own message \"%s\" not back (%s)", m->w.room, text,
                      r ? "timeout" : "closed");
        if (strcmp(e.type, "message") == 0 && strcmp(e.text, text) == 0) {
            ck_assert_str_eq(e.room, m->w.room);
            ck_assert_str_eq(e.uid, m->w.uid);
            return e.id;
        }
    }
}

/* Send TEXT and return its id. */
static uint64_t say_id(struct mem *m, const char *text)
{
    say(m, text);
    return expect_own(m, text, 5000);
}

/* Wait for an event of TYPE from UID on M; 1 if it came in time. */
static int await_ev(struct mem *m, const char *type, const char *uid, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    struct ev e;
    while (next_ev(m, &e, until(end)) == 1)
        if (strcmp(e.type, type) == 0 && strcmp(e.uid, uid) == 0)
            return 1;
    return 0;
}

/* ws_current of each worker in /stats into OUT[0..max); how many workers. */
static int stats_ws(int port, uint64_t *out, int max)
{
    struct client c;
    struct httpc_resp r;
    char v[32];
    ck_assert_int_eq(cli_connect(&c, port), 0);
    ck_assert_int_eq(cli_sendstr(&c, "GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
                     0);
    ck_assert_int_eq(httpc_read_head(&c, &r, 5000), 200);
    ck_assert_ptr_nonnull(httpc_header(&r, "Content-Length", v, sizeof v));
    size_t len = strtoul(v, NULL, 10);
    int64_t end = it_now_ms() + 5000;
    while (cli_pending(&c) < len && cli_fill(&c, until(end)) > 0)
        ;
    ck_assert_uint_ge(cli_pending(&c), len);
    char *body = strndup((const char *)c.rx + c.off, len);
    cli_close(&c);
    const char *stop = strstr(body, "\"total\":");
    ck_assert_ptr_nonnull(stop);
    int n = 0;
    for (const char *p = body; (p = strstr(p, "\"ws_current\":")) != NULL && p < stop; p++) {
        ck_assert_int_lt(n, max);
        out[n++] = strtoull(p + strlen("\"ws_current\":"), NULL, 10);
    }
    free(body);
    return n;
}

/* ---- 1. many rooms live at once ------------------------------------------------- */

#define MANY        15000
#define MANY_BATCH  250
#define MANY_TALK   50
#define KEY         "dGhlIHNhbXBsZSBub25jZQ=="
#define KEY_ACCEPT  "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="      /* RFC 6455 §1.3 */

static void nofile_raise(rlim_t need)
{
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    ck_assert_msg(rl.rlim_cur >= need, "RLIMIT_NOFILE %llu, this test needs %llu",
                  (unsigned long long)rl.rlim_cur, (unsigned long long)need);
}

/* Members [from, to) of /chat/r<k>: connect and send every request, then read each reply. */
static void open_batch(struct mem *m, int from, int to, int port)
{
    char req[512];
    for (int k = from; k < to; k++) {
        memset(&m[k], 0, sizeof m[k]);
        m[k].code = -1;
        ck_assert_msg(cli_connect(&m[k].c, port) == 0, "connect %d: %s", k, strerror(errno));
        int n = snprintf(req, sizeof req, "GET /chat/r%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                         "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " KEY
                         "\r\nSec-WebSocket-Version: 13\r\n\r\n", k, port);
        ck_assert_msg(cli_send(&m[k].c, req, (size_t)n) == 0, "request %d: %s", k, strerror(errno));
    }
    for (int k = from; k < to; k++) {
        struct httpc_resp r;
        char room[16], v[64];
        snprintf(room, sizeof room, "r%d", k);
        int st = httpc_read_head(&m[k].c, &r, 5000);
        ck_assert_msg(st == 101, "member %d of %d rooms: status %d", k, MANY, st);
        ck_assert_msg(httpc_header(&r, "Sec-WebSocket-Accept", v, sizeof v)
                      && strcmp(v, KEY_ACCEPT) == 0, "member %d: wrong accept", k);
        ck_assert_msg(read_join(&m[k], room), "member %d: closed %d \"%s\" before history_end",
                      k, m[k].code, m[k].reason);
        ck_assert_msg(m[k].w.online == 1, "room %s: welcome online %d, want 1", room,
                      m[k].w.online);
        ck_assert_msg(m[k].nh == 0 && m[k].gaps == 0, "new room %s has history", room);
        /* Its own join is its room's only event so far. */
        struct ev e;
        ck_assert_msg(next_ev(&m[k], &e, 5000) == 1, "room %s: no join event", room);
        ck_assert_msg(strcmp(e.type, "join") == 0 && strcmp(e.uid, m[k].w.uid) == 0
                      && strcmp(e.room, room) == 0 && e.online == 1,
                      "room %s: first live event %s of %s in %s online %d", room, e.type, e.uid,
                      e.room, e.online);
        rx_release(&m[k].c);
    }
}

START_TEST(many_rooms_live)
{
    nofile_raise(MANY + 200);
    struct server s;
    srv_start(&s, "workers 2\nmax_connections 10000\nmax_connections_per_ip 0\n"
                  "idle_timeout 10m\nhandshake_timeout 30s");
    static struct mem m[MANY];
    static struct pollfd pfd[MANY];
    int64_t t0 = it_now_ms();
    for (int k = 0; k < MANY; k += MANY_BATCH)
        open_batch(m, k, k + MANY_BATCH < MANY ? k + MANY_BATCH : MANY, s.port);
    int64_t t1 = it_now_ms();
    fprintf(stderr, "rooms: %d one-member rooms joined in %lld ms\n", MANY, (long long)(t1 - t0));

    /* Both workers hold members (10,000 at most each). */
    uint64_t ws[2];
    ck_assert_int_eq(stats_ws(s.port, ws, 2), 2);
    ck_assert_msg(ws[0] + ws[1] == MANY && ws[0] >= MANY - 10000 && ws[1] >= MANY - 10000,
                  "/stats: %llu + %llu WebSocket connections, want %d over both",
                  (unsigned long long)ws[0], (unsigned long long)ws[1], MANY);

    /* 50 distinct random rooms speak once each. */
    int talk[MANY_TALK];
    uint32_t x;
    it_random(&x, sizeof x);
    x |= 1;
    for (int i = 0; i < MANY_TALK; i++) {
        int dup;
        do {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            talk[i] = (int)(x % MANY);
            dup = 0;
            for (int j = 0; j < i; j++)
                dup |= talk[j] == talk[i];
        } while (dup);
        char t[32];
        snprintf(t, sizeof t, "hello-r%d", talk[i]);
        say(&m[talk[i]], t);
    }
    for (int i = 0; i < MANY_TALK; i++) {
        char t[32];
        snprintf(t, sizeof t, "hello-r%d", talk[i]);
        expect_own(&m[talk[i]], t, 5000);
        rx_release(&m[talk[i]].c);
    }
    /* Nobody else got anything, nor the speakers anything more, for 300 ms. */
    for (int k = 0; k < MANY; k++)
        pfd[k] = (struct pollfd){ .fd = m[k].c.fd, .events = POLLIN };
    int64_t end = it_now_ms() + 300;
    while (it_now_ms() < end) {
        int r = poll(pfd, MANY, until(end));
        ck_assert_msg(r >= 0 || errno == EINTR, "poll: %s", strerror(errno));
        for (int k = 0; r > 0 && k < MANY; k++)
            if (pfd[k].revents) {
                struct ev e;
                int got = next_ev(&m[k], &e, 0);
                ck_abort_msg("room r%d got %s (%s, from room %s, text %s) after 50 other rooms "
                             "spoke", k, got == 1 ? "an event" : "its connection closed",
                             got == 1 ? e.type : "-", got == 1 ? e.room : "-",
                             got == 1 ? e.text : "-");
            }
    }
    for (int k = 0; k < MANY; k++)
        cli_close(&m[k].c);
    fprintf(stderr, "rooms: %d rooms checked in %lld ms\n", MANY, (long long)(it_now_ms() - t0));
    srv_stop(&s);
}
END_TEST

/* ---- 2. a full table, then reclaim --------------------------------------------- */

START_TEST(table_full_then_reclaim)
{
    struct server s;
    srv_start(&s, "workers 2\nmax_rooms 8");
    struct mem m[8], second, n9, back, n7;
    char path[32];
    for (int i = 0; i < 8; i++) {
        snprintf(path, sizeof path, "/chat/t%d", i);
        join_ok(&m[i], s.port, path);
        ck_assert_int_eq(m[i].w.online, 1);
    }
    /* Every entry holds a room with members: a 9th name is refused, twice. */
    join_refused(s.port, "/chat/t8");
    join_refused(s.port, "/chat/t8?nick=again");
    /* An existing room still takes members, and its rooms still work. */
    join_ok(&second, s.port, "/chat/t0?nick=second");
    ck_assert_msg(second.w.online == 2, "second member of t0: online %d, want 2", second.w.online);
    say_id(&m[0], "still-here");
    ck_assert_msg(await_ev(&second, "message", m[0].w.uid, 3000), "t0's second member missed "
                  "a message");

    /* t7's only member leaves: its entry goes to the next new name. */
    leave(&m[7]);
    ck_assert_msg(join_retry(&n9, s.port, "/chat/t9", it_now_ms() + 3000),
                  "t9 refused with 1013 for 3 s after t7 emptied");
    ck_assert_int_eq(n9.w.online, 1);
    /* Full again (t0..t6, t9): t7's name has no entry now. */
    join_refused(s.port, "/chat/t7");
    /* t6 empties: t7 can come back, and t6 is the one without an entry then. */
    leave(&m[6]);
    ck_assert_msg(join_retry(&n7, s.port, "/chat/t7?nick=back", it_now_ms() + 3000),
                  "t7 refused with 1013 for 3 s after t6 emptied");
    ck_assert_int_eq(n7.w.online, 1);
    join_refused(s.port, "/chat/t6");
    /* A room with members kept its entry and its count throughout. */
    join_ok(&back, s.port, "/chat/t0?nick=third");
    ck_assert_msg(back.w.online == 3, "third member of t0: online %d, want 3", back.w.online);
    for (int i = 0; i < 8; i++)
        leave(&m[i]);
    leave(&second);
    leave(&n9);
    leave(&n7);
    leave(&back);
    srv_stop(&s);
}
END_TEST

/* ---- 3. history of a room whose entry was reclaimed ---------------------------- */

/* Messages A gets before its entry is reclaimed: fewer than, and more than, history_size 5. */
static const int hist_counts[] = { 3, 8 };

START_TEST(history_after_reclaim)
{
    const int na = hist_counts[_i], hs = 5;
    struct server s;
    srv_start(&s, "workers 2\nmax_rooms 4\nhistory_size 5");
    struct mem a, b, c, d, e, n1, n2, n3, n4, n5, b2;
    uint64_t ids[16];
    char t[32], path[64];

    /* A and B take turns, so a scan for A's history has B's messages to pass over. */
    join_ok(&b, s.port, "/chat/B");
    join_ok(&a, s.port, "/chat/A?nick=a");
    for (int i = 0; i < na; i++) {
        snprintf(t, sizeof t, "a%d", i + 1);
        ids[i] = say_id(&a, t);
        ck_assert(i == 0 || ids[i] > ids[i - 1]);
        snprintf(t, sizeof t, "b%d", i + 1);
        say_id(&b, t);
    }
    leave(&a);
    /* C and D take the other entries and talk too. */
    join_ok(&c, s.port, "/chat/C");
    join_ok(&d, s.port, "/chat/D");
    say_id(&c, "c1");
    /* E needs A's entry (A is the only empty room; its messages are all in the ring). */
    ck_assert_msg(join_retry(&e, s.port, "/chat/E", it_now_ms() + 3000),
                  "E refused with 1013 for 3 s after A emptied");
    ck_assert_msg(e.nh == 0 && e.gaps == 0, "E got %d history messages of an earlier room",
                  e.nh);
    say_id(&e, "e1");
    say_id(&d, "d1");
    leave(&e);
    /* A again: it gets E's entry and has to find its history without a chain. */
    ck_assert_msg(join_retry(&n1, s.port, "/chat/A?nick=n1", it_now_ms() + 3000),
                  "A refused with 1013 for 3 s after E emptied");
    ck_assert_int_eq(n1.w.online, 1);
    ck_assert_int_eq(n1.gaps, 0);
    int want = na < hs ? na : hs;
    ck_assert_msg(n1.nh == want, "A after its entry was reclaimed: %d history messages, want %d",
                  n1.nh, want);
    for (int i = 0; i < want; i++) {
        int k = na - want + i;
        snprintf(t, sizeof t, "a%d", k + 1);
        ck_assert_msg(strcmp(n1.htext[i], t) == 0 && n1.hid[i] == ids[k],
                      "A history %d: \"%s\" id %llu, want \"%s\" id %llu", i, n1.htext[i],
                      (unsigned long long)n1.hid[i], t, (unsigned long long)ids[k]);
    }
    ck_assert_uint_ge(n1.w.last_id, ids[na - 1]);
    /* since=a1: exactly a2.. (not capped by history_size), no gap, nothing twice. */
    snprintf(path, sizeof path, "/chat/A?nick=n2&since=%llu", (unsigned long long)ids[0]);
    join_ok(&n2, s.port, path);
    ck_assert_msg(n2.gaps == 0, "since=a1: a gap event with every message in the ring");
    ck_assert_msg(n2.nh == na - 1, "since=a1: %d messages, want %d", n2.nh, na - 1);
    for (int i = 0; i < na - 1; i++) {
        snprintf(t, sizeof t, "a%d", i + 2);
        ck_assert_msg(strcmp(n2.htext[i], t) == 0 && n2.hid[i] == ids[i + 1],
                      "since=a1, message %d: \"%s\" id %llu, want \"%s\" id %llu", i,
                      n2.htext[i], (unsigned long long)n2.hid[i], t,
                      (unsigned long long)ids[i + 1]);
    }
    /* since=<last>: nothing before history_end. */
    snprintf(path, sizeof path, "/chat/A?nick=n3&since=%llu", (unsigned long long)ids[na - 1]);
    join_ok(&n3, s.port, path);
    ck_assert_msg(n3.nh == 0 && n3.gaps == 0, "since=a%d: %d messages, %d gaps, want none", na,
                  n3.nh, n3.gaps);
    ck_assert_int_eq(n3.w.online, 3);
    /* A lives on: a new message reaches all three once, and a later joiner sees it last. */
    uint64_t live = say_id(&n3, "a-live");
    ck_assert_uint_gt(live, ids[na - 1]);
    ck_assert_msg(await_ev(&n1, "message", n3.w.uid, 3000), "n1 missed a-live");
    ck_assert_msg(await_ev(&n2, "message", n3.w.uid, 3000), "n2 missed a-live");
    join_ok(&n4, s.port, "/chat/A?nick=n4");
    int want4 = na + 1 < hs ? na + 1 : hs;
    ck_assert_msg(n4.nh == want4, "A's history after a-live: %d messages, want %d", n4.nh, want4);
    ck_assert_str_eq(n4.htext[want4 - 1], "a-live");
    ck_assert_uint_eq(n4.hid[want4 - 1], live);
    for (int i = 0; i + 1 < want4; i++) {
        snprintf(t, sizeof t, "a%d", na - want4 + i + 2);
        ck_assert_str_eq(n4.htext[i], t);
    }
    /* since=a1 again: the old messages (found by scanning) and the new one (chained). */
    snprintf(path, sizeof path, "/chat/A?nick=n5&since=%llu", (unsigned long long)ids[0]);
    join_ok(&n5, s.port, path);
    ck_assert_msg(n5.nh == na && n5.gaps == 0, "since=a1 after a-live: %d messages, %d gaps, "
                  "want %d and 0", n5.nh, n5.gaps, na);
    ck_assert_str_eq(n5.htext[na - 2], na > 1 ? n2.htext[na - 2] : "");
    ck_assert_str_eq(n5.htext[na - 1], "a-live");
    for (int i = 0; i + 1 < na; i++)
        ck_assert_uint_eq(n5.hid[i], ids[i + 1]);
    /* The other rooms' histories are their own. */
    join_ok(&b2, s.port, "/chat/B?nick=b2");
    ck_assert_msg(b2.nh == want, "B's history: %d messages, want %d", b2.nh, want);
    for (int i = 0; i < want; i++) {
        snprintf(t, sizeof t, "b%d", na - want + i + 1);
        ck_assert_str_eq(b2.htext[i], t);
    }
    leave(&b2);
    leave(&n5);
    leave(&b);
    leave(&c);
    leave(&d);
    leave(&n1);
    leave(&n2);
    leave(&n3);
    leave(&n4);
    srv_stop(&s);
}
END_TEST

/* ---- 4. counts and entries after a worker is killed ---------------------------- */

START_TEST(counts_after_worker_crash)
{
    struct server s;
    srv_start(&s, "workers 2\nmax_connections 2");
    snprintf(s.alert_ok, sizeof s.alert_ok, KILL_OK);
    ck_assert(srv_wait_worker_count(&s, 2, 3000));
    pid_t wk[SRV_MAX_WORKERS];
    ck_assert_int_eq(srv_workers(&s, wk, SRV_MAX_WORKERS), 2);
    struct mem m[4], probe;
    pid_t own[4];
    int on0 = 0;
    for (int i = 0; i < 4; i++) {
        join_ok(&m[i], s.port, "/chat/r");
        ck_assert_msg(m[i].w.online == i + 1, "member %d: online %d", i, m[i].w.online);
    }
    for (int i = 0; i < 4; i++) {
        own[i] = srv_conn_owner(&m[i].c, s.port, wk, 2);
        ck_assert_msg(own[i] == wk[0] || own[i] == wk[1], "member %d on no worker", i);
        on0 += own[i] == wk[0];
    }
    ck_assert_msg(on0 == 2, "members split %d + %d, want 2 + 2", on0, 4 - on0);

    pid_t victim = wk[0];
    ck_assert_int_eq(kill(victim, SIGKILL), 0);
    ck_assert(WAIT_FOR(!it_proc_alive(victim), 3000));
    int64_t t0 = it_now_ms();
    /* The victim's members end; the others stay and still talk. */
    int alive[2], na = 0;
    for (int i = 0; i < 4; i++) {
        if (own[i] == victim) {
            ck_assert_msg(cli_expect_closed(&m[i].c, 3000), "member %d of the killed worker "
                          "still connected", i);
            m[i].closed = 1;
        } else {
            alive[na++] = i;
        }
    }
    ck_assert_int_eq(na, 2);
    say(&m[alive[0]], "survived");
    expect_own(&m[alive[0]], "survived", 3000);
    ck_assert_msg(await_ev(&m[alive[1]], "message", m[alive[0]].w.uid, 3000),
                  "the other survivor did not get the message");
    ck_assert(srv_wait_worker_count(&s, 2, 5000));

    /* Within 3 s a newcomer is told exactly the 2 still there plus itself. */
    char seen[256] = "";
    size_t so = 0;
    int matched = 0, tries = 0;
    while (!matched) {
        ck_assert_msg(join(&probe, s.port, "/chat/r?nick=probe"), "probe closed with %d",
                      probe.code);
        tries++;
        if (so < sizeof seen - 8)
            so += (size_t)snprintf(seen + so, sizeof seen - so, " %d", probe.w.online);
        matched = probe.w.online == na + 1;
        char uid[40];
        memcpy(uid, probe.w.uid, sizeof uid);
        leave(&probe);
        /* The survivor sees the probe's leave: the next probe starts from a settled count. */
        ck_assert_msg(await_ev(&m[alive[0]], "leave", uid, 3000), "no leave event of a probe");
        if (!matched && it_now_ms() - t0 > 3000)
            break;
        if (!matched)
            it_sleep_ms(50);
    }
    ck_assert_msg(matched, "3 s after a worker with 2 of room r's 4 members was killed, "
                  "newcomers were told online:%s (want %d) over %d tries", seen, na + 1, tries);
    /* And it stays exact. */
    for (int k = 0; k < 3; k++) {
        ck_assert(join(&probe, s.port, "/chat/r?nick=probe"));
        ck_assert_msg(probe.w.online == na + 1, "after settling: online %d, want %d",
                      probe.w.online, na + 1);
        char uid[40];
        memcpy(uid, probe.w.uid, sizeof uid);
        leave(&probe);
        ck_assert(await_ev(&m[alive[0]], "leave", uid, 3000));
    }
    fprintf(stderr, "rooms: counts exact %lld ms after the kill (%d probes:%s)\n",
            (long long)(it_now_ms() - t0), tries, seen);
    for (int i = 0; i < 4; i++)
        leave(&m[i]);
    srv_stop(&s);
}
END_TEST

/*
 * max_rooms 2: room x's only member is on the worker that is killed, room y
 * keeps a member on the other one. x's count must drop to 0 so its entry
 * can be reclaimed: one new name at a time fits beside y.
 */
START_TEST(crash_frees_room_entry)
{
    struct server s;
    srv_start(&s, "workers 2\nmax_connections 2\nmax_rooms 2");
    snprintf(s.alert_ok, sizeof s.alert_ok, KILL_OK);
    ck_assert(srv_wait_worker_count(&s, 2, 3000));
    pid_t wk[SRV_MAX_WORKERS];
    ck_assert_int_eq(srv_workers(&s, wk, SRV_MAX_WORKERS), 2);
    struct mem x, y[2], z1, z2;
    int ny = 0;
    join_ok(&x, s.port, "/chat/x");
    pid_t victim = srv_conn_owner(&x.c, s.port, wk, 2);
    ck_assert(victim > 0);
    /* y members until one is on the other worker (the victim holds 2 at most). */
    int keep = -1;
    while (keep < 0) {
        ck_assert_int_lt(ny, 2);
        join_ok(&y[ny], s.port, "/chat/y");
        pid_t o = srv_conn_owner(&y[ny].c, s.port, wk, 2);
        ck_assert(o > 0);
        if (o != victim)
            keep = ny;
        ny++;
    }
    join_refused(s.port, "/chat/q");

    ck_assert_int_eq(kill(victim, SIGKILL), 0);
    ck_assert(WAIT_FOR(!it_proc_alive(victim), 3000));
    int64_t t0 = it_now_ms();
    ck_assert_msg(cli_expect_closed(&x.c, 3000), "x's member survived its worker");
    x.closed = 1;
    ck_assert(srv_wait_worker_count(&s, 2, 5000));

    ck_assert_msg(join_retry(&z1, s.port, "/chat/z1", t0 + 3000), "3 s after the kill, a new "
                  "room is still refused: the dead worker's room x still holds its entry");
    fprintf(stderr, "rooms: x reclaimable %lld ms after the kill\n", (long long)(it_now_ms() - t0));
    ck_assert_int_eq(z1.w.online, 1);
    join_refused(s.port, "/chat/z2");       /* y and z1 fill max_rooms 2 */
    leave(&z1);
    ck_assert_msg(join_retry(&z2, s.port, "/chat/z2", it_now_ms() + 3000),
                  "z2 refused for 3 s after z1 emptied");
    ck_assert_int_eq(z2.w.online, 1);
    /* y kept its entry and its count all along. */
    struct mem y2;
    join_ok(&y2, s.port, "/chat/y?nick=late");
    ck_assert_msg(y2.w.online == 2, "y after the crash: online %d, want 2", y2.w.online);
    leave(&y2);
    say_id(&y[keep], "y-alive");
    for (int i = 0; i < ny; i++)
        leave(&y[i]);
    leave(&x);
    leave(&z2);
    srv_stop(&s);
}
END_TEST

/*
 * A kill -9 resets every count; a live worker counts its members back in
 * only at its next loop pass. Its rooms have members all along: new names
 * joined meanwhile on another worker must not take their entries. Worker B
 * holds room y's two members and nothing else (full at max_connections 2,
 * so every new connection goes to another worker), x's member dies with
 * worker A; presence_events_max 0, so no event wakes B. max_rooms 2 has
 * room for y and one new name.
 */
START_TEST(crash_keeps_live_rooms)
{
    struct server s;
    srv_start(&s, "workers 3\nmax_connections 2\nmax_rooms 2\npresence_events_max 0");
    snprintf(s.alert_ok, sizeof s.alert_ok, KILL_OK);
    ck_assert(srv_wait_worker_count(&s, 3, 3000));
    pid_t wk[SRV_MAX_WORKERS];
    ck_assert_int_eq(srv_workers(&s, wk, SRV_MAX_WORKERS), 3);
    struct mem y[2], x, z1, y3;
    join_ok(&y[0], s.port, "/chat/y");
    pid_t b = srv_conn_owner(&y[0].c, s.port, wk, 3);
    ck_assert(b > 0);
    /* Fill the other two workers with /echo connections, so y's second member lands on B. */
    struct client ph[4];
    int nph = 0, tries = 0;
    while (nph < 4) {
        ck_assert_msg(tries++ < 40, "40 connections to fill the other workers");
        wsc_open(&ph[nph], s.port);
        pid_t o = srv_conn_owner(&ph[nph], s.port, wk, 3);
        ck_assert_msg(o > 0, "connection on no worker");
        if (o == b) {
            cli_close(&ph[nph]);
            it_sleep_ms(20);
        } else {
            nph++;
        }
    }
    join_ok(&y[1], s.port, "/chat/y");
    ck_assert_msg(srv_conn_owner(&y[1].c, s.port, wk, 3) == b, "y's second member not on B");
    for (int i = 0; i < nph; i++)
        cli_close(&ph[i]);
    it_sleep_ms(100);                       /* the other workers see those closes */
    join_ok(&x, s.port, "/chat/x");
    pid_t a = srv_conn_owner(&x.c, s.port, wk, 3);
    ck_assert_msg(a > 0 && a != b, "x's member not on another worker");

    ck_assert_int_eq(kill(a, SIGKILL), 0);
    ck_assert(WAIT_FOR(!it_proc_alive(a), 3000));
    ck_assert(cli_expect_closed(&x.c, 3000));
    x.closed = 1;
    ck_assert(srv_wait_worker_count(&s, 3, 5000));
    /* Right away, two new names (not on B): the second must be refused. */
    ck_assert_msg(join_retry(&z1, s.port, "/chat/z1", it_now_ms() + 3000),
                  "z1 refused for 3 s after x's only member died");
    struct mem z2;
    int got = join(&z2, s.port, "/chat/z2");
    /* y still has its two members: a third joins it, now and a second later. */
    char ys[2][64];
    int y_ok = 1;
    for (int k = 0; k < 2; k++) {
        if (k)
            it_sleep_ms(1500);
        int ok = join(&y3, s.port, "/chat/y?nick=third");
        if (ok)
            snprintf(ys[k], sizeof ys[k], "joined with online %d", y3.w.online);
        else
            snprintf(ys[k], sizeof ys[k], "was closed with %d \"%.32s\"", y3.code, y3.reason);
        y_ok &= ok && y3.w.online == 3;
        leave(&y3);
    }
    ck_assert_msg(!got && y_ok, "after a worker crash, with room y's 2 members alive on the other "
                  "worker: new room z2 %s (want 1013: y and z1 fill max_rooms 2); a new member "
                  "of y %s, and 1.5 s later %s (want online 3)",
                  got ? "was welcomed, taking y's entry" : "was refused", ys[0], ys[1]);
    leave(&z2);
    leave(&z1);
    leave(&y[0]);
    leave(&y[1]);
    leave(&x);                              /* closed by the crash: frees its buffer */
    srv_stop(&s);
}
END_TEST

/* ---- 5. the max_rooms directive ---------------------------------------------------- */

static int all_gone(const pid_t *p, int n)
{
    for (int i = 0; i < n; i++)
        if (it_proc_alive(p[i]))
            return 0;
    return 1;
}

static void conf_check(const char *line, int want_rc)
{
    struct server s;
    srv_init(&s, line);
    int at = it_file_line_of(s.conf, line);
    ck_assert_int_gt(at, 0);
    const char *args[] = { "-t", "-c", s.conf, NULL };
    int rc = srv_run_sync(&s, args);
    ck_assert_msg(rc == want_rc, "-t with \"%s\": exit %d, want %d", line, rc, want_rc);
    if (want_rc != 0) {
        char where[PATH_MAX + 16];
        snprintf(where, sizeof where, "%s:%d:", s.conf, at);
        ck_assert_msg(it_file_count(s.err, where) >= 1, "-t with \"%s\": stderr lacks \"%s\"",
                      line, where);
    }
    srv_stop(&s);
}

START_TEST(max_rooms_config)
{
    conf_check("max_rooms 0", 1);
    conf_check("max_rooms 1048577", 1);
    conf_check("max_rooms -1", 1);
    conf_check("max_rooms 1048576", 0);
    conf_check("max_rooms 1", 0);

    /* The largest table really starts. */
    struct server s;
    struct mem p, q, p2;
    srv_start(&s, "workers 1\nmax_rooms 1048576");
    join_ok(&p, s.port, "/chat/huge");
    leave(&p);
    srv_stop(&s);

    /* SIGHUP with another max_rooms: a warning, the old size kept, still serving. */
    srv_start(&s, "workers 2\nmax_rooms 2");
    join_ok(&p, s.port, "/chat/p");
    join_ok(&q, s.port, "/chat/q");
    join_refused(s.port, "/chat/r");
    pid_t old[SRV_MAX_WORKERS];
    int nold = srv_workers(&s, old, SRV_MAX_WORKERS);
    srv_write_config(&s, "workers 2\nmax_rooms 16");
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    ck_assert_msg(WAIT_FOR(it_file_count2(s.log, "max_rooms changed", "a restart is needed") == 1,
                           3000), "no \"max_rooms changed: a restart is needed\" log line");
    ck_assert_msg(it_file_count2(s.log, "[warn]", "max_rooms changed") == 1,
                  "the max_rooms line is not a warning");
    ck_assert_msg(WAIT_FOR(all_gone(old, nold), s.shutdown_ms + 2000),
                  "old workers outlived the reload");
    ck_assert(srv_wait_worker_count(&s, 2, 3000));
    ck_assert_msg(!srv_wait_exit(&s, 0), "the master exited on SIGHUP");
    /* Members handed over stay; one closed for the reload comes back. */
    struct ev e;
    struct mem *both[] = { &p, &q };
    const char *paths[] = { "/chat/p", "/chat/q" };
    for (int i = 0; i < 2; i++) {
        while (next_ev(both[i], &e, 0) == 1)
            ;
        if (both[i]->closed) {
            ck_assert_msg(both[i]->code == 1012, "%s closed with %d on reload", paths[i],
                          both[i]->code);
            cli_close(&both[i]->c);
            join_ok(both[i], s.port, paths[i]);
        }
    }
    /* Both are members of a new worker again once their messages come back. */
    say_id(&p, "p-back");
    say_id(&q, "q-back");
    /* Still max_rooms 2: p and q hold both entries. */
    join_refused(s.port, "/chat/r");
    join_ok(&p2, s.port, "/chat/p?nick=p2");
    ck_assert_msg(p2.w.online == 2, "p after the reload: online %d, want 2", p2.w.online);
    say(&p, "after-hup");
    expect_own(&p, "after-hup", 3000);
    ck_assert_msg(await_ev(&p2, "message", p.w.uid, 3000), "p2 did not get p's message");
    leave(&p);
    leave(&q);
    leave(&p2);
    srv_stop(&s);
}
END_TEST

/*
 * A reload hands each idle member to a new worker. Its room has members all
 * along, so with every entry taken a new room must stay refused throughout,
 * and no handed-over member may be refused for want of an entry.
 */
#define RELOADS 16

START_TEST(reload_keeps_live_rooms)
{
    struct server s;
    srv_start(&s, "workers 2\nmax_rooms 2");
    struct mem p, q, r;
    join_ok(&p, s.port, "/chat/p");
    join_ok(&q, s.port, "/chat/q");
    struct mem *both[] = { &p, &q };
    const char *paths[] = { "/chat/p", "/chat/q" };
    int probes = 0, stolen = 0, kicked = 0, reloads = 0;
    char why[256] = "";
    for (int round = 0; round < RELOADS && !stolen && !kicked; round++) {
        pid_t old[SRV_MAX_WORKERS];
        int nold = srv_workers(&s, old, SRV_MAX_WORKERS);
        ck_assert_int_eq(kill(s.pid, SIGHUP), 0);      /* the same file: a new generation */
        reloads++;
        /* New names while the members move: every one must be refused. */
        int64_t end = it_now_ms() + s.shutdown_ms + 2000, settle = 0;
        while (!stolen && it_now_ms() < end && (settle == 0 || it_now_ms() < settle)) {
            if (settle == 0 && all_gone(old, nold))
                settle = it_now_ms() + 200;
            probes++;
            if (join(&r, s.port, "/chat/r")) {
                stolen = 1;         /* r stays, holding the entry it took */
                snprintf(why, sizeof why, "reload %d, probe %d: new room r welcomed (online %d) "
                         "while p and q had members", round + 1, probes, r.w.online);
                break;
            }
            /* 1012: it reached an old worker as that one stopped */
            ck_assert_msg(r.code == 1013 || r.code == 1012, "probe closed with %d", r.code);
            cli_close(&r.c);
        }
        ck_assert_msg(stolen || all_gone(old, nold), "old workers outlived the reload");
        if (stolen)
            it_sleep_ms(300);       /* let the members' adoption meet the stolen entry */
        /* The members: still there (or closed 1012 and back), never refused an entry. */
        for (int i = 0; i < 2; i++) {
            struct ev e;
            while (next_ev(both[i], &e, 0) == 1)
                ;
            if (both[i]->closed) {
                if (both[i]->code == 1013 && !kicked) {
                    kicked = 1;
                    size_t o = strlen(why);
                    snprintf(why + o, sizeof why - o, "%sreload %d: %s's member, handed over, "
                             "closed with 1013 \"%s\"", o ? "; " : "", round + 1, paths[i],
                             both[i]->reason);
                }
                cli_close(&both[i]->c);
                if (stolen || kicked)
                    continue;       /* failing anyway: the message says why */
                ck_assert_msg(both[i]->code == 1012, "%s closed with %d on reload", paths[i],
                              both[i]->code);
                ck_assert_msg(join_retry(both[i], s.port, paths[i], it_now_ms() + 3000),
                              "%s cannot come back", paths[i]);
            }
        }
    }
    if (stolen)
        leave(&r);
    fprintf(stderr, "rooms: %d reloads, %d probes of a new room while the table was full%s%s\n",
            reloads, probes, why[0] ? ": " : "", why);
    ck_assert_msg(!stolen && !kicked, "%s", why);
    leave(&p);
    leave(&q);
    srv_stop(&s);
}
END_TEST

Suite *rooms_suite(void)
{
    Suite *s = suite_create("rooms");
    TCase *tc = tcase_create("many");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, many_rooms_live);
    suite_add_tcase(s, tc);

    tc = tcase_create("table");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, table_full_then_reclaim);
    tcase_add_loop_test(tc, history_after_reclaim, 0, sizeof hist_counts / sizeof hist_counts[0]);
    tcase_add_test(tc, max_rooms_config);
    tcase_add_test(tc, reload_keeps_live_rooms);
    suite_add_tcase(s, tc);

    tc = tcase_create("crash");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, counts_after_worker_crash);
    tcase_add_test(tc, crash_frees_room_entry);
    tcase_add_test(tc, crash_keeps_live_rooms);
    suite_add_tcase(s, tc);
    return s;
}
