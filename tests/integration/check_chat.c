/*
 * chat: the chat protocol end to end against the real wsmaster (DESIGN.md
 * "Chat protocol"). Fan-out to 50 members spread over the workers in one
 * global order, history on join, since= resume with and without a gap,
 * presence counts across workers, room isolation, nick changes, error
 * events that keep the connection open, 404 for bad rooms, SIGKILL of a
 * worker, SIGHUP with 1012 and resume, and the 1013 slow-reader cut.
 *
 * Every server frame is checked as a strict flat JSON object of the shape
 * its type promises (own small parser below, not the server's). Waits are
 * on events with deadlines; nothing sleeps to synchronise.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int left_ms(int64_t end)
{
    int64_t r = end - mono_ms();
    return r < 0 ? 0 : (int)r;
}

/* ---- a strict flat JSON object reader --------------------------------------- */

#define JMAX 12

struct jfield {
    char        key[24];
    const char *val;            /* decoded, NUL-terminated, in jobj.mem */
    size_t      len;
    int         str;            /* 1 string, 0 number/literal */
};

struct jobj {
    char         *mem;
    int           n;
    struct jfield f[JMAX];
};

static void put_utf8(char **w, unsigned cp)
{
    unsigned char *o = (unsigned char *)*w;
    if (cp < 0x80) {
        *o++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *o++ = (unsigned char)(0xC0 | cp >> 6);
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (unsigned char)(0xE0 | cp >> 12);
        *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (unsigned char)(0xF0 | cp >> 18);
        *o++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    }
    *w = (char *)o;
}

static int hex4(const char *s, size_t len, size_t i, unsigned *v)
{
    if (i + 4 > len)
        return -1;
    *v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[i + (size_t)k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        *v = *v << 4 | (unsigned)d;
    }
    return 0;
}

/* The string at s[*i] == '"', decoded to W; *i moves past it. -1 if malformed. */
static int jstring(const char *s, size_t len, size_t *i, char *w, size_t *out)
{
    char *w0 = w;
    size_t p = *i + 1;
    for (;;) {
        if (p >= len)
            return -1;
        unsigned char c = (unsigned char)s[p];
        if (c == '"') {
            p++;
            break;
        }
        if (c < 0x20)
            return -1;
        if (c != '\\') {
            *w++ = (char)c;
            p++;
            continue;
        }
        if (++p >= len)
            return -1;
        char e = s[p++];
        switch (e) {
        case '"': *w++ = '"'; break;
        case '\\': *w++ = '\\'; break;
        case '/': *w++ = '/'; break;
        case 'b': *w++ = '\b'; break;
        case 'f': *w++ = '\f'; break;
        case 'n': *w++ = '\n'; break;
        case 'r': *w++ = '\r'; break;
        case 't': *w++ = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (hex4(s, len, p, &cp) < 0)
                return -1;
            p += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return -1;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (p + 6 > len || s[p] != '\\' || s[p + 1] != 'u' ||
                    hex4(s, len, p + 2, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
                    return -1;
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            put_utf8(&w, cp);
            break;
        }
        default:
            return -1;
        }
    }
    *out = (size_t)(w - w0);
    w0[*out] = '\0';
    *i = p;
    return 0;
}

static int jliteral_ok(const char *t, size_t n)
{
    if ((n == 4 && memcmp(t, "true", 4) == 0) || (n == 5 && memcmp(t, "false", 5) == 0) ||
        (n == 4 && memcmp(t, "null", 4) == 0))
        return 1;
    size_t i = 0;
    if (i < n && t[i] == '-')
        i++;
    if (i >= n || t[i] < '0' || t[i] > '9' || (t[i] == '0' && i + 1 < n &&
                                                t[i + 1] >= '0' && t[i + 1] <= '9'))
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

#define JWS(s, len, i) while ((i) < (len) && ((s)[i] == ' ' || (s)[i] == '\t' || \
                              (s)[i] == '\n' || (s)[i] == '\r')) (i)++

/* Parse one flat object (no nesting, no duplicate keys). 0, or -1. */
static int jparse(const char *s, size_t len, struct jobj *o)
{
    memset(o, 0, sizeof *o);
    o->mem = malloc(len + 1);
    ck_assert_ptr_nonnull(o->mem);
    char *w = o->mem;
    size_t i = 0;
    JWS(s, len, i);
    if (i >= len || s[i++] != '{')
        return -1;
    JWS(s, len, i);
    if (i < len && s[i] == '}') {
        i++;
    } else {
        for (;;) {
            if (o->n == JMAX || i >= len || s[i] != '"')
                return -1;
            struct jfield *f = &o->f[o->n];
            size_t kl;
            if (jstring(s, len, &i, w, &kl) < 0 || kl >= sizeof f->key)
                return -1;
            memcpy(f->key, w, kl + 1);
            for (int k = 0; k < o->n; k++)
                if (strcmp(o->f[k].key, f->key) == 0)
                    return -1;
            JWS(s, len, i);
            if (i >= len || s[i++] != ':')
                return -1;
            JWS(s, len, i);
            if (i < len && s[i] == '"') {
                if (jstring(s, len, &i, w, &f->len) < 0)
                    return -1;
                f->str = 1;
            } else {
                size_t st = i;
                while (i < len && s[i] != ',' && s[i] != '}' && s[i] != ' ' &&
                       s[i] != '\n' && s[i] != '\r' && s[i] != '\t')
                    i++;
                if (!jliteral_ok(s + st, i - st))
                    return -1;
                f->len = i - st;
                memcpy(w, s + st, f->len);
                w[f->len] = '\0';
            }
            f->val = w;
            w += f->len + 1;
            o->n++;
            JWS(s, len, i);
            if (i < len && s[i] == ',') {
                i++;
                JWS(s, len, i);
                continue;
            }
            if (i < len && s[i] == '}') {
                i++;
                break;
            }
            return -1;
        }
    }
    JWS(s, len, i);
    return i == len ? 0 : -1;
}

static const struct jfield *jget(const struct jobj *o, const char *key)
{
    for (int i = 0; i < o->n; i++)
        if (strcmp(o->f[i].key, key) == 0)
            return &o->f[i];
    return NULL;
}

/* ---- events ------------------------------------------------------------------ */

struct rec {
    char     type[16];
    uint64_t id;                /* message/presence; 0 otherwise */
    int64_t  ts;
    char     room[40], uid[40], nick[136], old[136], code[24];
    char    *text;              /* message text (malloc'd, NUL-terminated) */
    size_t   text_len;
    int      online;            /* -1 if absent */
    uint64_t from, to, last_id;
    int      live;              /* arrived after history_end */
};

static uint64_t num_field(const struct jobj *o, const char *key, const char *raw)
{
    const struct jfield *f = jget(o, key);
    ck_assert_msg(f != NULL && !f->str, "%s: \"%s\" missing or not a number", raw, key);
    ck_assert_msg(f->len > 0 && f->len <= 20 && strspn(f->val, "0123456789") == f->len,
                  "%s: \"%s\" is not an unsigned integer", raw, key);
    return strtoull(f->val, NULL, 10);
}

static void str_field(const struct jobj *o, const char *key, char *out, size_t cap,
                      const char *raw)
{
    const struct jfield *f = jget(o, key);
    ck_assert_msg(f != NULL && f->str, "%s: \"%s\" missing or not a string", raw, key);
    ck_assert_msg(f->len < cap, "%s: \"%s\" too long (%zu)", raw, key, f->len);
    memcpy(out, f->val, f->len + 1);
}

static int uuid4_ok(const char *u)
{
    if (strlen(u) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (u[i] != '-')
                return 0;
        } else if (!((u[i] >= '0' && u[i] <= '9') || (u[i] >= 'a' && u[i] <= 'f'))) {
            return 0;
        }
    }
    return u[14] == '4' && strchr("89ab", u[19]) != NULL;
}

