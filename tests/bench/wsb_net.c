/*
 * wsb_net: the client side of RFC 6455 and the epoll loop that drives it.
 *
 * A connection goes IDLE -> CONNECTING (non-blocking connect) -> HANDSHAKE
 * (request sent, §4.1) -> OPEN -> CLOSING (§7: close sent or received,
 * waiting for the server to drop TCP first, §7.1.1) -> DONE. Each state
 * change past IDLE is reported to the scenario through wsb_handlers; DONE
 * is reported exactly once and the fd and buffers are gone by then.
 *
 * Memory: reads land in one loop-wide buffer and only an unfinished frame
 * is copied to the connection (c->in), so 19,000 idle connections cost
 * their struct and nothing more. Output is written at once and only what
 * the socket refuses is kept (c->out). Every buffer has a bound.
 *
 * Source addresses rotate over 127.0.0.2..250 with IP_BIND_ADDRESS_NO_PORT
 * so the ephemeral port range is per source address, not per run.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#include "wsb.h"

#define SCRATCH_SIZE   (256 * 1024)
#define READ_CHUNK     (64 * 1024)
#define HEAD_MAX       (16 * 1024)      /* bound on the 101 response head */
#define MAX_MSG        (64u * 1024 * 1024)
#define MAX_OUT        (16u * 1024 * 1024)
#define SWEEP_NS       (50u * 1000 * 1000)
#define SRC_FIRST      2
#define SRC_LAST       250

struct wsb_loop {
    int      epfd, tfd;
    const struct wsb_opts *o;
    struct wsb_handlers h;
    void    *ud;
    struct sockaddr_in target;
    char     host_hdr[96];
    unsigned src_next;
    char    *scratch;
    char    *obuf;            /* one frame being built, MAX_OUT bytes max */
    size_t   obuf_cap;
    int      npending, nclosing;
    struct wsb_conn *timed;   /* pending and closing conns, for timeouts */
    uint64_t last_sweep, connect_timeout_ns, close_timeout_ns;
    uint64_t last_result_ns;  /* last open or failure, for open rates */
    uint64_t rx_ns;           /* when the bytes being parsed arrived */
    struct wsb_hist *hs_hist;
    struct wsb_loop_stats st;
};

/* Frame header fields (RFC 6455 §5.2). */
struct frame {
    int      fin, rsv, opcode, masked;
    uint64_t len;
};

static const char *fail_names[WSB_FAIL_COUNT] = {
    "none", "refused", "timeout", "bad_status", "bad_accept", "reset",
    "protocol", "overflow", "other"
};

const char *wsb_fail_name(int reason)
{
    return reason >= 0 && reason < WSB_FAIL_COUNT ? fail_names[reason] : "?";
}

/* ---- the timed list: conns that can expire ---------------------------- */

static int is_timed(const struct wsb_conn *c)
{
    return c->state == WSB_ST_CONNECTING || c->state == WSB_ST_HANDSHAKE ||
           c->state == WSB_ST_CLOSING;
}

static void timed_add(struct wsb_loop *l, struct wsb_conn *c)
{
    c->tprev = NULL;
    c->tnext = l->timed;
    if (l->timed)
        l->timed->tprev = c;
    l->timed = c;
}

static void timed_del(struct wsb_loop *l, struct wsb_conn *c)
{
    if (c->tprev) c->tprev->tnext = c->tnext;
    else          l->timed = c->tnext;
    if (c->tnext) c->tnext->tprev = c->tprev;
    c->tprev = c->tnext = NULL;
}

/* Every state change goes through here so counters and lists stay exact. */
static void set_state(struct wsb_loop *l, struct wsb_conn *c, int st)
{
    int was_timed = is_timed(c);
    if (c->state == WSB_ST_CONNECTING || c->state == WSB_ST_HANDSHAKE)
        l->npending--;
    if (c->state == WSB_ST_CLOSING)
        l->nclosing--;
    c->state = (uint8_t)st;
    c->t_state = wsb_now_ns();
    if (st == WSB_ST_CONNECTING || st == WSB_ST_HANDSHAKE)
        l->npending++;
    if (st == WSB_ST_CLOSING)
        l->nclosing++;
    if (was_timed && !is_timed(c))
        timed_del(l, c);
    else if (!was_timed && is_timed(c))
        timed_add(l, c);
}

