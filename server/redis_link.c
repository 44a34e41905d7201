/*
 * redis_link: see redis_link.h.
 */
#include "redis_link.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Tags of the link's own commands (the owner's are >= 0). */
enum { TAG_AUTH = -1, TAG_SELECT = -2 };

int redis_link_init(struct redis_link *l, const char *name, size_t out_cap, size_t in_cap,
                    size_t tok_cap, uint64_t timeout_ms, redis_reply_fn fn, void *ctx)
{
    memset(l, 0, sizeof *l);
    l->name = name;
    l->fd = -1;
    l->timeout_ms = timeout_ms;
    l->on_reply = fn;
    l->ctx = ctx;
    resp_limits_default(&l->lim);
    /* RESP2 only (no HELLO): every bulk whole, so a reply is parsed in one pass. */
    l->lim.whole_bulk = in_cap / 2;
    l->lim.max_bulk = in_cap / 2;
    l->lim.max_elements = tok_cap;
    if (in_cap < resp_buffer_min(&l->lim))
        in_cap = resp_buffer_min(&l->lim);
    l->out = malloc(out_cap);
    l->in = malloc(in_cap);
    l->tok = calloc(tok_cap, sizeof *l->tok);
    l->out_cap = out_cap;
    l->in_cap = in_cap;
    l->tok_cap = tok_cap;
    if (l->out == NULL || l->in == NULL || l->tok == NULL) {
        redis_link_fini(l);
        return -ENOMEM;
    }
    return 0;
}

void redis_link_fini(struct redis_link *l)
{
    if (l->fd >= 0)
        close(l->fd);
    free(l->out);
    free(l->in);
    free(l->tok);
    l->out = l->in = NULL;
    l->tok = NULL;
    l->fd = -1;
}

void redis_link_down(struct redis_link *l, const char *reason)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    l->state = REDIS_LINK_DOWN;
    l->out_len = l->out_sent = l->in_len = 0;
    l->q_head = l->q_len = 0;
    if (reason != NULL)
        snprintf(l->reason, sizeof l->reason, "%s", reason);
}

static int fail(struct redis_link *l, int err, const char *what)
{
    char why[REDIS_LINK_REASON_MAX];
    snprintf(why, sizeof why, "%s: %s", what, strerror(err));
    redis_link_down(l, why);
    return -err;
}

static int queue(struct redis_link *l, size_t argc, const char *const *argv, const size_t *lens,
                 int tag, uint64_t arg, uint64_t deadline_ms)
{
    if (l->q_len == REDIS_LINK_QUEUE)
        return -ENOSPC;
    size_t need = resp_command_len(argc, argv, lens);
    if (l->out_len + need > l->out_cap && l->out_sent > 0) {
        memmove(l->out, l->out + l->out_sent, l->out_len - l->out_sent);
        l->out_len -= l->out_sent;
        l->out_sent = 0;
    }
    struct strbuf b;
    strbuf_init(&b, l->out + l->out_len, l->out_cap - l->out_len);
    if (resp_command(&b, argc, argv, lens) < 0)
        return -ENOSPC;
    l->out_len += b.len;
    struct redis_pending *p = &l->q[(l->q_head + l->q_len) % REDIS_LINK_QUEUE];
    p->tag = tag;
    p->arg = arg;
    p->deadline_ms = deadline_ms;
    l->q_len++;
    return 0;
}

int redis_link_connect(struct redis_link *l, const struct redis_url *u, uint64_t now_ms)
{
    redis_link_down(l, NULL);
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)u->port);
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC };
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(u->host, port, &hints, &ai);
    if (rc != 0) {
        char why[REDIS_LINK_REASON_MAX];
        snprintf(why, sizeof why, "resolving %.60s: %s", u->host, gai_strerror(rc));
        redis_link_down(l, why);
        return -EHOSTUNREACH;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(ai);
        return fail(l, errno, "socket()");
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    int e = errno;
    freeaddrinfo(ai);
    if (rc < 0 && e != EINPROGRESS) {
        close(fd);
        return fail(l, e, "connect()");
    }
    l->fd = fd;
    l->state = REDIS_LINK_CONNECTING;
    l->deadline_ms = now_ms + l->timeout_ms;
    l->reason[0] = '\0';
    uint64_t due = now_ms + l->timeout_ms;
    if (u->password_len > 0) {
        const char *argv[3] = { "AUTH", u->user, u->password };
        size_t lens[3] = { 4, strlen(u->user), u->password_len };
        if (u->user[0] == '\0')
            queue(l, 2, (const char *const[]){ "AUTH", u->password }, (size_t[]){ 4, lens[2] },
                  TAG_AUTH, 0, due);
        else
            queue(l, 3, argv, lens, TAG_AUTH, 0, due);
    }
    if (u->db != 0) {
        char db[12];
        int n = snprintf(db, sizeof db, "%u", (unsigned)u->db);
        queue(l, 2, (const char *const[]){ "SELECT", db }, (size_t[]){ 6, (size_t)n },
              TAG_SELECT, 0, due);
    }
    return 0;
}

int redis_link_command(struct redis_link *l, size_t argc, const char *const *argv,
                       const size_t *lens, int tag, uint64_t arg, uint64_t extra_ms,
                       uint64_t now_ms)
{
    if (l->state == REDIS_LINK_DOWN)
        return -ENOTCONN;
    return queue(l, argc, argv, lens, tag, arg, now_ms + l->timeout_ms + extra_ms);
}