/* Decode one server text frame into R, asserting the shape of its type. */
static void rec_parse(const uint8_t *data, size_t len, struct rec *r)
{
    char raw[200];
    snprintf(raw, sizeof raw, "event %.*s%s", (int)(len < 150 ? len : 150), (const char *)data,
             len > 150 ? "..." : "");
    ck_assert_msg(it_utf8_valid(data, len), "%s: not UTF-8", raw);
    struct jobj o;
    ck_assert_msg(jparse((const char *)data, len, &o) == 0, "%s: not a flat JSON object", raw);
    memset(r, 0, sizeof *r);
    r->online = -1;
    str_field(&o, "type", r->type, sizeof r->type, raw);
    int want;
    const char *t = r->type;
    if (strcmp(t, "message") == 0) {
        want = 7;
        r->id = num_field(&o, "id", raw);
        r->ts = (int64_t)num_field(&o, "ts", raw);
        str_field(&o, "room", r->room, sizeof r->room, raw);
        str_field(&o, "uid", r->uid, sizeof r->uid, raw);
        str_field(&o, "nick", r->nick, sizeof r->nick, raw);
        const struct jfield *f = jget(&o, "text");
        ck_assert_msg(f != NULL && f->str, "%s: no string text", raw);
        r->text = malloc(f->len + 1);
        memcpy(r->text, f->val, f->len + 1);
        r->text_len = f->len;
    } else if (strcmp(t, "join") == 0 || strcmp(t, "leave") == 0 || strcmp(t, "nick") == 0) {
        want = strcmp(t, "nick") == 0 ? 8 : 7;
        r->id = num_field(&o, "id", raw);
        r->ts = (int64_t)num_field(&o, "ts", raw);
        str_field(&o, "room", r->room, sizeof r->room, raw);
        str_field(&o, "uid", r->uid, sizeof r->uid, raw);
        str_field(&o, "nick", r->nick, sizeof r->nick, raw);
        if (want == 8)
            str_field(&o, "old", r->old, sizeof r->old, raw);
        r->online = (int)num_field(&o, "online", raw);
    } else if (strcmp(t, "welcome") == 0) {
        want = 6;
        str_field(&o, "uid", r->uid, sizeof r->uid, raw);
        str_field(&o, "nick", r->nick, sizeof r->nick, raw);
        str_field(&o, "room", r->room, sizeof r->room, raw);
        r->online = (int)num_field(&o, "online", raw);
        r->last_id = num_field(&o, "last_id", raw);
        ck_assert_msg(uuid4_ok(r->uid), "%s: uid is not a version 4 UUID", raw);
    } else if (strcmp(t, "history_end") == 0) {
        want = 1;
    } else if (strcmp(t, "gap") == 0) {
        want = 4;
        str_field(&o, "room", r->room, sizeof r->room, raw);
        r->from = num_field(&o, "from", raw);
        r->to = num_field(&o, "to", raw);
        ck_assert_msg(r->from >= 1 && r->from <= r->to, "%s: empty gap", raw);
    } else if (strcmp(t, "error") == 0) {
        want = 3;
        str_field(&o, "code", r->code, sizeof r->code, raw);
        char reason[512];
        str_field(&o, "reason", reason, sizeof reason, raw);
        ck_assert_msg(reason[0] != '\0', "%s: empty reason", raw);
    } else {
        ck_abort_msg("%s: unknown type", raw);
    }
    ck_assert_msg(o.n == want, "%s: %d fields, want %d", raw, o.n, want);
    if (r->id)
        ck_assert_msg(r->ts > 1600000000000LL, "%s: ts is not unix ms", raw);
    free(o.mem);
}

/* ---- members ------------------------------------------------------------------- */

struct peer {
    struct client c;
    char     uid[40], nick[136], room[40];
    int      online0;           /* from welcome */
    uint64_t last_id0;          /* from welcome */
    struct rec *r;
    size_t   n, cap;
    size_t   nmsg;              /* message events */
    int      ended;             /* history_end seen */
    int      closed;            /* close frame or EOF seen */
    int      close_code;        /* -1: EOF without a close frame */
};

static void peer_free(struct peer *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->r[i].text);
    free(p->r);
    p->r = NULL;
    p->n = p->cap = p->nmsg = 0;
    if (p->c.fd >= 0)
        cli_close(&p->c);
}

/*
 * Read one frame and record it: 1 recorded (or a ping answered), 0 the
 * connection ended (close frame or EOF), -1 nothing within TIMEOUT_MS.
 */
static int peer_pump(struct peer *p, int timeout_ms)
{
    if (p->closed)
        return 0;
    struct wsc_msg m;
    int r = wsc_recv(&p->c, &m, timeout_ms);
    if (r < 0)
        return -1;
    if (r == 0) {
        p->closed = 1;
        p->close_code = -1;
        return 0;
    }
    if (m.opcode == WS_OP_PING) {
        wsc_send(&p->c, WS_FIN | WS_OP_PONG, m.data, m.len);
        wsc_msg_free(&m);
        return 1;
    }
    if (m.opcode == WS_OP_PONG) {
        wsc_msg_free(&m);
        return 1;
    }
    if (m.opcode == WS_OP_CLOSE) {
        p->closed = 1;
        p->close_code = m.len >= 2 ? (m.data[0] << 8 | m.data[1]) : 0;
        wsc_msg_free(&m);
        return 0;
    }
    ck_assert_msg(m.opcode == WS_OP_TEXT && m.fin, "chat sent opcode %d fin %d", m.opcode, m.fin);
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 256;
        p->r = realloc(p->r, p->cap * sizeof *p->r);
        ck_assert_ptr_nonnull(p->r);
    }
    struct rec *e = &p->r[p->n];
    rec_parse(m.data, m.len, e);
    wsc_msg_free(&m);
    e->live = p->ended;
    if (p->n == 0)
        ck_assert_msg(strcmp(e->type, "welcome") == 0, "first event is %s, not welcome",
                      e->type);
    else
        ck_assert_msg(strcmp(e->type, "welcome") != 0, "a second welcome");
    if (strcmp(e->type, "history_end") == 0) {
        ck_assert_msg(!p->ended, "a second history_end");
        p->ended = 1;
    }
    if (strcmp(e->type, "message") == 0)
        p->nmsg++;
    p->n++;
    return 1;
}

typedef int (*pred_fn)(const struct peer *, const void *);

/* Pump until PRED holds, the connection ends or TIMEOUT_MS pass. */
static int peer_until(struct peer *p, pred_fn pred, const void *arg, int timeout_ms)
{
    int64_t end = mono_ms() + timeout_ms;
    while (!pred(p, arg)) {
        if (peer_pump(p, left_ms(end)) <= 0)
            return pred(p, arg);
    }
    return 1;
}

static int p_ended(const struct peer *p, const void *a) { (void)a; return p->ended; }
static int p_nmsg(const struct peer *p, const void *a) { return p->nmsg >= *(const size_t *)a; }
static int p_closed(const struct peer *p, const void *a) { (void)a; return p->closed; }

/* Index of the first message with TEXT, or -1. */
static long find_text(const struct peer *p, const char *text)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->r[i].text && strcmp(p->r[i].text, text) == 0)
            return (long)i;
    return -1;
}

static int p_text(const struct peer *p, const void *a) { return find_text(p, a) >= 0; }

/* An event of TYPE after index FROM (arg: struct want). */
struct want { const char *type; size_t from; const char *uid; };

static long find_event(const struct peer *p, const struct want *w)
{
    for (size_t i = w->from; i < p->n; i++)
        if (strcmp(p->r[i].type, w->type) == 0 && (w->uid == NULL || strcmp(p->r[i].uid, w->uid) == 0))
            return (long)i;
    return -1;
}

static int p_event(const struct peer *p, const void *a) { return find_event(p, a) >= 0; }

/* Wait for an event of TYPE (from UID if not NULL) after index FROM; its index. */
static size_t expect_event(struct peer *p, const char *type, size_t from, const char *uid,
                           int timeout_ms)
{
    struct want w = { type, from, uid };
    ck_assert_msg(peer_until(p, p_event, &w, timeout_ms),
                  "%s: no %s event%s%s within %d ms (closed %d, code %d)", p->nick, type,
                  uid ? " from " : "", uid ? uid : "", timeout_ms, p->closed, p->close_code);
    return (size_t)find_event(p, &w);
}

static void expect_text(struct peer *p, const char *text, int timeout_ms)
{
    ck_assert_msg(peer_until(p, p_text, text, timeout_ms),
                  "%s: message \"%.60s\" not received within %d ms (closed %d, code %d)",
                  p->nick, text, timeout_ms, p->closed, p->close_code);
}