/* ---- loop ------------------------------------------------------------- */

struct wsb_loop *wsb_loop_create(const struct wsb_opts *o,
                                 const struct wsb_handlers *h, void *ud)
{
    struct wsb_loop *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->o = o;
    l->h = *h;
    l->ud = ud;
    l->src_next = SRC_FIRST;
    l->connect_timeout_ns = (uint64_t)(o->connect_timeout * 1e9);
    l->close_timeout_ns = (uint64_t)(o->close_timeout * 1e9);
    l->target.sin_family = AF_INET;
    l->target.sin_port = htons(o->port);
    inet_pton(AF_INET, o->host, &l->target.sin_addr);
    snprintf(l->host_hdr, sizeof l->host_hdr, "%s:%u", o->host, o->port);
    l->scratch = malloc(SCRATCH_SIZE);
    l->obuf_cap = 64 * 1024;
    l->obuf = malloc(l->obuf_cap);
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (!l->scratch || !l->obuf || l->epfd < 0 || l->tfd < 0) {
        wsb_loop_destroy(l);
        return NULL;
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->tfd, &ev);
    return l;
}

void wsb_loop_destroy(struct wsb_loop *l)
{
    if (!l)
        return;
    if (l->epfd >= 0) close(l->epfd);
    if (l->tfd >= 0) close(l->tfd);
    free(l->scratch);
    free(l->obuf);
    free(l);
}

const struct wsb_loop_stats *wsb_loop_stats(const struct wsb_loop *l)
{
    return &l->st;
}

int wsb_loop_pending(const struct wsb_loop *l) { return l->npending; }
uint64_t wsb_loop_rx_ns(const struct wsb_loop *l) { return l->rx_ns; }
int wsb_loop_closing(const struct wsb_loop *l) { return l->nclosing; }

