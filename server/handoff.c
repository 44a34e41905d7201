/*
 * handoff: see handoff.h for the design. The sender builds the record
 * (handoff_record.c) and the body memfd and keeps its connection silent
 * until an answer names it (pid, sequence number, connection id: a stale
 * answer, meant for an earlier worker of this slot or an earlier hand-over,
 * matches nothing). The adopter does nothing that a NACK could not undo
 * (no I/O, no endpoint hook) before it has sent its ACK.
 */
#include "handoff.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/sockios.h>

#include "access_log.h"
#include "conn.h"
#include "endpoints.h"
#include "handoff_record.h"
#include "log.h"
#include "worker.h"
#include "ws_conn.h"

_Static_assert(WS_HANDOFF_MAX == HANDOFF_EP_MAX, "the endpoint's bytes fit the record");
_Static_assert(CONN_VIA_FORWARDED == HANDOFF_VIA_MAX, "via's range");

#define BODY_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
#define MAX_FDS    2                /* the socket and the body */
#define CHANNEL_MARGIN (64 * 1024)  /* send buffer kept free: dozens of records */

static uint32_t next_seq;

static void count(struct worker *w, int failed)
{
    uint64_t *n = failed ? &w->ctx.seg->handoff_failures : &w->ctx.seg->handoffs;
    __atomic_fetch_add(n, 1, __ATOMIC_RELAXED);
}

/*
 * Room for one more record on slot T's channel. Its send buffer is one
 * socket shared by every sender, so the margin covers the others' records
 * sent between this look and our sendmsg; a rare EAGAIN past it fails.
 */
static int channel_has_room(const struct worker *w, int t)
{
    int fd = w->ctx.handoff[t][1], queued = 0, cap = 0;
    socklen_t len = sizeof cap;
    if (ioctl(fd, SIOCOUTQ, &queued) < 0 || getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cap, &len) < 0)
        return 1;       /* cannot tell: sendmsg will */
    return (int64_t)queued + CHANNEL_MARGIN <= cap;
}

/*
 * A live slot of the newest generation other than ours whose channel has
 * room, round robin: the slot, -EBUSY when every one is full for now, or
 * -ENOENT when there is none.
 */
static int pick_target(const struct worker *w)
{
    static unsigned turn;
    const struct shm_segment *seg = w->ctx.seg;
    uint32_t newest = w->ctx.generation;
    for (int s = 0; s < SHM_MAX_SLOTS; s++)
        if (__atomic_load_n(&seg->slots[s].pid, __ATOMIC_ACQUIRE) != 0 &&
            seg->slots[s].generation > newest)
            newest = seg->slots[s].generation;
    if (newest == w->ctx.generation)
        return -ENOENT;
    int live[SHM_MAX_SLOTS], n = 0;
    for (int s = 0; s < SHM_MAX_SLOTS; s++)
        if (__atomic_load_n(&seg->slots[s].pid, __ATOMIC_ACQUIRE) != 0 &&
            seg->slots[s].generation == newest)
            live[n++] = s;
    if (n == 0)
        return -ENOENT;
    unsigned first = turn++;
    for (int i = 0; i < n; i++) {
        int t = live[(first + (unsigned)i) % (unsigned)n];
        if (channel_has_room(w, t))
            return t;
    }
    return -EBUSY;
}