/* Send the upgrade for PATH on a connected client and read up to history_end. */
static void peer_finish(struct peer *p, const char *path)
{
    int st = wsc_handshake(&p->c, path, NULL, NULL, 0);
    ck_assert_msg(st == 101, "upgrade of %s: status %d%s", path, st,
                  st == -3 ? " (the response does not start with an HTTP status line)" : "");
    ck_assert_msg(peer_until(p, p_ended, NULL, 5000), "%s: no history_end within 5 s "
                  "(%zu events, closed %d)", path, p->n, p->closed);
    const struct rec *w = &p->r[0];
    memcpy(p->uid, w->uid, sizeof p->uid);
    memcpy(p->nick, w->nick, sizeof p->nick);
    memcpy(p->room, w->room, sizeof p->room);
    p->online0 = w->online;
    p->last_id0 = w->last_id;
}

static void peer_connect(struct peer *p, int port)
{
    memset(p, 0, sizeof *p);
    ck_assert_msg(cli_connect(&p->c, port) == 0, "connect: %s", strerror(errno));
}

static void peer_open(struct peer *p, int port, const char *path)
{
    peer_connect(p, port);
    peer_finish(p, path);
}

/* JSON-quote TEXT (no surrounding quotes) into OUT. */
static size_t json_quote(char *out, const char *text, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)sprintf(out + o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    return o;
}

static void send_json(struct peer *p, const char *type, const char *key, const char *val,
                      size_t len)
{
    char *buf = malloc(len * 6 + 64);
    size_t n = (size_t)sprintf(buf, "{\"type\":\"%s\",\"%s\":\"", type, key);
    n += json_quote(buf + n, val, len);
    n += (size_t)sprintf(buf + n, "\"}");
    ck_assert_msg(wsc_send(&p->c, WS_FIN | WS_OP_TEXT, buf, n) == 0, "send: %s",
                  strerror(errno));
    free(buf);
}

/* Like say() but a send error is not a failure (the peer may be gone). */
static void try_say(struct peer *p, const char *text)
{
    char buf[256];
    size_t n = (size_t)snprintf(buf, sizeof buf, "{\"type\":\"message\",\"text\":\"%s\"}", text);
    if (wsc_send(&p->c, WS_FIN | WS_OP_TEXT, buf, n) < 0)
        ck_assert_msg(errno == EPIPE || errno == ECONNRESET, "send: %s", strerror(errno));
}

static void say(struct peer *p, const char *text)
{
    send_json(p, "message", "text", text, strlen(text));
}

static void say_plain(struct peer *p, const void *text, size_t len)
{
    ck_assert_msg(wsc_send(&p->c, WS_FIN | WS_OP_TEXT, text, len) == 0, "send: %s",
                  strerror(errno));
}

/* Live message events of P in order: ids into IDS (if not NULL); count. */
static size_t live_ids(const struct peer *p, uint64_t *ids)
{
    size_t k = 0;
    for (size_t i = 0; i < p->n; i++)
        if (p->r[i].live && strcmp(p->r[i].type, "message") == 0) {
            if (ids)
                ids[k] = p->r[i].id;
            k++;
        }
    return k;
}

/* Every id-carrying event of P strictly increases. */
static void expect_ids_increasing(const struct peer *p)
{
    uint64_t last = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (p->r[i].id == 0)
            continue;
        ck_assert_msg(p->r[i].id > last, "%s: event %zu (%s) id %llu after %llu", p->nick, i,
                      p->r[i].type, (unsigned long long)p->r[i].id, (unsigned long long)last);
        last = p->r[i].id;
    }
}

/* The newest message id P has seen (history or live), 0 if none. */
static uint64_t last_msg_id(const struct peer *p)
{
    for (size_t i = p->n; i > 0; i--)
        if (strcmp(p->r[i - 1].type, "message") == 0)
            return p->r[i - 1].id;
    return 0;
}

/*
 * Wait up to TIMEOUT_MS for input on any open peer of P[0..n), then record
 * every complete frame available. Returns how many peers have ended.
 */
static int pump_all(struct peer *p, int n, int timeout_ms)
{
    struct pollfd pfd[64];
    int map[64], k = 0;
    ck_assert_int_le(n, 64);
    for (int i = 0; i < n; i++)
        if (!p[i].closed) {
            pfd[k].fd = p[i].c.fd;
            pfd[k].events = POLLIN;
            pfd[k].revents = 0;
            map[k++] = i;
        }
    if (k > 0 && poll(pfd, (nfds_t)k, timeout_ms) > 0)
        for (int j = 0; j < k; j++)
            if (pfd[j].revents)
                while (peer_pump(&p[map[j]], 0) > 0)
                    ;
    int gone = 0;
    for (int i = 0; i < n; i++)
        gone += p[i].closed;
    return gone;
}

/* ---- /stats ------------------------------------------------------------------------ */

struct wstat { int pid; uint64_t ws; };

/* GET /stats; fills up to MAX workers; returns how many. Also *drops_slow total. */
static int get_stats(int port, struct wstat *w, int max, uint64_t *drops_slow)
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
    int64_t end = mono_ms() + 5000;
    while (cli_pending(&c) < want && cli_fill(&c, left_ms(end)) > 0)
        ;
    ck_assert_uint_ge(cli_pending(&c), want);
    char *body = malloc(want + 1);
    memcpy(body, c.rx + c.off, want);
    body[want] = '\0';
    cli_close(&c);

    int n = 0;
    char *p = strstr(body, "\"workers\":[");
    ck_assert_ptr_nonnull(p);
    char *stop = strstr(p, "],\"total\"");
    ck_assert_ptr_nonnull(stop);
    while ((p = strstr(p, "{\"slot\":")) != NULL && p < stop && n < max) {
        char *pid = strstr(p, "\"pid\":"), *ws = strstr(p, "\"ws_current\":");
        ck_assert(pid && ws && ws < stop);
        w[n].pid = atoi(pid + 6);
        w[n].ws = strtoull(ws + 13, NULL, 10);
        n++;
        p++;
    }
    if (drops_slow) {
        char *d = strstr(stop, "\"drops_slow\":");
        ck_assert_ptr_nonnull(d);
        *drops_slow = strtoull(d + 13, NULL, 10);
    }
    free(body);
    return n;
}

/* Workers with at least one WebSocket connection; total in *total. */
static int workers_with_ws(int port, uint64_t *total)
{
    struct wstat w[SRV_MAX_WORKERS];
    int n = get_stats(port, w, SRV_MAX_WORKERS, NULL), busy = 0;
    *total = 0;
    for (int i = 0; i < n; i++) {
        *total += w[i].ws;
        busy += w[i].ws > 0;
    }
    return busy;
}

/*
 * Open N members of PATH_FMT (%d = index), one after the other, each read
 * up to its history_end. The configs cap max_connections per worker below
 * N, so the members cannot all land on one worker whatever the kernel's
 * wake-up order.
 */
static void open_spread(struct peer *p, int n, int port, const char *path_fmt)
{
    for (int i = 0; i < n; i++) {
        char path[256];
        snprintf(path, sizeof path, path_fmt, i);
        peer_open(&p[i], port, path);
    }
}

/* ---- fan-out ---------------------------------------------------------------------- */

#define FAN_N 50
#define FAN_M 20

