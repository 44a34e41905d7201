/*
 * wsb_net: client connections and the epoll loop that drives them; the
 * byte-level rules live in the pure codec, wsb_ws.c.
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
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#include "wsb.h"

#define SCRATCH_SIZE   (256 * 1024)
#define READ_CHUNK     (64 * 1024)
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
    /* One per server port (opts->ports); connection i uses i % ntargets. */
    struct sockaddr_in target[WSB_MAX_PORTS];
    char     host_hdr[WSB_MAX_PORTS][96];
    int      ntargets;
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
    l->ntargets = o->nports > 0 ? o->nports : 1;
    for (int i = 0; i < l->ntargets; i++) {
        uint16_t port = o->nports > 0 ? o->ports[i] : o->port;
        l->target[i].sin_family = AF_INET;
        l->target[i].sin_port = htons(port);
        inet_pton(AF_INET, o->host, &l->target[i].sin_addr);
        snprintf(l->host_hdr[i], sizeof l->host_hdr[i], "%s:%u", o->host,
                 port);
    }
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
    if (c->out_off + c->out_len + n > c->out_cap && c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len);
        c->out_off = 0;
    }
    if (c->out_len + n > c->out_cap) {
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

/* send() until EAGAIN; bytes sent, or -1 after aborting the connection. */
static ssize_t send_some(struct wsb_loop *l, struct wsb_conn *c,
                         const char *p, size_t n)
{
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
    return (ssize_t)done;
}

/* Flush the kept output (EPOLLOUT, or the request once connected). */
static int conn_flush(struct wsb_loop *l, struct wsb_conn *c)
{
    if (c->out_len > 0) {
        ssize_t done = send_some(l, c, c->out + c->out_off, c->out_len);
        if (done < 0)
            return -1;
        c->out_off += (size_t)done;
        c->out_len -= (size_t)done;
        if (c->out_len == 0) {
            free(c->out);      /* an idle connection keeps no buffer */
            c->out = NULL;
            c->out_off = c->out_cap = 0;
        }
    }
    set_events(l, c, c->out_len > 0);
    return 0;
}

/* Write new bytes p, behind any kept output. 0, or -1 after an abort. */
static int conn_write(struct wsb_loop *l, struct wsb_conn *c,
                      const char *p, size_t n)
{
    size_t done = 0;
    if (c->out_len == 0) {
        ssize_t w = send_some(l, c, p, n);
        if (w < 0)
            return -1;
        done = (size_t)w;
    }
    if (done < n && out_keep(c, p + done, n - done) < 0) {
        wsb_conn_abort(l, c, WSB_FAIL_OVERFLOW);
        return -1;
    }
    set_events(l, c, c->out_len > 0);
    return 0;
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
    uint8_t key[4];
    wsb_random(key, sizeof key);      /* a fresh mask for every frame */
    size_t len = wsb_ws_frame_build(l->obuf, opcode, p, n, key);
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
    wsb_random(raw, sizeof raw);      /* §4.1: a random 16-byte nonce */
    wsb_base64(raw, sizeof raw, c->key);
    char req[1024];
    int n = wsb_ws_request(req, sizeof req, path,
                           l->host_hdr[c->id % (uint32_t)l->ntargets], c->key);
    if (n > 0)
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
    const struct sockaddr_in *to = &l->target[c->id % (uint32_t)l->ntargets];
    int r = connect(c->fd, (const struct sockaddr *)to, sizeof *to);
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
    conn_flush(l, c);
}

/*
 * The 101 response head in buf: its length once complete and valid, 0 if
 * incomplete, -1 after failing the connection (§4.1: the client MUST).
 */
static ssize_t handshake_parse(struct wsb_loop *l, struct wsb_conn *c,
                               const char *buf, size_t n)
{
    int status;
    ssize_t head = wsb_ws_response(buf, n, c->key, &status);
    c->http_status = (uint16_t)status;
    if (head == 0)
        return 0;
    if (head < 0) {
        wsb_conn_abort(l, c, (int)-head);
        return -1;
    }
    c->was_open = 1;
    l->last_result_ns = wsb_now_ns();
    if (l->hs_hist)
        wsb_hist_add(l->hs_hist, l->last_result_ns - c->t_start);
    set_state(l, c, WSB_ST_OPEN);
    if (l->h.on_open)
        l->h.on_open(c, l->ud);
    return head;
}

/* ---- frames in -------------------------------------------------------- */

static void protocol_error(struct wsb_loop *l, struct wsb_conn *c)
{
    l->st.protocol_errors++;
    wsb_conn_abort(l, c, WSB_FAIL_PROTOCOL);
}

static void deliver(struct wsb_loop *l, struct wsb_conn *c, int op,
                    const char *p, size_t n)
{
    if (op == WSB_OP_TEXT && !wsb_ws_utf8_ok((const uint8_t *)p, n)) {
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
                       const struct wsb_frame *f, const char *p)
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
                           const struct wsb_frame *f, const char *p)
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
        struct wsb_frame f;
        ssize_t h = wsb_ws_frame_head((const uint8_t *)buf + off, n - off, &f);
        if (h < 0 || (h > 0 && !wsb_ws_frame_valid(c->msg_op, &f)) ||
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
    if (ev & EPOLLOUT)
        conn_flush(l, c);
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
    double phase_s = l->o->connect_timeout + n / 1000.0;
    uint64_t limit = t0 + (uint64_t)(phase_s * 1e9);
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
