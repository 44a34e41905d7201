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

#include "chat.h"
#include "conn.h"
#include "log.h"
#include "worker.h"
#include "ws_conn.h"

#define HANDOFF_MAGIC 0x77736831u   /* "wsh1" */

struct handoff_rec {
    uint32_t magic;
    uint32_t endpoint;          /* enum conn_endpoint */
    struct chat_handoff chat;   /* endpoint == CONN_EP_CHAT only */
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
    return rc == (ssize_t)sizeof *rec ? 0 : -1;
}

int handoff_send(struct worker *w, struct conn *c)
{
    if (!w->cfg->reload_handoff || (c->endpoint != CONN_EP_ECHO && c->endpoint != CONN_EP_CHAT))
        return -1;
    worker_flush(w, c);     /* whatever can still go out now */
    if (c->state != CONN_WS || !idle(c))
        return -1;
    int target = pick_target(w);
    if (target < 0)
        return -1;
    struct handoff_rec rec;
    memset(&rec, 0, sizeof rec);
    rec.magic = HANDOFF_MAGIC;
    rec.endpoint = c->endpoint;
    /* Take the member out first: a chat connection with pending stream stays here. */
    if (c->endpoint == CONN_EP_CHAT && chat_handoff_take(w, c, &rec.chat) < 0)
        return -1;
    if (send_fd(w->ctx.handoff[target][1], c->fd, &rec) < 0) {
        /* Channel full (or gone): this one closes with 1012 and resumes by id. */
        log_at(LOG_LVL_INFO, errno, "conn %u: handing over failed", c->id);
        return -1;
    }
    /*
     * The descriptor in flight keeps the socket open, so close() alone would
     * leave it registered in our epoll set: remove it explicitly.
     */
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    worker_close_now(w, c);
    return 0;
}

static void adopt(struct worker *w, int fd, const struct handoff_rec *rec)
{
    struct conn *c = worker_register(w, fd);
    if (c == NULL)
        return;
    STAT_ADD(w, ws_current, 1);
    ws_conn_open(w, c, (int)rec->endpoint);
    if (rec->endpoint == CONN_EP_CHAT && chat_handoff_adopt(w, c, &rec->chat) < 0)
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
        if (n != (ssize_t)sizeof rec || rec.magic != HANDOFF_MAGIC ||
            (rec.endpoint != CONN_EP_ECHO && rec.endpoint != CONN_EP_CHAT)) {
            log_write(LOG_LVL_ALERT, 0, "malformed handoff record: dropping the socket");
            close(fd);
            continue;
        }
        adopt(w, fd, &rec);
    }
}