START_TEST(fanout_50_members_one_order)
{
    struct server s;
    srv_start(&s, "workers 3\nhistory_size 50\nmax_connections 24");
    static struct peer p[FAN_N];
    open_spread(p, FAN_N, s.port, "/chat/fan?nick=c%02d");
    for (int i = 0; i < FAN_N; i++) {
        char want[16];
        snprintf(want, sizeof want, "c%02d", i);
        ck_assert_str_eq(p[i].nick, want);
        ck_assert_str_eq(p[i].room, "fan");
        ck_assert_int_eq(p[i].online0, i + 1);
    }
    uint64_t total;
    int busy = workers_with_ws(s.port, &total);
    ck_assert_uint_eq(total, FAN_N);
    ck_assert_msg(busy >= 2, "all %d members landed on %d worker(s)", FAN_N, busy);

    /* Round-robin: message j of every member, then j + 1; JSON and plain. */
    for (int j = 0; j < FAN_M; j++)
        for (int i = 0; i < FAN_N; i++) {
            char t[32];
            snprintf(t, sizeof t, "c%02d-m%02d", i, j);
            if ((i + j) % 2)
                say(&p[i], t);
            else
                say_plain(&p[i], t, strlen(t));
        }

    size_t all = (size_t)FAN_N * FAN_M;
    int64_t end = mono_ms() + 30000;
    for (int i = 0; i < FAN_N; i++)
        ck_assert_msg(peer_until(&p[i], p_nmsg, &all, left_ms(end)),
                      "member %d got %zu of %zu messages", i, p[i].nmsg, all);

    static uint64_t ref[FAN_N * FAN_M], ids[FAN_N * FAN_M + 64];
    ck_assert_uint_eq(live_ids(&p[0], ref), all);
    for (int i = 0; i < FAN_N; i++) {
        expect_ids_increasing(&p[i]);
        ck_assert_uint_eq(live_ids(&p[i], NULL), all);
        ck_assert_uint_eq(live_ids(&p[i], ids), all);
        ck_assert_msg(memcmp(ids, ref, sizeof ref) == 0, "member %d saw another order", i);
        /* Each (sender, j) exactly once, a sender's messages in its order. */
        static int seen[FAN_N][FAN_M];
        int next[FAN_N];
        memset(seen, 0, sizeof seen);
        memset(next, 0, sizeof next);
        for (size_t k = 0; k < p[i].n; k++) {
            const struct rec *e = &p[i].r[k];
            if (strcmp(e->type, "message") != 0)
                continue;
            int a, b;
            ck_assert_msg(sscanf(e->text, "c%d-m%d", &a, &b) == 2 && a >= 0 && a < FAN_N &&
                          b >= 0 && b < FAN_M, "unexpected text %s", e->text);
            ck_assert_msg(!seen[a][b]++, "member %d got %s twice", i, e->text);
            ck_assert_msg(b == next[a]++, "member %d: %s out of order", i, e->text);
            ck_assert_str_eq(e->uid, p[a].uid);
            ck_assert_str_eq(e->nick, p[a].nick);
            ck_assert_str_eq(e->room, "fan");
        }
    }
    for (int i = 0; i < FAN_N; i++)
        peer_free(&p[i]);
    srv_stop(&s);
}
END_TEST

/* ---- history ---------------------------------------------------------------------- */

START_TEST(history_on_join)
{
    struct server s;
    srv_start(&s, "workers 2\nhistory_size 50\nrate_limit 0");
    struct peer a, x, b, d;
    peer_open(&a, s.port, "/chat/hist?nick=a");
    peer_open(&x, s.port, "/chat/other?nick=x");
    char t[32];
    for (int i = 0; i < 70; i++) {
        snprintf(t, sizeof t, "h%02d", i);
        say(&a, t);
        if (i % 14 == 0) {
            snprintf(t, sizeof t, "other%02d", i);
            say(&x, t);
        }
    }
    expect_text(&a, "h69", 10000);
    expect_text(&x, "other56", 10000);
    uint64_t id59 = a.r[find_text(&a, "h59")].id, id69 = a.r[find_text(&a, "h69")].id;

    peer_open(&b, s.port, "/chat/hist?nick=b");
    ck_assert_uint_ge(b.last_id0, id69);
    ck_assert_int_eq(b.online0, 2);
    /* Before history_end: exactly the last 50 messages of this room, in order. */
    size_t k = 0;
    for (size_t i = 1; i < b.n && !b.r[i].live; i++) {
        const struct rec *e = &b.r[i];
        if (strcmp(e->type, "history_end") == 0)
            break;
        ck_assert_msg(strcmp(e->type, "message") == 0, "%s event in the history", e->type);
        snprintf(t, sizeof t, "h%02zu", 20 + k);
        ck_assert_str_eq(e->text, t);
        ck_assert_str_eq(e->room, "hist");
        ck_assert_str_eq(e->uid, a.uid);
        k++;
    }
    ck_assert_uint_eq(k, 50);
    expect_ids_increasing(&b);
    /* The member's own join arrives live, after the history. */
    size_t j = expect_event(&b, "join", 0, b.uid, 5000);
    ck_assert(b.r[j].live);
    ck_assert_int_eq(b.r[j].online, 2);
    ck_assert_uint_gt(b.r[j].id, id69);

    /* since= inside the history: exactly what followed, no gap. */
    char path[96];
    snprintf(path, sizeof path, "/chat/hist?since=%llu", (unsigned long long)id59);
    peer_open(&d, s.port, path);
    k = 0;
    for (size_t i = 1; i < d.n && !d.r[i].live; i++) {
        if (strcmp(d.r[i].type, "history_end") == 0)
            break;
        ck_assert_msg(strcmp(d.r[i].type, "message") == 0, "%s before history_end",
                      d.r[i].type);
        snprintf(t, sizeof t, "h%02zu", 60 + k);
        ck_assert_str_eq(d.r[i].text, t);
        k++;
    }
    ck_assert_uint_eq(k, 10);
    peer_free(&a);
    peer_free(&x);
    peer_free(&b);
    peer_free(&d);
    srv_stop(&s);
}
END_TEST

/* ---- since= resume -------------------------------------------------------------- */

/*
 * history_size smaller than what the client missed: a worker's history
 * index only holds the last history_size positions of a room, so this
 * resume is answered by walking the ring; a plain join still gets exactly
 * the last history_size messages.
 */
START_TEST(resume_beyond_history_size)
{
    struct server s;
    srv_start(&s, "workers 2\nhistory_size 5");
    struct peer a, b, c;
    peer_open(&a, s.port, "/chat/deep?nick=a");
    char t[32];
    for (int i = 0; i < 20; i++) {
        snprintf(t, sizeof t, "d%02d", i);
        say(&a, t);
    }
    expect_text(&a, "d19", 10000);
    uint64_t since = a.r[find_text(&a, "d02")].id;

    char path[96];
    snprintf(path, sizeof path, "/chat/deep?nick=b&since=%llu", (unsigned long long)since);
    peer_open(&b, s.port, path);
    size_t k = 0;
    for (size_t i = 1; i < b.n && strcmp(b.r[i].type, "history_end") != 0; i++) {
        ck_assert_str_eq(b.r[i].type, "message");
        snprintf(t, sizeof t, "d%02zu", 3 + k);
        ck_assert_str_eq(b.r[i].text, t);
        k++;
    }
    ck_assert_uint_eq(k, 17);

    peer_open(&c, s.port, "/chat/deep?nick=c");
    k = 0;
    for (size_t i = 1; i < c.n && strcmp(c.r[i].type, "history_end") != 0; i++) {
        snprintf(t, sizeof t, "d%02zu", 15 + k);
        ck_assert_str_eq(c.r[i].text, t);
        k++;
    }
    ck_assert_uint_eq(k, 5);
    peer_free(&a);
    peer_free(&b);
    peer_free(&c);
    srv_stop(&s);
}
END_TEST

/* history_size above the per-worker index cap (1024): a join walks the ring. */
START_TEST(history_larger_than_index)
{
    struct server s;
    srv_start(&s, "workers 2\nhistory_size 1500\nrate_limit 0");
    struct peer a, b;
    peer_open(&a, s.port, "/chat/big?nick=a");
    char t[32];
    for (int i = 0; i < 1100; i++) {
        snprintf(t, sizeof t, "h%04d", i);
        say(&a, t);
    }
    expect_text(&a, "h1099", 20000);
    peer_open(&b, s.port, "/chat/big?nick=b");
    size_t k = 0;
    for (size_t i = 1; i < b.n && strcmp(b.r[i].type, "history_end") != 0; i++) {
        snprintf(t, sizeof t, "h%04zu", k);
        ck_assert_str_eq(b.r[i].text, t);
        k++;
    }
    ck_assert_uint_eq(k, 1100);
    peer_free(&a);
    peer_free(&b);
    srv_stop(&s);
}
END_TEST