void wsb_loop_arm(struct wsb_loop *l, uint64_t t_ns)
{
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    if (t_ns) {
        its.it_value.tv_sec = (time_t)(t_ns / 1000000000u);
        its.it_value.tv_nsec = (long)(t_ns % 1000000000u);
    }
    timerfd_settime(l->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* ---- finishing -------------------------------------------------------- */

static void conn_finish(struct wsb_loop *l, struct wsb_conn *c)
{
    if (c->state == WSB_ST_DONE || c->state == WSB_ST_IDLE)
        return;
    if (c->fd >= 0)
        close(c->fd);        /* also removes it from the epoll set */
    c->fd = -1;
    free(c->in);  c->in = NULL;  c->in_len = c->in_cap = 0;
    free(c->out); c->out = NULL; c->out_len = c->out_off = c->out_cap = 0;
    free(c->msg); c->msg = NULL; c->msg_len = c->msg_cap = 0;
    if (!c->was_open)
        l->last_result_ns = wsb_now_ns();
    set_state(l, c, WSB_ST_DONE);
    if (l->h.on_done)
        l->h.on_done(c, l->ud);
}

void wsb_conn_abort(struct wsb_loop *l, struct wsb_conn *c, int reason)
{
    if (c->state == WSB_ST_DONE || c->state == WSB_ST_IDLE)
        return;
    if (c->fail == WSB_FAIL_NONE && reason != WSB_FAIL_NONE) {
        c->fail = (uint8_t)reason;
        l->st.fail[reason]++;
    }
    conn_finish(l, c);
}

/* ---- output ----------------------------------------------------------- */

static void set_events(struct wsb_loop *l, struct wsb_conn *c, int want_out)
{
    if (c->want_out == want_out)
        return;
    struct epoll_event ev = { .events = EPOLLIN | (want_out ? EPOLLOUT : 0),
                              .data.ptr = c };
    epoll_ctl(l->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = (uint8_t)want_out;
}

/* Keep bytes the socket did not take; -1 when that passes the bound. */
static int out_keep(struct wsb_conn *c, const char *p, size_t n)
{
    if (c->out_off > 0 && c->out_len + n > c->out_cap) {
        memmove(c->out, c->out + c->out_off, c->out_len);
        c->out_off = 0;
    }
    if (c->out_off + c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + n)
            cap *= 2;
        if (cap > MAX_OUT)
            return -1;
        char *nb = realloc(c->out, cap);
        if (!nb)
            return -1;
        c->out = nb;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_off + c->out_len, p, n);
    c->out_len += n;
    return 0;
}

/* Write p (or, with p NULL, the kept output). 0, or -1 after an abort. */
static int conn_write(struct wsb_loop *l, struct wsb_conn *c,
                      const char *p, size_t n)
{
    if (c->out_len > 0 && p) {
        /* Order matters: new bytes go behind what is already waiting. */
        if (out_keep(c, p, n) < 0) {
            wsb_conn_abort(l, c, WSB_FAIL_OVERFLOW);
            return -1;
        }
        return 0;
    }
    if (!p) {
        p = c->out + c->out_off;
        n = c->out_len;
    }
    size_t done = 0;
    while (done < n) {
        ssize_t w = send(c->fd, p + done, n - done, MSG_NOSIGNAL);
        if (w > 0) {
            done += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        wsb_conn_abort(l, c, WSB_FAIL_RESET);
        return -1;
    }
    l->st.bytes_out += done;
    if (p == c->out + c->out_off) {
        c->out_off += done;
        c->out_len -= done;
        if (c->out_len == 0) {
            free(c->out);
            c->out = NULL;
            c->out_off = c->out_cap = 0;
        }
    } else if (done < n && out_keep(c, p + done, n - done) < 0) {
        wsb_conn_abort(l, c, WSB_FAIL_OVERFLOW);
        return -1;
    }
    if (c->state != WSB_ST_CONNECTING)
        set_events(l, c, c->out_len > 0);
    return 0;
}

/* Header (minimal length form, §5.2), mask key, masked payload (§5.3). */
static size_t frame_build(char *dst, int opcode, const void *p, size_t n)
{
    uint8_t *d = (uint8_t *)dst;
    size_t h = 0;
    d[h++] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        d[h++] = (uint8_t)(0x80 | n);
    } else if (n <= 0xFFFF) {
        d[h++] = 0x80 | 126;
        d[h++] = (uint8_t)(n >> 8);
        d[h++] = (uint8_t)n;
    } else {
        d[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            d[h++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    uint8_t key[4];
    wsb_random(key, sizeof key);
    memcpy(d + h, key, 4);
    h += 4;
    const uint8_t *s = p;
    for (size_t i = 0; i < n; i++)
        d[h + i] = s[i] ^ key[i & 3];
    return h + n;
}

int wsb_conn_send(struct wsb_loop *l, struct wsb_conn *c, int opcode,
                  const void *p, size_t n)
{
    if (c->state != WSB_ST_OPEN && !(c->state == WSB_ST_CLOSING &&
                                     opcode == WSB_OP_CLOSE))
        return -1;
    if (n + 14 > MAX_OUT) {
        wsb_conn_abort(l, c, WSB_FAIL_OVERFLOW);
        return -1;
    }
    if (n + 14 > l->obuf_cap) {
        size_t cap = l->obuf_cap;
        while (cap < n + 14)
            cap *= 2;
        char *nb = realloc(l->obuf, cap);
        if (!nb)
            return -1;
        l->obuf = nb;
        l->obuf_cap = cap;
    }
    size_t len = frame_build(l->obuf, opcode, p, n);
    l->st.frames_out++;
    return conn_write(l, c, l->obuf, len);
}

void wsb_conn_close(struct wsb_loop *l, struct wsb_conn *c, int code)
{
    if (c->state == WSB_ST_CONNECTING || c->state == WSB_ST_HANDSHAKE) {
        wsb_conn_abort(l, c, WSB_FAIL_NONE);
        return;
    }
    if (c->state != WSB_ST_OPEN || c->sent_close)
        return;
    uint8_t body[2] = { (uint8_t)(code >> 8), (uint8_t)code };
    set_state(l, c, WSB_ST_CLOSING);
    c->sent_close = 1;
    c->initiated = 1;
    wsb_conn_send(l, c, WSB_OP_CLOSE, body, sizeof body);
}

/* ---- connect and handshake -------------------------------------------- */

/* Rotate the source address so each gets its own ephemeral port range. */
static void bind_source(struct wsb_loop *l, int fd)
{
    if (!l->o->src_bind)
        return;
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = { .sin_family = AF_INET };
    src.sin_addr.s_addr = htonl(0x7F000000u | l->src_next);
    if (++l->src_next > SRC_LAST)
        l->src_next = SRC_FIRST;
    /* A failed bind leaves the kernel's choice, which still works. */
    (void)bind(fd, (struct sockaddr *)&src, sizeof src);
}

static void queue_request(struct wsb_loop *l, struct wsb_conn *c,
                          const char *path)
{
    uint8_t raw[16];
    wsb_random(raw, sizeof raw);
    wsb_base64(raw, sizeof raw, c->key);
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "User-Agent: wsbench\r\n\r\n",
                     path, l->host_hdr, c->key);
    if (n > 0 && (size_t)n < sizeof req)
        out_keep(c, req, (size_t)n);
}

int wsb_conn_start(struct wsb_loop *l, struct wsb_conn *c, const char *path)
{
    uint32_t id = c->id;
    memset(c, 0, sizeof *c);
    c->id = id;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->t_start = wsb_now_ns();
    if (c->fd < 0) {
        c->state = WSB_ST_DONE;
        c->fail = WSB_FAIL_OTHER;
        l->st.fail[WSB_FAIL_OTHER]++;
        return -1;
    }
    int one = 1;
    /* Latency is the figure: small frames must not wait for Nagle. */
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bind_source(l, c->fd);
    set_state(l, c, WSB_ST_CONNECTING);
    queue_request(l, c, path);

    struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN, .data.ptr = c };
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        wsb_conn_abort(l, c, WSB_FAIL_OTHER);
        return -1;
    }
    c->want_out = 1;
    int r = connect(c->fd, (struct sockaddr *)&l->target, sizeof l->target);
    if (r < 0 && errno != EINPROGRESS) {
        wsb_conn_abort(l, c, errno == ECONNREFUSED ? WSB_FAIL_REFUSED
                                                   : WSB_FAIL_OTHER);
        return -1;
    }
    return 0;
}

static int errno_reason(int e)
{
    switch (e) {
    case ECONNREFUSED: return WSB_FAIL_REFUSED;
    case ETIMEDOUT:    return WSB_FAIL_TIMEOUT;
    case ECONNRESET:
    case EPIPE:        return WSB_FAIL_RESET;
    default:           return WSB_FAIL_OTHER;
    }
}

static void conn_connected(struct wsb_loop *l, struct wsb_conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        wsb_conn_abort(l, c, errno_reason(err));
        return;
    }
    set_state(l, c, WSB_ST_HANDSHAKE);
    conn_write(l, c, NULL, 0);
}

/* Case-insensitive search for token tok in a comma list value. */
static int has_token(const char *v, size_t vn, const char *tok)
{
    size_t tn = strlen(tok);
    for (size_t i = 0; i + tn <= vn; i++) {
        if (strncasecmp(v + i, tok, tn) == 0 &&
            (i == 0 || v[i - 1] == ',' || v[i - 1] == ' ') &&
            (i + tn == vn || v[i + tn] == ',' || v[i + tn] == ' '))
            return 1;
    }
    return 0;
}

/* Check one header line of the 101 response; sets *seen bits. */
static int check_header(const char *line, size_t n, const char *accept,
                        int *seen)
{
    const char *colon = memchr(line, ':', n);
    if (!colon)
        return -1;
    size_t kn = (size_t)(colon - line);
    const char *v = colon + 1;
    size_t vn = n - kn - 1;
    while (vn && (*v == ' ' || *v == '\t')) { v++; vn--; }
    while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t')) vn--;

    if (kn == 7 && strncasecmp(line, "Upgrade", 7) == 0)
        *seen |= (vn == 9 && strncasecmp(v, "websocket", 9) == 0) ? 1 : 16;
    else if (kn == 10 && strncasecmp(line, "Connection", 10) == 0)
        *seen |= has_token(v, vn, "upgrade") ? 2 : 16;
    else if (kn == 20 && strncasecmp(line, "Sec-WebSocket-Accept", 20) == 0)
        *seen |= (vn == 28 && memcmp(v, accept, 28) == 0) ? 4 : 32;
    else if (kn == 24 && strncasecmp(line, "Sec-WebSocket-Extensions", 24) == 0)
        *seen |= 16;         /* we offered none, §4.1 says fail */
    return 0;
}

/*
 * Parse the response head in buf (§4.1 client requirements 1-5).
 * Returns its length when complete and valid, 0 if incomplete, -1 after
 * aborting the connection.
 */
static ssize_t handshake_parse(struct wsb_loop *l, struct wsb_conn *c,
                               const char *buf, size_t n)
{
    const char *end = memmem(buf, n, "\r\n\r\n", 4);
    if (!end) {
        if (n > HEAD_MAX)
            wsb_conn_abort(l, c, WSB_FAIL_STATUS);
        return n > HEAD_MAX ? -1 : 0;
    }
    size_t head = (size_t)(end - buf) + 4;
    int status = 0;
    if (head > 12 && memcmp(buf, "HTTP/1.1 ", 9) == 0)
        status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    c->http_status = (uint16_t)(status > 0 && status < 1000 ? status : 0);
    if (status != 101) {
        wsb_conn_abort(l, c, WSB_FAIL_STATUS);
        return -1;
    }
    char accept[29];
    wsb_accept_key(c->key, accept);
    int seen = 0;
    const char *line = memchr(buf, '\n', head) + 1;
    while (line < end + 2) {
        const char *eol = memchr(line, '\r', (size_t)(end + 2 - line));
        if (!eol || eol == line)
            break;
        if (check_header(line, (size_t)(eol - line), accept, &seen) < 0)
            seen |= 16;
        line = eol + 2;
    }
    if ((seen & 7) != 7 || (seen & 48)) {
        wsb_conn_abort(l, c, (seen & 32) || !(seen & 4) ? WSB_FAIL_ACCEPT
                                                        : WSB_FAIL_STATUS);
        return -1;
    }
    c->was_open = 1;
    l->last_result_ns = wsb_now_ns();
    if (l->hs_hist)
        wsb_hist_add(l->hs_hist, l->last_result_ns - c->t_start);
    set_state(l, c, WSB_ST_OPEN);
    if (l->h.on_open)
        l->h.on_open(c, l->ud);
    return (ssize_t)head;
}

/* ---- frames in -------------------------------------------------------- */

/* Decode a header: its length (>0), 0 if more bytes are needed, -1 bad. */
static ssize_t frame_head(const uint8_t *p, size_t n, struct frame *f)
{
    if (n < 2)
        return 0;
    f->fin = p[0] >> 7;
    f->rsv = (p[0] >> 4) & 7;
    f->opcode = p[0] & 15;
    f->masked = p[1] >> 7;
    uint64_t len = p[1] & 127;
    size_t h = 2;
    if (len == 126) {
        if (n < 4)
            return 0;
        len = (uint64_t)p[2] << 8 | p[3];
        h = 4;
        if (len < 126)
            return -1;                 /* §5.2: minimal encoding */
    } else if (len == 127) {
        if (n < 10)
            return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | p[2 + i];
        h = 10;
        if (len >> 63 || len <= 0xFFFF)
            return -1;                 /* MSB must be 0; minimal form */
    }
    if (f->masked)
        h += 4;
    if (n < h)
        return 0;
    f->len = len;
    return (ssize_t)h;
}

/* Structural rules of §5.2, §5.4, §5.5 for a frame arriving now. */
static int frame_valid(const struct wsb_conn *c, const struct frame *f)
{
    if (f->rsv || f->masked)          /* no extension; §5.1: server never masks */
        return 0;
    switch (f->opcode) {
    case WSB_OP_CONT:
        return c->msg_op != 0;
    case WSB_OP_TEXT:
    case WSB_OP_BINARY:
        return c->msg_op == 0;
    case WSB_OP_CLOSE:
    case WSB_OP_PING:
    case WSB_OP_PONG:
        return f->fin && f->len <= 125;
    default:
        return 0;
    }
}

/* Strict UTF-8 (no overlongs, no surrogates, max U+10FFFF). */
static int utf8_ok(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t b = s[i];
        if (b < 0x80) { i++; continue; }
        int need;
        uint32_t cp, min;
        if ((b & 0xE0) == 0xC0)      { need = 1; cp = b & 0x1F; min = 0x80; }
        else if ((b & 0xF0) == 0xE0) { need = 2; cp = b & 0x0F; min = 0x800; }
        else if ((b & 0xF8) == 0xF0) { need = 3; cp = b & 0x07; min = 0x10000; }
        else return 0;
        if (i + (size_t)need >= n)
            return 0;
        for (int k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += (size_t)need + 1;
    }
    return 1;
}

static void protocol_error(struct wsb_loop *l, struct wsb_conn *c)
{
    l->st.protocol_errors++;
    wsb_conn_abort(l, c, WSB_FAIL_PROTOCOL);
}

static void deliver(struct wsb_loop *l, struct wsb_conn *c, int op,
                    const char *p, size_t n)
{
    if (op == WSB_OP_TEXT && !utf8_ok((const uint8_t *)p, n)) {
        l->st.utf8_errors++;
        protocol_error(l, c);
        return;
    }
    if (l->h.on_message && !c->got_close)
        l->h.on_message(c, op, p, n, l->ud);
}

static void on_close_frame(struct wsb_loop *l, struct wsb_conn *c,
                           const uint8_t *p, size_t n)
{
    if (n == 1) {
        protocol_error(l, c);
        return;
    }
    c->close_code = n >= 2 ? (uint16_t)(p[0] << 8 | p[1]) : 1005;
    c->got_close = 1;
    if (!c->sent_close) {
        /* §5.5.1: answer with a close, echoing the status code. */
        int code = n >= 2 ? c->close_code : 1000;
        uint8_t body[2] = { (uint8_t)(code >> 8), (uint8_t)code };
        set_state(l, c, WSB_ST_CLOSING);
        c->sent_close = 1;
        wsb_conn_send(l, c, WSB_OP_CLOSE, body, n >= 2 ? 2 : 0);
    }
}

/* Append a data fragment; deliver the message on FIN. */
static void data_frame(struct wsb_loop *l, struct wsb_conn *c,
                       const struct frame *f, const char *p)
{
    if (f->fin && f->opcode != WSB_OP_CONT) {
        deliver(l, c, f->opcode, p, f->len);
        return;
    }
    if (f->opcode != WSB_OP_CONT)
        c->msg_op = (uint8_t)f->opcode;
    if (c->msg_len + f->len > MAX_MSG) {
        protocol_error(l, c);
        return;
    }
    if (c->msg_len + f->len > c->msg_cap) {
        size_t cap = c->msg_cap ? c->msg_cap : 4096;
        while (cap < c->msg_len + f->len)
            cap *= 2;
        char *nb = realloc(c->msg, cap);
        if (!nb) {
            wsb_conn_abort(l, c, WSB_FAIL_OTHER);
            return;
        }
        c->msg = nb;
        c->msg_cap = cap;
    }
    memcpy(c->msg + c->msg_len, p, f->len);
    c->msg_len += f->len;
    if (f->fin) {
        int op = c->msg_op;
        c->msg_op = 0;
        deliver(l, c, op, c->msg, c->msg_len);
        free(c->msg);            /* fragmented messages are rare: no cache */
        c->msg = NULL;
        c->msg_len = c->msg_cap = 0;
    }
}

static void dispatch_frame(struct wsb_loop *l, struct wsb_conn *c,
                           const struct frame *f, const char *p)
{
    l->st.frames_in++;
    switch (f->opcode) {
    case WSB_OP_PING:
        l->st.pings++;
        if (!c->sent_close)
            wsb_conn_send(l, c, WSB_OP_PONG, p, f->len);
        break;
    case WSB_OP_PONG:
        break;
    case WSB_OP_CLOSE:
        on_close_frame(l, c, (const uint8_t *)p, f->len);
        break;
    default:
        data_frame(l, c, f, p);
    }
}

static int conn_live(const struct wsb_conn *c)
{
    return c->state == WSB_ST_OPEN || c->state == WSB_ST_CLOSING;
}

/*
 * Consume whole frames (and the 101 head first) from buf. Returns bytes
 * consumed; *need is how many bytes the next unfinished item needs.
 */
static size_t process_input(struct wsb_loop *l, struct wsb_conn *c,
                            const char *buf, size_t n, size_t *need)
{
    size_t off = 0;
    *need = 0;
    if (c->state == WSB_ST_HANDSHAKE) {
        ssize_t r = handshake_parse(l, c, buf, n);
        if (r <= 0)
            return r == 0 ? 0 : n;
        off = (size_t)r;
    }
    while (conn_live(c) && off < n && !c->got_close) {
        struct frame f;
        ssize_t h = frame_head((const uint8_t *)buf + off, n - off, &f);
        if (h < 0 || (h > 0 && !frame_valid(c, &f)) ||
            (h > 0 && f.len > MAX_MSG)) {
            protocol_error(l, c);
            return n;
        }
        if (h == 0 || f.len > n - off - (size_t)h) {
            *need = h == 0 ? 14 : (size_t)h + f.len;
            break;
        }
        dispatch_frame(l, c, &f, buf + off + h);
        off += (size_t)h + f.len;
    }
    if (c->got_close)
        off = n;               /* §5.5.1: nothing after close matters */
    return off;
}

/* Grow c->in so it can hold want bytes. */
static int in_reserve(struct wsb_conn *c, size_t want)
{
    if (want <= c->in_cap)
        return 0;
    size_t cap = c->in_cap ? c->in_cap : 4096;
    while (cap < want)
        cap *= 2;
    char *nb = realloc(c->in, cap);
    if (!nb)
        return -1;
    c->in = nb;
    c->in_cap = cap;
    return 0;
}

static void read_closed(struct wsb_loop *l, struct wsb_conn *c, ssize_t r)
{
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r == 0 && c->state == WSB_ST_CLOSING && c->got_close) {
        conn_finish(l, c);      /* the clean end: server closed TCP first */
        return;
    }
    wsb_conn_abort(l, c, r < 0 ? errno_reason(errno) : WSB_FAIL_RESET);
}