unsigned redis_link_pending(const struct redis_link *l)
{
    return l->q_len;
}

short redis_link_events(const struct redis_link *l)
{
    if (l->state == REDIS_LINK_DOWN)
        return 0;
    if (l->state == REDIS_LINK_CONNECTING || l->out_sent < l->out_len)
        return POLLIN | POLLOUT;
    return POLLIN;
}

uint64_t redis_link_next_deadline(const struct redis_link *l)
{
    if (l->state == REDIS_LINK_CONNECTING)
        return l->deadline_ms;
    if (l->state == REDIS_LINK_UP && l->q_len > 0)
        return l->q[l->q_head].deadline_ms;
    return UINT64_MAX;
}

static int flush(struct redis_link *l)
{
    while (l->out_sent < l->out_len) {
        ssize_t n = send(l->fd, l->out + l->out_sent, l->out_len - l->out_sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n < 0)
            return fail(l, errno, "send()");
        l->out_sent += (size_t)n;
    }
    l->out_sent = l->out_len = 0;
    return 0;
}

/* The link's own replies: AUTH and SELECT must say OK. */
static void own_reply(struct redis_link *l, int tag, const struct resp_event *tok, size_t ntok)
{
    if (ntok == 1 && tok[0].type == RESP_ERROR) {
        char why[REDIS_LINK_REASON_MAX];
        snprintf(why, sizeof why, "%s refused: %.*s", tag == TAG_AUTH ? "AUTH" : "SELECT",
                 (int)(tok[0].len > 100 ? 100 : tok[0].len), tok[0].data);
        redis_link_down(l, why);
    }
}

/*
 * Hand every complete reply in the input to the callback. A reply that is
 * not whole yet is parsed again from its start when more bytes come (they
 * are bounded by in_cap). 0, or -EPROTO with the link down.
 */
static int dispatch(struct redis_link *l)
{
    size_t off = 0;
    while (l->state != REDIS_LINK_DOWN && off < l->in_len) {
        struct resp_parser p;
        resp_parser_init(&p, &l->lim);
        size_t at = off, ntok = 0;
        int whole = 0;
        while (at < l->in_len) {
            if (ntok == l->tok_cap) {
                redis_link_down(l, "a reply with more tokens than the bridge takes");
                return -EPROTO;
            }
            struct resp_event *ev = &l->tok[ntok];
            ssize_t n = resp_parse(&p, l->in + at, l->in_len - at, ev);
            if (n < 0) {
                char why[REDIS_LINK_REASON_MAX];
                snprintf(why, sizeof why, "protocol error %zd in a reply", n);
                redis_link_down(l, why);
                return -EPROTO;
            }
            if (n == 0)
                break;
            at += (size_t)n;
            if (ev->kind != RESP_EV_NONE)
                ntok++;
            if (ev->reply_end) {
                whole = 1;
                break;
            }
        }
        if (!whole)
            break;
        if (l->q_len == 0) {
            redis_link_down(l, "a reply to no command");
            return -EPROTO;
        }
        struct redis_pending pend = l->q[l->q_head];
        l->q_head = (l->q_head + 1) % REDIS_LINK_QUEUE;
        l->q_len--;
        off = at;
        if (pend.tag < 0)
            own_reply(l, pend.tag, l->tok, ntok);
        else
            l->on_reply(l->ctx, l, pend.tag, pend.arg, l->tok, ntok);
    }
    if (l->state == REDIS_LINK_DOWN)
        return 0;
    if (off > 0) {
        memmove(l->in, l->in + off, l->in_len - off);
        l->in_len -= off;
    }
    if (l->in_len == l->in_cap) {
        redis_link_down(l, "a reply larger than the bridge's input buffer");
        return -EPROTO;
    }
    return 0;
}

static int receive(struct redis_link *l)
{
    for (;;) {
        ssize_t n = recv(l->fd, l->in + l->in_len, l->in_cap - l->in_len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n < 0)
            return fail(l, errno, "recv()");
        if (n == 0) {
            redis_link_down(l, "Redis closed the connection");
            return -ECONNRESET;
        }
        l->in_len += (size_t)n;
        if (dispatch(l) < 0 || l->state == REDIS_LINK_DOWN)
            return -EPROTO;
    }
}

int redis_link_io(struct redis_link *l, short revents, uint64_t now_ms)
{
    if (l->state == REDIS_LINK_CONNECTING && (revents & (POLLOUT | POLLERR | POLLHUP))) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err != 0) {
            fail(l, err, "connect()");
            return l->state;
        }
        l->state = REDIS_LINK_UP;
    }
    if (l->state == REDIS_LINK_UP && (revents & POLLIN))
        receive(l);
    if (l->state == REDIS_LINK_UP)
        flush(l);
    if (l->state == REDIS_LINK_UP && (revents & (POLLERR | POLLHUP)) && !(revents & POLLIN))
        redis_link_down(l, "the connection failed");
    if (l->state != REDIS_LINK_DOWN && redis_link_next_deadline(l) <= now_ms)
        redis_link_down(l, l->state == REDIS_LINK_CONNECTING ? "connect timed out"
                                                             : "no reply within cluster_timeout");
    return l->state;
}