START_TEST(resume_no_gap)
{
    struct server s;
    srv_start(&s, "workers 2\nhistory_size 50\nrate_limit 0");
    struct peer a, b, b2;
    peer_open(&a, s.port, "/chat/res?nick=a");
    peer_open(&b, s.port, "/chat/res?nick=b");
    char t[32];
    for (int i = 0; i < 30; i++) {
        snprintf(t, sizeof t, "m%02d", i);
        say(&a, t);
    }
    /* B has seen up to m14 when its connection drops. */
    expect_text(&b, "m14", 10000);
    uint64_t seen = b.r[find_text(&b, "m14")].id;
    ck_assert_uint_eq(last_msg_id(&b), seen);
    cli_abort(&b.c);
    b.c.fd = -1;
    for (int i = 30; i < 45; i++) {
        snprintf(t, sizeof t, "m%02d", i);
        say(&a, t);
    }
    expect_text(&a, "m44", 10000);

    char path[96];
    snprintf(path, sizeof path, "/chat/res?nick=b&since=%llu", (unsigned long long)seen);
    peer_open(&b2, s.port, path);
    size_t k = 0;
    for (size_t i = 1; i < b2.n; i++) {
        if (strcmp(b2.r[i].type, "history_end") == 0)
            break;
        ck_assert_msg(strcmp(b2.r[i].type, "message") == 0, "%s before history_end",
                      b2.r[i].type);
        snprintf(t, sizeof t, "m%02zu", 15 + k);
        ck_assert_str_eq(b2.r[i].text, t);
        ck_assert_uint_gt(b2.r[i].id, seen);
        k++;
    }
    ck_assert_uint_eq(k, 30);
    say(&a, "live");
    expect_text(&b2, "live", 5000);
    /* Nothing twice across both sessions, nothing missed. */
    for (int i = 0; i < 45; i++) {
        snprintf(t, sizeof t, "m%02d", i);
        int n1 = 0, n2 = 0;
        for (size_t q = 0; q < b.n; q++)
            n1 += b.r[q].text && strcmp(b.r[q].text, t) == 0 && b.r[q].id <= seen;
        for (size_t q = 0; q < b2.n; q++)
            n2 += b2.r[q].text && strcmp(b2.r[q].text, t) == 0;
        ck_assert_msg(n1 + n2 == 1, "%s seen %d + %d times", t, n1, n2);
    }
    expect_ids_increasing(&b2);
    peer_free(&a);
    peer_free(&b);
    peer_free(&b2);
    srv_stop(&s);
}
END_TEST

START_TEST(resume_with_gap)
{
    struct server s;
    /* Without the journal, which would serve what the ring lost (check_history.c). */
    srv_start(&s, "workers 2\nhistory_size 50\nring_size 1m\nrate_limit 0\nhistory_file off");
    struct peer a, b, c;
    peer_open(&a, s.port, "/chat/gap?nick=a");
    /* ~4 KB messages: 400 of them lap a 1 MiB ring more than once. */
    static char text[4000];
    for (int i = 0; i < 400; i++) {
        memset(text, 'a' + i % 26, sizeof text - 1);
        int n = snprintf(text, 16, "g%03d", i);
        text[n] = ' ';
        text[sizeof text - 1] = '\0';
        say(&a, text);
    }
    size_t all = 400;
    ck_assert_msg(peer_until(&a, p_nmsg, &all, 20000), "a got %zu of 400", a.nmsg);

    peer_open(&b, s.port, "/chat/gap?since=1");
    /* welcome, gap from 2, then the oldest messages still held, in order. */
    ck_assert_msg(b.n >= 3 && strcmp(b.r[1].type, "gap") == 0, "second event is %s, not gap",
                  b.n > 1 ? b.r[1].type : "nothing");
    const struct rec *g = &b.r[1];
    ck_assert_str_eq(g->room, "gap");
    ck_assert_uint_eq(g->from, 2);
    ck_assert_str_eq(b.r[2].type, "message");
    ck_assert_uint_eq(b.r[2].id, g->to + 1);
    int first;
    ck_assert_int_eq(sscanf(b.r[2].text, "g%d", &first), 1);
    ck_assert_msg(first > 0, "the ring still holds g000: nothing was lapped");
    size_t k = 0;
    uint64_t prev = 0;
    for (size_t i = 2; i < b.n && strcmp(b.r[i].type, "history_end") != 0; i++) {
        int v;
        ck_assert_str_eq(b.r[i].type, "message");
        ck_assert_int_eq(sscanf(b.r[i].text, "g%d", &v), 1);
        ck_assert_int_eq(v, first + (int)k);
        ck_assert_uint_eq(strlen(b.r[i].text), sizeof text - 1);
        if (prev)
            ck_assert_uint_eq(b.r[i].id, prev + 1);
        prev = b.r[i].id;
        k++;
    }
    ck_assert_int_eq(first + (int)k, 400);

    /* since= within what the ring still holds: no gap. */
    char path[64];
    snprintf(path, sizeof path, "/chat/gap?since=%llu", (unsigned long long)(prev - 3));
    peer_open(&c, s.port, path);
    ck_assert_str_eq(c.r[1].type, "message");
    ck_assert_uint_eq(c.r[1].id, prev - 2);
    ck_assert_str_eq(c.r[4].type, "history_end");
    peer_free(&a);
    peer_free(&b);
    peer_free(&c);
    srv_stop(&s);
}
END_TEST

/* ---- presence ------------------------------------------------------------------------ */

#define PRES_N 9

START_TEST(presence_counts_across_workers)
{
    struct server s;
    srv_start(&s, "workers 3\nhistory_size 50\nmax_connections 4");
    static struct peer p[PRES_N];
    for (int k = 0; k < PRES_N; k++) {
        char path[64];
        snprintf(path, sizeof path, "/chat/pres?nick=p%d", k);
        peer_open(&p[k], s.port, path);
        ck_assert_int_eq(p[k].online0, k + 1);
        /* Everyone in the room, the newcomer too, sees the join with the count. */
        for (int i = 0; i <= k; i++) {
            size_t at = expect_event(&p[i], "join", 0, p[k].uid, 5000);
            ck_assert_int_eq(p[i].r[at].online, k + 1);
            ck_assert_str_eq(p[i].r[at].nick, p[k].nick);
            ck_assert_str_eq(p[i].r[at].room, "pres");
        }
    }
    uint64_t total;
    ck_assert_msg(workers_with_ws(s.port, &total) >= 2, "presence members on one worker");
    ck_assert_uint_eq(total, PRES_N);

    /* Leaves from the newest: the rest see each with the shrinking count. */
    for (int k = PRES_N - 1; k >= 1; k--) {
        size_t mark[PRES_N];
        for (int i = 0; i < k; i++)
            mark[i] = p[i].n;
        char uid[40];
        memcpy(uid, p[k].uid, sizeof uid);
        if (k % 2)
            wsc_send_close(&p[k].c, 1000, "bye", 3);
        peer_free(&p[k]);
        for (int i = 0; i < k; i++) {
            size_t at = expect_event(&p[i], "leave", mark[i], uid, 5000);
            ck_assert_int_eq(p[i].r[at].online, k);
        }
    }
    /* Each survivor's presence counts moved by exactly one per event. */
    int cnt = 0;
    for (size_t i = 0; i < p[0].n; i++) {
        const struct rec *e = &p[0].r[i];
        if (strcmp(e->type, "join") == 0)
            ck_assert_int_eq(e->online, ++cnt);
        else if (strcmp(e->type, "leave") == 0)
            ck_assert_int_eq(e->online, --cnt);
    }
    ck_assert_int_eq(cnt, 1);
    expect_ids_increasing(&p[0]);
    peer_free(&p[0]);
    srv_stop(&s);
}
END_TEST

/* ---- rooms ------------------------------------------------------------------------------ */

START_TEST(rooms_isolated)
{
    struct server s;
    srv_start(&s, "workers 2\nhistory_size 50");
    struct peer p[4];
    open_spread(p, 2, s.port, "/chat/a");
    peer_open(&p[2], s.port, "/chat/b");
    peer_open(&p[3], s.port, "/chat");
    ck_assert_str_eq(p[3].room, "lobby");
    ck_assert_int_eq(p[2].online0, 1);
    char t[32];
    for (int i = 0; i < 10; i++) {
        snprintf(t, sizeof t, "in-a-%d", i);
        say(&p[i % 2], t);
    }
    expect_text(&p[0], "in-a-9", 5000);
    expect_text(&p[1], "in-a-9", 5000);
    /* Published after every room-a message: ids order the streams. */
    say(&p[2], "b-done");
    say(&p[3], "lobby-done");
    expect_text(&p[2], "b-done", 5000);
    expect_text(&p[3], "lobby-done", 5000);
    static const char *const rooms[] = { "a", "a", "b", "lobby" };
    for (int i = 0; i < 4; i++)
        for (size_t k = 1; k < p[i].n; k++)
            if (p[i].r[k].room[0])
                ck_assert_msg(strcmp(p[i].r[k].room, rooms[i]) == 0, "member of %s got a %s "
                              "event of room %s", rooms[i], p[i].r[k].type, p[i].r[k].room);
    ck_assert_int_eq(find_text(&p[2], "in-a-0"), -1);
    ck_assert_int_eq(find_text(&p[3], "in-a-0"), -1);
    ck_assert_int_eq(find_text(&p[0], "b-done"), -1);
    ck_assert_uint_eq(p[2].nmsg, 1);
    ck_assert_uint_eq(p[3].nmsg, 1);
    for (int i = 0; i < 4; i++)
        peer_free(&p[i]);
    srv_stop(&s);
}
END_TEST