static void conn_readable(struct wsb_loop *l, struct wsb_conn *c)
{
    char *dst;
    size_t room;
    if (c->in_len == 0) {
        dst = l->scratch;
        room = SCRATCH_SIZE;
    } else {
        if (in_reserve(c, c->in_len + READ_CHUNK) < 0) {
            wsb_conn_abort(l, c, WSB_FAIL_OTHER);
            return;
        }
        dst = c->in + c->in_len;
        room = c->in_cap - c->in_len;
    }
    ssize_t r = recv(c->fd, dst, room, 0);
    if (r <= 0) {
        read_closed(l, c, r);
        return;
    }
    l->st.bytes_in += (size_t)r;
    l->rx_ns = wsb_now_ns();
    const char *buf = c->in_len ? c->in : l->scratch;
    size_t n = c->in_len + (size_t)r, need;
    size_t used = process_input(l, c, buf, n, &need);
    if (c->state == WSB_ST_DONE)
        return;
    size_t tail = n - used;
    if (tail == 0) {
        free(c->in);
        c->in = NULL;
        c->in_len = c->in_cap = 0;
    } else if (buf == l->scratch) {
        if (in_reserve(c, need > tail ? need : tail) < 0) {
            wsb_conn_abort(l, c, WSB_FAIL_OTHER);
            return;
        }
        memcpy(c->in, l->scratch + used, tail);
        c->in_len = tail;
    } else {
        memmove(c->in, c->in + used, tail);
        c->in_len = tail;
    }
}

