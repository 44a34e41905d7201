/*
 * handoff: see handoff.h. The record travels in the same message as the
 * descriptor, so a receiver never sees one without the other; both ends run
 * the same binary, so the record is a plain struct with a magic number.
 */
#include "handoff.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "endpoints.h"
#include "log.h"
#include "worker.h"
#include "ws_conn.h"

#define HANDOFF_MAGIC 0x77736833u   /* "wsh3" */

/* The endpoint's record travels opaque: only the endpoint reads it. */
struct handoff_rec {
    uint32_t magic;
    uint32_t endpoint;          /* endpoints_index() */
    uint32_t len;               /* bytes of data used */
    uint8_t  peer[16];          /* the client address (a proxy's client, if forwarded) */
    uint8_t  via;               /* enum conn_via */
    uint8_t  logged;            /* the sender keeps an access log: alog is its */
    struct access_conn alog;    /* the session so far, for its one access log line */
    uint8_t  data[WS_HANDOFF_MAX];
};

/* Nothing half-received (input tail, open message, frame) or half-sent. */
static int idle(const struct conn *c)
{
    return c->state == CONN_WS && c->in_len == 0 && c->msg_len == 0 &&
           !c->parser.in_frame && c->parser.msg_opcode == 0 && conn_out_pending(c) == 0;
}

/* A live slot of the newest generation other than ours, round robin; -1 if none. */
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
        return -1;
    int live[SHM_MAX_SLOTS], n = 0;
    for (int s = 0; s < SHM_MAX_SLOTS; s++)
        if (__atomic_load_n(&seg->slots[s].pid, __ATOMIC_ACQUIRE) != 0 &&
            seg->slots[s].generation == newest)
            live[n++] = s;
    return n ? live[turn++ % (unsigned)n] : -1;
}

static int send_fd(int channel, int fd, const struct handoff_rec *rec)
{
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } ctl;
    memset(&ctl, 0, sizeof ctl);    /* CMSG_SPACE pads past the fd: no stack bytes leak */
    struct iovec iov = { (void *)rec, sizeof *rec };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf };
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    ssize_t rc;
    do {
        rc = sendmsg(channel, &msg, MSG_NOSIGNAL);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0)
        return -errno;
    return rc == (ssize_t)sizeof *rec ? 0 : -EIO;
}

int handoff_send(struct worker *w, struct conn *c)
{
    if (!w->cfg->reload_handoff || c->ep == NULL || c->ep->handoff_take == NULL)
        return -EAGAIN;
    worker_flush(w, c);     /* whatever can still go out now */
    if (c->state != CONN_WS || !idle(c))
        return -EAGAIN;
    int target = pick_target(w);
    if (target < 0)
        return -EAGAIN;
    struct handoff_rec rec;
    memset(&rec, 0, sizeof rec);
    rec.magic = HANDOFF_MAGIC;
    rec.endpoint = endpoints_index(c->ep);
    memcpy(rec.peer, c->peer, sizeof rec.peer);
    rec.via = c->via;
    /* The endpoint decides and lets go first: a chat member with stream pending stays. */
    ssize_t len = c->ep->handoff_take(w, c, rec.data, sizeof rec.data);
    if (len < 0)
        return -EAGAIN;
    rec.len = (uint32_t)len;
    struct access_conn *a = worker_alog(w, c);
    if (a != NULL) {
        rec.logged = 1;
        rec.alog = *a;
    }
    if (send_fd(w->ctx.handoff[target][1], c->fd, &rec) < 0) {
        /*
         * Channel full (or gone): this one closes with 1012 and resumes by
         * id. The endpoint already let go of it, without a trace.
         */
        log_at(LOG_LVL_INFO, errno, "conn %u: handing over failed", c->id);
        if (c->ep->handoff_abort != NULL)
            c->ep->handoff_abort(w, rec.data, rec.len);
        return -EAGAIN;
    }
    /*
     * The descriptor in flight keeps the socket open, so close() alone would
     * leave it registered in our epoll set: remove it explicitly.
     */
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    if (a != NULL)
        a->done = 1;    /* the session goes on: its line is the adopter's to write */
    worker_close_now(w, c);
    return 0;
}

static void adopt(struct worker *w, int fd, const struct ws_endpoint *ep,
                  const struct handoff_rec *rec)
{
    struct conn *c = worker_register(w, fd);
    if (c == NULL) {
        if (ep->handoff_abort != NULL)
            ep->handoff_abort(w, rec->data, rec->len);
        return;
    }
    memcpy(c->peer, rec->peer, sizeof c->peer);
    c->via = rec->via;
    struct access_conn *a = worker_alog(w, c);
    if (a != NULL) {
        /*
         * The session's start and bytes come with it; from a generation
         * without an access log only its path is known, and its time and
         * bytes count from here.
         */
        if (rec->logged) {
            *a = rec->alog;
            a->done = 0;
        } else {
            worker_access_session_begin(w, c, ep->path, strlen(ep->path), 0);
        }
    }
    worker_ip_take(w, c, 0);        /* it was within the limit where it came from */
    if (ws_conn_adopt(w, c, ep, rec->data, rec->len) < 0)
        return;
    if (w->stopping)
        ws_conn_close(w, c, (uint16_t)w->stopping, "server restarting");
}

void handoff_receive(struct worker *w)
{
    int channel = w->ctx.handoff[w->ctx.slot][0];
    for (;;) {
        struct handoff_rec rec;
        union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } ctl;
        struct iovec iov = { &rec, sizeof rec };
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
        int fd = -1;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        if (cm != NULL && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
            memcpy(&fd, CMSG_DATA(cm), sizeof fd);
        if (fd < 0)
            continue;
        const struct ws_endpoint *ep = endpoints_at(rec.endpoint);
        if (n != (ssize_t)sizeof rec || rec.magic != HANDOFF_MAGIC || ep == NULL ||
            rec.len > sizeof rec.data) {
            log_write(LOG_LVL_ALERT, 0, "malformed handoff record: dropping the socket");
            close(fd);
            continue;
        }
        adopt(w, fd, ep, &rec);
    }
}