START_TEST(bad_room_404)
{
    struct server s;
    srv_start(&s, "workers 2");
    static const char *const bad[] = {
        "/chat/bad.room", "/chat/", "/chat/a/b", "/chat/a%20b", "/chat/caf%C3%A9",
        "/chat/abcdefghijklmnopqrstuvwxyzABCDEFG",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct client c;
        ck_assert_int_eq(cli_connect(&c, s.port), 0);
        int st = wsc_handshake(&c, bad[i], NULL, NULL, 0);
        ck_assert_msg(st == 404, "%s: status %d, want 404", bad[i], st);
        cli_close(&c);
    }
    struct peer p;
    peer_open(&p, s.port, "/chat/abcdefghijklmnopqrstuvwxyzABCDEF");
    ck_assert_str_eq(p.room, "abcdefghijklmnopqrstuvwxyzABCDEF");
    peer_free(&p);
    peer_open(&p, s.port, "/chat/A-z_9?nick=q");
    ck_assert_str_eq(p.room, "A-z_9");
    peer_free(&p);
    srv_stop(&s);
}
END_TEST

/* ---- nick ------------------------------------------------------------------------------- */

START_TEST(nick_change)
{
    struct server s;
    srv_start(&s, "workers 2\nhistory_size 50");
    struct peer a, b, c;
    peer_open(&a, s.port, "/chat/n?nick=alice");
    peer_open(&b, s.port, "/chat/n?nick=J%C3%BCrgen+K");
    ck_assert_str_eq(a.nick, "alice");
    ck_assert_str_eq(b.nick, "J\xC3\xBCrgen K");
    static const char newnick[] = "Alic\xC3\xA9 \xF0\x9F\x99\x82";
    send_json(&a, "nick", "nick", newnick, sizeof newnick - 1);
    struct peer *both[] = { &a, &b };
    for (int i = 0; i < 2; i++) {
        size_t at = expect_event(both[i], "nick", 0, a.uid, 5000);
        const struct rec *e = &both[i]->r[at];
        ck_assert_str_eq(e->nick, newnick);
        ck_assert_str_eq(e->old, "alice");
        ck_assert_str_eq(e->room, "n");
        ck_assert_int_eq(e->online, 2);
    }
    say(&a, "renamed");
    expect_text(&b, "renamed", 5000);
    ck_assert_str_eq(b.r[find_text(&b, "renamed")].nick, newnick);

    /* Refused nicks: an error, the old nick stays. */
    size_t mark = a.n;
    send_json(&a, "nick", "nick", "", 0);
    size_t at = expect_event(&a, "error", mark, NULL, 5000);
    ck_assert_str_eq(a.r[at].code, "bad_nick");
    send_json(&a, "nick", "nick", "a\x07" "b", 3);
    at = expect_event(&a, "error", at + 1, NULL, 5000);
    ck_assert_str_eq(a.r[at].code, "bad_nick");
    send_json(&a, "nick", "nick", "abcdefghijklmnopqrstuvwxyz0123456", 33);
    at = expect_event(&a, "error", at + 1, NULL, 5000);
    ck_assert_str_eq(a.r[at].code, "bad_nick");
    say(&a, "still");
    expect_text(&b, "still", 5000);
    ck_assert_str_eq(b.r[find_text(&b, "still")].nick, newnick);

    /* Bad query values: welcome with a guest nick, then the errors in order. */
    peer_open(&c, s.port, "/chat/n?nick=%00&since=abc");
    char guest[16];
    snprintf(guest, sizeof guest, "guest-%.4s", c.uid);
    ck_assert_str_eq(c.nick, guest);
    ck_assert_str_eq(c.r[1].type, "error");
    ck_assert_str_eq(c.r[1].code, "bad_nick");
    ck_assert_str_eq(c.r[2].type, "error");
    ck_assert_str_eq(c.r[2].code, "bad_since");
    peer_free(&a);
    peer_free(&b);
    peer_free(&c);
    srv_stop(&s);
}
END_TEST

/* ---- error events --------------------------------------------------------------------------- */

START_TEST(error_events_keep_connection)
{
    struct server s;
    srv_start(&s, "workers 2\nhistory_size 50\nmax_text 4k");
    struct peer a, b;
    peer_open(&a, s.port, "/chat/err?nick=a");
    peer_open(&b, s.port, "/chat/err?nick=b");
    static char big[4097];
    memset(big, 'x', sizeof big);
#define LIT(x) x, sizeof(x) - 1
    struct { int op; const char *data; size_t len; const char *code; } bad[] = {
        { WS_OP_TEXT, LIT(""), "empty" },
        { WS_OP_TEXT, LIT("{\"type\":\"message\",\"text\":\"\"}"), "empty" },
        { WS_OP_TEXT, big, 4097, "too_long" },
        { WS_OP_BIN, LIT("abc"), "binary" },
        { WS_OP_BIN, LIT(""), "binary" },
        { WS_OP_TEXT, LIT("{\"type\":\"shout\",\"text\":\"x\"}"), "bad_type" },
        { WS_OP_TEXT, LIT("{\"text\":\"x\"}"), "bad_type" },
        { WS_OP_TEXT, LIT("{\"type\":\"message\"}"), "bad_request" },
        { WS_OP_TEXT, LIT("{\"type\":\"message\",\"text\":7}"), "bad_request" },
    };
#undef LIT
    size_t at = a.n;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(wsc_send(&a.c, WS_FIN | bad[i].op, bad[i].data, bad[i].len), 0);
        at = expect_event(&a, "error", at, NULL, 5000);
        ck_assert_msg(strcmp(a.r[at].code, bad[i].code) == 0, "case %zu: code %s, want %s",
                      i, a.r[at].code, bad[i].code);
        at++;
    }
    /* Too long as JSON too (the limit is on the text, not the frame). */
    send_json(&a, "message", "text", big, 4097);
    at = expect_event(&a, "error", at, NULL, 5000);
    ck_assert_str_eq(a.r[at].code, "too_long");
    /* Exactly max_text is fine; JSON-looking plain text is kept byte for byte. */
    send_json(&a, "message", "text", big, 4096);
    static const char looks[] = "{\"type\":\"message\",\"text\":\"x\"";
    say_plain(&a, looks, sizeof looks - 1);
    say(&a, "ok-final");
    expect_text(&b, "ok-final", 5000);
    expect_text(&a, "ok-final", 5000);
    ck_assert(!a.closed && !b.closed);

    /* B saw exactly the three accepted messages after its history, no errors. */
    const char *seen[3];
    size_t k = 0;
    for (size_t i = 0; i < b.n; i++) {
        ck_assert_str_ne(b.r[i].type, "error");
        if (strcmp(b.r[i].type, "message") == 0) {
            ck_assert_uint_lt(k, 3);
            seen[k++] = b.r[i].text;
        }
    }
    ck_assert_uint_eq(k, 3);
    ck_assert_uint_eq(strlen(seen[0]), 4096);
    ck_assert_str_eq(seen[1], looks);
    ck_assert_str_eq(seen[2], "ok-final");
    /* A's only errors are the ones it caused. */
    size_t errs = 0;
    for (size_t i = 0; i < a.n; i++)
        errs += strcmp(a.r[i].type, "error") == 0;
    ck_assert_uint_eq(errs, sizeof bad / sizeof bad[0] + 1);
    peer_free(&a);
    peer_free(&b);
    srv_stop(&s);
}
END_TEST

/*
 * rate_limit 1, burst 3: the first three messages go out, the next ones are
 * refused with rate_limited (the member stays), and a member that keeps
 * flooding past 4 x burst refusals is closed with 1008. The other member
 * sees only what was accepted.
 */
