/*
 * abuse: hostile clients against the real wsmaster ("hostile clients"
 * issue). One test per kind of abuse: a chat member flooding tiny frames
 * without reading, pipelined GETs never read, ?since= replays never read,
 * fragments pinned in the reassembly budget and past message_timeout,
 * rate-limit floods (messages, nick changes, malformed inputs), request
 * smuggling, invisible and bidi nicks, the slow reader of a busy room, an
 * endless request head, handshakes never completed, connect/reset churn and
 * 1 MiB echoes never read.
 *
 * Each test asserts the status or close code conf/wschat.conf documents,
 * that the worker's RSS grows by less than a stated bound that an
 * unbounded server would exceed several times over (the attack sizes are
 * chosen for that, and said next to each), and that a well-behaved client
 * on the same worker (`workers 1`) gets an answer within a deadline during
 * and after the attack. RSS is the worker's private resident memory from
 * /proc (VmRSS or its peak VmHWM, reset through clear_refs at the
 * baseline, less the shared ring's pages), taken after a warm-up.
 *
 * Attackers that must not read get small socket buffers (set before the
 * handshake), so the server backs up at once and the test does not park
 * tens of MiB in loopback buffers. Every wait has a deadline.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static int left_ms(int64_t end)
{
    int64_t r = end - it_now_ms();
    return r < 0 ? 0 : r > INT_MAX ? INT_MAX : (int)r;
}

/* ---- sanitizer builds ---------------------------------------------------- */

/*
 * Under AddressSanitizer the worker's RSS also holds shadow memory (an
 * eighth of what it touches), redzones, and the quarantine of freed blocks,
 * 256 MiB by default: a server that mallocs and frees a 25 KB body per
 * pipelined GET would look like it leaks 256 MiB. So for an ASan server
 * (WSCHAT_BIN names an asan build) the quarantine is capped at 4 MiB
 * (ASAN_OPTIONS, appended to what the caller set; the server inherits it)
 * and every bound is doubled. The attacks are sized so that an unbounded
 * server still exceeds the doubled bounds several times over.
 */
static int asan_server(void)
{
    const char *bin = getenv("WSCHAT_BIN");
    return bin != NULL && strstr(bin, "asan") != NULL;
}

/*
 * Under valgrind (make valgrind sets WSCHAT_VALGRIND) the server's RSS is
 * memcheck's, shadow memory included, and says nothing about the server:
 * the growth is printed but not asserted; memcheck itself judges the
 * memory. Everything else (codes, the good client) is asserted as usual.
 */
static int valgrind_server(void)
{
    return getenv("WSCHAT_VALGRIND") != NULL;
}

static void start(struct server *s, const char *extra)
{
    if (asan_server()) {
        const char *old = getenv("ASAN_OPTIONS");
        if (old == NULL || strstr(old, "quarantine_size_mb") == NULL) {
            char buf[1024];
            snprintf(buf, sizeof buf, "%s%squarantine_size_mb=4", old ? old : "",
                     old && *old ? ":" : "");
            setenv("ASAN_OPTIONS", buf, 1);
        }
    }
    srv_start(s, extra);
}

/* How long the well-behaved client may wait for any one answer. */
static int good_ms(void)
{
    return valgrind_server() ? 15000 : asan_server() ? 5000 : 2000;
}

/* ---- the worker's memory ------------------------------------------------- */

/*
 * What is measured is the worker's private memory: VmRSS minus RssShmem.
 * The shared-memory ring (a memfd of ring_size) counts in a worker's VmRSS
 * as it touches the ring's pages, up to ring_size, whatever the clients
 * do; it is a fixed cost, not per-client memory. Its pages stay resident
 * once touched (RssShmem only grows), so VmHWM minus today's RssShmem is
 * the peak private memory or a little under it.
 */
struct rss {
    pid_t pid;
    long  base_kb;              /* private memory at the baseline */
    int   peak;                 /* VmHWM was reset at the baseline */
};

/* Field KEY ("VmRSS") of /proc/PID/status in kB, or -1. */
static long status_kb(pid_t pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static pid_t only_worker(const struct server *s)
{
    pid_t w[SRV_MAX_WORKERS];
    ck_assert_msg(srv_wait_worker_count(s, 1, 5000), "want exactly one worker");
    ck_assert_int_eq(srv_workers(s, w, SRV_MAX_WORKERS), 1);
    return w[0];
}

/* Baseline: the one worker's private memory now; its peak counter restarts here. */
static void rss_begin(struct rss *r, const struct server *s)
{
    r->pid = only_worker(s);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/clear_refs", (int)r->pid);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    r->peak = fd >= 0 && write(fd, "5", 1) == 1;
    if (fd >= 0)
        close(fd);
    r->base_kb = status_kb(r->pid, "VmRSS") - status_kb(r->pid, "RssShmem");
    ck_assert_msg(r->base_kb > 0, "no VmRSS for worker %d", (int)r->pid);
}

/* The worker's private memory (its peak when known) grew by less than BOUND_MIB. */
static void rss_check(const struct rss *r, long bound_mib, const char *what)
{
    long bound = bound_mib * 1024 * (asan_server() ? 2 : 1);
    long shm = status_kb(r->pid, "RssShmem");
    long now = status_kb(r->pid, "VmRSS") - shm;
    long top = r->peak ? status_kb(r->pid, "VmHWM") - shm : now;
    ck_assert_msg(shm >= 0 && now > 0, "%s: worker %d is gone", what, (int)r->pid);
    if (top < now)
        top = now;
    fprintf(stderr, "abuse: %-34s worker private RSS %6ld -> %6ld KiB, %s %6ld KiB "
            "(bound +%ld; shm %ld KiB)\n", what, r->base_kb, now, r->peak ? "peak" : "now ",
            top, bound, shm);
    ck_assert_msg(valgrind_server() || top - r->base_kb < bound,
                  "%s: the worker's private RSS grew by %ld KiB "
                  "(%s), bound %ld KiB", what, top - r->base_kb, r->peak ? "peak" : "now", bound);
}

/* ---- sockets ------------------------------------------------------------- */

/*
 * cli_connect with SO_RCVBUF / SO_SNDBUF set before the SYN (0 keeps the
 * default), so the window stays small: a client that never reads backs the
 * server up at once instead of after the 32 MiB loopback autotuning grants.
 */
static void connect_small(struct client *c, int port, int rcvbuf, int sndbuf)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_msg(c->fd >= 0, "socket: %s", strerror(errno));
    c->port = port;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (rcvbuf > 0)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (sndbuf > 0)
        setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        ck_assert_msg(errno == EINPROGRESS, "connect: %s", strerror(errno));
        struct pollfd p = { c->fd, POLLOUT, 0 };
        ck_assert_msg(poll(&p, 1, 3000) == 1, "connect: timeout");
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        ck_assert_msg(err == 0, "connect: %s", strerror(err));
    }
}

/*
 * Write BUF[0..len) and never read, as a client ignoring every answer.
 * Stops when all is written, when the socket takes nothing for STALL_MS
 * (the peer stopped reading: *STALLED = 1), after TOTAL_MS, or on a send
 * error (*ERR = errno). Returns the bytes written.
 */
static size_t push_unread(int fd, const uint8_t *buf, size_t len, int stall_ms, int total_ms,
                          int *stalled, int *err)
{
    size_t sent = 0;
    int64_t end = it_now_ms() + total_ms;
    *stalled = 0;
    *err = 0;
    while (sent < len) {
        ssize_t n = send(fd, buf + sent, len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            *err = errno;
            break;
        }
        int left = left_ms(end);
        if (left == 0)
            break;
        int wait = left < stall_ms ? left : stall_ms;
        struct pollfd p = { fd, POLLOUT, 0 };
        if (poll(&p, 1, wait) == 0 && wait == stall_ms) {
            *stalled = 1;
            break;
        }
    }
    return sent;
}

/* Buffer of COPIES repetitions of P[0..len). */
static uint8_t *repeat(const void *p, size_t len, size_t copies)
{
    uint8_t *b = malloc(len * copies);
    ck_assert_ptr_nonnull(b);
    for (size_t i = 0; i < copies; i++)
        memcpy(b + i * len, p, len);
    return b;
}