static void conn_event(struct wsb_loop *l, struct wsb_conn *c, uint32_t ev)
{
    if (c->state == WSB_ST_DONE || c->state == WSB_ST_IDLE)
        return;                  /* finished earlier in this batch */
    if (c->state == WSB_ST_CONNECTING) {
        if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            conn_connected(l, c);
        return;
    }
    if ((ev & EPOLLOUT) && c->out_len > 0)
        conn_write(l, c, NULL, 0);
    if ((ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) && c->state != WSB_ST_DONE)
        conn_readable(l, c);
}

static void sweep(struct wsb_loop *l, uint64_t now)
{
    struct wsb_conn *c = l->timed, *next;
    for (; c; c = next) {
        next = c->tnext;
        if (c->state == WSB_ST_CLOSING) {
            if (now - c->t_state > l->close_timeout_ns) {
                l->st.close_timeouts++;
                conn_finish(l, c);
            }
        } else if (now - c->t_start > l->connect_timeout_ns) {
            wsb_conn_abort(l, c, WSB_FAIL_TIMEOUT);
        }
    }
}

int wsb_loop_poll(struct wsb_loop *l, int timeout_ms)
{
    struct epoll_event evs[512];
    int fired = 0;
    int n = epoll_wait(l->epfd, evs, 512, timeout_ms);
    if (n < 0 && errno != EINTR)
        return -1;
    for (int i = 0; i < n; i++) {
        struct wsb_conn *c = evs[i].data.ptr;
        if (!c) {
            uint64_t ticks;
            if (read(l->tfd, &ticks, sizeof ticks) == sizeof ticks)
                fired = 1;
            continue;
        }
        conn_event(l, c, evs[i].events);
    }
    uint64_t now = wsb_now_ns();
    if (now - l->last_sweep >= SWEEP_NS) {
        l->last_sweep = now;
        sweep(l, now);
    }
    return fired;
}