START_TEST(rate_limit_refuses_then_closes)
{
    struct server s;
    srv_start(&s, "workers 1\nhistory_size 50\nrate_limit 1\nrate_limit_burst 3");
    struct peer a, b;
    peer_open(&a, s.port, "/chat/rl?nick=a");
    peer_open(&b, s.port, "/chat/rl?nick=b");
    say(&a, "ok-1");
    say(&a, "ok-2");
    say(&a, "ok-3");
    say(&a, "over-1");
    size_t at = expect_event(&a, "error", 0, NULL, 5000);
    ck_assert_str_eq(a.r[at].code, "rate_limited");
    ck_assert(!a.closed);
    expect_text(&b, "ok-3", 5000);
    /* 4 x 3 = 12 refusals are tolerated; the 13th closes. */
    char text[32];
    for (int i = 2; i <= 40 && !a.closed; i++) {
        snprintf(text, sizeof text, "over-%d", i);
        try_say(&a, text);
        peer_pump(&a, 0);
    }
    ck_assert_msg(peer_until(&a, p_closed, NULL, 5000), "flooding member not closed");
    ck_assert_int_eq(a.close_code, 1008);
    /* B is unaffected and saw the three accepted messages; at most one token
     * can have been earned back while the test ran (rate 1/s). */
    say(&b, "b-after");
    expect_text(&b, "b-after", 5000);
    size_t over = 0, ok = 0;
    for (size_t i = 0; i < b.n; i++) {
        if (strcmp(b.r[i].type, "message") != 0)
            continue;
        ok += strncmp(b.r[i].text, "ok-", 3) == 0;
        over += strncmp(b.r[i].text, "over-", 5) == 0;
    }
    ck_assert_uint_eq(ok, 3);
    ck_assert_uint_le(over, 2);
    peer_free(&a);
    peer_free(&b);
    srv_stop(&s);
}
END_TEST

/* ---- SIGKILL of a worker ------------------------------------------------------------------- */

#define KILL_N 12

START_TEST(worker_sigkill_room_survives)
{
    struct server s;
    srv_start(&s, "workers 3\nhistory_size 50\nmax_connections 5");
    snprintf(s.alert_ok, sizeof s.alert_ok, "killed by signal");
    static struct peer p[KILL_N];
    open_spread(p, KILL_N, s.port, "/chat/kill?nick=k%02d");
    /* Every member sees every join, so all joins are drained everywhere. */
    for (int i = 0; i < KILL_N; i++)
        expect_event(&p[i], "join", 0, p[KILL_N - 1].uid, 5000);

    struct wstat w[SRV_MAX_WORKERS];
    int nw = get_stats(s.port, w, SRV_MAX_WORKERS, NULL);
    int victim = -1;
    for (int i = 0; i < nw; i++)
        if (w[i].ws > 0 && w[i].ws < KILL_N && (victim < 0 || w[i].ws < w[victim].ws))
            victim = i;
    ck_assert_msg(victim >= 0, "members not spread over the workers");
    int victims = (int)w[victim].ws;

    /* Publish around the kill, without waiting for anything. */
    char t[32];
    for (int i = 0; i < KILL_N; i++) {
        snprintf(t, sizeof t, "pre-%02d", i);
        say(&p[i], t);
    }
    ck_assert_int_eq(kill(w[victim].pid, SIGKILL), 0);
    for (int i = 0; i < KILL_N; i++) {
        snprintf(t, sizeof t, "post-%02d", i);
        try_say(&p[i], t);      /* may hit a dead socket */
    }
    ck_assert(WAIT_FOR(!it_proc_alive(w[victim].pid), 5000));

    /* The victims' connections end; everyone else stays. */
    int64_t end = mono_ms() + 5000;
    int gone = 0;
    while ((gone = pump_all(p, KILL_N, left_ms(end))) < victims && mono_ms() < end)
        ;
    ck_assert_msg(gone == victims, "%d connections ended, want %d", gone, victims);
    int speaker = -1;
    for (int i = 0; i < KILL_N; i++)
        if (!p[i].closed) {
            speaker = i;
            break;
        }
    ck_assert_int_ge(speaker, 0);

    /* Within a second, a new message reaches every survivor. */
    int64_t t0 = mono_ms();
    say(&p[speaker], "after-kill");
    for (int i = 0; i < KILL_N; i++)
        if (!p[i].closed)
            expect_text(&p[i], "after-kill", left_ms(t0 + 1000));
    /*
     * Survivors' post-kill messages were sent on other connections than
     * after-kill, so the server may order some after it: wait for them too
     * before comparing the sequences.
     */
    for (int i = 0; i < KILL_N; i++)
        for (int j = 0; j < KILL_N && !p[i].closed; j++)
            if (!p[j].closed) {
                snprintf(t, sizeof t, "post-%02d", j);
                expect_text(&p[i], t, left_ms(t0 + 3000));
            }
    /* One order for all survivors, ids rising, nothing twice. */
    static uint64_t ref[256], ids[256];
    size_t nref = 0;
    for (int i = 0; i < KILL_N; i++) {
        if (p[i].closed)
            continue;
        expect_ids_increasing(&p[i]);
        ck_assert_uint_le(live_ids(&p[i], NULL), 256);
        size_t n = live_ids(&p[i], ids);
        if (nref == 0) {
            nref = n;
            memcpy(ref, ids, n * sizeof *ids);
        }
        ck_assert_uint_eq(n, nref);
        ck_assert_msg(memcmp(ids, ref, n * sizeof *ids) == 0, "survivor %d: other order", i);
        for (size_t a = 0; a < p[i].n; a++)
            for (size_t b = a + 1; b < p[i].n; b++)
                if (p[i].r[a].text && p[i].r[b].text)
                    ck_assert_msg(strcmp(p[i].r[a].text, p[i].r[b].text) != 0,
                                  "survivor %d got %s twice", i, p[i].r[a].text);
        /* Survivors' own messages, before and after the kill, all made it. */
        for (int j = 0; j < KILL_N; j++)
            if (!p[j].closed) {
                snprintf(t, sizeof t, "pre-%02d", j);
                ck_assert_msg(find_text(&p[i], t) >= 0, "survivor %d lacks %s", i, t);
                snprintf(t, sizeof t, "post-%02d", j);
                ck_assert_msg(find_text(&p[i], t) >= 0, "survivor %d lacks %s", i, t);
            }
    }
    /* The master replaced the worker; a newcomer sees the room's history. */
    ck_assert(srv_wait_worker_count(&s, 3, 5000));
    struct peer late;
    peer_open(&late, s.port, "/chat/kill?since=0");
    ck_assert_int_ge(find_text(&late, "after-kill"), 0);
    peer_free(&late);
    for (int i = 0; i < KILL_N; i++)
        peer_free(&p[i]);
    srv_stop(&s);
}
END_TEST

/* ---- SIGHUP ------------------------------------------------------------------------------- */

/*
 * Default reload: idle members move to the new workers with their sockets.
 * A publisher keeps talking through the reload; every member, moved or not,
 * gets every message exactly once, in one order, and nobody is closed.
 */
START_TEST(sighup_hands_over_members)
{
    enum { M = 6, MSGS = 40 };
    struct server s;
    srv_start(&s, "workers 2\nhistory_size 50\nmax_connections 4");
    static struct peer p[M];
    open_spread(p, M, s.port, "/chat/move?nick=m%d");
    for (int i = 0; i < M; i++)
        expect_event(&p[i], "join", 0, p[M - 1].uid, 5000);
    pid_t old[SRV_MAX_WORKERS];
    int nold = srv_workers(&s, old, SRV_MAX_WORKERS);

    char t[32];
    for (int k = 0; k < MSGS; k++) {
        snprintf(t, sizeof t, "move-%02d", k);
        say(&p[k % M], t);
        if (k == MSGS / 2)
            ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
        pump_all(p, M, 20);
    }
    for (int i = 0; i < M; i++) {
        expect_text(&p[i], "move-39", 10000);
        ck_assert_msg(!p[i].closed, "member %d was closed (%d)", i, p[i].close_code);
    }
    int64_t end = mono_ms() + s.shutdown_ms + 2000;
    for (int i = 0; i < nold; i++)
        while (kill(old[i], 0) == 0 && mono_ms() < end)
            pump_all(p, M, 50);
    for (int i = 0; i < nold; i++)
        ck_assert_msg(kill(old[i], 0) != 0, "old worker %d still alive", (int)old[i]);

    /* After the old workers are gone, the moved sockets still carry the room. */
    say(&p[0], "after-move");
    static uint64_t ref[256], ids[256];
    size_t nref = 0;
    for (int i = 0; i < M; i++) {
        expect_text(&p[i], "after-move", 5000);
        ck_assert(!p[i].closed);
        expect_ids_increasing(&p[i]);
        ck_assert_uint_le(live_ids(&p[i], NULL), 256);
        size_t n = live_ids(&p[i], ids);
        if (i == 0) {
            nref = n;
            memcpy(ref, ids, n * sizeof *ids);
        }
        ck_assert_uint_eq(n, MSGS + 1);
        ck_assert_uint_eq(n, nref);
        ck_assert_msg(memcmp(ids, ref, n * sizeof *ids) == 0, "member %d: other order", i);
        for (int k = 0; k < MSGS; k++) {
            snprintf(t, sizeof t, "move-%02d", k);
            ck_assert_msg(find_text(&p[i], t) >= 0, "member %d lacks %s", i, t);
        }
    }
    for (int i = 0; i < M; i++)
        peer_free(&p[i]);
    srv_stop(&s);
}
END_TEST