/* The last "NAME": number of GET /stats (the totals come after the workers). */
static long long stats_total(int port, const char *name)
{
    struct client c;
    ck_assert_int_eq(cli_connect(&c, port), 0);
    ck_assert_int_eq(cli_sendstr(&c, "GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
                     0);
    struct httpc_resp r;
    ck_assert_int_eq(httpc_read_head(&c, &r, 5000), 200);
    int64_t end = it_now_ms() + 5000;
    while (cli_fill(&c, left_ms(end)) > 0)
        ;
    size_t n = cli_pending(&c);
    char *body = malloc(n + 1);
    memcpy(body, c.rx + c.off, n);
    body[n] = '\0';
    cli_close(&c);
    char key[64];
    snprintf(key, sizeof key, "\"%s\":", name);
    const char *last = NULL;
    for (const char *p = body; (p = strstr(p, key)) != NULL; p++)
        last = p;
    ck_assert_msg(last != NULL, "/stats has no %s", key);
    long long v = strtoll(last + strlen(key), NULL, 10);
    free(body);
    return v;
}

/* ---- the well-behaved client --------------------------------------------- */

struct good {
    struct client c;
    int n;
};

static void good_check(struct good *g, const char *when);

/*
 * Open /echo and touch what the worker allocates on first use (its receive
 * buffer, an output buffer, a reassembly buffer), so the baseline taken
 * next is not a cold process.
 */
static void good_open(struct good *g, int port)
{
    memset(g, 0, sizeof *g);
    wsc_open(&g->c, port);
    uint8_t *p = it_make_binary(200000, 1);     /* under every max_message used here */
    wsc_echo_check(&g->c, WS_OP_BIN, p, 200000);
    free(p);
    for (int i = 0; i < 3; i++)
        good_check(g, "warm-up");
}

/* One echo round trip within good_ms(). */
static void good_check(struct good *g, const char *when)
{
    char msg[64];
    int len = snprintf(msg, sizeof msg, "good-%d", g->n++);
    int64_t end = it_now_ms() + good_ms();
    ck_assert_msg(wsc_send(&g->c, WS_FIN | WS_OP_TEXT, msg, (size_t)len) == 0,
                  "%s: the good client cannot send: %s", when, strerror(errno));
    for (;;) {
        struct wsc_msg m;
        int r = wsc_recv(&g->c, &m, left_ms(end));
        ck_assert_msg(r == 1, "%s: the good client got no echo within %d ms (%s)", when,
                      good_ms(), r == 0 ? "connection closed" : "timeout");
        if (m.opcode == WS_OP_PING) {
            wsc_send(&g->c, WS_FIN | WS_OP_PONG, m.data, m.len);
            wsc_msg_free(&m);
            continue;
        }
        int ok = m.opcode == WS_OP_TEXT && m.len == (size_t)len && memcmp(m.data, msg, m.len) == 0;
        int op = m.opcode, code = m.len >= 2 ? m.data[0] << 8 | m.data[1] : -1;
        wsc_msg_free(&m);
        ck_assert_msg(ok, "%s: the good client got opcode %d (close code %d) instead of its echo",
                      when, op, code);
        return;
    }
}

/* ---- server events: a small reader of flat JSON objects ------------------ */

#define EV_FIELDS 12

struct ev {
    char *mem;                  /* decoded keys and values, NUL-terminated */
    int   n;
    struct { const char *key, *val; size_t len; int str; } f[EV_FIELDS];
};

static int hexval(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
         : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

static int hex4(const char *s, size_t n, size_t *p, uint32_t *out)
{
    *out = 0;
    for (int k = 0; k < 4; k++, (*p)++) {
        if (*p >= n || hexval(s[*p]) < 0)
            return -1;
        *out = *out << 4 | (uint32_t)hexval(s[*p]);
    }
    return 0;
}

static void put_utf8(char **w, uint32_t cp)
{
    unsigned char *o = (unsigned char *)*w;
    if (cp < 0x80) {
        *o++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *o++ = (unsigned char)(0xC0 | cp >> 6);
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (unsigned char)(0xE0 | cp >> 12);
        *o++ = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (unsigned char)(0xF0 | cp >> 18);
        *o++ = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
        *o++ = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    }
    *w = (char *)o;
}

/* The string at s[*i] == '"' decoded at *W (then NUL); both move past it. 0 or -1. */
static int jstring(const char *s, size_t n, size_t *i, char **w, size_t *len)
{
    static const char esc[] = "\"\\/bfnrt", val[] = "\"\\/\b\f\n\r\t";
    char *o = *w;
    size_t p = *i + 1;
    while (p < n && s[p] != '"') {
        unsigned char ch = (unsigned char)s[p++];
        if (ch < 0x20)
            return -1;
        if (ch != '\\') {
            *o++ = (char)ch;
            continue;
        }
        if (p >= n)
            return -1;
        char e = s[p++];
        const char *k = e != '\0' ? strchr(esc, e) : NULL;
        if (k != NULL) {
            *o++ = val[k - esc];
            continue;
        }
        uint32_t cp, lo;
        if (e != 'u' || hex4(s, n, &p, &cp) < 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
            return -1;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (p + 2 > n || s[p] != '\\' || s[p + 1] != 'u')
                return -1;
            p += 2;
            if (hex4(s, n, &p, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
                return -1;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        put_utf8(&o, cp);
    }
    if (p >= n)
        return -1;
    *len = (size_t)(o - *w);
    *o++ = '\0';
    *w = o;
    *i = p + 1;
    return 0;
}

/* Parse one compact flat object (what the server writes). 0, or -1. */
static int ev_parse(const uint8_t *data, size_t n, struct ev *e)
{
    const char *s = (const char *)data;
    memset(e, 0, sizeof *e);
    e->mem = malloc(n + 2 * EV_FIELDS + 1);
    ck_assert_ptr_nonnull(e->mem);
    char *w = e->mem;
    size_t i = 1, kl;
    if (n < 2 || s[0] != '{')
        return -1;
    if (s[1] == '}')
        return n == 2 ? 0 : -1;
    for (;;) {
        if (e->n == EV_FIELDS || i >= n || s[i] != '"')
            return -1;
        e->f[e->n].key = w;
        if (jstring(s, n, &i, &w, &kl) < 0 || i >= n || s[i++] != ':')
            return -1;
        e->f[e->n].val = w;
        if (i < n && s[i] == '"') {
            if (jstring(s, n, &i, &w, &e->f[e->n].len) < 0)
                return -1;
            e->f[e->n].str = 1;
        } else {
            size_t st = i;
            while (i < n && s[i] != ',' && s[i] != '}')
                i++;
            if (i == st)
                return -1;
            memcpy(w, s + st, i - st);
            e->f[e->n].len = i - st;
            w += i - st;
            *w++ = '\0';
        }
        e->n++;
        if (i < n && s[i] == ',') {
            i++;
            continue;
        }
        return i + 1 == n && s[i] == '}' ? 0 : -1;
    }
}

static void ev_free(struct ev *e)
{
    free(e->mem);
    e->mem = NULL;
    e->n = 0;
}

static const char *ev_str(const struct ev *e, const char *key)
{
    for (int i = 0; i < e->n; i++)
        if (e->f[i].str && strcmp(e->f[i].key, key) == 0)
            return e->f[i].val;
    return NULL;
}

static size_t ev_len(const struct ev *e, const char *key)
{
    for (int i = 0; i < e->n; i++)
        if (strcmp(e->f[i].key, key) == 0)
            return e->f[i].len;
    return 0;
}

static uint64_t ev_num(const struct ev *e, const char *key)
{
    for (int i = 0; i < e->n; i++)
        if (!e->f[i].str && strcmp(e->f[i].key, key) == 0)
            return strtoull(e->f[i].val, NULL, 10);
    return 0;
}

static int ev_is(const struct ev *e, const char *type)
{
    const char *t = ev_str(e, "type");
    return t != NULL && strcmp(t, type) == 0;
}

/* Event E is TYPE from member UID. */
static int ev_from(const struct ev *e, const char *type, const char *uid)
{
    const char *u = ev_str(e, "uid");
    return ev_is(e, type) && u != NULL && strcmp(u, uid) == 0;
}

/* ---- chat members -------------------------------------------------------- */

struct member {
    struct client c;
    char uid[40], nick[160];
    uint64_t last_id0;          /* from welcome */
    int closed, code;           /* close frame (its code, 0 if empty) or EOF (-1) */
};

/*
 * The next event of M within TIMEOUT_MS: 1 (E filled; ev_free it), 0 the
 * connection ended (m->code), -1 nothing in time. Pings are answered.
 */
static int member_next(struct member *m, struct ev *e, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    memset(e, 0, sizeof *e);
    while (!m->closed) {
        struct wsc_msg msg;
        int r = wsc_recv(&m->c, &msg, left_ms(end));
        if (r < 0)
            return -1;
        if (r == 0) {
            m->closed = 1;
            m->code = -1;
            break;
        }
        if (msg.opcode == WS_OP_CLOSE) {
            m->closed = 1;
            m->code = msg.len >= 2 ? msg.data[0] << 8 | msg.data[1] : 0;
            wsc_msg_free(&msg);
            break;
        }
        if (msg.opcode == WS_OP_PING)
            wsc_send(&m->c, WS_FIN | WS_OP_PONG, msg.data, msg.len);
        if (msg.opcode == WS_OP_PING || msg.opcode == WS_OP_PONG) {
            wsc_msg_free(&msg);
            continue;
        }
        ck_assert_msg(msg.opcode == WS_OP_TEXT && msg.fin, "chat sent opcode %d", msg.opcode);
        ck_assert_msg(ev_parse(msg.data, msg.len, e) == 0 && ev_str(e, "type") != NULL,
                      "not a flat JSON event: %.200s", (const char *)msg.data);
        wsc_msg_free(&msg);
        return 1;
    }
    return 0;
}

/* The next event of TYPE (others skipped) into E; fails the test after TIMEOUT_MS. */
static void member_expect(struct member *m, const char *type, struct ev *e, int timeout_ms,
                          const char *who)
{
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        int r = member_next(m, e, left_ms(end));
        ck_assert_msg(r == 1, "%s: no %s event within %d ms (%s, close code %d)", who, type,
                      timeout_ms, r == 0 ? "closed" : "timeout", m->code);
        if (ev_is(e, type))
            return;
        ev_free(e);
    }
}

/*
 * Upgrade M (connected) on PATH and read welcome and up to history_end.
 * ERR (if not NULL) gets the code of the first error event before
 * history_end, "" if none.
 */
static void member_upgrade(struct member *m, const char *path, char *err, size_t errn)
{
    int st = wsc_handshake(&m->c, path, NULL, NULL, 0);
    ck_assert_msg(st == 101, "upgrade of %s: status %d", path, st);
    struct ev e;
    ck_assert_msg(member_next(m, &e, 5000) == 1 && ev_is(&e, "welcome"), "%s: no welcome", path);
    snprintf(m->uid, sizeof m->uid, "%s", ev_str(&e, "uid") ? ev_str(&e, "uid") : "");
    snprintf(m->nick, sizeof m->nick, "%s", ev_str(&e, "nick") ? ev_str(&e, "nick") : "");
    m->last_id0 = ev_num(&e, "last_id");
    ev_free(&e);
    if (err != NULL)
        err[0] = '\0';
    for (;;) {
        ck_assert_msg(member_next(m, &e, 5000) == 1, "%s: no history_end (close code %d)", path,
                      m->code);
        int end = ev_is(&e, "history_end");
        if (err != NULL && err[0] == '\0' && ev_is(&e, "error"))
            snprintf(err, errn, "%s", ev_str(&e, "code") ? ev_str(&e, "code") : "?");
        ev_free(&e);
        if (end)
            return;
    }
}

static void member_open(struct member *m, int port, const char *path, char *err, size_t errn)
{
    memset(m, 0, sizeof *m);
    ck_assert_msg(cli_connect(&m->c, port) == 0, "connect: %s", strerror(errno));
    member_upgrade(m, path, err, errn);
}

static void member_close(struct member *m)
{
    if (m->c.fd >= 0)
        cli_close(&m->c);
}

static void member_say(struct member *m, const char *text, size_t len)
{
    ck_assert_msg(wsc_send(&m->c, WS_FIN | WS_OP_TEXT, text, len) == 0, "%s: send: %s", m->nick,
                  strerror(errno));
}

/* Read M up to the message TEXT; its id. Other events are skipped. */
static uint64_t member_wait_text(struct member *m, const char *text, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        struct ev e;
        char who[256];
        snprintf(who, sizeof who, "%s waiting for \"%.40s\"", m->nick, text);
        member_expect(m, "message", &e, left_ms(end), who);
        const char *t = ev_str(&e, "text");
        uint64_t id = ev_num(&e, "id");
        int hit = t != NULL && strcmp(t, text) == 0;
        ev_free(&e);
        if (hit)
            return id;
    }
}

/* ---- 1. tiny frames, never read ------------------------------------------ */

#define TINY_TOTAL (20u << 20)

struct tally {
    uint64_t pongs, binary, bad_type, empty;
};

/*
 * Count the answers to the tiny-frame flood until the pong "end", straight
 * from the socket, after what C already buffered. (wsc_recv's per-frame
 * ck_asserts each record a Check checkpoint: too slow for the quarter of a
 * million frames here, so this only asserts on what is wrong.) A close
 * frame, an EOF or anything but pongs and text events fails the test.
 */
static void tally_until_end(struct client *c, struct tally *t, int timeout_ms)
{
    /* cli_send drains answers while it waits to write: there may be megabytes. */
    size_t len = cli_pending(c), cap = len + (1u << 20);
    uint8_t *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    if (len > 0)
        memcpy(buf, c->rx + c->off, len);
    c->off = c->len;
    memset(t, 0, sizeof *t);
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        size_t off = 0;
        while (len - off >= 2) {
            const uint8_t *f = buf + off;
            size_t hl = 2, plen = f[1] & 0x7F;
            if (plen == 126 && len - off >= 4) {
                plen = (size_t)f[2] << 8 | f[3];
                hl = 4;
            } else if (plen >= 126) {
                if (plen == 127)
                    ck_abort_msg("a frame of 64 KiB or more among the answers");
                break;
            }
            if (len - off < hl + plen)
                break;
            const uint8_t *p = f + hl;
            int op = f[0] & 0x0F;
            if ((f[0] & 0xF0) != 0x80 || (f[1] & 0x80))
                ck_abort_msg("answer frame with header %02x %02x", f[0], f[1]);
            if (op == WS_OP_CLOSE)
                ck_abort_msg("the flooding member was closed with %d after %llu pongs",
                             plen >= 2 ? p[0] << 8 | p[1] : 0, (unsigned long long)t->pongs);
            if (op == WS_OP_PONG && plen == 3 && memcmp(p, "end", 3) == 0) {
                free(buf);
                return;
            }
            if (op == WS_OP_PONG) {
                t->pongs++;
            } else if (op == WS_OP_TEXT) {
                static const char error[] = "{\"type\":\"error\"",
                                  binary[] = "\"code\":\"binary\"",
                                  bad_type[] = "\"code\":\"bad_type\"",
                                  empty[] = "\"code\":\"empty\"";
                if (plen >= sizeof error - 1 && memcmp(p, error, sizeof error - 1) == 0) {
                    t->binary += memmem(p, plen, binary, sizeof binary - 1) != NULL;
                    t->bad_type += memmem(p, plen, bad_type, sizeof bad_type - 1) != NULL;
                    t->empty += memmem(p, plen, empty, sizeof empty - 1) != NULL;
                }
            } else if (op != WS_OP_PING) {
                ck_abort_msg("opcode %d among the answers", op);
            }
            off += hl + plen;
        }
        memmove(buf, buf + off, len - off);
        len -= off;
        if (left_ms(end) == 0)
            ck_abort_msg("no pong to \"end\" within %d ms (%llu pongs)", timeout_ms,
                         (unsigned long long)t->pongs);
        struct pollfd pf = { c->fd, POLLIN, 0 };
        poll(&pf, 1, left_ms(end));
        ssize_t n = recv(c->fd, buf + len, cap - len, MSG_DONTWAIT);
        if (n == 0)
            ck_abort_msg("the flooding member's connection ended after %llu pongs",
                         (unsigned long long)t->pongs);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            ck_abort_msg("recv: %s", strerror(errno));
        if (n > 0)
            len += (size_t)n;
    }
}

/*
 * A chat member sends groups of an empty ping (a pong), an empty binary
 * frame ("binary" error), the text {} ("bad_type") and an empty text
 * ("empty"): 26 bytes in, about 220 out, and never reads. The server stops
 * reading it once its unsent private output passes max_send_queue (64k);
 * it is not closed for that. An unbounded server would read all 20 MB and
 * queue ~170 MB of answers. rate_limit is off (rate_limit_floods tests it).
 * Then the member reads at last: every input was answered, none dropped.
 */
START_TEST(tiny_frames_never_read)
{
    struct server s;
    start(&s, "workers 1\nmax_send_queue 64k\nrate_limit 0");
    struct good g;
    good_open(&g, s.port);
    struct rss r;
    rss_begin(&r, &s);

    struct client a;
    connect_small(&a, s.port, 16384, 65536);
    ck_assert_int_eq(wsc_handshake(&a, "/chat/tiny?nick=tiny", NULL, NULL, 0), 101);
    uint8_t *grp = NULL;
    size_t glen = 0, gcap = 0;
    wsc_frame_append(&grp, &glen, &gcap, WS_FIN | WS_OP_PING, "", 0);
    wsc_frame_append(&grp, &glen, &gcap, WS_FIN | WS_OP_BIN, "", 0);
    wsc_frame_append(&grp, &glen, &gcap, WS_FIN | WS_OP_TEXT, "{}", 2);
    wsc_frame_append(&grp, &glen, &gcap, WS_FIN | WS_OP_TEXT, "", 0);
    size_t chunk_groups = (1u << 20) / glen, chunk = chunk_groups * glen;
    uint8_t *buf = repeat(grp, glen, chunk_groups);

    size_t sent = 0;
    int stalled = 0, err = 0;
    int64_t t0 = it_now_ms();
    while (sent < TINY_TOTAL && !stalled && !err && it_now_ms() - t0 < 15000) {
        size_t off = sent % chunk;
        sent += push_unread(a.fd, buf + off, chunk - off, 1000, 3000, &stalled, &err);
        good_check(&g, "during the tiny-frame flood");
    }
    fprintf(stderr, "abuse: tiny frames: %zu bytes written before the server stopped reading\n",
            sent);
    ck_assert_msg(err == 0, "the flooding member's connection failed: %s", strerror(err));
    ck_assert_msg(stalled, "the server read all %zu bytes of tiny frames from a member that "
                  "reads nothing", sent);
    it_sleep_ms(200);
    rss_check(&r, 8, "tiny frames never read");
    good_check(&g, "after the tiny-frame flood");

    /* Finish the group under way, mark the end, and read it all back. */
    if (sent % glen != 0)
        ck_assert_int_eq(cli_send(&a, grp + sent % glen, glen - sent % glen), 0);
    uint64_t groups = (sent + glen - 1) / glen;
    ck_assert_int_eq(wsc_send(&a, WS_FIN | WS_OP_PING, "end", 3), 0);
    struct tally t;
    tally_until_end(&a, &t, 30000);
    ck_assert_msg(t.binary == groups && t.bad_type == groups && t.empty == groups,
                  "%llu groups sent; errors: binary %llu, bad_type %llu, empty %llu",
                  (unsigned long long)groups, (unsigned long long)t.binary,
                  (unsigned long long)t.bad_type, (unsigned long long)t.empty);
    ck_assert_msg(t.pongs >= 1 && t.pongs <= groups, "%llu pongs for %llu pings",
                  (unsigned long long)t.pongs, (unsigned long long)groups);
    good_check(&g, "after the flooder read its answers");
    free(buf);
    free(grp);
    cli_close(&a);
    cli_close(&g.c);
    srv_stop(&s);
}
END_TEST

/* ---- 2. pipelined GETs, never read --------------------------------------- */

#define PIPE_N 20000

/* Size of web/chat.js under $WSCHAT_ROOT. */
static size_t chat_js_size(void)
{
    const char *root = getenv("WSCHAT_ROOT");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/web/chat.js", root ? root : ".");
    struct stat st;
    ck_assert_msg(stat(path, &st) == 0, "%s: %s", path, strerror(errno));
    return (size_t)st.st_size;
}

/*
 * Read COUNT answers to pipelined GETs on C, writing the rest of REQ
 * (from *SENT) meanwhile: each a 200 with a BODY-byte body, in order.
 */
static void read_pipelined(struct client *c, const uint8_t *req, size_t total, size_t *sent,
                           int count, size_t body, int timeout_ms)
{
    size_t cap = 1u << 20, len = 0, skip = 0;
    char *buf = malloc(cap + 1);
    int got = 0;
    int64_t end = it_now_ms() + timeout_ms;
    while (got < count || skip > 0) {
        ck_assert_msg(left_ms(end) > 0, "%d of %d pipelined answers within %d ms", got, count,
                      timeout_ms);
        struct pollfd p = { c->fd, (short)(POLLIN | (*sent < total ? POLLOUT : 0)), 0 };
        poll(&p, 1, 100);
        if (*sent < total) {
            ssize_t n = send(c->fd, req + *sent, total - *sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0)
                *sent += (size_t)n;
            else
                ck_assert_msg(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK),
                              "send: %s", strerror(errno));
        }
        ssize_t n = recv(c->fd, buf + len, cap - len, MSG_DONTWAIT);
        ck_assert_msg(n != 0, "the server closed the pipelining connection after %d answers",
                      got);
        if (n < 0) {
            ck_assert_msg(errno == EAGAIN || errno == EWOULDBLOCK, "recv: %s", strerror(errno));
            continue;
        }
        len += (size_t)n;
        size_t off = 0;
        for (;;) {
            if (skip > 0) {
                size_t k = skip < len - off ? skip : len - off;
                skip -= k;
                off += k;
                if (skip > 0)
                    break;
            }
            if (got == count)
                break;
            buf[len] = '\0';
            char *h = buf + off, *he = memmem(h, len - off, "\r\n\r\n", 4);
            if (he == NULL) {
                ck_assert_msg(len - off < 16384, "answer %d: no end of head in 16 KiB", got);
                break;
            }
            *he = '\0';
            ck_assert_msg(strncmp(h, "HTTP/1.1 200 ", 13) == 0, "answer %d: %.60s", got, h);
            const char *cl = strcasestr(h, "\r\nContent-Length:");
            ck_assert_msg(cl != NULL, "answer %d without Content-Length", got);
            size_t blen = (size_t)strtoull(cl + 17, NULL, 10);
            ck_assert_msg(blen == body, "answer %d: body of %zu bytes, want %zu", got, blen, body);
            got++;
            off = (size_t)(he + 4 - buf);
            skip = blen;
        }
        memmove(buf, buf + off, len - off);
        len -= off;
    }
    ck_assert_msg(len == 0, "%zu bytes after the last answer", len);
    free(buf);
}

/*
 * One connection writes 20,000 GET /chat.js (720 KB) and reads nothing.
 * Answers stop once 64 KiB of them wait: the server has served only what
 * the kernel buffers took. An unbounded server would queue 20,000 x 24 KB
 * = 480 MiB. Then the client reads: all 20,000 answers, whole, in order,
 * and the connection is still open.
 */
START_TEST(pipelined_gets_never_read)
{
    struct server s;
    start(&s, "workers 1\nmax_send_queue 64k");
    struct good g;
    good_open(&g, s.port);
    size_t body = chat_js_size();
    static const char req[] = "GET /chat.js HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t rl = sizeof req - 1, total = rl * PIPE_N;
    uint8_t *all = repeat(req, rl, PIPE_N);
    long long before = stats_total(s.port, "http_requests");
    struct rss r;
    rss_begin(&r, &s);

    struct client a;
    connect_small(&a, s.port, 16384, 16384);
    int stalled, err;
    size_t sent = push_unread(a.fd, all, total, 1000, 5000, &stalled, &err);
    ck_assert_msg(err == 0, "pipelining connection failed: %s", strerror(err));
    it_sleep_ms(300);
    good_check(&g, "during the pipelined GETs");
    long long served = stats_total(s.port, "http_requests") - before - 1;
    fprintf(stderr, "abuse: pipelined: %zu of %zu bytes written, %lld answers produced\n", sent,
            total, served);
    ck_assert_msg(served < PIPE_N / 4, "the server answered %lld of %d pipelined GETs nobody "
                  "reads", served, PIPE_N);
    rss_check(&r, 8, "20000 pipelined GETs never read");

    int big = 1 << 20;
    setsockopt(a.fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    read_pipelined(&a, all, total, &sent, PIPE_N, body, 60000);
    ck_assert_msg(!cli_expect_closed(&a, 300), "the keep-alive connection closed after the "
                  "last answer");
    rss_check(&r, 8, "after reading the 20000 answers");
    good_check(&g, "after the pipelined GETs");
    free(all);
    cli_close(&a);
    cli_close(&g.c);
    srv_stop(&s);
}
END_TEST

/* ---- 3. ?since=1 replays, never read ------------------------------------- */

#define REPLAY_MSGS  3000
#define REPLAY_TEXT  4000
#define REPLAY_CONNS 20

/* Message I of the replay test: "r0042 " then filler, REPLAY_TEXT bytes. */
static void replay_text(char *t, int i)
{
    memset(t, 'a' + i % 26, REPLAY_TEXT);
    int n = snprintf(t, 16, "r%04d", i);
    t[n] = ' ';
    t[REPLAY_TEXT] = '\0';
}

/*
 * A room holds 3000 messages of 4 KB (12 MB, all in the 16 MiB ring); 20
 * connections ask for ?since=1 and never read. The replay is copied under
 * max_send_queue as each drains, so the worker grows by about 20 x 64 KiB,
 * not 20 x 12 MB = 240 MB. Then one of them reads: every message from the
 * oldest the ring holds, ids contiguous, nothing twice, then history_end,
 * its own join, and a live message. (A ring's ids need not start at 1: the
 * ids from 2 up to its oldest entry come first as one gap event.)
 */
START_TEST(replay_since_never_read)
{
    struct server s;
    start(&s, "workers 1\nrate_limit 0\nhistory_size 50\nring_size 16m\nmax_text 4k\n"
              "max_send_queue 64k");
    struct good g;
    good_open(&g, s.port);
    struct member w;
    member_open(&w, s.port, "/chat/hist?nick=writer", NULL, 0);
    static char text[REPLAY_TEXT + 1];
    uint64_t first = 0, last = 0;
    for (int i = 0; i < REPLAY_MSGS; i += 10) {
        for (int k = i; k < i + 10; k++) {
            replay_text(text, k);
            member_say(&w, text, REPLAY_TEXT);
        }
        for (int k = i; k < i + 10; k++) {
            replay_text(text, k);
            uint64_t id = member_wait_text(&w, text, 10000);
            ck_assert_uint_gt(id, last);
            if (first == 0)
                first = id;
            last = id;
        }
    }
    ck_assert_uint_eq(last - first, REPLAY_MSGS - 1);
    struct rss r;
    rss_begin(&r, &s);

    static struct member rp[REPLAY_CONNS];
    for (int i = 0; i < REPLAY_CONNS; i++) {
        char path[64];
        snprintf(path, sizeof path, "/chat/hist?since=1&nick=replay%d", i);
        memset(&rp[i], 0, sizeof rp[i]);
        connect_small(&rp[i].c, s.port, 8192, 0);
        int st = wsc_handshake(&rp[i].c, path, NULL, NULL, 0);
        ck_assert_msg(st == 101, "%s: status %d", path, st);
    }
    it_sleep_ms(500);
    good_check(&g, "during the unread replays");
    rss_check(&r, 8, "20 x ?since=1 replays never read");

    /* One of them reads now. */
    struct member *m = &rp[0];
    struct ev e;
    ck_assert_msg(member_next(m, &e, 5000) == 1 && ev_is(&e, "welcome"), "no welcome");
    ck_assert_uint_ge(ev_num(&e, "last_id"), last);
    snprintf(m->uid, sizeof m->uid, "%s", ev_str(&e, "uid"));
    snprintf(m->nick, sizeof m->nick, "replay0");
    ev_free(&e);
    uint64_t prev = 0, gap_to = 0;
    int got = 0, prev_idx = -1, gap = 0;
    for (;;) {
        ck_assert_msg(member_next(m, &e, 10000) == 1, "replay ended after %d messages (close "
                      "code %d)", got, m->code);
        if (ev_is(&e, "history_end")) {
            ev_free(&e);
            break;
        }
        if (ev_is(&e, "gap")) {
            ck_assert_msg(got == 0 && !gap, "a gap after %d messages", got);
            ck_assert_uint_eq(ev_num(&e, "from"), 2);
            gap = 1;
            gap_to = ev_num(&e, "to");
            ev_free(&e);
            continue;
        }
        ck_assert_msg(ev_is(&e, "message"), "a %s event in the replay", ev_str(&e, "type"));
        uint64_t id = ev_num(&e, "id");
        const char *t = ev_str(&e, "text");
        int idx = -1;
        ck_assert_msg(t != NULL && sscanf(t, "r%d", &idx) == 1, "replayed text %.20s", t);
        ck_assert_uint_eq(ev_len(&e, "text"), REPLAY_TEXT);
        /* The ring (16 MiB) holds all 12 MB of them: the replay starts at the first. */
        if (got == 0)
            ck_assert_msg(id == first && (!gap || gap_to < id), "first replayed id %llu (first "
                          "message %llu, gap to %llu)", (unsigned long long)id,
                          (unsigned long long)first, (unsigned long long)gap_to);
        else
            ck_assert_msg(id == prev + 1 && idx == prev_idx + 1, "replay: id %llu (r%04d) "
                          "after %llu (r%04d)", (unsigned long long)id, idx,
                          (unsigned long long)prev, prev_idx);
        ck_assert_uint_eq(id - first, (uint64_t)idx);
        prev = id;
        prev_idx = idx;
        got++;
        ev_free(&e);
    }
    fprintf(stderr, "abuse: replay: %d messages replayed%s\n", got, gap ? " after a gap" : "");
    ck_assert_msg(prev == last && prev_idx == REPLAY_MSGS - 1, "replay ended at %llu (r%04d), "
                  "want %llu", (unsigned long long)prev, prev_idx, (unsigned long long)last);
    ck_assert_int_eq(got, REPLAY_MSGS);
    member_expect(m, "join", &e, 5000, "replay reader");
    ck_assert_str_eq(ev_str(&e, "uid"), m->uid);
    ck_assert_uint_gt(ev_num(&e, "id"), last);
    ev_free(&e);
    member_say(&w, "live-after", 10);
    uint64_t live = member_wait_text(m, "live-after", 5000);
    ck_assert_uint_gt(live, last);
    rss_check(&r, 8, "after one replay was read");
    good_check(&g, "after the replays");
    for (int i = 0; i < REPLAY_CONNS; i++)
        member_close(&rp[i]);
    member_close(&w);
    cli_close(&g.c);
    srv_stop(&s);
}
END_TEST

/* ---- 4. fragments pinned ------------------------------------------------- */

#define FRAG_N   200
#define FRAG_LEN 250000

/*
 * 200 /echo clients each send a non-final text fragment of 250,000 bytes
 * (max_message 256k) and a ping. max_reassembly_memory 1m holds four of
 * them; every later one is closed with 1009 (conf: "the client whose
 * message would go past it is closed with 1009, no one else"). An
 * unbounded server would hold 200 x 250 KB = 48 MiB. The holders then
 * finish and get their messages back whole, and the budget is free again.
 */
START_TEST(fragments_over_reassembly_budget)
{
    struct server s;
    start(&s, "workers 1\nmax_message 256k\nmax_reassembly_memory 1m");
    struct good g;
    good_open(&g, s.port);
    struct rss r;
    rss_begin(&r, &s);

    uint8_t *frag = malloc(FRAG_LEN);
    memset(frag, 'f', FRAG_LEN);
    uint8_t *b = NULL;
    size_t blen = 0, bcap = 0;
    wsc_frame_append(&b, &blen, &bcap, WS_OP_TEXT, frag, FRAG_LEN);
    wsc_frame_append(&b, &blen, &bcap, WS_FIN | WS_OP_PING, "held", 4);
    static struct client o[FRAG_N];
    int held = 0, refused = 0;
    for (int i = 0; i < FRAG_N; i++) {
        wsc_open(&o[i], s.port);
        cli_send(&o[i], b, blen);   /* a refused one may be closed before it is all sent */
        struct wsc_msg m;
        int rc = wsc_recv(&o[i], &m, 5000);
        ck_assert_msg(rc == 1, "fragment holder %d: %s", i, rc == 0 ? "closed without a close "
                      "frame" : "no answer");
        if (m.opcode == WS_OP_PONG) {
            ck_assert_msg(refused == 0, "holder %d kept after %d were refused", i, refused);
            held++;
        } else {
            int code = m.len >= 2 ? m.data[0] << 8 | m.data[1] : 0;
            ck_assert_msg(m.opcode == WS_OP_CLOSE && code == 1009, "fragment %d over the "
                          "budget: opcode %d, close code %d, want 1009", i, m.opcode, code);
            refused++;
            cli_close(&o[i]);
        }
        wsc_msg_free(&m);
        if (i % 25 == 0)
            good_check(&g, "during the pinned fragments");
    }
    fprintf(stderr, "abuse: fragments: %d held, %d closed with 1009\n", held, refused);
    ck_assert_msg(held >= 3 && held <= 4, "%d fragments of %d bytes held under a 1 MiB budget",
                  held, FRAG_LEN);
    rss_check(&r, 8, "200 pinned 250 KB fragments");
    good_check(&g, "after the pinned fragments");

    for (int i = 0; i < held; i++) {
        ck_assert_int_eq(wsc_send(&o[i], WS_FIN | WS_OP_CONT, "", 0), 0);
        struct wsc_msg m;
        ck_assert_int_eq(wsc_recv(&o[i], &m, 5000), 1);
        ck_assert_msg(m.opcode == WS_OP_TEXT && m.len == FRAG_LEN &&
                      memcmp(m.data, frag, FRAG_LEN) == 0, "holder %d: its message did not "
                      "come back whole (opcode %d, %zu bytes)", i, m.opcode, m.len);
        wsc_msg_free(&m);
        cli_close(&o[i]);
    }
    /* The budget is free again: the good client's own fragmented message passes. */
    free(b);
    b = NULL;
    blen = bcap = 0;
    wsc_frame_append(&b, &blen, &bcap, WS_OP_TEXT, frag, 200000);
    wsc_frame_append(&b, &blen, &bcap, WS_FIN | WS_OP_CONT, frag, 40000);
    ck_assert_int_eq(cli_send(&g.c, b, blen), 0);
    free(b);
    struct wsc_msg m;
    ck_assert_int_eq(wsc_recv(&g.c, &m, good_ms()), 1);
    ck_assert_msg(m.opcode == WS_OP_TEXT && m.len == 240000, "good fragmented echo: opcode %d, "
                  "%zu bytes", m.opcode, m.len);
    wsc_msg_free(&m);
    rss_check(&r, 8, "after the holders finished");
    free(frag);
    cli_close(&g.c);
    srv_stop(&s);
}
END_TEST

/*
 * message_timeout 2s: one client holds an unfinished message and pings
 * every 250 ms, another keeps sending non-final continuation frames; both
 * are closed with 1008 between 2 and 3 s after the message began (the
 * clock counts whole seconds; plus one ping interval), while an honest
 * client that takes 1 s over its fragments, and the good client, go on.
 */
START_TEST(fragment_held_past_message_timeout)
{
    struct server s;
    start(&s, "workers 1\nmax_message 256k\nmax_reassembly_memory 1m\nmessage_timeout 2s");
    struct good g;
    good_open(&g, s.port);
    struct rss r;
    rss_begin(&r, &s);

    struct client c[2];
    uint8_t *frag = malloc(100000);
    memset(frag, 'p', 100000);
    for (int i = 0; i < 2; i++) {
        wsc_open(&c[i], s.port);
        ck_assert_int_eq(wsc_send(&c[i], WS_OP_TEXT, frag, 100000), 0);
    }
    int64_t t0 = it_now_ms(), closed_at[2] = { 0, 0 };
    int code[2] = { 0, 0 }, tick = 0;
    while ((!closed_at[0] || !closed_at[1]) && it_now_ms() - t0 < 6000) {
        it_sleep_ms(250);
        tick++;
        for (int i = 0; i < 2; i++) {
            if (closed_at[i])
                continue;
            if (i == 0)
                wsc_send(&c[i], WS_FIN | WS_OP_PING, "k", 1);
            else
                wsc_send(&c[i], WS_OP_CONT, "more-bytes", 10);
            struct wsc_msg m;
            while (!closed_at[i] && wsc_recv(&c[i], &m, 0) == 1) {
                if (m.opcode == WS_OP_CLOSE) {
                    closed_at[i] = it_now_ms() - t0;
                    code[i] = m.len >= 2 ? m.data[0] << 8 | m.data[1] : 0;
                }
                wsc_msg_free(&m);
            }
        }
        if (tick % 2 == 0)
            good_check(&g, "while fragments are held");
    }
    static const char *const who[2] = { "the pinging holder", "the trickling holder" };
    for (int i = 0; i < 2; i++) {
        fprintf(stderr, "abuse: %s closed with %d after %lld ms\n", who[i], code[i],
                (long long)closed_at[i]);
        ck_assert_msg(closed_at[i] > 0, "%s is still open after 6 s (message_timeout 2s)",
                      who[i]);
        ck_assert_msg(code[i] == 1008, "%s closed with %d, want 1008", who[i], code[i]);
        ck_assert_msg(closed_at[i] >= 1900 && closed_at[i] <= 4500, "%s closed after %lld ms "
                      "(message_timeout 2s)", who[i], (long long)closed_at[i]);
        cli_close(&c[i]);
    }

    /* A fragmented message finished within the timeout is echoed. */
    struct client h;
    wsc_open(&h, s.port);
    ck_assert_int_eq(wsc_send(&h, WS_OP_TEXT, frag, 50000), 0);
    it_sleep_ms(500);
    good_check(&g, "while the honest client is mid-message");
    it_sleep_ms(500);
    ck_assert_int_eq(wsc_send(&h, WS_FIN | WS_OP_CONT, frag, 50000), 0);
    struct wsc_msg m;
    ck_assert_int_eq(wsc_recv(&h, &m, good_ms()), 1);
    ck_assert_msg(m.opcode == WS_OP_TEXT && m.len == 100000, "honest fragmented message: "
                  "opcode %d, %zu bytes", m.opcode, m.len);
    wsc_msg_free(&m);
    rss_check(&r, 8, "fragments past message_timeout");
    good_check(&g, "after the held fragments");
    free(frag);
    cli_close(&h);
    cli_close(&g.c);
    srv_stop(&s);
}
END_TEST

/*
 * The same with four holders that go silent after their 250 KB fragment
 * (no ping, no continuation) and so pin the whole 1 MiB reassembly budget:
 * message_timeout (2s) applies to them as well, so each is closed with
 * 1008 within about 3 s, well before their idle_timeout (60s) would end
 * them, and the budget is free again for an honest fragmented message.
 */
START_TEST(fragment_silent_past_message_timeout)
{
    enum { SILENT = 4 };
    struct server s;
    start(&s, "workers 1\nmax_message 256k\nmax_reassembly_memory 1m\nmessage_timeout 2s\n"
              "idle_timeout 60s");
    struct good g;
    good_open(&g, s.port);
    struct rss r;
    rss_begin(&r, &s);

    uint8_t *frag = malloc(FRAG_LEN);
    memset(frag, 's', FRAG_LEN);
    struct client q[SILENT];
    for (int i = 0; i < SILENT; i++) {
        wsc_open(&q[i], s.port);
        ck_assert_int_eq(wsc_send(&q[i], WS_OP_TEXT, frag, FRAG_LEN), 0);
    }
    int64_t t0 = it_now_ms(), closed_at[SILENT] = { 0 };
    int code[SILENT] = { 0 }, open = SILENT;
    while (open > 0 && it_now_ms() - t0 < 5000) {
        it_sleep_ms(250);
        for (int i = 0; i < SILENT; i++) {
            struct wsc_msg m;
            while (!closed_at[i] && wsc_recv(&q[i], &m, 0) == 1) {
                if (m.opcode == WS_OP_CLOSE) {
                    closed_at[i] = it_now_ms() - t0;
                    code[i] = m.len >= 2 ? m.data[0] << 8 | m.data[1] : 0;
                    open--;
                }
                wsc_msg_free(&m);
            }
        }
        good_check(&g, "while silent holders pin the budget");
    }
    rss_check(&r, 8, "silent fragment holders");
    for (int i = 0; i < SILENT; i++) {
        ck_assert_msg(closed_at[i] > 0, "silent holder %d of an unfinished fragmented message "
                      "still open after 5 s (message_timeout 2s, idle_timeout 60s)", i);
        ck_assert_msg(code[i] == 1008 && closed_at[i] >= 1900 && closed_at[i] <= 4500,
                      "silent holder %d: close %d after %lld ms, want 1008 after 2-3 s", i,
                      code[i], (long long)closed_at[i]);
        cli_close(&q[i]);
    }
    uint8_t *b = NULL;
    size_t blen = 0, bcap = 0;
    wsc_frame_append(&b, &blen, &bcap, WS_OP_TEXT, frag, 200000);
    wsc_frame_append(&b, &blen, &bcap, WS_FIN | WS_OP_CONT, frag, 40000);
    ck_assert_int_eq(cli_send(&g.c, b, blen), 0);
    free(b);
    struct wsc_msg m;
    ck_assert_int_eq(wsc_recv(&g.c, &m, good_ms()), 1);
    ck_assert_msg(m.opcode == WS_OP_TEXT && m.len == 240000, "fragmented echo after the silent "
                  "holders: opcode %d, %zu bytes", m.opcode, m.len);
    wsc_msg_free(&m);
    free(frag);
    cli_close(&g.c);
    srv_stop(&s);
}
END_TEST

/* ---- 5. rate limit ------------------------------------------------------- */

#define FLOOD_N   400
#define RL_BURST  5

enum { FLOOD_MESSAGES, FLOOD_NICKS, FLOOD_MALFORMED };

/* FLOOD_N inputs of KIND in one buffer. */
static uint8_t *flood_build(int kind, size_t *len)
{
    uint8_t *b = NULL;
    size_t cap = 0;
    *len = 0;
    static char text[1100];
    for (int i = 0; i < FLOOD_N; i++) {
        int n = 0;
        if (kind == FLOOD_MESSAGES) {
            memset(text, 'x', 1024);
            n = snprintf(text, 32, "flood-%03d", i);
            text[n] = ' ';
            n = 1024;
            wsc_frame_append(&b, len, &cap, WS_FIN | WS_OP_TEXT, text, (size_t)n);
        } else if (kind == FLOOD_NICKS) {
            n = snprintf(text, sizeof text, "{\"type\":\"nick\",\"nick\":\"nick%03d\"}", i);
            wsc_frame_append(&b, len, &cap, WS_FIN | WS_OP_TEXT, text, (size_t)n);
        } else if (i % 4 == 0) {
            wsc_frame_append(&b, len, &cap, WS_FIN | WS_OP_BIN, "bin", 3);
        } else {
            static const char *const bad[] = { "{}", "", "{\"type\":\"message\"}" };
            const char *t = bad[i % 4 - 1];
            wsc_frame_append(&b, len, &cap, WS_FIN | WS_OP_TEXT, t, strlen(t));
        }
    }
    return b;
}

/*
 * rate_limit 5, rate_limit_burst 5. Three members flood 400 inputs each
 * in one write: messages, nick changes, malformed inputs (binary, {}, an
 * empty text, a message without text). Each gets rate_limited errors and
 * is closed with 1008 (more than 4 x burst refusals within 10 s); the
 * observer in the room sees at most burst + 2 of its messages or nick
 * changes (a token earns back every 200 ms), and none of the malformed.
 */
START_TEST(rate_limit_floods)
{
    struct server s;
    start(&s, "workers 1\nrate_limit 5\nrate_limit_burst 5");
    struct good g;
    good_open(&g, s.port);
    struct member obs;
    member_open(&obs, s.port, "/chat/rl?nick=obs", NULL, 0);
    struct rss r;
    rss_begin(&r, &s);
    static const char *const kinds[] = { "message", "nick-change", "malformed-input" };
    for (int kind = 0; kind < 3; kind++) {
        struct member a;
        char path[64], what[64];
        snprintf(path, sizeof path, "/chat/rl?nick=flood%d", kind);
        snprintf(what, sizeof what, "%s flood", kinds[kind]);
        member_open(&a, s.port, path, NULL, 0);
        size_t len;
        uint8_t *b = flood_build(kind, &len);
        if (cli_send(&a.c, b, len) < 0)
            ck_assert_msg(errno == EPIPE || errno == ECONNRESET, "%s: send: %s", what,
                          strerror(errno));
        free(b);
        int limited = 0, other = 0;
        int64_t end = it_now_ms() + 5000;
        for (;;) {
            struct ev e;
            int rc = member_next(&a, &e, left_ms(end));
            ck_assert_msg(rc >= 0, "%s: the flooder was not closed within 5 s", what);
            if (rc == 0)
                break;
            if (ev_is(&e, "error")) {
                if (strcmp(ev_str(&e, "code"), "rate_limited") == 0)
                    limited++;
                else
                    other++;
            }
            ev_free(&e);
        }
        fprintf(stderr, "abuse: %s: %d rate_limited, %d other errors, closed with %d\n", what,
                limited, other, a.code);
        ck_assert_msg(a.code == 1008, "%s: closed with %d, want 1008", what, a.code);
        ck_assert_msg(limited >= 1 && limited <= 4 * RL_BURST + 2, "%s: %d rate_limited errors",
                      what, limited);
        if (kind == FLOOD_MALFORMED)
            ck_assert_msg(other >= RL_BURST && other <= RL_BURST + 2, "%s: %d errors for "
                          "malformed inputs within the burst", what, other);

        /* What the observer saw of it, up to its leave. */
        int msgs = 0, nicks = 0;
        end = it_now_ms() + 5000;
        for (;;) {
            struct ev e;
            ck_assert_msg(member_next(&obs, &e, left_ms(end)) == 1, "%s: the observer saw no "
                          "leave", what);
            int leave = ev_from(&e, "leave", a.uid);
            msgs += ev_from(&e, "message", a.uid);
            nicks += ev_from(&e, "nick", a.uid);
            ev_free(&e);
            if (leave)
                break;
        }
        int seen = kind == FLOOD_MESSAGES ? msgs : nicks;
        ck_assert_msg(kind == FLOOD_MALFORMED ? msgs + nicks == 0 :
                      seen >= RL_BURST && seen <= RL_BURST + 2 && msgs + nicks == seen,
                      "%s: the observer saw %d messages and %d nick changes", what, msgs, nicks);
        char t[32];
        int tl = snprintf(t, sizeof t, "obs-after-%d", kind);
        member_say(&obs, t, (size_t)tl);
        member_wait_text(&obs, t, good_ms());
        good_check(&g, what);
        rss_check(&r, 8, what);
        member_close(&a);
    }
    member_close(&obs);
    cli_close(&g.c);
    srv_stop(&s);
}
END_TEST

/* ---- 6. request smuggling ------------------------------------------------ */

/* 27 bytes: what a proxy honouring the second Content-Length would take as a body. */
#define SMUGGLED "GET / HTTP/1.1\r\nHost: x\r\n\r\n"

static const struct {
    const char *name, *req;
} smuggle[] = {
    { "Content-Length 0, then 27",
      "GET /chat.js HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 27\r\n\r\n"
      SMUGGLED },
    { "Content-Length 27, then 0",
      "GET /chat.js HTTP/1.1\r\nHost: x\r\nContent-Length: 27\r\nContent-Length: 0\r\n\r\n"
      SMUGGLED },
    { "Content-Length: 0, 27",
      "GET /chat.js HTTP/1.1\r\nHost: x\r\nContent-Length: 0, 27\r\n\r\n" SMUGGLED },
    { "Content-Length with Transfer-Encoding: chunked",
      "GET /chat.js HTTP/1.1\r\nHost: x\r\nContent-Length: 27\r\nTransfer-Encoding: chunked"
      "\r\n\r\n0\r\n\r\n" SMUGGLED },
    { "Transfer-Encoding: chunked, then Content-Length 0",
      "GET /chat.js HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0"
      "\r\n\r\n0\r\n\r\n" SMUGGLED },
    { "Transfer-Encoding: chunked alone",
      "GET /chat.js HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
      SMUGGLED },
    { "a space before the colon of Transfer-Encoding",
      "GET /chat.js HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"
      SMUGGLED },
    { "upgrade with Content-Length and Transfer-Encoding",
      "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
      "Content-Length: 27\r\nTransfer-Encoding: chunked\r\n\r\n" SMUGGLED },
};

/*
 * Send REQ on a fresh connection and read until the server closes: exactly
 * one response, with STATUS and Connection: close, its body and nothing
 * after it (a second response would be the smuggled GET's answer).
 */
static void expect_one_response(int port, const char *req, int status, const char *what)
{
    struct client c;
    ck_assert_int_eq(cli_connect(&c, port), 0);
    if (cli_sendstr(&c, req) < 0)
        ck_assert_msg(errno == EPIPE || errno == ECONNRESET, "%s: send: %s", what,
                      strerror(errno));
    int64_t end = it_now_ms() + 3000;
    ssize_t n;
    while ((n = cli_fill(&c, left_ms(end))) > 0)
        ;
    ck_assert_msg(n == 0, "%s: the server kept the connection open", what);
    size_t len = cli_pending(&c);
    char *resp = malloc(len + 1);
    memcpy(resp, c.rx + c.off, len);
    resp[len] = '\0';
    cli_close(&c);
    char *he = strstr(resp, "\r\n\r\n");
    ck_assert_msg(he != NULL, "%s: no response (%zu bytes)", what, len);
    *he = '\0';
    char want[16];
    snprintf(want, sizeof want, "HTTP/1.1 %d ", status);
    ck_assert_msg(strncmp(resp, want, strlen(want)) == 0, "%s: %.60s, want %d", what, resp,
                  status);
    ck_assert_msg(strcasestr(resp, "\r\nConnection: close") != NULL, "%s: %d without "
                  "Connection: close", what, status);
    const char *cl = strcasestr(resp, "\r\nContent-Length:");
    size_t blen = cl ? (size_t)strtoull(cl + 17, NULL, 10) : 0;
    size_t after = len - (size_t)(he + 4 - resp);
    ck_assert_msg(after == blen, "%s: %zu bytes after the head of the %d, its body is %zu: a "
                  "second response?\n%s", what, after, status, blen, he + 4);
    free(resp);
}

/*
 * Conflicting body framing on a GET: 400, Connection: close, the server
 * closes, and the smuggled request behind it gets no answer. 20 rounds of
 * every vector; the control (the same two requests, honestly pipelined)
 * gets two answers.
 */
START_TEST(request_smuggling)
{
    struct server s;
    start(&s, "workers 1");
    struct good g;
    good_open(&g, s.port);
    struct rss r;
    rss_begin(&r, &s);

    struct client c;
    ck_assert_int_eq(cli_connect(&c, s.port), 0);
    ck_assert_int_eq(cli_sendstr(&c, "GET /chat.js HTTP/1.1\r\nHost: x\r\n\r\n" SMUGGLED), 0);
    struct httpc_resp h;
    ck_assert_int_eq(httpc_read_head(&c, &h, 3000), 200);
    size_t body = chat_js_size();
    while (cli_pending(&c) < body + 12 && cli_fill(&c, 3000) > 0)
        ;
    ck_assert_msg(cli_pending(&c) >= body + 12 &&
                  memcmp(c.rx + c.off + body, "HTTP/1.1 200", 12) == 0,
                  "control: the second pipelined GET got no 200");
    cli_close(&c);

    for (int round = 0; round < 20; round++)
        for (size_t i = 0; i < sizeof smuggle / sizeof smuggle[0]; i++)
            expect_one_response(s.port, smuggle[i].req, 400, smuggle[i].name);
    good_check(&g, "after the smuggling attempts");
    rss_check(&r, 8, "request smuggling");
    cli_close(&g.c);
    srv_stop(&s);
}
END_TEST

/* ---- 7. nicks ------------------------------------------------------------ */

static const char *const bad_query_nicks[] = {
    "%E2%80%AEalice",           /* U+202E right-to-left override */
    "al%E2%80%8Bice",           /* U+200B zero-width space */
    "bob%20",                   /* trailing space */
    "bob+",                     /* trailing space, form-encoded */
    "%20bob",                   /* leading space */
    "bob%C2%A0",                /* trailing no-break space */
    "%EF%BB%BFbob",             /* U+FEFF byte order mark */
    "eve%E2%81%A6",             /* U+2066 left-to-right isolate */
};

static const char *const bad_change_nicks[] = {
    "\xE2\x80\xAE" "carol",     /* U+202E, raw UTF-8 */
    "\\u202Ecarol",             /* U+202E, JSON escape */
    "car\xE2\x80\x8Bol",        /* U+200B, raw */
    "car\\u200bol",             /* U+200B, escaped */
    "carol ",
    " carol",
    "carol\\u00a0",
    "\\ufeffcarol",
    "ca\\u200drol",             /* a zero-width joiner between letters */
    "carol\\u2066",
};

/*
 * ?nick= with a bidi override, a zero-width space or an edge space: a
 * bad_nick error event and a guest nick. A nick change to such a value:
 * bad_nick and the nick unchanged, nothing published. Then 2000 such
 * changes (rate_limit 0): 2000 bad_nick errors, nothing else.
 */
START_TEST(nick_spoofing)
{
    struct server s;
    start(&s, "workers 1\nrate_limit 0");
    struct good g;
    good_open(&g, s.port);
    struct member obs, carol;
    member_open(&obs, s.port, "/chat/nk?nick=obs", NULL, 0);
    struct rss r;
    rss_begin(&r, &s);

    for (size_t i = 0; i < sizeof bad_query_nicks / sizeof bad_query_nicks[0]; i++) {
        struct member m;
        char path[128], err[32];
        snprintf(path, sizeof path, "/chat/nk?nick=%s", bad_query_nicks[i]);
        member_open(&m, s.port, path, err, sizeof err);
        ck_assert_msg(strcmp(err, "bad_nick") == 0, "%s: error \"%s\", want bad_nick", path,
                      err);
        ck_assert_msg(strncmp(m.nick, "guest-", 6) == 0, "%s: nick \"%s\", want a guest nick",
                      path, m.nick);
        struct ev e;
        int64_t end = it_now_ms() + 5000;
        for (;;) {
            member_expect(&obs, "join", &e, left_ms(end), "observer");
            int his = strcmp(ev_str(&e, "uid"), m.uid) == 0;
            if (his)
                ck_assert_msg(strcmp(ev_str(&e, "nick"), m.nick) == 0, "%s: joined as \"%s\"",
                              path, ev_str(&e, "nick"));
            ev_free(&e);
            if (his)
                break;
        }
        member_close(&m);
    }

    member_open(&carol, s.port, "/chat/nk?nick=carol", NULL, 0);
    ck_assert_str_eq(carol.nick, "carol");
    char buf[256];
    for (size_t i = 0; i < sizeof bad_change_nicks / sizeof bad_change_nicks[0]; i++) {
        int n = snprintf(buf, sizeof buf, "{\"type\":\"nick\",\"nick\":\"%s\"}",
                         bad_change_nicks[i]);
        member_say(&carol, buf, (size_t)n);
        struct ev e;
        member_expect(&carol, "error", &e, 5000, "carol");
        ck_assert_msg(strcmp(ev_str(&e, "code"), "bad_nick") == 0, "nick \"%s\": error %s, "
                      "want bad_nick", bad_change_nicks[i], ev_str(&e, "code"));
        ev_free(&e);
    }
    /* Volume: 2000 refused changes, each answered, none published. */
    int n = snprintf(buf, sizeof buf, "{\"type\":\"nick\",\"nick\":\"\\u202Ecarol\"}");
    uint8_t *one = NULL;
    size_t olen = 0, ocap = 0;
    wsc_frame_append(&one, &olen, &ocap, WS_FIN | WS_OP_TEXT, buf, (size_t)n);
    uint8_t *many = repeat(one, olen, 2000);
    ck_assert_int_eq(cli_send(&carol.c, many, olen * 2000), 0);
    free(one);
    free(many);
    member_say(&carol, "still-carol", 11);
    int refused = 0;
    int64_t end = it_now_ms() + 10000;
    for (;;) {
        struct ev e;
        ck_assert_msg(member_next(&carol, &e, left_ms(end)) == 1, "carol: %d of 2000 bad_nick, "
                      "then nothing", refused);
        ck_assert_msg(!ev_from(&e, "nick", carol.uid), "a refused nick change was published");
        if (ev_is(&e, "error")) {
            ck_assert_str_eq(ev_str(&e, "code"), "bad_nick");
            refused++;
        }
        int done = ev_is(&e, "message") && strcmp(ev_str(&e, "text"), "still-carol") == 0;
        if (done)
            ck_assert_msg(strcmp(ev_str(&e, "nick"), "carol") == 0, "carol is now \"%s\"",
                          ev_str(&e, "nick"));
        ev_free(&e);
        if (done)
            break;
    }
    ck_assert_int_eq(refused, 2000);
    /* The observer saw carol's message under her nick and no nick event of hers. */
    end = it_now_ms() + 5000;
    for (;;) {
        struct ev e;
        ck_assert_msg(member_next(&obs, &e, left_ms(end)) == 1, "observer: no still-carol");
        ck_assert_msg(!ev_from(&e, "nick", carol.uid), "the observer saw a nick change of carol");
        int done = ev_from(&e, "message", carol.uid);
        if (done)
            ck_assert_str_eq(ev_str(&e, "nick"), "carol");
        ev_free(&e);
        if (done)
            break;
    }
    good_check(&g, "after the nick spoofing");
    rss_check(&r, 8, "spoofed nicks");
    member_close(&carol);
    member_close(&obs);
    cli_close(&g.c);
    srv_stop(&s);
}
END_TEST

/* ---- 8. slow reader of a busy room --------------------------------------- */

#define BUSY_MSGS 10000
#define BUSY_TEXT 4000

struct reader {
    struct member m;
    int next;                   /* index of the next message expected */
    int saw_leave;              /* the slow member's leave */
};

/* Read R until it has every message up to WANT (in order) within TIMEOUT_MS. */
static void reader_until(struct reader *r, int want, const char *slow_uid, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    while (r->next < want) {
        struct ev e;
        int rc = member_next(&r->m, &e, left_ms(end));
        ck_assert_msg(rc == 1, "%s: %s at message %d of %d (close code %d)", r->m.nick,
                      rc == 0 ? "closed" : "timeout", r->next, want, r->m.code);
        if (ev_is(&e, "message")) {
            int idx = -1;
            const char *t = ev_str(&e, "text");
            ck_assert_msg(t != NULL && sscanf(t, "b%d", &idx) == 1 && idx == r->next,
                          "%s: message %.8s, want b%05d", r->m.nick, t, r->next);
            ck_assert_uint_eq(ev_len(&e, "text"), BUSY_TEXT);
            r->next++;
        }
        r->saw_leave |= ev_from(&e, "leave", slow_uid);
        ev_free(&e);
    }
}

/*
 * A member of a busy room never reads (16 KiB receive buffer) while the
 * room carries 10,000 messages of 4 KB: it is closed with 1013 once more
 * than max_send_queue (64k) behind; two readers and the publisher receive
 * every message in order. An unbounded server would keep 40 MB for it.
 */
START_TEST(slow_reader_of_busy_room)
{
    struct server s;
    start(&s, "workers 1\nmax_send_queue 64k\nrate_limit 0\nhistory_size 0\nclose_timeout 20s");
    struct good g;
    good_open(&g, s.port);
    struct member slow;
    memset(&slow, 0, sizeof slow);
    connect_small(&slow.c, s.port, 16384, 0);
    member_upgrade(&slow, "/chat/busy?nick=slow", NULL, 0);
    static struct reader rd[3];
    static const char *const paths[] = { "/chat/busy?nick=r1", "/chat/busy?nick=r2",
                                         "/chat/busy?nick=pub" };
    for (int i = 0; i < 3; i++) {
        memset(&rd[i], 0, sizeof rd[i]);
        member_open(&rd[i].m, s.port, paths[i], NULL, 0);
    }
    struct member *pub = &rd[2].m;
    struct rss r;
    rss_begin(&r, &s);

    static char text[BUSY_TEXT + 1];
    for (int sent = 0; sent < BUSY_MSGS;) {
        for (int k = 0; k < 8; k++, sent++) {
            memset(text, 'a' + sent % 26, BUSY_TEXT);
            int n = snprintf(text, 16, "b%05d", sent);
            text[n] = ' ';
            member_say(pub, text, BUSY_TEXT);
        }
        for (int i = 0; i < 3; i++)
            reader_until(&rd[i], sent, slow.uid, 10000);
        if (sent % 1000 == 0)
            good_check(&g, "while the room is busy");
        if (sent == BUSY_MSGS / 2)
            rss_check(&r, 8, "busy room, halfway");
    }
    rss_check(&r, 8, "busy room with a slow reader");
    good_check(&g, "after the busy room");
    int64_t end = it_now_ms() + 5000;
    while (!rd[0].saw_leave && left_ms(end) > 0) {
        struct ev e;
        if (member_next(&rd[0].m, &e, left_ms(end)) != 1)
            break;
        rd[0].saw_leave |= ev_from(&e, "leave", slow.uid);
        ev_free(&e);
    }
    ck_assert_msg(rd[0].saw_leave, "the readers never saw the slow member leave");
    for (int i = 0; i < 3; i++)
        ck_assert_msg(!rd[i].m.closed, "%s was closed (%d)", rd[i].m.nick, rd[i].m.code);
    /* The slow member, reading at last, finds a 1013 close after what it got. */
    int skipped = 0;
    int code = wsc_read_close(&slow.c, 10000, &skipped, NULL, 0);
    fprintf(stderr, "abuse: slow reader got %d frames, then close %d\n", skipped, code);
    ck_assert_msg(code == 1013, "slow member: close %d, want 1013", code);
    ck_assert_msg(skipped < BUSY_MSGS / 2, "the slow member got %d frames", skipped);
    member_close(&slow);
    for (int i = 0; i < 3; i++)
        member_close(&rd[i].m);
    cli_close(&g.c);
    srv_stop(&s);
}
END_TEST

/* ---- 9. more: heads, handshakes, churn, big echoes ----------------------- */

/*
 * A request head that never ends: header lines for up to 20 MB, never the
 * blank line. max_request_head 8k: 431 (conf), the connection closes, and
 * the worker does not buffer the head; an unbounded one would hold 20 MB.
 */
START_TEST(endless_request_head_431)
{
    struct server s;
    start(&s, "workers 1\nmax_request_head 8k");
    struct good g;
    good_open(&g, s.port);
    struct rss r;
    rss_begin(&r, &s);

    static const char line[] = "X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    uint8_t *chunk = repeat(line, sizeof line - 1, (1u << 20) / (sizeof line - 1));
    size_t clen = (1u << 20) / (sizeof line - 1) * (sizeof line - 1), sent = 0;
    struct client a;
    connect_small(&a, s.port, 0, 65536);
    ck_assert_int_eq(cli_sendstr(&a, "GET /chat.js HTTP/1.1\r\nHost: x\r\n"), 0);
    int answered = 0;
    while (sent < (20u << 20) && !answered) {
        int stalled, err;
        sent += push_unread(a.fd, chunk, clen, 500, 2000, &stalled, &err);
        answered = cli_fill(&a, 0) >= 0 || err != 0;
    }
    struct httpc_resp h;
    int st = httpc_read_head(&a, &h, 3000);
    fprintf(stderr, "abuse: endless head: %d after %zu bytes\n", st, sent);
    ck_assert_msg(st == 431, "endless head: status %d, want 431", st);
    ck_assert_msg(cli_expect_closed(&a, 5000), "connection still open after the 431");
    rss_check(&r, 8, "endless request head");
    good_check(&g, "after the endless head");
    free(chunk);
    cli_close(&a);
    cli_close(&g.c);
    srv_stop(&s);
}
END_TEST

#define LORIS_N 200

/*
 * 200 connections that never finish their handshake (half stop inside a
 * 4 KB header, half send nothing): all closed after handshake_timeout (1s),
 * checked by the 250 ms timer, while an established WebSocket is served.
 */
START_TEST(handshakes_never_completed)
{
    struct server s;
    start(&s, "workers 1\nhandshake_timeout 1s");
    struct good g;
    good_open(&g, s.port);
    struct rss r;
    rss_begin(&r, &s);

    static char partial[4200];
    int n = snprintf(partial, sizeof partial, "GET /echo HTTP/1.1\r\nHost: x\r\n"
                     "Upgrade: websocket\r\nX-Pad: ");
    memset(partial + n, 'a', 4000);
    static struct client c[LORIS_N];
    int64_t t0 = it_now_ms(), first = 0, last = 0;
    for (int i = 0; i < LORIS_N; i++) {
        ck_assert_int_eq(cli_connect(&c[i], s.port), 0);
        if (i % 2 == 0)
            ck_assert_int_eq(cli_send(&c[i], partial, (size_t)n + 4000), 0);
    }
    int open = LORIS_N, checked = 0;
    while (open > 0 && it_now_ms() - t0 < 4000) {
        struct pollfd p[LORIS_N];
        for (int i = 0; i < LORIS_N; i++)
            p[i] = (struct pollfd){ c[i].fd, POLLIN, 0 };
        poll(p, LORIS_N, 100);
        for (int i = 0; i < LORIS_N; i++)
            if (c[i].fd >= 0 && p[i].revents && cli_fill(&c[i], 0) == 0) {
                ck_assert_msg(cli_pending(&c[i]) == 0, "a half-sent head got an answer");
                cli_close(&c[i]);
                last = it_now_ms() - t0;
                if (first == 0)
                    first = last;
                open--;
            }
        if (!checked && it_now_ms() - t0 >= 500) {
            rss_check(&r, 8, "200 handshakes under way");
            checked = 1;
        }
        good_check(&g, "while handshakes hang");
    }
    fprintf(stderr, "abuse: unfinished handshakes closed from %lld to %lld ms\n",
            (long long)first, (long long)last);
    ck_assert_msg(open == 0, "%d of %d unfinished handshakes still open after 4 s "
                  "(handshake_timeout 1s)", open, LORIS_N);
    ck_assert_msg(first >= 700, "an unfinished handshake closed after %lld ms", (long long)first);
    rss_check(&r, 8, "after the unfinished handshakes");
    struct client f;
    wsc_open(&f, s.port);
    wsc_echo_check(&f, WS_OP_TEXT, "fresh", 5);
    cli_close(&f);
    good_check(&g, "after the unfinished handshakes");
    cli_close(&g.c);
    srv_stop(&s);
}
END_TEST

#define CHURN_N 2000

/*
 * 2,000 connections opened and reset at once: a quarter silent, a quarter
 * inside a head, a quarter right after a chat upgrade request, a quarter
 * after a GET. The good client is served throughout; afterwards the worker
 * holds only it (conns_current), the chat room has no ghost member, and
 * the RSS is back near the baseline.
 */
START_TEST(connect_reset_churn)
{
    struct server s;
    start(&s, "workers 1");
    struct good g;
    good_open(&g, s.port);
    struct member m0;
    member_open(&m0, s.port, "/chat/churn?nick=first", NULL, 0);
    member_close(&m0);
    struct rss r;
    rss_begin(&r, &s);

    char up[512];
    for (int i = 0; i < CHURN_N; i++) {
        struct client c;
        ck_assert_msg(cli_connect(&c, s.port) == 0, "connect %d: %s", i, strerror(errno));
        switch (i % 4) {
        case 1:
            cli_sendstr(&c, "GET /chat HTTP/1.1\r\nHost: x\r\nUpgr");
            break;
        case 2:
            snprintf(up, sizeof up, "GET /chat/churn?nick=c%d HTTP/1.1\r\nHost: x\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
                     "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", i);
            cli_sendstr(&c, up);
            break;
        case 3:
            cli_sendstr(&c, "GET /chat.js HTTP/1.1\r\nHost: x\r\n\r\n");
            break;
        default:
            break;
        }
        cli_abort(&c);
        if (i % 250 == 0)
            good_check(&g, "during the connect/reset churn");
    }
    /* conns_current counts the good client and the /stats request itself. */
    ck_assert_msg(WAIT_FOR(stats_total(s.port, "conns_current") == 2, 5000),
                  "%lld connections still open after the churn", stats_total(s.port,
                  "conns_current"));
    ck_assert_int_eq(stats_total(s.port, "ws_current"), 1);
    struct member m;
    member_open(&m, s.port, "/chat/churn?nick=after", NULL, 0);
    struct ev e;
    member_expect(&m, "join", &e, 5000, "after the churn");
    ck_assert_msg(ev_num(&e, "online") == 1, "room churn: %llu online after the churn",
                  (unsigned long long)ev_num(&e, "online"));
    ev_free(&e);
    member_close(&m);
    rss_check(&r, 4, "2000 connect/reset");
    good_check(&g, "after the churn");
    cli_close(&g.c);
    srv_stop(&s);
}
END_TEST

#define BIG_N 64
#define BIG_LEN (1u << 20)

/*
 * An /echo client sends 1 MiB binary messages (max_message 1m) and never
 * reads: once one echo waits unsent the server reads no more of it. An
 * unbounded server would queue 64 MiB of echoes. Then it reads every
 * echo of what it sent, intact, and the connection is still usable.
 */
START_TEST(echo_big_messages_never_read)
{
    struct server s;
    start(&s, "workers 1\nmax_send_queue 64k\nmax_message 1m");
    struct good g;
    good_open(&g, s.port);
    struct rss r;
    rss_begin(&r, &s);

    uint8_t *p = it_make_binary(BIG_LEN, 7);
    size_t flen;
    uint8_t *frame = wsc_frame_build(WS_FIN | WS_OP_BIN, p, BIG_LEN, &flen);
    struct client a;
    connect_small(&a, s.port, 16384, 65536);
    ck_assert_int_eq(wsc_handshake(&a, "/echo", NULL, NULL, 0), 101);
    size_t sent = 0;
    int stalled = 0, err = 0;
    while (sent < flen * BIG_N && !stalled && !err) {
        size_t off = sent % flen;
        sent += push_unread(a.fd, frame + off, flen - off, 1000, 3000, &stalled, &err);
        good_check(&g, "during the big unread echoes");
    }
    fprintf(stderr, "abuse: big echoes: %zu bytes (%.1f messages) written before the server "
            "stopped reading\n", sent, (double)sent / (double)flen);
    ck_assert_msg(err == 0, "echo connection failed: %s", strerror(err));
    ck_assert_msg(stalled, "the server read %zu bytes of 1 MiB messages nobody reads", sent);
    rss_check(&r, 8, "1 MiB echoes never read");
    good_check(&g, "after the big unread echoes");

    if (sent % flen != 0)
        ck_assert_int_eq(cli_send(&a, frame + sent % flen, flen - sent % flen), 0);
    size_t msgs = (sent + flen - 1) / flen;
    for (size_t i = 0; i < msgs; i++) {
        struct wsc_msg m;
        ck_assert_msg(wsc_recv(&a, &m, 10000) == 1, "echo %zu of %zu missing", i, msgs);
        ck_assert_msg(m.opcode == WS_OP_BIN && m.len == BIG_LEN && memcmp(m.data, p, BIG_LEN) == 0,
                      "echo %zu: opcode %d, %zu bytes", i, m.opcode, m.len);
        wsc_msg_free(&m);
    }
    wsc_echo_check(&a, WS_OP_TEXT, "done", 4);
    rss_check(&r, 8, "after the big echoes were read");
    good_check(&g, "after the big echoes");
    free(frame);
    free(p);
    cli_close(&a);
    cli_close(&g.c);
    srv_stop(&s);
}
END_TEST

/* ---- ip_publish_rate: one address, many connections and rooms ------------ */

#define PUB_RATE   (16 * 1024)      /* ip_publish_rate of the test */
#define PUB_TEXT   3000             /* bytes of text per message */
#define PUB_EACH   40               /* messages per flooding connection */

/*
 * Three connections of one address, each in its own room, publish 3 KB
 * messages as fast as they can (rate_limit off): together they get no
 * more into the ring than the address's budget (4 s of ip_publish_rate)
 * plus what it earns meanwhile; the rest is refused with rate_limited and
 * never published. Closing every connection and coming back does not
 * refill the budget. /stats' ring head says what was written (join and
 * leave events included, hence the slack).
 */
START_TEST(address_publish_budget)
{
    struct server s;
    char conf[256];
    snprintf(conf, sizeof conf, "workers 2\nrate_limit 0\nmax_text 4k\nhistory_size 10\n"
             "ip_publish_rate %d", PUB_RATE);
    start(&s, conf);
    struct good g;
    good_open(&g, s.port);
    char *text = malloc(PUB_TEXT + 1);
    ck_assert_ptr_nonnull(text);
    memset(text, 'p', PUB_TEXT);
    text[PUB_TEXT] = '\0';
    struct member m[3];
    for (int i = 0; i < 3; i++) {
        char path[64];
        snprintf(path, sizeof path, "/chat/pub%d?nick=p%d", i, i);
        member_open(&m[i], s.port, path, NULL, 0);
    }
    long long head0 = stats_total(s.port, "head");
    int64_t t0 = it_now_ms();
    for (int k = 0; k < PUB_EACH; k++)
        for (int i = 0; i < 3; i++) {
            char msg[PUB_TEXT + 64];
            int n = snprintf(msg, sizeof msg, "{\"type\":\"message\",\"text\":\"%s\"}", text);
            member_say(&m[i], msg, (size_t)n);
        }
    /* Every input gets its answer: the message back, or rate_limited. */
    int sent = 0, refused = 0;
    for (int i = 0; i < 3; i++) {
        int answers = 0;
        while (answers < PUB_EACH) {
            struct ev e;
            ck_assert_msg(member_next(&m[i], &e, 10000) == 1, "member %d: %d of %d answers", i,
                          answers, PUB_EACH);
            if (ev_from(&e, "message", m[i].uid)) {
                sent++;
                answers++;
            } else if (ev_is(&e, "error")) {
                ck_assert_str_eq(ev_str(&e, "code"), "rate_limited");
                refused++;
                answers++;
            }
            ev_free(&e);
        }
    }
    double secs = (double)(it_now_ms() - t0) / 1000.0;
    long long written = stats_total(s.port, "head") - head0;
    long long allowed = 4LL * PUB_RATE + (long long)(secs * PUB_RATE) + 2 * (PUB_TEXT + 300);
    fprintf(stderr, "abuse: address budget: %d published, %d refused in %.2f s, %lld ring bytes "
            "(allowed %lld)\n", sent, refused, secs, written, allowed);
    ck_assert_msg(refused > 0, "3 x %d messages of %d bytes, none refused", PUB_EACH, PUB_TEXT);
    ck_assert_msg(written <= allowed, "the address wrote %lld ring bytes, budget %lld", written,
                  allowed);
    good_check(&g, "after the publish flood");

    /*
     * Gone and back at once: the budget is not refilled by reconnecting.
     * Over both rounds the address gets no more into the ring than one
     * budget plus what the whole test's duration earns (so a reconnect that
     * refilled it would show as a second budget, whatever the speed).
     */
    for (int i = 0; i < 3; i++)
        member_close(&m[i]);
    struct member again;
    member_open(&again, s.port, "/chat/pub0?nick=back", NULL, 0);
    char msg[PUB_TEXT + 64];
    int n = snprintf(msg, sizeof msg, "{\"type\":\"message\",\"text\":\"%s\"}", text);
    for (int k = 0; k < PUB_EACH; k++)
        member_say(&again, msg, (size_t)n);
    for (int answers = 0; answers < PUB_EACH;) {
        struct ev e;
        ck_assert_msg(member_next(&again, &e, 10000) == 1, "reconnected: %d of %d answers",
                      answers, PUB_EACH);
        if (ev_from(&e, "message", again.uid) || ev_is(&e, "error"))
            answers++;
        ev_free(&e);
    }
    secs = (double)(it_now_ms() - t0) / 1000.0;
    written = stats_total(s.port, "head") - head0;
    allowed = 4LL * PUB_RATE + (long long)(secs * PUB_RATE) + 3 * (PUB_TEXT + 300) + 1024;
    fprintf(stderr, "abuse: address budget after a reconnect: %lld ring bytes in %.2f s "
            "(allowed %lld)\n", written, secs, allowed);
    ck_assert_msg(written <= allowed, "after a reconnect the address wrote %lld ring bytes in "
                  "%.2f s, budget %lld", written, secs, allowed);
    member_close(&again);
    cli_close(&g.c);
    free(text);
    srv_stop(&s);
}
END_TEST

/*
 * Join/leave churn in a small room (individual join and leave events go
 * into the ring) from one address: charged to ip_publish_rate, so 3,000
 * cycles through a 1 MiB ring (about 1.4 MB of join/leave events if all
 * were written) leave the room's 20 messages replayable; the churner's
 * members beyond its budget join unannounced.
 */
START_TEST(presence_churn_keeps_history)
{
    struct server s;
    start(&s, "workers 1\nrate_limit 0\nhistory_size 20\nring_size 1m\n"
          "ip_publish_rate 16k");
    struct member a;
    member_open(&a, s.port, "/chat/churn?nick=writer", NULL, 0);
    for (int i = 0; i < 20; i++) {
        char text[32];
        snprintf(text, sizeof text, "keep-%02d", i);
        member_say(&a, text, strlen(text));
        member_wait_text(&a, text, 5000);
    }
    long long head0 = stats_total(s.port, "head");
    int64_t t0 = it_now_ms();
    for (int i = 0; i < 3000; i++) {
        struct client c;
        ck_assert_int_eq(cli_connect(&c, s.port), 0);
        ck_assert_int_eq(wsc_handshake(&c, "/chat/churn?nick=churn", NULL, NULL, 0), 101);
        cli_abort(&c);
    }
    double secs = (double)(it_now_ms() - t0) / 1000.0;
    it_sleep_ms(200);   /* the last leaves */
    long long written = stats_total(s.port, "head") - head0;
    long long allowed = 4LL * 16384 + (long long)(secs * 16384) + 4096;
    fprintf(stderr, "abuse: presence churn: 3000 join/leave cycles in %.2f s wrote %lld ring "
            "bytes (allowed %lld)\n", secs, written, allowed);
    ck_assert_msg(written <= allowed, "join/leave churn wrote %lld ring bytes, budget %lld",
                  written, allowed);

    /* A newcomer still gets the 20 messages as history. */
    struct member b;
    memset(&b, 0, sizeof b);
    ck_assert_int_eq(cli_connect(&b.c, s.port), 0);
    ck_assert_int_eq(wsc_handshake(&b.c, "/chat/churn?nick=late", NULL, NULL, 0), 101);
    int kept = 0;
    for (;;) {
        struct ev e;
        ck_assert_msg(member_next(&b, &e, 5000) == 1, "newcomer: no history_end");
        int end = ev_is(&e, "history_end");
        const char *t = ev_str(&e, "text");
        if (ev_is(&e, "message") && t != NULL && strncmp(t, "keep-", 5) == 0)
            kept++;
        ev_free(&e);
        if (end)
            break;
    }
    ck_assert_msg(kept == 20, "the newcomer got %d of the room's 20 messages", kept);
    member_close(&b);
    member_close(&a);
    srv_stop(&s);
}
END_TEST

Suite *abuse_suite(void)
{
    Suite *s = suite_create("abuse");
    TCase *tc = tcase_create("hostile_clients");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, tiny_frames_never_read);
    tcase_add_test(tc, pipelined_gets_never_read);
    tcase_add_test(tc, replay_since_never_read);
    tcase_add_test(tc, fragments_over_reassembly_budget);
    tcase_add_test(tc, fragment_held_past_message_timeout);
    tcase_add_test(tc, fragment_silent_past_message_timeout);
    tcase_add_test(tc, rate_limit_floods);
    tcase_add_test(tc, request_smuggling);
    tcase_add_test(tc, nick_spoofing);
    tcase_add_test(tc, slow_reader_of_busy_room);
    tcase_add_test(tc, endless_request_head_431);
    tcase_add_test(tc, handshakes_never_completed);
    tcase_add_test(tc, connect_reset_churn);
    tcase_add_test(tc, echo_big_messages_never_read);
    tcase_add_test(tc, address_publish_budget);
    tcase_add_test(tc, presence_churn_keeps_history);
    suite_add_tcase(s, tc);
    return s;
}