/* ---- whole-population helpers ---------------------------------------- */

static void open_tally(struct wsb_conn *conns, int n,
                       struct wsb_open_result *r)
{
    for (int i = 0; i < n; i++) {
        if (conns[i].was_open)
            r->opened++;
        else {
            r->failed++;
            r->fail[conns[i].fail ? conns[i].fail : WSB_FAIL_OTHER]++;
        }
    }
}

void wsb_open_all(struct wsb_loop *l, struct wsb_conn *conns, int n,
                  const char *(*path_of)(int i, void *ud), void *ud,
                  struct wsb_open_result *r)
{
    struct wsb_hist *hs = r->hs;
    memset(r, 0, sizeof *r);
    r->hs = hs;
    l->hs_hist = hs;
    int conc = l->o->concurrency > 0 ? l->o->concurrency : 256;
    uint64_t t0 = wsb_now_ns();
    uint64_t limit = t0 + (uint64_t)((l->o->connect_timeout + n / 1000.0) * 1e9);
    l->last_result_ns = t0;
    int next = 0;
    while ((next < n || l->npending > 0) && !wsb_deadline_passed()) {
        while (next < n && l->npending < conc) {
            conns[next].id = (uint32_t)next;
            wsb_conn_start(l, &conns[next], path_of(next, ud));
            next++;
        }
        if (wsb_loop_poll(l, 5) < 0 || wsb_now_ns() > limit)
            break;
    }
    /* Anything still in flight counts as a timeout; never-started too. */
    for (int i = 0; i < n; i++) {
        if (i >= next) {
            conns[i].fd = -1;
            conns[i].fail = WSB_FAIL_TIMEOUT;
            conns[i].state = WSB_ST_DONE;
        } else if (conns[i].state == WSB_ST_CONNECTING ||
                   conns[i].state == WSB_ST_HANDSHAKE) {
            wsb_conn_abort(l, &conns[i], WSB_FAIL_TIMEOUT);
        }
    }
    l->hs_hist = NULL;
    open_tally(conns, n, r);
    r->seconds = (double)(l->last_result_ns - t0) / 1e9;
}

void wsb_close_all(struct wsb_loop *l, struct wsb_conn *conns, int n)
{
    for (int i = 0; i < n; i++) {
        if (conns[i].state == WSB_ST_OPEN)
            wsb_conn_close(l, &conns[i], 1000);
        else if (conns[i].state == WSB_ST_CONNECTING ||
                 conns[i].state == WSB_ST_HANDSHAKE)
            wsb_conn_abort(l, &conns[i], WSB_FAIL_NONE);
    }
    /* The sweep ends each CLOSING conn after close_timeout; this outer
     * bound only guards against a clock surprise. */
    uint64_t limit = wsb_now_ns() + (uint64_t)((l->o->close_timeout + 2) * 1e9);
    while (l->nclosing > 0 && wsb_now_ns() < limit)
        if (wsb_loop_poll(l, 20) < 0)
            break;
    for (int i = 0; i < n; i++)
        if (conns[i].state != WSB_ST_DONE && conns[i].state != WSB_ST_IDLE)
            conn_finish(l, &conns[i]);
}