#define HUP_N 4

START_TEST(sighup_history_and_resume)
{
    struct server s;
    srv_start(&s, "workers 2\nhistory_size 50\nreload_handoff off");
    static struct peer p[HUP_N], q[HUP_N];
    open_spread(p, HUP_N, s.port, "/chat/hup?nick=u%d");
    char t[32];
    for (int j = 0; j < 5; j++)
        for (int i = 0; i < HUP_N; i++) {
            snprintf(t, sizeof t, "before-%d-%d", i, j);
            say(&p[i], t);
        }
    size_t all = HUP_N * 5;
    for (int i = 0; i < HUP_N; i++)
        ck_assert(peer_until(&p[i], p_nmsg, &all, 10000));

    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    /* Every old member is closed with 1012 (service restart). */
    for (int i = 0; i < HUP_N; i++) {
        ck_assert_msg(peer_until(&p[i], p_closed, NULL, s.shutdown_ms + 5000),
                      "member %d not closed after SIGHUP", i);
        ck_assert_msg(p[i].close_code == 1012, "member %d closed with %d, want 1012", i,
                      p[i].close_code);
    }

    /*
     * A newcomer with since=0 sees every earlier message, no gap. It waits
     * until both old workers have stopped accepting: one still accepting
     * (its SIGUSR2 not handled yet) would close it with 1012 too.
     */
    ck_assert(WAIT_FOR(it_file_count(s.log, "stopping:") >= 2, s.shutdown_ms + 5000));
    struct peer n;
    peer_open(&n, s.port, "/chat/hup?since=0&nick=new");
    size_t k = 0;
    for (size_t i = 1; i < n.n && !n.r[i].live; i++) {
        if (strcmp(n.r[i].type, "history_end") == 0)
            break;
        ck_assert_str_eq(n.r[i].type, "message");
        k++;
    }
    ck_assert_uint_eq(k, HUP_N * 5);
    for (int i = 0; i < HUP_N; i++)
        for (int j = 0; j < 5; j++) {
            snprintf(t, sizeof t, "before-%d-%d", i, j);
            ck_assert_msg(find_text(&n, t) >= 0, "history after reload lacks %s", t);
        }
    for (int j = 0; j < 5; j++) {
        snprintf(t, sizeof t, "after-%d", j);
        say(&n, t);
    }
    expect_text(&n, "after-4", 5000);

    /* The old members resume from their last id: exactly what they missed. */
    for (int i = 0; i < HUP_N; i++) {
        char path[96];
        snprintf(path, sizeof path, "/chat/hup?nick=u%d&since=%llu", i,
                 (unsigned long long)last_msg_id(&p[i]));
        peer_open(&q[i], s.port, path);
        ck_assert_msg(strcmp(q[i].r[1].type, "gap") != 0, "member %d got a gap", i);
        for (int j = 0; j < 5; j++) {
            snprintf(t, sizeof t, "after-%d", j);
            ck_assert_msg(find_text(&q[i], t) >= 0, "member %d missed %s", i, t);
        }
        for (size_t x = 0; x < q[i].n; x++)
            if (q[i].r[x].text) {
                ck_assert_msg(find_text(&p[i], q[i].r[x].text) < 0, "member %d got %s twice",
                              i, q[i].r[x].text);
                ck_assert_uint_gt(q[i].r[x].id, last_msg_id(&p[i]));
            }
        ck_assert_uint_eq(q[i].nmsg, 5);
    }
    pid_t wk[SRV_MAX_WORKERS];
    ck_assert(srv_wait_worker_count(&s, 2, s.shutdown_ms + 5000));
    ck_assert_int_eq(srv_workers(&s, wk, SRV_MAX_WORKERS), 2);
    peer_free(&n);
    for (int i = 0; i < HUP_N; i++) {
        peer_free(&p[i]);
        peer_free(&q[i]);
    }
    srv_stop(&s);
}
END_TEST

/* ---- slow reader ------------------------------------------------------------------------------ */

START_TEST(slow_reader_cut_with_1013)
{
    struct server s;
    srv_start(&s, "workers 2\nhistory_size 50\nmax_send_queue 64k\nclose_timeout 20s\nrate_limit 0");
    struct peer slow, r, f;
    peer_open(&slow, s.port, "/chat/slow?nick=slow");
    peer_open(&r, s.port, "/chat/slow?nick=reader");
    peer_open(&f, s.port, "/chat/slow?nick=flood");

    static char text[4001];
    uint64_t drops = 0;
    int sent = 0, after = -1;
    int64_t end = mono_ms() + 40000;
    /* Batches small enough for the reader never to lag 64 KiB behind. */
    while (sent < 2000 && mono_ms() < end) {
        for (int b = 0; b < 8; b++, sent++) {
            memset(text, 'a' + sent % 26, sizeof text - 1);
            int n = snprintf(text, 16, "f%04d", sent);
            text[n] = ' ';
            text[sizeof text - 1] = '\0';
            say_plain(&f, text, sizeof text - 1);
        }
        size_t want = (size_t)sent;
        ck_assert_msg(peer_until(&r, p_nmsg, &want, 10000), "reader got %zu of %d", r.nmsg,
                      sent);
        while (peer_pump(&f, 0) > 0)
            ;
        if (after < 0 && sent % 64 == 0) {
            struct wstat w[SRV_MAX_WORKERS];
            get_stats(s.port, w, SRV_MAX_WORKERS, &drops);
            if (drops > 0)
                after = sent;
        }
        if (after >= 0 && sent >= after + 64)
            break;
    }
    ck_assert_msg(drops == 1, "drops_slow %llu after %d messages", (unsigned long long)drops,
                  sent);
    ck_assert_msg(!r.closed && !f.closed, "reader or flooder closed");
    ck_assert_uint_eq(r.nmsg, (size_t)sent);
    /* The reader got every message in order. */
    size_t k = 0;
    for (size_t i = 0; i < r.n; i++)
        if (r.r[i].text) {
            char want[8];
            snprintf(want, sizeof want, "f%04zu", k++);
            ck_assert_msg(strncmp(r.r[i].text, want, 5) == 0, "reader: %.5s, want %s",
                          r.r[i].text, want);
        }
    expect_ids_increasing(&r);
    /* The slow member, reading at last, finds a 1013 close after what was sent. */
    int skipped = 0;
    int code = wsc_read_close(&slow.c, 10000, &skipped, NULL, 0);
    ck_assert_msg(code == 1013, "slow member: close %d, want 1013", code);
    ck_assert_msg(skipped < sent, "the slow member got all %d messages", sent);
    /* And the reader learns that the slow member left. */
    expect_event(&r, "leave", 0, slow.uid, 5000);
    peer_free(&slow);
    peer_free(&r);
    peer_free(&f);
    srv_stop(&s);
}
END_TEST

Suite *chat_suite(void)
{
    Suite *s = suite_create("chat");
    TCase *tc = tcase_create("fanout");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, fanout_50_members_one_order);
    suite_add_tcase(s, tc);

    tc = tcase_create("protocol");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, history_on_join);
    tcase_add_test(tc, resume_no_gap);
    tcase_add_test(tc, history_larger_than_index);
    tcase_add_test(tc, resume_beyond_history_size);
    tcase_add_test(tc, resume_with_gap);
    tcase_add_test(tc, presence_counts_across_workers);
    tcase_add_test(tc, rooms_isolated);
    tcase_add_test(tc, bad_room_404);
    tcase_add_test(tc, nick_change);
    tcase_add_test(tc, error_events_keep_connection);
    tcase_add_test(tc, rate_limit_refuses_then_closes);
    suite_add_tcase(s, tc);

    tc = tcase_create("lifecycle");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, worker_sigkill_room_survives);
    tcase_add_test(tc, sighup_history_and_resume);
    tcase_add_test(tc, sighup_hands_over_members);
    tcase_add_test(tc, slow_reader_cut_with_1013);
    suite_add_tcase(s, tc);
    return s;
}