/* One datagram BUF[0..len) with NFDS descriptors. 0 or -errno. */
static int send_msg(int channel, const void *buf, size_t len, const int *fds, int nfds)
{
    union { char buf[CMSG_SPACE(MAX_FDS * sizeof(int))]; struct cmsghdr align; } ctl;
    memset(&ctl, 0, sizeof ctl);    /* CMSG_SPACE pads past the fds: no stack bytes leak */
    struct iovec iov = { (void *)buf, len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds > 0) {
        msg.msg_control = ctl.buf;
        msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
    }
    ssize_t rc;
    do {
        rc = sendmsg(channel, &msg, MSG_NOSIGNAL);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0)
        return -errno;
    return rc == (ssize_t)len ? 0 : -EIO;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* A sealed memfd holding C's input tail, reassembled data and output; fd or -1. */
static int body_make(const struct conn *c)
{
    int fd = memfd_create("wschat-handoff", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -1;
    if (write_all(fd, c->in, c->in_len) < 0 || write_all(fd, c->msg, (size_t)c->msg_len) < 0 ||
        write_all(fd, c->out + c->out_off, conn_out_pending(c)) < 0 ||
        fcntl(fd, F_ADD_SEALS, BODY_SEALS) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The session so far into the record's trailer (A: NULL when no access log is kept). */
static void log_out(const struct access_conn *a, struct handoff_log *lg)
{
    _Static_assert(HANDOFF_LOG_PATH_MAX == ACCESS_SESSION_PATH_MAX &&
                   HANDOFF_LOG_USER_MAX == ACCESS_SESSION_USER_MAX, "one session, two forms");
    memset(lg, 0, sizeof *lg);
    if (a == NULL)
        return;
    lg->present = 1;
    lg->start_ms = a->start_ms;
    lg->bytes_in = a->bytes_in;
    lg->bytes_out = a->bytes_out;
    lg->code = a->code;
    lg->path_len = a->path_len <= HANDOFF_LOG_PATH_MAX ? a->path_len : HANDOFF_LOG_PATH_MAX;
    lg->user_len = a->user_len <= HANDOFF_LOG_USER_MAX ? a->user_len : HANDOFF_LOG_USER_MAX;
    memcpy(lg->path, a->path, lg->path_len);
    memcpy(lg->user, a->user, lg->user_len);
}

/*
 * The adopted session's access log state: as it came, or, from a generation
 * without an access log, only its path, its time and bytes counted from here.
 */
static void log_in(struct worker *w, struct conn *c, const struct ws_endpoint *ep,
                   const struct handoff_log *lg)
{
    struct access_conn *a = worker_alog(w, c);
    if (a == NULL)
        return;
    if (!lg->present) {
        worker_access_session_begin(w, c, ep->path, strlen(ep->path), 0);
        return;
    }
    memset(a, 0, sizeof *a);
    a->start_ms = lg->start_ms;
    a->bytes_in = lg->bytes_in;
    a->bytes_out = lg->bytes_out;
    a->code = lg->code;
    a->path_len = lg->path_len;
    a->user_len = lg->user_len;
    memcpy(a->path, lg->path, lg->path_len);
    memcpy(a->user, lg->user, lg->user_len);
}

/* C stays here: the caller closes it with 1012. */
static int send_failed(struct worker *w, struct conn *c, const char *why, int err)
{
    log_at(LOG_LVL_INFO, err, "conn %u: handing over failed (%s): closing with 1012", c->id, why);
    count(w, 1);
    return -EAGAIN;
}

int handoff_send(struct worker *w, struct conn *c)
{
    if (!w->cfg->reload_handoff || c->ep == NULL || c->ep->handoff_take == NULL)
        return -EAGAIN;
    worker_flush(w, c);     /* whatever can still go out now */
    if (c->state != CONN_WS)
        return -EPIPE;
    int target = pick_target(w);
    if (target == -EBUSY)
        return -EBUSY;      /* it stays open here; handoff_retry() tries again */
    if (target < 0)
        return send_failed(w, c, "no new worker", 0);
    struct handoff_conn h;
    memset(&h, 0, sizeof h);
    /* The endpoint lets go first (a chat member's stream joins its output). */
    ssize_t len = c->ep->handoff_take(w, c, h.ep, sizeof h.ep);
    if (len < 0)
        return c->state == CONN_WS ? send_failed(w, c, "refused by its endpoint", 0) : -EPIPE;
    h.ep_len = (uint32_t)len;
    h.id = (struct handoff_id){ .pid = (uint32_t)getpid(), .seq = ++next_seq, .conn = c->id,
                                .slot = (uint16_t)w->ctx.slot,
                                .endpoint = (uint16_t)endpoints_index(c->ep) };
    memcpy(h.peer, c->peer, sizeof h.peer);
    h.via = c->via;
    h.parser = c->parser;
    h.msg_timed = ws_conn_msg_age(w, c, &h.msg_age_s);
    h.in_len = c->in_len;
    h.reasm_len = c->msg_len;
    h.out_len = conn_out_pending(c);
    log_out(worker_alog(w, c), &h.log);
    uint8_t rec[HANDOFF_CONN_MAX];
    size_t n = handoff_conn_encode(&h, rec, sizeof rec);
    int fds[MAX_FDS] = { c->fd, -1 };
    int nfds = 1, err = 0;
    if (h.in_len + h.reasm_len + h.out_len > 0) {
        fds[1] = body_make(c);
        nfds = 2;
        err = fds[1] < 0 ? errno : 0;
    }
    if (n > 0 && err == 0)
        err = -send_msg(w->ctx.handoff[target][1], rec, n, fds, nfds);
    if (fds[1] >= 0)
        close(fds[1]);      /* the copy in flight keeps the body */
    if (n == 0 || err != 0) {
        /* The endpoint let go without a trace: undo what its record holds. */
        if (c->ep->handoff_abort != NULL)
            c->ep->handoff_abort(w, h.ep, h.ep_len);
        return send_failed(w, c, n == 0 ? "record too large" : "channel", err);
    }
    /*
     * In flight: silent until the answer. The descriptor in flight keeps
     * the socket open, so it must leave our epoll set explicitly.
     */
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    log_at(LOG_LVL_DEBUG, 0, "conn %u: handed to slot %d with %llu bytes of input, %llu of an "
           "open message%s, %llu of output", c->id, target, (unsigned long long)h.in_len,
           (unsigned long long)h.reasm_len, h.parser.in_frame ? " (inside a frame)" : "",
           (unsigned long long)h.out_len);
    worker_timer_clear(w, c);
    c->flags &= (uint8_t)~(CONN_F_WANT_WRITE | CONN_F_READ_PAUSED | CONN_F_PING_SENT);
    c->state = CONN_HANDOFF;
    c->handoff_seq = h.id.seq;
    return 0;
}

/* C (CONN_HANDOFF) is ours again: back in epoll and open. 0, or -1 (C closed). */
static int take_back(struct worker *w, struct conn *c)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = conn_tag(c) };
    c->state = CONN_WS;
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        log_write(LOG_LVL_ALERT, errno, "epoll_ctl(ADD, %d) failed", c->fd);
        worker_close_now(w, c);
        return -1;
    }
    return 0;
}

void handoff_expire(struct worker *w, struct conn *c)
{
    int in_flight = c->state == CONN_HANDOFF;
    log_write(LOG_LVL_WARN, 0, "conn %u: %s: closing with 1012", c->id,
              in_flight ? "handed over but never answered" : "the new workers' channels stayed full");
    count(w, 1);
    if (in_flight && take_back(w, c) < 0)
        return;
    ws_conn_fail(w, c, WS_CLOSE_SERVICE_RESTART, "server reloading");
    /* An adopter that took it after all must not write after our close. */
    if (in_flight && c->state != CONN_DEAD)
        shutdown(c->fd, SHUT_RDWR);
}

void handoff_retry(struct worker *w)
{
    uint32_t waiting = 0;
    /* Retiring after a reload, every connection still open was put off. */
    for (uint32_t i = 0; i < w->conns.fresh; i++) {
        struct conn *c = &w->conns.conns[i];
        if (c->state != CONN_WS)
            continue;
        int rc = handoff_send(w, c);
        if (rc == -EBUSY)
            waiting++;
        else if (rc == -EAGAIN)
            ws_conn_close(w, c, WS_CLOSE_SERVICE_RESTART, "server reloading");
    }
    w->handoff_waiting = waiting;
}

/* An answer about one of ours. Stale ones (another pid, seq or state) match nothing. */
static void on_answer(struct worker *w, int type, const struct handoff_id *id)
{
    if (id->pid != (uint32_t)getpid() || id->conn >= w->conns.fresh)
        return;
    struct conn *c = &w->conns.conns[id->conn];
    if (c->state != CONN_HANDOFF || c->handoff_seq != id->seq)
        return;
    if (type == HANDOFF_ACK) {
        count(w, 0);
        struct access_conn *a = worker_alog(w, c);
        if (a != NULL)
            a->done = 1;    /* the session goes on: its line is the adopter's to write */
        worker_close_now(w, c);     /* our copy only: the adopter owns it now */
        return;
    }
    log_at(LOG_LVL_INFO, 0, "conn %u: the new worker refused it: closing with 1012", c->id);
    count(w, 1);
    if (take_back(w, c) == 0)
        ws_conn_close(w, c, WS_CLOSE_SERVICE_RESTART, "server reloading");
}

static void answer(struct worker *w, int type, const struct handoff_id *id)
{
    uint8_t buf[HANDOFF_ANSWER_LEN];
    if (id->slot >= SHM_MAX_SLOTS)
        return;
    size_t n = handoff_answer_encode(type, id, buf);
    int rc = send_msg(w->ctx.handoff[id->slot][1], buf, n, NULL, 0);
    if (rc < 0)
        log_write(LOG_LVL_ALERT, -rc, "sendmsg(handoff answer to slot %u) failed", id->slot);
}

/* Bounds of what this worker adopts: a live connection's own (see handoff.h). */
static void limits_of(const struct worker *w, struct handoff_limits *lim)
{
    const struct config *cfg = w->cfg;
    lim->max_message = cfg->max_message;
    lim->max_in = w->rbuf_cap;
    /* The queue cap, plus the one reply, stream frame and control frames that may cross it. */
    lim->max_out = cfg->max_send_queue + cfg->max_message + ring_max_entry(&w->ctx.seg->ring) +
                   4 * (WS_SERVER_HEADER_MAX + WS_CONTROL_MAX);
    lim->max_msg_age_s = (uint32_t)(cfg->message_timeout_ms / 1000) + 60;
    lim->nendpoints = endpoints_count();
    lim->nslots = SHM_MAX_SLOTS;
}

/* The body memfd mapped read-only after checking its size and seals; NULL on failure. */
static const uint8_t *body_map(int fd, uint64_t len)
{
    struct stat st;
    int seals = fcntl(fd, F_GET_SEALS);
    if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != len || seals < 0 ||
        (seals & BODY_SEALS) != BODY_SEALS)
        return NULL;
    void *p = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Buffers of C from the body. 0, or < 0 (nothing for the caller to undo but C). */
static int restore(struct worker *w, struct conn *c, const struct handoff_conn *h,
                   const uint8_t *body)
{
    const uint8_t *p = body;
    if (h->in_len > 0 && conn_in_keep(c, p, (size_t)h->in_len) < 0)
        return -ENOMEM;
    p += h->in_len;
    if (h->reasm_len > 0) {
        int rc = conn_msg_append(&w->conns, c, p, (size_t)h->reasm_len,
                                 w->cfg->max_reassembly_memory);
        if (rc < 0)
            return rc;
        ws_conn_msg_age_set(w, c, h->msg_age_s);
    }
    p += h->reasm_len;
    if (h->out_len > 0 && conn_out_append(&w->conns, c, p, (size_t)h->out_len) < 0)
        return -ENOMEM;
    return 0;
}

/* Drop C before anything was done with it (the sender still has it). */
static void unregister(struct worker *w, struct conn *c)
{
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    worker_close_now(w, c);
}

/*
 * The input tail that came with C: parse it as if just read (it may hold
 * whole frames, left unparsed while output was over budget), and go on
 * while writes complete at once, as worker_loop's resume_held does.
 */
static void resume_input(struct worker *w, struct conn *c)
{
    if (c->in_len > 0)
        c->flags |= CONN_F_INPUT_HELD;
    worker_flush(w, c);
    while ((c->flags & CONN_F_INPUT_HELD) && c->state == CONN_WS &&
           !(c->flags & CONN_F_WANT_WRITE) && conn_out_pending(c) <= w->cfg->max_send_queue) {
        size_t len = c->in_len;
        c->flags &= (uint8_t)~CONN_F_INPUT_HELD;
        memcpy(w->rbuf, c->in, len);
        ws_conn_input(w, c, w->rbuf, len);
        worker_flush(w, c);
    }
}

/* Refuse a connection record: undo the endpoint's record if it is sound, then NACK. */
static void refuse(struct worker *w, const struct handoff_id *id, const struct ws_endpoint *ep,
                   const struct handoff_conn *h)
{
    if (ep != NULL && ep->handoff_abort != NULL)
        ep->handoff_abort(w, h->ep, h->ep_len);
    answer(w, HANDOFF_NACK, id);
}

static void adopt(struct worker *w, const uint8_t *buf, size_t len, int *fds, int nfds,
                  const struct handoff_id *id)
{
    static struct handoff_conn h;   /* large: off the stack */
    struct handoff_limits lim;
    limits_of(w, &lim);
    int rc = handoff_conn_decode(buf, len, &lim, &h);
    const struct ws_endpoint *ep = rc == 0 || rc == -HANDOFF_E_LIMIT ? endpoints_at(h.id.endpoint)
                                                                     : NULL;
    uint64_t body_len = h.in_len + h.reasm_len + h.out_len;
    const uint8_t *body = NULL;
    if (rc == 0 && (nfds != (body_len > 0 ? 2 : 1)))
        rc = -HANDOFF_E_FIELD;
    if (rc == 0 && body_len > 0 && ((body = body_map(fds[1], body_len)) == NULL ||
                                    handoff_body_check(&h, body, (size_t)body_len) < 0))
        rc = -HANDOFF_E_BODY;
    if (rc == 0 && ep->handoff_check != NULL && ep->handoff_check(w, h.ep, h.ep_len) < 0) {
        rc = -HANDOFF_E_FIELD;
        ep = NULL;      /* its bytes are not sound: nothing to undo with them */
    }
    struct conn *c = NULL;
    if (rc == 0) {
        c = worker_register(w, fds[0]);     /* closes the socket if it fails (full) */
        fds[0] = -1;
        if (c == NULL)
            rc = -ENOSPC;
    }
    if (c != NULL) {
        memcpy(c->peer, h.peer, sizeof c->peer);
        c->via = h.via;
        log_in(w, c, ep, &h.log);
        if ((rc = restore(w, c, &h, body)) < 0)
            unregister(w, c);
    }
    if (body != NULL)
        munmap((void *)body, (size_t)body_len);
    for (int i = 0; i < nfds; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (rc < 0) {
        if (rc == -HANDOFF_E_LIMIT || rc == -ENOSPC || rc == -ENOMEM)
            log_write(LOG_LVL_WARN, 0, "refusing a handed-over connection: %s",
                      rc == -HANDOFF_E_LIMIT ? "over this worker's limits" : "no room");
        else
            log_write(LOG_LVL_ALERT, 0, "malformed handoff record (%d): refusing it", rc);
        refuse(w, id, ep, &h);
        return;
    }
    /* Ours from the ACK on; before it, nothing was written or run. */
    answer(w, HANDOFF_ACK, id);
    worker_ip_take(w, c, 0);        /* it was within the limit where it came from */
    if (ws_conn_adopt(w, c, ep, &h.parser, h.ep, h.ep_len) < 0 || c->state != CONN_WS)
        return;
    if (w->stopping == WS_CLOSE_SERVICE_RESTART) {
        /* Retiring too: on to the newest generation, or 1012 from here. */
        int sent = handoff_send(w, c);
        if (sent == -EAGAIN)
            ws_conn_close(w, c, WS_CLOSE_SERVICE_RESTART, "server reloading");
        if (sent != -EBUSY)
            return;
        w->handoff_waiting++;       /* served here until a channel has room */
    }
    resume_input(w, c);
    if (w->stopping && w->stopping != WS_CLOSE_SERVICE_RESTART)
        ws_conn_close(w, c, (uint16_t)w->stopping, "server restarting");
}

/* Every descriptor of MSG into FDS (up to MAX_FDS; any beyond are closed). */
static int take_fds(struct msghdr *msg, int *fds)
{
    int n = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm != NULL; cm = CMSG_NXTHDR(msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
            if (n < MAX_FDS)
                fds[n++] = fd;
            else
                close(fd);
        }
    }
    return n;
}

void handoff_receive(struct worker *w)
{
    int channel = w->ctx.handoff[w->ctx.slot][0];
    for (;;) {
        uint8_t buf[HANDOFF_CONN_MAX];
        union { char buf[CMSG_SPACE(MAX_FDS * sizeof(int))]; struct cmsghdr align; } ctl;
        struct iovec iov = { buf, sizeof buf };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                              .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf };
        ssize_t n = recvmsg(channel, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                log_write(LOG_LVL_ALERT, errno, "recvmsg(handoff) failed");
            return;
        }
        int fds[MAX_FDS];
        int nfds = take_fds(&msg, fds);
        struct handoff_id id;
        int type = handoff_peek(buf, (size_t)n, &id);
        if (type > 0 && (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
            /* More than any record of ours: refuse it, so the sender closes it with 1012. */
            if (type == HANDOFF_CONN)
                answer(w, HANDOFF_NACK, &id);
            type = -HANDOFF_E_FIELD;
        }
        if (type == HANDOFF_CONN) {
            adopt(w, buf, (size_t)n, fds, nfds, &id);
            continue;
        }
        for (int i = 0; i < nfds; i++)
            close(fds[i]);
        if (type > 0 && nfds == 0 && handoff_answer_decode(buf, (size_t)n, &id) == type)
            on_answer(w, type, &id);
        else
            log_write(LOG_LVL_ALERT, 0, "malformed handoff message (%d): dropped", type);
    }
}
